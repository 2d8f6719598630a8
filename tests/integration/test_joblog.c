/* Progress and job logs end to end against the real services: progress
 * visible while a job runs and coalesced; a log read while the job runs,
 * then from its kept "log.txt"; followed from another process, line by
 * line as it is written; bounded by the cap (head, marker, tail) while a
 * job writes 100 MiB; a retried job's log with its attempt header; the
 * no-op job's cost unchanged; bad input. */
#include <inttypes.h>
#include <pthread.h>
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
static atomic_bool go;            /* the progress executor may start */
static atomic_bool flooded;       /* ... and has reported 10,000 times */
static acp_platform *executing;   /* the platform whose executors run */
static uint64_t flood_statements; /* its statements meanwhile */
/* What the "bad" executor's calls returned, and their messages. */
static int bad_rc[8];
static char bad_message[8][160];

/* Valgrind and the sanitizers slow every step: the latency bound the issue
 * states grows with them. */
static int64_t latency_bound_ms(int64_t ms)
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
        /* A line every 100 ms, each with the wall time it was written, once
         * the follower is there (it creates the file named in the config). */
        const char *at = strstr(ctx->config, "\"go\":\"");
        char path[256] = "";
        if (at)
            sscanf(at + 6, "%255[^\"]", path);
        for (int64_t until = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
             access(path, F_OK) != 0 && fixture_mono_ms() < until;)
            fixture_sleep_ms(10);
        for (int i = 0; i < TICKS; i++) {
            acp_job_log(ctx, "tick %d at %" PRId64, i, fixture_wall_us());
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
            if (i % 1024 == 0) /* a pause each MiB: the test samples the table */
                fixture_sleep_ms(2);
        }
    } else if (config_has(ctx, "\"progress\"")) {
        /* 10,000 reports over about 2 s, the statements of the platform
         * counted meanwhile (nothing else asks the database then). */
        while (!atomic_load(&go))
            fixture_sleep_ms(5);
        acp_stats before = {.version = ACP_STATS_VERSION};
        acp_get_stats(executing, &before);
        for (int i = 1; i <= 10000; i++) {
            char text[32];
            snprintf(text, sizeof text, "step %d", i);
            if (acp_job_progress(ctx, (uint64_t)i, 10000, text) != 0)
                return 1;
            if (i % 50 == 0)
                fixture_sleep_ms(10);
        }
        acp_stats after = {.version = ACP_STATS_VERSION};
        acp_get_stats(executing, &after);
        flood_statements = after.sql_statements - before.sql_statements;
        atomic_store(&flooded, true);
        while (!atomic_load(&released))
            fixture_sleep_ms(10);
    } else if (config_has(ctx, "\"bad\"")) {
        char long_text[ACP_PROGRESS_TEXT_MAX + 2];
        memset(long_text, 'a', sizeof long_text - 1);
        long_text[sizeof long_text - 1] = '\0';
        int rcs[8] = {
            acp_job_progress(ctx, 5, 4, NULL),
            acp_job_progress(ctx, 1, 2, long_text),
            acp_job_progress(ctx, 1, 2, "bad \xff byte"),
            acp_job_progress(ctx, 1, 2, "tab\there"),
            acp_job_log_write(ctx, NULL, 3),
            acp_job_log(ctx, NULL),
            acp_job_add_output(ctx, "log.txt"),
            acp_job_progress(ctx, 3, 0, "three of unknown"),
        };
        for (int i = 0; i < 8; i++)
            bad_rc[i] = rcs[i];
        /* The messages, each right after its call. */
        acp_job_progress(ctx, 5, 4, NULL);
        snprintf(bad_message[0], sizeof bad_message[0], "%s", acp_last_error());
        acp_job_progress(ctx, 1, 2, long_text);
        snprintf(bad_message[1], sizeof bad_message[1], "%s", acp_last_error());
        acp_job_progress(ctx, 1, 2, "bad \xff byte");
        snprintf(bad_message[2], sizeof bad_message[2], "%s", acp_last_error());
        acp_job_progress(ctx, 1, 2, "tab\there");
        snprintf(bad_message[3], sizeof bad_message[3], "%s", acp_last_error());
        acp_job_log_write(ctx, NULL, 3);
        snprintf(bad_message[4], sizeof bad_message[4], "%s", acp_last_error());
        acp_job_log(ctx, NULL);
        snprintf(bad_message[5], sizeof bad_message[5], "%s", acp_last_error());
        acp_job_add_output(ctx, "log.txt");
        snprintf(bad_message[6], sizeof bad_message[6], "%s", acp_last_error());
    } else if (config_has(ctx, "\"cancelled\"")) {
        /* Logs, then waits for its cancellation and logs once more. */
        acp_job_log(ctx, "waiting for the cancellation");
        while (acp_job_cancelled(ctx) == ACP_CANCEL_NONE)
            fixture_sleep_ms(10);
        acp_job_log(ctx, "cancelled: stopping");
        acp_job_add_output(ctx, "never-kept.txt");
        return 1;
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

static world *world_start_layout(size_t cap, acp_layout layout)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, 2, &joblog_factory);
    w->fc.queues[0].max_attempts = 0; /* config.max_attempts: 3 */
    w->fc.queues[0].retry_base_ms = 50;
    w->fc.queues[0].retry_max_ms = 100;
    w->fc.config.log_cap_bytes = cap;
    w->fc.config.layout = layout;
    if (acp_init(&w->p, &w->fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
    atomic_store(&released, false);
    executing = w->p;
    return w;
}

static world *world_start(size_t cap)
{
    return world_start_layout(cap, ACP_LAYOUT_NATIVE);
}

static void world_stop(world *w)
{
    atomic_store(&released, true);
    acp_shutdown(w->p);
    free(w);
}

static acp_job_id submit(world *w, const char *mode)
{
    static int n;
    acp_job_id id;
    if (fixture_submit_mode(w->p, w->fc.queue_ids[0], mode, w->tag, ++n, NULL, &id) != 0)
        fail_msg("acp_submit: %s", acp_last_error());
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
    int64_t until = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    for (;;) {
        text_free(&t);
        r = read_to_end(w->p, &id, 0, &t);
        assert_int_equal(acp_get_job(w->p, &id, &job), 0);
        bool progress = job.progress_updated != 0;
        if (t.len && strstr(t.data, "line 49 of 50\n") && progress)
            break;
        acp_job_clear(&job);
        if (fixture_mono_ms() > until)
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
    assert_true(job.progress_updated > fixture_wall_us() - 600 * 1000000LL);
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

    /* In a running job: each refused by name, nothing changed. */
    id = submit(w, "bad");
    job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    const char *const expected[] = {
        "done 5 is more than total 4", "more than 256", "not valid UTF-8",
        "control character 0x09",      "NULL data",     "NULL format",
        "name of the job's log"};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(bad_rc[i], ACP_EINVAL);
        if (!strstr(bad_message[i], expected[i]))
            fail_msg("call %d: '%s' does not say '%s'", i, bad_message[i], expected[i]);
    }
    assert_int_equal(bad_rc[7], 0); /* total 0: done alone */
    assert_int_equal(job.progress_done, 3);
    assert_int_equal(job.progress_total, 0);
    assert_string_equal(job.progress_text, "three of unknown");
    acp_job_clear(&job);
    world_stop(w);
}

/* ---- following another process's job -------------------------------------- */

static void go_path(const char *tag, char *out, size_t size)
{
    snprintf(out, size, "/tmp/acp-joblog-%s.go", tag);
}

/* The child: a platform of its own running one ticker job, announced on
 * stdout once it runs. */
static int child_main(const char *tag)
{
    fixture_config fc;
    acp_platform *p = fixture_child_platform(&fc, &env, tag, &joblog_factory);
    if (!p)
        return 1;
    char path[96], config[192];
    go_path(tag, path, sizeof path);
    snprintf(config, sizeof config, "{\"mode\":\"ticker\",\"go\":\"%s\",\"n\":\"%s\"}", path, tag);
    acp_job_id id;
    if (fixture_child_submit(p, &fc, config, &id) != 0)
        return 1;
    acp_job job = {0};
    if (!fixture_wait_status(p, &id, ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job)) {
        fprintf(stderr, "child: the job is %s\n", acp_job_status_name(job.status));
        return 1;
    }
    acp_job_clear(&job);
    char hex[ACP_JOB_ID_STRLEN];
    printf("running %s\n", acp_job_id_format(&id, hex));
    fflush(stdout);
    fixture_wait_status(p, &id, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job);
    printf("ended %s\n", acp_job_status_name(job.status));
    fflush(stdout);
    acp_job_clear(&job);
    acp_shutdown(p);
    return 0;
}

/* What a follower saw: the text, and when each line arrived. */
typedef struct follow {
    text t;
    int lines;
    int checked;      /* lines written after the follower began */
    int64_t began;    /* wall µs */
    int64_t worst_ms; /* the longest a checked line took */
    int expected;     /* the next tick */
    char bad[160];
} follow;

static int follow_sink(void *userdata, const void *data, size_t len)
{
    follow *f = userdata;
    size_t from = f->t.len;
    if (text_sink(&f->t, data, len) != 0)
        return -1;
    int64_t now = fixture_wall_us();
    /* Each line that ended in this piece. */
    char *line = f->t.data + from;
    while (line > f->t.data && line[-1] != '\n')
        line--;
    for (char *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        int tick;
        long long written;
        if (sscanf(line, "tick %d at %lld", &tick, &written) != 2 || tick != f->expected) {
            if (!f->bad[0])
                snprintf(f->bad, sizeof f->bad, "line %d is '%.*s'", f->lines, (int)(nl - line),
                         line);
        } else if (written >= f->began) {
            int64_t took = (now - written) / 1000;
            f->checked++;
            if (took > f->worst_ms)
                f->worst_ms = took;
        }
        f->expected = tick + 1;
        f->lines++;
    }
    return 0;
}

static void job_on_another_process_is_followed_line_by_line(void **state)
{
    (void)state;
    char tag[9], path[96];
    fixture_tag(tag);
    go_path(tag, path, sizeof path);
    FILE *from_child;
    acp_job_id id;
    pid_t child = fixture_spawn_job_child(self_path, "child-ticker", tag, &from_child, &id);
    if (child <= 0)
        fail_msg("the child process did not start its job");

    /* This process reads the log through the database alone. */
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &joblog_factory);
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    follow f = {.began = fixture_wall_us()};
    FILE *go_file = fopen(path, "w");
    assert_non_null(go_file);
    fclose(go_file);
    acp_log_read r;
    acp_log_read_init(&r, ACP_LOG_READ_VERSION);
    r.wait_ms = 1000;
    int64_t until = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    while (!r.ended && fixture_mono_ms() < until) {
        int rc = acp_read_log(p, &id, &r, follow_sink, &f);
        if (rc != 0)
            fail_msg("acp_read_log: %d %s", rc, acp_last_error());
        r.offset = r.next;
    }
    unlink(path);
    char line[128];
    assert_non_null(fgets(line, sizeof line, from_child));
    assert_string_equal(line, "ended complete\n");
    fclose(from_child);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    assert_int_equal(r.ended, 1);
    if (f.bad[0])
        fail_msg("%s", f.bad);
    assert_int_equal(f.lines, TICKS);
    assert_int_equal(r.next, f.t.len);
    print_message("# %d lines followed, %d written while following, the slowest in %lld ms\n",
                  f.lines, f.checked, (long long)f.worst_ms);
    assert_true(f.checked >= TICKS / 2);
    if (f.worst_ms > latency_bound_ms(500))
        fail_msg("a line took %lld ms to reach the follower", (long long)f.worst_ms);
    /* The kept file is what was followed. */
    void *kept;
    size_t kept_len;
    assert_int_equal(acp_read_result_buffer(p, &id, "log.txt", 1 << 20, &kept, &kept_len), 0);
    assert_int_equal(kept_len, f.t.len);
    assert_memory_equal(kept, f.t.data, kept_len);
    acp_free(kept);
    text_free(&f.t);
    acp_shutdown(p);
}

typedef struct waiter_arg {
    acp_platform *p;
    acp_job_id id;
    int rc;
} waiter_arg;

static void *waiter_main(void *userdata)
{
    waiter_arg *a = userdata;
    acp_log_read r;
    acp_log_read_init(&r, ACP_LOG_READ_VERSION);
    r.wait_ms = ACP_LOG_WAIT_MAX;
    text t = {0};
    a->rc = acp_read_log(a->p, &a->id, &r, text_sink, &t);
    text_free(&t);
    return NULL;
}

static void follow_wait_ends_at_once_for_an_ended_job_and_at_shutdown(void **state)
{
    (void)state;
    world *w = world_start(0);
    acp_job_id id = submit(w, "noop");
    acp_job job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    acp_job_clear(&job);
    acp_log_read r;
    acp_log_read_init(&r, ACP_LOG_READ_VERSION);
    r.wait_ms = ACP_LOG_WAIT_MAX;
    text t = {0};
    int64_t began = fixture_mono_ms();
    assert_int_equal(acp_read_log(w->p, &id, &r, text_sink, &t), 0);
    assert_int_equal(r.ended, 1);
    assert_true(fixture_mono_ms() - began < 60000); /* no wait of 300 s for an ended job */

    /* A follower of a job that waits for its time is ended by the
     * shutdown. */
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = "{\"mode\":\"noop\",\"delayed\":1}";
    sub.delay_ms = 3600000;
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), 0);
    waiter_arg arg = {w->p, job.id, 1};
    acp_job_clear(&job);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, waiter_main, &arg), 0);
    fixture_sleep_ms(300);
    atomic_store(&released, true);
    began = fixture_mono_ms();
    acp_shutdown(w->p);
    pthread_join(thread, NULL);
    assert_int_equal(arg.rc, ACP_ESHUTDOWN);
    assert_true(fixture_mono_ms() - began < 60000);
    free(w);
}

/* ---- the cap ---------------------------------------------------------------- */

static PGconn *admin_connect(void)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", NULL};
    const char *values[] = {env.pg_host,     env.pg_port, env.pg_user,
                            env.pg_password, env.pg_db,   NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("admin connection: %s", PQerrorMessage(conn));
    return conn;
}

/* Bytes of job @hex's live log in the database. */
static long long live_bytes(PGconn *conn, const char *hex)
{
    const char *params[] = {hex};
    PGresult *res = PQexecParams(conn,
                                 "SELECT coalesce(sum(length(data)), 0) FROM compute.job_logs "
                                 "WHERE job_id = decode($1, 'hex')",
                                 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("sampling job_logs: %s", PQerrorMessage(conn));
    long long n = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return n;
}

static void cap_keeps_head_and_tail_of_100_mib(void **state)
{
    (void)state;
    const size_t cap = 64 << 10;
    world *w = world_start(cap);
    PGconn *conn = admin_connect();
    acp_job_id id = submit(w, "flood");
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&id, hex);
    long long most = 0;
    int samples = 0;
    acp_job job = {0};
    int64_t until = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    for (;;) {
        long long n = live_bytes(conn, hex);
        samples++;
        if (n > most)
            most = n;
        assert_int_equal(acp_get_job(w->p, &id, &job), 0);
        bool over = job.status == ACP_STATUS_COMPLETE || job.status == ACP_STATUS_FAILED;
        acp_job_clear(&job);
        if (over || fixture_mono_ms() > until)
            break;
        fixture_sleep_ms(20);
    }
    job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    acp_job_clear(&job);
    print_message("# live log: at most %lld bytes in %d samples (cap %zu)\n", most, samples, cap);
    assert_true(most > 0);
    assert_true(most <= (long long)(cap + cap / 8)); /* the cap and one chunk */
    assert_int_equal(live_bytes(conn, hex), 0);      /* gone with the job's end */
    PQfinish(conn);

    /* log.txt: the head (32 lines of 1 KiB), the marker, the tail. */
    void *kept;
    size_t len;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "log.txt", 1 << 20, &kept, &len), 0);
    const char *s = kept;
    const size_t head = cap / 2, lines = FLOOD_BYTES / FLOOD_LINE;
    for (size_t i = 0; i < head / FLOOD_LINE; i++) {
        char number[24];
        snprintf(number, sizeof number, "%014zu ", i);
        assert_memory_equal(s + i * FLOOD_LINE, number, 15);
        assert_int_equal(s[i * FLOOD_LINE + FLOOD_LINE - 1], '\n');
    }
    unsigned long long dropped;
    int marker_len;
    assert_int_equal(sscanf(s + head, "[... %llu bytes dropped ...]\n%n", &dropped, &marker_len),
                     1);
    const char *tail = s + head + marker_len;
    size_t tail_len = len - head - (size_t)marker_len;
    assert_int_equal(head + dropped + tail_len, FLOOD_BYTES);
    assert_true(tail_len <= cap - head && tail_len >= (cap - head) / 2);
    assert_int_equal(tail_len % FLOOD_LINE, 0); /* whole lines */
    size_t first = lines - tail_len / FLOOD_LINE;
    for (size_t i = 0; i < tail_len / FLOOD_LINE; i++) {
        char number[24];
        snprintf(number, sizeof number, "%014zu ", first + i);
        assert_memory_equal(tail + i * FLOOD_LINE, number, 15);
    }
    /* Read back with the stream's offsets: the marker stands for the gap. */
    text t = {0};
    acp_log_read r = read_to_end(w->p, &id, 0, &t);
    assert_int_equal(r.ended, 1);
    assert_int_equal(r.next, FLOOD_BYTES);
    assert_int_equal(t.len, len);
    assert_memory_equal(t.data, kept, len);
    text_free(&t);
    acp_log_read mid;
    acp_log_read_init(&mid, ACP_LOG_READ_VERSION);
    mid.offset = head + 10;
    assert_int_equal(acp_read_log(w->p, &id, &mid, text_sink, &t), 0);
    assert_int_equal(mid.dropped, dropped - 10);
    assert_non_null(strstr(t.data, "bytes dropped ...]\n"));
    text_free(&t);
    acp_free(kept);
    world_stop(w);
}

/* ---- progress and retries ----------------------------------------------------- */

static void progress_is_visible_while_running_and_coalesced(void **state)
{
    (void)state;
    world *w = world_start(0);
    atomic_store(&go, false);
    atomic_store(&flooded, false);
    acp_job_id id = submit(w, "progress");
    acp_job job = wait_for(w->p, &id, ACP_STATUS_IN_PROGRESS);
    acp_job_clear(&job);
    atomic_store(&go, true);
    int64_t until = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
    while (!atomic_load(&flooded) && fixture_mono_ms() < until)
        fixture_sleep_ms(20);
    assert_true(atomic_load(&flooded));
    print_message("# 10000 progress reports cost %" PRIu64 " SQL statements\n", flood_statements);
    /* At most two writes a second, and the maintenance thread's own few. */
    assert_true(flood_statements <= 40);
    /* The last report shows while the job still runs. */
    for (;;) {
        assert_int_equal(acp_get_job(w->p, &id, &job), 0);
        assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
        if (job.progress_done == 10000)
            break;
        acp_job_clear(&job);
        if (fixture_mono_ms() > until)
            fail_msg("the last progress report did not show");
        fixture_sleep_ms(50);
    }
    assert_int_equal(job.progress_total, 10000);
    assert_string_equal(job.progress_text, "step 10000");
    acp_job_clear(&job);
    atomic_store(&released, true);
    job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    assert_int_equal(job.progress_done, 10000);
    acp_job_clear(&job);
    world_stop(w);
}

static void cancelled_job_keeps_its_log_as_its_only_result(void **state)
{
    (void)state;
    world *w = world_start(0);
    acp_job_id id = submit(w, "cancelled");
    acp_job job = wait_for(w->p, &id, ACP_STATUS_IN_PROGRESS);
    acp_job_clear(&job);
    /* Once its first line is there, it is cancelled. */
    text t = {0};
    for (int64_t until = fixture_mono_ms() + FIXTURE_WAIT_S * 1000;
         t.len == 0 && fixture_mono_ms() < until;) {
        read_to_end(w->p, &id, 0, &t);
        fixture_sleep_ms(20);
    }
    assert_string_equal(t.data, "waiting for the cancellation\n");
    text_free(&t);
    assert_int_equal(acp_cancel_job(w->p, &id), 0);
    job = wait_for(w->p, &id, ACP_STATUS_CANCELLED);
    acp_job_clear(&job);
    acp_log_read r = read_to_end(w->p, &id, 0, &t);
    assert_int_equal(r.ended, 1);
    assert_string_equal(t.data, "waiting for the cancellation\ncancelled: stopping\n");
    acp_result_list files = {0};
    assert_int_equal(acp_get_results(w->p, &id, &files), 0);
    assert_int_equal(files.count, 1);
    assert_string_equal(files.files[0].name, "log.txt");
    assert_int_equal(files.files[0].size, t.len);
    acp_result_list_clear(&files);
    text_free(&t);
    world_stop(w);
}

static void retried_job_keeps_both_attempts_under_a_header(void **state)
{
    const acp_layout *layout = *state;
    world *w = world_start_layout(0, layout ? *layout : ACP_LAYOUT_NATIVE);
    acp_job_id id = submit(w, "retried");
    acp_job job = wait_for(w->p, &id, ACP_STATUS_COMPLETE);
    assert_int_equal(job.attempts, 2);
    assert_int_equal(job.progress_updated, 0); /* the second attempt reported none */
    acp_job_clear(&job);
    const char *expected = "attempt 1 says hello\n"
                           "no newline yet\n"
                           "=== attempt 2 ===\n"
                           "attempt 2 says hello\n";
    text t = {0};
    acp_log_read r = read_to_end(w->p, &id, 0, &t);
    assert_int_equal(r.ended, 1);
    assert_string_equal(t.data, expected);
    void *kept;
    size_t len;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "log.txt", 1 << 20, &kept, &len), 0);
    assert_int_equal(len, strlen(expected));
    assert_memory_equal(kept, expected, len);
    acp_free(kept);
    acp_result_list files = {0};
    assert_int_equal(acp_get_results(w->p, &id, &files), 0);
    assert_int_equal(files.count, 1);
    assert_string_equal(files.files[0].name, "log.txt");
    acp_result_list_clear(&files);
    text_free(&t);
    world_stop(w);
}

int main(int argc, char **argv)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    if (argc == 3 && strcmp(argv[1], "child-ticker") == 0)
        return child_main(argv[2]);
    self_path = argv[0];
    static const acp_layout lcp = ACP_LAYOUT_LCP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_is_read_while_running_then_kept_as_log_txt),
        cmocka_unit_test(noop_job_costs_nothing_more_and_has_an_empty_log),
        cmocka_unit_test(bad_input_is_refused_by_name),
        cmocka_unit_test(job_on_another_process_is_followed_line_by_line),
        cmocka_unit_test(follow_wait_ends_at_once_for_an_ended_job_and_at_shutdown),
        cmocka_unit_test(cap_keeps_head_and_tail_of_100_mib),
        cmocka_unit_test(progress_is_visible_while_running_and_coalesced),
        cmocka_unit_test(cancelled_job_keeps_its_log_as_its_only_result),
        cmocka_unit_test(retried_job_keeps_both_attempts_under_a_header),
        cmocka_unit_test_prestate(retried_job_keeps_both_attempts_under_a_header, (void *)&lcp),
    };
    if (getenv("ACP_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ACP_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
