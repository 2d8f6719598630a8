#include "upload.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slog.h"
#include "textbuf.h"

/* libmicrohttpd's parsing buffer: a part's header line must fit, and each
 * call of the iterator hands over at most about this much. */
#define UPLOAD_PP_BUFFER (64 * 1024)
/* What a multipart body may hold besides its parts' contents: boundaries
 * and part headers (each header line fits in UPLOAD_PP_BUFFER). */
#define UPLOAD_FRAMING ((uint64_t)(UPLOAD_MAX_INPUTS + 2) * UPLOAD_PP_BUFFER)
/* As for a JSON body (http.c): a client that goes on sending this many
 * times max_body_bytes beyond the limit is cut off. */
#define UPLOAD_DISCARD_FACTOR 8
#define UPLOAD_PREFIX         "upload-"

typedef struct upload_file {
    char *name;    /* the client's filename: the input's name */
    char temp[64]; /* the temporary file's name in the uploads directory */
    char *path;    /* and its path, for acp_submit */
    int fd;        /* -1 once written */
    uint64_t size;
    sha256_ctx sha;
    unsigned char digest[SHA256_DIGEST_LEN];
} upload_file;

typedef enum upload_part { PART_NONE, PART_JOB, PART_INPUT } upload_part;

struct upload {
    struct MHD_PostProcessor *pp;
    uint64_t max_job, max_inputs, limit, drop_after;
    uint64_t received;    /* bytes of the body so far */
    uint64_t input_bytes; /* of all input parts so far */
    char *job;
    size_t job_len, job_cap;
    int job_parts;
    size_t parts;     /* all parts so far */
    upload_part part; /* the part being read */
    int part_empty;   /* and nothing of it has come yet */
    upload_file files[UPLOAD_MAX_INPUTS];
    size_t count;
    acp_input inputs[UPLOAD_MAX_INPUTS];
    int failed;
    unsigned status;
    const char *field;
    char detail[600];
};

/* The uploads directory: its path and descriptor, set once at start. */
static char *upload_dir;
static int upload_dir_fd = -1;
static _Atomic unsigned long upload_serial;

upload_kind upload_kind_of(const char *type)
{
    if (!type || !*type)
        return UPLOAD_JSON;
    size_t n = strcspn(type, "; \t");
    static const char *const json[] = {
        "application/json",
        /* What curl -d sends unless told otherwise, and what a browser's
         * fetch() sends with a string body: the documented examples and
         * existing clients post JSON with them. */
        "application/x-www-form-urlencoded",
        "text/plain",
    };
    for (size_t i = 0; i < sizeof json / sizeof json[0]; i++)
        if (strlen(json[i]) == n && strncasecmp(type, json[i], n) == 0)
            return UPLOAD_JSON;
    if (n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0 && memchr(type, '/', n))
        return UPLOAD_JSON;
    if (n == strlen(MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA) &&
        strncasecmp(type, MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA, n) == 0)
        return UPLOAD_MULTIPART;
    return UPLOAD_REFUSED;
}

/* errno's text: strerror() shares one buffer between the connections'
 * threads. */
static const char *upload_errno(int e, char buf[128])
{
    return strerror_r(e, buf, 128);
}

/* ---- the uploads directory --------------------------------------------- */

/* The pid in a temporary file's name, or -1 when it is not one of ours. */
static long upload_owner(const char *name)
{
    if (strncmp(name, UPLOAD_PREFIX, strlen(UPLOAD_PREFIX)) != 0)
        return -1;
    char *end;
    errno = 0;
    long pid = strtol(name + strlen(UPLOAD_PREFIX), &end, 10);
    return errno || pid <= 0 || *end != '-' ? -1 : pid;
}

/* Remove what servers that are gone (killed mid-upload) left: files named
 * after a pid that no longer runs, or after ours (a previous process that
 * had it). Files of a server still running in the same root stay. */
static void upload_sweep(void)
{
    int fd = dup(upload_dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        if (fd >= 0)
            close(fd);
        return;
    }
    unsigned removed = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        long pid = upload_owner(e->d_name);
        if (pid < 0)
            continue;
        if (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        if (unlinkat(upload_dir_fd, e->d_name, 0) == 0)
            removed++;
    }
    closedir(dir);
    if (removed)
        slog(ACP_LOG_INFO, "removed %u stale upload file(s) from %s", removed, upload_dir);
}

int upload_setup(const settings *cfg, char *err, size_t errlen)
{
    char eb[128];
    char path[ACP_PATH_MAX + 64];
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    /* The library's default root (acp_config.workspace_root). */
    if (cfg->workspace_root)
        snprintf(path, sizeof path, "%s/uploads", cfg->workspace_root);
    else if (runtime && *runtime)
        snprintf(path, sizeof path, "%s/async-platform/uploads", runtime);
    else
        snprintf(path, sizeof path, "/var/tmp/async-platform-%u/uploads", (unsigned)geteuid());
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "uploads directory %s: %s", path, upload_errno(errno, eb));
        return -1;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "uploads directory %s: %s", path, upload_errno(errno, eb));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Clients' files wait there: no one else may read or swap them. */
    if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "uploads directory %s: must belong to this user and be closed to group and "
                 "others (mode 0700)",
                 path);
        close(fd);
        return -1;
    }
    upload_dir = strdup(path);
    if (!upload_dir) {
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    upload_dir_fd = fd;
    upload_sweep();
    return 0;
}

void upload_teardown(void)
{
    if (upload_dir_fd >= 0)
        close(upload_dir_fd);
    upload_dir_fd = -1;
    free(upload_dir);
    upload_dir = NULL;
}

uint64_t upload_body_limit(const settings *cfg)
{
    return (uint64_t)cfg->max_body_bytes + (uint64_t)cfg->max_input_bytes + UPLOAD_FRAMING;
}

/* ---- failures ----------------------------------------------------------- */

void upload_remove_files(upload *u)
{
    if (!u)
        return;
    char eb[128];
    for (size_t i = 0; i < u->count; i++) {
        upload_file *f = &u->files[i];
        if (f->fd >= 0)
            close(f->fd);
        f->fd = -1;
        if (f->temp[0] && upload_dir_fd >= 0 && unlinkat(upload_dir_fd, f->temp, 0) != 0 &&
            errno != ENOENT)
            slog(ACP_LOG_WARN, "removing %s/%s: %s", upload_dir, f->temp, upload_errno(errno, eb));
        f->temp[0] = '\0';
    }
}

static int upload_fail(upload *u, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The first failure is the answer; the rest of the body is discarded. */
static int upload_fail(upload *u, unsigned status, const char *field, const char *fmt, ...)
{
    if (u->failed)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->detail, sizeof u->detail, fmt, ap);
    va_end(ap);
    u->failed = 1;
    u->status = status;
    u->field = field;
    upload_remove_files(u);
    return -1;
}

/* A client's name for a message: at most 255 bytes, control characters and
 * non-ASCII as '?' (it goes into the log too). */
static void upload_printable(const char *name, char out[256])
{
    size_t i = 0;
    for (; name[i] && i < 255; i++)
        out[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    out[i] = '\0';
}

/* ---- parts -------------------------------------------------------------- */

static int upload_open_input(upload *u, const char *filename)
{
    char eb[128];
    upload_file *f = &u->files[u->count];
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->name = strdup(filename);
    if (!f->name)
        return upload_fail(u, 500, "input", "out of memory");
    u->count++; /* from here on upload_remove_files() and upload_free() see it */
    sha256_init(&f->sha);
    for (int tries = 0; f->fd < 0 && tries < 100; tries++) {
        snprintf(f->temp, sizeof f->temp, UPLOAD_PREFIX "%ld-%lu", (long)getpid(), ++upload_serial);
        f->fd = openat(upload_dir_fd, f->temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                       0600);
        if (f->fd < 0 && errno != EEXIST)
            break;
    }
    if (f->fd < 0) {
        int e = errno;
        f->temp[0] = '\0';
        slog(ACP_LOG_WARN, "creating an upload file in %s: %s", upload_dir, upload_errno(e, eb));
        return upload_fail(u, 500, "input", "the server could not store the input file");
    }
    size_t n = strlen(upload_dir) + 1 + strlen(f->temp) + 1;
    f->path = malloc(n);
    if (!f->path)
        return upload_fail(u, 500, "input", "out of memory");
    snprintf(f->path, n, "%s/%s", upload_dir, f->temp);
    return 0;
}

static int upload_start_part(upload *u, const char *key, const char *filename, const char *encoding)
{
    char shown[256];
    u->part = PART_NONE;
    u->parts++;
    if (key && strcmp(key, "job") == 0) {
        if (u->job_parts++ > 0)
            return upload_fail(u, 400, "job", "two 'job' parts: send the submission once");
        u->part = PART_JOB;
        return 0;
    }
    if (!key || strcmp(key, "input") != 0) {
        upload_printable(key ? key : "", shown);
        return upload_fail(u, 400, "body",
                           "unknown part '%s': the body has one 'job' part (the JSON "
                           "submission) and 'input' parts (files)",
                           shown);
    }
    if (!filename || !*filename)
        return upload_fail(u, 400, "input",
                           "an 'input' part needs a filename (filename=\"NAME\" in its "
                           "Content-Disposition): the input's name");
    upload_printable(filename, shown);
    /* libmicrohttpd hands the bytes over as they came. */
    if (encoding && strcasecmp(encoding, "binary") != 0 && strcasecmp(encoding, "8bit") != 0 &&
        strcasecmp(encoding, "7bit") != 0)
        return upload_fail(u, 400, "input",
                           "input '%s': Content-Transfer-Encoding '%.40s' is not supported: "
                           "send the file's bytes as they are",
                           shown, encoding);
    if (u->count == UPLOAD_MAX_INPUTS)
        return upload_fail(u, 413, "input", "more than %d input files", UPLOAD_MAX_INPUTS);
    /* The library does not refuse it as an input, but the job's log is kept
     * under that name and would replace it. */
    if (strcmp(filename, "log.txt") == 0)
        return upload_fail(u, 400, "input",
                           "input 'log.txt': that is the name of the job's log; name the input "
                           "otherwise");
    for (size_t i = 0; i < u->count; i++)
        if (strcmp(u->files[i].name, filename) == 0)
            return upload_fail(u, 400, "input", "two inputs named '%s'", shown);
    u->part = PART_INPUT;
    return upload_open_input(u, filename);
}

static int upload_job_data(upload *u, const char *data, size_t size)
{
    if (size > u->max_job - u->job_len)
        return upload_fail(u, 413, "job",
                           "the 'job' part is larger than %llu bytes (max_body_bytes)",
                           (unsigned long long)u->max_job);
    if (textbuf_append(&u->job, &u->job_len, &u->job_cap, data, size) != 0)
        return upload_fail(u, 500, "job", "out of memory");
    return 0;
}

static int upload_input_data(upload *u, const char *data, size_t size)
{
    char eb[128];
    upload_file *f = &u->files[u->count - 1];
    if (size > u->max_inputs - u->input_bytes)
        return upload_fail(u, 413, "input",
                           "the input files total more than %llu bytes (max_input_bytes)",
                           (unsigned long long)u->max_inputs);
    u->input_bytes += size;
    f->size += size;
    sha256_update(&f->sha, data, size);
    while (size > 0) {
        ssize_t n = write(f->fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            slog(ACP_LOG_WARN, "writing %s: %s", f->path,
                 n < 0 ? upload_errno(errno, eb) : "no progress");
            return upload_fail(u, 500, "input", "the server could not store the input file");
        }
        data += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Whether @key and @filename are those of the part being read. */
static int upload_same_part(const upload *u, const char *key, const char *filename)
{
    if (u->part == PART_JOB)
        return key && strcmp(key, "job") == 0;
    return u->part == PART_INPUT && key && strcmp(key, "input") == 0 && filename &&
           strcmp(filename, u->files[u->count - 1].name) == 0;
}

/* libmicrohttpd's post iterator: a part starts at offset 0. */
static enum MHD_Result upload_iterate(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *filename, const char *content_type,
                                      const char *encoding, const char *data, uint64_t off,
                                      size_t size)
{
    (void)kind;
    (void)content_type;
    upload *u = cls;
    if (u->failed)
        return MHD_NO;
    /* It may announce a part with an empty piece and then hand over its
     * first bytes at offset 0 again: that is still the same part. */
    int announced = off == 0 && u->part_empty && size > 0 && upload_same_part(u, key, filename);
    if (off == 0 && !announced && upload_start_part(u, key, filename, encoding) != 0)
        return MHD_NO;
    u->part_empty = size == 0 && off == 0;
    if (size == 0)
        return MHD_YES;
    int rc =
        u->part == PART_JOB ? upload_job_data(u, data, size) : upload_input_data(u, data, size);
    return rc == 0 ? MHD_YES : MHD_NO;
}

/* ---- the request's upload ------------------------------------------------ */

upload *upload_begin(struct MHD_Connection *conn, const settings *cfg)
{
    upload *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->max_job = (uint64_t)cfg->max_body_bytes;
    u->max_inputs = (uint64_t)cfg->max_input_bytes;
    u->limit = upload_body_limit(cfg);
    u->drop_after = u->limit + (uint64_t)cfg->max_body_bytes * UPLOAD_DISCARD_FACTOR;
    if (upload_dir_fd < 0) {
        upload_fail(u, 500, "input", "the server cannot take input files (no uploads directory)");
        return u;
    }
    u->pp = MHD_create_post_processor(conn, UPLOAD_PP_BUFFER, upload_iterate, u);
    if (!u->pp)
        upload_fail(u, 400, "body",
                    "malformed multipart/form-data: the Content-Type needs a boundary "
                    "(multipart/form-data; boundary=...) of at most 70 characters");
    return u;
}

int upload_feed(upload *u, const char *data, size_t len)
{
    u->received += len;
    if (!u->failed && u->received > u->limit)
        upload_fail(u, 413, "body",
                    "the request body is larger than %llu bytes (max_body_bytes + "
                    "max_input_bytes + %llu for the multipart framing)",
                    (unsigned long long)u->limit, (unsigned long long)UPLOAD_FRAMING);
    if (u->failed)
        return u->received > u->drop_after ? -1 : 0;
    if (MHD_post_process(u->pp, data, len) != MHD_YES)
        upload_fail(u, 400, "body", "malformed multipart/form-data body");
    return 0;
}

void upload_end(upload *u)
{
    char eb[128];
    if (u->pp) {
        enum MHD_Result whole = MHD_destroy_post_processor(u->pp);
        u->pp = NULL;
        if (whole != MHD_YES)
            upload_fail(u, 400, "body",
                        "malformed multipart/form-data body: it ends before its closing "
                        "boundary");
    }
    if (u->failed)
        return;
    if (u->parts == 0) {
        upload_fail(u, 400, "body",
                    "malformed multipart/form-data body: no part (none starts with the "
                    "Content-Type's boundary)");
        return;
    }
    if (u->job_parts == 0) {
        upload_fail(u, 400, "job",
                    "no 'job' part: a multipart submission has one, holding the JSON "
                    "submission ({\"queue\": ..., \"config\": ...})");
        return;
    }
    for (size_t i = 0; i < u->count; i++) {
        upload_file *f = &u->files[i];
        /* The library opens the file again by its path. */
        if (close(f->fd) != 0) {
            f->fd = -1;
            slog(ACP_LOG_WARN, "closing %s: %s", f->path, upload_errno(errno, eb));
            upload_fail(u, 500, "input", "the server could not store the input file");
            return;
        }
        f->fd = -1;
        sha256_final(&f->sha, f->digest);
        u->inputs[i] = (acp_input){.name = f->name, .path = f->path};
    }
}

int upload_failed(const upload *u, unsigned *status, const char **field, const char **detail)
{
    if (!u->failed)
        return 0;
    *status = u->status;
    *field = u->field;
    *detail = u->detail;
    return 1;
}

char *upload_take_job(upload *u, size_t *len)
{
    char *job = u->job;
    *len = u->job_len;
    u->job = NULL;
    u->job_len = u->job_cap = 0;
    return job;
}

const acp_input *upload_inputs(const upload *u, size_t *count)
{
    *count = u->failed ? 0 : u->count;
    return *count ? u->inputs : NULL;
}

const unsigned char *upload_digest(const upload *u, size_t i)
{
    return u->files[i].digest;
}

void upload_free(upload *u)
{
    if (!u)
        return;
    if (u->pp)
        MHD_destroy_post_processor(u->pp);
    upload_remove_files(u);
    for (size_t i = 0; i < u->count; i++) {
        free(u->files[i].name);
        free(u->files[i].path);
    }
    free(u->job);
    free(u);
}

/* ---- a resubmission ------------------------------------------------------- */

typedef struct upload_hashing {
    sha256_ctx sha;
} upload_hashing;

static int upload_hash_sink(void *userdata, const void *data, size_t len)
{
    upload_hashing *h = userdata;
    sha256_update(&h->sha, data, len);
    return 0;
}

static const acp_result_file *upload_find(const acp_result_list *list, const char *name)
{
    for (size_t k = 0; k < list->count; k++)
        if (strcmp(list->files[k].name, name) == 0)
            return &list->files[k];
    return NULL;
}

/* 1 when the job's file @name has @digest, 0 when not, or an error code. */
static int upload_same_bytes(acp_platform *platform, const acp_job_id *id, const char *name,
                             const unsigned char *digest)
{
    upload_hashing h;
    unsigned char stored[SHA256_DIGEST_LEN];
    sha256_init(&h.sha);
    int rc = acp_read_result(platform, id, name, upload_hash_sink, &h);
    if (rc != 0)
        return rc == ACP_ENOTFOUND ? 0 : rc;
    sha256_final(&h.sha, stored);
    return memcmp(stored, digest, sizeof stored) == 0;
}

int upload_matches_job(const upload *u, acp_platform *platform, const acp_job_id *id, char *why,
                       size_t whylen)
{
    acp_result_list list;
    memset(&list, 0, sizeof list);
    int rc = acp_get_results(platform, id, &list);
    if (rc != 0)
        return rc;
    /* The library's check of each name first (reading a file checks it): a
     * name it refuses is a bad request, not another input. */
    int same = 1;
    for (size_t i = 0; same == 1 && i < u->count; i++) {
        int r = upload_find(&list, u->files[i].name)
                    ? 1
                    : upload_same_bytes(platform, id, u->files[i].name, u->files[i].digest);
        if (r < 0)
            same = r;
    }
    char shown[256];
    for (size_t i = 0; same == 1 && i < u->count; i++) {
        const upload_file *f = &u->files[i];
        const acp_result_file *stored = upload_find(&list, f->name);
        upload_printable(f->name, shown);
        if (!stored) {
            snprintf(why, whylen, "it has no file '%s'", shown);
            same = 0;
        } else if (stored->size != f->size) {
            snprintf(why, whylen, "its '%s' has %llu bytes, this one %llu", shown,
                     (unsigned long long)stored->size, (unsigned long long)f->size);
            same = 0;
        } else if ((same = upload_same_bytes(platform, id, f->name, f->digest)) == 0) {
            snprintf(why, whylen, "its '%s' has other bytes", shown);
        }
    }
    acp_result_list_clear(&list);
    return same;
}
