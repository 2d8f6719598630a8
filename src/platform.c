/* Public entry points and the platform's life cycle. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker_amqp.h"
#include "config.h"
#include "error.h"
#include "job_message.h"
#include "json.h"
#include "platform.h"
#include "clock.h"

unsigned acp_version(void)
{
    return ACP_VERSION_NUMBER;
}

/* ---- life cycle ------------------------------------------------------- */

static void queue_free(queue_rt *q)
{
    broker_close(q->publisher);
    pthread_mutex_destroy(&q->publish_lock);
    free(q->id);
    free(q->host);
    free(q->user);
    free(q->password);
    free(q->workers);
}

static void platform_free(acp_platform *p)
{
    for (size_t i = 0; i < p->queue_count; i++)
        queue_free(&p->queues[i]);
    free(p->queues);
    store_close(p->store);
    objects_close(p->objects);
    if (p->factory.free)
        p->factory.free(p->factory.userdata);
    free(p->workspace_root);
    if (p->workspace_fd >= 0)
        close(p->workspace_fd);
    free(p->scratch_busy);
    pthread_mutex_destroy(&p->scratch_lock);
    free(p->running);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->changed);
    free(p);
}

void platform_release(acp_platform *p)
{
    pthread_mutex_lock(&p->lock);
    int left = --p->refs;
    pthread_mutex_unlock(&p->lock);
    if (left == 0)
        platform_free(p);
}

int platform_init_sync(acp_platform *p)
{
    int err = pthread_mutex_init(&p->lock, NULL);
    if (err)
        return error_set(ACP_ENOMEM, "creating the platform's mutex: %s", error_strerror(err));
    if ((err = clock_cond_init(&p->changed))) {
        pthread_mutex_destroy(&p->lock);
        return error_set(ACP_ENOMEM, "creating the platform's condition variable: %s",
                         error_strerror(err));
    }
    if ((err = pthread_mutex_init(&p->scratch_lock, NULL))) {
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
        return error_set(ACP_ENOMEM, "creating the scratch directories' mutex: %s",
                         error_strerror(err));
    }
    return 0;
}

int platform_running_add(acp_platform *p, const acp_job_id *id)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->running_count == p->running_size) {
        size_t size = p->running_size ? p->running_size * 2 : 8;
        acp_job_id *grown = realloc(p->running, size * sizeof *grown);
        if (grown) {
            p->running = grown;
            p->running_size = size;
        } else {
            rc = error_set(ACP_ENOMEM, "out of memory");
        }
    }
    if (!rc)
        p->running[p->running_count++] = *id;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void platform_running_remove(acp_platform *p, const acp_job_id *id)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count; i++)
        if (memcmp(p->running[i].bytes, id->bytes, sizeof id->bytes) == 0) {
            p->running[i] = p->running[--p->running_count];
            break;
        }
    pthread_mutex_unlock(&p->lock);
}

int platform_running_copy(acp_platform *p, acp_job_id **ids, size_t *count)
{
    int rc = 0;
    *ids = NULL;
    pthread_mutex_lock(&p->lock);
    *count = p->running_count;
    if (*count) {
        *ids = malloc(*count * sizeof **ids);
        if (*ids)
            memcpy(*ids, p->running, *count * sizeof **ids);
        else
            rc = error_set(ACP_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&p->lock);
    if (rc)
        *count = 0;
    return rc;
}

bool platform_wait(acp_platform *p, unsigned ms, atomic_bool *flag)
{
    struct timespec until;
    clock_deadline(&until, ms);
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(flag))
        if (pthread_cond_timedwait(&p->changed, &p->lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&p->lock);
    return atomic_load(flag);
}

static void raise_flag(acp_platform *p, atomic_bool *flag)
{
    pthread_mutex_lock(&p->lock);
    atomic_store(flag, true);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

queue_rt *platform_find_queue(acp_platform *p, const char *queue_id)
{
    for (size_t i = 0; i < p->queue_count; i++)
        if (strcmp(p->queues[i].id, queue_id) == 0)
            return &p->queues[i];
    return NULL;
}

/* Connect the queue's publisher if needed. Called with publish_lock held. */
static int publisher_ready(acp_platform *p, queue_rt *q)
{
    if (q->publisher)
        return 0;
    int rc = broker_connect(&q->publisher, p->broker, &q->cfg, &p->log);
    if (!rc)
        rc = broker_declare(q->publisher, q->id, q->cfg.message_ack_timeout);
    if (rc) {
        broker_close(q->publisher);
        q->publisher = NULL;
    }
    return rc;
}

void platform_keep_publishers(acp_platform *p)
{
    for (size_t i = 0; i < p->queue_count; i++) {
        queue_rt *q = &p->queues[i];
        /* A publish under way talks to the broker anyway. */
        if (pthread_mutex_trylock(&q->publish_lock) != 0)
            continue;
        if (q->publisher) {
            broker_delivery d;
            int rc = broker_next(q->publisher, 0, &d);
            if (rc == 0)
                broker_delivery_free(&d); /* a publisher consumes nothing */
            if (rc < 0) {
                log_debug(&p->log,
                          "%s: publisher connection lost (%s); reconnecting on the next "
                          "publish",
                          q->id, acp_last_error());
                broker_close(q->publisher);
                q->publisher = NULL;
            }
        }
        pthread_mutex_unlock(&q->publish_lock);
    }
}

int platform_publish(acp_platform *p, queue_rt *q, const acp_job_id *id, const char *config)
{
    buf message = BUF_INIT;
    int rc = job_message_format(&message, id, config, clock_wall_us());
    if (rc) {
        buf_free(&message);
        return rc;
    }
    pthread_mutex_lock(&q->publish_lock);
    /* A publisher idle for long may have been closed by the broker: one retry
     * on a fresh connection. */
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = publisher_ready(p, q);
        if (!rc)
            rc = broker_publish(q->publisher, q->id, message.data, message.len, PUBLISH_CONFIRM_MS);
        if (!rc)
            break;
        broker_close(q->publisher);
        q->publisher = NULL;
    }
    pthread_mutex_unlock(&q->publish_lock);
    buf_free(&message);
    if (!rc)
        atomic_fetch_add(&p->published, 1);
    return rc; /* the row already says dispatched: set when it was queued */
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int copy_queue(acp_platform *p, queue_rt *q, const acp_queue_config *cfg)
{
    /* On failure nothing of @q is left to free: acp_init counts only the
     * queues copied in full. */
    int err = pthread_mutex_init(&q->publish_lock, NULL);
    if (err)
        return error_set(ACP_ENOMEM, "queue '%s': creating the publisher's mutex: %s", cfg->id,
                         error_strerror(err));
    q->cfg = *cfg;
    q->platform = p;
    q->id = dup_or_null(cfg->id);
    q->host = dup_or_null(cfg->host);
    q->user = dup_or_null(cfg->user);
    q->password = dup_or_null(cfg->password);
    if (!q->id || !q->host || !q->user || !q->password) {
        queue_free(q);
        return error_set(ACP_ENOMEM, "out of memory copying the queue configuration");
    }
    q->cfg.id = q->id;
    q->cfg.host = q->host;
    q->cfg.user = q->user;
    q->cfg.password = q->password;
    return 0;
}

int acp_init(acp_platform **out, const acp_config *config)
{
    if (!out)
        return error_set(ACP_EINVAL, "acp_init: out is NULL");
    *out = NULL;
    int rc = acp_config_validate(config);
    if (rc)
        return rc;

    acp_platform *p = calloc(1, sizeof *p);
    if (!p)
        return error_set(ACP_ENOMEM, "out of memory");
    p->workspace_fd = -1;
    p->broker = &broker_amqp_driver;
    if ((rc = platform_init_sync(p))) {
        free(p);
        return rc;
    }
    p->refs = 1;
    p->log = (logger){config->log, config->log_userdata, config->log_level};
    p->lease_seconds = config->lease_seconds;
    p->redispatch_seconds = config->redispatch_seconds;
    p->shutdown_timeout = config->shutdown_timeout;
    p->expiration_days = config->expiration_days;
    p->prune_interval = config->prune_interval;
    p->max_attempts = config->max_attempts ? config->max_attempts : CONFIG_DEFAULT_MAX_ATTEMPTS;
    p->result_retry_seconds =
        config->result_retry_seconds ? config->result_retry_seconds : CONFIG_RESULT_RETRY_DEFAULT;
    acp_job_id instance;
    acp_job_id_generate(&instance);
    acp_job_id_format(&instance, p->instance_id);
    p->queues = calloc(config->queue_count, sizeof *p->queues);
    if (!p->queues) {
        rc = error_set(ACP_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < config->queue_count; i++) {
        if ((rc = copy_queue(p, &p->queues[i], &config->queues[i])))
            goto fail;
        p->queue_count++;
    }

    if ((rc = scratch_open_root(p, config->workspace_root)) ||
        (rc = store_open(&p->store, &config->db, &p->log)) ||
        (rc = objects_open(&p->objects, &config->s3, &p->log)))
        goto fail;
    /* A process killed mid-job left its scratch directories behind; the
     * ones whose run is over go before this process starts its own. */
    maintenance_sweep(p);
    /* Declaring each queue through its publisher proves the broker and the
     * credentials before any thread starts. */
    for (size_t i = 0; i < p->queue_count; i++) {
        queue_rt *q = &p->queues[i];
        pthread_mutex_lock(&q->publish_lock);
        rc = publisher_ready(p, q);
        pthread_mutex_unlock(&q->publish_lock);
        if (rc)
            goto fail;
    }
    /* The factory belongs to the platform only once init cannot fail for a
     * configuration reason any more. */
    p->factory = *config->executor_factory;

    if ((rc = pthread_create(&p->maintenance, NULL, maintenance_main, p)) != 0) {
        rc = error_set(ACP_ENOMEM, "starting the maintenance thread: %s", error_strerror(rc));
        p->factory.free = NULL;
        goto fail;
    }
    p->maintenance_started = true;
    /* Its own thread: a long pass must not hold up lease renewals. */
    if ((rc = pthread_create(&p->pruner, NULL, pruner_main, p)) != 0) {
        rc = error_set(ACP_ENOMEM, "starting the pruner thread: %s", error_strerror(rc));
        p->factory.free = NULL;
        acp_shutdown(p);
        return rc;
    }
    p->pruner_started = true;
    for (size_t i = 0; i < p->queue_count; i++)
        if ((rc = workers_start(&p->queues[i]))) {
            char reason[512];
            snprintf(reason, sizeof reason, "%s", acp_last_error());
            p->factory.free = NULL; /* a failed init leaves the factory with the host */
            acp_shutdown(p);
            return error_set(rc, "%s", reason);
        }
    log_info(&p->log, "platform %s started: %zu queue(s), scratch root %s", p->instance_id,
             p->queue_count, p->workspace_root);
    *out = p;
    return 0;

fail:
    platform_free(p);
    return rc;
}

void acp_shutdown(acp_platform *p)
{
    if (!p)
        return;
    raise_flag(p, &p->stopping);
    struct timespec deadline;
    clock_deadline(&deadline, (uint64_t)p->shutdown_timeout * 1000);
    size_t left = 0;
    for (size_t i = 0; i < p->queue_count; i++)
        left += workers_stop(&p->queues[i], &deadline);
    if (left)
        log_warn(&p->log,
                 "shutdown: %zu job(s) still running after %u s are left to finish in the "
                 "background; their leases will expire and another process will requeue them",
                 left, p->shutdown_timeout);
    /* Leases were renewed while the workers drained; now stop. */
    raise_flag(p, &p->maintenance_stopping);
    if (p->maintenance_started)
        pthread_join(p->maintenance, NULL);
    if (p->pruner_started)
        pthread_join(p->pruner, NULL);
    platform_release(p);
}

int acp_get_stats(acp_platform *p, acp_stats *stats)
{
    if (!p || !stats)
        return error_set(ACP_EINVAL, "acp_get_stats: NULL argument");
    if (stats->version != ACP_STATS_VERSION)
        return error_set(ACP_EVERSION, "stats.version: %u is not supported (expected %d)",
                         stats->version, ACP_STATS_VERSION);
    uint64_t s3[OBJECTS_KINDS];
    objects_request_counts(p->objects, s3);
    unsigned running = 0;
    for (size_t i = 0; i < p->queue_count; i++)
        running += (unsigned)atomic_load(&p->queues[i].running);
    *stats = (acp_stats){
        .version = ACP_STATS_VERSION,
        .jobs_submitted = atomic_load(&p->submitted),
        .jobs_started = atomic_load(&p->started),
        .jobs_completed = atomic_load(&p->completed),
        .jobs_failed = atomic_load(&p->failed),
        .jobs_requeued = atomic_load(&p->requeued),
        .jobs_expired = atomic_load(&p->expired),
        .messages_published = atomic_load(&p->published),
        .messages_acked = atomic_load(&p->acked),
        .messages_dropped = atomic_load(&p->dropped),
        .sql_statements = store_statement_count(p->store),
        .s3_puts = s3[OBJECTS_PUT],
        .s3_gets = s3[OBJECTS_GET],
        .s3_heads = s3[OBJECTS_HEAD],
        .s3_lists = s3[OBJECTS_LIST],
        .s3_deletes = s3[OBJECTS_DELETE],
        .jobs_running = running,
    };
    return 0;
}
