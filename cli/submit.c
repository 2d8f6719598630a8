/* acp submit: builds the POST /jobs body from the options, sends it as
 * JSON (or as multipart/form-data with input files) and, with --wait,
 * waits for the job like `acp wait`. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

struct submit_opts {
    const char *config;
    struct input_file *inputs;
    size_t n_inputs;
    json_object *body;
    bool wait;
};

static void submit_option(int key, const char *arg, void *ctx)
{
    struct submit_opts *o = ctx;
    switch (key) {
    case 'c':
        o->config = arg;
        break;
    case 'i': {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || !eq[1])
            die_usage("--input: expected NAME=PATH, got '%s'", arg);
        o->inputs = realloc(o->inputs, (o->n_inputs + 1) * sizeof *o->inputs);
        /* NAME is cut out of arg in place: argv outlives the command. */
        ((char *)eq)[0] = '\0';
        o->inputs[o->n_inputs].name = arg;
        o->inputs[o->n_inputs].path = eq + 1;
        o->n_inputs++;
        break;
    }
    case 'p':
        json_object_object_add(o->body, "priority",
                               json_object_new_int64(option_long("--priority", arg)));
        break;
    case 'm':
        json_object_object_add(o->body, "max_attempts",
                               json_object_new_int64(option_long("--max-attempts", arg)));
        break;
    case 't':
        json_object_object_add(o->body, "timeout_seconds",
                               json_object_new_int64(option_long("--timeout", arg)));
        break;
    case 'd':
        json_object_object_add(o->body, "delay_seconds",
                               json_object_new_double(option_seconds("--delay", arg)));
        break;
    case 'w':
        o->wait = true;
        break;
    }
}

/* The --config text: JSON itself, @FILE, or @- for stdin. */
static char *config_text(const char *arg)
{
    if (arg[0] != '@')
        return strdup(arg);
    const char *path = arg + 1;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        error_line("--config @%s: %s", path, strerror(errno));
        return NULL;
    }
    struct buffer b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buffer_append(&b, chunk, n);
    bool bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        error_line("--config @%s: read error", path);
        buffer_free(&b);
        return NULL;
    }
    if (!b.data)
        buffer_append(&b, "", 0);
    return b.data;
}

static json_object *parse_config(const char *arg)
{
    char *text = config_text(arg);
    if (!text)
        exit(EXIT_ERROR);
    json_tokener *tok = json_tokener_new();
    json_object *config = json_tokener_parse_ex(tok, text, (int)strlen(text));
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t offset = json_tokener_get_parse_end(tok);
    bool trailing = false;
    if (config && err == json_tokener_success) {
        for (const char *p = text + offset; *p; p++)
            if (*p != ' ' && *p != '\n' && *p != '\t' && *p != '\r')
                trailing = true;
    }
    json_tokener_free(tok);
    free(text);
    if (!config || err != json_tokener_success || trailing) {
        json_object_put(config);
        die_usage("--config: not valid JSON (%s at byte %zu)",
                  trailing ? "text after the value" : json_tokener_error_desc(err), offset);
    }
    if (!json_object_is_type(config, json_type_object)) {
        json_object_put(config);
        die_usage("--config: expected a JSON object such as '{\"executor\": \"sleep\", "
                  "\"seconds\": 1}'");
    }
    return config;
}

int cmd_submit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"input", required_argument, NULL, 'i'},
        {"priority", required_argument, NULL, 'p'}, {"delay", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},  {"max-attempts", required_argument, NULL, 'm'},
        {"wait", no_argument, NULL, 'w'},           {0}};
    struct submit_opts o = {.body = json_object_new_object()};
    int first = parse_command_options(argc, argv, "", opts, submit_option, &o);
    if (argc - first != 1)
        die_usage("usage: acp submit QUEUE --config JSON|@FILE [options]");
    if (!o.config)
        die_usage("submit: --config is required (the job's config, a JSON object)");
    for (size_t i = 0; i < o.n_inputs; i++) {
        FILE *f = fopen(o.inputs[i].path, "rb");
        if (!f) {
            error_line("--input %s=%s: %s", o.inputs[i].name, o.inputs[i].path, strerror(errno));
            exit(EXIT_ERROR);
        }
        fclose(f);
    }
    json_object *config = parse_config(o.config);
    /* queue and config first, as a person would write the body. */
    json_object *body = json_object_new_object();
    json_object_object_add(body, "queue", json_object_new_string(argv[first]));
    json_object_object_add(body, "config", config);
    json_object_object_foreach(o.body, key, value)
    {
        json_object_object_add(body, key, json_object_get(value));
    }
    json_object_put(o.body);
    const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);

    struct client *c = cli_client();
    struct reply r = {0};
    int rc = o.n_inputs ? client_post_multipart(c, "/jobs", text, o.inputs, o.n_inputs, &r)
                        : client_call(c, "POST", "/jobs", text, &r);
    json_object_put(body);
    free(o.inputs);
    if (rc == EXIT_OK)
        rc = reply_exit(&r, "submit");
    json_object *job = rc == EXIT_OK ? reply_json(&r, "submit") : NULL;
    if (rc == EXIT_OK && !job)
        rc = EXIT_ERROR;
    long status = r.status;
    reply_free(&r);
    if (rc != EXIT_OK)
        return rc;
    const char *id = jstr(job, "id");
    if (!id) {
        error_line("submit: the server's answer has no job id");
        json_object_put(job);
        return EXIT_ERROR;
    }
    /* With --wait and --json the one document is the ended job. */
    if (opt_json && !o.wait)
        print_json(job);
    else if (!opt_json && o.wait)
        printf("%s %s\n", id, status == 200 ? "exists" : "submitted");
    else if (!opt_json)
        printf("%s %s (%s)\n", id, status == 200 ? "exists" : "submitted",
               jstr(job, "status") ? jstr(job, "status") : "?");
    fflush(stdout);
    if (o.wait) {
        char *ids[1] = {strdup(id)};
        json_object_put(job);
        rc = wait_jobs(c, ids, 1, 0, false);
        free(ids[0]);
        return rc;
    }
    json_object_put(job);
    return EXIT_OK;
}
