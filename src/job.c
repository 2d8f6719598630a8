/* Job values shared by the API and the workers: status names, file names
 * the platform accepts, the executor's outcome, and the structures handed
 * to the host. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "job.h"
#include "joblog_text.h"
#include "workspace.h"

#define MESSAGE_MAX 4096

/* acp_job's version 2 fields took reserved slots: its size is the ABI's. */
struct job_v1_layout {
    unsigned version;
    acp_job_id id;
    acp_job_status status;
    int owned;
    char queue[ACP_QUEUE_ID_MAX + 1];
    int64_t created, grabbed, finished, last_accessed;
    long queue_position;
    unsigned attempts;
    char *message;
    void *reserved[ACP_RESERVED_SLOTS];
};
_Static_assert(sizeof(acp_job) == sizeof(struct job_v1_layout), "acp_job changed its size");
#define OUTPUTS_MAX 10000

const char *acp_job_status_name(acp_job_status status)
{
    switch (status) {
    case ACP_STATUS_QUEUED:
        return "queued";
    case ACP_STATUS_IN_PROGRESS:
        return "in-progress";
    case ACP_STATUS_COMPLETE:
        return "complete";
    case ACP_STATUS_FAILED:
        return "failed";
    case ACP_STATUS_EXPIRED:
        return "expired";
    case ACP_STATUS_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

int job_check_name(const char *what, const char *name)
{
    if (!name || !*name)
        return error_set(ACP_EINVAL, "%s: missing file name", what);
    if (!config_name_is_safe(name, 255))
        return error_set(ACP_EINVAL,
                         "%s: unsafe file name '%.255s': use 1 to 255 of letters, digits, '_', "
                         "'.' and '-', and not '.' or '..'",
                         what, name);
    if (workspace_is_reserved(name))
        return error_set(ACP_EINVAL, "%s: '%s' is a reserved name", what, name);
    return 0;
}

void job_outcome_fail(acp_job_outcome *outcome, const char *context)
{
    free(outcome->message);
    size_t len = strlen(context) + strlen(acp_last_error()) + 3;
    outcome->message = malloc(len);
    if (outcome->message)
        snprintf(outcome->message, len, "%s: %s", context, acp_last_error());
}

void job_outcome_clear(acp_job_outcome *outcome)
{
    for (size_t i = 0; i < outcome->output_count; i++)
        free(outcome->outputs[i]);
    free(outcome->outputs);
    free(outcome->message);
    memset(outcome, 0, sizeof *outcome);
}

int acp_job_add_output(acp_job_context *ctx, const char *name)
{
    if (!ctx || !ctx->outcome)
        return error_set(ACP_EINVAL, "acp_job_add_output: no job context");
    int rc = job_check_name("output", name);
    if (rc)
        return rc;
    if (strcmp(name, JOBLOG_FILE) == 0)
        return error_set(ACP_EINVAL,
                         "output: '%s' is the name of the job's log, which the platform keeps "
                         "(acp_job_log); name the file otherwise",
                         name);
    acp_job_outcome *o = ctx->outcome;
    for (size_t i = 0; i < o->output_count; i++)
        if (strcmp(o->outputs[i], name) == 0)
            return 0;
    if (o->output_count >= OUTPUTS_MAX)
        return error_set(ACP_ETOOBIG, "output: more than %d files", OUTPUTS_MAX);
    char *copy = strdup(name);
    char **grown = copy ? realloc(o->outputs, (o->output_count + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
        return error_set(ACP_ENOMEM, "output: out of memory");
    }
    grown[o->output_count++] = copy;
    o->outputs = grown;
    return 0;
}

/* Length of the valid UTF-8 sequence at @s (1..4), or 0 when invalid. */
static size_t utf8_sequence(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    /* No overlong forms, no surrogates, nothing above U+10FFFF. */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
        return 0;
    return len;
}

int acp_job_set_message(acp_job_context *ctx, const char *message)
{
    if (!ctx || !ctx->outcome || !message)
        return error_set(ACP_EINVAL, "acp_job_set_message: NULL argument");
    char *copy = strndup(message, MESSAGE_MAX);
    if (!copy)
        return error_set(ACP_ENOMEM, "message: out of memory");
    /* The database stores text as UTF-8 and refuses anything else: replace
     * stray bytes (and a sequence cut by the length limit) with '?'. */
    for (unsigned char *p = (unsigned char *)copy; *p;) {
        size_t len = utf8_sequence(p);
        if (len == 0) {
            *p++ = '?';
            continue;
        }
        p += len;
    }
    free(ctx->outcome->message);
    ctx->outcome->message = copy;
    return 0;
}

int acp_submission_init(acp_submission *submission, unsigned version)
{
    if (!submission)
        return error_set(ACP_EINVAL, "acp_submission_init: NULL argument");
    if (version < 1 || version > ACP_SUBMISSION_VERSION)
        return error_set(ACP_EVERSION, "acp_submission_init: version %u is not supported (1 to %d)",
                         version, ACP_SUBMISSION_VERSION);
    /* Only the fields of @version: the caller's structure may be older. */
    size_t size = version == 1 ? offsetof(acp_submission, priority) : sizeof *submission;
    memset(submission, 0, size);
    submission->version = version;
    if (version >= 2)
        submission->priority = ACP_PRIORITY_DEFAULT;
    return 0;
}

void acp_job_clear(acp_job *job)
{
    if (!job)
        return;
    free(job->message);
    free(job->progress_text);
    memset(job, 0, sizeof *job);
}

void acp_result_list_clear(acp_result_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->files[i].name);
    free(list->files);
    list->files = NULL;
    list->count = 0;
}

void acp_free(void *pointer)
{
    free(pointer);
}

int job_row_objects(const store_job *row, const char ***names, size_t *count)
{
    *count = 0;
    *names = malloc((row->input_count + row->output_count + 1) * sizeof **names);
    if (!*names)
        return error_set(ACP_ENOMEM, "out of memory");
    if (row->status == ACP_STATUS_EXPIRED)
        return 0;
    for (size_t i = 0; i < row->input_count; i++)
        (*names)[(*count)++] = row->inputs[i];
    for (size_t i = 0; i < row->output_count; i++)
        (*names)[(*count)++] = row->outputs[i];
    return 0;
}

void job_from_row(acp_job *job, store_job *row)
{
    job->version = ACP_JOB_VERSION;
    job->id = row->id;
    job->status = row->status;
    job->owned = 1;
    memcpy(job->queue, row->queue, sizeof job->queue);
    job->created = row->created;
    job->grabbed = row->grabbed;
    job->finished = row->finished;
    job->last_accessed = row->last_accessed;
    job->queue_position = row->status == ACP_STATUS_QUEUED ? row->queue_position : -1;
    job->attempts = row->attempts;
    job->next_run = row->status == ACP_STATUS_QUEUED ? row->not_before : 0;
    job->priority = row->priority;
    job->max_attempts = row->max_attempts;
    job->timeout_seconds = row->timeout_seconds;
    job->cancel_requested = row->status == ACP_STATUS_IN_PROGRESS && row->cancel_requested != 0;
    job->progress_done = row->progress_done;
    job->progress_total = row->progress_total;
    job->progress_updated = row->progress_updated;
    job->progress_text = row->progress_text; /* ownership moves to the job */
    row->progress_text = NULL;
    job->message = row->message; /* ownership moves to the job */
    row->message = NULL;
}
