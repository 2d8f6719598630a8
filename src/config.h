/* Configuration defaults and validation. */
#ifndef ACP_CONFIG_H
#define ACP_CONFIG_H

#include <stdbool.h>

#include "async_platform.h"

/* Runs of a job whose process keeps dying before it is failed; also what a
 * config.max_attempts of 0 means. */
#define CONFIG_DEFAULT_MAX_ATTEMPTS 3
/* config.result_retry_seconds when 0. */
#define CONFIG_RESULT_RETRY_DEFAULT 300

/* True when @name is 1..@max characters of [A-Za-z0-9_.-] and not "." or "..":
 * the rule for S3 file names (docs/compatibility.adoc, S3 layout) and queue ids. */
bool config_name_is_safe(const char *name, size_t max);

#endif
