/* Job ids: parsing, formatting, random generation and derivation from a
 * config. */
#include <string.h>
#include <uuid/uuid.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "md5.h"

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int acp_job_id_parse(acp_job_id *out, const char *text)
{
    if (!out || !text)
        return error_set(ACP_EINVAL, "job id: NULL argument");
    size_t len = strnlen(text, ACP_JOB_ID_HEX_LEN + 1);
    if (len != ACP_JOB_ID_HEX_LEN)
        return error_set(ACP_EINVAL, "job id: expected %d hexadecimal characters, got %s%zu",
                         ACP_JOB_ID_HEX_LEN, len > ACP_JOB_ID_HEX_LEN ? "more than " : "",
                         len > ACP_JOB_ID_HEX_LEN ? (size_t)ACP_JOB_ID_HEX_LEN : len);
    acp_job_id id;
    for (size_t i = 0; i < 16; i++) {
        int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            size_t at = hi < 0 ? 2 * i : 2 * i + 1;
            unsigned char c = (unsigned char)text[at];
            if (c >= 0x20 && c < 0x7f)
                return error_set(ACP_EINVAL,
                                 "job id: '%c' at position %zu is not a hexadecimal digit", c, at);
            return error_set(ACP_EINVAL,
                             "job id: byte 0x%02x at position %zu is not a hexadecimal digit", c,
                             at);
        }
        id.bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    *out = id;
    return 0;
}

char *acp_job_id_format(const acp_job_id *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    if (!id || !out)
        return NULL;
    for (size_t i = 0; i < 16; i++) {
        out[2 * i] = hex[id->bytes[i] >> 4];
        out[2 * i + 1] = hex[id->bytes[i] & 15];
    }
    out[ACP_JOB_ID_HEX_LEN] = '\0';
    return out;
}

int acp_job_id_equal(const acp_job_id *a, const acp_job_id *b)
{
    return a && b && memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}

int acp_job_id_generate(acp_job_id *out)
{
    if (!out)
        return error_set(ACP_EINVAL, "job id: NULL argument");
    uuid_t uuid;
    uuid_generate_random(uuid);
    memcpy(out->bytes, uuid, sizeof out->bytes);
    return 0;
}

int acp_job_id_from_config(acp_job_id *out, const char *config_json)
{
    if (!out || !config_json)
        return error_set(ACP_EINVAL, "job config: NULL argument");
    buf compact = BUF_INIT;
    int rc = json_compact_text(config_json, "job config", &compact);
    if (rc) {
        buf_free(&compact);
        return rc;
    }
    md5_ctx md5;
    md5_init(&md5);
    md5_update(&md5, compact.data, compact.len);
    md5_final(&md5, out->bytes);
    buf_free(&compact);
    return 0;
}
