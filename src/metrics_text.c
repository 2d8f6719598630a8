/* The Prometheus text format and lock-free histograms: see metrics_text.h. */
#include "metrics_text.h"

#include "buf.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

const double metrics_job_bounds[] = {0.1, 0.5, 1,   5,    10,   30,   60,   180,
                                     300, 600, 900, 1800, 3600, 7200, 18000};
const size_t metrics_job_bound_count = sizeof metrics_job_bounds / sizeof metrics_job_bounds[0];
const double metrics_backend_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t metrics_backend_bound_count =
    sizeof metrics_backend_bounds / sizeof metrics_backend_bounds[0];

void metrics_hist_init(metrics_hist *h, const double *bounds, size_t count)
{
    if (count > METRICS_HIST_BOUNDS_MAX)
        count = METRICS_HIST_BOUNDS_MAX;
    h->bounds = bounds;
    h->bound_count = count;
    for (size_t i = 0; i < count; i++)
        h->bound_ns[i] = (uint64_t)llround(bounds[i] * 1e9);
    for (size_t i = 0; i <= METRICS_HIST_BOUNDS_MAX; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum_ns, 0);
}

void metrics_hist_observe_ns(metrics_hist *h, uint64_t ns)
{
    /* le is "less than or equal": a value on a bound counts in its bucket. */
    size_t i = 0;
    while (i < h->bound_count && ns > h->bound_ns[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/* HELP text escapes backslash and newline; label values also the quote. */
static int metrics_text_escaped(buf *out, const char *s, bool quote)
{
    for (const char *run = s;; s++) {
        const char *esc = *s == '\\'           ? "\\\\"
                          : *s == '\n'         ? "\\n"
                          : quote && *s == '"' ? "\\\""
                                               : NULL;
        if (!esc && *s)
            continue;
        int rc = buf_append(out, run, (size_t)(s - run));
        if (!rc && esc)
            rc = buf_puts(out, esc);
        if (rc || !*s)
            return rc;
        run = s + 1;
    }
}

int metrics_text_family(buf *out, const char *name, const char *type, const char *help)
{
    int rc = buf_printf(out, "# HELP %s ", name);
    if (!rc)
        rc = metrics_text_escaped(out, help, false);
    if (!rc)
        rc = buf_printf(out, "\n# TYPE %s %s\n", name, type);
    return rc;
}

int metrics_text_label(buf *labels, const char *name, const char *value)
{
    int rc = buf_printf(labels, "%s%s=\"", labels->len ? "," : "", name);
    if (!rc)
        rc = metrics_text_escaped(labels, value, true);
    if (!rc)
        rc = buf_puts(labels, "\"");
    return rc;
}

static int metrics_text_name(buf *out, const char *name, const char *labels)
{
    if (labels && *labels)
        return buf_printf(out, "%s{%s} ", name, labels);
    return buf_printf(out, "%s ", name);
}

int metrics_text_u64(buf *out, const char *name, const char *labels, uint64_t value)
{
    int rc = metrics_text_name(out, name, labels);
    return rc ? rc : buf_printf(out, "%" PRIu64 "\n", value);
}

int metrics_text_double(buf *out, const char *name, const char *labels, double value)
{
    int rc = metrics_text_name(out, name, labels);
    return rc ? rc : buf_printf(out, "%.17g\n", value);
}

int metrics_text_hist(buf *out, const char *name, const char *labels, const metrics_hist *h)
{
    const char *sep = labels && *labels ? "," : "";
    if (!labels)
        labels = "";
    uint64_t total = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i <= h->bound_count; i++) {
        total += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->bound_count)
            rc = buf_printf(out, "%s_bucket{%s%sle=\"%.6g\"} %" PRIu64 "\n", name, labels, sep,
                            h->bounds[i], total);
        else
            rc = buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep,
                            total);
    }
    /* Nanoseconds printed as exact decimal seconds. */
    uint64_t sum = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    if (!rc)
        rc = buf_printf(out, "%s_sum%s%s%s %" PRIu64 ".%09" PRIu64 "\n", name, *labels ? "{" : "",
                        labels, *labels ? "}" : "", sum / 1000000000u, sum % 1000000000u);
    if (!rc)
        rc = buf_printf(out, "%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
                        *labels ? "}" : "", total);
    return rc;
}
