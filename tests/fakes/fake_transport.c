/* fake_transport.c: an in-memory bucket behind the transport seam (see
 * fake_transport.h). */
#include "fake_transport.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "md5.h"

/* Pieces in which a GET body reaches the sink and a PUT body is read. */
#define FAKE_CHUNK 65536

/* S3's largest page. */
#define FAKE_PAGE_MAX 1000

/* S3's smallest part but the last, and its part numbers. */
#define FAKE_PART_MIN    ((size_t)5 << 20)
#define FAKE_PART_NUMBER 10000

typedef struct fake_object {
    char *key;
    unsigned char *data;
    size_t len;
    int64_t mtime; /* µs, whole seconds */
} fake_object;

typedef struct fake_part {
    unsigned number;
    unsigned char *data;
    size_t len;
    char etag[TRANSPORT_ETAG_MAX + 1];
} fake_part;

/* An incomplete multipart upload: its parts by ascending number. */
typedef struct fake_upload {
    char *key;
    char id[32]; /* in creation order when compared with strcmp */
    fake_part *parts;
    size_t count, cap;
} fake_upload;

struct fake_transport {
    transport base; /* first: see transport.h */
    fault_plan *plan;
    pthread_mutex_t lock; /* guards what follows */
    fake_object *objects; /* sorted by key (strcmp: byte order, as S3) */
    size_t count, cap;
    int64_t clock_us;     /* 0: the wall clock */
    fake_upload *uploads; /* sorted by key, then id: the order of ListMultipartUploads */
    size_t upload_count, upload_cap;
    unsigned upload_serial; /* ids handed out so far */
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
        {FAKE_S3_429, TRANSPORT_PERMANENT, 429, "TooManyRequests", "Too many requests"},
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

/* A PUT body or a part, read whole; NULL when the reader stopped it. */
static unsigned char *fake_read_body(transport_request *req, size_t len, transport_read_fn read,
                                     void *userdata)
{
    unsigned char *data = fake_alloc(NULL, len);
    for (size_t done = 0; done < len;) {
        size_t want = len - done < FAKE_CHUNK ? len - done : FAKE_CHUNK;
        ssize_t n = read(userdata, done, data + done, want);
        if (n <= 0 || (size_t)n > want) {
            free(data);
            fake_aborted(&req->outcome, "body reader");
            return NULL;
        }
        done += (size_t)n;
    }
    return data;
}

static void fake_put(fake_transport *fake, transport_request *req)
{
    size_t len = (size_t)req->put.size;
    unsigned char *data = fake_read_body(req, len, req->put.read, req->put.userdata);
    if (!data)
        return;
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
        if (cut && *marker) {
            /* A prefix up to the marker was listed on an earlier page (the
             * marker is the NextMarker that named it), as S3 skips it. */
            int cmp = strncmp(o->key, marker, name_len);
            if (cmp < 0 || (cmp == 0 && strlen(marker) >= name_len))
                continue;
        }
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

/* ---- multipart upload ----------------------------------------------------- */

/* A 4xx answer about @key: 404 is NOT_FOUND, the rest permanent. */
static void fake_error(transport_outcome *outcome, int status, const char *code,
                       const char *message, const char *key)
{
    *outcome = (transport_outcome){
        .result = status == 404 ? TRANSPORT_NOT_FOUND : TRANSPORT_PERMANENT,
        .http_status = status,
    };
    snprintf(outcome->code, sizeof outcome->code, "%s", code);
    snprintf(outcome->message, sizeof outcome->message, "%s", message);
    snprintf(outcome->detail, sizeof outcome->detail, "%d %s: %s (key %s)", status, code, message,
             key ? key : "");
}

static void fake_no_upload(transport_outcome *outcome, const char *key)
{
    fake_error(outcome, 404, "NoSuchUpload", "The specified upload does not exist", key);
}

/* Upload @id of @key (S3 knows an upload by both), or NULL. Lock held. */
static fake_upload *fake_upload_find(fake_transport *fake, const char *key, const char *id)
{
    for (size_t i = 0; id && key && i < fake->upload_count; i++)
        if (strcmp(fake->uploads[i].id, id) == 0 && strcmp(fake->uploads[i].key, key) == 0)
            return &fake->uploads[i];
    return NULL;
}

/* Frees @u's contents and takes it out of the list. Lock held. */
static void fake_upload_remove(fake_transport *fake, fake_upload *u)
{
    for (size_t k = 0; k < u->count; k++)
        free(u->parts[k].data);
    free(u->parts);
    free(u->key);
    size_t i = (size_t)(u - fake->uploads);
    memmove(u, u + 1, (fake->upload_count - i - 1) * sizeof *u);
    fake->upload_count--;
}

static void fake_mpu_create(fake_transport *fake, transport_request *req)
{
    pthread_mutex_lock(&fake->lock);
    if (fake->upload_count == fake->upload_cap) {
        fake->upload_cap = fake->upload_cap ? fake->upload_cap * 2 : 16;
        fake->uploads = fake_alloc(fake->uploads, fake->upload_cap * sizeof *fake->uploads);
    }
    /* Ids grow, so a new upload goes after every other one of its key. */
    size_t i = 0;
    while (i < fake->upload_count && strcmp(fake->uploads[i].key, req->key) <= 0)
        i++;
    memmove(&fake->uploads[i + 1], &fake->uploads[i],
            (fake->upload_count - i) * sizeof *fake->uploads);
    fake->upload_count++;
    fake_upload *u = &fake->uploads[i];
    *u = (fake_upload){.key = fake_strndup(req->key, strlen(req->key))};
    snprintf(u->id, sizeof u->id, "fake-upload-%08x", ++fake->upload_serial);
    snprintf(req->mpu_create.upload_id, sizeof req->mpu_create.upload_id, "%s", u->id);
    pthread_mutex_unlock(&fake->lock);
}

/* A part's ETag as S3 gives it: its MD5 in hex, quoted. */
static void fake_etag(const unsigned char *data, size_t len, char *out, size_t size)
{
    md5_ctx ctx;
    unsigned char digest[16];
    md5_init(&ctx);
    md5_update(&ctx, data, len);
    md5_final(&ctx, digest);
    size_t n = (size_t)snprintf(out, size, "\"");
    for (int i = 0; i < 16 && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%02x", digest[i]);
    snprintf(out + n, size - n, "\"");
}

static void fake_mpu_part(fake_transport *fake, transport_request *req)
{
    req->mpu_part.etag[0] = '\0';
    unsigned number = req->mpu_part.number;
    if (number < 1 || number > FAKE_PART_NUMBER) {
        fake_error(&req->outcome, 400, "InvalidArgument",
                   "Part number must be an integer between 1 and 10000", req->key);
        return;
    }
    size_t len = (size_t)req->mpu_part.size;
    unsigned char *data = fake_read_body(req, len, req->mpu_part.read, req->mpu_part.userdata);
    if (!data)
        return;
    fake_part part = {.number = number, .data = data, .len = len};
    fake_etag(data, len, part.etag, sizeof part.etag);
    pthread_mutex_lock(&fake->lock);
    fake_upload *u = fake_upload_find(fake, req->key, req->mpu_part.upload_id);
    if (!u) {
        pthread_mutex_unlock(&fake->lock);
        free(data);
        fake_no_upload(&req->outcome, req->key);
        return;
    }
    size_t k = 0;
    while (k < u->count && u->parts[k].number < number)
        k++;
    if (k < u->count && u->parts[k].number == number) { /* a part sent again replaces it */
        free(u->parts[k].data);
    } else {
        if (u->count == u->cap) {
            u->cap = u->cap ? u->cap * 2 : 8;
            u->parts = fake_alloc(u->parts, u->cap * sizeof *u->parts);
        }
        memmove(&u->parts[k + 1], &u->parts[k], (u->count - k) * sizeof *u->parts);
        u->count++;
    }
    u->parts[k] = part;
    pthread_mutex_unlock(&fake->lock);
    snprintf(req->mpu_part.etag, sizeof req->mpu_part.etag, "%s", part.etag);
}

/* Whether two ETags name the same part (S3 takes them with or without
 * their quotes). */
static bool fake_etag_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la >= 2 && a[0] == '"' && a[la - 1] == '"') {
        a++;
        la -= 2;
    }
    if (lb >= 2 && b[0] == '"' && b[lb - 1] == '"') {
        b++;
        lb -= 2;
    }
    return la == lb && strncmp(a, b, la) == 0;
}

/* The parts listed, in ascending order, with their ETags, every one but the
 * last at least 5 MiB, become the object; parts not listed are dropped. A
 * refused list leaves the upload as it was. */
static void fake_mpu_complete(fake_transport *fake, transport_request *req)
{
    const transport_part *parts = req->mpu_complete.parts;
    size_t count = req->mpu_complete.count;
    pthread_mutex_lock(&fake->lock);
    fake_upload *u = fake_upload_find(fake, req->key, req->mpu_complete.upload_id);
    const char *code = NULL, *message = NULL;
    size_t total = 0;
    if (!u) {
        code = "NoSuchUpload";
    } else if (count == 0 || !parts) {
        code = "MalformedXML";
        message = "The XML you provided was not well-formed or did not validate";
    }
    for (size_t k = 1; !code && k < count; k++) {
        if (parts[k].number <= parts[k - 1].number) {
            code = "InvalidPartOrder";
            message = "The list of parts was not in ascending order";
        }
    }
    for (size_t k = 0; !code && k < count; k++) {
        const fake_part *p = NULL;
        for (size_t j = 0; j < u->count && !p; j++)
            if (u->parts[j].number == parts[k].number)
                p = &u->parts[j];
        if (!p || !fake_etag_equal(p->etag, parts[k].etag)) {
            code = "InvalidPart";
            message = "One or more of the specified parts could not be found";
        } else if (k + 1 < count && p->len < FAKE_PART_MIN) {
            code = "EntityTooSmall";
            message = "Your proposed upload is smaller than the minimum allowed size";
        } else {
            total += p->len;
        }
    }
    if (code) {
        pthread_mutex_unlock(&fake->lock);
        if (!u)
            fake_no_upload(&req->outcome, req->key);
        else
            fake_error(&req->outcome, 400, code, message, req->key);
        return;
    }
    unsigned char *data = fake_alloc(NULL, total);
    size_t done = 0;
    for (size_t k = 0; k < count; k++)
        for (size_t j = 0; j < u->count; j++)
            if (u->parts[j].number == parts[k].number) {
                memcpy(data + done, u->parts[j].data, u->parts[j].len);
                done += u->parts[j].len;
            }
    fake_store(fake, req->key, data, total);
    fake_upload_remove(fake, u);
    pthread_mutex_unlock(&fake->lock);
}

static void fake_mpu_abort(fake_transport *fake, transport_request *req)
{
    pthread_mutex_lock(&fake->lock);
    fake_upload *u = fake_upload_find(fake, req->key, req->mpu_abort.upload_id);
    if (u)
        fake_upload_remove(fake, u);
    pthread_mutex_unlock(&fake->lock);
    if (!u)
        fake_no_upload(&req->outcome, req->key);
}

/* ListMultipartUploads: by key, then by age; after the key marker, or with
 * an upload id marker, after that upload of the key marker. */
static void fake_mpu_list(fake_transport *fake, transport_request *req)
{
    const char *prefix = req->mpu_list.prefix ? req->mpu_list.prefix : "";
    const char *key_marker = req->mpu_list.key_marker ? req->mpu_list.key_marker : "";
    const char *id_marker = req->mpu_list.upload_id_marker ? req->mpu_list.upload_id_marker : "";
    size_t prefix_len = strlen(prefix);
    fake_entry *page = fake_alloc(NULL, FAKE_PAGE_MAX * sizeof *page);
    char(*ids)[32] = fake_alloc(NULL, FAKE_PAGE_MAX * sizeof *ids);
    size_t n = 0;
    bool truncated = false;
    pthread_mutex_lock(&fake->lock);
    for (size_t i = 0; i < fake->upload_count; i++) {
        const fake_upload *u = &fake->uploads[i];
        if (strncmp(u->key, prefix, prefix_len) != 0)
            continue;
        if (*key_marker) {
            int cmp = strcmp(u->key, key_marker);
            if (cmp < 0 || (cmp == 0 && (!*id_marker || strcmp(u->id, id_marker) <= 0)))
                continue;
        }
        if (n == FAKE_PAGE_MAX) {
            truncated = true;
            break;
        }
        page[n].name = fake_strndup(u->key, strlen(u->key));
        memcpy(ids[n++], u->id, sizeof ids[0]);
    }
    pthread_mutex_unlock(&fake->lock);
    req->mpu_list.truncated = truncated;
    req->mpu_list.next_key_marker[0] = '\0';
    req->mpu_list.next_upload_id_marker[0] = '\0';
    if (truncated) {
        snprintf(req->mpu_list.next_key_marker, sizeof req->mpu_list.next_key_marker, "%s",
                 page[n - 1].name);
        snprintf(req->mpu_list.next_upload_id_marker, sizeof req->mpu_list.next_upload_id_marker,
                 "%s", ids[n - 1]);
    }
    for (size_t k = 0; k < n; k++) {
        if (req->mpu_list.on_upload(req->mpu_list.userdata, page[k].name, ids[k]) != 0) {
            fake_aborted(&req->outcome, "listing callback");
            break;
        }
    }
    for (size_t k = 0; k < n; k++)
        free(page[k].name);
    free(page);
    free(ids);
}

static void fake_run(transport *t, transport_request *reqs, size_t n)
{
    fake_transport *fake = (fake_transport *)t;
    static const char *const ops[] = {
        [TRANSPORT_PUT] = "s3.put",
        [TRANSPORT_GET] = "s3.get",
        [TRANSPORT_HEAD] = "s3.head",
        [TRANSPORT_LIST] = "s3.list",
        [TRANSPORT_DELETE] = "s3.delete",
        [TRANSPORT_MPU_CREATE] = "s3.mpu_create",
        [TRANSPORT_MPU_PART] = "s3.mpu_part",
        [TRANSPORT_MPU_COMPLETE] = "s3.mpu_complete",
        [TRANSPORT_MPU_ABORT] = "s3.mpu_abort",
        [TRANSPORT_MPU_LIST] = "s3.mpu_list",
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
        case TRANSPORT_MPU_CREATE:
            fake_mpu_create(fake, req);
            break;
        case TRANSPORT_MPU_PART:
            fake_mpu_part(fake, req);
            break;
        case TRANSPORT_MPU_COMPLETE:
            fake_mpu_complete(fake, req);
            break;
        case TRANSPORT_MPU_ABORT:
            fake_mpu_abort(fake, req);
            break;
        case TRANSPORT_MPU_LIST:
            fake_mpu_list(fake, req);
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
    while (fake->upload_count)
        fake_upload_remove(fake, &fake->uploads[fake->upload_count - 1]);
    free(fake->uploads);
    pthread_mutex_destroy(&fake->lock);
    free(fake);
}

static const transport_vtable fake_vtable = {.name = "fake", .run = fake_run, .close = fake_close};

fake_transport *fake_transport_new(fault_plan *plan)
{
    fake_transport *fake = fake_alloc(NULL, sizeof *fake);
    *fake = (fake_transport){.plan = plan};
    fake->base = (transport){.vt = &fake_vtable,
                             .caps = TRANSPORT_CAPS_MULTIPART,
                             .endpoint = "fake-s3",
                             .bucket = "fake-bucket"};
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

size_t fake_transport_uploads(fake_transport *fake)
{
    pthread_mutex_lock(&fake->lock);
    size_t count = fake->upload_count;
    pthread_mutex_unlock(&fake->lock);
    return count;
}
