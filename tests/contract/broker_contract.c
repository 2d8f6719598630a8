/* The broker seam's contract cases (broker_contract.h). */
#include "broker_contract.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "clock.h"
#include "job_message.h"

#define CONFIRM_MS  10000
#define DELIVERY_MS 10000 /* generous: only reached when something is wrong */
#define QUIET_MS    300   /* how long "nothing more arrives" is watched */
/* A keeper's grace that a case outlives on purpose: long enough for a
 * publish and a look at the queue to come first, even under valgrind. */
#define GRACE_MS 1000

void broker_contract_error_mentions(const char *text)
{
    if (!strstr(acp_last_error(), text))
        fail_msg("last error '%s' lacks '%s'", acp_last_error(), text);
}

void broker_contract_ok(int rc, const char *what)
{
    if (rc != 0)
        fail_msg("%s: %d (%s)", what, rc, acp_last_error());
}

/* A connection in slot @slot, closed by broker_contract_close. */
static broker_conn *contract_connect(broker_contract *c, size_t slot)
{
    assert_null(c->conns[slot]);
    if (broker_connect(&c->conns[slot], c->driver, &c->queue, NULL) != 0)
        fail_msg("broker_connect(%s): %s", c->driver->name, acp_last_error());
    return c->conns[slot];
}

void broker_contract_close(broker_contract *c)
{
    for (size_t i = 0; i < sizeof c->conns / sizeof c->conns[0]; i++) {
        broker_close(c->conns[i]);
        c->conns[i] = NULL;
    }
}

static void contract_publish(broker_contract *c, broker_conn *conn, const char *text)
{
    broker_contract_ok(broker_publish(conn, c->queue.id, text, strlen(text), CONFIRM_MS),
                       "broker_publish");
}

uint64_t broker_contract_expect(broker_conn *conn, const char *text, bool *redelivered)
{
    broker_delivery d;
    int rc = broker_next(conn, DELIVERY_MS, &d);
    if (rc != 0)
        fail_msg("broker_next: expected '%s', got %d (%s)", text, rc,
                 rc < 0 ? acp_last_error() : "timeout");
    assert_int_equal(d.len, strlen(text));
    assert_string_equal(d.body, text);
    if (redelivered)
        *redelivered = d.redelivered;
    uint64_t tag = d.tag;
    broker_delivery_free(&d);
    return tag;
}

/* Any next delivery; its body is stored in @body (at least 64 bytes). */
static uint64_t contract_any(broker_conn *conn, char *body)
{
    broker_delivery d;
    int rc = broker_next(conn, DELIVERY_MS, &d);
    if (rc != 0)
        fail_msg("broker_next: %d (%s)", rc, rc < 0 ? acp_last_error() : "timeout");
    assert_true(d.len < 64);
    memcpy(body, d.body, d.len + 1);
    uint64_t tag = d.tag;
    broker_delivery_free(&d);
    return tag;
}

void broker_contract_quiet(broker_conn *conn)
{
    broker_delivery d;
    int rc = broker_next(conn, QUIET_MS, &d);
    if (rc == 0)
        fail_msg("unexpected delivery '%s'", d.body);
    assert_int_equal(rc, 1);
    assert_null(d.body);
}

/* Wait (bounded) until the queue has @count ready messages. */
static void contract_wait_ready(broker_contract *c, unsigned count)
{
    for (int i = 0; i < 500; i++) {
        if (c->ready(c) == count)
            return;
        clock_sleep_ms(10);
    }
    fail_msg("queue %s_jobs never reached %u ready messages", c->queue.id, count);
}

void broker_contract_round_trip(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    acp_job_id id;
    acp_job_id_generate(&id);
    buf message = BUF_INIT;
    broker_contract_ok(job_message_format(&message, &id, "{\"n\":1}", 1), "format");
    broker_contract_ok(broker_publish(p, c->queue.id, message.data, message.len, CONFIRM_MS),
                       "publish");
    contract_publish(c, p, "second");
    contract_wait_ready(c, 2);

    broker_conn *consumer = contract_connect(c, 1);
    broker_contract_ok(broker_consume(consumer, c->queue.id), "consume");
    broker_delivery d;
    broker_contract_ok(broker_next(consumer, DELIVERY_MS, &d), "next");
    assert_int_equal(d.len, message.len);
    assert_memory_equal(d.body, message.data, message.len);
    assert_int_equal(d.body[d.len], '\0');
    assert_false(d.redelivered);
    acp_job_id parsed;
    char *config = NULL;
    broker_contract_ok(job_message_parse(d.body, d.len, &parsed, &config), "parse");
    assert_true(acp_job_id_equal(&id, &parsed));
    assert_string_equal(config, "{\"n\":1}");
    free(config);
    broker_contract_ok(broker_ack(consumer, d.tag), "ack");
    broker_delivery_free(&d);
    broker_contract_ok(broker_ack(consumer, broker_contract_expect(consumer, "second", NULL)),
                       "ack second");
    broker_contract_quiet(consumer);

    /* Acknowledged for good: nothing comes back when the consumer goes. */
    broker_close(consumer);
    c->conns[1] = NULL;
    assert_int_equal(c->ready(c), 0);
    buf_free(&message);
}

void broker_contract_prefetch_one(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_conn *consumer = contract_connect(c, 1);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    contract_publish(c, p, "m1");
    contract_publish(c, p, "m2");
    contract_publish(c, p, "m3");

    broker_contract_ok(broker_consume(consumer, c->queue.id), "consume");
    uint64_t tag = broker_contract_expect(consumer, "m1", NULL);
    /* One unacknowledged message per consumer: m2 waits for the ack. */
    broker_contract_quiet(consumer);
    broker_contract_ok(broker_ack(consumer, tag), "ack m1");
    tag = broker_contract_expect(consumer, "m2", NULL);
    broker_contract_quiet(consumer);
    broker_contract_ok(broker_ack(consumer, tag), "ack m2");
    tag = broker_contract_expect(consumer, "m3", NULL);
    broker_contract_ok(broker_ack(consumer, tag), "ack m3");
    broker_contract_quiet(consumer);
}

void broker_contract_two_consumers(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_conn *a = contract_connect(c, 1);
    broker_conn *b = contract_connect(c, 2);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(a, c->queue.id), "consume a");
    broker_contract_ok(broker_consume(b, c->queue.id), "consume b");
    const char *sent[] = {"w1", "w2", "w3", "w4"};
    for (size_t i = 0; i < 4; i++)
        contract_publish(c, p, sent[i]);

    char got[4][64];
    uint64_t tag_a = contract_any(a, got[0]);
    uint64_t tag_b = contract_any(b, got[1]);
    /* Each holds one; the other two wait for acks. */
    broker_contract_quiet(a);
    broker_contract_quiet(b);
    broker_contract_ok(broker_ack(a, tag_a), "ack a");
    broker_contract_ok(broker_ack(b, tag_b), "ack b");
    tag_a = contract_any(a, got[2]);
    tag_b = contract_any(b, got[3]);
    broker_contract_ok(broker_ack(a, tag_a), "ack a");
    broker_contract_ok(broker_ack(b, tag_b), "ack b");
    broker_contract_quiet(a);
    broker_contract_quiet(b);

    /* Every message exactly once. */
    for (size_t i = 0; i < 4; i++) {
        int seen = 0;
        for (size_t j = 0; j < 4; j++)
            seen += strcmp(got[j], sent[i]) == 0;
        if (seen != 1)
            fail_msg("'%s' delivered %d times", sent[i], seen);
    }
}

void broker_contract_cancel_requeues(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_conn *a = contract_connect(c, 1);
    broker_conn *b = contract_connect(c, 2);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(a, c->queue.id), "consume a");
    contract_publish(c, p, "in flight");
    /* Once the queue shows no ready message, the broker has pushed it to a,
     * which has not read it yet. */
    contract_wait_ready(c, 0);

    broker_contract_ok(broker_cancel(a), "cancel");
    broker_contract_ok(broker_cancel(a), "cancel again"); /* nothing to cancel: fine */
    broker_contract_ok(broker_consume(b, c->queue.id), "consume b");
    bool redelivered = false;
    uint64_t tag = broker_contract_expect(b, "in flight", &redelivered);
    assert_true(redelivered);
    broker_contract_ok(broker_ack(b, tag), "ack");
    broker_contract_quiet(a);

    /* A connection can consume again after a cancel. */
    broker_contract_ok(broker_cancel(b), "cancel b");
    broker_contract_ok(broker_consume(a, c->queue.id), "consume a again");
    contract_publish(c, p, "second");
    tag = broker_contract_expect(a, "second", &redelivered);
    assert_false(redelivered);
    broker_contract_ok(broker_ack(a, tag), "ack");
    broker_contract_quiet(b);
}

void broker_contract_next_times_out(broker_contract *c)
{
    broker_conn *conn = contract_connect(c, 0);
    broker_contract_ok(broker_declare(conn, c->queue.id, 300), "declare");
    broker_delivery d;
    /* Without a consumer, waiting only keeps the connection alive. */
    assert_int_equal(broker_next(conn, 0, &d), 1);
    broker_contract_ok(broker_consume(conn, c->queue.id), "consume");
    assert_int_equal(broker_next(conn, 0, &d), 1);
    assert_int_equal(broker_next(conn, 200, &d), 1);
    assert_int_equal(broker_next(conn, -5, &d), 1);
    assert_null(d.body);
    assert_int_equal(broker_consume(conn, c->queue.id), ACP_EINVAL);
    broker_contract_error_mentions("already consumes");
}

void broker_contract_publish_returned(broker_contract *c)
{
    char queue[ACP_QUEUE_ID_MAX + 8];
    snprintf(queue, sizeof queue, "%s_jobs", c->queue.id);
    broker_conn *p = contract_connect(c, 0);
    /* Nobody declared this queue: the mandatory message comes back. */
    assert_int_equal(broker_publish(p, c->queue.id, "{}", 2, CONFIRM_MS), ACP_EBROKER);
    broker_contract_error_mentions(queue);
    broker_contract_error_mentions("returned by the broker: NO_ROUTE (312)");

    /* The connection stays usable, and confirms keep matching. */
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    contract_publish(c, p, "routed");
    contract_publish(c, p, "routed too");
    assert_int_equal(c->ready(c), 2);
}

void broker_contract_publish_refuses_a_consumer(broker_contract *c)
{
    broker_conn *conn = contract_connect(c, 0);
    broker_contract_ok(broker_declare(conn, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(conn, c->queue.id), "consume");
    assert_int_equal(broker_publish(conn, c->queue.id, "{}", 2, CONFIRM_MS), ACP_EINVAL);
    broker_contract_error_mentions("this connection consumes");
    assert_int_equal(broker_publish(conn, "bad/id", "{}", 2, CONFIRM_MS), ACP_EINVAL);
    broker_contract_error_mentions("invalid queue id");
    broker_contract_ok(broker_cancel(conn), "cancel");
    contract_publish(c, conn, "after cancel");
}

void broker_contract_consume_missing_queue(broker_contract *c)
{
    char queue[ACP_QUEUE_ID_MAX + 8];
    snprintf(queue, sizeof queue, "%s_jobs", c->queue.id);
    broker_conn *conn = contract_connect(c, 0);
    assert_int_equal(broker_consume(conn, c->queue.id), ACP_EBROKER);
    broker_contract_error_mentions("NOT_FOUND");
    broker_contract_error_mentions(queue);
}

void broker_contract_unknown_ack_closes_the_channel(broker_contract *c)
{
    broker_conn *conn = contract_connect(c, 0);
    broker_contract_ok(broker_declare(conn, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(conn, c->queue.id), "consume");
    /* Acks are not answered; the broker's objection arrives as channel.close. */
    broker_contract_ok(broker_ack(conn, 424242), "ack of an unknown tag");

    broker_delivery d;
    assert_int_equal(broker_next(conn, DELIVERY_MS, &d), ACP_EBROKER);
    broker_contract_error_mentions("channel closed by the server");
    broker_contract_error_mentions("PRECONDITION_FAILED - unknown delivery tag 424242 (406)");
    assert_int_equal(broker_cancel(conn), ACP_EBROKER);
}

/* The answers broker_read_confirms gave, per publish number (1..8). */
typedef struct contract_answers {
    int state[9]; /* 0: none yet, 1: confirmed, -1: refused or returned */
    char reason[9][600];
} contract_answers;

static void contract_on_confirm(void *arg, const broker_confirm *confirm)
{
    contract_answers *a = arg;
    for (uint64_t seq = 1; seq <= 8; seq++) {
        if (a->state[seq] || !(seq == confirm->tag || (confirm->multiple && seq < confirm->tag)))
            continue;
        bool failed = confirm->nack || (confirm->returned && seq == confirm->tag);
        a->state[seq] = failed ? -1 : 1;
        if (failed)
            snprintf(a->reason[seq], sizeof a->reason[seq], "%s", confirm->reason);
    }
}

void broker_contract_publish_pipelined(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    char undeclared[ACP_QUEUE_ID_MAX + 1];
    snprintf(undeclared, sizeof undeclared, "%sn", c->queue.id);
    /* Three messages in flight before any answer is read; the middle one
     * has no queue. */
    const char *const targets[] = {c->queue.id, undeclared, c->queue.id};
    for (uint64_t i = 0; i < 3; i++) {
        uint64_t seq = 0;
        broker_contract_ok(broker_publish_send(p, targets[i], "{}", 2, &seq), "publish_send");
        assert_int_equal(seq, i + 1);
    }
    contract_answers a = {0};
    int64_t deadline = clock_now_ms() + CONFIRM_MS;
    while (!(a.state[1] && a.state[2] && a.state[3])) {
        if (clock_now_ms() > deadline)
            fail_msg("answers %d %d %d after %d ms", a.state[1], a.state[2], a.state[3],
                     CONFIRM_MS);
        broker_wait_readable(p, 100);
        broker_contract_ok(broker_read_confirms(p, contract_on_confirm, &a), "read_confirms");
    }
    assert_int_equal(a.state[1], 1);
    assert_int_equal(a.state[2], -1);
    if (!strstr(a.reason[2], "returned by the broker: NO_ROUTE (312)"))
        fail_msg("the returned message's reason is '%s'", a.reason[2]);
    assert_int_equal(a.state[3], 1);
    assert_int_equal(c->ready(c), 2);

    /* Nothing more comes, and the connection goes on numbering. */
    broker_contract_ok(broker_read_confirms(p, contract_on_confirm, &a), "read_confirms");
    assert_int_equal(a.state[4], 0);
    uint64_t seq = 0;
    broker_contract_ok(broker_publish_send(p, c->queue.id, "{}", 2, &seq), "publish_send");
    assert_int_equal(seq, 4);
}

void broker_contract_cancel_send_around_a_job(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_conn *a = contract_connect(c, 1);
    broker_conn *b = contract_connect(c, 2);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(a, c->queue.id), "consume a");
    contract_publish(c, p, "job");
    contract_publish(c, p, "in flight");
    uint64_t tag = broker_contract_expect(a, "job", NULL);
    /* As a worker does: ack, cancel without waiting, run the job under the
     * keeper. The ack lets the broker push the next message to a. */
    broker_contract_ok(broker_ack(a, tag), "ack");
    contract_wait_ready(c, 0);
    broker_contract_ok(broker_cancel_send(a), "cancel_send");
    broker_keeper *keeper = NULL;
    broker_contract_ok(broker_keeper_start(a, -1, &keeper), "keeper_start");

    /* While a's job runs, the message it was pushed goes to b. */
    broker_contract_ok(broker_consume(b, c->queue.id), "consume b");
    bool redelivered = false;
    uint64_t in_flight = broker_contract_expect(b, "in flight", &redelivered);
    assert_true(redelivered);

    /* After the job a consumes again; b still holds its message, so the
     * next one is a's. */
    broker_contract_ok(broker_keeper_stop(keeper), "keeper_stop");
    broker_contract_ok(broker_consume_send(a, c->queue.id), "consume_send");
    contract_publish(c, p, "after");
    tag = broker_contract_expect(a, "after", &redelivered);
    assert_false(redelivered);
    broker_contract_ok(broker_ack(a, tag), "ack after");
    broker_contract_ok(broker_ack(b, in_flight), "ack in flight");
    broker_contract_quiet(a);
    broker_contract_quiet(b);
}

void broker_contract_keeper_grace_keeps_a_short_job_consuming(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_conn *a = contract_connect(c, 1);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(a, c->queue.id), "consume a");
    contract_publish(c, p, "job");
    broker_contract_ok(broker_ack(a, broker_contract_expect(a, "job", NULL)), "ack");
    /* A job far shorter than its grace: the consumer keeps running, and
     * the next message is pushed to a meanwhile. */
    broker_keeper *keeper = NULL;
    broker_contract_ok(broker_keeper_start(a, DELIVERY_MS * 6, &keeper), "keeper_start");
    contract_publish(c, p, "next");
    contract_wait_ready(c, 0);
    assert_int_equal(broker_keeper_stop(keeper), 0);

    /* a still consumes: the message is its next delivery, never handed
     * back in between. */
    bool redelivered = true;
    uint64_t tag = broker_contract_expect(a, "next", &redelivered);
    assert_false(redelivered);
    broker_contract_ok(broker_ack(a, tag), "ack next");
    broker_contract_quiet(a);
}

void broker_contract_keeper_grace_cancels_a_long_job(broker_contract *c)
{
    broker_conn *p = contract_connect(c, 0);
    broker_conn *a = contract_connect(c, 1);
    broker_conn *b = contract_connect(c, 2);
    broker_contract_ok(broker_declare(p, c->queue.id, 300), "declare");
    broker_contract_ok(broker_consume(a, c->queue.id), "consume a");
    contract_publish(c, p, "job");
    broker_contract_ok(broker_ack(a, broker_contract_expect(a, "job", NULL)), "ack");
    broker_keeper *keeper = NULL;
    broker_contract_ok(broker_keeper_start(a, GRACE_MS, &keeper), "keeper_start");
    /* Pushed to a, whose job then outlives the grace: the keeper hands
     * the message back and b runs it while a's job still runs. */
    contract_publish(c, p, "in flight");
    contract_wait_ready(c, 0);
    broker_contract_ok(broker_consume(b, c->queue.id), "consume b");
    bool redelivered = false;
    uint64_t in_flight = broker_contract_expect(b, "in flight", &redelivered);
    assert_true(redelivered);

    /* a stopped consuming; after its job it consumes again, and as b still
     * holds its message the next one is a's. */
    assert_int_equal(broker_keeper_stop(keeper), 1);
    broker_contract_ok(broker_consume_send(a, c->queue.id), "consume_send");
    contract_publish(c, p, "after");
    uint64_t tag = broker_contract_expect(a, "after", &redelivered);
    assert_false(redelivered);
    broker_contract_ok(broker_ack(a, tag), "ack after");
    broker_contract_ok(broker_ack(b, in_flight), "ack in flight");
    broker_contract_quiet(a);
    broker_contract_quiet(b);
}
