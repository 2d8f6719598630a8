#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "files.h"
#include "health.h"
#include "jobdoc.h"
#include "logs.h"
#include "metricsroute.h"
#include "queues.h"
#include "submit.h"
#include "ui.h"

#define API_SEGMENTS     5
#define API_DEFAULT_PAGE 50

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
        json_object_array_add(jobs, jobdoc_json(&list.jobs[i]));
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
    json_object *doc = jobdoc_json(&job);
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
    return http_reply_json(conn, req, MHD_HTTP_OK, jobdoc_brief(id, ACP_STATUS_EXPIRED));
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
    API_QUEUES,
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
    if (n == 1 && strcmp(segments[0], "queues") == 0)
        return API_QUEUES;
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
    if (route == API_QUEUES)
        return queues_handle(srv, conn, req);
    if (route == API_JOBS)
        return strcmp(method, "POST") == 0 ? submit_handle(srv, conn, req)
                                           : api_list(srv, conn, req);

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
        [API_QUEUES] = HTTPMETRICS_QUEUES,
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
