/* test_agent_http.c - `margo-agent --transport http` managed by the real margo-manager
 * through its southbound Margo HTTP API (mutual TLS with X.509-SVIDs minted by
 * broker-config/svid.sh): capabilities enrolment, a deployment made on the northbound API
 * installed by the agent (fake-helm runtime, tests/agent/fake-helm) and seen `installed` with
 * adoptedManifestVersion on the northbound API, then removed; a client that is not on the
 * accepted-client list gets 403 and installs nothing; a client whose SVID names another WFM
 * refuses the manager's certificate (the SPIFFE peer check); the manager's 429 Retry-After
 * is waited for; statuses made during a manager outage are delivered afterwards; one rollout
 * covers an HTTP and an MQTT device. The manager needs its broker (Mosquitto); the HTTP agent
 * uses none. Each test has its own manager, broker and folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "harness.h"
#include "http.h"
#include "manager_thread.h"
#include "mgo/log.h"
#include "mgo_test.h"

#define DEV "dev-h1"
#define DEV_DENIED "dev-h2"
#define DEV_OTHER_WFM "dev-h3"
#define TOKEN "agent-http-token-0123456789abcdef"
#define WAIT_MS 30000

static const char app_yaml[] = "apiVersion: margo.org/v1-alpha1\n"
                               "kind: ApplicationDescription\n"
                               "id: %s\n"
                               "metadata:\n"
                               "  name: HTTP transport app\n"
                               "  version: \"1.0\"\n"
                               "  catalog:\n"
                               "    organization:\n"
                               "      - name: Example Org\n"
                               "deploymentProfiles:\n"
                               "  - type: helm\n"
                               "    id: http-helm\n"
                               "    components:\n"
                               "      - name: %s\n"
                               "        properties:\n"
                               "          repository: oci://registry.example.com/charts/web\n"
                               "          revision: 1.0.0\n"
                               "parameters:\n"
                               "  replicas:\n"
                               "    value: 1\n"
                               "    targets:\n"
                               "      - pointer: replicas\n"
                               "        components: [%s]\n"
                               "configuration:\n"
                               "  sections:\n"
                               "    - name: General\n"
                               "      settings:\n"
                               "        - parameter: replicas\n"
                               "          name: Replicas\n"
                               "          schema: count\n"
                               "  schema:\n"
                               "    - name: count\n"
                               "      dataType: integer\n"
                               "      minValue: 1\n"
                               "      allowEmpty: false\n";

/* Adds app id with one Helm component named comp to the catalog. */
static void add_app(const char *id, const char *comp);

static struct mgo_test_broker broker;
static struct mgo_test_manager mgr;
static char g_dir[256], g_pki[320], g_token[320], g_mgr_dir[320], g_fake_helm[512];
static char g_helm_log[512], g_helm_releases[512], g_wfm_url[64], g_listen[64];
static char g_ca[400], g_wfm_crt[400], g_wfm_key[400];

static void api(const char *method, const char *path, const char *body, struct mgo_test_reply *r)
{
    const char *headers[] = {"Authorization: Bearer " TOKEN, NULL};
    mgo_test_request(mgr.api_base, method, path, headers, body, 30000L, r);
}

static void cleanup_all(void)
{
    mgo_test_manager_stop(&mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_log_capture_stop();
    if (g_dir[0])
        mgo_test_rm_rf(g_dir);
    g_dir[0] = '\0';
}

/* rate: the manager's margo-api-rate (requests per client a minute); 0 = its default.
 * log_level: the process's, set by the manager before any thread runs. */
static void setup(int64_t rate, const char *log_level)
{
    /* the log sink is set before any thread runs, and reset after they all ended */
    mgo_test_log_capture_start(4u << 20);
    static bool registered;
    if (!registered)
        atexit(cleanup_all);
    registered = true;
    mgo_test_tmpdir("agent-http", g_dir);
    snprintf(g_pki, sizeof g_pki, "%s/pki", g_dir);
    snprintf(g_token, sizeof g_token, "%s/token", g_dir);
    snprintf(g_mgr_dir, sizeof g_mgr_dir, "%s/manager", g_dir);
    snprintf(g_fake_helm, sizeof g_fake_helm, "%s", mgo_test_path("tests/agent/fake-helm"));
    CU_ASSERT_FATAL(mgo_test_write_file(g_token, TOKEN "\n"));
    CU_ASSERT_FATAL(mgo_test_sh("sh '%s' --trust-domain example.org --wfm-id wfm-1 --client %s "
                                "--client %s '%s' >/dev/null 2>&1",
                                mgo_test_path("broker-config/svid.sh"), DEV, DEV_DENIED,
                                g_pki) == 0);
    /* the same trust domain and CA, a client of another WFM */
    CU_ASSERT_FATAL(mgo_test_sh("sh '%s' --trust-domain example.org --wfm-id wfm-2 --client %s "
                                "'%s' >/dev/null 2>&1",
                                mgo_test_path("broker-config/svid.sh"), DEV_OTHER_WFM, g_pki) == 0);
    snprintf(g_ca, sizeof g_ca, "%s/svid-ca.crt", g_pki);
    snprintf(g_wfm_crt, sizeof g_wfm_crt, "%s/wfm.crt", g_pki);
    snprintf(g_wfm_key, sizeof g_wfm_key, "%s/wfm.key", g_pki);
    mgo_test_fake_helm_env(g_dir, "success", g_helm_log, g_helm_releases);

    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), g_mgr_dir, "margo-manager-test",
                          g_token, log_level);
    mgr.cfg.margo_api_listen = g_listen; /* the kernel picks the port: no race with others */
    snprintf(g_listen, sizeof g_listen, "127.0.0.1:0");
    mgr.cfg.margo_api_cert = g_wfm_crt;
    mgr.cfg.margo_api_key = g_wfm_key;
    mgr.cfg.margo_api_client_ca = g_ca;
    mgr.cfg.trust_domain = "example.org";
    mgr.cfg.wfm_id = "wfm-1";
    if (rate > 0)
        mgr.cfg.margo_api_rate = rate;
    CU_ASSERT_FATAL(mgo_test_manager_start(&mgr, true) == MGO_OK);
    snprintf(g_wfm_url, sizeof g_wfm_url, "https://127.0.0.1:%u",
             (unsigned)mgo_manager_margo_api_port(mgr.m));
}

static void agent_init(struct h_agent *a, const char *dev, const char *state_dir)
{
    char crt[512], key[512];
    snprintf(crt, sizeof crt, "%s/clients/%s.crt", g_pki, dev);
    snprintf(key, sizeof key, "%s/clients/%s.key", g_pki, dev);
    h_agent_init(a, "device-id", dev, "transport", "http", "wfm-url", g_wfm_url, "cert-file", crt,
                 "key-file", key, "ca-file", g_ca, "state-dir", state_dir, "helm-command",
                 g_fake_helm, "compose-command", "mgo-no-compose-here", "poll-interval", "1",
                 "backoff-min-ms", "100", "backoff-max-ms", "1000", NULL);
}

/* Polls GET path until the JSON string at pointer equals want. */
static bool wait_json(const char *path, const char *pointer, const char *want)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    do {
        struct mgo_test_reply r;
        api("GET", path, NULL, &r);
        bool ok = r.status == 200 && strcmp(mgo_test_jstr(&r.json, pointer), want) == 0;
        mgo_test_reply_cleanup(&r);
        if (ok)
            return true;
        mgo_test_sleep_ms(200);
    } while (mgo_test_now_ms() < deadline);
    fprintf(stderr, "%s %s never became %s\n", path, pointer, want);
    return false;
}

static bool log_has(const char *needle)
{
    bool found = strstr(mgo_test_log_capture_lock(NULL), needle) != NULL;
    mgo_test_log_capture_unlock();
    return found;
}

static size_t log_count(const char *needle)
{
    size_t n = 0;
    for (const char *p = mgo_test_log_capture_lock(NULL); (p = strstr(p, needle)) != NULL; p++)
        n++;
    mgo_test_log_capture_unlock();
    return n;
}

static bool wait_log(const char *needle)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (!log_has(needle) && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    return log_has(needle);
}

static void add_app(const char *id, const char *comp)
{
    char yaml[sizeof app_yaml + 128];
    snprintf(yaml, sizeof yaml, app_yaml, id, comp, comp);
    struct mgo_test_reply r;
    api("POST", "/api/v1/apps", yaml, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
}

/* Deploys app on DEV; id_out receives the deployment id, the result is its manifestVersion. */
static uint64_t deploy(const char *app, char id_out[64])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"app\": \"%s\", \"devices\": [\"" DEV "\"], \"parameters\": {\"replicas\": 3}}",
             app);
    struct mgo_test_reply r;
    api("POST", "/api/v1/deployments", body, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    snprintf(id_out, 64, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
    uint64_t version = mgo_test_ju64(&r.json, "/deployments/0/manifestVersion");
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_FATAL(id_out[0] != '\0');
    return version;
}

static void test_deploy_and_remove(void)
{
    setup(0, "info"); /* the agent's info lines say where documents came from */
    struct mgo_test_reply r;
    api("PUT", "/api/v1/clients/" DEV, "{}", &r);
    CU_ASSERT(r.status >= 200 && r.status <= 299);
    mgo_test_reply_cleanup(&r);

    char state_dir[320];
    snprintf(state_dir, sizeof state_dir, "%s/agent", g_dir);
    struct h_agent agent;
    agent_init(&agent, DEV, state_dir);
    h_agent_start(&agent);

    /* enrolment: the manager knows the device from PUT /api/v1/capabilities */
    CU_ASSERT_FATAL(wait_json("/api/v1/devices/" DEV, "/capabilities/properties/id", DEV));

    add_app("http-app", "http-web");
    add_app("http-app2", "http-api");
    char id[64], id2[64], path[128], path2[128];
    uint64_t version = deploy("http-app", id);
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);

    /* installed by the agent, reported over HTTP, seen on the northbound API */
    CU_ASSERT_FATAL(wait_json(path, "/state", "installed"));
    api("GET", path, NULL, &r);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/status/adoptedManifestVersion"), version);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/status/components/0/name"), "http-web");
    mgo_test_reply_cleanup(&r);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-web\037") == 1);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "replicas=3") >= 1);
    /* a first sync: every document new, so the bundle */
    CU_ASSERT(log_has("verified (1 deployments; documents from the bundle)"));

    /* one new deployment of two: fetched alone; the first is not touched */
    uint64_t version2 = deploy("http-app2", id2);
    snprintf(path2, sizeof path2, "/api/v1/deployments/%s", id2);
    CU_ASSERT_FATAL(wait_json(path2, "/state", "installed"));
    CU_ASSERT(log_has("verified (2 deployments; new documents fetched one by one)"));
    api("GET", path2, NULL, &r);
    CU_ASSERT_EQUAL(mgo_test_ju64(&r.json, "/status/adoptedManifestVersion"), version2);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-api\037") == 1);

    /* reconfigure: same deployment id, a new document (digest); helm upgrades with the new
     * value and the status names the new manifest */
    api("PATCH", path, "{\"parameters\": {\"replicas\": 5}}", &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    uint64_t version3 = mgo_test_ju64(&r.json, "/manifestVersion");
    mgo_test_reply_cleanup(&r);
    CU_ASSERT(version3 > version2);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool adopted = false;
    while (!adopted && mgo_test_now_ms() < deadline) {
        api("GET", path, NULL, &r);
        adopted = strcmp(mgo_test_jstr(&r.json, "/state"), "installed") == 0 &&
                  mgo_test_ju64(&r.json, "/status/adoptedManifestVersion") == version3;
        mgo_test_reply_cleanup(&r);
        if (!adopted)
            mgo_test_sleep_ms(200);
    }
    CU_ASSERT(adopted);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "replicas=5") == 1);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-web\037") == 2);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-api\037") == 1);

    /* a restart: the first poll (no ETag) gets the held manifest; nothing is reinstalled */
    h_agent_stop(&agent);
    h_agent_start(&agent);
    mgo_test_sleep_ms(2500);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-web\037") == 2);

    /* removal */
    api("DELETE", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 202);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT(wait_json(path, "/desired", "removed"));
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "uninstall\037http-web\037") == 1);
    /* the restart emptied the in-memory document cache: the bundle again (a 1 of 1 change) */
    CU_ASSERT_EQUAL(log_count("verified (1 deployments; documents from the bundle)"), 2u);
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-api\037") == 1);
    api("DELETE", path2, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 202);
    mgo_test_reply_cleanup(&r);
    CU_ASSERT(wait_json(path2, "/desired", "removed"));
    CU_ASSERT(mgo_test_count_lines(g_helm_log, "uninstall\037http-api\037") == 1);
    h_agent_cleanup(&agent);
    cleanup_all();
}

static void test_refused_clients(void)
{
    setup(0, "warn");
    /* a valid SVID that is not on the accepted-client list: 403, nothing installed */
    char state_dir[320];
    snprintf(state_dir, sizeof state_dir, "%s/agent-denied", g_dir);
    struct h_agent denied;
    agent_init(&denied, DEV_DENIED, state_dir);
    h_agent_start(&denied);
    CU_ASSERT(wait_log("wfm: poll: http 403"));
    CU_ASSERT(log_has("accepted-client list"));
    h_agent_cleanup(&denied);
    struct mgo_test_reply r;
    api("GET", "/api/v1/devices/" DEV_DENIED, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    mgo_test_reply_cleanup(&r);

    /* an SVID of another WFM: the agent expects spiffe://example.org/margo/wfm/wfm-2 and
     * refuses the manager's certificate (same CA, other SPIFFE ID) */
    snprintf(state_dir, sizeof state_dir, "%s/agent-other", g_dir);
    struct h_agent other;
    agent_init(&other, DEV_OTHER_WFM, state_dir);
    h_agent_start(&other);
    CU_ASSERT(wait_log(
        "wfm: poll: no answer: SSL certificate problem: application verification failure"));
    h_agent_cleanup(&other);

    /* a device id that is not the SVID's client id stops the start */
    struct h_agent wrong;
    snprintf(state_dir, sizeof state_dir, "%s/agent-wrong", g_dir);
    agent_init(&wrong, DEV, state_dir);
    free(wrong.cfg.device_id);
    wrong.cfg.device_id = strdup("dev-not-h1");
    struct mgo_agent *a = NULL;
    CU_ASSERT(mgo_agent_new(&wrong.cfg, &a) == MGO_ERR_INVALID);
    CU_ASSERT(log_has("is not device-id dev-not-h1"));
    h_agent_cleanup(&wrong);
    cleanup_all();
}

/* The manager's rate limit answers 429 with Retry-After (tens of seconds at 2 requests a
 * minute); the agent, polling every second and backing off at most 1 s otherwise, must not
 * ask again before it elapses. */
static void test_retry_after(void)
{
    setup(2, "warn");
    struct mgo_test_reply r;
    api("PUT", "/api/v1/clients/" DEV, "{}", &r);
    CU_ASSERT(r.status >= 200 && r.status <= 299);
    mgo_test_reply_cleanup(&r);
    char state_dir[320];
    snprintf(state_dir, sizeof state_dir, "%s/agent-rate", g_dir);
    struct h_agent agent;
    agent_init(&agent, DEV, state_dir);
    h_agent_start(&agent);
    CU_ASSERT(wait_log("wfm: poll: http 429"));
    mgo_test_sleep_ms(6000);
    CU_ASSERT_EQUAL(log_count("wfm: poll: http 429"), 1u);
    h_agent_cleanup(&agent);
    cleanup_all();
}

/* How many entries of the deployment's history (northbound) have state st. */
static size_t history_count(const char *path, const char *st)
{
    struct mgo_test_reply r;
    api("GET", path, NULL, &r);
    size_t n = 0;
    const struct mgo_value *h = mgo_value_get(&r.json, "history");
    for (size_t i = 0; h && h->kind == MGO_V_ARRAY && i < h->as.array.len; i++)
        if (strcmp(mgo_test_jstr(&h->as.array.items[i], "/state"), st) == 0)
            n++;
    mgo_test_reply_cleanup(&r);
    return n;
}

/* Statuses made while the WFM is away stay in the journal and are delivered, in order, once
 * it is back: a drift repair (the Helm release deleted by hand) during a manager outage. */
static void test_wfm_outage(void)
{
    setup(0, "warn");
    struct mgo_test_reply r;
    api("PUT", "/api/v1/clients/" DEV, "{}", &r);
    CU_ASSERT(r.status >= 200 && r.status <= 299);
    mgo_test_reply_cleanup(&r);
    char state_dir[320];
    snprintf(state_dir, sizeof state_dir, "%s/agent-outage", g_dir);
    struct h_agent agent;
    agent_init(&agent, DEV, state_dir);
    agent.cfg.reconcile_interval_s = 1;
    h_agent_start(&agent);
    CU_ASSERT_FATAL(wait_json("/api/v1/devices/" DEV, "/capabilities/properties/id", DEV));
    add_app("http-app", "http-web");
    char id[64], path[128];
    deploy("http-app", id);
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    CU_ASSERT_FATAL(wait_json(path, "/state", "installed"));
    CU_ASSERT_EQUAL(history_count(path, "installed"), 1u);

    mgo_test_manager_stop(&mgr);
    CU_ASSERT_FATAL(mgo_test_sh("rm -f '%s/http-web'", g_helm_releases) == 0);
    /* the repair runs and its statuses cannot be delivered */
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-web\037") < 2 &&
           mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT_FATAL(mgo_test_count_lines(g_helm_log, "upgrade\037--install\037http-web\037") == 2);
    CU_ASSERT(wait_log("wfm: status not delivered"));

    /* the manager back on the same ports and store: both statuses arrive */
    mgr.cfg.log_level = NULL; /* set already; the agent's threads read it now */
    /* the port the agent knows (the manager is stopped: it is free, and nothing else here
     * binds fixed ports) */
    snprintf(g_listen, sizeof g_listen, "127.0.0.1:%s", strrchr(g_wfm_url, ':') + 1);
    CU_ASSERT_FATAL(mgo_test_manager_start(&mgr, true) == MGO_OK);
    deadline = mgo_test_now_ms() + WAIT_MS;
    while (history_count(path, "installed") < 2 && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(200);
    CU_ASSERT_EQUAL(history_count(path, "installed"), 2u);
    CU_ASSERT(history_count(path, "installing") >= 2);
    CU_ASSERT(wait_json(path, "/state", "installed"));
    h_agent_cleanup(&agent);
    cleanup_all();
}

/* One fleet: a deployment request naming an HTTP device and an MQTT device installs on both;
 * the HTTP device's statuses also reach the MQTT status topic (the manager's copy). */
static void test_mixed_fleet(void)
{
    setup(0, "warn");
    struct mgo_test_reply r;
    api("PUT", "/api/v1/clients/" DEV, "{}", &r);
    CU_ASSERT(r.status >= 200 && r.status <= 299);
    mgo_test_reply_cleanup(&r);
    char http_dir[320], mqtt_dir[320];
    snprintf(http_dir, sizeof http_dir, "%s/agent-mixed-http", g_dir);
    snprintf(mqtt_dir, sizeof mqtt_dir, "%s/agent-mixed-mqtt", g_dir);
    struct h_agent http_agent, mqtt_agent;
    agent_init(&http_agent, DEV, http_dir);
    h_agent_init(&mqtt_agent, "device-id", "dev-m1", "broker-url", mgo_test_broker_url(&broker),
                 "state-dir", mqtt_dir, "helm-command", g_fake_helm, "compose-command",
                 "mgo-no-compose-here", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    h_agent_start(&http_agent);
    h_agent_start(&mqtt_agent);
    CU_ASSERT_FATAL(wait_json("/api/v1/devices/" DEV, "/capabilities/properties/id", DEV));
    CU_ASSERT_FATAL(wait_json("/api/v1/devices/dev-m1", "/capabilities/properties/id", "dev-m1"));
    add_app("http-app", "http-web");
    api("POST", "/api/v1/deployments",
        "{\"app\": \"http-app\", \"devices\": [\"" DEV "\", \"dev-m1\"]}", &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    char paths[2][128];
    for (int i = 0; i < 2; i++) {
        char pointer[32];
        snprintf(pointer, sizeof pointer, "/deployments/%d/id", i);
        snprintf(paths[i], sizeof paths[i], "/api/v1/deployments/%s",
                 mgo_test_jstr(&r.json, pointer));
    }
    char http_id[64] = "";
    for (int i = 0; i < 2; i++) {
        char pointer[32];
        snprintf(pointer, sizeof pointer, "/deployments/%d/device", i);
        if (strcmp(mgo_test_jstr(&r.json, pointer), DEV) == 0) {
            snprintf(pointer, sizeof pointer, "/deployments/%d/id", i);
            snprintf(http_id, sizeof http_id, "%s", mgo_test_jstr(&r.json, pointer));
        }
    }
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_FATAL(http_id[0] != '\0');
    CU_ASSERT(wait_json(paths[0], "/state", "installed"));
    CU_ASSERT(wait_json(paths[1], "/state", "installed"));
    /* monitors on MQTT see the HTTP device's status too */
    CU_ASSERT(h_monitor_wait(&mon, http_id, MGO_STATE_INSTALLED, WAIT_MS));
    for (int i = 0; i < 2; i++) {
        api("DELETE", paths[i], NULL, &r);
        CU_ASSERT_EQUAL(r.status, 202);
        mgo_test_reply_cleanup(&r);
    }
    CU_ASSERT(wait_json(paths[0], "/desired", "removed"));
    CU_ASSERT(wait_json(paths[1], "/desired", "removed"));
    h_monitor_stop(&mon);
    h_agent_cleanup(&http_agent);
    h_agent_cleanup(&mqtt_agent);
    cleanup_all();
}

/* SIGHUP reload of the WFM TLS files: an agent started with a CA that does not sign the
 * manager's certificate cannot poll; a reload pointing ca-file at the right CA makes the next
 * request succeed (the device enrols). A reload whose cert-file is another device's SVID is
 * refused and changes nothing. */
static void test_tls_reload(void)
{
    setup(0, "warn");
    struct mgo_test_reply r;
    api("PUT", "/api/v1/clients/" DEV, "{}", &r);
    CU_ASSERT(r.status >= 200 && r.status <= 299);
    mgo_test_reply_cleanup(&r);
    /* a second CA, the same names: it does not sign the manager's certificate */
    char pki2[400], ca2[440];
    snprintf(pki2, sizeof pki2, "%s/pki2", g_dir);
    CU_ASSERT_FATAL(mgo_test_sh("sh '%s' --trust-domain example.org --wfm-id wfm-1 --client %s "
                                "'%s' >/dev/null 2>&1",
                                mgo_test_path("broker-config/svid.sh"), DEV, pki2) == 0);
    snprintf(ca2, sizeof ca2, "%s/svid-ca.crt", pki2);
    char state_dir[320], crt[512], key[512], denied_crt[512], denied_key[512];
    snprintf(state_dir, sizeof state_dir, "%s/agent-reload", g_dir);
    snprintf(crt, sizeof crt, "%s/clients/%s.crt", g_pki, DEV);
    snprintf(key, sizeof key, "%s/clients/%s.key", g_pki, DEV);
    snprintf(denied_crt, sizeof denied_crt, "%s/clients/%s.crt", g_pki, DEV_DENIED);
    snprintf(denied_key, sizeof denied_key, "%s/clients/%s.key", g_pki, DEV_DENIED);
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "transport", "http", "wfm-url", g_wfm_url, "cert-file",
                 crt, "key-file", key, "ca-file", ca2, "state-dir", state_dir, "helm-command",
                 g_fake_helm, "compose-command", "mgo-no-compose-here", "poll-interval", "1",
                 "backoff-min-ms", "100", "backoff-max-ms", "1000", NULL);
    h_agent_start(&agent);
    CU_ASSERT(wait_log("wfm: poll: no answer: SSL certificate problem"));
    api("GET", "/api/v1/devices/" DEV, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    mgo_test_reply_cleanup(&r);

    /* another device's SVID: refused, the running files kept */
    char *bad[] = {"margo-agent", "--device-id", DEV,        "--transport", "http",     "--wfm-url",
                   g_wfm_url,     "--cert-file", denied_crt, "--key-file",  denied_key, "--ca-file",
                   g_ca,          "--state-dir", state_dir,  NULL};
    mgo_agent_set_reload_args(agent.agent, (int)(sizeof bad / sizeof bad[0]) - 1, bad);
    mgo_agent_reload(agent.agent);
    CU_ASSERT(wait_log("reload: the WFM TLS files are unchanged"));
    CU_ASSERT(log_has("is not device-id " DEV));
    size_t failures = log_count("wfm: poll: no answer: SSL certificate problem");
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (log_count("wfm: poll: no answer: SSL certificate problem") == failures &&
           mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT(log_count("wfm: poll: no answer: SSL certificate problem") > failures);

    /* the right CA: the next request succeeds */
    char *good[] = {"margo-agent", "--device-id", DEV,       "--transport", "http", "--wfm-url",
                    g_wfm_url,     "--cert-file", crt,       "--key-file",  key,    "--ca-file",
                    g_ca,          "--state-dir", state_dir, NULL};
    mgo_agent_set_reload_args(agent.agent, (int)(sizeof good / sizeof good[0]) - 1, good);
    mgo_agent_reload(agent.agent);
    CU_ASSERT(wait_json("/api/v1/devices/" DEV, "/capabilities/properties/id", DEV));
    h_agent_cleanup(&agent);
    cleanup_all();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"deploy, restart and remove through the southbound API", test_deploy_and_remove},
        {"refused clients and a WFM with another identity", test_refused_clients},
        {"Retry-After of the manager's rate limit", test_retry_after},
        {"statuses kept through a WFM outage", test_wfm_outage},
        {"one rollout over an HTTP and an MQTT device", test_mixed_fleet},
        {"SIGHUP reload of the WFM TLS files", test_tls_reload},
        {NULL, NULL},
    };
    mgo_test_add_suite("security.agent_http", cases);
}
