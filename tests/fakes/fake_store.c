/* The in-memory store: see fake_store.h for what it promises, src/store.h
 * for the semantics of each operation and the PostgreSQL statements it
 * mirrors in src/store_jobs.c, store_batch.c, store_retention.c and
 * store_listing.c. One mutex guards everything; a condition variable wakes the calls
 * waiting for a row lock. */
#include "fake_store.h"

#include "control.h"
#include "store_jobs.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "error.h"

/* PostgreSQL's earliest timestamptz (4714-11-24 BC), µs since the Unix
 * epoch: the real store rejects earlier times before sending them. */
#define FAKE_TIME_MIN_US          (INT64_C(-211813488000000000) + INT64_C(946684800000000))
#define FAKE_DISPATCH_BACKOFF_MAX 60
#define FAKE_US                   INT64_C(1000000)

typedef struct fake_tx fake_tx;

/* A committed row and the transaction holding its lock. Slots are allocated
 * one by one so that a waiting call's row does not move. */
typedef struct fake_slot {
    fake_store_row row;
    fake_tx *tx;
} fake_slot;

typedef struct fake_store {
    store base;
    fault_plan *plan;
    pthread_mutex_t lock;
    pthread_cond_t unlocked; /* a transaction ended */
    fake_slot **slots;
    size_t count, capacity;
    int64_t offset;   /* µs added to the wall clock */
    int64_t last_now; /* now() never goes back */
    atomic_uint_least64_t calls;
    char database_id[37]; /* store_identity_read's: random, made at open */
} fake_store;

struct fake_tx {
    store_tx base;
    acp_job_id id;
    fake_store_row pending; /* the row as the transaction left it */
    bool deleted;           /* ...or deleted */
    bool aborted;           /* a statement failed: COMMIT rolls back */
    int64_t began;          /* now() inside: PostgreSQL's is the transaction's start */
};

static const char *const fake_status_names[] = {
    [ACP_STATUS_QUEUED] = "queued",     [ACP_STATUS_IN_PROGRESS] = "in-progress",
    [ACP_STATUS_COMPLETE] = "complete", [ACP_STATUS_FAILED] = "failed",
    [ACP_STATUS_EXPIRED] = "expired",   [ACP_STATUS_CANCELLED] = "cancelled",
};

static const char *fake_status_name(acp_job_status status)
{
    if (status < ACP_STATUS_QUEUED || status > ACP_STATUS_CANCELLED)
        return "unknown";
    return fake_status_names[status];
}

/* ---- rows ----------------------------------------------------------------- */

static char *fake_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy)
        memcpy(copy, s, len);
    return copy;
}

/* Copies of @count strings; *@out is non-NULL even for none, so that an
 * empty array differs from SQL NULL. */
static int fake_strings_dup(const char *const *items, size_t count, char ***out)
{
    *out = calloc(count ? count : 1, sizeof **out);
    if (!*out)
        return ACP_ENOMEM;
    for (size_t i = 0; i < count; i++) {
        (*out)[i] = fake_strdup(items[i]);
        if (!(*out)[i]) {
            for (size_t k = 0; k < i; k++)
                free((*out)[k]);
            free(*out);
            *out = NULL;
            return ACP_ENOMEM;
        }
    }
    return 0;
}

static void fake_strings_free(char **items, size_t count)
{
    for (size_t i = 0; items && i < count; i++)
        free(items[i]);
    free(items);
}

/* A copy of @count sizes in *@out; NULL for none (as the real store reads
 * an empty or NULL bigint[]). */
static int fake_sizes_dup(const uint64_t *sizes, size_t count, uint64_t **out)
{
    *out = NULL;
    if (!sizes || count == 0)
        return 0;
    *out = malloc(count * sizeof **out);
    if (!*out)
        return ACP_ENOMEM;
    memcpy(*out, sizes, count * sizeof **out);
    return 0;
}

/* A store_job as the real store reads it: an empty file list is NULL. */
static int fake_job_copy(store_job *dst, const store_job *src)
{
    *dst = *src;
    dst->config = NULL;
    dst->inputs = NULL;
    dst->input_count = 0;
    dst->input_sizes = NULL;
    dst->outputs = NULL;
    dst->output_sizes = NULL;
    dst->output_count = 0;
    dst->message = NULL;
    if ((src->config && !(dst->config = fake_strdup(src->config))) ||
        (src->message && !(dst->message = fake_strdup(src->message))))
        goto nomem;
    if (src->input_count) {
        if (fake_strings_dup((const char *const *)src->inputs, src->input_count, &dst->inputs))
            goto nomem;
        dst->input_count = src->input_count;
        if (fake_sizes_dup(src->input_sizes, src->input_count, &dst->input_sizes))
            goto nomem;
    }
    if (src->output_count) {
        if (fake_strings_dup((const char *const *)src->outputs, src->output_count, &dst->outputs))
            goto nomem;
        dst->output_count = src->output_count;
        if (fake_sizes_dup(src->output_sizes, src->output_count, &dst->output_sizes))
            goto nomem;
    }
    return 0;
nomem:
    store_job_free(dst);
    return error_set(ACP_ENOMEM, "fake store: out of memory copying a row");
}

/* No lease any more, as SET lease_owner = NULL, lease_expires = NULL. */
static void fake_release_lease(fake_store_row *row)
{
    free(row->lease_owner);
    row->lease_owner = NULL;
    row->lease_expires = 0;
}

void fake_store_row_free(fake_store_row *row)
{
    if (!row)
        return;
    store_job_free(&row->job);
    free(row->lease_owner);
    memset(row, 0, sizeof *row);
    row->job.queue_position = -1;
}

static int fake_row_copy(fake_store_row *dst, const fake_store_row *src)
{
    *dst = *src;
    dst->lease_owner = NULL;
    if (fake_job_copy(&dst->job, &src->job))
        return ACP_ENOMEM;
    if (src->lease_owner && !(dst->lease_owner = fake_strdup(src->lease_owner))) {
        fake_store_row_free(dst);
        return error_set(ACP_ENOMEM, "fake store: out of memory copying a row");
    }
    return 0;
}

static int fake_cmp_id(const acp_job_id *a, const acp_job_id *b)
{
    return memcmp(a->bytes, b->bytes, sizeof a->bytes);
}

/* (created, job_id) order, bytea comparing as memcmp. */
static int fake_cmp_created(const store_job *a, const store_job *b)
{
    if (a->created != b->created)
        return a->created < b->created ? -1 : 1;
    return fake_cmp_id(&a->id, &b->id);
}

static int fake_sort_created(const void *a, const void *b)
{
    return fake_cmp_created(&(*(fake_slot *const *)a)->row.job, &(*(fake_slot *const *)b)->row.job);
}

static int fake_sort_id(const void *a, const void *b)
{
    return fake_cmp_id(&(*(fake_slot *const *)a)->row.job.id,
                       &(*(fake_slot *const *)b)->row.job.id);
}

static int fake_sort_lease(const void *a, const void *b)
{
    const fake_store_row *x = &(*(fake_slot *const *)a)->row, *y = &(*(fake_slot *const *)b)->row;
    if (x->lease_expires != y->lease_expires)
        return x->lease_expires < y->lease_expires ? -1 : 1;
    return fake_cmp_created(&x->job, &y->job);
}

/* The claim's order: priority descending, then (not_before, job_id). */
static int fake_cmp_claim(const store_job *a, const store_job *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    if (a->not_before != b->not_before)
        return a->not_before < b->not_before ? -1 : 1;
    return fake_cmp_id(&a->id, &b->id);
}

static int fake_sort_claim(const void *a, const void *b)
{
    return fake_cmp_claim(&(*(fake_slot *const *)a)->row.job, &(*(fake_slot *const *)b)->row.job);
}

/* ---- the store ------------------------------------------------------------ */

static fake_store *fake_of(store *st)
{
    return (fake_store *)st;
}

/* now(): the wall clock moved by fake_store_advance. The lock is held. */
static int64_t fake_now(fake_store *fs)
{
    /* Later than the call before, as the separate transactions of one
     * PostgreSQL session are: so jobs submitted one after another keep
     * their order (queue positions, listing) however fast the calls. */
    int64_t now = clock_wall_us() + fs->offset;
    if (now <= fs->last_now)
        now = fs->last_now + 1;
    fs->last_now = now;
    return now;
}

static fake_slot *fake_find(fake_store *fs, const acp_job_id *id)
{
    for (size_t i = 0; i < fs->count; i++)
        if (fake_cmp_id(&fs->slots[i]->row.job.id, id) == 0)
            return fs->slots[i];
    return NULL;
}

/* The slot of @id once no transaction holds it (a change waits for the row
 * lock, then sees the committed row), or NULL. The lock is held. */
static fake_slot *fake_wait_slot(fake_store *fs, const acp_job_id *id)
{
    for (;;) {
        fake_slot *slot = fake_find(fs, id);
        if (!slot || !slot->tx)
            return slot;
        pthread_cond_wait(&fs->unlocked, &fs->lock);
    }
}

static void fake_remove(fake_store *fs, fake_slot *slot)
{
    for (size_t i = 0; i < fs->count; i++) {
        if (fs->slots[i] == slot) {
            fs->slots[i] = fs->slots[--fs->count];
            break;
        }
    }
    fake_store_row_free(&slot->row);
    free(slot);
}

/* Counts the call and asks the plan: the rule that fails it, or NULL. */
static const fault_rule *fake_enter(fake_store *fs, const char *op)
{
    atomic_fetch_add(&fs->calls, 1);
    return fault_check(fs->plan, op);
}

static bool fake_fails_before(const fault_rule *fault)
{
    return fault && fault->kind != FAKE_STORE_FAULT_AFTER;
}

static int fake_injected(const fault_rule *fault, const char *op)
{
    return error_set(fault->error, "fake store: injected fault in %s", op);
}

/* The result of a call that succeeded with @rc: a FAKE_STORE_FAULT_AFTER
 * rule replaces it with the injected error. */
static int fake_after(const fault_rule *fault, const char *op, int rc)
{
    return fault && rc >= 0 ? fake_injected(fault, op) : rc;
}

static int fake_no_job(const char *what, const acp_job_id *id)
{
    char hex[ACP_JOB_ID_STRLEN];
    return error_set(ACP_ENOTFOUND, "fake store: %s job %s: no such job", what,
                     acp_job_id_format(id, hex));
}

static int fake_not(int code, const char *what, const fake_store_row *row, const char *expected)
{
    char hex[ACP_JOB_ID_STRLEN];
    return error_set(code, "fake store: %s job %s: the job is %s in queue '%s'%s%s, not %s", what,
                     acp_job_id_format(&row->job.id, hex), fake_status_name(row->job.status),
                     row->job.queue, row->lease_owner ? " leased by " : "",
                     row->lease_owner ? row->lease_owner : "", expected);
}

/* The real store's checks of a file name list (store_text_array). */
static int fake_check_names(const char *what, const char *const *items, size_t count)
{
    if (count > 0 && !items)
        return error_set(ACP_EINVAL, "fake store: %s: NULL file list with %zu entries", what,
                         count);
    for (size_t i = 0; i < count; i++)
        if (!items[i])
            return error_set(ACP_EINVAL, "fake store: %s: file name %zu is NULL", what, i);
    return 0;
}

/* varchar(32): longer is an error of the server. */
static int fake_check_queue(const char *what, const char *queue)
{
    if (!queue)
        return error_set(ACP_EINVAL, "fake store: %s: NULL queue", what);
    if (strlen(queue) > ACP_QUEUE_ID_MAX)
        return error_set(ACP_EDB, "fake store: %s: value too long for type character varying(%d)",
                         what, ACP_QUEUE_ID_MAX);
    return 0;
}

static int fake_check_time(const char *what, int64_t us)
{
    if (us < FAKE_TIME_MIN_US)
        return error_set(ACP_EINVAL, "fake store: %s: time %lld µs is before 4714 BC", what,
                         (long long)us);
    return 0;
}

static long fake_queue_position(fake_store *fs, const store_job *job)
{
    if (job->status != ACP_STATUS_QUEUED)
        return -1;
    long ahead = 0;
    for (size_t i = 0; i < fs->count; i++) {
        const store_job *q = &fs->slots[i]->row.job;
        if (q->status == ACP_STATUS_QUEUED && strcmp(q->queue, job->queue) == 0 &&
            fake_cmp_claim(q, job) < 0)
            ahead++;
    }
    return ahead < ACP_QUEUE_POSITION_MAX ? ahead : ACP_QUEUE_POSITION_MAX;
}

static void fake_close(store *st)
{
    fake_store *fs = fake_of(st);
    for (size_t i = 0; i < fs->count; i++) {
        fake_store_row_free(&fs->slots[i]->row);
        free(fs->slots[i]);
    }
    free(fs->slots);
    pthread_cond_destroy(&fs->unlocked);
    pthread_mutex_destroy(&fs->lock);
    free(fs);
}

static uint64_t fake_statement_count(const store *st)
{
    return atomic_load(&((fake_store *)st)->calls);
}

/* ---- inspection ------------------------------------------------------------ */

void fake_store_advance(store *st, int64_t us)
{
    fake_store *fs = fake_of(st);
    pthread_mutex_lock(&fs->lock);
    fs->offset += us;
    pthread_mutex_unlock(&fs->lock);
}

int64_t fake_store_now(store *st)
{
    fake_store *fs = fake_of(st);
    pthread_mutex_lock(&fs->lock);
    int64_t now = clock_wall_us() + fs->offset; /* a look: no call's time */
    if (now < fs->last_now)
        now = fs->last_now;
    pthread_mutex_unlock(&fs->lock);
    return now;
}

int fake_store_peek_row(store *st, const acp_job_id *id, fake_store_row *out)
{
    fake_store *fs = fake_of(st);
    memset(out, 0, sizeof *out);
    out->job.queue_position = -1;
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_find(fs, id);
    int rc = slot ? fake_row_copy(out, &slot->row) : fake_no_job("peek", id);
    if (rc == 0) {
        out->job.queue_position = fake_queue_position(fs, &slot->row.job);
        out->locked = slot->tx != NULL;
    }
    pthread_mutex_unlock(&fs->lock);
    return rc;
}

int fake_store_peek(store *st, const acp_job_id *id, store_job *out)
{
    fake_store_row row;
    int rc = fake_store_peek_row(st, id, &row);
    store_job_init(out);
    if (rc)
        return rc;
    *out = row.job;
    store_job_init(&row.job);
    fake_store_row_free(&row);
    return 0;
}

size_t fake_store_row_count(store *st)
{
    fake_store *fs = fake_of(st);
    pthread_mutex_lock(&fs->lock);
    size_t count = fs->count;
    pthread_mutex_unlock(&fs->lock);
    return count;
}

/* ---- operations ------------------------------------------------------------- */

/* Counts the call and returns the injected error when a rule fails it before
 * it does anything. Declares `fault`, for fake_after. */
#define FAKE_ENTER(fs, op)                                                                         \
    const fault_rule *fault = fake_enter(fs, op);                                                  \
    if (fake_fails_before(fault))                                                                  \
    return fake_injected(fault, op)

/* Reads and transaction begins: a lost answer changes nothing either. */
#define FAKE_ENTER_READ(fs, op)                                                                    \
    do {                                                                                           \
        const fault_rule *read_fault = fake_enter(fs, op);                                         \
        if (read_fault)                                                                            \
            return fake_injected(read_fault, op);                                                  \
    } while (0)

static int fake_get(store *st, const acp_job_id *id, store_job *out)
{
    fake_store *fs = fake_of(st);
    if (!id || !out)
        return error_set(ACP_EINVAL, "store_get: NULL argument");
    store_job_init(out);
    const fault_rule *fault = fake_enter(fs, "pg.get");
    if (fault)
        return fake_injected(fault, "pg.get");
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_find(fs, id);
    int rc = slot ? fake_job_copy(out, &slot->row.job) : fake_no_job("get", id);
    if (rc == 0)
        out->queue_position = fake_queue_position(fs, &slot->row.job);
    pthread_mutex_unlock(&fs->lock);
    return rc;
}

/* A change of one row by id, after its row lock: @change judges and changes
 * the committed row, or returns an error having changed nothing. */
typedef int (*fake_change)(fake_store *fs, fake_slot *slot, int64_t now, void *arg);

static int fake_by_id(fake_store *fs, const acp_job_id *id, const char *op, const char *what,
                      fake_change change, void *arg)
{
    FAKE_ENTER(fs, op);
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_wait_slot(fs, id);
    int rc = slot ? change(fs, slot, fake_now(fs), arg) : fake_no_job(what, id);
    pthread_mutex_unlock(&fs->lock);
    return fake_after(fault, op, rc);
}

static int fake_touch_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    (void)arg;
    slot->row.job.last_accessed = now;
    return 0;
}

static int fake_touch(store *st, const acp_job_id *id)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_touch: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.touch", "touch", fake_touch_row, NULL);
}

static int fake_mark_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    (void)arg;
    slot->row.dispatched = now;
    slot->row.dispatch_failures = 0;
    slot->row.dispatch_retry = 0;
    return 0;
}

static int fake_mark_dispatched(store *st, const acp_job_id *id)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_mark_dispatched: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.mark_dispatched", "mark dispatched", fake_mark_row,
                      NULL);
}

static int fake_clear_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    (void)now;
    (void)arg;
    slot->row.dispatched = 0;
    return 0;
}

static int fake_clear_dispatched(store *st, const acp_job_id *id)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_clear_dispatched: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.clear_dispatched", "clear dispatched", fake_clear_row,
                      NULL);
}

static int fake_dispatch_failed_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    (void)arg;
    fake_store_row *row = &slot->row;
    unsigned exponent = row->dispatch_failures < 16 ? row->dispatch_failures : 16;
    int64_t seconds = INT64_C(1) << exponent;
    if (seconds > FAKE_DISPATCH_BACKOFF_MAX)
        seconds = FAKE_DISPATCH_BACKOFF_MAX;
    row->dispatched = 0;
    row->dispatch_retry = now + seconds * FAKE_US;
    row->dispatch_failures++;
    return 0;
}

static int fake_dispatch_failed(store *st, const acp_job_id *id)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_dispatch_failed: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.dispatch_failed", "record failed dispatch of",
                      fake_dispatch_failed_row, NULL);
}

static int fake_fail_undispatchable_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    const char *message = arg;
    fake_store_row *row = &slot->row;
    if (row->job.status != ACP_STATUS_QUEUED)
        return fake_not(ACP_ECONFLICT, "fail undispatchable", row, "queued");
    char *copy = fake_strdup(message);
    if (message && !copy)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    row->job.status = ACP_STATUS_FAILED;
    row->job.finished = now;
    free(row->job.message);
    row->job.message = copy;
    row->dispatched = 0;
    row->dispatch_retry = 0;
    return 0;
}

static int fake_fail_undispatchable(store *st, const acp_job_id *id, const char *message)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_fail_undispatchable: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.fail_undispatchable", "fail undispatchable",
                      fake_fail_undispatchable_row, (void *)message);
}

static int fake_delete_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)now;
    (void)arg;
    fake_remove(fs, slot);
    return 0;
}

static int fake_delete_job(store *st, const acp_job_id *id)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_delete: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.delete_job", "delete", fake_delete_row, NULL);
}

static int fake_delete_expired_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    if (slot->row.job.status != ACP_STATUS_EXPIRED)
        return fake_not(ACP_ECONFLICT, "delete expired", &slot->row, "expired");
    return fake_delete_row(fs, slot, now, arg);
}

static int fake_delete_expired(store *st, const acp_job_id *id)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_delete_expired: NULL argument");
    return fake_by_id(fake_of(st), id, "pg.delete_expired", "delete expired",
                      fake_delete_expired_row, NULL);
}

/* ---- runs: insert, requeue, claim, finish ---------------------------------- */

/* The new queue, config, inputs, layout and input sizes of a run, copied
 * before the row changes. */
typedef struct fake_run {
    const char *queue;
    char *config;
    char **inputs;
    uint64_t *input_sizes;
    size_t input_count;
    acp_layout layout;
    store_run_options control; /* with the defaults filled in */
} fake_run;

/* The real store's checks of a size list (pgvalue_size_array): bigint. */
static int fake_check_sizes(const char *what, const uint64_t *sizes, size_t count)
{
    for (size_t i = 0; sizes && i < count; i++)
        if (sizes[i] > (uint64_t)INT64_MAX)
            return error_set(ACP_EINVAL, "fake store: %s: file size %zu exceeds bigint", what, i);
    return 0;
}

/* The run's layout as the real store writes it (store_run_options: NULL
 * and ACP_LAYOUT_DEFAULT are lcp), or ACP_EINVAL. */
static int fake_check_layout(const char *what, const store_run_options *opt, acp_layout *out)
{
    acp_layout layout = opt ? opt->layout : ACP_LAYOUT_LCP;
    if (layout == ACP_LAYOUT_DEFAULT)
        layout = ACP_LAYOUT_LCP;
    if (layout != ACP_LAYOUT_NATIVE && layout != ACP_LAYOUT_LCP)
        return error_set(ACP_EINVAL, "fake store: %s: layout %d is neither native nor lcp", what,
                         (int)layout);
    *out = layout;
    return 0;
}

static int fake_run_init(fake_run *run, const char *queue, const char *config,
                         const char *const *inputs, size_t input_count, acp_layout layout,
                         const store_run_options *opt)
{
    memset(run, 0, sizeof *run);
    run->queue = queue;
    run->layout = layout;
    if ((config && !(run->config = fake_strdup(config))) ||
        (input_count && fake_strings_dup(inputs, input_count, &run->inputs)) ||
        fake_sizes_dup(opt ? opt->input_sizes : NULL, input_count, &run->input_sizes)) {
        free(run->config);
        fake_strings_free(run->inputs, input_count);
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    }
    run->input_count = input_count;
    store_jobs_control_defaults(opt, &run->control);
    return 0;
}

static void fake_run_free(fake_run *run)
{
    free(run->config);
    fake_strings_free(run->inputs, run->input_count);
    free(run->input_sizes);
}

/* Moves the run's strings into @row. */
static void fake_run_apply(fake_run *run, fake_store_row *row)
{
    snprintf(row->job.queue, sizeof row->job.queue, "%s", run->queue);
    free(row->job.config);
    fake_strings_free(row->job.inputs, row->job.input_count);
    free(row->job.input_sizes);
    row->job.config = run->config;
    row->job.inputs = run->inputs;
    row->job.input_count = run->input_count;
    row->job.input_sizes = run->input_sizes;
    row->job.layout = run->layout;
    row->job.priority = run->control.priority;
    row->job.max_attempts = run->control.max_attempts;
    row->job.timeout_seconds = run->control.timeout_seconds;
    row->job.backoff_base_ms = run->control.backoff_base_ms;
    row->job.backoff_max_ms = run->control.backoff_max_ms;
    row->job.cancel_requested = 0;
    memset(run, 0, sizeof *run);
}

/* Sets when the row becomes due (never before @now) and whether its
 * message goes now: 0 when due now (dispatched now), 1 when later. */
static int fake_schedule(fake_store_row *row, int64_t not_before, int64_t now)
{
    row->job.not_before = not_before > now ? not_before : now;
    row->dispatched = row->job.not_before <= now ? now : 0;
    row->dispatch_retry = 0;
    row->dispatch_failures = 0;
    return row->dispatched ? 0 : 1;
}

static int fake_insert(store *st, const acp_job_id *id, const char *queue, const char *config,
                       const char *const *inputs, size_t input_count, const store_run_options *opt)
{
    fake_store *fs = fake_of(st);
    int rc;
    acp_layout layout;
    if (!id)
        return error_set(ACP_EINVAL, "store_insert: NULL argument");
    if (!queue)
        return error_set(ACP_EINVAL, "fake store: insert: NULL queue");
    if ((rc = fake_check_layout("insert", opt, &layout)) ||
        (rc = fake_check_names("insert", inputs, input_count)) ||
        (rc = fake_check_sizes("insert", opt ? opt->input_sizes : NULL, input_count)))
        return rc;
    FAKE_ENTER(fs, "pg.insert");
    if ((rc = fake_check_queue("insert", queue)))
        return rc;
    fake_slot *slot = calloc(1, sizeof *slot);
    fake_run run;
    if (!slot)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    int64_t not_before = opt ? opt->not_before : 0;
    if ((rc = fake_run_init(&run, queue, config, inputs, input_count, layout, opt))) {
        free(slot);
        return rc;
    }
    fake_store_row *row = &slot->row;
    row->job.id = *id;
    row->job.status = ACP_STATUS_QUEUED;
    row->job.queue_position = -1;
    fake_run_apply(&run, row);
    pthread_mutex_lock(&fs->lock);
    if (fake_wait_slot(fs, id)) {
        char hex[ACP_JOB_ID_STRLEN];
        rc = error_set(ACP_ECONFLICT, "fake store: job %s already exists",
                       acp_job_id_format(id, hex));
    } else if (fs->count == fs->capacity) {
        size_t capacity = fs->capacity ? 2 * fs->capacity : 64;
        fake_slot **slots = realloc(fs->slots, capacity * sizeof *slots);
        if (slots) {
            fs->slots = slots;
            fs->capacity = capacity;
        } else {
            rc = error_set(ACP_ENOMEM, "fake store: out of memory");
        }
    }
    int due = 0;
    if (rc == 0) {
        row->job.created = row->job.last_accessed = fake_now(fs);
        due = fake_schedule(row, not_before, row->job.created);
        fs->slots[fs->count++] = slot;
    }
    pthread_mutex_unlock(&fs->lock);
    if (rc) {
        fake_store_row_free(&slot->row);
        free(slot);
    }
    return fake_after(fault, "pg.insert", rc ? rc : due);
}

static int fake_requeue_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    fake_store_row *row = &slot->row;
    acp_job_status status = row->job.status;
    if (status != ACP_STATUS_COMPLETE && status != ACP_STATUS_FAILED &&
        status != ACP_STATUS_EXPIRED && status != ACP_STATUS_CANCELLED)
        return fake_not(ACP_ECONFLICT, "requeue", row, "complete, failed, expired or cancelled");
    int64_t not_before = ((fake_run *)arg)->control.not_before;
    fake_run_apply(arg, row);
    row->job.status = ACP_STATUS_QUEUED;
    row->job.last_accessed = now;
    int due = fake_schedule(row, not_before, now);
    row->job.grabbed = row->job.finished = 0;
    row->job.attempts = 0;
    free(row->job.message);
    row->job.message = NULL;
    fake_release_lease(row);
    fake_strings_free(row->job.outputs, row->job.output_count);
    free(row->job.output_sizes);
    row->job.outputs = NULL;
    row->job.output_sizes = NULL;
    row->job.output_count = 0;
    return due;
}

static int fake_requeue(store *st, const acp_job_id *id, const char *queue, const char *config,
                        const char *const *inputs, size_t input_count, const store_run_options *opt)
{
    fake_store *fs = fake_of(st);
    int rc;
    acp_layout layout;
    if (!id)
        return error_set(ACP_EINVAL, "store_requeue: NULL argument");
    if (!queue)
        return error_set(ACP_EINVAL, "fake store: requeue: NULL queue");
    if ((rc = fake_check_layout("requeue", opt, &layout)) ||
        (rc = fake_check_names("requeue", inputs, input_count)) ||
        (rc = fake_check_sizes("requeue", opt ? opt->input_sizes : NULL, input_count)))
        return rc;
    FAKE_ENTER(fs, "pg.requeue");
    if ((rc = fake_check_queue("requeue", queue)))
        return rc;
    fake_run run;
    if ((rc = fake_run_init(&run, queue, config, inputs, input_count, layout, opt)))
        return rc;
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_wait_slot(fs, id);
    rc = slot ? fake_requeue_row(fs, slot, fake_now(fs), &run) : fake_no_job("requeue", id);
    pthread_mutex_unlock(&fs->lock);
    fake_run_free(&run);
    return fake_after(fault, "pg.requeue", rc);
}

/* The doorbell's claim: the best due queued row of @queue that no
 * transaction holds (SKIP LOCKED), in the claim's order. */
static int fake_claim(store *st, const char *queue, const char *owner, unsigned lease_seconds,
                      store_job *out)
{
    fake_store *fs = fake_of(st);
    if (!out || !queue || !owner || !*owner)
        return error_set(ACP_EINVAL, "store_claim: NULL argument or empty owner");
    store_job_init(out);
    FAKE_ENTER(fs, "pg.claim");
    char *copy = fake_strdup(owner);
    if (!copy)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    pthread_mutex_lock(&fs->lock);
    int64_t now = fake_now(fs);
    fake_slot *best = NULL;
    bool locked = false;
    for (size_t i = 0; i < fs->count; i++) {
        fake_slot *slot = fs->slots[i];
        const store_job *job = &slot->row.job;
        if (job->status != ACP_STATUS_QUEUED || strcmp(job->queue, queue) != 0 ||
            job->not_before > now)
            continue;
        if (slot->tx) {
            locked = true;
            continue;
        }
        if (!best || fake_cmp_claim(job, &best->row.job) < 0)
            best = slot;
    }
    int rc;
    if (!best) {
        rc = locked ? error_set(ACP_EBUSY,
                                "fake store: claim a job of queue '%s': its due jobs are locked",
                                queue)
                    : error_set(ACP_ENOTFOUND,
                                "fake store: claim a job of queue '%s': no job is due", queue);
        free(copy);
    } else {
        fake_store_row *row = &best->row;
        row->job.status = ACP_STATUS_IN_PROGRESS;
        row->job.grabbed = now;
        row->job.finished = 0;
        free(row->lease_owner);
        row->lease_owner = copy;
        row->lease_expires = now + (int64_t)lease_seconds * FAKE_US;
        row->job.attempts++;
        rc = fake_job_copy(out, &row->job);
        out->dispatched = row->dispatched;
    }
    pthread_mutex_unlock(&fs->lock);
    rc = fake_after(fault, "pg.claim", rc);
    if (rc) /* also after a lost answer: the row is claimed, nothing returned */
        store_job_free(out);
    return rc;
}

typedef struct fake_retry_arg {
    const char *owner, *message;
    unsigned delay_ms;
} fake_retry_arg;

static int fake_retry_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    fake_retry_arg *retry = arg;
    fake_store_row *row = &slot->row;
    if (row->job.status != ACP_STATUS_IN_PROGRESS || !row->lease_owner ||
        strcmp(row->lease_owner, retry->owner) != 0 || row->job.cancel_requested) {
        char expected[128];
        snprintf(expected, sizeof expected, "in-progress leased by %s and not being cancelled",
                 retry->owner);
        return fake_not(ACP_ECONFLICT, "retry", row, expected);
    }
    char *message = retry->message ? fake_strdup(retry->message) : NULL;
    if (retry->message && !message)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    row->job.status = ACP_STATUS_QUEUED;
    free(row->job.message);
    row->job.message = message;
    row->job.grabbed = 0;
    fake_release_lease(row);
    row->dispatched = row->dispatch_retry = 0;
    row->dispatch_failures = 0;
    row->job.not_before = now + (int64_t)retry->delay_ms * 1000;
    return 0;
}

static int fake_retry(store *st, const acp_job_id *id, const char *owner, const char *message,
                      unsigned delay_ms)
{
    if (!id || !owner)
        return error_set(ACP_EINVAL, "store_retry: NULL argument");
    fake_retry_arg retry = {owner, message, delay_ms};
    int rc = fake_by_id(fake_of(st), id, "pg.retry", "retry", fake_retry_row, &retry);
    return rc == ACP_ENOTFOUND ? error_set(ACP_ECONFLICT, "fake store: retry: no such job") : rc;
}

typedef struct fake_cancel_arg {
    acp_job_status previous;
    acp_layout layout;
    char queue[ACP_QUEUE_ID_MAX + 1];
} fake_cancel_arg;

static int fake_cancel_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    fake_cancel_arg *cancel = arg;
    fake_store_row *row = &slot->row;
    cancel->previous = row->job.status;
    cancel->layout = row->job.layout;
    memcpy(cancel->queue, row->job.queue, sizeof cancel->queue);
    if (row->job.status == ACP_STATUS_IN_PROGRESS) {
        if (!row->job.cancel_requested)
            row->job.cancel_requested = now;
        return 0;
    }
    if (row->job.status != ACP_STATUS_QUEUED) {
        char hex[ACP_JOB_ID_STRLEN];
        return error_set(ACP_ECONFLICT,
                         "fake store: job %s is %s: only a queued or running job can be "
                         "cancelled",
                         acp_job_id_format(&row->job.id, hex), fake_status_name(row->job.status));
    }
    char *message = fake_strdup("cancelled");
    if (!message)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    row->job.status = ACP_STATUS_CANCELLED;
    row->job.finished = now;
    free(row->job.message);
    row->job.message = message;
    row->dispatched = 0;
    return 0;
}

static int fake_cancel(store *st, const acp_job_id *id, acp_job_status *previous,
                       acp_layout *layout, char *queue)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_cancel: NULL argument");
    fake_cancel_arg cancel = {0};
    int rc = fake_by_id(fake_of(st), id, "pg.cancel", "cancel", fake_cancel_row, &cancel);
    if (rc == 0 && previous)
        *previous = cancel.previous;
    if (rc == 0 && layout)
        *layout = cancel.layout;
    if (rc == 0 && queue)
        memcpy(queue, cancel.queue, sizeof cancel.queue);
    return rc;
}

/* The end of a run, as store_finish and store_finish_tx write it. */
typedef struct fake_end {
    acp_job_status status;
    char *message;
    char **outputs;
    uint64_t *output_sizes;
    size_t output_count;
} fake_end;

static int fake_end_init(fake_end *end, acp_job_status status, const char *message,
                         const char *const *outputs, const uint64_t *output_sizes,
                         size_t output_count)
{
    memset(end, 0, sizeof *end);
    end->status = status;
    if (status == ACP_STATUS_CANCELLED && !message)
        message = "cancelled";
    if ((message && !(end->message = fake_strdup(message))) ||
        fake_strings_dup(outputs, output_count, &end->outputs) ||
        fake_sizes_dup(output_sizes, output_count, &end->output_sizes)) {
        free(end->message);
        fake_strings_free(end->outputs, end->outputs ? output_count : 0);
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    }
    end->output_count = output_count;
    return 0;
}

static void fake_end_free(fake_end *end)
{
    free(end->message);
    fake_strings_free(end->outputs, end->output_count);
    free(end->output_sizes);
}

static void fake_end_apply(fake_end *end, fake_store_row *row, int64_t now)
{
    row->job.status = end->status;
    row->job.finished = now;
    free(row->job.message);
    row->job.message = end->message;
    fake_strings_free(row->job.outputs, row->job.output_count);
    free(row->job.output_sizes);
    row->job.outputs = end->outputs;
    row->job.output_sizes = end->output_sizes;
    row->job.output_count = end->output_count;
    fake_release_lease(row);
    memset(end, 0, sizeof *end);
}

static int fake_check_end(const char *what, acp_job_status status, const char *const *outputs,
                          const uint64_t *output_sizes, size_t output_count)
{
    if (status != ACP_STATUS_COMPLETE && status != ACP_STATUS_FAILED &&
        status != ACP_STATUS_CANCELLED)
        return error_set(ACP_EINVAL,
                         "fake store: %s: status %d is not complete, failed or cancelled: not "
                         "an end",
                         what, (int)status);
    int rc = fake_check_names(what, outputs, output_count);
    return rc ? rc : fake_check_sizes(what, output_sizes, output_count);
}

typedef struct fake_finish_arg {
    const char *owner;
    fake_end end;
} fake_finish_arg;

static int fake_finish_row(fake_store *fs, fake_slot *slot, int64_t now, void *arg)
{
    (void)fs;
    fake_finish_arg *finish = arg;
    fake_store_row *row = &slot->row;
    if (row->job.status != ACP_STATUS_IN_PROGRESS || !row->lease_owner ||
        strcmp(row->lease_owner, finish->owner) != 0) {
        char expected[128];
        snprintf(expected, sizeof expected, "in-progress leased by %s", finish->owner);
        return fake_not(ACP_ECONFLICT, "finish", row, expected);
    }
    fake_end_apply(&finish->end, row, now);
    return 0;
}

static int fake_finish(store *st, const acp_job_id *id, const char *owner, acp_job_status status,
                       const char *message, const char *const *outputs,
                       const uint64_t *output_sizes, size_t output_count)
{
    if (!id)
        return error_set(ACP_EINVAL, "store_finish: NULL argument");
    if (!owner)
        return error_set(ACP_EINVAL, "fake store: finish: NULL owner");
    int rc = fake_check_end("finish", status, outputs, output_sizes, output_count);
    if (rc)
        return rc;
    fake_finish_arg finish = {owner, {0}};
    if ((rc = fake_end_init(&finish.end, status, message, outputs, output_sizes, output_count)))
        return rc;
    rc = fake_by_id(fake_of(st), id, "pg.finish", "finish", fake_finish_row, &finish);
    fake_end_free(&finish.end);
    /* Deleted meanwhile: still "no longer holds the lease" for the caller. */
    if (rc == ACP_ENOTFOUND)
        rc = error_set(ACP_ECONFLICT, "fake store: finish: no such job");
    return rc;
}

static int fake_renew_leases(store *st, const char *owner, unsigned lease_seconds,
                             const acp_job_id *ids, size_t count, size_t *renewed, bool *cancel)
{
    fake_store *fs = fake_of(st);
    if (renewed)
        *renewed = 0;
    for (size_t i = 0; cancel && i < count; i++)
        cancel[i] = false;
    if (!owner || (count && !ids))
        return error_set(ACP_EINVAL, "store_renew_leases: NULL argument");
    if (count == 0)
        return 0;
    FAKE_ENTER(fs, "pg.renew_leases");
    size_t done = 0;
    pthread_mutex_lock(&fs->lock);
    int64_t now = fake_now(fs);
    /* By row, so that an id listed twice renews once, as WHERE job_id IN. */
    for (size_t i = 0; i < fs->count; i++) {
        fake_slot *slot = fs->slots[i];
        fake_store_row *row = &slot->row;
        if (slot->tx || row->job.status != ACP_STATUS_IN_PROGRESS || !row->lease_owner ||
            strcmp(row->lease_owner, owner) != 0)
            continue;
        for (size_t k = 0; k < count; k++) {
            if (fake_cmp_id(&ids[k], &row->job.id) == 0) {
                row->lease_expires = now + (int64_t)lease_seconds * FAKE_US;
                done++;
                for (size_t c = k; cancel && c < count; c++)
                    if (fake_cmp_id(&ids[c], &row->job.id) == 0)
                        cancel[c] = row->job.cancel_requested != 0;
                break;
            }
        }
    }
    pthread_mutex_unlock(&fs->lock);
    if (fault) {
        for (size_t i = 0; cancel && i < count; i++)
            cancel[i] = false;
        return fake_injected(fault, "pg.renew_leases");
    }
    if (renewed)
        *renewed = done;
    return 0;
}

/* ---- batches ------------------------------------------------------------------ */

typedef struct fake_batch {
    const char *op;
    unsigned older_than_seconds;
    const char *const *queues;
    size_t queue_count;
    bool (*wanted)(const struct fake_batch *b, const fake_store_row *row, int64_t now);
    int (*order)(const void *a, const void *b);
    int (*answer)(const void *a, const void *b); /* the answer's order; NULL: by created */
    int (*change)(const struct fake_batch *b, fake_store_row *row, int64_t now);
    bool failures;      /* report dispatch_failures */
    bool report_status; /* report the status each row got */
    int64_t next_due;   /* take_undispatched: the next not_before after now */
} fake_batch;

/* Picks the wanted rows not locked by a transaction (SKIP LOCKED) in the
 * batch's order, at most @limit, changes them and returns them oldest
 * first by (created, job_id). */
static int fake_batch_run(fake_store *fs, const fake_batch *b, size_t limit,
                          store_dispatch_list *out)
{
    if (!out)
        return error_set(ACP_EINVAL, "%s: NULL argument", b->op);
    out->items = NULL;
    out->count = 0;
    if (limit == 0)
        return 0;
    FAKE_ENTER(fs, b->op);
    int rc = 0;
    pthread_mutex_lock(&fs->lock);
    int64_t now = fake_now(fs);
    fake_slot **picked = calloc(fs->count ? fs->count : 1, sizeof *picked);
    size_t n = 0;
    if (!picked)
        rc = error_set(ACP_ENOMEM, "fake store: out of memory");
    for (size_t i = 0; rc == 0 && i < fs->count; i++)
        if (!fs->slots[i]->tx && b->wanted(b, &fs->slots[i]->row, now))
            picked[n++] = fs->slots[i];
    if (n > limit) {
        qsort(picked, n, sizeof *picked, b->order);
        n = limit;
    }
    qsort(picked, n, sizeof *picked, b->answer ? b->answer : fake_sort_created);
    if (rc == 0 && n > 0 && !(out->items = calloc(n, sizeof *out->items)))
        rc = error_set(ACP_ENOMEM, "fake store: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const fake_store_row *row = &picked[i]->row;
        store_dispatch *item = &out->items[i];
        item->id = row->job.id;
        memcpy(item->queue, row->job.queue, sizeof item->queue);
        item->failures = b->failures ? row->dispatch_failures : 0;
        item->layout = row->job.layout;
        item->status = ACP_STATUS_QUEUED;
        out->count = i + 1;
        if (row->job.config && !(item->config = fake_strdup(row->job.config)))
            rc = error_set(ACP_ENOMEM, "fake store: out of memory");
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = b->change(b, &picked[i]->row, now);
        if (rc == 0 && b->report_status)
            out->items[i].status = picked[i]->row.job.status;
    }
    pthread_mutex_unlock(&fs->lock);
    free(picked);
    if (rc == 0 && fault) /* a lost answer: the rows changed, nobody knows which */
        rc = fake_injected(fault, b->op);
    if (rc)
        store_dispatch_list_free(out);
    return rc;
}

static bool fake_lease_expired(const fake_store_row *row, int64_t now)
{
    return row->job.status == ACP_STATUS_IN_PROGRESS && row->lease_expires &&
           row->lease_expires < now;
}

static bool fake_expired_retry(const fake_batch *b, const fake_store_row *row, int64_t now)
{
    (void)b;
    return fake_lease_expired(row, now) && row->job.attempts < row->job.max_attempts &&
           !row->job.cancel_requested;
}

static int fake_requeue_expired_row(const fake_batch *b, fake_store_row *row, int64_t now)
{
    (void)b;
    char text[160];
    snprintf(text, sizeof text,
             "attempt %u stopped: the process running it stopped (its lease expired)",
             row->job.attempts);
    char *message = fake_strdup(text);
    if (!message)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    free(row->job.message);
    row->job.message = message;
    row->job.status = ACP_STATUS_QUEUED;
    row->job.grabbed = 0;
    fake_release_lease(row);
    row->dispatched = row->dispatch_retry = 0;
    row->dispatch_failures = 0;
    row->job.not_before = now + (int64_t)control_backoff_ms(&row->job) * 1000;
    return 0;
}

static int fake_requeue_expired(store *st, size_t limit, store_dispatch_list *out)
{
    fake_batch b = {.op = "pg.requeue_expired",
                    .wanted = fake_expired_retry,
                    .order = fake_sort_lease,
                    .change = fake_requeue_expired_row};
    return fake_batch_run(fake_of(st), &b, limit, out);
}

static bool fake_expired_abandoned(const fake_batch *b, const fake_store_row *row, int64_t now)
{
    (void)b;
    return fake_lease_expired(row, now) &&
           (row->job.attempts >= row->job.max_attempts || row->job.cancel_requested);
}

static int fake_fail_abandoned_row(const fake_batch *b, fake_store_row *row, int64_t now)
{
    (void)b;
    char message[160];
    if (row->job.cancel_requested)
        snprintf(message, sizeof message, "cancelled");
    else
        snprintf(message, sizeof message,
                 "abandoned: the process running attempt %u of %u stopped (its lease expired)",
                 row->job.attempts, row->job.max_attempts);
    char *copy = fake_strdup(message);
    if (!copy)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    row->job.status = row->job.cancel_requested ? ACP_STATUS_CANCELLED : ACP_STATUS_FAILED;
    row->job.finished = now;
    free(row->job.message);
    row->job.message = copy;
    fake_release_lease(row);
    return 0;
}

static int fake_fail_abandoned(store *st, size_t limit, store_dispatch_list *out)
{
    fake_batch b = {.op = "pg.fail_abandoned",
                    .report_status = true,
                    .wanted = fake_expired_abandoned,
                    .order = fake_sort_lease,
                    .change = fake_fail_abandoned_row};
    return fake_batch_run(fake_of(st), &b, limit, out);
}

static bool fake_undispatched(const fake_batch *b, const fake_store_row *row, int64_t now)
{
    if (row->job.status != ACP_STATUS_QUEUED)
        return false;
    bool mine = false;
    for (size_t i = 0; !mine && i < b->queue_count; i++)
        mine = strcmp(b->queues[i], row->job.queue) == 0;
    if (!mine)
        return false;
    if (row->job.not_before > now) {
        fake_batch *seen = (fake_batch *)b; /* the next due time is the batch's own record */
        if (!row->dispatched && (!seen->next_due || row->job.not_before < seen->next_due))
            seen->next_due = row->job.not_before;
        return false;
    }
    if (!row->dispatched)
        return !row->dispatch_retry || row->dispatch_retry <= now;
    return row->dispatched < now - (int64_t)b->older_than_seconds * FAKE_US;
}

static int fake_take_row(const fake_batch *b, fake_store_row *row, int64_t now)
{
    (void)b;
    row->dispatched = now;
    return 0;
}

static int fake_take_undispatched(store *st, unsigned older_than_seconds, const char *const *queues,
                                  size_t queue_count, size_t limit, store_dispatch_list *out,
                                  int64_t *next_due)
{
    if (next_due)
        *next_due = 0;
    int rc = fake_check_names("take undispatched jobs", queues, queue_count);
    if (rc)
        return rc;
    fake_batch b = {.op = "pg.take_undispatched",
                    .older_than_seconds = older_than_seconds,
                    .queues = queues,
                    .queue_count = queue_count,
                    .wanted = fake_undispatched,
                    .order = fake_sort_claim,
                    .answer = fake_sort_claim,
                    .change = fake_take_row,
                    .failures = true};
    rc = fake_batch_run(fake_of(st), &b, limit, out);
    if (rc == 0 && next_due)
        *next_due = b.next_due;
    return rc;
}

/* ---- transactions -------------------------------------------------------------- */

/* Locks @slot for a new transaction whose pending row is a copy of it. */
static fake_tx *fake_tx_lock(fake_store *fs, fake_slot *slot)
{
    fake_tx *t = calloc(1, sizeof *t);
    if (!t || fake_row_copy(&t->pending, &slot->row) != 0) {
        free(t);
        error_set(ACP_ENOMEM, "fake store: out of memory");
        return NULL;
    }
    t->base.st = &fs->base;
    t->id = slot->row.job.id;
    t->began = fake_now(fs);
    slot->tx = t;
    return t;
}

static int fake_expire_begin(store *st, const acp_job_id *id, int64_t complete_accessed_before,
                             store_tx **tx, acp_job_status *previous)
{
    fake_store *fs = fake_of(st);
    if (tx)
        *tx = NULL;
    if (!id || !tx)
        return error_set(ACP_EINVAL, "store_expire_begin: NULL argument");
    int rc = complete_accessed_before ? fake_check_time("expire", complete_accessed_before) : 0;
    if (rc)
        return rc;
    FAKE_ENTER_READ(fs, "pg.expire_begin");
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_wait_slot(fs, id);
    const store_job *job = slot ? &slot->row.job : NULL;
    if (!slot) {
        rc = fake_no_job("expire", id);
    } else if (job->status != ACP_STATUS_IN_PROGRESS &&
               (!complete_accessed_before || (job->status == ACP_STATUS_COMPLETE &&
                                              job->last_accessed < complete_accessed_before))) {
        fake_tx *t = fake_tx_lock(fs, slot);
        if (!t) {
            rc = ACP_ENOMEM;
        } else {
            t->pending.job.status = ACP_STATUS_EXPIRED;
            free(t->pending.lease_owner);
            t->pending.lease_owner = NULL;
            t->pending.lease_expires = 0;
            if (previous)
                *previous = job->status;
            *tx = &t->base;
        }
    } else if (job->status == ACP_STATUS_IN_PROGRESS) {
        rc = fake_not(ACP_EBUSY, "expire", &slot->row, "expirable");
    } else {
        rc = fake_not(ACP_ECONFLICT, "expire", &slot->row,
                      complete_accessed_before ? "complete and last accessed before the cutoff"
                                               : "expirable");
    }
    pthread_mutex_unlock(&fs->lock);
    return rc;
}

static int fake_delete_begin(store *st, const acp_job_id *id, store_tx **tx)
{
    fake_store *fs = fake_of(st);
    if (tx)
        *tx = NULL;
    if (!id || !tx)
        return error_set(ACP_EINVAL, "store_delete_begin: NULL argument");
    FAKE_ENTER_READ(fs, "pg.delete_begin");
    int rc = 0;
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_wait_slot(fs, id);
    if (!slot) {
        rc = fake_no_job("delete", id);
    } else if (slot->row.job.status == ACP_STATUS_IN_PROGRESS) {
        rc = fake_not(ACP_EBUSY, "delete", &slot->row, "deletable");
    } else {
        fake_tx *t = fake_tx_lock(fs, slot);
        if (!t) {
            rc = ACP_ENOMEM;
        } else {
            t->deleted = true;
            *tx = &t->base;
        }
    }
    pthread_mutex_unlock(&fs->lock);
    return rc;
}

static int fake_finish_begin(store *st, const acp_job_id *id, const char *owner, unsigned attempts,
                             int64_t grabbed, store_tx **tx, acp_job_status *recorded)
{
    fake_store *fs = fake_of(st);
    if (tx)
        *tx = NULL;
    if (!id || !tx || !owner || !recorded)
        return error_set(ACP_EINVAL, "store_finish_begin: NULL argument");
    FAKE_ENTER_READ(fs, "pg.finish_begin");
    int rc = 0;
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_wait_slot(fs, id);
    const fake_store_row *row = slot ? &slot->row : NULL;
    if (!slot) {
        rc = error_set(ACP_ECONFLICT, "fake store: record job: no such job");
    } else if (row->job.status == ACP_STATUS_IN_PROGRESS && row->lease_owner &&
               strcmp(row->lease_owner, owner) == 0) {
        fake_tx *t = fake_tx_lock(fs, slot);
        if (t)
            *tx = &t->base;
        else
            rc = ACP_ENOMEM;
    } else if (row->job.grabbed && row->job.attempts == attempts && row->job.grabbed == grabbed &&
               (row->job.status == ACP_STATUS_COMPLETE || row->job.status == ACP_STATUS_FAILED)) {
        /* The end of this very claim is recorded: a commit whose answer was
         * lost went through. */
        *recorded = row->job.status;
        rc = 1;
    } else {
        rc = error_set(ACP_ECONFLICT,
                       "fake store: record job: the job is no longer in-progress leased by this "
                       "process");
    }
    pthread_mutex_unlock(&fs->lock);
    return rc;
}

static int fake_finish_tx(store_tx *tx, acp_job_status status, const char *message,
                          const char *const *outputs, const uint64_t *output_sizes,
                          size_t output_count, const acp_job_id *id)
{
    if (!tx || !id)
        return error_set(ACP_EINVAL, "store_finish_tx: NULL argument");
    fake_tx *t = (fake_tx *)tx;
    fake_store *fs = fake_of(tx->st);
    int rc = fake_check_end("record job", status, outputs, output_sizes, output_count);
    if (rc)
        return rc;
    const fault_rule *fault = fake_enter(fs, "pg.finish_tx");
    if (fault) {
        /* A failed statement aborts the transaction, answer lost or not. */
        t->aborted = true;
        return fake_injected(fault, "pg.finish_tx");
    }
    if (t->aborted)
        return error_set(ACP_EDB, "fake store: record job: current transaction is aborted, "
                                  "commands ignored until end of transaction block");
    if (fake_cmp_id(id, &t->id) != 0)
        return error_set(ACP_EINVAL,
                         "fake store: finish_tx on another job than its transaction locked");
    fake_end end;
    if ((rc = fake_end_init(&end, status, message, outputs, output_sizes, output_count)))
        return rc;
    pthread_mutex_lock(&fs->lock);
    /* Deleted by this transaction: the UPDATE matches nothing. finished is
     * clock_timestamp(), the time of the UPDATE, not the transaction's. */
    if (!t->deleted)
        fake_end_apply(&end, &t->pending, fake_now(fs));
    pthread_mutex_unlock(&fs->lock);
    fake_end_free(&end);
    return 0;
}

static int fake_tx_end(store_tx *tx, bool commit)
{
    if (!tx)
        return 0;
    fake_tx *t = (fake_tx *)tx;
    fake_store *fs = fake_of(tx->st);
    const fault_rule *fault = fake_enter(fs, "pg.tx_end");
    bool apply = commit && !t->aborted && (!fault || fault->kind == FAKE_STORE_FAULT_AFTER);
    pthread_mutex_lock(&fs->lock);
    fake_slot *slot = fake_find(fs, &t->id);
    if (slot && slot->tx == t) {
        slot->tx = NULL;
        if (apply && t->deleted) {
            fake_remove(fs, slot);
        } else if (apply) {
            fake_store_row_free(&slot->row);
            slot->row = t->pending;
            memset(&t->pending, 0, sizeof t->pending);
        }
    }
    pthread_cond_broadcast(&fs->unlocked);
    pthread_mutex_unlock(&fs->lock);
    bool aborted = t->aborted;
    fake_store_row_free(&t->pending);
    free(t);
    if (fault)
        return fake_injected(fault, "pg.tx_end");
    if (commit && aborted)
        return error_set(ACP_EDB, "fake store: commit: the transaction was rolled back");
    return 0;
}

/* ---- reads --------------------------------------------------------------------- */

static int fake_list_expirable(store *st, int64_t before, const acp_job_id *after, size_t limit,
                               acp_job_id **ids, size_t *count)
{
    fake_store *fs = fake_of(st);
    if (ids)
        *ids = NULL;
    if (count)
        *count = 0;
    if (!ids || !count)
        return error_set(ACP_EINVAL, "store_list_expirable: NULL argument");
    if (limit == 0)
        return 0;
    int rc = fake_check_time("list expirable jobs", before);
    if (rc)
        return rc;
    FAKE_ENTER_READ(fs, "pg.list_expirable");
    pthread_mutex_lock(&fs->lock);
    fake_slot **picked = calloc(fs->count ? fs->count : 1, sizeof *picked);
    size_t n = 0;
    for (size_t i = 0; picked && i < fs->count; i++) {
        const store_job *job = &fs->slots[i]->row.job;
        if (job->status == ACP_STATUS_COMPLETE && job->last_accessed < before &&
            (!after || fake_cmp_id(&job->id, after) > 0))
            picked[n++] = fs->slots[i];
    }
    qsort(picked, n, sizeof *picked, fake_sort_id);
    if (n > limit)
        n = limit;
    if (!picked || (n && !(*ids = calloc(n, sizeof **ids))))
        rc = error_set(ACP_ENOMEM, "fake store: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++)
        (*ids)[i] = picked[i]->row.job.id;
    pthread_mutex_unlock(&fs->lock);
    free(picked);
    if (rc == 0)
        *count = n;
    return rc;
}

static int fake_list(store *st, unsigned statuses, const char *queue, int64_t after_created,
                     const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count)
{
    fake_store *fs = fake_of(st);
    if (rows)
        *rows = NULL;
    if (count)
        *count = 0;
    if (!rows || !count)
        return error_set(ACP_EINVAL, "store_list: NULL argument");
    unsigned known = 0;
    for (int s = ACP_STATUS_QUEUED; s <= ACP_STATUS_CANCELLED; s++)
        known |= 1u << s;
    if (statuses & ~known)
        return error_set(ACP_EINVAL,
                         "fake store: list jobs: the status set 0x%x has bits of no status",
                         statuses);
    if (limit == 0)
        return 0;
    int rc = after_id ? fake_check_time("list jobs", after_created) : 0;
    if (rc)
        return rc;
    FAKE_ENTER_READ(fs, "pg.list");
    store_job cursor = {.created = after_created};
    if (after_id)
        cursor.id = *after_id;
    pthread_mutex_lock(&fs->lock);
    fake_slot **picked = calloc(fs->count ? fs->count : 1, sizeof *picked);
    size_t n = 0;
    for (size_t i = 0; picked && i < fs->count; i++) {
        const store_job *job = &fs->slots[i]->row.job;
        if ((statuses == 0 || (statuses & (1u << job->status))) &&
            (!queue || strcmp(queue, job->queue) == 0) &&
            (!after_id || fake_cmp_created(job, &cursor) > 0))
            picked[n++] = fs->slots[i];
    }
    qsort(picked, n, sizeof *picked, fake_sort_created);
    if (n > limit)
        n = limit;
    if (!picked || (n && !(*rows = calloc(n, sizeof **rows))))
        rc = error_set(ACP_ENOMEM, "fake store: out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = fake_job_copy(&(*rows)[i], &picked[i]->row.job);
        (*rows)[i].queue_position = -1;
        if (rc) {
            for (size_t k = 0; k < i; k++)
                store_job_free(&(*rows)[k]);
            free(*rows);
            *rows = NULL;
        }
    }
    pthread_mutex_unlock(&fs->lock);
    free(picked);
    if (rc == 0)
        *count = n;
    return rc;
}

static int fake_exists(store *st, const acp_job_id *ids, size_t count, bool *exists)
{
    fake_store *fs = fake_of(st);
    if (count > 0 && (!ids || !exists))
        return error_set(ACP_EINVAL, "store_exists: NULL argument");
    if (count == 0)
        return 0;
    for (size_t i = 0; i < count; i++)
        exists[i] = false;
    FAKE_ENTER_READ(fs, "pg.exists");
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < count; i++)
        exists[i] = fake_find(fs, &ids[i]) != NULL;
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

static int fake_runs_alive(store *st, const acp_job_id *ids, const unsigned *attempts, size_t count,
                           bool *alive)
{
    fake_store *fs = fake_of(st);
    if (count > 0 && (!ids || !attempts || !alive))
        return error_set(ACP_EINVAL, "store_runs_alive: NULL argument");
    if (count == 0)
        return 0;
    for (size_t i = 0; i < count; i++)
        alive[i] = false;
    FAKE_ENTER_READ(fs, "pg.runs_alive");
    pthread_mutex_lock(&fs->lock);
    int64_t now = fake_now(fs);
    for (size_t i = 0; i < count; i++) {
        const fake_slot *slot = fake_find(fs, &ids[i]);
        alive[i] = slot && slot->row.job.status == ACP_STATUS_IN_PROGRESS &&
                   slot->row.job.attempts == attempts[i] && slot->row.lease_expires > now;
    }
    pthread_mutex_unlock(&fs->lock);
    return 0;
}

static int fake_identity_read(store *st, store_identity *out)
{
    fake_store *fs = fake_of(st);
    FAKE_ENTER_READ(fs, "pg.identity_read");
    out->database_id = fake_strdup(fs->database_id);
    out->name = fake_strdup("fake");
    if (!out->database_id || !out->name) {
        store_identity_free(out);
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    }
    return 0;
}

static const store_ops fake_store_ops = {
    .name = "fake",
    .close = fake_close,
    .get = fake_get,
    .touch = fake_touch,
    .insert = fake_insert,
    .requeue = fake_requeue,
    .mark_dispatched = fake_mark_dispatched,
    .clear_dispatched = fake_clear_dispatched,
    .dispatch_failed = fake_dispatch_failed,
    .fail_undispatchable = fake_fail_undispatchable,
    .claim = fake_claim,
    .retry = fake_retry,
    .cancel = fake_cancel,
    .finish = fake_finish,
    .renew_leases = fake_renew_leases,
    .requeue_expired = fake_requeue_expired,
    .fail_abandoned = fake_fail_abandoned,
    .take_undispatched = fake_take_undispatched,
    .delete_job = fake_delete_job,
    .expire_begin = fake_expire_begin,
    .delete_begin = fake_delete_begin,
    .finish_begin = fake_finish_begin,
    .finish_tx = fake_finish_tx,
    .tx_end = fake_tx_end,
    .delete_expired = fake_delete_expired,
    .list_expirable = fake_list_expirable,
    .list = fake_list,
    .exists = fake_exists,
    .runs_alive = fake_runs_alive,
    .statement_count = fake_statement_count,
    .identity_read = fake_identity_read,
};

int fake_store_open(store **out, fault_plan *plan)
{
    if (!out)
        return error_set(ACP_EINVAL, "fake_store_open: NULL argument");
    *out = NULL;
    fake_store *fs = calloc(1, sizeof *fs);
    if (!fs)
        return error_set(ACP_ENOMEM, "fake store: out of memory");
    if (pthread_mutex_init(&fs->lock, NULL) != 0) {
        free(fs);
        return error_set(ACP_ENOMEM, "fake store: pthread_mutex_init failed");
    }
    if (clock_cond_init(&fs->unlocked) != 0) {
        pthread_mutex_destroy(&fs->lock);
        free(fs);
        return error_set(ACP_ENOMEM, "fake store: pthread_cond_init failed");
    }
    fs->base.ops = &fake_store_ops;
    fs->plan = plan;
    /* A random UUID, as migration 4's gen_random_uuid(): each fake is
     * another database. */
    unsigned char bytes[16];
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) {
        pthread_cond_destroy(&fs->unlocked);
        pthread_mutex_destroy(&fs->lock);
        free(fs);
        return error_set(ACP_EIO, "fake store: getrandom failed");
    }
    bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40);
    bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80);
    char *p = fs->database_id;
    for (size_t i = 0; i < sizeof bytes; i++)
        p += sprintf(p, "%s%02x", i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", bytes[i]);
    atomic_init(&fs->calls, 0);
    *out = &fs->base;
    return 0;
}
