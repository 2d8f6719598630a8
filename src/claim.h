/* Who may create, or take over an expired, shared workspace. */
#ifndef ACP_CLAIM_H
#define ACP_CLAIM_H

#include <stdbool.h>
#include <stddef.h>

#include "async_platform.h"

/* Win the right to (re)create the job's workspace: it must not exist, or be
 * expired. On 0 the claim marker's name is in @marker (delete it once the
 * workspace's new state is written) and *@created tells whether there was no
 * workspace at all. ACP_ECONFLICT when another service owns the job or wins
 * the claim. */
int claim_workspace(acp_platform *p, const acp_job_id *id, bool *created, char *marker,
                    size_t marker_size);

#endif
