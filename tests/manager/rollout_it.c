/* rollout_it.c - fleet rollouts end to end: margo-manager (in a thread) and simulated devices
 * (bench/fleet mgo-fleet-sim processes, the real protocol and codecs, failures injected per
 * device) on a real Mosquitto. Labels and selectors; canary then percentage batches; abort on
 * a threshold with rollback (devices end on the old revision, installed); a device-class
 * failure that does not abort when only app failures count; pause and resume; an offline
 * device that converges after the rollout finished; a manager stopped mid-batch and started
 * again on the same store, and a margo-manager process killed (SIGKILL) mid-batch (no batch
 * started twice, none skipped); margoctl rollout and device label. */
#include "mgo_test.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "mgr_test_util.h"
#include "proc.h"

#define TOKEN "rollout-token-0123456789abcdef"
#define WAIT_MS 60000

static struct mgo_test_broker broker;
static char dir[256];
static char state_dir[320];
static char token_path[320];
static struct mgo_test_manager mgr;
static const char *api_base = mgr.api_base; /* or that of a margo-manager process */

static void api(const char *method, const char *path, const char *body, struct mgo_test_reply *r)
{
    mgr_test_http(api_base, method, path, body, "Bearer " TOKEN, r);
}

static bool start_manager(void)
{
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), state_dir, "margo-manager-rollout",
                          token_path, "warn");
    return mgo_test_manager_start(&mgr, true) == MGO_OK;
}

/* One simulator process of count devices "<prefix>-0000K" from first; extra: more arguments
 * (NULL-terminated). Waits until every device is ready. */
static pid_t start_sim(const char *prefix, int first, int count, const char *const *extra, int boot)
{
    char log[400], first_s[16], count_s[16], boot_s[16];
    snprintf(log, sizeof log, "%s/sim-%s-%d-%d.log", dir, prefix, first, boot);
    snprintf(first_s, sizeof first_s, "%d", first);
    snprintf(count_s, sizeof count_s, "%d", count);
    snprintf(boot_s, sizeof boot_s, "%d", boot);
    const char *argv[32] = {MGO_SIM_BIN,   "--url",   mgo_test_broker_url(&broker),
                            "--id-prefix", prefix,    "--first",
                            first_s,       "--count", count_s,
                            "--boot",      boot_s};
    size_t n = 11;
    for (size_t i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = mgo_test_spawn(argv, log);
    char ready[32];
    snprintf(ready, sizeof ready, "READY %d", count);
    if (pid <= 0 || !mgo_test_log_wait(log, ready, 0, WAIT_MS))
        return -1;
    return pid;
}

static char *app_text(const char *version)
{
    char *text = mgo_test_read_file(mgo_test_path("bench/fleet/bench-app.yaml"), NULL);
    char *v = strstr(text, "version: \"1.0\"");
    if (v)
        memcpy(v + 10, version, 3); /* "1.0" -> "2.0": same length */
    return text;
}

/* Polls path until the value at pointer equals want (a string); false after WAIT_MS. */
static bool wait_str(const char *path, const char *pointer, const char *want)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    char last[64] = "";
    while (mgo_test_now_ms() < deadline) {
        struct mgo_test_reply r;
        api("GET", path, NULL, &r);
        snprintf(last, sizeof last, "%s", mgo_test_jstr(&r.json, pointer));
        mgo_test_reply_cleanup(&r);
        if (strcmp(last, want) == 0)
            return true;
        mgo_test_sleep_ms(200);
    }
    fprintf(stderr, "%s %s: still \"%s\", wanted \"%s\"\n", path, pointer, last, want);
    return false;
}

/* The number of devices GET /devices?selector= returns (one page). */
static size_t count_selected(const char *selector)
{
    char path[512], esc[256];
    size_t j = 0;
    for (size_t i = 0; selector[i] && j + 4 < sizeof esc; i++) {
        unsigned char c = (unsigned char)selector[i];
        if (c == ' ' || c == ',' || c == '(' || c == ')' || c == '=' || c == '!' || c == '/')
            j += (size_t)snprintf(esc + j, sizeof esc - j, "%%%02X", c);
        else
            esc[j++] = (char)c;
    }
    esc[j] = '\0';
    snprintf(path, sizeof path, "/api/v1/devices?limit=1000&selector=%s", esc);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    const struct mgo_value *d = mgo_value_get(&r.json, "devices");
    size_t n = d && d->kind == MGO_V_ARRAY ? d->as.array.len : 0;
    mgo_test_reply_cleanup(&r);
    return n;
}

static void wait_selected(const char *selector, size_t n)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (count_selected(selector) != n && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(200);
    CU_ASSERT_EQUAL_FATAL(count_selected(selector), n);
}

/* Labels fleet=<fleet> on devices prefix-0000i, i in [0, n). */
static void label_fleet(const char *prefix, int n, const char *fleet)
{
    for (int i = 0; i < n; i++) {
        char path[128], body[96];
        snprintf(path, sizeof path, "/api/v1/devices/%s-%05d/labels", prefix, i);
        snprintf(body, sizeof body, "{\"labels\": {\"fleet\": \"%s\"}}", fleet);
        struct mgo_test_reply r;
        api("PATCH", path, body, &r);
        CU_ASSERT_EQUAL(r.status, 200);
        CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/labels/fleet"), fleet);
        mgo_test_reply_cleanup(&r);
    }
}

/* Deploys version 1.0 to prefix-00000..n-1 with a plain deploy and waits until installed. */
static void deploy_v1(const char *prefix, int n)
{
    char body[2048] = "{\"app\": \"bench-app\", \"version\": \"1.0\", \"devices\": [";
    for (int i = 0; i < n; i++)
        snprintf(body + strlen(body), sizeof body - strlen(body), "%s\"%s-%05d\"", i ? "," : "",
                 prefix, i);
    strcat(body, "]}");
    struct mgo_test_reply r;
    api("POST", "/api/v1/deployments", body, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/deployments?device=%s-%05d", prefix, i);
        CU_ASSERT_FATAL(wait_str(path, "/deployments/0/state", "installed"));
    }
}

/* Creates a rollout; its id into id. */
static void create(const char *body, char id[64])
{
    struct mgo_test_reply r;
    api("POST", "/api/v1/rollouts", body, &r);
    if (r.status != 201)
        fprintf(stderr, "create: %ld %.*s\n", r.status, (int)r.body.len, (char *)r.body.data);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    snprintf(id, 64, "%s", mgo_test_jstr(&r.json, "/id"));
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/state"), "running");
    mgo_test_reply_cleanup(&r);
}

static uint64_t rollout_u64(const char *id, const char *pointer)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/rollouts/%s", id);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    uint64_t v = mgo_test_ju64(&r.json, pointer);
    mgo_test_reply_cleanup(&r);
    return v;
}

static bool wait_state(const char *id, const char *state)
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/rollouts/%s", id);
    return wait_str(path, "/state", state);
}

/* The version and state of the deployment of bench-app on device. */
static void dep_of(const char *device, char version[16], char state[16])
{
    char path[128];
    snprintf(path, sizeof path, "/api/v1/deployments?device=%s", device);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    snprintf(version, 16, "%s", mgo_test_jstr(&r.json, "/deployments/0/version"));
    snprintf(state, 16, "%s", mgo_test_jstr(&r.json, "/deployments/0/state"));
    mgo_test_reply_cleanup(&r);
}

/* Every target of a rollout: device, batch, state, startedAt/doneAt text. */
struct target {
    char device[32];
    unsigned batch;
    char state[20];
    char started[40], done[40];
};

static size_t targets(const char *id, struct target *out, size_t cap)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/rollouts/%s/targets?limit=1000", id);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    const struct mgo_value *t = mgo_value_get(&r.json, "targets");
    size_t n = 0;
    for (size_t i = 0; t && t->kind == MGO_V_ARRAY && i < t->as.array.len && n < cap; i++) {
        const struct mgo_value *e = &t->as.array.items[i];
        struct target *x = &out[n++];
        snprintf(x->device, sizeof x->device, "%s", mgo_test_jstr(e, "/device"));
        x->batch = (unsigned)mgo_test_ju64(e, "/batch");
        snprintf(x->state, sizeof x->state, "%s", mgo_test_jstr(e, "/state"));
        snprintf(x->started, sizeof x->started, "%s", mgo_test_jstr(e, "/startedAt"));
        snprintf(x->done, sizeof x->done, "%s", mgo_test_jstr(e, "/doneAt"));
    }
    mgo_test_reply_cleanup(&r);
    return n;
}

/* No target of batch b+1 started before every target of batch b was done (RFC 3339 UTC
 * timestamps of one format compare as text). */
static void assert_batches_in_order(const struct target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            if (t[j].batch + 1 == t[i].batch && t[i].started[0])
                CU_ASSERT(strcmp(t[j].done, t[i].started) <= 0);
        }
    }
}

/* ---- suite --------------------------------------------------------------------------------- */

static int suite_init(void)
{
    mgo_test_tmpdir("rollout", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    if (!mgo_test_write_file(token_path, TOKEN "\n") || mgo_test_broker_start(&broker, NULL) != 0 ||
        !start_manager())
        return 1;
    for (int v = 1; v <= 2; v++) {
        char *text = app_text(v == 1 ? "1.0" : "2.0");
        struct mgo_test_reply r;
        api("POST", "/api/v1/apps", text, &r);
        free(text);
        bool ok = r.status == 201;
        mgo_test_reply_cleanup(&r);
        if (!ok)
            return 1;
    }
    return 0;
}

static int suite_cleanup(void)
{
    mgo_test_manager_stop(&mgr);
    mgo_test_kill_children();
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(dir);
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_labels_and_plan(void)
{
    CU_ASSERT_FATAL(start_sim("lab", 0, 4, NULL, 1) > 0);
    wait_selected("margo.org/model=S1,margo.org/arch=amd64,!fleet", 4);
    label_fleet("lab", 2, "l");
    CU_ASSERT_EQUAL(count_selected("fleet=l"), 2);
    CU_ASSERT_EQUAL(count_selected("fleet in (l,x),margo.org/deployment-type.compose"), 2);
    CU_ASSERT_EQUAL(count_selected("fleet notin (l)"), 2);
    struct mgo_test_reply r;
    /* a bad selector: 400 naming the field, the position and the rule */
    api("GET", "/api/v1/devices?selector=fleet%20in%20(l", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "selector", "at byte 11: expected ',' or ')'"));
    mgo_test_reply_cleanup(&r);
    /* pages are bounded */
    api("GET", "/api/v1/devices?limit=1001", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "limit", "from 1 to 1000"));
    mgo_test_reply_cleanup(&r);
    api("GET", "/api/v1/rollouts?limit=101", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 400);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "limit", "from 1 to 100"));
    mgo_test_reply_cleanup(&r);
    /* derived keys are not the operator's */
    api("PATCH", "/api/v1/devices/lab-00000/labels", "{\"labels\": {\"margo.org/vendor\": \"x\"}}",
        &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "labels.margo.org/vendor", "derived"));
    mgo_test_reply_cleanup(&r);
    /* PATCH null deletes; PUT replaces */
    api("PATCH", "/api/v1/devices/lab-00001/labels",
        "{\"labels\": {\"fleet\": null, \"a\": \"1\"}}", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/labels/fleet"), "");
    mgo_test_reply_cleanup(&r);
    api("PUT", "/api/v1/devices/lab-00001/labels", "{\"labels\": {\"fleet\": \"l\"}}", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/labels/a"), "");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/derived/margo.org~1vendor"), "SimCorp");
    mgo_test_reply_cleanup(&r);
    /* pages: limit 3 then after */
    api("GET", "/api/v1/devices?selector=margo.org/model%3DS1&limit=3", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/next"), "lab-00002");
    mgo_test_reply_cleanup(&r);
    /* a dry run: lab-00000 runs the app already (a deploy-mode rollout excludes it), the
     * unlabelled devices are excluded by label */
    deploy_v1("lab", 1);
    api("POST", "/api/v1/rollouts?dryRun=true",
        "{\"app\": \"bench-app\", \"version\": \"1.0\", \"mode\": \"deploy\","
        " \"selector\": \"fleet=l\"}",
        &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/targetedCount"), 1);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/targeted/0/device"), "lab-00001");
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/excludedByKind/label"), 2);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/excludedByKind/deployment"), 1);
    mgo_test_reply_cleanup(&r);
    /* validation names the fields */
    api("POST", "/api/v1/rollouts",
        "{\"app\": \"bench-app\", \"selector\": \"fleet=l\", \"strategy\": {\"batchSize\": 0,"
        " \"onAbort\": \"explode\", \"maxFailures\": {\"total\": {\"count\": 1, \"percent\": 5}},"
        " \"bogus\": 1}}",
        &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "strategy.batchSize", "from 1 to"));
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "strategy.onAbort", "stop, rollback"));
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "strategy.maxFailures.total", "not both"));
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "strategy.bogus", "unknown field"));
    mgo_test_reply_cleanup(&r);
    /* every later test waits for its own, still unlabelled devices */
    api("PATCH", "/api/v1/devices/lab-00002/labels", "{\"labels\": {\"fleet\": \"other\"}}", &r);
    mgo_test_reply_cleanup(&r);
    api("PATCH", "/api/v1/devices/lab-00003/labels", "{\"labels\": {\"fleet\": \"other\"}}", &r);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL(count_selected("!fleet"), 0);
}

static void test_canary_then_percent(void)
{
    CU_ASSERT_FATAL(start_sim("ca", 0, 8, NULL, 1) > 0);
    wait_selected("!fleet", 8);
    label_fleet("ca", 8, "ca");
    deploy_v1("ca", 8);
    char id[64];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=ca\","
           " \"strategy\": {\"canary\": 1, \"batchPercent\": 50,"
           " \"maxFailures\": {\"total\": {\"count\": 0}}}}",
           id);
    CU_ASSERT_EQUAL(rollout_u64(id, "/batchCount"), 3);
    CU_ASSERT_EQUAL(rollout_u64(id, "/batches/0/size"), 1);
    CU_ASSERT_EQUAL(rollout_u64(id, "/batches/1/size"), 4);
    CU_ASSERT_EQUAL(rollout_u64(id, "/batches/2/size"), 3);
    CU_ASSERT_FATAL(wait_state(id, "succeeded"));
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/succeeded"), 8);
    /* GET /metrics counts it (margo_rollouts, docs/operations.md) */
    struct mgo_test_reply mr;
    api("GET", "/metrics", NULL, &mr);
    CU_ASSERT_EQUAL(mr.status, 200);
    const char *body = mr.body.data ? (const char *)mr.body.data : "";
    CU_ASSERT_PTR_NULL(strstr(body, "margo_rollouts{state=\"succeeded\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(body, "margo_rollouts{state=\"succeeded\"} "));
    mgo_test_reply_cleanup(&mr);
    struct target t[16];
    size_t n = targets(id, t, 16);
    CU_ASSERT_EQUAL(n, 8);
    assert_batches_in_order(t, n);
    for (int i = 0; i < 8; i++) {
        char dev[32], version[16], state[16];
        snprintf(dev, sizeof dev, "ca-%05d", i);
        dep_of(dev, version, state);
        CU_ASSERT_STRING_EQUAL(version, "2.0");
        CU_ASSERT_STRING_EQUAL(state, "installed");
    }
}

/* The retained roll-up on topic (MessagePack) as a tree in arena; false when none came
 * within WAIT_MS or it does not satisfy the wanted string at pointer. */
static bool rollup(const char *topic, const char *pointer, const char *want,
                   struct mgo_arena *arena, struct mgo_value *out)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    char last[64] = "";
    while (mgo_test_now_ms() < deadline) {
        /* a fresh subscription gets the retained document */
        struct mgo_mqtt *m =
            mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "rollup-monitor", 0, WAIT_MS);
        if (!m)
            return false;
        bool ok = mgo_mqtt_subscribe(m, topic, 1, NULL) == MGO_OK;
        int64_t until = mgo_test_now_ms() + 1000;
        bool got = false;
        while (ok && !got && mgo_test_now_ms() < until) {
            struct mgo_mqtt_event ev;
            if (mgo_mqtt_next(m, 50, &ev) != MGO_OK)
                continue;
            if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0) {
                struct mgo_problems p;
                mgo_problems_init(&p);
                CU_ASSERT_TRUE(ev.retained);
                got = mgo_value_from_msgpack(ev.payload, ev.payload_len, arena, out, &p) == MGO_OK;
            }
            mgo_mqtt_event_cleanup(&ev);
        }
        mgo_mqtt_free(m);
        if (got) {
            snprintf(last, sizeof last, "%s", mgo_test_jstr(out, pointer));
            if (strcmp(last, want) == 0)
                return true;
        }
        mgo_test_sleep_ms(300);
    }
    fprintf(stderr, "%s %s: \"%s\", wanted \"%s\"\n", topic, pointer, last, want);
    return false;
}

static void test_rollup_topics(void)
{
    /* the canary test's rollout and app, as a monitor sees them */
    struct mgo_test_reply r;
    api("GET", "/api/v1/rollouts?limit=1", NULL, &r);
    char id[64], topic[160];
    snprintf(id, sizeof id, "%s", mgo_test_jstr(&r.json, "/rollouts/0/id"));
    mgo_test_reply_cleanup(&r);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u << 20);
    struct mgo_value v;
    snprintf(topic, sizeof topic, "margo/v1/fleet/rollouts/%s", id);
    CU_ASSERT_FATAL(rollup(topic, "/state", "succeeded", &arena, &v));
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/counts/succeeded"), 8);
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/batches/1/size"), 4);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&v, "/app"), "bench-app");
    CU_ASSERT_FATAL(rollup("margo/v1/fleet/apps/bench-app", "/app", "bench-app", &arena, &v));
    /* lab-00000 (1.0) and the 8 canary-test devices (2.0), all installed */
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/deployments"), 9);
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/counts/installed"), 9);
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/versions/2.0"), 8);
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/versions/1.0"), 1);
    CU_ASSERT_EQUAL(mgo_test_ju64(&v, "/failures/app"), 0);
    mgo_arena_cleanup(&arena);
}

static void test_abort_and_rollback(void)
{
    /* rb-00001 and rb-00002 (batch 1) fail to install 2.0: two app failures in a batch whose
     * threshold is one */
    const char *fail[] = {"--fail-version", "2.0", "--fail-ids", "1,2", NULL};
    CU_ASSERT_FATAL(start_sim("rb", 0, 6, fail, 1) > 0);
    wait_selected("!fleet", 6);
    label_fleet("rb", 6, "rb");
    deploy_v1("rb", 6);
    char id[64];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=rb\","
           " \"strategy\": {\"canary\": 1, \"batchSize\": 5, \"onAbort\": \"rollback\","
           " \"maxFailures\": {\"batch\": {\"count\": 1}}}}",
           id);
    CU_ASSERT_FATAL(wait_state(id, "rolled-back"));
    char path[128];
    snprintf(path, sizeof path, "/api/v1/rollouts/%s", id);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    CU_ASSERT_PTR_NOT_NULL(strstr(mgo_test_jstr(&r.json, "/reason"), "failed in batch 1"));
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/failures/app"), 2);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/failures/byCode/RUNTIME_FAILED"), 2);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/counts/rolled-back"), 6);
    mgo_test_reply_cleanup(&r);
    for (int i = 0; i < 6; i++) {
        char dev[32], version[16], state[16];
        snprintf(dev, sizeof dev, "rb-%05d", i);
        dep_of(dev, version, state);
        CU_ASSERT_STRING_EQUAL(version, "1.0");
        CU_ASSERT_STRING_EQUAL(state, "installed");
    }
}

static void test_device_failure_app_only(void)
{
    const char *fail[] = {"--fail-version", "2.0", "--fail-code", "FETCH_FAILED",
                          "--fail-ids",     "2",   NULL};
    CU_ASSERT_FATAL(start_sim("df", 0, 4, fail, 1) > 0);
    wait_selected("!fleet", 4);
    label_fleet("df", 4, "df");
    deploy_v1("df", 4);
    char id[64];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=df\","
           " \"strategy\": {\"batchSize\": 2, \"onAbort\": \"rollback\","
           " \"maxFailures\": {\"total\": {\"count\": 0}, \"appFailuresOnly\": true}}}",
           id);
    CU_ASSERT_FATAL(wait_state(id, "succeeded"));
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/succeeded"), 3);
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/failed"), 1);
    CU_ASSERT_EQUAL(rollout_u64(id, "/failures/device"), 1);
    CU_ASSERT_EQUAL(rollout_u64(id, "/failures/app"), 0);
    CU_ASSERT_EQUAL(rollout_u64(id, "/failures/byCode/FETCH_FAILED"), 1);
}

static void test_pause_resume(void)
{
    const char *slow[] = {"--delay-ms", "300", NULL};
    CU_ASSERT_FATAL(start_sim("pr", 0, 4, slow, 1) > 0);
    wait_selected("!fleet", 4);
    label_fleet("pr", 4, "pr");
    deploy_v1("pr", 4);
    char id[64], path[128];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=pr\","
           " \"strategy\": {\"batchSize\": 1, \"soakSeconds\": 1}}",
           id);
    snprintf(path, sizeof path, "/api/v1/rollouts/%s/pause", id);
    struct mgo_test_reply r;
    api("POST", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/state"), "paused");
    mgo_test_reply_cleanup(&r);
    api("POST", path, NULL, &r); /* paused already */
    CU_ASSERT_EQUAL(r.status, 409);
    mgo_test_reply_cleanup(&r);
    /* paused: whatever had started finishes, nothing else starts */
    mgo_test_sleep_ms(2000);
    uint64_t waiting = rollout_u64(id, "/counts/waiting");
    CU_ASSERT(waiting >= 3);
    mgo_test_sleep_ms(2000);
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/waiting"), waiting);
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/updating"), 0);
    snprintf(path, sizeof path, "/api/v1/rollouts/%s/resume", id);
    api("POST", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_FATAL(wait_state(id, "succeeded"));
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/succeeded"), 4);
    struct target t[8];
    size_t n = targets(id, t, 8);
    assert_batches_in_order(t, n);
}

static void test_offline_device_converges(void)
{
    CU_ASSERT_FATAL(start_sim("of", 0, 3, NULL, 1) > 0);
    pid_t late = start_sim("of", 3, 1, NULL, 1);
    CU_ASSERT_FATAL(late > 0);
    wait_selected("!fleet", 4);
    label_fleet("of", 4, "of");
    deploy_v1("of", 4);
    mgo_test_kill(late, SIGKILL); /* its last will says offline */
    wait_selected("fleet=of,margo.org/online=false", 1);
    char id[64];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=of\","
           " \"strategy\": {\"offline\": {\"graceSeconds\": 1, \"countAs\": \"skipped\"},"
           " \"maxFailures\": {\"total\": {\"count\": 0}}}}",
           id);
    CU_ASSERT_FATAL(wait_state(id, "succeeded"));
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/succeeded"), 3);
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/lagging"), 1);
    /* it comes back (a new boot, no state of its own): the retained desired state is 2.0 */
    CU_ASSERT_FATAL(start_sim("of", 3, 1, NULL, 2) > 0);
    CU_ASSERT_TRUE(
        wait_str("/api/v1/deployments?device=of-00003", "/deployments/0/state", "installed"));
    char version[16], state[16];
    dep_of("of-00003", version, state);
    CU_ASSERT_STRING_EQUAL(version, "2.0");
    CU_ASSERT_STRING_EQUAL(state, "installed");
}

static void test_manager_restart_mid_batch(void)
{
    const char *slow[] = {"--delay-ms", "700", NULL};
    CU_ASSERT_FATAL(start_sim("mr", 0, 6, slow, 1) > 0);
    wait_selected("!fleet", 6);
    label_fleet("mr", 6, "mr");
    deploy_v1("mr", 6);
    char id[64];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=mr\","
           " \"strategy\": {\"batchSize\": 2}}",
           id);
    /* stop the manager while batch 1 runs */
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (!(rollout_u64(id, "/batch") == 1 && rollout_u64(id, "/counts/updating") > 0) &&
           mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(50);
    CU_ASSERT_FATAL(rollout_u64(id, "/batch") == 1);
    struct target before[8];
    size_t nb = targets(id, before, 8);
    mgo_test_manager_stop(&mgr);
    mgo_test_sleep_ms(1500); /* the devices go on meanwhile */
    CU_ASSERT_FATAL(start_manager());
    CU_ASSERT_FATAL(wait_state(id, "succeeded"));
    struct target after[8];
    size_t na = targets(id, after, 8);
    CU_ASSERT_EQUAL_FATAL(na, 6);
    CU_ASSERT_EQUAL(nb, 6);
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/succeeded"), 6);
    /* every target that had started keeps its start: none was started twice */
    for (size_t i = 0; i < nb; i++) {
        if (before[i].started[0])
            CU_ASSERT_STRING_EQUAL(before[i].started, after[i].started);
    }
    assert_batches_in_order(after, na);
}

/* Runs margoctl with args (NULL-terminated) against the manager; its output in log (appended).
 * The exit code, -1 when it did not end within WAIT_MS. */
static int ctl(const char *log, const char *const *args)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/manager/margoctl", MGO_BINARY_DIR);
    const char *argv[32] = {bin};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 26; i++)
        argv[n++] = args[i];
    argv[n++] = "--url";
    argv[n++] = api_base;
    argv[n++] = "--token-file";
    argv[n++] = token_path;
    argv[n] = NULL;
    pid_t pid = mgo_test_spawn(argv, log);
    int rc = mgo_test_wait_exit(pid, WAIT_MS);
    if (rc == -1)
        mgo_test_kill(pid, SIGKILL);
    return rc;
}

static void test_cli(void)
{
    CU_ASSERT_FATAL(start_sim("cl", 0, 3, NULL, 1) > 0);
    wait_selected("!fleet", 3);
    char log[400];
    snprintf(log, sizeof log, "%s/margoctl.log", dir);
    const char *label[] = {"device", "label", "cl-00000", "fleet=cl", "tier=canary", NULL};
    CU_ASSERT_EQUAL(ctl(log, label), 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "  tier=canary"), 1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "  margo.org/vendor=SimCorp"), 1);
    const char *bad[] = {"device", "label", "cl-00000", "=x", NULL};
    CU_ASSERT_EQUAL(ctl(log, bad), 2);
    const char *unlabel[] = {"device", "label", "cl-00000", "tier-", NULL};
    CU_ASSERT_EQUAL(ctl(log, unlabel), 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "  tier=canary"), 1); /* not shown again */
    label_fleet("cl", 3, "cl");
    deploy_v1("cl", 3);
    const char *plan[] = {"rollout",  "create",   "bench-app", "--version", "2.0", "--selector",
                          "fleet=cl", "--canary", "1",         "--dry-run", NULL};
    CU_ASSERT_EQUAL(ctl(log, plan), 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "3 targeted, "), 1);
    char json_log[400];
    snprintf(json_log, sizeof json_log, "%s/margoctl-create.json", dir);
    const char *make[] = {
        "rollout",    "create",   "bench-app", "--version", "2.0",
        "--selector", "fleet=cl", "--canary",  "1",         "--max-failures-total",
        "0",          "--json",   NULL};
    CU_ASSERT_EQUAL_FATAL(ctl(json_log, make), 0);
    char *text = mgo_test_read_file(json_log, NULL);
    char *at = strstr(text, "\"id\":\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    char id[40];
    snprintf(id, sizeof id, "%.36s", at + 6);
    free(text);
    const char *watch[] = {"rollout", "show", id, "--watch", NULL};
    CU_ASSERT_EQUAL(ctl(log, watch), 0);
    char line[96];
    snprintf(line, sizeof line, "rollout %s: succeeded", id);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, line), 1);
    const char *pause[] = {"rollout", "pause", id, NULL};
    CU_ASSERT_EQUAL(ctl(log, pause), 1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "a rollout that is succeeded cannot be paused"), 1);
    const char *tgts[] = {"rollout", "show", id, "--targets", NULL};
    size_t rows = mgo_test_count_lines(log, " succeeded");
    CU_ASSERT_EQUAL(ctl(log, tgts), 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, " succeeded"), rows + 3); /* one row per target */
    const char *list[] = {"rollout", "list", NULL};
    CU_ASSERT_EQUAL(ctl(log, list), 0);
    CU_ASSERT(mgo_test_count_lines(log, id) >= 2);
}

/* margo-manager as a process on the test's store and broker, its API on port. */
static pid_t spawn_manager(int port)
{
    char conf[400], log[400];
    snprintf(conf, sizeof conf, "%s/manager.conf", dir);
    snprintf(log, sizeof log, "%s/manager.log", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f,
            "state-dir %s\nbroker-url %s\napi-listen 127.0.0.1:%d\napi-token-file %s\n"
            "client-id margo-manager-rollout\nlog-level info\n",
            state_dir, mgo_test_broker_url(&broker), port, token_path);
    fclose(f);
    const char *argv[] = {MGO_MANAGER_BIN, "--config", conf, NULL};
    pid_t pid = mgo_test_spawn(argv, log);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (pid > 0 && mgo_test_now_ms() < deadline) {
        struct mgo_test_reply r;
        api("GET", "/api/v1/rollouts", NULL, &r);
        long st = r.status;
        mgo_test_reply_cleanup(&r);
        if (st == 200)
            return pid;
        mgo_test_sleep_ms(100);
    }
    return -1;
}

/* Last: the in-thread manager is replaced by margo-manager processes, one killed (SIGKILL)
 * in the middle of a batch. */
static void test_manager_killed_mid_batch(void)
{
    const char *slow[] = {"--delay-ms", "700", NULL};
    CU_ASSERT_FATAL(start_sim("mk", 0, 6, slow, 1) > 0);
    wait_selected("!fleet", 6);
    label_fleet("mk", 6, "mk");
    deploy_v1("mk", 6);
    mgo_test_manager_stop(&mgr);
    static char base[64];
    int port = mgo_test_free_port();
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    api_base = base;
    pid_t pid = spawn_manager(port);
    CU_ASSERT_FATAL(pid > 0);
    char id[64];
    create("{\"app\": \"bench-app\", \"version\": \"2.0\", \"selector\": \"fleet=mk\","
           " \"strategy\": {\"canary\": 1, \"batchSize\": 2}}",
           id);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (!(rollout_u64(id, "/batch") == 1 && rollout_u64(id, "/counts/updating") > 0) &&
           mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(50);
    CU_ASSERT_FATAL(mgo_test_now_ms() < deadline); /* in the middle of batch 1 */
    struct target before[8];
    size_t nb = targets(id, before, 8);
    mgo_test_kill(pid, SIGKILL);
    CU_ASSERT_EQUAL_FATAL(nb, 6);
    mgo_test_sleep_ms(1000); /* the devices go on meanwhile */
    pid = spawn_manager(port);
    CU_ASSERT_FATAL(pid > 0);
    CU_ASSERT(wait_state(id, "succeeded"));
    struct target after[8];
    size_t na = targets(id, after, 8);
    CU_ASSERT_EQUAL(na, 6);
    CU_ASSERT_EQUAL(rollout_u64(id, "/counts/succeeded"), 6);
    for (size_t i = 0; i < nb && i < na; i++) {
        if (before[i].started[0])
            CU_ASSERT_STRING_EQUAL(before[i].started, after[i].started);
    }
    assert_batches_in_order(after, na);
    for (int i = 0; i < 6; i++) {
        char dev[32], version[16], state[16];
        snprintf(dev, sizeof dev, "mk-%05d", i);
        dep_of(dev, version, state);
        CU_ASSERT_STRING_EQUAL(version, "2.0");
        CU_ASSERT_STRING_EQUAL(state, "installed");
    }
    mgo_test_kill(pid, SIGTERM);
    api_base = mgr.api_base;
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"labels, selectors and a dry run", test_labels_and_plan},
        {"canary then percentage batches", test_canary_then_percent},
        {"roll-up topics", test_rollup_topics},
        {"abort on a threshold and roll back", test_abort_and_rollback},
        {"device failure with app failures only", test_device_failure_app_only},
        {"pause and resume", test_pause_resume},
        {"offline device converges after the rollout", test_offline_device_converges},
        {"manager restart mid-batch", test_manager_restart_mid_batch},
        {"margoctl rollout and device label", test_cli},
        {"manager killed mid-batch (margo-manager process)", test_manager_killed_mid_batch},
        {NULL, NULL},
    };
    CU_pSuite s = CU_add_suite("manager rollout", suite_init, suite_cleanup);
    for (size_t i = 0; s && cases[i].name; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
}
