/* The contract of the S3 transport seam (src/transport.h) as cmocka cases
 * written once and run on every transport: the in-memory fake
 * (tests/unit/test_transport_fake.c) and the real ones against the radosgw
 * of scripts/stack (tests/integration/test_transport_contract.c). They
 * assert what a caller of transport.h relies on: byte-identical round
 * trips, the outcome of each failure, listing order and paging, that every
 * request of a batch gets its outcome, and multipart upload where caps
 * announce it (and a plain refusal where they do not).
 *
 * Every case works under a key prefix of its own, several segments long,
 * made of every character the project allows in names ([A-Za-z0-9_.-]),
 * and removes what it wrote (objects and incomplete uploads) in teardown. */
#ifndef ACP_TEST_TRANSPORT_CONTRACT_H
#define ACP_TEST_TRANSPORT_CONTRACT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "transport.h"

typedef struct transport_contract_factory {
    const char *name; /* prefixed to each case's name */
    /* A transport for one case on a bucket it may write to; NULL (with a
     * message on stderr) fails the case. The case closes it. */
    transport *(*open)(void);
} transport_contract_factory;

/* Every case once per factory of @factories, in one array for
 * cmocka_run_group_tests (names "<factory>: <case>"); *@count gets its
 * length. Free it with transport_contract_free. */
struct CMUnitTest *transport_contract_tests(const transport_contract_factory *factories,
                                            size_t factory_count, size_t *count);
void transport_contract_free(struct CMUnitTest *tests, size_t count);

#endif
