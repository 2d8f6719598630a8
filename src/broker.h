/* The broker seam: a driver opens connections, and every broker_* call on a
 * connection goes to its driver's operations. The AMQP driver
 * (broker_amqp.h: RabbitMQ through rabbitmq-c) is the real one; unit tests
 * use an in-memory one (tests/fakes/fake_broker.h). What follows is the
 * contract both keep: one connection with one channel, the job queue
 * "<queue_id>_jobs", publishing with confirms, consuming with prefetch 1 and
 * manual acks. The job message is job_message.h's.
 *
 * A broker_conn is NOT thread-safe (rabbitmq-c connections must not be
 * shared): one thread owns it, or callers serialise access with a mutex.
 * Functions return 0 or a negative ACP_E* code with the detail set, naming
 * the broker ("rabbitmq 127.0.0.1:5672") and the reason (library error or
 * the server's close reply, e.g. "ACCESS_REFUSED - Login was refused" or
 * "PRECONDITION_FAILED - inequivalent arg 'x-consumer-timeout'").
 * After ACP_EBROKER the connection is unusable: broker_close() it and
 * broker_connect() again (callers own the back-off). */
#ifndef ACP_BROKER_H
#define ACP_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "log.h"

typedef struct broker_conn broker_conn;
typedef struct broker_keeper broker_keeper;
typedef struct broker_delivery broker_delivery;

/* The broker's answer to one or more publishes (broker_read_confirms). */
typedef struct broker_confirm {
    uint64_t tag;     /* the publish numbered so by broker_publish_send ... */
    bool multiple;    /* ... and, when set, every earlier one still unanswered */
    bool nack;        /* refused: not queued */
    bool returned;    /* the message numbered @tag came back: no queue took it */
    char reason[600]; /* for a nack or a return: the whole error message */
} broker_confirm;

typedef void (*broker_confirm_fn)(void *arg, const broker_confirm *confirm);

/* ---- the seam ---------------------------------------------------------- */

/* A connection's operations, one per broker_* function below (same
 * parameters; the dispatcher has checked that the connection is not NULL). */
typedef struct broker_conn_ops {
    void (*close)(broker_conn *conn);
    int (*declare)(broker_conn *conn, const char *queue_id, unsigned ack_timeout_seconds);
    int (*publish)(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                   int confirm_timeout_ms);
    int (*publish_send)(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                        uint64_t *seq);
    int (*read_confirms)(broker_conn *conn, broker_confirm_fn fn, void *arg);
    int (*wait_readable)(broker_conn *conn, int timeout_ms);
    int (*consume)(broker_conn *conn, const char *queue_id);
    int (*cancel)(broker_conn *conn);
    int (*cancel_send)(broker_conn *conn);
    int (*consume_send)(broker_conn *conn, const char *queue_id);
    int (*next)(broker_conn *conn, int timeout_ms, broker_delivery *out);
    int (*ack)(broker_conn *conn, uint64_t tag);
    int (*keeper_start)(broker_conn *conn, int cancel_after_ms, broker_keeper **out);
    int (*keeper_stop)(broker_keeper *keeper);
} broker_conn_ops;

/* A driver's connection begins with this, and its keeper with
 * broker_keeper: the dispatchers reach the operations through them. */
struct broker_conn {
    const broker_conn_ops *ops;
};
struct broker_keeper {
    broker_conn *conn;
};

typedef struct broker_driver {
    const char *name; /* "rabbitmq", "fake" */
    /* Open a connection for @queue (host, port, credentials, heartbeat):
     * 0 with *@out set, or an error with *@out NULL. @driver is this
     * driver, so that one with state (the fake) can embed it. */
    int (*connect)(const struct broker_driver *driver, broker_conn **out,
                   const acp_queue_config *queue, const logger *log);
} broker_driver;

/* ---- connecting --------------------------------------------------------- */

/* Connect through @driver (the platform's, broker_amqp_driver by default).
 * The AMQP driver connects (TCP timeout 5 s), logs in (heartbeat
 * @queue->heartbeat seconds, 60 when 0), opens channel 1 and puts it in
 * confirm mode. ACP_EBROKER on failure, ACP_EINVAL for a NULL @out or
 * @driver. */
int broker_connect(broker_conn **out, const broker_driver *driver, const acp_queue_config *queue,
                   const logger *log);
void broker_close(broker_conn *conn); /* NULL is fine; closes politely if possible */

/* Declare "<queue_id>_jobs": durable, not exclusive, not auto-delete, with
 * x-consumer-timeout = ack_timeout_seconds * 1500 (ms, as a long), exactly
 * as lib-compute-platform declares it. */
int broker_declare(broker_conn *conn, const char *queue_id, unsigned ack_timeout_seconds);

/* Publish @body to "<queue_id>_jobs" on the default exchange, persistent
 * (delivery mode 2), content type application/json, and wait up to
 * @confirm_timeout_ms for the broker's confirm. ACP_EBROKER on a nack, a
 * returned message or a timeout. */
int broker_publish(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                   int confirm_timeout_ms);

/* Pipelined publishing, for several messages in flight on one connection
 * (dispatch.c): broker_publish_send sends the message as broker_publish
 * does and returns at once with *@seq, its number among the connection's
 * publishes (1, 2, ...); broker_read_confirms hands every confirm that has
 * arrived to @fn without waiting (0, or ACP_EBROKER when the connection is
 * lost: every publish not confirmed yet is then lost with it). A publish
 * succeeded only when a confirm covers it that is neither a nack nor for a
 * returned message.
 *
 * broker_wait_readable waits up to @timeout_ms until the connection may have
 * something to read (0) or the time is up (1). It is the one call that may
 * run while another thread uses the connection (under the owner's lock): it
 * only watches, reads nothing, and the connection must stay open
 * meanwhile. A wake-up without a confirm is possible (a heartbeat). */
int broker_publish_send(broker_conn *conn, const char *queue_id, const char *body, size_t len,
                        uint64_t *seq);
int broker_read_confirms(broker_conn *conn, broker_confirm_fn fn, void *arg);
int broker_wait_readable(broker_conn *conn, int timeout_ms);

/* Start consuming "<queue_id>_jobs": basic.qos(prefetch_count = 1), then
 * basic.consume without auto-ack. */
int broker_consume(broker_conn *conn, const char *queue_id);

/* Stop consuming (basic.cancel) so that no further message is pushed to this
 * connection while its owner runs a job; a message delivered before the
 * cancel took effect is rejected with requeue, so it goes to another worker. */
int broker_cancel(broker_conn *conn);

/* The same without waiting for the broker's answer, around a job (the
 * worker itself lets its keeper cancel, after a grace: see below):
 * broker_cancel_send sends basic.cancel and returns; the keeper
 * started next reads the cancel-ok at once, on its own thread, rejecting
 * (with requeue) a message pushed before the broker saw the cancel, so that
 * the cancel's round trip overlaps the job and no message waits behind it.
 * broker_consume_send (after the job, on a connection that consumed
 * before and was cancelled) reads a cancel-ok still due, sends
 * basic.consume and returns; broker_next reads its consume-ok, or the
 * channel's closing when the queue went away meanwhile. */
int broker_cancel_send(broker_conn *conn);
int broker_consume_send(broker_conn *conn, const char *queue_id);

/* Keeping a connection alive while its owner is busy elsewhere (a worker
 * running a job): a thread of its own answers the broker's heartbeats and
 * reads what the server sends until broker_keeper_stop(). The owner must
 * not touch @conn in between; the handover needs no lock on the connection:
 * the keeper takes it at start and has let go of it when stop returns (the
 * AMQP driver keeps one thread per connection for all its jobs, asleep
 * between them).
 *
 * With @cancel_after_ms >= 0 and a consumer running (none cancelled with
 * broker_cancel_send), the consumer is left alone for that long: a message
 * the broker pushes meanwhile (prefetch 1) stays unread for the owner's next
 * broker_next, so a short job costs no cancel and no consume. Once that time
 * has passed the keeper cancels the consumer (basic.cancel) and hands back
 * (reject with requeue) a message pushed before the broker saw it, so that
 * another consumer runs it instead of waiting behind the job. With a
 * negative @cancel_after_ms nothing is cancelled: cancel the consumer first
 * (broker_cancel_send), or a message delivered meanwhile is rejected with
 * requeue. */

/* Start keeping @conn alive. ACP_ENOMEM when the thread cannot start. */
int broker_keeper_start(broker_conn *conn, int cancel_after_ms, broker_keeper **out);
/* Stop the thread and hand the connection back: 0 when the consumer running
 * at start still runs (or there was none), 1 when it ended meanwhile (the
 * keeper cancelled it after @cancel_after_ms, or the server did): consume
 * again (broker_consume_send) for more deliveries; or ACP_EBROKER with the
 * detail set when the connection was lost meanwhile (close it). */
int broker_keeper_stop(broker_keeper *keeper);

struct broker_delivery {
    uint64_t tag;
    bool redelivered;
    /* NUL-terminated copy; owned. A body larger than JOB_MESSAGE_MAX
     * (job_message.h) is read off the wire but only its first
     * JOB_MESSAGE_MAX + 1 bytes are kept (len says so), whatever size the
     * message's header claims: job_message_parse refuses it as too large. */
    char *body;
    size_t len;
};

void broker_delivery_free(broker_delivery *delivery);

/* Wait up to @timeout_ms for the next delivery. Returns 0 with @out filled,
 * 1 when nothing arrived in time (heartbeats are handled meanwhile), or
 * ACP_EBROKER when the connection or channel was lost. */
int broker_next(broker_conn *conn, int timeout_ms, broker_delivery *out);

/* Acknowledge one delivery. */
int broker_ack(broker_conn *conn, uint64_t tag);

#endif
