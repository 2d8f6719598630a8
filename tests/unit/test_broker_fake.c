/* The in-memory broker (tests/fakes/fake_broker.h) through the broker seam's
 * functions, as the logic above the seam uses it: the contract cases it
 * shares with the AMQP driver (tests/contract/broker_contract.c), what
 * several worker threads see on one queue, the keeper, and the faults a test
 * injects, with what is then left in the broker. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../contract/broker_contract.h"
#include "async_platform.h"
#include "broker.h"
#include "fake_broker.h"
#include "fault.h"
#include "job_message.h"

#define CONFIRM_MS  10000
#define DELIVERY_MS 10000 /* generous: only reached when something is wrong */

typedef struct fixture {
    fault_plan plan;
    fake_broker *fb;
    broker_contract contract;
} fixture;

static unsigned contract_ready(broker_contract *contract)
{
    fixture *f = contract->userdata;
    return (unsigned)fake_broker_ready(f->fb, contract->queue.id);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    fault_plan_init(&f->plan);
    f->fb = fake_broker_new(&f->plan);
    broker_contract *c = &f->contract;
    c->driver = fake_broker_driver(f->fb);
    if (acp_queue_config_init(&c->queue, ACP_QUEUE_CONFIG_VERSION) != 0)
        return -1;
    c->queue.id = "q1";
    c->queue.host = "broker.invalid";
    c->queue.port = 5672;
    c->queue.user = "user";
    c->queue.password = "password";
    c->ready = contract_ready;
    c->userdata = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    broker_contract_close(&f->contract);
    fake_broker_free(f->fb);
    fault_plan_destroy(&f->plan);
    free(f);
    return 0;
}

/* A connection in the contract's slot @slot (closed in teardown). */
static broker_conn *connect_slot(fixture *f, size_t slot)
{
    broker_contract *c = &f->contract;
    assert_null(c->conns[slot]);
    broker_contract_ok(broker_connect(&c->conns[slot], c->driver, &c->queue, NULL), "connect");
    return c->conns[slot];
}

static void reconnect_slot(fixture *f, size_t slot)
{
    broker_close(f->contract.conns[slot]);
    f->contract.conns[slot] = NULL;
    connect_slot(f, slot);
}

static void publish_text(broker_conn *conn, const char *text)
{
    broker_contract_ok(broker_publish(conn, "q1", text, strlen(text), CONFIRM_MS), "publish");
}

/* ---- the contract shared with the AMQP driver ------------------------------ */

static void publish_then_consume_next_and_ack(void **state)
{
    fixture *f = *state;
    broker_contract_round_trip(&f->contract);
    /* Seen from outside: both taken, both acked, nothing left. */
    assert_int_equal(fake_broker_published(f->fb, "q1"), 2);
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 0);
    assert_int_equal(fake_broker_unacked(f->fb, "q1"), 0);
}

static void prefetch_one_holds_back_further_messages(void **state)
{
    fixture *f = *state;
    broker_contract_prefetch_one(&f->contract);
}

static void prefetch_one_counts_one_unacked(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0), *c = connect_slot(f, 1);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    publish_text(p, "m1");
    publish_text(p, "m2");
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 2);
    broker_contract_ok(broker_consume(c, "q1"), "consume");
    /* Pushed to the consumer at once, read or not. */
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 1);
    assert_int_equal(fake_broker_unacked(f->fb, "q1"), 1);
    char *next = fake_broker_peek(f->fb, "q1", 0);
    assert_string_equal(next, "m2");
    free(next);
    assert_null(fake_broker_peek(f->fb, "q1", 1));
    broker_contract_ok(broker_ack(c, broker_contract_expect(c, "m1", NULL)), "ack");
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 0);
    assert_int_equal(fake_broker_unacked(f->fb, "q1"), 1);
}

static void two_consumers_share_the_work(void **state)
{
    fixture *f = *state;
    broker_contract_two_consumers(&f->contract);
}

static void cancel_requeues_an_unread_delivery_to_another_consumer(void **state)
{
    fixture *f = *state;
    broker_contract_cancel_requeues(&f->contract);
}

static void next_times_out_with_1(void **state)
{
    fixture *f = *state;
    broker_contract_next_times_out(&f->contract);
}

static void cancel_send_around_a_job_hands_back_a_pushed_message(void **state)
{
    fixture *f = *state;
    broker_contract_cancel_send_around_a_job(&f->contract);
}

static void keeper_grace_keeps_a_short_job_consuming(void **state)
{
    fixture *f = *state;
    broker_contract_keeper_grace_keeps_a_short_job_consuming(&f->contract);
    /* The one consume of the start, and nothing around the job. */
    assert_int_equal(fake_broker_consumes(f->fb), 1);
    assert_int_equal(fake_broker_cancels(f->fb), 0);
}

static void keeper_grace_cancels_a_long_job(void **state)
{
    fixture *f = *state;
    broker_contract_keeper_grace_cancels_a_long_job(&f->contract);
    /* a and b, then a again after its job; a's consumer cancelled once. */
    assert_int_equal(fake_broker_consumes(f->fb), 3);
    assert_int_equal(fake_broker_cancels(f->fb), 1);
}

static void pipelined_publishes_are_answered_each(void **state)
{
    fixture *f = *state;
    broker_contract_publish_pipelined(&f->contract);
}

static void publish_to_an_undeclared_queue_is_returned(void **state)
{
    fixture *f = *state;
    broker_contract_publish_returned(&f->contract);
}

static void publish_refuses_a_consuming_connection(void **state)
{
    fixture *f = *state;
    broker_contract_publish_refuses_a_consumer(&f->contract);
}

static void consume_of_a_missing_queue_fails(void **state)
{
    fixture *f = *state;
    broker_contract_consume_missing_queue(&f->contract);
}

static void ack_of_an_unknown_tag_closes_the_channel(void **state)
{
    fixture *f = *state;
    broker_contract_unknown_ack_closes_the_channel(&f->contract);
}

/* ---- beyond the contract ---------------------------------------------------- */

static void oversized_message_is_cut_as_the_amqp_driver_cuts_it(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0), *c = connect_slot(f, 1);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    broker_contract_ok(broker_consume(c, "q1"), "consume");
    size_t len = 2 * JOB_MESSAGE_MAX;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, 'x', len);
    broker_contract_ok(broker_publish(p, "q1", body, len, CONFIRM_MS), "publish");
    free(body);
    broker_delivery d;
    broker_contract_ok(broker_next(c, DELIVERY_MS, &d), "next");
    assert_int_equal(d.len, JOB_MESSAGE_MAX + 1);
    assert_int_equal(d.body[d.len], '\0');
    acp_job_id id;
    char *config = NULL;
    assert_int_equal(job_message_parse(d.body, d.len, &id, &config), ACP_ETOOBIG);
    broker_contract_ok(broker_ack(c, d.tag), "ack");
    broker_delivery_free(&d);
}

typedef struct consumer_thread {
    fixture *f;
    broker_conn *conn;
    pthread_t thread;
    char got[16][8];
    size_t count;
    int rc;
} consumer_thread;

/* A worker's loop: take messages until none comes for a while. */
static void *consumer_main(void *arg)
{
    consumer_thread *t = arg;
    for (;;) {
        broker_delivery d;
        int rc = broker_next(t->conn, 300, &d);
        if (rc == 1)
            break;
        if (rc == 0 && t->count < 16 && d.len < 8)
            memcpy(t->got[t->count++], d.body, d.len + 1);
        if (rc == 0)
            rc = broker_ack(t->conn, d.tag);
        broker_delivery_free(&d);
        if (rc) {
            t->rc = rc;
            break;
        }
    }
    return NULL;
}

static void worker_threads_consume_one_queue_once_each(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    char sent[12][8];
    for (size_t i = 0; i < 12; i++) {
        snprintf(sent[i], sizeof sent[i], "j%zu", i);
        publish_text(p, sent[i]);
    }
    /* Each thread stops once nothing came for a while: with the messages
     * already waiting, that is when they are all taken. */
    consumer_thread threads[3];
    memset(threads, 0, sizeof threads);
    for (size_t i = 0; i < 3; i++) {
        threads[i].f = f;
        threads[i].conn = connect_slot(f, i + 1);
        broker_contract_ok(broker_consume(threads[i].conn, "q1"), "consume");
        assert_int_equal(pthread_create(&threads[i].thread, NULL, consumer_main, &threads[i]), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        pthread_join(threads[i].thread, NULL);
        assert_int_equal(threads[i].rc, 0);
    }
    for (size_t i = 0; i < 12; i++) {
        int seen = 0;
        for (size_t t = 0; t < 3; t++)
            for (size_t j = 0; j < threads[t].count; j++)
                seen += strcmp(threads[t].got[j], sent[i]) == 0;
        if (seen != 1)
            fail_msg("'%s' delivered %d times", sent[i], seen);
    }
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 0);
    assert_int_equal(fake_broker_unacked(f->fb, "q1"), 0);
}

/* The worker's order: ack, cancel, keep the connection through the job,
 * consume again. */
static void keeper_holds_the_connection_through_a_job(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0), *w = connect_slot(f, 1);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    broker_contract_ok(broker_consume(w, "q1"), "consume");
    publish_text(p, "job 1");
    publish_text(p, "job 2");
    broker_contract_ok(broker_ack(w, broker_contract_expect(w, "job 1", NULL)), "ack");
    broker_contract_ok(broker_cancel(w), "cancel");
    /* job 2 was pushed to w but not read: back in the queue. */
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 1);
    broker_keeper *keeper;
    broker_contract_ok(broker_keeper_start(w, -1, &keeper), "keeper start");
    broker_contract_ok(broker_keeper_stop(keeper), "keeper stop");
    broker_contract_ok(broker_consume(w, "q1"), "consume again");
    bool redelivered = false;
    broker_contract_ok(broker_ack(w, broker_contract_expect(w, "job 2", &redelivered)), "ack");
    assert_true(redelivered);
}

static void keeper_reports_a_connection_closed_by_the_server(void **state)
{
    fixture *f = *state;
    broker_conn *w = connect_slot(f, 0);
    broker_contract_ok(broker_declare(w, "q1", 300), "declare");
    broker_keeper *keeper;
    broker_contract_ok(broker_keeper_start(w, -1, &keeper), "keeper start");
    fake_broker_close_connections(f->fb);
    assert_int_equal(broker_keeper_stop(keeper), ACP_EBROKER);
    broker_contract_error_mentions("fake rabbitmq broker.invalid:5672: ");
    broker_contract_error_mentions("connection closed by the server: CONNECTION_FORCED");
    assert_int_equal(broker_consume(w, "q1"), ACP_EBROKER);
    broker_contract_error_mentions("reconnect");
}

static void server_close_wakes_a_waiting_consumer_and_requeues(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0), *c = connect_slot(f, 1);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    broker_contract_ok(broker_consume(c, "q1"), "consume");
    publish_text(p, "held");
    broker_contract_expect(c, "held", NULL); /* read, never acked */
    fake_broker_close_connections(f->fb);
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 1);
    assert_int_equal(fake_broker_unacked(f->fb, "q1"), 0);
    broker_delivery d;
    assert_int_equal(broker_next(c, DELIVERY_MS, &d), ACP_EBROKER);
    broker_contract_error_mentions("CONNECTION_FORCED");
}

/* ---- faults ----------------------------------------------------------------- */

static void injected_publish_fault_returns_ebroker_and_queues_nothing(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    fault_plan_add(&f->plan, (fault_rule){.op = "amqp.publish", .nth = 1, .error = ACP_EBROKER});
    assert_int_equal(broker_publish(p, "q1", "{}", 2, CONFIRM_MS), ACP_EBROKER);
    broker_contract_error_mentions("fake rabbitmq broker.invalid:5672: publishing to 'q1_jobs': ");
    broker_contract_error_mentions("injected");
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 0);
    assert_int_equal(fake_broker_published(f->fb, "q1"), 0);
    /* Connection lost: unusable, as after a socket error. */
    assert_int_equal(broker_publish(p, "q1", "{}", 2, CONFIRM_MS), ACP_EBROKER);
    broker_contract_error_mentions("reconnect");
    assert_int_equal(fault_calls(&f->plan, "amqp.publish"), 2);
}

static void injected_nack_keeps_the_connection(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    fault_plan_add(&f->plan, (fault_rule){.op = "amqp.publish",
                                          .nth = 1,
                                          .error = ACP_EBROKER,
                                          .kind = FAKE_BROKER_PUBLISH_NACK});
    assert_int_equal(broker_publish(p, "q1", "refused", 7, CONFIRM_MS), ACP_EBROKER);
    broker_contract_error_mentions("refused the message (basic.nack)");
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 0);
    publish_text(p, "taken");
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 1);
    assert_int_equal(fake_broker_published(f->fb, "q1"), 1);
}

static void injected_missing_confirm_still_queues_the_message(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    fault_plan_add(&f->plan, (fault_rule){.op = "amqp.publish",
                                          .nth = 1,
                                          .error = ACP_EBROKER,
                                          .kind = FAKE_BROKER_PUBLISH_NO_CONFIRM});
    assert_int_equal(broker_publish(p, "q1", "unconfirmed", 11, 1234), ACP_EBROKER);
    broker_contract_error_mentions("no confirm from the broker within 1234 ms");
    /* The caller must count on a duplicate: the message is there. */
    char *body = fake_broker_peek(f->fb, "q1", 0);
    assert_string_equal(body, "unconfirmed");
    free(body);
    publish_text(p, "next");
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 2);
}

static void unusable_connection_fails_every_call_until_reconnect(void **state)
{
    fixture *f = *state;
    broker_conn *p = connect_slot(f, 0), *c = connect_slot(f, 1);
    broker_contract_ok(broker_declare(p, "q1", 300), "declare");
    broker_contract_ok(broker_consume(c, "q1"), "consume");
    publish_text(p, "job");
    uint64_t tag = broker_contract_expect(c, "job", NULL);
    fault_plan_add(&f->plan, (fault_rule){.op = "amqp.ack", .nth = 1, .error = ACP_EBROKER});
    assert_int_equal(broker_ack(c, tag), ACP_EBROKER);
    /* The unacked delivery went back, as when a connection closes. */
    assert_int_equal(fake_broker_ready(f->fb, "q1"), 1);
    assert_int_equal(fake_broker_unacked(f->fb, "q1"), 0);

    broker_delivery d;
    broker_keeper *keeper;
    assert_int_equal(broker_ack(c, tag), ACP_EBROKER);
    broker_contract_error_mentions("reconnect");
    assert_int_equal(broker_next(c, 0, &d), ACP_EBROKER);
    assert_null(d.body);
    assert_int_equal(broker_declare(c, "q1", 300), ACP_EBROKER);
    assert_int_equal(broker_cancel(c), ACP_EBROKER);
    assert_int_equal(broker_consume(c, "q1"), ACP_EBROKER);
    assert_int_equal(broker_publish(c, "q1", "{}", 2, CONFIRM_MS), ACP_EBROKER);
    assert_int_equal(broker_keeper_start(c, -1, &keeper), ACP_EBROKER);
    assert_null(keeper);
    broker_contract_error_mentions("reconnect");

    reconnect_slot(f, 1);
    c = f->contract.conns[1];
    broker_contract_ok(broker_consume(c, "q1"), "consume after reconnect");
    bool redelivered = false;
    broker_contract_ok(broker_ack(c, broker_contract_expect(c, "job", &redelivered)), "ack");
    assert_true(redelivered);
}

static void injected_faults_at_every_operation(void **state)
{
    fixture *f = *state;
    const char *ops[] = {"amqp.declare", "amqp.consume", "amqp.next", "amqp.cancel"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        fault_plan_reset(&f->plan);
        fault_plan_add(&f->plan, (fault_rule){.op = ops[i], .nth = 1, .error = ACP_EBROKER});
        broker_close(f->contract.conns[0]);
        f->contract.conns[0] = NULL;
        broker_conn *c = connect_slot(f, 0);
        broker_delivery d;
        int rc = broker_declare(c, "q1", 300);
        if (!rc)
            rc = broker_consume(c, "q1");
        if (!rc)
            rc = broker_next(c, 0, &d);
        if (rc == 1)
            rc = broker_cancel(c);
        assert_int_equal(rc, ACP_EBROKER);
        assert_int_equal(fault_calls(&f->plan, ops[i]), 1);
        assert_string_equal(f->plan.failed_op, ops[i]);
        broker_contract_error_mentions(ops[i]);
        assert_int_equal(broker_declare(c, "q1", 300), ACP_EBROKER);
        broker_contract_error_mentions("reconnect");
    }
}

static void injected_other_error_leaves_the_connection_usable(void **state)
{
    fixture *f = *state;
    broker_conn *c = connect_slot(f, 0);
    fault_plan_add(&f->plan, (fault_rule){.op = "amqp.declare", .nth = 1, .error = ACP_ENOMEM});
    assert_int_equal(broker_declare(c, "q1", 300), ACP_ENOMEM);
    assert_false(fake_broker_declared(f->fb, "q1"));
    broker_contract_ok(broker_declare(c, "q1", 300), "declare");
    assert_true(fake_broker_declared(f->fb, "q1"));
}

static void injected_connect_fault_opens_nothing(void **state)
{
    fixture *f = *state;
    broker_contract *c = &f->contract;
    fault_plan_add(&f->plan, (fault_rule){.op = "amqp.connect", .nth = 1, .error = ACP_EBROKER});
    broker_conn *conn = (broker_conn *)&f->plan; /* must be reset to NULL */
    assert_int_equal(broker_connect(&conn, c->driver, &c->queue, NULL), ACP_EBROKER);
    assert_null(conn);
    broker_contract_error_mentions("fake rabbitmq broker.invalid:5672: connection refused");
    broker_contract_ok(broker_connect(&conn, c->driver, &c->queue, NULL), "second connect");
    broker_close(conn);
    c->queue.port = 0;
    assert_int_equal(broker_connect(&conn, c->driver, &c->queue, NULL), ACP_EINVAL);
    assert_int_equal(broker_connect(&conn, NULL, &c->queue, NULL), ACP_EINVAL);
    assert_int_equal(fault_calls(&f->plan, "amqp.connect"), 2);
}

int main(void)
{
#define TEST(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        TEST(publish_then_consume_next_and_ack),
        TEST(prefetch_one_holds_back_further_messages),
        TEST(prefetch_one_counts_one_unacked),
        TEST(two_consumers_share_the_work),
        TEST(cancel_requeues_an_unread_delivery_to_another_consumer),
        TEST(next_times_out_with_1),
        TEST(publish_to_an_undeclared_queue_is_returned),
        TEST(pipelined_publishes_are_answered_each),
        TEST(cancel_send_around_a_job_hands_back_a_pushed_message),
        TEST(keeper_grace_keeps_a_short_job_consuming),
        TEST(keeper_grace_cancels_a_long_job),
        TEST(publish_refuses_a_consuming_connection),
        TEST(consume_of_a_missing_queue_fails),
        TEST(ack_of_an_unknown_tag_closes_the_channel),
        TEST(oversized_message_is_cut_as_the_amqp_driver_cuts_it),
        TEST(worker_threads_consume_one_queue_once_each),
        TEST(keeper_holds_the_connection_through_a_job),
        TEST(keeper_reports_a_connection_closed_by_the_server),
        TEST(server_close_wakes_a_waiting_consumer_and_requeues),
        TEST(injected_publish_fault_returns_ebroker_and_queues_nothing),
        TEST(injected_nack_keeps_the_connection),
        TEST(injected_missing_confirm_still_queues_the_message),
        TEST(unusable_connection_fails_every_call_until_reconnect),
        TEST(injected_faults_at_every_operation),
        TEST(injected_other_error_leaves_the_connection_usable),
        TEST(injected_connect_fault_opens_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
