/* acp-example-server: an HTTP jobs API over async_platform.
 *
 *   acp-example-server [--config FILE] [--port N]
 *
 * Start-up order: settings, the listening socket (so that a busy port fails
 * before anything connects), the platform (database, S3, RabbitMQ), then
 * the HTTP daemon. SIGINT or SIGTERM stops the HTTP daemon first, so that no
 * handler runs any more, then the platform. docs/http-api.adoc has it all. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "executors.h"
#include "health.h"
#include "queues.h"
#include "http.h"
#include "server.h"
#include "settings.h"
#include "slog.h"
#include "tls.h"
#include "upload.h"

/* Exit statuses, after sysexits.h. */
#define EXIT_USAGE       64
#define EXIT_UNAVAILABLE 69 /* a backing service cannot be reached */
#define EXIT_CONFIG      78

static void main_usage(FILE *out)
{
    fputs("usage: acp-example-server [--config FILE] [--port N] [--help]\n"
          "\n"
          "An HTTP jobs API over async_platform (see docs/http-api.adoc).\n"
          "\n"
          "  --config FILE  JSON settings; without it the ACP_TEST_* variables printed by\n"
          "                 scripts/stack and a queue named \"default\" are used\n"
          "  --port N       listen on port N (0: any free port), overriding the file\n"
          "  --help         this text\n"
          "\n"
          "Listens on 127.0.0.1:8080 unless configured otherwise. Prints\n"
          "\"listening on http(s)://ADDRESS:PORT\" on stdout once it serves; SIGINT or\n"
          "SIGTERM stops it. Exit status: 0 after a clean stop, 64 bad usage, 69 a\n"
          "backing service is unreachable, 78 bad configuration, 1 anything else.\n",
          out);
}

/* Bind @address (an IP literal) and @port. Returns the socket, or -1 with
 * the reason in @err; *bound receives the actual port. */
static int main_listen(const char *address, long port, int backlog, long *bound, char *err,
                       size_t errlen)
{
    char service[16];
    snprintf(service, sizeof service, "%ld", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(address, service, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "listen.address '%s': not an IP address (%s)", address,
                 gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        snprintf(err, errlen, "cannot listen on %s port %ld: %s", address, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
        getnameinfo((struct sockaddr *)&sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        *bound = strtol(serv, NULL, 10);
    else
        *bound = port;
    return fd;
}

static int main_exit_status(int code)
{
    switch (code) {
    case ACP_EDB:
    case ACP_EBROKER:
    case ACP_ESTORAGE:
        return EXIT_UNAVAILABLE;
    case ACP_EINVAL:
    case ACP_EVERSION:
    case ACP_ENOQUEUE:
    case ACP_ECONFLICT: /* the S3 root belongs to another database */
        return EXIT_CONFIG;
    default:
        return 1;
    }
}

static int main_serve(settings *cfg)
{
    char err[1024];
    long port;
    int listen_fd = main_listen(cfg->listen_address, cfg->port, 128, &port, err, sizeof err);
    if (listen_fd < 0) {
        fprintf(stderr, "acp-example-server: %s\n", err);
        return 1;
    }

    tls_material tls = {0};
    if (cfg->tls_cert_file &&
        tls_load(cfg->tls_cert_file, cfg->tls_key_file, &tls, err, sizeof err)) {
        fprintf(stderr, "acp-example-server: %s\n", err);
        close(listen_fd);
        return EXIT_CONFIG;
    }
    server srv = {.cfg = cfg, .tls_cert = tls.cert, .tls_key = tls.key};
    acp_executor_factory factory;
    executors_factory(&factory, cfg);
    acp_config config;
    acp_queue_config *queues = NULL;
    if (settings_to_acp_config(cfg, &config, &queues) != 0) {
        fprintf(stderr, "acp-example-server: out of memory\n");
        close(listen_fd);
        tls_free(&tls);
        return 1;
    }
    config.executor_factory = &factory;
    int rc = acp_init(&srv.platform, &config);
    free(queues);
    if (rc != 0) {
        fprintf(stderr, "acp-example-server: cannot start: %s: %s\n", acp_strerror(rc),
                acp_last_error());
        close(listen_fd);
        tls_free(&tls);
        return main_exit_status(rc);
    }

    /* After acp_init(), which makes the workspace root. */
    if (upload_setup(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "acp-example-server: cannot start: %s\n", err);
        close(listen_fd);
        acp_shutdown(srv.platform);
        return 1;
    }
    struct MHD_Daemon *daemon = http_start(&srv, listen_fd, err, sizeof err);
    if (!daemon) {
        upload_teardown();
        fprintf(stderr, "acp-example-server: %s\n", err);
        close(listen_fd);
        acp_shutdown(srv.platform);
        tls_free(&tls);
        return 1;
    }
    int v6 = strchr(cfg->listen_address, ':') != NULL;
    const char *scheme = tls.key ? "https" : "http";
    slog(ACP_LOG_INFO, "listening on %s://%s%s%s:%ld with %zu queue(s), %zu token(s)", scheme,
         v6 ? "[" : "", cfg->listen_address, v6 ? "]" : "", port, cfg->queue_count,
         cfg->auth.count);
    printf("listening on %s://%s%s%s:%ld\n", scheme, v6 ? "[" : "", cfg->listen_address,
           v6 ? "]" : "", port);
    fflush(stdout);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    int sig = 0;
    while (sigwait(&stop, &sig) != 0)
        ;
    slog(ACP_LOG_INFO, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_stop(&srv, daemon);
    tls_free(&tls);
    health_release();
    queues_release();
    acp_shutdown(srv.platform);
    upload_teardown();
    slog(ACP_LOG_INFO, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"port", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    long port = -1;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:p:h", options, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'p':
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || port < 0 || port > 65535) {
                fprintf(stderr, "acp-example-server: --port: '%s' is not a port (0..65535)\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            main_usage(stdout);
            return 0;
        default:
            main_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "acp-example-server: unexpected argument '%s'\n", argv[optind]);
        main_usage(stderr);
        return EXIT_USAGE;
    }

    settings cfg;
    char err[1024];
    if (settings_load(&cfg, config_path, err, sizeof err) != 0) {
        fprintf(stderr, "acp-example-server: %s\n", err);
        return EXIT_CONFIG;
    }
    if (port >= 0)
        cfg.port = port;
    slog_set_level(cfg.log_level);

    /* Before any thread exists, so that every thread inherits it: the stop
     * signals are taken by sigwait() alone, and a client or a child that
     * goes away mid-write gives EPIPE rather than killing the server. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = main_serve(&cfg);
    settings_free(&cfg);
    return status;
}
