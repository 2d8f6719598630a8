/* acp_submit: validate everything first, then write the row, the S3
 * workspace and the message, in that order, so that a failure leaves
 * nothing behind and a broker outage only delays the job. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "json.h"
#include "platform.h"

#define INPUTS_MAX 1000

/* The validated submission, with what it owns. */
typedef struct prepared {
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    char *config; /* compact JSON or NULL */
    const char **names;
    int *fds; /* open files for inputs given by path, -1 for buffers */
    size_t count;
} prepared;

static void prepared_free(prepared *s)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->fds[i] >= 0)
            close(s->fds[i]);
    free(s->fds);
    free(s->names);
    free(s->config);
}

static int compact_config(const char *text, char **out)
{
    *out = NULL;
    if (!text)
        return 0;
    size_t len = strnlen(text, ACP_JOB_CONFIG_MAX + 1);
    if (len > ACP_JOB_CONFIG_MAX)
        return error_set(ACP_ETOOBIG, "submission.config: more than %d bytes", ACP_JOB_CONFIG_MAX);
    json_object *value;
    int rc = json_parse(text, len, "submission.config", &value);
    if (rc)
        return rc;
    buf compact = BUF_INIT;
    rc = json_write_compact(&compact, value);
    json_object_put(value);
    if (rc) {
        buf_free(&compact);
        return error_prefix(rc, "submission.config");
    }
    *out = compact.data;
    return 0;
}

static int prepare_inputs(const acp_submission *sub, prepared *s)
{
    if (sub->input_count == 0)
        return 0;
    if (!sub->inputs)
        return error_set(ACP_EINVAL, "submission.inputs: NULL with input_count %zu",
                         sub->input_count);
    if (sub->input_count > INPUTS_MAX)
        return error_set(ACP_ETOOBIG, "submission.inputs: more than %d files", INPUTS_MAX);
    s->names = calloc(sub->input_count, sizeof *s->names);
    s->fds = malloc(sub->input_count * sizeof *s->fds);
    if (!s->names || !s->fds)
        return error_set(ACP_ENOMEM, "out of memory");
    for (size_t i = 0; i < sub->input_count; i++) {
        const acp_input *in = &sub->inputs[i];
        char what[48];
        snprintf(what, sizeof what, "submission.inputs[%zu]", i);
        s->fds[i] = -1;
        s->count = i + 1;
        int rc = job_check_name(what, in->name);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->names[j], in->name) == 0)
                return error_set(ACP_EINVAL, "%s: duplicate input name '%s'", what, in->name);
        s->names[i] = in->name;
        if ((in->path != NULL) == (in->data != NULL || in->size > 0))
            return error_set(ACP_EINVAL, "%s ('%s'): give either path or data/size", what,
                             in->name);
        if (!in->path)
            continue;
        s->fds[i] = open(in->path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (s->fds[i] < 0 || fstat(s->fds[i], &st) != 0)
            return error_set(ACP_EIO, "%s ('%s'): cannot read %s: %s", what, in->name, in->path,
                             strerror(errno));
        if (!S_ISREG(st.st_mode))
            return error_set(ACP_EIO, "%s ('%s'): %s is not a regular file", what, in->name,
                             in->path);
    }
    return 0;
}

static int prepare(const acp_submission *sub, prepared *s)
{
    if (!sub)
        return error_set(ACP_EINVAL, "submission: NULL");
    if (sub->version != ACP_SUBMISSION_VERSION)
        return error_set(ACP_EVERSION,
                         "submission.version: %u is not supported (call acp_submission_init)",
                         sub->version);
    int rc = compact_config(sub->config, &s->config);
    if (rc)
        return rc;
    if (sub->id)
        s->id = *sub->id;
    else if (!sub->config)
        return error_set(ACP_EINVAL, "submission.id: no id given and no config to derive it from");
    else if ((rc = acp_job_id_from_config(&s->id, sub->config)))
        return error_prefix(rc, "submission.config");
    acp_job_id_format(&s->id, s->hex);
    return prepare_inputs(sub, s);
}

/* The job state the caller sees after submitting. */
static int report(acp_platform *p, const acp_job_id *id, acp_job *job)
{
    if (!job)
        return 0;
    return acp_get_job(p, id, job);
}

static int write_workspace(acp_platform *p, const acp_submission *sub, const prepared *s)
{
    int rc;
    if ((rc = objects_wipe(p->objects, &s->id)) ||
        (rc = objects_put(p->objects, &s->id, ".workspace", "", 0)) ||
        (rc = objects_put(p->objects, &s->id, ".queued", "", 0)))
        return rc;
    if (s->config &&
        (rc = objects_put(p->objects, &s->id, "input-config", s->config, strlen(s->config))))
        return rc;
    for (size_t i = 0; i < s->count; i++) {
        const acp_input *in = &sub->inputs[i];
        rc = s->fds[i] >= 0 ? objects_put_fd(p->objects, &s->id, in->name, s->fds[i])
                            : objects_put(p->objects, &s->id, in->name, in->data, in->size);
        if (rc)
            return rc;
    }
    return 0;
}

/* The status of the job's workspace in S3, 0 when there is none. */
static int workspace_status(acp_platform *p, const acp_job_id *id, acp_job_status *status)
{
    object_list list;
    int rc = objects_list(p->objects, id, &list);
    if (rc)
        return rc;
    acp_job flags = {0};
    *status = job_from_flags(&list, &flags) ? flags.status : 0;
    object_list_free(&list);
    return 0;
}

static int create_job(acp_platform *p, queue_rt *q, const acp_submission *sub, const prepared *s,
                      bool rerun)
{
    int rc = rerun ? store_requeue(p->store, &s->id, q->id, s->config, s->names, s->count)
                   : store_insert(p->store, &s->id, q->id, s->config, s->names, s->count);
    if (rc)
        return rc;
    rc = write_workspace(p, sub, s);
    if (rc && rerun) {
        /* The old results may be gone already; the row stays queued and the
         * run reports what is missing, rather than losing the job. */
        log_error(&p->log, "job %s: rewriting its workspace for a re-run: %s", s->hex,
                  acp_last_error());
        return rc;
    }
    if (rc) {
        /* Leave nothing half-made: no row and no objects. */
        char reason[512];
        snprintf(reason, sizeof reason, "%s", acp_last_error());
        if (store_delete(p->store, &s->id) != 0 || objects_wipe(p->objects, &s->id) != 0)
            log_error(&p->log, "job %s: cleaning up after a failed submit: %s", s->hex,
                      acp_last_error());
        return error_set(rc, "submitting job %s: %s", s->hex, reason);
    }
    if (platform_publish(p, q, &s->id, s->config) != 0) {
        log_warn(&p->log,
                 "job %s is stored but not yet dispatched (%s); it will be published "
                 "when the broker answers",
                 s->hex, acp_last_error());
        store_clear_dispatched(p->store, &s->id);
    }
    return 0;
}

int acp_submit(acp_platform *p, const char *queue, const acp_submission *sub, acp_job *job)
{
    if (job)
        memset(job, 0, sizeof *job);
    if (!p || !queue)
        return error_set(ACP_EINVAL, "acp_submit: NULL argument");
    queue_rt *q = platform_find_queue(p, queue);
    if (!q)
        return error_set(ACP_ENOQUEUE, "queue '%.64s' is not configured", queue);
    if (atomic_load(&p->stopping))
        return error_set(ACP_ESHUTDOWN, "the platform is shutting down");

    prepared s = {0};
    int rc = prepare(sub, &s);
    if (rc) {
        prepared_free(&s);
        return rc;
    }

    store_job row;
    rc = store_get(p->store, &s.id, &row);
    bool raced = false;
    if (rc == 0) {
        acp_job_status status = row.status;
        store_job_free(&row);
        if (status == ACP_STATUS_QUEUED || status == ACP_STATUS_IN_PROGRESS) {
            prepared_free(&s);
            return report(p, &s.id, job); /* already on its way: not a second run */
        }
        rc = create_job(p, q, sub, &s, true);
        raced = rc == ACP_ECONFLICT;
    } else if (rc == ACP_ENOTFOUND) {
        acp_job_status theirs;
        rc = workspace_status(p, &s.id, &theirs);
        if (!rc && theirs && theirs != ACP_STATUS_EXPIRED)
            rc = error_set(ACP_ECONFLICT,
                           "job %s belongs to another service sharing the bucket (status %s); "
                           "it can be resubmitted here once it has expired",
                           s.hex, acp_job_status_name(theirs));
        else if (!rc) {
            rc = create_job(p, q, sub, &s, false);
            raced = rc == ACP_ECONFLICT;
        }
    }
    /* Another submitter of the same job got there first: report its run. */
    if (raced && store_get(p->store, &s.id, &row) == 0) {
        store_job_free(&row);
        rc = 0;
    }
    if (!rc)
        rc = report(p, &s.id, job);
    prepared_free(&s);
    return rc;
}
