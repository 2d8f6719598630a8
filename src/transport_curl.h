/* The S3 transport over libcurl with Signature V4 (see transport.h): the
 * default. */
#ifndef ACP_TRANSPORT_CURL_H
#define ACP_TRANSPORT_CURL_H

#include <stdint.h>

#include "async_platform.h"
#include "transport.h"

/* Checks and copies what it needs from @s3 (host, port, https, bucket,
 * access_key, secret_key, session_token, region, ca_file, ca_path; not
 * root_path, which is the caller's, and with the credentials already taken
 * from the environment when the config left them empty) and @client
 * (addressing, tls_skip_verify, connect_timeout_ms, request_timeout_ms; the
 * retry and multipart settings are the caller's). Sends nothing. Announces
 * TRANSPORT_CAPS_MULTIPART. ACP_EINVAL naming the field for bad settings,
 * ACP_ESTORAGE when libcurl cannot be set up, ACP_ENOMEM. */
int transport_curl_open(transport **out, const acp_s3_config *s3,
                        const acp_s3_client_config *client);

/* New connections @t (a transport_curl_open() one) has opened so far: a
 * request on a kept-alive connection adds none. For tests and stats. */
uint64_t transport_curl_connections(const transport *t);

#endif
