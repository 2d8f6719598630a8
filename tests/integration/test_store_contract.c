/* The store's contract cases (tests/unit/store_contract.c) on PostgreSQL,
 * the same cases tests/unit/test_fake_store.c runs on the in-memory fake:
 * what passes here is what the real store does, so a case that fails only
 * on the fake shows a bug of the fake.
 *
 * The cases need a table of their own (they count rows and take batches
 * that would otherwise pick up other tests' jobs): the program creates a
 * database for its run, empties compute.jobs before each case and drops
 * the database at the end. Time moves by moving every stored time back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "stack_env.h"
#include "store_contract.h"

#define POOL_SIZE 8 /* the claim race, a transaction and the reads beside it */

static stack_env env;
static char dbname[64];
static PGconn *admin; /* on the run's database */
static store *shared; /* the store the cases use */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_to(const char *db)
{
    const char *keys[] = {
        "host", "port", "user", "password", "dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user,          env.pg_password,
                            db,          "10",        "acp-store-contract", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "# connection to %s: %s", db, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    return conn;
}

static int run(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    int rc = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? 0 : -1;
    if (rc)
        fprintf(stderr, "# %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return rc;
}

/* CREATE and DROP DATABASE cannot run in a transaction: from a connection to
 * the stack's own database. */
static int on_default_db(const char *sql)
{
    PGconn *conn = connect_to(env.pg_db);
    if (!conn)
        return -1;
    int rc = run(conn, sql);
    PQfinish(conn);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dbname, sizeof dbname, "acp_contract_%ld_%ld", (long)getpid(), (long)time(NULL));
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    if (on_default_db(sql) != 0)
        return -1;
    acp_db_config cfg = {
        .host = env.pg_host,
        .port = atoi(env.pg_port),
        .dbname = dbname,
        .user = env.pg_user,
        .password = env.pg_password,
        .pool_size = POOL_SIZE,
    };
    if (store_open(&shared, &cfg, NULL) != 0) {
        fprintf(stderr, "# store_open(%s): %s\n", dbname, acp_last_error());
        return -1;
    }
    admin = connect_to(dbname);
    /* A case that failed with a transaction open must not hang the next. */
    if (!admin || run(admin, "SET lock_timeout = '20s'") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(shared);
    if (admin)
        PQfinish(admin);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    return on_default_db(sql);
}

static store *pg_open(void)
{
    if (run(admin, "TRUNCATE compute.jobs") != 0)
        fail_msg("could not empty compute.jobs of %s", dbname);
    return shared;
}

static void pg_close(store *st)
{
    (void)st; /* shared by every case */
}

static void pg_advance(store *st, int64_t seconds)
{
    (void)st;
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, seconds);
    const char *values[] = {text};
    PGresult *res = PQexecParams(
        admin,
        "UPDATE compute.jobs SET created = created - d, last_accessed = last_accessed - d, "
        "grabbed = grabbed - d, finished = finished - d, lease_expires = lease_expires - d, "
        "dispatched = dispatched - d, dispatch_retry = dispatch_retry - d "
        "FROM (SELECT make_interval(secs => $1::double precision) AS d) AS shift",
        1, NULL, values, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    PQclear(res);
    if (status != PGRES_COMMAND_OK)
        fail_msg("could not move the stored times of %s: %s", dbname, PQerrorMessage(admin));
}

static const contract_backend pg_backend = {"postgres", pg_open, pg_close, pg_advance};

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    contract = &pg_backend;
    return _cmocka_run_group_tests("store_contract", contract_tests, contract_test_count,
                                   group_setup, group_teardown);
}
