/* The fake store (tests/fakes/fake_store.h): the store's contract cases
 * (store_contract.c, which tests/integration/test_store_contract.c runs on
 * PostgreSQL), then what only the fake has: its clock, inspection, fault
 * injection at every operation, and many threads at once. */
#include "store_contract.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_store.h"

#define QUEUE   "fake-q"
#define OWNER   "worker-a"
#define THREADS 4
#define JOBS    50 /* per thread */

static store *fake_open(void)
{
    store *st = NULL;
    if (fake_store_open(&st, NULL) != 0)
        fail_msg("fake_store_open: %s", acp_last_error());
    return st;
}

static void fake_advance(store *st, int64_t seconds)
{
    fake_store_advance(st, seconds * 1000000);
}

static const contract_backend fake_backend = {"fake", fake_open, store_close, fake_advance};

/* ---- helpers ---------------------------------------------------------------- */

static acp_job_id new_job(store *st)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    const char *inputs[] = {"in.txt"};
    assert_int_equal(store_insert(st, &id, QUEUE, "{}", inputs, 1, NULL), 0);
    return id;
}

/* The claim takes the best due job of the queue: the caller expects @id. */
static store_job claim(store *st, const acp_job_id *id, unsigned lease)
{
    store_job job;
    assert_int_equal(store_claim(st, QUEUE, OWNER, lease, &job), 0);
    assert_true(acp_job_id_equal(&job.id, id));
    return job;
}

/* Every field of every listed row, as text, to tell whether anything changed. */
static void snapshot(store *st, const acp_job_id *ids, size_t count, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        fake_store_row row;
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&ids[i], hex);
        if (fake_store_peek_row(st, &ids[i], &row) != 0) {
            used += (size_t)snprintf(out + used, size - used, "%s: none\n", hex);
            continue;
        }
        const store_job *j = &row.job;
        used += (size_t)snprintf(
            out + used, size - used,
            "%s %d %s %s %zu %lld %lld %lld %lld %s %u %ld %s %lld %lld %lld %u %zu %d %d %lld "
            "%u %u %u %u %lld\n",
            hex, (int)j->status, j->queue, j->config ? j->config : "-", j->input_count,
            (long long)j->created, (long long)j->last_accessed, (long long)j->grabbed,
            (long long)j->finished, j->message ? j->message : "-", j->attempts, j->queue_position,
            row.lease_owner ? row.lease_owner : "-", (long long)row.lease_expires,
            (long long)row.dispatched, (long long)row.dispatch_retry, row.dispatch_failures,
            row.job.output_count, (int)row.locked, j->priority, (long long)j->not_before,
            j->max_attempts, j->timeout_seconds, j->backoff_base_ms, j->backoff_max_ms,
            (long long)j->cancel_requested);
        fake_store_row_free(&row);
        assert_true(used < size);
    }
}

/* ---- the clock and inspection --------------------------------------------------- */

static void the_clock_moves_leases_and_peek_shows_the_row(void **state)
{
    (void)state;
    store *st = fake_open();
    int64_t before = fake_store_now(st);
    fake_store_advance(st, 3600 * INT64_C(1000000));
    assert_true(fake_store_now(st) >= before + 3600 * INT64_C(1000000));

    acp_job_id id = new_job(st), missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(fake_store_row_count(st), 1);
    assert_int_equal(store_migrate(st), ACP_EINVAL); /* PostgreSQL's alone */
    assert_non_null(strstr(acp_last_error(), "fake"));
    store_job job;
    assert_int_equal(fake_store_peek(st, &missing, &job), ACP_ENOTFOUND);
    assert_int_equal(fake_store_peek(st, &id, &job), 0);
    assert_true(job.created >= before + 3600 * INT64_C(1000000));
    assert_int_equal(job.queue_position, 0);
    store_job_free(&job);

    uint64_t statements = store_statement_count(st);
    store_job run = claim(st, &id, 10);
    fake_store_row row;
    assert_int_equal(fake_store_peek_row(st, &id, &row), 0);
    assert_string_equal(row.lease_owner, OWNER);
    assert_true(row.lease_expires == run.grabbed + 10 * INT64_C(1000000));
    assert_true(row.dispatched == run.created);
    assert_null(row.job.outputs);
    assert_false(row.locked);
    fake_store_row_free(&row);
    assert_int_equal(store_statement_count(st), statements + 1); /* peeks are not calls */

    /* Ten seconds later the lease has run out. */
    fake_store_advance(st, 10 * INT64_C(1000000) + 1);
    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    store_dispatch_list_free(&list);

    /* A transaction's row shows locked, as committed (claimed again once
     * the retry's back-off, under a second for a first attempt, is over). */
    store_job_free(&run);
    fake_store_advance(st, INT64_C(1000000));
    run = claim(st, &id, 10);
    store_tx *tx;
    acp_job_status recorded;
    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     0);
    const char *outputs[] = {"out.txt"};
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, outputs, NULL, 1, &id), 0);
    assert_int_equal(fake_store_peek_row(st, &id, &row), 0);
    assert_true(row.locked);
    assert_int_equal(row.job.status, ACP_STATUS_IN_PROGRESS);
    fake_store_row_free(&row);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(fake_store_peek_row(st, &id, &row), 0);
    assert_false(row.locked);
    assert_int_equal(row.job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(row.job.output_count, 1);
    assert_string_equal(row.job.outputs[0], "out.txt");
    assert_null(row.lease_owner);
    fake_store_row_free(&row);
    store_job_free(&run);
    store_close(st);
}

/* Calls one after another get later times however fast they come, so jobs
 * keep the order they were submitted in. */
static void jobs_keep_their_submission_order(void **state)
{
    (void)state;
    store *st = fake_open();
    acp_job_id ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = new_job(st);
    int64_t created = 0;
    for (int i = 0; i < 20; i++) {
        store_job job;
        assert_int_equal(store_get(st, &ids[i], &job), 0);
        assert_true(job.created > created);
        assert_int_equal(job.queue_position, i);
        created = job.created;
        store_job_free(&job);
    }
    store_close(st);
}

/* ---- faults ---------------------------------------------------------------------- */

/* The operations, each called so that it would succeed without a fault. */
enum {
    OP_GET,
    OP_TOUCH,
    OP_INSERT,
    OP_REQUEUE,
    OP_MARK_DISPATCHED,
    OP_CLEAR_DISPATCHED,
    OP_DISPATCH_FAILED,
    OP_FAIL_UNDISPATCHABLE,
    OP_CLAIM,
    OP_RETRY,
    OP_CANCEL,
    OP_FINISH,
    OP_RENEW_LEASES,
    OP_REQUEUE_EXPIRED,
    OP_FAIL_ABANDONED,
    OP_TAKE_UNDISPATCHED,
    OP_DELETE_JOB,
    OP_EXPIRE_BEGIN,
    OP_DELETE_BEGIN,
    OP_FINISH_BEGIN,
    OP_FINISH_TX,
    OP_TX_END,
    OP_DELETE_EXPIRED,
    OP_LIST_EXPIRABLE,
    OP_LIST,
    OP_EXISTS,
    OP_RUNS_ALIVE,
    OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "pg.get",
    "pg.touch",
    "pg.insert",
    "pg.requeue",
    "pg.mark_dispatched",
    "pg.clear_dispatched",
    "pg.dispatch_failed",
    "pg.fail_undispatchable",
    "pg.claim",
    "pg.retry",
    "pg.cancel",
    "pg.finish",
    "pg.renew_leases",
    "pg.requeue_expired",
    "pg.fail_abandoned",
    "pg.take_undispatched",
    "pg.delete_job",
    "pg.expire_begin",
    "pg.delete_begin",
    "pg.finish_begin",
    "pg.finish_tx",
    "pg.tx_end",
    "pg.delete_expired",
    "pg.list_expirable",
    "pg.list",
    "pg.exists",
    "pg.runs_alive",
};

/* Rows for every operation: 0 queued, 1 in-progress (lease expired),
 * 2 complete, 3 expired, 4 not inserted, 5 in-progress (lease running). */
#define ROWS 6

static void fault_rows(store *st, acp_job_id ids[ROWS], store_job *running)
{
    for (int i = 0; i < ROWS; i++)
        assert_int_equal(acp_job_id_generate(&ids[i]), 0);
    const char *inputs[] = {"in.txt"};
    /* Each claimed as soon as inserted (the claim takes the best due job of
     * the queue), the queued one last. */
    store_job job;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(store_insert(st, &ids[i], QUEUE, "{}", inputs, 1, NULL), 0);
        job = claim(st, &ids[i], i == 1 ? 1 : 60);
        store_job_free(&job);
    }
    assert_int_equal(store_finish(st, &ids[2], OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
    assert_int_equal(store_finish(st, &ids[3], OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
    store_tx *tx;
    assert_int_equal(store_expire_begin(st, &ids[3], 0, &tx, NULL), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(store_insert(st, &ids[5], QUEUE, "{}", inputs, 1, NULL), 0);
    *running = claim(st, &ids[5], 600);
    assert_int_equal(store_insert(st, &ids[0], QUEUE, "{}", inputs, 1, NULL), 0);
    fake_store_advance(st, 2 * INT64_C(1000000));
}

/* Calls operation @op; a transaction the call needs is begun first (and
 * ended after) without the plan's rules applying to it. */
static int call_op(store *st, fault_plan *plan, int op, const acp_job_id ids[ROWS],
                   const store_job *running)
{
    const char *inputs[] = {"x"};
    const char *queues[] = {QUEUE};
    store_job job;
    store_dispatch_list list;
    store_tx *tx = NULL;
    acp_job_status status;
    size_t count;
    bool flags[2];
    unsigned attempts[2] = {1, 1};
    acp_job_id *found;
    store_job *rows;
    int64_t due;
    int rc;
    switch (op) {
    case OP_GET:
        rc = store_get(st, &ids[0], &job);
        if (rc == 0)
            store_job_free(&job);
        return rc;
    case OP_TOUCH:
        return store_touch(st, &ids[0]);
    case OP_INSERT:
        return store_insert(st, &ids[4], QUEUE, NULL, inputs, 1, NULL);
    case OP_REQUEUE:
        return store_requeue(st, &ids[2], QUEUE, "{\"re\":1}", inputs, 1, NULL);
    case OP_MARK_DISPATCHED:
        return store_mark_dispatched(st, &ids[0]);
    case OP_CLEAR_DISPATCHED:
        return store_clear_dispatched(st, &ids[0]);
    case OP_DISPATCH_FAILED:
        return store_dispatch_failed(st, &ids[0]);
    case OP_FAIL_UNDISPATCHABLE:
        return store_fail_undispatchable(st, &ids[0], "bad");
    case OP_CLAIM:
        rc = store_claim(st, QUEUE, OWNER, 60, &job);
        if (rc == 0) {
            assert_true(acp_job_id_equal(&job.id, &ids[0]));
            store_job_free(&job);
        }
        return rc;
    case OP_RETRY:
        return store_retry(st, &ids[5], OWNER, "try again", 1000);
    case OP_CANCEL:
        return store_cancel(st, &ids[0], NULL, NULL);
    case OP_FINISH:
        return store_finish(st, &ids[5], OWNER, ACP_STATUS_FAILED, "x", NULL, NULL, 0);
    case OP_RENEW_LEASES:
        return store_renew_leases(st, OWNER, 60, &ids[5], 1, &count, flags);
    case OP_REQUEUE_EXPIRED:
        rc = store_requeue_expired(st, 10, &list);
        store_dispatch_list_free(&list);
        return rc;
    case OP_FAIL_ABANDONED:
        rc = store_fail_abandoned(st, 10, &list);
        store_dispatch_list_free(&list);
        return rc;
    case OP_TAKE_UNDISPATCHED:
        rc = store_take_undispatched(st, 0, queues, 1, 10, &list, &due);
        store_dispatch_list_free(&list);
        return rc;
    case OP_DELETE_JOB:
        return store_delete(st, &ids[0]);
    case OP_EXPIRE_BEGIN:
    case OP_DELETE_BEGIN:
        rc = op == OP_EXPIRE_BEGIN ? store_expire_begin(st, &ids[2], 0, &tx, NULL)
                                   : store_delete_begin(st, &ids[2], &tx);
        if (rc == 0) {
            fault_plan_reset(plan);
            assert_int_equal(store_tx_end(tx, true), 0);
        }
        return rc;
    case OP_FINISH_BEGIN:
        rc = store_finish_begin(st, &ids[5], OWNER, running->attempts, running->grabbed, &tx,
                                &status);
        if (rc == 0) {
            fault_plan_reset(plan);
            assert_int_equal(store_tx_end(tx, false), 0);
        }
        return rc;
    case OP_FINISH_TX:
    case OP_TX_END: {
        assert_int_equal(store_finish_begin(st, &ids[5], OWNER, running->attempts, running->grabbed,
                                            &tx, &status),
                         0);
        if (op == OP_TX_END) {
            assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &ids[5]),
                             0);
            return store_tx_end(tx, true);
        }
        rc = store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &ids[5]);
        if (rc) { /* a_failed_statement_aborts_the_transaction commits such a one */
            assert_int_equal(store_tx_end(tx, false), 0);
            return rc;
        }
        return store_tx_end(tx, true);
    }
    case OP_DELETE_EXPIRED:
        return store_delete_expired(st, &ids[3]);
    case OP_LIST_EXPIRABLE:
        rc = store_list_expirable(st, INT64_MAX, NULL, 10, &found, &count);
        if (rc == 0)
            free(found);
        return rc;
    case OP_LIST:
        rc = store_list(st, 0, NULL, 0, NULL, 10, &rows, &count);
        for (size_t i = 0; rc == 0 && i < count; i++)
            store_job_free(&rows[i]);
        if (rc == 0)
            free(rows);
        return rc;
    case OP_EXISTS:
        return store_exists(st, ids, 2, flags);
    case OP_RUNS_ALIVE:
        return store_runs_alive(st, &ids[5], attempts, 1, flags);
    }
    return ACP_EINVAL;
}

/* Each operation with a fault injected: it returns the injected error and
 * no row changes; without the fault the same call succeeds. */
static void an_injected_fault_changes_nothing(void **state)
{
    (void)state;
    for (int op = 0; op < OP_COUNT; op++) {
        fault_plan plan;
        fault_plan_init(&plan);
        store *st;
        assert_int_equal(fake_store_open(&st, &plan), 0);
        acp_job_id ids[ROWS];
        store_job running;
        fault_rows(st, ids, &running);
        char before[4096], after[4096];
        snapshot(st, ids, ROWS, before, sizeof before);

        fault_plan_reset(&plan);
        fault_plan_add(&plan, (fault_rule){.op = op_names[op], .error = ACP_EDB});
        int rc = call_op(st, &plan, op, ids, &running);
        if (rc != ACP_EDB)
            fail_msg("%s with a fault: %d %s", op_names[op], rc, acp_last_error());
        char expected[96];
        snprintf(expected, sizeof expected, "fake store: injected fault in %s", op_names[op]);
        assert_string_equal(acp_last_error(), expected);
        assert_int_equal(fault_calls(&plan, op_names[op]), 1);
        snapshot(st, ids, ROWS, after, sizeof after);
        assert_string_equal(before, after);

        fault_plan_reset(&plan);
        rc = call_op(st, &plan, op, ids, &running);
        if (rc != 0)
            fail_msg("%s without a fault: %d %s", op_names[op], rc, acp_last_error());
        store_job_free(&running);
        store_close(st);
        fault_plan_destroy(&plan);
    }
}

/* FAKE_STORE_FAULT_AFTER: the work is done, the answer is lost. */
static void a_lost_answer_applies_the_call(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    store *st;
    assert_int_equal(fake_store_open(&st, &plan), 0);
    acp_job_id id = new_job(st);
    fault_plan_add(
        &plan, (fault_rule){.op = "pg.claim", .error = ACP_EDB, .kind = FAKE_STORE_FAULT_AFTER});
    store_job job;
    assert_int_equal(store_claim(st, QUEUE, OWNER, 1, &job), ACP_EDB);
    assert_null(job.config);
    assert_int_equal(fake_store_peek(st, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    unsigned attempts = job.attempts;
    int64_t grabbed = job.grabbed;
    store_job_free(&job);

    /* A requeue whose answer is lost: the job is queued but nobody knows. */
    fake_store_advance(st, 2 * INT64_C(1000000));
    fault_plan_reset(&plan);
    fault_plan_add(
        &plan,
        (fault_rule){.op = "pg.requeue_expired", .error = ACP_EDB, .kind = FAKE_STORE_FAULT_AFTER});
    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(st, 10, &list), ACP_EDB);
    assert_int_equal(list.count, 0);
    assert_null(list.items);
    assert_int_equal(fake_store_peek(st, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    store_job_free(&job);

    /* A commit whose answer is lost went through: finish_begin knows (once
     * the retry's back-off, under a second, is over). */
    fault_plan_reset(&plan);
    fake_store_advance(st, INT64_C(1000000));
    job = claim(st, &id, 60);
    attempts = job.attempts;
    grabbed = job.grabbed;
    store_job_free(&job);
    store_tx *tx;
    acp_job_status recorded;
    assert_int_equal(store_finish_begin(st, &id, OWNER, attempts, grabbed, &tx, &recorded), 0);
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &id), 0);
    fault_plan_add(
        &plan, (fault_rule){.op = "pg.tx_end", .error = ACP_EDB, .kind = FAKE_STORE_FAULT_AFTER});
    assert_int_equal(store_tx_end(tx, true), ACP_EDB);
    fault_plan_reset(&plan);
    assert_int_equal(store_finish_begin(st, &id, OWNER, attempts, grabbed, &tx, &recorded), 1);
    assert_int_equal(recorded, ACP_STATUS_COMPLETE);
    store_close(st);
    fault_plan_destroy(&plan);
}

/* A failed statement in a recording transaction aborts it: the commit rolls
 * back and says so, and the run is still the lease holder's to record. */
static void a_failed_statement_aborts_the_transaction(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    store *st;
    assert_int_equal(fake_store_open(&st, &plan), 0);
    acp_job_id id = new_job(st);
    store_job run = claim(st, &id, 60);
    store_tx *tx;
    acp_job_status recorded;
    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     0);
    fault_plan_add(&plan, (fault_rule){.op = "pg.finish_tx", .nth = 1, .error = ACP_EDB});
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &id), ACP_EDB);
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &id), ACP_EDB);
    assert_int_equal(store_tx_end(tx, true), ACP_EDB);
    store_job job;
    assert_int_equal(fake_store_peek(st, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    store_job_free(&job);
    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     0);
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &id), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(fake_store_peek(st, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    store_job_free(&job);
    store_job_free(&run);
    store_close(st);
    fault_plan_destroy(&plan);
}

/* The plan numbers the fake's calls as steps, so a scenario's steps can be
 * failed one by one. */
static void every_call_is_a_step_of_the_plan(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    store *st;
    assert_int_equal(fake_store_open(&st, &plan), 0);
    acp_job_id id = new_job(st);
    store_job run = claim(st, &id, 60);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
    assert_int_equal(fault_calls(&plan, NULL), 3);
    assert_int_equal(fault_calls(&plan, "pg.claim"), 1);

    fault_plan_reset(&plan);
    fault_plan_add(&plan, (fault_rule){.step = 2, .error = ACP_EDB});
    new_job(st); /* one to claim */
    store_job out;
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &out), ACP_EDB);
    assert_int_equal(plan.failed_step, 2);
    assert_string_equal(plan.failed_op, "pg.claim");
    store_job_free(&run);
    store_close(st);
    fault_plan_destroy(&plan);
}

/* ---- threads ----------------------------------------------------------------------- */

typedef struct worker {
    store *st;
    int failures;
} worker;

/* Each fake is a database of its own: its identity is random, made at
 * open, and stays for its life; pg.identity_read can fail like any call. */
static void each_fake_has_its_own_identity(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    store *one, *two;
    assert_int_equal(fake_store_open(&one, &plan), 0);
    assert_int_equal(fake_store_open(&two, NULL), 0);
    store_identity a, again, b;
    assert_int_equal(store_identity_read(one, &a), 0);
    assert_int_equal(store_identity_read(one, &again), 0);
    assert_int_equal(store_identity_read(two, &b), 0);
    assert_int_equal(strlen(a.database_id), 36);
    assert_string_equal(again.database_id, a.database_id);
    assert_string_not_equal(b.database_id, a.database_id);
    assert_null(a.system_id);
    assert_string_equal(a.name, "fake");
    store_identity_free(&a);
    store_identity_free(&again);
    store_identity_free(&b);

    fault_plan_add(&plan, (fault_rule){.op = "pg.identity_read", .error = ACP_EDB});
    assert_int_equal(store_identity_read(one, &a), ACP_EDB);
    assert_string_equal(acp_last_error(), "fake store: injected fault in pg.identity_read");
    assert_null(a.database_id);
    store_close(one);
    store_close(two);
    fault_plan_destroy(&plan);
}

static void *worker_run(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < JOBS; i++) {
        acp_job_id id;
        store_job job;
        const char *outputs[] = {"o"};
        /* The claim takes the best due job, maybe another thread's; each
         * thread inserts before it claims, so there is always one. */
        if (acp_job_id_generate(&id) || store_insert(w->st, &id, QUEUE, NULL, NULL, 0, NULL) ||
            store_claim(w->st, QUEUE, OWNER, 60, &job)) {
            w->failures++;
            continue;
        }
        id = job.id;
        store_tx *tx;
        acp_job_status recorded;
        if (store_renew_leases(w->st, OWNER, 60, &id, 1, NULL, NULL) ||
            store_finish_begin(w->st, &id, OWNER, job.attempts, job.grabbed, &tx, &recorded) ||
            store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, outputs, NULL, 1, &id) ||
            store_tx_end(tx, true))
            w->failures++;
        store_job_free(&job);
    }
    return NULL;
}

static void *sweeper_run(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < JOBS; i++) {
        store_dispatch_list list;
        store_job *rows;
        size_t count;
        const char *queues[] = {QUEUE};
        if (store_requeue_expired(w->st, 10, &list) ||
            store_take_undispatched(w->st, 60, queues, 1, 10, &list, NULL) ||
            store_list(w->st, 0, QUEUE, 0, NULL, 5, &rows, &count)) {
            w->failures++;
            continue;
        }
        store_dispatch_list_free(&list);
        for (size_t k = 0; k < count; k++)
            store_job_free(&rows[k]);
        free(rows);
    }
    return NULL;
}

static void threads_share_one_fake(void **state)
{
    (void)state;
    store *st = fake_open();
    pthread_t threads[THREADS + 1];
    worker workers[THREADS + 1];
    for (int i = 0; i <= THREADS; i++) {
        workers[i] = (worker){st, 0};
        assert_int_equal(
            pthread_create(&threads[i], NULL, i < THREADS ? worker_run : sweeper_run, &workers[i]),
            0);
    }
    for (int i = 0; i <= THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].failures, 0);
    }
    assert_int_equal(fake_store_row_count(st), THREADS * JOBS);
    store_job *rows;
    size_t count;
    assert_int_equal(
        store_list(st, 1u << ACP_STATUS_COMPLETE, NULL, 0, NULL, THREADS * JOBS, &rows, &count), 0);
    assert_int_equal(count, THREADS * JOBS);
    for (size_t i = 0; i < count; i++)
        store_job_free(&rows[i]);
    free(rows);
    store_close(st);
}

int main(void)
{
    contract = &fake_backend;
    static const struct CMUnitTest own[] = {
        cmocka_unit_test(the_clock_moves_leases_and_peek_shows_the_row),
        cmocka_unit_test(jobs_keep_their_submission_order),
        cmocka_unit_test(an_injected_fault_changes_nothing),
        cmocka_unit_test(a_lost_answer_applies_the_call),
        cmocka_unit_test(a_failed_statement_aborts_the_transaction),
        cmocka_unit_test(every_call_is_a_step_of_the_plan),
        cmocka_unit_test(each_fake_has_its_own_identity),
        cmocka_unit_test(threads_share_one_fake),
    };
    size_t own_count = sizeof own / sizeof own[0];
    struct CMUnitTest *tests = calloc(contract_test_count + own_count, sizeof *tests);
    if (!tests)
        return 1;
    memcpy(tests, contract_tests, contract_test_count * sizeof *tests);
    memcpy(tests + contract_test_count, own, sizeof own);
    int failed =
        _cmocka_run_group_tests("fake_store", tests, contract_test_count + own_count, NULL, NULL);
    free(tests);
    return failed;
}
