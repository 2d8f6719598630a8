#include "fault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

void fault_plan_init(fault_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    if (pthread_mutex_init(&plan->lock, NULL) != 0)
        abort();
}

void fault_plan_destroy(fault_plan *plan)
{
    pthread_mutex_destroy(&plan->lock);
}

void fault_plan_reset(fault_plan *plan)
{
    pthread_mutex_lock(&plan->lock);
    plan->rule_count = 0;
    plan->steps = 0;
    plan->op_count = 0;
    plan->failed_step = 0;
    plan->failed_op = NULL;
    pthread_mutex_unlock(&plan->lock);
}

void fault_plan_add(fault_plan *plan, fault_rule rule)
{
    pthread_mutex_lock(&plan->lock);
    if (plan->rule_count == FAULT_RULES_MAX) {
        fprintf(stderr, "fault plan: more than %d rules\n", FAULT_RULES_MAX);
        abort();
    }
    plan->rules[plan->rule_count++] = rule;
    pthread_mutex_unlock(&plan->lock);
}

void fault_plan_only_thread(fault_plan *plan, bool on)
{
    pthread_mutex_lock(&plan->lock);
    plan->one_thread = on;
    plan->thread = pthread_self();
    pthread_mutex_unlock(&plan->lock);
}

static unsigned *fault_op_counter(fault_plan *plan, const char *op)
{
    for (size_t i = 0; i < plan->op_count; i++)
        if (strcmp(plan->ops[i].op, op) == 0)
            return &plan->ops[i].calls;
    if (plan->op_count == FAULT_OPS_MAX) {
        fprintf(stderr, "fault plan: more than %d operations\n", FAULT_OPS_MAX);
        abort();
    }
    plan->ops[plan->op_count].op = op;
    plan->ops[plan->op_count].calls = 0;
    return &plan->ops[plan->op_count++].calls;
}

static bool fault_matches(const fault_rule *rule, const char *op, unsigned step, unsigned call)
{
    if (rule->step)
        return rule->step == step && (!rule->op || strcmp(rule->op, op) == 0);
    if (rule->op && strcmp(rule->op, op) != 0)
        return false;
    if (rule->nth == 0)
        return true;
    unsigned times = rule->times ? rule->times : 1;
    return call >= rule->nth && call - rule->nth < times;
}

const fault_rule *fault_check(fault_plan *plan, const char *op)
{
    if (!plan)
        return NULL;
    pthread_mutex_lock(&plan->lock);
    if (plan->one_thread && !pthread_equal(plan->thread, pthread_self())) {
        pthread_mutex_unlock(&plan->lock);
        return NULL;
    }
    unsigned step = ++plan->steps;
    unsigned call = ++*fault_op_counter(plan, op);
    const fault_rule *failing = NULL;
    unsigned delay_ms = 0;
    for (size_t i = 0; i < plan->rule_count; i++) {
        const fault_rule *rule = &plan->rules[i];
        if (!fault_matches(rule, op, step, call))
            continue;
        if (rule->delay_ms > delay_ms)
            delay_ms = rule->delay_ms;
        if (rule->error && !failing)
            failing = rule;
    }
    if (failing) {
        plan->failed_step = step;
        plan->failed_op = op;
    }
    pthread_mutex_unlock(&plan->lock);
    if (delay_ms)
        clock_sleep_ms(delay_ms);
    return failing;
}

unsigned fault_calls(fault_plan *plan, const char *op)
{
    pthread_mutex_lock(&plan->lock);
    unsigned calls = plan->steps;
    if (op) {
        calls = 0;
        for (size_t i = 0; i < plan->op_count; i++)
            if (strcmp(plan->ops[i].op, op) == 0)
                calls = plan->ops[i].calls;
    }
    pthread_mutex_unlock(&plan->lock);
    return calls;
}
