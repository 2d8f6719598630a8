/* SHA-256 (FIPS 180-4), small and streaming, for the checksum executor. */
#ifndef SERVER_SHA256_H
#define SERVER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN    64

typedef struct sha256_ctx {
    uint32_t state[8];
    uint64_t total; /* bytes hashed so far */
    unsigned char block[64];
    size_t used; /* bytes waiting in block */
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(sha256_ctx *ctx, unsigned char digest[SHA256_DIGEST_LEN]);

/* One call: the lowercase hex digest of @data, NUL-terminated, into @hex. */
void sha256_hex(const void *data, size_t len, char hex[SHA256_HEX_LEN + 1]);

#endif
