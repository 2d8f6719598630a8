/* Unit tests of the example server's access control (auth.c), without
 * services: the token table from the "auth" key and a tokens file, the
 * lookup of a presented token over every entry, what each role may do,
 * which requests need no token, and the loopback check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth.h"
#include "sha256.h"

#define WRITE_TOKEN "write-token-0123456789"
#define READ_TOKEN  "read-token-0123456789"
/* sha256("read-token-0123456789"), filled in by digest_of() */
static char read_digest[SHA256_HEX_LEN + 1];

static void digest_of(const char *token, char hex[SHA256_HEX_LEN + 1])
{
    sha256_hex(token, strlen(token), hex);
}

static json_object *parse(const char *text)
{
    json_object *doc = json_tokener_parse(text);
    assert_non_null(doc);
    return doc;
}

/* Load @text (the "auth" object) into @t; returns auth_load's result. */
static int load(auth_table *t, const char *text, char *err, size_t errlen)
{
    json_object *doc = parse(text);
    memset(t, 0, sizeof *t);
    err[0] = '\0';
    int rc = auth_load(t, doc, err, errlen);
    json_object_put(doc);
    return rc;
}

static void load_two(auth_table *t)
{
    char text[512], err[512];
    digest_of(READ_TOKEN, read_digest);
    snprintf(text, sizeof text,
             "{\"tokens\": [{\"name\": \"ops\", \"role\": \"write\", \"token\": \"" WRITE_TOKEN
             "\"}, {\"name\": \"grafana\", \"role\": \"read\", \"sha256\": \"%s\"}]}",
             read_digest);
    assert_int_equal(load(t, text, err, sizeof err), 0);
    assert_int_equal(t->count, 2);
}

static void tokens_are_kept_as_digests_and_found(void **state)
{
    (void)state;
    auth_table t;
    load_two(&t);
    unsigned char want[SHA256_DIGEST_LEN];
    sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, WRITE_TOKEN, strlen(WRITE_TOKEN));
    sha256_final(&ctx, want);
    assert_memory_equal(t.tokens[0].digest, want, sizeof want);

    const auth_token *who = auth_find(&t, WRITE_TOKEN, strlen(WRITE_TOKEN));
    assert_non_null(who);
    assert_string_equal(who->name, "ops");
    assert_int_equal(who->role, AUTH_ROLE_WRITE);
    who = auth_find(&t, READ_TOKEN, strlen(READ_TOKEN));
    assert_non_null(who);
    assert_string_equal(who->name, "grafana");
    assert_int_equal(who->role, AUTH_ROLE_READ);
    /* A prefix, a longer text, another case, the digest itself: none. */
    assert_null(auth_find(&t, WRITE_TOKEN, strlen(WRITE_TOKEN) - 1));
    assert_null(auth_find(&t, WRITE_TOKEN "x", strlen(WRITE_TOKEN) + 1));
    assert_null(auth_find(&t, "WRITE-TOKEN-0123456789", strlen(WRITE_TOKEN)));
    assert_null(auth_find(&t, read_digest, strlen(read_digest)));
    assert_null(auth_find(&t, "", 0));
    auth_free(&t);
    assert_int_equal(t.count, 0);
    assert_null(t.tokens);
}

/* Digests that differ only in their last byte, and the match at either end
 * of a long table: the lookup compares whole digests and takes the one
 * that matched, wherever it is. */
static void every_entry_is_compared_in_full(void **state)
{
    (void)state;
    auth_table t = {0};
    t.count = 200;
    t.tokens = calloc(t.count, sizeof *t.tokens);
    assert_non_null(t.tokens);
    sha256_ctx ctx;
    for (size_t i = 0; i < t.count; i++) {
        char name[32];
        snprintf(name, sizeof name, "t%zu", i);
        t.tokens[i].name = strdup(name);
        t.tokens[i].role = i % 2 ? AUTH_ROLE_READ : AUTH_ROLE_WRITE;
        sha256_init(&ctx);
        sha256_update(&ctx, "base-token-for-all", 18);
        sha256_final(&ctx, t.tokens[i].digest);
        t.tokens[i].digest[SHA256_DIGEST_LEN - 1] ^= (unsigned char)(i + 1);
    }
    assert_null(auth_find(&t, "base-token-for-all", 18));
    for (size_t i = 0; i < t.count; i += 199) {
        /* Make entry i the digest of "base-token-for-all". */
        t.tokens[i].digest[SHA256_DIGEST_LEN - 1] ^= (unsigned char)(i + 1);
        const auth_token *who = auth_find(&t, "base-token-for-all", 18);
        assert_ptr_equal(who, &t.tokens[i]);
        t.tokens[i].digest[SHA256_DIGEST_LEN - 1] ^= (unsigned char)(i + 1);
    }
    auth_free(&t);
    auth_table empty = {0};
    assert_null(auth_find(&empty, "anything-at-all-here", 20));
}

static void plain_tokens_are_wiped_from_the_json(void **state)
{
    (void)state;
    json_object *doc = parse("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": "
                             "\"a-secret-token-value\"}, {\"name\": \"b\", \"role\": \"banana\", "
                             "\"token\": \"another-secret-value\"}]}");
    auth_table t = {0};
    char err[512];
    /* Refused at the second entry: both plain tokens are wiped all the same. */
    assert_int_equal(auth_load(&t, doc, err, sizeof err), -1);
    assert_string_equal(err, "auth.tokens[1].role: expected \"read\" or \"write\"");
    json_object *tokens = json_object_object_get(doc, "tokens");
    for (size_t i = 0; i < 2; i++) {
        json_object *token = json_object_object_get(json_object_array_get_idx(tokens, i), "token");
        const char *text = json_object_get_string(token);
        for (int j = 0; j < json_object_get_string_len(token); j++)
            assert_int_equal(text[j], 0);
    }
    json_object_put(doc);
    auth_free(&t);
}

static void assert_refused(const char *text, const char *expected)
{
    auth_table t;
    char err[1024];
    assert_int_equal(load(&t, text, err, sizeof err), -1);
    if (!strstr(err, expected))
        fail_msg("for %s\n  got:      %s\n  expected: %s", text, err, expected);
    /* No message quotes a token. */
    assert_null(strstr(err, "secret"));
    auth_free(&t);
}

static void bad_entries_are_named(void **state)
{
    (void)state;
    assert_refused("[]", "auth: expected an object");
    assert_refused("{\"tokens\": {}}", "auth.tokens: expected an array");
    assert_refused("{\"keys\": []}", "auth.keys: unknown setting");
    assert_refused("{\"tokens\": [1]}", "auth.tokens[0]: expected an object");
    assert_refused("{\"tokens\": [{\"role\": \"read\", \"token\": \"secret-0123456789\"}]}",
                   "auth.tokens[0].name: missing");
    assert_refused("{\"tokens\": [{\"name\": \"\", \"role\": \"read\", \"token\": "
                   "\"secret-0123456789\"}]}",
                   "auth.tokens[0].name: expected 1..64");
    assert_refused("{\"tokens\": [{\"name\": \"a\\nb\", \"role\": \"read\", \"token\": "
                   "\"secret-0123456789\"}]}",
                   "auth.tokens[0].name: expected 1..64");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"token\": \"secret-0123456789\"}]}",
                   "auth.tokens[0].role: missing");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"Read\", \"token\": "
                   "\"secret-0123456789\"}]}",
                   "auth.tokens[0].role: expected \"read\" or \"write\"");
    assert_refused(
        "{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": \"secret-15chars\"}]}",
        "auth.tokens[0].token: expected 16..256");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": "
                   "\"secret\\u00e9-0123456789\"}]}",
                   "auth.tokens[0].token: expected 16..256 printable ASCII");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": "
                   "\"secret\\u0000-0123456789\"}]}",
                   "auth.tokens[0].token");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": 12345}]}",
                   "auth.tokens[0].token");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"sha256\": "
                   "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\"}]}",
                   "auth.tokens[0].sha256: expected 64 hexadecimal digits");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": "
                   "\"secret-0123456789\", \"sha256\": "
                   "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}]}",
                   "auth.tokens[0]: give exactly one of \"token\" and \"sha256\"");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": "
                   "\"secret-0123456789\"}, {\"name\": \"a\", \"role\": \"write\", \"token\": "
                   "\"secret-9876543210\"}]}",
                   "auth.tokens[1].name: \"a\" is already the name of another token");
    assert_refused("{\"tokens\": [{\"name\": \"a\", \"role\": \"read\", \"token\": "
                   "\"secret-0123456789\"}, {\"name\": \"b\", \"role\": \"write\", \"token\": "
                   "\"secret-0123456789\"}]}",
                   "auth.tokens[1]: the same token as \"a\"");
    assert_refused("{\"tokens_file\": 5}", "auth.tokens_file: expected the path of a file");
    assert_refused("{\"tokens_file\": \"/nonexistent/tokens.json\"}",
                   "auth.tokens_file: /nonexistent/tokens.json: No such file or directory");
}

/* A temporary tokens file holding @text with @mode; its path in @path. */
static void tokens_file(char path[64], const char *text, mode_t mode)
{
    snprintf(path, 64, "/tmp/acp-auth-unit-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void a_tokens_file_is_merged_and_must_be_private(void **state)
{
    (void)state;
    char path[64], text[512], err[1024];
    tokens_file(path,
                "{\"tokens\": [{\"name\": \"cli\", \"role\": \"write\", \"token\": "
                "\"file-token-0123456789\"}]}\n",
                0600);
    snprintf(text, sizeof text,
             "{\"tokens\": [{\"name\": \"ops\", \"role\": \"read\", \"token\": \"" WRITE_TOKEN
             "\"}], \"tokens_file\": \"%s\"}",
             path);
    auth_table t;
    assert_int_equal(load(&t, text, err, sizeof err), 0);
    assert_int_equal(t.count, 2);
    const auth_token *who = auth_find(&t, "file-token-0123456789", 21);
    assert_non_null(who);
    assert_string_equal(who->name, "cli");
    assert_int_equal(who->role, AUTH_ROLE_WRITE);
    auth_free(&t);

    /* Readable by the group, or by others: refused, naming the file. */
    static const mode_t loose[] = {0640, 0604, 0660, 0700 | 0001};
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
        assert_int_equal(chmod(path, loose[i]), 0);
        assert_int_equal(load(&t, text, err, sizeof err), -1);
        char want[128];
        snprintf(want, sizeof want, "auth.tokens_file: %s: mode %04o lets group or others", path,
                 (unsigned)loose[i]);
        if (!strstr(err, want))
            fail_msg("got %s\nexpected %s", err, want);
        auth_free(&t);
    }
    unlink(path);

    /* The file's own entries are named by the file and their index; the
     * file holds {"tokens": [...]} and nothing else. */
    tokens_file(path, "{\"tokens\": [{\"name\": \"ops\", \"role\": \"read\", \"sha256\": \"00\"}]}",
                0600);
    snprintf(text, sizeof text, "{\"tokens_file\": \"%s\"}", path);
    assert_int_equal(load(&t, text, err, sizeof err), -1);
    char want[160];
    snprintf(want, sizeof want, "auth.tokens_file: %s: tokens[0].sha256: expected 64", path);
    assert_non_null(strstr(err, want));
    auth_free(&t);
    unlink(path);
    tokens_file(path, "{\"tokens\": [], \"extra\": 1}", 0600);
    snprintf(text, sizeof text, "{\"tokens_file\": \"%s\"}", path);
    assert_int_equal(load(&t, text, err, sizeof err), -1);
    assert_non_null(strstr(err, "expected {\"tokens\": [...]} only"));
    auth_free(&t);
    unlink(path);
    tokens_file(path, "{\"tokens\": [,]}", 0600);
    snprintf(text, sizeof text, "{\"tokens_file\": \"%s\"}", path);
    assert_int_equal(load(&t, text, err, sizeof err), -1);
    assert_non_null(strstr(err, "not valid JSON"));
    auth_free(&t);
    unlink(path);
}

static void roles_allow_their_methods(void **state)
{
    (void)state;
    assert_true(auth_role_allows(AUTH_ROLE_READ, "GET"));
    assert_true(auth_role_allows(AUTH_ROLE_READ, "HEAD"));
    assert_false(auth_role_allows(AUTH_ROLE_READ, "POST"));
    assert_false(auth_role_allows(AUTH_ROLE_READ, "DELETE"));
    assert_false(auth_role_allows(AUTH_ROLE_READ, "get"));
    assert_false(auth_role_allows(AUTH_ROLE_READ, "OPTIONS"));
    static const char *const methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        assert_true(auth_role_allows(AUTH_ROLE_WRITE, methods[i]));
    assert_string_equal(auth_role_name(AUTH_ROLE_READ), "read");
    assert_string_equal(auth_role_name(AUTH_ROLE_WRITE), "write");
}

static void requests_are_decided(void **state)
{
    (void)state;
    auth_table t;
    load_two(&t);
    const auth_token *who;
    const char *w = "Bearer " WRITE_TOKEN, *r = "Bearer " READ_TOKEN;
    assert_int_equal(auth_decide(&t, "GET", "/jobs", NULL, &who), AUTH_MISSING);
    assert_null(who);
    assert_int_equal(auth_decide(&t, "GET", "/jobs", "Basic dXNlcjpwYXNz", &who), AUTH_MALFORMED);
    assert_int_equal(auth_decide(&t, "GET", "/jobs", "Bearer", &who), AUTH_MALFORMED);
    assert_int_equal(auth_decide(&t, "GET", "/jobs", "Bearer    ", &who), AUTH_MALFORMED);
    assert_int_equal(auth_decide(&t, "GET", "/jobs", "Bearer nope-nope-nope-nope", &who),
                     AUTH_UNKNOWN);
    assert_null(who);
    assert_int_equal(auth_decide(&t, "GET", "/jobs", "Bearer " WRITE_TOKEN " x", &who),
                     AUTH_UNKNOWN);
    assert_int_equal(auth_decide(&t, "GET", "/jobs", r, &who), AUTH_ALLOWED);
    assert_string_equal(who->name, "grafana");
    assert_int_equal(auth_decide(&t, "HEAD", "/jobs/x/files/y", r, &who), AUTH_ALLOWED);
    assert_int_equal(auth_decide(&t, "POST", "/jobs/x/cancel", r, &who), AUTH_FORBIDDEN);
    assert_string_equal(who->name, "grafana");
    assert_int_equal(auth_decide(&t, "DELETE", "/jobs/x", r, &who), AUTH_FORBIDDEN);
    assert_int_equal(auth_decide(&t, "POST", "/jobs/x/cancel", w, &who), AUTH_ALLOWED);
    assert_string_equal(who->name, "ops");
    assert_int_equal(auth_decide(&t, "DELETE", "/jobs/x", "bearer  " WRITE_TOKEN, &who),
                     AUTH_ALLOWED);

    /* Open: GET and HEAD of /health, "/" and "/ui/..."; a valid token is
     * still recognised there, a wrong one ignored. */
    static const char *const open[] = {"/health", "/",          "/ui",
                                       "/ui/",    "/ui/app.js", "/ui/css/site.css"};
    for (size_t i = 0; i < sizeof open / sizeof open[0]; i++) {
        assert_int_equal(auth_decide(&t, "GET", open[i], NULL, &who), AUTH_OPEN);
        assert_int_equal(auth_decide(&t, "HEAD", open[i], NULL, &who), AUTH_OPEN);
        assert_int_equal(auth_decide(&t, "GET", open[i], "Bearer wrong-wrong-wrong", &who),
                         AUTH_OPEN);
        assert_null(who);
        assert_int_equal(auth_decide(&t, "GET", open[i], "Basic x", &who), AUTH_OPEN);
        assert_int_equal(auth_decide(&t, "GET", open[i], r, &who), AUTH_ALLOWED);
        assert_non_null(who);
        assert_int_equal(auth_decide(&t, "POST", open[i], NULL, &who), AUTH_MISSING);
    }
    static const char *const closed[] = {"/healthz", "/health/x", "/uix",   "/jobs",
                                         "/metrics", "/queues",   "//ui/x", "/UI/x"};
    for (size_t i = 0; i < sizeof closed / sizeof closed[0]; i++)
        assert_int_equal(auth_decide(&t, "GET", closed[i], NULL, &who), AUTH_MISSING);
    assert_int_equal(auth_decide(&t, "POST", "/health", r, &who), AUTH_FORBIDDEN);
    auth_free(&t);
}

static void loopback_addresses_are_recognised(void **state)
{
    (void)state;
    static const char *const loopback[] = {"127.0.0.1", "127.255.255.254", "127.0.1.1",
                                           "::1",       "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++)
        assert_int_equal(auth_is_loopback(loopback[i]), 1);
    static const char *const others[] = {"0.0.0.0", "10.0.0.1",        "128.0.0.1",
                                         "::",      "::ffff:10.0.0.1", "::2",
                                         "fe80::1", "126.255.255.255"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        assert_int_equal(auth_is_loopback(others[i]), 0);
    assert_int_equal(auth_is_loopback("localhost"), -1);
    assert_int_equal(auth_is_loopback("[::1]"), -1);

    char err[512];
    auth_table none = {0};
    assert_int_equal(auth_check_exposure(&none, "127.0.0.1", err, sizeof err), 0);
    assert_int_equal(auth_check_exposure(&none, "0.0.0.0", err, sizeof err), -1);
    assert_non_null(strstr(err, "listen.address \"0.0.0.0\" is not a loopback address"));
    assert_non_null(strstr(err, "auth.tokens"));
    assert_int_equal(auth_check_exposure(&none, "localhost", err, sizeof err), -1);
    auth_table some;
    load_two(&some);
    assert_int_equal(auth_check_exposure(&some, "0.0.0.0", err, sizeof err), 0);
    assert_int_equal(auth_check_exposure(&some, "::", err, sizeof err), 0);
    auth_free(&some);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_are_kept_as_digests_and_found),
        cmocka_unit_test(every_entry_is_compared_in_full),
        cmocka_unit_test(plain_tokens_are_wiped_from_the_json),
        cmocka_unit_test(bad_entries_are_named),
        cmocka_unit_test(a_tokens_file_is_merged_and_must_be_private),
        cmocka_unit_test(roles_allow_their_methods),
        cmocka_unit_test(requests_are_decided),
        cmocka_unit_test(loopback_addresses_are_recognised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
