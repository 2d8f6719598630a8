#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executors.h"
#include "files.h"
#include "health.h"
#include "jobctl.h"
#include "jsonspan.h"
#include "logs.h"
#include "metricsroute.h"
#include "ui.h"

/* The request body is {"queue", "config", "id"}: one level above the
 * library's own limit of 64 for a config. */
#define API_BODY_DEPTH   65
#define API_SEGMENTS     5
#define API_DEFAULT_PAGE 50

/* ---- job documents ------------------------------------------------------ */

/* ISO-8601 UTC with milliseconds; null for "not known". */
static json_object *api_time(int64_t us)
{
    if (us <= 0)
        return NULL;
    time_t seconds = (time_t)(us / 1000000);
    struct tm tm;
    char text[40];
    if (!gmtime_r(&seconds, &tm))
        return NULL;
    size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text + n, sizeof text - n, ".%03dZ", (int)(us % 1000000 / 1000));
    return json_object_new_string(text);
}

/* The latest acp_job_progress() of the job's current (or last) attempt;
 * null before its first report. A total of 0 is the library's "unknown". */
static json_object *api_progress_json(const acp_job *job)
{
    if (job->version < 3 || job->progress_updated <= 0)
        return NULL;
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "done", json_object_new_uint64(job->progress_done));
    json_object_object_add(
        doc, "total", job->progress_total ? json_object_new_uint64(job->progress_total) : NULL);
    json_object_object_add(doc, "text",
                           job->progress_text ? json_object_new_string(job->progress_text) : NULL);
    json_object_object_add(doc, "updated", api_time(job->progress_updated));
    return doc;
}

static json_object *api_job_json(const acp_job *job)
{
    char hex[ACP_JOB_ID_STRLEN];
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "id", json_object_new_string(acp_job_id_format(&job->id, hex)));
    json_object_object_add(doc, "status", json_object_new_string(acp_job_status_name(job->status)));
    json_object_object_add(doc, "owned", json_object_new_boolean(job->owned));
    json_object_object_add(doc, "queue", job->queue[0] ? json_object_new_string(job->queue) : NULL);
    json_object_object_add(doc, "created", api_time(job->created));
    json_object_object_add(doc, "grabbed", api_time(job->grabbed));
    json_object_object_add(doc, "finished", api_time(job->finished));
    json_object_object_add(doc, "last_accessed", api_time(job->last_accessed));
    json_object_object_add(doc, "queue_position",
                           job->queue_position >= 0 ? json_object_new_int64(job->queue_position)
                                                    : NULL);
    json_object_object_add(doc, "attempts", json_object_new_int64(job->attempts));
    json_object_object_add(doc, "max_attempts", json_object_new_int64(job->max_attempts));
    json_object_object_add(doc, "priority", json_object_new_int(job->priority));
    json_object_object_add(doc, "timeout_seconds",
                           job->timeout_seconds ? json_object_new_int64(job->timeout_seconds)
                                                : NULL);
    json_object_object_add(doc, "next_run", api_time(job->next_run));
    json_object_object_add(doc, "cancel_requested",
                           json_object_new_boolean(job->cancel_requested != 0));
    /* "message" came first and stays; "last_error" is the same text under
     * the name that says what it is since attempts are retried. */
    json_object_object_add(doc, "message",
                           job->message ? json_object_new_string(job->message) : NULL);
    json_object_object_add(doc, "last_error",
                           job->message ? json_object_new_string(job->message) : NULL);
    json_object_object_add(doc, "progress", api_progress_json(job));
    return doc;
}

static json_object *api_job_brief(const acp_job_id *id, acp_job_status status)
{
    char hex[ACP_JOB_ID_STRLEN];
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "id", json_object_new_string(acp_job_id_format(id, hex)));
    json_object_object_add(doc, "status", json_object_new_string(acp_job_status_name(status)));
    return doc;
}

/* ---- POST /jobs --------------------------------------------------------- */

static enum MHD_Result api_bad_body(struct MHD_Connection *conn, http_request *req,
                                    const char *field, const char *detail)
{
    return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field, "%s",
                            detail);
}

/* Strictly parse the body as one JSON object. On failure the answer is
 * queued and *result holds MHD's verdict. */
static json_object *api_parse_body(struct MHD_Connection *conn, http_request *req,
                                   enum MHD_Result *result)
{
    if (!req->body || req->body_len == 0) {
        *result = api_bad_body(conn, req, NULL, "request body: expected a JSON object");
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(API_BODY_DEPTH);
    if (!tok) {
        *result = MHD_NO;
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *body = json_tokener_parse_ex(tok, req->body, (int)req->body_len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (body && end < req->body_len && strchr(" \t\r\n", req->body[end]))
        end++;
    /* What json-c lets through but JSON (single quotes) or this server (NUL
     * in a name, which json-c cuts short) does not. */
    long nul = body ? jsonspan_nul_key(req->body, req->body_len) : -1;
    long quote = body && nul < 0 ? jsonspan_single_quote(req->body, req->body_len) : -1;
    if (nul >= 0 || quote >= 0) {
        json_object_put(body);
        *result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), NULL,
                                   "request body: %s at byte %ld",
                                   nul >= 0 ? "a member name with a NUL character (\\u0000)"
                                            : "malformed JSON: a single-quoted string",
                                   nul >= 0 ? nul : quote);
        return NULL;
    }
    if (!body || end != req->body_len) {
        json_object_put(body);
        if (jerr == json_tokener_error_depth)
            *result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL),
                                       "config", "config: nested deeper than %d levels",
                                       API_BODY_DEPTH - 1);
        else
            *result =
                http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), NULL,
                                 "request body: malformed JSON: %s at byte %zu",
                                 jerr == json_tokener_success    ? "trailing characters"
                                 : jerr == json_tokener_continue ? "unexpected end"
                                                                 : json_tokener_error_desc(jerr),
                                 end);
        return NULL;
    }
    if (!json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        *result = api_bad_body(conn, req, NULL, "request body: expected a JSON object");
        return NULL;
    }
    return body;
}

/* Submit the checked job, or report it as it is when it exists already:
 * the library re-runs a finished job on resubmission, and posting the same
 * config twice must not. A failed or expired job is submitted again, which
 * is how it is retried. */
static enum MHD_Result api_submit_job(server *srv, struct MHD_Connection *conn, http_request *req,
                                      const char *queue_id, acp_submission *sub)
{
    const acp_job_id *id = sub->id;
    enum MHD_Result result;
    acp_job job;
    memset(&job, 0, sizeof job);
    int rc = acp_get_job(srv->platform, id, &job);
    if (rc == 0 && job.owned &&
        (job.status == ACP_STATUS_QUEUED || job.status == ACP_STATUS_IN_PROGRESS ||
         job.status == ACP_STATUS_COMPLETE)) {
        result = http_reply_json(conn, req, MHD_HTTP_OK, api_job_json(&job));
    } else if (rc != 0 && rc != ACP_ENOTFOUND) {
        result = http_reply_acp(conn, req, rc, NULL);
    } else {
        acp_job_clear(&job);
        rc = acp_submit(srv->platform, queue_id, sub, &job);
        if (rc != 0) {
            const char *field = rc == ACP_ENOQUEUE  ? "queue"
                                : rc == ACP_ETOOBIG ? "config"
                                : rc == ACP_EINVAL  ? jobctl_field_of(acp_last_error())
                                                    : NULL;
            if (rc == ACP_EINVAL && !field)
                field = "config";
            result = http_reply_acp(conn, req, rc, field);
        } else {
            char location[64], hex[ACP_JOB_ID_STRLEN];
            snprintf(location, sizeof location, "/jobs/%s", acp_job_id_format(id, hex));
            struct MHD_Response *response = http_json_response(api_job_json(&job));
            if (response)
                MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, location);
            result = http_reply(conn, req, MHD_HTTP_ACCEPTED, response);
        }
    }
    acp_job_clear(&job);
    return result;
}

/* A string that means what C sees: no NUL inside to cut it short. */
static int api_name_ok(json_object *value)
{
    return json_object_is_type(value, json_type_string) &&
           strlen(json_object_get_string(value)) == (size_t)json_object_get_string_len(value);
}

static enum MHD_Result api_submit(server *srv, struct MHD_Connection *conn, http_request *req)
{
    enum MHD_Result result = MHD_NO;
    json_object *body = api_parse_body(conn, req, &result);
    if (!body)
        return result;
    json_object *queue = NULL, *config = NULL, *id_text = NULL;
    json_object_object_foreach(body, key, value)
    {
        if (strcmp(key, "queue") == 0)
            queue = value;
        else if (strcmp(key, "config") == 0)
            config = value;
        else if (strcmp(key, "id") == 0)
            id_text = value;
        else if (!jobctl_is_member(key)) {
            result =
                http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), key,
                                 "unknown member '%s' (expected queue, config, id, priority, "
                                 "max_attempts, timeout_seconds, not_before, delay_seconds)",
                                 key);
            goto out;
        }
    }

    char detail[1100];
    const char *field = NULL;
    if (!queue || !api_name_ok(queue)) {
        result = api_bad_body(conn, req, "queue", "queue: expected the id of a queue (a string)");
        goto out;
    }
    const char *queue_id = json_object_get_string(queue);
    if (!settings_has_queue(srv->cfg, queue_id)) {
        result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_ENOQUEUE),
                                  "queue", "queue '%s' is not configured on this server", queue_id);
        goto out;
    }
    if (!config) {
        result = api_bad_body(conn, req, "config", "config: expected a JSON object");
        goto out;
    }
    if (executors_validate(srv->cfg, config, &field, detail, sizeof detail) != 0) {
        result = api_bad_body(conn, req, field, detail);
        goto out;
    }

    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); /* not_before is a time of day, not a deadline */
    if (jobctl_parse(body, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, &sub, &field, detail,
                     sizeof detail) != 0) {
        result = api_bad_body(conn, req, field, detail);
        goto out;
    }

    acp_job_id id;
    int rc;
    if (id_text) {
        if (!api_name_ok(id_text)) {
            result = api_bad_body(conn, req, "id", "id: expected 32 hexadecimal characters");
            goto out;
        }
        if ((rc = acp_job_id_parse(&id, json_object_get_string(id_text))) != 0) {
            result = http_reply_acp(conn, req, rc, "id");
            goto out;
        }
    }
    size_t start = 0, end = 0;
    jsonspan_member(req->body, req->body_len, "config", &start, &end);
    char *config_text = strndup(req->body + start, end - start);
    if (!config_text)
        goto out;
    /* Always: it is also the library's own check of the config text. */
    acp_job_id derived;
    if ((rc = acp_job_id_from_config(&derived, config_text)) != 0) {
        result = http_reply_acp(conn, req, rc, "config");
        free(config_text);
        goto out;
    }
    /* Ids are not the client's to choose: whoever could predict another
     * client's config could take its id first with a config of their own
     * and hand the victim their results. */
    if (id_text && !acp_job_id_equal(&id, &derived)) {
        char hex[ACP_JOB_ID_STRLEN];
        result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), "id",
                                  "id: a job's id is the MD5 of its config (%s for this one); "
                                  "it may be given to check it, not to choose another",
                                  acp_job_id_format(&derived, hex));
        free(config_text);
        goto out;
    }
    id = derived;

    sub.id = &id;
    sub.config = config_text;
    result = api_submit_job(srv, conn, req, queue_id, &sub);
    free(config_text);
out:
    json_object_put(body);
    return result;
}

/* ---- GET /jobs ---------------------------------------------------------- */

typedef struct api_list_args {
    const char *bad; /* the first unknown parameter */
} api_list_args;

static enum MHD_Result api_check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    (void)value;
    api_list_args *args = cls;
    if (!args->bad && strcmp(key, "status") != 0 && strcmp(key, "queue") != 0 &&
        strcmp(key, "limit") != 0 && strcmp(key, "cursor") != 0)
        args->bad = key;
    return MHD_YES;
}

/* "complete,failed" into a bit set of (1u << status). */
static int api_parse_statuses(const char *text, unsigned *out, char *bad, size_t badlen)
{
    *out = 0;
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_CANCELLED && !found; s++) {
            const char *name = acp_job_status_name((acp_job_status)s);
            if (strlen(name) == n && strncmp(p, name, n) == 0) {
                *out |= 1u << s;
                found = 1;
            }
        }
        if (!found) {
            snprintf(bad, badlen, "%.*s", (int)(n > 64 ? 64 : n), p);
            return -1;
        }
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

static enum MHD_Result api_list(server *srv, struct MHD_Connection *conn, http_request *req)
{
    api_list_args args = {NULL};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, api_check_arg, &args);
    if (args.bad)
        return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), args.bad,
                                "unknown query parameter '%s' (expected status, queue, limit, "
                                "cursor)",
                                args.bad);
    acp_job_filter filter;
    acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
    filter.limit = API_DEFAULT_PAGE;
    const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
    const char *limit = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    char bad[80];
    if (status && api_parse_statuses(status, &filter.statuses, bad, sizeof bad) != 0)
        return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), "status",
                                "status: '%s' is not one of queued, in-progress, complete, "
                                "failed, expired, cancelled",
                                bad);
    if (limit) {
        char *end;
        errno = 0;
        long n = strtol(limit, &end, 10);
        if (errno || *end || end == limit || n < 1 || n > ACP_LIST_LIMIT_MAX)
            return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL),
                                    "limit", "limit: '%s' is not an integer in 1..%d", limit,
                                    ACP_LIST_LIMIT_MAX);
        filter.limit = (size_t)n;
    }
    filter.queue = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "queue");
    filter.cursor = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "cursor");
    if (filter.cursor && !*filter.cursor)
        filter.cursor = NULL;

    acp_job_list list;
    memset(&list, 0, sizeof list);
    int rc = acp_list_jobs(srv->platform, &filter, &list);
    if (rc != 0) {
        const char *detail = acp_last_error();
        const char *field =
            !strstr(detail, "cursor") ? strstr(detail, "queue") ? "queue" : NULL : "cursor";
        return http_reply_acp(conn, req, rc, field);
    }
    json_object *jobs = json_object_new_array_ext((int)list.count);
    for (size_t i = 0; i < list.count; i++)
        json_object_array_add(jobs, api_job_json(&list.jobs[i]));
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "jobs", jobs);
    json_object_object_add(doc, "next_cursor",
                           list.next_cursor ? json_object_new_string(list.next_cursor) : NULL);
    acp_job_list_clear(&list);
    return http_reply_json(conn, req, MHD_HTTP_OK, doc);
}

/* ---- /jobs/{id}... ------------------------------------------------------ */

static enum MHD_Result api_get(server *srv, struct MHD_Connection *conn, http_request *req,
                               const acp_job_id *id)
{
    acp_job job;
    memset(&job, 0, sizeof job);
    int rc = acp_get_job(srv->platform, id, &job);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    json_object *doc = api_job_json(&job);
    acp_job_clear(&job);
    return http_reply_json(conn, req, MHD_HTTP_OK, doc);
}

static enum MHD_Result api_delete(server *srv, struct MHD_Connection *conn, http_request *req,
                                  const acp_job_id *id)
{
    int rc = acp_delete_job(srv->platform, id);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    struct MHD_Response *response =
        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    return http_reply(conn, req, MHD_HTTP_NO_CONTENT, response);
}

static enum MHD_Result api_expire(server *srv, struct MHD_Connection *conn, http_request *req,
                                  const acp_job_id *id)
{
    int rc = acp_expire_job(srv->platform, id);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    return http_reply_json(conn, req, MHD_HTTP_OK, api_job_brief(id, ACP_STATUS_EXPIRED));
}

/* Ask the library to cancel the job: a queued one is cancelled at once, a
 * running one is asked to stop (it shows cancel_requested until its
 * executor returns). The answer is the job as it is after the call. */
static enum MHD_Result api_cancel(server *srv, struct MHD_Connection *conn, http_request *req,
                                  const acp_job_id *id)
{
    int rc = acp_cancel_job(srv->platform, id);
    if (rc == ACP_ECONFLICT) {
        /* The library's detail says which status; the member says it to a
         * program. Copied first: acp_get_job may set another error. */
        char detail[512];
        snprintf(detail, sizeof detail, "%s", acp_last_error());
        acp_job job;
        memset(&job, 0, sizeof job);
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "error", json_object_new_string(acp_strerror(rc)));
        json_object_object_add(doc, "detail", json_object_new_string(detail));
        if (acp_get_job(srv->platform, id, &job) == 0)
            json_object_object_add(doc, "status",
                                   json_object_new_string(acp_job_status_name(job.status)));
        acp_job_clear(&job);
        return http_reply_json(conn, req, MHD_HTTP_CONFLICT, doc);
    }
    if (rc != 0)
        return http_reply_acp(conn, req, rc, NULL);
    return api_get(srv, conn, req, id);
}

/* ---- routing ------------------------------------------------------------ */

typedef enum api_route {
    API_NONE,
    API_HEALTH,
    API_JOBS,
    API_JOB,
    API_FILES,
    API_FILE,
    API_EXPIRE,
    API_CANCEL,
    API_LOG,
    API_METRICS,
} api_route;

/* Split "/a/b/c" into at most API_SEGMENTS non-empty segments of @copy.
 * Returns the count, or -1 for an empty segment ("//", a trailing "/") or
 * too many. */
static int api_split(char *copy, char *segments[API_SEGMENTS])
{
    if (copy[0] != '/')
        return -1;
    int n = 0;
    char *p = copy + 1;
    if (!*p)
        return 0;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (!*p || n == API_SEGMENTS)
            return -1;
        segments[n++] = p;
        if (!slash)
            return n;
        p = slash + 1;
    }
}

static api_route api_match(char *segments[], int n)
{
    if (n == 1 && strcmp(segments[0], "health") == 0)
        return API_HEALTH;
    if (n == 1 && strcmp(segments[0], "metrics") == 0)
        return API_METRICS;
    if (n < 1 || strcmp(segments[0], "jobs") != 0)
        return API_NONE;
    if (n == 1)
        return API_JOBS;
    if (n == 2)
        return API_JOB;
    if (n == 3 && strcmp(segments[2], "files") == 0)
        return API_FILES;
    if (n == 3 && strcmp(segments[2], "expire") == 0)
        return API_EXPIRE;
    if (n == 3 && strcmp(segments[2], "cancel") == 0)
        return API_CANCEL;
    if (n == 3 && strcmp(segments[2], "log") == 0)
        return API_LOG;
    if (n == 4 && strcmp(segments[2], "files") == 0)
        return API_FILE;
    return API_NONE;
}

static const char *api_allowed(api_route route)
{
    switch (route) {
    case API_JOBS:
        return "GET, HEAD, POST";
    case API_JOB:
        return "GET, HEAD, DELETE";
    case API_EXPIRE:
    case API_CANCEL:
        return "POST";
    default:
        return "GET, HEAD";
    }
}

static int api_method_ok(api_route route, const char *method)
{
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    switch (route) {
    case API_JOBS:
        return get || strcmp(method, "POST") == 0;
    case API_JOB:
        return get || strcmp(method, "DELETE") == 0;
    case API_EXPIRE:
    case API_CANCEL:
        return strcmp(method, "POST") == 0;
    default:
        return get;
    }
}

static enum MHD_Result api_dispatch(server *srv, struct MHD_Connection *conn, http_request *req,
                                    const char *method, const char *path, char *segments[], int n)
{
    api_route route = api_match(segments, n);
    if (route == API_NONE)
        return http_reply_error(conn, req, MHD_HTTP_NOT_FOUND, "not found", NULL,
                                "no such resource: %s", path);
    if (!api_method_ok(route, method)) {
        const char *allowed = api_allowed(route);
        json_object *doc = json_object_new_object();
        char detail[256];
        snprintf(detail, sizeof detail, "%s is not allowed on %s (allowed: %s)", method, path,
                 allowed);
        json_object_object_add(doc, "error", json_object_new_string("method not allowed"));
        json_object_object_add(doc, "detail", json_object_new_string(detail));
        struct MHD_Response *response = http_json_response(doc);
        if (response)
            MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, allowed);
        return http_reply(conn, req, MHD_HTTP_METHOD_NOT_ALLOWED, response);
    }
    if (route == API_HEALTH)
        return health_handle(srv, conn, req);
    if (route == API_METRICS)
        return metricsroute_handle(srv, conn, req);
    if (route == API_JOBS)
        return strcmp(method, "POST") == 0 ? api_submit(srv, conn, req) : api_list(srv, conn, req);

    acp_job_id id;
    int rc = acp_job_id_parse(&id, segments[1]);
    if (rc != 0)
        return http_reply_acp(conn, req, rc, "id");
    switch (route) {
    case API_JOB:
        return strcmp(method, "DELETE") == 0 ? api_delete(srv, conn, req, &id)
                                             : api_get(srv, conn, req, &id);
    case API_FILES:
        return files_list(srv, conn, req, &id);
    case API_FILE:
        return files_download(srv, conn, req, &id, segments[3], strcmp(method, "HEAD") == 0);
    case API_EXPIRE:
        return api_expire(srv, conn, req, &id);
    case API_CANCEL:
        return api_cancel(srv, conn, req, &id);
    case API_LOG:
        return logs_handle(srv, conn, req, &id, strcmp(method, "HEAD") == 0);
    default:
        return MHD_NO;
    }
}

httpmetrics_route api_route_of(const char *path)
{
    static const httpmetrics_route labels[] = {
        [API_NONE] = HTTPMETRICS_OTHER,    [API_HEALTH] = HTTPMETRICS_HEALTH,
        [API_JOBS] = HTTPMETRICS_JOBS,     [API_JOB] = HTTPMETRICS_JOB,
        [API_FILES] = HTTPMETRICS_FILES,   [API_FILE] = HTTPMETRICS_FILE,
        [API_EXPIRE] = HTTPMETRICS_EXPIRE, [API_CANCEL] = HTTPMETRICS_CANCEL,
        [API_LOG] = HTTPMETRICS_LOG,       [API_METRICS] = HTTPMETRICS_METRICS,
    };
    if (ui_owns(path))
        return HTTPMETRICS_UI;
    char *copy = strdup(path);
    if (!copy)
        return HTTPMETRICS_OTHER;
    char *segments[API_SEGMENTS];
    int n = api_split(copy, segments);
    api_route route = n < 0 ? API_NONE : api_match(segments, n);
    free(copy);
    return labels[route];
}

enum MHD_Result api_handle(server *srv, struct MHD_Connection *conn, http_request *req,
                           const char *method, const char *path)
{
    if (ui_owns(path))
        return ui_handle(conn, req, method, path);
    char *copy = strdup(path);
    if (!copy)
        return MHD_NO;
    char *segments[API_SEGMENTS];
    int n = api_split(copy, segments);
    enum MHD_Result result = n < 0 ? http_reply_error(conn, req, MHD_HTTP_NOT_FOUND, "not found",
                                                      NULL, "no such resource: %s", path)
                                   : api_dispatch(srv, conn, req, method, path, segments, n);
    free(copy);
    return result;
}
