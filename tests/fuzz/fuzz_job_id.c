/* Job ids (src/id.c): acp_job_id_parse(), acp_job_id_format() and
 * acp_job_id_from_config().
 *
 * Properties, for any input:
 * - parse accepts exactly the strings of 32 hexadecimal characters (a
 *   plain reference predicate decides), and a rejection says "job id: ...";
 * - format of what parse read gives the input in lower case, and parse of
 *   a formatted id is the identity (the first 16 bytes, taken as an id);
 * - an id derived from a config is the id of its compact form: equal
 *   configs, however written, make the same id. */
#include <ctype.h>
#include <string.h>

#include <async_platform.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"

static int reference_is_id(const char *s)
{
    size_t n = strlen(s);
    if (n != 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';

    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    int rc = acp_job_id_parse(&id, text);
    int expected = reference_is_id(text);
    FUZZ_CHECK((rc == 0) == expected, "parse returned %d for \"%s\" (expected %s)", rc, text,
               expected ? "success" : "failure");
    if (rc == 0) {
        acp_job_id_format(&id, hex);
        for (size_t i = 0; i < 32; i++)
            FUZZ_CHECK(hex[i] == tolower((unsigned char)text[i]), "format gave %s for %s", hex,
                       text);
    } else {
        FUZZ_CHECK(rc == ACP_EINVAL, "parse returned %d", rc);
        FUZZ_CHECK(strncmp(acp_last_error(), "job id: ", 8) == 0 && strlen(acp_last_error()) > 8,
                   "the error does not name the job id: %s", acp_last_error());
    }

    if (size >= 16) {
        acp_job_id raw, back;
        memcpy(raw.bytes, data, 16);
        FUZZ_CHECK(acp_job_id_format(&raw, hex) == hex, "format failed");
        FUZZ_CHECK(strlen(hex) == 32, "format wrote %zu characters", strlen(hex));
        FUZZ_CHECK(acp_job_id_parse(&back, hex) == 0, "parse rejected a formatted id %s: %s", hex,
                   acp_last_error());
        FUZZ_CHECK(acp_job_id_equal(&raw, &back), "parse of format is not the identity: %s", hex);
    }

    /* The input as a job config. */
    acp_job_id derived, from_compact;
    rc = acp_job_id_from_config(&derived, text);
    buf compact = BUF_INIT;
    int compact_rc = json_compact_text(text, "job config", &compact);
    FUZZ_CHECK((rc == 0) == (compact_rc == 0), "from_config %d but compacting %d", rc, compact_rc);
    if (rc == 0) {
        FUZZ_CHECK(acp_job_id_from_config(&from_compact, compact.data) == 0,
                   "the compact form of an accepted config is refused: %s", acp_last_error());
        FUZZ_CHECK(acp_job_id_equal(&derived, &from_compact),
                   "the compact form %s makes another id", compact.data);
    }
    buf_free(&compact);
    free(text);
    return 0;
}
