/* A test executor driven by the job config, which records what it saw.
 *
 * Config members (all optional):
 *   "mode": "ok" (default), "fail", "sleep" (sleep "ms" then ok), "block"
 *           (wait until recording_release() or "ms"), "cancellable" (wait until
 *           cancelled or "ms"; a cancelled run fails), "factory_fail"
 *   "n": a number echoed into result.txt
 * Every run writes result.txt ("n=<n> attempt=<a> run=<k>") and run<k>.txt,
 * copies each input X to copy-X and input-config to seen-config, and names
 * them all as outputs. "fail" also writes error.log and sets a message. */
#ifndef ACP_TEST_RECORDING_EXECUTOR_H
#define ACP_TEST_RECORDING_EXECUTOR_H

#include "async_platform.h"

extern const acp_executor_factory recording_factory;

/* Runs of the job so far (0 when never run). */
int recording_runs(const acp_job_id *id);
/* Highest number of jobs of @queue running at once so far. */
int recording_peak(const char *queue);
/* Jobs running now. */
int recording_running(void);
/* Let every "block" job finish; recording_reset() blocks them again. */
void recording_release(void);
void recording_reset(void);

#endif
