/* The command executor: runs one program of the operator's allowlist
 * (executors.command.programs) with the job's string arguments (those that
 * start with '-' only when the allowlist names them), never through a shell:
 * under bubblewrap (new mount, PID, network, IPC and UTS namespaces, /usr
 * read-only, the scratch directory as /job, a private /tmp), as another
 * user when the server is root, with resource limits (setrlimit), a clean
 * environment, stdin from /dev/null, stdout and stderr through pipes into
 * the result files stdout.txt and stderr.txt and, line by line as they are
 * written, into the job's log (cmdout.h). After
 * executors.command.timeout_seconds, when the job is cancelled or runs out
 * of its timeout_seconds (the context's cancel descriptor), or when its
 * stdout or stderr passes executors.command.max_file_bytes, its process
 * group gets SIGTERM, then SIGKILL a grace period later, and whatever it
 * started goes with it.
 * docs/http-api.adoc, "The command executor's sandbox", says what this
 * guarantees and what it does not. */
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
