/* The later life of results: expiring a job (by hand or by the pruner) and
 * deleting it. Both hold the job's row locked in a transaction while they
 * change its workspace, so that a concurrent access or resubmission waits
 * and then sees a consistent job: no row says complete while its files are
 * being removed. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "job.h"
#include "platform_state.h"
#include "retention.h"
#include "workspace.h"

#define PRUNE_BATCH 100

/* ENOTFOUND from the database: another service's job, or nobody's. */
static int not_ours(acp_platform *p, const acp_job_id *id, const char *action)
{
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    if (p->layout != ACP_LAYOUT_LCP) /* the root is this database's alone */
        return error_set(ACP_ENOTFOUND, "job %s: not found", hex);
    bool exists;
    int rc = objects_stat(p->objects, id, WORKSPACE_MARKER, &exists, NULL, NULL);
    if (rc)
        return rc;
    if (exists)
        return error_set(ACP_EUNOWNED,
                         "job %s belongs to another service sharing the bucket; only its owner "
                         "may %s it",
                         hex, action);
    return error_set(ACP_ENOTFOUND, "job %s: not found", hex);
}

bool retention_taken_over(acp_platform *p, const acp_job_id *id, acp_job_status row_status)
{
    if (row_status != ACP_STATUS_EXPIRED || p->layout != ACP_LAYOUT_LCP)
        return false; /* only expired shared workspaces can be claimed by others */
    object_list list;
    if (objects_list(p->objects, id, &list) != 0)
        return false; /* cannot tell: keep the row */
    /* Another service's run removes ".expired"; a ".failed" left beside it
     * by an expiry cut short here is no such run, so the flags' status (which
     * reads failed then) would be the wrong test. */
    acp_job state = {0};
    bool theirs = workspace_status_from_flags(&list, &state) && workspace_expired_since(&list) < 0;
    object_list_free(&list);
    /* Only a row still expired is dropped: our own re-run requeues the row
     * before it removes ".expired". */
    if (!theirs || store_delete_expired(p->store, id) != 0)
        return false;
    char hex[ACP_JOB_ID_STRLEN];
    log_warn(&p->log,
             "job %s was taken over by another service sharing the bucket after it expired "
             "here; this service's row is dropped",
             acp_job_id_format(id, hex));
    return true;
}

/* Our row, unless another service took the job over. */
static int owned_status(acp_platform *p, const acp_job_id *id, const char *action)
{
    store_job row;
    int rc = store_get(p->store, id, &row);
    if (rc == ACP_ENOTFOUND)
        return not_ours(p, id, action);
    if (rc)
        return rc;
    acp_job_status status = row.status;
    store_job_free(&row);
    if (retention_taken_over(p, id, status))
        return not_ours(p, id, action);
    return 0;
}

/* The commit of an expiry failed after its S3 work began: results may be
 * gone, so the row must not keep its old status. Once more, in a fresh
 * transaction, only while the row still has the status it had (@previous):
 * one that reads expired now means the first commit went through; any
 * other (a resubmission got in between) is left alone. Returns 0 when the
 * row says expired, else @failed. */
static int expire_commit_again(acp_platform *p, const acp_job_id *id, acp_job_status previous,
                               int failed)
{
    store_tx *tx;
    acp_job_status now;
    if (store_expire_begin(p->store, id, 0, &tx, &now) != 0)
        return failed;
    bool ours = now == previous;
    if (store_tx_end(tx, ours) != 0)
        return failed;
    return ours || now == ACP_STATUS_EXPIRED ? 0 : failed;
}

/* With the row locked by @id's expiry or deletion (not yet committed):
 * remove the objects its committed state names, when it is of the native
 * layout. Returns 1 for an lcp row (the caller handles its workspace). */
static int remove_native_objects(acp_platform *p, const acp_job_id *id)
{
    /* Another connection reads the committed row, which the lock keeps as
     * it is until the caller commits. */
    store_job row;
    int rc = store_get(p->store, id, &row);
    if (rc)
        return rc;
    if (row.layout == ACP_LAYOUT_LCP) {
        store_job_free(&row);
        return 1;
    }
    const char **names;
    size_t count;
    rc = job_row_objects(&row, &names, &count);
    if (!rc)
        rc = objects_delete_many(p->objects, id, names, count);
    free(names);
    store_job_free(&row);
    return rc;
}

/* Expire @id; with @accessed_before non-zero only a complete job last
 * accessed before then (the pruner's rule). */
static int expire(acp_platform *p, const acp_job_id *id, int64_t accessed_before)
{
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    store_tx *tx;
    acp_job_status previous;
    int rc = accessed_before ? 0 : owned_status(p, id, "expire");
    if (rc)
        return rc;
    rc = store_expire_begin(p->store, id, accessed_before, &tx, &previous);
    if (rc == ACP_ENOTFOUND)
        return not_ours(p, id, "expire");
    if (rc == ACP_EBUSY)
        return error_set(ACP_EBUSY, "job %s is running; it can be expired once it has finished",
                         hex);
    if (rc)
        return rc;
    rc = remove_native_objects(p, id);
    if (rc != 1) {
        /* Native: committed once every object is gone; else the row keeps
         * its status and expiring again finishes it. */
        int commit = store_tx_end(tx, rc == 0);
        if (!rc && commit)
            commit = expire_commit_again(p, id, previous, commit);
        if (!rc && !commit)
            atomic_fetch_add(&p->expired, 1);
        return rc ? rc : commit;
    }
    bool exists;
    bool flagged = false; /* the workspace shows the job expired, or is gone */
    rc = objects_stat(p->objects, id, WORKSPACE_MARKER, &exists, NULL, NULL);
    if (!rc && !exists) {
        /* Its results are gone either way: the row says so from now on. */
        log_warn(&p->log, "job %s: its workspace has vanished from S3; marking it expired", hex);
        flagged = true;
    } else if (!rc) {
        /* ".failed" goes too, but only once ".expired" exists (below). */
        rc = objects_wipe_except(p->objects, id, workspace_kept_on_expiry);
        if (!rc)
            rc = objects_touch(p->objects, id, workspace_flag(ACP_STATUS_EXPIRED));
        flagged = rc == 0;
        /* ".failed" outranks ".expired" in the flags (docs/compatibility.adoc, precedence): while
         * it stays, every reader sees a failed job whose row says expired, and nobody could
         * resubmit it. Removed after ".expired" exists, so that readers meanwhile see failed, never
         * an earlier status. An expired row may still carry one from an expiry cut short. */
        if (!rc && previous != ACP_STATUS_COMPLETE)
            rc = objects_delete(p->objects, id, workspace_flag(ACP_STATUS_FAILED));
    }
    /* Committed once ".expired" is in place, even when S3 failed after it
     * (".failed" left): expiring again finishes it. Before that the row
     * keeps its status, though some results may be gone already: an
     * expired row whose workspace shows no ".expired" reads as taken over
     * by another service (retention_taken_over), so the next access would
     * drop the row and leave the workspace to nobody. Expiring again (or
     * the pruner's next pass) finishes it. */
    int commit = store_tx_end(tx, flagged);
    if (!flagged)
        return rc ? rc : commit;
    if (commit)
        commit = expire_commit_again(p, id, previous, commit);
    if (!commit)
        atomic_fetch_add(&p->expired, 1);
    return rc ? rc : commit;
}

int acp_expire_job(acp_platform *p, const acp_job_id *id)
{
    if (!p || !id)
        return error_set(ACP_EINVAL, "acp_expire_job: NULL argument");
    return expire(p, id, 0);
}

int acp_delete_job(acp_platform *p, const acp_job_id *id)
{
    if (!p || !id)
        return error_set(ACP_EINVAL, "acp_delete_job: NULL argument");
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    store_tx *tx;
    int rc = owned_status(p, id, "delete");
    if (rc)
        return rc;
    rc = store_delete_begin(p->store, id, &tx);
    if (rc == ACP_ENOTFOUND)
        return not_ours(p, id, "delete");
    if (rc == ACP_EBUSY)
        return error_set(ACP_EBUSY, "job %s is running; it can be deleted once it has finished",
                         hex);
    if (rc)
        return rc;
    rc = remove_native_objects(p, id);
    if (rc == 1)
        rc = objects_wipe(p->objects, id);
    if (rc) {
        /* The row stays, so the call can simply be repeated. */
        store_tx_end(tx, false);
        return rc;
    }
    return store_tx_end(tx, true);
}

/* ---- the pruner ---------------------------------------------------------- */

int retention_prune(acp_platform *p, size_t *expired_out)
{
    int64_t cutoff = clock_wall_us() - (int64_t)p->expiration_days * 86400 * 1000000;
    size_t expired = 0, failed = 0;
    acp_job_id after;
    bool first = true;
    log_info(&p->log, "pruner: expiring complete jobs not accessed for %u day(s)",
             p->expiration_days);
    for (;;) {
        acp_job_id *ids;
        size_t count;
        int rc = store_list_expirable(p->store, cutoff, first ? NULL : &after, PRUNE_BATCH, &ids,
                                      &count);
        if (rc) {
            log_error(&p->log, "pruner: listing expirable jobs: %s", acp_last_error());
            break;
        }
        for (size_t i = 0; i < count && !atomic_load(&p->maintenance_stopping); i++) {
            rc = expire(p, &ids[i], cutoff);
            char hex[ACP_JOB_ID_STRLEN];
            acp_job_id_format(&ids[i], hex);
            if (rc == 0) {
                expired++;
                log_debug(&p->log, "pruner: job %s expired", hex);
            } else if (rc != ACP_ECONFLICT) { /* conflict: accessed meanwhile */
                failed++;
                log_error(&p->log, "pruner: job %s: %s", hex, acp_last_error());
            }
        }
        if (count > 0)
            after = ids[count - 1];
        free(ids);
        first = false;
        if (count < PRUNE_BATCH || atomic_load(&p->maintenance_stopping))
            break;
    }
    log_info(&p->log, "pruner: %zu job(s) expired, %zu error(s)", expired, failed);
    if (expired_out)
        *expired_out = expired;
    return failed ? ACP_ESTORAGE : 0;
}

void *retention_pruner_main(void *arg)
{
    acp_platform *p = arg;
    do
        retention_prune(p, NULL);
    while (!platform_state_wait(p, p->prune_interval * 1000u, &p->maintenance_stopping));
    return NULL;
}
