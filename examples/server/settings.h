/* The server's settings: built-in defaults, then the stack's ACP_TEST_*
 * environment variables, then the JSON config file, then the command line.
 * docs/http-api.adoc lists every key. */
#ifndef SERVER_SETTINGS_H
#define SERVER_SETTINGS_H

#include <stddef.h>

#include <async_platform.h>

#include "auth.h"
#include "programs.h"

/* A number left at SETTINGS_UNSET takes the library's default. */
#define SETTINGS_UNSET (-1L)

typedef struct settings_queue {
    char *id;
    char *host; /* NULL: the "rabbitmq" section's */
    long port;  /* SETTINGS_UNSET: the "rabbitmq" section's */
    char *user;
    char *password;
    long workers;
    long message_ack_timeout;
    /* job control (acp_queue_config version 3); SETTINGS_UNSET: the library's */
    long max_attempts;
    long retry_base_ms;
    long retry_max_ms;
    long timeout_seconds;
} settings_queue;

typedef struct settings {
    /* listen */
    char *listen_address;
    long port;
    long max_connections;
    long connection_timeout;
    long max_connections_per_client;
    long request_timeout;
    double health_cache_seconds;
    long max_body_bytes;
    char *tls_cert_file; /* listen.tls: both or neither */
    char *tls_key_file;
    /* auth: the bearer tokens; none configured: no access control, and
     * listen.address must be a loopback address */
    auth_table auth;
    long max_input_bytes; /* all input files of one POST /jobs together */
    /* database */
    char *db_host;
    long db_port;
    char *db_name;
    char *db_user;
    char *db_password;
    long db_pool_size;
    /* s3 */
    char *s3_host;
    long s3_port;
    int s3_https;
    char *s3_bucket;
    char *s3_access_key;
    char *s3_secret_key;
    char *s3_root_path;
    char *s3_session_token;
    char *s3_region;
    char *s3_ca_file;
    char *s3_ca_path;
    int s3_signature;  /* acp_s3_signature; 0: the default */
    int s3_addressing; /* acp_s3_addressing */
    int s3_tls_skip_verify;
    long s3_connect_timeout_ms;
    long s3_request_timeout_ms;
    long s3_retries;
    long s3_retry_base_ms;
    long s3_retry_max_ms;
    long s3_multipart_threshold;
    long s3_part_size;
    long s3_upload_parallelism;
    /* rabbitmq: the queues' defaults */
    char *amqp_host;
    long amqp_port;
    char *amqp_user;
    char *amqp_password;
    settings_queue *queues;
    size_t queue_count;
    /* platform */
    char *workspace_root;
    long expiration_days;
    long prune_interval;
    long lease_seconds;
    long redispatch_seconds;
    long shutdown_timeout;
    long result_retry_seconds;
    acp_log_level log_level;
    long max_attempts;
    long cancel_grace_seconds;
    int layout; /* acp_layout; ACP_LAYOUT_DEFAULT unless the file says */
    /* executors */
    double sleep_max_seconds;
    settings_program *programs;
    size_t program_count;
    double command_timeout_seconds;
    long command_max_args;
    long command_max_arg_bytes;
    /* the command executor's sandbox (docs/http-api.adoc, "Security notes") */
    int command_sandbox;
    char *command_bwrap;
    long command_run_as_uid;
    long command_max_cpu_seconds;
    long command_max_file_bytes;
    long command_max_memory_bytes;
    long command_max_processes;
    long command_max_open_files;
    long command_tmp_bytes;
} settings;

/* Fill @s from the defaults, the environment and the JSON file @path (NULL
 * for none). On failure returns -1 with a message naming the file, the key
 * or the variable in @err; @s is then empty (settings_free is still fine). */
int settings_load(settings *s, const char *path, char *err, size_t errlen);

/* Release everything @s owns. */
void settings_free(settings *s);

/* Fill @config and @queues (an array of s->queue_count, allocated here,
 * released by the caller with free()) from @s. The strings stay @s's. */
int settings_to_acp_config(const settings *s, acp_config *config, acp_queue_config **queues);

/* The allowed program named @name, or NULL. */
const settings_program *settings_find_program(const settings *s, const char *name);

/* 1 when @id is a configured queue. */
int settings_has_queue(const settings *s, const char *id);

#endif
