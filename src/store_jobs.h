/* The PostgreSQL statements on one job: store_get, store_touch,
 * store_insert, store_requeue, the dispatch marks, store_finish and
 * store_delete (store.h has each
 * contract; store_pg.c puts these in its store_ops), and the rule "a
 * statement by id that matches no row means there is no such job" that the
 * store's other statements share. */
#ifndef ACP_STORE_JOBS_H
#define ACP_STORE_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "async_platform.h"
#include "error.h"
#include "pgpool.h"
#include "store.h"

/* ACP_EINVAL naming @name, the store_* function called, for a NULL handle
 * or id. */
#define STORE_JOBS_CHECK(pool, id, name)                                                           \
    do {                                                                                           \
        if (!(pool) || !(id))                                                                      \
            return error_set(ACP_EINVAL, "%s: NULL argument", name);                               \
    } while (0)

/* Whether the statement of @res matched a row: returned one, or (an UPDATE
 * or DELETE without RETURNING) changed one. */
bool store_jobs_matched(const PGresult *res);

/* Zero rows means not found: 0 when @res matched a row, otherwise
 * ACP_ENOTFOUND "<@what>: no such job". */
int store_jobs_found(const pgpool *pool, const char *what, const PGresult *res);

/* Query one row by id: runs @sql with $1 = @id (@repeatable as in
 * pgpool_query), then store_jobs_found. On 0, *@out holds the result (the
 * caller clears it); a NULL @out has it cleared here. */
int store_jobs_by_id(pgpool *pool, const acp_job_id *id, bool repeatable, const char *what,
                     const char *sql, PGresult **out);

/* After an UPDATE matched no row: ACP_ENOTFOUND when the job does not
 * exist, otherwise @conflict_code with its current status and queue in the
 * message. */
int store_jobs_explain_miss(pgpool *pool, const acp_job_id *id, const char *what, int conflict_code,
                            const char *expected);

/* @opt (NULL: the layout lcp and priority ACP_PRIORITY_DEFAULT) with the
 * defaults of store_run_options for the zero fields. */
void store_jobs_control_defaults(const store_run_options *opt, store_run_options *out);

int store_jobs_get(store *base, const acp_job_id *id, store_job *out);
int store_jobs_touch(store *base, const acp_job_id *id);
int store_jobs_insert(store *base, const acp_job_id *id, const char *queue, const char *config,
                      const char *const *inputs, size_t input_count, const store_run_options *opt);
int store_jobs_requeue(store *base, const acp_job_id *id, const char *queue, const char *config,
                       const char *const *inputs, size_t input_count, const store_run_options *opt);
int store_jobs_mark_dispatched(store *base, const acp_job_id *id);
int store_jobs_clear_dispatched(store *base, const acp_job_id *id);
int store_jobs_dispatch_failed(store *base, const acp_job_id *id);
int store_jobs_fail_undispatchable(store *base, const acp_job_id *id, const char *message);
int store_jobs_finish(store *base, const acp_job_id *id, const char *owner, acp_job_status status,
                      const char *message, const char *const *outputs, const uint64_t *output_sizes,
                      size_t output_count);
int store_jobs_delete(store *base, const acp_job_id *id);

#endif
