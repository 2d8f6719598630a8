/* Cases of the broker seam's contract (src/broker.h) written once and run
 * against every driver: the AMQP driver against the RabbitMQ of
 * scripts/stack (tests/integration/test_broker.c) and the in-memory fake
 * (tests/unit/test_broker_fake.c), so that the fake keeps behaving as the
 * real broker does. Each case is a cmocka test body: it fails the running
 * test on a mismatch. */
#ifndef ACP_TEST_BROKER_CONTRACT_H
#define ACP_TEST_BROKER_CONTRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "async_platform.h"
#include "broker.h"

typedef struct broker_contract {
    const broker_driver *driver;
    /* The queue under test (id "<x>", queue "<x>_jobs"), not declared yet,
     * and how to reach its broker. */
    acp_queue_config queue;
    /* Messages waiting in the queue, as seen from outside the connections
     * (delivered but unacknowledged ones not counted). */
    unsigned (*ready)(struct broker_contract *contract);
    void *userdata;
    broker_conn *conns[4]; /* closed by broker_contract_close */
} broker_contract;

/* Helpers for broker tests: each fails the running test on a mismatch. */
/* The last error (acp_last_error) contains @text. */
void broker_contract_error_mentions(const char *text);
/* @rc is 0; otherwise the failure names @what and the last error. */
void broker_contract_ok(int rc, const char *what);
/* The next delivery on @conn (within a hang guard) is @text; returns its
 * tag, and whether it was redelivered in *@redelivered (may be NULL). */
uint64_t broker_contract_expect(broker_conn *conn, const char *text, bool *redelivered);
/* Nothing arrives on @conn for a short while. */
void broker_contract_quiet(broker_conn *conn);

/* Close the connections a case opened (teardown; NULL slots are fine). */
void broker_contract_close(broker_contract *contract);

/* Publish two messages, consume, read one, ack, nothing more; a job message
 * parses back to its id. */
void broker_contract_round_trip(broker_contract *contract);
/* Prefetch 1: a second message waits until the first is acked. */
void broker_contract_prefetch_one(broker_contract *contract);
/* Two consumers of one queue each hold one message; every message is
 * delivered exactly once. */
void broker_contract_two_consumers(broker_contract *contract);
/* A message pushed to a consumer that cancels before reading it goes to
 * another consumer, marked redelivered; a connection consumes again after a
 * cancel. */
void broker_contract_cancel_requeues(broker_contract *contract);
/* A worker's round: ack, broker_cancel_send, keeper; a message pushed
 * before the cancel goes to another consumer while the keeper runs; after
 * the keeper, broker_consume_send resumes consuming. */
void broker_contract_cancel_send_around_a_job(broker_contract *contract);
/* A worker's round with a grace (broker_keeper_start's cancel_after_ms): a
 * job shorter than the grace leaves the consumer running, and a message
 * pushed meanwhile is the connection's next delivery after the keeper. */
void broker_contract_keeper_grace_keeps_a_short_job_consuming(broker_contract *contract);
/* A job longer than the grace: the keeper cancels the consumer, a message
 * pushed before goes to another consumer while the job runs, and the keeper
 * reports the cancel (1) so that the owner consumes again. */
void broker_contract_keeper_grace_cancels_a_long_job(broker_contract *contract);
/* broker_next answers 1 when nothing comes, with or without a consumer. */
void broker_contract_next_times_out(broker_contract *contract);
/* A message to an undeclared queue comes back (NO_ROUTE); the connection
 * stays usable. */
void broker_contract_publish_returned(broker_contract *contract);
/* Pipelined publishing: three messages sent before any confirm is read
 * are numbered 1, 2, 3; the one to an undeclared queue is answered as
 * returned, the others confirmed, however the broker groups its acks. */
void broker_contract_publish_pipelined(broker_contract *contract);
/* A consuming connection does not publish; an unsafe queue id is refused. */
void broker_contract_publish_refuses_a_consumer(broker_contract *contract);
/* Consuming an undeclared queue fails naming NOT_FOUND and the queue. */
void broker_contract_consume_missing_queue(broker_contract *contract);
/* An ack of an unknown tag makes the server close the channel: the next
 * call says so, and the connection is unusable. */
void broker_contract_unknown_ack_closes_the_channel(broker_contract *contract);

#endif
