/* Is a RabbitMQ broker there? Connects over TCP, sends the AMQP 0-9-1
 * protocol header and expects the broker's Connection.Start method, then
 * hangs up. No login: that needs the broker's credentials round trip, and
 * the platform's own connections already prove those. */
#ifndef SERVER_AMQP_PROBE_H
#define SERVER_AMQP_PROBE_H

#include <stddef.h>

/* Returns 0 when a broker answered within @timeout_ms, else -1 with the
 * reason in @err. */
int amqp_probe(const char *host, int port, int timeout_ms, char *err, size_t errlen);

#endif
