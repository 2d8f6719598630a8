/* transport_libs3.c: the S3 transport over libs3 2.0 (see transport.h).
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
 *   see transport_libs3_drive() for the 40 ms stall this avoids.
 * - libs3 2.0 is not quite thread-safe: it formats x-amz-date with gmtime()
 *   (issuing is serialised, see transport_libs3_issue_lock) and parses
 *   listing times with mktime() as local time (undone in
 *   transport_libs3_listed_time()).
 * - There is no request timeout in libs3 2.0's API. It sets curl's
 *   low-speed abort (below 1 KiB/s for 15 s, reported as ConnectionFailed
 *   and retried by the caller) and leaves connecting to curl's default of
 *   300 s; on Linux an unanswered connect gives up after about 2 minutes of
 *   SYN retries. A refused connection fails at once.
 * - libs3 reports a transfer cut short (CURLE_PARTIAL_FILE) as success, so a
 *   GET compares the bytes received with the Content-Length.
 * - libs3 2.0 does not verify the server's TLS certificate
 *   (CURLOPT_SSL_VERIFYPEER is off and there is no option for it).
 */
#include "transport_libs3.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>

#include <libs3.h>

#include "clock.h"
#include "error.h"

typedef struct transport_libs3 {
    transport base; /* first: see transport.h */
    /* "host:port", or "host" when the port is 0: libs3's host name, and the
     * endpoint named in every message. */
    char *endpoint;
    char *bucket;
    char *access_key;
    char *secret_key;
    S3BucketContext context;
    pthread_mutex_t lock;                /* guards idle */
    struct transport_libs3_runner *idle; /* request contexts not in use */
} transport_libs3;

/* ---- libs3 set-up -------------------------------------------------------- */

static pthread_once_t transport_libs3_once = PTHREAD_ONCE_INIT;
static S3Status transport_libs3_init_status = S3StatusInternalError;

static void transport_libs3_global_init(void)
{
    transport_libs3_init_status =
        S3_initialize("async-platform " ACP_VERSION_STRING, S3_INIT_ALL, NULL);
}

/* libs3's callback data for one request of a batch. */
typedef struct transport_libs3_call {
    transport_request *req;
    uint64_t offset;   /* PUT: bytes handed to libs3 so far */
    uint64_t received; /* GET: bytes given to the sink */
    uint64_t expected; /* GET: Content-Length of a successful response */
    bool has_length;
    /* LIST: a callback stopped it. libs3 2.0 ignores the status that the
     * last piece of a page returns, so the page would end OK. */
    bool stopped;
} transport_libs3_call;

/* ---- driving requests ---------------------------------------------------- */

/* A libs3 request context (a curl multi handle, with its connection cache)
 * that one thread at a time uses for a request or a batch of them. */
typedef struct transport_libs3_runner {
    S3RequestContext *request;
    struct transport_libs3_runner *next;
} transport_libs3_runner;

/* libs3 2.0 formats each request's x-amz-date with gmtime(), whose result
 * is shared by every thread: requests are issued one thread at a time.
 * Issuing only composes the request and adds it to a context, so the lock
 * is held for microseconds; the transfer runs unlocked in
 * transport_libs3_drive(). */
static pthread_mutex_t transport_libs3_issue_lock = PTHREAD_MUTEX_INITIALIZER;

/* An idle runner from the pool, or a new one, returned with
 * transport_libs3_issue_lock held: issue one request (or a few) on it, then
 * call transport_libs3_drive(). NULL, with no lock held, when no context can
 * be made. */
static transport_libs3_runner *transport_libs3_runner_take(transport_libs3 *tl)
{
    pthread_mutex_lock(&tl->lock);
    transport_libs3_runner *runner = tl->idle;
    if (runner)
        tl->idle = runner->next;
    pthread_mutex_unlock(&tl->lock);
    if (!runner) {
        runner = malloc(sizeof *runner);
        if (runner && S3_create_request_context(&runner->request) != S3StatusOK) {
            free(runner);
            runner = NULL;
        }
        if (!runner)
            return NULL;
    }
    pthread_mutex_lock(&transport_libs3_issue_lock);
    return runner;
}

static void transport_libs3_runner_destroy(transport_libs3_runner *runner)
{
    /* Finishes any request still in the context with S3StatusInterrupted,
     * so its completion callback has run afterwards. */
    S3_destroy_request_context(runner->request);
    free(runner);
}

/* A pending delayed ACK goes out now (see transport_libs3_drive). */
static void transport_libs3_quick_ack(int fd)
{
    int on = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

/* Release transport_libs3_issue_lock, run the requests just issued on
 * @runner to completion, then put @runner back in the pool.
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
static void transport_libs3_drive(transport_libs3 *tl, transport_libs3_runner *runner)
{
    pthread_mutex_unlock(&transport_libs3_issue_lock);
    S3RequestContext *request = runner->request;
    for (;;) {
        int remaining = 0;
        if (S3_runonce_request_context(request, &remaining) != S3StatusOK)
            break;
        if (remaining == 0) {
            pthread_mutex_lock(&tl->lock);
            runner->next = tl->idle;
            tl->idle = runner;
            pthread_mutex_unlock(&tl->lock);
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
                transport_libs3_quick_ack(fd);
        int64_t wait_ms = S3_get_request_context_timeout(request);
        if (max_fd < 0) {
            /* Nothing to wait on (a timer, or a socket beyond FD_SETSIZE). */
            clock_sleep_ms(wait_ms == 0 ? 0 : 1);
            continue;
        }
        if (wait_ms < 0 || wait_ms > 1000)
            wait_ms = 1000;
        struct timeval timeout = {(time_t)(wait_ms / 1000), (suseconds_t)(wait_ms % 1000) * 1000};
        if (select(max_fd + 1, &readable, &writable, &failed, &timeout) < 0 && errno != EINTR)
            break;
    }
    transport_libs3_runner_destroy(runner);
}

/* ---- one request's outcome ---------------------------------------------- */

/* Transient by nature: connection trouble, and the server's 500 and 503.
 * libs3 maps curl's send/receive errors (a dropped keep-alive connection,
 * for one) to InternalError, so that is transient as well, and so is a
 * request that transport_libs3_drive() had to abandon (Interrupted). */
static transport_result transport_libs3_result(S3Status status)
{
    switch (status) {
    case S3StatusOK:
        return TRANSPORT_OK;
    case S3StatusFailedToConnect:
    case S3StatusNameLookupError:
        return TRANSPORT_UNREACHABLE;
    case S3StatusInternalError:
    case S3StatusErrorSlowDown:
    case S3StatusHttpErrorUnknown:
    case S3StatusInterrupted:
        return TRANSPORT_TRANSIENT;
    case S3StatusErrorNoSuchBucket:
    case S3StatusErrorNoSuchKey:
    case S3StatusHttpErrorNotFound:
        return TRANSPORT_NOT_FOUND;
    case S3StatusErrorAccessDenied:
    case S3StatusErrorInvalidAccessKeyId:
    case S3StatusErrorSignatureDoesNotMatch:
    case S3StatusHttpErrorForbidden:
        return TRANSPORT_DENIED;
    case S3StatusOutOfMemory:
        return TRANSPORT_NO_MEMORY;
    case S3StatusAbortedByCallback:
        return TRANSPORT_ABORTED;
    default:
        return S3_status_is_retryable(status) ? TRANSPORT_TRANSIENT : TRANSPORT_PERMANENT;
    }
}

/* The HTTP status where libs3 tells it (it keeps only a few). */
static int transport_libs3_http_status(S3Status status)
{
    switch (status) {
    case S3StatusHttpErrorMovedTemporarily:
        return 301;
    case S3StatusHttpErrorBadRequest:
        return 400;
    case S3StatusHttpErrorForbidden:
        return 403;
    case S3StatusHttpErrorNotFound:
        return 404;
    case S3StatusHttpErrorConflict:
        return 409;
    default:
        return 0;
    }
}

static void transport_libs3_reset(transport_outcome *outcome)
{
    /* libs3 always calls the completion callback; this only guards against
     * a request that never reported back. */
    *outcome = (transport_outcome){.result = TRANSPORT_TRANSIENT};
    snprintf(outcome->detail, sizeof outcome->detail, "no response from libs3");
}

static void transport_libs3_detail_append(transport_outcome *outcome, size_t *len,
                                          const char *before, const char *value, const char *after)
{
    if (!value || !*value || *len >= sizeof outcome->detail - 1)
        return;
    int n = snprintf(outcome->detail + *len, sizeof outcome->detail - *len, "%s%s%s", before, value,
                     after);
    if (n > 0)
        *len += (size_t)n;
    if (*len > sizeof outcome->detail - 1)
        *len = sizeof outcome->detail - 1;
}

static void transport_libs3_on_complete(S3Status status, const S3ErrorDetails *error, void *data)
{
    transport_libs3_call *call = data;
    transport_outcome *outcome = &call->req->outcome;
    *outcome = (transport_outcome){.result = transport_libs3_result(status),
                                   .http_status = transport_libs3_http_status(status)};
    if (status == S3StatusOK)
        return;
    const char *name = S3_get_status_name(status);
    /* The server's error code is the name libs3 gives it, after "Error". */
    if (status >= S3StatusErrorAccessDenied && status < S3StatusErrorUnknown && name &&
        strncmp(name, "Error", 5) == 0)
        snprintf(outcome->code, sizeof outcome->code, "%s", name + 5);
    if (error && error->message)
        snprintf(outcome->message, sizeof outcome->message, "%s", error->message);
    size_t len = 0;
    transport_libs3_detail_append(outcome, &len, "", name, "");
    if (error) {
        transport_libs3_detail_append(outcome, &len, ": ", error->message, "");
        transport_libs3_detail_append(outcome, &len, " (resource ", error->resource, ")");
        transport_libs3_detail_append(outcome, &len, "; ", error->furtherDetails, "");
    }
}

static S3Status transport_libs3_on_properties(const S3ResponseProperties *properties, void *data)
{
    (void)properties;
    (void)data;
    return S3StatusOK;
}

/* The handlers are spelled out: a const struct is no constant expression in
 * C11 (GCC accepts one here as an extension, clang does not). */
static const S3ResponseHandler transport_libs3_response = {transport_libs3_on_properties,
                                                           transport_libs3_on_complete};

/* ---- PUT, GET, HEAD ------------------------------------------------------ */

static int transport_libs3_put_data(int size, char *buffer, void *data)
{
    transport_libs3_call *call = data;
    transport_request *req = call->req;
    uint64_t left = req->put.size - call->offset;
    size_t want = size > 0 ? (size_t)size : 0;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    ssize_t n = req->put.read(req->put.userdata, call->offset, buffer, want);
    if (n <= 0 || (size_t)n > want)
        return -1;
    call->offset += (uint64_t)n;
    return (int)n;
}

static const S3PutObjectHandler transport_libs3_put_handler = {
    {transport_libs3_on_properties, transport_libs3_on_complete}, transport_libs3_put_data};

static S3Status transport_libs3_get_properties(const S3ResponseProperties *properties, void *data)
{
    transport_libs3_call *call = data;
    call->expected = properties->contentLength;
    call->has_length = true;
    return S3StatusOK;
}

static S3Status transport_libs3_get_data(int size, const char *buffer, void *data)
{
    transport_libs3_call *call = data;
    if (size <= 0)
        return S3StatusOK;
    call->received += (uint64_t)size;
    transport_request *req = call->req;
    if (req->get.sink(req->get.userdata, buffer, (size_t)size) != 0)
        return S3StatusAbortedByCallback;
    return S3StatusOK;
}

static const S3GetObjectHandler transport_libs3_get_handler = {
    {transport_libs3_get_properties, transport_libs3_on_complete}, transport_libs3_get_data};

static S3Status transport_libs3_head_properties(const S3ResponseProperties *properties, void *data)
{
    transport_request *req = ((transport_libs3_call *)data)->req;
    req->head.size = properties->contentLength;
    req->head.mtime = properties->lastModified >= 0 ? properties->lastModified * 1000000 : 0;
    return S3StatusOK;
}

static const S3ResponseHandler transport_libs3_head_handler = {transport_libs3_head_properties,
                                                               transport_libs3_on_complete};

/* ---- LIST ---------------------------------------------------------------- */

/* libs3 2.0 parses a listing's UTC times with mktime(), that is as local
 * time. The local broken-down time of its result is therefore the UTC time
 * the server sent, which timegm() turns into the right instant. Exact in
 * every zone except for times inside the local zone's spring-forward gap,
 * which libs3 has already made ambiguous (they come out an hour late). */
static int64_t transport_libs3_listed_time(int64_t seconds)
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

static S3Status transport_libs3_on_list(int truncated, const char *next_marker, int count,
                                        const S3ListBucketContent *contents, int prefix_count,
                                        const char **prefixes, void *data)
{
    transport_libs3_call *call = data;
    transport_request *req = call->req;
    if (call->stopped)
        return S3StatusAbortedByCallback;
    /* libs3 reports a page in pieces of 32 keys; IsTruncated may be known
     * only in some of them. */
    if (truncated)
        req->list.truncated = true;
    if (next_marker && *next_marker)
        snprintf(req->list.next_marker, sizeof req->list.next_marker, "%s", next_marker);
    for (int i = 0; i < count && !call->stopped; i++)
        call->stopped =
            req->list.on_key(req->list.userdata, contents[i].key, contents[i].size,
                             transport_libs3_listed_time(contents[i].lastModified)) != 0;
    for (int i = 0; i < prefix_count && req->list.on_prefix && !call->stopped; i++)
        call->stopped = req->list.on_prefix(req->list.userdata, prefixes[i]) != 0;
    return call->stopped ? S3StatusAbortedByCallback : S3StatusOK;
}

static const S3ListBucketHandler transport_libs3_list_handler = {
    {transport_libs3_on_properties, transport_libs3_on_complete}, transport_libs3_on_list};

/* ---- run ----------------------------------------------------------------- */

static void transport_libs3_issue(transport_libs3 *tl, S3RequestContext *context,
                                  transport_libs3_call *call)
{
    transport_request *req = call->req;
    const S3BucketContext *bucket = &tl->context;
    switch (req->op) {
    case TRANSPORT_PUT:
        S3_put_object(bucket, req->key, req->put.size, NULL, context, &transport_libs3_put_handler,
                      call);
        break;
    case TRANSPORT_GET:
        S3_get_object(bucket, req->key, NULL, 0, 0, context, &transport_libs3_get_handler, call);
        break;
    case TRANSPORT_HEAD:
        req->head.size = 0;
        req->head.mtime = 0;
        S3_head_object(bucket, req->key, context, &transport_libs3_head_handler, call);
        break;
    case TRANSPORT_LIST: {
        req->list.truncated = false;
        req->list.next_marker[0] = '\0';
        const char *prefix = req->list.prefix && *req->list.prefix ? req->list.prefix : NULL;
        const char *marker = req->list.marker && *req->list.marker ? req->list.marker : NULL;
        int max_keys = req->list.max_keys > INT_MAX ? INT_MAX : (int)req->list.max_keys;
        S3_list_bucket(bucket, prefix, marker, req->list.delimiter, max_keys, context,
                       &transport_libs3_list_handler, call);
        break;
    }
    case TRANSPORT_DELETE:
        S3_delete_object(bucket, req->key, context, &transport_libs3_response, call);
        break;
    case TRANSPORT_MPU_CREATE:
    case TRANSPORT_MPU_PART:
    case TRANSPORT_MPU_COMPLETE:
    case TRANSPORT_MPU_ABORT:
    case TRANSPORT_MPU_LIST:
        /* Not announced in caps: a caller asking anyway gets a plain no. */
        req->outcome = (transport_outcome){.result = TRANSPORT_PERMANENT};
        snprintf(req->outcome.detail, sizeof req->outcome.detail,
                 "multipart upload is not supported by the libs3 transport");
        break;
    }
}

/* Up to TRANSPORT_BATCH_MAX requests in flight at once on one request
 * context (one connection each). */
static void transport_libs3_batch(transport_libs3 *tl, transport_request *reqs, size_t n)
{
    transport_libs3_call calls[TRANSPORT_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        calls[i] = (transport_libs3_call){.req = &reqs[i]};
        transport_libs3_reset(&reqs[i].outcome);
    }
    transport_libs3_runner *runner = transport_libs3_runner_take(tl);
    if (!runner) {
        for (size_t i = 0; i < n; i++) {
            reqs[i].outcome.result = TRANSPORT_NO_MEMORY;
            snprintf(reqs[i].outcome.detail, sizeof reqs[i].outcome.detail,
                     "no memory for a request context");
        }
        return;
    }
    for (size_t i = 0; i < n; i++)
        transport_libs3_issue(tl, runner->request, &calls[i]);
    transport_libs3_drive(tl, runner);
    for (size_t i = 0; i < n; i++) {
        transport_outcome *outcome = &reqs[i].outcome;
        if (calls[i].stopped && outcome->result == TRANSPORT_OK) {
            *outcome = (transport_outcome){.result = TRANSPORT_ABORTED};
            snprintf(outcome->detail, sizeof outcome->detail, "stopped by the listing callback");
        }
        if (reqs[i].op == TRANSPORT_GET && outcome->result == TRANSPORT_OK && calls[i].has_length &&
            calls[i].received < calls[i].expected) {
            outcome->result = TRANSPORT_TRANSIENT;
            snprintf(outcome->detail, sizeof outcome->detail,
                     "the transfer ended after %" PRIu64 " of %" PRIu64 " bytes", calls[i].received,
                     calls[i].expected);
        }
    }
}

static void transport_libs3_run(transport *t, transport_request *reqs, size_t n)
{
    transport_libs3 *tl = (transport_libs3 *)t;
    for (size_t first = 0; first < n; first += TRANSPORT_BATCH_MAX)
        transport_libs3_batch(tl, reqs + first,
                              n - first < TRANSPORT_BATCH_MAX ? n - first : TRANSPORT_BATCH_MAX);
}

/* ---- open / close -------------------------------------------------------- */

static void transport_libs3_close(transport *t)
{
    transport_libs3 *tl = (transport_libs3 *)t;
    /* No request is in flight once the caller closes: every runner is idle. */
    while (tl->idle) {
        transport_libs3_runner *runner = tl->idle;
        tl->idle = runner->next;
        transport_libs3_runner_destroy(runner);
    }
    pthread_mutex_destroy(&tl->lock);
    free(tl->endpoint);
    free(tl->bucket);
    free(tl->access_key);
    free(tl->secret_key);
    free(tl);
}

static const transport_vtable transport_libs3_vtable = {
    .name = "libs3",
    .run = transport_libs3_run,
    .close = transport_libs3_close,
};

int transport_libs3_open(transport **out, const acp_s3_config *cfg)
{
    *out = NULL;
    if (!cfg->host || !*cfg->host)
        return error_set(ACP_EINVAL, "config.s3.host: required");
    if (!cfg->bucket || !*cfg->bucket)
        return error_set(ACP_EINVAL, "config.s3.bucket: required");
    if (!cfg->access_key || !cfg->secret_key)
        return error_set(ACP_EINVAL, "config.s3.access_key and secret_key: required");
    if (cfg->port < 0 || cfg->port > 65535)
        return error_set(ACP_EINVAL, "config.s3.port: %d is not in 0..65535", cfg->port);

    pthread_once(&transport_libs3_once, transport_libs3_global_init);
    if (transport_libs3_init_status != S3StatusOK)
        return error_set(ACP_ESTORAGE, "S3: initialising libs3 failed (%s)",
                         S3_get_status_name(transport_libs3_init_status));

    S3Status valid = S3_validate_bucket_name(cfg->bucket, S3UriStylePath);
    if (valid != S3StatusOK)
        return error_set(ACP_EINVAL, "config.s3.bucket: '%s' is not a valid bucket name (%s)",
                         cfg->bucket, S3_get_status_name(valid));

    transport_libs3 *tl = calloc(1, sizeof *tl);
    if (!tl)
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    int err = pthread_mutex_init(&tl->lock, NULL);
    if (err) {
        free(tl);
        return error_set(ACP_ENOMEM, "S3: creating a mutex: %s", error_strerror(err));
    }
    int len = cfg->port ? snprintf(NULL, 0, "%s:%d", cfg->host, cfg->port)
                        : snprintf(NULL, 0, "%s", cfg->host);
    tl->endpoint = malloc((size_t)len + 1);
    if (tl->endpoint) {
        if (cfg->port)
            snprintf(tl->endpoint, (size_t)len + 1, "%s:%d", cfg->host, cfg->port);
        else
            snprintf(tl->endpoint, (size_t)len + 1, "%s", cfg->host);
    }
    tl->bucket = strdup(cfg->bucket);
    tl->access_key = strdup(cfg->access_key);
    tl->secret_key = strdup(cfg->secret_key);
    if (!tl->endpoint || !tl->bucket || !tl->access_key || !tl->secret_key) {
        transport_libs3_close(&tl->base);
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    }
    if (len > S3_MAX_HOSTNAME_SIZE) {
        int rc = error_set(ACP_EINVAL, "config.s3.host: '%s' is longer than %d characters",
                           tl->endpoint, S3_MAX_HOSTNAME_SIZE);
        transport_libs3_close(&tl->base);
        return rc;
    }
    tl->context = (S3BucketContext){
        .hostName = tl->endpoint,
        .bucketName = tl->bucket,
        .protocol = cfg->https ? S3ProtocolHTTPS : S3ProtocolHTTP,
        .uriStyle = S3UriStylePath,
        .accessKeyId = tl->access_key,
        .secretAccessKey = tl->secret_key,
    };
    tl->base = (transport){.vt = &transport_libs3_vtable,
                           .caps = TRANSPORT_CAPS_NONE,
                           .endpoint = tl->endpoint,
                           .bucket = tl->bucket};
    *out = &tl->base;
    return 0;
}
