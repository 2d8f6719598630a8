/* Job ids: parse, format, generate, and the id derived from a config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "md5.h"

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

static void parse_and_format_round_trip(void **state)
{
    (void)state;
    acp_job_id id;
    char text[ACP_JOB_ID_STRLEN];
    assert_int_equal(acp_job_id_parse(&id, "00112233445566778899AaBbCcDdEeFf"), 0);
    const unsigned char expected[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                        0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    assert_memory_equal(id.bytes, expected, 16);
    assert_ptr_equal(acp_job_id_format(&id, text), text);
    assert_string_equal(text, "00112233445566778899aabbccddeeff");

    acp_job_id again;
    assert_int_equal(acp_job_id_parse(&again, text), 0);
    assert_true(acp_job_id_equal(&id, &again));
    again.bytes[15] ^= 1;
    assert_false(acp_job_id_equal(&id, &again));
    assert_false(acp_job_id_equal(&id, NULL));
    assert_null(acp_job_id_format(NULL, text));
    assert_null(acp_job_id_format(&id, NULL));
}

static void parse_rejects_malformed_ids(void **state)
{
    (void)state;
    acp_job_id id;
    memset(&id, 0x77, sizeof id);
    acp_job_id before = id;

    assert_int_equal(acp_job_id_parse(&id, ""), ACP_EINVAL);
    assert_error_mentions("got 0");
    assert_int_equal(acp_job_id_parse(&id, "0011223344556677889900aabbccddee"), 0);
    id = before;
    assert_int_equal(acp_job_id_parse(&id, "0011223344556677889900aabbccdde"), ACP_EINVAL);
    assert_error_mentions("expected 32 hexadecimal characters, got 31");
    assert_int_equal(acp_job_id_parse(&id, "0011223344556677889900aabbccddeef"), ACP_EINVAL);
    assert_error_mentions("got more than 32");
    assert_int_equal(acp_job_id_parse(&id, "0011223344556677889900aabbccddeg"), ACP_EINVAL);
    assert_error_mentions("'g' at position 31");
    assert_int_equal(acp_job_id_parse(&id, " 011223344556677889900aabbccddee"), ACP_EINVAL);
    assert_error_mentions("' ' at position 0");
    assert_int_equal(acp_job_id_parse(&id, "00112233-4455-6677-8899-00aabbcc"), ACP_EINVAL);
    assert_error_mentions("'-' at position 8");
    assert_int_equal(acp_job_id_parse(&id, "0011223344556677889900aabbccdd\xc3\xa9"), ACP_EINVAL);
    assert_error_mentions("byte 0xc3 at position 30");
    assert_int_equal(acp_job_id_parse(&id, NULL), ACP_EINVAL);
    assert_int_equal(acp_job_id_parse(NULL, "0011223344556677889900aabbccddee"), ACP_EINVAL);
    /* A failed parse leaves the output alone. */
    assert_memory_equal(&id, &before, sizeof id);
}

static void generated_ids_are_random_v4_uuids(void **state)
{
    (void)state;
    enum { COUNT = 1000 };
    acp_job_id *ids = calloc(COUNT, sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < COUNT; i++) {
        assert_int_equal(acp_job_id_generate(&ids[i]), 0);
        assert_int_equal(ids[i].bytes[6] >> 4, 4);      /* version 4 */
        assert_int_equal(ids[i].bytes[8] & 0xc0, 0x80); /* RFC 4122 variant */
        for (int j = 0; j < i; j++)
            assert_false(acp_job_id_equal(&ids[i], &ids[j]));
    }
    free(ids);
    assert_int_equal(acp_job_id_generate(NULL), ACP_EINVAL);
}

static void md5_matches_rfc1321_vectors(void **state)
{
    (void)state;
    const char *vectors[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890123456789012345678901234567890123456789"
         "0",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        acp_job_id digest;
        char hex[ACP_JOB_ID_STRLEN];
        md5_ctx ctx;
        md5_init(&ctx);
        /* Feed in uneven pieces to cross block boundaries. */
        const char *s = vectors[i][0];
        size_t len = strlen(s), step = 7;
        for (size_t off = 0; off < len; off += step)
            md5_update(&ctx, s + off, len - off < step ? len - off : step);
        md5_final(&ctx, digest.bytes);
        assert_string_equal(acp_job_id_format(&digest, hex), vectors[i][1]);
    }
}

static void assert_config_id(const char *config, const char *expected)
{
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    if (acp_job_id_from_config(&id, config) != 0)
        fail_msg("config %s rejected: %s", config, acp_last_error());
    assert_string_equal(acp_job_id_format(&id, hex), expected);
}

static void config_id_is_md5_of_compact_json(void **state)
{
    (void)state;
    /* Expected values are md5 of the compact text, computed independently
     * (python3 hashlib) from the strings in the comments. */
    /* {"executor":"sleep","seconds":5} */
    assert_config_id("{\"executor\":\"sleep\",\"seconds\":5}", "a3363f4b132d281261f0a9dc278f2cf6");
    assert_config_id("{\n  \"executor\" : \"sleep\",\n  \"seconds\" : 5\n}\n",
                     "a3363f4b132d281261f0a9dc278f2cf6");
    /* {"b":[1,2.5,"x/y"],"a":null}: '/' unescaped, 2.50 as Java prints it */
    assert_config_id(" { \"b\" : [ 1 , 2.50, \"x\\/y\" ], \"a\" : null } ",
                     "41593e3d0ddbb41442e093a3bb26656e");
    /* null */
    assert_config_id("null", "37a6259cc0c1dae299a7866489dff0bd");
    /* {"t":"tab\tnew\nline\u0001 é\u001F"}: Jackson's escapes, raw UTF-8 */
    assert_config_id("{\"t\":\"tab\\tnew\\nline\\u0001 \\u00e9\\u001f\"}",
                     "0d88d99220d222ad8b8dbba76145c498");
}

static void config_id_depends_on_member_order(void **state)
{
    (void)state;
    acp_job_id ab, ba;
    assert_int_equal(acp_job_id_from_config(&ab, "{\"a\":1,\"b\":2}"), 0);
    assert_int_equal(acp_job_id_from_config(&ba, "{\"b\":2,\"a\":1}"), 0);
    assert_false(acp_job_id_equal(&ab, &ba));
}

static void config_id_rejects_bad_json(void **state)
{
    (void)state;
    acp_job_id id;
    memset(&id, 0x42, sizeof id);
    acp_job_id before = id;
    const char *bad[][2] = {
        {"", "unexpected end of input"},
        {"{", "unexpected end of input"},
        {"{\"a\":1} x", "unexpected data after the value at byte 8"},
        {"{\"a\":1}{}", "unexpected data after the value"},
        {"{'a':1}", "invalid JSON"},
        {"[1,]", "invalid JSON"},
        {"{\"a\":\"\xff\"}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(acp_job_id_from_config(&id, bad[i][0]), ACP_EINVAL);
        assert_error_mentions("job config");
        assert_error_mentions(bad[i][1]);
    }
    assert_int_equal(acp_job_id_from_config(&id, NULL), ACP_EINVAL);
    assert_int_equal(acp_job_id_from_config(NULL, "{}"), ACP_EINVAL);
    assert_memory_equal(&id, &before, sizeof id);

    /* One byte over the limit is refused before parsing. */
    size_t len = ACP_JOB_CONFIG_MAX + 1;
    char *big = malloc(len + 1);
    assert_non_null(big);
    memset(big, ' ', len);
    memcpy(big, "\"x\"", 3);
    big[len] = '\0';
    assert_int_equal(acp_job_id_from_config(&id, big), ACP_ETOOBIG);
    assert_error_mentions("more than 1048576 bytes");
    big[len - 1] = '\0'; /* exactly at the limit: accepted */
    assert_int_equal(acp_job_id_from_config(&id, big), 0);
    free(big);

    /* Nesting deeper than the parser's limit is an error, not a crash. */
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 199);
    deep[399] = '\0';
    assert_int_equal(acp_job_id_from_config(&id, deep), ACP_EINVAL);
    assert_error_mentions("job config");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_and_format_round_trip),
        cmocka_unit_test(parse_rejects_malformed_ids),
        cmocka_unit_test(generated_ids_are_random_v4_uuids),
        cmocka_unit_test(md5_matches_rfc1321_vectors),
        cmocka_unit_test(config_id_is_md5_of_compact_json),
        cmocka_unit_test(config_id_depends_on_member_order),
        cmocka_unit_test(config_id_rejects_bad_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
