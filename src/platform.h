/* The platform's internal state, shared by platform.c (public entry points),
 * worker.c (per-queue worker threads) and maintenance.c (leases, requeue,
 * redispatch). */
#ifndef ACP_PLATFORM_H
#define ACP_PLATFORM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "async_platform.h"
#include "broker.h"
#include "log.h"
#include "objects.h"
#include "store.h"

/* Milliseconds a worker waits for a message before checking for shutdown. */
#define WORKER_POLL_MS 250
/* Confirms of published messages must arrive within this time. */
#define PUBLISH_CONFIRM_MS 10000

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
    unsigned max_attempts;        /* config.max_attempts, 0 replaced by the default */
    /* Names of the scratch directories of this process's runs (pointing
     * into the paths the workers own), guarded by scratch_lock. */
    pthread_mutex_t scratch_lock;
    const char **scratch_busy;
    size_t scratch_busy_count, scratch_busy_cap;
    unsigned result_retry_seconds;

    queue_rt *queues;
    size_t queue_count;

    /* Counters for acp_get_stats. */
    atomic_uint_least64_t submitted, started, completed, failed, requeued, expired;
    atomic_uint_least64_t published, acked, dropped;

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
    acp_job_id *running;
    size_t running_count, running_size;
    /* References: one for the host's handle plus one per live worker
     * thread; the last one released frees the platform, so workers that
     * outlive acp_shutdown's deadline never touch freed memory. */
    int refs;
};

queue_rt *platform_find_queue(acp_platform *p, const char *queue_id);

/* Publish the job message for @id to its queue, reconnecting the queue's
 * publisher once if needed. The caller clears the row's dispatched time when
 * this fails, so that the maintenance thread retries. */
int platform_publish(acp_platform *p, queue_rt *q, const acp_job_id *id, const char *config);

/* Answer the broker's heartbeats on every idle publisher connection (the
 * maintenance thread calls this every tick): RabbitMQ closes a connection
 * that stays silent for two heartbeat intervals. */
void platform_keep_publishers(acp_platform *p);

/* Drop one reference; frees the platform when it was the last. */
void platform_release(acp_platform *p);

/* Create @p's lock and its condition variable (also used by tests). Returns
 * 0 or an ACP_E* code with the detail set. */
int platform_init_sync(acp_platform *p);

/* Sleep up to @ms or until @flag (one of the platform's stop flags) is
 * raised. Returns the flag's value. */
bool platform_wait(acp_platform *p, unsigned ms, atomic_bool *flag);

/* The running set (see acp_platform.running). Adding fails only for want
 * of memory (ACP_ENOMEM); removing an id that is not there does nothing. */
int platform_running_add(acp_platform *p, const acp_job_id *id);
void platform_running_remove(acp_platform *p, const acp_job_id *id);
/* A copy of the running set: *@ids is malloc'd (free it; NULL when empty). */
int platform_running_copy(acp_platform *p, acp_job_id **ids, size_t *count);

/* worker.c */
int workers_start(queue_rt *q);
/* Wait until every worker of @q exits or @deadline passes (CLOCK_MONOTONIC);
 * workers still running are detached. Returns the number left running. */
size_t workers_stop(queue_rt *q, const struct timespec *deadline);

/* maintenance.c */
void *maintenance_main(void *platform);
/* One pass of the lease/requeue/redispatch work (also used by tests): with
 * @renew, first the leases of the running set. Returns false when a
 * statement failed (the next pass should renew first); requeueing is skipped
 * when renewing failed. */
bool maintenance_tick(acp_platform *p, bool renew);
/* Remove the scratch directories of runs that are over (scratch_sweep),
 * logging what it did; run by acp_init and every few lease periods. */
void maintenance_sweep(acp_platform *p);

/* retention.c: expiration and deletion */
/* When this service's row of @id is expired (@row_status) while the shared
 * workspace shows another service's new run, drop the stale row (logged)
 * and return true: S3 is right about a job that was taken over. */
bool platform_taken_over(acp_platform *p, const acp_job_id *id, acp_job_status row_status);
/* One pruner pass: expire owned complete jobs not accessed for
 * expiration_days. An error on one job is logged and the pass goes on;
 * returns ACP_ESTORAGE when any job failed. */
int prune_run(acp_platform *p, size_t *expired);
void *pruner_main(void *platform);

/* job.c: the private part of acp_job_context */
struct acp_job_outcome {
    char **outputs;
    size_t output_count;
    char *message;
};

void job_outcome_clear(acp_job_outcome *outcome);
/* Reserved workspace names: ".workspace", the status flags, "input-config". */
bool job_name_is_reserved(const char *name);
/* A file name the platform accepts for inputs and outputs. Sets the detail
 * (prefixed with @what) and returns ACP_EINVAL when it is not. */
int job_check_name(const char *what, const char *name);
const char *job_flag_name(acp_job_status status); /* ".queued", ... */
/* An owned job from its row; the row's message moves to @job. */
void job_from_row(acp_job *job, store_job *row);
/* Status and times of a workspace from its flags and their times, for a job
 * this service does not own. Returns false when the listing has no
 * ".workspace" marker (no such workspace). */
bool job_from_flags(const object_list *list, acp_job *job);

/* claim.c: who may create, or take over an expired, shared workspace */
bool claim_is_marker(const char *name);
/* Whether the listing shows an expired workspace: ".workspace" and
 * ".expired", whatever other flags say. */
bool claim_expired(const object_list *list);
/* Win the right to (re)create the job's workspace: it must not exist, or be
 * expired. On 0 the claim marker's name is in @marker (delete it once the
 * workspace's new state is written) and *@created tells whether there was no
 * workspace at all. ACP_ECONFLICT when another service owns the job or wins
 * the claim. */
int claim_workspace(acp_platform *p, const acp_job_id *id, bool *created, char *marker,
                    size_t marker_size);

/* scratch.c: the local scratch directory of a job */
/* Create "<workspace_root>/<hex>.<attempt>" and open it. An existing one
 * belongs to a run that may be alive: it is left alone and ACP_EIO says so.
 * The directory counts as this process's until scratch_finish. */
int scratch_create(acp_platform *p, const char *hex, unsigned attempt, char **path, int *dir_fd);
/* Remove a directory of scratch_create (@path, still owned by the caller). */
int scratch_finish(acp_platform *p, const char *path);
/* Remove the "<hex>.<attempt>" directories under the workspace root whose
 * run is over (store_runs_alive) and that are not this process's; other
 * names, symbolic links and files are left alone. @removed (may be NULL)
 * gets the count. An error stops the pass; the next one goes on. */
int scratch_sweep(acp_platform *p, size_t *removed);
/* Set p->workspace_root to @configured (NULL: the default, under
 * $XDG_RUNTIME_DIR or /var/tmp, private to this user), create what is
 * missing of it (the root itself with mode 0700), check that nobody else
 * can change it or a directory above it, and open it as p->workspace_fd.
 * ACP_EINVAL names what is unsafe: a symbolic link, another owner, write
 * access for group or others. */
int scratch_open_root(acp_platform *p, const char *configured);
/* Write all of @data to @fd (retrying short writes); ACP_EIO on failure. */
int scratch_write_all(int fd, const void *data, size_t len);
/* Remove the tree @name directly under the directory @root_fd, without
 * following symbolic links, however deep it is (subtrees past a depth bound
 * are moved up to @root_fd first); @shown names it in errors. */
int scratch_remove_at(int root_fd, const char *name, const char *shown);

#endif
