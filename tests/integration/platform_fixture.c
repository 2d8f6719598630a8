#include "platform_fixture.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cmocka.h>
#include <libpq-fe.h>

extern char **environ;

void fixture_tag(char out[9])
{
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_generate(&id);
    acp_job_id_format(&id, hex);
    memcpy(out, hex, 8);
    out[8] = '\0';
}

void fixture_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

void fixture_config_make(fixture_config *fc, const stack_env *env, const char *run_tag,
                         size_t queue_count, int workers, const acp_executor_factory *factory)
{
    memset(fc, 0, sizeof *fc);
    acp_config *c = &fc->config;
    acp_config_init(c, ACP_CONFIG_VERSION);
    c->db.host = env->pg_host;
    c->db.port = atoi(env->pg_port);
    c->db.dbname = env->pg_db;
    c->db.user = env->pg_user;
    c->db.password = env->pg_password;
    c->db.pool_size = 4;
    c->s3.host = env->s3_host;
    c->s3.port = atoi(env->s3_port);
    c->s3.bucket = env->s3_bucket;
    c->s3.access_key = env->s3_access_key;
    c->s3.secret_key = env->s3_secret_key;
    snprintf(fc->root_path, sizeof fc->root_path, "/test-%s/", run_tag);
    c->s3.root_path = fc->root_path;
    snprintf(fc->workspace_root, sizeof fc->workspace_root, "/tmp/acp-test-%s", run_tag);
    c->workspace_root = fc->workspace_root;
    for (size_t i = 0; i < queue_count && i < FIXTURE_MAX_QUEUES; i++) {
        acp_queue_config *q = &fc->queues[i];
        acp_queue_config_init(q, ACP_QUEUE_CONFIG_VERSION);
        snprintf(fc->queue_ids[i], sizeof fc->queue_ids[i], "q%zu-%s", i, run_tag);
        q->id = fc->queue_ids[i];
        q->host = env->amqp_host;
        q->port = atoi(env->amqp_port);
        q->user = env->amqp_user;
        q->password = env->amqp_password;
        q->workers = workers;
        /* One attempt: the life-cycle tests see a failure's end as it
         * happens. Tests of retries (test_control.c) and of dead processes
         * ask for more. */
        q->max_attempts = 1;
    }
    c->queues = fc->queues;
    c->queue_count = queue_count;
    c->executor_factory = factory;
    /* The suite runs in either layout (scripts/test runs it in both);
     * tests of one layout's own behaviour set it themselves. */
    const char *layout = getenv("ACP_TEST_LAYOUT");
    c->layout = layout && strcmp(layout, "lcp") == 0 ? ACP_LAYOUT_LCP : ACP_LAYOUT_NATIVE;
    c->log = fixture_log;
    c->log_level = ACP_LOG_DEBUG;
}

bool fixture_wait_status(acp_platform *p, const acp_job_id *id, acp_job_status status,
                         int timeout_s, acp_job *job)
{
    for (int waited = 0; waited <= timeout_s * 1000; waited += 20) {
        acp_job_clear(job);
        if (acp_get_job(p, id, job) == 0 && job->status == status)
            return true;
        fixture_sleep_ms(20);
    }
    return false;
}

int fixture_wait_object(objects *raw, const acp_job_id *id, const char *name)
{
    for (int waited = 0; waited <= FIXTURE_WAIT_S * 1000; waited += 20) {
        bool exists = false;
        int rc = objects_stat(raw, id, name, &exists, NULL, NULL);
        if (rc || exists)
            return rc;
        fixture_sleep_ms(20);
    }
    return 1;
}

/* ---- log capture ------------------------------------------------------ */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char **log_lines;
static size_t log_count, log_cap;

void fixture_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    if (level >= ACP_LOG_WARN || getenv("ACP_TEST_VERBOSE")) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        fprintf(stderr, "# %ld.%03ld log %d: %s\n", (long)now.tv_sec % 1000, now.tv_nsec / 1000000L,
                (int)level, message);
    }
    pthread_mutex_lock(&log_lock);
    if (log_count == log_cap) {
        size_t cap = log_cap ? log_cap * 2 : 256;
        char **grown = realloc(log_lines, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&log_lock);
            return;
        }
        log_lines = grown;
        log_cap = cap;
    }
    char *copy = strdup(message);
    if (copy)
        log_lines[log_count++] = copy;
    pthread_mutex_unlock(&log_lock);
}

bool fixture_log_contains(const char *a, const char *b)
{
    bool found = false;
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_count && !found; i++)
        found = strstr(log_lines[i], a) && (!b || strstr(log_lines[i], b));
    pthread_mutex_unlock(&log_lock);
    return found;
}

void fixture_log_reset(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_count; i++)
        free(log_lines[i]);
    free(log_lines);
    log_lines = NULL;
    log_count = log_cap = 0;
    pthread_mutex_unlock(&log_lock);
}

int fixture_ops_create(void *ops, acp_job_context *ctx, acp_executor **out)
{
    (void)ctx;
    acp_executor *executor = malloc(sizeof *executor);
    if (!executor)
        return -1;
    executor->ops = ops;
    *out = executor;
    return 0;
}

acp_platform *fixture_child_platform(fixture_config *fc, const stack_env *env, const char *tag,
                                     const acp_executor_factory *factory)
{
    fixture_config_make(fc, env, tag, 1, 1, factory);
    fc->queues[0].max_attempts = 0; /* config.max_attempts: a dead process's run is retried */
    fc->config.lease_seconds = 3;
    fc->config.log_level = ACP_LOG_WARN;
    acp_platform *p;
    if (acp_init(&p, &fc->config) != 0) {
        fprintf(stderr, "child: acp_init: %s\n", acp_last_error());
        return NULL;
    }
    return p;
}

int fixture_spawn_self(const char *self, const char *mode, const char *tag, FILE **from_child)
{
    int out[2];
    if (pipe(out) != 0) {
        perror("pipe");
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    char *argv[] = {(char *)self, (char *)mode, (char *)tag, NULL};
    pid_t child;
    int err = posix_spawn(&child, self, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (err) {
        fprintf(stderr, "posix_spawn %s: %s\n", self, strerror(err));
        close(out[0]);
        return -1;
    }
    *from_child = fdopen(out[0], "r");
    return child;
}

int64_t fixture_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fixture_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fixture_spawn_job_child(const char *self, const char *mode, const char *tag, FILE **from_child,
                            acp_job_id *id)
{
    pid_t child = fixture_spawn_self(self, mode, tag, from_child);
    if (child <= 0)
        return -1;
    char line[128] = {0};
    if (!fgets(line, sizeof line, *from_child) || strncmp(line, "running ", 8) != 0 ||
        (line[strcspn(line, "\n")] = '\0', acp_job_id_parse(id, line + 8) != 0)) {
        fprintf(stderr, "the child process (%s) did not start its job: '%s'\n", mode, line);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fclose(*from_child);
        *from_child = NULL;
        return -1;
    }
    return child;
}

int fixture_submit_mode(acp_platform *p, const char *queue, const char *mode, const char *tag,
                        int n, acp_submission *sub, acp_job_id *id)
{
    char config[160];
    snprintf(config, sizeof config, "{\"mode\":\"%s\",\"n\":\"%s-%d\"}", mode, tag, n);
    acp_submission local;
    if (!sub) {
        acp_submission_init(&local, ACP_SUBMISSION_VERSION);
        sub = &local;
    }
    sub->config = config;
    acp_job job = {0};
    int rc = acp_submit(p, queue, sub, &job);
    sub->config = NULL; /* it pointed here */
    if (rc != 0) {
        fprintf(stderr, "acp_submit: %s\n", acp_last_error());
        return -1;
    }
    *id = job.id;
    acp_job_clear(&job);
    return 0;
}

int fixture_child_submit(acp_platform *p, const fixture_config *fc, const char *config,
                         acp_job_id *id)
{
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job = {0};
    if (acp_submit(p, fc->queue_ids[0], &sub, &job) != 0) {
        fprintf(stderr, "child: submit: %s\n", acp_last_error());
        return -1;
    }
    *id = job.id;
    acp_job_clear(&job);
    return 0;
}

void fixture_stack_db_exec(const stack_env *env, const char *sql)
{
    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%s dbname=%s user=%s password=%s",
             env->pg_host, env->pg_port, env->pg_db, env->pg_user, env->pg_password);
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("connecting to %s: %s", env->pg_db, PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
}
