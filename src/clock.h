/* Time: waits and deadlines on CLOCK_MONOTONIC, so that a wall clock stepped
 * by NTP or by hand neither stalls a wait (leases would run out) nor cuts it
 * short; the wall clock only for times that are stored or sent; sleeps that
 * survive signals; UTC calendar fields for the text forms of stored times. */
#ifndef ACP_CLOCK_H
#define ACP_CLOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init() with a CLOCK_MONOTONIC clock, so that
 * pthread_cond_timedwait() takes deadlines from clock_deadline(). Returns 0
 * or the pthread error number. */
int clock_cond_init(pthread_cond_t *cond);

/* The CLOCK_MONOTONIC time @ms milliseconds from now. */
void clock_deadline(struct timespec *deadline, uint64_t ms);

/* CLOCK_MONOTONIC in milliseconds (an arbitrary origin: for differences). */
int64_t clock_now_ms(void);

/* Milliseconds from @since (a CLOCK_MONOTONIC time) to now. */
int64_t clock_elapsed_ms(const struct timespec *since);

/* The wall clock (CLOCK_REALTIME) in microseconds since the Unix epoch. */
int64_t clock_wall_us(void);

/* Sleep @ms milliseconds, resuming after a signal. */
void clock_sleep_ms(unsigned ms);

/* Sleep @ms milliseconds in slices of at most 100 ms, returning early (false)
 * once *@cancel is raised; @cancel may be NULL. True when the whole time
 * passed without cancellation. */
bool clock_sleep_unless(unsigned ms, const atomic_bool *cancel);

/* @us (µs since the epoch) as UTC calendar fields in @tm and the
 * microseconds within the second in *@micros. Returns false when the year
 * falls outside 0..9999 (a form without a sign cannot show it). */
bool clock_utc(int64_t us, struct tm *tm, int *micros);

#endif
