/* objects_upload.c: files and blobs uploaded to S3 (objects_put_fd,
 * objects_put): in one PUT, or when large and the transport has
 * TRANSPORT_CAPS_MULTIPART, in parts.
 *
 * Parts are read straight from the file (pread at their offset), so memory
 * stays bounded whatever the size; up to client.upload_parallelism of them
 * are in flight at once. Each part is retried on its own like any request.
 * When the upload cannot be completed it is aborted, so that no part is
 * left behind to be paid for (a process killed mid-upload can still leave
 * some: docs/operations.adoc suggests the bucket lifecycle rule that
 * removes them). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "objects_internal.h"

/* S3's most parts per upload. */
#define OBJECTS_PARTS_MAX 10000

/* The part size for @size bytes: the configured one, grown (in whole MiB)
 * when the file would need more than OBJECTS_PARTS_MAX parts. */
static uint64_t objects_part_size(const objects *obj, uint64_t size)
{
    uint64_t part = obj->client.part_size;
    if ((size + part - 1) / part > OBJECTS_PARTS_MAX) {
        uint64_t mib = 1ull << 20;
        part = (size + OBJECTS_PARTS_MAX - 1) / OBJECTS_PARTS_MAX;
        part = (part + mib - 1) / mib * mib;
    }
    return part;
}

/* One request with the usual retries; true when it succeeded. */
static bool objects_mpu_request(objects *obj, transport_request *req, const char *what,
                                const char *key)
{
    objects_send_retrying(obj, req, what, key);
    return req->outcome.result == TRANSPORT_OK;
}

/* Give up on @upload_id; the thread's error (the reason) is kept. */
static void objects_mpu_abort(objects *obj, const char *key, const char *upload_id)
{
    transport_request req = {
        .op = TRANSPORT_MPU_ABORT, .key = key, .mpu_abort = {.upload_id = upload_id}};
    if (objects_mpu_request(obj, &req, "abort multipart upload", key) ||
        req.outcome.result == TRANSPORT_NOT_FOUND)
        return;
    const logger *log = obj->has_log ? &obj->log : NULL;
    log_warn(log,
             "S3 %s: aborting the multipart upload of %s/%s failed (%s): its parts stay until "
             "a lifecycle rule removes them",
             obj->t->endpoint, obj->t->bucket, key, req.outcome.detail);
}

/* Parts @first..@first+@n-1 (0-based), at once, then each failed one again
 * on its own with retries. Fills their ETags in @parts. */
static int objects_mpu_parts(objects *obj, const char *key, const char *upload_id,
                             const objects_body *whole, uint64_t part_size, size_t first, size_t n,
                             transport_part *parts)
{
    objects_body bodies[ACP_S3_PARALLELISM_MAX];
    transport_request reqs[ACP_S3_PARALLELISM_MAX];
    for (size_t i = 0; i < n; i++) {
        uint64_t base = (first + i) * part_size;
        uint64_t len = whole->size - base < part_size ? whole->size - base : part_size;
        bodies[i] = (objects_body){.data = whole->data, .fd = whole->fd, .base = base, .size = len};
        reqs[i] = (transport_request){
            .op = TRANSPORT_MPU_PART,
            .key = key,
            .mpu_part = {.upload_id = upload_id,
                         .number = (unsigned)(first + i + 1),
                         .size = len,
                         .read = objects_body_read,
                         .userdata = &bodies[i]},
        };
    }
    objects_send(obj, reqs, n);
    for (size_t i = 0; i < n; i++) {
        transport_request *req = &reqs[i];
        int rc = objects_body_check(obj, key, &bodies[i]);
        for (int attempt = 0; !rc && req->outcome.result != TRANSPORT_OK; attempt++) {
            if (!objects_again(obj, req, attempt, "PUT part", key))
                return objects_fail(obj, req, "PUT part", key);
            objects_body_rewind(&bodies[i]);
            objects_send(obj, req, 1);
            rc = objects_body_check(obj, key, &bodies[i]);
        }
        if (rc)
            return rc;
        parts[first + i].number = req->mpu_part.number;
        snprintf(parts[first + i].etag, sizeof parts[first + i].etag, "%s", req->mpu_part.etag);
    }
    return 0;
}

/* Complete @upload_id. When an attempt's answer was lost and the retry
 * finds the upload gone, the object of the right size says the first
 * attempt did it. */
static int objects_mpu_complete(objects *obj, const char *key, const char *upload_id,
                                const transport_part *parts, size_t count, uint64_t size)
{
    transport_request req = {
        .op = TRANSPORT_MPU_COMPLETE,
        .key = key,
        .mpu_complete = {.upload_id = upload_id, .parts = parts, .count = count},
    };
    bool lost = false;
    for (int attempt = 0;; attempt++) {
        objects_send(obj, &req, 1);
        if (req.outcome.result == TRANSPORT_OK)
            return 0;
        if (lost && req.outcome.result == TRANSPORT_NOT_FOUND) {
            transport_request head = {.op = TRANSPORT_HEAD, .key = key};
            if (objects_mpu_request(obj, &head, "HEAD", key) && head.head.size == size)
                return 0;
            break;
        }
        lost = transport_retryable(req.outcome.result);
        if (!objects_again(obj, &req, attempt, "complete multipart upload", key))
            break;
    }
    return objects_fail(obj, &req, "complete multipart upload", key);
}

/* @whole (in memory or a file) as @key, in parts. */
static int objects_put_parts(objects *obj, const char *key, const objects_body *whole)
{
    uint64_t size = whole->size;
    uint64_t part_size = objects_part_size(obj, size);
    size_t count = (size_t)((size + part_size - 1) / part_size);
    size_t parallel = obj->client.upload_parallelism;
    if (parallel < 1 || parallel > ACP_S3_PARALLELISM_MAX)
        parallel = ACP_S3_PARALLELISM_MAX;
    if (parallel > TRANSPORT_BATCH_MAX)
        parallel = TRANSPORT_BATCH_MAX;
    transport_part *parts = calloc(count, sizeof *parts);
    if (!parts)
        return error_set(ACP_ENOMEM, "out of memory uploading %s in %zu parts", key, count);
    transport_request create = {.op = TRANSPORT_MPU_CREATE, .key = key};
    if (!objects_mpu_request(obj, &create, "start multipart upload", key)) {
        free(parts);
        return objects_fail(obj, &create, "start multipart upload", key);
    }
    const char *upload_id = create.mpu_create.upload_id;
    int rc = 0;
    for (size_t first = 0; !rc && first < count; first += parallel) {
        size_t n = count - first < parallel ? count - first : parallel;
        rc = objects_mpu_parts(obj, key, upload_id, whole, part_size, first, n, parts);
    }
    if (!rc)
        rc = objects_mpu_complete(obj, key, upload_id, parts, count, size);
    if (rc)
        objects_mpu_abort(obj, key, upload_id);
    free(parts);
    return rc;
}

/* @body as @key: in parts when it is larger than the threshold and the
 * transport can, else in one PUT; refused past what S3 takes. */
static int objects_upload(objects *obj, const char *key, const char *name, const objects_body *body)
{
    uint64_t size = body->size;
    bool parts = obj->t->caps & TRANSPORT_CAPS_MULTIPART;
    if (size > (parts ? OBJECTS_OBJECT_MAX : OBJECTS_PUT_MAX))
        return error_set(ACP_ETOOBIG,
                         "uploading '%s': %" PRIu64 " bytes is more than S3 takes (%s)", name, size,
                         parts ? "5 TiB"
                               : "5 GiB in one PUT; the libs3 transport (signature V2) "
                                 "cannot upload in parts");
    if (parts && size > obj->client.multipart_threshold)
        return objects_put_parts(obj, key, body);
    objects_body whole = *body;
    return objects_put_run(obj, key, &whole);
}

int objects_put_fd(objects *obj, const acp_job_id *id, const char *name, int fd)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return error_set(ACP_EIO, "uploading '%s': cannot stat the file: %s", name,
                         error_strerror(errno));
    if (!S_ISREG(st.st_mode))
        return error_set(ACP_EIO, "uploading '%s': not a regular file", name);
    objects_body body = {.fd = fd, .size = (uint64_t)st.st_size};
    return objects_upload(obj, key, name, &body);
}

static const unsigned char objects_nothing[1];

int objects_put(objects *obj, const acp_job_id *id, const char *name, const void *data, size_t len)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    if (!data && len)
        return error_set(ACP_EINVAL, "objects_put: NULL data for %zu bytes", len);
    objects_body body = {.data = len ? data : objects_nothing, .fd = -1, .size = len};
    return objects_upload(obj, key, name, &body);
}
