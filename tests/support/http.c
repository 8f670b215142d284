/* http.c - see http.h. */
#include "http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

static size_t on_data(char *d, size_t size, size_t n, void *ctx)
{
    return mgo_buf_append(ctx, d, size * n) == MGO_OK ? size * n : 0;
}

long mgo_test_http(const char *method, const char *url, const char *const *headers,
                   const char *body, long timeout_ms, struct mgo_buf *out, char *content_type,
                   size_t ct_size)
{
    long status = 0;
    if (content_type != NULL && ct_size > 0)
        content_type[0] = '\0';
    CURL *h = curl_easy_init();
    if (h == NULL)
        return 0;
    struct curl_slist *hdrs = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        hdrs = curl_slist_append(hdrs, headers[i]);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        if (content_type != NULL && ct_size > 0)
            snprintf(content_type, ct_size, "%s", ct != NULL ? ct : "");
    }
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    return status;
}

void mgo_test_request(const char *base, const char *method, const char *path,
                      const char *const *headers, const char *body, long timeout_ms,
                      struct mgo_test_reply *r)
{
    memset(r, 0, sizeof *r);
    mgo_buf_init(&r->body, 64u << 20);
    mgo_arena_init(&r->arena, 256u << 20);
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    r->status = mgo_test_http(method, url, headers, body, timeout_ms, &r->body, r->content_type,
                              sizeof r->content_type);
    struct mgo_problems p;
    mgo_problems_init(&p);
    if (r->body.len == 0 ||
        mgo_value_from_yaml(r->body.data, r->body.len, &r->arena, &r->json, &p) != MGO_OK)
        r->json.kind = MGO_V_NULL;
}

void mgo_test_reply_cleanup(struct mgo_test_reply *r)
{
    mgo_buf_cleanup(&r->body);
    mgo_arena_cleanup(&r->arena);
}

const char *mgo_test_jstr(const struct mgo_value *v, const char *pointer)
{
    const struct mgo_value *x = mgo_value_pointer(v, pointer);
    return x && x->kind == MGO_V_STR ? x->as.str.ptr : "";
}

uint64_t mgo_test_ju64(const struct mgo_value *v, const char *pointer)
{
    const struct mgo_value *x = mgo_value_pointer(v, pointer);
    return x && x->kind == MGO_V_UINT ? x->as.u : 0;
}
