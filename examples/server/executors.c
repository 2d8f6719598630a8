#include "executors.h"

#include "jobctl.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "command.h"
#include "sha256.h"

/* Deeper than the library's own limit for configs, so that any config it
 * accepted parses here too. */
#define EXECUTORS_JSON_DEPTH 128

typedef enum executor_kind {
    EXECUTOR_SLEEP,
    EXECUTOR_CHECKSUM,
    EXECUTOR_COMMAND,
} executor_kind;

/* A job config, checked. Strings point into the json-c object it came from. */
typedef struct executor_params {
    executor_kind kind;
    double seconds;
    const char *text;
    size_t text_len;
    const settings_program *program;
    const char **args;
    size_t argc;
} executor_params;

typedef struct job_executor {
    acp_executor base; /* first: the library sees this */
    const settings *cfg;
    json_object *config;
    executor_params params;
} job_executor;

static int executors_string_ok(json_object *value)
{
    return json_object_is_type(value, json_type_string) &&
           strlen(json_object_get_string(value)) == (size_t)json_object_get_string_len(value);
}

static int executors_parse_command(const settings *cfg, json_object *config, executor_params *p,
                                   const char **field, char *msg, size_t msglen)
{
    json_object *program, *args;
    if (!json_object_object_get_ex(config, "program", &program) || !executors_string_ok(program))
        return jobctl_fail(field, "config.program", msg, msglen,
                           "the command executor needs \"program\": the name of an allowed "
                           "program");
    p->program = settings_find_program(cfg, json_object_get_string(program));
    if (!p->program)
        return jobctl_fail(field, "config.program", msg, msglen,
                           "program '%s' is not allowed on this server (%zu allowed)",
                           json_object_get_string(program), cfg->program_count);
    if (!json_object_object_get_ex(config, "args", &args))
        return 0;
    if (!json_object_is_type(args, json_type_array))
        return jobctl_fail(field, "config.args", msg, msglen,
                           "\"args\" must be an array of strings");
    size_t n = json_object_array_length(args);
    if (n > (size_t)cfg->command_max_args)
        return jobctl_fail(field, "config.args", msg, msglen,
                           "%zu arguments, more than the %ld allowed", n, cfg->command_max_args);
    p->args = calloc(n ? n : 1, sizeof *p->args);
    if (!p->args)
        return jobctl_fail(field, "config.args", msg, msglen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_object *arg = json_object_array_get_idx(args, i);
        if (!executors_string_ok(arg))
            return jobctl_fail(field, "config.args", msg, msglen,
                               "args[%zu] is not a string without NUL characters", i);
        if (json_object_get_string_len(arg) > cfg->command_max_arg_bytes)
            return jobctl_fail(field, "config.args", msg, msglen,
                               "args[%zu] is longer than %ld bytes", i, cfg->command_max_arg_bytes);
        p->args[i] = json_object_get_string(arg);
        if (!programs_arg_allowed(p->program, p->args[i]))
            return jobctl_fail(field, "config.args", msg, msglen,
                               "args[%zu]: '%s' starts with '-' and is not one of the options "
                               "allowed for '%s' (%zu allowed)",
                               i, p->args[i], p->program->name, p->program->option_count);
    }
    p->argc = n;
    return 0;
}

/* The rules of every executor, shared by submission and execution. On
 * failure p->args may have been allocated: the caller frees it. */
static int executors_parse(const settings *cfg, json_object *config, executor_params *p,
                           const char **field, char *msg, size_t msglen)
{
    memset(p, 0, sizeof *p);
    if (!json_object_is_type(config, json_type_object))
        return jobctl_fail(field, "config", msg, msglen, "the job config must be an object");
    json_object *executor, *value;
    if (!json_object_object_get_ex(config, "executor", &executor) || !executors_string_ok(executor))
        return jobctl_fail(field, "config.executor", msg, msglen,
                           "\"executor\": expected one of sleep, checksum, command");
    const char *name = json_object_get_string(executor);
    if (strcmp(name, "sleep") == 0) {
        p->kind = EXECUTOR_SLEEP;
        if (!json_object_object_get_ex(config, "seconds", &value) ||
            !(json_object_is_type(value, json_type_int) ||
              json_object_is_type(value, json_type_double)))
            return jobctl_fail(field, "config.seconds", msg, msglen,
                               "the sleep executor needs \"seconds\": a number");
        p->seconds = json_object_get_double(value);
        if (!isfinite(p->seconds) || p->seconds < 0)
            return jobctl_fail(field, "config.seconds", msg, msglen,
                               "\"seconds\" must be a finite number >= 0");
        return 0;
    }
    if (strcmp(name, "checksum") == 0) {
        p->kind = EXECUTOR_CHECKSUM;
        if (!json_object_object_get_ex(config, "text", &value) ||
            !json_object_is_type(value, json_type_string))
            return jobctl_fail(field, "config.text", msg, msglen,
                               "the checksum executor needs \"text\": a string");
        p->text = json_object_get_string(value);
        p->text_len = (size_t)json_object_get_string_len(value);
        return 0;
    }
    if (strcmp(name, "command") == 0) {
        p->kind = EXECUTOR_COMMAND;
        return executors_parse_command(cfg, config, p, field, msg, msglen);
    }
    return jobctl_fail(field, "config.executor", msg, msglen,
                       "unknown executor '%s' (known: sleep, checksum, command)", name);
}

int executors_validate(const settings *cfg, json_object *config, const char **field, char *msg,
                       size_t msglen)
{
    executor_params p;
    int rc = executors_parse(cfg, config, &p, field, msg, msglen);
    free(p.args);
    return rc;
}

/* ---- results ------------------------------------------------------------ */

/* Write a result file into the scratch directory and keep it. */
static int executors_write_result(acp_job_context *ctx, const char *name, const char *data,
                                  size_t len, char *msg, size_t msglen)
{
    int fd = openat(ctx->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        snprintf(msg, msglen, "cannot create %s: %s", name, strerror(errno));
        return -1;
    }
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(msg, msglen, "cannot write %s: %s", name, strerror(errno));
            close(fd);
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    if (close(fd) != 0) {
        snprintf(msg, msglen, "cannot write %s: %s", name, strerror(errno));
        return -1;
    }
    if (acp_job_add_output(ctx, name) != 0) {
        snprintf(msg, msglen, "cannot keep %s: %s", name, acp_last_error());
        return -1;
    }
    return 0;
}

static int executors_write_json(acp_job_context *ctx, const char *name, json_object *doc, char *msg,
                                size_t msglen)
{
    size_t len;
    const char *text = json_object_to_json_string_length(
        doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE,
        &len);
    int rc = text ? executors_write_result(ctx, name, text, len, msg, msglen) : -1;
    if (!text)
        snprintf(msg, msglen, "out of memory");
    json_object_put(doc);
    return rc;
}

/* ---- the executors ------------------------------------------------------ */

static double executors_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Progress in whole seconds: done of total (ceil(seconds), so that a
 * fraction of a second still shows as one). A failed report is not the
 * job's failure. */
static void executors_sleep_progress(acp_job_context *ctx, double slept, double seconds)
{
    uint64_t total = (uint64_t)ceil(seconds);
    if (total == 0)
        return; /* nothing to show: and a total of 0 would mean "unknown" */
    uint64_t done = slept >= seconds ? total : (uint64_t)floor(slept);
    acp_job_progress(ctx, done, total, NULL);
}

static int executors_sleep(job_executor *ex, acp_job_context *ctx, char *msg, size_t msglen)
{
    double seconds = ex->params.seconds;
    if (seconds > ex->cfg->sleep_max_seconds)
        seconds = ex->cfg->sleep_max_seconds;
    /* Asleep on the cancel descriptor: a cancellation or the job's timeout
     * ends the sleep at once. poll() counts on the monotonic clock. The
     * sleep wakes each whole second to report its progress. */
    double start = executors_now(), end = start + seconds;
    struct pollfd pfd = {.fd = acp_job_cancel_fd(ctx), .events = POLLIN};
    executors_sleep_progress(ctx, 0, seconds);
    double report_at = start + 1;
    for (;;) {
        double now = executors_now();
        double left = end - now;
        if (left <= 0)
            break;
        if (now >= report_at) {
            executors_sleep_progress(ctx, now - start, seconds);
            report_at = start + floor(now - start) + 1;
        }
        double until = report_at < end ? report_at : end;
        double ms = ceil((until - now) * 1000);
        /* Without the descriptor (see below), the flag is checked often. */
        double cap = pfd.fd >= 0 ? 60000 : 100;
        int r = poll(&pfd, 1, (int)(ms > cap ? cap : ms));
        if (r < 0 && errno != EINTR) {
            snprintf(msg, msglen, "poll: %s", strerror(errno));
            return -1;
        }
        int why = acp_job_cancelled(ctx);
        if (why != ACP_CANCEL_NONE) {
            snprintf(msg, msglen, "%s after %.1f of %g s of sleep",
                     why == ACP_CANCEL_TIMEOUT ? "timed out" : "cancelled", executors_now() - start,
                     seconds);
            return -1;
        }
        if (r > 0) /* readable but no reason yet: do not spin on it */
            pfd.fd = -1;
    }
    executors_sleep_progress(ctx, seconds, seconds);
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "requested_seconds", json_object_new_double(ex->params.seconds));
    json_object_object_add(doc, "slept_seconds", json_object_new_double(seconds));
    return executors_write_json(ctx, "sleep.json", doc, msg, msglen);
}

static int executors_checksum(job_executor *ex, acp_job_context *ctx, char *msg, size_t msglen)
{
    const char *text = ex->params.text;
    size_t len = ex->params.text_len;
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(text, len, hex);
    /* Counted as wc(1) does: newlines, and runs of non-white-space. */
    int64_t lines = 0, words = 0;
    int in_word = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        int space = c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
        lines += c == '\n';
        words += !space && !in_word;
        in_word = !space;
    }
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "sha256", json_object_new_string(hex));
    json_object_object_add(doc, "bytes", json_object_new_int64((int64_t)len));
    json_object_object_add(doc, "lines", json_object_new_int64(lines));
    json_object_object_add(doc, "words", json_object_new_int64(words));
    return executors_write_json(ctx, "checksum.json", doc, msg, msglen);
}

static int executors_execute(acp_executor *base, acp_job_context *ctx)
{
    job_executor *ex = (job_executor *)base;
    char msg[1024] = "";
    int rc = -1;
    switch (ex->params.kind) {
    case EXECUTOR_SLEEP:
        rc = executors_sleep(ex, ctx, msg, sizeof msg);
        break;
    case EXECUTOR_CHECKSUM:
        rc = executors_checksum(ex, ctx, msg, sizeof msg);
        break;
    case EXECUTOR_COMMAND:
        rc = command_run(ex->cfg, ctx, ex->params.program, ex->params.args, ex->params.argc, msg,
                         sizeof msg);
        break;
    }
    if (rc != 0)
        acp_job_set_message(ctx, msg[0] ? msg : "the executor failed");
    return rc;
}

static void executors_free(acp_executor *base)
{
    job_executor *ex = (job_executor *)base;
    free(ex->params.args);
    json_object_put(ex->config);
    free(ex);
}

static const acp_executor_ops executors_ops = {
    .version = ACP_EXECUTOR_OPS_VERSION,
    .execute = executors_execute,
    .free = executors_free,
};

/* Runs on a worker thread: checks the config again, because another process
 * sharing the queue (or an older server) may have submitted it. */
static int executors_create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    const settings *cfg = userdata;
    char msg[1024];
    const char *field = NULL;
    json_object *config = NULL;
    if (ctx->config) {
        json_tokener *tok = json_tokener_new_ex(EXECUTORS_JSON_DEPTH);
        if (tok) {
            config = json_tokener_parse_ex(tok, ctx->config, (int)strlen(ctx->config));
            json_tokener_free(tok);
        }
    }
    job_executor *ex = calloc(1, sizeof *ex);
    if (!ex) {
        json_object_put(config);
        acp_job_set_message(ctx, "out of memory");
        return -1;
    }
    ex->base.ops = &executors_ops;
    ex->cfg = cfg;
    ex->config = config;
    if (!config) {
        executors_free(&ex->base);
        acp_job_set_message(ctx, "config: the job has no config object: nothing to run");
        return -1;
    }
    if (executors_parse(cfg, config, &ex->params, &field, msg, sizeof msg) != 0) {
        char full[1200];
        snprintf(full, sizeof full, "%s: %s", field, msg);
        acp_job_set_message(ctx, full);
        executors_free(&ex->base);
        return -1;
    }
    *out = &ex->base;
    return 0;
}

void executors_factory(acp_executor_factory *factory, const settings *cfg)
{
    memset(factory, 0, sizeof *factory);
    factory->version = ACP_EXECUTOR_FACTORY_VERSION;
    factory->userdata = (void *)cfg;
    factory->create = executors_create;
}
