/* The fault plan the fakes share: rules by operation and call, by step,
 * repeated failures, and the counts a test reads back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "async_platform.h"
#include "fault.h"

static void nth_call_of_an_operation_fails(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    fault_plan_add(&plan,
                   (fault_rule){.op = "s3.put", .nth = 2, .times = 2, .error = ACP_ESTORAGE});
    assert_null(fault_check(&plan, "s3.put"));
    assert_null(fault_check(&plan, "s3.get"));
    const fault_rule *rule = fault_check(&plan, "s3.put");
    assert_non_null(rule);
    assert_int_equal(rule->error, ACP_ESTORAGE);
    assert_int_equal(plan.failed_step, 3);
    assert_non_null(fault_check(&plan, "s3.put"));
    assert_null(fault_check(&plan, "s3.put"));
    assert_int_equal(fault_calls(&plan, "s3.put"), 4);
    assert_int_equal(fault_calls(&plan, "s3.get"), 1);
    assert_int_equal(fault_calls(&plan, "amqp.publish"), 0);
    assert_int_equal(fault_calls(&plan, NULL), 5);
    fault_plan_destroy(&plan);
}

static void a_step_fails_whatever_its_operation(void **state)
{
    (void)state;
    fault_plan plan;
    fault_plan_init(&plan);
    fault_plan_add(&plan, (fault_rule){.step = 3, .error = ACP_EDB});
    assert_null(fault_check(&plan, "pg.insert"));
    assert_null(fault_check(&plan, "s3.put"));
    const fault_rule *rule = fault_check(&plan, "amqp.publish");
    assert_non_null(rule);
    assert_int_equal(rule->error, ACP_EDB);
    assert_string_equal(plan.failed_op, "amqp.publish");
    assert_null(fault_check(&plan, "amqp.publish"));
    fault_plan_reset(&plan);
    assert_int_equal(fault_calls(&plan, NULL), 0);
    for (int i = 0; i < 5; i++)
        assert_null(fault_check(&plan, "pg.insert"));
    fault_plan_destroy(&plan);
}

static void every_call_and_no_plan(void **state)
{
    (void)state;
    assert_null(fault_check(NULL, "s3.put"));
    fault_plan plan;
    fault_plan_init(&plan);
    fault_plan_add(&plan, (fault_rule){.op = "s3.head", .error = ACP_ESTORAGE, .kind = 503});
    for (int i = 0; i < 3; i++) {
        const fault_rule *rule = fault_check(&plan, "s3.head");
        assert_non_null(rule);
        assert_int_equal(rule->kind, 503);
    }
    assert_null(fault_check(&plan, "s3.put"));
    fault_plan_destroy(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nth_call_of_an_operation_fails),
        cmocka_unit_test(a_step_fails_whatever_its_operation),
        cmocka_unit_test(every_call_and_no_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
