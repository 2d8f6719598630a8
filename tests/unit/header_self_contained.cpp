// The public header must also compile as C++ (extern "C", no C-only syntax).
#include "async_platform.h"

int main()
{
    acp_config config = acp_config();
    acp_job_id id = acp_job_id();
    (void)config;
    (void)id;
    return acp_version() == ACP_VERSION_NUMBER ? 0 : 1;
}
