/* test_overview.c - GET /api/v1/overview (docs/api.md "Fleet overview", the web UI's fleet
 * overview) on margo-manager in a thread with a real Mosquitto and a scripted device: the
 * loop's samples of devices online appear, stay within fleet-samples (older ones pruned) and
 * are thinned to the window; deployments are counted by state and by app; the newest failures
 * of the status history are listed with their component, code and class (mgo/failure.h). */
#include "mgo_test.h"
#include "pg.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "http.h"
#include "manager_thread.h"
#include "mqtt_client.h"
#include "mgo/manager.h"
#include "mgo/mgr_store.h"
#include "mgo/mqtt.h"
#include "../../manager/src/overview.h"

#define TOKEN "overview-test-token-0123456789ab"
#define WAIT_MS 15000
#define KEEP 3 /* fleet-samples in this test */

static struct mgo_test_broker broker;
static struct mgo_test_manager mgr;
static struct mgo_mqtt *device; /* publishes for dev1, dev2, dev3 */
static char state_dir[256];
static char token_path[512];
static int64_t first_t_ms; /* the oldest sample seen first */

static void api(const char *method, const char *path, const char *body, struct mgo_test_reply *r)
{
    const char *headers[] = {"Authorization: Bearer " TOKEN, "Content-Type: application/json",
                             NULL};
    mgo_test_request(mgr.api_base, method, path, headers, body, 10000, r);
}

static void publish(const char *topic, const char *fmt, ...) MGO_PRINTF(2, 3);
static void publish(const char *topic, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    CU_ASSERT_EQUAL(mgo_test_publish_vyamlf(device, topic, true, WAIT_MS, fmt, ap), MGO_OK);
    va_end(ap);
}

static void publish_caps(const char *id)
{
    char topic[128];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/capabilities", id);
    publish(topic,
            "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
            " properties: {id: %s, vendor: Acme, modelNumber: X1, serialNumber: S-%s,"
            " cpus: [{cores: 4, architecture: amd64}], memory: 8Gi, storage: 10Gi,"
            " interfaces: [{type: ethernet}], otelCollector: true,"
            " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}",
            id, id);
}

static void publish_presence(const char *id, const char *state)
{
    char topic[128];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/state", id);
    publish(topic, "{deviceId: %s, state: %s, boot: 1}", id, state);
}

/* A status of dev's deployment dep; code NULL: no error. */
static void publish_status(const char *dev, const char *dep, const char *state, unsigned seq,
                           const char *code)
{
    char topic[256], error[256] = "";
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/status/%s", dev, dep);
    if (code)
        snprintf(error, sizeof error,
                 ", error: {code: %s, source: test, message: \"%s went wrong\"}", code, code);
    publish(topic,
            "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
            " deploymentId: %s, adoptedManifestVersion: 1, status: {state: %s},"
            " components: [{name: hello-compose, state: %s%s}],"
            " x-margo-mqtt-extensions: {boot: 1, seq: %u}}",
            dep, state, state, error, seq);
}

static size_t array_len(const struct mgo_value *v, const char *pointer)
{
    const struct mgo_value *a = mgo_value_pointer(v, pointer);
    return a && a->kind == MGO_V_ARRAY ? a->as.array.len : 0;
}

static int64_t iso_ms(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    if (sscanf(iso, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) != 7)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_start(&broker, NULL), 0);
    mgo_test_tmpdir("overview", state_dir);
    snprintf(token_path, sizeof token_path, "%s/token", state_dir);
    CU_ASSERT_TRUE_FATAL(mgo_test_write_file(token_path, TOKEN "\n"));
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), state_dir, "manager-overview",
                          token_path, "warn");
    mgr.cfg.fleet_sample_interval_s = 1;
    mgr.cfg.fleet_samples = KEEP;
    CU_ASSERT_EQUAL_FATAL(mgo_test_manager_start(&mgr, true), MGO_OK);
    device = mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "overview-devices", 0, WAIT_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(device);
    publish_caps("dev1");
    publish_caps("dev2");
    publish_caps("dev3"); /* never sends presence: counted offline */
    publish_presence("dev1", "online");
    publish_presence("dev2", "offline");
}

static void test_query_rules(void)
{
    static const struct {
        const char *query;
        long status;
        const char *field;
    } cases[] = {
        {"", 200, NULL},
        {"?window=24h&failures=0", 200, NULL},
        {"?window=1s", 200, NULL},
        {"?window=30d&failures=100", 200, NULL},
        {"?window=31d", 400, "window"},
        {"?window=0h", 400, "window"},
        {"?window=24", 400, "window"},
        {"?window=1w", 400, "window"},
        {"?window=-1h", 400, "window"},
        {"?failures=101", 400, "failures"},
        {"?failures=x", 400, "failures"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/overview%s", cases[i].query);
        struct mgo_test_reply r;
        api("GET", path, NULL, &r);
        if (r.status != cases[i].status)
            fprintf(stderr, "GET %s: %ld\n", path, r.status);
        CU_ASSERT_EQUAL(r.status, cases[i].status);
        if (cases[i].field)
            CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/errors/0/field"), cases[i].field);
        mgo_test_reply_cleanup(&r);
    }
    struct mgo_test_reply r;
    api("POST", "/api/v1/overview", "{}", &r);
    CU_ASSERT_EQUAL(r.status, 405);
    mgo_test_reply_cleanup(&r);
    const char *no_auth[] = {NULL};
    mgo_test_request(mgr.api_base, "GET", "/api/v1/overview", no_auth, NULL, 10000, &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
}

/* The loop samples 1 online (dev1) and 2 offline (dev2 offline, dev3 never said). */
static void test_samples_appear(void)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool seen = false;
    while (!seen && mgo_test_now_ms() < deadline) {
        struct mgo_test_reply r;
        api("GET", "/api/v1/overview?window=10m", NULL, &r);
        CU_ASSERT_EQUAL(r.status, 200);
        size_t n = array_len(&r.json, "/online");
        char last[32];
        snprintf(last, sizeof last, "/online/%zu", n ? n - 1 : 0);
        const struct mgo_value *pt = mgo_value_pointer(&r.json, last);
        if (n && mgo_test_ju64(pt, "/online") == 1 && mgo_test_ju64(pt, "/offline") == 2) {
            seen = true;
            first_t_ms = iso_ms(mgo_test_jstr(&r.json, "/online/0/t"));
            CU_ASSERT_TRUE(first_t_ms > 0);
            CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/devices/online"), 1);
            CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/devices/offline"), 2);
            CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/windowSeconds"), 600);
        }
        mgo_test_reply_cleanup(&r);
        if (!seen)
            mgo_test_sleep_ms(200);
    }
    CU_ASSERT_TRUE(seen);
}

/* After more than KEEP further samples only the newest KEEP are left (pruned on insert);
 * a window whose buckets are wider than the samples' spacing thins them. */
static void test_samples_bounded(void)
{
    mgo_test_sleep_ms((KEEP + 2) * 1000);
    struct mgo_test_reply r;
    api("GET", "/api/v1/overview?window=10m", NULL, &r);
    CU_ASSERT_EQUAL(array_len(&r.json, "/online"), KEEP);
    int64_t oldest = iso_ms(mgo_test_jstr(&r.json, "/online/0/t"));
    CU_ASSERT_TRUE(oldest > first_t_ms); /* the first ones were deleted */
    int64_t prev = 0;
    for (size_t i = 0; i < KEEP; i++) { /* oldest first */
        char p[32];
        snprintf(p, sizeof p, "/online/%zu/t", i);
        int64_t t = iso_ms(mgo_test_jstr(&r.json, p));
        CU_ASSERT_TRUE(t > prev);
        prev = t;
    }
    mgo_test_reply_cleanup(&r);
    /* 1h / 720 points: buckets of 5 s, so KEEP samples 1 s apart make 1 or 2 points */
    api("GET", "/api/v1/overview?window=1h", NULL, &r);
    size_t n = array_len(&r.json, "/online");
    CU_ASSERT_TRUE(n >= 1 && n < KEEP);
    mgo_test_reply_cleanup(&r);
}

static char dep1[64], dep2[64];

static void test_states_and_failures(void)
{
    struct mgo_test_reply r;
    char *app = mgo_test_read_file(mgo_test_path("tests/manager/data/hello-1.0.yaml"), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(app);
    api("POST", "/api/v1/apps", app, &r);
    free(app);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
    api("POST", "/api/v1/deployments",
        "{\"app\":\"hello-world\",\"version\":\"1.0\",\"devices\":[\"dev1\",\"dev2\",\"dev3\"],"
        "\"parameters\":{\"siteId\":\"site-7\",\"greeting\":\"Hi\"}}",
        &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    snprintf(dep1, sizeof dep1, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
    snprintf(dep2, sizeof dep2, "%s", mgo_test_jstr(&r.json, "/deployments/1/id"));
    mgo_test_reply_cleanup(&r);

    publish_status("dev1", dep1, "installed", 1, NULL);
    publish_status("dev2", dep2, "installing", 1, NULL);
    publish_status("dev2", dep2, "failed", 2, "FETCH_FAILED");
    publish_status("dev2", dep2, "installing", 3, NULL);
    publish_status("dev2", dep2, "failed", 4, "DIGEST_MISMATCH");

    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool done = false;
    while (!done && mgo_test_now_ms() < deadline) {
        api("GET", "/api/v1/overview?window=1h", NULL, &r);
        done = array_len(&r.json, "/recentFailures") == 2;
        if (!done) {
            mgo_test_reply_cleanup(&r);
            mgo_test_sleep_ms(100);
        }
    }
    CU_ASSERT_TRUE_FATAL(done);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/deploymentsByState/installed"), 1);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/deploymentsByState/failed"), 1);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/deploymentsByState/unreported"), 1); /* dev3 */
    CU_ASSERT_EQUAL(array_len(&r.json, "/byApp"), 1);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/byApp/0/app"), "hello-world");
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/byApp/0/states/failed"), 1);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/byApp/0/total"), 3);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/appsOmitted"), 0);
    /* newest first, each with its component, code and class */
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/0/code"), "DIGEST_MISMATCH");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/0/class"), "app");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/code"), "FETCH_FAILED");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/class"), "device");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/component"), "hello-compose");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/deviceId"), "dev2");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/deploymentId"), dep2);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/app"), "hello-world");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/version"), "1.0");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/1/message"),
                           "FETCH_FAILED went wrong");
    CU_ASSERT_TRUE(iso_ms(mgo_test_jstr(&r.json, "/recentFailures/0/time")) > 0);
    mgo_test_reply_cleanup(&r);

    api("GET", "/api/v1/overview?failures=1", NULL, &r);
    CU_ASSERT_EQUAL(array_len(&r.json, "/recentFailures"), 1);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/0/code"), "DIGEST_MISMATCH");
    mgo_test_reply_cleanup(&r);
    /* failures older than the window are left out */
    mgo_test_sleep_ms(2100);
    api("GET", "/api/v1/overview?window=2s", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(array_len(&r.json, "/recentFailures"), 0);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/deploymentsByState/failed"), 1); /* still failed */
    mgo_test_reply_cleanup(&r);
}

/* A failed report that names no failed component is listed with its overall error. */
static void test_overall_failure_without_component(void)
{
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/dev1/status/%s", dep1);
    publish(topic,
            "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
            " deploymentId: %s, adoptedManifestVersion: 1, status: {state: failed, error:"
            " {code: UNSUPPORTED_TYPE, source: test, message: no runtime}},"
            " components: [{name: hello-compose, state: installed}],"
            " x-margo-mqtt-extensions: {boot: 1, seq: 2}}",
            dep1);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool done = false;
    struct mgo_test_reply r;
    while (!done && mgo_test_now_ms() < deadline) {
        api("GET", "/api/v1/overview?window=1m", NULL, &r);
        done = strcmp(mgo_test_jstr(&r.json, "/recentFailures/0/deviceId"), "dev1") == 0;
        if (!done) {
            mgo_test_reply_cleanup(&r);
            mgo_test_sleep_ms(100);
        }
    }
    CU_ASSERT_TRUE_FATAL(done);
    CU_ASSERT_EQUAL(array_len(&r.json, "/recentFailures"), 3); /* and dev2's two */
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/0/code"), "UNSUPPORTED_TYPE");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/recentFailures/0/class"), "device");
    const struct mgo_value *c = mgo_value_pointer(&r.json, "/recentFailures/0/component");
    CU_ASSERT_TRUE(c && c->kind == MGO_V_NULL);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/deploymentsByState/failed"), 2);
    mgo_test_reply_cleanup(&r);
}

static void test_stop(void)
{
    if (device) {
        mgo_err ignored = mgo_mqtt_disconnect(device, 1000); /* best effort at the end */
        (void)ignored;
        mgo_mqtt_free(device);
        device = NULL;
    }
    mgo_test_manager_stop(&mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(state_dir);
    curl_global_cleanup();
}

/* The store's bound at the limit and one past it, and the reply's bound on points. */
static void test_store_bounds(void)
{
    char dir[256];
    mgo_test_tmpdir("overview-store", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(s), MGO_MGR_STORE_SCHEMA_VERSION);
    mgo_mgr_store_set_sample_limit(s, 5);
    uint64_t n = 0;
    for (int64_t i = 1; i <= 5; i++)
        CU_ASSERT_EQUAL(mgo_mgr_store_sample_add(s, i * 1000, NULL), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_sample_count(s, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 5); /* at the limit: all kept */
    struct mgo_mgr_sample got;
    CU_ASSERT_EQUAL(mgo_mgr_store_sample_add(s, 6000, &got), MGO_OK);
    CU_ASSERT_EQUAL(got.online + got.offline, 0); /* no device yet */
    CU_ASSERT_EQUAL(mgo_mgr_store_sample_count(s, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 5); /* one past: the oldest went */

    /* 3,000 samples over the last hour: a 1h reply holds at most 720 points */
    mgo_mgr_store_set_sample_limit(s, MGO_MGR_SAMPLES_DEFAULT);
    int64_t now = mgo_mgr_store_now_ms();
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    for (int64_t i = 0; i < 3000; i++)
        CU_ASSERT_EQUAL(mgo_mgr_store_sample_add(s, now - 3600000 + i * 1200, NULL), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(s), MGO_OK);
    struct mgo_overview_params op;
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL(mgo_overview__parse("1h", NULL, &op, &p), MGO_OK);
    struct mgo_buf out;
    mgo_buf_init(&out, 1u << 22);
    CU_ASSERT_EQUAL(mgo_overview__write(s, &op, now, &out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_buf_append(&out, "", 1), MGO_OK);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 24);
    struct mgo_value v;
    CU_ASSERT_EQUAL_FATAL(mgo_test_yaml((const char *)out.data, &arena, &v), MGO_OK);
    size_t points = array_len(&v, "/online");
    CU_ASSERT_TRUE(points <= MGO_OVERVIEW_MAX_POINTS && points >= MGO_OVERVIEW_MAX_POINTS - 2);
    mgo_arena_cleanup(&arena);
    mgo_buf_reset(&out);

    /* byApp: MGO_OVERVIEW_MAX_APPS apps listed, one more is counted in appsOmitted */
    static const uint8_t doc[] = {0x80};
    for (unsigned i = 0; i <= MGO_OVERVIEW_MAX_APPS; i++) {
        char id[64], app[16];
        snprintf(id, sizeof id, "dddddddd-0000-4000-8000-%012u", i);
        snprintf(app, sizeof app, "app-%03u", i);
        struct mgo_mgr_deployment_row row = {.id = id,
                                             .device_id = "dev1",
                                             .app_id = app,
                                             .app_version = "1.0",
                                             .profile_type = "compose",
                                             .parameters_json = "{}",
                                             .doc = doc,
                                             .doc_len = sizeof doc,
                                             .digest = "sha256:00",
                                             .desired = MGO_MGR_DESIRED_PRESENT,
                                             .manifest_version = 1};
        CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &row), MGO_OK);
        if (i + 1 == MGO_OVERVIEW_MAX_APPS || i == MGO_OVERVIEW_MAX_APPS) {
            mgo_buf_reset(&out);
            CU_ASSERT_EQUAL(mgo_overview__write(s, &op, now, &out), MGO_OK);
            CU_ASSERT_EQUAL(mgo_buf_append(&out, "", 1), MGO_OK);
            mgo_arena_init(&arena, 1u << 24);
            CU_ASSERT_EQUAL_FATAL(mgo_test_yaml((const char *)out.data, &arena, &v), MGO_OK);
            CU_ASSERT_EQUAL(array_len(&v, "/byApp"), MGO_OVERVIEW_MAX_APPS);
            CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/appsOmitted"), i + 1 - MGO_OVERVIEW_MAX_APPS);
            CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/deploymentsByState/unreported"), i + 1);
            CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&v, "/byApp/99/app"), "app-099");
            mgo_arena_cleanup(&arena);
        }
    }
    mgo_buf_cleanup(&out);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"store: samples bounded, replies thinned", test_store_bounds},
        {"start", test_start},
        {"query rules", test_query_rules},
        {"samples of devices online appear", test_samples_appear},
        {"samples are bounded and thinned to the window", test_samples_bounded},
        {"deployments by state and the newest failures with their class", test_states_and_failures},
        {"an overall failure without a failed component", test_overall_failure_without_component},
        {"stop", test_stop},
        {NULL, NULL},
    };
    mgo_test_add_suite("fleet overview", cases);
}
