/* Issue 12 point 6: structures of an earlier version, as a program built
 * against an older header passes them, still work: the library writes and
 * reads only the fields of the version they declare, arrays keep their
 * stride, and later fields take their defaults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "config.h"
#include "struct_v1.h"

static int create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    (void)out;
    return 1;
}

static const acp_executor_factory factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, create, NULL};

/* A version 1 structure followed by bytes of the caller's that no init or
 * read may touch. */
typedef struct guarded_config {
    config_v1 config;
    unsigned char after[64];
} guarded_config;

typedef struct guarded_queues {
    queue_config_v1 queues[2];
    unsigned char after[64];
} guarded_queues;

static void fill_v1(guarded_config *g, guarded_queues *q)
{
    memset(g, 0x5a, sizeof *g);
    memset(q, 0x5a, sizeof *q);
    assert_int_equal(acp_config_init((acp_config *)&g->config, 1), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(acp_queue_config_init((acp_queue_config *)&q->queues[i], 1), 0);
    g->config.db.host = "127.0.0.1";
    g->config.db.dbname = "jobs";
    g->config.db.user = "svc";
    g->config.db.password = "pw";
    g->config.s3.host = "127.0.0.1";
    g->config.s3.bucket = "results";
    g->config.s3.access_key = "AK";
    g->config.s3.secret_key = "SK";
    g->config.executor_factory = &factory;
    g->config.lease_seconds = 45;
    q->queues[0].id = "render";
    q->queues[1].id = "index";
    for (int i = 0; i < 2; i++) {
        q->queues[i].host = "127.0.0.1";
        q->queues[i].user = "guest";
        q->queues[i].password = "guest";
        q->queues[i].workers = 2 + i;
    }
    g->config.queues = q->queues;
    g->config.queue_count = 2;
}

static void assert_untouched(const unsigned char *bytes, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != 0x5a)
            fail_msg("byte %zu past the version 1 structure was written", i);
}

static void version_1_init_writes_only_version_1_fields(void **state)
{
    (void)state;
    guarded_config g;
    guarded_queues q;
    fill_v1(&g, &q);
    assert_int_equal(g.config.version, 1);
    assert_int_equal(g.config.db.port, 5432);
    assert_int_equal(g.config.expiration_days, 30);
    assert_int_equal(q.queues[1].version, 1);
    assert_int_equal(q.queues[1].port, 5672);
    assert_int_equal(q.queues[1].message_ack_timeout, 1800);
    /* What lies after a version 1 structure is the caller's: the fields of
     * version 2 are not there. */
    size_t config_v1_fields = offsetof(config_v1, log_level) + sizeof(acp_log_level);
    assert_untouched((const unsigned char *)&g + config_v1_fields, sizeof g - config_v1_fields);
    assert_untouched(q.after, sizeof q.after);
}

static void version_1_config_validates_and_reads_as_written(void **state)
{
    (void)state;
    guarded_config g;
    guarded_queues q;
    fill_v1(&g, &q);
    if (acp_config_validate((const acp_config *)&g.config) != 0)
        fail_msg("a version 1 config is refused: %s", acp_last_error());

    config_copy copy;
    assert_int_equal(config_import((const acp_config *)&g.config, &copy), 0);
    assert_int_equal(copy.config.version, ACP_CONFIG_VERSION);
    assert_int_equal(copy.config.lease_seconds, 45);
    assert_string_equal(copy.config.db.dbname, "jobs");
    /* Fields of version 2 take their defaults, not the caller's bytes. */
    assert_int_equal(copy.config.max_attempts, 3);
    assert_int_equal(copy.config.result_retry_seconds, 300);
    /* ...but the layout is the only one version 1 knew. */
    assert_int_equal(copy.config.layout, ACP_LAYOUT_LCP);
    /* The array is read with version 1's stride. */
    assert_int_equal(copy.config.queue_count, 2);
    assert_string_equal(copy.config.queues[0].id, "render");
    assert_string_equal(copy.config.queues[1].id, "index");
    assert_int_equal(copy.config.queues[1].workers, 3);
    assert_int_equal(copy.config.queues[1].heartbeat, 60);
    assert_int_equal(copy.config.queues[1].version, ACP_QUEUE_CONFIG_VERSION);
    /* Job control of version 3 queues and version 5 configs: defaults. */
    assert_int_equal(copy.config.queues[1].max_attempts, 0);
    assert_int_equal(copy.config.queues[1].retry_base_ms, 1000);
    assert_int_equal(copy.config.queues[1].retry_max_ms, 300000);
    assert_int_equal(copy.config.queues[1].timeout_seconds, 0);
    assert_int_equal(copy.config.cancel_grace_seconds, 10);
    config_copy_free(&copy);

    /* A bad field of a version 1 queue is still named. */
    q.queues[1].workers = 0;
    assert_int_equal(acp_config_validate((const acp_config *)&g.config), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "config.queues[1].workers"));
}

static void current_config_takes_version_2_fields(void **state)
{
    (void)state;
    acp_config c;
    acp_queue_config queue;
    assert_int_equal(acp_config_init(&c, ACP_CONFIG_VERSION), 0);
    assert_int_equal(acp_queue_config_init(&queue, ACP_QUEUE_CONFIG_VERSION), 0);
    c.db.host = c.s3.host = queue.host = "127.0.0.1";
    c.db.dbname = c.db.user = c.db.password = "x";
    c.s3.bucket = "results";
    c.s3.access_key = c.s3.secret_key = "x";
    queue.id = "q";
    queue.user = queue.password = "guest";
    queue.heartbeat = 7;
    c.queues = &queue;
    c.queue_count = 1;
    c.executor_factory = &factory;
    c.max_attempts = 9;
    config_copy copy;
    assert_int_equal(config_import(&c, &copy), 0);
    assert_int_equal(copy.config.max_attempts, 9);
    assert_int_equal(copy.config.queues[0].heartbeat, 7);
    config_copy_free(&copy);
}

/* A version 2 caller's structure ends before layout: whatever follows it
 * in memory is not read, and the layout is lcp, as version 2 had it. */
static void version_2_config_gets_the_lcp_layout(void **state)
{
    (void)state;
    acp_config c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(acp_config_init(&c, 2), 0);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.max_attempts, 3);
    assert_untouched((const unsigned char *)&c.layout, sizeof c.layout);
    config_copy copy;
    assert_int_equal(config_import(&c, &copy), 0);
    assert_int_equal(copy.config.layout, ACP_LAYOUT_LCP);
    config_copy_free(&copy);

    assert_int_equal(acp_config_init(&c, ACP_CONFIG_VERSION), 0);
    assert_int_equal(c.layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(config_import(&c, &copy), 0);
    assert_int_equal(copy.config.layout, ACP_LAYOUT_NATIVE);
    config_copy_free(&copy);
}

/* A version 3 caller's structure ends before s3_client: nothing past it
 * is written or read, and the S3 client gets the defaults; the slots of
 * acp_s3_config that became region and friends were zeroed by its init. */
static void version_3_config_gets_the_s3_client_defaults(void **state)
{
    (void)state;
    acp_config c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(acp_config_init(&c, 3), 0);
    assert_untouched((const unsigned char *)&c.s3_client, sizeof c.s3_client);
    assert_null(c.s3.region);
    assert_null(c.s3.session_token);
    assert_null(c.s3.ca_file);
    assert_null(c.s3.ca_path);
    config_copy copy;
    assert_int_equal(config_import(&c, &copy), 0);
    assert_int_equal(copy.config.s3_client.signature, ACP_S3_SIGNATURE_DEFAULT);
    assert_int_equal(copy.config.s3_client.request_timeout_ms, 30000);
    assert_int_equal(copy.config.s3_client.retries, 3);
    assert_true(copy.config.s3_client.part_size == 16u << 20);
    assert_int_equal(copy.config.s3_client.upload_parallelism, 4);
    config_copy_free(&copy);
}

static void version_4_config_and_version_1_submission_get_the_defaults(void **state)
{
    (void)state;
    acp_config c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(acp_config_init(&c, 4), 0);
    assert_untouched((const unsigned char *)&c.cancel_grace_seconds, sizeof c.cancel_grace_seconds);
    config_copy copy;
    assert_int_equal(config_import(&c, &copy), 0);
    assert_int_equal(copy.config.cancel_grace_seconds, 10);
    config_copy_free(&copy);

    /* A version 1 submission ends at input_count: nothing after it is
     * written (the caller's structure is shorter). */
    acp_submission sub;
    memset(&sub, 0x5a, sizeof sub);
    assert_int_equal(acp_submission_init(&sub, 1), 0);
    assert_int_equal(sub.input_count, 0);
    assert_untouched((const unsigned char *)&sub.priority,
                     sizeof sub - offsetof(acp_submission, priority));
    assert_int_equal(acp_submission_init(&sub, ACP_SUBMISSION_VERSION), 0);
    assert_int_equal(sub.priority, ACP_PRIORITY_DEFAULT);
    assert_int_equal(sub.max_attempts, 0);
    assert_true(sub.not_before == 0 && sub.delay_ms == 0);
}

static void version_5_config_gets_the_log_cap_default(void **state)
{
    (void)state;
    acp_config c;
    memset(&c, 0x5a, sizeof c);
    assert_int_equal(acp_config_init(&c, 5), 0);
    assert_untouched((const unsigned char *)&c.log_cap_bytes, sizeof c.log_cap_bytes);
    config_copy copy;
    assert_int_equal(config_import(&c, &copy), 0);
    assert_int_equal(copy.config.log_cap_bytes, ACP_LOG_CAP_DEFAULT);
    config_copy_free(&copy);
}

static void unknown_and_mixed_versions_are_refused(void **state)
{
    (void)state;
    acp_config c;
    assert_int_equal(acp_config_init(&c, 0), ACP_EVERSION);
    assert_int_equal(acp_config_init(&c, ACP_CONFIG_VERSION + 1), ACP_EVERSION);
    assert_non_null(strstr(acp_last_error(), "acp_config_init: version 7"));
    acp_queue_config queue;
    assert_int_equal(acp_queue_config_init(&queue, ACP_QUEUE_CONFIG_VERSION + 1), ACP_EVERSION);
    acp_submission sub;
    assert_int_equal(acp_submission_init(&sub, ACP_SUBMISSION_VERSION + 1), ACP_EVERSION);
    acp_job_filter filter;
    assert_int_equal(acp_job_filter_init(&filter, 0), ACP_EVERSION);
    assert_int_equal(acp_submission_init(NULL, 1), ACP_EINVAL);

    /* One array, one layout: a version 2 element after a version 1 one. */
    guarded_config g;
    guarded_queues q;
    fill_v1(&g, &q);
    q.queues[1].version = 2;
    assert_int_equal(acp_config_validate((const acp_config *)&g.config), ACP_EVERSION);
    assert_non_null(strstr(acp_last_error(), "config.queues[1].version: 2 differs"));
}

static void library_filled_structures_keep_their_size(void **state)
{
    (void)state;
    /* Reserved slots keep these sizes for every later version within one
     * soname; a change here is an ABI break (see the header). */
    assert_true(sizeof(((acp_db_config *)0)->reserved) == ACP_RESERVED_SLOTS * sizeof(void *));
    /* acp_s3_config's first four slots became region, session_token,
     * ca_file and ca_path: pointers, so the size is the same everywhere. */
    assert_true(sizeof(((acp_s3_config *)0)->reserved) + 4 * sizeof(void *) ==
                ACP_RESERVED_SLOTS * sizeof(void *));
    assert_int_equal(offsetof(acp_s3_config, region) + ACP_RESERVED_SLOTS * sizeof(void *),
                     sizeof(acp_s3_config));
    /* Version 2 took 24 bytes of them, version 3 32 more. */
    assert_true(sizeof(((acp_job *)0)->reserved) + 56 == ACP_RESERVED_SLOTS * sizeof(void *));
    assert_int_equal(offsetof(acp_job, version), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_1_init_writes_only_version_1_fields),
        cmocka_unit_test(version_1_config_validates_and_reads_as_written),
        cmocka_unit_test(current_config_takes_version_2_fields),
        cmocka_unit_test(version_2_config_gets_the_lcp_layout),
        cmocka_unit_test(version_3_config_gets_the_s3_client_defaults),
        cmocka_unit_test(version_4_config_and_version_1_submission_get_the_defaults),
        cmocka_unit_test(version_5_config_gets_the_log_cap_default),
        cmocka_unit_test(unknown_and_mixed_versions_are_refused),
        cmocka_unit_test(library_filled_structures_keep_their_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
