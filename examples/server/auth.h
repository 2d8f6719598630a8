/* Access control (docs/http-api.adoc, "Access control"): the bearer tokens
 * of the settings' "auth" key, kept as SHA-256 digests only, the lookup of a
 * presented token in constant time, and what a role may do. No HTTP here:
 * http.c asks auth_decide() and answers. */
#ifndef SERVER_AUTH_H
#define SERVER_AUTH_H

#include <stddef.h>

#include <json-c/json.h>

#include "sha256.h"

#define AUTH_TOKEN_MIN      16
#define AUTH_TOKEN_MAX      256
#define AUTH_NAME_MAX       64
#define AUTH_FILE_LIMIT_MIB 1

typedef enum auth_role {
    AUTH_ROLE_READ = 1,  /* GET and HEAD */
    AUTH_ROLE_WRITE = 2, /* every method */
} auth_role;

typedef struct auth_token {
    char *name; /* printable ASCII, for the log */
    auth_role role;
    unsigned char digest[SHA256_DIGEST_LEN];
} auth_token;

typedef struct auth_table {
    auth_token *tokens;
    size_t count;
} auth_table;

/* Add the tokens of the settings' "auth" object @section (inline "tokens"
 * and those of "tokens_file") to @t. Errors name the key
 * ("auth.tokens[1].role: expected ..."). Plain tokens are hashed and the
 * JSON strings that held them overwritten. */
int auth_load(auth_table *t, json_object *section, char *err, size_t errlen);

/* Release @t (the digests are wiped). */
void auth_free(auth_table *t);

/* The entry whose digest is the SHA-256 of @token (@len bytes), or NULL.
 * Every entry is compared in full whatever matches, so the time taken does
 * not tell which entry or how much of a digest matched. */
const auth_token *auth_find(const auth_table *t, const char *token, size_t len);

/* 1 when @role may use @method. */
int auth_role_allows(auth_role role, const char *method);

/* "read" or "write". */
const char *auth_role_name(auth_role role);

/* 1 for a request that needs no token: GET or HEAD of /health, of the
 * dashboard's "/" and of anything under "/ui/". */
int auth_is_open(const char *method, const char *path);

typedef enum auth_verdict {
    AUTH_ALLOWED,   /* a valid token whose role allows the method */
    AUTH_OPEN,      /* no token needed (auth_is_open) and none valid given */
    AUTH_MISSING,   /* no Authorization header: 401 */
    AUTH_MALFORMED, /* not "Bearer <token>": 401 */
    AUTH_UNKNOWN,   /* a token no entry has: 401, error="invalid_token" */
    AUTH_FORBIDDEN, /* a valid token whose role does not allow the method: 403 */
} auth_verdict;

/* What to do with a request of @method on @path carrying the Authorization
 * header @authorization (NULL when absent), on a server with the tokens of
 * @t (at least one). *who receives the matching entry, or NULL. */
auth_verdict auth_decide(const auth_table *t, const char *method, const char *path,
                         const char *authorization, const auth_token **who);

/* 1 when @address is an IP literal of the loopback (127.0.0.0/8, ::1 and
 * ::ffff:127.0.0.0/104), 0 for another IP, -1 when it is no IP literal. */
int auth_is_loopback(const char *address);

/* 0 when the server may listen on @address: always with tokens, only on a
 * loopback address without. Otherwise -1 with a message naming
 * listen.address and the auth key in @err. */
int auth_check_exposure(const auth_table *t, const char *address, char *err, size_t errlen);

#endif
