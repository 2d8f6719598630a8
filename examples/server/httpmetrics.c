#include "httpmetrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Distinct statuses counted per route; the server answers about a dozen, so
 * this is never reached in practice, and beyond it the label is "other". */
#define HTTPMETRICS_STATUSES 24

/* Seconds. A followed log (GET /jobs/{id}/log?follow=1) lasts as long as its
 * job, hence the long upper buckets. */
static const double httpmetrics_bounds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,     2.5,   5,    10,    30,   60,  300};
#define HTTPMETRICS_BUCKETS (sizeof httpmetrics_bounds / sizeof httpmetrics_bounds[0])

static const char *const httpmetrics_names[HTTPMETRICS_ROUTES] = {
    [HTTPMETRICS_OTHER] = "other",
    [HTTPMETRICS_HEALTH] = "/health",
    [HTTPMETRICS_METRICS] = "/metrics",
    [HTTPMETRICS_JOBS] = "/jobs",
    [HTTPMETRICS_JOB] = "/jobs/{id}",
    [HTTPMETRICS_FILES] = "/jobs/{id}/files",
    [HTTPMETRICS_FILE] = "/jobs/{id}/files/{name}",
    [HTTPMETRICS_EXPIRE] = "/jobs/{id}/expire",
    [HTTPMETRICS_CANCEL] = "/jobs/{id}/cancel",
    [HTTPMETRICS_LOG] = "/jobs/{id}/log",
    [HTTPMETRICS_QUEUES] = "/queues",
    [HTTPMETRICS_UI] = "/ui",
};

typedef struct httpmetrics_status {
    unsigned status; /* 0: the slot is free, or "other" in the last slot */
    uint64_t count;
} httpmetrics_status;

typedef struct httpmetrics_route_stats {
    httpmetrics_status statuses[HTTPMETRICS_STATUSES];
    uint64_t buckets[HTTPMETRICS_BUCKETS]; /* not cumulative here */
    uint64_t count;
    double sum;
} httpmetrics_route_stats;

/* One lock for all: taken once per request, next to the work of a whole
 * HTTP exchange, so there is nothing to gain from atomics here. */
static pthread_mutex_t httpmetrics_lock = PTHREAD_MUTEX_INITIALIZER;
static httpmetrics_route_stats httpmetrics_routes[HTTPMETRICS_ROUTES];
static long httpmetrics_open;

const char *httpmetrics_route_name(httpmetrics_route route)
{
    return route < HTTPMETRICS_ROUTES ? httpmetrics_names[route] : "other";
}

void httpmetrics_request(httpmetrics_route route, unsigned status, double seconds)
{
    if (route >= HTTPMETRICS_ROUTES)
        route = HTTPMETRICS_OTHER;
    if (seconds < 0)
        seconds = 0;
    pthread_mutex_lock(&httpmetrics_lock);
    httpmetrics_route_stats *r = &httpmetrics_routes[route];
    size_t i = 0;
    while (i < HTTPMETRICS_STATUSES - 1 && r->statuses[i].status != 0 &&
           r->statuses[i].status != status)
        i++;
    if (r->statuses[i].count == 0 && i < HTTPMETRICS_STATUSES - 1)
        r->statuses[i].status = status;
    r->statuses[i].count++;
    size_t b = 0;
    while (b < HTTPMETRICS_BUCKETS && seconds > httpmetrics_bounds[b])
        b++;
    if (b < HTTPMETRICS_BUCKETS)
        r->buckets[b]++;
    r->count++;
    r->sum += seconds;
    pthread_mutex_unlock(&httpmetrics_lock);
}

void httpmetrics_connection(int delta)
{
    pthread_mutex_lock(&httpmetrics_lock);
    httpmetrics_open += delta;
    pthread_mutex_unlock(&httpmetrics_lock);
}

typedef struct httpmetrics_out {
    char **buf;
    size_t *len, *cap;
    int failed;
} httpmetrics_out;

static void httpmetrics_add(httpmetrics_out *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void httpmetrics_add(httpmetrics_out *out, const char *fmt, ...)
{
    if (out->failed)
        return;
    for (;;) {
        size_t room = *out->cap - *out->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*out->buf ? *out->buf + *out->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            out->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            *out->len += (size_t)n;
            return;
        }
        size_t cap = *out->cap ? *out->cap : 4096;
        while (cap - *out->len <= (size_t)n)
            cap *= 2;
        char *grown = realloc(*out->buf, cap);
        if (!grown) {
            out->failed = 1;
            return;
        }
        *out->buf = grown;
        *out->cap = cap;
    }
}

int httpmetrics_render(char **buf, size_t *len, size_t *cap)
{
    size_t start = *len;
    httpmetrics_out out = {buf, len, cap, 0};
    pthread_mutex_lock(&httpmetrics_lock);
    httpmetrics_add(&out, "# HELP acp_http_requests_total HTTP requests answered by the server, by "
                          "route pattern and status.\n"
                          "# TYPE acp_http_requests_total counter\n");
    for (int route = 0; route < HTTPMETRICS_ROUTES; route++)
        for (size_t i = 0; i < HTTPMETRICS_STATUSES; i++) {
            const httpmetrics_status *s = &httpmetrics_routes[route].statuses[i];
            if (s->count == 0)
                continue;
            char status[16];
            if (s->status == 0 || i == HTTPMETRICS_STATUSES - 1)
                snprintf(status, sizeof status, "other");
            else
                snprintf(status, sizeof status, "%u", s->status);
            httpmetrics_add(&out, "acp_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                            httpmetrics_names[route], status, (unsigned long long)s->count);
        }
    httpmetrics_add(&out, "# HELP acp_http_request_seconds Time from a request's headers to the "
                          "end of its answer, by route pattern (a followed log lasts as long as "
                          "its job).\n"
                          "# TYPE acp_http_request_seconds histogram\n");
    for (int route = 0; route < HTTPMETRICS_ROUTES; route++) {
        const httpmetrics_route_stats *r = &httpmetrics_routes[route];
        if (r->count == 0)
            continue;
        const char *name = httpmetrics_names[route];
        uint64_t cumulative = 0;
        for (size_t b = 0; b < HTTPMETRICS_BUCKETS; b++) {
            cumulative += r->buckets[b];
            httpmetrics_add(&out, "acp_http_request_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                            name, httpmetrics_bounds[b], (unsigned long long)cumulative);
        }
        httpmetrics_add(&out,
                        "acp_http_request_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                        "acp_http_request_seconds_sum{route=\"%s\"} %.9g\n"
                        "acp_http_request_seconds_count{route=\"%s\"} %llu\n",
                        name, (unsigned long long)r->count, name, r->sum, name,
                        (unsigned long long)r->count);
    }
    httpmetrics_add(&out,
                    "# HELP acp_http_open_connections HTTP connections open now.\n"
                    "# TYPE acp_http_open_connections gauge\n"
                    "acp_http_open_connections %ld\n",
                    httpmetrics_open);
    pthread_mutex_unlock(&httpmetrics_lock);
    if (out.failed) {
        *len = start;
        return -1;
    }
    return 0;
}
