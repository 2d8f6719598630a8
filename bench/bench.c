/* acp-bench: one run of one benchmark scenario of async_platform, through the
 * public API only. bench/run drives it (several runs per scenario, medians,
 * the table); see docs/performance.adoc.
 *
 *   acp-bench SCENARIO [options]      SCENARIO: burst serial parallel results scale idle
 *
 * Each run uses its own queues ("bench-<tag>-<n>"), S3 root ("acp-bench/<tag>")
 * and scratch root ("/tmp/acp-bench/<tag>"), deletes the jobs it created
 * (acp_delete_job) and appends one JSON line with its figures to --json. The
 * RabbitMQ queues it declared are listed in the line ("queues") for bench/run
 * to delete: the public API has no call for that.
 *
 * Job ids carry the run's random prefix and the job's index, so the executor
 * finds a job's record without a lookup table or a lock. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "async_platform.h"
#include "benchutil.h"

#define QUEUES_MAX      16
#define METRICS_MAX     400
#define RESULT_NAME     "result.bin"
#define WRITE_CHUNK     (64 * 1024)
#define POLL_US         2000
#define SERIAL_POLL_US  200
#define WORKER_SETTLE_S 1
/* A job's config: the same size for every job (the floor repeats it). */
#define CONFIG_FORMAT "{\"bench\":\"%s\",\"job\":\"%010zu\"}"

/* ---- options ------------------------------------------------------------ */

typedef struct options {
    const char *scenario;
    size_t jobs; /* measured jobs (0: the scenario's default) */
    int workers; /* per queue */
    int queues;
    int submitters;     /* threads calling acp_submit */
    size_t result_size; /* bytes of each job's result file; 0 for none */
    int sleep_ms;       /* executor run time */
    size_t warmup;      /* jobs run before measuring (connections, caches) */
    int pool;           /* PostgreSQL pool size; 0 for the library's default */
    int readers;        /* results: threads reading back */
    size_t stream_mib;  /* results: size of the streamed file */
    size_t segment;     /* scale: jobs per compared segment */
    int idle_seconds;   /* idle: measured seconds */
    int deleters;       /* threads deleting the run's jobs at the end */
    int timeout_s;      /* longest wait for a drain */
    const char *json_path;
    const char *label;
    const char *stack_dir;
    const char *scratch_parent; /* the run's scratch root goes below it */
    const char *tag;            /* cleanup: the interrupted run's tag */
    acp_layout layout;          /* ACP_LAYOUT_NATIVE (default) or ACP_LAYOUT_LCP */
    acp_s3_signature signature; /* ACP_S3_SIGNATURE_V4 (default, curl) or _V2 (libs3) */
} options;

/* ---- the run's state ------------------------------------------------------ */

typedef struct job_rec {
    int64_t submit_call, submit_ret; /* wall µs, around acp_submit */
    _Atomic int64_t start, end;      /* wall µs, inside the executor */
    int64_t created, grabbed, finished;
    int status;
    int submit_rc;
} job_rec;

typedef struct metric {
    char name[64];
    double value;
} metric;

static struct {
    char tag[17];
    unsigned char prefix[8];
    bench_env env;
    bench_services services;
    options opt;
    char queue_ids[QUEUES_MAX][ACP_QUEUE_ID_MAX + 1];
    char s3_root[64];
    char scratch_root[1100];
    size_t config_bytes; /* compact JSON of a job's config, for the floor */

    job_rec *recs;
    size_t rec_count;
    size_t stream_index; /* the job with the large result, or SIZE_MAX */
    size_t stream_size;

    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool gate_open;
    atomic_size_t executed;
    atomic_int executor_errors;

    atomic_int warnings;

    metric metrics[METRICS_MAX];
    size_t metric_count;
    bool ok;
    char error[1024];
} R = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .changed = PTHREAD_COND_INITIALIZER,
       .gate_open = true,
       .stream_index = SIZE_MAX,
       .ok = true};

static char result_pattern[WRITE_CHUNK];

static void run_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Called from submitter and reader threads too. */
static void run_failed(const char *fmt, ...)
{
    static pthread_mutex_t problem_lock = PTHREAD_MUTEX_INITIALIZER;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fprintf(stderr, "acp-bench %s: %s\n", R.opt.scenario, text);
    pthread_mutex_lock(&problem_lock);
    if (R.ok)
        snprintf(R.error, sizeof R.error, "%s", text);
    R.ok = false;
    pthread_mutex_unlock(&problem_lock);
}

static void metric_set(const char *name, double value)
{
    if (R.metric_count == METRICS_MAX)
        return;
    metric *m = &R.metrics[R.metric_count++];
    snprintf(m->name, sizeof m->name, "%s", name);
    m->value = value;
}

static void metric_setf(double value, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void metric_setf(double value, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    metric_set(name, value);
}

static void metric_dist(const char *name, const bench_dist *d)
{
    if (d->count == 0)
        return;
    metric_setf(d->p50, "%s_p50", name);
    metric_setf(d->p95, "%s_p95", name);
    metric_setf(d->p99, "%s_p99", name);
    metric_setf(d->max, "%s_max", name);
}

/* ---- profiling ----------------------------------------------------------------- */

/* With ACP_BENCH_PERF_CTL naming the control FIFO of `perf record --control
 * fifo:FIFO -D -1`, the profile covers only the measured window of burst and
 * serial (not start-up, warm-up and clean-up). */
static void perf_control(const char *command)
{
    const char *fifo = getenv("ACP_BENCH_PERF_CTL");
    if (!fifo || !*fifo)
        return;
    int fd = open(fifo, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, command, strlen(command)) < 0)
        fprintf(stderr, "acp-bench: %s: %s\n", fifo, strerror(errno));
    close(fd);
}

/* ---- job ids ---------------------------------------------------------------- */

static acp_job_id job_id_of(size_t index)
{
    acp_job_id id;
    memcpy(id.bytes, R.prefix, 8);
    id.bytes[8] = 0xbe;
    id.bytes[9] = 0x4c;
    id.bytes[10] = 0;
    id.bytes[11] = 0;
    for (int i = 0; i < 4; i++)
        id.bytes[12 + i] = (unsigned char)(index >> (8 * (3 - i)));
    return id;
}

static bool job_index_of(const acp_job_id *id, size_t *index)
{
    if (memcmp(id->bytes, R.prefix, 8) != 0 || id->bytes[8] != 0xbe || id->bytes[9] != 0x4c)
        return false;
    size_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | id->bytes[12 + i];
    if (v >= R.rec_count)
        return false;
    *index = v;
    return true;
}

/* ---- the executor ------------------------------------------------------------- */

static int write_result(int dir_fd, size_t size)
{
    int fd = openat(dir_fd, RESULT_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t left = size;
    while (left > 0) {
        size_t n = left < sizeof result_pattern ? left : sizeof result_pattern;
        ssize_t w = write(fd, result_pattern, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return -1;
        }
        left -= (size_t)w;
    }
    return close(fd);
}

static int bench_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    int64_t started = bench_wall_us();
    size_t index;
    if (!job_index_of(&ctx->id, &index)) {
        atomic_fetch_add(&R.executor_errors, 1);
        acp_job_set_message(ctx, "not a job of this benchmark run");
        return 1;
    }
    job_rec *rec = &R.recs[index];
    atomic_store(&rec->start, started);

    pthread_mutex_lock(&R.lock);
    while (!R.gate_open)
        pthread_cond_wait(&R.changed, &R.lock);
    pthread_mutex_unlock(&R.lock);

    if (R.opt.sleep_ms > 0)
        bench_sleep_us((int64_t)R.opt.sleep_ms * 1000);
    size_t size = index == R.stream_index ? R.stream_size : R.opt.result_size;
    int rc = 0;
    if (size > 0) {
        if (write_result(ctx->dir_fd, size) != 0) {
            acp_job_set_message(ctx, "writing the result file failed");
            atomic_fetch_add(&R.executor_errors, 1);
            rc = 1;
        } else if (acp_job_add_output(ctx, RESULT_NAME) != 0) {
            atomic_fetch_add(&R.executor_errors, 1);
            rc = 1;
        }
    }
    atomic_store(&rec->end, bench_wall_us());
    pthread_mutex_lock(&R.lock);
    atomic_fetch_add(&R.executed, 1);
    pthread_cond_broadcast(&R.changed);
    pthread_mutex_unlock(&R.lock);
    return rc;
}

static const acp_executor_ops bench_ops = {ACP_EXECUTOR_OPS_VERSION, bench_execute, NULL};
static acp_executor bench_executor = {&bench_ops};

static int bench_create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    *out = &bench_executor;
    return 0;
}

static void gate_set(bool open)
{
    pthread_mutex_lock(&R.lock);
    R.gate_open = open;
    pthread_cond_broadcast(&R.changed);
    pthread_mutex_unlock(&R.lock);
}

/* ---- the platform ------------------------------------------------------------- */

static void bench_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    if (level < ACP_LOG_WARN)
        return;
    int n = atomic_fetch_add(&R.warnings, 1);
    if (n < 20)
        fprintf(stderr, "acp-bench: library %s: %s\n", level == ACP_LOG_WARN ? "warning" : "error",
                message);
}

static int env_port(const char *text)
{
    return (int)strtol(text, NULL, 10);
}

/* Queued jobs of other queues in the same database (other services, other
 * tests): the maintenance thread's statements per second grow with them, so
 * the SQL count per job depends on them. Counted once, before measuring. */
static void count_foreign_queued(acp_platform *p)
{
    acp_job_filter filter;
    acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
    filter.statuses = 1u << ACP_STATUS_QUEUED;
    filter.limit = ACP_LIST_LIMIT_MAX;
    size_t foreign = 0;
    char *cursor = NULL;
    for (int page = 0; page < 100; page++) {
        filter.cursor = cursor;
        acp_job_list list;
        int rc = acp_list_jobs(p, &filter, &list);
        free(cursor);
        cursor = NULL;
        if (rc)
            return;
        for (size_t i = 0; i < list.count; i++)
            if (strncmp(list.jobs[i].queue, "bench-", 6) != 0 ||
                strstr(list.jobs[i].queue, R.tag) == NULL)
                foreign++;
        if (list.next_cursor)
            cursor = strdup(list.next_cursor);
        acp_job_list_clear(&list);
        if (!cursor)
            break;
    }
    free(cursor);
    metric_set("foreign_queued_jobs", (double)foreign);
}

static int platform_start(int workers, int queues, acp_platform **out)
{
    const options *o = &R.opt;
    if (queues < 1 || queues > QUEUES_MAX) {
        run_failed("--queues must be 1..%d", QUEUES_MAX);
        return -1;
    }
    acp_queue_config qc[QUEUES_MAX];
    for (int i = 0; i < queues; i++) {
        if (strcmp(o->scenario, "cleanup") == 0) /* never the run's own queues */
            snprintf(R.queue_ids[i], sizeof R.queue_ids[i], "bench-%s-c", R.tag);
        else
            snprintf(R.queue_ids[i], sizeof R.queue_ids[i], "bench-%s-%d", R.tag, i);
        acp_queue_config_init(&qc[i], ACP_QUEUE_CONFIG_VERSION);
        qc[i].id = R.queue_ids[i];
        qc[i].host = R.env.amqp_host;
        qc[i].port = env_port(R.env.amqp_port);
        qc[i].user = R.env.amqp_user;
        qc[i].password = R.env.amqp_password;
        qc[i].workers = workers;
    }
    static const acp_executor_factory factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, bench_create,
                                                 NULL};
    acp_config cfg;
    acp_config_init(&cfg, ACP_CONFIG_VERSION);
    cfg.db.host = R.env.pg_host;
    cfg.db.port = env_port(R.env.pg_port);
    cfg.db.dbname = R.env.pg_db;
    cfg.db.user = R.env.pg_user;
    cfg.db.password = R.env.pg_password;
    if (o->pool > 0)
        cfg.db.pool_size = o->pool;
    cfg.s3.host = R.env.s3_host;
    cfg.s3.port = env_port(R.env.s3_port);
    cfg.s3.bucket = R.env.s3_bucket;
    cfg.s3.access_key = R.env.s3_access_key;
    cfg.s3.secret_key = R.env.s3_secret_key;
    cfg.s3.root_path = R.s3_root;
    cfg.queues = qc;
    cfg.queue_count = (size_t)queues;
    cfg.workspace_root = R.scratch_root;
    cfg.executor_factory = &factory;
    cfg.log = bench_log;
    cfg.log_level = ACP_LOG_WARN;
    cfg.layout = o->layout;
    cfg.s3_client.signature = o->signature;
    int rc = acp_init(out, &cfg);
    if (rc) {
        run_failed("acp_init: %s: %s", acp_strerror(rc), acp_last_error());
        return -1;
    }
    /* Workers connect to RabbitMQ in the background after acp_init returns. */
    bench_sleep_us(WORKER_SETTLE_S * 1000000);
    count_foreign_queued(*out);
    return 0;
}

static uint64_t finished_count(acp_platform *p)
{
    acp_stats s = {.version = ACP_STATS_VERSION};
    if (acp_get_stats(p, &s) != 0)
        return 0;
    return s.jobs_completed + s.jobs_failed;
}

static acp_stats stats_now(acp_platform *p)
{
    acp_stats s = {.version = ACP_STATS_VERSION};
    acp_get_stats(p, &s);
    return s;
}

/* ---- submitting --------------------------------------------------------------- */

static int submit_one(acp_platform *p, size_t index, const char *queue)
{
    acp_job_id id = job_id_of(index);
    char config[128];
    snprintf(config, sizeof config, CONFIG_FORMAT, R.tag, index);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.id = &id;
    sub.config = config;
    job_rec *rec = &R.recs[index];
    rec->submit_call = bench_wall_us();
    /* No acp_job out-parameter: that would add a read of the job. */
    int rc = acp_submit(p, queue, &sub, NULL);
    rec->submit_ret = bench_wall_us();
    rec->submit_rc = rc;
    if (rc) {
        char hex[ACP_JOB_ID_STRLEN];
        run_failed("acp_submit of job %s: %s: %s", acp_job_id_format(&id, hex), acp_strerror(rc),
                   acp_last_error());
    }
    return rc;
}

/* Snapshots taken when the count of something reaches given values. */
typedef struct checkpoints {
    size_t at[4];
    size_t count;
    bench_snapshot snap[4];
    acp_stats stats[4];
    long rss_kib[4];
    atomic_int taken[4];
} checkpoints;

static void checkpoint_take(checkpoints *c, size_t k, acp_platform *p)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&c->taken[k], &expected, 1))
        return;
    c->stats[k] = stats_now(p);
    bench_snapshot_take(&c->snap[k], &R.services);
    c->rss_kib[k] = c->snap[k].rss_kib;
}

static void checkpoints_free(checkpoints *c)
{
    for (size_t k = 0; k < c->count; k++)
        bench_snapshot_free(&c->snap[k]);
}

typedef struct submit_job {
    acp_platform *p;
    size_t first, count; /* indices first .. first+count-1 */
    atomic_size_t next;
    atomic_size_t done;
    atomic_bool failed;
    checkpoints *marks; /* by submissions done, may be NULL */
} submit_job;

static void *submitter_main(void *arg)
{
    submit_job *s = arg;
    for (;;) {
        if (atomic_load(&s->failed))
            break;
        size_t i = atomic_fetch_add(&s->next, 1);
        if (i >= s->count)
            break;
        size_t index = s->first + i;
        if (submit_one(s->p, index, R.queue_ids[i % (size_t)R.opt.queues]) != 0) {
            atomic_store(&s->failed, true);
            break;
        }
        size_t done = atomic_fetch_add(&s->done, 1) + 1;
        if (s->marks)
            for (size_t k = 0; k < s->marks->count; k++)
                if (s->marks->at[k] == done)
                    checkpoint_take(s->marks, k, s->p);
    }
    return NULL;
}

/* Submit jobs first .. first+count-1 from opt.submitters threads, spread over
 * the queues. */
static int submit_many(acp_platform *p, size_t first, size_t count, checkpoints *marks)
{
    submit_job s = {.p = p, .first = first, .count = count, .marks = marks};
    int n = R.opt.submitters > 0 ? R.opt.submitters : 1;
    pthread_t threads[64];
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, submitter_main, &s) != 0) {
            run_failed("starting submitter thread %d failed", i);
            n = i;
            atomic_store(&s.failed, true);
            break;
        }
    for (int i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    return atomic_load(&s.failed) ? -1 : 0;
}

/* Wait until @target more jobs than @base have finished (complete or
 * failed), taking checkpoints by finished count on the way. */
static int wait_finished(acp_platform *p, uint64_t base, size_t target, checkpoints *marks)
{
    int64_t deadline = bench_mono_us() + (int64_t)R.opt.timeout_s * 1000000;
    for (;;) {
        uint64_t done = finished_count(p) - base;
        if (marks)
            for (size_t k = 0; k < marks->count; k++)
                if (done >= marks->at[k])
                    checkpoint_take(marks, k, p);
        if (done >= target)
            return 0;
        if (bench_mono_us() > deadline) {
            run_failed("only %" PRIu64 " of %zu jobs finished within %d s", done, target,
                       R.opt.timeout_s);
            return -1;
        }
        bench_sleep_us(POLL_US);
    }
}

/* Warm-up jobs (indices from @first) run one after the other before anything
 * is measured: pooled connections open and caches fill. */
static int warm_up(acp_platform *p, size_t first)
{
    for (size_t i = 0; i < R.opt.warmup; i++) {
        uint64_t base = finished_count(p);
        if (submit_one(p, first + i, R.queue_ids[i % (size_t)R.opt.queues]) != 0 ||
            wait_finished(p, base, 1, NULL) != 0)
            return -1;
    }
    return 0;
}

/* ---- reading the outcome -------------------------------------------------------- */

/* One pass of acp_list_jobs over the run's queues: the times and status the
 * database recorded, without a read per job. */
static int collect_times(acp_platform *p)
{
    for (int q = 0; q < R.opt.queues; q++) {
        acp_job_filter filter;
        acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
        filter.queue = R.queue_ids[q];
        filter.limit = ACP_LIST_LIMIT_MAX;
        char *cursor = NULL;
        for (;;) {
            filter.cursor = cursor;
            acp_job_list list;
            int rc = acp_list_jobs(p, &filter, &list);
            free(cursor);
            cursor = NULL;
            if (rc) {
                run_failed("acp_list_jobs: %s: %s", acp_strerror(rc), acp_last_error());
                return -1;
            }
            for (size_t i = 0; i < list.count; i++) {
                size_t index;
                if (!job_index_of(&list.jobs[i].id, &index))
                    continue;
                job_rec *rec = &R.recs[index];
                rec->created = list.jobs[i].created;
                rec->grabbed = list.jobs[i].grabbed;
                rec->finished = list.jobs[i].finished;
                rec->status = (int)list.jobs[i].status;
            }
            if (list.next_cursor)
                cursor = strdup(list.next_cursor);
            acp_job_list_clear(&list);
            if (!cursor)
                break;
        }
    }
    return 0;
}

typedef enum span {
    SUBMIT_TO_START,
    SUBMIT_TO_COMPLETE,
    SUBMIT_CALL,
    END_TO_FINISHED, /* executor returned -> row finished: uploads and SQL */
    START_TO_FINISHED,
} span;

static bench_dist dist_of(span which, size_t first, size_t count)
{
    double *v = malloc((count ? count : 1) * sizeof *v);
    size_t n = 0;
    for (size_t i = first; v && i < first + count; i++) {
        const job_rec *r = &R.recs[i];
        int64_t start = atomic_load(&r->start), end = atomic_load(&r->end);
        int64_t a = 0, b = 0;
        switch (which) {
        case SUBMIT_TO_START:
            a = r->submit_call, b = start;
            break;
        case SUBMIT_TO_COMPLETE:
            a = r->submit_call, b = r->finished;
            break;
        case SUBMIT_CALL:
            a = r->submit_call, b = r->submit_ret;
            break;
        case END_TO_FINISHED:
            a = end, b = r->finished;
            break;
        case START_TO_FINISHED:
            a = start, b = r->finished;
            break;
        }
        if (a > 0 && b > 0)
            v[n++] = (double)(b - a) / 1000.0; /* ms */
    }
    bench_dist d = bench_dist_of(v, n);
    free(v);
    return d;
}

/* Job-level checks: every measured job complete, and its times known. */
static void check_jobs(size_t first, size_t count)
{
    size_t bad = 0;
    for (size_t i = first; i < first + count; i++)
        if (R.recs[i].status != ACP_STATUS_COMPLETE || R.recs[i].finished == 0)
            bad++;
    metric_set("jobs_not_complete", (double)bad);
    if (bad)
        run_failed("%zu of %zu jobs did not end complete", bad, count);
}

static void span_range(size_t first, size_t count, int64_t *first_submit, int64_t *last_submit,
                       int64_t *first_start, int64_t *last_finished)
{
    *first_submit = INT64_MAX;
    *last_submit = 0;
    *first_start = INT64_MAX;
    *last_finished = 0;
    for (size_t i = first; i < first + count; i++) {
        const job_rec *r = &R.recs[i];
        int64_t start = atomic_load(&r->start);
        if (r->submit_call && r->submit_call < *first_submit)
            *first_submit = r->submit_call;
        if (r->submit_ret > *last_submit)
            *last_submit = r->submit_ret;
        if (start && start < *first_start)
            *first_start = start;
        if (r->finished > *last_finished)
            *last_finished = r->finished;
    }
}

/* ---- figures of a phase ---------------------------------------------------------- */

static double per(double value, double jobs)
{
    return jobs > 0 ? value / jobs : 0;
}

/* CPU per job (ms) of this process and of each service, and what the rest of
 * the machine did meanwhile, as metrics prefixed with @prefix. */
static void cpu_metrics(const char *prefix, const bench_snapshot *a, const bench_snapshot *b,
                        double jobs)
{
    bench_cpu cpu;
    bench_cpu_between(&cpu, a, b, &R.services);
    metric_setf(per(cpu.self_s, jobs) * 1e3, "%scpu_self_ms_per_job", prefix);
    for (size_t i = 0; i < R.services.count; i++)
        metric_setf(per(cpu.service_s[i], jobs) * 1e3, "%scpu_%s_ms_per_job", prefix,
                    R.services.items[i].name);
    metric_setf(per(cpu.services_total_s, jobs) * 1e3, "%scpu_services_ms_per_job", prefix);
    metric_setf(cpu.capacity_s > 0 ? cpu.others_s / cpu.capacity_s : 0, "%sothers_cpu_share",
                prefix);
    metric_setf(cpu.capacity_s > 0 ? (cpu.self_s + cpu.services_total_s) / cpu.capacity_s : 0,
                "%sstack_cpu_share", prefix);
    metric_setf(cpu.loadavg1_end, "%sloadavg1", prefix);
    metric_setf(cpu.wall_s, "%swall_s", prefix);
    if (cpu.top_other_count && cpu.top_others[0].cpu_s > 0.2 * cpu.wall_s)
        fprintf(stderr, "acp-bench: busy machine: %s (pid %d) used %.1f s of CPU in %.1f s\n",
                cpu.top_others[0].comm, cpu.top_others[0].pid, cpu.top_others[0].cpu_s, cpu.wall_s);
}

static void ops_metrics(const char *prefix, const acp_stats *a, const acp_stats *b, double jobs)
{
#define OPS(field, name)                                                                           \
    metric_setf(per((double)(b->field - a->field), jobs), "%sops_" name, prefix)
    OPS(sql_statements, "sql");
    OPS(messages_dropped, "dropped");
    OPS(jobs_requeued, "requeued");
    OPS(messages_published, "published");
    OPS(messages_acked, "acked");
    OPS(s3_puts, "s3_put");
    OPS(s3_gets, "s3_get");
    OPS(s3_heads, "s3_head");
    OPS(s3_lists, "s3_list");
    OPS(s3_deletes, "s3_delete");
#undef OPS
}

/* The floor program's op mix for the same work per job (bench/floor.c). */
static void floor_args(char *out, size_t size, const acp_stats *a, const acp_stats *b, double jobs)
{
    snprintf(out, size,
             "--sql %.3f --publish %.3f --consume %.3f --put %.3f --put-sizes %zu,%zu "
             "--head %.3f --list %.3f --get %.3f --delete %.3f",
             per((double)(b->sql_statements - a->sql_statements), jobs),
             per((double)(b->messages_published - a->messages_published), jobs),
             per((double)(b->messages_acked - a->messages_acked), jobs),
             per((double)(b->s3_puts - a->s3_puts), jobs), R.config_bytes, R.opt.result_size,
             per((double)(b->s3_heads - a->s3_heads), jobs),
             per((double)(b->s3_lists - a->s3_lists), jobs),
             per((double)(b->s3_gets - a->s3_gets), jobs),
             per((double)(b->s3_deletes - a->s3_deletes), jobs));
}

static char floor_text[512];

static void memory_metrics(const char *prefix)
{
    long rss, hwm;
    bench_memory(&rss, &hwm);
    metric_setf((double)rss / 1024.0, "%srss_mib", prefix);
    metric_setf((double)hwm / 1024.0, "%speak_rss_mib", prefix);
    long anon = bench_memory_anon();
    if (anon >= 0)
        metric_setf((double)anon / 1024.0, "%srss_anon_mib", prefix);
}

/* ---- clean-up ---------------------------------------------------------------------- */

typedef struct delete_job {
    acp_platform *p;
    atomic_size_t next;
    atomic_size_t failures;
} delete_job;

static void *deleter_main(void *arg)
{
    delete_job *d = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&d->next, 1);
        if (i >= R.rec_count)
            break;
        if (R.recs[i].submit_call == 0)
            continue; /* never submitted */
        acp_job_id id = job_id_of(i);
        int rc = acp_delete_job(d->p, &id);
        if (rc == ACP_EBUSY) {
            /* Still finishing (a run that failed half-way): once more. */
            bench_sleep_us(500000);
            rc = acp_delete_job(d->p, &id);
        }
        if (rc && rc != ACP_ENOTFOUND) {
            if (atomic_fetch_add(&d->failures, 1) < 5)
                fprintf(stderr, "acp-bench: deleting job %zu: %s: %s\n", i, acp_strerror(rc),
                        acp_last_error());
        }
    }
    return NULL;
}

static void delete_all(acp_platform *p)
{
    size_t submitted = 0;
    for (size_t i = 0; i < R.rec_count; i++)
        submitted += R.recs[i].submit_call != 0;
    delete_job d = {.p = p};
    int n = R.opt.deleters > 0 ? R.opt.deleters : 1;
    if (n > 32)
        n = 32;
    pthread_t threads[32];
    int64_t t0 = bench_mono_us();
    int started = 0;
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[i], NULL, deleter_main, &d) == 0)
            started++;
    if (started == 0)
        deleter_main(&d);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    double s = (double)(bench_mono_us() - t0) / 1e6;
    metric_set("cleanup_deletes_per_s", s > 0 ? (double)submitted / s : 0);
    metric_set("cleanup_failures", (double)atomic_load(&d.failures));
}

static void shutdown_platform(acp_platform *p)
{
    gate_set(true);
    delete_all(p);
    acp_shutdown(p);
}

/* ---- scenarios ---------------------------------------------------------------------- */

static int alloc_records(size_t measured, size_t extra)
{
    R.rec_count = measured + extra;
    R.recs = calloc(R.rec_count ? R.rec_count : 1, sizeof *R.recs);
    if (!R.recs) {
        run_failed("out of memory for %zu job records", R.rec_count);
        return -1;
    }
    return 0;
}

/* The figures burst and serial share, over jobs 0 .. @n-1 measured between
 * snapshots @a/@b and stats @sa/@sb: latencies, CPU and operations per job,
 * and the op mix the floor repeats. */
static void job_metrics(size_t n, const bench_snapshot *a, const bench_snapshot *b,
                        const acp_stats *sa, const acp_stats *sb)
{
    static const struct {
        span kind;
        const char *name;
    } latencies[] = {{SUBMIT_TO_START, "submit_to_start_ms"},
                     {SUBMIT_TO_COMPLETE, "submit_to_complete_ms"},
                     {SUBMIT_CALL, "submit_call_ms"},
                     {END_TO_FINISHED, "end_to_finished_ms"}};
    for (size_t i = 0; i < sizeof latencies / sizeof latencies[0]; i++) {
        bench_dist d = dist_of(latencies[i].kind, 0, n);
        metric_dist(latencies[i].name, &d);
    }
    cpu_metrics("", a, b, (double)n);
    ops_metrics("", sa, sb, (double)n);
    floor_args(floor_text, sizeof floor_text, sa, sb, (double)n);
}

/* burst: N jobs submitted as fast as possible by S threads over Q queues with
 * W workers each; one window from the first submit to the last finish. */
static void scenario_burst(void)
{
    options *o = &R.opt;
    size_t n = o->jobs ? o->jobs : 1000;
    acp_platform *p;
    if (alloc_records(n, o->warmup) || platform_start(o->workers, o->queues, &p))
        return;
    if (warm_up(p, n) == 0) {
        bench_snapshot a, b;
        acp_stats sa = stats_now(p);
        bench_snapshot_take(&a, &R.services);
        uint64_t base = finished_count(p);
        perf_control("enable\n");
        if (submit_many(p, 0, n, NULL) == 0 && wait_finished(p, base, n, NULL) == 0) {
            perf_control("disable\n");
            bench_snapshot_take(&b, &R.services);
            acp_stats sb = stats_now(p);
            memory_metrics("");
            if (collect_times(p) == 0) {
                check_jobs(0, n);
                int64_t first_submit, last_submit, first_start, last_finished;
                span_range(0, n, &first_submit, &last_submit, &first_start, &last_finished);
                double submit_s = (double)(last_submit - first_submit) / 1e6;
                double drain_s = (double)(last_finished - first_start) / 1e6;
                double e2e_s = (double)(last_finished - first_submit) / 1e6;
                metric_set("jobs", (double)n);
                metric_set("submit_jobs_per_s", (double)n / submit_s);
                metric_set("drain_jobs_per_s", (double)n / drain_s);
                metric_set("e2e_jobs_per_s", (double)n / e2e_s);
                job_metrics(n, &a, &b, &sa, &sb);
            }
            bench_snapshot_free(&b);
        }
        bench_snapshot_free(&a);
    }
    shutdown_platform(p);
}

/* serial: one job at a time on one worker: latency without load. */
static void scenario_serial(void)
{
    options *o = &R.opt;
    size_t n = o->jobs ? o->jobs : 100;
    acp_platform *p;
    if (alloc_records(n, o->warmup) || platform_start(1, 1, &p))
        return;
    if (warm_up(p, n) == 0) {
        bench_snapshot a, b;
        acp_stats sa = stats_now(p);
        bench_snapshot_take(&a, &R.services);
        int64_t deadline_us = (int64_t)o->timeout_s * 1000000;
        bool failed = false;
        perf_control("enable\n");
        for (size_t i = 0; i < n && !failed; i++) {
            uint64_t base = finished_count(p);
            size_t executed = atomic_load(&R.executed);
            if (submit_one(p, i, R.queue_ids[0]) != 0)
                break;
            /* Sleep until the executor has run, then poll the counters (no
             * I/O) for the little that follows: uploads and the SQL. */
            pthread_mutex_lock(&R.lock);
            while (atomic_load(&R.executed) == executed)
                pthread_cond_wait(&R.changed, &R.lock);
            pthread_mutex_unlock(&R.lock);
            int64_t t0 = bench_mono_us();
            while (finished_count(p) == base) {
                if (bench_mono_us() - t0 > deadline_us) {
                    run_failed("job %zu did not finish within %d s", i, o->timeout_s);
                    failed = true;
                    break;
                }
                bench_sleep_us(SERIAL_POLL_US);
            }
        }
        perf_control("disable\n");
        bench_snapshot_take(&b, &R.services);
        acp_stats sb = stats_now(p);
        memory_metrics("");
        if (!failed && R.ok && collect_times(p) == 0) {
            check_jobs(0, n);
            int64_t first_submit, last_submit, first_start, last_finished;
            span_range(0, n, &first_submit, &last_submit, &first_start, &last_finished);
            metric_set("jobs", (double)n);
            metric_set("serial_jobs_per_s",
                       (double)n / ((double)(last_finished - first_submit) / 1e6));
            job_metrics(n, &a, &b, &sa, &sb);
        }
        bench_snapshot_free(&a);
        bench_snapshot_free(&b);
    }
    shutdown_platform(p);
}

/* Submit @n jobs behind a closed gate, then open it and measure the drain:
 * the jobs are all queued before the first one runs. */
static void gated_drain(acp_platform *p, size_t n, checkpoints *submit_marks,
                        checkpoints *drain_marks, int64_t *released)
{
    gate_set(false);
    uint64_t base = finished_count(p);
    if (submit_many(p, 0, n, submit_marks) != 0)
        return;
    *released = bench_wall_us();
    gate_set(true);
    wait_finished(p, base, n, drain_marks);
}

/* parallel: sleep_ms jobs on W workers, all queued first: achieved jobs/s
 * against the ideal W / sleep. */
static void scenario_parallel(void)
{
    options *o = &R.opt;
    if (o->sleep_ms <= 0)
        o->sleep_ms = 50;
    size_t n = o->jobs ? o->jobs : (size_t)(o->workers * 10 < 40 ? 40 : o->workers * 10);
    acp_platform *p;
    o->queues = 1;
    if (alloc_records(n, o->warmup) || platform_start(o->workers, 1, &p))
        return;
    if (warm_up(p, n) == 0) {
        checkpoints submit = {.at = {0, n}, .count = 2};
        checkpoints drain = {.at = {0, n}, .count = 2};
        int64_t released = 0;
        checkpoint_take(&submit, 0, p);
        gated_drain(p, n, &submit, &drain, &released);
        checkpoint_take(&drain, 1, p);
        memory_metrics("");
        if (R.ok && collect_times(p) == 0) {
            check_jobs(0, n);
            int64_t first_submit, last_submit, first_start, last_finished;
            span_range(0, n, &first_submit, &last_submit, &first_start, &last_finished);
            double drain_s = (double)(last_finished - released) / 1e6;
            double ideal = (double)o->workers / ((double)o->sleep_ms / 1000.0);
            double busy_s = 0;
            for (size_t i = 0; i < n; i++) {
                int64_t s = atomic_load(&R.recs[i].start), e = atomic_load(&R.recs[i].end);
                busy_s += (double)(e - (s > released ? s : released)) / 1e6;
            }
            metric_set("jobs", (double)n);
            metric_set("workers", (double)o->workers);
            metric_set("drain_jobs_per_s", (double)n / drain_s);
            metric_set("ideal_jobs_per_s", ideal);
            metric_set("pct_of_ideal", 100.0 * (double)n / drain_s / ideal);
            metric_set("mean_running", busy_s / drain_s);
            metric_set("submit_jobs_per_s",
                       (double)n / ((double)(last_submit - first_submit) / 1e6));
            bench_dist d = dist_of(END_TO_FINISHED, 0, n);
            metric_dist("end_to_finished_ms", &d);
            cpu_metrics("", &drain.snap[0], &drain.snap[1], (double)n);
            ops_metrics("", &drain.stats[0], &drain.stats[1], (double)n);
            cpu_metrics("submit_", &submit.snap[0], &submit.snap[1], (double)n);
            ops_metrics("submit_", &submit.stats[0], &submit.stats[1], (double)n);
        }
        checkpoints_free(&submit);
        checkpoints_free(&drain);
    }
    shutdown_platform(p);
}

typedef struct reader_job {
    acp_platform *p;
    size_t count;
    atomic_size_t next;
    atomic_bool failed;
    double *latency_ms;
} reader_job;

static void *reader_main(void *arg)
{
    reader_job *r = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&r->next, 1);
        if (i >= r->count || atomic_load(&r->failed))
            break;
        acp_job_id id = job_id_of(i);
        int64_t t0 = bench_mono_us();
        acp_job job;
        acp_result_list files = {0};
        void *data = NULL;
        size_t size = 0;
        int rc = acp_get_job(r->p, &id, &job);
        const char *what = "acp_get_job";
        if (rc == 0 && job.status != ACP_STATUS_COMPLETE)
            rc = ACP_ECONFLICT;
        acp_job_clear(&job);
        if (rc == 0) {
            what = "acp_get_results";
            rc = acp_get_results(r->p, &id, &files);
            if (rc == 0 && files.count < 1)
                rc = ACP_ENOTFOUND;
        }
        if (rc == 0) {
            what = "acp_read_result_buffer";
            rc = acp_read_result_buffer(r->p, &id, RESULT_NAME, 1 << 20, &data, &size);
            if (rc == 0 && size != R.opt.result_size)
                rc = ACP_EIO;
        }
        r->latency_ms[i] = (double)(bench_mono_us() - t0) / 1000.0;
        acp_free(data);
        acp_result_list_clear(&files);
        if (rc) {
            atomic_store(&r->failed, true);
            run_failed("reading job %zu back: %s: %s: %s", i, what, acp_strerror(rc),
                       acp_last_error());
        }
    }
    return NULL;
}

typedef struct sink_state {
    uint64_t bytes;
} sink_state;

static int count_sink(void *userdata, const void *data, size_t len)
{
    (void)data;
    ((sink_state *)userdata)->bytes += len;
    return 0;
}

/* results: reading results back (job, listing, the file) per second, then
 * streaming one large result file. */
static void scenario_results(void)
{
    options *o = &R.opt;
    size_t n = o->jobs ? o->jobs : 200;
    if (o->result_size == 0)
        o->result_size = 1024;
    o->queues = 1;
    R.stream_index = n;
    R.stream_size = o->stream_mib * 1024 * 1024;
    acp_platform *p;
    if (alloc_records(n, 1 + o->warmup) || platform_start(o->workers, 1, &p))
        return;
    uint64_t base = finished_count(p);
    if (submit_many(p, 0, n, NULL) == 0 && submit_one(p, n, R.queue_ids[0]) == 0 &&
        wait_finished(p, base, n + 1, NULL) == 0 && collect_times(p) == 0) {
        check_jobs(0, n + 1);
        /* Reading back, from o->readers threads. */
        reader_job rj = {.p = p, .count = n, .latency_ms = calloc(n, sizeof(double))};
        bench_snapshot a, b;
        acp_stats sa = stats_now(p);
        bench_snapshot_take(&a, &R.services);
        int threads = o->readers > 0 ? o->readers : 1;
        pthread_t tid[32];
        if (threads > 32)
            threads = 32;
        int started = 0;
        for (int i = 0; rj.latency_ms && i < threads; i++)
            if (pthread_create(&tid[i], NULL, reader_main, &rj) == 0)
                started++;
        for (int i = 0; i < started; i++)
            pthread_join(tid[i], NULL);
        bench_snapshot_take(&b, &R.services);
        acp_stats sb = stats_now(p);
        if (R.ok && started > 0) {
            double s = (double)(b.mono_us - a.mono_us) / 1e6;
            metric_set("jobs", (double)n);
            metric_set("reads_per_s", (double)n / s);
            bench_dist d = bench_dist_of(rj.latency_ms, n);
            metric_dist("read_ms", &d);
            cpu_metrics("", &a, &b, (double)n);
            ops_metrics("", &sa, &sb, (double)n);
        }
        free(rj.latency_ms);
        bench_snapshot_free(&a);
        bench_snapshot_free(&b);

        /* The large file: its upload (executor end -> finished, which also
         * holds the finish statement and the flag) and its streamed read. */
        const job_rec *big = &R.recs[n];
        double mib = (double)R.stream_size / (1024.0 * 1024.0);
        double upload_s = (double)(big->finished - atomic_load(&big->end)) / 1e6;
        metric_set("stream_mib", mib);
        if (upload_s > 0)
            metric_set("upload_mib_per_s", mib / upload_s);
        long rss_before, hwm_ignored;
        int reset = bench_reset_peak();
        bench_memory(&rss_before, &hwm_ignored);
        bench_snapshot_take(&a, &R.services);
        sink_state sink = {0};
        acp_job_id id = job_id_of(n);
        int rc = acp_read_result(p, &id, RESULT_NAME, count_sink, &sink);
        bench_snapshot_take(&b, &R.services);
        long rss_after, hwm_after;
        bench_memory(&rss_after, &hwm_after);
        if (rc || sink.bytes != R.stream_size) {
            run_failed("streaming %zu bytes: %s (%" PRIu64 " bytes read): %s", R.stream_size,
                       acp_strerror(rc), sink.bytes, rc ? acp_last_error() : "short read");
        } else {
            double s = (double)(b.mono_us - a.mono_us) / 1e6;
            metric_set("stream_mib_per_s", mib / s);
            metric_set("stream_cpu_self_ms_per_mib", (b.self_cpu_s - a.self_cpu_s) * 1e3 / mib);
            if (reset == 0)
                metric_set("stream_peak_rss_growth_mib", (double)(hwm_after - rss_before) / 1024.0);
            metric_set("stream_rss_before_mib", (double)rss_before / 1024.0);
        }
        bench_snapshot_free(&a);
        bench_snapshot_free(&b);
    }
    memory_metrics("");
    shutdown_platform(p);
}

/* scale: N jobs queued behind a closed gate, then drained; the first and the
 * last segment of each phase are compared. */
static void scenario_scale(void)
{
    options *o = &R.opt;
    size_t n = o->jobs ? o->jobs : 10000;
    size_t k = o->segment ? o->segment : 1000;
    if (k * 2 > n)
        k = n / 2;
    acp_platform *p;
    o->queues = 1;
    if (alloc_records(n, o->warmup) || platform_start(o->workers, 1, &p))
        return;
    if (warm_up(p, n) == 0) {
        checkpoints submit = {.at = {0, k, n - k, n}, .count = 4};
        checkpoints drain = {.at = {0, k, n - k, n}, .count = 4};
        int64_t released = 0;
        checkpoint_take(&submit, 0, p);
        gate_set(false);
        uint64_t base = finished_count(p);
        if (submit_many(p, 0, n, &submit) == 0) {
            /* Reading a queued job computes its queue position: time it at
             * both ends of a long queue while everything waits. */
            const size_t probes = 10;
            double head[10], tail[10];
            long last_position = -1;
            for (size_t i = 0; i < probes; i++) {
                acp_job job;
                acp_job_id first = job_id_of((size_t)o->workers + 1);
                acp_job_id last = job_id_of(n - 1);
                int64_t t0 = bench_mono_us();
                acp_get_job(p, &first, &job);
                acp_job_clear(&job);
                int64_t t1 = bench_mono_us();
                acp_get_job(p, &last, &job);
                last_position = job.queue_position;
                acp_job_clear(&job);
                int64_t t2 = bench_mono_us();
                head[i] = (double)(t1 - t0) / 1000.0;
                tail[i] = (double)(t2 - t1) / 1000.0;
            }
            bench_dist dh = bench_dist_of(head, probes), dt = bench_dist_of(tail, probes);
            metric_set("last_queue_position", (double)last_position);
            metric_set("get_job_queue_head_ms_p50", dh.p50);
            metric_set("get_job_queue_tail_ms_p50", dt.p50);
            released = bench_wall_us();
            gate_set(true);
            wait_finished(p, base, n, &drain);
        }
        memory_metrics("");
        if (R.ok && collect_times(p) == 0) {
            check_jobs(0, n);
            metric_set("jobs", (double)n);
            metric_set("segment", (double)k);
            const char *names[2] = {"first", "last"};
            for (int s = 0; s < 2; s++) {
                size_t from = s == 0 ? 0 : 2, to = s == 0 ? 1 : 3;
                char prefix[64];
                snprintf(prefix, sizeof prefix, "submit_%s_", names[s]);
                double wall = (double)(submit.snap[to].mono_us - submit.snap[from].mono_us) / 1e6;
                metric_setf((double)k / wall, "%sjobs_per_s", prefix);
                bench_dist d = dist_of(SUBMIT_CALL, s == 0 ? 0 : n - k, k);
                metric_setf(d.p50, "%scall_ms_p50", prefix);
                metric_setf(d.p99, "%scall_ms_p99", prefix);
                cpu_metrics(prefix, &submit.snap[from], &submit.snap[to], (double)k);
                ops_metrics(prefix, &submit.stats[from], &submit.stats[to], (double)k);
                snprintf(prefix, sizeof prefix, "drain_%s_", names[s]);
                wall = (double)(drain.snap[to].mono_us - drain.snap[from].mono_us) / 1e6;
                metric_setf((double)k / wall, "%sjobs_per_s", prefix);
                cpu_metrics(prefix, &drain.snap[from], &drain.snap[to], (double)k);
                ops_metrics(prefix, &drain.stats[from], &drain.stats[to], (double)k);
            }
            metric_set("drain_rss_first_mib", (double)drain.rss_kib[1] / 1024.0);
            metric_set("drain_rss_last_mib", (double)drain.rss_kib[3] / 1024.0);
            metric_set("drain_rss_growth_mib",
                       (double)(drain.rss_kib[3] - drain.rss_kib[1]) / 1024.0);
            int64_t first_submit, last_submit, first_start, last_finished;
            span_range(0, n, &first_submit, &last_submit, &first_start, &last_finished);
            metric_set("drain_jobs_per_s", (double)n / ((double)(last_finished - released) / 1e6));
            metric_set("submit_jobs_per_s",
                       (double)n / ((double)(last_submit - first_submit) / 1e6));
        }
        checkpoints_free(&submit);
        checkpoints_free(&drain);
    }
    shutdown_platform(p);
}

/* idle: W workers waiting for work: memory and the CPU of waiting. */
static void scenario_idle(void)
{
    options *o = &R.opt;
    acp_platform *p;
    o->queues = 1;
    if (alloc_records(0, 0) || platform_start(o->workers, 1, &p))
        return;
    bench_snapshot a, b;
    bench_snapshot_take(&a, &R.services);
    bench_sleep_us((int64_t)o->idle_seconds * 1000000);
    bench_snapshot_take(&b, &R.services);
    memory_metrics("");
    metric_set("workers", (double)o->workers);
    /* "Per job" here is per second of idling. */
    cpu_metrics("idle_per_s_", &a, &b, (double)o->idle_seconds);
    bench_snapshot_free(&a);
    bench_snapshot_free(&b);
    shutdown_platform(p);
}

/* cleanup: delete the jobs of queues "bench-<tag>-<n>" that an interrupted
 * run left behind (its S3 root is "acp-bench/<tag>"). Its own queue
 * "bench-<tag>-c" takes no jobs; the run's queues are listed for deletion. */
typedef struct id_list {
    acp_job_id *ids;
    size_t count, cap;
} id_list;

typedef struct cleanup_job {
    acp_platform *p;
    const id_list *list;
    atomic_size_t next, deleted, failures;
} cleanup_job;

static void *cleanup_main(void *arg)
{
    cleanup_job *c = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&c->next, 1);
        if (i >= c->list->count)
            break;
        int rc = acp_delete_job(c->p, &c->list->ids[i]);
        if (rc == 0 || rc == ACP_ENOTFOUND)
            atomic_fetch_add(&c->deleted, 1);
        else if (atomic_fetch_add(&c->failures, 1) < 5)
            fprintf(stderr, "acp-bench: cleanup: %s: %s\n", acp_strerror(rc), acp_last_error());
    }
    return NULL;
}

static void scenario_cleanup(void)
{
    options *o = &R.opt;
    acp_platform *p;
    o->queues = 1;
    if (alloc_records(0, 0) || platform_start(1, 1, &p))
        return;
    id_list list = {0};
    for (int q = 0; q < QUEUES_MAX && R.ok; q++) {
        char queue[ACP_QUEUE_ID_MAX + 1];
        snprintf(queue, sizeof queue, "bench-%s-%d", R.tag, q);
        acp_job_filter filter;
        acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
        filter.queue = queue;
        filter.limit = ACP_LIST_LIMIT_MAX;
        char *cursor = NULL;
        for (;;) {
            filter.cursor = cursor;
            acp_job_list page;
            int rc = acp_list_jobs(p, &filter, &page);
            free(cursor);
            cursor = NULL;
            if (rc) {
                run_failed("acp_list_jobs: %s: %s", acp_strerror(rc), acp_last_error());
                break;
            }
            for (size_t i = 0; i < page.count; i++) {
                if (list.count == list.cap) {
                    size_t cap = list.cap ? list.cap * 2 : 1024;
                    acp_job_id *more = realloc(list.ids, cap * sizeof *more);
                    if (!more)
                        break;
                    list.ids = more;
                    list.cap = cap;
                }
                if (list.count < list.cap)
                    list.ids[list.count++] = page.jobs[i].id;
            }
            if (page.next_cursor)
                cursor = strdup(page.next_cursor);
            acp_job_list_clear(&page);
            if (!cursor)
                break;
        }
    }
    cleanup_job c = {.p = p, .list = &list};
    pthread_t threads[8];
    int started = 0;
    int n = o->deleters > 0 && o->deleters < 8 ? o->deleters : 8;
    for (int i = 0; i < n; i++)
        if (pthread_create(&threads[started], NULL, cleanup_main, &c) == 0)
            started++;
    if (started == 0)
        cleanup_main(&c);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    metric_set("jobs_found", (double)list.count);
    metric_set("jobs_deleted", (double)atomic_load(&c.deleted));
    metric_set("cleanup_failures", (double)atomic_load(&c.failures));
    if (atomic_load(&c.failures))
        run_failed("%zu of %zu job(s) not deleted; a running one can be deleted once its "
                   "lease has expired and it is queued again: run this again then",
                   (size_t)atomic_load(&c.failures), list.count);
    free(list.ids);
    acp_shutdown(p);
}

/* ---- output ------------------------------------------------------------------------ */

static void write_json(int64_t started_wall)
{
    FILE *out = R.opt.json_path ? fopen(R.opt.json_path, "a") : NULL;
    if (R.opt.json_path && !out) {
        fprintf(stderr, "acp-bench: %s: %s\n", R.opt.json_path, strerror(errno));
        R.ok = false;
        return;
    }
    bench_json j;
    bench_json_init(&j, out ? out : stdout);
    bench_json_object(&j, NULL);
    bench_json_str(&j, "scenario", R.opt.scenario);
    bench_json_str(&j, "label", R.opt.label ? R.opt.label : R.opt.scenario);
    bench_json_str(&j, "tag", R.tag);
    bench_json_int(&j, "started_us", started_wall);
    bench_json_bool(&j, "ok", R.ok && atomic_load(&R.executor_errors) == 0);
    bench_json_str(&j, "error", R.ok ? NULL : R.error);
    bench_json_int(&j, "library_warnings", atomic_load(&R.warnings));
    bench_json_object(&j, "params");
    bench_json_int(&j, "jobs", (int64_t)R.opt.jobs);
    bench_json_int(&j, "workers", R.opt.workers);
    bench_json_int(&j, "queues", R.opt.queues);
    bench_json_int(&j, "submitters", R.opt.submitters);
    bench_json_int(&j, "result_size", (int64_t)R.opt.result_size);
    bench_json_str(&j, "layout", R.opt.layout == ACP_LAYOUT_LCP ? "lcp" : "native");
    bench_json_str(&j, "signature", R.opt.signature == ACP_S3_SIGNATURE_V2 ? "v2" : "v4");
    bench_json_int(&j, "sleep_ms", R.opt.sleep_ms);
    bench_json_int(&j, "warmup", (int64_t)R.opt.warmup);
    bench_json_int(&j, "pool", R.opt.pool);
    bench_json_int(&j, "readers", R.opt.readers);
    bench_json_int(&j, "stream_mib", (int64_t)R.opt.stream_mib);
    bench_json_int(&j, "segment", (int64_t)R.opt.segment);
    bench_json_int(&j, "config_bytes", (int64_t)R.config_bytes);
    bench_json_str(&j, "scratch_root", R.scratch_root);
    bench_json_end(&j);
    bench_json_array(&j, "queues_declared");
    for (int i = 0; i < R.opt.queues && R.queue_ids[i][0]; i++) {
        char name[ACP_QUEUE_ID_MAX + 8];
        snprintf(name, sizeof name, "%s_jobs", R.queue_ids[i]);
        bench_json_str(&j, NULL, name);
    }
    bench_json_end(&j);
    bench_json_array(&j, "services");
    for (size_t i = 0; i < R.services.count; i++)
        bench_json_str(&j, NULL, R.services.items[i].name);
    bench_json_end(&j);
    if (floor_text[0])
        bench_json_str(&j, "floor_args", floor_text);
    bench_json_object(&j, "metrics");
    for (size_t i = 0; i < R.metric_count; i++)
        bench_json_num(&j, R.metrics[i].name, R.metrics[i].value);
    bench_json_end(&j);
    bench_json_end(&j);
    fputc('\n', j.out);
    if (out)
        fclose(out);
}

static void print_summary(void)
{
    printf("%s (%s) %s\n", R.opt.label ? R.opt.label : R.opt.scenario, R.tag,
           R.ok ? "ok" : "FAILED");
    for (size_t i = 0; i < R.metric_count; i++)
        printf("  %-40s %12.4f\n", R.metrics[i].name, R.metrics[i].value);
}

/* ---- main ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fputs("usage: acp-bench SCENARIO [options]\n"
          "scenarios: burst serial parallel results scale idle\n"
          "           cleanup --tag TAG: delete the jobs an interrupted run left behind\n"
          "  --jobs N          measured jobs (defaults: burst 1000, serial 100, parallel 10 x W,\n"
          "                    results 200, scale 10000)\n"
          "  --workers W       workers per queue (default 4; idle 64)\n"
          "  --queues Q        queues (burst; default 1)\n"
          "  --submitters S    threads calling acp_submit (default 2)\n"
          "  --result-size B   bytes of each job's result file (default 1024; 0: none)\n"
          "  --sleep-ms MS     executor run time (parallel: default 50)\n"
          "  --warmup N        jobs run before measuring (default 3)\n"
          "  --pool N          PostgreSQL pool size (default: the library's, 10)\n"
          "  --readers T       results: reading threads (default 1)\n"
          "  --stream-mib M    results: size of the streamed file (default 100)\n"
          "  --segment K       scale: jobs per compared segment (default 1000)\n"
          "  --idle-seconds S  idle: measured seconds (default 5)\n"
          "  --deleters T      threads deleting the run's jobs at the end (default 4)\n"
          "  --timeout S       longest wait for jobs to finish (default 900)\n"
          "  --json FILE       append the run's figures as one JSON line (default: stdout)\n"
          "  --label TEXT      name of the run in the output\n"
          "  --layout L        native (default) or lcp\n"
          "  --signature S     v4 (default: libcurl) or v2 (libs3)\n"
          "  --stack-dir DIR   the stack's state directory (default $ACP_STACK_DIR or .stack)\n"
          "  --scratch-dir DIR where the run's scratch root is made (default /tmp/acp-bench)\n"
          "Settings of the services come from the ACP_TEST_* variables of scripts/stack env.\n",
          out);
}

static int parse_size(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-')
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_int(const char *text, int *out)
{
    size_t v;
    if (parse_size(text, &v) || v > 1000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {{"jobs", required_argument, NULL, 'n'},
                                          {"workers", required_argument, NULL, 'w'},
                                          {"queues", required_argument, NULL, 'q'},
                                          {"submitters", required_argument, NULL, 's'},
                                          {"result-size", required_argument, NULL, 'r'},
                                          {"sleep-ms", required_argument, NULL, 'S'},
                                          {"warmup", required_argument, NULL, 'W'},
                                          {"pool", required_argument, NULL, 'p'},
                                          {"readers", required_argument, NULL, 'R'},
                                          {"stream-mib", required_argument, NULL, 'm'},
                                          {"segment", required_argument, NULL, 'k'},
                                          {"idle-seconds", required_argument, NULL, 'i'},
                                          {"deleters", required_argument, NULL, 'd'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"json", required_argument, NULL, 'j'},
                                          {"label", required_argument, NULL, 'l'},
                                          {"stack-dir", required_argument, NULL, 'D'},
                                          {"scratch-dir", required_argument, NULL, 'T'},
                                          {"tag", required_argument, NULL, 'g'},
                                          {"layout", required_argument, NULL, 'L'},
                                          {"signature", required_argument, NULL, 'G'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (options){.workers = -1,
                   .queues = 1,
                   .submitters = 2,
                   .result_size = 1024,
                   .sleep_ms = -1,
                   .warmup = 3,
                   .readers = 1,
                   .stream_mib = 100,
                   .segment = 1000,
                   .idle_seconds = 5,
                   .deleters = 4,
                   .timeout_s = 900,
                   .layout = ACP_LAYOUT_NATIVE,
                   .signature = ACP_S3_SIGNATURE_V4};
    int c, bad = 0, which = 0;
    while ((c = getopt_long(argc, argv, "h", longs, &which)) != -1) {
        switch (c) {
        case 'n':
            bad |= parse_size(optarg, &o->jobs);
            break;
        case 'w':
            bad |= parse_int(optarg, &o->workers);
            break;
        case 'q':
            bad |= parse_int(optarg, &o->queues);
            break;
        case 's':
            bad |= parse_int(optarg, &o->submitters);
            break;
        case 'r':
            bad |= parse_size(optarg, &o->result_size);
            break;
        case 'S':
            bad |= parse_int(optarg, &o->sleep_ms);
            break;
        case 'W':
            bad |= parse_size(optarg, &o->warmup);
            break;
        case 'p':
            bad |= parse_int(optarg, &o->pool);
            break;
        case 'R':
            bad |= parse_int(optarg, &o->readers);
            break;
        case 'm':
            bad |= parse_size(optarg, &o->stream_mib);
            break;
        case 'k':
            bad |= parse_size(optarg, &o->segment);
            break;
        case 'i':
            bad |= parse_int(optarg, &o->idle_seconds);
            break;
        case 'd':
            bad |= parse_int(optarg, &o->deleters);
            break;
        case 't':
            bad |= parse_int(optarg, &o->timeout_s);
            break;
        case 'j':
            o->json_path = optarg;
            break;
        case 'l':
            o->label = optarg;
            break;
        case 'D':
            o->stack_dir = optarg;
            break;
        case 'T':
            o->scratch_parent = optarg;
            break;
        case 'g':
            o->tag = optarg;
            break;
        case 'L':
            if (strcmp(optarg, "native") == 0)
                o->layout = ACP_LAYOUT_NATIVE;
            else if (strcmp(optarg, "lcp") == 0)
                o->layout = ACP_LAYOUT_LCP;
            else
                bad = 1;
            break;
        case 'G':
            if (strcmp(optarg, "v4") == 0)
                o->signature = ACP_S3_SIGNATURE_V4;
            else if (strcmp(optarg, "v2") == 0)
                o->signature = ACP_S3_SIGNATURE_V2;
            else
                bad = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -1;
        }
        if (bad) {
            fprintf(stderr, "acp-bench: bad value for --%s: '%s'\n", longs[which].name, optarg);
            return -1;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return -1;
    }
    o->scenario = argv[optind];
    if (o->workers < 0)
        o->workers = strcmp(o->scenario, "idle") == 0 ? 64 : 4;
    if (o->workers < ACP_WORKERS_MIN || o->workers > ACP_WORKERS_MAX) {
        fprintf(stderr, "acp-bench: --workers must be %d..%d\n", ACP_WORKERS_MIN, ACP_WORKERS_MAX);
        return -1;
    }
    if (o->sleep_ms < 0)
        o->sleep_ms = strcmp(o->scenario, "parallel") == 0 ? 50 : 0;
    if (o->queues < 1 || o->queues > QUEUES_MAX) {
        fprintf(stderr, "acp-bench: --queues must be 1..%d\n", QUEUES_MAX);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_options(argc, argv, &R.opt) != 0)
        return 2;
    void (*run)(void) = NULL;
    static const struct {
        const char *name;
        void (*run)(void);
    } scenarios[] = {{"burst", scenario_burst},       {"serial", scenario_serial},
                     {"parallel", scenario_parallel}, {"results", scenario_results},
                     {"scale", scenario_scale},       {"idle", scenario_idle},
                     {"cleanup", scenario_cleanup}};
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(R.opt.scenario, scenarios[i].name) == 0)
            run = scenarios[i].run;
    if (!run) {
        fprintf(stderr, "acp-bench: unknown scenario '%s'\n", R.opt.scenario);
        usage(stderr);
        return 2;
    }
    if (bench_env_load(&R.env) != 0)
        return 2;
    const char *stack_dir = R.opt.stack_dir ? R.opt.stack_dir : getenv("ACP_STACK_DIR");
    bench_services_find(&R.services, stack_dir && *stack_dir ? stack_dir : ".stack");

    if (strcmp(R.opt.scenario, "cleanup") == 0) {
        if (!R.opt.tag || strlen(R.opt.tag) != 16 || strspn(R.opt.tag, "0123456789abcdef") != 16) {
            fprintf(stderr, "acp-bench: cleanup needs --tag with the run's 16-hex tag\n");
            return 2;
        }
        snprintf(R.tag, sizeof R.tag, "%s", R.opt.tag);
    } else {
        bench_run_tag(R.tag);
    }
    for (size_t i = 0; i < sizeof R.prefix; i++) {
        unsigned v;
        sscanf(R.tag + 2 * i, "%2x", &v);
        R.prefix[i] = (unsigned char)v;
    }
    snprintf(R.s3_root, sizeof R.s3_root, "acp-bench/%s", R.tag);
    snprintf(R.scratch_root, sizeof R.scratch_root, "%s/%s",
             R.opt.scratch_parent ? R.opt.scratch_parent : "/tmp/acp-bench", R.tag);
    for (size_t i = 0; i < sizeof result_pattern; i++)
        result_pattern[i] = (char)('a' + i % 26);

    char sample[128];
    R.config_bytes = (size_t)snprintf(sample, sizeof sample, CONFIG_FORMAT, R.tag, (size_t)0);

    /* Named first, so that an interrupted run can be cleaned up with
     * "acp-bench cleanup --tag TAG". */
    fprintf(stderr, "acp-bench %s: run %s: queues bench-%s-*, S3 root %s, scratch %s\n",
            R.opt.scenario, R.tag, R.tag, R.s3_root, R.scratch_root);
    int64_t started = bench_wall_us();
    run();
    if (atomic_load(&R.executor_errors))
        run_failed("%d executor error(s)", atomic_load(&R.executor_errors));
    rmdir(R.scratch_root);
    print_summary();
    write_json(started);
    free(R.recs);
    return R.ok ? 0 : 1;
}
