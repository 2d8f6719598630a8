/* The S3 client against the stack's radosgw (issue 14): TLS verification
 * with the stack's test CA, errors that say what is wrong with the
 * credentials and never show them, credentials from the environment, a
 * 200 MiB result uploaded in parts and read back, and (through the fault
 * server) retries, timeouts, a multipart upload failing in the middle, and
 * AWS's answer to a wrong region. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <pthread.h>

#include "clock.h"
#include "objects.h"
#include "platform_fixture.h"
#include "s3_fault_server.h"
#include "transport_curl.h"

static stack_env env;

#define MIB (1u << 20)

/* ---- logs: kept, to look for secrets and warnings ------------------------ */

typedef struct log_book {
    pthread_mutex_t lock;
    char text[64 * 1024];
    size_t len;
    int warnings;
} log_book;

static log_book book = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void book_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    pthread_mutex_lock(&book.lock);
    if (level >= ACP_LOG_WARN)
        book.warnings++;
    int n = snprintf(book.text + book.len, sizeof book.text - book.len, "%s\n", message);
    if (n > 0 && book.len + (size_t)n < sizeof book.text)
        book.len += (size_t)n;
    pthread_mutex_unlock(&book.lock);
}

static void book_clear(void)
{
    pthread_mutex_lock(&book.lock);
    book.len = 0;
    book.text[0] = '\0';
    book.warnings = 0;
    pthread_mutex_unlock(&book.lock);
}

static const logger book_logger = {.fn = book_log, .level = ACP_LOG_DEBUG};

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
    printf("# %s\n", acp_last_error()); /* what a user would read */
}

/* Neither the last error nor any log line shows @secret. */
static void assert_not_shown(const char *secret)
{
    if (strstr(acp_last_error(), secret))
        fail_msg("the error shows a secret: %s", acp_last_error());
    pthread_mutex_lock(&book.lock);
    bool logged = strstr(book.text, secret) != NULL;
    pthread_mutex_unlock(&book.lock);
    if (logged)
        fail_msg("a log line shows a secret:\n%s", book.text);
}

/* ---- S3 settings ---------------------------------------------------------- */

static acp_s3_client_config default_client(void)
{
    acp_config config;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    return config.s3_client;
}

static acp_s3_config plain_s3(void)
{
    acp_s3_config s3 = {
        .host = env.s3_host,
        .port = atoi(env.s3_port),
        .bucket = env.s3_bucket,
        .access_key = env.s3_access_key,
        .secret_key = env.s3_secret_key,
        .root_path = "acp-s3-client",
    };
    return s3;
}

static const char *tls_port(void)
{
    const char *port = getenv("ACP_TEST_S3_TLS_PORT");
    if (!port || !*port)
        fail_msg("ACP_TEST_S3_TLS_PORT is not set (scripts/stack env)");
    return port;
}

static const char *ca_file(void)
{
    const char *path = getenv("ACP_TEST_S3_CA_FILE");
    if (!path || !*path)
        fail_msg("ACP_TEST_S3_CA_FILE is not set (scripts/stack env)");
    return path;
}

static acp_s3_config tls_s3(const char *host, const char *ca)
{
    acp_s3_config s3 = plain_s3();
    s3.host = host;
    s3.port = atoi(tls_port());
    s3.https = 1;
    s3.ca_file = ca;
    return s3;
}

static int open_with(objects **out, const acp_s3_config *s3, const acp_s3_client_config *client)
{
    *out = NULL;
    book_clear();
    return objects_open(out, s3, client, &book_logger);
}

/* A round trip through @obj: what S3 holds is what was sent. */
static void assert_round_trip(objects *obj)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    static const char text[] = "kept over TLS";
    assert_int_equal(objects_put(obj, &id, "t.txt", text, sizeof text - 1), 0);
    object_list list = {0};
    assert_int_equal(objects_list(obj, &id, &list), 0);
    assert_int_equal(list.count, 1);
    assert_int_equal(list.items[0].size, sizeof text - 1);
    object_list_free(&list);
    assert_int_equal(objects_wipe(obj, &id), 0);
}

/* ---- TLS ------------------------------------------------------------------ */

static void tls_verifies_with_the_test_ca(void **state)
{
    (void)state;
    acp_s3_config s3 = tls_s3("127.0.0.1", ca_file());
    acp_s3_client_config client = default_client();
    objects *obj;
    if (open_with(&obj, &s3, &client) != 0)
        fail_msg("objects_open over TLS: %s", acp_last_error());
    assert_round_trip(obj);
    assert_int_equal(book.warnings, 0);
    objects_close(obj);
}

static void tls_without_the_ca_is_refused(void **state)
{
    (void)state;
    acp_s3_config s3 = tls_s3("127.0.0.1", NULL); /* the system's store */
    acp_s3_client_config client = default_client();
    objects *obj;
    assert_int_equal(open_with(&obj, &s3, &client), ACP_ESTORAGE);
    assert_null(obj);
    assert_error_mentions("certificate");
    /* no use retrying a certificate that does not verify */
    assert_int_equal(book.warnings, 0);
}

static void tls_with_a_wrong_host_name_is_refused(void **state)
{
    (void)state;
    /* The certificate is for 127.0.0.1 only. */
    acp_s3_config s3 = tls_s3("localhost", ca_file());
    acp_s3_client_config client = default_client();
    objects *obj;
    assert_int_equal(open_with(&obj, &s3, &client), ACP_ESTORAGE);
    assert_error_mentions("localhost");
}

static void tls_skip_verify_is_a_logged_choice(void **state)
{
    (void)state;
    acp_s3_config s3 = tls_s3("localhost", NULL);
    acp_s3_client_config client = default_client();
    client.tls_skip_verify = 1;
    objects *obj;
    if (open_with(&obj, &s3, &client) != 0)
        fail_msg("objects_open with tls_skip_verify: %s", acp_last_error());
    assert_true(book.warnings >= 1);
    assert_non_null(strstr(book.text, "verification is OFF"));
    assert_round_trip(obj);
    objects_close(obj);
}

/* ---- credentials ---------------------------------------------------------- */

static void a_wrong_secret_says_so_without_showing_it(void **state)
{
    (void)state;
    acp_s3_config s3 = plain_s3();
    s3.secret_key = "not-the-secret-4e1f0c";
    acp_s3_client_config client = default_client();
    objects *obj;
    assert_int_equal(open_with(&obj, &s3, &client), ACP_ESTORAGE);
    assert_error_mentions("SignatureDoesNotMatch");
    assert_error_mentions("access denied");
    assert_not_shown("not-the-secret-4e1f0c");
    assert_not_shown(env.s3_secret_key);
}

static void an_unknown_access_key_says_so(void **state)
{
    (void)state;
    acp_s3_config s3 = plain_s3();
    s3.access_key = "AKIANOSUCHKEY0000000";
    s3.session_token = "token-that-must-not-show-7d2a";
    acp_s3_client_config client = default_client();
    objects *obj;
    assert_int_equal(open_with(&obj, &s3, &client), ACP_ESTORAGE);
    assert_error_mentions("InvalidAccessKeyId");
    assert_not_shown(env.s3_secret_key);
    assert_not_shown("token-that-must-not-show-7d2a");
}

/* ---- whole platforms -------------------------------------------------------- */

/* Writes "big.bin" of {"mib":N} MiB of a known pattern. */
static unsigned char pattern(uint64_t i)
{
    return (unsigned char)(i * 131 + (i >> 20) * 7);
}

static int big_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    const char *mib_text = ctx->config ? strstr(ctx->config, "\"mib\":") : NULL;
    size_t mib = mib_text ? strtoul(mib_text + 6, NULL, 10) : 0;
    int fd = openat(ctx->dir_fd, "big.bin", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 1;
    unsigned char *chunk = malloc(MIB);
    int rc = 0;
    for (size_t m = 0; m < mib && !rc; m++) {
        for (size_t i = 0; i < MIB; i++)
            chunk[i] = pattern((uint64_t)m * MIB + i);
        rc = write(fd, chunk, MIB) == (ssize_t)MIB ? 0 : 1;
    }
    free(chunk);
    close(fd);
    return rc ? rc : acp_job_add_output(ctx, "big.bin");
}

static void big_free(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops big_ops = {ACP_EXECUTOR_OPS_VERSION, big_execute, big_free};
static const acp_executor_factory big_factory = {ACP_EXECUTOR_FACTORY_VERSION, (void *)&big_ops,
                                                 fixture_ops_create, NULL};

typedef struct world {
    fixture_config fc;
    char tag[9];
    acp_platform *p;
} world;

static void world_make(world *w)
{
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, 2, &big_factory);
    /* The S3 requests counted and failed here are a native job's: its
     * result files only (the lcp layout adds flags and listings). */
    w->fc.config.layout = ACP_LAYOUT_NATIVE;
    w->fc.config.log = book_log;
    w->fc.config.log_level = ACP_LOG_WARN;
}

static void world_start(world *w)
{
    book_clear();
    if (acp_init(&w->p, &w->fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
}

static acp_job_id submit_mib(world *w, size_t mib)
{
    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"mib\":%zu}", w->tag, mib);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job = {0};
    if (acp_submit(w->p, w->fc.config.queues[0].id, &sub, &job) != 0)
        fail_msg("acp_submit: %s", acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    return id;
}

static void wait_status(world *w, const acp_job_id *id, acp_job_status status, acp_job *job)
{
    if (!fixture_wait_status(w->p, id, status, FIXTURE_WAIT_S, job))
        fail_msg("job ended %s (%s), expected %s", acp_job_status_name(job->status),
                 job->message ? job->message : "no message", acp_job_status_name(status));
}

typedef struct compare {
    uint64_t at;
    uint64_t first_difference; /* UINT64_MAX: none */
} compare;

static int compare_sink(void *userdata, const void *data, size_t len)
{
    compare *c = userdata;
    const unsigned char *bytes = data;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != pattern(c->at + i) && c->first_difference == UINT64_MAX)
            c->first_difference = c->at + i;
    c->at += len;
    return 0;
}

/* The keys come from the environment when the configuration leaves them
 * out, as with the AWS tools. */
static void credentials_from_the_environment(void **state)
{
    (void)state;
    world w = {0};
    world_make(&w);
    setenv("AWS_ACCESS_KEY_ID", env.s3_access_key, 1);
    setenv("AWS_SECRET_ACCESS_KEY", env.s3_secret_key, 1);
    w.fc.config.s3.access_key = NULL;
    w.fc.config.s3.secret_key = NULL;
    world_start(&w);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    acp_job_id id = submit_mib(&w, 1);
    acp_job job = {0};
    wait_status(&w, &id, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);
    compare c = {.first_difference = UINT64_MAX};
    assert_int_equal(acp_read_result(w.p, &id, "big.bin", compare_sink, &c), 0);
    assert_int_equal(c.at, MIB);
    acp_delete_job(w.p, &id);
    acp_shutdown(w.p);
}

/* 200 MiB in 5 MiB parts, read back byte for byte. */
static void a_200_mib_result_goes_up_in_parts(void **state)
{
    (void)state;
    world w = {0};
    world_make(&w);
    w.fc.config.s3_client.multipart_threshold = 5 * MIB;
    w.fc.config.s3_client.part_size = 5 * MIB;
    world_start(&w);
    acp_stats before = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(w.p, &before), 0);
    acp_job_id id = submit_mib(&w, 200);
    acp_job job = {0};
    wait_status(&w, &id, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);
    acp_stats after = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(w.p, &after), 0);
    /* start, 40 parts, complete: nothing retried on a healthy store */
    assert_int_equal(after.s3_puts - before.s3_puts, 42);
    compare c = {.first_difference = UINT64_MAX};
    assert_int_equal(acp_read_result(w.p, &id, "big.bin", compare_sink, &c), 0);
    assert_int_equal(c.at, 200ull * MIB);
    if (c.first_difference != UINT64_MAX)
        fail_msg("the result read back differs at byte %llu",
                 (unsigned long long)c.first_difference);
    assert_int_equal(acp_delete_job(w.p, &id), 0);
    acp_shutdown(w.p);
}

/* ---- through the fault server ------------------------------------------------ */

static s3_fault_server *proxy_open(void)
{
    s3_fault_server *server = s3_fault_server_open(env.s3_host, atoi(env.s3_port));
    if (!server)
        fail_msg("the fault server did not start");
    return server;
}

static acp_s3_config via(s3_fault_server *server)
{
    acp_s3_config s3 = plain_s3();
    s3.host = "127.0.0.1";
    s3.port = s3_fault_server_port(server);
    return s3;
}

/* Fast retries, so that the tests do not wait for back-offs. */
static acp_s3_client_config quick_client(void)
{
    acp_s3_client_config client = default_client();
    client.retry_base_ms = 20;
    client.retry_max_ms = 50;
    client.request_timeout_ms = 1000;
    client.connect_timeout_ms = 1000;
    return client;
}

static objects *open_via(s3_fault_server *server, const acp_s3_client_config *client)
{
    acp_s3_config s3 = via(server);
    objects *obj;
    if (open_with(&obj, &s3, client) != 0)
        fail_msg("objects_open through the fault server: %s", acp_last_error());
    return obj;
}

/* 500, 502, 503 and 504 are retried after a back-off; any 4xx fails at
 * once, with the server's code in the error. */
static void only_transient_answers_are_retried(void **state)
{
    (void)state;
    s3_fault_server *server = proxy_open();
    acp_s3_client_config client = quick_client();
    objects *obj = open_via(server, &client);
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    static const struct {
        int status;
        const char *code;
        bool transient;
    } answers[] = {{503, "SlowDown", true},         {500, "InternalError", true},
                   {502, "BadGateway", true},       {504, "GatewayTimeout", true},
                   {403, "AccessDenied", false},    {400, "InvalidRequest", false},
                   {429, "TooManyRequests", false}, {409, "OperationAborted", false}};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        bool transient = answers[i].transient;
        book_clear();
        s3_fault_counts before = s3_fault_server_counts(server);
        /* twice: a transient answer is retried past it */
        s3_fault_server_fail(server, "PUT", "answer.txt", transient ? 2 : 1, answers[i].status,
                             answers[i].code);
        int rc = objects_put(obj, &id, "answer.txt", "x", 1);
        s3_fault_counts after = s3_fault_server_counts(server);
        if (transient) {
            assert_int_equal(rc, 0);
            assert_int_equal(after.injected - before.injected, 2);
            assert_int_equal(after.forwarded - before.forwarded, 1);
            /* each retry waited its back-off, and said so */
            assert_int_equal(book.warnings, 2);
            assert_non_null(strstr(book.text, "retry 1 of 3 in "));
            assert_non_null(strstr(book.text, "retry 2 of 3 in "));
            assert_non_null(strstr(book.text, answers[i].code));
        } else {
            assert_int_equal(rc, ACP_ESTORAGE);
            assert_error_mentions(answers[i].code);
            assert_int_equal(after.requests - before.requests, 1);
            assert_int_equal(book.warnings, 0);
        }
    }
    assert_int_equal(objects_wipe(obj, &id), 0);
    objects_close(obj);
    s3_fault_server_close(server);
}

static void a_silent_server_fails_the_request_within_the_timeout(void **state)
{
    (void)state;
    s3_fault_server *server = proxy_open();
    acp_s3_client_config client = quick_client();
    client.retries = 1;
    objects *obj = open_via(server, &client);
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    s3_fault_server_mode(server, S3_FAULT_SILENT, 0);
    int64_t start = clock_now_ms();
    assert_int_equal(objects_put(obj, &id, "silent.txt", "x", 1), ACP_ESTORAGE);
    int64_t took = clock_now_ms() - start;
    assert_error_mentions("1000 ms");
    /* two attempts of 1 s and a back-off: a hang guard, not a measurement */
    if (took > 60000)
        fail_msg("a silent server held the request for %lld ms", (long long)took);
    objects_close(obj);
    s3_fault_server_close(server);
}

static int count_received(void *userdata, const void *data, size_t len)
{
    (void)data;
    *(size_t *)userdata += len;
    return 0;
}

static void a_transfer_that_stalls_fails_within_the_timeout(void **state)
{
    (void)state;
    s3_fault_server *server = proxy_open();
    acp_s3_client_config client = quick_client();
    objects *obj = open_via(server, &client);
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    char body[4096];
    memset(body, 'c', sizeof body);
    assert_int_equal(objects_put(obj, &id, "cut.bin", body, sizeof body), 0);
    s3_fault_server_mode(server, S3_FAULT_CUT, 100);
    size_t received = 0;
    assert_int_equal(objects_read(obj, &id, "cut.bin", count_received, &received), ACP_ESTORAGE);
    /* what reached the sink cannot be taken back: not retried */
    assert_int_equal(received, 100);
    assert_error_mentions("1000 ms");
    s3_fault_server_mode(server, S3_FAULT_PROXY, 0);
    assert_int_equal(objects_wipe(obj, &id), 0);
    objects_close(obj);
    s3_fault_server_close(server);
}

/* What AWS answers to a request signed for the wrong region. */
static void a_wrong_region_names_the_right_one(void **state)
{
    (void)state;
    s3_fault_server *server = proxy_open();
    s3_fault_server_fail_document(
        server, "GET", NULL, 1, 400,
        "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is "
        "malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
        "<Region>eu-west-1</Region><RequestId>R</RequestId></Error>");
    acp_s3_config s3 = via(server);
    acp_s3_client_config client = quick_client();
    objects *obj;
    assert_int_equal(open_with(&obj, &s3, &client), ACP_ESTORAGE);
    assert_error_mentions("AuthorizationHeaderMalformed");
    assert_error_mentions("'eu-west-1'");
    assert_error_mentions("config.s3.region");
    s3_fault_server_close(server);
}

/* A job whose result cannot be uploaded because S3 stopped answering
 * fails once result_retry_seconds have passed, with a message that says
 * why; the platform goes on when S3 is back. */
static void a_stalled_store_fails_the_job_as_documented(void **state)
{
    (void)state;
    s3_fault_server *server = proxy_open();
    world w = {0};
    world_make(&w);
    w.fc.config.s3 = via(server);
    w.fc.config.s3.root_path = w.fc.root_path;
    w.fc.config.s3_client = quick_client();
    w.fc.config.result_retry_seconds = 3;
    world_start(&w);
    s3_fault_server_mode(server, S3_FAULT_SILENT, 0);
    acp_job_id id = submit_mib(&w, 1);
    acp_job job = {0};
    wait_status(&w, &id, ACP_STATUS_FAILED, &job);
    if (!job.message || !strstr(job.message, "unreachable for 3 s") ||
        !strstr(job.message, "1000 ms"))
        fail_msg("message: %s", job.message ? job.message : "(none)");
    printf("# %s\n", job.message);
    acp_job_clear(&job);
    s3_fault_server_mode(server, S3_FAULT_PROXY, 0);
    acp_job_id next = submit_mib(&w, 1);
    wait_status(&w, &next, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);
    acp_delete_job(w.p, &id);
    acp_delete_job(w.p, &next);
    acp_shutdown(w.p);
    s3_fault_server_close(server);
}

typedef struct uploads {
    const char *prefix;
    int count;
} uploads;

static int count_upload(void *userdata, const char *key, const char *upload_id)
{
    (void)upload_id;
    uploads *u = userdata;
    if (strncmp(key, u->prefix, strlen(u->prefix)) == 0)
        u->count++;
    return 0;
}

/* Incomplete multipart uploads under @prefix, asked of radosgw itself. */
static int incomplete_uploads(const char *prefix)
{
    acp_s3_config s3 = plain_s3();
    acp_s3_client_config client = default_client();
    transport *t = NULL;
    if (transport_curl_open(&t, &s3, &client) != 0)
        fail_msg("transport_curl_open: %s", acp_last_error());
    uploads u = {prefix, 0};
    transport_request req = {
        .op = TRANSPORT_MPU_LIST,
        .mpu_list = {.prefix = prefix, .on_upload = count_upload, .userdata = &u}};
    transport_run(t, &req, 1);
    if (req.outcome.result != TRANSPORT_OK)
        fail_msg("listing multipart uploads: %s", req.outcome.detail);
    assert_false(req.mpu_list.truncated);
    transport_close(t);
    return u.count;
}

static void a_multipart_upload_failing_midway_leaves_no_parts(void **state)
{
    (void)state;
    s3_fault_server *server = proxy_open();
    world w = {0};
    world_make(&w);
    w.fc.config.s3 = via(server);
    w.fc.config.s3.root_path = w.fc.root_path;
    w.fc.config.s3_client = quick_client();
    w.fc.config.s3_client.multipart_threshold = 5 * MIB;
    w.fc.config.s3_client.part_size = 5 * MIB;
    world_start(&w);
    s3_fault_server_fail(server, "PUT", "partNumber=7&", 1, 403, "AccessDenied");
    acp_job_id id = submit_mib(&w, 60);
    acp_job job = {0};
    wait_status(&w, &id, ACP_STATUS_FAILED, &job);
    if (!job.message || !strstr(job.message, "access denied"))
        fail_msg("message: %s", job.message ? job.message : "(none)");
    acp_job_clear(&job);
    /* the job's keys: "<root>/<id>/", the root without its leading '/' */
    const char *root = w.fc.root_path + (w.fc.root_path[0] == '/');
    size_t root_len = strlen(root);
    while (root_len && root[root_len - 1] == '/')
        root_len--;
    char prefix[300];
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(prefix, sizeof prefix, "%.*s/%s/", (int)root_len, root, acp_job_id_format(&id, hex));
    assert_int_equal(incomplete_uploads(prefix), 0);
    acp_delete_job(w.p, &id);
    acp_shutdown(w.p);
    s3_fault_server_close(server);
}

int main(void)
{
    int status;
    if (stack_env_load(&env, &status) != 0)
        return status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_verifies_with_the_test_ca),
        cmocka_unit_test(tls_without_the_ca_is_refused),
        cmocka_unit_test(tls_with_a_wrong_host_name_is_refused),
        cmocka_unit_test(tls_skip_verify_is_a_logged_choice),
        cmocka_unit_test(a_wrong_secret_says_so_without_showing_it),
        cmocka_unit_test(an_unknown_access_key_says_so),
        cmocka_unit_test(credentials_from_the_environment),
        cmocka_unit_test(a_200_mib_result_goes_up_in_parts),
        cmocka_unit_test(only_transient_answers_are_retried),
        cmocka_unit_test(a_silent_server_fails_the_request_within_the_timeout),
        cmocka_unit_test(a_transfer_that_stalls_fails_within_the_timeout),
        cmocka_unit_test(a_wrong_region_names_the_right_one),
        cmocka_unit_test(a_stalled_store_fails_the_job_as_documented),
        cmocka_unit_test(a_multipart_upload_failing_midway_leaves_no_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
