/* The Prometheus text format as metrics_text.c writes it (label and HELP
 * escaping, histograms with cumulative buckets, exact sums) and the
 * registry's counters and histograms updated from many threads at once. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "metrics.h"
#include "metrics_text.h"

static void label_values_are_escaped(void **state)
{
    (void)state;
    buf labels = BUF_INIT;
    assert_int_equal(metrics_text_label(&labels, "queue", "plain"), 0);
    assert_int_equal(metrics_text_label(&labels, "path", "a\\b \"c\"\nd"), 0);
    assert_int_equal(metrics_text_label(&labels, "empty", ""), 0);
    assert_string_equal(labels.data, "queue=\"plain\",path=\"a\\\\b \\\"c\\\"\\nd\",empty=\"\"");
    buf out = BUF_INIT;
    assert_int_equal(metrics_text_u64(&out, "acp_x_total", labels.data, 18446744073709551615u), 0);
    assert_int_equal(metrics_text_u64(&out, "acp_y", NULL, 0), 0);
    assert_int_equal(metrics_text_u64(&out, "acp_z", "", 3), 0);
    assert_string_equal(out.data,
                        "acp_x_total{queue=\"plain\",path=\"a\\\\b \\\"c\\\"\\nd\",empty=\"\"} "
                        "18446744073709551615\nacp_y 0\nacp_z 3\n");
    buf_free(&labels);
    buf_free(&out);
}

static void help_escapes_backslash_and_newline_but_not_quotes(void **state)
{
    (void)state;
    buf out = BUF_INIT;
    assert_int_equal(metrics_text_family(&out, "acp_a_total", "counter", "One \"a\"\\b\nc."), 0);
    assert_string_equal(out.data, "# HELP acp_a_total One \"a\"\\\\b\\nc.\n"
                                  "# TYPE acp_a_total counter\n");
    buf_free(&out);
}

static void histogram_buckets_are_cumulative_with_exact_sum(void **state)
{
    (void)state;
    static const double bounds[] = {0.1, 1, 5};
    metrics_hist h;
    metrics_hist_init(&h, bounds, 3);
    metrics_hist_observe_ns(&h, 50000000);   /* 0.05 s */
    metrics_hist_observe_ns(&h, 100000000);  /* 0.1 s: on a bound, in its bucket */
    metrics_hist_observe_ns(&h, 100000001);  /* just above */
    metrics_hist_observe_ns(&h, 7000000000); /* above every bound */
    metrics_hist_observe_ns(&h, 0);
    buf out = BUF_INIT;
    assert_int_equal(metrics_text_hist(&out, "acp_t_seconds", "queue=\"q\"", &h), 0);
    assert_string_equal(out.data, "acp_t_seconds_bucket{queue=\"q\",le=\"0.1\"} 3\n"
                                  "acp_t_seconds_bucket{queue=\"q\",le=\"1\"} 4\n"
                                  "acp_t_seconds_bucket{queue=\"q\",le=\"5\"} 4\n"
                                  "acp_t_seconds_bucket{queue=\"q\",le=\"+Inf\"} 5\n"
                                  "acp_t_seconds_sum{queue=\"q\"} 7.250000001\n"
                                  "acp_t_seconds_count{queue=\"q\"} 5\n");
    buf_free(&out);

    /* Without labels: le alone, sum and count bare. */
    metrics_hist empty;
    metrics_hist_init(&empty, bounds, 1);
    assert_int_equal(metrics_text_hist(&out, "acp_e_seconds", NULL, &empty), 0);
    assert_string_equal(out.data, "acp_e_seconds_bucket{le=\"0.1\"} 0\n"
                                  "acp_e_seconds_bucket{le=\"+Inf\"} 0\n"
                                  "acp_e_seconds_sum 0.000000000\n"
                                  "acp_e_seconds_count 0\n");
    buf_free(&out);
}

static void bucket_bounds_are_written_as_configured(void **state)
{
    (void)state;
    metrics_hist h;
    metrics_hist_init(&h, metrics_backend_bounds, metrics_backend_bound_count);
    buf out = BUF_INIT;
    assert_int_equal(metrics_text_hist(&out, "acp_b_seconds", NULL, &h), 0);
    assert_non_null(strstr(out.data, "le=\"0.0005\"} 0\n"));
    assert_non_null(strstr(out.data, "le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(out.data, "le=\"10\"} 0\n"));
    buf_free(&out);
    metrics_hist_init(&h, metrics_job_bounds, metrics_job_bound_count);
    assert_int_equal(metrics_text_hist(&out, "acp_j_seconds", NULL, &h), 0);
    /* Upstream's queue_time buckets. */
    const char *expected[] = {"0.1", "0.5", "1",   "5",    "10",   "30",   "60",    "180",
                              "300", "600", "900", "1800", "3600", "7200", "18000", "+Inf"};
    const char *at = out.data;
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        char le[32];
        snprintf(le, sizeof le, "le=\"%s\"}", expected[i]);
        const char *found = strstr(at, le);
        if (!found)
            fail_msg("no bucket %s after the previous one in:\n%s", le, out.data);
        at = found;
    }
    buf_free(&out);
}

/* ---- the registry ----------------------------------------------------- */

static void queues_are_served_then_added_up_to_the_limit(void **state)
{
    (void)state;
    const char *names[] = {"a", "b"};
    metrics *m = metrics_create(names, 2);
    assert_non_null(m);
    assert_ptr_equal(metrics_queue_at(m, 1), metrics_queue_named(m, "b"));
    assert_null(metrics_queue_at(m, 2));
    metrics_queue *other = metrics_queue_named(m, "c");
    assert_non_null(other);
    assert_false(other->served);
    assert_ptr_equal(metrics_queue_named(m, "c"), other);
    char name[16];
    for (int i = 1; i < METRICS_OTHER_QUEUES; i++) {
        snprintf(name, sizeof name, "x%d", i);
        assert_non_null(metrics_queue_named(m, name));
    }
    assert_null(metrics_queue_named(m, "one-too-many"));
    metrics_job_named(m, "one-too-many", METRICS_FAILED); /* dropped, no harm */
    metrics_job_named(m, "c", METRICS_FAILED);
    assert_int_equal(atomic_load(&other->jobs[METRICS_FAILED]), 1);
    /* NULL registries and backends are fine everywhere. */
    assert_null(metrics_queue_named(NULL, "a"));
    metrics_job_named(NULL, "a", METRICS_FAILED);
    metrics_backend_done(NULL, 0, true, 1);
    metrics_backend_reconnect(NULL);
    metrics_free(NULL);
    metrics_free(m);
}

#define THREADS 8
#define ROUNDS  20000

typedef struct hammer {
    metrics *m;
    int index;
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    char name[16];
    snprintf(name, sizeof name, "other%d", h->index % 3);
    metrics_backend *sql = metrics_backend_of(h->m, METRICS_SQL);
    for (int i = 0; i < ROUNDS; i++) {
        metrics_job(metrics_queue_at(h->m, 0), METRICS_STARTED);
        metrics_job_named(h->m, name, METRICS_REQUEUED);
        metrics_hist_observe_ns(&metrics_queue_at(h->m, 0)->run, (uint64_t)(i % 3) * 1000000000u);
        metrics_backend_done(sql, METRICS_SQL_STATEMENT, i % 10 == 0, metrics_now_ns());
    }
    return NULL;
}

static void counters_are_exact_under_many_threads(void **state)
{
    (void)state;
    const char *names[] = {"q"};
    metrics *m = metrics_create(names, 1);
    assert_non_null(m);
    pthread_t threads[THREADS];
    hammer args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (hammer){m, i};
        assert_int_equal(pthread_create(&threads[i], NULL, hammer_main, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    metrics_queue *q = metrics_queue_at(m, 0);
    assert_int_equal(atomic_load(&q->jobs[METRICS_STARTED]), THREADS * ROUNDS);
    uint64_t requeued = 0;
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "other%d", i);
        requeued += atomic_load(&metrics_queue_named(m, name)->jobs[METRICS_REQUEUED]);
    }
    assert_int_equal(requeued, THREADS * ROUNDS);
    assert_int_equal(atomic_load(&m->count), 4); /* each other queue added once */
    buf out = BUF_INIT;
    assert_int_equal(metrics_text_hist(&out, "acp_r_seconds", NULL, &q->run), 0);
    char expected[64];
    snprintf(expected, sizeof expected, "acp_r_seconds_count %d\n", THREADS * ROUNDS);
    assert_non_null(strstr(out.data, expected));
    buf_free(&out);
    metrics_backend *sql = metrics_backend_of(m, METRICS_SQL);
    assert_int_equal(atomic_load(&sql->requests[0]), THREADS * ROUNDS);
    assert_int_equal(atomic_load(&sql->errors[0]), THREADS * ROUNDS / 10);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(help_escapes_backslash_and_newline_but_not_quotes),
        cmocka_unit_test(histogram_buckets_are_cumulative_with_exact_sum),
        cmocka_unit_test(bucket_bounds_are_written_as_configured),
        cmocka_unit_test(queues_are_served_then_added_up_to_the_limit),
        cmocka_unit_test(counters_are_exact_under_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
