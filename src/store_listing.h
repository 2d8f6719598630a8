/* The PostgreSQL store's listing statements: store_list, store_exists,
 * store_runs_alive and the counts (store.h has each contract; store_pg.c puts these in its
 * store_ops). */
#ifndef ACP_STORE_LISTING_H
#define ACP_STORE_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

int store_listing_list(store *st, unsigned statuses, const char *queue, int64_t after_created,
                       const acp_job_id *after_id, size_t limit, store_job **rows, size_t *count);
int store_listing_exists(store *st, const acp_job_id *ids, size_t count, bool *exists);
int store_listing_runs_alive(store *st, const acp_job_id *ids, const unsigned *attempts,
                             size_t count, bool *alive);
int store_listing_count_queued(store *st, store_queue_count **out, size_t *count);
int store_listing_count_jobs(store *st, int64_t failed_since, acp_queue_counts **out,
                             size_t *count);

#endif
