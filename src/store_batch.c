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

/* The passes over expired leases: in @sql, $1 is @max_attempts and $2
 * (appended by store_batch_run) the limit. */
static int store_batch_expired(store *base, unsigned max_attempts, size_t limit, const char *what,
                               const char *sql, store_dispatch_list *out)
{
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%u", max_attempts);
    pgpool_params p = {0};
    pgvalue_param_text(&p, attempts);
    return store_batch_run(pgpool_of(base), what, sql, &p, limit, out);
}

int store_batch_requeue_expired(store *base, unsigned max_attempts, size_t limit,
                                store_dispatch_list *out)
{
    return store_batch_expired(
        base, max_attempts, limit, "requeue expired leases",
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'in-progress' AND lease_expires < now() AND attempts < $1::int"
        "  ORDER BY lease_expires LIMIT $2::bigint FOR UPDATE SKIP LOCKED), "
        "requeued AS ("
        "  UPDATE compute.jobs j SET status = 'queued', grabbed = NULL, lease_owner = NULL,"
        "    lease_expires = NULL, dispatched = now()"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created, j.layout) "
        "SELECT encode(job_id, 'hex'), queue, config, 0, layout FROM requeued "
        "ORDER BY created, job_id",
        out);
}

int store_batch_fail_abandoned(store *base, unsigned max_attempts, size_t limit,
                               store_dispatch_list *out)
{
    return store_batch_expired(
        base, max_attempts, limit, "fail abandoned jobs",
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'in-progress' AND lease_expires < now() AND attempts >= $1::int"
        "  ORDER BY lease_expires LIMIT $2::bigint FOR UPDATE SKIP LOCKED), "
        "failed AS ("
        "  UPDATE compute.jobs j SET status = 'failed', finished = now(), lease_owner = NULL,"
        "    lease_expires = NULL, error = 'abandoned ' || j.attempts || CASE j.attempts"
        "    WHEN 1 THEN ' time' ELSE ' times' END || ': the process running it stopped each"
        " time (its lease expired)'"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created, j.layout) "
        "SELECT encode(job_id, 'hex'), queue, config, 0, layout FROM failed "
        "ORDER BY created, job_id",
        out);
}

int store_batch_take_undispatched(store *base, unsigned older_than_seconds,
                                  const char *const *queues, size_t queue_count, size_t limit,
                                  store_dispatch_list *out)
{
    pgpool *pool = pgpool_of(base);
    const char *what = "take undispatched jobs";
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
     * come back in every batch and crowd out the ones it can. */
    rc = store_batch_run(
        pool, what,
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'queued' AND queue = ANY($2::varchar[]) AND ("
        "    (dispatched IS NULL AND (dispatch_retry IS NULL OR dispatch_retry <= now()))"
        "    OR dispatched < now() - make_interval(secs => $1::double precision))"
        "  ORDER BY created, job_id LIMIT $3::bigint FOR UPDATE SKIP LOCKED), "
        "taken AS ("
        "  UPDATE compute.jobs j SET dispatched = now()"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created, j.dispatch_failures, j.layout) "
        "SELECT encode(job_id, 'hex'), queue, config, dispatch_failures, layout FROM taken "
        "ORDER BY created, job_id",
        &p, limit, out);
    buf_free(&array);
    return rc;
}
