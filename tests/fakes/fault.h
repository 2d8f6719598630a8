/* Fault injection shared by the fake backends (tests/fakes): a plan of which
 * calls fail, how, and how long calls take. One plan may be shared by several
 * fakes, so that a test can number every backend step of a scenario (the
 * plan's step counter) and fail each one in turn:
 *
 *     fault_plan plan;
 *     fault_plan_init(&plan);
 *     run_scenario(&plan);                        counts the steps: N
 *     for (unsigned k = 1; k <= N; k++) {
 *         fault_plan_reset(&plan);
 *         fault_plan_add(&plan, (fault_rule){.step = k, .error = ACP_ESTORAGE});
 *         run_scenario(&plan);                    step k fails; check what is left
 *     }
 *
 * Operations are named "<backend>.<op>", e.g. "s3.put", "amqp.publish",
 * "pg.claim". Thread-safe: fakes may be called from several threads. */
#ifndef ACP_FAKE_FAULT_H
#define ACP_FAKE_FAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct fault_rule {
    /* Which calls: those of the operation @op (NULL: any operation)... */
    const char *op;
    /* ...from the @nth matching call on (1-based; 0: every matching call)... */
    unsigned nth;
    /* ...or the call that is step @step of the plan (1-based; 0: unused). */
    unsigned step;
    /* How many matching calls fail from there (0 means 1; ignored when nth
     * is 0). */
    unsigned times;
    /* What they return: an ACP_E* code (0: succeed, only delayed). */
    int error;
    /* Meaning chosen by the fake, e.g. which HTTP status or S3 error code the
     * fake transport reports (see each fake's header). */
    int kind;
    /* Milliseconds the call takes before it answers. */
    unsigned delay_ms;
} fault_rule;

#define FAULT_RULES_MAX 16
#define FAULT_OPS_MAX   64

typedef struct fault_plan {
    pthread_mutex_t lock;
    fault_rule rules[FAULT_RULES_MAX];
    size_t rule_count;
    unsigned steps; /* calls so far, every operation */
    struct {
        const char *op; /* a string literal of the fake's */
        unsigned calls;
    } ops[FAULT_OPS_MAX];
    size_t op_count;
    /* The last step that failed on purpose and its operation (0, NULL: none). */
    unsigned failed_step;
    const char *failed_op;
    /* fault_plan_only_thread: when set, calls of other threads are neither
     * counted nor failed. */
    bool one_thread;
    pthread_t thread;
} fault_plan;

void fault_plan_init(fault_plan *plan);
void fault_plan_destroy(fault_plan *plan);
/* Forget the rules and the counts. */
void fault_plan_reset(fault_plan *plan);
/* Add a rule; aborts the test program when FAULT_RULES_MAX is exceeded. */
void fault_plan_add(fault_plan *plan, fault_rule rule);

/* From now on only the calling thread's calls count as steps (and as calls
 * of their op) and can fail; with @on false, every thread's again. For a
 * scenario run by one thread while others (a platform's workers) call the
 * same fakes at moments of their own: its step numbers stay the same from
 * one run to the next. Kept by fault_plan_reset. */
void fault_plan_only_thread(fault_plan *plan, bool on);

/* Called by a fake at the start of each call of @op (a string literal):
 * counts it, sleeps the delay of a matching rule, and returns the matching
 * rule that makes it fail, or NULL to go on. @plan may be NULL (no faults). */
const fault_rule *fault_check(fault_plan *plan, const char *op);

/* Calls of @op so far (NULL: all operations, i.e. the step count). */
unsigned fault_calls(fault_plan *plan, const char *op);

#endif
