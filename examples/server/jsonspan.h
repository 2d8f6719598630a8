/* The exact text of a member of a JSON object, so that a job config reaches
 * the library byte for byte as the client sent it: the job id derives from
 * that text, and re-serialising it could change numbers or member order. */
#ifndef SERVER_JSONSPAN_H
#define SERVER_JSONSPAN_H

#include <stddef.h>

/* @text (@len bytes) must be one JSON object already validated by a strict
 * parser. Finds the top-level member @key (its last occurrence, as json-c
 * keeps the last of duplicate keys) and sets [*start, *end) to its value's
 * text. Returns 0, or -1 when there is no such member. */
int jsonspan_member(const char *text, size_t len, const char *key, size_t *start, size_t *end);

/* json-c accepts single-quoted strings even in strict mode; JSON does not.
 * Returns the offset of the first quote character ' outside a
 * double-quoted string of @text, or -1 when there is none. */
long jsonspan_single_quote(const char *text, size_t len);

/* json-c keeps object keys as C strings, so "config\u0000" would be read as
 * "config" while this file's finder sees another key. Returns the offset of
 * the first key of @text that contains an escaped NUL (\u0000), or -1 when
 * none does. */
long jsonspan_nul_key(const char *text, size_t len);

#endif
