/* The store's contract cases (tests/unit/store_contract.c) on PostgreSQL,
 * the same cases tests/unit/test_fake_store.c runs on the in-memory fake:
 * what passes here is what the real store does, so a case that fails only
 * on the fake shows a bug of the fake.
 *
 * The cases need a table of their own (they count rows and take batches
 * that would otherwise pick up other tests' jobs): the program creates a
 * database for its run, empties compute.jobs before each case and drops
 * the database at the end. Time moves by moving every stored time back.
 *
 * random_operations_agree_with_the_fake then runs the same random
 * operations on both and compares every answer and every row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "clock.h"
#include "fake_store.h"
#include "stack_env.h"
#include "store_contract.h"

#define POOL_SIZE 8 /* the claim race, a transaction and the reads beside it */

static stack_env env;
static char dbname[64];
static PGconn *admin; /* on the run's database */
static store *shared; /* the store the cases use */

static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *connect_to(const char *db)
{
    const char *keys[] = {
        "host", "port", "user", "password", "dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {env.pg_host, env.pg_port, env.pg_user,          env.pg_password,
                            db,          "10",        "acp-store-contract", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "# connection to %s: %s", db, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    return conn;
}

static int run(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType status = PQresultStatus(res);
    int rc = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? 0 : -1;
    if (rc)
        fprintf(stderr, "# %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return rc;
}

/* CREATE and DROP DATABASE cannot run in a transaction: from a connection to
 * the stack's own database. */
static int on_default_db(const char *sql)
{
    PGconn *conn = connect_to(env.pg_db);
    if (!conn)
        return -1;
    int rc = run(conn, sql);
    PQfinish(conn);
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dbname, sizeof dbname, "acp_contract_%ld_%ld", (long)getpid(), (long)time(NULL));
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    if (on_default_db(sql) != 0)
        return -1;
    acp_db_config cfg = {
        .host = env.pg_host,
        .port = atoi(env.pg_port),
        .dbname = dbname,
        .user = env.pg_user,
        .password = env.pg_password,
        .pool_size = POOL_SIZE,
    };
    if (store_open(&shared, &cfg, NULL) != 0) {
        fprintf(stderr, "# store_open(%s): %s\n", dbname, acp_last_error());
        return -1;
    }
    admin = connect_to(dbname);
    /* A case that failed with a transaction open must not hang the next. */
    if (!admin || run(admin, "SET lock_timeout = '20s'") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    store_close(shared);
    if (admin)
        PQfinish(admin);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    return on_default_db(sql);
}

static store *pg_open(void)
{
    if (run(admin, "TRUNCATE compute.jobs") != 0)
        fail_msg("could not empty compute.jobs of %s", dbname);
    return shared;
}

static void pg_close(store *st)
{
    (void)st; /* shared by every case */
}

static void pg_advance(store *st, int64_t seconds)
{
    (void)st;
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, seconds);
    const char *values[] = {text};
    PGresult *res = PQexecParams(
        admin,
        "UPDATE compute.jobs SET created = created - d, last_accessed = last_accessed - d, "
        "grabbed = grabbed - d, finished = finished - d, lease_expires = lease_expires - d, "
        "dispatched = dispatched - d, dispatch_retry = dispatch_retry - d, "
        "not_before = not_before - d, cancel_requested = cancel_requested - d "
        "FROM (SELECT make_interval(secs => $1::double precision) AS d) AS shift",
        1, NULL, values, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(res);
    PQclear(res);
    if (status != PGRES_COMMAND_OK)
        fail_msg("could not move the stored times of %s: %s", dbname, PQerrorMessage(admin));
}

static const contract_backend pg_backend = {"postgres", pg_open, pg_close, pg_advance};

/* ---- random operations on both ------------------------------------------------ */

/* The same random operations on PostgreSQL and on the fake, compared call by
 * call (return codes, returned rows in order) and row by row after each
 * step. Leases of 300 or 3000 s and moves of time by 1000 or 10000 s keep every
 * deadline far from "now" on both, so that the milliseconds between the two
 * calls of a step never decide anything. Transactions begin and end within
 * their step (blocking is the contract cases' business).
 *
 * Job control: each id has a priority of its own, so that the claim's order
 * and the queue positions never depend on a random back-off, and a back-off
 * of at most 1 ms, slept off after each requeue of expired leases, so that
 * a retry is due on both sides by the next step; a retry's delay is 0 or
 * 2500 s (between the moves of time). */
#define DIFF_IDS   6
#define DIFF_STEPS 300
#define DIFF_SEEDS 4

typedef struct diff_side {
    store *st;
    unsigned attempts[DIFF_IDS]; /* of the last claim of each id */
    int64_t grabbed[DIFF_IDS];
} diff_side;

static uint64_t diff_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static const char *const diff_queues[] = {"dq-a", "dq-b"};

/* Job control of id @i: its own priority; 1, 2 or 3 attempts. */
static store_run_options diff_options(unsigned i)
{
    return (store_run_options){.layout = ACP_LAYOUT_LCP,
                               .priority = 10 + 10 * (int)i,
                               .max_attempts = 1 + i % 3,
                               .backoff_base_ms = 1,
                               .backoff_max_ms = 1};
}

/* Operations (diff_op's numbers) by weight: runs more often than the rest. */
static const unsigned char diff_ops[] = {
    0,  0,  0,  1,  1,  2,  2,  2,  2,  3,  3,  3,  4,  5,  6,  7,  8,  9,  9,  10,
    10, 11, 11, 12, 12, 13, 14, 14, 15, 16, 16, 16, 17, 18, 19, 20, 20, 21, 21, 22,
};
#define DIFF_WEIGHTS (sizeof diff_ops / sizeof diff_ops[0])
static const char *const diff_owners[] = {"owner-a", "owner-b"};

#define DIFF_EXPECT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg(__VA_ARGS__);                                                                 \
    } while (0)

static void diff_compare_lists(const store_dispatch_list *pg, const store_dispatch_list *fake,
                               const char *where)
{
    DIFF_EXPECT(pg->count == fake->count, "%s: %zu rows on postgres, %zu on the fake", where,
                pg->count, fake->count);
    for (size_t i = 0; i < pg->count; i++) {
        DIFF_EXPECT(acp_job_id_equal(&pg->items[i].id, &fake->items[i].id) &&
                        strcmp(pg->items[i].queue, fake->items[i].queue) == 0 &&
                        pg->items[i].failures == fake->items[i].failures &&
                        pg->items[i].status == fake->items[i].status,
                    "%s: row %zu differs", where, i);
    }
}

static void diff_compare_rows(diff_side *pg, diff_side *fake, const acp_job_id *ids,
                              const char *where)
{
    for (int i = 0; i < DIFF_IDS; i++) {
        store_job a, b;
        int ra = store_get(pg->st, &ids[i], &a), rb = store_get(fake->st, &ids[i], &b);
        DIFF_EXPECT(ra == rb, "%s: get of job %d: %d on postgres, %d on the fake", where, i, ra,
                    rb);
        if (ra == 0) {
            DIFF_EXPECT(
                a.status == b.status && a.attempts == b.attempts &&
                    a.queue_position == b.queue_position && strcmp(a.queue, b.queue) == 0 &&
                    a.input_count == b.input_count && !a.config == !b.config &&
                    (!a.config || !strcmp(a.config, b.config)) && !a.message == !b.message &&
                    (!a.message || !strcmp(a.message, b.message)) && !a.grabbed == !b.grabbed &&
                    !a.finished == !b.finished && a.priority == b.priority &&
                    a.max_attempts == b.max_attempts && !a.cancel_requested == !b.cancel_requested,
                "%s: job %d: postgres has status %d attempts %u position %ld queue %s "
                "message %s grabbed %d finished %d cancel %d; the fake status %d attempts %u "
                "position %ld queue %s message %s grabbed %d finished %d cancel %d",
                where, i, a.status, a.attempts, a.queue_position, a.queue,
                a.message ? a.message : "-", !!a.grabbed, !!a.finished, !!a.cancel_requested,
                b.status, b.attempts, b.queue_position, b.queue, b.message ? b.message : "-",
                !!b.grabbed, !!b.finished, !!b.cancel_requested);
            store_job_free(&a);
            store_job_free(&b);
        }
    }
}

/* One operation on one side; @out gets the rows it returned, @count a count
 * it returned, @extra another value to compare. */
static int diff_op(diff_side *side, const acp_job_id *ids, unsigned op, unsigned i, unsigned k,
                   unsigned q, unsigned o, unsigned n, bool flag, store_dispatch_list *out,
                   size_t *count, int *extra)
{
    store *st = side->st;
    const char *inputs[] = {"f"};
    const char *queue = diff_queues[q], *owner = diff_owners[o];
    unsigned lease = flag ? 3000 : 300;
    store_job job;
    store_tx *tx = NULL;
    acp_job_status status = 0;
    const store_run_options control = diff_options(i);
    int rc;
    switch (op) {
    case 0:
        return store_insert(st, &ids[i], queue, flag ? "{\"x\":1}" : NULL, inputs, 1, &control);
    case 1:
        return store_requeue(st, &ids[i], queue, "{\"re\":1}", inputs, n % 2, &control);
    case 2: /* *extra: which job the claim took */
        rc = store_claim(st, queue, owner, lease, &job);
        *extra = -1;
        for (int c = 0; rc == 0 && c < DIFF_IDS; c++)
            if (acp_job_id_equal(&job.id, &ids[c])) {
                *extra = c;
                side->attempts[c] = job.attempts;
                side->grabbed[c] = job.grabbed;
            }
        if (rc == 0)
            store_job_free(&job);
        return rc;
    case 3:
        return store_finish(st, &ids[i], owner, flag ? ACP_STATUS_COMPLETE : ACP_STATUS_FAILED,
                            flag ? NULL : "no", inputs, NULL, 1);
    case 4:
        return store_touch(st, &ids[i]);
    case 5:
        return store_mark_dispatched(st, &ids[i]);
    case 6:
        return store_clear_dispatched(st, &ids[i]);
    case 7:
        return store_dispatch_failed(st, &ids[i]);
    case 8:
        return store_fail_undispatchable(st, &ids[i], "cannot");
    case 9: {
        const acp_job_id list[] = {ids[i], ids[k], ids[i]};
        bool cancel[3] = {false, false, false};
        rc = store_renew_leases(st, owner, lease, list, 1 + n % 3, count, cancel);
        *extra = cancel[0] * 4 + cancel[1] * 2 + cancel[2];
        return rc;
    }
    case 10:
        rc = store_requeue_expired(st, 1 + k % 3, out);
        clock_sleep_ms(2); /* the back-off, under 1 ms: due by the next step */
        return rc;
    case 11:
        return store_fail_abandoned(st, 1 + k % 3, out);
    case 12: { /* *extra: whether a job of the queues waits for its time */
        const char *queues[] = {queue, diff_queues[1 - q]};
        int64_t next_due = -1;
        rc = store_take_undispatched(st, flag ? 36500 : 0, queues, 1 + n % 2, 1 + k % 4, out,
                                     &next_due);
        *extra = next_due > 0;
        return rc;
    }
    case 13:
        return store_delete(st, &ids[i]);
    case 14: {
        int64_t before = 0;
        if (n % 3 && store_get(st, &ids[i], &job) == 0) {
            before = job.last_accessed + (n % 3 == 1 ? 1 : 0);
            store_job_free(&job);
        }
        rc = store_expire_begin(st, &ids[i], before, &tx, &status);
        *extra = rc == 0 ? (int)status : -1;
        return rc == 0 ? store_tx_end(tx, flag) : rc;
    }
    case 15:
        rc = store_delete_begin(st, &ids[i], &tx);
        return rc == 0 ? store_tx_end(tx, flag) : rc;
    case 16:
        rc = store_finish_begin(st, &ids[i], owner, side->attempts[i] + (n % 4 == 0),
                                side->grabbed[i], &tx, &status);
        *extra = rc == 1 ? (int)status : -1;
        if (rc != 0)
            return rc;
        rc = store_finish_tx(tx, n % 2 ? ACP_STATUS_COMPLETE : ACP_STATUS_FAILED, "rec", inputs,
                             NULL, 1, &ids[i]);
        return store_tx_end(tx, flag) ? -100 : rc;
    case 17:
        return store_delete_expired(st, &ids[i]);
    case 18: {
        store_job *rows;
        unsigned statuses = n % 2 ? 0 : 1u << (1 + k % 5);
        rc = store_list(st, statuses, flag ? queue : NULL, 0, NULL, 10, &rows, count);
        out->items = calloc(*count ? *count : 1, sizeof *out->items);
        for (size_t r = 0; rc == 0 && r < *count; r++) {
            out->items[r].id = rows[r].id;
            memcpy(out->items[r].queue, rows[r].queue, sizeof rows[r].queue);
            out->count = r + 1;
            store_job_free(&rows[r]);
        }
        if (rc == 0)
            free(rows);
        return rc;
    }
    case 21:
        return store_retry(st, &ids[i], owner, "again", flag ? 0 : 2500000);
    case 22:
        rc = store_cancel(st, &ids[i], &status, NULL);
        *extra = rc == 0 ? (int)status : -1;
        return rc;
    default: {
        bool alive[DIFF_IDS], exists[DIFF_IDS];
        rc = store_runs_alive(st, ids, side->attempts, DIFF_IDS, alive);
        if (rc == 0)
            rc = store_exists(st, ids, DIFF_IDS, exists);
        for (int r = 0; r < DIFF_IDS; r++)
            *extra = *extra * 4 + alive[r] * 2 + exists[r];
        return rc;
    }
    }
}

/* On PostgreSQL time moves by moving the stored times back, so the claim
 * times kept for store_finish_begin move with them. */
static void diff_advance(diff_side *pg, diff_side *fake, int64_t seconds)
{
    pg_advance(pg->st, seconds);
    for (int i = 0; i < DIFF_IDS; i++)
        if (pg->grabbed[i])
            pg->grabbed[i] -= seconds * INT64_C(1000000);
    fake_store_advance(fake->st, seconds * INT64_C(1000000));
}

static void random_operations_agree_with_the_fake(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= DIFF_SEEDS; seed++) {
        diff_side pg = {.st = pg_open()}, fake = {0};
        assert_int_equal(fake_store_open(&fake.st, NULL), 0);
        acp_job_id ids[DIFF_IDS];
        for (int i = 0; i < DIFF_IDS; i++)
            assert_int_equal(acp_job_id_generate(&ids[i]), 0);
        uint64_t rng = seed * 0x9e3779b97f4a7c15u;
        int hot = -1;
        unsigned hot_owner = 0;
        for (int step = 0; step < DIFF_STEPS; step++) {
            uint64_t r = diff_random(&rng);
            unsigned op = diff_ops[r % DIFF_WEIGHTS], i = (unsigned)(r >> 8) % DIFF_IDS,
                     k = (unsigned)(r >> 16) % DIFF_IDS, q = (r >> 24) % 4 == 0,
                     o = (r >> 26) % 4 == 0, n = (unsigned)(r >> 32) % 12;
            bool flag = (r >> 40) & 1;
            /* Mostly finish, record, retry and renew the job claimed last, as
             * its owner. */
            if ((op == 3 || op == 9 || op == 16 || op == 21) && hot >= 0 && n % 4) {
                i = (unsigned)hot;
                o = hot_owner;
            }
            char where[64];
            snprintf(where, sizeof where, "seed %" PRIu64 " step %d op %u", seed, step, op);
            if (op == 12 || op == 20) /* every retry due, no deadline near */
                diff_advance(&pg, &fake, 1000);
            if (op == 20 && flag) {
                diff_advance(&pg, &fake, 10000);
                continue;
            }
            store_dispatch_list lp = {0}, lf = {0};
            size_t cp = 0, cf = 0;
            int ep = 0, ef = 0;
            int rp = diff_op(&pg, ids, op, i, k, q, o, n, flag, &lp, &cp, &ep);
            int rf = diff_op(&fake, ids, op, i, k, q, o, n, flag, &lf, &cf, &ef);
            DIFF_EXPECT(rp == rf, "%s: %d on postgres (%s), %d on the fake", where, rp,
                        rp ? acp_last_error() : "", rf);
            if (op == 2 && rp == 0 && ep >= 0) {
                hot = ep;
                hot_owner = o;
            }
            DIFF_EXPECT(cp == cf && ep == ef, "%s: counts %zu/%zu, values %d/%d", where, cp, cf, ep,
                        ef);
            diff_compare_lists(&lp, &lf, where);
            store_dispatch_list_free(&lp);
            store_dispatch_list_free(&lf);
            diff_compare_rows(&pg, &fake, ids, where);
        }
        store_close(fake.st);
    }
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    contract = &pg_backend;
    static const struct CMUnitTest own[] = {
        cmocka_unit_test(random_operations_agree_with_the_fake),
    };
    size_t own_count = sizeof own / sizeof own[0];
    struct CMUnitTest *tests = calloc(contract_test_count + own_count, sizeof *tests);
    if (!tests)
        return 1;
    memcpy(tests, contract_tests, contract_test_count * sizeof *tests);
    memcpy(tests + contract_test_count, own, sizeof own);
    int failed = _cmocka_run_group_tests("store_contract", tests, contract_test_count + own_count,
                                         group_setup, group_teardown);
    free(tests);
    return failed;
}
