/* The pure parts of job logs: see joblog_text.h. */
#include "joblog_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid sequence at @s (@len bytes available): 1..4; 0 when
 * invalid; -1 when @s may begin a valid sequence that @len cuts short. */
static int joblog_utf8_sequence(const unsigned char *s, size_t len)
{
    if (s[0] < 0x80)
        return 1;
    int need = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (need == 0 || s[0] > 0xf4)
        return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= len)
            return -1;
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        /* No overlong forms, no surrogates, nothing above U+10FFFF: the
         * second byte alone tells. */
        if (i == 1 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f) ||
                       (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f)))
            return 0;
    }
    return need;
}

/* Repair @len bytes with nothing carried; the cut sequence at the end (if
 * any, and not @final) goes to @state. */
static int joblog_utf8_run(joblog_utf8 *state, const unsigned char *s, size_t len, bool final,
                           buf *out)
{
    size_t start = 0, i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        int n = joblog_utf8_sequence(s + i, len - i);
        if (n > 0) {
            i += (size_t)n;
            continue;
        }
        int rc = buf_append(out, s + start, i - start);
        if (rc)
            return rc;
        if (n < 0 && !final) {
            memcpy(state->carry, s + i, len - i);
            state->len = len - i;
            return 0;
        }
        if ((rc = buf_append(out, JOBLOG_REPLACEMENT, 3)))
            return rc;
        i++;
        start = i;
    }
    return buf_append(out, s + start, len - start);
}

int joblog_utf8_repair(joblog_utf8 *state, const void *data, size_t len, bool final, buf *out)
{
    const unsigned char *s = data;
    if (state->len) {
        /* Complete the carried sequence with the first bytes of this write. */
        unsigned char seq[4];
        size_t have = state->len, take = 0;
        memcpy(seq, state->carry, have);
        while (have + take < 4 && take < len)
            seq[have + take] = s[take], take++;
        int n = joblog_utf8_sequence(seq, have + take);
        state->len = 0;
        if (n < 0 && !final) {
            memcpy(state->carry, seq, have + take);
            state->len = have + take;
            return 0;
        }
        int rc;
        if (n > 0) {
            rc = buf_append(out, seq, (size_t)n);
            size_t used = (size_t)n - have;
            s += used, len -= used;
        } else {
            /* Only the carried lead byte is invalid: the rest is looked at
             * again as a sequence of its own. */
            rc = buf_append(out, JOBLOG_REPLACEMENT, 3);
            if (!rc && have > 1)
                rc = joblog_utf8_run(state, state->carry + 1, have - 1, true, out);
        }
        if (rc)
            return rc;
    }
    return joblog_utf8_run(state, s, len, final, out);
}

size_t joblog_whole_lines(const char *data, size_t len, size_t max, bool *newline)
{
    *newline = false;
    for (size_t i = len; i > 0; i--)
        if (data[i - 1] == '\n')
            return i;
    if (len <= max)
        return 0;
    size_t cut = max;
    /* Back to a character's first byte: never split a sequence. */
    while (cut > 0 && ((unsigned char)data[cut] & 0xc0) == 0x80)
        cut--;
    if (cut == 0)
        cut = max;
    *newline = true;
    return cut;
}

void joblog_cap_make(joblog_cap *cap, uint64_t cap_bytes, uint64_t row_head)
{
    uint64_t head = row_head ? row_head : cap_bytes / 2;
    /* A head from a process with a larger cap leaves this one's tail at
     * least as large as its own head would have been. */
    uint64_t tail = cap_bytes > head ? cap_bytes - head : 0;
    if (tail < cap_bytes / 2)
        tail = cap_bytes / 2;
    cap->head = head;
    cap->tail = tail;
    cap->chunk = (size_t)(tail / 4 ? tail / 4 : 1);
}

uint64_t joblog_tail_start(const joblog_cap *cap, uint64_t size)
{
    uint64_t start = size > cap->tail ? size - cap->tail : 0;
    return start > cap->head ? start : cap->head;
}

size_t joblog_marker(uint64_t dropped, char *out)
{
    int n = snprintf(out, JOBLOG_MARKER_MAX, "[... %" PRIu64 " bytes dropped ...]\n", dropped);
    return n > 0 ? (size_t)n : 0;
}
