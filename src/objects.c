/* objects.c: job workspaces in S3 through libs3 2.0 (see objects.h).
 *
 * What Debian's libs3 2.0 does and does not do, and how this file copes:
 *
 * - S3_initialize() sets up curl's global state and is not thread-safe. It
 *   runs once per process under pthread_once and is never undone: several
 *   platforms (and tests) may live in one process, and S3_deinitialize()
 *   under one of them would pull curl away from the others. What libs3
 *   caches (up to 32 curl handles with their connections) is therefore
 *   "still reachable" at exit.
 * - Requests run through libs3 request contexts (curl multi handles) that
 *   this file drives itself, one per calling thread at a time, kept in a
 *   per-handle pool so that each keeps its connection alive between
 *   requests. Driving the loop here is what makes the socket reachable:
 *   see objects_run() for the 40 ms stall this avoids.
 * - libs3 2.0 is not quite thread-safe: it formats x-amz-date with gmtime()
 *   (issuing is serialised, see objects_issue_lock) and parses listing
 *   times with mktime() as local time (undone in objects_listed_time()).
 * - There is no request timeout in libs3 2.0's API. It sets curl's
 *   low-speed abort (below 1 KiB/s for 15 s, reported as ConnectionFailed
 *   and retried here) and leaves connecting to curl's default of 300 s; on
 *   Linux an unanswered connect gives up after about 2 minutes of SYN
 *   retries. A refused connection fails at once.
 * - libs3 reports a transfer cut short (CURLE_PARTIAL_FILE) as success, so a
 *   GET compares the bytes received with the Content-Length.
 * - libs3 2.0 does not verify the server's TLS certificate
 *   (CURLOPT_SSL_VERIFYPEER is off and there is no option for it).
 */
#include "objects.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <libs3.h>

#include "clock.h"
#include "error.h"

/* Retries after the first attempt, and the sleep before each. */
#define OBJECTS_RETRIES 3
static const unsigned objects_backoff_ms[OBJECTS_RETRIES] = {100, 400, 1600};

/* Keys per ListObjects page: S3's maximum. */
#define OBJECTS_LIST_PAGE 1000

#define OBJECTS_KEY_MAX S3_MAX_KEY_SIZE

/* Requests in flight at once in a batch (DELETEs of a wipe, small PUTs). */
#define OBJECTS_PARALLEL 8

struct objects {
    /* "host:port", or "host" when the port is 0: libs3's host name, and the
     * endpoint named in every message. */
    char *endpoint;
    char *bucket;
    char *access_key;
    char *secret_key;
    char *root; /* normalised root path: "" or "a/b/" */
    S3BucketContext context;
    logger log;
    bool has_log;
    pthread_mutex_t lock;                          /* guards idle */
    struct objects_runner *idle;                   /* request contexts not in use */
    atomic_uint_least64_t requests[OBJECTS_KINDS]; /* sent, retries included */
};

/* ---- libs3 set-up -------------------------------------------------------- */

static pthread_once_t objects_once = PTHREAD_ONCE_INIT;
static S3Status objects_init_status = S3StatusInternalError;

static void objects_global_init(void)
{
    objects_init_status = S3_initialize("async-platform " ACP_VERSION_STRING, S3_INIT_ALL, NULL);
}

static const logger *objects_logger(const objects *obj)
{
    return obj->has_log ? &obj->log : NULL;
}

/* The first member of every request's callback data: libs3's completion
 * callback fills it in. */
typedef struct objects_call {
    S3Status status;
    char detail[512]; /* libs3 status name and the server's error details */
} objects_call;

/* ---- driving requests ---------------------------------------------------- */

/* A libs3 request context (a curl multi handle, with its connection cache)
 * that one thread at a time uses for a request or a batch of them. */
typedef struct objects_runner {
    S3RequestContext *request;
    struct objects_runner *next;
} objects_runner;

/* libs3 2.0 formats each request's x-amz-date with gmtime(), whose result
 * is shared by every thread: requests are issued one thread at a time.
 * Issuing only composes the request and adds it to a context, so the lock
 * is held for microseconds; the transfer runs unlocked in objects_run(). */
static pthread_mutex_t objects_issue_lock = PTHREAD_MUTEX_INITIALIZER;

/* An idle runner from the pool, or a new one, returned with
 * objects_issue_lock held: issue one request (or a few) on it, then call
 * objects_run(). NULL, with @call marked out of memory and no lock held,
 * when no context can be made. */
static objects_runner *objects_runner_take(objects *obj, objects_call *call)
{
    pthread_mutex_lock(&obj->lock);
    objects_runner *runner = obj->idle;
    if (runner)
        obj->idle = runner->next;
    pthread_mutex_unlock(&obj->lock);
    if (!runner) {
        runner = malloc(sizeof *runner);
        if (runner && S3_create_request_context(&runner->request) != S3StatusOK) {
            free(runner);
            runner = NULL;
        }
        if (!runner) {
            call->status = S3StatusOutOfMemory;
            snprintf(call->detail, sizeof call->detail, "no memory for a request context");
            return NULL;
        }
    }
    pthread_mutex_lock(&objects_issue_lock);
    return runner;
}

static void objects_runner_destroy(objects_runner *runner)
{
    /* Finishes any request still in the context with S3StatusInterrupted,
     * so its completion callback has run afterwards. */
    S3_destroy_request_context(runner->request);
    free(runner);
}

/* A pending delayed ACK goes out now (see objects_run). */
static void objects_quick_ack(int fd)
{
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

/* Release objects_issue_lock, run the requests just issued on @runner to
 * completion, then put @runner back in the pool.
 *
 * Why not let libs3 run it: radosgw (beast, without tcp_nodelay) writes a
 * response in pieces, e.g. the headers and then the body of a GET or a
 * listing, or "100 Continue" and then the final response of a PUT (libs3
 * never tells curl the upload size, so curl always sends "Expect:
 * 100-continue"). Nagle's algorithm on the server holds the second piece
 * until the client acknowledges the first, and the client, a request/response
 * peer with nothing to send, delays that ACK by 40 ms. Each small GET, LIST
 * and empty PUT then took about 44 ms instead of 1 to 5 ms. A non-empty PUT
 * escaped because its body carries the ACK. libs3 2.0 cannot drop the Expect
 * header or reach curl's socket, but a context driven from here exposes the
 * sockets (S3_get_request_context_fdsets), and setting TCP_QUICKACK after
 * each step of curl's sends any pending ACK at once. curl leaves sockets
 * numbered FD_SETSIZE or more out of the fd_sets: those requests still
 * complete, polled every millisecond, but may see the stall again. */
static void objects_run(objects *obj, objects_runner *runner)
{
    pthread_mutex_unlock(&objects_issue_lock);
    S3RequestContext *request = runner->request;
    for (;;) {
        int remaining = 0;
        if (S3_runonce_request_context(request, &remaining) != S3StatusOK)
            break;
        if (remaining == 0) {
            pthread_mutex_lock(&obj->lock);
            runner->next = obj->idle;
            obj->idle = runner;
            pthread_mutex_unlock(&obj->lock);
            return;
        }
        fd_set readable, writable, failed;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_ZERO(&failed);
        int max_fd = -1;
        if (S3_get_request_context_fdsets(request, &readable, &writable, &failed, &max_fd) !=
            S3StatusOK)
            break;
        for (int fd = 0; fd <= max_fd; fd++)
            if (FD_ISSET(fd, &readable) || FD_ISSET(fd, &writable))
                objects_quick_ack(fd);
        int64_t wait_ms = S3_get_request_context_timeout(request);
        if (max_fd < 0) {
            /* Nothing to wait on (a timer, or a socket beyond FD_SETSIZE). */
            struct timespec pause = {0, wait_ms == 0 ? 0 : 1000000L};
            nanosleep(&pause, NULL);
            continue;
        }
        if (wait_ms < 0 || wait_ms > 1000)
            wait_ms = 1000;
        struct timeval timeout = {(time_t)(wait_ms / 1000), (suseconds_t)(wait_ms % 1000) * 1000};
        if (select(max_fd + 1, &readable, &writable, &failed, &timeout) < 0 && errno != EINTR)
            break;
    }
    objects_runner_destroy(runner);
}

/* ---- one request's outcome ---------------------------------------------- */

static void objects_call_reset(objects_call *call)
{
    /* libs3 always calls the completion callback; this only guards against
     * a request that never reported back. */
    call->status = S3StatusInternalError;
    snprintf(call->detail, sizeof call->detail, "no response from libs3");
}

static void objects_detail_append(objects_call *call, size_t *len, const char *before,
                                  const char *value, const char *after)
{
    if (!value || !*value || *len >= sizeof call->detail - 1)
        return;
    int n =
        snprintf(call->detail + *len, sizeof call->detail - *len, "%s%s%s", before, value, after);
    if (n > 0)
        *len += (size_t)n;
    if (*len > sizeof call->detail - 1)
        *len = sizeof call->detail - 1;
}

static void objects_on_complete(S3Status status, const S3ErrorDetails *error, void *data)
{
    objects_call *call = data;
    call->status = status;
    call->detail[0] = '\0';
    if (status == S3StatusOK)
        return;
    size_t len = 0;
    objects_detail_append(call, &len, "", S3_get_status_name(status), "");
    if (error) {
        objects_detail_append(call, &len, ": ", error->message, "");
        objects_detail_append(call, &len, " (resource ", error->resource, ")");
        objects_detail_append(call, &len, "; ", error->furtherDetails, "");
    }
}

static S3Status objects_on_properties(const S3ResponseProperties *properties, void *data)
{
    (void)properties;
    (void)data;
    return S3StatusOK;
}

static const S3ResponseHandler objects_response = {objects_on_properties, objects_on_complete};

/* Transient by nature: connection trouble, and the server's 500 and 503.
 * libs3 maps curl's send/receive errors (a dropped keep-alive connection,
 * for one) to InternalError, so that is retried as well, and so is a
 * request that objects_run() had to abandon (Interrupted). */
static bool objects_retryable(S3Status status)
{
    return S3_status_is_retryable(status) || status == S3StatusInternalError ||
           status == S3StatusErrorSlowDown || status == S3StatusHttpErrorUnknown ||
           status == S3StatusInterrupted;
}

/* The patience of this thread's calls (objects_patience_begin): while
 * active, transient failures are retried until the budget has passed since
 * the request first failed, not just OBJECTS_RETRIES times. A result upload
 * outlives a radosgw restart this way; a request made for an HTTP client
 * keeps failing fast. */
typedef struct objects_patience {
    bool active;
    unsigned seconds;
    const atomic_bool *cancel;
    struct timespec since; /* CLOCK_MONOTONIC, the request's first failure */
    bool exhausted;        /* the last request failed past the budget */
    bool cancelled;        /* ... or gave up because *cancel was raised */
} objects_patience;

static _Thread_local objects_patience objects_patient;

void objects_patience_begin(unsigned seconds, const atomic_bool *cancel)
{
    objects_patient = (objects_patience){.active = true, .seconds = seconds, .cancel = cancel};
}

void objects_patience_end(void)
{
    objects_patient = (objects_patience){0};
}

/* Exponential back-off from 100 ms up to 8 s, each delay drawn from its
 * upper half so that workers retrying together spread out. */
static unsigned objects_patient_delay(int attempt)
{
    unsigned ceiling = attempt >= 7 ? 8000 : 100u << attempt;
    unsigned seed = (unsigned)(uintptr_t)&objects_patient ^ (unsigned)attempt * 2654435761u;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    seed ^= (unsigned)now.tv_nsec;
    return ceiling / 2 + rand_r(&seed) % (ceiling / 2 + 1);
}

/* After failed attempt @attempt (0-based): whether to try again. Sleeps the
 * back-off first. */
static bool objects_again(const objects *obj, const objects_call *call, int attempt,
                          const char *method, const char *key)
{
    objects_patience *patience = &objects_patient;
    if (attempt == 0) {
        patience->exhausted = patience->cancelled = false;
        clock_gettime(CLOCK_MONOTONIC, &patience->since);
    }
    if (call->status == S3StatusOK || !objects_retryable(call->status))
        return false;
    if (patience->active) {
        int64_t elapsed = clock_elapsed_ms(&patience->since);
        if (elapsed >= (int64_t)patience->seconds * 1000) {
            patience->exhausted = true;
            return false;
        }
        unsigned ms = objects_patient_delay(attempt);
        if (attempt == 0)
            log_warn(objects_logger(obj), "S3 %s: %s %s/%s failed (%s); retrying for up to %u s",
                     obj->endpoint, method, obj->bucket, key, call->detail, patience->seconds);
        else if (attempt % 10 == 0)
            log_warn(objects_logger(obj), "S3 %s: %s %s/%s still failing after %" PRId64 " s (%s)",
                     obj->endpoint, method, obj->bucket, key, elapsed / 1000, call->detail);
        if (!clock_sleep_unless(ms, patience->cancel)) {
            patience->cancelled = true;
            return false;
        }
        return true;
    }
    if (attempt >= OBJECTS_RETRIES)
        return false;
    unsigned ms = objects_backoff_ms[attempt];
    log_warn(objects_logger(obj), "S3 %s: %s %s/%s failed (%s); retry %d of %d in %u ms",
             obj->endpoint, method, obj->bucket, key, call->detail, attempt + 1, OBJECTS_RETRIES,
             ms);
    clock_sleep_unless(ms, NULL);
    return true;
}

static bool objects_not_found(S3Status status)
{
    return status == S3StatusHttpErrorNotFound || status == S3StatusErrorNoSuchKey;
}

static bool objects_denied(S3Status status)
{
    return status == S3StatusErrorAccessDenied || status == S3StatusErrorInvalidAccessKeyId ||
           status == S3StatusErrorSignatureDoesNotMatch || status == S3StatusHttpErrorForbidden;
}

static bool objects_unreachable(S3Status status)
{
    return status == S3StatusFailedToConnect || status == S3StatusNameLookupError;
}

/* Record the failure of @call as the thread's error and return its code. */
static int objects_fail(const objects *obj, const objects_call *call, const char *method,
                        const char *key)
{
    S3Status status = call->status;
    if (objects_patient.cancelled)
        return error_set(ACP_ESHUTDOWN,
                         "S3 %s: %s %s/%s: given up while failing (%s): shutting down",
                         obj->endpoint, method, obj->bucket, key, call->detail);
    if (objects_patient.exhausted)
        return error_set(ACP_ESTORAGE, "S3 %s unreachable for %u s: %s %s/%s: %s", obj->endpoint,
                         objects_patient.seconds, method, obj->bucket, key, call->detail);
    if (status == S3StatusErrorNoSuchBucket)
        return error_set(ACP_ENOTFOUND, "S3 %s: bucket '%s' does not exist (%s %s)", obj->endpoint,
                         obj->bucket, method, key);
    if (objects_not_found(status))
        return error_set(ACP_ENOTFOUND, "S3 %s: %s %s/%s: not found (%s)", obj->endpoint, method,
                         obj->bucket, key, call->detail);
    if (objects_denied(status))
        return error_set(ACP_ESTORAGE, "S3 %s: %s %s/%s: access denied (%s)", obj->endpoint, method,
                         obj->bucket, key, call->detail);
    if (objects_unreachable(status))
        return error_set(ACP_ESTORAGE, "S3 %s: could not connect (%s %s/%s: %s)", obj->endpoint,
                         method, obj->bucket, key, call->detail);
    if (status == S3StatusOutOfMemory)
        return error_set(ACP_ENOMEM, "S3 %s: %s %s/%s: out of memory", obj->endpoint, method,
                         obj->bucket, key);
    return error_set(ACP_ESTORAGE, "S3 %s: %s %s/%s: %s", obj->endpoint, method, obj->bucket, key,
                     call->detail);
}

/* ---- keys ---------------------------------------------------------------- */

/* <root><32 hex>/ into @out (OBJECTS_KEY_MAX + 1 bytes). */
static int objects_prefix(const objects *obj, const acp_job_id *id, char *out)
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

/* <root><32 hex>/<name> into @out (OBJECTS_KEY_MAX + 1 bytes). */
static int objects_key(const objects *obj, const acp_job_id *id, const char *name, char *out)
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

int objects_open(objects **out, const acp_s3_config *cfg, const logger *log)
{
    if (!out)
        return error_set(ACP_EINVAL, "objects_open: NULL output");
    *out = NULL;
    if (!cfg)
        return error_set(ACP_EINVAL, "objects_open: NULL S3 configuration");
    if (!cfg->host || !*cfg->host)
        return error_set(ACP_EINVAL, "config.s3.host: required");
    if (!cfg->bucket || !*cfg->bucket)
        return error_set(ACP_EINVAL, "config.s3.bucket: required");
    if (!cfg->access_key || !cfg->secret_key)
        return error_set(ACP_EINVAL, "config.s3.access_key and secret_key: required");
    if (cfg->port < 0 || cfg->port > 65535)
        return error_set(ACP_EINVAL, "config.s3.port: %d is not in 0..65535", cfg->port);

    pthread_once(&objects_once, objects_global_init);
    if (objects_init_status != S3StatusOK)
        return error_set(ACP_ESTORAGE, "S3: initialising libs3 failed (%s)",
                         S3_get_status_name(objects_init_status));

    S3Status valid = S3_validate_bucket_name(cfg->bucket, S3UriStylePath);
    if (valid != S3StatusOK)
        return error_set(ACP_EINVAL, "config.s3.bucket: '%s' is not a valid bucket name (%s)",
                         cfg->bucket, S3_get_status_name(valid));

    objects *obj = calloc(1, sizeof *obj);
    if (!obj)
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    int err = pthread_mutex_init(&obj->lock, NULL);
    if (err) {
        free(obj);
        return error_set(ACP_ENOMEM, "S3: creating a mutex: %s", error_strerror(err));
    }
    int len = cfg->port ? snprintf(NULL, 0, "%s:%d", cfg->host, cfg->port)
                        : snprintf(NULL, 0, "%s", cfg->host);
    obj->endpoint = malloc((size_t)len + 1);
    if (obj->endpoint) {
        if (cfg->port)
            snprintf(obj->endpoint, (size_t)len + 1, "%s:%d", cfg->host, cfg->port);
        else
            snprintf(obj->endpoint, (size_t)len + 1, "%s", cfg->host);
    }
    obj->bucket = strdup(cfg->bucket);
    obj->access_key = strdup(cfg->access_key);
    obj->secret_key = strdup(cfg->secret_key);
    obj->root = objects_normalise_root(cfg->root_path);
    if (!obj->endpoint || !obj->bucket || !obj->access_key || !obj->secret_key || !obj->root) {
        objects_close(obj);
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    }
    if (len > S3_MAX_HOSTNAME_SIZE) {
        int rc = error_set(ACP_EINVAL, "config.s3.host: '%s' is longer than %d characters",
                           obj->endpoint, S3_MAX_HOSTNAME_SIZE);
        objects_close(obj);
        return rc;
    }
    if (log) {
        obj->log = *log;
        obj->has_log = true;
    }
    obj->context = (S3BucketContext){
        .hostName = obj->endpoint,
        .bucketName = obj->bucket,
        .protocol = cfg->https ? S3ProtocolHTTPS : S3ProtocolHTTP,
        .uriStyle = S3UriStylePath,
        .accessKeyId = obj->access_key,
        .secretAccessKey = obj->secret_key,
    };

    int rc = objects_check_bucket(obj);
    if (rc) {
        objects_close(obj);
        return rc;
    }
    log_debug(objects_logger(obj), "S3 %s: bucket '%s' is reachable; workspaces under '%s'",
              obj->endpoint, obj->bucket, obj->root);
    *out = obj;
    return 0;
}

void objects_close(objects *obj)
{
    if (!obj)
        return;
    /* No request is in flight once the caller closes: every runner is idle. */
    while (obj->idle) {
        objects_runner *runner = obj->idle;
        obj->idle = runner->next;
        objects_runner_destroy(runner);
    }
    pthread_mutex_destroy(&obj->lock);
    free(obj->endpoint);
    free(obj->bucket);
    free(obj->access_key);
    free(obj->secret_key);
    free(obj->root);
    free(obj);
}

/* ---- PUT ----------------------------------------------------------------- */

typedef struct objects_put_req {
    objects_call call;         /* first: see objects_call */
    const unsigned char *data; /* the bytes to send, or NULL to read @fd */
    int fd;
    uint64_t size;
    uint64_t offset; /* bytes handed to libs3 so far in this attempt */
    int read_errno;  /* reading @fd failed with this */
    bool shrank;     /* @fd ended before @size bytes */
} objects_put_req;

static int objects_put_data(int size, char *buffer, void *data)
{
    objects_put_req *put = data;
    uint64_t left = put->size - put->offset;
    size_t want = size > 0 ? (size_t)size : 0;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (put->data) {
        memcpy(buffer, put->data + put->offset, want);
        put->offset += want;
        return (int)want;
    }
    ssize_t n;
    do
        n = pread(put->fd, buffer, want, (off_t)put->offset);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        put->read_errno = errno;
        return -1;
    }
    if (n == 0) {
        put->shrank = true;
        return -1;
    }
    put->offset += (uint64_t)n;
    return (int)n;
}

/* Spelled out: a const struct is no constant expression in C11 (GCC accepts
 * objects_response here as an extension, clang does not). */
static const S3PutObjectHandler objects_put_handler = {{objects_on_properties, objects_on_complete},
                                                       objects_put_data};

static int objects_put_run(objects *obj, const char *key, objects_put_req *put)
{
    for (int attempt = 0;; attempt++) {
        objects_call_reset(&put->call);
        put->offset = 0;
        put->read_errno = 0;
        put->shrank = false;
        objects_runner *runner = objects_runner_take(obj, &put->call);
        if (runner) {
            atomic_fetch_add(&obj->requests[OBJECTS_PUT], 1);
            S3_put_object(&obj->context, key, put->size, NULL, runner->request,
                          &objects_put_handler, put);
            objects_run(obj, runner);
        }
        if (put->read_errno)
            return error_set(ACP_EIO, "S3 %s: PUT %s/%s: reading the file failed: %s",
                             obj->endpoint, obj->bucket, key, error_strerror(put->read_errno));
        if (put->shrank)
            return error_set(ACP_EIO,
                             "S3 %s: PUT %s/%s: the file ended after %" PRIu64 " of %" PRIu64
                             " bytes (changed while uploading?)",
                             obj->endpoint, obj->bucket, key, put->offset, put->size);
        if (!objects_again(obj, &put->call, attempt, "PUT", key))
            break;
    }
    return put->call.status == S3StatusOK ? 0 : objects_fail(obj, &put->call, "PUT", key);
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
    objects_put_req put = {.data = len ? data : objects_nothing, .fd = -1, .size = len};
    return objects_put_run(obj, key, &put);
}

/* Up to OBJECTS_PARALLEL PUTs in flight at once on one request context
 * (one connection each): the caller waits one round trip, not @count. */
static int objects_put_batch(objects *obj, const acp_job_id *id, const objects_item *items,
                             size_t count)
{
    objects_put_req puts[OBJECTS_PARALLEL];
    char keys[OBJECTS_PARALLEL][OBJECTS_KEY_MAX + 1];
    for (size_t i = 0; i < count; i++) {
        int rc = objects_key(obj, id, items[i].name, keys[i]);
        if (rc)
            return rc;
        if (!items[i].data && items[i].len)
            return error_set(ACP_EINVAL, "objects_put_many: NULL data for %zu bytes", items[i].len);
        puts[i] = (objects_put_req){
            .data = items[i].len ? items[i].data : objects_nothing, .fd = -1, .size = items[i].len};
        objects_call_reset(&puts[i].call);
    }
    objects_runner *runner = objects_runner_take(obj, &puts[0].call);
    if (!runner)
        return objects_fail(obj, &puts[0].call, "PUT", keys[0]);
    atomic_fetch_add(&obj->requests[OBJECTS_PUT], count);
    for (size_t i = 0; i < count; i++)
        S3_put_object(&obj->context, keys[i], puts[i].size, NULL, runner->request,
                      &objects_put_handler, &puts[i]);
    objects_run(obj, runner);
    for (size_t i = 0; i < count; i++) {
        if (puts[i].call.status == S3StatusOK)
            continue;
        /* Once more on its own, with the usual retries. */
        int rc = objects_retryable(puts[i].call.status)
                     ? objects_put_run(obj, keys[i], &puts[i])
                     : objects_fail(obj, &puts[i].call, "PUT", keys[i]);
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
    objects_put_req put = {.fd = fd, .size = (uint64_t)st.st_size};
    return objects_put_run(obj, key, &put);
}

/* ---- HEAD ---------------------------------------------------------------- */

typedef struct objects_head_req {
    objects_call call; /* first: see objects_call */
    uint64_t size;
    int64_t mtime;
} objects_head_req;

static S3Status objects_head_properties(const S3ResponseProperties *properties, void *data)
{
    objects_head_req *head = data;
    head->size = properties->contentLength;
    head->mtime = properties->lastModified >= 0 ? properties->lastModified * 1000000 : 0;
    return S3StatusOK;
}

static int objects_head(objects *obj, const char *key, bool *exists, uint64_t *size, int64_t *mtime)
{
    S3ResponseHandler handler = {objects_head_properties, objects_on_complete};
    objects_head_req head;
    for (int attempt = 0;; attempt++) {
        objects_call_reset(&head.call);
        head.size = 0;
        head.mtime = 0;
        objects_runner *runner = objects_runner_take(obj, &head.call);
        if (runner) {
            atomic_fetch_add(&obj->requests[OBJECTS_HEAD], 1);
            S3_head_object(&obj->context, key, runner->request, &handler, &head);
            objects_run(obj, runner);
        }
        if (!objects_again(obj, &head.call, attempt, "HEAD", key))
            break;
    }
    if (head.call.status != S3StatusOK && !objects_not_found(head.call.status))
        return objects_fail(obj, &head.call, "HEAD", key);
    bool found = head.call.status == S3StatusOK;
    if (exists)
        *exists = found;
    if (size)
        *size = found ? head.size : 0;
    if (mtime)
        *mtime = found ? head.mtime : 0;
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
    objects_put_req put = {.data = objects_nothing, .fd = -1, .size = 0};
    return objects_put_run(obj, key, &put);
}

/* ---- GET ----------------------------------------------------------------- */

typedef struct objects_get_req {
    objects_call call; /* first: see objects_call */
    objects_sink sink;
    void *userdata;
    int sink_rc;       /* the sink's non-zero return, which stopped the transfer */
    uint64_t received; /* bytes given to the sink */
    uint64_t expected; /* Content-Length of a successful response */
    bool has_length;
} objects_get_req;

static S3Status objects_get_properties(const S3ResponseProperties *properties, void *data)
{
    objects_get_req *get = data;
    get->expected = properties->contentLength;
    get->has_length = true;
    return S3StatusOK;
}

static S3Status objects_get_data(int size, const char *buffer, void *data)
{
    objects_get_req *get = data;
    if (size <= 0)
        return S3StatusOK;
    get->received += (uint64_t)size;
    int rc = get->sink(get->userdata, buffer, (size_t)size);
    if (rc != 0) {
        get->sink_rc = rc;
        return S3StatusAbortedByCallback;
    }
    return S3StatusOK;
}

int objects_read(objects *obj, const acp_job_id *id, const char *name, objects_sink sink,
                 void *userdata)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    if (!sink)
        return error_set(ACP_EINVAL, "objects_read: NULL sink");
    S3GetObjectHandler handler = {{objects_get_properties, objects_on_complete}, objects_get_data};
    objects_get_req get = {.sink = sink, .userdata = userdata};
    for (int attempt = 0;; attempt++) {
        objects_call_reset(&get.call);
        get.expected = 0;
        get.has_length = false;
        objects_runner *runner = objects_runner_take(obj, &get.call);
        if (runner) {
            atomic_fetch_add(&obj->requests[OBJECTS_GET], 1);
            S3_get_object(&obj->context, key, NULL, 0, 0, runner->request, &handler, &get);
            objects_run(obj, runner);
        }
        if (get.sink_rc)
            return get.sink_rc;
        if (get.call.status == S3StatusOK && get.has_length && get.received < get.expected) {
            get.call.status = S3StatusConnectionFailed;
            snprintf(get.call.detail, sizeof get.call.detail,
                     "the transfer ended after %" PRIu64 " of %" PRIu64 " bytes", get.received,
                     get.expected);
        }
        /* What the sink has seen cannot be taken back. */
        if (get.received > 0 || !objects_again(obj, &get.call, attempt, "GET", key))
            break;
    }
    return get.call.status == S3StatusOK ? 0 : objects_fail(obj, &get.call, "GET", key);
}

/* ---- DELETE -------------------------------------------------------------- */

static int objects_delete_key(objects *obj, const char *key)
{
    objects_call call;
    for (int attempt = 0;; attempt++) {
        objects_call_reset(&call);
        objects_runner *runner = objects_runner_take(obj, &call);
        if (runner) {
            atomic_fetch_add(&obj->requests[OBJECTS_DELETE], 1);
            S3_delete_object(&obj->context, key, runner->request, &objects_response, &call);
            objects_run(obj, runner);
        }
        if (!objects_again(obj, &call, attempt, "DELETE", key))
            break;
    }
    if (call.status == S3StatusOK || objects_not_found(call.status))
        return 0;
    return objects_fail(obj, &call, "DELETE", key);
}

int objects_delete(objects *obj, const acp_job_id *id, const char *name)
{
    char key[OBJECTS_KEY_MAX + 1];
    int rc = objects_key(obj, id, name, key);
    if (rc)
        return rc;
    return objects_delete_key(obj, key);
}

/* ---- LIST ---------------------------------------------------------------- */

typedef struct objects_list_req {
    objects_call call; /* first: see objects_call */
    object_list *out;
    size_t cap;
    const char *prefix;
    size_t prefix_len;
    size_t page_count; /* keys on this page */
    bool truncated;
    bool no_memory;
    char last_key[OBJECTS_KEY_MAX + 1];
    char next_marker[OBJECTS_KEY_MAX + 1];
} objects_list_req;

static void objects_list_truncate(object_list *list, size_t count)
{
    while (list->count > count)
        free(list->items[--list->count].name);
}

/* libs3 2.0 parses a listing's UTC times with mktime(), that is as local
 * time. The local broken-down time of its result is therefore the UTC time
 * the server sent, which timegm() turns into the right instant. Exact in
 * every zone except for times inside the local zone's spring-forward gap,
 * which libs3 has already made ambiguous (they come out an hour late). */
static int64_t objects_listed_time(int64_t seconds)
{
    if (seconds < 0)
        return 0;
    time_t local = (time_t)seconds;
    struct tm fields;
    if (!localtime_r(&local, &fields))
        return seconds * 1000000;
    time_t utc = timegm(&fields);
    return (utc == (time_t)-1 ? seconds : (int64_t)utc) * 1000000;
}

static S3Status objects_on_list(int truncated, const char *next_marker, int count,
                                const S3ListBucketContent *contents, int prefix_count,
                                const char **prefixes, void *data)
{
    (void)prefix_count;
    (void)prefixes;
    objects_list_req *req = data;
    /* libs3 reports a page in pieces of 32 keys; IsTruncated may be known
     * only in some of them. */
    if (truncated)
        req->truncated = true;
    if (next_marker && *next_marker)
        snprintf(req->next_marker, sizeof req->next_marker, "%s", next_marker);
    for (int i = 0; i < count; i++) {
        const char *key = contents[i].key;
        req->page_count++;
        snprintf(req->last_key, sizeof req->last_key, "%s", key);
        if (strncmp(key, req->prefix, req->prefix_len) != 0 || !key[req->prefix_len])
            continue;
        object_list *list = req->out;
        if (list->count == req->cap) {
            size_t cap = req->cap ? req->cap * 2 : 16;
            object_entry *items = realloc(list->items, cap * sizeof *items);
            if (!items) {
                req->no_memory = true;
                return S3StatusOutOfMemory;
            }
            list->items = items;
            req->cap = cap;
        }
        char *name = strdup(key + req->prefix_len);
        if (!name) {
            req->no_memory = true;
            return S3StatusOutOfMemory;
        }
        list->items[list->count++] = (object_entry){
            .name = name,
            .size = contents[i].size,
            .mtime = objects_listed_time(contents[i].lastModified),
        };
    }
    return S3StatusOK;
}

/* Every object whose key starts with @prefix, all pages, into @out. */
static int objects_list_prefix(objects *obj, const char *prefix, object_list *out)
{
    out->items = NULL;
    out->count = 0;
    S3ListBucketHandler handler = {objects_response, objects_on_list};
    objects_list_req req = {.out = out, .prefix = prefix, .prefix_len = strlen(prefix)};
    char marker[OBJECTS_KEY_MAX + 1] = "";
    for (;;) {
        size_t mark = out->count;
        for (int attempt = 0;; attempt++) {
            objects_list_truncate(out, mark); /* a failed attempt's part of the page */
            objects_call_reset(&req.call);
            req.page_count = 0;
            req.truncated = false;
            req.last_key[0] = req.next_marker[0] = '\0';
            objects_runner *runner = objects_runner_take(obj, &req.call);
            if (runner) {
                atomic_fetch_add(&obj->requests[OBJECTS_LIST], 1);
                S3_list_bucket(&obj->context, prefix, marker[0] ? marker : NULL, NULL,
                               OBJECTS_LIST_PAGE, runner->request, &handler, &req);
                objects_run(obj, runner);
            }
            if (req.no_memory) {
                object_list_free(out);
                return error_set(ACP_ENOMEM, "S3 %s: out of memory listing %s/%s", obj->endpoint,
                                 obj->bucket, prefix);
            }
            if (!objects_again(obj, &req.call, attempt, "LIST", prefix))
                break;
        }
        if (req.call.status != S3StatusOK) {
            object_list_free(out);
            return objects_fail(obj, &req.call, "LIST", prefix);
        }
        /* A full page without IsTruncated is asked about once more rather
         * than trusting that libs3 saw the flag. */
        if (!req.truncated && req.page_count < OBJECTS_LIST_PAGE)
            return 0;
        const char *next = req.next_marker[0] ? req.next_marker : req.last_key;
        if (!next[0])
            return 0;
        if (marker[0] && strcmp(next, marker) <= 0) {
            object_list_free(out);
            return error_set(ACP_ESTORAGE,
                             "S3 %s: LIST %s/%s: the listing does not advance past '%s'",
                             obj->endpoint, obj->bucket, prefix, marker);
        }
        snprintf(marker, sizeof marker, "%s", next);
    }
}

int objects_list(objects *obj, const acp_job_id *id, object_list *out)
{
    if (!out)
        return error_set(ACP_EINVAL, "objects_list: NULL result");
    out->items = NULL;
    out->count = 0;
    char prefix[OBJECTS_KEY_MAX + 1];
    int rc = objects_prefix(obj, id, prefix);
    if (rc)
        return rc;
    return objects_list_prefix(obj, prefix, out);
}

void object_list_free(object_list *list)
{
    if (!list)
        return;
    objects_list_truncate(list, 0);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* The bucket exists and these credentials may list it: one signed request. */
static int objects_check_bucket(objects *obj)
{
    S3ListBucketHandler handler = {objects_response, objects_on_list};
    object_list seen = {NULL, 0};
    objects_list_req req = {.out = &seen, .prefix = obj->root, .prefix_len = strlen(obj->root)};
    for (int attempt = 0;; attempt++) {
        objects_list_truncate(&seen, 0);
        objects_call_reset(&req.call);
        objects_runner *runner = objects_runner_take(obj, &req.call);
        if (runner) {
            atomic_fetch_add(&obj->requests[OBJECTS_LIST], 1);
            S3_list_bucket(&obj->context, obj->root[0] ? obj->root : NULL, NULL, NULL, 1,
                           runner->request, &handler, &req);
            objects_run(obj, runner);
        }
        if (!objects_again(obj, &req.call, attempt, "LIST", obj->root))
            break;
    }
    object_list_free(&seen);
    S3Status status = req.call.status;
    if (status == S3StatusOK)
        return 0;
    if (status == S3StatusErrorNoSuchBucket || status == S3StatusHttpErrorNotFound)
        return error_set(ACP_ESTORAGE, "S3 %s: bucket '%s' does not exist", obj->endpoint,
                         obj->bucket);
    if (objects_denied(status))
        return error_set(ACP_ESTORAGE,
                         "S3 %s: access denied to bucket '%s': check the access key and "
                         "secret (%s)",
                         obj->endpoint, obj->bucket, req.call.detail);
    if (objects_unreachable(status))
        return error_set(ACP_ESTORAGE, "S3 %s: could not connect (%s)", obj->endpoint,
                         req.call.detail);
    if (status == S3StatusOutOfMemory)
        return error_set(ACP_ENOMEM, "S3 %s: out of memory checking bucket '%s'", obj->endpoint,
                         obj->bucket);
    return error_set(ACP_ESTORAGE, "S3 %s: checking bucket '%s' failed: %s", obj->endpoint,
                     obj->bucket, req.call.detail);
}

/* ---- wipe ---------------------------------------------------------------- */

int objects_wipe(objects *obj, const acp_job_id *id)
{
    return objects_wipe_except(obj, id, NULL);
}

int objects_wipe_except(objects *obj, const acp_job_id *id, bool (*keep)(const char *name))
{
    char prefix[OBJECTS_KEY_MAX + 1];
    int rc = objects_prefix(obj, id, prefix);
    if (rc)
        return rc;
    object_list list;
    if ((rc = objects_list_prefix(obj, prefix, &list)))
        return rc;
    if (keep) {
        size_t kept = 0;
        for (size_t i = 0; i < list.count; i++) {
            if (keep(list.items[i].name))
                free(list.items[i].name);
            else
                list.items[kept++] = list.items[i];
        }
        list.count = kept;
    }
    /* libs3 2.0 has no multi-object delete: one DELETE per key, a few at a
     * time in one request context (one connection each). */
    objects_call calls[OBJECTS_PARALLEL];
    char keys[OBJECTS_PARALLEL][OBJECTS_KEY_MAX + 1];
    for (size_t first = 0; first < list.count && rc == 0; first += OBJECTS_PARALLEL) {
        size_t batch = list.count - first;
        if (batch > OBJECTS_PARALLEL)
            batch = OBJECTS_PARALLEL;
        for (size_t i = 0; i < batch; i++) {
            snprintf(keys[i], sizeof keys[i], "%s%s", prefix, list.items[first + i].name);
            objects_call_reset(&calls[i]);
        }
        objects_runner *runner = objects_runner_take(obj, &calls[0]);
        if (!runner) {
            rc = objects_fail(obj, &calls[0], "DELETE", keys[0]);
            break;
        }
        atomic_fetch_add(&obj->requests[OBJECTS_DELETE], batch);
        for (size_t i = 0; i < batch; i++)
            S3_delete_object(&obj->context, keys[i], runner->request, &objects_response, &calls[i]);
        objects_run(obj, runner);
        for (size_t i = 0; i < batch && rc == 0; i++) {
            S3Status status = calls[i].status;
            if (status == S3StatusOK || objects_not_found(status))
                continue;
            /* Once more on its own, with the usual retries. */
            rc = objects_retryable(status) ? objects_delete_key(obj, keys[i])
                                           : objects_fail(obj, &calls[i], "DELETE", keys[i]);
        }
    }
    object_list_free(&list);
    return rc;
}

/* ---- workspaces under the root ------------------------------------------ */

typedef struct objects_dirs_req {
    objects_call call; /* first: see objects_call */
    const char *root;
    size_t root_len;
    acp_job_id *ids;
    size_t limit;
    size_t count;
    bool truncated;
    char last[OBJECTS_KEY_MAX + 1];
} objects_dirs_req;

static S3Status objects_on_dirs(int truncated, const char *next_marker, int count,
                                const S3ListBucketContent *contents, int prefix_count,
                                const char **prefixes, void *data)
{
    (void)next_marker;
    (void)count;
    (void)contents;
    objects_dirs_req *req = data;
    if (truncated)
        req->truncated = true;
    for (int i = 0; i < prefix_count; i++) {
        const char *dir = prefixes[i];
        snprintf(req->last, sizeof req->last, "%s", dir);
        /* "<root><32 hex>/": anything else under the root is not a workspace. */
        char hex[ACP_JOB_ID_STRLEN];
        size_t len = strlen(dir);
        if (strncmp(dir, req->root, req->root_len) != 0 ||
            len != req->root_len + ACP_JOB_ID_HEX_LEN + 1 || dir[len - 1] != '/')
            continue;
        memcpy(hex, dir + req->root_len, ACP_JOB_ID_HEX_LEN);
        hex[ACP_JOB_ID_HEX_LEN] = '\0';
        acp_job_id id;
        if (req->count < req->limit && acp_job_id_parse(&id, hex) == 0)
            req->ids[req->count++] = id;
    }
    return S3StatusOK;
}

int objects_list_workspaces(objects *obj, const acp_job_id *after, size_t limit, acp_job_id *ids,
                            size_t *count, bool *more)
{
    *count = 0;
    *more = false;
    if (limit == 0)
        return 0;
    char marker[OBJECTS_KEY_MAX + 2] = ""; /* a key and "~" */
    if (after) {
        char hex[ACP_JOB_ID_STRLEN];
        /* Past "<root><id>/" and everything in it: names are [A-Za-z0-9_.-],
         * all below "~". */
        snprintf(marker, sizeof marker, "%s%s/~", obj->root, acp_job_id_format(after, hex));
    }
    objects_dirs_req req = {
        .root = obj->root, .root_len = strlen(obj->root), .ids = ids, .limit = limit};
    S3ListBucketHandler handler = {objects_response, objects_on_dirs};
    /* Keys that are not workspaces take room in a page: ask again until the
     * page is full or the listing ends. */
    for (;;) {
        size_t mark = req.count;
        for (int attempt = 0;; attempt++) {
            req.count = mark;
            req.truncated = false;
            req.last[0] = '\0';
            objects_call_reset(&req.call);
            objects_runner *runner = objects_runner_take(obj, &req.call);
            if (runner) {
                atomic_fetch_add(&obj->requests[OBJECTS_LIST], 1);
                S3_list_bucket(&obj->context, obj->root[0] ? obj->root : NULL,
                               marker[0] ? marker : NULL, "/", (int)(limit - mark), runner->request,
                               &handler, &req);
                objects_run(obj, runner);
            }
            if (!objects_again(obj, &req.call, attempt, "LIST", obj->root))
                break;
        }
        if (req.call.status != S3StatusOK)
            return objects_fail(obj, &req.call, "LIST", obj->root);
        if (!req.truncated || !req.last[0]) {
            *count = req.count;
            return 0;
        }
        if (req.count == limit) {
            *count = req.count;
            *more = true;
            return 0;
        }
        snprintf(marker, sizeof marker, "%s~", req.last);
    }
}

void objects_request_counts(const objects *obj, uint64_t counts[OBJECTS_KINDS])
{
    for (int k = 0; k < OBJECTS_KINDS; k++)
        counts[k] = atomic_load(&((objects *)obj)->requests[k]);
}
