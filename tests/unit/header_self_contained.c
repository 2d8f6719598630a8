/* Compiled as strict C99 with -pedantic -Werror: the public header must need
 * nothing else. */
#include "async_platform.h"

int main(void)
{
    acp_config config;
    acp_queue_config queue;
    acp_job_id id;
    char text[ACP_JOB_ID_STRLEN];
    (void)config;
    (void)queue;
    (void)id;
    (void)text;
    return acp_version() == ACP_VERSION_NUMBER && ACP_OK == 0 ? 0 : 1;
}
