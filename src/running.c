/* The running set (acp_platform.running, under the platform's lock): see
 * running.h. */
#include "running.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "platform_state.h"

int running_add(acp_platform *p, running_job *run)
{
    run->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (run->cancel_fd < 0)
        return error_set(ACP_EIO, "making the job's cancellation descriptor: %s",
                         error_strerror(errno));
    atomic_init(&run->reason, ACP_CANCEL_NONE);
    atomic_init(&run->log, NULL);
    run->platform = p;
    run->signalled_ms = 0;
    run->state = RUNNING_EXECUTING;
    run->deadline_ms =
        run->row->timeout_seconds ? clock_now_ms() + (int64_t)run->row->timeout_seconds * 1000 : 0;
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->running_count == p->running_size) {
        size_t size = p->running_size ? p->running_size * 2 : 8;
        running_job **grown = realloc(p->running, size * sizeof *grown);
        if (grown) {
            p->running = grown;
            p->running_size = size;
        } else {
            rc = error_set(ACP_ENOMEM, "out of memory");
        }
    }
    if (!rc)
        p->running[p->running_count++] = run;
    pthread_mutex_unlock(&p->lock);
    if (rc) {
        close(run->cancel_fd);
        run->cancel_fd = -1;
    }
    return rc;
}

void running_remove(acp_platform *p, running_job *run)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count; i++)
        if (p->running[i] == run) {
            p->running[i] = p->running[--p->running_count];
            break;
        }
    pthread_mutex_unlock(&p->lock);
    if (run->cancel_fd >= 0)
        close(run->cancel_fd);
    run->cancel_fd = -1;
}

int running_copy(acp_platform *p, acp_job_id **ids, size_t *count)
{
    int rc = 0;
    *ids = NULL;
    *count = 0;
    pthread_mutex_lock(&p->lock);
    if (p->running_count) {
        *ids = malloc(p->running_count * sizeof **ids);
        if (!*ids)
            rc = error_set(ACP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < p->running_count; i++) {
        const running_job *run = p->running[i];
        /* A run the watchdog recorded has no lease left to renew. */
        if (run->state == RUNNING_EXECUTING || run->state == RUNNING_RECORDING)
            (*ids)[(*count)++] = run->row->id;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Under the lock. */
static void running_raise(running_job *run, acp_cancel_reason reason)
{
    int none = ACP_CANCEL_NONE;
    if (!atomic_compare_exchange_strong(&run->reason, &none, (int)reason))
        return;
    run->signalled_ms = clock_now_ms();
    uint64_t one = 1;
    /* Cannot fail but for an overflow of the counter, which stays readable. */
    if (write(run->cancel_fd, &one, sizeof one) < 0) {
        /* nothing else to do: the flag is set */
    }
}

bool running_signal(acp_platform *p, const acp_job_id *id, acp_cancel_reason reason)
{
    bool found = false;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count; i++) {
        running_job *run = p->running[i];
        if (memcmp(run->row->id.bytes, id->bytes, sizeof id->bytes) != 0)
            continue;
        found = true;
        if (run->state == RUNNING_EXECUTING)
            running_raise(run, reason);
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

void running_check_deadlines(acp_platform *p)
{
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count; i++) {
        running_job *run = p->running[i];
        if (run->state == RUNNING_EXECUTING && run->deadline_ms && now >= run->deadline_ms)
            running_raise(run, ACP_CANCEL_TIMEOUT);
    }
    pthread_mutex_unlock(&p->lock);
}

size_t running_take_overdue(acp_platform *p, int64_t grace_ms, running_job **out, size_t max)
{
    size_t taken = 0;
    int64_t now = clock_now_ms();
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count && taken < max; i++) {
        running_job *run = p->running[i];
        if (run->state == RUNNING_EXECUTING && atomic_load(&run->reason) != ACP_CANCEL_NONE &&
            now - run->signalled_ms >= grace_ms) {
            run->state = RUNNING_TAKEN;
            out[taken++] = run;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return taken;
}

void running_release(acp_platform *p, running_job *run, bool recorded)
{
    pthread_mutex_lock(&p->lock);
    run->state = recorded ? RUNNING_DONE : RUNNING_EXECUTING;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

bool running_end(acp_platform *p, running_job *run)
{
    pthread_mutex_lock(&p->lock);
    while (run->state == RUNNING_TAKEN)
        pthread_cond_wait(&p->changed, &p->lock);
    bool ours = run->state == RUNNING_EXECUTING;
    if (ours)
        run->state = RUNNING_RECORDING;
    pthread_mutex_unlock(&p->lock);
    return ours;
}

size_t running_overdue_count(acp_platform *p)
{
    size_t count = 0;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count; i++)
        if (p->running[i]->state == RUNNING_DONE)
            count++;
    pthread_mutex_unlock(&p->lock);
    return count;
}
