#include "command.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double command_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void command_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Open a result file in the scratch directory for the child's @target fd. */
static int command_open_output(acp_job_context *ctx, const char *name, char *msg, size_t msglen)
{
    if (acp_job_add_output(ctx, name) != 0) {
        snprintf(msg, msglen, "cannot keep %s: %s", name, acp_last_error());
        return -1;
    }
    int fd = openat(ctx->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        snprintf(msg, msglen, "cannot create %s: %s", name, strerror(errno));
    return fd;
}

/* Wait for @pid, killing its process group at @deadline (0: never). Returns
 * the wait status; *timed_out tells whether it was killed for time. */
static int command_wait(pid_t pid, double deadline, int *timed_out)
{
    long pause_ms = 1;
    *timed_out = 0;
    for (;;) {
        /* WNOWAIT leaves the child a zombie, so its pid (the group id) cannot
         * be reused before the group is killed below. */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
        if ((r == 0 && info.si_pid == pid) || (r < 0 && errno != EINTR))
            break;
        if (deadline > 0 && command_now() >= deadline && !*timed_out) {
            kill(-pid, SIGKILL);
            *timed_out = 1;
        }
        /* Short first pauses so that quick programs finish quickly; a
         * long-running one costs at most 20 wake-ups a second. */
        command_sleep_ms(pause_ms);
        if (pause_ms < 50)
            pause_ms *= 2;
    }
    /* Whatever the program left running in its group goes with it. */
    kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int command_run(const settings *cfg, acp_job_context *ctx, const settings_program *prog,
                const char *const *args, size_t argc, char *msg, size_t msglen)
{
    int out_fd = command_open_output(ctx, "stdout.txt", msg, msglen);
    if (out_fd < 0)
        return -1;
    int err_fd = command_open_output(ctx, "stderr.txt", msg, msglen);
    if (err_fd < 0) {
        close(out_fd);
        return -1;
    }

    const char *base = strrchr(prog->path, '/');
    char **argv = calloc(argc + 2, sizeof *argv);
    char home[ACP_PATH_MAX + 16], tmpdir[ACP_PATH_MAX + 16];
    snprintf(home, sizeof home, "HOME=%s", ctx->dir);
    snprintf(tmpdir, sizeof tmpdir, "TMPDIR=%s", ctx->dir);
    /* A clean environment: nothing of the server's (credentials!) leaks in. */
    char *envp[] = {(char *)"PATH=/usr/local/bin:/usr/bin:/bin", (char *)"LC_ALL=C", home, tmpdir,
                    NULL};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int actions_ok = posix_spawn_file_actions_init(&actions) == 0;
    int attr_ok = posix_spawnattr_init(&attr) == 0;
    int rc = ENOMEM;
    if (argv && actions_ok && attr_ok) {
        argv[0] = (char *)(base ? base + 1 : prog->path);
        for (size_t i = 0; i < argc; i++)
            argv[i + 1] = (char *)args[i];
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        /* The server blocks SIGINT/SIGTERM and ignores SIGPIPE; the child
         * starts with neither, in a process group of its own so that a
         * timeout kills everything it started. */
        rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                 POSIX_SPAWN_SETPGROUP);
        if (!rc)
            rc = posix_spawnattr_setsigmask(&attr, &none);
        if (!rc)
            rc = posix_spawnattr_setsigdefault(&attr, &all);
        if (!rc)
            rc = posix_spawnattr_setpgroup(&attr, 0);
        if (!rc)
            rc = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
        if (!rc)
            rc = posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
        if (!rc)
            rc = posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
        if (!rc)
            rc = posix_spawn_file_actions_addchdir_np(&actions, ctx->dir);
        /* The server's sockets (database, S3, clients) must not leak in. */
        if (!rc)
            rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    }
    pid_t pid = -1;
    if (!rc)
        rc = posix_spawn(&pid, prog->path, &actions, &attr, argv, envp);
    if (actions_ok)
        posix_spawn_file_actions_destroy(&actions);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    free(argv);
    close(out_fd);
    close(err_fd);
    if (rc) {
        snprintf(msg, msglen, "cannot run %s: %s", prog->path, strerror(rc));
        return -1;
    }

    double timeout = cfg->command_timeout_seconds;
    int timed_out;
    int status = command_wait(pid, timeout > 0 ? command_now() + timeout : 0, &timed_out);
    if (timed_out) {
        snprintf(msg, msglen, "'%s' timed out after %g s and was killed", prog->name, timeout);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        snprintf(msg, msglen, "'%s' exited with status %d (see stderr.txt)", prog->name,
                 WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(msg, msglen, "'%s' was killed by signal %d (%s)", prog->name, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(msg, msglen, "'%s' ended with wait status %d", prog->name, status);
    return -1;
}
