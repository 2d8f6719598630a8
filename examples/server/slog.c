#include "slog.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static acp_log_level slog_level = ACP_LOG_INFO;
/* Whole lines from concurrent threads must not interleave. */
static pthread_mutex_t slog_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const slog_names[] = {"debug", "info", "warn", "error"};

void slog_set_level(acp_log_level level)
{
    slog_level = level;
}

int slog_parse_level(const char *name, acp_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, slog_names[i]) == 0) {
            *out = (acp_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void slog_write(acp_log_level level, const char *origin, const char *message)
{
    if (level < slog_level)
        return;
    struct timespec now;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    const char *name = level >= ACP_LOG_DEBUG && level <= ACP_LOG_ERROR ? slog_names[level] : "?";
    pthread_mutex_lock(&slog_lock);
    fprintf(stderr, "%s.%03ldZ %-5s %s%s\n", stamp, now.tv_nsec / 1000000L, name, origin, message);
    fflush(stderr);
    pthread_mutex_unlock(&slog_lock);
}

void slog(acp_log_level level, const char *fmt, ...)
{
    if (level < slog_level)
        return;
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    slog_write(level, "", message);
}

void slog_library(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    slog_write(level, "acp: ", message);
}
