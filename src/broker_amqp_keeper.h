/* The AMQP driver's keeper (broker.h: broker_keeper_start/stop): a thread of
 * its own answers the heartbeats of a connection whose owner runs a job, so
 * that RabbitMQ does not close it as silent. */
#ifndef ACP_BROKER_AMQP_KEEPER_H
#define ACP_BROKER_AMQP_KEEPER_H

#include "broker.h"
#include "broker_amqp_conn.h"

/* Hand the connection to its keeper thread (made on the first call, kept
 * until the connection closes); it looks every quarter of the negotiated
 * heartbeat, and cancels the consumer after @cancel_after_ms (>= 0) as
 * broker.h says. ACP_ENOMEM when the thread cannot start. */
int broker_amqp_keeper_start(broker_conn *conn, int cancel_after_ms, broker_keeper **out);
/* Take the connection back (the thread sleeps until the next start): 0, 1
 * when the consumer ended meanwhile, or ACP_EBROKER with the reason when
 * the connection was lost meanwhile. */
int broker_amqp_keeper_stop(broker_keeper *keeper);
/* End and join the thread, before the connection is closed. */
void broker_amqp_keeper_free(broker_amqp_conn *conn);

#endif
