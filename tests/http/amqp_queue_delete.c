/* Deletes RabbitMQ queues that a test created (the platform declares
 * "<queue id>_jobs" and never deletes it):
 *   amqp-queue-delete HOST PORT USER PASSWORD QUEUE... */
#include <stdio.h>
#include <stdlib.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

static int rpc_ok(amqp_rpc_reply_t reply, const char *what)
{
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return 1;
    fprintf(stderr, "amqp-queue-delete: %s failed (reply type %d)\n", what, (int)reply.reply_type);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: amqp-queue-delete HOST PORT USER PASSWORD QUEUE...\n");
        return 2;
    }
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = amqp_tcp_socket_new(conn);
    int status = 1;
    if (!socket || amqp_socket_open(socket, argv[1], atoi(argv[2])) != AMQP_STATUS_OK) {
        fprintf(stderr, "amqp-queue-delete: cannot connect to %s:%s\n", argv[1], argv[2]);
        amqp_destroy_connection(conn);
        return 1;
    }
    if (rpc_ok(amqp_login(conn, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, argv[3], argv[4]),
               "login") &&
        amqp_channel_open(conn, 1) && rpc_ok(amqp_get_rpc_reply(conn), "channel.open")) {
        status = 0;
        for (int i = 5; i < argc; i++) {
            amqp_queue_delete(conn, 1, amqp_cstring_bytes(argv[i]), 0, 0);
            if (!rpc_ok(amqp_get_rpc_reply(conn), argv[i]))
                status = 1;
        }
        amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    }
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return status;
}
