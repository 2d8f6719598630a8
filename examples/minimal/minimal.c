/* minimal.c: the whole async_platform API in one short program.
 *
 * It configures a platform from the ACP_TEST_* settings that scripts/stack
 * prints, plugs in an executor that writes one result file, submits a job,
 * waits for it, reads the result back from S3, deletes the job and shuts the
 * platform down. Build it against an installed library with:
 *
 *   cc minimal.c -o minimal $(pkg-config --cflags --libs async-platform)
 *   eval "$(scripts/stack env)" && ./minimal
 */
#define _POSIX_C_SOURCE 200809L /* openat, dprintf, nanosleep under -std=c11 */

#include <async_platform.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- 1. An executor: the code that runs a job ------------------------------
 *
 * The platform calls the factory's create() on a worker thread for each job,
 * then execute() with a fresh scratch directory, then free(). Files named
 * with acp_job_add_output() are uploaded to S3 when execute() returns. */

typedef struct greeter {
    acp_executor base; /* first member: the platform only sees this */
    int greetings;     /* anything the executor needs goes here */
} greeter;

static int greeter_execute(acp_executor *self, acp_job_context *ctx)
{
    greeter *g = (greeter *)self;
    /* Write into the scratch directory through its descriptor. */
    int fd = openat(ctx->dir_fd, "greeting.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        acp_job_set_message(ctx, "cannot create greeting.txt");
        return 1; /* non-zero: the job fails with that message */
    }
    for (int i = 0; i < g->greetings; i++)
        dprintf(fd, "hello from job %s (attempt %u), config %s\n", ctx->id_hex, ctx->attempt,
                ctx->config ? ctx->config : "none");
    close(fd);
    return acp_job_add_output(ctx, "greeting.txt"); /* keep it as a result */
}

static void greeter_free(acp_executor *self)
{
    free(self);
}

static const acp_executor_ops greeter_ops = {
    .version = ACP_EXECUTOR_OPS_VERSION,
    .execute = greeter_execute,
    .free = greeter_free,
};

/* Called concurrently on several worker threads: it must be thread-safe. */
static int greeter_create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    greeter *g = calloc(1, sizeof *g);
    if (!g) {
        acp_job_set_message(ctx, "out of memory");
        return 1;
    }
    g->base.ops = &greeter_ops;
    g->greetings = 2;
    *out = &g->base;
    return 0;
}

/* ---- 2. Configuration -------------------------------------------------- */

static const char *setting(const char *name)
{
    const char *value = getenv(name);
    if (!value || !*value) {
        fprintf(stderr, "minimal: %s is not set; run eval \"$(scripts/stack env)\" first\n", name);
        exit(2);
    }
    return value;
}

int main(void)
{
    acp_queue_config queue;
    acp_queue_config_init(&queue, ACP_QUEUE_CONFIG_VERSION); /* defaults first, always */
    queue.id = "minimal";                                    /* RabbitMQ queue "minimal_jobs" */
    queue.host = setting("ACP_TEST_AMQP_HOST");
    queue.port = atoi(setting("ACP_TEST_AMQP_PORT"));
    queue.user = setting("ACP_TEST_AMQP_USER");
    queue.password = setting("ACP_TEST_AMQP_PASSWORD");
    queue.workers = 1;

    acp_executor_factory factory = {
        .version = ACP_EXECUTOR_FACTORY_VERSION,
        .create = greeter_create,
    };

    acp_config config;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    config.db.host = setting("ACP_TEST_PG_HOST");
    config.db.port = atoi(setting("ACP_TEST_PG_PORT"));
    config.db.dbname = setting("ACP_TEST_PG_DB");
    config.db.user = setting("ACP_TEST_PG_USER");
    config.db.password = setting("ACP_TEST_PG_PASSWORD");
    config.s3.host = setting("ACP_TEST_S3_HOST");
    config.s3.port = atoi(setting("ACP_TEST_S3_PORT"));
    config.s3.bucket = setting("ACP_TEST_S3_BUCKET");
    config.s3.access_key = setting("ACP_TEST_S3_ACCESS_KEY");
    config.s3.secret_key = setting("ACP_TEST_S3_SECRET_KEY");
    config.s3.root_path = "minimal-example"; /* workspaces under this prefix */
    config.workspace_root = "/tmp/acp-minimal";
    config.queues = &queue;
    config.queue_count = 1;
    config.executor_factory = &factory;
    config.log_level = ACP_LOG_WARN; /* quiet: only problems go to stderr */

    /* ---- 3. Start: connects to PostgreSQL, S3 and RabbitMQ ------------- */
    acp_platform *platform;
    int rc = acp_init(&platform, &config);
    if (rc != 0) {
        /* Every failure has a code and a message naming the problem. */
        fprintf(stderr, "minimal: acp_init: %s: %s\n", acp_strerror(rc), acp_last_error());
        return 1;
    }

    /* ---- 4. Submit: the job id is derived from the config -------------- */
    acp_job_id nonce;
    char nonce_hex[ACP_JOB_ID_STRLEN], job_config[128];
    acp_job_id_generate(&nonce); /* a fresh config, hence a fresh job, each run */
    snprintf(job_config, sizeof job_config, "{\"greeting\":\"hello\",\"run\":\"%s\"}",
             acp_job_id_format(&nonce, nonce_hex));

    acp_submission submission;
    acp_submission_init(&submission, ACP_SUBMISSION_VERSION);
    submission.config = job_config;
    acp_job job;
    memset(&job, 0, sizeof job);
    rc = acp_submit(platform, "minimal", &submission, &job);
    if (rc != 0) {
        fprintf(stderr, "minimal: acp_submit: %s: %s\n", acp_strerror(rc), acp_last_error());
        acp_shutdown(platform);
        return 1;
    }
    acp_job_id id = job.id;
    char id_hex[ACP_JOB_ID_STRLEN];
    acp_job_id_format(&id, id_hex);
    printf("submitted job %s (%s)\n", id_hex, acp_job_status_name(job.status));
    acp_job_clear(&job);

    /* ---- 5. Wait: poll the job's status (up to a minute) --------------- */
    const struct timespec pause = {0, 100 * 1000000L};
    for (int polls = 0; polls < 600; polls++) {
        rc = acp_get_job(platform, &id, &job);
        if (rc != 0 || job.status == ACP_STATUS_COMPLETE || job.status == ACP_STATUS_FAILED)
            break;
        acp_job_clear(&job);
        nanosleep(&pause, NULL);
    }
    if (rc != 0 || job.status != ACP_STATUS_COMPLETE) {
        fprintf(stderr, "minimal: job %s did not complete: %s\n", id_hex,
                rc            ? acp_last_error()
                : job.message ? job.message
                              : acp_job_status_name(job.status));
        acp_job_clear(&job);
        acp_shutdown(platform);
        return 1;
    }
    printf("job %s is %s after %u attempt(s)\n", id_hex, acp_job_status_name(job.status),
           job.attempts);
    acp_job_clear(&job);

    /* ---- 6. Read the results from S3 ----------------------------------- */
    acp_result_list files;
    rc = acp_get_results(platform, &id, &files);
    for (size_t i = 0; rc == 0 && i < files.count; i++)
        printf("result file %s, %llu bytes\n", files.files[i].name,
               (unsigned long long)files.files[i].size);
    if (rc == 0)
        acp_result_list_clear(&files);
    void *text = NULL;
    size_t size = 0;
    if (rc == 0)
        rc = acp_read_result_buffer(platform, &id, "greeting.txt", 64 * 1024, &text, &size);
    if (rc == 0)
        printf("greeting.txt:\n%s", (const char *)text); /* NUL-terminated for us */
    acp_free(text);

    /* ---- 7. Clean up: delete the job, then stop the platform ----------- */
    if (rc == 0)
        rc = acp_delete_job(platform, &id);
    if (rc != 0)
        fprintf(stderr, "minimal: %s: %s\n", acp_strerror(rc), acp_last_error());
    else
        printf("deleted job %s\n", id_hex);
    acp_shutdown(platform); /* waits for running jobs, closes everything */
    return rc == 0 ? 0 : 1;
}
