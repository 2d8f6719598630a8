/* The example server's settings file (examples/server/settings.c), through
 * settings_load() as the server calls it: the input is the file.
 *
 * Properties: the loader never crashes or leaks (ASan); it answers 0 or
 * -1, and a failure always comes with a message; loading the same file
 * twice gives the same answer and message; a loaded configuration has at
 * least one queue, each with an id, and the listen limits that
 * docs/http-api.adoc documents. Nothing here depends on particular keys
 * beyond those. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "settings.h"
#include "slog.h"

static int file_fd = -1;
static char file_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Only the file decides: none of the stack's ACP_TEST_* variables. */
    static const char *const vars[] = {
        "ACP_TEST_PG_HOST",       "ACP_TEST_PG_PORT",       "ACP_TEST_PG_DB",
        "ACP_TEST_PG_USER",       "ACP_TEST_PG_PASSWORD",   "ACP_TEST_S3_HOST",
        "ACP_TEST_S3_PORT",       "ACP_TEST_S3_BUCKET",     "ACP_TEST_S3_ACCESS_KEY",
        "ACP_TEST_S3_SECRET_KEY", "ACP_TEST_AMQP_HOST",     "ACP_TEST_AMQP_PORT",
        "ACP_TEST_AMQP_USER",     "ACP_TEST_AMQP_PASSWORD",
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    slog_set_level(ACP_LOG_ERROR);
    /* An anonymous file: nothing is written to disk, it goes with the process. */
    file_fd = memfd_create("fuzz-settings", 0);
    if (file_fd < 0)
        abort();
    snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
    return 0;
}

static int load(const uint8_t *data, size_t size, settings *s, char *err, size_t errlen)
{
    if (ftruncate(file_fd, 0) != 0 || pwrite(file_fd, data, size, 0) != (ssize_t)size)
        abort();
    memset(s, 0, sizeof *s);
    err[0] = '\0';
    return settings_load(s, file_path, err, errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    settings s, again;
    char err[1024], err_again[1024];
    int rc = load(data, size, &s, err, sizeof err);
    FUZZ_CHECK(rc == 0 || rc == -1, "settings_load returned %d", rc);
    if (rc != 0) {
        FUZZ_CHECK(err[0] != '\0', "a failure without a message");
    } else {
        FUZZ_CHECK(s.queue_count >= 1 && s.queues, "loaded without a queue");
        for (size_t i = 0; i < s.queue_count; i++)
            FUZZ_CHECK(s.queues[i].id && s.queues[i].id[0], "queues[%zu] has no id", i);
        FUZZ_CHECK(s.port >= 0 && s.port <= 65535, "listen.port %ld", s.port);
        FUZZ_CHECK(s.max_connections >= 1 && s.max_connections <= 10000,
                   "listen.max_connections %ld", s.max_connections);
        FUZZ_CHECK(s.connection_timeout >= 1 && s.connection_timeout <= 86400,
                   "listen.connection_timeout %ld", s.connection_timeout);
        FUZZ_CHECK(s.max_body_bytes >= 1024 && s.max_body_bytes <= 64L * 1024 * 1024,
                   "max_body_bytes %ld", s.max_body_bytes);
        FUZZ_CHECK(s.listen_address && s.db_host && s.s3_host && s.s3_bucket,
                   "loaded without an address, database host, S3 host or bucket");
    }

    int rc_again = load(data, size, &again, err_again, sizeof err_again);
    FUZZ_CHECK(rc_again == rc, "a second load answered %d, the first %d", rc_again, rc);
    FUZZ_CHECK(rc == 0 || strcmp(err, err_again) == 0, "messages differ:\n  %s\n  %s", err,
               err_again);
    settings_free(&s);
    settings_free(&again);
    return 0;
}
