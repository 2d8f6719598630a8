/* The ownership of an S3 root by one database (see root_owner.h). */
#include "root_owner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "error.h"
#include "json.h"

/* Far more than the few fields written. */
#define ROOT_OWNER_MAX 4096

/* The owner's description as stored: one JSON object. */
static int root_owner_render(const store_identity *me, buf *out)
{
    struct tm tm;
    int micros;
    char created[32] = "";
    if (clock_utc(clock_wall_us(), &tm, &micros))
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object *o = json_object_new_object();
    if (!o)
        return error_set(ACP_ENOMEM, "out of memory");
    json_object_object_add(o, "database_id", json_object_new_string(me->database_id));
    json_object_object_add(o, "system_identifier",
                           me->system_id ? json_object_new_string(me->system_id) : NULL);
    json_object_object_add(o, "database", json_object_new_string(me->name ? me->name : ""));
    json_object_object_add(o, "schema", json_object_new_string("compute"));
    json_object_object_add(o, "created", json_object_new_string(created));
    int rc = json_write_compact(out, o);
    json_object_put(o);
    return rc;
}

/* The owner recorded in @text: its database_id (NULL when the object is no
 * owner record), and what to call it in an error. */
typedef struct root_owner_seen {
    char database_id[128];
    char description[512];
} root_owner_seen;

static int root_owner_parse(const char *text, size_t len, const char *key, root_owner_seen *seen)
{
    json_object *o = NULL;
    int rc = json_parse(text, len, key, &o);
    json_object *id = NULL, *sys = NULL, *db = NULL;
    if (rc == 0 && (!o || !json_object_object_get_ex(o, "database_id", &id) ||
                    !json_object_is_type(id, json_type_string)))
        rc = error_set(ACP_EINVAL, "%s: not an owner record (no \"database_id\")", key);
    if (rc) {
        json_object_put(o);
        return rc;
    }
    json_object_object_get_ex(o, "system_identifier", &sys);
    json_object_object_get_ex(o, "database", &db);
    snprintf(seen->database_id, sizeof seen->database_id, "%s", json_object_get_string(id));
    snprintf(seen->description, sizeof seen->description, "database %s (%s, system identifier %s)",
             seen->database_id,
             db && json_object_is_type(db, json_type_string) ? json_object_get_string(db) : "?",
             sys && json_object_is_type(sys, json_type_string) ? json_object_get_string(sys)
                                                               : "unknown");
    json_object_put(o);
    return 0;
}

/* Read the record: 0 with *@found false when absent. */
static int root_owner_read(objects *obj, root_owner_seen *seen, bool *found)
{
    char *text;
    size_t len;
    int rc = objects_root_read(obj, ROOT_OWNER_OBJECT, ROOT_OWNER_MAX, &text, &len, found);
    if (rc || !*found)
        return rc;
    rc = root_owner_parse(text, len, ROOT_OWNER_OBJECT, seen);
    free(text);
    return rc;
}

static int root_owner_refuse(const store_identity *me, const root_owner_seen *seen)
{
    return error_set(ACP_ECONFLICT,
                     "the S3 root belongs to %s, not to this service's database %s (%s, system "
                     "identifier %s): in the native layout a root path belongs to one database "
                     "(its " ROOT_OWNER_OBJECT " says which). Configure another s3.root_path, or "
                     "remove " ROOT_OWNER_OBJECT " if that database and its jobs are gone",
                     seen->description, me->database_id, me->name ? me->name : "?",
                     me->system_id ? me->system_id : "unknown");
}

int root_owner_check(store *st, objects *obj, acp_layout layout, const logger *log)
{
    store_identity me = {0};
    int rc = store_identity_read(st, &me);
    if (rc)
        return rc;
    root_owner_seen seen;
    bool found;
    rc = root_owner_read(obj, &seen, &found);
    if (!rc && found && strcmp(seen.database_id, me.database_id) != 0)
        rc = root_owner_refuse(&me, &seen);
    if (rc || found || layout == ACP_LAYOUT_LCP) {
        store_identity_free(&me);
        return rc;
    }
    buf record = BUF_INIT;
    rc = root_owner_render(&me, &record);
    if (!rc)
        rc = objects_root_put(obj, ROOT_OWNER_OBJECT, record.data, record.len);
    buf_free(&record);
    /* Of two databases that found no record at once, the last writer wins:
     * reading it back tells the other. */
    if (!rc)
        rc = root_owner_read(obj, &seen, &found);
    if (!rc && (!found || strcmp(seen.database_id, me.database_id) != 0))
        rc = found ? root_owner_refuse(&me, &seen)
                   : error_set(ACP_ESTORAGE, "S3: " ROOT_OWNER_OBJECT " vanished after writing it");
    if (!rc)
        log_info(log, "S3 root recorded as this database's (%s)", me.database_id);
    store_identity_free(&me);
    return rc;
}
