/* Helpers shared by the benchmark (acp-bench) and the floor (acp-bench-floor):
 * clocks, percentiles, a small JSON writer, the settings of the local stack,
 * and CPU accounting of this process, of each backend service and of the rest
 * of the machine from /proc. Nothing here uses the library. */
#ifndef ACP_BENCH_UTIL_H
#define ACP_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "stack_env.h"

/* ---- clocks ------------------------------------------------------------ */

/* Microseconds since the Unix epoch: comparable with the library's job times
 * (PostgreSQL's now() on the same host). */
int64_t bench_wall_us(void);
/* Monotonic microseconds, for durations. */
int64_t bench_mono_us(void);
void bench_sleep_us(int64_t us);

/* ---- statistics -------------------------------------------------------- */

typedef struct bench_dist {
    size_t count;
    double min, p50, p95, p99, max, mean;
} bench_dist;

/* Percentiles (nearest rank) of @count values; sorts @values in place. */
bench_dist bench_dist_of(double *values, size_t count);

/* ---- JSON output ------------------------------------------------------- */

#define BENCH_JSON_DEPTH 16

/* Writes one JSON value to a FILE, keeping track of commas. */
typedef struct bench_json {
    FILE *out;
    int depth;
    bool first[BENCH_JSON_DEPTH];
    char closing[BENCH_JSON_DEPTH]; /* '}' or ']' of each open level */
} bench_json;

void bench_json_init(bench_json *j, FILE *out);
void bench_json_object(bench_json *j, const char *key); /* key NULL inside arrays / at top */
void bench_json_array(bench_json *j, const char *key);
void bench_json_end(bench_json *j); /* closes the innermost object or array */
void bench_json_num(bench_json *j, const char *key, double value);
void bench_json_int(bench_json *j, const char *key, int64_t value);
void bench_json_str(bench_json *j, const char *key, const char *value);
void bench_json_bool(bench_json *j, const char *key, bool value);
void bench_json_dist(bench_json *j, const char *key, const bench_dist *d, double scale);

/* ---- the local stack --------------------------------------------------- */

/* The ACP_TEST_* settings that `scripts/stack env` prints: the integration
 * tests' structure, read the same way. */
typedef stack_env bench_env;

/* Fills @env from the environment; on a missing setting prints which one to
 * stderr and returns -1. */
int bench_env_load(bench_env *env);

/* A random 16-hex-character tag that names this run's queues, S3 root and
 * scratch directory. */
void bench_run_tag(char out[17]);

/* ---- CPU accounting ---------------------------------------------------- */

#define BENCH_SERVICES_MAX 8
#define BENCH_OTHERS_TOP   3

/* A backend service: a process whose pid is in a pid file of the stack's
 * state directory, counted together with its direct children (PostgreSQL's
 * backends, the Erlang VM's helpers) and the children it has reaped. */
typedef struct bench_service {
    char name[32];
    int pid;
} bench_service;

typedef struct bench_services {
    bench_service items[BENCH_SERVICES_MAX];
    size_t count;
} bench_services;

/* Finds the services' pids under @stack_dir (postgres/data/postmaster.pid,
 * rabbitmq/rabbitmq.pid, ceph/run/ *.pid). Missing ones are left out, with a
 * warning on stderr. */
void bench_services_find(bench_services *svc, const char *stack_dir);

typedef struct bench_proc {
    int pid, ppid;
    char comm[24];
    uint64_t ticks;  /* utime + stime */
    uint64_t reaped; /* cutime + cstime */
} bench_proc;

/* A moment's CPU counters of everything. */
typedef struct bench_snapshot {
    int64_t mono_us;
    double self_cpu_s;                    /* getrusage(RUSAGE_SELF): user + system */
    uint64_t machine_busy, machine_total; /* /proc/stat ticks, all CPUs */
    double loadavg1;
    uint64_t service_ticks[BENCH_SERVICES_MAX];
    bench_proc *procs; /* every process, for the "others" ranking */
    size_t proc_count;
    long rss_kib, hwm_kib; /* this process: VmRSS, VmHWM */
} bench_snapshot;

int bench_snapshot_take(bench_snapshot *s, const bench_services *svc);
void bench_snapshot_free(bench_snapshot *s);

/* CPU seconds used between two snapshots. */
typedef struct bench_cpu {
    double wall_s;
    double self_s;
    double service_s[BENCH_SERVICES_MAX];
    double services_total_s;
    double machine_busy_s; /* every CPU of the machine */
    double others_s;       /* machine busy minus ours minus the services */
    double capacity_s;     /* nproc x wall */
    double loadavg1_start, loadavg1_end;
    struct {
        char comm[24];
        int pid;
        double cpu_s;
    } top_others[BENCH_OTHERS_TOP];
    size_t top_other_count;
} bench_cpu;

void bench_cpu_between(bench_cpu *out, const bench_snapshot *a, const bench_snapshot *b,
                       const bench_services *svc);

/* Writes @cpu as a JSON object; per-job values too when @jobs > 0. */
void bench_json_cpu(bench_json *j, const char *key, const bench_cpu *cpu, const bench_services *svc,
                    double jobs);

/* VmRSS and VmHWM of this process, in KiB (-1 when unreadable). */
void bench_memory(long *rss_kib, long *hwm_kib);
/* RssAnon: the part of VmRSS that is not shared libraries or files, in KiB. */
long bench_memory_anon(void);
/* Resets VmHWM to the current RSS (Linux clear_refs "5"), so that a later
 * reading is the peak of what follows. Returns 0 on success. */
int bench_reset_peak(void);

#endif
