#include "jobctl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JOBCTL_US 1000000LL

static const char *const jobctl_members[] = {"priority",   "max_attempts",  "timeout_seconds",
                                             "not_before", "delay_seconds", NULL};

int jobctl_is_member(const char *key)
{
    for (const char *const *m = jobctl_members; *m; m++)
        if (strcmp(*m, key) == 0)
            return 1;
    return 0;
}

int jobctl_fail(const char **field, const char *name, char *msg, size_t msglen, const char *fmt,
                ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    *field = name;
    return -1;
}

/* An integer member in min..max; 1 when it is there (not absent or null). */
static int jobctl_int(json_object *body, const char *name, long min, long max, long *out,
                      const char **field, char *msg, size_t msglen)
{
    json_object *value;
    if (!json_object_object_get_ex(body, name, &value) || !value)
        return 0;
    if (!json_object_is_type(value, json_type_int))
        return jobctl_fail(field, name, msg, msglen, "%s: expected an integer in %ld..%ld", name,
                           min, max);
    int64_t n = json_object_get_int64(value);
    if (n < min || n > max)
        return jobctl_fail(field, name, msg, msglen, "%s: %lld is outside %ld..%ld", name,
                           (long long)n, min, max);
    *out = (long)n;
    return 1;
}

/* Days since 1970-01-01 of a date of the proleptic Gregorian calendar. */
static int64_t jobctl_days(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* @n digits at @p as a number, or -1 when one is not a digit. */
static int jobctl_digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

int jobctl_parse_time(const char *text, int64_t *us)
{
    static const int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = text;
    if (strlen(p) < 20)
        return -1;
    int year = jobctl_digits(p, 4), month = jobctl_digits(p + 5, 2), day = jobctl_digits(p + 8, 2);
    int hour = jobctl_digits(p + 11, 2), minute = jobctl_digits(p + 14, 2);
    int second = jobctl_digits(p + 17, 2);
    if (year < 0 || p[4] != '-' || month < 1 || month > 12 || p[7] != '-' || day < 1 ||
        day > month_days[month - 1] || (p[10] != 'T' && p[10] != 't') || hour < 0 || hour > 23 ||
        p[13] != ':' || minute < 0 || minute > 59 || p[16] != ':' || second < 0 || second > 60)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return -1;
    p += 19;
    int64_t fraction = 0;
    if (*p == '.') {
        int n = 0;
        int64_t scale = 100000;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            fraction += (*p - '0') * scale;
            scale /= 10;
        }
        if (n == 0)
            return -1;
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh = jobctl_digits(p + 1, 2);
        int om = oh >= 0 && p[3] == ':' ? jobctl_digits(p + 4, 2) : -1;
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        offset = (*p == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    int64_t seconds = jobctl_days(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    *us = (seconds - offset) * JOBCTL_US + fraction;
    return 0;
}

static int jobctl_when(json_object *body, int64_t now_us, acp_submission *sub, const char **field,
                       char *msg, size_t msglen)
{
    json_object *not_before = NULL, *delay = NULL;
    json_object_object_get_ex(body, "not_before", &not_before);
    json_object_object_get_ex(body, "delay_seconds", &delay);
    if (not_before && delay)
        return jobctl_fail(field, "delay_seconds", msg, msglen,
                           "delay_seconds: give either not_before or delay_seconds, not both");
    if (not_before) {
        const char *text = json_object_get_string(not_before);
        int64_t us;
        if (!json_object_is_type(not_before, json_type_string) ||
            strlen(text) != (size_t)json_object_get_string_len(not_before) ||
            jobctl_parse_time(text, &us) != 0)
            return jobctl_fail(field, "not_before", msg, msglen,
                               "not_before: expected an RFC 3339 date-time with a time zone, "
                               "such as \"2026-12-03T18:00:00Z\"");
        /* The library checks the same bounds; here they name the member as
         * the client wrote it. */
        if (us > now_us + ACP_DELAY_MAX * JOBCTL_US)
            return jobctl_fail(field, "not_before", msg, msglen,
                               "not_before: %s is more than %d days ahead", text,
                               ACP_DELAY_MAX / 86400);
        if (us < now_us - ACP_NOT_BEFORE_PAST_MAX * JOBCTL_US)
            return jobctl_fail(field, "not_before", msg, msglen,
                               "not_before: %s is more than %d hours ago (a time in the past "
                               "within that means now)",
                               text, ACP_NOT_BEFORE_PAST_MAX / 3600);
        sub->not_before = us;
    }
    if (delay) {
        double seconds = json_object_get_double(delay);
        if (!json_object_is_type(delay, json_type_int) &&
            !json_object_is_type(delay, json_type_double))
            return jobctl_fail(field, "delay_seconds", msg, msglen,
                               "delay_seconds: expected a number of seconds in 0..%d",
                               ACP_DELAY_MAX);
        if (!isfinite(seconds) || seconds < 0 || seconds > ACP_DELAY_MAX)
            return jobctl_fail(
                field, "delay_seconds", msg, msglen, "delay_seconds: %s is outside 0..%d (%d days)",
                json_object_to_json_string(delay), ACP_DELAY_MAX, ACP_DELAY_MAX / 86400);
        sub->delay_ms = (uint64_t)llround(seconds * 1000);
    }
    return 0;
}

int jobctl_parse(json_object *body, int64_t now_us, acp_submission *sub, const char **field,
                 char *msg, size_t msglen)
{
    /* A member given as null counts as left out (json-c reads it as a NULL
     * object): the defaults apply. */
    long n;
    int rc =
        jobctl_int(body, "priority", ACP_PRIORITY_MIN, ACP_PRIORITY_MAX, &n, field, msg, msglen);
    if (rc > 0)
        sub->priority = (int)n;
    if (rc >= 0 && (rc = jobctl_int(body, "max_attempts", 1, ACP_MAX_ATTEMPTS_MAX, &n, field, msg,
                                    msglen)) > 0)
        sub->max_attempts = (unsigned)n;
    if (rc >= 0 &&
        (rc = jobctl_int(body, "timeout_seconds", 1, ACP_TIMEOUT_MAX, &n, field, msg, msglen)) > 0)
        sub->timeout_seconds = (unsigned)n;
    if (rc < 0)
        return -1;
    return jobctl_when(body, now_us, sub, field, msg, msglen);
}

const char *jobctl_field_of(const char *detail)
{
    static const struct {
        const char *library, *member;
    } names[] = {
        {"submission.priority", "priority"},
        {"submission.max_attempts", "max_attempts"},
        {"submission.timeout_seconds", "timeout_seconds"},
        {"submission.not_before", "not_before"},
        {"submission.delay_ms", "delay_seconds"},
    };
    for (size_t i = 0; detail && i < sizeof names / sizeof names[0]; i++)
        if (strstr(detail, names[i].library))
            return names[i].member;
    return NULL;
}
