/* The PostgreSQL store's transactions and retention statements:
 * store_expire_begin, store_delete_begin, store_finish_begin,
 * store_finish_tx, store_tx_end, store_delete_expired and
 * store_list_expirable (store.h has each contract; store_pg.c puts these in
 * its store_ops). */
#ifndef ACP_STORE_RETENTION_H
#define ACP_STORE_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

int store_retention_expire_begin(store *st, const acp_job_id *id, int64_t complete_accessed_before,
                                 store_tx **tx, acp_job_status *previous);
int store_retention_delete_begin(store *st, const acp_job_id *id, store_tx **tx);
int store_retention_tx_end(store_tx *tx, bool commit);
int store_retention_finish_begin(store *st, const acp_job_id *id, const char *owner,
                                 unsigned attempts, int64_t grabbed, store_tx **tx,
                                 acp_job_status *recorded);
int store_retention_finish_tx(store_tx *tx, acp_job_status status, const char *message,
                              const char *const *outputs, const uint64_t *output_sizes,
                              size_t output_count, const acp_job_id *id);
int store_retention_delete_expired(store *st, const acp_job_id *id);
int store_retention_list_expirable(store *st, int64_t before, const acp_job_id *after, size_t limit,
                                   acp_job_id **ids, size_t *count);

#endif
