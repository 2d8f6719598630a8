/* The server's own metrics, served by GET /metrics after the library's:
 * requests by route and status, their duration by route, and the open
 * connections. A route is the pattern of the path ("/jobs/{id}/log"), never
 * the path itself, so that the label sets stay bounded whatever clients
 * ask for. */
#ifndef SERVER_HTTPMETRICS_H
#define SERVER_HTTPMETRICS_H

#include <stddef.h>

/* The routes of docs/http-api.adoc; HTTPMETRICS_OTHER for a path none takes. */
typedef enum httpmetrics_route {
    HTTPMETRICS_OTHER,
    HTTPMETRICS_HEALTH,
    HTTPMETRICS_METRICS,
    HTTPMETRICS_JOBS,
    HTTPMETRICS_JOB,
    HTTPMETRICS_FILES,
    HTTPMETRICS_FILE,
    HTTPMETRICS_EXPIRE,
    HTTPMETRICS_CANCEL,
    HTTPMETRICS_LOG,
    HTTPMETRICS_QUEUES,
    HTTPMETRICS_UI, /* the dashboard's static files: "/" and "/ui/..." */
    HTTPMETRICS_ROUTES
} httpmetrics_route;

/* The label value of @route ("/jobs/{id}"; "other"). */
const char *httpmetrics_route_name(httpmetrics_route route);

/* A request on @route was answered with @status after @seconds. */
void httpmetrics_request(httpmetrics_route route, unsigned status, double seconds);

/* A connection opened (+1) or closed (-1). */
void httpmetrics_connection(int delta);

/* Append the exposition text (HELP, TYPE and samples) to @buf (a malloc'd
 * buffer of *len bytes in *cap; grown as needed). Returns 0, or -1 when out
 * of memory (the buffer is left as it was, still owned by the caller). */
int httpmetrics_render(char **buf, size_t *len, size_t *cap);

#endif
