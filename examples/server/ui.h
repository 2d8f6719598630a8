/* The jobs dashboard (docs/dashboard.adoc): its static files, embedded at
 * build time by embed_ui.py, served at GET / and GET /ui/<file>. They hold
 * no data: the page reads everything through the API with the user's
 * token. */
#ifndef SERVER_UI_H
#define SERVER_UI_H

#include <stddef.h>

#include "http.h"

typedef struct ui_file {
    const char *name;         /* "app.js" */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const char *etag;         /* quoted, from the content's SHA-256 */
    const unsigned char *data;
    size_t size;
} ui_file;

/* Generated (ui_files.c). */
extern const ui_file ui_files[];
extern const size_t ui_file_count;

/* 1 when @path is the dashboard's: "/" or under "/ui/". */
int ui_owns(const char *path);

/* Answer a request for one of the dashboard's paths (ui_owns() said so). */
enum MHD_Result ui_handle(struct MHD_Connection *conn, http_request *req, const char *method,
                          const char *path);

#endif
