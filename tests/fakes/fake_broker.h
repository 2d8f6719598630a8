/* An in-memory broker behind the broker seam (src/broker.h), for unit tests
 * of the logic above it: queues of messages, consumers with prefetch 1 and
 * manual acks, publish confirms, a cancel that hands an unread delivery to
 * another consumer, and a connection that is unusable after ACP_EBROKER
 * until it is closed and opened again, as with the AMQP driver. Several
 * threads may each own a connection to the same broker and consume from one
 * queue; waits use CLOCK_MONOTONIC.
 *
 *     fake_broker *fb = fake_broker_new(&plan);
 *     broker_conn *conn;
 *     broker_connect(&conn, fake_broker_driver(fb), &queue_config, NULL);
 *     ...
 *     broker_close(conn);
 *     fake_broker_free(fb);
 *
 * Faults come from the fault plan (tests/fakes/fault.h), one call counted
 * per broker_* call: "amqp.connect", "amqp.declare", "amqp.publish",
 * "amqp.consume", "amqp.cancel", "amqp.next", "amqp.ack"; broker_consume_send
 * and a keeper's cancel are not counted (whether a job outlives its grace
 * depends on the machine's speed, and a run's step count must not). A
 * failing rule's error is returned with a message naming the broker and
 * "injected"; an
 * injected ACP_EBROKER leaves the connection unusable (its unacked delivery
 * goes back to its queue), except for the publish kinds below, which, like
 * a nack or a missing confirm of RabbitMQ, leave it usable. Delays hold the
 * call up without holding the broker's lock. */
#ifndef ACP_FAKE_BROKER_H
#define ACP_FAKE_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "broker.h"
#include "fault.h"

/* fault_rule.kind for "amqp.publish". */
enum {
    /* The connection is lost before the broker takes the message: not
     * queued, connection unusable (kind 0, the default). */
    FAKE_BROKER_PUBLISH_LOST = 0,
    /* basic.nack: not queued, connection still usable. */
    FAKE_BROKER_PUBLISH_NACK = 1,
    /* The confirm does not come in time: the message IS queued, the caller
     * is told it failed, connection still usable. */
    FAKE_BROKER_PUBLISH_NO_CONFIRM = 2,
};

typedef struct fake_broker fake_broker;

/* A broker with no queues; @plan (may be NULL) is shared, not owned. Aborts
 * the test program when out of memory. */
fake_broker *fake_broker_new(fault_plan *plan);
/* Free the broker and its messages. Close every connection first; any left
 * open are freed too (and must not be closed afterwards). */
void fake_broker_free(fake_broker *fb);

/* The driver to pass to broker_connect() (or to put in a platform). */
const broker_driver *fake_broker_driver(fake_broker *fb);

/* Looking at the broker from outside: none of these counts as a call of
 * the fault plan. @queue_id is as passed to broker_declare() ("q1" for
 * "q1_jobs"); NULL means every queue. */
bool fake_broker_declared(fake_broker *fb, const char *queue_id);
/* Messages waiting in the queue, not delivered to any consumer. */
size_t fake_broker_ready(fake_broker *fb, const char *queue_id);
/* Messages delivered to a consumer (read or not) and not acknowledged. */
size_t fake_broker_unacked(fake_broker *fb, const char *queue_id);
/* Messages the broker took from publishers so far (whether confirmed or
 * not; refused and returned ones not counted). */
size_t fake_broker_published(fake_broker *fb, const char *queue_id);
/* A copy (malloc'd, NUL-terminated) of the body of the @index-th waiting
 * message of @queue_id (0: the next to be delivered), or NULL. */
char *fake_broker_peek(fake_broker *fb, const char *queue_id, size_t index);
/* Consumers started (broker_consume, broker_consume_send) and cancelled
 * (broker_cancel, broker_cancel_send, a keeper whose grace ended) so far,
 * on every connection. */
size_t fake_broker_consumes(fake_broker *fb);
size_t fake_broker_cancels(fake_broker *fb);

/* Confirms of pipelined publishes (broker_publish_send): with @hold they
 * are kept back until called again without it (a connection closed
 * meanwhile loses them); @style says how they are then sent. */
enum {
    FAKE_BROKER_CONFIRM_EACH = 0,     /* one basic.ack per message, in order */
    FAKE_BROKER_CONFIRM_MULTIPLE = 1, /* a run of acks as one multiple=true ack */
    FAKE_BROKER_CONFIRM_REVERSE = 2,  /* one per message, newest first */
};
void fake_broker_set_confirms(fake_broker *fb, bool hold, int style);
/* Confirms (acks, nacks, returns) made and not read yet, on every
 * connection. */
size_t fake_broker_unconfirmed(fake_broker *fb);

/* The server closes every open connection, as `rabbitmqctl
 * close_connection` does: their unacked deliveries go back to their queues
 * at once, and each connection's next call (or broker_keeper_stop) fails
 * with ACP_EBROKER, "connection closed by the server: CONNECTION_FORCED". */
void fake_broker_close_connections(fake_broker *fb);

#endif
