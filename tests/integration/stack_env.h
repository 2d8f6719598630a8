/* Settings of the local service stack (scripts/stack) for integration tests.
 *
 * Outside CI a test program skips when no settings are present; with
 * ACP_TEST_REQUIRE_SERVICES=1 (set by scripts/test and CI) missing settings
 * are a failure, so integration tests can never pass by skipping there. */
#ifndef ACP_TEST_STACK_ENV_H
#define ACP_TEST_STACK_ENV_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct stack_env {
    const char *pg_host, *pg_port, *pg_user, *pg_password, *pg_db;
    const char *amqp_host, *amqp_port, *amqp_user, *amqp_password;
    const char *s3_host, *s3_port, *s3_access_key, *s3_secret_key, *s3_bucket;
    /* radosgw's HTTPS port and the file of the test CA that signed its
     * certificate (for 127.0.0.1 only): set by stack_env_load_tls. */
    const char *s3_tls_port, *s3_ca_file;
} stack_env;

/* Fills @env from the environment. Returns the name of the first setting
 * that is missing or empty, or NULL when all are there. The benchmark
 * (bench/) reads the stack's settings through this too. */
static inline const char *stack_env_read(stack_env *env)
{
    static const char *const names[] = {
        "ACP_TEST_PG_HOST",       "ACP_TEST_PG_PORT",   "ACP_TEST_PG_USER",
        "ACP_TEST_PG_PASSWORD",   "ACP_TEST_PG_DB",     "ACP_TEST_AMQP_HOST",
        "ACP_TEST_AMQP_PORT",     "ACP_TEST_AMQP_USER", "ACP_TEST_AMQP_PASSWORD",
        "ACP_TEST_S3_HOST",       "ACP_TEST_S3_PORT",   "ACP_TEST_S3_ACCESS_KEY",
        "ACP_TEST_S3_SECRET_KEY", "ACP_TEST_S3_BUCKET",
    };
    const char **slots = (const char **)env;
    const char *missing = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *value = getenv(names[i]);
        slots[i] = value;
        if ((!value || !*value) && !missing)
            missing = names[i];
    }
    return missing;
}

/* Prints the TAP plan of a program that cannot run for want of @missing
 * (what is wrong with it: @why) and sets *@exit_status. */
static inline int stack_env_missing(const char *missing, const char *why, int *exit_status)
{
    const char *require = getenv("ACP_TEST_REQUIRE_SERVICES");
    if (require && strcmp(require, "1") == 0) {
        printf("1..1\nnot ok 1 - stack settings: %s %s (eval \"$(scripts/stack up)\")\n", missing,
               why);
        *exit_status = 1;
    } else {
        printf("1..0 # SKIP %s %s; run eval \"$(scripts/stack up)\" first\n", missing, why);
        *exit_status = 0;
    }
    return -1;
}

/* Fills @env. Returns 0 when every setting is present. Otherwise prints a TAP
 * plan: a skip (exit status 0 for the caller to return), or, when services
 * are required, a failure; returns the exit status for main(). */
static inline int stack_env_load(stack_env *env, int *exit_status)
{
    const char *missing = stack_env_read(env);
    if (!missing)
        return 0;
    return stack_env_missing(missing, "is not set", exit_status);
}

/* The same, and radosgw's HTTPS settings for tests of TLS:
 * ACP_TEST_S3_TLS_PORT and ACP_TEST_S3_CA_FILE, which must name a readable
 * file (a stack from before HTTPS gets one on its next scripts/stack up). */
static inline int stack_env_load_tls(stack_env *env, int *exit_status)
{
    if (stack_env_load(env, exit_status) != 0)
        return -1;
    env->s3_tls_port = getenv("ACP_TEST_S3_TLS_PORT");
    env->s3_ca_file = getenv("ACP_TEST_S3_CA_FILE");
    if (!env->s3_tls_port || !*env->s3_tls_port)
        return stack_env_missing("ACP_TEST_S3_TLS_PORT", "is not set", exit_status);
    if (!env->s3_ca_file || !*env->s3_ca_file)
        return stack_env_missing("ACP_TEST_S3_CA_FILE", "is not set", exit_status);
    if (access(env->s3_ca_file, R_OK) != 0)
        return stack_env_missing("ACP_TEST_S3_CA_FILE", "names no readable file", exit_status);
    return 0;
}

#endif
