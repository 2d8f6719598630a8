/* acp_read_log: a job's log from its live copy in PostgreSQL while it has
 * one, else from its kept "log.txt", with the same stream offsets; a wait
 * for more text is woken by the listening connection (LISTEN acp_log) and
 * looks again at least every second. */
#include "logread.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "joblog.h"
#include "joblog_text.h"
#include "platform_state.h"
#include "store_log.h"

/* Chunks read per statement. */
#define LOGREAD_ROWS 64
/* A wait looks again this often even without a notification: a job that
 * ends without a log sends none, and one may be lost in a reconnection. */
#define LOGREAD_RECHECK_MS 1000

typedef struct logread_waiter {
    acp_job_id id;
    bool woken;
    struct logread_waiter *next;
} logread_waiter;

void logread_wake(acp_platform *p, const acp_job_id *id)
{
    pthread_mutex_lock(&p->lock);
    bool any = false;
    for (logread_waiter *w = p->log_waiters; w; w = w->next)
        if (!id || acp_job_id_equal(&w->id, id)) {
            w->woken = true;
            any = true;
        }
    if (any)
        pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

int acp_log_read_init(acp_log_read *read, unsigned version)
{
    if (!read)
        return error_set(ACP_EINVAL, "acp_log_read_init: NULL argument");
    if (version < 1 || version > ACP_LOG_READ_VERSION)
        return error_set(ACP_EVERSION, "acp_log_read_init: version %u is not supported (1 to %d)",
                         version, ACP_LOG_READ_VERSION);
    memset(read, 0, sizeof *read);
    read->version = version;
    return 0;
}

/* Where the text read goes: from stream offset @cur on, at most @budget
 * bytes, whole lines where it can. */
typedef struct logread_out {
    acp_log_read *read;
    acp_read_fn sink;
    void *userdata;
    uint64_t cur;
    size_t budget;
    int user_rc; /* what the caller's sink returned */
    bool full;
} logread_out;

static int logread_give(logread_out *o, const char *data, size_t len)
{
    int rc = o->sink(o->userdata, data, len);
    if (rc) {
        o->user_rc = rc;
        o->full = true;
        return ACP_EUSER;
    }
    return 0;
}

/* Stream bytes from @pos, in order; a gap before them is text the cap
 * dropped, given as the marker line. */
static int logread_emit(logread_out *o, uint64_t pos, const char *data, size_t len)
{
    if (o->full || pos + len <= o->cur)
        return 0;
    if (pos > o->cur) {
        char marker[JOBLOG_MARKER_MAX];
        int rc = logread_give(o, marker, joblog_marker(pos - o->cur, marker));
        if (rc)
            return rc;
        o->read->dropped += pos - o->cur;
        o->cur = pos;
    }
    size_t skip = (size_t)(o->cur - pos), n = len - skip;
    if (n >= o->budget) {
        n = o->budget;
        /* Whole lines, unless a single line is longer than the budget. */
        for (size_t i = n; i > 0; i--)
            if (data[skip + i - 1] == '\n') {
                n = i;
                break;
            }
        o->full = true;
    }
    int rc = logread_give(o, data + skip, n);
    if (rc)
        return rc;
    o->cur += n;
    o->budget -= n;
    return 0;
}

/* The kept file's bytes as stream bytes: the file is the stream's head,
 * the marker line, then its tail from @tail_first. */
typedef struct logread_file {
    logread_out *out;
    uint64_t at; /* offset in the file */
    uint64_t head, marker_len, tail_first;
    int rc;
} logread_file;

/* Stops the transfer once the caller has enough. */
#define LOGREAD_STOP 1

static int logread_file_sink(void *userdata, const void *data, size_t len)
{
    logread_file *f = userdata;
    const char *s = data;
    while (len) {
        uint64_t at = f->at, n = len, pos;
        if (at < f->head) {
            n = f->head - at < len ? f->head - at : len;
            pos = at;
        } else if (at < f->head + f->marker_len) {
            n = f->head + f->marker_len - at < len ? f->head + f->marker_len - at : len;
            pos = UINT64_MAX; /* the marker: its stream bytes come from the gap */
        } else {
            pos = f->tail_first + (at - f->head - f->marker_len);
        }
        if (pos != UINT64_MAX && (f->rc = logread_emit(f->out, pos, s, (size_t)n)) != 0)
            return LOGREAD_STOP;
        f->at += n;
        s += n;
        len -= (size_t)n;
        if (f->out->full)
            return LOGREAD_STOP;
    }
    return 0;
}

static unsigned logread_digits(uint64_t n)
{
    unsigned d = 1;
    while (n >= 10)
        n /= 10, d++;
    return d;
}

/* An ended job's log from its kept file. */
static int logread_from_file(acp_platform *p, const acp_job_id *id, const store_log_view *view,
                             logread_out *o)
{
    bool exists = false;
    uint64_t file_size = 0;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    int rc = objects_stat(p->objects, id, JOBLOG_FILE, &exists, &file_size, NULL);
    if (rc)
        return rc;
    if (!exists)
        return error_set(ACP_ENOTFOUND, "job %s: its log (%s) is gone with its results", hex,
                         JOBLOG_FILE);
    logread_file f = {o, 0, view->size, 0, view->size, 0};
    if (file_size != view->size && view->size > view->head) {
        /* The marker says N bytes dropped, and is 25 + digits(N) bytes
         * long: the file's length tells N. */
        for (unsigned d = 1; d <= 20; d++) {
            uint64_t n = view->size + 25 + d - file_size;
            if (view->size + 25 + d > file_size && logread_digits(n) == d) {
                f.head = view->head;
                f.marker_len = 25 + d;
                f.tail_first = view->head + n;
                break;
            }
        }
        if (f.marker_len == 0)
            return error_set(
                ACP_ESTORAGE, "job %s: its %s is %llu bytes, which does not fit a log of %llu", hex,
                JOBLOG_FILE, (unsigned long long)file_size, (unsigned long long)view->size);
    }
    if (o->cur >= view->size)
        return 0;
    rc = objects_read(p->objects, id, JOBLOG_FILE, logread_file_sink, &f);
    if (rc == LOGREAD_STOP)
        rc = f.rc;
    return rc;
}

static bool logread_final(acp_job_status status)
{
    return status == ACP_STATUS_COMPLETE || status == ACP_STATUS_FAILED ||
           status == ACP_STATUS_CANCELLED || status == ACP_STATUS_EXPIRED;
}

/* One look: hands over what there is from o->cur. */
static int logread_once(acp_platform *p, const acp_job_id *id, logread_out *o, bool *ended)
{
    store_log_view view;
    int rc = store_log_view_read(p->store, id, o->cur, LOGREAD_ROWS, &view);
    if (rc == ACP_ENOTFOUND) {
        char hex[ACP_JOB_ID_STRLEN];
        return error_set(ACP_ENOTFOUND, "job %s: not found", acp_job_id_format(id, hex));
    }
    if (rc)
        return rc;
    bool final = logread_final(view.status);
    if (view.live || !final || view.size == 0) {
        for (size_t i = 0; !rc && i < view.count && !o->full; i++)
            rc = logread_emit(o, view.chunks[i].pos, view.chunks[i].data, view.chunks[i].len);
    } else {
        rc = logread_from_file(p, id, &view, o);
    }
    *ended = final && o->cur >= view.size;
    store_log_view_free(&view);
    return rc;
}

int acp_read_log(acp_platform *p, const acp_job_id *id, acp_log_read *read, acp_read_fn sink,
                 void *userdata)
{
    if (!p || !id || !read || !sink)
        return error_set(ACP_EINVAL, "acp_read_log: NULL argument");
    if (read->version < 1 || read->version > ACP_LOG_READ_VERSION)
        return error_set(ACP_EVERSION,
                         "acp_read_log: read.version %u is not supported (call acp_log_read_init)",
                         read->version);
    if (read->wait_ms > ACP_LOG_WAIT_MAX)
        return error_set(ACP_EINVAL, "acp_read_log: wait_ms %u is more than %d", read->wait_ms,
                         ACP_LOG_WAIT_MAX);
    if (read->offset > INT64_MAX)
        return error_set(ACP_EINVAL, "acp_read_log: offset %llu is beyond any log",
                         (unsigned long long)read->offset);
    read->next = read->offset;
    read->ended = 0;
    read->dropped = 0;
    logread_out o = {read, sink, userdata, read->offset, 0, 0, false};
    o.budget =
        read->max_bytes && read->max_bytes < ACP_LOG_READ_MAX ? read->max_bytes : ACP_LOG_READ_MAX;
    /* Registered before the first look, so that a notification between the
     * look and the wait is not lost; the reference keeps the platform while
     * acp_shutdown ends the wait. */
    logread_waiter me = {.id = *id};
    if (read->wait_ms) {
        pthread_mutex_lock(&p->lock);
        me.next = p->log_waiters;
        p->log_waiters = &me;
        p->refs++;
        pthread_mutex_unlock(&p->lock);
    }
    int64_t deadline = clock_now_ms() + read->wait_ms;
    int rc;
    for (;;) {
        bool ended = false;
        rc = logread_once(p, id, &o, &ended);
        read->ended = ended;
        if (rc || ended || o.cur != read->offset || read->wait_ms == 0)
            break;
        pthread_mutex_lock(&p->lock);
        int64_t now = clock_now_ms();
        if (!me.woken && !atomic_load(&p->stopping) && now < deadline) {
            int64_t slice =
                deadline - now < LOGREAD_RECHECK_MS ? deadline - now : LOGREAD_RECHECK_MS;
            struct timespec until;
            clock_deadline(&until, (uint64_t)slice);
            while (!me.woken && !atomic_load(&p->stopping) &&
                   pthread_cond_timedwait(&p->changed, &p->lock, &until) == 0)
                ;
        }
        me.woken = false;
        bool stopping = atomic_load(&p->stopping);
        pthread_mutex_unlock(&p->lock);
        if (stopping) {
            rc = error_set(ACP_ESHUTDOWN, "acp_read_log: the platform is shutting down");
            break;
        }
        if (clock_now_ms() >= deadline)
            break;
    }
    read->next = o.cur;
    if (read->wait_ms) {
        pthread_mutex_lock(&p->lock);
        for (logread_waiter **w = &p->log_waiters; *w; w = &(*w)->next)
            if (*w == &me) {
                *w = me.next;
                break;
            }
        pthread_mutex_unlock(&p->lock);
        platform_state_release(p);
    }
    if (o.user_rc) {
        char hex[ACP_JOB_ID_STRLEN];
        return error_set(ACP_EUSER, "job %s: the log's sink returned %d",
                         acp_job_id_format(id, hex), o.user_rc);
    }
    return rc;
}
