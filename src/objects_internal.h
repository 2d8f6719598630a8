/* What objects.c (the handle, PUT, HEAD, GET, DELETE) and objects_list.c
 * (listings, wipes, workspaces) share; not for other modules. */
#ifndef ACP_OBJECTS_INTERNAL_H
#define ACP_OBJECTS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "objects.h"
#include "transport.h"

/* Keys per ListObjects page: S3's maximum. */
#define OBJECTS_LIST_PAGE 1000

#define OBJECTS_KEY_MAX TRANSPORT_KEY_MAX

/* Requests in flight at once in a batch (DELETEs of a wipe, small PUTs). */
#define OBJECTS_PARALLEL TRANSPORT_BATCH_MAX

struct objects {
    transport *t;
    char *root; /* normalised root path: "" or "a/b/" */
    logger log;
    bool has_log;
    atomic_uint_least64_t requests[OBJECTS_KINDS]; /* sent, retries included */
};

/* Count and perform @n requests, at once. */
void objects_send(objects *obj, transport_request *reqs, size_t n);

/* objects_retry_again() and objects_retry_fail() for @obj's transport. */
bool objects_again(const objects *obj, const transport_request *req, int attempt,
                   const char *method, const char *key);
int objects_fail(const objects *obj, const transport_request *req, const char *method,
                 const char *key);

/* <root><32 hex>/ into @out (OBJECTS_KEY_MAX + 1 bytes). */
int objects_prefix(const objects *obj, const acp_job_id *id, char *out);

/* DELETE @key with retries; an absent object is not an error. */
int objects_delete_key(objects *obj, const char *key);

/* A listing's key callback that ignores the key. */
int objects_ignore_key(void *userdata, const char *key, uint64_t size, int64_t mtime);

static inline bool objects_deleted(transport_result result)
{
    return result == TRANSPORT_OK || result == TRANSPORT_NOT_FOUND;
}

#endif
