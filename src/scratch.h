/* The local scratch directory of a job. */
#ifndef ACP_SCRATCH_H
#define ACP_SCRATCH_H

#include <stddef.h>

#include "async_platform.h"

/* Create "<workspace_root>/<hex>.<attempt>" and open it. An existing one
 * belongs to a run that may be alive: it is left alone and ACP_EIO says so.
 * The directory counts as this process's until scratch_finish. */
int scratch_create(acp_platform *p, const char *hex, unsigned attempt, char **path, int *dir_fd);
/* Remove a directory of scratch_create (@path, still owned by the caller). */
int scratch_finish(acp_platform *p, const char *path);
/* Remove the "<hex>.<attempt>" directories under the workspace root whose
 * run is over (store_runs_alive) and that are not this process's; other
 * names, symbolic links and files are left alone. @removed (may be NULL)
 * gets the count. An error stops the pass; the next one goes on. */
int scratch_sweep(acp_platform *p, size_t *removed);
/* Set p->workspace_root to @configured (NULL: the default, under
 * $XDG_RUNTIME_DIR or /var/tmp, private to this user), create what is
 * missing of it (the root itself with mode 0700), check that nobody else
 * can change it or a directory above it, and open it as p->workspace_fd.
 * ACP_EINVAL names what is unsafe: a symbolic link, another owner, write
 * access for group or others. */
int scratch_open_root(acp_platform *p, const char *configured);
/* Write all of @data to @fd (retrying short writes); ACP_EIO on failure. */
int scratch_write_all(int fd, const void *data, size_t len);
/* Remove the tree @name directly under the directory @root_fd, without
 * following symbolic links, however deep it is (subtrees past a depth bound
 * are moved up to @root_fd first); @shown names it in errors. */
int scratch_remove_at(int root_fd, const char *name, const char *shown);

#endif
