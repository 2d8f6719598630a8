/* The native layout's logic on the fakes: what a job costs in S3, a fault
 * at every step of a run without result files (its one-statement finish
 * included), a submit whose input upload fails, and an expiry that S3 cuts
 * short. Each case ends where a user would look: the row, the objects,
 * the statistics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_platform.h"
#include "maintenance.h"

#define LEASE_S       30
#define PAST_LEASE_US ((int64_t)(LEASE_S + 1) * 1000000)

static const char *const s3_ops[] = {"s3.put", "s3.get", "s3.head", "s3.list", "s3.delete"};

static unsigned s3_calls(fake_platform *fp)
{
    unsigned n = 0;
    for (size_t i = 0; i < sizeof s3_ops / sizeof *s3_ops; i++)
        n += fault_calls(&fp->plan, s3_ops[i]);
    return n;
}

static void start_native(fake_platform *fp)
{
    fake_platform_start(
        fp, &(fake_platform_options){.lease_seconds = LEASE_S, .layout = ACP_LAYOUT_NATIVE});
    fault_plan_reset(&fp->plan); /* counts from here: the start's requests are not a job's */
}

static void noop_job_makes_no_s3_request_and_one_result_one_put(void **state)
{
    (void)state;
    fake_platform fp;
    start_native(&fp);
    acp_job_id noop = fake_platform_submit_ok(&fp, "{\"logic\":\"native\",\"noop\":true}");
    assert_true(fake_platform_wait(&fp, &noop, ACP_STATUS_COMPLETE));
    assert_int_equal(s3_calls(&fp), 0);
    assert_int_equal(fake_platform_object_count(&fp, &noop), 0);

    acp_job_id one = fake_platform_submit_ok(&fp, "{\"logic\":\"native\",\"noop\":false}");
    assert_true(fake_platform_wait(&fp, &one, ACP_STATUS_COMPLETE));
    assert_int_equal(s3_calls(&fp), 1);
    assert_int_equal(fault_calls(&fp.plan, "s3.put"), 1);
    assert_true(fake_platform_has_object(&fp, &one, "result.txt"));
    assert_int_equal(fake_platform_object_count(&fp, &one), 1);

    acp_result_list list;
    assert_int_equal(acp_get_results(fp.p, &one, &list), 0);
    assert_int_equal(list.count, 1);
    assert_string_equal(list.files[0].name, "result.txt");
    assert_int_equal(list.files[0].size, strlen("attempt=1\n"));
    acp_result_list_clear(&list);
    assert_int_equal(s3_calls(&fp), 1); /* the listing came from the row */
    fake_platform_stop(&fp);
}

/* The recorded run's finish is one UPDATE. Whether it fails before it is
 * applied or after (the answer lost), the job ends complete, recorded once,
 * and the run is never taken for one that lost its lease. */
static void lost_finish_answer_is_recorded_once(void **state)
{
    (void)state;
    for (int after = 0; after < 2; after++) {
        fake_platform fp;
        start_native(&fp);
        fault_plan_add(&fp.plan, (fault_rule){.op = "pg.finish",
                                              .nth = 1,
                                              .error = ACP_EDB,
                                              .kind = after ? FAKE_STORE_FAULT_AFTER : 0});
        char config[64];
        snprintf(config, sizeof config, "{\"logic\":\"native-finish\",\"noop\":true,\"a\":%d}",
                 after);
        acp_job_id id = fake_platform_submit_ok(&fp, config);
        assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
        assert_int_equal(fake_platform_runs(&id), 1);
        assert_false(fake_platform_logged("lost its lease"));
        assert_true(fake_platform_logged("retrying until the database answers"));
        assert_true(fake_platform_idle(&fp)); /* the run is counted after its row */
        acp_stats st = {.version = ACP_STATS_VERSION};
        assert_int_equal(acp_get_stats(fp.p, &st), 0);
        assert_int_equal(st.jobs_completed, 1);
        fake_platform_stop(&fp);
    }
}

/* A run whose lease was taken (its process was presumed dead) records
 * nothing with the one-statement finish either. */
static void finish_without_the_lease_changes_nothing(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, &(fake_platform_options){.workers = 2,
                                                      .lease_seconds = LEASE_S,
                                                      .layout = ACP_LAYOUT_NATIVE});
    fake_platform_executor_block(1, 1);
    acp_job_id id = fake_platform_submit_ok(&fp, "{\"logic\":\"native-lease\",\"noop\":true}");
    assert_true(fake_platform_executor_wait_blocked(1));
    /* Requeued by a pass that renews nothing of this one's; the second
     * worker runs it again and records it. */
    fake_store_advance(fp.store, PAST_LEASE_US);
    assert_true(maintenance_tick(fp.p, false));
    fake_platform_redispatch(&fp, &id); /* once the retry's back-off is over */
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    acp_job job;
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    int64_t finished = job.finished;
    acp_job_clear(&job);
    /* The stalled first run wakes up: its finish is refused. */
    fake_platform_executor_release();
    assert_true(fake_platform_idle(&fp));
    assert_true(fake_platform_logged("lost its lease"));
    assert_int_equal(fake_platform_runs(&id), 2);
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.attempts, 2);
    assert_true(job.finished == finished);
    acp_job_clear(&job);
    fake_platform_stop(&fp);
}

static void failed_input_upload_leaves_nothing(void **state)
{
    (void)state;
    fake_platform fp;
    start_native(&fp);
    fault_plan_add(&fp.plan,
                   (fault_rule){.op = "s3.put", .error = ACP_ESTORAGE, .kind = FAKE_S3_403});
    acp_job_id id;
    assert_int_equal(fake_platform_submit(&fp, "{\"logic\":\"native-input\"}", "abc", &id, NULL),
                     ACP_ESTORAGE);
    fault_plan_reset(&fp.plan);
    acp_job job;
    assert_int_equal(acp_get_job(fp.p, &id, &job), ACP_ENOTFOUND);
    assert_int_equal(fake_platform_object_count(&fp, &id), 0);
    /* And once S3 is back the same submission goes through. */
    assert_int_equal(fake_platform_submit(&fp, "{\"logic\":\"native-input\"}", "abc", &id, NULL),
                     0);
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_has_object(&fp, &id, "in.txt"));
    fake_platform_stop(&fp);
}

static void expiry_cut_short_keeps_the_row_until_repeated(void **state)
{
    (void)state;
    fake_platform fp;
    start_native(&fp);
    acp_job_id id;
    assert_int_equal(fake_platform_submit(&fp, "{\"logic\":\"native-expire\"}", "abc", &id, NULL),
                     0);
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_object_count(&fp, &id), 2);
    fault_plan_add(
        &fp.plan,
        (fault_rule){.op = "s3.delete", .nth = 2, .error = ACP_ESTORAGE, .kind = FAKE_S3_403});
    assert_int_equal(acp_expire_job(fp.p, &id), ACP_ESTORAGE);
    acp_job job;
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    acp_job_clear(&job);
    fault_plan_reset(&fp.plan);
    assert_int_equal(acp_expire_job(fp.p, &id), 0);
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    acp_job_clear(&job);
    assert_int_equal(fake_platform_object_count(&fp, &id), 0);
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(noop_job_makes_no_s3_request_and_one_result_one_put),
        cmocka_unit_test(lost_finish_answer_is_recorded_once),
        cmocka_unit_test(finish_without_the_lease_changes_nothing),
        cmocka_unit_test(failed_input_upload_leaves_nothing),
        cmocka_unit_test(expiry_cut_short_keeps_the_row_until_repeated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
