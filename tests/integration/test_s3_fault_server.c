/* The fault server (s3_fault_server.h) between S3 clients and the radosgw
 * of scripts/stack: libs3 requests pass through unchanged (signatures stay
 * valid) over kept-alive connections; injected errors reach the caller as
 * S3 errors (a 503 SlowDown is retried by objects.c and then succeeds, a
 * 403 fails at once); SILENT mode never answers and CUT mode stops a body
 * mid-way, both seen from raw sockets with poll timeouts (libs3 has no
 * request timeout and would wait for ever). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "async_platform.h"
#include "objects.h"
#include "s3_fault_server.h"
#include "stack_env.h"
#include "transport_libs3.h"

#define GUARD_MS 20000 /* for what must arrive: only reached when broken */
#define QUIET_MS 500   /* how long "nothing more arrives" is watched */

static stack_env env;

typedef struct fx {
    s3_fault_server *server;
    objects *obj; /* libs3 through the server */
    acp_job_id id;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->server = s3_fault_server_open(env.s3_host, atoi(env.s3_port));
    if (!f->server) {
        free(f);
        return -1;
    }
    acp_s3_config cfg = {
        .host = "127.0.0.1",
        .port = s3_fault_server_port(f->server),
        .bucket = env.s3_bucket,
        .access_key = env.s3_access_key,
        .secret_key = env.s3_secret_key,
    };
    transport *t = NULL;
    char root[64], hex[ACP_JOB_ID_STRLEN];
    acp_job_id top;
    if (acp_job_id_generate(&top) != 0 || acp_job_id_generate(&f->id) != 0 ||
        transport_libs3_open(&t, &cfg) != 0) {
        s3_fault_server_close(f->server);
        free(f);
        return -1;
    }
    snprintf(root, sizeof root, "acp-test-%s/fault", acp_job_id_format(&top, hex));
    if (objects_open_transport(&f->obj, t, root, NULL, NULL) != 0) {
        fprintf(stderr, "# objects_open_transport: %s\n", acp_last_error());
        s3_fault_server_close(f->server);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    /* Whatever the case did to the server, the objects go directly. */
    s3_fault_server_mode(f->server, S3_FAULT_PROXY, 0);
    object_list list = {0};
    int rc = objects_list(f->obj, &f->id, &list);
    for (size_t i = 0; rc == 0 && i < list.count; i++)
        rc = objects_delete(f->obj, &f->id, list.items[i].name);
    object_list_free(&list);
    objects_close(f->obj);
    s3_fault_server_close(f->server);
    free(f);
    return rc;
}

static uint64_t requests(fx *f, int kind)
{
    uint64_t counts[OBJECTS_KINDS];
    objects_request_counts(f->obj, counts);
    return counts[kind];
}

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

typedef struct bytes {
    unsigned char *data;
    size_t len;
} bytes;

static int sink_to_bytes(void *userdata, const void *data, size_t len)
{
    bytes *b = userdata;
    unsigned char *grown = realloc(b->data, b->len + len);
    if (!grown)
        return ACP_ENOMEM;
    memcpy(grown + b->len, data, len);
    b->data = grown;
    b->len += len;
    return 0;
}

/* ---- raw HTTP ------------------------------------------------------------- */

static int raw_connect(fx *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)s3_fault_server_port(f->server)),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static void raw_send(int fd, const char *text)
{
    assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

typedef bool (*raw_done_fn)(const char *buf, size_t len, size_t want);

/* The head (up to the empty line) is there. */
static bool raw_head(const char *buf, size_t len, size_t want)
{
    (void)want;
    return memmem(buf, len, "\r\n\r\n", 4) != NULL;
}

/* A response with a Content-Length body is there whole. */
static bool raw_response(const char *buf, size_t len, size_t want)
{
    (void)want;
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    const char *cl = end ? strcasestr(buf, "Content-Length: ") : NULL;
    return cl && len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
}

/* A chunked response is there whole. */
static bool raw_chunked(const char *buf, size_t len, size_t want)
{
    (void)want;
    return len >= 7 && memcmp(buf + len - 7, "\r\n0\r\n\r\n", 7) == 0;
}

static bool raw_bytes(const char *buf, size_t len, size_t want)
{
    (void)buf;
    return len >= want;
}

/* Reads into @buf (from offset 0) until @done says so, each wait bounded by
 * GUARD_MS; the connection must stay open meanwhile. Returns the length
 * (the text is NUL-terminated). */
static size_t raw_read(int fd, char *buf, size_t size, raw_done_fn done, size_t want)
{
    size_t len = 0;
    buf[0] = '\0';
    while (!done(buf, len, want)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, GUARD_MS) != 1)
            fail_msg("waited %d ms after %zu bytes: '%s'", GUARD_MS, len, buf);
        ssize_t got = recv(fd, buf + len, size - 1 - len, 0);
        if (got <= 0)
            fail_msg("the connection ended after %zu bytes: '%s'", len, buf);
        len += (size_t)got;
        buf[len] = '\0';
        assert_true(len < size - 1);
    }
    return len;
}

/* Nothing arrives on @fd for QUIET_MS, and it stays open. */
static void raw_quiet(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, QUIET_MS);
    if (n != 0) {
        char c;
        ssize_t got = recv(fd, &c, 1, MSG_DONTWAIT);
        fail_msg("%s", got == 0 ? "the connection was closed" : "more bytes arrived");
    }
}

/* ---- cases ------------------------------------------------------------------ */

static void requests_pass_unchanged_over_kept_alive_connections(void **state)
{
    fx *f = *state;
    s3_fault_counts before = s3_fault_server_counts(f->server);
    static const char *const names[] = {"a.txt", "b.bin", "c-d_e.f"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(objects_put(f->obj, &f->id, names[i], names[i], strlen(names[i])), 0);
    bytes got = {0};
    assert_int_equal(objects_read(f->obj, &f->id, "b.bin", sink_to_bytes, &got), 0);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "b.bin", 5);
    free(got.data);
    object_list list = {0};
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, 3);
    object_list_free(&list);

    s3_fault_counts after = s3_fault_server_counts(f->server);
    unsigned seen = after.requests - before.requests;
    assert_true(seen >= 5);
    assert_int_equal(after.forwarded - before.forwarded, seen);
    assert_int_equal(after.injected, 0);
    /* Kept alive: far fewer connections than requests. */
    assert_true(after.connections <= 2);
    assert_true(after.connections < after.requests);
}

static void slowdown_is_retried_and_then_succeeds(void **state)
{
    fx *f = *state;
    s3_fault_server_fail(f->server, "PUT", "retried.txt", 1, 503, "SlowDown");
    uint64_t puts = requests(f, OBJECTS_PUT);
    s3_fault_counts before = s3_fault_server_counts(f->server);
    assert_int_equal(objects_put(f->obj, &f->id, "retried.txt", "after", 5), 0);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 2);
    s3_fault_counts after = s3_fault_server_counts(f->server);
    assert_int_equal(after.injected - before.injected, 1);
    assert_int_equal(after.forwarded - before.forwarded, 1);
    bytes got = {0};
    assert_int_equal(objects_read(f->obj, &f->id, "retried.txt", sink_to_bytes, &got), 0);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "after", 5);
    free(got.data);
}

static void access_denied_fails_at_once(void **state)
{
    fx *f = *state;
    assert_int_equal(objects_put(f->obj, &f->id, "secret.txt", "s", 1), 0);
    s3_fault_server_fail(f->server, "GET", "secret.txt", 3, 403, "AccessDenied");
    uint64_t gets = requests(f, OBJECTS_GET);
    bytes got = {0};
    assert_int_equal(objects_read(f->obj, &f->id, "secret.txt", sink_to_bytes, &got), ACP_ESTORAGE);
    free(got.data);
    assert_int_equal(requests(f, OBJECTS_GET) - gets, 1);
    assert_error_mentions("AccessDenied");
    assert_int_equal(s3_fault_server_counts(f->server).injected, 1);
}

static void rules_match_method_and_target(void **state)
{
    fx *f = *state;
    s3_fault_server_fail(f->server, "PUT", "/two", 1, 500, "InternalError");
    s3_fault_server_fail(f->server, "HEAD", NULL, 1, 404, "NoSuchKey");
    /* A PUT of another key, and a GET of "two", pass. */
    assert_int_equal(objects_put(f->obj, &f->id, "one", "1", 1), 0);
    assert_int_equal(s3_fault_server_counts(f->server).injected, 0);
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put(f->obj, &f->id, "two", "2", 1), 0); /* 500, then again */
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 2);
    assert_int_equal(s3_fault_server_counts(f->server).injected, 1);
    bool exists = true;
    uint64_t size = 0;
    assert_int_equal(objects_stat(f->obj, &f->id, "one", &exists, &size, NULL), 0);
    assert_false(exists); /* the HEAD rule */
    assert_int_equal(objects_stat(f->obj, &f->id, "one", &exists, &size, NULL), 0);
    assert_true(exists);
    assert_int_equal(size, 1);
    assert_int_equal(s3_fault_server_counts(f->server).injected, 2);
}

static void an_injected_answer_is_an_s3_error_and_keeps_the_connection(void **state)
{
    fx *f = *state;
    s3_fault_server_fail(f->server, NULL, "/injected", 1, 503, "SlowDown");
    s3_fault_counts before = s3_fault_server_counts(f->server);
    int fd = raw_connect(f);
    char path[256];
    snprintf(path, sizeof path,
             "PUT /%s/injected?partNumber=2&uploadId=x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Length: 3\r\n\r\nabc",
             env.s3_bucket);
    raw_send(fd, path);
    char buf[8192];
    size_t len = raw_read(fd, buf, sizeof buf, raw_response, 0);
    if (strncmp(buf, "HTTP/1.1 503 ", 13) != 0 || !strstr(buf, "<Code>SlowDown</Code>") ||
        !strstr(buf, "Content-Type: application/xml") || !strstr(buf, "<Resource>/") ||
        !strstr(buf, "partNumber=2&amp;uploadId=x</Resource>"))
        fail_msg("not an S3 SlowDown: '%.*s'", (int)len, buf);
    /* The same connection: the next request goes to radosgw, which refuses
     * it unsigned. */
    snprintf(path, sizeof path, "GET /%s/injected HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
             env.s3_bucket);
    raw_send(fd, path);
    len = raw_read(fd, buf, sizeof buf, raw_response, 0);
    if (strncmp(buf, "HTTP/1.1 403 ", 13) != 0 || !strstr(buf, "<Code>AccessDenied</Code>"))
        fail_msg("not radosgw's refusal: '%.*s'", (int)len, buf);
    close(fd);
    s3_fault_counts after = s3_fault_server_counts(f->server);
    assert_int_equal(after.connections - before.connections, 1);
    assert_int_equal(after.requests - before.requests, 2);
    assert_int_equal(after.injected - before.injected, 1);
    assert_int_equal(after.forwarded - before.forwarded, 1);
}

static void silent_mode_never_answers(void **state)
{
    (void)state;
    /* A server of its own, without an upstream: SILENT needs none. */
    s3_fault_server *silent = s3_fault_server_open(NULL, 0);
    assert_non_null(silent);
    s3_fault_server_mode(silent, S3_FAULT_SILENT, 0);
    fx other = {.server = silent};
    int fd = raw_connect(&other);
    raw_send(fd, "PUT /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\nbody");
    raw_send(fd, "GET /b/k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    raw_quiet(fd);
    /* Both requests were read (the body of the first one too). */
    for (int i = 0; i < 100 && s3_fault_server_counts(silent).requests < 2; i++)
        usleep(10000);
    s3_fault_counts counts = s3_fault_server_counts(silent);
    assert_int_equal(counts.connections, 1);
    assert_int_equal(counts.requests, 2);
    assert_int_equal(counts.forwarded, 0);

    /* Closing the server ends the held connection (and does not hang). */
    s3_fault_server_close(silent);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, GUARD_MS), 1);
    char c;
    assert_true(recv(fd, &c, 1, 0) <= 0);
    close(fd);
}

/* The value of Content-Length in a response head. */
static size_t content_length(const char *head)
{
    const char *cl = strcasestr(head, "Content-Length: ");
    assert_non_null(cl);
    return strtoul(cl + 16, NULL, 10);
}

static void cut_mode_stops_a_body_and_holds_the_connection(void **state)
{
    fx *f = *state;
    s3_fault_server_mode(f->server, S3_FAULT_CUT, 100);
    int fd = raw_connect(f);
    char req[256];
    /* Unsigned: radosgw's 403 has a body of a few hundred bytes. */
    snprintf(req, sizeof req, "GET /%s/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", env.s3_bucket);
    raw_send(fd, req);
    char buf[8192];
    size_t len = raw_read(fd, buf, sizeof buf, raw_head, 0);
    size_t head = (size_t)((const char *)memmem(buf, len, "\r\n\r\n", 4) + 4 - buf);
    assert_true(content_length(buf) > 100);
    if (len < head + 100) {
        size_t more = raw_read(fd, buf + len, sizeof buf - len, raw_bytes, head + 100 - len);
        len += more;
    }
    /* The head and 100 bytes of the body came; nothing more comes, and the
     * connection stays open. */
    assert_int_equal(len, head + 100);
    raw_quiet(fd);
    close(fd);

    /* A limit above the body: whole responses, chunked ones too, and the
     * connection goes on. */
    s3_fault_server_mode(f->server, S3_FAULT_CUT, 100000);
    fd = raw_connect(f);
    for (int i = 0; i < 2; i++) {
        raw_send(fd, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); /* a chunked listing */
        len = raw_read(fd, buf, sizeof buf, raw_chunked, 0);
        assert_non_null(strcasestr(buf, "Transfer-Encoding: chunked"));
        assert_non_null(strstr(buf, "</ListAllMyBucketsResult>"));
    }
    raw_quiet(fd);
    close(fd);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(requests_pass_unchanged_over_kept_alive_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(slowdown_is_retried_and_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(access_denied_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(rules_match_method_and_target, setup, teardown),
        cmocka_unit_test_setup_teardown(an_injected_answer_is_an_s3_error_and_keeps_the_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(silent_mode_never_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(cut_mode_stops_a_body_and_holds_the_connection, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
