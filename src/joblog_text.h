/* The pure parts of job logs: UTF-8 repair, line splitting, the cap's
 * arithmetic and the marker line (no locks, no I/O: unit-tested on their
 * own). */
#ifndef ACP_JOBLOG_TEXT_H
#define ACP_JOBLOG_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The name of the kept log among a job's results. */
#define JOBLOG_FILE "log.txt"

/* The longest line kept whole; a longer one is broken into lines of at most
 * this many bytes (at a character boundary). */
#define JOBLOG_LINE_MAX (64u << 10)

/* The longest marker line: "[... <20 digits> bytes dropped ...]\n". */
#define JOBLOG_MARKER_MAX 48

/* An invalid UTF-8 sequence's replacement (U+FFFD). */
#define JOBLOG_REPLACEMENT "\xEF\xBF\xBD"

/* A UTF-8 sequence cut by the end of a write, kept for the next. */
typedef struct joblog_utf8 {
    unsigned char carry[4];
    size_t len;
} joblog_utf8;

/* Append @len bytes of @data to @out as valid UTF-8: each invalid byte
 * becomes U+FFFD; a sequence that may be completed by the next call waits
 * in @state unless @final (then it is invalid). 0 or ACP_ENOMEM. */
int joblog_utf8_repair(joblog_utf8 *state, const void *data, size_t len, bool final, buf *out);

/* How many leading bytes of @data (@len bytes, valid UTF-8) form whole
 * lines: up to and including the last '\n'. When there is none and @len
 * exceeds @max, the first at most @max bytes that end on a character
 * boundary, with *@newline set (the caller adds the line's end); else 0. */
size_t joblog_whole_lines(const char *data, size_t len, size_t max, bool *newline);

/* The cap of one job's log: the head is the stream's first @head bytes,
 * the tail at most @tail of its last ones, written in chunks of at most
 * @chunk bytes. */
typedef struct joblog_cap {
    uint64_t head;
    uint64_t tail;
    size_t chunk;
} joblog_cap;

/* The cap from config.log_cap_bytes @cap_bytes and the head a writer of the
 * job used before (@row_head 0: none yet, the head is half the cap). */
void joblog_cap_make(joblog_cap *cap, uint64_t cap_bytes, uint64_t row_head);

/* Where the tail may begin once the stream is @size bytes long: chunks of
 * the tail that begin before it are dropped (never below the head). */
uint64_t joblog_tail_start(const joblog_cap *cap, uint64_t size);

/* "[... N bytes dropped ...]\n" into @out (JOBLOG_MARKER_MAX bytes); its
 * length. */
size_t joblog_marker(uint64_t dropped, char *out);

#endif
