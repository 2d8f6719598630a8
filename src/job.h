/* Job values shared by the API and the workers. */
#ifndef ACP_JOB_H
#define ACP_JOB_H

#include <stddef.h>

#include "async_platform.h"
#include "store.h"

/* The private part of acp_job_context: what the executor reports. */
struct acp_job_outcome {
    char **outputs;
    size_t output_count;
    char *message;
};

void job_outcome_clear(acp_job_outcome *outcome);
/* A file name the platform accepts for inputs and outputs. Sets the detail
 * (prefixed with @what) and returns ACP_EINVAL when it is not. */
int job_check_name(const char *what, const char *name);
/* An owned job from its row; the row's message moves to @job. */
void job_from_row(acp_job *job, store_job *row);

#endif
