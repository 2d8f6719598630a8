/* Dispatching: publishing job messages on each queue's publisher
 * connection (shared by host threads and the maintenance thread, under the
 * queue's publish_lock, reconnected on demand), publishing again the
 * messages of jobs the maintenance thread found undispatched or requeued,
 * and keeping idle publishers alive.
 *
 * Confirms are pipelined: a thread holds publish_lock only to send its
 * message and while it reads confirms for everyone, never across a round
 * trip, so concurrent submits share the broker's latency instead of taking
 * turns. A submit still returns success only once the broker confirmed its
 * own message; a nack or a returned message fails exactly that publish; a
 * lost connection fails every publish waiting on it (the rows stay for
 * redispatch). */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "job_message.h"
#include "metrics.h"
#include "workspace.h"

/* Confirms of published messages must arrive within this time. */
#define PUBLISH_CONFIRM_MS 10000
/* The confirm reader rereads what the library may have buffered at least
 * this often: a publish that found its socket full reads ahead into
 * rabbitmq-c's queue, where polling the socket does not see it. */
#define CONFIRM_READ_SLICE_MS 50

/* One publish waiting for its confirm, on its thread's stack (or in
 * dispatch_republish's array), linked in its queue's waiters. Pipelining:
 * threads publish under publish_lock, one at a time, and then wait together;
 * whichever waiter finds no reader reads the confirms for all. */
typedef struct dispatch_waiter {
    struct dispatch_waiter *next;
    uint64_t gen; /* the connection it was published on (publisher_gen) */
    uint64_t seq; /* its number among that connection's publishes */
    int64_t deadline;
    bool done;
    int rc;
    char reason[ERROR_MESSAGE_MAX];
} dispatch_waiter;

typedef struct dispatch_confirm_ctx {
    queue_rt *q;
    uint64_t gen;
} dispatch_confirm_ctx;

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
        return rc;
    }
    if (q->publisher_gen++ > 0)
        metrics_backend_reconnect(metrics_backend_of(p->metrics, METRICS_AMQP));
    return 0;
}

static void dispatch_finish(dispatch_waiter *w, int rc, const char *reason)
{
    w->done = true;
    w->rc = rc;
    if (rc)
        snprintf(w->reason, sizeof w->reason, "%s", reason);
}

/* What the broker answered: every waiter it covers is done. */
static void dispatch_on_confirm(void *arg, const broker_confirm *c)
{
    const dispatch_confirm_ctx *ctx = arg;
    for (dispatch_waiter *w = ctx->q->waiters; w; w = w->next) {
        if (w->done || w->gen != ctx->gen ||
            !(w->seq == c->tag || (c->multiple && w->seq < c->tag)))
            continue;
        if (c->nack || (c->returned && w->seq == c->tag))
            dispatch_finish(w, ACP_EBROKER, c->reason);
        else
            dispatch_finish(w, 0, NULL);
    }
    pthread_cond_broadcast(&ctx->q->confirmed);
}

/* Connection @gen of @q is lost (@reason): the publishes waiting on it fail
 * (their messages may or may not be queued: the rows stay for redispatch),
 * and it is closed once no reader watches its socket. publish_lock held. */
static void dispatch_lost(queue_rt *q, uint64_t gen, const char *reason)
{
    for (dispatch_waiter *w = q->waiters; w; w = w->next)
        if (!w->done && w->gen == gen)
            dispatch_finish(w, ACP_EBROKER, reason);
    pthread_cond_broadcast(&q->confirmed);
    while (q->confirm_reader)
        pthread_cond_wait(&q->confirmed, &q->publish_lock);
    if (q->publisher && q->publisher_gen == gen) {
        broker_close(q->publisher);
        q->publisher = NULL;
    }
}

/* Publish @body and link @w to wait for its confirm. publish_lock held. */
static int dispatch_send(acp_platform *p, queue_rt *q, const buf *body, dispatch_waiter *w)
{
    int rc = publisher_ready(p, q);
    if (rc)
        return rc;
    rc = broker_publish_send(q->publisher, q->id, body->data, body->len, &w->seq);
    if (!rc) {
        w->gen = q->publisher_gen;
        w->deadline = clock_now_ms() + PUBLISH_CONFIRM_MS;
        w->done = false;
        w->rc = 0;
        w->next = q->waiters;
        q->waiters = w;
        return 0;
    }
    if (rc != ACP_EBROKER)
        return rc; /* refused before anything was sent: the connection is fine */
    char reason[ERROR_MESSAGE_MAX];
    snprintf(reason, sizeof reason, "%s", acp_last_error());
    dispatch_lost(q, q->publisher_gen, reason);
    return error_set(rc, "%s", reason);
}

static void dispatch_unlink(queue_rt *q, dispatch_waiter *w)
{
    for (dispatch_waiter **at = &q->waiters; *at; at = &(*at)->next)
        if (*at == w) {
            *at = w->next;
            return;
        }
}

/* Read the confirms that arrived, waiting a slice for more: as the reader,
 * the lock is let go while only the socket is watched. publish_lock held. */
static void dispatch_read(queue_rt *q, const dispatch_waiter *w)
{
    q->confirm_reader = true;
    broker_conn *conn = q->publisher;
    dispatch_confirm_ctx ctx = {q, q->publisher_gen};
    int rc = broker_read_confirms(conn, dispatch_on_confirm, &ctx);
    if (!rc && !w->done) {
        int64_t left = w->deadline - clock_now_ms();
        pthread_mutex_unlock(&q->publish_lock);
        broker_wait_readable(conn,
                             left < CONFIRM_READ_SLICE_MS ? (int)left : CONFIRM_READ_SLICE_MS);
        pthread_mutex_lock(&q->publish_lock);
        rc = broker_read_confirms(conn, dispatch_on_confirm, &ctx);
    }
    q->confirm_reader = false;
    pthread_cond_broadcast(&q->confirmed);
    if (rc) {
        char reason[ERROR_MESSAGE_MAX];
        snprintf(reason, sizeof reason, "%s", acp_last_error());
        dispatch_lost(q, ctx.gen, reason);
    }
}

/* Wait until @w's confirm (or the loss of its connection) is known, or its
 * deadline passes; unlinks @w. A timeout leaves the connection usable, as
 * a late confirm is simply dropped. publish_lock held. */
static int dispatch_wait(queue_rt *q, dispatch_waiter *w)
{
    while (!w->done) {
        if (clock_now_ms() >= w->deadline) {
            dispatch_finish(w, ACP_EBROKER, "");
            snprintf(w->reason, sizeof w->reason,
                     "rabbitmq %s:%d: publishing to '%s_jobs': no confirm from the broker within "
                     "%d ms",
                     q->cfg.host, q->cfg.port, q->id, PUBLISH_CONFIRM_MS);
            break;
        }
        if (!q->confirm_reader) {
            /* Not done, so its connection is still the publisher. */
            dispatch_read(q, w);
            continue;
        }
        struct timespec until;
        int64_t left = w->deadline - clock_now_ms();
        clock_deadline(&until, left > 0 ? (uint64_t)left : 0);
        pthread_cond_timedwait(&q->confirmed, &q->publish_lock, &until);
    }
    dispatch_unlink(q, w);
    if (w->rc)
        return error_set(w->rc, "%s", w->reason);
    return 0;
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
        /* Waiters read the confirms that next would drop. */
        if (q->publisher && !q->waiters) {
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
    /* A publisher idle for long may have been closed by the broker, a
     * message refused: one retry, on a fresh connection if it was lost. */
    for (int attempt = 0; attempt < 2; attempt++) {
        dispatch_waiter w = {0};
        uint64_t start = metrics_now_ns();
        pthread_mutex_lock(&q->publish_lock);
        rc = dispatch_send(p, q, &message, &w);
        if (!rc)
            rc = dispatch_wait(q, &w);
        pthread_mutex_unlock(&q->publish_lock);
        metrics_backend_done(metrics_backend_of(p->metrics, METRICS_AMQP), METRICS_AMQP_PUBLISH,
                             rc != 0, start);
        if (rc != ACP_EBROKER)
            break;
    }
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
    metrics_job_named(p->metrics, d->queue, METRICS_FAILED);
    if (d->layout == ACP_LAYOUT_LCP &&
        objects_touch(p->objects, &d->id, workspace_flag(ACP_STATUS_FAILED)) != 0)
        log_warn(&p->log, "job %s: setting %s: %s", hex, workspace_flag(ACP_STATUS_FAILED),
                 acp_last_error());
}

/* Sends the message of @d to @q (*@rc: 0 when it is waiting for its
 * confirm in @w). */
static void dispatch_republish_send(acp_platform *p, queue_rt *q, const store_dispatch *d,
                                    dispatch_waiter *w, int *rc)
{
    buf message = BUF_INIT;
    *rc = job_message_format(&message, &d->id, d->config, clock_wall_us());
    if (!*rc) {
        pthread_mutex_lock(&q->publish_lock);
        *rc = dispatch_send(p, q, &message, w);
        pthread_mutex_unlock(&q->publish_lock);
    }
    buf_free(&message);
}

void dispatch_republish(acp_platform *p, const store_dispatch_list *list, const char *why)
{
    if (list->count == 0)
        return;
    /* All messages first, then all confirms: one round trip for the batch. */
    dispatch_waiter *waiters = calloc(list->count, sizeof *waiters);
    int *rcs = calloc(list->count, sizeof *rcs);
    queue_rt **queues = calloc(list->count, sizeof *queues);
    if (!waiters || !rcs || !queues) {
        free(waiters);
        free(rcs);
        free(queues);
        log_warn(&p->log, "out of memory republishing %zu job message(s); retrying later",
                 list->count);
        return;
    }
    for (size_t i = 0; i < list->count; i++) {
        const store_dispatch *d = &list->items[i];
        queues[i] = platform_state_find_queue(p, d->queue);
        if (!queues[i]) {
            /* A queue this process does not serve: leave it to one that does. */
            store_clear_dispatched(p->store, &d->id);
            continue;
        }
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&d->id, hex);
        /* A job no message can carry fails before any bell of the batch
         * rings: a bell claims the best due job of its queue, which must
         * not be one of these (it would take another job's bell). */
        buf probe = BUF_INIT;
        int made = job_message_format(&probe, &d->id, d->config, clock_wall_us());
        buf_free(&probe);
        if (made == ACP_EINVAL || made == ACP_ETOOBIG) {
            fail_undispatchable(p, d, hex);
            queues[i] = NULL;
            continue;
        }
        log_info(&p->log, "job %s: %s; publishing its message", hex, why);
    }
    uint64_t start = metrics_now_ns();
    /* As dispatch_publish: a message the broker lost or refused gets one
     * more try. */
    for (int attempt = 0; attempt < 2; attempt++) {
        for (size_t i = 0; i < list->count; i++) {
            if (!queues[i] || (attempt > 0 && rcs[i] != ACP_EBROKER))
                continue;
            dispatch_republish_send(p, queues[i], &list->items[i], &waiters[i], &rcs[i]);
            if (rcs[i])
                snprintf(waiters[i].reason, sizeof waiters[i].reason, "%s", acp_last_error());
            else
                rcs[i] = 1; /* waiting */
        }
        for (size_t i = 0; i < list->count; i++) {
            if (!queues[i] || rcs[i] != 1)
                continue;
            pthread_mutex_lock(&queues[i]->publish_lock);
            rcs[i] = dispatch_wait(queues[i], &waiters[i]);
            pthread_mutex_unlock(&queues[i]->publish_lock);
            if (rcs[i])
                snprintf(waiters[i].reason, sizeof waiters[i].reason, "%s", acp_last_error());
        }
    }
    for (size_t i = 0; i < list->count; i++) {
        const store_dispatch *d = &list->items[i];
        if (!queues[i])
            continue;
        char hex[ACP_JOB_ID_STRLEN];
        acp_job_id_format(&d->id, hex);
        int rc = rcs[i];
        metrics_backend_done(metrics_backend_of(p->metrics, METRICS_AMQP), METRICS_AMQP_PUBLISH,
                             rc != 0, start);
        if (rc)
            error_set(rc, "%s", waiters[i].reason);
        else
            atomic_fetch_add(&p->published, 1);
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
    free(waiters);
    free(rcs);
    free(queues);
}
