/* Error codes and the thread-local detail message behind acp_last_error(). */
#ifndef ACP_ERROR_H
#define ACP_ERROR_H

#include "async_platform.h"

/* Record a detail message for this thread and return @code, so that callers
 * can write `return error_set(ACP_EINVAL, "...", ...);`. */
int error_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current detail message with "<prefix>: " and return @code. */
int error_prefix(int code, const char *prefix);

/* An error as a value, for the steps inside one API call. The thread's
 * detail message is the API's answer, but a step after a failure (cleaning
 * up, logging, looking again) may overwrite it: so the steps hand the
 * failure up in one of these, and the API function sets the thread's
 * message from it once, as it returns (error_raise). */
#define ERROR_MESSAGE_MAX 1024
typedef struct error_info {
    int code; /* 0 or an ACP_E* code */
    char message[ERROR_MESSAGE_MAX];
} error_info;

/* Record @code and the formatted message in @e; returns @code. */
int error_info_set(error_info *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record @code with the detail message of this thread as it is now
 * (acp_last_error()), for a failure of a function that reports through it;
 * returns @code. */
int error_info_take(error_info *e, int code);

/* Prefix @e's message with "<prefix>: " (the code's description when the
 * message is empty), as error_prefix does; returns @e's code. */
int error_info_prefix(error_info *e, const char *prefix);

/* Set this thread's detail message to @e's; returns @e's code. */
int error_raise(const error_info *e);

/* The text of errno value @errnum for library threads, where plain
 * strerror is not thread-safe: strerror_r() into a per-thread buffer (valid
 * until this thread's next call), so that two threads never share a result.
 * tests/unit/check_no_strerror.sh keeps src/ from calling strerror again. */
const char *error_strerror(int errnum);

#endif
