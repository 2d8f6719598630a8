/* The command executor's output: the program's stdout and stderr come
 * through pipes; each goes into its result file (stdout.txt, stderr.txt:
 * exactly what the program wrote, up to executors.command.max_file_bytes)
 * and, line by line, into the job's log as it is written (acp_job_log_write),
 * so that the log can be followed while the program runs. Lines of the two
 * streams interleave whole, in the order they were read: the start of a
 * line waits for its newline (at most CMDOUT_LINE_MAX bytes of it: then the
 * line is broken there), and a last line without a newline gets one in the
 * log (the files keep the bytes as they were). */
#ifndef SERVER_CMDOUT_H
#define SERVER_CMDOUT_H

#include <stddef.h>
#include <stdint.h>

#define CMDOUT_LINE_MAX (64u << 10)

/* Where whole lines go: acp_job_log_write() in the server. Its failures are
 * not the job's: a log that cannot be written leaves the files alone. */
typedef int (*cmdout_log_fn)(void *userdata, const void *data, size_t len);

typedef struct cmdout_stream {
    const char *name; /* "stdout.txt" */
    int pipe_fd;      /* the read end; -1 after its end */
    int file_fd;      /* the result file; -1: none */
    uint64_t written; /* to the file */
    int over;         /* the program wrote more than the limit */
    int write_error;  /* errno of a failed write to the file; 0: none */
    char *held;       /* the start of a line (CMDOUT_LINE_MAX bytes) */
    size_t held_len;
} cmdout_stream;

typedef struct cmdout {
    cmdout_stream streams[2]; /* stdout, stderr */
    uint64_t limit;           /* bytes per file; 0: none */
    cmdout_log_fn log;
    void *log_data;
    char *buf; /* one read */
} cmdout;

/* Set up for the pipes @out_fd and @err_fd (read ends, owned from now on)
 * and the files @out_file and @err_file (owned too; -1 for none). Returns
 * 0, or -1 when out of memory (everything given is closed). */
int cmdout_init(cmdout *o, int out_fd, int err_fd, int out_file, int err_file, uint64_t limit,
                cmdout_log_fn log, void *log_data);

/* The pipes still open into @fds[0..1] (fd -1 for a closed one), for
 * poll(). */
void cmdout_poll_fds(const cmdout *o, int fds[2]);

/* Read once from each pipe whose @revents (poll's, in stream order) say
 * readable or hung up; a pipe at its end is closed. */
void cmdout_pump(cmdout *o, const short revents[2]);

/* Hand @len bytes read from stream @which over to its file and the log (what
 * cmdout_pump does with what it reads). */
void cmdout_take(cmdout *o, int which, const char *data, size_t len);

/* 1 while a pipe is open. */
int cmdout_open(const cmdout *o);

/* 1 when a stream went over the limit (its name in *name). */
int cmdout_over(const cmdout *o, const char **name);

/* The first failed write of a file: its errno (its name in *name), or 0. */
int cmdout_write_error(const cmdout *o, const char **name);

/* Write the held last lines to the log, close everything, free. Closing the
 * files is checked: a failed close counts as a failed write. */
void cmdout_finish(cmdout *o);

#endif
