/* MD5 (RFC 1321), only for deriving job ids the way upstream's callers do:
 * not used for anything that needs a secure hash. */
#ifndef ACP_MD5_H
#define ACP_MD5_H

#include <stddef.h>
#include <stdint.h>

typedef struct md5_ctx {
    uint32_t state[4];
    uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
} md5_ctx;

void md5_init(md5_ctx *ctx);
void md5_update(md5_ctx *ctx, const void *data, size_t len);
void md5_final(md5_ctx *ctx, unsigned char digest[16]);

#endif
