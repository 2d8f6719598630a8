/* acp_strerror for every code and the thread-local acp_last_error. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "async_platform.h"
#include "error.h"

static void every_code_has_its_own_description(void **state)
{
    (void)state;
    const struct {
        int code;
        const char *text;
    } expected[] = {
        {ACP_OK, "success"},
        {ACP_EINVAL, "invalid argument"},
        {ACP_ENOMEM, "out of memory"},
        {ACP_ENOTFOUND, "job not found"},
        {ACP_EUNOWNED, "job is owned by another service"},
        {ACP_ECONFLICT, "conflict with the job's state or owner"},
        {ACP_EBUSY, "job is running"},
        {ACP_EDB, "database error"},
        {ACP_EBROKER, "message broker error"},
        {ACP_ESTORAGE, "object storage error"},
        {ACP_EIO, "local file system error"},
        {ACP_EVERSION, "unsupported structure version"},
        {ACP_ENOQUEUE, "unknown queue"},
        {ACP_ESHUTDOWN, "platform is shutting down"},
        {ACP_ETOOBIG, "input too large"},
        {ACP_EUSER, "a callback failed"},
    };
    size_t n = sizeof expected / sizeof expected[0];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(expected[i].code, -(int)i); /* codes are dense and stable */
        assert_string_equal(acp_strerror(expected[i].code), expected[i].text);
    }
    assert_string_equal(acp_strerror(-(int)n), "unknown error code");
    assert_string_equal(acp_strerror(1), "unknown error code");
    assert_string_equal(acp_strerror(-100000), "unknown error code");
}

static void *fail_on_other_thread(void *arg)
{
    (void)arg;
    static char seen[256];
    /* A new thread starts without a message, whatever other threads did. */
    strncpy(seen, acp_last_error(), sizeof seen - 1);
    error_set(ACP_EDB, "other thread's failure");
    return seen;
}

static void last_error_is_per_thread_and_never_null(void **state)
{
    (void)state;
    acp_job_id id;
    assert_int_equal(acp_job_id_parse(&id, "xyz"), ACP_EINVAL);
    assert_string_equal(acp_last_error(), "job id: expected 32 hexadecimal characters, got 3");

    pthread_t thread;
    void *seen;
    assert_int_equal(pthread_create(&thread, NULL, fail_on_other_thread, NULL), 0);
    assert_int_equal(pthread_join(thread, &seen), 0);
    assert_string_equal((const char *)seen, "no error");
    assert_string_equal(acp_last_error(), "job id: expected 32 hexadecimal characters, got 3");

    /* Long details are truncated, not overflowed. */
    char longname[3000];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(error_set(ACP_EIO, "%s", longname), ACP_EIO);
    assert_true(strlen(acp_last_error()) < 1024);

    assert_int_equal(error_set(ACP_EDB, "connection refused"), ACP_EDB);
    assert_int_equal(error_prefix(ACP_EDB, "postgres 127.0.0.1:5432"), ACP_EDB);
    assert_string_equal(acp_last_error(), "postgres 127.0.0.1:5432: connection refused");
}

static void *describe_on_other_thread(void *arg)
{
    (void)arg;
    return (void *)error_strerror(23456);
}

/* Point 9 of issue 10: the errno text of one thread survives another
 * thread's call (an unknown errno is formatted into the buffer that plain
 * strerror would share between threads). */
static void strerror_text_is_per_thread(void **state)
{
    (void)state;
    const char *mine = error_strerror(12345);
    assert_non_null(strstr(mine, "12345"));
    pthread_t thread;
    void *theirs;
    assert_int_equal(pthread_create(&thread, NULL, describe_on_other_thread, NULL), 0);
    assert_int_equal(pthread_join(thread, &theirs), 0);
    assert_non_null(strstr(mine, "12345"));
    assert_string_equal(error_strerror(ENOENT), "No such file or directory");
}

/* Point 5 of issue 12: a failure taken into an error_info keeps its text
 * whatever the thread's message becomes later, until it is raised. */
static void error_info_keeps_a_failure_until_it_is_raised(void **state)
{
    (void)state;
    error_info err = {0};
    error_set(ACP_ESTORAGE, "S3 127.0.0.1:7480: PUT x: slow down");
    assert_int_equal(error_info_take(&err, ACP_ESTORAGE), ACP_ESTORAGE);
    error_set(ACP_EDB, "cleaning up: connection refused"); /* a later step fails too */
    assert_int_equal(error_info_prefix(&err, "submitting job 00ff"), ACP_ESTORAGE);
    assert_string_equal(acp_last_error(), "cleaning up: connection refused");
    assert_int_equal(err.code, ACP_ESTORAGE);
    assert_int_equal(error_raise(&err), ACP_ESTORAGE);
    assert_string_equal(acp_last_error(),
                        "submitting job 00ff: S3 127.0.0.1:7480: PUT x: slow down");

    assert_int_equal(error_info_set(&err, ACP_EINVAL, "submission.inputs[%d]: bad", 3), ACP_EINVAL);
    assert_int_equal(error_raise(&err), ACP_EINVAL);
    assert_string_equal(acp_last_error(), "submission.inputs[3]: bad");

    /* Without a message the prefix goes before the code's description, as
     * error_prefix does. */
    error_info empty = {.code = ACP_EDB};
    assert_int_equal(error_info_prefix(&empty, "submission.config"), ACP_EDB);
    assert_string_equal(empty.message, "submission.config: database error");

    /* Long texts are truncated, not overflowed. */
    char longname[3000];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    error_info_set(&err, ACP_EIO, "%s", longname);
    assert_int_equal(strlen(err.message), ERROR_MESSAGE_MAX - 1);
    error_info_prefix(&err, "prefix");
    assert_int_equal(strncmp(err.message, "prefix: xxx", 11), 0);
    assert_int_equal(error_raise(&err), ACP_EIO);
    assert_int_equal(strlen(acp_last_error()), ERROR_MESSAGE_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_its_own_description),
        cmocka_unit_test(last_error_is_per_thread_and_never_null),
        cmocka_unit_test(strerror_text_is_per_thread),
        cmocka_unit_test(error_info_keeps_a_failure_until_it_is_raised),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
