/* URLs of S3 requests signed with Signature V4 by libcurl: curl 7.88 signs
 * the path and the query exactly as they are given, so they must already
 * be in canonical form (percent-encoded, query sorted by name). */
#ifndef ACP_S3_URL_H
#define ACP_S3_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Appends @len bytes of @s percent-encoded as SigV4 wants: the RFC 3986
 * unreserved characters (A-Z a-z 0-9 - . _ ~) stay, every other byte
 * becomes %XX (upper-case hex); '/' stays as well when @keep_slash (an
 * object key in a path). 0 or ACP_ENOMEM. */
int s3_url_encode(buf *b, const char *s, size_t len, bool keep_slash);

/* One query parameter; a NULL value leaves the parameter out, "" sends
 * "name=". */
typedef struct s3_url_param {
    const char *name;
    const char *value;
} s3_url_param;

/* Appends the canonical query of @params ("a=1&b=x%2Fy", without '?'):
 * sorted by encoded name, then value; sorts @params in place. 0 or
 * ACP_ENOMEM. */
int s3_url_query(buf *b, s3_url_param *params, size_t n);

/* The URL of the bucket's top: "http(s)://host[:port]/bucket" (path-style)
 * or "http(s)://bucket.host[:port]" (virtual-hosted); port 0 puts none in
 * the URL, an IPv6 address goes in brackets. Object URLs append "/" and
 * the encoded key (s3_url_encode with @keep_slash). 0 or ACP_ENOMEM. */
int s3_url_base(buf *b, bool https, const char *host, int port, const char *bucket,
                bool virtual_hosted);

/* Decodes @s in place from the encoding S3 uses with encoding-type=url
 * (%XX, and '+' for a space as AWS writes it). Returns false, leaving @s
 * undefined, for a bad escape or an encoded NUL byte. */
bool s3_url_decode(char *s);

#endif
