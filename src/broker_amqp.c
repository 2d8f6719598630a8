/* The AMQP broker driver: RabbitMQ through rabbitmq-c 0.11. The job queue
 * topology, publishing with confirms, consuming with prefetch 1 and manual
 * acks; the connection itself is broker_amqp_conn.c's, the heartbeat thread
 * broker_amqp_keeper.c's.
 *
 * A connection either publishes or consumes: publish refuses a connection
 * with an active consumer, so that a delivery can never arrive while a
 * publish waits for its confirm. next may still be called on a publishing
 * connection with a short timeout: it then only keeps the heartbeats flowing
 * (and drops late confirms). */
#include "broker_amqp.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "broker_amqp_conn.h"
#include "broker_amqp_keeper.h"
#include "clock.h"
#include "error.h"

/* Consumer tags only need to be unique per channel; a process-wide counter
 * also tells our consumers apart in `rabbitmqctl list_consumers`. */
static atomic_ulong broker_amqp_consumer_counter;

/* ---- topology ------------------------------------------------------------ */

static int broker_amqp_declare(broker_conn *base, const char *queue_id,
                               unsigned ack_timeout_seconds)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    int rc = broker_amqp_conn_usable(conn, "declaring a queue");
    if (rc)
        return rc;
    char name[ACP_QUEUE_ID_MAX + 8];
    if ((rc = broker_amqp_conn_queue_name(conn, queue_id, name, sizeof name)))
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
    amqp_queue_declare(conn->amqp, BROKER_AMQP_CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "declaring queue '%s'", name);
    rc = broker_amqp_conn_rpc_failed(conn, what, amqp_get_rpc_reply(conn->amqp));
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

/* ---- publishing ---------------------------------------------------------- */

/* Does the confirm for @tag (multiple or not) cover @seq? */
static bool broker_amqp_confirm_covers(uint64_t tag, bool multiple, uint64_t seq)
{
    return tag == seq || (multiple && tag > seq);
}

/* Sends basic.publish for @body; *@seq is its number among the channel's
 * confirms. */
static int broker_amqp_publish_send(broker_conn *base, const char *queue_id, const char *body,
                                    size_t len, uint64_t *seq)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    int rc = broker_amqp_conn_usable(conn, "publishing");
    if (rc)
        return rc;
    char name[ACP_QUEUE_ID_MAX + 8];
    if ((rc = broker_amqp_conn_queue_name(conn, queue_id, name, sizeof name)))
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
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "publishing to '%s'", name);

    /* mandatory: a message no queue takes comes back as basic.return instead
     * of vanishing (and is then confirmed). */
    errno = 0;
    int status = amqp_basic_publish(conn->amqp, BROKER_AMQP_CHANNEL, amqp_empty_bytes,
                                    amqp_cstring_bytes(name), 1, 0, &props, content);
    if (status != AMQP_STATUS_OK)
        return broker_amqp_conn_lost(conn, what, status, errno);
    *seq = conn->next_publish_seq++;
    return 0;
}

/* Read frames until a confirm arrives (0, *@c filled), @deadline passes (1)
 * or the connection fails. RabbitMQ sends a message's basic.return just
 * before its confirm, possibly in an earlier call, so the connection
 * remembers it and the next confirm carries it. */
static int broker_amqp_next_confirm(broker_amqp_conn *conn, int64_t deadline, const char *what,
                                    broker_confirm *c)
{
    for (;;) {
        amqp_frame_t frame;
        int rc = broker_amqp_conn_read_method(conn, deadline, what, &frame);
        if (rc)
            return rc;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_ACK_METHOD || m->id == AMQP_BASIC_NACK_METHOD) {
            memset(c, 0, sizeof *c);
            c->nack = m->id == AMQP_BASIC_NACK_METHOD;
            c->tag = c->nack ? ((amqp_basic_nack_t *)m->decoded)->delivery_tag
                             : ((amqp_basic_ack_t *)m->decoded)->delivery_tag;
            c->multiple = c->nack ? ((amqp_basic_nack_t *)m->decoded)->multiple
                                  : ((amqp_basic_ack_t *)m->decoded)->multiple;
            c->returned = conn->returned;
            if (c->nack)
                snprintf(c->reason, sizeof c->reason,
                         "%s: the broker refused the message (basic.nack)", conn->where);
            else if (c->returned)
                snprintf(c->reason, sizeof c->reason, "%s: message returned by the broker: %s",
                         conn->where, conn->return_text);
            conn->returned = false;
            return 0;
        }
        if (m->id == AMQP_BASIC_RETURN_METHOD) {
            const amqp_basic_return_t *r = m->decoded;
            conn->returned = true;
            snprintf(conn->return_text, sizeof conn->return_text, "%.*s (%u)",
                     BROKER_AMQP_TEXT(r->reply_text), (unsigned)r->reply_code);
            if ((rc = broker_amqp_conn_read_content(conn, what, NULL, NULL)))
                return rc;
            continue;
        }
        if (m->id == AMQP_BASIC_DELIVER_METHOD)
            return broker_amqp_conn_fail(
                conn, true, "%s: unexpected delivery on a publishing connection", what);
        log_debug(conn->log, "%s: %s: ignoring %s", conn->where, what, amqp_method_name(m->id));
    }
}

static int broker_amqp_publish(broker_conn *base, const char *queue_id, const char *body,
                               size_t len, int confirm_timeout_ms)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    int64_t deadline = broker_amqp_conn_deadline(confirm_timeout_ms);
    uint64_t seq;
    int rc = broker_amqp_publish_send(base, queue_id, body, len, &seq);
    if (rc)
        return rc;
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "publishing to '%s_jobs'", queue_id);
    for (;;) {
        broker_confirm c;
        rc = broker_amqp_next_confirm(conn, deadline, what, &c);
        if (rc == 1) {
            rc = broker_amqp_conn_fail(conn, false, "%s: no confirm from the broker within %d ms",
                                       what, confirm_timeout_ms);
            break;
        }
        if (rc)
            break;
        if (!broker_amqp_confirm_covers(c.tag, c.multiple, seq))
            continue; /* an earlier, abandoned publish's */
        if (c.nack)
            rc = broker_amqp_conn_fail(conn, false,
                                       "%s: the broker refused the message (basic.nack)", what);
        else if (c.returned)
            rc = broker_amqp_conn_fail(conn, false, "%s: message returned by the broker: %s", what,
                                       conn->return_text);
        break;
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

/* Everything that has arrived, without waiting: confirms go to @fn. */
static int broker_amqp_read_confirms(broker_conn *base, broker_confirm_fn fn, void *arg)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    int rc = broker_amqp_conn_usable(conn, "reading confirms");
    if (rc)
        return rc;
    for (;;) {
        broker_confirm c;
        rc = broker_amqp_next_confirm(conn, clock_now_ms(), "reading confirms", &c);
        if (rc == 1) {
            rc = 0;
            break;
        }
        if (rc)
            break;
        fn(arg, &c);
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

/* Only polls the socket, whose descriptor was saved when it was opened:
 * safe while another thread uses the connection. */
static int broker_amqp_wait_readable(broker_conn *base, int timeout_ms)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    struct pollfd pfd = {.fd = conn->fd, .events = POLLIN};
    if (pfd.fd < 0)
        return 0;
    int n = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms);
    return n > 0 ? 0 : 1;
}

/* ---- consuming ----------------------------------------------------------- */

/* basic.consume; with @wait, the consume-ok is read before returning. */
static int broker_amqp_consume_as(broker_conn *base, const char *queue_id, bool wait)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    int rc = broker_amqp_conn_usable(conn, "consuming");
    if (!rc && conn->cancel_pending)
        rc = broker_amqp_conn_await_cancel_ok(conn);
    if (rc)
        return rc;
    char name[ACP_QUEUE_ID_MAX + 8];
    if ((rc = broker_amqp_conn_queue_name(conn, queue_id, name, sizeof name)))
        return rc;
    if (conn->consuming)
        return error_set(ACP_EINVAL, "%s: consuming '%s': this connection already consumes",
                         conn->where, name);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "consuming '%s'", name);

    /* One unacknowledged message per consumer: one job per worker, and no
     * message waits behind a long job on a busy worker. */
    if (!conn->prefetch_set) {
        amqp_basic_qos(conn->amqp, BROKER_AMQP_CHANNEL, 0, 1, 0);
        if ((rc = broker_amqp_conn_rpc_failed(conn, what, amqp_get_rpc_reply(conn->amqp))))
            goto out;
        conn->prefetch_set = true;
    }
    snprintf(conn->consumer_tag, sizeof conn->consumer_tag, "acp-%s-%lu", name,
             atomic_fetch_add(&broker_amqp_consumer_counter, 1) + 1);
    if (!wait) {
        /* The consume-ok, or the channel's closing if the queue went away
         * meanwhile, comes before any delivery: broker_next reads it. */
        amqp_basic_consume_t consume = {.queue = amqp_cstring_bytes(name),
                                        .consumer_tag = amqp_cstring_bytes(conn->consumer_tag)};
        errno = 0;
        int status =
            amqp_send_method(conn->amqp, BROKER_AMQP_CHANNEL, AMQP_BASIC_CONSUME_METHOD, &consume);
        if (status != AMQP_STATUS_OK) {
            rc = broker_amqp_conn_lost(conn, what, status, errno);
            goto out;
        }
        conn->consuming = true;
        goto out;
    }
    amqp_basic_consume(conn->amqp, BROKER_AMQP_CHANNEL, amqp_cstring_bytes(name),
                       amqp_cstring_bytes(conn->consumer_tag), 0, 0, 0, amqp_empty_table);
    if ((rc = broker_amqp_conn_rpc_failed(conn, what, amqp_get_rpc_reply(conn->amqp))))
        goto out;
    conn->consuming = true;
out:
    amqp_maybe_release_buffers(conn->amqp);
    return rc;
}

static int broker_amqp_consume(broker_conn *base, const char *queue_id)
{
    return broker_amqp_consume_as(base, queue_id, true);
}

/* Only on a connection that consumed before (basic.qos is set), so that
 * a consume refused outright still fails here, where it is first asked. */
static int broker_amqp_consume_send(broker_conn *base, const char *queue_id)
{
    return broker_amqp_consume_as(base, queue_id, !broker_amqp_conn_of(base)->prefetch_set);
}

static int broker_amqp_cancel_send(broker_conn *base)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    const char *what = "cancelling the consumer";
    int rc = broker_amqp_conn_usable(conn, what);
    if (rc)
        return rc;
    if (!conn->consuming || conn->cancel_pending)
        return 0;
    amqp_basic_cancel_t cancel = {.consumer_tag = amqp_cstring_bytes(conn->consumer_tag),
                                  .nowait = 0};
    errno = 0;
    int status =
        amqp_send_method(conn->amqp, BROKER_AMQP_CHANNEL, AMQP_BASIC_CANCEL_METHOD, &cancel);
    if (status != AMQP_STATUS_OK)
        return broker_amqp_conn_lost(conn, what, status, errno);
    conn->cancel_pending = true;
    return 0;
}

static int broker_amqp_cancel(broker_conn *base)
{
    int rc = broker_amqp_cancel_send(base);
    if (rc || !broker_amqp_conn_of(base)->cancel_pending)
        return rc;
    return broker_amqp_conn_await_cancel_ok(broker_amqp_conn_of(base));
}

static int broker_amqp_next(broker_conn *base, int timeout_ms, broker_delivery *out)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    if (out)
        memset(out, 0, sizeof *out);
    int rc = broker_amqp_conn_usable(conn, "waiting for a delivery");
    if (rc)
        return rc;
    if (!out)
        return error_set(ACP_EINVAL, "%s: NULL delivery", conn->where);
    const char *what = "waiting for a delivery";
    int64_t deadline = broker_amqp_conn_deadline(timeout_ms);
    for (;;) {
        amqp_frame_t frame;
        rc = broker_amqp_conn_read_method(conn, deadline, what, &frame);
        if (rc)
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_DELIVER_METHOD) {
            const amqp_basic_deliver_t *d = m->decoded;
            /* Copy before reading on: the content frames recycle the pool
             * that holds the method. */
            uint64_t tag = d->delivery_tag;
            bool redelivered = d->redelivered;
            if ((rc = broker_amqp_conn_read_content(conn, what, &out->body, &out->len)))
                break;
            out->tag = tag;
            out->redelivered = redelivered;
            break;
        }
        if (m->id == AMQP_BASIC_CANCEL_METHOD) {
            conn->consuming = false;
            rc = broker_amqp_conn_fail(
                conn, true, "%s: the server cancelled the consumer (queue deleted or moved)", what);
            break;
        }
        if (m->id == AMQP_BASIC_RETURN_METHOD) {
            if ((rc = broker_amqp_conn_read_content(conn, what, NULL, NULL)))
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

static int broker_amqp_ack(broker_conn *base, uint64_t tag)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    int rc = broker_amqp_conn_usable(conn, "acknowledging a delivery");
    if (rc)
        return rc;
    errno = 0;
    int status = amqp_basic_ack(conn->amqp, BROKER_AMQP_CHANNEL, tag, 0);
    if (status != AMQP_STATUS_OK)
        return broker_amqp_conn_lost(conn, "acknowledging a delivery", status, errno);
    return 0;
}

/* ---- the driver ---------------------------------------------------------- */

static void broker_amqp_close(broker_conn *base)
{
    if (base)
        broker_amqp_keeper_free(broker_amqp_conn_of(base));
    broker_amqp_conn_close(broker_amqp_conn_of(base));
}

static const broker_conn_ops broker_amqp_ops = {
    .close = broker_amqp_close,
    .declare = broker_amqp_declare,
    .publish = broker_amqp_publish,
    .publish_send = broker_amqp_publish_send,
    .read_confirms = broker_amqp_read_confirms,
    .wait_readable = broker_amqp_wait_readable,
    .consume = broker_amqp_consume,
    .cancel = broker_amqp_cancel,
    .cancel_send = broker_amqp_cancel_send,
    .consume_send = broker_amqp_consume_send,
    .next = broker_amqp_next,
    .ack = broker_amqp_ack,
    .keeper_start = broker_amqp_keeper_start,
    .keeper_stop = broker_amqp_keeper_stop,
};

static int broker_amqp_connect(const broker_driver *driver, broker_conn **out,
                               const acp_queue_config *queue, const logger *log)
{
    (void)driver;
    *out = NULL;
    broker_amqp_conn *conn;
    int rc = broker_amqp_conn_open(&conn, queue, log);
    if (rc)
        return rc;
    conn->base.ops = &broker_amqp_ops;
    *out = &conn->base;
    return 0;
}

const broker_driver broker_amqp_driver = {
    .name = "rabbitmq",
    .connect = broker_amqp_connect,
};
