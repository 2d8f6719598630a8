/* The HTTP side of acp: one libcurl easy handle reused for every request
 * (so that `wait` and `list` keep one connection), the token header, TLS
 * with a private CA, and the mapping of transport failures and HTTP
 * statuses to exit statuses. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Bounds for ordinary requests: an answer of this API takes milliseconds,
 * so a minute means the server is stuck rather than busy. */
#define CONNECT_TIMEOUT_S 10L
#define REQUEST_TIMEOUT_S 60L
/* A download or log read that delivers nothing for this long is given up. */
#define STALL_TIMEOUT_S 60L
#define MAX_TOKEN_BYTES 256

void buffer_append(struct buffer *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) {
            fputs("acp: out of memory\n", stderr);
            exit(EXIT_ERROR);
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void reply_free(struct reply *r)
{
    buffer_free(&r->body);
}

static void reply_reset(struct reply *r)
{
    buffer_free(&r->body);
    r->status = 0;
    r->log_next = r->log_start = -1;
    r->log_ended = false;
}

/* The token file's first line, without its line end. A token is sent in a
 * header, so anything but printable ASCII without spaces is refused rather
 * than sent (a stray CR would end the header early). */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        error_line("--token-file %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        fprintf(stderr, "acp: warning: token file %s is readable by other users\n", path);
    char line[MAX_TOKEN_BYTES + 3];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (!got) {
        error_line("--token-file %s: the file is empty", path);
        return NULL;
    }
    line[strcspn(line, "\r\n")] = '\0';
    return strdup(line);
}

static bool token_ok(const char *token, const char *source)
{
    size_t n = strlen(token);
    if (n == 0 || n > MAX_TOKEN_BYTES) {
        error_line("%s: the token must have 1..%d characters", source, MAX_TOKEN_BYTES);
        return false;
    }
    for (const char *p = token; *p; p++) {
        if (*p <= ' ' || *p > '~') {
            error_line("%s: the token may hold printable ASCII characters only, without spaces",
                       source);
            return false;
        }
    }
    return true;
}

int client_init(struct client *c, const char *server, const char *token_file, const char *cacert)
{
    memset(c, 0, sizeof *c);
    if (strncmp(server, "http://", 7) != 0 && strncmp(server, "https://", 8) != 0) {
        error_line("server URL %s: expected http://HOST:PORT or https://HOST:PORT", server);
        return EXIT_USAGE;
    }
    c->base = strdup(server);
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';

    char *token = NULL;
    const char *source = NULL;
    if (token_file) {
        token = read_token(token_file);
        if (!token)
            return EXIT_USAGE;
        source = token_file;
    } else if (getenv("ACP_TOKEN") && *getenv("ACP_TOKEN")) {
        token = strdup(getenv("ACP_TOKEN"));
        source = "ACP_TOKEN";
    }
    if (token) {
        bool ok = token_ok(token, source);
        if (ok) {
            size_t size = strlen(token) + 32;
            c->auth = malloc(size);
            snprintf(c->auth, size, "Authorization: Bearer %s", token);
        }
        explicit_bzero(token, strlen(token));
        free(token);
        if (!ok)
            return EXIT_USAGE;
    }
    c->cacert = cacert;
    c->curl = curl_easy_init();
    if (!c->curl) {
        error_line("cannot initialise libcurl");
        return EXIT_ERROR;
    }
    return EXIT_OK;
}

void client_free(struct client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->auth) {
        explicit_bzero(c->auth, strlen(c->auth));
        free(c->auth);
    }
    free(c->base);
    memset(c, 0, sizeof *c);
}

/* ---- callbacks ---- */

struct transfer {
    struct client *c;
    struct reply *r;
    const struct stream_opts *o;
    bool aborted_by_sink;
};

static long long header_number(const char *value)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    return (errno || end == value || v < 0) ? -1 : v;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * n;
    char line[256];
    if (len >= sizeof line)
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    /* A new status line (after a 100 Continue) starts the headers over. */
    if (strncmp(line, "HTTP/", 5) == 0) {
        t->r->log_next = t->r->log_start = -1;
        t->r->log_ended = false;
        return len;
    }
    char *colon = strchr(line, ':');
    if (!colon)
        return len;
    *colon = '\0';
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (strcasecmp(line, "X-Log-Next") == 0)
        t->r->log_next = header_number(value);
    else if (strcasecmp(line, "X-Log-Start") == 0)
        t->r->log_start = header_number(value);
    else if (strcasecmp(line, "X-Log-Ended") == 0)
        t->r->log_ended = strcasecmp(value, "true") == 0;
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &status);
    /* Only a success goes to the sink; an error's body is kept to explain it. */
    if (t->o && t->o->sink && status >= 200 && status < 300) {
        if (!t->o->sink(p, len, t->o->ctx)) {
            t->aborted_by_sink = true;
            return 0;
        }
        return len;
    }
    buffer_append(&t->r->body, p, len);
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    struct transfer *t = ud;
    long status = 0;
    curl_easy_getinfo(t->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300)
        return 0;
    return t->o->progress(dlnow, dltotal, t->o->ctx) ? 0 : 1;
}

/* ---- requests ---- */

static struct curl_slist *prepare(struct client *c, const char *path, struct transfer *t,
                                  long timeout)
{
    CURL *h = c->curl;
    curl_easy_reset(h); /* keeps the connection cache */
    size_t size = strlen(c->base) + strlen(path) + 1;
    char *url = malloc(size);
    snprintf(url, size, "%s%s", c->base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url); /* libcurl keeps its own copy */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "acp/" ACP_CLI_VERSION);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    if (timeout > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout);
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    c->errbuf[0] = '\0';
    struct curl_slist *headers = NULL;
    if (c->auth)
        headers = curl_slist_append(headers, c->auth);
    return headers;
}

static bool unreachable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return true;
    default:
        return false;
    }
}

static int perform(struct client *c, struct transfer *t, struct curl_slist *headers)
{
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(c->curl);
    curl_slist_free_all(headers);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &t->r->status);
    if (rc == CURLE_OK)
        return EXIT_OK;
    if (t->aborted_by_sink || rc == CURLE_ABORTED_BY_CALLBACK)
        return EXIT_ERROR; /* the sink or progress said why */
    if (!(t->o && t->o->quiet))
        error_line("server %s: %s", c->base, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    return unreachable(rc) ? EXIT_UNREACHABLE : EXIT_ERROR;
}

int client_call(struct client *c, const char *method, const char *path, const char *json_body,
                struct reply *r)
{
    reply_reset(r);
    struct transfer t = {.c = c, .r = r};
    struct curl_slist *headers = prepare(c, path, &t, REQUEST_TIMEOUT_S);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, json_body ? json_body : "");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)(json_body ? strlen(json_body) : 0));
        if (json_body)
            headers = curl_slist_append(headers, "Content-Type: application/json");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    return perform(c, &t, headers);
}

int client_stream(struct client *c, const char *path, const struct stream_opts *o, struct reply *r)
{
    reply_reset(r);
    struct transfer t = {.c = c, .r = r, .o = o};
    struct curl_slist *headers = prepare(c, path, &t, 0);
    if (!o->no_timeout) {
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
    }
    if (o->progress) {
        curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, &t);
    }
    return perform(c, &t, headers);
}

int client_post_multipart(struct client *c, const char *path, const char *json_body,
                          const struct input_file *inputs, size_t n_inputs, struct reply *r)
{
    reply_reset(r);
    struct transfer t = {.c = c, .r = r};
    struct curl_slist *headers = prepare(c, path, &t, 0);
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
    curl_mime *mime = curl_mime_init(c->curl);
    curl_mimepart *part = curl_mime_addpart(mime);
    curl_mime_name(part, "job");
    curl_mime_data(part, json_body, CURL_ZERO_TERMINATED);
    curl_mime_type(part, "application/json");
    for (size_t i = 0; i < n_inputs; i++) {
        part = curl_mime_addpart(mime);
        curl_mime_name(part, "input");
        if (curl_mime_filedata(part, inputs[i].path) != CURLE_OK) {
            error_line("--input %s=%s: cannot read the file", inputs[i].name, inputs[i].path);
            curl_mime_free(mime);
            curl_slist_free_all(headers);
            return EXIT_ERROR;
        }
        /* filedata names the part after the local file; the job sees NAME. */
        curl_mime_filename(part, inputs[i].name);
        curl_mime_type(part, "application/octet-stream");
    }
    curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, mime);
    int rc = perform(c, &t, headers);
    curl_mime_free(mime);
    return rc;
}

/* ---- answers ---- */

json_object *reply_json(const struct reply *r, const char *what)
{
    json_object *doc = r->body.data ? json_tokener_parse(r->body.data) : NULL;
    if (!doc)
        error_line("%s: the server's answer (HTTP %ld) is not JSON", what, r->status);
    return doc;
}

static int status_exit(long status)
{
    if (status == 400 || status == 413)
        return EXIT_USAGE;
    if (status == 401 || status == 403)
        return EXIT_AUTH;
    if (status == 404)
        return EXIT_NOT_FOUND;
    if (status == 409)
        return EXIT_CONFLICT;
    return EXIT_ERROR;
}

int reply_exit(const struct reply *r, const char *what)
{
    if (r->status >= 200 && r->status < 300)
        return EXIT_OK;
    json_object *doc = r->body.data ? json_tokener_parse(r->body.data) : NULL;
    const char *error = jstr(doc, "error");
    const char *detail = jstr(doc, "detail");
    const char *field = jstr(doc, "field");
    char extra[160] = "";
    if (field)
        snprintf(extra, sizeof extra, "field %s, ", field);
    if (error && detail)
        error_line("%s: %s: %s (%sHTTP %ld)", what, error, detail, extra, r->status);
    else if (error)
        error_line("%s: %s (%sHTTP %ld)", what, error, extra, r->status);
    else
        error_line("%s: the server answered HTTP %ld", what, r->status);
    if (r->status == 401)
        fputs("acp: give a token with --token-file FILE or ACP_TOKEN\n", stderr);
    json_object_put(doc);
    return status_exit(r->status);
}
