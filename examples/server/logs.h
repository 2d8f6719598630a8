/* GET /jobs/{id}/log: a job's log (acp_read_log), from any server process
 * sharing the database.
 *
 *   ?offset=N  start at byte N of the log as written (default 0)
 *   ?follow=1  keep the answer open and send text as it is written, until
 *              the job ends: chunked text/plain, or Server-Sent Events when
 *              the client accepts text/event-stream (each event's id is the
 *              offset after it, so that Last-Event-ID resumes; an "end"
 *              event closes the stream)
 *
 * Without follow the answer is what is there now (at most ACP_LOG_READ_MAX
 * bytes) with X-Log-Next (where to go on) and X-Log-Ended. A follower holds
 * its connection's thread (libmicrohttpd runs a thread per connection), so
 * followers count against listen.max_connections like any connection; it
 * waits in acp_read_log(), woken by the library's NOTIFY, and checks every
 * second whether its client is still there and whether the server stops. */
#ifndef SERVER_LOGS_H
#define SERVER_LOGS_H

#include "http.h"

/* @head_only: a HEAD request (the headers of the GET). */
enum MHD_Result logs_handle(server *srv, struct MHD_Connection *conn, http_request *req,
                            const acp_job_id *id, int head_only);

/* Parse a query value or header as an offset (decimal, no sign, fits 64
 * bits). Returns 0, or -1 for anything else. */
int logs_parse_offset(const char *text, uint64_t *out);

/* Parse ?follow: "1"/"true" gives 1, "0"/"false" 0; -1 for anything else. */
int logs_parse_follow(const char *text);

/* Append @len bytes of log text to @out as the lines of one Server-Sent
 * Event ("data: LINE\n" per line; CR, LF and CRLF all end a line, as they
 * do for an EventSource) followed by "id: @next\n\n". Returns 0 or -1 when
 * out of memory (@out as it was). */
typedef struct logs_buf {
    char *data;
    size_t len, cap;
} logs_buf;
int logs_sse_event(logs_buf *out, const char *text, size_t len, uint64_t next);

#endif
