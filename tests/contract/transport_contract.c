/* The transport seam's contract cases (transport_contract.h). */
#include "transport_contract.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "async_platform.h"
#include "clock.h"

/* Every character the project allows in names. */
#define TC_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"

#define TC_MIB   ((size_t)1 << 20)
#define TC_ETAGS 3 /* parts of the multipart cases */

typedef struct tc_fixture {
    const transport_contract_factory *factory;
    transport *t;
    /* "acp-contract-<32 hex>/Seg.2_x-Y/": several segments, a random top. */
    char prefix[128];
} tc_fixture;

/* ---- helpers -------------------------------------------------------------- */

static void tc_key(const tc_fixture *f, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s%s", f->prefix, name);
    assert_true(n > 0 && (size_t)n < size);
}

static const char *tc_result_name(transport_result result)
{
    static const char *const names[] = {"OK",        "NOT_FOUND", "DENIED",    "UNREACHABLE",
                                        "TRANSIENT", "PERMANENT", "NO_MEMORY", "ABORTED"};
    return (unsigned)result < sizeof names / sizeof names[0] ? names[result] : "(not set)";
}

/* The request's outcome is @want; the failure names the request and what
 * the transport said. */
static void tc_expect(const transport_request *req, transport_result want, const char *what)
{
    if (req->outcome.result != want)
        fail_msg("%s: %s, expected %s (HTTP %d, %s)", what, tc_result_name(req->outcome.result),
                 tc_result_name(want), req->outcome.http_status, req->outcome.detail);
}

/* Bytes that differ from one offset to the next, so that a misplaced piece
 * shows. */
static unsigned char *tc_pattern(size_t len, unsigned seed)
{
    unsigned char *data = malloc(len ? len : 1);
    assert_non_null(data);
    uint32_t x = 2463534242u ^ seed;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (unsigned char)x;
    }
    return data;
}

/* A PUT body served in odd pieces, never more than asked for. */
typedef struct tc_body {
    const unsigned char *data;
    size_t len;
    unsigned calls;
    bool out_of_range; /* a read asked for bytes past the end */
    bool stop;         /* answer -1 */
} tc_body;

static ssize_t tc_read(void *userdata, uint64_t offset, void *buf, size_t len)
{
    static const size_t pieces[] = {3, 4093, 777, 65521, 1};
    tc_body *b = userdata;
    if (b->stop)
        return -1;
    if (offset > b->len || len > b->len - offset) {
        b->out_of_range = true;
        return -1;
    }
    size_t piece = pieces[b->calls++ % (sizeof pieces / sizeof pieces[0])];
    size_t n = len < piece ? len : piece;
    memcpy(buf, b->data + offset, n);
    return (ssize_t)n;
}

typedef struct tc_bytes {
    unsigned char *data;
    size_t len;
    bool stop; /* answer non-zero */
} tc_bytes;

static int tc_sink(void *userdata, const void *data, size_t len)
{
    tc_bytes *b = userdata;
    if (b->stop)
        return 1;
    unsigned char *grown = realloc(b->data, b->len + len + 1);
    if (!grown)
        return 1;
    memcpy(grown + b->len, data, len);
    b->data = grown;
    b->len += len;
    return 0;
}

static transport_request tc_put_request(const char *key, tc_body *body)
{
    return (transport_request){.op = TRANSPORT_PUT,
                               .key = key,
                               .put = {.size = body->len, .read = tc_read, .userdata = body}};
}

static void tc_run1(tc_fixture *f, transport_request *req)
{
    memset(&req->outcome, 0xa5, sizeof req->outcome); /* run() must fill it in */
    transport_run(f->t, req, 1);
}

static void tc_put(tc_fixture *f, const char *key, const void *data, size_t len)
{
    tc_body body = {.data = data, .len = len};
    transport_request req = tc_put_request(key, &body);
    tc_run1(f, &req);
    tc_expect(&req, TRANSPORT_OK, key);
    assert_false(body.out_of_range);
}

/* GET @key: its outcome, and the body in *@got (free got->data). */
static transport_result tc_get(tc_fixture *f, const char *key, tc_bytes *got)
{
    *got = (tc_bytes){0};
    transport_request req = {
        .op = TRANSPORT_GET, .key = key, .get = {.sink = tc_sink, .userdata = got}};
    tc_run1(f, &req);
    return req.outcome.result;
}

static void tc_expect_object(tc_fixture *f, const char *key, const void *data, size_t len)
{
    tc_bytes got;
    transport_result result = tc_get(f, key, &got);
    if (result != TRANSPORT_OK)
        fail_msg("GET %s: %s", key, tc_result_name(result));
    assert_int_equal(got.len, len);
    if (len)
        assert_memory_equal(got.data, data, len);
    free(got.data);
}

static transport_request tc_head(tc_fixture *f, const char *key)
{
    transport_request req = {.op = TRANSPORT_HEAD, .key = key};
    tc_run1(f, &req);
    return req;
}

/* One listing page, kept. */
typedef struct tc_page {
    char names[64][TRANSPORT_KEY_MAX + 1];
    bool is_prefix[64];
    uint64_t sizes[64];
    size_t count;
    size_t stop_after; /* answer non-zero at this entry (0: never) */
} tc_page;

static int tc_page_add(tc_page *p, const char *name, bool is_prefix, uint64_t size)
{
    if (p->count == 64)
        return 1;
    snprintf(p->names[p->count], sizeof p->names[0], "%s", name);
    p->is_prefix[p->count] = is_prefix;
    p->sizes[p->count++] = size;
    return p->stop_after && p->count == p->stop_after;
}

static int tc_on_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
    (void)mtime;
    return tc_page_add(userdata, key, false, size);
}

static int tc_on_prefix(void *userdata, const char *prefix)
{
    return tc_page_add(userdata, prefix, true, 0);
}

static transport_request tc_list(tc_fixture *f, const char *prefix, const char *marker,
                                 const char *delimiter, unsigned max_keys, tc_page *page)
{
    page->count = 0;
    transport_request req = {.op = TRANSPORT_LIST,
                             .list = {.prefix = prefix,
                                      .marker = marker,
                                      .delimiter = delimiter,
                                      .max_keys = max_keys,
                                      .on_key = tc_on_key,
                                      .on_prefix = tc_on_prefix,
                                      .userdata = page}};
    tc_run1(f, &req);
    return req;
}

/* Every entry under @prefix, page by page (@max_keys each), as a caller
 * pages: after NextMarker when the server sent one, else after the last
 * entry. Each page but the last is full and says it is truncated. */
static void tc_list_all(tc_fixture *f, const char *prefix, const char *delimiter, unsigned max_keys,
                        tc_page *all)
{
    char marker[TRANSPORT_KEY_MAX + 1] = "";
    all->count = 0;
    for (int pages = 0;; pages++) {
        assert_true(pages < 64);
        tc_page page = {.count = 0};
        transport_request req =
            tc_list(f, prefix, *marker ? marker : NULL, delimiter, max_keys, &page);
        tc_expect(&req, TRANSPORT_OK, "LIST");
        assert_true(page.count <= max_keys);
        for (size_t i = 0; i < page.count; i++) {
            assert_true(all->count < 64);
            memcpy(all->names[all->count], page.names[i], sizeof page.names[i]);
            all->is_prefix[all->count] = page.is_prefix[i];
            all->sizes[all->count++] = page.sizes[i];
        }
        if (!req.list.truncated)
            return;
        assert_int_equal(page.count, max_keys);
        snprintf(marker, sizeof marker, "%s",
                 *req.list.next_marker ? req.list.next_marker : page.names[page.count - 1]);
    }
}

/* Incomplete uploads under a prefix. */
typedef struct tc_uploads {
    char keys[16][TRANSPORT_KEY_MAX + 1];
    char ids[16][TRANSPORT_UPLOAD_ID_MAX + 1];
    size_t count;
} tc_uploads;

static int tc_on_upload(void *userdata, const char *key, const char *upload_id)
{
    tc_uploads *u = userdata;
    if (u->count == 16)
        return 1;
    snprintf(u->keys[u->count], sizeof u->keys[0], "%s", key);
    snprintf(u->ids[u->count++], sizeof u->ids[0], "%s", upload_id);
    return 0;
}

static transport_request tc_mpu_list(tc_fixture *f, const char *prefix, tc_uploads *out)
{
    out->count = 0;
    transport_request req = {
        .op = TRANSPORT_MPU_LIST,
        .mpu_list = {.prefix = prefix, .on_upload = tc_on_upload, .userdata = out}};
    tc_run1(f, &req);
    return req;
}

static bool tc_lists_upload(tc_fixture *f, const char *key, const char *id)
{
    tc_uploads up;
    transport_request req = tc_mpu_list(f, f->prefix, &up);
    tc_expect(&req, TRANSPORT_OK, "MPU_LIST");
    assert_false(req.mpu_list.truncated);
    for (size_t i = 0; i < up.count; i++)
        if (strcmp(up.keys[i], key) == 0 && strcmp(up.ids[i], id) == 0)
            return true;
    return false;
}

static void tc_mpu_create(tc_fixture *f, const char *key, char *id)
{
    transport_request req = {.op = TRANSPORT_MPU_CREATE, .key = key};
    tc_run1(f, &req);
    tc_expect(&req, TRANSPORT_OK, "MPU_CREATE");
    assert_true(req.mpu_create.upload_id[0] != '\0');
    memcpy(id, req.mpu_create.upload_id, sizeof req.mpu_create.upload_id);
}

static void tc_mpu_part(tc_fixture *f, const char *key, const char *id, unsigned number,
                        const unsigned char *data, size_t len, transport_part *part)
{
    tc_body body = {.data = data, .len = len};
    transport_request req = {
        .op = TRANSPORT_MPU_PART,
        .key = key,
        .mpu_part = {
            .upload_id = id, .number = number, .size = len, .read = tc_read, .userdata = &body}};
    tc_run1(f, &req);
    tc_expect(&req, TRANSPORT_OK, "MPU_PART");
    assert_false(body.out_of_range);
    assert_true(req.mpu_part.etag[0] != '\0');
    part->number = number;
    memcpy(part->etag, req.mpu_part.etag, sizeof part->etag);
}

static transport_request tc_mpu_complete(tc_fixture *f, const char *key, const char *id,
                                         const transport_part *parts, size_t count)
{
    transport_request req = {.op = TRANSPORT_MPU_COMPLETE,
                             .key = key,
                             .mpu_complete = {.upload_id = id, .parts = parts, .count = count}};
    tc_run1(f, &req);
    return req;
}

static transport_request tc_mpu_abort(tc_fixture *f, const char *key, const char *id)
{
    transport_request req = {.op = TRANSPORT_MPU_ABORT, .key = key, .mpu_abort = {.upload_id = id}};
    tc_run1(f, &req);
    return req;
}

/* ---- setup / teardown ------------------------------------------------------ */

static int tc_setup(void **state)
{
    tc_fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->factory = *state;
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    if (acp_job_id_generate(&id) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->prefix, sizeof f->prefix, "acp-contract-%s/Seg.2_x-Y/",
             acp_job_id_format(&id, hex));
    f->t = f->factory->open();
    if (!f->t) {
        fprintf(stderr, "# %s: could not open the transport\n", f->factory->name);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

/* Removes what the case left under its prefix, whatever it did. */
static int tc_teardown(void **state)
{
    tc_fixture *f = *state;
    int rc = 0;
    if (f->t->caps & TRANSPORT_CAPS_MULTIPART) {
        tc_uploads up;
        transport_request req = tc_mpu_list(f, f->prefix, &up);
        for (size_t i = 0; i < up.count; i++) {
            transport_request abort = tc_mpu_abort(f, up.keys[i], up.ids[i]);
            rc |= abort.outcome.result != TRANSPORT_OK;
        }
        rc |= req.outcome.result != TRANSPORT_OK;
    }
    for (int rounds = 0; rounds < 8; rounds++) {
        tc_page page = {.count = 0};
        transport_request req = tc_list(f, f->prefix, NULL, NULL, 64, &page);
        if (req.outcome.result != TRANSPORT_OK || page.count == 0) {
            rc |= req.outcome.result != TRANSPORT_OK;
            break;
        }
        for (size_t i = 0; i < page.count; i++) {
            transport_request del = {.op = TRANSPORT_DELETE, .key = page.names[i]};
            tc_run1(f, &del);
            rc |= del.outcome.result != TRANSPORT_OK;
        }
    }
    if (rc)
        fprintf(stderr, "# %s: could not clean up under %s\n", f->factory->name, f->prefix);
    transport_close(f->t);
    free(f);
    return rc ? -1 : 0;
}

/* ---- cases ------------------------------------------------------------------ */

static void put_get_round_trip(void **state)
{
    tc_fixture *f = *state;
    static const size_t sizes[] = {0, 1, 4093, 300001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char key[TRANSPORT_KEY_MAX + 1];
        char name[64];
        snprintf(name, sizeof name, "size-%zu.bin", sizes[i]);
        tc_key(f, name, key, sizeof key);
        unsigned char *data = tc_pattern(sizes[i], (unsigned)i);
        tc_put(f, key, data, sizes[i]);
        tc_expect_object(f, key, data, sizes[i]);
        free(data);
    }
    /* A PUT of the same key replaces the object. */
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "size-1.bin", key, sizeof key);
    tc_put(f, key, "replaced", 8);
    tc_expect_object(f, key, "replaced", 8);
}

static void every_allowed_character_in_keys(void **state)
{
    tc_fixture *f = *state;
    static const char *const names[] = {TC_NAME_CHARS, "a..b", "-lead", ".dot", "_", "Z/.x/-y_"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char key[TRANSPORT_KEY_MAX + 1];
        tc_key(f, names[i], key, sizeof key);
        tc_put(f, key, names[i], strlen(names[i]));
        tc_expect_object(f, key, names[i], strlen(names[i]));
        transport_request head = tc_head(f, key);
        tc_expect(&head, TRANSPORT_OK, key);
        assert_int_equal(head.head.size, strlen(names[i]));
    }
    tc_page all = {.count = 0};
    tc_list_all(f, f->prefix, NULL, 1000, &all);
    assert_int_equal(all.count, sizeof names / sizeof names[0]);
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, TC_NAME_CHARS, key, sizeof key);
    bool listed = false;
    for (size_t i = 0; i < all.count; i++)
        listed |= strcmp(all.names[i], key) == 0;
    if (!listed)
        fail_msg("%s is not listed", key);
}

static void get_and_head_of_an_absent_key(void **state)
{
    tc_fixture *f = *state;
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "absent", key, sizeof key);
    tc_bytes got;
    transport_result result = tc_get(f, key, &got);
    if (result != TRANSPORT_NOT_FOUND)
        fail_msg("GET of an absent key: %s, expected NOT_FOUND", tc_result_name(result));
    free(got.data);
    transport_request head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_NOT_FOUND, "HEAD of an absent key");
}

static void head_gives_size_and_mtime(void **state)
{
    tc_fixture *f = *state;
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "sized", key, sizeof key);
    unsigned char *data = tc_pattern(12345, 7);
    tc_put(f, key, data, 12345);
    free(data);
    int64_t now = clock_wall_us();
    transport_request head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_OK, "HEAD");
    assert_int_equal(head.head.size, 12345);
    int64_t off = head.head.mtime - now;
    if (off < -60000000 || off > 60000000)
        fail_msg("HEAD mtime %lld µs is %lld s away from the wall clock",
                 (long long)head.head.mtime, (long long)(off / 1000000));
}

/* The keys the listing cases write, in byte order (as S3 lists them). */
static const char *const tc_listed[] = {"0", "A", "a", "b/1", "b/2", "b/3/x", "c-d", "c.d", "c_d"};
#define TC_LISTED (sizeof tc_listed / sizeof tc_listed[0])

static void tc_put_listed(tc_fixture *f)
{
    for (size_t i = 0; i < TC_LISTED; i++) {
        char key[TRANSPORT_KEY_MAX + 1];
        tc_key(f, tc_listed[i], key, sizeof key);
        tc_put(f, key, "0123456789", i + 1); /* sizes 1..9 tell the keys apart */
    }
}

static void list_in_key_order_with_sizes(void **state)
{
    tc_fixture *f = *state;
    tc_put_listed(f);
    tc_page page = {.count = 0};
    transport_request req = tc_list(f, f->prefix, NULL, NULL, 1000, &page);
    tc_expect(&req, TRANSPORT_OK, "LIST");
    assert_false(req.list.truncated);
    assert_int_equal(page.count, TC_LISTED);
    for (size_t i = 0; i < TC_LISTED; i++) {
        char key[TRANSPORT_KEY_MAX + 1];
        tc_key(f, tc_listed[i], key, sizeof key);
        assert_string_equal(page.names[i], key);
        assert_false(page.is_prefix[i]);
        assert_int_equal(page.sizes[i], i + 1);
    }
}

static void list_in_pages_with_markers(void **state)
{
    tc_fixture *f = *state;
    tc_put_listed(f);
    for (unsigned max = 1; max <= 4; max++) {
        tc_page all = {.count = 0};
        tc_list_all(f, f->prefix, NULL, max, &all);
        assert_int_equal(all.count, TC_LISTED);
        for (size_t i = 0; i < TC_LISTED; i++) {
            char key[TRANSPORT_KEY_MAX + 1];
            tc_key(f, tc_listed[i], key, sizeof key);
            assert_string_equal(all.names[i], key);
        }
    }
    /* A marker between keys starts after it. */
    char marker[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "b/2", marker, sizeof marker);
    tc_page page = {.count = 0};
    transport_request req = tc_list(f, f->prefix, marker, NULL, 1000, &page);
    tc_expect(&req, TRANSPORT_OK, "LIST after a marker");
    assert_int_equal(page.count, 4);
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "b/3/x", key, sizeof key);
    assert_string_equal(page.names[0], key);
}

static void list_with_a_delimiter_rolls_up_prefixes(void **state)
{
    tc_fixture *f = *state;
    tc_put_listed(f);
    static const char *const want[] = {"0", "A", "a", "b/", "c-d", "c.d", "c_d"};
    size_t n = sizeof want / sizeof want[0];
    for (unsigned max = 1; max <= 1000; max += 999) {
        tc_page all = {.count = 0};
        tc_list_all(f, f->prefix, "/", max, &all);
        assert_int_equal(all.count, n);
        for (size_t i = 0; i < n; i++) {
            char name[TRANSPORT_KEY_MAX + 1];
            tc_key(f, want[i], name, sizeof name);
            /* Keys and common prefixes come in separate lists: compare as sets. */
            bool found = false;
            for (size_t k = 0; k < all.count && !found; k++)
                found = strcmp(all.names[k], name) == 0 && all.is_prefix[k] == (i == 3);
            if (!found)
                fail_msg("max_keys %u: %s %s not listed", max, i == 3 ? "prefix" : "key", name);
        }
    }
    /* One level down. */
    char sub[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "b/", sub, sizeof sub);
    tc_page page = {.count = 0};
    transport_request req = tc_list(f, sub, NULL, "/", 1000, &page);
    tc_expect(&req, TRANSPORT_OK, "LIST b/");
    assert_int_equal(page.count, 3);
}

static void list_of_an_empty_prefix_and_of_the_bucket(void **state)
{
    tc_fixture *f = *state;
    char empty[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "nothing-here/", empty, sizeof empty);
    tc_page page = {.count = 0};
    transport_request req = tc_list(f, empty, NULL, NULL, 1000, &page);
    tc_expect(&req, TRANSPORT_OK, "LIST of a prefix without keys");
    assert_int_equal(page.count, 0);
    assert_false(req.list.truncated);
    req = tc_list(f, empty, NULL, "/", 1000, &page);
    tc_expect(&req, TRANSPORT_OK, "LIST of a prefix without keys, with a delimiter");
    assert_int_equal(page.count, 0);

    /* The whole bucket (NULL and "" alike): at least the key written here. */
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "k", key, sizeof key);
    tc_put(f, key, "k", 1);
    const char *whole[] = {NULL, ""};
    for (size_t i = 0; i < 2; i++) {
        req = tc_list(f, whole[i], NULL, NULL, 1, &page);
        tc_expect(&req, TRANSPORT_OK, "LIST of the bucket");
        assert_int_equal(page.count, 1);
    }
}

static void delete_of_an_absent_key_succeeds(void **state)
{
    tc_fixture *f = *state;
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "gone", key, sizeof key);
    transport_request del = {.op = TRANSPORT_DELETE, .key = key};
    tc_run1(f, &del);
    tc_expect(&del, TRANSPORT_OK, "DELETE of an absent key");
    tc_put(f, key, "x", 1);
    tc_run1(f, &del);
    tc_expect(&del, TRANSPORT_OK, "DELETE");
    tc_bytes got;
    assert_int_equal(tc_get(f, key, &got), TRANSPORT_NOT_FOUND);
    free(got.data);
    tc_run1(f, &del);
    tc_expect(&del, TRANSPORT_OK, "DELETE again");
}

static void callbacks_stop_requests(void **state)
{
    tc_fixture *f = *state;
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "stopped", key, sizeof key);
    unsigned char *data = tc_pattern(200000, 3);
    tc_put(f, key, data, 200000);

    tc_bytes got = {.stop = true};
    transport_request get = {
        .op = TRANSPORT_GET, .key = key, .get = {.sink = tc_sink, .userdata = &got}};
    tc_run1(f, &get);
    tc_expect(&get, TRANSPORT_ABORTED, "GET with a sink that stops");

    tc_page page = {.stop_after = 1};
    char other[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "stopped-2", other, sizeof other);
    tc_put(f, other, "2", 1);
    transport_request list = tc_list(f, f->prefix, NULL, NULL, 1000, &page);
    tc_expect(&list, TRANSPORT_ABORTED, "LIST with a callback that stops");
    assert_int_equal(page.count, 1);

    /* A body reader that stops: the PUT ends ABORTED and stores nothing. */
    char never[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "never", never, sizeof never);
    tc_body body = {.data = data, .len = 200000, .stop = true};
    transport_request put = tc_put_request(never, &body);
    tc_run1(f, &put);
    tc_expect(&put, TRANSPORT_ABORTED, "PUT with a reader that stops");
    transport_request head = tc_head(f, never);
    tc_expect(&head, TRANSPORT_NOT_FOUND, "HEAD after a stopped PUT");
    free(data);
}

static void every_request_of_a_batch_gets_its_outcome(void **state)
{
    tc_fixture *f = *state;
    enum { N = TRANSPORT_BATCH_MAX + 3 };
    char keys[N][TRANSPORT_KEY_MAX + 1];
    char text[N][16];
    tc_body bodies[N];
    transport_request reqs[N];
    for (size_t i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "batch/%02zu", i);
        tc_key(f, name, keys[i], sizeof keys[i]);
        snprintf(text[i], sizeof text[i], "body %zu", i);
        bodies[i] = (tc_body){.data = (unsigned char *)text[i], .len = strlen(text[i])};
        reqs[i] = tc_put_request(keys[i], &bodies[i]);
        memset(&reqs[i].outcome, 0xa5, sizeof reqs[i].outcome);
    }
    transport_run(f->t, reqs, N);
    for (size_t i = 0; i < N; i++)
        tc_expect(&reqs[i], TRANSPORT_OK, keys[i]);

    /* Mixed: GETs of every key, a GET and a HEAD of absent keys, a HEAD. */
    tc_bytes got[N];
    char absent[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "batch/absent", absent, sizeof absent);
    for (size_t i = 0; i < N; i++) {
        got[i] = (tc_bytes){0};
        reqs[i] = (transport_request){
            .op = TRANSPORT_GET, .key = keys[i], .get = {.sink = tc_sink, .userdata = &got[i]}};
    }
    reqs[3].key = absent;
    reqs[4] = (transport_request){.op = TRANSPORT_HEAD, .key = absent};
    reqs[5] = (transport_request){.op = TRANSPORT_HEAD, .key = keys[5]};
    for (size_t i = 0; i < N; i++)
        memset(&reqs[i].outcome, 0xa5, sizeof reqs[i].outcome);
    transport_run(f->t, reqs, N);
    for (size_t i = 0; i < N; i++) {
        if (i == 3 || i == 4) {
            tc_expect(&reqs[i], TRANSPORT_NOT_FOUND, absent);
        } else if (i == 5) {
            tc_expect(&reqs[i], TRANSPORT_OK, keys[i]);
            assert_int_equal(reqs[i].head.size, strlen(text[i]));
        } else {
            tc_expect(&reqs[i], TRANSPORT_OK, keys[i]);
            assert_int_equal(got[i].len, strlen(text[i]));
            assert_memory_equal(got[i].data, text[i], got[i].len);
        }
        free(got[i].data);
    }
}

/* One thread's share of concurrent_runs_from_several_threads: PUT and GET
 * of keys of its own, checked here (cmocka's asserts belong to the main
 * thread); what went wrong first in @failure. */
#define TC_THREADS       4
#define TC_THREAD_ROUNDS 10

typedef struct tc_worker {
    tc_fixture *f;
    unsigned index;
    char failure[256];
} tc_worker;

static void *tc_worker_main(void *arg)
{
    tc_worker *w = arg;
    for (unsigned round = 0; round < TC_THREAD_ROUNDS && !w->failure[0]; round++) {
        char key[TRANSPORT_KEY_MAX + 1], text[64];
        snprintf(key, sizeof key, "%sthread-%u/%u", w->f->prefix, w->index, round);
        int len = snprintf(text, sizeof text, "thread %u round %u", w->index, round);
        tc_body body = {.data = (const unsigned char *)text, .len = (size_t)len};
        tc_bytes got = {0};
        transport_request reqs[2] = {
            tc_put_request(key, &body),
            {.op = TRANSPORT_GET, .key = key, .get = {.sink = tc_sink, .userdata = &got}},
        };
        transport_run(w->f->t, &reqs[0], 1);
        if (reqs[0].outcome.result == TRANSPORT_OK)
            transport_run(w->f->t, &reqs[1], 1);
        if (reqs[0].outcome.result != TRANSPORT_OK || reqs[1].outcome.result != TRANSPORT_OK)
            snprintf(w->failure, sizeof w->failure, "round %u: PUT %s, GET %s (%.100s %.100s)",
                     round, tc_result_name(reqs[0].outcome.result),
                     tc_result_name(reqs[1].outcome.result), reqs[0].outcome.detail,
                     reqs[1].outcome.detail);
        else if (got.len != (size_t)len || memcmp(got.data, text, got.len) != 0)
            snprintf(w->failure, sizeof w->failure, "round %u: read back %zu other bytes", round,
                     got.len);
        free(got.data);
    }
    return NULL;
}

static void concurrent_runs_from_several_threads(void **state)
{
    tc_fixture *f = *state;
    tc_worker workers[TC_THREADS];
    pthread_t threads[TC_THREADS];
    for (unsigned i = 0; i < TC_THREADS; i++) {
        workers[i] = (tc_worker){.f = f, .index = i};
        assert_int_equal(pthread_create(&threads[i], NULL, tc_worker_main, &workers[i]), 0);
    }
    for (unsigned i = 0; i < TC_THREADS; i++)
        pthread_join(threads[i], NULL);
    for (unsigned i = 0; i < TC_THREADS; i++)
        if (workers[i].failure[0])
            fail_msg("thread %u: %s", i, workers[i].failure);
    tc_page all = {.count = 0};
    tc_list_all(f, f->prefix, NULL, 1000, &all);
    assert_int_equal(all.count, TC_THREADS * TC_THREAD_ROUNDS);
}

/* ---- multipart ------------------------------------------------------------ */

/* Without TRANSPORT_CAPS_MULTIPART, each multipart operation is refused
 * with an outcome (not OK), never a crash. */
static void tc_multipart_refused(tc_fixture *f)
{
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "no-multipart", key, sizeof key);
    transport_part part = {.number = 1, .etag = "\"0\""};
    tc_body body = {.data = (const unsigned char *)"x", .len = 1};
    transport_request reqs[] = {
        {.op = TRANSPORT_MPU_CREATE, .key = key},
        {.op = TRANSPORT_MPU_PART,
         .key = key,
         .mpu_part =
             {.upload_id = "none", .number = 1, .size = 1, .read = tc_read, .userdata = &body}},
        {.op = TRANSPORT_MPU_COMPLETE,
         .key = key,
         .mpu_complete = {.upload_id = "none", .parts = &part, .count = 1}},
        {.op = TRANSPORT_MPU_ABORT, .key = key, .mpu_abort = {.upload_id = "none"}},
        {.op = TRANSPORT_MPU_LIST, .mpu_list = {.prefix = f->prefix, .on_upload = tc_on_upload}},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        tc_run1(f, &reqs[i]);
        if (reqs[i].outcome.result == TRANSPORT_OK || (unsigned)reqs[i].outcome.result > 7)
            fail_msg("multipart op %d without TRANSPORT_CAPS_MULTIPART: %s", (int)reqs[i].op,
                     tc_result_name(reqs[i].outcome.result));
    }
    transport_request head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_NOT_FOUND, "HEAD after refused multipart operations");
}

static void multipart_upload_round_trip(void **state)
{
    tc_fixture *f = *state;
    if (!(f->t->caps & TRANSPORT_CAPS_MULTIPART)) {
        tc_multipart_refused(f);
        return;
    }
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "multi/" TC_NAME_CHARS, key, sizeof key);
    size_t sizes[TC_ETAGS] = {5 * TC_MIB, 5 * TC_MIB, 12347};
    size_t total = sizes[0] + sizes[1] + sizes[2];
    unsigned char *data = tc_pattern(total, 11);
    char id[TRANSPORT_UPLOAD_ID_MAX + 1];
    tc_mpu_create(f, key, id);
    assert_true(tc_lists_upload(f, key, id));
    transport_request head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_NOT_FOUND, "HEAD before the upload completes");
    transport_part parts[TC_ETAGS];
    /* Parts may arrive in any order. */
    tc_mpu_part(f, key, id, 3, data + sizes[0] + sizes[1], sizes[2], &parts[2]);
    tc_mpu_part(f, key, id, 1, data, sizes[0], &parts[0]);
    tc_mpu_part(f, key, id, 2, data + sizes[0], sizes[1], &parts[1]);
    transport_request done = tc_mpu_complete(f, key, id, parts, TC_ETAGS);
    tc_expect(&done, TRANSPORT_OK, "MPU_COMPLETE");
    tc_expect_object(f, key, data, total);
    head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_OK, "HEAD");
    assert_int_equal(head.head.size, total);
    assert_false(tc_lists_upload(f, key, id));
    free(data);
}

static void multipart_abort_removes_the_upload(void **state)
{
    tc_fixture *f = *state;
    if (!(f->t->caps & TRANSPORT_CAPS_MULTIPART)) {
        tc_multipart_refused(f);
        return;
    }
    char key[TRANSPORT_KEY_MAX + 1], other[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "aborted", key, sizeof key);
    tc_key(f, "kept", other, sizeof other);
    char id[TRANSPORT_UPLOAD_ID_MAX + 1], other_id[TRANSPORT_UPLOAD_ID_MAX + 1];
    tc_mpu_create(f, key, id);
    tc_mpu_create(f, other, other_id);
    transport_part part;
    tc_mpu_part(f, key, id, 1, (const unsigned char *)"part", 4, &part);

    tc_uploads up;
    transport_request list = tc_mpu_list(f, f->prefix, &up);
    tc_expect(&list, TRANSPORT_OK, "MPU_LIST");
    assert_int_equal(up.count, 2); /* by key: "aborted" before "kept" */
    assert_string_equal(up.keys[0], key);
    assert_string_equal(up.ids[0], id);
    assert_string_equal(up.keys[1], other);

    transport_request abort = tc_mpu_abort(f, key, id);
    tc_expect(&abort, TRANSPORT_OK, "MPU_ABORT");
    assert_false(tc_lists_upload(f, key, id));
    assert_true(tc_lists_upload(f, other, other_id));
    abort = tc_mpu_abort(f, key, id);
    tc_expect(&abort, TRANSPORT_NOT_FOUND, "MPU_ABORT of an aborted upload");
    transport_request head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_NOT_FOUND, "HEAD after the abort");
}

static void multipart_complete_with_a_wrong_etag_fails(void **state)
{
    tc_fixture *f = *state;
    if (!(f->t->caps & TRANSPORT_CAPS_MULTIPART)) {
        tc_multipart_refused(f);
        return;
    }
    char key[TRANSPORT_KEY_MAX + 1];
    tc_key(f, "wrong-etag", key, sizeof key);
    unsigned char *data = tc_pattern(5 * TC_MIB + 10, 5);
    char id[TRANSPORT_UPLOAD_ID_MAX + 1];
    tc_mpu_create(f, key, id);
    transport_part parts[2];
    tc_mpu_part(f, key, id, 1, data, 5 * TC_MIB, &parts[0]);
    tc_mpu_part(f, key, id, 2, data + 5 * TC_MIB, 10, &parts[1]);
    transport_part wrong[2] = {parts[0], {.number = 2}};
    snprintf(wrong[1].etag, sizeof wrong[1].etag, "\"0123456789abcdef0123456789abcdef\"");
    transport_request done = tc_mpu_complete(f, key, id, wrong, 2);
    if (done.outcome.result == TRANSPORT_OK)
        fail_msg("MPU_COMPLETE with a wrong ETag succeeded");
    assert_false(transport_retryable(done.outcome.result));
    transport_request head = tc_head(f, key);
    tc_expect(&head, TRANSPORT_NOT_FOUND, "HEAD after a refused complete");
    assert_true(tc_lists_upload(f, key, id));
    transport_request abort = tc_mpu_abort(f, key, id);
    tc_expect(&abort, TRANSPORT_OK, "MPU_ABORT after a refused complete");
    assert_false(tc_lists_upload(f, key, id));
    free(data);
}

/* ---- the table --------------------------------------------------------------- */

static const struct {
    const char *name;
    CMUnitTestFunction fn;
} tc_cases[] = {
#define TC_CASE(fn)                                                                                \
    {                                                                                              \
#fn, fn                                                                                    \
    }
    TC_CASE(put_get_round_trip),
    TC_CASE(every_allowed_character_in_keys),
    TC_CASE(get_and_head_of_an_absent_key),
    TC_CASE(head_gives_size_and_mtime),
    TC_CASE(list_in_key_order_with_sizes),
    TC_CASE(list_in_pages_with_markers),
    TC_CASE(list_with_a_delimiter_rolls_up_prefixes),
    TC_CASE(list_of_an_empty_prefix_and_of_the_bucket),
    TC_CASE(delete_of_an_absent_key_succeeds),
    TC_CASE(callbacks_stop_requests),
    TC_CASE(every_request_of_a_batch_gets_its_outcome),
    TC_CASE(concurrent_runs_from_several_threads),
    TC_CASE(multipart_upload_round_trip),
    TC_CASE(multipart_abort_removes_the_upload),
    TC_CASE(multipart_complete_with_a_wrong_etag_fails),
#undef TC_CASE
};
#define TC_CASES (sizeof tc_cases / sizeof tc_cases[0])

struct CMUnitTest *transport_contract_tests(const transport_contract_factory *factories,
                                            size_t factory_count, size_t *count)
{
    *count = factory_count * TC_CASES;
    struct CMUnitTest *tests = calloc(*count ? *count : 1, sizeof *tests);
    assert_non_null(tests);
    for (size_t i = 0; i < factory_count; i++) {
        for (size_t k = 0; k < TC_CASES; k++) {
            struct CMUnitTest *t = &tests[i * TC_CASES + k];
            size_t len = strlen(factories[i].name) + strlen(tc_cases[k].name) + 3;
            char *name = malloc(len);
            assert_non_null(name);
            snprintf(name, len, "%s: %s", factories[i].name, tc_cases[k].name);
            *t = (struct CMUnitTest){.name = name,
                                     .test_func = tc_cases[k].fn,
                                     .setup_func = tc_setup,
                                     .teardown_func = tc_teardown,
                                     .initial_state = (void *)&factories[i]};
        }
    }
    return tests;
}

void transport_contract_free(struct CMUnitTest *tests, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free((char *)tests[i].name);
    free(tests);
}
