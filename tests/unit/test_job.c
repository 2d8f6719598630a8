/* Job values: status names, reserved and unsafe names, and what an executor
 * reports through its context. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "job.h"
#include "workspace.h"

static void status_names_are_upstreams(void **state)
{
    (void)state;
    assert_string_equal(acp_job_status_name(ACP_STATUS_QUEUED), "queued");
    assert_string_equal(acp_job_status_name(ACP_STATUS_IN_PROGRESS), "in-progress");
    assert_string_equal(acp_job_status_name(ACP_STATUS_COMPLETE), "complete");
    assert_string_equal(acp_job_status_name(ACP_STATUS_FAILED), "failed");
    assert_string_equal(acp_job_status_name(ACP_STATUS_EXPIRED), "expired");
    assert_string_equal(acp_job_status_name((acp_job_status)0), "unknown");
}

static void names_are_checked(void **state)
{
    (void)state;
    const char *reserved[] = {".workspace", ".queued",  ".in-progress", ".complete",
                              ".failed",    ".expired", "input-config"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        assert_true(workspace_is_reserved(reserved[i]));
        assert_int_equal(job_check_name("output", reserved[i]), ACP_EINVAL);
        assert_non_null(strstr(acp_last_error(), "reserved"));
    }
    const char *unsafe[] = {".", "..", "a/b", "/etc/passwd", "a b", "tab\t", "ü", "x;y"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        assert_int_equal(job_check_name("output", unsafe[i]), ACP_EINVAL);
        assert_non_null(strstr(acp_last_error(), "unsafe file name"));
    }
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    assert_int_equal(job_check_name("output", long_name), ACP_EINVAL);
    assert_int_equal(job_check_name("output", NULL), ACP_EINVAL);
    assert_int_equal(job_check_name("output", ""), ACP_EINVAL);
    const char *fine[] = {"result.txt", "a", "...", ".hidden", "x-y_z.1", "config"};
    for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
        assert_int_equal(job_check_name("output", fine[i]), 0);
}

static void outcome_collects_outputs_and_message(void **state)
{
    (void)state;
    acp_job_outcome outcome = {0};
    acp_job_context ctx = {.version = ACP_JOB_CONTEXT_VERSION, .outcome = &outcome};
    assert_int_equal(acp_job_add_output(&ctx, "a.txt"), 0);
    assert_int_equal(acp_job_add_output(&ctx, "b.txt"), 0);
    assert_int_equal(acp_job_add_output(&ctx, "a.txt"), 0); /* once is enough */
    assert_int_equal(acp_job_add_output(&ctx, "../a.txt"), ACP_EINVAL);
    assert_int_equal(acp_job_add_output(&ctx, "input-config"), ACP_EINVAL);
    assert_int_equal(outcome.output_count, 2);
    assert_string_equal(outcome.outputs[1], "b.txt");

    assert_int_equal(acp_job_set_message(&ctx, "first"), 0);
    assert_int_equal(acp_job_set_message(&ctx, "second é ✓"), 0);
    assert_string_equal(outcome.message, "second é ✓");
    /* Invalid UTF-8 never reaches the database. */
    assert_int_equal(acp_job_set_message(&ctx, "bad \xff\xfe, cut \xc3, surrogate \xed\xa0\x80!"),
                     0);
    assert_string_equal(outcome.message, "bad ??, cut ?, surrogate ???"
                                         "!");
    char huge[10000];
    memset(huge, 'm', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(acp_job_set_message(&ctx, huge), 0);
    assert_int_equal(strlen(outcome.message), 4096);

    assert_int_equal(acp_job_set_message(NULL, "x"), ACP_EINVAL);
    assert_int_equal(acp_job_add_output(NULL, "x"), ACP_EINVAL);
    job_outcome_clear(&outcome);
    assert_int_equal(outcome.output_count, 0);
    assert_null(outcome.message);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_names_are_upstreams),
        cmocka_unit_test(names_are_checked),
        cmocka_unit_test(outcome_collects_outputs_and_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
