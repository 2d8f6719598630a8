/* The S3 layout of a job's workspace, in one place (docs/compatibility.adoc,
 * S3 layout): the reserved names (the marker, the status flags,
 * "input-config", claim markers), which of them each kind of wipe keeps,
 * and the status the flags give. Names only: reading and writing the
 * objects is objects.c's. */
#ifndef ACP_WORKSPACE_H
#define ACP_WORKSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "objects.h"

/* The marker whose presence means the workspace exists. */
#define WORKSPACE_MARKER ".workspace"
/* The config as compact JSON, in S3 and in the scratch directory. */
#define WORKSPACE_CONFIG "input-config"
/* Claim markers: ".claim-<generation>-<instance>" (see claim.c). */
#define WORKSPACE_CLAIM_PREFIX ".claim-"

/* The flag of @status: ".queued", ".in-progress", ".complete", ".failed",
 * ".expired"; NULL for a value that is no status. */
const char *workspace_flag(acp_job_status status);

/* Any of the five status flags. */
bool workspace_is_flag(const char *name);

/* A claim marker of any generation. */
bool workspace_is_claim(const char *name);

/* Whether @name is a claim marker of @generation (".claim-<generation>-..."). */
bool workspace_claim_of(const char *name, const char *generation);

/* Write the claim marker ".claim-<generation>-<instance>" into @out.
 * Returns false when it does not fit in @size bytes. */
bool workspace_claim_name(char *out, size_t size, const char *generation, const char *instance);

/* Reserved names, never an input or output: the marker, the flags,
 * "input-config" and claim markers. Listings of a job's files leave them
 * out. */
bool workspace_is_reserved(const char *name);

/* What expiring keeps: the marker, the status flags and claims (inputs,
 * outputs and "input-config" go). */
bool workspace_kept_on_expiry(const char *name);

/* What rewriting the workspace for a new run keeps: the marker (so that
 * other services never see it missing), ".expired" (removed last, so that
 * the workspace stays claimable until the new state is complete) and
 * claims. */
bool workspace_kept_on_rerun(const char *name);

/* What a retry of a requeued job keeps before it runs again: the reserved
 * names and the job's @inputs; the rest are results a dead run left. */
bool workspace_kept_on_retry(const char *name, const char *const *inputs, size_t input_count);

/* Status and times of a workspace from its flags and their times, by the
 * flags' precedence: failed > expired > complete > in-progress > queued
 * (queued when there is no flag). The job is marked not owned, without a
 * queue position. Returns false when the listing has no marker (no such
 * workspace). */
bool workspace_status_from_flags(const object_list *list, acp_job *job);

/* The time of ".expired" when the listing shows a workspace with it, else
 * -1: an expired workspace whatever other flags say (".failed" beside
 * ".expired" reads failed, yet the results are gone and no new run has
 * begun, since every new run removes ".expired"). */
int64_t workspace_expired_since(const object_list *list);

#endif
