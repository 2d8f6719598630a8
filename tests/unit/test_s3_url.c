/* The pieces of the libcurl S3 transport that need no server: URL
 * encoding and canonical queries (s3_url.c), S3's XML answers (s3_xml.c),
 * and the classification of statuses, curl errors and error bodies
 * (s3_outcome.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "s3_outcome.h"
#include "s3_url.h"
#include "s3_xml.h"

/* ---- s3_url ---------------------------------------------------------------- */

static void encode_keeps_only_unreserved_characters(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    const char key[] = "a/b c+d%e=f&g?h#i~j!k'l(m)n*o,p;q:r@s$t[u]v-w.x_y\xc3\xa9";
    assert_int_equal(s3_url_encode(&b, key, strlen(key), true), 0);
    assert_string_equal(b.data, "a/b%20c%2Bd%25e%3Df%26g%3Fh%23i~j%21k%27l%28m%29n%2Ao%2Cp%3Bq%3Ar%"
                                "40s%24t%5Bu%5Dv-w.x_y%C3%A9");
    buf_free(&b);
    assert_int_equal(s3_url_encode(&b, "x/y z", 5, false), 0);
    assert_string_equal(b.data, "x%2Fy%20z");
    buf_free(&b);
    /* Every byte that is not unreserved, control characters and 0xff too. */
    assert_int_equal(s3_url_encode(&b, "\x01\x7f\xff", 3, true), 0);
    assert_string_equal(b.data, "%01%7F%FF");
    buf_free(&b);
}

static void query_is_sorted_and_encoded(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    s3_url_param params[] = {
        {"prefix", "v4test/a b"}, {"max-keys", "1"}, {"marker", NULL},
        {"delimiter", "/"},       {"uploads", ""},   {"encoding-type", "url"},
    };
    assert_int_equal(s3_url_query(&b, params, 6), 0);
    assert_string_equal(b.data, "delimiter=%2F&encoding-type=url&max-keys=1&prefix=v4test%2Fa%20b&"
                                "uploads=");
    buf_free(&b);
    s3_url_param upload[] = {{"uploadId", "2~x+y"}, {"partNumber", "12"}};
    assert_int_equal(s3_url_query(&b, upload, 2), 0);
    assert_string_equal(b.data, "partNumber=12&uploadId=2~x%2By");
    buf_free(&b);
}

static void base_urls_for_both_addressing_styles(void **state)
{
    (void)state;
    buf b = BUF_INIT;
    assert_int_equal(s3_url_base(&b, false, "127.0.0.1", 7480, "bkt", false), 0);
    assert_string_equal(b.data, "http://127.0.0.1:7480/bkt");
    buf_free(&b);
    assert_int_equal(s3_url_base(&b, true, "s3.eu-west-1.amazonaws.com", 0, "bkt", true), 0);
    assert_string_equal(b.data, "https://bkt.s3.eu-west-1.amazonaws.com");
    buf_free(&b);
    assert_int_equal(s3_url_base(&b, false, "::1", 9000, "bkt", false), 0);
    assert_string_equal(b.data, "http://[::1]:9000/bkt");
    buf_free(&b);
}

static void decode_undoes_the_url_encoding(void **state)
{
    (void)state;
    char s[] = "a%2Fb%20c+d%2Be%C3%A9";
    assert_true(s3_url_decode(s));
    assert_string_equal(s, "a/b c d+e\xc3\xa9");
    char bad[] = "a%2";
    assert_false(s3_url_decode(bad));
    char nonhex[] = "a%zz";
    assert_false(s3_url_decode(nonhex));
    char nul[] = "a%00b";
    assert_false(s3_url_decode(nul));
}

/* ---- s3_xml: listings ------------------------------------------------------ */

typedef struct listed {
    char keys[8][64];
    uint64_t sizes[8];
    int64_t mtimes[8];
    int count;
    char prefixes[8][64];
    int prefix_count;
    int stop_after; /* 0: never */
} listed;

static int listed_key(void *userdata, const char *key, uint64_t size, int64_t mtime)
{
    listed *l = userdata;
    snprintf(l->keys[l->count], sizeof l->keys[0], "%s", key);
    l->sizes[l->count] = size;
    l->mtimes[l->count++] = mtime;
    return l->stop_after && l->count >= l->stop_after;
}

static int listed_prefix(void *userdata, const char *prefix)
{
    listed *l = userdata;
    snprintf(l->prefixes[l->prefix_count++], sizeof l->prefixes[0], "%s", prefix);
    return 0;
}

static transport_request list_request(listed *l)
{
    memset(l, 0, sizeof *l);
    return (transport_request){
        .op = TRANSPORT_LIST,
        .list = {.on_key = listed_key, .on_prefix = listed_prefix, .userdata = l}};
}

/* As radosgw 16 sends it: keys encoded, NextMarker not. */
static const char encoded_page[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult "
    "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><EncodingType>url</EncodingType>"
    "<Name>b</Name><Prefix>r%2F</Prefix><MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>"
    "<Contents><Key>r%2Fa%20b%2Bc%25</Key><LastModified>2026-12-03T15:41:28.305Z</LastModified>"
    "<ETag>&quot;764e&quot;</ETag><Size>3</Size></Contents>"
    "<Contents><Key>r%2Fcaf%C3%A9</Key><LastModified>1970-01-01T00:00:01.000Z</LastModified>"
    "<Size>0</Size></Contents>"
    "<CommonPrefixes><Prefix>r%2Fd%2F</Prefix></CommonPrefixes>"
    "<Marker></Marker><NextMarker>r/d/</NextMarker></ListBucketResult>";

static void an_encoded_page_is_decoded(void **state)
{
    (void)state;
    listed l;
    transport_request req = list_request(&l);
    assert_int_equal(s3_xml_list(encoded_page, strlen(encoded_page), &req), S3_XML_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.keys[0], "r/a b+c%");
    assert_int_equal(l.sizes[0], 3);
    /* Whole seconds, as HEAD's Last-Modified has them. */
    assert_int_equal(l.mtimes[0], 1796312488000000LL);
    assert_string_equal(l.keys[1], "r/caf\xc3\xa9");
    assert_int_equal(l.mtimes[1], 1000000);
    assert_int_equal(l.prefix_count, 1);
    assert_string_equal(l.prefixes[0], "r/d/");
    assert_true(req.list.truncated);
    /* The last entry, which is what NextMarker means. */
    assert_string_equal(req.list.next_marker, "r/d/");
}

static void a_plain_page_keeps_the_servers_marker(void **state)
{
    (void)state;
    const char page[] = "<ListBucketResult><IsTruncated>true</IsTruncated>"
                        "<Contents><Key>k%41 &amp; &lt;x&gt;</Key><Size>12</Size>"
                        "<LastModified>2026-01-02T03:04:05Z</LastModified></Contents>"
                        "<NextMarker>k%41 &amp; &lt;x&gt;</NextMarker></ListBucketResult>";
    listed l;
    transport_request req = list_request(&l);
    assert_int_equal(s3_xml_list(page, strlen(page), &req), S3_XML_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.keys[0], "k%41 & <x>");
    assert_string_equal(req.list.next_marker, "k%41 & <x>");
    /* The last page: not truncated, no marker. */
    const char last[] = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    req = list_request(&l);
    assert_int_equal(s3_xml_list(last, strlen(last), &req), S3_XML_OK);
    assert_false(req.list.truncated);
    assert_string_equal(req.list.next_marker, "");
    assert_int_equal(l.count, 0);
}

static void bad_pages_are_malformed_and_callbacks_can_stop(void **state)
{
    (void)state;
    listed l;
    transport_request req = list_request(&l);
    static const char *const bad[] = {
        "",
        "not xml",
        "<Error><Code>NoSuchBucket</Code></Error>",
        "<ListBucketResult><Contents><Key>k</Key><Size>x</Size>"
        "<LastModified>2026-01-02T03:04:05Z</LastModified></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
        "<LastModified>yesterday</LastModified></Contents></ListBucketResult>",
        "<ListBucketResult><EncodingType>url</EncodingType><Contents><Key>k%zz</Key>"
        "<Size>1</Size><LastModified>2026-01-02T03:04:05Z</LastModified></Contents>"
        "</ListBucketResult>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(s3_xml_list(bad[i], strlen(bad[i]), &req), S3_XML_MALFORMED);
    req = list_request(&l);
    l.stop_after = 1;
    assert_int_equal(s3_xml_list(encoded_page, strlen(encoded_page), &req), S3_XML_STOPPED);
    assert_int_equal(l.count, 1);
}

/* An entity defined in the document is not expanded (no "billion
 * laughs"), and nothing is fetched. */
static void entities_are_not_expanded(void **state)
{
    (void)state;
    const char page[] = "<?xml version=\"1.0\"?><!DOCTYPE ListBucketResult ["
                        "<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">"
                        "<!ENTITY ext SYSTEM \"http://127.0.0.1:1/x\">]>"
                        "<ListBucketResult><Contents><Key>k&b;&ext;</Key><Size>1</Size>"
                        "<LastModified>2026-01-02T03:04:05Z</LastModified></Contents>"
                        "</ListBucketResult>";
    listed l;
    transport_request req = list_request(&l);
    assert_int_equal(s3_xml_list(page, strlen(page), &req), S3_XML_OK);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.keys[0], "k");
}

/* ---- s3_xml: multipart answers ---------------------------------------------- */

typedef struct uploads {
    char keys[4][64];
    char ids[4][64];
    int count;
} uploads;

static int uploads_one(void *userdata, const char *key, const char *upload_id)
{
    uploads *u = userdata;
    snprintf(u->keys[u->count], sizeof u->keys[0], "%s", key);
    snprintf(u->ids[u->count++], sizeof u->ids[0], "%s", upload_id);
    return 0;
}

static void multipart_answers_are_read(void **state)
{
    (void)state;
    const char created[] = "<?xml version=\"1.0\"?><InitiateMultipartUploadResult "
                           "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket>"
                           "<Key>k</Key><UploadId>2~It85O98h</UploadId>"
                           "</InitiateMultipartUploadResult>";
    transport_request req = {.op = TRANSPORT_MPU_CREATE};
    assert_int_equal(s3_xml_mpu_create(created, strlen(created), &req), S3_XML_OK);
    assert_string_equal(req.mpu_create.upload_id, "2~It85O98h");
    const char no_id[] = "<InitiateMultipartUploadResult><UploadId></UploadId>"
                         "</InitiateMultipartUploadResult>";
    assert_int_equal(s3_xml_mpu_create(no_id, strlen(no_id), &req), S3_XML_MALFORMED);

    const char listed_uploads[] =
        "<ListMultipartUploadsResult><Bucket>b</Bucket><Prefix>p/</Prefix>"
        "<NextKeyMarker>p/b c</NextKeyMarker><NextUploadIdMarker>2~B</NextUploadIdMarker>"
        "<IsTruncated>true</IsTruncated>"
        "<Upload><Key>p/a+1</Key><UploadId>2~A</UploadId></Upload>"
        "<Upload><Key>p/b c</Key><UploadId>2~B</UploadId></Upload>"
        "</ListMultipartUploadsResult>";
    uploads u = {0};
    req = (transport_request){.op = TRANSPORT_MPU_LIST,
                              .mpu_list = {.on_upload = uploads_one, .userdata = &u}};
    assert_int_equal(s3_xml_mpu_list(listed_uploads, strlen(listed_uploads), &req), S3_XML_OK);
    assert_int_equal(u.count, 2);
    assert_string_equal(u.keys[0], "p/a+1");
    assert_string_equal(u.ids[0], "2~A");
    assert_string_equal(u.keys[1], "p/b c");
    assert_true(req.mpu_list.truncated);
    assert_string_equal(req.mpu_list.next_key_marker, "p/b c");
    assert_string_equal(req.mpu_list.next_upload_id_marker, "2~B");
}

/* ---- s3_outcome ------------------------------------------------------------- */

static void statuses_are_classified(void **state)
{
    (void)state;
    assert_int_equal(s3_outcome_of_status(200), TRANSPORT_OK);
    assert_int_equal(s3_outcome_of_status(204), TRANSPORT_OK);
    assert_int_equal(s3_outcome_of_status(206), TRANSPORT_OK);
    assert_int_equal(s3_outcome_of_status(404), TRANSPORT_NOT_FOUND);
    assert_int_equal(s3_outcome_of_status(403), TRANSPORT_DENIED);
    static const long transient[] = {500, 502, 503, 504};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(s3_outcome_of_status(transient[i]), TRANSPORT_TRANSIENT);
    static const long permanent[] = {301, 307, 400, 405, 409, 411, 412, 416, 429, 501, 505};
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++)
        assert_int_equal(s3_outcome_of_status(permanent[i]), TRANSPORT_PERMANENT);
}

static void curl_errors_are_classified(void **state)
{
    (void)state;
    assert_int_equal(s3_outcome_of_curl(CURLE_COULDNT_CONNECT), TRANSPORT_UNREACHABLE);
    assert_int_equal(s3_outcome_of_curl(CURLE_COULDNT_RESOLVE_HOST), TRANSPORT_UNREACHABLE);
    assert_int_equal(s3_outcome_of_curl(CURLE_OPERATION_TIMEDOUT), TRANSPORT_TRANSIENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_RECV_ERROR), TRANSPORT_TRANSIENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_SEND_ERROR), TRANSPORT_TRANSIENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_PARTIAL_FILE), TRANSPORT_TRANSIENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_GOT_NOTHING), TRANSPORT_TRANSIENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_PEER_FAILED_VERIFICATION), TRANSPORT_PERMANENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_SSL_CACERT_BADFILE), TRANSPORT_PERMANENT);
    assert_int_equal(s3_outcome_of_curl(CURLE_OUT_OF_MEMORY), TRANSPORT_NO_MEMORY);
    assert_int_equal(s3_outcome_of_curl(CURLE_ABORTED_BY_CALLBACK), TRANSPORT_ABORTED);
}

static void error_bodies_say_what_is_wrong(void **state)
{
    (void)state;
    transport_outcome o;
    const char secret[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
                          "<Code>SignatureDoesNotMatch</Code><Message></Message>"
                          "<RequestId>tx1</RequestId></Error>";
    s3_outcome_http(&o, 403, secret, strlen(secret), "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_DENIED);
    assert_int_equal(o.http_status, 403);
    assert_string_equal(o.code, "SignatureDoesNotMatch");
    assert_string_equal(o.detail,
                        "HTTP 403 SignatureDoesNotMatch: the secret key does not match the "
                        "access key");

    const char key[] = "<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you "
                       "provided does not exist in our records.</Message></Error>";
    s3_outcome_http(&o, 403, key, strlen(key), "", "us-east-1");
    assert_non_null(strstr(o.detail, "InvalidAccessKeyId: the access key is not known (The AWS"));
    assert_string_equal(o.message,
                        "The AWS Access Key Id you provided does not exist in our records.");

    const char missing[] = "<Error><Code>NoSuchKey</Code><Message>The specified key does not "
                           "exist.</Message><Resource>/b/k</Resource></Error>";
    s3_outcome_http(&o, 404, missing, strlen(missing), "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_NOT_FOUND);
    assert_string_equal(o.code, "NoSuchKey");
    assert_string_equal(o.detail,
                        "HTTP 404 NoSuchKey: The specified key does not exist. (resource /b/k)");

    /* No body at all (a HEAD): the status speaks. */
    s3_outcome_http(&o, 404, NULL, 0, "", "us-east-1");
    assert_string_equal(o.detail, "HTTP 404 Not Found");
    assert_string_equal(o.code, "");
    s3_outcome_http(&o, 503, "<Error><Code>SlowDown</Code></Error>", 36, "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_TRANSIENT);
    assert_string_equal(o.code, "SlowDown");
    s3_outcome_http(&o, 429, "<html>busy</html>", 17, "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_PERMANENT);
    assert_string_equal(o.detail, "HTTP 429 Too Many Requests");
}

static void a_wrong_region_names_the_right_one(void **state)
{
    (void)state;
    transport_outcome o;
    const char malformed[] =
        "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is "
        "malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
        "<Region>eu-west-1</Region><RequestId>R</RequestId></Error>";
    s3_outcome_http(&o, 400, malformed, strlen(malformed), "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_PERMANENT);
    assert_string_equal(o.code, "AuthorizationHeaderMalformed");
    assert_non_null(strstr(o.detail, "the bucket is in region 'eu-west-1' but requests are "
                                     "signed for 'us-east-1'"));
    /* A redirect names it only in a header. */
    const char moved[] = "<Error><Code>PermanentRedirect</Code><Message>The bucket you are "
                         "attempting to access must be addressed using the specified "
                         "endpoint.</Message></Error>";
    s3_outcome_http(&o, 301, moved, strlen(moved), "ap-south-1", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_PERMANENT);
    assert_non_null(strstr(o.detail, "region 'ap-south-1'"));
    /* The same region says nothing more. */
    s3_outcome_http(&o, 403, NULL, 0, "us-east-1", "us-east-1");
    assert_null(strstr(o.detail, "region"));
}

static void an_error_inside_a_200_is_an_error(void **state)
{
    (void)state;
    const char failed[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n  <Error><Code>"
                          "InternalError</Code><Message>We encountered an internal error. "
                          "Please try again.</Message></Error>";
    const char done[] = "<CompleteMultipartUploadResult><ETag>\"x-2\"</ETag>"
                        "</CompleteMultipartUploadResult>";
    assert_true(s3_outcome_body_is_error(failed, strlen(failed)));
    assert_false(s3_outcome_body_is_error(done, strlen(done)));
    assert_false(s3_outcome_body_is_error(NULL, 0));
    transport_outcome o;
    s3_outcome_http(&o, 200, failed, strlen(failed), "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_TRANSIENT);
    assert_int_equal(o.http_status, 200);
    assert_string_equal(o.code, "InternalError");
    const char invalid[] = "<Error><Code>InvalidPart</Code></Error>";
    s3_outcome_http(&o, 200, invalid, strlen(invalid), "", "us-east-1");
    assert_int_equal(o.result, TRANSPORT_PERMANENT);
}

static void times_are_utc_with_fractions(void **state)
{
    (void)state;
    int64_t us = 0;
    assert_true(s3_xml_time("1970-01-01T00:00:00.000Z", &us));
    assert_int_equal(us, 0);
    assert_true(s3_xml_time("2026-12-03T15:41:28.305Z", &us));
    assert_int_equal(us, 1796312488305000LL);
    assert_true(s3_xml_time("2000-02-29T12:00:00.1234567Z", &us));
    assert_int_equal(us, 951825600123456LL);
    assert_false(s3_xml_time("2026-12-03 15:41:28", &us));
    assert_false(s3_xml_time("2026-12-03T15:41:28+02:00", &us));
}

int main(void)
{
    s3_xml_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_keeps_only_unreserved_characters),
        cmocka_unit_test(query_is_sorted_and_encoded),
        cmocka_unit_test(base_urls_for_both_addressing_styles),
        cmocka_unit_test(decode_undoes_the_url_encoding),
        cmocka_unit_test(an_encoded_page_is_decoded),
        cmocka_unit_test(a_plain_page_keeps_the_servers_marker),
        cmocka_unit_test(bad_pages_are_malformed_and_callbacks_can_stop),
        cmocka_unit_test(entities_are_not_expanded),
        cmocka_unit_test(multipart_answers_are_read),
        cmocka_unit_test(statuses_are_classified),
        cmocka_unit_test(curl_errors_are_classified),
        cmocka_unit_test(error_bodies_say_what_is_wrong),
        cmocka_unit_test(a_wrong_region_names_the_right_one),
        cmocka_unit_test(an_error_inside_a_200_is_an_error),
        cmocka_unit_test(times_are_utc_with_fractions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
