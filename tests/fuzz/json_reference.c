/* Deliberately shares nothing with src/json.c: a second reading of the
 * RFCs is what makes the comparison worth having. */
#include "json_reference.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Past this depth the check stops and answers JSON_REF_EDGE: the library
 * refuses far less already, and recursing on (say) a megabyte of '[' would
 * only exhaust the stack. */
#define REF_GIVE_UP_DEPTH 512

typedef struct ref {
    const unsigned char *s;
    size_t len, pos;
    int depth, max_depth;
    bool edge, gave_up;
} ref;

static bool ref_is(const ref *r, char c)
{
    return r->pos < r->len && r->s[r->pos] == (unsigned char)c;
}

static bool ref_digit(const ref *r)
{
    return r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9';
}

static void ref_space(ref *r)
{
    while (ref_is(r, ' ') || ref_is(r, '\t') || ref_is(r, '\n') || ref_is(r, '\r'))
        r->pos++;
}

/* One character of RFC 3629 UTF-8: no overlong forms, no encoded
 * surrogates, nothing above U+10FFFF. */
static bool ref_utf8(ref *r)
{
    unsigned c = r->s[r->pos], cp, min;
    size_t n;
    if (c < 0x80) {
        r->pos++;
        return true;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 1, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 2, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 3, cp = c & 0x07, min = 0x10000;
    else
        return false;
    if (r->len - r->pos - 1 < n)
        return false;
    for (size_t i = 1; i <= n; i++) {
        unsigned b = r->s[r->pos + i];
        if ((b & 0xC0) != 0x80)
            return false;
        cp = cp << 6 | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    r->pos += n + 1;
    return true;
}

static long ref_hex4(ref *r)
{
    long v = 0;
    for (int i = 0; i < 4; i++, r->pos++) {
        if (r->pos >= r->len)
            return -1;
        unsigned c = r->s[r->pos];
        int d = c >= '0' && c <= '9'   ? (int)c - '0'
                : c >= 'a' && c <= 'f' ? (int)c - 'a' + 10
                : c >= 'A' && c <= 'F' ? (int)c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static bool ref_string(ref *r)
{
    r->pos++;
    while (r->pos < r->len) {
        unsigned c = r->s[r->pos];
        if (c == '"') {
            r->pos++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c != '\\') {
            if (!ref_utf8(r))
                return false;
            continue;
        }
        r->pos++;
        if (r->pos >= r->len)
            return false;
        c = r->s[r->pos++];
        if (c != 'u') {
            if (!c || !strchr("\"\\/bfnrt", (int)c))
                return false;
            continue;
        }
        long u = ref_hex4(r);
        if (u < 0)
            return false;
        if (u == 0 || (u >= 0xDC00 && u <= 0xDFFF)) {
            r->edge = true;
        } else if (u >= 0xD800 && u <= 0xDBFF) {
            size_t at = r->pos;
            long low = -1;
            if (ref_is(r, '\\') && r->pos + 1 < r->len && r->s[r->pos + 1] == 'u') {
                r->pos += 2;
                low = ref_hex4(r);
                if (low < 0)
                    return false;
            }
            if (low < 0xDC00 || low > 0xDFFF) {
                r->pos = at; /* whatever follows is read on its own */
                r->edge = true;
            }
        }
    }
    return false;
}

static bool ref_number(ref *r)
{
    size_t start = r->pos;
    bool integer = true;
    if (ref_is(r, '-'))
        r->pos++;
    if (ref_is(r, '0'))
        r->pos++;
    else if (ref_digit(r))
        while (ref_digit(r))
            r->pos++;
    else
        return false;
    if (ref_is(r, '.')) {
        r->pos++;
        integer = false;
        if (!ref_digit(r))
            return false;
        while (ref_digit(r))
            r->pos++;
    }
    if (ref_is(r, 'e') || ref_is(r, 'E')) {
        r->pos++;
        integer = false;
        if (ref_is(r, '+') || ref_is(r, '-'))
            r->pos++;
        if (!ref_digit(r))
            return false;
        while (ref_digit(r))
            r->pos++;
    }
    size_t n = r->pos - start;
    char *copy = malloc(n + 1);
    if (!copy)
        abort();
    memcpy(copy, r->s + start, n);
    copy[n] = '\0';
    errno = 0;
    if (integer) {
        (void)strtoll(copy, NULL, 10);
    } else {
        double d = strtod(copy, NULL);
        if (!isfinite(d))
            errno = ERANGE;
    }
    if (errno == ERANGE)
        r->edge = true;
    free(copy);
    return true;
}

static bool ref_value(ref *r);

static bool ref_container(ref *r, char close)
{
    if (++r->depth > r->max_depth)
        r->edge = true;
    if (r->depth > REF_GIVE_UP_DEPTH) {
        r->gave_up = true;
        return false;
    }
    r->pos++;
    ref_space(r);
    if (ref_is(r, close)) {
        r->pos++;
        r->depth--;
        return true;
    }
    for (;;) {
        if (close == '}') {
            ref_space(r);
            if (!ref_is(r, '"') || !ref_string(r))
                return false;
            ref_space(r);
            if (!ref_is(r, ':'))
                return false;
            r->pos++;
        }
        if (!ref_value(r))
            return false;
        ref_space(r);
        if (ref_is(r, close)) {
            r->pos++;
            r->depth--;
            return true;
        }
        if (!ref_is(r, ','))
            return false;
        r->pos++;
    }
}

static bool ref_word(ref *r, const char *word)
{
    size_t n = strlen(word);
    if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
        return false;
    r->pos += n;
    return true;
}

static bool ref_value(ref *r)
{
    ref_space(r);
    if (r->pos >= r->len)
        return false;
    switch (r->s[r->pos]) {
    case '{':
        return ref_container(r, '}');
    case '[':
        return ref_container(r, ']');
    case '"':
        return ref_string(r);
    case 't':
        return ref_word(r, "true");
    case 'f':
        return ref_word(r, "false");
    case 'n':
        return ref_word(r, "null");
    default:
        return ref_number(r);
    }
}

json_ref_verdict json_ref_check(const char *text, size_t len, int max_depth)
{
    ref r = {(const unsigned char *)text, len, 0, 0, max_depth, false, false};
    bool ok = ref_value(&r);
    if (r.gave_up)
        return JSON_REF_EDGE;
    ref_space(&r);
    if (!ok || r.pos != len)
        return JSON_REF_INVALID;
    return r.edge ? JSON_REF_EDGE : JSON_REF_PLAIN;
}
