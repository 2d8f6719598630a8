/* A job's files: the listing, and downloads streamed from S3 with the right
 * Content-Length and without holding a file in memory. */
#ifndef SERVER_FILES_H
#define SERVER_FILES_H

#include "http.h"

enum MHD_Result files_list(server *srv, struct MHD_Connection *conn, http_request *req,
                           const acp_job_id *id);

/* @head_only: answer the headers of a GET (HEAD request) without reading
 * the file. */
enum MHD_Result files_download(server *srv, struct MHD_Connection *conn, http_request *req,
                               const acp_job_id *id, const char *name, int head_only);

#endif
