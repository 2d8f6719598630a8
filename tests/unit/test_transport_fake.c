/* The transport contract (tests/contract/transport_contract.c) on the
 * in-memory fake, the same cases tests/integration/test_transport_contract.c
 * runs on the real transports against radosgw; then what only the fake
 * has: its fault operations, its inspection helper and the S3 refusals of
 * multipart upload that the contract does not reach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../contract/transport_contract.h"
#include "fake_transport.h"

static transport *open_fake(void)
{
    return fake_transport_base(fake_transport_new(NULL));
}

static const transport_contract_factory factories[] = {
    {"fake", open_fake},
};

/* ---- the fake's own -------------------------------------------------------- */

typedef struct fx {
    fault_plan plan;
    fake_transport *fake;
    transport *t;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    fault_plan_init(&f->plan);
    f->fake = fake_transport_new(&f->plan);
    f->t = fake_transport_base(f->fake);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    transport_close(f->t);
    fault_plan_destroy(&f->plan);
    free(f);
    return 0;
}

static ssize_t read_zeros(void *userdata, uint64_t offset, void *buf, size_t len)
{
    (void)userdata;
    (void)offset;
    memset(buf, 0, len);
    return (ssize_t)len;
}

static transport_result create(fx *f, const char *key, char *id)
{
    transport_request req = {.op = TRANSPORT_MPU_CREATE, .key = key};
    transport_run(f->t, &req, 1);
    memcpy(id, req.mpu_create.upload_id, sizeof req.mpu_create.upload_id);
    return req.outcome.result;
}

static transport_request part(fx *f, const char *key, const char *id, unsigned number, size_t size)
{
    transport_request req = {
        .op = TRANSPORT_MPU_PART,
        .key = key,
        .mpu_part = {.upload_id = id, .number = number, .size = size, .read = read_zeros}};
    transport_run(f->t, &req, 1);
    return req;
}

static transport_request complete(fx *f, const char *key, const char *id,
                                  const transport_part *parts, size_t count)
{
    transport_request req = {.op = TRANSPORT_MPU_COMPLETE,
                             .key = key,
                             .mpu_complete = {.upload_id = id, .parts = parts, .count = count}};
    transport_run(f->t, &req, 1);
    return req;
}

static transport_request abort_upload(fx *f, const char *key, const char *id)
{
    transport_request req = {.op = TRANSPORT_MPU_ABORT, .key = key, .mpu_abort = {.upload_id = id}};
    transport_run(f->t, &req, 1);
    return req;
}

static transport_part part_of(const transport_request *req)
{
    transport_part p = {.number = req->mpu_part.number};
    memcpy(p.etag, req->mpu_part.etag, sizeof p.etag);
    return p;
}

static void uploads_are_counted_until_completed_or_aborted(void **state)
{
    fx *f = *state;
    char a[TRANSPORT_UPLOAD_ID_MAX + 1], b[TRANSPORT_UPLOAD_ID_MAX + 1];
    assert_int_equal(fake_transport_uploads(f->fake), 0);
    assert_int_equal(create(f, "k/a", a), TRANSPORT_OK);
    assert_int_equal(create(f, "k/b", b), TRANSPORT_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(fake_transport_uploads(f->fake), 2);
    transport_request p = part(f, "k/a", a, 1, 10);
    assert_int_equal(p.outcome.result, TRANSPORT_OK);
    transport_part parts[] = {part_of(&p)};
    assert_int_equal(complete(f, "k/a", a, parts, 1).outcome.result, TRANSPORT_OK);
    assert_int_equal(fake_transport_uploads(f->fake), 1);
    assert_true(fake_transport_exists(f->fake, "k/a"));
    assert_int_equal(abort_upload(f, "k/b", b).outcome.result, TRANSPORT_OK);
    assert_int_equal(fake_transport_uploads(f->fake), 0);
    assert_false(fake_transport_exists(f->fake, "k/b"));
    /* Gone for every operation, as S3 answers. */
    transport_request late = part(f, "k/b", b, 2, 1);
    assert_int_equal(late.outcome.result, TRANSPORT_NOT_FOUND);
    assert_string_equal(late.outcome.code, "NoSuchUpload");
    assert_int_equal(complete(f, "k/a", a, parts, 1).outcome.http_status, 404);
    assert_int_equal(abort_upload(f, "k/b", b).outcome.http_status, 404);
    /* An upload is known by key and id together. */
    char c[TRANSPORT_UPLOAD_ID_MAX + 1];
    assert_int_equal(create(f, "k/c", c), TRANSPORT_OK);
    assert_int_equal(part(f, "k/other", c, 1, 1).outcome.result, TRANSPORT_NOT_FOUND);
}

static void complete_refuses_what_s3_refuses(void **state)
{
    fx *f = *state;
    const size_t big = (size_t)5 << 20;
    char id[TRANSPORT_UPLOAD_ID_MAX + 1];
    assert_int_equal(create(f, "big", id), TRANSPORT_OK);
    transport_request p1 = part(f, "big", id, 1, 10), p2 = part(f, "big", id, 2, 10);
    transport_part parts[] = {part_of(&p1), part_of(&p2)};
    struct {
        const transport_part *parts;
        size_t count;
        const char *code;
    } refused[] = {
        {parts, 2, "EntityTooSmall"}, /* part 1 is not the last and has 10 bytes */
        {NULL, 0, "MalformedXML"},
    };
    transport_part reversed[] = {parts[1], parts[0]};
    for (size_t i = 0; i < 2; i++) {
        transport_request req = complete(f, "big", id, refused[i].parts, refused[i].count);
        assert_int_equal(req.outcome.result, TRANSPORT_PERMANENT);
        assert_int_equal(req.outcome.http_status, 400);
        assert_string_equal(req.outcome.code, refused[i].code);
    }
    transport_request req = complete(f, "big", id, reversed, 2);
    assert_string_equal(req.outcome.code, "InvalidPartOrder");
    transport_part missing[] = {{.number = 7}};
    memcpy(missing[0].etag, parts[0].etag, sizeof missing[0].etag);
    req = complete(f, "big", id, missing, 1);
    assert_string_equal(req.outcome.code, "InvalidPart");
    assert_int_equal(part(f, "big", id, 0, 1).outcome.result, TRANSPORT_PERMANENT);
    assert_int_equal(part(f, "big", id, 10001, 1).outcome.result, TRANSPORT_PERMANENT);
    assert_false(fake_transport_exists(f->fake, "big"));
    assert_int_equal(fake_transport_uploads(f->fake), 1);

    /* Part 1 sent again, now 5 MiB: replaces the small one; unquoted ETags
     * are taken as S3 takes them. */
    p1 = part(f, "big", id, 1, big);
    parts[0] = part_of(&p1);
    memmove(parts[1].etag, parts[1].etag + 1, strlen(parts[1].etag) - 2);
    parts[1].etag[strlen(parts[1].etag) - 2] = '\0';
    req = complete(f, "big", id, parts, 2);
    assert_int_equal(req.outcome.result, TRANSPORT_OK);
    size_t len = 0;
    unsigned char *stored = fake_transport_bytes(f->fake, "big", &len);
    assert_non_null(stored);
    assert_int_equal(len, big + 10);
    free(stored);
    assert_int_equal(fake_transport_uploads(f->fake), 0);
}

typedef struct listed {
    char keys[8][16];
    char ids[8][TRANSPORT_UPLOAD_ID_MAX + 1];
    size_t count;
} listed;

static int on_upload(void *userdata, const char *key, const char *upload_id)
{
    listed *l = userdata;
    if (l->count == 8)
        return 1;
    snprintf(l->keys[l->count], sizeof l->keys[0], "%s", key);
    snprintf(l->ids[l->count++], sizeof l->ids[0], "%s", upload_id);
    return 0;
}

static listed list_uploads(fx *f, const char *prefix, const char *key_marker, const char *id_marker)
{
    listed l = {0};
    transport_request req = {.op = TRANSPORT_MPU_LIST,
                             .mpu_list = {.prefix = prefix,
                                          .key_marker = key_marker,
                                          .upload_id_marker = id_marker,
                                          .on_upload = on_upload,
                                          .userdata = &l}};
    transport_run(f->t, &req, 1);
    assert_int_equal(req.outcome.result, TRANSPORT_OK);
    assert_false(req.mpu_list.truncated);
    return l;
}

static void uploads_are_listed_by_key_then_age_after_markers(void **state)
{
    fx *f = *state;
    char ids[4][TRANSPORT_UPLOAD_ID_MAX + 1];
    const char *keys[] = {"p/b", "p/a", "p/b", "q/a"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(create(f, keys[i], ids[i]), TRANSPORT_OK);
    listed all = list_uploads(f, "p/", NULL, NULL);
    assert_int_equal(all.count, 3);
    assert_string_equal(all.keys[0], "p/a");
    assert_string_equal(all.ids[0], ids[1]);
    assert_string_equal(all.ids[1], ids[0]); /* the older upload of p/b first */
    assert_string_equal(all.ids[2], ids[2]);
    assert_int_equal(list_uploads(f, NULL, NULL, NULL).count, 4);
    listed after = list_uploads(f, "p/", "p/a", NULL);
    assert_int_equal(after.count, 2);
    assert_string_equal(after.keys[0], "p/b");
    after = list_uploads(f, "", "p/b", ids[0]);
    assert_int_equal(after.count, 2);
    assert_string_equal(after.ids[0], ids[2]);
    assert_string_equal(after.keys[1], "q/a");
}

static int count_upload(void *userdata, const char *key, const char *upload_id)
{
    (void)key;
    (void)upload_id;
    (*(size_t *)userdata)++;
    return 0;
}

static void uploads_are_listed_in_pages_of_1000(void **state)
{
    fx *f = *state;
    char id[TRANSPORT_UPLOAD_ID_MAX + 1];
    for (int i = 0; i < 1001; i++)
        assert_int_equal(create(f, "many", id), TRANSPORT_OK);
    size_t seen = 0;
    transport_request req = {.op = TRANSPORT_MPU_LIST,
                             .mpu_list = {.on_upload = count_upload, .userdata = &seen}};
    transport_run(f->t, &req, 1);
    assert_int_equal(req.outcome.result, TRANSPORT_OK);
    assert_int_equal(seen, 1000);
    assert_true(req.mpu_list.truncated);
    assert_string_equal(req.mpu_list.next_key_marker, "many");
    assert_string_not_equal(req.mpu_list.next_upload_id_marker, id);
    /* The next page, from the markers: the newest upload. */
    listed rest =
        list_uploads(f, NULL, req.mpu_list.next_key_marker, req.mpu_list.next_upload_id_marker);
    assert_int_equal(rest.count, 1);
    assert_string_equal(rest.ids[0], id);
}

static void multipart_faults_have_their_own_operations(void **state)
{
    fx *f = *state;
    static const char *const ops[] = {"s3.mpu_create", "s3.mpu_part", "s3.mpu_complete",
                                      "s3.mpu_abort", "s3.mpu_list"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        /* Upload u with its part 1 (to complete) and upload v (to abort). */
        char u[TRANSPORT_UPLOAD_ID_MAX + 1], v[TRANSPORT_UPLOAD_ID_MAX + 1],
            w[TRANSPORT_UPLOAD_ID_MAX + 1];
        assert_int_equal(create(f, "u", u), TRANSPORT_OK);
        assert_int_equal(create(f, "v", v), TRANSPORT_OK);
        transport_request p1 = part(f, "u", u, 1, 1);
        transport_part parts[] = {part_of(&p1)};
        fault_plan_reset(&f->plan);
        fault_plan_add(&f->plan, (fault_rule){.op = ops[i], .error = -1, .kind = FAKE_S3_SLOWDOWN});
        listed l = {0};
        transport_request list = {.op = TRANSPORT_MPU_LIST,
                                  .mpu_list = {.on_upload = on_upload, .userdata = &l}};
        transport_result results[] = {
            create(f, "w", w),
            part(f, "u", u, 2, 1).outcome.result,
            complete(f, "u", u, parts, 1).outcome.result,
            abort_upload(f, "v", v).outcome.result,
            (transport_run(f->t, &list, 1), list.outcome.result),
        };
        /* Only the operation named fails, as a 503 SlowDown: retryably. */
        for (size_t k = 0; k < sizeof results / sizeof results[0]; k++) {
            assert_int_equal(fault_calls(&f->plan, ops[k]), 1);
            if (results[k] != (k == i ? TRANSPORT_TRANSIENT : TRANSPORT_OK))
                fail_msg("fault on %s: %s ended with %d", ops[i], ops[k], (int)results[k]);
        }
        fault_plan_reset(&f->plan);
        while (fake_transport_uploads(f->fake) > 0) {
            listed left = list_uploads(f, NULL, NULL, NULL);
            assert_int_equal(abort_upload(f, left.keys[0], left.ids[0]).outcome.result,
                             TRANSPORT_OK);
        }
    }
}

static void status_429_is_permanent(void **state)
{
    fx *f = *state;
    fault_plan_add(&f->plan,
                   (fault_rule){.op = "s3.head", .nth = 1, .error = -1, .kind = FAKE_S3_429});
    transport_request req = {.op = TRANSPORT_HEAD, .key = "x"};
    transport_run(f->t, &req, 1);
    assert_int_equal(req.outcome.http_status, 429);
    assert_int_equal(req.outcome.result, TRANSPORT_PERMANENT);
    assert_false(transport_retryable(req.outcome.result));
}

int main(void)
{
    size_t count;
    struct CMUnitTest *contract =
        transport_contract_tests(factories, sizeof factories / sizeof factories[0], &count);
    static const struct CMUnitTest own[] = {
        cmocka_unit_test_setup_teardown(uploads_are_counted_until_completed_or_aborted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(complete_refuses_what_s3_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(uploads_are_listed_by_key_then_age_after_markers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(uploads_are_listed_in_pages_of_1000, setup, teardown),
        cmocka_unit_test_setup_teardown(multipart_faults_have_their_own_operations, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(status_429_is_permanent, setup, teardown),
    };
    size_t own_count = sizeof own / sizeof own[0];
    struct CMUnitTest *tests = calloc(count + own_count, sizeof *tests);
    if (!tests)
        return 1;
    memcpy(tests, contract, count * sizeof *tests);
    memcpy(tests + count, own, sizeof own);
    int failed = _cmocka_run_group_tests("transport_fake", tests, count + own_count, NULL, NULL);
    free(tests);
    transport_contract_free(contract, count);
    return failed;
}
