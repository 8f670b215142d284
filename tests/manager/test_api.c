/* test_api.c - API replies when the store fails half-way (manager/src/api.c, no broker, no
 * HTTP server): a store error while a reply is being built is a 500 problem marked
 * retryable, never a 200 with part of the data. */
#include "mgo_test.h"

#include <sqlite3.h>

#include "../../manager/src/api.h"
#include "../../manager/src/publish.h"
#include "../../manager/src/sse.h"
#include "mgr_test_util.h"
#include "outbox_rec.h"

#define DEP "cccccccc-0000-4000-8000-000000000001"
#define DIGEST "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct fixture {
    char dir[256];
    struct mgo_mgr_store *store;
    struct rec_outbox rec;
    struct mgo_outbox outbox;
    struct mgo_publisher *pub;
    struct mgo_sse_hub *hub;
    struct mgo_api api;
};

static void setup(struct fixture *f)
{
    mgo_test_tmpdir("mgr", f->dir);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(f->dir, &f->store), MGO_OK);
    rec_init(&f->rec, &f->outbox);
    f->pub = calloc(1, sizeof *f->pub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->pub);
    mgo_publish__init(f->pub, f->store, &f->outbox, "margo/v1", NULL);
    CU_ASSERT_EQUAL_FATAL(mgo_sse__hub_new(&f->hub), MGO_OK);
    f->api = (struct mgo_api){.store = f->store, .pub = f->pub, .hub = f->hub};
    static const uint8_t doc[] = {0x80};
    struct mgo_mgr_deployment_row r = mgr_test_dep_row(DEP, "dev1", doc, sizeof doc, DIGEST, 1);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_deployment_put(f->store, &r), MGO_OK);
}

static void teardown(struct fixture *f)
{
    mgo_sse__hub_shutdown(f->hub);
    mgo_sse__hub_free(f->hub);
    rec_clear(&f->rec);
    free(f->pub);
    mgo_mgr_store_close(f->store);
    mgo_test_rm_rf(f->dir);
}

/* Answers GET path; *req must be cleaned up with request_cleanup. */
static void get(struct fixture *f, const char *path, struct mgo_api_request *req)
{
    memset(req, 0, sizeof *req);
    req->method = "GET";
    snprintf(req->path, sizeof req->path, "%s", path);
    mgo_buf_init(&req->body, 1024);
    mgo_buf_init(&req->reply, 1u << 20);
    mgo_api__handle(&f->api, req);
    CU_ASSERT_EQUAL(mgo_buf_append(&req->reply, "", 1), MGO_OK); /* NUL for strstr */
}

static void request_cleanup(struct mgo_api_request *req)
{
    mgo_buf_cleanup(&req->body);
    mgo_buf_cleanup(&req->reply);
}

/* What another program does to the database under the manager: here, the status table goes,
 * so every status read fails (SQLite: no such table). */
static void break_status_table(struct fixture *f)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", f->dir, MGO_MGR_STORE_FILE);
    sqlite3 *db = NULL;
    CU_ASSERT_EQUAL_FATAL(sqlite3_open(path, &db), SQLITE_OK);
    CU_ASSERT_EQUAL(sqlite3_exec(db, "DROP TABLE status", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_store_error_mid_reply_is_500_retryable(void)
{
    struct fixture f;
    setup(&f);
    struct mgo_api_request req;
    get(&f, "/api/v1/deployments", &req);
    CU_ASSERT_EQUAL(req.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr((const char *)req.reply.data, DEP));
    request_cleanup(&req);

    break_status_table(&f);
    /* the deployment row still reads; its status does not: no partial list */
    get(&f, "/api/v1/deployments", &req);
    CU_ASSERT_EQUAL(req.status, 500);
    CU_ASSERT_STRING_EQUAL(req.content_type, "application/problem+json");
    CU_ASSERT_PTR_NOT_NULL(strstr((const char *)req.reply.data, "\"retryable\":true"));
    CU_ASSERT_PTR_NULL(strstr((const char *)req.reply.data, "\"deployments\""));
    request_cleanup(&req);
    get(&f, "/api/v1/deployments/" DEP, &req);
    CU_ASSERT_EQUAL(req.status, 500);
    CU_ASSERT_PTR_NOT_NULL(strstr((const char *)req.reply.data, "\"retryable\":true"));
    request_cleanup(&req);
    teardown(&f);
}

static void test_not_found_is_not_retryable(void)
{
    struct fixture f;
    setup(&f);
    struct mgo_api_request req;
    get(&f, "/api/v1/deployments/dddddddd-0000-4000-8000-000000000009", &req);
    CU_ASSERT_EQUAL(req.status, 404);
    CU_ASSERT_PTR_NOT_NULL(strstr((const char *)req.reply.data, "\"retryable\":false"));
    request_cleanup(&req);
    teardown(&f);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"store error mid-reply is a 500, retryable", test_store_error_mid_reply_is_500_retryable},
        {"not found is not retryable", test_not_found_is_not_retryable},
        {NULL, NULL},
    };
    mgo_test_add_suite("api", cases);
}
