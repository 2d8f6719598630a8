/* Recording how a run ended: its results uploaded and its row finished
 * under its lease, or the job queued again for a retry, however long the
 * database takes to answer. */
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "error.h"
#include "job.h"
#include "joblog.h"
#include "metrics.h"
#include "platform_state.h"
#include "running.h"
#include "workspace.h"

#define RECORD_BACKOFF_MIN_MS 100
#define RECORD_BACKOFF_MAX_MS 5000

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

/* The job's log, kept as a result when the job ends (joblog.h): built from
 * its live copy once, on the first try at recording. */
typedef struct record_log {
    bool wanted, built;
    buf text;
} record_log;

/* Upload the results the run named, patiently: a short S3 outage must not
 * fail good work. Results are kept for failed jobs too (logs explain
 * failures); one that cannot be kept fails the run. @kept gets what was
 * uploaded. Returns ACP_ESHUTDOWN when the platform stops while S3 is
 * failing (nothing is recorded then), ACP_ENOMEM, else 0. */
static int upload_outputs(acp_platform *p, const store_job *row, acp_job_context *ctx,
                          acp_job_status *status, kept_files *kept, const record_log *log)
{
    acp_job_outcome *outcome = ctx ? ctx->outcome : NULL;
    size_t count = outcome ? outcome->output_count : 0;
    int rc = 0;
    kept->count = 0;
    kept->names = malloc((count + 2) * sizeof *kept->names);
    kept->sizes = malloc((count + 2) * sizeof *kept->sizes);
    if (!kept->names || !kept->sizes)
        return error_set(ACP_ENOMEM, "out of memory");
    objects_patience_begin(p->result_retry_seconds, &p->stopping);
    for (size_t i = 0; i < count; i++) {
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
            job_outcome_fail(outcome, what);
            *status = ACP_STATUS_FAILED;
        }
    }
    if (!rc && log && log->built) {
        int up = objects_put(p->objects, &row->id, JOBLOG_FILE, log->text.data, log->text.len);
        if (up == 0) {
            kept->names[kept->count] = JOBLOG_FILE;
            kept->sizes[kept->count++] = log->text.len;
        } else if (up == ACP_ESHUTDOWN) {
            rc = up;
        } else {
            /* The job's own results matter more than its log: it ends as
             * it would have, without the file. */
            char hex[ACP_JOB_ID_STRLEN];
            log_warn(&p->log, "job %s: keeping its %s: %s", acp_job_id_format(&row->id, hex),
                     JOBLOG_FILE, acp_last_error());
        }
    }
    objects_patience_end();
    return rc;
}

/* A first attempt runs in a workspace that submission has just created or
 * wiped, so its flags cannot exist yet: a plain PUT saves the HEAD of a
 * touch. A later attempt may find its predecessor's flag, which keeps its
 * timestamp. */
int record_set_flag(acp_platform *p, const store_job *row, const char *flag)
{
    if (row->attempts <= 1)
        return objects_put(p->objects, &row->id, flag, "", 0);
    return objects_touch(p->objects, &row->id, flag);
}

static void record_timed_out(acp_platform *p, const store_job *row)
{
    atomic_fetch_add(&p->timed_out, 1);
    metrics_job_named(p->metrics, row->queue, METRICS_TIMED_OUT);
}

/* The row says how the run ended; count it and add its flag (none for a
 * retry: the job is not over). The flag goes after the row, so an S3
 * outage may have started meanwhile: it is retried as patiently as the
 * results. */
static void record_outcome(acp_platform *p, const store_job *row, acp_job_status status,
                           const char *hex, bool patient)
{
    metrics_job_named(p->metrics, row->queue,
                      status == ACP_STATUS_COMPLETE    ? METRICS_SUCCEEDED
                      : status == ACP_STATUS_CANCELLED ? METRICS_CANCELLED
                      : status == ACP_STATUS_QUEUED    ? METRICS_RETRIED
                                                       : METRICS_FAILED);
    switch (status) {
    case ACP_STATUS_COMPLETE:
        atomic_fetch_add(&p->completed, 1);
        break;
    case ACP_STATUS_CANCELLED:
        atomic_fetch_add(&p->cancelled, 1);
        break;
    case ACP_STATUS_QUEUED:
        atomic_fetch_add(&p->retried, 1);
        log_debug(&p->log, "job %s: attempt %u of %u failed; queued for a retry", hex,
                  row->attempts, row->max_attempts);
        return;
    default:
        atomic_fetch_add(&p->failed, 1);
        break;
    }
    if (row->layout != ACP_LAYOUT_LCP) {
        log_debug(&p->log, "job %s: %s", hex, acp_job_status_name(status));
        return;
    }
    /* The maintenance thread (the watchdog) cannot wait: it renews leases. */
    if (patient)
        objects_patience_begin(p->result_retry_seconds, &p->stopping);
    int rc = record_set_flag(p, row, workspace_flag(status));
    if (patient)
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
static int record_persist_once(acp_platform *p, const store_job *row, acp_job_context *ctx,
                               acp_job_status status, const char *message, record_log *log,
                               acp_job_status *recorded)
{
    /* The log's live copy is read under the lease, before the row is
     * locked: the finishing statement deletes it. */
    if (log && log->wanted && !log->built) {
        struct running_job *run = ctx ? ctx->outcome->run : NULL;
        int rc = run ? joblog_build_file(p, run, &log->text) : 0;
        if (rc)
            return rc;
        log->built = run != NULL;
    }
    store_tx *tx;
    int rc = store_finish_begin(p->store, &row->id, p->instance_id, row->attempts, row->grabbed,
                                &tx, recorded);
    if (rc == 1)
        return 0; /* an earlier attempt's COMMIT went through */
    if (rc)
        return rc;
    acp_job_outcome *outcome = ctx ? ctx->outcome : NULL;
    bool outputs = outcome && status != ACP_STATUS_CANCELLED;
    kept_files kept = {0};
    rc = upload_outputs(p, row, outputs ? ctx : NULL, &status, &kept, log);
    /* The native row names exactly the objects that exist; lcp rows keep
     * upstream's record of what the run named (and the log). */
    bool native = row->layout != ACP_LAYOUT_LCP;
    size_t named = outputs ? outcome->output_count : 0;
    const char **names = NULL;
    if (!rc && !native) {
        names = malloc((named + 1) * sizeof *names);
        if (!names)
            rc = error_set(ACP_ENOMEM, "out of memory");
        for (size_t i = 0; names && i < named; i++)
            names[i] = outcome->outputs[i];
        for (size_t i = 0; names && i < kept.count; i++)
            if (strcmp(kept.names[i], JOBLOG_FILE) == 0)
                names[named++] = JOBLOG_FILE;
    }
    /* A result that could not be kept has set the outcome's message. */
    if (outputs)
        message = outcome->message;
    if (!rc)
        rc = store_finish_tx(tx, status, status != ACP_STATUS_COMPLETE ? message : NULL,
                             native ? kept.names : names, native ? kept.sizes : NULL,
                             native ? kept.count : named, &row->id);
    free(names);
    kept_files_free(&kept);
    int end = store_tx_end(tx, rc == 0);
    if (!rc)
        rc = end;
    *recorded = status;
    return rc;
}

/* One try at recording the end: a retry (@status queued), or the final
 * @status with @message, uploading the results @ctx names (NULL: none).
 * *@recorded gets what the row holds then. */
static int record_once(acp_platform *p, const store_job *row, acp_job_context *ctx,
                       acp_job_status status, const char *message, bool *quick,
                       acp_job_status *recorded, record_log *log)
{
    *recorded = status;
    bool with_log = log && log->wanted;
    if (status == ACP_STATUS_QUEUED) {
        int rc = store_retry(p->store, &row->id, p->instance_id, message, control_backoff_ms(row));
        if (rc != ACP_ECONFLICT)
            return rc;
        /* Lost lease, or a cancellation requested since: only the latter
         * still lets this process finish the run. */
        *recorded = ACP_STATUS_CANCELLED;
        if (with_log)
            return record_persist_once(p, row, ctx, ACP_STATUS_CANCELLED, NULL, log, recorded);
        return store_finish(p->store, &row->id, p->instance_id, ACP_STATUS_CANCELLED, NULL, NULL,
                            NULL, 0);
    }
    /* Nothing to upload: the fenced UPDATE alone records the run (one
     * statement instead of a transaction of four). After a failure the full
     * form finds out whether it went through. */
    bool nothing = (!ctx || ctx->outcome->output_count == 0) && !with_log;
    if ((!ctx && !with_log) || (*quick && nothing && row->layout != ACP_LAYOUT_LCP)) {
        *quick = false;
        return store_finish(p->store, &row->id, p->instance_id, status,
                            status != ACP_STATUS_COMPLETE ? message : NULL, NULL, NULL, 0);
    }
    return record_persist_once(p, row, ctx, status, message, log, recorded);
}

int record_stopped(acp_platform *p, const store_job *row, int reason, const char *hex)
{
    char message[128];
    control_stop_message(row, reason, message, sizeof message);
    acp_job_status status = reason == ACP_CANCEL_REQUESTED ? ACP_STATUS_CANCELLED
                            : control_retries(row, false)  ? ACP_STATUS_QUEUED
                                                           : ACP_STATUS_FAILED;
    bool quick = true;
    acp_job_status recorded;
    int rc = record_once(p, row, NULL, status, message, &quick, &recorded, NULL);
    if (rc == 0) {
        if (reason == ACP_CANCEL_TIMEOUT)
            record_timed_out(p, row);
        record_outcome(p, row, recorded, hex, false);
    }
    return rc;
}

void record_run(acp_platform *p, const store_job *row, acp_job_context *ctx, acp_job_status status,
                const char *hex)
{
    acp_job_outcome *outcome = ctx->outcome;
    int reason = outcome->run ? atomic_load(&outcome->run->reason) : ACP_CANCEL_NONE;
    /* The attempt's last text and progress are written first. */
    record_log log = {outcome->run && joblog_attempt_end(p, outcome->run), false, BUF_INIT};
    char stop[128];
    if (reason != ACP_CANCEL_NONE) {
        /* Whatever the executor returned: it was asked to stop. */
        acp_job_set_message(ctx, control_stop_message(row, reason, stop, sizeof stop));
        status = reason == ACP_CANCEL_REQUESTED ? ACP_STATUS_CANCELLED : ACP_STATUS_FAILED;
        if (reason == ACP_CANCEL_TIMEOUT)
            record_timed_out(p, row);
    }
    /* A cancelled run keeps nothing, and a failed attempt that is retried
     * leaves nothing for the next one to find. */
    if (status == ACP_STATUS_FAILED && control_retries(row, outcome->permanent))
        status = ACP_STATUS_QUEUED;
    acp_job_context *keep =
        status == ACP_STATUS_CANCELLED || status == ACP_STATUS_QUEUED ? NULL : ctx;
    /* A retried attempt leaves its log to the next one; a cancelled run
     * keeps its log, its only result. */
    if (status == ACP_STATUS_CANCELLED && log.wanted)
        keep = ctx;

    unsigned backoff = 0;
    bool waiting = false, quick = true;
    for (;;) {
        acp_job_status recorded;
        int rc = record_once(p, row, status == ACP_STATUS_QUEUED ? ctx : keep, status,
                             outcome->message, &quick, &recorded, &log);
        if (rc == 0) {
            if (waiting)
                log_info(&p->log, "job %s: its result is recorded now", hex);
            record_outcome(p, row, recorded, hex, true);
            break;
        }
        if (rc == ACP_ECONFLICT) {
            log_warn(&p->log,
                     "job %s: this process lost its lease (the job was requeued, deleted or "
                     "resubmitted meanwhile); the result of this run is discarded, nothing "
                     "uploaded",
                     hex);
            break;
        }
        if (rc != ACP_EDB || atomic_load(&p->stopping)) {
            log_error(&p->log,
                      "job %s: recording its result: %s; giving up%s: the job will run again "
                      "once its lease expires",
                      hex, acp_last_error(), atomic_load(&p->stopping) ? " (shutting down)" : "");
            break;
        }
        if (!waiting)
            log_error(&p->log,
                      "job %s: recording its result: %s; retrying until the database answers", hex,
                      acp_last_error());
        waiting = true;
        backoff = backoff ? backoff * 2 : RECORD_BACKOFF_MIN_MS;
        if (backoff > RECORD_BACKOFF_MAX_MS)
            backoff = RECORD_BACKOFF_MAX_MS;
        platform_state_wait(p, backoff, &p->stopping);
    }
    buf_free(&log.text);
}
