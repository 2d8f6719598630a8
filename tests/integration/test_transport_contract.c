/* The transport contract (tests/contract/transport_contract.c) on every
 * real transport against the radosgw of scripts/stack: the same cases
 * tests/unit/test_transport_fake.c runs on the fake, so that the fake keeps
 * answering as the real store does and both transports answer alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "../contract/transport_contract.h"
#include "async_platform.h"
#include "stack_env.h"
#include "transport_curl.h"
#include "transport_libs3.h"

static stack_env env;

static acp_s3_config stack_s3(void)
{
    return (acp_s3_config){
        .host = env.s3_host,
        .port = atoi(env.s3_port),
        .bucket = env.s3_bucket,
        .access_key = env.s3_access_key,
        .secret_key = env.s3_secret_key,
    };
}

static transport *open_libs3(void)
{
    acp_s3_config cfg = stack_s3();
    transport *t = NULL;
    if (transport_libs3_open(&t, &cfg) != 0)
        fprintf(stderr, "# transport_libs3_open: %s\n", acp_last_error());
    return t;
}

static transport *open_curl(void)
{
    acp_s3_config cfg = stack_s3();
    acp_config defaults;
    acp_config_init(&defaults, ACP_CONFIG_VERSION);
    transport *t = NULL;
    if (transport_curl_open(&t, &cfg, &defaults.s3_client) != 0)
        fprintf(stderr, "# transport_curl_open: %s\n", acp_last_error());
    return t;
}

/* Adding a transport is one line here (and its open function above). */
static const transport_contract_factory factories[] = {
    {"libs3", open_libs3},
    {"curl", open_curl},
};

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    size_t count;
    struct CMUnitTest *tests =
        transport_contract_tests(factories, sizeof factories / sizeof factories[0], &count);
    int failed = _cmocka_run_group_tests("transport_contract", tests, count, NULL, NULL);
    transport_contract_free(tests, count);
    return failed;
}
