#include "ui.h"

#include <stdio.h>
#include <string.h>

/* The page runs only its own script and style (no inline code, so an
 * injected tag cannot run), talks only to this server, and cannot be framed
 * (clickjacking of its cancel and delete buttons). */
#define UI_CSP                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; frame-ancestors 'none'"

#define UI_PREFIX "/ui/"

int ui_owns(const char *path)
{
    return strcmp(path, "/") == 0 || strncmp(path, UI_PREFIX, strlen(UI_PREFIX)) == 0;
}

static const ui_file *ui_find(const char *name)
{
    for (size_t i = 0; i < ui_file_count; i++)
        if (strcmp(ui_files[i].name, name) == 0)
            return &ui_files[i];
    return NULL;
}

/* If-None-Match holds "*" or a list of tags; ours are quoted hex, so one
 * that appears in the list (weak "W/" prefix or not) is a match. */
static int ui_not_modified(struct MHD_Connection *conn, const ui_file *file)
{
    const char *inm =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (!inm)
        return 0;
    return strcmp(inm, "*") == 0 || strstr(inm, file->etag) != NULL;
}

static void ui_headers(struct MHD_Response *response, const ui_file *file)
{
    MHD_add_response_header(response, MHD_HTTP_HEADER_ETAG, file->etag);
    /* Revalidated on each load, so that a new server's page is never mixed
     * with an old script from the cache; a 304 costs no body. */
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(response, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "Referrer-Policy", "no-referrer");
}

enum MHD_Result ui_handle(struct MHD_Connection *conn, http_request *req, const char *method,
                          const char *path)
{
    const ui_file *file =
        strcmp(path, "/") == 0 ? ui_find("index.html") : ui_find(path + strlen(UI_PREFIX));
    if (!file)
        return http_reply_error(conn, req, MHD_HTTP_NOT_FOUND, "not found", NULL,
                                "no such resource: %s", path);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        char detail[256];
        json_object *doc = json_object_new_object();
        snprintf(detail, sizeof detail, "%s is not allowed on %s (allowed: GET, HEAD)", method,
                 path);
        json_object_object_add(doc, "error", json_object_new_string("method not allowed"));
        json_object_object_add(doc, "detail", json_object_new_string(detail));
        struct MHD_Response *response = http_json_response(doc);
        if (response)
            MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        return http_reply(conn, req, MHD_HTTP_METHOD_NOT_ALLOWED, response);
    }
    if (ui_not_modified(conn, file)) {
        struct MHD_Response *response =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (response)
            ui_headers(response, file);
        return http_reply(conn, req, MHD_HTTP_NOT_MODIFIED, response);
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(file->size, (void *)file->data, MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, file->content_type);
    ui_headers(response, file);
    return http_reply(conn, req, MHD_HTTP_OK, response);
}
