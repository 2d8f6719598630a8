/* The in-memory broker (fake_broker.h). One lock guards the whole broker,
 * its queues and the server's side of every connection; one condition
 * variable tells waiting consumers that something changed. */
#include "fake_broker.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "job_message.h"

typedef struct fake_message {
    char *body;
    size_t len;
    bool redelivered;
    struct fake_message *next;
} fake_message;

typedef struct fake_queue {
    char id[ACP_QUEUE_ID_MAX + 1];
    fake_message *head, *tail; /* ready, in delivery order */
    size_t ready;
    size_t published;
    struct fake_queue *next;
} fake_queue;

typedef struct fake_conn {
    broker_conn base; /* first: what the broker seam sees */
    fake_broker *fb;
    char where[300]; /* "fake rabbitmq host:port" */
    fake_queue *consuming;
    /* Prefetch 1: the one delivery pushed to this consumer and not acked. */
    fake_message *held;
    fake_queue *held_queue;
    uint64_t held_tag;
    bool held_read; /* returned by broker_next */
    uint64_t next_tag;
    uint64_t last_push; /* for round robin between consumers */
    bool kept;          /* a keeper holds it: nothing is pushed */
    /* The server ended the channel or connection: the next call says so. */
    bool lost;
    char lost_reason[200];
    /* An ACP_EBROKER was returned: unusable. */
    bool broken;
    /* Pipelined publishing: the last number given, and the confirms not
     * read yet (nack / returned per entry). */
    uint64_t publish_seq;
    broker_confirm *confirms;
    size_t confirm_count, confirm_cap;
    struct fake_conn *next;
} fake_conn;

/* A keeper with a grace (broker_keeper_start's cancel_after_ms) has a
 * thread that cancels the consumer when the grace ends, as the AMQP
 * driver's keeper does, so that a message pushed meanwhile goes to another
 * consumer while the owner is still away. */
typedef struct fake_keeper {
    broker_keeper base;
    bool was_consuming;
    bool has_thread;
    bool stop; /* under the broker's lock */
    struct timespec cancel_at;
    pthread_t thread;
} fake_keeper;

struct fake_broker {
    broker_driver driver; /* first: fake_broker_driver() hands it out */
    fault_plan *plan;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    fake_queue *queues;
    fake_conn *conns;
    uint64_t pushes;
    /* Consumers started and cancelled, however (fake_broker_consumes). */
    size_t consumes, cancels;
    bool hold_confirms;
    int confirm_style;
};

static void *fake_broker_alloc(size_t size)
{
    void *p = calloc(1, size);
    if (!p) {
        fprintf(stderr, "fake broker: out of memory\n");
        abort();
    }
    return p;
}

static fake_conn *fake_broker_conn_of(broker_conn *base)
{
    return (fake_conn *)base;
}

static fake_queue *fake_broker_find(fake_broker *fb, const char *queue_id)
{
    for (fake_queue *q = fb->queues; q; q = q->next)
        if (strcmp(q->id, queue_id) == 0)
            return q;
    return NULL;
}

static void fake_broker_message_free(fake_message *m)
{
    if (m)
        free(m->body);
    free(m);
}

/* Back to the front of its queue, as RabbitMQ requeues. */
static void fake_broker_requeue(fake_queue *q, fake_message *m)
{
    m->redelivered = true;
    m->next = q->head;
    q->head = m;
    if (!q->tail)
        q->tail = m;
    q->ready++;
}

static fake_message *fake_broker_take(fake_queue *q)
{
    fake_message *m = q->head;
    q->head = m->next;
    if (!q->head)
        q->tail = NULL;
    m->next = NULL;
    q->ready--;
    return m;
}

/* Push waiting messages to idle consumers, least recently served first.
 * Called with the lock held. */
static void fake_broker_dispatch(fake_broker *fb)
{
    for (fake_queue *q = fb->queues; q; q = q->next)
        while (q->head) {
            fake_conn *idle = NULL;
            for (fake_conn *c = fb->conns; c; c = c->next)
                if (c->consuming == q && !c->held && !c->kept && !c->broken && !c->lost &&
                    (!idle || c->last_push < idle->last_push))
                    idle = c;
            if (!idle)
                break;
            idle->held = fake_broker_take(q);
            idle->held_queue = q;
            idle->held_tag = ++idle->next_tag;
            idle->held_read = false;
            idle->last_push = ++fb->pushes;
        }
    pthread_cond_broadcast(&fb->changed);
}

/* The server's side of a connection that ends (closed, lost, channel
 * closed): its delivery goes back, its consumer goes. Lock held. */
static void fake_broker_release(fake_conn *c)
{
    if (c->held)
        fake_broker_requeue(c->held_queue, c->held);
    c->held = NULL;
    c->held_queue = NULL;
    c->consuming = NULL;
    fake_broker_dispatch(c->fb);
}

/* "<where>: <what>: <reason>" as ACP_EBROKER; the connection is unusable
 * from now on. Lock held. */
static int fake_broker_fail(fake_conn *c, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fake_broker_fail(fake_conn *c, const char *what, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    c->broken = true;
    fake_broker_release(c);
    return error_set(ACP_EBROKER, "%s: %s: %s", c->where, what, text);
}

/* The error of a failing fault rule for @what. Lock NOT held. */
static int fake_broker_injected(fake_conn *c, const fault_rule *rule, const char *what,
                                const char *op)
{
    if (rule->error != ACP_EBROKER)
        return error_set(rule->error, "%s: %s: injected fault (%s)", c->where, what, op);
    pthread_mutex_lock(&c->fb->lock);
    int rc = fake_broker_fail(c, what, "connection lost (injected fault, %s)", op);
    pthread_mutex_unlock(&c->fb->lock);
    return rc;
}

/* 0 when @c may be used; otherwise the error, as the AMQP driver reports a
 * connection that failed earlier or that the server ended. Lock held. */
static int fake_broker_usable(fake_conn *c, const char *what)
{
    if (c->broken)
        return error_set(ACP_EBROKER, "%s: %s: the connection failed earlier; reconnect", c->where,
                         what);
    if (c->lost)
        return fake_broker_fail(c, what, "%s", c->lost_reason);
    return 0;
}

static int fake_broker_queue_name(fake_conn *c, const char *queue_id, const char *what)
{
    if (!queue_id || !config_name_is_safe(queue_id, ACP_QUEUE_ID_MAX))
        return error_set(ACP_EINVAL, "%s: %s: invalid queue id '%s'", c->where, what,
                         queue_id ? queue_id : "(null)");
    return 0;
}

/* ---- the connection's operations ------------------------------------------ */

static void fake_broker_close(broker_conn *base)
{
    fake_conn *c = fake_broker_conn_of(base);
    fake_broker *fb = c->fb;
    pthread_mutex_lock(&fb->lock);
    for (fake_conn **p = &fb->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    fake_broker_release(c);
    pthread_mutex_unlock(&fb->lock);
    free(c->confirms);
    free(c);
}

static int fake_broker_declare(broker_conn *base, const char *queue_id,
                               unsigned ack_timeout_seconds)
{
    fake_conn *c = fake_broker_conn_of(base);
    const char *what = "declaring a queue";
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.declare");
    if (rule)
        return fake_broker_injected(c, rule, what, "amqp.declare");
    pthread_mutex_lock(&c->fb->lock);
    int rc = fake_broker_usable(c, what);
    if (!rc)
        rc = fake_broker_queue_name(c, queue_id, what);
    if (!rc && ack_timeout_seconds == 0)
        rc = error_set(ACP_EINVAL, "%s: declaring queue '%s_jobs': ack timeout must be positive",
                       c->where, queue_id);
    if (!rc && !fake_broker_find(c->fb, queue_id)) {
        fake_queue *q = fake_broker_alloc(sizeof *q);
        snprintf(q->id, sizeof q->id, "%s", queue_id);
        q->next = c->fb->queues;
        c->fb->queues = q;
    }
    pthread_mutex_unlock(&c->fb->lock);
    return rc;
}

static int fake_broker_publish(broker_conn *base, const char *queue_id, const char *body,
                               size_t len, int confirm_timeout_ms)
{
    fake_conn *c = fake_broker_conn_of(base);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "publishing to '%s_jobs'", queue_id ? queue_id : "(null)");
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.publish");
    if (rule && rule->error == ACP_EBROKER && rule->kind != FAKE_BROKER_PUBLISH_LOST &&
        rule->kind != FAKE_BROKER_PUBLISH_NACK && rule->kind != FAKE_BROKER_PUBLISH_NO_CONFIRM) {
        fprintf(stderr, "fake broker: unknown kind %d for amqp.publish\n", rule->kind);
        abort();
    }
    if (rule && (rule->error != ACP_EBROKER || rule->kind == FAKE_BROKER_PUBLISH_LOST))
        return fake_broker_injected(c, rule, what, "amqp.publish");
    fake_broker *fb = c->fb;
    pthread_mutex_lock(&fb->lock);
    int rc = fake_broker_usable(c, "publishing");
    if (!rc)
        rc = fake_broker_queue_name(c, queue_id, "publishing");
    if (rc)
        goto out;
    if (!body && len > 0) {
        rc = error_set(ACP_EINVAL, "%s: %s: NULL body", c->where, what);
        goto out;
    }
    fake_queue *q = fake_broker_find(fb, queue_id);
    if (c->consuming) {
        rc = error_set(ACP_EINVAL, "%s: %s: this connection consumes; publish on another", c->where,
                       what);
        goto out;
    }
    if (rule && rule->kind == FAKE_BROKER_PUBLISH_NACK) {
        rc = error_set(ACP_EBROKER, "%s: %s: the broker refused the message (basic.nack)", c->where,
                       what);
        goto out;
    }
    if (!q) {
        rc = error_set(ACP_EBROKER, "%s: %s: message returned by the broker: NO_ROUTE (312)",
                       c->where, what);
        goto out;
    }
    fake_message *m = fake_broker_alloc(sizeof *m);
    m->body = fake_broker_alloc(len + 1);
    if (len)
        memcpy(m->body, body, len);
    m->len = len;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->ready++;
    q->published++;
    fake_broker_dispatch(fb);
    if (rule)
        rc = error_set(ACP_EBROKER, "%s: %s: no confirm from the broker within %d ms", c->where,
                       what, confirm_timeout_ms);
out:
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

/* Lock held. */
static void fake_broker_add_confirm(fake_conn *c, uint64_t seq, bool nack, const char *reason)
{
    if (c->confirm_count == c->confirm_cap) {
        size_t cap = c->confirm_cap ? 2 * c->confirm_cap : 8;
        broker_confirm *grown = realloc(c->confirms, cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "fake broker: out of memory\n");
            abort();
        }
        c->confirms = grown;
        c->confirm_cap = cap;
    }
    broker_confirm *confirm = &c->confirms[c->confirm_count++];
    memset(confirm, 0, sizeof *confirm);
    confirm->tag = seq;
    confirm->nack = nack;
    confirm->returned = reason && !nack;
    if (reason)
        snprintf(confirm->reason, sizeof confirm->reason, "%s", reason);
}

/* The same checks and faults as fake_broker_publish, counted as
 * "amqp.publish"; the confirm (or nack, or return) waits in the connection
 * for fake_broker_read_confirms. */
static int fake_broker_publish_send(broker_conn *base, const char *queue_id, const char *body,
                                    size_t len, uint64_t *seq)
{
    fake_conn *c = fake_broker_conn_of(base);
    char what[ACP_QUEUE_ID_MAX + 40];
    snprintf(what, sizeof what, "publishing to '%s_jobs'", queue_id ? queue_id : "(null)");
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.publish");
    if (rule && rule->error == ACP_EBROKER && rule->kind != FAKE_BROKER_PUBLISH_LOST &&
        rule->kind != FAKE_BROKER_PUBLISH_NACK && rule->kind != FAKE_BROKER_PUBLISH_NO_CONFIRM) {
        fprintf(stderr, "fake broker: unknown kind %d for amqp.publish\n", rule->kind);
        abort();
    }
    if (rule && (rule->error != ACP_EBROKER || rule->kind == FAKE_BROKER_PUBLISH_LOST))
        return fake_broker_injected(c, rule, what, "amqp.publish");
    fake_broker *fb = c->fb;
    pthread_mutex_lock(&fb->lock);
    int rc = fake_broker_usable(c, "publishing");
    if (!rc)
        rc = fake_broker_queue_name(c, queue_id, "publishing");
    if (!rc && !body && len > 0)
        rc = error_set(ACP_EINVAL, "%s: %s: NULL body", c->where, what);
    if (!rc && c->consuming)
        rc = error_set(ACP_EINVAL, "%s: %s: this connection consumes; publish on another", c->where,
                       what);
    if (rc)
        goto out;
    *seq = ++c->publish_seq;
    char reason[sizeof c->confirms[0].reason];
    fake_queue *q = fake_broker_find(fb, queue_id);
    if (rule && rule->kind == FAKE_BROKER_PUBLISH_NACK) {
        snprintf(reason, sizeof reason, "%s: %s: the broker refused the message (basic.nack)",
                 c->where, what);
        fake_broker_add_confirm(c, *seq, true, reason);
    } else if (!q) {
        snprintf(reason, sizeof reason, "%s: %s: message returned by the broker: NO_ROUTE (312)",
                 c->where, what);
        fake_broker_add_confirm(c, *seq, false, reason);
    } else {
        fake_message *m = fake_broker_alloc(sizeof *m);
        m->body = fake_broker_alloc(len + 1);
        if (len)
            memcpy(m->body, body, len);
        m->len = len;
        if (q->tail)
            q->tail->next = m;
        else
            q->head = m;
        q->tail = m;
        q->ready++;
        q->published++;
        fake_broker_dispatch(fb);
        if (rule)
            /* The wait for this confirm would time out: say so at once. */
            rc = error_set(ACP_EBROKER, "%s: %s: no confirm from the broker (injected)", c->where,
                           what);
        else
            fake_broker_add_confirm(c, *seq, false, NULL);
    }
    pthread_cond_broadcast(&fb->changed);
out:
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

/* Confirms that may be read now: not held, and the connection alive. Lock
 * held. */
static bool fake_broker_confirms_ready(const fake_conn *c)
{
    return !c->fb->hold_confirms && c->confirm_count > 0;
}

static int fake_broker_read_confirms(broker_conn *base, broker_confirm_fn fn, void *arg)
{
    fake_conn *c = fake_broker_conn_of(base);
    fake_broker *fb = c->fb;
    pthread_mutex_lock(&fb->lock);
    int rc = fake_broker_usable(c, "reading confirms");
    size_t count = 0;
    broker_confirm *out = NULL;
    if (!rc && fake_broker_confirms_ready(c)) {
        count = c->confirm_count;
        out = fake_broker_alloc(count * sizeof *out);
        memcpy(out, c->confirms, count * sizeof *out);
        c->confirm_count = 0;
    }
    int style = fb->confirm_style;
    pthread_mutex_unlock(&fb->lock);
    if (style == FAKE_BROKER_CONFIRM_REVERSE)
        for (size_t i = 0; i < count / 2; i++) {
            broker_confirm t = out[i];
            out[i] = out[count - 1 - i];
            out[count - 1 - i] = t;
        }
    for (size_t i = 0; i < count; i++) {
        /* A run of plain acks goes as one multiple ack for its last tag:
         * the tags of a connection's confirms only grow, as in RabbitMQ. */
        if (style == FAKE_BROKER_CONFIRM_MULTIPLE && !out[i].nack && !out[i].returned) {
            size_t last = i;
            while (last + 1 < count && !out[last + 1].nack && !out[last + 1].returned)
                last++;
            if (last > i) {
                out[last].multiple = true;
                i = last;
            }
        }
        fn(arg, &out[i]);
    }
    free(out);
    return rc;
}

static int fake_broker_wait_readable(broker_conn *base, int timeout_ms)
{
    fake_conn *c = fake_broker_conn_of(base);
    fake_broker *fb = c->fb;
    struct timespec deadline;
    clock_deadline(&deadline, timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
    pthread_mutex_lock(&fb->lock);
    int rc = 0;
    while (!fake_broker_confirms_ready(c) && !c->lost && !c->broken)
        if (pthread_cond_timedwait(&fb->changed, &fb->lock, &deadline) != 0) {
            rc = 1;
            break;
        }
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

static int fake_broker_consume_now(fake_conn *c, const char *queue_id)
{
    const char *what = "consuming";
    pthread_mutex_lock(&c->fb->lock);
    int rc = fake_broker_usable(c, what);
    if (!rc)
        rc = fake_broker_queue_name(c, queue_id, what);
    fake_queue *q = rc ? NULL : fake_broker_find(c->fb, queue_id);
    if (rc)
        ;
    else if (c->consuming)
        rc = error_set(ACP_EINVAL, "%s: consuming '%s_jobs': this connection already consumes",
                       c->where, queue_id);
    else if (!q)
        rc = fake_broker_fail(c, what,
                              "channel closed by the server: NOT_FOUND - no queue '%s_jobs' in "
                              "vhost '/' (404)",
                              queue_id);
    else {
        c->consuming = q;
        c->fb->consumes++;
        fake_broker_dispatch(c->fb);
    }
    pthread_mutex_unlock(&c->fb->lock);
    return rc;
}

static int fake_broker_consume(broker_conn *base, const char *queue_id)
{
    fake_conn *c = fake_broker_conn_of(base);
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.consume");
    if (rule)
        return fake_broker_injected(c, rule, "consuming", "amqp.consume");
    return fake_broker_consume_now(c, queue_id);
}

/* Not a step of the fault plan: a worker calls it only after a job that
 * outlived its grace, which depends on the machine's speed, and the step
 * counts of a run must not. */
static int fake_broker_consume_send(broker_conn *base, const char *queue_id)
{
    return fake_broker_consume_now(fake_broker_conn_of(base), queue_id);
}

/* Pushed but never read: another consumer gets it. A delivery that was
 * read stays unacked until its ack. Lock held. */
static void fake_broker_stop_consuming(fake_conn *c)
{
    if (c->held && !c->held_read) {
        fake_broker_requeue(c->held_queue, c->held);
        c->held = NULL;
        c->held_queue = NULL;
    }
    c->consuming = NULL;
    c->fb->cancels++;
    fake_broker_dispatch(c->fb);
}

static int fake_broker_cancel(broker_conn *base)
{
    fake_conn *c = fake_broker_conn_of(base);
    const char *what = "cancelling the consumer";
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.cancel");
    if (rule)
        return fake_broker_injected(c, rule, what, "amqp.cancel");
    pthread_mutex_lock(&c->fb->lock);
    int rc = fake_broker_usable(c, what);
    if (!rc && c->consuming)
        fake_broker_stop_consuming(c);
    pthread_mutex_unlock(&c->fb->lock);
    return rc;
}

static int fake_broker_next(broker_conn *base, int timeout_ms, broker_delivery *out)
{
    fake_conn *c = fake_broker_conn_of(base);
    const char *what = "waiting for a delivery";
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.next");
    if (rule)
        return fake_broker_injected(c, rule, what, "amqp.next");
    if (!out)
        return error_set(ACP_EINVAL, "%s: NULL delivery", c->where);
    struct timespec until;
    clock_deadline(&until, timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
    fake_broker *fb = c->fb;
    pthread_mutex_lock(&fb->lock);
    int rc;
    for (;;) {
        if ((rc = fake_broker_usable(c, what)))
            break;
        if (c->held && !c->held_read) {
            /* Bounded as the AMQP driver bounds what it keeps. */
            size_t keep = c->held->len > JOB_MESSAGE_MAX ? JOB_MESSAGE_MAX + 1 : c->held->len;
            out->body = fake_broker_alloc(keep + 1);
            memcpy(out->body, c->held->body, keep);
            out->len = keep;
            out->tag = c->held_tag;
            out->redelivered = c->held->redelivered;
            c->held_read = true;
            break;
        }
        if (pthread_cond_timedwait(&fb->changed, &fb->lock, &until) != 0 &&
            !(c->held && !c->held_read) && !c->lost) {
            rc = 1;
            break;
        }
    }
    pthread_mutex_unlock(&fb->lock);
    return rc;
}

static int fake_broker_ack(broker_conn *base, uint64_t tag)
{
    fake_conn *c = fake_broker_conn_of(base);
    const char *what = "acknowledging a delivery";
    const fault_rule *rule = fault_check(c->fb->plan, "amqp.ack");
    if (rule)
        return fake_broker_injected(c, rule, what, "amqp.ack");
    pthread_mutex_lock(&c->fb->lock);
    int rc = fake_broker_usable(c, what);
    if (!rc && c->held && c->held_tag == tag) {
        fake_broker_message_free(c->held);
        c->held = NULL;
        c->held_queue = NULL;
        fake_broker_dispatch(c->fb);
    } else if (!rc) {
        /* As RabbitMQ: acks are not answered, the objection closes the
         * channel and the next call hears of it. */
        c->lost = true;
        snprintf(c->lost_reason, sizeof c->lost_reason,
                 "channel closed by the server: PRECONDITION_FAILED - unknown delivery tag "
                 "%llu (406)",
                 (unsigned long long)tag);
        fake_broker_release(c);
    }
    pthread_mutex_unlock(&c->fb->lock);
    return rc;
}

/* The grace of a consumer left running: then it is cancelled, and from
 * then on nothing is pushed until the keeper stops. */
static void *fake_broker_keeper_main(void *arg)
{
    fake_keeper *k = arg;
    fake_conn *c = fake_broker_conn_of(k->base.conn);
    pthread_mutex_lock(&c->fb->lock);
    while (!k->stop && pthread_cond_timedwait(&c->fb->changed, &c->fb->lock, &k->cancel_at) == 0)
        ;
    if (!k->stop && !c->broken && !c->lost) {
        if (c->consuming)
            fake_broker_stop_consuming(c);
        c->kept = true;
    }
    pthread_mutex_unlock(&c->fb->lock);
    return NULL;
}

static int fake_broker_keeper_start(broker_conn *base, int cancel_after_ms, broker_keeper **out)
{
    fake_conn *c = fake_broker_conn_of(base);
    fake_keeper *k = fake_broker_alloc(sizeof *k);
    k->base.conn = base;
    pthread_mutex_lock(&c->fb->lock);
    /* As the AMQP driver: a loss is only heard of when the keeper stops. */
    int rc = c->broken ? fake_broker_usable(c, "keeping the connection alive") : 0;
    k->was_consuming = c->consuming != NULL;
    /* Without a grace a consumer left running gets nothing (the AMQP
     * keeper would hand it back); with one, the broker pushes to it as
     * usual until the grace ends. */
    k->has_thread = !rc && cancel_after_ms >= 0 && k->was_consuming;
    if (!rc && !k->has_thread)
        c->kept = true;
    pthread_mutex_unlock(&c->fb->lock);
    if (!rc && k->has_thread) {
        clock_deadline(&k->cancel_at, (uint64_t)cancel_after_ms);
        if (pthread_create(&k->thread, NULL, fake_broker_keeper_main, k) != 0) {
            fprintf(stderr, "fake broker: cannot start a keeper thread\n");
            abort();
        }
    }
    if (rc) {
        free(k);
        return rc;
    }
    *out = &k->base;
    return 0;
}

static int fake_broker_keeper_stop(broker_keeper *base)
{
    fake_keeper *k = (fake_keeper *)base;
    fake_conn *c = fake_broker_conn_of(base->conn);
    if (k->has_thread) {
        pthread_mutex_lock(&c->fb->lock);
        k->stop = true;
        pthread_cond_broadcast(&c->fb->changed);
        pthread_mutex_unlock(&c->fb->lock);
        pthread_join(k->thread, NULL);
    }
    pthread_mutex_lock(&c->fb->lock);
    c->kept = false;
    int rc = fake_broker_usable(c, "keeping the connection alive");
    if (!rc && k->was_consuming && !c->consuming)
        rc = 1;
    fake_broker_dispatch(c->fb);
    pthread_mutex_unlock(&c->fb->lock);
    free(k);
    return rc;
}

static const broker_conn_ops fake_broker_ops = {
    .close = fake_broker_close,
    .declare = fake_broker_declare,
    .publish = fake_broker_publish,
    .publish_send = fake_broker_publish_send,
    .read_confirms = fake_broker_read_confirms,
    .wait_readable = fake_broker_wait_readable,
    .consume = fake_broker_consume,
    .cancel = fake_broker_cancel,
    /* No latency to hide: the waiting versions, cancel_send counted as
     * "amqp.cancel", consume_send not counted. */
    .cancel_send = fake_broker_cancel,
    .consume_send = fake_broker_consume_send,
    .next = fake_broker_next,
    .ack = fake_broker_ack,
    .keeper_start = fake_broker_keeper_start,
    .keeper_stop = fake_broker_keeper_stop,
};

static int fake_broker_connect(const broker_driver *driver, broker_conn **out,
                               const acp_queue_config *queue, const logger *log)
{
    (void)log;
    fake_broker *fb = (fake_broker *)driver;
    *out = NULL;
    if (!queue || !queue->host || !*queue->host || !queue->user || !queue->password)
        return error_set(ACP_EINVAL, "fake rabbitmq: host, user and password are required");
    if (queue->port < 1 || queue->port > 65535)
        return error_set(ACP_EINVAL, "fake rabbitmq %s: port %d is outside 1..65535", queue->host,
                         queue->port);
    char where[300];
    snprintf(where, sizeof where, "fake rabbitmq %s:%d", queue->host, queue->port);
    const fault_rule *rule = fault_check(fb->plan, "amqp.connect");
    if (rule)
        return error_set(rule->error, "%s: connection refused (injected fault, amqp.connect)",
                         where);
    fake_conn *c = fake_broker_alloc(sizeof *c);
    c->base.ops = &fake_broker_ops;
    c->fb = fb;
    memcpy(c->where, where, sizeof where);
    pthread_mutex_lock(&fb->lock);
    c->next = fb->conns;
    fb->conns = c;
    pthread_mutex_unlock(&fb->lock);
    *out = &c->base;
    return 0;
}

/* ---- the broker ------------------------------------------------------------ */

fake_broker *fake_broker_new(fault_plan *plan)
{
    fake_broker *fb = fake_broker_alloc(sizeof *fb);
    fb->driver.name = "fake";
    fb->driver.connect = fake_broker_connect;
    fb->plan = plan;
    if (pthread_mutex_init(&fb->lock, NULL) != 0 || clock_cond_init(&fb->changed) != 0) {
        fprintf(stderr, "fake broker: cannot create its lock\n");
        abort();
    }
    return fb;
}

void fake_broker_free(fake_broker *fb)
{
    if (!fb)
        return;
    while (fb->conns)
        fake_broker_close(&fb->conns->base);
    while (fb->queues) {
        fake_queue *q = fb->queues;
        fb->queues = q->next;
        while (q->head)
            fake_broker_message_free(fake_broker_take(q));
        free(q);
    }
    pthread_cond_destroy(&fb->changed);
    pthread_mutex_destroy(&fb->lock);
    free(fb);
}

const broker_driver *fake_broker_driver(fake_broker *fb)
{
    return &fb->driver;
}

static bool fake_broker_matches(const fake_queue *q, const char *queue_id)
{
    return !queue_id || strcmp(q->id, queue_id) == 0;
}

bool fake_broker_declared(fake_broker *fb, const char *queue_id)
{
    pthread_mutex_lock(&fb->lock);
    bool found = queue_id ? fake_broker_find(fb, queue_id) != NULL : fb->queues != NULL;
    pthread_mutex_unlock(&fb->lock);
    return found;
}

size_t fake_broker_ready(fake_broker *fb, const char *queue_id)
{
    size_t n = 0;
    pthread_mutex_lock(&fb->lock);
    for (fake_queue *q = fb->queues; q; q = q->next)
        if (fake_broker_matches(q, queue_id))
            n += q->ready;
    pthread_mutex_unlock(&fb->lock);
    return n;
}

size_t fake_broker_unacked(fake_broker *fb, const char *queue_id)
{
    size_t n = 0;
    pthread_mutex_lock(&fb->lock);
    for (fake_conn *c = fb->conns; c; c = c->next)
        if (c->held && fake_broker_matches(c->held_queue, queue_id))
            n++;
    pthread_mutex_unlock(&fb->lock);
    return n;
}

size_t fake_broker_published(fake_broker *fb, const char *queue_id)
{
    size_t n = 0;
    pthread_mutex_lock(&fb->lock);
    for (fake_queue *q = fb->queues; q; q = q->next)
        if (fake_broker_matches(q, queue_id))
            n += q->published;
    pthread_mutex_unlock(&fb->lock);
    return n;
}

char *fake_broker_peek(fake_broker *fb, const char *queue_id, size_t index)
{
    char *copy = NULL;
    pthread_mutex_lock(&fb->lock);
    fake_queue *q = queue_id ? fake_broker_find(fb, queue_id) : NULL;
    fake_message *m = q ? q->head : NULL;
    for (size_t i = 0; m && i < index; i++)
        m = m->next;
    if (m) {
        copy = fake_broker_alloc(m->len + 1);
        memcpy(copy, m->body, m->len);
    }
    pthread_mutex_unlock(&fb->lock);
    return copy;
}

void fake_broker_close_connections(fake_broker *fb)
{
    pthread_mutex_lock(&fb->lock);
    for (fake_conn *c = fb->conns; c; c = c->next)
        if (!c->broken && !c->lost) {
            c->lost = true;
            snprintf(c->lost_reason, sizeof c->lost_reason, "%s",
                     "connection closed by the server: CONNECTION_FORCED - closed by the test "
                     "(320)");
            fake_broker_release(c);
        }
    pthread_mutex_unlock(&fb->lock);
}

size_t fake_broker_consumes(fake_broker *fb)
{
    pthread_mutex_lock(&fb->lock);
    size_t n = fb->consumes;
    pthread_mutex_unlock(&fb->lock);
    return n;
}

size_t fake_broker_cancels(fake_broker *fb)
{
    pthread_mutex_lock(&fb->lock);
    size_t n = fb->cancels;
    pthread_mutex_unlock(&fb->lock);
    return n;
}

void fake_broker_set_confirms(fake_broker *fb, bool hold, int style)
{
    pthread_mutex_lock(&fb->lock);
    fb->hold_confirms = hold;
    fb->confirm_style = style;
    pthread_cond_broadcast(&fb->changed);
    pthread_mutex_unlock(&fb->lock);
}

size_t fake_broker_unconfirmed(fake_broker *fb)
{
    pthread_mutex_lock(&fb->lock);
    size_t n = 0;
    for (fake_conn *c = fb->conns; c; c = c->next)
        n += c->confirm_count;
    pthread_mutex_unlock(&fb->lock);
    return n;
}
