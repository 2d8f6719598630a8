/* The listening connection: a PostgreSQL connection of its own, on a
 * thread of its own, LISTENing for cancellations (store.h,
 * STORE_CANCEL_CHANNEL), so that the process running a cancelled job hears
 * of it within a round trip instead of a lease renewal, and for job logs
 * (store_log.h, STORE_LOG_CHANNEL), so that acp_read_log calls following a
 * job wake when its log grows or it ends (logread.h). */
#ifndef ACP_LISTENER_H
#define ACP_LISTENER_H

#include <stdbool.h>

#include "async_platform.h"

typedef struct listener listener;

/* Start listening for @p (whose store must be PostgreSQL's: otherwise
 * nothing is started and 0 is returned, the lease renewal being the only
 * way cancellations arrive). A connection that fails or breaks is made
 * again, with back-off, in the background. ACP_ENOMEM when the thread
 * cannot start. */
int listener_start(acp_platform *p, listener **out);
/* Whether the calling thread is @l's (NULL: false). */
bool listener_is_current(const listener *l);
/* Stop the thread and close the connection. NULL is fine. */
void listener_stop(listener *l);

#endif
