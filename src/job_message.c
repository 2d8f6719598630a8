/* The job message (docs/compatibility.adoc, RabbitMQ): formatting what we
 * publish and parsing what any publisher sent, strictly. */
#include "job_message.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "json.h"

int job_message_format(buf *out, const acp_job_id *id, const char *config, int64_t now_us)
{
    if (!out || !id)
        return error_set(ACP_EINVAL, "job message: NULL argument");
    struct tm tm;
    int micros;
    /* Years outside 0..9999 would need a sign in ISO-8601. */
    if (!clock_utc(now_us, &tm, &micros))
        return error_set(ACP_EINVAL, "job message: dispatch time %lld us is out of range",
                         (long long)now_us);

    json_object *value = NULL;
    if (config) {
        size_t config_len = strlen(config);
        if (config_len > ACP_JOB_CONFIG_MAX)
            return error_set(ACP_ETOOBIG, "job config: %zu bytes exceeds the limit of %d",
                             config_len, ACP_JOB_CONFIG_MAX);
        int rc = json_parse(config, config_len, "job config", &value);
        if (rc)
            return rc;
    }
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    /* Built aside so that @out is unchanged on failure. */
    buf text = BUF_INIT;
    int rc = buf_printf(&text,
                        "{\"jobID\":\"%s\",\"type\":\"\",\"dispatched\":\"%04d-%02d-%02dT%02d:%02d:"
                        "%02d.%06dZ\",\"attemptCount\":0,\"body\":",
                        hex, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, micros);
    if (!rc)
        rc = json_write_compact(&text, value);
    if (!rc)
        rc = buf_append(&text, "}", 1);
    if (!rc)
        rc = buf_append(out, text.data, text.len);
    json_object_put(value);
    buf_free(&text);
    return rc;
}

/* Fetch member @key of @obj into *@value: ACP_EINVAL when it is missing or,
 * unless @nullable, null. */
static int job_message_member(json_object *obj, const char *key, bool nullable, json_object **value)
{
    if (!json_object_object_get_ex(obj, key, value))
        return error_set(ACP_EINVAL, "job message: no \"%s\" field", key);
    if (!*value && !nullable)
        return error_set(ACP_EINVAL, "job message: \"%s\" is null", key);
    return 0;
}

static int job_message_string(json_object *obj, const char *key, json_object **value)
{
    int rc = job_message_member(obj, key, false, value);
    if (!rc && !json_object_is_type(*value, json_type_string))
        rc = error_set(ACP_EINVAL, "job message: \"%s\" is not a string", key);
    return rc;
}

int job_message_parse(const char *body, size_t len, acp_job_id *id, char **config)
{
    if (config)
        *config = NULL;
    if (!body || !id || !config)
        return error_set(ACP_EINVAL, "job message: NULL argument");
    if (len > JOB_MESSAGE_MAX)
        return error_set(ACP_ETOOBIG, "job message: %zu bytes exceeds the limit of %d", len,
                         JOB_MESSAGE_MAX);
    json_object *root = NULL;
    /* The envelope is one level above the deepest config submit accepts. */
    int rc = json_parse_depth(body, len, "job message", JSON_MAX_DEPTH + 1, &root);
    if (rc)
        return rc;
    if (!json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        return error_set(ACP_EINVAL, "job message: not a JSON object");
    }

    json_object *job_id, *type, *dispatched, *attempts, *content;
    acp_job_id parsed;
    if ((rc = job_message_string(root, "jobID", &job_id)) ||
        (rc = job_message_string(root, "type", &type)) ||
        (rc = job_message_string(root, "dispatched", &dispatched)) ||
        (rc = job_message_member(root, "attemptCount", false, &attempts)) ||
        (rc = job_message_member(root, "body", true, &content)))
        goto out;
    if (!json_object_is_type(attempts, json_type_int)) {
        rc = error_set(ACP_EINVAL, "job message: \"attemptCount\" is not an integer");
        goto out;
    }
    if ((rc = acp_job_id_parse(&parsed, json_object_get_string(job_id)))) {
        rc = error_prefix(rc, "job message: \"jobID\"");
        goto out;
    }
    if (content) {
        buf text = BUF_INIT;
        if ((rc = json_write_compact(&text, content))) {
            buf_free(&text);
            goto out;
        }
        *config = text.data;
    }
    *id = parsed;
out:
    json_object_put(root);
    return rc;
}
