/* acp-bench-floor: the backend operations a job of the benchmark needs,
 * issued by a minimal loop without async_platform, so that the library's cost
 * can be stated as a ratio to this floor. It links libpq, rabbitmq-c and
 * libs3 directly (the one exception to "public API only" in bench/).
 *
 *   acp-bench-floor run [options]          one measured run, one JSON line
 *   acp-bench-floor delete-queues NAME...  delete RabbitMQ queues (clean-up of
 *                                          the queues acp-bench runs declared)
 *
 * Per job, each thread runs the op mix given on the command line (bench/run
 * passes what acp_get_stats counted per job in the burst scenario):
 *   --sql X       statements on a copy of compute.jobs (same columns, indexes
 *                 and constraints), each in its own transaction: an INSERT,
 *                 then a claim-like UPDATE ... RETURNING, a finish-like
 *                 UPDATE and a SELECT by id, in turn
 *   --publish X   persistent, mandatory messages with publisher confirms
 *   --consume X   deliveries received (prefetch 1) and acknowledged
 *   --put X       PUTs; the first ones have the sizes of --put-sizes (the
 *                 job's config and its result), the rest are empty (flags)
 *   --head X      HEADs of absent keys (as the library's flag checks)
 *   --list X      LISTs of the job's prefix
 *   --get X       GETs of the job's first non-empty object
 *   --delete X    DELETEs of the job's objects
 * Fractional rates are spread over the jobs (job j does floor((j+1)x) -
 * floor(jx) ops). Each thread has one connection to each service, as a
 * minimal client would. S3 requests run on a libs3 request context driven
 * here, with TCP_QUICKACK set on its sockets so that radosgw's partial writes
 * are acknowledged at once: without it each small response waits about 40 ms
 * for a delayed ACK, which is a client artefact, not backend work. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>
#include <libs3.h>

#include "benchutil.h"

#define THREADS_MAX 128
#define SIZES_MAX   8
#define KEY_MAX     512
#define PUBLISH_CH  1
#define CONSUME_CH  2

enum { K_SQL, K_PUBLISH, K_CONSUME, K_PUT_EMPTY, K_PUT_DATA, K_HEAD, K_LIST, K_GET, K_DELETE, K_N };
static const char *const kind_names[K_N] = {"sql",          "publish",     "consume",
                                            "s3_put_empty", "s3_put_data", "s3_head",
                                            "s3_list",      "s3_get",      "s3_delete"};

typedef struct floor_opts {
    size_t jobs;
    int threads;
    size_t warmup;
    double rate[K_N]; /* per job; K_PUT_EMPTY holds all PUTs, K_PUT_DATA unused */
    size_t sizes[SIZES_MAX];
    size_t size_count;
    const char *json_path;
    const char *label;
    const char *stack_dir;
} floor_opts;

static floor_opts O;
static bench_env E;
static bench_services SVC;
static char TAG[17];
static char TABLE[64];
static char S3_ROOT[64];
static S3BucketContext BUCKET;
static char S3_HOST[300];
static pthread_mutex_t issue_lock = PTHREAD_MUTEX_INITIALIZER; /* libs3 uses gmtime() */
static atomic_size_t next_job;
static atomic_bool failed;
static pthread_mutex_t error_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[1024];
static char data_block[1 << 20];

static void floor_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void floor_fail(const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&error_lock);
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s", text);
    pthread_mutex_unlock(&error_lock);
    fprintf(stderr, "acp-bench-floor: %s\n", text);
    atomic_store(&failed, true);
}

/* ---- PostgreSQL ----------------------------------------------------------- */

static PGconn *pg_connect(void)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout", NULL};
    const char *values[] = {E.pg_host, E.pg_port, E.pg_user, E.pg_password, E.pg_db, "5", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        floor_fail("postgres %s:%s: %s", E.pg_host, E.pg_port, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static int pg_simple(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc)
        floor_fail("postgres %s:%s: %s: %s", E.pg_host, E.pg_port, sql, PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

/* Statement @n of a job: INSERT first, then claim, finish and read in turn. */
static int pg_statement(PGconn *conn, const unsigned char id[16], size_t n, const char *config)
{
    char sql[512];
    const char *values[3] = {(const char *)id, NULL, NULL};
    int lengths[3] = {16, 0, 0};
    int formats[3] = {1, 0, 0};
    int count = 1;
    if (n == 0) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO %s (job_id, status, queue, config, input_files, created, "
                 "last_accessed, dispatched) VALUES ($1::bytea, 'queued', $2, $3, "
                 "'{}'::varchar[], now(), now(), now())",
                 TABLE);
        values[1] = "bench-floor";
        values[2] = config;
        count = 3;
    } else if (n % 3 == 1) {
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET status = 'in-progress', grabbed = now(), finished = NULL, "
                 "error = NULL, lease_owner = $2, lease_expires = now() + interval '60 s', "
                 "attempts = attempts + 1 WHERE job_id = $1::bytea RETURNING job_id, status, "
                 "queue, config, input_files, created, last_accessed, grabbed, finished, "
                 "attempts, error",
                 TABLE);
        values[1] = TAG;
        count = 2;
    } else if (n % 3 == 2) {
        snprintf(sql, sizeof sql,
                 "UPDATE %s SET status = 'complete', finished = now(), error = NULL, "
                 "output_files = '{result.bin}'::varchar[], lease_owner = NULL, "
                 "lease_expires = NULL WHERE job_id = $1::bytea AND lease_owner = $2",
                 TABLE);
        values[1] = TAG;
        count = 2;
    } else {
        snprintf(sql, sizeof sql,
                 "SELECT job_id, status, queue, config, input_files, created, last_accessed, "
                 "grabbed, finished, attempts, error FROM %s WHERE job_id = $1::bytea",
                 TABLE);
    }
    PGresult *res = PQexecParams(conn, sql, count, NULL, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
    if (rc)
        floor_fail("postgres %s:%s: statement %zu: %s", E.pg_host, E.pg_port, n,
                   PQresultErrorMessage(res));
    PQclear(res);
    return rc;
}

/* ---- RabbitMQ -------------------------------------------------------------- */

typedef struct amqp_side {
    amqp_connection_state_t conn;
    char queue[128];
    uint64_t published; /* publish sequence numbers handed out */
    uint64_t confirmed; /* highest sequence number confirmed */
    uint64_t *ready;    /* delivery tags received, not yet acked */
    size_t ready_count, ready_cap;
    uint64_t current_tag;     /* delivery being read */
    uint64_t content_left[3]; /* body bytes still expected per channel */
    bool in_content[3];
    bool returned;
} amqp_side;

static int amqp_check(amqp_side *a, amqp_rpc_reply_t reply, const char *what)
{
    (void)a;
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        floor_fail("rabbitmq %s:%s: %s: %s", E.amqp_host, E.amqp_port, what,
                   amqp_error_string2(reply.library_error));
    else
        floor_fail("rabbitmq %s:%s: %s: server error (method 0x%08x)", E.amqp_host, E.amqp_port,
                   what, reply.reply.id);
    return -1;
}

static int amqp_open(amqp_side *a)
{
    a->conn = amqp_new_connection();
    amqp_socket_t *sock = a->conn ? amqp_tcp_socket_new(a->conn) : NULL;
    if (!sock) {
        floor_fail("rabbitmq: out of memory");
        return -1;
    }
    int status = amqp_socket_open(sock, E.amqp_host, atoi(E.amqp_port));
    if (status != AMQP_STATUS_OK) {
        floor_fail("rabbitmq %s:%s: connecting: %s", E.amqp_host, E.amqp_port,
                   amqp_error_string2(status));
        return -1;
    }
    if (amqp_check(a,
                   amqp_login(a->conn, "/", 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, E.amqp_user,
                              E.amqp_password),
                   "login"))
        return -1;
    return 0;
}

static void amqp_close(amqp_side *a)
{
    if (!a->conn)
        return;
    amqp_connection_close(a->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(a->conn);
    a->conn = NULL;
    free(a->ready);
    a->ready = NULL;
}

/* Channel 1 publishes with confirms to the thread's own durable queue;
 * channel 2 consumes it with prefetch 1 and manual acks. */
static int amqp_setup(amqp_side *a, int thread)
{
    snprintf(a->queue, sizeof a->queue, "acp-bench-floor-%s-%d", TAG, thread);
    if (amqp_open(a))
        return -1;
    amqp_channel_open(a->conn, PUBLISH_CH);
    if (amqp_check(a, amqp_get_rpc_reply(a->conn), "channel.open"))
        return -1;
    amqp_confirm_select(a->conn, PUBLISH_CH);
    if (amqp_check(a, amqp_get_rpc_reply(a->conn), "confirm.select"))
        return -1;
    amqp_queue_declare(a->conn, PUBLISH_CH, amqp_cstring_bytes(a->queue), 0, 1, 0, 0,
                       amqp_empty_table);
    if (amqp_check(a, amqp_get_rpc_reply(a->conn), "queue.declare"))
        return -1;
    amqp_channel_open(a->conn, CONSUME_CH);
    if (amqp_check(a, amqp_get_rpc_reply(a->conn), "channel.open"))
        return -1;
    amqp_basic_qos(a->conn, CONSUME_CH, 0, 1, 0);
    if (amqp_check(a, amqp_get_rpc_reply(a->conn), "basic.qos"))
        return -1;
    amqp_basic_consume(a->conn, CONSUME_CH, amqp_cstring_bytes(a->queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if (amqp_check(a, amqp_get_rpc_reply(a->conn), "basic.consume"))
        return -1;
    return 0;
}

static int amqp_push_ready(amqp_side *a, uint64_t tag)
{
    if (a->ready_count == a->ready_cap) {
        size_t cap = a->ready_cap ? a->ready_cap * 2 : 16;
        uint64_t *more = realloc(a->ready, cap * sizeof *more);
        if (!more) {
            floor_fail("out of memory");
            return -1;
        }
        a->ready = more;
        a->ready_cap = cap;
    }
    a->ready[a->ready_count++] = tag;
    return 0;
}

/* Read and account for one frame: confirms, returns, deliveries and their
 * content, whatever order they come in. */
static int amqp_pump(amqp_side *a)
{
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame(a->conn, &frame);
    if (status != AMQP_STATUS_OK) {
        floor_fail("rabbitmq %s:%s: waiting for a frame: %s", E.amqp_host, E.amqp_port,
                   amqp_error_string2(status));
        return -1;
    }
    unsigned ch = frame.channel <= 2 ? frame.channel : 0;
    if (frame.frame_type == AMQP_FRAME_METHOD) {
        amqp_method_number_t id = frame.payload.method.id;
        void *m = frame.payload.method.decoded;
        if (id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *ack = m;
            if (ack->delivery_tag > a->confirmed)
                a->confirmed = ack->delivery_tag;
        } else if (id == AMQP_BASIC_NACK_METHOD) {
            floor_fail("rabbitmq: a publish was refused (basic.nack)");
            return -1;
        } else if (id == AMQP_BASIC_RETURN_METHOD) {
            a->returned = true;
            a->in_content[ch] = true;
        } else if (id == AMQP_BASIC_DELIVER_METHOD) {
            a->current_tag = ((const amqp_basic_deliver_t *)m)->delivery_tag;
            a->in_content[ch] = true;
        } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
            floor_fail("rabbitmq: the server closed the %s",
                       id == AMQP_CHANNEL_CLOSE_METHOD ? "channel" : "connection");
            return -1;
        }
        return 0;
    }
    if (frame.frame_type == AMQP_FRAME_HEADER) {
        a->content_left[ch] = frame.payload.properties.body_size;
    } else if (frame.frame_type == AMQP_FRAME_BODY) {
        size_t len = frame.payload.body_fragment.len;
        a->content_left[ch] = a->content_left[ch] > len ? a->content_left[ch] - len : 0;
    } else {
        return 0;
    }
    if (a->in_content[ch] && a->content_left[ch] == 0) {
        a->in_content[ch] = false;
        if (ch == CONSUME_CH)
            return amqp_push_ready(a, a->current_tag);
    }
    return 0;
}

static int amqp_publish_one(amqp_side *a, const char *body)
{
    amqp_basic_properties_t props = {0};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.content_type = amqp_cstring_bytes("application/json");
    int status =
        amqp_basic_publish(a->conn, PUBLISH_CH, amqp_empty_bytes, amqp_cstring_bytes(a->queue), 1,
                           0, &props, amqp_cstring_bytes(body));
    if (status != AMQP_STATUS_OK) {
        floor_fail("rabbitmq: publish: %s", amqp_error_string2(status));
        return -1;
    }
    uint64_t seq = ++a->published;
    while (a->confirmed < seq)
        if (amqp_pump(a))
            return -1;
    if (a->returned) {
        floor_fail("rabbitmq: a message was returned (no queue took it)");
        return -1;
    }
    return 0;
}

static int amqp_consume_one(amqp_side *a)
{
    while (a->ready_count == 0)
        if (amqp_pump(a))
            return -1;
    uint64_t tag = a->ready[0];
    memmove(a->ready, a->ready + 1, (a->ready_count - 1) * sizeof *a->ready);
    a->ready_count--;
    int status = amqp_basic_ack(a->conn, CONSUME_CH, tag, 0);
    if (status != AMQP_STATUS_OK) {
        floor_fail("rabbitmq: ack: %s", amqp_error_string2(status));
        return -1;
    }
    return 0;
}

/* ---- S3 ---------------------------------------------------------------------- */

typedef struct s3_call {
    S3Status status;
    const char *data; /* PUT source */
    uint64_t size, offset;
    uint64_t received; /* GET */
    int listed;        /* LIST */
} s3_call;

static S3Status s3_on_properties(const S3ResponseProperties *properties, void *data)
{
    (void)properties;
    (void)data;
    return S3StatusOK;
}

static void s3_on_complete(S3Status status, const S3ErrorDetails *error, void *data)
{
    (void)error;
    ((s3_call *)data)->status = status;
}

static int s3_put_data(int size, char *buffer, void *data)
{
    s3_call *c = data;
    uint64_t left = c->size - c->offset;
    size_t n = size > 0 ? (size_t)size : 0;
    if (n > left)
        n = (size_t)left;
    memcpy(buffer, c->data + c->offset, n);
    c->offset += n;
    return (int)n;
}

static S3Status s3_get_data(int size, const char *buffer, void *data)
{
    (void)buffer;
    ((s3_call *)data)->received += size > 0 ? (uint64_t)size : 0;
    return S3StatusOK;
}

static S3Status s3_on_list(int truncated, const char *next_marker, int count,
                           const S3ListBucketContent *contents, int prefixes_count,
                           const char **prefixes, void *data)
{
    (void)truncated;
    (void)next_marker;
    (void)contents;
    (void)prefixes_count;
    (void)prefixes;
    ((s3_call *)data)->listed += count;
    return S3StatusOK;
}

/* Run what was issued on @ctx to completion, acknowledging at once what
 * radosgw sends (see the comment at the top). */
static void s3_run(S3RequestContext *ctx)
{
    for (;;) {
        int remaining = 0;
        if (S3_runonce_request_context(ctx, &remaining) != S3StatusOK || remaining == 0)
            return;
        fd_set rd, wr, ex;
        FD_ZERO(&rd);
        FD_ZERO(&wr);
        FD_ZERO(&ex);
        int max_fd = -1;
        if (S3_get_request_context_fdsets(ctx, &rd, &wr, &ex, &max_fd) != S3StatusOK)
            return;
        int on = 1;
        for (int fd = 0; fd <= max_fd; fd++)
            if (FD_ISSET(fd, &rd) || FD_ISSET(fd, &wr))
                (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
        int64_t wait_ms = S3_get_request_context_timeout(ctx);
        if (wait_ms < 0 || wait_ms > 100)
            wait_ms = 100;
        if (max_fd < 0) {
            bench_sleep_us(1000);
            continue;
        }
        struct timeval tv = {0, (suseconds_t)wait_ms * 1000};
        if (select(max_fd + 1, &rd, &wr, &ex, &tv) < 0 && errno != EINTR)
            return;
    }
}

typedef enum s3_op { OP_PUT, OP_GET, OP_HEAD, OP_LIST, OP_DELETE } s3_op;

static int s3_request(S3RequestContext *ctx, s3_op op, const char *key, size_t size)
{
    s3_call c = {.status = S3StatusInternalError, .data = data_block, .size = size};
    S3ResponseHandler response = {s3_on_properties, s3_on_complete};
    pthread_mutex_lock(&issue_lock);
    switch (op) {
    case OP_PUT: {
        S3PutObjectHandler h = {response, s3_put_data};
        S3_put_object(&BUCKET, key, size, NULL, ctx, &h, &c);
        break;
    }
    case OP_GET: {
        S3GetObjectHandler h = {response, s3_get_data};
        S3_get_object(&BUCKET, key, NULL, 0, 0, ctx, &h, &c);
        break;
    }
    case OP_HEAD:
        S3_head_object(&BUCKET, key, ctx, &response, &c);
        break;
    case OP_LIST: {
        S3ListBucketHandler h = {response, s3_on_list};
        S3_list_bucket(&BUCKET, key, NULL, NULL, 1000, ctx, &h, &c);
        break;
    }
    case OP_DELETE:
        S3_delete_object(&BUCKET, key, ctx, &response, &c);
        break;
    }
    pthread_mutex_unlock(&issue_lock);
    s3_run(ctx);
    bool ok = c.status == S3StatusOK || (op == OP_HEAD && (c.status == S3StatusHttpErrorNotFound ||
                                                           c.status == S3StatusErrorNoSuchKey));
    if (!ok) {
        static const char *const names[] = {"PUT", "GET", "HEAD", "LIST", "DELETE"};
        floor_fail("S3 %s: %s %s/%s: %s", S3_HOST, names[op], E.s3_bucket, key,
                   S3_get_status_name(c.status));
        return -1;
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------------------ */

typedef struct worker {
    int index;
    pthread_t thread;
    PGconn *pg;
    amqp_side amqp;
    S3RequestContext *s3;
    double op_us[K_N];
    uint64_t op_count[K_N];
} worker;

/* By job index (warm-up jobs first); each job is run by one thread only. */
static double *job_ms;   /* measured jobs' latency */
static size_t *job_puts; /* objects each job put, for the clean-up */

static worker workers[THREADS_MAX];
static pthread_barrier_t ready_barrier, go_barrier, done_barrier;

static size_t ops_of(double rate, size_t job)
{
    double a = floor((double)job * rate + 1e-9), b = floor((double)(job + 1) * rate + 1e-9);
    return (size_t)(b - a);
}

static void job_key(char *out, size_t job, const char *name)
{
    snprintf(out, KEY_MAX, "%s/%08zx/%s", S3_ROOT, job, name);
}

static double timed_since(int64_t t0)
{
    return (double)(bench_mono_us() - t0);
}

static int run_job(worker *w, size_t job)
{
    unsigned char id[16] = {0};
    memcpy(id, TAG, 8);
    for (int i = 0; i < 8; i++)
        id[8 + i] = (unsigned char)(job >> (8 * (7 - i)));
    char config[64], key[KEY_MAX], body[256];
    snprintf(config, sizeof config, "{\"bench\":\"%s\",\"job\":\"%010zu\"}", TAG, job);
    int64_t t;

    size_t n = ops_of(O.rate[K_SQL], job);
    for (size_t i = 0; i < n; i++) {
        t = bench_mono_us();
        if (pg_statement(w->pg, id, i, config))
            return -1;
        w->op_us[K_SQL] += timed_since(t);
        w->op_count[K_SQL]++;
    }
    size_t puts = ops_of(O.rate[K_PUT_EMPTY], job);
    for (size_t i = 0; i < puts; i++) {
        char name[32];
        snprintf(name, sizeof name, "o%zu", i);
        job_key(key, job, name);
        size_t size = i < O.size_count ? O.sizes[i] : 0;
        if (size > sizeof data_block)
            size = sizeof data_block;
        t = bench_mono_us();
        if (s3_request(w->s3, OP_PUT, key, size))
            return -1;
        int kind = size ? K_PUT_DATA : K_PUT_EMPTY;
        w->op_us[kind] += timed_since(t);
        w->op_count[kind]++;
    }
    job_puts[job] = puts;
    n = ops_of(O.rate[K_HEAD], job);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "absent%zu", i);
        job_key(key, job, name);
        t = bench_mono_us();
        if (s3_request(w->s3, OP_HEAD, key, 0))
            return -1;
        w->op_us[K_HEAD] += timed_since(t);
        w->op_count[K_HEAD]++;
    }
    n = ops_of(O.rate[K_LIST], job);
    for (size_t i = 0; i < n; i++) {
        job_key(key, job, "");
        t = bench_mono_us();
        if (s3_request(w->s3, OP_LIST, key, 0))
            return -1;
        w->op_us[K_LIST] += timed_since(t);
        w->op_count[K_LIST]++;
    }
    n = ops_of(O.rate[K_GET], job);
    for (size_t i = 0; i < n; i++) {
        job_key(key, job, puts > 1 ? "o1" : "o0");
        t = bench_mono_us();
        if (s3_request(w->s3, OP_GET, key, 0))
            return -1;
        w->op_us[K_GET] += timed_since(t);
        w->op_count[K_GET]++;
    }
    snprintf(body, sizeof body,
             "{\"jobID\":\"%08zx\",\"type\":\"\",\"dispatched\":\"2025-01-01T00:00:00.000Z\","
             "\"attemptCount\":1,\"body\":%s}",
             job, config);
    n = ops_of(O.rate[K_PUBLISH], job);
    for (size_t i = 0; i < n; i++) {
        t = bench_mono_us();
        if (amqp_publish_one(&w->amqp, body))
            return -1;
        w->op_us[K_PUBLISH] += timed_since(t);
        w->op_count[K_PUBLISH]++;
    }
    n = ops_of(O.rate[K_CONSUME], job);
    for (size_t i = 0; i < n; i++) {
        t = bench_mono_us();
        if (amqp_consume_one(&w->amqp))
            return -1;
        w->op_us[K_CONSUME] += timed_since(t);
        w->op_count[K_CONSUME]++;
    }
    n = ops_of(O.rate[K_DELETE], job);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "o%zu", i);
        job_key(key, job, name);
        t = bench_mono_us();
        if (s3_request(w->s3, OP_DELETE, key, 0))
            return -1;
        w->op_us[K_DELETE] += timed_since(t);
        w->op_count[K_DELETE]++;
    }
    amqp_maybe_release_buffers(w->amqp.conn);
    return 0;
}

/* Jobs [0, warmup) warm the connections up; the measured ones follow. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    w->pg = pg_connect();
    bool ready = w->pg && amqp_setup(&w->amqp, w->index) == 0 &&
                 S3_create_request_context(&w->s3) == S3StatusOK;
    if (!ready && !atomic_load(&failed))
        floor_fail("thread %d: could not connect", w->index);
    for (size_t j = (size_t)w->index; ready && j < O.warmup; j += (size_t)O.threads)
        if (run_job(w, j))
            break;
    memset(w->op_us, 0, sizeof w->op_us);
    memset(w->op_count, 0, sizeof w->op_count);
    pthread_barrier_wait(&ready_barrier);
    pthread_barrier_wait(&go_barrier);
    size_t total = O.warmup + O.jobs;
    while (ready && !atomic_load(&failed)) {
        size_t j = O.warmup + atomic_fetch_add(&next_job, 1);
        if (j >= total)
            break;
        int64_t t0 = bench_mono_us();
        if (run_job(w, j))
            break;
        job_ms[j - O.warmup] = timed_since(t0) / 1000.0;
    }
    pthread_barrier_wait(&done_barrier);
    return NULL;
}

/* After the measurement: delete the objects the jobs left (jobs j with
 * j % threads == index, spread over the threads), the thread's queue, and
 * close everything. */
static void *cleanup_main(void *arg)
{
    worker *w = arg;
    char key[KEY_MAX];
    size_t total = O.warmup + O.jobs;
    for (size_t j = (size_t)w->index; w->s3 && j < total; j += (size_t)O.threads)
        for (size_t i = ops_of(O.rate[K_DELETE], j); i < job_puts[j]; i++) {
            char name[32];
            snprintf(name, sizeof name, "o%zu", i);
            job_key(key, j, name);
            if (s3_request(w->s3, OP_DELETE, key, 0))
                break;
        }
    if (w->amqp.conn) {
        amqp_queue_delete(w->amqp.conn, PUBLISH_CH, amqp_cstring_bytes(w->amqp.queue), 0, 0);
        amqp_get_rpc_reply(w->amqp.conn);
    }
    amqp_close(&w->amqp);
    if (w->s3)
        S3_destroy_request_context(w->s3);
    if (w->pg)
        PQfinish(w->pg);
    return NULL;
}

static void write_json(const bench_snapshot *a, const bench_snapshot *b)
{
    FILE *out = O.json_path ? fopen(O.json_path, "a") : stdout;
    if (!out) {
        fprintf(stderr, "acp-bench-floor: %s: %s\n", O.json_path, strerror(errno));
        atomic_store(&failed, true);
        return;
    }
    bench_cpu cpu;
    bench_cpu_between(&cpu, a, b, &SVC);
    double jobs = (double)O.jobs;
    double totals_us[K_N] = {0};
    uint64_t counts[K_N] = {0};
    for (int t = 0; t < O.threads; t++)
        for (int k = 0; k < K_N; k++) {
            totals_us[k] += workers[t].op_us[k];
            counts[k] += workers[t].op_count[k];
        }
    bench_json j;
    bench_json_init(&j, out);
    bench_json_object(&j, NULL);
    bench_json_str(&j, "scenario", "floor");
    bench_json_str(&j, "label", O.label ? O.label : "floor");
    bench_json_str(&j, "tag", TAG);
    bench_json_bool(&j, "ok", !atomic_load(&failed));
    bench_json_str(&j, "error", first_error[0] ? first_error : NULL);
    bench_json_object(&j, "params");
    bench_json_int(&j, "jobs", (int64_t)O.jobs);
    bench_json_int(&j, "threads", O.threads);
    for (int k = 0; k < K_N; k++)
        if (k != K_PUT_DATA)
            bench_json_num(&j, k == K_PUT_EMPTY ? "s3_put" : kind_names[k], O.rate[k]);
    bench_json_array(&j, "put_sizes");
    for (size_t i = 0; i < O.size_count; i++)
        bench_json_int(&j, NULL, (int64_t)O.sizes[i]);
    bench_json_end(&j);
    bench_json_end(&j);
    bench_json_array(&j, "services");
    for (size_t i = 0; i < SVC.count; i++)
        bench_json_str(&j, NULL, SVC.items[i].name);
    bench_json_end(&j);
    bench_json_object(&j, "metrics");
    bench_json_num(&j, "jobs", jobs);
    bench_json_num(&j, "jobs_per_s", jobs / cpu.wall_s);
    bench_dist d = bench_dist_of(job_ms, O.jobs);
    bench_json_num(&j, "job_ms_p50", d.p50);
    bench_json_num(&j, "job_ms_p95", d.p95);
    bench_json_num(&j, "job_ms_p99", d.p99);
    bench_json_num(&j, "cpu_self_ms_per_job", cpu.self_s / jobs * 1e3);
    for (size_t i = 0; i < SVC.count; i++) {
        char name[64];
        snprintf(name, sizeof name, "cpu_%s_ms_per_job", SVC.items[i].name);
        bench_json_num(&j, name, cpu.service_s[i] / jobs * 1e3);
    }
    bench_json_num(&j, "cpu_services_ms_per_job", cpu.services_total_s / jobs * 1e3);
    bench_json_num(&j, "others_cpu_share", cpu.capacity_s > 0 ? cpu.others_s / cpu.capacity_s : 0);
    bench_json_num(&j, "stack_cpu_share",
                   cpu.capacity_s > 0 ? (cpu.self_s + cpu.services_total_s) / cpu.capacity_s : 0);
    bench_json_num(&j, "loadavg1", cpu.loadavg1_end);
    bench_json_num(&j, "wall_s", cpu.wall_s);
    for (int k = 0; k < K_N; k++) {
        char name[64];
        snprintf(name, sizeof name, "ops_%s", kind_names[k]);
        bench_json_num(&j, name, (double)counts[k] / jobs);
        snprintf(name, sizeof name, "op_%s_ms_mean", kind_names[k]);
        if (counts[k])
            bench_json_num(&j, name, totals_us[k] / (double)counts[k] / 1000.0);
    }
    long rss, hwm;
    bench_memory(&rss, &hwm);
    bench_json_num(&j, "peak_rss_mib", (double)hwm / 1024.0);
    bench_json_end(&j);
    bench_json_end(&j);
    fputc('\n', out);
    if (out != stdout)
        fclose(out);
    printf("floor (%s): %.1f jobs/s, client CPU %.3f ms/job, services %.3f ms/job%s\n", TAG,
           jobs / cpu.wall_s, cpu.self_s / jobs * 1e3, cpu.services_total_s / jobs * 1e3,
           atomic_load(&failed) ? " FAILED" : "");
}

/* ---- commands ------------------------------------------------------------------ */

static int delete_queues(int count, char **names)
{
    amqp_side a = {0};
    if (amqp_open(&a))
        return 1;
    amqp_channel_open(a.conn, 1);
    if (amqp_check(&a, amqp_get_rpc_reply(a.conn), "channel.open"))
        return 1;
    int rc = 0;
    for (int i = 0; i < count; i++) {
        amqp_queue_delete(a.conn, 1, amqp_cstring_bytes(names[i]), 0, 0);
        if (amqp_check(&a, amqp_get_rpc_reply(a.conn), names[i])) {
            rc = 1;
            break;
        }
    }
    amqp_close(&a);
    return rc;
}

static int parse_sizes(const char *text)
{
    O.size_count = 0;
    const char *p = text;
    while (*p && O.size_count < SIZES_MAX) {
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p)
            return -1;
        O.sizes[O.size_count++] = (size_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: acp-bench-floor run [--jobs N] [--threads T] [--warmup N] [--sql X]\n"
          "           [--publish X] [--consume X] [--put X] [--put-sizes A,B,..] [--head X]\n"
          "           [--list X] [--get X] [--delete X] [--json FILE] [--label TEXT]\n"
          "           [--stack-dir DIR]\n"
          "       acp-bench-floor delete-queues NAME...\n"
          "Settings of the services come from the ACP_TEST_* variables of scripts/stack env.\n",
          out);
}

static int parse_run(int argc, char **argv)
{
    static const struct option longs[] = {
        {"jobs", required_argument, NULL, 'n'},      {"threads", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'},    {"sql", required_argument, NULL, 'q'},
        {"publish", required_argument, NULL, 'P'},   {"consume", required_argument, NULL, 'C'},
        {"put", required_argument, NULL, 'u'},       {"put-sizes", required_argument, NULL, 'z'},
        {"head", required_argument, NULL, 'H'},      {"list", required_argument, NULL, 'L'},
        {"get", required_argument, NULL, 'g'},       {"delete", required_argument, NULL, 'd'},
        {"json", required_argument, NULL, 'j'},      {"label", required_argument, NULL, 'l'},
        {"stack-dir", required_argument, NULL, 'D'}, {NULL, 0, NULL, 0}};
    O = (floor_opts){.jobs = 1000, .threads = 4, .warmup = 10};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        double v = optarg ? strtod(optarg, NULL) : 0;
        if (v < 0 || !isfinite(v))
            return -1;
        switch (c) {
        case 'n':
            O.jobs = (size_t)v;
            break;
        case 't':
            O.threads = (int)v;
            break;
        case 'w':
            O.warmup = (size_t)v;
            break;
        case 'q':
            O.rate[K_SQL] = v;
            break;
        case 'P':
            O.rate[K_PUBLISH] = v;
            break;
        case 'C':
            O.rate[K_CONSUME] = v;
            break;
        case 'u':
            O.rate[K_PUT_EMPTY] = v;
            break;
        case 'z':
            if (parse_sizes(optarg))
                return -1;
            break;
        case 'H':
            O.rate[K_HEAD] = v;
            break;
        case 'L':
            O.rate[K_LIST] = v;
            break;
        case 'g':
            O.rate[K_GET] = v;
            break;
        case 'd':
            O.rate[K_DELETE] = v;
            break;
        case 'j':
            O.json_path = optarg;
            break;
        case 'l':
            O.label = optarg;
            break;
        case 'D':
            O.stack_dir = optarg;
            break;
        default:
            return -1;
        }
    }
    if (optind != argc || O.threads < 1 || O.threads > THREADS_MAX || O.jobs < 1)
        return -1;
    /* A consume needs a message of the thread's own queue. */
    if (O.rate[K_CONSUME] > O.rate[K_PUBLISH])
        O.rate[K_CONSUME] = O.rate[K_PUBLISH];
    return 0;
}

static int run(void)
{
    const char *stack_dir = O.stack_dir ? O.stack_dir : getenv("ACP_STACK_DIR");
    bench_services_find(&SVC, stack_dir && *stack_dir ? stack_dir : ".stack");
    bench_run_tag(TAG);
    snprintf(TABLE, sizeof TABLE, "public.acp_bench_floor_%s", TAG);
    snprintf(S3_ROOT, sizeof S3_ROOT, "acp-bench-floor/%s", TAG);
    snprintf(S3_HOST, sizeof S3_HOST, "%s:%s", E.s3_host, E.s3_port);
    memset(data_block, 'x', sizeof data_block);
    BUCKET = (S3BucketContext){S3_HOST,        E.s3_bucket,     S3ProtocolHTTP,
                               S3UriStylePath, E.s3_access_key, E.s3_secret_key};
    if (S3_initialize("acp-bench-floor", S3_INIT_ALL, S3_HOST) != S3StatusOK) {
        fprintf(stderr, "acp-bench-floor: S3_initialize failed\n");
        return 1;
    }
    size_t total = O.warmup + O.jobs;
    job_ms = calloc(O.jobs, sizeof *job_ms);
    job_puts = calloc(total, sizeof *job_puts);
    PGconn *admin = pg_connect();
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE TABLE %s (LIKE compute.jobs INCLUDING ALL)", TABLE);
    if (!job_ms || !job_puts || !admin || pg_simple(admin, sql)) {
        if (admin)
            PQfinish(admin);
        free(job_ms);
        free(job_puts);
        S3_deinitialize();
        return 1;
    }

    pthread_barrier_init(&ready_barrier, NULL, (unsigned)O.threads + 1);
    pthread_barrier_init(&go_barrier, NULL, (unsigned)O.threads + 1);
    pthread_barrier_init(&done_barrier, NULL, (unsigned)O.threads + 1);
    for (int t = 0; t < O.threads; t++) {
        workers[t].index = t;
        if (pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0) {
            fprintf(stderr, "acp-bench-floor: cannot start thread %d\n", t);
            exit(1); /* the barriers cannot be left half-joined */
        }
    }
    bench_snapshot a, b;
    pthread_barrier_wait(&ready_barrier);
    bench_snapshot_take(&a, &SVC);
    pthread_barrier_wait(&go_barrier);
    pthread_barrier_wait(&done_barrier);
    bench_snapshot_take(&b, &SVC);
    for (int t = 0; t < O.threads; t++)
        pthread_join(workers[t].thread, NULL);
    write_json(&a, &b);
    bench_snapshot_free(&a);
    bench_snapshot_free(&b);

    for (int t = 0; t < O.threads; t++)
        pthread_create(&workers[t].thread, NULL, cleanup_main, &workers[t]);
    for (int t = 0; t < O.threads; t++)
        pthread_join(workers[t].thread, NULL);
    snprintf(sql, sizeof sql, "DROP TABLE %s", TABLE);
    pg_simple(admin, sql);
    PQfinish(admin);
    pthread_barrier_destroy(&ready_barrier);
    pthread_barrier_destroy(&go_barrier);
    pthread_barrier_destroy(&done_barrier);
    free(job_ms);
    free(job_puts);
    S3_deinitialize();
    return atomic_load(&failed) ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (bench_env_load(&E) != 0)
        return 2;
    if (strcmp(argv[1], "delete-queues") == 0)
        return delete_queues(argc - 2, argv + 2);
    if (strcmp(argv[1], "run") != 0 || parse_run(argc - 1, argv + 1) != 0) {
        usage(stderr);
        return 2;
    }
    return run();
}
