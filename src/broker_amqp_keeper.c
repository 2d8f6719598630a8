/* Keeping an AMQP connection alive while its owner is busy elsewhere (a
 * worker running a job): a thread answers the broker's heartbeats and reads
 * what the server sends, cancels a consumer left running once the job
 * outlives its grace, and rejects (with requeue) a delivery that the
 * consumer still receives. */
#include "broker_amqp_keeper.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker_amqp_conn.h"
#include "clock.h"
#include "error.h"

/* One per connection, made by its first broker_keeper_start and kept until
 * the connection closes: a worker runs a job after another, and starting
 * and joining a thread per job cost more CPU than the rest of its AMQP
 * work. Between jobs the thread sleeps on @changed, off the connection. */
typedef struct broker_amqp_keeper {
    broker_keeper base; /* first: what the broker seam sees */
    broker_amqp_conn *conn;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t changed;
    bool active; /* handed over by the owner (keeper_start .. keeper_stop) */
    bool busy;   /* the thread is using the connection */
    bool quit;
    unsigned interval_ms;
    /* The consumer is to be cancelled at this clock_now_ms() (-1: not). */
    int64_t cancel_at;
    /* A consumer ran at start, with no cancel of the owner's pending. */
    bool was_consuming;
    /* Set by the thread when the connection failed while active. */
    int rc;
    char error[1024];
} broker_amqp_keeper;

/* Read whatever the server sent and send our heartbeat if it is due (inside
 * rabbitmq-c's wait): 0 or ACP_EBROKER. */
static int broker_amqp_keeper_tick(broker_amqp_conn *conn)
{
    const char *what = "keeping the connection alive";
    int rc;
    for (;;) {
        amqp_frame_t frame;
        if ((rc = broker_amqp_conn_read_method(conn, clock_now_ms(), what, &frame)))
            break;
        amqp_method_t *m = &frame.payload.method;
        if (m->id == AMQP_BASIC_DELIVER_METHOD || m->id == AMQP_BASIC_RETURN_METHOD) {
            uint64_t tag = m->id == AMQP_BASIC_DELIVER_METHOD
                               ? ((amqp_basic_deliver_t *)m->decoded)->delivery_tag
                               : 0;
            if ((rc = broker_amqp_conn_read_content(conn, what, NULL, NULL)))
                break;
            /* Only a consumer left running gets deliveries: let another
             * worker have the message. */
            int status =
                tag ? amqp_basic_reject(conn->amqp, BROKER_AMQP_CHANNEL, tag, 1) : AMQP_STATUS_OK;
            if (status != AMQP_STATUS_OK) {
                rc = broker_amqp_conn_lost(conn, what, status, errno);
                break;
            }
        } else if (m->id == AMQP_BASIC_CANCEL_METHOD) {
            conn->consuming = false;
        } else if (m->id == AMQP_BASIC_CANCEL_OK_METHOD && conn->cancel_pending) {
            conn->consuming = false;
            conn->cancel_pending = false;
        }
        /* Late confirms and the like are dropped. */
    }
    amqp_maybe_release_buffers(conn->amqp);
    return rc == 1 ? 0 : rc;
}

/* Runs @step on the connection outside the lock, recording a failure.
 * Lock held on entry and return. */
static void broker_amqp_keeper_use(broker_amqp_keeper *k, int (*step)(broker_amqp_conn *conn))
{
    k->busy = true;
    pthread_mutex_unlock(&k->lock);
    int rc = step(k->conn);
    char error[sizeof k->error];
    if (rc)
        snprintf(error, sizeof error, "%s", acp_last_error());
    pthread_mutex_lock(&k->lock);
    k->busy = false;
    if (rc) {
        k->rc = rc;
        memcpy(k->error, error, sizeof error);
    }
    pthread_cond_broadcast(&k->changed);
}

/* A cancel sent just before the job (broker_cancel_send): its round trip,
 * and handing back a message pushed meanwhile, overlap the job instead of
 * delaying it, and no message waits for the job's end. */
static int broker_amqp_keeper_cancel(broker_amqp_conn *conn)
{
    return conn->cancel_pending ? broker_amqp_conn_await_cancel_ok(conn) : 0;
}

/* The job outlived its grace: stop the consumer, handing back a message
 * pushed meanwhile, as broker_cancel does. */
static int broker_amqp_keeper_cancel_late(broker_amqp_conn *conn)
{
    return broker_cancel(&conn->base);
}

static void *broker_amqp_keeper_main(void *arg)
{
    broker_amqp_keeper *k = arg;
    pthread_mutex_lock(&k->lock);
    for (;;) {
        while (!k->active && !k->quit)
            pthread_cond_wait(&k->changed, &k->lock);
        if (k->quit)
            break;
        broker_amqp_keeper_use(k, broker_amqp_keeper_cancel);
        while (k->active && !k->quit && !k->rc) {
            /* Until the grace ends the connection is not read at all: a
             * message pushed meanwhile stays for the owner's broker_next. */
            uint64_t wait = k->interval_ms;
            if (k->cancel_at >= 0) {
                int64_t left = k->cancel_at - clock_now_ms();
                wait = left <= 0 ? 0 : (uint64_t)left < wait ? (uint64_t)left : wait;
            }
            struct timespec until;
            clock_deadline(&until, wait);
            while (k->active && !k->quit &&
                   pthread_cond_timedwait(&k->changed, &k->lock, &until) != ETIMEDOUT)
                ;
            if (!k->active || k->quit)
                break;
            if (k->cancel_at >= 0 && clock_now_ms() >= k->cancel_at) {
                k->cancel_at = -1;
                broker_amqp_keeper_use(k, broker_amqp_keeper_cancel_late);
            } else {
                broker_amqp_keeper_use(k, broker_amqp_keeper_tick);
            }
        }
        /* Failed: idle until the owner takes the connection back. */
        while (k->active && !k->quit)
            pthread_cond_wait(&k->changed, &k->lock);
    }
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

static int broker_amqp_keeper_make(broker_amqp_conn *conn)
{
    broker_amqp_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return error_set(ACP_ENOMEM, "%s: out of memory", conn->where);
    k->base.conn = &conn->base;
    k->conn = conn;
    /* rabbitmq-c sends a heartbeat once an interval has passed since it last
     * sent anything; looking four times per interval keeps the gaps well
     * under the two intervals after which RabbitMQ gives up. */
    int heartbeat = amqp_get_heartbeat(conn->amqp);
    k->interval_ms = heartbeat > 0 ? (unsigned)heartbeat * 250 : 30000;
    int err = pthread_mutex_init(&k->lock, NULL);
    if (err) {
        free(k);
        return error_set(ACP_ENOMEM, "%s: creating a mutex: %s", conn->where, error_strerror(err));
    }
    if ((err = clock_cond_init(&k->changed))) {
        pthread_mutex_destroy(&k->lock);
        free(k);
        return error_set(ACP_ENOMEM, "%s: creating a condition variable: %s", conn->where,
                         error_strerror(err));
    }
    if ((err = pthread_create(&k->thread, NULL, broker_amqp_keeper_main, k))) {
        pthread_cond_destroy(&k->changed);
        pthread_mutex_destroy(&k->lock);
        free(k);
        return error_set(ACP_ENOMEM, "%s: starting the heartbeat thread: %s", conn->where,
                         error_strerror(err));
    }
    conn->keeper = k;
    return 0;
}

int broker_amqp_keeper_start(broker_conn *base, int cancel_after_ms, broker_keeper **out)
{
    broker_amqp_conn *conn = broker_amqp_conn_of(base);
    *out = NULL;
    int rc = broker_amqp_conn_usable(conn, "keeping the connection alive");
    if (!rc && !conn->keeper)
        rc = broker_amqp_keeper_make(conn);
    if (rc)
        return rc;
    broker_amqp_keeper *k = conn->keeper;
    pthread_mutex_lock(&k->lock);
    k->rc = 0;
    k->was_consuming = conn->consuming && !conn->cancel_pending;
    k->cancel_at = cancel_after_ms >= 0 && k->was_consuming ? clock_now_ms() + cancel_after_ms : -1;
    k->active = true;
    pthread_cond_broadcast(&k->changed);
    pthread_mutex_unlock(&k->lock);
    *out = &k->base;
    return 0;
}

int broker_amqp_keeper_stop(broker_keeper *base)
{
    broker_amqp_keeper *k = (broker_amqp_keeper *)base;
    pthread_mutex_lock(&k->lock);
    k->active = false;
    pthread_cond_broadcast(&k->changed);
    while (k->busy)
        pthread_cond_wait(&k->changed, &k->lock);
    int rc = k->rc ? error_set(k->rc, "%s", k->error) : 0;
    if (!rc && k->was_consuming && !k->conn->consuming)
        rc = 1;
    k->rc = 0;
    pthread_mutex_unlock(&k->lock);
    return rc;
}

void broker_amqp_keeper_free(broker_amqp_conn *conn)
{
    broker_amqp_keeper *k = conn->keeper;
    if (!k)
        return;
    pthread_mutex_lock(&k->lock);
    k->quit = true;
    pthread_cond_broadcast(&k->changed);
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->changed);
    pthread_mutex_destroy(&k->lock);
    free(k);
    conn->keeper = NULL;
}
