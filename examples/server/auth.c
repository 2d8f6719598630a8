#include "auth.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"
#include "startfile.h"

/* Names and tokens go into log lines and headers: printable ASCII without
 * spaces keeps them from forging either. */
static int auth_printable(const char *text, size_t len, size_t min, size_t max)
{
    if (len < min || len > max)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] > 0x7e)
            return 0;
    return 1;
}

static int auth_hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static int auth_parse_digest(const char *hex, size_t len, unsigned char out[SHA256_DIGEST_LEN])
{
    if (len != SHA256_HEX_LEN)
        return -1;
    for (size_t i = 0; i < SHA256_DIGEST_LEN; i++) {
        int hi = auth_hex_digit(hex[2 * i]), lo = auth_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return 0;
}

static void auth_digest(const char *token, size_t len, unsigned char out[SHA256_DIGEST_LEN])
{
    sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, token, len);
    sha256_final(&ctx, out);
    explicit_bzero(&ctx, sizeof ctx);
}

/* A plain token's text, once read, is overwritten where json-c keeps it,
 * so that it does not linger in freed memory. */
static void auth_wipe_string(json_object *value)
{
    explicit_bzero((char *)json_object_get_string(value),
                   (size_t)json_object_get_string_len(value));
}

/* The parts of one entry, checked one by one. */
typedef struct auth_entry {
    json_object *name, *role, *token, *sha256;
} auth_entry;

static int auth_entry_members(json_object *item, const char *where, auth_entry *e, char *err,
                              size_t errlen)
{
    memset(e, 0, sizeof *e);
    if (!json_object_is_type(item, json_type_object))
        return errbuf_set(err, errlen,
                          "%s: expected an object with \"name\", \"role\" and "
                          "\"token\" or \"sha256\"",
                          where);
    json_object_object_foreach(item, key, value)
    {
        if (strcmp(key, "name") == 0)
            e->name = value;
        else if (strcmp(key, "role") == 0)
            e->role = value;
        else if (strcmp(key, "token") == 0)
            e->token = value;
        else if (strcmp(key, "sha256") == 0)
            e->sha256 = value;
        else
            return errbuf_set(err, errlen,
                              "%s.%s: unknown setting (known: name, role, token, sha256)", where,
                              key);
    }
    return 0;
}

static int auth_add(auth_table *t, json_object *item, const char *where, char *err, size_t errlen)
{
    auth_entry e;
    if (auth_entry_members(item, where, &e, err, errlen) != 0)
        return -1;
    if (!e.name || !json_object_is_type(e.name, json_type_string) ||
        !auth_printable(json_object_get_string(e.name), (size_t)json_object_get_string_len(e.name),
                        1, AUTH_NAME_MAX))
        return errbuf_set(err, errlen,
                          "%s.name: %s 1..%d printable ASCII characters without spaces", where,
                          e.name ? "expected" : "missing: give", AUTH_NAME_MAX);
    const char *name = json_object_get_string(e.name);
    const char *role_text = e.role && json_object_is_type(e.role, json_type_string)
                                ? json_object_get_string(e.role)
                                : "";
    auth_role role = strcmp(role_text, "read") == 0    ? AUTH_ROLE_READ
                     : strcmp(role_text, "write") == 0 ? AUTH_ROLE_WRITE
                                                       : 0;
    if (!role)
        return errbuf_set(err, errlen, "%s.role: %s \"read\" or \"write\"", where,
                          e.role ? "expected" : "missing: give");
    if ((e.token != NULL) == (e.sha256 != NULL))
        return errbuf_set(err, errlen, "%s: give exactly one of \"token\" and \"sha256\"", where);

    unsigned char digest[SHA256_DIGEST_LEN];
    if (e.token) {
        /* The message never quotes the value: it may be a real token. */
        if (!json_object_is_type(e.token, json_type_string) ||
            !auth_printable(json_object_get_string(e.token),
                            (size_t)json_object_get_string_len(e.token), AUTH_TOKEN_MIN,
                            AUTH_TOKEN_MAX))
            return errbuf_set(err, errlen,
                              "%s.token: expected %d..%d printable ASCII characters without spaces",
                              where, AUTH_TOKEN_MIN, AUTH_TOKEN_MAX);
        auth_digest(json_object_get_string(e.token), (size_t)json_object_get_string_len(e.token),
                    digest);
    } else if (!json_object_is_type(e.sha256, json_type_string) ||
               auth_parse_digest(json_object_get_string(e.sha256),
                                 (size_t)json_object_get_string_len(e.sha256), digest) != 0) {
        return errbuf_set(err, errlen,
                          "%s.sha256: expected %d hexadecimal digits (the SHA-256 of the token)",
                          where, SHA256_HEX_LEN);
    }

    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->tokens[i].name, name) == 0)
            return errbuf_set(err, errlen, "%s.name: \"%s\" is already the name of another token",
                              where, name);
        /* One token under two names (or roles) would make the answer depend
         * on the order of the entries. */
        if (memcmp(t->tokens[i].digest, digest, sizeof digest) == 0)
            return errbuf_set(err, errlen, "%s: the same token as \"%s\"", where,
                              t->tokens[i].name);
    }
    auth_token *grown = realloc(t->tokens, (t->count + 1) * sizeof *grown);
    if (!grown)
        return errbuf_set(err, errlen, "%s: out of memory", where);
    t->tokens = grown;
    auth_token *entry = &t->tokens[t->count];
    if (!(entry->name = strdup(name)))
        return errbuf_set(err, errlen, "%s: out of memory", where);
    entry->role = role;
    memcpy(entry->digest, digest, sizeof digest);
    explicit_bzero(digest, sizeof digest);
    t->count++;
    return 0;
}

/* The array @tokens; @prefix names it in messages ("auth.tokens"). */
static int auth_add_all(auth_table *t, json_object *tokens, const char *prefix, char *err,
                        size_t errlen)
{
    if (!json_object_is_type(tokens, json_type_array))
        return errbuf_set(err, errlen, "%s: expected an array of token objects", prefix);
    int rc = 0;
    for (size_t i = 0; i < json_object_array_length(tokens) && rc == 0; i++) {
        char where[1200];
        snprintf(where, sizeof where, "%s[%zu]", prefix, i);
        rc = auth_add(t, json_object_array_get_idx(tokens, i), where, err, errlen);
    }
    /* Whether taken or refused, no plain token stays in memory. */
    for (size_t i = 0; i < json_object_array_length(tokens); i++) {
        json_object *item = json_object_array_get_idx(tokens, i), *token;
        if (json_object_is_type(item, json_type_object) &&
            json_object_object_get_ex(item, "token", &token) &&
            json_object_is_type(token, json_type_string))
            auth_wipe_string(token);
    }
    return rc;
}

/* Read the tokens file @path, which nobody but its owner may read. */
static int auth_read_file(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
    unsigned mode;
    if (startfile_read("auth.tokens_file", path, AUTH_FILE_LIMIT_MIB, out, out_len, &mode, err,
                       errlen) != 0)
        return -1;
    if (mode & 077) {
        explicit_bzero(*out, *out_len);
        free(*out);
        *out = NULL;
        return errbuf_set(err, errlen,
                          "auth.tokens_file: %s: mode %04o lets group or others at the tokens; "
                          "make it readable by its owner only (chmod 600)",
                          path, mode);
    }
    return 0;
}

static int auth_load_file(auth_table *t, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (auth_read_file(path, &text, &len, err, errlen) != 0)
        return -1;
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        explicit_bzero(text, len);
        free(text);
        return errbuf_set(err, errlen, "auth.tokens_file: %s: out of memory", path);
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* A NUL would end the text json-c sees: such a file is refused whole. */
    int nul = memchr(text, '\0', len) != NULL;
    json_object *root = nul ? NULL : json_tokener_parse_ex(tok, text, (int)len);
    const char *why = nul ? "a NUL byte" : json_tokener_error_desc(json_tokener_get_error(tok));
    size_t end = root ? json_tokener_get_parse_end(tok) : 0;
    json_tokener_free(tok);
    while (root && end < len && strchr(" \t\r\n", text[end]))
        end++;
    explicit_bzero(text, len);
    free(text);
    if (!root || end != len) {
        json_object_put(root);
        return errbuf_set(err, errlen, "auth.tokens_file: %s: not valid JSON: %s at byte %zu", path,
                          root ? "trailing characters" : why, end);
    }
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "auth.tokens_file: %s: tokens", path);
    int rc = 0;
    json_object *tokens = NULL;
    if (!json_object_is_type(root, json_type_object) ||
        !json_object_object_get_ex(root, "tokens", &tokens) || json_object_object_length(root) != 1)
        rc = errbuf_set(err, errlen, "auth.tokens_file: %s: expected {\"tokens\": [...]} only",
                        path);
    else
        rc = auth_add_all(t, tokens, prefix, err, errlen);
    json_object_put(root);
    return rc;
}

int auth_load(auth_table *t, json_object *section, char *err, size_t errlen)
{
    if (!json_object_is_type(section, json_type_object))
        return errbuf_set(err, errlen, "auth: expected an object");
    json_object *tokens = NULL, *file = NULL;
    json_object_object_foreach(section, key, value)
    {
        if (strcmp(key, "tokens") == 0)
            tokens = value;
        else if (strcmp(key, "tokens_file") == 0)
            file = value;
        else
            return errbuf_set(err, errlen, "auth.%s: unknown setting (known: tokens, tokens_file)",
                              key);
    }
    if (tokens && auth_add_all(t, tokens, "auth.tokens", err, errlen) != 0)
        return -1;
    if (!file)
        return 0;
    if (!json_object_is_type(file, json_type_string) || json_object_get_string_len(file) == 0 ||
        strlen(json_object_get_string(file)) != (size_t)json_object_get_string_len(file) ||
        json_object_get_string_len(file) > 1000)
        return errbuf_set(err, errlen, "auth.tokens_file: expected the path of a file");
    return auth_load_file(t, json_object_get_string(file), err, errlen);
}

void auth_free(auth_table *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->tokens[i].name);
    if (t->tokens)
        explicit_bzero(t->tokens, t->count * sizeof *t->tokens);
    free(t->tokens);
    t->tokens = NULL;
    t->count = 0;
}

const auth_token *auth_find(const auth_table *t, const char *token, size_t len)
{
    unsigned char digest[SHA256_DIGEST_LEN];
    auth_digest(token, len, digest);
    size_t found = 0, matched = 0;
    for (size_t i = 0; i < t->count; i++) {
        unsigned diff = 0;
        for (size_t j = 0; j < SHA256_DIGEST_LEN; j++)
            diff |= (unsigned)(digest[j] ^ t->tokens[i].digest[j]);
        /* 1 when every byte was equal, computed without a branch; the
         * index is then taken through a mask, so that the loop does the
         * same work whichever entry (if any) matches. */
        size_t equal = (size_t)(((diff - 1u) >> 8) & 1u);
        size_t mask = (size_t)0 - equal;
        found = (found & ~mask) | (i & mask);
        matched |= equal;
    }
    explicit_bzero(digest, sizeof digest);
    return matched ? &t->tokens[found] : NULL;
}

int auth_role_allows(auth_role role, const char *method)
{
    if (role == AUTH_ROLE_WRITE)
        return 1;
    return role == AUTH_ROLE_READ && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
}

const char *auth_role_name(auth_role role)
{
    return role == AUTH_ROLE_WRITE ? "write" : "read";
}

int auth_is_open(const char *method, const char *path)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return 0;
    return strcmp(path, "/health") == 0 || strcmp(path, "/") == 0 || strcmp(path, "/ui") == 0 ||
           strncmp(path, "/ui/", 4) == 0;
}

auth_verdict auth_decide(const auth_table *t, const char *method, const char *path,
                         const char *authorization, const auth_token **who)
{
    *who = NULL;
    int open = auth_is_open(method, path);
    if (!authorization)
        return open ? AUTH_OPEN : AUTH_MISSING;
    /* RFC 7235: the scheme is case-insensitive, then one or more spaces. */
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return open ? AUTH_OPEN : AUTH_MALFORMED;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    if (!*token)
        return open ? AUTH_OPEN : AUTH_MALFORMED;
    *who = auth_find(t, token, strlen(token));
    if (!*who)
        /* An open path answers as if no token had come: a monitor with an
         * old token still sees whether the services are up. */
        return open ? AUTH_OPEN : AUTH_UNKNOWN;
    if (open || auth_role_allows((*who)->role, method))
        return AUTH_ALLOWED;
    return AUTH_FORBIDDEN;
}

int auth_is_loopback(const char *address)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, address, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, address, a) != 1)
        return -1;
    static const unsigned char loopback[16] = {[15] = 1};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(a, loopback, 16) == 0)
        return 1;
    return memcmp(a, mapped, 12) == 0 && a[12] == 127;
}

int auth_check_exposure(const auth_table *t, const char *address, char *err, size_t errlen)
{
    /* Without a token anyone who reaches the port may do anything: only
     * the machine itself may reach it then. */
    if (t->count > 0 || auth_is_loopback(address) == 1)
        return 0;
    return errbuf_set(err, errlen,
                      "listen.address \"%s\" is not a loopback address (127.0.0.0/8, ::1) and no "
                      "token is configured: anyone who can reach the port could submit and delete "
                      "jobs; add tokens under auth.tokens or auth.tokens_file (docs/http-api.adoc, "
                      "\"Access control\") or listen on 127.0.0.1",
                      address);
}
