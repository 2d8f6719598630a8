/* GET /health: a cheap real check of each backing service. The public API
 * has no health call, so: PostgreSQL by listing one job (acp_list_jobs), S3
 * by listing the files of a random job id (acp_get_results: "not found"
 * means S3 answered), RabbitMQ by amqp_probe() of each configured broker.
 * The answer names each service and its state, never its error (that goes
 * to the log); only a request with a valid token (auth.h) also gets the
 * version and each service's address. It is reused for
 * health_cache_seconds. */
#ifndef SERVER_HEALTH_H
#define SERVER_HEALTH_H

#include "http.h"

enum MHD_Result health_handle(server *srv, struct MHD_Connection *conn, http_request *req);

/* Free the cached answer (at exit, after the HTTP daemon has stopped). */
void health_release(void);

#endif
