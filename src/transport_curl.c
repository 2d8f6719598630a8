/* transport_curl.c: the S3 transport over libcurl with Signature V4 (see
 * transport.h and transport_curl.h): the handles and their pool, driving
 * the transfers, and each request's outcome. How one request is put
 * together (URL, method, headers, callbacks) is s3_call.c's; the URL
 * encoding s3_url.c's, the XML answers s3_xml.c's, the classification of
 * statuses and errors s3_outcome.c's.
 *
 * What libcurl 7.88 (Debian 12) does, and how this file copes:
 * - CURLOPT_AWS_SIGV4 signs the path and query exactly as given, and every
 *   header set through CURLOPT_HTTPHEADER (so x-amz-content-sha256 and
 *   x-amz-security-token are signed, see s3_call.c); it does not add
 *   x-amz-content-sha256 itself (8.0 does).
 * - Connections live in a multi handle's cache. Each thread takes one
 *   multi handle (a "runner", with up to TRANSPORT_BATCH_MAX easy handles)
 *   from a pool for one run() and gives it back, so a job's requests reuse
 *   keep-alive connections; run() on several threads at once uses several
 *   runners.
 * - curl has a total timeout but no "no byte moved for N ms" timeout with
 *   ms precision (LOW_SPEED_TIME counts whole seconds), so the drive loop
 *   watches the bytes moved by body transfers itself.
 */
#include "transport_curl.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "buf.h"
#include "clock.h"
#include "config_s3.h"
#include "error.h"
#include "s3_call.h"
#include "s3_outcome.h"
#include "s3_url.h"
#include "s3_xml.h"

/* Sockets of a runner's connections remembered for TCP_QUICKACK (see
 * transport_curl_quick_ack): the cached ones and those in flight. */
#define TRANSPORT_CURL_SOCKETS (4 * TRANSPORT_BATCH_MAX)

/* A multi handle (with its connection cache) and its easy handles, used by
 * one thread at a time. */
typedef struct transport_curl_runner {
    CURLM *multi;
    CURL *easy[TRANSPORT_BATCH_MAX]; /* created when first needed */
    curl_socket_t sockets[TRANSPORT_CURL_SOCKETS];
    size_t socket_count;
    struct transport_curl_runner *next;
} transport_curl_runner;

typedef struct transport_curl {
    transport base; /* first: see transport.h */
    char *endpoint; /* "host:port", or "host" when the port is 0 */
    char *bucket;
    s3_call_settings settings; /* owns its strings */
    pthread_mutex_t lock;      /* guards idle */
    transport_curl_runner *idle;
    atomic_uint_least64_t connections; /* opened so far (CURLINFO_NUM_CONNECTS) */
} transport_curl;

/* ---- global set-up ------------------------------------------------------- */

static pthread_once_t transport_curl_once = PTHREAD_ONCE_INIT;
static CURLcode transport_curl_init_code = CURLE_FAILED_INIT;

/* Never undone: other transports (libs3 uses curl too) and other platforms
 * in the process may still need curl and libxml2. */
static void transport_curl_global_init(void)
{
    transport_curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
    s3_xml_init();
}

/* ---- the pool of runners ------------------------------------------------- */

static transport_curl_runner *transport_curl_runner_take(transport_curl *tc)
{
    pthread_mutex_lock(&tc->lock);
    transport_curl_runner *runner = tc->idle;
    if (runner)
        tc->idle = runner->next;
    pthread_mutex_unlock(&tc->lock);
    if (runner)
        return runner;
    runner = calloc(1, sizeof *runner);
    if (!runner)
        return NULL;
    runner->multi = curl_multi_init();
    if (!runner->multi) {
        free(runner);
        return NULL;
    }
    /* Keep one idle connection per request a batch may have in flight;
     * curl's default (4 x the easy handles added) drops to nothing between
     * batches. */
    curl_multi_setopt(runner->multi, CURLMOPT_MAXCONNECTS, (long)TRANSPORT_BATCH_MAX);
    return runner;
}

static void transport_curl_runner_give(transport_curl *tc, transport_curl_runner *runner)
{
    pthread_mutex_lock(&tc->lock);
    runner->next = tc->idle;
    tc->idle = runner;
    pthread_mutex_unlock(&tc->lock);
}

static void transport_curl_runner_destroy(transport_curl_runner *runner)
{
    /* The easy handles are out of the multi handle between runs; its
     * cleanup closes the cached connections. */
    curl_multi_cleanup(runner->multi);
    for (size_t i = 0; i < TRANSPORT_BATCH_MAX; i++)
        if (runner->easy[i])
            curl_easy_cleanup(runner->easy[i]);
    free(runner);
}

/* ---- driving ------------------------------------------------------------- */

/* radosgw (beast) writes a response in pieces without TCP_NODELAY (the
 * headers, then the body; or "100 Continue", then the answer): Nagle's
 * algorithm holds the second piece until the first is acknowledged, and the
 * client delays that ACK by up to 40 ms (transport_libs3.c met this first).
 * Each small GET and PUT took 44 ms instead of 2. Asking for an immediate
 * ACK on every socket of the runner before each wait avoids it (Linux
 * leaves quick-ACK mode by itself, so it is asked for each time). curl
 * tells which sockets it opens and closes through these callbacks;
 * CURLINFO_ACTIVESOCKET knows only the last finished transfer's. */
static void transport_curl_quick_ack(const transport_curl_runner *runner)
{
    int on = 1;
    for (size_t i = 0; i < runner->socket_count; i++)
        (void)setsockopt(runner->sockets[i], IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}

static int transport_curl_socket_opened(void *userdata, curl_socket_t fd, curlsocktype purpose)
{
    transport_curl_runner *runner = userdata;
    if (purpose == CURLSOCKTYPE_IPCXN && runner->socket_count < TRANSPORT_CURL_SOCKETS)
        runner->sockets[runner->socket_count++] = fd;
    return CURL_SOCKOPT_OK;
}

static int transport_curl_socket_closing(void *userdata, curl_socket_t fd)
{
    transport_curl_runner *runner = userdata;
    for (size_t i = 0; i < runner->socket_count; i++) {
        if (runner->sockets[i] == fd) {
            runner->sockets[i] = runner->sockets[--runner->socket_count];
            break;
        }
    }
    return close(fd);
}

static void transport_curl_done(CURLM *multi, s3_call *call, CURLcode code)
{
    call->done = true;
    call->code = code;
    curl_multi_remove_handle(multi, call->easy);
}

/* A body transfer that moved no byte for the request timeout is given up.
 * Returns the ms until the first such deadline among @calls (at most
 * @wait). */
static long transport_curl_watch(const transport_curl *tc, CURLM *multi, s3_call *calls, size_t n,
                                 long wait)
{
    int64_t now = clock_now_ms(), limit = tc->settings.request_timeout_ms;
    for (size_t i = 0; i < n; i++) {
        s3_call *call = &calls[i];
        if (call->done || !call->body_transfer)
            continue;
        curl_off_t up = 0, down = 0;
        curl_easy_getinfo(call->easy, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(call->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
        if (up + down != call->moved) {
            call->moved = up + down;
            call->moved_at_ms = now;
        }
        int64_t left = call->moved_at_ms + limit - now;
        if (left <= 0) {
            call->stalled = true;
            transport_curl_done(multi, call, CURLE_OPERATION_TIMEDOUT);
        } else if (left < wait) {
            wait = (long)left;
        }
    }
    return wait;
}

static bool transport_curl_pending(const s3_call *calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!calls[i].done)
            return true;
    return false;
}

static s3_call *transport_curl_find(s3_call *calls, size_t n, CURL *easy)
{
    for (size_t i = 0; i < n; i++)
        if (calls[i].easy == easy)
            return &calls[i];
    return NULL;
}

/* Runs the calls added to @runner's multi handle until each is done. */
static void transport_curl_drive(const transport_curl *tc, transport_curl_runner *runner,
                                 s3_call *calls, size_t n)
{
    CURLM *multi = runner->multi;
    int64_t start = clock_now_ms();
    for (size_t i = 0; i < n; i++)
        calls[i].moved_at_ms = start;
    while (transport_curl_pending(calls, n)) {
        int running = 0;
        CURLMcode mc = curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(multi, &queued))) {
            s3_call *call =
                msg->msg == CURLMSG_DONE ? transport_curl_find(calls, n, msg->easy_handle) : NULL;
            if (call && !call->done)
                transport_curl_done(multi, call, msg->data.result);
        }
        long wait = transport_curl_watch(tc, multi, calls, n, 1000);
        if (mc != CURLM_OK || (running == 0 && transport_curl_pending(calls, n))) {
            /* curl gave up on the multi handle: nothing more will come. */
            for (size_t i = 0; i < n; i++)
                if (!calls[i].done)
                    transport_curl_done(multi, &calls[i],
                                        mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
                                                                  : CURLE_SEND_ERROR);
            break;
        }
        if (!transport_curl_pending(calls, n))
            break;
        long timeout = -1;
        if (curl_multi_timeout(multi, &timeout) == CURLM_OK && timeout >= 0 && timeout < wait)
            wait = timeout;
        transport_curl_quick_ack(runner);
        curl_multi_poll(multi, NULL, 0, (int)wait, NULL);
    }
}

/* ---- run ----------------------------------------------------------------- */

static void transport_curl_no_memory(transport_request *req, const char *what)
{
    req->outcome = (transport_outcome){.result = TRANSPORT_NO_MEMORY};
    snprintf(req->outcome.detail, sizeof req->outcome.detail, "out of memory %s", what);
}

/* Up to TRANSPORT_BATCH_MAX requests in flight at once on one runner. */
static void transport_curl_batch(transport_curl *tc, transport_request *reqs, size_t n)
{
    transport_curl_runner *runner = transport_curl_runner_take(tc);
    if (!runner) {
        for (size_t i = 0; i < n; i++)
            transport_curl_no_memory(&reqs[i], "for a curl handle");
        return;
    }
    s3_call calls[TRANSPORT_BATCH_MAX];
    size_t active = 0;
    for (size_t i = 0; i < n; i++) {
        if (!runner->easy[i])
            runner->easy[i] = curl_easy_init();
        if (!runner->easy[i]) {
            transport_curl_no_memory(&reqs[i], "for a curl handle");
            continue;
        }
        s3_call *call = &calls[active];
        if (s3_call_prepare(call, &tc->settings, &reqs[i], runner->easy[i]) != 0)
            continue; /* the outcome says why */
        curl_easy_setopt(call->easy, CURLOPT_SOCKOPTFUNCTION, transport_curl_socket_opened);
        curl_easy_setopt(call->easy, CURLOPT_SOCKOPTDATA, runner);
        curl_easy_setopt(call->easy, CURLOPT_CLOSESOCKETFUNCTION, transport_curl_socket_closing);
        curl_easy_setopt(call->easy, CURLOPT_CLOSESOCKETDATA, runner);
        if (curl_multi_add_handle(runner->multi, call->easy) != CURLM_OK) {
            s3_call_release(call);
            transport_curl_no_memory(&reqs[i], "adding a request to curl");
            continue;
        }
        active++;
    }
    transport_curl_drive(tc, runner, calls, active);
    for (size_t i = 0; i < active; i++) {
        long connects = 0;
        if (curl_easy_getinfo(calls[i].easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK &&
            connects > 0)
            atomic_fetch_add(&tc->connections, (uint64_t)connects);
        s3_call_finish(&calls[i]);
        s3_call_release(&calls[i]);
    }
    transport_curl_runner_give(tc, runner);
}

static void transport_curl_run(transport *t, transport_request *reqs, size_t n)
{
    transport_curl *tc = (transport_curl *)t;
    for (size_t first = 0; first < n; first += TRANSPORT_BATCH_MAX)
        transport_curl_batch(tc, reqs + first,
                             n - first < TRANSPORT_BATCH_MAX ? n - first : TRANSPORT_BATCH_MAX);
}

uint64_t transport_curl_connections(const transport *t)
{
    return atomic_load(&((transport_curl *)t)->connections);
}

/* ---- open / close -------------------------------------------------------- */

static void transport_curl_close(transport *t)
{
    transport_curl *tc = (transport_curl *)t;
    /* No request runs once the caller closes: every runner is idle. */
    while (tc->idle) {
        transport_curl_runner *runner = tc->idle;
        tc->idle = runner->next;
        transport_curl_runner_destroy(runner);
    }
    pthread_mutex_destroy(&tc->lock);
    s3_call_settings_free(&tc->settings);
    free(tc->endpoint);
    free(tc->bucket);
    free(tc);
}

static const transport_vtable transport_curl_vtable = {
    .name = "curl",
    .run = transport_curl_run,
    .close = transport_curl_close,
};

/* A bucket name as S3 defines it; also what may go into a host name. */
static bool transport_curl_bucket_ok(const char *bucket)
{
    size_t len = strlen(bucket);
    if (len < 3 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = bucket[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-'))
            return false;
    }
    return bucket[0] != '.' && bucket[0] != '-' && bucket[len - 1] != '.' && bucket[len - 1] != '-';
}

static char *transport_curl_endpoint(const acp_s3_config *s3)
{
    buf b = BUF_INIT;
    if (s3->port ? buf_printf(&b, "%s:%d", s3->host, s3->port) : buf_puts(&b, s3->host)) {
        buf_free(&b);
        return NULL;
    }
    return b.data;
}

int transport_curl_open(transport **out, const acp_s3_config *s3,
                        const acp_s3_client_config *client)
{
    *out = NULL;
    int rc;
    if (!s3->host || !*s3->host)
        return error_set(ACP_EINVAL, "config.s3.host: required");
    if (strpbrk(s3->host, "/?#@ \t\r\n"))
        return error_set(ACP_EINVAL, "config.s3.host: '%s' is not a host name or address",
                         s3->host);
    if (!s3->bucket || !*s3->bucket)
        return error_set(ACP_EINVAL, "config.s3.bucket: required");
    if (!transport_curl_bucket_ok(s3->bucket))
        return error_set(ACP_EINVAL,
                         "config.s3.bucket: '%s' is not a valid bucket name (3..63 of [a-z0-9.-])",
                         s3->bucket);
    if (s3->port < 0 || s3->port > 65535)
        return error_set(ACP_EINVAL, "config.s3.port: %d is not in 0..65535", s3->port);
    if ((rc = config_s3_check_credentials(s3)) || (rc = config_s3_check_client(s3, client)))
        return rc;

    pthread_once(&transport_curl_once, transport_curl_global_init);
    if (transport_curl_init_code != CURLE_OK)
        return error_set(ACP_ESTORAGE, "S3: initialising libcurl failed (%s)",
                         curl_easy_strerror(transport_curl_init_code));

    transport_curl *tc = calloc(1, sizeof *tc);
    if (!tc)
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    int err = pthread_mutex_init(&tc->lock, NULL);
    if (err) {
        free(tc);
        return error_set(ACP_ENOMEM, "S3: creating a mutex: %s", error_strerror(err));
    }
    atomic_init(&tc->connections, 0);
    tc->endpoint = transport_curl_endpoint(s3);
    tc->bucket = strdup(s3->bucket);
    if (!tc->endpoint || !tc->bucket ||
        s3_call_settings_init(&tc->settings, s3, client, config_s3_virtual_hosted(s3, client))) {
        transport_curl_close(&tc->base);
        return error_set(ACP_ENOMEM, "out of memory opening S3");
    }
    tc->base = (transport){.vt = &transport_curl_vtable,
                           .caps = TRANSPORT_CAPS_MULTIPART,
                           .endpoint = tc->endpoint,
                           .bucket = tc->bucket};
    *out = &tc->base;
    return 0;
}
