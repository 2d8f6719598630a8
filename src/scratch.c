/* Local scratch directories: "<workspace_root>/<job id>.<attempt>/", made
 * fresh for each run and removed afterwards without ever following a
 * symbolic link that an executor may have left behind.
 *
 * The attempt in the name keeps two runs of one job apart: a run whose
 * process stalled past its lease may still be writing into its directory
 * while the job's next attempt runs, here or in another process sharing
 * the root. So a directory is never removed to make room for a run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
        return error_set(ACP_EIO, "removing %s: %s", path, strerror(errno));
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
            rc = error_set(ACP_EIO, "removing %s/%s: %s", path, name, strerror(errno));
            break;
        }
        int child = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0) {
            rc = error_set(ACP_EIO, "removing %s/%s: %s", path, name, strerror(errno));
            break;
        }
        rc = remove_children(child, path, depth + 1);
        close(child);
        if (!rc && unlinkat(dir_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
            rc = error_set(ACP_EIO, "removing %s/%s: %s", path, name, strerror(errno));
        /* The directory changed under readdir: start over to see every entry. */
        if (!rc)
            rewinddir(dir);
    }
    if (!rc && errno != 0)
        rc = error_set(ACP_EIO, "reading %s: %s", path, strerror(errno));
    closedir(dir);
    return rc;
}

int scratch_remove(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return error_set(ACP_EIO, "removing %s: %s", path, strerror(errno));
    }
    int rc = remove_children(fd, path, 0);
    close(fd);
    if (!rc && rmdir(path) != 0 && errno != ENOENT)
        rc = error_set(ACP_EIO, "removing %s: %s", path, strerror(errno));
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
                return error_set(ACP_EIO, "creating %s: %s", root, strerror(err));
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
    if (mkdir(path, 0700) != 0) {
        if (errno == EEXIST)
            rc = error_set(ACP_EIO,
                           "scratch directory %s already exists: another run of this job "
                           "(attempt %u) may still be using it, so it is left alone; it is "
                           "removed once that run is known to have stopped",
                           path, attempt);
        else
            rc = error_set(ACP_EIO, "creating scratch directory %s: %s", path, strerror(errno));
        free(path);
        return rc;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = error_set(ACP_EIO, "opening scratch directory %s: %s", path, strerror(errno));
        rmdir(path);
        free(path);
        return rc;
    }
    *path_out = path;
    *fd_out = fd;
    return 0;
}

int scratch_write_all(int fd, const void *data, size_t len)
{
    const char *at = data;
    while (len > 0) {
        ssize_t n = write(fd, at, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return error_set(ACP_EIO, "writing to fd %d: %s", fd, strerror(errno));
        at += n;
        len -= (size_t)n;
    }
    return 0;
}
