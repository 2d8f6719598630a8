/* objects_retry.c: retries, back-off and patience of S3 requests (see
 * objects_retry.h). */
#include "objects_retry.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"

/* The patience of this thread's calls (objects_patience_begin): while
 * active, transient failures are retried until the budget has passed since
 * the request first failed, not just OBJECTS_RETRIES times. A result upload
 * outlives a radosgw restart this way; a request made for an HTTP client
 * keeps failing fast. */
typedef struct objects_patience {
    bool active;
    unsigned seconds;
    const atomic_bool *cancel;
    struct timespec since; /* CLOCK_MONOTONIC, the request's first failure */
    bool exhausted;        /* the last request failed past the budget */
    bool cancelled;        /* ... or gave up because *cancel was raised */
} objects_patience;

static _Thread_local objects_patience objects_patient;

void objects_patience_begin(unsigned seconds, const atomic_bool *cancel)
{
    objects_patient = (objects_patience){.active = true, .seconds = seconds, .cancel = cancel};
}

void objects_patience_end(void)
{
    objects_patient = (objects_patience){0};
}

/* A number drawn from 0..@n, different in each thread and call. */
static unsigned objects_random_below(unsigned n, int attempt)
{
    unsigned seed = (unsigned)(uintptr_t)&objects_patient ^ (unsigned)attempt * 2654435761u;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    seed ^= (unsigned)now.tv_nsec;
    return (unsigned)rand_r(&seed) % (n + 1);
}

/* base x 2^attempt, at most @max. */
static unsigned objects_ceiling(unsigned base, unsigned max, int attempt)
{
    uint64_t ceiling = (uint64_t)base << (attempt > 20 ? 20 : attempt);
    return ceiling > max ? max : (unsigned)ceiling;
}

/* Patience: exponential back-off from 100 ms up to 8 s, each delay drawn
 * from its upper half so that workers retrying together spread out while
 * the budget is used evenly. */
static unsigned objects_patient_delay(int attempt)
{
    unsigned ceiling = objects_ceiling(100, 8000, attempt);
    return ceiling / 2 + objects_random_below(ceiling / 2, attempt);
}

unsigned objects_retry_delay_ms(const acp_s3_client_config *client, int attempt)
{
    return objects_random_below(
        objects_ceiling(client->retry_base_ms, client->retry_max_ms, attempt), attempt);
}

bool objects_retry_again(const transport *t, const logger *log, const acp_s3_client_config *client,
                         const transport_outcome *outcome, int attempt, const char *method,
                         const char *key)
{
    objects_patience *patience = &objects_patient;
    if (attempt == 0) {
        patience->exhausted = patience->cancelled = false;
        clock_gettime(CLOCK_MONOTONIC, &patience->since);
    }
    if (outcome->result == TRANSPORT_OK || !transport_retryable(outcome->result))
        return false;
    if (patience->active) {
        int64_t elapsed = clock_elapsed_ms(&patience->since);
        if (elapsed >= (int64_t)patience->seconds * 1000) {
            patience->exhausted = true;
            return false;
        }
        unsigned ms = objects_patient_delay(attempt);
        if (attempt == 0)
            log_warn(log, "S3 %s: %s %s/%s failed (%s); retrying for up to %u s", t->endpoint,
                     method, t->bucket, key, outcome->detail, patience->seconds);
        else if (attempt % 10 == 0)
            log_warn(log, "S3 %s: %s %s/%s still failing after %" PRId64 " s (%s)", t->endpoint,
                     method, t->bucket, key, elapsed / 1000, outcome->detail);
        if (!clock_sleep_unless(ms, patience->cancel)) {
            patience->cancelled = true;
            return false;
        }
        return true;
    }
    if (attempt >= (int)client->retries)
        return false;
    unsigned ms = objects_retry_delay_ms(client, attempt);
    log_warn(log, "S3 %s: %s %s/%s failed (%s); retry %d of %u in %u ms", t->endpoint, method,
             t->bucket, key, outcome->detail, attempt + 1, client->retries, ms);
    clock_sleep_unless(ms, NULL);
    return true;
}

int objects_retry_fail(const transport *t, const transport_outcome *outcome, const char *method,
                       const char *key)
{
    const char *endpoint = t->endpoint, *bucket = t->bucket, *detail = outcome->detail;
    if (objects_patient.cancelled)
        return error_set(ACP_ESHUTDOWN,
                         "S3 %s: %s %s/%s: given up while failing (%s): shutting down", endpoint,
                         method, bucket, key, detail);
    if (objects_patient.exhausted)
        return error_set(ACP_ESTORAGE, "S3 %s unreachable for %u s: %s %s/%s: %s", endpoint,
                         objects_patient.seconds, method, bucket, key, detail);
    switch (outcome->result) {
    case TRANSPORT_NOT_FOUND:
        if (strcmp(outcome->code, "NoSuchBucket") == 0)
            return error_set(ACP_ENOTFOUND, "S3 %s: bucket '%s' does not exist (%s %s)", endpoint,
                             bucket, method, key);
        return error_set(ACP_ENOTFOUND, "S3 %s: %s %s/%s: not found (%s)", endpoint, method, bucket,
                         key, detail);
    case TRANSPORT_DENIED:
        return error_set(ACP_ESTORAGE, "S3 %s: %s %s/%s: access denied (%s)", endpoint, method,
                         bucket, key, detail);
    case TRANSPORT_UNREACHABLE:
        return error_set(ACP_ESTORAGE, "S3 %s: could not connect (%s %s/%s: %s)", endpoint, method,
                         bucket, key, detail);
    case TRANSPORT_NO_MEMORY:
        return error_set(ACP_ENOMEM, "S3 %s: %s %s/%s: out of memory", endpoint, method, bucket,
                         key);
    default:
        return error_set(ACP_ESTORAGE, "S3 %s: %s %s/%s: %s", endpoint, method, bucket, key,
                         detail);
    }
}
