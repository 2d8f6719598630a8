/* The JSON reader and the compact writer (src/json.c).
 *
 * Properties, for any input:
 * - json_parse() never accepts what RFC 8259 forbids (json_reference.c is
 *   the judge), and always accepts plain JSON within its 64 levels;
 * - a rejection is ACP_EINVAL or ACP_ETOOBIG with a message that names
 *   what was parsed;
 * - whatever it accepts, the compact writer writes; the output is JSON,
 *   parses back to an equal value, and writing that again gives the same
 *   bytes; json_compact_text() gives the same bytes too. */
#include <string.h>

#include <async_platform.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "json_reference.h"

#define WHAT "fuzz input"

static int write_text(json_object *value, buf *out)
{
    *out = (buf)BUF_INIT;
    return json_write_compact(out, value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_ref_verdict verdict = json_ref_check(text, size, 64);
    json_object *value = NULL;
    int rc = json_parse(text, size, WHAT, &value);
    if (rc != 0) {
        FUZZ_CHECK(rc == ACP_EINVAL || rc == ACP_ETOOBIG, "json_parse returned %d", rc);
        FUZZ_CHECK(strncmp(acp_last_error(), WHAT ": ", strlen(WHAT ": ")) == 0,
                   "the error does not name what was parsed: %s", acp_last_error());
        FUZZ_CHECK(verdict != JSON_REF_PLAIN, "plain JSON of %zu bytes rejected: %s", size,
                   acp_last_error());
        return 0;
    }
    FUZZ_CHECK(verdict != JSON_REF_INVALID, "json_parse accepted %zu bytes that are not JSON",
               size);

    buf first, second;
    rc = write_text(value, &first);
    FUZZ_CHECK(rc == 0, "the writer failed on an accepted value: %s", acp_last_error());
    FUZZ_CHECK(json_ref_check(first.data, first.len, 64) != JSON_REF_INVALID,
               "the writer wrote something that is not JSON: %s", first.data);
    json_object *again = NULL;
    rc = json_parse(first.data, first.len, "written", &again);
    FUZZ_CHECK(rc == 0, "the compact form does not parse back: %s (%s)", acp_last_error(),
               first.data);
    FUZZ_CHECK(json_object_equal(value, again), "parsed back to another value: %s", first.data);
    rc = write_text(again, &second);
    FUZZ_CHECK(rc == 0, "the writer failed on a value it wrote: %s", acp_last_error());
    FUZZ_CHECK(first.len == second.len && memcmp(first.data, second.data, first.len) == 0,
               "writing twice differs:\n  %s\n  %s", first.data, second.data);

    /* The entry point of job configs: the same bytes when the text fits. */
    if (size <= ACP_JOB_CONFIG_MAX) {
        char *copy = malloc(size + 1);
        if (!copy)
            abort();
        memcpy(copy, data, size);
        copy[size] = '\0';
        buf compact = BUF_INIT;
        rc = json_compact_text(copy, WHAT, &compact);
        FUZZ_CHECK(rc == 0, "json_compact_text rejected what json_parse accepted: %s",
                   acp_last_error());
        FUZZ_CHECK(compact.len == first.len && memcmp(compact.data, first.data, first.len) == 0,
                   "json_compact_text differs from the writer: %s", compact.data);
        buf_free(&compact);
        free(copy);
    }

    buf_free(&first);
    buf_free(&second);
    json_object_put(again);
    json_object_put(value);
    return 0;
}
