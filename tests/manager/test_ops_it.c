/* test_ops_it.c - the manager's operations endpoints against a real Mosquitto, the manager
 * in a thread: GET /healthz and /readyz (open, readyz 503 while the broker is away and 200
 * again once it is back), GET /metrics (API token or metrics token; the text format with a
 * device online, ingest counters, HTTP requests by route template), and the route templates
 * of the HTTP counter. The tests share one broker and one manager and run in order. */
#include "mgo_test.h"

#include <string.h>

#include "../../manager/src/api.h"
#include "../../manager/src/metrics.h"
#include "broker.h"
#include "mgo/manager.h"
#include "mgo/mqtt.h"
#include "mgr_test_util.h"

#define WAIT_MS 15000
#define TOKEN "ops-token-0123456789abcdef"
#define METRICS_TOKEN "scrape-token-0123456789"

static struct mgo_test_broker broker;
static char dir[256];
static char token_path[512];
static char metrics_token_path[512];
static struct mgo_test_manager mgr;

static void get(const char *path, const char *auth, struct mgo_test_reply *r)
{
    mgr_test_http(mgr.api_base, "GET", path, NULL, auth, r);
}

/* The value of the sample line that starts with series (name and labels) in text, or -1. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

/* One scrape: the value of series, -1 when absent or the scrape failed. */
static double scrape(const char *series)
{
    struct mgo_test_reply r;
    get("/metrics", "Bearer " TOKEN, &r);
    double v = -1;
    if (r.status == 200) {
        CU_ASSERT_FATAL(mgo_buf_append(&r.body, "", 1) == MGO_OK);
        v = sample((const char *)r.body.data, series);
    }
    mgo_test_reply_cleanup(&r);
    return v;
}

/* Scrapes until series has value want (deadline WAIT_MS); the last value seen. */
static double wait_sample(const char *series, double want)
{
    double v = -1;
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    do {
        v = scrape(series);
        if (v == want)
            return v;
        mgo_test_sleep_ms(50);
    } while (mgo_test_now_ms() < deadline);
    return v;
}

static long wait_ready(long want, char *body, size_t body_size)
{
    long status = 0;
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    do {
        struct mgo_test_reply r;
        get("/readyz", NULL, &r);
        status = r.status;
        snprintf(body, body_size, "%.*s", (int)r.body.len, r.body.data ? (char *)r.body.data : "");
        mgo_test_reply_cleanup(&r);
        if (status == want)
            break;
        mgo_test_sleep_ms(50);
    } while (mgo_test_now_ms() < deadline);
    return status;
}

static int suite_init(void)
{
    if (mgo_test_broker_start(&broker, NULL) != 0)
        return -1;
    mgo_test_tmpdir("ops", dir);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    snprintf(metrics_token_path, sizeof metrics_token_path, "%s/metrics-token", dir);
    if (!mgo_test_write_file(token_path, TOKEN "\n") ||
        !mgo_test_write_file(metrics_token_path, METRICS_TOKEN "\n"))
        return -1;
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), dir, "margo-manager-ops", token_path,
                          "warn");
    mgr.cfg.metrics_token_file = metrics_token_path;
    return mgo_test_manager_start(&mgr, true) == MGO_OK ? 0 : -1;
}

static int suite_cleanup(void)
{
    mgo_test_manager_stop(&mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(dir);
    return 0;
}

static void test_healthz(void)
{
    struct mgo_test_reply r;
    get("/healthz", NULL, &r); /* no token: the probes are open */
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/json");
    CU_ASSERT(mgo_test_jstr(&r.json, "/alive")[0] == '\0'); /* a boolean, not a string */
    CU_ASSERT_EQUAL(r.json.kind, MGO_V_MAP);
    mgo_test_reply_cleanup(&r);
    mgr_test_http(mgr.api_base, "POST", "/healthz", "{}", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 405);
    mgo_test_reply_cleanup(&r);
}

static void test_readyz_connected(void)
{
    char body[256];
    CU_ASSERT_EQUAL(wait_ready(200, body, sizeof body), 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"ready\":true"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"mqtt\":\"connected\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"store\":\"ok\""));
}

static void test_metrics_auth(void)
{
    struct mgo_test_reply r;
    get("/metrics", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
    get("/metrics", "Bearer wrong-token-0123456789", &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
    get("/metrics", "Bearer " TOKEN, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(r.content_type, MGO_METRICS_CONTENT_TYPE);
    mgo_test_reply_cleanup(&r);
    get("/metrics", "Bearer " METRICS_TOKEN, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
    /* the metrics token opens /metrics and nothing else */
    get("/api/v1/devices", "Bearer " METRICS_TOKEN, &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
}

static void test_metrics_device_online(void)
{
    CU_ASSERT_EQUAL(wait_sample("margo_devices{state=\"online\"}", 0), 0);
    CU_ASSERT_EQUAL(wait_sample("margo_rollouts{state=\"running\"}", 0), 0); /* every state */
    struct mgo_mqtt *dev =
        mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "ops-dev1", 0, WAIT_MS);
    CU_ASSERT_FATAL(dev != NULL);
    CU_ASSERT(mgo_test_publish_yaml(dev, "margo/v1/devices/dev1/state", true,
                                    "{deviceId: dev1, state: online, boot: 1}", WAIT_MS) == MGO_OK);
    CU_ASSERT_EQUAL(wait_sample("margo_devices{state=\"online\"}", 1), 1);
    CU_ASSERT_EQUAL(wait_sample("margo_devices{state=\"offline\"}", 0), 0);
    CU_ASSERT_EQUAL(
        wait_sample("margo_ingest_messages_total{kind=\"presence\",result=\"handled\"}", 1), 1);
    CU_ASSERT_EQUAL(wait_sample("margo_ingest_batch_duration_seconds_count", 1), 1);
    CU_ASSERT(mgo_test_publish_yaml(dev, "margo/v1/devices/dev1/state", true,
                                    "{deviceId: dev1, state: offline, boot: 1}",
                                    WAIT_MS) == MGO_OK);
    CU_ASSERT_EQUAL(wait_sample("margo_devices{state=\"offline\"}", 1), 1);
    CU_ASSERT_EQUAL(wait_sample("margo_devices{state=\"online\"}", 0), 0);
    CU_ASSERT_EQUAL(
        wait_sample("margo_ingest_messages_total{kind=\"presence\",result=\"handled\"}", 2), 2);
    mgo_mqtt_free(dev);
}

static void test_metrics_http_routes(void)
{
    struct mgo_test_reply r;
    get("/api/v1/devices/dev1", "Bearer " TOKEN, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
    get("/api/v1/devices/nobody", "Bearer " TOKEN, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL(wait_sample("margo_http_requests_total{route=\"/api/v1/devices/{id}\","
                                "method=\"GET\",code=\"200\"}",
                                1),
                    1);
    CU_ASSERT_EQUAL(wait_sample("margo_http_requests_total{route=\"/api/v1/devices/{id}\","
                                "method=\"GET\",code=\"404\"}",
                                1),
                    1);
    CU_ASSERT_EQUAL(wait_sample("margo_http_requests_total{route=\"/healthz\",method=\"POST\","
                                "code=\"405\"}",
                                1),
                    1);
    /* a scrape sees itself waiting for the loop */
    CU_ASSERT_EQUAL(wait_sample("margo_queue_depth{queue=\"http_waiting\"}", 1), 1);
    CU_ASSERT(scrape("margo_store_duration_seconds_count{op=\"commit\"}") > 0);
    CU_ASSERT(scrape("margo_store_duration_seconds_count{op=\"write\"}") > 0);
    CU_ASSERT(scrape("margo_process_start_time_seconds") > 1.7e9);
    CU_ASSERT_EQUAL(scrape("margo_queue_depth{queue=\"held\"}"), 0);
}

static void test_readyz_broker_away(void)
{
    char body[256];
    CU_ASSERT_FATAL(mgo_test_broker_stop(&broker) == 0);
    CU_ASSERT_EQUAL(wait_ready(503, body, sizeof body), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"ready\":false"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"mqtt\":\"disconnected\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"store\":\"ok\""));
    CU_ASSERT_EQUAL(wait_sample("margo_mqtt_connected", 0), 0);
    /* /healthz still answers: the process and its loop are alive */
    struct mgo_test_reply r;
    get("/healthz", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    CU_ASSERT_EQUAL(wait_ready(200, body, sizeof body), 200);
    CU_ASSERT_EQUAL(wait_sample("margo_mqtt_reconnects_total", 1), 1);
}

/* A manager whose loop does not run (a stuck loop): /healthz goes through the loop, so it
 * gets no answer; the HTTP threads alone do not claim it is alive. */
static void test_healthz_stuck_loop(void)
{
    char d[256], tok[512];
    mgo_test_tmpdir("ops-stuck", d);
    snprintf(tok, sizeof tok, "%s/token", d);
    CU_ASSERT_FATAL(mgo_test_write_file(tok, TOKEN "\n"));
    struct mgo_test_manager t;
    mgo_test_manager_init(&t, "tcp://127.0.0.1:1", d, "margo-manager-stuck", tok, "error");
    CU_ASSERT_FATAL(mgo_test_manager_start(&t, false) == MGO_OK);
    struct mgo_buf out;
    mgo_buf_init(&out, 4096);
    char url[128];
    snprintf(url, sizeof url, "%s/healthz", t.api_base);
    long status = mgo_test_http("GET", url, NULL, NULL, 1500, &out, NULL, 0);
    CU_ASSERT_EQUAL(status, 0); /* timed out: no answer */
    /* the web front end is served by the HTTP threads: they do answer */
    snprintf(url, sizeof url, "%s/", t.api_base);
    mgo_buf_reset(&out);
    CU_ASSERT_EQUAL(mgo_test_http("GET", url, NULL, NULL, 5000, &out, NULL, 0), 200);
    mgo_buf_cleanup(&out);
    mgo_test_manager_stop(&t);
    mgo_test_rm_rf(d);
}

/* metrics-token-file holds a token of at least 16 characters, or the manager does not start. */
static void test_short_metrics_token(void)
{
    char d[256], tok[512], mtok[512];
    mgo_test_tmpdir("ops-short", d);
    snprintf(tok, sizeof tok, "%s/token", d);
    snprintf(mtok, sizeof mtok, "%s/metrics-token", d);
    CU_ASSERT_FATAL(mgo_test_write_file(tok, TOKEN "\n"));
    CU_ASSERT_FATAL(mgo_test_write_file(mtok, "short\n"));
    struct mgo_test_manager t;
    mgo_test_manager_init(&t, "tcp://127.0.0.1:1", d, "margo-manager-short", tok, "error");
    t.cfg.metrics_token_file = mtok;
    CU_ASSERT_EQUAL(mgo_test_manager_start(&t, false), MGO_ERR_INVALID);
    mgo_test_manager_stop(&t);
    mgo_test_rm_rf(d);
}

static void test_route_templates(void)
{
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/apps"), "/api/v1/apps");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/apps/"), "/api/v1/apps");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/apps/x"), "/api/v1/apps/{id}");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/deployments/d-1"),
                           "/api/v1/deployments/{id}");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/status"), "/api/v1/status");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/status/x"), "other");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/apps/x/y"), "other");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/random-thing"), "other");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v2/apps"), "other");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/metrics"), "/metrics");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/readyz"), "/readyz");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/index.html"), "other");
    /* every template of the route table, not a list of its own */
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/rollouts/r-1/pause"),
                           "/api/v1/rollouts/{id}/pause");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/devices/d-1/labels"),
                           "/api/v1/devices/{id}/labels");
    CU_ASSERT_STRING_EQUAL(mgo_mgr_metrics__route("/api/v1/rollouts/r-1/explode"), "other");
    struct mgo_mgr_metrics mm;
    mgo_mgr_metrics_init(&mm);
    size_t n = 0;
    const struct mgo_api_route *rt = mgo_api__routes(&n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < mm.routes_len && !found; k++)
            found = strcmp(mm.routes[k], rt[i].path) == 0;
        CU_ASSERT(found);
    }
    CU_ASSERT_STRING_EQUAL(mm.routes[mm.routes_len - 1], "other");
}

void mgo_test_register(void)
{
    CU_pSuite s = CU_add_suite("ops endpoints", suite_init, suite_cleanup);
    CU_add_test(s, "/healthz open, GET only", test_healthz);
    CU_add_test(s, "/readyz 200 when connected", test_readyz_connected);
    CU_add_test(s, "/metrics needs the API or metrics token", test_metrics_auth);
    CU_add_test(s, "/metrics: devices online/offline, ingest counters", test_metrics_device_online);
    CU_add_test(s, "/metrics: HTTP requests by route template and code", test_metrics_http_routes);
    CU_add_test(s, "/readyz 503 while the broker is away, 200 after", test_readyz_broker_away);
    static const struct mgo_test_case cases[] = {
        {"route templates are bounded", test_route_templates},
        {"/healthz unanswered while the loop does not run", test_healthz_stuck_loop},
        {"metrics-token-file shorter than 16 characters refused", test_short_metrics_token},
        {NULL, NULL},
    };
    mgo_test_add_suite("ops: route templates, stuck loop, start-up", cases);
}
