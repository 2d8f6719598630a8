/* Integration tests of objects.c against the real radosgw of scripts/stack.
 *
 * Every test works under its own random root path ("acp-test-<hex>/jobs")
 * or its own random job ids, and removes what it creates. Keys are checked
 * independently of objects.c with libs3 directly (objects_open has
 * initialised libs3 by then). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libs3.h>

#include "async_platform.h"
#include "md5.h"
#include "objects.h"
#include "stack_env.h"

static stack_env env;

/* ---- helpers --------------------------------------------------------------- */

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

static acp_job_id new_id(void)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    return id;
}

static const char *hex_of(const acp_job_id *id, char *buf)
{
    return acp_job_id_format(id, buf);
}

/* "acp-test-<32 hex>": a key prefix no other run uses. */
static void random_top(char *out, size_t size)
{
    acp_job_id id = new_id();
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(out, size, "acp-test-%s", hex_of(&id, hex));
}

static acp_s3_config config_with_root(const char *root)
{
    acp_s3_config cfg = {
        .host = env.s3_host,
        .port = atoi(env.s3_port),
        .https = 0,
        .bucket = env.s3_bucket,
        .access_key = env.s3_access_key,
        .secret_key = env.s3_secret_key,
        .root_path = root,
    };
    return cfg;
}

/* Collects warnings so that expected retries do not clutter the output. */
typedef struct log_capture {
    atomic_int warnings;
} log_capture;

static void capture_log(void *userdata, acp_log_level level, const char *message)
{
    (void)message;
    log_capture *capture = userdata;
    if (level >= ACP_LOG_WARN)
        atomic_fetch_add(&capture->warnings, 1);
}

/* The S3 client settings acp_config_init() gives. */
static const acp_s3_client_config *default_client(void)
{
    static acp_config config;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    return &config.s3_client;
}

static objects *open_with_root(const char *root)
{
    acp_s3_config cfg = config_with_root(root);
    objects *obj = NULL;
    int rc = objects_open(&obj, &cfg, default_client(), NULL);
    if (rc)
        fail_msg("objects_open: %s", acp_last_error());
    assert_non_null(obj);
    return obj;
}

/* A growable byte buffer for reads. */
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

static void assert_object_is(objects *obj, const acp_job_id *id, const char *name, const void *data,
                             size_t len)
{
    bytes got = {NULL, 0};
    int rc = objects_read(obj, id, name, sink_to_bytes, &got);
    if (rc)
        fail_msg("objects_read %s: %s", name, acp_last_error());
    assert_int_equal(got.len, len);
    if (len)
        assert_memory_equal(got.data, data, len);
    free(got.data);
}

static int64_t now_us(void)
{
    return (int64_t)time(NULL) * 1000000;
}

/* The S3 server runs on this machine: its clock is ours. */
static void assert_recent(int64_t mtime)
{
    int64_t now = now_us();
    if (mtime < now - 600 * 1000000LL || mtime > now + 600 * 1000000LL)
        fail_msg("mtime %lld is not within 10 minutes of now (%lld)", (long long)mtime,
                 (long long)now);
}

/* ---- raw libs3, to see the real keys ------------------------------------ */

typedef struct raw_call {
    S3Status status;
    char *keys[64];
    int count;
} raw_call;

static S3Status raw_properties(const S3ResponseProperties *properties, void *data)
{
    (void)properties;
    (void)data;
    return S3StatusOK;
}

static void raw_complete(S3Status status, const S3ErrorDetails *details, void *data)
{
    (void)details;
    ((raw_call *)data)->status = status;
}

static S3Status raw_on_list(int truncated, const char *marker, int count,
                            const S3ListBucketContent *contents, int prefix_count,
                            const char **prefixes, void *data)
{
    (void)truncated;
    (void)marker;
    (void)prefix_count;
    (void)prefixes;
    raw_call *call = data;
    for (int i = 0; i < count && call->count < 64; i++)
        call->keys[call->count++] = strdup(contents[i].key);
    return S3StatusOK;
}

static S3BucketContext raw_bucket(char *host, size_t size)
{
    snprintf(host, size, "%s:%s", env.s3_host, env.s3_port);
    S3BucketContext bucket = {host,           env.s3_bucket,     S3ProtocolHTTP,
                              S3UriStylePath, env.s3_access_key, env.s3_secret_key};
    return bucket;
}

/* Every key starting with @prefix (at most 64). */
static void raw_list(const char *prefix, raw_call *call)
{
    char host[300];
    S3BucketContext bucket = raw_bucket(host, sizeof host);
    S3ListBucketHandler handler = {{raw_properties, raw_complete}, raw_on_list};
    memset(call, 0, sizeof *call);
    S3_list_bucket(&bucket, prefix, NULL, NULL, 64, NULL, &handler, call);
    assert_int_equal(call->status, S3StatusOK);
}

static void raw_free(raw_call *call)
{
    for (int i = 0; i < call->count; i++)
        free(call->keys[i]);
    call->count = 0;
}

/* The bucket holds exactly one key starting with @prefix, and it is @key. */
static void assert_only_key(const char *prefix, const char *key)
{
    raw_call call;
    raw_list(prefix, &call);
    if (call.count != 1 || strcmp(call.keys[0], key) != 0)
        fail_msg("keys under '%s': expected only '%s', found %d (first '%s')", prefix, key,
                 call.count, call.count ? call.keys[0] : "");
    raw_free(&call);
}

static void assert_no_key(const char *prefix)
{
    raw_call call;
    raw_list(prefix, &call);
    if (call.count != 0)
        fail_msg("keys under '%s': expected none, found '%s'", prefix, call.keys[0]);
    raw_free(&call);
}

/* ---- per-test fixture: a handle under a random root ----------------------- */

typedef struct fixture {
    char top[64];  /* acp-test-<hex> */
    char root[80]; /* acp-test-<hex>/jobs */
    objects *obj;
    acp_job_id id;
} fixture;

static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    random_top(f->top, sizeof f->top);
    snprintf(f->root, sizeof f->root, "%s/jobs", f->top);
    f->obj = open_with_root(f->root);
    f->id = new_id();
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    int rc = objects_wipe(f->obj, &f->id);
    objects_close(f->obj);
    if (rc == 0) {
        char prefix[100];
        snprintf(prefix, sizeof prefix, "%s/", f->top);
        raw_call call;
        raw_list(prefix, &call);
        rc = call.count;
        raw_free(&call);
        if (rc)
            fprintf(stderr, "teardown: %d keys left under %s\n", rc, prefix);
    }
    free(f);
    return rc ? -1 : 0;
}

/* ---- open ------------------------------------------------------------------ */

static void open_with_a_good_config_works(void **state)
{
    (void)state;
    objects *obj = open_with_root("/");
    acp_job_id id = new_id();

    object_list list = {(object_entry *)1, 99};
    assert_int_equal(objects_list(obj, &id, &list), 0);
    assert_int_equal(list.count, 0);
    object_list_free(&list);

    bool exists = true;
    uint64_t size = 7;
    int64_t mtime = 7;
    assert_int_equal(objects_stat(obj, &id, ".workspace", &exists, &size, &mtime), 0);
    assert_false(exists);
    assert_int_equal(size, 0);
    assert_int_equal(mtime, 0);
    objects_close(obj);
    objects_close(NULL);
    object_list_free(NULL);
}

static void open_fails(acp_s3_config *cfg, const logger *log, const char *cause)
{
    objects *obj = (objects *)1;
    int rc = objects_open(&obj, cfg, default_client(), log);
    assert_int_equal(rc, ACP_ESTORAGE);
    assert_null(obj);
    char endpoint[300];
    snprintf(endpoint, sizeof endpoint, "S3 %s:%d: ", cfg->host, cfg->port);
    assert_error_mentions(endpoint);
    assert_error_mentions(cause);
}

static void open_reports_a_wrong_secret(void **state)
{
    (void)state;
    acp_s3_config cfg = config_with_root("/");
    cfg.secret_key = "not-the-secret";
    open_fails(&cfg, NULL, "access denied");
    assert_error_mentions(env.s3_bucket);
}

static void open_reports_an_unknown_access_key(void **state)
{
    (void)state;
    acp_s3_config cfg = config_with_root("/");
    cfg.access_key = "NOSUCHACCESSKEY00000";
    open_fails(&cfg, NULL, "access denied");
}

static void open_reports_a_missing_bucket(void **state)
{
    (void)state;
    char bucket[64], expected[100];
    acp_job_id id = new_id();
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(bucket, sizeof bucket, "acp-missing-%s", hex_of(&id, hex));
    snprintf(expected, sizeof expected, "bucket '%s' does not exist", bucket);
    acp_s3_config cfg = config_with_root("/");
    cfg.bucket = bucket;
    open_fails(&cfg, NULL, expected);
}

/* With the patience of a result upload (minutes), a permanent error still
 * fails at once: a bucket that vanished is not going to come back. */
static void patient_put_fails_at_once_on_a_permanent_error(void **state)
{
    (void)state;
    char bucket[64], host[300];
    acp_job_id id = new_id();
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(bucket, sizeof bucket, "acp-gone-%s", hex_of(&id, hex));
    S3BucketContext raw = raw_bucket(host, sizeof host);
    S3ResponseHandler handler = {raw_properties, raw_complete};
    raw_call call = {0};
    S3_create_bucket(S3ProtocolHTTP, raw.accessKeyId, raw.secretAccessKey, host, bucket,
                     S3CannedAclPrivate, NULL, NULL, &handler, &call);
    assert_int_equal(call.status, S3StatusOK);
    acp_s3_config cfg = config_with_root("/");
    cfg.bucket = bucket;
    objects *obj = NULL;
    assert_int_equal(objects_open(&obj, &cfg, default_client(), NULL), 0);
    S3_delete_bucket(S3ProtocolHTTP, S3UriStylePath, raw.accessKeyId, raw.secretAccessKey, host,
                     bucket, NULL, &handler, &call);
    assert_int_equal(call.status, S3StatusOK);

    atomic_bool cancel = false;
    objects_patience_begin(300, &cancel);
    int rc = objects_put(obj, &id, "result.txt", "x", 1);
    objects_patience_end();
    assert_int_equal(rc, ACP_ENOTFOUND);
    assert_error_mentions("does not exist");
    objects_close(obj);
}

static void open_reports_a_closed_port(void **state)
{
    (void)state;
    acp_s3_config cfg = config_with_root("/");
    cfg.host = "127.0.0.1";
    cfg.port = 1;
    log_capture capture = {0};
    logger log = {capture_log, &capture, ACP_LOG_DEBUG};
    open_fails(&cfg, &log, "could not connect");
    /* Connection failures are transient in general: retried three times. */
    assert_int_equal(atomic_load(&capture.warnings), 3);
}

static void open_rejects_bad_arguments(void **state)
{
    (void)state;
    objects *obj = NULL;
    acp_s3_config cfg = config_with_root("/");
    cfg.bucket = "Not_A_Bucket!";
    assert_int_equal(objects_open(&obj, &cfg, default_client(), NULL), ACP_EINVAL);
    assert_error_mentions("config.s3.bucket");
    cfg = config_with_root("/");
    cfg.host = NULL;
    assert_int_equal(objects_open(&obj, &cfg, default_client(), NULL), ACP_EINVAL);
    assert_error_mentions("config.s3.host");
    assert_int_equal(objects_open(&obj, NULL, default_client(), NULL), ACP_EINVAL);
    assert_null(obj);
}

/* ---- keys ------------------------------------------------------------------ */

/* Roots that mean "the bucket's top level": the key is <hex>/<name>. */
static void check_top_level_root(const char *root)
{
    objects *obj = open_with_root(root);
    acp_job_id id = new_id();
    char hex[ACP_JOB_ID_STRLEN], key[100];
    hex_of(&id, hex);
    snprintf(key, sizeof key, "%s/f", hex);
    assert_int_equal(objects_put(obj, &id, "f", "x", 1), 0);
    assert_only_key(hex, key);
    char slashed[64];
    snprintf(slashed, sizeof slashed, "/%s", hex);
    assert_no_key(slashed);

    object_list list;
    assert_int_equal(objects_list(obj, &id, &list), 0);
    assert_int_equal(list.count, 1);
    assert_string_equal(list.items[0].name, "f");
    object_list_free(&list);

    assert_int_equal(objects_wipe(obj, &id), 0);
    assert_no_key(hex);
    objects_close(obj);
}

/* The root "<lead>acp-test-<hex>/b<trail>" puts the key at
 * acp-test-<hex>/b/<id hex>/f whatever the slashes. */
static void check_nested_root(const char *lead, const char *trail)
{
    char top[64], root[100], expected[200], prefix[80];
    random_top(top, sizeof top);
    snprintf(root, sizeof root, "%s%s/b%s", lead, top, trail);
    objects *obj = open_with_root(root);
    acp_job_id id = new_id();
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(expected, sizeof expected, "%s/b/%s/f", top, hex_of(&id, hex));
    snprintf(prefix, sizeof prefix, "%s/", top);

    assert_int_equal(objects_put(obj, &id, "f", "x", 1), 0);
    assert_only_key(prefix, expected);
    assert_int_equal(objects_wipe(obj, &id), 0);
    assert_no_key(prefix);
    objects_close(obj);
}

static void root_path_is_normalised(void **state)
{
    (void)state;
    check_top_level_root("/");
    check_top_level_root("");
    check_top_level_root(NULL);
    check_nested_root("/", "/");
    check_nested_root("", "");
    check_nested_root("/", "");
    check_nested_root("", "/");
}

/* ---- put, stat, read ------------------------------------------------------ */

static void put_stat_and_read_round_trip(void **state)
{
    fixture *f = *state;
    const unsigned char data[] = {'a', 0, 'b', 0, 0, 0xff, 0x80, '\n', 0, 'z'};
    assert_int_equal(objects_put(f->obj, &f->id, "bin.dat", data, sizeof data), 0);

    bool exists = false;
    uint64_t size = 0;
    int64_t mtime = 0;
    assert_int_equal(objects_stat(f->obj, &f->id, "bin.dat", &exists, &size, &mtime), 0);
    assert_true(exists);
    assert_int_equal(size, sizeof data);
    assert_recent(mtime);
    assert_int_equal(mtime % 1000000, 0); /* S3 has whole seconds */
    assert_object_is(f->obj, &f->id, "bin.dat", data, sizeof data);

    /* Replacing keeps one object with the new content; size and mtime may be NULL. */
    assert_int_equal(objects_put(f->obj, &f->id, "bin.dat", "new", 3), 0);
    assert_int_equal(objects_stat(f->obj, &f->id, "bin.dat", &exists, NULL, NULL), 0);
    assert_true(exists);
    assert_object_is(f->obj, &f->id, "bin.dat", "new", 3);

    /* Names with a '/' nest inside the workspace. */
    assert_int_equal(objects_put(f->obj, &f->id, "dir/inner.txt", "in", 2), 0);
    assert_object_is(f->obj, &f->id, "dir/inner.txt", "in", 2);

    /* An empty object, from a NULL buffer too. */
    assert_int_equal(objects_put(f->obj, &f->id, "empty", NULL, 0), 0);
    assert_int_equal(objects_stat(f->obj, &f->id, "empty", &exists, &size, &mtime), 0);
    assert_true(exists);
    assert_int_equal(size, 0);
    assert_recent(mtime);
    assert_object_is(f->obj, &f->id, "empty", NULL, 0);

    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, 3);
    assert_string_equal(list.items[0].name, "bin.dat");
    assert_int_equal(list.items[0].size, 3);
    assert_string_equal(list.items[1].name, "dir/inner.txt");
    assert_string_equal(list.items[2].name, "empty");
    assert_int_equal(list.items[2].size, 0);
    for (size_t i = 0; i < list.count; i++)
        assert_recent(list.items[i].mtime);
    object_list_free(&list);
    assert_null(list.items);
    assert_int_equal(list.count, 0);
}

static void bad_names_are_rejected(void **state)
{
    fixture *f = *state;
    assert_int_equal(objects_put(f->obj, &f->id, NULL, "x", 1), ACP_EINVAL);
    assert_int_equal(objects_put(f->obj, &f->id, "", "x", 1), ACP_EINVAL);
    assert_int_equal(objects_put(f->obj, &f->id, "/abs", "x", 1), ACP_EINVAL);
    assert_int_equal(objects_put(f->obj, &f->id, "x", NULL, 1), ACP_EINVAL);
    char long_name[1100];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(objects_put(f->obj, &f->id, long_name, "x", 1), ACP_EINVAL);
    assert_error_mentions("longer than 1024 bytes");
    assert_int_equal(objects_put(NULL, &f->id, "x", "x", 1), ACP_EINVAL);
    assert_int_equal(objects_put(f->obj, NULL, "x", "x", 1), ACP_EINVAL);
}

static void touch_creates_an_empty_object_once(void **state)
{
    fixture *f = *state;
    assert_int_equal(objects_touch(f->obj, &f->id, ".queued"), 0);
    bool exists = false;
    uint64_t size = 99;
    int64_t first = 0, second = 0;
    assert_int_equal(objects_stat(f->obj, &f->id, ".queued", &exists, &size, &first), 0);
    assert_true(exists);
    assert_int_equal(size, 0);
    assert_recent(first);

    assert_int_equal(objects_touch(f->obj, &f->id, ".queued"), 0);
    assert_int_equal(objects_stat(f->obj, &f->id, ".queued", &exists, &size, &second), 0);
    assert_int_equal(second, first);

    /* Touch never replaces an existing object: its content stays. */
    assert_int_equal(objects_put(f->obj, &f->id, "kept", "content", 7), 0);
    assert_int_equal(objects_touch(f->obj, &f->id, "kept"), 0);
    assert_object_is(f->obj, &f->id, "kept", "content", 7);
}

static void reading_a_missing_object_is_not_found(void **state)
{
    fixture *f = *state;
    bytes got = {NULL, 0};
    assert_int_equal(objects_read(f->obj, &f->id, "nothing-here", sink_to_bytes, &got),
                     ACP_ENOTFOUND);
    assert_error_mentions("nothing-here");
    assert_error_mentions("not found");
    assert_int_equal(got.len, 0);
    free(got.data);
}

typedef struct stopping_sink {
    int calls;
    size_t bytes;
    int stop_after; /* calls that return 0 before one returns 42 */
} stopping_sink;

static int sink_that_stops(void *userdata, const void *data, size_t len)
{
    (void)data;
    stopping_sink *s = userdata;
    s->bytes += len;
    return s->calls++ < s->stop_after ? 0 : 42;
}

static void a_failing_sink_stops_the_read(void **state)
{
    fixture *f = *state;
    size_t len = 4 * 1024 * 1024;
    unsigned char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (unsigned char)(i * 7);
    assert_int_equal(objects_put(f->obj, &f->id, "big", data, len), 0);
    free(data);

    stopping_sink first = {0, 0, 0};
    assert_int_equal(objects_read(f->obj, &f->id, "big", sink_that_stops, &first), 42);
    assert_int_equal(first.calls, 1);

    stopping_sink later = {0, 0, 2};
    assert_int_equal(objects_read(f->obj, &f->id, "big", sink_that_stops, &later), 42);
    assert_int_equal(later.calls, 3);
    assert_true(later.bytes < len);
}

static void deleting_an_absent_object_is_fine(void **state)
{
    fixture *f = *state;
    assert_int_equal(objects_delete(f->obj, &f->id, "never-written"), 0);
    assert_int_equal(objects_put(f->obj, &f->id, "once", "1", 1), 0);
    assert_int_equal(objects_delete(f->obj, &f->id, "once"), 0);
    bool exists = true;
    assert_int_equal(objects_stat(f->obj, &f->id, "once", &exists, NULL, NULL), 0);
    assert_false(exists);
    assert_int_equal(objects_delete(f->obj, &f->id, "once"), 0);
    /* Wiping a workspace that does not exist is fine too. */
    acp_job_id other = new_id();
    assert_int_equal(objects_wipe(f->obj, &other), 0);
}

/* ---- files ----------------------------------------------------------------- */

typedef struct md5_sink {
    md5_ctx md5;
    uint64_t bytes;
} md5_sink;

static int sink_to_md5(void *userdata, const void *data, size_t len)
{
    md5_sink *s = userdata;
    md5_update(&s->md5, data, len);
    s->bytes += len;
    return 0;
}

static void put_fd_streams_a_20_mib_file(void **state)
{
    fixture *f = *state;
    char path[] = "/tmp/acp-test-objects-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);

    const size_t total = 20u * 1024 * 1024;
    unsigned char chunk[64 * 1024];
    uint64_t x = 0x9e3779b97f4a7c15u;
    md5_ctx written;
    md5_init(&written);
    for (size_t done = 0; done < total; done += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk[i] = (unsigned char)x;
        }
        md5_update(&written, chunk, sizeof chunk);
        assert_int_equal(write(fd, chunk, sizeof chunk), (ssize_t)sizeof chunk);
    }
    unsigned char want[16], got[16];
    md5_final(&written, want);

    /* The upload starts at offset 0 whatever the descriptor's position. */
    assert_int_equal(lseek(fd, 12345, SEEK_SET), 12345);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "result.bin", fd), 0);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 12345);
    close(fd);

    uint64_t size = 0;
    bool exists = false;
    assert_int_equal(objects_stat(f->obj, &f->id, "result.bin", &exists, &size, NULL), 0);
    assert_true(exists);
    assert_int_equal(size, total);

    md5_sink read_back = {.bytes = 0};
    md5_init(&read_back.md5);
    assert_int_equal(objects_read(f->obj, &f->id, "result.bin", sink_to_md5, &read_back), 0);
    md5_final(&read_back.md5, got);
    assert_int_equal(read_back.bytes, total);
    assert_memory_equal(got, want, sizeof want);
}

static void put_fd_of_an_empty_file_makes_an_empty_object(void **state)
{
    fixture *f = *state;
    char path[] = "/tmp/acp-test-objects-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "nothing", fd), 0);
    close(fd);
    uint64_t size = 1;
    bool exists = false;
    assert_int_equal(objects_stat(f->obj, &f->id, "nothing", &exists, &size, NULL), 0);
    assert_true(exists);
    assert_int_equal(size, 0);
}

static void put_fd_rejects_what_is_not_a_regular_file(void **state)
{
    fixture *f = *state;
    int pipe_fds[2];
    assert_int_equal(pipe(pipe_fds), 0);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "from-pipe", pipe_fds[0]), ACP_EIO);
    assert_error_mentions("not a regular file");
    close(pipe_fds[0]);
    close(pipe_fds[1]);

    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    assert_true(dir >= 0);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "from-dir", dir), ACP_EIO);
    close(dir);

    assert_int_equal(objects_put_fd(f->obj, &f->id, "from-nothing", -1), ACP_EIO);

    /* A file open for writing only cannot be read. */
    char path[] = "/tmp/acp-test-objects-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "write-only", fd), ACP_EIO);
    assert_error_mentions("reading the file failed");
    close(fd);

    bool exists = true;
    assert_int_equal(objects_stat(f->obj, &f->id, "from-pipe", &exists, NULL, NULL), 0);
    assert_false(exists);
}

/* ---- listing and wiping ---------------------------------------------------- */

#define MANY        1100
#define PUT_THREADS 8

typedef struct put_range {
    objects *obj;
    const acp_job_id *id;
    int first, step;
    int failures;
    char error[300];
} put_range;

static void *put_many(void *arg)
{
    put_range *r = arg;
    char name[32];
    for (int i = r->first; i < MANY; i += r->step) {
        snprintf(name, sizeof name, "obj-%04d", i);
        if (objects_put(r->obj, r->id, name, name, strlen(name)) != 0 && !r->failures++)
            snprintf(r->error, sizeof r->error, "%s", acp_last_error());
    }
    return NULL;
}

static void list_pages_through_more_than_1000_objects(void **state)
{
    fixture *f = *state;
    pthread_t threads[PUT_THREADS];
    put_range ranges[PUT_THREADS];
    for (int t = 0; t < PUT_THREADS; t++) {
        ranges[t] = (put_range){f->obj, &f->id, t, PUT_THREADS, 0, ""};
        assert_int_equal(pthread_create(&threads[t], NULL, put_many, &ranges[t]), 0);
    }
    for (int t = 0; t < PUT_THREADS; t++) {
        pthread_join(threads[t], NULL);
        if (ranges[t].failures)
            fail_msg("%d puts failed: %s", ranges[t].failures, ranges[t].error);
    }

    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, MANY);
    char name[32];
    for (size_t i = 0; i < list.count; i++) {
        snprintf(name, sizeof name, "obj-%04zu", i);
        assert_string_equal(list.items[i].name, name);
        assert_int_equal(list.items[i].size, strlen(name));
        assert_recent(list.items[i].mtime);
        if (i > 0)
            assert_true(strcmp(list.items[i - 1].name, list.items[i].name) < 0);
    }
    object_list_free(&list);

    assert_int_equal(objects_wipe(f->obj, &f->id), 0);
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, 0);
    object_list_free(&list);
}

/* The listing and a HEAD agree on an object's time whatever the local time
 * zone (libs3 parses listing times as local time). */
static void listing_times_are_utc_in_any_time_zone(void **state)
{
    fixture *f = *state;
    const char *saved = getenv("TZ");
    char *restore = saved ? strdup(saved) : NULL;
    /* A POSIX zone string: needs no time zone database. */
    assert_int_equal(setenv("TZ", "IST-5:30", 1), 0);
    tzset();
    int rc = objects_put(f->obj, &f->id, "when", "now", 3);
    int64_t head_time = 0;
    bool exists = false;
    if (rc == 0)
        rc = objects_stat(f->obj, &f->id, "when", &exists, NULL, &head_time);
    object_list list = {NULL, 0};
    if (rc == 0)
        rc = objects_list(f->obj, &f->id, &list);
    if (restore)
        setenv("TZ", restore, 1);
    else
        unsetenv("TZ");
    tzset();
    free(restore);
    assert_int_equal(rc, 0);
    assert_true(exists);
    assert_int_equal(list.count, 1);
    assert_int_equal(list.items[0].mtime, head_time);
    assert_recent(list.items[0].mtime);
    object_list_free(&list);
}

static void wipe_removes_only_its_workspace(void **state)
{
    fixture *f = *state;
    /* A neighbour whose id differs only in the last hex digit... */
    acp_job_id neighbour = f->id;
    neighbour.bytes[15] ^= 0x01;
    /* ...and a key that extends "<root><id>" without a '/': under a root
     * "<root><id>x/". */
    char hex[ACP_JOB_ID_STRLEN], sibling_root[200];
    snprintf(sibling_root, sizeof sibling_root, "%s/%sx", f->root, hex_of(&f->id, hex));
    objects *sibling = open_with_root(sibling_root);
    acp_job_id sibling_id = new_id();

    assert_int_equal(objects_put(f->obj, &f->id, ".workspace", NULL, 0), 0);
    assert_int_equal(objects_put(f->obj, &f->id, "a", "1", 1), 0);
    assert_int_equal(objects_put(f->obj, &f->id, "dir/b", "2", 1), 0);
    assert_int_equal(objects_put(f->obj, &neighbour, "a", "3", 1), 0);
    assert_int_equal(objects_put(sibling, &sibling_id, "c", "4", 1), 0);

    assert_int_equal(objects_wipe(f->obj, &f->id), 0);

    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, 0);
    object_list_free(&list);
    char prefix[200];
    snprintf(prefix, sizeof prefix, "%s/%s/", f->root, hex);
    assert_no_key(prefix);

    assert_int_equal(objects_list(f->obj, &neighbour, &list), 0);
    assert_int_equal(list.count, 1);
    assert_string_equal(list.items[0].name, "a");
    object_list_free(&list);
    assert_object_is(sibling, &sibling_id, "c", "4", 1);

    assert_int_equal(objects_wipe(f->obj, &neighbour), 0);
    assert_int_equal(objects_wipe(sibling, &sibling_id), 0);
    objects_close(sibling);
}

/* ---- threads --------------------------------------------------------------- */

#define WORKERS    8
#define PER_WORKER 50

typedef struct worker {
    objects *obj;
    int number;
    acp_job_id id;
    int failures;
    char error[300];
} worker;

static void worker_fail(worker *w, const char *what, const char *name)
{
    if (!w->failures++)
        snprintf(w->error, sizeof w->error, "%s %s: %s", what, name, acp_last_error());
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    char name[32], content[64];
    for (int i = 0; i < PER_WORKER; i++) {
        snprintf(name, sizeof name, "w%d-%02d", w->number, i);
        snprintf(content, sizeof content, "worker %d object %d", w->number, i);
        if (objects_put(w->obj, &w->id, name, content, strlen(content)) != 0) {
            worker_fail(w, "put", name);
            continue;
        }
        bytes got = {NULL, 0};
        if (objects_read(w->obj, &w->id, name, sink_to_bytes, &got) != 0)
            worker_fail(w, "read", name);
        else if (got.len != strlen(content) || memcmp(got.data, content, got.len) != 0)
            worker_fail(w, "compare", name);
        free(got.data);
        if (objects_delete(w->obj, &w->id, name) != 0)
            worker_fail(w, "delete", name);
        bool exists = true;
        if (objects_stat(w->obj, &w->id, name, &exists, NULL, NULL) != 0 || exists)
            worker_fail(w, "stat after delete", name);
    }
    return NULL;
}

static void one_handle_serves_many_threads(void **state)
{
    fixture *f = *state;
    pthread_t threads[WORKERS];
    worker workers[WORKERS];
    for (int t = 0; t < WORKERS; t++) {
        workers[t] = (worker){.obj = f->obj, .number = t, .id = new_id()};
        assert_int_equal(pthread_create(&threads[t], NULL, worker_run, &workers[t]), 0);
    }
    for (int t = 0; t < WORKERS; t++)
        pthread_join(threads[t], NULL);
    for (int t = 0; t < WORKERS; t++) {
        if (workers[t].failures)
            fail_msg("worker %d: %d failures, first: %s", t, workers[t].failures, workers[t].error);
        object_list list;
        assert_int_equal(objects_list(f->obj, &workers[t].id, &list), 0);
        assert_int_equal(list.count, 0);
        object_list_free(&list);
    }
}

/* ---- many descriptors ----------------------------------------------------- */

/* A host process may hold thousands of descriptors; sockets numbered
 * FD_SETSIZE or more must neither crash nor hang a request. */
static void requests_work_with_descriptors_beyond_fd_setsize(void **state)
{
    fixture *f = *state;
    struct rlimit limit;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &limit), 0);
    rlim_t want = FD_SETSIZE + 64;
    if (limit.rlim_cur < want) {
        if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < want)
            skip();
        struct rlimit raised = {want, limit.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &raised), 0);
    }
    /* Fill every descriptor below FD_SETSIZE + 8. */
    int filler[FD_SETSIZE + 8];
    int count = 0;
    for (;;) {
        int fd = dup(0);
        assert_true(fd >= 0);
        filler[count++] = fd;
        if (fd >= FD_SETSIZE + 7 || count == FD_SETSIZE + 8)
            break;
    }
    objects *obj = open_with_root(f->root); /* its sockets are above FD_SETSIZE */
    assert_int_equal(objects_put(obj, &f->id, "high", "fd", 2), 0);
    assert_int_equal(objects_put(obj, &f->id, "high-empty", NULL, 0), 0);
    assert_object_is(obj, &f->id, "high", "fd", 2);
    object_list list;
    assert_int_equal(objects_list(obj, &f->id, &list), 0);
    assert_int_equal(list.count, 2);
    object_list_free(&list);
    assert_int_equal(objects_wipe(obj, &f->id), 0);
    objects_close(obj);
    for (int i = 0; i < count; i++)
        close(filler[i]);
    if (limit.rlim_cur < want)
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &limit), 0);
}

static bool keep_dot_names(const char *name)
{
    return name[0] == '.';
}

static void wipe_except_keeps_what_it_is_told(void **state)
{
    fixture *f = *state;
    const char *names[] = {".workspace", ".complete", "input-config", "out.txt", "log.txt"};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(objects_put(f->obj, &f->id, names[i], "x", 1), 0);
    assert_int_equal(objects_wipe_except(f->obj, &f->id, keep_dot_names), 0);
    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[0].name, ".complete");
    assert_string_equal(list.items[1].name, ".workspace");
    object_list_free(&list);
}

/* More items than one batch holds, empty and not, each with its content. */
static void put_many_writes_every_item(void **state)
{
    fixture *f = *state;
    enum { COUNT = 11 };
    objects_item items[COUNT];
    char names[COUNT][16], contents[COUNT][32];
    for (size_t i = 0; i < COUNT; i++) {
        snprintf(names[i], sizeof names[i], "item-%02zu", i);
        if (i % 3)
            snprintf(contents[i], sizeof contents[i], "content of %zu", i);
        else
            contents[i][0] = '\0';
        items[i] = (objects_item){names[i], contents[i], strlen(contents[i])};
    }
    assert_int_equal(objects_put_many(f->obj, &f->id, items, COUNT), 0);
    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, COUNT);
    object_list_free(&list);
    for (size_t i = 0; i < COUNT; i++)
        assert_object_is(f->obj, &f->id, names[i], contents[i], strlen(contents[i]));
}

static void put_many_checks_every_name_before_sending(void **state)
{
    fixture *f = *state;
    objects_item items[] = {{"fine", "x", 1}, {"/abs", "x", 1}};
    assert_int_equal(objects_put_many(f->obj, &f->id, items, 2), ACP_EINVAL);
    objects_item no_data[] = {{"fine", "x", 1}, {"other", NULL, 3}};
    assert_int_equal(objects_put_many(f->obj, &f->id, no_data, 2), ACP_EINVAL);
    assert_error_mentions("NULL data for 3 bytes");
    object_list list;
    assert_int_equal(objects_list(f->obj, &f->id, &list), 0);
    assert_int_equal(list.count, 0);
    object_list_free(&list);
}

static void workspaces_under_the_root_are_listed_in_pages(void **state)
{
    fixture *f = *state;
    enum { N = 5 };
    acp_job_id ids[N];
    for (int i = 0; i < N; i++) {
        ids[i] = new_id();
        assert_int_equal(objects_put(f->obj, &ids[i], ".workspace", "", 0), 0);
        assert_int_equal(objects_put(f->obj, &ids[i], "a.txt", "a", 1), 0);
    }
    /* Prefixes under the root that are not job ids are not listed. */
    char other_root[200];
    snprintf(other_root, sizeof other_root, "%s/not-an-id", f->root);
    objects *other = open_with_root(other_root);
    acp_job_id stray = new_id();
    assert_int_equal(objects_put(other, &stray, ".workspace", "", 0), 0);

    acp_job_id seen[N + 1];
    size_t total = 0, count;
    bool more = true;
    const acp_job_id *after = NULL;
    while (more) {
        assert_true(total <= N);
        assert_int_equal(objects_list_workspaces(f->obj, after, 2, seen + total, &count, &more), 0);
        assert_true(count <= 2);
        total += count;
        after = total ? &seen[total - 1] : NULL;
    }
    assert_int_equal(total, N);
    for (size_t i = 1; i < total; i++)
        assert_true(memcmp(seen[i - 1].bytes, seen[i].bytes, 16) < 0);
    for (int i = 0; i < N; i++) {
        bool found = false;
        for (size_t j = 0; j < total; j++)
            found = found || acp_job_id_equal(&ids[i], &seen[j]);
        assert_true(found);
        assert_int_equal(objects_wipe(f->obj, &ids[i]), 0);
    }
    assert_int_equal(objects_wipe(other, &stray), 0);
    objects_close(other);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
#define FIXTURE_TEST(fn) cmocka_unit_test_setup_teardown(fn, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_with_a_good_config_works),
        cmocka_unit_test(open_reports_a_wrong_secret),
        cmocka_unit_test(open_reports_an_unknown_access_key),
        cmocka_unit_test(open_reports_a_missing_bucket),
        cmocka_unit_test(open_reports_a_closed_port),
        cmocka_unit_test(patient_put_fails_at_once_on_a_permanent_error),
        cmocka_unit_test(open_rejects_bad_arguments),
        cmocka_unit_test(root_path_is_normalised),
        FIXTURE_TEST(put_stat_and_read_round_trip),
        FIXTURE_TEST(bad_names_are_rejected),
        FIXTURE_TEST(touch_creates_an_empty_object_once),
        FIXTURE_TEST(reading_a_missing_object_is_not_found),
        FIXTURE_TEST(a_failing_sink_stops_the_read),
        FIXTURE_TEST(deleting_an_absent_object_is_fine),
        FIXTURE_TEST(put_fd_streams_a_20_mib_file),
        FIXTURE_TEST(put_fd_of_an_empty_file_makes_an_empty_object),
        FIXTURE_TEST(put_fd_rejects_what_is_not_a_regular_file),
        FIXTURE_TEST(list_pages_through_more_than_1000_objects),
        FIXTURE_TEST(listing_times_are_utc_in_any_time_zone),
        FIXTURE_TEST(wipe_removes_only_its_workspace),
        FIXTURE_TEST(one_handle_serves_many_threads),
        FIXTURE_TEST(requests_work_with_descriptors_beyond_fd_setsize),
        FIXTURE_TEST(wipe_except_keeps_what_it_is_told),
        FIXTURE_TEST(put_many_writes_every_item),
        FIXTURE_TEST(put_many_checks_every_name_before_sending),
        FIXTURE_TEST(workspaces_under_the_root_are_listed_in_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
