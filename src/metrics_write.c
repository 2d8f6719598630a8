/* acp_metrics_write: the registry (metrics.h), the platform's gauges and
 * the cached count of queued jobs, rendered in the Prometheus text format
 * (metrics_text.h). docs/operations.adoc, "Metrics", lists every name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "metrics.h"
#include "platform_state.h"
#include "running.h"

static const char *const job_names[METRICS_JOB_EVENTS][2] = {
    [METRICS_SUBMITTED] = {"acp_jobs_submitted_total", "Jobs submitted (new jobs and re-runs)."},
    [METRICS_STARTED] = {"acp_jobs_started_total", "Attempts claimed by this process's workers."},
    [METRICS_SUCCEEDED] = {"acp_jobs_succeeded_total", "Jobs that ended complete."},
    [METRICS_FAILED] = {"acp_jobs_failed_total", "Jobs that ended failed (no retry left)."},
    [METRICS_RETRIED] = {"acp_jobs_retried_total", "Failed attempts queued again for a retry."},
    [METRICS_CANCELLED] = {"acp_jobs_cancelled_total", "Jobs that ended cancelled."},
    [METRICS_TIMED_OUT] = {"acp_jobs_timed_out_total", "Attempts stopped by their timeout."},
    [METRICS_REQUEUED] = {"acp_jobs_requeued_total",
                          "Attempts requeued after their lease expired (their process stopped)."},
};

static const char *const backend_names[METRICS_BACKENDS] = {"sql", "amqp", "s3"};
static const char *const backend_kinds[METRICS_BACKENDS][METRICS_KINDS_MAX] = {
    {"statement"},
    {"publish", "consume", "ack"},
    {"put", "get", "head", "list", "delete"},
};

/* Renders families one after the other into @out, and builds each
 * sample's label set in @labels; the first failure sticks in @rc. */
typedef struct writer {
    buf out, labels;
    int rc;
} writer;

static void family(writer *w, const char *name, const char *type, const char *help)
{
    if (!w->rc)
        w->rc = metrics_text_family(&w->out, name, type, help);
}

/* Starts a label set: "" then each label(). */
static void labels_reset(writer *w)
{
    w->labels.len = 0;
    if (w->labels.data)
        w->labels.data[0] = '\0';
}

static void label(writer *w, const char *name, const char *value)
{
    if (!w->rc)
        w->rc = metrics_text_label(&w->labels, name, value);
}

static void sample(writer *w, const char *name, uint64_t value)
{
    if (!w->rc)
        w->rc = metrics_text_u64(&w->out, name, w->labels.data, value);
}

static void hist(writer *w, const char *name, const metrics_hist *h)
{
    if (!w->rc)
        w->rc = metrics_text_hist(&w->out, name, w->labels.data, h);
}

/* Read the queued counts again when they are older than the TTL. Under
 * the lock, so that scrapes arriving together run one query. A failed
 * query keeps the last counts (and is not retried before the TTL: a
 * database that is down is not asked at every scrape). */
static void queued_refresh(acp_platform *p, metrics *m)
{
    int64_t now = clock_now_ms();
    if (m->queued_at_ms && now - m->queued_at_ms < METRICS_QUEUED_TTL_MS)
        return;
    m->queued_at_ms = now ? now : 1;
    store_queue_count *counts;
    size_t count;
    if (store_count_queued(p->store, &counts, &count) != 0) {
        log_warn(&p->log, "metrics: counting queued jobs: %s", acp_last_error());
        return;
    }
    free(m->queued);
    m->queued = counts;
    m->queued_count = count;
}

static uint64_t queued_of(const metrics *m, const char *queue)
{
    for (size_t i = 0; i < m->queued_count; i++)
        if (strcmp(m->queued[i].queue, queue) == 0)
            return m->queued[i].count;
    return 0;
}

static void write_queued(writer *w, acp_platform *p, metrics *m)
{
    family(w, "acp_jobs_queued", "gauge",
           "Jobs queued in the database, per queue (read at most every 5 s).");
    pthread_mutex_lock(&m->queued_lock);
    queued_refresh(p, m);
    /* The served queues always, at 0 when none is queued; then the
     * database's other queues. */
    for (size_t i = 0; i < m->served; i++) {
        labels_reset(w);
        label(w, "queue", m->queues[i].name);
        sample(w, "acp_jobs_queued", queued_of(m, m->queues[i].name));
    }
    for (size_t i = 0; i < m->queued_count; i++) {
        bool served = false;
        for (size_t j = 0; j < m->served && !served; j++)
            served = strcmp(m->queues[j].name, m->queued[i].queue) == 0;
        if (served)
            continue;
        labels_reset(w);
        label(w, "queue", m->queued[i].queue);
        sample(w, "acp_jobs_queued", m->queued[i].count);
    }
    pthread_mutex_unlock(&m->queued_lock);
}

static void write_jobs(writer *w, metrics *m)
{
    size_t count = atomic_load_explicit(&m->count, memory_order_acquire);
    for (int e = 0; e < METRICS_JOB_EVENTS; e++) {
        family(w, job_names[e][0], "counter", job_names[e][1]);
        for (size_t i = 0; i < count; i++) {
            labels_reset(w);
            label(w, "queue", m->queues[i].name);
            sample(w, job_names[e][0],
                   atomic_load_explicit(&m->queues[i].jobs[e], memory_order_relaxed));
        }
    }
}

static void write_process(writer *w, acp_platform *p, metrics *m)
{
    family(w, "acp_jobs_running", "gauge", "Jobs executing now in this process.");
    for (size_t i = 0; i < m->served; i++) {
        labels_reset(w);
        label(w, "queue", m->queues[i].name);
        sample(w, "acp_jobs_running", (uint64_t)atomic_load(&p->queues[i].running));
    }
    family(w, "acp_workers", "gauge", "Worker threads of this process, busy or idle.");
    for (size_t i = 0; i < m->served; i++) {
        int running = atomic_load(&p->queues[i].running);
        uint64_t workers = p->queues[i].worker_count;
        uint64_t busy = running < 0 ? 0 : (uint64_t)running > workers ? workers : (uint64_t)running;
        labels_reset(w);
        label(w, "queue", m->queues[i].name);
        label(w, "state", "busy");
        sample(w, "acp_workers", busy);
        labels_reset(w);
        label(w, "queue", m->queues[i].name);
        label(w, "state", "idle");
        sample(w, "acp_workers", workers - busy);
    }
    family(w, "acp_executors_overdue", "gauge",
           "Executors still running after their attempt was recorded without them.");
    labels_reset(w);
    sample(w, "acp_executors_overdue", running_overdue_count(p));
    family(w, "acp_job_queue_wait_seconds", "histogram",
           "From when a job became due (submitted, or its retry back-off over) to its claim.");
    for (size_t i = 0; i < m->served; i++) {
        labels_reset(w);
        label(w, "queue", m->queues[i].name);
        hist(w, "acp_job_queue_wait_seconds", &m->queues[i].wait);
    }
    family(w, "acp_job_run_seconds", "histogram", "The executors' run times.");
    for (size_t i = 0; i < m->served; i++) {
        labels_reset(w);
        label(w, "queue", m->queues[i].name);
        hist(w, "acp_job_run_seconds", &m->queues[i].run);
    }
}

static void write_backends(writer *w, metrics *m)
{
    static const char *const counters[2][2] = {
        {"acp_backend_requests_total",
         "Requests to PostgreSQL, RabbitMQ and S3, retries included."},
        {"acp_backend_errors_total", "Requests that failed."},
    };
    for (int c = 0; c < 2; c++) {
        family(w, counters[c][0], "counter", counters[c][1]);
        for (int b = 0; b < METRICS_BACKENDS; b++)
            for (int k = 0; k < METRICS_KINDS_MAX && backend_kinds[b][k]; k++) {
                const metrics_backend *be = &m->backends[b];
                labels_reset(w);
                label(w, "backend", backend_names[b]);
                label(w, "kind", backend_kinds[b][k]);
                sample(w, counters[c][0],
                       atomic_load_explicit(c ? &be->errors[k] : &be->requests[k],
                                            memory_order_relaxed));
            }
    }
    family(w, "acp_backend_request_seconds", "histogram",
           "Latency of requests (SQL statements, AMQP publishes with their confirm and acks, S3 "
           "requests).");
    for (int b = 0; b < METRICS_BACKENDS; b++) {
        labels_reset(w);
        label(w, "backend", backend_names[b]);
        hist(w, "acp_backend_request_seconds", &m->backends[b].latency);
    }
    family(w, "acp_backend_reconnects_total", "counter",
           "Connections to PostgreSQL and RabbitMQ made again after one was lost.");
    for (int b = METRICS_SQL; b <= METRICS_AMQP; b++) {
        labels_reset(w);
        label(w, "backend", backend_names[b]);
        sample(w, "acp_backend_reconnects_total",
               atomic_load_explicit(&m->backends[b].reconnects, memory_order_relaxed));
    }
}

int acp_metrics_write(acp_platform *p, acp_read_fn sink, void *userdata)
{
    if (!p || !sink)
        return error_set(ACP_EINVAL, "acp_metrics_write: NULL argument");
    metrics *m = p->metrics;
    if (!m)
        return error_set(ACP_EINVAL, "acp_metrics_write: this platform keeps no metrics");
    writer w = {BUF_INIT, BUF_INIT, 0};
    family(&w, "acp_build_info", "gauge", "The library's version; always 1.");
    labels_reset(&w);
    label(&w, "version", ACP_VERSION_STRING);
    sample(&w, "acp_build_info", 1);
    family(&w, "acp_process_start_time_seconds", "gauge",
           "When the platform started (acp_init), in seconds since the Unix epoch.");
    if (!w.rc)
        w.rc =
            metrics_text_double(&w.out, "acp_process_start_time_seconds", NULL, m->start_seconds);
    write_jobs(&w, m);
    write_queued(&w, p, m);
    write_process(&w, p, m);
    write_backends(&w, m);
    int rc = w.rc;
    if (!rc) {
        int back = sink(userdata, w.out.data, w.out.len);
        if (back)
            rc = error_set(ACP_EUSER, "acp_metrics_write: the sink returned %d", back);
    }
    buf_free(&w.out);
    buf_free(&w.labels);
    return rc;
}
