/* Error codes and the thread-local detail message behind acp_last_error(). */
#ifndef ACP_ERROR_H
#define ACP_ERROR_H

#include "async_platform.h"

/* Record a detail message for this thread and return @code, so that callers
 * can write `return error_set(ACP_EINVAL, "...", ...);`. */
int error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current detail message with "<prefix>: " and return @code. */
int error_prefix(int code, const char *prefix);

/* The text of errno value @errnum for library threads, where plain
 * strerror is not thread-safe: strerror_r() into a per-thread buffer (valid
 * until this thread's next call), so that two threads never share a result.
 * tests/unit/check_no_strerror.sh keeps src/ from calling strerror again. */
const char *error_strerror(int errnum);

#endif
