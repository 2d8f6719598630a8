/* Job control: the back-off of retries and the end a stopped attempt gets.
 * The public side (acp_cancel_job, acp_job_cancelled, acp_job_cancel_fd,
 * acp_job_fail_permanently) is in control.c too. */
#ifndef ACP_CONTROL_H
#define ACP_CONTROL_H

#include <stdbool.h>

#include "async_platform.h"
#include "store.h"

/* The delay before the attempt after @row's attempts-th failed one: drawn
 * at random below min(backoff_max_ms, backoff_base_ms x 2^(attempts-1))
 * ("full jitter", so that jobs failing together do not retry together). */
unsigned control_backoff_ms(const store_job *row);

/* Whether a failed attempt of @row is queued again: not @permanent, and
 * attempts left. */
bool control_retries(const store_job *row, bool permanent);

/* The message of an attempt stopped for @reason (ACP_CANCEL_TIMEOUT or
 * ACP_CANCEL_REQUESTED) of @row, in @buf. */
const char *control_stop_message(const store_job *row, int reason, char *buf, size_t size);

#endif
