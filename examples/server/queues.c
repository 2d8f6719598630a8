#include "queues.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const acp_job_status queues_statuses[] = {
    ACP_STATUS_QUEUED, ACP_STATUS_IN_PROGRESS, ACP_STATUS_COMPLETE,
    ACP_STATUS_FAILED, ACP_STATUS_EXPIRED,     ACP_STATUS_CANCELLED,
};
#define QUEUES_STATUSES (sizeof queues_statuses / sizeof queues_statuses[0])

static double queues_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int queues_served(const settings *cfg, const char *queue)
{
    for (size_t i = 0; i < cfg->queue_count; i++)
        if (strcmp(cfg->queues[i].id, queue) == 0)
            return 1;
    return 0;
}

static json_object *queues_status_object(const uint64_t jobs[ACP_STATUS_SLOTS])
{
    json_object *counts = json_object_new_object();
    for (size_t i = 0; i < QUEUES_STATUSES; i++)
        json_object_object_add(counts, acp_job_status_name(queues_statuses[i]),
                               json_object_new_int64((int64_t)jobs[queues_statuses[i]]));
    return counts;
}

static json_object *queues_entry(const char *queue, int served, const uint64_t *jobs,
                                 uint64_t failed_recently)
{
    json_object *entry = json_object_new_object();
    json_object_object_add(entry, "queue", json_object_new_string(queue));
    json_object_object_add(entry, "served", json_object_new_boolean(served));
    json_object_object_add(entry, "counts", queues_status_object(jobs));
    json_object_object_add(entry, "failed_last_hour",
                           json_object_new_int64((int64_t)failed_recently));
    return entry;
}

/* The document without age_seconds. Every queue this server serves is
 * listed, at 0 when it has no job yet; then the database's other queues. */
static json_object *queues_document(const settings *cfg, const acp_job_counts *counts)
{
    uint64_t totals[ACP_STATUS_SLOTS] = {0}, failed = 0;
    static const uint64_t none[ACP_STATUS_SLOTS] = {0};
    json_object *list = json_object_new_array();
    for (size_t i = 0; i < cfg->queue_count; i++) {
        const acp_queue_counts *found = NULL;
        for (size_t j = 0; j < counts->count && !found; j++)
            if (strcmp(counts->queues[j].queue, cfg->queues[i].id) == 0)
                found = &counts->queues[j];
        json_object_array_add(list, queues_entry(cfg->queues[i].id, 1, found ? found->jobs : none,
                                                 found ? found->failed_recently : 0));
    }
    for (size_t j = 0; j < counts->count; j++) {
        const acp_queue_counts *q = &counts->queues[j];
        for (size_t s = 0; s < ACP_STATUS_SLOTS; s++)
            totals[s] += q->jobs[s];
        failed += q->failed_recently;
        if (!queues_served(cfg, q->queue))
            json_object_array_add(list, queues_entry(q->queue, 0, q->jobs, q->failed_recently));
    }
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "queues", list);
    json_object_object_add(doc, "totals", queues_status_object(totals));
    json_object_object_add(doc, "failed_last_hour", json_object_new_int64((int64_t)failed));
    return doc;
}

/* The last count, as text (a json_object is not safe to share between
 * threads), and when it was made. */
static pthread_mutex_t queues_lock = PTHREAD_MUTEX_INITIALIZER;
static char *queues_text;
static double queues_when;

/* Count again under the lock; on failure the error stays in
 * acp_last_error() of this thread and the last answer is kept. */
static int queues_refresh(server *srv)
{
    acp_job_counts counts;
    acp_job_counts_init(&counts, ACP_JOB_COUNTS_VERSION);
    int rc = acp_count_jobs(srv->platform, &counts);
    if (rc != 0)
        return rc;
    json_object *doc = queues_document(srv->cfg, &counts);
    acp_job_counts_clear(&counts);
    char *text = strdup(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN));
    json_object_put(doc);
    if (!text)
        return ACP_ENOMEM;
    free(queues_text);
    queues_text = text;
    queues_when = queues_now();
    return 0;
}

enum MHD_Result queues_handle(server *srv, struct MHD_Connection *conn, http_request *req)
{
    pthread_mutex_lock(&queues_lock);
    int rc = 0;
    if (!queues_text || queues_now() - queues_when >= QUEUES_CACHE_SECONDS)
        rc = queues_refresh(srv);
    json_object *doc = rc == 0 && queues_text ? json_tokener_parse(queues_text) : NULL;
    double age = queues_now() - queues_when;
    pthread_mutex_unlock(&queues_lock);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    if (!doc)
        return http_reply_error(conn, req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory", NULL,
                                "cannot build the queue counts");
    json_object_object_add(doc, "age_seconds", json_object_new_double(age));
    return http_reply_json(conn, req, MHD_HTTP_OK, doc);
}

void queues_release(void)
{
    pthread_mutex_lock(&queues_lock);
    free(queues_text);
    queues_text = NULL;
    pthread_mutex_unlock(&queues_lock);
}
