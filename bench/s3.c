/* acp-bench-s3: the S3 transports compared on their own (docs/performance.adoc,
 * "S3 transports"): small requests per second and the client's CPU per
 * request, then the throughput of one large file up and down, through the
 * library's workspace operations (objects.h) on the curl (Signature V4) or
 * the libs3 (V2) transport. It links the library's internals, like the
 * unit tests: the transport is below the public API.
 *
 *   acp-bench-s3 [--signature v4|v2] [--threads T] [--rounds N] [--size B]
 *                [--large-mib M] [--label TEXT] [--json FILE]
 *
 * Each of T threads does N rounds of PUT (B bytes), HEAD, GET and DELETE of
 * its own key: 4 x N x T requests. Then one file of M MiB is uploaded with
 * objects_put_fd (in parts with V4: 16 MiB, 4 at once, the defaults) and
 * read back with objects_read. One JSON line goes to --json (default
 * stdout). Settings of the stack come from the ACP_TEST_* variables. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "async_platform.h"
#include "benchutil.h"
#include "objects.h"

typedef struct options {
    acp_s3_signature signature;
    int threads;
    int rounds;
    size_t size;
    size_t large_mib;
    const char *label;
    const char *json;
} options;

static options opt = {ACP_S3_SIGNATURE_V4, 4, 250, 1024, 512, NULL, NULL};
static objects *obj;
static atomic_int failures;

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int count_sink(void *userdata, const void *data, size_t len)
{
    (void)data;
    *(uint64_t *)userdata += len;
    return 0;
}

static void *small_requests(void *arg)
{
    (void)arg;
    acp_job_id id;
    acp_job_id_generate(&id);
    char *body = malloc(opt.size ? opt.size : 1);
    memset(body, 'b', opt.size);
    for (int r = 0; r < opt.rounds; r++) {
        bool exists = false;
        uint64_t got = 0;
        if (objects_put(obj, &id, "small.bin", body, opt.size) ||
            objects_stat(obj, &id, "small.bin", &exists, NULL, NULL) || !exists ||
            objects_read(obj, &id, "small.bin", count_sink, &got) || got != opt.size ||
            objects_delete(obj, &id, "small.bin")) {
            fprintf(stderr, "acp-bench-s3: %s\n", acp_last_error());
            atomic_fetch_add(&failures, 1);
            break;
        }
    }
    free(body);
    return NULL;
}

/* A file of @mib MiB in the temporary directory, already unlinked. */
static int large_file(size_t mib)
{
    char path[] = "/var/tmp/acp-bench-s3-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    unsigned char *chunk = malloc(1 << 20);
    for (size_t i = 0; i < (1u << 20); i++)
        chunk[i] = (unsigned char)(i * 131);
    for (size_t m = 0; m < mib; m++)
        if (write(fd, chunk, 1 << 20) != 1 << 20) {
            close(fd);
            fd = -1;
            break;
        }
    free(chunk);
    return fd;
}

static int parse(int argc, char **argv)
{
    static const struct option longs[] = {
        {"signature", required_argument, NULL, 'g'}, {"threads", required_argument, NULL, 't'},
        {"rounds", required_argument, NULL, 'n'},    {"size", required_argument, NULL, 's'},
        {"large-mib", required_argument, NULL, 'm'}, {"label", required_argument, NULL, 'l'},
        {"json", required_argument, NULL, 'j'},      {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'g':
            if (strcmp(optarg, "v4") && strcmp(optarg, "v2"))
                return -1;
            opt.signature = strcmp(optarg, "v2") ? ACP_S3_SIGNATURE_V4 : ACP_S3_SIGNATURE_V2;
            break;
        case 't':
            opt.threads = atoi(optarg);
            break;
        case 'n':
            opt.rounds = atoi(optarg);
            break;
        case 's':
            opt.size = strtoul(optarg, NULL, 10);
            break;
        case 'm':
            opt.large_mib = strtoul(optarg, NULL, 10);
            break;
        case 'l':
            opt.label = optarg;
            break;
        case 'j':
            opt.json = optarg;
            break;
        default:
            return -1;
        }
    }
    return opt.threads >= 1 && opt.threads <= 256 && opt.rounds >= 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (parse(argc, argv)) {
        fprintf(stderr, "usage: acp-bench-s3 [--signature v4|v2] [--threads T] [--rounds N] "
                        "[--size B] [--large-mib M] [--label TEXT] [--json FILE]\n");
        return 2;
    }
    stack_env env;
    const char *missing = stack_env_read(&env);
    if (missing) {
        fprintf(stderr, "acp-bench-s3: %s is not set (eval \"$(scripts/stack env)\")\n", missing);
        return 2;
    }
    acp_config config;
    acp_config_init(&config, ACP_CONFIG_VERSION);
    config.s3.host = env.s3_host;
    config.s3.port = atoi(env.s3_port);
    config.s3.bucket = env.s3_bucket;
    config.s3.access_key = env.s3_access_key;
    config.s3.secret_key = env.s3_secret_key;
    config.s3.root_path = "acp-bench-s3";
    config.s3_client.signature = opt.signature;
    if (objects_open(&obj, &config.s3, &config.s3_client, NULL)) {
        fprintf(stderr, "acp-bench-s3: %s\n", acp_last_error());
        return 1;
    }

    pthread_t threads[256];
    double cpu0 = cpu_seconds();
    int64_t t0 = bench_mono_us();
    for (int i = 0; i < opt.threads; i++)
        pthread_create(&threads[i], NULL, small_requests, NULL);
    for (int i = 0; i < opt.threads; i++)
        pthread_join(threads[i], NULL);
    double small_s = (double)(bench_mono_us() - t0) / 1e6;
    double small_cpu = cpu_seconds() - cpu0;
    double requests = 4.0 * opt.rounds * opt.threads;

    double up_mib_s = 0, down_mib_s = 0, large_cpu_up = 0, large_cpu_down = 0;
    if (opt.large_mib && !atomic_load(&failures)) {
        int fd = large_file(opt.large_mib);
        acp_job_id id;
        acp_job_id_generate(&id);
        uint64_t got = 0;
        cpu0 = cpu_seconds();
        t0 = bench_mono_us();
        int rc = fd < 0 ? ACP_EIO : objects_put_fd(obj, &id, "large.bin", fd);
        double up_s = (double)(bench_mono_us() - t0) / 1e6;
        large_cpu_up = cpu_seconds() - cpu0;
        cpu0 = cpu_seconds();
        t0 = bench_mono_us();
        if (!rc)
            rc = objects_read(obj, &id, "large.bin", count_sink, &got);
        double down_s = (double)(bench_mono_us() - t0) / 1e6;
        large_cpu_down = cpu_seconds() - cpu0;
        if (rc || got != (uint64_t)opt.large_mib << 20) {
            fprintf(stderr, "acp-bench-s3: large file: %s\n", acp_last_error());
            atomic_fetch_add(&failures, 1);
        } else {
            up_mib_s = (double)opt.large_mib / up_s;
            down_mib_s = (double)opt.large_mib / down_s;
        }
        objects_delete(obj, &id, "large.bin");
        if (fd >= 0)
            close(fd);
    }
    objects_close(obj);

    FILE *out = opt.json ? fopen(opt.json, "a") : stdout;
    if (!out) {
        fprintf(stderr, "acp-bench-s3: %s: %s\n", opt.json, strerror(errno));
        return 1;
    }
    bench_json j;
    bench_json_init(&j, out);
    bench_json_object(&j, NULL);
    bench_json_str(&j, "label", opt.label ? opt.label : "s3");
    bench_json_str(&j, "scenario", "s3");
    bench_json_bool(&j, "ok", atomic_load(&failures) == 0);
    bench_json_object(&j, "params");
    bench_json_str(&j, "signature", opt.signature == ACP_S3_SIGNATURE_V2 ? "v2" : "v4");
    bench_json_int(&j, "threads", opt.threads);
    bench_json_int(&j, "rounds", opt.rounds);
    bench_json_int(&j, "size", (int64_t)opt.size);
    bench_json_int(&j, "large_mib", (int64_t)opt.large_mib);
    bench_json_end(&j);
    bench_json_object(&j, "metrics");
    bench_json_num(&j, "small_requests_per_s", requests / small_s);
    bench_json_num(&j, "client_cpu_us_per_request", small_cpu * 1e6 / requests);
    bench_json_num(&j, "large_up_mib_per_s", up_mib_s);
    bench_json_num(&j, "large_down_mib_per_s", down_mib_s);
    bench_json_num(&j, "large_up_cpu_s", large_cpu_up);
    bench_json_num(&j, "large_down_cpu_s", large_cpu_down);
    bench_json_end(&j);
    bench_json_end(&j);
    fputc('\n', out);
    if (out != stdout)
        fclose(out);
    return atomic_load(&failures) ? 1 : 0;
}
