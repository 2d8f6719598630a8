/* The contract of src/store.h as test cases written once and run on every
 * backend: on the in-memory fake (tests/unit/test_fake_store.c) and on
 * PostgreSQL (tests/integration/test_store_contract.c). A case that passes
 * on PostgreSQL and fails on the fake is a bug of the fake. */
#ifndef ACP_TEST_STORE_CONTRACT_H
#define ACP_TEST_STORE_CONTRACT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store.h"

typedef struct contract_backend {
    const char *name;
    /* A store holding no rows, for one case (fails the test when it cannot). */
    store *(*open)(void);
    void (*close)(store *st);
    /* Move the store's now() @seconds forward: the fake's clock, or on
     * PostgreSQL every stored time of the case's rows as far back. No
     * transaction may be open. */
    void (*advance)(store *st, int64_t seconds);
} contract_backend;

/* The backend the cases run on; the test program sets it before running. */
extern const contract_backend *contract;

/* The cases (each opens its store in setup and closes it in teardown). */
extern const struct CMUnitTest contract_tests[];
extern const size_t contract_test_count;

#endif
