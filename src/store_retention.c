/* Expiring, deleting and recording a run: transactions that hold the row
 * lock while the caller works on S3; and the pruner's list. See store.h for
 * each contract. */
#include "store_retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "pgpool.h"
#include "pgvalue.h"
#include "store_jobs.h"

typedef struct store_retention_tx {
    struct store_tx base; /* base.st is the pgpool */
    PGconn *conn;
    char what[64]; /* "expire job <id>", the prefix of its messages */
} store_retention_tx;

/* The statements of the *_begin functions share one shape: lock the row
 * (FOR UPDATE in a CTE evaluated once, before the change: waiting for a
 * concurrent change, it re-reads the row), change it when it qualifies, and
 * answer (status before, changed, last_accessed, lease_owner), or nothing
 * when there is no row. So the verdict takes no second statement, and
 * nothing can change the row between the verdict and the change. */
#define STORE_RETENTION_LOCK_ROW                                                                   \
    "WITH old AS MATERIALIZED ("                                                                   \
    "  SELECT job_id, status, last_accessed, lease_owner FROM compute.jobs"                        \
    "  WHERE job_id = $1::bytea FOR UPDATE), "                                                     \
    "changed AS ("
#define STORE_RETENTION_VERDICT                                                                    \
    ") SELECT old.status, EXISTS (SELECT 1 FROM changed), "                                        \
    "(extract(epoch FROM old.last_accessed) * 1000000)::bigint, old.lease_owner FROM old"

/* A transaction handle holding a borrowed connection; nothing begun yet. */
static int store_retention_tx_new(pgpool *pool, const char *what, store_retention_tx **out)
{
    store_retention_tx *tx = calloc(1, sizeof *tx);
    if (!tx)
        return pgpool_fail(pool, ACP_ENOMEM, "%s: out of memory", what);
    tx->base.st = &pool->base;
    snprintf(tx->what, sizeof tx->what, "%s", what);
    int rc = pgpool_borrow(pool, what, &tx->conn);
    if (rc) {
        free(tx);
        return rc;
    }
    *out = tx;
    return 0;
}

/* Gives the connection back (pgpool_give_back rolls back what is open) and
 * frees @tx. */
static void store_retention_tx_drop(pgpool *pool, store_retention_tx *tx)
{
    pgpool_give_back(pool, tx->conn);
    free(tx);
}

typedef struct store_retention_begin {
    const char *what, *sql;
    const pgpool_params *params;
    PGresult *res;
} store_retention_begin;

static int store_retention_begin_once(pgpool *pool, PGconn *conn, void *arg)
{
    store_retention_begin *begin = arg;
    PGresult *res;
    int rc = pgpool_exec(pool, conn, false, begin->what, "BEGIN", NULL, &res);
    if (rc)
        return rc;
    PQclear(res);
    return pgpool_exec(pool, conn, false, begin->what, begin->sql, begin->params, &begin->res);
}

/* The verdict row of a *_begin statement as a return code. */
static int store_retention_judge(const pgpool *pool, const char *what, const PGresult *res,
                                 const char *rule, acp_job_status *previous)
{
    int rc = store_jobs_found(pool, what, res);
    if (rc)
        return rc;
    const char *status = PQgetvalue(res, 0, 0);
    acp_job_status before;
    if (pgvalue_status_parse(status, &before) != 0)
        return pgpool_fail(pool, ACP_EDB, "%s: the job has an unknown status '%s'", what, status);
    if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        if (previous)
            *previous = before;
        return 0;
    }
    if (before == ACP_STATUS_IN_PROGRESS)
        return pgpool_fail(pool, ACP_EBUSY, "%s: the job is in-progress%s%s", what,
                           PQgetisnull(res, 0, 3) ? "" : ", leased by ",
                           PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3));
    char accessed[64];
    pgvalue_format_time(pgvalue_get_int64(res, 0, 2), accessed, sizeof accessed);
    return pgpool_fail(pool, ACP_ECONFLICT, "%s: the job is %s, last accessed %s; %s", what, status,
                       accessed, rule);
}

/* Borrow a connection and run BEGIN and @sql (a STORE_RETENTION_LOCK_ROW statement).
 * 0 with *@out open when the row changed; otherwise the verdict's code, with
 * the transaction rolled back and the connection given back. */
static int store_retention_tx_begin(pgpool *pool, const char *what, const char *sql,
                                    const pgpool_params *params, const char *rule, store_tx **out,
                                    acp_job_status *previous)
{
    store_retention_tx *tx;
    int rc = store_retention_tx_new(pool, what, &tx);
    if (rc)
        return rc;
    store_retention_begin begin = {what, sql, params, NULL};
    rc = pgpool_run_tx(pool, tx->conn, what, store_retention_begin_once, &begin);
    if (rc == 0) {
        rc = store_retention_judge(pool, what, begin.res, rule, previous);
        PQclear(begin.res);
    }
    if (rc) {
        store_retention_tx_drop(pool, tx);
        return rc;
    }
    *out = &tx->base;
    return 0;
}

int store_retention_expire_begin(store *base, const acp_job_id *id,
                                 int64_t complete_accessed_before, store_tx **tx,
                                 acp_job_status *previous)
{
    pgpool *pool = pgpool_of(base);
    if (tx)
        *tx = NULL;
    STORE_JOBS_CHECK(pool, id, "store_expire_begin");
    if (!tx)
        return error_set(ACP_EINVAL, "store_expire_begin: NULL argument");
    char hex[ACP_JOB_ID_STRLEN], what[64], rule[128] = "it cannot be expired";
    snprintf(what, sizeof what, "expire job %s", acp_job_id_format(id, hex));
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    if (complete_accessed_before) {
        int rc = pgvalue_param_time(pool, &p, what, complete_accessed_before);
        if (rc)
            return rc;
        char cutoff[64];
        pgvalue_format_time(complete_accessed_before, cutoff, sizeof cutoff);
        snprintf(rule, sizeof rule, "the pruner expires complete jobs last accessed before %s",
                 cutoff);
    } else {
        pgvalue_param_text(&p, NULL);
    }
    return store_retention_tx_begin(
        pool, what,
        STORE_RETENTION_LOCK_ROW
        "UPDATE compute.jobs j SET status = 'expired', lease_owner = NULL, "
        "lease_expires = NULL "
        "FROM old WHERE j.job_id = old.job_id AND old.status <> 'in-progress' "
        "AND ($2::timestamptz IS NULL OR (old.status = 'complete' "
        "AND old.last_accessed < $2::timestamptz)) "
        "RETURNING j.job_id), "
        "logs AS (DELETE FROM compute.job_logs l USING changed c WHERE l.job_id = "
        "c.job_id" STORE_RETENTION_VERDICT,
        &p, rule, tx, previous);
}

int store_retention_delete_begin(store *base, const acp_job_id *id, store_tx **tx)
{
    pgpool *pool = pgpool_of(base);
    if (tx)
        *tx = NULL;
    STORE_JOBS_CHECK(pool, id, "store_delete_begin");
    if (!tx)
        return error_set(ACP_EINVAL, "store_delete_begin: NULL argument");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "delete job %s", acp_job_id_format(id, hex));
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    return store_retention_tx_begin(pool, what,
                                    STORE_RETENTION_LOCK_ROW
                                    "DELETE FROM compute.jobs j USING old "
                                    "WHERE j.job_id = old.job_id "
                                    "AND old.status <> 'in-progress' "
                                    "RETURNING j.job_id), "
                                    "logs AS (DELETE FROM compute.job_logs l USING changed c "
                                    "WHERE l.job_id = c.job_id" STORE_RETENTION_VERDICT,
                                    &p, "it cannot be deleted", tx, NULL);
}

int store_retention_tx_end(store_tx *base, bool commit)
{
    store_retention_tx *tx = (store_retention_tx *)base;
    if (!tx)
        return 0;
    pgpool *pool = pgpool_of(tx->base.st);
    char what[96];
    snprintf(what, sizeof what, "%s: %s", tx->what, commit ? "commit" : "rollback");
    PGresult *res;
    int rc = pgpool_exec(pool, tx->conn, false, what, commit ? "COMMIT" : "ROLLBACK", NULL, &res);
    if (rc == 0) {
        /* The server answers COMMIT of a failed transaction with ROLLBACK. */
        if (commit && strcmp(PQcmdStatus(res), "COMMIT") != 0)
            rc = pgpool_fail(pool, ACP_EDB, "%s: the transaction was rolled back", what);
        PQclear(res);
    } else if (!commit && PQstatus(tx->conn) == CONNECTION_BAD) {
        rc = 0; /* the transaction died with its connection: rolled back */
    }
    store_retention_tx_drop(pool, tx);
    return rc;
}

/* ---- recording a run: the row locked across the uploads ---------------- */

int store_retention_finish_begin(store *base, const acp_job_id *id, const char *owner,
                                 unsigned attempts, int64_t grabbed, store_tx **tx,
                                 acp_job_status *recorded)
{
    pgpool *pool = pgpool_of(base);
    if (tx)
        *tx = NULL;
    STORE_JOBS_CHECK(pool, id, "store_finish_begin");
    if (!tx || !owner || !recorded)
        return error_set(ACP_EINVAL, "store_finish_begin: NULL argument");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "record job %s", acp_job_id_format(id, hex));
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    store_retention_tx *t;
    int rc = store_retention_tx_new(pool, what, &t);
    if (rc)
        return rc;
    store_retention_begin begin = {what,
                                   "SELECT status, lease_owner, attempts, "
                                   "(extract(epoch FROM grabbed) * 1000000)::bigint "
                                   "FROM compute.jobs WHERE job_id = $1::bytea FOR UPDATE",
                                   &p, NULL};
    rc = pgpool_run_tx(pool, t->conn, what, store_retention_begin_once, &begin);
    if (rc == 0) {
        PGresult *res = begin.res;
        acp_job_status status = ACP_STATUS_QUEUED;
        bool found = store_jobs_matched(res);
        if (found && pgvalue_status_parse(PQgetvalue(res, 0, 0), &status) != 0)
            rc = pgpool_fail(pool, ACP_EDB, "%s: unknown status '%s'", what, PQgetvalue(res, 0, 0));
        bool same_claim = found && !PQgetisnull(res, 0, 3) &&
                          strtoul(PQgetvalue(res, 0, 2), NULL, 10) == attempts &&
                          pgvalue_get_int64(res, 0, 3) == grabbed;
        if (rc) {
            /* set above */
        } else if (found && status == ACP_STATUS_IN_PROGRESS && !PQgetisnull(res, 0, 1) &&
                   strcmp(PQgetvalue(res, 0, 1), owner) == 0) {
            rc = 0;
        } else if (same_claim && (status == ACP_STATUS_COMPLETE || status == ACP_STATUS_FAILED ||
                                  status == ACP_STATUS_CANCELLED)) {
            /* Only the lease owner finishes a claim, and a new claim or a
             * requeue changes attempts or grabbed: a COMMIT whose answer
             * was lost went through. */
            *recorded = status;
            rc = 1;
        } else {
            rc = pgpool_fail(pool, ACP_ECONFLICT, "%s: %s", what,
                             found ? "the job is no longer in-progress leased by this process"
                                   : "no such job");
        }
        PQclear(res);
    }
    if (rc) {
        store_retention_tx_drop(pool, t);
        return rc;
    }
    *tx = &t->base;
    return 0;
}

int store_retention_finish_tx(store_tx *base, acp_job_status status, const char *message,
                              const char *const *outputs, const uint64_t *output_sizes,
                              size_t output_count, const acp_job_id *id)
{
    store_retention_tx *tx = (store_retention_tx *)base;
    if (!tx || !id)
        return error_set(ACP_EINVAL, "store_finish_tx: NULL argument");
    pgpool *pool = pgpool_of(tx->base.st);
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    buf names = BUF_INIT, sizes = BUF_INIT;
    PGresult *res;
    int rc = pgvalue_param_run_end(pool, tx->what, &p, &names, &sizes, status, message, outputs,
                                   output_sizes, output_count);
    if (!rc)
        rc = pgpool_exec(pool, tx->conn, false, tx->what,
                         "WITH j AS (UPDATE compute.jobs SET status = $2, "
                         "finished = clock_timestamp(), "
                         "error = $3, output_files = $4::varchar[], output_sizes = $5::bigint[], "
                         "lease_owner = NULL, lease_expires = NULL "
                         "WHERE job_id = $1::bytea RETURNING job_id, log_size), "
                         "logs AS (DELETE FROM compute.job_logs l USING j "
                         "  WHERE l.job_id = j.job_id AND j.log_size > 0) "
                         "SELECT pg_notify('acp_log', encode(job_id, 'hex')) FROM j "
                         "WHERE log_size > 0",
                         &p, &res);
    buf_free(&names);
    buf_free(&sizes);
    if (rc == 0)
        PQclear(res);
    return rc;
}

int store_retention_delete_expired(store *base, const acp_job_id *id)
{
    pgpool *pool = pgpool_of(base);
    STORE_JOBS_CHECK(pool, id, "store_delete_expired");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "delete expired job %s", acp_job_id_format(id, hex));
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    PGresult *res;
    int rc = pgpool_query(
        pool, false, what,
        "WITH logs AS (DELETE FROM compute.job_logs WHERE job_id = $1::bytea AND EXISTS ("
        "  SELECT 1 FROM compute.jobs WHERE job_id = $1::bytea AND status = 'expired')) "
        "DELETE FROM compute.jobs WHERE job_id = $1::bytea AND status = 'expired'",
        &p, &res);
    if (rc)
        return rc;
    bool deleted = store_jobs_matched(res);
    PQclear(res);
    if (deleted)
        return 0;
    return store_jobs_explain_miss(pool, id, what, ACP_ECONFLICT, "expired");
}

#define STORE_RETENTION_EXPIRABLE(after)                                                           \
    "SELECT encode(job_id, 'hex') FROM compute.jobs "                                              \
    "WHERE status = 'complete' AND last_accessed < $1::timestamptz" after                          \
    " ORDER BY job_id LIMIT $2::bigint"

/* Served by jobs_complete_id_idx: a page reads complete jobs in id order
 * from @after until @limit qualify, so a pass over every page reads each
 * complete job once. */
int store_retention_list_expirable(store *base, int64_t before, const acp_job_id *after,
                                   size_t limit, acp_job_id **ids, size_t *count)
{
    pgpool *pool = pgpool_of(base);
    if (ids)
        *ids = NULL;
    if (count)
        *count = 0;
    if (!pool || !ids || !count)
        return error_set(ACP_EINVAL, "store_list_expirable: NULL argument");
    if (limit == 0)
        return 0;
    const char *what = "list expirable jobs";
    pgpool_params p = {0};
    int rc = pgvalue_param_time(pool, &p, what, before);
    if (rc)
        return rc;
    char max[24];
    snprintf(max, sizeof max, "%zu", limit);
    pgvalue_param_text(&p, max);
    if (after)
        pgvalue_param_id(&p, after);
    PGresult *res;
    rc = pgpool_query(pool, true, what,
                      after ? STORE_RETENTION_EXPIRABLE(" AND job_id > $3::bytea")
                            : STORE_RETENTION_EXPIRABLE(""),
                      &p, &res);
    if (rc)
        return rc;
    int rows = PQntuples(res);
    if (rows > 0) {
        *ids = calloc((size_t)rows, sizeof **ids);
        if (!*ids)
            rc = pgpool_fail(pool, ACP_ENOMEM, "%s: out of memory reading %d ids", what, rows);
    }
    for (int r = 0; rc == 0 && r < rows; r++)
        rc = pgvalue_get_id(pool, res, r, 0, &(*ids)[r]);
    PQclear(res);
    if (rc) {
        free(*ids);
        *ids = NULL;
        return rc;
    }
    *count = (size_t)rows;
    return 0;
}
