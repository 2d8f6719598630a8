/* PLACEHOLDER (issue 16, being built on branch h-logs): the progress and log
 * API, so that the example server builds meanwhile. Must not reach a stop. */
#include <stdarg.h>

#include "error.h"

int acp_job_progress(acp_job_context *ctx, uint64_t done, uint64_t total, const char *text)
{
    (void)ctx, (void)done, (void)total, (void)text;
    return error_set(ACP_EINVAL, "acp_job_progress: not implemented yet");
}

int acp_job_log(acp_job_context *ctx, const char *format, ...)
{
    (void)ctx, (void)format;
    return error_set(ACP_EINVAL, "acp_job_log: not implemented yet");
}

int acp_job_log_write(acp_job_context *ctx, const void *data, size_t len)
{
    (void)ctx, (void)data, (void)len;
    return error_set(ACP_EINVAL, "acp_job_log_write: not implemented yet");
}

int acp_log_read_init(acp_log_read *read, unsigned version)
{
    (void)read, (void)version;
    return error_set(ACP_EINVAL, "acp_log_read_init: not implemented yet");
}

int acp_read_log(acp_platform *platform, const acp_job_id *id, acp_log_read *read, acp_read_fn sink,
                 void *userdata)
{
    (void)platform, (void)id, (void)read, (void)sink, (void)userdata;
    return error_set(ACP_EINVAL, "acp_read_log: not implemented yet");
}
