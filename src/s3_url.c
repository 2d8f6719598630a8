/* s3_url.c: canonical URLs of S3 requests (see s3_url.h). */
#include "s3_url.h"

#include <stdlib.h>
#include <string.h>

static bool s3_url_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int s3_url_encode(buf *b, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (s3_url_unreserved(c) || (keep_slash && c == '/'))
            continue;
        char escape[3] = {'%', hex[c >> 4], hex[c & 15]};
        int rc;
        if ((rc = buf_append(b, s + start, i - start)) || (rc = buf_append(b, escape, 3)))
            return rc;
        start = i + 1;
    }
    return buf_append(b, s + start, len - start);
}

/* SigV4 sorts by the encoded names; the encoding keeps the order of bytes
 * of unreserved characters, and S3's parameter names are all unreserved,
 * so comparing the raw names is the same. Values break ties. */
static int s3_url_param_compare(const void *a, const void *b)
{
    const s3_url_param *x = a, *y = b;
    int by_name = strcmp(x->name, y->name);
    if (by_name)
        return by_name;
    return strcmp(x->value ? x->value : "", y->value ? y->value : "");
}

int s3_url_query(buf *b, s3_url_param *params, size_t n)
{
    qsort(params, n, sizeof *params, s3_url_param_compare);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (!params[i].value)
            continue;
        int rc;
        if ((!first && (rc = buf_append(b, "&", 1))) ||
            (rc = s3_url_encode(b, params[i].name, strlen(params[i].name), false)) ||
            (rc = buf_append(b, "=", 1)) ||
            (rc = s3_url_encode(b, params[i].value, strlen(params[i].value), false)))
            return rc;
        first = false;
    }
    return 0;
}

int s3_url_base(buf *b, bool https, const char *host, int port, const char *bucket,
                bool virtual_hosted)
{
    bool ipv6 = strchr(host, ':') != NULL;
    int rc =
        buf_printf(b, "%s://%s%s%s%s%s", https ? "https" : "http", virtual_hosted ? bucket : "",
                   virtual_hosted ? "." : "", ipv6 ? "[" : "", host, ipv6 ? "]" : "");
    if (!rc && port)
        rc = buf_printf(b, ":%d", port);
    if (!rc && !virtual_hosted)
        rc = buf_printf(b, "/%s", bucket);
    return rc;
}

static int s3_url_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool s3_url_decode(char *s)
{
    char *out = s;
    for (const char *in = s; *in; in++) {
        if (*in == '+') {
            *out++ = ' ';
        } else if (*in == '%') {
            int hi = s3_url_hex(in[1]), lo = hi < 0 ? -1 : s3_url_hex(in[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *out++ = (char)(hi << 4 | lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return true;
}
