/* The store's seam: the store_* functions callers use reach the backend the
 * handle was opened with (its store_ops), a transaction's calls reach the
 * backend of its store, and a NULL handle gets the documented answer
 * without reaching any backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "store.h"

/* A backend that records what reached it. */
typedef struct probe {
    store base;
    const char *last;      /* the op called last */
    const acp_job_id *id;  /* its id argument */
    int closed;            /* times close ran */
    bool committed;        /* tx_end's @commit */
    store_tx tx;           /* the one transaction it hands out */
    acp_job_status status; /* finish_tx's @status */
    size_t output_count;   /* finish_tx's @output_count */
    const uint64_t *output_sizes; /* finish_tx's @output_sizes */
} probe;

static probe *probe_of(store *st)
{
    return (probe *)st;
}

static void probe_close(store *st)
{
    probe_of(st)->closed++;
    probe_of(st)->last = "close";
}

static int probe_get(store *st, const acp_job_id *id, store_job *out)
{
    probe_of(st)->last = "get";
    probe_of(st)->id = id;
    store_job_init(out);
    out->id = *id;
    out->attempts = 7;
    return 0;
}

static int probe_delete(store *st, const acp_job_id *id)
{
    probe_of(st)->last = "delete_job";
    probe_of(st)->id = id;
    return ACP_ENOTFOUND;
}

static int probe_delete_begin(store *st, const acp_job_id *id, store_tx **tx)
{
    probe *p = probe_of(st);
    p->last = "delete_begin";
    p->id = id;
    p->tx.st = st;
    *tx = &p->tx;
    return 0;
}

static int probe_finish_tx(store_tx *tx, acp_job_status status, const char *message,
                           const char *const *outputs, const uint64_t *output_sizes,
                           size_t output_count, const acp_job_id *id)
{
    (void)message;
    (void)outputs;
    probe *p = probe_of(tx->st);
    p->last = "finish_tx";
    p->id = id;
    p->status = status;
    p->output_count = output_count;
    p->output_sizes = output_sizes;
    return 0;
}

static int probe_tx_end(store_tx *tx, bool commit)
{
    probe *p = probe_of(tx->st);
    p->last = "tx_end";
    p->committed = commit;
    return 0;
}

static uint64_t probe_statement_count(const store *st)
{
    (void)st;
    return 42;
}

static const store_ops probe_ops = {
    .name = "probe",
    .close = probe_close,
    .get = probe_get,
    .delete_job = probe_delete,
    .delete_begin = probe_delete_begin,
    .finish_tx = probe_finish_tx,
    .tx_end = probe_tx_end,
    .statement_count = probe_statement_count,
};

static void calls_reach_the_handles_backend(void **state)
{
    (void)state;
    probe p = {.base = {.ops = &probe_ops}};
    store *st = &p.base;
    acp_job_id id;
    assert_int_equal(acp_job_id_parse(&id, "00112233445566778899aabbccddeeff"), 0);

    store_job job;
    assert_int_equal(store_get(st, &id, &job), 0);
    assert_string_equal(p.last, "get");
    assert_ptr_equal(p.id, &id);
    assert_true(acp_job_id_equal(&job.id, &id));
    assert_int_equal(job.attempts, 7);
    store_job_free(&job);

    /* The backend's answer comes back unchanged. */
    assert_int_equal(store_delete(st, &id), ACP_ENOTFOUND);
    assert_string_equal(p.last, "delete_job");

    assert_int_equal(store_statement_count(st), 42);
    store_close(st);
    assert_int_equal(p.closed, 1);
}

static void transactions_reach_the_backend_of_their_store(void **state)
{
    (void)state;
    probe p = {.base = {.ops = &probe_ops}};
    acp_job_id id;
    assert_int_equal(acp_job_id_parse(&id, "ffeeddccbbaa99887766554433221100"), 0);
    store_tx *tx = NULL;
    assert_int_equal(store_delete_begin(&p.base, &id, &tx), 0);
    assert_ptr_equal(tx, &p.tx);

    const char *outputs[] = {"a", "b"};
    const uint64_t sizes[] = {1, 2};
    assert_int_equal(store_finish_tx(tx, ACP_STATUS_COMPLETE, NULL, outputs, sizes, 2, &id), 0);
    assert_string_equal(p.last, "finish_tx");
    assert_int_equal(p.status, ACP_STATUS_COMPLETE);
    assert_int_equal(p.output_count, 2);
    assert_ptr_equal(p.output_sizes, sizes);

    assert_int_equal(store_tx_end(tx, true), 0);
    assert_string_equal(p.last, "tx_end");
    assert_true(p.committed);
}

static void a_null_handle_is_refused_without_a_backend(void **state)
{
    (void)state;
    acp_job_id id;
    assert_int_equal(acp_job_id_parse(&id, "00112233445566778899aabbccddeeff"), 0);
    store_close(NULL);
    assert_int_equal(store_tx_end(NULL, true), 0);

    assert_int_equal(store_touch(NULL, &id), ACP_EINVAL);
    assert_string_equal(acp_last_error(), "store_touch: NULL argument");
    assert_int_equal(store_finish_tx(NULL, ACP_STATUS_FAILED, "x", NULL, NULL, 0, &id), ACP_EINVAL);
    assert_string_equal(acp_last_error(), "store_finish_tx: NULL argument");
    char stale[] = "stale";
    store_identity identity = {.name = stale};
    assert_int_equal(store_identity_read(NULL, &identity), ACP_EINVAL);
    assert_string_equal(acp_last_error(), "store_identity_read: NULL argument");
    assert_null(identity.name);

    /* Out-parameters are cleared as each contract says. */
    store_tx *tx = (store_tx *)&id;
    assert_int_equal(store_expire_begin(NULL, &id, 0, &tx, NULL), ACP_EINVAL);
    assert_null(tx);
    size_t renewed = 5;
    assert_int_equal(store_renew_leases(NULL, "me", 30, &id, 1, &renewed, NULL), ACP_EINVAL);
    assert_int_equal(renewed, 0);
    store_job *rows = (store_job *)&id;
    size_t count = 9;
    assert_int_equal(store_list(NULL, 0, NULL, 0, NULL, 10, &rows, &count), ACP_EINVAL);
    assert_null(rows);
    assert_int_equal(count, 0);
}

static void only_postgres_has_a_schema_to_migrate(void **state)
{
    (void)state;
    probe p = {.base = {.ops = &probe_ops}};
    assert_int_equal(store_migrate(&p.base), ACP_EINVAL);
    assert_string_equal(acp_last_error(),
                        "store_migrate: the probe store has no schema to migrate");
    assert_null(p.last);
    assert_int_equal(store_migrate(NULL), ACP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(calls_reach_the_handles_backend),
        cmocka_unit_test(transactions_reach_the_backend_of_their_store),
        cmocka_unit_test(a_null_handle_is_refused_without_a_backend),
        cmocka_unit_test(only_postgres_has_a_schema_to_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
