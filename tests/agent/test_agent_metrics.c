/* test_agent_metrics.c - the agent's metrics listener (metrics-listen) with a real Mosquitto
 * and the fake Helm runtime: after a deployment installs, GET /metrics shows one apply ended
 * ok with its duration, the deployment installed, the journal confirmed by nobody (no
 * manager sends receipts here) and the MQTT session up; a broker restart counts one
 * reconnect; only /metrics is served. Values are read back over HTTP as a scraper would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "harness.h"
#include "http.h"
#include "mgo_test.h"

#define DEV "dev-metrics"
#define ID_A "22222222-2222-4222-8222-22222222222a"

static const char *DOC = "apiVersion: application.margo.org/v1alpha1\n"
                         "kind: ApplicationDeployment\n"
                         "metadata:\n"
                         "  annotations:\n"
                         "    applicationId: demo-app\n"
                         "    applicationVersion: \"1.0.0\"\n"
                         "    id: " ID_A "\n"
                         "  name: demo-alpha\n"
                         "  namespace: edge\n"
                         "  deviceId: " DEV "\n"
                         "spec:\n"
                         "  deploymentProfile:\n"
                         "    type: helm.v3\n"
                         "    components:\n"
                         "      - name: alpha\n"
                         "        properties:\n"
                         "          repository: oci://registry.example/charts/alpha\n"
                         "          revision: 1.0.0\n";

static char base[64];

/* One scrape: the value of series (name and labels), -1 when absent or not answered. */
static double scrape(const char *series)
{
    struct mgo_test_reply r;
    mgo_test_request(base, "GET", "/metrics", NULL, NULL, 10000L, &r);
    double v = -1;
    if (r.status == 200 && mgo_buf_append(&r.body, "", 1) == MGO_OK) {
        size_t n = strlen(series);
        for (const char *p = (const char *)r.body.data; p; p = strchr(p, '\n')) {
            if (*p == '\n')
                p++;
            if (strncmp(p, series, n) == 0 && p[n] == ' ') {
                v = strtod(p + n + 1, NULL);
                break;
            }
        }
    }
    mgo_test_reply_cleanup(&r);
    return v;
}

static double wait_value(const char *series, double want)
{
    double v = -1;
    int64_t deadline = mgo_test_now_ms() + 20000;
    while ((v = scrape(series)) != want && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    return v;
}

static void test_agent_metrics(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char dir[256];
    mgo_test_tmpdir("agent-metrics", dir);
    char state_dir[512], log[512], rel[512], listen[64];
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    mgo_test_fake_helm_env(dir, "success", log, rel);
    int port = mgo_test_free_port();
    CU_ASSERT_FATAL(port > 0);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);

    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "helm-command", MGO_FAKE_HELM, "compose-command", "mgo-no-compose-here",
                 "reconcile-interval", "3600", "settle-ms", "100", "backoff-min-ms", "100",
                 "backoff-max-ms", "500", "metrics-listen", listen, NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager");
    h_agent_start(&agent);
    CU_ASSERT_EQUAL(wait_value("margo_agent_mqtt_connected", 1), 1);
    CU_ASSERT_EQUAL(scrape("margo_agent_runtime_operations_total{operation=\"apply\","
                           "result=\"ok\"}"),
                    0);
    CU_ASSERT_EQUAL(scrape("margo_agent_deployments{state=\"installed\"}"), 0);

    char digest[MGO_DIGEST_STR_SIZE];
    h_publish_doc(mgr, DEV, ID_A, DOC, digest);
    const char *ids[] = {ID_A};
    const char *dgs[] = {digest};
    h_publish_manifest(mgr, DEV, 1, 1, ids, dgs);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000));
    CU_ASSERT_EQUAL(
        wait_value("margo_agent_runtime_operations_total{operation=\"apply\",result=\"ok\"}", 1),
        1);
    CU_ASSERT_EQUAL(scrape("margo_agent_runtime_operation_duration_seconds_count{operation="
                           "\"apply\"}"),
                    1);
    CU_ASSERT_EQUAL(wait_value("margo_agent_deployments{state=\"installed\"}", 1), 1);
    /* pending, installing, installed: journaled, and no manager confirms them here */
    CU_ASSERT(wait_value("margo_agent_journal_depth", 3) >= 3);
    CU_ASSERT_EQUAL(scrape("margo_agent_mqtt_reconnects_total"), 0);

    CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    CU_ASSERT_EQUAL(wait_value("margo_agent_mqtt_reconnects_total", 1), 1);
    CU_ASSERT_EQUAL(wait_value("margo_agent_mqtt_connected", 1), 1);

    struct mgo_test_reply r;
    mgo_test_request(base, "GET", "/api/v1/devices", NULL, NULL, 10000L, &r);
    CU_ASSERT_EQUAL(r.status, 404);
    mgo_test_reply_cleanup(&r);
    mgo_test_request(base, "POST", "/metrics", NULL, "x", 10000L, &r);
    CU_ASSERT_EQUAL(r.status, 405);
    mgo_test_reply_cleanup(&r);

    h_agent_stop(&agent);
    CU_ASSERT(!mgo_test_port_open(port)); /* the listener went with the agent */
    h_agent_cleanup(&agent);
    h_monitor_stop(&mon);
    mgo_mqtt_free(mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(dir);
}

static void test_bad_listen_address(void)
{
    char dir[256];
    mgo_test_tmpdir("agent-metrics-bad", dir);
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", "tcp://127.0.0.1:1", "state-dir", dir,
                 "helm-command", MGO_FAKE_HELM, "compose-command", "mgo-no-compose-here",
                 "metrics-listen", "localhost:9101", NULL);
    struct mgo_agent *a = NULL;
    CU_ASSERT_EQUAL(mgo_agent_new(&agent.cfg, &a), MGO_ERR_INVALID);
    CU_ASSERT_PTR_NULL(a);
    h_agent_cleanup(&agent);
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"metrics listener: operations, deployments, journal, reconnects", test_agent_metrics},
        {"metrics-listen must be ADDRESS:PORT", test_bad_listen_address},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent metrics", cases);
}
