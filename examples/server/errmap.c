#include "errmap.h"

#include <async_platform.h>

unsigned errmap_http_status(int acp_code)
{
    switch (acp_code) {
    case ACP_EINVAL:
    case ACP_ENOQUEUE:
        return 400;
    case ACP_ENOTFOUND:
        return 404;
    case ACP_EUNOWNED:
    case ACP_ECONFLICT:
    case ACP_EBUSY:
        return 409;
    case ACP_ETOOBIG:
        return 413;
    case ACP_EDB:
    case ACP_EBROKER:
    case ACP_ESTORAGE:
    case ACP_ESHUTDOWN:
        return 503;
    default:
        /* ACP_ENOMEM, ACP_EIO, ACP_EVERSION, ACP_EUSER (one of the server's
         * own callbacks failed) and codes of a newer library: the server's
         * problem, not the client's. */
        return 500;
    }
}
