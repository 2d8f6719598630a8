/* The libcurl S3 transport (src/transport_curl.c, Signature V4) against the
 * radosgw of scripts/stack, and against tiny servers of its own
 * (tiny_server.c) for what radosgw does not do: stay silent, or show the
 * request it received.
 *
 * Every test works under its own random prefix and removes what it
 * creates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "async_platform.h"
#include "clock.h"
#include "config_s3.h"
#include "stack_env.h"
#include "tiny_server.h"
#include "transport_curl.h"

static stack_env env;

/* ---- helpers --------------------------------------------------------------- */

static acp_s3_config stack_s3(void)
{
    return (acp_s3_config){
        .host = env.s3_host,
        .port = atoi(env.s3_port),
        .bucket = env.s3_bucket,
        .access_key = env.s3_access_key,
        .secret_key = env.s3_secret_key,
    };
}

static acp_s3_client_config client_defaults(void)
{
    acp_s3_client_config client;
    config_s3_client_defaults(&client);
    return client;
}

static transport *open_with(const acp_s3_config *s3, const acp_s3_client_config *client)
{
    transport *t = NULL;
    if (transport_curl_open(&t, s3, client) != 0)
        fail_msg("transport_curl_open: %s", acp_last_error());
    assert_non_null(t);
    return t;
}

static transport *open_stack(void)
{
    acp_s3_config s3 = stack_s3();
    acp_s3_client_config client = client_defaults();
    return open_with(&s3, &client);
}

/* "acp-curl-<32 hex>/": a prefix no other run uses. */
static void random_prefix(char *out, size_t size)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(out, size, "acp-curl-%s/", acp_job_id_format(&id, hex));
}

static void assert_ok(const transport_request *req, const char *what)
{
    if (req->outcome.result != TRANSPORT_OK)
        fail_msg("%s: result %d, HTTP %d: %s", what, (int)req->outcome.result,
                 req->outcome.http_status, req->outcome.detail);
}

typedef struct memory_body {
    const unsigned char *data;
    size_t len;
} memory_body;

static ssize_t memory_read(void *userdata, uint64_t offset, void *buf, size_t len)
{
    memory_body *body = userdata;
    if (offset + len > body->len)
        return -1;
    memcpy(buf, body->data + offset, len);
    return (ssize_t)len;
}

static transport_outcome put_bytes(transport *t, const char *key, const void *data, size_t len)
{
    memory_body body = {data, len};
    transport_request req = {.op = TRANSPORT_PUT,
                             .key = key,
                             .put = {.size = len, .read = memory_read, .userdata = &body}};
    transport_run(t, &req, 1);
    return req.outcome;
}

typedef struct bytes {
    unsigned char *data;
    size_t len;
    int calls;
} bytes;

static int bytes_sink(void *userdata, const void *data, size_t len)
{
    bytes *b = userdata;
    b->calls++;
    unsigned char *grown = realloc(b->data, b->len + len + 1);
    if (!grown)
        return -1;
    memcpy(grown + b->len, data, len);
    b->data = grown;
    b->len += len;
    return 0;
}

static transport_outcome get_bytes(transport *t, const char *key, bytes *out)
{
    *out = (bytes){0};
    transport_request req = {
        .op = TRANSPORT_GET, .key = key, .get = {.sink = bytes_sink, .userdata = out}};
    transport_run(t, &req, 1);
    return req.outcome;
}

static transport_result delete_key(transport *t, const char *key)
{
    transport_request req = {.op = TRANSPORT_DELETE, .key = key};
    transport_run(t, &req, 1);
    return req.outcome.result;
}

/* Keys seen by a listing. */
typedef struct seen {
    char keys[64][TRANSPORT_KEY_MAX + 1];
    uint64_t sizes[64];
    int64_t mtimes[64];
    int count;
    char prefixes[16][TRANSPORT_KEY_MAX + 1];
    int prefix_count;
} seen;

static int seen_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
    seen *s = userdata;
    if (s->count >= 64)
        return -1;
    snprintf(s->keys[s->count], sizeof s->keys[0], "%s", key);
    s->sizes[s->count] = size;
    s->mtimes[s->count++] = mtime;
    return 0;
}

static int seen_prefix(void *userdata, const char *prefix)
{
    seen *s = userdata;
    if (s->prefix_count >= 16)
        return -1;
    snprintf(s->prefixes[s->prefix_count++], sizeof s->prefixes[0], "%s", prefix);
    return 0;
}

/* Every key under @prefix, page by page of @page keys. */
static void list_all(transport *t, const char *prefix, unsigned page, seen *s)
{
    memset(s, 0, sizeof *s);
    char marker[TRANSPORT_KEY_MAX + 1] = "";
    for (int pages = 0; pages < 100; pages++) {
        transport_request req = {.op = TRANSPORT_LIST,
                                 .list = {.prefix = prefix,
                                          .marker = marker,
                                          .max_keys = page,
                                          .on_key = seen_key,
                                          .userdata = s}};
        int before = s->count;
        transport_run(t, &req, 1);
        assert_ok(&req, "LIST");
        if (!req.list.truncated)
            return;
        assert_true(s->count > before);
        snprintf(marker, sizeof marker, "%s",
                 req.list.next_marker[0] ? req.list.next_marker : s->keys[s->count - 1]);
    }
    fail_msg("listing of '%s' did not end", prefix);
}

static int64_t now_us(void)
{
    return (int64_t)time(NULL) * 1000000;
}

/* ---- settings ------------------------------------------------------------------ */

static void expect_refusal(acp_s3_config s3, acp_s3_client_config client, const char *field)
{
    transport *t = (transport *)&t;
    assert_int_equal(transport_curl_open(&t, &s3, &client), ACP_EINVAL);
    assert_null(t);
    if (strncmp(acp_last_error(), field, strlen(field)) != 0)
        fail_msg("error '%s' does not name %s", acp_last_error(), field);
    assert_null(strstr(acp_last_error(), env.s3_secret_key));
}

static void bad_settings_are_refused_naming_the_field(void **state)
{
    (void)state;
    acp_s3_client_config client = client_defaults();
    acp_s3_config s3 = stack_s3();
    s3.host = NULL;
    expect_refusal(s3, client, "config.s3.host");
    s3 = stack_s3();
    s3.host = "h/x";
    expect_refusal(s3, client, "config.s3.host");
    s3 = stack_s3();
    s3.bucket = "Not_A_Bucket";
    expect_refusal(s3, client, "config.s3.bucket");
    s3 = stack_s3();
    s3.port = 70000;
    expect_refusal(s3, client, "config.s3.port");
    s3 = stack_s3();
    s3.secret_key = NULL;
    expect_refusal(s3, client, "config.s3.secret_key");
    s3 = stack_s3();
    s3.region = "EU West";
    expect_refusal(s3, client, "config.s3.region");
    s3 = stack_s3();
    s3.ca_file = "/etc/ssl/certs/ca-certificates.crt";
    expect_refusal(s3, client, "config.s3.ca_file");
    s3 = stack_s3();
    client.request_timeout_ms = 10;
    expect_refusal(s3, client, "config.s3_client.request_timeout_ms");
}

/* ---- PUT, GET, HEAD, DELETE, LIST ---------------------------------------- */

static void small_and_large_objects_round_trip(void **state)
{
    (void)state;
    transport *t = open_stack();
    assert_string_equal(t->vt->name, "curl");
    assert_true(t->caps & TRANSPORT_CAPS_MULTIPART);
    char prefix[64], small_key[128], large_key[128];
    random_prefix(prefix, sizeof prefix);
    snprintf(small_key, sizeof small_key, "%ssmall", prefix);
    snprintf(large_key, sizeof large_key, "%slarge", prefix);
    /* 3 MiB: a body transfer, timed by bytes moved. */
    size_t large_len = 3u << 20;
    unsigned char *large = malloc(large_len);
    assert_non_null(large);
    for (size_t i = 0; i < large_len; i++)
        large[i] = (unsigned char)(i * 7 + (i >> 13));
    transport_outcome o = put_bytes(t, small_key, "hello", 5);
    assert_int_equal(o.result, TRANSPORT_OK);
    o = put_bytes(t, large_key, large, large_len);
    assert_int_equal(o.result, TRANSPORT_OK);

    transport_request head = {.op = TRANSPORT_HEAD, .key = large_key};
    transport_run(t, &head, 1);
    assert_ok(&head, "HEAD");
    assert_int_equal(head.head.size, large_len);
    assert_true(head.head.mtime > now_us() - 600 * 1000000LL);
    assert_true(head.head.mtime < now_us() + 600 * 1000000LL);

    bytes got;
    o = get_bytes(t, large_key, &got);
    assert_int_equal(o.result, TRANSPORT_OK);
    assert_int_equal(got.len, large_len);
    assert_memory_equal(got.data, large, large_len);
    free(got.data);
    o = get_bytes(t, small_key, &got);
    assert_int_equal(o.result, TRANSPORT_OK);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "hello", 5);
    free(got.data);

    seen s;
    list_all(t, prefix, 1000, &s);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.keys[0], large_key);
    assert_int_equal(s.sizes[0], large_len);
    assert_true(s.mtimes[0] > now_us() - 600 * 1000000LL);
    /* A listing and a HEAD agree on an object's time. */
    assert_int_equal(s.mtimes[0], head.head.mtime);
    assert_string_equal(s.keys[1], small_key);

    /* An empty object. */
    o = put_bytes(t, small_key, "", 0);
    assert_int_equal(o.result, TRANSPORT_OK);
    o = get_bytes(t, small_key, &got);
    assert_int_equal(o.result, TRANSPORT_OK);
    assert_int_equal(got.len, 0);
    free(got.data);

    assert_int_equal(delete_key(t, small_key), TRANSPORT_OK);
    assert_int_equal(delete_key(t, large_key), TRANSPORT_OK);
    head.outcome.result = TRANSPORT_OK;
    transport_run(t, &head, 1);
    assert_int_equal(head.outcome.result, TRANSPORT_NOT_FOUND);
    assert_int_equal(head.outcome.http_status, 404);
    /* A missing object's error body is not the object: the sink never
     * sees it, and the outcome names the server's code. */
    o = get_bytes(t, small_key, &got);
    assert_int_equal(o.result, TRANSPORT_NOT_FOUND);
    assert_string_equal(o.code, "NoSuchKey");
    assert_int_equal(got.calls, 0);
    free(got.data);
    free(large);
    transport_close(t);
}

static void listing_pages_and_common_prefixes(void **state)
{
    (void)state;
    transport *t = open_stack();
    char prefix[64], key[128];
    random_prefix(prefix, sizeof prefix);
    static const char *const names[] = {"a", "b", "c", "d/1", "d/2", "e/1"};
    for (size_t i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        assert_int_equal(put_bytes(t, key, "x", 1).result, TRANSPORT_OK);
    }
    seen s;
    list_all(t, prefix, 2, &s);
    assert_int_equal(s.count, 6);
    for (size_t i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        assert_string_equal(s.keys[i], key);
    }
    /* One page of two with a marker: truncated, and the rest after it. */
    memset(&s, 0, sizeof s);
    snprintf(key, sizeof key, "%sa", prefix);
    transport_request req = {
        .op = TRANSPORT_LIST,
        .list = {
            .prefix = prefix, .marker = key, .max_keys = 2, .on_key = seen_key, .userdata = &s}};
    transport_run(t, &req, 1);
    assert_ok(&req, "LIST after a marker");
    assert_true(req.list.truncated);
    assert_int_equal(s.count, 2);
    snprintf(key, sizeof key, "%sb", prefix);
    assert_string_equal(s.keys[0], key);
    /* With a delimiter: keys at the top, and the "directories". */
    memset(&s, 0, sizeof s);
    req = (transport_request){.op = TRANSPORT_LIST,
                              .list = {.prefix = prefix,
                                       .delimiter = "/",
                                       .max_keys = 1000,
                                       .on_key = seen_key,
                                       .on_prefix = seen_prefix,
                                       .userdata = &s}};
    transport_run(t, &req, 1);
    assert_ok(&req, "LIST with a delimiter");
    assert_false(req.list.truncated);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.prefix_count, 2);
    snprintf(key, sizeof key, "%sd/", prefix);
    assert_string_equal(s.prefixes[0], key);
    snprintf(key, sizeof key, "%se/", prefix);
    assert_string_equal(s.prefixes[1], key);
    for (size_t i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "%s%s", prefix, names[i]);
        assert_int_equal(delete_key(t, key), TRANSPORT_OK);
    }
    transport_close(t);
}

/* Every printable ASCII character S3 allows in a key that needs encoding,
 * UTF-8, and a root of several segments: signed right, listed back as
 * they are. */
static void odd_keys_round_trip(void **state)
{
    (void)state;
    transport *t = open_stack();
    char prefix[64], root[128];
    random_prefix(prefix, sizeof prefix);
    snprintf(root, sizeof root, "%sroot one/two+2/three%%3/", prefix);
    static const char *const names[] = {
        "space here",
        "plus+sign",
        "percent%41",
        "equals=and&amp",
        "question?hash#",
        "tilde~bang!",
        "quote'paren()",
        "star*comma,semi;",
        "colon:at@dollar$",
        "brackets[]",
        "caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80",
        "dots/./and/../x",
        "dash-under_score.dot",
    };
    size_t count = sizeof names / sizeof names[0];
    char key[TRANSPORT_KEY_MAX + 1];
    for (size_t i = 0; i < count; i++) {
        snprintf(key, sizeof key, "%s%s", root, names[i]);
        transport_outcome o = put_bytes(t, key, key, strlen(key));
        if (o.result != TRANSPORT_OK)
            fail_msg("PUT '%s': %s", key, o.detail);
    }
    seen s;
    list_all(t, root, 5, &s);
    assert_int_equal(s.count, count);
    for (size_t i = 0; i < count; i++) {
        snprintf(key, sizeof key, "%s%s", root, names[i]);
        int found = 0;
        for (int j = 0; j < s.count; j++)
            found += strcmp(s.keys[j], key) == 0;
        if (found != 1)
            fail_msg("key '%s' listed %d times", key, found);
        bytes got;
        transport_outcome o = get_bytes(t, key, &got);
        if (o.result != TRANSPORT_OK)
            fail_msg("GET '%s': %s", key, o.detail);
        assert_int_equal(got.len, strlen(key));
        assert_memory_equal(got.data, key, got.len);
        free(got.data);
        assert_int_equal(delete_key(t, key), TRANSPORT_OK);
    }
    list_all(t, prefix, 1000, &s);
    assert_int_equal(s.count, 0);
    transport_close(t);
}

/* Eight requests of one run() in flight at once, and the same transport
 * on several threads. */
typedef struct thread_work {
    transport *t;
    const char *prefix;
    int number;
    int failures;
} thread_work;

static void *thread_run(void *arg)
{
    thread_work *w = arg;
    char keys[TRANSPORT_BATCH_MAX][128];
    memory_body body = {(const unsigned char *)"abc", 3};
    transport_request reqs[TRANSPORT_BATCH_MAX];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < TRANSPORT_BATCH_MAX; i++) {
            snprintf(keys[i], sizeof keys[i], "%st%d-%d", w->prefix, w->number, i);
            reqs[i] =
                (transport_request){.op = TRANSPORT_PUT,
                                    .key = keys[i],
                                    .put = {.size = 3, .read = memory_read, .userdata = &body}};
        }
        transport_run(w->t, reqs, TRANSPORT_BATCH_MAX);
        for (int i = 0; i < TRANSPORT_BATCH_MAX; i++) {
            w->failures += reqs[i].outcome.result != TRANSPORT_OK;
            reqs[i] = (transport_request){.op = TRANSPORT_DELETE, .key = keys[i]};
        }
        transport_run(w->t, reqs, TRANSPORT_BATCH_MAX);
        for (int i = 0; i < TRANSPORT_BATCH_MAX; i++)
            w->failures += reqs[i].outcome.result != TRANSPORT_OK;
    }
    return NULL;
}

static void batches_run_on_many_threads(void **state)
{
    (void)state;
    transport *t = open_stack();
    char prefix[64];
    random_prefix(prefix, sizeof prefix);
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    thread_work work[THREADS];
    for (int i = 0; i < THREADS; i++) {
        work[i] = (thread_work){.t = t, .prefix = prefix, .number = i};
        assert_int_equal(pthread_create(&threads[i], NULL, thread_run, &work[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(work[i].failures, 0);
    }
    seen s;
    list_all(t, prefix, 1000, &s);
    assert_int_equal(s.count, 0);
    transport_close(t);
}

/* A callback of the request stops it: ABORTED, whoever it was. */
static int refusing_sink(void *userdata, const void *data, size_t len)
{
    (void)data;
    (void)len;
    ++*(int *)userdata;
    return 1;
}

static ssize_t failing_read(void *userdata, uint64_t offset, void *buf, size_t len)
{
    (void)offset;
    (void)buf;
    (void)len;
    ++*(int *)userdata;
    return -1;
}

static int refusing_sink_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
    (void)key;
    (void)size;
    (void)mtime;
    ++*(int *)userdata;
    return 1;
}

static void a_stopping_callback_aborts_the_request(void **state)
{
    (void)state;
    transport *t = open_stack();
    char prefix[64], key[128];
    random_prefix(prefix, sizeof prefix);
    snprintf(key, sizeof key, "%sstopped", prefix);
    int reads = 0;
    transport_request put = {.op = TRANSPORT_PUT,
                             .key = key,
                             .put = {.size = 10, .read = failing_read, .userdata = &reads}};
    transport_run(t, &put, 1);
    assert_int_equal(put.outcome.result, TRANSPORT_ABORTED);
    assert_true(reads >= 1);
    transport_request head = {.op = TRANSPORT_HEAD, .key = key};
    transport_run(t, &head, 1);
    assert_int_equal(head.outcome.result, TRANSPORT_NOT_FOUND);

    assert_int_equal(put_bytes(t, key, "0123456789", 10).result, TRANSPORT_OK);
    int sinks = 0;
    transport_request get = {
        .op = TRANSPORT_GET, .key = key, .get = {.sink = refusing_sink, .userdata = &sinks}};
    transport_run(t, &get, 1);
    assert_int_equal(get.outcome.result, TRANSPORT_ABORTED);
    assert_int_equal(sinks, 1);
    seen s;
    memset(&s, 0, sizeof s);
    transport_request list = {
        .op = TRANSPORT_LIST,
        .list = {
            .prefix = prefix, .max_keys = 10, .on_key = refusing_sink_key, .userdata = &sinks}};
    transport_run(t, &list, 1);
    assert_int_equal(list.outcome.result, TRANSPORT_ABORTED);
    assert_int_equal(sinks, 2);
    assert_int_equal(delete_key(t, key), TRANSPORT_OK);
    transport_close(t);
}

/* ---- multipart ----------------------------------------------------------- */

typedef struct upload_seen {
    const char *key;
    const char *upload_id;
    int matches;
    int total;
} upload_seen;

static int upload_seen_one(void *userdata, const char *key, const char *upload_id)
{
    upload_seen *u = userdata;
    u->total++;
    if (strcmp(key, u->key) == 0 && strcmp(upload_id, u->upload_id) == 0)
        u->matches++;
    return 0;
}

/* How often @key's upload @upload_id is listed under @prefix. */
static int uploads_listed(transport *t, const char *prefix, const char *key, const char *upload_id)
{
    upload_seen u = {.key = key, .upload_id = upload_id};
    transport_request req = {
        .op = TRANSPORT_MPU_LIST,
        .mpu_list = {.prefix = prefix, .on_upload = upload_seen_one, .userdata = &u}};
    transport_run(t, &req, 1);
    assert_ok(&req, "MPU_LIST");
    return u.matches;
}

static void create_upload(transport *t, const char *key, char *upload_id)
{
    transport_request req = {.op = TRANSPORT_MPU_CREATE, .key = key};
    transport_run(t, &req, 1);
    assert_ok(&req, "MPU_CREATE");
    assert_true(req.mpu_create.upload_id[0] != '\0');
    strcpy(upload_id, req.mpu_create.upload_id);
}

static void multipart_upload_reads_back_byte_identical(void **state)
{
    (void)state;
    transport *t = open_stack();
    char prefix[64], key[128], upload_id[TRANSPORT_UPLOAD_ID_MAX + 1];
    random_prefix(prefix, sizeof prefix);
    snprintf(key, sizeof key, "%sbig file", prefix);
    const size_t part = 5u << 20, len = 2 * part + 12345;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)((i * 2654435761u) >> 13);
    create_upload(t, key, upload_id);
    assert_int_equal(uploads_listed(t, prefix, key, upload_id), 1);

    /* Three parts in flight at once, each read from its own offset. */
    memory_body bodies[3];
    transport_request parts[3];
    for (unsigned i = 0; i < 3; i++) {
        size_t offset = i * part, size = i < 2 ? part : len - 2 * part;
        bodies[i] = (memory_body){data + offset, size};
        parts[i] = (transport_request){.op = TRANSPORT_MPU_PART,
                                       .key = key,
                                       .mpu_part = {.upload_id = upload_id,
                                                    .number = i + 1,
                                                    .size = size,
                                                    .read = memory_read,
                                                    .userdata = &bodies[i]}};
    }
    transport_run(t, parts, 3);
    transport_part list[3];
    for (unsigned i = 0; i < 3; i++) {
        assert_ok(&parts[i], "MPU_PART");
        /* The ETag as the server sent it, quotes kept. */
        assert_int_equal(parts[i].mpu_part.etag[0], '"');
        list[i].number = i + 1;
        strcpy(list[i].etag, parts[i].mpu_part.etag);
    }
    transport_request complete = {
        .op = TRANSPORT_MPU_COMPLETE,
        .key = key,
        .mpu_complete = {.upload_id = upload_id, .parts = list, .count = 3}};
    transport_run(t, &complete, 1);
    assert_ok(&complete, "MPU_COMPLETE");
    assert_int_equal(uploads_listed(t, prefix, key, upload_id), 0);

    bytes got;
    transport_outcome o = get_bytes(t, key, &got);
    assert_int_equal(o.result, TRANSPORT_OK);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, data, len);
    free(got.data);
    assert_int_equal(delete_key(t, key), TRANSPORT_OK);
    free(data);
    transport_close(t);
}

static void an_aborted_upload_is_gone(void **state)
{
    (void)state;
    transport *t = open_stack();
    char prefix[64], key[128], upload_id[TRANSPORT_UPLOAD_ID_MAX + 1];
    random_prefix(prefix, sizeof prefix);
    snprintf(key, sizeof key, "%saborted+one", prefix);
    create_upload(t, key, upload_id);
    memory_body body = {(const unsigned char *)"part", 4};
    transport_request part = {.op = TRANSPORT_MPU_PART,
                              .key = key,
                              .mpu_part = {.upload_id = upload_id,
                                           .number = 1,
                                           .size = 4,
                                           .read = memory_read,
                                           .userdata = &body}};
    transport_run(t, &part, 1);
    assert_ok(&part, "MPU_PART");
    /* A part list that does not match what was uploaded is refused. */
    transport_part wrong = {.number = 1, .etag = "\"00000000000000000000000000000000\""};
    transport_request complete = {
        .op = TRANSPORT_MPU_COMPLETE,
        .key = key,
        .mpu_complete = {.upload_id = upload_id, .parts = &wrong, .count = 1}};
    transport_run(t, &complete, 1);
    assert_int_equal(complete.outcome.result, TRANSPORT_PERMANENT);
    assert_string_equal(complete.outcome.code, "InvalidPart");
    assert_int_equal(uploads_listed(t, prefix, key, upload_id), 1);

    transport_request abort_req = {
        .op = TRANSPORT_MPU_ABORT, .key = key, .mpu_abort = {.upload_id = upload_id}};
    transport_run(t, &abort_req, 1);
    assert_ok(&abort_req, "MPU_ABORT");
    assert_int_equal(uploads_listed(t, prefix, key, upload_id), 0);
    transport_run(t, &abort_req, 1);
    assert_int_equal(abort_req.outcome.result, TRANSPORT_NOT_FOUND);
    assert_string_equal(abort_req.outcome.code, "NoSuchUpload");
    seen s;
    list_all(t, prefix, 1000, &s);
    assert_int_equal(s.count, 0);
    transport_close(t);
}

/* ---- credentials ----------------------------------------------------------- */

static transport_outcome list_with(const char *access_key, const char *secret_key)
{
    acp_s3_config s3 = stack_s3();
    s3.access_key = access_key;
    s3.secret_key = secret_key;
    acp_s3_client_config client = client_defaults();
    transport *t = open_with(&s3, &client);
    transport_request req = {.op = TRANSPORT_LIST, .list = {.max_keys = 1, .on_key = seen_key}};
    seen s;
    req.list.userdata = &s;
    transport_run(t, &req, 1);
    transport_close(t);
    return req.outcome;
}

static void a_wrong_secret_is_denied_and_says_so(void **state)
{
    (void)state;
    const char *secret = "WrongSecretKeyWrongSecretKey0000000000001";
    transport_outcome o = list_with(env.s3_access_key, secret);
    assert_int_equal(o.result, TRANSPORT_DENIED);
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.code, "SignatureDoesNotMatch");
    if (!strstr(o.detail, "the secret key does not match the access key"))
        fail_msg("detail '%s' does not say what is wrong", o.detail);
    assert_null(strstr(o.detail, secret));
    assert_null(strstr(o.detail, env.s3_secret_key));
    assert_null(strstr(o.detail, "Authorization"));
}

static void an_unknown_access_key_is_denied_and_says_so(void **state)
{
    (void)state;
    transport_outcome o = list_with("NOSUCHACCESSKEY00001", env.s3_secret_key);
    assert_int_equal(o.result, TRANSPORT_DENIED);
    assert_string_equal(o.code, "InvalidAccessKeyId");
    if (!strstr(o.detail, "the access key is not known"))
        fail_msg("detail '%s' does not say what is wrong", o.detail);
    assert_null(strstr(o.detail, env.s3_secret_key));
}

/* ---- connections ----------------------------------------------------------- */

static void sequential_requests_share_one_connection(void **state)
{
    (void)state;
    transport *t = open_stack();
    assert_int_equal(transport_curl_connections(t), 0);
    for (int i = 0; i < 20; i++) {
        transport_request req = {.op = TRANSPORT_HEAD, .key = "acp-curl-no-such-key"};
        transport_run(t, &req, 1);
        assert_int_equal(req.outcome.result, TRANSPORT_NOT_FOUND);
    }
    assert_int_equal(transport_curl_connections(t), 1);
    transport_close(t);
}

/* A port on which nothing listens: bound, never listened to. */
static int closed_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(*fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&addr, &len), 0);
    return ntohs(addr.sin_port);
}

static void a_closed_port_is_unreachable_at_once(void **state)
{
    (void)state;
    int fd;
    acp_s3_config s3 = stack_s3();
    s3.port = closed_port(&fd);
    acp_s3_client_config client = client_defaults();
    transport *t = open_with(&s3, &client);
    int64_t start = clock_now_ms();
    transport_request req = {.op = TRANSPORT_HEAD, .key = "k"};
    transport_run(t, &req, 1);
    /* Hang guard only: a refused connection fails at once. */
    assert_true(clock_now_ms() - start < 4000);
    assert_int_equal(req.outcome.result, TRANSPORT_UNREACHABLE);
    assert_true(req.outcome.detail[0] != '\0');
    transport_close(t);
    close(fd);
}

/* A server that accepts and never answers: a small request fails on the
 * total timeout, a GET on "no byte moved"; both within request_timeout_ms
 * (1000), with a generous bound against hanging. */
static void a_silent_server_times_out(transport_op op, const char *expected)
{
    tiny_server server;
    assert_int_equal(tiny_server_start(&server, TINY_SILENT, NULL), 0);
    acp_s3_config s3 = stack_s3();
    s3.host = "127.0.0.1";
    s3.port = server.port;
    acp_s3_client_config client = client_defaults();
    client.request_timeout_ms = 1000;
    transport *t = open_with(&s3, &client);
    bytes got = {0};
    transport_request req = {.op = op, .key = "k", .get = {.sink = bytes_sink, .userdata = &got}};
    if (op == TRANSPORT_HEAD)
        req = (transport_request){.op = op, .key = "k"};
    int64_t start = clock_now_ms();
    transport_run(t, &req, 1);
    int64_t elapsed = clock_now_ms() - start;
    tiny_server_stop(&server);
    assert_int_equal(req.outcome.result, TRANSPORT_TRANSIENT);
    if (!strstr(req.outcome.detail, expected))
        fail_msg("detail '%s' lacks '%s'", req.outcome.detail, expected);
    assert_true(elapsed >= 900);
    assert_true(elapsed < 20000);
    free(got.data);
    transport_close(t);
}

static void a_silent_server_fails_a_head_on_the_request_timeout(void **state)
{
    (void)state;
    a_silent_server_times_out(TRANSPORT_HEAD, "no response within 1000 ms");
}

static void a_silent_server_fails_a_get_as_stalled(void **state)
{
    (void)state;
    a_silent_server_times_out(TRANSPORT_GET, "transfer stalled for 1000 ms");
}

/* ---- what goes on the wire --------------------------------------------------- */

static const char reply_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* The request head a tiny server received for one HEAD of "dir/k" with
 * @s3 and @client pointed at it. */
static void captured_request(acp_s3_config s3, acp_s3_client_config client, tiny_server *server)
{
    assert_int_equal(tiny_server_start(server, TINY_CAPTURE, reply_ok), 0);
    s3.port = server->port;
    transport *t = open_with(&s3, &client);
    transport_request req = {.op = TRANSPORT_HEAD, .key = "dir/k"};
    transport_run(t, &req, 1);
    tiny_server_stop(server);
    assert_ok(&req, "HEAD on the tiny server");
    transport_close(t);
}

static void the_session_token_is_sent_and_signed(void **state)
{
    (void)state;
    acp_s3_config s3 = stack_s3();
    s3.host = "127.0.0.1";
    s3.session_token = "TokenOfTemporaryCredentials0123";
    s3.region = "eu-central-1";
    tiny_server server;
    captured_request(s3, client_defaults(), &server);
    const char *head = server.request;
    assert_non_null(strstr(head, "HEAD /acp-test/dir/k HTTP/1.1\r\n") ? head : NULL);
    assert_non_null(strstr(head, "\r\nx-amz-security-token: TokenOfTemporaryCredentials0123\r\n"));
    assert_non_null(strstr(head, "\r\nx-amz-content-sha256: UNSIGNED-PAYLOAD\r\n"));
    const char *auth = strstr(head, "\r\nAuthorization: AWS4-HMAC-SHA256 ");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "/eu-central-1/s3/aws4_request"));
    const char *signed_headers = strstr(auth, "SignedHeaders=");
    assert_non_null(signed_headers);
    const char *end = strstr(signed_headers, ",");
    assert_non_null(end);
    char list[256];
    snprintf(list, sizeof list, "%.*s", (int)(end - signed_headers), signed_headers);
    if (!strstr(list, "x-amz-security-token") || !strstr(list, "x-amz-content-sha256"))
        fail_msg("%s: the token or the payload hash is not signed", list);
    /* The secret itself never goes out. */
    assert_null(strstr(head, env.s3_secret_key));
}

static void virtual_hosted_addressing_puts_the_bucket_in_the_host(void **state)
{
    (void)state;
    acp_s3_config s3 = stack_s3();
    s3.host = "localhost"; /* curl resolves *.localhost to the loopback */
    acp_s3_client_config client = client_defaults();
    client.addressing = ACP_S3_ADDRESSING_VIRTUAL;
    tiny_server server;
    captured_request(s3, client, &server);
    char host[128];
    snprintf(host, sizeof host, "\r\nHost: acp-test.localhost:%d\r\n", server.port);
    assert_non_null(strstr(server.request, "HEAD /dir/k HTTP/1.1\r\n"));
    if (!strstr(server.request, host))
        fail_msg("request '%s' lacks '%s'", server.request, host + 2);
}

/* One request of @op on a tiny server that answers @reply. */
static transport_request tiny_answer(const char *reply, transport_request req)
{
    tiny_server server;
    assert_int_equal(tiny_server_start(&server, TINY_CAPTURE, reply), 0);
    acp_s3_config s3 = stack_s3();
    s3.host = "127.0.0.1";
    s3.port = server.port;
    acp_s3_client_config client = client_defaults();
    transport *t = open_with(&s3, &client);
    transport_run(t, &req, 1);
    tiny_server_stop(&server);
    transport_close(t);
    return req;
}

static void server_errors_are_classified_from_the_answer(void **state)
{
    (void)state;
    static const char slow_down[] =
        "HTTP/1.1 503 Slow Down\r\nContent-Length: 66\r\n\r\n"
        "<Error><Code>SlowDown</Code><Message>Reduce rate</Message></Error>";
    transport_request req =
        tiny_answer(slow_down, (transport_request){.op = TRANSPORT_DELETE, .key = "k"});
    assert_int_equal(req.outcome.result, TRANSPORT_TRANSIENT);
    assert_int_equal(req.outcome.http_status, 503);
    assert_string_equal(req.outcome.code, "SlowDown");
    assert_string_equal(req.outcome.message, "Reduce rate");

    /* CompleteMultipartUpload may fail after its 200. */
    static const char failed_after_200[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 61\r\n\r\n"
        "<Error><Code>InternalError</Code><Message>x</Message></Error>";
    transport_part part = {.number = 1, .etag = "\"e\""};
    req = tiny_answer(
        failed_after_200,
        (transport_request){.op = TRANSPORT_MPU_COMPLETE,
                            .key = "k",
                            .mpu_complete = {.upload_id = "u", .parts = &part, .count = 1}});
    assert_int_equal(req.outcome.result, TRANSPORT_TRANSIENT);
    assert_string_equal(req.outcome.code, "InternalError");

    static const char too_many[] = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n";
    req = tiny_answer(too_many, (transport_request){.op = TRANSPORT_HEAD, .key = "k"});
    assert_int_equal(req.outcome.result, TRANSPORT_PERMANENT);
    assert_int_equal(req.outcome.http_status, 429);
}

static void a_short_body_is_transient(void **state)
{
    (void)state;
    tiny_server server;
    assert_int_equal(tiny_server_start(&server, TINY_CAPTURE,
                                       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
                     0);
    acp_s3_config s3 = stack_s3();
    s3.host = "127.0.0.1";
    s3.port = server.port;
    acp_s3_client_config client = client_defaults();
    transport *t = open_with(&s3, &client);
    bytes got;
    transport_outcome o = get_bytes(t, "k", &got);
    tiny_server_stop(&server);
    assert_int_equal(o.result, TRANSPORT_TRANSIENT);
    if (!strstr(o.detail, "10 of 100 bytes"))
        fail_msg("detail '%s' does not give the lengths", o.detail);
    free(got.data);
    transport_close(t);
}

/* ---- TLS ------------------------------------------------------------------------ */

/* `openssl s_server -www` with a certificate for "localhost" from a CA made
 * for the test: it answers any GET with a status page. */
typedef struct tls_server {
    char dir[64];
    int port;
    pid_t pid;
} tls_server;

static void run_shell(const char *dir, const char *command)
{
    char line[1024];
    snprintf(line, sizeof line, "cd '%s' && %s >/dev/null 2>&1", dir, command);
    if (system(line) != 0)
        fail_msg("'%s' failed", command);
}

static int free_port(void)
{
    int fd;
    int port = closed_port(&fd);
    close(fd);
    return port;
}

static void tls_server_start(tls_server *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/acp-tls-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    run_shell(s->dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                      "-keyout ca.key -out ca.pem -days 1 -subj /CN=acp-test-ca");
    run_shell(s->dir, "openssl req -x509 -CA ca.pem -CAkey ca.key -newkey ec -pkeyopt "
                      "ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.pem -days 1 "
                      "-subj /CN=localhost -addext subjectAltName=DNS:localhost");
    run_shell(s->dir, "mkdir certs && cp ca.pem certs/ && openssl rehash certs");
    s->port = free_port();
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", s->port);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (chdir(s->dir) == 0)
            execlp("openssl", "openssl", "s_server", "-accept", accept, "-cert", "srv.pem", "-key",
                   "srv.key", "-www", "-quiet", (char *)NULL);
        _exit(127);
    }
    /* Ready once it accepts (hang guard: 20 s). */
    for (int i = 0; i < 400; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET,
                                   .sin_port = htons((uint16_t)s->port),
                                   .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
        if (rc == 0)
            return;
        usleep(50000);
    }
    fail_msg("openssl s_server did not start on port %d", s->port);
}

static void tls_server_stop(tls_server *s)
{
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", s->dir);
    run_shell("/tmp", command);
}

/* One GET from the TLS server with these settings. */
static transport_outcome tls_get(const tls_server *server, const char *host, const char *ca_file,
                                 const char *ca_path, int skip_verify)
{
    acp_s3_config s3 = stack_s3();
    s3.host = host;
    s3.port = server->port;
    s3.https = 1;
    char file[128], path[128];
    if (ca_file) {
        snprintf(file, sizeof file, "%s/%s", server->dir, ca_file);
        s3.ca_file = file;
    }
    if (ca_path) {
        snprintf(path, sizeof path, "%s/%s", server->dir, ca_path);
        s3.ca_path = path;
    }
    acp_s3_client_config client = client_defaults();
    client.tls_skip_verify = skip_verify;
    transport *t = open_with(&s3, &client);
    bytes got;
    transport_outcome o = get_bytes(t, "k", &got);
    if (o.result == TRANSPORT_OK && (!got.data || !memmem(got.data, got.len, "<HTML>", 6)))
        fail_msg("TLS GET gave no status page");
    free(got.data);
    transport_close(t);
    return o;
}

static void assert_tls_failure(transport_outcome o, const char *problem)
{
    assert_int_equal(o.result, TRANSPORT_PERMANENT);
    if (strncmp(o.detail, "TLS: ", 5) != 0 || !strstr(o.detail, problem))
        fail_msg("detail '%s' does not name the TLS problem '%s'", o.detail, problem);
}

static void tls_certificates_are_verified(void **state)
{
    (void)state;
    tls_server server;
    tls_server_start(&server);
    /* The system's CAs do not know the test's. */
    transport_outcome o = tls_get(&server, "localhost", NULL, NULL, 0);
    assert_tls_failure(o, "unable to get local issuer certificate");
    o = tls_get(&server, "localhost", "ca.pem", NULL, 0);
    assert_int_equal(o.result, TRANSPORT_OK);
    o = tls_get(&server, "localhost", NULL, "certs", 0);
    assert_int_equal(o.result, TRANSPORT_OK);
    /* The certificate is for "localhost", not for the address. */
    o = tls_get(&server, "127.0.0.1", "ca.pem", NULL, 0);
    assert_tls_failure(o, "127.0.0.1");
    /* Only when told so. */
    o = tls_get(&server, "127.0.0.1", NULL, NULL, 1);
    assert_int_equal(o.result, TRANSPORT_OK);
    tls_server_stop(&server);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_settings_are_refused_naming_the_field),
        cmocka_unit_test(small_and_large_objects_round_trip),
        cmocka_unit_test(listing_pages_and_common_prefixes),
        cmocka_unit_test(odd_keys_round_trip),
        cmocka_unit_test(batches_run_on_many_threads),
        cmocka_unit_test(a_stopping_callback_aborts_the_request),
        cmocka_unit_test(multipart_upload_reads_back_byte_identical),
        cmocka_unit_test(an_aborted_upload_is_gone),
        cmocka_unit_test(a_wrong_secret_is_denied_and_says_so),
        cmocka_unit_test(an_unknown_access_key_is_denied_and_says_so),
        cmocka_unit_test(sequential_requests_share_one_connection),
        cmocka_unit_test(a_closed_port_is_unreachable_at_once),
        cmocka_unit_test(a_silent_server_fails_a_head_on_the_request_timeout),
        cmocka_unit_test(a_silent_server_fails_a_get_as_stalled),
        cmocka_unit_test(the_session_token_is_sent_and_signed),
        cmocka_unit_test(virtual_hosted_addressing_puts_the_bucket_in_the_host),
        cmocka_unit_test(server_errors_are_classified_from_the_answer),
        cmocka_unit_test(a_short_body_is_transient),
        cmocka_unit_test(tls_certificates_are_verified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
