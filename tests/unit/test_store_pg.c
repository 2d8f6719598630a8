/* The pure logic of the PostgreSQL store's modules, without a server:
 * pgvalue's parameters, literals and row reading, pgpool's cleaning of
 * libpq messages, and store_jobs' rule that no row means no such job. Rows
 * are built with libpq's own PGresult constructors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "async_platform.h"
#include "buf.h"
#include "pgpool.h"
#include "pgvalue.h"
#include "store.h"
#include "store_jobs.h"

#define WHERE "postgres db.example:5432"

static void assert_error_is(const char *expected)
{
    if (strcmp(acp_last_error(), expected) != 0)
        fail_msg("last error '%s', expected '%s'", acp_last_error(), expected);
}

/* A pool that is never connected: enough for the functions that only name
 * the server in their messages. */
static pgpool *test_pool(void)
{
    static pgpool pool;
    static char where[] = WHERE;
    pool.where = where;
    return &pool;
}

/* A PGresult of @rows rows of @cols text columns; NULL cells are SQL NULL. */
static PGresult *make_result(int cols, int rows, const char *const *cells)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(res);
    PGresAttDesc attrs[32];
    char names[32][16];
    assert_true(cols <= 32);
    for (int c = 0; c < cols; c++) {
        snprintf(names[c], sizeof names[c], "c%d", c);
        attrs[c] = (PGresAttDesc){.name = names[c], .typid = 25, .typlen = -1, .atttypmod = -1};
    }
    assert_int_equal(PQsetResultAttrs(res, cols, attrs), 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const char *cell = cells[r * cols + c];
            char *value = (char *)(cell ? cell : "");
            assert_int_equal(PQsetvalue(res, r, c, value, cell ? (int)strlen(cell) : -1), 1);
        }
    return res;
}

static void text_arrays_keep_every_name_as_data(void **state)
{
    (void)state;
    const char *names[] = {"a,b", "say \"hi\"", "back\\slash", "{}", "NULL", "", " x "};
    buf out = BUF_INIT;
    assert_int_equal(pgvalue_text_array(test_pool(), "insert job", names, 7, &out), 0);
    assert_string_equal(
        out.data, "{\"a,b\",\"say \\\"hi\\\"\",\"back\\\\slash\",\"{}\",\"NULL\",\"\",\" x \"}");
    buf_free(&out);

    buf empty = BUF_INIT;
    assert_int_equal(pgvalue_text_array(test_pool(), "insert job", NULL, 0, &empty), 0);
    assert_string_equal(empty.data, "{}");
    buf_free(&empty);
}

static void text_arrays_refuse_null_names(void **state)
{
    (void)state;
    const char *names[] = {"a", NULL};
    buf out = BUF_INIT;
    assert_int_equal(pgvalue_text_array(test_pool(), "finish job 1", names, 2, &out), ACP_EINVAL);
    assert_error_is(WHERE ": finish job 1: file name 1 is NULL");
    buf_free(&out);
    buf none = BUF_INIT;
    assert_int_equal(pgvalue_text_array(test_pool(), "insert job", NULL, 3, &none), ACP_EINVAL);
    assert_error_is(WHERE ": insert job: NULL file list with 3 entries");
    buf_free(&none);
}

static void id_arrays_are_bytea_literals(void **state)
{
    (void)state;
    acp_job_id ids[2];
    assert_int_equal(acp_job_id_parse(&ids[0], "00112233445566778899aabbccddeeff"), 0);
    assert_int_equal(acp_job_id_parse(&ids[1], "ffeeddccbbaa99887766554433221100"), 0);
    buf out = BUF_INIT;
    assert_int_equal(pgvalue_id_array(ids, 2, &out), 0);
    assert_string_equal(out.data, "{\"\\\\x00112233445566778899aabbccddeeff\","
                                  "\"\\\\xffeeddccbbaa99887766554433221100\"}");
    buf_free(&out);
}

static void times_format_as_utc_with_microseconds(void **state)
{
    (void)state;
    char text[64];
    pgvalue_format_time(INT64_C(981173106000007), text, sizeof text);
    assert_string_equal(text, "2001-02-03 04:05:06.000007 UTC");
    pgvalue_format_time(0, text, sizeof text);
    assert_string_equal(text, "1970-01-01 00:00:00.000000 UTC");
    /* Past year 9999 the calendar form has no room: the raw number. */
    pgvalue_format_time(INT64_C(400000000000000000), text, sizeof text);
    assert_string_equal(text, "400000000000000000 µs");
}

static void times_go_as_binary_timestamptz(void **state)
{
    (void)state;
    pgpool_params p = {0};
    /* The Unix epoch is 946684800 s before PostgreSQL's (2000-01-01). */
    assert_int_equal(pgvalue_param_time(test_pool(), &p, "list jobs", 0), 0);
    assert_int_equal(p.count, 1);
    assert_int_equal(p.formats[0], 1);
    assert_int_equal(p.lengths[0], 8);
    uint64_t expected = (uint64_t)(-INT64_C(946684800000000));
    unsigned char bytes[8];
    for (int i = 7; i >= 0; i--, expected >>= 8)
        bytes[i] = (unsigned char)(expected & 0xff);
    assert_memory_equal(p.values[0], bytes, 8);

    /* PostgreSQL's first day, 4714-11-24 BC, is the earliest it takes. */
    int64_t first = INT64_C(-211813488000000000) + INT64_C(946684800000000);
    assert_int_equal(pgvalue_param_time(test_pool(), &p, "list jobs", first), 0);
    assert_int_equal(p.count, 2);
    assert_int_equal(pgvalue_param_time(test_pool(), &p, "list jobs", first - 1), ACP_EINVAL);
    assert_int_equal(p.count, 2);
    assert_non_null(strstr(acp_last_error(), WHERE ": list jobs: time "));
    assert_non_null(strstr(acp_last_error(), "is before 4714 BC"));
}

static void status_names_round_trip(void **state)
{
    (void)state;
    for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_CANCELLED; s++) {
        const char *name = pgvalue_status_name((acp_job_status)s);
        assert_non_null(name);
        acp_job_status back;
        assert_int_equal(pgvalue_status_parse(name, &back), 0);
        assert_int_equal(back, s);
    }
    assert_string_equal(pgvalue_status_name(ACP_STATUS_IN_PROGRESS), "in-progress");
    assert_string_equal(pgvalue_status_name(ACP_STATUS_CANCELLED), "cancelled");
    acp_job_status unchanged = ACP_STATUS_FAILED;
    assert_int_equal(pgvalue_status_parse("running", &unchanged), -1);
    assert_int_equal(unchanged, ACP_STATUS_FAILED);
    assert_null(pgvalue_status_name((acp_job_status)(ACP_STATUS_CANCELLED + 1)));
}

static void rows_read_into_jobs(void **state)
{
    (void)state;
    const char *cells[] = {"00112233445566778899aabbccddeeff",
                           "failed",
                           "render",
                           "{\"a\":1}",
                           "[\"in.txt\",\"b,c \\\"d\\\"\"]",
                           "981173106000007",
                           "981173107000000",
                           NULL,
                           "981173108000000",
                           "it broke",
                           "3",
                           "native",
                           "{10,9007199254740993}",
                           "[\"out.txt\"]",
                           "{0}",
                           "70",
                           "981173109000000",
                           "5",
                           "30",
                           "250",
                           "8000",
                           "981173110000000",
                           "981173111000000",
                           "1200",
                           "65536",
                           "7",
                           "10",
                           "seven of ten",
                           "981173112000000"};
    PGresult *res = make_result(PGVALUE_JOB_COLUMN_COUNT, 1, cells);
    store_job job;
    store_job_init(&job);
    assert_int_equal(pgvalue_read_job(test_pool(), res, 0, &job), 0);
    char hex[ACP_JOB_ID_STRLEN];
    assert_string_equal(acp_job_id_format(&job.id, hex), "00112233445566778899aabbccddeeff");
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_string_equal(job.queue, "render");
    assert_string_equal(job.config, "{\"a\":1}");
    assert_int_equal(job.input_count, 2);
    assert_string_equal(job.inputs[0], "in.txt");
    assert_string_equal(job.inputs[1], "b,c \"d\"");
    assert_true(job.created == INT64_C(981173106000007));
    assert_true(job.last_accessed == INT64_C(981173107000000));
    assert_true(job.grabbed == 0); /* NULL */
    assert_true(job.finished == INT64_C(981173108000000));
    assert_string_equal(job.message, "it broke");
    assert_int_equal(job.attempts, 3);
    assert_int_equal(job.queue_position, -1);
    assert_int_equal(job.layout, ACP_LAYOUT_NATIVE);
    assert_non_null(job.input_sizes);
    assert_true(job.input_sizes[0] == 10);
    assert_true(job.input_sizes[1] == UINT64_C(9007199254740993)); /* past a double's 2^53 */
    assert_int_equal(job.output_count, 1);
    assert_string_equal(job.outputs[0], "out.txt");
    assert_non_null(job.output_sizes);
    assert_true(job.output_sizes[0] == 0);
    assert_int_equal(job.priority, 70);
    assert_true(job.not_before == INT64_C(981173109000000));
    assert_int_equal(job.max_attempts, 5);
    assert_int_equal(job.timeout_seconds, 30);
    assert_int_equal(job.backoff_base_ms, 250);
    assert_int_equal(job.backoff_max_ms, 8000);
    assert_true(job.cancel_requested == INT64_C(981173110000000));
    assert_true(job.dispatched == INT64_C(981173111000000));
    assert_true(job.log_size == 1200 && job.log_head == 65536);
    assert_true(job.progress_done == 7 && job.progress_total == 10);
    assert_string_equal(job.progress_text, "seven of ten");
    assert_true(job.progress_updated == INT64_C(981173112000000));
    store_job_free(&job);
    assert_null(job.outputs);
    PQclear(res);

    /* A row of before migration 4's columns were filled: lcp, no sizes. */
    cells[11] = "lcp";
    cells[12] = NULL;
    cells[13] = NULL;
    cells[14] = NULL;
    res = make_result(PGVALUE_JOB_COLUMN_COUNT, 1, cells);
    assert_int_equal(pgvalue_read_job(test_pool(), res, 0, &job), 0);
    assert_int_equal(job.layout, ACP_LAYOUT_LCP);
    assert_int_equal(job.input_count, 2);
    assert_null(job.input_sizes);
    assert_null(job.outputs);
    assert_int_equal(job.output_count, 0);
    assert_null(job.output_sizes);
    store_job_free(&job);
    PQclear(res);

    /* No cancellation asked: 0. */
    cells[21] = NULL;
    res = make_result(PGVALUE_JOB_COLUMN_COUNT, 1, cells);
    assert_int_equal(pgvalue_read_job(test_pool(), res, 0, &job), 0);
    assert_true(job.cancel_requested == 0);
    store_job_free(&job);
    PQclear(res);
}

static void sizes_and_layouts_go_as_literals(void **state)
{
    (void)state;
    buf out = BUF_INIT;
    const uint64_t sizes[] = {0, 1, UINT64_C(9223372036854775807)};
    assert_int_equal(pgvalue_size_array(test_pool(), "t", sizes, 3, &out), 0);
    assert_string_equal(out.data, "{0,1,9223372036854775807}");
    buf_free(&out);
    assert_int_equal(pgvalue_size_array(test_pool(), "t", sizes, 0, &out), 0);
    assert_string_equal(out.data, "{}");
    buf_free(&out);
    /* No sizes: SQL NULL, not an empty array. */
    assert_int_equal(pgvalue_size_array(test_pool(), "t", NULL, 3, &out), 0);
    assert_null(out.data);
    const uint64_t huge[] = {5, UINT64_C(9223372036854775808)};
    assert_int_equal(pgvalue_size_array(test_pool(), "t", huge, 2, &out), ACP_EINVAL);
    assert_error_is(WHERE ": t: file size 1 (9223372036854775808) exceeds bigint");
    buf_free(&out);

    assert_string_equal(pgvalue_layout_name(ACP_LAYOUT_NATIVE), "native");
    assert_string_equal(pgvalue_layout_name(ACP_LAYOUT_LCP), "lcp");
    assert_string_equal(pgvalue_layout_name(ACP_LAYOUT_DEFAULT), "lcp");
    assert_null(pgvalue_layout_name((acp_layout)7));
}

/* Reads row 0 of @cells (PGVALUE_JOB_COLUMNS), expecting ACP_EDB. */
static void assert_row_refused(const char *const *cells, const char *message)
{
    PGresult *res = make_result(PGVALUE_JOB_COLUMN_COUNT, 1, cells);
    store_job job;
    store_job_init(&job);
    assert_int_equal(pgvalue_read_job(test_pool(), res, 0, &job), ACP_EDB);
    assert_error_is(message);
    store_job_free(&job);
    PQclear(res);
}

static void rows_with_bad_values_are_refused(void **state)
{
    (void)state;
    const char *cells[] = {"00112233445566778899aabbccddeeff",
                           "queued",
                           "q",
                           NULL,
                           "[]",
                           "1",
                           "1",
                           NULL,
                           NULL,
                           NULL,
                           "0",
                           "lcp",
                           NULL,
                           NULL,
                           NULL,
                           "50",
                           "1",
                           "3",
                           "0",
                           "1000",
                           "300000",
                           NULL,
                           NULL,
                           "0",
                           "0",
                           NULL,
                           NULL,
                           NULL,
                           NULL};
    cells[1] = "running";
    assert_row_refused(cells, WHERE
                       ": job 00112233445566778899aabbccddeeff has an unknown status 'running'");
    cells[1] = "queued";
    cells[4] = "{}";
    assert_row_refused(cells, WHERE ": input_files is not an array: {}");
    cells[4] = "[]";
    cells[0] = "0011";
    assert_row_refused(cells, WHERE ": compute.jobs holds a job_id that is not 16 bytes: 0011");
    cells[0] = "00112233445566778899aabbccddeeff";
    cells[11] = "s3";
    assert_row_refused(cells, WHERE ": compute.jobs holds an unknown layout 's3'");
    cells[11] = "native";
    cells[4] = "[\"a\",\"b\"]";
    cells[12] = "1,2";
    assert_row_refused(cells, WHERE ": input_sizes is 1,2, not an array");
    cells[12] = "{1,-2}";
    assert_row_refused(cells, WHERE ": input_sizes is {1,-2}, not 2 sizes");
    cells[12] = "{1,NULL}";
    assert_row_refused(cells, WHERE ": input_sizes is {1,NULL}, not 2 sizes");
    cells[12] = "{1,x}";
    assert_row_refused(cells, WHERE ": input_sizes is {1,x}, not 2 sizes");
}

/* Sizes left by an earlier run (a library from before migration 4 changed
 * the names and not the sizes) do not match the names: unknown. */
static void sizes_of_other_names_read_as_unknown(void **state)
{
    (void)state;
    const char *cells[] = {"00112233445566778899aabbccddeeff",
                           "complete",
                           "q",
                           NULL,
                           "[\"a\",\"b\"]",
                           "1",
                           "1",
                           "1",
                           "1",
                           NULL,
                           "1",
                           "native",
                           "{1}",
                           NULL,
                           "{7}",
                           "50",
                           "1",
                           "3",
                           "0",
                           "1000",
                           "300000",
                           NULL,
                           NULL,
                           "0",
                           "0",
                           NULL,
                           NULL,
                           NULL,
                           NULL};
    const char *input_sizes[] = {"{1}", "{1,2,3}", "{}"};
    for (size_t i = 0; i < 3; i++) {
        cells[12] = input_sizes[i];
        cells[14] = i == 2 ? "{}" : "{7}";
        PGresult *res = make_result(PGVALUE_JOB_COLUMN_COUNT, 1, cells);
        store_job job;
        store_job_init(&job);
        assert_int_equal(pgvalue_read_job(test_pool(), res, 0, &job), 0);
        assert_int_equal(job.input_count, 2);
        assert_null(job.input_sizes);
        assert_int_equal(job.output_count, 0);
        assert_null(job.output_sizes);
        store_job_free(&job);
        PQclear(res);
    }
}

static void rows_read_into_dispatch_lists(void **state)
{
    (void)state;
    const char *cells[] = {"00112233445566778899aabbccddeeff", "render", "{}", "2", "native",
                           "ffeeddccbbaa99887766554433221100", "audio",  NULL, "0", "lcp"};
    PGresult *res = make_result(5, 2, cells);
    store_dispatch_list list = {0};
    assert_int_equal(pgvalue_read_dispatch_list(test_pool(), res, &list), 0);
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[0].queue, "render");
    assert_string_equal(list.items[0].config, "{}");
    assert_int_equal(list.items[0].failures, 2);
    assert_int_equal(list.items[0].layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(list.items[1].layout, ACP_LAYOUT_LCP);
    assert_string_equal(list.items[1].queue, "audio");
    assert_null(list.items[1].config);
    char hex[ACP_JOB_ID_STRLEN];
    assert_string_equal(acp_job_id_format(&list.items[1].id, hex),
                        "ffeeddccbbaa99887766554433221100");
    store_dispatch_list_free(&list);
    assert_null(list.items);
    PQclear(res);

    /* A layout the library does not know is an error, not a guess. */
    const char *odd[] = {"00112233445566778899aabbccddeeff", "render", "{}", "0", "s4"};
    res = make_result(5, 1, odd);
    assert_int_equal(pgvalue_read_dispatch_list(test_pool(), res, &list), ACP_EDB);
    assert_null(list.items);
    PQclear(res);
}

static void no_row_means_no_such_job(void **state)
{
    (void)state;
    PGresult *none = make_result(3, 0, NULL);
    assert_false(store_jobs_matched(none));
    assert_int_equal(store_jobs_found(test_pool(), "get job 0011", none), ACP_ENOTFOUND);
    assert_error_is(WHERE ": get job 0011: no such job");
    PQclear(none);

    const char *cells[] = {"queued", "q", NULL};
    PGresult *one = make_result(3, 1, cells);
    assert_true(store_jobs_matched(one));
    assert_int_equal(store_jobs_found(test_pool(), "get job 0011", one), 0);
    PQclear(one);
}

static void libpq_messages_are_cleaned_to_one_line(void **state)
{
    (void)state;
    char out[PGPOOL_MESSAGE_MAX];
    pgpool_clean_message("connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  "
                         "password authentication failed for user \"acp\"\n",
                         out, sizeof out);
    assert_string_equal(out, "password authentication failed for user \"acp\"");

    pgpool_clean_message("ERROR:  relation \"x\" does not exist\n\tHINT:  create it first  \n", out,
                         sizeof out);
    assert_string_equal(out, "relation \"x\" does not exist; HINT:  create it first");

    pgpool_clean_message(NULL, out, sizeof out);
    assert_string_equal(out, "unknown libpq error");
    pgpool_clean_message("\n \n", out, sizeof out);
    assert_string_equal(out, "unknown libpq error");

    char small[8];
    pgpool_clean_message("FATAL:  the database system is shutting down\n", small, sizeof small);
    assert_string_equal(small, "the dat");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(text_arrays_keep_every_name_as_data),
        cmocka_unit_test(text_arrays_refuse_null_names),
        cmocka_unit_test(id_arrays_are_bytea_literals),
        cmocka_unit_test(times_format_as_utc_with_microseconds),
        cmocka_unit_test(times_go_as_binary_timestamptz),
        cmocka_unit_test(status_names_round_trip),
        cmocka_unit_test(rows_read_into_jobs),
        cmocka_unit_test(sizes_and_layouts_go_as_literals),
        cmocka_unit_test(sizes_of_other_names_read_as_unknown),
        cmocka_unit_test(rows_with_bad_values_are_refused),
        cmocka_unit_test(rows_read_into_dispatch_lists),
        cmocka_unit_test(no_row_means_no_such_job),
        cmocka_unit_test(libpq_messages_are_cleaned_to_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
