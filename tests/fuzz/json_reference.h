/* An independent check of JSON text, written from RFC 8259 and RFC 3629
 * alone, against which the fuzz targets judge what the library accepts. */
#ifndef ACP_FUZZ_JSON_REFERENCE_H
#define ACP_FUZZ_JSON_REFERENCE_H

#include <stddef.h>

typedef enum json_ref_verdict {
    /* Not JSON: a grammar error, or bytes that are not UTF-8. A parser
     * must reject it. */
    JSON_REF_INVALID,
    /* JSON, but where parsers may differ and a strict one may refuse it:
     * nested deeper than @max_depth, a number that does not fit a double
     * (or an integer outside int64), a \u0000 or an unpaired surrogate
     * escape. Either verdict of the parser is fine. */
    JSON_REF_EDGE,
    /* Plain JSON that every parser must accept. */
    JSON_REF_PLAIN,
} json_ref_verdict;

json_ref_verdict json_ref_check(const char *text, size_t len, int max_depth);

#endif
