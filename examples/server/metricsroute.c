#include "metricsroute.h"

#include <stdlib.h>
#include <string.h>

#include "httpmetrics.h"

#define METRICSROUTE_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct metricsroute_text {
    char *buf;
    size_t len, cap;
} metricsroute_text;

static int metricsroute_sink(void *userdata, const void *data, size_t len)
{
    metricsroute_text *t = userdata;
    if (len > t->cap - t->len) {
        size_t cap = t->cap ? t->cap : 16384;
        while (cap - t->len < len)
            cap *= 2;
        char *grown = realloc(t->buf, cap);
        if (!grown)
            return -1;
        t->buf = grown;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, data, len);
    t->len += len;
    return 0;
}

enum MHD_Result metricsroute_handle(server *srv, struct MHD_Connection *conn, http_request *req)
{
    metricsroute_text text = {NULL, 0, 0};
    int rc = acp_metrics_write(srv->platform, metricsroute_sink, &text);
    if (rc != 0) {
        free(text.buf);
        /* Whatever the library's reason, the scraper asked nothing wrong. */
        return http_reply_acp(conn, req, rc == ACP_EINVAL || rc == ACP_EUSER ? ACP_EIO : rc, NULL);
    }
    /* The server's families start on a line of their own. */
    if (text.len > 0 && text.buf[text.len - 1] != '\n' && metricsroute_sink(&text, "\n", 1) != 0)
        rc = -1;
    if (rc != 0 || httpmetrics_render(&text.buf, &text.len, &text.cap) != 0) {
        free(text.buf);
        return http_reply_acp(conn, req, ACP_ENOMEM, NULL);
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(text.len, text.buf, MHD_RESPMEM_MUST_FREE);
    if (!response) {
        free(text.buf);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, METRICSROUTE_CONTENT_TYPE);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return http_reply(conn, req, MHD_HTTP_OK, response);
}
