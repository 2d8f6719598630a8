/* config_s3.c: the S3 client's settings and credentials (config_s3.h). */
#include "config_s3.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_TIMEOUT_MS 30000
#define DEFAULT_RETRIES            3
#define DEFAULT_RETRY_BASE_MS      100
#define DEFAULT_RETRY_MAX_MS       10000
#define DEFAULT_PART_SIZE          (16ull << 20)
#define DEFAULT_PARALLELISM        4

void config_s3_client_defaults(acp_s3_client_config *client)
{
    *client = (acp_s3_client_config){
        .signature = ACP_S3_SIGNATURE_DEFAULT,
        .addressing = ACP_S3_ADDRESSING_DEFAULT,
        .connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS,
        .request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS,
        .retries = DEFAULT_RETRIES,
        .retry_base_ms = DEFAULT_RETRY_BASE_MS,
        .retry_max_ms = DEFAULT_RETRY_MAX_MS,
        .multipart_threshold = DEFAULT_PART_SIZE,
        .part_size = DEFAULT_PART_SIZE,
        .upload_parallelism = DEFAULT_PARALLELISM,
    };
}

static bool empty(const char *s)
{
    return !s || !*s;
}

void config_s3_credentials_from_env(acp_s3_config *s3)
{
    if (!empty(s3->access_key) || !empty(s3->secret_key))
        return;
    s3->access_key = getenv("AWS_ACCESS_KEY_ID");
    s3->secret_key = getenv("AWS_SECRET_ACCESS_KEY");
    if (!s3->session_token)
        s3->session_token = getenv("AWS_SESSION_TOKEN");
}

/* Header values go out as they are: no control characters or spaces. */
static bool header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

int config_s3_check_credentials(const acp_s3_config *s3)
{
    bool access = !empty(s3->access_key), secret = !empty(s3->secret_key);
    if (!access && !secret)
        return error_set(ACP_EINVAL,
                         "config.s3.access_key: missing S3 credentials (set access_key and "
                         "secret_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the "
                         "environment)");
    if (!access)
        return error_set(ACP_EINVAL, "config.s3.access_key: missing, but secret_key is set");
    if (!secret)
        return error_set(ACP_EINVAL, "config.s3.secret_key: missing, but access_key is set");
    if (!header_safe(s3->access_key))
        return error_set(ACP_EINVAL,
                         "config.s3.access_key: contains a space or a control character");
    if (!header_safe(s3->secret_key))
        return error_set(ACP_EINVAL,
                         "config.s3.secret_key: contains a space or a control character");
    if (s3->session_token && !header_safe(s3->session_token))
        return error_set(ACP_EINVAL,
                         "config.s3.session_token: contains a space or a control character");
    return 0;
}

static int range(const char *field, unsigned long long value, unsigned long long min,
                 unsigned long long max)
{
    if (value < min || value > max)
        return error_set(ACP_EINVAL, "config.s3_client.%s: %llu is outside %llu..%llu", field,
                         value, min, max);
    return 0;
}

static int check_region(const char *region)
{
    if (empty(region))
        return 0;
    size_t len = strlen(region);
    for (size_t i = 0; i < len; i++) {
        char c = region[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return error_set(ACP_EINVAL,
                             "config.s3.region: '%s' is not a region name (lowercase letters, "
                             "digits and '-', such as \"eu-west-1\")",
                             region);
    }
    if (len > 64)
        return error_set(ACP_EINVAL, "config.s3.region: longer than 64 characters");
    return 0;
}

int config_s3_check_client(const acp_s3_config *s3, const acp_s3_client_config *c)
{
    int rc;
    if (c->signature != ACP_S3_SIGNATURE_DEFAULT && c->signature != ACP_S3_SIGNATURE_V4 &&
        c->signature != ACP_S3_SIGNATURE_V2)
        return error_set(ACP_EINVAL,
                         "config.s3_client.signature: %d is not a signature version "
                         "(ACP_S3_SIGNATURE_V4 or ACP_S3_SIGNATURE_V2)",
                         (int)c->signature);
    if (c->addressing != ACP_S3_ADDRESSING_DEFAULT && c->addressing != ACP_S3_ADDRESSING_PATH &&
        c->addressing != ACP_S3_ADDRESSING_VIRTUAL)
        return error_set(ACP_EINVAL,
                         "config.s3_client.addressing: %d is not an addressing style "
                         "(ACP_S3_ADDRESSING_PATH or ACP_S3_ADDRESSING_VIRTUAL)",
                         (int)c->addressing);
    if ((rc = check_region(s3->region)) ||
        (rc = range("connect_timeout_ms", c->connect_timeout_ms, 1, ACP_S3_TIMEOUT_MS_MAX)) ||
        (rc = range("request_timeout_ms", c->request_timeout_ms, 1000, ACP_S3_TIMEOUT_MS_MAX)) ||
        (rc = range("retries", c->retries, 0, ACP_S3_RETRIES_MAX)) ||
        (rc = range("retry_base_ms", c->retry_base_ms, 1, 60000)) ||
        (rc = range("retry_max_ms", c->retry_max_ms, c->retry_base_ms, 600000)) ||
        (rc = range("multipart_threshold", c->multipart_threshold, ACP_S3_PART_SIZE_MIN,
                    ACP_S3_PART_SIZE_MAX)) ||
        (rc = range("part_size", c->part_size, ACP_S3_PART_SIZE_MIN, ACP_S3_PART_SIZE_MAX)) ||
        (rc = range("upload_parallelism", c->upload_parallelism, 1, ACP_S3_PARALLELISM_MAX)))
        return rc;
    bool v2 = config_s3_signature(c) == ACP_S3_SIGNATURE_V2;
    if (v2 && s3->https && !c->tls_skip_verify)
        return error_set(ACP_EINVAL,
                         "config.s3_client.signature: V2 (libs3) cannot verify TLS certificates; "
                         "use V4, or set tls_skip_verify to accept an unverified server");
    if (v2 && (s3->session_token && *s3->session_token))
        return error_set(ACP_EINVAL,
                         "config.s3.session_token: not supported with signature V2 (libs3); "
                         "use V4");
    if (v2 && c->addressing == ACP_S3_ADDRESSING_VIRTUAL)
        return error_set(ACP_EINVAL, "config.s3_client.addressing: virtual-hosted addressing "
                                     "is not supported with signature V2 (libs3); use V4");
    if ((s3->ca_file || s3->ca_path) && !s3->https)
        return error_set(ACP_EINVAL, "config.s3.%s: set, but config.s3.https is off",
                         s3->ca_file ? "ca_file" : "ca_path");
    return 0;
}

acp_s3_signature config_s3_signature(const acp_s3_client_config *client)
{
    return client->signature == ACP_S3_SIGNATURE_V2 ? ACP_S3_SIGNATURE_V2 : ACP_S3_SIGNATURE_V4;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

bool config_s3_virtual_hosted(const acp_s3_config *s3, const acp_s3_client_config *client)
{
    if (client->addressing != ACP_S3_ADDRESSING_DEFAULT)
        return client->addressing == ACP_S3_ADDRESSING_VIRTUAL;
    return s3->host && ends_with(s3->host, ".amazonaws.com") && !strchr(s3->bucket, '.');
}
