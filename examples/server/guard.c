#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "slog.h"

#define GUARD_TICK_MS 250

typedef struct guard_conn {
    int fd;
    double deadline; /* monotonic seconds; ignored while answering */
    int answering;
    struct guard_conn *prev, *next;
} guard_conn;

struct guard {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stopping;
    double request_seconds;
    guard_conn *head;
    unsigned long cut;
};

static double guard_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Shutting a socket down (never closing it: libmicrohttpd owns the
 * descriptor) makes the connection's thread see the end of the stream and
 * close it. The lock is held, and libmicrohttpd reports a connection closed
 * before it closes the descriptor, so the number cannot have been reused. */
static void guard_cut_late(guard *g, double now)
{
    for (guard_conn *c = g->head; c; c = c->next) {
        if (c->answering || now < c->deadline || c->fd < 0)
            continue;
        shutdown(c->fd, SHUT_RDWR);
        c->fd = -1;
        g->cut++;
        slog(ACP_LOG_WARN, "http: a connection sent no whole request within %g s; closed it",
             g->request_seconds);
    }
}

static void *guard_main(void *arg)
{
    guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        guard_cut_late(g, guard_now());
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += GUARD_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

guard *guard_start(double request_seconds, char *err, size_t errlen)
{
    guard *g = calloc(1, sizeof *g);
    pthread_condattr_t attr;
    int attr_ok = 0, lock_ok = 0, cond_ok = 0, rc = ENOMEM;
    if (g) {
        g->request_seconds = request_seconds;
        attr_ok = pthread_condattr_init(&attr) == 0;
        lock_ok = pthread_mutex_init(&g->lock, NULL) == 0;
        cond_ok = attr_ok && pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                  pthread_cond_init(&g->wake, &attr) == 0;
        if (lock_ok && cond_ok)
            rc = pthread_create(&g->thread, NULL, guard_main, g);
    }
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    if (g && rc == 0)
        return g;
    char reason[128];
    snprintf(err, errlen, "starting the connection guard: %s",
             strerror_r(rc, reason, sizeof reason));
    if (cond_ok)
        pthread_cond_destroy(&g->wake);
    if (lock_ok)
        pthread_mutex_destroy(&g->lock);
    free(g);
    return NULL;
}

void guard_stop(guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stopping = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    while (g->head) {
        guard_conn *c = g->head;
        g->head = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        guard_conn *c = calloc(1, sizeof *c);
        if (!c || !info) {
            /* Unguarded rather than refused: the idle timeout still holds. */
            free(c);
            *socket_context = NULL;
            return;
        }
        c->fd = info->connect_fd;
        c->deadline = guard_now() + g->request_seconds;
        pthread_mutex_lock(&g->lock);
        c->next = g->head;
        if (g->head)
            g->head->prev = c;
        g->head = c;
        pthread_mutex_unlock(&g->lock);
        *socket_context = c;
        return;
    }
    guard_conn *c = *socket_context;
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&g->lock);
    free(c);
    *socket_context = NULL;
}

void guard_answering(guard *g, struct MHD_Connection *conn, int answering)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    guard_conn *c = info ? info->socket_context : NULL;
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    c->answering = answering;
    if (!answering)
        c->deadline = guard_now() + g->request_seconds;
    pthread_mutex_unlock(&g->lock);
}
