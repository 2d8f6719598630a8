/* Issue 12 point 6 end to end: a program built against version 1 of
 * acp_config and acp_queue_config starts a platform of this library against
 * the real services, and its jobs run. acp_job says which version filled it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "platform_fixture.h"
#include "recording_executor.h"
#include "struct_v1.h"

static stack_env env;

static void platform_from_version_1_structures_runs_jobs(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 2, 1, &recording_factory);

    /* The same settings, as the older program lays them out. */
    config_v1 old;
    queue_config_v1 old_queues[2];
    assert_int_equal(acp_config_init((acp_config *)&old, 1), 0);
    old.db = fc.config.db;
    old.s3 = fc.config.s3;
    old.workspace_root = fc.config.workspace_root;
    old.executor_factory = fc.config.executor_factory;
    old.lease_seconds = fc.config.lease_seconds;
    old.log = fc.config.log;
    old.log_level = fc.config.log_level;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(acp_queue_config_init((acp_queue_config *)&old_queues[i], 1), 0);
        old_queues[i].id = fc.queues[i].id;
        old_queues[i].host = fc.queues[i].host;
        old_queues[i].port = fc.queues[i].port;
        old_queues[i].user = fc.queues[i].user;
        old_queues[i].password = fc.queues[i].password;
        old_queues[i].workers = 1;
    }
    old.queues = old_queues;
    old.queue_count = 2;

    acp_platform *p;
    if (acp_init(&p, (const acp_config *)&old) != 0)
        fail_msg("acp_init with version 1 structures: %s", acp_last_error());
    /* The second queue is found where a version 1 array has it. */
    acp_job_id ids[2];
    for (int i = 0; i < 2; i++) {
        char config[96];
        snprintf(config, sizeof config, "{\"tag\":\"%s\",\"n\":%d}", tag, i);
        acp_submission sub;
        assert_int_equal(acp_submission_init(&sub, 1), 0);
        sub.config = config;
        acp_job job;
        if (acp_submit(p, fc.queue_ids[i], &sub, &job) != 0)
            fail_msg("submit to %s: %s", fc.queue_ids[i], acp_last_error());
        ids[i] = job.id;
        assert_int_equal(job.version, ACP_JOB_VERSION);
        acp_job_clear(&job);
    }
    for (int i = 0; i < 2; i++) {
        acp_job job = {0};
        if (!fixture_wait_status(p, &ids[i], ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
            fail_msg("job %d did not complete", i);
        assert_int_equal(job.version, ACP_JOB_VERSION);
        assert_string_equal(job.queue, fc.queue_ids[i]);
        acp_job_clear(&job);
    }
    acp_shutdown(p);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(platform_from_version_1_structures_runs_jobs),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
