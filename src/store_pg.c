/* PostgreSQL, the store's real implementation (store_ops "postgres"):
 * opens the pool and migrates the schema, and puts the statements of
 * store_jobs, store_batch, store_retention and store_listing in one table.
 * The pool (pgpool) is the handle. */
#include "store_pg.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "log.h"
#include "pgpool.h"
#include "schema.h"
#include "store_batch.h"
#include "store_control.h"
#include "store_jobs.h"
#include "store_listing.h"
#include "store_retention.h"

static void store_pg_close(store *st)
{
    pgpool_close(pgpool_of(st));
}

/* The system identifier is readable only by roles that may execute
 * pg_control_system(), which an administrator can revoke. The privilege is
 * checked in the same statement, and the call goes through query_to_xml:
 * a direct call, even in a CASE branch never taken, is checked for
 * permission when the statement starts and fails it, where query_to_xml
 * runs its query only when evaluated. Other roles get NULL, not an error. */
static int store_pg_identity_read(store *st, store_identity *out)
{
    pgpool *pool = pgpool_of(st);
    const char *what = "read the database identity";
    PGresult *res;
    int rc = pgpool_query(
        pool, true, what,
        "SELECT (SELECT value FROM compute.meta WHERE key = 'acp_database_id'), "
        "CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE') "
        "THEN substring(query_to_xml('SELECT system_identifier "
        "FROM pg_catalog.pg_control_system()', false, true, '')::text "
        "FROM '<system_identifier>([0-9]+)</system_identifier>') END",
        NULL, &res);
    if (rc)
        return rc;
    if (PQgetisnull(res, 0, 0) || !*PQgetvalue(res, 0, 0)) {
        PQclear(res);
        return pgpool_fail(pool, ACP_EDB,
                           "%s: compute.meta has no acp_database_id (schema migration 4 missing)",
                           what);
    }
    buf name = BUF_INIT;
    out->database_id = strdup(PQgetvalue(res, 0, 0));
    if (!PQgetisnull(res, 0, 1))
        out->system_id = strdup(PQgetvalue(res, 0, 1));
    rc = buf_printf(&name, "%s:%s/%s", pool->host, pool->port, pool->dbname);
    out->name = name.data;
    if (!rc && (!out->database_id || (!PQgetisnull(res, 0, 1) && !out->system_id)))
        rc = ACP_ENOMEM;
    PQclear(res);
    if (rc) {
        store_identity_free(out);
        return pgpool_fail(pool, ACP_ENOMEM, "%s: out of memory", what);
    }
    return 0;
}

static uint64_t store_pg_statement_count(const store *st)
{
    return pgpool_statement_count((const pgpool *)st);
}

const store_ops store_pg_ops = {
    .name = "postgres",
    .close = store_pg_close,
    .get = store_jobs_get,
    .touch = store_jobs_touch,
    .insert = store_jobs_insert,
    .requeue = store_jobs_requeue,
    .mark_dispatched = store_jobs_mark_dispatched,
    .clear_dispatched = store_jobs_clear_dispatched,
    .dispatch_failed = store_jobs_dispatch_failed,
    .fail_undispatchable = store_jobs_fail_undispatchable,
    .claim = store_control_claim,
    .retry = store_control_retry,
    .cancel = store_control_cancel,
    .finish = store_jobs_finish,
    .renew_leases = store_control_renew_leases,
    .requeue_expired = store_batch_requeue_expired,
    .fail_abandoned = store_batch_fail_abandoned,
    .take_undispatched = store_batch_take_undispatched,
    .delete_job = store_jobs_delete,
    .expire_begin = store_retention_expire_begin,
    .delete_begin = store_retention_delete_begin,
    .finish_begin = store_retention_finish_begin,
    .finish_tx = store_retention_finish_tx,
    .tx_end = store_retention_tx_end,
    .delete_expired = store_retention_delete_expired,
    .list_expirable = store_retention_list_expirable,
    .list = store_listing_list,
    .exists = store_listing_exists,
    .runs_alive = store_listing_runs_alive,
    .statement_count = store_pg_statement_count,
    .identity_read = store_pg_identity_read,
    .count_queued = store_listing_count_queued,
    .count_jobs = store_listing_count_jobs,
};

int store_open(store **out, const acp_db_config *cfg, const logger *log)
{
    if (!out || !cfg)
        return error_set(ACP_EINVAL, "store_open: NULL argument");
    *out = NULL;
    pgpool *pool;
    int rc = pgpool_open(&pool, cfg, log);
    if (rc)
        return rc;
    pool->base.ops = &store_pg_ops;
    rc = schema_migrate(pool);
    if (rc) {
        pgpool_close(pool);
        return rc;
    }
    log_info(&pool->log, "%s: connected to database %s as %s (pool of %zu)", pool->where,
             pool->dbname, pool->user, pool->pool_size);
    *out = &pool->base;
    return 0;
}

int store_migrate(store *st)
{
    if (!st)
        return error_set(ACP_EINVAL, "store_migrate: NULL store");
    if (st->ops != &store_pg_ops)
        return error_set(ACP_EINVAL, "store_migrate: the %s store has no schema to migrate",
                         st->ops->name);
    return schema_migrate(pgpool_of(st));
}
