/* acp's entry: the global options, the choice of command, --help and
 * --version. Global options are taken before the command and among its
 * own options alike (`acp list --json` and `acp --json list`). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SERVER "http://127.0.0.1:8080"

enum { OPT_SERVER = 1000, OPT_TOKEN_FILE, OPT_CACERT, OPT_JSON, OPT_HELP, OPT_VERSION };

static const struct option global_options[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
};
#define N_GLOBAL (sizeof global_options / sizeof global_options[0])

static const char *opt_server, *opt_token_file, *opt_cacert;
static struct client the_client;
static bool client_made;

static const char usage_text[] =
    "Usage: acp [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "The command-line client of the async_platform example server's HTTP API.\n"
    "\n"
    "Commands:\n"
    "  submit QUEUE [--config JSON|@FILE] [--input NAME=PATH]... [--priority N]\n"
    "         [--delay S] [--timeout S] [--max-attempts N] [--wait]\n"
    "                        submit a job (--wait: until it ends)\n"
    "  status ID             a job's state\n"
    "  list [--status S,...] [--queue Q] [--limit N]\n"
    "                        jobs, oldest first (default 50; follows pages up to N)\n"
    "  wait ID... [--timeout S]\n"
    "                        wait until the jobs end\n"
    "  cancel ID             cancel a queued or running job\n"
    "  logs ID [-f]          a job's log (-f: follow it until the job ends)\n"
    "  files ID              a job's files\n"
    "  get ID NAME [-o PATH] download a file (-o -: to stdout)\n"
    "  expire ID             expire a job now (its files go)\n"
    "  delete ID             delete a job and its files\n"
    "  health                the state of the server's services\n"
    "  metrics               the server's Prometheus metrics\n"
    "\n"
    "Options:\n"
    "  --server URL          the server (default $ACP_SERVER, else " DEFAULT_SERVER ")\n"
    "  --token-file PATH     send the token in PATH (default: $ACP_TOKEN)\n"
    "  --cacert FILE         CA certificates to verify an https server with\n"
    "  --json                print the server's JSON (for scripts)\n"
    "  --help, --version\n"
    "\n"
    "Exit status:\n"
    "  0 ok                  1 other error (server 5xx, I/O)\n"
    "  2 usage, or input the server refused (400)\n"
    "  3 not found           4 job failed or cancelled (wait, submit --wait)\n"
    "  5 server unreachable  6 authentication refused (401, 403)\n"
    "  7 wait timed out      8 conflict with the job's state (409)\n";

static void handle_global(int key, const char *arg)
{
    switch (key) {
    case OPT_SERVER:
        opt_server = arg;
        break;
    case OPT_TOKEN_FILE:
        opt_token_file = arg;
        break;
    case OPT_CACERT:
        opt_cacert = arg;
        break;
    case OPT_JSON:
        opt_json = true;
        break;
    case OPT_HELP:
        fputs(usage_text, stdout);
        exit(EXIT_OK);
    case OPT_VERSION:
        printf("acp %s\n", ACP_CLI_VERSION);
        exit(EXIT_OK);
    default:
        /* getopt_long printed what was wrong */
        fputs("acp --help for usage\n", stderr);
        exit(EXIT_USAGE);
    }
}

int parse_command_options(int argc, char **argv, const char *shortopts,
                          const struct option *longopts,
                          void (*handle)(int key, const char *arg, void *ctx), void *ctx)
{
    size_t n = 0;
    while (longopts && longopts[n].name)
        n++;
    struct option *all = calloc(n + N_GLOBAL + 1, sizeof *all);
    memcpy(all, global_options, sizeof global_options);
    if (n)
        memcpy(all + N_GLOBAL, longopts, n * sizeof *all);
    char spec[64];
    /* '-' would reorder nothing; '+' is not wanted: options may follow
     * operands (`acp logs ID -f`). A leading ':' is not used so that
     * getopt_long names a bad option itself. */
    snprintf(spec, sizeof spec, "h%s", shortopts ? shortopts : "");
    optind = 0; /* glibc: start over, as for a new argv */
    /* getopt_long names argv[0] in its messages: "acp list: ...". */
    char *command = argv[0], prog[64];
    snprintf(prog, sizeof prog, "acp %s", command);
    argv[0] = prog;
    int key;
    while ((key = getopt_long(argc, argv, spec, all, NULL)) != -1) {
        if (key == 'h')
            handle_global(OPT_HELP, NULL);
        else if (key >= OPT_SERVER && key <= OPT_VERSION)
            handle_global(key, optarg);
        else if (key == '?' || key == ':')
            handle_global(key, NULL);
        else
            handle(key, optarg, ctx);
    }
    free(all);
    argv[0] = command;
    return optind;
}

struct client *cli_client(void)
{
    if (client_made)
        return &the_client;
    const char *server = opt_server;
    if (!server)
        server = getenv("ACP_SERVER");
    if (!server || !*server)
        server = DEFAULT_SERVER;
    int rc = client_init(&the_client, server, opt_token_file, opt_cacert);
    if (rc != EXIT_OK) {
        client_free(&the_client);
        exit(rc);
    }
    client_made = true;
    return &the_client;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"submit", cmd_submit}, {"status", cmd_status},      {"list", cmd_list},
    {"wait", cmd_wait},     {"cancel", cmd_simple_post}, {"expire", cmd_simple_post},
    {"delete", cmd_delete}, {"logs", cmd_logs},          {"files", cmd_files},
    {"get", cmd_get},       {"health", cmd_health},      {"metrics", cmd_metrics},
};

int main(int argc, char **argv)
{
    /* Global options before the command; '+' stops at the command's name. */
    optind = 0;
    int key;
    while ((key = getopt_long(argc, argv, "+h", global_options, NULL)) != -1)
        handle_global(key == 'h' ? OPT_HELP : key, optarg);
    if (optind >= argc)
        die_usage("no command given");
    const char *name = argv[optind];
    int rc = -1;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("acp: cannot initialise libcurl\n", stderr);
        return EXIT_ERROR;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(name, commands[i].name) == 0)
            rc = commands[i].run(argc - optind, argv + optind);
    if (rc < 0) {
        curl_global_cleanup();
        die_usage("unknown command '%s'", name);
    }
    if (client_made)
        client_free(&the_client);
    curl_global_cleanup();
    return rc;
}
