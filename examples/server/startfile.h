/* Reading a whole file the server is configured with (a tokens file, a TLS
 * certificate or key) at start-up: a regular file of bounded size, read
 * into memory, its bytes wiped when the read fails half-way. */
#ifndef SERVER_STARTFILE_H
#define SERVER_STARTFILE_H

#include <stddef.h>

/* The whole of @path, NUL-terminated, into *@out (malloc'd; the caller
 * frees it, after wiping it when it is secret) and its length into *@len;
 * *@mode receives the file's permission bits. A file that is missing, not
 * a regular file, larger than @max_mib MiB or unreadable gives -1 with the
 * reason in @err, prefixed "<@key>: <@path>: ". */
int startfile_read(const char *key, const char *path, size_t max_mib, char **out, size_t *len,
                   unsigned *mode, char *err, size_t errlen);

#endif
