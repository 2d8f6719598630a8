/* Integration tests of the pool's prepared statements (src/pgpool.h)
 * against the PostgreSQL server of scripts/stack: a statement with
 * parameters is prepared once per server session, found again by its text,
 * prepared anew on a new session after the backend was killed, and still
 * runs when the session's statements were dropped behind the pool's back or
 * the cache is full. Each test opens its own pool of one connection, so
 * every statement goes to the same session. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "clock.h"
#include "pgpool.h"
#include "pgvalue.h"
#include "stack_env.h"

#define POLL_ROUNDS 1000 /* x 10 ms: the bound of the wait for a killed backend */

static stack_env env;

static void quiet_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    if (level >= ACP_LOG_ERROR)
        fprintf(stderr, "# pool log: %s\n", message);
}

static const logger test_logger = {quiet_log, NULL, ACP_LOG_INFO};

static pgpool *open_pool(void)
{
    acp_db_config cfg = {
        .host = env.pg_host,
        .port = atoi(env.pg_port),
        .dbname = env.pg_db,
        .user = env.pg_user,
        .password = env.pg_password,
        .pool_size = 1,
    };
    pgpool *pool = NULL;
    if (pgpool_open(&pool, &cfg, &test_logger) != 0)
        fail_msg("pgpool_open: %s", acp_last_error());
    return pool;
}

/* Runs @sql with the one text parameter @param (or none when NULL) on the
 * pool's connection and returns its single value as a number. */
static long long value_of(pgpool *pool, bool repeatable, const char *sql, const char *param)
{
    pgpool_params p = {0};
    if (param)
        pgvalue_param_text(&p, param);
    PGresult *res = NULL;
    if (pgpool_query(pool, repeatable, "test statement", sql, param ? &p : NULL, &res) != 0)
        fail_msg("%s: %s", sql, acp_last_error());
    if (PQntuples(res) != 1 || PQnfields(res) != 1)
        fail_msg("%s: expected one value, got %d rows", sql, PQntuples(res));
    long long value = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return value;
}

/* How many statements with this text the pool's session has prepared, as
 * the server sees them. Asked without parameters, so that the question is
 * not itself prepared. */
static long long prepared_on_server(pgpool *pool, const char *sql)
{
    PGconn *conn;
    if (pgpool_borrow(pool, "count prepared", &conn) != 0)
        fail_msg("borrow: %s", acp_last_error());
    char *literal = PQescapeLiteral(conn, sql, strlen(sql));
    assert_non_null(literal);
    char query[1024];
    snprintf(query, sizeof query,
             "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s AND NOT from_sql",
             literal);
    PQfreemem(literal);
    PGresult *res = NULL;
    if (pgpool_exec(pool, conn, true, "count prepared", query, NULL, &res) != 0)
        fail_msg("count prepared: %s", acp_last_error());
    long long count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    pgpool_give_back(pool, conn);
    return count;
}

static PGconn *admin_connect(void)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user, env.pg_password,
                            env.pg_db,   "5",         NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("admin connection: %s", PQerrorMessage(conn));
    return conn;
}

/* Kills backend @pid and waits until the server no longer lists it. */
static void kill_backend(long long pid)
{
    PGconn *admin = admin_connect();
    char text[32];
    snprintf(text, sizeof text, "%lld", pid);
    const char *values[] = {text};
    PGresult *res = PQexecParams(admin, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL,
                                 values, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    int rounds = 0;
    for (;; rounds++) {
        res = PQexecParams(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1,
                           NULL, values, NULL, NULL, 0);
        assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
        bool gone = strcmp(PQgetvalue(res, 0, 0), "0") == 0;
        PQclear(res);
        if (gone)
            break;
        assert_true(rounds < POLL_ROUNDS);
        clock_sleep_ms(10);
    }
    PQfinish(admin);
}

static const char add_one[] = "SELECT $1::int + 1";

static void a_statement_is_prepared_once_per_session(void **state)
{
    (void)state;
    pgpool *pool = open_pool();
    uint64_t executed = pgpool_statement_count(pool);
    for (int i = 0; i < 5; i++) {
        char arg[8];
        snprintf(arg, sizeof arg, "%d", i);
        assert_int_equal(value_of(pool, false, add_one, arg), i + 1);
    }
    assert_int_equal(pgpool_preparation_count(pool), 1);
    assert_int_equal(prepared_on_server(pool, add_one), 1);
    /* Executions are counted, the preparation is not. */
    assert_int_equal(pgpool_statement_count(pool) - executed, 5 + 1);
    pgpool_close(pool);
}

static void a_killed_session_prepares_again(void **state)
{
    (void)state;
    pgpool *pool = open_pool();
    assert_int_equal(value_of(pool, false, add_one, "1"), 2);
    long long first = value_of(pool, true, "SELECT pg_backend_pid()", NULL);
    kill_backend(first);

    /* Not repeatable: the pool finds the idle connection dead before the
     * statement is sent, resets it, and prepares on the new session. */
    assert_int_equal(value_of(pool, false, add_one, "2"), 3);
    long long second = value_of(pool, true, "SELECT pg_backend_pid()", NULL);
    assert_true(second != first);
    assert_int_equal(pgpool_preparation_count(pool), 2);
    assert_int_equal(prepared_on_server(pool, add_one), 1);
    assert_int_equal(value_of(pool, false, add_one, "3"), 4);
    assert_int_equal(pgpool_preparation_count(pool), 2);
    pgpool_close(pool);
}

static void a_text_built_in_the_same_buffer_is_a_new_statement(void **state)
{
    (void)state;
    pgpool *pool = open_pool();
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT $1::int + %d", 10);
    assert_int_equal(value_of(pool, false, sql, "1"), 11);
    snprintf(sql, sizeof sql, "SELECT $1::int + %d", 20);
    assert_int_equal(value_of(pool, false, sql, "1"), 21);
    snprintf(sql, sizeof sql, "SELECT $1::int + %d", 10);
    assert_int_equal(value_of(pool, false, sql, "2"), 12);
    assert_int_equal(pgpool_preparation_count(pool), 2);
    pgpool_close(pool);
}

static void statements_dropped_behind_the_pools_back_are_prepared_again(void **state)
{
    (void)state;
    pgpool *pool = open_pool();
    assert_int_equal(value_of(pool, false, add_one, "1"), 2);
    PGresult *res = NULL;
    assert_int_equal(pgpool_query(pool, false, "deallocate", "DEALLOCATE ALL", NULL, &res), 0);
    PQclear(res);
    assert_int_equal(prepared_on_server(pool, add_one), 0);
    assert_int_equal(value_of(pool, false, add_one, "5"), 6);
    assert_int_equal(pgpool_preparation_count(pool), 2);
    assert_int_equal(prepared_on_server(pool, add_one), 1);
    pgpool_close(pool);
}

static void beyond_the_cache_statements_run_unprepared(void **state)
{
    (void)state;
    pgpool *pool = open_pool();
    char sql[64];
    for (int i = 0; i < PGPOOL_PREPARED_MAX + 5; i++) {
        snprintf(sql, sizeof sql, "SELECT $1::int + %d", i);
        assert_int_equal(value_of(pool, false, sql, "1"), i + 1);
    }
    assert_int_equal(pgpool_preparation_count(pool), PGPOOL_PREPARED_MAX);
    snprintf(sql, sizeof sql, "SELECT $1::int + %d", PGPOOL_PREPARED_MAX + 1);
    assert_int_equal(prepared_on_server(pool, sql), 0);
    assert_int_equal(value_of(pool, false, sql, "1"), PGPOOL_PREPARED_MAX + 2);
    pgpool_close(pool);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_statement_is_prepared_once_per_session),
        cmocka_unit_test(a_killed_session_prepares_again),
        cmocka_unit_test(a_text_built_in_the_same_buffer_is_a_new_statement),
        cmocka_unit_test(statements_dropped_behind_the_pools_back_are_prepared_again),
        cmocka_unit_test(beyond_the_cache_statements_run_unprepared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
