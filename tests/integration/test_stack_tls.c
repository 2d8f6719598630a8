/* The HTTPS endpoint of scripts/stack (docs/stack.adoc, "HTTPS") as the TLS
 * tests of the S3 clients rely on it: radosgw answers on
 * ACP_TEST_S3_TLS_PORT with a certificate that verifies against
 * ACP_TEST_S3_CA_FILE for 127.0.0.1, and verification fails, naming the
 * certificate problem, without that CA or for the name "localhost". Checked
 * with libcurl, as the curl transport will use it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "stack_env.h"

static stack_env env;

static size_t discard(char *data, size_t size, size_t n, void *userdata)
{
    (void)data;
    (void)userdata;
    return size * n;
}

/* GET https://@host:<tls port>/ (@host reached at 127.0.0.1), verifying
 * the certificate against @ca_file (NULL: the system's CAs). */
static CURLcode fetch(const char *host, const char *ca_file, long *status, char *error)
{
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char url[256], resolve_to[256];
    snprintf(url, sizeof url, "https://%s:%s/", host, env.s3_tls_port);
    snprintf(resolve_to, sizeof resolve_to, "%s:%s:127.0.0.1", host, env.s3_tls_port);
    struct curl_slist *resolve = curl_slist_append(NULL, resolve_to);
    assert_non_null(resolve);
    error[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L); /* a hang guard */
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    CURLcode rc = curl_easy_perform(h);
    *status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    curl_slist_free_all(resolve);
    return rc;
}

static void verified_with_the_stack_ca(void **state)
{
    (void)state;
    long status;
    char error[CURL_ERROR_SIZE];
    CURLcode rc = fetch("127.0.0.1", env.s3_ca_file, &status, error);
    if (rc != CURLE_OK)
        fail_msg("https with %s: %s (%s)", env.s3_ca_file, curl_easy_strerror(rc), error);
    assert_int_equal(status, 200);
}

static void refused_without_the_stack_ca(void **state)
{
    (void)state;
    long status;
    char error[CURL_ERROR_SIZE];
    CURLcode rc = fetch("127.0.0.1", NULL, &status, error);
    assert_int_equal(rc, CURLE_PEER_FAILED_VERIFICATION);
    if (!strstr(error, "unable to get local issuer certificate"))
        fail_msg("error '%s' does not name the certificate problem", error);
}

static void refused_for_a_wrong_host_name(void **state)
{
    (void)state;
    long status;
    char error[CURL_ERROR_SIZE];
    CURLcode rc = fetch("localhost", env.s3_ca_file, &status, error);
    assert_int_equal(rc, CURLE_PEER_FAILED_VERIFICATION);
    if (!strstr(error, "'localhost'"))
        fail_msg("error '%s' does not name the host", error);
}

int main(void)
{
    int exit_status;
    if (stack_env_load_tls(&env, &exit_status) != 0)
        return exit_status;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verified_with_the_stack_ca),
        cmocka_unit_test(refused_without_the_stack_ca),
        cmocka_unit_test(refused_for_a_wrong_host_name),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
