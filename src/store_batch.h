/* The PostgreSQL statements on many jobs at once, for the maintenance
 * passes: store_requeue_expired, store_fail_abandoned and
 * store_take_undispatched (store.h has each contract; store_pg.c puts these
 * in its store_ops). */
#ifndef ACP_STORE_BATCH_H
#define ACP_STORE_BATCH_H

#include <stddef.h>

#include "store.h"

#include <stdint.h>

int store_batch_requeue_expired(store *st, size_t limit, store_dispatch_list *out);
int store_batch_fail_abandoned(store *st, size_t limit, store_dispatch_list *out);
int store_batch_take_undispatched(store *st, unsigned older_than_seconds, const char *const *queues,
                                  size_t queue_count, size_t limit, store_dispatch_list *out,
                                  int64_t *next_due);

#endif
