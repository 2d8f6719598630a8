/* One S3 request on a curl easy handle: the URL (s3_url.h), method, signed
 * headers, timeouts, TLS settings and callbacks, and, once curl is done
 * with it, the request's outcome (s3_outcome.h) and answers (s3_xml.h).
 * transport_curl.c owns the handles and drives the transfers. */
#ifndef ACP_S3_CALL_H
#define ACP_S3_CALL_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "async_platform.h"
#include "buf.h"
#include "transport.h"

/* PUTs and parts up to this size take the total request timeout; larger
 * ones, and every GET, the "no byte moved" timeout. */
#define S3_CALL_SMALL_BODY (1u << 20)

/* What every request of a transport shares; the strings are owned. */
typedef struct s3_call_settings {
    char *base_url; /* s3_url_base() */
    bool virtual_hosted;
    char *region;
    char *sigv4; /* "aws:amz:<region>:s3" */
    char *access_key;
    char *secret_key;
    char *token_header; /* "x-amz-security-token: ..." or NULL */
    char *ca_file;      /* NULL: the system's */
    char *ca_path;
    bool verify; /* the peer's certificate and host name */
    long connect_timeout_ms;
    long request_timeout_ms;
} s3_call_settings;

/* Copies what requests need from the configuration. 0, or ACP_ENOMEM. */
int s3_call_settings_init(s3_call_settings *s, const acp_s3_config *s3,
                          const acp_s3_client_config *client, bool virtual_hosted);
void s3_call_settings_free(s3_call_settings *s);

typedef struct s3_call {
    const s3_call_settings *settings;
    transport_request *req;
    CURL *easy;
    struct curl_slist *headers;
    buf url;
    buf answer;            /* a listing, a multipart answer or an error body */
    bool answer_overflow;  /* ... longer than allowed: cut */
    bool answer_no_memory; /* ... could not be kept */
    buf document;          /* the body of CompleteMultipartUpload */
    uint64_t upload_size;  /* PUT, part or document */
    uint64_t offset;       /* where curl reads next */
    bool read_stopped;     /* the request's reader returned -1 */
    bool sink_stopped;     /* the GET's sink returned non-zero */
    uint64_t received;     /* GET: bytes given to the sink */
    /* For the driver (transport_curl.c). */
    bool body_transfer;  /* timed by bytes moved, not in total */
    curl_off_t moved;    /* bytes sent and received so far */
    int64_t moved_at_ms; /* clock_now_ms() when that last changed */
    bool stalled;        /* given up: nothing moved for the timeout */
    bool done;
    CURLcode code;          /* curl's result once done */
    char bucket_region[64]; /* the x-amz-bucket-region header */
    char etag[TRANSPORT_ETAG_MAX + 1];
    char errbuf[CURL_ERROR_SIZE];
} s3_call;

/* Sets @easy up for @req. 0; or -1 when the request cannot be sent, with
 * req->outcome saying why (nothing to release then). */
int s3_call_prepare(s3_call *call, const s3_call_settings *settings, transport_request *req,
                    CURL *easy);

/* Once call->done: fills req->outcome and the request's answers. */
void s3_call_finish(s3_call *call);

/* Frees what s3_call_prepare() allocated (not the easy handle). */
void s3_call_release(s3_call *call);

#endif
