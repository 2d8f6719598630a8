/* The server's own state: health (its backing services) and metrics. */
#include "cli.h"

#include <string.h>

static void no_options(int key, const char *arg, void *ctx)
{
    (void)key;
    (void)arg;
    (void)ctx;
}

/* 503 is an answer here, not a failure to report: it says which service
 * is down, and the exit status (1) says that one is. */
int cmd_health(int argc, char **argv)
{
    int first = parse_command_options(argc, argv, "", NULL, no_options, NULL);
    if (first != argc)
        die_usage("usage: acp health");
    struct reply r = {0};
    int rc = client_call(cli_client(), "GET", "/health", NULL, &r);
    if (rc != EXIT_OK)
        return rc;
    if (r.status != 200 && r.status != 503) {
        rc = reply_exit(&r, "health");
        reply_free(&r);
        return rc;
    }
    json_object *doc = reply_json(&r, "health");
    long status = r.status;
    reply_free(&r);
    if (!doc)
        return EXIT_ERROR;
    if (opt_json) {
        print_json(doc);
    } else {
        printf("server   %s\n", cli_client()->base);
        printf("status   %s\n", jstr(doc, "status") ? jstr(doc, "status") : "?");
        if (jstr(doc, "version"))
            printf("version  %s\n", jstr(doc, "version"));
        json_object *services;
        if (json_object_object_get_ex(doc, "services", &services) &&
            json_object_is_type(services, json_type_array)) {
            /* Addresses come only with a valid token: no column without. */
            size_t n = json_object_array_length(services), cols = 2;
            for (size_t i = 0; i < n; i++)
                if (jstr(json_object_array_get_idx(services, i), "address"))
                    cols = 3;
            static const char *const header[] = {"SERVICE", "STATE", "ADDRESS"};
            struct table t;
            table_init(&t, cols, header);
            for (size_t i = 0; i < n; i++) {
                json_object *s = json_object_array_get_idx(services, i);
                const char *row[] = {jstr(s, "name"), jstr(s, "state"), jstr(s, "address")};
                table_add(&t, row);
            }
            putchar('\n');
            table_print(&t, stdout);
            table_free(&t);
        }
    }
    json_object_put(doc);
    if (status == 503) {
        error_line("health: a backing service is down (HTTP 503)");
        return EXIT_ERROR;
    }
    return EXIT_OK;
}

static bool print_chunk(const char *data, size_t len, void *ctx)
{
    (void)ctx;
    return fwrite(data, 1, len, stdout) == len;
}

/* The Prometheus text as the server gives it, also with --json: it has
 * no JSON form. */
int cmd_metrics(int argc, char **argv)
{
    int first = parse_command_options(argc, argv, "", NULL, no_options, NULL);
    if (first != argc)
        die_usage("usage: acp metrics");
    struct stream_opts so = {.sink = print_chunk};
    struct reply r = {0};
    int rc = client_stream(cli_client(), "/metrics", &so, &r);
    if (rc == EXIT_OK)
        rc = reply_exit(&r, "metrics");
    reply_free(&r);
    if (fflush(stdout) != 0 && rc == EXIT_OK)
        rc = EXIT_ERROR;
    return rc;
}
