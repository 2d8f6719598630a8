#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define MAX_DEPTH JSON_MAX_DEPTH

/* json-c's strict mode still lets through single-quoted strings, NaN,
 * Infinity, "1." and raw control characters in strings, none of which JSON
 * (or upstream's Jackson) allows. This scan checks the grammar of RFC 8259
 * first; json-c then builds the tree.
 * It also refuses what json-c would silently change or what could not be
 * stored and sent on: json-c turns 1e400 into infinity (which no JSON can
 * carry), clamps integers beyond 64 bits, cuts member names at a NUL and
 * lets lone surrogates, overlong and surrogate UTF-8 through, which
 * PostgreSQL refuses. */
typedef struct scan {
    const char *s;
    size_t len, pos;
    int depth, max_depth;
    const char *reason;
    char detail[64]; /* a reason that quotes the input */
} scan;

static bool fail_at(scan *sc, const char *reason)
{
    sc->reason = sc->pos >= sc->len ? "unexpected end of input" : reason;
    return false;
}

static void skip_space(scan *sc)
{
    while (sc->pos < sc->len && strchr(" \t\r\n", sc->s[sc->pos]) && sc->s[sc->pos])
        sc->pos++;
}

static bool is_digit(scan *sc)
{
    return sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9';
}

static bool digits(scan *sc, const char *reason)
{
    if (!is_digit(sc))
        return fail_at(sc, reason);
    while (is_digit(sc))
        sc->pos++;
    return true;
}

/* The number of @len bytes at @start must fit the node json-c makes of it:
 * a 64-bit integer, or a finite double (an underflow to 0 is what Jackson
 * reads too). */
static bool scan_number_fits(scan *sc, size_t start, bool integer)
{
    size_t len = sc->pos - start;
    char local[64], *text = len < sizeof local ? local : malloc(len + 1);
    if (!text) {
        sc->pos = start;
        return fail_at(sc, "out of memory reading a number");
    }
    memcpy(text, sc->s + start, len);
    text[len] = '\0';
    errno = 0;
    bool fits = true;
    if (!integer)
        fits = isfinite(strtod(text, NULL));
    else if (text[0] == '-' ? strtoll(text, NULL, 10) != 0 : strtoull(text, NULL, 10) != 0)
        fits = errno != ERANGE; /* saturated: beyond the range */
    if (text != local)
        free(text);
    if (fits)
        return true;
    sc->pos = start;
    return fail_at(sc, integer ? "integer beyond 64 bits" : "number out of range");
}

static bool scan_number(scan *sc)
{
    size_t start = sc->pos;
    bool integer = true;
    if (sc->s[sc->pos] == '-')
        sc->pos++;
    if (sc->pos < sc->len && sc->s[sc->pos] == '0')
        sc->pos++;
    else if (!digits(sc, "a number needs digits"))
        return false;
    if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
        integer = false;
        sc->pos++;
        if (!digits(sc, "a number needs digits after '.'"))
            return false;
    }
    if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
        integer = false;
        sc->pos++;
        if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-'))
            sc->pos++;
        if (!digits(sc, "a number needs digits in its exponent"))
            return false;
    }
    return scan_number_fits(sc, start, integer);
}

/* The four hex digits of a \u escape at @at, or -1. */
static long scan_hex4(const scan *sc, size_t at)
{
    if (at > sc->len || sc->len - at < 4)
        return -1;
    long value = 0;
    for (size_t i = at; i < at + 4; i++) {
        char c = sc->s[i];
        int digit = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
        if (digit < 0)
            return -1;
        value = value << 4 | digit;
    }
    return value;
}

/* After the 'u' of the escape that starts at @escape: a lone surrogate has
 * no character to stand for, so json-c would have to invent one. */
static bool scan_unicode_escape(scan *sc, size_t escape, bool member_name, size_t opening)
{
    long cp = scan_hex4(sc, sc->pos);
    if (cp < 0) {
        for (size_t end = sc->pos + 4; sc->pos < sc->len && sc->pos < end; sc->pos++)
            if (!strchr("0123456789abcdefABCDEF", sc->s[sc->pos]) || !sc->s[sc->pos])
                break;
        return fail_at(sc, "invalid \\u escape in a string");
    }
    sc->pos += 4;
    if (cp == 0 && member_name) {
        sc->pos = opening;
        return fail_at(sc, "NUL (\\u0000) in a member name");
    }
    bool lone = cp >= 0xDC00 && cp <= 0xDFFF;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        long low = sc->len - sc->pos >= 6 && sc->s[sc->pos] == '\\' && sc->s[sc->pos + 1] == 'u'
                       ? scan_hex4(sc, sc->pos + 2)
                       : -1;
        lone = !(low >= 0xDC00 && low <= 0xDFFF);
        if (!lone)
            sc->pos += 6;
    }
    if (!lone)
        return true;
    snprintf(sc->detail, sizeof sc->detail, "lone surrogate %.6s", sc->s + escape);
    sc->pos = escape;
    return fail_at(sc, sc->detail);
}

/* One UTF-8 character starting with @lead (>= 0x80) at sc->pos, strictly
 * as RFC 3629 has it: PostgreSQL accepts nothing else. */
static bool scan_utf8(scan *sc, unsigned char lead)
{
    size_t start = sc->pos;
    int more = lead >= 0xC0 && lead <= 0xDF ? 1 : lead >= 0xE0 && lead <= 0xEF ? 2 : 3;
    if (lead < 0xC0 || lead > 0xF4) {
        snprintf(sc->detail, sizeof sc->detail, "invalid UTF-8 byte 0x%02x", lead);
        return fail_at(sc, sc->detail);
    }
    for (int i = 1; i <= more; i++)
        if (start + (size_t)i >= sc->len || ((unsigned char)sc->s[start + i] & 0xC0) != 0x80)
            return fail_at(sc, "truncated UTF-8 sequence");
    unsigned char second = (unsigned char)sc->s[start + 1];
    if (lead < 0xC2 || (lead == 0xE0 && second < 0xA0) || (lead == 0xF0 && second < 0x90))
        return fail_at(sc, "overlong UTF-8 sequence");
    if (lead == 0xED && second >= 0xA0)
        return fail_at(sc, "UTF-8 encoded surrogate");
    if (lead == 0xF4 && second >= 0x90)
        return fail_at(sc, "UTF-8 sequence beyond U+10FFFF");
    sc->pos += (size_t)more + 1;
    return true;
}

static bool scan_string(scan *sc, bool member_name)
{
    size_t opening = sc->pos;
    sc->pos++; /* the opening quote */
    while (sc->pos < sc->len) {
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return true;
        }
        if (c < 0x20)
            return fail_at(sc, "control character in a string");
        if (c >= 0x80) {
            if (!scan_utf8(sc, c))
                return false;
            continue;
        }
        size_t escape = sc->pos;
        sc->pos++;
        if (c != '\\')
            continue;
        if (sc->pos >= sc->len)
            break;
        c = (unsigned char)sc->s[sc->pos];
        if (!strchr("\"\\/bfnrtu", c) || !c)
            return fail_at(sc, "invalid escape in a string");
        sc->pos++;
        if (c == 'u' && !scan_unicode_escape(sc, escape, member_name, opening))
            return false;
    }
    return fail_at(sc, "unterminated string");
}

static bool scan_value(scan *sc);

/* An object or an array, after its opening bracket. */
static bool scan_container(scan *sc, char close)
{
    if (++sc->depth > sc->max_depth) {
        snprintf(sc->detail, sizeof sc->detail, "nested deeper than %d levels", sc->max_depth);
        return fail_at(sc, sc->detail);
    }
    sc->pos++;
    skip_space(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == close) {
        sc->pos++;
        sc->depth--;
        return true;
    }
    for (;;) {
        if (close == '}') {
            if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
                return fail_at(sc, sc->pos < sc->len && sc->s[sc->pos] == '\''
                                       ? "single quote"
                                       : "expected a member name");
            if (!scan_string(sc, true))
                return false;
            skip_space(sc);
            if (sc->pos >= sc->len || sc->s[sc->pos] != ':')
                return fail_at(sc, "expected ':'");
            sc->pos++;
        }
        if (!scan_value(sc))
            return false;
        skip_space(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == close) {
            sc->pos++;
            sc->depth--;
            return true;
        }
        if (sc->pos >= sc->len || sc->s[sc->pos] != ',')
            return fail_at(sc, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        sc->pos++;
        skip_space(sc);
    }
}

static bool scan_literal(scan *sc, const char *word)
{
    size_t n = strlen(word);
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return fail_at(sc, "unexpected character");
    sc->pos += n;
    return true;
}

static bool scan_value(scan *sc)
{
    skip_space(sc);
    if (sc->pos >= sc->len)
        return fail_at(sc, "unexpected end of input");
    switch (sc->s[sc->pos]) {
    case '{':
        return scan_container(sc, '}');
    case '[':
        return scan_container(sc, ']');
    case '"':
        return scan_string(sc, false);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        if (sc->s[sc->pos] == '-' || is_digit(sc))
            return scan_number(sc);
        return fail_at(sc, sc->s[sc->pos] == '\'' ? "single quote" : "unexpected character");
    }
}

int json_parse(const char *text, size_t len, const char *what, json_object **out)
{
    return json_parse_depth(text, len, what, MAX_DEPTH, out);
}

int json_parse_depth(const char *text, size_t len, const char *what, int max_depth,
                     json_object **out)
{
    *out = NULL;
    const char *nul = memchr(text, '\0', len);
    if (nul)
        return error_set(ACP_EINVAL, "%s: invalid JSON: NUL byte at byte %zu", what,
                         (size_t)(nul - text));
    if (len > (size_t)0x7fffffff)
        return error_set(ACP_ETOOBIG, "%s: %zu bytes is too large to parse", what, len);
    scan sc = {.s = text, .len = len, .max_depth = max_depth};
    if (scan_value(&sc)) {
        skip_space(&sc);
        if (sc.pos < len)
            return error_set(ACP_EINVAL,
                             "%s: invalid JSON: unexpected data after the value at byte %zu", what,
                             sc.pos);
    } else if (sc.pos >= len) {
        return error_set(ACP_EINVAL, "%s: invalid JSON: unexpected end of input", what);
    } else {
        return error_set(ACP_EINVAL, "%s: invalid JSON: %s at byte %zu", what, sc.reason, sc.pos);
    }

    /* The scan enforces the depth; json-c counts a member's value as a
     * level of its own, so give it room. */
    json_tokener *tok = json_tokener_new_ex(2 * max_depth + 2);
    if (!tok)
        return error_set(ACP_ENOMEM, "%s: out of memory creating a JSON parser", what);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                    JSON_TOKENER_VALIDATE_UTF8);
    json_object *value = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (err == json_tokener_continue && len > 0) {
        /* A top-level scalar ("1.5", "null") is only complete once the
         * tokener sees the terminating NUL. */
        value = json_tokener_parse_ex(tok, "", 1);
        if (json_tokener_get_error(tok) != json_tokener_success)
            err = json_tokener_continue;
        else
            err = json_tokener_success;
        end = len;
    }
    json_tokener_free(tok);

    if (err == json_tokener_continue || (err == json_tokener_success && len == 0))
        return error_set(ACP_EINVAL, "%s: invalid JSON: unexpected end of input", what);
    if (err != json_tokener_success)
        return error_set(ACP_EINVAL, "%s: invalid JSON: %s at byte %zu", what,
                         json_tokener_error_desc(err), end);
    while (end < len && strchr(" \t\r\n", text[end]))
        end++;
    if (end < len) {
        json_object_put(value);
        return error_set(
            ACP_EINVAL, "%s: invalid JSON: unexpected data after the value at byte %zu", what, end);
    }
    *out = value;
    return 0;
}

static int write_string(buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = buf_append(out, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < len && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t esc_len = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        default:
            if (c >= 0x20)
                continue;
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        if (!(rc = buf_append(out, s + run, i - run)))
            rc = buf_append(out, esc, esc_len);
        run = i + 1;
    }
    if (!rc)
        rc = buf_append(out, s + run, len - run);
    return rc ? rc : buf_append(out, "\"", 1);
}

/* Java's Double.toString(): the shortest digits that read back as the same
 * double, laid out as plain decimal for 1e-3 <= |d| < 1e7 and as
 * "d.dddE<exp>" otherwise; always at least one digit after the point. */
static int write_java_double(buf *out, double d)
{
    if (isnan(d))
        return buf_puts(out, "NaN");
    if (isinf(d))
        return buf_puts(out, d < 0 ? "-Infinity" : "Infinity");
    if (d == 0)
        return buf_puts(out, signbit(d) ? "-0.0" : "0.0");

    char sci[48];
    int precision = 0;
    for (; precision < 17; precision++) {
        snprintf(sci, sizeof sci, "%.*e", precision, d);
        if (strtod(sci, NULL) == d)
            break;
    }
    /* Java writes two digits at least, and then not the shortest digit
     * padded with 0 but the two-digit decimal closest to the value (it reads
     * back the same too): 4.9E-324 for the smallest double, not 5.0E-324. */
    if (precision == 0)
        snprintf(sci, sizeof sci, "%.1e", d);
    /* sci is "[-]D[.DDD]e[+-]XX" */
    char digits[24];
    size_t n = 0;
    const char *p = sci;
    bool negative = *p == '-';
    if (negative)
        p++;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[n++] = *p;
    int exp10 = atoi(p + 1);
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';

    char text[64];
    size_t t = 0;
    if (negative)
        text[t++] = '-';
    double magnitude = fabs(d);
    if (magnitude >= 1e-3 && magnitude < 1e7) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++)
                text[t++] = (size_t)i < n ? digits[i] : '0';
            text[t++] = '.';
            if ((size_t)exp10 + 1 < n)
                for (size_t i = (size_t)exp10 + 1; i < n; i++)
                    text[t++] = digits[i];
            else
                text[t++] = '0';
        } else {
            text[t++] = '0';
            text[t++] = '.';
            for (int i = -1; i > exp10; i--)
                text[t++] = '0';
            for (size_t i = 0; i < n; i++)
                text[t++] = digits[i];
        }
        text[t] = '\0';
    } else {
        text[t++] = digits[0];
        text[t++] = '.';
        if (n > 1)
            for (size_t i = 1; i < n; i++)
                text[t++] = digits[i];
        else
            text[t++] = '0';
        snprintf(text + t, sizeof text - t, "E%d", exp10);
    }
    return buf_puts(out, text);
}

static int write_value(buf *out, json_object *value, int depth)
{
    int rc = 0;
    if (depth > MAX_DEPTH)
        return error_set(ACP_EINVAL, "JSON nested deeper than %d levels", MAX_DEPTH);
    switch (json_object_get_type(value)) {
    case json_type_null:
        return buf_puts(out, "null");
    case json_type_boolean:
        return buf_puts(out, json_object_get_boolean(value) ? "true" : "false");
    case json_type_int:
        /* json-c keeps signed and unsigned 64-bit values apart and prints both exactly. */
        return buf_puts(out, json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN));
    case json_type_double:
        return write_java_double(out, json_object_get_double(value));
    case json_type_string:
        return write_string(out, json_object_get_string(value),
                            (size_t)json_object_get_string_len(value));
    case json_type_array: {
        size_t count = json_object_array_length(value);
        rc = buf_append(out, "[", 1);
        for (size_t i = 0; i < count && !rc; i++) {
            if (i > 0)
                rc = buf_append(out, ",", 1);
            if (!rc)
                rc = write_value(out, json_object_array_get_idx(value, i), depth + 1);
        }
        return rc ? rc : buf_append(out, "]", 1);
    }
    case json_type_object: {
        bool first = true;
        rc = buf_append(out, "{", 1);
        json_object_object_foreach(value, key, member)
        {
            if (rc)
                break;
            if (!first)
                rc = buf_append(out, ",", 1);
            first = false;
            if (!rc)
                rc = write_string(out, key, strlen(key));
            if (!rc)
                rc = buf_append(out, ":", 1);
            if (!rc)
                rc = write_value(out, member, depth + 1);
        }
        return rc ? rc : buf_append(out, "}", 1);
    }
    }
    return error_set(ACP_EINVAL, "JSON value of unknown type");
}

int json_write_compact(buf *out, json_object *value)
{
    return write_value(out, value, 0);
}

int json_compact_text(const char *text, const char *what, buf *out)
{
    size_t len = strnlen(text, ACP_JOB_CONFIG_MAX + 1);
    if (len > ACP_JOB_CONFIG_MAX)
        return error_set(ACP_ETOOBIG, "%s: more than %d bytes", what, ACP_JOB_CONFIG_MAX);
    json_object *value;
    int rc = json_parse(text, len, what, &value);
    if (rc)
        return rc;
    rc = json_write_compact(out, value);
    json_object_put(value);
    return rc ? error_prefix(rc, what) : 0;
}
