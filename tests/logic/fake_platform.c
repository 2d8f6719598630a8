#include "fake_platform.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "maintenance.h"
#include "objects.h"
#include "platform.h"
#include "scratch.h"

/* ---- the executor: writes result.txt and counts runs per job ---------- */

#define RUNS_MAX 256

static pthread_mutex_t runs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    acp_job_id id;
    int runs;
} runs[RUNS_MAX];
static size_t runs_count;

static void count_run(const acp_job_id *id)
{
    pthread_mutex_lock(&runs_lock);
    size_t i = 0;
    while (i < runs_count && memcmp(&runs[i].id, id, sizeof *id) != 0)
        i++;
    if (i == runs_count && runs_count < RUNS_MAX)
        runs[runs_count++].id = *id;
    if (i < runs_count)
        runs[i].runs++;
    pthread_mutex_unlock(&runs_lock);
}

int fake_platform_runs(const acp_job_id *id)
{
    pthread_mutex_lock(&runs_lock);
    int n = 0;
    for (size_t i = 0; i < runs_count; i++)
        if (memcmp(&runs[i].id, id, sizeof *id) == 0)
            n = runs[i].runs;
    pthread_mutex_unlock(&runs_lock);
    return n;
}

static void (*execute_hook)(acp_job_context *ctx, void *arg);
static void *execute_hook_arg;

void fake_platform_on_execute(void (*hook)(acp_job_context *ctx, void *arg), void *arg)
{
    pthread_mutex_lock(&runs_lock);
    execute_hook = hook;
    execute_hook_arg = arg;
    pthread_mutex_unlock(&runs_lock);
}

static int execute(acp_executor *executor, acp_job_context *ctx)
{
    (void)executor;
    pthread_mutex_lock(&runs_lock);
    void (*hook)(acp_job_context *, void *) = execute_hook;
    void *hook_arg = execute_hook_arg;
    pthread_mutex_unlock(&runs_lock);
    if (hook)
        hook(ctx, hook_arg);
    count_run(&ctx->id);
    char text[128];
    int len = snprintf(text, sizeof text, "attempt=%u\n", ctx->attempt);
    int fd = openat(ctx->dir_fd, "result.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 1;
    int rc = scratch_write_all(fd, text, (size_t)len);
    close(fd);
    return rc || acp_job_add_output(ctx, "result.txt");
}

static const acp_executor_ops ops = {ACP_EXECUTOR_OPS_VERSION, execute, NULL};
static acp_executor executor = {&ops};

static int create(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    *out = &executor;
    return 0;
}

static const acp_executor_factory factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, create, NULL};

/* ---- a transport that lends another platform's fake bucket ------------- */

typedef struct borrowed_transport {
    transport base;
    transport *lender;
} borrowed_transport;

static void borrowed_run(transport *t, transport_request *reqs, size_t n)
{
    transport_run(((borrowed_transport *)t)->lender, reqs, n);
}

static void borrowed_close(transport *t)
{
    free(t);
}

static const transport_vtable borrowed_vt = {"borrowed", borrowed_run, borrowed_close};

/* ---- the platform ------------------------------------------------------- */

/* Warnings and errors, kept for fake_platform_logged(). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[16384];
static size_t log_len;

static void quiet_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    if (level < ACP_LOG_WARN)
        return;
    if (getenv("ACP_TEST_VERBOSE"))
        fprintf(stderr, "platform: %s\n", message);
    pthread_mutex_lock(&log_lock);
    int n = snprintf(log_text + log_len, sizeof log_text - log_len, "%s\n", message);
    if (n > 0 && (size_t)n < sizeof log_text - log_len)
        log_len += (size_t)n;
    pthread_mutex_unlock(&log_lock);
}

bool fake_platform_logged(const char *text)
{
    pthread_mutex_lock(&log_lock);
    bool found = strstr(log_text, text) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

void fake_platform_start(fake_platform *fp, const fake_platform_options *options)
{
    fake_platform_options o = {.workers = 1, .lease_seconds = 30};
    if (options)
        o = *options;
    if (!o.workers)
        o.workers = 1;
    if (!o.lease_seconds)
        o.lease_seconds = 30;
    memset(fp, 0, sizeof *fp);
    fault_plan_init(&fp->plan);
    pthread_mutex_lock(&log_lock);
    log_len = 0;
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_lock);
    snprintf(fp->scratch, sizeof fp->scratch, "/tmp/acp-logic-XXXXXX");
    if (!mkdtemp(fp->scratch))
        fail_msg("mkdtemp failed");

    acp_queue_config_init(&fp->queue, ACP_QUEUE_CONFIG_VERSION);
    fp->queue.id = FAKE_PLATFORM_QUEUE;
    fp->queue.host = "fake-amqp";
    fp->queue.user = fp->queue.password = "fake";
    fp->queue.workers = o.workers;
    acp_config_init(&fp->config, ACP_CONFIG_VERSION);
    fp->config.db.host = "fake-pg";
    fp->config.db.dbname = fp->config.db.user = fp->config.db.password = "fake";
    fp->config.s3.host = "fake-s3";
    fp->config.s3.bucket = "fake-bucket";
    fp->config.s3.access_key = fp->config.s3.secret_key = "fake";
    fp->config.queues = &fp->queue;
    fp->config.queue_count = 1;
    fp->config.workspace_root = fp->scratch;
    fp->config.executor_factory = &factory;
    fp->config.lease_seconds = o.lease_seconds;
    fp->config.max_attempts = o.max_attempts;
    fp->config.shutdown_timeout = 10;
    fp->config.log = quiet_log;
    if (acp_config_validate(&fp->config) != 0)
        fail_msg("fake platform config: %s", acp_last_error());

    fp->broker = fake_broker_new(&fp->plan);
    store *st;
    if (fake_store_open(&st, &fp->plan) != 0)
        fail_msg("fake_store_open: %s", acp_last_error());
    transport *t;
    if (o.shared_s3) {
        borrowed_transport *b = calloc(1, sizeof *b);
        assert_non_null(b);
        b->lender = fake_transport_base(o.shared_s3);
        b->base = *b->lender;
        b->base.vt = &borrowed_vt;
        t = &b->base;
        fp->s3 = o.shared_s3;
    } else {
        fp->s3 = fake_transport_new(&fp->plan);
        t = fake_transport_base(fp->s3);
    }
    objects *obj;
    if (objects_open_transport(&obj, t, "/", NULL) != 0) {
        store_close(st);
        fail_msg("objects_open_transport: %s", acp_last_error());
    }
    fp->store = st;
    platform_backends backends = {st, obj, fake_broker_driver(fp->broker), true};
    if (platform_init_with(&fp->p, &fp->config, &backends) != 0)
        fail_msg("platform_init_with: %s", acp_last_error());
}

void fake_platform_stop(fake_platform *fp)
{
    fault_plan_reset(&fp->plan);
    acp_shutdown(fp->p);
    fp->p = NULL;
    fake_broker_free(fp->broker);
    fp->broker = NULL;
    fault_plan_destroy(&fp->plan);
    int root = open(fp->scratch, O_RDONLY | O_DIRECTORY);
    if (root >= 0) {
        /* Leftover run directories, if any, then the root itself. */
        DIR *dir = fdopendir(dup(root));
        struct dirent *e;
        while (dir && (e = readdir(dir)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                scratch_remove_at(root, e->d_name, e->d_name);
        if (dir)
            closedir(dir);
        close(root);
    }
    rmdir(fp->scratch);
}

bool fake_platform_wait(fake_platform *fp, const acp_job_id *id, acp_job_status status)
{
    for (int waited = 0; waited < FAKE_PLATFORM_WAIT_S * 1000; waited += 10) {
        store_job row;
        if (fake_store_peek(fp->store, id, &row) == 0) {
            acp_job_status now = row.status;
            store_job_free(&row);
            if (now == status)
                return true;
        }
        clock_sleep_ms(10);
    }
    return false;
}

static void object_key(const acp_job_id *id, const char *name, char *key, size_t size)
{
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(key, size, "%s/%s", acp_job_id_format(id, hex), name ? name : "");
}

bool fake_platform_has_object(fake_platform *fp, const acp_job_id *id, const char *name)
{
    char key[128];
    object_key(id, name, key, sizeof key);
    return fake_transport_exists(fp->s3, key);
}

bool fake_platform_wait_object(fake_platform *fp, const acp_job_id *id, const char *name)
{
    for (int waited = 0; waited < FAKE_PLATFORM_WAIT_S * 1000; waited += 10) {
        if (fake_platform_has_object(fp, id, name))
            return true;
        clock_sleep_ms(10);
    }
    return false;
}

size_t fake_platform_object_count(fake_platform *fp, const acp_job_id *id)
{
    char prefix[128];
    object_key(id, NULL, prefix, sizeof prefix);
    return fake_transport_count(fp->s3, prefix);
}

void fake_platform_fail_step(fault_plan *plan, unsigned step)
{
    fake_platform_fail_step_as(plan, step, FAKE_S3_403);
}

void fake_platform_fail_step_as(fault_plan *plan, unsigned step, int s3_kind)
{
    /* The first failing rule that matches wins: the broker's ops first. */
    static const char *const amqp[] = {"amqp.connect", "amqp.declare", "amqp.publish",
                                       "amqp.consume", "amqp.cancel",  "amqp.next",
                                       "amqp.ack"};
    for (size_t i = 0; i < sizeof amqp / sizeof *amqp; i++)
        fault_plan_add(plan, (fault_rule){.op = amqp[i], .step = step, .error = ACP_EBROKER});
    /* The fake store ignores these kinds (it fails before doing anything);
     * the fake transport reads the kind and ignores .error. */
    fault_plan_add(plan, (fault_rule){.step = step, .error = ACP_EDB, .kind = s3_kind});
}

int fake_platform_submit(fake_platform *fp, const char *config, const char *input, acp_job_id *id,
                         acp_job *job)
{
    if (acp_job_id_from_config(id, config) != 0)
        fail_msg("acp_job_id_from_config: %s", acp_last_error());
    acp_input in = {.name = "in.txt", .data = input, .size = input ? strlen(input) : 0};
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    sub.inputs = input ? &in : NULL;
    sub.input_count = input ? 1 : 0;
    return acp_submit(fp->p, FAKE_PLATFORM_QUEUE, &sub, job);
}

void fake_platform_redispatch(fake_platform *fp, const acp_job_id *id)
{
    fake_store_row row;
    if (fake_store_peek_row(fp->store, id, &row) != 0)
        return;
    bool owed = row.job.status == ACP_STATUS_QUEUED && row.dispatched == 0;
    int64_t wait = row.dispatch_retry - fake_store_now(fp->store);
    fake_store_row_free(&row);
    if (!owed)
        return;
    if (wait > 0)
        fake_store_advance(fp->store, wait + 1000000);
    maintenance_tick(fp->p, true);
}
