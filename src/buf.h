/* A growable byte buffer that stays NUL-terminated. */
#ifndef ACP_BUF_H
#define ACP_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data; /* NULL until something is appended; then NUL-terminated */
    size_t len;
    size_t cap;
} buf;

#define BUF_INIT                                                                                   \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Each returns 0 or ACP_ENOMEM (with the detail set); @b is unchanged on failure. */
int buf_append(buf *b, const void *data, size_t len);
int buf_puts(buf *b, const char *s);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void buf_free(buf *b);

/* A buffer that may not grow past @max bytes: bytes of a stream (an S3
 * object) read whole into memory. */
typedef struct buf_bounded {
    buf data;
    size_t max;
    const char *what; /* names the stream in the error */
} buf_bounded;

/* A sink of reads (objects_sink, acp_read_fn): appends, or fails with
 * ACP_ETOOBIG "<what> is larger than the limit of <max> bytes". */
int buf_bounded_append(void *bounded, const void *data, size_t len);

#endif
