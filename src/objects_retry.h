/* When and how the workspace operations (objects.c) try an S3 request
 * again, and the error a failed request leaves: above the transport
 * (transport.h), so that every transport, the fake one included, gets the
 * same retries, back-off and patience. */
#ifndef ACP_OBJECTS_RETRY_H
#define ACP_OBJECTS_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>

#include "async_platform.h"
#include "log.h"
#include "transport.h"

/* Until objects_patience_end(), this thread's calls retry transient
 * failures (connection refused or reset, timeouts, name lookup, 500, 502,
 * 503 SlowDown, 504) with exponential back-off and jitter for up to
 * @seconds after a request first fails, instead of client.retries times.
 * Past that the call fails with ACP_ESTORAGE, "S3 <endpoint> unreachable
 * for <seconds> s: ...". Permanent errors (every 4xx) fail at once as
 * always. When *@cancel (may be NULL) is raised, a retrying call
 * gives up within 100 ms with ACP_ESHUTDOWN. */
void objects_patience_begin(unsigned seconds, const atomic_bool *cancel);
void objects_patience_end(void);

/* After failed attempt @attempt (0-based) of @method on @key with @outcome:
 * whether to try again. Outside patience that is client.retries times at
 * most, each after objects_retry_delay_ms(). Sleeps the back-off first and
 * logs the failure. */
bool objects_retry_again(const transport *t, const logger *log, const acp_s3_client_config *client,
                         const transport_outcome *outcome, int attempt, const char *method,
                         const char *key);

/* The back-off before retry @attempt + 1: "full jitter", drawn at random
 * from 0..min(retry_max_ms, retry_base_ms x 2^attempt). */
unsigned objects_retry_delay_ms(const acp_s3_client_config *client, int attempt);

/* Record the failure @outcome of @method on @key as the thread's error and
 * return its ACP_E* code. */
int objects_retry_fail(const transport *t, const transport_outcome *outcome, const char *method,
                       const char *key);

#endif
