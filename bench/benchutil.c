/* Helpers of the benchmark programs; see benchutil.h. */
#include "benchutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* ---- clocks ------------------------------------------------------------ */

int64_t bench_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t bench_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- statistics -------------------------------------------------------- */

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double bench_rank(const double *sorted, size_t count, double q)
{
    size_t rank = (size_t)ceil(q * (double)count);
    if (rank < 1)
        rank = 1;
    if (rank > count)
        rank = count;
    return sorted[rank - 1];
}

bench_dist bench_dist_of(double *values, size_t count)
{
    bench_dist d = {0};
    d.count = count;
    if (count == 0)
        return d;
    qsort(values, count, sizeof *values, bench_cmp_double);
    double sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += values[i];
    d.min = values[0];
    d.max = values[count - 1];
    d.p50 = bench_rank(values, count, 0.50);
    d.p95 = bench_rank(values, count, 0.95);
    d.p99 = bench_rank(values, count, 0.99);
    d.mean = sum / (double)count;
    return d;
}

/* ---- JSON -------------------------------------------------------------- */

void bench_json_init(bench_json *j, FILE *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
    j->first[0] = true;
}

static void bench_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void bench_json_key(bench_json *j, const char *key)
{
    if (!j->first[j->depth])
        fputc(',', j->out);
    j->first[j->depth] = false;
    if (key) {
        bench_json_string(j->out, key);
        fputc(':', j->out);
    }
}

static void bench_json_open(bench_json *j, const char *key, char bracket)
{
    bench_json_key(j, key);
    fputc(bracket, j->out);
    if (j->depth + 1 < BENCH_JSON_DEPTH)
        j->depth++;
    j->first[j->depth] = true;
    j->closing[j->depth] = bracket == '{' ? '}' : ']';
}

void bench_json_object(bench_json *j, const char *key)
{
    bench_json_open(j, key, '{');
}

void bench_json_array(bench_json *j, const char *key)
{
    bench_json_open(j, key, '[');
}

void bench_json_end(bench_json *j)
{
    if (j->depth == 0)
        return;
    fputc(j->closing[j->depth], j->out);
    j->depth--;
}

void bench_json_num(bench_json *j, const char *key, double value)
{
    bench_json_key(j, key);
    if (isfinite(value))
        fprintf(j->out, "%.9g", value);
    else
        fputs("null", j->out);
}

void bench_json_int(bench_json *j, const char *key, int64_t value)
{
    bench_json_key(j, key);
    fprintf(j->out, "%lld", (long long)value);
}

void bench_json_str(bench_json *j, const char *key, const char *value)
{
    bench_json_key(j, key);
    if (value)
        bench_json_string(j->out, value);
    else
        fputs("null", j->out);
}

void bench_json_bool(bench_json *j, const char *key, bool value)
{
    bench_json_key(j, key);
    fputs(value ? "true" : "false", j->out);
}

void bench_json_dist(bench_json *j, const char *key, const bench_dist *d, double scale)
{
    bench_json_object(j, key);
    bench_json_int(j, "count", (int64_t)d->count);
    if (d->count) {
        bench_json_num(j, "min", d->min * scale);
        bench_json_num(j, "p50", d->p50 * scale);
        bench_json_num(j, "p95", d->p95 * scale);
        bench_json_num(j, "p99", d->p99 * scale);
        bench_json_num(j, "max", d->max * scale);
        bench_json_num(j, "mean", d->mean * scale);
    }
    bench_json_end(j);
}

/* ---- the local stack --------------------------------------------------- */

int bench_env_load(bench_env *env)
{
    const char *missing = stack_env_read(env);
    if (missing) {
        fprintf(stderr, "%s is not set: run eval \"$(scripts/stack up)\" first (bench/run does)\n",
                missing);
        return -1;
    }
    return 0;
}

void bench_run_tag(char out[17])
{
    unsigned char bytes[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    bool filled = fd >= 0 && read(fd, bytes, sizeof bytes) == (ssize_t)sizeof bytes;
    if (fd >= 0)
        close(fd);
    if (!filled) {
        /* Unique enough for naming a run when urandom is unavailable. */
        uint64_t mix = (uint64_t)bench_wall_us() ^ ((uint64_t)getpid() << 40);
        memcpy(bytes, &mix, sizeof bytes);
    }
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", bytes[i]);
}

/* ---- /proc ------------------------------------------------------------- */

static int bench_read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long pid = -1;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid > 0 && pid < 1 << 22 ? (int)pid : -1;
}

static void bench_service_add(bench_services *svc, const char *name, const char *path)
{
    int pid = bench_read_pid_file(path);
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/%d", pid);
    if (pid <= 0 || access(proc, F_OK) != 0) {
        fprintf(stderr, "acp-bench: %s: no live pid in %s; its CPU is not counted\n", name, path);
        return;
    }
    if (svc->count == BENCH_SERVICES_MAX)
        return;
    bench_service *s = &svc->items[svc->count++];
    snprintf(s->name, sizeof s->name, "%s", name);
    s->pid = pid;
}

/* "mon.a.pid" -> "ceph-mon", "osd.0.pid" -> "ceph-osd", "client.rgw.*" ->
 * "radosgw", anything else keeps its file name. */
static void bench_ceph_name(const char *file, char *out, size_t size)
{
    if (strncmp(file, "mon.", 4) == 0)
        snprintf(out, size, "ceph-mon");
    else if (strncmp(file, "osd.", 4) == 0)
        snprintf(out, size, "ceph-osd");
    else if (strncmp(file, "client.rgw", 10) == 0)
        snprintf(out, size, "radosgw");
    else
        snprintf(out, size, "ceph-%.*s", (int)(strlen(file) - 4), file);
}

static int bench_name_order(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

void bench_services_find(bench_services *svc, const char *stack_dir)
{
    memset(svc, 0, sizeof *svc);
    char path[4096];
    snprintf(path, sizeof path, "%s/postgres/data/postmaster.pid", stack_dir);
    bench_service_add(svc, "postgres", path);
    snprintf(path, sizeof path, "%s/rabbitmq/rabbitmq.pid", stack_dir);
    bench_service_add(svc, "rabbitmq", path);
    snprintf(path, sizeof path, "%s/ceph/run", stack_dir);
    struct dirent **entries;
    int n = scandir(path, &entries, NULL, bench_name_order);
    if (n < 0) {
        fprintf(stderr, "acp-bench: %s: %s; Ceph's CPU is not counted\n", path, strerror(errno));
        return;
    }
    for (int i = 0; i < n; i++) {
        const char *file = entries[i]->d_name;
        size_t len = strlen(file);
        if (len > 4 && strcmp(file + len - 4, ".pid") == 0) {
            char name[32], pid_path[4400];
            bench_ceph_name(file, name, sizeof name);
            snprintf(pid_path, sizeof pid_path, "%s/%s", path, file);
            bench_service_add(svc, name, pid_path);
        }
        free(entries[i]);
    }
    free(entries);
}

/* Reads /proc/<pid>/stat. Returns 0 when the process exists. */
static int bench_proc_read(int pid, bench_proc *out)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    /* The command name may hold spaces and parentheses: it ends at the last
     * ')'. Fields from there: state ppid ... utime(14) stime cutime cstime. */
    char *open_paren = strchr(text, '(');
    char *close_paren = strrchr(text, ')');
    if (!open_paren || !close_paren || close_paren < open_paren)
        return -1;
    size_t comm_len = (size_t)(close_paren - open_paren - 1);
    if (comm_len >= sizeof out->comm)
        comm_len = sizeof out->comm - 1;
    memcpy(out->comm, open_paren + 1, comm_len);
    out->comm[comm_len] = '\0';
    unsigned long long field[18] = {0};
    char *p = close_paren + 2; /* field 3, the state */
    for (int f = 3; f <= 17 && *p; f++) {
        while (*p == ' ')
            p++;
        if (f >= 4)
            field[f] = strtoull(p, NULL, 10);
        while (*p && *p != ' ')
            p++;
    }
    out->pid = pid;
    out->ppid = (int)field[4];
    out->ticks = field[14] + field[15];
    out->reaped = field[16] + field[17];
    return 0;
}

static int bench_procs_read(bench_proc **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *dir = opendir("/proc");
    if (!dir)
        return -1;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (*count == cap) {
            size_t grown = cap ? cap * 2 : 256;
            bench_proc *more = realloc(*out, grown * sizeof *more);
            if (!more)
                break;
            *out = more;
            cap = grown;
        }
        if (bench_proc_read(atoi(e->d_name), &(*out)[*count]) == 0)
            (*count)++;
    }
    closedir(dir);
    return 0;
}

static int bench_machine_ticks(uint64_t *busy, uint64_t *total)
{
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n < 4)
        return -1;
    /* user nice system idle iowait irq softirq steal */
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
    return 0;
}

void bench_memory(long *rss_kib, long *hwm_kib)
{
    *rss_kib = *hwm_kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kib = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm_kib = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

long bench_memory_anon(void)
{
    long anon = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "RssAnon:", 8) == 0)
            anon = strtol(line + 8, NULL, 10);
    fclose(f);
    return anon;
}

int bench_reset_peak(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = write(fd, "5", 1) == 1 ? 0 : -1;
    close(fd);
    return rc;
}

int bench_snapshot_take(bench_snapshot *s, const bench_services *svc)
{
    memset(s, 0, sizeof *s);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    s->self_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    bench_machine_ticks(&s->machine_busy, &s->machine_total);
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &s->loadavg1) != 1)
            s->loadavg1 = -1;
        fclose(f);
    }
    bench_procs_read(&s->procs, &s->proc_count);
    /* A service's group: itself, what it reaped, and its live children. */
    for (size_t i = 0; i < svc->count; i++) {
        uint64_t sum = 0;
        for (size_t k = 0; k < s->proc_count; k++) {
            const bench_proc *p = &s->procs[k];
            if (p->pid == svc->items[i].pid || p->ppid == svc->items[i].pid)
                sum += p->ticks + p->reaped;
        }
        s->service_ticks[i] = sum;
    }
    bench_memory(&s->rss_kib, &s->hwm_kib);
    s->mono_us = bench_mono_us();
    return 0;
}

void bench_snapshot_free(bench_snapshot *s)
{
    free(s->procs);
    s->procs = NULL;
    s->proc_count = 0;
}

static bool bench_in_service(const bench_proc *p, const bench_services *svc)
{
    for (size_t i = 0; i < svc->count; i++)
        if (p->pid == svc->items[i].pid || p->ppid == svc->items[i].pid)
            return true;
    return false;
}

void bench_cpu_between(bench_cpu *out, const bench_snapshot *a, const bench_snapshot *b,
                       const bench_services *svc)
{
    memset(out, 0, sizeof *out);
    double tick = (double)sysconf(_SC_CLK_TCK);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    out->wall_s = (double)(b->mono_us - a->mono_us) / 1e6;
    out->self_s = b->self_cpu_s - a->self_cpu_s;
    for (size_t i = 0; i < svc->count; i++) {
        out->service_s[i] = (double)(b->service_ticks[i] - a->service_ticks[i]) / tick;
        out->services_total_s += out->service_s[i];
    }
    out->machine_busy_s = (double)(b->machine_busy - a->machine_busy) / tick;
    out->others_s = out->machine_busy_s - out->self_s - out->services_total_s;
    if (out->others_s < 0)
        out->others_s = 0; /* tick rounding */
    out->capacity_s = out->wall_s * (double)(cpus > 0 ? cpus : 1);
    out->loadavg1_start = a->loadavg1;
    out->loadavg1_end = b->loadavg1;

    /* The busiest other processes: CPU between the snapshots of processes
     * that are neither this one nor a service (a process started meanwhile
     * counts from zero). */
    int self = getpid();
    for (size_t k = 0; k < b->proc_count; k++) {
        const bench_proc *p = &b->procs[k];
        if (p->pid == self || bench_in_service(p, svc))
            continue;
        uint64_t before = 0;
        for (size_t m = 0; m < a->proc_count; m++)
            if (a->procs[m].pid == p->pid) {
                before = a->procs[m].ticks;
                break;
            }
        double used = (double)(p->ticks - (p->ticks >= before ? before : p->ticks)) / tick;
        if (used <= 0)
            continue;
        size_t slot = out->top_other_count;
        if (slot == BENCH_OTHERS_TOP) {
            slot = BENCH_OTHERS_TOP - 1;
            if (out->top_others[slot].cpu_s >= used)
                continue;
        } else {
            out->top_other_count++;
        }
        while (slot > 0 && out->top_others[slot - 1].cpu_s < used) {
            out->top_others[slot] = out->top_others[slot - 1];
            slot--;
        }
        snprintf(out->top_others[slot].comm, sizeof out->top_others[slot].comm, "%s", p->comm);
        out->top_others[slot].pid = p->pid;
        out->top_others[slot].cpu_s = used;
    }
}

void bench_json_cpu(bench_json *j, const char *key, const bench_cpu *cpu, const bench_services *svc,
                    double jobs)
{
    bench_json_object(j, key);
    bench_json_num(j, "wall_s", cpu->wall_s);
    bench_json_num(j, "self_s", cpu->self_s);
    bench_json_object(j, "service_s");
    for (size_t i = 0; i < svc->count; i++)
        bench_json_num(j, svc->items[i].name, cpu->service_s[i]);
    bench_json_end(j);
    bench_json_num(j, "services_total_s", cpu->services_total_s);
    bench_json_num(j, "machine_busy_s", cpu->machine_busy_s);
    bench_json_num(j, "others_s", cpu->others_s);
    bench_json_num(j, "capacity_s", cpu->capacity_s);
    bench_json_num(j, "others_share", cpu->capacity_s > 0 ? cpu->others_s / cpu->capacity_s : 0);
    bench_json_num(j, "loadavg1_start", cpu->loadavg1_start);
    bench_json_num(j, "loadavg1_end", cpu->loadavg1_end);
    bench_json_array(j, "top_others");
    for (size_t i = 0; i < cpu->top_other_count; i++) {
        bench_json_object(j, NULL);
        bench_json_str(j, "comm", cpu->top_others[i].comm);
        bench_json_int(j, "pid", cpu->top_others[i].pid);
        bench_json_num(j, "cpu_s", cpu->top_others[i].cpu_s);
        bench_json_end(j);
    }
    bench_json_end(j);
    if (jobs > 0) {
        bench_json_object(j, "per_job_ms");
        bench_json_num(j, "self", cpu->self_s / jobs * 1e3);
        for (size_t i = 0; i < svc->count; i++)
            bench_json_num(j, svc->items[i].name, cpu->service_s[i] / jobs * 1e3);
        bench_json_num(j, "services_total", cpu->services_total_s / jobs * 1e3);
        bench_json_end(j);
    }
    bench_json_end(j);
}
