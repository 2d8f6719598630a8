/* PostgreSQL, the store's real implementation (store_ops "postgres"): the
 * connection pool, the schema migrations and every SQL statement of the
 * platform. See store.h for the contract.
 *
 * Connection loss. A pooled connection can die while idle (server restart,
 * pg_terminate_backend, idle_session_timeout) or during a statement. Before
 * a borrowed connection is used it is checked: a bad status, or any input
 * waiting on an idle session (a live idle session sends nothing; a dying one
 * sends its FATAL notice and closes), gets it reset first, with a short
 * bounded back-off. That makes the idle case transparent for every call.
 * When a connection breaks during a statement the server may or may not
 * have committed it, so only statements that are safe to repeat are reset
 * and retried once:
 *   repeated:     store_get, store_touch, store_mark_dispatched,
 *                 store_clear_dispatched, store_renew_leases, store_migrate,
 *                 store_finish_begin (BEGIN and its locking read)
 *                 (the whole transaction), and the read-only follow-up
 *                 checks of the others;
 *   not repeated: store_insert (a repeat would report a false conflict),
 *                 store_dispatch_failed (a repeat would double the wait),
 *                 store_fail_undispatchable (a false conflict),
 *                 store_requeue, store_claim, store_finish (a repeat would
 *                 find its own change and report a conflict), store_delete
 *                 and store_delete_expired (a false "not found"),
 *                 store_requeue_expired, store_fail_abandoned and
 *                 store_take_undispatched (the rows of the lost answer would
 *                 be changed but never returned), and the COMMIT of
 *                 store_tx_end.
 * Those fail with ACP_EDB saying the outcome is unknown; the next call gets
 * a fresh connection. store_list, store_list_expirable, store_exists and
 * store_runs_alive only read, so they are repeated. A lost transaction is a rolled-back one, so the
 * *_begin functions repeat BEGIN and their statement as a whole, and a
 * ROLLBACK whose connection is lost has done its job. */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "clock.h"

#define STORE_APPLICATION_NAME "async-platform"
/* Seconds per address tried: generous, since a busy server may take a while
 * to start a backend for a pool that grows under load. */
#define STORE_CONNECT_TIMEOUT "10"
/* Key of the transaction-scoped advisory lock that serialises migrations
 * across processes: "acp-mig" in ASCII. */
#define STORE_MIGRATION_LOCK "27412406190565735"
#define STORE_MESSAGE_MAX    768
#define STORE_PARAMS_MAX     8
/* Seconds: the longest wait before publishing a job's message again after
 * failed attempts. */
#define STORE_DISPATCH_BACKOFF_MAX "60"

/* ------------------------------------------------------------------------ */
/* Schema                                                                   */
/* ------------------------------------------------------------------------ */

/* lib-compute-platform's migration 1.0.0 (docs/compatibility.adoc, database schema), applied when the
 * meta row 'version' is missing or lower, exactly as upstream's files 000,
 * 001, 002 (including its missing comma before the first CHECK) and 999.
 * The version row is an upsert so a half-migrated database recovers. */
static const char store_upstream_version[] = "1.0.0";
static const char store_upstream_sql[] =
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
typedef struct store_migration {
    int number;
    const char *sql;
} store_migration;

static const store_migration store_migrations[] = {
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
};

#define STORE_MIGRATION_COUNT (sizeof store_migrations / sizeof store_migrations[0])

/* The columns of a store_job, in the order store_read_job expects. Times as
 * whole microseconds since the epoch; input_files as JSON so that any name
 * survives the round trip without a hand-written array parser. */
#define STORE_JOB_COLUMNS                                                                          \
    "encode(job_id, 'hex'), status, queue, config, array_to_json(input_files)::text, "             \
    "(extract(epoch FROM created) * 1000000)::bigint, "                                            \
    "(extract(epoch FROM last_accessed) * 1000000)::bigint, "                                      \
    "(extract(epoch FROM grabbed) * 1000000)::bigint, "                                            \
    "(extract(epoch FROM finished) * 1000000)::bigint, error, attempts"
#define STORE_JOB_COLUMN_COUNT 11

/* ------------------------------------------------------------------------ */
/* The store and its pool                                                   */
/* ------------------------------------------------------------------------ */

/* The PostgreSQL store's handle: the store_* dispatchers see its base. */
typedef struct pgstore {
    struct store base;
    char *host, *dbname, *user, *password;
    char port[8];
    char *where; /* "postgres <host>:<port>", the prefix of every message */
    logger log;

    pthread_mutex_t lock;
    pthread_cond_t available;
    PGconn **idle; /* pool_size slots; the first idle_count are usable */
    size_t idle_count;
    size_t open_count; /* connections that exist or are being opened */
    size_t pool_size;
    atomic_uint_least64_t statements; /* sent to the server, for acp_get_stats */
} pgstore;

typedef struct store_params {
    int count;
    const char *values[STORE_PARAMS_MAX];
    int lengths[STORE_PARAMS_MAX];
    int formats[STORE_PARAMS_MAX];
    unsigned char binary[STORE_PARAMS_MAX][8]; /* the bytes of binary numbers */
} store_params;

typedef struct pgstore_tx {
    struct store_tx base; /* base.st is the pgstore */
    pgstore *st;
    PGconn *conn;
    char what[64]; /* "expire job <id>", the prefix of its messages */
} pgstore_tx;

static const store_ops pgstore_ops;
static void pgstore_close(store *base);

static const char *const store_status_names[] = {
    [ACP_STATUS_QUEUED] = "queued",     [ACP_STATUS_IN_PROGRESS] = "in-progress",
    [ACP_STATUS_COMPLETE] = "complete", [ACP_STATUS_FAILED] = "failed",
    [ACP_STATUS_EXPIRED] = "expired",
};

#define STORE_STATUS_COUNT (ACP_STATUS_EXPIRED - ACP_STATUS_QUEUED + 1)

static const char *store_status_name(acp_job_status status)
{
    if (status < ACP_STATUS_QUEUED || status > ACP_STATUS_EXPIRED)
        return NULL;
    return store_status_names[status];
}

static int store_status_parse(const char *name, acp_job_status *out)
{
    for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_EXPIRED; s++) {
        if (strcmp(name, store_status_names[s]) == 0) {
            *out = (acp_job_status)s;
            return 0;
        }
    }
    return -1;
}

/* Records "<where>: <message>" as this thread's error and returns @code. */
static int store_fail(const pgstore *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int store_fail(const pgstore *st, int code, const char *fmt, ...)
{
    char message[STORE_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return error_set(code, "%s: %s", st->where, message);
}

/* Appends @len bytes of @text to the string in @out (capacity @size),
 * cutting what does not fit. */
static void store_append(char *out, size_t size, const char *text, size_t len)
{
    size_t used = strlen(out);
    if (used + 1 >= size)
        return;
    size_t room = size - 1 - used;
    if (len > room)
        len = room;
    memcpy(out + used, text, len);
    out[used + len] = '\0';
}

static bool store_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* libpq's messages end in a newline, may span lines (hints after "\n\t",
 * one line per address tried) and begin with "connection to server at ...
 * failed: " and "FATAL:  ", which our "postgres host:port" prefix already
 * says. Keep the reasons, on one line. */
static void store_clean_message(const char *raw, char *out, size_t size)
{
    out[0] = '\0';
    const char *line = raw ? raw : "";
    while (*line) {
        const char *newline = strchr(line, '\n');
        const char *stop = newline ? newline : line + strlen(line);
        const char *s = line;
        while (s < stop && (*s == ' ' || *s == '\t'))
            s++;
        if (store_starts_with(s, "connection to server ")) {
            const char *failed = strstr(s, " failed: ");
            if (failed && failed < stop)
                s = failed + strlen(" failed: ");
        }
        static const char *const severities[] = {"FATAL:  ", "ERROR:  "};
        for (size_t i = 0; i < sizeof severities / sizeof severities[0]; i++)
            if (store_starts_with(s, severities[i]))
                s += strlen(severities[i]);
        const char *end = stop;
        while (end > s && (end[-1] == ' ' || end[-1] == '\r' || end[-1] == '\t'))
            end--;
        if (end > s) {
            if (out[0])
                store_append(out, size, "; ", 2);
            store_append(out, size, s, (size_t)(end - s));
        }
        line = newline ? newline + 1 : stop;
    }
    if (!out[0])
        store_append(out, size, "unknown libpq error", strlen("unknown libpq error"));
}

/* Notices ("schema compute already exists, skipping") would go to stderr
 * by default. */
static void store_on_notice(void *arg, const char *message)
{
    const pgstore *st = arg;
    char clean[STORE_MESSAGE_MAX];
    store_clean_message(message, clean, sizeof clean);
    log_debug(&st->log, "%s: %s", st->where, clean);
}

/* Open a connection; @what (may be NULL) names the call that needs it. */
static int store_connect(pgstore *st, const char *what, PGconn **out)
{
    const char *keys[] = {"host",
                          "port",
                          "dbname",
                          "user",
                          "password",
                          "connect_timeout",
                          "application_name",
                          "client_encoding",
                          NULL};
    const char *values[] = {st->host,
                            st->port,
                            st->dbname,
                            st->user,
                            st->password,
                            STORE_CONNECT_TIMEOUT,
                            STORE_APPLICATION_NAME,
                            "UTF8",
                            NULL};
    /* expand_dbname 0: a database name is a name, never a connection string. */
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (!conn)
        return store_fail(st, ACP_ENOMEM, "out of memory creating a connection");
    if (PQstatus(conn) != CONNECTION_OK) {
        char reason[STORE_MESSAGE_MAX];
        store_clean_message(PQerrorMessage(conn), reason, sizeof reason);
        PQfinish(conn);
        if (what)
            return store_fail(st, ACP_EDB, "%s: connecting: %s", what, reason);
        return store_fail(st, ACP_EDB, "%s", reason);
    }
    PQsetNoticeProcessor(conn, store_on_notice, st);
    *out = conn;
    return 0;
}

/* False when the connection must be reset before use: libpq already knows
 * it is broken, it is not idle, or the server sent something to an idle
 * session (its termination notice or end of file). A false alarm costs one
 * reconnection. */
static bool store_conn_usable(PGconn *conn)
{
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE)
        return false;
    struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
    if (pfd.fd < 0)
        return false;
    int n = poll(&pfd, 1, 0);
    if (n < 0)
        return errno == EINTR;
    return n == 0;
}

/* Reconnect @conn in place; on failure @reason (@size bytes) says why. The
 * back-off is short and bounded so that a call made while the server is
 * down fails within about a second instead of hanging; the next call tries
 * again. */
static int store_reset(pgstore *st, PGconn *conn, char *reason, size_t size)
{
    static const long delays_ms[] = {0, 100, 400};
    for (size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
        if (delays_ms[i])
            clock_sleep_ms(delays_ms[i]);
        PQreset(conn);
        if (PQstatus(conn) == CONNECTION_OK) {
            log_info(&st->log, "%s: reconnected", st->where);
            return 0;
        }
    }
    store_clean_message(PQerrorMessage(conn), reason, size);
    return -1;
}

/* Take an idle connection, or open one while fewer than pool_size exist, or
 * wait for one to be given back. */
static int store_borrow(pgstore *st, const char *what, PGconn **out)
{
    PGconn *conn = NULL;
    pthread_mutex_lock(&st->lock);
    while (st->idle_count == 0 && st->open_count >= st->pool_size)
        pthread_cond_wait(&st->available, &st->lock);
    if (st->idle_count > 0)
        conn = st->idle[--st->idle_count];
    else
        st->open_count++;
    pthread_mutex_unlock(&st->lock);

    if (!conn) {
        /* Connecting takes a round trip or more: not under the lock. */
        int rc = store_connect(st, what, &conn);
        if (rc) {
            pthread_mutex_lock(&st->lock);
            st->open_count--;
            pthread_cond_signal(&st->available);
            pthread_mutex_unlock(&st->lock);
            return rc;
        }
        log_debug(&st->log, "%s: opened a pooled connection", st->where);
    } else if (!store_conn_usable(conn)) {
        log_warn(&st->log, "%s: pooled connection lost; reconnecting", st->where);
        char reason[STORE_MESSAGE_MAX];
        if (store_reset(st, conn, reason, sizeof reason) != 0) {
            /* Kept in the pool, still broken: the next borrower resets it. */
            pthread_mutex_lock(&st->lock);
            st->idle[st->idle_count++] = conn;
            pthread_cond_signal(&st->available);
            pthread_mutex_unlock(&st->lock);
            return store_fail(st, ACP_EDB, "%s: reconnecting: %s", what, reason);
        }
    }
    *out = conn;
    return 0;
}

/* A connection still inside a transaction (a failed migration or *_begin)
 * is rolled back first: idle in the pool, it would hold its locks until its
 * next use. Should that fail on a live connection, closing it ends the
 * transaction on the server; a broken one is reset by the next borrower. */
static void store_give_back(pgstore *st, PGconn *conn)
{
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQclear(PQexec(conn, "ROLLBACK"));
        atomic_fetch_add(&st->statements, 1);
        if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
            log_warn(&st->log, "%s: a pooled connection is stuck in a transaction; reconnecting",
                     st->where);
            PQreset(conn);
        }
    }
    pthread_mutex_lock(&st->lock);
    st->idle[st->idle_count++] = conn;
    pthread_cond_signal(&st->available);
    pthread_mutex_unlock(&st->lock);
}

/* Run one statement on @conn: with @params through the extended protocol,
 * without (NULL) as a possibly multi-statement simple query. On success
 * *@out holds the result (the caller clears it). A unique violation gives
 * ACP_ECONFLICT, other SQL errors and connection loss ACP_EDB, each with
 * "@what: <reason>". When the connection breaks and @repeatable, it is
 * reset and the statement run once more. */
static int store_exec(pgstore *st, PGconn *conn, bool repeatable, const char *what, const char *sql,
                      const store_params *params, PGresult **out)
{
    *out = NULL;
    for (int attempt = 0;; attempt++) {
        atomic_fetch_add(&st->statements, 1);
        PGresult *res = params ? PQexecParams(conn, sql, params->count, NULL, params->values,
                                              params->lengths, params->formats, 0)
                               : PQexec(conn, sql);
        ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
            *out = res;
            return 0;
        }
        char reason[STORE_MESSAGE_MAX];
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (primary)
            snprintf(reason, sizeof reason, "%s", primary);
        else
            store_clean_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), reason,
                                sizeof reason);
        if (PQstatus(conn) == CONNECTION_BAD) {
            PQclear(res);
            if (repeatable && attempt == 0) {
                log_warn(&st->log, "%s: connection lost during %s (%s); reconnecting and retrying",
                         st->where, what, reason);
                char again[STORE_MESSAGE_MAX];
                if (store_reset(st, conn, again, sizeof again) == 0)
                    continue;
                return store_fail(st, ACP_EDB, "%s: connection lost (%s); reconnecting: %s", what,
                                  reason, again);
            }
            return store_fail(st, ACP_EDB, "%s: connection lost (%s)%s", what, reason,
                              repeatable ? "" : "; the statement may or may not have been applied");
        }
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        int code = state && strcmp(state, "23505") == 0 ? ACP_ECONFLICT : ACP_EDB;
        PQclear(res);
        return store_fail(st, code, "%s: %s", what, reason);
    }
}

/* Borrow, run one statement, give back. The result outlives the
 * connection, so it is returned to the pool before the rows are read. */
static int store_query(pgstore *st, bool repeatable, const char *what, const char *sql,
                       const store_params *params, PGresult **out)
{
    PGconn *conn;
    int rc = store_borrow(st, what, &conn);
    if (rc)
        return rc;
    rc = store_exec(st, conn, repeatable, what, sql, params, out);
    store_give_back(st, conn);
    return rc;
}

/* Runs @body, which begins a transaction on @conn and may leave it open.
 * A transaction dies with its connection, applying nothing: so when the
 * connection is lost, it is reset and @body run once more. Whatever a failure
 * leaves open is rolled back by store_give_back. */
static int store_run_tx(pgstore *st, PGconn *conn, const char *what,
                        int (*body)(pgstore *st, PGconn *conn, void *arg), void *arg)
{
    for (int attempt = 0;; attempt++) {
        int rc = body(st, conn, arg);
        if (rc == 0 || PQstatus(conn) != CONNECTION_BAD || attempt > 0)
            return rc;
        log_warn(&st->log, "%s: connection lost during %s; reconnecting and retrying", st->where,
                 what);
        char reason[STORE_MESSAGE_MAX];
        if (store_reset(st, conn, reason, sizeof reason) != 0)
            return store_fail(st, ACP_EDB, "%s: connection lost; reconnecting: %s", what, reason);
    }
}

/* ------------------------------------------------------------------------ */
/* Parameters and values                                                    */
/* ------------------------------------------------------------------------ */

/* Ids go as binary bytea, 16 bytes: no hex round trip, no escaping. */
static void store_param_id(store_params *p, const acp_job_id *id)
{
    p->values[p->count] = (const char *)id->bytes;
    p->lengths[p->count] = (int)sizeof id->bytes;
    p->formats[p->count] = 1;
    p->count++;
}

static void store_param_text(store_params *p, const char *text)
{
    p->values[p->count] = text;
    p->lengths[p->count] = 0;
    p->formats[p->count] = 0;
    p->count++;
}

/* PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 UTC;
 * its earliest value is 4714-11-24 BC. */
#define STORE_PG_EPOCH_US INT64_C(946684800000000)
#define STORE_TIME_MIN_US (INT64_C(-211813488000000000) + STORE_PG_EPOCH_US)

/* Times (µs since the Unix epoch) go as binary timestamptz: exact to the
 * microsecond, which the list cursor's equality needs, where a conversion
 * through text or floating point in SQL could be off by one. */
static int store_param_time(const pgstore *st, store_params *p, const char *what, int64_t us)
{
    if (us < STORE_TIME_MIN_US)
        return store_fail(st, ACP_EINVAL, "%s: time %" PRId64 " µs is before 4714 BC", what, us);
    uint64_t value = (uint64_t)(us - STORE_PG_EPOCH_US);
    unsigned char *bytes = p->binary[p->count];
    for (int i = 7; i >= 0; i--) {
        bytes[i] = (unsigned char)(value & 0xff);
        value >>= 8;
    }
    p->values[p->count] = (const char *)bytes;
    p->lengths[p->count] = 8;
    p->formats[p->count] = 1;
    p->count++;
    return 0;
}

/* @us (µs since the epoch) as "2001-02-03 04:05:06.000007 UTC". */
static void store_format_time(int64_t us, char *out, size_t size)
{
    struct tm tm;
    int micros;
    char date[48];
    if (!clock_utc(us, &tm, &micros) || strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(out, size, "%" PRId64 " µs", us);
        return;
    }
    snprintf(out, size, "%s.%06d UTC", date, micros);
}

/* A PostgreSQL array literal of @count strings, every element quoted so
 * that commas, braces, white space and the word NULL stay data. */
static int store_text_array(const pgstore *st, const char *what, const char *const *items,
                            size_t count, buf *out)
{
    if (count > 0 && !items)
        return store_fail(st, ACP_EINVAL, "%s: NULL file list with %zu entries", what, count);
    int rc = buf_puts(out, "{");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (!items[i])
            return store_fail(st, ACP_EINVAL, "%s: file name %zu is NULL", what, i);
        rc = buf_puts(out, i ? ",\"" : "\"");
        for (const char *s = items[i]; rc == 0 && *s; s++) {
            if (*s == '"' || *s == '\\')
                rc = buf_append(out, "\\", 1);
            if (rc == 0)
                rc = buf_append(out, s, 1);
        }
        if (rc == 0)
            rc = buf_puts(out, "\"");
    }
    if (rc == 0)
        rc = buf_puts(out, "}");
    return rc;
}

static char *store_strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

/* A nullable column as an owned string: 0 with NULL for SQL NULL. */
static int store_get_string(const pgstore *st, const PGresult *res, int row, int col, char **out)
{
    *out = NULL;
    if (PQgetisnull(res, row, col))
        return 0;
    *out = store_strdup(PQgetvalue(res, row, col));
    if (!*out)
        return store_fail(st, ACP_ENOMEM, "out of memory reading a row");
    return 0;
}

static int64_t store_get_int64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int store_get_id(const pgstore *st, const PGresult *res, int row, int col, acp_job_id *out)
{
    if (acp_job_id_parse(out, PQgetvalue(res, row, col)) != 0)
        return store_fail(st, ACP_EDB, "compute.jobs holds a job_id that is not 16 bytes: %s",
                          PQgetvalue(res, row, col));
    return 0;
}

static int store_get_queue(const pgstore *st, const PGresult *res, int row, int col,
                           char out[ACP_QUEUE_ID_MAX + 1])
{
    const char *queue = PQgetvalue(res, row, col);
    size_t len = strlen(queue);
    /* varchar(32) counts characters, so a non-ASCII id can exceed 32 bytes. */
    if (len > ACP_QUEUE_ID_MAX)
        return store_fail(st, ACP_EDB, "compute.jobs holds queue '%s', longer than %d bytes", queue,
                          ACP_QUEUE_ID_MAX);
    memcpy(out, queue, len + 1);
    return 0;
}

static int store_parse_inputs(const pgstore *st, const char *text, store_job *job)
{
    json_object *array;
    int rc = json_parse(text, strlen(text), "input_files", &array);
    if (rc)
        return error_prefix(ACP_EDB, st->where);
    if (!json_object_is_type(array, json_type_array)) {
        json_object_put(array);
        return store_fail(st, ACP_EDB, "input_files is not an array: %s", text);
    }
    size_t count = json_object_array_length(array);
    if (count > 0) {
        job->inputs = calloc(count, sizeof *job->inputs);
        if (!job->inputs) {
            json_object_put(array);
            return store_fail(st, ACP_ENOMEM, "out of memory reading %zu input names", count);
        }
    }
    for (size_t i = 0; i < count; i++) {
        json_object *item = json_object_array_get_idx(array, i);
        if (!json_object_is_type(item, json_type_string)) {
            json_object_put(array);
            return store_fail(st, ACP_EDB, "input_files[%zu] is not a string: %s", i, text);
        }
        job->inputs[i] = store_strdup(json_object_get_string(item));
        if (!job->inputs[i]) {
            json_object_put(array);
            return store_fail(st, ACP_ENOMEM, "out of memory reading input names");
        }
        job->input_count = i + 1;
    }
    json_object_put(array);
    return 0;
}

/* Fill @job from row @row of STORE_JOB_COLUMNS. On failure @job holds what
 * was read so far; the caller frees it. */
static int store_read_job(const pgstore *st, const PGresult *res, int row, store_job *job)
{
    int rc = store_get_id(st, res, row, 0, &job->id);
    if (rc)
        return rc;
    const char *status = PQgetvalue(res, row, 1);
    if (store_status_parse(status, &job->status) != 0)
        return store_fail(st, ACP_EDB, "job %s has an unknown status '%s'", PQgetvalue(res, row, 0),
                          status);
    if ((rc = store_get_queue(st, res, row, 2, job->queue)) ||
        (rc = store_get_string(st, res, row, 3, &job->config)) ||
        (rc = store_parse_inputs(st, PQgetvalue(res, row, 4), job)) ||
        (rc = store_get_string(st, res, row, 9, &job->message)))
        return rc;
    job->created = store_get_int64(res, row, 5);
    job->last_accessed = store_get_int64(res, row, 6);
    job->grabbed = store_get_int64(res, row, 7);
    job->finished = store_get_int64(res, row, 8);
    job->attempts = (unsigned)store_get_int64(res, row, 10);
    return 0;
}

/* Rows of (hex id, queue, config[, dispatch_failures]) into @out. */
static int store_read_dispatch_list(const pgstore *st, const PGresult *res,
                                    store_dispatch_list *out)
{
    int rows = PQntuples(res);
    if (rows == 0)
        return 0;
    out->items = calloc((size_t)rows, sizeof *out->items);
    if (!out->items)
        return store_fail(st, ACP_ENOMEM, "out of memory reading %d jobs", rows);
    for (int r = 0; r < rows; r++) {
        store_dispatch *item = &out->items[r];
        int rc;
        if ((rc = store_get_id(st, res, r, 0, &item->id)) ||
            (rc = store_get_queue(st, res, r, 1, item->queue)) ||
            (rc = store_get_string(st, res, r, 2, &item->config))) {
            out->count = (size_t)r + 1;
            store_dispatch_list_free(out);
            return rc;
        }
        if (PQnfields(res) > 3)
            item->failures = (unsigned)store_get_int64(res, r, 3);
    }
    out->count = (size_t)rows;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Open, close, migrate                                                     */
/* ------------------------------------------------------------------------ */

static void store_free(pgstore *st)
{
    free(st->host);
    free(st->dbname);
    free(st->user);
    free(st->password);
    free(st->where);
    free(st->idle);
    free(st);
}

int store_open(store **out, const acp_db_config *cfg, const logger *log)
{
    if (!out || !cfg)
        return error_set(ACP_EINVAL, "store_open: NULL argument");
    *out = NULL;
    if (!cfg->host || !*cfg->host || !cfg->dbname || !*cfg->dbname || !cfg->user || !*cfg->user ||
        !cfg->password)
        return error_set(ACP_EINVAL, "postgres: host, database, user and password are required");
    if (cfg->port < 1 || cfg->port > 65535)
        return error_set(ACP_EINVAL, "postgres %s: port %d is outside 1..65535", cfg->host,
                         cfg->port);
    if (cfg->pool_size < 1 || cfg->pool_size > ACP_POOL_SIZE_MAX)
        return error_set(ACP_EINVAL, "postgres %s:%d: pool size %d is outside 1..%d", cfg->host,
                         cfg->port, cfg->pool_size, ACP_POOL_SIZE_MAX);

    pgstore *st = calloc(1, sizeof *st);
    if (!st)
        return error_set(ACP_ENOMEM, "out of memory creating the database pool");
    st->base.ops = &pgstore_ops;
    buf where = BUF_INIT;
    st->host = store_strdup(cfg->host);
    st->dbname = store_strdup(cfg->dbname);
    st->user = store_strdup(cfg->user);
    st->password = store_strdup(cfg->password);
    st->pool_size = (size_t)cfg->pool_size;
    st->idle = calloc(st->pool_size, sizeof *st->idle);
    snprintf(st->port, sizeof st->port, "%d", cfg->port);
    if (log)
        st->log = *log;
    else
        st->log.level = ACP_LOG_INFO;
    if (!st->host || !st->dbname || !st->user || !st->password || !st->idle ||
        buf_printf(&where, "postgres %s:%d", cfg->host, cfg->port) != 0) {
        buf_free(&where);
        store_free(st);
        return error_set(ACP_ENOMEM, "out of memory creating the database pool");
    }
    st->where = where.data;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        store_free(st);
        return error_set(ACP_ENOMEM, "cannot create the database pool's mutex");
    }
    if (clock_cond_init(&st->available) != 0) {
        pthread_mutex_destroy(&st->lock);
        store_free(st);
        return error_set(ACP_ENOMEM, "cannot create the database pool's condition variable");
    }

    /* The first connection at once, so that a wrong host, password or
     * database fails start-up rather than the first job. */
    PGconn *conn;
    int rc = store_connect(st, NULL, &conn);
    if (rc == 0) {
        st->idle[st->idle_count++] = conn;
        st->open_count = 1;
        rc = store_migrate(&st->base);
    }
    if (rc) {
        pgstore_close(&st->base);
        return rc;
    }
    log_info(&st->log, "%s: connected to database %s as %s (pool of %zu)", st->where, st->dbname,
             st->user, st->pool_size);
    *out = &st->base;
    return 0;
}

static void pgstore_close(store *base)
{
    pgstore *st = (pgstore *)base;
    if (!st)
        return;
    for (size_t i = 0; i < st->idle_count; i++)
        PQfinish(st->idle[i]);
    pthread_cond_destroy(&st->available);
    pthread_mutex_destroy(&st->lock);
    store_free(st);
}

/* One attempt at the migration transaction on @conn. */
static int store_migrate_once(pgstore *st, PGconn *conn, void *arg)
{
    (void)arg;
    const char *what = "schema migration";
    PGresult *res;
    int rc =
        store_exec(st, conn, false, what,
                   "BEGIN; SELECT pg_advisory_xact_lock(" STORE_MIGRATION_LOCK ")", NULL, &res);
    if (rc)
        return rc;
    PQclear(res);

    /* Under the lock: what a concurrent starter committed is visible now. */
    rc = store_exec(st, conn, false, what, "SELECT to_regclass('compute.meta') IS NOT NULL", NULL,
                    &res);
    if (rc)
        return rc;
    bool have_meta = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);

    char upstream[257] = "0.0.0";
    long ours = 0;
    if (have_meta) {
        rc = store_exec(st, conn, false, what,
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
                rc = store_fail(st, ACP_EDB, "%s: compute.meta has acp_schema '%s', not a number",
                                what, text);
                PQclear(res);
                return rc;
            }
        }
        PQclear(res);
    }

    /* Upstream compares versions as plain strings; so do we. */
    if (strcmp(upstream, store_upstream_version) < 0) {
        rc = store_exec(st, conn, false, "lib-compute-platform schema 1.0.0", store_upstream_sql,
                        NULL, &res);
        if (rc)
            return rc;
        PQclear(res);
        log_info(&st->log, "%s: applied lib-compute-platform schema %s", st->where,
                 store_upstream_version);
    }

    long latest = store_migrations[STORE_MIGRATION_COUNT - 1].number;
    if (ours > latest)
        log_warn(&st->log,
                 "%s: database schema acp_schema %ld is newer than this library's %ld; "
                 "leaving it alone",
                 st->where, ours, latest);
    for (size_t i = 0; i < STORE_MIGRATION_COUNT; i++) {
        const store_migration *m = &store_migrations[i];
        if (m->number <= ours)
            continue;
        char step[64], number[24];
        snprintf(step, sizeof step, "schema migration acp %d", m->number);
        rc = store_exec(st, conn, false, step, m->sql, NULL, &res);
        if (rc)
            return rc;
        PQclear(res);
        snprintf(number, sizeof number, "%d", m->number);
        store_params p = {0};
        store_param_text(&p, number);
        rc = store_exec(st, conn, false, step,
                        "INSERT INTO compute.meta (key, value) VALUES ('acp_schema', $1) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                        &p, &res);
        if (rc)
            return rc;
        PQclear(res);
        log_info(&st->log, "%s: applied schema migration acp %d", st->where, m->number);
    }

    rc = store_exec(st, conn, false, what, "COMMIT", NULL, &res);
    if (rc)
        return rc;
    PQclear(res);
    return 0;
}

int store_migrate(store *base)
{
    if (!base)
        return error_set(ACP_EINVAL, "store_migrate: NULL store");
    if (base->ops != &pgstore_ops)
        return error_set(ACP_EINVAL, "store_migrate: the %s store has no schema to migrate",
                         base->ops->name);
    pgstore *st = (pgstore *)base;
    PGconn *conn;
    int rc = store_borrow(st, "schema migration", &conn);
    if (rc)
        return rc;
    rc = store_run_tx(st, conn, "schema migration", store_migrate_once, NULL);
    store_give_back(st, conn);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Statements                                                               */
/* ------------------------------------------------------------------------ */

/* @name is the store_* function the caller called. */
#define STORE_CHECK(st, id, name)                                                                  \
    do {                                                                                           \
        if (!(st) || !(id))                                                                        \
            return error_set(ACP_EINVAL, "%s: NULL argument", name);                               \
    } while (0)

/* After an UPDATE matched no row: ACP_ENOTFOUND when the job does not
 * exist, otherwise @conflict_code with its current status and queue in the
 * message. */
static int store_explain_miss(pgstore *st, const acp_job_id *id, const char *what,
                              int conflict_code, const char *expected)
{
    store_params p = {0};
    store_param_id(&p, id);
    PGresult *res;
    int rc = store_query(st, true, what,
                         "SELECT status, queue, lease_owner FROM compute.jobs "
                         "WHERE job_id = $1::bytea",
                         &p, &res);
    if (rc)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return store_fail(st, ACP_ENOTFOUND, "%s: no such job", what);
    }
    rc = store_fail(st, conflict_code, "%s: the job is %s in queue '%s'%s%s, not %s", what,
                    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
                    PQgetisnull(res, 0, 2) ? "" : " leased by ",
                    PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2), expected);
    PQclear(res);
    return rc;
}

/* An UPDATE or DELETE by id that matched nothing means there is no row. */
static int store_by_id(pgstore *st, const acp_job_id *id, const char *verb, bool repeatable,
                       const char *sql)
{
    char hex[ACP_JOB_ID_STRLEN], what[96];
    acp_job_id_format(id, hex);
    snprintf(what, sizeof what, "%s job %s", verb, hex);
    store_params p = {0};
    store_param_id(&p, id);
    PGresult *res;
    int rc = store_query(st, repeatable, what, sql, &p, &res);
    if (rc)
        return rc;
    bool found = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    return found ? 0 : store_fail(st, ACP_ENOTFOUND, "%s: no such job", what);
}

static int pgstore_get(store *base, const acp_job_id *id, store_job *out)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_get");
    if (!out)
        return error_set(ACP_EINVAL, "store_get: NULL argument");
    store_job_init(out);
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "get job %s", acp_job_id_format(id, hex));
    store_params p = {0};
    store_param_id(&p, id);
    PGresult *res;
    /* The position counts queued jobs of the same queue ahead of this one:
     * created earlier, or at the same instant with a smaller id, so that
     * positions are distinct. */
    int rc =
        store_query(st, true, what,
                    "SELECT " STORE_JOB_COLUMNS ", "
                    "CASE WHEN j.status = 'queued' THEN (SELECT count(*) FROM compute.jobs q "
                    "  WHERE q.queue = j.queue AND q.status = 'queued' AND q.created <= j.created "
                    "  AND (q.created < j.created OR q.job_id < j.job_id)) ELSE -1 END "
                    "FROM compute.jobs j WHERE j.job_id = $1::bytea",
                    &p, &res);
    if (rc)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return store_fail(st, ACP_ENOTFOUND, "%s: no such job", what);
    }
    rc = store_read_job(st, res, 0, out);
    if (rc == 0)
        out->queue_position = (long)store_get_int64(res, 0, STORE_JOB_COLUMN_COUNT);
    PQclear(res);
    if (rc)
        store_job_free(out);
    return rc;
}

static int pgstore_touch(store *base, const acp_job_id *id)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_touch");
    return store_by_id(st, id, "touch", true,
                       "UPDATE compute.jobs SET last_accessed = now() WHERE job_id = $1::bytea");
}

/* Insert or requeue: the statement @sql takes $1 id, $2 queue, $3 config
 * and $4 the input names. @what names the operation in messages. */
static int store_write_run(pgstore *st, const acp_job_id *id, const char *queue, const char *config,
                           const char *const *inputs, size_t input_count, const char *what,
                           const char *sql, PGresult **res)
{
    if (!queue)
        return store_fail(st, ACP_EINVAL, "%s: NULL queue", what);
    buf array = BUF_INIT;
    int rc = store_text_array(st, what, inputs, input_count, &array);
    if (!rc) {
        store_params p = {0};
        store_param_id(&p, id);
        store_param_text(&p, queue);
        store_param_text(&p, config);
        store_param_text(&p, array.data);
        rc = store_query(st, false, what, sql, &p, res);
    }
    buf_free(&array);
    return rc;
}

static int pgstore_insert(store *base, const acp_job_id *id, const char *queue, const char *config,
                          const char *const *inputs, size_t input_count)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_insert");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "insert job %s", acp_job_id_format(id, hex));
    PGresult *res;
    int rc = store_write_run(
        st, id, queue, config, inputs, input_count, what,
        "INSERT INTO compute.jobs "
        "(job_id, status, queue, config, input_files, created, last_accessed, dispatched) "
        "VALUES ($1::bytea, 'queued', $2, $3, $4::varchar[], now(), now(), now())",
        &res);
    if (rc == ACP_ECONFLICT)
        return store_fail(st, ACP_ECONFLICT, "job %s already exists", hex);
    if (rc)
        return rc;
    PQclear(res);
    return 0;
}

static int pgstore_requeue(store *base, const acp_job_id *id, const char *queue, const char *config,
                           const char *const *inputs, size_t input_count)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_requeue");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "requeue job %s", acp_job_id_format(id, hex));
    PGresult *res;
    /* The old outputs are gone with a re-run, so output_files goes too. */
    int rc =
        store_write_run(st, id, queue, config, inputs, input_count, what,
                        "UPDATE compute.jobs SET status = 'queued', queue = $2, config = $3, "
                        "input_files = $4::varchar[], last_accessed = now(), grabbed = NULL, "
                        "finished = NULL, error = NULL, lease_owner = NULL, lease_expires = NULL, "
                        "dispatched = now(), output_files = NULL, attempts = 0 "
                        "WHERE job_id = $1::bytea AND status IN ('complete', 'failed', 'expired')",
                        &res);
    if (rc)
        return rc;
    bool updated = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    if (updated)
        return 0;
    return store_explain_miss(st, id, what, ACP_ECONFLICT, "complete, failed or expired");
}

static int pgstore_mark_dispatched(store *base, const acp_job_id *id)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_mark_dispatched");
    return store_by_id(st, id, "mark dispatched", true,
                       "UPDATE compute.jobs SET dispatched = now(), dispatch_failures = 0, "
                       "dispatch_retry = NULL WHERE job_id = $1::bytea");
}

static int pgstore_clear_dispatched(store *base, const acp_job_id *id)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_clear_dispatched");
    return store_by_id(st, id, "clear dispatched", true,
                       "UPDATE compute.jobs SET dispatched = NULL WHERE job_id = $1::bytea");
}

static int pgstore_dispatch_failed(store *base, const acp_job_id *id)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_dispatch_failed");
    /* 1, 2, 4 ... seconds up to the cap: a broker outage is retried soon,
     * a job no broker takes does not crowd the batches of the others. */
    return store_by_id(st, id, "record failed dispatch of", false,
                       "UPDATE compute.jobs SET dispatched = NULL, dispatch_retry = now() + "
                       "make_interval(secs => least(power(2, least(dispatch_failures, "
                       "16)), " STORE_DISPATCH_BACKOFF_MAX
                       ")), dispatch_failures = dispatch_failures + 1 "
                       "WHERE job_id = $1::bytea");
}

static int pgstore_fail_undispatchable(store *base, const acp_job_id *id, const char *message)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_fail_undispatchable");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "fail undispatchable job %s", acp_job_id_format(id, hex));
    store_params p = {0};
    store_param_id(&p, id);
    store_param_text(&p, message);
    PGresult *res;
    int rc = store_query(st, false, what,
                         "UPDATE compute.jobs SET status = 'failed', finished = now(), error = $2, "
                         "dispatched = NULL, dispatch_retry = NULL "
                         "WHERE job_id = $1::bytea AND status = 'queued'",
                         &p, &res);
    if (rc)
        return rc;
    bool updated = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    return updated ? 0 : store_explain_miss(st, id, what, ACP_ECONFLICT, "queued");
}

static int pgstore_claim(store *base, const acp_job_id *id, const char *queue, const char *owner,
                         unsigned lease_seconds, store_job *out)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_claim");
    if (!out)
        return error_set(ACP_EINVAL, "store_claim: NULL argument");
    store_job_init(out);
    char hex[ACP_JOB_ID_STRLEN], what[64], seconds[16];
    snprintf(what, sizeof what, "claim job %s", acp_job_id_format(id, hex));
    if (!queue || !owner || !*owner)
        return store_fail(st, ACP_EINVAL, "%s: NULL queue or empty owner", what);
    snprintf(seconds, sizeof seconds, "%u", lease_seconds);
    store_params p = {0};
    store_param_id(&p, id);
    store_param_text(&p, queue);
    store_param_text(&p, owner);
    store_param_text(&p, seconds);
    PGresult *res;
    /* One statement: concurrent claimers of the row queue on its lock, and
     * all but the first then see status 'in-progress' and match nothing. */
    int rc = store_query(st, false, what,
                         "UPDATE compute.jobs SET status = 'in-progress', grabbed = now(), "
                         "finished = NULL, error = NULL, lease_owner = $3, "
                         "lease_expires = now() + make_interval(secs => $4::double precision), "
                         "attempts = attempts + 1 "
                         "WHERE job_id = $1::bytea AND status = 'queued' AND queue = $2 "
                         "RETURNING " STORE_JOB_COLUMNS,
                         &p, &res);
    if (rc)
        return rc;
    if (PQntuples(res) == 1) {
        rc = store_read_job(st, res, 0, out);
        PQclear(res);
        if (rc)
            store_job_free(out);
        return rc;
    }
    PQclear(res);
    char expected[64];
    snprintf(expected, sizeof expected, "queued in '%s'", queue);
    return store_explain_miss(st, id, what, ACP_ECONFLICT, expected);
}

static int pgstore_finish(store *base, const acp_job_id *id, const char *owner,
                          acp_job_status status, const char *message, const char *const *outputs,
                          size_t output_count)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_finish");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "finish job %s", acp_job_id_format(id, hex));
    if (!owner)
        return store_fail(st, ACP_EINVAL, "%s: NULL owner", what);
    if (status != ACP_STATUS_COMPLETE && status != ACP_STATUS_FAILED)
        return store_fail(st, ACP_EINVAL, "%s: status %d is neither complete nor failed", what,
                          (int)status);
    buf array = BUF_INIT;
    int rc = store_text_array(st, what, outputs, output_count, &array);
    if (rc) {
        buf_free(&array);
        return rc;
    }
    store_params p = {0};
    store_param_id(&p, id);
    store_param_text(&p, owner);
    store_param_text(&p, store_status_name(status));
    store_param_text(&p, message);
    store_param_text(&p, array.data);
    PGresult *res;
    rc = store_query(st, false, what,
                     "UPDATE compute.jobs SET status = $3, finished = now(), error = $4, "
                     "output_files = $5::varchar[], lease_owner = NULL, lease_expires = NULL "
                     "WHERE job_id = $1::bytea AND status = 'in-progress' AND lease_owner = $2",
                     &p, &res);
    buf_free(&array);
    if (rc)
        return rc;
    bool updated = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    if (updated)
        return 0;
    char expected[STORE_MESSAGE_MAX / 2];
    snprintf(expected, sizeof expected, "in-progress leased by %s", owner);
    rc = store_explain_miss(st, id, what, ACP_ECONFLICT, expected);
    /* Deleted meanwhile: still "no longer holds the lease" for the caller. */
    return rc == ACP_ENOTFOUND ? ACP_ECONFLICT : rc;
}

static int pgstore_renew_leases(store *base, const char *owner, unsigned lease_seconds,
                                const acp_job_id *ids, size_t count, size_t *renewed)
{
    pgstore *st = (pgstore *)base;
    if (renewed)
        *renewed = 0;
    if (!st || !owner || (count && !ids))
        return error_set(ACP_EINVAL, "store_renew_leases: NULL argument");
    if (count == 0)
        return 0;
    /* Ids as hex text: one text array parameter, whatever their number. */
    char(*hex)[ACP_JOB_ID_STRLEN] = malloc(count * sizeof *hex);
    const char **items = malloc(count * sizeof *items);
    buf array = BUF_INIT;
    int rc = hex && items ? 0 : store_fail(st, ACP_ENOMEM, "renew leases: out of memory");
    for (size_t i = 0; !rc && i < count; i++)
        items[i] = acp_job_id_format(&ids[i], hex[i]);
    if (!rc)
        rc = store_text_array(st, "renew leases", items, count, &array);
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%u", lease_seconds);
    store_params p = {0};
    store_param_text(&p, owner);
    store_param_text(&p, seconds);
    store_param_text(&p, array.data);
    PGresult *res = NULL;
    /* SKIP LOCKED: a row locked by a run being recorded is about to leave
     * 'in-progress'; waiting for it would hold up every other renewal. */
    if (!rc)
        rc = store_query(st, true, "renew leases",
                         "UPDATE compute.jobs "
                         "SET lease_expires = now() + make_interval(secs => $2::double precision) "
                         "WHERE job_id IN (SELECT job_id FROM compute.jobs "
                         "  WHERE job_id = ANY (SELECT decode(h, 'hex') FROM unnest($3::text[]) h)"
                         "  AND lease_owner = $1 AND status = 'in-progress' "
                         "  FOR UPDATE SKIP LOCKED)",
                         &p, &res);
    buf_free(&array);
    free(items);
    free(hex);
    if (rc)
        return rc;
    if (renewed)
        *renewed = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

/* Both batch statements pick rows with FOR UPDATE SKIP LOCKED in a
 * materialised CTE (evaluated exactly once), so concurrent callers in
 * several processes split the rows between them instead of waiting or
 * taking the same ones. */
static int store_batch(pgstore *st, const char *what, const char *sql, store_params *p,
                       size_t limit, store_dispatch_list *out)
{
    if (!st || !out)
        return error_set(ACP_EINVAL, "%s: NULL argument", what);
    out->items = NULL;
    out->count = 0;
    if (limit == 0)
        return 0;
    char count[24];
    snprintf(count, sizeof count, "%zu", limit);
    store_param_text(p, count);
    PGresult *res;
    int rc = store_query(st, false, what, sql, p, &res);
    if (rc)
        return rc;
    rc = store_read_dispatch_list(st, res, out);
    PQclear(res);
    return rc;
}

static int pgstore_requeue_expired(store *base, unsigned max_attempts, size_t limit,
                                   store_dispatch_list *out)
{
    pgstore *st = (pgstore *)base;
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%u", max_attempts);
    store_params p = {0};
    store_param_text(&p, attempts);
    /* $1 is max_attempts, $2 (appended by store_batch) the limit. */
    return store_batch(
        st, "requeue expired leases",
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'in-progress' AND lease_expires < now() AND attempts < $1::int"
        "  ORDER BY lease_expires LIMIT $2::bigint FOR UPDATE SKIP LOCKED), "
        "requeued AS ("
        "  UPDATE compute.jobs j SET status = 'queued', grabbed = NULL, lease_owner = NULL,"
        "    lease_expires = NULL, dispatched = now()"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created) "
        "SELECT encode(job_id, 'hex'), queue, config FROM requeued ORDER BY created, job_id",
        &p, limit, out);
}

static int pgstore_fail_abandoned(store *base, unsigned max_attempts, size_t limit,
                                  store_dispatch_list *out)
{
    pgstore *st = (pgstore *)base;
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%u", max_attempts);
    store_params p = {0};
    store_param_text(&p, attempts);
    /* $1 is max_attempts, $2 (appended by store_batch) the limit. */
    return store_batch(
        st, "fail abandoned jobs",
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
        "  RETURNING j.job_id, j.queue, j.config, j.created) "
        "SELECT encode(job_id, 'hex'), queue, config FROM failed ORDER BY created, job_id",
        &p, limit, out);
}

static int pgstore_take_undispatched(store *base, unsigned older_than_seconds,
                                     const char *const *queues, size_t queue_count, size_t limit,
                                     store_dispatch_list *out)
{
    pgstore *st = (pgstore *)base;
    const char *what = "take undispatched jobs";
    char seconds[16];
    snprintf(seconds, sizeof seconds, "%u", older_than_seconds);
    buf array = BUF_INIT;
    int rc = store_text_array(st, what, queues, queue_count, &array);
    if (rc) {
        buf_free(&array);
        return rc;
    }
    store_params p = {0};
    store_param_text(&p, seconds);
    store_param_text(&p, array.data);
    /* $1 is the age, $2 the queues, $3 (appended by store_batch) the limit.
     * Only the caller's queues: a job it cannot publish would otherwise
     * come back in every batch and crowd out the ones it can. */
    rc = store_batch(
        st, what,
        "WITH picked AS MATERIALIZED ("
        "  SELECT job_id FROM compute.jobs"
        "  WHERE status = 'queued' AND queue = ANY($2::varchar[]) AND ("
        "    (dispatched IS NULL AND (dispatch_retry IS NULL OR dispatch_retry <= now()))"
        "    OR dispatched < now() - make_interval(secs => $1::double precision))"
        "  ORDER BY created, job_id LIMIT $3::bigint FOR UPDATE SKIP LOCKED), "
        "taken AS ("
        "  UPDATE compute.jobs j SET dispatched = now()"
        "  FROM picked WHERE j.job_id = picked.job_id"
        "  RETURNING j.job_id, j.queue, j.config, j.created, j.dispatch_failures) "
        "SELECT encode(job_id, 'hex'), queue, config, dispatch_failures FROM taken "
        "ORDER BY created, job_id",
        &p, limit, out);
    buf_free(&array);
    return rc;
}

static int pgstore_delete(store *base, const acp_job_id *id)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_delete");
    return store_by_id(st, id, "delete", false,
                       "DELETE FROM compute.jobs WHERE job_id = $1::bytea");
}

/* ------------------------------------------------------------------------ */
/* Expiring and deleting: transactions holding the row lock                 */
/* ------------------------------------------------------------------------ */

/* The statements of the *_begin functions share one shape: lock the row
 * (FOR UPDATE in a CTE evaluated once, before the change: waiting for a
 * concurrent change, it re-reads the row), change it when it qualifies, and
 * answer (status before, changed, last_accessed, lease_owner), or nothing
 * when there is no row. So the verdict takes no second statement, and
 * nothing can change the row between the verdict and the change. */
#define STORE_LOCK_ROW                                                                             \
    "WITH old AS MATERIALIZED ("                                                                   \
    "  SELECT job_id, status, last_accessed, lease_owner FROM compute.jobs"                        \
    "  WHERE job_id = $1::bytea FOR UPDATE), "                                                     \
    "changed AS ("
#define STORE_VERDICT                                                                              \
    ") SELECT old.status, EXISTS (SELECT 1 FROM changed), "                                        \
    "(extract(epoch FROM old.last_accessed) * 1000000)::bigint, old.lease_owner FROM old"

typedef struct store_begin {
    const char *what, *sql;
    const store_params *params;
    PGresult *res;
} store_begin;

static int store_begin_once(pgstore *st, PGconn *conn, void *arg)
{
    store_begin *begin = arg;
    PGresult *res;
    int rc = store_exec(st, conn, false, begin->what, "BEGIN", NULL, &res);
    if (rc)
        return rc;
    PQclear(res);
    return store_exec(st, conn, false, begin->what, begin->sql, begin->params, &begin->res);
}

/* The verdict row of a *_begin statement as a return code. */
static int store_judge(const pgstore *st, const char *what, const PGresult *res, const char *rule,
                       acp_job_status *previous)
{
    if (PQntuples(res) == 0)
        return store_fail(st, ACP_ENOTFOUND, "%s: no such job", what);
    const char *status = PQgetvalue(res, 0, 0);
    acp_job_status before;
    if (store_status_parse(status, &before) != 0)
        return store_fail(st, ACP_EDB, "%s: the job has an unknown status '%s'", what, status);
    if (strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
        if (previous)
            *previous = before;
        return 0;
    }
    if (before == ACP_STATUS_IN_PROGRESS)
        return store_fail(st, ACP_EBUSY, "%s: the job is in-progress%s%s", what,
                          PQgetisnull(res, 0, 3) ? "" : ", leased by ",
                          PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3));
    char accessed[64];
    store_format_time(store_get_int64(res, 0, 2), accessed, sizeof accessed);
    return store_fail(st, ACP_ECONFLICT, "%s: the job is %s, last accessed %s; %s", what, status,
                      accessed, rule);
}

/* Borrow a connection and run BEGIN and @sql (a STORE_LOCK_ROW statement).
 * 0 with *@out open when the row changed; otherwise the verdict's code, with
 * the transaction rolled back and the connection given back. */
static int store_tx_begin(pgstore *st, const char *what, const char *sql,
                          const store_params *params, const char *rule, store_tx **out,
                          acp_job_status *previous)
{
    pgstore_tx *tx = calloc(1, sizeof *tx);
    if (!tx)
        return store_fail(st, ACP_ENOMEM, "%s: out of memory", what);
    tx->base.st = &st->base;
    tx->st = st;
    snprintf(tx->what, sizeof tx->what, "%s", what);
    int rc = store_borrow(st, what, &tx->conn);
    if (rc) {
        free(tx);
        return rc;
    }
    store_begin begin = {what, sql, params, NULL};
    rc = store_run_tx(st, tx->conn, what, store_begin_once, &begin);
    if (rc == 0) {
        rc = store_judge(st, what, begin.res, rule, previous);
        PQclear(begin.res);
    }
    if (rc) {
        store_give_back(st, tx->conn);
        free(tx);
        return rc;
    }
    *out = &tx->base;
    return 0;
}

static int pgstore_expire_begin(store *base, const acp_job_id *id, int64_t complete_accessed_before,
                                store_tx **tx, acp_job_status *previous)
{
    pgstore *st = (pgstore *)base;
    if (tx)
        *tx = NULL;
    STORE_CHECK(st, id, "store_expire_begin");
    if (!tx)
        return error_set(ACP_EINVAL, "store_expire_begin: NULL argument");
    char hex[ACP_JOB_ID_STRLEN], what[64], rule[128] = "it cannot be expired";
    snprintf(what, sizeof what, "expire job %s", acp_job_id_format(id, hex));
    store_params p = {0};
    store_param_id(&p, id);
    if (complete_accessed_before) {
        int rc = store_param_time(st, &p, what, complete_accessed_before);
        if (rc)
            return rc;
        char cutoff[64];
        store_format_time(complete_accessed_before, cutoff, sizeof cutoff);
        snprintf(rule, sizeof rule, "the pruner expires complete jobs last accessed before %s",
                 cutoff);
    } else {
        store_param_text(&p, NULL);
    }
    return store_tx_begin(st, what,
                          STORE_LOCK_ROW
                          "UPDATE compute.jobs j SET status = 'expired', lease_owner = NULL, "
                          "lease_expires = NULL "
                          "FROM old WHERE j.job_id = old.job_id AND old.status <> 'in-progress' "
                          "AND ($2::timestamptz IS NULL OR (old.status = 'complete' "
                          "AND old.last_accessed < $2::timestamptz)) "
                          "RETURNING j.job_id" STORE_VERDICT,
                          &p, rule, tx, previous);
}

static int pgstore_delete_begin(store *base, const acp_job_id *id, store_tx **tx)
{
    pgstore *st = (pgstore *)base;
    if (tx)
        *tx = NULL;
    STORE_CHECK(st, id, "store_delete_begin");
    if (!tx)
        return error_set(ACP_EINVAL, "store_delete_begin: NULL argument");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "delete job %s", acp_job_id_format(id, hex));
    store_params p = {0};
    store_param_id(&p, id);
    return store_tx_begin(st, what,
                          STORE_LOCK_ROW "DELETE FROM compute.jobs j USING old "
                                         "WHERE j.job_id = old.job_id "
                                         "AND old.status <> 'in-progress' "
                                         "RETURNING j.job_id" STORE_VERDICT,
                          &p, "it cannot be deleted", tx, NULL);
}

static int pgstore_tx_end(store_tx *base, bool commit)
{
    pgstore_tx *tx = (pgstore_tx *)base;
    if (!tx)
        return 0;
    pgstore *st = tx->st;
    char what[96];
    snprintf(what, sizeof what, "%s: %s", tx->what, commit ? "commit" : "rollback");
    PGresult *res;
    int rc = store_exec(st, tx->conn, false, what, commit ? "COMMIT" : "ROLLBACK", NULL, &res);
    if (rc == 0) {
        /* The server answers COMMIT of a failed transaction with ROLLBACK. */
        if (commit && strcmp(PQcmdStatus(res), "COMMIT") != 0)
            rc = store_fail(st, ACP_EDB, "%s: the transaction was rolled back", what);
        PQclear(res);
    } else if (!commit && PQstatus(tx->conn) == CONNECTION_BAD) {
        rc = 0; /* the transaction died with its connection: rolled back */
    }
    store_give_back(st, tx->conn);
    free(tx);
    return rc;
}

/* ---- recording a run: the row locked across the uploads ---------------- */

static int pgstore_finish_begin(store *base, const acp_job_id *id, const char *owner,
                                unsigned attempts, int64_t grabbed, store_tx **tx,
                                acp_job_status *recorded)
{
    pgstore *st = (pgstore *)base;
    if (tx)
        *tx = NULL;
    STORE_CHECK(st, id, "store_finish_begin");
    if (!tx || !owner || !recorded)
        return error_set(ACP_EINVAL, "store_finish_begin: NULL argument");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "record job %s", acp_job_id_format(id, hex));
    store_params p = {0};
    store_param_id(&p, id);
    pgstore_tx *t = calloc(1, sizeof *t);
    if (!t)
        return store_fail(st, ACP_ENOMEM, "%s: out of memory", what);
    t->base.st = &st->base;
    t->st = st;
    snprintf(t->what, sizeof t->what, "%s", what);
    int rc = store_borrow(st, what, &t->conn);
    if (rc) {
        free(t);
        return rc;
    }
    store_begin begin = {what,
                         "SELECT status, lease_owner, attempts, "
                         "(extract(epoch FROM grabbed) * 1000000)::bigint "
                         "FROM compute.jobs WHERE job_id = $1::bytea FOR UPDATE",
                         &p, NULL};
    rc = store_run_tx(st, t->conn, what, store_begin_once, &begin);
    if (rc == 0) {
        PGresult *res = begin.res;
        acp_job_status status = ACP_STATUS_QUEUED;
        bool found = PQntuples(res) == 1;
        if (found && store_status_parse(PQgetvalue(res, 0, 0), &status) != 0)
            rc = store_fail(st, ACP_EDB, "%s: unknown status '%s'", what, PQgetvalue(res, 0, 0));
        bool same_claim = found && !PQgetisnull(res, 0, 3) &&
                          strtoul(PQgetvalue(res, 0, 2), NULL, 10) == attempts &&
                          store_get_int64(res, 0, 3) == grabbed;
        if (rc) {
            /* set above */
        } else if (found && status == ACP_STATUS_IN_PROGRESS && !PQgetisnull(res, 0, 1) &&
                   strcmp(PQgetvalue(res, 0, 1), owner) == 0) {
            rc = 0;
        } else if (same_claim && (status == ACP_STATUS_COMPLETE || status == ACP_STATUS_FAILED)) {
            /* Only the lease owner finishes a claim, and a new claim or a
             * requeue changes attempts or grabbed: a COMMIT whose answer
             * was lost went through. */
            *recorded = status;
            rc = 1;
        } else {
            rc = store_fail(st, ACP_ECONFLICT, "%s: %s", what,
                            found ? "the job is no longer in-progress leased by this process"
                                  : "no such job");
        }
        PQclear(res);
    }
    if (rc) {
        store_give_back(st, t->conn);
        free(t);
        return rc;
    }
    *tx = &t->base;
    return 0;
}

static int pgstore_finish_tx(store_tx *base, acp_job_status status, const char *message,
                             const char *const *outputs, size_t output_count, const acp_job_id *id)
{
    pgstore_tx *tx = (pgstore_tx *)base;
    if (!tx || !id)
        return error_set(ACP_EINVAL, "store_finish_tx: NULL argument");
    pgstore *st = tx->st;
    if (status != ACP_STATUS_COMPLETE && status != ACP_STATUS_FAILED)
        return store_fail(st, ACP_EINVAL, "%s: status %d is neither complete nor failed", tx->what,
                          (int)status);
    buf array = BUF_INIT;
    int rc = store_text_array(st, tx->what, outputs, output_count, &array);
    if (rc) {
        buf_free(&array);
        return rc;
    }
    store_params p = {0};
    store_param_id(&p, id);
    store_param_text(&p, store_status_name(status));
    store_param_text(&p, message);
    store_param_text(&p, array.data);
    PGresult *res;
    rc = store_exec(st, tx->conn, false, tx->what,
                    "UPDATE compute.jobs SET status = $2, finished = now(), error = $3, "
                    "output_files = $4::varchar[], lease_owner = NULL, lease_expires = NULL "
                    "WHERE job_id = $1::bytea",
                    &p, &res);
    buf_free(&array);
    if (rc == 0)
        PQclear(res);
    return rc;
}

static int pgstore_delete_expired(store *base, const acp_job_id *id)
{
    pgstore *st = (pgstore *)base;
    STORE_CHECK(st, id, "store_delete_expired");
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "delete expired job %s", acp_job_id_format(id, hex));
    store_params p = {0};
    store_param_id(&p, id);
    PGresult *res;
    int rc = store_query(st, false, what,
                         "DELETE FROM compute.jobs WHERE job_id = $1::bytea AND status = 'expired'",
                         &p, &res);
    if (rc)
        return rc;
    bool deleted = strcmp(PQcmdTuples(res), "0") != 0;
    PQclear(res);
    if (deleted)
        return 0;
    return store_explain_miss(st, id, what, ACP_ECONFLICT, "expired");
}

/* ------------------------------------------------------------------------ */
/* Listing                                                                  */
/* ------------------------------------------------------------------------ */

#define STORE_EXPIRABLE(after)                                                                     \
    "SELECT encode(job_id, 'hex') FROM compute.jobs "                                              \
    "WHERE status = 'complete' AND last_accessed < $1::timestamptz" after                          \
    " ORDER BY job_id LIMIT $2::bigint"

/* Served by jobs_complete_id_idx: a page reads complete jobs in id order
 * from @after until @limit qualify, so a pass over every page reads each
 * complete job once. */
static int pgstore_list_expirable(store *base, int64_t before, const acp_job_id *after,
                                  size_t limit, acp_job_id **ids, size_t *count)
{
    pgstore *st = (pgstore *)base;
    if (ids)
        *ids = NULL;
    if (count)
        *count = 0;
    if (!st || !ids || !count)
        return error_set(ACP_EINVAL, "store_list_expirable: NULL argument");
    if (limit == 0)
        return 0;
    const char *what = "list expirable jobs";
    store_params p = {0};
    int rc = store_param_time(st, &p, what, before);
    if (rc)
        return rc;
    char max[24];
    snprintf(max, sizeof max, "%zu", limit);
    store_param_text(&p, max);
    if (after)
        store_param_id(&p, after);
    PGresult *res;
    rc = store_query(st, true, what,
                     after ? STORE_EXPIRABLE(" AND job_id > $3::bytea") : STORE_EXPIRABLE(""), &p,
                     &res);
    if (rc)
        return rc;
    int rows = PQntuples(res);
    if (rows > 0) {
        *ids = calloc((size_t)rows, sizeof **ids);
        if (!*ids)
            rc = store_fail(st, ACP_ENOMEM, "%s: out of memory reading %d ids", what, rows);
    }
    for (int r = 0; rc == 0 && r < rows; r++)
        rc = store_get_id(st, res, r, 0, &(*ids)[r]);
    PQclear(res);
    if (rc) {
        free(*ids);
        *ids = NULL;
        return rc;
    }
    *count = (size_t)rows;
    return 0;
}

/* Rows of STORE_JOB_COLUMNS into a new array. */
static int store_read_jobs(const pgstore *st, const PGresult *res, store_job **out, size_t *count)
{
    int rows = PQntuples(res);
    if (rows == 0)
        return 0;
    store_job *jobs = calloc((size_t)rows, sizeof *jobs);
    if (!jobs)
        return store_fail(st, ACP_ENOMEM, "out of memory reading %d jobs", rows);
    for (int r = 0; r < rows; r++) {
        store_job_init(&jobs[r]);
        int rc = store_read_job(st, res, r, &jobs[r]);
        if (rc) {
            for (int k = 0; k <= r; k++)
                store_job_free(&jobs[k]);
            free(jobs);
            return rc;
        }
    }
    *out = jobs;
    *count = (size_t)rows;
    return 0;
}

/* Every page is a keyset scan of an index in (created, job_id) order, from
 * the cursor on. Without a filter, of the (created, job_id) index. With a
 * status or queue filter, one scan per wanted status (LATERAL over their
 * names) of the (status, ...) or (queue, status, ...) index, each stopping
 * after @limit rows, then a sort of those at most 5 x @limit rows: a page
 * costs the same however rare the wanted jobs are, where filtering the plain
 * order would read past every unwanted one. */
static int pgstore_list(store *base, unsigned statuses, const char *queue, int64_t after_created,
                        const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count)
{
    pgstore *st = (pgstore *)base;
    if (rows)
        *rows = NULL;
    if (count)
        *count = 0;
    if (!st || !rows || !count)
        return error_set(ACP_EINVAL, "store_list: NULL argument");
    const char *what = "list jobs";
    const char *names[STORE_STATUS_COUNT];
    size_t name_count = 0;
    unsigned known = 0;
    for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_EXPIRED; s++) {
        known |= 1u << s;
        if (statuses == 0 || (statuses & (1u << s)))
            names[name_count++] = store_status_names[s];
    }
    if (statuses & ~known)
        return store_fail(st, ACP_EINVAL, "%s: the status set 0x%x has bits of no status", what,
                          statuses);
    if (limit == 0)
        return 0;

    store_params p = {0};
    char cursor[96] = "", queue_match[32] = "", max[24];
    if (after_id) {
        int rc = store_param_time(st, &p, what, after_created);
        if (rc)
            return rc;
        store_param_id(&p, after_id);
        snprintf(cursor, sizeof cursor, " AND (created, job_id) > ($%d::timestamptz, $%d::bytea)",
                 p.count - 1, p.count);
    }
    snprintf(max, sizeof max, "%zu", limit);
    store_param_text(&p, max);
    int limit_param = p.count;
    buf sql = BUF_INIT, array = BUF_INIT;
    int rc;
    if (!queue && name_count == STORE_STATUS_COUNT) {
        rc = buf_printf(&sql,
                        "SELECT " STORE_JOB_COLUMNS " FROM compute.jobs WHERE true%s "
                        "ORDER BY created, job_id LIMIT $%d::bigint",
                        cursor, limit_param);
    } else {
        rc = store_text_array(st, what, names, name_count, &array);
        if (rc == 0) {
            store_param_text(&p, array.data);
            int statuses_param = p.count;
            if (queue) {
                store_param_text(&p, queue);
                snprintf(queue_match, sizeof queue_match, " AND queue = $%d", p.count);
            }
            rc = buf_printf(&sql,
                            "SELECT l.* FROM unnest($%d::text[]) AS w(wanted) CROSS JOIN LATERAL ("
                            "  SELECT " STORE_JOB_COLUMNS ", created AS sort_created, "
                            "    job_id AS sort_id FROM compute.jobs"
                            "  WHERE status = w.wanted%s%s"
                            "  ORDER BY created, job_id LIMIT $%d::bigint) AS l "
                            "ORDER BY l.sort_created, l.sort_id LIMIT $%d::bigint",
                            statuses_param, queue_match, cursor, limit_param, limit_param);
        }
    }
    PGresult *res = NULL;
    if (rc == 0)
        rc = store_query(st, true, what, sql.data, &p, &res);
    buf_free(&sql);
    buf_free(&array);
    if (rc)
        return rc;
    rc = store_read_jobs(st, res, rows, count);
    PQclear(res);
    return rc;
}

static int pgstore_exists(store *base, const acp_job_id *ids, size_t count, bool *exists)
{
    pgstore *st = (pgstore *)base;
    if (!st || (count > 0 && (!ids || !exists)))
        return error_set(ACP_EINVAL, "store_exists: NULL argument");
    if (count == 0)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "look up %zu job ids", count);
    /* A bytea[] literal: {"\\x<hex>",...}; inside quotes "\\" is one "\". */
    buf array = BUF_INIT;
    int rc = buf_puts(&array, "{");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        char hex[ACP_JOB_ID_STRLEN];
        exists[i] = false;
        rc = buf_printf(&array, "%s\"\\\\x%s\"", i ? "," : "", acp_job_id_format(&ids[i], hex));
    }
    if (rc == 0)
        rc = buf_puts(&array, "}");
    if (rc) {
        buf_free(&array);
        return error_prefix(rc, st->where);
    }
    store_params p = {0};
    store_param_text(&p, array.data);
    PGresult *res;
    /* The positions (1-based) of the ids that have a row: one primary key
     * probe per id, and duplicates in @ids need no matching up. */
    rc = store_query(st, true, what,
                     "SELECT i FROM unnest($1::bytea[]) WITH ORDINALITY AS x(id, i) "
                     "WHERE EXISTS (SELECT 1 FROM compute.jobs j WHERE j.job_id = x.id)",
                     &p, &res);
    buf_free(&array);
    if (rc)
        return rc;
    for (int r = 0; r < PQntuples(res); r++) {
        long long position = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (position >= 1 && (unsigned long long)position <= count)
            exists[position - 1] = true;
    }
    PQclear(res);
    return 0;
}

static int pgstore_runs_alive(store *base, const acp_job_id *ids, const unsigned *attempts,
                              size_t count, bool *alive)
{
    pgstore *st = (pgstore *)base;
    if (!st || (count > 0 && (!ids || !attempts || !alive)))
        return error_set(ACP_EINVAL, "store_runs_alive: NULL argument");
    if (count == 0)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "look up %zu job runs", count);
    /* Array literals as in store_exists, plus an int[] of the attempts. */
    buf id_array = BUF_INIT, attempt_array = BUF_INIT;
    int rc = buf_puts(&id_array, "{");
    if (rc == 0)
        rc = buf_puts(&attempt_array, "{");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        char hex[ACP_JOB_ID_STRLEN];
        alive[i] = false;
        rc = buf_printf(&id_array, "%s\"\\\\x%s\"", i ? "," : "", acp_job_id_format(&ids[i], hex));
        if (rc == 0)
            rc = buf_printf(&attempt_array, "%s%u", i ? "," : "", attempts[i]);
    }
    if (rc == 0)
        rc = buf_puts(&id_array, "}");
    if (rc == 0)
        rc = buf_puts(&attempt_array, "}");
    if (rc) {
        buf_free(&id_array);
        buf_free(&attempt_array);
        return error_prefix(rc, st->where);
    }
    store_params p = {0};
    store_param_text(&p, id_array.data);
    store_param_text(&p, attempt_array.data);
    PGresult *res;
    rc = store_query(st, true, what,
                     "SELECT x.i FROM unnest($1::bytea[], $2::int[]) WITH ORDINALITY "
                     "AS x(id, attempt, i) WHERE EXISTS (SELECT 1 FROM compute.jobs j "
                     "WHERE j.job_id = x.id AND j.status = 'in-progress' "
                     "AND j.attempts = x.attempt AND j.lease_expires > now())",
                     &p, &res);
    buf_free(&id_array);
    buf_free(&attempt_array);
    if (rc)
        return rc;
    for (int r = 0; r < PQntuples(res); r++) {
        long long position = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (position >= 1 && (unsigned long long)position <= count)
            alive[position - 1] = true;
    }
    PQclear(res);
    return 0;
}

static uint64_t pgstore_statement_count(const store *base)
{
    const pgstore *st = (const pgstore *)base;
    return atomic_load(&((pgstore *)st)->statements);
}

static const store_ops pgstore_ops = {
    .name = "postgres",
    .close = pgstore_close,
    .get = pgstore_get,
    .touch = pgstore_touch,
    .insert = pgstore_insert,
    .requeue = pgstore_requeue,
    .mark_dispatched = pgstore_mark_dispatched,
    .clear_dispatched = pgstore_clear_dispatched,
    .dispatch_failed = pgstore_dispatch_failed,
    .fail_undispatchable = pgstore_fail_undispatchable,
    .claim = pgstore_claim,
    .finish = pgstore_finish,
    .renew_leases = pgstore_renew_leases,
    .requeue_expired = pgstore_requeue_expired,
    .fail_abandoned = pgstore_fail_abandoned,
    .take_undispatched = pgstore_take_undispatched,
    .delete_job = pgstore_delete,
    .expire_begin = pgstore_expire_begin,
    .delete_begin = pgstore_delete_begin,
    .finish_begin = pgstore_finish_begin,
    .finish_tx = pgstore_finish_tx,
    .tx_end = pgstore_tx_end,
    .delete_expired = pgstore_delete_expired,
    .list_expirable = pgstore_list_expirable,
    .list = pgstore_list,
    .exists = pgstore_exists,
    .runs_alive = pgstore_runs_alive,
    .statement_count = pgstore_statement_count,
};
