/* Pipelined publisher confirms (src/dispatch.c) on the fakes: submits from
 * several threads have their messages in flight at once on the queue's one
 * publisher connection, and each returns only when the broker's answer to
 * its own message is known, whether the confirms come one by one, as one
 * multiple ack or out of order. A nack fails exactly the publish it
 * answers; a lost connection fails every publish waiting on it, and those
 * rows are left for redispatch; the maintenance pass republishes a batch
 * and only then waits. The fake broker holds the confirms back
 * (fake_broker_set_confirms) until every message is out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>

#include "clock.h"
#include "fake_platform.h"

#define SUBMITTERS 3

static const fake_platform_options options = {.workers = 2, .lease_seconds = 600};

typedef struct submitter {
    fake_platform *fp;
    char config[64];
    acp_job_id id;
    int rc;
    pthread_t thread;
} submitter;

static void *submit_thread(void *arg)
{
    submitter *s = arg;
    s->rc = fake_platform_submit(s->fp, s->config, NULL, &s->id, NULL);
    return NULL;
}

static void start_submits(fake_platform *fp, submitter *s, size_t count, const char *label)
{
    for (size_t i = 0; i < count; i++) {
        s[i].fp = fp;
        snprintf(s[i].config, sizeof s[i].config, "{\"logic\":\"%s-%zu\"}", label, i);
        assert_int_equal(pthread_create(&s[i].thread, NULL, submit_thread, &s[i]), 0);
    }
}

static void join_submits(submitter *s, size_t count)
{
    for (size_t i = 0; i < count; i++)
        assert_int_equal(pthread_join(s[i].thread, NULL), 0);
}

/* Hang guard: until the broker holds @count answers nobody has read. With
 * one publish at a time per connection this never comes. */
static void wait_unconfirmed(fake_platform *fp, size_t count)
{
    for (int i = 0; i < FAKE_PLATFORM_WAIT_S * 100; i++) {
        if (fake_broker_unconfirmed(fp->broker) == count)
            return;
        clock_sleep_ms(10);
    }
    fail_msg("%zu publishes awaiting their confirm, expected %zu",
             fake_broker_unconfirmed(fp->broker), count);
}

static fake_store_row row_of(fake_platform *fp, const acp_job_id *id)
{
    fake_store_row row;
    assert_int_equal(fake_store_peek_row(fp->store, id, &row), 0);
    return row;
}

static void concurrent_submits(int style, const char *label)
{
    fake_platform fp;
    fake_platform_start(&fp, &options);
    fake_broker_set_confirms(fp.broker, true, style);
    submitter s[SUBMITTERS] = {0};
    start_submits(&fp, s, SUBMITTERS, label);
    wait_unconfirmed(&fp, SUBMITTERS);
    fake_broker_set_confirms(fp.broker, false, style);
    join_submits(s, SUBMITTERS);
    for (size_t i = 0; i < SUBMITTERS; i++) {
        assert_int_equal(s[i].rc, 0);
        fake_store_row row = row_of(&fp, &s[i].id);
        assert_true(row.dispatched != 0); /* confirmed: no redispatch owed */
        assert_int_equal(row.dispatch_failures, 0);
        fake_store_row_free(&row);
        assert_true(fake_platform_wait(&fp, &s[i].id, ACP_STATUS_COMPLETE));
        assert_int_equal(fake_platform_runs(&s[i].id), 1);
    }
    assert_int_equal(fake_broker_published(fp.broker, FAKE_PLATFORM_QUEUE), SUBMITTERS);
    fake_platform_stop(&fp);
}

static void concurrent_submits_confirmed_one_by_one(void **state)
{
    (void)state;
    concurrent_submits(FAKE_BROKER_CONFIRM_EACH, "each");
}

static void concurrent_submits_confirmed_by_one_multiple_ack(void **state)
{
    (void)state;
    concurrent_submits(FAKE_BROKER_CONFIRM_MULTIPLE, "multiple");
}

static void concurrent_submits_confirmed_out_of_order(void **state)
{
    (void)state;
    concurrent_submits(FAKE_BROKER_CONFIRM_REVERSE, "reverse");
}

/* Two submits in flight; the broker acks the first and nacks the second
 * (and its retry): the first is dispatched, the second owes a redispatch. */
static void a_nack_fails_only_its_publish(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, &options);
    fake_broker_set_confirms(fp.broker, true, FAKE_BROKER_CONFIRM_MULTIPLE);
    submitter s[2] = {0};
    start_submits(&fp, s, 1, "acked");
    wait_unconfirmed(&fp, 1);
    fault_plan_add(&fp.plan, (fault_rule){.op = "amqp.publish",
                                          .nth = fault_calls(&fp.plan, "amqp.publish") + 1,
                                          .times = 2,
                                          .error = ACP_EBROKER,
                                          .kind = FAKE_BROKER_PUBLISH_NACK});
    start_submits(&fp, s + 1, 1, "nacked");
    wait_unconfirmed(&fp, 2);
    fake_broker_set_confirms(fp.broker, false, FAKE_BROKER_CONFIRM_MULTIPLE);
    join_submits(s, 2);

    /* A failed publish does not fail the submit: the row owes a redispatch. */
    assert_int_equal(s[0].rc, 0);
    assert_int_equal(s[1].rc, 0);
    fake_store_row acked = row_of(&fp, &s[0].id), nacked = row_of(&fp, &s[1].id);
    assert_true(acked.dispatched != 0);
    assert_int_equal(acked.dispatch_failures, 0);
    assert_int_equal(nacked.dispatched, 0);
    assert_int_equal(nacked.dispatch_failures, 1);
    fake_store_row_free(&acked);
    fake_store_row_free(&nacked);
    assert_true(fake_platform_logged("basic.nack"));
    assert_int_equal(fake_broker_published(fp.broker, FAKE_PLATFORM_QUEUE), 1);
    assert_true(fake_platform_wait(&fp, &s[0].id, ACP_STATUS_COMPLETE));

    /* The redispatch publishes it; it runs once. */
    fake_platform_redispatch(&fp, &s[1].id);
    assert_true(fake_platform_wait(&fp, &s[1].id, ACP_STATUS_COMPLETE));
    assert_int_equal(fake_platform_runs(&s[1].id), 1);
    fake_platform_stop(&fp);
}

/* Two submits wait for their confirms when the server closes the
 * connection; their retries find the broker unreachable. Both rows owe a
 * redispatch, and both jobs then run once. */
static void a_lost_connection_fails_the_waiting_publishes(void **state)
{
    (void)state;
    fake_platform fp;
    fake_platform_start(&fp, &options);
    fake_broker_set_confirms(fp.broker, true, FAKE_BROKER_CONFIRM_EACH);
    submitter s[2] = {0};
    start_submits(&fp, s, 2, "dropped");
    wait_unconfirmed(&fp, 2);
    unsigned published = fault_calls(&fp.plan, "amqp.publish");
    fault_plan_add(&fp.plan, (fault_rule){.op = "amqp.publish",
                                          .nth = published + 1,
                                          .times = 2,
                                          .error = ACP_EBROKER,
                                          .kind = FAKE_BROKER_PUBLISH_LOST});
    fake_broker_close_connections(fp.broker);
    join_submits(s, 2);
    fake_broker_set_confirms(fp.broker, false, FAKE_BROKER_CONFIRM_EACH);

    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(s[i].rc, 0);
        fake_store_row row = row_of(&fp, &s[i].id);
        assert_int_equal(row.dispatched, 0);
        assert_int_equal(row.dispatch_failures, 1);
        fake_store_row_free(&row);
    }
    /* Each wait ended with the connection (the confirms were still held)
     * and each submit tried once more. */
    assert_int_equal(fault_calls(&fp.plan, "amqp.publish"), published + 2);
    for (size_t i = 0; i < 2; i++) {
        fake_platform_redispatch(&fp, &s[i].id);
        assert_true(fake_platform_wait(&fp, &s[i].id, ACP_STATUS_COMPLETE));
        assert_int_equal(fake_platform_runs(&s[i].id), 1);
    }
    fake_platform_stop(&fp);
}

typedef struct redispatcher {
    fake_platform *fp;
    const acp_job_id *id;
} redispatcher;

static void *redispatch_thread(void *arg)
{
    redispatcher *r = arg;
    fake_platform_redispatch(r->fp, r->id);
    return NULL;
}

/* The maintenance pass republishes the messages of several jobs: all are
 * sent before it waits for the first confirm. */
static void republishing_sends_every_message_before_waiting(void **state)
{
    (void)state;
    enum { JOBS = 3 };
    fake_platform fp;
    fake_platform_start(&fp, &options);
    fault_plan_add(&fp.plan, (fault_rule){.op = "amqp.publish",
                                          .nth = 1,
                                          .times = 2 * JOBS,
                                          .error = ACP_EBROKER,
                                          .kind = FAKE_BROKER_PUBLISH_LOST});
    acp_job_id ids[JOBS];
    for (size_t i = 0; i < JOBS; i++) {
        char config[64];
        snprintf(config, sizeof config, "{\"logic\":\"republish-%zu\"}", i);
        assert_int_equal(fake_platform_submit(&fp, config, NULL, &ids[i], NULL), 0);
        fake_store_row row = row_of(&fp, &ids[i]);
        assert_int_equal(row.dispatched, 0);
        fake_store_row_free(&row);
    }
    fake_broker_set_confirms(fp.broker, true, FAKE_BROKER_CONFIRM_EACH);
    redispatcher r = {&fp, &ids[JOBS - 1]};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, redispatch_thread, &r), 0);
    wait_unconfirmed(&fp, JOBS);
    fake_broker_set_confirms(fp.broker, false, FAKE_BROKER_CONFIRM_EACH);
    assert_int_equal(pthread_join(thread, NULL), 0);
    for (size_t i = 0; i < JOBS; i++) {
        fake_store_row row = row_of(&fp, &ids[i]);
        assert_true(row.dispatched != 0);
        fake_store_row_free(&row);
        assert_true(fake_platform_wait(&fp, &ids[i], ACP_STATUS_COMPLETE));
        assert_int_equal(fake_platform_runs(&ids[i]), 1);
    }
    fake_platform_stop(&fp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(concurrent_submits_confirmed_one_by_one),
        cmocka_unit_test(concurrent_submits_confirmed_by_one_multiple_ack),
        cmocka_unit_test(concurrent_submits_confirmed_out_of_order),
        cmocka_unit_test(a_nack_fails_only_its_publish),
        cmocka_unit_test(a_lost_connection_fails_the_waiting_publishes),
        cmocka_unit_test(republishing_sends_every_message_before_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
