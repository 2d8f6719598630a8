/* Who owns an S3 root: in the native layout the rows of one database are
 * the only record of the objects under a root, so two databases writing
 * one root would each see the other's objects as strays (and could give
 * one id two meanings). The owning database is named in "<root>.acp-root";
 * see acp_layout in the public header. */
#ifndef ACP_ROOT_OWNER_H
#define ACP_ROOT_OWNER_H

#include "async_platform.h"
#include "log.h"
#include "objects.h"
#include "store.h"

/* The object naming the root's owner, directly under the root. */
#define ROOT_OWNER_OBJECT ".acp-root"

/* At start: read ROOT_OWNER_OBJECT (one GET). When it names another
 * database, fail with ACP_ECONFLICT naming both, whatever the layout (an lcp
 * service may not write where a native one keeps data that only its rows
 * describe). When it is absent and @layout is native, write ours (and read
 * it back, so that of two databases starting together one loses). */
int root_owner_check(store *st, objects *obj, acp_layout layout, const logger *log);

#endif
