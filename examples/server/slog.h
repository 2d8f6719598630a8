/* The server's log: one line per message on stderr, with a UTC time stamp and
 * the level; shared by the server's own messages and the library's. */
#ifndef SERVER_SLOG_H
#define SERVER_SLOG_H

#include <async_platform.h>

/* Messages below @level are dropped; set once at start-up. */
void slog_set_level(acp_log_level level);

void slog(acp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An acp_log_fn for acp_config.log. */
void slog_library(void *userdata, acp_log_level level, const char *message);

/* "debug", "info", "warn" or "error" into @out; -1 for another name. */
int slog_parse_level(const char *name, acp_log_level *out);

#endif
