/* S3: the job workspaces and their objects, in lib-compute-platform's
 * layout (docs/compatibility.adoc, S3 layout):
 *
 *   <root>/<32 hex id>/.workspace          marker, empty
 *   <root>/<32 hex id>/.queued ...         status flags, empty
 *   <root>/<32 hex id>/input-config        compact JSON
 *   <root>/<32 hex id>/<name>              inputs and outputs
 *
 * where <root> is config.s3.root_path normalised: "/", "" or NULL give no
 * prefix at all, a leading '/' is dropped, a trailing '/' is ensured.
 *
 * Requests go through an S3 transport (transport.h): libcurl (Signature
 * V4) or libs3 2.0 (V2) from objects_open(), any other from
 * objects_open_transport() (a fake one in unit tests). All functions are thread-safe (each request
 * is independent). They return 0 or a negative ACP_E* code with the detail set, naming the S3
 * endpoint, the key and the reason (the transport's status and the server's error code/message).
 * Transient failures (connection errors, timeouts, 500, 502, 503 SlowDown, 504) are retried
 * client.retries times with exponential back-off and full jitter before an error is returned, or
 * for longer within objects_patience_begin/end (objects_retry.h); 4xx never. */
#ifndef ACP_OBJECTS_H
#define ACP_OBJECTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "log.h"
#include "objects_retry.h"
#include "transport.h"

typedef struct objects objects;

/* Kinds of S3 requests, counted for acp_get_stats. */
enum { OBJECTS_PUT, OBJECTS_GET, OBJECTS_HEAD, OBJECTS_LIST, OBJECTS_DELETE, OBJECTS_KINDS };

/* Requests sent so far by kind (retries included). */
void objects_request_counts(const objects *obj, uint64_t counts[OBJECTS_KINDS]);
/* Count requests (by the kinds above), failures and latencies in @m too
 * from now on (acp_metrics_write's backend="s3"). */
struct metrics_backend;
void objects_set_metrics(objects *obj, struct metrics_backend *m);

/* Opens the transport @client asks for (curl with Signature V4, or libs3
 * with V2) on @s3, and checks that the bucket exists and the credentials
 * work (one signed request). Logs a warning when certificate verification
 * is off, or when requests go over plain HTTP to a host other than
 * loopback. ACP_ESTORAGE on failure, e.g. "S3 127.0.0.1:7480: bucket 'x'
 * does not exist" or "... access denied". */
int objects_open(objects **out, const acp_s3_config *s3, const acp_s3_client_config *client,
                 const logger *log);

/* The same on transport @t, which the handle owns from here on (closed by
 * objects_close(), or at once when this fails), with workspaces under
 * @root (normalised as config.s3.root_path), retries and multipart uploads
 * as @client says (NULL: the defaults). For tests and other transports. */
int objects_open_transport(objects **out, transport *t, const char *root,
                           const acp_s3_client_config *client, const logger *log);

void objects_close(objects *obj); /* NULL is fine */

/* Put @len bytes as <ws>/<name>, replacing any object of that name (in
 * parts when larger than client.multipart_threshold, as objects_put_fd). */
int objects_put(objects *obj, const acp_job_id *id, const char *name, const void *data, size_t len);

typedef struct objects_item {
    const char *name; /* relative to <ws>/ */
    const void *data;
    size_t len;
} objects_item;

/* Put small in-memory objects, several at once: the order in which they
 * appear is not defined. On failure some of them may exist. */
int objects_put_many(objects *obj, const acp_job_id *id, const objects_item *items, size_t count);

/* Put the regular file open on @fd (read from offset 0, streamed, never
 * whole in memory) as <ws>/<name>: in parts, several at once, when it is
 * larger than client.multipart_threshold and the transport can. ACP_EIO
 * when the file cannot be read or changes size meanwhile; ACP_ETOOBIG past
 * what S3 takes (5 TiB; 5 GiB without multipart). */
int objects_put_fd(objects *obj, const acp_job_id *id, const char *name, int fd);

/* Create the empty object <ws>/<name> if it does not exist (a HEAD, then a
 * PUT only when absent), so an existing flag keeps its timestamp. */
int objects_touch(objects *obj, const acp_job_id *id, const char *name);

/* HEAD <ws>/<name>: *exists, and when it exists its size and last-modified
 * time (microseconds since the epoch); @size and @mtime may be NULL. */
int objects_stat(objects *obj, const acp_job_id *id, const char *name, bool *exists, uint64_t *size,
                 int64_t *mtime);

typedef struct object_entry {
    char *name; /* key relative to <ws>/, e.g. "out.txt" or "dir/x" */
    uint64_t size;
    int64_t mtime; /* microseconds since the epoch */
} object_entry;

typedef struct object_list {
    object_entry *items;
    size_t count;
} object_list;

void object_list_free(object_list *list); /* NULL is fine */

/* Every object under <ws>/ (all pages, recursive), including the marker,
 * the flags and input-config, in key order. An empty list when the
 * workspace does not exist. */
int objects_list(objects *obj, const acp_job_id *id, object_list *out);

/* Stream <ws>/<name> to @sink in pieces as they arrive (never whole in
 * memory). A non-zero return from @sink stops the transfer and is returned.
 * ACP_ENOTFOUND when the object does not exist. */
typedef int (*objects_sink)(void *userdata, const void *data, size_t len);
int objects_read(objects *obj, const acp_job_id *id, const char *name, objects_sink sink,
                 void *userdata);

/* Delete <ws>/<name>; deleting an absent object is not an error. */
int objects_delete(objects *obj, const acp_job_id *id, const char *name);

/* Delete <ws>/<name> for each of the @count @names, a few requests in
 * flight at once; absent objects are no error. */
int objects_delete_many(objects *obj, const acp_job_id *id, const char *const *names, size_t count);

/* Objects of the root itself, outside every workspace ("<root><name>", e.g.
 * the native layout's ".acp-root"). objects_root_read reads one whole, at
 * most @max bytes (ACP_ETOOBIG beyond), into *@data (malloc'd, NUL added,
 * *@len bytes), or sets *@exists false (and *@data NULL) when it is absent.
 * objects_root_put writes one. */
int objects_root_read(objects *obj, const char *name, size_t max, char **data, size_t *len,
                      bool *exists);
int objects_root_put(objects *obj, const char *name, const void *data, size_t len);

/* Delete every object under <ws>/ (the whole workspace, marker included). */
int objects_wipe(objects *obj, const acp_job_id *id);

/* Delete every object under <ws>/ except those whose name (relative to the
 * workspace) @keep returns true for. */
int objects_wipe_except(objects *obj, const acp_job_id *id, bool (*keep)(const char *name));

/* The job ids of the workspaces directly under the root ("<root><32 hex>/"),
 * in key order, after @after when not NULL, at most @limit into @ids;
 * *@more tells whether the listing goes on. */
int objects_list_workspaces(objects *obj, const acp_job_id *after, size_t limit, acp_job_id *ids,
                            size_t *count, bool *more);

#endif
