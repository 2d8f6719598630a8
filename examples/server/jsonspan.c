#include "jsonspan.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

static size_t jsonspan_skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* @i is at an opening quote; returns the index after the closing one. */
static size_t jsonspan_skip_string(const char *s, size_t i, size_t n)
{
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i + 1;
}

/* @i is at the first character of a value; returns the index after it. */
static size_t jsonspan_skip_value(const char *s, size_t i, size_t n)
{
    if (s[i] == '"')
        return jsonspan_skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        for (; i < n; i++) {
            if (s[i] == '"')
                i = jsonspan_skip_string(s, i, n) - 1;
            else if (s[i] == '{' || s[i] == '[')
                depth++;
            else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
                return i + 1;
        }
        return n;
    }
    while (i < n && !strchr(",}] \t\r\n", s[i]))
        i++;
    return i;
}

/* Compare the raw key text [start, end) (quotes included) with @key; a key
 * written with escapes is decoded by json-c first. */
static int jsonspan_key_is(const char *s, size_t start, size_t end, const char *key)
{
    size_t raw_len = end - start - 2;
    if (!memchr(s + start + 1, '\\', raw_len))
        return raw_len == strlen(key) && memcmp(s + start + 1, key, raw_len) == 0;
    char *quoted = strndup(s + start, end - start);
    if (!quoted)
        return 0;
    json_object *decoded = json_tokener_parse(quoted);
    free(quoted);
    int same = decoded && json_object_get_string_len(decoded) == (int)strlen(key) &&
               strcmp(json_object_get_string(decoded), key) == 0;
    json_object_put(decoded);
    return same;
}

int jsonspan_member(const char *s, size_t n, const char *key, size_t *start, size_t *end)
{
    int found = -1;
    size_t i = jsonspan_skip_ws(s, 0, n);
    if (i >= n || s[i] != '{')
        return -1;
    i = jsonspan_skip_ws(s, i + 1, n);
    while (i < n && s[i] == '"') {
        size_t key_start = i;
        i = jsonspan_skip_string(s, i, n);
        size_t key_end = i;
        i = jsonspan_skip_ws(s, i, n);
        if (i >= n || s[i] != ':')
            return -1;
        i = jsonspan_skip_ws(s, i + 1, n);
        if (i >= n)
            return -1;
        size_t value_start = i;
        i = jsonspan_skip_value(s, i, n);
        if (jsonspan_key_is(s, key_start, key_end, key)) {
            *start = value_start;
            *end = i;
            found = 0;
        }
        i = jsonspan_skip_ws(s, i, n);
        if (i < n && s[i] == ',')
            i = jsonspan_skip_ws(s, i + 1, n);
    }
    return found;
}

long jsonspan_single_quote(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            i = jsonspan_skip_string(s, i, n) - 1;
        else if (s[i] == '\'')
            return (long)i;
    }
    return -1;
}

/* Whether the string starting at the quote @i holds "\u0000". */
static int jsonspan_string_has_nul(const char *s, size_t i, size_t n)
{
    for (i++; i < n && s[i] != '"'; i++) {
        if (s[i] != '\\')
            continue;
        if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0)
            return 1;
        i++;
    }
    return 0;
}

long jsonspan_nul_key(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"')
            continue;
        size_t start = i;
        i = jsonspan_skip_string(s, i, n);
        size_t after = jsonspan_skip_ws(s, i, n);
        if (after < n && s[after] == ':' && jsonspan_string_has_nul(s, start, n))
            return (long)start;
        i--;
    }
    return -1;
}
