/* Integration tests of the PostgreSQL store against the real server of
 * scripts/stack: connection errors, migrations, every statement, the claim
 * race, the pool under load and recovery from killed connections.
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
#define OLD_TIME_US  INT64_C(981173106000000)
#define OLD_TIME_SQL "'2001-02-03 04:05:06+00'"
#define POLL_ROUNDS  1000 /* x 10 ms: the bound of every wait for the server */
#define BATCH_ROUNDS 1000 /* bound of the drain loops over batch statements */

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
    int rc = store_insert(st, id, queue, config, NULL, 0);
    if (rc != 0)
        fail_msg("store_insert: %d %s", rc, acp_last_error());
}

static void get_ok(store *st, const acp_job_id *id, store_job *job)
{
    int rc = store_get(st, id, job);
    if (rc != 0)
        fail_msg("store_get: %d %s", rc, acp_last_error());
}

static void claim_ok(store *st, const acp_job_id *id, const char *queue, const char *owner,
                     unsigned lease)
{
    store_job job;
    int rc = store_claim(st, id, queue, owner, lease, &job);
    if (rc != 0)
        fail_msg("store_claim: %d %s", rc, acp_last_error());
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

static void assert_meta(PGconn *conn)
{
    PGresult *res = admin_query(conn, "SELECT key, value FROM compute.meta ORDER BY key", NULL);
    assert_int_equal(PQntuples(res), 2);
    assert_string_equal(PQgetvalue(res, 0, 0), "acp_schema");
    assert_string_equal(PQgetvalue(res, 0, 1), "1");
    assert_string_equal(PQgetvalue(res, 1, 0), "version");
    assert_string_equal(PQgetvalue(res, 1, 1), "1.0.0");
    PQclear(res);
}

static void assert_our_columns_and_indexes(PGconn *conn)
{
    char value[256];
    assert_string_equal(
        admin_value(conn,
                    "SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ',' "
                    "ORDER BY column_name) FROM information_schema.columns "
                    "WHERE table_schema = 'compute' AND table_name = 'jobs' AND column_name IN "
                    "('lease_owner', 'lease_expires', 'attempts', 'error', 'dispatched')",
                    NULL, value, sizeof value),
        "attempts:integer:NO,dispatched:timestamp with time zone:YES,error:text:YES,"
        "lease_expires:timestamp with time zone:YES,lease_owner:text:YES");
    assert_string_equal(admin_value(conn,
                                    "SELECT count(*) FROM pg_indexes WHERE schemaname = 'compute' "
                                    "AND tablename = 'jobs' AND (indexdef LIKE '%(status, "
                                    "created)' OR indexdef LIKE '%(queue, status, created)')",
                                    NULL, value, sizeof value),
                        "2");
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
    assert_meta(admin);
    assert_our_columns_and_indexes(admin);

    /* Again, explicitly, and a third start: nothing changes. */
    assert_int_equal(store_migrate(races[0].st), 0);
    store *third = open_store(DB_B, 1);
    assert_meta(admin);
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
        "\xc3\xbcnic\xc3\xb6"
        "de",
        "a'b",
    };
    const size_t input_count = sizeof inputs / sizeof inputs[0];
    const char *config = "{\"a\":[1,2.5,null],\"s\":\"x\\\"y\\\\z\",\"u\":\"\xc3\xa9\"}";

    acp_job_id id, bare;
    new_id(&id, NULL);
    new_id(&bare, NULL);
    int64_t before = now_us();
    assert_int_equal(store_insert(shared, &id, queue, config, inputs, input_count), 0);
    assert_int_equal(store_insert(shared, &bare, queue, NULL, NULL, 0), 0);

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
    assert_int_equal(store_insert(shared, &id, "other", NULL, NULL, 0), ACP_ECONFLICT);
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
    atomic_int *conflicts;
    atomic_int *others;
    int index;
} claim_race;

static void *claim_racer(void *arg)
{
    claim_race *race = arg;
    char owner[32];
    snprintf(owner, sizeof owner, "racer-%d", race->index);
    pthread_barrier_wait(race->start);
    for (int j = 0; j < RACE_JOBS; j++) {
        store_job job;
        int rc = store_claim(race->st, &race->ids[j], race->queue, owner, 60, &job);
        if (rc == 0) {
            atomic_fetch_add(&race->wins[j], 1);
            store_job_free(&job);
        } else if (rc == ACP_ECONFLICT) {
            atomic_fetch_add(&race->conflicts[j], 1);
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
    atomic_int wins[RACE_JOBS], conflicts[RACE_JOBS], others;
    for (int j = 0; j < RACE_JOBS; j++) {
        atomic_init(&wins[j], 0);
        atomic_init(&conflicts[j], 0);
    }
    atomic_init(&others, 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACE_THREADS);
    claim_race races[RACE_THREADS];
    pthread_t threads[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        races[i] = (claim_race){shared, queue, ids, &start, wins, conflicts, &others, i};
        assert_int_equal(pthread_create(&threads[i], NULL, claim_racer, &races[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);

    assert_int_equal(atomic_load(&others), 0);
    for (int j = 0; j < RACE_JOBS; j++) {
        if (atomic_load(&wins[j]) != 1 || atomic_load(&conflicts[j]) != RACE_THREADS - 1)
            fail_msg("job %d: %d wins, %d conflicts", j, atomic_load(&wins[j]),
                     atomic_load(&conflicts[j]));
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
    assert_int_equal(store_insert(shared, &id, queue, "{\"k\":\"v\"}", inputs, 1), 0);

    store_job job;
    /* Wrong queue: a stale message. */
    assert_int_equal(store_claim(shared, &id, "another-queue", "me", 60, &job), ACP_ECONFLICT);
    assert_error_contains(hex);

    int64_t before = now_us();
    assert_int_equal(store_claim(shared, &id, queue, "me", 90, &job), 0);
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

    /* Already claimed: a duplicate message. */
    assert_int_equal(store_claim(shared, &id, queue, "someone", 60, &job), ACP_ECONFLICT);
    assert_error_contains("in-progress");
    /* Finished. */
    assert_int_equal(store_finish(shared, &id, "me", ACP_STATUS_COMPLETE, NULL, NULL, 0), 0);
    assert_int_equal(store_claim(shared, &id, queue, "me", 60, &job), ACP_ECONFLICT);
    /* Unknown. */
    delete_ok(shared, &id);
    assert_int_equal(store_claim(shared, &id, queue, "me", 60, &job), ACP_ENOTFOUND);
    assert_error_contains(hex);
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

    assert_int_equal(store_finish(shared, &id, "owner-b", ACP_STATUS_COMPLETE, NULL, NULL, 0),
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

    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_QUEUED, NULL, NULL, 0),
                     ACP_EINVAL);

    const char *outputs[] = {"log.txt", "weird,\"name\"\\"};
    const char *message = "boom: \"quoted\"\nsecond line";
    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_FAILED, message, outputs, 2),
                     0);
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
    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_COMPLETE, NULL, NULL, 0),
                     ACP_ECONFLICT);
    delete_ok(shared, &id);
    assert_int_equal(store_finish(shared, &id, "owner-a", ACP_STATUS_COMPLETE, NULL, NULL, 0),
                     ACP_ECONFLICT);
    PQfinish(admin);
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
    insert_ok(shared, &mine, "renew", NULL);
    insert_ok(shared, &theirs, "renew", NULL);
    claim_ok(shared, &mine, "renew", owner_a, 5);
    claim_ok(shared, &theirs, "renew", owner_b, 5);

    size_t renewed = 99;
    assert_int_equal(store_renew_leases(shared, owner_a, 3600, &renewed), 0);
    assert_int_equal(renewed, 1);
    const char *sql = "SELECT lease_expires > now() + interval '3000 seconds' FROM compute.jobs "
                      "WHERE job_id = decode($1, 'hex')";
    char value[16];
    assert_string_equal(admin_value(admin, sql, mine_hex, value, sizeof value), "t");
    assert_string_equal(admin_value(admin, sql, theirs_hex, value, sizeof value), "f");

    assert_int_equal(store_renew_leases(shared, "nobody-holds-this", 60, &renewed), 0);
    assert_int_equal(renewed, 0);
    assert_int_equal(store_renew_leases(shared, owner_a, 60, NULL), 0);

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
    store_job_free(&job);
    char value[64];
    assert_string_equal(admin_value(admin,
                                    "SELECT coalesce(lease_owner, '-') || "
                                    "coalesce(lease_expires::text, '-') || "
                                    "(dispatched > now() - interval '1 minute') FROM compute.jobs "
                                    "WHERE job_id = decode($1, 'hex')",
                                    hex[EXPIRED], value, sizeof value),
                        "--true");
    get_ok(shared, &ids[LIVE], &job);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    store_job_free(&job);

    /* The old owner has lost its lease; a new claim counts an attempt. */
    assert_int_equal(store_finish(shared, &ids[EXPIRED], owner, ACP_STATUS_COMPLETE, NULL, NULL, 0),
                     ACP_ECONFLICT);
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

/* ---- dispatch bookkeeping ---------------------------------------------- */

static int take_batch(store *st, store_dispatch_list *out, void *arg)
{
    return store_take_undispatched(st, *(unsigned *)arg, 100, out);
}

static void take_undispatched_marks_and_clear_makes_eligible(void **state)
{
    (void)state;
    PGconn *admin = admin_connect(env.pg_db);
    char queue[ACP_QUEUE_ID_MAX + 1];
    new_queue(queue, "dispatch");
    enum { NEVER, RECENT, LONG_AGO, RUNNING, N };
    acp_job_id ids[N];
    char hex[N][ACP_JOB_ID_STRLEN];
    for (int i = 0; i < N; i++) {
        new_id(&ids[i], hex[i]);
        char config[32];
        snprintf(config, sizeof config, "{\"i\":%d}", i);
        insert_ok(shared, &ids[i], queue, config);
    }
    /* Inserted jobs count as being published; NEVER's publish failed. */
    assert_int_equal(store_clear_dispatched(shared, &ids[NEVER]), 0);
    assert_int_equal(store_mark_dispatched(shared, &ids[RECENT]), 0);
    admin_exec(admin,
               "UPDATE compute.jobs SET dispatched = now() - interval '2 hours' "
               "WHERE job_id = decode($1, 'hex')",
               hex[LONG_AGO]);
    claim_ok(shared, &ids[RUNNING], queue, "runner", 60);

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
    assert_int_equal(store_take_undispatched(shared, 60, 0, &list), 0);
    assert_int_equal(list.count, 0);

    for (int i = 0; i < N; i++)
        delete_ok(shared, &ids[i]);
    PQfinish(admin);
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
        assert_int_equal(store_insert(shared, &ids[i], queue, "{\"v\":1}", old_inputs, 1), 0);
    }
    const char *outputs[] = {"result.txt"};
    claim_ok(shared, &ids[COMPLETE], queue, "w", 60);
    assert_int_equal(
        store_finish(shared, &ids[COMPLETE], "w", ACP_STATUS_COMPLETE, NULL, outputs, 1), 0);
    claim_ok(shared, &ids[FAILED], queue, "w", 60);
    assert_int_equal(store_finish(shared, &ids[FAILED], "w", ACP_STATUS_FAILED, "bad", NULL, 0), 0);
    admin_exec(admin, "UPDATE compute.jobs SET status = 'expired' WHERE job_id = decode($1, 'hex')",
               hex[EXPIRED]);
    claim_ok(shared, &ids[RUNNING], queue, "w", 60);

    const char *new_inputs[] = {"new-1.txt", "new-2.txt"};
    for (int i = COMPLETE; i <= EXPIRED; i++) {
        store_job before, after;
        get_ok(shared, &ids[i], &before);
        assert_int_equal(store_mark_dispatched(shared, &ids[i]), 0);
        int rc = store_requeue(shared, &ids[i], rerun_queue, "{\"v\":2}", new_inputs, 2);
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

    assert_int_equal(store_requeue(shared, &ids[QUEUED], rerun_queue, NULL, NULL, 0),
                     ACP_ECONFLICT);
    assert_error_contains("queued");
    assert_int_equal(store_requeue(shared, &ids[RUNNING], rerun_queue, NULL, NULL, 0),
                     ACP_ECONFLICT);
    assert_error_contains("in-progress");
    store_job job;
    get_ok(shared, &ids[RUNNING], &job);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_string_equal(job.queue, queue);
    store_job_free(&job);
    acp_job_id unknown;
    new_id(&unknown, NULL);
    assert_int_equal(store_requeue(shared, &unknown, rerun_queue, NULL, NULL, 0), ACP_ENOTFOUND);

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
            rc = store_insert(l->st, &id, "load", NULL, NULL, 0);
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
    assert_int_equal(store_finish(st, &id, "owner", ACP_STATUS_COMPLETE, NULL, NULL, 0), 0);
    assert_true(kill_pool_backends(admin) >= 1);
    delete_ok(st, &id);
    assert_int_equal(atomic_load(&reconnects), before + 4);

    store_close(st);
    PQfinish(admin);
}

typedef struct blocked_call {
    store *st;
    const acp_job_id *id;
    bool claim;
    int rc;
    char error[512];
} blocked_call;

static void *blocked_caller(void *arg)
{
    blocked_call *call = arg;
    if (call->claim) {
        store_job job;
        call->rc = store_claim(call->st, call->id, "blocked", "owner", 60, &job);
        store_job_free(&job);
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

static void terminate(PGconn *watcher, int pid)
{
    char pid_text[16], value[8];
    snprintf(pid_text, sizeof pid_text, "%d", pid);
    assert_string_equal(admin_value(watcher, "SELECT pg_terminate_backend($1::int, 5000)", pid_text,
                                    value, sizeof value),
                        "t");
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

    /* A claim is not repeated: its outcome is reported as unknown. */
    admin_exec(locker, "BEGIN", NULL);
    admin_exec(locker, lock_row, hex);
    blocked_call claim = {.st = st, .id = &id, .claim = true};
    assert_int_equal(pthread_create(&thread, NULL, blocked_caller, &claim), 0);
    terminate(watcher, wait_for_blocked_backend(watcher, 0));
    pthread_join(thread, NULL);
    admin_exec(locker, "ROLLBACK", NULL);
    assert_int_equal(claim.rc, ACP_EDB);
    if (!strstr(claim.error, "may or may not have been applied") || !strstr(claim.error, hex))
        fail_msg("claim error: %s", claim.error);

    /* The next call gets a fresh connection; the claim had not happened. */
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
        cmocka_unit_test(insert_and_get_round_trip_every_field),
        cmocka_unit_test(insert_of_an_existing_id_conflicts),
        cmocka_unit_test(queue_positions_count_per_queue),
        cmocka_unit_test(claim_race_has_exactly_one_winner),
        cmocka_unit_test(claim_returns_the_row_or_says_why_not),
        cmocka_unit_test(finish_is_fenced_by_the_lease_owner),
        cmocka_unit_test(renew_extends_only_the_owners_leases),
        cmocka_unit_test(requeue_expired_takes_only_expired_running_jobs),
        cmocka_unit_test(take_undispatched_marks_and_clear_makes_eligible),
        cmocka_unit_test(requeue_reruns_finished_jobs_only),
        cmocka_unit_test(touch_and_delete),
        cmocka_unit_test(pool_of_two_serves_eight_threads),
        cmocka_unit_test(idle_connection_killed_by_the_server_is_replaced),
        cmocka_unit_test(connection_killed_during_a_statement),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
