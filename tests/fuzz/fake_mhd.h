/* A stand-in for the part of libmicrohttpd that the example server uses,
 * linked into fuzz_http_request instead of the library: the server's own
 * request handler (http.c) and router (api.c) run unchanged, on requests
 * the target makes up, without sockets or threads. */
#ifndef ACP_FUZZ_FAKE_MHD_H
#define ACP_FUZZ_FAKE_MHD_H

#include <stddef.h>

#include <microhttpd.h>

#define FAKE_MHD_MAX_ARGS 16

/* A request as the handler sees it, and what it answered. */
struct MHD_Connection {
    /* in: query arguments (value NULL for "?key") and the Content-Length
     * header (NULL: none) */
    const char *arg_keys[FAKE_MHD_MAX_ARGS];
    const char *arg_values[FAKE_MHD_MAX_ARGS];
    size_t arg_count;
    const char *content_length;
    const char *host; /* the Host header, NULL: none */
    /* out */
    int queued; /* MHD_queue_response() calls */
    unsigned status;
    char *body; /* the response's bytes, NUL-terminated; NULL for a callback body */
    size_t body_len;
    char *content_type;
    char *allow;
};

/* The handler and the completion callback that http_start() registered. */
extern MHD_AccessHandlerCallback fake_mhd_handler;
extern void *fake_mhd_handler_cls;
extern MHD_RequestCompletedCallback fake_mhd_completed;
extern void *fake_mhd_completed_cls;

/* The server's MHD_OPTION_UNESCAPE_CALLBACK: a target applies it to the
 * path, as libmicrohttpd does before calling the handler. */
typedef size_t (*fake_mhd_unescape_fn)(void *cls, struct MHD_Connection *conn, char *text);
extern fake_mhd_unescape_fn fake_mhd_unescape;

/* Release what a request's answer left in @conn. */
void fake_mhd_connection_clear(struct MHD_Connection *conn);

#endif
