/* The AMQP driver's connection (broker_amqp_conn.h): opening it ourselves
 * so that failures keep their reason, closing it politely, errors, and
 * reading frames. */
#include "broker_amqp_conn.h"

#include <amqp_tcp_socket.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "job_message.h"

#define BROKER_AMQP_CONNECT_TIMEOUT   5 /* seconds, as upstream's connectionTimeout */
#define BROKER_AMQP_HANDSHAKE_TIMEOUT 10
#define BROKER_AMQP_CLOSE_TIMEOUT     5
#define BROKER_AMQP_HEARTBEAT         60
/* rabbitmq-c keeps buffers of this size per connection, and every worker
 * has a connection: 32 KiB instead of 128 KiB saves about 80 KiB of RSS
 * per worker. A job message is small; a larger one takes several frames. */
#define BROKER_AMQP_FRAME_MAX 32768

/* ---- time --------------------------------------------------------------- */

int64_t broker_amqp_conn_deadline(int timeout_ms)
{
    return clock_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
}

/* ---- errors ------------------------------------------------------------- */

int broker_amqp_conn_fail(broker_amqp_conn *conn, bool fatal, const char *fmt, ...)
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

int broker_amqp_conn_lost(broker_amqp_conn *conn, const char *what, int status, int saved_errno)
{
    conn->socket_dead = true;
    if (status == AMQP_STATUS_SOCKET_ERROR && saved_errno != 0) {
        char errbuf[128];
        return broker_amqp_conn_fail(conn, true, "%s: %s (%s)", what, amqp_error_string2(status),
                                     strerror_r(saved_errno, errbuf, sizeof errbuf));
    }
    if (status == AMQP_STATUS_HEARTBEAT_TIMEOUT)
        return broker_amqp_conn_fail(conn, true,
                                     "%s: no heartbeat from the server for %d s, connection lost",
                                     what, 2 * amqp_get_heartbeat(conn->amqp));
    return broker_amqp_conn_fail(conn, true, "%s: %s", what, amqp_error_string2(status));
}

/* The server closed the channel or the connection with @method: answer with
 * close-ok so that it releases them, and report its reply code and text. */
static int broker_amqp_conn_server_closed(broker_amqp_conn *conn, const char *what,
                                          const amqp_method_t *method)
{
    if (method->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = method->decoded;
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(conn->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        conn->socket_dead = true;
        return broker_amqp_conn_fail(conn, true, "%s: connection closed by the server: %.*s (%u)",
                                     what, BROKER_AMQP_TEXT(m->reply_text),
                                     (unsigned)m->reply_code);
    }
    const amqp_channel_close_t *m = method->decoded;
    amqp_channel_close_ok_t ok = {0};
    amqp_send_method(conn->amqp, BROKER_AMQP_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    conn->consuming = false;
    return broker_amqp_conn_fail(conn, true, "%s: channel closed by the server: %.*s (%u)", what,
                                 BROKER_AMQP_TEXT(m->reply_text), (unsigned)m->reply_code);
}

int broker_amqp_conn_rpc_failed(broker_amqp_conn *conn, const char *what, amqp_rpc_reply_t reply)
{
    switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_NONE:
        conn->socket_dead = true;
        return broker_amqp_conn_fail(conn, true, "%s: no reply from the server", what);
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return broker_amqp_conn_lost(conn, what, reply.library_error, 0);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD ||
            reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
            return broker_amqp_conn_server_closed(conn, what, &reply.reply);
        return broker_amqp_conn_fail(conn, true, "%s: unexpected reply %s from the server", what,
                                     amqp_method_name(reply.reply.id));
    }
    return broker_amqp_conn_fail(conn, true, "%s: unknown reply type %d", what,
                                 (int)reply.reply_type);
}

int broker_amqp_conn_usable(broker_amqp_conn *conn, const char *what)
{
    if (!conn)
        return error_set(ACP_EINVAL, "rabbitmq: %s: NULL connection", what);
    if (conn->broken)
        return error_set(ACP_EBROKER, "%s: %s: the connection failed earlier; reconnect",
                         conn->where, what);
    return 0;
}

int broker_amqp_conn_queue_name(broker_amqp_conn *conn, const char *queue_id, char *name,
                                size_t size)
{
    if (!queue_id || !config_name_is_safe(queue_id, ACP_QUEUE_ID_MAX))
        return error_set(ACP_EINVAL, "%s: invalid queue id '%s'", conn->where,
                         queue_id ? queue_id : "(null)");
    snprintf(name, size, "%s_jobs", queue_id);
    return 0;
}

/* ---- connecting ---------------------------------------------------------- */

/* Our own connect deadline, told apart from the kernel's ETIMEDOUT. */
#define BROKER_AMQP_CONNECT_DEADLINE (-1)

/* Wait for a non-blocking connect() to finish: 0, the socket error, or
 * BROKER_AMQP_CONNECT_DEADLINE when @deadline passes first. */
static int broker_amqp_conn_wait_connected(int fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0)
            return BROKER_AMQP_CONNECT_DEADLINE;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return BROKER_AMQP_CONNECT_DEADLINE;
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
static int broker_amqp_conn_tcp_connect(broker_amqp_conn *conn, const char *host, int port,
                                        int *out_fd)
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
        return broker_amqp_conn_fail(conn, true, "cannot resolve host name: %s",
                                     gai == EAI_SYSTEM ? strerror_r(errno, errbuf, sizeof errbuf)
                                                       : gai_strerror(gai));
    }

    int64_t deadline = clock_now_ms() + BROKER_AMQP_CONNECT_TIMEOUT * 1000;
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
        err = errno == EINPROGRESS ? broker_amqp_conn_wait_connected(fd, deadline) : errno;
        if (err != 0) {
            /* After waiting out the whole deadline, another address would
             * get no time at all. */
            timed_out = err == BROKER_AMQP_CONNECT_DEADLINE;
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
        return broker_amqp_conn_fail(conn, true, "connect timed out after %d s",
                                     BROKER_AMQP_CONNECT_TIMEOUT);
    if (err == ECONNREFUSED)
        return broker_amqp_conn_fail(conn, true, "connection refused");
    char errbuf[128];
    return broker_amqp_conn_fail(conn, true, "cannot connect: %s",
                                 strerror_r(err, errbuf, sizeof errbuf));
}

static int broker_amqp_conn_login(broker_amqp_conn *conn, const acp_queue_config *queue)
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

    int heartbeat = queue->heartbeat ? (int)queue->heartbeat : BROKER_AMQP_HEARTBEAT;
    amqp_rpc_reply_t reply = amqp_login_with_properties(
        conn->amqp, "/", 0, BROKER_AMQP_FRAME_MAX, heartbeat, &properties, AMQP_SASL_METHOD_PLAIN,
        queue->user, queue->password);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = reply.reply.decoded;
        conn->socket_dead = true;
        return broker_amqp_conn_fail(conn, true, "login refused (%.*s)",
                                     BROKER_AMQP_TEXT(m->reply_text));
    }
    return broker_amqp_conn_rpc_failed(conn, "login", reply);
}

int broker_amqp_conn_open(broker_amqp_conn **out, const acp_queue_config *queue, const logger *log)
{
    if (!out)
        return error_set(ACP_EINVAL, "rabbitmq: NULL output connection");
    *out = NULL;
    if (!queue || !queue->host || !*queue->host || !queue->user || !queue->password)
        return error_set(ACP_EINVAL, "rabbitmq: host, user and password are required");
    if (queue->port < 1 || queue->port > 65535)
        return error_set(ACP_EINVAL, "rabbitmq %s: port %d is outside 1..65535", queue->host,
                         queue->port);

    broker_amqp_conn *conn = calloc(1, sizeof *conn);
    if (!conn)
        return error_set(ACP_ENOMEM, "rabbitmq: out of memory");
    conn->log = log;
    snprintf(conn->where, sizeof conn->where, "rabbitmq %s:%d", queue->host, queue->port);
    conn->socket_dead = true; /* until the handshake succeeds */
    conn->fd = -1;

    int rc;
    conn->amqp = amqp_new_connection();
    amqp_socket_t *sock = conn->amqp ? amqp_tcp_socket_new(conn->amqp) : NULL;
    if (!sock) {
        rc = error_set(ACP_ENOMEM, "%s: out of memory creating a connection", conn->where);
        goto fail;
    }
    int fd = -1;
    if ((rc = broker_amqp_conn_tcp_connect(conn, queue->host, queue->port, &fd)))
        goto fail;
    /* From here on amqp_destroy_connection() closes the descriptor. */
    amqp_tcp_socket_set_sockfd(sock, fd);
    conn->fd = fd;
    conn->socket_dead = false;

    struct timeval handshake = {BROKER_AMQP_HANDSHAKE_TIMEOUT, 0};
    struct timeval rpc = {BROKER_AMQP_RPC_TIMEOUT, 0};
    amqp_set_handshake_timeout(conn->amqp, &handshake);
    /* Bounds every synchronous call; on expiry rabbitmq-c closes the socket. */
    amqp_set_rpc_timeout(conn->amqp, &rpc);

    if ((rc = broker_amqp_conn_login(conn, queue)))
        goto fail;
    amqp_channel_open(conn->amqp, BROKER_AMQP_CHANNEL);
    if ((rc = broker_amqp_conn_rpc_failed(conn, "opening channel 1",
                                          amqp_get_rpc_reply(conn->amqp))))
        goto fail;
    amqp_confirm_select(conn->amqp, BROKER_AMQP_CHANNEL);
    if ((rc = broker_amqp_conn_rpc_failed(conn, "confirm.select", amqp_get_rpc_reply(conn->amqp))))
        goto fail;
    conn->next_publish_seq = 1;
    amqp_maybe_release_buffers(conn->amqp);
    log_debug(log, "%s: connected (heartbeat %d s)", conn->where, amqp_get_heartbeat(conn->amqp));
    *out = conn;
    return 0;

fail:
    broker_amqp_conn_close(conn);
    return rc;
}

void broker_amqp_conn_close(broker_amqp_conn *conn)
{
    if (!conn)
        return;
    if (conn->amqp) {
        if (!conn->socket_dead) {
            /* A server that does not answer must not hold up a shutdown for
             * the full RPC timeout. */
            struct timeval quick = {BROKER_AMQP_CLOSE_TIMEOUT, 0};
            amqp_set_rpc_timeout(conn->amqp, &quick);
            amqp_connection_close(conn->amqp, AMQP_REPLY_SUCCESS);
        }
        amqp_destroy_connection(conn->amqp);
    }
    free(conn);
}

/* ---- frames -------------------------------------------------------------- */

/* Wait for any frame until @deadline (ms, clock_now_ms clock); the
 * amqp status, with errno cleared first so a socket error can be named. */
static int broker_amqp_conn_wait_frame(broker_amqp_conn *conn, int64_t deadline,
                                       amqp_frame_t *frame)
{
    int64_t left = deadline - clock_now_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    errno = 0;
    return amqp_simple_wait_frame_noblock(conn->amqp, frame, &tv);
}

int broker_amqp_conn_read_method(broker_amqp_conn *conn, int64_t deadline, const char *what,
                                 amqp_frame_t *frame)
{
    for (;;) {
        int status = broker_amqp_conn_wait_frame(conn, deadline, frame);
        if (status == AMQP_STATUS_TIMEOUT)
            return 1;
        if (status != AMQP_STATUS_OK)
            return broker_amqp_conn_lost(conn, what, status, errno);
        if (frame->frame_type != AMQP_FRAME_METHOD)
            /* Content frames are always read right after their method. */
            return broker_amqp_conn_fail(conn, true,
                                         "%s: unexpected frame of type %u outside a message", what,
                                         (unsigned)frame->frame_type);
        amqp_method_number_t id = frame->payload.method.id;
        if (id == AMQP_CONNECTION_CLOSE_METHOD || id == AMQP_CHANNEL_CLOSE_METHOD)
            return broker_amqp_conn_server_closed(conn, what, &frame->payload.method);
        if (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD) {
            log_warn(conn->log, "%s: %s", conn->where,
                     id == AMQP_CONNECTION_BLOCKED_METHOD ? "publishing blocked by the server"
                                                          : "publishing unblocked");
            continue;
        }
        if (frame->channel != BROKER_AMQP_CHANNEL)
            return broker_amqp_conn_fail(conn, true, "%s: unexpected %s on channel %u", what,
                                         amqp_method_name(id), (unsigned)frame->channel);
        return 0;
    }
}

/* Next frame of a message's content on our channel before @deadline.
 * Connection-level frames may come in between; content frames on a channel
 * are never interleaved with other frames of that channel. */
static int broker_amqp_conn_read_content_frame(broker_amqp_conn *conn, int64_t deadline,
                                               const char *what, amqp_frame_t *frame)
{
    for (;;) {
        int status = broker_amqp_conn_wait_frame(conn, deadline, frame);
        if (status == AMQP_STATUS_TIMEOUT)
            return broker_amqp_conn_fail(conn, true,
                                         "%s: message content did not arrive within %d s", what,
                                         BROKER_AMQP_RPC_TIMEOUT);
        if (status != AMQP_STATUS_OK)
            return broker_amqp_conn_lost(conn, what, status, errno);
        if (frame->frame_type == AMQP_FRAME_METHOD) {
            amqp_method_number_t id = frame->payload.method.id;
            if (id == AMQP_CONNECTION_CLOSE_METHOD || id == AMQP_CHANNEL_CLOSE_METHOD)
                return broker_amqp_conn_server_closed(conn, what, &frame->payload.method);
            if (frame->channel == 0 &&
                (id == AMQP_CONNECTION_BLOCKED_METHOD || id == AMQP_CONNECTION_UNBLOCKED_METHOD))
                continue;
            return broker_amqp_conn_fail(conn, true, "%s: expected message content, got %s", what,
                                         amqp_method_name(id));
        }
        if (frame->channel != BROKER_AMQP_CHANNEL)
            return broker_amqp_conn_fail(conn, true, "%s: content frame on unexpected channel %u",
                                         what, (unsigned)frame->channel);
        return 0;
    }
}

/* Read the content (header and body frames) that follows a basic.deliver or
 * basic.return. With @body, the body is returned as a NUL-terminated malloc'd
 * copy; without, it is dropped. The server sends the content right behind
 * the method, so the RPC timeout is ample. */
int broker_amqp_conn_read_content(broker_amqp_conn *conn, const char *what, char **body,
                                  size_t *len)
{
    int64_t deadline = broker_amqp_conn_deadline(BROKER_AMQP_RPC_TIMEOUT * 1000);
    amqp_frame_t frame;
    int rc = broker_amqp_conn_read_content_frame(conn, deadline, what, &frame);
    if (rc)
        return rc;
    if (frame.frame_type != AMQP_FRAME_HEADER)
        return broker_amqp_conn_fail(conn, true,
                                     "%s: expected a content header, got a frame of type %u", what,
                                     (unsigned)frame.frame_type);
    uint64_t size = frame.payload.properties.body_size;
    if (size >= SIZE_MAX)
        return broker_amqp_conn_fail(conn, true, "%s: message of %llu bytes is too large", what,
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
        rc = broker_amqp_conn_read_content_frame(conn, deadline, what, &frame);
        if (!rc &&
            (frame.frame_type != AMQP_FRAME_BODY || frame.payload.body_fragment.len > size - got))
            rc = broker_amqp_conn_fail(conn, true, "%s: malformed message body", what);
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
        amqp_maybe_release_buffers_on_channel(conn->amqp, BROKER_AMQP_CHANNEL);
    }
    if (body) {
        data[keep] = '\0';
        *body = data;
        *len = keep;
    }
    return 0;
}

int broker_amqp_conn_await_cancel_ok(broker_amqp_conn *conn)
{
    const char *what = "cancelling the consumer";
    int64_t deadline = broker_amqp_conn_deadline(BROKER_AMQP_RPC_TIMEOUT * 1000);
    unsigned rejected = 0;
    int rc;
    for (;;) {
        amqp_frame_t frame;
        rc = broker_amqp_conn_read_method(conn, deadline, what, &frame);
        if (rc == 1)
            rc = broker_amqp_conn_fail(conn, true, "%s: no cancel-ok within %d s", what,
                                       BROKER_AMQP_RPC_TIMEOUT);
        if (rc)
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_CANCEL_OK_METHOD)
            break;
        if (m->id == AMQP_BASIC_DELIVER_METHOD) {
            /* Pushed before the broker saw the cancel: hand it back so that
             * another consumer runs it. */
            uint64_t tag = ((amqp_basic_deliver_t *)m->decoded)->delivery_tag;
            if ((rc = broker_amqp_conn_read_content(conn, what, NULL, NULL)))
                break;
            errno = 0;
            int status = amqp_basic_reject(conn->amqp, BROKER_AMQP_CHANNEL, tag, 1);
            if (status != AMQP_STATUS_OK) {
                rc = broker_amqp_conn_lost(conn, what, status, errno);
                break;
            }
            rejected++;
        } else if (m->id == AMQP_BASIC_RETURN_METHOD) {
            if ((rc = broker_amqp_conn_read_content(conn, what, NULL, NULL)))
                break;
        }
        /* basic.cancel from the server (the queue went away) needs no
         * answer: our own cancel still gets its cancel-ok. Late confirms are
         * dropped. */
    }
    if (!rc) {
        conn->consuming = false;
        conn->cancel_pending = false;
        if (rejected)
            log_debug(conn->log, "%s: returned %u message(s) delivered during the cancel",
                      conn->where, rejected);
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}
