/* The schema of compute.jobs and its migrations: see store_migrate in
 * store.h for what they are. */
#include "schema.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pgvalue.h"

/* Key of the transaction-scoped advisory lock that serialises migrations
 * across processes: "acp-mig" in ASCII. */
#define SCHEMA_MIGRATION_LOCK "27412406190565735"

/* lib-compute-platform's migration 1.0.0 (docs/compatibility.adoc, database schema), applied when
 * the meta row 'version' is missing or lower, exactly as upstream's files 000, 001, 002 (including
 * its missing comma before the first CHECK) and 999. The version row is an upsert so a
 * half-migrated database recovers. */
static const char schema_upstream_version[] = "1.0.0";
static const char schema_upstream_sql[] =
    "CREATE SCHEMA IF NOT EXISTS compute;\n"
    "CREATE TABLE IF NOT EXISTS compute.meta (\n"
    "  key VARCHAR(32) PRIMARY KEY NOT NULL,\n"
    "  value VARCHAR(256) NOT NULL,\n"
    "  CONSTRAINT compute_meta_key_min_len CHECK ( length(key) > 2 )\n"
    ");\n"
    "CREATE TABLE IF NOT EXISTS compute.jobs (\n"
    "  job_id        BYTEA PRIMARY KEY NOT NULL,\n"
    "  status        VARCHAR(11) NOT NULL,\n"
    "  queue         VARCHAR(32) NOT NULL,\n"
    "  config        TEXT,\n"
    "  input_files   VARCHAR[] NOT NULL,\n"
    "  created       TIMESTAMP WITH TIME ZONE NOT NULL,\n"
    "  last_accessed TIMESTAMP WITH TIME ZONE NOT NULL,\n"
    "  grabbed       TIMESTAMP WITH TIME ZONE,\n"
    "  finished      TIMESTAMP WITH TIME ZONE,\n"
    "  output_files  VARCHAR[]\n"
    "  CONSTRAINT compute_job_id_min_len CHECK ( length(job_id) = 16 ),\n"
    "  CONSTRAINT compute_job_status_enum\n"
    "    CHECK ( status IN ('queued', 'in-progress', 'complete', 'failed', 'expired') )\n"
    ");\n"
    "INSERT INTO compute.meta (key, value) VALUES ('version', '1.0.0')\n"
    "  ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;\n";

/* Our own migrations, recorded as meta key 'acp_schema' = the number of the
 * last one applied. Append new entries; never edit an applied one. Each runs
 * in the same transaction as the version update, so it applies wholly or
 * not at all; IF NOT EXISTS keeps a repeat harmless anyway. */
typedef struct schema_migration {
    int number;
    const char *sql;
} schema_migration;

static const schema_migration schema_migrations[] = {
    {1, "ALTER TABLE compute.jobs\n"
        "  ADD COLUMN IF NOT EXISTS lease_owner TEXT,\n"
        "  ADD COLUMN IF NOT EXISTS lease_expires TIMESTAMP WITH TIME ZONE,\n"
        "  ADD COLUMN IF NOT EXISTS attempts INTEGER NOT NULL DEFAULT 0,\n"
        "  ADD COLUMN IF NOT EXISTS error TEXT,\n"
        "  ADD COLUMN IF NOT EXISTS dispatched TIMESTAMP WITH TIME ZONE;\n"
        "CREATE INDEX IF NOT EXISTS jobs_status_created_idx\n"
        "  ON compute.jobs (status, created);\n"
        "CREATE INDEX IF NOT EXISTS jobs_queue_status_created_idx\n"
        "  ON compute.jobs (queue, status, created);\n"},
    /* The indexes of store_list's keyset pages (one per filter shape: see
     * store_list) and of store_list_expirable. The first two of migration 1
     * are prefixes of the new ones, which serve their queries as well, and
     * every index costs each status change a write: they go. The pruner's
     * index holds no last_accessed, so store_touch can stay a HOT update. */
    {2, "CREATE INDEX IF NOT EXISTS jobs_created_id_idx\n"
        "  ON compute.jobs (created, job_id);\n"
        "CREATE INDEX IF NOT EXISTS jobs_status_created_id_idx\n"
        "  ON compute.jobs (status, created, job_id);\n"
        "CREATE INDEX IF NOT EXISTS jobs_queue_status_created_id_idx\n"
        "  ON compute.jobs (queue, status, created, job_id);\n"
        "CREATE INDEX IF NOT EXISTS jobs_complete_id_idx\n"
        "  ON compute.jobs (job_id) WHERE status = 'complete';\n"
        "DROP INDEX IF EXISTS compute.jobs_status_created_idx;\n"
        "DROP INDEX IF EXISTS compute.jobs_queue_status_created_idx;\n"},
    /* Re-dispatch back-off: failed publishes in a row, and when the next
     * attempt is due (see store_dispatch_failed). */
    {3, "ALTER TABLE compute.jobs\n"
        "  ADD COLUMN IF NOT EXISTS dispatch_failures INTEGER NOT NULL DEFAULT 0,\n"
        "  ADD COLUMN IF NOT EXISTS dispatch_retry TIMESTAMP WITH TIME ZONE;\n"},
    /* The native layout (store_run_options): the layout a run was created
     * under (rows from before it are lcp runs), the sizes of its input and
     * result files so that the row alone says which objects exist, and this
     * database's random identity (store_identity_read), made once. The
     * constraint has no IF NOT EXISTS: a DO block adds it unless present. */
    {4, "ALTER TABLE compute.jobs\n"
        "  ADD COLUMN IF NOT EXISTS layout TEXT NOT NULL DEFAULT 'lcp',\n"
        "  ADD COLUMN IF NOT EXISTS input_sizes BIGINT[],\n"
        "  ADD COLUMN IF NOT EXISTS output_sizes BIGINT[];\n"
        "DO $$ BEGIN\n"
        "  IF NOT EXISTS (SELECT 1 FROM pg_constraint\n"
        "      WHERE conname = 'compute_job_layout_enum'\n"
        "      AND conrelid = 'compute.jobs'::regclass) THEN\n"
        "    ALTER TABLE compute.jobs ADD CONSTRAINT compute_job_layout_enum\n"
        "      CHECK ( layout IN ('native', 'lcp') );\n"
        "  END IF;\n"
        "END $$;\n"
        "INSERT INTO compute.meta (key, value)\n"
        "  VALUES ('acp_database_id', gen_random_uuid()::text)\n"
        "  ON CONFLICT (key) DO NOTHING;\n"},
    /* Job control (store.h, store_migrate): the columns, the status
     * 'cancelled', and two partial indexes over queued rows only, which
     * stay as small as the queues: the claim's order (and the queue
     * position's ranges) and the due undispatched jobs. Queued rows from
     * before keep their order: they are due since they were created. */
    {5, "ALTER TABLE compute.jobs\n"
        "  ADD COLUMN IF NOT EXISTS priority INTEGER NOT NULL DEFAULT 50,\n"
        "  ADD COLUMN IF NOT EXISTS not_before TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now(),\n"
        "  ADD COLUMN IF NOT EXISTS max_attempts INTEGER NOT NULL DEFAULT 3,\n"
        "  ADD COLUMN IF NOT EXISTS timeout_seconds INTEGER NOT NULL DEFAULT 0,\n"
        "  ADD COLUMN IF NOT EXISTS backoff_base_ms INTEGER NOT NULL DEFAULT 1000,\n"
        "  ADD COLUMN IF NOT EXISTS backoff_max_ms INTEGER NOT NULL DEFAULT 300000,\n"
        "  ADD COLUMN IF NOT EXISTS cancel_requested TIMESTAMP WITH TIME ZONE;\n"
        "UPDATE compute.jobs SET not_before = created WHERE status = 'queued';\n"
        "ALTER TABLE compute.jobs DROP CONSTRAINT IF EXISTS compute_job_status_enum;\n"
        "ALTER TABLE compute.jobs ADD CONSTRAINT compute_job_status_enum\n"
        "  CHECK ( status IN ('queued', 'in-progress', 'complete', 'failed', 'expired',\n"
        "                     'cancelled') );\n"
        "CREATE INDEX IF NOT EXISTS jobs_claim_idx\n"
        "  ON compute.jobs (queue, priority DESC, not_before, job_id) WHERE status = 'queued';\n"
        "CREATE INDEX IF NOT EXISTS jobs_due_idx\n"
        "  ON compute.jobs (not_before) WHERE status = 'queued' AND dispatched IS NULL;\n"},
    /* Progress and logs (docs/guide.adoc): the latest progress report of
     * the attempt; the length of the job's log stream and the head of its
     * cap; the live copy of the log in chunks, keyed by the stream offset
     * of their first byte (bounded per job by config.log_cap_bytes). No
     * foreign key: TRUNCATE compute.jobs keeps working; the statements that
     * delete or expire a job delete its chunks. */
    {6, "ALTER TABLE compute.jobs\n"
        "  ADD COLUMN IF NOT EXISTS progress_done BIGINT,\n"
        "  ADD COLUMN IF NOT EXISTS progress_total BIGINT,\n"
        "  ADD COLUMN IF NOT EXISTS progress_text TEXT,\n"
        "  ADD COLUMN IF NOT EXISTS progress_updated TIMESTAMP WITH TIME ZONE,\n"
        "  ADD COLUMN IF NOT EXISTS log_size BIGINT NOT NULL DEFAULT 0,\n"
        "  ADD COLUMN IF NOT EXISTS log_head BIGINT;\n"
        "CREATE TABLE IF NOT EXISTS compute.job_logs (\n"
        "  job_id BYTEA NOT NULL,\n"
        "  pos    BIGINT NOT NULL,\n"
        "  data   BYTEA NOT NULL,\n"
        "  PRIMARY KEY (job_id, pos)\n"
        ");\n"},
    /* A development build's migration 6 tied compute.job_logs to
     * compute.jobs with a foreign key, which made TRUNCATE compute.jobs
     * fail: it goes wherever it was made. */
    {7, "ALTER TABLE compute.job_logs DROP CONSTRAINT IF EXISTS job_logs_job_id_fkey;\n"},
};

#define SCHEMA_MIGRATION_COUNT (sizeof schema_migrations / sizeof schema_migrations[0])

/* One attempt at the migration transaction on @conn. */
static int schema_migrate_once(pgpool *pool, PGconn *conn, void *arg)
{
    (void)arg;
    const char *what = "schema migration";
    PGresult *res;
    int rc =
        pgpool_exec(pool, conn, false, what,
                    "BEGIN; SELECT pg_advisory_xact_lock(" SCHEMA_MIGRATION_LOCK ")", NULL, &res);
    if (rc)
        return rc;
    PQclear(res);

    /* Under the lock: what a concurrent starter committed is visible now. */
    rc = pgpool_exec(pool, conn, false, what, "SELECT to_regclass('compute.meta') IS NOT NULL",
                     NULL, &res);
    if (rc)
        return rc;
    bool have_meta = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);

    char upstream[257] = "0.0.0";
    long ours = 0;
    if (have_meta) {
        rc = pgpool_exec(pool, conn, false, what,
                         "SELECT (SELECT value FROM compute.meta WHERE key = 'version'), "
                         "(SELECT value FROM compute.meta WHERE key = 'acp_schema')",
                         NULL, &res);
        if (rc)
            return rc;
        if (!PQgetisnull(res, 0, 0))
            snprintf(upstream, sizeof upstream, "%s", PQgetvalue(res, 0, 0));
        if (!PQgetisnull(res, 0, 1)) {
            const char *text = PQgetvalue(res, 0, 1);
            char *end;
            errno = 0;
            ours = strtol(text, &end, 10);
            if (errno || end == text || *end || ours < 0) {
                rc = pgpool_fail(pool, ACP_EDB,
                                 "%s: compute.meta has acp_schema '%s', not a number", what, text);
                PQclear(res);
                return rc;
            }
        }
        PQclear(res);
    }

    /* Upstream compares versions as plain strings; so do we. */
    if (strcmp(upstream, schema_upstream_version) < 0) {
        rc = pgpool_exec(pool, conn, false, "lib-compute-platform schema 1.0.0",
                         schema_upstream_sql, NULL, &res);
        if (rc)
            return rc;
        PQclear(res);
        log_info(&pool->log, "%s: applied lib-compute-platform schema %s", pool->where,
                 schema_upstream_version);
    }

    long latest = schema_migrations[SCHEMA_MIGRATION_COUNT - 1].number;
    if (ours > latest)
        log_warn(&pool->log,
                 "%s: database schema acp_schema %ld is newer than this library's %ld; "
                 "leaving it alone",
                 pool->where, ours, latest);
    for (size_t i = 0; i < SCHEMA_MIGRATION_COUNT; i++) {
        const schema_migration *m = &schema_migrations[i];
        if (m->number <= ours)
            continue;
        char step[64], number[24];
        snprintf(step, sizeof step, "schema migration acp %d", m->number);
        rc = pgpool_exec(pool, conn, false, step, m->sql, NULL, &res);
        if (rc)
            return rc;
        PQclear(res);
        snprintf(number, sizeof number, "%d", m->number);
        pgpool_params p = {0};
        pgvalue_param_text(&p, number);
        rc = pgpool_exec(pool, conn, false, step,
                         "INSERT INTO compute.meta (key, value) VALUES ('acp_schema', $1) "
                         "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                         &p, &res);
        if (rc)
            return rc;
        PQclear(res);
        log_info(&pool->log, "%s: applied schema migration acp %d", pool->where, m->number);
    }

    rc = pgpool_exec(pool, conn, false, what, "COMMIT", NULL, &res);
    if (rc)
        return rc;
    PQclear(res);
    return 0;
}

int schema_migrate(pgpool *pool)
{
    PGconn *conn;
    int rc = pgpool_borrow(pool, "schema migration", &conn);
    if (rc)
        return rc;
    rc = pgpool_run_tx(pool, conn, "schema migration", schema_migrate_once, NULL);
    pgpool_give_back(pool, conn);
    return rc;
}
