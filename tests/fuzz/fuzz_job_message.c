/* The job message (src/job_message.c, docs/compatibility.adoc): job_message_parse() and
 * job_message_format().
 *
 * The first byte picks the direction.
 * Parsing (even): the rest is a message off the queue. Whatever the parser
 * accepts is JSON (json_reference.c judges), an object whose "jobID" is
 * the id it returned; the config it returned is JSON; formatting that id
 * and config and parsing the result gives them back unchanged.
 * Formatting (odd): 16 bytes of id, 8 of dispatch time, a flag byte and
 * the config text. Whatever the formatter writes is JSON and parses back
 * to the same id and to the config's compact form; it refuses only a
 * config that json_compact_text() refuses, or a time outside years
 * 0..9999. Rejections are ACP_EINVAL or ACP_ETOOBIG with a message. */
#include <string.h>

#include <async_platform.h>

#include "buf.h"
#include "fuzz.h"
#include "job_message.h"
#include "json.h"
#include "json_reference.h"

/* 2026-12-03T00:00:00Z: a dispatch time that is always in range. */
#define SOME_TIME_US (1796256000LL * 1000000)

static void expect_error(int rc, const char *what)
{
    FUZZ_CHECK(rc == ACP_EINVAL || rc == ACP_ETOOBIG, "%s returned %d", what, rc);
    FUZZ_CHECK(acp_last_error()[0] != '\0', "%s gave no message", what);
}

/* job_message_format() then job_message_parse() must give back @id and the
 * compact form of @config. */
static void round_trip(const acp_job_id *id, const char *config, int64_t when)
{
    buf message = BUF_INIT;
    int rc = job_message_format(&message, id, config, when);
    buf compact = BUF_INIT;
    int compact_rc = config ? json_compact_text(config, "job config", &compact) : 0;
    if (rc != 0) {
        expect_error(rc, "job_message_format");
        FUZZ_CHECK(message.len == 0, "a failed format left %zu bytes", message.len);
        FUZZ_CHECK(compact_rc != 0 || when != SOME_TIME_US,
                   "the formatter refused a config json_compact_text accepts: %s",
                   acp_last_error());
        buf_free(&compact);
        return;
    }
    FUZZ_CHECK(compact_rc == 0, "the formatter accepted a config json_compact_text refuses: %s",
               acp_last_error());
    FUZZ_CHECK(json_ref_check(message.data, message.len, 65) != JSON_REF_INVALID,
               "the formatter wrote something that is not JSON: %s", message.data);
    acp_job_id back;
    char *config_back = NULL;
    rc = job_message_parse(message.data, message.len, &back, &config_back);
    FUZZ_CHECK(rc == 0, "a formatted message does not parse: %s\n  %s", acp_last_error(),
               message.data);
    FUZZ_CHECK(acp_job_id_equal(id, &back), "the id changed: %s", message.data);
    if (!config) {
        FUZZ_CHECK(!config_back, "no config went in, %s came out", config_back);
    } else if (strcmp(compact.data, "null") == 0) {
        FUZZ_CHECK(!config_back, "a null config came out as %s", config_back);
    } else {
        FUZZ_CHECK(config_back && strcmp(config_back, compact.data) == 0,
                   "the config changed:\n  in:  %s\n  out: %s", compact.data,
                   config_back ? config_back : "(none)");
    }
    free(config_back);
    buf_free(&compact);
    buf_free(&message);
}

static void parse_direction(const char *body, size_t len)
{
    acp_job_id id;
    char *config = (char *)"untouched";
    int rc = job_message_parse(body, len, &id, &config);
    if (rc != 0) {
        expect_error(rc, "job_message_parse");
        FUZZ_CHECK(!config, "a failed parse left a config");
        return;
    }
    FUZZ_CHECK(json_ref_check(body, len, 65) != JSON_REF_INVALID,
               "the parser accepted a message that is not JSON");
    json_object *root = NULL, *job_id = NULL;
    FUZZ_CHECK(json_parse(body, len, "message", &root) == 0 &&
                   json_object_is_type(root, json_type_object),
               "an accepted message is not a JSON object");
    FUZZ_CHECK(json_object_object_get_ex(root, "jobID", &job_id) &&
                   json_object_is_type(job_id, json_type_string),
               "an accepted message has no jobID string");
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&id, hex);
    FUZZ_CHECK(strcasecmp(hex, json_object_get_string(job_id)) == 0,
               "the parser read jobID %s as %s", json_object_get_string(job_id), hex);
    json_object_put(root);
    if (config)
        FUZZ_CHECK(json_ref_check(config, strlen(config), 65) != JSON_REF_INVALID,
                   "the parser's config is not JSON: %s", config);
    round_trip(&id, config, SOME_TIME_US);
    free(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 2 == 0) {
        parse_direction((const char *)data + 1, size - 1);
        return 0;
    }
    if (size < 1 + 16 + 8 + 1)
        return 0;
    acp_job_id id;
    memcpy(id.bytes, data + 1, 16);
    int64_t when;
    memcpy(&when, data + 17, 8);
    unsigned flags = data[25];
    if (flags & 1)
        when = SOME_TIME_US;
    size_t config_len = size - 26;
    char *config = malloc(config_len + 1);
    if (!config)
        abort();
    memcpy(config, data + 26, config_len);
    config[config_len] = '\0';
    round_trip(&id, flags & 2 ? NULL : config, when);
    free(config);
    return 0;
}
