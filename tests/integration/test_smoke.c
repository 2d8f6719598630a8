/* Smoke test of the local service stack through the library's own
 * dependencies: a PostgreSQL query with libpq, a queue declare/publish/get
 * with rabbitmq-c, and an object put/get/list/delete with libs3. It proves
 * that the stack answers and that the build links against real servers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <libpq-fe.h>
#include <libs3.h>

#include "async_platform.h"
#include "stack_env.h"

static stack_env env;

/* A name no other run uses, so that reruns and parallel runs do not collide. */
static void unique_name(char *out, size_t size, const char *prefix)
{
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_generate(&id);
    snprintf(out, size, "%s-%s", prefix, acp_job_id_format(&id, hex));
}

/* ---- PostgreSQL -------------------------------------------------------- */

static PGconn *pg_connect(const char *password)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", "connect_timeout", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user, password, env.pg_db, "5", NULL};
    return PQconnectdbParams(keys, values, 0);
}

static void postgres_answers_queries(void **state)
{
    (void)state;
    PGconn *conn = pg_connect(env.pg_password);
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("PostgreSQL %s:%s: %s", env.pg_host, env.pg_port, PQerrorMessage(conn));

    PGresult *res = PQexec(conn, "CREATE TEMP TABLE smoke (id bytea PRIMARY KEY, n int)");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);

    const char *params[] = {"\\x00112233445566778899aabbccddeeff", "41"};
    res = PQexecParams(conn, "INSERT INTO smoke VALUES ($1::bytea, $2::int + 1) RETURNING n", 2,
                       NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(res, 0, 0), "42");
    PQclear(res);

    res = PQexec(conn, "SELECT length(id), current_user, current_database() FROM smoke");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "16");
    assert_string_equal(PQgetvalue(res, 0, 1), env.pg_user);
    assert_string_equal(PQgetvalue(res, 0, 2), env.pg_db);
    PQclear(res);
    PQfinish(conn);
}

static void postgres_rejects_a_wrong_password(void **state)
{
    (void)state;
    PGconn *conn = pg_connect("not-the-password");
    assert_int_not_equal(PQstatus(conn), CONNECTION_OK);
    assert_non_null(strstr(PQerrorMessage(conn), "password authentication failed"));
    PQfinish(conn);
}

/* ---- RabbitMQ ---------------------------------------------------------- */

static void assert_amqp_ok(amqp_rpc_reply_t reply, const char *what)
{
    if (reply.reply_type != AMQP_RESPONSE_NORMAL)
        fail_msg("%s failed (reply type %d, library error %s)", what, reply.reply_type,
                 amqp_error_string2(reply.library_error));
}

static amqp_connection_state_t amqp_login_as(const char *password, amqp_rpc_reply_t *reply)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    assert_non_null(socket);
    struct timeval timeout = {5, 0};
    int rc = amqp_socket_open_noblock(socket, env.amqp_host, atoi(env.amqp_port), &timeout);
    if (rc != AMQP_STATUS_OK)
        fail_msg("RabbitMQ %s:%s: %s", env.amqp_host, env.amqp_port, amqp_error_string2(rc));
    *reply = amqp_login(conn, "/", 0, 131072, 60, AMQP_SASL_METHOD_PLAIN, env.amqp_user, password);
    return conn;
}

static void rabbitmq_declares_publishes_and_gets(void **state)
{
    (void)state;
    amqp_rpc_reply_t reply;
    amqp_connection_state_t conn = amqp_login_as(env.amqp_password, &reply);
    assert_amqp_ok(reply, "AMQP login");
    amqp_channel_open(conn, 1);
    assert_amqp_ok(amqp_get_rpc_reply(conn), "channel.open");

    char queue[80];
    unique_name(queue, sizeof queue, "smoke");
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 1, amqp_empty_table);
    assert_amqp_ok(amqp_get_rpc_reply(conn), "queue.declare");

    amqp_confirm_select(conn, 1);
    assert_amqp_ok(amqp_get_rpc_reply(conn), "confirm.select");

    const char *body = "{\"jobID\":\"00112233445566778899aabbccddeeff\",\"body\":null}";
    amqp_basic_properties_t props;
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.content_type = amqp_cstring_bytes("application/json");
    assert_int_equal(amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 1, 0,
                                        &props, amqp_cstring_bytes(body)),
                     AMQP_STATUS_OK);

    /* The broker confirms the persistent message. */
    amqp_frame_t frame;
    struct timeval timeout = {10, 0};
    assert_int_equal(amqp_simple_wait_frame_noblock(conn, &frame, &timeout), AMQP_STATUS_OK);
    assert_int_equal(frame.frame_type, AMQP_FRAME_METHOD);
    assert_int_equal(frame.payload.method.id, AMQP_BASIC_ACK_METHOD);

    reply = amqp_basic_get(conn, 1, amqp_cstring_bytes(queue), 0);
    assert_amqp_ok(reply, "basic.get");
    assert_int_equal(reply.reply.id, AMQP_BASIC_GET_OK_METHOD);
    amqp_basic_get_ok_t *get_ok = reply.reply.decoded;
    amqp_message_t message;
    assert_amqp_ok(amqp_read_message(conn, 1, &message, 0), "read message");
    assert_int_equal(message.body.len, strlen(body));
    assert_memory_equal(message.body.bytes, body, strlen(body));
    assert_int_equal(message.properties.delivery_mode, AMQP_DELIVERY_PERSISTENT);
    assert_int_equal(amqp_basic_ack(conn, 1, get_ok->delivery_tag, 0), 0);
    amqp_destroy_message(&message);

    /* The queue is empty now. */
    reply = amqp_basic_get(conn, 1, amqp_cstring_bytes(queue), 1);
    assert_amqp_ok(reply, "basic.get");
    assert_int_equal(reply.reply.id, AMQP_BASIC_GET_EMPTY_METHOD);

    amqp_queue_delete(conn, 1, amqp_cstring_bytes(queue), 0, 0);
    assert_amqp_ok(amqp_get_rpc_reply(conn), "queue.delete");
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

static void rabbitmq_rejects_a_wrong_password(void **state)
{
    (void)state;
    amqp_rpc_reply_t reply;
    amqp_connection_state_t conn = amqp_login_as("not-the-password", &reply);
    assert_int_not_equal(reply.reply_type, AMQP_RESPONSE_NORMAL);
    amqp_destroy_connection(conn);
}

/* ---- S3 ---------------------------------------------------------------- */

typedef struct s3_call {
    S3Status status;
    char error[256];
    const char *upload;
    size_t upload_left;
    char download[4096];
    size_t download_len;
    int keys;
    char first_key[256];
    int prefixes;
} s3_call;

static S3Status on_properties(const S3ResponseProperties *properties, void *data)
{
    (void)properties;
    (void)data;
    return S3StatusOK;
}

static void on_complete(S3Status status, const S3ErrorDetails *details, void *data)
{
    s3_call *call = data;
    call->status = status;
    snprintf(call->error, sizeof call->error, "%s%s%s", S3_get_status_name(status),
             details && details->message ? ": " : "",
             details && details->message ? details->message : "");
}

static int on_put_data(int size, char *buffer, void *data)
{
    s3_call *call = data;
    size_t n = call->upload_left < (size_t)size ? call->upload_left : (size_t)size;
    memcpy(buffer, call->upload, n);
    call->upload += n;
    call->upload_left -= n;
    return (int)n;
}

static S3Status on_get_data(int size, const char *buffer, void *data)
{
    s3_call *call = data;
    if (call->download_len + (size_t)size > sizeof call->download)
        return S3StatusAbortedByCallback;
    memcpy(call->download + call->download_len, buffer, (size_t)size);
    call->download_len += (size_t)size;
    return S3StatusOK;
}

static S3Status on_list(int truncated, const char *marker, int count,
                        const S3ListBucketContent *contents, int prefix_count,
                        const char **prefixes, void *data)
{
    (void)truncated;
    (void)marker;
    (void)prefixes;
    s3_call *call = data;
    if (count > 0 && call->keys == 0)
        snprintf(call->first_key, sizeof call->first_key, "%s", contents[0].key);
    call->keys += count;
    call->prefixes += prefix_count;
    return S3StatusOK;
}

static void assert_s3_ok(const s3_call *call, const char *what)
{
    if (call->status != S3StatusOK)
        fail_msg("S3 %s on %s:%s failed: %s", what, env.s3_host, env.s3_port, call->error);
}

static void s3_puts_gets_lists_and_deletes(void **state)
{
    (void)state;
    char host[300];
    snprintf(host, sizeof host, "%s:%s", env.s3_host, env.s3_port);
    S3BucketContext bucket = {host,           env.s3_bucket,     S3ProtocolHTTP,
                              S3UriStylePath, env.s3_access_key, env.s3_secret_key};
    S3ResponseHandler response = {on_properties, on_complete};
    char prefix[80], key[160];
    unique_name(prefix, sizeof prefix, "smoke");
    snprintf(key, sizeof key, "%s/result.txt", prefix);
    const char *content = "hello from the smoke test\n";

    s3_call put = {.upload = content, .upload_left = strlen(content)};
    S3PutObjectHandler put_handler = {response, on_put_data};
    S3_put_object(&bucket, key, strlen(content), NULL, NULL, &put_handler, &put);
    assert_s3_ok(&put, "PUT");

    s3_call get = {0};
    S3GetObjectHandler get_handler = {response, on_get_data};
    S3_get_object(&bucket, key, NULL, 0, 0, NULL, &get_handler, &get);
    assert_s3_ok(&get, "GET");
    assert_int_equal(get.download_len, strlen(content));
    assert_memory_equal(get.download, content, strlen(content));

    char list_prefix[100];
    snprintf(list_prefix, sizeof list_prefix, "%s/", prefix);
    s3_call list = {0};
    S3ListBucketHandler list_handler = {response, on_list};
    S3_list_bucket(&bucket, list_prefix, NULL, NULL, 100, NULL, &list_handler, &list);
    assert_s3_ok(&list, "LIST");
    assert_int_equal(list.keys, 1);
    assert_string_equal(list.first_key, key);

    /* With a delimiter, the workspace shows up as a common prefix. */
    s3_call dirs = {0};
    S3_list_bucket(&bucket, "smoke-", NULL, "/", 1000, NULL, &list_handler, &dirs);
    assert_s3_ok(&dirs, "LIST with delimiter");
    assert_true(dirs.prefixes >= 1);
    assert_int_equal(dirs.keys, 0);

    s3_call del = {0};
    S3_delete_object(&bucket, key, NULL, &response, &del);
    assert_s3_ok(&del, "DELETE");

    s3_call gone = {0};
    S3_head_object(&bucket, key, NULL, &response, &gone);
    assert_int_equal(gone.status, S3StatusHttpErrorNotFound);
}

static void s3_rejects_a_wrong_secret(void **state)
{
    (void)state;
    char host[300];
    snprintf(host, sizeof host, "%s:%s", env.s3_host, env.s3_port);
    S3BucketContext bucket = {host,           env.s3_bucket,     S3ProtocolHTTP,
                              S3UriStylePath, env.s3_access_key, "not-the-secret"};
    S3ResponseHandler response = {on_properties, on_complete};
    s3_call list = {0};
    S3ListBucketHandler list_handler = {response, on_list};
    S3_list_bucket(&bucket, "", NULL, NULL, 1, NULL, &list_handler, &list);
    assert_int_not_equal(list.status, S3StatusOK);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    if (S3_initialize("async-platform-test", S3_INIT_ALL, env.s3_host) != S3StatusOK) {
        printf("1..1\nnot ok 1 - S3_initialize failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(postgres_answers_queries),
        cmocka_unit_test(postgres_rejects_a_wrong_password),
        cmocka_unit_test(rabbitmq_declares_publishes_and_gets),
        cmocka_unit_test(rabbitmq_rejects_a_wrong_password),
        cmocka_unit_test(s3_puts_gets_lists_and_deletes),
        cmocka_unit_test(s3_rejects_a_wrong_secret),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    S3_deinitialize();
    return failed;
}
