/* acp-bench-metrics: what the metrics hooks of the hot paths cost, per call
 * (docs/performance.adoc, "Metrics and logging"): a request timed and
 * counted (two CLOCK_MONOTONIC readings, the counters, the histogram), a
 * job counter found by queue name, one histogram observation. One thread,
 * so it is the cost without contention on the cache lines. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "metrics.h"

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 10000000;
    if (n <= 0) {
        fprintf(stderr, "usage: acp-bench-metrics [CALLS]\n");
        return 2;
    }
    const char *names[] = {"bench-queue-a", "bench-queue-b"};
    metrics *m = metrics_create(names, 2);
    if (!m)
        return 1;
    metrics_backend *sql = metrics_backend_of(m, METRICS_SQL);
    double t0 = seconds();
    for (long i = 0; i < n; i++)
        metrics_backend_done(sql, METRICS_SQL_STATEMENT, false, metrics_now_ns());
    double t1 = seconds();
    for (long i = 0; i < n; i++)
        metrics_job_named(m, "bench-queue-b", METRICS_SUCCEEDED);
    double t2 = seconds();
    for (long i = 0; i < n; i++)
        metrics_hist_observe_ns(&metrics_queue_at(m, 0)->run, (uint64_t)i * 1000u);
    double t3 = seconds();
    printf("request timed and counted: %.1f ns\n", (t1 - t0) / (double)n * 1e9);
    printf("job counter by queue name: %.1f ns\n", (t2 - t1) / (double)n * 1e9);
    printf("histogram observation:     %.1f ns\n", (t3 - t2) / (double)n * 1e9);
    metrics_free(m);
    return 0;
}
