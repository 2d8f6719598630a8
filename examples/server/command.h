/* The command executor: runs one program of the operator's allowlist
 * (executors.command.programs) with the job's string arguments, never
 * through a shell: posix_spawn of the configured absolute path, a clean
 * environment, the job's scratch directory as working directory, stdin from
 * /dev/null, stdout and stderr into the result files stdout.txt and
 * stderr.txt, its own process group, killed after
 * executors.command.timeout_seconds. */
#ifndef SERVER_COMMAND_H
#define SERVER_COMMAND_H

#include <stddef.h>

#include <async_platform.h>

#include "settings.h"

/* Run @prog with @args (@argc strings). Returns 0 when it exited with status
 * 0; otherwise -1 with the reason in @msg. */
int command_run(const settings *cfg, acp_job_context *ctx, const settings_program *prog,
                const char *const *args, size_t argc, char *msg, size_t msglen);

#endif
