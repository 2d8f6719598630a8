#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "errmap.h"
#include "slog.h"

/* A download in flight. acp_read_result_fd() pushes the file into a pipe
 * from a thread of its own; libmicrohttpd pulls from the pipe's other end
 * as the client takes the bytes, so at most a pipe's worth (64 KiB) is in
 * memory whatever the file's size. */
typedef struct files_stream {
    acp_platform *platform;
    acp_job_id id;
    char *name;
    int read_fd;
    int write_fd;
    pthread_t thread;
    int thread_started;
    int rc;           /* acp_read_result_fd's result, once the thread is joined */
    char detail[512]; /* and its acp_last_error(), which is per thread */
    uint64_t size;
} files_stream;

enum MHD_Result files_list(server *srv, struct MHD_Connection *conn, http_request *req,
                           const acp_job_id *id)
{
    acp_result_list list;
    memset(&list, 0, sizeof list);
    int rc = acp_get_results(srv->platform, id, &list);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    json_object *files = json_object_new_array_ext((int)list.count);
    for (size_t i = 0; i < list.count; i++) {
        json_object *file = json_object_new_object();
        json_object_object_add(file, "name", json_object_new_string(list.files[i].name));
        json_object_object_add(file, "size", json_object_new_int64((int64_t)list.files[i].size));
        json_object_array_add(files, file);
    }
    acp_result_list_clear(&list);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "files", files);
    return http_reply_json(conn, req, MHD_HTTP_OK, doc);
}

static void *files_writer(void *arg)
{
    files_stream *s = arg;
    s->rc = acp_read_result_fd(s->platform, &s->id, s->name, s->write_fd);
    if (s->rc != 0)
        snprintf(s->detail, sizeof s->detail, "%s", acp_last_error());
    close(s->write_fd);
    s->write_fd = -1;
    return NULL;
}

/* Called by libmicrohttpd on the connection's thread for the next bytes. */
static ssize_t files_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    files_stream *s = cls;
    for (;;) {
        ssize_t n = read(s->read_fd, buf, max);
        if (n > 0)
            return n;
        if (n < 0 && errno == EINTR)
            continue;
        /* The file ended before its listed size, or S3 failed mid-way: the
         * client must not take a short body for the whole file. */
        slog(ACP_LOG_WARN, "download of %s stopped at byte %llu of %llu", s->name,
             (unsigned long long)pos, (unsigned long long)s->size);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* For HEAD: libmicrohttpd sends no body, so this is never called. */
static ssize_t files_read_nothing(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void files_stream_free(void *cls)
{
    files_stream *s = cls;
    /* Closing our end first makes a writer still busy fail with EPIPE
     * (SIGPIPE is ignored) instead of blocking on a full pipe forever. */
    if (s->read_fd >= 0)
        close(s->read_fd);
    if (s->thread_started)
        pthread_join(s->thread, NULL);
    if (s->write_fd >= 0)
        close(s->write_fd);
    free(s->name);
    free(s);
}

/* Start the writer; wait until the first bytes or the end arrive, so that a
 * failure before any data (S3 down, the file gone) still gets a proper
 * status instead of a cut-off 200. Returns 0 when data is flowing (or the
 * file is empty), else the library's error. */
static int files_stream_start(files_stream *s)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return ACP_EIO;
    s->read_fd = fds[0];
    s->write_fd = fds[1];
    if (pthread_create(&s->thread, NULL, files_writer, s) != 0)
        return ACP_ENOMEM;
    s->thread_started = 1;
    struct pollfd pfd = {s->read_fd, POLLIN, 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    int pending = 0;
    if (ioctl(s->read_fd, FIONREAD, &pending) == 0 && pending > 0)
        return 0;
    /* Nothing to read: the writer is done. */
    pthread_join(s->thread, NULL);
    s->thread_started = 0;
    return s->rc;
}

enum MHD_Result files_download(server *srv, struct MHD_Connection *conn, http_request *req,
                               const acp_job_id *id, const char *name, int head_only)
{
    acp_result_list list;
    memset(&list, 0, sizeof list);
    int rc = acp_get_results(srv->platform, id, &list);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    const acp_result_file *file = NULL;
    for (size_t i = 0; i < list.count && !file; i++)
        if (strcmp(list.files[i].name, name) == 0)
            file = &list.files[i];
    if (!file) {
        char hex[ACP_JOB_ID_STRLEN];
        acp_result_list_clear(&list);
        return http_reply_error(conn, req, MHD_HTTP_NOT_FOUND, "file not found", "name",
                                "job %s has no file '%s'", acp_job_id_format(id, hex), name);
    }
    uint64_t size = file->size;
    acp_result_list_clear(&list);

    struct MHD_Response *response;
    if (head_only || size == 0) {
        /* No bytes to send: the headers only, with the listed size. */
        response =
            head_only
                ? MHD_create_response_from_callback(size, 4096, files_read_nothing, NULL, NULL)
                : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else {
        files_stream *s = calloc(1, sizeof *s);
        if (!s || !(s->name = strdup(name))) {
            free(s);
            return MHD_NO;
        }
        s->platform = srv->platform;
        s->id = *id;
        s->read_fd = s->write_fd = -1;
        s->size = size;
        if ((rc = files_stream_start(s)) != 0) {
            char detail[sizeof s->detail];
            snprintf(detail, sizeof detail, "%s", s->detail[0] ? s->detail : acp_strerror(rc));
            files_stream_free(s);
            return http_reply_error(conn, req, errmap_http_status(rc), acp_strerror(rc), NULL, "%s",
                                    detail);
        }
        response =
            MHD_create_response_from_callback(size, 64 * 1024, files_read, s, files_stream_free);
        if (!response)
            files_stream_free(s);
    }
    if (!response)
        return MHD_NO;
    const char *dot = strrchr(name, '.');
    const char *type = !dot                        ? "application/octet-stream"
                       : strcmp(dot, ".json") == 0 ? "application/json"
                       : strcmp(dot, ".txt") == 0  ? "text/plain; charset=utf-8"
                                                   : "application/octet-stream";
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return http_reply(conn, req, MHD_HTTP_OK, response);
}
