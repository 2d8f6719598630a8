/* The server's executors, chosen by the job config's "executor" member:
 *   sleep     {"seconds": N}: sleeps (capped by executors.sleep.max_seconds)
 *             and writes sleep.json; a cancellation or the job's timeout
 *             ends the sleep (and the job) at once
 *   checksum  {"text": "..."}: writes checksum.json with the SHA-256 and the
 *             byte, line and word counts of the text
 *   command   {"program": NAME, "args": [...]}: runs an allowed program, see
 *             command.h
 * Other members of the config are allowed and ignored (they still make the
 * job id). */
#ifndef SERVER_EXECUTORS_H
#define SERVER_EXECUTORS_H

#include <stddef.h>

#include <async_platform.h>
#include <json-c/json.h>

#include "settings.h"

/* Check a job config at submission time, with the same rules the executor
 * applies when the job runs. Returns 0, or -1 with *field set to the member
 * at fault ("config", "config.executor", "config.seconds", ...) and the
 * reason in @msg. */
int executors_validate(const settings *cfg, json_object *config, const char **field, char *msg,
                       size_t msglen);

/* The factory handed to acp_init(); @cfg must outlive the platform. */
void executors_factory(acp_executor_factory *factory, const settings *cfg);

#endif
