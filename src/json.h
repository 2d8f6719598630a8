/* Small helpers over json-c: strict parsing with clear errors, and the
 * compact serialisation that upstream (Jackson) produces. */
#ifndef ACP_JSON_H
#define ACP_JSON_H

#include <json-c/json.h>

#include "buf.h"

/* Deep enough for any sensible job config, shallow enough to keep the
 * recursive writer's stack use small. */
#define JSON_MAX_DEPTH 64

/* Parse exactly one JSON value from @text (@len bytes, which may contain no
 * NUL), nested at most JSON_MAX_DEPTH levels. On failure returns ACP_EINVAL
 * with a detail "<what>: <reason> at byte N". Besides RFC 8259's grammar it
 * refuses, so that whatever it accepts is written back unchanged, stored by
 * PostgreSQL and carried in a job message: numbers that are not finite
 * doubles (1e400), integers beyond 64 bits, "\u0000" in a member name, lone
 * surrogate escapes and UTF-8 that is not strict RFC 3629 (overlong forms,
 * encoded surrogates, beyond U+10FFFF). A JSON null yields 0 with *out ==
 * NULL. Release with json_object_put(). */
int json_parse(const char *text, size_t len, const char *what, json_object **out);

/* json_parse, allowing @max_depth levels (a job message wraps a config of
 * JSON_MAX_DEPTH levels in one more). */
int json_parse_depth(const char *text, size_t len, const char *what, int max_depth,
                     json_object **out);

/* Append @value as compact JSON, byte for byte as Jackson's
 * JsonNode.toString() writes it: no white space, members in document order,
 * '/' not escaped, control characters as \b \t \n \f \r or \u00XX (upper-case
 * hex), non-ASCII as raw UTF-8, and floating-point numbers as Java's
 * Double.toString() (1.0, 1.0E10, 1.0E-5). NULL writes "null". */
int json_write_compact(buf *out, json_object *value);

/* Parse the NUL-terminated JSON @text (at most ACP_JOB_CONFIG_MAX bytes,
 * else ACP_ETOOBIG) and append its compact form to @out. Errors are
 * prefixed with @what. */
int json_compact_text(const char *text, const char *what, buf *out);

#endif
