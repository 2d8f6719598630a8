/* Job control: retries' back-off, stopped attempts, and the functions of
 * the public API that cancel a job or tell an executor to stop. */
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "job.h"
#include "metrics.h"
#include "platform_state.h"
#include "running.h"
#include "workspace.h"

unsigned control_backoff_ms(const store_job *row)
{
    unsigned attempts = row->attempts ? row->attempts : 1;
    uint64_t cap = row->backoff_base_ms;
    for (unsigned i = 1; i < attempts && cap < row->backoff_max_ms; i++)
        cap *= 2;
    if (cap > row->backoff_max_ms)
        cap = row->backoff_max_ms;
    if (cap == 0)
        return 0;
    /* Sixty-four random bits (libuuid's source) are uniform enough below
     * any cap of 32 bits. */
    acp_job_id noise;
    acp_job_id_generate(&noise);
    uint64_t draw;
    memcpy(&draw, noise.bytes, sizeof draw);
    return (unsigned)(draw % cap);
}

bool control_retries(const store_job *row, bool permanent)
{
    return !permanent && row->attempts < row->max_attempts;
}

const char *control_stop_message(const store_job *row, int reason, char *buf, size_t size)
{
    if (reason == ACP_CANCEL_TIMEOUT)
        snprintf(buf, size, "timed out after %u s (attempt %u of %u)", row->timeout_seconds,
                 row->attempts, row->max_attempts);
    else
        snprintf(buf, size, "cancelled");
    return buf;
}

int acp_job_cancelled(const acp_job_context *ctx)
{
    if (!ctx || !ctx->outcome || !ctx->outcome->run)
        return ACP_CANCEL_NONE;
    return atomic_load(&ctx->outcome->run->reason);
}

int acp_job_cancel_fd(const acp_job_context *ctx)
{
    if (!ctx || !ctx->outcome || !ctx->outcome->run)
        return -1;
    return ctx->outcome->run->cancel_fd;
}

int acp_job_fail_permanently(acp_job_context *ctx, const char *message)
{
    if (!ctx || !ctx->outcome)
        return error_set(ACP_EINVAL, "acp_job_fail_permanently: no job context");
    if (message) {
        int rc = acp_job_set_message(ctx, message);
        if (rc)
            return rc;
    }
    ctx->outcome->permanent = true;
    return 0;
}

int acp_cancel_job(acp_platform *p, const acp_job_id *id)
{
    if (!p || !id)
        return error_set(ACP_EINVAL, "acp_cancel_job: NULL argument");
    acp_job_status previous;
    acp_layout layout;
    char queue[ACP_QUEUE_ID_MAX + 1];
    int rc = store_cancel_in(p->store, id, &previous, &layout, queue);
    if (rc)
        return rc;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    if (previous == ACP_STATUS_IN_PROGRESS) {
        /* Whoever runs it hears the notification; when it is this process,
         * there is no need to wait for it. */
        running_signal(p, id, ACP_CANCEL_REQUESTED);
        log_info(&p->log, "job %s: cancellation requested; its run is asked to stop", hex);
        return 0;
    }
    atomic_fetch_add(&p->cancelled, 1);
    metrics_job_named(p->metrics, queue, METRICS_CANCELLED);
    log_info(&p->log, "job %s: cancelled before it ran", hex);
    /* Services sharing the bucket know no cancelled status: it reads failed. */
    if (layout == ACP_LAYOUT_LCP &&
        objects_touch(p->objects, id, workspace_flag(ACP_STATUS_CANCELLED)) != 0)
        log_warn(&p->log, "job %s: setting %s: %s", hex, workspace_flag(ACP_STATUS_CANCELLED),
                 acp_last_error());
    return 0;
}
