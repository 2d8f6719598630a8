/* tiny_server.c: see tiny_server.h. */
#include "tiny_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Waits up to 50 ms for @fd to be readable; false once stopped. */
static int tiny_server_wait(tiny_server *s, int fd)
{
    for (;;) {
        if (atomic_load(&s->stop))
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 50);
        if (n > 0)
            return 1;
    }
}

static void *tiny_server_main(void *arg)
{
    tiny_server *s = arg;
    if (!tiny_server_wait(s, s->listener))
        return NULL;
    int fd = accept(s->listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    size_t used = 0;
    while (used < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n")) {
        if (!tiny_server_wait(s, fd))
            break;
        ssize_t n = read(fd, s->request + used, sizeof s->request - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        s->request[used] = '\0';
    }
    if (s->mode == TINY_CAPTURE && s->reply) {
        size_t len = strlen(s->reply), sent = 0;
        while (sent < len) {
            ssize_t n = send(fd, s->reply + sent, len - sent, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            sent += (size_t)n;
        }
    } else {
        while (tiny_server_wait(s, fd)) {
            char sink[4096];
            if (read(fd, sink, sizeof sink) <= 0)
                break;
        }
        while (!atomic_load(&s->stop))
            usleep(10000);
    }
    close(fd);
    return NULL;
}

int tiny_server_start(tiny_server *s, tiny_server_mode mode, const char *reply)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->reply = reply;
    atomic_init(&s->stop, 0);
    s->listener = socket(AF_INET, SOCK_STREAM, 0);
    if (s->listener < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof addr;
    if (bind(s->listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->listener, 4) != 0 ||
        getsockname(s->listener, (struct sockaddr *)&addr, &len) != 0 ||
        pthread_create(&s->thread, NULL, tiny_server_main, s) != 0) {
        close(s->listener);
        return -1;
    }
    s->port = ntohs(addr.sin_port);
    return 0;
}

void tiny_server_stop(tiny_server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->listener);
}
