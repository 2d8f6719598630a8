/* An in-memory S3 bucket behind the transport seam (src/transport.h), for
 * unit tests of the layers above it (objects.c and up). It answers like S3
 * where those layers can tell: keys in byte order, ListObjects pages of at
 * most max-keys (1000) entries with IsTruncated, markers, common prefixes
 * with a delimiter (and NextMarker only then), DELETE of an absent key
 * succeeds, last-modified in whole seconds.
 *
 * Multipart upload (announced in caps): upload ids in creation order, the
 * parts of each upload kept apart (a part sent again replaces it, its ETag
 * is its quoted MD5); the object appears only when COMPLETE lists the parts
 * in ascending order with their ETags and every part but the last has at
 * least 5 MiB (else 400 InvalidPartOrder, InvalidPart or EntityTooSmall,
 * permanent, and the upload stays as it was). PART, COMPLETE and ABORT of
 * an upload that is not there (never was, completed, aborted, or another
 * key's) are 404 NoSuchUpload. MPU_LIST lists incomplete uploads by key,
 * then age, under a prefix, after a key marker (and upload id marker), in
 * pages of 1000.
 *
 * Faults come from a fault plan (fault.h), checked once per request with
 * the operations "s3.put", "s3.get", "s3.head", "s3.list", "s3.delete",
 * "s3.mpu_create", "s3.mpu_part", "s3.mpu_complete", "s3.mpu_abort" and
 * "s3.mpu_list".
 * A matching rule with a non-zero .error makes the request fail, before it
 * has any effect, in the way its .kind says (FAKE_S3_*; 0 means
 * FAKE_S3_500); a rule's .delay_ms delays the request (with or without a
 * failure). Requests of one run() are performed one after the other.
 *
 * Thread-safe. The inspection helpers below neither count as requests nor
 * pass through the fault plan. */
#ifndef ACP_FAKE_TRANSPORT_H
#define ACP_FAKE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "transport.h"

/* fault_rule.kind for the fake transport: how a failing request fails. */
enum {
    FAKE_S3_500 = 500,        /* 500 InternalError: transient */
    FAKE_S3_503 = 503,        /* 503 ServiceUnavailable: transient */
    FAKE_S3_SLOWDOWN = 1503,  /* 503 SlowDown: transient */
    FAKE_S3_429 = 429,        /* 429 TooManyRequests: permanent, as every 4xx */
    FAKE_S3_400 = 400,        /* 400 InvalidRequest: permanent */
    FAKE_S3_403 = 403,        /* 403 AccessDenied: denied */
    FAKE_S3_404 = 404,        /* 404 NoSuchKey: not found */
    FAKE_S3_NO_BUCKET = 1404, /* 404 NoSuchBucket: not found */
    FAKE_S3_RESET = 1,        /* connection reset by peer: transient, no status */
    FAKE_S3_TIMEOUT = 2,      /* timed out: transient, no status */
    FAKE_S3_REFUSED = 3,      /* connection refused: unreachable */
    /* GET only: the first half of the body reaches the sink, then the
     * connection is reset (transient); other requests fail as FAKE_S3_RESET. */
    FAKE_S3_CUT = 4,
};

typedef struct fake_transport fake_transport;

/* An empty bucket "fake-bucket" at endpoint "fake-s3"; faults from @plan
 * (may be NULL: none). Aborts the test program when out of memory. */
fake_transport *fake_transport_new(fault_plan *plan);

/* The transport to hand to objects_open_transport(), which then owns it:
 * objects_close() frees the fake. Until then, the helpers below work. */
transport *fake_transport_base(fake_transport *fake);

/* Last-modified times of objects written from now on: @us (µs since the
 * epoch, cut to whole seconds), or the wall clock when @us is 0 (the
 * default). */
void fake_transport_set_clock(fake_transport *fake, int64_t us);

/* Store @len bytes as @key, as a PUT would. */
void fake_transport_seed(fake_transport *fake, const char *key, const void *data, size_t len);

bool fake_transport_exists(fake_transport *fake, const char *key);

/* A copy of @key's bytes (free() it; never NULL when found) and their
 * length in *@len, or NULL when there is no such object. */
unsigned char *fake_transport_bytes(fake_transport *fake, const char *key, size_t *len);

/* The last-modified time of @key in µs, or -1 when it does not exist. */
int64_t fake_transport_mtime(fake_transport *fake, const char *key);

/* Objects whose key starts with @prefix ("" or NULL: all). */
size_t fake_transport_count(fake_transport *fake, const char *prefix);

/* Multipart uploads created and neither completed nor aborted yet. */
size_t fake_transport_uploads(fake_transport *fake);

#endif
