/* The S3 transport over libs3 2.0 (Signature V2), see transport.h. */
#ifndef ACP_TRANSPORT_LIBS3_H
#define ACP_TRANSPORT_LIBS3_H

#include "async_platform.h"
#include "transport.h"

/* Checks and copies what it needs from @cfg (host, port, bucket, keys,
 * https; not root_path, which is the caller's), initialising libs3 once per
 * process. Sends nothing. ACP_EINVAL naming the field for bad settings,
 * ACP_ESTORAGE when libs3 cannot be initialised, ACP_ENOMEM. */
int transport_libs3_open(transport **out, const acp_s3_config *cfg);

#endif
