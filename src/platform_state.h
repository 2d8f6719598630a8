/* The platform's state, shared by the modules that run it (platform.c
 * starts and stops them; worker.c, maintenance.c, dispatch.c, retention.c,
 * scratch.c and the API's modules use it), and the few operations on it
 * that all of them need: references, stop flags and waits, queue lookup.
 * This header includes only the backends' headers, never a header of a
 * module that includes it. */
#ifndef ACP_PLATFORM_STATE_H
#define ACP_PLATFORM_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "async_platform.h"
#include "broker.h"
#include "log.h"
#include "objects.h"
#include "store.h"

typedef struct worker worker;

/* One configured queue with its owned settings, its publisher connection
 * and its workers. */
typedef struct queue_rt {
    acp_queue_config cfg; /* strings point into the owned copies below */
    char *id, *host, *user, *password;
    struct acp_platform *platform;

    /* Publishing from host threads and the maintenance thread shares one
     * connection, used under this lock and reconnected on demand. */
    pthread_mutex_t publish_lock;
    broker_conn *publisher;
    uint64_t publisher_gen; /* counts the connections made, to tell them apart */
    /* Publishes waiting for their confirm (dispatch.c), each on the stack
     * of its thread; one of them at a time reads the connection for all
     * (confirm_reader), the others wait on @confirmed. Under publish_lock. */
    struct dispatch_waiter *waiters;
    bool confirm_reader;
    pthread_cond_t confirmed;

    worker *workers;
    size_t worker_count;
    atomic_int running; /* jobs executing now */
    atomic_int running_peak;
} queue_rt;

struct acp_platform {
    logger log;
    const broker_driver *broker;         /* broker_amqp_driver; unit tests put a fake here */
    char instance_id[ACP_JOB_ID_STRLEN]; /* lease owner: random per platform */
    store *store;
    objects *objects;
    acp_executor_factory factory;
    char *workspace_root;
    int workspace_fd; /* the root, opened once it was found safe; -1 before */
    unsigned lease_seconds;
    unsigned redispatch_seconds;
    unsigned shutdown_timeout;
    unsigned expiration_days;
    unsigned prune_interval;
    unsigned claim_stale_seconds; /* 0: CLAIM_STALE_SECONDS; tests lower it */
    unsigned cancel_grace_ms;     /* 0: WORKER_CANCEL_GRACE_MS; tests raise it */
    unsigned max_attempts;        /* config.max_attempts, 0 replaced by the default */
    unsigned cancel_grace_seconds;
    int64_t next_due_us;       /* the maintenance thread's: when the next delayed job is due; 0 */
    struct listener *listener; /* LISTEN connection for cancellations; NULL before */
    size_t log_cap_bytes;      /* config.log_cap_bytes, 0 replaced by the default */
    /* The layout of new jobs and re-runs: ACP_LAYOUT_NATIVE or
     * ACP_LAYOUT_LCP (never DEFAULT). A job keeps the layout in its row. */
    acp_layout layout;
    /* Names of the scratch directories of this process's runs (pointing
     * into the paths the workers own), guarded by scratch_lock. */
    pthread_mutex_t scratch_lock;
    const char **scratch_busy;
    size_t scratch_busy_count, scratch_busy_cap;
    unsigned result_retry_seconds;

    queue_rt *queues;
    size_t queue_count;

    /* acp_metrics_write's registry (metrics.h): NULL in platforms that
     * tests build by hand. */
    struct metrics *metrics;

    /* Counters for acp_get_stats. */
    atomic_uint_least64_t submitted, started, completed, failed, requeued, expired;
    atomic_uint_least64_t published, acked, dropped;
    atomic_uint_least64_t retried, cancelled, timed_out;

    atomic_bool stopping;             /* workers take no new messages */
    atomic_bool maintenance_stopping; /* set once the workers are done */
    pthread_mutex_t lock;             /* guards the fields below */
    pthread_cond_t changed;
    bool maintenance_started;
    pthread_t maintenance;
    bool pruner_started;
    pthread_t pruner;
    /* The jobs this process is running now, from their claim until their
     * run is recorded or given up: the only leases it renews. */
    struct running_job **running;
    size_t running_count, running_size;
    /* The thread that writes the runs' logs and progress (joblog.h). */
    bool log_flusher_started, log_flusher_failed;
    pthread_t log_flusher;
    /* acp_read_log calls waiting for a job's log to grow (logread.c). */
    struct logread_waiter *log_waiters;
    /* References: one for the host's handle plus one per live worker
     * thread; the last one released frees the platform, so workers that
     * outlive acp_shutdown's deadline never touch freed memory. */
    int refs;
};

/* Create @p's locks and its condition variable (also used by tests).
 * Returns 0 or an ACP_E* code with the detail set. */
int platform_state_init_sync(acp_platform *p);

/* Copy @cfg into @q, owned by @p from now on, with the queue's publisher
 * lock. On failure nothing of @q is left to free. */
int platform_state_copy_queue(acp_platform *p, queue_rt *q, const acp_queue_config *cfg);

/* Drop one reference; frees the platform when it was the last. */
void platform_state_release(acp_platform *p);

/* Raise @flag (one of the platform's stop flags) and wake its waiters. */
void platform_state_raise(acp_platform *p, atomic_bool *flag);

/* Sleep up to @ms or until @flag (one of the platform's stop flags) is
 * raised. Returns the flag's value. */
bool platform_state_wait(acp_platform *p, unsigned ms, atomic_bool *flag);

/* The configured queue named @queue_id, or NULL. */
queue_rt *platform_state_find_queue(acp_platform *p, const char *queue_id);

#endif
