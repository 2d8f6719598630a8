#include "cmdout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One read: a pipe holds 64 KiB by default. */
#define CMDOUT_READ_BYTES (64u << 10)

int cmdout_init(cmdout *o, int out_fd, int err_fd, int out_file, int err_file, uint64_t limit,
                cmdout_log_fn log, void *log_data)
{
    memset(o, 0, sizeof *o);
    o->streams[0] = (cmdout_stream){.name = "stdout.txt", .pipe_fd = out_fd, .file_fd = out_file};
    o->streams[1] = (cmdout_stream){.name = "stderr.txt", .pipe_fd = err_fd, .file_fd = err_file};
    o->limit = limit;
    o->log = log;
    o->log_data = log_data;
    o->buf = malloc(CMDOUT_READ_BYTES);
    o->streams[0].held = malloc(CMDOUT_LINE_MAX);
    o->streams[1].held = malloc(CMDOUT_LINE_MAX);
    if (o->buf && o->streams[0].held && o->streams[1].held)
        return 0;
    cmdout_finish(o);
    return -1;
}

void cmdout_poll_fds(const cmdout *o, int fds[2])
{
    fds[0] = o->streams[0].pipe_fd;
    fds[1] = o->streams[1].pipe_fd;
}

int cmdout_open(const cmdout *o)
{
    return o->streams[0].pipe_fd >= 0 || o->streams[1].pipe_fd >= 0;
}

static void cmdout_file(cmdout *o, cmdout_stream *s, const char *data, size_t len)
{
    if (s->file_fd < 0 || s->write_error)
        return;
    if (o->limit && len > o->limit - s->written) {
        /* What the file limit (RLIMIT_FSIZE) would have let through. */
        len = (size_t)(o->limit - s->written);
        s->over = 1;
    }
    while (len > 0) {
        ssize_t n = write(s->file_fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s->write_error = errno;
            return;
        }
        data += n;
        len -= (size_t)n;
        s->written += (uint64_t)n;
    }
}

/* Keep the start of a line; a line that fills the buffer is broken there. */
static void cmdout_hold(cmdout *o, cmdout_stream *s, const char *data, size_t len)
{
    while (len > 0) {
        size_t n = CMDOUT_LINE_MAX - s->held_len < len ? CMDOUT_LINE_MAX - s->held_len : len;
        memcpy(s->held + s->held_len, data, n);
        s->held_len += n;
        data += n;
        len -= n;
        if (s->held_len == CMDOUT_LINE_MAX) {
            o->log(o->log_data, s->held, s->held_len);
            o->log(o->log_data, "\n", 1);
            s->held_len = 0;
        }
    }
}

void cmdout_take(cmdout *o, int which, const char *data, size_t len)
{
    cmdout_stream *s = &o->streams[which];
    cmdout_file(o, s, data, len);
    const char *last = len ? memrchr(data, '\n', len) : NULL;
    if (!last) {
        cmdout_hold(o, s, data, len);
        return;
    }
    /* Only this thread writes the job's log: the held start and the rest of
     * its line cannot be split by the other stream's text. */
    if (s->held_len) {
        o->log(o->log_data, s->held, s->held_len);
        s->held_len = 0;
    }
    size_t whole = (size_t)(last + 1 - data);
    o->log(o->log_data, data, whole);
    cmdout_hold(o, s, last + 1, len - whole);
}

void cmdout_pump(cmdout *o, const short revents[2])
{
    for (int i = 0; i < 2; i++) {
        cmdout_stream *s = &o->streams[i];
        if (s->pipe_fd < 0 || revents[i] == 0)
            continue;
        ssize_t n = read(s->pipe_fd, o->buf, CMDOUT_READ_BYTES);
        if (n > 0) {
            cmdout_take(o, i, o->buf, (size_t)n);
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(s->pipe_fd);
            s->pipe_fd = -1;
        }
    }
}

int cmdout_over(const cmdout *o, const char **name)
{
    for (int i = 0; i < 2; i++)
        if (o->streams[i].over) {
            *name = o->streams[i].name;
            return 1;
        }
    return 0;
}

int cmdout_write_error(const cmdout *o, const char **name)
{
    for (int i = 0; i < 2; i++)
        if (o->streams[i].write_error) {
            *name = o->streams[i].name;
            return o->streams[i].write_error;
        }
    return 0;
}

void cmdout_finish(cmdout *o)
{
    for (int i = 0; i < 2; i++) {
        cmdout_stream *s = &o->streams[i];
        if (s->held && s->held_len) {
            o->log(o->log_data, s->held, s->held_len);
            o->log(o->log_data, "\n", 1);
        }
        free(s->held);
        s->held = NULL;
        s->held_len = 0;
        if (s->pipe_fd >= 0)
            close(s->pipe_fd);
        s->pipe_fd = -1;
        if (s->file_fd >= 0 && close(s->file_fd) != 0 && !s->write_error)
            s->write_error = errno;
        s->file_fd = -1;
    }
    free(o->buf);
    o->buf = NULL;
}
