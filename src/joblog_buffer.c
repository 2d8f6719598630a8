/* A run's log in memory: text repaired, cut into whole lines and kept
 * within the cap (see joblog_buffer.h). */
#include "joblog_buffer.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "error.h"

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

int joblog_append(joblog_run *lr, const void *data, size_t len)
{
    int rc = 0;
    const char *s = data;
    for (size_t at = 0; !rc && at < len; at += JOBLOG_SLICE) {
        size_t n = len - at < JOBLOG_SLICE ? len - at : JOBLOG_SLICE;
        rc = joblog_utf8_repair(&lr->utf8, s + at, n, false, &lr->partial);
        if (!rc)
            rc = joblog_cut_lines(lr, false);
    }
    return rc;
}
