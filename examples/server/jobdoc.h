/* The JSON documents of a job that the API answers (docs/http-api.adoc,
 * GET /jobs/{id}): the whole state, and the brief {"id", "status"} of an
 * action's answer. */
#ifndef SERVER_JOBDOC_H
#define SERVER_JOBDOC_H

#include <async_platform.h>
#include <json-c/json.h>

/* A new object (the caller owns it) for @job. */
json_object *jobdoc_json(const acp_job *job);

/* A new object {"id", "status"}. */
json_object *jobdoc_brief(const acp_job_id *id, acp_job_status status);

#endif
