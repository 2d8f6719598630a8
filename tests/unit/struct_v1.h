/* acp_config and acp_queue_config as version 1 of the header declared them
 * (ACP_CONFIG_VERSION 1, ACP_QUEUE_CONFIG_VERSION 1): what a program built
 * against that header passes to a newer library. Frozen: never edit. */
#ifndef ACP_TEST_STRUCT_V1_H
#define ACP_TEST_STRUCT_V1_H

#include "async_platform.h"

typedef struct queue_config_v1 {
    unsigned version;
    const char *id;
    const char *host;
    int port;
    const char *user;
    const char *password;
    int workers;
    unsigned message_ack_timeout;
} queue_config_v1;

typedef struct config_v1 {
    unsigned version;
    acp_db_config db;
    acp_s3_config s3;
    const queue_config_v1 *queues;
    size_t queue_count;
    const char *workspace_root;
    unsigned expiration_days;
    unsigned prune_interval;
    const acp_executor_factory *executor_factory;
    unsigned lease_seconds;
    unsigned redispatch_seconds;
    unsigned shutdown_timeout;
    acp_log_fn log;
    void *log_userdata;
    acp_log_level log_level;
} config_v1;

#endif
