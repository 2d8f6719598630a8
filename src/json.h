/* Small helpers over json-c: strict parsing with clear errors, and the
 * compact serialisation that upstream (Jackson) produces. */
#ifndef ACP_JSON_H
#define ACP_JSON_H

#include <json-c/json.h>

#include "buf.h"

/* Parse exactly one JSON value from @text (@len bytes, which may contain no
 * NUL). On failure returns ACP_EINVAL with a detail "<what>: <reason> at
 * byte N". A JSON null yields 0 with *out == NULL. Release with
 * json_object_put(). */
int json_parse(const char *text, size_t len, const char *what, json_object **out);

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
