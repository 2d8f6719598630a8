/* The compact JSON writer must match Jackson's JsonNode.toString() byte for
 * byte, since job ids are derived from it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "json.h"

static void assert_compact(const char *input, const char *expected)
{
    json_object *value;
    buf out = BUF_INIT;
    if (json_parse(input, strlen(input), "test", &value) != 0)
        fail_msg("'%s' rejected: %s", input, acp_last_error());
    assert_int_equal(json_write_compact(&out, value), 0);
    json_object_put(value);
    if (strcmp(out.data, expected) != 0)
        fail_msg("'%s' wrote '%s', expected '%s'", input, out.data, expected);
    buf_free(&out);
}

static void doubles_follow_java_double_to_string(void **state)
{
    (void)state;
    assert_compact("1.0", "1.0");
    assert_compact("2.50", "2.5");
    assert_compact("-3.25", "-3.25");
    assert_compact("0.001", "0.001");
    assert_compact("0.0001", "1.0E-4");
    assert_compact("1e7", "1.0E7");
    assert_compact("9999999.0", "9999999.0");
    assert_compact("12345678.9", "1.23456789E7");
    assert_compact("100e0", "100.0");
    assert_compact("0.1", "0.1");
    assert_compact("[0.30000000000000004]", "[0.30000000000000004]");
    assert_compact("1.5e300", "1.5E300");
    assert_compact("-2.5E-10", "-2.5E-10");
    assert_compact("0.0", "0.0");
    assert_compact("-0.0", "-0.0");
    assert_compact("123456.789", "123456.789");
    /* Java writes at least two digits, and when the shortest decimal has
     * one, the two-digit decimal closest to the value: for the smallest
     * double that is 4.9E-324, not 5.0E-324. */
    assert_compact("4.9E-324", "4.9E-324");
    assert_compact("5e-324", "4.9E-324");
    assert_compact("1e23", "1.0E23");
    assert_compact("2e-3", "0.002");
    assert_compact("3e10", "3.0E10");
}

static void integers_and_literals(void **state)
{
    (void)state;
    assert_compact("0", "0");
    assert_compact("-17", "-17");
    assert_compact("9223372036854775807", "9223372036854775807");
    assert_compact("-9223372036854775808", "-9223372036854775808");
    assert_compact("18446744073709551615", "18446744073709551615");
    assert_compact("[true,false,null]", "[true,false,null]");
    assert_compact("{}", "{}");
    assert_compact("[]", "[]");
}

static void strings_use_jacksons_escapes(void **state)
{
    (void)state;
    assert_compact("\"a/b\"", "\"a/b\"");
    assert_compact("[\"it's\",\"q\\\"'\"]", "[\"it's\",\"q\\\"'\"]");
    assert_compact("\"\\/\"", "\"/\"");
    assert_compact("\"q\\\"b\\\\\"", "\"q\\\"b\\\\\"");
    assert_compact("\"\\b\\f\\n\\r\\t\"", "\"\\b\\f\\n\\r\\t\"");
    assert_compact("\"\\u0000x\\u001f\\u007f\"", "\"\\u0000x\\u001F\x7f\"");
    assert_compact("\"\\u00e9\\u2766\"", "\"\xc3\xa9\xe2\x9d\xa6\"");
    assert_compact("\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\"");
}

static void objects_keep_member_order(void **state)
{
    (void)state;
    assert_compact("{ \"z\" : 1, \"a\" : { \"y\" : [ 1, { } ], \"b\" : \"\" } }",
                   "{\"z\":1,\"a\":{\"y\":[1,{}],\"b\":\"\"}}");
    /* A repeated member keeps its first position and its last value, as in Jackson. */
    assert_compact("{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
}

static void parse_reports_position(void **state)
{
    (void)state;
    json_object *value = (json_object *)1;
    assert_int_equal(json_parse("[1, 2", 5, "body", &value), ACP_EINVAL);
    assert_null(value);
    assert_non_null(strstr(acp_last_error(), "body: invalid JSON: unexpected end of input"));
    assert_int_equal(json_parse("[1 2]", 5, "body", &value), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "at byte 3"));
    assert_int_equal(json_parse("{\"a\":1}\0x", 9, "body", &value), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "NUL byte at byte 7"));
    assert_int_equal(json_parse("null", 4, "body", &value), 0);
    assert_null(value);
}

static void only_strict_json_is_accepted(void **state)
{
    (void)state;
    const char *bad[][2] = {
        {"NaN", "unexpected character at byte 0"},
        {"[Infinity]", "unexpected character at byte 1"},
        {"-Infinity", "a number needs digits at byte 1"},
        {"1.", "unexpected end of input"},
        {"[1.]", "digits after '.' at byte 3"},
        {".5", "unexpected character at byte 0"},
        {"01", "unexpected data after the value at byte 1"},
        {"+1", "unexpected character at byte 0"},
        {"1e", "unexpected end of input"},
        {"[1e+]", "digits in its exponent at byte 4"},
        {"\"a\x01b\"", "control character in a string at byte 2"},
        {"\"tab\there\"", "control character in a string at byte 4"},
        {"\"\\q\"", "invalid escape in a string at byte 2"},
        {"\"\\u12\"", "invalid \\u escape in a string at byte 5"},
        {"[1,]", "unexpected character at byte 3"},
        {"{\"a\":1,}", "expected a member name at byte 7"},
        {"{\"a\" 1}", "expected ':' at byte 5"},
        {"{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7"},
        {"[1 2]", "expected ',' or ']' at byte 3"},
        {"tru", "unexpected character at byte 0"},
        {"{'a':1}", "single quote at byte 1"},
        {"['a']", "single quote at byte 1"},
        {"\"open", "unexpected end of input"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object *value;
        assert_int_equal(json_parse(bad[i][0], strlen(bad[i][0]), "t", &value), ACP_EINVAL);
        if (!strstr(acp_last_error(), bad[i][1]))
            fail_msg("'%s': '%s' lacks '%s'", bad[i][0], acp_last_error(), bad[i][1]);
    }
    const char *good[] = {"-0",
                          "1e5",
                          "1E+5",
                          "0.5e-3",
                          "\"\\u00e9\\/\\\"\"",
                          " [ ] ",
                          "{ }",
                          "[true,false,null,{\"a\":[{}]}]"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_object *value;
        if (json_parse(good[i], strlen(good[i]), "t", &value) != 0)
            fail_msg("'%s' rejected: %s", good[i], acp_last_error());
        json_object_put(value);
    }
}

/* What acp_submit does with a config: compact it (and derive the id). */
static int submit_check(const char *config)
{
    buf out = BUF_INIT;
    int rc = json_compact_text(config, "submission.config", &out);
    buf_free(&out);
    acp_job_id id;
    if (acp_job_id_from_config(&id, config) != rc)
        fail_msg("'%s': acp_job_id_from_config disagrees with the submit check", config);
    return rc;
}

static void assert_submit_rejects(const char *config, const char *problem)
{
    if (submit_check(config) != ACP_EINVAL)
        fail_msg("'%s' accepted", config);
    if (!strstr(acp_last_error(), problem))
        fail_msg("'%s': '%s' lacks '%s'", config, acp_last_error(), problem);
}

/* Point 13: nothing submit accepts may be rewritten on the way or be
 * impossible to put into a job message. */
static void config_valid_at_submit_rejects_unrepresentable_numbers(void **state)
{
    (void)state;
    assert_submit_rejects("1e400", "out of range at byte 0");
    assert_submit_rejects("{\"a\":-1e400}", "out of range at byte 5");
    assert_submit_rejects("[1.5E+309]", "out of range at byte 1");
    assert_submit_rejects("18446744073709551616", "integer beyond 64 bits at byte 0");
    assert_submit_rejects("[-9223372036854775809]", "integer beyond 64 bits at byte 1");
    assert_submit_rejects("123456789012345678901234567890", "integer beyond 64 bits");
    /* Just inside: written back digit for digit. */
    assert_compact("[18446744073709551615,-9223372036854775808]",
                   "[18446744073709551615,-9223372036854775808]");
    assert_compact("1.7976931348623157e308", "1.7976931348623157E308");
    assert_compact("-1e-400", "-0.0"); /* an underflow, as Jackson reads it too */
}

static void config_valid_at_submit_rejects_nul_in_keys(void **state)
{
    (void)state;
    assert_submit_rejects("{\"a\\u0000b\":1}", "NUL (\\u0000) in a member name at byte 1");
    assert_submit_rejects("{\"x\":{\"\\u0000\":1}}", "NUL (\\u0000) in a member name at byte 6");
    /* In a value it is kept and written back. */
    assert_compact("{\"k\":\"a\\u0000b\"}", "{\"k\":\"a\\u0000b\"}");
}

static void config_valid_at_submit_rejects_lone_surrogates(void **state)
{
    (void)state;
    assert_submit_rejects("\"\\ud800\"", "lone surrogate \\ud800 at byte 1");
    assert_submit_rejects("\"\\udc00\"", "lone surrogate \\udc00 at byte 1");
    assert_submit_rejects("\"x\\uDBFFy\"", "lone surrogate \\uDBFF at byte 2");
    assert_submit_rejects("\"\\ud800\\u0041\"", "lone surrogate \\ud800 at byte 1");
    assert_submit_rejects("\"\\ud800\\ud800\"", "lone surrogate \\ud800 at byte 1");
    assert_submit_rejects("{\"\\udfff\":1}", "lone surrogate \\udfff at byte 2");
    assert_compact("\"\\uD83D\\uDE00\\ud7ff\\ue000\"",
                   "\"\xf0\x9f\x98\x80\xed\x9f\xbf\xee\x80\x80\"");
    assert_compact("\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\"");
}

static char *nested(int levels, const char *open, const char *close)
{
    size_t o = strlen(open), c = strlen(close);
    char *text = malloc((size_t)levels * (o + c) + 1);
    assert_non_null(text);
    for (int i = 0; i < levels; i++) {
        memcpy(text + (size_t)i * o, open, o);
        memcpy(text + (size_t)levels * o + (size_t)i * c, close, c);
    }
    text[(size_t)levels * (o + c)] = '\0';
    return text;
}

static void config_valid_at_submit_allows_64_levels(void **state)
{
    (void)state;
    for (int levels = 62; levels <= 66; levels++) {
        char *arrays = nested(levels, "[", "]");
        char *objects = nested(levels, "{\"a\":", "}");
        /* objects ends with the innermost "a": complete it. */
        char *fixed = malloc(strlen(objects) + 2);
        assert_non_null(fixed);
        size_t half = (size_t)levels * 5;
        memcpy(fixed, objects, half);
        fixed[half] = '1';
        strcpy(fixed + half + 1, objects + half);
        if (levels <= 64) {
            if (submit_check(arrays) != 0)
                fail_msg("%d levels of arrays rejected: %s", levels, acp_last_error());
            if (submit_check(fixed) != 0)
                fail_msg("%d levels of objects rejected: %s", levels, acp_last_error());
        } else {
            assert_submit_rejects(arrays, "nested deeper than 64 levels");
            assert_submit_rejects(fixed, "nested deeper than 64 levels");
        }
        free(fixed);
        free(objects);
        free(arrays);
    }
}

/* Point 14: PostgreSQL refuses text that is not strict UTF-8, so submit
 * must, with ACP_EINVAL rather than a database error. */
static void invalid_utf8_is_rejected_at_submit(void **state)
{
    (void)state;
    const char *bad[][2] = {
        {"\"\xc0\xaf\"", "overlong UTF-8 sequence at byte 1"},
        {"\"\xc1\xbf\"", "overlong UTF-8 sequence at byte 1"},
        {"\"ab\xe0\x80\xaf\"", "overlong UTF-8 sequence at byte 3"},
        {"\"\xf0\x80\x80\xaf\"", "overlong UTF-8 sequence at byte 1"},
        {"\"\xed\xa0\x80\"", "UTF-8 encoded surrogate at byte 1"},
        {"{\"k\xed\xbf\xbf\":1}", "UTF-8 encoded surrogate at byte 3"},
        {"\"\xf4\x90\x80\x80\"", "UTF-8 sequence beyond U+10FFFF at byte 1"},
        {"\"\xf5\x80\x80\x80\"", "invalid UTF-8 byte 0xf5 at byte 1"},
        {"\"\xff\"", "invalid UTF-8 byte 0xff at byte 1"},
        {"\"\x80\"", "invalid UTF-8 byte 0x80 at byte 1"},
        {"\"\xe2\x82\"", "truncated UTF-8 sequence at byte 1"},
        {"\"\xe2\x82x\"", "truncated UTF-8 sequence at byte 1"},
        {"[\"\xc3\"]", "truncated UTF-8 sequence at byte 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_submit_rejects(bad[i][0], bad[i][1]);
    /* The edges that are valid: U+0080, U+07FF, U+0800, U+D7FF, U+E000,
     * U+FFFF, U+10000 and U+10FFFF. */
    assert_compact("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"",
                   "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"");
    assert_compact("{\"\xf0\x90\x80\x80\":\"\xf4\x8f\xbf\xbf\"}",
                   "{\"\xf0\x90\x80\x80\":\"\xf4\x8f\xbf\xbf\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles_follow_java_double_to_string),
        cmocka_unit_test(integers_and_literals),
        cmocka_unit_test(strings_use_jacksons_escapes),
        cmocka_unit_test(objects_keep_member_order),
        cmocka_unit_test(parse_reports_position),
        cmocka_unit_test(only_strict_json_is_accepted),
        cmocka_unit_test(config_valid_at_submit_rejects_unrepresentable_numbers),
        cmocka_unit_test(config_valid_at_submit_rejects_nul_in_keys),
        cmocka_unit_test(config_valid_at_submit_rejects_lone_surrogates),
        cmocka_unit_test(config_valid_at_submit_allows_64_levels),
        cmocka_unit_test(invalid_utf8_is_rejected_at_submit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
