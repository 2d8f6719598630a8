/* acp_config_validate() (src/config.c) on configurations built from the
 * input: each field is taken from the input, a string either from a short
 * list of realistic values (so that whole configs are often valid and the
 * later checks are reached) or as bytes of the input.
 *
 * Properties: it never crashes and never reads a string past its end (ASan);
 * it returns 0, ACP_EINVAL or ACP_EVERSION, a rejection names a field
 * ("config...."); and every config it accepts satisfies the bounds that
 * include/async_platform.h documents, checked here field by field. */
#include <string.h>

#include <async_platform.h>

#include "fuzz.h"

typedef struct input {
    const uint8_t *p;
    size_t left;
    /* the strings made, released after the run */
    char *owned[64];
    size_t owned_count;
} input;

static unsigned take_byte(input *in)
{
    if (!in->left)
        return 0;
    in->left--;
    return *in->p++;
}

static long long take_int(input *in, long long typical)
{
    unsigned how = take_byte(in);
    switch (how % 4) {
    case 0:
        return typical;
    case 1:
        return (long long)take_byte(in) - 8;
    default: {
        uint32_t v = 0;
        for (int i = 0; i < 4; i++)
            v = v << 8 | take_byte(in);
        return how % 4 == 2 ? (long long)(int32_t)v : (long long)v;
    }
    }
}

static const char *const samples[] = {
    "127.0.0.1",
    "localhost",
    "acp-test",
    "acp",
    "secret",
    "default",
    "heavy",
    "render.v2",
    "/tmp/workspaces",
    "/var/tmp/acp-server",
    "demo",
    "demo/sub",
    "/",
    "",
    " ",
    ".",
    "..",
    "a/../b",
    "a//b",
    "/a/",
    "bucket.with.dots",
    "UPPER",
    "host:80",
    "a",
    "ab",
    "-abc",
    "abc-",
    "x_y",
    "\t\n",
    "0123456789abcdef0123456789abcdef",
    "0123456789abcdef0123456789abcdef0",
};

static const char *take_string(input *in)
{
    unsigned how = take_byte(in);
    if (how < 16)
        return NULL;
    if (how < 200)
        return samples[how % (sizeof samples / sizeof samples[0])];
    size_t n = take_byte(in);
    if (how >= 250)
        n = n * 8; /* reach the length limits */
    if (n > in->left)
        n = in->left;
    if (in->owned_count == sizeof in->owned / sizeof in->owned[0])
        return "";
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, in->p, n);
    s[n] = '\0'; /* an embedded NUL just ends it early */
    in->p += n;
    in->left -= n;
    in->owned[in->owned_count++] = s;
    return s;
}

static int no_create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    *out = NULL;
    return -1;
}

static int blank(const char *s)
{
    return !s || strspn(s, " \t\r\n") == strlen(s);
}

static int name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* Segments separated by '/', none of them "." or "..", none empty inside. */
static int segments_ok(const char *path, int names_only)
{
    size_t len = strlen(path);
    for (size_t i = 0, start = 0; i <= len; i++) {
        if (i < len && path[i] != '/') {
            if (names_only && !name_char(path[i]))
                return 0;
            continue;
        }
        size_t n = i - start;
        if ((n == 0 && start > 0 && i < len) || (n == 1 && path[start] == '.') ||
            (n == 2 && path[start] == '.' && path[start + 1] == '.'))
            return 0;
        start = i + 1;
    }
    return 1;
}

static int bucket_ok(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int alnum = (b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9');
        if (!alnum && ((b[i] != '.' && b[i] != '-') || i == 0 || i == n - 1))
            return 0;
    }
    return 1;
}

static int queue_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n < 1 || n > ACP_QUEUE_ID_MAX || !strcmp(id, ".") || !strcmp(id, ".."))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char(id[i]))
            return 0;
    return 1;
}

#define IN(v, lo, hi) ((long long)(v) >= (long long)(lo) && (long long)(v) <= (long long)(hi))

/* The documented bounds, as a user reading the header would check them. */
static void check_accepted(const acp_config *c)
{
    FUZZ_CHECK(!blank(c->db.host) && !blank(c->db.dbname) && !blank(c->db.user) &&
                   !blank(c->db.password),
               "accepted without a database host, name, user or password");
    FUZZ_CHECK(IN(c->db.port, 1, 65535), "db.port %d", c->db.port);
    FUZZ_CHECK(IN(c->db.pool_size, 1, ACP_POOL_SIZE_MAX), "db.pool_size %d", c->db.pool_size);
    FUZZ_CHECK(!blank(c->s3.host) && !strchr(c->s3.host, ':') && !strchr(c->s3.host, '/'),
               "s3.host '%s'", c->s3.host ? c->s3.host : "(null)");
    FUZZ_CHECK(IN(c->s3.port, 0, 65535), "s3.port %d", c->s3.port);
    FUZZ_CHECK(c->s3.bucket && bucket_ok(c->s3.bucket), "s3.bucket '%s'",
               c->s3.bucket ? c->s3.bucket : "(null)");
    FUZZ_CHECK(!blank(c->s3.access_key) && !blank(c->s3.secret_key), "accepted without S3 keys");
    FUZZ_CHECK(!c->s3.root_path ||
                   (strlen(c->s3.root_path) <= ACP_PATH_MAX && segments_ok(c->s3.root_path, 1)),
               "s3.root_path '%s'", c->s3.root_path);
    FUZZ_CHECK(c->queues && c->queue_count >= 1, "accepted without queues");
    for (size_t i = 0; i < c->queue_count; i++) {
        const acp_queue_config *q = &c->queues[i];
        FUZZ_CHECK(q->version == ACP_QUEUE_CONFIG_VERSION, "queues[%zu].version %u", i, q->version);
        FUZZ_CHECK(queue_id_ok(q->id), "queues[%zu].id '%s'", i, q->id ? q->id : "(null)");
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(c->queues[j].id, q->id) != 0, "duplicate queue id '%s'", q->id);
        FUZZ_CHECK(!blank(q->host) && !blank(q->user) && !blank(q->password),
                   "queues[%zu] accepted without host, user or password", i);
        FUZZ_CHECK(IN(q->port, 1, 65535), "queues[%zu].port %d", i, q->port);
        FUZZ_CHECK(IN(q->workers, ACP_WORKERS_MIN, ACP_WORKERS_MAX), "queues[%zu].workers %d", i,
                   q->workers);
        FUZZ_CHECK(q->message_ack_timeout >= ACP_MESSAGE_ACK_TIMEOUT_MIN,
                   "queues[%zu].message_ack_timeout %u", i, q->message_ack_timeout);
    }
    const char *w = c->workspace_root; /* NULL: acp_init's default */
    FUZZ_CHECK(!w || (w[0] == '/' && strspn(w, "/") < strlen(w) && strlen(w) <= ACP_PATH_MAX &&
                      segments_ok(w + 1, 0)),
               "workspace_root '%s'", w ? w : "(null)");
    for (const char *p = w; p && *p; p++)
        FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f, "workspace_root has a control byte");
    FUZZ_CHECK(IN(c->expiration_days, 1, ACP_EXPIRATION_DAYS_MAX), "expiration_days %u",
               c->expiration_days);
    FUZZ_CHECK(IN(c->prune_interval, 1, 31536000), "prune_interval %u", c->prune_interval);
    FUZZ_CHECK(c->executor_factory &&
                   c->executor_factory->version == ACP_EXECUTOR_FACTORY_VERSION &&
                   c->executor_factory->create,
               "accepted without a usable executor factory");
    FUZZ_CHECK(IN(c->lease_seconds, 3, 86400), "lease_seconds %u", c->lease_seconds);
    FUZZ_CHECK(c->redispatch_seconds >= 1, "redispatch_seconds %u", c->redispatch_seconds);
    FUZZ_CHECK(IN(c->log_level, ACP_LOG_DEBUG, ACP_LOG_ERROR), "log_level %d", c->log_level);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size, {NULL}, 0};
    acp_config c;
    acp_config_init(&c, ACP_CONFIG_VERSION);
    acp_queue_config queues[4];
    acp_executor_factory factory;
    memset(&factory, 0, sizeof factory);
    factory.version = ACP_EXECUTOR_FACTORY_VERSION;
    factory.create = no_create;

    unsigned flags = take_byte(&in);
    if (flags & 1)
        c.version = (unsigned)take_int(&in, ACP_CONFIG_VERSION);
    c.db.host = take_string(&in);
    c.db.port = (int)take_int(&in, 5432);
    c.db.dbname = take_string(&in);
    c.db.user = take_string(&in);
    c.db.password = take_string(&in);
    c.db.pool_size = (int)take_int(&in, 10);
    c.s3.host = take_string(&in);
    c.s3.port = (int)take_int(&in, 80);
    c.s3.https = (int)take_int(&in, 0);
    c.s3.bucket = take_string(&in);
    c.s3.access_key = take_string(&in);
    c.s3.secret_key = take_string(&in);
    if (flags & 2)
        c.s3.root_path = take_string(&in);
    size_t count = take_byte(&in) % 5;
    for (size_t i = 0; i < count; i++) {
        acp_queue_config *q = &queues[i];
        acp_queue_config_init(q, ACP_QUEUE_CONFIG_VERSION);
        if (flags & 4)
            q->version = (unsigned)take_int(&in, ACP_QUEUE_CONFIG_VERSION);
        q->id = take_string(&in);
        q->host = take_string(&in);
        q->port = (int)take_int(&in, 5672);
        q->user = take_string(&in);
        q->password = take_string(&in);
        q->workers = (int)take_int(&in, 5);
        q->message_ack_timeout = (unsigned)take_int(&in, 1800);
    }
    c.queues = count ? queues : (flags & 8 ? queues : NULL);
    c.queue_count = count;
    if (flags & 16)
        c.workspace_root = take_string(&in);
    c.expiration_days = (unsigned)take_int(&in, 30);
    c.prune_interval = (unsigned)take_int(&in, 43200);
    switch (take_byte(&in) % 8) {
    case 0:
        c.executor_factory = NULL;
        break;
    case 1:
        factory.version = (unsigned)take_int(&in, ACP_EXECUTOR_FACTORY_VERSION);
        c.executor_factory = &factory;
        break;
    case 2:
        factory.create = NULL;
        c.executor_factory = &factory;
        break;
    default:
        c.executor_factory = &factory;
    }
    c.lease_seconds = (unsigned)take_int(&in, 60);
    c.redispatch_seconds = (unsigned)take_int(&in, 300);
    c.shutdown_timeout = (unsigned)take_int(&in, 30);
    c.log_level = (acp_log_level)take_int(&in, ACP_LOG_INFO);

    acp_config before;
    memcpy(&before, &c, sizeof c);
    int rc = acp_config_validate(&c);
    FUZZ_CHECK(memcmp(&before, &c, sizeof c) == 0, "acp_config_validate changed the config");
    if (rc == 0) {
        check_accepted(&c);
    } else {
        FUZZ_CHECK(rc == ACP_EINVAL || rc == ACP_EVERSION, "acp_config_validate returned %d", rc);
        FUZZ_CHECK(strncmp(acp_last_error(), "config", 6) == 0,
                   "the error does not name a field: %s", acp_last_error());
    }
    for (size_t i = 0; i < in.owned_count; i++)
        free(in.owned[i]);
    return 0;
}
