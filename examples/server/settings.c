#include "settings.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "jsonspan.h"
#include "settings_internal.h"
#include "slog.h"
#include "errbuf.h"

/* A config file larger than this is certainly a mistake. */
#define SETTINGS_FILE_MAX (1024 * 1024)

typedef enum settings_kind {
    SETTINGS_STRING,
    SETTINGS_INT,
    SETTINGS_BOOL,
    SETTINGS_SECONDS, /* a non-negative number, fractions allowed */
    SETTINGS_LEVEL,
    SETTINGS_CHOICE, /* one of the names in settings_field.choices, stored as an int */
} settings_kind;

/* A name the file may give and the enum value it stands for. */
typedef struct settings_choice {
    const char *name;
    int value;
} settings_choice;

static const settings_choice settings_layouts[] = {
    {"native", ACP_LAYOUT_NATIVE}, {"lcp", ACP_LAYOUT_LCP}, {NULL, 0}};
static const settings_choice settings_signatures[] = {
    {"v4", ACP_S3_SIGNATURE_V4}, {"v2", ACP_S3_SIGNATURE_V2}, {NULL, 0}};
static const settings_choice settings_addressings[] = {{"auto", ACP_S3_ADDRESSING_DEFAULT},
                                                       {"path", ACP_S3_ADDRESSING_PATH},
                                                       {"virtual", ACP_S3_ADDRESSING_VIRTUAL},
                                                       {NULL, 0}};

/* One scalar key of the file, where it goes in struct settings, its bounds
 * and the environment variable that provides its default. */
typedef struct settings_field {
    const char *key;
    settings_kind kind;
    size_t offset;
    long min, max;
    const char *env;
    int required;
    const settings_choice *choices; /* SETTINGS_CHOICE */
} settings_field;

#define FIELD(key, kind, member, min, max, env, required)                                          \
    {                                                                                              \
        key, kind, offsetof(settings, member), min, max, env, required, NULL                       \
    }
#define CHOICE(key, member, choices)                                                               \
    {                                                                                              \
        key, SETTINGS_CHOICE, offsetof(settings, member), 0, 0, NULL, 0, choices                   \
    }

static const settings_field settings_listen_fields[] = {
    FIELD("address", SETTINGS_STRING, listen_address, 0, 0, NULL, 0),
    FIELD("port", SETTINGS_INT, port, 0, 65535, NULL, 0),
    FIELD("max_connections", SETTINGS_INT, max_connections, 1, 10000, NULL, 0),
    FIELD("connection_timeout", SETTINGS_INT, connection_timeout, 1, 86400, NULL, 0),
    FIELD("max_connections_per_client", SETTINGS_INT, max_connections_per_client, 1, 10000, NULL,
          0),
    FIELD("request_timeout", SETTINGS_INT, request_timeout, 1, 86400, NULL, 0),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_tls_fields[] = {
    FIELD("cert_file", SETTINGS_STRING, tls_cert_file, 0, 0, NULL, 0),
    FIELD("key_file", SETTINGS_STRING, tls_key_file, 0, 0, NULL, 0),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_db_fields[] = {
    FIELD("host", SETTINGS_STRING, db_host, 0, 0, "ACP_TEST_PG_HOST", 1),
    FIELD("port", SETTINGS_INT, db_port, 1, 65535, "ACP_TEST_PG_PORT", 0),
    FIELD("dbname", SETTINGS_STRING, db_name, 0, 0, "ACP_TEST_PG_DB", 1),
    FIELD("user", SETTINGS_STRING, db_user, 0, 0, "ACP_TEST_PG_USER", 1),
    FIELD("password", SETTINGS_STRING, db_password, 0, 0, "ACP_TEST_PG_PASSWORD", 1),
    FIELD("pool_size", SETTINGS_INT, db_pool_size, 1, ACP_POOL_SIZE_MAX, NULL, 0),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_s3_fields[] = {
    FIELD("host", SETTINGS_STRING, s3_host, 0, 0, "ACP_TEST_S3_HOST", 1),
    FIELD("port", SETTINGS_INT, s3_port, 0, 65535, "ACP_TEST_S3_PORT", 0),
    FIELD("https", SETTINGS_BOOL, s3_https, 0, 1, NULL, 0),
    FIELD("bucket", SETTINGS_STRING, s3_bucket, 0, 0, "ACP_TEST_S3_BUCKET", 1),
    /* Not required: the library then reads AWS_ACCESS_KEY_ID and friends. */
    FIELD("access_key", SETTINGS_STRING, s3_access_key, 0, 0, "ACP_TEST_S3_ACCESS_KEY", 0),
    FIELD("secret_key", SETTINGS_STRING, s3_secret_key, 0, 0, "ACP_TEST_S3_SECRET_KEY", 0),
    FIELD("session_token", SETTINGS_STRING, s3_session_token, 0, 0, NULL, 0),
    FIELD("root_path", SETTINGS_STRING, s3_root_path, 0, 0, NULL, 0),
    FIELD("region", SETTINGS_STRING, s3_region, 0, 0, NULL, 0),
    FIELD("ca_file", SETTINGS_STRING, s3_ca_file, 0, 0, NULL, 0),
    FIELD("ca_path", SETTINGS_STRING, s3_ca_path, 0, 0, NULL, 0),
    CHOICE("signature", s3_signature, settings_signatures),
    CHOICE("addressing", s3_addressing, settings_addressings),
    FIELD("tls_skip_verify", SETTINGS_BOOL, s3_tls_skip_verify, 0, 1, NULL, 0),
    FIELD("connect_timeout_ms", SETTINGS_INT, s3_connect_timeout_ms, 1, ACP_S3_TIMEOUT_MS_MAX, NULL,
          0),
    FIELD("request_timeout_ms", SETTINGS_INT, s3_request_timeout_ms, 1000, ACP_S3_TIMEOUT_MS_MAX,
          NULL, 0),
    FIELD("retries", SETTINGS_INT, s3_retries, 0, ACP_S3_RETRIES_MAX, NULL, 0),
    FIELD("retry_base_ms", SETTINGS_INT, s3_retry_base_ms, 1, 60000, NULL, 0),
    FIELD("retry_max_ms", SETTINGS_INT, s3_retry_max_ms, 1, 600000, NULL, 0),
    FIELD("multipart_threshold", SETTINGS_INT, s3_multipart_threshold, ACP_S3_PART_SIZE_MIN,
          ACP_S3_PART_SIZE_MAX, NULL, 0),
    FIELD("part_size", SETTINGS_INT, s3_part_size, ACP_S3_PART_SIZE_MIN, ACP_S3_PART_SIZE_MAX, NULL,
          0),
    FIELD("upload_parallelism", SETTINGS_INT, s3_upload_parallelism, 1, ACP_S3_PARALLELISM_MAX,
          NULL, 0),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_amqp_fields[] = {
    FIELD("host", SETTINGS_STRING, amqp_host, 0, 0, "ACP_TEST_AMQP_HOST", 1),
    FIELD("port", SETTINGS_INT, amqp_port, 1, 65535, "ACP_TEST_AMQP_PORT", 0),
    FIELD("user", SETTINGS_STRING, amqp_user, 0, 0, "ACP_TEST_AMQP_USER", 1),
    FIELD("password", SETTINGS_STRING, amqp_password, 0, 0, "ACP_TEST_AMQP_PASSWORD", 1),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_top_fields[] = {
    FIELD("workspace_root", SETTINGS_STRING, workspace_root, 0, 0, NULL, 0),
    FIELD("expiration_days", SETTINGS_INT, expiration_days, 1, ACP_EXPIRATION_DAYS_MAX, NULL, 0),
    FIELD("prune_interval", SETTINGS_INT, prune_interval, 1, 31536000, NULL, 0),
    FIELD("lease_seconds", SETTINGS_INT, lease_seconds, 3, 86400, NULL, 0),
    FIELD("redispatch_seconds", SETTINGS_INT, redispatch_seconds, 1, 31536000, NULL, 0),
    FIELD("shutdown_timeout", SETTINGS_INT, shutdown_timeout, 0, 86400, NULL, 0),
    FIELD("result_retry_seconds", SETTINGS_INT, result_retry_seconds, 0, 86400, NULL, 0),
    FIELD("log_level", SETTINGS_LEVEL, log_level, 0, 0, NULL, 0),
    FIELD("max_body_bytes", SETTINGS_INT, max_body_bytes, 1024, 64L * 1024 * 1024, NULL, 0),
    FIELD("max_input_bytes", SETTINGS_INT, max_input_bytes, 1024, 1L << 40, NULL, 0),
    FIELD("health_cache_seconds", SETTINGS_SECONDS, health_cache_seconds, 0, 3600, NULL, 0),
    FIELD("max_attempts", SETTINGS_INT, max_attempts, 0, ACP_MAX_ATTEMPTS_MAX, NULL, 0),
    FIELD("cancel_grace_seconds", SETTINGS_INT, cancel_grace_seconds, 1, ACP_CANCEL_GRACE_MAX, NULL,
          0),
    CHOICE("layout", layout, settings_layouts),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_sleep_fields[] = {
    FIELD("max_seconds", SETTINGS_SECONDS, sleep_max_seconds, 0, 86400, NULL, 0),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static const settings_field settings_command_fields[] = {
    FIELD("timeout_seconds", SETTINGS_SECONDS, command_timeout_seconds, 0, 86400, NULL, 0),
    FIELD("max_args", SETTINGS_INT, command_max_args, 0, 4096, NULL, 0),
    FIELD("max_arg_bytes", SETTINGS_INT, command_max_arg_bytes, 1, 1024 * 1024, NULL, 0),
    FIELD("sandbox", SETTINGS_BOOL, command_sandbox, 0, 1, NULL, 0),
    FIELD("bwrap", SETTINGS_STRING, command_bwrap, 0, 0, NULL, 0),
    FIELD("run_as_uid", SETTINGS_INT, command_run_as_uid, 1, 2147483646, NULL, 0),
    FIELD("max_cpu_seconds", SETTINGS_INT, command_max_cpu_seconds, 1, 31536000, NULL, 0),
    FIELD("max_file_bytes", SETTINGS_INT, command_max_file_bytes, 4096, 1L << 50, NULL, 0),
    FIELD("max_memory_bytes", SETTINGS_INT, command_max_memory_bytes, 64L << 20, 1L << 50, NULL, 0),
    FIELD("max_processes", SETTINGS_INT, command_max_processes, 1, 65536, NULL, 0),
    FIELD("max_open_files", SETTINGS_INT, command_max_open_files, 16, 1048576, NULL, 0),
    FIELD("tmp_bytes", SETTINGS_INT, command_tmp_bytes, 1L << 20, 1L << 40, NULL, 0),
    {NULL, 0, 0, 0, 0, NULL, 0, NULL},
};

static void *settings_slot(settings *s, const settings_field *f)
{
    return (char *)s + f->offset;
}

static int settings_set_string(settings *s, const settings_field *f, const char *value,
                               const char *where, char *err, size_t errlen)
{
    char **slot = settings_slot(s, f);
    char *copy = strdup(value);
    if (!copy)
        return errbuf_set(err, errlen, "%s: out of memory", where);
    free(*slot);
    *slot = copy;
    return 0;
}

static int settings_set_long(settings *s, const settings_field *f, long long value,
                             const char *where, char *err, size_t errlen)
{
    if (value < f->min || value > f->max)
        return errbuf_set(err, errlen, "%s: %lld is outside %ld..%ld", where, value, f->min,
                          f->max);
    if (f->kind == SETTINGS_BOOL)
        *(int *)settings_slot(s, f) = (int)value;
    else
        *(long *)settings_slot(s, f) = (long)value;
    return 0;
}

/* An integer from the environment: the whole text must be a number. */
static int settings_from_env(settings *s, const settings_field *f, char *err, size_t errlen)
{
    const char *value = f->env ? getenv(f->env) : NULL;
    if (!value || !*value)
        return 0;
    if (f->kind == SETTINGS_STRING)
        return settings_set_string(s, f, value, f->env, err, errlen);
    char *end;
    errno = 0;
    long long n = strtoll(value, &end, 10);
    if (errno || *end || end == value)
        return errbuf_set(err, errlen, "%s: '%s' is not an integer", f->env, value);
    return settings_set_long(s, f, n, f->env, err, errlen);
}

/* "expected \"a\", \"b\" or \"c\"" for @f's choices. */
static int settings_set_choice(settings *s, const settings_field *f, json_object *value,
                               const char *where, char *err, size_t errlen)
{
    const char *text =
        json_object_is_type(value, json_type_string) ? json_object_get_string(value) : "";
    for (const settings_choice *c = f->choices; c->name; c++)
        if (strcmp(text, c->name) == 0) {
            *(int *)settings_slot(s, f) = c->value;
            return 0;
        }
    char names[160] = "";
    size_t used = 0;
    for (const settings_choice *c = f->choices; c->name && used < sizeof names; c++) {
        const char *sep = c == f->choices ? "" : c[1].name ? ", " : " or ";
        used += (size_t)snprintf(names + used, sizeof names - used, "%s\"%s\"", sep, c->name);
    }
    return errbuf_set(err, errlen, "%s: expected %s", where, names);
}

static int settings_from_json(settings *s, const settings_field *f, json_object *value,
                              const char *where, char *err, size_t errlen)
{
    switch (f->kind) {
    case SETTINGS_STRING:
        if (!json_object_is_type(value, json_type_string))
            return errbuf_set(err, errlen, "%s: expected a string", where);
        if (strlen(json_object_get_string(value)) != (size_t)json_object_get_string_len(value))
            return errbuf_set(err, errlen, "%s: contains a NUL character", where);
        return settings_set_string(s, f, json_object_get_string(value), where, err, errlen);
    case SETTINGS_INT:
        if (!json_object_is_type(value, json_type_int))
            return errbuf_set(err, errlen, "%s: expected an integer", where);
        return settings_set_long(s, f, (long long)json_object_get_int64(value), where, err, errlen);
    case SETTINGS_BOOL:
        if (!json_object_is_type(value, json_type_boolean))
            return errbuf_set(err, errlen, "%s: expected true or false", where);
        return settings_set_long(s, f, json_object_get_boolean(value) ? 1 : 0, where, err, errlen);
    case SETTINGS_SECONDS: {
        if (!json_object_is_type(value, json_type_int) &&
            !json_object_is_type(value, json_type_double))
            return errbuf_set(err, errlen, "%s: expected a number of seconds", where);
        double d = json_object_get_double(value);
        if (!isfinite(d) || d < (double)f->min || d > (double)f->max)
            return errbuf_set(err, errlen, "%s: %g is outside %ld..%ld", where, d, f->min, f->max);
        *(double *)settings_slot(s, f) = d;
        return 0;
    }
    case SETTINGS_LEVEL:
        if (!json_object_is_type(value, json_type_string) ||
            slog_parse_level(json_object_get_string(value), settings_slot(s, f)) != 0)
            return errbuf_set(err, errlen,
                              "%s: expected \"debug\", \"info\", \"warn\" or "
                              "\"error\"",
                              where);
        return 0;
    case SETTINGS_CHOICE:
        return settings_set_choice(s, f, value, where, err, errlen);
    }
    return errbuf_set(err, errlen, "%s: unsupported setting", where);
}

static const settings_field *settings_lookup(const settings_field *fields, const char *key)
{
    for (const settings_field *f = fields; f->key; f++)
        if (strcmp(f->key, key) == 0)
            return f;
    return NULL;
}

/* Apply the scalar members of the object @section (named @prefix, "" at the
 * top level); members named in @skip are handled by the caller. */
static int settings_apply_section(settings *s, const settings_field *fields, json_object *section,
                                  const char *prefix, const char *const *skip, char *err,
                                  size_t errlen)
{
    if (!json_object_is_type(section, json_type_object))
        return errbuf_set(err, errlen, "%s: expected an object", prefix);
    json_object_object_foreach(section, key, value)
    {
        char where[160];
        snprintf(where, sizeof where, "%s%s%s", prefix, *prefix ? "." : "", key);
        int skipped = 0;
        for (const char *const *k = skip; k && *k && !skipped; k++)
            skipped = strcmp(*k, key) == 0;
        if (skipped)
            continue;
        const settings_field *f = settings_lookup(fields, key);
        if (!f)
            return errbuf_set(err, errlen, "%s: unknown setting", where);
        if (settings_from_json(s, f, value, where, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int settings_apply_executors(settings *s, json_object *section, char *err, size_t errlen)
{
    if (!json_object_is_type(section, json_type_object))
        return errbuf_set(err, errlen, "executors: expected an object");
    static const char *const command_skip[] = {"programs", NULL};
    json_object_object_foreach(section, key, value)
    {
        if (strcmp(key, "sleep") == 0) {
            if (settings_apply_section(s, settings_sleep_fields, value, "executors.sleep", NULL,
                                       err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "command") == 0) {
            if (settings_apply_section(s, settings_command_fields, value, "executors.command",
                                       command_skip, err, errlen) != 0)
                return -1;
            json_object *programs;
            if (json_object_object_get_ex(value, "programs", &programs) &&
                programs_load(programs, &s->programs, &s->program_count, err, errlen) != 0)
                return -1;
        } else if (strcmp(key, "checksum") == 0) {
            if (!json_object_is_type(value, json_type_object) ||
                json_object_object_length(value) != 0)
                return errbuf_set(err, errlen, "executors.checksum: has no settings ({})");
        } else {
            return errbuf_set(err, errlen,
                              "executors.%s: unknown executor (known: sleep, checksum, command)",
                              key);
        }
    }
    return 0;
}

/* listen.tls: HTTPS with the PEM files named (http.c, tls.c). */
static int settings_apply_tls(settings *s, json_object *section, char *err, size_t errlen)
{
    if (settings_apply_section(s, settings_tls_fields, section, "listen.tls", NULL, err, errlen))
        return -1;
    if (!s->tls_cert_file || !*s->tls_cert_file || !s->tls_key_file || !*s->tls_key_file)
        return errbuf_set(err, errlen,
                          "listen.tls.%s: missing: HTTPS needs both cert_file and "
                          "key_file (PEM)",
                          !s->tls_cert_file || !*s->tls_cert_file ? "cert_file" : "key_file");
    return 0;
}

static int settings_read_file(const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return errbuf_set(err, errlen, "%s: %s", path, strerror(errno));
    char *text = malloc(SETTINGS_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, SETTINGS_FILE_MAX + 1, f) : 0;
    int failed = ferror(f);
    fclose(f);
    if (!text)
        return errbuf_set(err, errlen, "%s: out of memory", path);
    if (failed || n > SETTINGS_FILE_MAX) {
        free(text);
        return errbuf_set(err, errlen, "%s: %s", path, failed ? "read error" : "larger than 1 MiB");
    }
    const char *nul = memchr(text, '\0', n);
    if (nul) {
        size_t at = (size_t)(nul - text);
        free(text);
        return errbuf_set(err, errlen, "%s: a NUL byte at byte %zu (not a text file?)", path, at);
    }
    text[n] = '\0';
    *out = text;
    return 0;
}

static int settings_apply_file(settings *s, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    if (settings_read_file(path, &text, err, errlen) != 0)
        return -1;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        free(text);
        return errbuf_set(err, errlen, "%s: out of memory", path);
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    size_t len = strlen(text);
    json_object *root = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (root && end < len && strchr(" \t\r\n", text[end]))
        end++;
    long quote = root ? jsonspan_single_quote(text, len) : -1;
    long nul = root ? jsonspan_nul_key(text, len) : -1;
    explicit_bzero(text, len); /* it may hold plain tokens (auth) */
    free(text);
    if (quote >= 0) {
        json_object_put(root);
        return errbuf_set(err, errlen, "%s: not valid JSON: a single-quoted string at byte %ld",
                          path, quote);
    }
    if (nul >= 0) {
        json_object_put(root);
        return errbuf_set(err, errlen, "%s: the key at byte %ld contains a NUL character", path,
                          nul);
    }
    if (!root || end != len) {
        json_object_put(root);
        return errbuf_set(err, errlen, "%s: not valid JSON: %s at byte %zu", path,
                          root ? "trailing characters" : json_tokener_error_desc(jerr), end);
    }

    static const char *const top_skip[] = {"listen", "database",  "s3",   "rabbitmq",
                                           "queues", "executors", "auth", NULL};
    static const char *const listen_skip[] = {"tls", NULL};
    int rc = settings_apply_section(s, settings_top_fields, root, "", top_skip, err, errlen);
    json_object *section, *tls;
    if (!rc && json_object_object_get_ex(root, "listen", &section)) {
        rc = settings_apply_section(s, settings_listen_fields, section, "listen", listen_skip, err,
                                    errlen);
        if (!rc && json_object_object_get_ex(section, "tls", &tls))
            rc = settings_apply_tls(s, tls, err, errlen);
    }
    if (!rc && json_object_object_get_ex(root, "auth", &section))
        rc = auth_load(&s->auth, section, err, errlen);
    if (!rc && json_object_object_get_ex(root, "database", &section))
        rc = settings_apply_section(s, settings_db_fields, section, "database", NULL, err, errlen);
    if (!rc && json_object_object_get_ex(root, "s3", &section))
        rc = settings_apply_section(s, settings_s3_fields, section, "s3", NULL, err, errlen);
    if (!rc && json_object_object_get_ex(root, "rabbitmq", &section))
        rc =
            settings_apply_section(s, settings_amqp_fields, section, "rabbitmq", NULL, err, errlen);
    if (!rc && json_object_object_get_ex(root, "queues", &section))
        rc = settings_apply_queues(s, section, err, errlen);
    if (!rc && json_object_object_get_ex(root, "executors", &section))
        rc = settings_apply_executors(s, section, err, errlen);
    json_object_put(root);
    if (rc) {
        /* Name the file too: "server.json: database.port: ..." */
        char inner[512];
        snprintf(inner, sizeof inner, "%s", err);
        return errbuf_set(err, errlen, "%s: %s", path, inner);
    }
    return 0;
}

static void settings_defaults(settings *s)
{
    memset(s, 0, sizeof *s);
    s->port = 8080;
    s->max_connections = 64;
    s->connection_timeout = 60;
    s->max_connections_per_client = 16;
    s->request_timeout = 30;
    s->health_cache_seconds = 5;
    s->max_body_bytes = 1024 * 1024;
    s->max_input_bytes = 1L << 30;
    s->db_port = s->s3_port = s->amqp_port = SETTINGS_UNSET;
    s->db_pool_size = SETTINGS_UNSET;
    s->expiration_days = s->prune_interval = s->lease_seconds = SETTINGS_UNSET;
    s->redispatch_seconds = s->shutdown_timeout = SETTINGS_UNSET;
    s->max_attempts = s->cancel_grace_seconds = SETTINGS_UNSET;
    s->result_retry_seconds = SETTINGS_UNSET;
    s->s3_connect_timeout_ms = s->s3_request_timeout_ms = s->s3_retries = SETTINGS_UNSET;
    s->s3_retry_base_ms = s->s3_retry_max_ms = SETTINGS_UNSET;
    s->s3_multipart_threshold = s->s3_part_size = s->s3_upload_parallelism = SETTINGS_UNSET;
    s->log_level = ACP_LOG_INFO;
    s->sleep_max_seconds = 300;
    s->command_timeout_seconds = 60;
    s->command_max_args = 64;
    s->command_max_arg_bytes = 4096;
    s->command_sandbox = 1;
    s->command_run_as_uid = 65534; /* nobody */
    s->command_max_cpu_seconds = 600;
    s->command_max_file_bytes = 1L << 30;
    s->command_max_memory_bytes = 4L << 30;
    s->command_max_processes = 64;
    s->command_max_open_files = 256;
    s->command_tmp_bytes = 64L << 20;
}

static int settings_check_required(const settings *s, const settings_field *fields,
                                   const char *section, char *err, size_t errlen)
{
    for (const settings_field *f = fields; f->key; f++) {
        if (!f->required)
            continue;
        const char *const *slot = (const char *const *)((const char *)s + f->offset);
        if (*slot && **slot)
            continue;
        if (f->env)
            return errbuf_set(err, errlen, "%s.%s is not set (config file) and neither is %s",
                              section, f->key, f->env);
        return errbuf_set(err, errlen, "%s.%s is not set", section, f->key);
    }
    return 0;
}

int settings_load(settings *s, const char *path, char *err, size_t errlen)
{
    settings_defaults(s);
    int rc = settings_set_string(s, &settings_listen_fields[0], "127.0.0.1", "listen.address", err,
                                 errlen);
    const settings_field *const env_sections[] = {settings_db_fields, settings_s3_fields,
                                                  settings_amqp_fields};
    for (size_t i = 0; !rc && i < 3; i++)
        for (const settings_field *f = env_sections[i]; !rc && f->key; f++)
            rc = settings_from_env(s, f, err, errlen);
    if (!rc)
        rc = settings_set_string(s, settings_lookup(settings_command_fields, "bwrap"),
                                 "/usr/bin/bwrap", "executors.command.bwrap", err, errlen);
    if (!rc && path)
        rc = settings_apply_file(s, path, err, errlen);
    if (!rc)
        rc = programs_check(s->programs, s->program_count, s->command_sandbox, s->command_bwrap,
                            err, errlen);
    if (!rc)
        rc = auth_check_exposure(&s->auth, s->listen_address, err, errlen);
    if (!rc && s->queue_count == 0)
        rc = settings_add_queue(s, "default", err, errlen);
    if (!rc)
        rc = settings_check_required(s, settings_db_fields, "database", err, errlen);
    if (!rc)
        rc = settings_check_required(s, settings_s3_fields, "s3", err, errlen);
    for (size_t i = 0; !rc && i < s->queue_count; i++) {
        const settings_queue *q = &s->queues[i];
        if (!q->host && !s->amqp_host)
            rc = errbuf_set(err, errlen,
                            "queues[%zu] (%s): no RabbitMQ host: set "
                            "rabbitmq.host or ACP_TEST_AMQP_HOST",
                            i, q->id);
        else if ((!q->user && !s->amqp_user) || (!q->password && !s->amqp_password))
            rc = errbuf_set(err, errlen,
                            "queues[%zu] (%s): no RabbitMQ user or password: "
                            "set rabbitmq.user/password or ACP_TEST_AMQP_*",
                            i, q->id);
    }
    if (rc)
        settings_free(s);
    return rc;
}

void settings_free(settings *s)
{
    static const settings_field *const sections[] = {
        settings_listen_fields, settings_tls_fields, settings_db_fields,      settings_s3_fields,
        settings_amqp_fields,   settings_top_fields, settings_command_fields, NULL};
    for (const settings_field *const *sec = sections; *sec; sec++)
        for (const settings_field *f = *sec; f->key; f++)
            if (f->kind == SETTINGS_STRING)
                free(*(char **)settings_slot(s, f));
    for (size_t i = 0; i < s->queue_count; i++) {
        free(s->queues[i].id);
        free(s->queues[i].host);
        free(s->queues[i].user);
        free(s->queues[i].password);
    }
    free(s->queues);
    programs_free(s->programs, s->program_count);
    auth_free(&s->auth);
    memset(s, 0, sizeof *s);
}

const settings_program *settings_find_program(const settings *s, const char *name)
{
    for (size_t i = 0; i < s->program_count; i++)
        if (strcmp(s->programs[i].name, name) == 0)
            return &s->programs[i];
    return NULL;
}

int settings_has_queue(const settings *s, const char *id)
{
    for (size_t i = 0; i < s->queue_count; i++)
        if (strcmp(s->queues[i].id, id) == 0)
            return 1;
    return 0;
}
