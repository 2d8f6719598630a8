#include "textbuf.h"

#include <stdlib.h>
#include <string.h>

int textbuf_append(char **data, size_t *len, size_t *cap, const void *src, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t grown_cap = *cap ? *cap : 4096;
        while (grown_cap < *len + n + 1)
            grown_cap *= 2;
        char *grown = realloc(*data, grown_cap);
        if (!grown)
            return -1;
        *data = grown;
        *cap = grown_cap;
    }
    memcpy(*data + *len, src, n);
    *len += n;
    (*data)[*len] = '\0';
    return 0;
}
