/* The compact JSON writer must match Jackson's JsonNode.toString() byte for
 * byte, since job ids are derived from it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doubles_follow_java_double_to_string),
        cmocka_unit_test(integers_and_literals),
        cmocka_unit_test(strings_use_jacksons_escapes),
        cmocka_unit_test(objects_keep_member_order),
        cmocka_unit_test(parse_reports_position),
        cmocka_unit_test(only_strict_json_is_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
