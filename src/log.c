#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"

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
    struct tm tm;
    int micros = 0;
    char stamp[32] = "0000-00-00T00:00:00";
    if (clock_utc(clock_wall_us(), &tm, &micros))
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line: stdio locks the stream, so lines from several
     * threads do not interleave. */
    fprintf(stderr, "%s.%03dZ async-platform %s: %s\n", stamp, micros / 1000, level_name(level),
            message);
}
