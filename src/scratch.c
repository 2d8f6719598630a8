/* Local scratch directories: "<workspace_root>/<job id>.<attempt>/", made
 * fresh for each run and removed afterwards without ever following a
 * symbolic link that an executor may have left behind.
 *
 * The attempt in the name keeps two runs of one job apart: a run whose
 * process stalled past its lease may still be writing into its directory
 * while the job's next attempt runs, here or in another process sharing
 * the root. So a directory is never removed to make room for a run; the
 * leftovers of runs that died with their process are removed by
 * scratch_sweep once the database says that the run is over. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "platform_state.h"
#include "scratch.h"

/* Recursion bound of a removal: deeper directories are first moved up to
 * the root (see remove_children), so that any depth is removed. */
#define MAX_DEPTH 64
/* Names of such moved directories; swept like the runs' leftovers. */
#define DEEP_PREFIX ".acp-deep-"

/* Names moved up to the root during one removal, removed after it. */
typedef struct pending {
    char **names;
    size_t count, cap;
} pending;

static int pending_add(pending *q, const char *name)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;
        char **grown = realloc(q->names, cap * sizeof *grown);
        if (!grown)
            return error_set(ACP_ENOMEM, "out of memory");
        q->names = grown;
        q->cap = cap;
    }
    if (!(q->names[q->count] = strdup(name)))
        return error_set(ACP_ENOMEM, "out of memory");
    q->count++;
    return 0;
}

/* Move the directory @name of @dir_fd up to the root under a new name. */
static int move_up(int dir_fd, const char *name, int root_fd, const char *shown, pending *q)
{
    for (int tries = 0; tries < 100; tries++) {
        acp_job_id noise;
        char hex[ACP_JOB_ID_STRLEN], moved[sizeof DEEP_PREFIX + ACP_JOB_ID_STRLEN];
        acp_job_id_generate(&noise);
        snprintf(moved, sizeof moved, DEEP_PREFIX "%s", acp_job_id_format(&noise, hex));
        if (renameat2(dir_fd, name, root_fd, moved, RENAME_NOREPLACE) == 0)
            return pending_add(q, moved);
        if (errno != EEXIST)
            return error_set(ACP_EIO, "removing %s: moving a deep directory up: %s", shown,
                             error_strerror(errno));
    }
    return error_set(ACP_EIO, "removing %s: no free name to move a deep directory to", shown);
}

static int remove_children(int dir_fd, const char *shown, int depth, int root_fd, pending *q)
{
    int fd = dup(dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return error_set(ACP_EIO, "removing %s: %s", shown, error_strerror(errno));
    }
    int rc = 0;
    struct dirent *entry;
    while (!rc && (errno = 0, entry = readdir(dir))) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT)
            continue;
        if (errno != EISDIR && errno != EPERM) {
            rc = error_set(ACP_EIO, "removing %s/%s: %s", shown, name, error_strerror(errno));
            break;
        }
        /* A job can nest directories deeper than any recursion should go:
         * past the bound, the subtree moves up to the root and is removed
         * from there afterwards. */
        if (depth >= MAX_DEPTH) {
            rc = move_up(dir_fd, name, root_fd, shown, q);
        } else {
            int child = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (child < 0) {
                rc = error_set(ACP_EIO, "removing %s/%s: %s", shown, name, error_strerror(errno));
                break;
            }
            rc = remove_children(child, shown, depth + 1, root_fd, q);
            close(child);
            if (!rc && unlinkat(dir_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
                rc = error_set(ACP_EIO, "removing %s/%s: %s", shown, name, error_strerror(errno));
        }
        /* The directory changed under readdir: start over to see every entry. */
        if (!rc)
            rewinddir(dir);
    }
    if (!rc && errno != 0)
        rc = error_set(ACP_EIO, "reading %s: %s", shown, error_strerror(errno));
    closedir(dir);
    return rc;
}

/* Remove the tree @name directly under @root_fd. */
static int remove_one(int root_fd, const char *name, const char *shown, pending *q)
{
    int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return error_set(ACP_EIO, "removing %s: %s", shown, error_strerror(errno));
    }
    int rc = remove_children(fd, shown, 0, root_fd, q);
    close(fd);
    if (!rc && unlinkat(root_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = error_set(ACP_EIO, "removing %s: %s", shown, error_strerror(errno));
    return rc;
}

int scratch_remove_at(int root_fd, const char *name, const char *shown)
{
    pending q = {0};
    int rc = remove_one(root_fd, name, shown, &q);
    /* Each moved subtree is at most MAX_DEPTH deeper than its new place, so
     * this ends; removing one may move up more. */
    for (size_t i = 0; i < q.count; i++) {
        if (!rc)
            rc = remove_one(root_fd, q.names[i], shown, &q);
        free(q.names[i]);
    }
    free(q.names);
    return rc;
}

/* ---- the root --------------------------------------------------------------- */

/* The default root: private to this user by construction (the runtime
 * directory) or by the checks below (elsewhere). */
static char *default_root(void)
{
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    char *root = NULL;
    int n = runtime && runtime[0] == '/'
                ? asprintf(&root, "%s/async-platform", runtime)
                : asprintf(&root, "/var/tmp/async-platform-%u", (unsigned)geteuid());
    return n < 0 ? NULL : root;
}

/* Create what is missing of @root: parents as mkdir -p would, the root
 * itself private. */
static int create_root(const char *root)
{
    char *copy = strdup(root);
    if (!copy)
        return error_set(ACP_ENOMEM, "out of memory");
    int rc = 0;
    for (char *p = copy + 1; !rc; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, saved ? 0755 : 0700) != 0 && errno != EEXIST)
            rc = error_set(ACP_EIO, "config.workspace_root: creating %s: %s", copy,
                           error_strerror(errno));
        *p = saved;
        if (!saved)
            break;
    }
    free(copy);
    return rc;
}

/* A directory another user can change is a directory they can swap our
 * job directories in: every directory above the root must belong to root
 * or to us, and be writable by nobody else unless it is sticky (as /tmp),
 * where others cannot rename what is ours. */
static int check_ancestors(const char *root)
{
    char *real = realpath(root, NULL);
    if (!real)
        return error_set(ACP_EIO, "config.workspace_root: %s: %s", root, error_strerror(errno));
    int rc = 0;
    uid_t me = geteuid();
    for (char *p = real + 1; !rc && *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        struct stat st;
        if (stat(real, &st) != 0)
            rc = error_set(ACP_EIO, "config.workspace_root: %s: %s", real, error_strerror(errno));
        else if (st.st_uid != 0 && st.st_uid != me)
            rc = error_set(ACP_EINVAL,
                           "config.workspace_root: %s, above the scratch root, belongs to uid "
                           "%u, neither root nor this process's user (%u)",
                           real, (unsigned)st.st_uid, (unsigned)me);
        else if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
            rc = error_set(ACP_EINVAL,
                           "config.workspace_root: %s, above the scratch root, is writable by "
                           "group or others (mode %04o) and not sticky",
                           real, (unsigned)(st.st_mode & 07777));
        *p = '/';
    }
    free(real);
    return rc;
}

int scratch_open_root(acp_platform *p, const char *configured)
{
    p->workspace_fd = -1;
    char *root = configured ? strdup(configured) : default_root();
    if (!root)
        return error_set(ACP_ENOMEM, "out of memory");
    p->workspace_root = root;
    int rc = create_root(root);
    if (rc)
        return rc;
    struct stat before, st;
    if (lstat(root, &before) != 0)
        return error_set(ACP_EIO, "config.workspace_root: %s: %s", root, error_strerror(errno));
    if (S_ISLNK(before.st_mode))
        return error_set(ACP_EINVAL,
                         "config.workspace_root: %s is a symbolic link; give the directory "
                         "it points to",
                         root);
    if ((rc = check_ancestors(root)))
        return rc;
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return error_set(ACP_EIO, "config.workspace_root: %s: %s", root, error_strerror(errno));
    if (fstat(fd, &st) != 0 || st.st_dev != before.st_dev || st.st_ino != before.st_ino)
        rc = error_set(ACP_EINVAL, "config.workspace_root: %s changed while it was checked", root);
    else if (st.st_uid != geteuid())
        rc = error_set(ACP_EINVAL,
                       "config.workspace_root: %s belongs to uid %u, not to this process's "
                       "user (%u)",
                       root, (unsigned)st.st_uid, (unsigned)geteuid());
    else if (st.st_mode & (S_IWGRP | S_IWOTH))
        rc = error_set(ACP_EINVAL,
                       "config.workspace_root: %s is writable by group or others (mode %04o): "
                       "chmod go-w it",
                       root, (unsigned)(st.st_mode & 07777));
    if (rc) {
        close(fd);
        return rc;
    }
    p->workspace_fd = fd;
    return 0;
}

/* The runs this process has a scratch directory for, by directory name, so
 * that a sweep never removes one of them, even when its lease has run out
 * (the database is then unreachable, or the job was taken over and this run
 * is about to learn it). */
static int scratch_register(acp_platform *p, const char *name)
{
    pthread_mutex_lock(&p->scratch_lock);
    int rc = 0;
    if (p->scratch_busy_count == p->scratch_busy_cap) {
        size_t cap = p->scratch_busy_cap ? p->scratch_busy_cap * 2 : 16;
        const char **grown = realloc(p->scratch_busy, cap * sizeof *grown);
        if (grown) {
            p->scratch_busy = grown;
            p->scratch_busy_cap = cap;
        } else {
            rc = error_set(ACP_ENOMEM, "out of memory");
        }
    }
    if (!rc)
        p->scratch_busy[p->scratch_busy_count++] = name;
    pthread_mutex_unlock(&p->scratch_lock);
    return rc;
}

static void scratch_unregister(acp_platform *p, const char *name)
{
    pthread_mutex_lock(&p->scratch_lock);
    for (size_t i = 0; i < p->scratch_busy_count; i++)
        if (p->scratch_busy[i] == name) {
            p->scratch_busy[i] = p->scratch_busy[--p->scratch_busy_count];
            break;
        }
    pthread_mutex_unlock(&p->scratch_lock);
}

static bool scratch_is_busy(acp_platform *p, const char *name)
{
    bool busy = false;
    pthread_mutex_lock(&p->scratch_lock);
    for (size_t i = 0; i < p->scratch_busy_count && !busy; i++)
        busy = strcmp(p->scratch_busy[i], name) == 0;
    pthread_mutex_unlock(&p->scratch_lock);
    return busy;
}

static const char *scratch_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int scratch_create(acp_platform *p, const char *hex, unsigned attempt, char **path_out, int *fd_out)
{
    const char *root = p->workspace_root;
    size_t len = strlen(root);
    size_t size = len + 1 + strlen(hex) + 1 + 10 + 1;
    char *path = malloc(size);
    if (!path)
        return error_set(ACP_ENOMEM, "out of memory");
    snprintf(path, size, "%s%s%s.%u", root, root[len - 1] == '/' ? "" : "/", hex, attempt);
    const char *name = scratch_base(path);
    int rc = scratch_register(p, name);
    if (rc) {
        free(path);
        return rc;
    }
    /* Relative to the root's descriptor: the root was checked once, and no
     * path above it is looked up again. */
    if (mkdirat(p->workspace_fd, name, 0700) != 0) {
        if (errno == EEXIST)
            rc = error_set(ACP_EIO,
                           "scratch directory %s already exists: another run of this job "
                           "(attempt %u) may still be using it, so it is left alone; it is "
                           "removed once that run is known to have stopped",
                           path, attempt);
        else
            rc = error_set(ACP_EIO, "creating scratch directory %s: %s", path,
                           error_strerror(errno));
        scratch_unregister(p, name);
        free(path);
        return rc;
    }
    int fd = openat(p->workspace_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = error_set(ACP_EIO, "opening scratch directory %s: %s", path, error_strerror(errno));
        unlinkat(p->workspace_fd, name, AT_REMOVEDIR);
        scratch_unregister(p, name);
        free(path);
        return rc;
    }
    *path_out = path;
    *fd_out = fd;
    return 0;
}

int scratch_finish(acp_platform *p, const char *path)
{
    int rc = scratch_remove_at(p->workspace_fd, scratch_base(path), path);
    scratch_unregister(p, scratch_base(path));
    return rc;
}

/* ---- leftovers of dead runs --------------------------------------------- */

/* Directories checked with one statement. */
#define SWEEP_BATCH 256

typedef struct sweep_batch {
    acp_job_id ids[SWEEP_BATCH];
    unsigned attempts[SWEEP_BATCH];
    bool alive[SWEEP_BATCH];
    size_t count;
} sweep_batch;

/* "<32 lowercase hex>.<attempt>", the attempt in decimal from 1 without
 * leading zeros: the only names scratch_create makes. */
static bool sweep_parse(const char *name, acp_job_id *id, unsigned *attempt)
{
    char hex[ACP_JOB_ID_STRLEN];
    for (int i = 0; i < ACP_JOB_ID_HEX_LEN; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        hex[i] = c;
    }
    hex[ACP_JOB_ID_HEX_LEN] = '\0';
    const char *digits = name + ACP_JOB_ID_HEX_LEN;
    if (*digits++ != '.' || *digits < '1' || *digits > '9')
        return false;
    unsigned long long value = 0;
    for (const char *d = digits; *d; d++) {
        if (*d < '0' || *d > '9' || d - digits >= 10)
            return false;
        value = value * 10 + (unsigned)(*d - '0');
    }
    if (value > UINT_MAX || acp_job_id_parse(id, hex) != 0)
        return false;
    *attempt = (unsigned)value;
    return true;
}

/* Ask the database about the batch and remove the directories of the runs
 * that are over. */
static int sweep_flush(acp_platform *p, sweep_batch *b, size_t *removed)
{
    int rc = store_runs_alive(p->store, b->ids, b->attempts, b->count, b->alive);
    for (size_t i = 0; !rc && i < b->count; i++) {
        if (b->alive[i])
            continue;
        char hex[ACP_JOB_ID_STRLEN], name[ACP_JOB_ID_STRLEN + 12];
        snprintf(name, sizeof name, "%s.%u", acp_job_id_format(&b->ids[i], hex), b->attempts[i]);
        /* Checked last, just before removing: a run of this process is never
         * swept, whatever its lease says. */
        if (scratch_is_busy(p, name))
            continue;
        size_t len = strlen(p->workspace_root);
        char *path = malloc(len + 1 + sizeof name);
        if (!path)
            return error_set(ACP_ENOMEM, "out of memory");
        sprintf(path, "%s%s%s", p->workspace_root, p->workspace_root[len - 1] == '/' ? "" : "/",
                name);
        if (scratch_remove_at(p->workspace_fd, name, path) == 0) {
            log_info(&p->log,
                     "job %s: removed the scratch directory %s of attempt %u, which "
                     "no longer runs anywhere",
                     hex, path, b->attempts[i]);
            (*removed)++;
        } else {
            log_warn(&p->log, "job %s: %s", hex, acp_last_error());
        }
        free(path);
    }
    b->count = 0;
    return rc;
}

int scratch_sweep(acp_platform *p, size_t *removed)
{
    size_t count = 0;
    if (removed)
        *removed = 0;
    int fd = dup(p->workspace_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        int rc = error_set(ACP_EIO, "reading scratch root %s: %s", p->workspace_root,
                           error_strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    /* The duplicate shares the root descriptor's offset, which the last
     * pass left at the end. */
    rewinddir(dir);
    sweep_batch *b = malloc(sizeof *b);
    if (!b) {
        closedir(dir);
        return error_set(ACP_ENOMEM, "out of memory");
    }
    b->count = 0;
    int rc = 0;
    struct dirent *entry;
    while (!rc && (errno = 0, entry = readdir(dir))) {
        acp_job_id id;
        unsigned attempt;
        struct stat st;
        /* What a removal that stopped half-way moved up (see move_up). */
        if (strncmp(entry->d_name, DEEP_PREFIX, strlen(DEEP_PREFIX)) == 0 &&
            fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            if (scratch_remove_at(p->workspace_fd, entry->d_name, entry->d_name) != 0)
                log_warn(&p->log, "%s", acp_last_error());
            continue;
        }
        /* Only real directories with our names: never a symbolic link (not
         * followed) nor anything else someone keeps there. */
        if (!sweep_parse(entry->d_name, &id, &attempt) ||
            fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        b->ids[b->count] = id;
        b->attempts[b->count] = attempt;
        if (++b->count == SWEEP_BATCH)
            rc = sweep_flush(p, b, &count);
    }
    if (!rc && errno != 0)
        rc = error_set(ACP_EIO, "reading scratch root %s: %s", p->workspace_root,
                       error_strerror(errno));
    if (!rc && b->count)
        rc = sweep_flush(p, b, &count);
    free(b);
    closedir(dir);
    if (removed)
        *removed = count;
    return rc;
}

int scratch_write_all(int fd, const void *data, size_t len)
{
    const char *at = data;
    while (len > 0) {
        ssize_t n = write(fd, at, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return error_set(ACP_EIO, "writing to fd %d: %s", fd, error_strerror(errno));
        at += n;
        len -= (size_t)n;
    }
    return 0;
}
