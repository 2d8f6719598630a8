/* The executors' check of a job config (examples/server/executors.c,
 * executors_validate()), with a settings file that allows two programs,
 * at most 4 arguments of at most 16 bytes. The input is the config, read
 * as the server reads a request body.
 *
 * Properties: never a crash or a leak; 0 or -1, a refusal names a member
 * ("config...") and gives a reason; the same config gets the same answer;
 * an accepted config follows the rules docs/http-api.adoc gives for its
 * executor, checked here independently. */
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "executors.h"
#include "fuzz.h"
#include "settings.h"
#include "slog.h"

#define MAX_ARGS      4
#define MAX_ARG_BYTES 16

static settings cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    slog_set_level(ACP_LOG_ERROR);
    static const char text[] =
        "{\"database\": {\"host\": \"h\", \"dbname\": \"d\", \"user\": \"u\", \"password\": \"p\"},"
        " \"s3\": {\"host\": \"h\", \"bucket\": \"acp-test\", \"access_key\": \"a\","
        " \"secret_key\": \"s\"},"
        " \"rabbitmq\": {\"host\": \"h\", \"user\": \"u\", \"password\": \"p\"},"
        " \"executors\": {\"command\": {\"programs\": {\"wc\": \"/usr/bin/wc\", \"echo\": "
        "\"/bin/echo\"}, \"max_args\": 4, \"max_arg_bytes\": 16}}}";
    int fd = memfd_create("fuzz-executor-settings", 0);
    char path[64], err[1024];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1)) {
        perror("fuzz_executor_config: settings file");
        abort();
    }
    if (settings_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_executor_config: settings: %s\n", err);
        abort();
    }
    close(fd);
    return 0;
}

static int plain_string(json_object *v, size_t max)
{
    return json_object_is_type(v, json_type_string) &&
           strlen(json_object_get_string(v)) == (size_t)json_object_get_string_len(v) &&
           (size_t)json_object_get_string_len(v) <= max;
}

/* The documented rules of each executor. */
static void check_accepted(json_object *config)
{
    json_object *executor, *v;
    FUZZ_CHECK(json_object_is_type(config, json_type_object),
               "accepted a config that is no object");
    FUZZ_CHECK(json_object_object_get_ex(config, "executor", &executor) &&
                   json_object_is_type(executor, json_type_string),
               "accepted without an executor");
    const char *name = json_object_get_string(executor);
    if (strcmp(name, "sleep") == 0) {
        FUZZ_CHECK(
            json_object_object_get_ex(config, "seconds", &v) &&
                (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)),
            "sleep accepted without a number of seconds");
        double d = json_object_get_double(v);
        FUZZ_CHECK(isfinite(d) && d >= 0, "sleep accepted %g seconds", d);
    } else if (strcmp(name, "checksum") == 0) {
        FUZZ_CHECK(json_object_object_get_ex(config, "text", &v) &&
                       json_object_is_type(v, json_type_string),
                   "checksum accepted without a text");
    } else {
        FUZZ_CHECK(strcmp(name, "command") == 0, "accepted executor '%s'", name);
        FUZZ_CHECK(json_object_object_get_ex(config, "program", &v) && plain_string(v, 64) &&
                       (strcmp(json_object_get_string(v), "wc") == 0 ||
                        strcmp(json_object_get_string(v), "echo") == 0),
                   "command accepted a program that is not allowed");
        if (json_object_object_get_ex(config, "args", &v)) {
            FUZZ_CHECK(json_object_is_type(v, json_type_array), "args accepted as no array");
            size_t n = json_object_array_length(v);
            FUZZ_CHECK(n <= MAX_ARGS, "%zu args accepted", n);
            for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(plain_string(json_object_array_get_idx(v, i), MAX_ARG_BYTES),
                           "args[%zu] accepted: not a string of at most %d bytes without NUL", i,
                           MAX_ARG_BYTES);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    json_tokener *tok = json_tokener_new_ex(128);
    if (!tok)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *config = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_tokener_free(tok);
    if (!config)
        return 0;

    const char *field = NULL, *field_again = NULL;
    char msg[1100], msg_again[1100];
    msg[0] = msg_again[0] = '\0';
    int rc = executors_validate(&cfg, config, &field, msg, sizeof msg);
    int rc_again = executors_validate(&cfg, config, &field_again, msg_again, sizeof msg_again);
    FUZZ_CHECK(rc == 0 || rc == -1, "executors_validate returned %d", rc);
    FUZZ_CHECK(rc == rc_again, "a second check answered %d, the first %d", rc_again, rc);
    if (rc == 0) {
        check_accepted(config);
    } else {
        FUZZ_CHECK(field && strncmp(field, "config", 6) == 0, "the refusal names no member: %s",
                   field ? field : "(null)");
        FUZZ_CHECK(msg[0] != '\0', "a refusal without a reason (%s)", field);
        FUZZ_CHECK(strcmp(field, field_again) == 0 && strcmp(msg, msg_again) == 0,
                   "a second check differs: %s: %s / %s: %s", field, msg, field_again, msg_again);
    }
    json_object_put(config);
    return 0;
}
