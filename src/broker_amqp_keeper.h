/* The AMQP driver's keeper (broker.h: broker_keeper_start/stop): a thread of
 * its own answers the heartbeats of a connection whose owner runs a job, so
 * that RabbitMQ does not close it as silent. */
#ifndef ACP_BROKER_AMQP_KEEPER_H
#define ACP_BROKER_AMQP_KEEPER_H

#include "broker.h"

/* Start the thread; the interval is a quarter of the negotiated heartbeat.
 * ACP_ENOMEM when it cannot start. */
int broker_amqp_keeper_start(broker_conn *conn, broker_keeper **out);
/* Join it: 0, or ACP_EBROKER with the reason when the connection was lost
 * meanwhile. */
int broker_amqp_keeper_stop(broker_keeper *keeper);

#endif
