/* The running set: the jobs whose leases this process renews. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "platform_state.h"
#include "running.h"

static bool contains(const acp_job_id *ids, size_t count, const acp_job_id *id)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(ids[i].bytes, id->bytes, sizeof id->bytes) == 0)
            return true;
    return false;
}

static void the_set_holds_what_was_added_and_not_removed(void **state)
{
    (void)state;
    acp_platform p;
    memset(&p, 0, sizeof p);
    assert_int_equal(platform_state_init_sync(&p), 0);

    acp_job_id *ids;
    size_t count = 99;
    assert_int_equal(running_copy(&p, &ids, &count), 0);
    assert_null(ids);
    assert_int_equal(count, 0);

    /* More than the first allocation holds. */
    store_job rows[20];
    running_job jobs[20];
    for (size_t i = 0; i < 20; i++) {
        store_job_init(&rows[i]);
        acp_job_id_generate(&rows[i].id);
        jobs[i] = (running_job){.row = &rows[i]};
        assert_int_equal(running_add(&p, &jobs[i]), 0);
    }
    running_remove(&p, &jobs[3]);
    running_remove(&p, &jobs[19]);
    store_job stranger_row;
    store_job_init(&stranger_row);
    acp_job_id_generate(&stranger_row.id);
    running_job stranger = {.row = &stranger_row, .cancel_fd = -1};
    running_remove(&p, &stranger); /* not there: nothing happens */

    assert_int_equal(running_copy(&p, &ids, &count), 0);
    assert_int_equal(count, 18);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(contains(ids, count, &rows[i].id), i != 3 && i != 19);
    assert_false(contains(ids, count, &stranger_row.id));
    /* A copy: later changes do not reach it. */
    running_remove(&p, &jobs[0]);
    assert_true(contains(ids, count, &rows[0].id));
    free(ids);
    for (size_t i = 1; i < 19; i++)
        if (i != 3)
            running_remove(&p, &jobs[i]);

    free(p.running);
    pthread_mutex_destroy(&p.scratch_lock);
    pthread_mutex_destroy(&p.lock);
    pthread_cond_destroy(&p.changed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_set_holds_what_was_added_and_not_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
