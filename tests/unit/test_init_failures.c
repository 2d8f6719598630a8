/* Point 9 of issue 10: acp_init (and objects_open) check every
 * pthread_mutex_init and pthread_cond_init, and fail cleanly with a clear
 * error: nothing leaks (run under valgrind), nothing half-made is returned.
 * The failures are injected with -Wl,--wrap on the internal library. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "objects.h"

/* Which call fails (1 = the first from now on; 0 = none), and the count. */
static int mutex_fail_at, mutex_calls, cond_fail_at, cond_calls;

int __real_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a);
int __wrap_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a);
int __real_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a);
int __wrap_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a);

int __wrap_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a)
{
    if (++mutex_calls == mutex_fail_at)
        return EAGAIN;
    return __real_pthread_mutex_init(m, a);
}

int __wrap_pthread_cond_init(pthread_cond_t *c, const pthread_condattr_t *a)
{
    if (++cond_calls == cond_fail_at)
        return ENOMEM;
    return __real_pthread_cond_init(c, a);
}

static void inject(int mutex_at, int cond_at)
{
    mutex_calls = cond_calls = 0;
    mutex_fail_at = mutex_at;
    cond_fail_at = cond_at;
}

static int create_nothing(void *userdata, acp_job_context *ctx, acp_executor **out)
{
    (void)userdata;
    (void)ctx;
    (void)out;
    return -1;
}

static const acp_executor_factory factory = {ACP_EXECUTOR_FACTORY_VERSION, NULL, create_nothing,
                                             NULL};

static acp_config config;
static acp_queue_config queues[2];

/* Valid, but nothing listens: init gets no further than its first
 * connection when no failure stops it before. */
static int setup(void **state)
{
    (void)state;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    config.db.host = "127.0.0.1";
    config.db.port = 1;
    config.db.dbname = "jobs";
    config.db.user = "svc";
    config.db.password = "secret";
    config.s3.host = "127.0.0.1";
    config.s3.port = 1;
    config.s3.bucket = "results";
    config.s3.access_key = "AK";
    config.s3.secret_key = "SK";
    config.workspace_root = "/tmp/acp-unit-init-failures";
    const char *ids[] = {"render", "index"};
    for (int i = 0; i < 2; i++) {
        acp_queue_config_init(&queues[i], ACP_QUEUE_CONFIG_VERSION);
        queues[i].id = ids[i];
        queues[i].host = "127.0.0.1";
        queues[i].port = 1;
        queues[i].user = "guest";
        queues[i].password = "guest";
    }
    config.queues = queues;
    config.queue_count = 2;
    config.executor_factory = &factory;
    config.log_level = ACP_LOG_ERROR;
    return 0;
}

static void expect_init_fails(const char *text)
{
    acp_platform *p = (acp_platform *)&config; /* must be reset to NULL */
    int rc = acp_init(&p, &config);
    inject(0, 0);
    const char *message = acp_last_error();
    if (rc != ACP_ENOMEM || !strstr(message, text))
        fail_msg("acp_init returned %d (%s), expected ACP_ENOMEM naming '%s'", rc, message, text);
    assert_null(p);
}

static void unchecked_init_platform_mutex_fails_init(void **state)
{
    (void)state;
    inject(1, 0);
    expect_init_fails("mutex");
}

static void unchecked_init_platform_cond_fails_init(void **state)
{
    (void)state;
    inject(0, 1);
    expect_init_fails("condition variable");
}

static void unchecked_init_queue_mutex_fails_init(void **state)
{
    (void)state;
    inject(4, 0); /* the platform's two, the first queue's, then the second queue's */
    expect_init_fails("queue 'index'");
}

static void unchecked_init_objects_mutex_fails_open(void **state)
{
    (void)state;
    objects *obj = (objects *)&config;
    inject(1, 0);
    acp_s3_client_config client = config.s3_client;
    client.signature = ACP_S3_SIGNATURE_V2; /* the libs3 transport's mutex */
    int rc = objects_open(&obj, &config.s3, &client, NULL);
    inject(0, 0);
    if (rc != ACP_ENOMEM || !strstr(acp_last_error(), "mutex"))
        fail_msg("objects_open returned %d (%s), expected ACP_ENOMEM naming a mutex", rc,
                 acp_last_error());
    if (rc == 0)
        objects_close(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(unchecked_init_platform_mutex_fails_init, setup),
        cmocka_unit_test_setup(unchecked_init_platform_cond_fails_init, setup),
        cmocka_unit_test_setup(unchecked_init_queue_mutex_fails_init, setup),
        cmocka_unit_test_setup(unchecked_init_objects_mutex_fails_open, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
