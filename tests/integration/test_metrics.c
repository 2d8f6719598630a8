/* acp_metrics_write end to end against the real services: the job
 * counters and histograms move as jobs succeed, fail, are retried, time
 * out, are cancelled and are requeued after a lost lease; the backends'
 * requests are counted; a scrape costs at most one SQL statement (the
 * queued jobs' count is cached for 5 s); and promtool accepts the text. */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "config.h"
#include "maintenance.h"
#include "metrics.h"
#include "pgpool.h"
#include "platform.h"
#include "platform_state.h"
#include "platform_fixture.h"
#include "store.h"

static stack_env env;

/* ---- the executor: what it does comes from the job's config ------------- */

static atomic_bool released;

static bool config_has(const acp_job_context *ctx, const char *mode)
{
    return ctx->config && strstr(ctx->config, mode);
}

static int metrics_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    if (config_has(ctx, "\"flaky\""))
        return ctx->attempt <= 2; /* fails its first two attempts */
    if (config_has(ctx, "\"fail\""))
        return 1;
    if (config_has(ctx, "\"permanent\"")) {
        acp_job_fail_permanently(ctx, "never works");
        return 1;
    }
    if (config_has(ctx, "\"honour\"")) {
        /* Until cancelled or timed out. */
        struct pollfd pfd = {.fd = acp_job_cancel_fd(ctx), .events = POLLIN};
        int64_t end = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
        while (fixture_mono_ms() < end && !atomic_load(&released) && poll(&pfd, 1, 50) == 0)
            ;
        return acp_job_cancelled(ctx) != ACP_CANCEL_NONE;
    }
    acp_job_add_output(ctx, "out.txt");
    int fd = openat(ctx->dir_fd, "out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        if (write(fd, "ok\n", 3) != 3)
            acp_job_set_message(ctx, "short write");
        close(fd);
    }
    return 0;
}

static void metrics_free_executor(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops metrics_ops = {ACP_EXECUTOR_OPS_VERSION, metrics_execute,
                                             metrics_free_executor};
static const acp_executor_factory metrics_factory = {
    ACP_EXECUTOR_FACTORY_VERSION, (void *)&metrics_ops, fixture_ops_create, NULL};

/* ---- scraping ----------------------------------------------------------- */

typedef struct text {
    char *data;
    size_t len;
    int calls;
} text;

static int text_sink(void *userdata, const void *data, size_t len)
{
    text *t = userdata;
    char *grown = realloc(t->data, t->len + len + 1);
    if (!grown)
        return 1;
    memcpy(grown + t->len, data, len);
    t->data = grown;
    t->len += len;
    t->data[t->len] = '\0';
    t->calls++;
    return 0;
}

static char *scrape(acp_platform *p)
{
    text t = {0};
    if (acp_metrics_write(p, text_sink, &t) != 0)
        fail_msg("acp_metrics_write: %s", acp_last_error());
    assert_non_null(t.data);
    return t.data;
}

/* The value of the sample "<series> <value>" in @scraped (@series: the
 * name with its labels exactly as written); false when there is none. */
static bool sample_find(const char *scraped, const char *series, double *value)
{
    size_t n = strlen(series);
    for (const char *line = scraped; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ') {
            *value = strtod(line + n + 1, NULL);
            return true;
        }
    }
    return false;
}

static double sample(const char *scraped, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double sample(const char *scraped, const char *fmt, ...)
{
    char series[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(series, sizeof series, fmt, ap);
    va_end(ap);
    double value;
    if (!sample_find(scraped, series, &value))
        fail_msg("no sample %s in:\n%s", series, scraped);
    return value;
}

/* Scrape until @series reads @expected (a counter whose last increment
 * follows the row's update by a moment), failing when it goes past it or
 * when FIXTURE_WAIT_S passes. */
static void wait_sample(acp_platform *p, const char *series, double expected)
{
    int64_t end = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    double value = -1;
    for (;;) {
        char *scraped = scrape(p);
        bool found = sample_find(scraped, series, &value);
        free(scraped);
        if (found && value == expected)
            return;
        if (found && value > expected)
            fail_msg("%s is %g, beyond %g", series, value, expected);
        if (fixture_mono_ms() > end)
            fail_msg("%s is %g after %d s, not %g", series, value, FIXTURE_WAIT_S, expected);
        fixture_sleep_ms(50);
    }
}

/* promtool from PATH (the Debian package prometheus); its absence fails. */
static void promtool_check(const char *scraped)
{
    const char *path = getenv("PATH");
    char tool[1024] = "";
    for (const char *dir = path; dir && *dir && !*tool;) {
        size_t len = strcspn(dir, ":");
        char candidate[1024];
        snprintf(candidate, sizeof candidate, "%.*s/promtool", (int)len, dir);
        if (access(candidate, X_OK) == 0)
            snprintf(tool, sizeof tool, "%s", candidate);
        dir += len + (dir[len] == ':');
    }
    if (!*tool)
        fail_msg("promtool is not on PATH (Debian package prometheus; scripts/test installs it)");
    char in[] = "/tmp/acp-metrics-XXXXXX", out[] = "/tmp/acp-promtool-XXXXXX";
    int fd = mkstemp(in), ofd = mkstemp(out);
    assert_true(fd >= 0 && ofd >= 0);
    assert_int_equal(write(fd, scraped, strlen(scraped)), (ssize_t)strlen(scraped));
    close(fd);
    close(ofd);
    char command[3200];
    snprintf(command, sizeof command, "'%s' check metrics < '%s' > '%s' 2>&1", tool, in, out);
    int status = system(command);
    char report[4096] = "";
    FILE *f = fopen(out, "r");
    if (f) {
        report[fread(report, 1, sizeof report - 1, f)] = '\0';
        fclose(f);
    }
    unlink(in);
    unlink(out);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("promtool check metrics failed (status %d):\n%s\non:\n%s", status, report,
                 scraped);
}

/* ---- worlds ------------------------------------------------------------- */

typedef struct world {
    fixture_config fc;
    char tag[9];
    char q[80];      /* queue="<the queue>" */
    char dbname[40]; /* a database of its own, or "" */
    acp_platform *p;
} world;

/* A platform of one queue with two workers and quick retries; with
 * @background false it has no maintenance, pruner and listener threads,
 * so that the test alone runs statements while its workers are idle. With
 * @own_db it works in a database of its own, which no other test's
 * platform shares (their maintenance would requeue its expired leases). */
static world *world_start_in(bool background, bool own_db)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, 2, &metrics_factory);
    if (own_db) {
        snprintf(w->dbname, sizeof w->dbname, "acp_metrics_%s", w->tag);
        char sql[96];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", w->dbname);
        fixture_stack_db_exec(&env, sql);
        w->fc.config.db.dbname = w->dbname;
    }
    w->fc.queues[0].max_attempts = 3;
    w->fc.queues[0].retry_base_ms = 50;
    w->fc.queues[0].retry_max_ms = 100;
    w->fc.config.lease_seconds = 3;
    snprintf(w->q, sizeof w->q, "queue=\"%s\"", w->fc.queue_ids[0]);
    atomic_store(&released, false);
    if (background) {
        if (acp_init(&w->p, &w->fc.config) != 0)
            fail_msg("acp_init: %s", acp_last_error());
    } else {
        assert_int_equal(config_check(&w->fc.config), 0);
        platform_backends quiet = {.no_background_threads = true};
        if (platform_init_with(&w->p, &w->fc.config, &quiet) != 0)
            fail_msg("platform_init_with: %s", acp_last_error());
    }
    return w;
}

static world *world_start(bool background)
{
    return world_start_in(background, false);
}

static void world_stop(world *w)
{
    atomic_store(&released, true);
    acp_shutdown(w->p);
    if (w->dbname[0]) {
        char sql[96];
        snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", w->dbname);
        fixture_stack_db_exec(&env, sql);
    }
    free(w);
}

static acp_job_id submit(world *w, const char *mode, int n, acp_submission *sub)
{
    acp_job_id id;
    if (fixture_submit_mode(w->p, w->fc.queue_ids[0], mode, w->tag, n, sub, &id) != 0)
        fail_msg("acp_submit: %s", acp_last_error());
    return id;
}

static void wait_for(world *w, const acp_job_id *id, acp_job_status status)
{
    acp_job job = {0};
    if (!fixture_wait_status(w->p, id, status, FIXTURE_WAIT_S, &job))
        fail_msg("job is %s (%s) after %d s, not %s", acp_job_status_name(job.status),
                 job.message ? job.message : "no message", FIXTURE_WAIT_S,
                 acp_job_status_name(status));
    acp_job_clear(&job);
}

/* ---- tests -------------------------------------------------------------- */

#define SQL_SERIES        "acp_backend_requests_total{backend=\"sql\",kind=\"statement\"}"
#define SQL_ERRORS_SERIES "acp_backend_errors_total{backend=\"sql\",kind=\"statement\"}"
#define S3_PUT_SERIES     "acp_backend_requests_total{backend=\"s3\",kind=\"put\"}"

static void counters_move_as_jobs_succeed_fail_retry_time_out_and_are_cancelled(void **state)
{
    (void)state;
    world *w = world_start(true);
    acp_stats stats_before = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(w->p, &stats_before), 0);
    char *before = scrape(w->p);
    double sql_before = sample(before, SQL_SERIES), puts_before = sample(before, S3_PUT_SERIES);
    acp_stats stats_scraped = {.version = ACP_STATS_VERSION}; /* the threads run meanwhile */
    assert_int_equal(acp_get_stats(w->p, &stats_scraped), 0);
    assert_int_equal(sample(before, "acp_jobs_submitted_total{%s}", w->q), 0);
    assert_int_equal(sample(before, "acp_jobs_started_total{%s}", w->q), 0);
    assert_int_equal(sample(before, "acp_job_run_seconds_count{%s}", w->q), 0);
    assert_int_equal(sample(before, "acp_workers{%s,state=\"idle\"}", w->q), 2);
    free(before);

    acp_job_id ok1 = submit(w, "ok", 1, NULL), ok2 = submit(w, "ok", 2, NULL);
    acp_job_id flaky = submit(w, "flaky", 3, NULL); /* 2 retries, then complete */
    acp_job_id fail = submit(w, "fail", 4, NULL);   /* 2 retries, then failed */
    acp_job_id permanent = submit(w, "permanent", 5, NULL);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.timeout_seconds = 2;
    sub.max_attempts = 1;
    acp_job_id timeout = submit(w, "honour", 6, &sub); /* timed out, then failed */
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.delay_ms = 3600 * 1000;
    acp_job_id delayed = submit(w, "ok", 7, &sub);
    assert_int_equal(acp_cancel_job(w->p, &delayed), 0); /* cancelled before it ran */
    acp_job_id running = submit(w, "honour", 8, NULL);
    wait_for(w, &running, ACP_STATUS_IN_PROGRESS);
    char *busy = scrape(w->p);
    assert_true(sample(busy, "acp_jobs_running{%s}", w->q) >= 1);
    assert_true(sample(busy, "acp_workers{%s,state=\"busy\"}", w->q) >= 1);
    assert_int_equal(sample(busy, "acp_workers{%s,state=\"busy\"}", w->q) +
                         sample(busy, "acp_workers{%s,state=\"idle\"}", w->q),
                     2);
    free(busy);
    assert_int_equal(acp_cancel_job(w->p, &running), 0); /* cancelled while running */

    wait_for(w, &ok1, ACP_STATUS_COMPLETE);
    wait_for(w, &ok2, ACP_STATUS_COMPLETE);
    wait_for(w, &flaky, ACP_STATUS_COMPLETE);
    wait_for(w, &fail, ACP_STATUS_FAILED);
    wait_for(w, &permanent, ACP_STATUS_FAILED);
    wait_for(w, &timeout, ACP_STATUS_FAILED);
    wait_for(w, &delayed, ACP_STATUS_CANCELLED);
    wait_for(w, &running, ACP_STATUS_CANCELLED);

    /* Attempts: ok 1+1, flaky 3, fail 3, permanent 1, timeout 1, running 1. */
    char series[200];
    static const struct {
        const char *name;
        double value;
    } expected[] = {
        {"acp_jobs_submitted_total", 8},   {"acp_jobs_started_total", 11},
        {"acp_jobs_succeeded_total", 3},   {"acp_jobs_failed_total", 3},
        {"acp_jobs_retried_total", 4},     {"acp_jobs_cancelled_total", 2},
        {"acp_jobs_timed_out_total", 1},   {"acp_jobs_requeued_total", 0},
        {"acp_job_run_seconds_count", 11}, {"acp_job_queue_wait_seconds_count", 11},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        snprintf(series, sizeof series, "%s{%s}", expected[i].name, w->q);
        wait_sample(w->p, series, expected[i].value);
    }

    /* The same counts as acp_get_stats, which counts over all queues; the
     * maintenance thread may run statements between the readings. A worker
     * lets go of its job a moment after the job's end is recorded: the
     * gauges are read once none runs. */
    acp_stats stats = {.version = ACP_STATS_VERSION}, later = {.version = ACP_STATS_VERSION};
    int64_t idle_by = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    do {
        assert_int_equal(acp_get_stats(w->p, &stats), 0);
        if (stats.jobs_running == 0)
            break;
        fixture_sleep_ms(20);
    } while (fixture_mono_ms() < idle_by);
    char *after = scrape(w->p);
    assert_int_equal(acp_get_stats(w->p, &later), 0);
    assert_int_equal(stats.jobs_started, 11);
    assert_int_equal(stats.jobs_retried, 4);
    assert_int_equal(stats.jobs_timed_out, 1);
    assert_int_equal(stats.jobs_running, 0);
    assert_int_equal(sample(after, "acp_jobs_running{%s}", w->q), 0);
    assert_int_equal(sample(after, "acp_workers{%s,state=\"idle\"}", w->q), 2);
    assert_int_equal(sample(after, "acp_executors_overdue"), 0);

    /* Cumulative buckets: never falling, +Inf equal to the count; the
     * timed-out attempt ran most of its 2 s limit. */
    double last = 0;
    static const char *const les[] = {"0.1", "0.5", "1",   "5",    "10",   "30",   "60",    "180",
                                      "300", "600", "900", "1800", "3600", "7200", "18000", "+Inf"};
    for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
        double b = sample(after, "acp_job_run_seconds_bucket{%s,le=\"%s\"}", w->q, les[i]);
        assert_true(b >= last);
        last = b;
    }
    assert_int_equal(last, 11);
    /* Its 2 s deadline counts from the claim, the run from the executor's
     * start, which comes a moment later (TSan's runs: 0.99 to 1.55 s with a
     * 1 s limit): it ran more than 1 s. */
    assert_true(sample(after, "acp_job_run_seconds_bucket{%s,le=\"1\"}", w->q) <= 10);
    assert_true(sample(after, "acp_job_run_seconds_sum{%s}", w->q) >= 1.0);
    assert_int_equal(sample(after, "acp_job_queue_wait_seconds_bucket{%s,le=\"+Inf\"}", w->q), 11);

    /* The backends did their part, each request counted once. */
    /* (The metrics count from the end of acp_init: its migrations and
     * checks are only in acp_get_stats.) */
    double sql = sample(after, SQL_SERIES) - sql_before;
    assert_true(sql >= (double)(stats.sql_statements - stats_scraped.sql_statements) &&
                sql <= (double)(later.sql_statements - stats_before.sql_statements));
    double puts = sample(after, S3_PUT_SERIES) - puts_before;
    assert_true(puts >= (double)(stats.s3_puts - stats_scraped.s3_puts) &&
                puts <= (double)(later.s3_puts - stats_before.s3_puts));
    assert_true(stats.s3_puts >= 3); /* out.txt of the three complete jobs */
    assert_true(sample(after, "acp_backend_requests_total{backend=\"amqp\",kind=\"publish\"}") >=
                7);
    assert_true(sample(after, "acp_backend_requests_total{backend=\"amqp\",kind=\"consume\"}") >=
                11);
    assert_true(sample(after, "acp_backend_request_seconds_count{backend=\"sql\"}") > 0);
    assert_int_equal(sample(after, "acp_backend_reconnects_total{backend=\"sql\"}"), 0);
    assert_int_equal(sample(after, "acp_build_info{version=\"" ACP_VERSION_STRING "\"}"), 1);
    assert_true(sample(after, "acp_process_start_time_seconds") > 1.7e9);
    assert_int_equal(sample(after, "acp_jobs_queued{%s}", w->q), 0);
    assert_non_null(strstr(after, "# TYPE acp_job_run_seconds histogram\n"));
    assert_non_null(strstr(after, "# TYPE acp_jobs_started_total counter\n"));
    promtool_check(after);
    free(after);
    world_stop(w);
}

static uint64_t statements(world *w)
{
    acp_stats stats = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(w->p, &stats), 0);
    return stats.sql_statements;
}

static void scrape_costs_at_most_one_statement_and_queued_is_cached(void **state)
{
    (void)state;
    world *w = world_start(false);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.delay_ms = 3600 * 1000; /* queued, never claimed */
    acp_job_id ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = submit(w, "ok", i, &sub);

    /* Nothing else runs statements: no background threads, idle workers. */
    uint64_t at = statements(w);
    char *first = scrape(w->p); /* no count yet: one query */
    assert_int_equal(statements(w) - at, 1);
    assert_int_equal(sample(first, "acp_jobs_queued{%s}", w->q), 3);
    free(first);

    assert_int_equal(acp_cancel_job(w->p, &ids[0]), 0);
    at = statements(w);
    char *second = scrape(w->p), *third = scrape(w->p);
    assert_int_equal(statements(w) - at, 0); /* fresh: none */
    assert_int_equal(sample(second, "acp_jobs_queued{%s}", w->q), 3);
    assert_int_equal(sample(third, "acp_jobs_queued{%s}", w->q), 3);
    assert_int_equal(sample(second, "acp_jobs_cancelled_total{%s}", w->q), 1);
    free(second);
    free(third);

    fixture_sleep_ms(METRICS_QUEUED_TTL_MS + 200);
    at = statements(w);
    char *stale = scrape(w->p), *again = scrape(w->p);
    assert_int_equal(statements(w) - at, 1); /* stale: one query for both */
    assert_int_equal(sample(stale, "acp_jobs_queued{%s}", w->q), 2);
    assert_int_equal(sample(again, "acp_jobs_queued{%s}", w->q), 2);
    promtool_check(again);
    free(stale);
    free(again);
    /* Nothing left queued for a queue nobody will serve again. */
    assert_int_equal(acp_cancel_job(w->p, &ids[1]), 0);
    assert_int_equal(acp_cancel_job(w->p, &ids[2]), 0);
    world_stop(w);
}

/* A job of a queue this process does not serve, claimed by a process that
 * died (its lease runs out): this process's maintenance requeues it, and
 * counts it under that queue. */
static void lost_lease_is_counted_under_the_jobs_queue(void **state)
{
    (void)state;
    world *w = world_start_in(false, true);
    store *st;
    logger quiet = {NULL, NULL, ACP_LOG_ERROR};
    if (store_open(&st, &w->fc.config.db, &quiet) != 0)
        fail_msg("store_open: %s", acp_last_error());
    char other[80];
    snprintf(other, sizeof other, "other-%s", w->tag);
    acp_job_id id;
    acp_job_id_generate(&id);
    int inserted = store_insert(st, &id, other, NULL, NULL, 0, NULL);
    assert_true(inserted == 0 || inserted == 1);
    store_job row;
    assert_int_equal(store_claim(st, other, "a-process-that-dies", 1, &row), 0);
    store_job_free(&row);
    fixture_sleep_ms(1500); /* the 1 s lease runs out */
    int64_t end = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    char series[200];
    snprintf(series, sizeof series, "acp_jobs_requeued_total{queue=\"%s\"}", other);
    double value = 0;
    while (fixture_mono_ms() < end) {
        maintenance_tick(w->p, false);
        char *scraped = scrape(w->p);
        bool found = sample_find(scraped, series, &value);
        free(scraped);
        if (found && value >= 1)
            break;
        fixture_sleep_ms(200);
    }
    assert_int_equal(value, 1);
    char *scraped = scrape(w->p);
    assert_int_equal(sample(scraped, "acp_jobs_requeued_total{%s}", w->q), 0);
    promtool_check(scraped);
    free(scraped);
    store_delete(st, &id);
    store_close(st);
    world_stop(w);
}

/* A statement that fails is an error; a pooled connection the server
 * closed is reset: a reconnect. */
static void sql_errors_and_reconnects_are_counted(void **state)
{
    (void)state;
    world *w = world_start(false);
    pgpool *pool = pgpool_of(w->p->store);
    char *first = scrape(w->p);
    double errors = sample(first, SQL_ERRORS_SERIES);
    double requests = sample(first, SQL_SERIES);
    double reconnects = sample(first, "acp_backend_reconnects_total{backend=\"sql\"}");
    free(first);

    PGresult *res = NULL;
    assert_int_equal(pgpool_query(pool, true, "a statement that fails",
                                  "SELECT no_such_column FROM compute.jobs", NULL, &res),
                     ACP_EDB);
    char *failed = scrape(w->p);
    assert_int_equal(sample(failed, SQL_ERRORS_SERIES), errors + 1);
    assert_int_equal(sample(failed, SQL_SERIES), requests + 1);
    assert_int_equal(sample(failed, "acp_backend_reconnects_total{backend=\"sql\"}"), reconnects);
    free(failed);

    /* The pool hands out the connection given back last: end its session. */
    PGconn *conn, *admin;
    assert_int_equal(pgpool_borrow(pool, "test", &conn), 0);
    int pid = PQbackendPID(conn);
    pgpool_give_back(pool, conn);
    assert_int_equal(pgpool_connect_own(pool, "test", &admin), 0);
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", pid);
    const char *values[] = {pid_text};
    res = PQexecParams(admin, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, values, NULL,
                       NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    PQfinish(admin);
    store_queue_count *counts;
    size_t count;
    assert_int_equal(store_count_queued(w->p->store, &counts, &count), 0);
    free(counts);
    char *after = scrape(w->p);
    assert_int_equal(sample(after, "acp_backend_reconnects_total{backend=\"sql\"}"),
                     reconnects + 1);
    /* The pool saw the session's end before using it: no statement failed. */
    assert_int_equal(sample(after, SQL_ERRORS_SERIES), errors + 1);
    promtool_check(after);
    free(after);
    world_stop(w);
}

static int refusing_sink(void *userdata, const void *data, size_t len)
{
    (void)userdata, (void)data, (void)len;
    return 7;
}

static void bad_arguments_are_refused(void **state)
{
    (void)state;
    world *w = world_start(false);
    text t = {0};
    assert_int_equal(acp_metrics_write(NULL, text_sink, &t), ACP_EINVAL);
    assert_int_equal(acp_metrics_write(w->p, NULL, NULL), ACP_EINVAL);
    assert_null(t.data);
    assert_int_equal(acp_metrics_write(w->p, refusing_sink, NULL), ACP_EUSER);
    assert_non_null(strstr(acp_last_error(), "7"));
    world_stop(w);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_move_as_jobs_succeed_fail_retry_time_out_and_are_cancelled),
        cmocka_unit_test(scrape_costs_at_most_one_statement_and_queued_is_cached),
        cmocka_unit_test(lost_lease_is_counted_under_the_jobs_queue),
        cmocka_unit_test(sql_errors_and_reconnects_are_counted),
        cmocka_unit_test(bad_arguments_are_refused),
    };
    if (getenv("ACP_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ACP_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
