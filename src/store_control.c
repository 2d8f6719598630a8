/* Job control in PostgreSQL: see store_control.h. */
#include "store_control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "error.h"
#include "pgvalue.h"
#include "store_jobs.h"

int store_control_claim(store *base, const char *queue, const char *owner, unsigned lease_seconds,
                        store_job *out)
{
    pgpool *pool = pgpool_of(base);
    if (!pool || !out || !queue || !owner || !*owner)
        return error_set(ACP_EINVAL, "store_claim: NULL argument or empty owner");
    store_job_init(out);
    char what[64], seconds[16];
    snprintf(what, sizeof what, "claim a job of queue '%.32s'", queue);
    snprintf(seconds, sizeof seconds, "%u", lease_seconds);
    pgpool_params p = {0};
    pgvalue_param_text(&p, queue);
    pgvalue_param_text(&p, owner);
    pgvalue_param_text(&p, seconds);
    PGresult *res;
    /* The doorbell names no job: the best due one is taken, read in the
     * claim index's order. SKIP LOCKED sends concurrent claimers to
     * different rows; the outer status test covers a row that left
     * 'queued' between the pick and the update. The last attempt's error
     * stays until the run ends: it is what a retry is about; its progress
     * goes (the log stays: attempts append to it). */
    int rc = pgpool_query(pool, false, what,
                          "UPDATE compute.jobs SET status = 'in-progress', grabbed = now(), "
                          "finished = NULL, lease_owner = $2, "
                          "lease_expires = now() + make_interval(secs => $3::double precision), "
                          "attempts = attempts + 1, progress_done = NULL, progress_total = NULL, "
                          "progress_text = NULL, progress_updated = NULL "
                          "WHERE job_id = (SELECT job_id FROM compute.jobs "
                          "  WHERE queue = $1 AND status = 'queued' AND not_before <= now() "
                          "  ORDER BY priority DESC, not_before, job_id LIMIT 1 "
                          "  FOR UPDATE SKIP LOCKED) AND status = 'queued' "
                          "RETURNING " PGVALUE_JOB_COLUMNS,
                          &p, &res);
    if (rc)
        return rc;
    if (!store_jobs_matched(res)) {
        PQclear(res);
        /* SKIP LOCKED also passes over a due job that another statement
         * (a touch, a cancellation, a deletion) holds for a moment: its
         * doorbell must not be dropped for that. */
        pgpool_params q = {0};
        pgvalue_param_text(&q, queue);
        rc = pgpool_query(pool, true, what,
                          "SELECT 1 FROM compute.jobs WHERE queue = $1 AND status = 'queued' "
                          "AND not_before <= now() LIMIT 1",
                          &q, &res);
        if (rc)
            return rc;
        bool locked = PQntuples(res) > 0;
        PQclear(res);
        return locked ? pgpool_fail(pool, ACP_EBUSY, "%s: its due jobs are locked just now", what)
                      : pgpool_fail(pool, ACP_ENOTFOUND, "%s: no job of the queue is due", what);
    }
    rc = pgvalue_read_job(pool, res, 0, out);
    PQclear(res);
    if (rc)
        store_job_free(out);
    return rc;
}

int store_control_retry(store *base, const acp_job_id *id, const char *owner, const char *message,
                        unsigned delay_ms)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_retry");
    char hex[ACP_JOB_ID_STRLEN], what[64], delay[16];
    snprintf(what, sizeof what, "retry job %s", acp_job_id_format(id, hex));
    if (!owner)
        return pgpool_fail(pool, ACP_EINVAL, "%s: NULL owner", what);
    snprintf(delay, sizeof delay, "%u", delay_ms);
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    pgvalue_param_text(&p, owner);
    pgvalue_param_text(&p, message);
    pgvalue_param_text(&p, delay);
    PGresult *res;
    /* Not dispatched: its doorbell rings once it is due (store_take_undispatched). */
    int rc = pgpool_query(
        pool, false, what,
        "UPDATE compute.jobs SET status = 'queued', error = $3, grabbed = NULL, "
        "lease_owner = NULL, lease_expires = NULL, dispatched = NULL, dispatch_failures = 0, "
        "dispatch_retry = NULL, not_before = now() + make_interval(secs => $4::bigint / 1000.0) "
        "WHERE job_id = $1::bytea AND status = 'in-progress' AND lease_owner = $2 "
        "AND cancel_requested IS NULL",
        &p, &res);
    if (rc)
        return rc;
    bool updated = store_jobs_matched(res);
    PQclear(res);
    if (updated)
        return 0;
    char expected[PGPOOL_MESSAGE_MAX / 2];
    snprintf(expected, sizeof expected, "in-progress leased by %s and not being cancelled", owner);
    rc = store_jobs_explain_miss(pool, id, what, ACP_ECONFLICT, expected);
    return rc == ACP_ENOTFOUND ? ACP_ECONFLICT : rc;
}

int store_control_cancel(store *base, const acp_job_id *id, acp_job_status *previous,
                         acp_layout *layout, char *queue)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_cancel");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "cancel job %s", acp_job_id_format(id, hex));
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    PGresult *res;
    /* The status before is read under the row's lock in the same
     * statement. The notification goes out at commit, to every process
     * listening: the one running the job stops it. */
    int rc =
        pgpool_query(pool, false, what,
                     "UPDATE compute.jobs j SET "
                     "status = CASE WHEN o.status = 'queued' THEN 'cancelled' ELSE j.status END, "
                     "finished = CASE WHEN o.status = 'queued' THEN now() ELSE j.finished END, "
                     "error = CASE WHEN o.status = 'queued' THEN 'cancelled' ELSE j.error END, "
                     "dispatched = CASE WHEN o.status = 'queued' THEN NULL ELSE j.dispatched END, "
                     "cancel_requested = CASE WHEN o.status = 'in-progress' "
                     "  THEN coalesce(j.cancel_requested, now()) ELSE j.cancel_requested END "
                     "FROM (SELECT status FROM compute.jobs WHERE job_id = $1::bytea FOR UPDATE) o "
                     "WHERE j.job_id = $1::bytea AND o.status IN ('queued', 'in-progress') "
                     "RETURNING o.status, j.layout, CASE WHEN o.status = 'in-progress' "
                     "  THEN pg_notify('" STORE_CANCEL_CHANNEL "', encode(j.job_id, 'hex')) END, "
                     "j.queue",
                     &p, &res);
    if (rc)
        return rc;
    if (store_jobs_matched(res)) {
        acp_job_status before = ACP_STATUS_QUEUED;
        acp_layout run_layout = ACP_LAYOUT_LCP;
        if (pgvalue_status_parse(PQgetvalue(res, 0, 0), &before) != 0 ||
            pgvalue_parse_layout(pool, PQgetvalue(res, 0, 1), &run_layout) != 0) {
            PQclear(res);
            return pgpool_fail(pool, ACP_EDB, "%s: unexpected answer", what);
        }
        if (queue)
            snprintf(queue, ACP_QUEUE_ID_MAX + 1, "%s", PQgetvalue(res, 0, 3));
        PQclear(res);
        if (previous)
            *previous = before;
        if (layout)
            *layout = run_layout;
        return 0;
    }
    PQclear(res);
    rc = store_jobs_by_id(pool, id, true, what,
                          "SELECT status FROM compute.jobs WHERE job_id = $1::bytea", &res);
    if (rc)
        return rc;
    rc = pgpool_fail(pool, ACP_ECONFLICT,
                     "job %s is %s: only a queued or running job can be cancelled", hex,
                     PQgetvalue(res, 0, 0));
    PQclear(res);
    return rc;
}

int store_control_renew_leases(store *base, const char *owner, unsigned lease_seconds,
                               const acp_job_id *ids, size_t count, size_t *renewed, bool *cancel)
{
    pgpool *pool = pgpool_of(base);
    if (renewed)
        *renewed = 0;
    if (!pool || !owner || (count && !ids))
        return error_set(ACP_EINVAL, "store_renew_leases: NULL argument");
    for (size_t i = 0; cancel && i < count; i++)
        cancel[i] = false;
    if (count == 0)
        return 0;
    /* Ids as hex text: one text array parameter, whatever their number. */
    char(*hex)[ACP_JOB_ID_STRLEN] = malloc(count * sizeof *hex);
    const char **items = malloc(count * sizeof *items);
    buf array = BUF_INIT;
    int rc = hex && items ? 0 : pgpool_fail(pool, ACP_ENOMEM, "renew leases: out of memory");
    for (size_t i = 0; !rc && i < count; i++)
        items[i] = acp_job_id_format(&ids[i], hex[i]);
    if (!rc)
        rc = pgvalue_text_array(pool, "renew leases", items, count, &array);
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%u", lease_seconds);
    pgpool_params p = {0};
    pgvalue_param_text(&p, owner);
    pgvalue_param_text(&p, seconds);
    pgvalue_param_text(&p, array.data);
    PGresult *res = NULL;
    /* SKIP LOCKED: a row locked by a run being recorded is about to leave
     * 'in-progress'; waiting for it would hold up every other renewal. The
     * answer names the jobs whose cancellation was requested, in case their
     * notification was lost. */
    if (!rc)
        rc = pgpool_query(pool, true, "renew leases",
                          "UPDATE compute.jobs "
                          "SET lease_expires = now() + make_interval(secs => $2::double precision) "
                          "WHERE job_id IN (SELECT job_id FROM compute.jobs "
                          "  WHERE job_id = ANY (SELECT decode(h, 'hex') FROM unnest($3::text[]) h)"
                          "  AND lease_owner = $1 AND status = 'in-progress' "
                          "  FOR UPDATE SKIP LOCKED) "
                          "RETURNING encode(job_id, 'hex'), cancel_requested IS NOT NULL",
                          &p, &res);
    buf_free(&array);
    free(items);
    if (rc) {
        free(hex);
        return rc;
    }
    int rows = PQntuples(res);
    if (renewed)
        *renewed = (size_t)rows;
    for (int r = 0; cancel && r < rows; r++) {
        if (strcmp(PQgetvalue(res, r, 1), "t") != 0)
            continue;
        for (size_t i = 0; i < count; i++)
            if (strcmp(PQgetvalue(res, r, 0), hex[i]) == 0)
                cancel[i] = true;
    }
    free(hex);
    PQclear(res);
    return 0;
}
