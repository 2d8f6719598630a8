/* s3_call.c: one S3 request on a curl easy handle (see s3_call.h). */
#include "s3_call.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_s3.h"
#include "s3_outcome.h"
#include "s3_url.h"
#include "s3_xml.h"

/* Longest error body kept (S3's are well under 1 KiB), and longest answer
 * (a page of 1000 keys of 1024 bytes, URL-encoded, is about 3.5 MiB). */
#define S3_CALL_ERROR_MAX  (64u << 10)
#define S3_CALL_ANSWER_MAX (16u << 20)

/* ---- settings ------------------------------------------------------------ */

static char *s3_call_strdup(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int s3_call_settings_init(s3_call_settings *s, const acp_s3_config *s3,
                          const acp_s3_client_config *client, bool virtual_hosted)
{
    *s = (s3_call_settings){
        .virtual_hosted = virtual_hosted,
        .verify = !client->tls_skip_verify,
        .connect_timeout_ms = (long)client->connect_timeout_ms,
        .request_timeout_ms = (long)client->request_timeout_ms,
    };
    const char *region = s3->region && *s3->region ? s3->region : CONFIG_S3_REGION_DEFAULT;
    buf url = BUF_INIT, sigv4 = BUF_INIT, token = BUF_INIT;
    int rc = s3_url_base(&url, s3->https != 0, s3->host, s3->port, s3->bucket, virtual_hosted);
    if (!rc)
        rc = buf_printf(&sigv4, "aws:amz:%s:s3", region);
    if (!rc && s3->session_token && *s3->session_token)
        rc = buf_printf(&token, "x-amz-security-token: %s", s3->session_token);
    s->base_url = url.data;
    s->sigv4 = sigv4.data;
    s->token_header = token.data;
    s->region = strdup(region);
    s->access_key = strdup(s3->access_key);
    s->secret_key = strdup(s3->secret_key);
    s->ca_file = s3_call_strdup(s3->ca_file);
    s->ca_path = s3_call_strdup(s3->ca_path);
    if (rc || !s->region || !s->access_key || !s->secret_key ||
        (s3->ca_file && *s3->ca_file && !s->ca_file) ||
        (s3->ca_path && *s3->ca_path && !s->ca_path)) {
        s3_call_settings_free(s);
        return ACP_ENOMEM;
    }
    return 0;
}

void s3_call_settings_free(s3_call_settings *s)
{
    free(s->base_url);
    free(s->region);
    free(s->sigv4);
    free(s->access_key);
    if (s->secret_key)
        memset(s->secret_key, 0, strlen(s->secret_key));
    free(s->secret_key);
    free(s->token_header);
    free(s->ca_file);
    free(s->ca_path);
    *s = (s3_call_settings){0};
}

/* ---- callbacks ----------------------------------------------------------- */

static long s3_call_status(CURL *easy)
{
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* A GET's object goes to the sink as it arrives; everything else (and a
 * GET's error) is kept, up to a limit, to be parsed. */
static size_t s3_call_write(char *data, size_t size, size_t count, void *userdata)
{
    s3_call *call = userdata;
    size_t len = size * count;
    long status = s3_call_status(call->easy);
    bool success = status >= 200 && status < 300;
    if (call->req->op == TRANSPORT_GET && success) {
        call->received += len;
        if (call->req->get.sink(call->req->get.userdata, data, len) != 0) {
            call->sink_stopped = true;
            return 0;
        }
        return len;
    }
    size_t max = success ? S3_CALL_ANSWER_MAX : S3_CALL_ERROR_MAX;
    if (len > max - call->answer.len) {
        call->answer_overflow = true;
        /* An error body is cut; an answer that is cut is useless. */
        return success ? 0 : len;
    }
    if (buf_append(&call->answer, data, len) != 0) {
        call->answer_no_memory = true;
        return 0;
    }
    return len;
}

/* Copies a header's value, without surrounding white space, into @out. */
static void s3_call_header_value(const char *value, size_t len, char *out, size_t size)
{
    while (len && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
        len--;
    if (len >= size)
        len = 0; /* too long to be what we look for: as if absent */
    memcpy(out, value, len);
    out[len] = '\0';
}

static size_t s3_call_header(char *data, size_t size, size_t count, void *userdata)
{
    s3_call *call = userdata;
    size_t len = size * count;
    static const char region[] = "x-amz-bucket-region:", etag[] = "etag:";
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after "100 Continue"): forget the last one's. */
        call->bucket_region[0] = '\0';
        call->etag[0] = '\0';
    } else if (len > sizeof region - 1 && strncasecmp(data, region, sizeof region - 1) == 0) {
        s3_call_header_value(data + sizeof region - 1, len - (sizeof region - 1),
                             call->bucket_region, sizeof call->bucket_region);
    } else if (len > sizeof etag - 1 && strncasecmp(data, etag, sizeof etag - 1) == 0) {
        s3_call_header_value(data + sizeof etag - 1, len - (sizeof etag - 1), call->etag,
                             sizeof call->etag);
    }
    return len;
}

static size_t s3_call_read(char *buffer, size_t size, size_t count, void *userdata)
{
    s3_call *call = userdata;
    size_t want = size * count;
    uint64_t left = call->upload_size - call->offset;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    transport_request *req = call->req;
    if (call->document.data) {
        memcpy(buffer, call->document.data + call->offset, want);
        call->offset += want;
        return want;
    }
    transport_read_fn read = req->op == TRANSPORT_PUT ? req->put.read : req->mpu_part.read;
    void *userdata_of_read = req->op == TRANSPORT_PUT ? req->put.userdata : req->mpu_part.userdata;
    ssize_t got = read(userdata_of_read, call->offset, buffer, want);
    if (got <= 0 || (size_t)got > want) {
        call->read_stopped = true;
        return CURL_READFUNC_ABORT;
    }
    call->offset += (uint64_t)got;
    return (size_t)got;
}

/* curl rewinds a body it must send again (a reused connection that turned
 * out closed, an authentication round). */
static int s3_call_seek(void *userdata, curl_off_t offset, int origin)
{
    s3_call *call = userdata;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > call->upload_size)
        return CURL_SEEKFUNC_CANTSEEK;
    call->offset = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* ---- the request --------------------------------------------------------- */

static void s3_call_fail(transport_request *req, transport_result result, const char *detail)
{
    req->outcome = (transport_outcome){.result = result};
    snprintf(req->outcome.detail, sizeof req->outcome.detail, "%s", detail);
}

static bool s3_call_keyed(transport_op op)
{
    return op != TRANSPORT_LIST && op != TRANSPORT_MPU_LIST;
}

static const char *s3_call_nonempty(const char *s)
{
    return s && *s ? s : NULL;
}

/* The URL: the object's or the bucket's, with the canonical query. */
static int s3_call_url(s3_call *call)
{
    transport_request *req = call->req;
    buf *url = &call->url;
    int rc = buf_puts(url, call->settings->base_url);
    if (!rc && s3_call_keyed(req->op))
        rc = buf_puts(url, "/") || s3_url_encode(url, req->key, strlen(req->key), true) ? ACP_ENOMEM
                                                                                        : 0;
    else if (!rc && call->settings->virtual_hosted)
        rc = buf_puts(url, "/");
    if (rc)
        return rc;
    char number[24];
    s3_url_param params[5];
    size_t n = 0;
    switch (req->op) {
    case TRANSPORT_LIST:
        snprintf(number, sizeof number, "%u", req->list.max_keys ? req->list.max_keys : 1000);
        params[n++] = (s3_url_param){"delimiter", s3_call_nonempty(req->list.delimiter)};
        params[n++] = (s3_url_param){"encoding-type", "url"};
        params[n++] = (s3_url_param){"marker", s3_call_nonempty(req->list.marker)};
        params[n++] = (s3_url_param){"max-keys", number};
        params[n++] = (s3_url_param){"prefix", s3_call_nonempty(req->list.prefix)};
        break;
    case TRANSPORT_MPU_CREATE:
        params[n++] = (s3_url_param){"uploads", ""};
        break;
    case TRANSPORT_MPU_PART:
        snprintf(number, sizeof number, "%u", req->mpu_part.number);
        params[n++] = (s3_url_param){"partNumber", number};
        params[n++] = (s3_url_param){"uploadId", req->mpu_part.upload_id};
        break;
    case TRANSPORT_MPU_COMPLETE:
        params[n++] = (s3_url_param){"uploadId", req->mpu_complete.upload_id};
        break;
    case TRANSPORT_MPU_ABORT:
        params[n++] = (s3_url_param){"uploadId", req->mpu_abort.upload_id};
        break;
    case TRANSPORT_MPU_LIST: {
        /* No encoding-type=url: radosgw 16 then encodes the uploads' keys
         * but not NextKeyMarker, and does not say that it encoded them.
         * Plain keys come back as they are (only characters XML cannot
         * carry would need it, and the layout's keys have none). */
        const char *key_marker = s3_call_nonempty(req->mpu_list.key_marker);
        params[n++] = (s3_url_param){"key-marker", key_marker};
        params[n++] = (s3_url_param){"prefix", s3_call_nonempty(req->mpu_list.prefix)};
        params[n++] =
            (s3_url_param){"upload-id-marker",
                           key_marker ? s3_call_nonempty(req->mpu_list.upload_id_marker) : NULL};
        params[n++] = (s3_url_param){"uploads", ""};
        break;
    }
    default:
        break;
    }
    if (n == 0)
        return 0;
    return buf_puts(url, "?") || s3_url_query(url, params, n) ? ACP_ENOMEM : 0;
}

/* CompleteMultipartUpload's part list. */
static int s3_call_document(s3_call *call)
{
    const transport_request *req = call->req;
    buf *doc = &call->document;
    int rc = buf_puts(doc, "<CompleteMultipartUpload "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; !rc && i < req->mpu_complete.count; i++) {
        const transport_part *part = &req->mpu_complete.parts[i];
        rc = buf_printf(doc, "<Part><PartNumber>%u</PartNumber><ETag>", part->number);
        for (const char *c = part->etag; !rc && *c; c++)
            rc = *c == '&'   ? buf_puts(doc, "&amp;")
                 : *c == '<' ? buf_puts(doc, "&lt;")
                 : *c == '>' ? buf_puts(doc, "&gt;")
                             : buf_append(doc, c, 1);
        if (!rc)
            rc = buf_puts(doc, "</ETag></Part>");
    }
    if (!rc)
        rc = buf_puts(doc, "</CompleteMultipartUpload>");
    call->upload_size = doc->len;
    return rc;
}

/* Method, body and timeout of @call's operation. */
static void s3_call_method(s3_call *call)
{
    CURL *easy = call->easy;
    transport_request *req = call->req;
    switch (req->op) {
    case TRANSPORT_PUT:
    case TRANSPORT_MPU_PART:
        call->upload_size = req->op == TRANSPORT_PUT ? req->put.size : req->mpu_part.size;
        call->body_transfer = call->upload_size > S3_CALL_SMALL_BODY;
        break;
    case TRANSPORT_GET:
        call->body_transfer = true;
        break;
    case TRANSPORT_HEAD:
        curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        curl_easy_setopt(easy, CURLOPT_FILETIME, 1L);
        break;
    case TRANSPORT_DELETE:
    case TRANSPORT_MPU_ABORT:
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    case TRANSPORT_MPU_CREATE:
    case TRANSPORT_MPU_COMPLETE:
        /* Not CURLOPT_POST: curl 7.88 would sign a hash of its POST fields
         * while the header says UNSIGNED-PAYLOAD, and add a Content-Type. */
        curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, "POST");
        break;
    case TRANSPORT_LIST:
    case TRANSPORT_MPU_LIST:
        break;
    }
    bool upload = req->op == TRANSPORT_PUT || req->op == TRANSPORT_MPU_PART ||
                  req->op == TRANSPORT_MPU_COMPLETE;
    if (upload) {
        curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)call->upload_size);
        curl_easy_setopt(easy, CURLOPT_READFUNCTION, s3_call_read);
        curl_easy_setopt(easy, CURLOPT_READDATA, call);
        curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, s3_call_seek);
        curl_easy_setopt(easy, CURLOPT_SEEKDATA, call);
        /* curl sends "Expect: 100-continue" with a non-empty upload and
         * waits (up to 1 s) for "100 Continue" before the body. Measured
         * against radosgw (200 PUTs of 100 bytes, 20 of 3 MiB, with the
         * quick ACKs of transport_curl.c): no difference with the wait cut
         * to 0, as radosgw answers at once; so it stays, and a refused
         * upload (403, 404) costs no body. It could not be dropped anyway:
         * curl 7.88 signs an "Expect:" header it then leaves out, and
         * radosgw refuses the signature. */
    }
    if (!call->body_transfer)
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, call->settings->request_timeout_ms);
}

static int s3_call_options(s3_call *call)
{
    const s3_call_settings *s = call->settings;
    CURL *easy = call->easy;
    /* Every custom header is signed by curl 7.88 (SignedHeaders lists
     * them): the payload is not hashed (the body is streamed, and read
     * twice only when curl must rewind), and the session token must be
     * part of the signature. */
    struct curl_slist *headers = curl_slist_append(NULL, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (headers && s->token_header) {
        struct curl_slist *more = curl_slist_append(headers, s->token_header);
        if (!more) {
            curl_slist_free_all(headers);
            headers = NULL;
        } else {
            headers = more;
        }
    }
    if (!headers)
        return ACP_ENOMEM;
    call->headers = headers;
    curl_easy_reset(easy);
    CURLcode rc = curl_easy_setopt(easy, CURLOPT_URL, call->url.data);
    if (rc != CURLE_OK)
        return rc == CURLE_OUT_OF_MEMORY ? ACP_ENOMEM : ACP_EINVAL;
    curl_easy_setopt(easy, CURLOPT_PRIVATE, call);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->errbuf);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* Keys may hold "/./" or "/../": they are names, not paths to squash. */
    curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "async-platform/" ACP_VERSION_STRING);
    curl_easy_setopt(easy, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(easy, CURLOPT_USERNAME, s->access_key);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, s->secret_key);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, s3_call_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s3_call_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, s->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, s->verify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, s->verify ? 2L : 0L);
    if (s->ca_file)
        curl_easy_setopt(easy, CURLOPT_CAINFO, s->ca_file);
    if (s->ca_path)
        curl_easy_setopt(easy, CURLOPT_CAPATH, s->ca_path);
    s3_call_method(call);
    return 0;
}

int s3_call_prepare(s3_call *call, const s3_call_settings *settings, transport_request *req,
                    CURL *easy)
{
    *call = (s3_call){.settings = settings, .req = req, .easy = easy, .url = BUF_INIT};
    s3_call_fail(req, TRANSPORT_TRANSIENT, "no answer from curl");
    if (s3_call_keyed(req->op) &&
        (!req->key || !*req->key || strlen(req->key) > TRANSPORT_KEY_MAX)) {
        s3_call_fail(req, TRANSPORT_PERMANENT, "the key is empty or longer than 1024 bytes");
        return -1;
    }
    if (req->op == TRANSPORT_HEAD) {
        req->head.size = 0;
        req->head.mtime = 0;
    } else if (req->op == TRANSPORT_MPU_PART) {
        req->mpu_part.etag[0] = '\0';
    }
    int rc = s3_call_url(call);
    if (!rc && req->op == TRANSPORT_MPU_COMPLETE)
        rc = s3_call_document(call);
    if (!rc)
        rc = s3_call_options(call);
    if (rc) {
        s3_call_release(call);
        if (rc == ACP_ENOMEM)
            s3_call_fail(req, TRANSPORT_NO_MEMORY, "out of memory composing the request");
        else
            s3_call_fail(req, TRANSPORT_PERMANENT, "curl refused the request's URL");
        return -1;
    }
    return 0;
}

void s3_call_release(s3_call *call)
{
    curl_slist_free_all(call->headers);
    call->headers = NULL;
    buf_free(&call->url);
    buf_free(&call->answer);
    buf_free(&call->document);
}

/* ---- the outcome --------------------------------------------------------- */

static bool s3_call_tls_error(CURLcode code)
{
    return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ||
           code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_CONNECT_ERROR ||
           code == CURLE_SSL_ISSUER_ERROR || code == CURLE_SSL_CIPHER ||
           code == CURLE_SSL_CRL_BADFILE;
}

/* curl could not complete the exchange. */
static void s3_call_transfer_failed(s3_call *call, long status)
{
    transport_outcome *o = &call->req->outcome;
    const s3_call_settings *s = call->settings;
    CURLcode code = call->code;
    *o = (transport_outcome){.result = s3_outcome_of_curl(code), .http_status = (int)status};
    const char *text = call->errbuf[0] ? call->errbuf : curl_easy_strerror(code);
    curl_off_t connected = 0;
    curl_easy_getinfo(call->easy, CURLINFO_CONNECT_TIME_T, &connected);
    curl_off_t expected = -1;
    curl_easy_getinfo(call->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &expected);
    if (call->read_stopped) {
        o->result = TRANSPORT_ABORTED;
        snprintf(o->detail, sizeof o->detail, "the request's body reader stopped it");
    } else if (call->sink_stopped) {
        o->result = TRANSPORT_ABORTED;
        snprintf(o->detail, sizeof o->detail, "the request's sink stopped it");
    } else if (call->answer_no_memory && code == CURLE_WRITE_ERROR) {
        o->result = TRANSPORT_NO_MEMORY;
        snprintf(o->detail, sizeof o->detail, "out of memory keeping the answer");
    } else if (call->answer_overflow && code == CURLE_WRITE_ERROR) {
        o->result = TRANSPORT_PERMANENT;
        snprintf(o->detail, sizeof o->detail, "the answer is larger than %u bytes",
                 S3_CALL_ANSWER_MAX);
    } else if (call->stalled) {
        o->result = TRANSPORT_TRANSIENT;
        snprintf(o->detail, sizeof o->detail, "transfer stalled for %ld ms (no byte moved)",
                 s->request_timeout_ms);
    } else if (code == CURLE_OPERATION_TIMEDOUT && connected == 0) {
        /* Never connected: as unreachable as a refused connection. */
        o->result = TRANSPORT_UNREACHABLE;
        snprintf(o->detail, sizeof o->detail, "connecting timed out after %ld ms",
                 s->connect_timeout_ms);
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        snprintf(o->detail, sizeof o->detail, "no response within %ld ms", s->request_timeout_ms);
    } else if (call->req->op == TRANSPORT_GET && code == CURLE_PARTIAL_FILE && expected >= 0) {
        snprintf(o->detail, sizeof o->detail,
                 "the transfer ended after %" PRIu64 " of %" PRId64 " bytes", call->received,
                 (int64_t)expected);
    } else if (s3_call_tls_error(code)) {
        snprintf(o->detail, sizeof o->detail, "TLS: %s", text);
    } else {
        snprintf(o->detail, sizeof o->detail, "%s", text);
    }
}

static void s3_call_xml_outcome(s3_call *call, s3_xml_status status, const char *what)
{
    transport_outcome *o = &call->req->outcome;
    if (status == S3_XML_OK)
        return;
    o->result = status == S3_XML_STOPPED     ? TRANSPORT_ABORTED
                : status == S3_XML_NO_MEMORY ? TRANSPORT_NO_MEMORY
                                             : TRANSPORT_PERMANENT;
    snprintf(o->detail, sizeof o->detail, "%s",
             status == S3_XML_STOPPED ? "a callback of the request stopped it" : what);
}

/* A 2xx answer: the request's answers. */
static void s3_call_succeeded(s3_call *call, long status)
{
    transport_request *req = call->req;
    transport_outcome *o = &req->outcome;
    *o = (transport_outcome){.result = TRANSPORT_OK, .http_status = (int)status};
    const char *doc = call->answer.data;
    size_t len = call->answer.len;
    curl_off_t length = -1, filetime = -1;
    switch (req->op) {
    case TRANSPORT_GET:
        curl_easy_getinfo(call->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        if (length >= 0 && call->received < (uint64_t)length) {
            o->result = TRANSPORT_TRANSIENT;
            snprintf(o->detail, sizeof o->detail,
                     "the transfer ended after %" PRIu64 " of %" PRId64 " bytes", call->received,
                     (int64_t)length);
        }
        break;
    case TRANSPORT_HEAD:
        curl_easy_getinfo(call->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
        curl_easy_getinfo(call->easy, CURLINFO_FILETIME_T, &filetime);
        req->head.size = length > 0 ? (uint64_t)length : 0;
        req->head.mtime = filetime > 0 ? (int64_t)filetime * 1000000 : 0;
        break;
    case TRANSPORT_LIST:
        s3_call_xml_outcome(call, s3_xml_list(doc, len, req), "the listing is not readable");
        break;
    case TRANSPORT_MPU_CREATE:
        s3_call_xml_outcome(call, s3_xml_mpu_create(doc, len, req),
                            "the answer to creating a multipart upload has no UploadId");
        break;
    case TRANSPORT_MPU_PART:
        if (!call->etag[0]) {
            o->result = TRANSPORT_PERMANENT;
            snprintf(o->detail, sizeof o->detail, "the server sent no ETag for part %u",
                     req->mpu_part.number);
        }
        snprintf(req->mpu_part.etag, sizeof req->mpu_part.etag, "%s", call->etag);
        break;
    case TRANSPORT_MPU_COMPLETE:
        /* The server may fail after it has answered 200 (it sends spaces
         * to keep the connection alive while it assembles the parts). */
        if (s3_outcome_body_is_error(doc, len))
            s3_outcome_http(o, status, doc, len, call->bucket_region, call->settings->region);
        break;
    case TRANSPORT_MPU_LIST:
        s3_call_xml_outcome(call, s3_xml_mpu_list(doc, len, req),
                            "the list of multipart uploads is not readable");
        break;
    case TRANSPORT_PUT:
    case TRANSPORT_DELETE:
    case TRANSPORT_MPU_ABORT:
        break;
    }
}

void s3_call_finish(s3_call *call)
{
    long status = s3_call_status(call->easy);
    if (call->code != CURLE_OK || call->stalled)
        s3_call_transfer_failed(call, status);
    else if (status >= 200 && status < 300)
        s3_call_succeeded(call, status);
    else
        s3_outcome_http(&call->req->outcome, status, call->answer.data, call->answer.len,
                        call->bucket_region, call->settings->region);
}
