/* The command executor's allowlist (executors.command.programs): which
 * programs a job may run, and which of their options it may pass. Loaded
 * with the settings; checked at submission and again on the worker. */
#ifndef SERVER_PROGRAMS_H
#define SERVER_PROGRAMS_H

/* Applies the command executor's resource limits. */
#define PROGRAMS_PRLIMIT "/usr/bin/prlimit"

#include <stddef.h>

#include <json-c/json.h>

/* A program the command executor may run: the name jobs use, its absolute
 * path and the options a job may pass to it. An option ending in '='
 * ("--lines=") admits any value after the '='; any other is matched
 * whole. */
typedef struct settings_program {
    char *name;
    char *path;
    char **options;
    size_t option_count;
} settings_program;

/* Add the programs of @map (the JSON value of executors.command.programs:
 * name -> "/abs/path" or name -> {"path": "/abs/path", "options": [...]})
 * to *@programs / *@count. Returns 0, or -1 with a message naming the key
 * in @err. */
int programs_load(json_object *map, settings_program **programs, size_t *count, char *err,
                  size_t errlen);

/* Check at start-up what running them needs: prlimit(1), which applies the
 * resource limits, and with the sandbox (@sandbox non-zero) bubblewrap at
 * @bwrap and every program under /usr, the only part of the host the
 * sandbox shows. Returns 0, or -1 with a message naming the key in @err. */
int programs_check(const settings_program *programs, size_t count, int sandbox, const char *bwrap,
                   char *err, size_t errlen);

/* Release an array of @count programs. NULL is fine. */
void programs_free(settings_program *programs, size_t count);

/* Whether @arg may be passed to @prog: an argument starting with '-' must
 * be one of the program's options, so that a client cannot turn an
 * argument into an option the operator did not allow (wc
 * --files0-from=FILE reads the files FILE names). */
int programs_arg_allowed(const settings_program *prog, const char *arg);

#endif
