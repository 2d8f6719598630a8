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
 * - Structures the caller fills in start with a `version` field, set by the
 *   matching *_init() function; always call it before filling in fields so
 *   that new fields get their defaults when the library grows.
 * - Every function here may be called from any thread.
 */
#ifndef ASYNC_PLATFORM_H
#define ASYNC_PLATFORM_H

#include <stddef.h>

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

/** Version of this header. ACP_VERSION_MAJOR is also the shared library's
 *  soname number (libasync-platform.so.ACP_VERSION_MAJOR). */
#define ACP_VERSION_MAJOR  0
#define ACP_VERSION_MINOR  1
#define ACP_VERSION_PATCH  0
#define ACP_VERSION_STRING "0.1.0"
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
    ACP_ETOOBIG = -14
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

/** Version of acp_config this header describes; set by acp_config_init(). */
#define ACP_CONFIG_VERSION 1
/** Version of acp_queue_config this header describes. */
#define ACP_QUEUE_CONFIG_VERSION 1

/** Bounds enforced by acp_config_validate(). */
#define ACP_QUEUE_ID_MAX            32 /* characters; the id is stored in a varchar(32) */
#define ACP_WORKERS_MIN             1
#define ACP_WORKERS_MAX             64
#define ACP_POOL_SIZE_MAX           1000
#define ACP_MESSAGE_ACK_TIMEOUT_MIN 300 /* seconds, as upstream */
#define ACP_EXPIRATION_DAYS_MAX     36500
#define ACP_PATH_MAX                1024 /* bytes, for root_path and workspace_root */

/** PostgreSQL connection. The database holds this service's job rows. */
typedef struct acp_db_config {
    const char *host;     /**< required; host name or address */
    int port;             /**< default 5432; 1..65535 */
    const char *dbname;   /**< required */
    const char *user;     /**< required */
    const char *password; /**< required and non-empty, as upstream */
    int pool_size;        /**< connections kept open; default 10; 1..ACP_POOL_SIZE_MAX */
} acp_db_config;

/** S3 endpoint and the place of the job workspaces in it. */
typedef struct acp_s3_config {
    const char *host;       /**< required; host name or address, without a port */
    int port;               /**< default 80; 0 means "none in the URL"; 0..65535 */
    int https;              /**< default 0 (plain HTTP) */
    const char *bucket;     /**< required; must exist; an S3 bucket name (3..63 of [a-z0-9.-]) */
    const char *access_key; /**< required */
    const char *secret_key; /**< required */
    /** Key prefix of the workspaces; default "/" (the bucket's top level).
     *  Segments of [A-Za-z0-9_.-] separated by '/', no "." or "..". */
    const char *root_path;
} acp_s3_config;

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
    /** Local directory under which each running job gets a scratch
     *  directory "<workspace_root>/<job id>/". Default "/tmp/workspaces".
     *  Must be absolute, not "/", without "." or ".." segments. */
    const char *workspace_root;
    /** Days after the last access before a complete job's results are
     *  expired. Default 30; 1..ACP_EXPIRATION_DAYS_MAX. */
    unsigned expiration_days;
    /** Seconds between two runs of the expiration pruner. Default 43200
     *  (12 h); at least 1. */
    unsigned prune_interval;
} acp_config;

/**
 * Fill @p config with the defaults (upstream's: database port 5432, pool of
 * 10, S3 port 80 over plain HTTP, root path "/", workspace root
 * "/tmp/workspaces", 30 expiration days, pruning every 12 hours) and set its
 * version. Required fields (host names, credentials, database, bucket,
 * queues) are left NULL.
 *
 * @return 0, or ACP_EINVAL if @p config is NULL.
 */
ACP_EXTERN int acp_config_init(acp_config *config);

/**
 * Fill @p queue with the queue defaults (AMQP port 5672, 5 workers, message
 * acknowledgement timeout 1800 s) and set its version. id, host, user and
 * password are left NULL.
 *
 * @return 0, or ACP_EINVAL if @p queue is NULL.
 */
ACP_EXTERN int acp_queue_config_init(acp_queue_config *queue);

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
 * @param config_json JSON text, NUL-terminated, at most ACP_JOB_CONFIG_MAX
 *                    bytes; any JSON value.
 * @return 0; ACP_EINVAL for a NULL argument or text that is not exactly one
 *         JSON value (the detail gives the parser's reason and offset);
 *         ACP_ETOOBIG when the text is over the limit; ACP_ENOMEM.
 */
ACP_EXTERN int acp_job_id_from_config(acp_job_id *out, const char *config_json);

#ifdef __cplusplus
}
#endif

#endif /* ASYNC_PLATFORM_H */
