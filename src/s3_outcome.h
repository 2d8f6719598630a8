/* What became of an S3 request over HTTP (transport.h's outcome): the
 * classification of HTTP statuses and curl's errors, and the one-line
 * detail from the server's error body. Never quotes a credential: the
 * detail is built from the status, the error's Code, Message, Resource and
 * Region, and curl's error text (which names no credential). */
#ifndef ACP_S3_OUTCOME_H
#define ACP_S3_OUTCOME_H

#include <stddef.h>

#include <curl/curl.h>

#include "transport.h"

/* 2xx OK; 404 NOT_FOUND; 403 DENIED; 500, 502, 503, 504 TRANSIENT (worth
 * retrying); every other status, 429 included, PERMANENT (the issue: never
 * retry a 4xx). */
transport_result s3_outcome_of_status(long status);

/* For a request that curl could not complete: UNREACHABLE when no
 * connection could be made, TRANSIENT for a connection that broke or timed
 * out, PERMANENT for TLS verification and misuse, NO_MEMORY, and ABORTED
 * for a callback's stop (the caller knows whose). */
transport_result s3_outcome_of_curl(CURLcode code);

/* Fills @o for an answer with HTTP @status and error body @body (may be
 * NULL or not XML) that is not a success, or for a 200 whose body is an
 * <Error> (then classified by its code). @bucket_region: the
 * x-amz-bucket-region header or ""; @signed_region: the region requests
 * are signed for. */
void s3_outcome_http(transport_outcome *o, long status, const char *body, size_t len,
                     const char *bucket_region, const char *signed_region);

/* True when @body is an <Error> document (CompleteMultipartUpload can
 * answer 200 with one). */
bool s3_outcome_body_is_error(const char *body, size_t len);

#endif
