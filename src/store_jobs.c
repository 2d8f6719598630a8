/* The statements on one job of compute.jobs (see store.h for each
 * contract) and the rule they share: a statement by id that matches no row
 * means there is no such job. */
#include "store_jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "pgvalue.h"

/* Seconds: the longest wait before publishing a job's message again after
 * failed attempts. */
#define STORE_JOBS_BACKOFF_MAX "60"
/* When a written run becomes due, from $8 (µs, 0: now): never before now,
 * so that a time in the past cannot jump the queue. */
#define STORE_JOBS_DUE_SQL                                                                         \
    "greatest(now(), CASE WHEN $8::bigint = 0 THEN now() "                                         \
    "ELSE to_timestamp($8::bigint / 1000000.0) END)"

void store_jobs_control_defaults(const store_run_options *opt, store_run_options *out)
{
    if (opt)
        *out = *opt;
    else
        *out = (store_run_options){.layout = ACP_LAYOUT_LCP, .priority = ACP_PRIORITY_DEFAULT};
    if (!out->max_attempts)
        out->max_attempts = CONFIG_DEFAULT_MAX_ATTEMPTS;
    if (!out->backoff_base_ms)
        out->backoff_base_ms = CONFIG_DEFAULT_RETRY_BASE_MS;
    if (!out->backoff_max_ms)
        out->backoff_max_ms = CONFIG_DEFAULT_RETRY_MAX_MS;
}

bool store_jobs_matched(const PGresult *res)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return PQntuples(res) > 0;
    /* PQcmdTuples only reads: its parameter is not const for history. */
    return strcmp(PQcmdTuples((PGresult *)res), "0") != 0;
}

int store_jobs_found(const pgpool *pool, const char *what, const PGresult *res)
{
    return store_jobs_matched(res) ? 0 : pgpool_fail(pool, ACP_ENOTFOUND, "%s: no such job", what);
}

int store_jobs_by_id(pgpool *pool, const acp_job_id *id, bool repeatable, const char *what,
                     const char *sql, PGresult **out)
{
    if (out)
        *out = NULL;
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    PGresult *res;
    int rc = pgpool_query(pool, repeatable, what, sql, &p, &res);
    if (rc)
        return rc;
    rc = store_jobs_found(pool, what, res);
    if (rc || !out)
        PQclear(res);
    else
        *out = res;
    return rc;
}

int store_jobs_explain_miss(pgpool *pool, const acp_job_id *id, const char *what, int conflict_code,
                            const char *expected)
{
    PGresult *res;
    int rc = store_jobs_by_id(pool, id, true, what,
                              "SELECT status, queue, lease_owner FROM compute.jobs "
                              "WHERE job_id = $1::bytea",
                              &res);
    if (rc)
        return rc;
    rc = pgpool_fail(pool, conflict_code, "%s: the job is %s in queue '%s'%s%s, not %s", what,
                     PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                     PQgetisnull(res, 0, 2) ? "" : " leased by ",
                     PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2), expected);
    PQclear(res);
    return rc;
}

/* An UPDATE or DELETE of the job named "<verb> job <id>" in messages. */
static int store_jobs_change(pgpool *pool, const acp_job_id *id, const char *verb, bool repeatable,
                             const char *sql)
{
    char hex[ACP_JOB_ID_STRLEN], what[96];
    acp_job_id_format(id, hex);
    snprintf(what, sizeof what, "%s job %s", verb, hex);
    return store_jobs_by_id(pool, id, repeatable, what, sql, NULL);
}

_Static_assert(ACP_QUEUE_POSITION_MAX == 1000, "the LIMIT of store_jobs_get's position");

int store_jobs_get(store *base, const acp_job_id *id, store_job *out)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_get");
    if (!out)
        return error_set(ACP_EINVAL, "store_get: NULL argument");
    store_job_init(out);
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "get job %s", acp_job_id_format(id, hex));
    PGresult *res;
    /* The position counts the queued jobs of the same queue that the claim
     * takes before this one: of a higher priority, or of the same priority
     * and due earlier (a smaller id at the same instant, so that positions
     * are distinct). Two range scans of the claim's index, each of at most
     * ACP_QUEUE_POSITION_MAX rows, so that the cost does not grow with the
     * queue. */
    int rc = store_jobs_by_id(
        pool, id, true, what,
        "SELECT " PGVALUE_JOB_COLUMNS ", "
        "CASE WHEN j.status = 'queued' THEN least(1000, "
        " (SELECT count(*) FROM (SELECT 1 FROM compute.jobs q "
        "  WHERE q.queue = j.queue AND q.status = 'queued' AND q.priority > j.priority "
        "  LIMIT 1000) higher) + "
        " (SELECT count(*) FROM (SELECT 1 FROM compute.jobs q "
        "  WHERE q.queue = j.queue AND q.status = 'queued' AND q.priority = j.priority "
        "  AND (q.not_before, q.job_id) < (j.not_before, j.job_id) LIMIT 1000) earlier)) "
        "ELSE -1 END "
        "FROM compute.jobs j WHERE j.job_id = $1::bytea",
        &res);
    if (rc)
        return rc;
    rc = pgvalue_read_job(pool, res, 0, out);
    if (rc == 0)
        out->queue_position = (long)pgvalue_get_int64(res, 0, PGVALUE_JOB_COLUMN_COUNT);
    PQclear(res);
    if (rc)
        store_job_free(out);
    return rc;
}

int store_jobs_touch(store *base, const acp_job_id *id)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_touch");
    return store_jobs_change(
        pool, id, "touch", true,
        "UPDATE compute.jobs SET last_accessed = now() WHERE job_id = $1::bytea");
}

/* Insert or requeue: the statement @sql takes $1 id, $2 queue, $3 config,
 * $4 the input names, $5 the layout, $6 the input sizes (NULL when not
 * known), $7 the priority, $8 not_before (µs, 0: now), $9 max_attempts,
 * $10 timeout_seconds, $11 backoff_base_ms and $12 backoff_max_ms. @what
 * names the operation in messages. */
static int store_jobs_write_run(pgpool *pool, const acp_job_id *id, const char *queue,
                                const char *config, const char *const *inputs, size_t input_count,
                                const store_run_options *opt, const char *what, const char *sql,
                                PGresult **res)
{
    if (!queue)
        return pgpool_fail(pool, ACP_EINVAL, "%s: NULL queue", what);
    const char *layout = pgvalue_layout_name(opt ? opt->layout : ACP_LAYOUT_LCP);
    if (!layout)
        return pgpool_fail(pool, ACP_EINVAL, "%s: layout %d is neither native nor lcp", what,
                           (int)opt->layout);
    buf array = BUF_INIT, sizes = BUF_INIT;
    int rc = pgvalue_text_array(pool, what, inputs, input_count, &array);
    if (!rc)
        rc = pgvalue_size_array(pool, what, opt ? opt->input_sizes : NULL, input_count, &sizes);
    if (!rc) {
        pgpool_params p = {0};
        pgvalue_param_id(&p, id);
        pgvalue_param_text(&p, queue);
        pgvalue_param_text(&p, config);
        pgvalue_param_text(&p, array.data);
        pgvalue_param_text(&p, layout);
        pgvalue_param_text(&p, sizes.data);
        store_run_options fill;
        store_jobs_control_defaults(opt, &fill);
        char numbers[6][24];
        snprintf(numbers[0], sizeof numbers[0], "%d", fill.priority);
        snprintf(numbers[1], sizeof numbers[1], "%lld", (long long)fill.not_before);
        snprintf(numbers[2], sizeof numbers[2], "%u", fill.max_attempts);
        snprintf(numbers[3], sizeof numbers[3], "%u", fill.timeout_seconds);
        snprintf(numbers[4], sizeof numbers[4], "%u", fill.backoff_base_ms);
        snprintf(numbers[5], sizeof numbers[5], "%u", fill.backoff_max_ms);
        for (int i = 0; i < 6; i++)
            pgvalue_param_text(&p, numbers[i]);
        rc = pgpool_query(pool, false, what, sql, &p, res);
    }
    buf_free(&array);
    buf_free(&sizes);
    return rc;
}

int store_jobs_insert(store *base, const acp_job_id *id, const char *queue, const char *config,
                      const char *const *inputs, size_t input_count, const store_run_options *opt)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_insert");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "insert job %s", acp_job_id_format(id, hex));
    PGresult *res;
    /* DO NOTHING: an existing row is left as it is and the answer says so
     * (no row inserted), without a look-up before or after. */
    int rc = store_jobs_write_run(
        pool, id, queue, config, inputs, input_count, opt, what,
        "INSERT INTO compute.jobs (job_id, status, queue, config, input_files, layout, "
        "input_sizes, created, last_accessed, dispatched, priority, not_before, max_attempts, "
        "timeout_seconds, backoff_base_ms, backoff_max_ms) "
        "SELECT $1::bytea, 'queued', $2, $3, $4::varchar[], $5, $6::bigint[], now(), now(), "
        "CASE WHEN t.due <= now() THEN now() END, $7::int, t.due, $9::int, $10::int, $11::int, "
        "$12::int FROM (SELECT " STORE_JOBS_DUE_SQL " AS due) t "
        "ON CONFLICT (job_id) DO NOTHING RETURNING dispatched IS NOT NULL",
        &res);
    if (rc)
        return rc;
    bool inserted = store_jobs_matched(res);
    bool due = inserted && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!inserted)
        return pgpool_fail(pool, ACP_ECONFLICT, "job %s already exists", hex);
    return due ? 0 : 1;
}

int store_jobs_requeue(store *base, const acp_job_id *id, const char *queue, const char *config,
                       const char *const *inputs, size_t input_count, const store_run_options *opt)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_requeue");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "requeue job %s", acp_job_id_format(id, hex));
    PGresult *res;
    /* The old outputs are gone with a re-run, so output_files and their
     * sizes go too, and so does the old log: the new run's starts at 0. */
    int rc = store_jobs_write_run(
        pool, id, queue, config, inputs, input_count, opt, what,
        "WITH logs AS (DELETE FROM compute.job_logs WHERE job_id = $1::bytea AND EXISTS ("
        "  SELECT 1 FROM compute.jobs WHERE job_id = $1::bytea "
        "  AND status IN ('complete', 'failed', 'expired', 'cancelled'))) "
        "UPDATE compute.jobs SET status = 'queued', queue = $2, config = $3, "
        "input_files = $4::varchar[], layout = $5, input_sizes = $6::bigint[], "
        "last_accessed = now(), grabbed = NULL, "
        "finished = NULL, error = NULL, lease_owner = NULL, lease_expires = NULL, "
        "dispatched = CASE WHEN t.due <= now() THEN now() END, dispatch_failures = 0, "
        "dispatch_retry = NULL, output_files = NULL, output_sizes = NULL, attempts = 0, "
        "priority = $7::int, not_before = t.due, max_attempts = $9::int, "
        "timeout_seconds = $10::int, backoff_base_ms = $11::int, backoff_max_ms = $12::int, "
        "cancel_requested = NULL, log_size = 0, log_head = NULL, progress_done = NULL, "
        "progress_total = NULL, progress_text = NULL, progress_updated = NULL "
        "FROM (SELECT " STORE_JOBS_DUE_SQL " AS due) t "
        "WHERE job_id = $1::bytea AND status IN ('complete', 'failed', 'expired', 'cancelled') "
        "RETURNING dispatched IS NOT NULL",
        &res);
    if (rc)
        return rc;
    bool updated = store_jobs_matched(res);
    bool due = updated && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (updated)
        return due ? 0 : 1;
    return store_jobs_explain_miss(pool, id, what, ACP_ECONFLICT,
                                   "complete, failed, expired or cancelled");
}

int store_jobs_mark_dispatched(store *base, const acp_job_id *id)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_mark_dispatched");
    return store_jobs_change(pool, id, "mark dispatched", true,
                             "UPDATE compute.jobs SET dispatched = now(), dispatch_failures = 0, "
                             "dispatch_retry = NULL WHERE job_id = $1::bytea");
}

int store_jobs_clear_dispatched(store *base, const acp_job_id *id)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_clear_dispatched");
    return store_jobs_change(pool, id, "clear dispatched", true,
                             "UPDATE compute.jobs SET dispatched = NULL WHERE job_id = $1::bytea");
}

int store_jobs_dispatch_failed(store *base, const acp_job_id *id)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_dispatch_failed");
    /* 1, 2, 4 ... seconds up to the cap: a broker outage is retried soon,
     * a job no broker takes does not crowd the batches of the others. */
    return store_jobs_change(pool, id, "record failed dispatch of", false,
                             "UPDATE compute.jobs SET dispatched = NULL, dispatch_retry = now() + "
                             "make_interval(secs => least(power(2, least(dispatch_failures, "
                             "16)), " STORE_JOBS_BACKOFF_MAX
                             ")), dispatch_failures = dispatch_failures + 1 "
                             "WHERE job_id = $1::bytea");
}

int store_jobs_fail_undispatchable(store *base, const acp_job_id *id, const char *message)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_fail_undispatchable");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "fail undispatchable job %s", acp_job_id_format(id, hex));
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    pgvalue_param_text(&p, message);
    PGresult *res;
    int rc =
        pgpool_query(pool, false, what,
                     "UPDATE compute.jobs SET status = 'failed', finished = now(), error = $2, "
                     "dispatched = NULL, dispatch_retry = NULL "
                     "WHERE job_id = $1::bytea AND status = 'queued'",
                     &p, &res);
    if (rc)
        return rc;
    bool updated = store_jobs_matched(res);
    PQclear(res);
    return updated ? 0 : store_jobs_explain_miss(pool, id, what, ACP_ECONFLICT, "queued");
}

int store_jobs_finish(store *base, const acp_job_id *id, const char *owner, acp_job_status status,
                      const char *message, const char *const *outputs, const uint64_t *output_sizes,
                      size_t output_count)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_finish");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "finish job %s", acp_job_id_format(id, hex));
    if (!owner)
        return pgpool_fail(pool, ACP_EINVAL, "%s: NULL owner", what);
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    pgvalue_param_text(&p, owner);
    buf names = BUF_INIT, sizes = BUF_INIT;
    PGresult *res;
    int rc = pgvalue_param_run_end(pool, what, &p, &names, &sizes, status, message, outputs,
                                   output_sizes, output_count);
    if (!rc)
        rc =
            pgpool_query(pool, false, what,
                         "UPDATE compute.jobs SET status = $3, finished = now(), error = $4, "
                         "output_files = $5::varchar[], output_sizes = $6::bigint[], "
                         "lease_owner = NULL, lease_expires = NULL "
                         "WHERE job_id = $1::bytea AND status = 'in-progress' AND lease_owner = $2",
                         &p, &res);
    buf_free(&names);
    buf_free(&sizes);
    if (rc)
        return rc;
    bool updated = store_jobs_matched(res);
    PQclear(res);
    if (updated)
        return 0;
    char expected[PGPOOL_MESSAGE_MAX / 2];
    snprintf(expected, sizeof expected, "in-progress leased by %s", owner);
    rc = store_jobs_explain_miss(pool, id, what, ACP_ECONFLICT, expected);
    /* Deleted meanwhile: still "no longer holds the lease" for the caller. */
    return rc == ACP_ENOTFOUND ? ACP_ECONFLICT : rc;
}

int store_jobs_delete(store *base, const acp_job_id *id)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_delete");
    return store_jobs_change(pool, id, "delete", false,
                             "WITH logs AS (DELETE FROM compute.job_logs WHERE job_id = $1::bytea) "
                             "DELETE FROM compute.jobs WHERE job_id = $1::bytea");
}
