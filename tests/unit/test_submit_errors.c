/* What acp_submit tells its caller when a submission is refused before any
 * backend is asked: the code, and the thread's message naming the problem,
 * whatever an earlier call left there (point 5 of issue 12: the message is
 * set once, at the API's boundary). No services: a submission that passes
 * validation would reach the store, which these platforms do not have. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "async_platform.h"
#include "error.h"
#include "platform_state.h"

/* A platform with one queue, "q", and nothing else. */
static acp_platform platform;
static queue_rt queue = {.id = (char *)"q"};

static int setup(void **state)
{
    (void)state;
    platform.queues = &queue;
    platform.queue_count = 1;
    atomic_store(&platform.stopping, false);
    return 0;
}

/* Submit @sub to @queue_id after another failure left its message, and
 * check the code, the message and that the job was cleared. */
static void refused(const char *queue_id, const acp_submission *sub, int code, const char *message)
{
    error_set(ACP_EDB, "a message left by an earlier call");
    acp_job job;
    memset(&job, 0x5a, sizeof job);
    int rc = acp_submit(&platform, queue_id, sub, &job);
    if (rc != code || strcmp(acp_last_error(), message) != 0)
        fail_msg("got %d \"%s\", expected %d \"%s\"", rc, acp_last_error(), code, message);
    acp_job zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&job, &zero, sizeof job);
}

static acp_submission submission(const char *config, acp_input *inputs, size_t count)
{
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    sub.inputs = inputs;
    sub.input_count = count;
    return sub;
}

static void arguments_and_queue(void **state)
{
    (void)state;
    acp_submission sub = submission("{}", NULL, 0);
    assert_int_equal(acp_submit(NULL, "q", &sub, NULL), ACP_EINVAL);
    assert_string_equal(acp_last_error(), "acp_submit: NULL argument");
    refused(NULL, &sub, ACP_EINVAL, "acp_submit: NULL argument");
    refused("nope", &sub, ACP_ENOQUEUE, "queue 'nope' is not configured");
    atomic_store(&platform.stopping, true);
    refused("q", &sub, ACP_ESHUTDOWN, "the platform is shutting down");
}

static void submission_itself(void **state)
{
    (void)state;
    refused("q", NULL, ACP_EINVAL, "submission: NULL");
    acp_submission sub = submission("{}", NULL, 0);
    sub.version = 99;
    refused("q", &sub, ACP_EVERSION,
            "submission.version: 99 is not supported (call acp_submission_init)");
    sub = submission(NULL, NULL, 0);
    refused("q", &sub, ACP_EINVAL, "submission.id: no id given and no config to derive it from");

    /* The config's own error, as the JSON parser words it. */
    sub = submission("{\"a\":", NULL, 0);
    error_set(ACP_EDB, "a message left by an earlier call");
    assert_int_equal(acp_submit(&platform, "q", &sub, NULL), ACP_EINVAL);
    assert_int_equal(strncmp(acp_last_error(), "submission.config", 17), 0);
}

static void inputs(void **state)
{
    (void)state;
    acp_submission sub = submission("{}", NULL, 2);
    refused("q", &sub, ACP_EINVAL, "submission.inputs: NULL with input_count 2");

    acp_input reserved[] = {{.name = "input-config", .data = "x", .size = 1}};
    sub = submission("{}", reserved, 1);
    refused("q", &sub, ACP_EINVAL, "submission.inputs[0]: 'input-config' is a reserved name");

    acp_input unsafe[] = {{.name = "a", .data = "x", .size = 1}, {.name = "../b", .size = 0}};
    sub = submission("{}", unsafe, 2);
    refused("q", &sub, ACP_EINVAL,
            "submission.inputs[1]: unsafe file name '../b': use 1 to 255 of letters, digits, "
            "'_', '.' and '-', and not '.' or '..'");

    acp_input twice[] = {{.name = "a", .data = "x", .size = 1},
                         {.name = "a", .data = "y", .size = 1}};
    sub = submission("{}", twice, 2);
    refused("q", &sub, ACP_EINVAL, "submission.inputs[1]: duplicate input name 'a'");

    acp_input both[] = {{.name = "a", .path = "/etc/hostname", .data = "x", .size = 1}};
    sub = submission("{}", both, 1);
    refused("q", &sub, ACP_EINVAL, "submission.inputs[0] ('a'): give either path or data/size");

    acp_input missing[] = {{.name = "a", .data = "x", .size = 1},
                           {.name = "m", .path = "/nonexistent/acp-input"}};
    sub = submission("{}", missing, 2);
    refused("q", &sub, ACP_EIO,
            "submission.inputs[1] ('m'): cannot read /nonexistent/acp-input: No such file or "
            "directory");

    acp_input directory[] = {{.name = "d", .path = "/"}};
    sub = submission("{}", directory, 1);
    refused("q", &sub, ACP_EIO, "submission.inputs[0] ('d'): / is not a regular file");

    acp_input *many = calloc(1001, sizeof *many);
    assert_non_null(many);
    sub = submission("{}", many, 1001);
    refused("q", &sub, ACP_ETOOBIG, "submission.inputs: more than 1000 files");
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(arguments_and_queue, setup),
        cmocka_unit_test_setup(submission_itself, setup),
        cmocka_unit_test_setup(inputs, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
