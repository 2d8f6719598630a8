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
#include "platform_state.h"
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

/* Runs of attempts block_first..block_last wait here until released. */
static pthread_cond_t block_changed = PTHREAD_COND_INITIALIZER;
static unsigned block_first, block_last, blocked;

static void block_if_asked(unsigned attempt)
{
    pthread_mutex_lock(&runs_lock);
    if (block_first && attempt >= block_first && attempt <= block_last) {
        blocked++;
        pthread_cond_broadcast(&block_changed);
        while (block_first && attempt >= block_first && attempt <= block_last)
            pthread_cond_wait(&block_changed, &runs_lock);
        blocked--;
    }
    pthread_mutex_unlock(&runs_lock);
}

void fake_platform_executor_block(unsigned first, unsigned last)
{
    pthread_mutex_lock(&runs_lock);
    block_first = first;
    block_last = last;
    pthread_cond_broadcast(&block_changed);
    pthread_mutex_unlock(&runs_lock);
}

bool fake_platform_executor_wait_blocked(unsigned count)
{
    for (int waited = 0; waited < FAKE_PLATFORM_WAIT_S * 1000; waited += 10) {
        pthread_mutex_lock(&runs_lock);
        bool enough = blocked >= count;
        pthread_mutex_unlock(&runs_lock);
        if (enough)
            return true;
        clock_sleep_ms(10);
    }
    return false;
}

void fake_platform_executor_release(void)
{
    fake_platform_executor_block(0, 0);
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
    block_if_asked(ctx->attempt);
    if (ctx->config && strstr(ctx->config, "\"noop\":true"))
        return 0; /* a job without result files */
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

/* ---- a gate between the workers and the fake broker ------------------- */

struct fake_platform_gate {
    broker_driver driver; /* first: the platform's driver */
    const broker_driver *inner;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool closed;
    unsigned passes;       /* requests let through while closed */
    int waiting;           /* workers held at the gate */
    int in_next;           /* workers inside the fake broker's next */
    unsigned long entries; /* calls of next let through so far */
};

typedef struct gated_conn {
    broker_conn base;
    broker_conn *inner;
    fake_platform_gate *gate;
} gated_conn;

static void gated_close(broker_conn *c)
{
    broker_close(((gated_conn *)c)->inner);
    free(c);
}

static int gated_declare(broker_conn *c, const char *queue_id, unsigned ack_timeout_seconds)
{
    return broker_declare(((gated_conn *)c)->inner, queue_id, ack_timeout_seconds);
}

static int gated_publish(broker_conn *c, const char *queue_id, const char *body, size_t len,
                         int confirm_timeout_ms)
{
    return broker_publish(((gated_conn *)c)->inner, queue_id, body, len, confirm_timeout_ms);
}

static int gated_publish_send(broker_conn *c, const char *queue_id, const char *body, size_t len,
                              uint64_t *seq)
{
    return broker_publish_send(((gated_conn *)c)->inner, queue_id, body, len, seq);
}

static int gated_read_confirms(broker_conn *c, broker_confirm_fn fn, void *arg)
{
    return broker_read_confirms(((gated_conn *)c)->inner, fn, arg);
}

static int gated_wait_readable(broker_conn *c, int timeout_ms)
{
    return broker_wait_readable(((gated_conn *)c)->inner, timeout_ms);
}

static int gated_consume(broker_conn *c, const char *queue_id)
{
    return broker_consume(((gated_conn *)c)->inner, queue_id);
}

static int gated_cancel(broker_conn *c)
{
    return broker_cancel(((gated_conn *)c)->inner);
}

static int gated_cancel_send(broker_conn *c)
{
    return broker_cancel_send(((gated_conn *)c)->inner);
}

static int gated_consume_send(broker_conn *c, const char *queue_id)
{
    return broker_consume_send(((gated_conn *)c)->inner, queue_id);
}

static int gated_next(broker_conn *c, int timeout_ms, broker_delivery *out)
{
    fake_platform_gate *g = ((gated_conn *)c)->gate;
    pthread_mutex_lock(&g->lock);
    while (g->closed && !g->passes) {
        g->waiting++;
        pthread_cond_broadcast(&g->changed);
        pthread_cond_wait(&g->changed, &g->lock);
        g->waiting--;
    }
    if (g->closed)
        g->passes--;
    g->in_next++;
    g->entries++;
    pthread_mutex_unlock(&g->lock);
    int rc = broker_next(((gated_conn *)c)->inner, timeout_ms, out);
    pthread_mutex_lock(&g->lock);
    g->in_next--;
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static int gated_ack(broker_conn *c, uint64_t tag)
{
    return broker_ack(((gated_conn *)c)->inner, tag);
}

/* The fake's keeper refers to the inner connection, so broker_keeper_stop
 * reaches the fake directly. */
static int gated_keeper_start(broker_conn *c, int cancel_after_ms, broker_keeper **out)
{
    return broker_keeper_start(((gated_conn *)c)->inner, cancel_after_ms, out);
}

static const broker_conn_ops gated_ops = {
    .close = gated_close,
    .declare = gated_declare,
    .publish = gated_publish,
    .publish_send = gated_publish_send,
    .read_confirms = gated_read_confirms,
    .wait_readable = gated_wait_readable,
    .consume = gated_consume,
    .cancel = gated_cancel,
    .cancel_send = gated_cancel_send,
    .consume_send = gated_consume_send,
    .next = gated_next,
    .ack = gated_ack,
    .keeper_start = gated_keeper_start,
};

static int gated_connect(const broker_driver *driver, broker_conn **out,
                         const acp_queue_config *queue, const logger *log)
{
    fake_platform_gate *g = (fake_platform_gate *)driver;
    *out = NULL;
    gated_conn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    int rc = broker_connect(&c->inner, g->inner, queue, log);
    if (rc) {
        free(c);
        return rc;
    }
    c->base.ops = &gated_ops;
    c->gate = g;
    *out = &c->base;
    return 0;
}

bool fake_platform_hold(fake_platform *fp)
{
    fake_platform_gate *g = fp->gate;
    pthread_mutex_lock(&g->lock);
    g->closed = true;
    pthread_mutex_unlock(&g->lock);
    for (int waited = 0; waited < FAKE_PLATFORM_WAIT_S * 1000; waited += 10) {
        pthread_mutex_lock(&g->lock);
        bool held = g->waiting == fp->workers;
        pthread_mutex_unlock(&g->lock);
        if (held)
            return true;
        clock_sleep_ms(10);
    }
    return false;
}

bool fake_platform_release_one(fake_platform *fp)
{
    fake_platform_gate *g = fp->gate;
    pthread_mutex_lock(&g->lock);
    unsigned long entries = g->entries;
    g->passes++;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
    /* Until the request has gone through, its worker still counts as held. */
    bool passed = false;
    for (int waited = 0; !passed && waited < FAKE_PLATFORM_WAIT_S * 1000; waited += 10) {
        pthread_mutex_lock(&g->lock);
        passed = g->entries != entries;
        pthread_mutex_unlock(&g->lock);
        if (!passed)
            clock_sleep_ms(10);
    }
    return passed && fake_platform_hold(fp);
}

void fake_platform_release(fake_platform *fp)
{
    fake_platform_gate *g = fp->gate;
    pthread_mutex_lock(&g->lock);
    g->closed = false;
    g->passes = 0;
    pthread_cond_broadcast(&g->changed);
    pthread_mutex_unlock(&g->lock);
}

bool fake_platform_idle(fake_platform *fp)
{
    fake_platform_gate *g = fp->gate;
    for (int waited = 0; waited < FAKE_PLATFORM_WAIT_S * 1000; waited += 10) {
        pthread_mutex_lock(&g->lock);
        unsigned long entries = g->entries;
        bool inside = g->in_next == fp->workers;
        pthread_mutex_unlock(&g->lock);
        /* Ready before unacked: a delivery moves a message from one to the
         * other, so it cannot slip between the two reads unseen. */
        size_t waiting = fake_broker_ready(fp->broker, FAKE_PLATFORM_QUEUE);
        waiting += fake_broker_unacked(fp->broker, FAKE_PLATFORM_QUEUE);
        pthread_mutex_lock(&g->lock);
        inside = inside && g->in_next == fp->workers && g->entries == entries;
        pthread_mutex_unlock(&g->lock);
        if (inside && waiting == 0)
            return true;
        clock_sleep_ms(10);
    }
    return false;
}

/* ---- the platform ------------------------------------------------------- */

/* Warnings and errors of the platform running now, for
 * fake_platform_logged. */
#define LOGGED_MAX 256
static pthread_mutex_t logged_lock = PTHREAD_MUTEX_INITIALIZER;
static char *logged[LOGGED_MAX];
static size_t logged_count;

static void logged_clear(void)
{
    pthread_mutex_lock(&logged_lock);
    for (size_t i = 0; i < logged_count; i++)
        free(logged[i]);
    logged_count = 0;
    pthread_mutex_unlock(&logged_lock);
}

bool fake_platform_logged(const char *needle)
{
    pthread_mutex_lock(&logged_lock);
    bool found = false;
    for (size_t i = 0; i < logged_count && !found; i++)
        found = strstr(logged[i], needle) != NULL;
    pthread_mutex_unlock(&logged_lock);
    return found;
}

static void quiet_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    if (level < ACP_LOG_WARN)
        return;
    if (getenv("ACP_TEST_VERBOSE"))
        fprintf(stderr, "platform: %s\n", message);
    pthread_mutex_lock(&logged_lock);
    if (logged_count < LOGGED_MAX && (logged[logged_count] = strdup(message)))
        logged_count++;
    pthread_mutex_unlock(&logged_lock);
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
    logged_clear();
    fault_plan_init(&fp->plan);
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
    fp->config.layout = o.layout ? o.layout : ACP_LAYOUT_LCP;
    fp->config.log = quiet_log;
    if (acp_config_validate(&fp->config) != 0)
        fail_msg("fake platform config: %s", acp_last_error());

    fp->broker = fake_broker_new(&fp->plan);
    fp->workers = o.workers;
    fp->gate = calloc(1, sizeof *fp->gate);
    assert_non_null(fp->gate);
    fp->gate->driver = (broker_driver){"fake-gated", gated_connect};
    fp->gate->inner = fake_broker_driver(fp->broker);
    pthread_mutex_init(&fp->gate->lock, NULL);
    clock_cond_init(&fp->gate->changed);
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
    if (objects_open_transport(&obj, t, "/", NULL, NULL) != 0) {
        store_close(st);
        fail_msg("objects_open_transport: %s", acp_last_error());
    }
    fp->store = st;
    platform_backends backends = {st, obj, &fp->gate->driver, true, o.cancel_grace_ms};
    if (platform_init_with(&fp->p, &fp->config, &backends) != 0)
        fail_msg("platform_init_with: %s", acp_last_error());
}

void fake_platform_stop(fake_platform *fp)
{
    fault_plan_reset(&fp->plan);
    fake_platform_release(fp);
    /* Workers wait up to 250 ms for a delivery before they look at the stop
     * flag; closing their connections once it is up wakes them at once, so
     * that the many platforms of a test stop quickly. */
    platform_state_raise(fp->p, &fp->p->stopping);
    fake_broker_close_connections(fp->broker);
    acp_shutdown(fp->p);
    fp->p = NULL;
    fake_broker_free(fp->broker);
    fp->broker = NULL;
    pthread_mutex_destroy(&fp->gate->lock);
    pthread_cond_destroy(&fp->gate->changed);
    free(fp->gate);
    fp->gate = NULL;
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
    logged_clear();
}

size_t fake_platform_scratch_count(fake_platform *fp)
{
    DIR *dir = opendir(fp->scratch);
    size_t n = 0;
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    if (dir)
        closedir(dir);
    return n;
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

acp_job_id fake_platform_submit_ok(fake_platform *fp, const char *config)
{
    acp_job_id id;
    if (fake_platform_submit(fp, config, NULL, &id, NULL) != 0)
        fail_msg("submit: %s", acp_last_error());
    return id;
}

void fake_platform_redispatch(fake_platform *fp, const acp_job_id *id)
{
    fake_store_row row;
    if (fake_store_peek_row(fp->store, id, &row) != 0)
        return;
    bool owed = row.job.status == ACP_STATUS_QUEUED && row.dispatched == 0;
    int64_t due = row.dispatch_retry > row.job.not_before ? row.dispatch_retry : row.job.not_before;
    int64_t wait = due - fake_store_now(fp->store);
    fake_store_row_free(&row);
    if (!owed)
        return;
    if (wait > 0)
        fake_store_advance(fp->store, wait + 1000000);
    maintenance_tick(fp->p, true);
}
