/* What objects.c (the handle, PUT, HEAD, GET, DELETE) and objects_list.c
 * (listings, wipes, workspaces) share; not for other modules. */
#ifndef ACP_OBJECTS_INTERNAL_H
#define ACP_OBJECTS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "objects.h"
#include "transport.h"

/* Keys per ListObjects page: S3's maximum. */
#define OBJECTS_LIST_PAGE 1000

#define OBJECTS_KEY_MAX TRANSPORT_KEY_MAX

/* Requests in flight at once in a batch (DELETEs of a wipe, small PUTs). */
#define OBJECTS_PARALLEL TRANSPORT_BATCH_MAX

struct objects {
    transport *t;
    /* Retries and multipart settings (the transport has the rest). */
    acp_s3_client_config client;
    char *root; /* normalised root path: "" or "a/b/" */
    logger log;
    bool has_log;
    atomic_uint_least64_t requests[OBJECTS_KINDS]; /* sent, retries included */
    struct metrics_backend *metrics;               /* objects_set_metrics; NULL */
};

/* A PUT's body: bytes in memory, or @size bytes from offset @base of the
 * file open on @fd (a whole file, or one part of it). */
typedef struct objects_body {
    const unsigned char *data; /* the bytes to send, or NULL to read @fd */
    int fd;
    uint64_t base;
    uint64_t size;
    uint64_t offset; /* where the transport last asked to read, from @base */
    int read_errno;  /* reading @fd failed with this */
    bool shrank;     /* @fd ended before @base + @size bytes */
} objects_body;

/* transport_read_fn over an objects_body. */
ssize_t objects_body_read(void *userdata, uint64_t offset, void *out, size_t len);
/* Before each attempt. */
void objects_body_rewind(objects_body *body);
/* After an attempt: ACP_EIO, naming @key, when reading the file failed or
 * it ended early; else 0. */
int objects_body_check(const objects *obj, const char *key, const objects_body *body);

/* Count and perform @n requests, at once. */
void objects_send(objects *obj, transport_request *reqs, size_t n);

/* Count and perform @req, again while objects_again() says so; its outcome
 * is the last attempt's. */
void objects_send_retrying(objects *obj, transport_request *req, const char *method,
                           const char *key);

/* objects_retry_again() and objects_retry_fail() for @obj's transport. */
bool objects_again(const objects *obj, const transport_request *req, int attempt,
                   const char *method, const char *key);
int objects_fail(const objects *obj, const transport_request *req, const char *method,
                 const char *key);

/* <root><32 hex>/ into @out (OBJECTS_KEY_MAX + 1 bytes). */
int objects_prefix(const objects *obj, const acp_job_id *id, char *out);

/* PUT @body as @key, with retries. */
int objects_put_run(objects *obj, const char *key, objects_body *body);

/* <root><32 hex>/<name> into @out (OBJECTS_KEY_MAX + 1 bytes). */
int objects_key(const objects *obj, const acp_job_id *id, const char *name, char *out);

/* Bytes of S3's largest single PUT, and of its largest object. */
#define OBJECTS_PUT_MAX    (5ull << 30)
#define OBJECTS_OBJECT_MAX (5ull << 40)

/* DELETE @key with retries; an absent object is not an error. */
int objects_delete_key(objects *obj, const char *key);

/* A listing's key callback that ignores the key. */
int objects_ignore_key(void *userdata, const char *key, uint64_t size, int64_t mtime);

static inline bool objects_deleted(transport_result result)
{
    return result == TRANSPORT_OK || result == TRANSPORT_NOT_FOUND;
}

#endif
