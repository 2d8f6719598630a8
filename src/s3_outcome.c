/* s3_outcome.c: classifying S3 answers and curl's errors (s3_outcome.h). */
#include "s3_outcome.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "s3_xml.h"

transport_result s3_outcome_of_status(long status)
{
    if (status >= 200 && status < 300)
        return TRANSPORT_OK;
    switch (status) {
    case 404:
        return TRANSPORT_NOT_FOUND;
    case 403:
        return TRANSPORT_DENIED;
    case 500:
    case 502:
    case 503:
    case 504:
        return TRANSPORT_TRANSIENT;
    default:
        return TRANSPORT_PERMANENT;
    }
}

transport_result s3_outcome_of_curl(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return TRANSPORT_OK;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return TRANSPORT_UNREACHABLE;
    case CURLE_OUT_OF_MEMORY:
        return TRANSPORT_NO_MEMORY;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR:
    case CURLE_WRITE_ERROR:
        return TRANSPORT_ABORTED;
    /* The certificate or the TLS set-up: the same next time. */
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    /* The request as built: a bug or a setting, not the network. */
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_LOGIN_DENIED:
    case CURLE_AUTH_ERROR:
        return TRANSPORT_PERMANENT;
    default:
        /* Timeouts, resets, short bodies, a TLS handshake cut off. */
        return TRANSPORT_TRANSIENT;
    }
}

static const char *s3_outcome_reason(long status)
{
    switch (status) {
    case 200:
        return "OK";
    case 301:
        return "Moved Permanently";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "";
    }
}

/* What the codes of wrong settings mean for the user. */
static const char *s3_outcome_hint(const char *code)
{
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return "the access key is not known";
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return "the secret key does not match the access key";
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return "this machine's clock differs too much from the server's";
    if (strcmp(code, "NoSuchBucket") == 0)
        return "the bucket does not exist";
    return NULL;
}

static void s3_outcome_append(transport_outcome *o, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s3_outcome_append(transport_outcome *o, size_t *len, const char *fmt, ...)
{
    if (*len >= sizeof o->detail - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->detail + *len, sizeof o->detail - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n;
    if (*len > sizeof o->detail - 1)
        *len = sizeof o->detail - 1;
}

/* Codes inside a 200 answer that are worth another try. */
static bool s3_outcome_code_transient(const char *code)
{
    return strcmp(code, "InternalError") == 0 || strcmp(code, "SlowDown") == 0 ||
           strcmp(code, "ServiceUnavailable") == 0;
}

bool s3_outcome_body_is_error(const char *body, size_t len)
{
    s3_xml_error error;
    return body && s3_xml_error_parse(body, len, &error);
}

void s3_outcome_http(transport_outcome *o, long status, const char *body, size_t len,
                     const char *bucket_region, const char *signed_region)
{
    s3_xml_error error;
    memset(&error, 0, sizeof error);
    if (body && len)
        (void)s3_xml_error_parse(body, len, &error);
    *o = (transport_outcome){.result = s3_outcome_of_status(status), .http_status = (int)status};
    if (o->result == TRANSPORT_OK) /* an error inside a 2xx answer */
        o->result =
            s3_outcome_code_transient(error.code) ? TRANSPORT_TRANSIENT : TRANSPORT_PERMANENT;
    snprintf(o->code, sizeof o->code, "%s", error.code);
    snprintf(o->message, sizeof o->message, "%s", error.message);
    size_t n = 0;
    s3_outcome_append(o, &n, "HTTP %ld", status);
    if (error.code[0])
        s3_outcome_append(o, &n, " %s", error.code);
    else if (*s3_outcome_reason(status))
        s3_outcome_append(o, &n, " %s", s3_outcome_reason(status));
    const char *hint = s3_outcome_hint(error.code);
    if (hint)
        s3_outcome_append(o, &n, ": %s", hint);
    if (error.message[0])
        s3_outcome_append(o, &n, "%s%s", hint ? " (" : ": ", error.message);
    if (error.message[0] && hint)
        s3_outcome_append(o, &n, ")");
    if (error.resource[0])
        s3_outcome_append(o, &n, " (resource %s)", error.resource);
    const char *region = error.region[0] ? error.region : bucket_region;
    if (region && *region && strcmp(region, signed_region) != 0)
        s3_outcome_append(o, &n,
                          "; the bucket is in region '%s' but requests are signed for '%s' "
                          "(set config.s3.region)",
                          region, signed_region);
}
