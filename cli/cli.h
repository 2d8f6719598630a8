/* acp: the command-line client of the example server's HTTP API
 * (docs/cli.adoc). It speaks HTTP only, never the library's C API, so that
 * it works against any server of any version that keeps the API. */
#ifndef ACP_CLI_H
#define ACP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>
#include <json-c/json.h>

/* Exit statuses, documented in --help, acp.1 and docs/cli.adoc. */
enum {
    EXIT_OK = 0,
    EXIT_ERROR = 1,       /* server 5xx, I/O, anything else */
    EXIT_USAGE = 2,       /* bad command line, or input the server refused (400, 413) */
    EXIT_NOT_FOUND = 3,   /* 404 */
    EXIT_JOB_FAILED = 4,  /* wait, submit --wait: a job ended failed or cancelled */
    EXIT_UNREACHABLE = 5, /* connection refused, timeout, TLS failure */
    EXIT_AUTH = 6,        /* 401, 403 */
    EXIT_WAIT_TIMEOUT = 7,
    EXIT_CONFLICT = 8, /* 409 */
};

/* ---- buffers and the HTTP client (client.c) ---- */

struct buffer {
    char *data; /* NUL-terminated while len < cap */
    size_t len, cap;
};

void buffer_append(struct buffer *b, const char *p, size_t n);
void buffer_free(struct buffer *b);

struct client {
    CURL *curl; /* one easy handle for every request: the connection is reused */
    char *base; /* server URL without a trailing '/' */
    char *auth; /* "Authorization: Bearer ..." or NULL */
    const char *cacert;
    char errbuf[CURL_ERROR_SIZE];
};

/* An answer: the status, the body (unless a sink took it) and the log
 * headers the log commands go by. */
struct reply {
    long status;
    struct buffer body;
    long long log_next, log_start; /* -1 when absent */
    bool log_ended;
};

void reply_free(struct reply *r);

/* Receives a 2xx answer's body as it arrives; returns false to abort. */
typedef bool (*body_sink)(const char *data, size_t len, void *ctx);

/* Progress of a transfer (bytes); returns false to abort. */
typedef bool (*transfer_progress)(long long now, long long total, void *ctx);

struct stream_opts {
    body_sink sink;
    void *ctx;
    transfer_progress progress;
    bool no_timeout; /* a followed log may stay quiet as long as its job */
    bool quiet;      /* the caller reports transport failures itself */
};

int client_init(struct client *c, const char *server, const char *token_file, const char *cacert);
void client_free(struct client *c);

/* Each returns EXIT_OK once an HTTP answer arrived, whatever its status
 * (see reply_exit), or prints the transport failure and returns its exit
 * status. json_body NULL: no body (a POST sends an empty one). */
int client_call(struct client *c, const char *method, const char *path, const char *json_body,
                struct reply *r);
int client_stream(struct client *c, const char *path, const struct stream_opts *o, struct reply *r);

struct input_file {
    const char *name, *path;
};
int client_post_multipart(struct client *c, const char *path, const char *json_body,
                          const struct input_file *inputs, size_t n_inputs, struct reply *r);

/* The exit status of an answer; for anything but 2xx it prints one line
 * on stderr: "acp: WHAT: error: detail (field F, HTTP N)". */
int reply_exit(const struct reply *r, const char *what);

/* The answer's JSON document, or NULL after printing why. */
json_object *reply_json(const struct reply *r, const char *what);

/* ---- output (output.c) ---- */

extern bool opt_json; /* --json */

void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void error_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value of option @opt as an integer, or as a number of seconds (not
 * negative, fractions allowed); a usage error naming @opt otherwise. */
long option_long(const char *opt, const char *text);
double option_seconds(const char *opt, const char *text);

/* Seconds since the epoch of an ISO-8601 UTC time, -1 when not one. */
double parse_time(const char *iso);
/* "3 min ago", "in 5 s", "just now". */
void relative_time(double when, double now, char *out, size_t size);
double now_seconds(void);
/* "1.5 MiB" */
void human_size(long long bytes, char *out, size_t size);

/* "[#######-------]  45%" of width chars; total <= 0 draws no bar. */
void progress_bar(double done, double total, int width, char *out, size_t size);
/* A bar redrawn in place on stderr (when it is a terminal). */
void live_line(const char *text);
void live_line_end(void);

/* A table printed with its columns aligned. */
struct table {
    size_t cols, rows;
    char **cells; /* rows * cols, row 0 the header */
};
void table_init(struct table *t, size_t cols, const char *const *header);
void table_add(struct table *t, const char *const *row);
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

/* A string member, or NULL (absent, null or not a string). */
const char *jstr(json_object *o, const char *key);
/* Prints a document as the server's JSON, one line. */
void print_json(json_object *o);

/* ---- commands (jobs.c, submit.c, files.c, info.c) ---- */

/* Each gets the arguments from the command's name on (argv[0]) and
 * returns the exit status. */
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_wait(int argc, char **argv);
int cmd_simple_post(int argc, char **argv); /* cancel, expire */
int cmd_delete(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_files(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_health(int argc, char **argv);
int cmd_metrics(int argc, char **argv);

/* The client of the global options (--server, --token-file, --cacert or
 * the environment), made on first use; exits when they are wrong. */
struct client *cli_client(void);

/* Parses a command's options with getopt_long; the global options are
 * accepted there too. Returns the index of the first operand. */
struct option;
int parse_command_options(int argc, char **argv, const char *shortopts,
                          const struct option *longopts,
                          void (*handle)(int key, const char *arg, void *ctx), void *ctx);

/* Waits until the @n jobs end (wait, submit --wait): 0 when all are
 * complete or expired, EXIT_JOB_FAILED when one failed or was cancelled,
 * EXIT_WAIT_TIMEOUT after @timeout seconds (0: none). With --json it
 * prints the ended jobs as an array (@as_array) or the first one. */
int wait_jobs(struct client *c, char **ids, int n, double timeout, bool as_array);

/* "/jobs/ID" + @suffix in @out, the id escaped: checking it is left to
 * the server, whose 400 names the field. */
const char *job_path(char *out, size_t size, const char *id, const char *suffix);

#endif
