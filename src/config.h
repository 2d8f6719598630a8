/* Configuration defaults and validation. */
#ifndef ACP_CONFIG_H
#define ACP_CONFIG_H

#include <stdbool.h>

#include "async_platform.h"

/* Runs of a job whose process keeps dying before it is failed; also what a
 * config.max_attempts of 0 means. */
#define CONFIG_DEFAULT_MAX_ATTEMPTS 3
/* Defaults of config.cancel_grace_seconds and of a queue's retry back-off. */
#define CONFIG_DEFAULT_CANCEL_GRACE   10
#define CONFIG_DEFAULT_RETRY_BASE_MS  1000
#define CONFIG_DEFAULT_RETRY_MAX_MS   300000
/* config.result_retry_seconds when 0. */
#define CONFIG_RESULT_RETRY_DEFAULT 300

/* True when @name is 1..@max characters of [A-Za-z0-9_.-] and not "." or "..":
 * the rule for S3 file names (docs/compatibility.adoc, S3 layout) and queue ids. */
bool config_name_is_safe(const char *name, size_t max);

/* A configuration brought to this library's versions: the caller's fields,
 * read as the version it declares (acp_config and each queue), and the
 * defaults for fields of later versions. config.queues points to @queues,
 * which the copy owns; every other pointer is still the caller's. */
typedef struct config_copy {
    acp_config config;
    acp_queue_config *queues;
} config_copy;

/* Fill @out from @given. ACP_EINVAL (NULL), ACP_EVERSION (a version this
 * library does not know, or queues of different versions), ACP_ENOMEM. On
 * failure nothing is left to free; on success free with config_copy_free. */
int config_import(const acp_config *given, config_copy *out);
void config_copy_free(config_copy *copy); /* NULL is fine */

/* acp_config_validate's checks of a configuration of the current version
 * (from config_import). */
int config_check(const acp_config *config);

#endif
