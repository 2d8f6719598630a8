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
#include "platform_state.h"
#include "running.h"
#include "scratch.h"
#include "worker.h"
#include "workspace.h"
#include "job_message.h"

/* Milliseconds a worker waits for a message before checking for shutdown. */
#define WORKER_POLL_MS 250
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
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

/* Upload one named result (*@size gets its size). Returns 0 when
 * uploaded, 1 when there is no regular file of that name to keep, or an
 * error. */
static int upload_output(acp_platform *p, const acp_job_id *id, int dir_fd, const char *name,
                         uint64_t *size)
{
    int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && (errno == ENOENT || errno == ELOOP))
        return 1; /* absent, or a symbolic link that must not be followed */
    if (fd < 0)
        return error_set(ACP_EIO, "opening %s: %s", name, error_strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) != 0    ? error_set(ACP_EIO, "%s: %s", name, error_strerror(errno))
             : !S_ISREG(st.st_mode) ? 1
                                    : objects_put_fd(p->objects, id, name, fd);
    if (rc == 0)
        *size = (uint64_t)st.st_size;
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

static void fail_with(acp_job_outcome *outcome, const char *context)
{
    free(outcome->message);
    size_t len = strlen(context) + strlen(acp_last_error()) + 3;
    outcome->message = malloc(len);
    if (outcome->message)
        snprintf(outcome->message, len, "%s: %s", context, acp_last_error());
}

/* For a host callback that failed without saying why. */
static void fail_with_code(acp_job_outcome *outcome, const char *who, int rc)
{
    if (rc)
        error_set(ACP_EINVAL, "failed, returning %d", rc);
    else
        error_set(ACP_EINVAL, "returned no executor");
    fail_with(outcome, who);
}

static void note_running(queue_rt *q)
{
    int now = atomic_fetch_add(&q->running, 1) + 1;
    int peak = atomic_load(&q->running_peak);
    while (now > peak && !atomic_compare_exchange_weak(&q->running_peak, &peak, now))
        ;
}

/* Prepare the scratch directory and run the executor. Its results are
 * uploaded when the run is recorded (persist_once), under the lease. */
static acp_job_status execute(queue_rt *q, const store_job *row, acp_job_context *ctx)
{
    acp_platform *p = q->platform;
    acp_job_outcome *outcome = ctx->outcome;
    char what[300];

    if (row->config && write_config(ctx->dir_fd, row->config) != 0) {
        fail_with(outcome, "writing input-config to the scratch directory");
        return ACP_STATUS_FAILED;
    }
    for (size_t i = 0; i < row->input_count; i++)
        if (download_input(p, &row->id, ctx->dir_fd, row->inputs[i]) != 0) {
            snprintf(what, sizeof what, "input file '%s'", row->inputs[i]);
            fail_with(outcome, what);
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

/* The results a run kept: the names and sizes of the files uploaded. */
typedef struct kept_files {
    const char **names; /* point into the outcome's names */
    uint64_t *sizes;
    size_t count;
} kept_files;

static void kept_files_free(kept_files *kept)
{
    free(kept->names);
    free(kept->sizes);
}

/* Upload the results the run named, patiently: a short S3 outage must not
 * fail good work. Results are kept for failed jobs too (logs explain
 * failures); one that cannot be kept fails the run. @kept gets what was
 * uploaded. Returns ACP_ESHUTDOWN when the platform stops while S3 is
 * failing (nothing is recorded then), ACP_ENOMEM, else 0. */
static int upload_outputs(acp_platform *p, const store_job *row, acp_job_context *ctx,
                          acp_job_status *status, kept_files *kept)
{
    acp_job_outcome *outcome = ctx->outcome;
    int rc = 0;
    kept->count = 0;
    kept->names = malloc((outcome->output_count + 1) * sizeof *kept->names);
    kept->sizes = malloc((outcome->output_count + 1) * sizeof *kept->sizes);
    if (!kept->names || !kept->sizes)
        return error_set(ACP_ENOMEM, "out of memory");
    objects_patience_begin(p->result_retry_seconds, &p->stopping);
    for (size_t i = 0; i < outcome->output_count; i++) {
        int up =
            upload_output(p, &row->id, ctx->dir_fd, outcome->outputs[i], &kept->sizes[kept->count]);
        if (up == 0)
            kept->names[kept->count++] = outcome->outputs[i];
        if (up == ACP_ESHUTDOWN) {
            rc = up;
            break;
        }
        if (up < 0) {
            char what[300];
            snprintf(what, sizeof what, "keeping result '%s'", outcome->outputs[i]);
            fail_with(outcome, what);
            *status = ACP_STATUS_FAILED;
        }
    }
    objects_patience_end();
    return rc;
}

/* A first attempt runs in a workspace that submission has just created or
 * wiped, so its flags cannot exist yet: a plain PUT saves the HEAD of a
 * touch. A later attempt may find its predecessor's flag, which keeps its
 * timestamp. */
static int set_flag(acp_platform *p, const store_job *row, const char *flag)
{
    if (row->attempts <= 1)
        return objects_put(p->objects, &row->id, flag, "", 0);
    return objects_touch(p->objects, &row->id, flag);
}

/* The row says how the run ended; count it and add its flag. The flag goes
 * after the row, so an S3 outage may have started meanwhile: it is retried
 * as patiently as the results. */
static void record_outcome(acp_platform *p, const store_job *row, acp_job_status status,
                           const char *hex)
{
    atomic_fetch_add(status == ACP_STATUS_COMPLETE ? &p->completed : &p->failed, 1);
    if (row->layout != ACP_LAYOUT_LCP) {
        log_debug(&p->log, "job %s: %s", hex, acp_job_status_name(status));
        return;
    }
    objects_patience_begin(p->result_retry_seconds, &p->stopping);
    int rc = set_flag(p, row, workspace_flag(status));
    objects_patience_end();
    if (rc != 0)
        log_warn(&p->log, "job %s: setting %s: %s", hex, workspace_flag(status), acp_last_error());
    else
        log_debug(&p->log, "job %s: %s", hex, acp_job_status_name(status));
}

/* One attempt at recording the run, fenced by the lease from before the
 * first upload to the commit: with the row locked, no requeue or claim can
 * take the job while its results are written, and a run that lost its
 * lease uploads nothing. *@recorded gets the status the row now holds. */
static int persist_once(acp_platform *p, const store_job *row, acp_job_context *ctx,
                        acp_job_status status, acp_job_status *recorded)
{
    store_tx *tx;
    int rc = store_finish_begin(p->store, &row->id, p->instance_id, row->attempts, row->grabbed,
                                &tx, recorded);
    if (rc == 1)
        return 0; /* an earlier attempt's COMMIT went through */
    if (rc)
        return rc;
    acp_job_outcome *outcome = ctx->outcome;
    kept_files kept = {0};
    rc = upload_outputs(p, row, ctx, &status, &kept);
    /* The native row names exactly the objects that exist; lcp rows keep
     * upstream's record of what the run named. */
    bool native = row->layout != ACP_LAYOUT_LCP;
    if (!rc)
        rc = store_finish_tx(tx, status, status == ACP_STATUS_FAILED ? outcome->message : NULL,
                             native ? kept.names : (const char *const *)outcome->outputs,
                             native ? kept.sizes : NULL,
                             native ? kept.count : outcome->output_count, &row->id);
    kept_files_free(&kept);
    int end = store_tx_end(tx, rc == 0);
    if (!rc)
        rc = end;
    *recorded = status;
    return rc;
}

/* Record the run, however long the database takes to come back: the
 * executor must not run again for a result this process holds. The job
 * stays in the running set meanwhile, so its lease is renewed whenever the
 * database answers. Only shutdown gives the run up. */
static void persist(acp_platform *p, const store_job *row, acp_job_context *ctx,
                    acp_job_status status, const char *hex)
{
    unsigned backoff = 0;
    bool waiting = false;
    /* Nothing to upload in the native layout: the fenced UPDATE alone
     * records the run (one statement instead of a transaction of four).
     * After a failure the full form finds out whether it went through. */
    bool quick = row->layout != ACP_LAYOUT_LCP && ctx->outcome->output_count == 0;
    for (;;) {
        acp_job_status recorded = status;
        int rc = quick ? store_finish(p->store, &row->id, p->instance_id, status,
                                      status == ACP_STATUS_FAILED ? ctx->outcome->message : NULL,
                                      NULL, NULL, 0)
                       : persist_once(p, row, ctx, status, &recorded);
        quick = false;
        if (rc == 0) {
            if (waiting)
                log_info(&p->log, "job %s: its result is recorded now", hex);
            record_outcome(p, row, recorded, hex);
            return;
        }
        if (rc == ACP_ECONFLICT) {
            log_warn(&p->log,
                     "job %s: this process lost its lease (the job was requeued, deleted or "
                     "resubmitted meanwhile); the result of this run is discarded, nothing "
                     "uploaded",
                     hex);
            return;
        }
        if (rc != ACP_EDB || atomic_load(&p->stopping)) {
            log_error(&p->log,
                      "job %s: recording its result: %s; giving up%s: the job will run again "
                      "once its lease expires",
                      hex, acp_last_error(), atomic_load(&p->stopping) ? " (shutting down)" : "");
            return;
        }
        if (!waiting)
            log_error(&p->log,
                      "job %s: recording its result: %s; retrying until the database answers", hex,
                      acp_last_error());
        waiting = true;
        backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        platform_state_wait(p, backoff, &p->stopping);
    }
}

static void run_job(queue_rt *q, store_job *row)
{
    acp_platform *p = q->platform;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&row->id, hex);
    note_running(q);
    log_debug(&p->log, "job %s: running on %s (attempt %u)", hex, q->id, row->attempts);
    if (running_add(p, &row->id) != 0)
        log_warn(&p->log, "job %s: %s; its lease will not be renewed", hex, acp_last_error());

    const char *in_progress = workspace_flag(ACP_STATUS_IN_PROGRESS);
    if (row->layout == ACP_LAYOUT_LCP && set_flag(p, row, in_progress) != 0)
        log_warn(&p->log, "job %s: setting %s: %s", hex, in_progress, acp_last_error());
    /* Only after a run that died: it may have uploaded results it never
     * recorded. */
    if (row->attempts > 1)
        remove_stale_outputs(p, row);

    acp_job_outcome outcome = {0};
    acp_job_context ctx = {.version = ACP_JOB_CONTEXT_VERSION,
                           .id = row->id,
                           .queue = q->id,
                           .config = row->config,
                           .dir_fd = -1,
                           .attempt = row->attempts,
                           .outcome = &outcome};
    memcpy(ctx.id_hex, hex, sizeof ctx.id_hex);
    char *dir = NULL;
    acp_job_status status = ACP_STATUS_FAILED;
    if (scratch_create(p, hex, row->attempts, &dir, &ctx.dir_fd) != 0) {
        fail_with(&outcome, "preparing the scratch directory");
    } else {
        ctx.dir = dir;
        status = execute(q, row, &ctx);
    }
    /* The results live in the scratch directory until the run is recorded. */
    persist(p, row, &ctx, status, hex);
    running_remove(p, &row->id);
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
    if (broker_ack(*conn, tag) != 0) {
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
    if (job_message_parse(d->body, d->len, &id, &config) != 0) {
        /* Acked, never redelivered: a poison message must not loop. */
        log_warn(&p->log, "%s_jobs: dropping a malformed message: %s", q->id, acp_last_error());
        atomic_fetch_add(&p->dropped, 1);
        ack(p, conn, d->tag);
        return;
    }
    free(config); /* the database's copy is the truth */
    acp_job_id_format(&id, hex);

    store_job row;
    int rc = store_claim(p->store, &id, q->id, p->instance_id, p->lease_seconds, &row);
    if (rc == ACP_ECONFLICT || rc == ACP_ENOTFOUND) {
        log_debug(&p->log, "job %s: message dropped (%s)", hex, acp_last_error());
        atomic_fetch_add(&p->dropped, 1);
        ack(p, conn, d->tag);
        return;
    }
    if (rc) {
        /* Without the database nothing can be claimed: closing the
         * connection returns the unacked message to the queue. */
        log_warn(&p->log, "job %s: cannot claim it: %s", hex, acp_last_error());
        drop(conn);
        platform_state_wait(p, BACKOFF_MAX_MS, &p->stopping);
        return;
    }
    atomic_fetch_add(&p->started, 1);
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
