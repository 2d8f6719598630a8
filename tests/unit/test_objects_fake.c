/* The workspace operations of objects.c through the fake S3 transport
 * (tests/fakes/fake_transport.h): the layout of keys, streaming, batches,
 * paging, wipes, and the retries and patience above the transport, with
 * faults injected. No services. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async_platform.h"
#include "clock.h"
#include "fake_transport.h"
#include "fault.h"
#include "objects.h"

/* Room for the keys of these tests. */
#define KEY_BUF 512

/* Retry warnings are expected here: count them instead of printing. */
static atomic_int warnings;

static void quiet_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    (void)message;
    if (level >= ACP_LOG_WARN)
        atomic_fetch_add(&warnings, 1);
}

static const logger test_log = {.fn = quiet_log, .level = ACP_LOG_DEBUG};

typedef struct fx {
    fault_plan plan;
    fake_transport *fake;
    objects *obj;
    acp_job_id id;
    char ws[128]; /* the workspace's key prefix "<root><hex>/" */
} fx;

static void fx_open(fx *f, const char *root, const char *expected_root)
{
    fault_plan_init(&f->plan);
    f->fake = fake_transport_new(&f->plan);
    int rc = objects_open_transport(&f->obj, fake_transport_base(f->fake), root, NULL, &test_log);
    if (rc)
        fail_msg("objects_open_transport: %s", acp_last_error());
    assert_int_equal(acp_job_id_generate(&f->id), 0);
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(f->ws, sizeof f->ws, "%s%s/", expected_root, acp_job_id_format(&f->id, hex));
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    fx_open(f, "jobs", "jobs/");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    objects_close(f->obj);
    fault_plan_destroy(&f->plan);
    free(f);
    return 0;
}

static uint64_t requests(const fx *f, int kind)
{
    uint64_t counts[OBJECTS_KINDS];
    objects_request_counts(f->obj, counts);
    return counts[kind];
}

static void key_of(const fx *f, const char *name, char *out)
{
    snprintf(out, KEY_BUF, "%s%s", f->ws, name);
}

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

/* A sink that keeps what it is given, and in how many pieces. */
typedef struct bytes {
    unsigned char *data;
    size_t len;
    size_t pieces;
} bytes;

static int sink_to_bytes(void *userdata, const void *data, size_t len)
{
    bytes *b = userdata;
    b->data = realloc(b->data, b->len + len + 1);
    assert_non_null(b->data);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->pieces++;
    return 0;
}

/* ---- layout and content --------------------------------------------------- */

static void keys_sit_under_the_normalised_root(void **state)
{
    (void)state;
    const char *roots[][2] = {{"", ""}, {"/", ""}, {NULL, ""}, {"a/b", "a/b/"}, {"/a/b/", "a/b/"}};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        fx f = {0};
        fx_open(&f, roots[i][0], roots[i][1]);
        assert_int_equal(objects_put(f.obj, &f.id, "dir/out.txt", "x", 1), 0);
        char key[KEY_BUF];
        key_of(&f, "dir/out.txt", key);
        if (!fake_transport_exists(f.fake, key))
            fail_msg("root '%s': no object '%s'", roots[i][0] ? roots[i][0] : "(null)", key);
        assert_int_equal(fake_transport_count(f.fake, NULL), 1);
        objects_close(f.obj);
        fault_plan_destroy(&f.plan);
    }
}

static void put_and_read_back(void **state)
{
    fx *f = *state;
    const char text[] = "{\"a\":1}";
    assert_int_equal(objects_put(f->obj, &f->id, "input-config", text, strlen(text)), 0);
    assert_int_equal(objects_put(f->obj, &f->id, "empty", NULL, 0), 0);
    bytes got = {0};
    assert_int_equal(objects_read(f->obj, &f->id, "input-config", sink_to_bytes, &got), 0);
    assert_int_equal(got.len, strlen(text));
    assert_memory_equal(got.data, text, got.len);
    free(got.data);
    bool exists;
    uint64_t size = 99;
    assert_int_equal(objects_stat(f->obj, &f->id, "empty", &exists, &size, NULL), 0);
    assert_true(exists);
    assert_int_equal(size, 0);
    assert_int_equal(objects_stat(f->obj, &f->id, "absent", &exists, &size, NULL), 0);
    assert_false(exists);
    got = (bytes){0};
    assert_int_equal(objects_read(f->obj, &f->id, "absent", sink_to_bytes, &got), ACP_ENOTFOUND);
    assert_error_mentions("absent");
    assert_int_equal(got.len, 0);
    assert_int_equal(objects_delete(f->obj, &f->id, "absent"), 0);
    assert_int_equal(objects_put(f->obj, &f->id, "/abs", "x", 1), ACP_EINVAL);
}

static void a_file_is_streamed_from_its_descriptor(void **state)
{
    fx *f = *state;
    /* Larger than any buffer on the way (the fake reads 64 KiB at a time). */
    size_t len = 3 * 1024 * 1024 + 17;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    char path[] = "/tmp/acp-objects-fake-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "result.bin", fd), 0);
    close(fd);

    char key[KEY_BUF];
    key_of(f, "result.bin", key);
    size_t stored_len = 0;
    unsigned char *stored = fake_transport_bytes(f->fake, key, &stored_len);
    assert_non_null(stored);
    assert_int_equal(stored_len, len);
    assert_memory_equal(stored, data, len);
    free(stored);

    bytes got = {0};
    assert_int_equal(objects_read(f->obj, &f->id, "result.bin", sink_to_bytes, &got), 0);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.data, data, len);
    assert_true(got.pieces > 1);
    free(got.data);
    free(data);

    /* A descriptor that cannot be read: ACP_EIO, nothing stored. */
    char wpath[] = "/tmp/acp-objects-fake-XXXXXX";
    int tmp = mkstemp(wpath);
    assert_true(tmp >= 0);
    assert_int_equal(write(tmp, "abc", 3), 3);
    close(tmp);
    int wfd = open(wpath, O_WRONLY);
    unlink(wpath);
    assert_true(wfd >= 0);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "write-only", wfd), ACP_EIO);
    assert_error_mentions("reading the file failed");
    close(wfd);
    key_of(f, "write-only", key);
    assert_false(fake_transport_exists(f->fake, key));
}

static void put_many_stores_every_item(void **state)
{
    fx *f = *state;
    enum { N = 19 }; /* more than one batch of 8 */
    char names[N][16];
    objects_item items[N];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "item-%02d", i);
        items[i] = (objects_item){names[i], names[i], strlen(names[i])};
    }
    /* One PUT of the second batch fails once: retried on its own. */
    fault_plan_add(
        &f->plan,
        (fault_rule){.op = "s3.put", .nth = 10, .error = ACP_ESTORAGE, .kind = FAKE_S3_500});
    uint64_t before = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put_many(f->obj, &f->id, items, N), 0);
    assert_int_equal(requests(f, OBJECTS_PUT) - before, N + 1);
    for (int i = 0; i < N; i++) {
        char key[KEY_BUF];
        key_of(f, names[i], key);
        size_t len = 0;
        unsigned char *stored = fake_transport_bytes(f->fake, key, &len);
        if (!stored)
            fail_msg("no object '%s'", key);
        assert_int_equal(len, strlen(names[i]));
        assert_memory_equal(stored, names[i], len);
        free(stored);
    }
    assert_int_equal(fake_transport_count(f->fake, f->ws), N);
}

static void touch_keeps_an_existing_objects_time(void **state)
{
    fx *f = *state;
    const int64_t first = 1700000000 * INT64_C(1000000), later = first + 3600 * INT64_C(1000000);
    fake_transport_set_clock(f->fake, first);
    assert_int_equal(objects_touch(f->obj, &f->id, ".queued"), 0);
    fake_transport_set_clock(f->fake, later);
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_touch(f->obj, &f->id, ".queued"), 0);
    assert_int_equal(requests(f, OBJECTS_PUT), puts);
    bool exists;
    int64_t mtime = 0;
    assert_int_equal(objects_stat(f->obj, &f->id, ".queued", &exists, NULL, &mtime), 0);
    assert_true(exists);
    assert_int_equal(mtime, first);
    /* A PUT replaces it and its time. */
    assert_int_equal(objects_put(f->obj, &f->id, ".queued", "", 0), 0);
    assert_int_equal(objects_stat(f->obj, &f->id, ".queued", &exists, NULL, &mtime), 0);
    assert_int_equal(mtime, later);
}

typedef struct writer {
    fx *f;
    int index;
} writer;

static void *write_some(void *arg)
{
    writer *w = arg;
    char name[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof name, "w%d/%02d", w->index, i);
        if (objects_put(w->f->obj, &w->f->id, name, name, strlen(name)) != 0)
            return (void *)1;
    }
    return NULL;
}

static void threads_share_one_handle(void **state)
{
    fx *f = *state;
    /* Some requests fail and are retried. No more failures in a row than
     * the default 3 retries: with full jitter a thread's back-off may be
     * ~0 ms, so one thread could meet all of them. */
    fault_plan_add(&f->plan,
                   (fault_rule){.op = "s3.put", .nth = 20, .times = 3, .error = ACP_ESTORAGE});
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    writer writers[THREADS];
    uint64_t puts = requests(f, OBJECTS_PUT);
    for (int i = 0; i < THREADS; i++) {
        writers[i] = (writer){f, i};
        assert_int_equal(pthread_create(&threads[i], NULL, write_some, &writers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *failed;
        pthread_join(threads[i], &failed);
        assert_null(failed);
    }
    assert_int_equal(fake_transport_count(f->fake, f->ws), THREADS * 50);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, THREADS * 50 + 3);
    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, THREADS * 50);
    assert_string_equal(list.items[0].name, "w0/00");
    object_list_free(&list);
}

/* ---- listings and wipes --------------------------------------------------- */

static void seed(fx *f, const char *name)
{
    char key[KEY_BUF];
    key_of(f, name, key);
    fake_transport_seed(f->fake, key, name, strlen(name));
}

static void a_listing_pages_past_a_thousand_keys(void **state)
{
    fx *f = *state;
    enum { N = 2500 };
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "out/%05d", i);
        seed(f, name);
    }
    fake_transport_seed(f->fake, "jobs/zzz", "other", 5); /* outside the workspace */
    uint64_t lists = requests(f, OBJECTS_LIST);
    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, N);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "out/%05d", i);
        assert_string_equal(list.items[i].name, name);
        assert_int_equal(list.items[i].size, strlen(name));
    }
    object_list_free(&list);
    assert_int_equal(requests(f, OBJECTS_LIST) - lists, 3); /* 1000 + 1000 + 500 */

    /* A listing that fails on its second page leaves nothing behind. */
    fault_plan_reset(&f->plan);
    fault_plan_add(
        &f->plan,
        (fault_rule){.op = "s3.list", .nth = 2, .error = ACP_ESTORAGE, .kind = FAKE_S3_403});
    assert_int_equal(objects_list(f->obj, &f->id, &list), ACP_ESTORAGE);
    assert_null(list.items);
    assert_int_equal(list.count, 0);
}

static bool keep_marker_and_inputs(const char *name)
{
    return strcmp(name, ".workspace") == 0 || strncmp(name, "in/", 3) == 0;
}

static void wipe_except_keeps_what_it_is_told(void **state)
{
    fx *f = *state;
    char name[32];
    seed(f, ".workspace");
    seed(f, ".failed");
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "in/%d", i);
        seed(f, name);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "out-%02d", i);
        seed(f, name);
    }
    fx other = {0};
    other.fake = f->fake;
    assert_int_equal(acp_job_id_generate(&other.id), 0);
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(other.ws, sizeof other.ws, "jobs/%s/", acp_job_id_format(&other.id, hex));
    seed(&other, "out-00");

    uint64_t deletes = requests(f, OBJECTS_DELETE);
    assert_int_equal(objects_wipe_except(f->obj, &f->id, keep_marker_and_inputs), 0);
    assert_int_equal(requests(f, OBJECTS_DELETE) - deletes, 21);
    assert_int_equal(fake_transport_count(f->fake, f->ws), 6);
    char key[KEY_BUF];
    key_of(f, ".workspace", key);
    assert_true(fake_transport_exists(f->fake, key));
    key_of(f, ".failed", key);
    assert_false(fake_transport_exists(f->fake, key));

    assert_int_equal(objects_wipe(f->obj, &f->id), 0);
    assert_int_equal(fake_transport_count(f->fake, f->ws), 0);
    assert_int_equal(fake_transport_count(f->fake, other.ws), 1);
    /* Wiping a workspace that does not exist is no error. */
    assert_int_equal(objects_wipe(f->obj, &f->id), 0);
}

static int by_hex(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void workspaces_are_listed_in_pages(void **state)
{
    fx *f = *state;
    enum { N = 5 };
    char hex[N][ACP_JOB_ID_STRLEN];
    char key[KEY_BUF];
    for (int i = 0; i < N; i++) {
        acp_job_id id;
        assert_int_equal(acp_job_id_generate(&id), 0);
        acp_job_id_format(&id, hex[i]);
        for (int k = 0; k < 3; k++) {
            snprintf(key, sizeof key, "jobs/%s/%s", hex[i], k == 0 ? ".workspace" : "f");
            fake_transport_seed(f->fake, key, "", 0);
        }
    }
    qsort(hex, N, sizeof hex[0], by_hex);
    /* Not workspaces: a file at the root, a short directory, one outside. */
    fake_transport_seed(f->fake, "jobs/notes.txt", "", 0);
    fake_transport_seed(f->fake, "jobs/0/x", "", 0);
    fake_transport_seed(f->fake, "other/ffffffffffffffffffffffffffffffff/x", "", 0);

    acp_job_id ids[N];
    size_t count = 0;
    bool more = false;
    char got[ACP_JOB_ID_STRLEN];
    assert_int_equal(objects_list_workspaces(f->obj, NULL, 2, ids, &count, &more), 0);
    assert_int_equal(count, 2);
    assert_true(more);
    assert_string_equal(acp_job_id_format(&ids[0], got), hex[0]);
    assert_string_equal(acp_job_id_format(&ids[1], got), hex[1]);

    acp_job_id after = ids[1];
    assert_int_equal(objects_list_workspaces(f->obj, &after, 10, ids, &count, &more), 0);
    assert_int_equal(count, N - 2);
    assert_false(more);
    for (int i = 0; i < N - 2; i++)
        assert_string_equal(acp_job_id_format(&ids[i], got), hex[i + 2]);
}

/* ---- retries and patience ------------------------------------------------- */

static void a_transient_503_is_retried(void **state)
{
    fx *f = *state;
    fault_plan_add(
        &f->plan,
        (fault_rule){
            .op = "s3.put", .nth = 1, .times = 2, .error = ACP_ESTORAGE, .kind = FAKE_S3_503});
    uint64_t puts = requests(f, OBJECTS_PUT);
    int before = atomic_load(&warnings);
    assert_int_equal(objects_put(f->obj, &f->id, "result.txt", "ok", 2), 0);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 3);
    assert_int_equal(atomic_load(&warnings) - before, 2);
    char key[KEY_BUF];
    key_of(f, "result.txt", key);
    assert_true(fake_transport_exists(f->fake, key));
}

static void a_403_fails_at_once(void **state)
{
    fx *f = *state;
    fault_plan_add(
        &f->plan,
        (fault_rule){.op = "s3.put", .nth = 1, .error = ACP_ESTORAGE, .kind = FAKE_S3_403});
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put(f->obj, &f->id, "result.txt", "no", 2), ACP_ESTORAGE);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 1);
    char key[KEY_BUF];
    key_of(f, "result.txt", key);
    assert_error_mentions(key);
    assert_error_mentions("access denied");
    assert_false(fake_transport_exists(f->fake, key));
}

static void slowdown_is_retried_and_429_is_not(void **state)
{
    fx *f = *state;
    assert_int_equal(objects_put(f->obj, &f->id, "data", "abc", 3), 0);
    fault_plan_add(
        &f->plan,
        (fault_rule){
            .op = "s3.get", .nth = 1, .times = 2, .error = ACP_ESTORAGE, .kind = FAKE_S3_SLOWDOWN});
    uint64_t gets = requests(f, OBJECTS_GET);
    bytes got = {0};
    assert_int_equal(objects_read(f->obj, &f->id, "data", sink_to_bytes, &got), 0);
    assert_int_equal(requests(f, OBJECTS_GET) - gets, 3);
    assert_int_equal(got.len, 3);
    assert_memory_equal(got.data, "abc", 3);
    free(got.data);

    /* Issue 14: never retried on a 4xx, 429 included. */
    fault_plan_add(
        &f->plan,
        (fault_rule){.op = "s3.get", .nth = 4, .error = ACP_ESTORAGE, .kind = FAKE_S3_429});
    gets = requests(f, OBJECTS_GET);
    got = (bytes){0};
    assert_int_equal(objects_read(f->obj, &f->id, "data", sink_to_bytes, &got), ACP_ESTORAGE);
    assert_int_equal(requests(f, OBJECTS_GET) - gets, 1);
    assert_error_mentions("TooManyRequests");
    free(got.data);
}

static void a_get_cut_short_is_not_retried(void **state)
{
    fx *f = *state;
    char data[1000];
    memset(data, 'x', sizeof data);
    assert_int_equal(objects_put(f->obj, &f->id, "data", data, sizeof data), 0);
    fault_plan_add(&f->plan,
                   (fault_rule){.op = "s3.get", .error = ACP_ESTORAGE, .kind = FAKE_S3_CUT});
    uint64_t gets = requests(f, OBJECTS_GET);
    bytes got = {0};
    /* What the sink has seen cannot be taken back: no second try. */
    assert_int_equal(objects_read(f->obj, &f->id, "data", sink_to_bytes, &got), ACP_ESTORAGE);
    assert_int_equal(requests(f, OBJECTS_GET) - gets, 1);
    assert_int_equal(got.len, sizeof data / 2);
    assert_error_mentions("connection reset");
    free(got.data);
}

static void transient_failures_outlast_the_normal_retries(void **state)
{
    fx *f = *state;
    /* Five failures in a row: more than the default 3 retries. */
    fault_rule five = {
        .op = "s3.put", .nth = 1, .times = 5, .error = ACP_ESTORAGE, .kind = FAKE_S3_RESET};
    fault_plan_add(&f->plan, five);
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put(f->obj, &f->id, "result.txt", "1", 1), ACP_ESTORAGE);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 1 + 3);
    assert_error_mentions("connection reset");

    /* The same within patience succeeds. */
    fault_plan_reset(&f->plan);
    fault_plan_add(&f->plan, five);
    puts = requests(f, OBJECTS_PUT);
    objects_patience_begin(120, NULL);
    int rc = objects_put(f->obj, &f->id, "result.txt", "2", 1);
    objects_patience_end();
    assert_int_equal(rc, 0);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 6);

    /* Failing past the patience: an error that says for how long. */
    fault_plan_reset(&f->plan);
    fault_plan_add(&f->plan,
                   (fault_rule){.op = "s3.put", .error = ACP_ESTORAGE, .kind = FAKE_S3_503});
    objects_patience_begin(1, NULL);
    rc = objects_put(f->obj, &f->id, "result.txt", "3", 1);
    objects_patience_end();
    assert_int_equal(rc, ACP_ESTORAGE);
    assert_error_mentions("unreachable for 1 s");
    size_t len = 0;
    char key[KEY_BUF];
    key_of(f, "result.txt", key);
    unsigned char *stored = fake_transport_bytes(f->fake, key, &len);
    assert_non_null(stored);
    assert_memory_equal(stored, "2", 1);
    free(stored);
}

static void *raise_later(void *arg)
{
    clock_sleep_ms(300);
    atomic_store((atomic_bool *)arg, true);
    return NULL;
}

static void cancelling_stops_a_patient_retry(void **state)
{
    fx *f = *state;
    fault_plan_add(&f->plan,
                   (fault_rule){.op = "s3.head", .error = ACP_ESTORAGE, .kind = FAKE_S3_REFUSED});
    atomic_bool cancel = false;
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, raise_later, &cancel), 0);
    objects_patience_begin(600, &cancel);
    bool exists;
    int rc = objects_stat(f->obj, &f->id, ".workspace", &exists, NULL, NULL);
    objects_patience_end();
    pthread_join(thread, NULL);
    assert_int_equal(rc, ACP_ESHUTDOWN);
    assert_error_mentions("shutting down");

    /* Raised before the call: one request, no waiting. */
    uint64_t heads = requests(f, OBJECTS_HEAD);
    objects_patience_begin(600, &cancel);
    rc = objects_stat(f->obj, &f->id, ".workspace", &exists, NULL, NULL);
    objects_patience_end();
    assert_int_equal(rc, ACP_ESHUTDOWN);
    assert_int_equal(requests(f, OBJECTS_HEAD) - heads, 1);
}

static void a_missing_bucket_fails_the_open(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    fault_plan_add(&plan,
                   (fault_rule){.op = "s3.list", .error = ACP_ESTORAGE, .kind = FAKE_S3_NO_BUCKET});
    objects *obj = NULL;
    assert_int_equal(objects_open_transport(&obj, fake_transport_base(fake_transport_new(&plan)),
                                            "", NULL, &test_log),
                     ACP_ESTORAGE);
    assert_null(obj);
    assert_error_mentions("bucket 'fake-bucket' does not exist");
    assert_int_equal(fault_calls(&plan, "s3.list"), 1);
    fault_plan_destroy(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_sit_under_the_normalised_root),
        cmocka_unit_test_setup_teardown(put_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_is_streamed_from_its_descriptor, setup, teardown),
        cmocka_unit_test_setup_teardown(put_many_stores_every_item, setup, teardown),
        cmocka_unit_test_setup_teardown(touch_keeps_an_existing_objects_time, setup, teardown),
        cmocka_unit_test_setup_teardown(threads_share_one_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(a_listing_pages_past_a_thousand_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(wipe_except_keeps_what_it_is_told, setup, teardown),
        cmocka_unit_test_setup_teardown(workspaces_are_listed_in_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(a_transient_503_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(a_403_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(slowdown_is_retried_and_429_is_not, setup, teardown),
        cmocka_unit_test_setup_teardown(a_get_cut_short_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(transient_failures_outlast_the_normal_retries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(cancelling_stops_a_patient_retry, setup, teardown),
        cmocka_unit_test(a_missing_bucket_fails_the_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
