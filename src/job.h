/* Job values shared by the API and the workers. */
#ifndef ACP_JOB_H
#define ACP_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "async_platform.h"
#include "store.h"

/* The private part of acp_job_context: what the executor reports. */
struct acp_job_outcome {
    char **outputs;
    size_t output_count;
    char *message;
    bool permanent;          /* acp_job_fail_permanently was called */
    struct running_job *run; /* the run's flag and descriptor; NULL outside a worker */
};

void job_outcome_clear(acp_job_outcome *outcome);
/* Set the outcome's message to "<@context>: <the thread's last error>". */
void job_outcome_fail(acp_job_outcome *outcome, const char *context);
/* A file name the platform accepts for inputs and outputs. Sets the detail
 * (prefixed with @what) and returns ACP_EINVAL when it is not. */
int job_check_name(const char *what, const char *name);
/* The S3 objects a native row says exist: its inputs and its results, none
 * once it is expired. *@names is malloc'd (free it); the strings are the
 * row's. */
int job_row_objects(const store_job *row, const char ***names, size_t *count);
/* An owned job from its row; the row's message moves to @job. */
void job_from_row(acp_job *job, store_job *row);

#endif
