/* A growing byte buffer kept NUL-terminated (a request body, the job part of
 * an upload): three fields of its owner's, so that the bytes can be handed
 * on as a plain malloc'd string. */
#ifndef SERVER_TEXTBUF_H
#define SERVER_TEXTBUF_H

#include <stddef.h>

/* Append @n bytes of @src to *@data (holding *@len bytes in *@cap),
 * doubling the allocation as needed. Returns 0, or -1 when out of memory
 * (the buffer is left as it was). */
int textbuf_append(char **data, size_t *len, size_t *cap, const void *src, size_t n);

#endif
