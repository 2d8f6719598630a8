/* acp_get_stats: the platform's counters and its backends'. */
#include <stddef.h>
#include <string.h>

#include "error.h"
#include "platform_state.h"
#include "running.h"

int acp_get_stats(acp_platform *p, acp_stats *stats)
{
    if (!p || !stats)
        return error_set(ACP_EINVAL, "acp_get_stats: NULL argument");
    if (stats->version < 1 || stats->version > ACP_STATS_VERSION)
        return error_set(ACP_EVERSION, "stats.version: %u is not supported (1 to %d)",
                         stats->version, ACP_STATS_VERSION);
    uint64_t s3[OBJECTS_KINDS];
    objects_request_counts(p->objects, s3);
    unsigned running = 0;
    for (size_t i = 0; i < p->queue_count; i++)
        running += (unsigned)atomic_load(&p->queues[i].running);
    acp_stats all = {
        .version = ACP_STATS_VERSION,
        .jobs_submitted = atomic_load(&p->submitted),
        .jobs_started = atomic_load(&p->started),
        .jobs_completed = atomic_load(&p->completed),
        .jobs_failed = atomic_load(&p->failed),
        .jobs_requeued = atomic_load(&p->requeued),
        .jobs_expired = atomic_load(&p->expired),
        .messages_published = atomic_load(&p->published),
        .messages_acked = atomic_load(&p->acked),
        .messages_dropped = atomic_load(&p->dropped),
        .sql_statements = store_statement_count(p->store),
        .s3_puts = s3[OBJECTS_PUT],
        .s3_gets = s3[OBJECTS_GET],
        .s3_heads = s3[OBJECTS_HEAD],
        .s3_lists = s3[OBJECTS_LIST],
        .s3_deletes = s3[OBJECTS_DELETE],
        .jobs_running = running,
        .jobs_retried = atomic_load(&p->retried),
        .jobs_cancelled = atomic_load(&p->cancelled),
        .jobs_timed_out = atomic_load(&p->timed_out),
        .executors_overdue = (unsigned)running_overdue_count(p),
    };
    /* Only the fields of the caller's version: its structure may be older. */
    size_t size = stats->version == 1 ? offsetof(acp_stats, jobs_retried) : sizeof all;
    all.version = stats->version;
    memcpy(stats, &all, size);
    return 0;
}
