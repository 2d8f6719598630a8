/* An in-memory store (src/store.h's store_ops) with fault injection, for unit
 * tests of the logic above the store: submit, claim, finish, retention,
 * arbitration. Every operation does what src/store.h documents for the
 * PostgreSQL store, with the same return codes; tests/unit/store_contract.c
 * runs the same cases on both to keep it so (a difference is a bug here).
 *
 * Time. The fake's now() is the wall clock plus an offset that
 * fake_store_advance() moves forward, so leases, redispatch windows and
 * back-offs expire without sleeping; each call's now() is later than the
 * call's before (so jobs inserted in a row keep their order). Inside a
 * transaction now() is the time it began, as in PostgreSQL. Times are µs
 * since the epoch, as in store_job.
 *
 * Transactions (store_expire_begin, store_delete_begin, store_finish_begin
 * ... store_tx_end) lock their row as PostgreSQL's row lock does: the change
 * is held by the transaction and applied by a commit, dropped by a rollback.
 * Meanwhile reads (get, list, list_expirable, exists, runs_alive) see the row
 * as it was; a call of another thread that would change the row (or begin a
 * transaction on it, or insert its id) blocks until the transaction ends and
 * then judges the row as committed; renew_leases, requeue_expired,
 * fail_abandoned and take_undispatched skip the locked row (SKIP LOCKED). A
 * thread that changes a row locked by its own open transaction therefore
 * blocks for ever, as it would on PostgreSQL's pool.
 *
 * Faults. Each operation first calls fault_check(plan, "pg.<op>"), <op> the
 * store_ops member name ("pg.get", "pg.claim", "pg.delete_job", "pg.finish_tx",
 * "pg.tx_end", ...; not close and statement_count, which cannot fail). A
 * failing rule makes the call return rule->error with the detail "fake store:
 * injected fault in pg.<op>", changing nothing, and with @kind
 * FAKE_STORE_FAULT_AFTER the call does its work first and then reports the
 * error (an answer lost with its connection: the real store's "may or may not
 * have been applied"); for reads and the *_begin calls that is the same as
 * failing before. A fault in store_finish_tx aborts its transaction as a
 * failed statement does in PostgreSQL: the commit then rolls back and
 * returns ACP_EDB. A fault in store_tx_end rolls the transaction back (kind
 * FAKE_STORE_FAULT_AFTER: commits it) and frees it.
 *
 * Identity. store_identity_read answers a random database_id made when the
 * fake is opened (so two fakes are two databases), system_id NULL (as for a
 * role that may not read it) and the name "fake".
 *
 * store_statement_count counts the calls of the operations (one per call,
 * failed ones included), where PostgreSQL counts statements.
 *
 * Not reproduced: the server's text rules (a queue id is limited to 32
 * bytes here, 32 characters there; invalid UTF-8 is accepted), connection
 * loss and its retries (inject faults instead), deadlock detection between
 * two transactions (here they wait for ever), and store_finish_tx on
 * another job than its transaction locked (ACP_EINVAL here). */
#ifndef ACP_FAKE_STORE_H
#define ACP_FAKE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fault.h"
#include "store.h"

/* fault_rule.kind for the fake store: apply the call, then fail it. */
#define FAKE_STORE_FAULT_AFTER 1

/* An empty fake store. @plan (may be NULL) must outlive it. Close with
 * store_close(). */
int fake_store_open(store **out, fault_plan *plan);

/* Move the fake's clock forward by @us microseconds. */
void fake_store_advance(store *st, int64_t us);
/* The fake's now(), µs since the epoch. */
int64_t fake_store_now(store *st);

/* Everything the fake holds of one row, beyond what store_get returns. */
typedef struct fake_store_row {
    store_job job;          /* as store_get returns it: queue_position, outputs included */
    char *lease_owner;      /* NULL when none */
    int64_t lease_expires;  /* 0 when none */
    int64_t dispatched;     /* 0 when NULL (unpublished) */
    int64_t dispatch_retry; /* 0 when NULL */
    unsigned dispatch_failures;
    bool locked; /* by an open transaction (the row shown is the committed one) */
} fake_store_row;

/* Inspection for tests: neither counted as calls nor subject to faults, and
 * never blocked by a transaction (they show the committed row). */
int fake_store_peek(store *st, const acp_job_id *id, store_job *out); /* ACP_ENOTFOUND */
int fake_store_peek_row(store *st, const acp_job_id *id, fake_store_row *out);
void fake_store_row_free(fake_store_row *row);
size_t fake_store_row_count(store *st);

#endif
