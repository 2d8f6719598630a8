/* Large files uploaded in parts (objects_upload.c) through the fake S3
 * transport: parts, parallelism, retries of one part, and that a failed
 * upload is aborted so that no part is left behind. No services. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "async_platform.h"
#include "fake_transport.h"
#include "fault.h"
#include "objects.h"

#define MIB (1u << 20)

static atomic_int warnings;

static void quiet_log(void *userdata, acp_log_level level, const char *message)
{
    (void)userdata;
    (void)message;
    if (level >= ACP_LOG_WARN)
        atomic_fetch_add(&warnings, 1);
}

static const logger test_log = {.fn = quiet_log, .level = ACP_LOG_DEBUG};

typedef struct fx {
    fault_plan plan;
    fake_transport *fake;
    objects *obj;
    acp_job_id id;
    char key[128]; /* of "big.bin" */
    int fd;        /* a file of @size bytes of a known pattern */
    size_t size;
} fx;

/* 5 MiB parts (S3's smallest), a 5 MiB threshold, 3 parts at once,
 * retries without waiting long. */
static acp_s3_client_config small_parts(void)
{
    acp_config config;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    acp_s3_client_config client = config.s3_client;
    client.multipart_threshold = 5 * MIB;
    client.part_size = 5 * MIB;
    client.upload_parallelism = 3;
    client.retry_base_ms = 1;
    client.retry_max_ms = 5;
    return client;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 20) * 7);
}

static void fx_file(fx *f, size_t size)
{
    char path[] = "/tmp/acp-mpu-XXXXXX";
    f->fd = mkstemp(path);
    assert_true(f->fd >= 0);
    unlink(path);
    unsigned char *data = malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++)
        data[i] = pattern(i);
    assert_int_equal(write(f->fd, data, size), (ssize_t)size);
    free(data);
    f->size = size;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    fault_plan_init(&f->plan);
    f->fake = fake_transport_new(&f->plan);
    acp_s3_client_config client = small_parts();
    if (objects_open_transport(&f->obj, fake_transport_base(f->fake), "big", &client, &test_log))
        fail_msg("objects_open_transport: %s", acp_last_error());
    assert_int_equal(acp_job_id_generate(&f->id), 0);
    char hex[ACP_JOB_ID_STRLEN];
    snprintf(f->key, sizeof f->key, "big/%s/big.bin", acp_job_id_format(&f->id, hex));
    f->fd = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    objects_close(f->obj);
    fault_plan_destroy(&f->plan);
    if (f->fd >= 0)
        close(f->fd);
    free(f);
    return 0;
}

static uint64_t requests(const fx *f, int kind)
{
    uint64_t counts[OBJECTS_KINDS];
    objects_request_counts(f->obj, counts);
    return counts[kind];
}

static void assert_object_is_the_file(fx *f)
{
    size_t len = 0;
    unsigned char *bytes = fake_transport_bytes(f->fake, f->key, &len);
    assert_non_null(bytes);
    assert_int_equal(len, f->size);
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != pattern(i))
            fail_msg("byte %zu differs", i);
    free(bytes);
}

static void a_file_above_the_threshold_goes_up_in_parts(void **state)
{
    fx *f = *state;
    fx_file(f, 12 * MIB + 1); /* 5 + 5 + 2 MiB and a byte */
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), 0);
    /* create, three parts, complete */
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 5);
    assert_object_is_the_file(f);
    assert_int_equal(fake_transport_uploads(f->fake), 0);
}

/* Bytes in memory (an input given as data) go up in parts the same way. */
static void bytes_above_the_threshold_go_up_in_parts(void **state)
{
    fx *f = *state;
    f->size = 11 * MIB;
    unsigned char *data = malloc(f->size);
    for (size_t i = 0; i < f->size; i++)
        data[i] = pattern(i);
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put(f->obj, &f->id, "big.bin", data, f->size), 0);
    free(data);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 5); /* create, 5 + 5 + 1 MiB, complete */
    assert_object_is_the_file(f);
    assert_int_equal(fake_transport_uploads(f->fake), 0);
}

static void a_file_at_the_threshold_goes_up_in_one_put(void **state)
{
    fx *f = *state;
    fx_file(f, 5 * MIB);
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), 0);
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 1);
    assert_object_is_the_file(f);
}

static void a_part_that_fails_for_a_while_is_retried_alone(void **state)
{
    fx *f = *state;
    fx_file(f, 16 * MIB);
    fault_rule twice = {
        .op = "s3.mpu_part", .nth = 2, .times = 2, .error = ACP_ESTORAGE, .kind = FAKE_S3_SLOWDOWN};
    fault_plan_add(&f->plan, twice);
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), 0);
    /* create, four parts, two retries of the second, complete */
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 8);
    assert_object_is_the_file(f);
    assert_int_equal(fake_transport_uploads(f->fake), 0);
}

static void a_failed_part_aborts_the_upload(void **state)
{
    fx *f = *state;
    fx_file(f, 16 * MIB);
    fault_rule denied = {.op = "s3.mpu_part", .nth = 3, .error = ACP_ESTORAGE, .kind = FAKE_S3_403};
    fault_plan_add(&f->plan, denied);
    uint64_t deletes = requests(f, OBJECTS_DELETE);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), ACP_ESTORAGE);
    assert_non_null(strstr(acp_last_error(), "access denied"));
    assert_non_null(strstr(acp_last_error(), "PUT part"));
    assert_false(fake_transport_exists(f->fake, f->key));
    /* aborted: nothing left to pay for */
    assert_int_equal(fake_transport_uploads(f->fake), 0);
    assert_int_equal(requests(f, OBJECTS_DELETE) - deletes, 1);
}

static void parts_that_keep_failing_abort_the_upload(void **state)
{
    fx *f = *state;
    fx_file(f, 11 * MIB);
    fault_rule always = {
        .op = "s3.mpu_part", .nth = 1, .times = 100, .error = ACP_ESTORAGE, .kind = FAKE_S3_503};
    fault_plan_add(&f->plan, always);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), ACP_ESTORAGE);
    assert_int_equal(fake_transport_uploads(f->fake), 0);
    assert_false(fake_transport_exists(f->fake, f->key));
}

static void a_failed_complete_aborts_the_upload(void **state)
{
    fx *f = *state;
    fx_file(f, 11 * MIB);
    fault_rule bad = {
        .op = "s3.mpu_complete", .nth = 1, .error = ACP_ESTORAGE, .kind = FAKE_S3_400};
    fault_plan_add(&f->plan, bad);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), ACP_ESTORAGE);
    assert_non_null(strstr(acp_last_error(), "complete multipart upload"));
    assert_int_equal(fake_transport_uploads(f->fake), 0);
    assert_false(fake_transport_exists(f->fake, f->key));
}

/* The reason is kept when the abort fails too; the parts stay (logged). */
static void a_failed_abort_keeps_the_reason(void **state)
{
    fx *f = *state;
    fx_file(f, 11 * MIB);
    fault_rule part = {.op = "s3.mpu_part", .nth = 1, .error = ACP_ESTORAGE, .kind = FAKE_S3_403};
    fault_rule abort_ = {
        .op = "s3.mpu_abort", .nth = 1, .error = ACP_ESTORAGE, .kind = FAKE_S3_403};
    fault_plan_add(&f->plan, part);
    fault_plan_add(&f->plan, abort_);
    int before = atomic_load(&warnings);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), ACP_ESTORAGE);
    assert_non_null(strstr(acp_last_error(), "PUT part"));
    assert_int_equal(fake_transport_uploads(f->fake), 1);
    assert_true(atomic_load(&warnings) > before);
}

static void *truncate_soon(void *arg)
{
    fx *f = arg;
    usleep(50 * 1000);
    if (ftruncate(f->fd, 7 * MIB) != 0)
        abort();
    return NULL;
}

/* A file that shrinks while it is uploaded is an error, not a corrupt
 * object, and its upload is aborted. */
static void a_file_that_shrinks_meanwhile_fails_cleanly(void **state)
{
    fx *f = *state;
    fx_file(f, 16 * MIB);
    /* The size is taken, then the file loses its tail while the upload is
     * being started. */
    fault_rule slow = {.op = "s3.mpu_create", .nth = 1, .delay_ms = 400};
    fault_plan_add(&f->plan, slow);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, truncate_soon, f), 0);
    int rc = objects_put_fd(f->obj, &f->id, "big.bin", f->fd);
    pthread_join(thread, NULL);
    assert_int_equal(rc, ACP_EIO);
    assert_non_null(strstr(acp_last_error(), "changed while uploading"));
    assert_int_equal(fake_transport_uploads(f->fake), 0);
    assert_false(fake_transport_exists(f->fake, f->key));
}

static void without_multipart_a_file_over_5_gib_is_refused(void **state)
{
    fx *f = *state;
    char path[] = "/tmp/acp-mpu-XXXXXX";
    f->fd = mkstemp(path);
    unlink(path);
    assert_int_equal(ftruncate(f->fd, (off_t)(5ull << 30) + 1), 0); /* sparse */
    fake_transport_base(f->fake)->caps &= ~(unsigned)TRANSPORT_CAPS_MULTIPART;
    uint64_t puts = requests(f, OBJECTS_PUT);
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), ACP_ETOOBIG);
    assert_non_null(strstr(acp_last_error(), "cannot upload in parts"));
    assert_int_equal(requests(f, OBJECTS_PUT) - puts, 0);
}

static void a_file_over_5_tib_is_refused(void **state)
{
    fx *f = *state;
    char path[] = "/tmp/acp-mpu-XXXXXX";
    f->fd = mkstemp(path);
    unlink(path);
    if (ftruncate(f->fd, (off_t)(5ull << 40) + 1) != 0)
        fail_msg("cannot make a sparse 5 TiB file here");
    assert_int_equal(objects_put_fd(f->obj, &f->id, "big.bin", f->fd), ACP_ETOOBIG);
    assert_non_null(strstr(acp_last_error(), "5 TiB"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_file_above_the_threshold_goes_up_in_parts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bytes_above_the_threshold_go_up_in_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_at_the_threshold_goes_up_in_one_put, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_part_that_fails_for_a_while_is_retried_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_failed_part_aborts_the_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(parts_that_keep_failing_abort_the_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_complete_aborts_the_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_abort_keeps_the_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(a_file_that_shrinks_meanwhile_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(without_multipart_a_file_over_5_gib_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_file_over_5_tib_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
