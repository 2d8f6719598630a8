#include "jobdoc.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* ISO-8601 UTC with milliseconds; null for "not known". */
static json_object *jobdoc_time(int64_t us)
{
    if (us <= 0)
        return NULL;
    time_t seconds = (time_t)(us / 1000000);
    struct tm tm;
    char text[40];
    if (!gmtime_r(&seconds, &tm))
        return NULL;
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof text - n, ".%03dZ", (int)(us % 1000000 / 1000));
    return json_object_new_string(text);
}

/* The latest acp_job_progress() of the job's current (or last) attempt;
 * null before its first report. A total of 0 is the library's "unknown". */
static json_object *jobdoc_progress(const acp_job *job)
{
    if (job->version < 3 || job->progress_updated <= 0)
        return NULL;
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "done", json_object_new_uint64(job->progress_done));
    json_object_object_add(
        doc, "total", job->progress_total ? json_object_new_uint64(job->progress_total) : NULL);
    json_object_object_add(doc, "text",
                           job->progress_text ? json_object_new_string(job->progress_text) : NULL);
    json_object_object_add(doc, "updated", jobdoc_time(job->progress_updated));
    return doc;
}

json_object *jobdoc_json(const acp_job *job)
{
    char hex[ACP_JOB_ID_STRLEN];
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "id", json_object_new_string(acp_job_id_format(&job->id, hex)));
    json_object_object_add(doc, "status", json_object_new_string(acp_job_status_name(job->status)));
    json_object_object_add(doc, "owned", json_object_new_boolean(job->owned));
    json_object_object_add(doc, "queue", job->queue[0] ? json_object_new_string(job->queue) : NULL);
    json_object_object_add(doc, "created", jobdoc_time(job->created));
    json_object_object_add(doc, "grabbed", jobdoc_time(job->grabbed));
    json_object_object_add(doc, "finished", jobdoc_time(job->finished));
    json_object_object_add(doc, "last_accessed", jobdoc_time(job->last_accessed));
    json_object_object_add(doc, "queue_position",
                           job->queue_position >= 0 ? json_object_new_int64(job->queue_position)
                                                    : NULL);
    json_object_object_add(doc, "attempts", json_object_new_int64(job->attempts));
    json_object_object_add(doc, "max_attempts", json_object_new_int64(job->max_attempts));
    json_object_object_add(doc, "priority", json_object_new_int(job->priority));
    json_object_object_add(doc, "timeout_seconds",
                           job->timeout_seconds ? json_object_new_int64(job->timeout_seconds)
                                                : NULL);
    json_object_object_add(doc, "next_run", jobdoc_time(job->next_run));
    json_object_object_add(doc, "cancel_requested",
                           json_object_new_boolean(job->cancel_requested != 0));
    /* "message" came first and stays; "last_error" is the same text under
     * the name that says what it is since attempts are retried. */
    json_object_object_add(doc, "message",
                           job->message ? json_object_new_string(job->message) : NULL);
    json_object_object_add(doc, "last_error",
                           job->message ? json_object_new_string(job->message) : NULL);
    json_object_object_add(doc, "progress", jobdoc_progress(job));
    return doc;
}

json_object *jobdoc_brief(const acp_job_id *id, acp_job_status status)
{
    char hex[ACP_JOB_ID_STRLEN];
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "id", json_object_new_string(acp_job_id_format(id, hex)));
    json_object_object_add(doc, "status", json_object_new_string(acp_job_status_name(status)));
    return doc;
}
