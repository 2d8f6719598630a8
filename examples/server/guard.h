/* The connection guard: a whole-request deadline for every connection.
 * libmicrohttpd's own timeout only measures idleness, so a client sending
 * one byte every few seconds would hold a connection slot for ever; the
 * guard's thread shuts down a connection whose request has not arrived
 * whole within listen.request_timeout of the connection's start or of the
 * end of its previous request. A request being answered (a long download)
 * is not cut. */
#ifndef SERVER_GUARD_H
#define SERVER_GUARD_H

#include <microhttpd.h>

typedef struct guard guard;

/* Start the guard's thread. Returns NULL with a reason in @err. */
guard *guard_start(double request_seconds, char *err, size_t errlen);

/* Stop the thread and free the guard; call after MHD_stop_daemon. NULL is
 * fine. */
void guard_stop(guard *g);

/* MHD_OPTION_NOTIFY_CONNECTION's callback (@cls: the guard). */
void guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code);

/* The request on @conn has arrived whole and is being answered (@answering
 * 1), or its answer is done and the next request's deadline starts (0). */
void guard_answering(guard *g, struct MHD_Connection *conn, int answering);

#endif
