/* Values between C and PostgreSQL: see pgvalue.h. */
#include "pgvalue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "json.h"

static const char *const pgvalue_status_names[] = {
    [ACP_STATUS_QUEUED] = "queued",     [ACP_STATUS_IN_PROGRESS] = "in-progress",
    [ACP_STATUS_COMPLETE] = "complete", [ACP_STATUS_FAILED] = "failed",
    [ACP_STATUS_EXPIRED] = "expired",   [ACP_STATUS_CANCELLED] = "cancelled",
};

const char *pgvalue_status_name(acp_job_status status)
{
    if (status < ACP_STATUS_QUEUED || status > PGVALUE_STATUS_LAST)
        return NULL;
    return pgvalue_status_names[status];
}

const char *pgvalue_layout_name(acp_layout layout)
{
    switch (layout) {
    case ACP_LAYOUT_NATIVE:
        return "native";
    case ACP_LAYOUT_DEFAULT:
    case ACP_LAYOUT_LCP:
        return "lcp";
    }
    return NULL;
}

int pgvalue_status_parse(const char *name, acp_job_status *out)
{
    for (int s = ACP_STATUS_QUEUED; s <= PGVALUE_STATUS_LAST; s++) {
        if (strcmp(name, pgvalue_status_names[s]) == 0) {
            *out = (acp_job_status)s;
            return 0;
        }
    }
    return -1;
}

void pgvalue_param_id(pgpool_params *p, const acp_job_id *id)
{
    p->values[p->count] = (const char *)id->bytes;
    p->lengths[p->count] = (int)sizeof id->bytes;
    p->formats[p->count] = 1;
    p->count++;
}

void pgvalue_param_text(pgpool_params *p, const char *text)
{
    p->values[p->count] = text;
    p->lengths[p->count] = 0;
    p->formats[p->count] = 0;
    p->count++;
}

/* PostgreSQL's binary timestamptz counts microseconds from 2000-01-01 UTC;
 * its earliest value is 4714-11-24 BC. */
#define PGVALUE_EPOCH_US    INT64_C(946684800000000)
#define PGVALUE_TIME_MIN_US (INT64_C(-211813488000000000) + PGVALUE_EPOCH_US)

int pgvalue_param_time(const pgpool *pool, pgpool_params *p, const char *what, int64_t us)
{
    if (us < PGVALUE_TIME_MIN_US)
        return pgpool_fail(pool, ACP_EINVAL, "%s: time %" PRId64 " µs is before 4714 BC", what, us);
    uint64_t value = (uint64_t)(us - PGVALUE_EPOCH_US);
    unsigned char *bytes = p->binary[p->count];
    for (int i = 7; i >= 0; i--) {
        bytes[i] = (unsigned char)(value & 0xff);
        value >>= 8;
    }
    p->values[p->count] = (const char *)bytes;
    p->lengths[p->count] = 8;
    p->formats[p->count] = 1;
    p->count++;
    return 0;
}

void pgvalue_format_time(int64_t us, char *out, size_t size)
{
    struct tm tm;
    int micros;
    char date[48];
    if (!clock_utc(us, &tm, &micros) ||
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm) == 0) {
        snprintf(out, size, "%" PRId64 " µs", us);
        return;
    }
    snprintf(out, size, "%s.%06d UTC", date, micros);
}

int pgvalue_text_array(const pgpool *pool, const char *what, const char *const *items, size_t count,
                       buf *out)
{
    if (count > 0 && !items)
        return pgpool_fail(pool, ACP_EINVAL, "%s: NULL file list with %zu entries", what, count);
    int rc = buf_puts(out, "{");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (!items[i])
            return pgpool_fail(pool, ACP_EINVAL, "%s: file name %zu is NULL", what, i);
        rc = buf_puts(out, i ? ",\"" : "\"");
        for (const char *s = items[i]; rc == 0 && *s; s++) {
            if (*s == '"' || *s == '\\')
                rc = buf_append(out, "\\", 1);
            if (rc == 0)
                rc = buf_append(out, s, 1);
        }
        if (rc == 0)
            rc = buf_puts(out, "\"");
    }
    if (rc == 0)
        rc = buf_puts(out, "}");
    return rc;
}

int pgvalue_param_run_end(const pgpool *pool, const char *what, pgpool_params *p, buf *names,
                          buf *sizes, acp_job_status status, const char *message,
                          const char *const *outputs, const uint64_t *output_sizes,
                          size_t output_count)
{
    if (status != ACP_STATUS_COMPLETE && status != ACP_STATUS_FAILED &&
        status != ACP_STATUS_CANCELLED)
        return pgpool_fail(pool, ACP_EINVAL,
                           "%s: status %d is not complete, failed or cancelled: not an end", what,
                           (int)status);
    if (status == ACP_STATUS_CANCELLED && !message)
        message = "cancelled";
    int rc = pgvalue_text_array(pool, what, outputs, output_count, names);
    if (!rc)
        rc = pgvalue_size_array(pool, what, output_sizes, output_count, sizes);
    if (rc)
        return rc;
    pgvalue_param_text(p, pgvalue_status_name(status));
    pgvalue_param_text(p, message);
    pgvalue_param_text(p, names->data);
    pgvalue_param_text(p, sizes->data);
    return 0;
}

int pgvalue_size_array(const pgpool *pool, const char *what, const uint64_t *sizes, size_t count,
                       buf *out)
{
    if (!sizes)
        return 0;
    int rc = buf_puts(out, "{");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (sizes[i] > (uint64_t)INT64_MAX)
            return pgpool_fail(pool, ACP_EINVAL, "%s: file size %zu (%" PRIu64 ") exceeds bigint",
                               what, i, sizes[i]);
        rc = buf_printf(out, "%s%" PRIu64, i ? "," : "", sizes[i]);
    }
    if (rc == 0)
        rc = buf_puts(out, "}");
    return rc;
}

int pgvalue_id_array(const acp_job_id *ids, size_t count, buf *out)
{
    int rc = buf_puts(out, "{");
    for (size_t i = 0; rc == 0 && i < count; i++) {
        char hex[ACP_JOB_ID_STRLEN];
        rc = buf_printf(out, "%s\"\\\\x%s\"", i ? "," : "", acp_job_id_format(&ids[i], hex));
    }
    if (rc == 0)
        rc = buf_puts(out, "}");
    return rc;
}

/* A nullable column as an owned string: 0 with NULL for SQL NULL. */
static int pgvalue_get_string(const pgpool *pool, const PGresult *res, int row, int col, char **out)
{
    *out = NULL;
    if (PQgetisnull(res, row, col))
        return 0;
    *out = strdup(PQgetvalue(res, row, col));
    if (!*out)
        return pgpool_fail(pool, ACP_ENOMEM, "out of memory reading a row");
    return 0;
}

int64_t pgvalue_get_int64(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int pgvalue_get_id(const pgpool *pool, const PGresult *res, int row, int col, acp_job_id *out)
{
    if (acp_job_id_parse(out, PQgetvalue(res, row, col)) != 0)
        return pgpool_fail(pool, ACP_EDB, "compute.jobs holds a job_id that is not 16 bytes: %s",
                           PQgetvalue(res, row, col));
    return 0;
}

static int pgvalue_get_queue(const pgpool *pool, const PGresult *res, int row, int col,
                             char out[ACP_QUEUE_ID_MAX + 1])
{
    const char *queue = PQgetvalue(res, row, col);
    size_t len = strlen(queue);
    /* varchar(32) counts characters, so a non-ASCII id can exceed 32 bytes. */
    if (len > ACP_QUEUE_ID_MAX)
        return pgpool_fail(pool, ACP_EDB, "compute.jobs holds queue '%s', longer than %d bytes",
                           queue, ACP_QUEUE_ID_MAX);
    memcpy(out, queue, len + 1);
    return 0;
}

/* A JSON array of names (array_to_json of a varchar[] column @column) into
 * *@out and *@count; SQL NULL and an empty array read as NULL and 0. */
static int pgvalue_parse_names(const pgpool *pool, const char *column, const PGresult *res, int row,
                               int col, char ***out, size_t *count)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const char *text = PQgetvalue(res, row, col);
    json_object *array;
    int rc = json_parse(text, strlen(text), column, &array);
    if (rc)
        return error_prefix(ACP_EDB, pool->where);
    if (!json_object_is_type(array, json_type_array)) {
        json_object_put(array);
        return pgpool_fail(pool, ACP_EDB, "%s is not an array: %s", column, text);
    }
    size_t n = json_object_array_length(array);
    if (n > 0) {
        *out = calloc(n, sizeof **out);
        if (!*out) {
            json_object_put(array);
            return pgpool_fail(pool, ACP_ENOMEM, "out of memory reading %zu names of %s", n,
                               column);
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(array, i);
        if (!json_object_is_type(item, json_type_string)) {
            json_object_put(array);
            return pgpool_fail(pool, ACP_EDB, "%s[%zu] is not a string: %s", column, i, text);
        }
        (*out)[i] = strdup(json_object_get_string(item));
        if (!(*out)[i]) {
            json_object_put(array);
            return pgpool_fail(pool, ACP_ENOMEM, "out of memory reading the names of %s", column);
        }
        *count = i + 1;
    }
    json_object_put(array);
    return 0;
}

/* A bigint[] column @column in text form ("{1,2,3}") into *@out, one size
 * per name of the column it goes with (@count); SQL NULL and an empty array
 * read as NULL. So do sizes whose number is not @count: a library from
 * before migration 4 re-running or finishing the job changes the names and
 * leaves the sizes of an earlier run, which are then unknown, not wrong. */
static int pgvalue_parse_sizes(const pgpool *pool, const char *column, const PGresult *res, int row,
                               int col, size_t count, uint64_t **out)
{
    if (PQgetisnull(res, row, col))
        return 0;
    const char *text = PQgetvalue(res, row, col);
    if (*text != '{')
        return pgpool_fail(pool, ACP_EDB, "%s is %s, not an array", column, text);
    size_t elements = strcmp(text, "{}") == 0 ? 0 : 1;
    for (const char *c = text; elements && *c; c++)
        elements += *c == ',';
    if (elements != count || count == 0)
        return 0;
    uint64_t *sizes = calloc(count, sizeof *sizes);
    if (!sizes)
        return pgpool_fail(pool, ACP_ENOMEM, "out of memory reading %zu sizes of %s", count,
                           column);
    const char *s = text + 1;
    for (size_t i = 0; i < count; i++) {
        char *end;
        errno = 0;
        long long value = strtoll(s, &end, 10);
        if (errno || end == s || value < 0 || *end != (i + 1 < count ? ',' : '}') ||
            (i + 1 == count && end[1] != '\0')) {
            free(sizes);
            return pgpool_fail(pool, ACP_EDB, "%s is %s, not %zu sizes", column, text, count);
        }
        sizes[i] = (uint64_t)value;
        s = end + 1;
    }
    *out = sizes;
    return 0;
}

int pgvalue_parse_layout(const pgpool *pool, const char *name, acp_layout *out)
{
    if (strcmp(name, "native") == 0)
        *out = ACP_LAYOUT_NATIVE;
    else if (strcmp(name, "lcp") == 0)
        *out = ACP_LAYOUT_LCP;
    else
        return pgpool_fail(pool, ACP_EDB, "compute.jobs holds an unknown layout '%s'", name);
    return 0;
}

int pgvalue_read_job(const pgpool *pool, const PGresult *res, int row, store_job *job)
{
    int rc = pgvalue_get_id(pool, res, row, 0, &job->id);
    if (rc)
        return rc;
    const char *status = PQgetvalue(res, row, 1);
    if (pgvalue_status_parse(status, &job->status) != 0)
        return pgpool_fail(pool, ACP_EDB, "job %s has an unknown status '%s'",
                           PQgetvalue(res, row, 0), status);
    if ((rc = pgvalue_get_queue(pool, res, row, 2, job->queue)) ||
        (rc = pgvalue_get_string(pool, res, row, 3, &job->config)) ||
        (rc = pgvalue_parse_names(pool, "input_files", res, row, 4, &job->inputs,
                                  &job->input_count)) ||
        (rc = pgvalue_get_string(pool, res, row, 9, &job->message)) ||
        (rc = pgvalue_parse_layout(pool, PQgetvalue(res, row, 11), &job->layout)) ||
        (rc = pgvalue_parse_sizes(pool, "input_sizes", res, row, 12, job->input_count,
                                  &job->input_sizes)) ||
        (rc = pgvalue_parse_names(pool, "output_files", res, row, 13, &job->outputs,
                                  &job->output_count)) ||
        (rc = pgvalue_parse_sizes(pool, "output_sizes", res, row, 14, job->output_count,
                                  &job->output_sizes)) ||
        (rc = pgvalue_get_string(pool, res, row, 27, &job->progress_text)))
        return rc;
    job->created = pgvalue_get_int64(res, row, 5);
    job->last_accessed = pgvalue_get_int64(res, row, 6);
    job->grabbed = pgvalue_get_int64(res, row, 7);
    job->finished = pgvalue_get_int64(res, row, 8);
    job->attempts = (unsigned)pgvalue_get_int64(res, row, 10);
    job->priority = (int)pgvalue_get_int64(res, row, 15);
    job->not_before = pgvalue_get_int64(res, row, 16);
    job->max_attempts = (unsigned)pgvalue_get_int64(res, row, 17);
    job->timeout_seconds = (unsigned)pgvalue_get_int64(res, row, 18);
    job->backoff_base_ms = (unsigned)pgvalue_get_int64(res, row, 19);
    job->backoff_max_ms = (unsigned)pgvalue_get_int64(res, row, 20);
    job->cancel_requested = pgvalue_get_int64(res, row, 21);
    job->dispatched = pgvalue_get_int64(res, row, 22);
    job->log_size = (uint64_t)pgvalue_get_int64(res, row, 23);
    job->log_head = (uint64_t)pgvalue_get_int64(res, row, 24);
    job->progress_done = (uint64_t)pgvalue_get_int64(res, row, 25);
    job->progress_total = (uint64_t)pgvalue_get_int64(res, row, 26);
    job->progress_updated = pgvalue_get_int64(res, row, 28);
    return 0;
}

int pgvalue_read_jobs(const pgpool *pool, const PGresult *res, store_job **out, size_t *count)
{
    int rows = PQntuples(res);
    if (rows == 0)
        return 0;
    store_job *jobs = calloc((size_t)rows, sizeof *jobs);
    if (!jobs)
        return pgpool_fail(pool, ACP_ENOMEM, "out of memory reading %d jobs", rows);
    for (int r = 0; r < rows; r++) {
        store_job_init(&jobs[r]);
        int rc = pgvalue_read_job(pool, res, r, &jobs[r]);
        if (rc) {
            for (int k = 0; k <= r; k++)
                store_job_free(&jobs[k]);
            free(jobs);
            return rc;
        }
    }
    *out = jobs;
    *count = (size_t)rows;
    return 0;
}

int pgvalue_read_dispatch_list(const pgpool *pool, const PGresult *res, store_dispatch_list *out)
{
    int rows = PQntuples(res);
    if (rows == 0)
        return 0;
    out->items = calloc((size_t)rows, sizeof *out->items);
    if (!out->items)
        return pgpool_fail(pool, ACP_ENOMEM, "out of memory reading %d jobs", rows);
    for (int r = 0; r < rows; r++) {
        store_dispatch *item = &out->items[r];
        int rc;
        if ((rc = pgvalue_get_id(pool, res, r, 0, &item->id)) ||
            (rc = pgvalue_get_queue(pool, res, r, 1, item->queue)) ||
            (rc = pgvalue_get_string(pool, res, r, 2, &item->config)) ||
            (rc = pgvalue_parse_layout(pool, PQgetvalue(res, r, 4), &item->layout))) {
            out->count = (size_t)r + 1;
            store_dispatch_list_free(out);
            return rc;
        }
        item->failures = (unsigned)pgvalue_get_int64(res, r, 3);
        item->status = ACP_STATUS_QUEUED;
        if (PQnfields(res) > 5 && pgvalue_status_parse(PQgetvalue(res, r, 5), &item->status) != 0) {
            out->count = (size_t)r + 1;
            store_dispatch_list_free(out);
            return pgpool_fail(pool, ACP_EDB, "job %s has an unknown status '%s'",
                               PQgetvalue(res, r, 0), PQgetvalue(res, r, 5));
        }
    }
    out->count = (size_t)rows;
    return 0;
}
