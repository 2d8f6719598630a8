/* Unit tests of the example server's log and metrics parts that need no
 * services: the query values of GET /jobs/{id}/log, the Server-Sent Events
 * it writes, the command executor's output splitting (files exact, whole
 * lines into the log, the file limit) and the rendering of the server's own
 * HTTP metrics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmdout.h"
#include "httpmetrics.h"
#include "logs.h"

/* ---- query values --------------------------------------------------------- */

static void offsets_are_decimal_and_fit_64_bits(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(logs_parse_offset("0", &v), 0);
    assert_true(v == 0);
    assert_int_equal(logs_parse_offset("12345", &v), 0);
    assert_true(v == 12345);
    assert_int_equal(logs_parse_offset("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    const char *bad[] = {"",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "0x10",
                         "1e3",
                         "abc",
                         "18446744073709551616",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(logs_parse_offset(bad[i], &v), -1);
        assert_true(v == 7); /* untouched */
    }
    assert_int_equal(logs_parse_offset(NULL, &v), -1);
}

static void follow_is_a_boolean(void **state)
{
    (void)state;
    assert_int_equal(logs_parse_follow("1"), 1);
    assert_int_equal(logs_parse_follow("true"), 1);
    assert_int_equal(logs_parse_follow("0"), 0);
    assert_int_equal(logs_parse_follow("false"), 0);
    assert_int_equal(logs_parse_follow("2"), -1);
    assert_int_equal(logs_parse_follow("yes"), -1);
    assert_int_equal(logs_parse_follow(""), -1);
    assert_int_equal(logs_parse_follow(NULL), -1);
}

/* ---- Server-Sent Events --------------------------------------------------- */

static void assert_event(const char *text, uint64_t next, const char *expected)
{
    logs_buf out = {NULL, 0, 0};
    assert_int_equal(logs_sse_event(&out, text, strlen(text), next), 0);
    assert_int_equal(out.len, strlen(expected));
    assert_memory_equal(out.data, expected, out.len);
    free(out.data);
}

static void an_event_is_one_data_line_per_log_line_and_the_offset_as_id(void **state)
{
    (void)state;
    assert_event("one\ntwo\n", 8, "data: one\ndata: two\nid: 8\n\n");
    /* An empty line stays a line; a last line without newline is one. */
    assert_event("a\n\nb", 4, "data: a\ndata: \ndata: b\nid: 4\n\n");
    /* CR and CRLF end lines as they do for an EventSource, so that a CR in
     * the text cannot end the field early and start a forged one. */
    assert_event("x\r\ny\rid: 9\n", 11, "data: x\ndata: y\ndata: id: 9\nid: 11\n\n");
    /* No text (the offset moved over a dropped region): the id alone. */
    assert_event("", 99, "id: 99\n\n");
    logs_buf out = {NULL, 0, 0};
    assert_int_equal(logs_sse_event(&out, "a\n", 2, 2), 0);
    assert_int_equal(logs_sse_event(&out, "b\n", 2, 4), 0);
    const char both[] = "data: a\nid: 2\n\ndata: b\nid: 4\n\n";
    assert_int_equal(out.len, sizeof both - 1);
    assert_memory_equal(out.data, both, out.len);
    free(out.data);
}

/* ---- the command executor's output ---------------------------------------- */

typedef struct log_capture {
    char data[4 * CMDOUT_LINE_MAX];
    size_t len;
    size_t calls;
} log_capture;

static int capture_log(void *userdata, const void *data, size_t len)
{
    log_capture *c = userdata;
    assert_true(c->len + len <= sizeof c->data);
    memcpy(c->data + c->len, data, len);
    c->len += len;
    c->calls++;
    return 0;
}

/* A temporary file's descriptor (already unlinked), and its contents. */
static int temp_file(void)
{
    char path[] = "/tmp/acp-cmdout-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static size_t file_contents(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap, 0);
    assert_true(n >= 0);
    return (size_t)n;
}

static void lines_of_both_streams_interleave_whole(void **state)
{
    (void)state;
    static log_capture log;
    memset(&log, 0, sizeof log);
    int out_file = temp_file(), err_file = temp_file();
    int keep_out = dup(out_file), keep_err = dup(err_file);
    cmdout o;
    assert_int_equal(cmdout_init(&o, -1, -1, out_file, err_file, 0, capture_log, &log), 0);
    cmdout_take(&o, 0, "out one\nout t", 13);
    cmdout_take(&o, 1, "err one\n", 8);
    cmdout_take(&o, 0, "wo\n", 3);
    cmdout_take(&o, 1, "err two, no newline", 19);
    cmdout_take(&o, 0, "out three\n", 10);
    const char *name = NULL;
    assert_int_equal(cmdout_over(&o, &name), 0);
    cmdout_finish(&o);
    const char expected[] = "out one\nerr one\nout two\nout three\nerr two, no newline\n";
    assert_int_equal(log.len, sizeof expected - 1);
    assert_memory_equal(log.data, expected, log.len);
    assert_int_equal(cmdout_write_error(&o, &name), 0);

    /* The files have the bytes exactly as written (no newline added). */
    char buf[256];
    size_t n = file_contents(keep_out, buf, sizeof buf);
    assert_int_equal(n, 26);
    assert_memory_equal(buf, "out one\nout two\nout three\n", n);
    n = file_contents(keep_err, buf, sizeof buf);
    assert_int_equal(n, 27);
    assert_memory_equal(buf, "err one\nerr two, no newline", n);
    close(keep_out);
    close(keep_err);
}

static void a_line_longer_than_the_limit_is_broken(void **state)
{
    (void)state;
    static log_capture log;
    memset(&log, 0, sizeof log);
    cmdout o;
    assert_int_equal(cmdout_init(&o, -1, -1, -1, -1, 0, capture_log, &log), 0);
    static char xs[CMDOUT_LINE_MAX];
    memset(xs, 'x', sizeof xs);
    cmdout_take(&o, 0, xs, 1000);
    cmdout_take(&o, 1, "e\n", 2);
    /* The start of the line fills the buffer: out it goes, broken there. */
    cmdout_take(&o, 0, xs, sizeof xs);
    assert_int_equal(log.len, 2 + CMDOUT_LINE_MAX + 1);
    cmdout_take(&o, 0, "\n", 1);
    cmdout_finish(&o);
    assert_int_equal(log.len, 2 + CMDOUT_LINE_MAX + 1 + 1000 + 1);
    assert_memory_equal(log.data, "e\n", 2);
    assert_memory_equal(log.data + 2, xs, CMDOUT_LINE_MAX);
    assert_int_equal(log.data[2 + CMDOUT_LINE_MAX], '\n');
    assert_memory_equal(log.data + 2 + CMDOUT_LINE_MAX + 1, xs, 1000);
    assert_int_equal(log.data[log.len - 1], '\n');
}

static void a_file_stops_at_the_limit_and_says_so(void **state)
{
    (void)state;
    static log_capture log;
    memset(&log, 0, sizeof log);
    int out_file = temp_file();
    int keep = dup(out_file);
    cmdout o;
    assert_int_equal(cmdout_init(&o, -1, -1, out_file, -1, 10, capture_log, &log), 0);
    cmdout_take(&o, 0, "12345\n", 6);
    const char *name = NULL;
    assert_int_equal(cmdout_over(&o, &name), 0);
    cmdout_take(&o, 0, "67890\nabc\n", 10);
    assert_int_equal(cmdout_over(&o, &name), 1);
    assert_string_equal(name, "stdout.txt");
    cmdout_finish(&o);
    char buf[64];
    size_t n = file_contents(keep, buf, sizeof buf);
    assert_int_equal(n, 10);
    assert_memory_equal(buf, "12345\n6789", 10);
    close(keep);
}

static void pipes_are_read_to_their_end(void **state)
{
    (void)state;
    static log_capture log;
    memset(&log, 0, sizeof log);
    int out_pipe[2], err_pipe[2];
    assert_int_equal(pipe(out_pipe), 0);
    assert_int_equal(pipe(err_pipe), 0);
    cmdout o;
    assert_int_equal(cmdout_init(&o, out_pipe[0], err_pipe[0], -1, -1, 0, capture_log, &log), 0);
    assert_int_equal(write(out_pipe[1], "hello\nwor", 9), 9);
    assert_int_equal(write(err_pipe[1], "oops\n", 5), 5);
    close(err_pipe[1]);
    short ready[2] = {1, 1};
    cmdout_pump(&o, ready);
    assert_int_equal(cmdout_open(&o), 1);
    short err_only[2] = {0, 1};
    cmdout_pump(&o, err_only); /* stderr at its end: closed */
    int fds[2];
    cmdout_poll_fds(&o, fds);
    assert_true(fds[0] >= 0);
    assert_int_equal(fds[1], -1);
    assert_int_equal(write(out_pipe[1], "ld\n", 3), 3);
    close(out_pipe[1]);
    short out_only[2] = {1, 0};
    cmdout_pump(&o, out_only);
    cmdout_pump(&o, out_only);
    assert_int_equal(cmdout_open(&o), 0);
    cmdout_finish(&o);
    const char expected[] = "hello\noops\nworld\n";
    assert_int_equal(log.len, sizeof expected - 1);
    assert_memory_equal(log.data, expected, log.len);
}

/* ---- the server's HTTP metrics -------------------------------------------- */

static char *render(void)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(httpmetrics_render(&buf, &len, &cap), 0);
    assert_true(len < cap);
    buf[len] = '\0';
    return buf;
}

static void http_metrics_count_by_route_pattern_with_cumulative_buckets(void **state)
{
    (void)state;
    httpmetrics_request(HTTPMETRICS_LOG, 200, 0.003);
    httpmetrics_request(HTTPMETRICS_LOG, 200, 0.7);
    httpmetrics_request(HTTPMETRICS_LOG, 404, 0.0001);
    httpmetrics_request(HTTPMETRICS_OTHER, 404, 0.001);
    httpmetrics_connection(1);
    httpmetrics_connection(1);
    httpmetrics_connection(-1);
    char *text = render();
    assert_non_null(strstr(text, "# TYPE acp_http_requests_total counter\n"));
    assert_non_null(
        strstr(text, "acp_http_requests_total{route=\"/jobs/{id}/log\",status=\"200\"} 2\n"));
    assert_non_null(
        strstr(text, "acp_http_requests_total{route=\"/jobs/{id}/log\",status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "acp_http_requests_total{route=\"other\",status=\"404\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE acp_http_request_seconds histogram\n"));
    /* Cumulative: 0.0001 and 0.003 are under 0.005, 0.7 only from 1 on. */
    assert_non_null(
        strstr(text, "acp_http_request_seconds_bucket{route=\"/jobs/{id}/log\",le=\"0.001\"} 1\n"));
    assert_non_null(
        strstr(text, "acp_http_request_seconds_bucket{route=\"/jobs/{id}/log\",le=\"0.005\"} 2\n"));
    assert_non_null(
        strstr(text, "acp_http_request_seconds_bucket{route=\"/jobs/{id}/log\",le=\"0.5\"} 2\n"));
    assert_non_null(
        strstr(text, "acp_http_request_seconds_bucket{route=\"/jobs/{id}/log\",le=\"1\"} 3\n"));
    assert_non_null(
        strstr(text, "acp_http_request_seconds_bucket{route=\"/jobs/{id}/log\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "acp_http_request_seconds_count{route=\"/jobs/{id}/log\"} 3\n"));
    assert_non_null(
        strstr(text, "acp_http_request_seconds_sum{route=\"/jobs/{id}/log\"} 0.7031\n"));
    /* Routes nobody asked for have no samples. */
    assert_null(strstr(text, "route=\"/jobs/{id}/cancel\""));
    assert_non_null(strstr(text, "# TYPE acp_http_open_connections gauge\n"
                                 "acp_http_open_connections 1\n"));
    free(text);
    httpmetrics_connection(-1);

    /* Appended after what the buffer holds (the library's text). */
    char *buf = strdup("acp_build_info{version=\"x\"} 1\n");
    size_t len = strlen(buf), cap = len + 1;
    assert_int_equal(httpmetrics_render(&buf, &len, &cap), 0);
    assert_memory_equal(buf, "acp_build_info{version=\"x\"} 1\n# HELP acp_http_requests_total", 60);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(offsets_are_decimal_and_fit_64_bits),
        cmocka_unit_test(follow_is_a_boolean),
        cmocka_unit_test(an_event_is_one_data_line_per_log_line_and_the_offset_as_id),
        cmocka_unit_test(lines_of_both_streams_interleave_whole),
        cmocka_unit_test(a_line_longer_than_the_limit_is_broken),
        cmocka_unit_test(a_file_stops_at_the_limit_and_says_so),
        cmocka_unit_test(pipes_are_read_to_their_end),
        cmocka_unit_test(http_metrics_count_by_route_pattern_with_cumulative_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
