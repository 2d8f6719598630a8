/* A running job's log and progress on the executor's side (docs/guide.adoc,
 * "Progress" and "Logs"): what acp_job_log(), acp_job_log_write() and
 * acp_job_progress() hand over is kept in memory per run, and written to
 * PostgreSQL by the flusher thread (a batch per job at least every 200 ms
 * while there is text; progress at most every 500 ms) and once more when
 * the attempt ends. A run that never logs nor reports progress has no
 * state here at all and costs nothing. */
#ifndef ACP_JOBLOG_H
#define ACP_JOBLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "buf.h"
#include "joblog_text.h"

struct running_job;

typedef struct joblog_run joblog_run;

/* Start the flusher thread of @p unless it runs or the platform stops;
 * under the platform's lock, when a run first logs or reports progress (a
 * platform whose jobs never do has no such thread). Not for a store other
 * than PostgreSQL's nor without the background threads: then a run's text
 * waits for the end of its attempt. A thread that cannot start is logged:
 * the same. */
void joblog_flusher_start(acp_platform *p);
/* Stop it (after the workers: their last writes are their own). */
void joblog_flusher_stop(acp_platform *p);

/* The attempt of @run ended and its executor returned: stop the flusher's
 * work on it, then write everything it still holds (its partial line,
 * ended) and its last progress, in one statement. Returns whether the job
 * has a log (this attempt's or an earlier one's), for the kept file. A run
 * without log state returns false at once. */
bool joblog_attempt_end(acp_platform *p, struct running_job *run);

/* The kept file of @run's job: its log's head, the marker line, its tail,
 * read from the live copy (one statement, fenced by the lease). 0 with
 * @out filled, or an error (ACP_ECONFLICT: the lease is lost). */
int joblog_build_file(acp_platform *p, struct running_job *run, buf *out);

/* Free @run's log state (after running_remove: nothing else can reach it). */
void joblog_run_free(struct running_job *run);

#endif
