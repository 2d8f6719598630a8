/* An S3 endpoint that misbehaves on purpose, for tests of the S3 clients:
 * an HTTP/1.1 server on 127.0.0.1 (a port the system chooses) run by a
 * thread of the test program, in one of three modes:
 *
 * - S3_FAULT_PROXY: each request (request line, headers and a
 *   Content-Length body) goes unchanged to the upstream endpoint (the
 *   stack's radosgw), so that signatures stay valid, and the response comes
 *   back unchanged; one upstream connection per client connection, kept
 *   alive as long as both sides keep theirs. Rules (s3_fault_server_fail)
 *   answer matching requests with an S3 error instead of forwarding them.
 * - S3_FAULT_SILENT: connections are accepted and requests read, but never
 *   answered (and never closed from this side).
 * - S3_FAULT_CUT: forwarded like PROXY, but each response stops after the
 *   head and @cut_after bytes of its body; then nothing more is sent and the
 *   connection stays open (a transfer that stalls mid-body).
 *
 * Requests with a chunked body are not supported (S3 clients send
 * Content-Length). Clients must be able to give up on their own in SILENT
 * and CUT mode: libs3 2.0 has no request timeout and would wait until the
 * server is closed.
 *
 * Thread-safe; clean under valgrind and TSan. */
#ifndef ACP_TEST_S3_FAULT_SERVER_H
#define ACP_TEST_S3_FAULT_SERVER_H

#include <stddef.h>

typedef struct s3_fault_server s3_fault_server;

typedef enum s3_fault_mode {
    S3_FAULT_PROXY,
    S3_FAULT_SILENT,
    S3_FAULT_CUT,
} s3_fault_mode;

/* Listening on 127.0.0.1, in PROXY mode towards @upstream_host (a numeric
 * IPv4 address) : @upstream_port; NULL and 0 for a server that is only
 * used SILENT (a forwarded request then gets 502). NULL, with a message on
 * stderr, when it cannot start. */
s3_fault_server *s3_fault_server_open(const char *upstream_host, int upstream_port);

/* The port it listens on. */
int s3_fault_server_port(const s3_fault_server *server);

/* From the next request on (a connection that stalled stays stalled).
 * @cut_after: CUT mode's body bytes per response; ignored otherwise. */
void s3_fault_server_mode(s3_fault_server *server, s3_fault_mode mode, size_t cut_after);

/* The next @count requests (0 means 1) whose method contains @method and
 * whose target contains @target (either NULL: any) are answered with
 * @status and an S3 error document with @code (e.g. 503 "SlowDown", 500
 * "InternalError", 403 "AccessDenied") instead of being forwarded. The
 * target is as sent, query included: "partNumber=7&" picks part 7 of a
 * client that puts uploadId after it, where "partNumber=7" would also match
 * part 70. Rules are checked in the order added; the strings are copied.
 * Aborts the test program when more than 16 rules are pending. */
void s3_fault_server_fail(s3_fault_server *server, const char *method, const char *target,
                          unsigned count, int status, const char *code);

/* The same, answering with @document, a whole S3 error document (without
 * the XML declaration, at most 1000 bytes), e.g. AWS's answer to a request
 * signed for the wrong region. */
void s3_fault_server_fail_document(s3_fault_server *server, const char *method, const char *target,
                                   unsigned count, int status, const char *document);

/* What the server has seen so far. */
typedef struct s3_fault_counts {
    unsigned connections; /* accepted */
    unsigned requests;    /* request heads read, in every mode */
    unsigned forwarded;   /* sent to the upstream */
    unsigned injected;    /* answered by a rule */
} s3_fault_counts;

s3_fault_counts s3_fault_server_counts(s3_fault_server *server);

/* Stops the server: every connection is closed and every thread joined,
 * also those holding a request (SILENT) or a stalled response (CUT). NULL
 * is fine. */
void s3_fault_server_close(s3_fault_server *server);

#endif
