/* Recording how a run ended (for the worker that ran it, and for the
 * watchdog when the executor overran its grace). */
#ifndef ACP_RECORD_H
#define ACP_RECORD_H

#include "async_platform.h"
#include "store.h"

/* Record the end of @row's run as its executor left @ctx: @status
 * (complete or failed), unless the run was asked to stop (cancelled, or
 * failed as timed out), and queued for a retry instead of failed while
 * attempts are left and the failure is not permanent. Uploads the results
 * of a final end, fenced by the lease; retries while the database is
 * unreachable, until it answers or the platform stops. Counts and logs the
 * outcome; a lost lease discards the run. */
void record_run(acp_platform *p, const store_job *row, acp_job_context *ctx, acp_job_status status,
                const char *hex);

/* One try at recording an attempt stopped for @reason whose executor has
 * not returned: cancelled, or timed out (failed, or queued for a retry),
 * without results. 0 when recorded, ACP_ECONFLICT when the lease is lost
 * (nothing left to record), else an error to try again later. */
int record_stopped(acp_platform *p, const store_job *row, int reason, const char *hex);

/* Set a status flag of @row's lcp workspace: a plain PUT on a first
 * attempt, a touch (keeping an older flag's time) after. */
int record_set_flag(acp_platform *p, const store_job *row, const char *flag);

#endif
