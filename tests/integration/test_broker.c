/* The AMQP broker driver (src/broker_amqp*.c) through broker.h against the
 * real RabbitMQ of scripts/stack: connecting, declaring the job queue,
 * publishing with confirms, consuming with prefetch 1, cancel, and how
 * losing the consumer, the channel or the connection is reported.
 *
 * Each test works on its own queue "t<16 hex>_jobs" and deletes it in its
 * teardown through a separate plain rabbitmq-c connection, which also serves
 * to look at the queue from the outside (basic.get, message counts).
 *
 * Losing the consumer is provoked deterministically by deleting its queue
 * from that other connection (RabbitMQ then sends basic.cancel, which we ask
 * for with the consumer_cancel_notify capability), losing the channel by
 * acknowledging an unknown delivery tag (RabbitMQ closes the channel with
 * PRECONDITION_FAILED), and losing the connection by closing it with
 * `rabbitmqctl close_connection` through scripts/stack.
 *
 * The cases that the in-memory fake must pass too are written once in
 * tests/contract/broker_contract.c. */
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "async_platform.h"
#include "../contract/broker_contract.h"
#include "broker.h"
#include "broker_amqp.h"
#include "buf.h"
#include "job_message.h"
#include "stack_env.h"

#define CONFIRM_MS  10000
#define DELIVERY_MS 10000 /* generous: only reached when something is wrong */

static stack_env env;

typedef struct fixture {
    char id[24];    /* queue id "t<16 hex>" */
    char queue[32]; /* "<id>_jobs" */
    broker_conn *conns[4];
    broker_contract contract; /* for the cases shared with the fake */
} fixture;

static void assert_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

static void queue_config(acp_queue_config *q, const char *id)
{
    assert_int_equal(acp_queue_config_init(q, ACP_QUEUE_CONFIG_VERSION), 0);
    q->id = id;
    q->host = env.amqp_host;
    q->port = atoi(env.amqp_port);
    q->user = env.amqp_user;
    q->password = env.amqp_password;
}

/* A connection owned by the fixture: closed in teardown whatever happens. */
static broker_conn *connect_to(fixture *f, size_t slot)
{
    acp_queue_config q;
    queue_config(&q, f->id);
    assert_null(f->conns[slot]);
    if (broker_connect(&f->conns[slot], &broker_amqp_driver, &q, NULL) != 0)
        fail_msg("broker_connect: %s", acp_last_error());
    return f->conns[slot];
}

static void close_conn(fixture *f, size_t slot)
{
    broker_close(f->conns[slot]);
    f->conns[slot] = NULL;
}

static void expect_ok(int rc, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %d (%s)", what, rc, acp_last_error());
}

static void publish_text(broker_conn *conn, const char *id, const char *text)
{
    expect_ok(broker_publish(conn, id, text, strlen(text), CONFIRM_MS), "broker_publish");
}

/* ---- a plain rabbitmq-c connection to look from the outside ------------- */

static void raw_check(amqp_rpc_reply_t reply, const char *what)
{
    if (reply.reply_type != AMQP_RESPONSE_NORMAL)
        fail_msg("raw %s failed (reply type %d, %s)", what, reply.reply_type,
                 amqp_error_string2(reply.library_error));
}

static amqp_connection_state_t raw_connect(void)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    assert_non_null(socket);
    struct timeval timeout = {5, 0};
    int rc = amqp_socket_open_noblock(socket, env.amqp_host, atoi(env.amqp_port), &timeout);
    if (rc != AMQP_STATUS_OK)
        fail_msg("raw connect: %s", amqp_error_string2(rc));
    raw_check(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, env.amqp_user,
                         env.amqp_password),
              "login");
    amqp_channel_open(conn, 1);
    raw_check(amqp_get_rpc_reply(conn), "channel.open");
    return conn;
}

static void raw_close(amqp_connection_state_t conn)
{
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

static void raw_delete_queue(const char *queue)
{
    amqp_connection_state_t conn = raw_connect();
    amqp_queue_delete(conn, 1, amqp_cstring_bytes(queue), 0, 0);
    raw_check(amqp_get_rpc_reply(conn), "queue.delete");
    raw_close(conn);
}

/* Messages ready in @queue (delivered but unacknowledged ones not counted). */
static uint32_t raw_ready_count(const char *queue)
{
    amqp_connection_state_t conn = raw_connect();
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    raw_check(amqp_get_rpc_reply(conn), "passive queue.declare");
    uint32_t count = ok->message_count;
    raw_close(conn);
    return count;
}

static unsigned contract_ready(broker_contract *contract)
{
    fixture *f = contract->userdata;
    return raw_ready_count(f->queue);
}

/* The fixture's queue for a case of tests/contract/broker_contract.c. */
static broker_contract *contract(fixture *f)
{
    broker_contract *c = &f->contract;
    c->driver = &broker_amqp_driver;
    queue_config(&c->queue, f->id);
    c->ready = contract_ready;
    c->userdata = f;
    return c;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    acp_job_id id;
    char hex[ACP_JOB_ID_STRLEN];
    acp_job_id_generate(&id);
    acp_job_id_format(&id, hex);
    snprintf(f->id, sizeof f->id, "t%.16s", hex);
    snprintf(f->queue, sizeof f->queue, "%s_jobs", f->id);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < sizeof f->conns / sizeof f->conns[0]; i++)
        broker_close(f->conns[i]);
    broker_contract_close(&f->contract);
    raw_delete_queue(f->queue);
    free(f);
    return 0;
}

/* ---- connecting ---------------------------------------------------------- */

static void connect_rejects_a_wrong_password(void **state)
{
    fixture *f = *state;
    acp_queue_config q;
    queue_config(&q, f->id);
    q.password = "not-the-password";
    broker_conn *conn = (broker_conn *)&q; /* must be reset to NULL */
    assert_int_equal(broker_connect(&conn, &broker_amqp_driver, &q, NULL), ACP_EBROKER);
    assert_null(conn);
    char where[300];
    snprintf(where, sizeof where, "rabbitmq %s:%s: ", env.amqp_host, env.amqp_port);
    assert_error_mentions(where);
    assert_error_mentions("login refused (ACCESS_REFUSED");
}

static void connect_reports_a_closed_port(void **state)
{
    fixture *f = *state;
    /* A port that was just free: nothing listens there. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);

    acp_queue_config q;
    queue_config(&q, f->id);
    q.host = "127.0.0.1";
    q.port = ntohs(addr.sin_port);
    broker_conn *conn = NULL;
    assert_int_equal(broker_connect(&conn, &broker_amqp_driver, &q, NULL), ACP_EBROKER);
    assert_null(conn);
    char expected[100];
    snprintf(expected, sizeof expected, "rabbitmq 127.0.0.1:%d: connection refused", q.port);
    assert_error_mentions(expected);

    q.port = 0;
    assert_int_equal(broker_connect(&conn, &broker_amqp_driver, &q, NULL), ACP_EINVAL);
    assert_int_equal(broker_connect(&conn, &broker_amqp_driver, NULL, NULL), ACP_EINVAL);
    broker_close(NULL);
}

/* ---- declaring ----------------------------------------------------------- */

static void declare_is_idempotent(void **state)
{
    fixture *f = *state;
    broker_conn *a = connect_to(f, 0);
    expect_ok(broker_declare(a, f->id, 300), "declare");
    expect_ok(broker_declare(a, f->id, 300), "declare again");

    /* lib-compute-platform declares it for 300 s as a durable queue with a
     * long x-consumer-timeout of 450000 ms: both can share it. */
    amqp_connection_state_t raw = raw_connect();
    amqp_table_entry_t arg = {.key = amqp_cstring_bytes("x-consumer-timeout"),
                              .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 450000}};
    amqp_table_t args = {1, &arg};
    amqp_queue_declare(raw, 1, amqp_cstring_bytes(f->queue), 0, 1, 0, 0, args);
    raw_check(amqp_get_rpc_reply(raw), "queue.declare as upstream");
    raw_close(raw);

    /* Another timeout: RabbitMQ 3.12 and later know x-consumer-timeout as a
     * queue argument and refuse the difference; older ones (3.10 here) do
     * not check unknown arguments and accept it. */
    broker_conn *b = connect_to(f, 1);
    int rc = broker_declare(b, f->id, 600);
    if (rc != 0) {
        assert_int_equal(rc, ACP_EBROKER);
        assert_error_mentions("PRECONDITION_FAILED");
        assert_error_mentions("inequivalent arg 'x-consumer-timeout'");
    }
    publish_text(a, f->id, "still fine");
    assert_int_equal(raw_ready_count(f->queue), 1);
}

static void declare_reports_an_inequivalent_queue(void **state)
{
    fixture *f = *state;
    /* Someone declared the queue differently (here: not durable). */
    amqp_connection_state_t raw = raw_connect();
    amqp_queue_declare(raw, 1, amqp_cstring_bytes(f->queue), 0, 0, 0, 0, amqp_empty_table);
    raw_check(amqp_get_rpc_reply(raw), "queue.declare");
    raw_close(raw);

    broker_conn *c = connect_to(f, 0);
    assert_int_equal(broker_declare(c, f->id, 300), ACP_EBROKER);
    char where[300];
    snprintf(where, sizeof where, "rabbitmq %s:%s: declaring queue '%s': ", env.amqp_host,
             env.amqp_port, f->queue);
    assert_error_mentions(where);
    assert_error_mentions("channel closed by the server: PRECONDITION_FAILED - inequivalent arg "
                          "'durable'");
    assert_error_mentions("(406)");
    /* The server closed the channel: the connection is done with. */
    assert_int_equal(broker_publish(c, f->id, "{}", 2, CONFIRM_MS), ACP_EBROKER);
    assert_error_mentions("failed earlier");
}

/* ---- publishing and consuming ------------------------------------------- */

static void publish_and_consume_round_trip(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_to(f, 0);
    expect_ok(broker_declare(p, f->id, 300), "declare");

    acp_job_id id;
    acp_job_id_generate(&id);
    buf first = BUF_INIT, second = BUF_INIT;
    expect_ok(job_message_format(&first, &id, "{\"n\":1,\"s\":\"caf\xc3\xa9\"}", 1), "format");
    expect_ok(job_message_format(&second, &id, NULL, 2), "format");
    publish_text(p, f->id, first.data);
    publish_text(p, f->id, second.data);

    /* Seen from outside: the exact bytes, persistent, typed as JSON. */
    amqp_connection_state_t raw = raw_connect();
    amqp_rpc_reply_t reply = amqp_basic_get(raw, 1, amqp_cstring_bytes(f->queue), 1);
    raw_check(reply, "basic.get");
    assert_int_equal(reply.reply.id, AMQP_BASIC_GET_OK_METHOD);
    amqp_message_t message;
    raw_check(amqp_read_message(raw, 1, &message, 0), "read message");
    assert_int_equal(message.body.len, first.len);
    assert_memory_equal(message.body.bytes, first.data, first.len);
    assert_true(message.properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG);
    assert_int_equal(message.properties.delivery_mode, AMQP_DELIVERY_PERSISTENT);
    assert_true(message.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
    assert_int_equal(message.properties.content_type.len, strlen("application/json"));
    assert_memory_equal(message.properties.content_type.bytes, "application/json",
                        strlen("application/json"));
    amqp_destroy_message(&message);
    raw_close(raw);

    broker_conn *c = connect_to(f, 1);
    expect_ok(broker_consume(c, f->id), "consume");
    broker_delivery d;
    expect_ok(broker_next(c, DELIVERY_MS, &d), "next");
    assert_int_equal(d.len, second.len);
    assert_memory_equal(d.body, second.data, second.len);
    assert_int_equal(d.body[d.len], '\0');
    assert_false(d.redelivered);
    acp_job_id parsed;
    char *config = NULL;
    expect_ok(job_message_parse(d.body, d.len, &parsed, &config), "parse");
    assert_true(acp_job_id_equal(&id, &parsed));
    assert_null(config);
    expect_ok(broker_ack(c, d.tag), "ack");
    broker_delivery_free(&d);
    assert_null(d.body);
    broker_delivery_free(NULL);
    broker_contract_quiet(c);

    /* Acknowledged for good: nothing comes back when the consumer goes. */
    close_conn(f, 1);
    assert_int_equal(raw_ready_count(f->queue), 0);
    buf_free(&first);
    buf_free(&second);
}

/* The same through the seam, as the fake is checked too. */
static void publish_consume_ack_through_the_seam(void **state)
{
    broker_contract_round_trip(contract(*state));
}

static void large_messages_survive_many_frames(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_to(f, 0);
    broker_conn *c = connect_to(f, 1);
    expect_ok(broker_declare(p, f->id, 300), "declare");
    expect_ok(broker_consume(c, f->id), "consume");

    /* Eight frames at a frame_max of 128 KiB. */
    size_t len = ACP_JOB_CONFIG_MAX;
    char *body = malloc(len);
    assert_non_null(body);
    for (size_t i = 0; i < len; i++)
        body[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    expect_ok(broker_publish(p, f->id, body, len, CONFIRM_MS), "publish");

    broker_delivery d;
    expect_ok(broker_next(c, DELIVERY_MS, &d), "next");
    assert_int_equal(d.len, len);
    assert_memory_equal(d.body, body, len);
    assert_int_equal(d.body[len], '\0');
    expect_ok(broker_ack(c, d.tag), "ack");
    broker_delivery_free(&d);
    free(body);
}

/* A message larger than any job message is not held whole, whatever its
 * header claims: the delivery keeps one byte more than the limit, and the
 * parser refuses it. */
static void oversized_message_is_never_held_whole(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_to(f, 0);
    broker_conn *c = connect_to(f, 1);
    expect_ok(broker_declare(p, f->id, 300), "declare");
    expect_ok(broker_consume(c, f->id), "consume");
    size_t len = 8 * ACP_JOB_CONFIG_MAX;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, 'x', len);
    expect_ok(broker_publish(p, f->id, body, len, CONFIRM_MS), "publish");
    free(body);

    broker_delivery d;
    expect_ok(broker_next(c, DELIVERY_MS, &d), "next");
    assert_int_equal(d.len, JOB_MESSAGE_MAX + 1);
    assert_int_equal(d.body[d.len], '\0');
    acp_job_id id;
    char *config = NULL;
    assert_int_not_equal(job_message_parse(d.body, d.len, &id, &config), 0);
    assert_null(config);
    assert_error_mentions("exceeds the limit");
    expect_ok(broker_ack(c, d.tag), "ack");
    broker_delivery_free(&d);
    /* The connection goes on: the rest of the body was read off the wire. */
    publish_text(p, f->id, "{\"after\":1}");
    expect_ok(broker_next(c, DELIVERY_MS, &d), "next after");
    assert_string_equal(d.body, "{\"after\":1}");
    expect_ok(broker_ack(c, d.tag), "ack");
    broker_delivery_free(&d);
}

static void prefetch_one_holds_back_further_messages(void **state)
{
    broker_contract_prefetch_one(contract(*state));
}

static void two_consumers_share_the_work(void **state)
{
    broker_contract_two_consumers(contract(*state));
}

static void cancel_returns_an_in_flight_message(void **state)
{
    broker_contract_cancel_requeues(contract(*state));
}

static void next_times_out_when_idle(void **state)
{
    broker_contract_next_times_out(contract(*state));
}

static void publish_reports_a_returned_message(void **state)
{
    broker_contract_publish_returned(contract(*state));
}

static void cancel_send_around_a_job_hands_back_a_pushed_message(void **state)
{
    broker_contract_cancel_send_around_a_job(contract(*state));
}

static void keeper_grace_keeps_a_short_job_consuming(void **state)
{
    broker_contract_keeper_grace_keeps_a_short_job_consuming(contract(*state));
}

static void keeper_grace_cancels_a_long_job(void **state)
{
    broker_contract_keeper_grace_cancels_a_long_job(contract(*state));
}

static void pipelined_publishes_are_answered_each(void **state)
{
    broker_contract_publish_pipelined(contract(*state));
}

static void publish_refuses_a_consuming_connection(void **state)
{
    broker_contract_publish_refuses_a_consumer(contract(*state));
}

static void consume_of_a_missing_queue_fails(void **state)
{
    broker_contract_consume_missing_queue(contract(*state));
}

/* ---- losing the consumer or the channel ---------------------------------- */

static void deleted_queue_cancels_the_consumer(void **state)
{
    fixture *f = *state;
    broker_conn *c = connect_to(f, 0);
    expect_ok(broker_declare(c, f->id, 300), "declare");
    expect_ok(broker_consume(c, f->id), "consume");
    raw_delete_queue(f->queue);

    broker_delivery d;
    assert_int_equal(broker_next(c, DELIVERY_MS, &d), ACP_EBROKER);
    assert_error_mentions("cancelled the consumer");
    assert_null(d.body);
    /* Unusable from now on, and said so. */
    assert_int_equal(broker_next(c, 0, &d), ACP_EBROKER);
    assert_error_mentions("reconnect");
    assert_int_equal(broker_ack(c, 1), ACP_EBROKER);
}

static void channel_closed_by_the_server_is_reported(void **state)
{
    broker_contract_unknown_ack_closes_the_channel(contract(*state));
}

/* Force-close our connection from the server side with rabbitmqctl, finding
 * it by the connection_name that broker_connect() sends. Needs the stack
 * script (ACP_SOURCE_ROOT, set by meson test). */
static void close_from_the_server(fixture *f)
{
    const char *root = getenv("ACP_SOURCE_ROOT");
    const char *required = getenv("ACP_TEST_REQUIRE_SERVICES");
    if ((!root || !*root) && required && strcmp(required, "1") == 0)
        fail_msg("ACP_SOURCE_ROOT is not set: run this test through meson test");
    if (!root || !*root)
        skip();
    char command[1200];
    snprintf(command, sizeof command,
             "%s/scripts/stack rabbitmqctl list_connections pid client_properties 2>/dev/null",
             root);
    FILE *list = popen(command, "r");
    assert_non_null(list);
    char name[64], line[4096], pid[128] = "";
    snprintf(name, sizeof name, "\"async-platform %s\"", f->queue);
    while (fgets(line, sizeof line, list))
        if (strstr(line, name) && strchr(line, '\t')) {
            *strchr(line, '\t') = '\0';
            if (strlen(line) < sizeof pid)
                memcpy(pid, line, strlen(line) + 1);
        }
    pclose(list);
    if (!*pid)
        fail_msg("connection %s not listed by rabbitmqctl", name);
    snprintf(command, sizeof command,
             "%s/scripts/stack rabbitmqctl close_connection '%s' 'closed by test_broker' "
             ">/dev/null 2>&1",
             root, pid);
    assert_int_equal(system(command), 0);
}

static void connection_closed_by_the_server_is_reported(void **state)
{
    fixture *f = *state;
    broker_conn *c = connect_to(f, 0);
    expect_ok(broker_declare(c, f->id, 300), "declare");
    expect_ok(broker_consume(c, f->id), "consume");
    close_from_the_server(f);

    broker_delivery d;
    assert_int_equal(broker_next(c, DELIVERY_MS, &d), ACP_EBROKER);
    assert_error_mentions("connection closed by the server: CONNECTION_FORCED - closed by "
                          "test_broker (320)");
    assert_int_equal(broker_ack(c, 1), ACP_EBROKER);
}

/* Point 7 of issue 10: while a worker runs a job, its connection (consumer
 * cancelled) is kept by a heartbeat thread. At a heartbeat of 1 s, RabbitMQ
 * closes a silent connection within about 3 s; after 4 s with the keeper the
 * connection still consumes and receives. */
static void keeper_holds_a_connection_through_a_long_job(void **state)
{
    fixture *f = *state;
    acp_queue_config q;
    queue_config(&q, f->id);
    q.heartbeat = 1;
    if (broker_connect(&f->conns[0], &broker_amqp_driver, &q, NULL) != 0)
        fail_msg("broker_connect: %s", acp_last_error());
    broker_conn *worker = f->conns[0], *publisher = connect_to(f, 1);
    expect_ok(broker_declare(worker, f->id, 300), "declare");
    expect_ok(broker_consume(worker, f->id), "consume");
    expect_ok(broker_cancel(worker), "cancel");

    broker_keeper *keeper;
    expect_ok(broker_keeper_start(worker, -1, &keeper), "broker_keeper_start");
    sleep(4); /* the job */
    expect_ok(broker_keeper_stop(keeper), "broker_keeper_stop");

    expect_ok(broker_consume(worker, f->id), "consume after the job");
    publish_text(publisher, f->id, "next job");
    expect_ok(broker_ack(worker, broker_contract_expect(worker, "next job", NULL)), "ack");
}

/* A connection lost while the keeper holds it is reported when the owner
 * takes it back, with the server's reason. */
static void keeper_reports_a_connection_lost_meanwhile(void **state)
{
    fixture *f = *state;
    acp_queue_config q;
    queue_config(&q, f->id);
    q.heartbeat = 1;
    if (broker_connect(&f->conns[0], &broker_amqp_driver, &q, NULL) != 0)
        fail_msg("broker_connect: %s", acp_last_error());
    broker_conn *c = f->conns[0];
    expect_ok(broker_declare(c, f->id, 300), "declare");

    broker_keeper *keeper;
    expect_ok(broker_keeper_start(c, -1, &keeper), "broker_keeper_start");
    close_from_the_server(f);
    sleep(2); /* the keeper looks every 250 ms */
    assert_int_equal(broker_keeper_stop(keeper), ACP_EBROKER);
    assert_error_mentions("connection closed by the server: CONNECTION_FORCED - closed by "
                          "test_broker (320)");
    assert_int_equal(broker_consume(c, f->id), ACP_EBROKER);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(connect_rejects_a_wrong_password),
        TEST(connect_reports_a_closed_port),
        TEST(declare_is_idempotent),
        TEST(declare_reports_an_inequivalent_queue),
        TEST(publish_and_consume_round_trip),
        TEST(publish_consume_ack_through_the_seam),
        TEST(large_messages_survive_many_frames),
        TEST(oversized_message_is_never_held_whole),
        TEST(prefetch_one_holds_back_further_messages),
        TEST(two_consumers_share_the_work),
        TEST(cancel_returns_an_in_flight_message),
        TEST(next_times_out_when_idle),
        TEST(publish_reports_a_returned_message),
        TEST(pipelined_publishes_are_answered_each),
        TEST(cancel_send_around_a_job_hands_back_a_pushed_message),
        TEST(keeper_grace_keeps_a_short_job_consuming),
        TEST(keeper_grace_cancels_a_long_job),
        TEST(publish_refuses_a_consuming_connection),
        TEST(consume_of_a_missing_queue_fails),
        TEST(deleted_queue_cancels_the_consumer),
        TEST(channel_closed_by_the_server_is_reported),
        TEST(connection_closed_by_the_server_is_reported),
        TEST(keeper_holds_a_connection_through_a_long_job),
        TEST(keeper_reports_a_connection_lost_meanwhile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
