/* test_openapi_routes.c - the route table of manager/src/api.c and docs/openapi.yaml are one
 * list: every route is in the document with its method, every path + method of the document
 * is a route (none extra, none missing); the manager embeds the document as it is in the
 * tree and serves it without the store; the router's 404 / 405 / trailing slash. */
#include "mgo_test.h"

#include <stdlib.h>
#include <string.h>

#include "../../manager/src/api.h"
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/value.h"

static const char *const methods[] = {"get", "put", "post", "patch", "delete", "head", "options"};

struct doc {
    struct mgo_arena arena;
    struct mgo_value root;
    const struct mgo_value *paths;
};

static void doc_load(struct doc *d)
{
    mgo_arena_init(&d->arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    mgo_err err =
        mgo_value_from_yaml(mgo_api__openapi, mgo_api__openapi_len, &d->arena, &d->root, &p);
    if (err != MGO_OK && p.count > 0)
        fprintf(stderr, "docs/openapi.yaml: %s: %s\n", p.items[0].field, p.items[0].rule);
    CU_ASSERT_EQUAL_FATAL(err, MGO_OK);
    d->paths = mgo_value_get(&d->root, "paths");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->paths);
    CU_ASSERT_EQUAL_FATAL(d->paths->kind, MGO_V_MAP);
}

static void lower(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
    out[i] = '\0';
}

static void test_every_route_documented(void)
{
    struct doc d;
    doc_load(&d);
    size_t n;
    const struct mgo_api_route *r = mgo_api__routes(&n);
    CU_ASSERT_TRUE(n >= 14);
    for (size_t i = 0; i < n; i++) {
        char m[16];
        lower(r[i].method, m, sizeof m);
        const struct mgo_value *item = mgo_value_get(d.paths, r[i].path);
        const struct mgo_value *op = item ? mgo_value_get(item, m) : NULL;
        if (!op)
            fprintf(stderr, "route %s %s is not in docs/openapi.yaml\n", r[i].method, r[i].path);
        CU_ASSERT_PTR_NOT_NULL(op);
        /* a public route says so (security: []), every other one needs the token */
        const struct mgo_value *sec = op ? mgo_value_get(op, "security") : NULL;
        bool doc_public = sec && sec->kind == MGO_V_ARRAY && sec->as.array.len == 0;
        if (doc_public != r[i].no_token)
            fprintf(stderr, "route %s %s: public %d, document %d\n", r[i].method, r[i].path,
                    r[i].no_token, doc_public);
        CU_ASSERT_EQUAL(doc_public, r[i].no_token);
    }
    mgo_arena_cleanup(&d.arena);
}

static void test_every_operation_served(void)
{
    struct doc d;
    doc_load(&d);
    size_t n;
    const struct mgo_api_route *r = mgo_api__routes(&n);
    size_t ops = 0;
    for (size_t i = 0; i < d.paths->as.map.len; i++) {
        const char *path = d.paths->as.map.items[i].key;
        const struct mgo_value *item = &d.paths->as.map.items[i].value;
        for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++) {
            if (!mgo_value_get(item, methods[k]))
                continue;
            ops++;
            bool served = false;
            for (size_t j = 0; j < n; j++) {
                char m[16];
                lower(r[j].method, m, sizeof m);
                served |= strcmp(m, methods[k]) == 0 && strcmp(r[j].path, path) == 0;
            }
            if (!served)
                fprintf(stderr, "docs/openapi.yaml: %s %s is not served\n", methods[k], path);
            CU_ASSERT_TRUE(served);
        }
    }
    CU_ASSERT_EQUAL(ops, n); /* and no route twice */
    mgo_arena_cleanup(&d.arena);
}

static void test_embedded_is_the_file(void)
{
    struct mgo_buf file;
    mgo_buf_init(&file, 4u * 1024u * 1024u);
    CU_ASSERT_EQUAL_FATAL(mgo_buf_read_file(&file, MGO_SOURCE_DIR "/docs/openapi.yaml"), MGO_OK);
    CU_ASSERT_EQUAL(file.len, mgo_api__openapi_len);
    CU_ASSERT_TRUE(file.len == mgo_api__openapi_len &&
                   memcmp(file.data, mgo_api__openapi, file.len) == 0);
    CU_ASSERT_EQUAL(mgo_api__openapi[mgo_api__openapi_len], '\0');
    mgo_buf_cleanup(&file);
}

/* Requests the router answers without touching the store (api.store is NULL). */
static void handle(const char *method, const char *path, struct mgo_api_request *req)
{
    memset(req, 0, sizeof *req);
    mgo_buf_init(&req->body, 1024);
    mgo_buf_init(&req->reply, 1u << 20);
    req->method = method;
    snprintf(req->path, sizeof req->path, "%s", path);
    struct mgo_api api = {0};
    mgo_api__handle(&api, req);
}

static void release(struct mgo_api_request *req)
{
    mgo_buf_cleanup(&req->body);
    mgo_buf_cleanup(&req->reply);
}

static bool reply_has(const struct mgo_api_request *req, const char *text)
{
    return req->reply.len > 0 && memmem(req->reply.data, req->reply.len, text, strlen(text));
}

static void test_router(void)
{
    struct mgo_api_request req;
    handle("GET", "/api/v1/openapi.yaml", &req);
    CU_ASSERT_EQUAL(req.status, 200);
    CU_ASSERT_STRING_EQUAL(req.content_type, "application/yaml");
    CU_ASSERT_EQUAL(req.reply.len, mgo_api__openapi_len);
    release(&req);
    handle("GET", "/api/v1/openapi.yaml/", &req); /* one trailing slash is ignored */
    CU_ASSERT_EQUAL(req.status, 200);
    release(&req);
    handle("POST", "/api/v1/openapi.yaml", &req);
    CU_ASSERT_EQUAL(req.status, 405);
    CU_ASSERT_TRUE(reply_has(&req, "\"title\":\"Method Not Allowed\""));
    release(&req);
    handle("PUT", "/api/v1/deployments/x", &req);
    CU_ASSERT_EQUAL(req.status, 405);
    release(&req);
    const char *unknown[] = {
        "/api/v1/",        "/api/v1/nothing", "/api/v1/deployments/x/y", "/api/v1/deployments//",
        "/api/v1/apps//x", "/api/v1/appsx"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        handle("GET", unknown[i], &req);
        if (req.status != 404)
            fprintf(stderr, "GET %s: %u\n", unknown[i], req.status);
        CU_ASSERT_EQUAL(req.status, 404);
        CU_ASSERT_TRUE(reply_has(&req, "\"detail\":\"unknown resource\""));
        release(&req);
    }
    handle("GET", "/api/v2/apps", &req);
    CU_ASSERT_EQUAL(req.status, 404);
    CU_ASSERT_TRUE(reply_has(&req, "the API lives under /api/v1/"));
    release(&req);
}

static void test_public(void)
{
    CU_ASSERT_TRUE(mgo_api__public("GET", "/api/v1/openapi.yaml"));
    CU_ASSERT_FALSE(mgo_api__public("POST", "/api/v1/openapi.yaml"));
    CU_ASSERT_FALSE(mgo_api__public("GET", "/api/v1/apps"));
    CU_ASSERT_FALSE(mgo_api__public("GET", "/api/v1/events"));
    CU_ASSERT_FALSE(mgo_api__public("GET", "/api/v1/openapi.yamlx"));
    CU_ASSERT_FALSE(mgo_api__public("GET", "/metrics"));
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"every route is documented", test_every_route_documented},
        {"every documented operation is served", test_every_operation_served},
        {"the embedded document is docs/openapi.yaml", test_embedded_is_the_file},
        {"router: 404, 405, trailing slash", test_router},
        {"public routes", test_public},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager openapi routes", cases);
}
