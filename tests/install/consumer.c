/* A program outside the tree: built against the installed library with
 * pkg-config alone (see check_install.sh). */
#include <async_platform.h>
#include <stdio.h>

int main(void)
{
    if (acp_version() != ACP_VERSION_NUMBER) {
        fprintf(stderr, "header %s but library %06x\n", ACP_VERSION_STRING, acp_version());
        return 1;
    }
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    if (acp_job_id_from_config(&id, "{\"executor\":\"sleep\",\"seconds\":5}") != 0) {
        fprintf(stderr, "acp_job_id_from_config: %s\n", acp_last_error());
        return 1;
    }
    printf("%s\n", acp_job_id_format(&id, hex));
    return 0;
}
