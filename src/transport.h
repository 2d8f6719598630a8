/* The S3 transport: how requests reach the object store, behind a small
 * vtable, so that the workspace operations (objects.c) do not depend on one
 * client library. Implementations: transport_curl.c (libcurl with
 * Signature V4, the default), transport_libs3.c (libs3 2.0, Signature V2)
 * and tests/fakes/fake_transport.c (an in-memory bucket with fault
 * injection for unit tests).
 *
 * One entry point: run() performs the n requests described in an array,
 * concurrently where the transport can (up to TRANSPORT_BATCH_MAX on the
 * wire at once; the fake performs them one by one), and returns when every
 * one has an outcome; n = 1 is a single request. The order in which they
 * complete is not defined.
 *
 * A transport sends each request once. Retrying, back-off and patience are
 * the caller's (objects_retry.c), so that they are the same whatever the
 * transport; an outcome therefore says whether trying again may help
 * (transport_retryable()). Counting requests is the caller's as well.
 *
 * Multipart upload (TRANSPORT_MPU_*) is announced by TRANSPORT_CAPS_MULTIPART
 * in transport.caps; without it the caller uploads every file with one PUT.
 * A PUT body (whole object or part) is read through a positional callback,
 * so a transport may read it twice (to hash it, or to resend). Settings
 * such as timeouts, TLS and credentials belong to each transport's open
 * function, not to this seam. */
#ifndef ACP_TRANSPORT_H
#define ACP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* S3's longest key, in bytes. */
#define TRANSPORT_KEY_MAX 1024

/* Requests a transport is asked to keep in flight at once at most; callers
 * split longer batches. */
#define TRANSPORT_BATCH_MAX 8

/* Longest upload id and ETag kept (AWS's upload ids are about 150
 * characters, radosgw's about 40; an ETag is a quoted MD5 with a suffix). */
#define TRANSPORT_UPLOAD_ID_MAX 1024
#define TRANSPORT_ETAG_MAX      128

/* The first five are in the order of the OBJECTS_* request counters
 * (objects.h); the multipart operations are counted as PUT (create, part,
 * complete), DELETE (abort) and LIST (list uploads). */
typedef enum transport_op {
    TRANSPORT_PUT,
    TRANSPORT_GET,
    TRANSPORT_HEAD,
    TRANSPORT_LIST,
    TRANSPORT_DELETE,
    TRANSPORT_MPU_CREATE,   /* POST <key>?uploads */
    TRANSPORT_MPU_PART,     /* PUT <key>?partNumber=N&uploadId=U */
    TRANSPORT_MPU_COMPLETE, /* POST <key>?uploadId=U with the part list */
    TRANSPORT_MPU_ABORT,    /* DELETE <key>?uploadId=U */
    TRANSPORT_MPU_LIST,     /* GET ?uploads&prefix=P: incomplete uploads */
} transport_op;

/* What became of a request, whatever the transport. */
typedef enum transport_result {
    TRANSPORT_OK,
    /* 404: no such key, or no such bucket (code "NoSuchBucket"). */
    TRANSPORT_NOT_FOUND,
    /* 403: access denied, unknown access key, bad signature. */
    TRANSPORT_DENIED,
    /* Transient: the server could not be reached at all (connection
     * refused, name lookup failed). */
    TRANSPORT_UNREACHABLE,
    /* Transient: connection reset or failed mid-way, a timeout or a
     * stalled transfer, HTTP 500, 502, 503 (SlowDown) or 504. */
    TRANSPORT_TRANSIENT,
    /* Any other failure: trying again will not help (every other 4xx incl.
     * 429, other 5xx, redirects, a certificate that does not verify). */
    TRANSPORT_PERMANENT,
    /* The client ran out of memory. */
    TRANSPORT_NO_MEMORY,
    /* A callback of the request (body reader, sink, listing) stopped it;
     * the caller knows why. */
    TRANSPORT_ABORTED,
} transport_result;

static inline bool transport_retryable(transport_result result)
{
    return result == TRANSPORT_UNREACHABLE || result == TRANSPORT_TRANSIENT;
}

typedef struct transport_outcome {
    transport_result result;
    int http_status;   /* 0 when the transport does not know it */
    char code[64];     /* the server's error code, e.g. "SlowDown"; "" if none */
    char message[256]; /* the server's error message; "" if none */
    /* One line for error messages: what failed and the server's details,
     * e.g. "ErrorAccessDenied: Access Denied (resource /b/k)". */
    char detail[512];
} transport_outcome;

/* A PUT body: copy up to @len bytes from offset @offset of the body into
 * @buf. Returns the bytes copied (> 0), or -1 to stop the request (it then
 * ends with TRANSPORT_ABORTED). May be called for the same range again. */
typedef ssize_t (*transport_read_fn)(void *userdata, uint64_t offset, void *buf, size_t len);

/* A GET body, in pieces as they arrive. Non-zero stops the request
 * (TRANSPORT_ABORTED). */
typedef int (*transport_sink_fn)(void *userdata, const void *data, size_t len);

/* One key of a listing page (@mtime: µs since the epoch, UTC), or one common
 * prefix when the listing has a delimiter. Non-zero stops the request
 * (TRANSPORT_ABORTED). */
typedef int (*transport_key_fn)(void *userdata, const char *key, uint64_t size, int64_t mtime);
typedef int (*transport_prefix_fn)(void *userdata, const char *prefix);

/* One incomplete multipart upload of a TRANSPORT_MPU_LIST page. Non-zero
 * stops the request (TRANSPORT_ABORTED). */
typedef int (*transport_upload_fn)(void *userdata, const char *key, const char *upload_id);

/* One uploaded part, as TRANSPORT_MPU_COMPLETE lists them (ascending
 * part numbers). */
typedef struct transport_part {
    unsigned number; /* 1..10000 */
    char etag[TRANSPORT_ETAG_MAX + 1];
} transport_part;

typedef struct transport_request {
    transport_op op;
    const char *key; /* PUT, GET, HEAD, DELETE */
    union {
        struct {
            uint64_t size; /* the body's length, known before it is sent */
            transport_read_fn read;
            void *userdata;
        } put;
        struct {
            transport_sink_fn sink;
            void *userdata;
        } get;
        struct {
            /* Answers, when found. */
            uint64_t size;
            int64_t mtime; /* last-modified, µs since the epoch */
        } head;
        struct {
            const char *prefix;    /* NULL or "": the whole bucket */
            const char *marker;    /* keys after this one; NULL: from the start */
            const char *delimiter; /* NULL: none, every key under @prefix */
            unsigned max_keys;     /* keys and common prefixes, at most 1000 */
            transport_key_fn on_key;
            transport_prefix_fn on_prefix; /* may be NULL without a delimiter */
            void *userdata;
            /* Answers: whether the listing goes on past this page, and the
             * server's NextMarker if it sent one (else ""). */
            bool truncated;
            char next_marker[TRANSPORT_KEY_MAX + 1];
        } list;
        struct {
            /* Answer: the new upload's id. */
            char upload_id[TRANSPORT_UPLOAD_ID_MAX + 1];
        } mpu_create;
        struct {
            const char *upload_id;
            unsigned number; /* 1..10000 */
            uint64_t size;   /* the part's length; read() offsets are within the part */
            transport_read_fn read;
            void *userdata;
            /* Answer: the part's ETag, as the server sent it (quotes kept). */
            char etag[TRANSPORT_ETAG_MAX + 1];
        } mpu_part;
        struct {
            const char *upload_id;
            const transport_part *parts;
            size_t count;
        } mpu_complete; /* an error inside a 200 answer is an error */
        struct {
            const char *upload_id;
        } mpu_abort; /* an upload that is already gone is TRANSPORT_NOT_FOUND */
        struct {
            const char *prefix;           /* NULL or "": the whole bucket */
            const char *key_marker;       /* NULL: from the start */
            const char *upload_id_marker; /* with key_marker; NULL: none */
            transport_upload_fn on_upload;
            void *userdata;
            /* Answers, as for list. */
            bool truncated;
            char next_key_marker[TRANSPORT_KEY_MAX + 1];
            char next_upload_id_marker[TRANSPORT_UPLOAD_ID_MAX + 1];
        } mpu_list;
    };
    transport_outcome outcome; /* filled in by run() */
} transport_request;

typedef struct transport transport;

typedef struct transport_vtable {
    const char *name; /* "curl", "libs3", "fake" */
    /* Perform @n requests (see the top of this file); every one has its
     * outcome when this returns. Thread-safe: several threads may run
     * requests on one transport at once. */
    void (*run)(transport *t, transport_request *reqs, size_t n);
    /* Free the transport; no request may be running. */
    void (*close)(transport *t);
} transport_vtable;

/* Bits of transport.caps. */
enum {
    TRANSPORT_CAPS_NONE = 0,
    TRANSPORT_CAPS_MULTIPART = 1 << 0, /* the TRANSPORT_MPU_* operations */
};

/* The first member of every implementation's own struct. */
struct transport {
    const transport_vtable *vt;
    unsigned caps;
    const char *endpoint; /* "host:port", named in every message */
    const char *bucket;
};

static inline void transport_run(transport *t, transport_request *reqs, size_t n)
{
    t->vt->run(t, reqs, n);
}

/* NULL is fine. */
static inline void transport_close(transport *t)
{
    if (t)
        t->vt->close(t);
}

#endif
