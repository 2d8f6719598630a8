/* What every part of the server shares: the settings and the platform. */
#ifndef SERVER_SERVER_H
#define SERVER_SERVER_H

#include <async_platform.h>

#include "settings.h"

struct guard;

typedef struct server {
    const settings *cfg;
    acp_platform *platform;
    struct guard *guard; /* the whole-request deadline; owned by http.c */
    /* listen.tls's PEM texts (tls.c), or NULL: plain HTTP */
    const char *tls_cert;
    const char *tls_key;
    /* Set when the server stops: a followed log ends at its next check
     * instead of holding MHD_stop_daemon() until its job ends. */
    _Atomic int stopping;
} server;

#endif
