/* The Prometheus text exposition format (version 0.0.4), written into a
 * buf: metric families with their HELP and TYPE lines, label sets with
 * escaped values, samples and histograms. Lock-free histograms live here
 * too, since only this format reads them. Pure: unit tests drive it
 * directly. */
#ifndef ACP_METRICS_TEXT_H
#define ACP_METRICS_TEXT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* buf.h: not included, its name would shadow the includers' variables. */
struct buf;

/* Finite bucket bounds a histogram may have (+Inf comes on top). */
#define METRICS_HIST_BOUNDS_MAX 20

/* A histogram of durations, updated from any thread without a lock: each
 * observation adds to one bucket (not cumulative: the writer sums them)
 * and to the sum. A scrape may see an observation's bucket without its
 * sum, never a count that goes down. */
typedef struct metrics_hist {
    const double *bounds; /* upper bounds in seconds, ascending; borrowed */
    size_t bound_count;
    uint64_t bound_ns[METRICS_HIST_BOUNDS_MAX];
    atomic_uint_least64_t buckets[METRICS_HIST_BOUNDS_MAX + 1]; /* the last: above all */
    atomic_uint_least64_t sum_ns;
} metrics_hist;

/* Upstream's queue_time buckets, for job wait and run times. */
extern const double metrics_job_bounds[];
extern const size_t metrics_job_bound_count;
/* Backend requests: 0.5 ms to 10 s. */
extern const double metrics_backend_bounds[];
extern const size_t metrics_backend_bound_count;

/* Empty, with @bounds (at most METRICS_HIST_BOUNDS_MAX, kept by pointer). */
void metrics_hist_init(metrics_hist *h, const double *bounds, size_t count);
void metrics_hist_observe_ns(metrics_hist *h, uint64_t ns);

/* "# HELP <name> <help>\n# TYPE <name> <type>\n", the help text escaped. */
int metrics_text_family(struct buf *out, const char *name, const char *type, const char *help);

/* Appends one label, name="value" (the value escaped: backslash, double
 * quote, newline), to a label set being built in @labels, a comma before
 * it unless it is the first. */
int metrics_text_label(struct buf *labels, const char *name, const char *value);

/* "<name>{<labels>} <value>\n" ({} left out when @labels is NULL or ""). */
int metrics_text_u64(struct buf *out, const char *name, const char *labels, uint64_t value);
int metrics_text_double(struct buf *out, const char *name, const char *labels, double value);

/* The samples of one histogram: <name>_bucket with cumulative counts and
 * le="..." after @labels, <name>_sum in seconds, <name>_count. */
int metrics_text_hist(struct buf *out, const char *name, const char *labels, const metrics_hist *h);

#endif
