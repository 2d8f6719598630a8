/* settings_config.c: the acp_config that the server's settings make
 * (settings_to_acp_config in settings.h). */
#include <stdlib.h>

#include "settings.h"
#include "slog.h"

int settings_to_acp_config(const settings *s, acp_config *c, acp_queue_config **queues_out)
{
    acp_queue_config *queues = calloc(s->queue_count, sizeof *queues);
    if (!queues)
        return ACP_ENOMEM;
    acp_config_init(c, ACP_CONFIG_VERSION);
    c->db.host = s->db_host;
    c->db.dbname = s->db_name;
    c->db.user = s->db_user;
    c->db.password = s->db_password;
    if (s->db_port != SETTINGS_UNSET)
        c->db.port = (int)s->db_port;
    if (s->db_pool_size != SETTINGS_UNSET)
        c->db.pool_size = (int)s->db_pool_size;
    c->s3.host = s->s3_host;
    if (s->s3_port != SETTINGS_UNSET)
        c->s3.port = (int)s->s3_port;
    c->s3.https = s->s3_https;
    c->s3.bucket = s->s3_bucket;
    c->s3.access_key = s->s3_access_key;
    c->s3.secret_key = s->s3_secret_key;
    if (s->s3_root_path)
        c->s3.root_path = s->s3_root_path;
    c->s3.session_token = s->s3_session_token;
    c->s3.region = s->s3_region;
    c->s3.ca_file = s->s3_ca_file;
    c->s3.ca_path = s->s3_ca_path;
    acp_s3_client_config *client = &c->s3_client;
    client->signature = (acp_s3_signature)s->s3_signature;
    client->addressing = (acp_s3_addressing)s->s3_addressing;
    client->tls_skip_verify = s->s3_tls_skip_verify;
#define SETTINGS_COPY(field, member)                                                               \
    if (s->member != SETTINGS_UNSET)                                                               \
    client->field = (__typeof__(client->field))s->member
    SETTINGS_COPY(connect_timeout_ms, s3_connect_timeout_ms);
    SETTINGS_COPY(request_timeout_ms, s3_request_timeout_ms);
    SETTINGS_COPY(retries, s3_retries);
    SETTINGS_COPY(retry_base_ms, s3_retry_base_ms);
    SETTINGS_COPY(retry_max_ms, s3_retry_max_ms);
    SETTINGS_COPY(multipart_threshold, s3_multipart_threshold);
    SETTINGS_COPY(part_size, s3_part_size);
    SETTINGS_COPY(upload_parallelism, s3_upload_parallelism);
#undef SETTINGS_COPY
    for (size_t i = 0; i < s->queue_count; i++) {
        const settings_queue *q = &s->queues[i];
        acp_queue_config_init(&queues[i], ACP_QUEUE_CONFIG_VERSION);
        queues[i].id = q->id;
        queues[i].host = q->host ? q->host : s->amqp_host;
        queues[i].user = q->user ? q->user : s->amqp_user;
        queues[i].password = q->password ? q->password : s->amqp_password;
        if (q->port != SETTINGS_UNSET)
            queues[i].port = (int)q->port;
        else if (s->amqp_port != SETTINGS_UNSET)
            queues[i].port = (int)s->amqp_port;
        if (q->workers != SETTINGS_UNSET)
            queues[i].workers = (int)q->workers;
        if (q->message_ack_timeout != SETTINGS_UNSET)
            queues[i].message_ack_timeout = (unsigned)q->message_ack_timeout;
        if (q->max_attempts != SETTINGS_UNSET)
            queues[i].max_attempts = (unsigned)q->max_attempts;
        if (q->retry_base_ms != SETTINGS_UNSET)
            queues[i].retry_base_ms = (unsigned)q->retry_base_ms;
        if (q->retry_max_ms != SETTINGS_UNSET)
            queues[i].retry_max_ms = (unsigned)q->retry_max_ms;
        if (q->timeout_seconds != SETTINGS_UNSET)
            queues[i].timeout_seconds = (unsigned)q->timeout_seconds;
    }
    c->queues = queues;
    c->queue_count = s->queue_count;
    if (s->workspace_root)
        c->workspace_root = s->workspace_root;
    if (s->expiration_days != SETTINGS_UNSET)
        c->expiration_days = (unsigned)s->expiration_days;
    if (s->prune_interval != SETTINGS_UNSET)
        c->prune_interval = (unsigned)s->prune_interval;
    if (s->lease_seconds != SETTINGS_UNSET)
        c->lease_seconds = (unsigned)s->lease_seconds;
    if (s->redispatch_seconds != SETTINGS_UNSET)
        c->redispatch_seconds = (unsigned)s->redispatch_seconds;
    if (s->shutdown_timeout != SETTINGS_UNSET)
        c->shutdown_timeout = (unsigned)s->shutdown_timeout;
    if (s->max_attempts != SETTINGS_UNSET)
        c->max_attempts = (unsigned)s->max_attempts;
    if (s->cancel_grace_seconds != SETTINGS_UNSET)
        c->cancel_grace_seconds = (unsigned)s->cancel_grace_seconds;
    if (s->result_retry_seconds != SETTINGS_UNSET)
        c->result_retry_seconds = (unsigned)s->result_retry_seconds;
    if (s->layout != ACP_LAYOUT_DEFAULT)
        c->layout = (acp_layout)s->layout;
    c->log = slog_library;
    c->log_level = s->log_level;
    *queues_out = queues;
    return 0;
}
