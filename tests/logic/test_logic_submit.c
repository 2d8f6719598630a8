/* acp_submit on the fakes, with a fault at every backend step of a
 * submission in turn (a new job, and the re-run of an expired one), and
 * with publishes whose confirm is lost. After each fault the test looks in
 * each backend as a user would: either the submit failed and left nothing
 * (or, for a re-run, the job as expiry left it), or the failure was
 * absorbed and the job runs exactly once; and either way the same config
 * can then be submitted and runs once: no id is stranded.
 *
 * Step numbers. The platform's workers poll the fake broker ("amqp.next")
 * and run the job as soon as its message is out, concurrently with the end
 * of acp_submit, so the plan's global step count differs from one run to
 * the next. The plan therefore counts (and fails) only the calls of the
 * test's own thread (fault_plan_only_thread): the steps of acp_submit
 * alone, numbered the same in every run. The workers' calls pass through
 * unfaulted, which is what running the job afterwards needs anyway. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "fake_platform.h"
#include "maintenance.h"

#define INPUT "some input\n"

static const fake_platform_options long_leases = {.workers = 1, .lease_seconds = 600};

static void start(fake_platform *fp)
{
    /* Leases longer than any redispatch wait the tests skip over. */
    fake_platform_start(fp, &long_leases);
}

static acp_job_status row_status(fake_platform *fp, const acp_job_id *id)
{
    store_job row;
    if (fake_store_peek(fp->store, id, &row) != 0)
        return (acp_job_status)-1;
    acp_job_status status = row.status;
    store_job_free(&row);
    return status;
}

/* Wait until the job is complete, republishing its message if the submit
 * left it unpublished, and check it ran @runs times in all. */
static void expect_complete(fake_platform *fp, const acp_job_id *id, int runs)
{
    fake_platform_redispatch(fp, id);
    assert_true(fake_platform_wait(fp, id, ACP_STATUS_COMPLETE));
    /* The worker sets the flag after the row (a hang guard, no timing). */
    for (int i = 0; i < FAKE_PLATFORM_WAIT_S * 100; i++) {
        if (fake_platform_has_object(fp, id, ".complete"))
            break;
        clock_sleep_ms(10);
    }
    assert_true(fake_platform_has_object(fp, id, ".complete"));
    assert_int_equal(fake_platform_runs(id), runs);
    assert_true(fake_platform_has_object(fp, id, "result.txt"));
    assert_true(fake_platform_has_object(fp, id, "in.txt"));
}

/* A queued row has a message on its way or a redispatch owed; a workspace
 * has a row. @published_before: messages published before this submit. */
static void expect_consistent(fake_platform *fp, const acp_job_id *id, size_t published_before)
{
    fake_store_row row;
    if (fake_store_peek_row(fp->store, id, &row) != 0) {
        assert_int_equal(fake_platform_object_count(fp, id), 0);
        return;
    }
    if (row.job.status == ACP_STATUS_QUEUED && row.dispatched != 0)
        assert_true(fake_broker_published(fp->broker, FAKE_PLATFORM_QUEUE) > published_before);
    fake_store_row_free(&row);
}

/* Submit as a caller who wants the job's state back (one more backend
 * step: reading it). */
static int submit_reported(fake_platform *fp, const char *config, acp_job_id *id)
{
    acp_job job;
    int rc = fake_platform_submit(fp, config, INPUT, id, &job);
    if (rc == 0) {
        assert_memory_equal(&job.id, id, sizeof *id);
        assert_true(job.owned);
        acp_job_clear(&job);
    }
    return rc;
}

/* The steps of one acp_submit by this thread, counted from here. */
static void count_from_here(fake_platform *fp)
{
    fault_plan_reset(&fp->plan);
    fault_plan_only_thread(&fp->plan, true);
}

static void faults_off(fake_platform *fp)
{
    fault_plan_reset(&fp->plan);
    fault_plan_only_thread(&fp->plan, false);
}

static void fail_step(fake_platform *fp, unsigned k, int s3_kind)
{
    count_from_here(fp);
    fake_platform_fail_step_as(&fp->plan, k, s3_kind);
}

static void report_step(fake_platform *fp, const char *what, unsigned k, unsigned n, int rc)
{
    print_message("# %s: step %u/%u (%s) failed; acp_submit: %d%s%s\n", what, k, n,
                  fp->plan.failed_op ? fp->plan.failed_op : "none", rc, rc ? ": " : "",
                  rc ? acp_last_error() : "");
    /* The last steps read the job back, and how many reads that takes
     * depends on how far its run got meanwhile (a finished job's access
     * time is touched): a run may end before step k. Then nothing failed,
     * and the run really was shorter. Otherwise step k is the one that
     * failed. */
    if (fp->plan.failed_step == 0 && rc == 0) {
        unsigned steps = fault_calls(&fp->plan, NULL);
        if (steps >= k)
            fail_msg("step %u of %u did not fail", k, steps);
        print_message("# (this run had %u steps: the read-back was shorter)\n", steps);
        return;
    }
    assert_int_equal(fp->plan.failed_step, k);
}

/* ---- a new job --------------------------------------------------------- */

static void new_job_config(char *out, size_t size, int s3_kind, unsigned k)
{
    snprintf(out, size, "{\"logic\":\"submit-new\",\"s3\":%d,\"k\":%u}", s3_kind, k);
}

/* S3 steps fail with @s3_kind: a 403 fails the submit, a 500 is retried. */
static void new_job_step_by_step(int s3_kind)
{
    fake_platform fp;
    char config[96];
    acp_job_id id;

    start(&fp);
    new_job_config(config, sizeof config, s3_kind, 0);
    count_from_here(&fp);
    assert_int_equal(submit_reported(&fp, config, &id), 0);
    unsigned n = fault_calls(&fp.plan, NULL);
    faults_off(&fp);
    expect_complete(&fp, &id, 1);
    fake_platform_stop(&fp);
    assert_true(n >= 6); /* row, claim, workspace, message at least */

    for (unsigned k = 1; k <= n; k++) {
        start(&fp);
        new_job_config(config, sizeof config, s3_kind, k);
        fail_step(&fp, k, s3_kind);
        int rc = submit_reported(&fp, config, &id);
        report_step(&fp, s3_kind == FAKE_S3_500 ? "new job, S3 500" : "new job", k, n, rc);
        faults_off(&fp);
        expect_consistent(&fp, &id, 0);
        if (rc != 0) {
            /* Failed: nothing of the job anywhere. */
            store_job row;
            assert_int_equal(fake_store_peek(fp.store, &id, &row), ACP_ENOTFOUND);
            assert_int_equal(fake_platform_object_count(&fp, &id), 0);
            assert_int_equal(fake_broker_published(fp.broker, FAKE_PLATFORM_QUEUE), 0);
            assert_int_equal(fake_platform_runs(&id), 0);
            /* ...and the id is free for the same config. */
            assert_int_equal(submit_reported(&fp, config, &id), 0);
        }
        expect_complete(&fp, &id, 1);
        fake_platform_stop(&fp);
    }
}

static void every_step_of_a_submission_fails_in_turn(void **state)
{
    (void)state;
    new_job_step_by_step(FAKE_S3_403);
}

static void every_step_of_a_submission_fails_transiently_in_turn(void **state)
{
    (void)state;
    new_job_step_by_step(FAKE_S3_500);
}

/* ---- the re-run of an expired job -------------------------------------- */

static void rerun_config(char *out, size_t size, int s3_kind, unsigned k)
{
    snprintf(out, size, "{\"logic\":\"submit-rerun\",\"s3\":%d,\"k\":%u}", s3_kind, k);
}

/* A complete job, then expired: its results gone. */
static void expired_job(fake_platform *fp, const char *config, acp_job_id *id)
{
    assert_int_equal(fake_platform_submit(fp, config, INPUT, id, NULL), 0);
    expect_complete(fp, id, 1);
    if (acp_expire_job(fp->p, id) != 0)
        fail_msg("acp_expire_job: %s", acp_last_error());
    assert_int_equal(row_status(fp, id), ACP_STATUS_EXPIRED);
}

/* As expiry left it: row expired, flag set, results and inputs gone, no
 * new message. */
static void expect_still_expired(fake_platform *fp, const acp_job_id *id)
{
    assert_int_equal(row_status(fp, id), ACP_STATUS_EXPIRED);
    assert_true(fake_platform_has_object(fp, id, ".workspace"));
    assert_true(fake_platform_has_object(fp, id, ".expired"));
    assert_false(fake_platform_has_object(fp, id, "result.txt"));
    assert_int_equal(fake_broker_published(fp->broker, FAKE_PLATFORM_QUEUE), 1);
    acp_job job;
    assert_int_equal(acp_get_job(fp->p, id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    assert_true(job.owned);
    acp_job_clear(&job);
}

static void rerun_step_by_step(int s3_kind)
{
    fake_platform fp;
    char config[96];
    acp_job_id id;

    start(&fp);
    rerun_config(config, sizeof config, s3_kind, 0);
    expired_job(&fp, config, &id);
    count_from_here(&fp);
    assert_int_equal(submit_reported(&fp, config, &id), 0);
    unsigned n = fault_calls(&fp.plan, NULL);
    faults_off(&fp);
    expect_complete(&fp, &id, 2);
    fake_platform_stop(&fp);
    assert_true(n >= 6);

    for (unsigned k = 1; k <= n; k++) {
        start(&fp);
        rerun_config(config, sizeof config, s3_kind, k);
        expired_job(&fp, config, &id);
        fail_step(&fp, k, s3_kind);
        int rc = submit_reported(&fp, config, &id);
        report_step(&fp, s3_kind == FAKE_S3_500 ? "re-run, S3 500" : "re-run", k, n, rc);
        faults_off(&fp);
        expect_consistent(&fp, &id, 1);
        if (rc != 0) {
            expect_still_expired(&fp, &id);
            assert_int_equal(submit_reported(&fp, config, &id), 0);
        }
        expect_complete(&fp, &id, 2);
        fake_platform_stop(&fp);
    }
}

static void every_step_of_a_submission_loses_an_answer_in_turn(void **state)
{
    (void)state;
    new_job_step_by_step(FAKE_STORE_FAULT_AFTER);
}

static void every_step_of_a_rerun_loses_an_answer_in_turn(void **state)
{
    (void)state;
    rerun_step_by_step(FAKE_STORE_FAULT_AFTER);
}

static void every_step_of_a_rerun_fails_in_turn(void **state)
{
    (void)state;
    rerun_step_by_step(FAKE_S3_403);
}

static void every_step_of_a_rerun_fails_transiently_in_turn(void **state)
{
    (void)state;
    rerun_step_by_step(FAKE_S3_500);
}

/* ---- publishes that fail ------------------------------------------------ */

static uint64_t dropped(fake_platform *fp)
{
    acp_stats stats = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(fp->p, &stats), 0);
    return stats.messages_dropped;
}

/* Wait until every message is acknowledged (a hang guard, not a timing). */
static void drain(fake_platform *fp)
{
    for (int i = 0; i < FAKE_PLATFORM_WAIT_S * 100; i++) {
        if (fake_broker_ready(fp->broker, NULL) == 0 && fake_broker_unacked(fp->broker, NULL) == 0)
            return;
        clock_sleep_ms(10);
    }
    fail_msg("messages still unacknowledged");
}

/* The first publish's confirm never comes, though the broker took the
 * message; the retry publishes it again. Two messages, one run. */
static void an_unconfirmed_publish_runs_the_job_once(void **state)
{
    (void)state;
    fake_platform fp;
    start(&fp);
    fault_plan_add(&fp.plan, (fault_rule){.op = "amqp.publish",
                                          .nth = 1,
                                          .error = ACP_EBROKER,
                                          .kind = FAKE_BROKER_PUBLISH_NO_CONFIRM});
    acp_job_id id;
    assert_int_equal(fake_platform_submit(&fp, "{\"logic\":\"no-confirm\"}", INPUT, &id, NULL), 0);
    assert_int_equal(fake_broker_published(fp.broker, FAKE_PLATFORM_QUEUE), 2);
    expect_complete(&fp, &id, 1);
    drain(&fp);
    assert_int_equal(dropped(&fp), 1);
    assert_int_equal(fake_platform_runs(&id), 1);
    fake_platform_stop(&fp);
}

/* Both attempts of the submit's publish fail: the submit still succeeds,
 * the row says undispatched with a retry time, and the maintenance pass
 * publishes it. With @queued (no confirm), the broker had the messages
 * all along: the job runs once and the maintenance pass publishes nothing. */
static void publish_fails_twice(int kind, const char *config, bool queued)
{
    fake_platform fp;
    start(&fp);
    fault_plan_add(
        &fp.plan,
        (fault_rule){
            .op = "amqp.publish", .nth = 1, .times = 2, .error = ACP_EBROKER, .kind = kind});
    acp_job_id id;
    assert_int_equal(submit_reported(&fp, config, &id), 0);
    assert_int_equal(fake_broker_published(fp.broker, FAKE_PLATFORM_QUEUE), queued ? 2 : 0);
    fake_store_row row;
    assert_int_equal(fake_store_peek_row(fp.store, &id, &row), 0);
    assert_int_equal(row.dispatched, 0);
    assert_int_equal(row.dispatch_failures, 1);
    assert_true(row.dispatch_retry > 0);
    fake_store_row_free(&row);
    if (queued) {
        assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
        drain(&fp);
        assert_int_equal(dropped(&fp), 1);
    }
    expect_complete(&fp, &id, 1);
    assert_int_equal(fake_broker_published(fp.broker, FAKE_PLATFORM_QUEUE), queued ? 2 : 1);
    drain(&fp);
    assert_int_equal(fake_platform_runs(&id), 1);
    fake_platform_stop(&fp);
}

static void a_lost_publish_is_redispatched(void **state)
{
    (void)state;
    publish_fails_twice(FAKE_BROKER_PUBLISH_LOST, "{\"logic\":\"lost\"}", false);
    publish_fails_twice(FAKE_BROKER_PUBLISH_NACK, "{\"logic\":\"nack\"}", false);
}

static void two_unconfirmed_publishes_run_the_job_once(void **state)
{
    (void)state;
    publish_fails_twice(FAKE_BROKER_PUBLISH_NO_CONFIRM, "{\"logic\":\"no-confirm-2\"}", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_step_of_a_submission_fails_in_turn),
        cmocka_unit_test(every_step_of_a_submission_fails_transiently_in_turn),
        cmocka_unit_test(every_step_of_a_submission_loses_an_answer_in_turn),
        cmocka_unit_test(every_step_of_a_rerun_loses_an_answer_in_turn),
        cmocka_unit_test(every_step_of_a_rerun_fails_in_turn),
        cmocka_unit_test(every_step_of_a_rerun_fails_transiently_in_turn),
        cmocka_unit_test(an_unconfirmed_publish_runs_the_job_once),
        cmocka_unit_test(a_lost_publish_is_redispatched),
        cmocka_unit_test(two_unconfirmed_publishes_run_the_job_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
