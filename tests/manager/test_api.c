/* test_api.c - API replies when the store fails half-way (manager/src/api.c, no broker, no
 * HTTP server): a store error while a reply is being built is a 500 problem marked
 * retryable, never a 200 with part of the data. */
#include "mgo_test.h"
#include "pg.h"

#include "../../manager/src/api.h"
#include "../../manager/src/publish.h"
#include "../../manager/src/sse.h"
#include "mgo/manager.h"
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
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(f->dir), &f->store), MGO_OK);
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
    CU_ASSERT(mgo_test_store_sql(f->dir, "DROP TABLE status"));
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

/* POST path with body; *req must be cleaned up with request_cleanup. */
static void post(struct fixture *f, const char *path, const char *body, struct mgo_api_request *req)
{
    memset(req, 0, sizeof *req);
    req->method = "POST";
    snprintf(req->path, sizeof req->path, "%s", path);
    mgo_buf_init(&req->body, MGO_API_MAX_BODY);
    mgo_buf_init(&req->reply, 1u << 20);
    CU_ASSERT_EQUAL(mgo_buf_append(&req->body, body, strlen(body)), MGO_OK);
    mgo_api__handle(&f->api, req);
    CU_ASSERT_EQUAL(mgo_buf_append(&req->reply, "", 1), MGO_OK); /* NUL for strstr */
}

static const char *reply(const struct mgo_api_request *req)
{
    return (const char *)req->reply.data;
}

/* issue 19 item 5: POST /apps {"path": ...} reads only below catalog-dir; without it the
 * path form is refused; every path that leaves the folder (.., absolute, a symbolic link
 * out) is refused with the very same reply as a file that does not exist, so a token holder
 * learns nothing about files outside it. */
static void test_apps_path_confined_to_catalog(void)
{
    struct fixture f;
    setup(&f);
    char cat[512], body[1024];
    snprintf(cat, sizeof cat, "%s/catalog", f.dir);
    char data[512];
    snprintf(data, sizeof data, "%s", mgo_test_path("tests/manager/data"));
    CU_ASSERT_EQUAL_FATAL(
        mgo_test_sh("mkdir -p '%s/pkg' && cp '%s/hello-1.0.yaml' '%s/hello.yaml' && "
                    "cp '%s/hello-2.0.yaml' '%s/pkg/margo.yaml' && "
                    "cp '%s/secret-1.0.yaml' '%s/outside.yaml' && "
                    "ln -s ../outside.yaml '%s/link.yaml' && ln -s .. '%s/up'",
                    cat, data, cat, data, cat, data, f.dir, cat, cat),
        0);
    struct mgo_api_request req;
    /* no catalog-dir: refused, whatever the path */
    post(&f, "/api/v1/apps", "{\"path\": \"hello.yaml\"}", &req);
    CU_ASSERT_EQUAL(req.status, 403);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "disabled"));
    request_cleanup(&req);

    f.api.catalog_dir = cat;
    const char *refused[] = {
        "../outside.yaml",   "@/outside.yaml", "link.yaml",   "up/outside.yaml",
        "nope.yaml",         "../nope.yaml",   "@/nope.yaml", "/etc/passwd",
        "pkg/../hello.yaml", "./hello.yaml",   "up",          "",
    };
    char first[4096] = "";
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char rel[600];
        if (refused[i][0] == '@') /* absolute, into the test's folder */
            snprintf(rel, sizeof rel, "%s%s", f.dir, refused[i] + 1);
        else
            snprintf(rel, sizeof rel, "%s", refused[i]);
        snprintf(body, sizeof body, "{\"path\": \"%s\"}", rel);
        post(&f, "/api/v1/apps", body, &req);
        CU_ASSERT_EQUAL(req.status, 403);
        if (i == 0)
            snprintf(first, sizeof first, "%s", reply(&req));
        else /* byte for byte: nothing tells an existing file from a missing one */
            CU_ASSERT_STRING_EQUAL(reply(&req), first);
        CU_ASSERT_PTR_NULL(strstr(reply(&req), "outside"));
        CU_ASSERT_PTR_NULL(strstr(reply(&req), "passwd"));
        CU_ASSERT_PTR_NULL(strstr(reply(&req), "secret"));
        request_cleanup(&req);
    }
    /* inside the folder: a file, and a package folder holding margo.yaml */
    post(&f, "/api/v1/apps", "{\"path\": \"hello.yaml\"}", &req);
    CU_ASSERT_EQUAL(req.status, 201);
    request_cleanup(&req);
    post(&f, "/api/v1/apps", "{\"path\": \"pkg/\"}", &req);
    CU_ASSERT_EQUAL(req.status, 201);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "\"version\":\"2.0\""));
    request_cleanup(&req);
    /* nothing from outside reached the catalog */
    get(&f, "/api/v1/apps", &req);
    CU_ASSERT_EQUAL(req.status, 200);
    CU_ASSERT_PTR_NULL(strstr(reply(&req), "secret"));
    request_cleanup(&req);
    mgo_test_sh("rm -rf '%s'", cat);
    teardown(&f);
}

/* issue 19 items 1 and 2 in the API: a role identity is no device (not shown, not a
 * deployment target), and the per-device counters of the bounds are visible. */
static void test_devices_roles_and_counters(void)
{
    struct fixture f;
    setup(&f);
    static const uint8_t caps[] = {0x80};
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_caps(f.store, "dev1", caps, sizeof caps), MGO_OK);
    struct mgo_mgr_rate rate;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(mgo_mgr_store_rate_take(f.store, "dev1", MGO_MGR_RATE_EVENTS, 1,
                                                mgo_mgr_store_now_ms(), &rate),
                        MGO_OK);
    CU_ASSERT(rate.over && rate.total_over == 2);
    struct mgo_api_request req;
    get(&f, "/api/v1/devices/dev1", &req);
    CU_ASSERT_EQUAL(req.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "\"eventsDropped\":2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "\"statusesOverRate\":0"));
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "\"positionsDropped\":0"));
    request_cleanup(&req);
    get(&f, "/api/v1/devices/margo-monitor", &req);
    CU_ASSERT_EQUAL(req.status, 404);
    request_cleanup(&req);
    char *app = mgo_test_read_file(mgo_test_path("tests/manager/data/hello-1.0.yaml"), NULL);
    post(&f, "/api/v1/apps", app, &req);
    free(app);
    CU_ASSERT_EQUAL(req.status, 201);
    request_cleanup(&req);
    post(&f, "/api/v1/deployments",
         "{\"app\": \"hello-world\", \"version\": \"1.0\", \"devices\": [\"margo-monitor\"],"
         " \"parameters\": {\"siteId\": \"site-1\"}}",
         &req);
    CU_ASSERT_EQUAL(req.status, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "role identity"));
    request_cleanup(&req);
    CU_ASSERT_EQUAL(f.rec.len, 0u); /* nothing published */

    /* a deployment to a role stored by an older version (the store refuses to make one now):
     * an update is refused, a removal marks it removed without publishing anything */
    CU_ASSERT(mgo_test_store_sql(f.dir, "INSERT INTO deployments SELECT 'eeeeeeee-0000-4000-8000-"
                                        "000000000001', 'margo-monitor', app_id, app_version, "
                                        "profile_type, parameters, doc, digest, desired, "
                                        "manifest_version, created_ms, updated_ms FROM "
                                        "deployments"));
    memset(&req, 0, sizeof req);
    req.method = "PATCH";
    snprintf(req.path, sizeof req.path, "/api/v1/deployments/eeeeeeee-0000-4000-8000-000000000001");
    mgo_buf_init(&req.body, 1024);
    mgo_buf_init(&req.reply, 1u << 20);
    CU_ASSERT_EQUAL(mgo_buf_append_str(&req.body, "{\"version\": \"1.0\"}"), MGO_OK);
    mgo_api__handle(&f.api, &req);
    CU_ASSERT_EQUAL(mgo_buf_append(&req.reply, "", 1), MGO_OK);
    CU_ASSERT_EQUAL(req.status, 422);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "role identity"));
    request_cleanup(&req);
    memset(&req, 0, sizeof req);
    req.method = "DELETE";
    snprintf(req.path, sizeof req.path, "/api/v1/deployments/eeeeeeee-0000-4000-8000-000000000001");
    mgo_buf_init(&req.body, 1024);
    mgo_buf_init(&req.reply, 1u << 20);
    mgo_api__handle(&f.api, &req);
    CU_ASSERT_EQUAL(req.status, 202);
    request_cleanup(&req);
    get(&f, "/api/v1/deployments/eeeeeeee-0000-4000-8000-000000000001", &req);
    CU_ASSERT_PTR_NOT_NULL(strstr(reply(&req), "\"desired\":\"removed\""));
    request_cleanup(&req);
    CU_ASSERT_EQUAL(f.rec.len, 0u);
    teardown(&f);
}

/* role-names: names of 1-128 device-id characters, comma or space separated, at most 16
 * (MGO_MGR_MAX_ROLES, with the manager's own client id and user name); anything else stops
 * the start with the option named. */
static void test_role_names_option(void)
{
    char dir[256], token[512];
    mgo_test_tmpdir("mgr", dir);
    snprintf(token, sizeof token, "%s/token", dir);
    FILE *f = fopen(token, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("api-token-0123456789abcdef\n", f);
    fclose(f);
    char many[2048] = "";
    for (int i = 0; i < 15; i++) /* with client-id and username: 17 */
        snprintf(many + strlen(many), sizeof many - strlen(many), "ops-%d,", i);
    const struct {
        const char *names;
        mgo_err want;
    } cases[] = {
        {"ops-watch, ops-dash,,ops-3", MGO_OK},
        {"ops-watch,bad/name", MGO_ERR_INVALID},
        {"ops+watch", MGO_ERR_INVALID},
        {many, MGO_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char state[300];
        snprintf(state, sizeof state, "%s/state", dir);
        struct mgo_manager_config cfg = {
            .state_dir = state,
            .broker_url = (char *)"tcp://127.0.0.1:1",
            .client_id = (char *)"mgr-1",
            .username = (char *)"mgr-user",
            .topic_prefix = (char *)"margo/v1",
            .api_listen = (char *)"127.0.0.1:0",
            .api_token_file = token,
            .log_level = (char *)"error",
            .session_expiry_s = 600,
            .keepalive_s = 30,
            .role_names = (char *)cases[i].names,
        };
        struct mgo_manager *m = NULL;
        CU_ASSERT_EQUAL(mgo_manager_new(&cfg, &m), cases[i].want);
        mgo_manager_free(m);
    }
    mgo_test_sh("rm -rf '%s'", dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"store error mid-reply is a 500, retryable", test_store_error_mid_reply_is_500_retryable},
        {"not found is not retryable", test_not_found_is_not_retryable},
        {"POST /apps path confined to catalog-dir", test_apps_path_confined_to_catalog},
        {"devices: roles refused, bound counters shown", test_devices_roles_and_counters},
        {"role-names option: names and limits", test_role_names_option},
        {NULL, NULL},
    };
    mgo_test_add_suite("api", cases);
}
