/* Writing the runs' logs and progress to PostgreSQL: the flusher thread
 * (one per platform, asleep while no run has anything to write), the last
 * write of an attempt, and the kept file (see joblog.h).
 *
 * Why a thread of its own rather than the maintenance thread: the latter
 * renews leases and records overdue runs, and may wait on S3 or on a slow
 * database for longer than the 200 ms a follower is promised. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "joblog.h"
#include "joblog_buffer.h"
#include "platform_state.h"
#include "running.h"
#include "store_log.h"
#include "store_pg.h"

/* Runs written per round of the flusher. */
#define JOBLOG_BATCH 32
/* After a failed write, the run's next try. */
#define JOBLOG_RETRY_MS 1000

/* What one write takes from a run: its pending bytes and its progress. */
typedef struct joblog_take {
    buf head, tail;
    uint64_t head_pos, tail_pos, size;
    bool log, progress;
    store_log_progress report;
    char text[ACP_PROGRESS_TEXT_MAX + 1];
} joblog_take;

/* Take what is to be written (everything when @final, else progress only
 * when it is due). Under @lr->lock. */
static void joblog_take_pending(joblog_run *lr, bool final, int64_t now, joblog_take *t)
{
    memset(t, 0, sizeof *t);
    if (lr->log_dirty) {
        joblog_trim_tail(lr);
        t->log = true;
        t->head = lr->head_pend;
        t->head_pos = lr->head_pos;
        t->tail = lr->tail_pend;
        t->tail_pos = lr->tail_pos;
        t->size = lr->size;
        lr->head_pend = (buf)BUF_INIT;
        lr->tail_pend = (buf)BUF_INIT;
        lr->log_dirty = false;
        lr->log_written_ms = now;
    }
    if (lr->progress_dirty && (final || !lr->progress_written_ms ||
                               now - lr->progress_written_ms >= JOBLOG_PROGRESS_MS)) {
        t->progress = true;
        t->report.done = lr->done;
        t->report.total = lr->total;
        memcpy(t->text, lr->text, sizeof t->text);
        t->report.text = lr->has_text ? t->text : NULL;
        lr->progress_dirty = false;
        lr->progress_written_ms = now;
    }
}

/* A failed write: its bytes go back in front of what came since, to be
 * tried again. Under @lr->lock. */
static void joblog_put_back(joblog_run *lr, joblog_take *t)
{
    if (t->log) {
        if (t->head.len) {
            if (lr->head_pend.len && buf_append(&t->head, lr->head_pend.data, lr->head_pend.len))
                t->head.len = 0; /* out of memory: those bytes are lost */
            buf_free(&lr->head_pend);
            lr->head_pend = t->head;
            lr->head_pos = t->head_pos;
            t->head = (buf)BUF_INIT;
        }
        if (t->tail.len) {
            if (lr->tail_pend.len && buf_append(&t->tail, lr->tail_pend.data, lr->tail_pend.len))
                t->tail.len = 0;
            buf_free(&lr->tail_pend);
            lr->tail_pend = t->tail;
            lr->tail_pos = t->tail_pos;
            t->tail = (buf)BUF_INIT;
        }
        lr->log_dirty = true;
        lr->log_dirty_ms = clock_now_ms() + JOBLOG_RETRY_MS;
    }
    if (t->progress && !lr->progress_dirty) {
        lr->progress_dirty = true;
        lr->progress_dirty_ms = clock_now_ms() + JOBLOG_RETRY_MS;
    }
}

static void joblog_take_free(joblog_take *t)
{
    buf_free(&t->head);
    buf_free(&t->tail);
}

/* Split @data (stream bytes from @pos) into chunks of at most @max. */
static int joblog_chunks(const buf *data, uint64_t pos, size_t max, store_log_chunk **chunks,
                         size_t *count, size_t *cap)
{
    for (size_t at = 0; at < data->len; at += max) {
        if (*count == *cap) {
            size_t grown = *cap ? *cap * 2 : 8;
            store_log_chunk *more = realloc(*chunks, grown * sizeof *more);
            if (!more)
                return error_set(ACP_ENOMEM, "writing a job log: out of memory");
            *chunks = more;
            *cap = grown;
        }
        size_t n = data->len - at < max ? data->len - at : max;
        (*chunks)[(*count)++] = (store_log_chunk){pos + at, data->data + at, n};
    }
    return 0;
}

/* Write what @run holds: one statement. */
static int joblog_write(acp_platform *p, running_job *run, bool final)
{
    joblog_run *lr = atomic_load(&run->log);
    joblog_take t;
    pthread_mutex_lock(&lr->lock);
    if (lr->fenced) {
        pthread_mutex_unlock(&lr->lock);
        return 0;
    }
    joblog_take_pending(lr, final, clock_now_ms(), &t);
    pthread_mutex_unlock(&lr->lock);
    if (!t.log && !t.progress)
        return 0;
    store_log_chunk *chunks = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    if (t.log) {
        rc = joblog_chunks(&t.head, t.head_pos, lr->cap.chunk, &chunks, &count, &cap);
        if (!rc)
            rc = joblog_chunks(&t.tail, t.tail_pos, lr->cap.chunk, &chunks, &count, &cap);
    }
    /* Non-NULL chunks say that the log's columns are written, even with no
     * bytes to insert. */
    static const store_log_chunk none;
    if (!rc)
        rc = store_log_flush(p->store, &run->row->id, p->instance_id, lr->attempt,
                             t.log ? (chunks ? chunks : &none) : NULL, count, t.size, lr->cap.head,
                             joblog_tail_start(&lr->cap, t.size), t.progress ? &t.report : NULL);
    free(chunks);
    pthread_mutex_lock(&lr->lock);
    if (rc == ACP_ECONFLICT) {
        lr->fenced = true; /* the attempt is over for the database: drop the rest */
    } else if (rc) {
        joblog_put_back(lr, &t);
    }
    bool wake = joblog_update_due(lr);
    pthread_mutex_unlock(&lr->lock);
    joblog_take_free(&t);
    (void)wake; /* the flusher looks at every run again after its round */
    if (rc && rc != ACP_ECONFLICT) {
        char hex[ACP_JOB_ID_STRLEN];
        log_warn(&p->log, "job %s: writing its log: %s%s", acp_job_id_format(&run->row->id, hex),
                 acp_last_error(), final ? "" : "; trying again");
    }
    return rc;
}

static void *joblog_flusher_main(void *arg)
{
    acp_platform *p = arg;
    running_job *picked[JOBLOG_BATCH];
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->maintenance_stopping)) {
        int64_t now = clock_now_ms(), earliest = 0;
        size_t n = 0;
        for (size_t i = 0; i < p->running_count; i++) {
            running_job *run = p->running[i];
            joblog_run *lr = atomic_load(&run->log);
            if (!lr || lr->closed || lr->busy)
                continue;
            long long due = atomic_load(&lr->due_ms);
            if (due == 0)
                continue;
            if (due <= now && n < JOBLOG_BATCH) {
                lr->busy = true;
                picked[n++] = run;
            } else if (earliest == 0 || due < earliest) {
                earliest = due;
            }
        }
        if (n == 0) {
            if (earliest == 0) {
                pthread_cond_wait(&p->changed, &p->lock);
            } else {
                struct timespec deadline;
                clock_deadline(&deadline, (uint64_t)(earliest - now));
                pthread_cond_timedwait(&p->changed, &p->lock, &deadline);
            }
            continue;
        }
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < n; i++)
            joblog_write(p, picked[i], false);
        pthread_mutex_lock(&p->lock);
        for (size_t i = 0; i < n; i++)
            atomic_load(&picked[i]->log)->busy = false;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

void joblog_flusher_start(acp_platform *p)
{
    if (p->log_flusher_started || p->log_flusher_failed || !p->maintenance_started ||
        atomic_load(&p->maintenance_stopping) || !p->store || p->store->ops != &store_pg_ops)
        return;
    int err = pthread_create(&p->log_flusher, NULL, joblog_flusher_main, p);
    if (err) {
        p->log_flusher_failed = true;
        log_warn(&p->log,
                 "starting the log flusher thread: %s; job logs and progress are written when "
                 "each attempt ends",
                 error_strerror(err));
        return;
    }
    p->log_flusher_started = true;
}

void joblog_flusher_stop(acp_platform *p)
{
    /* maintenance_stopping is raised (and announced) before this: no run
     * starts the thread any more. */
    pthread_mutex_lock(&p->lock);
    bool started = p->log_flusher_started;
    p->log_flusher_started = false;
    pthread_mutex_unlock(&p->lock);
    if (started)
        pthread_join(p->log_flusher, NULL);
}

/* Take @run away from the flusher, waiting for a write in progress. */
static void joblog_close(acp_platform *p, joblog_run *lr)
{
    pthread_mutex_lock(&p->lock);
    lr->closed = true;
    while (lr->busy)
        pthread_cond_wait(&p->changed, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

bool joblog_attempt_end(acp_platform *p, running_job *run)
{
    joblog_run *lr = atomic_load(&run->log);
    if (!lr)
        return run->row->log_size > 0;
    joblog_close(p, lr);
    pthread_mutex_lock(&lr->lock);
    if (joblog_end_text(lr) != 0) {
        char hex[ACP_JOB_ID_STRLEN];
        log_warn(&p->log, "job %s: the end of its log: %s", acp_job_id_format(&run->row->id, hex),
                 acp_last_error());
    }
    pthread_mutex_unlock(&lr->lock);
    /* The last write must not be lost to a short outage: a few tries. */
    unsigned pause = 100;
    for (int tries = 0; tries < 5; tries++) {
        int rc = joblog_write(p, run, true);
        if (rc == 0 || rc == ACP_ECONFLICT || atomic_load(&p->stopping) ||
            (rc != ACP_EDB && rc != ACP_EBUSY))
            break;
        clock_sleep_ms(pause);
        pause *= 2;
    }
    pthread_mutex_lock(&lr->lock);
    bool has_log = lr->size > 0 && !lr->fenced;
    pthread_mutex_unlock(&lr->lock);
    return has_log;
}

int joblog_build_file(acp_platform *p, running_job *run, buf *out)
{
    store_log_view view;
    int rc = store_log_read_all(p->store, &run->row->id, p->instance_id, run->row->attempts, &view);
    if (rc)
        return rc;
    uint64_t at = 0;
    char marker[JOBLOG_MARKER_MAX];
    for (size_t i = 0; !rc && i < view.count; i++) {
        const store_log_chunk *c = &view.chunks[i];
        if (c->pos + c->len <= at)
            continue; /* cannot happen: chunks do not overlap */
        if (c->pos > at)
            rc = buf_append(out, marker, joblog_marker(c->pos - at, marker));
        size_t skip = c->pos < at ? (size_t)(at - c->pos) : 0;
        if (!rc)
            rc = buf_append(out, c->data + skip, c->len - skip);
        at = c->pos + c->len;
    }
    if (!rc && at < view.size)
        rc = buf_append(out, marker, joblog_marker(view.size - at, marker));
    store_log_view_free(&view);
    return rc;
}

void joblog_run_free(running_job *run)
{
    joblog_run *lr = atomic_load(&run->log);
    if (!lr)
        return;
    joblog_close(run->platform, lr);
    atomic_store(&run->log, NULL);
    buf_free(&lr->partial);
    buf_free(&lr->head_pend);
    buf_free(&lr->tail_pend);
    pthread_mutex_destroy(&lr->lock);
    free(lr);
}
