/* What the modules of the settings loader share (settings.c reads the
 * file and its sections, settings_queues.c the "queues" array). */
#ifndef SERVER_SETTINGS_INTERNAL_H
#define SERVER_SETTINGS_INTERNAL_H

#include <stddef.h>

#include <json-c/json.h>

#include "settings.h"

/* Appends a queue of id @id with every setting unset. */
int settings_add_queue(settings *s, const char *id, char *err, size_t errlen);

/* Appends the queues of @array (the file's "queues" value) to @s. */
int settings_apply_queues(settings *s, json_object *array, char *err, size_t errlen);

#endif
