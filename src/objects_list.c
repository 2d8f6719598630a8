/* objects_list.c: listings of a workspace (all pages), wipes, and the
 * workspaces under the root (see objects.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "objects_internal.h"

/* ---- LIST ---------------------------------------------------------------- */

typedef struct objects_list_page {
    object_list *out;
    size_t cap;
    const char *prefix;
    size_t prefix_len;
    size_t page_count; /* keys on this page */
    bool no_memory;
    char last_key[OBJECTS_KEY_MAX + 1];
} objects_list_page;

static void objects_list_truncate(object_list *list, size_t count)
{
    while (list->count > count)
        free(list->items[--list->count].name);
}

static int objects_on_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
    objects_list_page *page = userdata;
    page->page_count++;
    snprintf(page->last_key, sizeof page->last_key, "%s", key);
    if (strncmp(key, page->prefix, page->prefix_len) != 0 || !key[page->prefix_len])
        return 0;
    object_list *list = page->out;
    if (list->count == page->cap) {
        size_t cap = page->cap ? page->cap * 2 : 16;
        object_entry *items = realloc(list->items, cap * sizeof *items);
        if (!items) {
            page->no_memory = true;
            return -1;
        }
        list->items = items;
        page->cap = cap;
    }
    char *name = strdup(key + page->prefix_len);
    if (!name) {
        page->no_memory = true;
        return -1;
    }
    list->items[list->count++] = (object_entry){.name = name, .size = size, .mtime = mtime};
    return 0;
}

/* Every object whose key starts with @prefix, all pages, into @out. */
static int objects_list_prefix(objects *obj, const char *prefix, object_list *out)
{
    out->items = NULL;
    out->count = 0;
    objects_list_page page = {.out = out, .prefix = prefix, .prefix_len = strlen(prefix)};
    char marker[OBJECTS_KEY_MAX + 1] = "";
    transport_request req = {
        .op = TRANSPORT_LIST,
        .list = {.prefix = prefix,
                 .max_keys = OBJECTS_LIST_PAGE,
                 .on_key = objects_on_key,
                 .userdata = &page},
    };
    for (;;) {
        size_t mark = out->count;
        req.list.marker = marker[0] ? marker : NULL;
        for (int attempt = 0;; attempt++) {
            objects_list_truncate(out, mark); /* a failed attempt's part of the page */
            page.page_count = 0;
            page.last_key[0] = '\0';
            objects_send(obj, &req, 1);
            if (page.no_memory) {
                object_list_free(out);
                return error_set(ACP_ENOMEM, "S3 %s: out of memory listing %s/%s", obj->t->endpoint,
                                 obj->t->bucket, prefix);
            }
            if (!objects_again(obj, &req, attempt, "LIST", prefix))
                break;
        }
        if (req.outcome.result != TRANSPORT_OK) {
            object_list_free(out);
            return objects_fail(obj, &req, "LIST", prefix);
        }
        /* A full page without IsTruncated is asked about once more rather
         * than trusting that the transport saw the flag. */
        if (!req.list.truncated && page.page_count < OBJECTS_LIST_PAGE)
            return 0;
        const char *next = req.list.next_marker[0] ? req.list.next_marker : page.last_key;
        if (!next[0])
            return 0;
        if (marker[0] && strcmp(next, marker) <= 0) {
            object_list_free(out);
            return error_set(ACP_ESTORAGE,
                             "S3 %s: LIST %s/%s: the listing does not advance past '%s'",
                             obj->t->endpoint, obj->t->bucket, prefix, marker);
        }
        snprintf(marker, sizeof marker, "%s", next);
    }
}

int objects_list(objects *obj, const acp_job_id *id, object_list *out)
{
    if (!out)
        return error_set(ACP_EINVAL, "objects_list: NULL result");
    out->items = NULL;
    out->count = 0;
    char prefix[OBJECTS_KEY_MAX + 1];
    int rc = objects_prefix(obj, id, prefix);
    if (rc)
        return rc;
    return objects_list_prefix(obj, prefix, out);
}

void object_list_free(object_list *list)
{
    if (!list)
        return;
    objects_list_truncate(list, 0);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}
/* ---- wipe ---------------------------------------------------------------- */

int objects_wipe(objects *obj, const acp_job_id *id)
{
    return objects_wipe_except(obj, id, NULL);
}

/* DELETE <prefix><name> for each of @count names, a few at a time. */
static int objects_delete_names(objects *obj, const char *prefix, const char *const *names,
                                size_t count)
{
    /* libs3 2.0 has no multi-object delete: one DELETE per key, a few at a
     * time. */
    transport_request reqs[OBJECTS_PARALLEL];
    char keys[OBJECTS_PARALLEL][OBJECTS_KEY_MAX + 1];
    int rc = 0;
    for (size_t first = 0; first < count && rc == 0; first += OBJECTS_PARALLEL) {
        size_t batch = count - first;
        if (batch > OBJECTS_PARALLEL)
            batch = OBJECTS_PARALLEL;
        for (size_t i = 0; i < batch; i++) {
            int n = snprintf(keys[i], sizeof keys[i], "%s%s", prefix, names[first + i]);
            if (n < 0 || (size_t)n >= sizeof keys[i])
                return error_set(ACP_EINVAL, "object name '%.40s...' makes an S3 key too long",
                                 names[first + i]);
            reqs[i] = (transport_request){.op = TRANSPORT_DELETE, .key = keys[i]};
        }
        objects_send(obj, reqs, batch);
        for (size_t i = 0; i < batch && rc == 0; i++) {
            transport_result result = reqs[i].outcome.result;
            if (objects_deleted(result))
                continue;
            /* Once more on its own, with the usual retries. */
            rc = transport_retryable(result) ? objects_delete_key(obj, keys[i])
                                             : objects_fail(obj, &reqs[i], "DELETE", keys[i]);
        }
    }
    return rc;
}

int objects_delete_many(objects *obj, const acp_job_id *id, const char *const *names, size_t count)
{
    char prefix[OBJECTS_KEY_MAX + 1];
    int rc = objects_prefix(obj, id, prefix);
    if (rc)
        return rc;
    for (size_t i = 0; i < count; i++)
        if (!names[i] || !*names[i] || names[i][0] == '/')
            return error_set(ACP_EINVAL, "objects_delete_many: bad object name");
    return objects_delete_names(obj, prefix, names, count);
}

int objects_wipe_except(objects *obj, const acp_job_id *id, bool (*keep)(const char *name))
{
    char prefix[OBJECTS_KEY_MAX + 1];
    int rc = objects_prefix(obj, id, prefix);
    if (rc)
        return rc;
    object_list list;
    if ((rc = objects_list_prefix(obj, prefix, &list)))
        return rc;
    size_t kept = 0;
    const char **names = malloc((list.count ? list.count : 1) * sizeof *names);
    if (!names) {
        object_list_free(&list);
        return error_set(ACP_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < list.count; i++)
        if (!keep || !keep(list.items[i].name))
            names[kept++] = list.items[i].name;
    rc = objects_delete_names(obj, prefix, names, kept);
    free(names);
    object_list_free(&list);
    return rc;
}

/* ---- workspaces under the root ------------------------------------------ */

typedef struct objects_dirs {
    const char *root;
    size_t root_len;
    acp_job_id *ids;
    size_t limit;
    size_t count;
    char last[OBJECTS_KEY_MAX + 1];
} objects_dirs;

static int objects_on_dir(void *userdata, const char *dir)
{
    objects_dirs *dirs = userdata;
    snprintf(dirs->last, sizeof dirs->last, "%s", dir);
    /* "<root><32 hex>/": anything else under the root is not a workspace. */
    char hex[ACP_JOB_ID_STRLEN];
    size_t len = strlen(dir);
    if (strncmp(dir, dirs->root, dirs->root_len) != 0 ||
        len != dirs->root_len + ACP_JOB_ID_HEX_LEN + 1 || dir[len - 1] != '/')
        return 0;
    memcpy(hex, dir + dirs->root_len, ACP_JOB_ID_HEX_LEN);
    hex[ACP_JOB_ID_HEX_LEN] = '\0';
    acp_job_id id;
    if (dirs->count < dirs->limit && acp_job_id_parse(&id, hex) == 0)
        dirs->ids[dirs->count++] = id;
    return 0;
}

int objects_list_workspaces(objects *obj, const acp_job_id *after, size_t limit, acp_job_id *ids,
                            size_t *count, bool *more)
{
    *count = 0;
    *more = false;
    if (limit == 0)
        return 0;
    char marker[OBJECTS_KEY_MAX + 2] = ""; /* a key and "~" */
    if (after) {
        char hex[ACP_JOB_ID_STRLEN];
        /* Past "<root><id>/" and everything in it: names are [A-Za-z0-9_.-],
         * all below "~". */
        snprintf(marker, sizeof marker, "%s%s/~", obj->root, acp_job_id_format(after, hex));
    }
    objects_dirs dirs = {
        .root = obj->root, .root_len = strlen(obj->root), .ids = ids, .limit = limit};
    transport_request req = {
        .op = TRANSPORT_LIST,
        .list = {.prefix = obj->root,
                 .delimiter = "/",
                 .on_key = objects_ignore_key,
                 .on_prefix = objects_on_dir,
                 .userdata = &dirs},
    };
    /* Keys that are not workspaces take room in a page: ask again until the
     * page is full or the listing ends. */
    for (;;) {
        size_t mark = dirs.count;
        size_t want = limit - mark;
        req.list.marker = marker[0] ? marker : NULL;
        req.list.max_keys = want > INT32_MAX ? INT32_MAX : (unsigned)want;
        for (int attempt = 0;; attempt++) {
            dirs.count = mark;
            dirs.last[0] = '\0';
            objects_send(obj, &req, 1);
            if (!objects_again(obj, &req, attempt, "LIST", obj->root))
                break;
        }
        if (req.outcome.result != TRANSPORT_OK)
            return objects_fail(obj, &req, "LIST", obj->root);
        if (!req.list.truncated || !dirs.last[0]) {
            *count = dirs.count;
            return 0;
        }
        if (dirs.count == limit) {
            *count = dirs.count;
            *more = true;
            return 0;
        }
        snprintf(marker, sizeof marker, "%s~", dirs.last);
    }
}
