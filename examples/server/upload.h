/* Input files for POST /jobs: a multipart/form-data body with one "job"
 * part (the JSON submission, kept in memory) and "input" parts, each
 * streamed by libmicrohttpd's post processor into a temporary file under
 * <workspace_root>/uploads, never held whole in memory. The files live as
 * long as their request: upload_free() (the request-completed callback)
 * removes them whatever became of it. */
#ifndef SERVER_UPLOAD_H
#define SERVER_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include <async_platform.h>
#include <microhttpd.h>

#include "settings.h"
#include "sha256.h"

/* The most input parts one request may carry. */
#define UPLOAD_MAX_INPUTS 100

typedef struct upload upload;

/* What a POST /jobs body is, by its Content-Type. */
typedef enum upload_kind {
    UPLOAD_JSON,      /* the JSON submission (also without a Content-Type) */
    UPLOAD_MULTIPART, /* multipart/form-data */
    UPLOAD_REFUSED,   /* neither: 415 */
} upload_kind;

upload_kind upload_kind_of(const char *content_type);

/* Make <workspace_root>/uploads (mode 0700) and remove the files that
 * servers no longer running left there. Call once, after acp_init() (which
 * makes the root), before serving. Returns 0, or -1 with the reason in
 * @err. */
int upload_setup(const settings *cfg, char *err, size_t errlen);

/* Release what upload_setup() holds. */
void upload_teardown(void);

/* The largest multipart body: the job part, the inputs and their framing. */
uint64_t upload_body_limit(const settings *cfg);

/* Start reading the multipart body of @conn. NULL when out of memory; a
 * body libmicrohttpd cannot parse (no boundary) is an upload that failed. */
upload *upload_begin(struct MHD_Connection *conn, const settings *cfg);

/* The next piece of the body. Returns 0, or -1 to drop the connection (a
 * client that goes on sending far beyond the limits). */
int upload_feed(upload *u, const char *data, size_t len);

/* The body is all in: check that it was whole and had its job part. */
void upload_end(upload *u);

/* 1 when the upload failed, with the answer to give: @status (400, 413 or
 * 500), @field and @detail (valid until upload_free). */
int upload_failed(const upload *u, unsigned *status, const char **field, const char **detail);

/* The job part, NUL-terminated, handed over to the caller (free() it);
 * *@len its length. After a successful upload_end(). */
char *upload_take_job(upload *u, size_t *len);

/* The inputs as acp_submit() takes them (by path), *@count of them, and
 * the SHA-256 of each (for comparing with a job's stored inputs). */
const acp_input *upload_inputs(const upload *u, size_t *count);
const unsigned char *upload_digest(const upload *u, size_t i);

/* Whether the job @id already has each of these inputs (name, size and
 * bytes: its stored files are read to compare them): 1 yes, 0 no (@why
 * says which differs), or the library's error code (negative). */
int upload_matches_job(const upload *u, acp_platform *platform, const acp_job_id *id, char *why,
                       size_t whylen);

/* Close and remove the temporary files now (the disk space goes at once);
 * the inputs are not to be read after it. NULL is fine. */
void upload_remove_files(upload *u);

/* Close and remove the temporary files and free @u. NULL is fine. */
void upload_free(upload *u);

#endif
