/* Two services sharing a bucket, each with its own database (fake store)
 * and broker: service A owns a job, service B may take it over only once it
 * has expired, two claims of one new job never both win, a claim marker
 * left by a dead process does not block the job for ever, and a takeover
 * that fails at any step leaves A's job as it was. Runs are counted per job
 * in this process, A's and B's together.
 *
 * B's S3 calls go to A's fake bucket and so through A's fault plan; B's
 * database and broker calls through B's. Each plan counts only the test
 * thread's calls (fault_plan_only_thread): the workers' polls and runs do
 * not shift the step numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "fake_platform.h"
#include "platform_state.h"

#define INPUT "shared input\n"

typedef struct two_services {
    fake_platform a, b;
} two_services;

static void start_both(two_services *t)
{
    fake_platform_start(&t->a, NULL);
    fake_platform_options o = {.workers = 1, .shared_s3 = t->a.s3};
    fake_platform_start(&t->b, &o);
}

static void stop_both(two_services *t)
{
    fake_platform_stop(&t->b); /* it borrows A's bucket */
    fake_platform_stop(&t->a);
}

static bool has_row(fake_platform *fp, const acp_job_id *id)
{
    store_job row;
    if (fake_store_peek(fp->store, id, &row) != 0)
        return false;
    store_job_free(&row);
    return true;
}

static acp_job get_job(fake_platform *fp, const acp_job_id *id)
{
    acp_job job;
    if (acp_get_job(fp->p, id, &job) != 0)
        fail_msg("acp_get_job: %s", acp_last_error());
    return job;
}

static void expect_seen(fake_platform *fp, const acp_job_id *id, acp_job_status status, int owned)
{
    acp_job job = get_job(fp, id);
    assert_int_equal(job.status, status);
    assert_int_equal(job.owned, owned);
    acp_job_clear(&job);
}

static size_t claim_markers(fake_platform *fp, const acp_job_id *id)
{
    char hex[ACP_JOB_ID_STRLEN], prefix[64];
    snprintf(prefix, sizeof prefix, "%s/.claim-", acp_job_id_format(id, hex));
    return fake_transport_count(fp->s3, prefix);
}

/* A job of A's, complete, then expired when @expire. */
static void job_of_a(two_services *t, const char *config, bool expire, acp_job_id *id)
{
    assert_int_equal(fake_platform_submit(&t->a, config, INPUT, id, NULL), 0);
    assert_true(fake_platform_wait(&t->a, id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(id), 1);
    if (expire && acp_expire_job(t->a.p, id) != 0)
        fail_msg("acp_expire_job: %s", acp_last_error());
}

/* ---- a workspace, byte for byte ------------------------------------------ */

typedef struct snapshot {
    object_list list;
    unsigned char **bytes;
    size_t *len;
} snapshot;

static void snapshot_take(fake_platform *fp, const acp_job_id *id, snapshot *s)
{
    assert_int_equal(objects_list(fp->p->objects, id, &s->list), 0);
    s->bytes = calloc(s->list.count + 1, sizeof *s->bytes);
    s->len = calloc(s->list.count + 1, sizeof *s->len);
    assert_true(s->bytes && s->len);
    char hex[ACP_JOB_ID_STRLEN], key[256];
    acp_job_id_format(id, hex);
    for (size_t i = 0; i < s->list.count; i++) {
        snprintf(key, sizeof key, "%s/%s", hex, s->list.items[i].name);
        s->bytes[i] = fake_transport_bytes(fp->s3, key, &s->len[i]);
        assert_non_null(s->bytes[i]);
    }
}

static void snapshot_free(snapshot *s)
{
    for (size_t i = 0; i < s->list.count; i++)
        free(s->bytes[i]);
    free(s->bytes);
    free(s->len);
    object_list_free(&s->list);
}

static void expect_unchanged(fake_platform *fp, const acp_job_id *id, const snapshot *before)
{
    snapshot now;
    snapshot_take(fp, id, &now);
    assert_int_equal(now.list.count, before->list.count);
    for (size_t i = 0; i < now.list.count; i++) {
        const object_entry *x = &before->list.items[i], *y = &now.list.items[i];
        assert_string_equal(y->name, x->name);
        assert_int_equal(y->mtime, x->mtime);
        assert_int_equal(now.len[i], before->len[i]);
        if (now.len[i])
            assert_memory_equal(now.bytes[i], before->bytes[i], now.len[i]);
    }
    snapshot_free(&now);
}

/* ---- the cases --------------------------------------------------------- */

static void a_job_another_service_owns_is_not_taken(void **state)
{
    (void)state;
    two_services t;
    start_both(&t);
    acp_job_id id;
    const char *config = "{\"logic\":\"owned-by-a\"}";
    job_of_a(&t, config, false, &id);
    snapshot before;
    snapshot_take(&t.a, &id, &before);

    assert_int_equal(fake_platform_submit(&t.b, config, INPUT, &id, NULL), ACP_ECONFLICT);
    assert_non_null(strstr(acp_last_error(), "another service"));
    assert_int_equal(fake_store_row_count(t.b.store), 0);
    assert_int_equal(fake_broker_published(t.b.broker, NULL), 0);
    expect_unchanged(&t.a, &id, &before);
    assert_int_equal(acp_expire_job(t.b.p, &id), ACP_EUNOWNED);
    assert_int_equal(acp_delete_job(t.b.p, &id), ACP_EUNOWNED);
    expect_unchanged(&t.a, &id, &before);
    expect_seen(&t.b, &id, ACP_STATUS_COMPLETE, 0);
    expect_seen(&t.a, &id, ACP_STATUS_COMPLETE, 1);
    assert_int_equal(fake_platform_runs(&id), 1);
    snapshot_free(&before);
    stop_both(&t);
}

static void an_expired_job_is_taken_over_once(void **state)
{
    (void)state;
    two_services t;
    start_both(&t);
    acp_job_id id;
    job_of_a(&t, "{\"logic\":\"taken-over\"}", true, &id);

    assert_int_equal(fake_platform_submit(&t.b, "{\"logic\":\"taken-over\"}", INPUT, &id, NULL), 0);
    assert_true(fake_platform_wait(&t.b, &id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&id), 2);
    assert_int_equal(claim_markers(&t.b, &id), 0);
    /* A's stale row goes on A's next look, which then sees B's job. */
    assert_true(has_row(&t.a, &id));
    expect_seen(&t.a, &id, ACP_STATUS_COMPLETE, 0);
    assert_false(has_row(&t.a, &id));
    assert_int_equal(acp_expire_job(t.a.p, &id), ACP_EUNOWNED);
    expect_seen(&t.b, &id, ACP_STATUS_COMPLETE, 1);
    stop_both(&t);
}

/* ---- two claims at once ------------------------------------------------ */

typedef struct racer {
    fake_platform *fp;
    const char *config;
    pthread_barrier_t *start;
    acp_job_id id;
    int rc;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = fake_platform_submit(r->fp, r->config, INPUT, &r->id, NULL);
    return NULL;
}

static void two_claims_of_a_new_job_never_both_win(void **state)
{
    (void)state;
    two_services t;
    start_both(&t);
    for (int i = 0; i < 20; i++) {
        char config[64];
        snprintf(config, sizeof config, "{\"logic\":\"race\",\"i\":%d}", i);
        size_t published[2] = {fake_broker_published(t.a.broker, NULL),
                               fake_broker_published(t.b.broker, NULL)};
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        racer r[2] = {{&t.a, config, &start, {{0}}, 0}, {&t.b, config, &start, {{0}}, 0}};
        pthread_t th[2];
        for (int k = 0; k < 2; k++)
            assert_int_equal(pthread_create(&th[k], NULL, race, &r[k]), 0);
        for (int k = 0; k < 2; k++)
            pthread_join(th[k], NULL);
        pthread_barrier_destroy(&start);

        print_message("# race %d: A %d, B %d\n", i, r[0].rc, r[1].rc);
        int winner = r[0].rc == 0 ? 0 : 1;
        assert_int_equal(r[winner].rc, 0);
        assert_int_equal(r[1 - winner].rc, ACP_ECONFLICT);
        fake_platform *won = r[winner].fp, *lost = r[1 - winner].fp;
        assert_false(has_row(lost, &r[0].id));
        assert_int_equal(fake_broker_published(lost->broker, NULL), published[1 - winner]);
        assert_true(fake_platform_wait(won, &r[0].id, ACP_STATUS_COMPLETE));
        assert_int_equal(fake_platform_runs(&r[0].id), 1);
        assert_int_equal(claim_markers(won, &r[0].id), 0);
    }
    stop_both(&t);
}

/* ---- claim markers of the dead ------------------------------------------ */

static void seed_marker(fake_platform *fp, const acp_job_id *id, int64_t age_s)
{
    char hex[ACP_JOB_ID_STRLEN], key[128];
    snprintf(key, sizeof key, "%s/.claim-new-0123456789abcdef0123456789abcdef",
             acp_job_id_format(id, hex));
    fake_transport_set_clock(fp->s3, clock_wall_us() - age_s * 1000000);
    fake_transport_seed(fp->s3, key, "", 0);
    fake_transport_set_clock(fp->s3, 0);
}

static void a_stale_claim_marker_is_ignored_and_removed(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, NULL);
    const char *config = "{\"logic\":\"stale-marker\"}";
    acp_job_id id;
    assert_int_equal(acp_job_id_from_config(&id, config), 0);

    /* A live rival (a fresh marker) holds the job off... */
    seed_marker(&fp, &id, 0);
    assert_int_equal(fake_platform_submit(&fp, config, INPUT, &id, NULL), ACP_ECONFLICT);
    assert_false(has_row(&fp, &id));
    assert_int_equal(fake_platform_object_count(&fp, &id), 1);
    assert_int_equal(claim_markers(&fp, &id), 1);

    /* ...a dead one (older than the claim's bound, 60 s) does not. */
    seed_marker(&fp, &id, 120);
    assert_int_equal(fake_platform_submit(&fp, config, INPUT, &id, NULL), 0);
    assert_int_equal(claim_markers(&fp, &id), 0);
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&id), 1);
    fake_platform_stop(&fp);
}

/* ---- a fault at every step of a takeover ------------------------------- */

static void count_from_here(two_services *t)
{
    fake_platform *both[] = {&t->a, &t->b};
    for (int i = 0; i < 2; i++) {
        fault_plan_reset(&both[i]->plan);
        fault_plan_only_thread(&both[i]->plan, true);
    }
}

static void faults_off(two_services *t)
{
    fake_platform *both[] = {&t->a, &t->b};
    for (int i = 0; i < 2; i++) {
        fault_plan_reset(&both[i]->plan);
        fault_plan_only_thread(&both[i]->plan, false);
    }
}

static void takeover_config(char *out, size_t size, int kind, int plan, unsigned k)
{
    snprintf(out, size, "{\"logic\":\"takeover\",\"kind\":%d,\"plan\":%d,\"k\":%u}", kind, plan, k);
}

/* Step @k of plan @which (0: the bucket's, A's; 1: B's database and broker)
 * fails while B takes over A's expired job, S3 and the database failing
 * as @kind says (fake_platform_fail_step_as). */
static void takeover_fails_at(int kind, int which, unsigned k, unsigned n)
{
    two_services t;
    start_both(&t);
    char config[96];
    takeover_config(config, sizeof config, kind, which, k);
    acp_job_id id;
    job_of_a(&t, config, true, &id);
    fault_plan *plan = which ? &t.b.plan : &t.a.plan;
    count_from_here(&t);
    fake_platform_fail_step_as(plan, k, kind);
    int rc = fake_platform_submit(&t.b, config, INPUT, &id, NULL);
    print_message("# takeover, kind %d: %s step %u/%u (%s) failed; B's acp_submit: %d%s%s\n", kind,
                  which ? "B's" : "the bucket's", k, n, plan->failed_op ? plan->failed_op : "none",
                  rc, rc ? ": " : "", rc ? acp_last_error() : "");
    assert_int_equal(plan->failed_step, k);
    faults_off(&t);
    if (rc != 0) {
        /* B keeps nothing; A's expired job is A's, and claimable. */
        assert_false(has_row(&t.b, &id));
        assert_int_equal(fake_broker_published(t.b.broker, NULL), 0);
        assert_int_equal(claim_markers(&t.a, &id), 0);
        assert_true(fake_platform_has_object(&t.a, &id, ".workspace"));
        assert_true(fake_platform_has_object(&t.a, &id, ".expired"));
        expect_seen(&t.a, &id, ACP_STATUS_EXPIRED, 1);
        expect_seen(&t.b, &id, ACP_STATUS_EXPIRED, 0);
        assert_int_equal(fake_platform_submit(&t.b, config, INPUT, &id, NULL), 0);
    }
    fake_platform_redispatch(&t.b, &id);
    assert_true(fake_platform_wait(&t.b, &id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&id), 2);
    expect_seen(&t.a, &id, ACP_STATUS_COMPLETE, 0);
    assert_false(has_row(&t.a, &id));
    stop_both(&t);
}

static void takeover_step_by_step(int kind)
{
    two_services t;
    start_both(&t);
    char config[96];
    takeover_config(config, sizeof config, kind, -1, 0);
    acp_job_id id;
    job_of_a(&t, config, true, &id);
    count_from_here(&t);
    assert_int_equal(fake_platform_submit(&t.b, config, INPUT, &id, NULL), 0);
    unsigned n[2] = {fault_calls(&t.a.plan, NULL), fault_calls(&t.b.plan, NULL)};
    faults_off(&t);
    assert_true(fake_platform_wait(&t.b, &id, ACP_STATUS_COMPLETE));
    stop_both(&t);
    assert_true(n[0] >= 5 && n[1] >= 2);

    for (int which = 0; which < 2; which++)
        for (unsigned k = 1; k <= n[which]; k++)
            takeover_fails_at(kind, which, k, n[which]);
}

static void every_step_of_a_takeover_fails_in_turn(void **state)
{
    (void)state;
    takeover_step_by_step(FAKE_S3_403);
}

/* S3 requests reset (retried), database answers lost after the change. */
static void every_step_of_a_takeover_loses_an_answer_in_turn(void **state)
{
    (void)state;
    takeover_step_by_step(FAKE_STORE_FAULT_AFTER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_job_another_service_owns_is_not_taken),
        cmocka_unit_test(an_expired_job_is_taken_over_once),
        cmocka_unit_test(two_claims_of_a_new_job_never_both_win),
        cmocka_unit_test(a_stale_claim_marker_is_ignored_and_removed),
        cmocka_unit_test(every_step_of_a_takeover_fails_in_turn),
        cmocka_unit_test(every_step_of_a_takeover_loses_an_answer_in_turn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
