/* The "queues" array of the settings file: one settings_queue per entry,
 * each member checked with its key named in the error. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "errbuf.h"
#include "settings_internal.h"

/* The library's defaults of acp_queue_config's back-off (include/
 * async_platform.h), to check retry_max_ms >= retry_base_ms when only one of
 * them is given. */
#define SETTINGS_RETRY_BASE_MS_DEFAULT 1000L
#define SETTINGS_RETRY_MAX_MS_DEFAULT  300000L

int settings_add_queue(settings *s, const char *id, char *err, size_t errlen)
{
    settings_queue *grown = realloc(s->queues, (s->queue_count + 1) * sizeof *grown);
    if (!grown)
        return errbuf_set(err, errlen, "queues: out of memory");
    s->queues = grown;
    settings_queue *q = &s->queues[s->queue_count];
    memset(q, 0, sizeof *q);
    q->port = q->workers = q->message_ack_timeout = SETTINGS_UNSET;
    q->max_attempts = q->retry_base_ms = q->retry_max_ms = q->timeout_seconds = SETTINGS_UNSET;
    if (!(q->id = strdup(id)))
        return errbuf_set(err, errlen, "queues: out of memory");
    s->queue_count++;
    return 0;
}

static int settings_queue_string(char **slot, json_object *value, const char *where, char *err,
                                 size_t errlen)
{
    if (!json_object_is_type(value, json_type_string) ||
        strlen(json_object_get_string(value)) != (size_t)json_object_get_string_len(value))
        return errbuf_set(err, errlen, "%s: expected a string without NUL characters", where);
    char *copy = strdup(json_object_get_string(value));
    if (!copy)
        return errbuf_set(err, errlen, "%s: out of memory", where);
    free(*slot);
    *slot = copy;
    return 0;
}

static int settings_queue_long(long *slot, json_object *value, long min, long max,
                               const char *where, char *err, size_t errlen)
{
    if (!json_object_is_type(value, json_type_int))
        return errbuf_set(err, errlen, "%s: expected an integer", where);
    int64_t n = json_object_get_int64(value);
    if (n < min || n > max)
        return errbuf_set(err, errlen, "%s: %lld is outside %ld..%ld", where, (long long)n, min,
                          max);
    *slot = (long)n;
    return 0;
}

int settings_apply_queues(settings *s, json_object *array, char *err, size_t errlen)
{
    if (!json_object_is_type(array, json_type_array) || json_object_array_length(array) == 0)
        return errbuf_set(err, errlen, "queues: expected a non-empty array of objects");
    for (size_t i = 0; i < json_object_array_length(array); i++) {
        json_object *item = json_object_array_get_idx(array, i);
        char where[96];
        snprintf(where, sizeof where, "queues[%zu]", i);
        json_object *id;
        if (!json_object_is_type(item, json_type_object) ||
            !json_object_object_get_ex(item, "id", &id) ||
            !json_object_is_type(id, json_type_string) ||
            strlen(json_object_get_string(id)) != (size_t)json_object_get_string_len(id))
            return errbuf_set(err, errlen, "%s: expected an object with a string \"id\"", where);
        if (settings_add_queue(s, json_object_get_string(id), err, errlen) != 0)
            return -1;
        settings_queue *q = &s->queues[s->queue_count - 1];
        json_object_object_foreach(item, key, value)
        {
            snprintf(where, sizeof where, "queues[%zu].%s", i, key);
            int rc = 0;
            if (strcmp(key, "id") == 0)
                continue;
            else if (strcmp(key, "host") == 0)
                rc = settings_queue_string(&q->host, value, where, err, errlen);
            else if (strcmp(key, "user") == 0)
                rc = settings_queue_string(&q->user, value, where, err, errlen);
            else if (strcmp(key, "password") == 0)
                rc = settings_queue_string(&q->password, value, where, err, errlen);
            else if (strcmp(key, "port") == 0)
                rc = settings_queue_long(&q->port, value, 1, 65535, where, err, errlen);
            else if (strcmp(key, "workers") == 0)
                rc = settings_queue_long(&q->workers, value, ACP_WORKERS_MIN, ACP_WORKERS_MAX,
                                         where, err, errlen);
            else if (strcmp(key, "message_ack_timeout") == 0)
                rc = settings_queue_long(&q->message_ack_timeout, value,
                                         ACP_MESSAGE_ACK_TIMEOUT_MIN, 604800, where, err, errlen);
            else if (strcmp(key, "max_attempts") == 0)
                rc = settings_queue_long(&q->max_attempts, value, 0, ACP_MAX_ATTEMPTS_MAX, where,
                                         err, errlen);
            else if (strcmp(key, "retry_base_ms") == 0)
                rc = settings_queue_long(&q->retry_base_ms, value, 1, (long)ACP_BACKOFF_MS_MAX,
                                         where, err, errlen);
            else if (strcmp(key, "retry_max_ms") == 0)
                rc = settings_queue_long(&q->retry_max_ms, value, 1, (long)ACP_BACKOFF_MS_MAX,
                                         where, err, errlen);
            else if (strcmp(key, "timeout_seconds") == 0)
                rc = settings_queue_long(&q->timeout_seconds, value, 0, ACP_TIMEOUT_MAX, where, err,
                                         errlen);
            else
                rc = errbuf_set(err, errlen, "%s: unknown setting", where);
            if (rc)
                return rc;
        }
        /* Against the library's defaults too: a cap below the default base
         * alone is as wrong as one below a base given with it. */
        long base =
            q->retry_base_ms != SETTINGS_UNSET ? q->retry_base_ms : SETTINGS_RETRY_BASE_MS_DEFAULT;
        long max =
            q->retry_max_ms != SETTINGS_UNSET ? q->retry_max_ms : SETTINGS_RETRY_MAX_MS_DEFAULT;
        if (max < base)
            return errbuf_set(err, errlen,
                              "queues[%zu].retry_max_ms: %ld is below retry_base_ms (%ld%s)", i,
                              max, base, q->retry_base_ms != SETTINGS_UNSET ? "" : ", the default");
    }
    return 0;
}
