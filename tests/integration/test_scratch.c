/* Scratch directories on a workspace root that several runs share: two runs
 * of one job in different processes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "platform.h"
#include "platform_fixture.h"
#include "recording_executor.h"

extern char **environ;
static stack_env env;
static const char *self_path;

/* ---- files ------------------------------------------------------------- */

/* Whether root/name exists, without following a final symbolic link. */
static bool exists(const char *root, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", root, name);
    return lstat(path, &st) == 0;
}

static void remove_tree(const char *path)
{
    assert_int_equal(scratch_remove(path), 0);
}

/* ---- two runs of one job ------------------------------------------------- */

/* The child's executor: leaves a file in its scratch directory, tells where,
 * and keeps running until the process is killed. */
static int first_run_execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    int fd = openat(ctx->dir_fd, "first-run.txt", O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, "first run\n", 10) != 10)
        return 1;
    close(fd);
    printf("running %s %s\n", ctx->id_hex, ctx->dir);
    fflush(stdout);
    for (;;)
        pause();
    return 0;
}

static void first_run_free(acp_executor *executor)
{
    free(executor);
}

static const acp_executor_ops first_run_ops = {ACP_EXECUTOR_OPS_VERSION, first_run_execute,
                                               first_run_free};

static int first_run_create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    acp_executor *executor = malloc(sizeof *executor);
    if (!executor)
        return -1;
    executor->ops = &first_run_ops;
    *out = executor;
    return 0;
}

static const acp_executor_factory first_run_factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL,
                                                       first_run_create, NULL};

static int child_main(const char *tag)
{
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &first_run_factory);
    fc.config.lease_seconds = 3;
    fc.config.log_level = ACP_LOG_WARN;
    acp_platform *p;
    if (acp_init(&p, &fc.config) != 0) {
        fprintf(stderr, "child: acp_init: %s\n", acp_last_error());
        return 1;
    }
    acp_submission sub;
    acp_submission_init(&sub);
    char config[64];
    snprintf(config, sizeof config, "{\"n\":\"%s\"}", tag);
    sub.config = config;
    if (acp_submit(p, fc.queue_ids[0], &sub, NULL) != 0) {
        fprintf(stderr, "child: submit: %s\n", acp_last_error());
        return 1;
    }
    for (;;)
        pause(); /* until SIGKILL */
    return 0;
}

static void second_run_leaves_first_runs_directory_alone(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    int out[2];
    assert_int_equal(pipe(out), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    char *argv[] = {(char *)self_path, (char *)"child", tag, NULL};
    pid_t child;
    assert_int_equal(posix_spawn(&child, self_path, &actions, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    char line[512] = {0}, hex[ACP_JOB_ID_STRLEN], first_dir[400];
    FILE *from_child = fdopen(out[0], "r");
    bool started = fgets(line, sizeof line, from_child) &&
                   sscanf(line, "running %32s %399s", hex, first_dir) == 2;
    fclose(from_child);
    if (!started) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fail_msg("the child process did not start its job");
    }
    acp_job_id id;
    assert_int_equal(acp_job_id_parse(&id, hex), 0);

    /* A second process on the same root and database starts while the first
     * run is alive; then the first one stalls (stopped, not dead) past its
     * lease, so the job runs again here while the first run still exists. */
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.lease_seconds = 60;
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    assert_int_equal(kill(child, SIGSTOP), 0);
    acp_job job = {0};
    bool completed = fixture_wait_status(p, &id, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job);
    unsigned attempts = job.attempts;
    acp_job_clear(&job);
    acp_shutdown(p);
    bool survived = exists(first_dir, "first-run.txt");
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    if (!completed)
        fail_msg("the second run did not complete");
    assert_int_equal(attempts, 2);
    assert_int_equal(recording_runs(&id), 1);
    if (!survived)
        fail_msg("the second run removed the first run's file %s/first-run.txt", first_dir);
    remove_tree(first_dir);
}

int main(int argc, char **argv)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    if (argc == 3 && strcmp(argv[1], "child") == 0)
        return child_main(argv[2]);
    self_path = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(second_run_leaves_first_runs_directory_alone),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
