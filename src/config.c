#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_s3.h"
#include "error.h"

#define DEFAULT_DB_PORT             5432
#define DEFAULT_POOL_SIZE           10
#define DEFAULT_S3_PORT             80
#define DEFAULT_AMQP_PORT           5672
#define DEFAULT_WORKERS             5
#define DEFAULT_MESSAGE_ACK_TIMEOUT (30 * 60)
#define DEFAULT_HEARTBEAT           60
#define DEFAULT_EXPIRATION_DAYS     30
#define DEFAULT_PRUNE_INTERVAL      (12 * 60 * 60)
#define DEFAULT_LEASE_SECONDS       60
#define DEFAULT_REDISPATCH_SECONDS  300
#define DEFAULT_SHUTDOWN_TIMEOUT    30

/* acp_queue_config as version 1 declared it: its size is the stride of an
 * array of version 1 structures. */
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

_Static_assert(offsetof(queue_config_v1, message_ack_timeout) ==
                   offsetof(acp_queue_config, message_ack_timeout),
               "version 2 of acp_queue_config only appends to version 1");

/* Bytes of the fields a structure of @version has (0: unknown version). */
static size_t config_fields(unsigned version)
{
    switch (version) {
    case 1:
        return offsetof(acp_config, max_attempts);
    case 2:
        return offsetof(acp_config, layout);
    case 3:
        return offsetof(acp_config, s3_client);
    case 4:
        return offsetof(acp_config, cancel_grace_seconds);
    case 5:
        return offsetof(acp_config, log_cap_bytes);
    case 6:
        return sizeof(acp_config);
    default:
        return 0;
    }
}

static size_t queue_config_fields(unsigned version)
{
    switch (version) {
    case 1:
        return offsetof(acp_queue_config, heartbeat);
    case 2:
        return offsetof(acp_queue_config, max_attempts);
    case 3:
        return sizeof(acp_queue_config);
    default:
        return 0;
    }
}

/* Version 2 as the header of that version declared it. */
typedef struct queue_config_v2 {
    queue_config_v1 v1;
    unsigned heartbeat;
} queue_config_v2;

_Static_assert(offsetof(queue_config_v2, heartbeat) == offsetof(acp_queue_config, heartbeat),
               "version 3 of acp_queue_config only appends to version 2");

/* The size of a whole structure of @version, padding included. */
static size_t queue_config_stride(unsigned version)
{
    return version == 1   ? sizeof(queue_config_v1)
           : version == 2 ? sizeof(queue_config_v2)
                          : queue_config_fields(version);
}

static void config_defaults(acp_config *config);

int acp_config_init(acp_config *config, unsigned version)
{
    if (!config)
        return error_set(ACP_EINVAL, "acp_config_init: config is NULL");
    size_t fields = config_fields(version);
    if (!fields)
        return error_set(ACP_EVERSION, "acp_config_init: version %u is not supported (1 to %d)",
                         version, ACP_CONFIG_VERSION);
    /* Only what the caller's version has: its structure may be shorter. */
    acp_config defaults;
    memset(&defaults, 0, sizeof defaults);
    config_defaults(&defaults);
    defaults.version = version;
    memcpy(config, &defaults, fields);
    return 0;
}

static void config_defaults(acp_config *config)
{
    config->db.port = DEFAULT_DB_PORT;
    config->db.pool_size = DEFAULT_POOL_SIZE;
    config->s3.port = DEFAULT_S3_PORT;
    config->s3.https = 0;
    config->s3.root_path = "/";
    config->workspace_root = NULL; /* a private default, chosen by acp_init */
    config->expiration_days = DEFAULT_EXPIRATION_DAYS;
    config->prune_interval = DEFAULT_PRUNE_INTERVAL;
    config->lease_seconds = DEFAULT_LEASE_SECONDS;
    config->redispatch_seconds = DEFAULT_REDISPATCH_SECONDS;
    config->shutdown_timeout = DEFAULT_SHUTDOWN_TIMEOUT;
    config->log_level = ACP_LOG_INFO;
    config->max_attempts = CONFIG_DEFAULT_MAX_ATTEMPTS;
    config->result_retry_seconds = CONFIG_RESULT_RETRY_DEFAULT;
    config->layout = ACP_LAYOUT_NATIVE;
    config_s3_client_defaults(&config->s3_client);
    config->cancel_grace_seconds = CONFIG_DEFAULT_CANCEL_GRACE;
    config->log_cap_bytes = ACP_LOG_CAP_DEFAULT;
}

static void queue_config_defaults(acp_queue_config *queue)
{
    queue->port = DEFAULT_AMQP_PORT;
    queue->workers = DEFAULT_WORKERS;
    queue->message_ack_timeout = DEFAULT_MESSAGE_ACK_TIMEOUT;
    queue->heartbeat = DEFAULT_HEARTBEAT;
    queue->max_attempts = 0; /* config.max_attempts */
    queue->retry_base_ms = CONFIG_DEFAULT_RETRY_BASE_MS;
    queue->retry_max_ms = CONFIG_DEFAULT_RETRY_MAX_MS;
    queue->timeout_seconds = 0;
}

int acp_queue_config_init(acp_queue_config *queue, unsigned version)
{
    if (!queue)
        return error_set(ACP_EINVAL, "acp_queue_config_init: queue is NULL");
    size_t fields = queue_config_fields(version);
    if (!fields)
        return error_set(ACP_EVERSION,
                         "acp_queue_config_init: version %u is not supported (1 to %d)", version,
                         ACP_QUEUE_CONFIG_VERSION);
    acp_queue_config defaults;
    memset(&defaults, 0, sizeof defaults);
    queue_config_defaults(&defaults);
    defaults.version = version;
    memcpy(queue, &defaults, fields);
    return 0;
}

int config_import(const acp_config *given, config_copy *out)
{
    memset(out, 0, sizeof *out);
    if (!given)
        return error_set(ACP_EINVAL, "config: NULL");
    size_t fields = config_fields(given->version);
    if (!fields)
        return error_set(ACP_EVERSION,
                         "config.version: %u is not supported (1 to %d; call acp_config_init)",
                         given->version, ACP_CONFIG_VERSION);
    config_defaults(&out->config);
    memcpy(&out->config, given, fields);
    /* A caller built before layouts existed expects the only one it knew. */
    if (given->version < 3)
        out->config.layout = ACP_LAYOUT_LCP;
    config_s3_credentials_from_env(&out->config.s3);
    out->config.version = ACP_CONFIG_VERSION;
    out->config.queues = NULL;
    if (!given->queues || given->queue_count == 0)
        return 0; /* validation names it */
    /* The version field leads every version, so the first element's says
     * what the array's stride is. */
    const unsigned char *array = (const unsigned char *)given->queues;
    unsigned version = *(const unsigned *)array;
    size_t copy = queue_config_fields(version);
    if (!copy)
        return error_set(ACP_EVERSION,
                         "config.queues[0].version: %u is not supported (1 to %d; call "
                         "acp_queue_config_init)",
                         version, ACP_QUEUE_CONFIG_VERSION);
    size_t stride = queue_config_stride(version);
    out->queues = calloc(given->queue_count, sizeof *out->queues);
    if (!out->queues)
        return error_set(ACP_ENOMEM, "out of memory copying the configuration");
    for (size_t i = 0; i < given->queue_count; i++) {
        const unsigned char *element = array + i * stride;
        unsigned element_version = *(const unsigned *)element;
        if (element_version != version) {
            config_copy_free(out);
            return error_set(ACP_EVERSION,
                             "config.queues[%zu].version: %u differs from queues[0]'s %u (every "
                             "queue of the array needs the same version; call "
                             "acp_queue_config_init)",
                             i, element_version, version);
        }
        queue_config_defaults(&out->queues[i]);
        memcpy(&out->queues[i], element, copy);
        out->queues[i].version = ACP_QUEUE_CONFIG_VERSION;
    }
    out->config.queues = out->queues;
    return 0;
}

void config_copy_free(config_copy *copy)
{
    if (!copy)
        return;
    free(copy->queues);
    copy->queues = NULL;
    copy->config.queues = NULL;
}

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

bool config_name_is_safe(const char *name, size_t max)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > max || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_name_char(name[i]))
            return false;
    return true;
}

/* "'x'" for a printable ASCII character, "byte 0xNN" for anything else. */
static const char *describe_char(char c, char out[16])
{
    unsigned char u = (unsigned char)c;
    if (u >= 0x20 && u < 0x7f)
        snprintf(out, 16, "'%c'", c);
    else
        snprintf(out, 16, "byte 0x%02x", u);
    return out;
}

static bool is_blank(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* Each check below returns ACP_EINVAL with a message "<field>: <problem>". */
static int require(const char *field, const char *value, const char *what)
{
    if (is_blank(value))
        return error_set(ACP_EINVAL, "%s: missing %s", field, what);
    return 0;
}

static int check_range(const char *field, long long value, long long min, long long max)
{
    if (value < min || value > max)
        return error_set(ACP_EINVAL, "%s: %lld is outside %lld..%lld", field, value, min, max);
    return 0;
}

/* S3 bucket naming rules: 3..63 characters of lowercase letters, digits,
 * '.' and '-', starting and ending with a letter or digit. */
static int check_bucket(const char *bucket)
{
    char what[16];
    size_t len = strlen(bucket);
    if (len < 3 || len > 63)
        return error_set(ACP_EINVAL, "config.s3.bucket: '%s' must be 3 to 63 characters long",
                         bucket);
    for (size_t i = 0; i < len; i++) {
        char c = bucket[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-')
            return error_set(ACP_EINVAL,
                             "config.s3.bucket: '%s' has %s at position %zu; allowed are "
                             "lowercase letters, digits, '.' and '-'",
                             bucket, describe_char(c, what), i);
        if (!alnum && (i == 0 || i == len - 1))
            return error_set(ACP_EINVAL,
                             "config.s3.bucket: '%s' must start and end with a letter or digit",
                             bucket);
    }
    return 0;
}

/* Walk the '/'-separated segments of @path: a leading or trailing '/' is
 * fine, "//", "." and ".." are not; with @s3_names every segment must also
 * follow the S3 name rule. */
static int check_segments(const char *field, const char *path, bool s3_names)
{
    char what[16];
    const char *seg = path;
    while (*seg) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (len == 0 && seg != path && end)
            return error_set(ACP_EINVAL, "%s: '%s' contains an empty segment ('//')", field, path);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return error_set(ACP_EINVAL, "%s: '%s' contains a '%.*s' segment", field, path,
                             (int)len, seg);
        for (size_t i = 0; s3_names && i < len; i++)
            if (!is_name_char(seg[i]))
                return error_set(ACP_EINVAL,
                                 "%s: '%s' has %s at position %zu; allowed are letters, "
                                 "digits, '_', '.', '-' and '/'",
                                 field, path, describe_char(seg[i], what),
                                 (size_t)(seg + i - path));
        if (!end)
            break;
        seg = end + 1;
    }
    return 0;
}

static int check_root_path(const char *root)
{
    if (!root)
        return 0; /* NULL means the bucket's top level, like "/" */
    if (strlen(root) > ACP_PATH_MAX)
        return error_set(ACP_EINVAL, "config.s3.root_path: longer than %d bytes", ACP_PATH_MAX);
    return check_segments("config.s3.root_path", root, true);
}

static int check_workspace_root(const char *root)
{
    const char *field = "config.workspace_root";
    if (!root)
        return 0;
    if (root[0] != '/')
        return error_set(ACP_EINVAL, "%s: '%s' is not an absolute path", field, root);
    if (strspn(root, "/") == strlen(root))
        return error_set(ACP_EINVAL,
                         "%s: '/' is unsafe: job directories are created and removed under it",
                         field);
    if (strlen(root) > ACP_PATH_MAX)
        return error_set(ACP_EINVAL, "%s: longer than %d bytes", field, ACP_PATH_MAX);
    for (const char *p = root; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return error_set(ACP_EINVAL, "%s: contains a control character", field);
    return check_segments(field, root + 1, false);
}

static int check_db(const acp_db_config *db)
{
    int rc;
    if ((rc = require("config.db.host", db->host, "database host")) ||
        (rc = check_range("config.db.port", db->port, 1, 65535)) ||
        (rc = require("config.db.dbname", db->dbname, "database name")) ||
        (rc = require("config.db.user", db->user, "database user")) ||
        (rc = require("config.db.password", db->password, "database password")) ||
        (rc = check_range("config.db.pool_size", db->pool_size, 1, ACP_POOL_SIZE_MAX)))
        return rc;
    return 0;
}

static int check_s3(const acp_s3_config *s3)
{
    int rc;
    if ((rc = require("config.s3.host", s3->host, "S3 host")) ||
        (rc = check_range("config.s3.port", s3->port, 0, 65535)) ||
        (rc = require("config.s3.bucket", s3->bucket, "bucket name")) ||
        (rc = check_bucket(s3->bucket)) || (rc = config_s3_check_credentials(s3)) ||
        (rc = check_root_path(s3->root_path)))
        return rc;
    if (strchr(s3->host, ':') || strchr(s3->host, '/'))
        return error_set(ACP_EINVAL,
                         "config.s3.host: '%s' must be a bare host name; give the port in "
                         "config.s3.port and the scheme in config.s3.https",
                         s3->host);
    return 0;
}

static int check_queue(const acp_config *config, size_t index)
{
    const acp_queue_config *q = &config->queues[index];
    char field[64];
    int rc;

#define FIELD(name) (snprintf(field, sizeof field, "config.queues[%zu]." name, index), field)
    if ((rc = require(FIELD("id"), q->id, "queue id")))
        return rc;
    if (!config_name_is_safe(q->id, ACP_QUEUE_ID_MAX))
        return error_set(ACP_EINVAL,
                         "%s: '%s' must be 1 to %d characters of letters, digits, '_', '.' "
                         "and '-'",
                         FIELD("id"), q->id, ACP_QUEUE_ID_MAX);
    for (size_t j = 0; j < index; j++)
        if (config->queues[j].id && strcmp(config->queues[j].id, q->id) == 0)
            return error_set(ACP_EINVAL, "%s: duplicate queue id '%s' (also queues[%zu])",
                             FIELD("id"), q->id, j);
    if ((rc = require(FIELD("host"), q->host, "RabbitMQ host")) ||
        (rc = check_range(FIELD("port"), q->port, 1, 65535)) ||
        (rc = require(FIELD("user"), q->user, "RabbitMQ user")) ||
        (rc = require(FIELD("password"), q->password, "RabbitMQ password")) ||
        (rc = check_range(FIELD("workers"), q->workers, ACP_WORKERS_MIN, ACP_WORKERS_MAX)) ||
        (rc = check_range(FIELD("message_ack_timeout"), q->message_ack_timeout,
                          ACP_MESSAGE_ACK_TIMEOUT_MIN, 7LL * 24 * 3600)) ||
        (rc = check_range(FIELD("heartbeat"), q->heartbeat, 1, ACP_HEARTBEAT_MAX)) ||
        (rc = check_range(FIELD("max_attempts"), q->max_attempts, 0, ACP_MAX_ATTEMPTS_MAX)) ||
        (rc = check_range(FIELD("retry_base_ms"), q->retry_base_ms, 1, ACP_BACKOFF_MS_MAX)) ||
        (rc = check_range(FIELD("retry_max_ms"), q->retry_max_ms, q->retry_base_ms,
                          ACP_BACKOFF_MS_MAX)) ||
        (rc = check_range(FIELD("timeout_seconds"), q->timeout_seconds, 0, ACP_TIMEOUT_MAX)))
        return rc;
#undef FIELD
    return 0;
}

static int check_factory(const acp_executor_factory *factory)
{
    if (!factory)
        return error_set(ACP_EINVAL, "config.executor_factory: missing executor factory");
    if (factory->version < 1 || factory->version > ACP_EXECUTOR_FACTORY_VERSION)
        return error_set(ACP_EVERSION,
                         "config.executor_factory.version: %u is not supported (1 to %d)",
                         factory->version, ACP_EXECUTOR_FACTORY_VERSION);
    if (!factory->create)
        return error_set(ACP_EINVAL, "config.executor_factory.create: missing function");
    return 0;
}

int acp_config_validate(const acp_config *given)
{
    config_copy copy;
    int rc = config_import(given, &copy);
    if (!rc)
        rc = config_check(&copy.config);
    config_copy_free(&copy);
    return rc;
}

static int check_layout(acp_layout layout)
{
    if (layout != ACP_LAYOUT_DEFAULT && layout != ACP_LAYOUT_NATIVE && layout != ACP_LAYOUT_LCP)
        return error_set(ACP_EINVAL,
                         "config.layout: %d is not a layout (ACP_LAYOUT_NATIVE or ACP_LAYOUT_LCP)",
                         (int)layout);
    return 0;
}

int config_check(const acp_config *config)
{
    int rc;
    if (!config->queues || config->queue_count == 0)
        return error_set(ACP_EINVAL, "config.queues: no queues configured");
    if ((rc = check_db(&config->db)) || (rc = check_s3(&config->s3)) ||
        (rc = config_s3_check_client(&config->s3, &config->s3_client)))
        return rc;
    for (size_t i = 0; i < config->queue_count; i++)
        if ((rc = check_queue(config, i)))
            return rc;
    if ((rc = check_workspace_root(config->workspace_root)) ||
        (rc = check_range("config.expiration_days", config->expiration_days, 1,
                          ACP_EXPIRATION_DAYS_MAX)) ||
        (rc = check_range("config.prune_interval", config->prune_interval, 1, 365LL * 24 * 3600)) ||
        (rc = check_factory(config->executor_factory)) ||
        (rc = check_range("config.lease_seconds", config->lease_seconds, 3, 24 * 3600)) ||
        (rc = check_range("config.redispatch_seconds", config->redispatch_seconds, 1,
                          7LL * 24 * 3600)) ||
        (rc = check_range("config.shutdown_timeout", config->shutdown_timeout, 0, 24 * 3600)) ||
        (rc = check_range("config.log_level", config->log_level, ACP_LOG_DEBUG, ACP_LOG_ERROR)) ||
        (rc = check_range("config.max_attempts", config->max_attempts, 0, ACP_MAX_ATTEMPTS_MAX)) ||
        (rc = check_range("config.result_retry_seconds", config->result_retry_seconds, 0,
                          24 * 3600)) ||
        (rc = check_layout(config->layout)) ||
        (rc = check_range("config.cancel_grace_seconds", config->cancel_grace_seconds, 1,
                          ACP_CANCEL_GRACE_MAX)))
        return rc;
    if (config->log_cap_bytes != 0 &&
        (config->log_cap_bytes < ACP_LOG_CAP_MIN || config->log_cap_bytes > ACP_LOG_CAP_MAX))
        return error_set(ACP_EINVAL,
                         "config.log_cap_bytes: %zu is out of range (0 for the default, or %u to "
                         "%u)",
                         config->log_cap_bytes, ACP_LOG_CAP_MIN, ACP_LOG_CAP_MAX);
    return 0;
}
