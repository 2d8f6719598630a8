/* Expiration, pruning, deletion, listing, and services that share a bucket
 * (lib-compute-platform's North/South case), against the real services. */
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "objects.h"
#include "platform_fixture.h"
#include "platform_state.h"
#include "recording_executor.h"

static stack_env env;

typedef struct service {
    fixture_config fc;
    acp_platform *p;
} service;

static void start(service *s, const char *tag, const char *db, const char *shared_root)
{
    fixture_config_make(&s->fc, &env, tag, 1, 2, &recording_factory);
    /* Services sharing a bucket, their flags and workspaces: the lcp
     * layout (tests/integration/test_layout.c has the native one's). */
    s->fc.config.layout = ACP_LAYOUT_LCP;
    s->fc.config.db.dbname = db;
    if (shared_root)
        snprintf(s->fc.root_path, sizeof s->fc.root_path, "%s", shared_root);
    if (acp_init(&s->p, &s->fc.config) != 0)
        fail_msg("acp_init: %s", acp_last_error());
}

static acp_job_id submit(service *s, const char *config, int expect_rc)
{
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = config;
    acp_job job;
    int rc = acp_submit(s->p, s->fc.queue_ids[0], &sub, &job);
    if (rc != expect_rc)
        fail_msg("submit %s: %d (%s)", config, rc, acp_last_error());
    acp_job_id id = job.id;
    acp_job_clear(&job);
    if (rc != 0)
        acp_job_id_from_config(&id, config);
    return id;
}

static void wait_status(service *s, const acp_job_id *id, acp_job_status status)
{
    acp_job job = {0};
    if (!fixture_wait_status(s->p, id, status, FIXTURE_WAIT_S, &job))
        fail_msg("job is %s, not %s", acp_job_status_name(job.status), acp_job_status_name(status));
    acp_job_clear(&job);
}

/* Like wait_status, but through the listing, which is not an access: for
 * jobs whose last access matters. */
static void wait_status_unread(service *s, const acp_job_id *id, acp_job_status status)
{
    acp_job_filter filter;
    acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
    filter.queue = s->fc.queue_ids[0];
    filter.statuses = 1u << status;
    filter.limit = ACP_LIST_LIMIT_MAX;
    for (int waited = 0; waited < FIXTURE_WAIT_S * 1000; waited += 50) {
        acp_job_list page;
        assert_int_equal(acp_list_jobs(s->p, &filter, &page), 0);
        bool found = false;
        for (size_t i = 0; i < page.count && !found; i++)
            found = acp_job_id_equal(&page.jobs[i].id, id);
        acp_job_list_clear(&page);
        if (found)
            return;
        fixture_sleep_ms(50);
    }
    fail_msg("job did not become %s", acp_job_status_name(status));
}

static acp_job get(service *s, const acp_job_id *id)
{
    acp_job job;
    if (acp_get_job(s->p, id, &job) != 0)
        fail_msg("get: %s", acp_last_error());
    return job;
}

static void names(service *s, const acp_job_id *id, char *out, size_t size)
{
    objects *raw;
    assert_int_equal(objects_open(&raw, &s->fc.config.s3, &s->fc.config.s3_client, NULL), 0);
    object_list list;
    assert_int_equal(objects_list(raw, id, &list), 0);
    out[0] = '\0';
    for (size_t i = 0; i < list.count; i++) {
        strncat(out, list.items[i].name, size - strlen(out) - 2);
        strncat(out, " ", size - strlen(out) - 1);
    }
    object_list_free(&list);
    objects_close(raw);
}

static PGconn *admin(const char *db)
{
    const char *keys[] = {"host", "port", "user", "password", "dbname", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user, env.pg_password, db, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    return conn;
}

static void sql(PGconn *conn, const char *statement, const char *hex)
{
    const char *params[] = {hex};
    PGresult *res = PQexecParams(conn, statement, hex ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", statement, PQerrorMessage(conn));
    PQclear(res);
}

static void age(PGconn *conn, const acp_job_id *id, int days)
{
    char hex[ACP_JOB_ID_STRLEN], statement[160];
    snprintf(statement, sizeof statement,
             "UPDATE compute.jobs SET last_accessed = now() - interval '%d days' "
             "WHERE job_id = decode($1, 'hex')",
             days);
    sql(conn, statement, acp_job_id_format(id, hex));
}

/* ---- expiring ------------------------------------------------------------ */

static void expire_by_hand_and_resubmit(void **state)
{
    (void)state;
    char tag[9], config[128], layout[1024];
    fixture_tag(tag);
    service s;
    start(&s, tag, env.pg_db, NULL);
    snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"%s-expire\"}", tag);
    acp_job_id id = submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_COMPLETE);

    assert_int_equal(acp_expire_job(s.p, &id), 0);
    acp_job job = get(&s, &id);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    names(&s, &id, layout, sizeof layout);
    assert_string_equal(layout, ".complete .expired .in-progress .queued .workspace ");
    acp_result_list files;
    assert_int_equal(acp_get_results(s.p, &id, &files), 0);
    assert_int_equal(files.count, 0);
    acp_result_list_clear(&files);
    assert_int_equal(acp_expire_job(s.p, &id), 0); /* again: nothing left to do */

    /* Resubmitting an expired job runs it again with fresh results. */
    submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_COMPLETE);
    assert_int_equal(recording_runs(&id), 2);
    names(&s, &id, layout, sizeof layout);
    assert_null(strstr(layout, ".expired"));
    assert_null(strstr(layout, ".claim-"));
    assert_non_null(strstr(layout, "run2.txt"));
    assert_null(strstr(layout, "run1.txt"));

    acp_job_id unknown;
    acp_job_id_generate(&unknown);
    assert_int_equal(acp_expire_job(s.p, &unknown), ACP_ENOTFOUND);
    acp_shutdown(s.p);
}

/* Expiring a failed job makes it expired everywhere: in the row and in the
 * flags (which would read failed while .failed stays), so the owner keeps
 * it and can resubmit or delete it, and another service sees it expired. */
static void expire_failed_job_then_resubmit_and_delete(void **state)
{
    (void)state;
    char tag[9], north_tag[12], south_tag[12], root[64], config[128], layout[1024];
    fixture_tag(tag);
    snprintf(north_tag, sizeof north_tag, "n%s", tag);
    snprintf(south_tag, sizeof south_tag, "s%s", tag);
    snprintf(root, sizeof root, "/expire-failed-%s/", tag);
    service s, other;
    start(&s, north_tag, env.pg_db, root);
    snprintf(config, sizeof config, "{\"mode\":\"fail\",\"n\":\"%s-failed\"}", tag);
    acp_job_id id = submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_FAILED);

    assert_int_equal(acp_expire_job(s.p, &id), 0);
    for (int read = 0; read < 2; read++) { /* the first read used to drop the row */
        acp_job job = get(&s, &id);
        assert_int_equal(job.owned, 1);
        assert_int_equal(job.status, ACP_STATUS_EXPIRED);
        acp_job_clear(&job);
    }
    names(&s, &id, layout, sizeof layout);
    assert_string_equal(layout, ".expired .in-progress .queued .workspace ");
    wait_status_unread(&s, &id, ACP_STATUS_EXPIRED);
    start(&other, south_tag, getenv("ACP_TEST_PG_DB_B") ? getenv("ACP_TEST_PG_DB_B") : "acp_test_b",
          root);
    acp_job job = get(&other, &id);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    assert_int_equal(job.owned, 0);
    acp_job_clear(&job);
    acp_shutdown(other.p);

    /* The owner resubmits it: it runs again, and it is still ours. */
    submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_FAILED);
    assert_int_equal(recording_runs(&id), 2);
    job = get(&s, &id);
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    names(&s, &id, layout, sizeof layout);
    assert_null(strstr(layout, ".expired"));

    assert_int_equal(acp_expire_job(s.p, &id), 0);
    assert_int_equal(acp_delete_job(s.p, &id), 0);
    names(&s, &id, layout, sizeof layout);
    assert_string_equal(layout, "");
    assert_int_equal(acp_get_job(s.p, &id, &job), ACP_ENOTFOUND);
    acp_shutdown(s.p);
}

/* An expiry cut short after .expired was added but before .failed was
 * removed (S3 failing half-way) leaves both flags, which read failed. The
 * row stays the owner's; expiring again or resubmitting finishes the job. */
static void expire_failed_job_cut_short_keeps_the_row(void **state)
{
    (void)state;
    char tag[9], config[128], layout[1024];
    fixture_tag(tag);
    service s;
    start(&s, tag, env.pg_db, NULL);
    snprintf(config, sizeof config, "{\"mode\":\"fail\",\"n\":\"%s-cut\"}", tag);
    acp_job_id id = submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_FAILED);
    assert_int_equal(acp_expire_job(s.p, &id), 0);
    objects *raw;
    assert_int_equal(objects_open(&raw, &s.fc.config.s3, &s.fc.config.s3_client, NULL), 0);
    assert_int_equal(objects_put(raw, &id, ".failed", "", 0), 0);

    acp_job job = get(&s, &id);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    assert_int_equal(acp_expire_job(s.p, &id), 0);
    names(&s, &id, layout, sizeof layout);
    assert_string_equal(layout, ".expired .in-progress .queued .workspace ");

    assert_int_equal(objects_put(raw, &id, ".failed", "", 0), 0);
    objects_close(raw);
    submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_FAILED);
    assert_int_equal(recording_runs(&id), 2);
    job = get(&s, &id);
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    assert_int_equal(acp_delete_job(s.p, &id), 0);
    acp_shutdown(s.p);
}

/* lib-compute-platform expires a failed job by adding .expired and keeping
 * .failed: the flags read failed, but the job is expired, so another
 * service may take it over by resubmitting it. */
static void expire_failed_job_the_upstream_way_can_be_taken_over(void **state)
{
    (void)state;
    char tag[9], north_tag[12], south_tag[12], root[64], config[128];
    fixture_tag(tag);
    snprintf(north_tag, sizeof north_tag, "n%s", tag);
    snprintf(south_tag, sizeof south_tag, "s%s", tag);
    snprintf(root, sizeof root, "/upstream-failed-%s/", tag);
    service north, south;
    start(&north, north_tag, env.pg_db, root);
    start(&south, south_tag, getenv("ACP_TEST_PG_DB_B") ? getenv("ACP_TEST_PG_DB_B") : "acp_test_b",
          root);
    snprintf(config, sizeof config, "{\"mode\":\"fail\",\"n\":\"%s-upstream\"}", tag);
    acp_job_id id = submit(&north, config, 0);
    wait_status(&north, &id, ACP_STATUS_FAILED);
    wait_status(&south, &id, ACP_STATUS_FAILED); /* the flags follow a moment later */
    assert_int_equal(acp_expire_job(north.p, &id), 0);
    objects *raw;
    assert_int_equal(objects_open(&raw, &north.fc.config.s3, &north.fc.config.s3_client, NULL), 0);
    assert_int_equal(objects_put(raw, &id, ".failed", "", 0), 0);
    objects_close(raw);

    acp_job job = get(&south, &id);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    assert_int_equal(job.owned, 0);
    acp_job_clear(&job);
    submit(&south, config, 0);
    wait_status(&south, &id, ACP_STATUS_FAILED);
    job = get(&south, &id);
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    job = get(&north, &id);
    assert_int_equal(job.owned, 0);
    acp_job_clear(&job);
    assert_int_equal(recording_runs(&id), 2);
    assert_int_equal(acp_delete_job(south.p, &id), 0);
    acp_shutdown(north.p);
    acp_shutdown(south.p);
}

static void running_jobs_cannot_be_expired_or_deleted(void **state)
{
    (void)state;
    char tag[9], config[128];
    fixture_tag(tag);
    service s;
    start(&s, tag, env.pg_db, NULL);
    snprintf(config, sizeof config, "{\"mode\":\"block\",\"n\":\"%s\"}", tag);
    acp_job_id id = submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_IN_PROGRESS);
    assert_int_equal(acp_expire_job(s.p, &id), ACP_EBUSY);
    assert_non_null(strstr(acp_last_error(), "running"));
    assert_int_equal(acp_delete_job(s.p, &id), ACP_EBUSY);
    recording_release();
    wait_status(&s, &id, ACP_STATUS_COMPLETE);
    recording_reset();
    acp_shutdown(s.p);
}

static void pruner_expires_only_old_complete_jobs(void **state)
{
    (void)state;
    char tag[9], config[128];
    fixture_tag(tag);
    service s;
    fixture_config_make(&s.fc, &env, tag, 1, 1, &recording_factory);
    s.fc.config.expiration_days = 1;
    s.fc.config.prune_interval = 1;
    assert_int_equal(acp_init(&s.p, &s.fc.config), 0);
    PGconn *db = admin(env.pg_db);

    enum { OLD, RECENT, FAILED, VANISHED, LATER, RUNNING, QUEUED, N };
    const char *modes[N] = {"ok", "ok", "fail", "ok", "ok", "block", "ok"};
    acp_job_id ids[N];
    for (int i = 0; i < N; i++) {
        snprintf(config, sizeof config, "{\"mode\":\"%s\",\"n\":\"%s-%d\"}", modes[i], tag, i);
        ids[i] = submit(&s, config, 0);
        if (i < RUNNING)
            wait_status(&s, &ids[i], i == FAILED ? ACP_STATUS_FAILED : ACP_STATUS_COMPLETE);
        else if (i == RUNNING)
            wait_status(&s, &ids[i], ACP_STATUS_IN_PROGRESS);
    }
    /* One worker, blocked: QUEUED stays queued. */
    objects *raw;
    assert_int_equal(objects_open(&raw, &s.fc.config.s3, &s.fc.config.s3_client, NULL), 0);
    assert_int_equal(objects_wipe(raw, &ids[VANISHED]), 0);
    objects_close(raw);
    for (int i = 0; i < N; i++)
        if (i != RECENT && i != LATER)
            age(db, &ids[i], 3);

    /* The next passes expire OLD and VANISHED (logged), nothing else. */
    wait_status_unread(&s, &ids[OLD], ACP_STATUS_EXPIRED);
    wait_status_unread(&s, &ids[VANISHED], ACP_STATUS_EXPIRED);
    char hex[ACP_JOB_ID_STRLEN];
    /* lcp reads the workspace's marker; native deletes what the row names,
     * gone or not. */
    if (s.fc.config.layout == ACP_LAYOUT_LCP)
        assert_true(fixture_log_contains(acp_job_id_format(&ids[VANISHED], hex), "vanished"));
    for (int i = RECENT; i < N; i++) {
        if (i == VANISHED)
            continue;
        acp_job job = get(&s, &ids[i]); /* an access: LATER and RECENT stay fresh */
        assert_int_not_equal(job.status, ACP_STATUS_EXPIRED);
        acp_job_clear(&job);
    }
    /* A job that becomes old later is expired by a later pass. */
    age(db, &ids[LATER], 3);
    wait_status_unread(&s, &ids[LATER], ACP_STATUS_EXPIRED);
    acp_job job = get(&s, &ids[FAILED]);
    assert_int_equal(job.status, ACP_STATUS_FAILED);
    acp_job_clear(&job);
    job = get(&s, &ids[QUEUED]);
    assert_int_equal(job.status, ACP_STATUS_QUEUED);
    acp_job_clear(&job);
    recording_release();
    wait_status(&s, &ids[QUEUED], ACP_STATUS_COMPLETE);
    recording_reset();
    PQfinish(db);
    acp_shutdown(s.p);
}

/* ---- deleting ------------------------------------------------------------ */

static void delete_in_each_status(void **state)
{
    (void)state;
    char tag[9], config[128], layout[1024];
    fixture_tag(tag);
    service s;
    fixture_config_make(&s.fc, &env, tag, 1, 1, &recording_factory);
    assert_int_equal(acp_init(&s.p, &s.fc.config), 0);

    enum { COMPLETE, FAILED, EXPIRED, BLOCKER, QUEUED, N };
    const char *modes[N] = {"ok", "fail", "ok", "block", "ok"};
    acp_job_id ids[N];
    for (int i = 0; i < N; i++) {
        snprintf(config, sizeof config, "{\"mode\":\"%s\",\"n\":\"%s-%d\"}", modes[i], tag, i);
        ids[i] = submit(&s, config, 0);
        if (i < BLOCKER)
            wait_status(&s, &ids[i], i == FAILED ? ACP_STATUS_FAILED : ACP_STATUS_COMPLETE);
        /* The queued job comes once the blocker holds the only worker: a
         * claim takes the best due job it can lock, and the blocker's row
         * may be locked a moment (its dispatch being recorded) when the
         * first bell rings. */
        if (i == BLOCKER)
            wait_status(&s, &ids[i], ACP_STATUS_IN_PROGRESS);
    }
    assert_int_equal(acp_expire_job(s.p, &ids[EXPIRED]), 0);

    for (int i = 0; i < N; i++) {
        if (i == BLOCKER)
            continue;
        if (acp_delete_job(s.p, &ids[i]) != 0)
            fail_msg("delete %d: %s", i, acp_last_error());
        acp_job job;
        assert_int_equal(acp_get_job(s.p, &ids[i], &job), ACP_ENOTFOUND);
        names(&s, &ids[i], layout, sizeof layout);
        assert_string_equal(layout, "");
        assert_int_equal(acp_delete_job(s.p, &ids[i]), ACP_ENOTFOUND);
    }
    /* The deleted queued job never runs. */
    recording_release();
    wait_status(&s, &ids[BLOCKER], ACP_STATUS_COMPLETE);
    snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"%s-after\"}", tag);
    acp_job_id after = submit(&s, config, 0);
    wait_status(&s, &after, ACP_STATUS_COMPLETE);
    assert_int_equal(recording_runs(&ids[QUEUED]), 0);
    recording_reset();
    assert_int_equal(acp_delete_job(s.p, &ids[BLOCKER]), 0);
    assert_int_equal(acp_delete_job(s.p, &after), 0);
    acp_shutdown(s.p);
}

/* ---- listing ------------------------------------------------------------- */

static void listing_pages_without_duplicates_or_gaps(void **state)
{
    (void)state;
    char tag[9];
    fixture_tag(tag);
    service s;
    start(&s, tag, env.pg_db, NULL);
    /* 1,000 rows straight into the table: listing needs no workspaces. */
    PGconn *db = admin(env.pg_db);
    char statement[512];
    snprintf(statement, sizeof statement,
             "INSERT INTO compute.jobs (job_id, status, queue, input_files, created, "
             "last_accessed) SELECT decode(md5($1 || g::text), 'hex'), "
             "(ARRAY['queued','complete','failed','expired'])[1 + g %% 4], '%s', '{}', "
             "now() - (g %% 500) * interval '1 second', now() "
             "FROM generate_series(1, 1000) AS g",
             s.fc.queue_ids[0]);
    sql(db, statement, tag);

    size_t page_sizes[] = {7, 100, 1000};
    for (size_t k = 0; k < 3; k++) {
        acp_job_filter filter;
        acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
        filter.queue = s.fc.queue_ids[0];
        filter.limit = page_sizes[k];
        char *cursor = NULL;
        size_t total = 0;
        acp_job previous = {0};
        acp_job_id *seen = calloc(1000, sizeof *seen);
        for (;;) {
            acp_job_list page;
            filter.cursor = cursor;
            assert_int_equal(acp_list_jobs(s.p, &filter, &page), 0);
            for (size_t i = 0; i < page.count; i++) {
                const acp_job *job = &page.jobs[i];
                assert_int_equal(job->owned, 1);
                assert_string_equal(job->queue, s.fc.queue_ids[0]);
                if (total > 0)
                    assert_true(job->created > previous.created ||
                                (job->created == previous.created &&
                                 memcmp(job->id.bytes, previous.id.bytes, 16) > 0));
                for (size_t j = 0; j < total; j++)
                    assert_false(acp_job_id_equal(&seen[j], &job->id));
                assert_true(total < 1000);
                seen[total++] = job->id;
                previous.id = job->id;
                previous.created = job->created;
            }
            free(cursor);
            cursor = page.next_cursor ? strdup(page.next_cursor) : NULL;
            acp_job_list_clear(&page);
            if (!cursor)
                break;
        }
        assert_int_equal(total, 1000);
        free(seen);
    }

    acp_job_filter filter;
    acp_job_filter_init(&filter, ACP_JOB_FILTER_VERSION);
    filter.queue = s.fc.queue_ids[0];
    filter.limit = 1000;
    filter.statuses = 1u << ACP_STATUS_FAILED | 1u << ACP_STATUS_EXPIRED;
    acp_job_list page;
    assert_int_equal(acp_list_jobs(s.p, &filter, &page), 0);
    assert_int_equal(page.count, 500);
    for (size_t i = 0; i < page.count; i++)
        assert_true(page.jobs[i].status == ACP_STATUS_FAILED ||
                    page.jobs[i].status == ACP_STATUS_EXPIRED);
    assert_null(page.next_cursor);
    acp_job_list_clear(&page);

    filter.limit = 0;
    assert_int_equal(acp_list_jobs(s.p, &filter, &page), ACP_EINVAL);
    filter.limit = 10;
    filter.cursor = "garbage";
    assert_int_equal(acp_list_jobs(s.p, &filter, &page), ACP_EINVAL);
    assert_non_null(strstr(acp_last_error(), "filter.cursor"));
    filter.cursor = NULL;
    filter.statuses = 1u << 9;
    assert_int_equal(acp_list_jobs(s.p, &filter, &page), ACP_EINVAL);

    snprintf(statement, sizeof statement, "DELETE FROM compute.jobs WHERE queue = '%s'",
             s.fc.queue_ids[0]);
    sql(db, statement, NULL);
    PQfinish(db);
    acp_shutdown(s.p);
}

/* ---- North and South ----------------------------------------------------- */

/* A process that dies between its claim marker and the workspace leaves a
 * marker that every later claim took for a live rival: nobody could ever
 * submit that config. A marker older than the bound, by the S3 server's
 * clock against this claim's own marker, is ignored and removed; a fresh
 * one still blocks. */
static void stale_claim_marker_is_ignored_and_removed(void **state)
{
    (void)state;
    char tag[9], config[128], layout[1024], marker[64], hex[ACP_JOB_ID_STRLEN];
    fixture_tag(tag);
    service s;
    start(&s, tag, env.pg_db, NULL);
    snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"%s-stale\"}", tag);
    acp_job_id id, rival;
    acp_job_id_from_config(&id, config);
    acp_job_id_generate(&rival);
    snprintf(marker, sizeof marker, ".claim-new-%s", acp_job_id_format(&rival, hex));
    objects *raw;
    assert_int_equal(objects_open(&raw, &s.fc.config.s3, &s.fc.config.s3_client, NULL), 0);
    assert_int_equal(objects_put(raw, &id, marker, "", 0), 0);
    /* One of an earlier generation blocks nobody, but stale it goes too. */
    assert_int_equal(objects_put(raw, &id, ".claim-x1-0123456789abcdef0123456789abcdef", "", 0), 0);
    objects_close(raw);

    /* Fresh: someone is claiming the job right now. */
    submit(&s, config, ACP_ECONFLICT);
    names(&s, &id, layout, sizeof layout);
    assert_non_null(strstr(layout, marker));
    assert_null(strstr(layout, ".workspace"));
    acp_job job;
    assert_int_equal(acp_get_job(s.p, &id, &job), ACP_ENOTFOUND);

    /* Left behind: older than a bound lowered for the test. LastModified
     * counts whole seconds, so wait a little over one more. */
    s.p->claim_stale_seconds = 2;
    fixture_sleep_ms(4000);
    submit(&s, config, 0);
    wait_status(&s, &id, ACP_STATUS_COMPLETE);
    names(&s, &id, layout, sizeof layout);
    assert_null(strstr(layout, ".claim-"));
    assert_true(fixture_log_contains(marker, "stale"));
    assert_int_equal(acp_delete_job(s.p, &id), 0);
    acp_shutdown(s.p);
}

typedef struct racer {
    service *s;
    const char *config;
    int rc;
    pthread_barrier_t *start;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    acp_submission sub;
    acp_submission_init(&sub, ACP_SUBMISSION_VERSION);
    sub.config = r->config;
    pthread_barrier_wait(r->start);
    r->rc = acp_submit(r->s->p, r->s->fc.queue_ids[0], &sub, NULL);
    return NULL;
}

static void north_and_south_share_a_bucket(void **state)
{
    (void)state;
    char tag[9], north_tag[12], south_tag[12], root[64], config[128];
    fixture_tag(tag);
    snprintf(north_tag, sizeof north_tag, "n%s", tag);
    snprintf(south_tag, sizeof south_tag, "s%s", tag);
    snprintf(root, sizeof root, "/shared-%s/", tag);
    service north, south;
    start(&north, north_tag, env.pg_db, root);
    start(&south, south_tag, getenv("ACP_TEST_PG_DB_B") ? getenv("ACP_TEST_PG_DB_B") : "acp_test_b",
          root);

    /* North submits; South sees it, unowned, and may not touch it. */
    snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"%s-j\"}", tag);
    acp_job_id j = submit(&north, config, 0);
    wait_status(&north, &j, ACP_STATUS_COMPLETE);
    /* South reads the flags, which follow North's database a moment later. */
    wait_status(&south, &j, ACP_STATUS_COMPLETE);
    acp_job job = get(&south, &j);
    assert_int_equal(job.owned, 0);
    acp_job_clear(&job);
    submit(&south, config, ACP_ECONFLICT);
    assert_int_equal(acp_delete_job(south.p, &j), ACP_EUNOWNED);
    assert_int_equal(acp_expire_job(south.p, &j), ACP_EUNOWNED);
    job = get(&north, &j);
    assert_int_equal(job.status, ACP_STATUS_COMPLETE); /* nothing changed */
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    acp_job_list unowned;
    assert_int_equal(acp_list_unowned(south.p, NULL, 100, &unowned), 0);
    assert_int_equal(unowned.count, 1);
    assert_true(acp_job_id_equal(&unowned.jobs[0].id, &j));
    assert_int_equal(unowned.jobs[0].status, ACP_STATUS_COMPLETE);
    acp_job_list_clear(&unowned);
    assert_int_equal(acp_list_unowned(north.p, NULL, 100, &unowned), 0);
    assert_int_equal(unowned.count, 0);
    acp_job_list_clear(&unowned);

    /* North expires; North resubmits first and keeps it. */
    assert_int_equal(acp_expire_job(north.p, &j), 0);
    job = get(&south, &j);
    assert_int_equal(job.status, ACP_STATUS_EXPIRED);
    acp_job_clear(&job);
    submit(&north, config, 0);
    wait_status(&north, &j, ACP_STATUS_COMPLETE);
    job = get(&north, &j);
    assert_int_equal(job.owned, 1);
    acp_job_clear(&job);
    submit(&south, config, ACP_ECONFLICT);

    /* Expired again; this time South resubmits first and takes it over. */
    assert_int_equal(acp_expire_job(north.p, &j), 0);
    submit(&south, config, 0);
    wait_status(&south, &j, ACP_STATUS_COMPLETE);
    job = get(&south, &j);
    assert_int_equal(job.owned, 1);
    assert_string_equal(job.queue, south.fc.queue_ids[0]);
    acp_job_clear(&job);
    /* S3's flags follow the database a moment later: wait for .complete. */
    wait_status(&north, &j, ACP_STATUS_COMPLETE);
    job = get(&north, &j);
    assert_int_equal(job.owned, 0); /* North's stale row no longer claims it */
    acp_job_clear(&job);
    submit(&north, config, ACP_ECONFLICT);
    assert_int_equal(acp_delete_job(north.p, &j), ACP_EUNOWNED);

    /* Both race to take over expired jobs: exactly one wins each time. */
    for (int round = 0; round < 4; round++) {
        snprintf(config, sizeof config, "{\"mode\":\"ok\",\"n\":\"%s-race-%d\"}", tag, round);
        acp_job_id r = submit(&north, config, 0);
        wait_status(&north, &r, ACP_STATUS_COMPLETE);
        assert_int_equal(acp_expire_job(north.p, &r), 0);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, 2);
        racer a = {&north, config, -1, &barrier}, b = {&south, config, -1, &barrier};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, race, &a);
        pthread_create(&tb, NULL, race, &b);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&barrier);
        if (!((a.rc == 0 && b.rc == ACP_ECONFLICT) || (a.rc == ACP_ECONFLICT && b.rc == 0)))
            fail_msg("round %d: north %d, south %d", round, a.rc, b.rc);
        service *winner = a.rc == 0 ? &north : &south, *loser = a.rc == 0 ? &south : &north;
        wait_status(winner, &r, ACP_STATUS_COMPLETE);
        job = get(winner, &r);
        assert_int_equal(job.owned, 1);
        acp_job_clear(&job);
        job = get(loser, &r);
        assert_int_equal(job.owned, 0);
        acp_job_clear(&job);
        assert_int_equal(recording_runs(&r), 2);
    }
    acp_shutdown(north.p);
    acp_shutdown(south.p);
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expire_by_hand_and_resubmit),
        cmocka_unit_test(expire_failed_job_then_resubmit_and_delete),
        cmocka_unit_test(expire_failed_job_cut_short_keeps_the_row),
        cmocka_unit_test(expire_failed_job_the_upstream_way_can_be_taken_over),
        cmocka_unit_test(running_jobs_cannot_be_expired_or_deleted),
        cmocka_unit_test(pruner_expires_only_old_complete_jobs),
        cmocka_unit_test(delete_in_each_status),
        cmocka_unit_test(listing_pages_without_duplicates_or_gaps),
        cmocka_unit_test(north_and_south_share_a_bucket),
        cmocka_unit_test(stale_claim_marker_is_ignored_and_removed),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    fixture_log_reset();
    return failed;
}
