/* The broker driver for RabbitMQ through rabbitmq-c (broker.h's seam): one
 * AMQP connection with one channel per broker_conn, heartbeats answered
 * inside every wait and by a thread of its own while a worker runs a job
 * (broker_keeper_start), publishing with confirms, consuming with prefetch 1
 * and manual acks, a delivery's body bounded by JOB_MESSAGE_MAX + 1. Errors
 * name the broker ("rabbitmq 127.0.0.1:5672") and the reason: the library's
 * error or the server's close reply (e.g. "ACCESS_REFUSED - Login was
 * refused"). */
#ifndef ACP_BROKER_AMQP_H
#define ACP_BROKER_AMQP_H

#include "broker.h"

extern const broker_driver broker_amqp_driver;

#endif
