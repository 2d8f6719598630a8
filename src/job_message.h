/* The job message that travels on "<queue>_jobs" (docs/compatibility.adoc,
 * RabbitMQ): pure functions, no connection involved. */
#ifndef ACP_JOB_MESSAGE_H
#define ACP_JOB_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "buf.h"

/* The largest job message: a config of ACP_JOB_CONFIG_MAX and its envelope. */
#define JOB_MESSAGE_MAX (ACP_JOB_CONFIG_MAX + 4096)

/* {"jobID":"<hex>","type":"","dispatched":"<ISO-8601, UTC,
 * Z>","attemptCount":0,"body":<config|null>} keys in this order; @config is JSON text (written
 * compactly) or NULL.
 * @now_us is the dispatch time in microseconds since the epoch. */
int job_message_format(buf *out, const acp_job_id *id, const char *config, int64_t now_us);

/* Parse a job message: all five keys present, jobID a 32-hex string, type
 * and dispatched strings, attemptCount an integer, body any JSON value or
 * null. *config gets the body as compact JSON text (malloc'd) or NULL for a
 * JSON null. ACP_EINVAL with a message naming the problem otherwise. */
int job_message_parse(const char *body, size_t len, acp_job_id *id, char **config);

#endif
