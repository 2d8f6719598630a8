/* The XML documents S3 answers with, parsed with libxml2 (no network, no
 * entity expansion, no DTD): error bodies, listing pages, the multipart
 * upload answers. Elements are matched by local name, whatever the
 * namespace (AWS and radosgw differ in where they put one). */
#ifndef ACP_S3_XML_H
#define ACP_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport.h"

/* Once per process, before any thread parses (libxml2's rule). */
void s3_xml_init(void);

/* The fields of an <Error> body that say what went wrong; "" when absent,
 * cut at the size. @region: the bucket's region, where the server names it
 * (AuthorizationHeaderMalformed, PermanentRedirect). */
typedef struct s3_xml_error {
    char code[64];
    char message[256];
    char resource[256];
    char region[64];
} s3_xml_error;

/* True, filling @out, when @doc is an <Error> document. */
bool s3_xml_error_parse(const char *doc, size_t len, s3_xml_error *out);

typedef enum s3_xml_status {
    S3_XML_OK,
    S3_XML_MALFORMED, /* not the document expected, or a value too long */
    S3_XML_NO_MEMORY,
    S3_XML_STOPPED, /* a callback of the request returned non-zero */
} s3_xml_status;

/* A ListObjects (v1) page: calls req->list.on_key and on_prefix in
 * document order and fills req->list.truncated and next_marker. Keys are
 * decoded when the page says <EncodingType>url</EncodingType>; the marker
 * of such a page is its last key or common prefix (radosgw 16 sends
 * NextMarker unencoded there), of other pages the server's NextMarker;
 * "" when the page is the last. Times are cut to whole seconds, as a
 * HEAD gives them. */
s3_xml_status s3_xml_list(const char *doc, size_t len, transport_request *req);

/* InitiateMultipartUploadResult: req->mpu_create.upload_id. */
s3_xml_status s3_xml_mpu_create(const char *doc, size_t len, transport_request *req);

/* ListMultipartUploadsResult: calls req->mpu_list.on_upload and fills its
 * truncated and next markers; keys decoded as for s3_xml_list. */
s3_xml_status s3_xml_mpu_list(const char *doc, size_t len, transport_request *req);

/* "2026-12-03T15:41:28.305Z" as µs since the epoch; false when it is not
 * such a time. */
bool s3_xml_time(const char *text, int64_t *us);

#endif
