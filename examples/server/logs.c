#include "logs.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "slog.h"

/* How long one acp_read_log() of a follower waits: between two waits the
 * follower checks that its client is still there and that the server is
 * not stopping. */
#define LOGS_WAIT_MS 1000
/* The pause after a wait that returned at once with nothing. */
#define LOGS_IDLE_PAUSE_MS 50
/* The most text one read of a follower takes (one chunk, one event). */
#define LOGS_FOLLOW_BYTES (64u << 10)
/* libmicrohttpd's buffer for a streamed answer. */
#define LOGS_BLOCK_BYTES (32u << 10)
/* A Server-Sent Events stream with nothing to say sends a comment this
 * often, so that proxies keep it open. */
#define LOGS_KEEPALIVE_SECONDS 15.0

#define LOGS_TEXT_TYPE "text/plain; charset=utf-8"
#define LOGS_SSE_TYPE  "text/event-stream"

static double logs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int logs_append(logs_buf *b, const void *data, size_t len)
{
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return -1;
        b->data = grown;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static int logs_sink(void *userdata, const void *data, size_t len)
{
    return logs_append(userdata, data, len);
}

int logs_parse_offset(const char *text, uint64_t *out)
{
    if (!text || !*text || strspn(text, "0123456789") != strlen(text))
        return -1;
    errno = 0;
    unsigned long long n = strtoull(text, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = (uint64_t)n;
    return 0;
}

int logs_parse_follow(const char *text)
{
    if (!text)
        return -1;
    if (strcmp(text, "1") == 0 || strcmp(text, "true") == 0)
        return 1;
    if (strcmp(text, "0") == 0 || strcmp(text, "false") == 0)
        return 0;
    return -1;
}

int logs_sse_event(logs_buf *out, const char *text, size_t len, uint64_t next)
{
    size_t start = out->len;
    int failed = 0;
    for (size_t i = 0; i < len && !failed;) {
        size_t end = i;
        while (end < len && text[end] != '\n' && text[end] != '\r')
            end++;
        failed = logs_append(out, "data: ", 6) != 0 || logs_append(out, text + i, end - i) != 0 ||
                 logs_append(out, "\n", 1) != 0;
        /* CRLF is one line end, as the EventSource parser takes it. */
        i = end + (end + 1 < len && text[end] == '\r' && text[end + 1] == '\n' ? 2 : 1);
    }
    char id[48];
    int n = snprintf(id, sizeof id, "id: %" PRIu64 "\n\n", next);
    if (failed || logs_append(out, id, (size_t)n) != 0) {
        out->len = start;
        return -1;
    }
    return 0;
}

/* One read of the log from @offset into @text (emptied first). */
static int logs_read(acp_platform *platform, const acp_job_id *id, uint64_t offset, size_t max,
                     unsigned wait_ms, logs_buf *text, acp_log_read *r)
{
    text->len = 0;
    int rc = acp_log_read_init(r, ACP_LOG_READ_VERSION);
    if (rc != 0)
        return rc;
    r->offset = offset;
    r->max_bytes = max;
    r->wait_ms = wait_ms;
    return acp_read_log(platform, id, r, logs_sink, text);
}

/* ---- a followed log ----------------------------------------------------- */

typedef struct logs_stream {
    server *srv;
    struct MHD_Connection *conn;
    acp_job_id id;
    int sse;
    uint64_t next;   /* the offset to read from */
    int ended;       /* the library said no more text will come */
    int end_queued;  /* SSE: the "end" event is in out */
    logs_buf out;    /* bytes for the client */
    size_t sent;     /* of out */
    logs_buf text;   /* one read's text */
    double quiet_at; /* when out was last filled (keep-alive) */
    int untimed;     /* the connection's idle timeout is off */
} logs_stream;

/* The bytes of read @r (its text in s->text) for the client. */
static int logs_take(logs_stream *s, const acp_log_read *r)
{
    int rc = 0;
    if (s->sse && (s->text.len > 0 || r->next != s->next))
        rc = logs_sse_event(&s->out, s->text.data, s->text.len, r->next);
    else if (!s->sse)
        rc = logs_append(&s->out, s->text.data, s->text.len);
    s->next = r->next;
    s->ended = r->ended;
    if (s->out.len > 0)
        s->quiet_at = logs_now();
    return rc;
}

/* libmicrohttpd measures a connection's idleness from the last byte that
 * went through it and closes it after listen.connection_timeout: while a
 * follower waits for text, which may take longer, the timeout is off; it is
 * on again (and counts from now) while the client takes what was written,
 * so that a client that stops reading is still cut off. */
static void logs_timed(logs_stream *s, int timed)
{
    if (timed == !s->untimed)
        return;
    unsigned seconds = timed ? (unsigned)s->srv->cfg->connection_timeout : 0;
    MHD_set_connection_option(s->conn, MHD_CONNECTION_OPTION_TIMEOUT, seconds);
    s->untimed = !timed;
}

/* The client closed its end (the follower would otherwise only notice at
 * its next write, which may be long in coming). */
static int logs_client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info)
        return 0;
    struct pollfd pfd = {.fd = info->connect_fd, .events = POLLRDHUP};
    return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* libmicrohttpd asks for the next bytes, on the connection's own thread. */
static ssize_t logs_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    logs_stream *s = cls;
    (void)pos;
    for (;;) {
        if (s->sent < s->out.len) {
            size_t n = s->out.len - s->sent < max ? s->out.len - s->sent : max;
            memcpy(buf, s->out.data + s->sent, n);
            s->sent += n;
            logs_timed(s, 1);
            return (ssize_t)n;
        }
        s->out.len = s->sent = 0;
        if (s->ended) {
            if (!s->sse || s->end_queued)
                return MHD_CONTENT_READER_END_OF_STREAM;
            char end[96];
            int n =
                snprintf(end, sizeof end, "event: end\ndata: {\"next\":%" PRIu64 "}\n\n", s->next);
            if (logs_append(&s->out, end, (size_t)n) != 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            s->end_queued = 1;
            continue;
        }
        if (s->srv->stopping || logs_client_gone(s->conn))
            return MHD_CONTENT_READER_END_WITH_ERROR;
        logs_timed(s, 0);
        acp_log_read r;
        double asked = logs_now();
        int rc = logs_read(s->srv->platform, &s->id, s->next, LOGS_FOLLOW_BYTES, LOGS_WAIT_MS,
                           &s->text, &r);
        if (rc != 0) {
            /* Cut short, not ended: the client goes on from its last offset
             * (an EventSource reconnects by itself with Last-Event-ID). */
            char hex[ACP_JOB_ID_STRLEN];
            slog(rc == ACP_ESHUTDOWN ? ACP_LOG_INFO : ACP_LOG_WARN,
                 "following the log of %s at %" PRIu64 ": %s: %s", acp_job_id_format(&s->id, hex),
                 s->next, acp_strerror(rc), acp_last_error());
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (logs_take(s, &r) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        /* A wait that came back at once with nothing (woken for text that
         * was not there yet, say) must not become a busy loop of reads. */
        if (s->out.len == 0 && !s->ended && logs_now() - asked < 0.01)
            poll(NULL, 0, LOGS_IDLE_PAUSE_MS);
        if (s->sse && s->out.len == 0 && logs_now() - s->quiet_at >= LOGS_KEEPALIVE_SECONDS) {
            if (logs_append(&s->out, ": keep-alive\n\n", 14) != 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
            s->quiet_at = logs_now();
        }
    }
}

static void logs_stream_free(void *cls)
{
    logs_stream *s = cls;
    free(s->out.data);
    free(s->text.data);
    free(s);
}

/* ---- the request -------------------------------------------------------- */

typedef struct logs_args {
    const char *bad;      /* an unknown parameter */
    const char *repeated; /* a parameter given twice */
    int offset_seen, follow_seen;
    const char *offset, *follow; /* NULL: "?offset" without a value */
} logs_args;

static enum MHD_Result logs_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    (void)kind;
    logs_args *a = cls;
    if (strcmp(key, "offset") == 0) {
        if (a->offset_seen && !a->repeated)
            a->repeated = key;
        a->offset_seen = 1;
        a->offset = value;
    } else if (strcmp(key, "follow") == 0) {
        if (a->follow_seen && !a->repeated)
            a->repeated = key;
        a->follow_seen = 1;
        a->follow = value;
    } else if (!a->bad) {
        a->bad = key;
    }
    return MHD_YES;
}

/* Does the Accept header name text/event-stream? (An EventSource sends
 * exactly that; a q=0 would refuse it.) */
static int logs_wants_sse(struct MHD_Connection *conn)
{
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    if (!accept)
        return 0;
    for (const char *p = accept; *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t type = strcspn(p, ";, \t");
        if (type == strlen(LOGS_SSE_TYPE) && strncasecmp(p, LOGS_SSE_TYPE, type) == 0) {
            const char *q = strstr(p, "q=");
            return !(q && q < p + n && strtod(q + 2, NULL) <= 0);
        }
        p += n;
    }
    return 0;
}

static enum MHD_Result logs_bad(struct MHD_Connection *conn, http_request *req, const char *field,
                                const char *detail, const char *value)
{
    return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field,
                            "%s: %s (got '%.64s')", field, detail, value ? value : "");
}

static enum MHD_Result logs_answer_now(struct MHD_Connection *conn, http_request *req,
                                       const logs_buf *text, const acp_log_read *r)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(
        text->len, text->len ? text->data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    char next[24], dropped[24];
    snprintf(next, sizeof next, "%" PRIu64, r->next);
    snprintf(dropped, sizeof dropped, "%" PRIu64, r->dropped);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, LOGS_TEXT_TYPE);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(response, "X-Log-Next", next);
    MHD_add_response_header(response, "X-Log-Ended", r->ended ? "true" : "false");
    MHD_add_response_header(response, "X-Log-Dropped", dropped);
    return http_reply(conn, req, MHD_HTTP_OK, response);
}

enum MHD_Result logs_handle(server *srv, struct MHD_Connection *conn, http_request *req,
                            const acp_job_id *id, int head_only)
{
    logs_args a;
    memset(&a, 0, sizeof a);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, logs_arg, &a);
    if (a.bad)
        return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), a.bad,
                                "unknown query parameter '%.64s' (expected offset, follow)", a.bad);
    if (a.repeated)
        return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL),
                                a.repeated, "%s: given more than once", a.repeated);
    uint64_t offset = 0;
    if (a.offset_seen && logs_parse_offset(a.offset, &offset) != 0)
        return logs_bad(conn, req, "offset", "expected a byte offset (0 to 2^64-1)", a.offset);
    int follow = a.follow_seen ? logs_parse_follow(a.follow) : 0;
    if (follow < 0)
        return logs_bad(conn, req, "follow", "expected 1 or 0 (true or false)", a.follow);
    if (head_only)
        follow = 0; /* the headers of a plain read: a HEAD has no body to stream */
    int sse = follow && logs_wants_sse(conn);
    if (sse) {
        /* An EventSource that reconnects names the last event it had. */
        const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
        if (last && logs_parse_offset(last, &offset) != 0)
            return logs_bad(conn, req, "Last-Event-ID", "expected the id of an event (an offset)",
                            last);
    }

    logs_buf text = {NULL, 0, 0};
    acp_log_read r;
    int rc = logs_read(srv->platform, id, offset, follow ? LOGS_FOLLOW_BYTES : 0, 0, &text, &r);
    if (rc != 0) {
        free(text.data);
        const char *field =
            rc == ACP_EINVAL && strstr(acp_last_error(), "offset") ? "offset" : NULL;
        return http_reply_acp(conn, req, rc, field);
    }
    if (!follow) {
        enum MHD_Result result = logs_answer_now(conn, req, &text, &r);
        free(text.data);
        return result;
    }

    logs_stream *s = calloc(1, sizeof *s);
    if (!s) {
        free(text.data);
        return MHD_NO;
    }
    s->srv = srv;
    s->conn = conn;
    s->id = *id;
    s->sse = sse;
    s->next = offset;
    s->text = text;
    s->quiet_at = logs_now();
    if (logs_take(s, &r) != 0) {
        logs_stream_free(s);
        return MHD_NO;
    }
    struct MHD_Response *response = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, LOGS_BLOCK_BYTES, logs_reader, s, logs_stream_free);
    if (!response) {
        logs_stream_free(s);
        return MHD_NO;
    }
    char start[24];
    snprintf(start, sizeof start, "%" PRIu64, offset);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            sse ? LOGS_SSE_TYPE : LOGS_TEXT_TYPE);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* nginx would otherwise hold the stream back in its buffers. */
    MHD_add_response_header(response, "X-Accel-Buffering", "no");
    MHD_add_response_header(response, "X-Log-Start", start);
    return http_reply(conn, req, MHD_HTTP_OK, response);
}
