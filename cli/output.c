/* What acp shows people: error lines, aligned tables, times relative to
 * now, sizes, and progress bars redrawn in place on a terminal. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

bool opt_json;

void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("acp: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (acp --help for usage)\n", stderr);
    va_end(ap);
    exit(EXIT_USAGE);
}

long option_long(const char *opt, const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end)
        die_usage("%s: expected an integer, got '%s'", opt, text);
    return v;
}

double option_seconds(const char *opt, const char *text)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < 0)
        die_usage("%s: expected a number of seconds, got '%s'", opt, text);
    return v;
}

void error_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    live_line_end();
    fputs("acp: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double parse_time(const char *iso)
{
    if (!iso)
        return -1;
    struct tm tm = {0};
    const char *rest = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return -1;
    double frac = 0;
    if (*rest == '.') {
        char *end;
        frac = strtod(rest, &end);
        rest = end;
    }
    if (*rest != 'Z')
        return -1;
    return (double)timegm(&tm) + frac;
}

void relative_time(double when, double now, char *out, size_t size)
{
    double d = now - when;
    bool future = d < 0;
    double a = fabs(d);
    char amount[32];
    if (a < 1) {
        snprintf(out, size, "just now");
        return;
    }
    if (a < 60)
        snprintf(amount, sizeof amount, "%.0f s", floor(a));
    else if (a < 3600)
        snprintf(amount, sizeof amount, "%.0f min", floor(a / 60));
    else if (a < 86400)
        snprintf(amount, sizeof amount, "%.0f h", floor(a / 3600));
    else
        snprintf(amount, sizeof amount, "%.0f days", floor(a / 86400));
    snprintf(out, size, future ? "in %s" : "%s ago", amount);
}

void human_size(long long bytes, char *out, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(out, size, "%lld B", bytes);
        return;
    }
    double v = (double)bytes;
    int u = -1;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(out, size, "%.1f %s", v, units[u]);
}

void progress_bar(double done, double total, int width, char *out, size_t size)
{
    if (total <= 0) {
        snprintf(out, size, "%g done", done);
        return;
    }
    double frac = done / total;
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    if (width > 100)
        width = 100;
    char bar[101];
    int filled = (int)(frac * width);
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[width] = '\0';
    snprintf(out, size, "[%s] %3d%%", bar, (int)(frac * 100));
}

static bool live_shown;

void live_line(const char *text)
{
    if (!isatty(STDERR_FILENO))
        return;
    /* \r and erase to the end of the line: the bar is redrawn in place. */
    fprintf(stderr, "\r%s\033[K", text);
    fflush(stderr);
    live_shown = true;
}

void live_line_end(void)
{
    if (!live_shown)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    live_shown = false;
}

/* ---- tables ---- */

void table_init(struct table *t, size_t cols, const char *const *header)
{
    t->cols = cols;
    t->rows = 0;
    t->cells = NULL;
    table_add(t, header);
}

void table_add(struct table *t, const char *const *row)
{
    char **cells = realloc(t->cells, (t->rows + 1) * t->cols * sizeof *cells);
    if (!cells) {
        fputs("acp: out of memory\n", stderr);
        exit(EXIT_ERROR);
    }
    t->cells = cells;
    for (size_t i = 0; i < t->cols; i++)
        cells[t->rows * t->cols + i] = strdup(row[i] ? row[i] : "-");
    t->rows++;
}

/* Display width of UTF-8 text: counts code points, not bytes, so that a
 * queue name with accents does not shift its row. */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

void table_print(const struct table *t, FILE *out)
{
    size_t *width = calloc(t->cols, sizeof *width);
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t w = text_width(t->cells[r * t->cols + c]);
            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *cell = t->cells[r * t->cols + c];
            bool last = c + 1 == t->cols;
            fputs(cell, out);
            if (!last)
                for (size_t pad = text_width(cell); pad < width[c] + 2; pad++)
                    fputc(' ', out);
        }
        fputc('\n', out);
    }
    free(width);
}

void table_free(struct table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->rows = 0;
}

/* ---- JSON ---- */

const char *jstr(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

void print_json(json_object *o)
{
    puts(
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}
