/* The later life of results: expiring and deleting jobs, the pruner. */
#ifndef ACP_RETENTION_H
#define ACP_RETENTION_H

#include <stdbool.h>
#include <stddef.h>

#include "async_platform.h"

/* When this service's row of @id is expired (@row_status) while the shared
 * workspace shows another service's new run, drop the stale row (logged)
 * and return true: S3 is right about a job that was taken over. */
bool retention_taken_over(acp_platform *p, const acp_job_id *id, acp_job_status row_status);
/* One pruner pass: expire owned complete jobs not accessed for
 * expiration_days. An error on one job is logged and the pass goes on;
 * returns ACP_ESTORAGE when any job failed. */
int retention_prune(acp_platform *p, size_t *expired);
/* The pruner thread's body; @platform is the acp_platform. */
void *retention_pruner_main(void *platform);

#endif
