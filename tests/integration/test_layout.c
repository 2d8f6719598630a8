/* The two layouts against the real services (issue 13): the exact set of
 * S3 objects a job leaves in each, the S3 requests it costs (none for a
 * no-op job in the native layout, one PUT for one result), results read
 * from the row without a listing, the ownership of a root by one database,
 * and a database switched from lcp to native and back without losing a
 * job. */
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

#include "objects.h"
#include "platform_fixture.h"
#include "root_owner.h"

static stack_env env;

/* ---- an executor: nothing, or one 1 KiB result ---------------------------- */

#define RESULT_SIZE 1024

static int layout_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    if (!ctx->config || !strstr(ctx->config, "\"result\":true"))
        return 0; /* a no-op job */
    int fd = openat(ctx->dir_fd, "out.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return 1;
    char data[RESULT_SIZE];
    memset(data, 'r', sizeof data);
    ssize_t n = write(fd, data, sizeof data);
    close(fd);
    if (n != (ssize_t)sizeof data)
        return 1;
    return acp_job_add_output(ctx, "out.txt");
}

static void layout_free(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops layout_ops = {ACP_EXECUTOR_OPS_VERSION, layout_execute, layout_free};
static const acp_executor_factory layout_factory = {ACP_EXECUTOR_FACTORY_VERSION,
                                                    (void *)&layout_ops, fixture_ops_create, NULL};

/* ---- the world: one platform, a raw view of its root --------------------- */

typedef struct world {
    fixture_config fc;
    char tag[9];
    acp_platform *p;
    objects *raw; /* the same bucket and root, to see what is there */
} world;

static void start(world *w, acp_layout layout)
{
    w->fc.config.layout = layout;
    if (acp_init(&w->p, &w->fc.config) != 0)
        fail_msg("acp_init (%s layout): %s", layout == ACP_LAYOUT_LCP ? "lcp" : "native",
                 acp_last_error());
}

static void stop(world *w)
{
    acp_shutdown(w->p);
    w->p = NULL;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, 1, 2, &layout_factory);
    if (objects_open(&w->raw, &w->fc.config.s3, &w->fc.config.s3_client, NULL) != 0) {
        fprintf(stderr, "objects_open: %s\n", acp_last_error());
        free(w);
        return -1;
    }
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    acp_shutdown(w->p);
    objects_close(w->raw);
    free(w);
    return 0;
}

/* Every S3 request the platform made so far. */
typedef struct s3_counts {
    uint64_t puts, gets, heads, lists, deletes;
} s3_counts;

static s3_counts counts(world *w)
{
    acp_stats st = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(w->p, &st), 0);
    return (s3_counts){st.s3_puts, st.s3_gets, st.s3_heads, st.s3_lists, st.s3_deletes};
}

static void expect_requests(const s3_counts *before, const s3_counts *after, uint64_t puts,
                            uint64_t gets, uint64_t heads, uint64_t lists, uint64_t deletes)
{
    s3_counts d = {after->puts - before->puts, after->gets - before->gets,
                   after->heads - before->heads, after->lists - before->lists,
                   after->deletes - before->deletes};
    if (d.puts != puts || d.gets != gets || d.heads != heads || d.lists != lists ||
        d.deletes != deletes)
        fail_msg("S3 requests: %llu PUT %llu GET %llu HEAD %llu LIST %llu DELETE; expected "
                 "%llu %llu %llu %llu %llu",
                 (unsigned long long)d.puts, (unsigned long long)d.gets,
                 (unsigned long long)d.heads, (unsigned long long)d.lists,
                 (unsigned long long)d.deletes, (unsigned long long)puts, (unsigned long long)gets,
                 (unsigned long long)heads, (unsigned long long)lists, (unsigned long long)deletes);
}

/* Submit @config (made unique to the run) with an optional input. */
static acp_job_id submit(world *w, const char *config, const char *input)
{
    char text[256];
    snprintf(text, sizeof text, "{\"tag\":\"%s\",%s", w->tag, config + 1);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = text;
    acp_input in = {.name = "in.txt", .data = input, .size = input ? strlen(input) : 0};
    if (input) {
        sub.inputs = &in;
        sub.input_count = 1;
    }
    acp_job job;
    if (acp_submit(w->p, w->fc.queue_ids[0], &sub, &job) != 0)
        fail_msg("submit %s: %s", config, acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    return id;
}

static void resubmit(world *w, const acp_job_id *id, const char *config, const char *input)
{
    acp_job_id again = submit(w, config, input);
    assert_memory_equal(&again, id, sizeof again);
}

static void wait_for(world *w, const acp_job_id *id, acp_job_status status)
{
    acp_job job = {0};
    if (!fixture_wait_status(w->p, id, status, FIXTURE_WAIT_S, &job))
        fail_msg("job did not become %s (is %s: %s)", acp_job_status_name(status),
                 acp_job_status_name(job.status), job.message ? job.message : "-");
    acp_job_clear(&job);
}

/* Appends "name:size" to the ' '-separated list @out. */
static void add_item(char *out, size_t size, const char *name, uint64_t bytes)
{
    char item[300];
    snprintf(item, sizeof item, "%s%s:%llu", out[0] ? " " : "", name, (unsigned long long)bytes);
    strncat(out, item, size - strlen(out) - 1);
}

/* The objects under the job's prefix, "name:size" sorted, joined by ' '. */
static void objects_of(world *w, const acp_job_id *id, char *out, size_t size)
{
    object_list list;
    assert_int_equal(objects_list(w->raw, id, &list), 0);
    out[0] = '\0';
    for (size_t i = 0; i < list.count; i++)
        add_item(out, size, list.items[i].name, list.items[i].size);
    object_list_free(&list);
}

/* lcp: the status flag follows the row's commit, a moment later. */
static void wait_for_flag(world *w, const acp_job_id *id, const char *flag)
{
    int rc = fixture_wait_object(w->raw, id, flag);
    if (rc)
        fail_msg("no %s flag (%s)", flag, rc < 0 ? acp_last_error() : "timed out");
}

static void expect_objects(world *w, const acp_job_id *id, const char *expected)
{
    char names[1024];
    objects_of(w, id, names, sizeof names);
    assert_string_equal(names, expected);
}

/* What acp_get_results says, in the same form. */
static void expect_results(world *w, const acp_job_id *id, const char *expected)
{
    acp_result_list list;
    if (acp_get_results(w->p, id, &list) != 0)
        fail_msg("acp_get_results: %s", acp_last_error());
    char names[1024] = "";
    for (size_t i = 0; i < list.count; i++)
        add_item(names, sizeof names, list.files[i].name, list.files[i].size);
    acp_result_list_clear(&list);
    assert_string_equal(names, expected);
}

/* ---- native: what a job costs and leaves --------------------------------- */

static void native_noop_job_makes_no_s3_request(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_NATIVE);
    s3_counts before = counts(w);
    acp_job_id id = submit(w, "{\"result\":false}", NULL);
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    expect_results(w, &id, "");
    s3_counts after = counts(w);
    expect_requests(&before, &after, 0, 0, 0, 0, 0);
    expect_objects(w, &id, "");
}

static void native_job_with_one_result_makes_one_put(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_NATIVE);
    s3_counts before = counts(w);
    acp_job_id id = submit(w, "{\"result\":true}", NULL);
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    s3_counts after = counts(w);
    expect_requests(&before, &after, 1, 0, 0, 0, 0);
    expect_objects(w, &id, "out.txt:1024");
}

static void native_results_come_from_the_row(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_NATIVE);
    acp_job_id id = submit(w, "{\"result\":true}", "abc");
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    expect_objects(w, &id, "in.txt:3 out.txt:1024");

    s3_counts before = counts(w);
    expect_results(w, &id, "in.txt:3 out.txt:1024");
    s3_counts after = counts(w);
    expect_requests(&before, &after, 0, 0, 0, 0, 0);

    void *data;
    size_t size;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "out.txt", 4096, &data, &size), 0);
    assert_int_equal(size, RESULT_SIZE);
    acp_free(data);
}

static void native_expire_and_delete_remove_exactly_the_rows_objects(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_NATIVE);
    acp_job_id id = submit(w, "{\"result\":true}", "abc");
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    /* An object the row does not name stays: the row is the record. */
    assert_int_equal(objects_put(w->raw, &id, "stray.txt", "x", 1), 0);

    s3_counts before = counts(w);
    assert_int_equal(acp_expire_job(w->p, &id), 0);
    s3_counts after = counts(w);
    expect_requests(&before, &after, 0, 0, 0, 0, 2);
    expect_objects(w, &id, "stray.txt:1");
    wait_for(w, &id, ACP_STATUS_EXPIRED);
    expect_results(w, &id, "");

    /* A re-run after expiry runs afresh, with its new input. */
    resubmit(w, &id, "{\"result\":true}", "abcd");
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    expect_results(w, &id, "in.txt:4 out.txt:1024");

    before = counts(w);
    assert_int_equal(acp_delete_job(w->p, &id), 0);
    after = counts(w);
    expect_requests(&before, &after, 0, 0, 0, 0, 2);
    expect_objects(w, &id, "stray.txt:1");
    acp_job job;
    assert_int_equal(acp_get_job(w->p, &id, &job), ACP_ENOTFOUND);
    assert_int_equal(acp_get_results(w->p, &id, &(acp_result_list){0}), ACP_ENOTFOUND);
    assert_int_equal(objects_delete(w->raw, &id, "stray.txt"), 0);
}

static void native_rerun_removes_the_previous_runs_results(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_NATIVE);
    acp_job_id id = submit(w, "{\"result\":true}", "abc");
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    assert_int_equal(acp_expire_job(w->p, &id), 0);
    resubmit(w, &id, "{\"result\":true}", NULL);
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    expect_objects(w, &id, "out.txt:1024");
    expect_results(w, &id, "out.txt:1024");
}

/* ---- lcp: today's layout, byte for byte ---------------------------------- */

static void lcp_job_leaves_upstreams_workspace(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_LCP);
    acp_job_id id = submit(w, "{\"result\":false}", NULL);
    wait_for(w, &id, ACP_STATUS_COMPLETE);
    wait_for_flag(w, &id, ".complete");
    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"result\":false}", w->tag);
    char expected[256];
    snprintf(expected, sizeof expected,
             ".complete:0 .in-progress:0 .queued:0 .workspace:0 input-config:%zu", strlen(config));
    expect_objects(w, &id, expected);
    expect_results(w, &id, "");
}

/* ---- the root belongs to one database ------------------------------------ */

static void native_records_the_roots_owner(void **state)
{
    world *w = *state;
    start(w, ACP_LAYOUT_NATIVE);
    char *text;
    size_t len;
    bool exists;
    assert_int_equal(objects_root_read(w->raw, ROOT_OWNER_OBJECT, 4096, &text, &len, &exists), 0);
    assert_true(exists);
    assert_non_null(strstr(text, "\"database_id\":\""));
    assert_non_null(strstr(text, "\"schema\":\"compute\""));
    free(text);
    /* The same database again, in either layout: welcome. */
    stop(w);
    start(w, ACP_LAYOUT_LCP);
    stop(w);
    start(w, ACP_LAYOUT_NATIVE);
}

static void root_of_another_database_is_refused(void **state)
{
    world *w = *state;
    const char *other = "{\"database_id\":\"0f0f0f0f-other-database\",\"system_identifier\":"
                        "\"7000000000000000001\",\"database\":\"db.example:5432/other\","
                        "\"schema\":\"compute\"}";
    assert_int_equal(objects_root_put(w->raw, ROOT_OWNER_OBJECT, other, strlen(other)), 0);
    for (int i = 0; i < 2; i++) {
        w->fc.config.layout = i ? ACP_LAYOUT_LCP : ACP_LAYOUT_NATIVE;
        assert_int_equal(acp_init(&w->p, &w->fc.config), ACP_ECONFLICT);
        assert_null(w->p);
        const char *why = acp_last_error();
        assert_non_null(strstr(why, "0f0f0f0f-other-database"));
        assert_non_null(strstr(why, "db.example:5432/other"));
        assert_non_null(strstr(why, env.pg_db)); /* ours, named too */
    }
    /* Nothing was written over the other owner's record. */
    char *text;
    size_t len;
    bool exists;
    assert_int_equal(objects_root_read(w->raw, ROOT_OWNER_OBJECT, 4096, &text, &len, &exists), 0);
    assert_string_equal(text, other);
    free(text);
}

static void unreadable_owner_record_is_refused(void **state)
{
    world *w = *state;
    assert_int_equal(objects_root_put(w->raw, ROOT_OWNER_OBJECT, "not json", 8), 0);
    w->fc.config.layout = ACP_LAYOUT_NATIVE;
    assert_int_equal(acp_init(&w->p, &w->fc.config), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), ROOT_OWNER_OBJECT));
}

/* ---- switching a database between the layouts ---------------------------- */

static void switch_from_lcp_to_native_and_back(void **state)
{
    world *w = *state;
    /* Jobs of the lcp layout... */
    start(w, ACP_LAYOUT_LCP);
    acp_job_id a = submit(w, "{\"result\":true,\"job\":\"a\"}", "abc");
    acp_job_id b = submit(w, "{\"result\":true,\"job\":\"b\"}", NULL);
    wait_for(w, &a, ACP_STATUS_COMPLETE);
    wait_for(w, &b, ACP_STATUS_COMPLETE);
    stop(w);

    /* ...are all there under native, their workspaces read as before. */
    start(w, ACP_LAYOUT_NATIVE);
    wait_for(w, &a, ACP_STATUS_COMPLETE);
    expect_results(w, &a, "in.txt:3 out.txt:1024");
    void *data;
    size_t size;
    assert_int_equal(acp_read_result_buffer(w->p, &a, "out.txt", 4096, &data, &size), 0);
    acp_free(data);
    /* Expiring an lcp job removes its whole workspace's files, as lcp did. */
    assert_int_equal(acp_expire_job(w->p, &b), 0);
    wait_for(w, &b, ACP_STATUS_EXPIRED);
    expect_results(w, &b, "");
    /* Re-run under native, it leaves native objects only: its flags go. */
    resubmit(w, &b, "{\"result\":true,\"job\":\"b\"}", NULL);
    wait_for(w, &b, ACP_STATUS_COMPLETE);
    expect_objects(w, &b, "out.txt:1024");
    acp_job_id c = submit(w, "{\"result\":true,\"job\":\"c\"}", "xy");
    wait_for(w, &c, ACP_STATUS_COMPLETE);
    expect_objects(w, &c, "in.txt:2 out.txt:1024");
    stop(w);

    /* Back to lcp: native jobs keep their rows' record of files. */
    start(w, ACP_LAYOUT_LCP);
    expect_results(w, &c, "in.txt:2 out.txt:1024");
    expect_results(w, &b, "out.txt:1024");
    wait_for(w, &a, ACP_STATUS_COMPLETE);
    expect_results(w, &a, "in.txt:3 out.txt:1024");
    /* Expiring a native job under lcp removes the files its row names. */
    assert_int_equal(acp_expire_job(w->p, &c), 0);
    expect_objects(w, &c, "");
    /* Re-run under lcp, it gets upstream's workspace. */
    resubmit(w, &c, "{\"result\":true,\"job\":\"c\"}", "xy");
    wait_for(w, &c, ACP_STATUS_COMPLETE);
    wait_for_flag(w, &c, ".complete");
    char names[1024];
    objects_of(w, &c, names, sizeof names);
    assert_non_null(strstr(names, ".workspace:0"));
    assert_non_null(strstr(names, ".complete:0"));
    assert_non_null(strstr(names, "out.txt:1024"));
    assert_non_null(strstr(names, "in.txt:2"));
    expect_results(w, &c, "in.txt:2 out.txt:1024");
    /* And deleting works for each. */
    assert_int_equal(acp_delete_job(w->p, &a), 0);
    assert_int_equal(acp_delete_job(w->p, &b), 0);
    assert_int_equal(acp_delete_job(w->p, &c), 0);
    expect_objects(w, &a, "");
    expect_objects(w, &b, "");
    expect_objects(w, &c, "");
}

int main(void)
{
    int status;
    if (stack_env_load(&env, &status) != 0)
        return status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(native_noop_job_makes_no_s3_request, setup, teardown),
        cmocka_unit_test_setup_teardown(native_job_with_one_result_makes_one_put, setup, teardown),
        cmocka_unit_test_setup_teardown(native_results_come_from_the_row, setup, teardown),
        cmocka_unit_test_setup_teardown(native_expire_and_delete_remove_exactly_the_rows_objects,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(native_rerun_removes_the_previous_runs_results, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(lcp_job_leaves_upstreams_workspace, setup, teardown),
        cmocka_unit_test_setup_teardown(native_records_the_roots_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(root_of_another_database_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unreadable_owner_record_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(switch_from_lcp_to_native_and_back, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
