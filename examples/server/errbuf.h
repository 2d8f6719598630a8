/* The start-up checks' error messages (settings, tokens, TLS files): the
 * text goes into the caller's buffer, which main() prints. */
#ifndef SERVER_ERRBUF_H
#define SERVER_ERRBUF_H

#include <stddef.h>

/* Writes the message into @err (at most @errlen bytes, NUL-terminated) and
 * returns -1, so that a check can `return errbuf_set(...)`. */
int errbuf_set(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
