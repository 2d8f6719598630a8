/* A whole platform on the fake backends of tests/fakes (store, S3
 * transport, broker), sharing one fault plan, with a local scratch root and
 * an executor that writes one result file (none when the config has
 * "noop":true): for unit tests of the logic
 * above the backends (submit, claim, finish, retention, arbitration)
 * without services. No maintenance thread runs: tests call
 * maintenance_tick() themselves, so that each step of a scenario is theirs.
 *
 *     fake_platform fp;
 *     fake_platform_start(&fp, NULL);
 *     acp_submit(fp.p, FAKE_PLATFORM_QUEUE, &sub, &job);
 *     fake_platform_wait(&fp, &job.id, ACP_STATUS_COMPLETE);
 *     fake_platform_stop(&fp);
 */
#ifndef ACP_TEST_FAKE_PLATFORM_H
#define ACP_TEST_FAKE_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "async_platform.h"
#include "fake_broker.h"
#include "fake_store.h"
#include "fake_transport.h"
#include "fault.h"

#define FAKE_PLATFORM_QUEUE "q"
/* A hang guard for waits, not a timing assertion. */
#define FAKE_PLATFORM_WAIT_S 60

typedef struct fake_platform_options {
    int workers;            /* default 1 */
    unsigned lease_seconds; /* default 30 */
    unsigned max_attempts;  /* default: the library's */
    /* Another service sharing the bucket: the fake transport of that
     * platform (its S3), borrowed; NULL: a bucket of its own. */
    fake_transport *shared_s3;
    /* The platform's layout; the default (0) here is ACP_LAYOUT_LCP, whose
     * S3 steps the fault plans of most logic tests count. */
    acp_layout layout;
    /* How long a job runs before its worker's consumer is cancelled; 0:
     * the library's (short: a no-op job may or may not outlive it). */
    unsigned cancel_grace_ms;
} fake_platform_options;

typedef struct fake_platform_gate fake_platform_gate;

typedef struct fake_platform {
    fault_plan plan;     /* shared by the three fakes; empty at start */
    store *store;        /* the fake store (owned by the platform) */
    fake_transport *s3;  /* the fake bucket (owned by the platform, or shared) */
    fake_broker *broker; /* owned here */
    acp_platform *p;
    acp_config config;
    acp_queue_config queue;
    char scratch[64];         /* the scratch root, a private directory under /tmp */
    fake_platform_gate *gate; /* between the workers and the fake broker */
    int workers;
} fake_platform;

/* Start a platform on fresh fakes (@options may be NULL). Fails the test
 * (cmocka) when it cannot start. */
void fake_platform_start(fake_platform *fp, const fake_platform_options *options);
/* acp_shutdown, then free the broker and remove the scratch root. */
void fake_platform_stop(fake_platform *fp);

/* Poll the fake store (no call counted, no fault) until the job's row has
 * @status; false after FAKE_PLATFORM_WAIT_S. */
bool fake_platform_wait(fake_platform *fp, const acp_job_id *id, acp_job_status status);

/* The executor's runs of the job so far, in this process. */
int fake_platform_runs(const acp_job_id *id);

/* Call @hook(ctx, arg) at the start of every run of the executor, on the
 * worker thread; NULL removes it. */
void fake_platform_on_execute(void (*hook)(acp_job_context *ctx, void *arg), void *arg);

/* The key of @name in the job's workspace ("<32 hex>/<name>"), and whether
 * the fake bucket has it. */
bool fake_platform_has_object(fake_platform *fp, const acp_job_id *id, const char *name);
/* Wait until the fake bucket has @name in the job's workspace (the worker
 * writes the status flag after the row); false after FAKE_PLATFORM_WAIT_S. */
bool fake_platform_wait_object(fake_platform *fp, const acp_job_id *id, const char *name);
/* Objects in the job's workspace. */
size_t fake_platform_object_count(fake_platform *fp, const acp_job_id *id);

/* Make step @step of @plan fail the way its backend fails: ACP_EDB for
 * pg.*, a permanent 403 AccessDenied for s3.*, ACP_EBROKER (the connection
 * lost) for amqp.*. */
void fake_platform_fail_step(fault_plan *plan, unsigned step);
/* The same with @s3_kind (FAKE_S3_*) for s3.*, e.g. a transient 500. */
void fake_platform_fail_step_as(fault_plan *plan, unsigned step, int s3_kind);

/* Submit @config with one input "in.txt" (@input, may be NULL: no input)
 * to the queue; *@id gets the job's id (derived from @config) whether or
 * not the submit succeeds, @job (may be NULL) what acp_submit reports.
 * Returns acp_submit's code. */
int fake_platform_submit(fake_platform *fp, const char *config, const char *input, acp_job_id *id,
                         acp_job *job);
/* fake_platform_submit of @config without input, failing the test when the
 * submit fails; returns the job's id. */
acp_job_id fake_platform_submit_ok(fake_platform *fp, const char *config);

/* A job that is queued with its message unpublished and a retry time
 * (store_dispatch_failed) or a time it becomes due (not_before: a retry
 * after its back-off, a delayed job) is republished now: the fake store's
 * clock moves to the later of those times and a maintenance pass runs.
 * Does nothing otherwise. */
void fake_platform_redispatch(fake_platform *fp, const acp_job_id *id);
/* Whether the platform started last logged a warning or an error
 * containing @needle (the first 256 are kept, until fake_platform_stop). */
bool fake_platform_logged(const char *needle);

/* Entries under the scratch root (run directories left behind). */
size_t fake_platform_scratch_count(fake_platform *fp);

/* Holding the workers, so that a test can number the backend steps of one
 * run: while held, a worker that asks the broker for its next delivery
 * waits before the call reaches the fake broker (so it is not counted by
 * the fault plan). fake_platform_hold returns once every worker waits
 * there (false after FAKE_PLATFORM_WAIT_S); fake_platform_release lets
 * them go on. */
bool fake_platform_hold(fake_platform *fp);
void fake_platform_release(fake_platform *fp);
/* Let one request for a delivery through and hold the workers again: the
 * one run it delivers, up to the worker's next request. Returns once every
 * worker waits again (false after FAKE_PLATFORM_WAIT_S). */
bool fake_platform_release_one(fake_platform *fp);

/* Wait until the platform is idle: every worker inside one and the same
 * call for its next delivery, no message ready or unacknowledged in the
 * queue (so no run is going on and none is about to start). False after
 * FAKE_PLATFORM_WAIT_S. */
bool fake_platform_idle(fake_platform *fp);

/* Runs of attempts @first..@last (1-based; 0, 0: none, the default) block
 * in the executor until fake_platform_executor_release; meanwhile the run
 * holds its worker, as a stalled or dying process would. */
void fake_platform_executor_block(unsigned first, unsigned last);
/* Wait until @count runs are blocked (false after FAKE_PLATFORM_WAIT_S). */
bool fake_platform_executor_wait_blocked(unsigned count);
/* Let every blocked run go on and block no more. */
void fake_platform_executor_release(void);

#endif
