#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MESSAGE_MAX ERROR_MESSAGE_MAX

/* A fixed per-thread buffer: nothing to allocate, so recording an error never
 * fails and nothing leaks when a thread exits. */
static _Thread_local char last_message[MESSAGE_MAX];

static const char *const descriptions[] = {
    [0] = "success",
    [-ACP_EINVAL] = "invalid argument",
    [-ACP_ENOMEM] = "out of memory",
    [-ACP_ENOTFOUND] = "job not found",
    [-ACP_EUNOWNED] = "job is owned by another service",
    [-ACP_ECONFLICT] = "conflict with the job's state or owner",
    [-ACP_EBUSY] = "job is running",
    [-ACP_EDB] = "database error",
    [-ACP_EBROKER] = "message broker error",
    [-ACP_ESTORAGE] = "object storage error",
    [-ACP_EIO] = "local file system error",
    [-ACP_EVERSION] = "unsupported structure version",
    [-ACP_ENOQUEUE] = "unknown queue",
    [-ACP_ESHUTDOWN] = "platform is shutting down",
    [-ACP_ETOOBIG] = "input too large",
    [-ACP_EUSER] = "a callback failed",
};

const char *acp_strerror(int code)
{
    if (code > 0 || -code >= (int)(sizeof descriptions / sizeof descriptions[0]))
        return "unknown error code";
    return descriptions[-code];
}

const char *error_strerror(int errnum)
{
    static _Thread_local char text[128];
    /* The GNU strerror_r (_GNU_SOURCE): it returns either a static string
     * or @text. */
    return strerror_r(errnum, text, sizeof text);
}

const char *acp_last_error(void)
{
    return last_message[0] ? last_message : "no error";
}

int error_set(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return code;
}

int error_prefix(int code, const char *prefix)
{
    char saved[MESSAGE_MAX];
    const char *old = last_message[0] ? last_message : acp_strerror(code);
    size_t old_len = strnlen(old, MESSAGE_MAX - 1);
    memcpy(saved, old, old_len);

    int n = snprintf(last_message, sizeof last_message, "%s: ", prefix);
    if (n < 0 || (size_t)n >= sizeof last_message - 1)
        return code; /* the prefix alone fills the buffer */
    size_t room = sizeof last_message - 1 - (size_t)n;
    size_t copy = old_len < room ? old_len : room;
    memcpy(last_message + n, saved, copy);
    last_message[(size_t)n + copy] = '\0';
    return code;
}

int error_info_set(error_info *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return e->code = code;
}

int error_info_take(error_info *e, int code)
{
    return error_info_set(e, code, "%s", acp_last_error());
}

int error_info_prefix(error_info *e, const char *prefix)
{
    char old[sizeof e->message];
    snprintf(old, sizeof old, "%s", e->message[0] ? e->message : acp_strerror(e->code));
    return error_info_set(e, e->code, "%s: %s", prefix, old);
}

int error_raise(const error_info *e)
{
    return error_set(e->code, "%s", e->message);
}
