/* Waits measured on CLOCK_MONOTONIC: a wall clock stepped by NTP or by hand
 * must neither stall a wait (leases would run out) nor cut it short. */
#ifndef ACP_SYNC_H
#define ACP_SYNC_H

#include <pthread.h>
#include <time.h>

/* pthread_cond_init() with a CLOCK_MONOTONIC clock, so that
 * pthread_cond_timedwait() takes deadlines from sync_deadline(). Returns 0
 * or the pthread error number. */
int sync_cond_init(pthread_cond_t *cond);

/* The CLOCK_MONOTONIC time @ms milliseconds from now. */
void sync_deadline(struct timespec *deadline, unsigned ms);

#endif
