#include "programs.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROGRAMS_NAME_MAX   64
#define PROGRAMS_OPTION_MAX 128

static int programs_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int programs_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int programs_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > PROGRAMS_NAME_MAX)
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

/* json-c keeps a NUL inside a string; a C string would silently end there. */
static const char *programs_string(json_object *value)
{
    if (!json_object_is_type(value, json_type_string))
        return NULL;
    const char *s = json_object_get_string(value);
    return strlen(s) == (size_t)json_object_get_string_len(value) ? s : NULL;
}

/* An option is "-x", "--name" or "--name=": printable, no spaces. */
static int programs_option_ok(const char *opt)
{
    size_t n = strlen(opt);
    if (n < 2 || n > PROGRAMS_OPTION_MAX || opt[0] != '-')
        return 0;
    for (const char *p = opt; *p; p++)
        if (*p <= ' ' || *p > '~')
            return 0;
    return 1;
}

static int programs_load_options(settings_program *prog, json_object *list, char *err,
                                 size_t errlen)
{
    if (!json_object_is_type(list, json_type_array))
        return programs_fail(err, errlen,
                             "executors.command.programs.%s.options: expected an array of "
                             "options such as \"-c\" or \"--lines=\"",
                             prog->name);
    size_t n = json_object_array_length(list);
    prog->options = calloc(n ? n : 1, sizeof *prog->options);
    if (!prog->options)
        return programs_fail(err, errlen, "executors.command.programs: out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *opt = programs_string(json_object_array_get_idx(list, i));
        if (!opt || !programs_option_ok(opt))
            return programs_fail(err, errlen,
                                 "executors.command.programs.%s.options[%zu]: expected an option "
                                 "starting with '-' (2..%d printable characters, no spaces)",
                                 prog->name, i, PROGRAMS_OPTION_MAX);
        if (!(prog->options[i] = strdup(opt)))
            return programs_fail(err, errlen, "executors.command.programs: out of memory");
        prog->option_count++;
    }
    return 0;
}

static int programs_load_one(settings_program *prog, const char *name, json_object *value,
                             char *err, size_t errlen)
{
    if (!programs_name_ok(name))
        return programs_fail(err, errlen,
                             "executors.command.programs: '%s' is not a name of 1..%d "
                             "characters of [A-Za-z0-9_.-]",
                             name, PROGRAMS_NAME_MAX);
    if (!(prog->name = strdup(name)))
        return programs_fail(err, errlen, "executors.command.programs: out of memory");
    json_object *path = value, *options = NULL;
    if (json_object_is_type(value, json_type_object)) {
        json_object_object_foreach(value, key, member)
        {
            if (strcmp(key, "path") == 0)
                path = member;
            else if (strcmp(key, "options") == 0)
                options = member;
            else
                return programs_fail(err, errlen,
                                     "executors.command.programs.%s.%s: unknown setting (known: "
                                     "path, options)",
                                     name, key);
        }
        if (path == value)
            path = NULL;
    }
    const char *p = path ? programs_string(path) : NULL;
    if (!p || p[0] != '/' || strlen(p) >= PATH_MAX)
        return programs_fail(err, errlen,
                             "executors.command.programs.%s: expected an absolute path, or "
                             "{\"path\": ..., \"options\": [...]}",
                             name);
    /* Checked now so that a typo shows at start-up, not in a failed job. */
    if (access(p, X_OK) != 0) {
        char reason[128];
        return programs_fail(err, errlen, "executors.command.programs.%s: %s: %s", name, p,
                             strerror_r(errno, reason, sizeof reason));
    }
    if (!(prog->path = strdup(p)))
        return programs_fail(err, errlen, "executors.command.programs: out of memory");
    return options ? programs_load_options(prog, options, err, errlen) : 0;
}

int programs_load(json_object *map, settings_program **programs, size_t *count, char *err,
                  size_t errlen)
{
    if (!json_object_is_type(map, json_type_object))
        return programs_fail(err, errlen,
                             "executors.command.programs: expected an object of name: path");
    json_object_object_foreach(map, name, value)
    {
        settings_program *grown = realloc(*programs, (*count + 1) * sizeof *grown);
        if (!grown)
            return programs_fail(err, errlen, "executors.command.programs: out of memory");
        *programs = grown;
        settings_program *prog = &grown[*count];
        memset(prog, 0, sizeof *prog);
        (*count)++; /* owned from here on, even half-filled */
        if (programs_load_one(prog, name, value, err, errlen) != 0)
            return -1;
    }
    return 0;
}

void programs_free(settings_program *programs, size_t count)
{
    for (size_t i = 0; programs && i < count; i++) {
        free(programs[i].name);
        free(programs[i].path);
        for (size_t k = 0; k < programs[i].option_count; k++)
            free(programs[i].options[k]);
        free(programs[i].options);
    }
    free(programs);
}

int programs_arg_allowed(const settings_program *prog, const char *arg)
{
    if (arg[0] != '-')
        return 1;
    for (size_t i = 0; i < prog->option_count; i++) {
        const char *opt = prog->options[i];
        size_t n = strlen(opt);
        if (opt[n - 1] == '=' ? strncmp(arg, opt, n) == 0 : strcmp(arg, opt) == 0)
            return 1;
    }
    return 0;
}

int programs_check(const settings_program *programs, size_t count, int sandbox, const char *bwrap,
                   char *err, size_t errlen)
{
    char reason[128];
    if (count > 0 && access(PROGRAMS_PRLIMIT, X_OK) != 0)
        return programs_fail(err, errlen,
                             "executors.command: %s: %s (it applies the resource limits: install "
                             "util-linux)",
                             PROGRAMS_PRLIMIT, strerror_r(errno, reason, sizeof reason));
    if (!sandbox)
        return 0;
    if (bwrap[0] != '/' || access(bwrap, X_OK) != 0)
        return programs_fail(err, errlen,
                             "executors.command.bwrap: %s: %s (install bubblewrap, or set "
                             "executors.command.sandbox to false to run programs unconfined)",
                             bwrap,
                             bwrap[0] != '/' ? "not an absolute path"
                                             : strerror_r(errno, reason, sizeof reason));
    for (size_t i = 0; i < count; i++) {
        char *real = realpath(programs[i].path, NULL);
        int inside = real && strncmp(real, "/usr/", 5) == 0;
        free(real);
        if (!inside)
            return programs_fail(err, errlen,
                                 "executors.command.programs.%s: %s is not under /usr, the only "
                                 "part of the host the sandbox shows",
                                 programs[i].name, programs[i].path);
    }
    return 0;
}
