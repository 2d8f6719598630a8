#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *level_name(acp_log_level level)
{
    switch (level) {
    case ACP_LOG_DEBUG:
        return "debug";
    case ACP_LOG_INFO:
        return "info";
    case ACP_LOG_WARN:
        return "warn";
    case ACP_LOG_ERROR:
        return "error";
    }
    return "?";
}

void log_emit(const logger *lg, acp_log_level level, const char *fmt, ...)
{
    acp_log_level threshold = lg ? lg->level : ACP_LOG_INFO;
    if (level < threshold)
        return;
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (lg && lg->fn) {
        lg->fn(lg->userdata, level, message);
        return;
    }
    struct timespec now;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line: stdio locks the stream, so lines from several
     * threads do not interleave. */
    fprintf(stderr, "%s.%03ldZ async-platform %s: %s\n", stamp, now.tv_nsec / 1000000L,
            level_name(level), message);
}
