/* Recording a run against the real services: a run that lost its lease
 * uploads nothing, and lease renewal covers exactly the jobs this process
 * still runs. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "maintenance.h"
#include "objects.h"
#include "platform_fixture.h"
#include "platform_state.h"

static stack_env env;

typedef struct world {
    fixture_config fc;
    char tag[9];
    acp_platform *p;
    objects *raw; /* the same bucket and root, to play the other run */
    PGconn *admin;
} world;

/* ---- database helpers -------------------------------------------------- */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *admin_connect(void)
{
    const char *keys[] = {
        "host", "port", "user", "password", "dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user,        env.pg_password,
                            env.pg_db,   "5",         "acp-persist-test", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("admin connection: %s", PQerrorMessage(conn));
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    return conn;
}

/* Runs @sql with the job's hex id as $1; the single value of its answer, if
 * any, goes to @out. */
static void admin_sql(PGconn *conn, const char *sql, const char *hex, char *out, size_t size)
{
    const char *values[] = {hex};
    PGresult *res = PQexecParams(conn, sql, 1, NULL, values, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    if (out) {
        if (PQntuples(res) != 1)
            fail_msg("%s: expected one row, got %d", sql, PQntuples(res));
        snprintf(out, size, "%s", PQgetisnull(res, 0, 0) ? "<null>" : PQgetvalue(res, 0, 0));
    }
    PQclear(res);
}

/* ---- an executor the test drives ---------------------------------------- */

/* Called in the middle of each run, before the run writes its result. */
static void (*during_run)(world *w, const acp_job_context *ctx);
static world *current;

static int hooked_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    if (during_run)
        during_run(current, ctx);
    int fd = openat(ctx->dir_fd, "result.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return 1;
    static const char mine[] = "this run's result";
    ssize_t n = write(fd, mine, sizeof mine - 1);
    close(fd);
    return n == (ssize_t)(sizeof mine - 1) ? acp_job_add_output(ctx, "result.txt") : 1;
}

static const acp_executor_ops hooked_ops = {ACP_EXECUTOR_OPS_VERSION, hooked_execute, NULL};
static acp_executor hooked_executor = {&hooked_ops};

static int hooked_create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    *out = &hooked_executor;
    return 0;
}

static const acp_executor_factory hooked_factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL,
                                                    hooked_create, NULL};

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, 1, &hooked_factory);
    if (acp_init(&w->p, &w->fc.config) != 0) {
        fprintf(stderr, "acp_init: %s\n", acp_last_error());
        free(w);
        return -1;
    }
    if (objects_open(&w->raw, &w->fc.config.s3, &w->fc.config.s3_client, NULL) != 0) {
        acp_shutdown(w->p);
        free(w);
        return -1;
    }
    w->admin = admin_connect();
    current = w;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    acp_shutdown(w->p);
    objects_close(w->raw);
    PQfinish(w->admin);
    during_run = NULL;
    current = NULL;
    free(w);
    return 0;
}

static acp_job_id submit(world *w, const char *n)
{
    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"n\":\"%s\"}", w->tag, n);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job;
    if (acp_submit(w->p, w->fc.queue_ids[0], &sub, &job) != 0)
        fail_msg("submit: %s", acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    return id;
}

static bool wait_log(const char *a, const char *b)
{
    for (int waited = 0; waited < FIXTURE_WAIT_S * 1000; waited += 20) {
        if (fixture_log_contains(a, b))
            return true;
        fixture_sleep_ms(20);
    }
    return false;
}

/* ---- point 3: a run that lost its lease uploads nothing ------------------ */

static const char others[] = "the other run's result";

/* What a requeue and a new claim by another process do meanwhile: the row
 * gets another lease owner, and the new run writes its result. */
static void take_the_job_over(world *w, const acp_job_context *ctx)
{
    PGconn *own = admin_connect();
    admin_sql(own,
              "UPDATE compute.jobs SET lease_owner = 'another-process', attempts = attempts + 1 "
              "WHERE job_id = decode($1, 'hex')",
              ctx->id_hex, NULL, 0);
    PQfinish(own);
    if (objects_put(w->raw, &ctx->id, "result.txt", others, sizeof others - 1) != 0)
        fail_msg("the other run's upload: %s", acp_last_error());
}

static void lost_lease_run_uploads_nothing(void **state)
{
    world *w = *state;
    during_run = take_the_job_over;
    acp_job_id id = submit(w, "lost-lease");
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&id, hex);
    if (!wait_log(hex, "lost its lease"))
        fail_msg("the run of %s never said it lost its lease", hex);

    void *data = NULL;
    size_t size = 0;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "result.txt", 1 << 20, &data, &size), 0);
    assert_int_equal(size, sizeof others - 1);
    assert_memory_equal(data, others, size);
    free(data);
    /* The row is still the other process's. */
    char value[64];
    admin_sql(
        w->admin,
        "SELECT status || ' ' || lease_owner FROM compute.jobs WHERE job_id = decode($1, 'hex')",
        hex, value, sizeof value);
    assert_string_equal(value, "in-progress another-process");
    admin_sql(w->admin, "DELETE FROM compute.jobs WHERE job_id = decode($1, 'hex')", hex, NULL, 0);
}

/* ---- point 11: only the leases of running jobs are renewed --------------- */

static void block_until_released(world *w, const acp_job_context *ctx)
{
    (void)ctx;
    PGconn *own = admin_connect();
    admin_sql(own, "SELECT pg_advisory_lock(hashtext($1))", w->tag, NULL, 0);
    PQfinish(own); /* ends its session: the lock goes with it */
}

static void renewal_skips_leases_of_jobs_not_running_here(void **state)
{
    world *w = *state;
    /* A row with our owner that no worker of ours runs (a run given up
     * on): its lease must run out. */
    acp_job_id stale;
    char stale_hex[ACP_JOB_ID_STRLEN];
    acp_job_id_generate(&stale);
    acp_job_id_format(&stale, stale_hex);
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
             "last_accessed, grabbed, lease_owner, lease_expires, attempts) VALUES "
             "(decode($1, 'hex'), 'in-progress', 'elsewhere-%s', '{}', now(), now(), now(), "
             "'%s', now() + interval '20 seconds', 1)",
             w->tag, w->p->instance_id);
    admin_sql(w->admin, sql, stale_hex, NULL, 0);

    /* And a job one of our workers is running now. */
    during_run = block_until_released;
    admin_sql(w->admin, "SELECT pg_advisory_lock(hashtext($1))", w->tag, NULL, 0);
    acp_job_id running = submit(w, "running");
    char running_hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&running, running_hex);
    acp_job job = {0};
    if (!fixture_wait_status(w->p, &running, ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job))
        fail_msg("the job did not start");
    acp_job_clear(&job);
    admin_sql(w->admin,
              "UPDATE compute.jobs SET lease_expires = now() + interval '20 seconds' "
              "WHERE job_id = decode($1, 'hex')",
              running_hex, NULL, 0);

    maintenance_tick(w->p, true);

    const char *renewed = "SELECT lease_expires > now() + interval '40 seconds' "
                          "FROM compute.jobs WHERE job_id = decode($1, 'hex')";
    char value[16];
    admin_sql(w->admin, renewed, running_hex, value, sizeof value);
    assert_string_equal(value, "t");
    admin_sql(w->admin, renewed, stale_hex, value, sizeof value);
    assert_string_equal(value, "f");

    admin_sql(w->admin, "SELECT pg_advisory_unlock(hashtext($1))", w->tag, NULL, 0);
    if (!fixture_wait_status(w->p, &running, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
        fail_msg("the running job did not complete");
    acp_job_clear(&job);
    admin_sql(w->admin, "DELETE FROM compute.jobs WHERE job_id = decode($1, 'hex')", stale_hex,
              NULL, 0);
}

int main(void)
{
    int status;
    if (stack_env_load(&env, &status) != 0)
        return status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lost_lease_run_uploads_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(renewal_skips_leases_of_jobs_not_running_here, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
