/* Integration tests of the PostgreSQL store against the real server of
 * scripts/stack: connection errors, migrations, every statement, the claim
 * race, the row-locking expire and delete transactions, listing, the pool
 * under load and recovery from killed connections.
 *
 * Each test makes its own rows with random ids and queue names, so reruns
 * do not collide. Tests whose effect is database-wide (migrations, killing
 * the pool's backends) use the second database, acp_test_b; nothing is ever
 * dropped in acp_test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "stack_env.h"
#include "store.h"

#define DB_B "acp_test_b"
/* 2001-02-03T04:05:06Z in microseconds since the epoch. */
#define OLD_TIME_US    INT64_C(981173106000000)
#define OLD_TIME_SQL   "'2001-02-03 04:05:06+00'"
#define POLL_ROUNDS    1000   /* x 10 ms: the bound of every wait for the server */
#define BATCH_ROUNDS   1000   /* bound of the drain loops over batch statements */
#define PAGE_CALLS_MAX 100000 /* bound of the paging loops (each call must advance) */

static stack_env env;
static store *shared; /* pool of 8 on acp_test, for the tests that need nothing special */

/* ---- helpers ----------------------------------------------------------- */

static atomic_int reconnects;

/* Quiet, but counts reconnections so that the recovery tests can tell a
 * transparent recovery from a kill that did not happen. */
static void test_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    if (strstr(message, ": reconnected"))
        atomic_fetch_add(&reconnects, 1);
    if (level >= ACP_LOG_ERROR)
        fprintf(stderr, "# store log: %s\n", message);
}

static const logger test_logger = {test_log, NULL, ACP_LOG_DEBUG};

static acp_db_config db_config(const char *dbname, int pool_size)
{
    acp_db_config cfg = {
        .host = env.pg_host,
        .port = atoi(env.pg_port),
        .dbname = dbname,
        .user = env.pg_user,
        .password = env.pg_password,
        .pool_size = pool_size,
    };
    return cfg;
}

static store *open_store(const char *dbname, int pool_size)
{
    acp_db_config cfg = db_config(dbname, pool_size);
    store *st = NULL;
    int rc = store_open(&st, &cfg, &test_logger);
    if (rc != 0)
        fail_msg("store_open(%s): %d %s", dbname, rc, acp_last_error());
    return st;
}

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *admin_connect(const char *dbname)
{
    const char *keys[] = {
        "host", "port", "user", "password", "dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user,      env.pg_password,
                            dbname,      "5",         "acp-store-test", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("admin connection to %s: %s", dbname, PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    return conn;
}

/* Runs @sql with up to one text parameter; fails the test on an error. */
static PGresult *admin_query(PGconn *conn, const char *sql, const char *param)
{
    const char *values[] = {param};
    PGresult *res =
        param ? PQexecParams(conn, sql, 1, NULL, values, NULL, NULL, 0) : PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    return res;
}

static void admin_exec(PGconn *conn, const char *sql, const char *param)
{
    PQclear(admin_query(conn, sql, param));
}

/* The single value @sql returns, copied into @out. */
static char *admin_value(PGconn *conn, const char *sql, const char *param, char *out, size_t size)
{
    PGresult *res = admin_query(conn, sql, param);
    if (PQntuples(res) != 1 || PQnfields(res) != 1)
        fail_msg("%s: expected one value, got %d rows", sql, PQntuples(res));
    snprintf(out, size, "%s", PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

static void new_id(acp_job_id *id, char hex[ACP_JOB_ID_STRLEN])
{
    assert_int_equal(acp_job_id_generate(id), 0);
    if (hex)
        acp_job_id_format(id, hex);
}

/* A queue name no other run uses (at most 32 characters). */
static void new_queue(char *out, const char *prefix)
{
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    snprintf(out, ACP_QUEUE_ID_MAX + 1, "%s-%.16s", prefix, hex);
}

static void insert_ok(store *st, const acp_job_id *id, const char *queue, const char *config)
{
    int rc = store_insert(st, id, queue, config, NULL, 0, NULL);
    if (rc != 0)
        fail_msg("store_insert: %d %s", rc, acp_last_error());
}

static void get_ok(store *st, const acp_job_id *id, store_job *job)
{
    int rc = store_get(st, id, job);
    if (rc != 0)
        fail_msg("store_get: %d %s", rc, acp_last_error());
}

/* The claim of a doorbell of @queue takes its best due job: @id here. */
static void claim_ok(store *st, const acp_job_id *id, const char *queue, const char *owner,
                     unsigned lease)
{
    store_job job;
    int rc = store_claim(st, queue, owner, lease, &job);
    if (rc != 0)
        fail_msg("store_claim: %d %s", rc, acp_last_error());
    char want[ACP_JOB_ID_STRLEN], got[ACP_JOB_ID_STRLEN];
    if (!acp_job_id_equal(&job.id, id))
        fail_msg("store_claim took job %s, not %s", acp_job_id_format(&job.id, got),
                 acp_job_id_format(id, want));
    store_job_free(&job);
}

static void delete_ok(store *st, const acp_job_id *id)
{
    int rc = store_delete(st, id);
    if (rc != 0)
        fail_msg("store_delete: %d %s", rc, acp_last_error());
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void assert_error_contains(const char *needle)
{
    const char *message = acp_last_error();
    if (!strstr(message, needle))
        fail_msg("error \"%s\" does not contain \"%s\"", message, needle);
}

static void assert_error_starts_with_server(const char *host, int port)
{
    char prefix[300];
    snprintf(prefix, sizeof prefix, "postgres %s:%d: ", host, port);
    const char *message = acp_last_error();
    if (strncmp(message, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", message, prefix);
    assert_null(strchr(message, '\n'));
}

static void terminate(PGconn *watcher, int pid)
{
    char pid_text[16], value[8];
    snprintf(pid_text, sizeof pid_text, "%d", pid);
    assert_string_equal(admin_value(watcher, "SELECT pg_terminate_backend($1::int, 5000)", pid_text,
                                    value, sizeof value),
                        "t");
}

/* ---- connection errors -------------------------------------------------- */

static void open_fails_with_a_wrong_password(void **state)
{
    (void)state;
    acp_db_config cfg = db_config(env.pg_db, 2);
    cfg.password = "not-the-password";
    store *st = (store *)&cfg; /* must be reset to NULL */
    assert_int_equal(store_open(&st, &cfg, &test_logger), ACP_EDB);
    assert_null(st);
    assert_error_starts_with_server(env.pg_host, cfg.port);
    char expected[200];
    snprintf(expected, sizeof expected, "password authentication failed for user \"%s\"",
             env.pg_user);
    assert_error_contains(expected);
    assert_null(strstr(acp_last_error(), "FATAL"));
}

static void open_fails_with_an_unknown_database(void **state)
{
    (void)state;
    char dbname[64], expected[128];
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    snprintf(dbname, sizeof dbname, "no_such_db_%.16s", hex);
    acp_db_config cfg = db_config(dbname, 2);
    store *st = NULL;
    assert_int_equal(store_open(&st, &cfg, &test_logger), ACP_EDB);
    assert_null(st);
    assert_error_starts_with_server(env.pg_host, cfg.port);
    snprintf(expected, sizeof expected, "database \"%s\" does not exist", dbname);
    assert_error_contains(expected);
}

static void open_fails_with_a_closed_port(void **state)
{
    (void)state;
    /* A port that was free a moment ago: bind to port 0, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);

    acp_db_config cfg = db_config(env.pg_db, 2);
    cfg.host = "127.0.0.1";
    cfg.port = ntohs(addr.sin_port);
    store *st = NULL;
    assert_int_equal(store_open(&st, &cfg, &test_logger), ACP_EDB);
    assert_null(st);
    assert_error_starts_with_server("127.0.0.1", cfg.port);
    assert_error_contains("Connection refused");
}

static void open_rejects_an_invalid_config(void **state)
{
    (void)state;
    store *st = NULL;
    acp_db_config cfg = db_config(env.pg_db, 0);
    assert_int_equal(store_open(&st, &cfg, &test_logger), ACP_EINVAL);
    assert_error_contains("pool size 0");
    cfg = db_config(NULL, 1);
    assert_int_equal(store_open(&st, &cfg, &test_logger), ACP_EINVAL);
    cfg = db_config(env.pg_db, 1);
    cfg.port = 70000;
    assert_int_equal(store_open(&st, &cfg, &test_logger), ACP_EINVAL);
    assert_null(st);
}

/* ---- migrations (in acp_test_b) --------------------------------------- */

/* The meta rows of the current schema; @database_id (37 bytes, may be
 * NULL) receives the random identity of migration 4. */
static void assert_meta_id(PGconn *conn, char *database_id)
{
    PGresult *res = admin_query(conn, "SELECT key, value FROM compute.meta ORDER BY key", NULL);
    assert_int_equal(PQntuples(res), 3);
    assert_string_equal(PQgetvalue(res, 0, 0), "acp_database_id");
    const char *id = PQgetvalue(res, 0, 1);
    assert_int_equal(strlen(id), 36); /* a UUID's text form */
    assert_int_equal(strspn(id, "0123456789abcdef-"), 36);
    if (database_id)
        snprintf(database_id, 37, "%s", id);
    assert_string_equal(PQgetvalue(res, 1, 0), "acp_schema");
    assert_string_equal(PQgetvalue(res, 1, 1), "7");
    assert_string_equal(PQgetvalue(res, 2, 0), "version");
    assert_string_equal(PQgetvalue(res, 2, 1), "1.0.0");
    PQclear(res);
}

static void assert_meta(PGconn *conn)
{
    assert_meta_id(conn, NULL);
}

static void assert_our_columns_and_indexes(PGconn *conn)
{
    char value[1024];
    assert_string_equal(
        admin_value(conn,
                    "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ',' "
                    "ORDER BY column_name) FROM information_schema.columns "
                    "WHERE table_schema = 'compute' AND table_name = 'jobs' AND column_name IN "
                    "('lease_owner', 'lease_expires', 'attempts', 'error', 'dispatched', "
                    "'dispatch_failures', 'dispatch_retry', 'layout', 'input_sizes', "
                    "'output_sizes')",
                    NULL, value, sizeof value),
        "attempts:integer:NO,dispatch_failures:integer:NO,"
        "dispatch_retry:timestamp with time zone:YES,dispatched:timestamp with time zone:YES,"
        "error:text:YES,input_sizes:ARRAY:YES,layout:text:NO,"
        "lease_expires:timestamp with time zone:YES,lease_owner:text:YES,output_sizes:ARRAY:YES");
    assert_string_equal(admin_value(conn,
                                    "SELECT string_agg(column_name || ':' || udt_name || ':' || "
                                    "coalesce(column_default, 'none'), ',' ORDER BY column_name) "
                                    "FROM information_schema.columns WHERE table_schema = "
                                    "'compute' AND table_name = 'jobs' AND column_name IN "
                                    "('layout', 'input_sizes', 'output_sizes')",
                                    NULL, value, sizeof value),
                        "input_sizes:_int8:none,layout:text:'lcp'::text,output_sizes:_int8:none");
    /* Migration 5's columns of job control and the status 'cancelled'. */
    assert_string_equal(
        admin_value(conn,
                    "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable || "
                    "':' || coalesce(column_default, 'none'), ',' ORDER BY column_name) "
                    "FROM information_schema.columns WHERE table_schema = 'compute' AND "
                    "table_name = 'jobs' AND column_name IN ('priority', 'not_before', "
                    "'max_attempts', 'timeout_seconds', 'backoff_base_ms', 'backoff_max_ms', "
                    "'cancel_requested')",
                    NULL, value, sizeof value),
        "backoff_base_ms:integer:NO:1000,backoff_max_ms:integer:NO:300000,"
        "cancel_requested:timestamp with time zone:YES:none,max_attempts:integer:NO:3,"
        "not_before:timestamp with time zone:NO:now(),priority:integer:NO:50,"
        "timeout_seconds:integer:NO:0");
    assert_non_null(strstr(admin_value(conn,
                                       "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                       "WHERE conrelid = 'compute.jobs'::regclass AND "
                                       "conname = 'compute_job_status_enum'",
                                       NULL, value, sizeof value),
                           "'cancelled'"));
    /* Migration 4's constraint, once however often it ran. */
    assert_string_equal(
        admin_value(conn,
                    "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), "
                    "'; ') FROM pg_constraint WHERE conrelid = "
                    "'compute.jobs'::regclass AND conname LIKE '%layout%'",
                    NULL, value, sizeof value),
        "compute_job_layout_enum CHECK ((layout = ANY (ARRAY['native'::text, "
        "'lcp'::text])))");
    /* Migration 2's indexes replace migration 1's, which are their prefixes;
     * migration 5 adds the claim's and the due jobs' over queued rows. */
    assert_string_equal(
        admin_value(conn,
                    "SELECT string_agg(indexname || ' ' || "
                    "regexp_replace(indexdef, '^.* USING btree ', ''), '; ' ORDER BY indexname) "
                    "FROM pg_indexes WHERE schemaname = 'compute' AND tablename = 'jobs'",
                    NULL, value, sizeof value),
        "jobs_claim_idx (queue, priority DESC, not_before, job_id) "
        "WHERE ((status)::text = 'queued'::text); "
        "jobs_complete_id_idx (job_id) WHERE ((status)::text = 'complete'::text); "
        "jobs_created_id_idx (created, job_id); "
        "jobs_due_idx (not_before) WHERE (((status)::text = 'queued'::text) AND "
        "(dispatched IS NULL)); jobs_pkey (job_id); "
        "jobs_queue_status_created_id_idx (queue, status, created, job_id); "
        "jobs_status_created_id_idx (status, created, job_id)");
}

typedef struct open_race {
    pthread_barrier_t *start;
    int rc;
    char error[512];
    store *st;
} open_race;

static void *open_racer(void *arg)
{
    open_race *race = arg;
    acp_db_config cfg = db_config(DB_B, 1);
    pthread_barrier_wait(race->start);
    race->rc = store_open(&race->st, &cfg, &test_logger);
    snprintf(race->error, sizeof race->error, "%s", acp_last_error());
    return NULL;
}

static void migration_from_nothing_is_idempotent_and_race_free(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(DB_B);
    admin_exec(admin, "DROP SCHEMA IF EXISTS compute CASCADE", NULL);

    /* Two processes starting at once against an empty database. */
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    open_race races[2] = {{.start = &start}, {.start = &start}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, open_racer, &races[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++)
        if (races[i].rc != 0)
            fail_msg("store_open %d: %d %s", i, races[i].rc, races[i].error);
    char database_id[37], again[37];
    assert_meta_id(admin, database_id);
    assert_our_columns_and_indexes(admin);

    /* Again, explicitly, and a third start: nothing changes, the database's
     * identity included. */
    assert_int_equal(store_migrate(races[0].st), 0);
    store *third = open_store(DB_B, 1);
    assert_meta_id(admin, again);
    assert_string_equal(again, database_id);
    assert_our_columns_and_indexes(admin);

    /* The schema works: a row goes in and out. */
    acp_job_id id;
    new_id(&id, NULL);
    insert_ok(third, &id, "q", NULL);
    store_job job;
    get_ok(races[1].st, &id, &job);
    assert_int_equal(job.attempts, 0);
    store_job_free(&job);
    delete_ok(third, &id);

    store_close(third);
    store_close(races[0].st);
    store_close(races[1].st);
    PQfinish(admin);
}

static void migration_upgrades_an_upstream_1_0_0_database(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(DB_B);
    admin_exec(admin, "DROP SCHEMA IF EXISTS compute CASCADE", NULL);
    /* What lib-compute-platform 1.0.0 leaves behind, with two of its rows. */
    admin_exec(
        admin,
        "CREATE SCHEMA IF NOT EXISTS compute;"
        "CREATE TABLE IF NOT EXISTS compute.meta ("
        "  key VARCHAR(32) PRIMARY KEY NOT NULL,"
        "  value VARCHAR(256) NOT NULL,"
        "  CONSTRAINT compute_meta_key_min_len CHECK ( length(key) > 2 ));"
        "CREATE TABLE IF NOT EXISTS compute.jobs ("
        "  job_id BYTEA PRIMARY KEY NOT NULL,"
        "  status VARCHAR(11) NOT NULL,"
        "  queue VARCHAR(32) NOT NULL,"
        "  config TEXT,"
        "  input_files VARCHAR[] NOT NULL,"
        "  created TIMESTAMP WITH TIME ZONE NOT NULL,"
        "  last_accessed TIMESTAMP WITH TIME ZONE NOT NULL,"
        "  grabbed TIMESTAMP WITH TIME ZONE,"
        "  finished TIMESTAMP WITH TIME ZONE,"
        "  output_files VARCHAR[]"
        "  CONSTRAINT compute_job_id_min_len CHECK ( length(job_id) = 16 ),"
        "  CONSTRAINT compute_job_status_enum"
        "    CHECK ( status IN ('queued', 'in-progress', 'complete', 'failed', 'expired') ));"
        "INSERT INTO compute.meta (key, value) VALUES ('version', '1.0.0')",
        NULL);
    acp_job_id done, waiting;
    char done_hex[ACP_JOB_ID_STRLEN], waiting_hex[ACP_JOB_ID_STRLEN];
    new_id(&done, done_hex);
    new_id(&waiting, waiting_hex);
    admin_exec(admin,
               "INSERT INTO compute.jobs VALUES (decode($1, 'hex'), 'complete', 'kotlin', "
               "'{\"n\":1}', ARRAY['a.txt', 'b c'], " OLD_TIME_SQL ", " OLD_TIME_SQL ", "
               "" OLD_TIME_SQL ", " OLD_TIME_SQL ", ARRAY['out.txt'])",
               done_hex);
    admin_exec(admin,
               "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
               "last_accessed) VALUES (decode($1, 'hex'), 'queued', 'kotlin', '{}', now(), now())",
               waiting_hex);

    store *st = open_store(DB_B, 2);
    assert_meta(admin);
    assert_our_columns_and_indexes(admin);

    store_job job;
    get_ok(st, &done, &job);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_string_equal(job.queue, "kotlin");
    assert_string_equal(job.config, "{\"n\":1}");
    assert_int_equal(job.input_count, 2);
    assert_string_equal(job.inputs[0], "a.txt");
    assert_string_equal(job.inputs[1], "b c");
    assert_int_equal(job.created, OLD_TIME_US);
    assert_int_equal(job.grabbed, OLD_TIME_US);
    assert_int_equal(job.finished, OLD_TIME_US);
    assert_int_equal(job.attempts, 0);
    assert_null(job.message);
    assert_int_equal(job.queue_position, -1);
    store_job_free(&job);

    /* The old queued row works with the new columns. */
    get_ok(st, &waiting, &job);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_int_equal(job.queue_position, 0);
    assert_null(job.config);
    assert_int_equal(job.input_count, 0);
    store_job_free(&job);
    claim_ok(st, &waiting, "kotlin", "owner", 60);
    get_ok(st, &waiting, &job);
    assert_int_equal(job.attempts, 1);
    store_job_free(&job);

    store_close(st);
    PQfinish(admin);
}

static void migration_2_replaces_the_indexes_of_migration_1(void **state)
{
    (void)state;
    store *st = open_store(DB_B, 1);
    store_close(st);
    /* Back to what acp_schema 1 left. */
    PGconn *admin = admin_connect(DB_B);
    admin_exec(
        admin,
        "DROP INDEX compute.jobs_created_id_idx, compute.jobs_status_created_id_idx, "
        "compute.jobs_queue_status_created_id_idx, compute.jobs_complete_id_idx;"
        "CREATE INDEX jobs_status_created_idx ON compute.jobs (status, created);"
        "CREATE INDEX jobs_queue_status_created_idx ON compute.jobs (queue, status, created);"
        "UPDATE compute.meta SET value = '1' WHERE key = 'acp_schema'",
        NULL);
    st = open_store(DB_B, 1);
    assert_meta(admin);
    assert_our_columns_and_indexes(admin);
    store_close(st);
    PQfinish(admin);
}

static void migration_4_keeps_old_rows_as_lcp_runs(void **state)
{
    (void)state;
    store *st = open_store(DB_B, 1);
    store_close(st);
    /* Back to what acp_schema 3 left, with a finished and a queued row. */
    PGconn *admin = admin_connect(DB_B);
    admin_exec(admin,
               "ALTER TABLE compute.jobs DROP CONSTRAINT compute_job_layout_enum, "
               "DROP COLUMN layout, DROP COLUMN input_sizes, DROP COLUMN output_sizes;"
               "DELETE FROM compute.meta WHERE key = 'acp_database_id';"
               "UPDATE compute.meta SET value = '3' WHERE key = 'acp_schema'",
               NULL);
    acp_job_id done, waiting;
    char done_hex[ACP_JOB_ID_STRLEN], waiting_hex[ACP_JOB_ID_STRLEN];
    new_id(&done, done_hex);
    new_id(&waiting, waiting_hex);
    admin_exec(admin,
               "INSERT INTO compute.jobs (job_id, status, queue, config, input_files, created, "
               "last_accessed, grabbed, finished, output_files, attempts) VALUES "
               "(decode($1, 'hex'), 'complete', 'old', '{\"n\":1}', ARRAY['in.txt'], "
               "now(), now(), now(), now(), ARRAY['out.txt', 'log.txt'], 1)",
               done_hex);
    admin_exec(admin,
               "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
               "last_accessed) VALUES (decode($1, 'hex'), 'queued', 'old', ARRAY['a', 'b'], "
               "now(), now())",
               waiting_hex);

    st = open_store(DB_B, 1);
    assert_meta(admin);
    assert_our_columns_and_indexes(admin);
    store_job job;
    get_ok(st, &done, &job);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.layout, ACP_LAYOUT_LCP);
    assert_int_equal(job.input_count, 1);
    assert_null(job.input_sizes);
    assert_int_equal(job.output_count, 2);
    assert_string_equal(job.outputs[0], "out.txt");
    assert_string_equal(job.outputs[1], "log.txt");
    assert_null(job.output_sizes);
    store_job_free(&job);

    /* The old queued row runs on as an lcp run, and records its sizes. */
    store_job run;
    assert_int_equal(store_claim(st, "old", "owner", 60, &run), 0);
    assert_true(acp_job_id_equal(&run.id, &waiting));
    assert_int_equal(run.layout, ACP_LAYOUT_LCP);
    assert_int_equal(run.input_count, 2);
    assert_null(run.input_sizes);
    store_job_free(&run);
    const char *outputs[] = {"r.txt"};
    const uint64_t sizes[] = {42};
    assert_int_equal(
        store_finish(st, &waiting, "owner", ACP_STATUS_COMPLETE, NULL, outputs, sizes, 1), 0);
    get_ok(st, &waiting, &job);
    assert_int_equal(job.output_count, 1);
    assert_true(job.output_sizes && job.output_sizes[0] == 42);
    store_job_free(&job);

    /* The constraint holds for rows written behind the store's back. */
    PGresult *res = PQexecParams(admin,
                                 "UPDATE compute.jobs SET layout = 'other' "
                                 "WHERE job_id = decode($1, 'hex')",
                                 1, NULL, (const char *const[]){done_hex}, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(res), "compute_job_layout_enum"));
    PQclear(res);
    store_close(st);
    PQfinish(admin);
}

/* Between a re-run and its end nothing reads the old run's sizes (the names
 * are gone, so they would read as unknown): the columns themselves show
 * that the re-run cleared them, and set the new run's. */
static void requeue_clears_the_output_columns(void **state)
{
    (void)state;
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN], queue[ACP_QUEUE_ID_MAX + 1], value[128];
    new_id(&id, hex);
    new_queue(queue, "rerun");
    const char *inputs[] = {"in"};
    const uint64_t sizes[] = {5};
    const store_run_options native = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = sizes};
    assert_int_equal(store_insert(shared, &id, queue, NULL, inputs, 1, &native), 0);
    claim_ok(shared, &id, queue, "owner", 60);
    const char *outputs[] = {"out"};
    const uint64_t output_sizes[] = {9};
    assert_int_equal(
        store_finish(shared, &id, "owner", ACP_STATUS_COMPLETE, NULL, outputs, output_sizes, 1), 0);
    PGconn *admin = admin_connect(env.pg_db);
    const char *sql = "SELECT concat_ws(' ', layout, input_sizes::text, "
                      "coalesce(output_files::text, 'none'), coalesce(output_sizes::text, 'none')) "
                      "FROM compute.jobs WHERE job_id = decode($1, 'hex')";
    assert_string_equal(admin_value(admin, sql, hex, value, sizeof value), "native {5} {out} {9}");
    assert_int_equal(store_requeue(shared, &id, queue, NULL, NULL, 0, NULL), 0);
    assert_string_equal(admin_value(admin, sql, hex, value, sizeof value), "lcp none none");
    PQfinish(admin);
    delete_ok(shared, &id);
}

/* ---- identity ------------------------------------------------------------ */

static void identity_is_the_databases_and_names_it(void **state)
{
    (void)state;
    store_identity mine, again, other;
    assert_int_equal(store_identity_read(shared, &mine), 0);
    store *second = open_store(env.pg_db, 1);
    assert_int_equal(store_identity_read(second, &again), 0);
    store_close(second);
    /* Another connection pool on the same database: the same database. */
    assert_string_equal(again.database_id, mine.database_id);
    char name[256];
    snprintf(name, sizeof name, "%s:%s/%s", env.pg_host, env.pg_port, env.pg_db);
    assert_string_equal(mine.name, name);

    /* The role of the tests may read the cluster's identifier; both
     * databases are in the same cluster, so it is the same, while the
     * database ids differ. */
    PGconn *admin = admin_connect(env.pg_db);
    char allowed[16], system_id[64];
    admin_value(admin, "SELECT has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')",
                NULL, allowed, sizeof allowed);
    if (strcmp(allowed, "t") == 0) {
        assert_non_null(mine.system_id);
        assert_string_equal(mine.system_id,
                            admin_value(admin,
                                        "SELECT system_identifier::text FROM pg_control_system()",
                                        NULL, system_id, sizeof system_id));
    } else {
        assert_null(mine.system_id);
    }
    PQfinish(admin);
    store *b = open_store(DB_B, 1);
    assert_int_equal(store_identity_read(b, &other), 0);
    store_close(b);
    assert_string_not_equal(other.database_id, mine.database_id);
    if (mine.system_id)
        assert_string_equal(other.system_id, mine.system_id);
    store_identity_free(&mine);
    store_identity_free(&again);
    store_identity_free(&other);
}

/* ---- rows --------------------------------------------------------------- */

static void insert_and_get_round_trip_every_field(void **state)
{
    (void)state;
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "round");
    static const char *const inputs[] = {
        "plain.txt",
        "with \"quotes\"",
        "com,ma",
        "{braces}",
        "back\\slash",
        "\\\"",
        "NULL",
        "",
        " spaces ",
        "\303\274nic\303\266de",
        "a'b",
    };
    const size_t input_count = sizeof inputs / sizeof inputs[0];
    const char *config = "{\"a\":[1,2.5,null],\"s\":\"x\\\"y\\\\z\",\"u\":\"\xc3\xa9\"}";

    acp_job_id id, bare;
    new_id(&id, NULL);
    new_id(&bare, NULL);
    int64_t before = now_us();
    assert_int_equal(store_insert(shared, &id, queue, config, inputs, input_count, NULL), 0);
    assert_int_equal(store_insert(shared, &bare, queue, NULL, NULL, 0, NULL), 0);

    store_job job;
    get_ok(shared, &id, &job);
    assert_true(acp_job_id_equal(&job.id, &id));
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_string_equal(job.queue, queue);
    assert_string_equal(job.config, config);
    assert_int_equal(job.input_count, input_count);
    for (size_t i = 0; i < input_count; i++)
        assert_string_equal(job.inputs[i], inputs[i]);
    /* Database times, in microseconds: within an hour of this clock. */
    assert_true(job.created > before - INT64_C(3600000000));
    assert_true(job.created < before + INT64_C(3600000000));
    assert_int_equal(job.last_accessed, job.created);
    assert_int_equal(job.grabbed, 0);
    assert_int_equal(job.finished, 0);
    assert_null(job.message);
    assert_int_equal(job.attempts, 0);
    assert_int_equal(job.queue_position, 0);
    store_job_free(&job);
    assert_null(job.config);
    assert_null(job.inputs);

    get_ok(shared, &bare, &job);
    assert_null(job.config);
    assert_int_equal(job.input_count, 0);
    assert_null(job.inputs);
    assert_int_equal(job.queue_position, 1);
    store_job_free(&job);

    /* Unknown ids. */
    acp_job_id unknown;
    char unknown_hex[ACP_JOB_ID_STRLEN];
    new_id(&unknown, unknown_hex);
    assert_int_equal(store_get(shared, &unknown, &job), ACP_ENOTFOUND);
    assert_error_contains(unknown_hex);

    delete_ok(shared, &id);
    delete_ok(shared, &bare);
}

static void insert_of_an_existing_id_conflicts(void **state)
{
    (void)state;
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(shared, &id, "dup", "{\"first\":true}");
    assert_int_equal(store_insert(shared, &id, "other", NULL, NULL, 0, NULL), ACP_ECONFLICT);
    char expected[100];
    snprintf(expected, sizeof expected, "job %s already exists", hex);
    assert_error_contains(expected);
    assert_error_starts_with_server(env.pg_host, atoi(env.pg_port));

    store_job job;
    get_ok(shared, &id, &job);
    assert_string_equal(job.queue, "dup");
    assert_string_equal(job.config, "{\"first\":true}");
    store_job_free(&job);
    delete_ok(shared, &id);
}

static void queue_positions_count_per_queue(void **state)
{
    (void)state;
    char qa[ACP_QUEUE_ID_MAX + 1], qb[ACP_QUEUE_ID_MAX + 1];
    new_queue(qa, "pos-a");
    new_queue(qb, "pos-b");
    PGconn *admin = admin_connect(env.pg_db);

    /* Queue a: a finished job first (not counted), then t1, then two jobs at
     * the same instant t2 (ordered by id), then t3. Queue b: t1, t2. */
    enum { A_DONE, A1, A2_LOW, A2_HIGH, A3, B1, B2, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    const char *queues[N] = {qa, qa, qa, qa, qa, qb, qb};
    const char *created[N] = {"2001-01-01 00:00:00+00", "2001-01-01 00:00:01+00",
                              "2001-01-01 00:00:02+00", "2001-01-01 00:00:02+00",
                              "2001-01-01 00:00:03+00", "2001-01-01 00:00:01+00",
                              "2001-01-01 00:00:02+00"};
    for (int i = 0; i < N; i++)
        new_id(&ids[i], hex[i]);
    if (memcmp(ids[A2_LOW].bytes, ids[A2_HIGH].bytes, 16) > 0) {
        acp_job_id swap = ids[A2_LOW];
        ids[A2_LOW] = ids[A2_HIGH];
        ids[A2_HIGH] = swap;
        acp_job_id_format(&ids[A2_LOW], hex[A2_LOW]);
        acp_job_id_format(&ids[A2_HIGH], hex[A2_HIGH]);
    }
    for (int i = 0; i < N; i++) {
        insert_ok(shared, &ids[i], queues[i], NULL);
        char sql[200];
        snprintf(sql, sizeof sql,
                 "UPDATE compute.jobs SET created = '%s' WHERE job_id = decode($1, 'hex')",
                 created[i]);
        admin_exec(admin, sql, hex[i]);
    }
    admin_exec(admin,
               "UPDATE compute.jobs SET status = 'complete' WHERE job_id = decode($1, 'hex')",
               hex[A_DONE]);

    const long expected[N] = {-1, 0, 1, 2, 3, 0, 1};
    for (int i = 0; i < N; i++) {
        store_job job;
        get_ok(shared, &ids[i], &job);
        if (job.queue_position != expected[i])
            fail_msg("job %d: position %ld, expected %ld", i, job.queue_position, expected[i]);
        store_job_free(&job);
    }

    /* Claiming the head moves everyone behind it up. */
    claim_ok(shared, &ids[A1], qa, "owner", 60);
    store_job job;
    get_ok(shared, &ids[A3], &job);
    assert_int_equal(job.queue_position, 2);
    store_job_free(&job);
    get_ok(shared, &ids[A1], &job);
    assert_int_equal(job.queue_position, -1);
    store_job_free(&job);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

/* ---- claim -------------------------------------------------------------- */

#define RACE_THREADS 8
#define RACE_JOBS    50

typedef struct claim_race {
    store *st;
    const char *queue;
    const acp_job_id *ids;
    pthread_barrier_t *start;
    atomic_int *wins;
    atomic_int *conflicts; /* claims that found nothing due */
    atomic_int *busy;      /* claims that found the due jobs held by other claims */
    atomic_int *others;
    int index;
} claim_race;

/* Claims of the queue (doorbells) until one finds nothing due: each claim
 * takes a job no other claimer has. */
static void *claim_racer(void *arg)
{
    claim_race *race = arg;
    char owner[32];
    snprintf(owner, sizeof owner, "racer-%d", race->index);
    pthread_barrier_wait(race->start);
    for (int round = 0; round < RACE_JOBS * 1000; round++) {
        store_job job;
        int rc = store_claim(race->st, race->queue, owner, 60, &job);
        if (rc == 0) {
            int j = 0;
            while (j < RACE_JOBS && !acp_job_id_equal(&job.id, &race->ids[j]))
                j++;
            if (j < RACE_JOBS)
                atomic_fetch_add(&race->wins[j], 1);
            else
                atomic_fetch_add(race->others, 1);
            store_job_free(&job);
        } else if (rc == ACP_ENOTFOUND) {
            atomic_fetch_add(race->conflicts, 1);
            break;
        } else if (rc == ACP_EBUSY) {
            atomic_fetch_add(race->busy, 1); /* again, as a worker does */
        } else {
            atomic_fetch_add(race->others, 1);
            fprintf(stderr, "# claim: %d %s\n", rc, acp_last_error());
        }
    }
    return NULL;
}

static void claim_race_has_exactly_one_winner(void **state)
{
    (void)state;
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "race");
    acp_job_id ids[RACE_JOBS];
    for (int j = 0; j < RACE_JOBS; j++) {
        new_id(&ids[j], NULL);
        insert_ok(shared, &ids[j], queue, NULL);
    }
    atomic_int wins[RACE_JOBS], conflicts, busy, others;
    for (int j = 0; j < RACE_JOBS; j++)
        atomic_init(&wins[j], 0);
    atomic_init(&conflicts, 0);
    atomic_init(&busy, 0);
    atomic_init(&others, 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACE_THREADS);
    claim_race races[RACE_THREADS];
    pthread_t threads[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        races[i] = (claim_race){shared, queue, ids, &start, wins, &conflicts, &busy, &others, i};
        assert_int_equal(pthread_create(&threads[i], NULL, claim_racer, &races[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);

    assert_int_equal(atomic_load(&others), 0);
    /* Every claimer stopped at an empty queue, every job was claimed once. */
    assert_int_equal(atomic_load(&conflicts), RACE_THREADS);
    for (int j = 0; j < RACE_JOBS; j++) {
        if (atomic_load(&wins[j]) != 1)
            fail_msg("job %d: %d wins", j, atomic_load(&wins[j]));
        store_job job;
        get_ok(shared, &ids[j], &job);
        assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
        assert_int_equal(job.attempts, 1);
        store_job_free(&job);
        delete_ok(shared, &ids[j]);
    }
}

static void claim_returns_the_row_or_says_why_not(void **state)
{
    (void)state;
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "claim");
    PGconn *admin = admin_connect(env.pg_db);
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    const char *inputs[] = {"in.txt"};
    assert_int_equal(store_insert(shared, &id, queue, "{\"k\":\"v\"}", inputs, 1, NULL), 0);

    store_job job;
    /* Another queue's doorbell: nothing of that queue is due. */
    char other[ACP_QUEUE_ID_MAX + 1];
    new_queue(other, "another");
    assert_int_equal(store_claim(shared, other, "me", 60, &job), ACP_ENOTFOUND);
    assert_error_contains(other);

    int64_t before = now_us();
    assert_int_equal(store_claim(shared, queue, "me", 90, &job), 0);
    assert_true(acp_job_id_equal(&job.id, &id));
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_string_equal(job.queue, queue);
    assert_string_equal(job.config, "{\"k\":\"v\"}");
    assert_int_equal(job.input_count, 1);
    assert_string_equal(job.inputs[0], "in.txt");
    assert_int_equal(job.attempts, 1);
    assert_true(job.grabbed >= job.created);
    assert_true(job.grabbed > before - INT64_C(3600000000));
    assert_int_equal(job.queue_position, -1);
    store_job_free(&job);

    char value[64];
    assert_string_equal(admin_value(admin,
                                    "SELECT lease_owner || ' ' || (extract(epoch FROM "
                                    "lease_expires - grabbed))::int FROM compute.jobs "
                                    "WHERE job_id = decode($1, 'hex')",
                                    hex, value, sizeof value),
                        "me 90");

    /* Already claimed: a duplicate message finds nothing due. */
    assert_int_equal(store_claim(shared, queue, "someone", 60, &job), ACP_ENOTFOUND);
    assert_error_contains(queue);
    assert_error_contains("no job of the queue is due");
    /* Finished, or gone: the same. */
    assert_int_equal(store_finish(shared, &id, "me", ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
    assert_int_equal(store_claim(shared, queue, "me", 60, &job), ACP_ENOTFOUND);
    delete_ok(shared, &id);
    assert_int_equal(store_claim(shared, queue, "me", 60, &job), ACP_ENOTFOUND);
    assert_int_equal(store_claim(shared, queue, "", 60, &job), ACP_EINVAL);
    PQfinish(admin);
}

/* ---- finish, renew, requeue_expired ------------------------------------ */

static void finish_is_fenced_by_the_lease_owner(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(shared, &id, "finish", NULL);
    claim_ok(shared, &id, "finish", "owner-a", 60);
    store_job before;
    get_ok(shared, &id, &before);

    assert_int_equal(store_finish(shared, &id, "owner-b", ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
    assert_error_contains("owner-a");
    store_job after;
    get_ok(shared, &id, &after);
    assert_int_equal(after.status, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(after.finished, 0);
    assert_int_equal(after.grabbed, before.grabbed);
    assert_null(after.message);
    store_job_free(&after);
    store_job_free(&before);

    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_QUEUED, NULL, NULL, NULL, 0),
                     ACP_EINVAL);

    const char *outputs[] = {"log.txt", "weird,\"name\"\\"};
    const char *message = "boom: \"quoted\"\nsecond line";
    assert_int_equal(
        store_finish(shared, &id, "owner-a", ACP_STATUS_FAILED, message, outputs, NULL, 2), 0);
    get_ok(shared, &id, &after);
    assert_int_equal(after.status, ACP_STATUS_FAILED);
    assert_string_equal(after.message, message);
    assert_true(after.finished >= after.grabbed);
    store_job_free(&after);
    char value[128];
    assert_string_equal(admin_value(admin,
                                    "SELECT array_to_json(output_files)::text || "
                                    "coalesce(lease_owner, '-') || "
                                    "coalesce(lease_expires::text, '-') "
                                    "FROM compute.jobs WHERE job_id = decode($1, 'hex')",
                                    hex, value, sizeof value),
                        "[\"log.txt\",\"weird,\\\"name\\\"\\\\\"]--");

    /* Finishing twice, or after the row is gone, is a lost lease. */
    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
    delete_ok(shared, &id);
    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
    PQfinish(admin);
}

/* A run's end is when it is recorded, not when its recording began: the
 * results are uploaded in between, which may take long. */
static void finished_is_the_time_the_run_is_recorded(void **state)
{
    (void)state;
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(shared, &id, "finish", NULL);
    claim_ok(shared, &id, "finish", "owner-a", 60);
    store_job run;
    get_ok(shared, &id, &run);
    store_tx *tx;
    acp_job_status recorded;
    assert_int_equal(
        store_finish_begin(shared, &id, "owner-a", run.attempts, run.grabbed, &tx, &recorded), 0);
    /* The uploads' time. */
    struct timespec pause = {0, 300 * 1000 * 1000};
    nanosleep(&pause, NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t uploaded = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &id), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    store_job after;
    get_ok(shared, &id, &after);
    /* The server's clock is this host's; 50 ms of slack for rounding. */
    if (after.finished < uploaded - 50000)
        fail_msg("finished %" PRId64 " us is before the uploads ended (%" PRId64 " us)",
                 after.finished, uploaded);
    store_job_free(&after);
    store_job_free(&run);
    delete_ok(shared, &id);
}

static void renew_extends_only_the_owners_leases(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char owner_a[40], owner_b[40];
    new_queue(owner_a, "owner-a");
    new_queue(owner_b, "owner-b");
    acp_job_id mine, theirs;
    char mine_hex[ACP_JOB_ID_STRLEN], theirs_hex[ACP_JOB_ID_STRLEN];
    new_id(&mine, mine_hex);
    new_id(&theirs, theirs_hex);
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "renew");
    insert_ok(shared, &mine, queue, NULL);
    insert_ok(shared, &theirs, queue, NULL);
    claim_ok(shared, &mine, queue, owner_a, 5);
    claim_ok(shared, &theirs, queue, owner_b, 5);

    size_t renewed = 99;
    const acp_job_id both[] = {mine, theirs};
    bool cancel[2] = {true, true};
    assert_int_equal(store_renew_leases(shared, owner_a, 3600, both, 2, &renewed, cancel), 0);
    assert_false(cancel[0] || cancel[1]);
    assert_int_equal(renewed, 1);
    const char *sql = "SELECT lease_expires > now() + interval '3000 seconds' FROM compute.jobs "
                      "WHERE job_id = decode($1, 'hex')";
    char value[16];
    assert_string_equal(admin_value(admin, sql, mine_hex, value, sizeof value), "t");
    assert_string_equal(admin_value(admin, sql, theirs_hex, value, sizeof value), "f");

    assert_int_equal(store_renew_leases(shared, "nobody-holds-this", 60, both, 2, &renewed, NULL),
                     0);
    assert_int_equal(renewed, 0);
    assert_int_equal(store_renew_leases(shared, owner_a, 60, NULL, 0, NULL, NULL), 0);
    /* Only the ids given: a lease of the owner's that is not among them
     * (a run it gave up on) runs out. */
    assert_int_equal(store_renew_leases(shared, owner_a, 60, &theirs, 1, &renewed, NULL), 0);
    assert_int_equal(renewed, 0);
    /* A row locked by a run being recorded is skipped, not waited for. */
    admin_exec(admin, "BEGIN", NULL);
    admin_exec(admin, "SELECT 1 FROM compute.jobs WHERE job_id = decode($1, 'hex') FOR UPDATE",
               mine_hex);
    assert_int_equal(store_renew_leases(shared, owner_a, 60, &mine, 1, &renewed, NULL), 0);
    assert_int_equal(renewed, 0);
    admin_exec(admin, "ROLLBACK", NULL);

    delete_ok(shared, &mine);
    delete_ok(shared, &theirs);
    PQfinish(admin);
}

/* Membership of @ids in every batch until a call returns nothing. */
typedef int (*batch_fn)(store *st, store_dispatch_list *out, void *arg);

static void drain(batch_fn fn, void *arg, const acp_job_id *ids, int n, int *seen,
                  store_dispatch *copies)
{
    for (int i = 0; i < n; i++)
        seen[i] = 0;
    for (int round = 0;; round++) {
        if (round == BATCH_ROUNDS)
            fail_msg("batch still returning rows after %d calls", BATCH_ROUNDS);
        store_dispatch_list list = {(store_dispatch *)&list, 99};
        int rc = fn(shared, &list, arg);
        if (rc != 0)
            fail_msg("batch: %d %s", rc, acp_last_error());
        if (list.count == 0) {
            assert_null(list.items);
            return;
        }
        for (size_t k = 0; k < list.count; k++)
            for (int i = 0; i < n; i++)
                if (acp_job_id_equal(&list.items[k].id, &ids[i])) {
                    seen[i]++;
                    if (copies) {
                        copies[i] = list.items[k];
                        list.items[k].config = NULL; /* moved */
                    }
                }
        store_dispatch_list_free(&list);
        assert_int_equal(list.count, 0);
    }
}

static int requeue_expired_batch(store *st, store_dispatch_list *out, void *arg)
{
    (void)arg;
    return store_requeue_expired(st, 100, out);
}

static void requeue_expired_takes_only_expired_running_jobs(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], owner[40];
    new_queue(queue, "expired");
    new_queue(owner, "dead-owner");
    enum { EXPIRED, LIVE, QUEUED_PAST, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        insert_ok(shared, &ids[i], queue, i == EXPIRED ? "{\"e\":1}" : NULL);
    }
    claim_ok(shared, &ids[EXPIRED], queue, owner, 3600);
    claim_ok(shared, &ids[LIVE], queue, owner, 3600);
    assert_int_equal(store_mark_dispatched(shared, &ids[EXPIRED]), 0);
    const char *expire = "UPDATE compute.jobs SET lease_expires = now() - interval '1 minute' "
                         "WHERE job_id = decode($1, 'hex')";
    admin_exec(admin, expire, hex[EXPIRED]);
    admin_exec(admin, expire, hex[QUEUED_PAST]);

    int seen[N];
    store_dispatch copies[N];
    memset(copies, 0, sizeof copies);
    drain(requeue_expired_batch, NULL, ids, N, seen, copies);
    assert_int_equal(seen[EXPIRED], 1);
    assert_int_equal(seen[LIVE], 0);
    assert_int_equal(seen[QUEUED_PAST], 0);
    assert_string_equal(copies[EXPIRED].queue, queue);
    assert_string_equal(copies[EXPIRED].config, "{\"e\":1}");
    free(copies[EXPIRED].config);

    store_job job;
    get_ok(shared, &ids[EXPIRED], &job);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_int_equal(job.grabbed, 0);
    assert_int_equal(job.attempts, 1);
    assert_string_equal(job.message,
                        "attempt 1 stopped: the process running it stopped (its lease expired)");
    store_job_free(&job);
    /* Not published: due after the back-off of a first attempt (under a
     * second), when store_take_undispatched hands it out. */
    char value[64];
    assert_string_equal(admin_value(admin,
                                    "SELECT coalesce(lease_owner, '-') || "
                                    "coalesce(lease_expires::text, '-') || "
                                    "(dispatched IS NULL) || (not_before > now() - interval "
                                    "'1 minute' AND not_before < now() + interval '1 second') "
                                    "FROM compute.jobs WHERE job_id = decode($1, 'hex')",
                                    hex[EXPIRED], value, sizeof value),
                        "--truetrue");
    get_ok(shared, &ids[LIVE], &job);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    store_job_free(&job);

    /* The old owner has lost its lease; a new claim counts an attempt. */
    assert_int_equal(
        store_finish(shared, &ids[EXPIRED], owner, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
        ACP_ECONFLICT);
    /* Its back-off over, it is due longer than QUEUED_PAST: claimed first. */
    admin_exec(admin,
               "UPDATE compute.jobs SET not_before = now() - interval '1 hour' "
               "WHERE job_id = decode($1, 'hex')",
               hex[EXPIRED]);
    claim_ok(shared, &ids[EXPIRED], queue, "new-owner", 60);
    get_ok(shared, &ids[EXPIRED], &job);
    assert_int_equal(job.attempts, 2);
    store_job_free(&job);

    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(shared, 0, &list), 0);
    assert_int_equal(list.count, 0);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

static int fail_abandoned_batch(store *st, store_dispatch_list *out, void *arg)
{
    (void)arg;
    return store_fail_abandoned(st, 100, out);
}

static void abandoned_jobs_fail_at_max_attempts(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], owner[40];
    new_queue(queue, "abandoned");
    new_queue(owner, "dead-owner");
    enum { AT_CAP, BELOW_CAP, LIVE_AT_CAP, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    /* Two attempts each (the row's max_attempts). */
    const store_run_options twice = {.priority = ACP_PRIORITY_DEFAULT, .max_attempts = 2};
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        assert_int_equal(store_insert(shared, &ids[i], queue, NULL, NULL, 0, &twice), 0);
        claim_ok(shared, &ids[i], queue, owner, 3600);
    }
    const char *second = "UPDATE compute.jobs SET attempts = 2 WHERE job_id = decode($1, 'hex')";
    admin_exec(admin, second, hex[AT_CAP]);
    admin_exec(admin, second, hex[LIVE_AT_CAP]);
    const char *expire = "UPDATE compute.jobs SET lease_expires = now() - interval '1 minute' "
                         "WHERE job_id = decode($1, 'hex')";
    admin_exec(admin, expire, hex[AT_CAP]);
    admin_exec(admin, expire, hex[BELOW_CAP]);

    int seen[N];
    drain(requeue_expired_batch, NULL, ids, N, seen, NULL);
    assert_int_equal(seen[AT_CAP], 0);
    assert_int_equal(seen[BELOW_CAP], 1);
    assert_int_equal(seen[LIVE_AT_CAP], 0);
    store_dispatch copies[N];
    memset(copies, 0, sizeof copies);
    drain(fail_abandoned_batch, NULL, ids, N, seen, copies);
    assert_int_equal(seen[AT_CAP], 1);
    assert_int_equal(seen[BELOW_CAP], 0);
    assert_int_equal(seen[LIVE_AT_CAP], 0);
    assert_int_equal(copies[AT_CAP].status, ACP_STATUS_FAILED);
    free(copies[AT_CAP].config);

    store_job job;
    get_ok(shared, &ids[AT_CAP], &job);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_int_equal(job.attempts, 2);
    assert_true(job.finished > 0);
    assert_string_equal(
        job.message, "abandoned: the process running attempt 2 of 2 stopped (its lease expired)");
    store_job_free(&job);
    char value[64];
    assert_string_equal(admin_value(admin,
                                    "SELECT coalesce(lease_owner, '-') || "
                                    "coalesce(lease_expires::text, '-') FROM compute.jobs "
                                    "WHERE job_id = decode($1, 'hex')",
                                    hex[AT_CAP], value, sizeof value),
                        "--");
    /* The dead run cannot finish it any more. */
    assert_int_equal(
        store_finish(shared, &ids[AT_CAP], owner, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
        ACP_ECONFLICT);
    get_ok(shared, &ids[LIVE_AT_CAP], &job);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    store_job_free(&job);
    get_ok(shared, &ids[BELOW_CAP], &job);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    store_job_free(&job);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

static void runs_alive_needs_the_attempt_in_progress_with_a_lease(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "alive");
    enum { RUNNING, EXPIRED, DONE, UNKNOWN, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        if (i == UNKNOWN)
            continue;
        insert_ok(shared, &ids[i], queue, NULL);
        claim_ok(shared, &ids[i], queue, "some-owner", 3600);
    }
    admin_exec(admin,
               "UPDATE compute.jobs SET lease_expires = now() - interval '1 second' "
               "WHERE job_id = decode($1, 'hex')",
               hex[EXPIRED]);
    assert_int_equal(
        store_finish(shared, &ids[DONE], "some-owner", ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
        0);

    /* Each job at attempt 1 (the claim's), RUNNING also at 0 and 2. */
    acp_job_id runs[] = {ids[RUNNING], ids[RUNNING], ids[RUNNING],
                         ids[EXPIRED], ids[DONE],    ids[UNKNOWN]};
    unsigned attempts[] = {1, 0, 2, 1, 1, 1};
    bool alive[6];
    memset(alive, 1, sizeof alive);
    assert_int_equal(store_runs_alive(shared, runs, attempts, 6, alive), 0);
    bool expected[] = {true, false, false, false, false, false};
    for (int i = 0; i < 6; i++)
        if (alive[i] != expected[i])
            fail_msg("run %d: alive is %d", i, alive[i]);
    assert_int_equal(store_runs_alive(shared, NULL, NULL, 0, NULL), 0);

    for (int i = 0; i < UNKNOWN; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

/* ---- dispatch bookkeeping ---------------------------------------------- */

/* The queue of the test at hand, served by the taker. */
static char take_queue[ACP_QUEUE_ID_MAX + 1];

static int take_batch(store *st, store_dispatch_list *out, void *arg)
{
    const char *queues[] = {take_queue};
    return store_take_undispatched(st, *(unsigned *)arg, queues, 1, 100, out, NULL);
}

static void take_undispatched_marks_and_clear_makes_eligible(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "dispatch");
    strcpy(take_queue, queue);
    enum { NEVER, RECENT, LONG_AGO, RUNNING, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    /* RUNNING first, claimed at once (the claim takes the best due job). */
    for (int i = N - 1; i >= 0; i--) {
        new_id(&ids[i], hex[i]);
        char config[32];
        snprintf(config, sizeof config, "{\"i\":%d}", i);
        insert_ok(shared, &ids[i], queue, config);
        if (i == RUNNING)
            claim_ok(shared, &ids[RUNNING], queue, "runner", 60);
    }
    /* Inserted jobs count as being published; NEVER's publish failed. */
    assert_int_equal(store_clear_dispatched(shared, &ids[NEVER]), 0);
    assert_int_equal(store_mark_dispatched(shared, &ids[RECENT]), 0);
    admin_exec(admin,
               "UPDATE compute.jobs SET dispatched = now() - interval '2 hours' "
               "WHERE job_id = decode($1, 'hex')",
               hex[LONG_AGO]);

    unsigned window = 3600;
    int seen[N];
    store_dispatch copies[N];
    memset(copies, 0, sizeof copies);
    drain(take_batch, &window, ids, N, seen, copies);
    assert_int_equal(seen[NEVER], 1);
    assert_int_equal(seen[RECENT], 0);
    assert_int_equal(seen[LONG_AGO], 1);
    assert_int_equal(seen[RUNNING], 0);
    assert_string_equal(copies[NEVER].queue, queue);
    assert_string_equal(copies[NEVER].config, "{\"i\":0}");
    assert_string_equal(copies[LONG_AGO].config, "{\"i\":2}");
    free(copies[NEVER].config);
    free(copies[LONG_AGO].config);
    char value[16];
    assert_string_equal(admin_value(admin,
                                    "SELECT dispatched > now() - interval '1 minute' "
                                    "FROM compute.jobs WHERE job_id = decode($1, 'hex')",
                                    hex[NEVER], value, sizeof value),
                        "t");

    /* Within the window: nothing of ours again. */
    drain(take_batch, &window, ids, N, seen, NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 0);

    /* A failed publish makes the job eligible at once. */
    assert_int_equal(store_clear_dispatched(shared, &ids[RECENT]), 0);
    drain(take_batch, &window, ids, N, seen, NULL);
    assert_int_equal(seen[NEVER], 0);
    assert_int_equal(seen[RECENT], 1);
    assert_int_equal(seen[LONG_AGO], 0);

    acp_job_id unknown;
    new_id(&unknown, NULL);
    assert_int_equal(store_mark_dispatched(shared, &unknown), ACP_ENOTFOUND);
    assert_int_equal(store_clear_dispatched(shared, &unknown), ACP_ENOTFOUND);
    store_dispatch_list list;
    const char *queues[] = {queue};
    assert_int_equal(store_take_undispatched(shared, 60, queues, 1, 0, &list, NULL), 0);
    assert_int_equal(list.count, 0);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

/* Point 13: a job whose publish keeps failing waits longer each time (up to
 * a minute), so that it cannot take every batch; jobs of queues the taker
 * does not serve are not its to take; a success starts the count over. */
static void redispatch_backs_off_per_job_and_only_takes_served_queues(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], unserved[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "backoff");
    new_queue(unserved, "unserved");
    strcpy(take_queue, queue);
    enum { FAILING, FRESH, OTHER, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        insert_ok(shared, &ids[i], i == OTHER ? unserved : queue, "{}");
        assert_int_equal(store_clear_dispatched(shared, &ids[i]), 0);
    }
    char value[64];
    for (int failures = 1; failures <= 9; failures++) {
        assert_int_equal(store_dispatch_failed(shared, &ids[FAILING]), 0);
        double wait = failures <= 7 ? (double)(1 << (failures - 1)) : 60.0;
        double left = atof(admin_value(admin,
                                       "SELECT extract(epoch FROM dispatch_retry - now()) "
                                       "FROM compute.jobs WHERE job_id = decode($1, 'hex')",
                                       hex[FAILING], value, sizeof value));
        if (!(left <= wait && left > wait - 30))
            fail_msg("after %d failures the retry is due in %.3f s, expected %.0f", failures, left,
                     wait);
        assert_int_equal(atoi(admin_value(admin,
                                          "SELECT dispatch_failures FROM compute.jobs "
                                          "WHERE job_id = decode($1, 'hex')",
                                          hex[FAILING], value, sizeof value)),
                         failures);
    }

    /* Not due: only the fresh job of the served queue is taken. */
    unsigned window = 3600;
    int seen[N];
    drain(take_batch, &window, ids, N, seen, NULL);
    assert_int_equal(seen[FAILING], 0);
    assert_int_equal(seen[FRESH], 1);
    assert_int_equal(seen[OTHER], 0);

    /* Due: taken, with its failures for the caller. */
    admin_exec(admin,
               "UPDATE compute.jobs SET dispatch_retry = now() - interval '1 second' "
               "WHERE job_id = decode($1, 'hex')",
               hex[FAILING]);
    store_dispatch copies[N];
    memset(copies, 0, sizeof copies);
    drain(take_batch, &window, ids, N, seen, copies);
    assert_int_equal(seen[FAILING], 1);
    assert_int_equal(copies[FAILING].failures, 9);
    free(copies[FAILING].config);

    /* Published at last: the next failure waits a second again. */
    assert_int_equal(store_mark_dispatched(shared, &ids[FAILING]), 0);
    assert_int_equal(store_dispatch_failed(shared, &ids[FAILING]), 0);
    assert_string_equal(admin_value(admin,
                                    "SELECT dispatch_failures = 1 AND "
                                    "dispatch_retry <= now() + interval '1 second' "
                                    "FROM compute.jobs WHERE job_id = decode($1, 'hex')",
                                    hex[FAILING], value, sizeof value),
                        "t");
    acp_job_id unknown;
    new_id(&unknown, NULL);
    assert_int_equal(store_dispatch_failed(shared, &unknown), ACP_ENOTFOUND);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

/* Point 13: a queued job whose message cannot be made is failed with the
 * reason, and only while it is queued. */
static void fail_undispatchable_fails_only_queued_jobs(void **state)
{
    (void)state;
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "undispatchable");
    acp_job_id queued, running, unknown;
    new_id(&queued, NULL);
    new_id(&running, NULL);
    new_id(&unknown, NULL);
    insert_ok(shared, &running, queue, "{}");
    claim_ok(shared, &running, queue, "w", 60);
    insert_ok(shared, &queued, queue, "{}");

    assert_int_equal(store_fail_undispatchable(shared, &queued, "no message: bad config"), 0);
    store_job job;
    get_ok(shared, &queued, &job);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_string_equal(job.message, "no message: bad config");
    assert_true(job.finished > 0);
    store_job_free(&job);

    assert_int_equal(store_fail_undispatchable(shared, &running, "x"), ACP_ECONFLICT);
    assert_non_null(strstr(acp_last_error(), "in-progress"));
    get_ok(shared, &running, &job);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    store_job_free(&job);
    assert_int_equal(store_fail_undispatchable(shared, &unknown, "x"), ACP_ENOTFOUND);

    delete_ok(shared, &queued);
    delete_ok(shared, &running);
}

/* ---- requeue (re-run), delete, touch ----------------------------------- */

static void requeue_reruns_finished_jobs_only(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], rerun_queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "rerun");
    new_queue(rerun_queue, "rerun-new");
    enum { COMPLETE, FAILED, EXPIRED, QUEUED, RUNNING, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    const char *old_inputs[] = {"old.txt"};
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        assert_int_equal(store_insert(shared, &ids[i], queue, "{\"v\":1}", old_inputs, 1, NULL), 0);
    }
    const char *outputs[] = {"result.txt"};
    claim_ok(shared, &ids[COMPLETE], queue, "w", 60);
    assert_int_equal(
        store_finish(shared, &ids[COMPLETE], "w", ACP_STATUS_COMPLETE, NULL, outputs, NULL, 1), 0);
    claim_ok(shared, &ids[FAILED], queue, "w", 60);
    assert_int_equal(
        store_finish(shared, &ids[FAILED], "w", ACP_STATUS_FAILED, "bad", NULL, NULL, 0), 0);
    admin_exec(admin, "UPDATE compute.jobs SET status = 'expired' WHERE job_id = decode($1, 'hex')",
               hex[EXPIRED]);
    /* Ahead of QUEUED for the claim, which takes the best due job. */
    admin_exec(admin, "UPDATE compute.jobs SET priority = 100 WHERE job_id = decode($1, 'hex')",
               hex[RUNNING]);
    claim_ok(shared, &ids[RUNNING], queue, "w", 60);

    const char *new_inputs[] = {"new-1.txt", "new-2.txt"};
    for (int i = COMPLETE; i <= EXPIRED; i++) {
        store_job before, after;
        get_ok(shared, &ids[i], &before);
        assert_int_equal(store_mark_dispatched(shared, &ids[i]), 0);
        int rc = store_requeue(shared, &ids[i], rerun_queue, "{\"v\":2}", new_inputs, 2, NULL);
        if (rc != 0)
            fail_msg("requeue %d: %d %s", i, rc, acp_last_error());
        get_ok(shared, &ids[i], &after);
        assert_int_equal(after.status, ACP_STATUS_QUEUED);
        assert_string_equal(after.queue, rerun_queue);
        assert_string_equal(after.config, "{\"v\":2}");
        assert_int_equal(after.input_count, 2);
        assert_string_equal(after.inputs[1], "new-2.txt");
        assert_int_equal(after.created, before.created);
        assert_true(after.last_accessed >= before.last_accessed);
        assert_int_equal(after.grabbed, 0);
        assert_int_equal(after.finished, 0);
        assert_null(after.message);
        assert_int_equal(after.attempts, 0); /* a re-run starts over */
        assert_true(after.queue_position >= 0);
        store_job_free(&before);
        store_job_free(&after);
        char value[64];
        assert_string_equal(admin_value(admin,
                                        "SELECT coalesce(lease_owner, '-') || "
                                        "(dispatched > now() - interval '1 minute') || "
                                        "coalesce(output_files::text, '-') FROM compute.jobs "
                                        "WHERE job_id = decode($1, 'hex')",
                                        hex[i], value, sizeof value),
                            "-true-");
    }

    assert_int_equal(store_requeue(shared, &ids[QUEUED], rerun_queue, NULL, NULL, 0, NULL),
                     ACP_ECONFLICT);
    assert_error_contains("queued");
    assert_int_equal(store_requeue(shared, &ids[RUNNING], rerun_queue, NULL, NULL, 0, NULL),
                     ACP_ECONFLICT);
    assert_error_contains("in-progress");
    store_job job;
    get_ok(shared, &ids[RUNNING], &job);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_string_equal(job.queue, queue);
    store_job_free(&job);
    acp_job_id unknown;
    new_id(&unknown, NULL);
    assert_int_equal(store_requeue(shared, &unknown, rerun_queue, NULL, NULL, 0, NULL),
                     ACP_ENOTFOUND);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

static void touch_and_delete(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(shared, &id, "touch", NULL);
    admin_exec(admin,
               "UPDATE compute.jobs SET last_accessed = " OLD_TIME_SQL
               " WHERE job_id = decode($1, 'hex')",
               hex);
    store_job job;
    get_ok(shared, &id, &job);
    assert_int_equal(job.last_accessed, OLD_TIME_US);
    int64_t created = job.created;
    store_job_free(&job);

    assert_int_equal(store_touch(shared, &id), 0);
    get_ok(shared, &id, &job);
    assert_true(job.last_accessed >= created);
    assert_int_equal(job.created, created);
    store_job_free(&job);

    assert_int_equal(store_delete(shared, &id), 0);
    assert_int_equal(store_get(shared, &id, &job), ACP_ENOTFOUND);
    assert_int_equal(job.queue_position, -1);
    assert_int_equal(store_delete(shared, &id), ACP_ENOTFOUND);
    assert_error_contains(hex);
    assert_int_equal(store_touch(shared, &id), ACP_ENOTFOUND);
    PQfinish(admin);
}

/* ---- expire and delete transactions ------------------------------------ */

static const char *const status_names[] = {
    [ACP_STATUS_QUEUED] = "queued",     [ACP_STATUS_IN_PROGRESS] = "in-progress",
    [ACP_STATUS_COMPLETE] = "complete", [ACP_STATUS_FAILED] = "failed",
    [ACP_STATUS_EXPIRED] = "expired",
};

/* Sets columns of one row: @assignments is SQL ("status = 'failed'"). */
static void set_row(PGconn *admin, const char *hex, const char *assignments)
{
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE compute.jobs SET %s WHERE job_id = decode($1, 'hex')",
             assignments);
    admin_exec(admin, sql, hex);
}

/* "<status> <lease_owner> <lease_expires set>" of a row, or "gone". */
static char *row_state(PGconn *admin, const char *hex, char *out, size_t size)
{
    PGresult *res = admin_query(admin,
                                "SELECT status || ' ' || coalesce(lease_owner, '-') || ' ' || "
                                "(lease_expires IS NOT NULL) FROM compute.jobs "
                                "WHERE job_id = decode($1, 'hex')",
                                hex);
    snprintf(out, size, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "gone");
    PQclear(res);
    return out;
}

/* Fails unless the row can be locked at once: no transaction holds it. */
static void assert_unlocked(PGconn *admin, const char *hex)
{
    PQclear(admin_query(admin,
                        "SELECT 1 FROM compute.jobs WHERE job_id = decode($1, 'hex') "
                        "FOR UPDATE NOWAIT",
                        hex));
}

static void expire_ok(const acp_job_id *id, int64_t cutoff, store_tx **tx, acp_job_status *previous)
{
    int rc = store_expire_begin(shared, id, cutoff, tx, previous);
    if (rc != 0)
        fail_msg("store_expire_begin: %d %s", rc, acp_last_error());
    assert_non_null(*tx);
}

static void expire_begin_takes_any_status_but_in_progress(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], value[128], before[128];
    new_queue(queue, "expire");
    const acp_job_status statuses[] = {ACP_STATUS_QUEUED, ACP_STATUS_COMPLETE, ACP_STATUS_FAILED,
                                       ACP_STATUS_EXPIRED};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        acp_job_id id;
        char hex[ACP_JOB_ID_STRLEN], assignments[200];
        new_id(&id, hex);
        insert_ok(shared, &id, queue, NULL);
        /* A stale lease, to see it cleared. */
        snprintf(assignments, sizeof assignments,
                 "status = '%s', lease_owner = 'old', lease_expires = now()",
                 status_names[statuses[i]]);
        set_row(admin, hex, assignments);
        row_state(admin, hex, before, sizeof before);

        /* Rolled back: the row is as it was, and not locked. */
        store_tx *tx;
        acp_job_status previous = 0;
        expire_ok(&id, 0, &tx, &previous);
        assert_int_equal(previous, statuses[i]);
        assert_int_equal(store_tx_end(tx, false), 0);
        assert_string_equal(row_state(admin, hex, value, sizeof value), before);
        assert_unlocked(admin, hex);

        /* Committed: expired, lease cleared. */
        expire_ok(&id, 0, &tx, NULL);
        assert_int_equal(store_tx_end(tx, true), 0);
        assert_string_equal(row_state(admin, hex, value, sizeof value), "expired - false");
        store_job job;
        get_ok(shared, &id, &job);
        assert_int_equal(job.status, ACP_STATUS_EXPIRED);
        store_job_free(&job);
        assert_unlocked(admin, hex);
        delete_ok(shared, &id);
    }

    /* Running: busy, and nothing is left open or changed. */
    acp_job_id running, unknown;
    char running_hex[ACP_JOB_ID_STRLEN], unknown_hex[ACP_JOB_ID_STRLEN];
    new_id(&running, running_hex);
    new_id(&unknown, unknown_hex);
    insert_ok(shared, &running, queue, NULL);
    claim_ok(shared, &running, queue, "runner-7", 60);
    store_tx *tx = (store_tx *)&tx; /* must be reset to NULL */
    acp_job_status previous = ACP_STATUS_QUEUED;
    assert_int_equal(store_expire_begin(shared, &running, 0, &tx, &previous), ACP_EBUSY);
    assert_null(tx);
    assert_int_equal(previous, ACP_STATUS_QUEUED);
    assert_error_contains(running_hex);
    assert_error_contains("in-progress, leased by runner-7");
    assert_string_equal(row_state(admin, running_hex, value, sizeof value),
                        "in-progress runner-7 true");
    assert_unlocked(admin, running_hex);

    tx = (store_tx *)&tx;
    assert_int_equal(store_expire_begin(shared, &unknown, 0, &tx, NULL), ACP_ENOTFOUND);
    assert_null(tx);
    assert_error_contains(unknown_hex);
    assert_error_contains("no such job");

    assert_int_equal(store_tx_end(NULL, true), 0);
    assert_int_equal(store_expire_begin(shared, &running, 0, NULL, NULL), ACP_EINVAL);
    delete_ok(shared, &running);
    PQfinish(admin);
}

static void expire_begin_with_a_cutoff_takes_old_complete_jobs_only(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], value[128];
    new_queue(queue, "prune");
    enum { OLD_COMPLETE, RECENT_COMPLETE, OLD_FAILED, OLD_EXPIRED, OLD_QUEUED, OLD_RUNNING, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        insert_ok(shared, &ids[i], queue, NULL);
        set_row(admin, hex[i], "last_accessed = " OLD_TIME_SQL);
    }
    set_row(admin, hex[OLD_RUNNING], "priority = 100"); /* the one the claim takes */
    claim_ok(shared, &ids[OLD_RUNNING], queue, "runner", 60);
    set_row(admin, hex[OLD_COMPLETE], "status = 'complete'");
    set_row(admin, hex[RECENT_COMPLETE], "status = 'complete', last_accessed = now()");
    set_row(admin, hex[OLD_FAILED], "status = 'failed'");
    set_row(admin, hex[OLD_EXPIRED], "status = 'expired'");
    const int64_t cutoff = now_us() - INT64_C(3600000000);

    store_tx *tx;
    acp_job_status previous;
    expire_ok(&ids[OLD_COMPLETE], cutoff, &tx, &previous);
    assert_int_equal(previous, ACP_STATUS_COMPLETE);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_string_equal(row_state(admin, hex[OLD_COMPLETE], value, sizeof value),
                        "expired - false");

    assert_int_equal(store_expire_begin(shared, &ids[RECENT_COMPLETE], cutoff, &tx, &previous),
                     ACP_ECONFLICT);
    assert_null(tx);
    assert_error_contains("the job is complete, last accessed ");
    assert_error_contains("the pruner expires complete jobs last accessed before ");
    for (int i = OLD_FAILED; i <= OLD_QUEUED; i++) {
        assert_int_equal(store_expire_begin(shared, &ids[i], cutoff, &tx, &previous),
                         ACP_ECONFLICT);
        assert_error_contains(i == OLD_FAILED    ? "the job is failed, last accessed "
                              : i == OLD_EXPIRED ? "the job is expired"
                                                 : "the job is queued");
        /* The message shows the same time as the database. */
        assert_error_contains("last accessed 2001-02-03 04:05:06.000000 UTC");
    }
    assert_int_equal(store_expire_begin(shared, &ids[OLD_RUNNING], cutoff, &tx, &previous),
                     ACP_EBUSY);
    static const char *const states[N] = {
        [RECENT_COMPLETE] = "complete - false",    [OLD_FAILED] = "failed - false",
        [OLD_EXPIRED] = "expired - false",         [OLD_QUEUED] = "queued - false",
        [OLD_RUNNING] = "in-progress runner true",
    };
    for (int i = RECENT_COMPLETE; i < N; i++) {
        assert_string_equal(row_state(admin, hex[i], value, sizeof value), states[i]);
        assert_unlocked(admin, hex[i]);
    }

    /* The cutoff is exact to the microsecond, and strict. */
    set_row(admin, hex[RECENT_COMPLETE], "last_accessed = " OLD_TIME_SQL);
    assert_int_equal(store_expire_begin(shared, &ids[RECENT_COMPLETE], OLD_TIME_US, &tx, NULL),
                     ACP_ECONFLICT);
    assert_error_contains("before 2001-02-03 04:05:06.000000 UTC");
    expire_ok(&ids[RECENT_COMPLETE], OLD_TIME_US + 1, &tx, &previous);
    assert_int_equal(previous, ACP_STATUS_COMPLETE);
    assert_int_equal(store_tx_end(tx, false), 0);
    set_row(admin, hex[RECENT_COMPLETE],
            "last_accessed = last_accessed + interval '1 microsecond'");
    assert_int_equal(store_expire_begin(shared, &ids[RECENT_COMPLETE], OLD_TIME_US + 1, &tx, NULL),
                     ACP_ECONFLICT);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
}

typedef enum { CALL_TOUCH, CALL_REQUEUE } call_kind;

typedef struct waiting_call {
    const acp_job_id *id;
    const char *queue;
    call_kind kind;
    atomic_bool done;
    int rc;
    char error[512];
} waiting_call;

static void *waiting_caller(void *arg)
{
    waiting_call *call = arg;
    switch (call->kind) {
    case CALL_TOUCH:
        call->rc = store_touch(shared, call->id);
        break;
    case CALL_REQUEUE:
        call->rc = store_requeue(shared, call->id, call->queue, NULL, NULL, 0, NULL);
        break;
    }
    snprintf(call->error, sizeof call->error, "%s", acp_last_error());
    atomic_store(&call->done, true);
    return NULL;
}

/* The transaction that last changed or locked the row (its xmax), as text. */
static void row_xmax(PGconn *admin, const char *hex, char *out, size_t size)
{
    admin_value(admin, "SELECT xmax::text FROM compute.jobs WHERE job_id = decode($1, 'hex')", hex,
                out, size);
}

/* Starts @call and returns once its backend waits for the transaction
 * holding @hex's row: the server's lock table says so, not a clock. */
static void start_waiting_call(PGconn *admin, const char *hex, waiting_call *call,
                               pthread_t *thread)
{
    char xmax[32], waiters[16];
    row_xmax(admin, hex, xmax, sizeof xmax);
    assert_string_not_equal(xmax, "0");
    atomic_init(&call->done, false);
    assert_int_equal(pthread_create(thread, NULL, waiting_caller, call), 0);
    for (int round = 0;; round++) {
        if (round == POLL_ROUNDS)
            fail_msg("no backend waited for transaction %s", xmax);
        admin_value(admin,
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' "
                    "AND transactionid = $1::xid AND NOT granted",
                    xmax, waiters, sizeof waiters);
        if (strcmp(waiters, "0") != 0)
            break;
        assert_false(atomic_load(&call->done));
        sleep_ms(10);
    }
    assert_false(atomic_load(&call->done));
}

static void finish_waiting_call(pthread_t thread, waiting_call *call, int expected_rc)
{
    pthread_join(thread, NULL);
    assert_true(atomic_load(&call->done));
    if (call->rc != expected_rc)
        fail_msg("waiting call: %d, expected %d: %s", call->rc, expected_rc, call->error);
}

static void open_transactions_hold_off_touch_claim_and_requeue(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], value[128];
    new_queue(queue, "hold");
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(shared, &id, queue, NULL);
    set_row(admin, hex, "last_accessed = " OLD_TIME_SQL);

    /* A touch waits for the expiry, then applies to the expired row. */
    store_tx *tx;
    expire_ok(&id, 0, &tx, NULL);
    waiting_call touch = {.id = &id, .kind = CALL_TOUCH};
    pthread_t thread;
    start_waiting_call(admin, hex, &touch, &thread);
    assert_int_equal(store_tx_end(tx, true), 0);
    finish_waiting_call(thread, &touch, 0);
    store_job job;
    get_ok(shared, &id, &job);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    assert_true(job.last_accessed > OLD_TIME_US);
    store_job_free(&job);

    /* A re-run waits for a rolled-back expiry... */
    set_row(admin, hex, "status = 'complete'");
    expire_ok(&id, 0, &tx, NULL);
    waiting_call requeue = {.id = &id, .queue = queue, .kind = CALL_REQUEUE};
    start_waiting_call(admin, hex, &requeue, &thread);
    assert_int_equal(store_tx_end(tx, false), 0);
    finish_waiting_call(thread, &requeue, 0);
    assert_string_equal(row_state(admin, hex, value, sizeof value), "queued - false");

    /* ...a claim does not wait (SKIP LOCKED): the job held by an expiry is
     * busy for it (its doorbell is not dropped), and gone once the expiry is
     * committed... */
    expire_ok(&id, 0, &tx, NULL);
    assert_int_equal(store_claim(shared, queue, "claimer", 60, &job), ACP_EBUSY);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(store_claim(shared, queue, "claimer", 60, &job), ACP_ENOTFOUND);
    assert_string_equal(row_state(admin, hex, value, sizeof value), "expired - false");

    /* ...and for a committed delete, after which there is no job. */
    assert_int_equal(store_delete_begin(shared, &id, &tx), 0);
    waiting_call late = {.id = &id, .queue = queue, .kind = CALL_TOUCH};
    start_waiting_call(admin, hex, &late, &thread);
    assert_int_equal(store_tx_end(tx, true), 0);
    finish_waiting_call(thread, &late, ACP_ENOTFOUND);
    PQfinish(admin);
}

static void delete_begin_removes_on_commit_only(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], value[128];
    new_queue(queue, "delete");
    acp_job_id id, running, unknown;
    char hex[ACP_JOB_ID_STRLEN], running_hex[ACP_JOB_ID_STRLEN], unknown_hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    new_id(&running, running_hex);
    new_id(&unknown, unknown_hex);
    insert_ok(shared, &running, queue, NULL);
    claim_ok(shared, &running, queue, "runner", 60);
    insert_ok(shared, &id, queue, "{\"keep\":true}");

    store_tx *tx;
    assert_int_equal(store_delete_begin(shared, &id, &tx), 0);
    assert_int_equal(store_tx_end(tx, false), 0);
    store_job job;
    get_ok(shared, &id, &job);
    assert_string_equal(job.config, "{\"keep\":true}");
    store_job_free(&job);
    assert_unlocked(admin, hex);

    set_row(admin, hex, "status = 'failed'");
    assert_int_equal(store_delete_begin(shared, &id, &tx), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(store_get(shared, &id, &job), ACP_ENOTFOUND);
    assert_int_equal(store_delete_begin(shared, &id, &tx), ACP_ENOTFOUND);
    assert_null(tx);
    assert_error_contains(hex);

    tx = (store_tx *)&tx;
    assert_int_equal(store_delete_begin(shared, &running, &tx), ACP_EBUSY);
    assert_null(tx);
    assert_error_contains("in-progress, leased by runner");
    assert_string_equal(row_state(admin, running_hex, value, sizeof value),
                        "in-progress runner true");
    assert_unlocked(admin, running_hex);

    assert_int_equal(store_delete_begin(shared, &unknown, &tx), ACP_ENOTFOUND);
    assert_error_contains(unknown_hex);
    assert_int_equal(store_delete_begin(shared, &unknown, NULL), ACP_EINVAL);
    delete_ok(shared, &running);
    PQfinish(admin);
}

static void delete_expired_takes_expired_rows_only(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], value[128];
    new_queue(queue, "stale");
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(shared, &id, queue, NULL);
    set_row(admin, hex, "status = 'complete'");
    assert_int_equal(store_delete_expired(shared, &id), ACP_ECONFLICT);
    assert_error_contains(hex);
    assert_error_contains("the job is complete");
    assert_string_equal(row_state(admin, hex, value, sizeof value), "complete - false");

    set_row(admin, hex, "status = 'expired'");
    assert_int_equal(store_delete_expired(shared, &id), 0);
    assert_string_equal(row_state(admin, hex, value, sizeof value), "gone");
    assert_int_equal(store_delete_expired(shared, &id), ACP_ENOTFOUND);
    assert_error_contains("no such job");
    PQfinish(admin);
}

/* The pid of the backend whose transaction holds @hex's row. */
static int holder_pid(PGconn *admin, const char *hex)
{
    char xmax[32], pid[16];
    row_xmax(admin, hex, xmax, sizeof xmax);
    admin_value(admin,
                "SELECT pid FROM pg_locks WHERE locktype = 'transactionid' "
                "AND transactionid = $1::xid AND granted AND mode = 'ExclusiveLock'",
                xmax, pid, sizeof pid);
    return atoi(pid);
}

static void transaction_whose_connection_dies(void **state)
{
    (void)state;
    store *st = open_store(env.pg_db, 1);
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1], value[128];
    new_queue(queue, "dying");
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(st, &id, queue, NULL);

    /* COMMIT on a dead connection fails; nothing was applied. */
    store_tx *tx;
    assert_int_equal(store_expire_begin(st, &id, 0, &tx, NULL), 0);
    terminate(admin, holder_pid(admin, hex));
    assert_int_equal(store_tx_end(tx, true), ACP_EDB);
    assert_error_contains("commit");
    assert_error_contains(hex);
    assert_string_equal(row_state(admin, hex, value, sizeof value), "queued - false");

    /* ROLLBACK on a dead connection has nothing left to do. The pool's one
     * connection works again afterwards. */
    int before = atomic_load(&reconnects);
    assert_int_equal(store_delete_begin(st, &id, &tx), 0);
    terminate(admin, holder_pid(admin, hex));
    assert_int_equal(store_tx_end(tx, false), 0);
    store_job job;
    get_ok(st, &id, &job);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    store_job_free(&job);
    assert_true(atomic_load(&reconnects) > before);
    delete_ok(st, &id);

    store_close(st);
    PQfinish(admin);
}

/* ---- listing ------------------------------------------------------------ */

#define LIST_JOBS 1000
/* Jobs of a list test are created in a random stretch of the years
 * 1975..1995, where no other test puts any. */
#define LIST_EPOCH_US INT64_C(157766400000000) /* 1975-01-01 */
#define LIST_SPAN_US  INT64_C(631152000000000) /* 20 years */

typedef struct listed {
    acp_job_id id;
    int64_t created;
    acp_job_status status;
    int queue; /* 0 or 1 */
} listed;

static int listed_order(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return memcmp(x->id.bytes, y->id.bytes, sizeof x->id.bytes);
}

static int64_t random_time_in_list_years(void)
{
    acp_job_id id;
    new_id(&id, NULL);
    uint64_t r = 0;
    for (int i = 0; i < 8; i++)
        r = r << 8 | id.bytes[i];
    return LIST_EPOCH_US + (int64_t)(r % (uint64_t)LIST_SPAN_US);
}

/* A list filter and how to page through it. */
typedef struct list_case {
    unsigned statuses;
    int queue;       /* -1: any */
    bool from_start; /* page from the very first row (only with a queue) */
} list_case;

static bool list_case_matches(const list_case *c, const listed *row)
{
    return (c->statuses == 0 || (c->statuses & (1u << row->status))) &&
           (c->queue < 0 || c->queue == row->queue);
}

/* Pages through @c with pages of @page; fails unless the rows of our queues
 * are exactly @expected's matching ones, in order. */
static void page_through(const list_case *c, size_t page, char queues[2][ACP_QUEUE_ID_MAX + 1],
                         const listed *expected, size_t n, int64_t first, int64_t last)
{
    size_t want = 0, got = 0, calls = 0;
    for (size_t i = 0; i < n; i++)
        want += list_case_matches(c, &expected[i]);
    acp_job_id after_id;
    memset(&after_id, 0, sizeof after_id);
    int64_t after_created = first - 1;
    bool have_cursor = !c->from_start;
    size_t next = 0; /* index into expected of the next matching row */
    for (;;) {
        if (++calls > PAGE_CALLS_MAX)
            fail_msg("paging does not end");
        store_job *rows = (store_job *)&rows;
        size_t count = 99;
        int rc = store_list(shared, c->statuses, c->queue < 0 ? NULL : queues[c->queue],
                            after_created, have_cursor ? &after_id : NULL, page, &rows, &count);
        if (rc != 0)
            fail_msg("store_list: %d %s", rc, acp_last_error());
        assert_true(count <= page);
        bool beyond = false;
        for (size_t r = 0; r < count; r++) {
            const store_job *job = &rows[r];
            assert_int_equal(job->queue_position, -1);
            if (c->statuses)
                assert_true(c->statuses & (1u << job->status));
            if (c->queue >= 0)
                assert_string_equal(job->queue, queues[c->queue]);
            /* Strictly after the cursor, in (created, id) order. */
            if (have_cursor &&
                !(job->created > after_created ||
                  (job->created == after_created && memcmp(job->id.bytes, after_id.bytes, 16) > 0)))
                fail_msg("page %zu row %zu is not after the cursor", calls, r);
            after_created = job->created;
            after_id = job->id;
            have_cursor = true;
            if (job->created > last)
                beyond = true;
            if (strcmp(job->queue, queues[0]) != 0 && strcmp(job->queue, queues[1]) != 0)
                continue; /* not ours */
            while (next < n && !list_case_matches(c, &expected[next]))
                next++;
            if (next == n)
                fail_msg("page %zu row %zu: one row too many", calls, r);
            if (!acp_job_id_equal(&job->id, &expected[next].id) ||
                job->created != expected[next].created || job->status != expected[next].status)
                fail_msg("page of %zu, call %zu, row %zu: not the expected row %zu", page, calls, r,
                         next);
            next++;
            got++;
        }
        if (count == 0)
            assert_null(rows);
        for (size_t r = 0; r < count; r++)
            store_job_free(&rows[r]);
        free(rows);
        if (count < page || beyond)
            break;
    }
    if (got != want)
        fail_msg("statuses 0x%x queue %d, pages of %zu: %zu rows of %zu", c->statuses, c->queue,
                 page, got, want);
}

static void list_pages_every_filter_without_gaps_or_repeats(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queues[2][ACP_QUEUE_ID_MAX + 1];
    new_queue(queues[0], "list-a");
    new_queue(queues[1], "list-b");
    const int64_t first = random_time_in_list_years();

    /* One statement: pairs of jobs share a microsecond, a status and a
     * queue (ties broken by id); consecutive pairs differ by 1 µs. */
    char sql[1024], first_text[32];
    snprintf(first_text, sizeof first_text, "%" PRId64, first);
    snprintf(
        sql, sizeof sql,
        "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
        "last_accessed) "
        "SELECT decode(md5(random()::text || clock_timestamp()::text || i), 'hex'), "
        "(ARRAY['queued', 'in-progress', 'complete', 'failed', 'expired'])[1 + (i / 2) %% 5], "
        "CASE WHEN (i / 2) %% 3 = 0 THEN '%s' ELSE '%s' END, '{}', t, t "
        "FROM generate_series(0, %d) AS i, "
        "LATERAL (SELECT 'epoch'::timestamptz + ($1::bigint + i / 4) * interval '1 microsecond' "
        "AS t) AS c",
        queues[0], queues[1], LIST_JOBS - 1);
    admin_exec(admin, sql, first_text);

    /* What they are, in the order the list must give. */
    static listed expected[LIST_JOBS];
    snprintf(sql, sizeof sql,
             "SELECT encode(job_id, 'hex'), (extract(epoch FROM created) * 1000000)::bigint, "
             "status, queue = '%s' FROM compute.jobs WHERE queue IN ('%s', '%s')",
             queues[1], queues[0], queues[1]);
    PGresult *res = admin_query(admin, sql, NULL);
    assert_int_equal(PQntuples(res), LIST_JOBS);
    for (int r = 0; r < LIST_JOBS; r++) {
        assert_int_equal(acp_job_id_parse(&expected[r].id, PQgetvalue(res, r, 0)), 0);
        expected[r].created = strtoll(PQgetvalue(res, r, 1), NULL, 10);
        expected[r].status = 0;
        for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_EXPIRED; s++)
            if (strcmp(PQgetvalue(res, r, 2), status_names[s]) == 0)
                expected[r].status = (acp_job_status)s;
        expected[r].queue = strcmp(PQgetvalue(res, r, 3), "t") == 0;
    }
    PQclear(res);
    qsort(expected, LIST_JOBS, sizeof expected[0], listed_order);
    const int64_t last = expected[LIST_JOBS - 1].created;
    assert_int_equal(expected[0].created, first);
    assert_int_equal(last, first + (LIST_JOBS - 1) / 4);

    const unsigned all = (1u << ACP_STATUS_QUEUED) | (1u << ACP_STATUS_IN_PROGRESS) |
                         (1u << ACP_STATUS_COMPLETE) | (1u << ACP_STATUS_FAILED) |
                         (1u << ACP_STATUS_EXPIRED);
    const list_case cases[] = {
        {0, -1, false},
        {all, -1, false},
        {1u << ACP_STATUS_FAILED, -1, false},
        {(1u << ACP_STATUS_QUEUED) | (1u << ACP_STATUS_COMPLETE) | (1u << ACP_STATUS_EXPIRED), -1,
         false},
        {0, 0, true},
        {(1u << ACP_STATUS_IN_PROGRESS) | (1u << ACP_STATUS_FAILED), 1, true},
    };
    const size_t pages[] = {7, 100, 1000};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t p = 0; p < sizeof pages / sizeof pages[0]; p++)
            page_through(&cases[c], pages[p], queues, expected, LIST_JOBS, first, last);
    /* One row at a time: every cursor, within a microsecond and across one. */
    page_through(&cases[4], 1, queues, expected, LIST_JOBS, first, last);

    /* The rows are whole, and the first page of a queue starts at its first
     * job. */
    store_job *rows;
    size_t count;
    assert_int_equal(store_list(shared, 0, queues[0], 0, NULL, 2, &rows, &count), 0);
    assert_int_equal(count, 2);
    size_t head = 0;
    while (expected[head].queue != 0)
        head++;
    assert_true(acp_job_id_equal(&rows[0].id, &expected[head].id));
    assert_string_equal(rows[0].queue, queues[0]);
    assert_int_equal(rows[0].created, expected[head].created);
    assert_int_equal(rows[0].last_accessed, expected[head].created);
    assert_int_equal(rows[0].input_count, 0);
    assert_null(rows[0].config);
    for (size_t r = 0; r < count; r++)
        store_job_free(&rows[r]);
    free(rows);

    /* Nothing to list, and bad arguments. */
    assert_int_equal(store_list(shared, 0, "no-such-queue-xyz", 0, NULL, 10, &rows, &count), 0);
    assert_int_equal(count, 0);
    assert_null(rows);
    assert_int_equal(store_list(shared, 0, queues[0], 0, NULL, 0, &rows, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(store_list(shared, 1u << 9, NULL, 0, NULL, 10, &rows, &count), ACP_EINVAL);
    assert_error_contains("0x200");
    assert_int_equal(store_list(shared, 1u << 0, NULL, 0, NULL, 10, &rows, &count), ACP_EINVAL);
    assert_int_equal(store_list(shared, 0, NULL, 0, NULL, 10, NULL, &count), ACP_EINVAL);

    snprintf(sql, sizeof sql, "DELETE FROM compute.jobs WHERE queue IN ('%s', '%s')", queues[0],
             queues[1]);
    admin_exec(admin, sql, NULL);
    PQfinish(admin);
}

static int id_order(const void *a, const void *b)
{
    return memcmp(((const acp_job_id *)a)->bytes, ((const acp_job_id *)b)->bytes, 16);
}

static void list_expirable_pages_by_id(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "expirable");
    const int64_t before = random_time_in_list_years();

    /* Expirable: complete, last accessed 1..40 µs before @before. Not: at
     * @before or after it, or not complete. */
    char sql[1024], before_text[32];
    snprintf(before_text, sizeof before_text, "%" PRId64, before);
    snprintf(sql, sizeof sql,
             "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
             "last_accessed) "
             "SELECT decode(md5(random()::text || clock_timestamp()::text || i), 'hex'), "
             "CASE WHEN i < 50 THEN 'complete' WHEN i < 55 THEN 'failed' "
             "  WHEN i < 60 THEN 'expired' ELSE 'queued' END, '%s', '{}', now(), "
             "'epoch'::timestamptz + ($1::bigint + CASE WHEN i < 40 THEN -1 - i "
             "  WHEN i < 50 THEN i - 40 ELSE -1000 END) * interval '1 microsecond' "
             "FROM generate_series(0, 64) AS i",
             queue);
    admin_exec(admin, sql, before_text);
    snprintf(sql, sizeof sql,
             "SELECT encode(job_id, 'hex') FROM compute.jobs WHERE queue = '%s' "
             "AND status = 'complete' AND last_accessed < 'epoch'::timestamptz + "
             "$1::bigint * interval '1 microsecond'",
             queue);
    PGresult *res = admin_query(admin, sql, before_text);
    enum { EXPIRABLE = 40 };
    assert_int_equal(PQntuples(res), EXPIRABLE);
    acp_job_id expected[EXPIRABLE];
    for (int r = 0; r < EXPIRABLE; r++)
        assert_int_equal(acp_job_id_parse(&expected[r], PQgetvalue(res, r, 0)), 0);
    PQclear(res);
    qsort(expected, EXPIRABLE, sizeof expected[0], id_order);

    const size_t pages[] = {7, 40, 1000};
    for (size_t p = 0; p < sizeof pages / sizeof pages[0]; p++) {
        acp_job_id after;
        bool have_after = false;
        size_t next = 0;
        for (int calls = 0;; calls++) {
            if (calls > PAGE_CALLS_MAX)
                fail_msg("paging does not end");
            acp_job_id *ids = (acp_job_id *)&ids;
            size_t count = 99;
            int rc = store_list_expirable(shared, before, have_after ? &after : NULL, pages[p],
                                          &ids, &count);
            if (rc != 0)
                fail_msg("store_list_expirable: %d %s", rc, acp_last_error());
            assert_true(count <= pages[p]);
            if (count == 0)
                assert_null(ids);
            for (size_t k = 0; k < count; k++) {
                if (have_after && id_order(&ids[k], &after) <= 0)
                    fail_msg("pages of %zu: id %zu of call %d is not after the cursor", pages[p], k,
                             calls);
                after = ids[k];
                have_after = true;
                /* Skip the rows of other tests that fit, keep ours. */
                if (next < EXPIRABLE && acp_job_id_equal(&ids[k], &expected[next]))
                    next++;
                else
                    for (size_t e = next; e < EXPIRABLE; e++)
                        if (acp_job_id_equal(&ids[k], &expected[e]))
                            fail_msg("pages of %zu: expirable job %zu missing", pages[p], next);
            }
            free(ids);
            if (count < pages[p])
                break;
        }
        if (next != EXPIRABLE)
            fail_msg("pages of %zu: %zu of %d expirable jobs", pages[p], next, EXPIRABLE);
    }

    acp_job_id *ids = NULL;
    size_t count = 1;
    assert_int_equal(store_list_expirable(shared, before, NULL, 0, &ids, &count), 0);
    assert_int_equal(count, 0);
    assert_null(ids);
    assert_int_equal(store_list_expirable(shared, INT64_MIN, NULL, 10, &ids, &count), ACP_EINVAL);

    snprintf(sql, sizeof sql, "DELETE FROM compute.jobs WHERE queue = '%s'", queue);
    admin_exec(admin, sql, NULL);
    PQfinish(admin);
}

static void exists_answers_for_each_id(void **state)
{
    (void)state;
    enum { N = 9 };
    acp_job_id ids[N];
    /* Known at 0, 3, 4 and 8 (8 repeats 3); unknown elsewhere. */
    const bool known[N] = {true, false, false, true, true, false, false, false, true};
    for (int i = 0; i < N - 1; i++) {
        new_id(&ids[i], NULL);
        if (known[i])
            insert_ok(shared, &ids[i], "exists", NULL);
    }
    ids[N - 1] = ids[3];
    bool exists[N];
    memset(exists, 0x55, sizeof exists); /* neither true nor false */
    assert_int_equal(store_exists(shared, ids, N, exists), 0);
    for (int i = 0; i < N; i++)
        if (exists[i] != known[i])
            fail_msg("id %d: exists %d, expected %d", i, exists[i], known[i]);

    assert_int_equal(store_exists(shared, NULL, 0, NULL), 0);
    assert_int_equal(store_exists(shared, &ids[1], 1, exists), 0);
    assert_false(exists[0]);
    assert_int_equal(store_exists(shared, NULL, 1, exists), ACP_EINVAL);
    for (int i = 0; i < N - 1; i++)
        if (known[i])
            delete_ok(shared, &ids[i]);
}

/* ---- the pool ----------------------------------------------------------- */

#define LOAD_THREADS 8
#define LOAD_CALLS   100

typedef struct load {
    store *st;
    int ok;
    int failed;
    char error[512];
} load;

static void *load_worker(void *arg)
{
    load *l = arg;
    acp_job_id id;
    acp_job_id_generate(&id);
    for (int call = 0; call < LOAD_CALLS; call++) {
        int rc;
        store_job job;
        if (call == 0) {
            rc = store_insert(l->st, &id, "load", NULL, NULL, 0, NULL);
        } else if (call == LOAD_CALLS - 1) {
            rc = store_delete(l->st, &id);
        } else if (call % 2) {
            rc = store_get(l->st, &id, &job);
            store_job_free(&job);
        } else {
            rc = store_touch(l->st, &id);
        }
        if (rc == 0) {
            l->ok++;
        } else {
            l->failed++;
            snprintf(l->error, sizeof l->error, "call %d: %d %s", call, rc, acp_last_error());
        }
    }
    return NULL;
}

static void pool_of_two_serves_eight_threads(void **state)
{
    (void)state;
    store *st = open_store(env.pg_db, 2);
    load loads[LOAD_THREADS];
    pthread_t threads[LOAD_THREADS];
    for (int i = 0; i < LOAD_THREADS; i++) {
        loads[i] = (load){.st = st};
        assert_int_equal(pthread_create(&threads[i], NULL, load_worker, &loads[i]), 0);
    }
    for (int i = 0; i < LOAD_THREADS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < LOAD_THREADS; i++) {
        if (loads[i].failed)
            fail_msg("thread %d: %d failures, last %s", i, loads[i].failed, loads[i].error);
        assert_int_equal(loads[i].ok, LOAD_CALLS);
    }
    store_close(st);
}

/* ---- recovery from killed connections (in acp_test_b) ------------------ */

/* Terminates every pool backend on acp_test_b and waits for them to exit. */
static int kill_pool_backends(PGconn *admin)
{
    char value[16];
    admin_value(admin,
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'async-platform' AND pid <> pg_backend_pid()",
                NULL, value, sizeof value);
    return atoi(value);
}

static void idle_connection_killed_by_the_server_is_replaced(void **state)
{
    (void)state;
    store *st = open_store(DB_B, 1);
    PGconn *admin = admin_connect(DB_B);
    acp_job_id id;
    new_id(&id, NULL);
    insert_ok(st, &id, "killed", NULL);

    int before = atomic_load(&reconnects);
    assert_true(kill_pool_backends(admin) >= 1);
    store_job job;
    get_ok(st, &id, &job);
    store_job_free(&job);
    assert_int_equal(atomic_load(&reconnects), before + 1);

    /* Statements that are not repeated after a mid-statement loss recover
     * just as well when the loss happened while idle. */
    assert_true(kill_pool_backends(admin) >= 1);
    claim_ok(st, &id, "killed", "owner", 60);
    assert_true(kill_pool_backends(admin) >= 1);
    assert_int_equal(store_finish(st, &id, "owner", ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
    assert_true(kill_pool_backends(admin) >= 1);
    delete_ok(st, &id);
    assert_int_equal(atomic_load(&reconnects), before + 4);

    store_close(st);
    PQfinish(admin);
}

typedef struct blocked_call {
    store *st;
    const acp_job_id *id;
    bool cancel; /* or touch */
    int rc;
    char error[512];
} blocked_call;

static void *blocked_caller(void *arg)
{
    blocked_call *call = arg;
    if (call->cancel) {
        call->rc = store_cancel(call->st, call->id, NULL, NULL);
    } else {
        call->rc = store_touch(call->st, call->id);
    }
    snprintf(call->error, sizeof call->error, "%s", acp_last_error());
    return NULL;
}

/* The pid of the pool backend waiting on a lock, other than @not_pid. */
static int wait_for_blocked_backend(PGconn *watcher, int not_pid)
{
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", not_pid);
    for (int round = 0; round < POLL_ROUNDS; round++) {
        PGresult *res = admin_query(watcher,
                                    "SELECT pid FROM pg_stat_activity "
                                    "WHERE datname = current_database() "
                                    "AND application_name = 'async-platform' "
                                    "AND wait_event_type = 'Lock' AND pid <> $1::int",
                                    pid_text);
        int pid = PQntuples(res) > 0 ? atoi(PQgetvalue(res, 0, 0)) : 0;
        PQclear(res);
        if (pid)
            return pid;
        sleep_ms(10);
    }
    fail_msg("no pool backend waited on the row lock");
    return 0;
}

static void connection_killed_during_a_statement(void **state)
{
    (void)state;
    store *st = open_store(DB_B, 1);
    PGconn *locker = admin_connect(DB_B);
    PGconn *watcher = admin_connect(DB_B);
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    new_id(&id, hex);
    insert_ok(st, &id, "blocked", NULL);
    admin_exec(locker,
               "UPDATE compute.jobs SET last_accessed = " OLD_TIME_SQL
               " WHERE job_id = decode($1, 'hex')",
               hex);
    const char *lock_row = "SELECT 1 FROM compute.jobs WHERE job_id = decode($1, 'hex') FOR UPDATE";

    /* A repeatable statement (touch) loses its connection while it waits on
     * a row lock: it is reset and run again, and succeeds. */
    admin_exec(locker, "BEGIN", NULL);
    admin_exec(locker, lock_row, hex);
    blocked_call touch = {.st = st, .id = &id};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, blocked_caller, &touch), 0);
    int first = wait_for_blocked_backend(watcher, 0);
    terminate(watcher, first);
    wait_for_blocked_backend(watcher, first); /* the retry, on a new backend */
    admin_exec(locker, "ROLLBACK", NULL);
    pthread_join(thread, NULL);
    if (touch.rc != 0)
        fail_msg("touch: %d %s", touch.rc, touch.error);
    store_job job;
    get_ok(st, &id, &job);
    assert_true(job.last_accessed > OLD_TIME_US);
    store_job_free(&job);

    /* A cancel is not repeated: its outcome is reported as unknown. (The
     * claim, which was the example, no longer waits on a row lock: it
     * skips the locked row.) */
    admin_exec(locker, "BEGIN", NULL);
    admin_exec(locker, lock_row, hex);
    store_job none;
    assert_int_equal(store_claim(st, "blocked", "owner", 60, &none), ACP_EBUSY);
    blocked_call cancel = {.st = st, .id = &id, .cancel = true};
    assert_int_equal(pthread_create(&thread, NULL, blocked_caller, &cancel), 0);
    terminate(watcher, wait_for_blocked_backend(watcher, 0));
    pthread_join(thread, NULL);
    admin_exec(locker, "ROLLBACK", NULL);
    assert_int_equal(cancel.rc, ACP_EDB);
    if (!strstr(cancel.error, "may or may not have been applied") || !strstr(cancel.error, hex))
        fail_msg("cancel error: %s", cancel.error);

    /* The next call gets a fresh connection; the cancel had not happened. */
    get_ok(st, &id, &job);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    store_job_free(&job);
    claim_ok(st, &id, "blocked", "owner", 60);
    delete_ok(st, &id);

    store_close(st);
    PQfinish(locker);
    PQfinish(watcher);
}

static int setup(void **state)
{
    (void)state;
    shared = open_store(env.pg_db, 8);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    store_close(shared);
    shared = NULL;
    return 0;
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(open_fails_with_a_wrong_password),
        cmocka_unit_test(open_fails_with_an_unknown_database),
        cmocka_unit_test(open_fails_with_a_closed_port),
        cmocka_unit_test(open_rejects_an_invalid_config),
        cmocka_unit_test(migration_from_nothing_is_idempotent_and_race_free),
        cmocka_unit_test(migration_upgrades_an_upstream_1_0_0_database),
        cmocka_unit_test(migration_2_replaces_the_indexes_of_migration_1),
        cmocka_unit_test(migration_4_keeps_old_rows_as_lcp_runs),
        cmocka_unit_test(requeue_clears_the_output_columns),
        cmocka_unit_test(identity_is_the_databases_and_names_it),
        cmocka_unit_test(insert_and_get_round_trip_every_field),
        cmocka_unit_test(insert_of_an_existing_id_conflicts),
        cmocka_unit_test(queue_positions_count_per_queue),
        cmocka_unit_test(claim_race_has_exactly_one_winner),
        cmocka_unit_test(claim_returns_the_row_or_says_why_not),
        cmocka_unit_test(finish_is_fenced_by_the_lease_owner),
        cmocka_unit_test(finished_is_the_time_the_run_is_recorded),
        cmocka_unit_test(renew_extends_only_the_owners_leases),
        cmocka_unit_test(requeue_expired_takes_only_expired_running_jobs),
        cmocka_unit_test(abandoned_jobs_fail_at_max_attempts),
        cmocka_unit_test(runs_alive_needs_the_attempt_in_progress_with_a_lease),
        cmocka_unit_test(take_undispatched_marks_and_clear_makes_eligible),
        cmocka_unit_test(redispatch_backs_off_per_job_and_only_takes_served_queues),
        cmocka_unit_test(fail_undispatchable_fails_only_queued_jobs),
        cmocka_unit_test(requeue_reruns_finished_jobs_only),
        cmocka_unit_test(touch_and_delete),
        cmocka_unit_test(expire_begin_takes_any_status_but_in_progress),
        cmocka_unit_test(expire_begin_with_a_cutoff_takes_old_complete_jobs_only),
        cmocka_unit_test(open_transactions_hold_off_touch_claim_and_requeue),
        cmocka_unit_test(delete_begin_removes_on_commit_only),
        cmocka_unit_test(delete_expired_takes_expired_rows_only),
        cmocka_unit_test(transaction_whose_connection_dies),
        cmocka_unit_test(list_pages_every_filter_without_gaps_or_repeats),
        cmocka_unit_test(list_expirable_pages_by_id),
        cmocka_unit_test(exists_answers_for_each_id),
        cmocka_unit_test(pool_of_two_serves_eight_threads),
        cmocka_unit_test(idle_connection_killed_by_the_server_is_replaced),
        cmocka_unit_test(connection_killed_during_a_statement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
