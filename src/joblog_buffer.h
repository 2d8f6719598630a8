/* The state of one run's log and progress (joblog.h's joblog_run), shared
 * by joblog.c (what the executor hands over) and joblog_flush.c (what is
 * written), and the text in it: repaired, cut into whole lines, kept
 * within the cap (the head's bytes, and at most about twice the tail's
 * worth of the latest ones until they are written). */
#ifndef ACP_JOBLOG_BUFFER_H
#define ACP_JOBLOG_BUFFER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "async_platform.h"
#include "buf.h"
#include "joblog_text.h"

struct joblog_run {
    pthread_mutex_t lock; /* guards what follows, up to the flusher's part */
    joblog_cap cap;
    unsigned attempt;
    bool header_due; /* an attempt after the first: its header precedes its first text */
    bool ended;      /* the attempt ended: later text is dropped */
    bool fenced;     /* the lease is lost: nothing more is written */
    joblog_utf8 utf8;
    buf partial;   /* the line not ended yet (valid UTF-8) */
    uint64_t size; /* the stream's length: whole lines handed over, all attempts */
    buf head_pend; /* unwritten bytes below cap.head, from head_pos */
    uint64_t head_pos;
    buf tail_pend; /* unwritten bytes of the tail, from tail_pos */
    uint64_t tail_pos;
    bool log_dirty;
    int64_t log_dirty_ms; /* monotonic: when text first waited */
    int64_t log_written_ms;
    bool progress_dirty;
    uint64_t done, total;
    char text[ACP_PROGRESS_TEXT_MAX + 1];
    bool has_text;
    int64_t progress_dirty_ms;
    int64_t progress_written_ms;

    /* When the flusher should write (monotonic ms; 0: nothing to write):
     * set under @lock, read by the flusher under the platform's lock. */
    atomic_llong due_ms;
    /* Under the platform's lock: the flusher is writing the run; the run
     * is no longer the flusher's to write. */
    bool busy, closed;
};

/* How often a run's pending text and its progress are written. */
#define JOBLOG_FLUSH_MS    200
#define JOBLOG_PROGRESS_MS 500

typedef struct joblog_run joblog_run;

/* Append @len bytes of executor text: repaired, whole lines into the
 * stream, the rest held. Under @lr->lock. 0 or ACP_ENOMEM. */
int joblog_append(struct joblog_run *lr, const void *data, size_t len);

/* Drop the pending tail bytes that the cap drops anyway (under @lr->lock). */
void joblog_trim_tail(struct joblog_run *lr);

/* The attempt ended: its partial line (and a cut UTF-8 sequence) goes into
 * the stream, ended; later text is dropped. Under @lr->lock. */
int joblog_end_text(struct joblog_run *lr);

/* Recompute @lr->due_ms (under @lr->lock); true when it became earlier, so
 * the flusher must look again. */
bool joblog_update_due(struct joblog_run *lr);

#endif
