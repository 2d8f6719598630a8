/* The batch statements of the maintenance passes: see store.h. */
#include "store_batch.h"

#include <stdio.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "pgpool.h"
#include "pgvalue.h"

/* The batch statements pick rows with FOR UPDATE SKIP LOCKED in a
 * materialised CTE (evaluated exactly once), so concurrent callers in
 * several processes split the rows between them instead of waiting or
 * taking the same ones. */
static int store_batch_run(pgpool *pool, const char *what, const char *sql, pgpool_params *p,
                           size_t limit, store_dispatch_list *out)
{
    if (!pool || !out)
        return error_set(ACP_EINVAL, "%s: NULL argument", what);
    out->items = NULL;
    out->count = 0;
    if (limit == 0)
        return 0;
    char count[24];
    snprintf(count, sizeof count, "%zu", limit);
    pgvalue_param_text(p, count);
    PGresult *res;
    int rc = pgpool_query(pool, false, what, sql, p, &res);
    if (rc)
        return rc;
    rc = pgvalue_read_dispatch_list(pool, res, out);
    PQclear(res);
    return rc;
}

/* The back-off before the next attempt of row j, whose attempts-th attempt
 * just failed: full jitter below min(max, base x 2^(attempts-1)), in
 * seconds (the exponent is capped: 2^40 ms exceeds any cap). */
#define STORE_BATCH_BACKOFF_SQL                                                                    \
    "random() * least(j.backoff_max_ms, j.backoff_base_ms * power(2, "                             \
    "least(greatest(j.attempts - 1, 0), 40))) / 1000.0"

/* The passes over expired leases: $1 (appended by store_batch_run) is the
 * limit. */
int store_batch_requeue_expired(store *base, size_t limit, store_dispatch_list *out)
{
    pgpool_params p = {0};
    return store_batch_run(
        pgpool_of(base), "requeue expired leases",
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'in-progress' AND lease_expires < now() AND attempts < max_attempts"
        "  AND cancel_requested IS NULL"
        "  ORDER BY lease_expires LIMIT $1::bigint FOR UPDATE SKIP LOCKED), "
        "requeued AS ("
        "  UPDATE compute.jobs j SET status = 'queued', grabbed = NULL, lease_owner = NULL,"
        "    lease_expires = NULL, dispatched = NULL, dispatch_failures = 0,"
        "    dispatch_retry = NULL,"
        "    not_before = now() + make_interval(secs => " STORE_BATCH_BACKOFF_SQL "),"
        "    error = 'attempt ' || j.attempts || ' stopped: the process running it stopped"
        " (its lease expired)'"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created, j.layout) "
        "SELECT encode(job_id, 'hex'), queue, config, 0, layout FROM requeued "
        "ORDER BY created, job_id",
        &p, limit, out);
}

int store_batch_fail_abandoned(store *base, size_t limit, store_dispatch_list *out)
{
    pgpool_params p = {0};
    return store_batch_run(
        pgpool_of(base), "fail abandoned jobs",
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'in-progress' AND lease_expires < now()"
        "  AND (attempts >= max_attempts OR cancel_requested IS NOT NULL)"
        "  ORDER BY lease_expires LIMIT $1::bigint FOR UPDATE SKIP LOCKED), "
        "ended AS ("
        "  UPDATE compute.jobs j SET finished = now(), lease_owner = NULL, lease_expires = NULL,"
        "    status = CASE WHEN j.cancel_requested IS NULL THEN 'failed' ELSE 'cancelled' END,"
        "    error = CASE WHEN j.cancel_requested IS NOT NULL THEN 'cancelled'"
        "      ELSE 'abandoned: the process running attempt ' || j.attempts || ' of '"
        "      || j.max_attempts || ' stopped (its lease expired)' END"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created, j.layout, j.status) "
        "SELECT encode(job_id, 'hex'), queue, config, 0, layout, status FROM ended "
        "ORDER BY created, job_id",
        &p, limit, out);
}

int store_batch_take_undispatched(store *base, unsigned older_than_seconds,
                                  const char *const *queues, size_t queue_count, size_t limit,
                                  store_dispatch_list *out, int64_t *next_due)
{
    pgpool *pool = pgpool_of(base);
    const char *what = "take undispatched jobs";
    if (next_due)
        *next_due = 0;
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%u", older_than_seconds);
    buf array = BUF_INIT;
    int rc = pgvalue_text_array(pool, what, queues, queue_count, &array);
    if (rc) {
        buf_free(&array);
        return rc;
    }
    pgpool_params p = {0};
    pgvalue_param_text(&p, seconds);
    pgvalue_param_text(&p, array.data);
    /* $1 is the age, $2 the queues, $3 (appended by store_batch_run) the limit.
     * Only the caller's queues: a job it cannot publish would otherwise
     * come back in every batch and crowd out the ones it can. Only due
     * jobs: a doorbell rung early would find nothing to claim. */
    rc = store_batch_run(
        pool, what,
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'queued' AND queue = ANY($2::varchar[]) AND not_before <= now() AND ("
        "    (dispatched IS NULL AND (dispatch_retry IS NULL OR dispatch_retry <= now()))"
        "    OR dispatched < now() - make_interval(secs => $1::double precision))"
        "  ORDER BY priority DESC, not_before, job_id LIMIT $3::bigint FOR UPDATE SKIP LOCKED), "
        "taken AS ("
        "  UPDATE compute.jobs j SET dispatched = now()"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.priority, j.not_before, j.dispatch_failures,"
        "    j.layout) "
        "SELECT encode(job_id, 'hex'), queue, config, dispatch_failures, layout FROM taken "
        "ORDER BY priority DESC, not_before, job_id",
        &p, limit, out);
    if (rc || !next_due) {
        buf_free(&array);
        return rc;
    }
    /* When the next delayed job (or retry) of these queues becomes due: the
     * caller sleeps until then, so that its doorbell rings on time. */
    pgpool_params q = {0};
    pgvalue_param_text(&q, array.data);
    PGresult *res;
    rc = pgpool_query(pool, true, "find the next due job",
                      "SELECT (extract(epoch FROM not_before) * 1000000)::bigint "
                      "FROM compute.jobs WHERE status = 'queued' AND dispatched IS NULL "
                      "AND not_before > now() AND queue = ANY($1::varchar[]) "
                      "ORDER BY not_before LIMIT 1",
                      &q, &res);
    buf_free(&array);
    if (rc) {
        store_dispatch_list_free(out);
        return rc;
    }
    if (PQntuples(res) > 0)
        *next_due = pgvalue_get_int64(res, 0, 0);
    PQclear(res);
    return 0;
}
