/* s3_xml.c: S3's XML answers (see s3_xml.h). */
#include "s3_xml.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "s3_url.h"

/* An encoded key is at most three times as long as the key. */
#define S3_XML_TEXT_MAX (3 * TRANSPORT_KEY_MAX)

void s3_xml_init(void)
{
    xmlInitParser();
}

/* NULL for a document that does not parse. Parse errors are not printed
 * (libxml2 would write them to stderr), nothing is fetched from the
 * network and entities are not substituted, so a hostile body can neither
 * reach out nor blow up. */
static xmlDocPtr s3_xml_read(const char *doc, size_t len)
{
    if (!doc || len == 0 || len > INT_MAX)
        return NULL;
    return xmlReadMemory(doc, (int)len, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static bool s3_xml_is(const xmlNode *node, const char *name)
{
    return node->type == XML_ELEMENT_NODE && strcmp((const char *)node->name, name) == 0;
}

/* The text of @node into @out (@size bytes). False when it does not fit. */
static bool s3_xml_text(const xmlNode *node, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (const xmlNode *child = node->children; child; child = child->next) {
        if (child->type != XML_TEXT_NODE && child->type != XML_CDATA_SECTION_NODE)
            continue;
        const char *text = (const char *)child->content;
        size_t n = text ? strlen(text) : 0;
        if (n >= size - used)
            return false;
        memcpy(out + used, text, n);
        used += n;
        out[used] = '\0';
    }
    return true;
}

/* The first child of @node named @name, or NULL. */
static const xmlNode *s3_xml_child(const xmlNode *node, const char *name)
{
    for (const xmlNode *child = node->children; child; child = child->next)
        if (s3_xml_is(child, name))
            return child;
    return NULL;
}

/* The text of @node's child @name ("" when absent). */
static bool s3_xml_child_text(const xmlNode *node, const char *name, char *out, size_t size)
{
    const xmlNode *child = s3_xml_child(node, name);
    if (!child) {
        out[0] = '\0';
        return true;
    }
    return s3_xml_text(child, out, size);
}

/* Like s3_xml_text, for error fields: cut rather than fail. */
static void s3_xml_text_cut(const xmlNode *node, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (const xmlNode *c = node->children; c && used + 1 < size; c = c->next) {
        if ((c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) || !c->content)
            continue;
        int n = snprintf(out + used, size - used, "%s", (const char *)c->content);
        used = n < 0 ? used : (size_t)n >= size - used ? size - 1 : used + (size_t)n;
    }
}

bool s3_xml_error_parse(const char *doc, size_t len, s3_xml_error *out)
{
    memset(out, 0, sizeof *out);
    xmlDocPtr parsed = s3_xml_read(doc, len);
    if (!parsed)
        return false;
    const xmlNode *root = xmlDocGetRootElement(parsed);
    bool is_error = root && s3_xml_is(root, "Error");
    if (is_error) {
        for (const xmlNode *child = root->children; child; child = child->next) {
            if (s3_xml_is(child, "Code"))
                s3_xml_text_cut(child, out->code, sizeof out->code);
            else if (s3_xml_is(child, "Message"))
                s3_xml_text_cut(child, out->message, sizeof out->message);
            else if (s3_xml_is(child, "Resource"))
                s3_xml_text_cut(child, out->resource, sizeof out->resource);
            else if (s3_xml_is(child, "Region"))
                s3_xml_text_cut(child, out->region, sizeof out->region);
        }
    }
    xmlFreeDoc(parsed);
    return is_error;
}

bool s3_xml_time(const char *text, int64_t *us)
{
    struct tm tm = {0};
    int consumed = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
        consumed == 0)
        return false;
    const char *rest = text + consumed;
    int64_t fraction = 0, scale = 1000000;
    if (*rest == '.') {
        for (rest++; *rest >= '0' && *rest <= '9'; rest++) {
            if (scale > 1) {
                scale /= 10;
                fraction += (*rest - '0') * scale;
            }
        }
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "") != 0 && strcmp(rest, "+00:00") != 0)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t seconds = timegm(&tm);
    if (seconds == (time_t)-1)
        return false;
    *us = (int64_t)seconds * 1000000 + fraction;
    return true;
}

/* Whether the page's keys are URL-encoded (we ask for encoding-type=url,
 * but radosgw 16 encodes only object listings and says so). */
static bool s3_xml_encoded(const xmlNode *root)
{
    char type[16];
    return s3_xml_child_text(root, "EncodingType", type, sizeof type) && strcmp(type, "url") == 0;
}

/* A key-like text of @node's child @name into @out (TRANSPORT_KEY_MAX + 1
 * bytes), decoded when @encoded. */
static bool s3_xml_key(const xmlNode *node, const char *name, bool encoded, char *out)
{
    char text[S3_XML_TEXT_MAX + 1];
    if (!s3_xml_child_text(node, name, text, sizeof text))
        return false;
    if (encoded && !s3_url_decode(text))
        return false;
    if (strlen(text) > TRANSPORT_KEY_MAX)
        return false;
    strcpy(out, text);
    return true;
}

static bool s3_xml_true(const xmlNode *root, const char *name)
{
    char text[8];
    return s3_xml_child_text(root, name, text, sizeof text) && strcmp(text, "true") == 0;
}

/* Keeps @key in @last (NULL: not wanted) when it sorts after it. */
static void s3_xml_last(char *last, const char *key)
{
    if (last && strcmp(key, last) > 0)
        strcpy(last, key);
}

static s3_xml_status s3_xml_list_entry(const xmlNode *node, bool encoded, transport_request *req,
                                       char *last)
{
    char key[TRANSPORT_KEY_MAX + 1];
    if (s3_xml_is(node, "Contents")) {
        char size_text[32], time_text[64];
        if (!s3_xml_key(node, "Key", encoded, key) ||
            !s3_xml_child_text(node, "Size", size_text, sizeof size_text) ||
            !s3_xml_child_text(node, "LastModified", time_text, sizeof time_text))
            return S3_XML_MALFORMED;
        char *end;
        unsigned long long size = strtoull(size_text, &end, 10);
        int64_t mtime = 0;
        if (end == size_text || *end || !s3_xml_time(time_text, &mtime))
            return S3_XML_MALFORMED;
        /* Whole seconds, as a HEAD's Last-Modified has them: the listing
         * and a HEAD of one object then agree on its time. */
        mtime -= mtime % 1000000;
        s3_xml_last(last, key);
        return req->list.on_key(req->list.userdata, key, size, mtime) ? S3_XML_STOPPED : S3_XML_OK;
    }
    if (s3_xml_is(node, "CommonPrefixes")) {
        if (!s3_xml_key(node, "Prefix", encoded, key))
            return S3_XML_MALFORMED;
        s3_xml_last(last, key);
        if (!req->list.on_prefix)
            return S3_XML_OK;
        return req->list.on_prefix(req->list.userdata, key) ? S3_XML_STOPPED : S3_XML_OK;
    }
    return S3_XML_OK;
}

s3_xml_status s3_xml_list(const char *doc, size_t len, transport_request *req)
{
    req->list.truncated = false;
    req->list.next_marker[0] = '\0';
    xmlDocPtr parsed = s3_xml_read(doc, len);
    if (!parsed)
        return S3_XML_MALFORMED;
    const xmlNode *root = xmlDocGetRootElement(parsed);
    s3_xml_status status = S3_XML_MALFORMED;
    if (root && s3_xml_is(root, "ListBucketResult")) {
        bool encoded = s3_xml_encoded(root);
        req->list.truncated = s3_xml_true(root, "IsTruncated");
        /* radosgw 16 sends NextMarker unencoded even when it encodes the
         * keys, so an encoded page's marker is its last entry, which is
         * what NextMarker means. */
        status = encoded || s3_xml_key(root, "NextMarker", false, req->list.next_marker)
                     ? S3_XML_OK
                     : S3_XML_MALFORMED;
        char *last = encoded ? req->list.next_marker : NULL;
        for (const xmlNode *child = root->children; child && status == S3_XML_OK;
             child = child->next)
            status = s3_xml_list_entry(child, encoded, req, last);
        if (!req->list.truncated)
            req->list.next_marker[0] = '\0';
    }
    xmlFreeDoc(parsed);
    return status;
}

s3_xml_status s3_xml_mpu_create(const char *doc, size_t len, transport_request *req)
{
    req->mpu_create.upload_id[0] = '\0';
    xmlDocPtr parsed = s3_xml_read(doc, len);
    if (!parsed)
        return S3_XML_MALFORMED;
    const xmlNode *root = xmlDocGetRootElement(parsed);
    bool ok = root && s3_xml_is(root, "InitiateMultipartUploadResult") &&
              s3_xml_child_text(root, "UploadId", req->mpu_create.upload_id,
                                sizeof req->mpu_create.upload_id) &&
              req->mpu_create.upload_id[0];
    xmlFreeDoc(parsed);
    return ok ? S3_XML_OK : S3_XML_MALFORMED;
}

s3_xml_status s3_xml_mpu_list(const char *doc, size_t len, transport_request *req)
{
    req->mpu_list.truncated = false;
    req->mpu_list.next_key_marker[0] = '\0';
    req->mpu_list.next_upload_id_marker[0] = '\0';
    xmlDocPtr parsed = s3_xml_read(doc, len);
    if (!parsed)
        return S3_XML_MALFORMED;
    const xmlNode *root = xmlDocGetRootElement(parsed);
    s3_xml_status status = S3_XML_MALFORMED;
    if (root && s3_xml_is(root, "ListMultipartUploadsResult")) {
        bool encoded = s3_xml_encoded(root);
        req->mpu_list.truncated = s3_xml_true(root, "IsTruncated");
        status = s3_xml_key(root, "NextKeyMarker", encoded, req->mpu_list.next_key_marker) &&
                         s3_xml_child_text(root, "NextUploadIdMarker",
                                           req->mpu_list.next_upload_id_marker,
                                           sizeof req->mpu_list.next_upload_id_marker)
                     ? S3_XML_OK
                     : S3_XML_MALFORMED;
        for (const xmlNode *child = root->children; child && status == S3_XML_OK;
             child = child->next) {
            if (!s3_xml_is(child, "Upload"))
                continue;
            char key[TRANSPORT_KEY_MAX + 1], upload_id[TRANSPORT_UPLOAD_ID_MAX + 1];
            if (!s3_xml_key(child, "Key", encoded, key) ||
                !s3_xml_child_text(child, "UploadId", upload_id, sizeof upload_id))
                status = S3_XML_MALFORMED;
            else if (req->mpu_list.on_upload(req->mpu_list.userdata, key, upload_id))
                status = S3_XML_STOPPED;
        }
    }
    xmlFreeDoc(parsed);
    return status;
}
