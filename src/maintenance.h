/* The maintenance thread: leases, requeueing, redispatching, scratch sweeps. */
#ifndef ACP_MAINTENANCE_H
#define ACP_MAINTENANCE_H

#include <stdbool.h>

#include "async_platform.h"

/* The thread's body; @platform is the acp_platform. */
void *maintenance_main(void *platform);
/* One pass of the lease/requeue/redispatch work (also used by tests): with
 * @renew, first the leases of the running set. Returns false when a
 * statement failed (the next pass should renew first); requeueing is skipped
 * when renewing failed. */
bool maintenance_tick(acp_platform *p, bool renew);
/* Remove the scratch directories of runs that are over (scratch_sweep),
 * logging what it did; run by acp_init and every few lease periods. */
void maintenance_sweep(acp_platform *p);

#endif
