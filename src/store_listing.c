/* Reading many rows: store_list's keyset pages and the batch look-ups
 * store_exists and store_runs_alive. See store.h for each contract. */
#include "store_listing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "buf.h"
#include "error.h"
#include "pgpool.h"
#include "pgvalue.h"

/* Every page is a keyset scan of an index in (created, job_id) order, from
 * the cursor on. Without a filter, of the (created, job_id) index. With a
 * status or queue filter, one scan per wanted status (LATERAL over their
 * names) of the (status, ...) or (queue, status, ...) index, each stopping
 * after @limit rows, then a sort of those at most 5 x @limit rows: a page
 * costs the same however rare the wanted jobs are, where filtering the plain
 * order would read past every unwanted one. */
int store_listing_list(store *base, unsigned statuses, const char *queue, int64_t after_created,
                       const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count)
{
    pgpool *pool = pgpool_of(base);
    if (rows)
        *rows = NULL;
    if (count)
        *count = 0;
    if (!pool || !rows || !count)
        return error_set(ACP_EINVAL, "store_list: NULL argument");
    const char *what = "list jobs";
    const char *names[PGVALUE_STATUS_COUNT];
    size_t name_count = 0;
    unsigned known = 0;
    for (int s = ACP_STATUS_QUEUED; s <= PGVALUE_STATUS_LAST; s++) {
        known |= 1u << s;
        if (statuses == 0 || (statuses & (1u << s)))
            names[name_count++] = pgvalue_status_name((acp_job_status)s);
    }
    if (statuses & ~known)
        return pgpool_fail(pool, ACP_EINVAL, "%s: the status set 0x%x has bits of no status", what,
                           statuses);
    if (limit == 0)
        return 0;

    pgpool_params p = {0};
    char cursor[96] = "", queue_match[32] = "", max[24];
    if (after_id) {
        int rc = pgvalue_param_time(pool, &p, what, after_created);
        if (rc)
            return rc;
        pgvalue_param_id(&p, after_id);
        snprintf(cursor, sizeof cursor, " AND (created, job_id) > ($%d::timestamptz, $%d::bytea)",
                 p.count - 1, p.count);
    }
    snprintf(max, sizeof max, "%zu", limit);
    pgvalue_param_text(&p, max);
    int limit_param = p.count;
    buf sql = BUF_INIT, array = BUF_INIT;
    int rc;
    if (!queue && name_count == PGVALUE_STATUS_COUNT) {
        rc = buf_printf(&sql,
                        "SELECT " PGVALUE_JOB_COLUMNS " FROM compute.jobs WHERE true%s "
                        "ORDER BY created, job_id LIMIT $%d::bigint",
                        cursor, limit_param);
    } else {
        rc = pgvalue_text_array(pool, what, names, name_count, &array);
        if (rc == 0) {
            pgvalue_param_text(&p, array.data);
            int statuses_param = p.count;
            if (queue) {
                pgvalue_param_text(&p, queue);
                snprintf(queue_match, sizeof queue_match, " AND queue = $%d", p.count);
            }
            rc = buf_printf(&sql,
                            "SELECT l.* FROM unnest($%d::text[]) AS w(wanted) CROSS JOIN LATERAL ("
                            "  SELECT " PGVALUE_JOB_COLUMNS ", created AS sort_created, "
                            "    job_id AS sort_id FROM compute.jobs"
                            "  WHERE status = w.wanted%s%s"
                            "  ORDER BY created, job_id LIMIT $%d::bigint) AS l "
                            "ORDER BY l.sort_created, l.sort_id LIMIT $%d::bigint",
                            statuses_param, queue_match, cursor, limit_param, limit_param);
        }
    }
    PGresult *res = NULL;
    if (rc == 0)
        rc = pgpool_query(pool, true, what, sql.data, &p, &res);
    buf_free(&sql);
    buf_free(&array);
    if (rc)
        return rc;
    rc = pgvalue_read_jobs(pool, res, rows, count);
    PQclear(res);
    return rc;
}

/* The answer of a statement returning 1-based positions among @count: those
 * entries of @flags become true. */
static void store_listing_mark(const PGresult *res, size_t count, bool *flags)
{
    for (int r = 0; r < PQntuples(res); r++) {
        long long position = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        if (position >= 1 && (unsigned long long)position <= count)
            flags[position - 1] = true;
    }
}

int store_listing_exists(store *base, const acp_job_id *ids, size_t count, bool *exists)
{
    pgpool *pool = pgpool_of(base);
    if (!pool || (count > 0 && (!ids || !exists)))
        return error_set(ACP_EINVAL, "store_exists: NULL argument");
    if (count == 0)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "look up %zu job ids", count);
    for (size_t i = 0; i < count; i++)
        exists[i] = false;
    buf array = BUF_INIT;
    int rc = pgvalue_id_array(ids, count, &array);
    if (rc) {
        buf_free(&array);
        return error_prefix(rc, pool->where);
    }
    pgpool_params p = {0};
    pgvalue_param_text(&p, array.data);
    PGresult *res;
    /* The positions (1-based) of the ids that have a row: one primary key
     * probe per id, and duplicates in @ids need no matching up. */
    rc = pgpool_query(pool, true, what,
                      "SELECT i FROM unnest($1::bytea[]) WITH ORDINALITY AS x(id, i) "
                      "WHERE EXISTS (SELECT 1 FROM compute.jobs j WHERE j.job_id = x.id)",
                      &p, &res);
    buf_free(&array);
    if (rc)
        return rc;
    store_listing_mark(res, count, exists);
    PQclear(res);
    return 0;
}

int store_listing_runs_alive(store *base, const acp_job_id *ids, const unsigned *attempts,
                             size_t count, bool *alive)
{
    pgpool *pool = pgpool_of(base);
    if (!pool || (count > 0 && (!ids || !attempts || !alive)))
        return error_set(ACP_EINVAL, "store_runs_alive: NULL argument");
    if (count == 0)
        return 0;
    char what[64];
    snprintf(what, sizeof what, "look up %zu job runs", count);
    for (size_t i = 0; i < count; i++)
        alive[i] = false;
    /* The ids as in store_exists, plus an int[] of the attempts. */
    buf id_array = BUF_INIT, attempt_array = BUF_INIT;
    int rc = pgvalue_id_array(ids, count, &id_array);
    if (rc == 0)
        rc = buf_puts(&attempt_array, "{");
    for (size_t i = 0; rc == 0 && i < count; i++)
        rc = buf_printf(&attempt_array, "%s%u", i ? "," : "", attempts[i]);
    if (rc == 0)
        rc = buf_puts(&attempt_array, "}");
    if (rc) {
        buf_free(&id_array);
        buf_free(&attempt_array);
        return error_prefix(rc, pool->where);
    }
    pgpool_params p = {0};
    pgvalue_param_text(&p, id_array.data);
    pgvalue_param_text(&p, attempt_array.data);
    PGresult *res;
    rc = pgpool_query(pool, true, what,
                      "SELECT x.i FROM unnest($1::bytea[], $2::int[]) WITH ORDINALITY "
                      "AS x(id, attempt, i) WHERE EXISTS (SELECT 1 FROM compute.jobs j "
                      "WHERE j.job_id = x.id AND j.status = 'in-progress' "
                      "AND j.attempts = x.attempt AND j.lease_expires > now())",
                      &p, &res);
    buf_free(&id_array);
    buf_free(&attempt_array);
    if (rc)
        return rc;
    store_listing_mark(res, count, alive);
    PQclear(res);
    return 0;
}

int store_listing_count_queued(store *base, store_queue_count **out, size_t *count)
{
    pgpool *pool = pgpool_of(base);
    PGresult *res;
    /* Every queued row is in the claim's partial index (queue first): the
     * count reads the index alone. */
    int rc = pgpool_query(pool, true, "count queued jobs",
                          "SELECT queue, count(*) FROM compute.jobs WHERE status = 'queued' "
                          "GROUP BY queue ORDER BY queue LIMIT " STORE_QUEUES_MAX_TEXT,
                          NULL, &res);
    if (rc)
        return rc;
    int rows = PQntuples(res);
    store_queue_count *counts = rows ? calloc((size_t)rows, sizeof *counts) : NULL;
    if (rows && !counts) {
        PQclear(res);
        return pgpool_fail(pool, ACP_ENOMEM, "count queued jobs: out of memory");
    }
    for (int i = 0; i < rows; i++) {
        snprintf(counts[i].queue, sizeof counts[i].queue, "%s", PQgetvalue(res, i, 0));
        counts[i].count = (uint64_t)pgvalue_get_int64(res, i, 1);
    }
    PQclear(res);
    *out = counts;
    *count = (size_t)rows;
    return 0;
}

/* Adds one row of the counting statement to the queue it names, appending
 * the queue when it is new (rows come sorted by queue). */
static int count_row(pgpool *pool, PGresult *res, int row, acp_queue_counts *counts, size_t *n)
{
    const char *queue = PQgetvalue(res, row, 0);
    if (*n == 0 || strcmp(counts[*n - 1].queue, queue) != 0) {
        if (*n == STORE_QUEUES_MAX)
            return 1; /* the first STORE_QUEUES_MAX queues only */
        snprintf(counts[*n].queue, sizeof counts[*n].queue, "%s", queue);
        (*n)++;
    }
    acp_queue_counts *q = &counts[*n - 1];
    uint64_t value = (uint64_t)pgvalue_get_int64(res, row, 2);
    if (PQgetvalue(res, row, 1)[0] == '\0') {
        q->failed_recently = value;
        return 0;
    }
    acp_job_status status;
    if (pgvalue_status_parse(PQgetvalue(res, row, 1), &status) != 0 || status >= ACP_STATUS_SLOTS)
        return pgpool_fail(pool, ACP_EDB, "count jobs: unknown status '%.32s'",
                           PQgetvalue(res, row, 1));
    q->jobs[status] = value;
    return 0;
}

int store_listing_count_jobs(store *base, int64_t failed_since, acp_queue_counts **out,
                             size_t *count)
{
    pgpool *pool = pgpool_of(base);
    pgpool_params params = {0};
    int rc = pgvalue_param_time(pool, &params, "count jobs", failed_since);
    if (rc)
        return rc;
    /* The first part reads the (queue, status, created, job_id) index alone;
     * the second, only the failed rows. Its status is '' to tell it apart. */
    PGresult *res;
    rc = pgpool_query(pool, true, "count jobs",
                      "SELECT queue, status, count(*) FROM compute.jobs GROUP BY queue, status "
                      "UNION ALL "
                      "SELECT queue, '', count(*) FROM compute.jobs "
                      "WHERE status = 'failed' AND finished >= $1::timestamptz GROUP BY queue "
                      "ORDER BY 1, 2",
                      &params, &res);
    if (rc)
        return rc;
    int rows = PQntuples(res);
    /* At most one queue per row. */
    acp_queue_counts *counts = rows ? calloc((size_t)rows, sizeof *counts) : NULL;
    if (rows && !counts) {
        PQclear(res);
        return pgpool_fail(pool, ACP_ENOMEM, "count jobs: out of memory");
    }
    size_t n = 0;
    for (int i = 0; i < rows && rc == 0; i++)
        rc = count_row(pool, res, i, counts, &n);
    PQclear(res);
    if (rc < 0) {
        free(counts);
        return rc;
    }
    *out = n ? counts : NULL;
    if (!n)
        free(counts);
    *count = n;
    return 0;
}
