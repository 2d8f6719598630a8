/* s3_fault_server.c: an S3 endpoint that misbehaves on purpose (see
 * s3_fault_server.h).
 *
 * One thread accepts; each connection has a thread of its own that reads
 * the client's requests and relays between the client and its upstream
 * connection with poll(). Every poll() also watches a pipe that close()
 * writes to, so that a thread blocked on a silent client or a stalled
 * transfer ends at once and can be joined.
 *
 * Responses need no parsing to be relayed: an HTTP/1.1 client without
 * pipelining sends its next request only once the previous response has
 * arrived, so whatever the upstream sends belongs to the last request. Only
 * CUT mode follows the responses (head, Content-Length or chunked body) to
 * know where each body starts and ends. */
#include "s3_fault_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FS_RULES    16
#define FS_HEAD_MAX 16384 /* a request or response head */
#define FS_BUF      65536

typedef struct fs_rule {
    char method[16];
    char target[256];
    unsigned count;
    int status;
    char code[64];
    char document[1024]; /* the whole error document, or "" for one made of code */
} fs_rule;

typedef struct fs_conn {
    struct s3_fault_server *server;
    pthread_t thread;
    int client, up; /* sockets; up is -1 until a request is forwarded */
    struct fs_conn *next;
    /* Client bytes not yet handled. */
    char in[FS_BUF];
    size_t in_len;
    uint64_t body_left; /* of the current request, still to forward or drop */
    bool drop_body;     /* the request was answered here or never will be */
    /* CUT mode: the response being relayed. */
    bool cut, stalled, head_request;
    size_t cut_after, body_sent;
    char rhead[FS_HEAD_MAX];
    size_t rhead_len;
    enum { FS_RESP_HEAD, FS_RESP_LENGTH, FS_RESP_CHUNKED, FS_RESP_UNTIL_CLOSE } resp;
    uint64_t resp_left; /* LENGTH: body bytes; CHUNKED: bytes of the chunk */
    /* CHUNKED: where in the framing (size line, data, CRLF, trailer). */
    enum { FS_CHUNK_SIZE, FS_CHUNK_DATA, FS_CHUNK_CRLF, FS_CHUNK_TRAILER } chunk;
    size_t line_len; /* bytes of the current size or trailer line */
} fs_conn;

struct s3_fault_server {
    int listener;
    int port;
    int wake[2]; /* readable once close() has begun */
    struct sockaddr_in upstream;
    bool has_upstream;
    pthread_t acceptor;
    pthread_mutex_t lock; /* guards what follows */
    s3_fault_mode mode;
    size_t cut_after;
    fs_rule rules[FS_RULES];
    size_t rule_count;
    s3_fault_counts counts;
    fs_conn *conns;
};

/* ---- sockets ------------------------------------------------------------- */

/* Sends all of @data, unless close() begins or the peer goes first. */
static int fs_send(const s3_fault_server *s, int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        struct pollfd fds[2] = {{.fd = s->wake[0], .events = POLLIN},
                                {.fd = fd, .events = POLLOUT}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (fds[0].revents)
            return -1;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fs_connect_upstream(fs_conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)&c->server->upstream, sizeof c->server->upstream) !=
        0) {
        close(fd);
        return -1;
    }
    c->up = fd;
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

static const char *fs_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

/* @text with what XML reserves escaped (a target's query has '&'), cut to
 * fit @size. */
static void fs_xml_escape(const char *text, char *out, size_t size)
{
    size_t len = 0;
    for (; *text; text++) {
        const char *piece = *text == '&'   ? "&amp;"
                            : *text == '<' ? "&lt;"
                            : *text == '>' ? "&gt;"
                            : *text == '"' ? "&quot;"
                                           : NULL;
        size_t n = piece ? strlen(piece) : 1;
        if (len + n >= size)
            break;
        memcpy(out + len, piece ? piece : text, n);
        len += n;
    }
    out[len] = '\0';
}

/* An S3 error answer; @close: the connection ends after it. */
static int fs_answer(fs_conn *c, int status, const char *code, const char *document,
                     const char *target, bool head, bool close)
{
    char body[1100], resp[2200], resource[512];
    fs_xml_escape(target, resource, sizeof resource);
    int body_len =
        document && *document
            ? snprintf(body, sizeof body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>%s", document)
            : snprintf(body, sizeof body,
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code>"
                       "<Message>injected by the test's fault server</Message><Resource>%s"
                       "</Resource><RequestId>fault-server</RequestId></Error>",
                       code, resource);
    if (body_len < 0 || (size_t)body_len >= sizeof body)
        body_len = 0;
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                       "x-amz-request-id: fault-server\r\nConnection: %s\r\n\r\n%s",
                       status, fs_reason(status), head ? 0 : body_len,
                       close ? "close" : "keep-alive", head ? "" : body);
    if (len < 0 || (size_t)len >= sizeof resp)
        return -1;
    return fs_send(c->server, c->client, resp, (size_t)len);
}

/* The value of header @name in @head (length in *@len), or NULL. */
static const char *fs_header(const char *head, size_t head_len, const char *name, size_t *len)
{
    size_t name_len = strlen(name);
    const char *end = head + head_len;
    const char *line = memchr(head, '\n', head_len); /* past the first line */
    while (line && line + 1 < end) {
        line++;
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
            line[name_len] == ':') {
            const char *v = line + name_len + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        line = eol;
    }
    return NULL;
}

/* The rule that answers this request, counted; false when none does. */
static bool fs_rule_take(s3_fault_server *s, const char *method, const char *target, fs_rule *out)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->rule_count && !found; i++) {
        fs_rule *r = &s->rules[i];
        if (!strstr(method, r->method) || !strstr(target, r->target))
            continue;
        *out = *r;
        found = true;
        if (--r->count == 0) {
            memmove(r, r + 1, (s->rule_count - i - 1) * sizeof *r);
            s->rule_count--;
        }
    }
    if (found)
        s->counts.injected++;
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* A complete request head of @len bytes: answer, forward or hold it.
 * Returns -1 when the connection is to end. */
static int fs_request(fs_conn *c, const char *req, size_t len)
{
    s3_fault_server *s = c->server;
    char method[16] = "", target[1024] = "";
    const char *sp = memchr(req, ' ', len);
    const char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - req)) : NULL;
    if (sp && sp2 && (size_t)(sp - req) < sizeof method && (size_t)(sp2 - sp - 1) < sizeof target) {
        memcpy(method, req, (size_t)(sp - req));
        memcpy(target, sp + 1, (size_t)(sp2 - sp - 1));
    }
    size_t vlen = 0;
    const char *v = fs_header(req, len, "Content-Length", &vlen);
    c->body_left = v ? strtoull(v, NULL, 10) : 0;
    bool expect = fs_header(req, len, "Expect", &vlen) != NULL;
    bool head = strcmp(method, "HEAD") == 0;

    pthread_mutex_lock(&s->lock);
    s->counts.requests++;
    s3_fault_mode mode = s->mode;
    size_t cut_after = s->cut_after;
    pthread_mutex_unlock(&s->lock);

    if (!*method || (fs_header(req, len, "Transfer-Encoding", &vlen) && !head)) {
        fs_answer(c, 400, "BadRequest", NULL, target, head, true);
        return -1;
    }
    if (mode == S3_FAULT_SILENT) {
        c->drop_body = true; /* read, never answered */
        return 0;
    }
    fs_rule rule;
    if (fs_rule_take(s, method, target, &rule)) {
        /* A client waiting for "100 Continue" will not send its body:
         * the connection cannot go on. */
        c->drop_body = true;
        int rc = fs_answer(c, rule.status, rule.code, rule.document, target, head, expect);
        return rc != 0 || expect ? -1 : 0;
    }
    if (!s->has_upstream || (c->up < 0 && fs_connect_upstream(c) != 0)) {
        fs_answer(c, 502, "BadGateway", NULL, target, head, true);
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    s->counts.forwarded++;
    pthread_mutex_unlock(&s->lock);
    c->drop_body = false;
    c->cut = mode == S3_FAULT_CUT;
    if (c->cut && !c->stalled) {
        c->cut_after = cut_after;
        c->head_request = head;
        c->resp = FS_RESP_HEAD;
        c->rhead_len = 0;
    }
    return fs_send(s, c->up, req, len);
}

/* Handles what c->in holds. Returns -1 when the connection is to end. */
static int fs_client_bytes(fs_conn *c)
{
    size_t used = 0;
    int rc = 0;
    while (rc == 0 && used < c->in_len) {
        char *p = c->in + used;
        size_t avail = c->in_len - used;
        if (c->body_left > 0) {
            size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
            if (!c->drop_body)
                rc = fs_send(c->server, c->up, p, n);
            c->body_left -= n;
            used += n;
            continue;
        }
        char *end = NULL;
        for (size_t i = 3; i < avail && !end; i++)
            if (memcmp(p + i - 3, "\r\n\r\n", 4) == 0)
                end = p + i + 1;
        if (!end) {
            if (avail >= FS_HEAD_MAX)
                rc = -1; /* no head is this long */
            break;
        }
        used += (size_t)(end - p);
        rc = fs_request(c, p, (size_t)(end - p));
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    return rc;
}

/* ---- responses (CUT mode) ------------------------------------------------ */

/* Parses the response head in c->rhead: what body follows. */
static void fs_response_head(fs_conn *c)
{
    int status = 0;
    if (c->rhead_len > 12)
        status = atoi(c->rhead + 9); /* "HTTP/1.1 200" */
    size_t vlen = 0;
    const char *te = fs_header(c->rhead, c->rhead_len, "Transfer-Encoding", &vlen);
    const char *cl = fs_header(c->rhead, c->rhead_len, "Content-Length", &vlen);
    c->body_sent = 0;
    if (status / 100 == 1) {
        c->resp = FS_RESP_HEAD;
    } else if (c->head_request || status == 204 || status == 304) {
        c->resp = FS_RESP_HEAD;
    } else if (te && vlen >= 7 && strncasecmp(te, "chunked", 7) == 0) {
        c->resp = FS_RESP_CHUNKED;
        c->chunk = FS_CHUNK_SIZE;
        c->line_len = 0;
        c->resp_left = 0;
    } else if (cl) {
        c->resp_left = strtoull(cl, NULL, 10);
        c->resp = c->resp_left ? FS_RESP_LENGTH : FS_RESP_HEAD;
    } else {
        c->resp = FS_RESP_UNTIL_CLOSE;
    }
}

/* One byte of a chunked body: false once it ends. */
static bool fs_chunked_byte(fs_conn *c, char b)
{
    switch (c->chunk) {
    case FS_CHUNK_SIZE: /* line_len 1: past the hex digits (";ext", CR) */
        if (b == '\n') {
            c->chunk = c->resp_left ? FS_CHUNK_DATA : FS_CHUNK_TRAILER;
            c->line_len = 0;
        } else if (c->line_len == 0) {
            int d = b >= '0' && b <= '9'   ? b - '0'
                    : b >= 'a' && b <= 'f' ? b - 'a' + 10
                    : b >= 'A' && b <= 'F' ? b - 'A' + 10
                                           : -1;
            if (d >= 0)
                c->resp_left = c->resp_left * 16 + (uint64_t)d;
            else
                c->line_len = 1;
        }
        return true;
    case FS_CHUNK_DATA:
        if (--c->resp_left == 0)
            c->chunk = FS_CHUNK_CRLF;
        return true;
    case FS_CHUNK_CRLF:
        if (b == '\n') {
            c->chunk = FS_CHUNK_SIZE;
            c->line_len = 0;
        }
        return true;
    case FS_CHUNK_TRAILER:
        if (b == '\n') {
            if (c->line_len == 0)
                return false;
            c->line_len = 0;
        } else if (b != '\r') {
            c->line_len++;
        }
        return true;
    }
    return true;
}

/* Relays @n upstream bytes in CUT mode: heads whole, each body up to
 * cut_after bytes, then nothing at all. */
static int fs_cut_bytes(fs_conn *c, const char *p, size_t n)
{
    while (n > 0 && !c->stalled) {
        if (c->resp == FS_RESP_HEAD) {
            size_t take = 0;
            bool done = false;
            while (take < n && !done) {
                if (c->rhead_len == sizeof c->rhead)
                    return -1;
                c->rhead[c->rhead_len++] = p[take++];
                done = c->rhead_len >= 4 && memcmp(c->rhead + c->rhead_len - 4, "\r\n\r\n", 4) == 0;
            }
            if (fs_send(c->server, c->client, p, take) != 0)
                return -1;
            p += take;
            n -= take;
            if (done) {
                fs_response_head(c);
                c->rhead_len = 0;
            }
            continue;
        }
        size_t allowed = c->cut_after - c->body_sent;
        if (allowed == 0) {
            c->stalled = true;
            break;
        }
        size_t take = 0;
        bool ended = false;
        if (c->resp == FS_RESP_LENGTH) {
            take = n < c->resp_left ? n : (size_t)c->resp_left;
            take = take < allowed ? take : allowed;
            c->resp_left -= take;
            ended = c->resp_left == 0;
        } else if (c->resp == FS_RESP_CHUNKED) {
            while (take < n && take < allowed && !ended)
                ended = !fs_chunked_byte(c, p[take++]);
        } else {
            take = n < allowed ? n : allowed;
        }
        if (fs_send(c->server, c->client, p, take) != 0)
            return -1;
        c->body_sent += take;
        p += take;
        n -= take;
        if (ended)
            c->resp = FS_RESP_HEAD;
    }
    return 0;
}

/* ---- connections ----------------------------------------------------------- */

static void *fs_conn_main(void *arg)
{
    fs_conn *c = arg;
    s3_fault_server *s = c->server;
    char buf[FS_BUF];
    for (;;) {
        struct pollfd fds[3] = {{.fd = s->wake[0], .events = POLLIN},
                                {.fd = c->client, .events = POLLIN},
                                {.fd = c->up, .events = POLLIN}};
        /* Room for the client's bytes; a full buffer waits for the body to
         * drain (it always does: fs_client_bytes forwards it). */
        if (c->in_len == sizeof c->in)
            fds[1].events = 0;
        if (poll(fds, c->up >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (fds[0].revents)
            break;
        if (fds[1].revents) {
            ssize_t n = recv(c->client, c->in + c->in_len, sizeof c->in - c->in_len, 0);
            if (n <= 0)
                break; /* the client went */
            c->in_len += (size_t)n;
            if (fs_client_bytes(c) != 0)
                break;
        }
        if (c->up >= 0 && fds[2].revents) {
            ssize_t n = recv(c->up, buf, sizeof buf, 0);
            if (n <= 0) {
                close(c->up);
                c->up = -1;
                if (c->stalled)
                    continue; /* holds the client: nothing more comes */
                break;        /* the upstream ended the connection: so does the client's */
            }
            int rc = c->cut || c->stalled ? fs_cut_bytes(c, buf, (size_t)n)
                                          : fs_send(s, c->client, buf, (size_t)n);
            if (rc != 0)
                break;
        }
    }
    if (c->up >= 0)
        close(c->up);
    c->up = -1;
    shutdown(c->client, SHUT_RDWR);
    return NULL;
}

static void *fs_accept_main(void *arg)
{
    s3_fault_server *s = arg;
    for (;;) {
        struct pollfd fds[2] = {{.fd = s->wake[0], .events = POLLIN},
                                {.fd = s->listener, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (fds[0].revents)
            return NULL;
        int fd = accept4(s->listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        fs_conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->server = s;
        c->client = fd;
        c->up = -1;
        pthread_mutex_lock(&s->lock);
        s->counts.connections++;
        bool started = pthread_create(&c->thread, NULL, fs_conn_main, c) == 0;
        if (started) {
            c->next = s->conns;
            s->conns = c;
        }
        pthread_mutex_unlock(&s->lock);
        if (!started) {
            close(fd);
            free(c);
        }
    }
}

/* ---- the API ------------------------------------------------------------------ */

s3_fault_server *s3_fault_server_open(const char *upstream_host, int upstream_port)
{
    s3_fault_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->listener = -1;
    s->wake[0] = s->wake[1] = -1;
    if (upstream_host) {
        s->upstream.sin_family = AF_INET;
        s->upstream.sin_port = htons((uint16_t)upstream_port);
        if (inet_pton(AF_INET, upstream_host, &s->upstream.sin_addr) != 1) {
            fprintf(stderr, "# fault server: upstream %s is no IPv4 address\n", upstream_host);
            free(s);
            return NULL;
        }
        s->has_upstream = true;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t addr_len = sizeof addr;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    if (pipe2(s->wake, O_CLOEXEC) != 0 ||
        (s->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(s->listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->listener, 64) != 0 ||
        getsockname(s->listener, (struct sockaddr *)&addr, &addr_len) != 0 ||
        pthread_create(&s->acceptor, NULL, fs_accept_main, s) != 0) {
        fprintf(stderr, "# fault server: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        if (s->listener >= 0)
            close(s->listener);
        if (s->wake[0] >= 0) {
            close(s->wake[0]);
            close(s->wake[1]);
        }
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    s->port = ntohs(addr.sin_port);
    return s;
}

int s3_fault_server_port(const s3_fault_server *server)
{
    return server->port;
}

void s3_fault_server_mode(s3_fault_server *server, s3_fault_mode mode, size_t cut_after)
{
    pthread_mutex_lock(&server->lock);
    server->mode = mode;
    server->cut_after = cut_after;
    pthread_mutex_unlock(&server->lock);
}

static void fs_add_rule(s3_fault_server *server, const char *method, const char *target,
                        unsigned count, int status, const char *code, const char *document)
{
    pthread_mutex_lock(&server->lock);
    if (server->rule_count == FS_RULES) {
        fprintf(stderr, "fault server: more than %d rules\n", FS_RULES);
        abort();
    }
    fs_rule *r = &server->rules[server->rule_count++];
    *r = (fs_rule){.count = count ? count : 1, .status = status};
    snprintf(r->method, sizeof r->method, "%s", method ? method : "");
    snprintf(r->target, sizeof r->target, "%s", target ? target : "");
    snprintf(r->code, sizeof r->code, "%s", code ? code : "InternalError");
    snprintf(r->document, sizeof r->document, "%s", document ? document : "");
    pthread_mutex_unlock(&server->lock);
}

void s3_fault_server_fail(s3_fault_server *server, const char *method, const char *target,
                          unsigned count, int status, const char *code)
{
    fs_add_rule(server, method, target, count, status, code, NULL);
}

void s3_fault_server_fail_document(s3_fault_server *server, const char *method, const char *target,
                                   unsigned count, int status, const char *document)
{
    fs_add_rule(server, method, target, count, status, NULL, document);
}

s3_fault_counts s3_fault_server_counts(s3_fault_server *server)
{
    pthread_mutex_lock(&server->lock);
    s3_fault_counts counts = server->counts;
    pthread_mutex_unlock(&server->lock);
    return counts;
}

void s3_fault_server_close(s3_fault_server *server)
{
    if (!server)
        return;
    /* Every thread polls the pipe: one byte wakes them all, for good. */
    while (write(server->wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(server->acceptor, NULL);
    /* The acceptor is gone: the list no longer changes. */
    fs_conn *c = server->conns;
    while (c) {
        fs_conn *next = c->next;
        pthread_join(c->thread, NULL);
        close(c->client);
        free(c);
        c = next;
    }
    close(server->listener);
    close(server->wake[0]);
    close(server->wake[1]);
    pthread_mutex_destroy(&server->lock);
    free(server);
}
