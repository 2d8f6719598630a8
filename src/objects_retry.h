/* When and how the workspace operations (objects.c) try an S3 request
 * again, and the error a failed request leaves: above the transport
 * (transport.h), so that every transport, the fake one included, gets the
 * same retries, back-off and patience. */
#ifndef ACP_OBJECTS_RETRY_H
#define ACP_OBJECTS_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>

#include "log.h"
#include "transport.h"

/* Retries after the first attempt outside objects_patience_begin/end. */
#define OBJECTS_RETRIES 3

/* Until objects_patience_end(), this thread's calls retry transient
 * failures (connection refused or reset, timeouts, name lookup, 5xx,
 * SlowDown, unknown HTTP errors such as 429) with exponential back-off and
 * jitter for up to @seconds after a request first fails, instead of about
 * 2 s. Past that the call fails with ACP_ESTORAGE, "S3 <endpoint>
 * unreachable for <seconds> s: ...". Permanent errors (403, 404, 400) fail
 * at once as always. When *@cancel (may be NULL) is raised, a retrying call
 * gives up within 100 ms with ACP_ESHUTDOWN. */
void objects_patience_begin(unsigned seconds, const atomic_bool *cancel);
void objects_patience_end(void);

/* After failed attempt @attempt (0-based) of @method on @key with @outcome:
 * whether to try again. Sleeps the back-off first and logs the failure. */
bool objects_retry_again(const transport *t, const logger *log, const transport_outcome *outcome,
                         int attempt, const char *method, const char *key);

/* Record the failure @outcome of @method on @key as the thread's error and
 * return its ACP_E* code. */
int objects_retry_fail(const transport *t, const transport_outcome *outcome, const char *method,
                       const char *key);

#endif
