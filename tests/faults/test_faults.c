/* Faults provoked on the real stack while jobs run, with a short lease:
 * PostgreSQL restarted (fast shutdown) while jobs finish, and radosgw
 * stopped for longer than the old retry budget while jobs upload their
 * results. Every job must end complete, each run exactly once, none left
 * in-progress. These tests stop and start services of scripts/stack (found
 * through ACP_SOURCE_ROOT, acting on the stack of ACP_STACK_DIR), so they
 * run in their own suite, after the others; every service they stop is
 * started again, also when a test fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "objects.h"
#include "platform_fixture.h"
#include "recording_executor.h"

static stack_env env;

/* The service a test stopped and has not started again, for teardown. */
static const char *stopped;

static int stack_service(const char *action, const char *service)
{
    const char *root = getenv("ACP_SOURCE_ROOT");
    if (!root)
        fail_msg("ACP_SOURCE_ROOT is not set: run this test through meson test");
    char command[1024];
    snprintf(command, sizeof command, "%s/scripts/stack %s %s >&2", root, action, service);
    return system(command);
}

static void stop_service(const char *service)
{
    assert_int_equal(stack_service("stop", service), 0);
    stopped = service;
}

static void start_service(const char *service)
{
    assert_int_equal(stack_service("start", service), 0);
    stopped = NULL;
}

static int restart_stopped(void **state)
{
    (void)state;
    if (stopped && stack_service("start", stopped) != 0)
        return -1;
    stopped = NULL;
    recording_release();
    recording_reset();
    return 0;
}

typedef struct world {
    fixture_config fc;
    char tag[9];
    acp_platform *p;
    objects *raw;
} world;

static void start_world(world *w, int workers, unsigned retry_seconds)
{
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, workers, &recording_factory);
    w->fc.config.lease_seconds = 3;
    /* config.max_attempts (3): a run whose lease ran out while PostgreSQL
     * was down is retried, as the library does by default. */
    w->fc.queues[0].max_attempts = 0;
    w->fc.config.result_retry_seconds = retry_seconds;
    /* A connection per worker recording a run, and one to spare for the
     * maintenance thread's renewals and the test's reads. */
    w->fc.config.db.pool_size = workers + 2;
    if (acp_init(&w->p, &w->fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
    if (objects_open(&w->raw, &w->fc.config.s3, &w->fc.config.s3_client, NULL) != 0)
        fail_msg("objects_open: %s", acp_last_error());
}

static void stop_world(world *w)
{
    acp_shutdown(w->p);
    objects_close(w->raw);
}

static void submit_jobs(world *w, acp_job_id *ids, int count, int ms)
{
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    for (int i = 0; i < count; i++) {
        char config[128];
        snprintf(config, sizeof config, "{\"mode\":\"sleep\",\"ms\":%d,\"n\":\"%s-%d\"}", ms,
                 w->tag, i);
        sub.config = config;
        acp_job job;
        if (acp_submit(w->p, w->fc.queue_ids[0], &sub, &job) != 0)
            fail_msg("submit %d: %s", i, acp_last_error());
        ids[i] = job.id;
        acp_job_clear(&job);
    }
}

static void wait_complete(world *w, const acp_job_id *id, int count)
{
    acp_job job = {0};
    for (int k = 0; k < count; k++)
        if (!fixture_wait_status(w->p, &id[k], ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
            fail_msg("job %d is %s (%s)", k, acp_job_status_name(job.status),
                     job.message ? job.message : "no message");
    acp_job_clear(&job);
}

/* Every job complete, each run exactly once, with its result (and, in the
 * lcp layout, its flag). */
static void expect_each_complete_once(world *w, const acp_job_id *ids, int count)
{
    wait_complete(w, ids, count);
    for (int i = 0; i < count; i++) {
        if (recording_runs(&ids[i]) != 1)
            fail_msg("job %d ran %d times", i, recording_runs(&ids[i]));
        bool exists = false;
        assert_int_equal(objects_stat(w->raw, &ids[i], "result.txt", &exists, NULL, NULL), 0);
        assert_true(exists);
        if (w->fc.config.layout != ACP_LAYOUT_LCP) {
            /* Native: the row names the result, and no flag is written. */
            acp_result_list files;
            assert_int_equal(acp_get_results(w->p, &ids[i], &files), 0);
            bool named = false;
            for (size_t f = 0; f < files.count; f++)
                named = named || strcmp(files.files[f].name, "result.txt") == 0;
            acp_result_list_clear(&files);
            assert_true(named);
            assert_int_equal(objects_stat(w->raw, &ids[i], ".complete", &exists, NULL, NULL), 0);
            assert_false(exists);
            continue;
        }
        /* lcp: the flag follows the row's commit: it may take a moment. */
        int rc = fixture_wait_object(w->raw, &ids[i], ".complete");
        if (rc)
            fail_msg("job %d has no .complete flag (%s)", i,
                     rc < 0 ? acp_last_error() : "timed out");
    }
    acp_job_list list;
    acp_job_filter filter;
    acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
    filter.queue = w->fc.queue_ids[0];
    filter.statuses = (1u << ACP_STATUS_IN_PROGRESS) | (1u << ACP_STATUS_QUEUED);
    assert_int_equal(acp_list_jobs(w->p, &filter, &list), 0);
    assert_int_equal(list.count, 0);
    acp_job_list_clear(&list);
}

/* Jobs completed so far of @ids. */
static int completed(world *w, const acp_job_id *ids, int count)
{
    int done = 0;
    for (int i = 0; i < count; i++) {
        acp_job job = {0};
        if (acp_get_job(w->p, &ids[i], &job) == 0 && job.status == ACP_STATUS_COMPLETE)
            done++;
        acp_job_clear(&job);
    }
    return done;
}

static void wait_completed(world *w, const acp_job_id *ids, int count, int at_least)
{
    for (int waited = 0; completed(w, ids, count) < at_least; waited += 50) {
        if (waited > FIXTURE_WAIT_S * 1000)
            fail_msg("fewer than %d jobs completed", at_least);
        fixture_sleep_ms(50);
    }
}

/* ---- point 11 ------------------------------------------------------------ */

static void postgres_restart_records_finished_jobs_once(void **state)
{
    (void)state;
    enum { JOBS = 40, WORKERS = 4 };
    world w;
    start_world(&w, WORKERS, 0);
    acp_job_id ids[JOBS];
    submit_jobs(&w, ids, JOBS, 400);
    wait_completed(&w, ids, JOBS, WORKERS);
    /* Down for three leases and more: runs end meanwhile. */
    stop_service("postgres");
    fixture_sleep_ms(10000);
    start_service("postgres");
    expect_each_complete_once(&w, ids, JOBS);
    /* Runs did end while the database was down, and were recorded later. */
    assert_true(fixture_log_contains("its result is recorded now", NULL));
    stop_world(&w);
}

/* ---- point 12 ------------------------------------------------------------ */

static void radosgw_outage_fails_no_upload(void **state)
{
    (void)state;
    enum { JOBS = 24, WORKERS = 4 };
    world w;
    start_world(&w, WORKERS, 0);
    acp_job_id ids[JOBS];
    submit_jobs(&w, ids, JOBS, 300);
    wait_completed(&w, ids, JOBS, WORKERS);
    stop_service("radosgw");
    fixture_sleep_ms(15000); /* the old budget was about 2 s */
    start_service("radosgw");
    expect_each_complete_once(&w, ids, JOBS);
    assert_true(fixture_log_contains("retrying for up to", NULL));
    stop_world(&w);
}

static void result_upload_fails_past_its_budget(void **state)
{
    (void)state;
    world w;
    start_world(&w, 1, 2);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    char config[128];
    snprintf(config, sizeof config, "{\"mode\":\"block\",\"ms\":600000,\"n\":\"%s\"}", w.tag);
    sub.config = config;
    acp_job job = {0};
    assert_int_equal(acp_submit(w.p, w.fc.queue_ids[0], &sub, &job), 0);
    acp_job_id id = job.id;
    acp_job_clear(&job);
    if (!fixture_wait_status(w.p, &id, ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job))
        fail_msg("the job did not start");
    /* S3 goes away while the job runs, and stays away past the budget. */
    stop_service("radosgw");
    recording_release();
    if (!fixture_wait_status(w.p, &id, ACP_STATUS_FAILED, FIXTURE_WAIT_S, &job))
        fail_msg("the job is %s, not failed", acp_job_status_name(job.status));
    start_service("radosgw");
    assert_non_null(job.message);
    assert_non_null(strstr(job.message, "keeping result"));
    assert_non_null(strstr(job.message, "unreachable for 2 s"));
    assert_int_equal(recording_runs(&id), 1);
    acp_job_clear(&job);
    stop_world(&w);
}

/* Cancellation goes through PostgreSQL alone: with RabbitMQ down, a queued
 * job is cancelled at once and a running one is stopped. */
static void cancelling_needs_no_broker(void **state)
{
    (void)state;
    world w;
    start_world(&w, 1, 300);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    char config[128];
    snprintf(config, sizeof config, "{\"mode\":\"cancellable\",\"ms\":600000,\"n\":\"%s-r\"}",
             w.tag);
    sub.config = config;
    acp_job job = {0};
    assert_int_equal(acp_submit(w.p, w.fc.queue_ids[0], &sub, &job), 0);
    acp_job_id running = job.id;
    acp_job_clear(&job);
    assert_true(fixture_wait_status(w.p, &running, ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job));
    acp_job_clear(&job);
    snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"%s-q\"}", w.tag);
    assert_int_equal(acp_submit(w.p, w.fc.queue_ids[0], &sub, &job), 0);
    acp_job_id queued = job.id;
    assert_int_equal(job.status, ACP_STATUS_QUEUED); /* the only worker is busy */
    acp_job_clear(&job);

    stop_service("rabbitmq");
    assert_int_equal(acp_cancel_job(w.p, &queued), 0);
    assert_int_equal(acp_get_job(w.p, &queued, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_CANCELLED);
    acp_job_clear(&job);
    assert_int_equal(acp_cancel_job(w.p, &running), 0);
    if (!fixture_wait_status(w.p, &running, ACP_STATUS_CANCELLED, FIXTURE_WAIT_S, &job))
        fail_msg("the running job is %s", acp_job_status_name(job.status));
    assert_int_equal(job.attempts, 1);
    acp_job_clear(&job);
    start_service("rabbitmq");
    assert_int_equal(recording_runs(&queued), 0);
    stop_world(&w);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(postgres_restart_records_finished_jobs_once, restart_stopped),
        cmocka_unit_test_teardown(radosgw_outage_fails_no_upload, restart_stopped),
        cmocka_unit_test_teardown(result_upload_fails_past_its_budget, restart_stopped),
        cmocka_unit_test_teardown(cancelling_needs_no_broker, restart_stopped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
