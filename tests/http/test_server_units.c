/* Unit tests of the example server's parts that need no services: SHA-256
 * against the FIPS 180-2 vectors, the mapping of library errors to HTTP
 * statuses (including the 503s that the integration test cannot provoke
 * without stopping a shared service), the JSON member finder, the job
 * control members of a submission, and the settings loader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "errmap.h"
#include "jobctl.h"
#include "jsonspan.h"
#include "settings.h"
#include "sha256.h"
#include "upload.h"

/* ---- SHA-256 ------------------------------------------------------------ */

static void sha256_matches_the_fips_180_2_vectors(void **state)
{
    (void)state;
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(two_blocks, strlen(two_blocks), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

    /* One million 'a', fed in uneven pieces to cross block boundaries. */
    char chunk[1024];
    memset(chunk, 'a', sizeof chunk);
    sha256_ctx ctx;
    sha256_init(&ctx);
    size_t fed = 0, piece = 1;
    while (fed < 1000000) {
        size_t n = piece < 1000000 - fed ? piece : 1000000 - fed;
        sha256_update(&ctx, chunk, n);
        fed += n;
        piece = piece % 997 + 13;
    }
    unsigned char digest[SHA256_DIGEST_LEN];
    sha256_final(&ctx, digest);
    static const unsigned char million_a[SHA256_DIGEST_LEN] = {
        0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92, 0x81, 0xa1, 0xc7,
        0xe2, 0x84, 0xd7, 0x3e, 0x67, 0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97,
        0x20, 0x0e, 0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
    assert_memory_equal(digest, million_a, SHA256_DIGEST_LEN);
}

static void sha256_pads_every_length_around_a_block(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *hex;
    } cases[] = {
        {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
        {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
        {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
        {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
        {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
    };
    char a[128];
    memset(a, 'a', sizeof a);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char hex[SHA256_HEX_LEN + 1];
        sha256_hex(a, cases[i].len, hex);
        assert_string_equal(hex, cases[i].hex);
    }
}

/* ---- error mapping ------------------------------------------------------ */

static void every_library_error_has_its_http_status(void **state)
{
    (void)state;
    assert_int_equal(errmap_http_status(ACP_EINVAL), 400);
    assert_int_equal(errmap_http_status(ACP_ENOQUEUE), 400);
    assert_int_equal(errmap_http_status(ACP_ENOTFOUND), 404);
    assert_int_equal(errmap_http_status(ACP_EUNOWNED), 409);
    assert_int_equal(errmap_http_status(ACP_ECONFLICT), 409);
    assert_int_equal(errmap_http_status(ACP_EBUSY), 409);
    assert_int_equal(errmap_http_status(ACP_ETOOBIG), 413);
    assert_int_equal(errmap_http_status(ACP_EDB), 503);
    assert_int_equal(errmap_http_status(ACP_EBROKER), 503);
    assert_int_equal(errmap_http_status(ACP_ESTORAGE), 503);
    assert_int_equal(errmap_http_status(ACP_ESHUTDOWN), 503);
    assert_int_equal(errmap_http_status(ACP_ENOMEM), 500);
    assert_int_equal(errmap_http_status(ACP_EIO), 500);
    assert_int_equal(errmap_http_status(ACP_EVERSION), 500);
    assert_int_equal(errmap_http_status(ACP_EUSER), 500);
    assert_int_equal(errmap_http_status(-1000), 500); /* a code from a newer library */
}

/* ---- job control members of a submission ------------------------------- */

/* 2026-12-03T18:00:00Z */
#define T0_US (1796320800LL * 1000000)

static int parse_submission(const char *body_text, acp_submission *sub, const char **field,
                            char *msg, size_t msglen)
{
    json_object *body = json_tokener_parse(body_text);
    assert_non_null(body);
    acp_submission_init(sub, ACP_SUBMISSION_VERSION);
    *field = NULL;
    msg[0] = '\0';
    int rc = jobctl_parse(body, T0_US, sub, field, msg, msglen);
    json_object_put(body);
    return rc;
}

static void assert_submission_error(const char *body_text, const char *field, const char *detail)
{
    acp_submission sub;
    const char *got = NULL;
    char msg[512];
    if (parse_submission(body_text, &sub, &got, msg, sizeof msg) != -1)
        fail_msg("%s was accepted", body_text);
    if (!got || strcmp(got, field) != 0)
        fail_msg("%s: field %s, expected %s (%s)", body_text, got ? got : "(none)", field, msg);
    if (!strstr(msg, detail))
        fail_msg("%s: '%s' lacks '%s'", body_text, msg, detail);
    if (strncmp(msg, field, strlen(field)) != 0)
        fail_msg("%s: '%s' does not start with the member's name", body_text, msg);
}

static void rfc_3339_times_are_parsed(void **state)
{
    (void)state;
    int64_t us = 0;
    assert_int_equal(jobctl_parse_time("2026-12-03T18:00:00Z", &us), 0);
    assert_true(us == T0_US);
    assert_int_equal(jobctl_parse_time("2026-12-03t18:00:00z", &us), 0);
    assert_true(us == T0_US);
    assert_int_equal(jobctl_parse_time("2026-12-03T19:30:00.25+01:30", &us), 0);
    assert_true(us == T0_US + 250000);
    assert_int_equal(jobctl_parse_time("2026-12-03T13:00:00.000001-05:00", &us), 0);
    assert_true(us == T0_US + 1);
    assert_int_equal(jobctl_parse_time("1970-01-01T00:00:00Z", &us), 0);
    assert_true(us == 0);
    assert_int_equal(jobctl_parse_time("2028-02-29T00:00:00Z", &us), 0);
    assert_true(us == 1835395200LL * 1000000);
    static const char *const bad[] = {
        "",
        "2026-12-03",
        "2026-12-03T18:00:00",       /* no offset: local time of whom? */
        "2026-12-03 18:00:00Z",      /* a space: not the RFC's date-time */
        "2026-12-03T18:00Z",         /* seconds are required */
        "2026-13-03T18:00:00Z",      /* month */
        "2026-02-29T18:00:00Z",      /* not a leap year */
        "2026-04-31T18:00:00Z",      /* April has 30 days */
        "2026-12-03T24:00:00Z",      /* hour */
        "2026-12-03T18:60:00Z",      /* minute */
        "2026-12-03T18:00:00.Z",     /* an empty fraction */
        "2026-12-03T18:00:00+0100",  /* the offset needs its colon */
        "2026-12-03T18:00:00+24:00", /* offset hours */
        "2026-12-03T18:00:00Zjunk",  /* trailing text */
        "+2026-12-03T18:00:00Z",     /* sign */
        "1796320800",                /* seconds since the epoch: not a date-time */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (jobctl_parse_time(bad[i], &us) != -1)
            fail_msg("'%s' was accepted", bad[i]);
}

static void job_control_members_reach_the_submission(void **state)
{
    (void)state;
    acp_submission sub;
    const char *field;
    char msg[512];
    assert_int_equal(parse_submission("{\"queue\": \"q\"}", &sub, &field, msg, sizeof msg), 0);
    assert_int_equal(sub.version, 2);
    assert_int_equal(sub.priority, ACP_PRIORITY_DEFAULT);
    assert_int_equal(sub.max_attempts, 0);
    assert_int_equal(sub.timeout_seconds, 0);
    assert_true(sub.not_before == 0 && sub.delay_ms == 0);

    assert_int_equal(parse_submission("{\"priority\": 90, \"max_attempts\": 1, "
                                      "\"timeout_seconds\": 2, \"delay_seconds\": 1.5}",
                                      &sub, &field, msg, sizeof msg),
                     0);
    assert_int_equal(sub.priority, 90);
    assert_int_equal(sub.max_attempts, 1);
    assert_int_equal(sub.timeout_seconds, 2);
    assert_true(sub.delay_ms == 1500);
    assert_true(sub.not_before == 0);

    assert_int_equal(parse_submission("{\"priority\": 0, \"max_attempts\": 1000, "
                                      "\"timeout_seconds\": 2592000, "
                                      "\"not_before\": \"2026-12-03T20:00:00+01:00\"}",
                                      &sub, &field, msg, sizeof msg),
                     0);
    assert_int_equal(sub.priority, 0);
    assert_int_equal(sub.max_attempts, 1000);
    assert_int_equal(sub.timeout_seconds, 2592000);
    assert_true(sub.not_before == T0_US + 3600LL * 1000000);
    assert_true(sub.delay_ms == 0);

    /* null: left out; the bounds themselves pass. */
    assert_int_equal(parse_submission("{\"priority\": null, \"timeout_seconds\": null, "
                                      "\"not_before\": null, \"delay_seconds\": 31622400}",
                                      &sub, &field, msg, sizeof msg),
                     0);
    assert_int_equal(sub.priority, ACP_PRIORITY_DEFAULT);
    assert_true(sub.delay_ms == 31622400000ULL);
    assert_int_equal(parse_submission("{\"not_before\": \"2026-12-02T18:00:01Z\"}", &sub, &field,
                                      msg, sizeof msg),
                     0);
    assert_true(sub.not_before == T0_US - 86399LL * 1000000);
    assert_int_equal(parse_submission("{\"delay_seconds\": 0}", &sub, &field, msg, sizeof msg), 0);
    assert_true(sub.delay_ms == 0);
    assert_true(jobctl_is_member("delay_seconds"));
    assert_false(jobctl_is_member("delay_ms"));
}

static void bad_job_control_members_are_named(void **state)
{
    (void)state;
    assert_submission_error("{\"priority\": -1}", "priority", "-1 is outside 0..100");
    assert_submission_error("{\"priority\": 101}", "priority", "101 is outside 0..100");
    assert_submission_error("{\"priority\": \"high\"}", "priority", "expected an integer");
    assert_submission_error("{\"priority\": 5.5}", "priority", "expected an integer");
    assert_submission_error("{\"priority\": true}", "priority", "expected an integer");
    assert_submission_error("{\"max_attempts\": 0}", "max_attempts", "0 is outside 1..1000");
    assert_submission_error("{\"max_attempts\": 1001}", "max_attempts", "1001 is outside 1..1000");
    assert_submission_error("{\"max_attempts\": 99999999999999999999}", "max_attempts",
                            "is outside 1..1000");
    assert_submission_error("{\"timeout_seconds\": 0}", "timeout_seconds",
                            "0 is outside 1..2592000");
    assert_submission_error("{\"timeout_seconds\": 2592001}", "timeout_seconds",
                            "2592001 is outside 1..2592000");
    assert_submission_error("{\"timeout_seconds\": [1]}", "timeout_seconds", "expected an integer");
    assert_submission_error("{\"delay_seconds\": -0.5}", "delay_seconds",
                            "-0.5 is outside 0..31622400");
    assert_submission_error("{\"delay_seconds\": 31622401}", "delay_seconds",
                            "31622401 is outside 0..31622400");
    assert_submission_error("{\"delay_seconds\": \"5\"}", "delay_seconds",
                            "expected a number of seconds");
    assert_submission_error("{\"not_before\": \"tomorrow\"}", "not_before",
                            "expected an RFC 3339 date-time");
    assert_submission_error("{\"not_before\": 1796320800}", "not_before",
                            "expected an RFC 3339 date-time");
    assert_submission_error("{\"not_before\": \"2026-12-03T18:00:00\"}", "not_before",
                            "with a time zone");
    assert_submission_error("{\"not_before\": \"2027-12-05T18:00:00Z\"}", "not_before",
                            "is more than 366 days ahead");
    assert_submission_error("{\"not_before\": \"2026-12-02T17:59:59Z\"}", "not_before",
                            "is more than 24 hours ago");
    assert_submission_error("{\"not_before\": \"2026-12-04T00:00:00Z\", \"delay_seconds\": 5}",
                            "delay_seconds", "not both");
    assert_submission_error("{\"priority\": 1, \"max_attempts\": -3}", "max_attempts",
                            "-3 is outside");
}

static void library_refusals_name_the_member(void **state)
{
    (void)state;
    assert_string_equal(jobctl_field_of("submission.priority: 200 is outside 0..100"), "priority");
    assert_string_equal(jobctl_field_of("submission.not_before: more than a day ago"),
                        "not_before");
    assert_string_equal(jobctl_field_of("submission.delay_ms: 1e12 is too long"), "delay_seconds");
    assert_string_equal(jobctl_field_of("submission.timeout_seconds: 0"), "timeout_seconds");
    assert_string_equal(jobctl_field_of("submission.max_attempts: 0"), "max_attempts");
    assert_null(jobctl_field_of("config: not a JSON object"));
    assert_null(jobctl_field_of(NULL));
}

/* ---- JSON member spans -------------------------------------------------- */

static void assert_member(const char *text, const char *key, const char *expected)
{
    size_t start = 0, end = 0;
    int rc = jsonspan_member(text, strlen(text), key, &start, &end);
    if (!expected) {
        assert_int_equal(rc, -1);
        return;
    }
    assert_int_equal(rc, 0);
    if (end - start != strlen(expected) || memcmp(text + start, expected, end - start) != 0)
        fail_msg("member %s of %s: got '%.*s', expected '%s'", key, text, (int)(end - start),
                 text + start, expected);
}

static void the_config_text_is_taken_exactly_as_sent(void **state)
{
    (void)state;
    assert_member("{\"queue\":\"q\",\"config\":{\"a\":1.50, \"b\":[1,{\"c\":\"}\"}]}}", "config",
                  "{\"a\":1.50, \"b\":[1,{\"c\":\"}\"}]}");
    assert_member(" { \"config\" : [ 1 , 2 ] , \"id\" : \"x\" } ", "config", "[ 1 , 2 ]");
    assert_member("{\"config\":\"a \\\" quote\"}", "config", "\"a \\\" quote\"");
    assert_member("{\"config\":-1.5e3,\"x\":true}", "config", "-1.5e3");
    assert_member("{\"config\":null}", "config", "null");
    /* A key written with escapes is still "config"; the last duplicate wins
     * as it does in json-c. */
    assert_member("{\"\\u0063onfig\":{\"n\":1}}", "config", "{\"n\":1}");
    assert_member("{\"config\":{\"n\":1},\"config\":{\"n\":2}}", "config", "{\"n\":2}");
    assert_member("{\"configs\":{},\"conf\":{},\"x\":{\"config\":1}}", "config", NULL);
    assert_member("{}", "config", NULL);
    assert_member("[{\"config\":1}]", "config", NULL);
}

static void single_quoted_strings_are_found(void **state)
{
    (void)state;
    const char *text = "{\"a'\":\"it's\\\"'\",'b':1}";
    assert_int_equal(jsonspan_single_quote(text, strlen(text)),
                     (long)(strchr(text, 'b') - text - 1));
    text = "{\"a\":\"'\"}";
    assert_int_equal(jsonspan_single_quote(text, strlen(text)), -1);
}

/* ---- settings ----------------------------------------------------------- */

static char settings_dir[64];

static const char *const stack_vars[] = {
    "ACP_TEST_PG_HOST",       "ACP_TEST_PG_PORT",   "ACP_TEST_PG_USER",   "ACP_TEST_PG_PASSWORD",
    "ACP_TEST_PG_DB",         "ACP_TEST_AMQP_HOST", "ACP_TEST_AMQP_PORT", "ACP_TEST_AMQP_USER",
    "ACP_TEST_AMQP_PASSWORD", "ACP_TEST_S3_HOST",   "ACP_TEST_S3_PORT",   "ACP_TEST_S3_ACCESS_KEY",
    "ACP_TEST_S3_SECRET_KEY", "ACP_TEST_S3_BUCKET",
};

static void set_stack_env(void)
{
    for (size_t i = 0; i < sizeof stack_vars / sizeof stack_vars[0]; i++)
        setenv(stack_vars[i], strstr(stack_vars[i], "PORT") ? "1234" : "from-env", 1);
    setenv("ACP_TEST_S3_BUCKET", "bucket-from-env", 1);
}

static const char *write_config(const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/server.json", settings_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int settings_setup(void **state)
{
    (void)state;
    snprintf(settings_dir, sizeof settings_dir, "/tmp/acp-settings-XXXXXX");
    return mkdtemp(settings_dir) ? 0 : -1;
}

static int settings_teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/server.json", settings_dir);
    unlink(path);
    rmdir(settings_dir);
    return 0;
}

static void settings_default_to_the_stack_environment(void **state)
{
    (void)state;
    set_stack_env();
    settings s;
    char err[512];
    assert_int_equal(settings_load(&s, NULL, err, sizeof err), 0);
    assert_string_equal(s.listen_address, "127.0.0.1");
    assert_int_equal(s.port, 8080);
    assert_int_equal(s.max_body_bytes, 1024 * 1024);
    assert_int_equal(s.max_input_bytes, 1L << 30);
    assert_string_equal(s.db_host, "from-env");
    assert_int_equal(s.db_port, 1234);
    assert_string_equal(s.s3_bucket, "bucket-from-env");
    assert_int_equal(s.queue_count, 1);
    assert_string_equal(s.queues[0].id, "default");
    assert_int_equal(s.program_count, 0);

    acp_config config;
    acp_queue_config *queues;
    assert_int_equal(settings_to_acp_config(&s, &config, &queues), 0);
    assert_int_equal(config.db.port, 1234);
    assert_int_equal(config.queues[0].port, 1234);
    assert_string_equal(config.queues[0].host, "from-env");
    assert_int_equal(config.db.pool_size, 10); /* the library's default */
    assert_int_equal(config.layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(config.version, ACP_CONFIG_VERSION);
    assert_int_equal(config.queues[0].version, ACP_QUEUE_CONFIG_VERSION);
    assert_int_equal(config.cancel_grace_seconds, 10); /* the library's default */
    assert_int_equal(config.queues[0].timeout_seconds, 0);
    free(queues);
    settings_free(&s);
}

static void the_config_file_overrides_the_environment(void **state)
{
    (void)state;
    set_stack_env();
    const char *path = write_config(
        "{\"listen\": {\"address\": \"::1\", \"port\": 0},\n"
        " \"max_body_bytes\": 4096, \"max_input_bytes\": 1099511627776,\n"
        " \"database\": {\"host\": \"db.example\", \"port\": 5433, \"pool_size\": 3},\n"
        " \"s3\": {\"root_path\": \"svc\", \"https\": true, \"region\": \"eu-west-1\",\n"
        "        \"ca_file\": \"/etc/ca.pem\", \"signature\": \"v4\", \"addressing\": "
        "\"virtual\",\n"
        "        \"connect_timeout_ms\": 1500, \"request_timeout_ms\": 9000, \"retries\": 5,\n"
        "        \"part_size\": 8388608, \"upload_parallelism\": 2},\n"
        " \"queues\": [{\"id\": \"a\", \"workers\": 2, \"max_attempts\": 5,\n"
        "              \"retry_base_ms\": 250, \"retry_max_ms\": 4000, \"timeout_seconds\": 90},\n"
        "             {\"id\": \"b\", \"port\": 9999}],\n"
        " \"cancel_grace_seconds\": 4,\n"
        " \"shutdown_timeout\": 5, \"log_level\": \"debug\", \"max_attempts\": 7,\n"
        " \"result_retry_seconds\": 45, \"layout\": \"lcp\",\n"
        " \"executors\": {\"sleep\": {\"max_seconds\": 2.5},\n"
        "   \"command\": {\"programs\": {\"true\": \"/bin/true\"}, \"timeout_seconds\": 1,\n"
        "                 \"max_args\": 3}}}\n");
    settings s;
    char err[512];
    if (settings_load(&s, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(s.listen_address, "::1");
    assert_int_equal(s.port, 0);
    assert_int_equal(s.max_body_bytes, 4096);
    assert_int_equal(s.max_input_bytes, 1L << 40);
    assert_string_equal(s.db_host, "db.example");
    assert_string_equal(s.db_user, "from-env");
    assert_int_equal(s.queue_count, 2);
    assert_true(settings_has_queue(&s, "b"));
    assert_false(settings_has_queue(&s, "default"));
    assert_int_equal(s.log_level, ACP_LOG_DEBUG);
    assert_true(s.sleep_max_seconds == 2.5);
    assert_non_null(settings_find_program(&s, "true"));
    assert_null(settings_find_program(&s, "false"));

    acp_config config;
    acp_queue_config *queues;
    assert_int_equal(settings_to_acp_config(&s, &config, &queues), 0);
    assert_int_equal(config.db.port, 5433);
    assert_int_equal(config.db.pool_size, 3);
    assert_int_equal(config.s3.https, 1);
    assert_string_equal(config.s3.root_path, "svc");
    assert_string_equal(config.s3.region, "eu-west-1");
    assert_string_equal(config.s3.ca_file, "/etc/ca.pem");
    assert_null(config.s3.ca_path);
    assert_int_equal(config.s3_client.signature, ACP_S3_SIGNATURE_V4);
    assert_int_equal(config.s3_client.addressing, ACP_S3_ADDRESSING_VIRTUAL);
    assert_int_equal(config.s3_client.tls_skip_verify, 0);
    assert_int_equal(config.s3_client.connect_timeout_ms, 1500);
    assert_int_equal(config.s3_client.request_timeout_ms, 9000);
    assert_int_equal(config.s3_client.retries, 5);
    assert_int_equal(config.s3_client.retry_base_ms, 100); /* the library's default */
    assert_true(config.s3_client.part_size == 8u << 20);
    assert_true(config.s3_client.multipart_threshold == 16u << 20);
    assert_int_equal(config.s3_client.upload_parallelism, 2);
    assert_int_equal(config.queues[0].workers, 2);
    assert_int_equal(config.queues[0].port, 1234);
    assert_int_equal(config.queues[1].port, 9999);
    assert_int_equal(config.queues[0].max_attempts, 5);
    assert_int_equal(config.queues[0].retry_base_ms, 250);
    assert_int_equal(config.queues[0].retry_max_ms, 4000);
    assert_int_equal(config.queues[0].timeout_seconds, 90);
    /* Queue b says nothing: the library's defaults. */
    assert_int_equal(config.queues[1].max_attempts, 0);
    assert_int_equal(config.queues[1].retry_base_ms, 1000);
    assert_int_equal(config.queues[1].retry_max_ms, 300000);
    assert_int_equal(config.queues[1].timeout_seconds, 0);
    assert_int_equal(config.cancel_grace_seconds, 4);
    assert_int_equal(config.shutdown_timeout, 5);
    assert_int_equal(config.max_attempts, 7);
    assert_int_equal(config.result_retry_seconds, 45);
    assert_int_equal(config.layout, ACP_LAYOUT_LCP);
    free(queues);
    settings_free(&s);
}

static void assert_settings_error(const char *file_text, const char *expected)
{
    const char *path = write_config(file_text);
    settings s;
    char err[512];
    assert_int_equal(settings_load(&s, path, err, sizeof err), -1);
    if (!strstr(err, expected))
        fail_msg("error '%s' lacks '%s'", err, expected);
    settings_free(&s);
}

static void bad_settings_are_named(void **state)
{
    (void)state;
    set_stack_env();
    assert_settings_error("{\"databse\": {}}", "databse: unknown setting");
    assert_settings_error("{\"database\": {\"port\": 70000}}",
                          "database.port: 70000 is outside 1..65535");
    assert_settings_error("{\"database\": {\"port\": \"5432\"}}",
                          "database.port: expected an integer");
    assert_settings_error("{\"queues\": []}", "queues: expected a non-empty array");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"worker\": 1}]}",
                          "queues[0].worker: unknown setting");
    assert_settings_error("{\"log_level\": \"loud\"}", "log_level: expected");
    assert_settings_error("{\"max_input_bytes\": 1023}",
                          "max_input_bytes: 1023 is outside 1024..1099511627776");
    assert_settings_error("{\"max_input_bytes\": 1099511627777}",
                          "max_input_bytes: 1099511627777 is outside 1024..1099511627776");
    assert_settings_error("{\"max_input_bytes\": \"1G\"}", "max_input_bytes: expected an integer");
    assert_settings_error("{\"cancel_grace_seconds\": 0}",
                          "cancel_grace_seconds: 0 is outside 1..3600");
    assert_settings_error("{\"cancel_grace_seconds\": 2.5}",
                          "cancel_grace_seconds: expected an integer");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"max_attempts\": 1001}]}",
                          "queues[0].max_attempts: 1001 is outside 0..1000");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"retry_base_ms\": 0}]}",
                          "queues[0].retry_base_ms: 0 is outside 1..86400000");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"retry_max_ms\": \"1s\"}]}",
                          "queues[0].retry_max_ms: expected an integer");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"retry_base_ms\": 5000, "
                          "\"retry_max_ms\": 4000}]}",
                          "queues[0].retry_max_ms: 4000 is below retry_base_ms (5000)");
    assert_settings_error("{\"queues\": [{\"id\": \"a\"}, {\"id\": \"b\", \"retry_max_ms\": 500}]}",
                          "queues[1].retry_max_ms: 500 is below retry_base_ms (1000, the default)");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"timeout_seconds\": 2592001}]}",
                          "queues[0].timeout_seconds: 2592001 is outside 0..2592000");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"timeout_seconds\": -1}]}",
                          "queues[0].timeout_seconds: -1 is outside 0..2592000");
    assert_settings_error("{\"layout\": \"upstream\"}", "layout: expected \"native\" or \"lcp\"");
    assert_settings_error("{\"layout\": 2}", "layout: expected \"native\" or \"lcp\"");
    assert_settings_error("{\"s3\": {\"signature\": \"v3\"}}",
                          "s3.signature: expected \"v4\" or \"v2\"");
    assert_settings_error("{\"s3\": {\"addressing\": \"dns\"}}",
                          "s3.addressing: expected \"auto\", \"path\" or \"virtual\"");
    assert_settings_error("{\"s3\": {\"part_size\": 1024}}",
                          "s3.part_size: 1024 is outside 5242880..5368709120");
    assert_settings_error("{\"s3\": {\"tls_skip_verify\": 1}}",
                          "s3.tls_skip_verify: expected true or false");
    assert_settings_error("{\"s3\": {\"request_timeout_ms\": 10}}",
                          "s3.request_timeout_ms: 10 is outside 1000..3600000");
    assert_settings_error("{\"executors\": {\"shell\": {}}}", "executors.shell: unknown executor");
    assert_settings_error("{\"executors\": {\"checksum\": {\"x\": 1}}}",
                          "executors.checksum: has no settings");
    assert_settings_error("{\"executors\": {\"sleep\": {\"max_seconds\": -1}}}",
                          "executors.sleep.max_seconds: -1 is outside 0..86400");
    assert_settings_error("{\"executors\": {\"command\": {\"programs\": {\"sh\": \"sh\"}}}}",
                          "programs.sh: expected an absolute path");
    assert_settings_error(
        "{\"executors\": {\"command\": {\"programs\": {\"x\": \"/no/such/program\"}}}}",
        "programs.x: /no/such/program: No such file or directory");
    assert_settings_error(
        "{\"executors\": {\"command\": {\"programs\": {\"a b\": \"/bin/true\"}}}}",
        "'a b' is not a name");
    assert_settings_error("{\"queues\": [{\"id\": \"a\", \"host\": \"h\\u0000x\"}]}",
                          "queues[0].host: expected a string without NUL characters");
    assert_settings_error("{\"queues\": [{\"id\": \"a\\u0000b\"}]}",
                          "queues[0]: expected an object with a string \"id\"");
    assert_settings_error("{\"database\\u0000\": {}}", "the key at byte 1 contains a NUL");
    assert_settings_error("{\"listen\": {\"port\": 1,}}", "not valid JSON");
    assert_settings_error("{} {}", "not valid JSON");
    assert_settings_error("{'listen': {}}", "a single-quoted string at byte 1");

    unsetenv("ACP_TEST_PG_HOST");
    assert_settings_error("{}", "database.host is not set (config file) and neither is "
                                "ACP_TEST_PG_HOST");
    set_stack_env();
    setenv("ACP_TEST_PG_PORT", "55x", 1);
    settings s;
    char err[512];
    assert_int_equal(settings_load(&s, NULL, err, sizeof err), -1);
    assert_string_equal(err, "ACP_TEST_PG_PORT: '55x' is not an integer");
    settings_free(&s);

    set_stack_env();
    assert_int_equal(settings_load(&s, "/no/such/file.json", err, sizeof err), -1);
    assert_string_equal(err, "/no/such/file.json: No such file or directory");
}

/* POST /jobs by Content-Type: what curl -d and fetch() send stays JSON. */
static void submission_content_types_are_sorted(void **state)
{
    (void)state;
    assert_int_equal(upload_kind_of(NULL), UPLOAD_JSON);
    assert_int_equal(upload_kind_of(""), UPLOAD_JSON);
    assert_int_equal(upload_kind_of("application/json"), UPLOAD_JSON);
    assert_int_equal(upload_kind_of("Application/JSON; charset=utf-8"), UPLOAD_JSON);
    assert_int_equal(upload_kind_of("application/x-www-form-urlencoded"), UPLOAD_JSON);
    assert_int_equal(upload_kind_of("text/plain;charset=UTF-8"), UPLOAD_JSON);
    assert_int_equal(upload_kind_of("application/merge-patch+json"), UPLOAD_JSON);
    assert_int_equal(upload_kind_of("multipart/form-data; boundary=x"), UPLOAD_MULTIPART);
    assert_int_equal(upload_kind_of("MULTIPART/FORM-DATA;boundary=x"), UPLOAD_MULTIPART);
    assert_int_equal(upload_kind_of("multipart/form-database"), UPLOAD_REFUSED);
    assert_int_equal(upload_kind_of("multipart/mixed; boundary=x"), UPLOAD_REFUSED);
    assert_int_equal(upload_kind_of("application/xml"), UPLOAD_REFUSED);
    assert_int_equal(upload_kind_of("+json"), UPLOAD_REFUSED);
}

static void a_settings_file_with_a_nul_byte_is_refused(void **state)
{
    (void)state;
    set_stack_env();
    char path[] = "/tmp/acp-units-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static const char text[] = "{\"listen\": {\"port\": 1}}\0{\"whatever\": 1}";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    settings s;
    char err[512];
    assert_int_equal(settings_load(&s, path, err, sizeof err), -1);
    if (!strstr(err, "a NUL byte at byte 23"))
        fail_msg("error '%s' lacks the NUL byte's offset", err);
    settings_free(&s);
    unlink(path);
}

static void nul_in_member_names_is_found(void **state)
{
    (void)state;
    static const char with_nul[] = "{\"a\": 1, \"config\\u0000\": 2}";
    static const char in_value[] = "{\"a\": \"x\\u0000y\", \"b\": [\"\\u0000\"]}";
    static const char escaped_backslash[] = "{\"a\\\\u0000\": 1}";
    static const char nested[] = "{\"a\": {\"b\": {\"c\\u0000\" : 1}}}";
    assert_int_equal(jsonspan_nul_key(with_nul, strlen(with_nul)), 9);
    assert_int_equal(jsonspan_nul_key(in_value, strlen(in_value)), -1);
    assert_int_equal(jsonspan_nul_key(escaped_backslash, strlen(escaped_backslash)), -1);
    assert_int_equal(jsonspan_nul_key(nested, strlen(nested)), 13);
}

static void program_options_are_allowlisted(void **state)
{
    (void)state;
    set_stack_env();
    const char *path = write_config(
        "{\"executors\": {\"command\": {\"programs\": {\"wc\": {\"path\": \"/usr/bin/wc\",\n"
        "  \"options\": [\"-c\", \"--lines=\"]}, \"cat\": \"/usr/bin/cat\"}}}}\n");
    settings s;
    char err[512];
    if (settings_load(&s, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    const settings_program *wc = settings_find_program(&s, "wc");
    const settings_program *cat = settings_find_program(&s, "cat");
    assert_non_null(wc);
    assert_non_null(cat);
    assert_true(programs_arg_allowed(wc, "-c"));
    assert_true(programs_arg_allowed(wc, "--lines=3"));
    assert_true(programs_arg_allowed(wc, "input-config"));
    assert_false(programs_arg_allowed(wc, "--lines"));
    assert_false(programs_arg_allowed(wc, "-cl"));
    assert_false(programs_arg_allowed(wc, "--files0-from=/proc/1/environ"));
    assert_false(programs_arg_allowed(wc, "--"));
    assert_false(programs_arg_allowed(cat, "-"));
    assert_true(programs_arg_allowed(cat, "x-y"));
    settings_free(&s);

    assert_settings_error("{\"executors\": {\"command\": {\"programs\": {\"wc\": {\"path\": "
                          "\"/usr/bin/wc\", \"options\": \"-c\"}}}}}",
                          "programs.wc.options: expected an array");
    assert_settings_error("{\"executors\": {\"command\": {\"programs\": {\"wc\": {\"path\": "
                          "\"/usr/bin/wc\", \"options\": [\"c\"]}}}}}",
                          "programs.wc.options[0]: expected an option starting with '-'");
    assert_settings_error("{\"executors\": {\"command\": {\"programs\": {\"wc\": {\"path\": "
                          "\"/usr/bin/wc\", \"options\": [\"-a b\"]}}}}}",
                          "programs.wc.options[0]");
    assert_settings_error("{\"executors\": {\"command\": {\"programs\": {\"wc\": {\"path\": "
                          "\"/usr/bin/wc\", \"option\": []}}}}}",
                          "programs.wc.option: unknown setting");
    assert_settings_error("{\"executors\": {\"command\": {\"programs\": {\"wc\": "
                          "{\"options\": []}}}}}",
                          "programs.wc: expected an absolute path");
}

static void the_sandbox_is_checked_at_start(void **state)
{
    (void)state;
    set_stack_env();
    char outside[] = "/tmp/acp-units-XXXXXX";
    int fd = mkstemp(outside);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0755), 0);
    close(fd);
    char text[512];
    snprintf(text, sizeof text, "{\"executors\": {\"command\": {\"programs\": {\"x\": \"%s\"}}}}",
             outside);
    assert_settings_error(text, "programs.x: ");
    assert_settings_error(text, "is not under /usr, the only part of the host the sandbox shows");
    /* Unconfined (an explicit choice), a program may live anywhere. */
    snprintf(text, sizeof text,
             "{\"executors\": {\"command\": {\"sandbox\": false, \"programs\": {\"x\": "
             "\"%s\"}}}}",
             outside);
    const char *path = write_config(text);
    settings s;
    char err[512];
    if (settings_load(&s, path, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(s.command_sandbox, 0);
    settings_free(&s);
    unlink(outside);

    assert_settings_error("{\"executors\": {\"command\": {\"bwrap\": \"/no/bwrap\"}}}",
                          "executors.command.bwrap: /no/bwrap: No such file or directory "
                          "(install bubblewrap");
    assert_settings_error("{\"executors\": {\"command\": {\"max_processes\": 0}}}",
                          "executors.command.max_processes: 0 is outside 1..65536");
    assert_settings_error("{\"executors\": {\"command\": {\"max_memory_bytes\": 1024}}}",
                          "executors.command.max_memory_bytes: 1024 is outside");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_matches_the_fips_180_2_vectors),
        cmocka_unit_test(sha256_pads_every_length_around_a_block),
        cmocka_unit_test(every_library_error_has_its_http_status),
        cmocka_unit_test(rfc_3339_times_are_parsed),
        cmocka_unit_test(job_control_members_reach_the_submission),
        cmocka_unit_test(bad_job_control_members_are_named),
        cmocka_unit_test(library_refusals_name_the_member),
        cmocka_unit_test(the_config_text_is_taken_exactly_as_sent),
        cmocka_unit_test(single_quoted_strings_are_found),
        cmocka_unit_test(settings_default_to_the_stack_environment),
        cmocka_unit_test(the_config_file_overrides_the_environment),
        cmocka_unit_test(bad_settings_are_named),
        cmocka_unit_test(a_settings_file_with_a_nul_byte_is_refused),
        cmocka_unit_test(submission_content_types_are_sorted),
        cmocka_unit_test(nul_in_member_names_is_found),
        cmocka_unit_test(program_options_are_allowlisted),
        cmocka_unit_test(the_sandbox_is_checked_at_start),
    };
    return cmocka_run_group_tests(tests, settings_setup, settings_teardown);
}
