/* Worker threads: each has its own AMQP connection consuming "<queue>_jobs"
 * with prefetch 1, claims a delivered job in PostgreSQL, acks at once (so a
 * job of hours never meets the broker's ack timeout), stops consuming while
 * the job runs (so no message waits behind it), hands the connection to a
 * heartbeat thread meanwhile (so the broker keeps it open), and runs the
 * job. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "job.h"
#include "joblog.h"
#include "metrics.h"
#include "record.h"
#include "platform_state.h"
#include "running.h"
#include "scratch.h"
#include "worker.h"
#include "workspace.h"
#include "job_message.h"

/* Milliseconds a worker waits for a message before checking for shutdown. */
#define WORKER_POLL_MS 250
#define BACKOFF_MIN_MS 100
/* The longest pause between claims of a due job that another statement
 * holds. */
#define WORKER_BUSY_MAX_MS 200
#define BACKOFF_MAX_MS     5000
/* How long a job runs before its worker stops consuming. With prefetch 1
 * the broker pushes the next message as soon as the job's delivery is
 * acked; a short job then finds it waiting and runs it next, at no cost,
 * while cancelling and consuming again around every job cost the broker
 * more CPU than the job's messages themselves. A longer job must not keep
 * that message from the other workers: after this grace its consumer is
 * cancelled and the message handed back. Well under a quarter of the
 * shortest heartbeat (1 s), so that the keeper looks at nothing before. */
#define WORKER_CANCEL_GRACE_MS 20

struct worker {
    queue_rt *queue;
    pthread_t thread;
    unsigned index;
    bool started;
    bool exited; /* under the platform's lock; announced on its condition */
};

/* ---- files between S3 and the scratch directory ------------------------ */

static int sink_to_fd(void *userdata, const void *data, size_t len)
{
    return scratch_write_all(*(int *)userdata, data, len);
}

static int create_file(int dir_fd, const char *name, int *fd)
{
    *fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd < 0)
        return error_set(ACP_EIO, "creating %s: %s", name, error_strerror(errno));
    return 0;
}

static int write_config(int dir_fd, const char *config)
{
    int fd;
    int rc = create_file(dir_fd, WORKSPACE_CONFIG, &fd);
    if (!rc)
        rc = scratch_write_all(fd, config, strlen(config));
    if (fd >= 0)
        close(fd);
    return rc;
}

static int download_input(acp_platform *p, const acp_job_id *id, int dir_fd, const char *name)
{
    int fd;
    int rc = create_file(dir_fd, name, &fd);
    if (!rc)
        rc = objects_read(p->objects, id, name, sink_to_fd, &fd);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* A re-run after a requeue must not show files a dead run left behind. */
static void remove_stale_outputs(acp_platform *p, const store_job *row)
{
    object_list list;
    if (objects_list(p->objects, &row->id, &list) != 0) {
        log_warn(&p->log, "listing old results: %s", acp_last_error());
        return;
    }
    for (size_t i = 0; i < list.count; i++) {
        const char *name = list.items[i].name;
        bool keep =
            workspace_kept_on_retry(name, (const char *const *)row->inputs, row->input_count);
        if (!keep && objects_delete(p->objects, &row->id, name) != 0)
            log_warn(&p->log, "removing an old result: %s", acp_last_error());
    }
    object_list_free(&list);
}

/* ---- one job ---------------------------------------------------------- */

/* For a host callback that failed without saying why. */
static void fail_with_code(acp_job_outcome *outcome, const char *who, int rc)
{
    if (rc)
        error_set(ACP_EINVAL, "failed, returning %d", rc);
    else
        error_set(ACP_EINVAL, "returned no executor");
    job_outcome_fail(outcome, who);
}

static void note_running(queue_rt *q)
{
    int now = atomic_fetch_add(&q->running, 1) + 1;
    int peak = atomic_load(&q->running_peak);
    while (now > peak && !atomic_compare_exchange_weak(&q->running_peak, &peak, now))
        ;
}

/* Prepare the scratch directory and run the executor. Its results are
 * uploaded when the run is recorded (record_run), under the lease. */
static acp_job_status execute(queue_rt *q, const store_job *row, acp_job_context *ctx)
{
    acp_platform *p = q->platform;
    acp_job_outcome *outcome = ctx->outcome;
    char what[300];

    if (row->config && write_config(ctx->dir_fd, row->config) != 0) {
        job_outcome_fail(outcome, "writing input-config to the scratch directory");
        return ACP_STATUS_FAILED;
    }
    for (size_t i = 0; i < row->input_count; i++)
        if (download_input(p, &row->id, ctx->dir_fd, row->inputs[i]) != 0) {
            snprintf(what, sizeof what, "input file '%s'", row->inputs[i]);
            job_outcome_fail(outcome, what);
            return ACP_STATUS_FAILED;
        }

    acp_job_status status = ACP_STATUS_FAILED;
    acp_executor *executor = NULL;
    int rc = p->factory.create(p->factory.userdata, ctx, &executor);
    if (rc != 0 || !executor || !executor->ops || !executor->ops->execute) {
        if (!outcome->message)
            fail_with_code(outcome, "executor factory", rc);
        if (executor && executor->ops && executor->ops->free)
            executor->ops->free(executor);
    } else {
        rc = executor->ops->execute(executor, ctx);
        if (executor->ops->free)
            executor->ops->free(executor);
        if (rc == 0)
            status = ACP_STATUS_COMPLETE;
        else if (!outcome->message)
            fail_with_code(outcome, "executor", rc);
    }

    return status;
}

static void run_job(queue_rt *q, store_job *row)
{
    acp_platform *p = q->platform;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&row->id, hex);
    note_running(q);
    log_debug(&p->log, "job %s: running on %s (attempt %u of %u)", hex, q->id, row->attempts,
              row->max_attempts);
    acp_job_outcome outcome = {0};
    acp_job_context ctx = {.version = ACP_JOB_CONTEXT_VERSION,
                           .id = row->id,
                           .queue = q->id,
                           .config = row->config,
                           .dir_fd = -1,
                           .attempt = row->attempts,
                           .outcome = &outcome};
    memcpy(ctx.id_hex, hex, sizeof ctx.id_hex);
    /* The run's lease is renewed, and its cancellation or timeout reaches
     * it, while it is in the running set. */
    running_job run = {.row = row, .cancel_fd = -1};
    char *dir = NULL;
    acp_job_status status = ACP_STATUS_FAILED;
    if (running_add(p, &run) != 0) {
        job_outcome_fail(&outcome, "starting the run");
        record_run(p, row, &ctx, status, hex);
        job_outcome_clear(&outcome);
        atomic_fetch_sub(&q->running, 1);
        return;
    }
    outcome.run = &run;

    const char *in_progress = workspace_flag(ACP_STATUS_IN_PROGRESS);
    if (row->layout == ACP_LAYOUT_LCP && record_set_flag(p, row, in_progress) != 0)
        log_warn(&p->log, "job %s: setting %s: %s", hex, in_progress, acp_last_error());
    /* Only after a run that died: it may have uploaded results it never
     * recorded. */
    if (row->attempts > 1)
        remove_stale_outputs(p, row);

    if (scratch_create(p, hex, row->attempts, &dir, &ctx.dir_fd) != 0) {
        job_outcome_fail(&outcome, "preparing the scratch directory");
    } else {
        ctx.dir = dir;
        uint64_t start = metrics_now_ns();
        status = execute(q, row, &ctx);
        metrics_queue *mq = metrics_queue_at(p->metrics, (size_t)(q - p->queues));
        if (mq)
            metrics_hist_observe_ns(&mq->run, metrics_now_ns() - start);
    }
    /* The results live in the scratch directory until the run is recorded;
     * the watchdog may have recorded it already, without the executor. */
    if (running_end(p, &run))
        record_run(p, row, &ctx, status, hex);
    else
        log_warn(&p->log,
                 "job %s: its executor returned only after its attempt was recorded without it "
                 "(it ignored its cancellation for longer than %u s)",
                 hex, p->cancel_grace_seconds);
    running_remove(p, &run);
    joblog_run_free(&run);
    if (dir) {
        close(ctx.dir_fd);
        if (scratch_finish(p, dir) != 0)
            log_warn(&p->log, "job %s: %s", hex, acp_last_error());
        free(dir);
    }
    job_outcome_clear(&outcome);
    atomic_fetch_sub(&q->running, 1);
}

/* ---- the delivery loop ------------------------------------------------ */

static int connect_consumer(queue_rt *q, broker_conn **conn)
{
    int rc = broker_connect(conn, q->platform->broker, &q->cfg, &q->platform->log);
    if (!rc)
        rc = broker_declare(*conn, q->id, q->cfg.message_ack_timeout);
    if (!rc)
        rc = broker_consume(*conn, q->id);
    if (rc) {
        broker_close(*conn);
        *conn = NULL;
    }
    return rc;
}

static void drop(broker_conn **conn)
{
    broker_close(*conn);
    *conn = NULL;
}

/* Acknowledge a delivery; on failure the connection is dropped. Returns
 * whether the connection is still there. */
static bool ack(acp_platform *p, broker_conn **conn, uint64_t tag)
{
    metrics_backend *amqp = metrics_backend_of(p->metrics, METRICS_AMQP);
    uint64_t start = metrics_now_ns();
    int rc = broker_ack(*conn, tag);
    metrics_backend_done(amqp, METRICS_AMQP_ACK, rc != 0, start);
    if (rc != 0) {
        drop(conn);
        return false;
    }
    atomic_fetch_add(&p->acked, 1);
    return true;
}

static void handle_delivery(worker *w, broker_conn **conn, const broker_delivery *d)
{
    queue_rt *q = w->queue;
    acp_platform *p = q->platform;
    acp_job_id id;
    char *config = NULL, hex[ACP_JOB_ID_STRLEN];
    metrics_backend_done(metrics_backend_of(p->metrics, METRICS_AMQP), METRICS_AMQP_CONSUME, false,
                         0);
    if (job_message_parse(d->body, d->len, &id, &config) != 0) {
        /* Acked, never redelivered: a poison message must not loop. */
        log_warn(&p->log, "%s_jobs: dropping a malformed message: %s", q->id, acp_last_error());
        atomic_fetch_add(&p->dropped, 1);
        ack(p, conn, d->tag);
        return;
    }
    free(config); /* the database's copy is the truth */

    /* The message is a doorbell: a job of this queue may be due. The best
     * due one is claimed, whichever rang; when none is due (claimed,
     * cancelled or deleted meanwhile), the bell is dropped. */
    store_job row;
    int rc = store_claim(p->store, q->id, p->instance_id, p->lease_seconds, &row);
    /* A due job held for a moment by another statement: its bell waits for
     * it rather than being lost (the statement ends within a transaction's
     * length; a deleted or cancelled job then is no longer due). */
    for (unsigned pause = 2; rc == ACP_EBUSY && !atomic_load(&p->stopping);
         pause = pause < WORKER_BUSY_MAX_MS / 2 ? pause * 2 : WORKER_BUSY_MAX_MS) {
        platform_state_wait(p, pause, &p->stopping);
        rc = store_claim(p->store, q->id, p->instance_id, p->lease_seconds, &row);
    }
    if (rc == ACP_ENOTFOUND) {
        log_debug(&p->log, "%s_jobs: message of job %s dropped: %s", q->id,
                  acp_job_id_format(&id, hex), acp_last_error());
        atomic_fetch_add(&p->dropped, 1);
        ack(p, conn, d->tag);
        return;
    }
    if (rc) {
        /* Without the database nothing can be claimed: closing the
         * connection returns the unacked message to the queue. */
        log_warn(&p->log, "%s_jobs: cannot claim a job: %s", q->id, acp_last_error());
        drop(conn);
        platform_state_wait(p, BACKOFF_MAX_MS, &p->stopping);
        return;
    }
    acp_job_id_format(&row.id, hex);
    /* The bell rang for another job. When the claimed one had no bell of
     * its own pending (its publish failed, or its delay ran out just now),
     * the other job is left without one: unmarked, the maintenance thread
     * rings it again if it is still queued. (Otherwise the two bells merely
     * swapped jobs.) */
    if (!acp_job_id_equal(&row.id, &id) && row.dispatched == 0) {
        int unmarked = store_clear_dispatched(p->store, &id);
        if (unmarked != 0 && unmarked != ACP_ENOTFOUND)
            log_warn(&p->log, "%s_jobs: %s; that job's message goes out again later", q->id,
                     acp_last_error());
    }
    atomic_fetch_add(&p->started, 1);
    metrics_queue *mq = metrics_queue_at(p->metrics, (size_t)(q - p->queues));
    metrics_job(mq, METRICS_STARTED);
    /* Both times are the database's: no clock skew between hosts. */
    if (mq && row.grabbed > row.not_before)
        metrics_hist_observe_ns(&mq->wait, (uint64_t)(row.grabbed - row.not_before) * 1000u);
    else if (mq)
        metrics_hist_observe_ns(&mq->wait, 0);
    /* If the ack is lost, a redelivery will find the job claimed. */
    ack(p, conn, d->tag);
    /* RabbitMQ closes a connection that misses its heartbeats: a thread
     * answers them while the job runs, so the connection outlives any job.
     * It also cancels the consumer once the job outlives the grace. */
    broker_keeper *keeper = NULL;
    int grace = p->cancel_grace_ms ? (int)p->cancel_grace_ms : WORKER_CANCEL_GRACE_MS;
    if (*conn && broker_keeper_start(*conn, grace, &keeper) != 0) {
        log_warn(&p->log, "%s worker %u: %s; closing the connection until job %s ends", q->id,
                 w->index, acp_last_error(), hex);
        drop(conn);
    }
    run_job(q, &row);
    store_job_free(&row);
    int kept = keeper ? broker_keeper_stop(keeper) : 0;
    if (kept < 0) {
        log_warn(&p->log, "%s worker %u: lost the broker during job %s: %s", q->id, w->index, hex,
                 acp_last_error());
        drop(conn);
    }
    /* Only a job that outlived the grace stopped consuming; the consume-ok
     * is read by the next broker_next. */
    if (kept == 1 && *conn && !atomic_load(&p->stopping) && broker_consume_send(*conn, q->id) != 0)
        drop(conn);
}

/* The platform whose worker this thread is (NULL on other threads). */
static _Thread_local const acp_platform *worker_platform;

bool worker_is_current(const acp_platform *p)
{
    return p && worker_platform == p;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    queue_rt *q = w->queue;
    acp_platform *p = q->platform;
    worker_platform = p;
    broker_conn *conn = NULL;
    unsigned backoff = 0;
    bool connected = false;
    while (!atomic_load(&p->stopping)) {
        if (!conn) {
            if (connect_consumer(q, &conn) != 0) {
                if (backoff == 0 || backoff == BACKOFF_MAX_MS)
                    log_warn(&p->log, "%s worker %u: %s; retrying", q->id, w->index,
                             acp_last_error());
                backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
                if (backoff > BACKOFF_MAX_MS)
                    backoff = BACKOFF_MAX_MS;
                platform_state_wait(p, backoff, &p->stopping);
                continue;
            }
            if (backoff)
                log_info(&p->log, "%s worker %u: consuming again", q->id, w->index);
            backoff = 0;
            if (connected)
                metrics_backend_reconnect(metrics_backend_of(p->metrics, METRICS_AMQP));
            connected = true;
        }
        broker_delivery d;
        int rc = broker_next(conn, WORKER_POLL_MS, &d);
        if (rc == 1)
            continue;
        if (rc < 0) {
            log_warn(&p->log, "%s worker %u: lost the broker: %s", q->id, w->index,
                     acp_last_error());
            drop(&conn);
            continue;
        }
        handle_delivery(w, &conn, &d);
        broker_delivery_free(&d);
    }
    broker_close(conn);
    pthread_mutex_lock(&p->lock);
    w->exited = true;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    platform_state_release(p);
    return NULL;
}

int worker_start_all(queue_rt *q)
{
    acp_platform *p = q->platform;
    q->workers = calloc((size_t)q->cfg.workers, sizeof *q->workers);
    if (!q->workers)
        return error_set(ACP_ENOMEM, "out of memory");
    for (int i = 0; i < q->cfg.workers; i++) {
        worker *w = &q->workers[i];
        w->queue = q;
        w->index = (unsigned)i + 1;
        pthread_mutex_lock(&p->lock);
        p->refs++;
        pthread_mutex_unlock(&p->lock);
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err) {
            platform_state_release(p);
            return error_set(ACP_ENOMEM, "starting worker %d of queue %s: %s", i + 1, q->id,
                             error_strerror(err));
        }
        w->started = true;
        q->worker_count++;
    }
    return 0;
}

size_t worker_stop_all(queue_rt *q, const struct timespec *deadline)
{
    /* Waiting for the exit on the platform's CLOCK_MONOTONIC condition
     * rather than with pthread_clockjoin_np(), which ThreadSanitizer does
     * not know: a joined thread would count as leaked. */
    acp_platform *p = q->platform;
    size_t left = 0;
    for (size_t i = 0; i < q->worker_count; i++) {
        worker *w = &q->workers[i];
        if (!w->started)
            continue;
        pthread_mutex_lock(&p->lock);
        while (!w->exited && pthread_cond_timedwait(&p->changed, &p->lock, deadline) != ETIMEDOUT)
            ;
        bool exited = w->exited;
        pthread_mutex_unlock(&p->lock);
        if (exited) {
            pthread_join(w->thread, NULL);
        } else {
            pthread_detach(w->thread);
            left++;
        }
        w->started = false;
    }
    return left;
}
