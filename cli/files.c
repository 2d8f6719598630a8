/* A job's files and log: files, get (streamed to a temporary file that is
 * renamed once whole, so no partial file is ever left under the name) and
 * logs (read, or followed across dropped connections). */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long `logs -f` keeps trying to reach the server again after losing
 * it before giving up (exit 5). */
#define RECONNECT_FOR_S 60.0

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void no_options(int key, const char *arg, void *ctx)
{
    (void)key;
    (void)arg;
    (void)ctx;
}

/* ---- files ---- */

int cmd_files(int argc, char **argv)
{
    int first = parse_command_options(argc, argv, "", NULL, no_options, NULL);
    if (argc - first != 1)
        die_usage("usage: acp files ID");
    char path[256];
    struct reply r = {0};
    int rc = client_call(cli_client(), "GET", job_path(path, sizeof path, argv[first], "/files"),
                         NULL, &r);
    if (rc == EXIT_OK)
        rc = reply_exit(&r, "files");
    json_object *doc = rc == EXIT_OK ? reply_json(&r, "files") : NULL;
    reply_free(&r);
    if (rc == EXIT_OK && !doc)
        return EXIT_ERROR;
    if (rc != EXIT_OK)
        return rc;
    if (opt_json) {
        print_json(doc);
        json_object_put(doc);
        return EXIT_OK;
    }
    static const char *const header[] = {"NAME", "SIZE", "BYTES"};
    struct table t;
    table_init(&t, 3, header);
    json_object *files;
    if (json_object_object_get_ex(doc, "files", &files) &&
        json_object_is_type(files, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(files); i++) {
            json_object *f = json_object_array_get_idx(files, i), *size;
            long long bytes = json_object_object_get_ex(f, "size", &size)
                                  ? (long long)json_object_get_int64(size)
                                  : 0;
            char human[32], exact[32];
            human_size(bytes, human, sizeof human);
            snprintf(exact, sizeof exact, "%lld", bytes);
            const char *row[] = {jstr(f, "name"), human, exact};
            table_add(&t, row);
        }
    }
    if (t.rows > 1)
        table_print(&t, stdout);
    else
        puts("no files");
    table_free(&t);
    json_object_put(doc);
    return EXIT_OK;
}

/* ---- get ---- */

struct download {
    FILE *out;
    const char *name;
    bool failed, show;
    double last_drawn;
};

static bool write_chunk(const char *data, size_t len, void *ctx)
{
    struct download *d = ctx;
    if (fwrite(data, 1, len, d->out) != len) {
        error_line("get %s: write error: %s", d->name, strerror(errno));
        d->failed = true;
        return false;
    }
    return true;
}

static bool draw_download(long long now, long long total, void *ctx)
{
    struct download *d = ctx;
    if (interrupted)
        return false;
    double t = now_seconds();
    if (!d->show || (t - d->last_drawn < 0.1 && now != total))
        return true;
    d->last_drawn = t;
    char bar[160], got[32], all[32], line[256];
    human_size(now, got, sizeof got);
    if (total > 0) {
        human_size(total, all, sizeof all);
        progress_bar((double)now, (double)total, 30, bar, sizeof bar);
        snprintf(line, sizeof line, "%s %s %s of %s", d->name, bar, got, all);
    } else {
        snprintf(line, sizeof line, "%s %s", d->name, got);
    }
    live_line(line);
    return true;
}

struct get_opts {
    const char *output;
};

static void get_option(int key, const char *arg, void *ctx)
{
    if (key == 'o')
        ((struct get_opts *)ctx)->output = arg;
}

/* Downloads into a temporary file next to the target, renamed when the
 * whole file arrived: an interrupted or failed download leaves nothing. */
int cmd_get(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, {0}};
    struct get_opts o = {0};
    int first = parse_command_options(argc, argv, "o:", opts, get_option, &o);
    if (argc - first != 2)
        die_usage("usage: acp get ID NAME [-o PATH]");
    const char *id = argv[first], *name = argv[first + 1];
    const char *target = o.output;
    if (!target) {
        if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            die_usage("get: '%s' is not a plain file name; give -o PATH", name);
        target = name;
    }
    bool to_stdout = strcmp(target, "-") == 0;
    char *escaped = curl_easy_escape(NULL, name, 0);
    char suffix[1100], path[1300];
    snprintf(suffix, sizeof suffix, "/files/%s", escaped);
    curl_free(escaped);
    job_path(path, sizeof path, id, suffix);

    struct download d = {.name = name, .show = isatty(STDERR_FILENO)};
    char *tmp = NULL;
    if (to_stdout) {
        d.out = stdout;
    } else {
        /* dirname() and basename() may change their argument: a copy each. */
        char *dir_copy = strdup(target), *base_copy = strdup(target);
        size_t size = 2 * strlen(target) + 32;
        tmp = malloc(size);
        snprintf(tmp, size, "%s/.%s.acp-XXXXXX", dirname(dir_copy), basename(base_copy));
        free(dir_copy);
        free(base_copy);
        int fd = mkstemp(tmp);
        if (fd < 0 || !(d.out = fdopen(fd, "wb"))) {
            error_line("get: cannot create a file next to %s: %s", target, strerror(errno));
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            free(tmp);
            return EXIT_ERROR;
        }
    }
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct stream_opts so = {.sink = write_chunk, .ctx = &d, .progress = draw_download};
    struct reply r = {0};
    int rc = client_stream(cli_client(), path, &so, &r);
    live_line_end();
    if (rc == EXIT_OK)
        rc = reply_exit(&r, "get");
    else if (interrupted)
        error_line("get %s: interrupted", name);
    reply_free(&r);
    if (d.failed && rc == EXIT_OK)
        rc = EXIT_ERROR;
    if (to_stdout) {
        if (fflush(stdout) != 0 && rc == EXIT_OK) {
            error_line("get %s: write error: %s", name, strerror(errno));
            rc = EXIT_ERROR;
        }
    } else {
        bool ok = rc == EXIT_OK && fflush(d.out) == 0 && fsync(fileno(d.out)) == 0;
        if (fclose(d.out) != 0)
            ok = false;
        /* mkstemp made it 0600; a downloaded file gets the usual mode. */
        mode_t mask = umask(0);
        umask(mask);
        if (ok && (chmod(tmp, 0666 & ~mask) != 0 || rename(tmp, target) != 0)) {
            error_line("get: cannot write %s: %s", target, strerror(errno));
            ok = false;
        }
        if (!ok) {
            unlink(tmp);
            if (rc == EXIT_OK)
                rc = EXIT_ERROR;
        }
        free(tmp);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (interrupted)
        raise(SIGINT); /* the temporary file is gone: die as interrupted */
    return rc;
}

/* ---- logs ---- */

/* Counts the log's offsets in what a follow streams: the bytes received,
 * except that a "[... N bytes dropped ...]" line stands for N bytes. */
struct follow {
    long long offset;
    struct buffer line; /* the current line's start, to spot a marker */
    bool write_failed;
};

static void count_line(struct follow *f)
{
    unsigned long long n;
    char tail[8];
    if (f->line.len > 0 && f->line.data[0] == '[' &&
        sscanf(f->line.data, "[... %llu bytes dropped ...%7s", &n, tail) == 2 &&
        strcmp(tail, "]\n") == 0)
        f->offset += (long long)n - (long long)f->line.len;
    f->line.len = 0;
}

static bool follow_chunk(const char *data, size_t len, void *ctx)
{
    struct follow *f = ctx;
    if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0) {
        f->write_failed = true;
        return false;
    }
    f->offset += (long long)len;
    for (size_t i = 0; i < len; i++) {
        /* Only a line short enough to be a marker is kept. */
        if (f->line.len < 64)
            buffer_append(&f->line, data + i, 1);
        else
            f->line.data[0] = '\0';
        if (data[i] == '\n')
            count_line(f);
    }
    return true;
}

static bool print_chunk(const char *data, size_t len, void *ctx)
{
    (void)ctx;
    return fwrite(data, 1, len, stdout) == len;
}

static void sleep_a_second(void)
{
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
}

/* The log now, from offset 0, answer after answer (each holds at most
 * 1 MiB) until one brings nothing new. */
static int read_log(struct client *c, const char *id)
{
    long long offset = 0;
    for (;;) {
        char suffix[64], path[256];
        snprintf(suffix, sizeof suffix, "/log?offset=%lld", offset);
        struct stream_opts so = {.sink = print_chunk};
        struct reply r = {0};
        int rc = client_stream(c, job_path(path, sizeof path, id, suffix), &so, &r);
        if (rc == EXIT_OK)
            rc = reply_exit(&r, "logs");
        long long next = r.log_next;
        reply_free(&r);
        if (rc != EXIT_OK)
            return rc;
        if (next < 0 || next <= offset)
            return EXIT_OK;
        offset = next;
    }
}

/* Follows the log until the job ends. The stream may end without the job
 * having ended (the server stopped, a proxy cut it): then the plain read
 * from the counted offset says, through X-Log-Ended, whether it did, and
 * through X-Log-Next where to follow on from. */
/* A lost server is tried again each second for RECONNECT_FOR_S; returns
 * false when that time is over. */
static bool keep_trying(struct client *c, double *lost_since)
{
    if (*lost_since == 0) {
        *lost_since = now_seconds();
        fprintf(stderr, "acp: logs: lost the server; trying again for %.0f s\n", RECONNECT_FOR_S);
    } else if (now_seconds() - *lost_since > RECONNECT_FOR_S) {
        error_line("logs: server %s unreachable for %.0f s; giving up", c->base, RECONNECT_FOR_S);
        return false;
    }
    sleep_a_second();
    return true;
}

static int follow_log_at(struct client *c, const char *id, struct follow *f)
{
    double lost_since = 0;
    bool reached = false; /* a server never reached is not waited for */
    for (;;) {
        char suffix[64], path[256];
        long long before = f->offset;
        snprintf(suffix, sizeof suffix, "/log?follow=1&offset=%lld", f->offset);
        struct stream_opts so = {.sink = follow_chunk, .ctx = f, .no_timeout = true, .quiet = true};
        struct reply r = {0};
        client_stream(c, job_path(path, sizeof path, id, suffix), &so, &r);
        if (f->write_failed) {
            reply_free(&r);
            return EXIT_ERROR; /* stdout went away (a closed pipe) */
        }
        if (r.status != 0 && (r.status < 200 || r.status >= 300) && r.status < 500) {
            int rc = reply_exit(&r, "logs");
            reply_free(&r);
            return rc;
        }
        if (r.status == 0 && !reached) {
            error_line("server %s: %s", c->base, c->errbuf[0] ? c->errbuf : "unreachable");
            reply_free(&r);
            return EXIT_UNREACHABLE;
        }
        reached = true;
        /* The stream ended, whole or cut: the rest, and whether the job
         * ended, without following. */
        f->line.len = 0;
        snprintf(suffix, sizeof suffix, "/log?offset=%lld", f->offset);
        struct stream_opts plain = {.sink = follow_chunk, .ctx = f, .quiet = true};
        client_stream(c, job_path(path, sizeof path, id, suffix), &plain, &r);
        if (f->write_failed) {
            reply_free(&r);
            return EXIT_ERROR;
        }
        if (r.status == 200) {
            lost_since = 0;
            if (r.log_next >= 0)
                f->offset = r.log_next;
            bool ended = r.log_ended;
            reply_free(&r);
            if (ended)
                return EXIT_OK;
            if (f->offset == before)
                sleep_a_second(); /* a stream that ends at once must not spin */
            continue;
        }
        /* 5xx: a server stopping (503) or a proxy without its backend
         * (502) is what a restart looks like: tried again like no answer. */
        if (r.status != 0 && r.status < 500) {
            int rc = reply_exit(&r, "logs");
            reply_free(&r);
            return rc;
        }
        reply_free(&r);
        if (!keep_trying(c, &lost_since))
            return EXIT_UNREACHABLE;
    }
}

static int follow_log(struct client *c, const char *id)
{
    struct follow f = {0};
    int rc = follow_log_at(c, id, &f);
    buffer_free(&f.line);
    return rc;
}

struct logs_opts {
    bool follow;
};

static void logs_option(int key, const char *arg, void *ctx)
{
    (void)arg;
    if (key == 'f')
        ((struct logs_opts *)ctx)->follow = true;
}

int cmd_logs(int argc, char **argv)
{
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'}, {0}};
    struct logs_opts o = {0};
    int first = parse_command_options(argc, argv, "f", opts, logs_option, &o);
    if (argc - first != 1)
        die_usage("usage: acp logs ID [-f]");
    struct client *c = cli_client();
    int rc = o.follow ? follow_log(c, argv[first]) : read_log(c, argv[first]);
    if (fflush(stdout) != 0 && rc == EXIT_OK)
        rc = EXIT_ERROR;
    return rc;
}
