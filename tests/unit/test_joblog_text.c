/* The pure parts of job logs (src/joblog_text.c): UTF-8 repair across
 * writes, cutting text into whole lines, the cap's arithmetic and the
 * marker line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "joblog_buffer.h"
#include "joblog_text.h"

/* Repair the pieces in turn (the last one final); the result as a string. */
static char *repair(const char *const *pieces, const size_t *lens, size_t count)
{
    static char out[256];
    joblog_utf8 state = {0};
    buf b = BUF_INIT;
    for (size_t i = 0; i < count; i++)
        assert_int_equal(joblog_utf8_repair(&state, pieces[i], lens[i], i + 1 == count, &b), 0);
    assert_true(b.len < sizeof out);
    memcpy(out, b.data ? b.data : "", b.len);
    out[b.len] = '\0';
    buf_free(&b);
    return out;
}

static char *repair_one(const char *s)
{
    size_t len = strlen(s);
    return repair(&s, &len, 1);
}

static void valid_utf8_is_kept_as_is(void **state)
{
    (void)state;
    assert_string_equal(repair_one("plain ascii\n"), "plain ascii\n");
    assert_string_equal(repair_one("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

static void invalid_bytes_become_replacement_characters(void **state)
{
    (void)state;
    assert_string_equal(repair_one("a\xff"
                                   "b"),
                        "a" JOBLOG_REPLACEMENT "b");
    assert_string_equal(repair_one("\x80"), JOBLOG_REPLACEMENT);
    /* Overlong, surrogate, beyond U+10FFFF. */
    assert_string_equal(repair_one("\xc0\xaf"), JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT);
    assert_string_equal(repair_one("\xed\xa0\x80"),
                        JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT);
    assert_string_equal(repair_one("\xf4\x90\x80\x80x"),
                        JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT
                        "x");
    /* A sequence cut by the end of the text. */
    assert_string_equal(repair_one("ok\xe2\x82"), "ok" JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT);
}

static void a_sequence_split_across_writes_is_joined(void **state)
{
    (void)state;
    const char *euro[] = {"price: \xe2", "\x82", "\xac\n"};
    size_t euro_lens[] = {8, 1, 2};
    assert_string_equal(repair(euro, euro_lens, 3), "price: \xe2\x82\xac\n");
    /* The carried lead byte turns out invalid: replaced, the rest kept. */
    const char *broken[] = {"x\xe2", "y"};
    size_t broken_lens[] = {2, 1};
    assert_string_equal(repair(broken, broken_lens, 2), "x" JOBLOG_REPLACEMENT "y");
    /* Still cut when the text ends. */
    const char *cut[] = {"\xf0\x9f", "\x98"};
    size_t cut_lens[] = {2, 1};
    assert_string_equal(repair(cut, cut_lens, 2),
                        JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT JOBLOG_REPLACEMENT);
}

static void whole_lines_end_at_the_last_newline(void **state)
{
    (void)state;
    bool newline;
    assert_int_equal(joblog_whole_lines("ab\ncd\nef", 8, 100, &newline), 6);
    assert_false(newline);
    assert_int_equal(joblog_whole_lines("partial", 7, 100, &newline), 0);
    assert_int_equal(joblog_whole_lines("", 0, 100, &newline), 0);
}

static void a_long_line_is_broken_at_a_character_boundary(void **state)
{
    (void)state;
    bool newline;
    assert_int_equal(joblog_whole_lines("abcdefghij", 10, 4, &newline), 4);
    assert_true(newline);
    /* "ab€cd": the cut at 4 would split the euro sign (bytes 2..4). */
    assert_int_equal(joblog_whole_lines("ab\xe2\x82\xac"
                                        "cd",
                                        7, 4, &newline),
                     2);
    assert_true(newline);
    assert_int_equal(joblog_whole_lines("abc", 3, 3, &newline), 0); /* not longer: waits */
}

static void the_cap_is_half_head_half_tail(void **state)
{
    (void)state;
    joblog_cap cap;
    joblog_cap_make(&cap, 1 << 20, 0);
    assert_int_equal(cap.head, 512 << 10);
    assert_int_equal(cap.tail, 512 << 10);
    assert_int_equal(cap.chunk, 128 << 10);
    /* Nothing is dropped while the stream fits. */
    assert_int_equal(joblog_tail_start(&cap, 100), 512 << 10);
    assert_int_equal(joblog_tail_start(&cap, 1 << 20), 512 << 10);
    /* Beyond: the tail keeps the last half. */
    assert_int_equal(joblog_tail_start(&cap, (1 << 20) + 10), (512 << 10) + 10);
    assert_int_equal(joblog_tail_start(&cap, 100u << 20), (100u << 20) - (512 << 10));
    /* A head written by another process's cap is kept; the tail stays at
     * least half of this process's cap. */
    joblog_cap_make(&cap, 64 << 10, 512 << 10);
    assert_int_equal(cap.head, 512 << 10);
    assert_int_equal(cap.tail, 32 << 10);
    joblog_cap_make(&cap, 1 << 20, 8 << 10);
    assert_int_equal(cap.head, 8 << 10);
    assert_int_equal(cap.tail, (1 << 20) - (8 << 10));
}

static void the_marker_names_the_dropped_bytes(void **state)
{
    (void)state;
    char marker[JOBLOG_MARKER_MAX];
    size_t len = joblog_marker(1234, marker);
    assert_int_equal(len, strlen("[... 1234 bytes dropped ...]\n"));
    assert_memory_equal(marker, "[... 1234 bytes dropped ...]\n", len);
    len = joblog_marker(UINT64_MAX, marker);
    assert_int_equal(len, 25 + 20); /* the longest fits */
}

/* A run's buffer as the flusher finds it. */
static void the_buffer_keeps_head_and_latest_whole_lines(void **state)
{
    (void)state;
    joblog_run lr;
    memset(&lr, 0, sizeof lr);
    joblog_cap_make(&lr.cap, 64, 0); /* head 32, tail 32 */
    lr.attempt = 2;
    lr.header_due = true;
    assert_int_equal(joblog_append(&lr, "", 0), 0);
    assert_int_equal(lr.size, 0); /* no text, no header */
    assert_int_equal(joblog_append(&lr, "first\nsecond", 12), 0);
    /* "=== attempt 2 ===\n" (18) + "first\n" (6): all in the head. */
    assert_int_equal(lr.size, 24);
    assert_int_equal(lr.head_pend.len, 24);
    assert_memory_equal(lr.head_pend.data, "=== attempt 2 ===\nfirst\n", 24);
    assert_int_equal(lr.partial.len, 6); /* "second" waits for its end */
    /* The head ends at byte 32 exactly; the rest goes to the tail. */
    assert_int_equal(joblog_append(&lr, " line\n0123456789\nabcdefghij\nlast\n", 33), 0);
    assert_int_equal(lr.head_pend.len, 32);
    assert_memory_equal(lr.head_pend.data + 24, "second l", 8);
    assert_int_equal(lr.tail_pos, 32);
    assert_int_equal(lr.size, 24 + 12 + 11 + 11 + 5);
    /* 63 bytes: the tail may begin at 31 (beyond the head: 32), nothing
     * is dropped yet. */
    joblog_trim_tail(&lr);
    assert_int_equal(lr.tail_pos, 32);
    assert_int_equal(joblog_append(&lr, "0123456789\n0123456789\n", 22), 0);
    /* 85 bytes: the tail may begin at 53, inside "abcdefghij\n" (47..58);
     * it begins on the next line instead. */
    joblog_trim_tail(&lr);
    assert_int_equal(lr.tail_pos, 58);
    assert_memory_equal(lr.tail_pend.data, "last\n0123456789\n0123456789\n", 27);
    /* The end of the attempt: the partial line, ended. */
    assert_int_equal(joblog_append(&lr, "no end", 6), 0);
    assert_int_equal(joblog_end_text(&lr), 0);
    assert_true(lr.ended);
    assert_int_equal(lr.size, 92);
    assert_memory_equal(lr.tail_pend.data + 27, "no end\n", 7);
    buf_free(&lr.partial);
    buf_free(&lr.head_pend);
    buf_free(&lr.tail_pend);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_utf8_is_kept_as_is),
        cmocka_unit_test(invalid_bytes_become_replacement_characters),
        cmocka_unit_test(a_sequence_split_across_writes_is_joined),
        cmocka_unit_test(whole_lines_end_at_the_last_newline),
        cmocka_unit_test(a_long_line_is_broken_at_a_character_boundary),
        cmocka_unit_test(the_cap_is_half_head_half_tail),
        cmocka_unit_test(the_marker_names_the_dropped_bytes),
        cmocka_unit_test(the_buffer_keeps_head_and_latest_whole_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
