/* Worker threads: per queue, each with its own broker connection, running
 * the jobs it is delivered. */
#ifndef ACP_WORKER_H
#define ACP_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "platform_state.h"

/* Start the configured number of workers of @q, each holding a reference
 * to the platform. */
int worker_start_all(queue_rt *q);
/* Wait until every worker of @q exits or @deadline passes (CLOCK_MONOTONIC);
 * workers still running are detached. Returns the number left running. */
size_t worker_stop_all(queue_rt *q, const struct timespec *deadline);
/* Whether the calling thread is one of @p's workers (where executors and
 * the factory run). */
bool worker_is_current(const acp_platform *p);

#endif
