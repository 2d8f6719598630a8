/*
 * async_platform: run long jobs asynchronously and keep their results.
 *
 * This is the whole public API of libasync-platform. Link it with
 *   cc app.c $(pkg-config --cflags --libs async-platform)
 *
 * Conventions used throughout:
 * - Functions that can fail return 0 on success or a negative ACP_E* code.
 *   acp_strerror() describes a code; acp_last_error() gives the calling
 *   thread's detailed message for the most recent failure.
 * - Strings passed in are borrowed for the duration of the call unless a
 *   function says otherwise; nothing is retained after it returns.
 * - Every function here may be called from any thread, except that no call
 *   on a platform may run concurrently with or after acp_shutdown() of that
 *   platform (see acp_shutdown()).
 *
 * How the structures grow (the ABI rule, within one soname):
 * - Structures the caller fills in (acp_config, acp_queue_config,
 *   acp_submission, acp_job_filter) and the caller's vtables
 *   (acp_executor_factory, acp_executor_ops) start with a `version`. Fill
 *   options with their *_init(&s, ACP_*_VERSION) function before setting
 *   fields. A later library accepts every version from 1 to its own and reads
 *   only the fields that version has; fields added later take their
 *   defaults. New fields are only ever appended, with a new version number.
 * - In an array of versioned structures (acp_config.queues) every element
 *   has the same version, which sets the array's stride.
 * - Structures embedded in others (acp_db_config, acp_s3_config) and those
 *   the library fills in (acp_job, and so the arrays of acp_job_list) end in
 *   reserved space, so their size never changes: new fields take reserved
 *   slots, which the *_init functions zero. acp_job.version tells which
 *   fields the library that filled it knows.
 * - acp_stats is filled in by the library up to the version the caller set.
 * - Error codes are only ever appended. A change that breaks these rules
 *   changes the soname (ACP_ABI_VERSION); NEWS.adoc records each change.
 */
#ifndef ASYNC_PLATFORM_H
#define ASYNC_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ACP_BUILDING_LIBRARY) && defined(__GNUC__)
#define ACP_EXTERN extern __attribute__((visibility("default")))
#else
#define ACP_EXTERN extern
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/** Version of this header. */
#define ACP_VERSION_MAJOR  0
#define ACP_VERSION_MINOR  2
#define ACP_VERSION_PATCH  0
#define ACP_VERSION_STRING "0.2.0"
/** The shared library's soname number (libasync-platform.so.ACP_ABI_VERSION):
 *  it changes only when a binary built against an older header could no
 *  longer run with this library. */
#define ACP_ABI_VERSION 1
/** The version as one comparable number: 0xMMmmpp. */
#define ACP_VERSION_NUMBER                                                                         \
    ((ACP_VERSION_MAJOR << 16) | (ACP_VERSION_MINOR << 8) | ACP_VERSION_PATCH)

/**
 * Version of the library actually loaded at run time, as ACP_VERSION_NUMBER.
 * Compare it with the header's ACP_VERSION_NUMBER to detect a mismatch
 * between the headers a program was built with and the library it runs with.
 */
ACP_EXTERN unsigned acp_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Error codes. Functions return 0 (ACP_OK) or one of these negative values.
 * Codes are never renumbered or removed; new ones are added at the end.
 */
typedef enum acp_error {
    ACP_OK = 0,
    /** An argument or a configuration value is invalid; the detail names it. */
    ACP_EINVAL = -1,
    /** Out of memory. */
    ACP_ENOMEM = -2,
    /** No job with that id is known here or in S3. */
    ACP_ENOTFOUND = -3,
    /** The job belongs to another service sharing the bucket. */
    ACP_EUNOWNED = -4,
    /** The operation conflicts with the job's current state or owner. */
    ACP_ECONFLICT = -5,
    /** The job is running; the operation is not possible now. */
    ACP_EBUSY = -6,
    /** A PostgreSQL error (connection, authentication or statement). */
    ACP_EDB = -7,
    /** A RabbitMQ error (connection, authentication or protocol). */
    ACP_EBROKER = -8,
    /** An S3 error (connection, authentication, missing bucket, request). */
    ACP_ESTORAGE = -9,
    /** A local file system error (scratch directories, input files). */
    ACP_EIO = -10,
    /** A structure carries a version this library does not know. */
    ACP_EVERSION = -11,
    /** The queue id is not one of the platform's configured queues. */
    ACP_ENOQUEUE = -12,
    /** The platform is shutting down and takes no new work. */
    ACP_ESHUTDOWN = -13,
    /** An input exceeds a size limit (for example a job config). */
    ACP_ETOOBIG = -14,
    /** A callback of yours failed (for example an acp_read_fn sink returned
     *  non-zero); the library itself never fails with this code. */
    ACP_EUSER = -15
} acp_error;

/**
 * A short, static, English description of an error code ("invalid argument",
 * ...). Never returns NULL; an unknown code gives "unknown error code".
 */
ACP_EXTERN const char *acp_strerror(int code);

/**
 * The detailed message of the most recent failure of an acp_* call on the
 * calling thread, such as "config.queues[1].id: duplicate queue id 'render'".
 *
 * Never returns NULL: when no call has failed on this thread the text is
 * "no error". The string is owned by the library and stays valid until the
 * next acp_* call on the same thread. A successful call does not clear it,
 * so branch on return codes, not on this text.
 */
ACP_EXTERN const char *acp_last_error(void);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/** Version of acp_config this header describes; given to acp_config_init().
 *  1: every field up to log_level; 2: max_attempts, result_retry_seconds;
 *  3: layout; 4: s3_client; 5: cancel_grace_seconds. */
#define ACP_CONFIG_VERSION 6
/** Version of acp_queue_config this header describes; given to
 *  acp_queue_config_init(). 1: up to message_ack_timeout; 2: heartbeat;
 *  3: max_attempts, retry_base_ms, retry_max_ms, timeout_seconds. */
#define ACP_QUEUE_CONFIG_VERSION 3
/** Reserved pointer-sized slots at the end of acp_db_config, acp_s3_config
 *  and acp_job, for fields of later versions (see "How the structures grow"
 *  at the top of this header). */
#define ACP_RESERVED_SLOTS 8

/** Bounds enforced by acp_config_validate(). */
#define ACP_QUEUE_ID_MAX            32 /* characters; the id is stored in a varchar(32) */
#define ACP_WORKERS_MIN             1
#define ACP_WORKERS_MAX             64
#define ACP_POOL_SIZE_MAX           1000
#define ACP_MESSAGE_ACK_TIMEOUT_MIN 300  /* seconds, as upstream */
#define ACP_HEARTBEAT_MAX           3600 /* seconds */
#define ACP_EXPIRATION_DAYS_MAX     36500
#define ACP_PATH_MAX                1024 /* bytes, for root_path and workspace_root */
#define ACP_MAX_ATTEMPTS_MAX        1000
#define ACP_TIMEOUT_MAX             2592000    /* seconds (30 days), for timeout_seconds */
#define ACP_BACKOFF_MS_MAX          86400000u  /* milliseconds (1 day), for retry_*_ms */
#define ACP_CANCEL_GRACE_MAX        3600       /* seconds */
#define ACP_LOG_CAP_DEFAULT         (1u << 20) /* bytes, for log_cap_bytes */
#define ACP_LOG_CAP_MIN             (16u << 10)
#define ACP_LOG_CAP_MAX             (256u << 20)

/** Severity of a log message. */
typedef enum acp_log_level {
    ACP_LOG_DEBUG = 0,
    ACP_LOG_INFO = 1,
    ACP_LOG_WARN = 2,
    ACP_LOG_ERROR = 3
} acp_log_level;

/**
 * Receives the library's log messages. Called from any of the library's
 * threads (workers, maintenance) and from the host's threads inside acp_*
 * calls, possibly concurrently: it must be thread-safe. @p message is valid
 * only during the call and carries no trailing newline.
 */
typedef void (*acp_log_fn)(void *userdata, acp_log_level level, const char *message);

/* Executors: the host's code that runs a job. Declared here because the
 * configuration names the factory; described in full further down. */
typedef struct acp_executor_factory acp_executor_factory;

/**
 * Where the platform keeps a job's state (docs/guide.adoc, "Two layouts").
 *
 * - ACP_LAYOUT_NATIVE: the job's row in PostgreSQL is the only record of its
 *   state. S3 receives data only: the job's input files and its result
 *   files, as "<root>/<id>/<name>". A job without files makes no S3
 *   request. A root belongs to one database: acp_init() records the
 *   database's identity in "<root>/.acp-root" and refuses a root that
 *   another database owns.
 * - ACP_LAYOUT_LCP: lib-compute-platform's byte-compatible layout besides
 *   the row: ".workspace", the status flags, "input-config" and the claim
 *   arbitration, for services that share a bucket with lib-compute-platform
 *   services or with each other across databases (about ten S3 requests a
 *   job).
 *
 * The setting applies to jobs created or re-run from then on; a job keeps
 * the layout it was created under until it is re-run, so a database can
 * switch either way without losing a job (docs/operations.adoc).
 */
typedef enum acp_layout {
    ACP_LAYOUT_DEFAULT = 0, /**< the default: ACP_LAYOUT_NATIVE */
    ACP_LAYOUT_NATIVE = 1,
    ACP_LAYOUT_LCP = 2
} acp_layout;

/** PostgreSQL connection. The database holds this service's job rows. */
typedef struct acp_db_config {
    const char *host;     /**< required; host name or address */
    int port;             /**< default 5432; 1..65535 */
    const char *dbname;   /**< required */
    const char *user;     /**< required */
    const char *password; /**< required and non-empty, as upstream */
    int pool_size;        /**< connections kept open; default 10; 1..ACP_POOL_SIZE_MAX */
    void *reserved[ACP_RESERVED_SLOTS]; /**< zeroed by acp_config_init(); leave alone */
} acp_db_config;

/** S3 endpoint and the place of the job workspaces in it. */
typedef struct acp_s3_config {
    const char *host;   /**< required; host name or address, without a port */
    int port;           /**< default 80; 0 means "none in the URL"; 0..65535 */
    int https;          /**< default 0 (plain HTTP) */
    const char *bucket; /**< required; must exist; an S3 bucket name (3..63 of [a-z0-9.-]) */
    /** The access key id and its secret. When both are NULL or empty they
     *  are read from the environment variables AWS_ACCESS_KEY_ID and
     *  AWS_SECRET_ACCESS_KEY (and session_token, when NULL, from
     *  AWS_SESSION_TOKEN) at acp_init(); one without the other is refused.
     *  Neither ever appears in a log message or an error. */
    const char *access_key;
    const char *secret_key;
    /** Key prefix of the workspaces; default "/" (the bucket's top level).
     *  Segments of [A-Za-z0-9_.-] separated by '/', no "." or "..". */
    const char *root_path;
    /* The four fields below took reserved slots in 0.2 (any version of
     * acp_config has them; acp_config_init() zeroes them). */
    /** Region the requests are signed for (Signature V4); NULL or "":
     *  "us-east-1". AWS refuses a request signed for another region than
     *  the bucket's, and the error names the region it expects. */
    const char *region;
    /** Session token of temporary credentials (STS, an instance or task
     *  role), sent as x-amz-security-token; NULL: none (or the
     *  environment's, see access_key). Never logged. */
    const char *session_token;
    /** With https: a PEM file of the CA certificates the server's
     *  certificate is verified against, and/or a directory of them (hashed
     *  as by c_rehash); NULL: the system's store. */
    const char *ca_file;
    const char *ca_path;
    void *reserved[ACP_RESERVED_SLOTS - 4]; /**< zeroed by acp_config_init(); leave alone */
} acp_s3_config;

/** How requests to S3 are signed, and so which client sends them. */
typedef enum acp_s3_signature {
    ACP_S3_SIGNATURE_DEFAULT = 0, /**< ACP_S3_SIGNATURE_V4 */
    /** AWS Signature Version 4 over libcurl: AWS S3, MinIO, Ceph radosgw
     *  and most others. Verifies TLS certificates, has timeouts, uploads
     *  large files in parts. */
    ACP_S3_SIGNATURE_V4 = 4,
    /** Signature Version 2 over libs3 2.0, for endpoints that still need
     *  it (AWS refuses it). libs3 cannot verify TLS certificates (so https
     *  needs tls_skip_verify), has no request timeout (only an abort below
     *  1 KiB/s for 15 s) and uploads every file in one request (at most
     *  5 GiB). */
    ACP_S3_SIGNATURE_V2 = 2
} acp_s3_signature;

/** Where the bucket goes in a request's URL. */
typedef enum acp_s3_addressing {
    /** Virtual-hosted for AWS ("*.amazonaws.com") when the bucket name has
     *  no dot (a dot would not match AWS's wildcard certificate),
     *  path-style otherwise. */
    ACP_S3_ADDRESSING_DEFAULT = 0,
    ACP_S3_ADDRESSING_PATH = 1,   /**< http(s)://host:port/bucket/key */
    ACP_S3_ADDRESSING_VIRTUAL = 2 /**< http(s)://bucket.host:port/key */
} acp_s3_addressing;

/** Bounds enforced by acp_config_validate() on acp_s3_client_config. */
#define ACP_S3_PART_SIZE_MIN   (5ull << 20) /* S3's smallest part but the last */
#define ACP_S3_PART_SIZE_MAX   (5ull << 30) /* and its largest */
#define ACP_S3_PARALLELISM_MAX 8
#define ACP_S3_RETRIES_MAX     20
#define ACP_S3_TIMEOUT_MS_MAX  3600000u

/**
 * How the library talks to S3 (acp_config version 4; docs/configuration.adoc
 * "S3 client"). acp_config_init() writes the defaults; a caller of an older
 * version of acp_config gets them too.
 */
typedef struct acp_s3_client_config {
    /** Default ACP_S3_SIGNATURE_V4. */
    acp_s3_signature signature;
    /** Default ACP_S3_ADDRESSING_DEFAULT (see there). */
    acp_s3_addressing addressing;
    /** Non-zero: with https, do not verify the server's certificate or
     *  host name. Off by default; acp_init() logs a warning when it is on.
     *  Only for a test endpoint: anyone on the path can then read and
     *  change results. */
    int tls_skip_verify;
    /** Milliseconds to establish a connection (TCP and TLS) before the
     *  attempt fails as a connection error. Default 5000;
     *  1..ACP_S3_TIMEOUT_MS_MAX. */
    unsigned connect_timeout_ms;
    /** Milliseconds a request may take; a request that moves a body
     *  (uploading or downloading a file or a part) may take longer as long
     *  as data keeps moving: it fails once no byte has moved for this long.
     *  Either way a stalled server fails the attempt, which is retried as
     *  a connection error. Default 30000; 1000..ACP_S3_TIMEOUT_MS_MAX. */
    unsigned request_timeout_ms;
    /** Retries of a request that failed for a transient reason (connection
     *  error, timeout, HTTP 500, 502, 503 SlowDown, 504), after a back-off
     *  drawn at random below retry_base_ms x 2^n, capped at retry_max_ms
     *  ("full jitter"). Never on 4xx. Result uploads retry longer, see
     *  result_retry_seconds. Defaults 3, 100 and 10000;
     *  0..ACP_S3_RETRIES_MAX, 1..60000 and retry_base_ms..600000. */
    unsigned retries;
    unsigned retry_base_ms;
    unsigned retry_max_ms;
    /** Files larger than multipart_threshold bytes are uploaded in parts of
     *  part_size bytes (grown when a file would need more than 10,000
     *  parts, S3's limit), upload_parallelism parts at a time; a failed
     *  upload is aborted so that no part is left behind. Defaults 16 MiB,
     *  16 MiB and 4; the threshold and part size
     *  ACP_S3_PART_SIZE_MIN..ACP_S3_PART_SIZE_MAX, the parallelism
     *  1..ACP_S3_PARALLELISM_MAX. Ignored with ACP_S3_SIGNATURE_V2. */
    uint64_t multipart_threshold;
    uint64_t part_size;
    unsigned upload_parallelism;
} acp_s3_client_config;

/**
 * One job queue: a RabbitMQ queue named "<id>_jobs" and the worker threads
 * that consume it. Fill it with acp_queue_config_init() first.
 */
typedef struct acp_queue_config {
    unsigned version;     /**< ACP_QUEUE_CONFIG_VERSION */
    const char *id;       /**< required; 1..ACP_QUEUE_ID_MAX of [A-Za-z0-9_.-]; unique */
    const char *host;     /**< required; RabbitMQ host */
    int port;             /**< default 5672; 1..65535 */
    const char *user;     /**< required */
    const char *password; /**< required */
    int workers;          /**< threads consuming this queue; default 5; 1..64 */
    /** Broker-side consumer timeout base in seconds; default 1800 (30 min),
     *  at least ACP_MESSAGE_ACK_TIMEOUT_MIN. The queue is declared with
     *  x-consumer-timeout = 1.5 x this value, as upstream does. */
    unsigned message_ack_timeout;
    /** AMQP heartbeat interval in seconds; default 60; 1..ACP_HEARTBEAT_MAX.
     *  RabbitMQ closes a connection that stays silent for about two
     *  intervals; the library keeps every connection talking, also while a
     *  worker runs a long job. */
    unsigned heartbeat;

    /* ---- version 3: job control (docs/guide.adoc, "Retries" and
     * "Timeouts"); a submission may override max_attempts and
     * timeout_seconds. ---- */

    /** Attempts a job of this queue gets: an attempt that fails (the
     *  executor failed, ran out of time, or its process stopped and its
     *  lease expired) is queued again until this many have run, unless
     *  the executor called acp_job_fail_permanently(). 0: config.max_attempts
     *  (3 by default); 1 means no retry; 0..ACP_MAX_ATTEMPTS_MAX. */
    unsigned max_attempts;
    /** Back-off before attempt n+1: a random delay (full jitter) below
     *  min(retry_max_ms, retry_base_ms x 2^(n-1)). Defaults 1000 and
     *  300000 (5 min); 1..ACP_BACKOFF_MS_MAX and
     *  retry_base_ms..ACP_BACKOFF_MS_MAX. */
    unsigned retry_base_ms;
    unsigned retry_max_ms;
    /** Seconds an attempt may run before it is cancelled as timed out
     *  (see acp_job_cancelled()); 0 (the default): no limit;
     *  0..ACP_TIMEOUT_MAX. */
    unsigned timeout_seconds;
} acp_queue_config;

/**
 * Everything acp_init() needs. Fill it with acp_config_init() first, then set
 * the required fields. The library copies what it keeps: the strings and the
 * queue array only need to live until acp_init() returns.
 */
typedef struct acp_config {
    unsigned version;               /**< ACP_CONFIG_VERSION */
    acp_db_config db;               /**< this service's own database */
    acp_s3_config s3;               /**< where results are kept */
    const acp_queue_config *queues; /**< at least one queue */
    size_t queue_count;
    /** Local directory under which each run of a job gets a scratch
     *  directory "<workspace_root>/<job id>.<attempt>/", so that two runs
     *  of one job never share one. Directories of that form whose run is
     *  over (no such job, another attempt, not in progress, or its lease
     *  expired) and that are not this process's are removed by acp_init()
     *  and every 3 lease periods: they are what killed processes left. So
     *  share a root only between processes of the same database. Symbolic
     *  links and other names are left alone.
     *
     *  Whoever can change the root can swap job directories, so acp_init()
     *  refuses (ACP_EINVAL, naming the reason) a root that is a symbolic
     *  link, that belongs to another user, or that group or others may
     *  write to, and one below a directory that another user owns or may
     *  write to (unless it is sticky, as /tmp). It creates what is missing,
     *  the root itself with mode 0700, and uses everything under it through
     *  the root's descriptor. Default NULL: "$XDG_RUNTIME_DIR/async-platform"
     *  when that variable is set, else "/var/tmp/async-platform-<euid>".
     *  Must be absolute, not "/", without "." or ".." segments. */
    const char *workspace_root;
    /** Days after the last access before a complete job's results are
     *  expired. Default 30; 1..ACP_EXPIRATION_DAYS_MAX. */
    unsigned expiration_days;
    /** Seconds between two runs of the expiration pruner. Default 43200
     *  (12 h); 1..31536000. */
    unsigned prune_interval;

    /** Makes the executor of each job. Required by acp_init(); the structure
     *  is copied, its userdata is the host's until factory->free() is
     *  called (see acp_executor_factory.free). */
    const acp_executor_factory *executor_factory;
    /** Seconds a running job's lease lasts without renewal. The process
     *  running a job renews it every lease_seconds / 3; when a process dies,
     *  any other process sharing the database requeues its jobs once the
     *  lease has run out. Default 60; 3..86400. */
    unsigned lease_seconds;
    /** Seconds a queued job may wait after its message was published before
     *  the message is assumed lost and published again (a duplicate is
     *  harmless: only one claim succeeds). Default 300; at least 1. */
    unsigned redispatch_seconds;
    /** Seconds acp_shutdown() waits for running jobs to finish before it
     *  abandons them (their leases then expire and another process requeues
     *  them). Default 30. */
    unsigned shutdown_timeout;
    /** Log sink; NULL writes to stderr. */
    acp_log_fn log;
    void *log_userdata;
    /** Messages below this level are dropped. Default ACP_LOG_INFO. */
    acp_log_level log_level;
    /** Attempts a job gets unless its queue's (or its submission's)
     *  max_attempts says otherwise: an attempt that fails (its executor
     *  failed or timed out, or the process running it stopped and its
     *  lease expired) is queued again after a back-off until this many
     *  have run; then the job is "failed" with the last attempt's message
     *  (for a stopped process: "abandoned: the process running attempt N
     *  of N stopped (its lease expired)"), so a job that crashes its
     *  process cannot do so forever. Resubmitting it starts the count
     *  again. Default 3; 0 also means 3; 0..ACP_MAX_ATTEMPTS_MAX. */
    unsigned max_attempts;
    /** Seconds a finished job's result upload (and the status flag written
     *  after it) keeps retrying while S3 fails for a transient reason
     *  (connection refused or reset, timeout, name lookup, 500, 502, 503,
     *  504), with exponential back-off, the job's lease renewed meanwhile.
     *  Past it, or at once on a permanent error (any 4xx), the job fails
     *  with a message saying why. Default 300; 0 = the default; at most
     *  86400. */
    unsigned result_retry_seconds;

    /* ---- version 3 ---- */

    /** Where a job's state lives (docs/guide.adoc, "Two layouts"). Default
     *  ACP_LAYOUT_NATIVE; a caller of version 1 or 2 of this structure gets
     *  ACP_LAYOUT_LCP, the only layout those versions knew. */
    acp_layout layout;

    /* ---- version 4 ---- */

    /** How S3 is reached: signature, addressing, TLS verification,
     *  timeouts, retries, multipart uploads. */
    acp_s3_client_config s3_client;

    /* ---- version 5 ---- */

    /** Seconds an executor has, once its job was cancelled or timed out,
     *  to return before the platform records the attempt without it
     *  (cancelled, or timed out and maybe retried) and frees the job's
     *  lease. The worker thread stays with the executor until it returns
     *  (a thread cannot be killed safely): acp_stats.executors_overdue
     *  counts such executors. Default 10; 1..ACP_CANCEL_GRACE_MAX. */
    unsigned cancel_grace_seconds;

    /* ---- version 6 ---- */

    /** Bytes of a job's log (acp_job_log()) the platform keeps, all its
     *  attempts together: the first half and the last half of what was
     *  written, with a marker line in between saying how much was dropped
     *  (docs/guide.adoc, "Logs"). This bounds both the live copy in
     *  PostgreSQL and the kept "log.txt". Default ACP_LOG_CAP_DEFAULT (1 MiB);
     *  0 = the default; ACP_LOG_CAP_MIN..ACP_LOG_CAP_MAX. */
    size_t log_cap_bytes;
} acp_config;

/**
 * Fill @p config, a structure of version @p version (pass
 * ACP_CONFIG_VERSION), with the defaults (upstream's: database port 5432,
 * pool of 10, S3 port 80 over plain HTTP, root path "/", 30 expiration
 * days, pruning every 12 hours; unlike upstream's "/tmp/workspaces", the
 * workspace root is NULL: acp_init() picks a private one) and set its
 * version. Only the fields of that version are written. Required fields
 * (host names, credentials, database, bucket, queues) are left NULL.
 *
 * @return 0; ACP_EINVAL if @p config is NULL; ACP_EVERSION if @p version is
 *         not between 1 and this library's ACP_CONFIG_VERSION.
 */
ACP_EXTERN int acp_config_init(acp_config *config, unsigned version);

/**
 * Fill @p queue, of version @p version (pass ACP_QUEUE_CONFIG_VERSION), with
 * the queue defaults (AMQP port 5672, 5 workers, message acknowledgement
 * timeout 1800 s, heartbeat 60 s) and set its version. id, host, user and
 * password are left NULL.
 *
 * @return 0; ACP_EINVAL if @p queue is NULL; ACP_EVERSION for an unknown
 *         version.
 */
ACP_EXTERN int acp_queue_config_init(acp_queue_config *queue, unsigned version);

/**
 * Check @p config without connecting to anything.
 *
 * @return 0 when valid; ACP_EVERSION when a structure's version is unknown;
 *         ACP_EINVAL otherwise, with acp_last_error() naming the first
 *         offending field and the rule it breaks, for example
 *         "config.db.dbname: missing database name" or
 *         "config.queues[0].workers: 0 is outside 1..64".
 */
ACP_EXTERN int acp_config_validate(const acp_config *config);

/* ------------------------------------------------------------------------ */
/* Job ids                                                                  */
/* ------------------------------------------------------------------------ */

/** A job id: 16 bytes, written as 32 lowercase hexadecimal characters. */
typedef struct acp_job_id {
    unsigned char bytes[16];
} acp_job_id;

/** Characters in a formatted id, and the buffer size including the NUL. */
#define ACP_JOB_ID_HEX_LEN 32
#define ACP_JOB_ID_STRLEN  33

/** Largest job config accepted, in bytes of JSON text. */
#define ACP_JOB_CONFIG_MAX (1024 * 1024)

/**
 * Parse a NUL-terminated string of exactly 32 hexadecimal characters (either
 * case) into @p out.
 *
 * @return 0; ACP_EINVAL for a NULL argument, a wrong length or a character
 *         that is not hexadecimal (the detail gives the length or the
 *         position). @p out is left unchanged on failure.
 */
ACP_EXTERN int acp_job_id_parse(acp_job_id *out, const char *text);

/**
 * Write @p id as 32 lowercase hexadecimal characters and a NUL into @p buf,
 * which must hold ACP_JOB_ID_STRLEN bytes.
 *
 * @return @p buf, or NULL if an argument is NULL.
 */
ACP_EXTERN char *acp_job_id_format(const acp_job_id *id, char *buf);

/** Compare two ids: 1 when equal, 0 otherwise (or when one is NULL). */
ACP_EXTERN int acp_job_id_equal(const acp_job_id *a, const acp_job_id *b);

/**
 * Generate a random id (a version 4 UUID from libuuid's random source).
 *
 * @return 0, or ACP_EINVAL if @p out is NULL.
 */
ACP_EXTERN int acp_job_id_generate(acp_job_id *out);

/**
 * Derive the id of a job from its config, as lib-compute-platform's callers
 * do: the MD5 of the config's compact JSON text (no insignificant white
 * space, member order kept, Jackson's escaping), so that the same config
 * submitted by a Kotlin or a C service names the same job.
 *
 * The config is checked as acp_submit() checks it, so that what is accepted
 * is stored and run exactly as sent: besides strict JSON nested at most 64
 * levels, it refuses numbers that are not finite doubles (1e400), integers
 * beyond 64 bits, "\u0000" in a member name, lone surrogate escapes and
 * UTF-8 that is not strict (overlong forms, encoded surrogates, beyond
 * U+10FFFF).
 *
 * @param config_json JSON text, NUL-terminated, at most ACP_JOB_CONFIG_MAX
 *                    bytes; any JSON value.
 * @return 0; ACP_EINVAL for a NULL argument or text that is not exactly one
 *         JSON value or that the rules above refuse (the detail gives the
 *         reason and the byte offset);
 *         ACP_ETOOBIG when the text is over the limit; ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_id_from_config(acp_job_id *out, const char *config_json);

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */
/* ------------------------------------------------------------------------ */

/** A job's status; the names are lib-compute-platform's. */
typedef enum acp_job_status {
    ACP_STATUS_QUEUED = 1,      /**< "queued": waiting for a worker */
    ACP_STATUS_IN_PROGRESS = 2, /**< "in-progress": an executor is running it */
    ACP_STATUS_COMPLETE = 3,    /**< "complete": finished successfully */
    ACP_STATUS_FAILED = 4,      /**< "failed": finished unsuccessfully */
    ACP_STATUS_EXPIRED = 5,     /**< "expired": its results were pruned */
    /** "cancelled": acp_cancel_job() stopped it before it finished (in the
     *  lcp layout the workspace gets ".failed": other services, which know
     *  no such status, read it failed). */
    ACP_STATUS_CANCELLED = 6
} acp_job_status;

/** "queued", "in-progress", "complete", "failed", "expired", "cancelled",
 *  or "unknown". */
ACP_EXTERN const char *acp_job_status_name(acp_job_status status);

/** A running platform: connections, queues, worker and maintenance threads. */
typedef struct acp_platform acp_platform;

/* ------------------------------------------------------------------------ */
/* Executors                                                                */
/* ------------------------------------------------------------------------ */

#define ACP_JOB_CONTEXT_VERSION      1
#define ACP_EXECUTOR_OPS_VERSION     1
#define ACP_EXECUTOR_FACTORY_VERSION 1

/** Private part of a job context. */
typedef struct acp_job_outcome acp_job_outcome;

/**
 * What an executor gets to know about its job. The platform owns it and
 * everything it points to; all of it is valid from the factory's create()
 * until the executor's execute() returns, on the job's worker thread.
 */
typedef struct acp_job_context {
    unsigned version;               /**< ACP_JOB_CONTEXT_VERSION */
    acp_job_id id;                  /**< the job */
    char id_hex[ACP_JOB_ID_STRLEN]; /**< the job id as 32 lowercase hex */
    const char *queue;              /**< the queue id it was submitted to */
    const char *config;             /**< compact JSON text, NULL when none */
    /** The scratch directory "<workspace_root>/<id>.<attempt>/", created
     *  empty before create() is called (a directory of that name left by
     *  another run is never reused or removed: the run fails instead),
     *  holding "input-config" (when the job has a config) and the input
     *  files; removed with everything in it after execute() returns,
     *  whatever the outcome. */
    const char *dir;
    int dir_fd;               /**< an O_DIRECTORY descriptor of dir, for openat() */
    unsigned attempt;         /**< 1 on the first run, more after a requeue */
    acp_job_outcome *outcome; /**< private: use the functions below */
} acp_job_context;

/**
 * Name a file of the scratch directory to keep as a result. Call from
 * create() or execute(), on the worker thread. The name is checked at once:
 * a plain file name (no '/') of [A-Za-z0-9_.-], not ".", "..", a status flag,
 * ".workspace" or "input-config". After execute() returns, each named file
 * that exists as a regular file in the scratch directory is uploaded, for a
 * successful and a failed job alike (so error logs can be kept).
 *
 * @return 0; ACP_EINVAL for a bad name (the job goes on; the file is not
 *         kept); ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_add_output(acp_job_context *ctx, const char *name);

/**
 * Set the job's failure message (copied, at most 4 KiB kept), reported by
 * acp_get_job() when the job fails. Call from create() or execute() before
 * returning non-zero.
 *
 * @return 0, ACP_EINVAL or ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_set_message(acp_job_context *ctx, const char *message);

/**
 * Declare the failure permanent: once execute() (or create()) returns
 * non-zero, the job fails at once, whatever attempts it has left (for
 * input that can never work). Sets the failure message as
 * acp_job_set_message() does (@p message may be NULL to keep the one set).
 * Has no effect on a run that succeeds.
 *
 * @return 0, ACP_EINVAL or ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_fail_permanently(acp_job_context *ctx, const char *message);

/** Why a running job is asked to stop (acp_job_cancelled()). */
typedef enum acp_cancel_reason {
    ACP_CANCEL_NONE = 0,      /**< not asked to stop */
    ACP_CANCEL_REQUESTED = 1, /**< acp_cancel_job(), from any process */
    ACP_CANCEL_TIMEOUT = 2    /**< the attempt ran out of its timeout_seconds */
} acp_cancel_reason;

/**
 * Whether the job is asked to stop, and why: poll it in a loop. A
 * cancellation from another process is seen within about a second
 * (PostgreSQL LISTEN/NOTIFY, with the lease renewal as a fallback); a
 * timeout within a second of the limit. Once asked, the executor should
 * stop its work and return (any value): the attempt then ends "cancelled"
 * (never retried, no result kept) or, for a timeout, fails with "timed out
 * after N s" and is retried if attempts remain. An executor that has not
 * returned config.cancel_grace_seconds later is left running on its
 * thread, and the attempt is recorded without it.
 *
 * Thread-safe: may be called from any thread while the context is valid.
 * @return an acp_cancel_reason (ACP_CANCEL_NONE for a NULL context).
 */
ACP_EXTERN int acp_job_cancelled(const acp_job_context *ctx);

/**
 * A file descriptor that becomes readable (and stays so) when the job is
 * asked to stop, for poll() loops and for waiting on child processes:
 * poll it with POLLIN, never read or close it. Owned by the platform,
 * valid while the context is. @return the descriptor, or -1 for a NULL
 * context.
 */
ACP_EXTERN int acp_job_cancel_fd(const acp_job_context *ctx);

/** The longest progress text kept, in bytes (acp_job_progress()). */
#define ACP_PROGRESS_TEXT_MAX 256

/**
 * Report how far the job is: @p done of @p total units (@p total 0: unknown,
 * then @p done alone is shown), and an optional short text (NULL for none;
 * UTF-8, at most ACP_PROGRESS_TEXT_MAX bytes, no control characters).
 * acp_get_job() shows the latest report from any process (acp_job.progress_*).
 * Cheap: reports are kept in memory and written to PostgreSQL at most twice
 * a second per job (only the latest), so call it as often as you like. The
 * last report of an attempt is written when the attempt ends; a new attempt
 * starts with no progress.
 *
 * Thread-safe: any thread may call it while the context is valid.
 * @return 0; ACP_EINVAL (NULL context, @p done > @p total when @p total is
 *         not 0, a text too long, not UTF-8 or with control characters:
 *         nothing is changed); ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_progress(acp_job_context *ctx, uint64_t done, uint64_t total,
                                const char *text);

#if defined(__GNUC__) || defined(__clang__)
#define ACP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ACP_PRINTF(f, a)
#endif

/**
 * Append a line to the job's log, printf-style; a newline is added unless
 * the text ends with one (so a call writes whole lines). The log can be read
 * and followed from any process sharing the database while the job runs
 * (acp_read_log()) and is kept as the result file "log.txt" when the job
 * ends. See acp_job_log_write() for how text is stored.
 *
 * Thread-safe. @return 0, ACP_EINVAL (NULL context or format) or ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_log(acp_job_context *ctx, const char *format, ...) ACP_PRINTF(2, 3);

/**
 * Append @p len bytes to the job's log (for a child process's output, say).
 * Lines are kept whole: text after the last newline waits for the rest of
 * its line (or the end of the attempt; a line longer than 64 KiB is broken),
 * so text from calls on several threads never interleaves within a line.
 * Invalid UTF-8 is replaced with U+FFFD. Text is buffered in memory and
 * written to PostgreSQL in batches (at least every 200 ms while there is
 * new text); the log keeps config.log_cap_bytes (its head and its tail).
 * Attempts after the first start with a line "=== attempt N ===". Text
 * written after the attempt was recorded (an overdue executor's) is
 * dropped.
 *
 * Thread-safe. @return 0, ACP_EINVAL (NULL context, or NULL @p data with a
 *         non-zero @p len) or ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_log_write(acp_job_context *ctx, const void *data, size_t len);

typedef struct acp_executor acp_executor;

/** The operations of an executor. */
typedef struct acp_executor_ops {
    unsigned version; /**< ACP_EXECUTOR_OPS_VERSION */
    /**
     * Run the job. Called once, on the job's worker thread, with the scratch
     * directory as the place to read inputs and write results. Return 0 for
     * success, anything else for failure (with acp_job_set_message() for
     * the reason). May take as long as the job needs: the platform keeps the
     * job's lease alive meanwhile. Must not call acp_shutdown().
     */
    int (*execute)(acp_executor *executor, acp_job_context *ctx);
    /** Release the executor; called once, on the same thread, after
     *  execute() (or instead of it when the job is abandoned). May be NULL. */
    void (*free)(acp_executor *executor);
} acp_executor_ops;

/** An executor: embed this as the first member of your own structure. */
struct acp_executor {
    const acp_executor_ops *ops;
};

/** Makes an executor for each job; given to acp_init() in acp_config. */
struct acp_executor_factory {
    unsigned version; /**< ACP_EXECUTOR_FACTORY_VERSION */
    void *userdata;   /**< passed to create() and free() */
    /**
     * Make the executor for the job described by @p ctx and store it in
     * *@p out. Called on the job's worker thread, concurrently for jobs on
     * other workers: it must be thread-safe. Return 0, or non-zero to fail
     * the job (with acp_job_set_message() for the reason).
     */
    int (*create)(void *userdata, acp_job_context *ctx, acp_executor **out);
    /** Called once, when no job of the platform can call create() any more:
     *  by acp_shutdown() when every worker stopped within the shutdown
     *  timeout, otherwise by the last worker thread still running a job,
     *  when that job ends (possibly after acp_shutdown() returned). Called
     *  on that thread; must not call acp_* functions on the platform. Never
     *  called when acp_init() fails: the userdata stays the host's. May be
     *  NULL. */
    void (*free)(void *userdata);
};

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Start a platform: validate @p config, connect to PostgreSQL (the first
 * connection of the pool at once) and apply the schema migrations, check that
 * the S3 bucket exists and the credentials work (one signed listing, through
 * the client config.s3_client.signature names; the S3 keys are taken from
 * the AWS_* environment variables first when the config leaves them
 * empty; a warning is logged when certificate verification is off), create
 * the scratch root, remove the scratch
 * directories that runs of stopped processes left in it, connect to each
 * queue's RabbitMQ and declare "<id>_jobs", then start the worker threads and
 * the maintenance thread. Only then are messages consumed.
 *
 * @return 0 with *@p out set; on failure nothing is left running and *@p out
 *         is NULL: ACP_EINVAL / ACP_EVERSION (configuration, see
 *         acp_config_validate), ACP_EDB, ACP_ESTORAGE or ACP_EBROKER (with
 *         the service's address and the reason in acp_last_error()),
 *         ACP_EIO (scratch root), ACP_ENOMEM (also when a mutex,
 *         condition variable or thread cannot be created; the detail names
 *         it and the system's reason).
 */
ACP_EXTERN int acp_init(acp_platform **out, const acp_config *config);

/**
 * Stop a platform: stop taking messages, wait up to config.shutdown_timeout
 * seconds for running jobs to finish, then close every connection and
 * release everything. Jobs still running at the deadline are abandoned in
 * place: their leases expire and another process (or this one's next start)
 * requeues them; their worker threads release what they hold, and the last
 * one calls the factory's free(), when the job's execute() returns. Without
 * such jobs the factory's free() runs before acp_shutdown() returns. NULL is
 * fine.
 *
 * The host must make sure that no other acp_* call on @p platform is in
 * progress or starts while acp_shutdown() runs or after it (the handle is
 * freed): stop the threads that use it first. Must not be called from an
 * executor, the factory or the log callback: on one of the platform's own
 * threads (a worker, the maintenance or the pruner thread) it would wait
 * for itself, so there it only logs an error and returns. Calling it twice
 * is undefined.
 */
ACP_EXTERN void acp_shutdown(acp_platform *platform);

/* ------------------------------------------------------------------------ */
/* Submitting and reading jobs                                              */
/* ------------------------------------------------------------------------ */

/** Version of acp_submission this header describes. 1: up to
 *  input_count; 2: priority, max_attempts, timeout_seconds, not_before,
 *  delay_ms. */
#define ACP_SUBMISSION_VERSION 2

/** Bounds of a submission's job control fields (acp_submit checks them). */
#define ACP_PRIORITY_MIN     0
#define ACP_PRIORITY_MAX     100
#define ACP_PRIORITY_DEFAULT 50
/** The latest a job may be scheduled: this many seconds (366 days) ahead. */
#define ACP_DELAY_MAX 31622400
/** The earliest not_before accepted: this many seconds (1 day) ago; an
 *  older one is taken for a mistake (seconds given for microseconds). */
#define ACP_NOT_BEFORE_PAST_MAX 86400

/** An input file of a submission: either @c path (a file read at submit
 *  time) or @c data / @c size (a buffer). */
typedef struct acp_input {
    const char *name; /**< [A-Za-z0-9_.-], not reserved; unique */
    const char *path;
    const void *data;
    size_t size;
} acp_input;

/** What to run. Fill with acp_submission_init() first. Borrowed: needs to
 *  live only during acp_submit(). */
typedef struct acp_submission {
    unsigned version;        /**< ACP_SUBMISSION_VERSION */
    const acp_job_id *id;    /**< NULL: derived from config */
    const char *config;      /**< JSON text or NULL; at most ACP_JOB_CONFIG_MAX */
    const acp_input *inputs; /**< may be NULL when input_count is 0 */
    size_t input_count;

    /* ---- version 2: job control (docs/guide.adoc) ---- */

    /** Among a queue's due jobs the highest priority is claimed first, then
     *  the one due longest. ACP_PRIORITY_MIN..ACP_PRIORITY_MAX; default
     *  ACP_PRIORITY_DEFAULT. */
    int priority;
    /** Attempts, overriding the queue's max_attempts; 0: the queue's;
     *  1..ACP_MAX_ATTEMPTS_MAX. */
    unsigned max_attempts;
    /** Run-time limit of each attempt in seconds, overriding the queue's
     *  timeout_seconds; 0: the queue's; 1..ACP_TIMEOUT_MAX. */
    unsigned timeout_seconds;
    /** Run no earlier than this time, in microseconds since the Unix epoch
     *  (0: now). The job is "queued" but not claimed before then; its
     *  message is published when it becomes due. At most ACP_DELAY_MAX
     *  seconds ahead and ACP_NOT_BEFORE_PAST_MAX seconds ago. */
    int64_t not_before;
    /** Or: run no earlier than this many milliseconds from now (0: now);
     *  at most ACP_DELAY_MAX seconds. Not together with not_before. */
    uint64_t delay_ms;
} acp_submission;

/** Zero @p submission, of version @p version (pass ACP_SUBMISSION_VERSION),
 *  set its version and, from version 2, its priority to
 *  ACP_PRIORITY_DEFAULT. @return 0, ACP_EINVAL (NULL) or ACP_EVERSION. */
ACP_EXTERN int acp_submission_init(acp_submission *submission, unsigned version);

/** Version of acp_job this header describes. 2: next_run, priority,
 *  max_attempts, timeout_seconds, cancel_requested. 3: progress_*. */
#define ACP_JOB_VERSION 3

/** What is known about a job, filled in by the library. Release with
 *  acp_job_clear(). */
typedef struct acp_job {
    /** The largest queue position acp_get_job() counts (see acp_job). */
#define ACP_QUEUE_POSITION_MAX 1000

    /** The version of the layout the library filled in (ACP_JOB_VERSION of
     *  the library): fields of later versions are 0 when it is lower. */
    unsigned version;
    acp_job_id id;
    acp_job_status status;
    /** 1 when this service's database has the job, 0 when it was only found
     *  in S3 (another service sharing the bucket). */
    int owned;
    char queue[ACP_QUEUE_ID_MAX + 1]; /**< empty for an unowned job */
    /** Microseconds since the Unix epoch; 0 when not (yet) known. For an
     *  unowned job they come from the S3 flags' times. */
    int64_t created;
    int64_t grabbed;
    int64_t finished;
    int64_t last_accessed;
    /** 0-based position among the queued jobs of its queue in the order
     *  they are claimed: those of a higher priority, then those of the same
     *  priority due earlier (a delayed job counts from its next_run); -1
     *  when the job is not queued or not owned. Counted up to ACP_QUEUE_POSITION_MAX, so
     *  that reading a job costs the same however long its queue: a job
     *  further back reads ACP_QUEUE_POSITION_MAX ("that many or more"). */
    long queue_position;
    unsigned attempts; /**< attempts started (times a worker claimed it) */
    /** The failure message of the last failed attempt (of a failed job, or
     *  of a job queued for a retry), "cancelled" for a cancelled job, or
     *  NULL; owned by the struct. */
    char *message;
    /* ---- version 2: these took reserved slots (24 bytes), keeping the
     * structure's size ---- */
    /** Queued: when it may be claimed (its not_before, or the end of its
     *  retry back-off), microseconds since the Unix epoch; 0 for any other
     *  status. */
    int64_t next_run;
    int priority;          /**< ACP_PRIORITY_MIN..ACP_PRIORITY_MAX */
    unsigned max_attempts; /**< attempts it may take */
    /** Each attempt's limit in seconds; 0: none. */
    unsigned timeout_seconds;
    /** 1 when acp_cancel_job() asked the running attempt to stop and it has
     *  not ended yet. */
    int cancel_requested;
    /* ---- version 3: these took reserved slots (32 bytes more) ---- */
    /** The latest acp_job_progress() of its current (or last) attempt:
     *  done of total (total 0: unknown), its text (NULL when none; owned by
     *  the struct) and when it was written (microseconds since the Unix
     *  epoch; 0: no progress reported). */
    uint64_t progress_done;
    uint64_t progress_total;
    char *progress_text;
    int64_t progress_updated;
    void *reserved[ACP_RESERVED_SLOTS - 56 / sizeof(void *)]; /**< for later versions */
} acp_job;

/** Free what @p job owns and zero it. NULL is fine. */
ACP_EXTERN void acp_job_clear(acp_job *job);

/**
 * Submit a job to @p queue. A new job gets its row (queued), its input
 * files in S3 (in the lcp layout also its workspace: .workspace, .queued,
 * input-config) and its message.
 * Resubmitting an owned job that is complete, failed, expired or cancelled
 * re-runs it
 * (old results removed); resubmitting one that is queued or running changes
 * nothing and reports its current state. If RabbitMQ is unreachable the job
 * is still stored and its message is published later by the maintenance
 * thread.
 *
 * An id names one config: with @p submission->id set, an existing job of
 * that id whose config differs (in its compact form) is not touched, and the
 * call fails with ACP_ECONFLICT. Host applications that choose ids must make
 * them unique per config; ids derived from configs are.
 *
 * @param job if not NULL, receives the job's state after the call (when
 *        reading it back fails once the job is stored and dispatched, the
 *        call still succeeds and reports it queued: the job will run).
 * @return 0; ACP_ENOQUEUE (unknown queue); ACP_EINVAL (bad id, a config that
 *         acp_job_id_from_config() refuses, bad input name or input); ACP_ETOOBIG (config over the
 * limit); ACP_ECONFLICT (another service owns the job and it is not expired, or the id is taken by
 * another config); ACP_EIO (an input
 * file cannot be read); ACP_EDB / ACP_ESTORAGE. On a validation error nothing is written anywhere.
 */
ACP_EXTERN int acp_submit(acp_platform *platform, const char *queue,
                          const acp_submission *submission, acp_job *job);

/**
 * Read a job's state into @p job (release with acp_job_clear()). Updates the
 * job's last access time when it is owned.
 *
 * @return 0; ACP_ENOTFOUND when the database does not know it (in the lcp
 *         layout: nor S3, whose flags describe other services' jobs);
 *         ACP_EINVAL; ACP_EDB / ACP_ESTORAGE.
 */
ACP_EXTERN int acp_get_job(acp_platform *platform, const acp_job_id *id, acp_job *job);

/** A result file: its name in the workspace and its size in bytes. */
typedef struct acp_result_file {
    char *name;
    uint64_t size;
} acp_result_file;

/** Release with acp_result_list_clear(). */
typedef struct acp_result_list {
    acp_result_file *files;
    size_t count;
} acp_result_list;

/** Free what @p list owns and zero it. NULL is fine. */
ACP_EXTERN void acp_result_list_clear(acp_result_list *list);

/**
 * List a job's files: its inputs and results, sorted by name. For a job of
 * the native layout they come from its row (no S3 request; none once it is
 * expired); for one of the lcp layout from a listing of its workspace,
 * without the marker, the status flags and input-config.
 *
 * @return 0; ACP_ENOTFOUND when there is no such job (lcp: no workspace);
 *         ACP_EINVAL; ACP_EDB; ACP_ESTORAGE.
 */
ACP_EXTERN int acp_get_results(acp_platform *platform, const acp_job_id *id, acp_result_list *list);

/**
 * Receives a result file's bytes in pieces, in order, on the calling thread.
 * Return 0 to go on; any other value stops the transfer, and the read call
 * returns ACP_EUSER with acp_last_error() giving the value (keep any detail
 * of your own in @p userdata).
 */
typedef int (*acp_read_fn)(void *userdata, const void *data, size_t len);

/**
 * Stream the job's file @p name to @p sink, without holding it whole in
 * memory.
 *
 * @return 0; ACP_EUSER (the sink returned non-zero); ACP_ENOTFOUND (no such
 *         file); ACP_EINVAL (bad id or name); ACP_ESTORAGE.
 */
ACP_EXTERN int acp_read_result(acp_platform *platform, const acp_job_id *id, const char *name,
                               acp_read_fn sink, void *userdata);

/** As acp_read_result(), writing to the file descriptor @p fd (ACP_EIO when
 *  a write fails). */
ACP_EXTERN int acp_read_result_fd(acp_platform *platform, const acp_job_id *id, const char *name,
                                  int fd);

/**
 * As acp_read_result(), into a buffer of at most @p max_size bytes that the
 * library allocates: *@p data (release with acp_free()) and *@p size. A
 * file larger than @p max_size gives ACP_ETOOBIG. A NUL is appended after
 * the data (not counted in *@p size) for convenience with text.
 */
ACP_EXTERN int acp_read_result_buffer(acp_platform *platform, const acp_job_id *id,
                                      const char *name, size_t max_size, void **data, size_t *size);

/* ------------------------------------------------------------------------ */
/* Expiring, deleting and listing jobs                                      */
/* ------------------------------------------------------------------------ */

/**
 * Expire an owned job now: its row becomes "expired". In the native layout
 * its input and result files (those its row names) are deleted; the row is
 * marked expired only once all are gone. In the lcp layout its workspace keeps
 * ".workspace" and the status flags, loses "input-config", the inputs and
 * the results, and gains ".expired". A failed job loses ".failed" too (once
 * ".expired" exists), so that the flags read expired for every reader: a
 * failed job expires like a complete one. Expiring an expired job finishes
 * any clean-up a failed earlier attempt left. Resubmitting an expired job
 * runs it again.
 *
 * @return 0; ACP_ENOTFOUND (unknown id); ACP_EUNOWNED (only another service
 *         sharing the bucket has it: only the owner may expire a job);
 *         ACP_EBUSY (the job is running); ACP_EINVAL; ACP_EDB / ACP_ESTORAGE
 *         (when S3 failed before ".expired" was in place the row keeps its
 *         status, though some files may be gone: expire it again).
 */
ACP_EXTERN int acp_expire_job(acp_platform *platform, const acp_job_id *id);

/**
 * Cancel a job of this service. A queued job (also one waiting for its
 * not_before or a retry) becomes "cancelled" at once and never runs. A
 * running job, on whichever process or host runs it, is asked to stop
 * (acp_job_cancelled() and acp_job_cancel_fd() of its executor, within
 * about a second), and ends "cancelled" when its executor returns, or
 * config.cancel_grace_seconds later without it; acp_get_job() shows
 * cancel_requested meanwhile. A cancelled job keeps no result, is
 * not retried, and can be resubmitted (it then runs again). Only
 * PostgreSQL is needed: it works while RabbitMQ is down. Cancelling a job
 * whose cancellation is under way succeeds again.
 *
 * @return 0; ACP_ENOTFOUND (no such job); ACP_ECONFLICT (the job has
 *         already ended: complete, failed, expired or cancelled; the detail
 *         says which); ACP_EINVAL; ACP_EDB.
 */
ACP_EXTERN int acp_cancel_job(acp_platform *platform, const acp_job_id *id);

/**
 * Delete an owned job that is not running: its row and its objects (native
 * layout: the files its row names; lcp: every object of its workspace).
 *
 * @return 0; ACP_ENOTFOUND; ACP_EUNOWNED; ACP_EBUSY (running); ACP_EINVAL;
 *         ACP_EDB / ACP_ESTORAGE (the row is kept, so the call can be
 *         repeated).
 */
ACP_EXTERN int acp_delete_job(acp_platform *platform, const acp_job_id *id);

#define ACP_JOB_FILTER_VERSION 1
/** Largest page acp_list_jobs() returns. */
#define ACP_LIST_LIMIT_MAX 1000

/** Which jobs acp_list_jobs() returns. Fill with acp_job_filter_init(). */
typedef struct acp_job_filter {
    unsigned version; /**< ACP_JOB_FILTER_VERSION */
    /** Bit set of (1u << status); 0 for every status. */
    unsigned statuses;
    /** Only jobs of this queue id; NULL for every queue. */
    const char *queue;
    /** Page size, 1..ACP_LIST_LIMIT_MAX; default 100. */
    size_t limit;
    /** NULL for the first page, else the next_cursor of the previous page. */
    const char *cursor;
} acp_job_filter;

/** Zero @p filter, of version @p version (pass ACP_JOB_FILTER_VERSION), set
 *  its version and the default limit. @return 0, ACP_EINVAL (NULL) or
 *  ACP_EVERSION. */
ACP_EXTERN int acp_job_filter_init(acp_job_filter *filter, unsigned version);

/** A page of jobs. Release with acp_job_list_clear(). */
typedef struct acp_job_list {
    acp_job *jobs;
    size_t count;
    /** Pass as filter.cursor for the next page; NULL on the last page. */
    char *next_cursor;
} acp_job_list;

/** Free what @p list owns and zero it. NULL is fine. */
ACP_EXTERN void acp_job_list_clear(acp_job_list *list);

/**
 * List this service's jobs, oldest first (by creation, then id), one page at
 * a time: paging with the cursor neither repeats nor skips a job, however
 * many there are and while jobs are added. Does not count as an access.
 * Queue positions are not computed here (-1).
 *
 * @return 0; ACP_EINVAL (bad filter, limit or cursor); ACP_EDB.
 */
ACP_EXTERN int acp_list_jobs(acp_platform *platform, const acp_job_filter *filter,
                             acp_job_list *list);

/**
 * List the workspaces under the configured root that this service does not
 * own (other services sharing the bucket), a page of at most @p limit
 * (1..ACP_LIST_LIMIT_MAX) at a time, in id order, with status and times from
 * their flags (owned = 0). @p cursor as for acp_list_jobs().
 *
 * @return 0; ACP_EINVAL; ACP_EDB / ACP_ESTORAGE.
 */
ACP_EXTERN int acp_list_unowned(acp_platform *platform, const char *cursor, size_t limit,
                                acp_job_list *list);

#define ACP_JOB_COUNTS_VERSION 1
/** Slots of acp_queue_counts.jobs: indexed by acp_job_status (0 unused),
 *  with room for a status to come. */
#define ACP_STATUS_SLOTS 8

/** The jobs of one queue in this service's database (acp_count_jobs()). */
typedef struct acp_queue_counts {
    char queue[ACP_QUEUE_ID_MAX + 1];
    /** Jobs in each status: jobs[ACP_STATUS_QUEUED], ... (0 for a status
     *  with none). */
    uint64_t jobs[ACP_STATUS_SLOTS];
    /** Jobs that ended failed at or after acp_job_counts.failed_since. */
    uint64_t failed_recently;
} acp_queue_counts;

/** What acp_count_jobs() counts and its answer. Fill with
 *  acp_job_counts_init(); release with acp_job_counts_clear(). */
typedef struct acp_job_counts {
    unsigned version; /**< ACP_JOB_COUNTS_VERSION */
    /** In: failures that ended at or after this time (microseconds since the
     *  Unix epoch) count as recent; 0 (the default) for one hour before the
     *  call. */
    int64_t failed_since;
    /** Out: every queue with at least one job, sorted by id; at most 1000
     *  (the first by id when there are more). Owned by the library. */
    acp_queue_counts *queues;
    size_t count;
} acp_job_counts;

/** Zero @p counts, of version @p version (pass ACP_JOB_COUNTS_VERSION),
 *  and set its version. @return 0, ACP_EINVAL (NULL) or ACP_EVERSION. */
ACP_EXTERN int acp_job_counts_init(acp_job_counts *counts, unsigned version);

/** Free what @p counts owns (its queues) and keep its version and
 *  failed_since. NULL is fine. */
ACP_EXTERN void acp_job_counts_clear(acp_job_counts *counts);

/**
 * Count this service's jobs (its database's rows, every queue, not only
 * those this process serves) by queue and status, and the failures since
 * @p counts->failed_since, in one SQL statement. It reads every job's
 * index entry (about 50 ms per 100,000 jobs on a loaded 2-core machine): a
 * dashboard should cache the answer for a few seconds rather than ask at
 * every request.
 * Any queues a previous call left in @p counts are freed first. Safe from
 * any thread, with one @p counts per thread.
 *
 * @return 0; ACP_EINVAL (NULL, failed_since negative); ACP_EVERSION;
 *         ACP_EDB; ACP_ENOMEM.
 */
ACP_EXTERN int acp_count_jobs(acp_platform *platform, acp_job_counts *counts);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Logs                                                                     */
/* ------------------------------------------------------------------------ */

#define ACP_LOG_READ_VERSION 1
/** The most acp_read_log() hands over in one call, and its default. */
#define ACP_LOG_READ_MAX (1u << 20)
/** The longest acp_read_log() waits for text. */
#define ACP_LOG_WAIT_MAX 300000 /* milliseconds */

/** A read of a job's log: what to read (in), what was read (out). */
typedef struct acp_log_read {
    unsigned version; /**< ACP_LOG_READ_VERSION */
    /** In: the byte offset to read from, in the log as written (0: the
     *  start; the previous call's next to go on). */
    uint64_t offset;
    /** In: the most bytes to hand to the sink; 0 = ACP_LOG_READ_MAX. */
    size_t max_bytes;
    /** In: milliseconds to wait for text beyond @p offset when there is
     *  none yet and the job has not ended (following a running job); 0
     *  returns at once. At most ACP_LOG_WAIT_MAX. A wait ends within a
     *  moment of new text being written by any process (PostgreSQL
     *  LISTEN/NOTIFY) or of the job ending. */
    unsigned wait_ms;
    /** Out: the offset after what was handed over (where to go on). */
    uint64_t next;
    /** Out: 1 when the job has ended and @p next is the end of its log: no
     *  more text will come (until the job is resubmitted). */
    int ended;
    /** Out: bytes between @p offset and @p next that the cap dropped (the
     *  sink got a marker line instead of them). */
    uint64_t dropped;
} acp_log_read;

/** Fill @p read with the defaults of @p version (offset 0, no wait).
 *  @return 0, ACP_EINVAL or ACP_EVERSION. */
ACP_EXTERN int acp_log_read_init(acp_log_read *read, unsigned version);

/**
 * Read a job's log from read->offset: while the job runs (on any process
 * sharing the database) from PostgreSQL, after it ended from its kept
 * "log.txt" result, with the same offsets. Hands what is there (up to
 * read->max_bytes, whole lines where it can) to @p sink in one or more
 * calls; waits up to read->wait_ms when there is nothing yet. Where the cap
 * dropped text, the sink gets a marker line "[... N bytes dropped ...]"
 * instead (not counted in offsets). A job that wrote no log reads as empty.
 *
 * Any thread. @return 0 (also when nothing was read: compare next with
 *         offset); ACP_ENOTFOUND (no such job of this service); ACP_EINVAL;
 *         ACP_EVERSION; ACP_EUSER (the sink returned non-zero); ACP_EDB,
 *         ACP_ESTORAGE; ACP_ESHUTDOWN (acp_shutdown() ended a wait).
 */
ACP_EXTERN int acp_read_log(acp_platform *platform, const acp_job_id *id, acp_log_read *read,
                            acp_read_fn sink, void *userdata);

/* ------------------------------------------------------------------------ */
/* Metrics                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * Write the platform's metrics in the Prometheus text exposition format
 * (version 0.0.4; content type "text/plain; version=0.0.4"), with HELP and
 * TYPE lines, to @p sink in one or more calls: job counters per queue, queue
 * gauges, queue wait and run time histograms, backend requests, errors,
 * latencies and reconnects, build info. docs/operations.adoc lists every
 * name. Counters count what this process saw since acp_init(); the count of
 * jobs queued in the database comes from one query run at most every 5 s
 * (a scrape costs at most one SQL statement).
 *
 * Any thread. @return 0, ACP_EINVAL, ACP_EUSER (the sink returned non-zero),
 *         ACP_ENOMEM.
 */
ACP_EXTERN int acp_metrics_write(acp_platform *platform, acp_read_fn sink, void *userdata);

/* ------------------------------------------------------------------------ */

/** 1: up to jobs_running; 2: jobs_retried up to executors_overdue. */
#define ACP_STATS_VERSION 2

/** Counters since acp_init(), for monitoring and benchmarks. */
typedef struct acp_stats {
    /** Set before the call: ACP_STATS_VERSION, or any earlier version, whose
     *  fields alone are then written. */
    unsigned version;
    uint64_t jobs_submitted;     /**< runs created by acp_submit (new jobs, re-runs) */
    uint64_t jobs_started;       /**< jobs claimed by this process's workers */
    uint64_t jobs_completed;     /**< ... that ended complete */
    uint64_t jobs_failed;        /**< ... that ended failed */
    uint64_t jobs_requeued;      /**< jobs of dead processes requeued by this one */
    uint64_t jobs_expired;       /**< by acp_expire_job() and the pruner */
    uint64_t messages_published; /**< job messages the broker confirmed */
    uint64_t messages_acked;     /**< deliveries acknowledged by the workers */
    uint64_t messages_dropped;   /**< malformed, duplicate or stale deliveries */
    uint64_t sql_statements;     /**< statements sent to PostgreSQL */
    uint64_t s3_puts;            /**< S3 requests by kind, retries included */
    uint64_t s3_gets;
    uint64_t s3_heads;
    uint64_t s3_lists;
    uint64_t s3_deletes;
    unsigned jobs_running; /**< executing now in this process */
    /* ---- version 2 ---- */
    uint64_t jobs_retried;   /**< failed attempts queued again by this process */
    uint64_t jobs_cancelled; /**< jobs that ended cancelled here (queued or running) */
    uint64_t jobs_timed_out; /**< attempts of this process's workers that timed out */
    /** Executors still running although their attempt was recorded without
     *  them (cancelled or timed out, past config.cancel_grace_seconds): each
     *  holds a worker thread, so its queue runs with one worker fewer until
     *  the executor returns. Not 0 for long means an executor ignores
     *  cancellation. */
    unsigned executors_overdue;
} acp_stats;

/**
 * Read the platform's counters into @p stats, whose version must be set.
 * Cheap (atomic reads, no I/O): call it as often as you like.
 *
 * @return 0, ACP_EINVAL or ACP_EVERSION.
 */
ACP_EXTERN int acp_get_stats(acp_platform *platform, acp_stats *stats);

/** Free memory the library allocated for the caller. NULL is fine. */
ACP_EXTERN void acp_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif /* ASYNC_PLATFORM_H */
