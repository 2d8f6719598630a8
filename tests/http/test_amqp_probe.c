/* The RabbitMQ check of the example server's /health: a real broker
 * answers, a closed port and a server that is not a broker do not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "amqp_probe.h"
#include "stack_env.h"

static stack_env env;

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' lacks '%s'", text, part);
}

static void the_stack_broker_answers(void **state)
{
    (void)state;
    char err[256] = "";
    if (amqp_probe(env.amqp_host, atoi(env.amqp_port), 5000, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* A port nobody listens on: bind one, note it, close it. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void a_closed_port_is_reported_down(void **state)
{
    (void)state;
    int port = closed_port();
    char err[256], where[64];
    assert_int_equal(amqp_probe("127.0.0.1", port, 2000, err, sizeof err), -1);
    snprintf(where, sizeof where, "rabbitmq 127.0.0.1:%d: connect: ", port);
    assert_contains(err, where);
    assert_contains(err, "refused");
}

static void a_server_that_is_not_a_broker_is_reported_down(void **state)
{
    (void)state;
    /* PostgreSQL takes "AMQP" as an absurd startup packet length. */
    char err[256], where[64];
    assert_int_equal(amqp_probe(env.pg_host, atoi(env.pg_port), 2000, err, sizeof err), -1);
    snprintf(where, sizeof where, "rabbitmq %s:%s: ", env.pg_host, env.pg_port);
    assert_contains(err, where);
}

static void an_unknown_host_is_reported_down(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(amqp_probe("no-such-host.invalid", 5672, 2000, err, sizeof err), -1);
    assert_contains(err, "rabbitmq no-such-host.invalid:5672: ");
}

int main(void)
{
    int exit_status;
    if (stack_env_load(&env, &exit_status) != 0)
        return exit_status;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_stack_broker_answers),
        cmocka_unit_test(a_closed_port_is_reported_down),
        cmocka_unit_test(a_server_that_is_not_a_broker_is_reported_down),
        cmocka_unit_test(an_unknown_host_is_reported_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
