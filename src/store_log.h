/* The PostgreSQL statements of job logs and progress (docs/guide.adoc,
 * "Progress" and "Logs"; the table compute.job_logs of migration 6): the
 * writer's flush, fenced by the lease like its renewal; the reader's one
 * statement per look; the rows that make the kept "log.txt". PostgreSQL
 * only: another store answers ACP_EINVAL (nothing is logged there). */
#ifndef ACP_STORE_LOG_H
#define ACP_STORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "store.h"

/* The channel of log notifications: the hex id of a job whose log grew or
 * whose live copy was removed (the job ended). */
#define STORE_LOG_CHANNEL "acp_log"

/* Bytes of the log stream from offset @pos. */
typedef struct store_log_chunk {
    uint64_t pos;
    const char *data;
    size_t len;
} store_log_chunk;

/* A progress report to write. */
typedef struct store_log_progress {
    uint64_t done, total;
    const char *text; /* NULL: none */
} store_log_progress;

/* One flush of a run's log and progress in one statement, fenced: only
 * while the job is in-progress, leased by @owner, at attempt @attempt. When
 * @chunks is not NULL: inserts the @count chunks, sets log_size = @size and
 * log_head = @head, deletes the tail chunks that begin in [@head,
 * @tail_start), and notifies STORE_LOG_CHANNEL. When @progress is not
 * NULL: sets the progress columns (progress_updated = now()). 0, or
 * ACP_ECONFLICT when the fence failed (nothing written). */
int store_log_flush(store *st, const acp_job_id *id, const char *owner, unsigned attempt,
                    const store_log_chunk *chunks, size_t count, uint64_t size, uint64_t head,
                    uint64_t tail_start, const store_log_progress *progress);

/* What a reader sees of a job's log in one statement: the row's status and
 * log columns, whether live rows exist, the first tail chunk's offset, and
 * up to @max_rows chunks from the one that holds @offset on. */
typedef struct store_log_view {
    acp_job_status status;
    uint64_t size;       /* log_size */
    uint64_t head;       /* log_head; 0 when none */
    bool live;           /* compute.job_logs has rows of the job */
    uint64_t tail_first; /* the first chunk at or after head; size when none */
    store_log_chunk *chunks;
    size_t count;
    void *owned; /* the result the chunks point into */
} store_log_view;

/* ACP_ENOTFOUND when there is no such job. Release with
 * store_log_view_free. */
int store_log_view_read(store *st, const acp_job_id *id, uint64_t offset, size_t max_rows,
                        store_log_view *out);
void store_log_view_free(store_log_view *view);

/* The whole live copy of the job's log, in order, as a view (for the kept
 * file); fenced as store_log_flush: ACP_ECONFLICT when the lease is lost. */
int store_log_read_all(store *st, const acp_job_id *id, const char *owner, unsigned attempt,
                       store_log_view *out);

#endif
