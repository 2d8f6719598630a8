/* The running set: the jobs this process runs now, whose leases it renews. */
#ifndef ACP_RUNNING_H
#define ACP_RUNNING_H

#include <stddef.h>

#include "async_platform.h"

/* Adding fails only for want of memory (ACP_ENOMEM); removing an id that
 * is not there does nothing. */
int running_add(acp_platform *p, const acp_job_id *id);
void running_remove(acp_platform *p, const acp_job_id *id);
/* A copy of the running set: *@ids is malloc'd (free it; NULL when empty). */
int running_copy(acp_platform *p, acp_job_id **ids, size_t *count);

#endif
