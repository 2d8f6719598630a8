/* The listening connection: see listener.h. It also LISTENs for job logs
 * (STORE_LOG_CHANNEL) and wakes the acp_read_log calls that follow them. */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clock.h"
#include "error.h"
#include "logread.h"
#include "pgpool.h"
#include "platform_state.h"
#include "running.h"
#include "store_log.h"
#include "store_pg.h"

#define LISTENER_BACKOFF_MIN_MS 200
#define LISTENER_BACKOFF_MAX_MS 5000

struct listener {
    acp_platform *p;
    pgpool *pool;
    pthread_t thread;
    int wake[2]; /* a byte on wake[1] stops the thread */
};

/* libpq's last error of @conn without its trailing new line. */
static const char *listener_reason(PGconn *conn, char *buf, size_t size)
{
    pgpool_clean_message(PQerrorMessage(conn), buf, size);
    return buf;
}

static void listener_signal(listener *l, const char *hex)
{
    acp_job_id id;
    if (acp_job_id_parse(&id, hex) != 0)
        return; /* not ours to read */
    if (running_signal(l->p, &id, ACP_CANCEL_REQUESTED))
        log_info(&l->p->log, "job %s: cancellation heard; its run is asked to stop", hex);
}

/* LISTEN, then look for cancellations requested while no connection
 * listened: those would otherwise wait for the next lease renewal. */
static int listener_subscribe(listener *l, PGconn *conn)
{
    PGresult *res = PQexec(conn, "LISTEN " STORE_CANCEL_CHANNEL "; LISTEN " STORE_LOG_CHANNEL);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    char reason[PGPOOL_MESSAGE_MAX];
    if (!ok)
        return error_set(ACP_EDB, "LISTEN: %s", listener_reason(conn, reason, sizeof reason));
    const char *params[] = {l->p->instance_id};
    res = PQexecParams(conn,
                       "SELECT encode(job_id, 'hex') FROM compute.jobs WHERE status = "
                       "'in-progress' AND lease_owner = $1 AND cancel_requested IS NOT NULL",
                       1, NULL, params, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    for (int r = 0; ok && r < PQntuples(res); r++)
        listener_signal(l, PQgetvalue(res, r, 0));
    PQclear(res);
    if (!ok)
        return error_set(ACP_EDB, "reading requested cancellations: %s",
                         listener_reason(conn, reason, sizeof reason));
    /* Logs may have grown while nobody listened. */
    logread_wake(l->p, NULL);
    return 0;
}

/* Wait @ms for the stop byte: true when it came. */
static bool listener_pause(listener *l, int ms)
{
    struct pollfd pfd = {.fd = l->wake[0], .events = POLLIN};
    int64_t end = clock_now_ms() + ms;
    for (;;) {
        int64_t left = end - clock_now_ms();
        if (left <= 0)
            return false;
        int n = poll(&pfd, 1, (int)left);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

/* Serve one connection until it breaks (false) or the stop byte (true). */
static bool listener_serve(listener *l, PGconn *conn)
{
    struct pollfd pfd[2] = {{.fd = PQsocket(conn), .events = POLLIN},
                            {.fd = l->wake[0], .events = POLLIN}};
    for (;;) {
        int n = poll(pfd, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (pfd[1].revents & POLLIN))
            return n >= 0;
        if (!PQconsumeInput(conn)) {
            char reason[PGPOOL_MESSAGE_MAX];
            log_warn(&l->p->log, "listening for cancellations: %s; connecting again",
                     listener_reason(conn, reason, sizeof reason));
            return false;
        }
        PGnotify *note;
        while ((note = PQnotifies(conn)) != NULL) {
            acp_job_id id;
            if (strcmp(note->relname, STORE_LOG_CHANNEL) != 0)
                listener_signal(l, note->extra);
            else if (acp_job_id_parse(&id, note->extra) == 0)
                logread_wake(l->p, &id);
            PQfreemem(note);
        }
    }
}

static void *listener_main(void *arg)
{
    listener *l = arg;
    unsigned backoff = 0;
    for (;;) {
        PGconn *conn = NULL;
        int rc = pgpool_connect_own(l->pool, "listening for cancellations", &conn);
        if (!rc && (rc = listener_subscribe(l, conn)) != 0) {
            PQfinish(conn);
            conn = NULL;
        }
        if (rc) {
            if (backoff == 0)
                log_warn(&l->p->log, "%s; cancellations arrive with the lease renewals meanwhile",
                         acp_last_error());
            backoff = backoff ? backoff * 2 : LISTENER_BACKOFF_MIN_MS;
            if (backoff > LISTENER_BACKOFF_MAX_MS)
                backoff = LISTENER_BACKOFF_MAX_MS;
            if (listener_pause(l, (int)backoff))
                return NULL;
            continue;
        }
        if (backoff)
            log_info(&l->p->log, "listening for cancellations again");
        backoff = 0;
        bool stop = listener_serve(l, conn);
        PQfinish(conn);
        if (stop || listener_pause(l, LISTENER_BACKOFF_MIN_MS))
            return NULL;
    }
}

int listener_start(acp_platform *p, listener **out)
{
    *out = NULL;
    if (!p->store || p->store->ops != &store_pg_ops)
        return 0;
    listener *l = calloc(1, sizeof *l);
    if (!l)
        return error_set(ACP_ENOMEM, "out of memory");
    l->p = p;
    l->pool = pgpool_of(p->store);
    if (pipe2(l->wake, O_CLOEXEC) != 0) {
        int err = errno;
        free(l);
        return error_set(ACP_ENOMEM, "starting the listening thread: %s", error_strerror(err));
    }
    int err = pthread_create(&l->thread, NULL, listener_main, l);
    if (err) {
        close(l->wake[0]);
        close(l->wake[1]);
        free(l);
        return error_set(ACP_ENOMEM, "starting the listening thread: %s", error_strerror(err));
    }
    *out = l;
    return 0;
}

bool listener_is_current(const listener *l)
{
    return l && pthread_equal(pthread_self(), l->thread);
}

void listener_stop(listener *l)
{
    if (!l)
        return;
    char byte = 1;
    while (write(l->wake[1], &byte, 1) < 0 && errno == EINTR)
        ;
    pthread_join(l->thread, NULL);
    close(l->wake[0]);
    close(l->wake[1]);
    free(l);
}
