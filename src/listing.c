/* Listing jobs (this service's, page by page from the database; the
 * workspaces of other services found under the shared root) and counting
 * them by queue and status. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "job.h"
#include "platform_state.h"
#include "workspace.h"

#define DEFAULT_LIMIT 100
#define CURSOR_MAX    64

int acp_job_filter_init(acp_job_filter *filter, unsigned version)
{
    if (!filter)
        return error_set(ACP_EINVAL, "acp_job_filter_init: NULL argument");
    if (version < 1 || version > ACP_JOB_FILTER_VERSION)
        return error_set(ACP_EVERSION, "acp_job_filter_init: version %u is not supported (1 to %d)",
                         version, ACP_JOB_FILTER_VERSION);
    memset(filter, 0, sizeof *filter);
    filter->version = version;
    filter->limit = DEFAULT_LIMIT;
    return 0;
}

void acp_job_list_clear(acp_job_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        acp_job_clear(&list->jobs[i]);
    free(list->jobs);
    free(list->next_cursor);
    memset(list, 0, sizeof *list);
}

static int check_limit(size_t limit)
{
    if (limit < 1 || limit > ACP_LIST_LIMIT_MAX)
        return error_set(ACP_EINVAL, "filter.limit: %zu is outside 1..%d", limit,
                         ACP_LIST_LIMIT_MAX);
    return 0;
}

/* Cursors: "<created µs>.<hex id>" for owned jobs, "<hex id>" for unowned
 * workspaces. Opaque to callers, but checked strictly. */
static int parse_owned_cursor(const char *cursor, int64_t *created, acp_job_id *id)
{
    const char *dot = strchr(cursor, '.');
    char *end;
    long long value = dot ? strtoll(cursor, &end, 10) : -1;
    if (!dot || end != dot || value < 0 || acp_job_id_parse(id, dot + 1) != 0)
        return error_set(ACP_EINVAL, "filter.cursor: '%.80s' is not a cursor of this listing",
                         cursor);
    *created = value;
    return 0;
}

static int set_cursor(acp_job_list *list, const char *text)
{
    list->next_cursor = strdup(text);
    return list->next_cursor ? 0 : error_set(ACP_ENOMEM, "out of memory");
}

int acp_list_jobs(acp_platform *p, const acp_job_filter *filter, acp_job_list *list)
{
    if (!p || !filter || !list)
        return error_set(ACP_EINVAL, "acp_list_jobs: NULL argument");
    memset(list, 0, sizeof *list);
    if (filter->version < 1 || filter->version > ACP_JOB_FILTER_VERSION)
        return error_set(ACP_EVERSION,
                         "filter.version: %u is not supported (call "
                         "acp_job_filter_init)",
                         filter->version);
    unsigned all = 0;
    for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_CANCELLED; s++)
        all |= 1u << s;
    if (filter->statuses & ~all)
        return error_set(ACP_EINVAL, "filter.statuses: 0x%x has bits that are no status",
                         filter->statuses);
    if (filter->queue && !config_name_is_safe(filter->queue, ACP_QUEUE_ID_MAX))
        return error_set(ACP_EINVAL, "filter.queue: '%.64s' is not a queue id", filter->queue);
    int rc = check_limit(filter->limit);
    if (rc)
        return rc;
    int64_t after_created = 0;
    acp_job_id after_id;
    if (filter->cursor && (rc = parse_owned_cursor(filter->cursor, &after_created, &after_id)))
        return rc;

    store_job *rows;
    size_t count;
    /* One row more than asked tells whether another page follows. */
    rc = store_list(p->store, filter->statuses, filter->queue, after_created,
                    filter->cursor ? &after_id : NULL, filter->limit + 1, &rows, &count);
    if (rc)
        return rc;
    bool more = count > filter->limit;
    size_t keep = more ? filter->limit : count;
    list->jobs = calloc(keep ? keep : 1, sizeof *list->jobs);
    if (!list->jobs)
        rc = error_set(ACP_ENOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        if (!rc && i < keep)
            job_from_row(&list->jobs[list->count++], &rows[i]); /* position -1: not computed */
        store_job_free(&rows[i]);
    }
    free(rows);
    if (!rc && more) {
        const acp_job *last = &list->jobs[keep - 1];
        char cursor[CURSOR_MAX], hex[ACP_JOB_ID_STRLEN];
        snprintf(cursor, sizeof cursor, "%" PRId64 ".%s", last->created,
                 acp_job_id_format(&last->id, hex));
        rc = set_cursor(list, cursor);
    }
    if (rc)
        acp_job_list_clear(list);
    return rc;
}

int acp_list_unowned(acp_platform *p, const char *cursor, size_t limit, acp_job_list *list)
{
    if (!p || !list)
        return error_set(ACP_EINVAL, "acp_list_unowned: NULL argument");
    memset(list, 0, sizeof *list);
    int rc = check_limit(limit);
    if (rc)
        return rc;
    acp_job_id after;
    if (cursor && acp_job_id_parse(&after, cursor) != 0)
        return error_set(ACP_EINVAL, "cursor: '%.80s' is not a cursor of this listing", cursor);

    acp_job_id *ids = calloc(limit, sizeof *ids);
    bool *owned = calloc(limit, sizeof *owned);
    list->jobs = calloc(limit, sizeof *list->jobs);
    if (!ids || !owned || !list->jobs) {
        rc = error_set(ACP_ENOMEM, "out of memory");
        goto done;
    }
    size_t count;
    bool more;
    if ((rc = objects_list_workspaces(p->objects, cursor ? &after : NULL, limit, ids, &count,
                                      &more)) ||
        (rc = store_exists(p->store, ids, count, owned)))
        goto done;
    for (size_t i = 0; i < count && !rc; i++) {
        if (owned[i])
            continue;
        object_list flags;
        if ((rc = objects_list(p->objects, &ids[i], &flags)))
            break;
        acp_job *job = &list->jobs[list->count];
        /* A workspace deleted since the first listing is simply left out. */
        if (workspace_status_from_flags(&flags, job)) {
            job->id = ids[i];
            list->count++;
        } else {
            memset(job, 0, sizeof *job);
        }
        object_list_free(&flags);
    }
    if (!rc && more) {
        char hex[ACP_JOB_ID_STRLEN];
        rc = set_cursor(list, acp_job_id_format(&ids[count - 1], hex));
    }
done:
    free(ids);
    free(owned);
    if (rc)
        acp_job_list_clear(list);
    return rc;
}

int acp_job_counts_init(acp_job_counts *counts, unsigned version)
{
    if (!counts)
        return error_set(ACP_EINVAL, "acp_job_counts_init: NULL argument");
    if (version < 1 || version > ACP_JOB_COUNTS_VERSION)
        return error_set(ACP_EVERSION, "acp_job_counts_init: version %u is not supported (1 to %d)",
                         version, ACP_JOB_COUNTS_VERSION);
    memset(counts, 0, sizeof *counts);
    counts->version = version;
    return 0;
}

void acp_job_counts_clear(acp_job_counts *counts)
{
    if (!counts)
        return;
    free(counts->queues);
    counts->queues = NULL;
    counts->count = 0;
}

int acp_count_jobs(acp_platform *p, acp_job_counts *counts)
{
    if (!p || !counts)
        return error_set(ACP_EINVAL, "acp_count_jobs: NULL argument");
    if (counts->version < 1 || counts->version > ACP_JOB_COUNTS_VERSION)
        return error_set(ACP_EVERSION,
                         "counts.version: %u is not supported (call acp_job_counts_init)",
                         counts->version);
    acp_job_counts_clear(counts);
    if (counts->failed_since < 0)
        return error_set(ACP_EINVAL, "counts.failed_since: %" PRId64 " is before 1970",
                         counts->failed_since);
    int64_t since =
        counts->failed_since ? counts->failed_since : clock_wall_us() - INT64_C(3600) * 1000000;
    return store_count_jobs(p->store, since, &counts->queues, &counts->count);
}
