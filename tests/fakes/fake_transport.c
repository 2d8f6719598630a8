/* fake_transport.c: an in-memory bucket behind the transport seam (see
 * fake_transport.h). */
#include "fake_transport.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* Pieces in which a GET body reaches the sink and a PUT body is read. */
#define FAKE_CHUNK 65536

/* S3's largest page. */
#define FAKE_PAGE_MAX 1000

typedef struct fake_object {
    char *key;
    unsigned char *data;
    size_t len;
    int64_t mtime; /* µs, whole seconds */
} fake_object;

struct fake_transport {
    transport base; /* first: see transport.h */
    fault_plan *plan;
    pthread_mutex_t lock; /* guards what follows */
    fake_object *objects; /* sorted by key (strcmp: byte order, as S3) */
    size_t count, cap;
    int64_t clock_us; /* 0: the wall clock */
};

static void *fake_alloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (!q) {
        fprintf(stderr, "fake transport: out of memory\n");
        abort();
    }
    return q;
}

/* The index of @key, or where it would go (*found false). Lock held. */
static size_t fake_find(const fake_transport *fake, const char *key, bool *found)
{
    size_t lo = 0, hi = fake->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(fake->objects[mid].key, key);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Takes @data. Lock held. */
static void fake_store(fake_transport *fake, const char *key, unsigned char *data, size_t len)
{
    int64_t now = fake->clock_us ? fake->clock_us : clock_wall_us();
    now -= now % 1000000;
    bool found;
    size_t i = fake_find(fake, key, &found);
    if (found) {
        free(fake->objects[i].data);
    } else {
        if (fake->count == fake->cap) {
            fake->cap = fake->cap ? fake->cap * 2 : 64;
            fake->objects = fake_alloc(fake->objects, fake->cap * sizeof *fake->objects);
        }
        memmove(&fake->objects[i + 1], &fake->objects[i],
                (fake->count - i) * sizeof *fake->objects);
        fake->count++;
        fake->objects[i].key = fake_alloc(NULL, strlen(key) + 1);
        strcpy(fake->objects[i].key, key);
    }
    fake->objects[i].data = data;
    fake->objects[i].len = len;
    fake->objects[i].mtime = now;
}

/* ---- faults ------------------------------------------------------------- */

static void fake_fail(transport_outcome *outcome, int kind)
{
    struct {
        int kind;
        transport_result result;
        int status;
        const char *code, *message;
    } const table[] = {
        {FAKE_S3_500, TRANSPORT_TRANSIENT, 500, "InternalError",
         "We encountered an internal error"},
        {FAKE_S3_503, TRANSPORT_TRANSIENT, 503, "ServiceUnavailable", "Please try again"},
        {FAKE_S3_SLOWDOWN, TRANSPORT_TRANSIENT, 503, "SlowDown", "Please reduce your request rate"},
        {FAKE_S3_429, TRANSPORT_TRANSIENT, 429, "TooManyRequests", "Too many requests"},
        {FAKE_S3_400, TRANSPORT_PERMANENT, 400, "InvalidRequest", "Invalid request"},
        {FAKE_S3_403, TRANSPORT_DENIED, 403, "AccessDenied", "Access Denied"},
        {FAKE_S3_404, TRANSPORT_NOT_FOUND, 404, "NoSuchKey", "The specified key does not exist"},
        {FAKE_S3_NO_BUCKET, TRANSPORT_NOT_FOUND, 404, "NoSuchBucket", "The bucket does not exist"},
        {FAKE_S3_RESET, TRANSPORT_TRANSIENT, 0, "", "connection reset by peer"},
        {FAKE_S3_TIMEOUT, TRANSPORT_TRANSIENT, 0, "", "timed out"},
        {FAKE_S3_REFUSED, TRANSPORT_UNREACHABLE, 0, "", "connection refused"},
    };
    if (kind == 0)
        kind = FAKE_S3_500;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (table[i].kind != kind)
            continue;
        *outcome = (transport_outcome){.result = table[i].result, .http_status = table[i].status};
        snprintf(outcome->code, sizeof outcome->code, "%s", table[i].code);
        if (table[i].status) {
            snprintf(outcome->message, sizeof outcome->message, "%s", table[i].message);
            snprintf(outcome->detail, sizeof outcome->detail, "%d %s: %s (fault injected)",
                     table[i].status, table[i].code, table[i].message);
        } else {
            snprintf(outcome->detail, sizeof outcome->detail, "%s (fault injected)",
                     table[i].message);
        }
        return;
    }
    fprintf(stderr, "fake transport: unknown fault kind %d\n", kind);
    abort();
}

static void fake_not_found(transport_outcome *outcome, const char *key, bool body)
{
    *outcome = (transport_outcome){.result = TRANSPORT_NOT_FOUND, .http_status = 404};
    if (body) { /* HEAD has no body, so no code */
        snprintf(outcome->code, sizeof outcome->code, "NoSuchKey");
        snprintf(outcome->message, sizeof outcome->message, "The specified key does not exist");
    }
    snprintf(outcome->detail, sizeof outcome->detail, "404 NoSuchKey (key %s)", key);
}

static void fake_aborted(transport_outcome *outcome, const char *what)
{
    *outcome = (transport_outcome){.result = TRANSPORT_ABORTED};
    snprintf(outcome->detail, sizeof outcome->detail, "stopped by the %s", what);
}

/* ---- requests ----------------------------------------------------------- */

static void fake_put(fake_transport *fake, transport_request *req)
{
    size_t len = (size_t)req->put.size;
    unsigned char *data = fake_alloc(NULL, len);
    for (size_t done = 0; done < len;) {
        size_t want = len - done < FAKE_CHUNK ? len - done : FAKE_CHUNK;
        ssize_t n = req->put.read(req->put.userdata, done, data + done, want);
        if (n <= 0 || (size_t)n > want) {
            free(data);
            fake_aborted(&req->outcome, "body reader");
            return;
        }
        done += (size_t)n;
    }
    pthread_mutex_lock(&fake->lock);
    fake_store(fake, req->key, data, len);
    pthread_mutex_unlock(&fake->lock);
}

/* @cut: deliver only the first half, then fail as a reset connection. */
static void fake_get(fake_transport *fake, transport_request *req, bool cut)
{
    pthread_mutex_lock(&fake->lock);
    bool found;
    size_t i = fake_find(fake, req->key, &found);
    size_t len = found ? fake->objects[i].len : 0;
    unsigned char *data = found ? fake_alloc(NULL, len) : NULL;
    if (found)
        memcpy(data, fake->objects[i].data, len);
    pthread_mutex_unlock(&fake->lock);
    if (!found) {
        fake_not_found(&req->outcome, req->key, true);
        return;
    }
    size_t end = cut ? len / 2 : len;
    for (size_t done = 0; done < end;) {
        size_t piece = end - done < FAKE_CHUNK ? end - done : FAKE_CHUNK;
        if (req->get.sink(req->get.userdata, data + done, piece) != 0) {
            fake_aborted(&req->outcome, "sink");
            break;
        }
        done += piece;
    }
    if (cut && req->outcome.result == TRANSPORT_OK)
        fake_fail(&req->outcome, FAKE_S3_RESET);
    free(data);
}

static void fake_head(fake_transport *fake, transport_request *req)
{
    pthread_mutex_lock(&fake->lock);
    bool found;
    size_t i = fake_find(fake, req->key, &found);
    if (found) {
        req->head.size = fake->objects[i].len;
        req->head.mtime = fake->objects[i].mtime;
    }
    pthread_mutex_unlock(&fake->lock);
    if (!found)
        fake_not_found(&req->outcome, req->key, false);
}

static void fake_delete(fake_transport *fake, transport_request *req)
{
    pthread_mutex_lock(&fake->lock);
    bool found;
    size_t i = fake_find(fake, req->key, &found);
    if (found) {
        free(fake->objects[i].key);
        free(fake->objects[i].data);
        memmove(&fake->objects[i], &fake->objects[i + 1],
                (fake->count - i - 1) * sizeof *fake->objects);
        fake->count--;
    }
    pthread_mutex_unlock(&fake->lock);
}

/* One entry of a listing page: a key, or a common prefix (@size unused). */
typedef struct fake_entry {
    char *name;
    bool is_prefix;
    uint64_t size;
    int64_t mtime;
} fake_entry;

static char *fake_strndup(const char *s, size_t n)
{
    char *out = fake_alloc(NULL, n + 1);
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* ListObjects (version 1): keys under the prefix after the marker; with a
 * delimiter, keys with the delimiter after the prefix roll up into their
 * common prefix, which counts as one entry. */
static void fake_list(fake_transport *fake, transport_request *req)
{
    const char *prefix = req->list.prefix ? req->list.prefix : "";
    const char *marker = req->list.marker ? req->list.marker : "";
    const char *delim = req->list.delimiter && *req->list.delimiter ? req->list.delimiter : NULL;
    size_t prefix_len = strlen(prefix);
    unsigned max = req->list.max_keys == 0 || req->list.max_keys > FAKE_PAGE_MAX
                       ? FAKE_PAGE_MAX
                       : req->list.max_keys;
    fake_entry *page = fake_alloc(NULL, max * sizeof *page);
    size_t n = 0;
    bool truncated = false;
    pthread_mutex_lock(&fake->lock);
    bool found;
    size_t i = *marker ? fake_find(fake, marker, &found) : 0;
    if (*marker && found)
        i++;
    for (; i < fake->count; i++) {
        const fake_object *o = &fake->objects[i];
        if (strncmp(o->key, prefix, prefix_len) != 0) {
            if (strcmp(o->key, prefix) > 0)
                break; /* past every key with the prefix */
            continue;
        }
        const char *cut = delim ? strstr(o->key + prefix_len, delim) : NULL;
        size_t name_len = cut ? (size_t)(cut - o->key) + strlen(delim) : strlen(o->key);
        if (cut && n > 0 && page[n - 1].is_prefix && strlen(page[n - 1].name) == name_len &&
            strncmp(page[n - 1].name, o->key, name_len) == 0)
            continue; /* rolled up into the prefix just listed */
        if (n == max) {
            truncated = true;
            break;
        }
        page[n++] = (fake_entry){.name = fake_strndup(o->key, name_len),
                                 .is_prefix = cut != NULL,
                                 .size = o->len,
                                 .mtime = o->mtime};
    }
    pthread_mutex_unlock(&fake->lock);
    req->list.truncated = truncated;
    req->list.next_marker[0] = '\0';
    if (truncated && delim && n > 0)
        snprintf(req->list.next_marker, sizeof req->list.next_marker, "%s", page[n - 1].name);
    for (size_t k = 0; k < n; k++) {
        int rc =
            page[k].is_prefix
                ? (req->list.on_prefix ? req->list.on_prefix(req->list.userdata, page[k].name) : 0)
                : req->list.on_key(req->list.userdata, page[k].name, page[k].size, page[k].mtime);
        if (rc != 0) {
            fake_aborted(&req->outcome, "listing callback");
            break;
        }
    }
    for (size_t k = 0; k < n; k++)
        free(page[k].name);
    free(page);
}

static void fake_run(transport *t, transport_request *reqs, size_t n)
{
    fake_transport *fake = (fake_transport *)t;
    static const char *const ops[] = {
        [TRANSPORT_PUT] = "s3.put",       [TRANSPORT_GET] = "s3.get",
        [TRANSPORT_HEAD] = "s3.head",     [TRANSPORT_LIST] = "s3.list",
        [TRANSPORT_DELETE] = "s3.delete", [TRANSPORT_MPU_CREATE] = "s3.mpu",
        [TRANSPORT_MPU_PART] = "s3.mpu",  [TRANSPORT_MPU_COMPLETE] = "s3.mpu",
        [TRANSPORT_MPU_ABORT] = "s3.mpu", [TRANSPORT_MPU_LIST] = "s3.mpu",
    };
    for (size_t i = 0; i < n; i++) {
        transport_request *req = &reqs[i];
        req->outcome = (transport_outcome){.result = TRANSPORT_OK};
        const fault_rule *rule = fault_check(fake->plan, ops[req->op]);
        bool cut = rule && rule->kind == FAKE_S3_CUT;
        if (rule && !(cut && req->op == TRANSPORT_GET)) {
            fake_fail(&req->outcome, cut ? FAKE_S3_RESET : rule->kind);
            continue;
        }
        switch (req->op) {
        case TRANSPORT_PUT:
            fake_put(fake, req);
            break;
        case TRANSPORT_GET:
            fake_get(fake, req, cut);
            break;
        case TRANSPORT_HEAD:
            fake_head(fake, req);
            break;
        case TRANSPORT_LIST:
            fake_list(fake, req);
            break;
        case TRANSPORT_DELETE:
            fake_delete(fake, req);
            break;
        default:
            /* multipart: not announced in caps yet */
            req->outcome.result = TRANSPORT_PERMANENT;
            break;
        }
    }
}

static void fake_close(transport *t)
{
    fake_transport *fake = (fake_transport *)t;
    for (size_t i = 0; i < fake->count; i++) {
        free(fake->objects[i].key);
        free(fake->objects[i].data);
    }
    free(fake->objects);
    pthread_mutex_destroy(&fake->lock);
    free(fake);
}

static const transport_vtable fake_vtable = {.name = "fake", .run = fake_run, .close = fake_close};

fake_transport *fake_transport_new(fault_plan *plan)
{
    fake_transport *fake = fake_alloc(NULL, sizeof *fake);
    *fake = (fake_transport){.plan = plan};
    fake->base = (transport){.vt = &fake_vtable, .endpoint = "fake-s3", .bucket = "fake-bucket"};
    if (pthread_mutex_init(&fake->lock, NULL) != 0)
        abort();
    return fake;
}

transport *fake_transport_base(fake_transport *fake)
{
    return &fake->base;
}

void fake_transport_set_clock(fake_transport *fake, int64_t us)
{
    pthread_mutex_lock(&fake->lock);
    fake->clock_us = us;
    pthread_mutex_unlock(&fake->lock);
}

void fake_transport_seed(fake_transport *fake, const char *key, const void *data, size_t len)
{
    unsigned char *copy = fake_alloc(NULL, len);
    if (len)
        memcpy(copy, data, len);
    pthread_mutex_lock(&fake->lock);
    fake_store(fake, key, copy, len);
    pthread_mutex_unlock(&fake->lock);
}

bool fake_transport_exists(fake_transport *fake, const char *key)
{
    return fake_transport_mtime(fake, key) >= 0;
}

unsigned char *fake_transport_bytes(fake_transport *fake, const char *key, size_t *len)
{
    pthread_mutex_lock(&fake->lock);
    bool found;
    size_t i = fake_find(fake, key, &found);
    unsigned char *copy = NULL;
    if (found) {
        *len = fake->objects[i].len;
        copy = fake_alloc(NULL, *len);
        memcpy(copy, fake->objects[i].data, *len);
    }
    pthread_mutex_unlock(&fake->lock);
    return copy;
}

int64_t fake_transport_mtime(fake_transport *fake, const char *key)
{
    pthread_mutex_lock(&fake->lock);
    bool found;
    size_t i = fake_find(fake, key, &found);
    int64_t mtime = found ? fake->objects[i].mtime : -1;
    pthread_mutex_unlock(&fake->lock);
    return mtime;
}

size_t fake_transport_count(fake_transport *fake, const char *prefix)
{
    size_t len = prefix ? strlen(prefix) : 0, count = 0;
    pthread_mutex_lock(&fake->lock);
    for (size_t i = 0; i < fake->count; i++)
        if (strncmp(fake->objects[i].key, prefix ? prefix : "", len) == 0)
            count++;
    pthread_mutex_unlock(&fake->lock);
    return count;
}
