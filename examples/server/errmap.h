/* How the server answers a library error: the HTTP status of each ACP_E*
 * code. Kept apart from the HTTP plumbing so that a unit test can check
 * every code, including those (503) that are hard to provoke at run time. */
#ifndef SERVER_ERRMAP_H
#define SERVER_ERRMAP_H

/* 400 for bad input, 404 unknown job, 409 conflicts (ACP_ECONFLICT,
 * ACP_EUNOWNED, ACP_EBUSY), 413 too large, 503 a backing service is down or
 * the platform is stopping, 500 anything else (including ACP_OK, which is
 * not an error and must not be mapped). */
unsigned errmap_http_status(int acp_code);

#endif
