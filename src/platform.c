/* Public entry points and the platform's life cycle. */
#include "async_platform.h"

unsigned acp_version(void)
{
    return ACP_VERSION_NUMBER;
}
