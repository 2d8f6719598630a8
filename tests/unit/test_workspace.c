/* The S3 layout of a workspace: reserved names, what each wipe keeps, claim
 * marker names, and the status its flags give (docs/compatibility.adoc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "workspace.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The documented precedence, strongest first. */
static const acp_job_status strongest_first[] = {ACP_STATUS_FAILED, ACP_STATUS_EXPIRED,
                                                 ACP_STATUS_COMPLETE, ACP_STATUS_IN_PROGRESS,
                                                 ACP_STATUS_QUEUED};
static const char *const flag_names[] = {".failed", ".expired", ".complete", ".in-progress",
                                         ".queued"};

static void flags_are_upstreams_names(void **state)
{
    (void)state;
    for (size_t i = 0; i < COUNT(strongest_first); i++) {
        assert_string_equal(workspace_flag(strongest_first[i]), flag_names[i]);
        assert_true(workspace_is_flag(flag_names[i]));
    }
    assert_null(workspace_flag((acp_job_status)0));
    assert_false(workspace_is_flag(".workspace"));
    assert_false(workspace_is_flag("queued"));
    assert_false(workspace_is_flag(".queued2"));
    assert_string_equal(WORKSPACE_MARKER, ".workspace");
    assert_string_equal(WORKSPACE_CONFIG, "input-config");
}

/* Every subset of the five flags, beside the marker, in S3's key order and
 * reversed: the strongest flag present gives the status, queued when there
 * is none; each flag's time lands in its field. */
static void every_combination_of_flags_gives_the_documented_status(void **state)
{
    (void)state;
    for (unsigned mask = 0; mask < 1u << COUNT(flag_names); mask++) {
        for (int reversed = 0; reversed < 2; reversed++) {
            object_entry entries[8];
            size_t n = 0;
            entries[n++] = (object_entry){(char *)WORKSPACE_MARKER, 0, 1};
            entries[n++] = (object_entry){(char *)"out.txt", 3, 7};
            entries[n++] = (object_entry){(char *)".claim-new-abc", 0, 8};
            for (size_t i = 0; i < COUNT(flag_names); i++)
                if (mask & 1u << i)
                    entries[n++] = (object_entry){(char *)flag_names[i], 0, 100 + (int64_t)i};
            if (reversed)
                for (size_t i = 0; i < n / 2; i++) {
                    object_entry t = entries[i];
                    entries[i] = entries[n - 1 - i];
                    entries[n - 1 - i] = t;
                }
            object_list list = {entries, n};
            acp_job job = {.owned = 1, .queue_position = 5};
            assert_true(workspace_status_from_flags(&list, &job));

            acp_job_status expected = ACP_STATUS_QUEUED;
            for (size_t i = 0; i < COUNT(flag_names); i++)
                if (mask & 1u << i) {
                    expected = strongest_first[i];
                    break;
                }
            if (job.status != expected)
                fail_msg("flags 0x%x: status %s, expected %s", mask,
                         acp_job_status_name(job.status), acp_job_status_name(expected));
            assert_int_equal(job.owned, 0);
            assert_int_equal(job.queue_position, -1);
            /* .queued is index 4, .in-progress 3, .complete 2, .failed 0. */
            assert_int_equal(job.created, mask & 1u << 4 ? 104 : 0);
            assert_int_equal(job.grabbed, mask & 1u << 3 ? 103 : 0);
            if ((mask & 1u << 2) && !(mask & 1u << 0))
                assert_int_equal(job.finished, 102);
            else if ((mask & 1u << 0) && !(mask & 1u << 2))
                assert_int_equal(job.finished, 100);
            else if (!(mask & (1u << 0 | 1u << 2)))
                assert_int_equal(job.finished, 0);
        }
    }
}

static void without_the_marker_there_is_no_workspace(void **state)
{
    (void)state;
    object_entry entries[] = {{(char *)".queued", 0, 4}, {(char *)".complete", 0, 5}};
    object_list list = {entries, COUNT(entries)};
    acp_job job = {0};
    assert_false(workspace_status_from_flags(&list, &job));
    object_list empty = {NULL, 0};
    assert_false(workspace_status_from_flags(&empty, &job));
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
}

static void expired_is_read_whatever_other_flags_say(void **state)
{
    (void)state;
    object_entry failed_expired[] = {{(char *)".expired", 0, 9000000},
                                     {(char *)".failed", 0, 3},
                                     {(char *)WORKSPACE_MARKER, 0, 1}};
    object_list list = {failed_expired, 3};
    acp_job job = {0};
    assert_true(workspace_status_from_flags(&list, &job));
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_int_equal(workspace_expired_since(&list), 9000000);

    object_entry no_marker[] = {{(char *)".expired", 0, 5}};
    list = (object_list){no_marker, 1};
    assert_int_equal(workspace_expired_since(&list), -1);
    object_entry not_expired[] = {{(char *)WORKSPACE_MARKER, 0, 1}, {(char *)".complete", 0, 2}};
    list = (object_list){not_expired, 2};
    assert_int_equal(workspace_expired_since(&list), -1);
}

/* Every kind of name a workspace holds, with which of them each predicate
 * must keep. */
typedef struct name_case {
    const char *name;
    bool reserved, on_expiry, on_rerun, on_retry;
} name_case;

static const name_case names[] = {
    {".workspace", true, true, true, true},
    {".queued", true, true, false, true},
    {".in-progress", true, true, false, true},
    {".complete", true, true, false, true},
    {".failed", true, true, false, true},
    {".expired", true, true, true, true},
    {"input-config", true, false, false, true},
    {".claim-new-0123456789abcdef0123456789abcdef", true, true, true, true},
    {".claim-x1700000000-0123456789abcdef0123456789abcdef", true, true, true, true},
    {"in.txt", false, false, false, true}, /* an input of the job */
    {"data", false, false, false, true},   /* another input */
    {"out.txt", false, false, false, false},
    {"log.txt", false, false, false, false},
    {".hidden", false, false, false, false},
    {".claim", false, false, false, false},
    {".workspace2", false, false, false, false},
    {"config", false, false, false, false},
    {"queued", false, false, false, false},
};

static void each_keep_predicate_keeps_exactly_what_it_must(void **state)
{
    (void)state;
    const char *const inputs[] = {"in.txt", "data"};
    for (size_t i = 0; i < COUNT(names); i++) {
        const name_case *c = &names[i];
        if (workspace_is_reserved(c->name) != c->reserved)
            fail_msg("%s: reserved should be %d", c->name, c->reserved);
        if (workspace_kept_on_expiry(c->name) != c->on_expiry)
            fail_msg("%s: kept on expiry should be %d", c->name, c->on_expiry);
        if (workspace_kept_on_rerun(c->name) != c->on_rerun)
            fail_msg("%s: kept on re-run should be %d", c->name, c->on_rerun);
        if (workspace_kept_on_retry(c->name, inputs, COUNT(inputs)) != c->on_retry)
            fail_msg("%s: kept on retry should be %d", c->name, c->on_retry);
    }
    /* Without inputs a retry keeps only the reserved names. */
    for (size_t i = 0; i < COUNT(names); i++)
        assert_int_equal(workspace_kept_on_retry(names[i].name, NULL, 0), names[i].reserved);
}

static void claim_markers_are_named_and_parsed(void **state)
{
    (void)state;
    char marker[128];
    assert_true(workspace_claim_name(marker, sizeof marker, "new", "inst1"));
    assert_string_equal(marker, ".claim-new-inst1");
    assert_true(workspace_is_claim(marker));
    assert_true(workspace_claim_of(marker, "new"));
    assert_false(workspace_claim_of(marker, "ne"));
    assert_false(workspace_claim_of(marker, "x12"));
    assert_true(workspace_claim_of(".claim-x12-other", "x12"));
    assert_false(workspace_claim_of(".claim-x123-other", "x12"));
    assert_false(workspace_claim_of(".claim-newer-inst1", "new"));
    assert_false(workspace_claim_of("claim-new-inst1", "new"));
    assert_false(workspace_is_claim(".clai"));
    /* A name that does not fit is reported, never silently used. */
    char small[13];
    assert_false(workspace_claim_name(small, sizeof small, "new", "inst1"));
    assert_true(workspace_claim_name(small, sizeof small, "new", "i"));
}

static void flags_give_status_by_precedence(void **state)
{
    (void)state;
    object_entry entries[] = {
        {(char *)".workspace", 0, 1},     {(char *)".queued", 0, 100},
        {(char *)".in-progress", 0, 200}, {(char *)".complete", 0, 300},
        {(char *)"out.txt", 5, 300},
    };
    object_list list = {entries, 5};
    acp_job job = {0};
    assert_true(workspace_status_from_flags(&list, &job));
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.created, 100);
    assert_int_equal(job.grabbed, 200);
    assert_int_equal(job.finished, 300);
    assert_int_equal(job.owned, 0);
    assert_int_equal(job.queue_position, -1);

    object_entry expired[] = {
        {(char *)".workspace", 0, 1}, {(char *)".complete", 0, 3}, {(char *)".expired", 0, 4}};
    list = (object_list){expired, 3};
    assert_true(workspace_status_from_flags(&list, &job));
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    object_entry failed[] = {
        {(char *)".expired", 0, 4}, {(char *)".failed", 0, 3}, {(char *)".workspace", 0, 1}};
    list = (object_list){failed, 3};
    assert_true(workspace_status_from_flags(&list, &job));
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    object_entry no_marker[] = {{(char *)".queued", 0, 4}};
    list = (object_list){no_marker, 1};
    assert_false(workspace_status_from_flags(&list, &job));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flags_are_upstreams_names),
        cmocka_unit_test(every_combination_of_flags_gives_the_documented_status),
        cmocka_unit_test(without_the_marker_there_is_no_workspace),
        cmocka_unit_test(expired_is_read_whatever_other_flags_say),
        cmocka_unit_test(each_keep_predicate_keeps_exactly_what_it_must),
        cmocka_unit_test(claim_markers_are_named_and_parsed),
        cmocka_unit_test(flags_give_status_by_precedence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
