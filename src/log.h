/* Logging through the host's callback (acp_config.log) or to stderr. */
#ifndef ACP_LOG_H
#define ACP_LOG_H

#include "async_platform.h"

typedef struct logger {
    acp_log_fn fn; /* NULL: write to stderr */
    void *userdata;
    acp_log_level level; /* messages below this level are dropped */
} logger;

/* Format and emit one message. Safe from any thread; @lg may be NULL (stderr,
 * level INFO). Messages are cut at 2 KiB. */
void log_emit(const logger *lg, acp_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(lg, ...) log_emit((lg), ACP_LOG_DEBUG, __VA_ARGS__)
#define log_info(lg, ...)  log_emit((lg), ACP_LOG_INFO, __VA_ARGS__)
#define log_warn(lg, ...)  log_emit((lg), ACP_LOG_WARN, __VA_ARGS__)
#define log_error(lg, ...) log_emit((lg), ACP_LOG_ERROR, __VA_ARGS__)

#endif
