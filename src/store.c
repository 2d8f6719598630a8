/* The store's interface: every store_* call goes to the implementation the
 * handle was opened with (st->ops), PostgreSQL (store_pg.c) or a test's
 * fake. What a row is and how it is freed does not depend on the backend,
 * so those live here. A NULL handle gets the same answer from every backend:
 * ACP_EINVAL naming the function, out-parameters cleared as the contract in
 * store.h says. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static int store_null(const char *function)
{
    return error_set(ACP_EINVAL, "%s: NULL argument", function);
}

void store_job_init(store_job *job)
{
    memset(job, 0, sizeof *job);
    job->queue_position = -1;
}

void store_job_free(store_job *job)
{
    if (!job)
        return;
    free(job->config);
    for (size_t i = 0; i < job->input_count; i++)
        free(job->inputs[i]);
    free(job->inputs);
    free(job->input_sizes);
    for (size_t i = 0; i < job->output_count; i++)
        free(job->outputs[i]);
    free(job->outputs);
    free(job->output_sizes);
    free(job->message);
    free(job->progress_text);
    store_job_init(job);
}

void store_dispatch_list_free(store_dispatch_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].config);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

void store_close(store *st)
{
    if (st)
        st->ops->close(st);
}

int store_get(store *st, const acp_job_id *id, store_job *out)
{
    return st ? st->ops->get(st, id, out) : store_null(__func__);
}

int store_touch(store *st, const acp_job_id *id)
{
    return st ? st->ops->touch(st, id) : store_null(__func__);
}

int store_insert(store *st, const acp_job_id *id, const char *queue, const char *config,
                 const char *const *inputs, size_t input_count, const store_run_options *opt)
{
    return st ? st->ops->insert(st, id, queue, config, inputs, input_count, opt)
              : store_null(__func__);
}

int store_requeue(store *st, const acp_job_id *id, const char *queue, const char *config,
                  const char *const *inputs, size_t input_count, const store_run_options *opt)
{
    return st ? st->ops->requeue(st, id, queue, config, inputs, input_count, opt)
              : store_null(__func__);
}

int store_mark_dispatched(store *st, const acp_job_id *id)
{
    return st ? st->ops->mark_dispatched(st, id) : store_null(__func__);
}

int store_clear_dispatched(store *st, const acp_job_id *id)
{
    return st ? st->ops->clear_dispatched(st, id) : store_null(__func__);
}

int store_dispatch_failed(store *st, const acp_job_id *id)
{
    return st ? st->ops->dispatch_failed(st, id) : store_null(__func__);
}

int store_fail_undispatchable(store *st, const acp_job_id *id, const char *message)
{
    return st ? st->ops->fail_undispatchable(st, id, message) : store_null(__func__);
}

int store_claim(store *st, const char *queue, const char *owner, unsigned lease_seconds,
                store_job *out)
{
    return st ? st->ops->claim(st, queue, owner, lease_seconds, out) : store_null(__func__);
}

int store_retry(store *st, const acp_job_id *id, const char *owner, const char *message,
                unsigned delay_ms)
{
    return st ? st->ops->retry(st, id, owner, message, delay_ms) : store_null(__func__);
}

int store_cancel(store *st, const acp_job_id *id, acp_job_status *previous, acp_layout *layout)
{
    return store_cancel_in(st, id, previous, layout, NULL);
}

int store_cancel_in(store *st, const acp_job_id *id, acp_job_status *previous, acp_layout *layout,
                    char *queue)
{
    return st ? st->ops->cancel(st, id, previous, layout, queue) : store_null("store_cancel");
}

int store_finish(store *st, const acp_job_id *id, const char *owner, acp_job_status status,
                 const char *message, const char *const *outputs, const uint64_t *output_sizes,
                 size_t output_count)
{
    return st ? st->ops->finish(st, id, owner, status, message, outputs, output_sizes, output_count)
              : store_null(__func__);
}

int store_renew_leases(store *st, const char *owner, unsigned lease_seconds, const acp_job_id *ids,
                       size_t count, size_t *renewed, bool *cancel)
{
    if (st)
        return st->ops->renew_leases(st, owner, lease_seconds, ids, count, renewed, cancel);
    if (renewed)
        *renewed = 0;
    return store_null(__func__);
}

int store_requeue_expired(store *st, size_t limit, store_dispatch_list *out)
{
    return st ? st->ops->requeue_expired(st, limit, out) : store_null("requeue expired leases");
}

int store_fail_abandoned(store *st, size_t limit, store_dispatch_list *out)
{
    return st ? st->ops->fail_abandoned(st, limit, out) : store_null("fail abandoned jobs");
}

int store_take_undispatched(store *st, unsigned older_than_seconds, const char *const *queues,
                            size_t queue_count, size_t limit, store_dispatch_list *out,
                            int64_t *next_due)
{
    return st ? st->ops->take_undispatched(st, older_than_seconds, queues, queue_count, limit, out,
                                           next_due)
              : store_null("take undispatched jobs");
}

int store_delete(store *st, const acp_job_id *id)
{
    return st ? st->ops->delete_job(st, id) : store_null(__func__);
}

int store_expire_begin(store *st, const acp_job_id *id, int64_t complete_accessed_before,
                       store_tx **tx, acp_job_status *previous)
{
    if (st)
        return st->ops->expire_begin(st, id, complete_accessed_before, tx, previous);
    if (tx)
        *tx = NULL;
    return store_null(__func__);
}

int store_delete_begin(store *st, const acp_job_id *id, store_tx **tx)
{
    if (st)
        return st->ops->delete_begin(st, id, tx);
    if (tx)
        *tx = NULL;
    return store_null(__func__);
}

int store_finish_begin(store *st, const acp_job_id *id, const char *owner, unsigned attempts,
                       int64_t grabbed, store_tx **tx, acp_job_status *recorded)
{
    if (st)
        return st->ops->finish_begin(st, id, owner, attempts, grabbed, tx, recorded);
    if (tx)
        *tx = NULL;
    return store_null(__func__);
}

int store_finish_tx(store_tx *tx, acp_job_status status, const char *message,
                    const char *const *outputs, const uint64_t *output_sizes, size_t output_count,
                    const acp_job_id *id)
{
    return tx ? tx->st->ops->finish_tx(tx, status, message, outputs, output_sizes, output_count, id)
              : store_null(__func__);
}

int store_tx_end(store_tx *tx, bool commit)
{
    return tx ? tx->st->ops->tx_end(tx, commit) : 0;
}

int store_delete_expired(store *st, const acp_job_id *id)
{
    return st ? st->ops->delete_expired(st, id) : store_null(__func__);
}

int store_list_expirable(store *st, int64_t before, const acp_job_id *after, size_t limit,
                         acp_job_id **ids, size_t *count)
{
    if (st)
        return st->ops->list_expirable(st, before, after, limit, ids, count);
    if (ids)
        *ids = NULL;
    if (count)
        *count = 0;
    return store_null(__func__);
}

int store_list(store *st, unsigned statuses, const char *queue, int64_t after_created,
               const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count)
{
    if (st)
        return st->ops->list(st, statuses, queue, after_created, after_id, limit, rows, count);
    if (rows)
        *rows = NULL;
    if (count)
        *count = 0;
    return store_null(__func__);
}

int store_exists(store *st, const acp_job_id *ids, size_t count, bool *exists)
{
    return st ? st->ops->exists(st, ids, count, exists) : store_null(__func__);
}

int store_runs_alive(store *st, const acp_job_id *ids, const unsigned *attempts, size_t count,
                     bool *alive)
{
    return st ? st->ops->runs_alive(st, ids, attempts, count, alive) : store_null(__func__);
}

void store_identity_free(store_identity *identity)
{
    if (!identity)
        return;
    free(identity->database_id);
    free(identity->system_id);
    free(identity->name);
    memset(identity, 0, sizeof *identity);
}

int store_identity_read(store *st, store_identity *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!st || !out)
        return store_null(__func__);
    return st->ops->identity_read(st, out);
}

int store_count_queued(store *st, store_queue_count **out, size_t *count)
{
    if (out)
        *out = NULL;
    if (count)
        *count = 0;
    if (!st || !out || !count)
        return store_null(__func__);
    if (!st->ops->count_queued)
        return error_set(ACP_EINVAL, "store_count_queued: the %s store cannot count",
                         st->ops->name);
    return st->ops->count_queued(st, out, count);
}

int store_count_jobs(store *st, int64_t failed_since, acp_queue_counts **out, size_t *count)
{
    if (out)
        *out = NULL;
    if (count)
        *count = 0;
    if (!st || !out || !count)
        return store_null(__func__);
    if (!st->ops->count_jobs)
        return error_set(ACP_EINVAL, "store_count_jobs: the %s store cannot count", st->ops->name);
    return st->ops->count_jobs(st, failed_since, out, count);
}

void store_set_metrics(store *st, struct metrics_backend *m)
{
    if (st)
        st->metrics = m;
}

uint64_t store_statement_count(const store *st)
{
    return st->ops->statement_count(st);
}
