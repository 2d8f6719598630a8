/* Values between C and PostgreSQL: statement parameters (ids as binary
 * bytea, times as binary timestamptz, text arrays as quoted literals), the
 * status names of compute.jobs, and rows read back into store_job and
 * store_dispatch_list. Failures are recorded through the pool (pgpool_fail),
 * so their messages name the server. */
#ifndef ACP_PGVALUE_H
#define ACP_PGVALUE_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "async_platform.h"
#include "buf.h"
#include "pgpool.h"
#include "store.h"

/* The columns of a store_job, in the order pgvalue_read_job expects. Times as
 * whole microseconds since the epoch; the file name arrays as JSON so that
 * any name survives the round trip without a hand-written array parser; the
 * size arrays as bigint[] text, numbers only. */
#define PGVALUE_JOB_COLUMNS                                                                        \
    "encode(job_id, 'hex'), status, queue, config, array_to_json(input_files)::text, "             \
    "(extract(epoch FROM created) * 1000000)::bigint, "                                            \
    "(extract(epoch FROM last_accessed) * 1000000)::bigint, "                                      \
    "(extract(epoch FROM grabbed) * 1000000)::bigint, "                                            \
    "(extract(epoch FROM finished) * 1000000)::bigint, error, attempts, layout, "                  \
    "input_sizes::text, array_to_json(output_files)::text, output_sizes::text, priority, "         \
    "(extract(epoch FROM not_before) * 1000000)::bigint, max_attempts, timeout_seconds, "          \
    "backoff_base_ms, backoff_max_ms, "                                                            \
    "(extract(epoch FROM cancel_requested) * 1000000)::bigint, "                                   \
    "(extract(epoch FROM dispatched) * 1000000)::bigint, log_size, coalesce(log_head, 0), "        \
    "progress_done, progress_total, progress_text, "                                               \
    "(extract(epoch FROM progress_updated) * 1000000)::bigint"
#define PGVALUE_JOB_COLUMN_COUNT 29

/* The last status compute.jobs knows. */
#define PGVALUE_STATUS_LAST  ACP_STATUS_CANCELLED
#define PGVALUE_STATUS_COUNT (PGVALUE_STATUS_LAST - ACP_STATUS_QUEUED + 1)

/* The name compute.jobs stores for @status; NULL for no status. */
const char *pgvalue_status_name(acp_job_status status);

/* 0 with *@out set, or -1 when @name is no status. */
int pgvalue_status_parse(const char *name, acp_job_status *out);

/* The name compute.jobs stores for @layout ("native" or "lcp"; the default
 * is "lcp", as store_run_options says); NULL for no layout. */
const char *pgvalue_layout_name(acp_layout layout);

/* The layout named @name ("native" or "lcp"); ACP_EDB for another name. */
int pgvalue_parse_layout(const pgpool *pool, const char *name, acp_layout *out);

/* Ids go as binary bytea, 16 bytes: no hex round trip, no escaping. */
void pgvalue_param_id(pgpool_params *p, const acp_job_id *id);

/* Text; NULL is SQL NULL. */
void pgvalue_param_text(pgpool_params *p, const char *text);

/* Times (µs since the Unix epoch) go as binary timestamptz: exact to the
 * microsecond, which the list cursor's equality needs, where a conversion
 * through text or floating point in SQL could be off by one. */
int pgvalue_param_time(const pgpool *pool, pgpool_params *p, const char *what, int64_t us);

/* @us (µs since the epoch) as "2001-02-03 04:05:06.000007 UTC". */
void pgvalue_format_time(int64_t us, char *out, size_t size);

/* A PostgreSQL array literal of @count strings, every element quoted so
 * that commas, braces, white space and the word NULL stay data. */
int pgvalue_text_array(const pgpool *pool, const char *what, const char *const *items, size_t count,
                       buf *out);

/* A bigint[] literal of @count sizes, or SQL NULL (*@out left empty, the
 * caller passes NULL) when @sizes is NULL. ACP_EINVAL for a size beyond
 * bigint. */
int pgvalue_size_array(const pgpool *pool, const char *what, const uint64_t *sizes, size_t count,
                       buf *out);

/* The end of a run as four parameters appended to @p: status (complete or
 * failed, else ACP_EINVAL), message, output names and their sizes; the two
 * array literals live in @names and @sizes until the statement has run
 * (free them with buf_free either way). */
int pgvalue_param_run_end(const pgpool *pool, const char *what, pgpool_params *p, buf *names,
                          buf *sizes, acp_job_status status, const char *message,
                          const char *const *outputs, const uint64_t *output_sizes,
                          size_t output_count);

/* A bytea[] literal of @count ids: {"\\x<hex>",...}; inside quotes "\\"
 * is one "\". */
int pgvalue_id_array(const acp_job_id *ids, size_t count, buf *out);

/* A bigint column; 0 for NULL. */
int64_t pgvalue_get_int64(const PGresult *res, int row, int col);

/* A column of encode(job_id, 'hex'); ACP_EDB when it is no 16-byte id. */
int pgvalue_get_id(const pgpool *pool, const PGresult *res, int row, int col, acp_job_id *out);

/* Fill @job from row @row of PGVALUE_JOB_COLUMNS. On failure @job holds what
 * was read so far; the caller frees it. */
int pgvalue_read_job(const pgpool *pool, const PGresult *res, int row, store_job *job);

/* Rows of PGVALUE_JOB_COLUMNS into a new array. */
int pgvalue_read_jobs(const pgpool *pool, const PGresult *res, store_job **out, size_t *count);

/* Rows of (hex id, queue, config, dispatch_failures, layout[, status])
 * into @out; the status is queued when the rows have no sixth column. */
int pgvalue_read_dispatch_list(const pgpool *pool, const PGresult *res, store_dispatch_list *out);

#endif
