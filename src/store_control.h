/* The PostgreSQL statements of job control: the doorbell's claim, a retry,
 * a cancellation and the lease renewal that also reports cancellations
 * (store.h has each contract; store_pg.c puts these in its store_ops). */
#ifndef ACP_STORE_CONTROL_H
#define ACP_STORE_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

int store_control_claim(store *base, const char *queue, const char *owner, unsigned lease_seconds,
                        store_job *out);
int store_control_retry(store *base, const acp_job_id *id, const char *owner, const char *message,
                        unsigned delay_ms);
int store_control_cancel(store *base, const acp_job_id *id, acp_job_status *previous,
                         acp_layout *layout, char *queue);
int store_control_renew_leases(store *base, const char *owner, unsigned lease_seconds,
                               const acp_job_id *ids, size_t count, size_t *renewed, bool *cancel);

#endif
