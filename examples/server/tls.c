#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "slog.h"
#include "errbuf.h"
#include "startfile.h"

/* A PEM chain or key larger than this (MiB) is certainly a mistake. */
#define TLS_FILE_MAX_MIB 1

/* The certificate chain parses; a first certificate out of its validity
 * period is worth a warning (clients will refuse it), not a refusal. */
static int tls_check_cert(const char *path, char *pem, size_t len, char *err, size_t errlen)
{
    gnutls_datum_t data = {(unsigned char *)pem, (unsigned)len};
    gnutls_x509_crt_t *certs = NULL;
    unsigned count = 0;
    int rc = gnutls_x509_crt_list_import2(&certs, &count, &data, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || count == 0)
        return errbuf_set(err, errlen, "listen.tls.cert_file: %s: not a PEM certificate: %s", path,
                          rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
    time_t now = time(NULL);
    if (gnutls_x509_crt_get_expiration_time(certs[0]) < now ||
        gnutls_x509_crt_get_activation_time(certs[0]) > now)
        slog(ACP_LOG_WARN, "listen.tls.cert_file: %s: the certificate is not valid now", path);
    for (unsigned i = 0; i < count; i++)
        gnutls_x509_crt_deinit(certs[i]);
    gnutls_free(certs);
    return 0;
}

static int tls_check_key(const char *path, char *pem, size_t len, char *err, size_t errlen)
{
    gnutls_datum_t data = {(unsigned char *)pem, (unsigned)len};
    gnutls_x509_privkey_t key;
    int rc = gnutls_x509_privkey_init(&key);
    if (rc < 0)
        return errbuf_set(err, errlen, "listen.tls.key_file: %s: %s", path, gnutls_strerror(rc));
    rc = gnutls_x509_privkey_import2(key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0)
        return errbuf_set(err, errlen,
                          "listen.tls.key_file: %s: not an unencrypted PEM private key: %s", path,
                          gnutls_strerror(rc));
    return 0;
}

/* The pair as libmicrohttpd will hand it to GnuTLS. */
static int tls_check_pair(const char *cert_file, const char *key_file, tls_material *m,
                          size_t cert_len, char *err, size_t errlen)
{
    gnutls_certificate_credentials_t creds;
    int rc = gnutls_certificate_allocate_credentials(&creds);
    if (rc < 0)
        return errbuf_set(err, errlen, "listen.tls: %s", gnutls_strerror(rc));
    gnutls_datum_t cert = {(unsigned char *)m->cert, (unsigned)cert_len};
    gnutls_datum_t key = {(unsigned char *)m->key, (unsigned)m->key_len};
    rc = gnutls_certificate_set_x509_key_mem2(creds, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(creds);
    if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
        return errbuf_set(err, errlen,
                          "listen.tls.key_file: %s: not the key of the certificate in %s (%s)",
                          key_file, cert_file, gnutls_strerror(rc));
    if (rc < 0)
        return errbuf_set(err, errlen, "listen.tls: %s and %s: %s", cert_file, key_file,
                          gnutls_strerror(rc));
    return 0;
}

int tls_load(const char *cert_file, const char *key_file, tls_material *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return errbuf_set(err, errlen,
                          "listen.tls: this libmicrohttpd was built without TLS (GnuTLS): serve "
                          "HTTPS through a reverse proxy instead (docs/http-api.adoc, \"TLS\")");
    size_t cert_len;
    unsigned mode;
    if (startfile_read("listen.tls.cert_file", cert_file, TLS_FILE_MAX_MIB, &m->cert, &cert_len,
                       &mode, err, errlen) != 0 ||
        tls_check_cert(cert_file, m->cert, cert_len, err, errlen) != 0 ||
        startfile_read("listen.tls.key_file", key_file, TLS_FILE_MAX_MIB, &m->key, &m->key_len,
                       &mode, err, errlen) != 0 ||
        tls_check_key(key_file, m->key, m->key_len, err, errlen) != 0 ||
        tls_check_pair(cert_file, key_file, m, cert_len, err, errlen) != 0) {
        tls_free(m);
        return -1;
    }
    if (mode & 077)
        slog(ACP_LOG_WARN, "listen.tls.key_file: %s: mode %04o lets group or others read the key",
             key_file, mode);
    return 0;
}

void tls_free(tls_material *m)
{
    if (m->key)
        explicit_bzero(m->key, m->key_len);
    free(m->key);
    free(m->cert);
    memset(m, 0, sizeof *m);
}
