/* The metrics registry and the hooks the choke points call: see
 * metrics.h. acp_metrics_write is in metrics_write.c. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void metrics_queue_init(metrics_queue *q, const char *name, bool served)
{
    snprintf(q->name, sizeof q->name, "%s", name);
    q->served = served;
    for (int e = 0; e < METRICS_JOB_EVENTS; e++)
        atomic_init(&q->jobs[e], 0);
    metrics_hist_init(&q->wait, metrics_job_bounds, metrics_job_bound_count);
    metrics_hist_init(&q->run, metrics_job_bounds, metrics_job_bound_count);
}

metrics *metrics_create(const char *const *names, size_t count)
{
    metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->capacity = count + METRICS_OTHER_QUEUES;
    m->queues = calloc(m->capacity, sizeof *m->queues);
    if (!m->queues || pthread_mutex_init(&m->add_lock, NULL) != 0) {
        free(m->queues);
        free(m);
        return NULL;
    }
    if (pthread_mutex_init(&m->queued_lock, NULL) != 0) {
        pthread_mutex_destroy(&m->add_lock);
        free(m->queues);
        free(m);
        return NULL;
    }
    for (size_t i = 0; i < count; i++)
        metrics_queue_init(&m->queues[i], names[i], true);
    m->served = count;
    atomic_init(&m->count, count);
    for (int b = 0; b < METRICS_BACKENDS; b++) {
        for (int k = 0; k < METRICS_KINDS_MAX; k++) {
            atomic_init(&m->backends[b].requests[k], 0);
            atomic_init(&m->backends[b].errors[k], 0);
        }
        atomic_init(&m->backends[b].reconnects, 0);
        metrics_hist_init(&m->backends[b].latency, metrics_backend_bounds,
                          metrics_backend_bound_count);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->start_seconds = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1e3;
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->add_lock);
    pthread_mutex_destroy(&m->queued_lock);
    free(m->queued);
    free(m->queues);
    free(m);
}

metrics_backend *metrics_backend_of(metrics *m, metrics_backend_id id)
{
    return m ? &m->backends[id] : NULL;
}

metrics_queue *metrics_queue_at(metrics *m, size_t index)
{
    return m && index < m->served ? &m->queues[index] : NULL;
}

static metrics_queue *metrics_queue_find(metrics *m, const char *name, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(m->queues[i].name, name) == 0)
            return &m->queues[i];
    return NULL;
}

metrics_queue *metrics_queue_named(metrics *m, const char *name)
{
    if (!m || !name)
        return NULL;
    metrics_queue *q =
        metrics_queue_find(m, name, atomic_load_explicit(&m->count, memory_order_acquire));
    if (q)
        return q;
    pthread_mutex_lock(&m->add_lock);
    size_t count = atomic_load_explicit(&m->count, memory_order_relaxed);
    q = metrics_queue_find(m, name, count);
    if (!q && count < m->capacity) {
        q = &m->queues[count];
        metrics_queue_init(q, name, false);
        atomic_store_explicit(&m->count, count + 1, memory_order_release);
    }
    pthread_mutex_unlock(&m->add_lock);
    return q;
}

void metrics_job_named(metrics *m, const char *name, metrics_job_event event)
{
    metrics_job(metrics_queue_named(m, name), event);
}

void metrics_backend_done(metrics_backend *b, int kind, bool failed, uint64_t start_ns)
{
    if (!b || kind < 0 || kind >= METRICS_KINDS_MAX)
        return;
    atomic_fetch_add_explicit(&b->requests[kind], 1, memory_order_relaxed);
    if (failed)
        atomic_fetch_add_explicit(&b->errors[kind], 1, memory_order_relaxed);
    if (start_ns) {
        uint64_t now = metrics_now_ns();
        metrics_hist_observe_ns(&b->latency, now > start_ns ? now - start_ns : 0);
    }
}
