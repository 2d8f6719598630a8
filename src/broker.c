/* The broker seam's dispatchers (broker.h): each call goes to the
 * connection's driver. */
#include "broker.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static int broker_no_conn(const char *what)
{
    return error_set(ACP_EINVAL, "broker: %s: NULL connection", what);
}

int broker_connect(broker_conn **out, const broker_driver *driver, const acp_queue_config *queue,
                   const logger *log)
{
    if (!out)
        return error_set(ACP_EINVAL, "broker: NULL output connection");
    *out = NULL;
    if (!driver)
        return error_set(ACP_EINVAL, "broker: NULL driver");
    return driver->connect(driver, out, queue, log);
}

void broker_close(broker_conn *conn)
{
    if (conn)
        conn->ops->close(conn);
}

int broker_declare(broker_conn *conn, const char *queue_id, unsigned ack_timeout_seconds)
{
    if (!conn)
        return broker_no_conn("declaring a queue");
    return conn->ops->declare(conn, queue_id, ack_timeout_seconds);
}

int broker_publish(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                   int confirm_timeout_ms)
{
    if (!conn)
        return broker_no_conn("publishing");
    return conn->ops->publish(conn, queue_id, body, len, confirm_timeout_ms);
}

int broker_publish_send(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                        uint64_t *seq)
{
    if (!conn)
        return broker_no_conn("publishing");
    return conn->ops->publish_send(conn, queue_id, body, len, seq);
}

int broker_read_confirms(broker_conn *conn, broker_confirm_fn fn, void *arg)
{
    if (!conn)
        return broker_no_conn("reading confirms");
    return conn->ops->read_confirms(conn, fn, arg);
}

int broker_wait_readable(broker_conn *conn, int timeout_ms)
{
    if (!conn)
        return broker_no_conn("waiting for confirms");
    return conn->ops->wait_readable(conn, timeout_ms);
}

int broker_consume(broker_conn *conn, const char *queue_id)
{
    if (!conn)
        return broker_no_conn("consuming");
    return conn->ops->consume(conn, queue_id);
}

int broker_cancel(broker_conn *conn)
{
    if (!conn)
        return broker_no_conn("cancelling the consumer");
    return conn->ops->cancel(conn);
}

int broker_cancel_send(broker_conn *conn)
{
    if (!conn)
        return broker_no_conn("cancelling the consumer");
    return conn->ops->cancel_send(conn);
}

int broker_consume_send(broker_conn *conn, const char *queue_id)
{
    if (!conn)
        return broker_no_conn("consuming");
    return conn->ops->consume_send(conn, queue_id);
}

int broker_keeper_start(broker_conn *conn, int cancel_after_ms, broker_keeper **out)
{
    *out = NULL;
    if (!conn)
        return broker_no_conn("keeping the connection alive");
    return conn->ops->keeper_start(conn, cancel_after_ms, out);
}

int broker_keeper_stop(broker_keeper *keeper)
{
    return keeper->conn->ops->keeper_stop(keeper);
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
    if (!conn)
        return broker_no_conn("waiting for a delivery");
    return conn->ops->next(conn, timeout_ms, out);
}

int broker_ack(broker_conn *conn, uint64_t tag)
{
    if (!conn)
        return broker_no_conn("acknowledging a delivery");
    return conn->ops->ack(conn, tag);
}
