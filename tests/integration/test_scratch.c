/* Scratch directories on a workspace root that several runs share: two runs
 * of one job in different processes, and the leftovers of processes that
 * were killed mid-job. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
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

#include "platform_fixture.h"
#include "recording_executor.h"
#include "scratch.h"

static stack_env env;
static const char *self_path;

/* ---- files ------------------------------------------------------------- */

static void make_dir(const char *root, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    if (mkdir(path, 0700) != 0)
        fail_msg("mkdir %s: %s", path, strerror(errno));
}

static void make_file(const char *root, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("creating %s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

static void make_link(const char *root, const char *name, const char *target)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, name);
    if (symlink(target, path) != 0)
        fail_msg("symlink %s: %s", path, strerror(errno));
}

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
    char parent[512];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    assert_non_null(slash);
    *slash = '\0';
    int fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(scratch_remove_at(fd, slash + 1, path), 0);
    close(fd);
}

/* ---- rows of other processes, planted in the database ------------------- */

static PGconn *admin(void)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", NULL};
    const char *values[] = {env.pg_host,     env.pg_port, env.pg_user,
                            env.pg_password, env.pg_db,   NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    return conn;
}

static void sql(PGconn *conn, const char *statement, const char *hex)
{
    const char *params[] = {hex};
    PGresult *res = PQexecParams(conn, statement, hex ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", statement, PQerrorMessage(conn));
    PQclear(res);
}

/* A job row on a queue no platform serves, with @status and @attempts
 * claims; an in-progress one has a lease of another process ending @lease_s
 * seconds from now (in the past when negative). */
static void plant_row(PGconn *conn, const char *hex, const char *tag, const char *status,
                      int attempts, int lease_s)
{
    bool running = strcmp(status, "in-progress") == 0;
    char lease[64], statement[512];
    snprintf(lease, sizeof lease, "now() + make_interval(secs => %d)", lease_s);
    snprintf(statement, sizeof statement,
             "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
             "last_accessed, grabbed, attempts, lease_owner, lease_expires) VALUES "
             "(decode($1, 'hex'), '%s', 'other-%s', '{}', now(), now(), %s, %d, %s, %s)",
             status, tag, running ? "now()" : "NULL", attempts,
             running ? "'another-process'" : "NULL", running ? lease : "NULL");
    sql(conn, statement, hex);
}

static void delete_row(PGconn *conn, const char *hex)
{
    sql(conn, "DELETE FROM compute.jobs WHERE job_id = decode($1, 'hex')", hex);
}

static void new_hex(char hex[ACP_JOB_ID_STRLEN])
{
    acp_job_id id;
    acp_job_id_generate(&id);
    acp_job_id_format(&id, hex);
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

static const acp_executor_factory first_run_factory = {
    ACP_EXECUTOR_FACTORY_VERSION, (void *)&first_run_ops, fixture_ops_create, NULL};

static int child_main(const char *tag)
{
    fixture_config fc;
    acp_platform *p = fixture_child_platform(&fc, &env, tag, &first_run_factory);
    if (!p)
        return 1;
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
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
    FILE *from_child;
    pid_t child = fixture_spawn_self(self_path, "child", tag, &from_child);
    assert_true(child > 0);
    char line[512] = {0}, hex[ACP_JOB_ID_STRLEN], first_dir[400];
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

/* A directory with the run's own name is another run's (for example one of
 * a killed process, before the job was resubmitted): the run fails saying
 * so and leaves it alone; it goes once that other run is known to be over. */
static void existing_scratch_directory_fails_the_run_and_is_kept(void **state)
{
    (void)state;
    char tag[9], config[64], hex[ACP_JOB_ID_STRLEN], name[48], file[80];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.lease_seconds = 3;
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    snprintf(config, sizeof config, "{\"n\":\"%s\"}", tag);
    acp_job_id id;
    assert_int_equal(acp_job_id_from_config(&id, config), 0);
    snprintf(name, sizeof name, "%s.1", acp_job_id_format(&id, hex));
    make_dir(fc.workspace_root, name);
    snprintf(file, sizeof file, "%s/other.txt", name);
    make_file(fc.workspace_root, file, "another run\n");

    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job = {0};
    assert_int_equal(acp_submit(p, fc.queue_ids[0], &sub, &job), 0);
    assert_true(fixture_wait_status(p, &id, ACP_STATUS_FAILED, FIXTURE_WAIT_S, &job));
    assert_non_null(job.message);
    if (!strstr(job.message, "already exists"))
        fail_msg("unexpected message: %s", job.message);
    assert_int_equal(recording_runs(&id), 0);
    assert_true(exists(fc.workspace_root, file));

    /* Attempt 1 of the job is over now: the maintenance pass removes it. */
    for (int waited = 0; exists(fc.workspace_root, name); waited += 100) {
        if (waited > FIXTURE_WAIT_S * 1000)
            fail_msg("%s was not removed after its run ended", name);
        fixture_sleep_ms(100);
    }
    acp_job_clear(&job);
    acp_shutdown(p);
    remove_tree(fc.workspace_root);
}

/* ---- leftovers of killed processes ----------------------------------------- */

enum { LIVE, OLD_ATTEMPT, EXPIRED, DONE, UNKNOWN, NOT_DIR, LINKED, PLAIN, ROWS };

typedef struct leftovers {
    char hex[ROWS][ACP_JOB_ID_STRLEN];
    char name[ROWS][48];
    char outside[160]; /* a directory outside the root, reached by links */
} leftovers;

/* Plant, under @root: the live directory of another process's run (row
 * in-progress, same attempt, lease valid), directories of runs that are over
 * (an older attempt of that job, an expired lease, a complete job, an id the
 * database does not know, with a link out of the root inside), and names
 * that are not ours: a file and a symbolic link named like a run, a bare
 * id, and a directory of notes. */
static void plant(PGconn *conn, const char *tag, const char *root, leftovers *l)
{
    for (int i = 0; i < ROWS; i++)
        new_hex(l->hex[i]);
    memcpy(l->hex[OLD_ATTEMPT], l->hex[LIVE], sizeof l->hex[LIVE]);
    plant_row(conn, l->hex[LIVE], tag, "in-progress", 2, 3600);
    plant_row(conn, l->hex[EXPIRED], tag, "in-progress", 1, -60);
    plant_row(conn, l->hex[DONE], tag, "complete", 1, 0);
    for (int i = 0; i < ROWS; i++)
        snprintf(l->name[i], sizeof l->name[i], "%s.%d", l->hex[i], i == LIVE ? 2 : 1);
    snprintf(l->name[PLAIN], sizeof l->name[PLAIN], "%s", l->hex[PLAIN]);

    snprintf(l->outside, sizeof l->outside, "%s-outside", root);
    mkdir(l->outside, 0700);
    make_file(l->outside, "keep.txt", "outside\n");

    for (int i = LIVE; i <= UNKNOWN; i++) {
        make_dir(root, l->name[i]);
        char file[80];
        snprintf(file, sizeof file, "%s/work.txt", l->name[i]);
        make_file(root, file, "work\n");
    }
    char nested[80], link[80];
    snprintf(nested, sizeof nested, "%s/sub", l->name[UNKNOWN]);
    make_dir(root, nested);
    snprintf(link, sizeof link, "%s/sub/out", l->name[UNKNOWN]);
    make_link(root, link, l->outside);
    make_file(root, l->name[NOT_DIR], "a file\n");
    make_link(root, l->name[LINKED], l->outside);
    make_dir(root, l->name[PLAIN]);
    make_dir(root, "notes");
    make_file(root, "notes/n.txt", "notes\n");
}

static void check_swept(const char *root, const leftovers *l)
{
    char file[80];
    snprintf(file, sizeof file, "%s/work.txt", l->name[LIVE]);
    assert_true(exists(root, file));
    assert_false(exists(root, l->name[OLD_ATTEMPT]));
    assert_false(exists(root, l->name[EXPIRED]));
    assert_false(exists(root, l->name[DONE]));
    assert_false(exists(root, l->name[UNKNOWN]));
    assert_true(exists(root, l->name[NOT_DIR]));
    assert_true(exists(root, l->name[LINKED]));
    assert_true(exists(root, l->name[PLAIN]));
    assert_true(exists(root, "notes/n.txt"));
    assert_true(exists(l->outside, "keep.txt"));
}

static void clean_up(PGconn *conn, const char *root, leftovers *l)
{
    for (int i = 0; i < ROWS; i++)
        delete_row(conn, l->hex[i]);
    remove_tree(root);
    remove_tree(l->outside);
}

static void stale_scratch_directories_are_removed_at_start(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    const char *root = fc.workspace_root;
    assert_int_equal(mkdir(root, 0700), 0);
    PGconn *conn = admin();
    leftovers l;
    plant(conn, tag, root, &l);

    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    check_swept(root, &l);
    acp_shutdown(p);
    clean_up(conn, root, &l);
    PQfinish(conn);
}

static void stale_scratch_directories_are_removed_while_running(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.lease_seconds = 3;
    const char *root = fc.workspace_root;
    acp_platform *p;
    assert_int_equal(acp_init(&p, &fc.config), 0);
    PGconn *conn = admin();
    leftovers l;
    plant(conn, tag, root, &l);

    /* The maintenance thread's next pass; a hang guard, not a timing test. */
    for (int waited = 0; exists(root, l.name[OLD_ATTEMPT]) || exists(root, l.name[EXPIRED]) ||
                         exists(root, l.name[DONE]) || exists(root, l.name[UNKNOWN]);
         waited += 100) {
        if (waited > FIXTURE_WAIT_S * 1000)
            fail_msg("the leftovers of stopped runs were not removed");
        fixture_sleep_ms(100);
    }
    check_swept(root, &l);
    acp_shutdown(p);
    clean_up(conn, root, &l);
    PQfinish(conn);
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
        cmocka_unit_test(existing_scratch_directory_fails_the_run_and_is_kept),
        cmocka_unit_test(stale_scratch_directories_are_removed_at_start),
        cmocka_unit_test(stale_scratch_directories_are_removed_while_running),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
