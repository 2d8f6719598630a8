#include "fake_mhd.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct MHD_Response {
    char *data;
    size_t len;
    char *content_type;
    char *allow;
    MHD_ContentReaderFreeCallback free_fn;
    void *free_cls;
};

struct MHD_Daemon {
    int unused;
};

MHD_AccessHandlerCallback fake_mhd_handler;
fake_mhd_unescape_fn fake_mhd_unescape;
void *fake_mhd_handler_cls;
MHD_RequestCompletedCallback fake_mhd_completed;
void *fake_mhd_completed_cls;

static char *fake_strdup(const char *s)
{
    char *copy = s ? strdup(s) : NULL;
    if (s && !copy)
        abort();
    return copy;
}

/* The options http_start() passes, and nothing else: another one would
 * need its arguments read here, so it stops the run instead. */
struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc,
                                    void *apc_cls, MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
    static struct MHD_Daemon daemon;
    (void)flags;
    (void)port;
    (void)apc;
    (void)apc_cls;
    fake_mhd_handler = dh;
    fake_mhd_handler_cls = dh_cls;
    va_list ap;
    va_start(ap, dh_cls);
    for (;;) {
        enum MHD_OPTION option = va_arg(ap, enum MHD_OPTION);
        if (option == MHD_OPTION_END)
            break;
        switch (option) {
        case MHD_OPTION_EXTERNAL_LOGGER:
            (void)va_arg(ap, MHD_LogCallback);
            (void)va_arg(ap, void *);
            break;
        case MHD_OPTION_NOTIFY_COMPLETED:
            fake_mhd_completed = va_arg(ap, MHD_RequestCompletedCallback);
            fake_mhd_completed_cls = va_arg(ap, void *);
            break;
        case MHD_OPTION_LISTEN_SOCKET:
            (void)va_arg(ap, MHD_socket);
            break;
        case MHD_OPTION_CONNECTION_LIMIT:
        case MHD_OPTION_CONNECTION_TIMEOUT:
        case MHD_OPTION_PER_IP_CONNECTION_LIMIT:
            (void)va_arg(ap, unsigned int);
            break;
        case MHD_OPTION_NOTIFY_CONNECTION:
            (void)va_arg(ap, MHD_NotifyConnectionCallback);
            (void)va_arg(ap, void *);
            break;
        case MHD_OPTION_UNESCAPE_CALLBACK:
            fake_mhd_unescape = va_arg(ap, fake_mhd_unescape_fn);
            (void)va_arg(ap, void *);
            break;
        default:
            fprintf(stderr, "fake_mhd: MHD_start_daemon option %d is not handled\n", (int)option);
            abort();
        }
    }
    va_end(ap);
    return &daemon;
}

void MHD_stop_daemon(struct MHD_Daemon *daemon)
{
    (void)daemon;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->data = malloc(size + 1);
    if (!r->data)
        abort();
    memcpy(r->data, buffer, size);
    r->data[size] = '\0';
    r->len = size;
    if (mode == MHD_RESPMEM_MUST_FREE)
        free(buffer);
    return r;
}

struct MHD_Response *MHD_create_response_from_callback(uint64_t size, size_t block_size,
                                                       MHD_ContentReaderCallback crc, void *crc_cls,
                                                       MHD_ContentReaderFreeCallback crfc)
{
    (void)size;
    (void)block_size;
    (void)crc;
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->free_fn = crfc;
    r->free_cls = crc_cls;
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *response, const char *header,
                                        const char *content)
{
    if (strcasecmp(header, MHD_HTTP_HEADER_CONTENT_TYPE) == 0) {
        free(response->content_type);
        response->content_type = fake_strdup(content);
    } else if (strcasecmp(header, MHD_HTTP_HEADER_ALLOW) == 0) {
        free(response->allow);
        response->allow = fake_strdup(content);
    }
    return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *response)
{
    if (!response)
        return;
    if (response->free_fn)
        response->free_fn(response->free_cls);
    free(response->data);
    free(response->content_type);
    free(response->allow);
    free(response);
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *connection, unsigned int status_code,
                                   struct MHD_Response *response)
{
    connection->queued++;
    if (connection->queued > 1)
        return MHD_NO; /* as libmicrohttpd: one answer per request */
    connection->status = status_code;
    connection->body = response->data ? fake_strdup(response->data) : NULL;
    connection->body_len = response->len;
    connection->content_type = fake_strdup(response->content_type);
    connection->allow = fake_strdup(response->allow);
    return MHD_YES;
}

const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                                        const char *key)
{
    if (kind == MHD_HEADER_KIND && strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
        return connection->host;
    if (kind == MHD_HEADER_KIND)
        return strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0 ? connection->content_length
                                                                    : NULL;
    if (kind != MHD_GET_ARGUMENT_KIND)
        return NULL;
    for (size_t i = 0; i < connection->arg_count; i++)
        if (strcmp(connection->arg_keys[i], key) == 0)
            return connection->arg_values[i];
    return NULL;
}

int MHD_get_connection_values(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                              MHD_KeyValueIterator iterator, void *iterator_cls)
{
    if (kind != MHD_GET_ARGUMENT_KIND)
        return 0;
    int n = 0;
    for (size_t i = 0; i < connection->arg_count; i++, n++)
        if (iterator && iterator(iterator_cls, kind, connection->arg_keys[i],
                                 connection->arg_values[i]) != MHD_YES)
            return n + 1;
    return n;
}

/* No connection has a socket here: the server's connection guard, which
 * asks for the connection's context, leaves such a request alone. */
const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *connection,
                                                        enum MHD_ConnectionInfoType info_type, ...)
{
    (void)connection;
    (void)info_type;
    return NULL;
}

/* A followed log turns the idle timeout off and on; nothing times out here. */
enum MHD_Result MHD_set_connection_option(struct MHD_Connection *connection,
                                          enum MHD_CONNECTION_OPTION option, ...)
{
    (void)connection;
    (void)option;
    return MHD_YES;
}

/* A made-up request has no Content-Type, so POST /jobs never takes the
 * multipart path (upload.c); these only satisfy the linker. */
struct MHD_PostProcessor *MHD_create_post_processor(struct MHD_Connection *connection,
                                                    size_t buffer_size, MHD_PostDataIterator iter,
                                                    void *iter_cls)
{
    (void)connection;
    (void)buffer_size;
    (void)iter;
    (void)iter_cls;
    return NULL;
}

enum MHD_Result MHD_post_process(struct MHD_PostProcessor *pp, const char *post_data,
                                 size_t post_data_len)
{
    (void)pp;
    (void)post_data;
    (void)post_data_len;
    return MHD_NO;
}

enum MHD_Result MHD_destroy_post_processor(struct MHD_PostProcessor *pp)
{
    (void)pp;
    return MHD_NO;
}

void fake_mhd_connection_clear(struct MHD_Connection *conn)
{
    free(conn->body);
    free(conn->content_type);
    free(conn->allow);
    conn->body = conn->content_type = conn->allow = NULL;
}
