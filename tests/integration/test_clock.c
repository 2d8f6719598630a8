/* Point 6 of issue 10 end to end: acp_shutdown's deadline is measured on
 * CLOCK_MONOTONIC. As in tests/unit/test_monotonic_wait.c, this program is
 * linked with -Wl,--wrap=clock_gettime so that the library reads the wall
 * clock an hour ahead of the one the kernel waits on: a deadline taken from
 * that reading is one taken just before the wall clock stepped back an hour.
 * With shutdown_timeout 1 s and a job that runs until the test releases it,
 * acp_shutdown must come back while the job still runs, leaving it to finish
 * in the background. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "platform_fixture.h"
#include "recording_executor.h"

static stack_env env;
static atomic_long realtime_shift_s;
static atomic_bool platform_freed;

int __real_clock_gettime(clockid_t clock, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clock, struct timespec *ts);

int __wrap_clock_gettime(clockid_t clock, struct timespec *ts)
{
    int rc = __real_clock_gettime(clock, ts);
    if (rc == 0 && clock == CLOCK_REALTIME)
        ts->tv_sec += atomic_load(&realtime_shift_s);
    return rc;
}

/* The factory's free runs when the last reference to the platform goes. */
static void factory_free(void *userdata)
{
    (void)userdata;
    atomic_store(&platform_freed, true);
}

static void monotonic_shutdown_deadline_survives_wall_clock_step_back(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    acp_executor_factory factory = recording_factory;
    factory.free = factory_free;
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &factory);
    fc.config.shutdown_timeout = 1;
    acp_platform *p;
    if (acp_init(&p, &fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());

    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"mode\":\"block\",\"ms\":%d}", tag,
             FIXTURE_WAIT_S * 1000);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job;
    if (acp_submit(p, fc.queue_ids[0], &sub, &job) != 0)
        fail_msg("submit: %s", acp_last_error());
    acp_job_clear(&job);
    for (int waited = 0; recording_running() == 0 && waited < FIXTURE_WAIT_S * 1000; waited += 20)
        fixture_sleep_ms(20);
    assert_int_equal(recording_running(), 1);

    atomic_store(&realtime_shift_s, 3600);
    acp_shutdown(p);
    atomic_store(&realtime_shift_s, 0);
    int still_running = recording_running();

    /* Let the job end and the platform go before asserting, so that nothing
     * runs on when the test stops. */
    recording_release();
    for (int waited = 0; !atomic_load(&platform_freed) && waited < FIXTURE_WAIT_S * 1000;
         waited += 20)
        fixture_sleep_ms(20);
    assert_true(atomic_load(&platform_freed));
    recording_reset();
    if (still_running != 1)
        fail_msg("acp_shutdown (shutdown_timeout 1 s) waited for the job to end once the wall "
                 "clock stepped back an hour: its deadline is on CLOCK_REALTIME");
    assert_true(fixture_log_contains("still running after 1 s", NULL));
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(monotonic_shutdown_deadline_survives_wall_clock_step_back),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
