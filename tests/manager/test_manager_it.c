/* test_manager_it.c - margo-manager against a real Mosquitto: a scripted device (an
 * mgo_mqtt client) publishes capabilities, presence and status; the manager runs in a
 * thread; the API is called over HTTP with libcurl; a separate subscriber decodes what the
 * manager publishes; margoctl watch runs as a child process.
 *
 * The tests share one broker and one manager and run in order (each builds on the state
 * the previous one left). Waits poll with a generous deadline so a broken manager fails
 * the test instead of hanging it; nothing asserts on how long anything took. */
#include "mgo_test.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "mgo/manager.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "mgr_test_util.h"

#define WAIT_MS 15000
#define TOKEN "it-token-0123456789abcdef"

static struct mgo_test_broker broker;
static char state_dir[256];
static char state_dir2[256];
static char token_path[512];
static struct mgo_test_manager mgr;
static struct mgo_mqtt *device; /* the scripted agent of dev1 and dev2 */
static char deployment_id[64];

/* ---- manager in a thread, HTTP ------------------------------------------------------- */

static bool start_manager(const char *dir, const char *client_id)
{
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), dir, client_id, token_path, "warn");
    return mgo_test_manager_start(&mgr, true) == MGO_OK;
}

static void api(const char *method, const char *path, const char *body, struct mgo_test_reply *r)
{
    mgr_test_http(mgr.api_base, method, path, body, "Bearer " TOKEN, r);
}

/* ---- MQTT clients -------------------------------------------------------------------------- */

struct msg {
    char topic[256];
    uint8_t *payload;
    size_t len;
    bool retained;
};

struct inbox {
    struct msg items[256];
    size_t len;
};

static struct mgo_mqtt *mqtt_connect(const char *client_id)
{
    return mgo_test_mqtt_connect(mgo_test_broker_url(&broker), client_id, 0, WAIT_MS);
}

static void pump(struct mgo_mqtt *m, struct inbox *in, int ms)
{
    int64_t deadline = mgo_test_now_ms() + ms;
    do {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 20, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && in && in->len < 256) {
            struct msg *x = &in->items[in->len++];
            snprintf(x->topic, sizeof x->topic, "%s", ev.topic);
            x->payload = ev.payload;
            x->len = ev.payload_len;
            x->retained = ev.retained;
            ev.payload = NULL;
        }
        mgo_mqtt_event_cleanup(&ev);
    } while (mgo_test_now_ms() < deadline);
}

static void inbox_cleanup(struct inbox *in)
{
    for (size_t i = 0; i < in->len; i++)
        free(in->items[i].payload);
    in->len = 0;
}

static const struct msg *inbox_last(const struct inbox *in, const char *topic)
{
    for (size_t i = in->len; i > 0; i--) {
        if (strcmp(in->items[i - 1].topic, topic) == 0)
            return &in->items[i - 1];
    }
    return NULL;
}

/* Publishes a YAML/JSON document as MessagePack (printf-style text). */
static void publish_doc(const char *topic, bool retain, const char *fmt, ...) MGO_PRINTF(3, 4);
static void publish_doc(const char *topic, bool retain, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    CU_ASSERT_EQUAL(mgo_test_publish_vyamlf(device, topic, retain, 0, fmt, ap), MGO_OK);
    va_end(ap);
    pump(device, NULL, 0);
}

static void publish_raw(const char *topic, const void *data, size_t len)
{
    CU_ASSERT_EQUAL(mgo_mqtt_publish(device, topic, data, len, 1, false, NULL), MGO_OK);
    pump(device, NULL, 0);
}

/* 300 KiB (more than MGO_MAX_MESSAGE_BYTES) through the mosquitto_pub CLI. */
static void publish_oversized(const char *topic)
{
    char file[512], port[16];
    snprintf(file, sizeof file, "%s/big.bin", state_dir2);
    FILE *f = fopen(file, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (size_t i = 0; i < 300u * 1024u; i++)
        fputc(0xa1, f);
    fclose(f);
    snprintf(port, sizeof port, "%d", broker.port);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("mosquitto_pub", "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-q", "1", "-t",
               topic, "-f", file, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
        fprintf(stderr, "(mosquitto_pub not available: oversized message on %s not sent)\n", topic);
    unlink(file);
}

static void publish_caps(const char *id, const char *memory)
{
    char topic[128];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/capabilities", id);
    publish_doc(topic, true,
                "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
                " properties: {id: %s, vendor: Acme, modelNumber: X1, serialNumber: S-%s,"
                " cpus: [{cores: 4, architecture: amd64}], memory: %s, storage: 10Gi,"
                " interfaces: [{type: ethernet}], otelCollector: true,"
                " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}",
                id, id, memory);
}

static void publish_status(const char *dev, const char *dep, const char *state, uint64_t seq,
                           uint64_t adopted)
{
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/status/%s", dev, dep);
    publish_doc(topic, true,
                "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
                " deploymentId: %s, adoptedManifestVersion: %llu, status: {state: %s},"
                " components: [{name: hello-compose, state: %s}],"
                " x-margo-mqtt-extensions: {boot: 1, seq: %llu}}",
                dep, (unsigned long long)adopted, state, state, (unsigned long long)seq);
}

/* ---- predicates over the API ---------------------------------------------------------- */

static size_t count_array(const char *path, const char *key)
{
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    const struct mgo_value *a = mgo_value_get(&r.json, key);
    size_t n = a && a->kind == MGO_V_ARRAY ? a->as.array.len : 0;
    mgo_test_reply_cleanup(&r);
    return n;
}

static bool wait_count(const char *path, const char *key, size_t want)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_now_ms() < deadline) {
        if (count_array(path, key) == want)
            return true;
        pump(device, NULL, 20);
    }
    return false;
}

static size_t history_len(const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    const struct mgo_value *h = mgo_value_get(&r.json, "history");
    size_t n = h && h->kind == MGO_V_ARRAY ? h->as.array.len : 0;
    mgo_test_reply_cleanup(&r);
    return n;
}

static bool wait_history(const char *id, size_t want)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_now_ms() < deadline) {
        if (history_len(id) >= want)
            return history_len(id) == want;
        pump(device, NULL, 20);
    }
    return false;
}

/* ---- margoctl as a child process ------------------------------------------------------- */

static pid_t ctl_spawn(const char *const *args)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/manager/margoctl", MGO_BINARY_DIR);
    char *argv[24];
    size_t n = 0;
    argv[n++] = bin;
    for (; args[n - 1] && n < 16; n++)
        argv[n] = (char *)args[n - 1];
    argv[n++] = (char *)"--url";
    argv[n++] = mgr.api_base;
    argv[n++] = (char *)"--token-file";
    argv[n++] = token_path;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDOUT_FILENO);
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

/* Waits for the child (killing it after 60 s so a bug cannot hang the suite). */
static int ctl_wait(pid_t pid)
{
    int64_t deadline = mgo_test_now_ms() + 60000;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (mgo_test_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        pump(device, NULL, 20);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void cleanup_at_exit(void)
{
    mgo_test_broker_cleanup(&broker);
}

static void test_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(cleanup_at_exit);
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_start(&broker, NULL), 0);
    mgo_test_tmpdir("mgr", state_dir);
    mgo_test_tmpdir("mgr", state_dir2);
    snprintf(token_path, sizeof token_path, "%s/token", state_dir2);
    CU_ASSERT_TRUE_FATAL(mgo_test_write_file(token_path, TOKEN "\n"));
    CU_ASSERT_TRUE_FATAL(start_manager(state_dir, "manager-it"));
    device = mqtt_connect("it-device");
    CU_ASSERT_PTR_NOT_NULL_FATAL(device);
    struct mgo_test_reply r;
    api("GET", "/api/v1/apps", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
}

static void test_auth_required(void)
{
    struct mgo_test_reply r;
    mgr_test_http(mgr.api_base, "GET", "/api/v1/apps", NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 401);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/problem+json");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/title"), "Unauthorized");
    mgo_test_reply_cleanup(&r);
    mgr_test_http(mgr.api_base, "GET", "/api/v1/devices", NULL,
                  "Bearer wrong-token-0123456789abcdef", &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
    /* a prefix of the token */
    mgr_test_http(mgr.api_base, "GET", "/api/v1/devices", NULL, "Bearer it-token", &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
    mgr_test_http(mgr.api_base, "GET", "/api/v1/devices", NULL, TOKEN, &r); /* no "Bearer " */
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
    /* a refused caller cannot change anything */
    mgr_test_http(mgr.api_base, "POST", "/api/v1/apps", "{\"path\": \"/etc/passwd\"}", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 401);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL(count_array("/api/v1/apps", "apps"), 0);
}

static void test_catalog(void)
{
    struct mgo_test_reply r;
    /* the application file as the body: the path form needs catalog-dir (docs/api.md) */
    char *body = mgo_test_read_file(mgo_test_path("tests/manager/data/hello-1.0.yaml"), NULL);
    api("POST", "/api/v1/apps", body, &r);
    CU_ASSERT_EQUAL(r.status, 201);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/id"), "hello-world");
    mgo_test_reply_cleanup(&r);
    api("POST", "/api/v1/apps", body, &r);
    CU_ASSERT_EQUAL(r.status, 409);
    mgo_test_reply_cleanup(&r);
    free(body);
    /* without catalog-dir the path form is refused, whatever the path names */
    api("POST", "/api/v1/apps", "{\"path\": \"/etc/passwd\"}", &r);
    CU_ASSERT_EQUAL(r.status, 403);
    CU_ASSERT_PTR_NULL(strstr((const char *)r.body.data, "passwd"));
    mgo_test_reply_cleanup(&r);
    api("POST", "/api/v1/apps", "kind: ApplicationDescription\nid: Bad_Id\n", &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "id", "must match"));
    mgo_test_reply_cleanup(&r);
    /* margoctl app add of the second version (the CLI reads the file itself) */
    const char *args[] = {"app", "add", mgo_test_path("tests/manager/data/hello-2.0.yaml"), NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(args)), 0);
    CU_ASSERT_EQUAL(count_array("/api/v1/apps", "apps"), 2);
    api("GET", "/api/v1/apps/hello-world?version=1.0", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/questions/2/parameter"), "siteId");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/questions/2/schema/regexMatch"),
                           "^site-[0-9]+$");
    mgo_test_reply_cleanup(&r);
}

static void test_devices_and_compatibility(void)
{
    publish_caps("dev1", "1Gi");
    publish_doc("margo/v1/devices/dev1/state", true, "{deviceId: dev1, state: online, boot: 1}");
    publish_caps("dev2", "128Mi");
    CU_ASSERT_TRUE_FATAL(wait_count("/api/v1/devices", "devices", 2));
    struct mgo_test_reply r;
    api("GET", "/api/v1/devices?compatible=hello-world&version=1.0", NULL, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/devices/0/id"), "dev1");
    const struct mgo_value *c0 = mgo_value_pointer(&r.json, "/devices/0/compatible");
    const struct mgo_value *c1 = mgo_value_pointer(&r.json, "/devices/1/compatible");
    CU_ASSERT_TRUE(c0 && c0->kind == MGO_V_BOOL && c0->as.b);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/devices/0/profile"), "hello-compose");
    CU_ASSERT_TRUE(c1 && c1->kind == MGO_V_BOOL && !c1->as.b);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/devices/1/reason"),
                           "memory: needs 256Mi, device has 128Mi");
    mgo_test_reply_cleanup(&r);
    /* presence is reflected (published before dev2's capabilities, so already processed) */
    api("GET", "/api/v1/devices/dev1", NULL, &r);
    const struct mgo_value *online = mgo_value_get(&r.json, "online");
    CU_ASSERT_TRUE(online && online->kind == MGO_V_BOOL && online->as.b);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/capabilities/properties/vendor"), "Acme");
    mgo_test_reply_cleanup(&r);
}

static void test_invalid_answers_publish_nothing(void)
{
    struct mgo_test_reply r;
    api("POST", "/api/v1/deployments",
        "{\"app\":\"hello-world\",\"version\":\"1.0\",\"devices\":[\"dev1\"],"
        "\"parameters\":{\"port\":80,\"siteId\":\"nope\",\"colour\":\"red\"}}",
        &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_STRING_EQUAL(r.content_type, "application/problem+json");
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "parameters.port", "at least 1024"));
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "parameters.siteId", "regexMatch"));
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "parameters.colour", "not a parameter"));
    mgo_test_reply_cleanup(&r);
    api("POST", "/api/v1/deployments",
        "{\"app\":\"hello-world\",\"devices\":[\"dev2\",\"dev9\"],"
        "\"parameters\":{\"siteId\":\"site-1\"}}",
        &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "devices[0]", "not compatible: memory"));
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "devices[1]", "unknown"));
    mgo_test_reply_cleanup(&r);
    api("POST", "/api/v1/deployments", "{\"app\": 5}", &r);
    CU_ASSERT_EQUAL(r.status, 422);
    mgo_test_reply_cleanup(&r);
    api("POST", "/api/v1/deployments", "{not json", &r);
    CU_ASSERT_EQUAL(r.status, 400);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL(count_array("/api/v1/deployments?all=true", "deployments"), 0);
    /* nothing retained for dev1 either (a late subscriber gets nothing) */
    struct mgo_mqtt *late = mqtt_connect("it-late-0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(late);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(late, "margo/v1/devices/+/desired", 1, NULL), MGO_OK);
    struct inbox in = {0};
    pump(late, &in, 500);
    CU_ASSERT_EQUAL(in.len, 0);
    inbox_cleanup(&in);
    mgo_mqtt_free(late);
}

static void test_deploy_publishes_retained_documents(void)
{
    struct mgo_test_reply r;
    api("POST", "/api/v1/deployments",
        "{\"app\":\"hello-world\",\"version\":\"1.0\",\"devices\":[\"dev1\"],"
        "\"parameters\":{\"siteId\":\"site-7\",\"greeting\":\"Hi there\"}}",
        &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    snprintf(deployment_id, sizeof deployment_id, "%s",
             mgo_test_jstr(&r.json, "/deployments/0/id"));
    CU_ASSERT_TRUE(mgo_is_uuid(deployment_id));
    mgo_test_reply_cleanup(&r);

    /* a subscriber that connects afterwards receives both retained documents */
    struct mgo_mqtt *mon = mqtt_connect("it-monitor");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mon);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(mon, "margo/v1/devices/dev1/#", 1, NULL), MGO_OK);
    char dep_topic[256];
    snprintf(dep_topic, sizeof dep_topic, "margo/v1/devices/dev1/deployments/%s", deployment_id);
    struct inbox in = {0};
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_now_ms() < deadline &&
           (!inbox_last(&in, dep_topic) || !inbox_last(&in, "margo/v1/devices/dev1/desired")))
        pump(mon, &in, 50);
    const struct msg *dm = inbox_last(&in, dep_topic);
    const struct msg *ds = inbox_last(&in, "margo/v1/devices/dev1/desired");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dm);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ds);
    CU_ASSERT_TRUE(dm->retained);
    CU_ASSERT_TRUE(ds->retained);

    struct mgo_arena arena;
    mgo_arena_init(&arena, 8u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_desired_state desired;
    CU_ASSERT_EQUAL_FATAL(mgo_desired_state_decode(ds->payload, ds->len, &arena, &desired, &p),
                          MGO_OK);
    CU_ASSERT_EQUAL(desired.manifest_version, 1); /* the refused deploys bumped nothing */
    CU_ASSERT_FALSE(desired.has_bundle);
    CU_ASSERT_EQUAL_FATAL(desired.deployments_len, 1);
    CU_ASSERT_STRING_EQUAL(desired.deployments[0].deployment_id, deployment_id);
    /* the digest in the manifest is the digest of the document the device receives */
    struct mgo_value tree;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(dm->payload, dm->len, &arena, &tree, &p), MGO_OK);
    char digest[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_EQUAL(mgo_doc_digest(&tree, digest), MGO_OK);
    CU_ASSERT_STRING_EQUAL(desired.deployments[0].digest, digest);
    struct mgo_app_deployment d;
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_from_value(&tree, &arena, &d, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(d.id, deployment_id);
    CU_ASSERT_STRING_EQUAL(d.application_id, "hello-world");
    /* the catalog version rides in an annotation, inside what the digest above covers */
    CU_ASSERT_PTR_NOT_NULL_FATAL(d.application_version);
    CU_ASSERT_STRING_EQUAL(d.application_version, "1.0");
    CU_ASSERT_STRING_EQUAL(d.device_id, "dev1");
    CU_ASSERT_EQUAL(d.profile.type, MGO_PROFILE_COMPOSE);
    bool site = false, port = false;
    for (size_t i = 0; i < d.parameters_len; i++) {
        if (strcmp(d.parameters[i].name, "siteId") == 0)
            site = strcmp(d.parameters[i].value.as.str.ptr, "site-7") == 0;
        if (strcmp(d.parameters[i].name, "port") == 0)
            port = d.parameters[i].value.as.u == 8080 &&
                   strcmp(d.parameters[i].targets[0].pointer, "PORT") == 0;
    }
    CU_ASSERT_TRUE(site);
    CU_ASSERT_TRUE(port);
    mgo_arena_cleanup(&arena);
    inbox_cleanup(&in);
    mgo_mqtt_free(mon);
}

static void test_status_transitions_recorded(void)
{
    publish_status("dev1", deployment_id, "pending", 1, 1);
    publish_status("dev1", deployment_id, "installing", 2, 1);
    publish_status("dev1", deployment_id, "installed", 3, 1);
    CU_ASSERT_TRUE_FATAL(wait_history(deployment_id, 3));
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", deployment_id);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/state"), "installed");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/history/0/state"), "pending");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/history/1/state"), "installing");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/history/2/state"), "installed");
    mgo_test_reply_cleanup(&r);
    api("GET", "/api/v1/status?device=dev1", NULL, &r);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/status/0/state"), "installed");
    mgo_test_reply_cleanup(&r);
}

static void test_bad_input_ignored(void)
{
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/dev1/status/%s", deployment_id);
    static const uint8_t garbage[] = {0xc1, 0xc1, 0xff, 0x00};
    static const uint8_t not_status[] = {0x81, 0xa1, 'x', 0x01}; /* {"x": 1} */
    publish_raw(topic, garbage, sizeof garbage);
    publish_raw(topic, not_status, sizeof not_status);
    /* oversized (our own client refuses to send them, so mosquitto_pub does) */
    publish_oversized(topic);
    publish_oversized("margo/v1/devices/dev3/capabilities");
    publish_oversized("margo/v1/devices/dev1/state");
    publish_oversized("margo/v1/devices/dev1/events");
    /* stale and duplicate journal positions */
    publish_status("dev1", deployment_id, "failed", 2, 1);
    publish_status("dev1", deployment_id, "failed", 3, 1);
    /* unknown deployment ids, and a deployment reported by the wrong device */
    publish_status("dev1", "11111111-2222-4333-8444-555555555555", "installed", 50, 1);
    publish_status("dev2", deployment_id, "failed", 1, 1);
    /* deploymentId in the body differs from the topic */
    publish_doc(topic, false,
                "{deploymentId: 11111111-2222-4333-8444-555555555555, status: {state: failed},"
                " components: [], x-margo-mqtt-extensions: {boot: 9, seq: 1}}");
    /* malformed capabilities, presence, events; forged capabilities for dev1 */
    publish_raw("margo/v1/devices/dev3/capabilities", garbage, sizeof garbage);
    publish_raw("margo/v1/devices/dev4/state", garbage, sizeof garbage);
    publish_doc("margo/v1/devices/dev4/state", false, "{deviceId: dev1, state: online, boot: 1}");
    publish_raw("margo/v1/devices/dev1/events", garbage, sizeof garbage);
    publish_doc("margo/v1/devices/dev1/capabilities", false,
                "{properties: {id: other, vendor: Evil, modelNumber: X, serialNumber: Y,"
                " supportedDeploymentTypes: [helm], supportedRuntimes: [oci], otelCollector: true,"
                " cpus: [{cores: 1}], memory: 1Gi, storage: 1Gi}}");
    /* then a good report (seq 4): once it is visible, everything before it was processed */
    publish_status("dev1", deployment_id, "installed", 4, 1);
    CU_ASSERT_TRUE_FATAL(wait_history(deployment_id, 4));
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", deployment_id);
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/state"), "installed");
    for (int i = 0; i < 4; i++) {
        char ptr[32];
        snprintf(ptr, sizeof ptr, "/history/%d/state", i);
        CU_ASSERT_STRING_NOT_EQUAL(mgo_test_jstr(&r.json, ptr), "failed");
    }
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL(count_array("/api/v1/devices", "devices"), 2); /* no dev3, dev4 */
    CU_ASSERT_EQUAL(count_array("/api/v1/status", "status"), 1);
    api("GET", "/api/v1/devices/dev1", NULL, &r);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/vendor"), "Acme");
    mgo_test_reply_cleanup(&r);
    /* the manager is still serving */
    api("GET", "/api/v1/apps", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
}

static void test_watch_exit_codes(void)
{
    /* already installed -> 0 */
    const char *ok_args[] = {"watch", deployment_id, "--timeout", "20", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(ok_args)), 0);
    /* reconfigure (manifest 2); the device fails it -> 1 */
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", deployment_id);
    struct mgo_test_reply r;
    api("PATCH", path, "{\"parameters\":{\"port\":9000}}", &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    const struct mgo_value *mv = mgo_value_get(&r.json, "manifestVersion");
    CU_ASSERT_TRUE(mv && mv->kind == MGO_V_UINT && mv->as.u == 2);
    mgo_test_reply_cleanup(&r);
    /* the immutable siteId cannot change */
    api("PATCH", path, "{\"parameters\":{\"siteId\":\"site-8\"}}", &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "parameters.siteId", "immutable"));
    mgo_test_reply_cleanup(&r);
    pid_t watch = ctl_spawn(ok_args);
    publish_status("dev1", deployment_id, "failed", 5, 2);
    CU_ASSERT_EQUAL(ctl_wait(watch), 1);
    /* another change that the device never reports -> timeout exit 3 */
    api("PATCH", path, "{\"parameters\":{\"port\":9001}}", &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
    const char *short_args[] = {"watch", deployment_id, "--timeout", "1", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(short_args)), 3);
    /* unknown deployment -> 1 */
    const char *bad_args[] = {"watch", "11111111-2222-4333-8444-555555555555", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(bad_args)), 1);
}

static void test_remove(void)
{
    struct mgo_test_reply r;
    api("DELETE", "/api/v1/apps/hello-world?version=1.0", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 409); /* still deployed */
    mgo_test_reply_cleanup(&r);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", deployment_id);
    api("DELETE", path, NULL, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 202);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/desired"), "removing");
    mgo_test_reply_cleanup(&r);
    /* the new manifest leaves the deployment out */
    struct mgo_mqtt *mon = mqtt_connect("it-monitor-2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mon);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(mon, "margo/v1/devices/dev1/desired", 1, NULL), MGO_OK);
    struct inbox in = {0};
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_now_ms() < deadline && in.len == 0)
        pump(mon, &in, 50);
    CU_ASSERT_EQUAL_FATAL(in.len, 1);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_desired_state ds;
    CU_ASSERT_EQUAL(mgo_desired_state_decode(in.items[0].payload, in.items[0].len, &arena, &ds, &p),
                    MGO_OK);
    CU_ASSERT_EQUAL(ds.manifest_version, 4);
    CU_ASSERT_EQUAL(ds.deployments_len, 0);
    mgo_arena_cleanup(&arena);
    inbox_cleanup(&in);
    mgo_mqtt_free(mon);
    /* watch follows the removal to the end */
    const char *args[] = {"watch", deployment_id, "--timeout", "30", NULL};
    pid_t watch = ctl_spawn(args);
    publish_status("dev1", deployment_id, "removing", 6, 4);
    publish_status("dev1", deployment_id, "removed", 7, 4);
    CU_ASSERT_EQUAL(ctl_wait(watch), 0);
    /* the manager clears the retained document once the device reported removed */
    deadline = mgo_test_now_ms() + WAIT_MS;
    bool removed = false;
    while (mgo_test_now_ms() < deadline && !removed) {
        api("GET", path, NULL, &r);
        removed = strcmp(mgo_test_jstr(&r.json, "/desired"), "removed") == 0;
        mgo_test_reply_cleanup(&r);
        pump(device, NULL, 20);
    }
    CU_ASSERT_TRUE(removed);
    mon = mqtt_connect("it-monitor-3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mon);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(mon, "margo/v1/devices/dev1/deployments/+", 1, NULL),
                    MGO_OK);
    pump(mon, &in, 500);
    CU_ASSERT_EQUAL(in.len, 0);
    inbox_cleanup(&in);
    mgo_mqtt_free(mon);
    api("DELETE", "/api/v1/apps/hello-world?version=1.0", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 204);
    mgo_test_reply_cleanup(&r);
}

static void test_restart_keeps_versions_and_relearns(void)
{
    mgo_test_manager_stop(&mgr);
    CU_ASSERT_TRUE_FATAL(start_manager(state_dir, "manager-it"));
    /* a new deploy after the restart (made with margoctl: --values file, --set typed by the
     * app's dataType) gets manifestVersion 5: versions are never reused */
    char values[512];
    snprintf(values, sizeof values, "%s/values.yaml", state_dir2);
    FILE *f = fopen(values, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("greeting: Moin\nport: 8081\n", f);
    fclose(f);
    const char *bad[] = {"deploy",      "hello-world", "--device",      "dev1",        "--set",
                         "port=eighty", "--set",       "siteId=site-9", "--no-prompt", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(bad)), 1); /* refused locally: not an integer */
    const char *refused[] = {"deploy",  "hello-world", "--device",      "dev1",        "--set",
                             "port=80", "--set",       "siteId=site-9", "--no-prompt", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(refused)), 1); /* 422 from the manager */
    const char *args[] = {"deploy", "hello-world",  "--device",    "dev1",  "--values",
                          values,   "--set",        "port=9090",   "--set", "siteId=site-9",
                          "--set",  "verbose=true", "--no-prompt", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(args)), 0);
    struct mgo_test_reply r;
    api("GET", "/api/v1/deployments?device=dev1", NULL, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    const struct mgo_value *mv = mgo_value_pointer(&r.json, "/deployments/0/manifestVersion");
    CU_ASSERT_TRUE(mv && mv->kind == MGO_V_UINT && mv->as.u == 5);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/deployments/0/version"), "2.0");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/deployments/0/parameters/greeting"), "Moin");
    const struct mgo_value *port = mgo_value_pointer(&r.json, "/deployments/0/parameters/port");
    CU_ASSERT_TRUE(port && port->kind == MGO_V_UINT && port->as.u == 9090);
    const struct mgo_value *verbose =
        mgo_value_pointer(&r.json, "/deployments/0/parameters/verbose");
    CU_ASSERT_TRUE(verbose && verbose->kind == MGO_V_BOOL && verbose->as.b);
    mgo_test_reply_cleanup(&r);
    unlink(values);
    mgo_test_manager_stop(&mgr);
    /* a manager with an empty store relearns the devices from retained messages */
    char fresh[256];
    mgo_test_tmpdir("mgr", fresh);
    CU_ASSERT_TRUE_FATAL(start_manager(fresh, "manager-it-fresh"));
    CU_ASSERT_TRUE(wait_count("/api/v1/devices", "devices", 2));
    /* presence arrives on its own topic: wait until it is reflected too */
    bool online = false;
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (!online && mgo_test_now_ms() < deadline) {
        api("GET", "/api/v1/devices/dev1", NULL, &r);
        const struct mgo_value *o = mgo_value_get(&r.json, "online");
        online = o && o->kind == MGO_V_BOOL && o->as.b;
        mgo_test_reply_cleanup(&r);
        pump(device, NULL, 20);
    }
    CU_ASSERT_TRUE(online);
    mgo_test_manager_stop(&mgr);
    mgo_test_rm_rf(fresh);
}

/* Collects the newest manifest version per device from retained desired-state messages. */
struct seen_manifests {
    size_t len;
    char device[8][32];
    uint64_t version[8];
    size_t refs[8]; /* deployments in that manifest */
};

/* The entry of device dev (0 when none was seen). */
static uint64_t seen_version(const struct seen_manifests *s, const char *dev, size_t *refs)
{
    for (size_t k = 0; k < s->len; k++) {
        if (strcmp(s->device[k], dev) == 0) {
            if (refs != NULL)
                *refs = s->refs[k];
            return s->version[k];
        }
    }
    return 0;
}

static void collect_manifests(struct mgo_mqtt *mon, struct seen_manifests *out, int ms)
{
    struct inbox in = {0};
    pump(mon, &in, ms);
    for (size_t i = 0; i < in.len; i++) {
        char dev[32];
        if (sscanf(in.items[i].topic, "margo/v1/devices/%31[^/]/desired", dev) != 1)
            continue;
        struct mgo_arena arena;
        mgo_arena_init(&arena, 1u << 20);
        struct mgo_problems p;
        mgo_problems_init(&p);
        struct mgo_desired_state ds;
        if (mgo_desired_state_decode(in.items[i].payload, in.items[i].len, &arena, &ds, &p) ==
            MGO_OK) {
            size_t k = 0;
            while (k < out->len && strcmp(out->device[k], dev) != 0)
                k++;
            if (k == out->len && out->len < 8)
                snprintf(out->device[out->len++], sizeof out->device[0], "%s", dev);
            if (k < out->len && ds.manifest_version > out->version[k]) {
                out->version[k] = ds.manifest_version;
                out->refs[k] = ds.deployments_len;
            }
        }
        mgo_arena_cleanup(&arena);
    }
    inbox_cleanup(&in);
}

/* Broker outage: a change made while the broker is down is stored, and published (newest
 * manifest) once the manager has reconnected by itself. */
static void test_broker_outage(void)
{
    CU_ASSERT_TRUE_FATAL(start_manager(state_dir, "manager-it"));
    struct mgo_test_reply r;
    api("GET", "/api/v1/deployments?device=dev1", NULL, &r);
    char id[64];
    snprintf(id, sizeof id, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_TRUE_FATAL(mgo_is_uuid(id));
    mgo_mqtt_free(device);
    device = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_stop(&broker), 0);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    api("DELETE", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 202); /* stored while the broker is away */
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_restart(&broker), 0);
    device = mqtt_connect("it-device");
    CU_ASSERT_PTR_NOT_NULL_FATAL(device);
    struct mgo_mqtt *mon = mqtt_connect("it-monitor-4");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mon);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(mon, "margo/v1/devices/dev1/desired", 1, NULL), MGO_OK);
    struct seen_manifests seen = {0};
    size_t refs = 99;
    int64_t deadline = mgo_test_now_ms() + 45000; /* the manager's backoff is at most 30 s */
    while (seen_version(&seen, "dev1", &refs) < 6 && mgo_test_now_ms() < deadline)
        collect_manifests(mon, &seen, 100);
    CU_ASSERT_EQUAL(seen_version(&seen, "dev1", &refs), 6);
    CU_ASSERT_EQUAL(refs, 0);
    mgo_mqtt_free(mon);
    mgo_test_manager_stop(&mgr);
}

/* The broker loses everything (no persistence file): the manager's session is new when it
 * reconnects, and it publishes every device's desired state again, so a device that
 * subscribes afterwards still finds its manifest (protocol.md §6.2). */
static void test_broker_lost_state_republished(void)
{
    CU_ASSERT_TRUE_FATAL(start_manager(state_dir, "manager-it"));
    struct mgo_mqtt *mon = mqtt_connect("it-monitor-5");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mon);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(mon, "margo/v1/devices/+/desired", 1, NULL), MGO_OK);
    struct seen_manifests before = {0};
    collect_manifests(mon, &before, 1000);
    mgo_mqtt_free(mon);
    CU_ASSERT_FATAL(before.len >= 1); /* earlier tests deployed to dev1 */
    mgo_mqtt_free(device);
    device = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_stop(&broker), 0);
    char db[400];
    snprintf(db, sizeof db, "%s/mosquitto.db", broker.dir);
    CU_ASSERT_EQUAL_FATAL(unlink(db), 0);
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_restart(&broker), 0);
    device = mqtt_connect("it-device");
    CU_ASSERT_PTR_NOT_NULL_FATAL(device);
    mon = mqtt_connect("it-monitor-6");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mon);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(mon, "margo/v1/devices/+/desired", 1, NULL), MGO_OK);
    struct seen_manifests after = {0};
    int64_t deadline = mgo_test_now_ms() + 45000; /* the manager's backoff is at most 30 s */
    while (after.len < before.len && mgo_test_now_ms() < deadline)
        collect_manifests(mon, &after, 200);
    CU_ASSERT_EQUAL(after.len, before.len);
    for (size_t i = 0; i < before.len; i++)
        CU_ASSERT_EQUAL(seen_version(&after, before.device[i], NULL), before.version[i]);
    mgo_mqtt_free(mon);
    mgo_test_manager_stop(&mgr);
}

/* margoctl deploy on a terminal asks the unanswered questions (through a pty). */
static void test_interactive_questions(void)
{
    CU_ASSERT_TRUE_FATAL(start_manager(state_dir, "manager-it"));
    int master = -1;
    pid_t pid = mgr_test_ctl_deploy_pty("hello-world", "dev1", mgr.api_base, token_path, &master);
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    /* prompts in order: greeting (keep default), port, siteId, verbose (first a wrong
     * answer, asked again), ratio (keep default) */
    char out[16384];
    size_t used = 0;
    int answered = 0;
    const char *answers[] = {"\n", "8088\n", "site-42\n", "maybe\n", "yes\n", "\n"};
    out[0] = '\0';
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    int status = 0;
    bool exited = false;
    while (mgo_test_now_ms() < deadline && !exited) {
        mgr_test_pty_read(master, 50, out, sizeof out, &used);
        /* answer each prompt once it appears */
        int prompts = 0;
        for (const char *q = out; (q = strstr(q, "value [")) != NULL; q++)
            prompts++;
        for (const char *q = out; (q = strstr(q, "try again")) != NULL; q++)
            prompts++;
        while (answered < prompts && answered < 6) {
            ssize_t w = write(master, answers[answered], strlen(answers[answered]));
            (void)w;
            answered++;
        }
        exited = waitpid(pid, &status, WNOHANG) == pid;
    }
    mgr_test_kill_unless_exited(pid, exited, &status);
    close(master);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Site id (siteId)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Identifier of the site, set once"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "regexMatch: ^site-[0-9]+$"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"maybe\" is not true or false"));
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct mgo_test_reply r;
    api("GET", "/api/v1/deployments?device=dev1", NULL, &r);
    /* the list also holds the one still being removed (the device never confirmed) */
    const struct mgo_value *list = mgo_value_get(&r.json, "deployments");
    const struct mgo_value *made = NULL;
    for (size_t i = 0; list && list->kind == MGO_V_ARRAY && i < list->as.array.len; i++) {
        if (strcmp(mgo_test_jstr(&list->as.array.items[i], "/desired"), "present") == 0)
            made = &list->as.array.items[i];
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(made);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(made, "/parameters/siteId"), "site-42");
    const struct mgo_value *port = mgo_value_pointer(made, "/parameters/port");
    CU_ASSERT_TRUE(port && port->kind == MGO_V_UINT && port->as.u == 8088);
    const struct mgo_value *verbose = mgo_value_pointer(made, "/parameters/verbose");
    CU_ASSERT_TRUE(verbose && verbose->kind == MGO_V_BOOL && verbose->as.b);
    char id[64];
    snprintf(id, sizeof id, "%s", mgo_test_jstr(made, "/id"));
    mgo_test_reply_cleanup(&r);

    /* margoctl deployment update: move to another app version and change one answer; the
     * other answers (including the immutable siteId) are kept */
    char *body = mgo_test_read_file(mgo_test_path("tests/manager/data/hello-1.0.yaml"), NULL);
    api("POST", "/api/v1/apps", body, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
    const char *upd[] = {"deployment", "update", id,          "--version",
                         "1.0",        "--set",  "port=8099", NULL};
    CU_ASSERT_EQUAL(ctl_wait(ctl_spawn(upd)), 0);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    api("GET", path, NULL, &r);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/version"), "1.0");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/parameters/siteId"), "site-42");
    port = mgo_value_pointer(&r.json, "/parameters/port");
    CU_ASSERT_TRUE(port && port->kind == MGO_V_UINT && port->as.u == 8099);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/document/spec/deploymentProfile/type"),
                           "compose");
    mgo_test_reply_cleanup(&r);
    mgo_test_manager_stop(&mgr);
}

/* The daemon binary: a bad config line fails with file:line; SIGTERM ends it cleanly. */
static void test_daemon_binary(void)
{
    char bin[512], conf[512], log[512], dir[256];
    snprintf(bin, sizeof bin, "%s/manager/margo-manager", MGO_BINARY_DIR);
    mgo_test_tmpdir("mgr", dir);
    snprintf(conf, sizeof conf, "%s/manager.conf", dir);
    snprintf(log, sizeof log, "%s/manager.log", dir);
    FILE *f = fopen(conf, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "state-dir %s/state\nbroker-url %s\napi-listen 127.0.0.1:0\nbogus-key 1\n", dir,
            mgo_test_broker_url(&broker));
    fclose(f);
    for (int round = 0; round < 2; round++) {
        if (round == 1) { /* fix the file: drop the bogus line */
            f = fopen(conf, "w");
            CU_ASSERT_PTR_NOT_NULL_FATAL(f);
            fprintf(f, "state-dir %s/state\nbroker-url %s\napi-listen 127.0.0.1:0\n", dir,
                    mgo_test_broker_url(&broker));
            fclose(f);
        }
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0) {
                dup2(fd, STDERR_FILENO);
                dup2(fd, STDOUT_FILENO);
            }
            execl(bin, bin, "--config", conf, (char *)NULL);
            _exit(127);
        }
        if (round == 0) {
            int status = 0;
            waitpid(pid, &status, 0);
            CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
            char *text = mgo_test_read_file(log, NULL);
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "manager.conf:4"));
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "bogus-key"));
            free(text);
            continue;
        }
        /* wait until it runs (its signal handlers are installed before "running") */
        bool running = false;
        int64_t deadline = mgo_test_now_ms() + WAIT_MS;
        while (!running && mgo_test_now_ms() < deadline) {
            char *text = mgo_test_read_file(log, NULL);
            running = strstr(text, "connected to") != NULL;
            free(text);
            pump(device, NULL, 20);
        }
        CU_ASSERT_TRUE(running);
        kill(pid, SIGTERM);
        int status = 0;
        deadline = mgo_test_now_ms() + WAIT_MS;
        while (waitpid(pid, &status, WNOHANG) == 0 && mgo_test_now_ms() < deadline)
            pump(device, NULL, 20);
        if (mgo_test_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char sub[512];
    snprintf(sub, sizeof sub, "%s/state", dir);
    mgo_test_rm_rf(sub);
    mgo_test_rm_rf(dir);
}

static void test_stop(void)
{
    mgo_test_manager_stop(&mgr);
    mgo_mqtt_free(device);
    device = NULL;
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(state_dir);
    mgo_test_rm_rf(state_dir2);
    curl_global_cleanup();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"start broker, manager, device", test_start},
        {"API needs the bearer token", test_auth_required},
        {"catalog add, conflict, invalid", test_catalog},
        {"devices learned, compatibility with reasons", test_devices_and_compatibility},
        {"invalid answers: 422, nothing stored or published", test_invalid_answers_publish_nothing},
        {"deploy publishes retained documents with matching digest",
         test_deploy_publishes_retained_documents},
        {"status transitions recorded in order", test_status_transitions_recorded},
        {"malformed, oversized, stale, unknown input ignored", test_bad_input_ignored},
        {"margoctl watch exit codes", test_watch_exit_codes},
        {"remove: manifest without it, watch, retained cleared", test_remove},
        {"restart keeps manifestVersion; fresh store relearns",
         test_restart_keeps_versions_and_relearns},
        {"broker outage: change stored, published after reconnect", test_broker_outage},
        {"broker lost its state: desired state published again",
         test_broker_lost_state_republished},
        {"margoctl deploy asks questions on a terminal", test_interactive_questions},
        {"daemon binary: config errors, SIGTERM", test_daemon_binary},
        {"stop", test_stop},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager integration", cases);
}
