/* RabbitMQ through rabbitmq-c 0.11: connections, the job queue, publishing
 * with confirms, consuming with prefetch 1.
 *
 * Every wait goes through amqp_simple_wait_frame_noblock(), frame by frame,
 * rather than amqp_consume_message(): every frame (confirms, returns, server
 * cancels and closes) is then seen and acted on here. Inside that call
 * rabbitmq-c sends our heartbeats when they are due and gives up with
 * AMQP_STATUS_HEARTBEAT_TIMEOUT when the server has been silent for two
 * heartbeat intervals, so one call per wait handles heartbeats for the whole
 * timeout; no slicing is needed. A timeout keeps partially read frames in the
 * connection state, and frames that rabbitmq-c's own RPCs (or
 * amqp_basic_publish) read ahead are queued inside the library and returned
 * first by the next wait, so nothing is lost between calls.
 *
 * A connection either publishes or consumes: broker_publish() refuses a
 * connection with an active consumer, so that a delivery can never arrive
 * while a publish waits for its confirm. broker_next() may still be called
 * on a publishing connection with a short timeout: it then only keeps the
 * heartbeats flowing (and drops late confirms). */
#include "broker.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "job_message.h"
#include "clock.h"

#define BROKER_CHANNEL           1
#define BROKER_CONNECT_TIMEOUT   5 /* seconds, as upstream's connectionTimeout */
#define BROKER_HANDSHAKE_TIMEOUT 10
#define BROKER_RPC_TIMEOUT       30
#define BROKER_CLOSE_TIMEOUT     5
#define BROKER_HEARTBEAT         60
/* rabbitmq-c keeps buffers of this size per connection, and every worker
 * has a connection: 32 KiB instead of 128 KiB saves about 80 KiB of RSS
 * per worker. A job message is small; a larger one takes several frames. */
#define BROKER_FRAME_MAX 32768

struct broker_conn {
    amqp_connection_state_t amqp;
    const logger *log;
    char where[300]; /* "rabbitmq host:port", the prefix of every message */
    /* Confirm mode numbers our publishes 1, 2, ... on the channel. */
    uint64_t next_publish_seq;
    bool consuming;
    /* basic.qos holds for the channel's life: set once, not per consume. */
    bool prefetch_set;
    char consumer_tag[80];
    /* An ACP_EBROKER left the channel or the connection unusable. */
    bool broken;
    /* The socket failed or the server closed the connection: no polite
     * connection.close is possible any more. */
    bool socket_dead;
};

/* Consumer tags only need to be unique per channel; a process-wide counter
 * also tells our consumers apart in `rabbitmqctl list_consumers`. */
static atomic_ulong consumer_counter;

/* ---- time --------------------------------------------------------------- */

static int64_t broker_deadline(int timeout_ms)
{
    return clock_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* ---- errors ------------------------------------------------------------- */

/* Server texts are short strings that may be empty (NULL bytes). */
#define BROKER_TEXT(b) (int)(b).len, (b).bytes ? (const char *)(b).bytes : ""

/* Set "<where>: <message>" and return ACP_EBROKER. @fatal marks the
 * connection unusable. */
static int broker_fail(broker_conn *conn, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int broker_fail(broker_conn *conn, bool fatal, const char *fmt, ...)
{
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (fatal)
        conn->broken = true;
    return error_set(ACP_EBROKER, "%s: %s", conn->where, text);
}

/* A library status that ends the connection (socket error, closed socket,
 * heartbeat timeout, RPC timeout, ...). */
static int broker_lost(broker_conn *conn, const char *what, int status, int saved_errno)
{
    conn->socket_dead = true;
    if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno != 0) {
        char errbuf[128];
        return broker_fail(conn, true, "%s: %s (%s)", what, amqp_error_string2(status),
                           strerror_r(saved_errno, errbuf, sizeof errbuf));
    }
    if (status == AMQP_STATUS_HEARTBEAT_TIMEOUT)
        return broker_fail(conn, true, "%s: no heartbeat from the server for %d s, connection lost",
                           what, 2 * amqp_get_heartbeat(conn->amqp));
    return broker_fail(conn, true, "%s: %s", what, amqp_error_string2(status));
}

/* The server closed the channel or the connection with @method: answer with
 * close-ok so that it releases them, and report its reply code and text. */
static int broker_server_closed(broker_conn *conn, const char *what, const amqp_method_t *method)
{
    if (method->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = method->decoded;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(conn->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        conn->socket_dead = true;
        return broker_fail(conn, true, "%s: connection closed by the server: %.*s (%u)", what,
                           BROKER_TEXT(m->reply_text), (unsigned)m->reply_code);
    }
    const amqp_channel_close_t *m = method->decoded;
    amqp_channel_close_ok_t ok = {0};
    amqp_send_method(conn->amqp, BROKER_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    conn->consuming = false;
    return broker_fail(conn, true, "%s: channel closed by the server: %.*s (%u)", what,
                       BROKER_TEXT(m->reply_text), (unsigned)m->reply_code);
}

/* Report a failed synchronous call (rabbitmq-c's amqp_get_rpc_reply()). */
static int broker_rpc_failed(broker_conn *conn, const char *what, amqp_rpc_reply_t reply)
{
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        conn->socket_dead = true;
        return broker_fail(conn, true, "%s: no reply from the server", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return broker_lost(conn, what, reply.library_error, 0);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD ||
            reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
            return broker_server_closed(conn, what, &reply.reply);
        return broker_fail(conn, true, "%s: unexpected reply %s from the server", what,
                           amqp_method_name(reply.reply.id));
    }
    return broker_fail(conn, true, "%s: unknown reply type %d", what, (int)reply.reply_type);
}

static int broker_check_usable(broker_conn *conn, const char *what)
{
    if (!conn)
        return error_set(ACP_EINVAL, "rabbitmq: %s: NULL connection", what);
    if (conn->broken)
        return error_set(ACP_EBROKER, "%s: %s: the connection failed earlier; reconnect",
                         conn->where, what);
    return 0;
}

static int broker_queue_name(broker_conn *conn, const char *queue_id, char *name, size_t size)
{
    if (!queue_id || !config_name_is_safe(queue_id, ACP_QUEUE_ID_MAX))
        return error_set(ACP_EINVAL, "%s: invalid queue id '%s'", conn->where,
                         queue_id ? queue_id : "(null)");
    snprintf(name, size, "%s_jobs", queue_id);
    return 0;
}

/* ---- connecting ---------------------------------------------------------- */

/* Our own connect deadline, told apart from the kernel's ETIMEDOUT. */
#define BROKER_CONNECT_DEADLINE (-1)

/* Wait for a non-blocking connect() to finish: 0, the socket error, or
 * BROKER_CONNECT_DEADLINE when @deadline passes first. */
static int broker_wait_connected(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0)
            return BROKER_CONNECT_DEADLINE;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return BROKER_CONNECT_DEADLINE;
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            return errno;
        return err;
    }
}

/* Open the TCP connection ourselves rather than with
 * amqp_socket_open_noblock(): rabbitmq-c reports every failure as "a socket
 * error occurred" and loses the reason (refused, unreachable, timed out).
 * The socket is set up as rabbitmq-c would: non-blocking (its timeouts rely
 * on it), close-on-exec, no Nagle, keepalive. */
static int broker_tcp_connect(broker_conn *conn, const char *host, int port, int *out_fd)
{
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, service, &hints, &list);
    if (gai != 0) {
        char errbuf[128];
        conn->socket_dead = true;
        return broker_fail(conn, true, "cannot resolve host name: %s",
                           gai == EAI_SYSTEM ? strerror_r(errno, errbuf, sizeof errbuf)
                                             : gai_strerror(gai));
    }

    int64_t deadline = clock_now_ms() + BROKER_CONNECT_TIMEOUT * 1000;
    int fd = -1, err = 0;
    bool timed_out = false;
    for (struct addrinfo *ai = list; ai && fd < 0 && !timed_out; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno == EINPROGRESS ? broker_wait_connected(fd, deadline) : errno;
        if (err != 0) {
            /* After waiting out the whole deadline, another address would
             * get no time at all. */
            timed_out = err == BROKER_CONNECT_DEADLINE;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    if (fd >= 0) {
        *out_fd = fd;
        return 0;
    }
    conn->socket_dead = true;
    if (timed_out)
        return broker_fail(conn, true, "connect timed out after %d s", BROKER_CONNECT_TIMEOUT);
    if (err == ECONNREFUSED)
        return broker_fail(conn, true, "connection refused");
    char errbuf[128];
    return broker_fail(conn, true, "cannot connect: %s", strerror_r(err, errbuf, sizeof errbuf));
}

static int broker_login(broker_conn *conn, const acp_queue_config *queue)
{
    /* consumer_cancel_notify makes RabbitMQ tell a consumer (basic.cancel)
     * when its queue is deleted instead of leaving it waiting forever;
     * rabbitmq-c merges these with its own capabilities. */
    amqp_table_entry_t caps[] = {{.key = amqp_cstring_bytes("consumer_cancel_notify"),
                                  .value = {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}}};
    char name[ACP_QUEUE_ID_MAX + 40];
    snprintf(name, sizeof name, "async-platform %s_jobs", queue->id ? queue->id : "");
    amqp_table_entry_t props[] = {
        {.key = amqp_cstring_bytes("capabilities"),
         .value = {.kind = AMQP_FIELD_KIND_TABLE, .value.table = {1, caps}}},
        {.key = amqp_cstring_bytes("connection_name"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(name)}},
    };
    amqp_table_t properties = {(int)(sizeof props / sizeof props[0]), props};

    int heartbeat = queue->heartbeat ? (int)queue->heartbeat : BROKER_HEARTBEAT;
    amqp_rpc_reply_t reply =
        amqp_login_with_properties(conn->amqp, "/", 0, BROKER_FRAME_MAX, heartbeat, &properties,
                                   AMQP_SASL_METHOD_PLAIN, queue->user, queue->password);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = reply.reply.decoded;
        conn->socket_dead = true;
        return broker_fail(conn, true, "login refused (%.*s)", BROKER_TEXT(m->reply_text));
    }
    return broker_rpc_failed(conn, "login", reply);
}

int broker_connect(broker_conn **out, const acp_queue_config *queue, const logger *log)
{
    if (!out)
        return error_set(ACP_EINVAL, "rabbitmq: NULL output connection");
    *out = NULL;
    if (!queue || !queue->host || !*queue->host || !queue->user || !queue->password)
        return error_set(ACP_EINVAL, "rabbitmq: host, user and password are required");
    if (queue->port < 1 || queue->port > 65535)
        return error_set(ACP_EINVAL, "rabbitmq %s: port %d is outside 1..65535", queue->host,
                         queue->port);

    broker_conn *conn = calloc(1, sizeof *conn);
    if (!conn)
        return error_set(ACP_ENOMEM, "rabbitmq: out of memory");
    conn->log = log;
    snprintf(conn->where, sizeof conn->where, "rabbitmq %s:%d", queue->host, queue->port);
    conn->socket_dead = true; /* until the handshake succeeds */

    int rc;
    conn->amqp = amqp_new_connection();
    amqp_socket_t *sock = conn->amqp ? amqp_tcp_socket_new(conn->amqp) : NULL;
    if (!sock) {
        rc = error_set(ACP_ENOMEM, "%s: out of memory creating a connection", conn->where);
        goto fail;
    }
    int fd = -1;
    if ((rc = broker_tcp_connect(conn, queue->host, queue->port, &fd)))
        goto fail;
    /* From here on amqp_destroy_connection() closes the descriptor. */
    amqp_tcp_socket_set_sockfd(sock, fd);
    conn->socket_dead = false;

    struct timeval handshake = {BROKER_HANDSHAKE_TIMEOUT, 0};
    struct timeval rpc = {BROKER_RPC_TIMEOUT, 0};
    amqp_set_handshake_timeout(conn->amqp, &handshake);
    /* Bounds every synchronous call; on expiry rabbitmq-c closes the socket. */
    amqp_set_rpc_timeout(conn->amqp, &rpc);

    if ((rc = broker_login(conn, queue)))
        goto fail;
    amqp_channel_open(conn->amqp, BROKER_CHANNEL);
    if ((rc = broker_rpc_failed(conn, "opening channel 1", amqp_get_rpc_reply(conn->amqp))))
        goto fail;
    amqp_confirm_select(conn->amqp, BROKER_CHANNEL);
    if ((rc = broker_rpc_failed(conn, "confirm.select", amqp_get_rpc_reply(conn->amqp))))
        goto fail;
    conn->next_publish_seq = 1;
    amqp_maybe_release_buffers(conn->amqp);
    log_debug(log, "%s: connected (heartbeat %d s)", conn->where, amqp_get_heartbeat(conn->amqp));
    *out = conn;
    return 0;

fail:
    broker_close(conn);
    return rc;
}

void broker_close(broker_conn *conn)
{
    if (!conn)
        return;
    if (conn->amqp) {
        if (!conn->socket_dead) {
            /* A server that does not answer must not hold up a shutdown for
             * the full RPC timeout. */
            struct timeval quick = {BROKER_CLOSE_TIMEOUT, 0};
            amqp_set_rpc_timeout(conn->amqp, &quick);
            amqp_connection_close(conn->amqp, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(conn->amqp);
    }
    free(conn);
}

/* ---- topology ------------------------------------------------------------ */

int broker_declare(broker_conn *conn, const char *queue_id, unsigned ack_timeout_seconds)
{
    int rc = broker_check_usable(conn, "declaring a queue");
    if (rc)
        return rc;
    char name[ACP_QUEUE_ID_MAX + 8];
    if ((rc = broker_queue_name(conn, queue_id, name, sizeof name)))
        return rc;
    if (ack_timeout_seconds == 0)
        return error_set(ACP_EINVAL, "%s: declaring queue '%s': ack timeout must be positive",
                         conn->where, name);

    /* A long ('l') of exactly this value, as upstream sends it: RabbitMQ
     * 3.12 and later compare it with an existing declaration and answer a
     * difference with PRECONDITION_FAILED (older versions ignore it). */
    amqp_table_entry_t arg = {
        .key = amqp_cstring_bytes("x-consumer-timeout"),
        .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = (int64_t)ack_timeout_seconds * 1500}};
    amqp_table_t args = {1, &arg};
    amqp_queue_declare(conn->amqp, BROKER_CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "declaring queue '%s'", name);
    rc = broker_rpc_failed(conn, what, amqp_get_rpc_reply(conn->amqp));
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

/* ---- frames -------------------------------------------------------------- */

/* Wait for any frame until @deadline (ms, clock_now_ms clock); the
 * amqp status, with errno cleared first so a socket error can be named. */
static int broker_wait_frame(broker_conn *conn, int64_t deadline, amqp_frame_t *frame)
{
    int64_t left = deadline - clock_now_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    errno = 0;
    return amqp_simple_wait_frame_noblock(conn->amqp, frame, &tv);
}

/* Read the next method frame on our channel before @deadline: 0, 1 on
 * timeout, or ACP_EBROKER. Server closes and connection-level notices are
 * handled here; everything else is the caller's. */
static int broker_read_method(broker_conn *conn, int64_t deadline, const char *what,
                              amqp_frame_t *frame)
{
    for (;;) {
        int status = broker_wait_frame(conn, deadline, frame);
        if (status == AMQP_STATUS_TIMEOUT)
            return 1;
        if (status != AMQP_STATUS_OK)
            return broker_lost(conn, what, status, errno);
        if (frame->frame_type != AMQP_FRAME_METHOD)
            /* Content frames are always read right after their method. */
            return broker_fail(conn, true, "%s: unexpected frame of type %u outside a message",
                               what, (unsigned)frame->frame_type);
        amqp_method_number_t id = frame->payload.method.id;
        if (id == AMQP_CONNECTION_CLOSE_METHOD || id == AMQP_CHANNEL_CLOSE_METHOD)
            return broker_server_closed(conn, what, &frame->payload.method);
        if (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
            log_warn(conn->log, "%s: %s", conn->where,
                     id == AMQP_CONNECTION_BLOCKED_METHOD ? "publishing blocked by the server"
                                                          : "publishing unblocked");
            continue;
        }
        if (frame->channel != BROKER_CHANNEL)
            return broker_fail(conn, true, "%s: unexpected %s on channel %u", what,
                               amqp_method_name(id), (unsigned)frame->channel);
        return 0;
    }
}

/* Next frame of a message's content on our channel before @deadline.
 * Connection-level frames may come in between; content frames on a channel
 * are never interleaved with other frames of that channel. */
static int broker_read_content_frame(broker_conn *conn, int64_t deadline, const char *what,
                                     amqp_frame_t *frame)
{
    for (;;) {
        int status = broker_wait_frame(conn, deadline, frame);
        if (status == AMQP_STATUS_TIMEOUT)
            return broker_fail(conn, true, "%s: message content did not arrive within %d s", what,
                               BROKER_RPC_TIMEOUT);
        if (status != AMQP_STATUS_OK)
            return broker_lost(conn, what, status, errno);
        if (frame->frame_type == AMQP_FRAME_METHOD) {
            amqp_method_number_t id = frame->payload.method.id;
            if (id == AMQP_CONNECTION_CLOSE_METHOD || id == AMQP_CHANNEL_CLOSE_METHOD)
                return broker_server_closed(conn, what, &frame->payload.method);
            if (frame->channel == 0 &&
                (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD))
                continue;
            return broker_fail(conn, true, "%s: expected message content, got %s", what,
                               amqp_method_name(id));
        }
        if (frame->channel != BROKER_CHANNEL)
            return broker_fail(conn, true, "%s: content frame on unexpected channel %u", what,
                               (unsigned)frame->channel);
        return 0;
    }
}

/* Read the content (header and body frames) that follows a basic.deliver or
 * basic.return. With @body, the body is returned as a NUL-terminated malloc'd
 * copy; without, it is dropped. The server sends the content right behind
 * the method, so the RPC timeout is ample. */
static int broker_read_content(broker_conn *conn, const char *what, char **body, size_t *len)
{
    int64_t deadline = broker_deadline(BROKER_RPC_TIMEOUT * 1000);
    amqp_frame_t frame;
    int rc = broker_read_content_frame(conn, deadline, what, &frame);
    if (rc)
        return rc;
    if (frame.frame_type != AMQP_FRAME_HEADER)
        return broker_fail(conn, true, "%s: expected a content header, got a frame of type %u",
                           what, (unsigned)frame.frame_type);
    uint64_t size = frame.payload.properties.body_size;
    if (size >= SIZE_MAX)
        return broker_fail(conn, true, "%s: message of %llu bytes is too large", what,
                           (unsigned long long)size);
    /* Never allocated at the size the header claims: no job message is
     * larger than this, and one byte more is enough to tell. */
    size_t keep = size > JOB_MESSAGE_MAX ? JOB_MESSAGE_MAX + 1 : (size_t)size;
    char *data = NULL;
    if (body) {
        data = malloc(keep + 1);
        if (!data) {
            conn->broken = true; /* the rest of the message is still on the wire */
            return error_set(ACP_ENOMEM, "%s: %s: out of memory for a message of %llu bytes",
                             conn->where, what, (unsigned long long)size);
        }
    }
    size_t got = 0;
    while (got < size) {
        rc = broker_read_content_frame(conn, deadline, what, &frame);
        if (!rc &&
            (frame.frame_type != AMQP_FRAME_BODY || frame.payload.body_fragment.len > size - got))
            rc = broker_fail(conn, true, "%s: malformed message body", what);
        if (rc) {
            free(data);
            return rc;
        }
        if (data && got < keep) {
            size_t n = frame.payload.body_fragment.len;
            memcpy(data + got, frame.payload.body_fragment.bytes, n < keep - got ? n : keep - got);
        }
        got += frame.payload.body_fragment.len;
        /* Body frames live in the channel's pool: free them as we go so that
         * a large message is not held twice. */
        amqp_maybe_release_buffers_on_channel(conn->amqp, BROKER_CHANNEL);
    }
    if (body) {
        data[keep] = '\0';
        *body = data;
        *len = keep;
    }
    return 0;
}

/* ---- publishing ---------------------------------------------------------- */

/* Does the confirm for @tag (multiple or not) cover @seq? */
static bool broker_confirm_covers(uint64_t tag, bool multiple, uint64_t seq)
{
    return tag == seq || (multiple && tag > seq);
}

int broker_publish(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                   int confirm_timeout_ms)
{
    int rc = broker_check_usable(conn, "publishing");
    if (rc)
        return rc;
    char name[ACP_QUEUE_ID_MAX + 8];
    if ((rc = broker_queue_name(conn, queue_id, name, sizeof name)))
        return rc;
    if (!body && len > 0)
        return error_set(ACP_EINVAL, "%s: publishing to '%s': NULL body", conn->where, name);
    if (conn->consuming)
        return error_set(ACP_EINVAL,
                         "%s: publishing to '%s': this connection consumes; publish on another",
                         conn->where, name);

    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.content_type = amqp_cstring_bytes("application/json");
    amqp_bytes_t content = {len, (void *)body};
    int64_t deadline = broker_deadline(confirm_timeout_ms);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "publishing to '%s'", name);

    /* mandatory: a message no queue takes comes back as basic.return instead
     * of vanishing (and is then confirmed). */
    errno = 0;
    int status = amqp_basic_publish(conn->amqp, BROKER_CHANNEL, amqp_empty_bytes,
                                    amqp_cstring_bytes(name), 1, 0, &props, content);
    if (status != AMQP_STATUS_OK)
        return broker_lost(conn, what, status, errno);
    uint64_t seq = conn->next_publish_seq++;

    /* RabbitMQ sends a message's basic.return before its basic.ack. A return
     * followed by the confirm of an earlier (abandoned) publish belonged to
     * that earlier message. */
    bool returned = false;
    unsigned return_code = 0;
    char return_text[256] = "";
    for (;;) {
        amqp_frame_t frame;
        rc = broker_read_method(conn, deadline, what, &frame);
        if (rc == 1) {
            rc = broker_fail(conn, false, "%s: no confirm from the broker within %d ms", what,
                             confirm_timeout_ms);
            break;
        }
        if (rc)
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_ACK_METHOD || m->id == AMQP_BASIC_NACK_METHOD) {
            bool nack = m->id == AMQP_BASIC_NACK_METHOD;
            uint64_t tag = nack ? ((amqp_basic_nack_t *)m->decoded)->delivery_tag
                                : ((amqp_basic_ack_t *)m->decoded)->delivery_tag;
            bool multiple = nack ? ((amqp_basic_nack_t *)m->decoded)->multiple
                                 : ((amqp_basic_ack_t *)m->decoded)->multiple;
            if (!broker_confirm_covers(tag, multiple, seq)) {
                returned = false;
                continue;
            }
            if (nack)
                rc = broker_fail(conn, false, "%s: the broker refused the message (basic.nack)",
                                 what);
            else if (returned)
                rc = broker_fail(conn, false, "%s: message returned by the broker: %s (%u)", what,
                                 return_text, return_code);
            break;
        }
        if (m->id == AMQP_BASIC_RETURN_METHOD) {
            const amqp_basic_return_t *r = m->decoded;
            returned = true;
            return_code = r->reply_code;
            snprintf(return_text, sizeof return_text, "%.*s", BROKER_TEXT(r->reply_text));
            if ((rc = broker_read_content(conn, what, NULL, NULL)))
                break;
            continue;
        }
        if (m->id == AMQP_BASIC_DELIVER_METHOD) {
            rc =
                broker_fail(conn, true, "%s: unexpected delivery on a publishing connection", what);
            break;
        }
        log_debug(conn->log, "%s: %s: ignoring %s", conn->where, what, amqp_method_name(m->id));
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

/* ---- consuming ----------------------------------------------------------- */

int broker_consume(broker_conn *conn, const char *queue_id)
{
    int rc = broker_check_usable(conn, "consuming");
    if (rc)
        return rc;
    char name[ACP_QUEUE_ID_MAX + 8];
    if ((rc = broker_queue_name(conn, queue_id, name, sizeof name)))
        return rc;
    if (conn->consuming)
        return error_set(ACP_EINVAL, "%s: consuming '%s': this connection already consumes",
                         conn->where, name);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "consuming '%s'", name);

    /* One unacknowledged message per consumer: one job per worker, and no
     * message waits behind a long job on a busy worker. */
    if (!conn->prefetch_set) {
        amqp_basic_qos(conn->amqp, BROKER_CHANNEL, 0, 1, 0);
        if ((rc = broker_rpc_failed(conn, what, amqp_get_rpc_reply(conn->amqp))))
            goto out;
        conn->prefetch_set = true;
    }
    snprintf(conn->consumer_tag, sizeof conn->consumer_tag, "acp-%s-%lu", name,
             atomic_fetch_add(&consumer_counter, 1) + 1);
    amqp_basic_consume(conn->amqp, BROKER_CHANNEL, amqp_cstring_bytes(name),
                       amqp_cstring_bytes(conn->consumer_tag), 0, 0, 0, amqp_empty_table);
    if ((rc = broker_rpc_failed(conn, what, amqp_get_rpc_reply(conn->amqp))))
        goto out;
    conn->consuming = true;
out:
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

int broker_cancel(broker_conn *conn)
{
    int rc = broker_check_usable(conn, "cancelling the consumer");
    if (rc)
        return rc;
    if (!conn->consuming)
        return 0;
    const char *what = "cancelling the consumer";
    amqp_basic_cancel_t cancel = {.consumer_tag = amqp_cstring_bytes(conn->consumer_tag),
                                  .nowait = 0};
    errno = 0;
    int status = amqp_send_method(conn->amqp, BROKER_CHANNEL, AMQP_BASIC_CANCEL_METHOD, &cancel);
    if (status != AMQP_STATUS_OK)
        return broker_lost(conn, what, status, errno);

    int64_t deadline = broker_deadline(BROKER_RPC_TIMEOUT * 1000);
    unsigned rejected = 0;
    for (;;) {
        amqp_frame_t frame;
        rc = broker_read_method(conn, deadline, what, &frame);
        if (rc == 1)
            rc = broker_fail(conn, true, "%s: no cancel-ok within %d s", what, BROKER_RPC_TIMEOUT);
        if (rc)
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_CANCEL_OK_METHOD)
            break;
        if (m->id == AMQP_BASIC_DELIVER_METHOD) {
            /* Pushed before the broker saw the cancel: hand it back so that
             * another consumer runs it. */
            uint64_t tag = ((amqp_basic_deliver_t *)m->decoded)->delivery_tag;
            if ((rc = broker_read_content(conn, what, NULL, NULL)))
                break;
            errno = 0;
            status = amqp_basic_reject(conn->amqp, BROKER_CHANNEL, tag, 1);
            if (status != AMQP_STATUS_OK) {
                rc = broker_lost(conn, what, status, errno);
                break;
            }
            rejected++;
        } else if (m->id == AMQP_BASIC_RETURN_METHOD) {
            if ((rc = broker_read_content(conn, what, NULL, NULL)))
                break;
        }
        /* basic.cancel from the server (the queue went away) needs no
         * answer: our own cancel still gets its cancel-ok. Late confirms are
         * dropped. */
    }
    if (!rc) {
        conn->consuming = false;
        if (rejected)
            log_debug(conn->log, "%s: returned %u message(s) delivered during the cancel",
                      conn->where, rejected);
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

void broker_delivery_free(broker_delivery *delivery)
{
    if (!delivery)
        return;
    free(delivery->body);
    memset(delivery, 0, sizeof *delivery);
}

int broker_next(broker_conn *conn, int timeout_ms, broker_delivery *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    int rc = broker_check_usable(conn, "waiting for a delivery");
    if (rc)
        return rc;
    if (!out)
        return error_set(ACP_EINVAL, "%s: NULL delivery", conn->where);
    const char *what = "waiting for a delivery";
    int64_t deadline = broker_deadline(timeout_ms);
    for (;;) {
        amqp_frame_t frame;
        rc = broker_read_method(conn, deadline, what, &frame);
        if (rc)
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_DELIVER_METHOD) {
            const amqp_basic_deliver_t *d = m->decoded;
            /* Copy before reading on: the content frames recycle the pool
             * that holds the method. */
            uint64_t tag = d->delivery_tag;
            bool redelivered = d->redelivered;
            if ((rc = broker_read_content(conn, what, &out->body, &out->len)))
                break;
            out->tag = tag;
            out->redelivered = redelivered;
            break;
        }
        if (m->id == AMQP_BASIC_CANCEL_METHOD) {
            conn->consuming = false;
            rc = broker_fail(
                conn, true, "%s: the server cancelled the consumer (queue deleted or moved)", what);
            break;
        }
        if (m->id == AMQP_BASIC_RETURN_METHOD) {
            if ((rc = broker_read_content(conn, what, NULL, NULL)))
                break;
            continue;
        }
        /* Confirms of publishes whose wait gave up, and anything else
         * harmless, are dropped. */
        log_debug(conn->log, "%s: %s: ignoring %s", conn->where, what, amqp_method_name(m->id));
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

/* ---- keeping an idle connection alive ------------------------------------ */

struct broker_keeper {
    broker_conn *conn;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t changed;
    bool stop;
    unsigned interval_ms;
    /* Set by the thread when the connection failed; read after the join. */
    int rc;
    char error[1024];
};

/* Read whatever the server sent and send our heartbeat if it is due (inside
 * rabbitmq-c's wait): 0 or ACP_EBROKER. */
static int broker_keep_alive(broker_conn *conn)
{
    const char *what = "keeping the connection alive";
    int rc;
    for (;;) {
        amqp_frame_t frame;
        if ((rc = broker_read_method(conn, clock_now_ms(), what, &frame)))
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_DELIVER_METHOD || m->id == AMQP_BASIC_RETURN_METHOD) {
            uint64_t tag = m->id == AMQP_BASIC_DELIVER_METHOD
                               ? ((amqp_basic_deliver_t *)m->decoded)->delivery_tag
                               : 0;
            if ((rc = broker_read_content(conn, what, NULL, NULL)))
                break;
            /* Only a consumer left running gets deliveries: let another
             * worker have the message. */
            int status =
                tag ? amqp_basic_reject(conn->amqp, BROKER_CHANNEL, tag, 1) : AMQP_STATUS_OK;
            if (status != AMQP_STATUS_OK) {
                rc = broker_lost(conn, what, status, errno);
                break;
            }
        } else if (m->id == AMQP_BASIC_CANCEL_METHOD) {
            conn->consuming = false;
        }
        /* Late confirms and the like are dropped. */
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc == 1 ? 0 : rc;
}

static void *broker_keeper_main(void *arg)
{
    broker_keeper *k = arg;
    pthread_mutex_lock(&k->lock);
    while (!k->stop) {
        struct timespec until;
        clock_deadline(&until, k->interval_ms);
        while (!k->stop && pthread_cond_timedwait(&k->changed, &k->lock, &until) != ETIMEDOUT)
            ;
        if (k->stop)
            break;
        pthread_mutex_unlock(&k->lock);
        int rc = broker_keep_alive(k->conn);
        if (rc)
            snprintf(k->error, sizeof k->error, "%s", acp_last_error());
        pthread_mutex_lock(&k->lock);
        if (rc) {
            k->rc = rc;
            break;
        }
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

int broker_keeper_start(broker_conn *conn, broker_keeper **out)
{
    *out = NULL;
    int rc = broker_check_usable(conn, "keeping the connection alive");
    if (rc)
        return rc;
    broker_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return error_set(ACP_ENOMEM, "%s: out of memory", conn->where);
    k->conn = conn;
    /* rabbitmq-c sends a heartbeat once an interval has passed since it last
     * sent anything; looking four times per interval keeps the gaps well
     * under the two intervals after which RabbitMQ gives up. */
    int heartbeat = amqp_get_heartbeat(conn->amqp);
    k->interval_ms = heartbeat > 0 ? (unsigned)heartbeat * 250 : 30000;
    int err = pthread_mutex_init(&k->lock, NULL);
    if (err) {
        free(k);
        return error_set(ACP_ENOMEM, "%s: creating a mutex: %s", conn->where, error_strerror(err));
    }
    if ((err = clock_cond_init(&k->changed))) {
        pthread_mutex_destroy(&k->lock);
        free(k);
        return error_set(ACP_ENOMEM, "%s: creating a condition variable: %s", conn->where,
                         error_strerror(err));
    }
    if ((err = pthread_create(&k->thread, NULL, broker_keeper_main, k))) {
        pthread_cond_destroy(&k->changed);
        pthread_mutex_destroy(&k->lock);
        free(k);
        return error_set(ACP_ENOMEM, "%s: starting the heartbeat thread: %s", conn->where,
                         error_strerror(err));
    }
    *out = k;
    return 0;
}

int broker_keeper_stop(broker_keeper *k)
{
    pthread_mutex_lock(&k->lock);
    k->stop = true;
    pthread_cond_signal(&k->changed);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    int rc = k->rc ? error_set(k->rc, "%s", k->error) : 0;
    pthread_cond_destroy(&k->changed);
    pthread_mutex_destroy(&k->lock);
    free(k);
    return rc;
}

int broker_ack(broker_conn *conn, uint64_t tag)
{
    int rc = broker_check_usable(conn, "acknowledging a delivery");
    if (rc)
        return rc;
    errno = 0;
    int status = amqp_basic_ack(conn->amqp, BROKER_CHANNEL, tag, 0);
    if (status != AMQP_STATUS_OK)
        return broker_lost(conn, "acknowledging a delivery", status, errno);
    return 0;
}
