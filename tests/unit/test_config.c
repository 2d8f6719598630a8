/* acp_config_init defaults and every acp_config_validate rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"

static int create_nothing(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    (void)out;
    return -1;
}

static const acp_executor_factory factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, create_nothing,
                                             NULL};

typedef struct fixture {
    acp_config config;
    acp_queue_config queues[3];
} fixture;

static int setup(void **state)
{
    static fixture f;
    acp_config_init(&f.config, ACP_CONFIG_VERSION);
    f.config.db.host = "127.0.0.1";
    f.config.db.dbname = "jobs";
    f.config.db.user = "svc";
    f.config.db.password = "secret";
    f.config.s3.host = "127.0.0.1";
    f.config.s3.bucket = "results";
    f.config.s3.access_key = "AK";
    f.config.s3.secret_key = "SK";
    const char *ids[] = {"render", "index", "export"};
    for (int i = 0; i < 3; i++) {
        acp_queue_config_init(&f.queues[i], ACP_QUEUE_CONFIG_VERSION);
        f.queues[i].id = ids[i];
        f.queues[i].host = "127.0.0.1";
        f.queues[i].user = "guest";
        f.queues[i].password = "guest";
    }
    f.config.queues = f.queues;
    f.config.queue_count = 3;
    f.config.executor_factory = &factory;
    *state = &f;
    return 0;
}

/* Assert validation fails with @code and a detail that contains @field and @text. */
#define assert_invalid(config, code, field, text)                                                  \
    do {                                                                                           \
        assert_int_equal(acp_config_validate(config), (code));                                     \
        const char *msg_ = acp_last_error();                                                       \
        if (!strstr(msg_, (field)) || !strstr(msg_, (text)))                                       \
            fail_msg("message '%s' lacks '%s' or '%s'", msg_, (field), (text));                    \
    } while (0)

static void defaults_match_upstream(void **state)
{
    (void)state;
    acp_config c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(acp_config_init(&c, ACP_CONFIG_VERSION), 0);
    assert_int_equal(c.version, ACP_CONFIG_VERSION);
    assert_int_equal(c.db.port, 5432);
    assert_int_equal(c.db.pool_size, 10);
    assert_null(c.db.host);
    assert_null(c.db.dbname);
    assert_null(c.db.user);
    assert_null(c.db.password);
    assert_int_equal(c.s3.port, 80);
    assert_int_equal(c.s3.https, 0);
    assert_string_equal(c.s3.root_path, "/");
    assert_null(c.s3.bucket);
    assert_null(c.queues);
    assert_int_equal(c.queue_count, 0);
    assert_null(c.workspace_root); /* acp_init chooses a private default */
    assert_int_equal(c.expiration_days, 30);
    assert_int_equal(c.prune_interval, 12 * 3600);
    assert_null(c.executor_factory);
    assert_int_equal(c.lease_seconds, 60);
    assert_int_equal(c.redispatch_seconds, 300);
    assert_int_equal(c.shutdown_timeout, 30);
    assert_int_equal(c.result_retry_seconds, 300);
    assert_int_equal(c.cancel_grace_seconds, 10);
    assert_int_equal(c.log_cap_bytes, 1u << 20);
    assert_null(c.log);
    assert_int_equal(c.log_level, ACP_LOG_INFO);
    assert_int_equal(c.max_attempts, 3);
    assert_null(c.s3.region); /* "us-east-1" */
    assert_null(c.s3.session_token);
    assert_null(c.s3.ca_file);
    assert_null(c.s3.ca_path);
    assert_int_equal(c.s3_client.signature, ACP_S3_SIGNATURE_DEFAULT);
    assert_int_equal(c.s3_client.addressing, ACP_S3_ADDRESSING_DEFAULT);
    assert_int_equal(c.s3_client.tls_skip_verify, 0);
    assert_int_equal(c.s3_client.connect_timeout_ms, 5000);
    assert_int_equal(c.s3_client.request_timeout_ms, 30000);
    assert_int_equal(c.s3_client.retries, 3);
    assert_int_equal(c.s3_client.retry_base_ms, 100);
    assert_int_equal(c.s3_client.retry_max_ms, 10000);
    assert_true(c.s3_client.multipart_threshold == 16u << 20);
    assert_true(c.s3_client.part_size == 16u << 20);
    assert_int_equal(c.s3_client.upload_parallelism, 4);

    acp_queue_config q;
    memset(&q, 0x5a, sizeof q);
    assert_int_equal(acp_queue_config_init(&q, ACP_QUEUE_CONFIG_VERSION), 0);
    assert_int_equal(q.version, ACP_QUEUE_CONFIG_VERSION);
    assert_int_equal(q.port, 5672);
    assert_int_equal(q.workers, 5);
    assert_int_equal(q.message_ack_timeout, 1800);
    assert_int_equal(q.heartbeat, 60);
    assert_int_equal(q.max_attempts, 0); /* config.max_attempts */
    assert_int_equal(q.retry_base_ms, 1000);
    assert_int_equal(q.retry_max_ms, 300000);
    assert_int_equal(q.timeout_seconds, 0);
    assert_null(q.id);
    assert_null(q.host);

    assert_int_equal(acp_config_init(NULL, ACP_CONFIG_VERSION), ACP_EINVAL);
    assert_int_equal(acp_queue_config_init(NULL, ACP_QUEUE_CONFIG_VERSION), ACP_EINVAL);
}

static void complete_config_is_valid(void **state)
{
    fixture *f = *state;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.s3.root_path = "/a/b-c/d_e.f/";
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.s3.root_path = NULL;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.s3.port = 0;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void config_without_defaults_is_rejected(void **state)
{
    (void)state;
    acp_config c;
    memset(&c, 0, sizeof c);
    assert_invalid(&c, ACP_EVERSION, "config.version", "acp_config_init");
    assert_invalid(NULL, ACP_EINVAL, "config", "NULL");
}

static void queues_are_required(void **state)
{
    fixture *f = *state;
    f->config.queue_count = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues", "no queues");
    f->config.queue_count = 1;
    f->config.queues = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues", "no queues");
}

static void database_fields(void **state)
{
    fixture *f = *state;
    acp_db_config saved = f->config.db;

    f->config.db.dbname = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.db.dbname", "missing database name");
    f->config.db.dbname = "  ";
    assert_invalid(&f->config, ACP_EINVAL, "config.db.dbname", "missing database name");
    f->config.db = saved;
    f->config.db.host = "";
    assert_invalid(&f->config, ACP_EINVAL, "config.db.host", "missing database host");
    f->config.db = saved;
    f->config.db.user = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.db.user", "missing database user");
    f->config.db = saved;
    f->config.db.password = "";
    assert_invalid(&f->config, ACP_EINVAL, "config.db.password", "missing database password");
    f->config.db = saved;
    f->config.db.port = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.db.port", "0 is outside 1..65535");
    f->config.db.port = 65536;
    assert_invalid(&f->config, ACP_EINVAL, "config.db.port", "65536 is outside 1..65535");
    f->config.db = saved;
    f->config.db.pool_size = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.db.pool_size", "0 is outside 1..1000");
    f->config.db.pool_size = 1001;
    assert_invalid(&f->config, ACP_EINVAL, "config.db.pool_size", "1001 is outside");
    f->config.db.pool_size = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void s3_fields(void **state)
{
    fixture *f = *state;
    acp_s3_config saved = f->config.s3;

    f->config.s3.host = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.host", "missing S3 host");
    f->config.s3.host = "http://s3.local";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.host", "bare host name");
    f->config.s3.host = "s3.local:9000";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.host", "bare host name");
    f->config.s3 = saved;
    f->config.s3.port = -1;
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.port", "-1 is outside 0..65535");
    f->config.s3 = saved;
    f->config.s3.bucket = "";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.bucket", "missing bucket name");
    f->config.s3.bucket = "ab";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.bucket", "3 to 63 characters");
    f->config.s3.bucket = "My_Bucket";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.bucket", "'M' at position 0");
    f->config.s3.bucket = "-bucket";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.bucket", "start and end");
    f->config.s3 = saved;
    f->config.s3.access_key = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.access_key",
                   "missing, but secret_key is set");
    f->config.s3 = saved;
    f->config.s3.secret_key = "";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.secret_key",
                   "missing, but access_key is set");
}

static void s3_client_fields(void **state)
{
    fixture *f = *state;
    acp_s3_client_config saved = f->config.s3_client;
#define CHECK_FIELD(assignment, field, text)                                                       \
    do {                                                                                           \
        f->config.s3_client = saved;                                                               \
        assignment;                                                                                \
        assert_invalid(&f->config, ACP_EINVAL, "config.s3_client." field, text);                   \
    } while (0)
    CHECK_FIELD(f->config.s3_client.signature = 3, "signature", "3 is not a signature version");
    CHECK_FIELD(f->config.s3_client.addressing = 7, "addressing", "7 is not an addressing style");
    CHECK_FIELD(f->config.s3_client.connect_timeout_ms = 0, "connect_timeout_ms",
                "0 is outside 1..3600000");
    CHECK_FIELD(f->config.s3_client.request_timeout_ms = 999, "request_timeout_ms",
                "999 is outside 1000..3600000");
    CHECK_FIELD(f->config.s3_client.retries = 21, "retries", "21 is outside 0..20");
    CHECK_FIELD(f->config.s3_client.retry_base_ms = 0, "retry_base_ms", "outside 1..60000");
    CHECK_FIELD(f->config.s3_client.retry_max_ms = 50, "retry_max_ms", "50 is outside 100..");
    CHECK_FIELD(f->config.s3_client.part_size = 1 << 20, "part_size",
                "1048576 is outside 5242880..");
    CHECK_FIELD(f->config.s3_client.multipart_threshold = 6ull << 30, "multipart_threshold",
                "outside 5242880..5368709120");
    CHECK_FIELD(f->config.s3_client.upload_parallelism = 0, "upload_parallelism",
                "0 is outside 1..8");
    /* libs3 cannot verify certificates: over https V2 needs an explicit yes. */
    f->config.s3.https = 1;
    CHECK_FIELD(f->config.s3_client.signature = ACP_S3_SIGNATURE_V2, "signature",
                "cannot verify TLS certificates");
    f->config.s3_client.tls_skip_verify = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.s3_client = saved;
    f->config.s3.https = 0;
#undef CHECK_FIELD
    acp_s3_config s3 = f->config.s3;
    f->config.s3.ca_file = "/etc/ssl/certs/ca-certificates.crt";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.ca_file", "config.s3.https is off");
    f->config.s3 = s3;
    f->config.s3.region = "EU West";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.region", "not a region name");
    f->config.s3.region = "eu-west-1";
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.s3 = s3;
}

/* Empty keys are taken from the environment, as AWS tools do; a secret
 * never appears in a message. */
static void s3_credentials_from_the_environment(void **state)
{
    fixture *f = *state;
    acp_s3_config saved = f->config.s3;
    f->config.s3.access_key = NULL;
    f->config.s3.secret_key = "";
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.access_key",
                   "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment");
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret from env", 1);
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.secret_key",
                   "contains a space or a control character");
    assert_null(strstr(acp_last_error(), "secret from env"));
    setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-from-env", 1);
    assert_int_equal(acp_config_validate(&f->config), 0);
    /* One key without the other is a mistake, not a cue to look elsewhere. */
    f->config.s3.access_key = "AKIACONFIG";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.secret_key", "missing, but access_key");
    f->config.s3 = saved;
    f->config.s3.session_token = "token\nwith a newline";
    assert_invalid(&f->config, ACP_EINVAL, "config.s3.session_token", "control character");
    assert_null(strstr(acp_last_error(), "newline"));
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    f->config.s3 = saved;
}

static void unsafe_root_paths(void **state)
{
    fixture *f = *state;
    const char *bad[][2] = {
        {"a/../b", "'..' segment"},     {"../up", "'..' segment"},    {"./x", "'.' segment"},
        {"a//b", "empty segment"},      {"a b", "' ' at position 1"}, {"jobs/ü", "position 5"},
        {"a\\b", "'\\' at position 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->config.s3.root_path = bad[i][0];
        assert_invalid(&f->config, ACP_EINVAL, "config.s3.root_path", bad[i][1]);
    }
    const char *good[] = {"/", "", "flumps", "/a/b/", "a.b/c-d/e_f"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        f->config.s3.root_path = good[i];
        assert_int_equal(acp_config_validate(&f->config), 0);
    }
}

static void queue_fields(void **state)
{
    fixture *f = *state;
    acp_queue_config saved = f->queues[1];

    f->queues[1].id = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].id", "missing queue id");
    f->queues[1].id = "render";
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].id", "duplicate queue id 'render'");
    f->queues[1].id = "has space";
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].id", "letters, digits");
    f->queues[1].id = "abcdefghijklmnopqrstuvwxyz0123456"; /* 33 characters */
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].id", "1 to 32 characters");
    f->queues[1].id = "..";
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].id", "letters, digits");
    f->queues[1] = saved;
    f->queues[1].id = "abcdefghijklmnopqrstuvwxyz012345"; /* 32 characters */
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->queues[1] = saved;

    f->queues[1].host = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].host", "missing RabbitMQ host");
    f->queues[1] = saved;
    f->queues[1].user = "";
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].user", "missing RabbitMQ user");
    f->queues[1] = saved;
    f->queues[1].password = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].password",
                   "missing RabbitMQ password");
    f->queues[1] = saved;
    f->queues[1].port = 70000;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].port", "70000 is outside 1..65535");
    f->queues[1] = saved;

    f->queues[1].workers = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].workers", "0 is outside 1..64");
    f->queues[1].workers = 65;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].workers", "65 is outside 1..64");
    f->queues[1].workers = 64;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->queues[1].workers = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->queues[1] = saved;

    f->queues[1].message_ack_timeout = 299;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].message_ack_timeout",
                   "299 is outside 300..");
    f->queues[1] = saved;

    f->queues[1].heartbeat = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].heartbeat", "0 is outside 1..3600");
    f->queues[1].heartbeat = 3601;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].heartbeat", "3601 is outside 1..3600");
    f->queues[1].heartbeat = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->queues[1] = saved;

    /* Job control of a queue. */
    f->queues[1].max_attempts = 1001;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].max_attempts",
                   "1001 is outside 0..1000");
    f->queues[1] = saved;
    f->queues[1].retry_base_ms = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].retry_base_ms", "0 is outside 1..");
    f->queues[1] = saved;
    f->queues[1].retry_base_ms = 5000;
    f->queues[1].retry_max_ms = 4999;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].retry_max_ms",
                   "4999 is outside 5000..");
    f->queues[1] = saved;
    f->queues[1].timeout_seconds = ACP_TIMEOUT_MAX + 1;
    assert_invalid(&f->config, ACP_EINVAL, "config.queues[1].timeout_seconds",
                   "2592001 is outside 0..2592000");
    f->queues[1].timeout_seconds = 1;
    f->queues[1].max_attempts = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->queues[1] = saved;

    f->queues[2].version = 0;
    assert_invalid(&f->config, ACP_EVERSION, "config.queues[2].version", "acp_queue_config_init");
}

static void workspace_root(void **state)
{
    fixture *f = *state;
    const char *bad[][2] = {
        {"", "not an absolute path"},
        {"relative/dir", "not an absolute path"},
        {"/", "unsafe"},
        {"///", "unsafe"},
        {"/tmp/../etc", "'..' segment"},
        {"/tmp/./x", "'.' segment"},
        {"/tmp//x", "empty segment"},
        {"/tmp/a\nb", "control character"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f->config.workspace_root = bad[i][0];
        assert_invalid(&f->config, ACP_EINVAL, "config.workspace_root", bad[i][1]);
    }
    f->config.workspace_root = "/var/tmp/my jobs/";
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.workspace_root = NULL; /* the default */
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void expiration_and_pruning(void **state)
{
    fixture *f = *state;
    f->config.expiration_days = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.expiration_days", "0 is outside 1..36500");
    f->config.expiration_days = 1;
    f->config.prune_interval = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.prune_interval", "0 is outside 1..");
    f->config.prune_interval = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void executor_and_run_time_settings(void **state)
{
    fixture *f = *state;
    f->config.executor_factory = NULL;
    assert_invalid(&f->config, ACP_EINVAL, "config.executor_factory", "missing executor factory");
    acp_executor_factory broken = factory;
    broken.create = NULL;
    f->config.executor_factory = &broken;
    assert_invalid(&f->config, ACP_EINVAL, "config.executor_factory.create", "missing function");
    broken = factory;
    broken.version = 99;
    assert_invalid(&f->config, ACP_EVERSION, "config.executor_factory.version", "99");
    f->config.executor_factory = &factory;

    f->config.lease_seconds = 2;
    assert_invalid(&f->config, ACP_EINVAL, "config.lease_seconds", "2 is outside 3..86400");
    f->config.lease_seconds = 3;
    f->config.redispatch_seconds = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.redispatch_seconds", "0 is outside 1..");
    f->config.redispatch_seconds = 1;
    f->config.shutdown_timeout = 86401;
    assert_invalid(&f->config, ACP_EINVAL, "config.shutdown_timeout", "86401 is outside 0..86400");
    f->config.shutdown_timeout = 0;
    f->config.result_retry_seconds = 86401;
    assert_invalid(&f->config, ACP_EINVAL, "config.result_retry_seconds",
                   "86401 is outside 0..86400");
    f->config.result_retry_seconds = 0; /* the default */
    f->config.log_level = (acp_log_level)7;
    assert_invalid(&f->config, ACP_EINVAL, "config.log_level", "7 is outside 0..3");
    f->config.log_level = ACP_LOG_ERROR;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void layout_is_checked(void **state)
{
    fixture *f = *state;
    f->config.layout = (acp_layout)3;
    assert_invalid(&f->config, ACP_EINVAL, "config.layout", "3 is not a layout");
    f->config.layout = (acp_layout)-1;
    assert_invalid(&f->config, ACP_EINVAL, "config.layout", "-1 is not a layout");
    f->config.layout = ACP_LAYOUT_DEFAULT;
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.layout = ACP_LAYOUT_LCP;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void max_attempts_is_bounded(void **state)
{
    fixture *f = *state;
    f->config.max_attempts = ACP_MAX_ATTEMPTS_MAX + 1;
    assert_invalid(&f->config, ACP_EINVAL, "config.max_attempts", "1001 is outside 0..1000");
    f->config.max_attempts = 0; /* the default */
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.max_attempts = ACP_MAX_ATTEMPTS_MAX;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void cancel_grace_is_bounded(void **state)
{
    fixture *f = *state;
    f->config.cancel_grace_seconds = 0;
    assert_invalid(&f->config, ACP_EINVAL, "config.cancel_grace_seconds", "0 is outside 1..3600");
    f->config.cancel_grace_seconds = ACP_CANCEL_GRACE_MAX + 1;
    assert_invalid(&f->config, ACP_EINVAL, "config.cancel_grace_seconds",
                   "3601 is outside 1..3600");
    f->config.cancel_grace_seconds = 1;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

static void log_cap_is_bounded(void **state)
{
    fixture *f = *state;
    f->config.log_cap_bytes = ACP_LOG_CAP_MIN - 1;
    assert_invalid(&f->config, ACP_EINVAL, "config.log_cap_bytes", "16383 is out of range");
    f->config.log_cap_bytes = (size_t)ACP_LOG_CAP_MAX + 1;
    assert_invalid(&f->config, ACP_EINVAL, "config.log_cap_bytes", "268435457 is out of range");
    f->config.log_cap_bytes = 0; /* the default */
    assert_int_equal(acp_config_validate(&f->config), 0);
    f->config.log_cap_bytes = ACP_LOG_CAP_MIN;
    assert_int_equal(acp_config_validate(&f->config), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_match_upstream),
        cmocka_unit_test_setup(log_cap_is_bounded, setup),
        cmocka_unit_test_setup(cancel_grace_is_bounded, setup),
        cmocka_unit_test_setup(complete_config_is_valid, setup),
        cmocka_unit_test(config_without_defaults_is_rejected),
        cmocka_unit_test_setup(queues_are_required, setup),
        cmocka_unit_test_setup(database_fields, setup),
        cmocka_unit_test_setup(s3_fields, setup),
        cmocka_unit_test_setup(s3_client_fields, setup),
        cmocka_unit_test_setup(s3_credentials_from_the_environment, setup),
        cmocka_unit_test_setup(unsafe_root_paths, setup),
        cmocka_unit_test_setup(queue_fields, setup),
        cmocka_unit_test_setup(workspace_root, setup),
        cmocka_unit_test_setup(expiration_and_pruning, setup),
        cmocka_unit_test_setup(layout_is_checked, setup),
        cmocka_unit_test_setup(executor_and_run_time_settings, setup),
        cmocka_unit_test_setup(max_attempts_is_bounded, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
