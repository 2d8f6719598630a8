/* The platform's life cycle: acp_init starts the modules and threads that
 * run it, acp_shutdown stops them. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "broker_amqp.h"
#include "clock.h"
#include "config.h"
#include "dispatch.h"
#include "error.h"
#include "joblog.h"
#include "listener.h"
#include "maintenance.h"
#include "metrics.h"
#include "platform.h"
#include "platform_state.h"
#include "retention.h"
#include "root_owner.h"
#include "scratch.h"
#include "worker.h"

unsigned acp_version(void)
{
    return ACP_VERSION_NUMBER;
}

/* ---- life cycle ------------------------------------------------------- */

static void backends_close(const platform_backends *b)
{
    if (b) {
        store_close(b->store);
        objects_close(b->objects);
    }
}

static int platform_metrics_create(acp_platform *p)
{
    const char **names = malloc((p->queue_count + 1) * sizeof *names);
    if (!names)
        return error_set(ACP_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->queue_count; i++)
        names[i] = p->queues[i].id;
    p->metrics = metrics_create(names, p->queue_count);
    free(names);
    return p->metrics ? 0 : error_set(ACP_ENOMEM, "out of memory creating the metrics");
}

int platform_init_with(acp_platform **out, const acp_config *config,
                       const platform_backends *backends)
{
    int rc;
    *out = NULL;
    acp_platform *p = calloc(1, sizeof *p);
    if (!p) {
        backends_close(backends);
        return error_set(ACP_ENOMEM, "out of memory");
    }
    p->workspace_fd = -1;
    p->broker = backends && backends->broker ? backends->broker : &broker_amqp_driver;
    p->cancel_grace_ms = backends ? backends->cancel_grace_ms : 0;
    if ((rc = platform_state_init_sync(p))) {
        free(p);
        backends_close(backends);
        return rc;
    }
    /* From here on the platform owns them: releasing it closes them. */
    if (backends) {
        p->store = backends->store;
        p->objects = backends->objects;
    }
    p->refs = 1;
    p->log = (logger){config->log, config->log_userdata, config->log_level};
    p->lease_seconds = config->lease_seconds;
    p->redispatch_seconds = config->redispatch_seconds;
    p->shutdown_timeout = config->shutdown_timeout;
    p->expiration_days = config->expiration_days;
    p->prune_interval = config->prune_interval;
    p->max_attempts = config->max_attempts ? config->max_attempts : CONFIG_DEFAULT_MAX_ATTEMPTS;
    p->cancel_grace_seconds =
        config->cancel_grace_seconds ? config->cancel_grace_seconds : CONFIG_DEFAULT_CANCEL_GRACE;
    p->result_retry_seconds =
        config->result_retry_seconds ? config->result_retry_seconds : CONFIG_RESULT_RETRY_DEFAULT;
    p->layout = config->layout == ACP_LAYOUT_LCP ? ACP_LAYOUT_LCP : ACP_LAYOUT_NATIVE;
    p->log_cap_bytes = config->log_cap_bytes ? config->log_cap_bytes : ACP_LOG_CAP_DEFAULT;
    acp_job_id instance;
    acp_job_id_generate(&instance);
    acp_job_id_format(&instance, p->instance_id);
    p->queues = calloc(config->queue_count, sizeof *p->queues);
    if (!p->queues) {
        rc = error_set(ACP_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < config->queue_count; i++) {
        if ((rc = platform_state_copy_queue(p, &p->queues[i], &config->queues[i])))
            goto fail;
        p->queue_count++;
    }
    if ((rc = platform_metrics_create(p)))
        goto fail;

    if ((rc = scratch_open_root(p, config->workspace_root)) ||
        (!p->store && (rc = store_open(&p->store, &config->db, &p->log))) ||
        (!p->objects &&
         (rc = objects_open(&p->objects, &config->s3, &config->s3_client, &p->log))) ||
        (rc = root_owner_check(p->store, p->objects, p->layout, &p->log)))
        goto fail;
    store_set_metrics(p->store, metrics_backend_of(p->metrics, METRICS_SQL));
    objects_set_metrics(p->objects, metrics_backend_of(p->metrics, METRICS_S3));
    /* A process killed mid-job left its scratch directories behind; the
     * ones whose run is over go before this process starts its own. */
    maintenance_sweep(p);
    /* Declaring each queue through its publisher proves the broker and the
     * credentials before any thread starts. */
    for (size_t i = 0; i < p->queue_count; i++)
        if ((rc = dispatch_declare(p, &p->queues[i])))
            goto fail;
    /* The factory belongs to the platform only once init cannot fail for a
     * configuration reason any more. */
    p->factory = *config->executor_factory;
    if (backends && backends->no_background_threads)
        goto workers;

    if ((rc = pthread_create(&p->maintenance, NULL, maintenance_main, p)) != 0) {
        rc = error_set(ACP_ENOMEM, "starting the maintenance thread: %s", error_strerror(rc));
        p->factory.free = NULL;
        goto fail;
    }
    p->maintenance_started = true;
    /* Its own thread: a long pass must not hold up lease renewals. */
    if ((rc = pthread_create(&p->pruner, NULL, retention_pruner_main, p)) != 0) {
        rc = error_set(ACP_ENOMEM, "starting the pruner thread: %s", error_strerror(rc));
        p->factory.free = NULL;
        acp_shutdown(p);
        return rc;
    }
    p->pruner_started = true;
    if ((rc = listener_start(p, &p->listener)) != 0) {
        p->factory.free = NULL;
        acp_shutdown(p);
        return rc;
    }
workers:
    for (size_t i = 0; i < p->queue_count; i++)
        if ((rc = worker_start_all(&p->queues[i]))) {
            char reason[512];
            snprintf(reason, sizeof reason, "%s", acp_last_error());
            p->factory.free = NULL; /* a failed init leaves the factory with the host */
            acp_shutdown(p);
            return error_set(rc, "%s", reason);
        }

    log_info(&p->log, "platform %s started: %zu queue(s), %s layout, scratch root %s",
             p->instance_id, p->queue_count, p->layout == ACP_LAYOUT_LCP ? "lcp" : "native",
             p->workspace_root);
    *out = p;
    return 0;

fail:
    platform_state_release(p);
    return rc;
}

int acp_init(acp_platform **out, const acp_config *config)
{
    if (!out)
        return error_set(ACP_EINVAL, "acp_init: out is NULL");
    *out = NULL;
    /* The caller's structures may be of an earlier version. */
    config_copy copy;
    int rc = config_import(config, &copy);
    if (!rc && !(rc = config_check(&copy.config)))
        rc = platform_init_with(out, &copy.config, NULL);
    config_copy_free(&copy);
    return rc;
}

/* A thread of the platform's own would wait for itself. */
static bool platform_thread_is_own(acp_platform *p)
{
    pthread_t self = pthread_self();
    /* The log flusher starts when a job first logs, on a worker. */
    pthread_mutex_lock(&p->lock);
    bool flusher = p->log_flusher_started && pthread_equal(self, p->log_flusher);
    pthread_mutex_unlock(&p->lock);
    return flusher || worker_is_current(p) ||
           (p->maintenance_started && pthread_equal(self, p->maintenance)) ||
           (p->pruner_started && pthread_equal(self, p->pruner)) ||
           listener_is_current(p->listener);
}

void acp_shutdown(acp_platform *p)
{
    if (!p)
        return;
    if (platform_thread_is_own(p)) {
        log_error(&p->log, "acp_shutdown called on a thread of the platform's own (from an "
                           "executor, the factory or the log callback): ignored; call it from a "
                           "thread of the host's");
        return;
    }
    platform_state_raise(p, &p->stopping);
    struct timespec deadline;
    clock_deadline(&deadline, (uint64_t)p->shutdown_timeout * 1000);
    size_t left = 0;
    for (size_t i = 0; i < p->queue_count; i++)
        left += worker_stop_all(&p->queues[i], &deadline);
    if (left)
        log_warn(&p->log,
                 "shutdown: %zu job(s) still running after %u s are left to finish in the "
                 "background; their leases will expire and another process will requeue them",
                 left, p->shutdown_timeout);
    /* Leases were renewed while the workers drained; now stop. */
    platform_state_raise(p, &p->maintenance_stopping);
    if (p->maintenance_started)
        pthread_join(p->maintenance, NULL);
    if (p->pruner_started)
        pthread_join(p->pruner, NULL);
    joblog_flusher_stop(p);
    listener_stop(p->listener);
    p->listener = NULL;
    platform_state_release(p);
}
