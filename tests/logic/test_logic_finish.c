/* A job's path from its delivery to its recorded result, on the fakes: a
 * fault at every backend step of the run, a run that lost its lease, and a
 * job whose process keeps dying. Each case ends where a user would look:
 * the row, the workspace in S3, the statistics and the scratch root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fake_platform.h"
#include "maintenance.h"

#define LEASE_S 30
/* Past any lease taken so far, in the fake store's time. */
#define PAST_LEASE_US ((int64_t)(LEASE_S + 1) * 1000000)

static acp_stats stats_of(fake_platform *fp)
{
    acp_stats s = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(fp->p, &s), 0);
    return s;
}

/* ---- every step of a run fails in turn ---------------------------------- */

/* How step K fails, per pass: the error each backend reports for it. */
enum pass { PASS_TRANSIENT, PASS_S3_DENIED, PASS_PG_AFTER, PASS_COUNT };
static const char *const pass_names[] = {"transient", "S3 403", "pg applied, answer lost"};

/* Every operation a worker calls between asking for a delivery and asking
 * for the next one (a step of another operation would fail nothing, and
 * the test says so). */
static const char *const run_ops[] = {
    "amqp.connect", "amqp.declare", "amqp.consume",    "amqp.cancel",  "amqp.next",
    "amqp.ack",     "pg.claim",     "pg.finish_begin", "pg.finish_tx", "pg.tx_end",
    "s3.put",       "s3.head",      "s3.list",         "s3.delete",
};

static bool op_is(const char *op, const char *backend)
{
    return strncmp(op, backend, strlen(backend)) == 0;
}

/* Rules failing step @k, whichever operation it is, as @pass says; false
 * when the pass has nothing to fail for @op (known from the first pass). */
static bool add_step_rules(fault_plan *plan, unsigned k, enum pass pass, const char *op)
{
    if (pass == PASS_S3_DENIED && !op_is(op, "s3."))
        return false;
    if (pass == PASS_PG_AFTER && !op_is(op, "pg."))
        return false;
    for (size_t i = 0; i < sizeof run_ops / sizeof *run_ops; i++) {
        fault_rule r = {.op = run_ops[i], .step = k};
        if (op_is(run_ops[i], "pg.")) {
            r.error = ACP_EDB;
            r.kind = pass == PASS_PG_AFTER ? FAKE_STORE_FAULT_AFTER : 0;
        } else if (op_is(run_ops[i], "s3.")) {
            r.error = ACP_ESTORAGE;
            r.kind = pass == PASS_S3_DENIED ? FAKE_S3_403 : FAKE_S3_500;
        } else {
            r.error = ACP_EBROKER;
        }
        fault_plan_add(plan, r);
    }
    return true;
}

/* Submit with no faults while the worker is held, then number the steps
 * from its next request for a delivery: with no maintenance thread and
 * the test calling nothing, the worker is the only caller of the
 * backends, so step K is the same call in every run. */
static acp_job_id submit_counted(fake_platform *fp, int pass, unsigned k)
{
    /* A job (an id) of its own for each case: the executor counts runs per
     * job, across platforms. */
    char config[64];
    snprintf(config, sizeof config, "{\"logic\":\"finish\",\"pass\":%d,\"k\":%u}", pass, k);
    assert_true(fake_platform_hold(fp));
    acp_job_id id = fake_platform_submit_ok(fp, config);
    /* Queued, or pushed to the held worker's consumer, unread. */
    assert_int_equal(fake_broker_ready(fp->broker, FAKE_PLATFORM_QUEUE) +
                         fake_broker_unacked(fp->broker, FAKE_PLATFORM_QUEUE),
                     1);
    fault_plan_reset(&fp->plan);
    return id;
}

/* The step count of a clean run: from the delivery up to the worker's
 * next request for one, which is held (not counted), so that N does not
 * depend on how soon the test looks. */
static unsigned count_clean_run(void)
{
    fake_platform fp;
    fake_platform_start(&fp, &(fake_platform_options){.lease_seconds = LEASE_S});
    acp_job_id id = submit_counted(&fp, -1, 0);
    assert_true(fake_platform_release_one(&fp));
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    unsigned n = fault_calls(&fp.plan, NULL);
    print_message("# a clean run: %u steps (s3.put %u, pg %u, amqp.next %u)\n", n,
                  fault_calls(&fp.plan, "s3.put"),
                  fault_calls(&fp.plan, "pg.claim") + fault_calls(&fp.plan, "pg.finish_begin") +
                      fault_calls(&fp.plan, "pg.finish_tx") + fault_calls(&fp.plan, "pg.tx_end"),
                  fault_calls(&fp.plan, "amqp.next"));
    assert_int_equal(fake_platform_runs(&id), 1);
    fake_platform_stop(&fp);
    return n;
}

/* Which call of its operation step @k was, from the first pass's record. */
static unsigned call_index(const char *const *ops, unsigned k)
{
    unsigned n = 0;
    for (unsigned i = 1; i <= k; i++)
        n += strcmp(ops[i], ops[k]) == 0;
    return n;
}

/* What is left after step @k failed (@op, the @nth call of it) and the
 * library recovered: where a user would look. */
static void check_settled(fake_platform *fp, const acp_job_id *id, enum pass pass, const char *op,
                          unsigned nth)
{
    fake_store_row row;
    assert_int_equal(fake_store_peek_row(fp->store, id, &row), 0);
    acp_job_status status = row.job.status;
    bool result = fake_platform_has_object(fp, id, "result.txt");
    bool complete_flag = fake_platform_has_object(fp, id, ".complete");
    bool failed_flag = fake_platform_has_object(fp, id, ".failed");
    acp_stats st = stats_of(fp);
    print_message("#     -> %s, attempts %u, runs %d, result.txt %s, flags%s%s\n",
                  acp_job_status_name(status), row.job.attempts, fake_platform_runs(id),
                  result ? "kept" : "missing", complete_flag ? " .complete" : "",
                  failed_flag ? " .failed" : "");

    /* The run's result is written by PUTs 1 .in-progress, 2 result.txt and
     * 3 .complete. Only a permanent error on the result itself fails the
     * job (docs/guide.adoc, S3 outage); every other fault is outlasted. */
    bool result_denied = pass == PASS_S3_DENIED && strcmp(op, "s3.put") == 0 && nth == 2;
    bool flag_denied = pass == PASS_S3_DENIED && strcmp(op, "s3.put") == 0 && nth == 3;
    if (result_denied) {
        assert_int_equal(status, ACP_STATUS_FAILED);
        assert_non_null(row.job.message);
        if (!strstr(row.job.message, "keeping result 'result.txt'"))
            fail_msg("failure message does not name the cause: %s", row.job.message);
        assert_false(result);
        assert_true(failed_flag);
        assert_false(complete_flag);
        assert_int_equal(st.jobs_failed, 1);
        assert_int_equal(st.jobs_completed, 0);
    } else {
        assert_int_equal(status, ACP_STATUS_COMPLETE);
        assert_true(result);
        assert_int_equal(row.job.output_count, 1);
        assert_string_equal(row.job.outputs[0], "result.txt");
        /* The flag written after the commit is retried as patiently as the
         * results; a permanent error leaves it missing, logged, and the row
         * is the truth (docs/guide.adoc, S3 outage). */
        assert_true(complete_flag != flag_denied);
        if (flag_denied)
            assert_true(fake_platform_logged("setting .complete"));
        assert_false(failed_flag);
        assert_int_equal(st.jobs_completed, 1); /* recorded once */
        assert_int_equal(st.jobs_failed, 0);
    }
    /* The executor runs once whatever fails: a delivery or claim that
     * failed before the claim took effect is redelivered and claimed once.
     * Only a claim applied in the database whose answer was lost counts a
     * second claim: the worker dropped the message as if unclaimed, the
     * redelivery found the job in progress, and the job ran once its lease
     * expired and maintenance requeued it (attempt 2). */
    bool claim_lost = pass == PASS_PG_AFTER && strcmp(op, "pg.claim") == 0;
    assert_int_equal(fake_platform_runs(id), 1);
    assert_int_equal(row.job.attempts, claim_lost ? 2 : 1);
    assert_null(row.lease_owner);
    assert_int_equal(fake_platform_scratch_count(fp), 0);
    fake_store_row_free(&row);
}

static void every_step_of_a_run_fails_in_turn(void **state)
{
    (void)state;
    unsigned n = count_clean_run();
    assert_true(n >= 8);
    const char **ops = calloc(n + 1, sizeof *ops);
    assert_non_null(ops);
    for (int pass = 0; pass < PASS_COUNT; pass++) {
        for (unsigned k = 1; k <= n; k++) {
            fake_platform fp;
            fake_platform_start(&fp, &(fake_platform_options){.lease_seconds = LEASE_S});
            acp_job_id id = submit_counted(&fp, pass, k);
            if (!add_step_rules(&fp.plan, k, (enum pass)pass, ops[k])) {
                fake_platform_stop(&fp);
                continue;
            }
            fake_platform_release(&fp);
            assert_true(fake_platform_idle(&fp)); /* recorded, or given up */
            pthread_mutex_lock(&fp.plan.lock);
            unsigned failed_step = fp.plan.failed_step;
            const char *failed_op = fp.plan.failed_op;
            pthread_mutex_unlock(&fp.plan.lock);
            if (failed_step != k)
                fail_msg("step %u of %u: no rule for its operation (add it to run_ops)", k, n);
            if (pass == PASS_TRANSIENT)
                ops[k] = failed_op;
            print_message("# step %2u/%u: %s (call %u) fails, %s\n", k, n, failed_op,
                          call_index(ops, k), pass_names[pass]);
            /* Recovery as the library does it: the backends are back, leases
             * run out, a maintenance pass requeues what nobody holds. */
            fault_plan_reset(&fp.plan);
            fake_store_advance(fp.store, PAST_LEASE_US);
            assert_true(maintenance_tick(fp.p, true));
            fake_platform_redispatch(&fp, &id); /* a retry, once its back-off is over */
            assert_true(fake_platform_idle(&fp));
            check_settled(&fp, &id, (enum pass)pass, failed_op, call_index(ops, k));
            fake_platform_stop(&fp);
        }
    }
    free(ops);
}

/* ---- a run that lost its lease ---------------------------------------- */

static void a_run_that_lost_its_lease_records_nothing(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, &(fake_platform_options){.workers = 2, .lease_seconds = LEASE_S});
    fake_platform_executor_block(1, 1);
    acp_job_id id = fake_platform_submit_ok(&fp, "{\"logic\":\"lost lease\"}");
    assert_true(fake_platform_executor_wait_blocked(1));

    /* The first run stalls past its lease; another process (a maintenance
     * pass that renews nothing of this one's) requeues the job, and the
     * second worker runs it again. */
    /* A file a dead run left in the workspace (an output it named): the
     * re-run removes it before it runs. */
    char hex[ACP_JOB_ID_STRLEN], key[64];
    snprintf(key, sizeof key, "%s/partial.out", acp_job_id_format(&id, hex));
    fake_transport_seed(fp.s3, key, "half", 4);
    fake_store_advance(fp.store, PAST_LEASE_US);
    assert_true(maintenance_tick(fp.p, false));
    fake_platform_redispatch(&fp, &id); /* once the retry's back-off is over */
    assert_true(fake_platform_wait(&fp, &id, ACP_STATUS_COMPLETE));
    unsigned puts = fault_calls(&fp.plan, "s3.put");
    unsigned deletes = fault_calls(&fp.plan, "s3.delete");
    assert_true(fake_platform_has_object(&fp, &id, ".complete"));

    /* The stalled run wakes up: fenced by the lease, it uploads nothing and
     * records nothing. */
    fake_platform_executor_release();
    assert_true(fake_platform_idle(&fp));
    assert_int_equal(fault_calls(&fp.plan, "s3.put"), puts);
    assert_int_equal(fault_calls(&fp.plan, "s3.delete"), deletes);
    assert_true(fake_platform_logged("lost its lease"));

    assert_int_equal(fake_platform_runs(&id), 2);
    acp_job job;
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.attempts, 2);
    acp_job_clear(&job);
    void *data;
    size_t size;
    assert_int_equal(acp_read_result_buffer(fp.p, &id, "result.txt", 64, &data, &size), 0);
    assert_int_equal(size, strlen("attempt=2\n"));
    assert_memory_equal(data, "attempt=2\n", size);
    acp_free(data);
    assert_false(fake_platform_has_object(&fp, &id, ".failed"));
    acp_result_list results;
    assert_int_equal(acp_get_results(fp.p, &id, &results), 0);
    assert_int_equal(results.count, 1);
    assert_string_equal(results.files[0].name, "result.txt");
    acp_result_list_clear(&results);
    acp_stats st = stats_of(&fp);
    assert_int_equal(st.jobs_completed, 1);
    assert_int_equal(st.jobs_failed, 0);
    assert_int_equal(st.jobs_requeued, 1);
    assert_int_equal(fake_platform_scratch_count(&fp), 0);
    fake_platform_stop(&fp);
}

/* ---- max_attempts ------------------------------------------------------ */

static void a_job_whose_process_keeps_dying_fails_after_max_attempts(void **state)
{
    (void)state;
    const unsigned max_attempts = 3; /* the default */
    fake_platform fp;
    fake_platform_start(
        &fp, &(fake_platform_options){.workers = (int)max_attempts, .lease_seconds = LEASE_S});
    /* Each run stalls, holding its worker, as a dead process holds its
     * lease: nobody renews it and it runs out. */
    fake_platform_executor_block(1, max_attempts);
    acp_job_id id = fake_platform_submit_ok(&fp, "{\"logic\":\"dies\"}");
    for (unsigned run = 1; run <= max_attempts; run++) {
        assert_true(fake_platform_executor_wait_blocked(run));
        fake_store_advance(fp.store, PAST_LEASE_US);
        assert_true(maintenance_tick(fp.p, false));
        fake_platform_redispatch(&fp, &id); /* once the retry's back-off is over */
    }
    acp_job job;
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_int_equal(job.attempts, max_attempts);
    assert_non_null(job.message);
    if (!strstr(job.message, "abandoned: the process running attempt 3 of 3 stopped"))
        fail_msg("unexpected failure message: %s", job.message);
    acp_job_clear(&job);
    assert_true(fake_platform_has_object(&fp, &id, ".failed"));

    /* The stalled runs come back: none of them may record anything. */
    fake_platform_executor_release();
    assert_true(fake_platform_idle(&fp));
    assert_int_equal(fake_platform_runs(&id), (int)max_attempts);
    assert_int_equal(acp_get_job(fp.p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    acp_job_clear(&job);
    assert_false(fake_platform_has_object(&fp, &id, "result.txt"));
    assert_false(fake_platform_has_object(&fp, &id, ".complete"));
    acp_stats st = stats_of(&fp);
    assert_int_equal(st.jobs_completed, 0);
    assert_int_equal(st.jobs_requeued, max_attempts - 1);
    assert_int_equal(fake_platform_scratch_count(&fp), 0);
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_step_of_a_run_fails_in_turn),
        cmocka_unit_test(a_run_that_lost_its_lease_records_nothing),
        cmocka_unit_test(a_job_whose_process_keeps_dying_fails_after_max_attempts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
