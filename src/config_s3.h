/* The S3 client's settings (acp_config.s3_client) and the S3 credentials:
 * defaults, the environment fallback, validation. Split from config.c. */
#ifndef ACP_CONFIG_S3_H
#define ACP_CONFIG_S3_H

#include <stdbool.h>

#include "async_platform.h"

#define CONFIG_S3_REGION_DEFAULT "us-east-1"

void config_s3_client_defaults(acp_s3_client_config *client);

/* When @s3 leaves both keys empty, point them (and a NULL session token) at
 * the AWS_* environment variables' values, which must then stay unchanged
 * while the configuration is in use. */
void config_s3_credentials_from_env(acp_s3_config *s3);

/* ACP_EINVAL naming the field ("config.s3.access_key: ...",
 * "config.s3_client.part_size: ..."), else 0. Never quotes a secret. */
int config_s3_check_credentials(const acp_s3_config *s3);
int config_s3_check_client(const acp_s3_config *s3, const acp_s3_client_config *client);

/* The signature and addressing @client asks for, defaults resolved:
 * ACP_S3_SIGNATURE_V4 or _V2; true for virtual-hosted addressing. */
acp_s3_signature config_s3_signature(const acp_s3_client_config *client);
bool config_s3_virtual_hosted(const acp_s3_config *s3, const acp_s3_client_config *client);

#endif
