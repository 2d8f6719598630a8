/* acp_submit: validate everything first, then write the row, the S3
 * objects (native layout: the inputs; lcp: the workspace with its marker,
 * flag and input-config) and the message, in that order, so that a failure
 * leaves nothing behind and a broker outage only delays the job.
 *
 * The steps hand a failure up in an error_info (the backends' detail taken
 * as they fail), so that cleaning up and logging after it cannot change
 * what the caller is told; acp_submit sets the thread's message once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "claim.h"
#include "clock.h"
#include "dispatch.h"
#include "error.h"
#include "job.h"
#include "json.h"
#include "metrics.h"
#include "platform_state.h"
#include "workspace.h"

#define INPUTS_MAX 1000

/* The validated submission, with what it owns. */
typedef struct prepared {
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    char *config; /* compact JSON or NULL */
    const char **names;
    int *fds;        /* open files for inputs given by path, -1 for buffers */
    uint64_t *sizes; /* of each input: the buffer's, or the file's when opened */
    size_t count;
    store_run_options run; /* layout, sizes and job control, resolved */
} prepared;

static void prepared_free(prepared *s)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    free(s->fds);
    free(s->sizes);
    free(s->names);
    free(s->config);
}

static int compact_config(const char *text, char **out, error_info *err)
{
    *out = NULL;
    if (!text)
        return 0;
    buf compact = BUF_INIT;
    int rc = json_compact_text(text, "submission.config", &compact);
    if (rc) {
        buf_free(&compact);
        return error_info_take(err, rc);
    }
    *out = compact.data;
    return 0;
}

static int prepare_inputs(const acp_submission *sub, prepared *s, error_info *err)
{
    if (sub->input_count == 0)
        return 0;
    if (!sub->inputs)
        return error_info_set(err, ACP_EINVAL, "submission.inputs: NULL with input_count %zu",
                              sub->input_count);
    if (sub->input_count > INPUTS_MAX)
        return error_info_set(err, ACP_ETOOBIG, "submission.inputs: more than %d files",
                              INPUTS_MAX);
    s->names = calloc(sub->input_count, sizeof *s->names);
    s->fds = malloc(sub->input_count * sizeof *s->fds);
    s->sizes = calloc(sub->input_count, sizeof *s->sizes);
    if (!s->names || !s->fds || !s->sizes)
        return error_info_set(err, ACP_ENOMEM, "out of memory");
    for (size_t i = 0; i < sub->input_count; i++) {
        const acp_input *in = &sub->inputs[i];
        char what[48];
        snprintf(what, sizeof what, "submission.inputs[%zu]", i);
        s->fds[i] = -1;
        s->count = i + 1;
        int rc = job_check_name(what, in->name);
        if (rc)
            return error_info_take(err, rc);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->names[j], in->name) == 0)
                return error_info_set(err, ACP_EINVAL, "%s: duplicate input name '%s'", what,
                                      in->name);
        s->names[i] = in->name;
        if ((in->path != NULL) == (in->data != NULL || in->size > 0))
            return error_info_set(err, ACP_EINVAL, "%s ('%s'): give either path or data/size", what,
                                  in->name);
        s->sizes[i] = in->size;
        if (!in->path)
            continue;
        s->fds[i] = open(in->path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (s->fds[i] < 0 || fstat(s->fds[i], &st) != 0)
            return error_info_set(err, ACP_EIO, "%s ('%s'): cannot read %s: %s", what, in->name,
                                  in->path, error_strerror(errno));
        if (!S_ISREG(st.st_mode))
            return error_info_set(err, ACP_EIO, "%s ('%s'): %s is not a regular file", what,
                                  in->name, in->path);
        s->sizes[i] = (uint64_t)st.st_size;
    }
    return 0;
}

/* The submission's job control over the queue's and the platform's
 * defaults, checked. A time in the past within the bound means now; one
 * further back is taken for a unit mistake. */
static int prepare_control(const acp_platform *p, const queue_rt *q, const acp_submission *sub,
                           store_run_options *run, error_info *err)
{
    run->priority = ACP_PRIORITY_DEFAULT;
    run->max_attempts = q->cfg.max_attempts ? q->cfg.max_attempts : p->max_attempts;
    run->timeout_seconds = q->cfg.timeout_seconds;
    run->backoff_base_ms = q->cfg.retry_base_ms;
    run->backoff_max_ms = q->cfg.retry_max_ms;
    run->not_before = 0;
    if (sub->version < 2)
        return 0;
    if (sub->priority < ACP_PRIORITY_MIN || sub->priority > ACP_PRIORITY_MAX)
        return error_info_set(err, ACP_EINVAL, "submission.priority: %d is outside %d..%d",
                              sub->priority, ACP_PRIORITY_MIN, ACP_PRIORITY_MAX);
    if (sub->max_attempts > ACP_MAX_ATTEMPTS_MAX)
        return error_info_set(err, ACP_EINVAL,
                              "submission.max_attempts: %u is outside 1..%d (0: the queue's)",
                              sub->max_attempts, ACP_MAX_ATTEMPTS_MAX);
    if (sub->timeout_seconds > ACP_TIMEOUT_MAX)
        return error_info_set(err, ACP_EINVAL,
                              "submission.timeout_seconds: %u is outside 1..%d (0: the queue's)",
                              sub->timeout_seconds, ACP_TIMEOUT_MAX);
    if (sub->not_before && sub->delay_ms)
        return error_info_set(err, ACP_EINVAL,
                              "submission.not_before and submission.delay_ms: give one of them, "
                              "not both");
    if (sub->delay_ms > (uint64_t)ACP_DELAY_MAX * 1000)
        return error_info_set(err, ACP_EINVAL,
                              "submission.delay_ms: %llu is more than %d s (366 days) ahead",
                              (unsigned long long)sub->delay_ms, ACP_DELAY_MAX);
    int64_t now = clock_wall_us();
    if (sub->not_before && sub->not_before < now - (int64_t)ACP_NOT_BEFORE_PAST_MAX * 1000000)
        return error_info_set(err, ACP_EINVAL,
                              "submission.not_before: %lld µs since the epoch is more than %d s in "
                              "the past (microseconds expected)",
                              (long long)sub->not_before, ACP_NOT_BEFORE_PAST_MAX);
    if (sub->not_before > now + (int64_t)ACP_DELAY_MAX * 1000000)
        return error_info_set(err, ACP_EINVAL,
                              "submission.not_before: %lld µs since the epoch is more than %d s "
                              "(366 days) ahead",
                              (long long)sub->not_before, ACP_DELAY_MAX);
    run->priority = sub->priority;
    if (sub->max_attempts)
        run->max_attempts = sub->max_attempts;
    if (sub->timeout_seconds)
        run->timeout_seconds = sub->timeout_seconds;
    run->not_before = sub->delay_ms ? now + (int64_t)sub->delay_ms * 1000 : sub->not_before;
    return 0;
}

static int prepare(const acp_platform *p, const queue_rt *q, const acp_submission *sub, prepared *s,
                   error_info *err)
{
    if (!sub)
        return error_info_set(err, ACP_EINVAL, "submission: NULL");
    if (sub->version < 1 || sub->version > ACP_SUBMISSION_VERSION)
        return error_info_set(err, ACP_EVERSION,
                              "submission.version: %u is not supported (call acp_submission_init)",
                              sub->version);
    int rc = prepare_control(p, q, sub, &s->run, err);
    if (rc)
        return rc;
    s->run.layout = p->layout;
    rc = compact_config(sub->config, &s->config, err);
    if (rc)
        return rc;
    if (sub->id) {
        s->id = *sub->id;
    } else if (!sub->config) {
        return error_info_set(err, ACP_EINVAL,
                              "submission.id: no id given and no config to derive it from");
    } else if ((rc = acp_job_id_from_config(&s->id, sub->config))) {
        error_info_take(err, rc);
        return error_info_prefix(err, "submission.config");
    }
    acp_job_id_format(&s->id, s->hex);
    rc = prepare_inputs(sub, s, err);
    s->run.input_sizes = s->sizes;
    return rc;
}

/* The job state the caller sees after submitting. */
static int report(acp_platform *p, const acp_job_id *id, acp_job *job, error_info *err)
{
    int rc = job ? acp_get_job(p, id, job) : 0;
    return rc ? error_info_take(err, rc) : 0;
}

static int write_inputs(acp_platform *p, const acp_submission *sub, const prepared *s)
{
    for (size_t i = 0; i < s->count; i++) {
        const acp_input *in = &sub->inputs[i];
        int rc = s->fds[i] >= 0 ? objects_put_fd(p->objects, &s->id, in->name, s->fds[i])
                                : objects_put(p->objects, &s->id, in->name, in->data, in->size);
        if (rc)
            return rc;
    }
    return 0;
}

static bool is_new_input(const prepared *s, const char *name)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

/* Native layout, a re-run: remove what the previous run left (the objects
 * its row names, or its whole workspace when it ran under lcp), except
 * inputs about to be replaced. */
static int remove_previous_run(acp_platform *p, const store_job *old, const prepared *s)
{
    if (old->layout == ACP_LAYOUT_LCP)
        return objects_wipe(p->objects, &s->id);
    const char **names;
    size_t count, kept = 0;
    int rc = job_row_objects(old, &names, &count);
    if (rc)
        return rc;
    for (size_t i = 0; i < count; i++)
        if (!is_new_input(s, names[i]))
            names[kept++] = names[i];
    rc = objects_delete_many(p->objects, &s->id, names, kept);
    free(names);
    return rc;
}

/* Native layout: the job's S3 objects are its inputs, nothing else. */
static int write_native(acp_platform *p, const acp_submission *sub, const prepared *s,
                        const store_job *old)
{
    int rc = old ? remove_previous_run(p, old, s) : 0;
    return rc ? rc : write_inputs(p, sub, s);
}

/* lcp layout: @wipe removes what an earlier run left, @marker writes
 * ".workspace" (a new workspace, or one whose earlier run was native). */
static int write_workspace(acp_platform *p, const acp_submission *sub, const prepared *s, bool wipe,
                           bool marker)
{
    int rc = wipe ? objects_wipe_except(p->objects, &s->id, workspace_kept_on_rerun) : 0;
    if (rc)
        return rc;
    /* In parallel: the order they appear in does not matter to a reader,
     * since our claim marker keeps other services away until they all
     * exist, and a reader of upstream's sees no workspace before
     * .workspace, as it would with one PUT after the other. */
    objects_item items[3];
    size_t count = 0;
    if (marker)
        items[count++] = (objects_item){WORKSPACE_MARKER, "", 0};
    items[count++] = (objects_item){workspace_flag(ACP_STATUS_QUEUED), "", 0};
    if (s->config)
        items[count++] = (objects_item){WORKSPACE_CONFIG, s->config, strlen(s->config)};
    if ((rc = objects_put_many(p->objects, &s->id, items, count)) || (rc = write_inputs(p, sub, s)))
        return rc;
    return wipe ? objects_delete(p->objects, &s->id, workspace_flag(ACP_STATUS_EXPIRED)) : 0;
}

/* A re-run whose workspace could not be rewritten ends expired on both
 * sides: its old results are gone, and a later submit runs it afresh. */
static void expire_after_failed_rerun(acp_platform *p, const prepared *s)
{
    store_tx *tx;
    if (store_expire_begin(p->store, &s->id, 0, &tx, NULL) == 0)
        store_tx_end(tx, true);
    if (p->layout == ACP_LAYOUT_LCP &&
        objects_touch(p->objects, &s->id, workspace_flag(ACP_STATUS_EXPIRED)) != 0)
        log_error(&p->log, "job %s: marking it expired after a failed re-run: %s", s->hex,
                  acp_last_error());
}

typedef enum how { NEW_JOB, TAKE_OVER, RERUN } how;

static bool same_config(const char *stored, const char *submitted);

/* Whether a failed store_insert or store_requeue was applied all the same,
 * its answer lost with the connection: the row then says queued with our
 * config. Left so, it would wait for a workspace and a message that no one
 * writes (and a new submit would report it on its way); our claim marker,
 * or the row's status, keeps other submitters from having written it. */
static bool row_written_anyway(acp_platform *p, const prepared *s, int rc)
{
    if (rc == ACP_ECONFLICT || rc == ACP_ENOTFOUND)
        return false; /* the database's answer, not a lost one */
    store_job row;
    if (store_get(p->store, &s->id, &row) != 0)
        return false;
    bool written = row.status == ACP_STATUS_QUEUED && same_config(row.config, s->config);
    store_job_free(&row);
    return written;
}

/* Row first, then the workspace, then the message. @old is the row of a
 * re-run (NULL for a new job); @created says that the lcp claim found no
 * workspace. */
static int create_job(acp_platform *p, queue_rt *q, const acp_submission *sub, const prepared *s,
                      how kind, const store_job *old, bool created, error_info *err)
{
    int rc = kind == RERUN
                 ? store_requeue(p->store, &s->id, q->id, s->config, s->names, s->count, &s->run)
                 : store_insert(p->store, &s->id, q->id, s->config, s->names, s->count, &s->run);
    /* A job due later has no message yet: the maintenance thread rings its
     * doorbell when it is due. */
    bool due = rc == 0;
    if (rc == 1)
        rc = 0;
    if (rc) {
        error_info_take(err, rc);
        if (!row_written_anyway(p, s, rc))
            return rc;
        log_warn(&p->log, "job %s: %s; yet its row is written: going on", s->hex, err->message);
        due = s->run.not_before <= clock_wall_us(); /* a bell too early is harmless */
    }
    bool native = p->layout == ACP_LAYOUT_NATIVE;
    bool was_native = old && old->layout == ACP_LAYOUT_NATIVE;
    rc = native ? write_native(p, sub, s, old)
                : write_workspace(p, sub, s, !created, created || was_native);
    if (rc) {
        char what[64];
        snprintf(what, sizeof what, "submitting job %s", s->hex);
        error_info_take(err, rc);
        error_info_prefix(err, what);
        if (kind == RERUN) {
            expire_after_failed_rerun(p, s);
        } else {
            /* Leave nothing half-made: no row, and no workspace we created. */
            if (store_delete(p->store, &s->id) != 0 ||
                (native && objects_delete_many(p->objects, &s->id, s->names, s->count) != 0) ||
                (!native && created && objects_wipe(p->objects, &s->id) != 0))
                log_error(&p->log, "job %s: cleaning up after a failed submit: %s", s->hex,
                          acp_last_error());
        }
        return rc;
    }
    atomic_fetch_add(&p->submitted, 1);
    metrics_job(metrics_queue_at(p->metrics, (size_t)(q - p->queues)), METRICS_SUBMITTED);
    if (due && dispatch_publish(p, q, &s->id, s->config) != 0) {
        log_warn(&p->log,
                 "job %s is stored but not yet dispatched (%s); it will be published "
                 "when the broker answers",
                 s->hex, acp_last_error());
        store_dispatch_failed(p->store, &s->id);
    }
    return 0;
}

/* A new job, another service's expired one, or our own expired one: claim
 * the workspace against other services first. */
static int claim_and_create(acp_platform *p, queue_rt *q, const acp_submission *sub,
                            const prepared *s, how kind, const store_job *old, error_info *err)
{
    char marker[128];
    bool created;
    int rc = claim_workspace(p, &s->id, &created, marker, sizeof marker);
    if (rc)
        return error_info_take(err, rc);
    if (kind == NEW_JOB && !created)
        kind = TAKE_OVER;
    rc = create_job(p, q, sub, s, kind, old, created, err);
    if (objects_delete(p->objects, &s->id, marker) != 0)
        log_warn(&p->log, "job %s: removing claim %s: %s", s->hex, marker, acp_last_error());
    return rc;
}

/* An id names one config: a submission under a taken id with another
 * config would hand one submitter the other's results (or re-run another's
 * job with its own config), whoever came first. */
static bool same_config(const char *stored, const char *submitted)
{
    return stored && submitted ? strcmp(stored, submitted) == 0 : stored == submitted;
}

static int other_config(const prepared *s, error_info *err)
{
    return error_info_set(err, ACP_ECONFLICT,
                          "job %s exists with another config: an id names one config (submit "
                          "this one under its own id, or delete the job first)",
                          s->hex);
}

/* The job this call stored and dispatched: a failed read of its state must
 * not tell the caller that the submit failed, since a retry after the run
 * would run it again. What this call wrote is reported instead. */
static int report_created(acp_platform *p, queue_rt *q, const prepared *s, acp_job *job)
{
    error_info lost = {0};
    if (report(p, &s->id, job, &lost) == 0)
        return 0;
    log_warn(&p->log,
             "job %s is submitted, but reading its state back failed (%s); reporting it "
             "queued",
             s->hex, lost.message);
    memset(job, 0, sizeof *job);
    job->version = ACP_JOB_VERSION;
    job->id = s->id;
    job->status = ACP_STATUS_QUEUED;
    job->owned = 1;
    snprintf(job->queue, sizeof job->queue, "%s", q->id);
    job->queue_position = -1;
    return 0;
}

/* The submission @s, validated, for queue @q. */
static int submit_prepared(acp_platform *p, queue_rt *q, const acp_submission *sub,
                           const prepared *s, acp_job *job, error_info *err)
{
    bool native = p->layout == ACP_LAYOUT_NATIVE;
    /* Native: no workspace to claim, so a new job (the common case) is
     * inserted without looking first; the insert refuses an existing id. */
    if (native) {
        int rc = create_job(p, q, sub, s, NEW_JOB, NULL, true, err);
        if (rc != ACP_ECONFLICT)
            return rc ? rc : report_created(p, q, s, job);
    }
    store_job row;
    int rc = store_get(p->store, &s->id, &row);
    if (rc == 0 && !same_config(row.config, s->config)) {
        store_job_free(&row);
        return other_config(s, err);
    }
    if (rc == 0) {
        acp_job_status status = row.status;
        if (status == ACP_STATUS_QUEUED || status == ACP_STATUS_IN_PROGRESS) {
            store_job_free(&row);
            return report(p, &s->id, job, err); /* already on its way: not a second run */
        }
        rc = status == ACP_STATUS_EXPIRED && !native
                 ? claim_and_create(p, q, sub, s, RERUN, &row, err)
                 : create_job(p, q, sub, s, RERUN, &row, false, err);
        store_job_free(&row);
        if (!rc)
            return report_created(p, q, s, job);
    } else if (rc == ACP_ENOTFOUND && native) {
        /* Deleted since the insert found it: once more. */
        rc = create_job(p, q, sub, s, NEW_JOB, NULL, true, err);
        if (!rc)
            return report_created(p, q, s, job);
    } else if (rc == ACP_ENOTFOUND) {
        rc = claim_and_create(p, q, sub, s, NEW_JOB, NULL, err);
        if (!rc)
            return report_created(p, q, s, job);
    } else {
        error_info_take(err, rc);
    }
    /* Another submitter sharing our database got there first: report its
     * run. (Our own expired row is no such run: then another service won.) */
    if (rc == ACP_ECONFLICT) {
        bool other = false;
        if (store_get(p->store, &s->id, &row) == 0) {
            other = !same_config(row.config, s->config);
            if (row.status != ACP_STATUS_EXPIRED && !other)
                rc = 0;
            store_job_free(&row);
        }
        if (other)
            other_config(s, err);
    }
    return rc ? rc : report(p, &s->id, job, err);
}

int acp_submit(acp_platform *p, const char *queue, const acp_submission *sub, acp_job *job)
{
    if (job)
        memset(job, 0, sizeof *job);
    if (!p || !queue)
        return error_set(ACP_EINVAL, "acp_submit: NULL argument");
    queue_rt *q = platform_state_find_queue(p, queue);
    if (!q)
        return error_set(ACP_ENOQUEUE, "queue '%.64s' is not configured", queue);
    if (atomic_load(&p->stopping))
        return error_set(ACP_ESHUTDOWN, "the platform is shutting down");

    error_info err = {0};
    prepared s = {0};
    int rc = prepare(p, q, sub, &s, &err);
    if (!rc)
        rc = submit_prepared(p, q, sub, &s, job, &err);
    prepared_free(&s);
    return rc ? error_raise(&err) : 0;
}
