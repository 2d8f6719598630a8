/* A one-connection HTTP server on 127.0.0.1 for transport tests: it
 * accepts, reads one request's head, then does what its mode says. Runs in
 * its own thread from tiny_server_start() to tiny_server_stop(). */
#ifndef ACP_TEST_TINY_SERVER_H
#define ACP_TEST_TINY_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef enum tiny_server_mode {
    TINY_SILENT,  /* never answers (until stopped) */
    TINY_CAPTURE, /* keeps the request head, answers @reply */
} tiny_server_mode;

typedef struct tiny_server {
    tiny_server_mode mode;
    const char *reply;  /* TINY_CAPTURE: sent as is, then the connection is closed */
    int port;           /* chosen by the system */
    char request[8192]; /* the request head received (NUL-terminated) */
    int listener;
    atomic_bool stop;
    pthread_t thread;
} tiny_server;

/* 0, or -1 when no socket or thread could be made. */
int tiny_server_start(tiny_server *s, tiny_server_mode mode, const char *reply);
void tiny_server_stop(tiny_server *s);

#endif
