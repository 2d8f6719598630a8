#include "recording_executor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_JOBS   4096
#define MAX_QUEUES 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released_cond = PTHREAD_COND_INITIALIZER;
static bool released;
static acp_job_id job_ids[MAX_JOBS];
static int job_runs[MAX_JOBS];
static size_t job_count;
static char queue_names[MAX_QUEUES][64];
static int queue_running[MAX_QUEUES], queue_peak[MAX_QUEUES];
static int running_total;

static int *runs_slot(const acp_job_id *id, bool create)
{
    for (size_t i = 0; i < job_count; i++)
        if (acp_job_id_equal(&job_ids[i], id))
            return &job_runs[i];
    if (!create || job_count == MAX_JOBS)
        return NULL;
    job_ids[job_count] = *id;
    return &job_runs[job_count++];
}

static int queue_slot(const char *queue)
{
    for (int i = 0; i < MAX_QUEUES; i++) {
        if (strcmp(queue_names[i], queue) == 0)
            return i;
        if (!queue_names[i][0]) {
            snprintf(queue_names[i], sizeof queue_names[i], "%s", queue);
            return i;
        }
    }
    return 0;
}

int recording_runs(const acp_job_id *id)
{
    pthread_mutex_lock(&lock);
    int *slot = runs_slot(id, false);
    int runs = slot ? *slot : 0;
    pthread_mutex_unlock(&lock);
    return runs;
}

int recording_peak(const char *queue)
{
    pthread_mutex_lock(&lock);
    int peak = queue_peak[queue_slot(queue)];
    pthread_mutex_unlock(&lock);
    return peak;
}

int recording_running(void)
{
    pthread_mutex_lock(&lock);
    int n = running_total;
    pthread_mutex_unlock(&lock);
    return n;
}

void recording_release(void)
{
    pthread_mutex_lock(&lock);
    released = true;
    pthread_cond_broadcast(&released_cond);
    pthread_mutex_unlock(&lock);
}

void recording_reset(void)
{
    pthread_mutex_lock(&lock);
    released = false;
    pthread_mutex_unlock(&lock);
}

static int write_text(int dir_fd, const char *name, const char *text)
{
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int copy_file(int dir_fd, const char *from, const char *to)
{
    int in = openat(dir_fd, from, O_RDONLY);
    if (in < 0)
        return -1;
    int out = openat(dir_fd, to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char chunk[65536];
    ssize_t n;
    int rc = out < 0 ? -1 : 0;
    while (!rc && (n = read(in, chunk, sizeof chunk)) > 0)
        if (write(out, chunk, (size_t)n) != n)
            rc = -1;
    close(in);
    if (out >= 0)
        close(out);
    return rc;
}

typedef struct recording_executor {
    acp_executor base;
    json_object *config;
} recording_executor;

static const char *member(json_object *config, const char *key, const char *fallback)
{
    json_object *value;
    if (config && json_object_object_get_ex(config, key, &value))
        return json_object_get_string(value);
    return fallback;
}

static void wait_released(int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lock);
    while (!released)
        if (pthread_cond_timedwait(&released_cond, &lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&lock);
}

static int execute(acp_executor *base, acp_job_context *ctx)
{
    recording_executor *self = (recording_executor *)base;
    const char *mode = member(self->config, "mode", "ok");
    int ms = atoi(member(self->config, "ms", "0"));

    pthread_mutex_lock(&lock);
    int *slot = runs_slot(&ctx->id, true);
    int run = slot ? ++*slot : 0;
    int q = queue_slot(ctx->queue);
    if (++queue_running[q] > queue_peak[q])
        queue_peak[q] = queue_running[q];
    running_total++;
    pthread_mutex_unlock(&lock);

    if (strcmp(mode, "sleep") == 0) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    } else if (strcmp(mode, "block") == 0) {
        wait_released(ms ? ms : 60000);
    } else if (strcmp(mode, "cancellable") == 0) {
        /* Until cancelled (or "ms"): a cancelled run then fails. */
        struct pollfd pfd = {.fd = acp_job_cancel_fd(ctx), .events = POLLIN};
        while (poll(&pfd, 1, ms ? ms : 60000) < 0 && errno == EINTR)
            ;
        if (acp_job_cancelled(ctx) != ACP_CANCEL_NONE)
            return 1;
    }

    char text[256], name[32];
    snprintf(text, sizeof text, "n=%s attempt=%u run=%d queue=%s id=%s\n",
             member(self->config, "n", "-"), ctx->attempt, run, ctx->queue, ctx->id_hex);
    snprintf(name, sizeof name, "run%d.txt", run);
    int rc = write_text(ctx->dir_fd, "result.txt", text) | write_text(ctx->dir_fd, name, text);
    acp_job_add_output(ctx, "result.txt");
    acp_job_add_output(ctx, name);
    if (copy_file(ctx->dir_fd, "input-config", "seen-config") == 0)
        acp_job_add_output(ctx, "seen-config");
    /* Copy every input file the platform put into the scratch directory. */
    int dup_fd = dup(ctx->dir_fd);
    DIR *dir = fdopendir(dup_fd);
    struct dirent *entry;
    while (dir && (entry = readdir(dir))) {
        const char *n = entry->d_name;
        if (n[0] == '.' || strcmp(n, "input-config") == 0 || strncmp(n, "copy-", 5) == 0 ||
            strcmp(n, "result.txt") == 0 || strncmp(n, "run", 3) == 0 ||
            strcmp(n, "seen-config") == 0)
            continue;
        char copy[300];
        snprintf(copy, sizeof copy, "copy-%s", n);
        if (copy_file(ctx->dir_fd, n, copy) == 0)
            acp_job_add_output(ctx, copy);
    }
    if (dir)
        closedir(dir);
    if (strcmp(mode, "traps") == 0) {
        /* Outputs that must not hang or mislead the upload (a FIFO, a link
         * out of the directory) and a tree deeper than any recursion bound,
         * which the removal must still get rid of. */
        if (mkfifoat(ctx->dir_fd, "fifo.txt", 0600) != 0 ||
            symlinkat("/etc/passwd", ctx->dir_fd, "link.txt") != 0)
            rc = 1;
        acp_job_add_output(ctx, "fifo.txt");
        acp_job_add_output(ctx, "link.txt");
        int fd = dup(ctx->dir_fd);
        for (int depth = 0; fd >= 0 && depth < 200; depth++) {
            int next = mkdirat(fd, "deep", 0700) == 0
                           ? openat(fd, "deep", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                           : -1;
            close(fd);
            fd = next;
        }
        if (fd < 0)
            rc = 1;
        else
            close(fd);
    }
    if (strcmp(mode, "fail") == 0) {
        write_text(ctx->dir_fd, "error.log", "something went wrong\n");
        acp_job_add_output(ctx, "error.log");
        char message[64];
        snprintf(message, sizeof message, "deliberate failure %s", member(self->config, "n", "-"));
        acp_job_set_message(ctx, message);
        rc = 1;
    }

    pthread_mutex_lock(&lock);
    queue_running[q]--;
    running_total--;
    pthread_mutex_unlock(&lock);
    return rc;
}

static void executor_free(acp_executor *base)
{
    recording_executor *self = (recording_executor *)base;
    json_object_put(self->config);
    free(self);
}

static const acp_executor_ops ops = {ACP_EXECUTOR_OPS_VERSION, execute, executor_free};

static int create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    json_object *config = ctx->config ? json_tokener_parse(ctx->config) : NULL;
    if (strcmp(member(config, "mode", "ok"), "factory_fail") == 0) {
        json_object_put(config);
        acp_job_set_message(ctx, "no executor for this job");
        return -1;
    }
    recording_executor *self = calloc(1, sizeof *self);
    if (!self) {
        json_object_put(config);
        return -1;
    }
    self->base.ops = &ops;
    self->config = config;
    *out = &self->base;
    return 0;
}

const acp_executor_factory recording_factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, create, NULL};
