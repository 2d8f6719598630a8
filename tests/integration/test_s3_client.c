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

#include "objects.h"
#include "platform_fixture.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
