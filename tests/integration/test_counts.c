/* acp_count_jobs against PostgreSQL: the jobs of each queue by status and
 * the recent failures, in a database of this test's own (other tests'
 * platforms share the stack's database, and their jobs would be counted). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "platform_fixture.h"

static stack_env env;

/* Fails the jobs whose config says so, permanently (no retry); completes
 * the others at once. */
static int counts_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    if (ctx->config && strstr(ctx->config, "\"fail\"")) {
        acp_job_fail_permanently(ctx, "asked to fail");
        return 1;
    }
    return 0;
}

static void counts_free_executor(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops counts_ops = {ACP_EXECUTOR_OPS_VERSION, counts_execute,
                                            counts_free_executor};
static const acp_executor_factory counts_factory = {ACP_EXECUTOR_FACTORY_VERSION,
                                                    (void *)&counts_ops, fixture_ops_create, NULL};

typedef struct world {
    fixture_config fc;
    char tag[9];
    char dbname[40];
    acp_platform *p;
} world;

static world *world_start(void)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 2, 2, &counts_factory);
    snprintf(w->dbname, sizeof w->dbname, "acp_counts_%s", w->tag);
    char sql[96];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", w->dbname);
    fixture_stack_db_exec(&env, sql);
    w->fc.config.db.dbname = w->dbname;
    if (acp_init(&w->p, &w->fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
    return w;
}

static void world_stop(world *w)
{
    acp_shutdown(w->p);
    char sql[96];
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", w->dbname);
    fixture_stack_db_exec(&env, sql);
    free(w);
}

static acp_job_id submit(world *w, int queue, const char *mode, int n, acp_submission *sub)
{
    acp_job_id id;
    if (fixture_submit_mode(w->p, w->fc.queue_ids[queue], mode, w->tag, n, sub, &id) != 0)
        fail_msg("acp_submit: %s", acp_last_error());
    return id;
}

static void wait_for(world *w, const acp_job_id *id, acp_job_status status)
{
    acp_job job = {0};
    if (!fixture_wait_status(w->p, id, status, FIXTURE_WAIT_S, &job))
        fail_msg("job is %s after %d s, not %s", acp_job_status_name(job.status), FIXTURE_WAIT_S,
                 acp_job_status_name(status));
    acp_job_clear(&job);
}

static const acp_queue_counts *queue_of(const acp_job_counts *counts, const char *queue)
{
    for (size_t i = 0; i < counts->count; i++)
        if (strcmp(counts->queues[i].queue, queue) == 0)
            return &counts->queues[i];
    fail_msg("queue %s is not in the counts (%zu queues)", queue, counts->count);
    return NULL;
}

static void jobs_are_counted_by_queue_and_status(void **state)
{
    (void)state;
    world *w = world_start();
    acp_job_counts counts;
    assert_int_equal(acp_job_counts_init(&counts, ACP_JOB_COUNTS_VERSION), 0);
    assert_int_equal(acp_count_jobs(w->p, &counts), 0);
    assert_int_equal(counts.count, 0); /* a new database has no job */
    assert_null(counts.queues);

    /* Queue 0: two complete (one then expired), one failed. Queue 1: one
     * delayed (queued), one cancelled. */
    acp_job_id ok1 = submit(w, 0, "ok", 1, NULL), ok2 = submit(w, 0, "ok", 2, NULL);
    acp_job_id failed = submit(w, 0, "fail", 3, NULL);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.delay_ms = 3600 * 1000;
    submit(w, 1, "ok", 4, &sub);
    acp_job_id cancelled = submit(w, 1, "ok", 5, &sub);
    assert_int_equal(acp_cancel_job(w->p, &cancelled), 0);
    wait_for(w, &ok1, ACP_STATUS_COMPLETE);
    wait_for(w, &ok2, ACP_STATUS_COMPLETE);
    wait_for(w, &failed, ACP_STATUS_FAILED);
    assert_int_equal(acp_expire_job(w->p, &ok2), 0);

    int64_t before = fixture_wall_us();
    assert_int_equal(acp_count_jobs(w->p, &counts), 0);
    assert_int_equal(counts.count, 2);
    /* Sorted by queue id: "q0-..." before "q1-...". */
    assert_string_equal(counts.queues[0].queue, w->fc.queue_ids[0]);
    const acp_queue_counts *q0 = queue_of(&counts, w->fc.queue_ids[0]);
    const acp_queue_counts *q1 = queue_of(&counts, w->fc.queue_ids[1]);
    static const acp_job_status all[] = {ACP_STATUS_QUEUED,   ACP_STATUS_IN_PROGRESS,
                                         ACP_STATUS_COMPLETE, ACP_STATUS_FAILED,
                                         ACP_STATUS_EXPIRED,  ACP_STATUS_CANCELLED};
    static const uint64_t want0[] = {0, 0, 1, 1, 1, 0}, want1[] = {1, 0, 0, 0, 0, 1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (q0->jobs[all[i]] != want0[i] || q1->jobs[all[i]] != want1[i])
            fail_msg("%s: %" PRIu64 " and %" PRIu64 ", not %" PRIu64 " and %" PRIu64,
                     acp_job_status_name(all[i]), q0->jobs[all[i]], q1->jobs[all[i]], want0[i],
                     want1[i]);
    }
    assert_int_equal(q0->failed_recently, 1); /* within the last hour */
    assert_int_equal(q1->failed_recently, 0);

    /* A window that begins after the failure counts none of it. */
    counts.failed_since = before + 1000000;
    assert_int_equal(acp_count_jobs(w->p, &counts), 0);
    assert_int_equal(queue_of(&counts, w->fc.queue_ids[0])->failed_recently, 0);
    assert_int_equal(queue_of(&counts, w->fc.queue_ids[0])->jobs[ACP_STATUS_FAILED], 1);
    acp_job_counts_clear(&counts);
    assert_null(counts.queues);
    assert_int_equal(counts.count, 0);
    world_stop(w);
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    world *w = world_start();
    acp_job_counts counts;
    assert_int_equal(acp_job_counts_init(NULL, ACP_JOB_COUNTS_VERSION), ACP_EINVAL);
    assert_int_equal(acp_job_counts_init(&counts, 0), ACP_EVERSION);
    assert_int_equal(acp_job_counts_init(&counts, ACP_JOB_COUNTS_VERSION + 1), ACP_EVERSION);
    assert_int_equal(acp_job_counts_init(&counts, ACP_JOB_COUNTS_VERSION), 0);
    assert_int_equal(acp_count_jobs(NULL, &counts), ACP_EINVAL);
    assert_int_equal(acp_count_jobs(w->p, NULL), ACP_EINVAL);
    counts.failed_since = -1;
    assert_int_equal(acp_count_jobs(w->p, &counts), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "failed_since"));
    counts.failed_since = 0;
    counts.version = 99;
    assert_int_equal(acp_count_jobs(w->p, &counts), ACP_EVERSION);
    acp_job_counts_clear(NULL);
    world_stop(w);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(jobs_are_counted_by_queue_and_status),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
