#include "command.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmdout.h"

/* The only path inside the sandbox that is the job's: its scratch directory. */
#define COMMAND_JOB_DIR "/job"
#define COMMAND_PATH    "PATH=/usr/local/bin:/usr/bin:/bin"

static double command_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The grace a program gets between SIGTERM and SIGKILL: shorter than the
 * platform's cancel_grace_seconds (10 s by default), so that the program is
 * gone and the executor has returned before the platform gives up on it. */
#define COMMAND_KILL_GRACE_SECONDS 5.0

/* Why command_wait stopped the program. */
typedef enum command_stop {
    COMMAND_RAN,           /* it ended by itself */
    COMMAND_OWN_LIMIT,     /* executors.command.timeout_seconds */
    COMMAND_JOB_TIMED_OUT, /* the job's timeout_seconds (acp_job_cancelled) */
    COMMAND_JOB_CANCELLED, /* acp_cancel_job() */
    COMMAND_OUTPUT_LIMIT,  /* a result file reached executors.command.max_file_bytes */
} command_stop;

static double command_grace(const settings *cfg)
{
    double grace = COMMAND_KILL_GRACE_SECONDS;
    /* Half the platform's grace when an operator set it shorter. */
    if (cfg->cancel_grace_seconds != SETTINGS_UNSET && cfg->cancel_grace_seconds < 2 * grace)
        grace = (double)cfg->cancel_grace_seconds / 2;
    return grace;
}

/* Open a result file in the scratch directory for the child's @target fd. */
static int command_open_output(acp_job_context *ctx, const char *name, char *msg, size_t msglen)
{
    if (acp_job_add_output(ctx, name) != 0) {
        snprintf(msg, msglen, "cannot keep %s: %s", name, acp_last_error());
        return -1;
    }
    int fd = openat(ctx->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        char reason[128];
        snprintf(msg, msglen, "cannot create %s: %s", name,
                 strerror_r(errno, reason, sizeof reason));
    }
    return fd;
}

/* A process and its parent, from /proc/<pid>/stat. */
typedef struct command_proc {
    pid_t pid, ppid;
    int mark;
} command_proc;

/* Send @sig to every descendant of @root, not to @root. In the sandbox
 * @root is bubblewrap, which does not pass signals on: a SIGTERM to it ends
 * it, and the kernel then kills the sandbox's processes without a chance to
 * clean up. The program itself is its descendant (in the host's PID
 * namespace too), and so is whatever it started, also with setsid(). */
static void command_signal_descendants(pid_t root, int sig)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return;
    command_proc *all = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        char path[300], text[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "%s/stat", e->d_name);
        int fd = openat(dirfd(proc), path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, text, sizeof text - 1);
        close(fd);
        if (len <= 0)
            continue;
        text[len] = '\0';
        /* "pid (comm) state ppid ...": comm may hold anything but ends at
         * the last ')'. */
        char *paren = strrchr(text, ')');
        int ppid;
        if (!paren || sscanf(paren + 1, " %*c %d", &ppid) != 1)
            continue;
        if (n == cap) {
            size_t grown_cap = cap ? cap * 2 : 256;
            command_proc *grown = realloc(all, grown_cap * sizeof *grown);
            if (!grown)
                break;
            all = grown;
            cap = grown_cap;
        }
        all[n++] = (command_proc){(pid_t)atoi(e->d_name), (pid_t)ppid, 0};
    }
    closedir(proc);
    /* Mark generation by generation until none is added. */
    for (int added = 1; added;) {
        added = 0;
        for (size_t i = 0; i < n; i++) {
            if (all[i].mark)
                continue;
            int parent_marked = all[i].ppid == root;
            for (size_t j = 0; j < n && !parent_marked; j++)
                parent_marked = all[j].mark && all[j].pid == all[i].ppid;
            if (parent_marked)
                all[i].mark = added = 1;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (all[i].mark)
            kill(all[i].pid, sig);
    free(all);
}

/* How long the output pipes are still read after the program ended: a
 * process it left behind (outside the sandbox) may hold them open. */
#define COMMAND_DRAIN_SECONDS 2.0

/* Wait for @pid while passing its output on (@out). At @deadline (0:
 * never), when it writes more than a result file may hold, or when the job
 * is cancelled or runs out of its time (acp_job_cancel_fd), send its
 * process group SIGTERM (@sandboxed: @pid's descendants, see
 * command_signal_descendants), and SIGKILL @grace seconds later if it is
 * still there. Returns the wait status; *stop says why it was stopped. */
static int command_wait(pid_t pid, int sandboxed, acp_job_context *ctx, cmdout *out,
                        double deadline, double grace, command_stop *stop)
{
    int cancel_fd = acp_job_cancel_fd(ctx);
    long pause_ms = 1;
    double kill_at = 0; /* when SIGKILL is due; 0: not (or no longer) */
    const char *file;
    *stop = COMMAND_RAN;
    for (;;) {
        /* WNOWAIT leaves the child a zombie, so its pid (the group id) cannot
         * be reused before the group is killed below. */
        siginfo_t info;
        memset(&info, 0, sizeof info);
        int r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
        if ((r == 0 && info.si_pid == pid) || (r < 0 && errno != EINTR))
            break;
        double now = command_now();
        if (*stop == COMMAND_RAN) {
            int why = acp_job_cancelled(ctx);
            *stop = why == ACP_CANCEL_REQUESTED       ? COMMAND_JOB_CANCELLED
                    : why == ACP_CANCEL_TIMEOUT       ? COMMAND_JOB_TIMED_OUT
                    : deadline > 0 && now >= deadline ? COMMAND_OWN_LIMIT
                    : cmdout_over(out, &file)         ? COMMAND_OUTPUT_LIMIT
                                                      : COMMAND_RAN;
            if (*stop != COMMAND_RAN) {
                if (sandboxed)
                    command_signal_descendants(pid, SIGTERM);
                else
                    kill(-pid, SIGTERM);
                kill_at = now + grace;
            }
        } else if (kill_at > 0 && now >= kill_at) {
            kill(-pid, SIGKILL);
            kill_at = 0;
        }
        /* Short first pauses so that quick programs finish quickly; a
         * long-running one costs at most 20 wake-ups a second. Until the
         * program is told to stop, the cancel descriptor ends the pause at
         * once; after, it stays readable and is left out. Output ends it
         * too, so that it reaches the log as it is written. poll() measures
         * its timeout on the monotonic clock. */
        int fds[2];
        cmdout_poll_fds(out, fds);
        struct pollfd pfd[3] = {
            {.fd = *stop == COMMAND_RAN ? cancel_fd : -1, .events = POLLIN},
            {.fd = fds[0], .events = POLLIN},
            {.fd = fds[1], .events = POLLIN},
        };
        int n = poll(pfd, 3, (int)pause_ms);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            cmdout_pump(out, (short[2]){pfd[1].revents, pfd[2].revents});
        if (pause_ms < 50)
            pause_ms *= 2;
    }
    /* Whatever the program left running in its group goes with it. Inside
     * the sandbox, bubblewrap's process is the parent of the PID namespace's
     * first process, which dies with it (--die-with-parent), and the kernel
     * kills every process of a namespace whose first process ends: so a
     * program that left the group with setsid() goes too. */
    kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    /* What is still in the pipes. */
    double until = command_now() + COMMAND_DRAIN_SECONDS;
    while (cmdout_open(out)) {
        double left = until - command_now();
        if (left <= 0)
            break;
        int fds[2];
        cmdout_poll_fds(out, fds);
        struct pollfd pfd[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        int n = poll(pfd, 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR)
            break;
        if (n > 0)
            cmdout_pump(out, (short[2]){pfd[0].revents, pfd[1].revents});
    }
    return status;
}

/* ---- the child's command line -------------------------------------------- */

typedef struct command_line {
    char **argv;
    size_t count, size;
    char **owned; /* strings allocated here */
    size_t owned_count;
    int failed;
} command_line;

static void command_add(command_line *cl, const char *arg)
{
    if (cl->failed)
        return;
    if (cl->count + 2 > cl->size) {
        size_t size = cl->size ? cl->size * 2 : 64;
        char **grown = realloc(cl->argv, size * sizeof *grown);
        if (!grown) {
            cl->failed = 1;
            return;
        }
        cl->argv = grown;
        cl->size = size;
    }
    cl->argv[cl->count++] = (char *)arg;
    cl->argv[cl->count] = NULL;
}

static void command_addf(command_line *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void command_addf(command_line *cl, const char *fmt, ...)
{
    char **grown = realloc(cl->owned, (cl->owned_count + 1) * sizeof *grown);
    char *text = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = grown ? vasprintf(&text, fmt, ap) : -1;
    va_end(ap);
    if (grown)
        cl->owned = grown;
    if (n < 0) {
        cl->failed = 1;
        return;
    }
    cl->owned[cl->owned_count++] = text;
    command_add(cl, text);
}

static void command_line_free(command_line *cl)
{
    for (size_t i = 0; i < cl->owned_count; i++)
        free(cl->owned[i]);
    free(cl->owned);
    free(cl->argv);
}

/* bubblewrap's options: new PID, network, IPC, UTS and cgroup namespaces
 * (and a user namespace when the server is not root), a root of /usr read-only plus what programs
 * need to start, a private /proc (the server's /proc/<pid> is not there), /dev with the harmless
 * nodes, a size-limited private /tmp, the scratch directory as /job, and only the environment set
 * here. */
static void command_sandbox_args(const settings *cfg, command_line *cl, const char *dir)
{
    static const char *const fixed[] = {"--die-with-parent",
                                        "--new-session",
                                        "--unshare-pid",
                                        "--unshare-net",
                                        "--unshare-ipc",
                                        "--unshare-uts",
                                        "--unshare-cgroup-try",
                                        "--ro-bind",
                                        "/usr",
                                        "/usr",
                                        "--symlink",
                                        "usr/bin",
                                        "/bin",
                                        "--symlink",
                                        "usr/sbin",
                                        "/sbin",
                                        "--symlink",
                                        "usr/lib",
                                        "/lib",
                                        "--symlink",
                                        "usr/lib64",
                                        "/lib64",
                                        "--ro-bind-try",
                                        "/etc/ld.so.cache",
                                        "/etc/ld.so.cache",
                                        "--ro-bind-try",
                                        "/etc/alternatives",
                                        "/etc/alternatives",
                                        "--ro-bind-try",
                                        "/etc/localtime",
                                        "/etc/localtime",
                                        "--proc",
                                        "/proc",
                                        "--dev",
                                        "/dev",
                                        "--chdir",
                                        COMMAND_JOB_DIR,
                                        "--clearenv",
                                        "--setenv",
                                        "PATH",
                                        "/usr/local/bin:/usr/bin:/bin",
                                        "--setenv",
                                        "LC_ALL",
                                        "C",
                                        "--setenv",
                                        "HOME",
                                        COMMAND_JOB_DIR,
                                        "--setenv",
                                        "TMPDIR",
                                        "/tmp",
                                        NULL};
    command_add(cl, cfg->command_bwrap);
    for (const char *const *a = fixed; *a; a++)
        command_add(cl, *a);
    command_add(cl, "--size");
    command_addf(cl, "%ld", cfg->command_tmp_bytes);
    command_add(cl, "--tmpfs");
    command_add(cl, "/tmp");
    command_add(cl, "--bind");
    command_add(cl, dir);
    command_add(cl, COMMAND_JOB_DIR);
    if (geteuid() == 0) {
        /* As root, bubblewrap keeps no user namespace of its own: setpriv
         * then becomes a real other user, so that the process limit applies
         * (the kernel exempts root from it) and nothing of root's is
         * reachable. */
        command_add(cl, "--cap-add");
        command_add(cl, "CAP_SETUID");
        command_add(cl, "--cap-add");
        command_add(cl, "CAP_SETGID");
        command_add(cl, "--");
        command_add(cl, "/usr/bin/setpriv");
        command_addf(cl, "--reuid=%ld", cfg->command_run_as_uid);
        command_addf(cl, "--regid=%ld", cfg->command_run_as_uid);
        command_add(cl, "--clear-groups");
        command_add(cl, "--inh-caps=-all");
        command_add(cl, "--no-new-privs");
    } else {
        command_add(cl, "--unshare-user");
        command_add(cl, "--uid");
        command_add(cl, "65534");
        command_add(cl, "--gid");
        command_add(cl, "65534");
    }
    command_add(cl, "--");
}

/* Hand the scratch directory and the files the platform put there
 * (input-config, inputs) to the user the program runs as. */
static int command_give_dir(int dir_fd, uid_t uid)
{
    if (fchown(dir_fd, uid, uid) != 0)
        return -1;
    int fd = dup(dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    rewinddir(dir); /* the duplicate shares the descriptor's offset */
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(dir)) != NULL)
        if (e->d_name[0] != '.' || (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0))
            rc = fchownat(dir_fd, e->d_name, uid, uid, AT_SYMLINK_NOFOLLOW);
    closedir(dir);
    return rc;
}

/* ---- the child ----------------------------------------------------------- */

/* prlimit(1) sets the limits on itself and then executes the rest of the
 * command line: the limits hold from the first instruction of bubblewrap
 * (or the program) on, and this process never changes its own. */
static void command_limit_args(const settings *cfg, command_line *cl)
{
    command_add(cl, PROGRAMS_PRLIMIT);
    command_addf(cl, "--cpu=%ld:%ld", cfg->command_max_cpu_seconds, cfg->command_max_cpu_seconds);
    command_addf(cl, "--fsize=%ld:%ld", cfg->command_max_file_bytes, cfg->command_max_file_bytes);
    command_addf(cl, "--as=%ld:%ld", cfg->command_max_memory_bytes, cfg->command_max_memory_bytes);
    command_addf(cl, "--nofile=%ld:%ld", cfg->command_max_open_files, cfg->command_max_open_files);
    command_add(cl, "--core=0:0");
    /* The process limit counts every process of the user: as root it only
     * bites once setpriv has changed user; as another user, unsandboxed or
     * not, it would count the server's own threads. */
    if (cfg->command_sandbox && geteuid() == 0)
        command_addf(cl, "--nproc=%ld:%ld", cfg->command_max_processes, cfg->command_max_processes);
    command_add(cl, "--");
}

/* The job's log, for cmdout: best effort, as a log cannot fail the job. */
static int command_log(void *userdata, const void *data, size_t len)
{
    return acp_job_log_write(userdata, data, len);
}

static pid_t command_spawn(int dir_fd, int out_fd, int err_fd, char *const argv[],
                           char *const envp[], int *err)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int actions_ok = posix_spawn_file_actions_init(&actions) == 0;
    int attr_ok = posix_spawnattr_init(&attr) == 0;
    int rc = actions_ok && attr_ok ? 0 : ENOMEM;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    /* The server blocks SIGINT/SIGTERM and ignores SIGPIPE; the child starts
     * with neither, in a process group of its own. */
    if (!rc)
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
    /* By descriptor: the path is not looked up again. */
    if (!rc && dir_fd >= 0)
        rc = posix_spawn_file_actions_addfchdir_np(&actions, dir_fd);
    /* The server's sockets (database, S3, clients) must not leak in. */
    if (!rc)
        rc = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid = -1;
    if (!rc)
        rc = posix_spawn(&pid, argv[0], &actions, &attr, argv, envp);
    if (actions_ok)
        posix_spawn_file_actions_destroy(&actions);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    *err = rc;
    return rc ? -1 : pid;
}

int command_run(const settings *cfg, acp_job_context *ctx, const settings_program *prog,
                const char *const *args, size_t argc, char *msg, size_t msglen)
{
    for (size_t i = 0; i < argc; i++)
        if (!programs_arg_allowed(prog, args[i])) {
            snprintf(msg, msglen, "args[%zu]: option '%s' is not allowed for '%s'", i, args[i],
                     prog->name);
            return -1;
        }
    int out_file = command_open_output(ctx, "stdout.txt", msg, msglen);
    if (out_file < 0)
        return -1;
    int err_file = command_open_output(ctx, "stderr.txt", msg, msglen);
    if (err_file < 0) {
        close(out_file);
        return -1;
    }
    /* Pipes rather than the files themselves, so that the output reaches
     * the job's log while the program runs. */
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    cmdout out;
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
        char reason[128];
        snprintf(msg, msglen, "cannot make a pipe: %s", strerror_r(errno, reason, sizeof reason));
        for (int i = 0; i < 2; i++) {
            if (out_pipe[i] >= 0)
                close(out_pipe[i]);
            if (err_pipe[i] >= 0)
                close(err_pipe[i]);
        }
        close(out_file);
        close(err_file);
        return -1;
    }
    if (cmdout_init(&out, out_pipe[0], err_pipe[0], out_file, err_file,
                    (uint64_t)cfg->command_max_file_bytes, command_log, ctx) != 0) {
        close(out_pipe[1]);
        close(err_pipe[1]);
        snprintf(msg, msglen, "out of memory");
        return -1;
    }

    command_line cl = {0};
    char *home = NULL, *tmpdir = NULL;
    command_limit_args(cfg, &cl);
    if (cfg->command_sandbox)
        command_sandbox_args(cfg, &cl, ctx->dir);
    command_add(&cl, prog->path);
    for (size_t i = 0; i < argc; i++)
        command_add(&cl, args[i]);
    /* A clean environment: nothing of the server's (credentials!) leaks in,
     * not even to bubblewrap, whose environment its first process keeps. */
    int have_env = asprintf(&home, "HOME=%s", ctx->dir) >= 0;
    have_env = asprintf(&tmpdir, "TMPDIR=%s", ctx->dir) >= 0 && have_env;
    char *sandbox_env[] = {(char *)COMMAND_PATH, NULL};
    char *plain_env[] = {(char *)COMMAND_PATH, (char *)"LC_ALL=C", home, tmpdir, NULL};

    pid_t pid = -1;
    int err = ENOMEM;
    if (!cl.failed && have_env) {
        /* The sandbox needs the scratch directory writable by the user the
         * program runs as. */
        if (cfg->command_sandbox && geteuid() == 0 &&
            command_give_dir(ctx->dir_fd, (uid_t)cfg->command_run_as_uid) != 0)
            err = errno;
        else
            pid = command_spawn(cfg->command_sandbox ? -1 : ctx->dir_fd, out_pipe[1], err_pipe[1],
                                cl.argv, cfg->command_sandbox ? sandbox_env : plain_env, &err);
    }
    command_line_free(&cl);
    free(home);
    free(tmpdir);
    /* The child has its copies: the pipes end when it (and whatever it
     * started) closes them. */
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (pid < 0) {
        cmdout_finish(&out);
        char reason[128];
        snprintf(msg, msglen, "cannot run %s: %s", prog->path,
                 strerror_r(err, reason, sizeof reason));
        return -1;
    }

    double timeout = cfg->command_timeout_seconds;
    double grace = command_grace(cfg);
    command_stop stop;
    int status = command_wait(pid, cfg->command_sandbox, ctx, &out,
                              timeout > 0 ? command_now() + timeout : 0, grace, &stop);
    cmdout_finish(&out);
    const char *file = NULL;
    int write_error = cmdout_write_error(&out, &file);
    /* bubblewrap exits with 128 + the signal that ended the program. */
    int sig = WIFSIGNALED(status) ? WTERMSIG(status)
              : cfg->command_sandbox && WIFEXITED(status) && WEXITSTATUS(status) > 128
                  ? WEXITSTATUS(status) - 128
                  : 0;
    const char *how = sig == SIGKILL ? "killed (SIGKILL)" : "stopped (SIGTERM)";
    switch (stop) {
    case COMMAND_OWN_LIMIT:
        snprintf(msg, msglen, "'%s' timed out after %g s and was %s", prog->name, timeout, how);
        return -1;
    case COMMAND_JOB_TIMED_OUT:
        snprintf(msg, msglen, "'%s' timed out (the job's timeout_seconds) and was %s", prog->name,
                 how);
        return -1;
    case COMMAND_JOB_CANCELLED:
        snprintf(msg, msglen, "'%s' was cancelled and %s", prog->name, how);
        return -1;
    case COMMAND_OUTPUT_LIMIT:
        cmdout_over(&out, &file);
        snprintf(msg, msglen, "'%s' wrote a file larger than %ld bytes (%s) and was %s", prog->name,
                 cfg->command_max_file_bytes, file, how);
        return -1;
    case COMMAND_RAN:
        break;
    }
    if (write_error) {
        char reason[128];
        snprintf(msg, msglen, "cannot write %s: %s", file,
                 strerror_r(write_error, reason, sizeof reason));
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (sig == SIGXCPU)
        snprintf(msg, msglen, "'%s' used more than %ld s of CPU time and was stopped", prog->name,
                 cfg->command_max_cpu_seconds);
    else if (sig == SIGXFSZ)
        snprintf(msg, msglen, "'%s' wrote a file larger than %ld bytes and was stopped", prog->name,
                 cfg->command_max_file_bytes);
    else if (sig)
        snprintf(msg, msglen, "'%s' was killed by signal %d (%s)", prog->name, sig, strsignal(sig));
    else if (WIFEXITED(status))
        snprintf(msg, msglen, "'%s' exited with status %d (see stderr.txt)", prog->name,
                 WEXITSTATUS(status));
    else
        snprintf(msg, msglen, "'%s' ended with wait status %d", prog->name, status);
    return -1;
}
