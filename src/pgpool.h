/* The PostgreSQL store's connection pool: borrowing and giving back
 * connections, resetting broken ones with a short back-off, and running
 * statements and transactions with the retry rules below. Every message it
 * records begins with "postgres <host>:<port>".
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
 * ROLLBACK whose connection is lost has done its job.
 *
 * Prepared statements. A statement with parameters is prepared once per
 * server session (PQprepare on its first use on a connection, named
 * "acp_<n>", then PQexecPrepared): the server parses and plans it once
 * instead of on every call. The cache is per connection, keyed by the SQL
 * text (its content, so a text built at run time is found again), bounded
 * by PGPOOL_PREPARED_MAX (beyond it a statement runs unprepared), and
 * emptied whenever libpq resets the connection. A connection lost while
 * preparing ran nothing, so outside a transaction that statement is reset
 * and retried like a repeatable one. Statements without parameters
 * (BEGIN, COMMIT, migrations) run as simple queries. */
#ifndef ACP_PGPOOL_H
#define ACP_PGPOOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "async_platform.h"
#include "log.h"
#include "store.h"

#define PGPOOL_MESSAGE_MAX 768
#define PGPOOL_PARAMS_MAX  16
/* Prepared statements kept per connection: the store runs about 30
 * different statements with parameters. */
#define PGPOOL_PREPARED_MAX 64

/* The pool is the PostgreSQL store's handle: it begins with struct store,
 * so the store * that store_open returns is a pgpool * (pgpool_of). */
typedef struct pgpool {
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
    atomic_uint_least64_t statements;   /* executed, for acp_get_stats */
    atomic_uint_least64_t preparations; /* PQprepare calls that succeeded */
} pgpool;

/* Only for a store the PostgreSQL backend opened. */
static inline pgpool *pgpool_of(store *st)
{
    return (pgpool *)st;
}

/* The parameters of one statement (filled by pgvalue_param_*). */
typedef struct pgpool_params {
    int count;
    const char *values[PGPOOL_PARAMS_MAX];
    int lengths[PGPOOL_PARAMS_MAX];
    int formats[PGPOOL_PARAMS_MAX];
    unsigned char binary[PGPOOL_PARAMS_MAX][8]; /* the bytes of binary numbers */
} pgpool_params;

/* Validates @cfg, creates the pool and opens its first connection. */
int pgpool_open(pgpool **out, const acp_db_config *cfg, const logger *log);

/* A connection of the caller's own, outside the pool, with the pool's
 * settings (for LISTEN): close it with PQfinish. @what names the need in
 * the error. */
int pgpool_connect_own(pgpool *pool, const char *what, PGconn **out);

/* Closes every connection and frees the pool. NULL is fine. */
void pgpool_close(pgpool *pool);

/* Records "<where>: <message>" as this thread's error and returns @code. */
int pgpool_fail(const pgpool *pool, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* libpq's messages end in a newline, may span lines (hints after "\n\t",
 * one line per address tried) and begin with "connection to server at ...
 * failed: " and "FATAL:  ", which our "postgres host:port" prefix already
 * says. Keep the reasons, on one line. */
void pgpool_clean_message(const char *raw, char *out, size_t size);

/* Take an idle connection, or open one while fewer than pool_size exist, or
 * wait for one to be given back. */
int pgpool_borrow(pgpool *pool, const char *what, PGconn **out);

/* A connection still inside a transaction (a failed migration or *_begin)
 * is rolled back first: idle in the pool, it would hold its locks until its
 * next use. Should that fail on a live connection, closing it ends the
 * transaction on the server; a broken one is reset by the next borrower. */
void pgpool_give_back(pgpool *pool, PGconn *conn);

/* Run one statement on @conn: with @params through the extended protocol,
 * without (NULL) as a possibly multi-statement simple query. On success
 * *@out holds the result (the caller clears it). A unique violation gives
 * ACP_ECONFLICT, other SQL errors and connection loss ACP_EDB, each with
 * "@what: <reason>". When the connection breaks and @repeatable, it is
 * reset and the statement run once more. */
int pgpool_exec(pgpool *pool, PGconn *conn, bool repeatable, const char *what, const char *sql,
                const pgpool_params *params, PGresult **out);

/* Borrow, run one statement, give back. The result outlives the
 * connection, so it is returned to the pool before the rows are read. */
int pgpool_query(pgpool *pool, bool repeatable, const char *what, const char *sql,
                 const pgpool_params *params, PGresult **out);

/* Runs @body, which begins a transaction on @conn and may leave it open.
 * A transaction dies with its connection, applying nothing: so when the
 * connection is lost, it is reset and @body run once more. Whatever a failure
 * leaves open is rolled back by pgpool_give_back. */
int pgpool_run_tx(pgpool *pool, PGconn *conn, const char *what,
                  int (*body)(pgpool *pool, PGconn *conn, void *arg), void *arg);

/* Statements executed (every attempt): preparing one is not counted, so
 * the figure per job does not depend on how warm the pool's sessions are. */
uint64_t pgpool_statement_count(const pgpool *pool);

/* Statements prepared on the pool's sessions so far (a new session
 * prepares again). */
uint64_t pgpool_preparation_count(const pgpool *pool);

#endif
