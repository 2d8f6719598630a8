/* Point 6 of issue 10: waits inside the library use CLOCK_MONOTONIC.
 *
 * The wall clock cannot be stepped for one process, so this program is
 * linked with -Wl,--wrap=clock_gettime: the library's own readings of
 * CLOCK_REALTIME are shifted by an hour while the kernel, which ends a
 * pthread_cond_timedwait() on its own clock, is not. A deadline taken from
 * the shifted reading is exactly a deadline taken just before the wall clock
 * was stepped by that hour. (libfaketime cannot show this: it rewrites
 * pthread_cond_timedwait() deadlines by the same offset, hiding the bug.) */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "platform_state.h"

#define HANG_GUARD_MS 10000

static atomic_long realtime_shift_s;

int __real_clock_gettime(clockid_t clock, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clock, struct timespec *ts);

int __wrap_clock_gettime(clockid_t clock, struct timespec *ts)
{
    int rc = __real_clock_gettime(clock, ts);
    if (rc == 0 && clock == CLOCK_REALTIME)
        ts->tv_sec += atomic_load(&realtime_shift_s);
    return rc;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    __real_clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct waiter {
    acp_platform *platform;
    atomic_bool flag;
    unsigned ms;
    atomic_bool done;
    int64_t elapsed_ms;
} waiter;

static void *wait_main(void *arg)
{
    waiter *w = arg;
    int64_t start = monotonic_ms();
    platform_state_wait(w->platform, w->ms, &w->flag);
    w->elapsed_ms = monotonic_ms() - start;
    atomic_store(&w->done, true);
    return NULL;
}

/* Run platform_state_wait(@ms) on a thread with the wall clock shifted by
 * @shift_s; returns whether it came back within the hang guard. */
static bool wait_shifted(waiter *w, long shift_s, unsigned ms)
{
    static acp_platform platform; /* left to the process if a wait hangs */
    assert_int_equal(platform_state_init_sync(&platform), 0);
    *w = (waiter){.platform = &platform, .ms = ms};
    atomic_store(&realtime_shift_s, shift_s);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, wait_main, w), 0);
    int64_t guard = monotonic_ms() + HANG_GUARD_MS;
    while (!atomic_load(&w->done) && monotonic_ms() < guard) {
        struct timespec tick = {0, 10 * 1000000L};
        nanosleep(&tick, NULL);
    }
    atomic_store(&realtime_shift_s, 0);
    if (!atomic_load(&w->done)) {
        pthread_detach(thread);
        return false;
    }
    pthread_join(thread, NULL);
    return true;
}

static void monotonic_wait_survives_wall_clock_step_back(void **state)
{
    (void)state;
    waiter w;
    if (!wait_shifted(&w, 3600, 200))
        fail_msg("platform_state_wait(200 ms) still waiting after %d s once the wall clock stepped "
                 "back an hour: it waits on CLOCK_REALTIME",
                 HANG_GUARD_MS / 1000);
}

static void monotonic_wait_survives_wall_clock_step_forward(void **state)
{
    (void)state;
    waiter w;
    assert_true(wait_shifted(&w, -3600, 500));
    if (w.elapsed_ms < 500)
        fail_msg("platform_state_wait(500 ms) returned after %lld ms once the wall clock stepped "
                 "forward an hour: it waits on CLOCK_REALTIME",
                 (long long)w.elapsed_ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(monotonic_wait_survives_wall_clock_step_back),
        cmocka_unit_test(monotonic_wait_survives_wall_clock_step_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
