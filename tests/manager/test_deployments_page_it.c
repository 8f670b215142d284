/* test_deployments_page_it.c - the paged deployment list (docs/api.md, "GET
 * /api/v1/deployments") on a manager in a thread with a real Mosquitto, over 2,000
 * deployments on 200 devices stored through the store API before the manager starts.
 *
 * Proves, from the API's replies only:
 *   - walking the pages (limit 173, then 500) yields every deployment exactly once, in id
 *     order, and only the last page has no "next";
 *   - state= (the newest status' state, or unreported), app=, device= and selector= (the
 *     device's labels) give exactly the deployments the test's own model says, in order,
 *     across pages, alone and combined;
 *   - a selector that matches few rows examines at most 1,000 rows per request: short pages
 *     whose next carries on, until the table's end;
 *   - bounds: limit 0 and 501, a cursor that is no deployment id, an unknown state and a bad
 *     selector (with its byte position) are 400 problems naming the field and the rule;
 *   - without a paging parameter the reply is today's whole list, without "limit"/"next".
 *
 * The expected lists are computed from the model the test stored, never written out. */
#include "mgo_test.h"
#include "pg.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "mgo/log.h"
#include "mgo/manager.h"
#include "mgo/mgr_store.h"
#include "mgo/params.h"
#include "mgr_test_util.h"

#define TOKEN "page-token-0123456789abcdef"
#define N_DEPS 2000u
#define N_DEVICES 200u
#define RARE_DEVICE 7u /* the one device labelled rare=yes: its 10 deployments */
#define SEL_SCAN 1000u /* rows one request with a selector examines at most (api.c) */

static struct mgo_test_broker broker;
static char state_dir[256];
static char tmp_dir[256];
static char token_path[512];
static struct mgo_test_manager mgr;

/* The model: what was stored, per deployment. */
struct dep {
    char id[MGO_UUID_STR_SIZE];
    char device[32];
    const char *app;
    const char *state; /* "unreported" when no status was stored */
    unsigned site;     /* the device's label site=plant-N */
    bool canary;       /* the device's label tier=canary */
    bool rare;         /* the device's label rare=yes (one device: RARE_DEVICE) */
};
static struct dep deps[N_DEPS];
static struct dep *sorted[N_DEPS]; /* deps in id order */

static const char *const STATES[] = {"unreported", "installed", "failed", "installing"};

static int by_id(const void *a, const void *b)
{
    return strcmp((*(struct dep *const *)a)->id, (*(struct dep *const *)b)->id);
}

static mgo_err store_model(void)
{
    struct mgo_mgr_store *s = NULL;
    mgo_err err = mgo_mgr_store_open(mgo_test_store(state_dir), &s);
    if (err)
        return err;
    err = mgo_mgr_store_begin(s);
    for (unsigned d = 0; !err && d < N_DEVICES; d++) {
        char id[32], site[16];
        snprintf(id, sizeof id, "dev-%03u", d);
        snprintf(site, sizeof site, "plant-%u", d % 5);
        err = mgo_mgr_store_device_put_presence(s, id, true, 1);
        if (!err)
            err = mgo_mgr_store_label_set(s, id, "site", site, 64);
        if (!err && d % 10 == 0)
            err = mgo_mgr_store_label_set(s, id, "tier", "canary", 64);
        if (!err && d == RARE_DEVICE)
            err = mgo_mgr_store_label_set(s, id, "rare", "yes", 64);
    }
    static const uint8_t doc[] = {0x80}; /* an empty map: never read by the list */
    for (unsigned i = 0; !err && i < N_DEPS; i++) {
        struct dep *m = &deps[i];
        unsigned d = (i * 7u) % N_DEVICES;
        err = mgo_params_new_uuid(m->id);
        if (err)
            break;
        snprintf(m->device, sizeof m->device, "dev-%03u", d);
        m->app = i % 3 == 0 ? "alpha" : "beta";
        m->state = STATES[(i / 2) % 4];
        m->site = d % 5;
        m->canary = d % 10 == 0;
        m->rare = d == RARE_DEVICE;
        struct mgo_mgr_deployment_row row =
            mgr_test_dep_row(m->id, m->device, doc, sizeof doc, "sha256:0", 1);
        row.app_id = m->app;
        err = mgo_mgr_store_deployment_put(s, &row);
        if (!err && strcmp(m->state, "unreported") != 0) {
            struct mgo_mgr_status_row st = {
                .deployment_id = m->id,
                .device_id = m->device,
                .state = m->state,
                .doc_json = "{}",
            };
            err = mgo_mgr_store_status_apply(s, &st, NULL);
        }
        sorted[i] = m;
    }
    if (!err)
        err = mgo_mgr_store_commit(s);
    else
        mgo_mgr_store_rollback(s);
    mgo_mgr_store_close(s);
    qsort(sorted, N_DEPS, sizeof sorted[0], by_id);
    return err;
}

static void test_start(void)
{
    CU_ASSERT_EQUAL_FATAL(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_start(&broker, NULL), 0);
    mgo_test_tmpdir("mgr", state_dir);
    mgo_test_tmpdir("mgr", tmp_dir);
    snprintf(token_path, sizeof token_path, "%s/token", tmp_dir);
    CU_ASSERT_TRUE_FATAL(mgo_test_write_file(token_path, TOKEN "\n"));
    CU_ASSERT_EQUAL_FATAL(store_model(), MGO_OK);
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), state_dir, "manager-page", token_path,
                          "warn");
    CU_ASSERT_EQUAL_FATAL(mgo_test_manager_start(&mgr, true), MGO_OK);
}

static void api_get(const char *path, struct mgo_test_reply *r)
{
    mgr_test_http(mgr.api_base, "GET", path, NULL, "Bearer " TOKEN, r);
}

/* The filter of a walk; NULL members mean any. */
struct filter {
    const char *state, *app, *device;
    int site;       /* -1: any; else the selector site=plant-N */
    bool no_canary; /* with site: ",tier!=canary" */
    bool rare;      /* the selector "rare" (site -1) */
};

static bool in_filter(const struct dep *m, const struct filter *f)
{
    return (!f->state || strcmp(m->state, f->state) == 0) &&
           (!f->app || strcmp(m->app, f->app) == 0) &&
           (!f->device || strcmp(m->device, f->device) == 0) &&
           (f->site < 0 || ((int)m->site == f->site && !(f->no_canary && m->canary))) &&
           (!f->rare || m->rare);
}

static size_t walk_pages, walk_short_pages; /* of the last walk() */

/* Walks every page of f with limit and checks the ids against the model in order; returns
 * the number of rows seen. */
static size_t walk(const struct filter *f, unsigned limit)
{
    char base[512];
    int n = snprintf(base, sizeof base, "/api/v1/deployments?limit=%u", limit);
    if (f->state)
        n += snprintf(base + n, sizeof base - (size_t)n, "&state=%s", f->state);
    if (f->app)
        n += snprintf(base + n, sizeof base - (size_t)n, "&app=%s", f->app);
    if (f->device)
        n += snprintf(base + n, sizeof base - (size_t)n, "&device=%s", f->device);
    if (f->site >= 0)
        n += snprintf(base + n, sizeof base - (size_t)n, "&selector=site%%3Dplant-%d%s", f->site,
                      f->no_canary ? "%2Ctier!%3Dcanary" : "");
    if (f->rare)
        n += snprintf(base + n, sizeof base - (size_t)n, "&selector=rare");
    bool selector = f->site >= 0 || f->rare;
    size_t want = 0, seen = 0, pages = 0;
    size_t short_pages = 0;
    char after[MGO_UUID_STR_SIZE] = "";
    for (;;) {
        char path[700];
        snprintf(path, sizeof path, "%s%s%s", base, after[0] ? "&after=" : "", after);
        struct mgo_test_reply r;
        api_get(path, &r);
        CU_ASSERT_EQUAL_FATAL(r.status, 200);
        CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/limit"), limit);
        const struct mgo_value *rows = mgo_value_get(&r.json, "deployments");
        CU_ASSERT_FATAL(rows != NULL && rows->kind == MGO_V_ARRAY);
        CU_ASSERT_TRUE(rows->as.array.len <= limit);
        for (size_t i = 0; i < rows->as.array.len; i++) {
            while (want < N_DEPS && !in_filter(sorted[want], f))
                want++;
            const char *id = mgo_test_jstr(&rows->as.array.items[i], "/id");
            if (want >= N_DEPS || strcmp(id, sorted[want]->id) != 0) {
                CU_FAIL("a row is not the next deployment of the model");
                fprintf(stderr, "page %zu row %zu: got %s\n", pages, i, id);
                mgo_test_reply_cleanup(&r);
                return seen;
            }
            CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&rows->as.array.items[i], "/app"),
                                   sorted[want]->app);
            const char *st = mgo_test_jstr(&rows->as.array.items[i], "/state");
            CU_ASSERT_STRING_EQUAL(st[0] ? st : "unreported", sorted[want]->state);
            want++;
            seen++;
        }
        pages++;
        const struct mgo_value *next = mgo_value_get(&r.json, "next");
        CU_ASSERT_FATAL(next != NULL); /* present on every page: a string or null */
        if (next->kind == MGO_V_NULL) {
            mgo_test_reply_cleanup(&r);
            break;
        }
        if (!selector) { /* only a full page says "more", and next is its last row */
            CU_ASSERT_EQUAL(rows->as.array.len, limit);
            CU_ASSERT_STRING_EQUAL(next->as.str.ptr, sorted[want - 1]->id);
        } else { /* a selector's page may end at the scan bound: next is not before its rows */
            CU_ASSERT_TRUE(want == 0 || strcmp(next->as.str.ptr, sorted[want - 1]->id) >= 0);
            short_pages += rows->as.array.len < limit;
        }
        snprintf(after, sizeof after, "%s", next->as.str.ptr);
        mgo_test_reply_cleanup(&r);
    }
    while (want < N_DEPS && !in_filter(sorted[want], f))
        want++;
    CU_ASSERT_EQUAL(want, N_DEPS); /* nothing of the model was left out */
    walk_pages = pages;
    walk_short_pages = short_pages;
    return seen;
}

static size_t count_model(const struct filter *f)
{
    size_t n = 0;
    for (size_t i = 0; i < N_DEPS; i++)
        n += in_filter(&deps[i], f);
    return n;
}

static void test_pages_cover_everything_once(void)
{
    struct filter all = {.site = -1};
    CU_ASSERT_EQUAL(walk(&all, 173), N_DEPS);
    CU_ASSERT_EQUAL(walk(&all, 500), N_DEPS);
}

static void test_filters(void)
{
    static const struct filter cases[] = {
        {.state = "failed", .site = -1},
        {.state = "unreported", .site = -1},
        {.app = "alpha", .site = -1},
        {.state = "installed", .app = "beta", .site = -1},
        {.site = 2},
        {.site = 0, .no_canary = true},
        {.state = "installing", .site = 3},
        {.device = "dev-014", .site = -1},
        {.device = "dev-020", .state = "failed", .site = 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t want = count_model(&cases[i]);
        CU_ASSERT_TRUE(want > 0);      /* every case selects something... */
        CU_ASSERT_TRUE(want < N_DEPS); /* ...and leaves something out */
        size_t got = walk(&cases[i], 37);
        if (got != want)
            fprintf(stderr, "filter case %zu: %zu rows, the model has %zu\n", i, got, want);
        CU_ASSERT_EQUAL(got, want);
    }
}

/* A selector that matches 10 of 2,000 rows: each request examines at most SEL_SCAN rows,
 * so the pages are short (the first ones not empty only by chance) and next carries on past
 * the examined rows until the table's end. */
static void test_selector_scan_bound(void)
{
    struct filter rare = {.site = -1, .rare = true};
    CU_ASSERT_EQUAL(count_model(&rare), 10);
    CU_ASSERT_EQUAL(walk(&rare, 37), 10);
    CU_ASSERT_EQUAL(walk_pages, N_DEPS / SEL_SCAN + 1);
    CU_ASSERT_EQUAL(walk_short_pages, N_DEPS / SEL_SCAN);
}

static void expect_400(const char *path, const char *field, const char *text)
{
    struct mgo_test_reply r;
    api_get(path, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/problem+json");
    if (!mgr_test_has_error(&r, field, text))
        fprintf(stderr, "%s: no error on %s with \"%s\": %.*s\n", path, field, text,
                (int)r.body.len, r.body.data ? (const char *)r.body.data : "");
    CU_ASSERT_TRUE(mgr_test_has_error(&r, field, text));
    mgo_test_reply_cleanup(&r);
}

static void test_bounds(void)
{
    expect_400("/api/v1/deployments?limit=0", "limit", "from 1 to 500");
    expect_400("/api/v1/deployments?limit=501", "limit", "from 1 to 500");
    expect_400("/api/v1/deployments?limit=x", "limit", "from 1 to 500");
    expect_400("/api/v1/deployments?after=dev-001", "after", "must be a deployment id");
    expect_400("/api/v1/deployments?state=running", "state", "unreported");
    expect_400("/api/v1/deployments?selector=site%3D(", "selector", "at byte 5");
    /* the largest page is one page, with a next */
    struct mgo_test_reply r;
    api_get("/api/v1/deployments?limit=500", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    const struct mgo_value *rows = mgo_value_get(&r.json, "deployments");
    CU_ASSERT_FATAL(rows != NULL && rows->kind == MGO_V_ARRAY);
    CU_ASSERT_EQUAL(rows->as.array.len, 500);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/next"), sorted[499]->id);
    mgo_test_reply_cleanup(&r);
    /* a cursor past every id: an empty last page */
    api_get("/api/v1/deployments?after=ffffffff-ffff-ffff-ffff-ffffffffffff", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    rows = mgo_value_get(&r.json, "deployments");
    CU_ASSERT_FATAL(rows != NULL && rows->kind == MGO_V_ARRAY);
    CU_ASSERT_EQUAL(rows->as.array.len, 0);
    CU_ASSERT_EQUAL(mgo_value_get(&r.json, "next")->kind, MGO_V_NULL);
    mgo_test_reply_cleanup(&r);
}

static void test_unpaged_list_unchanged(void)
{
    struct mgo_test_reply r;
    api_get("/api/v1/deployments?app=alpha", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    const struct mgo_value *rows = mgo_value_get(&r.json, "deployments");
    CU_ASSERT_FATAL(rows != NULL && rows->kind == MGO_V_ARRAY);
    struct filter alpha = {.app = "alpha", .site = -1};
    CU_ASSERT_EQUAL(rows->as.array.len, count_model(&alpha));
    CU_ASSERT_PTR_NULL(mgo_value_get(&r.json, "next"));
    CU_ASSERT_PTR_NULL(mgo_value_get(&r.json, "limit"));
    mgo_test_reply_cleanup(&r);
}

static void test_stop(void)
{
    mgo_test_manager_stop(&mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(state_dir);
    mgo_test_rm_rf(tmp_dir);
    curl_global_cleanup();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"start broker and manager over 2,000 stored deployments", test_start},
        {"pages cover every deployment exactly once, in id order",
         test_pages_cover_everything_once},
        {"state, app, device and selector filters across pages", test_filters},
        {"a selector examines a bounded number of rows per request", test_selector_scan_bound},
        {"limit 0/501, bad cursor, state and selector are 400 naming the field", test_bounds},
        {"without paging parameters: today's whole list", test_unpaged_list_unchanged},
        {"stop", test_stop},
        {NULL, NULL},
    };
    mgo_test_add_suite("paged deployment list", cases);
}
