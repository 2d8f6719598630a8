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
#include "joblog_run.h"
#include "platform_state.h"
#include "running.h"

/* Input is looked at in slices of this size, so that one huge write never
 * sits whole in the partial line. */
#define JOBLOG_SLICE (64u << 10)

bool joblog_update_due(joblog_run *lr)
{
    int64_t due = 0;
    if (lr->log_dirty) {
        int64_t next = lr->log_written_ms ? lr->log_written_ms + JOBLOG_FLUSH_MS : 0;
        due = next > lr->log_dirty_ms ? next : lr->log_dirty_ms;
    }
    if (lr->progress_dirty) {
        int64_t next = lr->progress_written_ms ? lr->progress_written_ms + JOBLOG_PROGRESS_MS : 0;
        int64_t p = next > lr->progress_dirty_ms ? next : lr->progress_dirty_ms;
        if (due == 0 || p < due)
            due = p;
    }
    if (due < 0)
        due = 1; /* 0 means nothing due */
    long long before = atomic_exchange(&lr->due_ms, due);
    return due != 0 && (before == 0 || due < before);
}

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

/* Tail bytes that end before where the tail may begin are never written:
 * drop them, and the rest of the line they cut (the kept tail starts on a
 * line when one starts within it). Under @lr->lock. */
void joblog_trim_tail(joblog_run *lr)
{
    uint64_t start = joblog_tail_start(&lr->cap, lr->size);
    if (lr->tail_pend.len == 0 || lr->tail_pos >= start)
        return;
    size_t drop = (size_t)(start - lr->tail_pos);
    if (drop > 0 && lr->tail_pend.data[drop - 1] != '\n') {
        const char *nl = memchr(lr->tail_pend.data + drop, '\n', lr->tail_pend.len - drop);
        if (nl && (size_t)(nl + 1 - lr->tail_pend.data) < lr->tail_pend.len)
            drop = (size_t)(nl + 1 - lr->tail_pend.data);
    }
    memmove(lr->tail_pend.data, lr->tail_pend.data + drop, lr->tail_pend.len - drop);
    lr->tail_pend.len -= drop;
    lr->tail_pend.data[lr->tail_pend.len] = '\0';
    lr->tail_pos += drop;
}

/* Whole lines of the stream, from lr->size on. Under @lr->lock. */
static int joblog_emit(joblog_run *lr, const char *data, size_t len)
{
    int rc = 0;
    if (lr->header_due && len) {
        lr->header_due = false;
        char header[48];
        int n = snprintf(header, sizeof header, "=== attempt %u ===\n", lr->attempt);
        if ((rc = joblog_emit(lr, header, (size_t)n)))
            return rc;
    }
    while (len && !rc) {
        size_t n = len;
        if (lr->size < lr->cap.head) {
            if (n > lr->cap.head - lr->size)
                n = (size_t)(lr->cap.head - lr->size);
            if (lr->head_pend.len == 0)
                lr->head_pos = lr->size;
            rc = buf_append(&lr->head_pend, data, n);
        } else {
            if (lr->tail_pend.len == 0)
                lr->tail_pos = lr->size;
            rc = buf_append(&lr->tail_pend, data, n);
        }
        if (rc)
            break;
        lr->size += n;
        data += n;
        len -= n;
    }
    /* Amortised: the buffer keeps at most about twice the tail. */
    if (!rc && lr->tail_pend.len > 2 * lr->cap.tail)
        joblog_trim_tail(lr);
    return rc;
}

/* Move the whole lines of the partial line into the stream; with @final,
 * the rest too, ended. Under @lr->lock. */
static int joblog_cut_lines(joblog_run *lr, bool final)
{
    int rc = 0;
    size_t used = 0;
    while (!rc && used < lr->partial.len) {
        bool newline;
        size_t take = joblog_whole_lines(lr->partial.data + used, lr->partial.len - used,
                                         JOBLOG_LINE_MAX, &newline);
        if (take == 0 && final) {
            take = lr->partial.len - used;
            newline = true;
        }
        if (take == 0)
            break;
        rc = joblog_emit(lr, lr->partial.data + used, take);
        if (!rc && newline)
            rc = joblog_emit(lr, "\n", 1);
        used += take;
    }
    memmove(lr->partial.data, lr->partial.data + used, lr->partial.len - used);
    lr->partial.len -= used;
    if (lr->partial.data)
        lr->partial.data[lr->partial.len] = '\0';
    return rc;
}

int joblog_end_text(joblog_run *lr)
{
    int rc = joblog_utf8_repair(&lr->utf8, "", 0, true, &lr->partial);
    if (!rc)
        rc = joblog_cut_lines(lr, true);
    if (!rc && (lr->head_pend.len || lr->tail_pend.len))
        lr->log_dirty = true;
    lr->ended = true;
    return rc;
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
        const char *s = data;
        for (size_t at = 0; !rc && at < len; at += JOBLOG_SLICE) {
            size_t n = len - at < JOBLOG_SLICE ? len - at : JOBLOG_SLICE;
            rc = joblog_utf8_repair(&lr->utf8, s + at, n, false, &lr->partial);
            if (!rc)
                rc = joblog_cut_lines(lr, false);
        }
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
