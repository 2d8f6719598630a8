/* The later life of results on the fakes: acp_expire_job and acp_delete_job
 * with a fault at each backend step in turn, and the pruner. After each
 * case the job is where a user can see and finish it: its old state, or
 * the operation done, or (after an error) a state that repeating the call
 * completes; never a workspace that nobody can delete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_platform.h"
#include "retention.h"

#define DAY_US ((int64_t)86400 * 1000000)

/* A complete job, then the workers held: from here on the test's calls are
 * the only ones the fault plan counts. */
static acp_job_id complete_job(fake_platform *fp, const char *config)
{
    acp_job_id id = fake_platform_submit_ok(fp, config);
    assert_true(fake_platform_wait(fp, &id, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_idle(fp));
    assert_true(fake_platform_hold(fp));
    return id;
}

static bool has(fake_platform *fp, const acp_job_id *id, const char *name)
{
    return fake_platform_has_object(fp, id, name);
}

/* ---- a fault at every step of expire and delete ------------------------- */

typedef enum action { EXPIRE, DELETE } action;
static const char *const action_names[] = {"acp_expire_job", "acp_delete_job"};

enum pass { PASS_TRANSIENT, PASS_S3_DENIED, PASS_PG_AFTER, PASS_COUNT };
static const char *const pass_names[] = {"transient", "S3 403", "pg applied, answer lost"};

static const char *const retention_ops[] = {
    "pg.get", "pg.touch", "pg.expire_begin", "pg.delete_begin", "pg.tx_end", "pg.delete_expired",
    "s3.put", "s3.get",   "s3.head",         "s3.list",         "s3.delete",
};

static bool op_is(const char *op, const char *backend)
{
    return op && strncmp(op, backend, strlen(backend)) == 0;
}

static bool add_step_rules(fault_plan *plan, unsigned k, enum pass pass, const char *op)
{
    if (pass == PASS_S3_DENIED && !op_is(op, "s3."))
        return false;
    if (pass == PASS_PG_AFTER && !op_is(op, "pg."))
        return false;
    for (size_t i = 0; i < sizeof retention_ops / sizeof *retention_ops; i++) {
        fault_rule r = {.op = retention_ops[i], .step = k};
        if (op_is(retention_ops[i], "pg.")) {
            r.error = ACP_EDB;
            r.kind = pass == PASS_PG_AFTER ? FAKE_STORE_FAULT_AFTER : 0;
        } else {
            r.error = ACP_ESTORAGE;
            r.kind = pass == PASS_S3_DENIED ? FAKE_S3_403 : FAKE_S3_500;
        }
        fault_plan_add(plan, r);
    }
    return true;
}

static int act(fake_platform *fp, action a, const acp_job_id *id)
{
    return a == EXPIRE ? acp_expire_job(fp->p, id) : acp_delete_job(fp->p, id);
}

/* The job as before the call: its row and its whole workspace. */
static bool intact(fake_platform *fp, const acp_job_id *id, acp_job_status row_status)
{
    return row_status == ACP_STATUS_COMPLETE && has(fp, id, ".workspace") &&
           has(fp, id, ".complete") && !has(fp, id, ".expired") && has(fp, id, "result.txt") &&
           has(fp, id, "input-config");
}

/* The call's work done, as a user sees it. */
static bool done(fake_platform *fp, action a, const acp_job_id *id, bool row, acp_job_status st)
{
    if (a == DELETE)
        return !row && fake_platform_object_count(fp, id) == 0;
    return row && st == ACP_STATUS_EXPIRED && has(fp, id, ".workspace") &&
           has(fp, id, ".expired") && !has(fp, id, "result.txt") && !has(fp, id, "input-config");
}

/* What the failed or successful call left: one of the states a user can
 * tell and act on. */
static void check_left(fake_platform *fp, action a, const acp_job_id *id, int rc, bool untouched)
{
    store_job row;
    bool has_row = fake_store_peek(fp->store, id, &row) == 0;
    acp_job_status st = has_row ? row.status : ACP_STATUS_QUEUED;
    if (has_row)
        store_job_free(&row);
    bool is_intact = has_row && intact(fp, id, st);
    bool is_done = done(fp, a, id, has_row, st);
    print_message("#     -> rc %d, %s, %zu object(s)%s%s\n", rc,
                  has_row ? acp_job_status_name(st) : "no row", fake_platform_object_count(fp, id),
                  is_intact ? ", intact" : "", is_done ? ", done" : "");
    if (rc == 0)
        assert_true(is_done);
    /* Without its row a workspace is another service's to everyone: none
     * may be left behind. */
    if (!has_row)
        assert_int_equal(fake_platform_object_count(fp, id), 0);
    /* The flags agree with the row: an expired row shows ".expired" (or
     * another service would take it for one it took over), a complete one
     * ".complete" and no ".expired". */
    if (has_row && st == ACP_STATUS_EXPIRED)
        assert_true(has(fp, id, ".expired"));
    if (has_row && st != ACP_STATUS_EXPIRED)
        assert_int_equal(st, ACP_STATUS_COMPLETE);
    bool kept_to_repeat = a == DELETE && rc != 0;
    if (has_row && st == ACP_STATUS_COMPLETE && !kept_to_repeat) {
        assert_true(has(fp, id, ".complete"));
        assert_false(has(fp, id, ".expired"));
    }
    /* A failure before anything was removed leaves the job as it was; one
     * later (a wipe cut short, a delete whose row is kept so that it can
     * be repeated: docs/guide.adoc) may have removed results, and
     * repeating the call finishes it (below). */
    if (rc != 0 && untouched)
        assert_true(is_intact);
}

static unsigned count_steps(action a)
{
    fake_platform fp;
    fake_platform_start(&fp, NULL);
    char config[64];
    snprintf(config, sizeof config, "{\"retention\":%d,\"count\":true}", (int)a);
    acp_job_id id = complete_job(&fp, config);
    fault_plan_reset(&fp.plan);
    assert_int_equal(act(&fp, a, &id), 0);
    unsigned n = fault_calls(&fp.plan, NULL);
    check_left(&fp, a, &id, 0, false);
    fake_platform_stop(&fp);
    print_message("# %s of a complete job: %u steps\n", action_names[a], n);
    return n;
}

static void each_step_fails(action a)
{
    unsigned n = count_steps(a);
    assert_true(n >= 4);
    const char **ops = calloc(n + 1, sizeof *ops);
    assert_non_null(ops);
    for (int pass = 0; pass < PASS_COUNT; pass++) {
        for (unsigned k = 1; k <= n; k++) {
            fake_platform fp;
            fake_platform_start(&fp, NULL);
            char config[64];
            snprintf(config, sizeof config, "{\"retention\":%d,\"pass\":%d,\"k\":%u}", (int)a, pass,
                     k);
            acp_job_id id = complete_job(&fp, config);
            fault_plan_reset(&fp.plan);
            if (!add_step_rules(&fp.plan, k, (enum pass)pass, ops[k])) {
                fake_platform_stop(&fp);
                continue;
            }
            int rc = act(&fp, a, &id);
            pthread_mutex_lock(&fp.plan.lock);
            unsigned failed_step = fp.plan.failed_step;
            const char *failed_op = fp.plan.failed_op;
            pthread_mutex_unlock(&fp.plan.lock);
            if (failed_step != k)
                fail_msg("step %u of %u: no rule for its operation", k, n);
            if (pass == PASS_TRANSIENT)
                ops[k] = failed_op;
            print_message("# %s step %u/%u: %s fails, %s\n", action_names[a], k, n, failed_op,
                          pass_names[pass]);
            /* Nothing is removed before the first DELETE (a failing one
             * fails before its effect). */
            bool untouched = true;
            for (unsigned i = 1; i <= k; i++)
                untouched = untouched && strcmp(ops[i], "s3.delete") != 0;
            check_left(&fp, a, &id, rc, untouched);
            /* Repeating the call with the backends back finishes it (a
             * commit applied whose answer was lost: nothing left to do). */
            fault_plan_reset(&fp.plan);
            if (rc != 0) {
                int again = act(&fp, a, &id);
                if (again != 0 && !(a == DELETE && again == ACP_ENOTFOUND))
                    fail_msg("repeating %s: %s", action_names[a], acp_last_error());
                check_left(&fp, a, &id, 0, false);
            }
            fake_platform_stop(&fp);
        }
    }
    free(ops);
}

static void expire_with_a_fault_at_each_step(void **state)
{
    (void)state;
    each_step_fails(EXPIRE);
}

static void delete_with_a_fault_at_each_step(void **state)
{
    (void)state;
    each_step_fails(DELETE);
}

/* ---- the pruner --------------------------------------------------------- */

static acp_job_status status_of(fake_platform *fp, const acp_job_id *id)
{
    store_job row;
    assert_int_equal(fake_store_peek(fp->store, id, &row), 0);
    acp_job_status st = row.status;
    store_job_free(&row);
    return st;
}

static void the_pruner_expires_only_old_complete_jobs(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, NULL);
    unsigned days = fp.config.expiration_days;
    /* The pruner's cutoff is the wall clock less expiration_days, and the
     * store writes last_accessed with its own clock: old jobs are made on a
     * store clock set back beyond expiration_days (before any call: it
     * never goes back once read), then brought to the present. */
    int64_t back = (int64_t)(days + 1) * DAY_US;
    fake_store_advance(fp.store, -back);
    acp_job_id old1 = fake_platform_submit_ok(&fp, "{\"prune\":\"old 1\"}");
    acp_job_id old2 = fake_platform_submit_ok(&fp, "{\"prune\":\"old 2\"}");
    assert_true(fake_platform_wait(&fp, &old1, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_wait(&fp, &old2, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_idle(&fp));
    /* An old job still queued: its message was refused, and no maintenance
     * pass publishes it again here. Of the lowest priority, so that the
     * recent job's doorbell (which claims the best due job of the queue)
     * takes the recent one. */
    fault_plan_reset(&fp.plan);
    fault_plan_add(
        &fp.plan,
        (fault_rule){.op = "amqp.publish", .error = ACP_EBROKER, .kind = FAKE_BROKER_PUBLISH_NACK});
    const char *old_config = "{\"prune\":\"old, queued\"}";
    acp_job_id old_queued;
    assert_int_equal(acp_job_id_from_config(&old_queued, old_config), 0);
    acp_submission low;
    assert_int_equal(acp_submission_init(&low, ACP_SUBMISSION_VERSION), 0);
    low.config = old_config;
    low.priority = ACP_PRIORITY_MIN;
    assert_int_equal(acp_submit(fp.p, FAKE_PLATFORM_QUEUE, &low, NULL), 0);
    fault_plan_reset(&fp.plan);
    fake_store_advance(fp.store, back);
    acp_job_id recent = fake_platform_submit_ok(&fp, "{\"prune\":\"recent\"}");
    assert_true(fake_platform_wait(&fp, &recent, ACP_STATUS_COMPLETE));
    assert_true(fake_platform_idle(&fp));
    assert_true(fake_platform_hold(&fp));
    assert_int_equal(status_of(&fp, &old_queued), ACP_STATUS_QUEUED);

    /* The first old job (in id order, as the pruner goes) cannot be
     * expired: logged, and the pass goes on to the other. */
    const acp_job_id *first = memcmp(&old1, &old2, sizeof old1) < 0 ? &old1 : &old2;
    const acp_job_id *second = first == &old1 ? &old2 : &old1;
    fault_plan_reset(&fp.plan);
    fault_plan_add(&fp.plan, (fault_rule){.op = "pg.expire_begin", .nth = 1, .error = ACP_EDB});
    size_t expired = 99;
    assert_int_equal(retention_prune(fp.p, &expired), ACP_ESTORAGE);
    assert_int_equal(expired, 1);
    char hex[ACP_JOB_ID_STRLEN], line[64];
    snprintf(line, sizeof line, "pruner: job %s: ", acp_job_id_format(first, hex));
    assert_true(fake_platform_logged(line));
    assert_int_equal(status_of(&fp, first), ACP_STATUS_COMPLETE);
    assert_true(has(&fp, first, "result.txt"));
    assert_int_equal(status_of(&fp, second), ACP_STATUS_EXPIRED);
    assert_false(has(&fp, second, "result.txt"));
    assert_true(has(&fp, second, ".expired"));
    /* Recent, or not complete: not the pruner's. */
    assert_int_equal(status_of(&fp, &recent), ACP_STATUS_COMPLETE);
    assert_int_equal(status_of(&fp, &old_queued), ACP_STATUS_QUEUED);
    assert_true(has(&fp, &recent, "result.txt"));

    /* The next pass, without the fault, expires the one left. */
    fault_plan_reset(&fp.plan);
    assert_int_equal(retention_prune(fp.p, &expired), 0);
    assert_int_equal(expired, 1);
    assert_int_equal(status_of(&fp, first), ACP_STATUS_EXPIRED);
    assert_false(has(&fp, first, "result.txt"));
    assert_int_equal(status_of(&fp, &recent), ACP_STATUS_COMPLETE);
    assert_int_equal(status_of(&fp, &old_queued), ACP_STATUS_QUEUED);
    acp_stats s = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(fp.p, &s), 0);
    assert_int_equal(s.jobs_expired, 2);
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expire_with_a_fault_at_each_step),
        cmocka_unit_test(delete_with_a_fault_at_each_step),
        cmocka_unit_test(the_pruner_expires_only_old_complete_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
