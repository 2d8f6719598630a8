/* The executor's side of logs and progress: acp_job_progress,
 * acp_job_log, acp_job_log_write (see joblog.h). Text is repaired, cut
 * into whole lines and kept per run in memory, within the cap: the bytes
 * that will be the head, and at most the tail's worth of the latest ones;
 * the flusher (joblog_flush.c) writes them. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "job.h"
#include "joblog.h"
#include "joblog_buffer.h"
#include "platform_state.h"
#include "running.h"

/* The run of @ctx's log state, made on first use. NULL with the error set
 * when the context is no worker's run. */
static joblog_run *joblog_get(acp_job_context *ctx, const char *what)
{
    if (!ctx || !ctx->outcome || !ctx->outcome->run) {
        error_set(ACP_EINVAL, "%s: no job context of a running job", what);
        return NULL;
    }
    running_job *run = ctx->outcome->run;
    joblog_run *lr = atomic_load(&run->log);
    if (lr)
        return lr;
    acp_platform *p = run->platform;
    pthread_mutex_lock(&p->lock);
    lr = atomic_load(&run->log);
    if (!lr && (lr = calloc(1, sizeof *lr)) != NULL) {
        if (pthread_mutex_init(&lr->lock, NULL) != 0) {
            free(lr);
            lr = NULL;
        } else {
            joblog_cap_make(&lr->cap, p->log_cap_bytes, run->row->log_head);
            lr->attempt = run->row->attempts;
            lr->header_due = run->row->attempts > 1;
            lr->size = run->row->log_size;
            atomic_init(&lr->due_ms, 0);
            atomic_store(&run->log, lr);
            joblog_flusher_start(p);
        }
    }
    pthread_mutex_unlock(&p->lock);
    if (!lr)
        error_set(ACP_ENOMEM, "%s: out of memory", what);
    return lr;
}

/* Tell the flusher when a run's next write came earlier. */
static void joblog_wake(acp_platform *p)
{
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

int acp_job_log_write(acp_job_context *ctx, const void *data, size_t len)
{
    if (!data && len)
        return error_set(ACP_EINVAL, "acp_job_log_write: NULL data of %zu bytes", len);
    if (!ctx || !ctx->outcome || !ctx->outcome->run)
        return error_set(ACP_EINVAL, "acp_job_log_write: no job context of a running job");
    joblog_run *lr = joblog_get(ctx, "acp_job_log_write");
    if (!lr)
        return ACP_ENOMEM;
    if (len == 0)
        return 0;
    pthread_mutex_lock(&lr->lock);
    int rc = 0;
    bool wake = false;
    if (!lr->ended && !lr->fenced) {
        rc = joblog_append(lr, data, len);
        if (!lr->log_dirty && (lr->head_pend.len || lr->tail_pend.len)) {
            lr->log_dirty = true;
            lr->log_dirty_ms = clock_now_ms();
            wake = joblog_update_due(lr);
        }
    }
    pthread_mutex_unlock(&lr->lock);
    if (wake)
        joblog_wake(ctx->outcome->run->platform);
    return rc ? error_set(rc, "acp_job_log_write: out of memory") : 0;
}

int acp_job_log(acp_job_context *ctx, const char *format, ...)
{
    if (!format)
        return error_set(ACP_EINVAL, "acp_job_log: NULL format");
    if (!ctx || !ctx->outcome || !ctx->outcome->run)
        return error_set(ACP_EINVAL, "acp_job_log: no job context of a running job");
    char small[512];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(small, sizeof small, format, ap);
    va_end(ap);
    if (n < 0)
        return error_set(ACP_EINVAL, "acp_job_log: the format '%.64s' cannot be printed", format);
    char *text = small;
    if ((size_t)n >= sizeof small) {
        text = malloc((size_t)n + 1);
        if (!text)
            return error_set(ACP_ENOMEM, "acp_job_log: out of memory");
        va_start(ap, format);
        vsnprintf(text, (size_t)n + 1, format, ap);
        va_end(ap);
    }
    int rc = acp_job_log_write(ctx, text, (size_t)n);
    if (!rc && (n == 0 || text[n - 1] != '\n'))
        rc = acp_job_log_write(ctx, "\n", 1);
    if (text != small)
        free(text);
    return rc;
}

/* A progress text: short, UTF-8, no control characters. */
static int joblog_check_text(const char *text)
{
    size_t len = strlen(text);
    if (len > ACP_PROGRESS_TEXT_MAX)
        return error_set(ACP_EINVAL, "acp_job_progress: the text is %zu bytes, more than %d", len,
                         ACP_PROGRESS_TEXT_MAX);
    joblog_utf8 state = {0};
    buf check = BUF_INIT;
    int rc = joblog_utf8_repair(&state, text, len, true, &check);
    bool same = rc == 0 && check.len == len && (len == 0 || memcmp(check.data, text, len) == 0);
    buf_free(&check);
    if (rc)
        return error_set(ACP_ENOMEM, "acp_job_progress: out of memory");
    if (!same)
        return error_set(ACP_EINVAL, "acp_job_progress: the text is not valid UTF-8");
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return error_set(ACP_EINVAL,
                             "acp_job_progress: the text holds control character 0x%02x", *c);
    return 0;
}

int acp_job_progress(acp_job_context *ctx, uint64_t done, uint64_t total, const char *text)
{
    if (!ctx || !ctx->outcome || !ctx->outcome->run)
        return error_set(ACP_EINVAL, "acp_job_progress: no job context of a running job");
    if (total != 0 && done > total)
        return error_set(ACP_EINVAL, "acp_job_progress: done %llu is more than total %llu",
                         (unsigned long long)done, (unsigned long long)total);
    if (total > INT64_MAX || done > INT64_MAX)
        return error_set(ACP_EINVAL, "acp_job_progress: %llu is beyond what is stored (2^63 - 1)",
                         (unsigned long long)(done > total ? done : total));
    int rc = text ? joblog_check_text(text) : 0;
    if (rc)
        return rc;
    joblog_run *lr = joblog_get(ctx, "acp_job_progress");
    if (!lr)
        return ACP_ENOMEM;
    pthread_mutex_lock(&lr->lock);
    bool wake = false;
    if (!lr->ended && !lr->fenced) {
        lr->done = done;
        lr->total = total;
        lr->has_text = text != NULL;
        snprintf(lr->text, sizeof lr->text, "%s", text ? text : "");
        if (!lr->progress_dirty) {
            lr->progress_dirty = true;
            lr->progress_dirty_ms = clock_now_ms();
            wake = joblog_update_due(lr);
        }
    }
    pthread_mutex_unlock(&lr->lock);
    if (wake)
        joblog_wake(ctx->outcome->run->platform);
    return 0;
}
