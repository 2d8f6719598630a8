/* Progress and job logs end to end against the real services: progress
 * visible while a job runs and coalesced; a log read while the job runs,
 * then from its kept "log.txt"; followed from another process, line by
 * line as it is written; bounded by the cap (head, marker, tail) while a
 * job writes 100 MiB; a retried job's log with its attempt header; the
 * no-op job's cost unchanged; bad input. */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <valgrind/valgrind.h>

#include "platform_fixture.h"

static stack_env env;
static const char *self_path;
static atomic_bool released;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Valgrind and the sanitizers slow every step: the latency bound the issue
 * states grows with them. */
__attribute__((unused)) static int64_t latency_bound_ms(int64_t ms)
{
    int64_t factor = RUNNING_ON_VALGRIND ? 8 : 1;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    factor *= 3;
#endif
    return ms * factor;
}

static bool config_has(const acp_job_context *ctx, const char *mode)
{
    return ctx->config && strstr(ctx->config, mode);
}

/* ---- the executor: what it does comes from the job's config ------------- */

#define LINES_COUNT 50
#define TICKS       30
#define FLOOD_BYTES (100u << 20)
#define FLOOD_LINE  1024

static int joblog_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    if (config_has(ctx, "\"lines\"")) {
        /* Numbered lines, some of them in pieces, progress, then waits
         * until the test has looked. */
        for (int i = 0; i < LINES_COUNT; i++) {
            if (i % 5 == 0) {
                char line[64];
                int n = snprintf(line, sizeof line, "line %d of %d\n", i, LINES_COUNT);
                acp_job_log_write(ctx, line, 3);
                acp_job_log_write(ctx, line + 3, (size_t)n - 3);
            } else if (acp_job_log(ctx, "line %d of %d", i, LINES_COUNT) != 0) {
                return 1;
            }
        }
        acp_job_progress(ctx, 7, 10, "seven of ten");
        while (!atomic_load(&released))
            fixture_sleep_ms(10);
        acp_job_log(ctx, "done");
        acp_job_progress(ctx, 10, 10, NULL);
    } else if (config_has(ctx, "\"ticker\"")) {
        /* A line every 100 ms, each with the wall time it was written. */
        for (int i = 0; i < TICKS; i++) {
            acp_job_log(ctx, "tick %d at %" PRId64, i, wall_us());
            fixture_sleep_ms(100);
        }
    } else if (config_has(ctx, "\"flood\"")) {
        /* 100 MiB of numbered lines of FLOOD_LINE bytes, as fast as it can. */
        char line[FLOOD_LINE];
        memset(line, 'x', sizeof line);
        line[sizeof line - 1] = '\n';
        for (unsigned i = 0; i < FLOOD_BYTES / FLOOD_LINE; i++) {
            snprintf(line, 16, "%014u", i);
            line[14] = ' ';
            if (acp_job_log_write(ctx, line, sizeof line) != 0)
                return 1;
        }
    } else if (config_has(ctx, "\"progress\"")) {
        /* 10,000 reports over about 2 s. */
        for (int i = 1; i <= 10000; i++) {
            char text[32];
            snprintf(text, sizeof text, "step %d", i);
            if (acp_job_progress(ctx, (uint64_t)i, 10000, text) != 0)
                return 1;
            if (i % 50 == 0)
                fixture_sleep_ms(10);
        }
        while (!atomic_load(&released))
            fixture_sleep_ms(10);
    } else if (config_has(ctx, "\"retried\"")) {
        acp_job_log(ctx, "attempt %u says hello", ctx->attempt);
        if (ctx->attempt == 1) {
            acp_job_log_write(ctx, "no newline yet", 14);
            acp_job_set_message(ctx, "first attempt fails");
            return 1;
        }
    }
    return 0;
}

static void joblog_free(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops joblog_ops = {ACP_EXECUTOR_OPS_VERSION, joblog_execute, joblog_free};
static const acp_executor_factory joblog_factory = {ACP_EXECUTOR_FACTORY_VERSION,
                                                    (void *)&joblog_ops, fixture_ops_create, NULL};

/* ---- worlds ---------------------------------------------------------- */

typedef struct world {
    fixture_config fc;
    char tag[9];
    acp_platform *p;
} world;

static world *world_start(size_t cap)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, 2, &joblog_factory);
    w->fc.queues[0].max_attempts = 0; /* config.max_attempts: 3 */
    w->fc.queues[0].retry_base_ms = 50;
    w->fc.queues[0].retry_max_ms = 100;
    w->fc.config.log_cap_bytes = cap;
    if (acp_init(&w->p, &w->fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
    atomic_store(&released, false);
    return w;
}

static void world_stop(world *w)
{
    atomic_store(&released, true);
    acp_shutdown(w->p);
    free(w);
}

static acp_job_id submit(world *w, const char *mode)
{
    char config[160];
    static int n;
    snprintf(config, sizeof config, "{\"mode\":\"%s\",\"n\":\"%s-%d\"}", mode, w->tag, ++n);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job = {0};
    if (acp_submit(w->p, w->fc.queue_ids[0], &sub, &job) != 0)
        fail_msg("acp_submit: %s", acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    return id;
}

static acp_job wait_for(acp_platform *p, const acp_job_id *id, acp_job_status status)
{
    acp_job job = {0};
    if (!fixture_wait_status(p, id, status, FIXTURE_WAIT_S, &job))
        fail_msg("job is %s (%s) after %d s, not %s", acp_job_status_name(job.status),
                 job.message ? job.message : "no message", FIXTURE_WAIT_S,
                 acp_job_status_name(status));
    return job;
}

static acp_stats stats_of(acp_platform *p)
{
    acp_stats stats = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(p, &stats), 0);
    return stats;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct text {
    char *data;
    size_t len, cap;
    size_t calls;
} text;

static int text_sink(void *userdata, const void *data, size_t len)
{
    text *t = userdata;
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->len + len + 1) * 2;
        char *grown = realloc(t->data, cap);
        if (!grown)
            return -1;
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, data, len);
    t->len += len;
    t->data[t->len] = '\0';
    t->calls++;
    return 0;
}

static void text_free(text *t)
{
    free(t->data);
    memset(t, 0, sizeof *t);
}

/* Read job @id's log from @offset to where it is now (no wait), appended to
 * @t; returns the last read's state. */
static acp_log_read read_to_end(acp_platform *p, const acp_job_id *id, uint64_t offset, text *t)
{
    acp_log_read r;
    assert_int_equal(acp_log_read_init(&r, ACP_LOG_READ_VERSION), 0);
    r.offset = offset;
    for (;;) {
        int rc = acp_read_log(p, id, &r, text_sink, t);
        if (rc != 0)
            fail_msg("acp_read_log: %d %s", rc, acp_last_error());
        if (r.next == r.offset)
            return r;
        r.offset = r.next;
    }
}

static void expect_lines(const text *t)
{
    const char *at = t->data;
    for (int i = 0; i < LINES_COUNT; i++) {
        char line[64];
        snprintf(line, sizeof line, "line %d of %d\n", i, LINES_COUNT);
        assert_non_null(at);
        if (strncmp(at, line, strlen(line)) != 0)
            fail_msg("line %d: expected '%s', got '%.40s'", i, line, at);
        at += strlen(line);
    }
}

/* ---- tests -------------------------------------------------------------- */

static void log_is_read_while_running_then_kept_as_log_txt(void **state)
{
    (void)state;
    world *w = world_start(0);
    acp_job_id id = submit(w, "lines");
    acp_job job = wait_for(w->p, &id, ACP_STATUS_IN_PROGRESS);
    acp_job_clear(&job);

    /* The lines and the progress reach the database within moments. */
    text t = {0};
    acp_log_read r;
    int64_t until = mono_ms() + FIXTURE_WAIT_S * 1000;
    for (;;) {
        text_free(&t);
        r = read_to_end(w->p, &id, 0, &t);
        assert_int_equal(acp_get_job(w->p, &id, &job), 0);
        bool progress = job.progress_updated != 0;
        if (t.len && strstr(t.data, "line 49 of 50\n") && progress)
            break;
        acp_job_clear(&job);
        if (mono_ms() > until)
            fail_msg("the log has %zu bytes and no progress after %d s", t.len, FIXTURE_WAIT_S);
        fixture_sleep_ms(50);
    }
    expect_lines(&t);
    assert_int_equal(r.ended, 0);
    assert_int_equal(r.dropped, 0);
    assert_int_equal(r.next, t.len);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(job.progress_done, 7);
    assert_int_equal(job.progress_total, 10);
    assert_string_equal(job.progress_text, "seven of ten");
    assert_true(job.progress_updated > wall_us() - 600 * 1000000LL);
    acp_job_clear(&job);

    /* A read from the middle, a few bytes at a time, gives the same. */
    acp_log_read part;
    acp_log_read_init(&part, ACP_LOG_READ_VERSION);
    part.offset = 13; /* "line 1 of 50\n" */
    part.max_bytes = 20;
    text piece = {0};
    assert_int_equal(acp_read_log(w->p, &id, &part, text_sink, &piece), 0);
    assert_int_equal(part.next, 13 + 13); /* whole lines: "line 1 of 50\n" alone */
    assert_string_equal(piece.data, "line 1 of 50\n");
    text_free(&piece);

    atomic_store(&released, true);
    job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    assert_int_equal(job.progress_done, 10);
    assert_null(job.progress_text);
    acp_job_clear(&job);

    /* Ended: the same offsets, now from the kept file. */
    text after = {0};
    r = read_to_end(w->p, &id, 0, &after);
    assert_int_equal(r.ended, 1);
    assert_int_equal(after.len, t.len + strlen("done\n"));
    assert_memory_equal(after.data, t.data, t.len);
    assert_string_equal(after.data + t.len, "done\n");
    text tail = {0};
    r = read_to_end(w->p, &id, t.len, &tail);
    assert_string_equal(tail.data, "done\n");
    assert_int_equal(r.ended, 1);
    void *kept;
    size_t kept_len;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "log.txt", 1 << 20, &kept, &kept_len), 0);
    assert_int_equal(kept_len, after.len);
    assert_memory_equal(kept, after.data, kept_len);
    acp_free(kept);
    acp_result_list files = {0};
    assert_int_equal(acp_get_results(w->p, &id, &files), 0);
    bool listed = false;
    for (size_t i = 0; i < files.count; i++)
        listed |= strcmp(files.files[i].name, "log.txt") == 0 && files.files[i].size == kept_len;
    assert_true(listed);
    acp_result_list_clear(&files);
    text_free(&t);
    text_free(&after);
    text_free(&tail);
    world_stop(w);
}

static void noop_job_costs_nothing_more_and_has_an_empty_log(void **state)
{
    (void)state;
    world *w = world_start(0);
    /* A first job warms the pool's sessions (prepared statements). */
    acp_job_id warm = submit(w, "noop");
    acp_job job = wait_for(w->p, &warm, ACP_STATUS_COMPLETE);
    acp_job_clear(&job);
    acp_stats before = stats_of(w->p);
    acp_job_id id = submit(w, "noop");
    job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    acp_job_clear(&job);
    acp_stats after = stats_of(w->p);
    /* Native layout: no S3 request at all for a job without files. */
    assert_int_equal(after.s3_puts - before.s3_puts, 0);
    print_message("# no-op job: %" PRIu64 " SQL statements (with the status polls), %" PRIu64
                  " S3 puts\n",
                  after.sql_statements - before.sql_statements, after.s3_puts - before.s3_puts);
    text t = {0};
    acp_log_read r = read_to_end(w->p, &id, 0, &t);
    assert_int_equal(t.len, 0);
    assert_int_equal(r.next, 0);
    assert_int_equal(r.ended, 1);
    acp_result_list files = {0};
    assert_int_equal(acp_get_results(w->p, &id, &files), 0);
    assert_int_equal(files.count, 0);
    acp_result_list_clear(&files);
    world_stop(w);
}

static void bad_input_is_refused_by_name(void **state)
{
    (void)state;
    world *w = world_start(0);
    acp_job_id id = submit(w, "noop");
    acp_job job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    acp_job_clear(&job);
    acp_log_read r;
    assert_int_equal(acp_log_read_init(NULL, 1), ACP_EINVAL);
    assert_int_equal(acp_log_read_init(&r, 99), ACP_EVERSION);
    assert_int_equal(acp_log_read_init(&r, ACP_LOG_READ_VERSION), 0);
    text t = {0};
    assert_int_equal(acp_read_log(NULL, &id, &r, text_sink, &t), ACP_EINVAL);
    assert_int_equal(acp_read_log(w->p, NULL, &r, text_sink, &t), ACP_EINVAL);
    assert_int_equal(acp_read_log(w->p, &id, &r, NULL, &t), ACP_EINVAL);
    r.wait_ms = ACP_LOG_WAIT_MAX + 1;
    assert_int_equal(acp_read_log(w->p, &id, &r, text_sink, &t), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "wait_ms"));
    r.wait_ms = 0;
    r.version = 0;
    assert_int_equal(acp_read_log(w->p, &id, &r, text_sink, &t), ACP_EVERSION);
    r.version = ACP_LOG_READ_VERSION;
    acp_job_id unknown;
    acp_job_id_generate(&unknown);
    assert_int_equal(acp_read_log(w->p, &unknown, &r, text_sink, &t), ACP_ENOTFOUND);
    /* Outside a running job. */
    assert_int_equal(acp_job_progress(NULL, 1, 2, NULL), ACP_EINVAL);
    assert_int_equal(acp_job_log(NULL, "x"), ACP_EINVAL);
    assert_int_equal(acp_job_log_write(NULL, "x", 1), ACP_EINVAL);
    acp_job_context fake = {.version = ACP_JOB_CONTEXT_VERSION};
    assert_int_equal(acp_job_progress(&fake, 1, 2, NULL), ACP_EINVAL);
    world_stop(w);
}

int main(int argc, char **argv)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    self_path = argv[0];
    (void)argc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_is_read_while_running_then_kept_as_log_txt),
        cmocka_unit_test(noop_job_costs_nothing_more_and_has_an_empty_log),
        cmocka_unit_test(bad_input_is_refused_by_name),
    };
    if (getenv("ACP_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ACP_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
