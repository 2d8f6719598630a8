#include "platform_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "metrics.h"

static void queue_free(queue_rt *q)
{
    broker_close(q->publisher);
    pthread_cond_destroy(&q->confirmed);
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
    metrics_free(p->metrics); /* after the backends, which count in it */
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

void platform_state_release(acp_platform *p)
{
    pthread_mutex_lock(&p->lock);
    int left = --p->refs;
    pthread_mutex_unlock(&p->lock);
    if (left == 0)
        platform_free(p);
}

int platform_state_init_sync(acp_platform *p)
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

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int platform_state_copy_queue(acp_platform *p, queue_rt *q, const acp_queue_config *cfg)
{
    /* acp_init counts only the queues copied in full. */
    int err = pthread_mutex_init(&q->publish_lock, NULL);
    if (err)
        return error_set(ACP_ENOMEM, "queue '%s': creating the publisher's mutex: %s", cfg->id,
                         error_strerror(err));
    err = clock_cond_init(&q->confirmed);
    if (err) {
        pthread_mutex_destroy(&q->publish_lock);
        return error_set(ACP_ENOMEM, "queue '%s': creating the publisher's condition: %s", cfg->id,
                         error_strerror(err));
    }
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

bool platform_state_wait(acp_platform *p, unsigned ms, atomic_bool *flag)
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

void platform_state_raise(acp_platform *p, atomic_bool *flag)
{
    pthread_mutex_lock(&p->lock);
    atomic_store(flag, true);
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

queue_rt *platform_state_find_queue(acp_platform *p, const char *queue_id)
{
    for (size_t i = 0; i < p->queue_count; i++)
        if (strcmp(p->queues[i].id, queue_id) == 0)
            return &p->queues[i];
    return NULL;
}
