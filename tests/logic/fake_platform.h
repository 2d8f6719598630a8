/* A whole platform on the fake backends of tests/fakes (store, S3
 * transport, broker), sharing one fault plan, with a local scratch root and
 * an executor that writes one result file: for unit tests of the logic
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
} fake_platform_options;

typedef struct fake_platform {
    fault_plan plan;     /* shared by the three fakes; empty at start */
    store *store;        /* the fake store (owned by the platform) */
    fake_transport *s3;  /* the fake bucket (owned by the platform, or shared) */
    fake_broker *broker; /* owned here */
    acp_platform *p;
    acp_config config;
    acp_queue_config queue;
    char scratch[64]; /* the scratch root, a private directory under /tmp */
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

/* Whether the platforms logged a warning or an error containing @text since
 * the last fake_platform_start. */
bool fake_platform_logged(const char *text);

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

/* A job that is queued with its message unpublished and a retry time
 * (store_dispatch_failed) is republished now: the fake store's clock moves
 * to that time and a maintenance pass runs. Does nothing otherwise. */
void fake_platform_redispatch(fake_platform *fp, const acp_job_id *id);

#endif
