/* The store's contract (src/store.h), case by case, on whichever backend
 * `contract` names. The cases only compare times with each other, never with
 * a clock of their own: the PostgreSQL variant moves time by moving the
 * stored times back (see contract_backend.advance). */
#include "store_contract.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

const contract_backend *contract;

#define QUEUE       "contract-q"
#define OTHER_QUEUE "contract-other"
#define OWNER       "worker-a"
#define OTHER_OWNER "worker-b"
#define CLAIMERS    4

static int case_setup(void **state)
{
    *state = contract->open();
    return *state ? 0 : -1;
}

static int case_teardown(void **state)
{
    contract->close(*state);
    return 0;
}

/* ---- helpers ---------------------------------------------------------------- */

static acp_job_id insert_job(store *st, const char *queue)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    const char *inputs[] = {"a.txt"};
    assert_int_equal(store_insert(st, &id, queue, "{\"k\":1}", inputs, 1, NULL), 0);
    return id;
}

static store_job get_job(store *st, const acp_job_id *id)
{
    store_job job;
    int rc = store_get(st, id, &job);
    if (rc)
        fail_msg("store_get: %d %s", rc, acp_last_error());
    return job;
}

/* A job of @queue with the run options @opt. */
static acp_job_id insert_with(store *st, const char *queue, const store_run_options *opt)
{
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    const char *inputs[] = {"a.txt"};
    int rc = store_insert(st, &id, queue, "{\"k\":1}", inputs, 1, opt);
    if (rc < 0)
        fail_msg("store_insert: %d %s", rc, acp_last_error());
    return id;
}

static acp_job_status status_of(store *st, const acp_job_id *id)
{
    store_job job = get_job(st, id);
    acp_job_status status = job.status;
    store_job_free(&job);
    return status;
}

/* The claim of a doorbell of @queue (the best due job), which the caller
 * expects to be @id (NULL: any). */
static store_job claim_from(store *st, const char *queue, const acp_job_id *id, const char *owner,
                            unsigned lease)
{
    store_job job;
    int rc = store_claim(st, queue, owner, lease, &job);
    if (rc)
        fail_msg("store_claim: %d %s", rc, acp_last_error());
    if (id && !acp_job_id_equal(&job.id, id)) {
        char want[ACP_JOB_ID_STRLEN], got[ACP_JOB_ID_STRLEN];
        fail_msg("store_claim took job %s, not %s", acp_job_id_format(&job.id, got),
                 acp_job_id_format(id, want));
    }
    return job;
}

static store_job claim_job(store *st, const acp_job_id *id, const char *owner, unsigned lease)
{
    return claim_from(st, QUEUE, id, owner, lease);
}

/* A job of QUEUE in @status, through the operations that lead there. One
 * that leaves the queue at once goes in with the highest priority, so that
 * the claim takes it ahead of the queued jobs the case made before. */
static acp_job_id job_in(store *st, acp_job_status status)
{
    if (status == ACP_STATUS_QUEUED)
        return insert_job(st, QUEUE);
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    const char *inputs[] = {"a.txt"};
    const store_run_options first = {.layout = ACP_LAYOUT_DEFAULT, .priority = ACP_PRIORITY_MAX};
    assert_int_equal(store_insert(st, &id, QUEUE, "{\"k\":1}", inputs, 1, &first), 0);
    store_job claimed = claim_job(st, &id, OWNER, 60);
    store_job_free(&claimed);
    if (status == ACP_STATUS_IN_PROGRESS)
        return id;
    acp_job_status end = status == ACP_STATUS_FAILED ? ACP_STATUS_FAILED : ACP_STATUS_COMPLETE;
    assert_int_equal(store_finish(st, &id, OWNER, end, NULL, NULL, NULL, 0), 0);
    if (status == ACP_STATUS_EXPIRED) {
        store_tx *tx;
        assert_int_equal(store_expire_begin(st, &id, 0, &tx, NULL), 0);
        assert_int_equal(store_tx_end(tx, true), 0);
    }
    assert_int_equal(status_of(st, &id), status);
    return id;
}

static bool listed(const store_dispatch_list *list, const acp_job_id *id)
{
    for (size_t i = 0; i < list->count; i++)
        if (acp_job_id_equal(&list->items[i].id, id))
            return true;
    return false;
}

static int by_created(const store_job *a, const store_job *b)
{
    if (a->created != b->created)
        return a->created < b->created ? -1 : 1;
    return memcmp(a->id.bytes, b->id.bytes, sizeof a->id.bytes);
}

/* ---- single rows -------------------------------------------------------------- */

static void insert_get_and_conflict(void **state)
{
    store *st = *state;
    acp_job_id id, missing;
    assert_int_equal(acp_job_id_generate(&id), 0);
    assert_int_equal(acp_job_id_generate(&missing), 0);
    const char *inputs[] = {"in put,{x}.txt", "say \"NULL\"\\", ""};
    assert_int_equal(store_insert(st, &id, QUEUE, "{\"a\":[1,2]}", inputs, 3, NULL), 0);
    store_job job = get_job(st, &id);
    assert_true(acp_job_id_equal(&job.id, &id));
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_string_equal(job.queue, QUEUE);
    assert_string_equal(job.config, "{\"a\":[1,2]}");
    assert_int_equal(job.input_count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(job.inputs[i], inputs[i]);
    assert_true(job.created > 0);
    assert_true(job.last_accessed == job.created);
    assert_true(job.grabbed == 0 && job.finished == 0);
    assert_null(job.message);
    assert_int_equal(job.attempts, 0);
    assert_int_equal(job.queue_position, 0);

    /* A second insert of the id conflicts and changes nothing. */
    assert_int_equal(store_insert(st, &id, OTHER_QUEUE, NULL, NULL, 0, NULL), ACP_ECONFLICT);
    store_job again = get_job(st, &id);
    assert_string_equal(again.queue, QUEUE);
    assert_string_equal(again.config, job.config);
    assert_true(again.created == job.created);
    store_job_free(&again);
    store_job_free(&job);

    store_job none;
    assert_int_equal(store_get(st, &missing, &none), ACP_ENOTFOUND);
    assert_int_equal(store_insert(st, &missing, QUEUE, NULL, NULL, 0, NULL), 0);
    store_job bare = get_job(st, &missing);
    assert_null(bare.config);
    assert_int_equal(bare.input_count, 0);
    store_job_free(&bare);
    assert_int_equal(store_insert(st, &id, NULL, NULL, NULL, 0, NULL), ACP_EINVAL);
    acp_job_id other;
    assert_int_equal(acp_job_id_generate(&other), 0);
    /* The queue column is a varchar(32): a longer id is the server's error. */
    assert_int_equal(
        store_insert(st, &other, "q23456789012345678901234567890123", NULL, NULL, 0, NULL),
        ACP_EDB);
    assert_int_equal(store_get(st, &other, &none), ACP_ENOTFOUND);
    assert_int_equal(store_insert(st, &id, QUEUE, NULL, NULL, 2, NULL), ACP_EINVAL);
}

/* @job holds exactly @count sizes equal to @sizes, or none when NULL. */
static void assert_sizes(const uint64_t *got, const uint64_t *sizes, size_t count)
{
    if (!sizes) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    for (size_t i = 0; i < count; i++)
        if (got[i] != sizes[i])
            fail_msg("size %zu is %llu, not %llu", i, (unsigned long long)got[i],
                     (unsigned long long)sizes[i]);
}

static void assert_no_outputs(const store_job *job)
{
    assert_null(job->outputs);
    assert_int_equal(job->output_count, 0);
    assert_null(job->output_sizes);
}

static void layout_and_input_sizes_round_trip(void **state)
{
    store *st = *state;
    const char *inputs[] = {"a.bin", "empty", "big"};
    /* Past a double's exact integers and 32 bits, and zero. */
    const uint64_t sizes[] = {UINT64_C(9007199254740993), 0, UINT64_C(1) << 40};
    const store_run_options native = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = sizes};
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    assert_int_equal(store_insert(st, &id, QUEUE, "{\"n\":1}", inputs, 3, &native), 0);
    store_job job = get_job(st, &id);
    assert_int_equal(job.layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(job.input_count, 3);
    assert_sizes(job.input_sizes, sizes, 3);
    assert_no_outputs(&job);
    store_job_free(&job);

    /* The claim returns the row with them. */
    store_job run = claim_job(st, &id, OWNER, 60);
    assert_int_equal(run.layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(run.input_count, 3);
    assert_string_equal(run.inputs[2], "big");
    assert_sizes(run.input_sizes, sizes, 3);
    assert_no_outputs(&run);
    store_job_free(&run);

    /* No options, the default layout, or no sizes: lcp, sizes unknown. */
    const store_run_options defaults = {.layout = ACP_LAYOUT_DEFAULT, .input_sizes = NULL};
    const store_run_options lcp_sized = {.layout = ACP_LAYOUT_LCP, .input_sizes = sizes};
    const store_run_options native_unsized = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = NULL};
    const store_run_options *const options[] = {NULL, &defaults, &lcp_sized, &native_unsized};
    const acp_layout expected[] = {ACP_LAYOUT_LCP, ACP_LAYOUT_LCP, ACP_LAYOUT_LCP,
                                   ACP_LAYOUT_NATIVE};
    for (size_t i = 0; i < 4; i++) {
        acp_job_id other;
        assert_int_equal(acp_job_id_generate(&other), 0);
        assert_int_equal(store_insert(st, &other, OTHER_QUEUE, NULL, inputs, 2, options[i]), 0);
        store_job row = get_job(st, &other);
        assert_int_equal(row.layout, expected[i]);
        assert_sizes(row.input_sizes, options[i] ? options[i]->input_sizes : NULL, 2);
        store_job_free(&row);
        /* store_list reads the same columns. */
        store_job *page = NULL;
        size_t count = 0;
        assert_int_equal(store_list(st, 0, OTHER_QUEUE, 0, NULL, 10, &page, &count), 0);
        assert_int_equal(count, i + 1);
        assert_true(acp_job_id_equal(&page[i].id, &other));
        assert_int_equal(page[i].layout, expected[i]);
        assert_sizes(page[i].input_sizes, options[i] ? options[i]->input_sizes : NULL, 2);
        for (size_t k = 0; k < count; k++)
            store_job_free(&page[k]);
        free(page);
    }

    /* No inputs with sizes: nothing to size. */
    acp_job_id bare;
    assert_int_equal(acp_job_id_generate(&bare), 0);
    assert_int_equal(store_insert(st, &bare, QUEUE, NULL, NULL, 0, &native), 0);
    store_job none = get_job(st, &bare);
    assert_int_equal(none.layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(none.input_count, 0);
    assert_null(none.input_sizes);
    store_job_free(&none);

    /* A layout that is none, or a size past bigint: refused, nothing stored. */
    acp_job_id refused;
    assert_int_equal(acp_job_id_generate(&refused), 0);
    const store_run_options bad_layout = {.layout = (acp_layout)7, .input_sizes = NULL};
    assert_int_equal(store_insert(st, &refused, QUEUE, NULL, NULL, 0, &bad_layout), ACP_EINVAL);
    const uint64_t huge[] = {1, UINT64_C(1) << 63, 2};
    const store_run_options bad_size = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = huge};
    assert_int_equal(store_insert(st, &refused, QUEUE, NULL, inputs, 3, &bad_size), ACP_EINVAL);
    store_job missing;
    assert_int_equal(store_get(st, &refused, &missing), ACP_ENOTFOUND);
}

static void insert_of_an_existing_id_changes_nothing(void **state)
{
    store *st = *state;
    const char *inputs[] = {"in.txt"};
    const uint64_t sizes[] = {12};
    const store_run_options native = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = sizes};
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    assert_int_equal(store_insert(st, &id, QUEUE, "{\"first\":1}", inputs, 1, &native), 0);
    store_job run = claim_job(st, &id, OWNER, 60);
    store_job_free(&run);

    /* Submitting the id again (the caller inserts first, no look-up). */
    const char *other_inputs[] = {"x", "y"};
    const uint64_t other_sizes[] = {1, 2};
    const store_run_options lcp = {.layout = ACP_LAYOUT_LCP, .input_sizes = other_sizes};
    uint64_t statements = store_statement_count(st);
    assert_int_equal(store_insert(st, &id, QUEUE, "{\"second\":2}", other_inputs, 2, &lcp),
                     ACP_ECONFLICT);
    /* One statement says so: no look-up before or after. */
    assert_true(store_statement_count(st) == statements + 1);
    assert_int_equal(store_insert(st, &id, QUEUE, NULL, NULL, 0, NULL), ACP_ECONFLICT);
    store_job job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_string_equal(job.config, "{\"first\":1}");
    assert_int_equal(job.layout, ACP_LAYOUT_NATIVE);
    assert_int_equal(job.input_count, 1);
    assert_string_equal(job.inputs[0], "in.txt");
    assert_sizes(job.input_sizes, sizes, 1);
    assert_int_equal(job.attempts, 1);
    store_job_free(&job);
    /* ...and its run goes on: the lease is still the owner's. */
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
}

static void finish_records_output_names_and_sizes(void **state)
{
    store *st = *state;
    const char *outputs[] = {"result.json", "log, \"raw\"", ""};
    const uint64_t sizes[] = {1024, UINT64_C(5000000000), 0};

    /* store_finish, complete, with sizes. */
    acp_job_id id = job_in(st, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, outputs, sizes, 3), 0);
    store_job job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.output_count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(job.outputs[i], outputs[i]);
    assert_sizes(job.output_sizes, sizes, 3);
    assert_int_equal(job.layout, ACP_LAYOUT_LCP); /* inserted with the default layout */
    store_job_free(&job);

    /* store_finish, failed, names without sizes. */
    id = job_in(st, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_FAILED, "bad", outputs, NULL, 1), 0);
    job = get_job(st, &id);
    assert_int_equal(job.output_count, 1);
    assert_string_equal(job.outputs[0], "result.json");
    assert_null(job.output_sizes);
    store_job_free(&job);

    /* No result file: none read back. */
    id = job_in(st, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, sizes, 0), 0);
    job = get_job(st, &id);
    assert_no_outputs(&job);
    store_job_free(&job);

    /* A size past bigint: refused, the run still held. */
    id = job_in(st, ACP_STATUS_IN_PROGRESS);
    const uint64_t huge[] = {UINT64_MAX};
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, outputs, huge, 1),
                     ACP_EINVAL);
    assert_int_equal(status_of(st, &id), ACP_STATUS_IN_PROGRESS);

    /* store_finish_tx, inside the recording transaction. */
    store_job run;
    acp_job_id tx_id = insert_job(st, QUEUE);
    run = claim_job(st, &tx_id, OWNER, 60);
    store_tx *tx = NULL;
    acp_job_status recorded = 0;
    assert_int_equal(
        store_finish_begin(st, &tx_id, OWNER, run.attempts, run.grabbed, &tx, &recorded), 0);
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, outputs, sizes, 2, &tx_id), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    store_job_free(&run);
    job = get_job(st, &tx_id);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.output_count, 2);
    assert_string_equal(job.outputs[1], outputs[1]);
    assert_sizes(job.output_sizes, sizes, 2);
    store_job_free(&job);

    /* The list shows them too. */
    store_job *page = NULL;
    size_t count = 0;
    assert_int_equal(store_list(st, 1u << ACP_STATUS_COMPLETE, QUEUE, 0, NULL, 10, &page, &count),
                     0);
    bool seen = false;
    for (size_t i = 0; i < count; i++) {
        if (acp_job_id_equal(&page[i].id, &tx_id)) {
            seen = true;
            assert_int_equal(page[i].output_count, 2);
            assert_sizes(page[i].output_sizes, sizes, 2);
        }
        store_job_free(&page[i]);
    }
    free(page);
    assert_true(seen);
}

static void requeue_replaces_layout_and_sizes_and_clears_outputs(void **state)
{
    store *st = *state;
    const char *inputs[] = {"first.txt"};
    const uint64_t sizes[] = {100};
    const store_run_options native = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = sizes};
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    assert_int_equal(store_insert(st, &id, QUEUE, NULL, inputs, 1, &native), 0);
    store_job run = claim_job(st, &id, OWNER, 60);
    store_job_free(&run);
    const char *outputs[] = {"out.txt"};
    const uint64_t output_sizes[] = {7};
    assert_int_equal(
        store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, outputs, output_sizes, 1), 0);

    /* Re-run under lcp without sizes: the old run's files are gone. */
    const char *again[] = {"second.txt", "third.txt"};
    assert_int_equal(store_requeue(st, &id, QUEUE, NULL, again, 2, NULL), 0);
    store_job job = get_job(st, &id);
    assert_int_equal(job.layout, ACP_LAYOUT_LCP);
    assert_int_equal(job.input_count, 2);
    assert_null(job.input_sizes);
    assert_no_outputs(&job);
    store_job_free(&job);

    /* And back to native with sizes, after a failed run with outputs. */
    run = claim_job(st, &id, OWNER, 60);
    assert_int_equal(run.layout, ACP_LAYOUT_LCP);
    store_job_free(&run);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_FAILED, "x", outputs, NULL, 1), 0);
    const uint64_t new_sizes[] = {3, 4};
    const store_run_options native_again = {.layout = ACP_LAYOUT_NATIVE, .input_sizes = new_sizes};
    assert_int_equal(store_requeue(st, &id, QUEUE, NULL, again, 2, &native_again), 0);
    job = get_job(st, &id);
    assert_int_equal(job.layout, ACP_LAYOUT_NATIVE);
    assert_sizes(job.input_sizes, new_sizes, 2);
    assert_no_outputs(&job);
    store_job_free(&job);

    /* A refused re-run (the job is queued) changes neither. */
    assert_int_equal(store_requeue(st, &id, QUEUE, NULL, inputs, 1, &native), ACP_ECONFLICT);
    job = get_job(st, &id);
    assert_int_equal(job.input_count, 2);
    assert_sizes(job.input_sizes, new_sizes, 2);
    store_job_free(&job);
}

static void identity_is_stable(void **state)
{
    store *st = *state;
    store_identity first, second;
    int rc = store_identity_read(st, &first);
    if (rc)
        fail_msg("store_identity_read: %d %s", rc, acp_last_error());
    assert_non_null(first.database_id);
    assert_true(strlen(first.database_id) > 0);
    assert_non_null(first.name);
    assert_true(strlen(first.name) > 0);
    if (first.system_id) /* NULL when the role may not read it */
        assert_true(strlen(first.system_id) > 0);
    assert_int_equal(store_identity_read(st, &second), 0);
    assert_string_equal(second.database_id, first.database_id);
    assert_string_equal(second.name, first.name);
    store_identity_free(&first);
    store_identity_free(&second);
    assert_null(first.database_id);
    store_identity_free(NULL);
}

static void queue_positions_follow_creation_per_queue(void **state)
{
    store *st = *state;
    acp_job_id ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = insert_job(st, QUEUE);
    acp_job_id other = insert_job(st, OTHER_QUEUE);
    store_job jobs[3];
    for (int i = 0; i < 3; i++)
        jobs[i] = get_job(st, &ids[i]);
    /* Positions are the ranks in (created, id) order. */
    for (int i = 0; i < 3; i++) {
        long rank = 0;
        for (int k = 0; k < 3; k++)
            rank += by_created(&jobs[k], &jobs[i]) < 0;
        assert_int_equal(jobs[i].queue_position, rank);
    }
    store_job o = get_job(st, &other);
    assert_int_equal(o.queue_position, 0);
    store_job_free(&o);

    /* The first leaves the queue: the others move up; it has none. */
    int first = 0;
    for (int i = 1; i < 3; i++)
        if (by_created(&jobs[i], &jobs[first]) < 0)
            first = i;
    store_job claimed = claim_job(st, &ids[first], OWNER, 60);
    assert_int_equal(claimed.queue_position, -1);
    store_job_free(&claimed);
    for (int i = 0; i < 3; i++) {
        store_job now = get_job(st, &ids[i]);
        assert_int_equal(now.queue_position, i == first ? -1 : jobs[i].queue_position - 1);
        store_job_free(&now);
        store_job_free(&jobs[i]);
    }
}

/* A long queue: positions are counted up to ACP_QUEUE_POSITION_MAX. */
static void queue_positions_are_counted_up_to_the_maximum(void **state)
{
    store *st = *state;
    enum { N = ACP_QUEUE_POSITION_MAX + 2 };
    store_job *jobs = calloc(N, sizeof *jobs);
    assert_non_null(jobs);
    for (int i = 0; i < N; i++) {
        acp_job_id id = insert_job(st, QUEUE);
        jobs[i] = get_job(st, &id);
    }
    /* Ranks in (created, id) order: the insertion order but for ties. */
    long beyond = 0, at_max = 0;
    for (int i = 0; i < N; i++) {
        store_job now = get_job(st, &jobs[i].id);
        long rank = 0;
        for (int k = 0; k < N; k++)
            rank += by_created(&jobs[k], &jobs[i]) < 0;
        long expected = rank < ACP_QUEUE_POSITION_MAX ? rank : ACP_QUEUE_POSITION_MAX;
        assert_int_equal(now.queue_position, expected);
        beyond += rank > ACP_QUEUE_POSITION_MAX;
        at_max += now.queue_position == ACP_QUEUE_POSITION_MAX;
        store_job_free(&now);
    }
    assert_int_equal(beyond, 1); /* the last one is counted as the maximum too */
    assert_int_equal(at_max, 2);
    for (int i = 0; i < N; i++)
        store_job_free(&jobs[i]);
    free(jobs);
}

static void touch_and_delete(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE), missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    store_job before = get_job(st, &id);
    contract->advance(st, 2);
    assert_int_equal(store_touch(st, &id), 0);
    store_job after = get_job(st, &id);
    assert_true(after.last_accessed > before.last_accessed);
    store_job_free(&before);
    store_job_free(&after);
    assert_int_equal(store_touch(st, &missing), ACP_ENOTFOUND);
    assert_int_equal(store_delete(st, &id), 0);
    assert_int_equal(store_delete(st, &id), ACP_ENOTFOUND);
    assert_int_equal(store_touch(st, &id), ACP_ENOTFOUND);
}

static void requeue_takes_finished_jobs_only(void **state)
{
    store *st = *state;
    static const acp_job_status statuses[] = {ACP_STATUS_QUEUED, ACP_STATUS_IN_PROGRESS,
                                              ACP_STATUS_COMPLETE, ACP_STATUS_FAILED,
                                              ACP_STATUS_EXPIRED};
    const char *inputs[] = {"new.bin"};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        acp_job_id id = job_in(st, statuses[i]);
        store_job before = get_job(st, &id);
        int rc = store_requeue(st, &id, OTHER_QUEUE, "{\"re\":true}", inputs, 1, NULL);
        store_job after = get_job(st, &id);
        if (statuses[i] == ACP_STATUS_QUEUED || statuses[i] == ACP_STATUS_IN_PROGRESS) {
            assert_int_equal(rc, ACP_ECONFLICT);
            assert_int_equal(after.status, statuses[i]);
            assert_string_equal(after.queue, QUEUE);
            assert_int_equal(after.attempts, before.attempts);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(after.status, ACP_STATUS_QUEUED);
            assert_string_equal(after.queue, OTHER_QUEUE);
            assert_string_equal(after.config, "{\"re\":true}");
            assert_int_equal(after.input_count, 1);
            assert_string_equal(after.inputs[0], "new.bin");
            assert_int_equal(after.attempts, 0);
            assert_true(after.grabbed == 0 && after.finished == 0);
            assert_null(after.message);
            assert_true(after.created == before.created);
            assert_true(after.last_accessed >= before.last_accessed);
            assert_int_equal(after.queue_position, 0);
            /* A new run: it can be claimed again, in its new queue. */
            store_job run = claim_from(st, OTHER_QUEUE, &id, OWNER, 60);
            assert_int_equal(run.attempts, 1);
            store_job_free(&run);
            assert_int_equal(store_delete(st, &id), 0);
        }
        store_job_free(&before);
        store_job_free(&after);
    }
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(store_requeue(st, &missing, QUEUE, NULL, NULL, 0, NULL), ACP_ENOTFOUND);
}

/* The claim names a queue, not a job (a doorbell): nothing due in the
 * queue is ACP_ENOTFOUND, whatever other queues hold. */
static void claim_takes_queued_jobs_of_its_queue(void **state)
{
    store *st = *state;
    store_job out;
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &out), ACP_ENOTFOUND);
    acp_job_id id = insert_job(st, QUEUE);
    assert_int_equal(store_claim(st, OTHER_QUEUE, OWNER, 60, &out), ACP_ENOTFOUND);
    assert_int_equal(store_claim(st, QUEUE, "", 60, &out), ACP_EINVAL);
    assert_int_equal(store_claim(st, NULL, OWNER, 60, &out), ACP_EINVAL);
    assert_int_equal(status_of(st, &id), ACP_STATUS_QUEUED);

    store_job job = claim_job(st, &id, OWNER, 30);
    assert_true(acp_job_id_equal(&job.id, &id));
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(job.attempts, 1);
    assert_true(job.grabbed >= job.created);
    assert_true(job.finished == 0);
    assert_string_equal(job.config, "{\"k\":1}");
    assert_int_equal(job.queue_position, -1);
    /* Claimed: nothing of the queue is due any more. */
    assert_int_equal(store_claim(st, QUEUE, OTHER_OWNER, 60, &out), ACP_ENOTFOUND);
    store_job now = get_job(st, &id);
    assert_true(now.grabbed == job.grabbed);
    assert_int_equal(now.attempts, 1);
    store_job_free(&now);

    /* The lease is alive for its attempt, until it runs out. */
    const unsigned attempts[] = {1, 2};
    const acp_job_id ids[] = {id, id};
    bool alive[2];
    assert_int_equal(store_runs_alive(st, ids, attempts, 2, alive), 0);
    assert_true(alive[0]);
    assert_false(alive[1]);
    contract->advance(st, 31);
    assert_int_equal(store_runs_alive(st, ids, attempts, 2, alive), 0);
    assert_false(alive[0]);
    store_job_free(&job);
}

typedef struct claimer {
    store *st;
    acp_job_id id;
    int rc;
} claimer;

static void *claim_thread(void *arg)
{
    claimer *c = arg;
    store_job job;
    c->rc = store_claim(c->st, QUEUE, OWNER, 60, &job);
    if (c->rc == 0) {
        c->id = job.id;
        store_job_free(&job);
    }
    return NULL;
}

static void concurrent_claims_have_one_winner(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE);
    pthread_t threads[CLAIMERS];
    claimer claimers[CLAIMERS];
    for (int i = 0; i < CLAIMERS; i++) {
        claimers[i] = (claimer){st, {{0}}, 1};
        assert_int_equal(pthread_create(&threads[i], NULL, claim_thread, &claimers[i]), 0);
    }
    int won = 0;
    for (int i = 0; i < CLAIMERS; i++) {
        pthread_join(threads[i], NULL);
        if (claimers[i].rc == 0) {
            won++;
            assert_true(acp_job_id_equal(&claimers[i].id, &id));
        } else {
            /* Nothing left to claim, or the winner's claim not yet committed. */
            if (claimers[i].rc != ACP_ENOTFOUND && claimers[i].rc != ACP_EBUSY)
                fail_msg("claimer %d: %d %s", i, claimers[i].rc, acp_last_error());
        }
    }
    assert_int_equal(won, 1);
    store_job job = get_job(st, &id);
    assert_int_equal(job.attempts, 1);
    store_job_free(&job);
}

static void finish_is_fenced_by_the_lease_owner(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE), missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT); /* queued, not claimed */
    store_job job = claim_job(st, &id, OWNER, 60);
    store_job_free(&job);
    assert_int_equal(store_finish(st, &id, OTHER_OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
    assert_int_equal(status_of(st, &id), ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_QUEUED, NULL, NULL, NULL, 0),
                     ACP_EINVAL);
    const char *outputs[] = {"out.txt"};
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_FAILED, "it broke", outputs, NULL, 1),
                     0);
    store_job done = get_job(st, &id);
    assert_int_equal(done.status, ACP_STATUS_FAILED);
    assert_string_equal(done.message, "it broke");
    assert_true(done.finished >= done.grabbed && done.finished > 0);
    assert_int_equal(done.attempts, 1);
    const unsigned attempts = 1;
    bool alive = true;
    assert_int_equal(store_runs_alive(st, &id, &attempts, 1, &alive), 0);
    assert_false(alive); /* the lease ended with the run */
    store_job_free(&done);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
    assert_int_equal(store_finish(st, &missing, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
}

static void renew_extends_only_the_listed_leases_of_the_owner(void **state)
{
    store *st = *state;
    acp_job_id a = insert_job(st, QUEUE), b = insert_job(st, QUEUE), c = insert_job(st, QUEUE);
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    store_job ja = claim_job(st, &a, OWNER, 10), jb = claim_job(st, &b, OWNER, 10),
              jc = claim_job(st, &c, OTHER_OWNER, 10);
    store_job_free(&ja);
    store_job_free(&jb);
    store_job_free(&jc);
    contract->advance(st, 5);
    const acp_job_id list[] = {a, a, c, missing};
    size_t renewed = 99;
    assert_int_equal(store_renew_leases(st, OWNER, 30, list, 4, &renewed, NULL), 0);
    assert_int_equal(renewed, 1);
    assert_int_equal(store_renew_leases(st, OWNER, 30, NULL, 0, &renewed, NULL), 0);
    assert_int_equal(renewed, 0);
    contract->advance(st, 8);
    const acp_job_id ids[] = {a, b, c};
    const unsigned attempts[] = {1, 1, 1};
    bool alive[3];
    assert_int_equal(store_runs_alive(st, ids, attempts, 3, alive), 0);
    assert_true(alive[0]);
    assert_false(alive[1]);
    assert_false(alive[2]);
}

/* Each row is requeued or failed by its own max_attempts. */
static void expired_leases_are_requeued_then_failed_at_max_attempts(void **state)
{
    store *st = *state;
    const store_run_options three = {.priority = ACP_PRIORITY_DEFAULT, .max_attempts = 3};
    const store_run_options two = {.priority = ACP_PRIORITY_DEFAULT, .max_attempts = 2};
    const store_run_options one = {.priority = ACP_PRIORITY_DEFAULT, .max_attempts = 1};
    acp_job_id a = insert_with(st, QUEUE, &three), b = insert_with(st, QUEUE, &two),
               c = insert_job(st, QUEUE);
    store_job ja = claim_job(st, &a, OWNER, 1), jb = claim_job(st, &b, OWNER, 1),
              jc = claim_job(st, &c, OWNER, 100);
    store_job_free(&ja);
    store_job_free(&jb);
    store_job_free(&jc);
    contract->advance(st, 2);
    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(st, 0, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 2);
    assert_true(listed(&list, &a) && listed(&list, &b));
    assert_string_equal(list.items[0].queue, QUEUE);
    assert_string_equal(list.items[0].config, "{\"k\":1}");
    store_job first = get_job(st, &list.items[0].id), second = get_job(st, &list.items[1].id);
    assert_true(by_created(&first, &second) < 0); /* oldest first */
    assert_int_equal(first.status, ACP_STATUS_QUEUED);
    assert_true(first.grabbed == 0);
    assert_int_equal(first.attempts, 1);
    assert_string_equal(first.message,
                        "attempt 1 stopped: the process running it stopped (its lease expired)");
    store_job_free(&first);
    store_job_free(&second);
    store_dispatch_list_free(&list);
    assert_int_equal(status_of(st, &c), ACP_STATUS_IN_PROGRESS); /* lease still runs */

    /* Their second runs, once the back-off (under a second) is over. */
    contract->advance(st, 1);
    store_job r1 = claim_from(st, QUEUE, NULL, OWNER, 1),
              r2 = claim_from(st, QUEUE, NULL, OWNER, 1);
    assert_int_equal(r1.attempts, 2);
    assert_int_equal(r2.attempts, 2);
    assert_true((acp_job_id_equal(&r1.id, &a) && acp_job_id_equal(&r2.id, &b)) ||
                (acp_job_id_equal(&r1.id, &b) && acp_job_id_equal(&r2.id, &a)));
    store_job_free(&r1);
    store_job_free(&r2);
    contract->advance(st, 2);
    /* b has spent its two attempts: abandoned; a has one left: requeued. */
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &a));
    store_dispatch_list_free(&list);
    assert_int_equal(store_fail_abandoned(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &b));
    assert_int_equal(list.items[0].status, ACP_STATUS_FAILED);
    store_dispatch_list_free(&list);
    store_job failed = get_job(st, &b);
    assert_int_equal(failed.status, ACP_STATUS_FAILED);
    assert_string_equal(
        failed.message,
        "abandoned: the process running attempt 2 of 2 stopped (its lease expired)");
    assert_true(failed.finished > 0);
    assert_true(failed.grabbed > 0); /* kept: when the last run began */
    assert_int_equal(failed.attempts, 2);
    store_job_free(&failed);

    /* a's third run: abandoned once it reaches its max_attempts. */
    contract->advance(st, 3); /* the back-off after a second attempt: under 2 s */
    store_job ra = claim_job(st, &a, OWNER, 1);
    assert_int_equal(ra.attempts, 3);
    store_job_free(&ra);
    contract->advance(st, 2);
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_fail_abandoned(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    store_dispatch_list_free(&list);
    store_job gone = get_job(st, &a);
    assert_string_equal(
        gone.message, "abandoned: the process running attempt 3 of 3 stopped (its lease expired)");
    store_job_free(&gone);

    /* One attempt only: abandoned at the first. */
    acp_job_id d = insert_with(st, QUEUE, &one);
    store_job jd = claim_job(st, &d, OWNER, 1);
    store_job_free(&jd);
    contract->advance(st, 2);
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_fail_abandoned(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    store_dispatch_list_free(&list);
    store_job single = get_job(st, &d);
    assert_int_equal(single.status, ACP_STATUS_FAILED);
    assert_string_equal(
        single.message,
        "abandoned: the process running attempt 1 of 1 stopped (its lease expired)");
    store_job_free(&single);
    assert_int_equal(status_of(st, &c), ACP_STATUS_IN_PROGRESS);
}

static size_t take(store *st, unsigned older_than, const acp_job_id *id, unsigned *failures)
{
    const char *queues[] = {"unserved", QUEUE};
    store_dispatch_list list;
    int64_t next_due = -1;
    assert_int_equal(store_take_undispatched(st, older_than, queues, 2, 10, &list, &next_due), 0);
    assert_true(next_due == 0); /* no job of these queues waits for its time */
    size_t count = list.count;
    if (count == 1) {
        assert_true(acp_job_id_equal(&list.items[0].id, id));
        if (failures)
            *failures = list.items[0].failures;
    }
    store_dispatch_list_free(&list);
    return count;
}

static void take_undispatched_backs_off_after_failed_publishes(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE);
    acp_job_id elsewhere = insert_job(st, OTHER_QUEUE); /* a queue not served */
    assert_int_equal(store_clear_dispatched(st, &elsewhere), 0);
    unsigned failures = 99;
    assert_int_equal(take(st, 60, &id, NULL), 0); /* published at insert */
    assert_int_equal(store_clear_dispatched(st, &id), 0);
    assert_int_equal(take(st, 60, &id, &failures), 1);
    assert_int_equal(failures, 0);
    assert_int_equal(take(st, 60, &id, NULL), 0); /* taken: dispatched now */
    contract->advance(st, 61);
    assert_int_equal(take(st, 60, &id, NULL), 1); /* published too long ago */

    assert_int_equal(store_dispatch_failed(st, &id), 0); /* retry in 1 s */
    assert_int_equal(take(st, 60, &id, NULL), 0);
    contract->advance(st, 2);
    assert_int_equal(take(st, 60, &id, &failures), 1);
    assert_int_equal(failures, 1);
    assert_int_equal(store_dispatch_failed(st, &id), 0); /* retry in 2 s */
    contract->advance(st, 1);
    assert_int_equal(take(st, 60, &id, NULL), 0);
    contract->advance(st, 2);
    assert_int_equal(take(st, 60, &id, &failures), 1);
    assert_int_equal(failures, 2);

    /* 2^9 s would be far beyond the cap of 60 s. */
    for (int i = 0; i < 8; i++)
        assert_int_equal(store_dispatch_failed(st, &id), 0);
    contract->advance(st, 50);
    assert_int_equal(take(st, 60, &id, NULL), 0);
    contract->advance(st, 15);
    assert_int_equal(take(st, 60, &id, &failures), 1);
    assert_int_equal(failures, 10);

    /* A publish resets the count; only queued jobs are taken. */
    assert_int_equal(store_mark_dispatched(st, &id), 0);
    contract->advance(st, 61);
    assert_int_equal(take(st, 60, &id, &failures), 1);
    assert_int_equal(failures, 0);
    assert_int_equal(store_clear_dispatched(st, &id), 0);
    store_job job = claim_job(st, &id, OWNER, 60);
    store_job_free(&job);
    assert_int_equal(take(st, 60, &id, NULL), 0);
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(store_mark_dispatched(st, &missing), ACP_ENOTFOUND);
    assert_int_equal(store_clear_dispatched(st, &missing), ACP_ENOTFOUND);
    assert_int_equal(store_dispatch_failed(st, &missing), ACP_ENOTFOUND);
}

/* With a limit, requeue_expired takes the leases that ran out first (and
 * answers oldest first), take_undispatched the first jobs in claim order
 * (and answers in that order). */
static void batches_take_the_first_rows_in_their_order(void **state)
{
    store *st = *state;
    acp_job_id ids[3];
    store_job jobs[3];
    for (int i = 0; i < 3; i++)
        ids[i] = insert_job(st, QUEUE);
    /* The newest job's lease runs out first (claimed in claim order: the
     * oldest first). */
    jobs[0] = claim_job(st, &ids[0], OWNER, 5);
    jobs[1] = claim_job(st, &ids[1], OWNER, 3);
    jobs[2] = claim_job(st, &ids[2], OWNER, 1);
    for (int i = 0; i < 3; i++)
        store_job_free(&jobs[i]);
    contract->advance(st, 4);
    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(st, 1, &list), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &ids[2]));
    store_dispatch_list_free(&list);
    contract->advance(st, 2);
    assert_int_equal(store_requeue_expired(st, 5, &list), 0);
    assert_int_equal(list.count, 2);
    store_job first = get_job(st, &list.items[0].id), second = get_job(st, &list.items[1].id);
    assert_true(by_created(&first, &second) < 0);
    store_job_free(&first);
    store_job_free(&second);
    store_dispatch_list_free(&list);

    /* Three unpublished due jobs: the one of a higher priority, then the
     * older of the other two. */
    const store_run_options high = {.priority = ACP_PRIORITY_DEFAULT + 20};
    acp_job_id due[3] = {insert_job(st, OTHER_QUEUE), insert_job(st, OTHER_QUEUE),
                         insert_with(st, OTHER_QUEUE, &high)};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_clear_dispatched(st, &due[i]), 0);
        jobs[i] = get_job(st, &due[i]);
    }
    int older = by_created(&jobs[0], &jobs[1]) < 0 ? 0 : 1;
    for (int i = 0; i < 3; i++)
        store_job_free(&jobs[i]);
    const char *queues[] = {OTHER_QUEUE};
    assert_int_equal(store_take_undispatched(st, 60, queues, 1, 2, &list, NULL), 0);
    assert_int_equal(list.count, 2);
    assert_true(acp_job_id_equal(&list.items[0].id, &due[2]));
    assert_true(acp_job_id_equal(&list.items[1].id, &due[older]));
    store_dispatch_list_free(&list);
    assert_int_equal(store_take_undispatched(st, 60, queues, 1, 2, &list, NULL), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &due[1 - older]));
    store_dispatch_list_free(&list);
}

static void fail_undispatchable_fails_only_queued_jobs(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE), missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(store_fail_undispatchable(st, &id, "bad config"), 0);
    store_job job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_string_equal(job.message, "bad config");
    assert_true(job.finished > 0);
    store_job_free(&job);
    assert_int_equal(store_fail_undispatchable(st, &id, "again"), ACP_ECONFLICT);
    assert_int_equal(store_fail_undispatchable(st, &missing, "x"), ACP_ENOTFOUND);
    const char *queues[] = {QUEUE};
    store_dispatch_list list;
    assert_int_equal(store_take_undispatched(st, 0, queues, 1, 10, &list, NULL), 0);
    assert_int_equal(list.count, 0);
}

/* ---- transactions ------------------------------------------------------------- */

static void expire_takes_any_status_but_in_progress(void **state)
{
    store *st = *state;
    static const acp_job_status statuses[] = {ACP_STATUS_QUEUED, ACP_STATUS_COMPLETE,
                                              ACP_STATUS_FAILED, ACP_STATUS_EXPIRED};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        acp_job_id id = job_in(st, statuses[i]);
        store_tx *tx = NULL;
        acp_job_status previous = 0;
        assert_int_equal(store_expire_begin(st, &id, 0, &tx, &previous), 0);
        assert_non_null(tx);
        assert_int_equal(previous, statuses[i]);
        assert_int_equal(store_tx_end(tx, true), 0);
        assert_int_equal(status_of(st, &id), ACP_STATUS_EXPIRED);
    }
    acp_job_id running = job_in(st, ACP_STATUS_IN_PROGRESS), missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    store_tx *tx = NULL;
    assert_int_equal(store_expire_begin(st, &running, 0, &tx, NULL), ACP_EBUSY);
    assert_null(tx);
    assert_int_equal(store_expire_begin(st, &missing, 0, &tx, NULL), ACP_ENOTFOUND);
    assert_null(tx);
    assert_int_equal(store_tx_end(NULL, true), 0);
}

static void expire_with_a_cutoff_takes_old_complete_jobs_and_rolls_back(void **state)
{
    store *st = *state;
    acp_job_id done = job_in(st, ACP_STATUS_COMPLETE), failed = job_in(st, ACP_STATUS_FAILED);
    acp_job_id running = job_in(st, ACP_STATUS_IN_PROGRESS);
    store_job job = get_job(st, &done);
    int64_t accessed = job.last_accessed;
    store_job_free(&job);
    store_tx *tx = NULL;
    acp_job_status previous;
    assert_int_equal(store_expire_begin(st, &done, accessed, &tx, &previous), ACP_ECONFLICT);
    assert_int_equal(store_expire_begin(st, &failed, accessed + 1000000000, &tx, NULL),
                     ACP_ECONFLICT);
    assert_int_equal(store_expire_begin(st, &running, accessed + 1000000000, &tx, NULL), ACP_EBUSY);
    assert_int_equal(store_expire_begin(st, &done, accessed + 1, &tx, &previous), 0);
    assert_int_equal(previous, ACP_STATUS_COMPLETE);
    /* Readers see the row as committed until the transaction ends. */
    assert_int_equal(status_of(st, &done), ACP_STATUS_COMPLETE);
    assert_int_equal(store_tx_end(tx, false), 0);
    assert_int_equal(status_of(st, &done), ACP_STATUS_COMPLETE);
    assert_int_equal(store_expire_begin(st, &done, accessed + 1, &tx, NULL), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(status_of(st, &done), ACP_STATUS_EXPIRED);
}

static void delete_transactions_and_delete_expired(void **state)
{
    store *st = *state;
    acp_job_id id = job_in(st, ACP_STATUS_QUEUED), running = job_in(st, ACP_STATUS_IN_PROGRESS);
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    store_tx *tx = NULL;
    assert_int_equal(store_delete_begin(st, &running, &tx), ACP_EBUSY);
    assert_int_equal(store_delete_begin(st, &missing, &tx), ACP_ENOTFOUND);
    assert_int_equal(store_delete_begin(st, &id, &tx), 0);
    bool exists[2];
    const acp_job_id ids[] = {id, missing};
    assert_int_equal(store_exists(st, ids, 2, exists), 0);
    assert_true(exists[0]); /* not committed yet */
    assert_false(exists[1]);
    assert_int_equal(store_tx_end(tx, false), 0);
    assert_int_equal(status_of(st, &id), ACP_STATUS_QUEUED);
    assert_int_equal(store_delete_begin(st, &id, &tx), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(store_exists(st, ids, 2, exists), 0);
    assert_false(exists[0]);

    acp_job_id done = job_in(st, ACP_STATUS_COMPLETE), gone = job_in(st, ACP_STATUS_EXPIRED);
    assert_int_equal(store_delete_expired(st, &done), ACP_ECONFLICT);
    assert_int_equal(store_delete_expired(st, &gone), 0);
    assert_int_equal(store_delete_expired(st, &gone), ACP_ENOTFOUND);
    assert_int_equal(status_of(st, &done), ACP_STATUS_COMPLETE);
}

static void recording_a_run_is_fenced_and_knows_its_own_end(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE);
    store_job run = claim_job(st, &id, OWNER, 60);
    store_tx *tx = NULL;
    acp_job_status recorded = 0;
    assert_int_equal(
        store_finish_begin(st, &id, OTHER_OWNER, run.attempts, run.grabbed, &tx, &recorded),
        ACP_ECONFLICT);
    assert_null(tx);

    /* Rolled back: still running, leased. */
    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     0);
    const char *outputs[] = {"result.txt"};
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, outputs, NULL, 1, &id), 0);
    assert_int_equal(status_of(st, &id), ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_tx_end(tx, false), 0);
    assert_int_equal(status_of(st, &id), ACP_STATUS_IN_PROGRESS);

    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     0);
    /* The end of the run is the time it is recorded (clock_timestamp()),
     * not the transaction's start: its results were uploaded in between,
     * so a change made meanwhile comes before it. */
    acp_job_id later = insert_job(st, QUEUE);
    clock_sleep_ms(20);
    assert_int_equal(store_touch(st, &later), 0);
    clock_sleep_ms(20);
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, outputs, NULL, 1, &id), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    store_job done = get_job(st, &id), touched = get_job(st, &later);
    assert_int_equal(done.status, ACP_STATUS_COMPLETE);
    assert_null(done.message);
    assert_true(done.finished >= done.grabbed);
    assert_true(done.finished > touched.last_accessed);
    store_job_free(&done);
    store_job_free(&touched);

    /* The same claim again: its end is recorded (a lost COMMIT answer). */
    tx = NULL;
    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     1);
    assert_null(tx);
    assert_int_equal(recorded, ACP_STATUS_COMPLETE);
    assert_int_equal(
        store_finish_begin(st, &id, OWNER, run.attempts + 1, run.grabbed, &tx, &recorded),
        ACP_ECONFLICT);
    assert_int_equal(
        store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed + 1, &tx, &recorded),
        ACP_ECONFLICT);
    store_job_free(&run);
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(store_finish_begin(st, &missing, OWNER, 1, 1, &tx, &recorded), ACP_ECONFLICT);
}

static void locked_rows_are_skipped_by_renewal_and_batches(void **state)
{
    store *st = *state;
    /* One run requeue_expired would take, one (its only attempt spent)
     * fail_abandoned would take, both being recorded. */
    const store_run_options once = {.priority = ACP_PRIORITY_DEFAULT, .max_attempts = 1};
    acp_job_id id = insert_job(st, QUEUE);
    store_job run = claim_job(st, &id, OWNER, 1);
    acp_job_id last = insert_with(st, QUEUE, &once);
    store_job last_run = claim_job(st, &last, OWNER, 1);
    contract->advance(st, 2);
    store_tx *tx, *last_tx;
    acp_job_status recorded;
    assert_int_equal(store_finish_begin(st, &id, OWNER, run.attempts, run.grabbed, &tx, &recorded),
                     0);
    assert_int_equal(store_finish_begin(st, &last, OWNER, last_run.attempts, last_run.grabbed,
                                        &last_tx, &recorded),
                     0);
    size_t renewed = 99;
    bool cancel = true;
    assert_int_equal(store_renew_leases(st, OWNER, 60, &id, 1, &renewed, &cancel), 0);
    assert_int_equal(renewed, 0);
    assert_false(cancel);
    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_fail_abandoned(st, 10, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, "late", NULL, NULL, 0, &id), 0);
    assert_int_equal(store_tx_end(tx, true), 0);
    assert_int_equal(store_finish_tx(last_tx, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0, &last), 0);
    assert_int_equal(store_tx_end(last_tx, true), 0);
    store_job done = get_job(st, &id);
    assert_int_equal(done.status, ACP_STATUS_COMPLETE);
    assert_string_equal(done.message, "late");
    store_job_free(&done);
    store_job_free(&run);
    assert_int_equal(status_of(st, &last), ACP_STATUS_COMPLETE);
    store_job_free(&last_run);

    /* Unlocked, an expired lease is the batches' again. */
    acp_job_id other = insert_job(st, QUEUE);
    store_job second = claim_job(st, &other, OWNER, 1);
    store_job_free(&second);
    contract->advance(st, 2);
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    store_dispatch_list_free(&list);

    /* An unpublished job under a delete transaction is not taken. */
    acp_job_id queued = insert_job(st, OTHER_QUEUE);
    assert_int_equal(store_clear_dispatched(st, &queued), 0);
    assert_int_equal(store_delete_begin(st, &queued, &tx), 0);
    const char *queues[] = {OTHER_QUEUE};
    assert_int_equal(store_take_undispatched(st, 60, queues, 1, 10, &list, NULL), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_tx_end(tx, false), 0);
    assert_int_equal(store_take_undispatched(st, 60, queues, 1, 10, &list, NULL), 0);
    assert_int_equal(list.count, 1);
    store_dispatch_list_free(&list);
}

typedef struct blocked_call {
    store *st;
    acp_job_id id;
    int rc;
    atomic_bool done;
} blocked_call;

static void *insert_when_unlocked(void *arg)
{
    blocked_call *call = arg;
    call->rc = store_insert(call->st, &call->id, OTHER_QUEUE, NULL, NULL, 0, NULL);
    atomic_store(&call->done, true);
    return NULL;
}

/* An insert of a row a delete transaction holds waits for its end, then
 * judges the row as committed: after a commit the id is free, after a
 * rollback it is taken. A claim does not wait (SKIP LOCKED): while the
 * only due job is held it says so (ACP_EBUSY: try again); after a commit
 * there is nothing to claim, after a rollback the job is claimable. */
static void changes_wait_for_the_transaction_on_their_row(void **state)
{
    store *st = *state;
    for (int round = 0; round < 4; round++) {
        bool commit = round % 2 == 0, insert = round >= 2;
        acp_job_id id = insert_job(st, QUEUE);
        store_tx *tx;
        assert_int_equal(store_delete_begin(st, &id, &tx), 0);
        store_job job;
        if (!insert) {
            assert_int_equal(store_claim(st, QUEUE, OTHER_OWNER, 60, &job), ACP_EBUSY);
            assert_int_equal(store_tx_end(tx, commit), 0);
            if (commit) {
                assert_int_equal(store_claim(st, QUEUE, OTHER_OWNER, 60, &job), ACP_ENOTFOUND);
                assert_int_equal(store_get(st, &id, &job), ACP_ENOTFOUND);
            } else {
                job = claim_job(st, &id, OTHER_OWNER, 60);
                store_job_free(&job);
                assert_int_equal(status_of(st, &id), ACP_STATUS_IN_PROGRESS);
            }
            continue;
        }
        blocked_call call = {.st = st, .id = id, .rc = 1};
        atomic_init(&call.done, false);
        pthread_t thread;
        assert_int_equal(pthread_create(&thread, NULL, insert_when_unlocked, &call), 0);
        clock_sleep_ms(200); /* let it reach the lock */
        assert_false(atomic_load(&call.done));
        assert_int_equal(store_tx_end(tx, commit), 0);
        pthread_join(thread, NULL);
        assert_int_equal(call.rc, commit ? 0 : ACP_ECONFLICT);
        job = get_job(st, &id);
        assert_string_equal(job.queue, commit ? OTHER_QUEUE : QUEUE);
        store_job_free(&job);
    }
}

/* ---- listing ---------------------------------------------------------------------- */

static void list_pages_in_creation_order_with_filters(void **state)
{
    store *st = *state;
    acp_job_id ids[7];
    for (int i = 0; i < 5; i++)
        ids[i] = insert_job(st, QUEUE);
    ids[5] = insert_job(st, OTHER_QUEUE);
    ids[6] = insert_job(st, OTHER_QUEUE);
    store_job r0 = claim_job(st, &ids[0], OWNER, 60), r1 = claim_job(st, &ids[1], OWNER, 60);
    store_job_free(&r0);
    store_job_free(&r1);
    assert_int_equal(store_finish(st, &ids[1], OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);

    /* Every row, two at a time. */
    store_job all[8];
    size_t total = 0;
    int64_t after_created = 0;
    acp_job_id after;
    for (int page = 0; page < 10; page++) {
        store_job *rows;
        size_t count;
        assert_int_equal(
            store_list(st, 0, NULL, after_created, page ? &after : NULL, 2, &rows, &count), 0);
        assert_true(count <= 2 && total + count <= 7);
        for (size_t i = 0; i < count; i++) {
            assert_int_equal(rows[i].queue_position, -1);
            all[total++] = rows[i];
        }
        if (count) {
            after = rows[count - 1].id;
            after_created = rows[count - 1].created;
        }
        free(rows);
        if (count < 2)
            break;
    }
    assert_int_equal(total, 7);
    for (size_t i = 1; i < total; i++)
        assert_true(by_created(&all[i - 1], &all[i]) < 0);
    for (size_t i = 0; i < total; i++)
        store_job_free(&all[i]);

    store_job *rows;
    size_t count;
    assert_int_equal(store_list(st, 1u << ACP_STATUS_QUEUED, QUEUE, 0, NULL, 10, &rows, &count), 0);
    assert_int_equal(count, 3);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(rows[i].status, ACP_STATUS_QUEUED);
        assert_string_equal(rows[i].queue, QUEUE);
        store_job_free(&rows[i]);
    }
    free(rows);
    assert_int_equal(store_list(st, (1u << ACP_STATUS_IN_PROGRESS) | (1u << ACP_STATUS_COMPLETE),
                                NULL, 0, NULL, 10, &rows, &count),
                     0);
    assert_int_equal(count, 2);
    for (size_t i = 0; i < count; i++)
        store_job_free(&rows[i]);
    free(rows);
    assert_int_equal(store_list(st, 0, OTHER_QUEUE, 0, NULL, 10, &rows, &count), 0);
    assert_int_equal(count, 2);
    assert_true(acp_job_id_equal(&rows[0].id, &ids[5]) || acp_job_id_equal(&rows[0].id, &ids[6]));
    for (size_t i = 0; i < count; i++)
        store_job_free(&rows[i]);
    free(rows);
    assert_int_equal(store_list(st, 0, NULL, 0, NULL, 0, &rows, &count), 0);
    assert_int_equal(count, 0);
    assert_null(rows);
    assert_int_equal(store_list(st, 1u, NULL, 0, NULL, 10, &rows, &count), ACP_EINVAL);
    assert_int_equal(store_list(st, 1u << 9, NULL, 0, NULL, 10, &rows, &count), ACP_EINVAL);
}

static void list_expirable_pages_old_complete_jobs_by_id(void **state)
{
    store *st = *state;
    acp_job_id done[3];
    int64_t newest = 0, oldest = INT64_MAX;
    for (int i = 0; i < 3; i++) {
        done[i] = job_in(st, ACP_STATUS_COMPLETE);
        store_job job = get_job(st, &done[i]);
        newest = job.last_accessed > newest ? job.last_accessed : newest;
        oldest = job.last_accessed < oldest ? job.last_accessed : oldest;
        store_job_free(&job);
    }
    job_in(st, ACP_STATUS_FAILED);
    job_in(st, ACP_STATUS_EXPIRED);
    acp_job_id *ids;
    size_t count;
    assert_int_equal(store_list_expirable(st, newest + 1, NULL, 10, &ids, &count), 0);
    assert_int_equal(count, 3);
    for (size_t i = 1; i < count; i++)
        assert_true(memcmp(ids[i - 1].bytes, ids[i].bytes, sizeof ids[i].bytes) < 0);
    acp_job_id sorted[3] = {ids[0], ids[1], ids[2]};
    free(ids);
    /* One at a time, after the last one seen. */
    acp_job_id *page;
    const acp_job_id *after = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_list_expirable(st, newest + 1, after, 1, &page, &count), 0);
        assert_int_equal(count, 1);
        assert_true(acp_job_id_equal(&page[0], &sorted[i]));
        free(page);
        after = &sorted[i];
    }
    assert_int_equal(store_list_expirable(st, newest + 1, after, 1, &page, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(store_list_expirable(st, oldest, NULL, 10, &page, &count), 0);
    assert_int_equal(count, 0);
    assert_int_equal(store_touch(st, &done[0]), 0);
    assert_int_equal(store_list_expirable(st, newest + 1, NULL, 10, &page, &count), 0);
    assert_int_equal(count, 2);
    free(page);
}

static void exists_and_runs_alive_answer_per_id(void **state)
{
    store *st = *state;
    acp_job_id queued = insert_job(st, QUEUE), running = job_in(st, ACP_STATUS_IN_PROGRESS);
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    const acp_job_id ids[] = {queued, missing, running, queued};
    bool flags[4];
    assert_int_equal(store_exists(st, ids, 4, flags), 0);
    assert_true(flags[0] && !flags[1] && flags[2] && flags[3]);
    const unsigned attempts[] = {0, 1, 1, 1};
    assert_int_equal(store_runs_alive(st, ids, attempts, 4, flags), 0);
    assert_true(!flags[0] && !flags[1] && flags[2] && !flags[3]);
    assert_int_equal(store_exists(st, NULL, 0, NULL), 0);
    assert_int_equal(store_runs_alive(st, NULL, NULL, 0, NULL), 0);
    assert_int_equal(store_exists(st, NULL, 1, flags), ACP_EINVAL);
}

/* Claim @id (the best due job of QUEUE) and finish it complete. */
static void run_and_finish(store *st, const acp_job_id *id)
{
    store_job run = claim_job(st, id, OWNER, 60);
    store_job_free(&run);
    assert_int_equal(store_finish(st, id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0), 0);
}
/* ---- job control ------------------------------------------------------------ */

#define CLOCK_QUEUE "contract-clock"
#define SECOND      INT64_C(1000000)

/* The store's now(): the creation time of a job made for it (then gone). */
static int64_t store_now(store *st)
{
    acp_job_id probe = insert_job(st, CLOCK_QUEUE);
    store_job job = get_job(st, &probe);
    int64_t now = job.created;
    store_job_free(&job);
    assert_int_equal(store_delete(st, &probe), 0);
    return now;
}

/* A stored not_before is the one given (µs; PostgreSQL goes through
 * seconds as a double: a microsecond either way). */
static void assert_time_near(int64_t got, int64_t expected)
{
    int64_t off = got - expected;
    if (off < -1000 || off > 1000)
        fail_msg("time %lld is %lld us from %lld", (long long)got, (long long)off,
                 (long long)expected);
}

static acp_job_id insert_control(store *st, int priority, int64_t not_before, int expect_rc)
{
    const store_run_options opt = {.priority = priority, .not_before = not_before};
    acp_job_id id;
    assert_int_equal(acp_job_id_generate(&id), 0);
    int rc = store_insert(st, &id, QUEUE, "{\"k\":1}", NULL, 0, &opt);
    if (rc != expect_rc)
        fail_msg("store_insert: %d, expected %d (%s)", rc, expect_rc,
                 rc < 0 ? acp_last_error() : "");
    return id;
}

static long position_of(store *st, const acp_job_id *id)
{
    store_job job = get_job(st, id);
    long position = job.queue_position;
    store_job_free(&job);
    return position;
}

/* The best due job first: the highest priority, then the one due longest,
 * then the smallest id; a job not yet due is not claimed. */
static void claim_order_is_priority_then_due_time_then_id(void **state)
{
    store *st = *state;
    int64_t base = store_now(st);
    acp_job_id a = insert_control(st, 50, 0, 0), b = insert_control(st, 50, 0, 0);
    acp_job_id high = insert_control(st, 70, 0, 0), low = insert_control(st, 40, 0, 0);
    acp_job_id later = insert_control(st, 90, base + 100 * SECOND, 1);
    /* Two of the same priority due at the same instant: by id. */
    acp_job_id x = insert_control(st, 60, base + 50 * SECOND, 1),
               y = insert_control(st, 60, base + 50 * SECOND, 1);
    bool x_first = memcmp(x.bytes, y.bytes, sizeof x.bytes) < 0;
    contract->advance(st, 60);
    const acp_job_id *expected[] = {&high, x_first ? &x : &y, x_first ? &y : &x, &a, &b, &low};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        store_job job = claim_job(st, expected[i], OWNER, 600);
        assert_int_equal(job.attempts, 1);
        store_job_free(&job);
    }
    store_job none;
    assert_int_equal(store_claim(st, QUEUE, OWNER, 600, &none), ACP_ENOTFOUND);
    assert_int_equal(status_of(st, &later), ACP_STATUS_QUEUED);
    contract->advance(st, 50);
    store_job job = claim_job(st, &later, OWNER, 600);
    assert_int_equal(job.priority, 90);
    store_job_free(&job);
}

/* Queue positions count the jobs ahead in claim order: a higher priority,
 * or the same and due earlier; a delayed job counts by its not_before. */
static void queue_positions_follow_claim_order(void **state)
{
    store *st = *state;
    int64_t base = store_now(st);
    acp_job_id a = insert_control(st, 50, 0, 0), b = insert_control(st, 50, 0, 0);
    acp_job_id high = insert_control(st, 70, 0, 0);
    assert_int_equal(position_of(st, &high), 0);
    assert_int_equal(position_of(st, &a), 1);
    assert_int_equal(position_of(st, &b), 2);
    acp_job_id delayed = insert_control(st, 50, base + 100 * SECOND, 1);
    assert_int_equal(position_of(st, &delayed), 3);
    assert_int_equal(position_of(st, &b), 2);
    acp_job_id urgent = insert_control(st, 90, base + 200 * SECOND, 1);
    assert_int_equal(position_of(st, &urgent), 0);
    assert_int_equal(position_of(st, &high), 1);
    assert_int_equal(position_of(st, &delayed), 4);
    /* Claimed in that order (the due ones), each moves the rest up. */
    store_job run = claim_job(st, &high, OWNER, 600);
    store_job_free(&run);
    assert_int_equal(position_of(st, &a), 1);
    assert_int_equal(position_of(st, &delayed), 3);
    assert_int_equal(position_of(st, &high), -1);
}

/* A job due later is inserted (and re-run) unpublished, handed out by
 * store_take_undispatched once due, and next_due says when. */
static void delayed_jobs_are_handed_out_once_due(void **state)
{
    store *st = *state;
    const char *queues[] = {QUEUE};
    int64_t base = store_now(st);
    acp_job_id delayed = insert_control(st, 50, base + 100 * SECOND, 1);
    store_job job = get_job(st, &delayed);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_time_near(job.not_before, base + 100 * SECOND);
    assert_int_equal(job.priority, 50);
    assert_int_equal(job.max_attempts, 3); /* the defaults of 0 fields */
    assert_int_equal(job.backoff_base_ms, 1000);
    assert_int_equal(job.backoff_max_ms, 300000);
    assert_int_equal(job.timeout_seconds, 0);
    store_job_free(&job);
    /* A time in the past is now: due at once, never ahead of older jobs. */
    acp_job_id past = insert_control(st, 50, base - 3600 * SECOND, 0);
    job = get_job(st, &past);
    assert_true(job.not_before == job.created);
    store_job_free(&job);
    assert_int_equal(store_clear_dispatched(st, &past), 0);

    store_dispatch_list list;
    int64_t next_due = -1;
    assert_int_equal(store_take_undispatched(st, 3600, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &past));
    store_dispatch_list_free(&list);
    assert_time_near(next_due, base + 100 * SECOND);
    store_job none;
    run_and_finish(st, &past);
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &none), ACP_ENOTFOUND);

    contract->advance(st, 101);
    next_due = -1;
    assert_int_equal(store_take_undispatched(st, 3600, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &delayed));
    store_dispatch_list_free(&list);
    assert_true(next_due == 0);
    assert_int_equal(store_take_undispatched(st, 3600, queues, 1, 10, &list, NULL), 0);
    assert_int_equal(list.count, 0); /* published: dispatched now */
    run_and_finish(st, &delayed);

    /* A re-run for later: 1, unpublished until due. */
    int64_t now = store_now(st);
    const store_run_options later = {.priority = 50, .not_before = now + 30 * SECOND};
    assert_int_equal(store_requeue(st, &delayed, QUEUE, NULL, NULL, 0, &later), 1);
    assert_int_equal(store_take_undispatched(st, 0, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 0);
    assert_time_near(next_due, now + 30 * SECOND);
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &none), ACP_ENOTFOUND);
    contract->advance(st, 31);
    assert_int_equal(store_take_undispatched(st, 0, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 1);
    store_dispatch_list_free(&list);
    assert_true(next_due == 0);
    /* And one for now: 0, published by the caller. */
    run_and_finish(st, &delayed);
    assert_int_equal(store_requeue(st, &delayed, QUEUE, NULL, NULL, 0, NULL), 0);
    assert_int_equal(store_take_undispatched(st, 60, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 0);
}

/* A failed attempt with attempts left goes back to the queue for later,
 * only from the lease holder and not while a cancellation is asked. */
static void retry_requeues_for_later_fenced_by_the_lease(void **state)
{
    store *st = *state;
    const char *queues[] = {QUEUE};
    acp_job_id id = insert_job(st, QUEUE), queued = insert_job(st, OTHER_QUEUE), missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    store_job run = claim_job(st, &id, OWNER, 60);
    store_job_free(&run);
    assert_int_equal(store_retry(st, &id, OTHER_OWNER, "boom", 5000), ACP_ECONFLICT);
    assert_int_equal(status_of(st, &id), ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_retry(st, &queued, OWNER, "boom", 5000), ACP_ECONFLICT);
    assert_int_equal(status_of(st, &queued), ACP_STATUS_QUEUED);
    assert_int_equal(store_retry(st, &missing, OWNER, "boom", 5000), ACP_ECONFLICT);

    int64_t t0 = store_now(st);
    assert_int_equal(store_retry(st, &id, OWNER, "boom", 5000), 0);
    int64_t t1 = store_now(st);
    store_job job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_string_equal(job.message, "boom");
    assert_int_equal(job.attempts, 1); /* kept: the next claim is attempt 2 */
    assert_true(job.grabbed == 0);
    assert_true(job.not_before >= t0 + 5 * SECOND - 1000 && job.not_before <= t1 + 5 * SECOND);
    store_job_free(&job);
    /* The lease is gone with the run. */
    size_t renewed = 9;
    assert_int_equal(store_renew_leases(st, OWNER, 60, &id, 1, &renewed, NULL), 0);
    assert_int_equal(renewed, 0);
    assert_int_equal(store_finish(st, &id, OWNER, ACP_STATUS_COMPLETE, NULL, NULL, NULL, 0),
                     ACP_ECONFLICT);
    /* Unpublished, and not due before its time. */
    store_dispatch_list list;
    int64_t next_due = 0;
    assert_int_equal(store_take_undispatched(st, 3600, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 0);
    assert_true(next_due >= t0 + 5 * SECOND - 1000 && next_due <= t1 + 5 * SECOND);
    store_job none;
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &none), ACP_ENOTFOUND);
    contract->advance(st, 6);
    assert_int_equal(store_take_undispatched(st, 3600, queues, 1, 10, &list, NULL), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &id));
    store_dispatch_list_free(&list);
    run = claim_job(st, &id, OTHER_OWNER, 60);
    assert_int_equal(run.attempts, 2);
    store_job_free(&run);

    /* While its cancellation is asked, the run ends cancelled, not retried. */
    acp_job_status previous = ACP_STATUS_QUEUED;
    assert_int_equal(store_cancel(st, &id, &previous, NULL), 0);
    assert_int_equal(previous, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(store_retry(st, &id, OTHER_OWNER, "boom", 0), ACP_ECONFLICT);
    job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    assert_true(job.cancel_requested > 0);
    store_job_free(&job);
    assert_int_equal(store_finish(st, &id, OTHER_OWNER, ACP_STATUS_CANCELLED, NULL, NULL, NULL, 0),
                     0);
    job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_CANCELLED);
    assert_string_equal(job.message, "cancelled");
    assert_true(job.finished > 0);
    store_job_free(&job);
}

/* Cancel: a queued (or delayed) job at once, a running one by request; a
 * finished one is refused, naming its status; a cancelled one can re-run. */
static void cancel_ends_queued_jobs_and_asks_running_ones(void **state)
{
    store *st = *state;
    const char *queues[] = {QUEUE};
    int64_t base = store_now(st);
    acp_job_id queued = insert_job(st, QUEUE);
    acp_job_id delayed = insert_control(st, 50, base + 100 * SECOND, 1);
    acp_job_status previous = ACP_STATUS_FAILED;
    acp_layout layout = ACP_LAYOUT_NATIVE;
    assert_int_equal(store_cancel(st, &queued, &previous, &layout), 0);
    assert_int_equal(previous, ACP_STATUS_QUEUED);
    assert_int_equal(layout, ACP_LAYOUT_LCP);
    assert_int_equal(store_cancel(st, &delayed, NULL, NULL), 0);
    for (int i = 0; i < 2; i++) {
        store_job job = get_job(st, i ? &delayed : &queued);
        assert_int_equal(job.status, ACP_STATUS_CANCELLED);
        assert_string_equal(job.message, "cancelled");
        assert_true(job.finished > 0);
        assert_int_equal(job.attempts, 0);
        assert_int_equal(job.queue_position, -1);
        store_job_free(&job);
    }
    /* Never runs, never published. */
    store_job none;
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &none), ACP_ENOTFOUND);
    store_dispatch_list list;
    int64_t next_due = -1;
    assert_int_equal(store_take_undispatched(st, 0, queues, 1, 10, &list, &next_due), 0);
    assert_int_equal(list.count, 0);
    assert_true(next_due == 0);
    contract->advance(st, 101);
    assert_int_equal(store_claim(st, QUEUE, OWNER, 60, &none), ACP_ENOTFOUND);
    /* Cancelled already: refused, naming the status. */
    assert_int_equal(store_cancel(st, &queued, NULL, NULL), ACP_ECONFLICT);
    assert_non_null(strstr(acp_last_error(), "cancelled"));
    assert_non_null(strstr(acp_last_error(), "only a queued or running job can be cancelled"));

    /* Running: asked (the status stays), again is fine, renewals say so. */
    const store_run_options native = {.layout = ACP_LAYOUT_NATIVE, .priority = 50};
    acp_job_id running = insert_with(st, QUEUE, &native), other = insert_job(st, QUEUE);
    store_job run = claim_job(st, &running, OWNER, 60), run2 = claim_job(st, &other, OWNER, 60);
    store_job_free(&run);
    store_job_free(&run2);
    assert_int_equal(store_cancel(st, &running, &previous, &layout), 0);
    assert_int_equal(previous, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(layout, ACP_LAYOUT_NATIVE);
    contract->advance(st, 1); /* a second request would be a later time */
    store_job first = get_job(st, &running);
    assert_int_equal(first.status, ACP_STATUS_IN_PROGRESS);
    assert_true(first.cancel_requested > 0);
    assert_null(first.message);
    assert_int_equal(store_cancel(st, &running, &previous, NULL), 0);
    assert_int_equal(previous, ACP_STATUS_IN_PROGRESS);
    store_job second = get_job(st, &running);
    assert_true(second.cancel_requested == first.cancel_requested); /* kept */
    store_job_free(&first);
    store_job_free(&second);
    const acp_job_id both[] = {other, running};
    bool cancel[2] = {true, false};
    size_t renewed = 0;
    assert_int_equal(store_renew_leases(st, OWNER, 60, both, 2, &renewed, cancel), 0);
    assert_int_equal(renewed, 2);
    assert_false(cancel[0]);
    assert_true(cancel[1]);
    assert_int_equal(store_finish(st, &running, OWNER, ACP_STATUS_CANCELLED, NULL, NULL, NULL, 0),
                     0);
    assert_int_equal(status_of(st, &running), ACP_STATUS_CANCELLED);

    /* Finished ones: refused with their status named; unknown: not found. */
    static const acp_job_status ended[] = {ACP_STATUS_COMPLETE, ACP_STATUS_FAILED,
                                           ACP_STATUS_EXPIRED};
    for (size_t i = 0; i < sizeof ended / sizeof ended[0]; i++) {
        acp_job_id id = job_in(st, ended[i]);
        assert_int_equal(store_cancel(st, &id, NULL, NULL), ACP_ECONFLICT);
        assert_non_null(strstr(acp_last_error(), acp_job_status_name(ended[i])));
        assert_int_equal(status_of(st, &id), ended[i]);
    }
    acp_job_id missing;
    assert_int_equal(acp_job_id_generate(&missing), 0);
    assert_int_equal(store_cancel(st, &missing, NULL, NULL), ACP_ENOTFOUND);

    /* A cancelled job re-runs as a new run: nothing of the old one left. */
    const acp_job_id *again[] = {&queued, &running};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(store_requeue(st, again[i], OTHER_QUEUE, NULL, NULL, 0, NULL), 0);
        store_job job = get_job(st, again[i]);
        assert_int_equal(job.status, ACP_STATUS_QUEUED);
        assert_null(job.message);
        assert_true(job.cancel_requested == 0 && job.finished == 0);
        assert_int_equal(job.attempts, 0);
        store_job_free(&job);
        run = claim_from(st, OTHER_QUEUE, again[i], OWNER, 60);
        store_job_free(&run);
    }
}

/* An expired lease is retried after the row's back-off: within
 * [now, now + min(max, base x 2^(n-1))] after attempt n. */
static void requeue_expired_backs_off_per_attempt(void **state)
{
    store *st = *state;
    const store_run_options opt = {
        .priority = 50, .max_attempts = 5, .backoff_base_ms = 4000, .backoff_max_ms = 10000};
    acp_job_id id = insert_with(st, QUEUE, &opt);
    const int64_t caps_ms[] = {4000, 8000, 10000, 10000};
    for (unsigned n = 1; n <= 4; n++) {
        store_job run = claim_job(st, &id, OWNER, 1);
        assert_int_equal(run.attempts, n);
        assert_int_equal(run.backoff_base_ms, 4000);
        assert_int_equal(run.backoff_max_ms, 10000);
        store_job_free(&run);
        contract->advance(st, 2);
        int64_t t0 = store_now(st);
        store_dispatch_list list;
        assert_int_equal(store_requeue_expired(st, 10, &list), 0);
        assert_int_equal(list.count, 1);
        store_dispatch_list_free(&list);
        int64_t t1 = store_now(st);
        store_job job = get_job(st, &id);
        assert_int_equal(job.status, ACP_STATUS_QUEUED);
        if (job.not_before < t0 - 1000 || job.not_before > t1 + caps_ms[n - 1] * 1000)
            fail_msg("attempt %u: back-off of %lld ms, the bound %lld ms", n,
                     (long long)(job.not_before - t0) / 1000, (long long)caps_ms[n - 1]);
        store_job_free(&job);
        contract->advance(st, caps_ms[n - 1] / 1000 + 1);
    }
}

/* A run whose cancellation was asked and whose process died ends
 * cancelled, whatever attempts it has left. */
static void fail_abandoned_ends_a_cancelled_run_cancelled(void **state)
{
    store *st = *state;
    acp_job_id id = insert_job(st, QUEUE);
    store_job run = claim_job(st, &id, OWNER, 1);
    store_job_free(&run);
    assert_int_equal(store_cancel(st, &id, NULL, NULL), 0);
    contract->advance(st, 2);
    store_dispatch_list list;
    assert_int_equal(store_requeue_expired(st, 10, &list), 0);
    assert_int_equal(list.count, 0);
    assert_int_equal(store_fail_abandoned(st, 10, &list), 0);
    assert_int_equal(list.count, 1);
    assert_true(acp_job_id_equal(&list.items[0].id, &id));
    assert_int_equal(list.items[0].status, ACP_STATUS_CANCELLED);
    store_dispatch_list_free(&list);
    store_job job = get_job(st, &id);
    assert_int_equal(job.status, ACP_STATUS_CANCELLED);
    assert_string_equal(job.message, "cancelled");
    assert_int_equal(job.attempts, 1);
    assert_true(job.finished > 0);
    store_job_free(&job);
}

static void statements_are_counted(void **state)
{
    store *st = *state;
    uint64_t before = store_statement_count(st);
    acp_job_id id = insert_job(st, QUEUE);
    store_job job = get_job(st, &id);
    store_job_free(&job);
    assert_true(store_statement_count(st) >= before + 2);
}

#define CASE(fn) cmocka_unit_test_setup_teardown(fn, case_setup, case_teardown)

const struct CMUnitTest contract_tests[] = {
    CASE(insert_get_and_conflict),
    CASE(layout_and_input_sizes_round_trip),
    CASE(insert_of_an_existing_id_changes_nothing),
    CASE(finish_records_output_names_and_sizes),
    CASE(requeue_replaces_layout_and_sizes_and_clears_outputs),
    CASE(identity_is_stable),
    CASE(queue_positions_follow_creation_per_queue),
    CASE(queue_positions_are_counted_up_to_the_maximum),
    CASE(touch_and_delete),
    CASE(requeue_takes_finished_jobs_only),
    CASE(claim_takes_queued_jobs_of_its_queue),
    CASE(concurrent_claims_have_one_winner),
    CASE(finish_is_fenced_by_the_lease_owner),
    CASE(renew_extends_only_the_listed_leases_of_the_owner),
    CASE(expired_leases_are_requeued_then_failed_at_max_attempts),
    CASE(take_undispatched_backs_off_after_failed_publishes),
    CASE(batches_take_the_first_rows_in_their_order),
    CASE(fail_undispatchable_fails_only_queued_jobs),
    CASE(expire_takes_any_status_but_in_progress),
    CASE(expire_with_a_cutoff_takes_old_complete_jobs_and_rolls_back),
    CASE(delete_transactions_and_delete_expired),
    CASE(recording_a_run_is_fenced_and_knows_its_own_end),
    CASE(locked_rows_are_skipped_by_renewal_and_batches),
    CASE(changes_wait_for_the_transaction_on_their_row),
    CASE(list_pages_in_creation_order_with_filters),
    CASE(list_expirable_pages_old_complete_jobs_by_id),
    CASE(exists_and_runs_alive_answer_per_id),
    CASE(statements_are_counted),
    CASE(claim_order_is_priority_then_due_time_then_id),
    CASE(queue_positions_follow_claim_order),
    CASE(delayed_jobs_are_handed_out_once_due),
    CASE(retry_requeues_for_later_fenced_by_the_lease),
    CASE(cancel_ends_queued_jobs_and_asks_running_ones),
    CASE(requeue_expired_backs_off_per_attempt),
    CASE(fail_abandoned_ends_a_cancelled_run_cancelled),
};

const size_t contract_test_count = sizeof contract_tests / sizeof contract_tests[0];
