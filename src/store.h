/* The store: job state in PostgreSQL and every SQL statement the platform
 * runs. The database is the truth about owned jobs.
 *
 * Callers use the store_* functions below. Each dispatches through the
 * handle's store_ops (at the end), so unit tests can put a fake behind
 * them; store_open opens the real one, PostgreSQL (store_pg.c, built from
 * pgpool, pgvalue, schema, store_jobs, store_batch, store_retention and
 * store_listing). What follows describes PostgreSQL.
 *
 * All functions are thread-safe: each borrows a pooled connection for the
 * duration of the call. They return 0 or a negative ACP_E* code with the
 * detail set (error_set), prefixed with "postgres <host>:<port>". A broken
 * connection is reset (with back-off) the next time it is borrowed, so a
 * database restart costs the calls made while it is down, nothing more. */
#ifndef ACP_STORE_H
#define ACP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "async_platform.h"
#include "log.h"

/* The store is reached through a table of operations (store_ops, at the
 * end): PostgreSQL is one implementation (store_open), an in-memory fake
 * for unit tests another. */
typedef struct store store;

/* A transaction on a borrowed connection, holding a row lock until it ends,
 * so that a concurrent touch, requeue or claim of the same job waits for the
 * S3 work the caller does meanwhile. */
typedef struct store_tx store_tx;

/* One row of compute.jobs. Strings and arrays are owned by the row: release
 * with store_job_free(). Times are microseconds since the Unix epoch, 0 when
 * NULL in the database. */
typedef struct store_job {
    acp_job_id id;
    acp_job_status status;
    char queue[ACP_QUEUE_ID_MAX + 1];
    char *config;  /* compact JSON text or NULL */
    char **inputs; /* input file names (input_files) */
    size_t input_count;
    /* The layout the run was created (or last re-run) under (column layout):
     * ACP_LAYOUT_NATIVE or ACP_LAYOUT_LCP; rows from before the column read
     * ACP_LAYOUT_LCP. */
    acp_layout layout;
    /* Sizes in bytes of the inputs, input_count entries (input_sizes), or
     * NULL when the row has none (a run created under lcp), or sizes that
     * do not match the names (left by a library from before migration 4). */
    uint64_t *input_sizes;
    /* The result files a finished run recorded (output_files) and their
     * sizes (output_sizes, NULL when the row has none); NULL/0 before. */
    char **outputs;
    uint64_t *output_sizes;
    size_t output_count;
    int64_t created;
    int64_t last_accessed;
    int64_t grabbed;
    int64_t finished;
    char *message;       /* failure message (column error) or NULL */
    unsigned attempts;   /* times claimed */
    long queue_position; /* filled by store_get for queued jobs, else -1 */
    /* Job control (migration 5). */
    int priority;
    int64_t not_before;       /* when a queued job becomes claimable */
    unsigned max_attempts;    /* attempts before a failure is final */
    unsigned timeout_seconds; /* each attempt's limit; 0 none */
    unsigned backoff_base_ms; /* retry back-off: full jitter below */
    unsigned backoff_max_ms;  /* min(max, base x 2^(attempts-1)) */
    int64_t cancel_requested; /* when acp_cancel_job asked a run to stop; 0 */
    int64_t dispatched;       /* when its message was published; 0: none pending */
    /* Progress and logs (migration 6). */
    uint64_t log_size;      /* bytes of the log stream written (all attempts) */
    uint64_t log_head;      /* the head of the log's cap a writer used; 0: none yet */
    uint64_t progress_done; /* the latest acp_job_progress() of the attempt */
    uint64_t progress_total;
    char *progress_text;      /* or NULL */
    int64_t progress_updated; /* when it was written; 0: no progress */
} store_job;

/* An empty row (queue_position -1): what store_job_free leaves. */
void store_job_init(store_job *job);
void store_job_free(store_job *job);

/* Connect to PostgreSQL (one connection at once, to fail fast on a wrong host, password or
 * database; the rest of the pool on demand, up to cfg->pool_size) and apply
 * the migrations. Fails with ACP_EDB and a message naming the server and
 * the reason ("password authentication failed for user ..."). */
int store_open(store **out, const acp_db_config *cfg, const logger *log);
/* Closes every connection (releases the store). NULL is fine. No call may
 * be in progress. */
void store_close(store *st);

/* The schema: compute.meta and compute.jobs exactly as lib-compute-platform
 * 1.0.0 (docs/compatibility.adoc, database schema; meta version '1.0.0'), then our own migrations
 * (recorded as meta key 'acp_schema'): columns lease_owner text,
 * lease_expires timestamptz, attempts int NOT NULL DEFAULT 0, error text,
 * dispatched timestamptz (1); the keyset indexes of store_list on (created,
 * job_id), (status, created, job_id) and (queue, status, created, job_id),
 * replacing 1's (status, created) and (queue, status, created), and one on
 * job_id of complete jobs for store_list_expirable (2); dispatch_failures
 * int NOT NULL DEFAULT 0 and dispatch_retry timestamptz for the
 * re-dispatch back-off (3); layout text NOT NULL DEFAULT 'lcp' CHECK (layout
 * IN ('native', 'lcp')), input_sizes bigint[] and output_sizes bigint[], and
 * the meta row 'acp_database_id', a random UUID made once (4); job control:
 * priority int NOT NULL DEFAULT 50, not_before timestamptz NOT NULL (queued
 * rows get their created), max_attempts int NOT NULL DEFAULT 3,
 * timeout_seconds, backoff_base_ms, backoff_max_ms int NOT NULL,
 * cancel_requested timestamptz, status 'cancelled' allowed, and the
 * partial indexes of the claim (queue, priority DESC, not_before, job_id)
 * and of due undispatched jobs (not_before), both WHERE status = 'queued'
 * (5); progress_done, progress_total bigint, progress_text text,
 * progress_updated timestamptz, log_size bigint NOT NULL DEFAULT 0,
 * log_head bigint, and the table compute.job_logs (job_id, pos, data)
 * whose rows go with the job's (deleted, expired, re-run) (6); no foreign
 * key from it to compute.jobs, should a development build have made one (7). Runs inside one
 * transaction holding an advisory lock, so processes starting together do
 * not race; a database already at the current version is left alone.
 * Called by store_open. PostgreSQL only: ACP_EINVAL for another store. */
int store_migrate(store *st);

/* Q-GET plus the queue position (0-based, among queued jobs of the same
 * queue created before it) when the job is queued. ACP_ENOTFOUND when there
 * is no row. */
int store_get(store *st, const acp_job_id *id, store_job *out);

/* Q-TOUCH: last_accessed = now(). ACP_ENOTFOUND when there is no row. */
int store_touch(store *st, const acp_job_id *id);

/* What a new run carries besides its queue, config and input names; NULL
 * stands for { ACP_LAYOUT_LCP, NULL } with the defaults below. */
typedef struct store_run_options {
    acp_layout layout;           /* ACP_LAYOUT_NATIVE or ACP_LAYOUT_LCP (DEFAULT reads LCP) */
    const uint64_t *input_sizes; /* input_count sizes, or NULL when not known */
    int priority;                /* ACP_PRIORITY_*; NULL options: ACP_PRIORITY_DEFAULT */
    int64_t not_before;          /* µs since the epoch; 0 (and NULL options): now() */
    unsigned max_attempts;       /* 0 (and NULL options): CONFIG_DEFAULT_MAX_ATTEMPTS */
    unsigned timeout_seconds;    /* 0: none */
    unsigned backoff_base_ms;    /* 0 (and NULL options): 1000 */
    unsigned backoff_max_ms;     /* 0 (and NULL options): 300000 */
} store_run_options;

/* Q-INSERT of a new queued job (created = last_accessed = now(), attempts 0,
 * with @opt's layout, input sizes and job control; not_before = the later
 * of now() and @opt->not_before). Returns 0 when it is due now:
 * dispatched = now(), and the caller publishes its message next and calls
 * store_clear_dispatched if that fails (if the caller dies first, the job
 * is redispatched once the redispatch window has passed). Returns 1 when
 * it is due later: dispatched NULL, and store_take_undispatched hands it
 * out once it is due. ACP_ECONFLICT when a row with that id exists (and then
 * nothing is changed: INSERT ... ON CONFLICT DO NOTHING, so the caller can
 * try it first without a lookup). */
int store_insert(store *st, const acp_job_id *id, const char *queue, const char *config,
                 const char *const *inputs, size_t input_count, const store_run_options *opt);

/* Re-run an owned job that is complete, failed, expired or cancelled:
 * status queued, the new queue, config, inputs and @opt's layout, input
 * sizes and job control, last_accessed = now(), dispatched and the return
 * value (0 or 1) as for store_insert, attempts 0 (a new run), grabbed, finished, error, lease,
 * cancel_requested, output_files and output_sizes cleared, the log (its
 * rows in compute.job_logs, log_size, log_head) and progress too; created is kept.
 * Only when the row's status is one of those four: otherwise ACP_ECONFLICT
 * (the caller re-reads it). ACP_ENOTFOUND when there is no row. */
int store_requeue(store *st, const acp_job_id *id, const char *queue, const char *config,
                  const char *const *inputs, size_t input_count, const store_run_options *opt);

/* Record that the job's message was published now (dispatched = now(),
 * dispatch_failures = 0, dispatch_retry = NULL), or that it is not published
 * (dispatched = NULL: eligible for store_take_undispatched at once).
 * ACP_ENOTFOUND when there is no row. */
int store_mark_dispatched(store *st, const acp_job_id *id);
int store_clear_dispatched(store *st, const acp_job_id *id);

/* Record a failed publish: dispatched = NULL, dispatch_failures + 1, and
 * dispatch_retry = now() + 2^(failures before) seconds, at most 60, before
 * which store_take_undispatched skips the job. ACP_ENOTFOUND when there is
 * no row. */
int store_dispatch_failed(store *st, const acp_job_id *id);

/* Fail a queued job whose message cannot be made (its stored config is no
 * JSON a message can carry): status failed, finished = now(), error =
 * @message, dispatched cleared. ACP_ECONFLICT when it is no longer queued,
 * ACP_ENOTFOUND when there is no row. */
int store_fail_undispatchable(store *st, const acp_job_id *id, const char *message);

/* The claim of a doorbell: the best due job of @queue (status queued,
 * not_before <= now(); the highest priority, then the smallest not_before,
 * then the smallest id) becomes in-progress in one statement (picked FOR
 * UPDATE SKIP LOCKED, so concurrent claimers take different jobs), with
 * grabbed = now(), lease_owner = @owner, lease_expires = now() +
 * @lease_seconds, attempts + 1, the progress columns cleared, RETURNING the row into @out. Returns
 * 0 when claimed, ACP_ENOTFOUND when no job of the queue is due, ACP_EBUSY when due jobs exist but
 * another statement holds each of them (try again in a moment). */
int store_claim(store *st, const char *queue, const char *owner, unsigned lease_seconds,
                store_job *out);

/* A failed attempt with attempts left, fenced by the lease as store_finish:
 * status queued, not_before = now() + @delay_ms, error = @message,
 * dispatched NULL (store_take_undispatched publishes it when due), grabbed
 * and lease cleared; attempts kept. Returns 0, or ACP_ECONFLICT when @owner
 * no longer holds the lease or the job's cancellation was requested (then
 * nothing changes: the caller finishes it cancelled instead). */
int store_retry(store *st, const acp_job_id *id, const char *owner, const char *message,
                unsigned delay_ms);

/* Cancel: a queued job becomes cancelled (finished = now(), error
 * "cancelled", dispatched cleared); an in-progress one gets
 * cancel_requested = now() (kept if already set) and a NOTIFY on channel
 * STORE_CANCEL_CHANNEL with its hex id as payload, sent at commit.
 * *@previous gets the status before, *@layout the run's layout (both may
 * be NULL). ACP_ENOTFOUND when there is no row, ACP_ECONFLICT when its
 * status is none of the two (the detail names it). */
#define STORE_CANCEL_CHANNEL "acp_cancel"
int store_cancel(store *st, const acp_job_id *id, acp_job_status *previous, acp_layout *layout);
/* store_cancel, and the job's queue into @queue (ACP_QUEUE_ID_MAX + 1
 * bytes, or NULL) when it succeeds. */
int store_cancel_in(store *st, const acp_job_id *id, acp_job_status *previous, acp_layout *layout,
                    char *queue);

/* Finish a claimed job, fenced by the lease: status = complete, failed or
 * cancelled (then error "cancelled" when @message is NULL),
 * finished = now(), error = @message (may be NULL), output_files =
 * @outputs, output_sizes = @output_sizes (NULL: the column NULL), lease
 * cleared, WHERE status = 'in-progress' AND lease_owner =
 * @owner. Returns 0, or ACP_ECONFLICT when this process no longer holds the
 * lease (the job was requeued, deleted or re-run meanwhile). */
int store_finish(store *st, const acp_job_id *id, const char *owner, acp_job_status status,
                 const char *message, const char *const *outputs, const uint64_t *output_sizes,
                 size_t output_count);

/* Extend the leases @owner holds on the @count jobs @ids (the jobs it runs
 * now) to now() + @lease_seconds; never those of other jobs, even with the
 * same owner (an abandoned run's lease must run out). Rows locked by a run
 * being recorded are skipped, not waited for. @renewed gets the number of
 * rows (may be NULL); @cancel (NULL, or @count entries) whether each job's
 * cancellation was requested (the fallback of a lost NOTIFY). */
int store_renew_leases(store *st, const char *owner, unsigned lease_seconds, const acp_job_id *ids,
                       size_t count, size_t *renewed, bool *cancel);

/* A job to (re)publish: id, queue and config (owned; free with
 * store_dispatch_list_free), its failed publishes in a row (only from
 * store_take_undispatched; 0 otherwise) and the layout of its run (which
 * says whether a failure gets upstream's flag). */
typedef struct store_dispatch {
    acp_job_id id;
    char queue[ACP_QUEUE_ID_MAX + 1];
    char *config;
    unsigned failures;
    acp_layout layout;
    acp_job_status status; /* store_fail_abandoned: what the job became; else queued */
} store_dispatch;

typedef struct store_dispatch_list {
    store_dispatch *items;
    size_t count;
} store_dispatch_list;

void store_dispatch_list_free(store_dispatch_list *list);

/* Requeue in-progress jobs whose lease expired before now() (any owner),
 * that were claimed fewer than their max_attempts times and whose
 * cancellation was not requested, for a retry: status queued, grabbed and
 * lease cleared, error "attempt N stopped: the process running it stopped
 * (its lease expired)", not_before = now() + the row's back-off for
 * attempt N (full jitter), dispatched NULL (store_take_undispatched hands
 * them out when due), RETURNING them. At most @limit rows per call. */
int store_requeue_expired(store *st, size_t limit, store_dispatch_list *out);

/* The others: in-progress jobs whose lease expired and that were claimed
 * their max_attempts times or more become failed, finished = now(), lease
 * cleared, error "abandoned: the process running attempt N of N stopped
 * (its lease expired)"; those whose cancellation was requested become
 * cancelled (error "cancelled"). RETURNING them (not to be published), the
 * status each got in store_dispatch.status. At most @limit rows per call. */
int store_fail_abandoned(store *st, size_t limit, store_dispatch_list *out);

/* Due queued jobs (not_before <= now()) of one of the @queue_count @queues
 * whose message is unpublished (dispatched IS NULL, and dispatch_retry, if
 * any, has come) or was published more than @older_than_seconds ago, in
 * claim order (priority, then not_before), at most @limit. Their dispatched
 * is set to now() in the same statement (so two processes do not both
 * republish). *@next_due (may be NULL) gets the earliest not_before after
 * now() of an undispatched queued job of those queues, µs since the epoch,
 * or 0 when there is none: when to look again. */
int store_take_undispatched(store *st, unsigned older_than_seconds, const char *const *queues,
                            size_t queue_count, size_t limit, store_dispatch_list *out,
                            int64_t *next_due);

/* Q-DELETE, and the live copy of its log. ACP_ENOTFOUND when there is no row. */
int store_delete(store *st, const acp_job_id *id);

/* ---- expiring, deleting and listing ------------------------------------ */

/* BEGIN, then mark the job expired: status 'expired', lease cleared, the
 * live copy of its log deleted, in one UPDATE that keeps the row locked. When
 * @complete_accessed_before (µs since the epoch) is non-zero, only a 'complete' job last accessed
 * before it qualifies (the pruner's rule); otherwise any status but 'in-progress' does. *@previous
 * gets the status before (may be NULL). Returns 0 with *@tx open (end it with store_tx_end),
 * ACP_ENOTFOUND (no row), ACP_EBUSY (in-progress), ACP_ECONFLICT (does not qualify: accessed since,
 * or not complete). No transaction is left open on failure. */
int store_expire_begin(store *st, const acp_job_id *id, int64_t complete_accessed_before,
                       store_tx **tx, acp_job_status *previous);

/* BEGIN, then delete the row unless it is 'in-progress'. Returns 0 with
 * *@tx open, ACP_ENOTFOUND or ACP_EBUSY. */
int store_delete_begin(store *st, const acp_job_id *id, store_tx **tx);

/* COMMIT (@commit true) or ROLLBACK, and give the connection back. Returns
 * the result of the COMMIT. @tx is freed either way; NULL is fine. */
int store_tx_end(store_tx *tx, bool commit);

/* Recording a run, fenced by its lease for its whole length: BEGIN, then
 * lock the job's row (SELECT ... FOR UPDATE). Returns 0 with *@tx open when
 * the row is in-progress leased by @owner: upload the results, then
 * store_finish_tx and store_tx_end. While the row is locked, no requeue or
 * claim can take the job. Returns 1 (no transaction) when the row already
 * holds the end of this very claim (@attempts and @grabbed, µs, as the claim
 * returned them), status in *@recorded: a COMMIT whose answer was lost went
 * through. ACP_ECONFLICT when the lease is lost (requeued, deleted, re-run
 * meanwhile), ACP_EDB when the database is unreachable. */
int store_finish_begin(store *st, const acp_job_id *id, const char *owner, unsigned attempts,
                       int64_t grabbed, store_tx **tx, acp_job_status *recorded);

/* The UPDATE of store_finish on the row locked by store_finish_begin:
 * status complete or failed, finished = the time of this statement (not
 * the transaction's start: the results were uploaded in between), error = @message (may be
 * NULL), output_files, output_sizes, lease cleared; when the job has a log
 * (log_size > 0), its live copy (compute.job_logs) is deleted and
 * STORE_LOG_CHANNEL notified, so that followers see the end. Commit with
 * store_tx_end. */
int store_finish_tx(store_tx *tx, acp_job_status status, const char *message,
                    const char *const *outputs, const uint64_t *output_sizes, size_t output_count,
                    const acp_job_id *id);

/* Ids of 'complete' jobs last accessed before @before (µs since the epoch),
 * in id order, after @after when not NULL (for paging), at most @limit.
 * *@ids is malloc'd (free it), *@count its length. */
int store_list_expirable(store *st, int64_t before, const acp_job_id *after, size_t limit,
                         acp_job_id **ids, size_t *count);

/* A page of rows, oldest first by (created, job_id), filtered by @statuses
 * (bit set of 1u << acp_job_status; 0 = all) and @queue (NULL = all),
 * strictly after (@after_created, *@after_id) when @after_id is not NULL,
 * at most @limit rows. queue_position is -1. *@rows is malloc'd: free each
 * with store_job_free, then the array. Served by an index for every filter
 * combination, so that paging a million rows stays fast. */
int store_list(store *st, unsigned statuses, const char *queue, int64_t after_created,
               const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count);

/* Delete the row only while its status is 'expired' (a row another
 * service's takeover made stale). ACP_ECONFLICT when it is not expired,
 * ACP_ENOTFOUND when there is no row. */
int store_delete_expired(store *st, const acp_job_id *id);

/* Who this database is, for the ownership of an S3 root in the native
 * layout. Strings owned by the structure (store_identity_free). */
typedef struct store_identity {
    char *database_id; /* random, made once by a migration (compute.meta 'acp_database_id') */
    char *system_id;   /* pg_control_system()'s system_identifier, or NULL when not readable */
    char *name;        /* "<host>:<port>/<dbname>" as configured */
} store_identity;

void store_identity_free(store_identity *identity); /* NULL is fine */

/* Read this database's identity (one statement). ACP_EDB when compute.meta
 * holds no acp_database_id (a schema before migration 4). */
int store_identity_read(store *st, store_identity *out);

/* SQL statements sent so far (every attempt, transaction control included). */
uint64_t store_statement_count(const store *st);

/* Queued jobs of one queue (store_count_queued). */
typedef struct store_queue_count {
    char queue[ACP_QUEUE_ID_MAX + 1];
    uint64_t count;
} store_queue_count;

/* The number of queued jobs of each queue that has any (one statement,
 * over the claim index), for acp_jobs_queued; at most STORE_QUEUES_MAX
 * queues. *@out is malloc'd (free it; NULL when none). */
#define STORE_QUEUES_MAX      1000
#define STORE_QUEUES_MAX_TEXT "1000"
int store_count_queued(store *st, store_queue_count **out, size_t *count);

/* The jobs of each queue by status, and the failures that ended at or
 * after @failed_since (µs), for acp_count_jobs: one statement. *@out is
 * malloc'd, sorted by queue (free it; NULL when no job exists); at most
 * STORE_QUEUES_MAX queues. */
int store_count_jobs(store *st, int64_t failed_since, acp_queue_counts **out, size_t *count);

/* For each of @count ids, whether this database has a row: @exists[i]. */
int store_exists(store *st, const acp_job_id *ids, size_t count, bool *exists);

/* For each of @count runs (@ids[i], @attempts[i]), whether it may still be
 * running somewhere: the row is in-progress, claimed exactly @attempts[i]
 * times, and its lease has not expired: @alive[i]. One statement for all. */
int store_runs_alive(store *st, const acp_job_id *ids, const unsigned *attempts, size_t count,
                     bool *alive);

/* ---- the seam ------------------------------------------------------------ */

/* One backend of the store. Each entry has exactly the parameters of the store_* function
 * of the same name (store_delete -> delete_job), first parameter the handle. */
typedef struct store_ops {
    const char *name; /* "postgres", "fake": for messages */
    void (*close)(store *st);
    int (*get)(store *st, const acp_job_id *id, store_job *out);
    int (*touch)(store *st, const acp_job_id *id);
    int (*insert)(store *st, const acp_job_id *id, const char *queue, const char *config,
                  const char *const *inputs, size_t input_count, const store_run_options *opt);
    int (*requeue)(store *st, const acp_job_id *id, const char *queue, const char *config,
                   const char *const *inputs, size_t input_count, const store_run_options *opt);
    int (*mark_dispatched)(store *st, const acp_job_id *id);
    int (*clear_dispatched)(store *st, const acp_job_id *id);
    int (*dispatch_failed)(store *st, const acp_job_id *id);
    int (*fail_undispatchable)(store *st, const acp_job_id *id, const char *message);
    int (*claim)(store *st, const char *queue, const char *owner, unsigned lease_seconds,
                 store_job *out);
    int (*retry)(store *st, const acp_job_id *id, const char *owner, const char *message,
                 unsigned delay_ms);
    int (*cancel)(store *st, const acp_job_id *id, acp_job_status *previous, acp_layout *layout,
                  char *queue); /* store_cancel_in */
    int (*finish)(store *st, const acp_job_id *id, const char *owner, acp_job_status status,
                  const char *message, const char *const *outputs, const uint64_t *output_sizes,
                  size_t output_count);
    int (*renew_leases)(store *st, const char *owner, unsigned lease_seconds, const acp_job_id *ids,
                        size_t count, size_t *renewed, bool *cancel);
    int (*requeue_expired)(store *st, size_t limit, store_dispatch_list *out);
    int (*fail_abandoned)(store *st, size_t limit, store_dispatch_list *out);
    int (*take_undispatched)(store *st, unsigned older_than_seconds, const char *const *queues,
                             size_t queue_count, size_t limit, store_dispatch_list *out,
                             int64_t *next_due);
    int (*delete_job)(store *st, const acp_job_id *id);
    int (*expire_begin)(store *st, const acp_job_id *id, int64_t complete_accessed_before,
                        store_tx **tx, acp_job_status *previous);
    int (*delete_begin)(store *st, const acp_job_id *id, store_tx **tx);
    int (*finish_begin)(store *st, const acp_job_id *id, const char *owner, unsigned attempts,
                        int64_t grabbed, store_tx **tx, acp_job_status *recorded);
    int (*finish_tx)(store_tx *tx, acp_job_status status, const char *message,
                     const char *const *outputs, const uint64_t *output_sizes, size_t output_count,
                     const acp_job_id *id);
    int (*tx_end)(store_tx *tx, bool commit);
    int (*delete_expired)(store *st, const acp_job_id *id);
    int (*list_expirable)(store *st, int64_t before, const acp_job_id *after, size_t limit,
                          acp_job_id **ids, size_t *count);
    int (*list)(store *st, unsigned statuses, const char *queue, int64_t after_created,
                const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count);
    int (*exists)(store *st, const acp_job_id *ids, size_t count, bool *exists);
    int (*runs_alive)(store *st, const acp_job_id *ids, const unsigned *attempts, size_t count,
                      bool *alive);
    uint64_t (*statement_count)(const store *st);
    int (*identity_read)(store *st, store_identity *out);
    int (*count_queued)(store *st, store_queue_count **out, size_t *count); /* NULL: unsupported */
    int (*count_jobs)(store *st, int64_t failed_since, acp_queue_counts **out,
                      size_t *count); /* NULL: unsupported */
} store_ops;

/* Every implementation's handle begins with this member... */
struct store {
    const store_ops *ops;
    /* Where the implementation counts its requests (acp_metrics_write's
     * backend="sql"); NULL: nowhere. Set by store_set_metrics. */
    struct metrics_backend *metrics;
};

/* Count @st's statements, errors and latencies in @m from now on. */
void store_set_metrics(store *st, struct metrics_backend *m);
/* ...and every implementation's transaction with this one (tx_end dispatches through st). */
struct store_tx {
    store *st;
};

#endif
