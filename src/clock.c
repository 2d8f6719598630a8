#include "clock.h"

#include <errno.h>

int clock_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!rc)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

void clock_deadline(struct timespec *deadline, uint64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, deadline);
    deadline->tv_sec += (time_t)(ms / 1000);
    deadline->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
}

int64_t clock_now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t clock_elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

int64_t clock_wall_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

void clock_sleep_ms(unsigned ms)
{
    struct timespec left = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

bool clock_sleep_unless(unsigned ms, const atomic_bool *cancel)
{
    while (ms > 0) {
        if (cancel && atomic_load(cancel))
            return false;
        unsigned slice = ms < 100 ? ms : 100;
        clock_sleep_ms(slice);
        ms -= slice;
    }
    return !(cancel && atomic_load(cancel));
}

bool clock_utc(int64_t us, struct tm *tm, int *micros)
{
    int64_t seconds = us / 1000000, rest = us % 1000000;
    if (rest < 0) {
        rest += 1000000;
        seconds--;
    }
    time_t t = (time_t)seconds;
    if (!gmtime_r(&t, tm) || tm->tm_year + 1900 < 0 || tm->tm_year + 1900 > 9999)
        return false;
    *micros = (int)rest;
    return true;
}
