/* Point 9 of issue 10: acp_init checks every pthread_create and, when one
 * fails, returns ACP_ENOMEM naming the thread, with every thread it started
 * stopped again (counted in /proc/self/task) and nothing leaked (valgrind).
 * Also point 7's fallback when a job's heartbeat thread cannot start.
 * The failures are injected with -Wl,--wrap=pthread_create on the internal
 * library; the services are real, as the threads start after connecting. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "platform_fixture.h"
#include "recording_executor.h"

static stack_env env;
/* Which call fails (1 = the first from now on; 0 = none), and the count:
 * atomic, as workers start threads too. */
static atomic_int create_fail_at, create_calls;

int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (atomic_fetch_add(&create_calls, 1) + 1 == atomic_load(&create_fail_at))
        return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

static int thread_count(void)
{
    DIR *dir = opendir("/proc/self/task");
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)))
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

/* acp_init with the @nth thread failing to start: the maintenance thread,
 * the pruner, the listening thread (cancellations), then the workers of
 * the queue in order. */
static void expect_init_fails(int nth, const char *text)
{
    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 2, &recording_factory);
    int before = thread_count();
    atomic_store(&create_calls, 0);
    atomic_store(&create_fail_at, nth);
    acp_platform *p = NULL;
    int rc = acp_init(&p, &fc.config);
    atomic_store(&create_fail_at, 0);
    if (rc == 0)
        acp_shutdown(p);
    if (rc != ACP_ENOMEM || !strstr(acp_last_error(), text))
        fail_msg("acp_init returned %d (%s), expected ACP_ENOMEM naming '%s'", rc, acp_last_error(),
                 text);
    assert_null(p);
    assert_int_equal(thread_count(), before);
}

static void unchecked_init_maintenance_thread_fails_init(void **state)
{
    (void)state;
    expect_init_fails(1, "starting the maintenance thread: Resource temporarily unavailable");
}

static void unchecked_init_pruner_thread_fails_init(void **state)
{
    (void)state;
    expect_init_fails(2, "starting the pruner thread");
}

static void unchecked_init_listener_thread_fails_init(void **state)
{
    (void)state;
    expect_init_fails(3, "starting the listening thread");
}

static void unchecked_init_worker_thread_fails_init(void **state)
{
    (void)state;
    expect_init_fails(5, "starting worker 2 of queue");
}

static acp_job_id submit_sleep(acp_platform *p, const char *queue, const char *tag, int n)
{
    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"n\":%d,\"mode\":\"sleep\",\"ms\":100}", tag,
             n);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job;
    if (acp_submit(p, queue, &sub, &job) != 0)
        fail_msg("submit: %s", acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    if (!fixture_wait_status(p, &id, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
        fail_msg("job %d did not complete (is %s)", n, acp_job_status_name(job.status));
    acp_job_clear(&job);
    return id;
}

/* Point 7's fallback: when the heartbeat thread of a job cannot start, the
 * worker closes its connection for the job, runs it, and consumes again on
 * a new connection afterwards. */
static void keeper_thread_failure_still_runs_the_job(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    acp_platform *p;
    atomic_store(&create_calls, 0);
    if (acp_init(&p, &fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
    /* The maintenance thread, the pruner, the listening thread and the
     * worker have started: the next thread is the first job's heartbeat
     * thread. */
    assert_int_equal(atomic_load(&create_calls), 4);
    atomic_store(&create_fail_at, 5);
    acp_job_id first = submit_sleep(p, fc.queue_ids[0], tag, 1);
    atomic_store(&create_fail_at, 0);
    assert_true(fixture_log_contains("starting the heartbeat thread", "closing the connection"));
    acp_job_id second = submit_sleep(p, fc.queue_ids[0], tag, 2);
    assert_int_equal(recording_runs(&first), 1);
    assert_int_equal(recording_runs(&second), 1);
    acp_shutdown(p);
}

static void *nothing(void *arg)
{
    return arg;
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    /* ThreadSanitizer starts a helper thread with the first thread: have
     * it before any count. */
    pthread_t warm_up;
    if (__real_pthread_create(&warm_up, NULL, nothing, NULL) == 0)
        pthread_join(warm_up, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unchecked_init_maintenance_thread_fails_init),
        cmocka_unit_test(unchecked_init_pruner_thread_fails_init),
        cmocka_unit_test(unchecked_init_listener_thread_fails_init),
        cmocka_unit_test(unchecked_init_worker_thread_fails_init),
        cmocka_unit_test(keeper_thread_failure_still_runs_the_job),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
