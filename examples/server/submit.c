#include "submit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "executors.h"
#include "jobctl.h"
#include "jobdoc.h"
#include "jsonspan.h"
#include "upload.h"

/* The request body is {"queue", "config", "id", ...}: one level above the
 * library's own limit of 64 for a config. */
#define SUBMIT_BODY_DEPTH 65

static enum MHD_Result submit_bad_body(struct MHD_Connection *conn, http_request *req,
                                       const char *field, const char *detail)
{
    return http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field, "%s",
                            detail);
}

/* Strictly parse the body as one JSON object. On failure the answer is
 * queued and *result holds MHD's verdict. */
static json_object *submit_parse_body(struct MHD_Connection *conn, http_request *req,
                                      enum MHD_Result *result)
{
    /* A multipart submission's JSON is its "job" part. */
    const char *what = req->upload ? "'job' part" : "request body";
    const char *field = req->upload ? "job" : NULL;
    if (!req->body || req->body_len == 0) {
        *result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field,
                                   "%s: expected a JSON object", what);
        return NULL;
    }
    json_tokener *tok = json_tokener_new_ex(SUBMIT_BODY_DEPTH);
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
        *result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field,
                                   "%s: %s at byte %ld", what,
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
                                       SUBMIT_BODY_DEPTH - 1);
        else
            *result =
                http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field,
                                 "%s: malformed JSON: %s at byte %zu", what,
                                 jerr == json_tokener_success    ? "trailing characters"
                                 : jerr == json_tokener_continue ? "unexpected end"
                                                                 : json_tokener_error_desc(jerr),
                                 end);
        return NULL;
    }
    if (!json_object_is_type(body, json_type_object)) {
        json_object_put(body);
        *result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_EINVAL), field,
                                   "%s: expected a JSON object", what);
        return NULL;
    }
    return body;
}

/* A job that exists and will not run again: reported as it is, unless the
 * request brings input files it does not have (its id names its config
 * alone, so other inputs cannot make another job). */
static enum MHD_Result submit_existing_job(server *srv, struct MHD_Connection *conn,
                                           http_request *req, const acp_submission *sub,
                                           const acp_job *job)
{
    if (sub->input_count == 0)
        return http_reply_json(conn, req, MHD_HTTP_OK, jobdoc_json(job));
    char why[400], hex[ACP_JOB_ID_STRLEN];
    int same = upload_matches_job(req->upload, srv->platform, sub->id, why, sizeof why);
    if (same < 0)
        return http_reply_acp(conn, req, same, same == ACP_EINVAL ? "input" : NULL);
    if (same)
        return http_reply_json(conn, req, MHD_HTTP_OK, jobdoc_json(job));
    return http_reply_error(conn, req, MHD_HTTP_CONFLICT, acp_strerror(ACP_ECONFLICT), "input",
                            "job %s exists (%s) with other input files: %s. A job's id is the "
                            "MD5 of its config alone: change the config (a member of your own "
                            "will do) or delete the job first",
                            acp_job_id_format(sub->id, hex), acp_job_status_name(job->status), why);
}

/* Submit the checked job, or report it as it is when it exists already:
 * the library re-runs a finished job on resubmission, and posting the same
 * config twice must not. A failed or expired job is submitted again, which
 * is how it is retried. */
static enum MHD_Result submit_submit_job(server *srv, struct MHD_Connection *conn,
                                         http_request *req, const char *queue_id,
                                         acp_submission *sub)
{
    const acp_job_id *id = sub->id;
    enum MHD_Result result;
    acp_job job;
    memset(&job, 0, sizeof job);
    int rc = acp_get_job(srv->platform, id, &job);
    if (rc == 0 && job.owned &&
        (job.status == ACP_STATUS_QUEUED || job.status == ACP_STATUS_IN_PROGRESS ||
         job.status == ACP_STATUS_COMPLETE)) {
        result = submit_existing_job(srv, conn, req, sub, &job);
    } else if (rc != 0 && rc != ACP_ENOTFOUND) {
        result = http_reply_acp(conn, req, rc, NULL);
    } else {
        acp_job_clear(&job);
        rc = acp_submit(srv->platform, queue_id, sub, &job);
        if (rc != 0) {
            const char *detail = acp_last_error();
            const char *field = detail && strstr(detail, "submission.inputs") ? "input"
                                : rc == ACP_ENOQUEUE                          ? "queue"
                                : rc == ACP_ETOOBIG                           ? "config"
                                : rc == ACP_EINVAL ? jobctl_field_of(acp_last_error())
                                                   : NULL;
            if (rc == ACP_EINVAL && !field)
                field = "config";
            result = http_reply_acp(conn, req, rc, field);
        } else {
            char location[64], hex[ACP_JOB_ID_STRLEN];
            snprintf(location, sizeof location, "/jobs/%s", acp_job_id_format(id, hex));
            struct MHD_Response *response = http_json_response(jobdoc_json(&job));
            if (response)
                MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, location);
            result = http_reply(conn, req, MHD_HTTP_ACCEPTED, response);
        }
    }
    acp_job_clear(&job);
    return result;
}

/* A string that means what C sees: no NUL inside to cut it short. */
static int submit_name_ok(json_object *value)
{
    return json_object_is_type(value, json_type_string) &&
           strlen(json_object_get_string(value)) == (size_t)json_object_get_string_len(value);
}

enum MHD_Result submit_handle(server *srv, struct MHD_Connection *conn, http_request *req)
{
    enum MHD_Result result = MHD_NO;
    json_object *body = submit_parse_body(conn, req, &result);
    if (!body) {
        upload_remove_files(req->upload);
        return result;
    }
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
    if (!queue || !submit_name_ok(queue)) {
        result =
            submit_bad_body(conn, req, "queue", "queue: expected the id of a queue (a string)");
        goto out;
    }
    const char *queue_id = json_object_get_string(queue);
    if (!settings_has_queue(srv->cfg, queue_id)) {
        result = http_reply_error(conn, req, MHD_HTTP_BAD_REQUEST, acp_strerror(ACP_ENOQUEUE),
                                  "queue", "queue '%s' is not configured on this server", queue_id);
        goto out;
    }
    if (!config) {
        result = submit_bad_body(conn, req, "config", "config: expected a JSON object");
        goto out;
    }
    if (executors_validate(srv->cfg, config, &field, detail, sizeof detail) != 0) {
        result = submit_bad_body(conn, req, field, detail);
        goto out;
    }

    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); /* not_before is a time of day, not a deadline */
    if (jobctl_parse(body, (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, &sub, &field, detail,
                     sizeof detail) != 0) {
        result = submit_bad_body(conn, req, field, detail);
        goto out;
    }

    acp_job_id id;
    int rc;
    if (id_text) {
        if (!submit_name_ok(id_text)) {
            result = submit_bad_body(conn, req, "id", "id: expected 32 hexadecimal characters");
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
    if (req->upload)
        sub.inputs = upload_inputs(req->upload, &sub.input_count);
    result = submit_submit_job(srv, conn, req, queue_id, &sub);
    free(config_text);
out:
    /* Stored or refused: the input files go before the client hears back. */
    upload_remove_files(req->upload);
    json_object_put(body);
    return result;
}
