/* The job message on "<queue>_jobs" (docs/compatibility.adoc, RabbitMQ): the exact bytes we
 * publish, and what we accept from upstream's publishers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "buf.h"
#include "job_message.h"
#include "json.h"

#define HEX "00112233445566778899aabbccddeeff"
/* 2024-09-20T13:50:45.123456Z */
#define NOW_US INT64_C(1726840245123456)

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

static acp_job_id fixed_id(void)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_parse(&id, HEX), 0);
    return id;
}

static void format_without_config_writes_null_body(void **state)
{
    (void)state;
    acp_job_id id = fixed_id();
    buf out = BUF_INIT;
    assert_int_equal(job_message_format(&out, &id, NULL, NOW_US), 0);
    assert_string_equal(out.data, "{\"jobID\":\"" HEX "\",\"type\":\"\","
                                  "\"dispatched\":\"2024-09-20T13:50:45.123456Z\","
                                  "\"attemptCount\":0,\"body\":null}");
    assert_int_equal(out.len, strlen(out.data));
    buf_free(&out);
}

static void format_writes_config_compactly(void **state)
{
    (void)state;
    acp_job_id id = fixed_id();
    buf out = BUF_INIT;
    const char *config = " {\n  \"b\" : [ 1, 2.50, {\"c\" : null} ],\n  \"a\" : \"x/y\\u00e9\" }\n";
    assert_int_equal(job_message_format(&out, &id, config, NOW_US), 0);
    assert_string_equal(out.data, "{\"jobID\":\"" HEX "\",\"type\":\"\","
                                  "\"dispatched\":\"2024-09-20T13:50:45.123456Z\","
                                  "\"attemptCount\":0,"
                                  "\"body\":{\"b\":[1,2.5,{\"c\":null}],\"a\":\"x/y\xc3\xa9\"}}");
    buf_free(&out);
}

static void format_appends_and_pads_the_time(void **state)
{
    (void)state;
    acp_job_id id = fixed_id();
    buf out = BUF_INIT;
    assert_int_equal(buf_puts(&out, "prefix:"), 0);
    /* Whole second: six zero digits, which OffsetDateTime.parse accepts. */
    assert_int_equal(job_message_format(&out, &id, "[]", INT64_C(1704067200000000)), 0);
    assert_string_equal(out.data, "prefix:{\"jobID\":\"" HEX "\",\"type\":\"\","
                                  "\"dispatched\":\"2024-01-01T00:00:00.000000Z\","
                                  "\"attemptCount\":0,\"body\":[]}");
    buf_free(&out);

    /* A JSON null config is a message without a body. */
    assert_int_equal(job_message_format(&out, &id, "null", 7), 0);
    assert_non_null(strstr(out.data, "\"dispatched\":\"1970-01-01T00:00:00.000007Z\""));
    assert_non_null(strstr(out.data, "\"body\":null}"));
    buf_free(&out);
}

static void format_rejects_invalid_config(void **state)
{
    (void)state;
    acp_job_id id = fixed_id();
    buf out = BUF_INIT;
    assert_int_equal(job_message_format(&out, &id, "{\"a\":", NOW_US), ACP_EINVAL);
    assert_error_mentions("job config: invalid JSON");
    assert_null(out.data);
    assert_int_equal(job_message_format(&out, &id, "{\"a\":1} x", NOW_US), ACP_EINVAL);
    assert_error_mentions("job config");
    assert_int_equal(job_message_format(&out, &id, "{'a':1}", NOW_US), ACP_EINVAL);
    assert_error_mentions("single quote");
    assert_null(out.data);

    char *big = malloc(ACP_JOB_CONFIG_MAX + 2);
    assert_non_null(big);
    big[0] = '"';
    memset(big + 1, 'x', ACP_JOB_CONFIG_MAX);
    big[ACP_JOB_CONFIG_MAX + 1] = '\0';
    assert_int_equal(job_message_format(&out, &id, big, NOW_US), ACP_ETOOBIG);
    assert_error_mentions("exceeds the limit");
    free(big);
    assert_null(out.data);
}

static void parse_round_trips_a_formatted_message(void **state)
{
    (void)state;
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    buf out = BUF_INIT;
    assert_int_equal(job_message_format(&out, &id, "{ \"n\": [1, true, \"s\"] }", NOW_US), 0);

    acp_job_id parsed;
    char *config = NULL;
    assert_int_equal(job_message_parse(out.data, out.len, &parsed, &config), 0);
    assert_true(acp_job_id_equal(&id, &parsed));
    assert_string_equal(config, "{\"n\":[1,true,\"s\"]}");
    free(config);
    buf_free(&out);

    assert_int_equal(job_message_format(&out, &id, NULL, NOW_US), 0);
    config = (char *)"not touched";
    assert_int_equal(job_message_parse(out.data, out.len, &parsed, &config), 0);
    assert_null(config);
    assert_true(acp_job_id_equal(&id, &parsed));
    buf_free(&out);
}

static void parse_accepts_upstream_messages(void **state)
{
    (void)state;
    const char *message = "{\"jobID\":\"" HEX "\",\"type\":\"\","
                          "\"dispatched\":\"2024-09-20T13:50:45.123456789-04:00\","
                          "\"attemptCount\":0,\"body\":{\"a\":1}}";
    acp_job_id id;
    char *config = NULL;
    assert_int_equal(job_message_parse(message, strlen(message), &id, &config), 0);
    acp_job_id expected = fixed_id();
    assert_true(acp_job_id_equal(&id, &expected));
    assert_string_equal(config, "{\"a\":1}");
    free(config);

    /* Any JSON value is a body; key order and white space do not matter on
     * input, and an upper-case id is still the same id. */
    const char *other = " { \"body\" : [1, \"two\"], \"attemptCount\" : 3, \"type\" : \"x\","
                        " \"dispatched\" : \"2024-09-20T13:50:45Z\","
                        " \"jobID\" : \"00112233445566778899AABBCCDDEEFF\" } ";
    assert_int_equal(job_message_parse(other, strlen(other), &id, &config), 0);
    assert_true(acp_job_id_equal(&id, &expected));
    assert_string_equal(config, "[1,\"two\"]");
    free(config);

    const char *scalar = "{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":\"d\","
                         "\"attemptCount\":0,\"body\":\"text\"}";
    assert_int_equal(job_message_parse(scalar, strlen(scalar), &id, &config), 0);
    assert_string_equal(config, "\"text\"");
    free(config);
}

/* Expect @message to be rejected with ACP_EINVAL and a detail naming @problem. */
static void assert_rejected(const char *message, const char *problem)
{
    acp_job_id id;
    memset(&id, 0x5a, sizeof id);
    acp_job_id before = id;
    char *config = (char *)"sentinel";
    int rc = job_message_parse(message, strlen(message), &id, &config);
    if (rc != ACP_EINVAL)
        fail_msg("'%s': expected ACP_EINVAL, got %d", message, rc);
    assert_error_mentions("job message");
    assert_error_mentions(problem);
    assert_null(config);
    assert_memory_equal(&id, &before, sizeof id);
}

#define FIELDS_AFTER_ID "\"type\":\"\",\"dispatched\":\"2024-09-20T13:50:45Z\",\"attemptCount\":0"

static void parse_rejects_malformed_messages(void **state)
{
    (void)state;
    assert_rejected("", "invalid JSON");
    assert_rejected("{\"jobID\":", "invalid JSON");
    assert_rejected("jobID", "invalid JSON");
    assert_rejected("[1,2]", "not a JSON object");
    assert_rejected("\"" HEX "\"", "not a JSON object");
    assert_rejected("null", "not a JSON object");

    /* Each of the five keys is required. */
    assert_rejected("{" FIELDS_AFTER_ID ",\"body\":null}", "no \"jobID\" field");
    assert_rejected("{\"jobID\":\"" HEX "\",\"dispatched\":\"d\",\"attemptCount\":0,"
                    "\"body\":null}",
                    "no \"type\" field");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"attemptCount\":0,\"body\":null}",
                    "no \"dispatched\" field");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":\"d\",\"body\":null}",
                    "no \"attemptCount\" field");
    assert_rejected("{\"jobID\":\"" HEX "\"," FIELDS_AFTER_ID "}", "no \"body\" field");

    /* Only body may be null. */
    assert_rejected("{\"jobID\":null," FIELDS_AFTER_ID ",\"body\":null}", "\"jobID\" is null");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":null,\"dispatched\":\"d\","
                    "\"attemptCount\":0,\"body\":null}",
                    "\"type\" is null");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":null,"
                    "\"attemptCount\":0,\"body\":null}",
                    "\"dispatched\" is null");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":\"d\","
                    "\"attemptCount\":null,\"body\":null}",
                    "\"attemptCount\" is null");

    /* Types. */
    assert_rejected("{\"jobID\":12345," FIELDS_AFTER_ID ",\"body\":null}",
                    "\"jobID\" is not a string");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":0,\"dispatched\":\"d\","
                    "\"attemptCount\":0,\"body\":null}",
                    "\"type\" is not a string");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":{},"
                    "\"attemptCount\":0,\"body\":null}",
                    "\"dispatched\" is not a string");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":\"d\","
                    "\"attemptCount\":\"0\",\"body\":null}",
                    "\"attemptCount\" is not an integer");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":\"d\","
                    "\"attemptCount\":1.5,\"body\":null}",
                    "\"attemptCount\" is not an integer");
    assert_rejected("{\"jobID\":\"" HEX "\",\"type\":\"\",\"dispatched\":\"d\","
                    "\"attemptCount\":true,\"body\":null}",
                    "\"attemptCount\" is not an integer");

    /* The id itself. */
    assert_rejected("{\"jobID\":\"00112233445566778899aabbccddeef\"," FIELDS_AFTER_ID
                    ",\"body\":null}",
                    "\"jobID\": job id: expected 32 hexadecimal characters, got 31");
    assert_rejected("{\"jobID\":\"00112233445566778899aabbccddeeff0\"," FIELDS_AFTER_ID
                    ",\"body\":null}",
                    "got more than 32");
    assert_rejected("{\"jobID\":\"00112233-4455-6677-8899-aabbccddeeff\"," FIELDS_AFTER_ID
                    ",\"body\":null}",
                    "\"jobID\"");
    assert_rejected("{\"jobID\":\"0011223344556677889900aabbccddeg\"," FIELDS_AFTER_ID
                    ",\"body\":null}",
                    "'g' at position 31");
}

static void parse_rejects_oversized_messages(void **state)
{
    (void)state;
    /* A valid message just over the limit: the size alone decides. */
    size_t limit = ACP_JOB_CONFIG_MAX + 4096;
    const char *head = "{\"jobID\":\"" HEX "\"," FIELDS_AFTER_ID ",\"body\":\"";
    size_t head_len = strlen(head);
    char *message = malloc(limit + 2);
    assert_non_null(message);
    memcpy(message, head, head_len);
    memset(message + head_len, 'x', limit + 1 - head_len - 2);
    memcpy(message + limit + 1 - 2, "\"}", 2);
    message[limit + 1] = '\0';

    acp_job_id id;
    char *config = NULL;
    assert_int_equal(job_message_parse(message, limit + 1, &id, &config), ACP_ETOOBIG);
    assert_error_mentions("exceeds the limit");
    assert_null(config);

    /* At the limit it is accepted. */
    memcpy(message + limit - 2, "\"}", 3);
    assert_int_equal(job_message_parse(message, limit, &id, &config), 0);
    assert_non_null(config);
    assert_int_equal(strlen(config), limit - head_len - 2 + 2);
    free(config);
    free(message);
}

static void parse_rejects_null_arguments(void **state)
{
    (void)state;
    acp_job_id id;
    char *config = NULL;
    assert_int_equal(job_message_parse(NULL, 0, &id, &config), ACP_EINVAL);
    assert_int_equal(job_message_parse("{}", 2, NULL, &config), ACP_EINVAL);
    assert_int_equal(job_message_parse("{}", 2, &id, NULL), ACP_EINVAL);
    buf out = BUF_INIT;
    assert_int_equal(job_message_format(&out, NULL, NULL, 0), ACP_EINVAL);
    assert_int_equal(job_message_format(NULL, &id, NULL, 0), ACP_EINVAL);
}

/* Point 13: the message wraps the config in one more level, and a worker
 * must be able to read whatever submit accepted. */
static void config_valid_at_submit_fits_in_a_message(void **state)
{
    (void)state;
    acp_job_id id = fixed_id();
    /* open, close, innermost value, levels per open */
    const char *shapes[][4] = {
        {"[", "]", "", "1"}, {"{\"k\":", "}", "1", "1"}, {"[{\"k\":", "}]", "1", "2"}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int accepted = 0, per = atoi(shapes[s][3]);
        for (int levels = 1; levels <= 70 / per; levels++) {
            buf config = BUF_INIT;
            for (int i = 0; i < levels; i++)
                assert_int_equal(buf_puts(&config, shapes[s][0]), 0);
            assert_int_equal(buf_puts(&config, shapes[s][2]), 0);
            for (int i = 0; i < levels; i++)
                assert_int_equal(buf_puts(&config, shapes[s][1]), 0);
            buf compact = BUF_INIT;
            if (json_compact_text(config.data, "submission.config", &compact) == 0) {
                accepted = levels * per;
                buf message = BUF_INIT;
                if (job_message_format(&message, &id, compact.data, NOW_US) != 0)
                    fail_msg("%s: accepted at submit, but no message: %s", config.data,
                             acp_last_error());
                acp_job_id parsed;
                char *body = NULL;
                if (job_message_parse(message.data, message.len, &parsed, &body) != 0)
                    fail_msg("%s: accepted at submit, but its message is refused: %s", config.data,
                             acp_last_error());
                assert_string_equal(body, compact.data);
                free(body);
                buf_free(&message);
            }
            buf_free(&compact);
            buf_free(&config);
        }
        /* 64 levels of config, plus the envelope's. */
        assert_int_equal(accepted, 64);
    }
    /* The edges of what submit accepts come back from the message as they went in. */
    const char *edges[] = {
        "[18446744073709551615,-9223372036854775808,1.7976931348623157E308,1.0E-300]",
        "{\"k\":\"a\\u0000b\\\\\\\"\\u001F\"}",
        "{\"\xf4\x8f\xbf\xbf\":\"\xc2\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\"}",
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        buf compact = BUF_INIT, message = BUF_INIT;
        if (json_compact_text(edges[i], "submission.config", &compact) != 0)
            fail_msg("%s refused: %s", edges[i], acp_last_error());
        assert_string_equal(compact.data, edges[i]);
        assert_int_equal(job_message_format(&message, &id, compact.data, NOW_US), 0);
        acp_job_id parsed;
        char *body = NULL;
        if (job_message_parse(message.data, message.len, &parsed, &body) != 0)
            fail_msg("%s: message refused: %s", edges[i], acp_last_error());
        assert_string_equal(body, edges[i]);
        free(body);
        buf_free(&message);
        buf_free(&compact);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format_without_config_writes_null_body),
        cmocka_unit_test(format_writes_config_compactly),
        cmocka_unit_test(format_appends_and_pads_the_time),
        cmocka_unit_test(format_rejects_invalid_config),
        cmocka_unit_test(parse_round_trips_a_formatted_message),
        cmocka_unit_test(parse_accepts_upstream_messages),
        cmocka_unit_test(parse_rejects_malformed_messages),
        cmocka_unit_test(parse_rejects_oversized_messages),
        cmocka_unit_test(parse_rejects_null_arguments),
        cmocka_unit_test(config_valid_at_submit_fits_in_a_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
