/* GET /queues: this service's jobs counted by queue and status, with the
 * failures of the last hour (acp_count_jobs), for the dashboard's counts and
 * queue overview. The count reads an index of every job, so its answer is
 * reused for QUEUES_CACHE_SECONDS; requests that arrive while a count runs
 * wait for it. */
#ifndef SERVER_QUEUES_H
#define SERVER_QUEUES_H

#include "http.h"

#define QUEUES_CACHE_SECONDS 2.0

enum MHD_Result queues_handle(server *srv, struct MHD_Connection *conn, http_request *req);

/* Free the cached answer (at exit, after the HTTP daemon has stopped). */
void queues_release(void);

#endif
