/* Dispatching job messages to the queues' brokers. */
#ifndef ACP_DISPATCH_H
#define ACP_DISPATCH_H

#include "platform_state.h"

/* Connect @q's publisher and declare the queue: proves the broker and the
 * credentials (acp_init calls it before any thread starts). */
int dispatch_declare(acp_platform *p, queue_rt *q);

/* Publish the job message for @id to its queue, reconnecting the queue's
 * publisher once if needed. The caller clears the row's dispatched time when
 * this fails, so that the maintenance thread retries. */
int dispatch_publish(acp_platform *p, queue_rt *q, const acp_job_id *id, const char *config);

/* Publish the messages of the jobs in @list again (@why says why, in the
 * log): a job of a queue this process does not serve is left to one that
 * does; a job whose message cannot be made is failed; a failed publish is
 * retried later, waiting longer each time. */
void dispatch_republish(acp_platform *p, const store_dispatch_list *list, const char *why);

/* Answer the broker's heartbeats on every idle publisher connection (the
 * maintenance thread calls this every tick): RabbitMQ closes a connection
 * that stays silent for two heartbeat intervals. */
void dispatch_keep_publishers(acp_platform *p);

#endif
