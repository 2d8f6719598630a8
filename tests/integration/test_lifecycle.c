/* The job life cycle end to end against the real services: submit, queue,
 * execute, persist, get, results; failures, resubmission, bad input,
 * concurrency and duplicate deliveries. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker.h"
#include "broker_amqp.h"
#include "job_message.h"
#include "md5.h"
#include "objects.h"
#include "platform_fixture.h"
#include "platform_state.h"
#include "recording_executor.h"

static stack_env env;
/* The layout of the next world, when a test needs one (else the suite's). */
static acp_layout forced_layout;

typedef struct world {
    fixture_config fc;
    char tag[9];
    acp_platform *p;
    objects *raw; /* the same bucket and root, to check the S3 layout */
} world;

static int start_world(void **state, size_t queues, int workers)
{
    world *w = calloc(1, sizeof *w);
    fixture_tag(w->tag);
    fixture_config_make(&w->fc, &env, w->tag, queues, workers, &recording_factory);
    if (forced_layout)
        w->fc.config.layout = forced_layout;
    if (acp_init(&w->p, &w->fc.config) != 0) {
        fprintf(stderr, "acp_init: %s\n", acp_last_error());
        free(w);
        return -1;
    }
    if (objects_open(&w->raw, &w->fc.config.s3, &w->fc.config.s3_client, NULL) != 0) {
        acp_shutdown(w->p);
        free(w);
        return -1;
    }
    *state = w;
    return 0;
}

static int setup_one_queue(void **state)
{
    return start_world(state, 1, 2);
}

/* For what only the lcp layout has: flags and other services' jobs. */
static int setup_one_lcp_queue(void **state)
{
    forced_layout = ACP_LAYOUT_LCP;
    int rc = start_world(state, 1, 2);
    forced_layout = ACP_LAYOUT_DEFAULT;
    return rc;
}

static int setup_serial_queue(void **state)
{
    return start_world(state, 1, 1);
}

static int teardown_world(void **state)
{
    world *w = *state;
    recording_release();
    acp_shutdown(w->p);
    objects_close(w->raw);
    recording_reset();
    free(w);
    return 0;
}

/* Configs get the run's tag as a first member, so that the ids derived from
 * them are new in every run of the suite. */
static const char *tagged(world *w, const char *config, char *out, size_t size)
{
    snprintf(out, size, "{\"tag\":\"%s\",%s", w->tag, config + 1);
    return out;
}

static acp_job_id submit_config(world *w, size_t queue, const char *config)
{
    char text[512];
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = tagged(w, config, text, sizeof text);
    acp_job job;
    if (acp_submit(w->p, w->fc.queue_ids[queue], &sub, &job) != 0)
        fail_msg("submit %s: %s", config, acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    return id;
}

static void expect_status(world *w, const acp_job_id *id, acp_job_status status, acp_job *job)
{
    if (!fixture_wait_status(w->p, id, status, FIXTURE_WAIT_S, job))
        fail_msg("job did not become %s (is %s, message %s)", acp_job_status_name(status),
                 acp_job_status_name(job->status), job->message ? job->message : "-");
}

static char *read_text(world *w, const acp_job_id *id, const char *name)
{
    void *data;
    size_t size;
    if (acp_read_result_buffer(w->p, id, name, 1 << 20, &data, &size) != 0)
        fail_msg("reading %s: %s", name, acp_last_error());
    return data;
}

/* The names in the workspace, raw, sorted, joined with ' '. */
static bool is_lcp(const world *w)
{
    return w->fc.config.layout == ACP_LAYOUT_LCP;
}

/* Assert the objects under the job's prefix: @lcp_names in the lcp layout;
 * in the native one the same without the marker, flags and input-config. */
static void workspace_names(world *w, const acp_job_id *id, char *out, size_t size);

static void expect_workspace(world *w, const acp_job_id *id, const char *lcp_names)
{
    char expected[1024] = "", names[1024];
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", lcp_names);
    for (char *save, *name = strtok_r(copy, " ", &save); name; name = strtok_r(NULL, " ", &save))
        if (is_lcp(w) || (name[0] != '.' && strcmp(name, "input-config") != 0)) {
            strncat(expected, name, sizeof expected - strlen(expected) - 2);
            strcat(expected, " ");
        }
    workspace_names(w, id, names, sizeof names);
    assert_string_equal(names, expected);
}

static void workspace_names(world *w, const acp_job_id *id, char *out, size_t size)
{
    object_list list;
    assert_int_equal(objects_list(w->raw, id, &list), 0);
    out[0] = '\0';
    for (size_t i = 0; i < list.count; i++) {
        strncat(out, list.items[i].name, size - strlen(out) - 2);
        strncat(out, " ", size - strlen(out) - 1);
        if (list.items[i].name[0] == '.')
            assert_int_equal(list.items[i].size, 0); /* flags and marker are empty */
    }
    object_list_free(&list);
}

/* ---- tests ------------------------------------------------------------ */

static void happy_path(void **state)
{
    world *w = *state;
    char input_path[] = "/tmp/acp-input-XXXXXX";
    int fd = mkstemp(input_path);
    assert_true(fd >= 0);
    char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7 + 3);
    assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);

    const char bytes[] = {'a', 0, 'b', '\n', (char)0xff};
    acp_input inputs[] = {
        {.name = "data.bin", .data = bytes, .size = sizeof bytes},
        {.name = "big.dat", .path = input_path},
    };
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    char config[128];
    snprintf(config, sizeof config, "{ \"mode\" : \"ok\", \"n\" : 1.50, \"tag\": \"%s\" }", w->tag);
    sub.config = config;
    sub.inputs = inputs;
    sub.input_count = 2;
    acp_job job;
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), 0);
    unlink(input_path);
    acp_job_id derived;
    assert_int_equal(acp_job_id_from_config(&derived, sub.config), 0);
    assert_true(acp_job_id_equal(&job.id, &derived)); /* no id given: derived from config */
    assert_int_equal(job.owned, 1);
    assert_string_equal(job.queue, w->fc.queue_ids[0]);
    assert_true(job.created > 0);
    acp_job_id id = job.id;

    expect_status(w, &id, ACP_STATUS_COMPLETE, &job);
    assert_int_equal(job.owned, 1);
    assert_null(job.message);
    assert_true(job.grabbed >= job.created && job.finished >= job.grabbed);
    assert_int_equal(job.attempts, 1);
    assert_int_equal(job.queue_position, -1);
    assert_int_equal(recording_runs(&id), 1);
    acp_job_clear(&job);

    /* The executor saw the id, the queue, the config and the inputs. */
    char expected[256], hex[ACP_JOB_ID_STRLEN];
    snprintf(expected, sizeof expected, "n=1.5 attempt=1 run=1 queue=%s id=%s\n",
             w->fc.queue_ids[0], acp_job_id_format(&id, hex));
    char *text = read_text(w, &id, "result.txt");
    assert_string_equal(text, expected);
    acp_free(text);
    char compact[128];
    snprintf(compact, sizeof compact, "{\"mode\":\"ok\",\"n\":1.5,\"tag\":\"%s\"}", w->tag);
    text = read_text(w, &id, "seen-config");
    assert_string_equal(text, compact);
    acp_free(text);
    void *data;
    size_t size;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "copy-data.bin", 100, &data, &size), 0);
    assert_int_equal(size, sizeof bytes);
    assert_memory_equal(data, bytes, sizeof bytes);
    acp_free(data);
    assert_int_equal(acp_read_result_buffer(w->p, &id, "copy-big.dat", 1 << 20, &data, &size), 0);
    assert_int_equal(size, sizeof big);
    assert_memory_equal(data, big, sizeof big);
    acp_free(data);

    /* Files listed with their sizes; reserved names hidden. */
    acp_result_list files;
    assert_int_equal(acp_get_results(w->p, &id, &files), 0);
    const char *names[] = {"big.dat",    "copy-big.dat", "copy-data.bin", "data.bin",
                           "result.txt", "run1.txt",     "seen-config"};
    assert_int_equal(files.count, 7);
    for (size_t i = 0; i < files.count; i++)
        assert_string_equal(files.files[i].name, names[i]);
    assert_int_equal(files.files[0].size, sizeof big);
    assert_int_equal(files.files[3].size, sizeof bytes);
    acp_result_list_clear(&files);

    /* Exactly upstream's layout (lcp), or the data alone (native). */
    expect_workspace(w, &id,
                     ".complete .in-progress .queued .workspace big.dat copy-big.dat "
                     "copy-data.bin data.bin input-config result.txt run1.txt seen-config");
    if (is_lcp(w)) {
        text = read_text(w, &id, "input-config");
        assert_string_equal(text, compact);
        acp_free(text);
    }

    /* The counters saw one run: claimed, acked, completed. */
    acp_stats stats = {.version = ACP_STATS_VERSION};
    assert_int_equal(acp_get_stats(w->p, &stats), 0);
    assert_int_equal(stats.jobs_submitted, 1);
    assert_int_equal(stats.jobs_started, 1);
    assert_int_equal(stats.jobs_completed, 1);
    assert_int_equal(stats.jobs_failed, 0);
    assert_int_equal(stats.messages_published, 1);
    assert_int_equal(stats.messages_acked, 1);
    assert_int_equal(stats.jobs_running, 0);
    assert_true(stats.sql_statements >= 4); /* insert, claim, finish, reads */
    if (is_lcp(w)) {
        assert_true(stats.s3_puts >= 8); /* marker, flags, config, inputs, results */
        assert_true(stats.s3_gets >= 2 && stats.s3_lists >= 1);
    } else {
        /* Inputs and results, and .acp-root, written once at the start. */
        assert_int_equal(stats.s3_puts, 2 + 5 + 1);
        assert_true(stats.s3_gets >= 2);
        assert_int_equal(stats.s3_lists, 1); /* the bucket's check at start, none per job */
        assert_int_equal(stats.s3_heads + stats.s3_deletes, 0);
    }
    stats.version = 99;
    assert_int_equal(acp_get_stats(w->p, &stats), ACP_EVERSION);

    /* The scratch directory is gone. */
    char scratch[300];
    snprintf(scratch, sizeof scratch, "%s/%s", w->fc.workspace_root, hex);
    assert_int_equal(access(scratch, F_OK), -1);
}

static void failures_keep_message_and_files(void **state)
{
    world *w = *state;
    acp_job job = {0};
    acp_job_id failed = submit_config(w, 0, "{\"mode\":\"fail\",\"n\":7}");
    acp_job_id no_executor = submit_config(w, 0, "{\"mode\":\"factory_fail\"}");

    expect_status(w, &failed, ACP_STATUS_FAILED, &job);
    assert_string_equal(job.message, "deliberate failure 7");
    assert_true(job.finished > 0);
    char *log = read_text(w, &failed, "error.log");
    assert_string_equal(log, "something went wrong\n");
    acp_free(log);
    char layout[1024];
    workspace_names(w, &failed, layout, sizeof layout);
    if (is_lcp(w)) {
        assert_non_null(strstr(layout, ".failed "));
        assert_null(strstr(layout, ".complete"));
    } else {
        assert_null(strchr(layout, '.') == layout ? layout : strstr(layout, " ."));
        assert_non_null(strstr(layout, "error.log "));
    }

    expect_status(w, &no_executor, ACP_STATUS_FAILED, &job);
    assert_string_equal(job.message, "no executor for this job");
    assert_int_equal(recording_runs(&no_executor), 0);
    acp_job_clear(&job);
}

static void resubmission(void **state)
{
    world *w = *state;
    acp_job job = {0};
    /* A blocked job: resubmitting it while queued or running runs nothing new. */
    acp_job_id blocked = submit_config(w, 0, "{\"mode\":\"block\",\"n\":1}");
    expect_status(w, &blocked, ACP_STATUS_IN_PROGRESS, &job);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    char config[128];
    sub.config = tagged(w, "{\"mode\":\"block\",\"n\":1}", config, sizeof config);
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    recording_release();
    expect_status(w, &blocked, ACP_STATUS_COMPLETE, &job);
    assert_int_equal(recording_runs(&blocked), 1);

    /* A complete job resubmitted runs again, and its old results go. */
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), 0);
    assert_int_equal(job.owned, 1);
    expect_status(w, &blocked, ACP_STATUS_COMPLETE, &job);
    assert_int_equal(recording_runs(&blocked), 2);
    assert_int_equal(job.attempts, 1);
    acp_result_list files;
    assert_int_equal(acp_get_results(w->p, &blocked, &files), 0);
    for (size_t i = 0; i < files.count; i++)
        assert_string_not_equal(files.files[i].name, "run1.txt");
    acp_result_list_clear(&files);
    char *text = read_text(w, &blocked, "run2.txt");
    acp_free(text);
    acp_job_clear(&job);
}

/* A caller-chosen id taken by another config: refused in every state, and
 * the job of that id is left as it was. */
static void job_id_of_another_config_is_refused(void **state)
{
    world *w = *state;
    acp_job job = {0};
    char victim_text[256], squat_text[256];
    acp_job_id id;
    acp_job_id_generate(&id);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.id = &id;
    sub.config = tagged(w, "{\"mode\":\"fail\",\"n\":\"victim\"}", victim_text, sizeof victim_text);
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), 0);
    acp_job_clear(&job);
    expect_status(w, &id, ACP_STATUS_FAILED, &job);
    acp_job_clear(&job);

    acp_submission squat = sub;
    squat.config = tagged(w, "{\"mode\":\"ok\",\"n\":\"squatter\"}", squat_text, sizeof squat_text);
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &squat, &job), ACP_ECONFLICT);
    assert_non_null(strstr(acp_last_error(), "exists with another config"));
    assert_int_equal(acp_get_job(w->p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_int_equal(recording_runs(&id), 1);
    acp_job_clear(&job);
    squat.config = NULL; /* no config is another config too */
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &squat, &job), ACP_ECONFLICT);

    /* The same config (in another spelling: it is compared compacted)
     * re-runs the failed job, as before. */
    char spaced[300];
    snprintf(spaced, sizeof spaced, "{ \"tag\" : \"%s\", \"mode\" : \"fail\", \"n\" : \"victim\" }",
             w->tag);
    sub.config = spaced;
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), 0);
    acp_job_clear(&job);
    expect_status(w, &id, ACP_STATUS_FAILED, &job);
    assert_int_equal(recording_runs(&id), 2);
    acp_job_clear(&job);
}

/* A FIFO or a symbolic link named as a result neither hangs the worker nor
 * is kept, and a scratch tree deeper than any recursion bound is removed
 * all the same (it used to be left for ever past 128 levels). */
static void outputs_and_scratch_trees_cannot_trap_a_worker(void **state)
{
    world *w = *state;
    acp_job job = {0};
    acp_job_id id = submit_config(w, 0, "{\"mode\":\"traps\",\"n\":\"traps\"}");
    expect_status(w, &id, ACP_STATUS_COMPLETE, &job);
    acp_result_list files;
    assert_int_equal(acp_get_results(w->p, &id, &files), 0);
    for (size_t i = 0; i < files.count; i++) {
        assert_string_not_equal(files.files[i].name, "fifo.txt");
        assert_string_not_equal(files.files[i].name, "link.txt");
    }
    acp_result_list_clear(&files);
    char hex[ACP_JOB_ID_STRLEN], scratch[256];
    snprintf(scratch, sizeof scratch, "%s/%s.1", w->fc.workspace_root, acp_job_id_format(&id, hex));
    /* Removed after the run is recorded: give the worker a moment. */
    struct stat st;
    for (int waited = 0; lstat(scratch, &st) == 0 && waited < FIXTURE_WAIT_S * 1000; waited += 50)
        fixture_sleep_ms(50);
    if (lstat(scratch, &st) == 0)
        fail_msg("the scratch directory %s of a deep tree is still there", scratch);
    acp_job_clear(&job);
}

static void queued_jobs_report_their_position(void **state)
{
    world *w = *state; /* one worker */
    acp_job job = {0};
    acp_job_id first = submit_config(w, 0, "{\"mode\":\"block\",\"n\":\"pos1\"}");
    expect_status(w, &first, ACP_STATUS_IN_PROGRESS, &job);
    acp_job_id second = submit_config(w, 0, "{\"mode\":\"ok\",\"n\":\"pos2\"}");
    acp_job_id third = submit_config(w, 0, "{\"mode\":\"ok\",\"n\":\"pos3\"}");
    assert_int_equal(acp_get_job(w->p, &second, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    assert_int_equal(job.queue_position, 0);
    int64_t accessed = job.last_accessed;
    acp_job_clear(&job);
    assert_int_equal(acp_get_job(w->p, &third, &job), 0);
    assert_int_equal(job.queue_position, 1);
    acp_job_clear(&job);
    /* Reading a job is an access. */
    fixture_sleep_ms(10);
    assert_int_equal(acp_get_job(w->p, &second, &job), 0);
    assert_true(job.last_accessed > accessed);
    recording_release();
    expect_status(w, &third, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);
}

/* Two workers, one on a job that does not end until the test says so: a
 * message that RabbitMQ pushes to that worker meanwhile (round robin, as
 * its consumer has room once the job's message is acked) is handed back
 * once the job outlives the worker's grace, and the other worker runs it
 * while the first job still runs. */
static void a_running_job_holds_no_message_back(void **state)
{
    world *w = *state; /* two workers */
    acp_job job = {0};
    acp_job_id blocked = submit_config(w, 0, "{\"mode\":\"block\",\"n\":\"held\"}");
    expect_status(w, &blocked, ACP_STATUS_IN_PROGRESS, &job);
    for (int i = 0; i < 3; i++) {
        char config[64];
        snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"next%d\"}", i);
        acp_job_id next = submit_config(w, 0, config);
        expect_status(w, &next, ACP_STATUS_COMPLETE, &job);
        assert_int_equal(recording_runs(&next), 1);
    }
    acp_job_clear(&job);
    assert_int_equal(acp_get_job(w->p, &blocked, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_IN_PROGRESS);
    recording_release();
    expect_status(w, &blocked, ACP_STATUS_COMPLETE, &job);
    assert_int_equal(recording_runs(&blocked), 1);
    acp_job_clear(&job);
}

static void assert_nothing_stored(world *w, const acp_job_id *id)
{
    acp_job job;
    assert_int_equal(acp_get_job(w->p, id, &job), ACP_ENOTFOUND);
    object_list list;
    assert_int_equal(objects_list(w->raw, id, &list), 0);
    assert_int_equal(list.count, 0);
    object_list_free(&list);
}

static void bad_input_is_rejected_and_nothing_stored(void **state)
{
    world *w = *state;
    acp_job_id id;
    acp_job_id_generate(&id);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.id = &id;
    sub.config = "{\"mode\":\"ok\"}";
    const char *queue = w->fc.queue_ids[0];
    acp_job job;

    assert_int_equal(acp_submit(w->p, "no-such-queue", &sub, &job), ACP_ENOQUEUE);
    assert_non_null(strstr(acp_last_error(), "no-such-queue"));

    sub.config = "{\"mode\": ok}";
    assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "submission.config: invalid JSON"));

    sub.config = NULL;
    sub.id = NULL;
    assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "no id given and no config"));
    sub.id = &id;

    struct {
        const char *name;
        const char *error;
    } bad_names[] = {
        {"input-config", "reserved"},   {".queued", "reserved"},     {".workspace", "reserved"},
        {"../etc", "unsafe file name"}, {"a/b", "unsafe file name"}, {"", "missing file name"},
        {"sp ace", "unsafe file name"},
    };
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        acp_input in = {.name = bad_names[i].name, .data = "x", .size = 1};
        sub.inputs = &in;
        sub.input_count = 1;
        assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_EINVAL);
        if (!strstr(acp_last_error(), bad_names[i].error))
            fail_msg("'%s': %s", bad_names[i].name, acp_last_error());
    }
    acp_input twice[] = {{.name = "a", .data = "x", .size = 1},
                         {.name = "a", .data = "y", .size = 1}};
    sub.inputs = twice;
    sub.input_count = 2;
    assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "duplicate input name 'a'"));

    acp_input missing = {.name = "m", .path = "/nonexistent/input"};
    sub.inputs = &missing;
    sub.input_count = 1;
    assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_EIO);
    assert_non_null(strstr(acp_last_error(), "/nonexistent/input"));

    acp_input both = {.name = "b", .path = "/etc/hostname", .data = "x", .size = 1};
    sub.inputs = &both;
    assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_EINVAL);

    char *huge = malloc(ACP_JOB_CONFIG_MAX + 10);
    memset(huge, ' ', ACP_JOB_CONFIG_MAX + 9);
    memcpy(huge, "{}", 2);
    huge[ACP_JOB_CONFIG_MAX + 9] = '\0';
    sub.inputs = NULL;
    sub.input_count = 0;
    sub.config = huge;
    assert_int_equal(acp_submit(w->p, queue, &sub, &job), ACP_ETOOBIG);
    free(huge);

    assert_nothing_stored(w, &id);
    /* No message either: the workers never heard of the job. */
    char hex[ACP_JOB_ID_STRLEN];
    fixture_sleep_ms(300);
    assert_false(fixture_log_contains(acp_job_id_format(&id, hex), NULL));

    acp_job_id other;
    assert_int_equal(acp_job_id_parse(&other, "not-an-id"), ACP_EINVAL);
    assert_int_equal(acp_get_job(w->p, &id, &job), ACP_ENOTFOUND);
    acp_result_list files;
    assert_int_equal(acp_get_results(w->p, &id, &files), ACP_ENOTFOUND);
    assert_int_equal(acp_read_result_fd(w->p, &id, "x", 1), ACP_ENOTFOUND);
    assert_int_equal(acp_read_result_fd(w->p, &id, "../x", 1), ACP_EINVAL);
}

static int stop_after_first(void *userdata, const void *data, size_t len)
{
    (void)data;
    *(size_t *)userdata += len;
    return 42;
}

static void reading_results(void **state)
{
    world *w = *state;
    acp_job job = {0};
    acp_job_id id = submit_config(w, 0, "{\"mode\":\"ok\",\"n\":\"read\"}");
    expect_status(w, &id, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);

    char path[] = "/tmp/acp-read-XXXXXX";
    int fd = mkstemp(path);
    assert_int_equal(acp_read_result_fd(w->p, &id, "result.txt", fd), 0);
    char text[256] = {0};
    assert_true(pread(fd, text, sizeof text - 1, 0) > 0);
    assert_non_null(strstr(text, "n=read"));
    close(fd);
    unlink(path);

    void *data;
    size_t size;
    assert_int_equal(acp_read_result_buffer(w->p, &id, "result.txt", 5, &data, &size), ACP_ETOOBIG);
    assert_null(data);
    size_t seen = 0;
    assert_int_equal(acp_read_result(w->p, &id, "result.txt", stop_after_first, &seen), ACP_EUSER);
    assert_true(seen > 0);
    assert_int_equal(acp_read_result(w->p, &id, "absent.txt", stop_after_first, &seen),
                     ACP_ENOTFOUND);
}

static int fail_like_not_found(void *userdata, const void *data, size_t len)
{
    (void)data;
    (void)len;
    (*(int *)userdata)++;
    return -3; /* the value of ACP_ENOTFOUND, by chance or not */
}

/* A sink's failure must not pass for one of the library's own: a caller
 * seeing ACP_ENOTFOUND would conclude the file is missing. */
static void read_sink_error_is_reported_as_euser(void **state)
{
    world *w = *state;
    acp_job job = {0};
    acp_job_id id = submit_config(w, 0, "{\"mode\":\"ok\",\"n\":\"sink\"}");
    expect_status(w, &id, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);

    int calls = 0;
    int rc = acp_read_result(w->p, &id, "result.txt", fail_like_not_found, &calls);
    assert_int_equal(rc, ACP_EUSER);
    assert_int_equal(calls, 1);
    assert_string_equal(acp_strerror(rc), "a callback failed");
    assert_non_null(strstr(acp_last_error(), "returned -3"));
    assert_non_null(strstr(acp_last_error(), "result.txt"));
    /* The library's own failures keep their codes. */
    assert_int_equal(acp_read_result(w->p, &id, "absent.txt", fail_like_not_found, &calls),
                     ACP_ENOTFOUND);
    assert_int_equal(calls, 1);
}

static acp_job_id md5_of(const char *text)
{
    acp_job_id id;
    md5_ctx md5;
    md5_init(&md5);
    md5_update(&md5, text, strlen(text));
    md5_final(&md5, id.bytes);
    return id;
}

/* Point 13: a config is either refused with a clear error, or accepted as
 * sent: its id is the MD5 of the compact text the caller gave, not of a
 * rewritten one. */
static void config_valid_at_submit_id_is_md5_of_config_as_sent(void **state)
{
    world *w = *state;
    char text[512];
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    acp_job job;
    const char *queue = w->fc.queue_ids[0];

    snprintf(text, sizeof text,
             "{\"tag\":\"%s\",\"mode\":\"ok\",\"u\":18446744073709551615,"
             "\"i\":-9223372036854775808,\"d\":1.0E300,\"s\":\"\xf4\x8f\xbf\xbf\\u0000\"}",
             w->tag);
    sub.config = text;
    if (acp_submit(w->p, queue, &sub, &job) != 0)
        fail_msg("submit %s: %s", text, acp_last_error());
    acp_job_id expected = md5_of(text);
    assert_true(acp_job_id_equal(&job.id, &expected));
    acp_job_clear(&job);

    const char *refused[][2] = {
        {"\"u\":18446744073709551616", "integer beyond 64 bits"},
        {"\"i\":-9223372036854775809", "integer beyond 64 bits"},
        {"\"d\":1e400", "number out of range"},
        {"\"d\":-1E999", "number out of range"},
        {"\"a\\u0000b\":1", "NUL (\\u0000) in a member name"},
        {"\"s\":\"\\ud800\"", "lone surrogate \\ud800"},
        {"\"s\":\"\\udc00\"", "lone surrogate \\udc00"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        snprintf(text, sizeof text, "{\"tag\":\"%s\",\"mode\":\"ok\",%s}", w->tag, refused[i][0]);
        int rc = acp_submit(w->p, queue, &sub, &job);
        if (rc != ACP_EINVAL)
            fail_msg("%s: submit returned %d (%s)", text, rc, acp_last_error());
        if (!strstr(acp_last_error(), refused[i][1]) ||
            !strstr(acp_last_error(), "submission.config"))
            fail_msg("%s: '%s' lacks '%s'", text, acp_last_error(), refused[i][1]);
        acp_job_id id = md5_of(text);
        assert_int_equal(acp_get_job(w->p, &id, &job), ACP_ENOTFOUND);
    }
}

/* Point 13: the deepest config submit accepts is one a worker can run. */
static void config_valid_at_submit_deepest_config_runs(void **state)
{
    world *w = *state;
    char deep[200], text[512];
    for (int levels = 63; levels <= 64; levels++) {
        /* The config object is the first level. */
        memset(deep, '[', (size_t)levels);
        memset(deep + levels, ']', (size_t)levels);
        deep[2 * levels] = '\0';
        snprintf(text, sizeof text, "{\"tag\":\"%s\",\"mode\":\"ok\",\"n\":\"deep\",\"deep\":%s}",
                 w->tag, deep);
        acp_submission sub;
        acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
        sub.config = text;
        acp_job job = {0};
        int rc = acp_submit(w->p, w->fc.queue_ids[0], &sub, &job);
        if (levels == 64) {
            assert_int_equal(rc, ACP_EINVAL);
            assert_non_null(strstr(acp_last_error(), "nested deeper than 64 levels"));
            continue;
        }
        if (rc != 0)
            fail_msg("64 levels refused: %s", acp_last_error());
        acp_job_id id = job.id;
        acp_job_clear(&job);
        expect_status(w, &id, ACP_STATUS_COMPLETE, &job);
        acp_job_clear(&job);
        /* The worker got the config as sent. */
        char *seen = read_text(w, &id, "seen-config");
        assert_string_equal(seen, text);
        acp_free(seen);
    }
}

/* Point 14: text PostgreSQL would refuse is the caller's error (400 in the
 * example server), not a database failure (503). */
static void invalid_utf8_submit_is_einval_not_edb(void **state)
{
    world *w = *state;
    acp_job_id id;
    acp_job_id_generate(&id);
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.id = &id;
    acp_job job;
    const char *bad[][2] = {
        {"{\"mode\":\"ok\",\"s\":\"\xc0\xaf\"}", "overlong UTF-8 sequence"},
        {"{\"mode\":\"ok\",\"s\":\"\xed\xa0\x80\"}", "UTF-8 encoded surrogate"},
        {"{\"mode\":\"ok\",\"\xf4\x90\x80\x80\":1}", "beyond U+10FFFF"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sub.config = bad[i][0];
        int rc = acp_submit(w->p, w->fc.queue_ids[0], &sub, &job);
        if (rc != ACP_EINVAL)
            fail_msg("config %zu: submit returned %d (%s)", i, rc, acp_last_error());
        if (!strstr(acp_last_error(), bad[i][1]))
            fail_msg("config %zu: '%s' lacks '%s'", i, acp_last_error(), bad[i][1]);
        assert_int_equal(acp_get_job(w->p, &id, &job), ACP_ENOTFOUND);
    }
}

/* Point 13: a job whose stored config no message can carry (an older
 * version stored 1e400 as Infinity) is failed with the reason instead of
 * being re-dispatched every second, and neither those nor jobs of a queue
 * this process does not serve keep a newer job from being dispatched. */
static void unformattable_jobs_fail_and_never_block_newer_ones(void **state)
{
    world *w = *state;
    store *st = w->p->store;
    const char *queue = w->fc.queue_ids[0];
    char other[ACP_QUEUE_ID_MAX + 1];
    snprintf(other, sizeof other, "unserved-%s", w->tag);
    enum { BAD = 120, UNSERVED = 120 };
    acp_job_id bad[BAD], unserved[UNSERVED], good;
    /* Rows as this platform's submit would write them. */
    store_run_options run = {.layout = w->fc.config.layout, .priority = ACP_PRIORITY_DEFAULT};
    /* Oldest first, each as a failed publish leaves it: never dispatched. */
    for (int i = 0; i < BAD; i++) {
        acp_job_id_generate(&bad[i]);
        assert_int_equal(store_insert(st, &bad[i], queue, "{\"n\":Infinity}", NULL, 0, &run), 0);
        assert_int_equal(store_clear_dispatched(st, &bad[i]), 0);
    }
    for (int i = 0; i < UNSERVED; i++) {
        acp_job_id_generate(&unserved[i]);
        assert_int_equal(store_insert(st, &unserved[i], other, "{\"n\":1}", NULL, 0, NULL), 0);
        assert_int_equal(store_clear_dispatched(st, &unserved[i]), 0);
    }
    char config[128];
    snprintf(config, sizeof config, "{\"tag\":\"%s\",\"mode\":\"ok\",\"n\":\"newer\"}", w->tag);
    acp_job_id_generate(&good);
    assert_int_equal(store_insert(st, &good, queue, config, NULL, 0, NULL), 0);
    assert_int_equal(store_clear_dispatched(st, &good), 0);

    acp_job job = {0};
    expect_status(w, &good, ACP_STATUS_COMPLETE, &job);
    acp_job_clear(&job);

    for (int i = 0; i < BAD; i++) {
        if (!fixture_wait_status(w->p, &bad[i], ACP_STATUS_FAILED, FIXTURE_WAIT_S, &job))
            fail_msg("unformattable job %d is %s", i, acp_job_status_name(job.status));
        if (!job.message || !strstr(job.message, "no job message") ||
            !strstr(job.message, "invalid JSON"))
            fail_msg("unformattable job %d: message '%s'", i, job.message ? job.message : "-");
        acp_job_clear(&job);
    }
    /* Left for a process that serves their queue. */
    for (int i = 0; i < UNSERVED; i++) {
        assert_int_equal(acp_get_job(w->p, &unserved[i], &job), 0);
        assert_int_equal(job.status, ACP_STATUS_QUEUED);
        acp_job_clear(&job);
    }
    object_list flags;
    assert_int_equal(objects_list(w->raw, &bad[0], &flags), 0);
    bool failed_flag = false;
    for (size_t i = 0; i < flags.count; i++)
        failed_flag = failed_flag || strcmp(flags.items[i].name, ".failed") == 0;
    object_list_free(&flags);
    assert_true(failed_flag == is_lcp(w)); /* native: the row alone says it */

    for (int i = 0; i < BAD; i++) {
        assert_int_equal(store_delete(st, &bad[i]), 0);
        assert_int_equal(objects_wipe(w->raw, &bad[i]), 0);
    }
    for (int i = 0; i < UNSERVED; i++)
        assert_int_equal(store_delete(st, &unserved[i]), 0);
}

static void unowned_job_is_read_from_flags(void **state)
{
    world *w = *state;
    acp_job_id id;
    acp_job_id_generate(&id);
    assert_int_equal(objects_put(w->raw, &id, ".workspace", "", 0), 0);
    assert_int_equal(objects_put(w->raw, &id, ".queued", "", 0), 0);
    assert_int_equal(objects_put(w->raw, &id, ".in-progress", "", 0), 0);
    assert_int_equal(objects_put(w->raw, &id, ".complete", "", 0), 0);
    assert_int_equal(objects_put(w->raw, &id, "out.txt", "hello", 5), 0);
    acp_job job;
    assert_int_equal(acp_get_job(w->p, &id, &job), 0);
    assert_int_equal(job.owned, 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_true(job.created > 0 && job.finished > 0);
    assert_string_equal(job.queue, "");
    acp_job_clear(&job);
    assert_int_equal(objects_put(w->raw, &id, ".failed", "", 0), 0);
    assert_int_equal(acp_get_job(w->p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_FAILED); /* failed wins */
    acp_job_clear(&job);

    /* Submitting another service's unexpired job is a conflict; nothing changes. */
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.id = &id;
    assert_int_equal(acp_submit(w->p, w->fc.queue_ids[0], &sub, &job), ACP_ECONFLICT);
    if (!strstr(acp_last_error(), "another service"))
        fail_msg("%s", acp_last_error());
    char *text = read_text(w, &id, "out.txt");
    assert_string_equal(text, "hello");
    acp_free(text);
    assert_int_equal(objects_wipe(w->raw, &id), 0);
}

static void duplicate_delivery_does_not_rerun(void **state)
{
    world *w = *state; /* one worker: messages are handled in order */
    acp_job job = {0};
    acp_job_id id = submit_config(w, 0, "{\"mode\":\"ok\",\"n\":\"dup\"}");
    expect_status(w, &id, ACP_STATUS_COMPLETE, &job);

    broker_conn *conn;
    assert_int_equal(broker_connect(&conn, &broker_amqp_driver, &w->fc.queues[0], NULL), 0);
    buf message = BUF_INIT;
    assert_int_equal(job_message_format(&message, &id, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(broker_publish(conn, w->fc.queue_ids[0], message.data, message.len, 5000),
                         0);
    /* And a malformed message, which must be dropped, not looped. */
    assert_int_equal(broker_publish(conn, w->fc.queue_ids[0], "{\"jobID\":42}", 12, 5000), 0);
    buf_free(&message);
    broker_close(conn);

    /* A bell claims the best due job of its queue, whatever job it names: a
     * job submitted while the duplicates still wait would be claimed by one
     * of them. So the next job comes once all four were dropped. */
    acp_stats stats = {.version = ACP_STATS_VERSION};
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += FIXTURE_WAIT_S;
    for (;;) {
        assert_int_equal(acp_get_stats(w->p, &stats), 0);
        if (stats.messages_dropped >= 4)
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > until.tv_sec)
            fail_msg("%llu of the 4 messages dropped after %d s",
                     (unsigned long long)stats.messages_dropped, FIXTURE_WAIT_S);
        nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    }

    /* A later job on the same single worker proves the duplicates were handled. */
    acp_job_id after = submit_config(w, 0, "{\"mode\":\"ok\",\"n\":\"after-dup\"}");
    expect_status(w, &after, ACP_STATUS_COMPLETE, &job);
    assert_int_equal(recording_runs(&id), 1);
    assert_true(fixture_log_contains("dropping a malformed message", "jobID"));
    assert_int_equal(acp_get_stats(w->p, &stats), 0);
    assert_int_equal(stats.messages_dropped, 4); /* three duplicates, one malformed */
    assert_int_equal(stats.jobs_started, 2);
    assert_int_equal(acp_get_job(w->p, &id, &job), 0);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE);
    assert_int_equal(job.attempts, 1);
    acp_job_clear(&job);
}

static void two_hundred_jobs_run_exactly_once(void **state)
{
    (void)state;
    world *w;
    assert_int_equal(start_world((void **)&w, 2, 4), 0);
    enum { JOBS = 200 };
    acp_job_id ids[JOBS];
    for (int i = 0; i < JOBS; i++) {
        char config[64];
        snprintf(config, sizeof config, "{\"mode\":\"sleep\",\"ms\":%d,\"n\":%d}", i % 3 * 10, i);
        ids[i] = submit_config(w, (size_t)i % 2, config);
    }
    acp_job job = {0};
    for (int i = 0; i < JOBS; i++) {
        expect_status(w, &ids[i], ACP_STATUS_COMPLETE, &job);
        assert_int_equal(job.attempts, 1);
    }
    acp_job_clear(&job);
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(recording_runs(&ids[i]), 1);
    for (size_t q = 0; q < 2; q++) {
        int peak = recording_peak(w->fc.queue_ids[q]);
        assert_true(peak >= 1 && peak <= 4);
    }
    teardown_world((void **)&w);
}

static void init_fails_cleanly(void **state)
{
    (void)state;
    fixture_config fc;
    char tag[9];
    fixture_tag(tag);
    acp_platform *p = (acp_platform *)1;

    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.db.password = "wrong";
    assert_int_equal(acp_init(&p, &fc.config), ACP_EDB);
    assert_null(p);
    assert_non_null(strstr(acp_last_error(), "postgres"));
    assert_non_null(strstr(acp_last_error(), "password authentication failed"));

    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.s3.secret_key = "wrong";
    assert_int_equal(acp_init(&p, &fc.config), ACP_ESTORAGE);
    assert_non_null(strstr(acp_last_error(), "S3"));

    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.config.s3.bucket = "no-such-bucket-here";
    assert_int_equal(acp_init(&p, &fc.config), ACP_ESTORAGE);
    assert_non_null(strstr(acp_last_error(), "no-such-bucket-here"));

    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.queues[0].password = "wrong";
    assert_int_equal(acp_init(&p, &fc.config), ACP_EBROKER);
    assert_non_null(strstr(acp_last_error(), "rabbitmq"));

    fixture_config_make(&fc, &env, tag, 1, 1, &recording_factory);
    fc.queues[0].port = 1;
    assert_int_equal(acp_init(&p, &fc.config), ACP_EBROKER);

    fixture_config_make(&fc, &env, tag, 1, 1, NULL);
    assert_int_equal(acp_init(&p, &fc.config), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "config.executor_factory"));
    assert_null(p);

    /* Nothing was left running. */
    DIR *tasks = opendir("/proc/self/task");
    int threads = 0;
    while (tasks && readdir(tasks))
        threads++;
    closedir(tasks);
    assert_int_equal(threads - 2, 1); /* "." and ".." plus the main thread */
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_fails_cleanly),
        cmocka_unit_test_setup_teardown(happy_path, setup_one_queue, teardown_world),
        cmocka_unit_test_setup_teardown(failures_keep_message_and_files, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(resubmission, setup_one_queue, teardown_world),
        cmocka_unit_test_setup_teardown(job_id_of_another_config_is_refused, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(outputs_and_scratch_trees_cannot_trap_a_worker,
                                        setup_one_queue, teardown_world),
        cmocka_unit_test_setup_teardown(queued_jobs_report_their_position, setup_serial_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(a_running_job_holds_no_message_back, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(bad_input_is_rejected_and_nothing_stored, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(reading_results, setup_one_queue, teardown_world),
        cmocka_unit_test_setup_teardown(read_sink_error_is_reported_as_euser, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(config_valid_at_submit_id_is_md5_of_config_as_sent,
                                        setup_one_queue, teardown_world),
        cmocka_unit_test_setup_teardown(config_valid_at_submit_deepest_config_runs, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(invalid_utf8_submit_is_einval_not_edb, setup_one_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(unformattable_jobs_fail_and_never_block_newer_ones,
                                        setup_one_queue, teardown_world),
        cmocka_unit_test_setup_teardown(unowned_job_is_read_from_flags, setup_one_lcp_queue,
                                        teardown_world),
        cmocka_unit_test_setup_teardown(duplicate_delivery_does_not_rerun, setup_serial_queue,
                                        teardown_world),
        cmocka_unit_test(two_hundred_jobs_run_exactly_once),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
