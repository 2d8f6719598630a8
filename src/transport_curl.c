#include "transport_curl.h"
#include "error.h"
int transport_curl_open(transport **out, const acp_s3_config *s3, const acp_s3_client_config *client)
{ (void)out; (void)s3; (void)client; return error_set(ACP_ESTORAGE, "stub"); }
