/* The commands about jobs: submit, status, list, wait, cancel, expire and
 * delete. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define POLL_INTERVAL_S 0.5
/* Pages of 100: a first screenful comes quickly, and more follow. */
#define PAGE_SIZE     100
#define DEFAULT_LIMIT 50

const char *job_path(char *out, size_t size, const char *id, const char *suffix)
{
    /* An id is 32 hex characters; anything else would change the path, so
     * it is escaped and left for the server to refuse with field "id". */
    char *escaped = curl_easy_escape(NULL, id, 0);
    snprintf(out, size, "/jobs/%s%s", escaped ? escaped : "", suffix);
    curl_free(escaped);
    return out;
}

static bool status_is_final(const char *status)
{
    return status && (strcmp(status, "complete") == 0 || strcmp(status, "failed") == 0 ||
                      strcmp(status, "cancelled") == 0 || strcmp(status, "expired") == 0);
}

static bool status_is_failure(const char *status)
{
    return status && (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0);
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- showing a job ---- */

static bool job_progress(json_object *job, double *done, double *total, const char **text)
{
    json_object *p, *v;
    if (!json_object_object_get_ex(job, "progress", &p) ||
        !json_object_is_type(p, json_type_object))
        return false;
    *done = json_object_object_get_ex(p, "done", &v) ? json_object_get_double(v) : 0;
    *total = json_object_object_get_ex(p, "total", &v) && v ? json_object_get_double(v) : 0;
    *text = jstr(p, "text");
    return true;
}

static void show_time(const char *label, const char *iso, double now)
{
    double t = parse_time(iso);
    if (t < 0)
        return;
    char rel[48], abs[64];
    relative_time(t, now, rel, sizeof rel);
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(abs, sizeof abs, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("%-10s  %s (%s)\n", label, abs, rel);
}

static void show_job(json_object *job)
{
    double now = now_seconds();
    json_object *v;
    printf("%-10s  %s\n", "id", jstr(job, "id") ? jstr(job, "id") : "-");
    const char *status = jstr(job, "status");
    bool cancelling =
        json_object_object_get_ex(job, "cancel_requested", &v) && json_object_get_boolean(v);
    printf("%-10s  %s%s\n", "status", status ? status : "-", cancelling ? " (cancelling)" : "");
    printf("%-10s  %s\n", "queue", jstr(job, "queue") ? jstr(job, "queue") : "-");
    if (json_object_object_get_ex(job, "queue_position", &v) && v)
        printf("%-10s  %d\n", "position", json_object_get_int(v));
    if (json_object_object_get_ex(job, "priority", &v) && v)
        printf("%-10s  %d\n", "priority", json_object_get_int(v));
    json_object *max;
    if (json_object_object_get_ex(job, "attempts", &v) && v &&
        json_object_object_get_ex(job, "max_attempts", &max) && max)
        printf("%-10s  %d of %d\n", "attempts", json_object_get_int(v), json_object_get_int(max));
    if (json_object_object_get_ex(job, "timeout_seconds", &v) && v)
        printf("%-10s  %d s per attempt\n", "timeout", json_object_get_int(v));
    show_time("created", jstr(job, "created"), now);
    if (status && strcmp(status, "queued") == 0)
        show_time("next run", jstr(job, "next_run"), now);
    show_time("started", jstr(job, "grabbed"), now);
    show_time("finished", jstr(job, "finished"), now);
    show_time("accessed", jstr(job, "last_accessed"), now);
    double done, total;
    const char *text;
    if (job_progress(job, &done, &total, &text)) {
        char bar[160] = "";
        if (total > 0 && isatty(STDOUT_FILENO))
            progress_bar(done, total, 30, bar, sizeof bar);
        if (total > 0)
            printf("%-10s  %s%s%g of %g%s%s\n", "progress", bar, *bar ? " " : "", done, total,
                   text ? " " : "", text ? text : "");
        else
            printf("%-10s  %g%s%s\n", "progress", done, text ? " " : "", text ? text : "");
    }
    if (jstr(job, "last_error"))
        printf("%-10s  %s\n", "error", jstr(job, "last_error"));
}

/* GET /jobs/{id}: the job's document, or NULL with *rc set. */
static json_object *fetch_job(struct client *c, const char *id, const char *what, int *rc)
{
    char path[256];
    struct reply r = {0};
    *rc = client_call(c, "GET", job_path(path, sizeof path, id, ""), NULL, &r);
    if (*rc == EXIT_OK)
        *rc = reply_exit(&r, what);
    json_object *doc = NULL;
    if (*rc == EXIT_OK) {
        doc = reply_json(&r, what);
        if (!doc)
            *rc = EXIT_ERROR;
    }
    reply_free(&r);
    return doc;
}

static void need_operands(int have, int want, const char *usage)
{
    if (have != want)
        die_usage("usage: acp %s", usage);
}

static void no_options(int key, const char *arg, void *ctx)
{
    (void)key;
    (void)arg;
    (void)ctx;
}

int cmd_status(int argc, char **argv)
{
    int first = parse_command_options(argc, argv, "", NULL, no_options, NULL);
    need_operands(argc - first, 1, "status ID");
    int rc;
    json_object *job = fetch_job(cli_client(), argv[first], "status", &rc);
    if (!job)
        return rc;
    if (opt_json)
        print_json(job);
    else
        show_job(job);
    json_object_put(job);
    return EXIT_OK;
}

/* ---- wait ---- */

static void show_live_progress(json_object *job)
{
    double done, total;
    const char *text;
    char line[256], bar[160];
    const char *status = jstr(job, "status");
    if (status && strcmp(status, "in-progress") == 0 && job_progress(job, &done, &total, &text) &&
        total > 0) {
        progress_bar(done, total, 30, bar, sizeof bar);
        snprintf(line, sizeof line, "%.12s  %s %g of %g", jstr(job, "id"), bar, done, total);
    } else {
        snprintf(line, sizeof line, "%.12s  %s", jstr(job, "id") ? jstr(job, "id") : "",
                 status ? status : "");
    }
    live_line(line);
}

int wait_jobs(struct client *c, char **ids, int n, double timeout, bool as_array)
{
    json_object **final = calloc((size_t)n, sizeof *final);
    double deadline = timeout > 0 ? now_seconds() + timeout : 0;
    int rc = EXIT_OK, left = n;
    while (left > 0) {
        for (int i = 0; i < n && rc == EXIT_OK; i++) {
            if (final[i])
                continue;
            json_object *job = fetch_job(c, ids[i], "wait", &rc);
            if (!job)
                break;
            const char *status = jstr(job, "status");
            if (!status_is_final(status)) {
                if (!opt_json && n == 1)
                    show_live_progress(job);
                json_object_put(job);
                continue;
            }
            final[i] = job;
            left--;
            live_line_end();
            if (!opt_json)
                printf("%s %s%s%s\n", jstr(job, "id"), status, jstr(job, "last_error") ? ": " : "",
                       jstr(job, "last_error") ? jstr(job, "last_error") : "");
            fflush(stdout);
        }
        if (rc != EXIT_OK || left == 0)
            break;
        if (deadline > 0 && now_seconds() >= deadline) {
            live_line_end();
            error_line("wait: %d of %d job%s still running after %g s", left, n, n == 1 ? "" : "s",
                       timeout);
            rc = EXIT_WAIT_TIMEOUT;
            break;
        }
        sleep_seconds(POLL_INTERVAL_S);
    }
    live_line_end();
    if (rc == EXIT_OK) {
        json_object *all = json_object_new_array();
        for (int i = 0; i < n; i++) {
            if (status_is_failure(jstr(final[i], "status")))
                rc = EXIT_JOB_FAILED;
            json_object_array_add(all, json_object_get(final[i]));
        }
        if (opt_json)
            print_json(as_array ? all : final[0]);
        json_object_put(all);
    }
    for (int i = 0; i < n; i++)
        json_object_put(final[i]);
    free(final);
    return rc;
}

struct wait_opts {
    double timeout;
};

static void wait_option(int key, const char *arg, void *ctx)
{
    struct wait_opts *o = ctx;
    if (key == 't')
        o->timeout = option_seconds("--timeout", arg);
}

int cmd_wait(int argc, char **argv)
{
    static const struct option opts[] = {{"timeout", required_argument, NULL, 't'}, {0}};
    struct wait_opts o = {0};
    int first = parse_command_options(argc, argv, "", opts, wait_option, &o);
    if (first >= argc)
        die_usage("usage: acp wait ID... [--timeout S]");
    return wait_jobs(cli_client(), argv + first, argc - first, o.timeout, true);
}

/* ---- cancel, expire, delete ---- */

int cmd_simple_post(int argc, char **argv)
{
    const char *verb = argv[0]; /* cancel or expire */
    int first = parse_command_options(argc, argv, "", NULL, no_options, NULL);
    char usage[32], suffix[32], path[256];
    snprintf(usage, sizeof usage, "%s ID", verb);
    need_operands(argc - first, 1, usage);
    snprintf(suffix, sizeof suffix, "/%s", verb);
    struct reply r = {0};
    int rc = client_call(cli_client(), "POST", job_path(path, sizeof path, argv[first], suffix),
                         NULL, &r);
    if (rc == EXIT_OK)
        rc = reply_exit(&r, verb);
    json_object *doc = rc == EXIT_OK ? reply_json(&r, verb) : NULL;
    if (rc == EXIT_OK && !doc)
        rc = EXIT_ERROR;
    if (doc && opt_json) {
        print_json(doc);
    } else if (doc) {
        json_object *v;
        const char *status = jstr(doc, "status");
        if (json_object_object_get_ex(doc, "cancel_requested", &v) && json_object_get_boolean(v))
            printf("%s: cancel requested (the job is %s; it stops within seconds)\n", argv[first],
                   status ? status : "running");
        else
            printf("%s: %s\n", argv[first], status ? status : verb);
    }
    json_object_put(doc);
    reply_free(&r);
    return rc;
}

int cmd_delete(int argc, char **argv)
{
    int first = parse_command_options(argc, argv, "", NULL, no_options, NULL);
    need_operands(argc - first, 1, "delete ID");
    char path[256];
    struct reply r = {0};
    int rc =
        client_call(cli_client(), "DELETE", job_path(path, sizeof path, argv[first], ""), NULL, &r);
    if (rc == EXIT_OK)
        rc = reply_exit(&r, "delete");
    if (rc == EXIT_OK) {
        /* 204 has no body: the document says what happened. */
        if (opt_json) {
            json_object *doc = json_object_new_object();
            json_object_object_add(doc, "id", json_object_new_string(argv[first]));
            json_object_object_add(doc, "deleted", json_object_new_boolean(1));
            print_json(doc);
            json_object_put(doc);
        } else {
            printf("%s: deleted\n", argv[first]);
        }
    }
    reply_free(&r);
    return rc;
}

/* ---- list ---- */

struct list_opts {
    const char *status, *queue;
    long limit;
};

static void list_option(int key, const char *arg, void *ctx)
{
    struct list_opts *o = ctx;
    if (key == 's')
        o->status = arg;
    else if (key == 'q')
        o->queue = arg;
    else if (key == 'l') {
        o->limit = option_long("--limit", arg);
        if (o->limit < 1)
            die_usage("--limit: expected 1 or more, got %ld", o->limit);
    }
}

static void add_param(struct buffer *b, const char *name, const char *value)
{
    char *escaped = curl_easy_escape(NULL, value, 0);
    buffer_append(b, b->len ? "&" : "?", 1);
    buffer_append(b, name, strlen(name));
    buffer_append(b, "=", 1);
    buffer_append(b, escaped, strlen(escaped));
    curl_free(escaped);
}

static void list_row(struct table *t, json_object *job, double now)
{
    char created[48] = "-", finished[48] = "-", attempts[32] = "-", priority[16] = "-";
    json_object *v, *max;
    double when = parse_time(jstr(job, "created"));
    if (when >= 0)
        relative_time(when, now, created, sizeof created);
    when = parse_time(jstr(job, "finished"));
    if (when >= 0)
        relative_time(when, now, finished, sizeof finished);
    if (json_object_object_get_ex(job, "attempts", &v) && v &&
        json_object_object_get_ex(job, "max_attempts", &max) && max)
        snprintf(attempts, sizeof attempts, "%d/%d", json_object_get_int(v),
                 json_object_get_int(max));
    if (json_object_object_get_ex(job, "priority", &v) && v)
        snprintf(priority, sizeof priority, "%d", json_object_get_int(v));
    const char *row[] = {
        jstr(job, "id"), jstr(job, "status"), jstr(job, "queue"), priority, attempts, created,
        finished};
    table_add(t, row);
}

int cmd_list(int argc, char **argv)
{
    static const struct option opts[] = {{"status", required_argument, NULL, 's'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {0}};
    struct list_opts o = {.limit = DEFAULT_LIMIT};
    int first = parse_command_options(argc, argv, "", opts, list_option, &o);
    if (first != argc)
        die_usage("list takes no operands, got '%s'", argv[first]);
    struct client *c = cli_client();
    json_object *all = json_object_new_array();
    char *cursor = NULL;
    int rc = EXIT_OK;
    /* Pages until --limit jobs or the last page. */
    while ((long)json_object_array_length(all) < o.limit) {
        long want = o.limit - (long)json_object_array_length(all);
        char limit[24];
        snprintf(limit, sizeof limit, "%ld", want < PAGE_SIZE ? want : PAGE_SIZE);
        struct buffer q = {0};
        if (o.status)
            add_param(&q, "status", o.status);
        if (o.queue)
            add_param(&q, "queue", o.queue);
        add_param(&q, "limit", limit);
        if (cursor)
            add_param(&q, "cursor", cursor);
        struct buffer path = {0};
        buffer_append(&path, "/jobs", 5);
        buffer_append(&path, q.data, q.len);
        buffer_free(&q);
        struct reply r = {0};
        rc = client_call(c, "GET", path.data, NULL, &r);
        buffer_free(&path);
        if (rc == EXIT_OK)
            rc = reply_exit(&r, "list");
        json_object *page = rc == EXIT_OK ? reply_json(&r, "list") : NULL;
        reply_free(&r);
        if (rc == EXIT_OK && !page)
            rc = EXIT_ERROR;
        if (rc != EXIT_OK)
            break;
        json_object *jobs;
        if (json_object_object_get_ex(page, "jobs", &jobs) &&
            json_object_is_type(jobs, json_type_array))
            for (size_t i = 0; i < json_object_array_length(jobs); i++)
                json_object_array_add(all, json_object_get(json_object_array_get_idx(jobs, i)));
        free(cursor);
        cursor = jstr(page, "next_cursor") ? strdup(jstr(page, "next_cursor")) : NULL;
        json_object_put(page);
        if (!cursor)
            break;
    }
    free(cursor);
    if (rc == EXIT_OK && opt_json) {
        print_json(all);
    } else if (rc == EXIT_OK) {
        static const char *const header[] = {"ID",       "STATUS",  "QUEUE",   "PRIORITY",
                                             "ATTEMPTS", "CREATED", "FINISHED"};
        struct table t;
        table_init(&t, 7, header);
        double now = now_seconds();
        for (size_t i = 0; i < json_object_array_length(all); i++)
            list_row(&t, json_object_array_get_idx(all, i), now);
        if (t.rows > 1)
            table_print(&t, stdout);
        else
            puts("no jobs");
        table_free(&t);
    }
    json_object_put(all);
    return rc;
}
