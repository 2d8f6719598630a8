/* GET /metrics: the library's metrics (acp_metrics_write) followed by the
 * server's own (httpmetrics.h), in the Prometheus text exposition format
 * 0.0.4. Behind the same connection limits and request deadline as every
 * other route (the server has no authentication of its own: put it behind
 * a proxy that has, or listen on a private address). */
#ifndef SERVER_METRICSROUTE_H
#define SERVER_METRICSROUTE_H

#include "http.h"

enum MHD_Result metricsroute_handle(server *srv, struct MHD_Connection *conn, http_request *req);

#endif
