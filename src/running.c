/* The jobs this process runs now, from their claim until their run is
 * recorded or given up: the only leases it renews (acp_platform.running,
 * under the platform's lock). */
#include "running.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "platform_state.h"

int running_add(acp_platform *p, const acp_job_id *id)
{
    int rc = 0;
    pthread_mutex_lock(&p->lock);
    if (p->running_count == p->running_size) {
        size_t size = p->running_size ? p->running_size * 2 : 8;
        acp_job_id *grown = realloc(p->running, size * sizeof *grown);
        if (grown) {
            p->running = grown;
            p->running_size = size;
        } else {
            rc = error_set(ACP_ENOMEM, "out of memory");
        }
    }
    if (!rc)
        p->running[p->running_count++] = *id;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void running_remove(acp_platform *p, const acp_job_id *id)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->running_count; i++)
        if (memcmp(p->running[i].bytes, id->bytes, sizeof id->bytes) == 0) {
            p->running[i] = p->running[--p->running_count];
            break;
        }
    pthread_mutex_unlock(&p->lock);
}

int running_copy(acp_platform *p, acp_job_id **ids, size_t *count)
{
    int rc = 0;
    *ids = NULL;
    pthread_mutex_lock(&p->lock);
    *count = p->running_count;
    if (*count) {
        *ids = malloc(*count * sizeof **ids);
        if (*ids)
            memcpy(*ids, p->running, *count * sizeof **ids);
        else
            rc = error_set(ACP_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&p->lock);
    if (rc)
        *count = 0;
    return rc;
}
