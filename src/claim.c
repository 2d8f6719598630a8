/* Arbitration between services that share a bucket but not a database.
 *
 * S3 has no compare-and-swap (and libs3 2.0 no conditional PUT), so a
 * service that wants to create a workspace, or to take over an expired one,
 * first puts a marker ".claim-<generation>-<instance>", then lists the
 * markers of that generation. It goes ahead only when its marker is the
 * only one AND the workspace is still in the state it started from; the
 * winner removes the state that made the claim possible (".expired", or the
 * absence of ".workspace") before it removes its marker. With read-after-
 * write consistent listings (radosgw, and AWS S3 since 2020) two claimants
 * can therefore never both win: whoever lists second sees the first one's
 * marker, or the changed state. When both list before either decides, both
 * see two markers: both step back, wait a random moment and try again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "claim.h"
#include "clock.h"
#include "error.h"
#include "platform_state.h"
#include "workspace.h"

#define CLAIM_ATTEMPTS 6
/* A claim holds its marker from its PUT until the new workspace state is
 * written, inputs included: seconds, normally. A marker older than this was
 * left by a process that stopped mid-claim; counted as a rival, it would
 * block the job for ever. Ages are differences between LastModified times of
 * one listing, all stamped by the S3 server, so the local clock does not
 * matter. A claim slower than this (inputs that take minutes to upload) can
 * be overtaken: docs/guide.adoc says so. */
#define CLAIM_STALE_SECONDS 60

/* The generation a claim is about: "new" for a workspace that does not
 * exist, "x<mtime of .expired>" for an expired one. */
static bool observe(const object_list *list, char *generation, size_t size)
{
    acp_job state = {0};
    if (!workspace_status_from_flags(list, &state)) {
        snprintf(generation, size, "new");
        return true;
    }
    int64_t expired = workspace_expired_since(list);
    if (expired >= 0) {
        snprintf(generation, size, "x%lld", (long long)(expired / 1000000));
        return true;
    }
    return false;
}

static unsigned stale_seconds(const acp_platform *p)
{
    return p->claim_stale_seconds ? p->claim_stale_seconds : CLAIM_STALE_SECONDS;
}

/* Count the markers of @generation other than @marker in @list, leaving
 * out the stale ones (of any generation), whose names go to @stale (owned
 * by the caller) for removal. */
static int count_rivals(const acp_platform *p, const object_list *list, const char *marker,
                        const char *generation, char ***stale, size_t *stale_count)
{
    int64_t own = -1;
    for (size_t i = 0; i < list->count; i++)
        if (strcmp(list->items[i].name, marker) == 0)
            own = list->items[i].mtime;
    int64_t bound = (int64_t)stale_seconds(p) * 1000000;
    int rivals = 0;
    *stale = NULL;
    *stale_count = 0;
    for (size_t i = 0; i < list->count; i++) {
        const object_entry *e = &list->items[i];
        if (!workspace_is_claim(e->name) || strcmp(e->name, marker) == 0)
            continue;
        /* Without our own marker in the listing there is no server time to
         * judge by: everyone counts. */
        if (own >= 0 && own - e->mtime > bound) {
            char **grown = realloc(*stale, (*stale_count + 1) * sizeof *grown);
            char *name = grown ? strdup(e->name) : NULL;
            if (grown)
                *stale = grown;
            if (name) {
                grown[(*stale_count)++] = name;
                continue;
            }
        }
        if (workspace_claim_of(e->name, generation))
            rivals++;
    }
    return rivals;
}

static void remove_stale(acp_platform *p, const acp_job_id *id, const char *hex, char **stale,
                         size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (objects_delete(p->objects, id, stale[i]) == 0)
            log_warn(&p->log,
                     "job %s: removed the stale claim marker %s, more than %u s older than this "
                     "claim's: left by a process that stopped while claiming the job",
                     hex, stale[i], stale_seconds(p));
        else
            log_warn(&p->log, "job %s: removing the stale claim marker %s: %s", hex, stale[i],
                     acp_last_error());
        free(stale[i]);
    }
    free(stale);
}

static void pause_randomly(void)
{
    acp_job_id noise;
    acp_job_id_generate(&noise);
    clock_sleep_ms(20 + noise.bytes[0] % 200u);
}

int claim_workspace(acp_platform *p, const acp_job_id *id, bool *created, char *marker,
                    size_t marker_size)
{
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(id, hex);
    for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        object_list list;
        int rc = objects_list(p->objects, id, &list);
        if (rc)
            return rc;
        char generation[32];
        bool claimable = observe(&list, generation, sizeof generation);
        acp_job state = {0};
        workspace_status_from_flags(&list, &state);
        object_list_free(&list);
        if (!claimable)
            return error_set(ACP_ECONFLICT,
                             "job %s belongs to another service sharing the bucket (status %s); "
                             "it can be resubmitted here once it has expired",
                             hex, acp_job_status_name(state.status));
        workspace_claim_name(marker, marker_size, generation, p->instance_id);
        if ((rc = objects_put(p->objects, id, marker, "", 0)))
            return rc;

        if ((rc = objects_list(p->objects, id, &list))) {
            objects_delete(p->objects, id, marker);
            return rc;
        }
        char now[32];
        bool unchanged = observe(&list, now, sizeof now) && strcmp(now, generation) == 0;
        char **stale;
        size_t stale_count;
        int rivals = count_rivals(p, &list, marker, generation, &stale, &stale_count);
        object_list_free(&list);
        remove_stale(p, id, hex, stale, stale_count);
        if (unchanged && rivals == 0) {
            *created = strcmp(generation, "new") == 0;
            return 0;
        }
        objects_delete(p->objects, id, marker);
        if (!unchanged)
            continue; /* someone else finished first: the next look says who */
        log_debug(&p->log, "job %s: %d other service(s) claiming it too; trying again", hex,
                  rivals);
        pause_randomly();
    }
    return error_set(ACP_ECONFLICT, "job %s: other services keep claiming it at the same time",
                     hex);
}
