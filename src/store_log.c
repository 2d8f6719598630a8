/* Job logs and progress in PostgreSQL: see store_log.h. */
#include "store_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "error.h"
#include "pgpool.h"
#include "pgvalue.h"
#include "store_jobs.h"
#include "store_pg.h"

static int store_log_check(store *st, const acp_job_id *id, const char *what)
{
    if (!st || !id)
        return error_set(ACP_EINVAL, "%s: NULL argument", what);
    if (st->ops != &store_pg_ops)
        return error_set(ACP_EINVAL, "%s: the %s store keeps no job logs", what, st->ops->name);
    return 0;
}

static void store_log_param_bytes(pgpool_params *p, const char *data, size_t len)
{
    p->values[p->count] = data ? data : "";
    p->lengths[p->count] = (int)len;
    p->formats[p->count] = 1;
    p->count++;
}

/* The fence of every writer's statement: the lease of this very attempt. */
#define STORE_LOG_FENCE                                                                            \
    "WHERE job_id = $1::bytea AND status = 'in-progress' AND lease_owner = $2 "                    \
    "AND attempts = $3::int "

int store_log_flush(store *st, const acp_job_id *id, const char *owner, unsigned attempt,
                    const store_log_chunk *chunks, size_t count, uint64_t size, uint64_t head,
                    uint64_t tail_start, const store_log_progress *progress)
{
    int rc = store_log_check(st, id, "store_log_flush");
    if (rc)
        return rc;
    pgpool *pool = pgpool_of(st);
    char hex[ACP_JOB_ID_STRLEN], what[64];
    snprintf(what, sizeof what, "write the log of job %s", acp_job_id_format(id, hex));
    /* The chunks travel as one binary bytea and arrays of where each one
     * begins in it and in the stream: no hex text of the bytes. */
    buf data = BUF_INIT, pos = BUF_INIT, off = BUF_INIT, len = BUF_INIT;
    rc = buf_puts(&pos, "{");
    if (!rc)
        rc = buf_puts(&off, "{");
    if (!rc)
        rc = buf_puts(&len, "{");
    for (size_t i = 0; !rc && i < count; i++) {
        const char *sep = i ? "," : "";
        rc = buf_printf(&pos, "%s%" PRIu64, sep, chunks[i].pos);
        if (!rc)
            rc = buf_printf(&off, "%s%zu", sep, data.len);
        if (!rc)
            rc = buf_printf(&len, "%s%zu", sep, chunks[i].len);
        if (!rc)
            rc = buf_append(&data, chunks[i].data, chunks[i].len);
    }
    if (!rc)
        rc = buf_puts(&pos, "}");
    if (!rc)
        rc = buf_puts(&off, "}");
    if (!rc)
        rc = buf_puts(&len, "}");
    if (!rc && data.len > INT32_MAX)
        rc = pgpool_fail(pool, ACP_ETOOBIG, "%s: %zu bytes in one flush", what, data.len);
    char numbers[7][24];
    snprintf(numbers[0], sizeof numbers[0], "%u", attempt);
    snprintf(numbers[1], sizeof numbers[1], "%" PRIu64, size);
    snprintf(numbers[2], sizeof numbers[2], "%" PRIu64, head);
    snprintf(numbers[3], sizeof numbers[3], "%" PRIu64, tail_start);
    snprintf(numbers[4], sizeof numbers[4], "%" PRIu64, progress ? progress->done : 0);
    snprintf(numbers[5], sizeof numbers[5], "%" PRIu64, progress ? progress->total : 0);
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    pgvalue_param_text(&p, owner);
    pgvalue_param_text(&p, numbers[0]);
    pgvalue_param_text(&p, chunks ? "t" : "f"); /* $4 */
    pgvalue_param_text(&p, numbers[1]);
    pgvalue_param_text(&p, numbers[2]);
    pgvalue_param_text(&p, numbers[3]);
    pgvalue_param_text(&p, progress ? "t" : "f"); /* $8 */
    pgvalue_param_text(&p, numbers[4]);
    pgvalue_param_text(&p, numbers[5]);
    pgvalue_param_text(&p, progress ? progress->text : NULL);
    pgvalue_param_text(&p, pos.data);
    pgvalue_param_text(&p, off.data);
    pgvalue_param_text(&p, len.data);
    store_log_param_bytes(&p, data.data, data.len); /* $15 */
    PGresult *res = NULL;
    /* Each part reads the fenced row (j): when the lease is not ours, no
     * chunk is written and none deleted. The deletion does not see the
     * chunks this statement inserts; those begin at or after @tail_start. */
    if (!rc)
        rc = pgpool_query(
            pool, false, what,
            "WITH j AS (UPDATE compute.jobs SET "
            "log_size = CASE WHEN $4::bool THEN $5::bigint ELSE log_size END, "
            "log_head = CASE WHEN $4::bool THEN $6::bigint ELSE log_head END, "
            "progress_done = CASE WHEN $8::bool THEN $9::bigint ELSE progress_done END, "
            "progress_total = CASE WHEN $8::bool THEN $10::bigint ELSE progress_total END, "
            "progress_text = CASE WHEN $8::bool THEN $11 ELSE progress_text END, "
            "progress_updated = CASE WHEN $8::bool THEN now() ELSE progress_updated "
            "END " STORE_LOG_FENCE "RETURNING job_id), "
            "ins AS (INSERT INTO compute.job_logs (job_id, pos, data) "
            "  SELECT j.job_id, c.pos, substring($15::bytea FROM c.off::int + 1 FOR c.len::int) "
            "  FROM j, unnest($12::bigint[], $13::bigint[], $14::bigint[]) AS c(pos, off, len)), "
            "del AS (DELETE FROM compute.job_logs l USING j WHERE l.job_id = j.job_id "
            "  AND l.pos >= $6::bigint AND l.pos < $7::bigint) "
            "SELECT count(*) FROM j LEFT JOIN LATERAL (SELECT pg_notify('" STORE_LOG_CHANNEL "', "
            "  encode(j.job_id, 'hex')) WHERE $4::bool) n ON true",
            &p, &res);
    buf_free(&data);
    buf_free(&pos);
    buf_free(&off);
    buf_free(&len);
    if (rc)
        return rc;
    bool fenced = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
    PQclear(res);
    if (!fenced)
        return pgpool_fail(pool, ACP_ECONFLICT,
                           "%s: the job is no longer in-progress leased by this process", what);
    return 0;
}

void store_log_view_free(store_log_view *view)
{
    if (!view)
        return;
    for (size_t i = 0; i < view->count; i++)
        PQfreemem((void *)view->chunks[i].data);
    free(view->chunks);
    PQclear(view->owned);
    memset(view, 0, sizeof *view);
}

/* Rows (pos, data) of @res from column @col on into @out's chunks; rows
 * whose pos is NULL (no chunk) are skipped. */
static int store_log_take_chunks(pgpool *pool, PGresult *res, int col, store_log_view *out)
{
    int rows = PQntuples(res);
    out->owned = res;
    if (rows == 0)
        return 0;
    out->chunks = calloc((size_t)rows, sizeof *out->chunks);
    if (!out->chunks)
        return pgpool_fail(pool, ACP_ENOMEM, "reading a job log: out of memory");
    for (int r = 0; r < rows; r++) {
        if (PQgetisnull(res, r, col))
            continue;
        size_t len;
        unsigned char *data =
            PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, col + 1), &len);
        if (!data)
            return pgpool_fail(pool, ACP_ENOMEM, "reading a job log: out of memory");
        store_log_chunk *c = &out->chunks[out->count++];
        c->pos = (uint64_t)pgvalue_get_int64(res, r, col);
        c->data = (const char *)data;
        c->len = len;
    }
    return 0;
}

int store_log_view_read(store *st, const acp_job_id *id, uint64_t offset, size_t max_rows,
                        store_log_view *out)
{
    memset(out, 0, sizeof *out);
    int rc = store_log_check(st, id, "store_log_view_read");
    if (rc)
        return rc;
    pgpool *pool = pgpool_of(st);
    char hex[ACP_JOB_ID_STRLEN], what[64], from[24], rows[24];
    snprintf(what, sizeof what, "read the log of job %s", acp_job_id_format(id, hex));
    snprintf(from, sizeof from, "%" PRIu64, offset);
    snprintf(rows, sizeof rows, "%zu", max_rows);
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    pgvalue_param_text(&p, from);
    pgvalue_param_text(&p, rows);
    PGresult *res;
    /* One snapshot for the state and the chunks: a job that ends meanwhile
     * is seen either running with its rows or ended without them. The
     * chunks start at the last one beginning at or before @offset (the
     * primary key's order). */
    rc = pgpool_query(
        pool, true, what,
        "SELECT j.status, j.log_size, coalesce(j.log_head, 0), "
        "EXISTS (SELECT 1 FROM compute.job_logs l WHERE l.job_id = j.job_id), "
        "(SELECT min(pos) FROM compute.job_logs l WHERE l.job_id = j.job_id "
        "  AND l.pos >= coalesce(j.log_head, 0)), c.pos, c.data "
        "FROM compute.jobs j LEFT JOIN LATERAL (SELECT l.pos, l.data FROM compute.job_logs l "
        "  WHERE l.job_id = j.job_id AND l.pos >= coalesce((SELECT max(m.pos) "
        "  FROM compute.job_logs m WHERE m.job_id = j.job_id AND m.pos <= $2::bigint), 0) "
        "  ORDER BY l.pos LIMIT $3::bigint) c ON true "
        "WHERE j.job_id = $1::bytea ORDER BY c.pos",
        &p, &res);
    if (rc)
        return rc;
    if ((rc = store_jobs_found(pool, what, res)) != 0) {
        PQclear(res);
        return rc;
    }
    if (pgvalue_status_parse(PQgetvalue(res, 0, 0), &out->status) != 0) {
        rc = pgpool_fail(pool, ACP_EDB, "%s: unknown status '%s'", what, PQgetvalue(res, 0, 0));
        PQclear(res);
        return rc;
    }
    out->size = (uint64_t)pgvalue_get_int64(res, 0, 1);
    out->head = (uint64_t)pgvalue_get_int64(res, 0, 2);
    out->live = strcmp(PQgetvalue(res, 0, 3), "t") == 0;
    out->tail_first = PQgetisnull(res, 0, 4) ? out->size : (uint64_t)pgvalue_get_int64(res, 0, 4);
    rc = store_log_take_chunks(pool, res, 5, out);
    if (rc)
        store_log_view_free(out);
    return rc;
}

int store_log_read_all(store *st, const acp_job_id *id, const char *owner, unsigned attempt,
                       store_log_view *out)
{
    memset(out, 0, sizeof *out);
    int rc = store_log_check(st, id, "store_log_read_all");
    if (rc)
        return rc;
    pgpool *pool = pgpool_of(st);
    char hex[ACP_JOB_ID_STRLEN], what[64], number[16];
    snprintf(what, sizeof what, "read the log of job %s", acp_job_id_format(id, hex));
    snprintf(number, sizeof number, "%u", attempt);
    pgpool_params p = {0};
    pgvalue_param_id(&p, id);
    pgvalue_param_text(&p, owner);
    pgvalue_param_text(&p, number);
    PGresult *res;
    rc = pgpool_query(pool, true, what,
                      "SELECT j.log_size, coalesce(j.log_head, 0), l.pos, l.data "
                      "FROM compute.jobs j LEFT JOIN compute.job_logs l ON l.job_id = j.job_id "
                      "WHERE j.job_id = $1::bytea AND j.status = 'in-progress' "
                      "AND j.lease_owner = $2 AND j.attempts = $3::int ORDER BY l.pos",
                      &p, &res);
    if (rc)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return pgpool_fail(pool, ACP_ECONFLICT,
                           "%s: the job is no longer in-progress leased by this process", what);
    }
    out->status = ACP_STATUS_IN_PROGRESS;
    out->size = (uint64_t)pgvalue_get_int64(res, 0, 0);
    out->head = (uint64_t)pgvalue_get_int64(res, 0, 1);
    rc = store_log_take_chunks(pool, res, 2, out);
    if (rc) {
        store_log_view_free(out);
        return rc;
    }
    out->live = out->count > 0;
    out->tail_first = out->size;
    for (size_t i = 0; i < out->count; i++)
        if (out->chunks[i].pos >= out->head) {
            out->tail_first = out->chunks[i].pos;
            break;
        }
    return 0;
}
