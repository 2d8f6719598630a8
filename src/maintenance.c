/* The maintenance thread: renews the leases of this process's running jobs,
 * requeues jobs whose lease ran out (their process died), and has the
 * messages of queued jobs that were never dispatched or whose message got
 * lost published again (dispatch.c). Any number of processes sharing the
 * database may do this at once: the store's statements skip rows another
 * process is handling. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "dispatch.h"
#include "error.h"
#include "maintenance.h"
#include "metrics.h"
#include "platform_state.h"
#include "record.h"
#include "running.h"
#include "scratch.h"
#include "workspace.h"

#define TICK_MS     1000
#define TICK_MIN_MS 10
#define BATCH       100
/* Scratch directories of dead runs are looked for every this many lease
 * periods: a run is known dead only once its lease ran out, and a listing
 * plus a statement at every tick would be waste. */
#define SWEEP_LEASES 3

/* Jobs whose process died on each of their max_attempts runs are failed
 * rather than requeued, or a job that crashes its process would loop; a
 * run whose cancellation was requested ends cancelled. */
static void fail_abandoned(acp_platform *p)
{
    store_dispatch_list list = {0};
    if (store_fail_abandoned(p->store, BATCH, &list) != 0) {
        log_warn(&p->log, "failing abandoned jobs: %s", acp_last_error());
        return;
    }
    for (size_t i = 0; i < list.count; i++) {
        const store_dispatch *d = &list.items[i];
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&d->id, hex);
        metrics_job_named(p->metrics, d->queue,
                          d->status == ACP_STATUS_CANCELLED ? METRICS_CANCELLED : METRICS_FAILED);
        if (d->status == ACP_STATUS_CANCELLED) {
            atomic_fetch_add(&p->cancelled, 1);
            log_info(&p->log, "job %s: cancelled (the process running it stopped)", hex);
        } else {
            log_warn(&p->log,
                     "job %s: its lease expired on its last allowed attempt: failed, not "
                     "requeued",
                     hex);
        }
        /* Services sharing the bucket see the status through the flags. */
        if (d->layout == ACP_LAYOUT_LCP &&
            objects_touch(p->objects, &d->id, workspace_flag(d->status)) != 0)
            log_warn(&p->log, "job %s: setting %s: %s", hex, workspace_flag(d->status),
                     acp_last_error());
    }
    store_dispatch_list_free(&list);
}

/* Runs asked to stop whose executor has not returned within the grace:
 * their attempt is recorded without them, so that the job goes on (a retry
 * after a timeout) or ends (cancelled) while the executor keeps its worker
 * thread. One try each per tick: the database may be away. */
static void record_overdue(acp_platform *p)
{
    running_job *overdue[BATCH];
    size_t count = running_take_overdue(p, (int64_t)p->cancel_grace_seconds * 1000, overdue, BATCH);
    for (size_t i = 0; i < count; i++) {
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&overdue[i]->row->id, hex);
        int reason = atomic_load(&overdue[i]->reason);
        int rc = record_stopped(p, overdue[i]->row, reason, hex);
        if (rc == 0)
            log_warn(&p->log,
                     "job %s: its executor did not return within %u s of being asked to stop "
                     "(%s); the attempt is recorded without it, and its worker thread stays "
                     "with it until it returns",
                     hex, p->cancel_grace_seconds,
                     reason == ACP_CANCEL_TIMEOUT ? "timed out" : "cancelled");
        else if (rc != ACP_ECONFLICT)
            log_warn(&p->log, "job %s: recording its overdue attempt: %s; trying again", hex,
                     acp_last_error());
        running_release(p, overdue[i], rc == 0 || rc == ACP_ECONFLICT);
    }
}

void maintenance_sweep(acp_platform *p)
{
    size_t removed;
    if (scratch_sweep(p, &removed) != 0)
        log_warn(&p->log, "removing scratch directories of stopped runs: %s", acp_last_error());
    else if (removed)
        log_info(&p->log, "removed %zu scratch director%s of stopped runs under %s", removed,
                 removed == 1 ? "y" : "ies", p->workspace_root);
}

/* The leases of the jobs this process runs now, and only those: a run it
 * gave up on (the database was down when it ended, and the process is
 * shutting down) must let its lease run out so that the job runs again. */
static int renew_running(acp_platform *p)
{
    acp_job_id *ids;
    size_t count;
    int rc = running_copy(p, &ids, &count);
    bool *cancel = rc || !count ? NULL : calloc(count, sizeof *cancel);
    if (!rc && count && !cancel)
        rc = error_set(ACP_ENOMEM, "out of memory");
    if (!rc)
        rc = store_renew_leases(p->store, p->instance_id, p->lease_seconds, ids, count, NULL,
                                cancel);
    /* The fallback of a notification that did not arrive (the listening
     * connection was down). */
    for (size_t i = 0; !rc && i < count; i++)
        if (cancel[i] && running_signal(p, &ids[i], ACP_CANCEL_REQUESTED))
            log_debug(&p->log, "a cancellation found by the lease renewal");
    free(cancel);
    free(ids);
    return rc;
}

bool maintenance_tick(acp_platform *p, bool renew)
{
    if (renew && renew_running(p) != 0) {
        /* Requeueing now could take this process's own jobs, whose leases
         * ran out while the database was unreachable: renew them first. */
        log_warn(&p->log, "renewing leases: %s; requeueing waits until they are renewed",
                 acp_last_error());
        return false;
    }

    running_check_deadlines(p);
    record_overdue(p);
    fail_abandoned(p);

    bool ok = true;
    store_dispatch_list list = {0};
    if (store_requeue_expired(p->store, BATCH, &list) == 0) {
        atomic_fetch_add(&p->requeued, list.count);
        for (size_t i = 0; i < list.count; i++) {
            char hex[ACP_JOB_ID_STRLEN];
            metrics_job_named(p->metrics, list.items[i].queue, METRICS_REQUEUED);
            log_info(&p->log,
                     "job %s: its lease expired (the process running it stopped); queued for "
                     "a retry after its back-off",
                     acp_job_id_format(&list.items[i].id, hex));
        }
        store_dispatch_list_free(&list);
    } else {
        log_warn(&p->log, "requeueing jobs with expired leases: %s", acp_last_error());
        ok = false;
    }
    const char **served = malloc((p->queue_count ? p->queue_count : 1) * sizeof *served);
    for (size_t i = 0; served && i < p->queue_count; i++)
        served[i] = p->queues[i].id;
    if (!served)
        log_warn(&p->log, "looking for undispatched jobs: out of memory");
    else if (store_take_undispatched(p->store, p->redispatch_seconds, served, p->queue_count, BATCH,
                                     &list, &p->next_due_us) == 0) {
        dispatch_republish(p, &list, "due without a live message");
        store_dispatch_list_free(&list);
    } else {
        log_warn(&p->log, "looking for undispatched jobs: %s", acp_last_error());
        ok = false;
    }
    free(served);
    return ok;
}

void *maintenance_main(void *arg)
{
    acp_platform *p = arg;
    int64_t renew_every = (int64_t)p->lease_seconds * 1000 / 3;
    int64_t last_renew = clock_now_ms();
    int64_t sweep_every = (int64_t)p->lease_seconds * 1000 * SWEEP_LEASES;
    int64_t last_sweep = clock_now_ms(); /* acp_init swept */
    /* After a failed pass (the database was unreachable) the next one
     * renews first, whatever the schedule, before it requeues anything. */
    bool renew_owed = !maintenance_tick(p, false);
    for (;;) {
        /* A delayed job or a retry due before the next tick has its
         * doorbell rung on time. */
        unsigned wait = TICK_MS;
        int64_t until = p->next_due_us ? (p->next_due_us - clock_wall_us()) / 1000 + 1 : TICK_MS;
        /* Not below a few ms: with this host's clock ahead of the
         * database's, a job the database does not call due yet would look
         * overdue here, and the loop would spin until the clocks agree. */
        if (until < (int64_t)wait)
            wait = until > TICK_MIN_MS ? (unsigned)until : TICK_MIN_MS;
        if (platform_state_wait(p, wait, &p->maintenance_stopping))
            break;
        dispatch_keep_publishers(p);
        bool renew = renew_owed || clock_now_ms() - last_renew >= renew_every - TICK_MS / 2;
        if (renew)
            last_renew = clock_now_ms();
        renew_owed = !maintenance_tick(p, renew);
        if (clock_now_ms() - last_sweep >= sweep_every) {
            last_sweep = clock_now_ms();
            maintenance_sweep(p);
        }
    }
    return NULL;
}
