/* Jobs survive what long-running services meet: a worker process killed in
 * the middle of a job, and a RabbitMQ restart with jobs queued and running. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "platform_fixture.h"
#include "recording_executor.h"
#include "workspace.h"

static stack_env env;
static const char *self_path;

/* ---- the child process: runs a platform until it is killed ------------ */

static int child_main(const char *tag)
{
    fixture_config fc;
    acp_platform *p = fixture_child_platform(&fc, &env, tag, &recording_factory);
    if (!p)
        return 1;
    char config[128];
    snprintf(config, sizeof config, "{\"mode\":\"block\",\"ms\":600000,\"n\":\"%s\"}", tag);
    acp_job_id id;
    if (fixture_child_submit(p, &fc, config, &id) != 0)
        return 1;
    acp_job job = {0};
    if (!fixture_wait_status(p, &id, ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job)) {
        fprintf(stderr, "child: job did not start: %s\n", acp_last_error());
        return 1;
    }
    char hex[ACP_JOB_ID_STRLEN];
    printf("running %s\n", acp_job_id_format(&id, hex));
    fflush(stdout);
    pause(); /* until SIGKILL */
    return 0;
}

/* ---- a job that kills every process running it ------------------------- */

static int dying_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    (void)ctx;
    kill(getpid(), SIGKILL);
    return 1;
}

static void dying_free(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops dying_ops = {ACP_EXECUTOR_OPS_VERSION, dying_execute, dying_free};

static const acp_executor_factory dying_factory = {ACP_EXECUTOR_FACTORY_VERSION, (void *)&dying_ops,
                                                   fixture_ops_create, NULL};

/* A process whose worker runs the job and dies of it. The first one submits
 * the job and tells its id; the others take it over when it is requeued. */
static int dying_child_main(const char *tag, bool submit)
{
    fixture_config fc;
    acp_platform *p = fixture_child_platform(&fc, &env, tag, &dying_factory);
    if (!p)
        return 1;
    if (submit) {
        acp_submission sub;
        acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
        char config[96];
        snprintf(config, sizeof config, "{\"mode\":\"die\",\"n\":\"%s\"}", tag);
        sub.config = config;
        /* Told first: the job may kill this process before acp_submit returns. */
        acp_job_id id;
        acp_job_id_generate(&id);
        sub.id = &id;
        char hex[ACP_JOB_ID_STRLEN];
        printf("submitted %s\n", acp_job_id_format(&id, hex));
        fflush(stdout);
        if (acp_submit(p, fc.queue_ids[0], &sub, NULL) != 0) {
            fprintf(stderr, "child: submit: %s\n", acp_last_error());
            return 1;
        }
    }
    for (;;)
        pause(); /* until the job kills this process */
    return 0;
}

/* Wait for @child to die of SIGKILL (its job's doing); a hang guard kills
 * it after FIXTURE_WAIT_S. Returns whether it died by itself. */
static bool child_died_of_job(pid_t child)
{
    for (int waited = 0; waited <= FIXTURE_WAIT_S * 1000; waited += 50) {
        int status;
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child)
            return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        fixture_sleep_ms(50);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return false;
}

static void crashing_job_fails_after_max_attempts(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);

    /* Three processes in turn run the job and die of it (max_attempts is 3
     * by default); each takes it over once the previous one's lease ran out. */
    acp_job_id id;
    for (int run = 1; run <= 3; run++) {
        FILE *from_child;
        pid_t child = fixture_spawn_self(self_path, run == 1 ? "child-die-submit" : "child-die",
                                         tag, &from_child);
        assert_true(child > 0);
        if (run == 1) {
            char line[128] = {0};
            if (!fgets(line, sizeof line, from_child)) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
                fail_msg("the child process did not submit its job");
            }
            line[strcspn(line, "\n")] = '\0';
            assert_int_equal(acp_job_id_parse(&id, line + strlen("submitted ")), 0);
        }
        fclose(from_child);
        if (!child_died_of_job(child))
            fail_msg("process %d did not die running the job", run);
    }

    /* A healthy process on the same queue finds the third run's lease
     * expired: the job is failed, not run a fourth time. */
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.lease_seconds = 3;
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    acp_job job = {0};
    for (int waited = 0; waited <= FIXTURE_WAIT_S * 1000; waited += 50) {
        acp_job_clear(&job);
        assert_int_equal(acp_get_job(p, &id, &job), 0);
        if (job.status == ACP_STATUS_FAILED || job.status == ACP_STATUS_COMPLETE)
            break;
        fixture_sleep_ms(50);
    }
    if (job.status != ACP_STATUS_FAILED)
        fail_msg("the job is %s after %u attempts, not failed", acp_job_status_name(job.status),
                 job.attempts);
    assert_int_equal(job.attempts, 3);
    assert_non_null(job.message);
    if (!strstr(job.message, "abandoned: the process running attempt 3 of 3 stopped"))
        fail_msg("unexpected message: %s", job.message);
    assert_true(job.finished > 0);
    /* In the lcp layout the workspace says so too, for services sharing
     * the bucket (its flag is added just after the row changes). */
    if (fc.config.layout == ACP_LAYOUT_LCP) {
        objects *raw;
        assert_int_equal(objects_open(&raw, &fc.config.s3, &fc.config.s3_client, NULL), 0);
        acp_job from_flags = {0};
        for (int waited = 0; waited <= FIXTURE_WAIT_S * 1000; waited += 50) {
            object_list list;
            assert_int_equal(objects_list(raw, &id, &list), 0);
            bool marker = workspace_status_from_flags(&list, &from_flags);
            object_list_free(&list);
            assert_true(marker);
            if (from_flags.status == ACP_STATUS_FAILED)
                break;
            fixture_sleep_ms(50);
        }
        objects_close(raw);
        assert_int_equal(from_flags.status, ACP_STATUS_FAILED);
    }

    /* Well past another lease: nothing requeues or runs it again. */
    fixture_sleep_ms(2 * 3000);
    acp_job_clear(&job);
    assert_int_equal(acp_get_job(p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_int_equal(job.attempts, 3);
    assert_int_equal(recording_runs(&id), 0);
    acp_job_clear(&job);
    acp_shutdown(p);
}

static void killed_worker_job_is_requeued_and_completed(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    FILE *from_child;
    acp_job_id id;
    pid_t child = fixture_spawn_job_child(self_path, "child", tag, &from_child, &id);
    if (child <= 0)
        fail_msg("the child process did not start its job");
    fclose(from_child);

    /* SIGKILL mid-job: no chance to clean up, release or finish anything. */
    assert_int_equal(kill(child, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));

    /* Another process on the same database and queue takes over. */
    recording_release(); /* its run of the "block" job finishes at once */
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.lease_seconds = 3;
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    acp_job job = {0};
    assert_int_equal(acp_get_job(p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS); /* the dead run's lease */
    if (!fixture_wait_status(p, &id, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
        fail_msg("job not completed after the worker died: %s", acp_job_status_name(job.status));
    assert_int_equal(job.attempts, 2);
    assert_int_equal(recording_runs(&id), 1);
    void *text;
    size_t size;
    assert_int_equal(acp_read_result_buffer(p, &id, "result.txt", 4096, &text, &size), 0);
    assert_non_null(strstr(text, "attempt=2"));
    acp_free(text);
    acp_job_clear(&job);
    acp_shutdown(p);
    recording_reset();
}

static int stack_ctl(const char *what)
{
    const char *root = getenv("ACP_SOURCE_ROOT");
    char command[512];
    snprintf(command, sizeof command, "%s/scripts/stack rabbitmqctl %s >/dev/null 2>&1",
             root ? root : ".", what);
    return system(command);
}

static void rabbitmq_restart_loses_no_job(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 2, &recording_factory);
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);

    enum { BEFORE = 6, DURING = 3 };
    acp_job_id ids[BEFORE + DURING];
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    char config[96];
    for (int i = 0; i < BEFORE + DURING; i++) {
        if (i == BEFORE) {
            /* Some jobs are running now and some queued: stop the broker. */
            acp_job job = {0};
            assert_true(
                fixture_wait_status(p, &ids[0], ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job));
            acp_job_clear(&job);
            assert_int_equal(stack_ctl("stop_app"), 0);
        }
        snprintf(config, sizeof config, "{\"mode\":\"sleep\",\"ms\":1500,\"n\":\"%s-%d\"}", tag, i);
        sub.config = config;
        acp_job job;
        /* Submitting while the broker is down still stores the job. */
        assert_int_equal(acp_submit(p, fc.queue_ids[0], &sub, &job), 0);
        ids[i] = job.id;
        acp_job_clear(&job);
    }
    assert_true(fixture_log_contains("not yet dispatched", NULL));
    assert_int_equal(stack_ctl("start_app"), 0);

    acp_job job = {0};
    for (int i = 0; i < BEFORE + DURING; i++) {
        if (!fixture_wait_status(p, &ids[i], ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
            fail_msg("job %d ended as %s", i, acp_job_status_name(job.status));
        assert_int_equal(recording_runs(&ids[i]), 1);
    }
    acp_job_clear(&job);
    acp_shutdown(p);
}

static void long_job_keeps_its_lease(void **state)
{
    (void)state;
    char tag[9], config[96];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.lease_seconds = 3;
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    snprintf(config, sizeof config, "{\"mode\":\"sleep\",\"ms\":8000,\"n\":\"%s\"}", tag);
    sub.config = config;
    acp_job job = {0};
    assert_int_equal(acp_submit(p, fc.queue_ids[0], &sub, &job), 0);
    acp_job_id id = job.id;
    /* Runs for more than twice its lease: renewals keep it from being requeued. */
    assert_true(fixture_wait_status(p, &id, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job));
    assert_int_equal(job.attempts, 1);
    assert_int_equal(recording_runs(&id), 1);
    char hex[ACP_JOB_ID_STRLEN];
    assert_false(fixture_log_contains(acp_job_id_format(&id, hex), "lease expired"));
    acp_job_clear(&job);
    acp_shutdown(p);
}

static void shutdown_lets_running_jobs_finish(void **state)
{
    (void)state;
    char tag[9], config[96];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 2, &recording_factory);
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    snprintf(config, sizeof config, "{\"mode\":\"sleep\",\"ms\":1500,\"n\":\"%s\"}", tag);
    sub.config = config;
    acp_job job = {0};
    assert_int_equal(acp_submit(p, fc.queue_ids[0], &sub, &job), 0);
    acp_job_id id = job.id;
    assert_true(fixture_wait_status(p, &id, ACP_STATUS_IN_PROGRESS, FIXTURE_WAIT_S, &job));
    acp_job_clear(&job);
    acp_shutdown(p);
    assert_int_equal(recording_running(), 0); /* it waited for the job */

    assert_int_equal(acp_init(&p, &fc.config), 0);
    assert_int_equal(acp_get_job(p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(recording_runs(&id), 1);
    acp_job_clear(&job);
    acp_shutdown(p);
}

int main(int argc, char **argv)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    if (argc == 3 && strcmp(argv[1], "child") == 0)
        return child_main(argv[2]);
    if (argc == 3 && strncmp(argv[1], "child-die", 9) == 0)
        return dying_child_main(argv[2], strcmp(argv[1], "child-die-submit") == 0);
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_worker_job_is_requeued_and_completed),
        cmocka_unit_test(rabbitmq_restart_loses_no_job),
        cmocka_unit_test(long_job_keeps_its_lease),
        cmocka_unit_test(shutdown_lets_running_jobs_finish),
        cmocka_unit_test(crashing_job_fails_after_max_attempts),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
