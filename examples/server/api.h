/* The jobs API: routes a complete request to its handler. */
#ifndef SERVER_API_H
#define SERVER_API_H

#include "http.h"

/* The route pattern @path falls under, for the metrics' labels. */
httpmetrics_route api_route_of(const char *path);

enum MHD_Result api_handle(server *srv, struct MHD_Connection *conn, http_request *req,
                           const char *method, const char *path);

#endif
