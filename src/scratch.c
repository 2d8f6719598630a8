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
#include "platform.h"

/* Depth guard: a job cannot make us recurse without bound. */
#define MAX_DEPTH 128

static int remove_children(int dir_fd, const char *path, int depth)
{
    if (depth > MAX_DEPTH)
        return error_set(ACP_EIO, "removing %s: nested deeper than %d levels", path, MAX_DEPTH);
    int fd = dup(dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return error_set(ACP_EIO, "removing %s: %s", path, error_strerror(errno));
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
            rc = error_set(ACP_EIO, "removing %s/%s: %s", path, name, error_strerror(errno));
            break;
        }
        int child = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
            rc = error_set(ACP_EIO, "removing %s/%s: %s", path, name, error_strerror(errno));
            break;
        }
        rc = remove_children(child, path, depth + 1);
        close(child);
        if (!rc && unlinkat(dir_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
            rc = error_set(ACP_EIO, "removing %s/%s: %s", path, name, error_strerror(errno));
        /* The directory changed under readdir: start over to see every entry. */
        if (!rc)
            rewinddir(dir);
    }
    if (!rc && errno != 0)
        rc = error_set(ACP_EIO, "reading %s: %s", path, error_strerror(errno));
    closedir(dir);
    return rc;
}

int scratch_remove(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return error_set(ACP_EIO, "removing %s: %s", path, error_strerror(errno));
    }
    int rc = remove_children(fd, path, 0);
    close(fd);
    if (!rc && rmdir(path) != 0 && errno != ENOENT)
        rc = error_set(ACP_EIO, "removing %s: %s", path, error_strerror(errno));
    return rc;
}

int scratch_prepare_root(const char *root)
{
    char *copy = strdup(root);
    if (!copy)
        return error_set(ACP_ENOMEM, "out of memory");
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
                int err = errno;
                free(copy);
                return error_set(ACP_EIO, "creating %s: %s", root, error_strerror(err));
            }
            *p = saved;
            if (!saved)
                break;
        }
    }
    free(copy);
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return error_set(ACP_EIO, "scratch root %s is not a directory", root);
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
    int rc = scratch_prepare_root(root);
    if (rc)
        return rc;
    size_t len = strlen(root);
    size_t size = len + 1 + strlen(hex) + 1 + 10 + 1;
    char *path = malloc(size);
    if (!path)
        return error_set(ACP_ENOMEM, "out of memory");
    snprintf(path, size, "%s%s%s.%u", root, root[len - 1] == '/' ? "" : "/", hex, attempt);
    const char *name = scratch_base(path);
    if ((rc = scratch_register(p, name))) {
        free(path);
        return rc;
    }
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST)
            rc = error_set(ACP_EIO,
                           "scratch directory %s already exists: another run of this job "
                           "(attempt %u) may still be using it, so it is left alone; it is "
                           "removed once that run is known to have stopped",
                           path, attempt);
        else
            rc = error_set(ACP_EIO, "creating scratch directory %s: %s", path, error_strerror(errno));
        scratch_unregister(p, name);
        free(path);
        return rc;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = error_set(ACP_EIO, "opening scratch directory %s: %s", path, error_strerror(errno));
        rmdir(path);
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
    int rc = scratch_remove(path);
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
        if (scratch_remove(path) == 0) {
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
    int fd = open(p->workspace_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        int rc =
            error_set(ACP_EIO, "reading scratch root %s: %s", p->workspace_root, error_strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
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
        rc = error_set(ACP_EIO, "reading scratch root %s: %s", p->workspace_root, error_strerror(errno));
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
