/* POST /jobs (docs/http-api.adoc): the submission as JSON, or as
 * multipart/form-data with input files (upload.h), checked member by member
 * and handed to acp_submit; an existing job with the same config answers
 * 200 as it is. */
#ifndef SERVER_SUBMIT_H
#define SERVER_SUBMIT_H

#include "http.h"

enum MHD_Result submit_handle(server *srv, struct MHD_Connection *conn, http_request *req);

#endif
