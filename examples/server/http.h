/* The HTTP side: libmicrohttpd with a thread per connection (handlers call
 * the blocking acp_* functions), request bodies with a size limit, one log
 * line per request, and the helpers that answer in JSON. */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "httpmetrics.h"
#include "server.h"

struct upload;

/* One request's state, from its headers to its completion. */
typedef struct http_request {
    char *method; /* copies, for the log line */
    char *path;
    char *body; /* NUL-terminated; NULL when there was none */
    size_t body_len;
    size_t body_cap;
    int too_big;        /* over cfg->max_body_bytes: the rest is discarded */
    uint64_t discarded; /* bytes dropped since */
    unsigned status;    /* what was answered, for the log */
    double started;     /* monotonic seconds */
    /* the route pattern, for the metrics */
    httpmetrics_route route;
    /* the request's valid bearer token (auth.h), or NULL: none configured,
     * none sent, or an open route given a wrong one */
    const auth_token *token;
    /* a multipart POST /jobs: its job part and input files (upload.h) */
    struct upload *upload;
} http_request;

/* Serve on @listen_fd (bound and listening; the daemon closes it when it
 * stops). Returns NULL with a reason in @err on failure. */
struct MHD_Daemon *http_start(server *srv, int listen_fd, char *err, size_t errlen);

/* Stop serving: the daemon, then the connection guard. */
void http_stop(server *srv, struct MHD_Daemon *daemon);

/* Queue @response with @status and release our reference to it. */
enum MHD_Result http_reply(struct MHD_Connection *conn, http_request *req, unsigned status,
                           struct MHD_Response *response);

/* A JSON response of @doc (consumed), or NULL when out of memory. */
struct MHD_Response *http_json_response(json_object *doc);

/* Answer @doc (consumed) as JSON. */
enum MHD_Result http_reply_json(struct MHD_Connection *conn, http_request *req, unsigned status,
                                json_object *doc);

/* Answer {"error": @error, "detail": <formatted>, "field": @field} (field
 * left out when NULL). */
enum MHD_Result http_reply_error(struct MHD_Connection *conn, http_request *req, unsigned status,
                                 const char *error, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Answer the library's failure @code: its HTTP status, acp_strerror() and
 * acp_last_error() (call it right after the failing acp_* call). */
enum MHD_Result http_reply_acp(struct MHD_Connection *conn, http_request *req, int code,
                               const char *field);

#endif
