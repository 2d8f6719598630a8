/* Reading and following job logs (acp_read_log): the waiters that the
 * listening connection wakes when a job's log grows (STORE_LOG_CHANNEL). */
#ifndef ACP_LOGREAD_H
#define ACP_LOGREAD_H

#include "async_platform.h"

/* Wake the acp_read_log calls waiting for job @id's log; NULL: all of them
 * (a notification may have been lost). */
void logread_wake(acp_platform *p, const acp_job_id *id);

#endif
