/* The PostgreSQL connection pool and its retry rules: see pgpool.h. */
#include "pgpool.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-events.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "metrics.h"

#define PGPOOL_APPLICATION_NAME "async-platform"
/* Seconds per address tried: generous, since a busy server may take a while
 * to start a backend for a pool that grows under load. */
#define PGPOOL_CONNECT_TIMEOUT "10"

int pgpool_fail(const pgpool *pool, int code, const char *fmt, ...)
{
    char message[PGPOOL_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    return error_set(code, "%s: %s", pool->where, message);
}

/* Appends @len bytes of @text to the string in @out (capacity @size),
 * cutting what does not fit. */
static void pgpool_append(char *out, size_t size, const char *text, size_t len)
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

static bool pgpool_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

void pgpool_clean_message(const char *raw, char *out, size_t size)
{
    out[0] = '\0';
    const char *line = raw ? raw : "";
    while (*line) {
        const char *newline = strchr(line, '\n');
        const char *stop = newline ? newline : line + strlen(line);
        const char *s = line;
        while (s < stop && (*s == ' ' || *s == '\t'))
            s++;
        if (pgpool_starts_with(s, "connection to server ")) {
            const char *failed = strstr(s, " failed: ");
            if (failed && failed < stop)
                s = failed + strlen(" failed: ");
        }
        static const char *const severities[] = {"FATAL:  ", "ERROR:  "};
        for (size_t i = 0; i < sizeof severities / sizeof severities[0]; i++)
            if (pgpool_starts_with(s, severities[i]))
                s += strlen(severities[i]);
        const char *end = stop;
        while (end > s && (end[-1] == ' ' || end[-1] == '\r' || end[-1] == '\t'))
            end--;
        if (end > s) {
            if (out[0])
                pgpool_append(out, size, "; ", 2);
            pgpool_append(out, size, s, (size_t)(end - s));
        }
        line = newline ? newline + 1 : stop;
    }
    if (!out[0])
        pgpool_append(out, size, "unknown libpq error", strlen("unknown libpq error"));
}

/* Notices ("schema compute already exists, skipping") would go to stderr
 * by default. */
static void pgpool_on_notice(void *arg, const char *message)
{
    const pgpool *pool = arg;
    char clean[PGPOOL_MESSAGE_MAX];
    pgpool_clean_message(message, clean, sizeof clean);
    log_debug(&pool->log, "%s: %s", pool->where, clean);
}

/* The statements prepared on one server session, as the instance data of
 * its PGconn. libpq calls pgpool_on_event on PQreset (a new session has no
 * prepared statements) and PQfinish, so every path that resets or closes a
 * connection keeps the cache true without knowing of it. */
typedef struct pgpool_prepared {
    uint64_t hash;
    char *sql;
} pgpool_prepared;

typedef struct pgpool_session {
    size_t count; /* statement i is named "acp_<i>" on the server */
    pgpool_prepared statements[PGPOOL_PREPARED_MAX];
} pgpool_session;

static void pgpool_session_clear(pgpool_session *session)
{
    for (size_t i = 0; i < session->count; i++)
        free(session->statements[i].sql);
    session->count = 0;
}

static int pgpool_on_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    switch (id) {
    case PGEVT_REGISTER: {
        PGconn *conn = ((PGEventRegister *)info)->conn;
        pgpool_session *session = calloc(1, sizeof *session);
        if (!session)
            return 0;
        if (!PQsetInstanceData(conn, pgpool_on_event, session)) {
            free(session);
            return 0;
        }
        return 1;
    }
    case PGEVT_CONNRESET: {
        pgpool_session *session = PQinstanceData(((PGEventConnReset *)info)->conn, pgpool_on_event);
        if (session)
            pgpool_session_clear(session);
        return 1;
    }
    case PGEVT_CONNDESTROY: {
        pgpool_session *session =
            PQinstanceData(((PGEventConnDestroy *)info)->conn, pgpool_on_event);
        if (session) {
            pgpool_session_clear(session);
            free(session);
        }
        return 1;
    }
    default:
        return 1;
    }
}

/* FNV-1a: the SQL texts of dynamic statements (listing) are built in
 * buffers whose address says nothing, so the cache goes by content. */
static uint64_t pgpool_hash(const char *text)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * UINT64_C(1099511628211);
    return h;
}

/* Open a connection; @what (may be NULL) names the call that needs it. */
static int pgpool_connect(pgpool *pool, const char *what, PGconn **out)
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
    const char *values[] = {pool->host,
                            pool->port,
                            pool->dbname,
                            pool->user,
                            pool->password,
                            PGPOOL_CONNECT_TIMEOUT,
                            PGPOOL_APPLICATION_NAME,
                            "UTF8",
                            NULL};
    /* expand_dbname 0: a database name is a name, never a connection string. */
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (!conn)
        return pgpool_fail(pool, ACP_ENOMEM, "out of memory creating a connection");
    if (PQstatus(conn) != CONNECTION_OK) {
        char reason[PGPOOL_MESSAGE_MAX];
        pgpool_clean_message(PQerrorMessage(conn), reason, sizeof reason);
        PQfinish(conn);
        if (what)
            return pgpool_fail(pool, ACP_EDB, "%s: connecting: %s", what, reason);
        return pgpool_fail(pool, ACP_EDB, "%s", reason);
    }
    PQsetNoticeProcessor(conn, pgpool_on_notice, pool);
    if (!PQregisterEventProc(conn, pgpool_on_event, "async-platform", NULL)) {
        PQfinish(conn);
        return pgpool_fail(pool, ACP_ENOMEM, "out of memory creating a connection");
    }
    *out = conn;
    return 0;
}

int pgpool_connect_own(pgpool *pool, const char *what, PGconn **out)
{
    return pgpool_connect(pool, what, out);
}

/* False when the connection must be reset before use: libpq already knows
 * it is broken, it is not idle, or the server sent something to an idle
 * session (its termination notice or end of file). A false alarm costs one
 * reconnection. */
static bool pgpool_conn_usable(PGconn *conn)
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
static int pgpool_reset(pgpool *pool, PGconn *conn, char *reason, size_t size)
{
    static const long delays_ms[] = {0, 100, 400};
    for (size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
        if (delays_ms[i])
            clock_sleep_ms(delays_ms[i]);
        PQreset(conn);
        if (PQstatus(conn) == CONNECTION_OK) {
            metrics_backend_reconnect(pool->base.metrics);
            log_info(&pool->log, "%s: reconnected", pool->where);
            return 0;
        }
    }
    pgpool_clean_message(PQerrorMessage(conn), reason, size);
    return -1;
}

int pgpool_borrow(pgpool *pool, const char *what, PGconn **out)
{
    PGconn *conn = NULL;
    pthread_mutex_lock(&pool->lock);
    while (pool->idle_count == 0 && pool->open_count >= pool->pool_size)
        pthread_cond_wait(&pool->available, &pool->lock);
    if (pool->idle_count > 0)
        conn = pool->idle[--pool->idle_count];
    else
        pool->open_count++;
    pthread_mutex_unlock(&pool->lock);

    if (!conn) {
        /* Connecting takes a round trip or more: not under the lock. */
        int rc = pgpool_connect(pool, what, &conn);
        if (rc) {
            pthread_mutex_lock(&pool->lock);
            pool->open_count--;
            pthread_cond_signal(&pool->available);
            pthread_mutex_unlock(&pool->lock);
            return rc;
        }
        log_debug(&pool->log, "%s: opened a pooled connection", pool->where);
    } else if (!pgpool_conn_usable(conn)) {
        log_warn(&pool->log, "%s: pooled connection lost; reconnecting", pool->where);
        char reason[PGPOOL_MESSAGE_MAX];
        if (pgpool_reset(pool, conn, reason, sizeof reason) != 0) {
            /* Kept in the pool, still broken: the next borrower resets it. */
            pthread_mutex_lock(&pool->lock);
            pool->idle[pool->idle_count++] = conn;
            pthread_cond_signal(&pool->available);
            pthread_mutex_unlock(&pool->lock);
            return pgpool_fail(pool, ACP_EDB, "%s: reconnecting: %s", what, reason);
        }
    }
    *out = conn;
    return 0;
}

void pgpool_give_back(pgpool *pool, PGconn *conn)
{
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQclear(PQexec(conn, "ROLLBACK"));
        atomic_fetch_add(&pool->statements, 1);
        metrics_backend_done(pool->base.metrics, METRICS_SQL_STATEMENT, false, 0);
        if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE) {
            log_warn(&pool->log, "%s: a pooled connection is stuck in a transaction; reconnecting",
                     pool->where);
            PQreset(conn);
        }
    }
    pthread_mutex_lock(&pool->lock);
    pool->idle[pool->idle_count++] = conn;
    pthread_cond_signal(&pool->available);
    pthread_mutex_unlock(&pool->lock);
}

/* Runs @sql with @params as a statement prepared on @conn's session,
 * preparing it first when it is new there. A full cache runs it unprepared
 * (a listing's variants are a handful; the bound is for the unforeseen).
 * *@unapplied is set when the failure came before anything was executed. */
static PGresult *pgpool_exec_params(pgpool *pool, PGconn *conn, const char *sql,
                                    const pgpool_params *params, bool *unapplied)
{
    *unapplied = false;
    pgpool_session *session = PQinstanceData(conn, pgpool_on_event);
    uint64_t hash = pgpool_hash(sql);
    size_t slot = PGPOOL_PREPARED_MAX;
    for (size_t i = 0; session && i < session->count; i++)
        if (session->statements[i].hash == hash && strcmp(session->statements[i].sql, sql) == 0) {
            slot = i;
            break;
        }
    char name[24];
    if (slot == PGPOOL_PREPARED_MAX && session && session->count < PGPOOL_PREPARED_MAX) {
        char *copy = strdup(sql);
        if (copy) {
            snprintf(name, sizeof name, "acp_%zu", session->count);
            PGresult *res = PQprepare(conn, name, sql, params->count, NULL);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                free(copy);
                *unapplied = true;
                return res;
            }
            PQclear(res);
            atomic_fetch_add(&pool->preparations, 1);
            slot = session->count++;
            session->statements[slot] = (pgpool_prepared){.hash = hash, .sql = copy};
        }
    }
    if (slot == PGPOOL_PREPARED_MAX)
        return PQexecParams(conn, sql, params->count, NULL, params->values, params->lengths,
                            params->formats, 0);
    snprintf(name, sizeof name, "acp_%zu", slot);
    return PQexecPrepared(conn, name, params->count, params->values, params->lengths,
                          params->formats, 0);
}

int pgpool_exec(pgpool *pool, PGconn *conn, bool repeatable, const char *what, const char *sql,
                const pgpool_params *params, PGresult **out)
{
    *out = NULL;
    bool reprepared = false;
    /* Outside a transaction a statement whose preparation failed can be
     * repeated on a new session; inside one, the transaction died with it. */
    bool in_tx = PQtransactionStatus(conn) != PQTRANS_IDLE;
    for (int attempt = 0;; attempt++) {
        atomic_fetch_add(&pool->statements, 1);
        bool unapplied = false;
        uint64_t start = metrics_now_ns();
        PGresult *res =
            params ? pgpool_exec_params(pool, conn, sql, params, &unapplied) : PQexec(conn, sql);
        unapplied = unapplied && !in_tx;
        ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        metrics_backend_done(pool->base.metrics, METRICS_SQL_STATEMENT,
                             status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK, start);
        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
            *out = res;
            return 0;
        }
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        /* Our statement vanished from the session (a DEALLOCATE ALL or
         * DISCARD ALL by someone else's code): nothing ran, prepare anew. */
        if (params && !reprepared && !in_tx && state && strcmp(state, "26000") == 0 &&
            PQstatus(conn) == CONNECTION_OK) {
            pgpool_session *session = PQinstanceData(conn, pgpool_on_event);
            if (session)
                pgpool_session_clear(session);
            PQclear(res);
            reprepared = true;
            attempt--;
            continue;
        }
        char reason[PGPOOL_MESSAGE_MAX];
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (primary)
            snprintf(reason, sizeof reason, "%s", primary);
        else
            pgpool_clean_message(res ? PQresultErrorMessage(res) : PQerrorMessage(conn), reason,
                                 sizeof reason);
        if (PQstatus(conn) == CONNECTION_BAD) {
            PQclear(res);
            /* A connection lost while preparing ran nothing: any statement
             * may be repeated then. */
            if ((repeatable || unapplied) && attempt == 0) {
                log_warn(&pool->log,
                         "%s: connection lost during %s (%s); reconnecting and retrying",
                         pool->where, what, reason);
                char again[PGPOOL_MESSAGE_MAX];
                if (pgpool_reset(pool, conn, again, sizeof again) == 0)
                    continue;
                return pgpool_fail(pool, ACP_EDB, "%s: connection lost (%s); reconnecting: %s",
                                   what, reason, again);
            }
            return pgpool_fail(
                pool, ACP_EDB, "%s: connection lost (%s)%s", what, reason,
                repeatable || unapplied ? "" : "; the statement may or may not have been applied");
        }
        int code = state && strcmp(state, "23505") == 0 ? ACP_ECONFLICT : ACP_EDB;
        PQclear(res);
        return pgpool_fail(pool, code, "%s: %s", what, reason);
    }
}

int pgpool_query(pgpool *pool, bool repeatable, const char *what, const char *sql,
                 const pgpool_params *params, PGresult **out)
{
    PGconn *conn;
    int rc = pgpool_borrow(pool, what, &conn);
    if (rc)
        return rc;
    rc = pgpool_exec(pool, conn, repeatable, what, sql, params, out);
    pgpool_give_back(pool, conn);
    return rc;
}

int pgpool_run_tx(pgpool *pool, PGconn *conn, const char *what,
                  int (*body)(pgpool *pool, PGconn *conn, void *arg), void *arg)
{
    for (int attempt = 0;; attempt++) {
        int rc = body(pool, conn, arg);
        if (rc == 0 || PQstatus(conn) != CONNECTION_BAD || attempt > 0)
            return rc;
        log_warn(&pool->log, "%s: connection lost during %s; reconnecting and retrying",
                 pool->where, what);
        char reason[PGPOOL_MESSAGE_MAX];
        if (pgpool_reset(pool, conn, reason, sizeof reason) != 0)
            return pgpool_fail(pool, ACP_EDB, "%s: connection lost; reconnecting: %s", what,
                               reason);
    }
}

static void pgpool_free(pgpool *pool)
{
    free(pool->host);
    free(pool->dbname);
    free(pool->user);
    free(pool->password);
    free(pool->where);
    free(pool->idle);
    free(pool);
}

int pgpool_open(pgpool **out, const acp_db_config *cfg, const logger *log)
{
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

    pgpool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return error_set(ACP_ENOMEM, "out of memory creating the database pool");
    buf where = BUF_INIT;
    pool->host = strdup(cfg->host);
    pool->dbname = strdup(cfg->dbname);
    pool->user = strdup(cfg->user);
    pool->password = strdup(cfg->password);
    pool->pool_size = (size_t)cfg->pool_size;
    pool->idle = calloc(pool->pool_size, sizeof *pool->idle);
    snprintf(pool->port, sizeof pool->port, "%d", cfg->port);
    if (log)
        pool->log = *log;
    else
        pool->log.level = ACP_LOG_INFO;
    if (!pool->host || !pool->dbname || !pool->user || !pool->password || !pool->idle ||
        buf_printf(&where, "postgres %s:%d", cfg->host, cfg->port) != 0) {
        buf_free(&where);
        pgpool_free(pool);
        return error_set(ACP_ENOMEM, "out of memory creating the database pool");
    }
    pool->where = where.data;
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        pgpool_free(pool);
        return error_set(ACP_ENOMEM, "cannot create the database pool's mutex");
    }
    if (clock_cond_init(&pool->available) != 0) {
        pthread_mutex_destroy(&pool->lock);
        pgpool_free(pool);
        return error_set(ACP_ENOMEM, "cannot create the database pool's condition variable");
    }

    /* The first connection at once, so that a wrong host, password or
     * database fails start-up rather than the first job. */
    PGconn *conn;
    int rc = pgpool_connect(pool, NULL, &conn);
    if (rc) {
        pgpool_close(pool);
        return rc;
    }
    pool->idle[pool->idle_count++] = conn;
    pool->open_count = 1;
    *out = pool;
    return 0;
}

void pgpool_close(pgpool *pool)
{
    if (!pool)
        return;
    for (size_t i = 0; i < pool->idle_count; i++)
        PQfinish(pool->idle[i]);
    pthread_cond_destroy(&pool->available);
    pthread_mutex_destroy(&pool->lock);
    pgpool_free(pool);
}

uint64_t pgpool_statement_count(const pgpool *pool)
{
    return atomic_load(&((pgpool *)pool)->statements);
}

uint64_t pgpool_preparation_count(const pgpool *pool)
{
    return atomic_load(&((pgpool *)pool)->preparations);
}
