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
#include "platform_state.h"
#include "running.h"
#include "scratch.h"
#include "workspace.h"

#define TICK_MS 1000
#define BATCH   100
/* Scratch directories of dead runs are looked for every this many lease
 * periods: a run is known dead only once its lease ran out, and a listing
 * plus a statement at every tick would be waste. */
#define SWEEP_LEASES 3

/* Jobs whose process died on each of their max_attempts runs are failed
 * rather than requeued, or a job that crashes its process would loop. */
static void fail_abandoned(acp_platform *p)
{
    store_dispatch_list list = {0};
    if (store_fail_abandoned(p->store, p->max_attempts, BATCH, &list) != 0) {
        log_warn(&p->log, "failing abandoned jobs: %s", acp_last_error());
        return;
    }
    for (size_t i = 0; i < list.count; i++) {
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&list.items[i].id, hex);
        log_warn(&p->log,
                 "job %s: its lease expired on its last allowed attempt (max_attempts %u): "
                 "failed, not requeued",
                 hex, p->max_attempts);
        /* Services sharing the bucket see the status through the flags. */
        if (list.items[i].layout == ACP_LAYOUT_LCP &&
            objects_touch(p->objects, &list.items[i].id, workspace_flag(ACP_STATUS_FAILED)) != 0)
            log_warn(&p->log, "job %s: setting %s: %s", hex, workspace_flag(ACP_STATUS_FAILED),
                     acp_last_error());
    }
    store_dispatch_list_free(&list);
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
    if (!rc)
        rc = store_renew_leases(p->store, p->instance_id, p->lease_seconds, ids, count, NULL);
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

    fail_abandoned(p);

    bool ok = true;
    store_dispatch_list list = {0};
    if (store_requeue_expired(p->store, p->max_attempts, BATCH, &list) == 0) {
        atomic_fetch_add(&p->requeued, list.count);
        dispatch_republish(
            p, &list, "its lease expired (the process running it stopped) and it was requeued");
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
                                     &list) == 0) {
        dispatch_republish(p, &list, "queued without a live message");
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
    while (!platform_state_wait(p, TICK_MS, &p->maintenance_stopping)) {
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
