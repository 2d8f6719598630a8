/* The job control members of a submission (POST /jobs): priority,
 * max_attempts, timeout_seconds, and not_before or delay_seconds, checked
 * and turned into the fields of acp_submission version 2. Kept apart from
 * api.c so that the rules are tested without a server (tests/http). */
#ifndef SERVER_JOBCTL_H
#define SERVER_JOBCTL_H

#include <stddef.h>
#include <stdint.h>

#include <async_platform.h>
#include <json-c/json.h>

/* A refused member: *@field = @name, the reason formatted into @msg;
 * returns -1 (for the parsers of request members, here and in
 * executors.c). */
int jobctl_fail(const char **field, const char *name, char *msg, size_t msglen, const char *fmt,
                ...) __attribute__((format(printf, 5, 6)));

/* 1 when @key is one of the members this module reads. */
int jobctl_is_member(const char *key);

/* Read the job control members of the request object @body into @sub
 * (initialised by the caller with acp_submission_init; members not given,
 * or null, keep its defaults). @now_us is the wall-clock time in
 * microseconds since the epoch, for the bounds of not_before. Returns 0, or
 * -1 with *field set to the member at fault and the reason in @msg. */
int jobctl_parse(json_object *body, int64_t now_us, acp_submission *sub, const char **field,
                 char *msg, size_t msglen);

/* Parse an RFC 3339 date-time with a time zone offset
 * ("2026-12-03T18:00:00Z", "2026-12-03T19:00:00.250+01:00") into
 * microseconds since the epoch. Returns 0, or -1 when @text is not one. */
int jobctl_parse_time(const char *text, int64_t *us);

/* The submission member that a library refusal of acp_submit() (ACP_EINVAL,
 * its acp_last_error() text @detail) is about, or NULL when it is about none
 * of the job control members. */
const char *jobctl_field_of(const char *detail);

#endif
