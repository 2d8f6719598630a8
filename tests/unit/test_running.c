/* The running set: the jobs whose leases this process renews, and where a
 * cancellation or a timeout reaches a run (its reason and descriptor), and
 * the hand-over of a run between its worker and the watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "clock.h"
#include "platform_state.h"
#include "running.h"

#define HANG_GUARD_MS 10000 /* the bound of a wait that should end at once */

static bool contains(const acp_job_id *ids, size_t count, const acp_job_id *id)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(ids[i].bytes, id->bytes, sizeof id->bytes) == 0)
            return true;
    return false;
}

static void the_set_holds_what_was_added_and_not_removed(void **state)
{
    (void)state;
    acp_platform p;
    memset(&p, 0, sizeof p);
    assert_int_equal(platform_state_init_sync(&p), 0);

    acp_job_id *ids;
    size_t count = 99;
    assert_int_equal(running_copy(&p, &ids, &count), 0);
    assert_null(ids);
    assert_int_equal(count, 0);

    /* More than the first allocation holds. */
    store_job rows[20];
    running_job jobs[20];
    for (size_t i = 0; i < 20; i++) {
        store_job_init(&rows[i]);
        acp_job_id_generate(&rows[i].id);
        jobs[i] = (running_job){.row = &rows[i]};
        assert_int_equal(running_add(&p, &jobs[i]), 0);
    }
    running_remove(&p, &jobs[3]);
    running_remove(&p, &jobs[19]);
    store_job stranger_row;
    store_job_init(&stranger_row);
    acp_job_id_generate(&stranger_row.id);
    running_job stranger = {.row = &stranger_row, .cancel_fd = -1};
    running_remove(&p, &stranger); /* not there: nothing happens */

    assert_int_equal(running_copy(&p, &ids, &count), 0);
    assert_int_equal(count, 18);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(contains(ids, count, &rows[i].id), i != 3 && i != 19);
    assert_false(contains(ids, count, &stranger_row.id));
    /* A copy: later changes do not reach it. */
    running_remove(&p, &jobs[0]);
    assert_true(contains(ids, count, &rows[0].id));
    free(ids);
    for (size_t i = 1; i < 19; i++)
        if (i != 3)
            running_remove(&p, &jobs[i]);

    free(p.running);
    pthread_mutex_destroy(&p.scratch_lock);
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.changed);
}

/* ---- one platform, runs of rows of our own ---------------------------------- */

typedef struct fixture {
    acp_platform p;
    store_job rows[4];
    running_job runs[4];
} fixture;

static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || platform_state_init_sync(&f->p) != 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        store_job_init(&f->rows[i]);
        if (acp_job_id_generate(&f->rows[i].id) != 0)
            return -1;
        f->runs[i] = (running_job){.row = &f->rows[i], .cancel_fd = -1};
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 4; i++)
        running_remove(&f->p, &f->runs[i]); /* not linked: nothing happens */
    free(f->p.running);
    pthread_mutex_destroy(&f->p.scratch_lock);
    pthread_mutex_destroy(&f->p.lock);
    pthread_cond_destroy(&f->p.changed);
    free(f);
    return 0;
}

/* Whether @run's descriptor is readable within @ms. */
static bool readable(const running_job *run, int ms)
{
    struct pollfd fd = {.fd = run->cancel_fd, .events = POLLIN};
    int n = poll(&fd, 1, ms);
    assert_true(n >= 0);
    return n == 1 && (fd.revents & POLLIN);
}

static bool copied(acp_platform *p, const acp_job_id *id, size_t *count)
{
    acp_job_id *ids;
    assert_int_equal(running_copy(p, &ids, count), 0);
    bool found = contains(ids, *count, id);
    free(ids);
    return found;
}

static void a_signal_sets_the_reason_once_and_makes_the_descriptor_readable(void **state)
{
    fixture *f = *state;
    running_job *run = &f->runs[0], *ending = &f->runs[1];
    assert_int_equal(running_add(&f->p, run), 0);
    assert_int_equal(running_add(&f->p, ending), 0);
    assert_true(run->cancel_fd >= 0);
    assert_int_equal(atomic_load(&run->reason), ACP_CANCEL_NONE);
    assert_false(readable(run, 0));

    assert_true(running_signal(&f->p, &f->rows[0].id, ACP_CANCEL_REQUESTED));
    assert_int_equal(atomic_load(&run->reason), ACP_CANCEL_REQUESTED);
    assert_true(readable(run, HANG_GUARD_MS));
    /* The first reason stays: a later timeout does not replace it. */
    assert_true(running_signal(&f->p, &f->rows[0].id, ACP_CANCEL_TIMEOUT));
    assert_int_equal(atomic_load(&run->reason), ACP_CANCEL_REQUESTED);
    assert_true(readable(run, 0));
    assert_false(readable(ending, 0)); /* only the run named */

    /* A job this process does not run: false. */
    acp_job_id stranger;
    assert_int_equal(acp_job_id_generate(&stranger), 0);
    assert_false(running_signal(&f->p, &stranger, ACP_CANCEL_REQUESTED));

    /* A run whose executor returned (being recorded) is ours, but there is
     * nothing left to stop. */
    assert_true(running_end(&f->p, ending));
    assert_int_equal(ending->state, RUNNING_RECORDING);
    assert_true(running_signal(&f->p, &f->rows[1].id, ACP_CANCEL_REQUESTED));
    assert_int_equal(atomic_load(&ending->reason), ACP_CANCEL_NONE);
    assert_false(readable(ending, 0));

    /* Unlinked: its descriptor is closed, the job no longer ours. */
    running_remove(&f->p, run);
    assert_int_equal(run->cancel_fd, -1);
    assert_false(running_signal(&f->p, &f->rows[0].id, ACP_CANCEL_REQUESTED));
}

static void a_deadline_raises_a_timeout(void **state)
{
    fixture *f = *state;
    running_job *timed = &f->runs[0], *untimed = &f->runs[1];
    f->rows[0].timeout_seconds = 30;
    int64_t before = clock_now_ms();
    assert_int_equal(running_add(&f->p, timed), 0);
    int64_t after = clock_now_ms();
    assert_int_equal(running_add(&f->p, untimed), 0);
    /* The row's timeout from the start of the run, on the monotonic clock. */
    assert_true(timed->deadline_ms >= before + 30000 && timed->deadline_ms <= after + 30000);
    assert_true(untimed->deadline_ms == 0); /* none */

    running_check_deadlines(&f->p);
    assert_int_equal(atomic_load(&timed->reason), ACP_CANCEL_NONE);
    assert_false(readable(timed, 0));

    /* Its time has come (the deadline moved rather than waited for). */
    timed->deadline_ms = clock_now_ms() - 1;
    running_check_deadlines(&f->p);
    assert_int_equal(atomic_load(&timed->reason), ACP_CANCEL_TIMEOUT);
    assert_true(readable(timed, HANG_GUARD_MS));
    assert_int_equal(atomic_load(&untimed->reason), ACP_CANCEL_NONE);
    assert_false(readable(untimed, 0));
    /* A cancellation after the timeout does not replace it. */
    assert_true(running_signal(&f->p, &f->rows[0].id, ACP_CANCEL_REQUESTED));
    assert_int_equal(atomic_load(&timed->reason), ACP_CANCEL_TIMEOUT);
}

typedef struct ender {
    acp_platform *p;
    running_job *run;
    atomic_bool done;
    bool ours;
} ender;

static void *end_run(void *arg)
{
    ender *e = arg;
    e->ours = running_end(e->p, e->run);
    atomic_store(&e->done, true);
    return NULL;
}

/* The watchdog takes a run asked to stop more than the grace ago; its
 * worker, when the executor returns, waits for the watchdog and records
 * nothing if the watchdog did. */
static void overdue_runs_are_handed_to_the_watchdog_and_back(void **state)
{
    fixture *f = *state;
    running_job *run = &f->runs[0], *quiet = &f->runs[1], *second = &f->runs[2];
    for (int i = 0; i < 3; i++)
        assert_int_equal(running_add(&f->p, &f->runs[i]), 0);
    running_job *out[4] = {NULL};
    assert_int_equal(running_take_overdue(&f->p, 0, out, 4), 0); /* nobody asked to stop */
    assert_true(running_signal(&f->p, &f->rows[0].id, ACP_CANCEL_REQUESTED));
    assert_true(running_signal(&f->p, &f->rows[2].id, ACP_CANCEL_REQUESTED));
    assert_int_equal(running_take_overdue(&f->p, 3600 * 1000, out, 4), 0); /* within the grace */
    /* At most @max at once. */
    assert_int_equal(running_take_overdue(&f->p, 0, out, 1), 1);
    running_job *first = out[0];
    assert_true(first == run || first == second);
    running_job *other = first == run ? second : run;
    assert_int_equal(first->state, RUNNING_TAKEN);
    assert_int_equal(other->state, RUNNING_EXECUTING);
    assert_int_equal(quiet->state, RUNNING_EXECUTING);
    size_t count;
    assert_false(copied(&f->p, &first->row->id, &count)); /* no lease of the worker's to renew */
    assert_int_equal(count, 2);

    /* The executor returns while the watchdog records: the worker waits. */
    ender e = {.p = &f->p, .run = first};
    atomic_init(&e.done, false);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, end_run, &e), 0);
    clock_sleep_ms(100);
    assert_false(atomic_load(&e.done));
    running_release(&f->p, first, true);
    pthread_join(thread, NULL);
    assert_true(atomic_load(&e.done));
    assert_false(e.ours); /* the watchdog recorded it */
    assert_int_equal(first->state, RUNNING_DONE);
    assert_int_equal(running_overdue_count(&f->p), 1);
    assert_false(copied(&f->p, &first->row->id, &count));
    assert_int_equal(count, 2);
    assert_int_equal(running_take_overdue(&f->p, 0, out, 4), 1); /* the other; not DONE again */
    assert_true(out[0] == other);

    /* The watchdog could not record it: the run is the worker's again. */
    running_release(&f->p, other, false);
    assert_int_equal(other->state, RUNNING_EXECUTING);
    assert_true(copied(&f->p, &other->row->id, &count));
    assert_true(running_end(&f->p, other));
    assert_int_equal(other->state, RUNNING_RECORDING);
    assert_true(copied(&f->p, &other->row->id, &count)); /* renewed while being recorded */
    assert_int_equal(running_overdue_count(&f->p), 1);

    /* The executor of the DONE run returns at last: its worker unlinks it. */
    running_remove(&f->p, first);
    assert_int_equal(running_overdue_count(&f->p), 0);
    assert_true(running_end(&f->p, quiet));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_set_holds_what_was_added_and_not_removed),
        cmocka_unit_test_setup_teardown(
            a_signal_sets_the_reason_once_and_makes_the_descriptor_readable, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(a_deadline_raises_a_timeout, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(overdue_runs_are_handed_to_the_watchdog_and_back,
                                        fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
