/* Dispatching: publishing job messages on each queue's publisher
 * connection (shared by host threads and the maintenance thread, under the
 * queue's publish_lock, reconnected on demand), publishing again the
 * messages of jobs the maintenance thread found undispatched or requeued,
 * and keeping idle publishers alive. */
#include "dispatch.h"

#include <stdio.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "job_message.h"
#include "workspace.h"

/* Confirms of published messages must arrive within this time. */
#define PUBLISH_CONFIRM_MS 10000

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

int dispatch_declare(acp_platform *p, queue_rt *q)
{
    pthread_mutex_lock(&q->publish_lock);
    int rc = publisher_ready(p, q);
    pthread_mutex_unlock(&q->publish_lock);
    return rc;
}

void dispatch_keep_publishers(acp_platform *p)
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

int dispatch_publish(acp_platform *p, queue_rt *q, const acp_job_id *id, const char *config)
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

/* Publishing it again would fail the same way forever: the job fails,
 * with the reason, in the row and in S3 as a worker would fail it. */
static void fail_undispatchable(acp_platform *p, const store_dispatch *d, const char *hex)
{
    char reason[600];
    snprintf(reason, sizeof reason, "no job message can carry its config: %s", acp_last_error());
    if (store_fail_undispatchable(p->store, &d->id, reason) != 0) {
        log_warn(&p->log, "job %s: %s; failing it: %s", hex, reason, acp_last_error());
        return;
    }
    log_error(&p->log, "job %s: %s; the job is failed", hex, reason);
    atomic_fetch_add(&p->failed, 1);
    if (d->layout == ACP_LAYOUT_LCP &&
        objects_touch(p->objects, &d->id, workspace_flag(ACP_STATUS_FAILED)) != 0)
        log_warn(&p->log, "job %s: setting %s: %s", hex, workspace_flag(ACP_STATUS_FAILED),
                 acp_last_error());
}

void dispatch_republish(acp_platform *p, const store_dispatch_list *list, const char *why)
{
    for (size_t i = 0; i < list->count; i++) {
        const store_dispatch *d = &list->items[i];
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&d->id, hex);
        queue_rt *q = platform_state_find_queue(p, d->queue);
        if (!q) {
            /* A queue this process does not serve: leave it to one that does. */
            store_clear_dispatched(p->store, &d->id);
            continue;
        }
        log_info(&p->log, "job %s: %s; publishing its message", hex, why);
        int rc = dispatch_publish(p, q, &d->id, d->config);
        if (rc == ACP_EINVAL || rc == ACP_ETOOBIG) {
            /* Only making the message fails so: publishing fails with ACP_EBROKER. */
            fail_undispatchable(p, d, hex);
        } else if (rc != 0) {
            log_warn(&p->log,
                     "job %s: publishing failed (%s); will retry, waiting longer each time", hex,
                     acp_last_error());
            if (store_dispatch_failed(p->store, &d->id) != 0)
                log_warn(&p->log, "job %s: %s", hex, acp_last_error());
        } else if (d->failures > 0 && store_mark_dispatched(p->store, &d->id) != 0) {
            /* Not fatal: the next failure would merely wait longer. */
            log_warn(&p->log, "job %s: %s", hex, acp_last_error());
        }
    }
}
