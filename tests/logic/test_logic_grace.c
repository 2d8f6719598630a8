/* A worker's consumer around its jobs (worker.c, WORKER_CANCEL_GRACE_MS):
 * a short job costs no cancel and no consume, and the message pushed to the
 * worker meanwhile is its next job; a job that outlives the grace stops its
 * consumer, so that a message pushed to it goes to another worker while the
 * job still runs. Counted on the fake broker (fake_broker_consumes and
 * fake_broker_cancels); waits are hang guards, not timings. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"
#include "fake_platform.h"

/* Far longer than any job of the first case, even under valgrind. */
#define LONG_GRACE_MS (FAKE_PLATFORM_WAIT_S * 1000)

/* Runs whose config names a gate wait until the test opens it. */
static pthread_mutex_t gates_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gates_changed;
static bool gate_open[2];
static unsigned gate_waiting[2];

static void gates_reset(void)
{
    pthread_mutex_lock(&gates_lock);
    memset(gate_open, 0, sizeof gate_open);
    memset(gate_waiting, 0, sizeof gate_waiting);
    pthread_mutex_unlock(&gates_lock);
}

static void gate_open_now(int gate)
{
    pthread_mutex_lock(&gates_lock);
    gate_open[gate] = true;
    pthread_cond_broadcast(&gates_changed);
    pthread_mutex_unlock(&gates_lock);
}

/* Wait until a run waits at @gate: false after the hang guard. */
static bool gate_wait_reached(int gate)
{
    struct timespec until;
    clock_deadline(&until, FAKE_PLATFORM_WAIT_S * 1000);
    pthread_mutex_lock(&gates_lock);
    while (!gate_waiting[gate])
        if (pthread_cond_timedwait(&gates_changed, &gates_lock, &until) != 0)
            break;
    bool reached = gate_waiting[gate] > 0;
    pthread_mutex_unlock(&gates_lock);
    return reached;
}

static void wait_at_gates(acp_job_context *ctx, void *arg)
{
    (void)arg;
    int gate = -1;
    if (ctx->config && strstr(ctx->config, "\"gate\":0"))
        gate = 0;
    else if (ctx->config && strstr(ctx->config, "\"gate\":1"))
        gate = 1;
    if (gate < 0)
        return;
    struct timespec until;
    clock_deadline(&until, FAKE_PLATFORM_WAIT_S * 1000);
    pthread_mutex_lock(&gates_lock);
    gate_waiting[gate]++;
    pthread_cond_broadcast(&gates_changed);
    while (!gate_open[gate])
        if (pthread_cond_timedwait(&gates_changed, &gates_lock, &until) != 0)
            break;
    pthread_mutex_unlock(&gates_lock);
}

static int setup(void **state)
{
    (void)state;
    clock_cond_init(&gates_changed);
    gates_reset();
    fake_platform_on_execute(wait_at_gates, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_platform_on_execute(NULL, NULL);
    gate_open_now(0);
    gate_open_now(1);
    pthread_cond_destroy(&gates_changed);
    return 0;
}

/* Jobs shorter than the grace: the worker consumes once, at its start, and
 * the message published while its job runs is pushed to it (it is the only
 * worker) and is its next job. */
static void short_jobs_cost_no_cancel_and_no_consume(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp,
                        &(fake_platform_options){.workers = 1, .cancel_grace_ms = LONG_GRACE_MS});
    acp_job_id first = fake_platform_submit_ok(&fp, "{\"logic\":\"grace\",\"gate\":0}");
    assert_true(gate_wait_reached(0));
    acp_job_id next = fake_platform_submit_ok(&fp, "{\"logic\":\"grace\",\"n\":\"next\"}");
    /* Pushed to the busy worker's consumer, not waiting in the queue. */
    for (int i = 0;
         i < FAKE_PLATFORM_WAIT_S * 100 && fake_broker_ready(fp.broker, FAKE_PLATFORM_QUEUE) != 0;
         i++)
        clock_sleep_ms(10);
    assert_int_equal(fake_broker_ready(fp.broker, FAKE_PLATFORM_QUEUE), 0);
    assert_int_equal(fake_broker_unacked(fp.broker, FAKE_PLATFORM_QUEUE), 1);
    gate_open_now(0);
    assert_true(fake_platform_wait(&fp, &first, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_wait(&fp, &next, ACP_STATUS_COMPLETE));
    /* And a few more, one after the other. */
    for (int i = 0; i < 3; i++) {
        char config[64];
        snprintf(config, sizeof config, "{\"logic\":\"grace\",\"n\":%d}", i);
        acp_job_id id = fake_platform_submit_ok(&fp, config);
        assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
        assert_int_equal(fake_platform_runs(&id), 1);
    }
    assert_int_equal(fake_platform_runs(&first), 1);
    assert_int_equal(fake_platform_runs(&next), 1);
    assert_int_equal(fake_broker_consumes(fp.broker), 1);
    assert_int_equal(fake_broker_cancels(fp.broker), 0);
    fake_platform_stop(&fp);
}

/* Two workers, each on a job that outlives the library's grace: the long
 * job (gate 0) waits until the message published after it was run to the
 * end by the other worker, whose job (gate 1) the test lets go. The
 * message goes first to the long job's worker (pushed least recently), so
 * it completes only because that worker's consumer was cancelled and the
 * message handed back. */
static void a_long_job_hands_its_next_message_to_another_worker(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, &(fake_platform_options){.workers = 2});
    acp_job_id slow = fake_platform_submit_ok(&fp, "{\"logic\":\"grace long\",\"gate\":0}");
    assert_true(gate_wait_reached(0));
    acp_job_id other = fake_platform_submit_ok(&fp, "{\"logic\":\"grace long\",\"gate\":1}");
    assert_true(gate_wait_reached(1));
    acp_job_id next = fake_platform_submit_ok(&fp, "{\"logic\":\"grace long\",\"n\":\"next\"}");
    gate_open_now(1);
    assert_true(fake_platform_wait(&fp, &other, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_wait(&fp, &next, ACP_STATUS_COMPLETE));
    /* The long job is still running. */
    fake_store_row row;
    assert_int_equal(fake_store_peek_row(fp.store, &slow, &row), 0);
    acp_job_status status = row.job.status;
    fake_store_row_free(&row);
    assert_int_equal(status, ACP_STATUS_IN_PROGRESS);
    gate_open_now(0);
    assert_true(fake_platform_wait(&fp, &slow, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&slow), 1);
    assert_int_equal(fake_platform_runs(&next), 1);
    assert_true(fake_broker_cancels(fp.broker) >= 1);
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(short_jobs_cost_no_cancel_and_no_consume, setup, teardown),
        cmocka_unit_test_setup_teardown(a_long_job_hands_its_next_message_to_another_worker, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
