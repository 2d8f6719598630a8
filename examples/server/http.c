#include "http.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auth.h"
#include "errmap.h"
#include "guard.h"
#include "slog.h"
#include "textbuf.h"
#include "upload.h"

/* A client that goes on sending this many times the limit after being told
 * its body is too large is cut off instead of being read to the end. */
#define HTTP_DISCARD_FACTOR 8

static double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum MHD_Result http_reply(struct MHD_Connection *conn, http_request *req, unsigned status,
                           struct MHD_Response *response)
{
    if (!response)
        return MHD_NO;
    req->status = status;
    enum MHD_Result rc = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return rc;
}

struct MHD_Response *http_json_response(json_object *doc)
{
    if (!doc)
        return NULL;
    size_t len;
    const char *text = json_object_to_json_string_length(
        doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    struct MHD_Response *response =
        text ? MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY) : NULL;
    json_object_put(doc);
    if (response)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return response;
}

enum MHD_Result http_reply_json(struct MHD_Connection *conn, http_request *req, unsigned status,
                                json_object *doc)
{
    return http_reply(conn, req, status, http_json_response(doc));
}

static enum MHD_Result http_reply_error_text(struct MHD_Connection *conn, http_request *req,
                                             unsigned status, const char *error, const char *field,
                                             const char *detail)
{
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "error", json_object_new_string(error));
    json_object_object_add(doc, "detail", json_object_new_string(detail));
    if (field)
        json_object_object_add(doc, "field", json_object_new_string(field));
    slog(status >= 500 ? ACP_LOG_WARN : ACP_LOG_DEBUG, "%s %s: %u %s: %s", req->method, req->path,
         status, error, detail);
    return http_reply_json(conn, req, status, doc);
}

enum MHD_Result http_reply_error(struct MHD_Connection *conn, http_request *req, unsigned status,
                                 const char *error, const char *field, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return http_reply_error_text(conn, req, status, error, field, detail);
}

enum MHD_Result http_reply_acp(struct MHD_Connection *conn, http_request *req, int code,
                               const char *field)
{
    unsigned status = errmap_http_status(code);
    if (status < 500)
        return http_reply_error_text(conn, req, status, acp_strerror(code), field,
                                     acp_last_error());
    /* A backend's error names its host and port: the log gets it, the
     * client only what kind of failure it was. */
    slog(ACP_LOG_WARN, "%s %s: %s: %s", req->method, req->path, acp_strerror(code),
         acp_last_error());
    return http_reply_error_text(conn, req, status, acp_strerror(code), field,
                                 "the server could not complete the request; its log says why");
}

static enum MHD_Result http_too_big(struct MHD_Connection *conn, http_request *req, size_t limit)
{
    return http_reply_error(conn, req, MHD_HTTP_CONTENT_TOO_LARGE, acp_strerror(ACP_ETOOBIG),
                            "body", "the request body is larger than %zu bytes", limit);
}

/* Append a piece of the body, or discard it once over the limit. Returns 0,
 * or -1 to drop the connection. */
static int http_take_body(http_request *req, const char *data, size_t len, size_t limit)
{
    if (!req->too_big && len > limit - req->body_len) {
        /* Nothing past the limit is kept; the answer (413) waits for the end
         * of the body because libmicrohttpd cannot answer in mid-upload. */
        req->too_big = 1;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
    }
    if (req->too_big) {
        req->discarded += len;
        return req->discarded > (uint64_t)limit * HTTP_DISCARD_FACTOR ? -1 : 0;
    }
    return textbuf_append(&req->body, &req->body_len, &req->body_cap, data, len);
}

/* A copy of @text for the log, with control characters (a percent-decoded
 * "%0a" in a path, say) written as \xHH so that a client cannot forge log
 * lines. */
static char *http_printable(const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        n += *p < 0x20 || *p == 0x7f || *p == '\\' ? 4 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            o += sprintf(o, "\\x%02x", *p);
        else
            *o++ = (char)*p;
    }
    *o = '\0';
    return out;
}

/* An answer given before the body is read (a refused request): the
 * connection is answering from now on. */
static enum MHD_Result http_answer_early(server *srv, struct MHD_Connection *conn,
                                         http_request *req, enum MHD_Result rc)
{
    (void)req;
    guard_answering(srv->guard, conn, 1);
    return rc;
}

/* The client's address, for the log. */
static void http_client(struct MHD_Connection *conn, char *out, size_t len)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    socklen_t salen =
        sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (!sa || getnameinfo(sa, salen, out, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, len, "?");
}

/* Access control (auth.c decides; docs/http-api.adoc, "Access control").
 * Returns 1 when the request may go on, else 0 with the refusal (401 or
 * 403) answered in *answer and logged, without the token. */
static int http_authorize(server *srv, struct MHD_Connection *conn, http_request *req,
                          const char *method, const char *url, enum MHD_Result *answer)
{
    const auth_table *tokens = &srv->cfg->auth;
    if (tokens->count == 0)
        return 1;
    const char *header =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    const auth_token *who;
    auth_verdict verdict = auth_decide(tokens, method, url, header, &who);
    if (verdict == AUTH_ALLOWED || verdict == AUTH_OPEN) {
        req->token = who;
        return 1;
    }
    char client[NI_MAXHOST];
    http_client(conn, client, sizeof client);
    if (verdict == AUTH_FORBIDDEN) {
        const char *route =
            req->route != HTTPMETRICS_OTHER ? httpmetrics_route_name(req->route) : req->path;
        slog(ACP_LOG_WARN, "%s %s from %s: refused (403): token \"%s\" has the %s role",
             req->method, req->path, client, who->name, auth_role_name(who->role));
        *answer = http_reply_error(conn, req, MHD_HTTP_FORBIDDEN, "forbidden", NULL,
                                   "%s %s needs a write token", req->method, route);
        return 0;
    }
    const char *reason = verdict == AUTH_MISSING ? "no Authorization header"
                         : verdict == AUTH_MALFORMED
                             ? "an Authorization header without a bearer token"
                             : "an unknown token";
    const char *detail =
        verdict == AUTH_MISSING ? "this server needs a token: send Authorization: Bearer <token>"
        : verdict == AUTH_MALFORMED ? "the Authorization header must be \"Bearer <token>\""
                                    : "the token is not valid";
    slog(ACP_LOG_WARN, "%s %s from %s: refused (401): %s", req->method, req->path, client, reason);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "error", json_object_new_string("unauthorized"));
    json_object_object_add(doc, "detail", json_object_new_string(detail));
    struct MHD_Response *response = http_json_response(doc);
    if (response)
        MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                verdict == AUTH_UNKNOWN
                                    ? "Bearer realm=\"acp\", error=\"invalid_token\""
                                    : "Bearer realm=\"acp\"");
    *answer = http_reply(conn, req, MHD_HTTP_UNAUTHORIZED, response);
    return 0;
}

/* POST /jobs by its Content-Type: a multipart body (input files) is read
 * by the upload module under its own limit; a type that is neither that nor
 * JSON is refused before the body is read. Returns 0, or -1 with the early
 * answer's verdict in *@early. */
static int http_begin_submit(server *srv, struct MHD_Connection *conn, http_request *req,
                             size_t *limit, enum MHD_Result *early)
{
    const char *type =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    switch (upload_kind_of(type)) {
    case UPLOAD_JSON:
        return 0;
    case UPLOAD_MULTIPART:
        req->upload = upload_begin(conn, srv->cfg);
        if (!req->upload) {
            *early = MHD_NO;
            return -1;
        }
        *limit = (size_t)upload_body_limit(srv->cfg);
        return 0;
    default:
        *early = http_answer_early(
            srv, conn, req,
            http_reply_error(conn, req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported media type",
                             "body",
                             "Content-Type '%.100s': POST /jobs takes application/json (the "
                             "submission) or multipart/form-data (the submission with input "
                             "files)",
                             type));
        return -1;
    }
}

/* The multipart body is in: answer its failure (returns -1, the answer's
 * verdict in *@answered), or hand its job part over as the request body
 * for the JSON parser (returns 0). */
static int http_end_upload(struct MHD_Connection *conn, http_request *req,
                           enum MHD_Result *answered)
{
    unsigned status;
    const char *field, *detail;
    upload_end(req->upload);
    if (upload_failed(req->upload, &status, &field, &detail)) {
        const char *error = status == MHD_HTTP_CONTENT_TOO_LARGE ? acp_strerror(ACP_ETOOBIG)
                            : status >= 500                      ? "internal error"
                                                                 : acp_strerror(ACP_EINVAL);
        *answered = http_reply_error(conn, req, status, error, field, "%s", detail);
        return -1;
    }
    free(req->body);
    req->body = upload_take_job(req->upload, &req->body_len);
    return 0;
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    server *srv = cls;
    size_t limit = (size_t)srv->cfg->max_body_bytes;
    http_request *req = *con_cls;
    if (!req) {
        /* First call: only the headers are in. */
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        req->started = http_now();
        req->method = http_printable(method);
        req->path = http_printable(url);
        req->route = api_route_of(url);
        if (!req->method || !req->path)
            return MHD_NO;
        /* RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request
         * without Host. */
        if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0 &&
            !MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST))
            return http_answer_early(srv, conn, req,
                                     http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST,
                                                      "bad request", "Host",
                                                      "an HTTP/1.1 request needs a Host header"));
        /* Before the body is read: a refused client uploads nothing. */
        enum MHD_Result refusal;
        if (!http_authorize(srv, conn, req, method, url, &refusal))
            return http_answer_early(srv, conn, req, refusal);
        if (req->route == HTTPMETRICS_JOBS && strcmp(method, "POST") == 0) {
            enum MHD_Result early;
            if (http_begin_submit(srv, conn, req, &limit, &early) != 0)
                return early;
        }
        const char *length =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(length, &end, 10);
            /* Answered before the body is read (and before "100 Continue"). */
            if (errno == ERANGE || (*end == '\0' && n > limit))
                return http_answer_early(srv, conn, req, http_too_big(conn, req, limit));
        }
        return MHD_YES;
    }
    if (*upload_data_size && req->upload) {
        if (upload_feed(req->upload, upload_data, *upload_data_size) != 0) {
            slog(ACP_LOG_WARN, "%s %s: upload far over its limits; connection dropped", req->method,
                 req->path);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (http_take_body(req, upload_data, *upload_data_size, limit) != 0) {
            slog(ACP_LOG_WARN, "%s %s: body too large or out of memory; connection dropped",
                 req->method, req->path);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    guard_answering(srv->guard, conn, 1);
    if (req->too_big)
        return http_too_big(conn, req, limit);
    enum MHD_Result answered;
    if (req->upload && http_end_upload(conn, req, &answered) != 0)
        return answered;
    return api_handle(srv, conn, req, method, url);
}

static void http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    server *srv = cls;
    guard_answering(srv->guard, conn, 0);
    http_request *req = *con_cls;
    if (!req)
        return;
    double ms = (http_now() - req->started) * 1000;
    /* A request that was never answered (the client went away first) has
     * no status to count. */
    if (req->status)
        httpmetrics_request(req->route, req->status, ms / 1000);
    /* Who asked, by the token's name: the audit trail of writes. */
    char who[AUTH_NAME_MAX + 16] = "";
    if (req->token)
        snprintf(who, sizeof who, " (token \"%s\")", req->token->name);
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        slog(ACP_LOG_INFO, "%s %s %u %.1f ms%s", req->method ? req->method : "?",
             req->path ? req->path : "?", req->status, ms, who);
    else
        slog(ACP_LOG_INFO, "%s %s %u %.1f ms%s (connection ended early, code %d)",
             req->method ? req->method : "?", req->path ? req->path : "?", req->status, ms, who,
             (int)toe);
    free(req->method);
    free(req->path);
    free(req->body);
    upload_free(req->upload); /* its files go, however the request ended */
    free(req);
    *con_cls = NULL;
}

static void http_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void http_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    size_t n = strlen(message);
    while (n > 0 && message[n - 1] == '\n')
        message[--n] = '\0';
    slog(ACP_LOG_WARN, "http: %s", message);
}

/* libmicrohttpd decodes "%00" into a NUL that ends the path it hands over,
 * so "/files/stdout.txt%00.json" would name stdout.txt: such an escape is
 * left as it is, and the name check refuses the '%'. */
static int http_hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static size_t http_unescape(void *cls, struct MHD_Connection *conn, char *text)
{
    (void)cls;
    (void)conn;
    char *out = text;
    for (const char *in = text; *in; in++) {
        int hi, lo;
        if (in[0] == '%' && (hi = http_hex(in[1])) >= 0 && (lo = http_hex(in[2])) >= 0 &&
            (hi | lo) != 0) {
            *out++ = (char)(hi * 16 + lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - text);
}

/* The guard's notification, and the open connections gauge. */
static void http_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode code)
{
    server *srv = cls;
    httpmetrics_connection(code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
    guard_notify(srv->guard, conn, socket_context, code);
}

struct MHD_Daemon *http_start(server *srv, int listen_fd, char *err, size_t errlen)
{
    srv->guard = guard_start((double)srv->cfg->request_timeout, err, errlen);
    if (!srv->guard)
        return NULL;
    /* One client may not take every slot. */
    unsigned per_client =
        (unsigned)(srv->cfg->max_connections_per_client < srv->cfg->max_connections
                       ? srv->cfg->max_connections_per_client
                       : srv->cfg->max_connections);
    /* A thread per connection: handlers block in acp_* calls (database, S3)
     * and downloads block on S3, which must not stall other clients. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_AUTO | MHD_USE_ERROR_LOG | (srv->tls_key ? MHD_USE_TLS : 0);
    struct MHD_Daemon *daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, http_handle, srv, MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, listen_fd, MHD_OPTION_NOTIFY_COMPLETED, http_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http_notify, srv, MHD_OPTION_UNESCAPE_CALLBACK, http_unescape,
        NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_client, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->cfg->connection_timeout,
        /* Plain HTTP ends the list here and the TLS options go unread. */
        srv->tls_key ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, srv->tls_key,
        MHD_OPTION_HTTPS_MEM_CERT, srv->tls_cert, MHD_OPTION_END);
    if (!daemon) {
        snprintf(err, errlen, "libmicrohttpd did not start (see the messages above)");
        guard_stop(srv->guard);
        srv->guard = NULL;
    }
    return daemon;
}

void http_stop(server *srv, struct MHD_Daemon *daemon)
{
    srv->stopping = 1;
    MHD_stop_daemon(daemon);
    guard_stop(srv->guard);
    srv->guard = NULL;
}
