/* test_web.c - the web front end as margo-manager serves it (no browser needed): the files
 * of manager/web/ are embedded byte for byte, served with their types and a strict
 * Content-Security-Policy without a token, other methods are refused, and the API under
 * /api/ still demands the bearer token. The manager is created but its loop is not run:
 * static files and refused tokens are answered on the HTTP threads. */
#include "mgo_test.h"

#include <curl/curl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/buf.h"
#include "manager_thread.h"
#include "mgo/manager.h"
#include "web.h"

#define TOKEN "web-test-token-0123456789abcdef"

static struct mgo_test_manager manager;
static char state_dir[256];
static char token_path[512];
static char base[64];

struct reply {
    long status;
    char content_type[128];
    char csp[512];
    char allow[64];
    struct mgo_buf body;
};

static size_t on_data(char *d, size_t size, size_t n, void *ctx)
{
    return mgo_buf_append(ctx, d, size * n) == MGO_OK ? size * n : 0;
}

static size_t on_header(char *d, size_t size, size_t n, void *ctx)
{
    struct reply *r = ctx;
    size_t len = size * n;
    static const char csp[] = "content-security-policy: ";
    static const char allow[] = "allow: ";
    if (len > sizeof csp - 1 && strncasecmp(d, csp, sizeof csp - 1) == 0)
        snprintf(r->csp, sizeof r->csp, "%.*s", (int)(len - (sizeof csp - 1)), d + sizeof csp - 1);
    if (len > sizeof allow - 1 && strncasecmp(d, allow, sizeof allow - 1) == 0)
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)(len - (sizeof allow - 1)),
                 d + sizeof allow - 1);
    return len;
}

static void get(const char *method, const char *path, struct reply *r)
{
    memset(r, 0, sizeof *r);
    mgo_buf_init(&r->body, 16u << 20);
    CURL *h = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (curl_easy_perform(h) == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        char *ct = NULL;
        curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(r->content_type, sizeof r->content_type, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(h);
}

static void reply_cleanup(struct reply *r)
{
    mgo_buf_cleanup(&r->body);
}

static int suite_init(void)
{
    mgo_test_tmpdir("web-unit", state_dir);
    snprintf(token_path, sizeof token_path, "%s/token", state_dir);
    if (!mgo_test_write_file(token_path, TOKEN "\n"))
        return -1;
    /* never connected: the loop does not run */
    mgo_test_manager_init(&manager, "tcp://127.0.0.1:1", state_dir, "margo-manager-web-unit",
                          token_path, "error");
    if (mgo_test_manager_start(&manager, false) != MGO_OK)
        return -1;
    snprintf(base, sizeof base, "%s", manager.api_base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int suite_cleanup(void)
{
    mgo_test_manager_stop(&manager);
    curl_global_cleanup();
    mgo_test_rm_rf(state_dir);
    return 0;
}

/* Every front-end file of manager/web/ and Chart.js are embedded unchanged, and nothing else
 * is. */
static void test_every_file_is_embedded_unchanged(void)
{
    DIR *d = opendir(mgo_test_path("manager/web"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    size_t served = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || e->d_name[0] == '.' || strcmp(dot, ".cmake") == 0)
            continue;
        char url[300], rel[300];
        snprintf(url, sizeof url, "/%s", e->d_name);
        snprintf(rel, sizeof rel, "manager/web/%s", e->d_name);
        const struct mgo_web_asset *a = mgo_web__find(url);
        CU_ASSERT_PTR_NOT_NULL(a);
        if (!a)
            continue;
        size_t len = 0;
        char *want = mgo_test_read_file(mgo_test_path(rel), &len);
        CU_ASSERT_EQUAL(a->len, len);
        CU_ASSERT_TRUE(a->len == len && memcmp(a->data, want, len) == 0);
        free(want);
        served++;
    }
    closedir(d);
    /* and Chart.js from Debian's libjs-chart.js (manager/web/web.cmake), unchanged */
    const struct mgo_web_asset *chart = mgo_web__find("/vendor/chart.min.js");
    CU_ASSERT_PTR_NOT_NULL_FATAL(chart);
    size_t chart_len = 0;
    char *chart_want = mgo_test_read_file(MGO_CHARTJS_FILE, &chart_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(chart_want);
    CU_ASSERT_TRUE(chart->len == chart_len && memcmp(chart->data, chart_want, chart_len) == 0);
    CU_ASSERT_STRING_EQUAL(chart->type, "text/javascript; charset=utf-8");
    free(chart_want);
    served++;
    CU_ASSERT_EQUAL(served, mgo_web__assets_len);
    CU_ASSERT_PTR_NOT_NULL(mgo_web__find("/index.html"));
    CU_ASSERT_PTR_NOT_NULL(mgo_web__find("/app.js"));
    CU_ASSERT_PTR_NOT_NULL(mgo_web__find("/style.css"));
}

static void test_index_is_served_without_token_with_csp(void)
{
    struct reply r;
    get("GET", "/", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "text/html; charset=utf-8");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.csp, "default-src 'none'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.csp, "connect-src 'self'"));
    const struct mgo_web_asset *a = mgo_web__find("/index.html");
    CU_ASSERT_TRUE_FATAL(a != NULL);
    CU_ASSERT_TRUE(r.body.len == a->len && memcmp(r.body.data, a->data, a->len) == 0);
    reply_cleanup(&r);

    get("GET", "/app.js", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "text/javascript; charset=utf-8");
    reply_cleanup(&r);
    get("GET", "/style.css?v=2", &r); /* a query does not change the file */
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "text/css; charset=utf-8");
    reply_cleanup(&r);
    get("HEAD", "/", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.body.len, 0);
    reply_cleanup(&r);
}

static void test_unknown_files_and_other_methods_are_refused(void)
{
    struct reply r;
    get("GET", "/missing.js", &r);
    CU_ASSERT_EQUAL(r.status, 404);
    reply_cleanup(&r);
    get("GET", "/../../etc/passwd", &r);
    CU_ASSERT_EQUAL(r.status, 404);
    CU_ASSERT_TRUE(r.body.len == 0 || memmem(r.body.data, r.body.len, "root:", 5) == NULL);
    reply_cleanup(&r);
    get("GET", "/web.cmake", &r); /* build files are not embedded */
    CU_ASSERT_EQUAL(r.status, 404);
    reply_cleanup(&r);
    get("POST", "/index.html", &r);
    CU_ASSERT_EQUAL(r.status, 405);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.allow, "GET"));
    reply_cleanup(&r);
    get("DELETE", "/", &r);
    CU_ASSERT_EQUAL(r.status, 405);
    reply_cleanup(&r);
}

static void test_api_still_needs_the_token(void)
{
    struct reply r;
    get("GET", "/api/v1/apps", &r);
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/problem+json");
    reply_cleanup(&r);
    get("GET", "/api/v1/events", &r);
    CU_ASSERT_EQUAL(r.status, 401);
    reply_cleanup(&r);
    get("GET", "/api", &r);
    CU_ASSERT_EQUAL(r.status, 401);
    reply_cleanup(&r);
    get("GET", "/api/v1/events?access_token=" TOKEN, &r); /* no token in URLs */
    CU_ASSERT_EQUAL(r.status, 401);
    reply_cleanup(&r);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"every file of manager/web is embedded unchanged", test_every_file_is_embedded_unchanged},
        {"index, script and style are served without a token, with a CSP",
         test_index_is_served_without_token_with_csp},
        {"unknown files and other methods are refused",
         test_unknown_files_and_other_methods_are_refused},
        {"the API under /api/ still needs the bearer token", test_api_still_needs_the_token},
        {NULL, NULL},
    };
    CU_pSuite s = CU_add_suite("web", suite_init, suite_cleanup);
    for (size_t i = 0; cases[i].name; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
}
