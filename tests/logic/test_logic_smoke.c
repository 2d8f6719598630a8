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
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = "{\"logic\":\"smoke\"}";
    acp_job job;
    if (acp_submit(fp.p, FAKE_PLATFORM_QUEUE, &sub, &job) != 0)
        fail_msg("submit: %s", acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&id), 1);
    assert_true(fake_platform_has_object(&fp, &id, "result.txt"));
    assert_true(fake_platform_has_object(&fp, &id, ".complete"));
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.attempts, 1);
    acp_job_clear(&job);
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_job_runs_on_the_fakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
