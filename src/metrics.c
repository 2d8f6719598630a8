/* PLACEHOLDER (issue 16, being built on branch h-metrics): so that the
 * example server builds meanwhile. Must not reach a stop. */
#include "error.h"

int acp_metrics_write(acp_platform *platform, acp_read_fn sink, void *userdata)
{
    (void)platform, (void)sink, (void)userdata;
    return error_set(ACP_EINVAL, "acp_metrics_write: not implemented yet");
}
