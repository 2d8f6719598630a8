/* The platform's metrics registry (acp_metrics_write renders it): job
 * counters and histograms per queue, backend requests, errors, latencies
 * and reconnects. Fixed at acp_init but for the queues of jobs this
 * process touches without serving them (a cancellation, a requeued lease),
 * which are added on first use. Every update is an atomic add: no lock on
 * any hot path. Every function takes a NULL registry or backend and then
 * does nothing (platforms built by tests may have none). */
#ifndef ACP_METRICS_H
#define ACP_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "async_platform.h"
#include "metrics_text.h"
#include "store.h"

/* What happened to a job, counted per queue (acp_jobs_<event>_total). */
typedef enum metrics_job_event {
    METRICS_SUBMITTED,
    METRICS_STARTED,
    METRICS_SUCCEEDED,
    METRICS_FAILED,
    METRICS_RETRIED,
    METRICS_CANCELLED,
    METRICS_TIMED_OUT,
    METRICS_REQUEUED,
    METRICS_JOB_EVENTS
} metrics_job_event;

typedef struct metrics_queue {
    char name[ACP_QUEUE_ID_MAX + 1];
    bool served; /* configured in this process (workers, running gauge) */
    atomic_uint_least64_t jobs[METRICS_JOB_EVENTS];
    metrics_hist wait; /* claim time - when it became due */
    metrics_hist run;  /* the executor's run */
} metrics_queue;

typedef enum metrics_backend_id {
    METRICS_SQL,
    METRICS_AMQP,
    METRICS_S3,
    METRICS_BACKENDS
} metrics_backend_id;

/* Kinds of requests per backend: sql: statement; amqp: publish, consume
 * (deliveries), ack; s3: put, get, head, list, delete (objects.h's order). */
enum { METRICS_SQL_STATEMENT = 0 };
enum { METRICS_AMQP_PUBLISH = 0, METRICS_AMQP_CONSUME, METRICS_AMQP_ACK };
#define METRICS_KINDS_MAX 5

typedef struct metrics_backend {
    atomic_uint_least64_t requests[METRICS_KINDS_MAX];
    atomic_uint_least64_t errors[METRICS_KINDS_MAX];
    atomic_uint_least64_t reconnects;
    metrics_hist latency;
} metrics_backend;

/* Queues a process may count besides its own. */
#define METRICS_OTHER_QUEUES 64

typedef struct metrics {
    double start_seconds; /* wall clock at creation, for process_start_time */
    /* The served queues first, then others as they come: entries below
     * @count are complete (published with a release store), so readers scan
     * them without the lock, which only adding takes. */
    metrics_queue *queues;
    size_t served, capacity;
    atomic_size_t count;
    pthread_mutex_t add_lock;
    metrics_backend backends[METRICS_BACKENDS];
    /* acp_jobs_queued's cache (metrics_write.c), under its lock: one
     * query at most every METRICS_QUEUED_TTL_MS, by whichever scrape
     * finds it stale. */
    pthread_mutex_t queued_lock;
    int64_t queued_at_ms;      /* monotonic; 0: never read */
    store_queue_count *queued; /* as last read */
    size_t queued_count;
} metrics;

#define METRICS_QUEUED_TTL_MS 5000

/* A registry with the @count queues this process serves, in that order
 * (metrics_queue_at(m, i) is @names[i]). NULL when out of memory. */
metrics *metrics_create(const char *const *names, size_t count);
void metrics_free(metrics *m);

/* The backend's counters, for its choke point to update. */
metrics_backend *metrics_backend_of(metrics *m, metrics_backend_id id);

/* The served queue number @index. */
metrics_queue *metrics_queue_at(metrics *m, size_t index);
/* The queue named @name, added when this process did not count it yet;
 * NULL when METRICS_OTHER_QUEUES are taken already. */
metrics_queue *metrics_queue_named(metrics *m, const char *name);

static inline void metrics_job(metrics_queue *q, metrics_job_event event)
{
    if (q)
        atomic_fetch_add_explicit(&q->jobs[event], 1, memory_order_relaxed);
}
/* metrics_job for the queue named @name. */
void metrics_job_named(metrics *m, const char *name, metrics_job_event event);

/* CLOCK_MONOTONIC in nanoseconds, to time a request or a run. */
static inline uint64_t metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One request of @kind that began at @start_ns (metrics_now_ns), failed or
 * not. @start_ns 0: not timed, only counted. */
void metrics_backend_done(metrics_backend *b, int kind, bool failed, uint64_t start_ns);
static inline void metrics_backend_reconnect(metrics_backend *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->reconnects, 1, memory_order_relaxed);
}

#endif
