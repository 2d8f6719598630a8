/* The example server's request handling: http.c (the Content-Length check,
 * reading the body in pieces, the size limit) and api.c (routing, the
 * method check, the checks of a submission), driven through the handler
 * that http_start() registers, with fake_mhd.c in place of libmicrohttpd.
 * No platform runs: a request that gets as far as the library is answered
 * with the library's refusal of a NULL platform (400), so what is fuzzed is
 * everything before it.
 *
 * Input: byte 0 the size of the pieces the body arrives in (0: one piece),
 * byte 1 how Content-Length is sent (bit 0: the body's true length, bit 1:
 * the text of line 4), then the lines METHOD, PATH, QUERY ("a=1&b"),
 * CONTENT-LENGTH, and the body (the rest). max_body_bytes is 1024.
 *
 * Properties: no crash, leak or undefined behaviour; every request gets
 * exactly one answer, or is cut off only when its body is over 8 times the
 * limit; the status is one docs/http-api.adoc lists and never 5xx; a path
 * no route takes gets 404, a method the route does not take 405 with the
 * right Allow header, a body over the limit 413, and nothing else does;
 * every answer but 204 is JSON, and a failure's is {"error", "detail"}
 * with strings (the dashboard's files: their own Content-Type). GET /health is left out: it probes
 * the services; so is GET /metrics, which needs a platform (without one it answers 500).
 * ACP_FUZZ_VERBOSE=1 prints each request and its answer. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake_mhd.h"
#include "fuzz.h"
#include "http.h"
#include "server.h"
#include "settings.h"
#include "slog.h"
#include "ui.h"

#define BODY_LIMIT 1024

static settings cfg;
static server srv;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    slog_set_level(ACP_LOG_ERROR);
    static const char text[] =
        "{\"max_body_bytes\": 1024,"
        " \"database\": {\"host\": \"h\", \"dbname\": \"d\", \"user\": \"u\", \"password\": \"p\"},"
        " \"s3\": {\"host\": \"h\", \"bucket\": \"acp-test\", \"access_key\": \"a\","
        " \"secret_key\": \"s\"},"
        " \"rabbitmq\": {\"host\": \"h\", \"user\": \"u\", \"password\": \"p\"},"
        " \"queues\": [{\"id\": \"default\"}, {\"id\": \"heavy\"}],"
        " \"executors\": {\"command\": {\"programs\": {\"wc\": \"/usr/bin/wc\"}}}}";
    int fd = memfd_create("fuzz-http-settings", 0);
    char path[64], err[1024];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1)) {
        perror("fuzz_http_request: settings file");
        abort();
    }
    if (settings_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_http_request: settings: %s\n", err);
        abort();
    }
    close(fd);
    srv.cfg = &cfg;
    srv.platform = NULL;
    if (!http_start(&srv, -1, err, sizeof err) || !fake_mhd_handler || !fake_mhd_completed) {
        fprintf(stderr, "fuzz_http_request: http_start: %s\n", err);
        abort();
    }
    return 0;
}

/* The dashboard's paths (docs/dashboard.adoc): "/" is its index.html, and
 * "/ui/NAME" each of its embedded files by exact name. */
static const ui_file *reference_ui(const char *path)
{
    const char *name = strcmp(path, "/") == 0          ? "index.html"
                       : strncmp(path, "/ui/", 4) == 0 ? path + 4
                                                       : NULL;
    for (size_t i = 0; name && i < ui_file_count; i++)
        if (strcmp(name, ui_files[i].name) == 0)
            return &ui_files[i];
    return NULL;
}

/* The routes of docs/http-api.adoc: NULL for a path none takes, else the
 * methods it takes, as the Allow header lists them. */
static const char *reference_allowed(const char *path, bool *health)
{
    *health = false;
    if (reference_ui(path))
        return "GET, HEAD";
    if (path[0] != '/' || strncmp(path, "/ui/", 4) == 0)
        return NULL;
    const char *seg[6];
    size_t len[6], n = 0;
    const char *p = path + 1;
    if (!*p)
        return NULL;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        if (l == 0 || n == 5)
            return NULL;
        seg[n] = p;
        len[n++] = l;
        if (!slash)
            break;
        p = slash + 1;
    }
#define SEG(i, word) (len[i] == strlen(word) && strncmp(seg[i], word, len[i]) == 0)
    if (n == 1 && (SEG(0, "health") || SEG(0, "metrics"))) {
        *health = true;
        return "GET, HEAD";
    }
    if (n == 1 && SEG(0, "queues"))
        return "GET, HEAD";
    if (!SEG(0, "jobs"))
        return NULL;
    if (n == 1)
        return "GET, HEAD, POST";
    if (n == 2)
        return "GET, HEAD, DELETE";
    if (n == 3 && SEG(2, "files"))
        return "GET, HEAD";
    if (n == 3 && (SEG(2, "expire") || SEG(2, "cancel")))
        return "POST";
    if (n == 3 && SEG(2, "log"))
        return "GET, HEAD";
    if (n == 4 && SEG(2, "files"))
        return "GET, HEAD";
    return NULL;
#undef SEG
}

static bool method_in(const char *method, const char *allowed)
{
    size_t n = strlen(method);
    if (n == 0)
        return false;
    for (const char *p = allowed; (p = strstr(p, method)) != NULL; p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* Line @index of @text (up to @end), NUL-terminated in @out. */
static const char *next_line(const char **text, const char *end, char *out, size_t outlen)
{
    const char *nl = memchr(*text, '\n', (size_t)(end - *text));
    size_t n = nl ? (size_t)(nl - *text) : (size_t)(end - *text);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, *text, n);
    out[n] = '\0';
    /* an embedded NUL ends the line early, as it would in a header */
    *text = nl ? nl + 1 : end;
    return out;
}

static void check_answer(const struct MHD_Connection *conn, const ui_file *ui)
{
    if (conn->status == 204)
        return;
    if (ui && conn->status == 200) {
        FUZZ_CHECK(conn->content_type && strcmp(conn->content_type, ui->content_type) == 0,
                   "the dashboard's %s with Content-Type %s", ui->name,
                   conn->content_type ? conn->content_type : "none");
        return;
    }
    if (!conn->body)
        return; /* a file download, from a callback */
    FUZZ_CHECK(conn->content_type && strcmp(conn->content_type, "application/json") == 0,
               "status %u without Content-Type application/json", conn->status);
    json_object *doc = json_tokener_parse(conn->body);
    FUZZ_CHECK(doc && json_object_is_type(doc, json_type_object),
               "status %u: not a JSON object: %s", conn->status, conn->body);
    if (conn->status >= 400) {
        json_object *v;
        FUZZ_CHECK(json_object_object_get_ex(doc, "error", &v) &&
                       json_object_is_type(v, json_type_string) &&
                       json_object_get_string_len(v) > 0,
                   "status %u without an error: %s", conn->status, conn->body);
        FUZZ_CHECK(json_object_object_get_ex(doc, "detail", &v) &&
                       json_object_is_type(v, json_type_string),
                   "status %u without a detail: %s", conn->status, conn->body);
        FUZZ_CHECK(!json_object_object_get_ex(doc, "field", &v) ||
                       json_object_is_type(v, json_type_string),
                   "status %u with a field that is no string: %s", conn->status, conn->body);
    }
    json_object_put(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t piece = data[0];
    unsigned how = data[1];
    const char *text = (const char *)data + 2, *end = (const char *)data + size;
    char method[64], path[512], query[512], length_line[64];
    next_line(&text, end, method, sizeof method);
    next_line(&text, end, path, sizeof path);
    /* libmicrohttpd hands the handler the path its unescape callback made. */
    if (fake_mhd_unescape)
        fake_mhd_unescape(NULL, NULL, path);
    next_line(&text, end, query, sizeof query);
    next_line(&text, end, length_line, sizeof length_line);
    const char *body = text;
    size_t body_len = (size_t)(end - text);

    bool health;
    const char *allowed = reference_allowed(path, &health);
    if (health && method_in(method, allowed))
        return 0;

    struct MHD_Connection conn;
    memset(&conn, 0, sizeof conn);
    char *save = NULL;
    for (char *arg = strtok_r(query, "&", &save); arg && conn.arg_count < FAKE_MHD_MAX_ARGS;
         arg = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(arg, '=');
        if (eq)
            *eq = '\0';
        conn.arg_keys[conn.arg_count] = arg;
        conn.arg_values[conn.arg_count++] = eq ? eq + 1 : NULL;
    }
    /* RFC 9112: an HTTP/1.1 request without Host is answered 400. */
    conn.host = how & 4 ? NULL : "fuzz.example";
    char true_length[32];
    snprintf(true_length, sizeof true_length, "%zu", body_len);
    if (how & 1)
        conn.content_length = true_length;
    else if (how & 2)
        conn.content_length = length_line;

    /* What the answer must be, from the documentation. */
    bool length_known = false, length_over = false;
    if (conn.content_length && conn.content_length[0] &&
        strspn(conn.content_length, "0123456789") == strlen(conn.content_length)) {
        errno = 0;
        unsigned long long n = strtoull(conn.content_length, NULL, 10);
        length_known = true;
        length_over = errno == ERANGE || n > BODY_LIMIT;
    }

    void *con_cls = NULL;
    size_t upload = 0;
    enum MHD_Result r = fake_mhd_handler(fake_mhd_handler_cls, &conn, path, method, "HTTP/1.1",
                                         NULL, &upload, &con_cls);
    FUZZ_CHECK(r == MHD_YES, "the first call (headers) returned MHD_NO");
    bool cut_off = false;
    if (!conn.queued) {
        for (size_t at = 0; at < body_len && r == MHD_YES;) {
            size_t n = piece && piece < body_len - at ? piece : body_len - at;
            upload = n;
            r = fake_mhd_handler(fake_mhd_handler_cls, &conn, path, method, "HTTP/1.1", body + at,
                                 &upload, &con_cls);
            FUZZ_CHECK(r == MHD_NO || upload == 0, "%zu bytes of the body left unread", upload);
            at += n;
        }
        if (r == MHD_YES) {
            upload = 0;
            r = fake_mhd_handler(fake_mhd_handler_cls, &conn, path, method, "HTTP/1.1", NULL,
                                 &upload, &con_cls);
            FUZZ_CHECK(r == MHD_YES, "%s %s: the handler gave up without an answer", method, path);
        } else {
            cut_off = true;
        }
    }
    fake_mhd_completed(fake_mhd_completed_cls, &conn, &con_cls,
                       r == MHD_YES ? MHD_REQUEST_TERMINATED_COMPLETED_OK
                                    : MHD_REQUEST_TERMINATED_WITH_ERROR);
    FUZZ_CHECK(!con_cls, "the request's state was not released");

    if (cut_off) {
        FUZZ_CHECK(conn.queued == 0 && body_len > (size_t)BODY_LIMIT * 8,
                   "a body of %zu bytes was cut off", body_len);
        fake_mhd_connection_clear(&conn);
        return 0;
    }
    FUZZ_CHECK(conn.queued == 1, "%s %s: %d answers", method, path, conn.queued);
    unsigned s = conn.status;
    if (!conn.host) {
        FUZZ_CHECK(s == 400, "%s %s without Host: status %u", method, path, s);
        fake_mhd_connection_clear(&conn);
        return 0;
    }
    FUZZ_CHECK(s == 200 || s == 202 || s == 204 || s == 400 || s == 404 || s == 405 || s == 409 ||
                   s == 413,
               "%s %s: status %u for a bad request", method, path, s);
    bool over = length_over || body_len > BODY_LIMIT;
    if (length_known || !conn.content_length)
        FUZZ_CHECK((s == 413) == over, "%s %s: status %u for a body of %zu bytes (length %s)",
                   method, path, s, body_len, conn.content_length ? conn.content_length : "none");
    if (s != 413) {
        if (!allowed)
            FUZZ_CHECK(s == 404, "%s %s: status %u on a path no route takes", method, path, s);
        else if (!method_in(method, allowed))
            FUZZ_CHECK(s == 405 && conn.allow && strcmp(conn.allow, allowed) == 0,
                       "%s %s: status %u (Allow: %s) for a method the route does not take", method,
                       path, s, conn.allow ? conn.allow : "none");
        else
            FUZZ_CHECK(s != 405, "%s %s: 405 for a method the route takes", method, path);
    }
    if (getenv("ACP_FUZZ_VERBOSE"))
        fprintf(stderr, "%s %s -> %u %s\n", method, path, s, conn.body ? conn.body : "");
    check_answer(&conn, reference_ui(path));
    fake_mhd_connection_clear(&conn);
    return 0;
}
