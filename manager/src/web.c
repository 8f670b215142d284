/* web.c - serves the embedded web front end (manager/web/, see web.h) from the API's
 * libmicrohttpd server. Static files only: the page asks for the API token and sends it
 * with every API call, so serving the files needs no token. Every answer carries a
 * Content-Security-Policy that allows nothing but this origin (no external resources). */
#include <microhttpd.h>
#include <string.h>

#include "mgo/log.h"
#include "web.h"

#define TAG "web"

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

bool mgo_web__owns(const char *url)
{
    return strncmp(url, "/api/", 5) != 0 && strcmp(url, "/api") != 0;
}

const struct mgo_web_asset *mgo_web__find(const char *url)
{
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (size_t i = 0; i < mgo_web__assets_len; i++) {
        if (strcmp(mgo_web__assets[i].path, url) == 0)
            return &mgo_web__assets[i];
    }
    return NULL;
}

static void add_common_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "Content-Security-Policy", csp);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (status == 405)
        MHD_add_response_header(resp, "Allow", "GET, HEAD");
    add_common_headers(resp);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

enum MHD_Result mgo_web__serve(struct MHD_Connection *conn, const char *method, const char *url)
{
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_text(conn, 405, "405 method not allowed: the web front end is read-only\n");
    const struct mgo_web_asset *a = mgo_web__find(url);
    if (!a) {
        MGO_LOGD(TAG, "GET %.200s: no such file", url);
        return send_text(conn, 404, "404 not found (the API lives under /api/v1/)\n");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", a->type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    add_common_headers(resp);
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return r;
}
