/* Point 7 of issue 10: a worker keeps its AMQP connection healthy while its
 * job runs. With a heartbeat of HEARTBEAT_S seconds and a job of more than
 * three intervals, RabbitMQ must log no missed heartbeat for the platform's
 * connections, and rabbitmqctl must list the same connections (peer ports)
 * before and after the job: no connection was closed and reopened. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "platform_fixture.h"
#include "recording_executor.h"

#define HEARTBEAT_S 2
#define JOB_MS      (4 * HEARTBEAT_S * 1000)
#define MAX_CONNS   8
/* A publisher and one worker. */
#define PLATFORM_CONNS 2

static stack_env env;

/* A setting the test cannot do without: a failure when services are
 * required, else a skip (like stack_env_load). */
static const char *required_env(const char *name)
{
    const char *value = getenv(name);
    if (value && *value)
        return value;
    const char *require = getenv("ACP_TEST_REQUIRE_SERVICES");
    if (require && strcmp(require, "1") == 0)
        fail_msg("%s is not set: run through meson test with eval \"$(scripts/stack env)\"", name);
    skip();
    return NULL;
}

/* Peer ports of the connections named "async-platform <queue>_jobs", as
 * rabbitmqctl lists them; returns how many. */
static size_t list_ports(const char *queue, long ports[MAX_CONNS])
{
    char command[1024];
    snprintf(command, sizeof command,
             "%s/scripts/stack rabbitmqctl -q list_connections peer_port client_properties "
             "2>/dev/null",
             required_env("ACP_SOURCE_ROOT"));
    FILE *list = popen(command, "r");
    assert_non_null(list);
    /* The connection_name that broker_connect() sends. */
    char name[80], line[4096];
    snprintf(name, sizeof name, "\"async-platform %s_jobs\"", queue);
    size_t n = 0;
    while (fgets(line, sizeof line, list))
        if (strstr(line, name) && n < MAX_CONNS)
            ports[n++] = atol(line);
    pclose(list);
    for (size_t i = 1; i < n; i++) /* sorted, to compare two listings */
        for (size_t j = i; j > 0 && ports[j - 1] > ports[j]; j--) {
            long t = ports[j];
            ports[j] = ports[j - 1];
            ports[j - 1] = t;
        }
    return n;
}

/* Wait (a hang guard of 30 listings) until the platform's connections are
 * all listed. */
static size_t await_ports(const char *queue, long ports[MAX_CONNS])
{
    size_t n = 0;
    for (int tries = 0; tries < 30; tries++) {
        if ((n = list_ports(queue, ports)) == PLATFORM_CONNS)
            return n;
        fixture_sleep_ms(500);
    }
    fail_msg("rabbitmqctl lists %zu connection(s) of queue %s, expected %d", n, queue,
             PLATFORM_CONNS);
    return n;
}

static long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        fail_msg("cannot read the RabbitMQ log %s", path);
    return (long)st.st_size;
}

/* The first "missed heartbeats" entry written to @path after @offset that
 * names one of @ports ("127.0.0.1:<port> -> ..."), or NULL. Returns a
 * malloc'd copy of the entry. */
static char *missed_heartbeat(const char *path, long offset, const long *ports, size_t count)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long size = file_size(path);
    char *text = calloc(1, (size_t)(size - offset) + 1);
    assert_non_null(text);
    fseek(f, offset, SEEK_SET);
    size_t got = fread(text, 1, (size_t)(size - offset), f);
    text[got] = '\0';
    fclose(f);
    char *found = NULL;
    for (char *hit = strstr(text, "missed heartbeats"); hit && !found;
         hit = strstr(hit + 1, "missed heartbeats")) {
        /* RabbitMQ writes "closing AMQP connection <pid> (<peer> -> <us>):"
         * and the reason on the next line: the entry starts a line earlier. */
        char *start = hit;
        for (int lines = 0; start > text && lines < 2; lines += start[-1] == '\n', start--)
            ;
        for (size_t i = 0; i < count && !found; i++) {
            char peer[32];
            snprintf(peer, sizeof peer, ":%ld -> ", ports[i]);
            char *p = strstr(start, peer);
            if (p && p < hit)
                found = strndup(start, (size_t)(hit - start) + 50);
        }
    }
    free(text);
    return found;
}

static void worker_connection_survives_a_long_job(void **state)
{
    (void)state;
    const char *log_path = required_env("ACP_TEST_AMQP_LOG");
    long log_offset = file_size(log_path);

    char tag[9];
    fixture_tag(tag);
    fixture_config fc;
    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.queues[0].heartbeat = HEARTBEAT_S;
    acp_platform *p;
    if (acp_init(&p, &fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
    long before[MAX_CONNS], after[MAX_CONNS];
    size_t n_before = await_ports(fc.queue_ids[0], before);

    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"mode\":\"sleep\",\"ms\":%d}", tag, JOB_MS);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job;
    if (acp_submit(p, fc.queue_ids[0], &sub, &job) != 0)
        fail_msg("submit: %s", acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    if (!fixture_wait_status(p, &id, ACP_STATUS_COMPLETE, FIXTURE_WAIT_S, &job))
        fail_msg("the job did not complete (is %s)", acp_job_status_name(job.status));
    acp_job_clear(&job);
    assert_int_equal(recording_runs(&id), 1);

    size_t n_after = await_ports(fc.queue_ids[0], after);
    char *missed = missed_heartbeat(log_path, log_offset, before, n_before);
    if (missed) {
        fprintf(stderr, "# RabbitMQ log: %s\n", missed);
        free(missed);
        fail_msg("RabbitMQ logged missed heartbeats for a connection of queue %s during a job "
                 "of %d ms (heartbeat %d s)",
                 fc.queue_ids[0], JOB_MS, HEARTBEAT_S);
    }
    for (size_t i = 0; i < n_before; i++)
        if (i >= n_after || before[i] != after[i])
            fail_msg("the connections of queue %s changed during the job: peer ports %ld, %ld "
                     "before, %ld, %ld after",
                     fc.queue_ids[0], before[0], before[1], after[0], after[1]);
    acp_shutdown(p);
    recording_reset();
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worker_connection_survives_a_long_job),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
