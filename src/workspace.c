#include "workspace.h"

#include <stdio.h>
#include <string.h>

/* Ascending precedence (docs/compatibility.adoc, precedence): a later flag
 * in this list wins over an earlier one. */
static const acp_job_status precedence[] = {
    ACP_STATUS_QUEUED,  ACP_STATUS_IN_PROGRESS, ACP_STATUS_COMPLETE,
    ACP_STATUS_EXPIRED, ACP_STATUS_FAILED,
};
#define FLAG_COUNT (sizeof precedence / sizeof precedence[0])

const char *workspace_flag(acp_job_status status)
{
    switch (status) {
    case ACP_STATUS_QUEUED:
        return ".queued";
    case ACP_STATUS_IN_PROGRESS:
        return ".in-progress";
    case ACP_STATUS_COMPLETE:
        return ".complete";
    case ACP_STATUS_FAILED:
    case ACP_STATUS_CANCELLED: /* upstream has no such status: it reads failed */
        return ".failed";
    case ACP_STATUS_EXPIRED:
        return ".expired";
    }
    return NULL;
}

/* The rank of @name in the precedence list, or -1 when it is no flag. */
static int flag_rank(const char *name)
{
    for (size_t k = 0; k < FLAG_COUNT; k++)
        if (strcmp(name, workspace_flag(precedence[k])) == 0)
            return (int)k;
    return -1;
}

bool workspace_is_flag(const char *name)
{
    return flag_rank(name) >= 0;
}

bool workspace_is_claim(const char *name)
{
    return strncmp(name, WORKSPACE_CLAIM_PREFIX, strlen(WORKSPACE_CLAIM_PREFIX)) == 0;
}

bool workspace_claim_of(const char *name, const char *generation)
{
    size_t prefix = strlen(WORKSPACE_CLAIM_PREFIX), len = strlen(generation);
    return workspace_is_claim(name) && strncmp(name + prefix, generation, len) == 0 &&
           name[prefix + len] == '-';
}

bool workspace_claim_name(char *out, size_t size, const char *generation, const char *instance)
{
    int n = snprintf(out, size, WORKSPACE_CLAIM_PREFIX "%s-%s", generation, instance);
    return n >= 0 && (size_t)n < size;
}

bool workspace_is_reserved(const char *name)
{
    return strcmp(name, WORKSPACE_MARKER) == 0 || strcmp(name, WORKSPACE_CONFIG) == 0 ||
           workspace_is_flag(name) || workspace_is_claim(name);
}

bool workspace_kept_on_expiry(const char *name)
{
    return strcmp(name, WORKSPACE_MARKER) == 0 || workspace_is_flag(name) ||
           workspace_is_claim(name);
}

bool workspace_kept_on_rerun(const char *name)
{
    return strcmp(name, WORKSPACE_MARKER) == 0 ||
           strcmp(name, workspace_flag(ACP_STATUS_EXPIRED)) == 0 || workspace_is_claim(name);
}

bool workspace_kept_on_retry(const char *name, const char *const *inputs, size_t input_count)
{
    if (workspace_is_reserved(name))
        return true;
    for (size_t k = 0; k < input_count; k++)
        if (strcmp(name, inputs[k]) == 0)
            return true;
    return false;
}

bool workspace_status_from_flags(const object_list *list, acp_job *job)
{
    job->version = ACP_JOB_VERSION;
    bool marker = false;
    int best = -1;
    for (size_t i = 0; i < list->count; i++) {
        const object_entry *e = &list->items[i];
        if (strcmp(e->name, WORKSPACE_MARKER) == 0)
            marker = true;
        int k = flag_rank(e->name);
        if (k < 0)
            continue;
        if (k > best)
            best = k;
        if (precedence[k] == ACP_STATUS_QUEUED)
            job->created = e->mtime;
        else if (precedence[k] == ACP_STATUS_IN_PROGRESS)
            job->grabbed = e->mtime;
        else if (precedence[k] == ACP_STATUS_COMPLETE || precedence[k] == ACP_STATUS_FAILED)
            job->finished = e->mtime;
    }
    job->status = best >= 0 ? precedence[best] : ACP_STATUS_QUEUED;
    job->owned = 0;
    job->queue_position = -1;
    return marker;
}

int64_t workspace_expired_since(const object_list *list)
{
    bool marker = false;
    int64_t expired = -1;
    const char *flag = workspace_flag(ACP_STATUS_EXPIRED);
    for (size_t i = 0; i < list->count; i++) {
        if (strcmp(list->items[i].name, WORKSPACE_MARKER) == 0)
            marker = true;
        else if (strcmp(list->items[i].name, flag) == 0)
            expired = list->items[i].mtime;
    }
    return marker ? expired : -1;
}
