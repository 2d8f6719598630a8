/* listen.tls: the PEM certificate and key that libmicrohttpd serves HTTPS
 * with, read and checked with GnuTLS before the server starts, so that a
 * bad file is refused by name rather than by libmicrohttpd's general
 * "cannot start". */
#ifndef SERVER_TLS_H
#define SERVER_TLS_H

#include <stddef.h>

typedef struct tls_material {
    char *cert; /* NUL-terminated PEM */
    char *key;  /* NUL-terminated PEM; wiped by tls_free */
    size_t key_len;
} tls_material;

/* Read and check @cert_file and @key_file: libmicrohttpd has TLS, each file
 * is readable PEM that GnuTLS takes, and the key is the certificate's. On
 * failure returns -1 with a message naming the file in @err. */
int tls_load(const char *cert_file, const char *key_file, tls_material *m, char *err,
             size_t errlen);

/* Wipe the key and release both (after the HTTP daemon has stopped). */
void tls_free(tls_material *m);

#endif
