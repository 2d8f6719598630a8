/* The fake platform itself: a job submitted on the fakes runs once, and its
 * state is where a user would look for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "fake_platform.h"

static void a_job_runs_on_the_fakes(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, NULL);
    acp_job_id id = fake_platform_submit_ok(&fp, "{\"logic\":\"smoke\"}");
    acp_job job;
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&id), 1);
    assert_true(fake_platform_has_object(&fp, &id, "result.txt"));
    assert_true(fake_platform_wait_object(&fp, &id, ".complete"));
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.attempts, 1);
    acp_job_clear(&job);
    fake_platform_stop(&fp);
}

static void shut_down_from_inside(acp_job_context *ctx, void *arg)
{
    (void)ctx;
    acp_shutdown(((fake_platform *)arg)->p);
}

/* Issue 12 point 7: acp_shutdown on one of the platform's own threads would
 * wait for itself; it is refused with an error in the log, and the job and
 * the platform carry on. */
static void shutdown_from_an_executor_is_refused(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, NULL);
    fake_platform_on_execute(shut_down_from_inside, &fp);
    acp_job_id id = fake_platform_submit_ok(&fp, "{\"logic\":\"shutdown inside\"}");
    bool done = fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE);
    fake_platform_on_execute(NULL, NULL);
    assert_true(done);
    assert_true(fake_platform_logged("acp_shutdown called on a thread of the platform's own"));
    /* Still running: another job goes through. */
    id = fake_platform_submit_ok(&fp, "{\"logic\":\"after\"}");
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_job_runs_on_the_fakes),
        cmocka_unit_test(shutdown_from_an_executor_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
