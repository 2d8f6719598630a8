/* objects.c: job workspaces in S3 (see objects.h), on top of an S3
 * transport (transport.h): libcurl with Signature V4 (transport_curl.c) or
 * libs3 with V2 (transport_libs3.c), a fake in unit tests. This file knows
 * the layout of keys, pages through listings, batches requests and counts
 * them; objects_retry.c decides on retries. */
#include "objects.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "buf.h"
#include "config_s3.h"
#include "error.h"
#include "metrics.h"
#include "objects_internal.h"
#include "objects_retry.h"
#include "transport_curl.h"
#include "transport_libs3.h"

_Static_assert(OBJECTS_PUT == (int)TRANSPORT_PUT && OBJECTS_GET == (int)TRANSPORT_GET &&
                   OBJECTS_HEAD == (int)TRANSPORT_HEAD && OBJECTS_LIST == (int)TRANSPORT_LIST &&
                   OBJECTS_DELETE == (int)TRANSPORT_DELETE,
               "request counters are indexed by transport_op");

static const logger *objects_logger(const objects *obj)
{
    return obj->has_log ? &obj->log : NULL;
}

/* The counter of acp_stats a request of @op counts in. */
static int objects_kind(transport_op op)
{
    switch (op) {
    case TRANSPORT_MPU_CREATE:
    case TRANSPORT_MPU_PART:
    case TRANSPORT_MPU_COMPLETE:
        return OBJECTS_PUT;
    case TRANSPORT_MPU_ABORT:
        return OBJECTS_DELETE;
    case TRANSPORT_MPU_LIST:
        return OBJECTS_LIST;
    default:
        return (int)op;
    }
}

void objects_send(objects *obj, transport_request *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        atomic_fetch_add(&obj->requests[objects_kind(reqs[i].op)], 1);
    uint64_t start = metrics_now_ns();
    transport_run(obj->t, reqs, n);
    /* The requests of a batch run at once: each took the batch's time. */
    for (size_t i = 0; obj->metrics && i < n; i++)
        metrics_backend_done(obj->metrics, objects_kind(reqs[i].op),
                             reqs[i].outcome.result != TRANSPORT_OK &&
                                 reqs[i].outcome.result != TRANSPORT_NOT_FOUND,
                             start);
}

void objects_set_metrics(objects *obj, struct metrics_backend *m)
{
    if (obj)
        obj->metrics = m;
}

bool objects_again(const objects *obj, const transport_request *req, int attempt,
                   const char *method, const char *key)
{
    return objects_retry_again(obj->t, objects_logger(obj), &obj->client, &req->outcome, attempt,
                               method, key);
}

int objects_fail(const objects *obj, const transport_request *req, const char *method,
                 const char *key)
{
    return objects_retry_fail(obj->t, &req->outcome, method, key);
}

void objects_send_retrying(objects *obj, transport_request *req, const char *method,
                           const char *key)
{
    for (int attempt = 0;; attempt++) {
        objects_send(obj, req, 1);
        if (!objects_again(obj, req, attempt, method, key))
            break;
    }
}

/* ---- keys ---------------------------------------------------------------- */

int objects_prefix(const objects *obj, const acp_job_id *id, char *out)
{
    if (!obj || !id)
        return error_set(ACP_EINVAL, "objects: NULL handle or job id");
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    int n = snprintf(out, OBJECTS_KEY_MAX + 1, "%s%s/", obj->root, hex);
    if (n < 0 || n > OBJECTS_KEY_MAX)
        return error_set(ACP_EINVAL, "S3 root path '%s' leaves no room for keys", obj->root);
    return 0;
}

int objects_key(const objects *obj, const acp_job_id *id, const char *name, char *out)
{
    int rc = objects_prefix(obj, id, out);
    if (rc)
        return rc;
    if (!name || !*name)
        return error_set(ACP_EINVAL, "objects: empty object name");
    if (name[0] == '/')
        return error_set(ACP_EINVAL, "object name '%s' starts with '/'", name);
    size_t used = strlen(out), len = strlen(name);
    if (len > OBJECTS_KEY_MAX - used)
        return error_set(ACP_EINVAL,
                         "object name '%.40s...' (%zu bytes) makes an S3 key longer than %d bytes",
                         name, len, OBJECTS_KEY_MAX);
    memcpy(out + used, name, len + 1);
    return 0;
}

/* "/", "" and NULL give no prefix; a leading '/' is dropped; a trailing '/'
 * is ensured (docs/compatibility.adoc, S3 layout). */
static char *objects_normalise_root(const char *root)
{
    if (!root)
        root = "";
    if (root[0] == '/')
        root++;
    size_t len = strlen(root);
    char *out = malloc(len + 2);
    if (!out)
        return NULL;
    memcpy(out, root, len);
    if (len > 0 && root[len - 1] != '/')
        out[len++] = '/';
    out[len] = '\0';
    return out;
}

/* ---- open / close -------------------------------------------------------- */

/* The bucket exists and the credentials may list it: one signed request. */
static int objects_check_bucket(objects *obj);

static bool objects_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

int objects_open(objects **out, const acp_s3_config *s3, const acp_s3_client_config *client,
                 const logger *log)
{
    if (!out)
        return error_set(ACP_EINVAL, "objects_open: NULL output");
    *out = NULL;
    if (!s3 || !client)
        return error_set(ACP_EINVAL, "objects_open: NULL S3 configuration");
    bool v2 = config_s3_signature(client) == ACP_S3_SIGNATURE_V2;
    transport *t;
    int rc = v2 ? transport_libs3_open(&t, s3) : transport_curl_open(&t, s3, client);
    if (rc)
        return rc;
    if (s3->https && client->tls_skip_verify)
        log_warn(log,
                 "S3 %s: TLS certificate verification is OFF (s3_client.tls_skip_verify): "
                 "anyone on the network path can read and change results",
                 t->endpoint);
    else if (!s3->https && s3->host && !objects_loopback(s3->host))
        log_warn(log,
                 "S3 %s: plain HTTP to a host other than loopback: requests are signed but "
                 "results travel unencrypted (set s3.https)",
                 t->endpoint);
    return objects_open_transport(out, t, s3->root_path, client, log);
}

int objects_open_transport(objects **out, transport *t, const char *root,
                           const acp_s3_client_config *client, const logger *log)
{
    if (!out || !t) {
        transport_close(t);
        return error_set(ACP_EINVAL, "objects_open_transport: NULL output or transport");
    }
    *out = NULL;
    objects *obj = calloc(1, sizeof *obj);
    if (!obj) {
        transport_close(t);
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    }
    obj->t = t;
    if (client)
        obj->client = *client;
    else
        config_s3_client_defaults(&obj->client);
    obj->root = objects_normalise_root(root);
    if (!obj->root) {
        objects_close(obj);
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    }
    if (log) {
        obj->log = *log;
        obj->has_log = true;
    }
    int rc = objects_check_bucket(obj);
    if (rc) {
        objects_close(obj);
        return rc;
    }
    log_debug(objects_logger(obj), "S3 %s (%s): bucket '%s' is reachable; workspaces under '%s'",
              t->endpoint, t->vt->name, t->bucket, obj->root);
    *out = obj;
    return 0;
}

void objects_close(objects *obj)
{
    if (!obj)
        return;
    transport_close(obj->t);
    free(obj->root);
    free(obj);
}

/* ---- PUT ----------------------------------------------------------------- */

ssize_t objects_body_read(void *userdata, uint64_t offset, void *out, size_t len)
{
    objects_body *body = userdata;
    body->offset = offset;
    if (body->data) {
        memcpy(out, body->data + body->base + offset, len);
        return (ssize_t)len;
    }
    ssize_t n;
    do
        n = pread(body->fd, out, len, (off_t)(body->base + offset));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        body->read_errno = errno;
        return -1;
    }
    if (n == 0) {
        body->shrank = true;
        return -1;
    }
    return n;
}

void objects_body_rewind(objects_body *body)
{
    body->offset = 0;
    body->read_errno = 0;
    body->shrank = false;
}

int objects_body_check(const objects *obj, const char *key, const objects_body *body)
{
    if (body->read_errno)
        return error_set(ACP_EIO, "S3 %s: PUT %s/%s: reading the file failed: %s", obj->t->endpoint,
                         obj->t->bucket, key, error_strerror(body->read_errno));
    if (body->shrank)
        return error_set(ACP_EIO,
                         "S3 %s: PUT %s/%s: the file ended after %" PRIu64 " of %" PRIu64
                         " bytes (changed while uploading?)",
                         obj->t->endpoint, obj->t->bucket, key, body->base + body->offset,
                         body->base + body->size);
    return 0;
}

static transport_request objects_put_request(const char *key, objects_body *body)
{
    return (transport_request){
        .op = TRANSPORT_PUT,
        .key = key,
        .put = {.size = body->size, .read = objects_body_read, .userdata = body},
    };
}

int objects_put_run(objects *obj, const char *key, objects_body *body)
{
    transport_request req = objects_put_request(key, body);
    for (int attempt = 0;; attempt++) {
        objects_body_rewind(body);
        objects_send(obj, &req, 1);
        int rc = objects_body_check(obj, key, body);
        if (rc)
            return rc;
        if (!objects_again(obj, &req, attempt, "PUT", key))
            break;
    }
    return req.outcome.result == TRANSPORT_OK ? 0 : objects_fail(obj, &req, "PUT", key);
}

static const unsigned char objects_nothing[1];

/* Up to OBJECTS_PARALLEL PUTs in flight at once: the caller waits one round
 * trip, not @count. */
static int objects_put_batch(objects *obj, const acp_job_id *id, const objects_item *items,
                             size_t count)
{
    objects_body bodies[OBJECTS_PARALLEL];
    transport_request reqs[OBJECTS_PARALLEL];
    char keys[OBJECTS_PARALLEL][OBJECTS_KEY_MAX + 1];
    for (size_t i = 0; i < count; i++) {
        int rc = objects_key(obj, id, items[i].name, keys[i]);
        if (rc)
            return rc;
        if (!items[i].data && items[i].len)
            return error_set(ACP_EINVAL, "objects_put_many: NULL data for %zu bytes", items[i].len);
        bodies[i] = (objects_body){
            .data = items[i].len ? items[i].data : objects_nothing, .fd = -1, .size = items[i].len};
        reqs[i] = objects_put_request(keys[i], &bodies[i]);
    }
    objects_send(obj, reqs, count);
    for (size_t i = 0; i < count; i++) {
        if (reqs[i].outcome.result == TRANSPORT_OK)
            continue;
        /* Once more on its own, with the usual retries. */
        int rc = transport_retryable(reqs[i].outcome.result)
                     ? objects_put_run(obj, keys[i], &bodies[i])
                     : objects_fail(obj, &reqs[i], "PUT", keys[i]);
        if (rc)
            return rc;
    }
    return 0;
}

int objects_put_many(objects *obj, const acp_job_id *id, const objects_item *items, size_t count)
{
    for (size_t first = 0; first < count; first += OBJECTS_PARALLEL) {
        size_t batch = count - first < OBJECTS_PARALLEL ? count - first : OBJECTS_PARALLEL;
        int rc = objects_put_batch(obj, id, items + first, batch);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- HEAD ---------------------------------------------------------------- */

static int objects_head(objects *obj, const char *key, bool *exists, uint64_t *size, int64_t *mtime)
{
    transport_request req = {.op = TRANSPORT_HEAD, .key = key};
    objects_send_retrying(obj, &req, "HEAD", key);
    transport_result result = req.outcome.result;
    if (result != TRANSPORT_OK && result != TRANSPORT_NOT_FOUND)
        return objects_fail(obj, &req, "HEAD", key);
    bool found = result == TRANSPORT_OK;
    if (exists)
        *exists = found;
    if (size)
        *size = found ? req.head.size : 0;
    if (mtime)
        *mtime = found ? req.head.mtime : 0;
    return 0;
}

int objects_stat(objects *obj, const acp_job_id *id, const char *name, bool *exists, uint64_t *size,
                 int64_t *mtime)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    if (!exists)
        return error_set(ACP_EINVAL, "objects_stat: NULL result");
    return objects_head(obj, key, exists, size, mtime);
}

int objects_touch(objects *obj, const acp_job_id *id, const char *name)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    bool exists;
    if ((rc = objects_head(obj, key, &exists, NULL, NULL)))
        return rc;
    if (exists)
        return 0;
    objects_body body = {.data = objects_nothing, .fd = -1, .size = 0};
    return objects_put_run(obj, key, &body);
}

/* ---- GET ----------------------------------------------------------------- */

typedef struct objects_get {
    objects_sink sink;
    void *userdata;
    int sink_rc;       /* the sink's non-zero return, which stopped the transfer */
    uint64_t received; /* bytes given to the sink */
} objects_get;

static int objects_get_data(void *userdata, const void *data, size_t len)
{
    objects_get *get = userdata;
    get->received += len;
    int rc = get->sink(get->userdata, data, len);
    if (rc != 0)
        get->sink_rc = rc;
    return rc;
}

static int objects_read_key(objects *obj, const char *key, objects_sink sink, void *userdata);

int objects_read(objects *obj, const acp_job_id *id, const char *name, objects_sink sink,
                 void *userdata)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    return objects_read_key(obj, key, sink, userdata);
}

static int objects_read_key(objects *obj, const char *key, objects_sink sink, void *userdata)
{
    if (!sink)
        return error_set(ACP_EINVAL, "objects_read: NULL sink");
    objects_get get = {.sink = sink, .userdata = userdata};
    transport_request req = {
        .op = TRANSPORT_GET, .key = key, .get = {.sink = objects_get_data, .userdata = &get}};
    for (int attempt = 0;; attempt++) {
        objects_send(obj, &req, 1);
        if (get.sink_rc)
            return get.sink_rc;
        /* What the sink has seen cannot be taken back. */
        if (get.received > 0 || !objects_again(obj, &req, attempt, "GET", key))
            break;
    }
    return req.outcome.result == TRANSPORT_OK ? 0 : objects_fail(obj, &req, "GET", key);
}

/* ---- objects of the root ------------------------------------------------ */

/* <root><name> into @out (OBJECTS_KEY_MAX + 1 bytes). */
static int objects_root_key(const objects *obj, const char *name, char *out)
{
    if (!obj || !name || !*name || strchr(name, '/'))
        return error_set(ACP_EINVAL, "objects: bad root object name");
    int n = snprintf(out, OBJECTS_KEY_MAX + 1, "%s%s", obj->root, name);
    if (n < 0 || n > OBJECTS_KEY_MAX)
        return error_set(ACP_EINVAL, "S3 root path '%s' leaves no room for keys", obj->root);
    return 0;
}

int objects_root_read(objects *obj, const char *name, size_t max, char **data, size_t *len,
                      bool *exists)
{
    *data = NULL;
    *len = 0;
    *exists = false;
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_root_key(obj, name, key);
    if (rc)
        return rc;
    buf_bounded b = {BUF_INIT, max, name};
    rc = objects_read_key(obj, key, buf_bounded_append, &b);
    if (!rc && !b.data.data)
        rc = buf_append(&b.data, "", 0); /* an empty object is an empty string */
    if (rc) {
        buf_free(&b.data);
        return rc == ACP_ENOTFOUND ? 0 : rc;
    }
    *data = b.data.data;
    *len = b.data.len;
    *exists = true;
    return 0;
}

int objects_root_put(objects *obj, const char *name, const void *data, size_t len)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_root_key(obj, name, key);
    if (rc)
        return rc;
    objects_body body = {.data = len ? data : objects_nothing, .fd = -1, .size = len};
    return objects_put_run(obj, key, &body);
}

/* ---- DELETE -------------------------------------------------------------- */

int objects_delete_key(objects *obj, const char *key)
{
    transport_request req = {.op = TRANSPORT_DELETE, .key = key};
    objects_send_retrying(obj, &req, "DELETE", key);
    if (objects_deleted(req.outcome.result))
        return 0;
    return objects_fail(obj, &req, "DELETE", key);
}

int objects_delete(objects *obj, const acp_job_id *id, const char *name)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    return objects_delete_key(obj, key);
}

int objects_ignore_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
    (void)userdata;
    (void)key;
    (void)size;
    (void)mtime;
    return 0;
}

static int objects_check_bucket(objects *obj)
{
    const transport *t = obj->t;
    transport_request req = {
        .op = TRANSPORT_LIST,
        .list = {.prefix = obj->root, .max_keys = 1, .on_key = objects_ignore_key},
    };
    objects_send_retrying(obj, &req, "LIST", obj->root);
    const transport_outcome *outcome = &req.outcome;
    switch (outcome->result) {
    case TRANSPORT_OK:
        return 0;
    case TRANSPORT_NOT_FOUND:
        return error_set(ACP_ESTORAGE, "S3 %s: bucket '%s' does not exist", t->endpoint, t->bucket);
    case TRANSPORT_DENIED:
        return error_set(ACP_ESTORAGE,
                         "S3 %s: access denied to bucket '%s': check the access key and "
                         "secret (%s)",
                         t->endpoint, t->bucket, outcome->detail);
    case TRANSPORT_UNREACHABLE:
        return error_set(ACP_ESTORAGE, "S3 %s: could not connect (%s)", t->endpoint,
                         outcome->detail);
    case TRANSPORT_NO_MEMORY:
        return error_set(ACP_ENOMEM, "S3 %s: out of memory checking bucket '%s'", t->endpoint,
                         t->bucket);
    default:
        return error_set(ACP_ESTORAGE, "S3 %s: checking bucket '%s' failed: %s", t->endpoint,
                         t->bucket, outcome->detail);
    }
}

void objects_request_counts(const objects *obj, uint64_t counts[OBJECTS_KINDS])
{
    for (int k = 0; k < OBJECTS_KINDS; k++)
        counts[k] = atomic_load(&((objects *)obj)->requests[k]);
}
