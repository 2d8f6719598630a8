/* Shared set-up for tests that run whole platforms against the stack: a
 * configuration from the ACP_TEST_* settings with queue ids, an S3 root and a
 * scratch root unique to the run, a recording executor, and helpers that
 * wait for a job's status with a generous bound (a hang guard, not a timing
 * assertion). */
#ifndef ACP_TEST_PLATFORM_FIXTURE_H
#define ACP_TEST_PLATFORM_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "async_platform.h"
#include "objects.h"
#include "stack_env.h"

#define FIXTURE_MAX_QUEUES 4

typedef struct fixture_config {
    acp_config config;
    acp_queue_config queues[FIXTURE_MAX_QUEUES];
    char queue_ids[FIXTURE_MAX_QUEUES][40];
    char root_path[80];
    char workspace_root[128];
    char db_port_storage[8];
} fixture_config;

/* How long tests wait for a job's status before failing: a guard against a
 * hang, not a timing assertion, so generous enough for sanitizer and
 * valgrind builds on a loaded machine. */
#define FIXTURE_WAIT_S 180

/* @run_tag makes names unique to this test run; queue ids are
 * "<prefix><i>-<run_tag>". */
void fixture_config_make(fixture_config *fc, const stack_env *env, const char *run_tag,
                         size_t queue_count, int workers, const acp_executor_factory *factory);

/* Poll acp_get_job until the job has @status or @timeout_s passes; returns
 * true on success and leaves the last state in @job (cleared first). */
bool fixture_wait_status(acp_platform *p, const acp_job_id *id, acp_job_status status,
                         int timeout_s, acp_job *job);

/* Poll @raw until the job's object @name exists (an lcp status flag follows
 * the row's commit by a moment): 0 when it does, 1 when FIXTURE_WAIT_S
 * passed without it, or objects_stat's error. */
int fixture_wait_object(objects *raw, const acp_job_id *id, const char *name);

/* An acp_executor_factory.create whose executors run the acp_executor_ops
 * given as the factory's userdata: for tests with an executor of their own,
 * {ACP_EXECUTOR_FACTORY_VERSION, (void *)&ops, fixture_ops_create, NULL}. */
int fixture_ops_create(void *ops, acp_job_context *ctx, acp_executor **out);

/* In a child process of a test: a platform of one queue and one worker with
 * @factory, a 3 s lease and warnings only, started in @fc. Returns it, or
 * NULL after printing why to stderr. */
acp_platform *fixture_child_platform(fixture_config *fc, const stack_env *env, const char *tag,
                                     const acp_executor_factory *factory);

/* In a child process: submit @config to @p's first queue of @fc; 0 with
 * *@id set, or -1 with the reason on stderr. */
int fixture_child_submit(acp_platform *p, const fixture_config *fc, const char *config,
                         acp_job_id *id);

/* Start @self (this test program) again as "<self> <mode> <tag>", its
 * standard output a pipe read through *@from_child (fclose it). Returns
 * the child's pid, or -1 with the reason on stderr. */
int fixture_spawn_self(const char *self, const char *mode, const char *tag, FILE **from_child);

/* fixture_spawn_self, then read the child's first line, "running <id>",
 * into *@id: a child that runs a job and says which. Returns the child's
 * pid, or -1 (the reason on stderr; a child that said nothing is killed
 * and reaped). */
int fixture_spawn_job_child(const char *self, const char *mode, const char *tag, FILE **from_child,
                            acp_job_id *id);

/* Submit {"mode":"<mode>","n":"<tag>-<n>"} (a config unique to the run)
 * to @queue with @sub's other fields (NULL: the defaults) into *@id.
 * Returns 0, or -1 with acp_last_error() on stderr. */
int fixture_submit_mode(acp_platform *p, const char *queue, const char *mode, const char *tag,
                        int n, acp_submission *sub, acp_job_id *id);

/* Run @sql (CREATE or DROP DATABASE, which cannot run in a transaction)
 * through a connection of its own to the stack's database; fails the test
 * on an error. */
void fixture_stack_db_exec(const stack_env *env, const char *sql);

/* A random tag of 8 hex characters. */
void fixture_tag(char out[9]);

/* The wall clock in microseconds since the epoch (to compare with times
 * the library reports) and the monotonic clock in milliseconds (for every
 * wait). */
int64_t fixture_wall_us(void);
int64_t fixture_mono_ms(void);

/* Milliseconds of sleep. */
void fixture_sleep_ms(int ms);

/* Log sink that collects lines in memory (thread-safe) and echoes warnings. */
void fixture_log(void *userdata, acp_log_level level, const char *message);
/* True when any collected line contains both @a and @b (b may be NULL). */
bool fixture_log_contains(const char *a, const char *b);
void fixture_log_reset(void);

#endif
