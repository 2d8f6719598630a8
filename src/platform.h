/* Starting a platform on backends chosen by the caller: acp_init() opens
 * the real ones (PostgreSQL, S3, RabbitMQ); unit tests pass the fakes of
 * tests/fakes, so that the logic above the backends runs without services. */
#ifndef ACP_PLATFORM_H
#define ACP_PLATFORM_H

#include <stdbool.h>

#include "async_platform.h"
#include "broker.h"
#include "objects.h"
#include "store.h"

typedef struct platform_backends {
    /* Opened from config->db / config->s3 when NULL; otherwise taken over
     * (closed by the platform, also when starting fails). */
    store *store;
    objects *objects;
    /* The AMQP driver when NULL; otherwise borrowed: it must outlive the
     * platform. */
    const broker_driver *broker;
    /* No maintenance and pruner threads: the caller drives leases,
     * requeues and redispatch with maintenance_tick(), so that faults hit
     * only the steps it means. */
    bool no_background_threads;
    /* How long a worker's job runs before its consumer is cancelled (0:
     * WORKER_CANCEL_GRACE_MS): tests whose step counts must not depend on
     * the machine's speed raise it. */
    unsigned cancel_grace_ms;
} platform_backends;

/* acp_init() with @backends (NULL: all real) and a configuration of the
 * current version that config_check() accepted. Same results and errors. */
int platform_init_with(acp_platform **out, const acp_config *config,
                       const platform_backends *backends);

#endif
