/* One rabbitmq-c connection of the AMQP broker driver (broker_amqp.c) and
 * what its operations share: opening and closing it, errors that name the
 * broker and mark the connection unusable, and reading frames.
 *
 * Every wait goes through amqp_simple_wait_frame_noblock(), frame by frame,
 * rather than amqp_consume_message(): every frame (confirms, returns, server
 * cancels and closes) is then seen and acted on by the driver. Inside that
 * call rabbitmq-c sends our heartbeats when they are due and gives up with
 * AMQP_STATUS_HEARTBEAT_TIMEOUT when the server has been silent for two
 * heartbeat intervals, so one call per wait handles heartbeats for the whole
 * timeout; no slicing is needed. A timeout keeps partially read frames in the
 * connection state, and frames that rabbitmq-c's own RPCs (or
 * amqp_basic_publish) read ahead are queued inside the library and returned
 * first by the next wait, so nothing is lost between calls. */
#ifndef ACP_BROKER_AMQP_CONN_H
#define ACP_BROKER_AMQP_CONN_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "broker.h"
#include "log.h"

#define BROKER_AMQP_CHANNEL     1
#define BROKER_AMQP_RPC_TIMEOUT 30 /* seconds */

/* Server texts are short strings that may be empty (NULL bytes). */
#define BROKER_AMQP_TEXT(b) (int)(b).len, (b).bytes ? (const char *)(b).bytes : ""

typedef struct broker_amqp_conn {
    broker_conn base; /* first: what the broker seam sees */
    amqp_connection_state_t amqp;
    const logger *log;
    char where[300]; /* "rabbitmq host:port", the prefix of every message */
    /* Confirm mode numbers our publishes 1, 2, ... on the channel. */
    uint64_t next_publish_seq;
    /* A basic.return read by broker_read_confirms: it belongs to the
     * message of the next confirm. */
    bool returned;
    char return_text[160];
    /* The socket's descriptor, for broker_wait_readable (-1: none). */
    int fd;
    bool consuming;
    /* basic.cancel sent, its cancel-ok not read yet (broker_cancel_send):
     * the keeper or the next consume reads it. */
    bool cancel_pending;
    /* Its keeper thread, once broker_keeper_start made it. */
    struct broker_amqp_keeper *keeper;
    /* basic.qos holds for the channel's life: set once, not per consume. */
    bool prefetch_set;
    char consumer_tag[80];
    /* An ACP_EBROKER left the channel or the connection unusable. */
    bool broken;
    /* The socket failed or the server closed the connection: no polite
     * connection.close is possible any more. */
    bool socket_dead;
} broker_amqp_conn;

static inline broker_amqp_conn *broker_amqp_conn_of(broker_conn *base)
{
    return (broker_amqp_conn *)base;
}

/* Connect (TCP timeout 5 s), log in (heartbeat @queue->heartbeat seconds, 60
 * when 0), open channel 1 and put it in confirm mode. The caller sets
 * base.ops. ACP_EBROKER on failure. */
int broker_amqp_conn_open(broker_amqp_conn **out, const acp_queue_config *queue, const logger *log);
/* NULL is fine; closes politely if possible. */
void broker_amqp_conn_close(broker_amqp_conn *conn);

/* clock_now_ms() + @timeout_ms, a negative timeout counting as 0. */
int64_t broker_amqp_conn_deadline(int timeout_ms);

/* Set "<where>: <message>" and return ACP_EBROKER. @fatal marks the
 * connection unusable. */
int broker_amqp_conn_fail(broker_amqp_conn *conn, bool fatal, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A library status that ends the connection (socket error, closed socket,
 * heartbeat timeout, RPC timeout, ...). */
int broker_amqp_conn_lost(broker_amqp_conn *conn, const char *what, int status, int saved_errno);
/* Report a failed synchronous call (rabbitmq-c's amqp_get_rpc_reply()). */
int broker_amqp_conn_rpc_failed(broker_amqp_conn *conn, const char *what, amqp_rpc_reply_t reply);
/* 0, or an error when @conn is NULL or failed earlier. */
int broker_amqp_conn_usable(broker_amqp_conn *conn, const char *what);
/* "<queue_id>_jobs" into @name, or ACP_EINVAL for an unsafe id. */
int broker_amqp_conn_queue_name(broker_amqp_conn *conn, const char *queue_id, char *name,
                                size_t size);

/* Read the next method frame on our channel before @deadline: 0, 1 on
 * timeout, or ACP_EBROKER. Server closes and connection-level notices are
 * handled here; everything else is the caller's. */
int broker_amqp_conn_read_method(broker_amqp_conn *conn, int64_t deadline, const char *what,
                                 amqp_frame_t *frame);
/* Read up to the cancel-ok of the basic.cancel sent (cancel_pending),
 * rejecting with requeue every delivery that was pushed before the broker
 * saw the cancel, so that another consumer gets it: 0 or ACP_EBROKER. */
int broker_amqp_conn_await_cancel_ok(broker_amqp_conn *conn);
/* Read the content (header and body frames) that follows a basic.deliver or
 * basic.return. With @body, the body is returned as a NUL-terminated malloc'd
 * copy of at most JOB_MESSAGE_MAX + 1 bytes; without, it is dropped. */
int broker_amqp_conn_read_content(broker_amqp_conn *conn, const char *what, char **body,
                                  size_t *len);

#endif
