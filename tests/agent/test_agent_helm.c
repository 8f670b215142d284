/* test_agent_helm.c - the whole agent against a real Mosquitto with the Helm runtime driven
 * through tests/agent/fake-helm (no cluster): deploy, drift repair, offline convergence
 * across a broker restart, restart without reinstall, anti-rollback, digest mismatch, and a
 * failing chart. Statuses are checked at a separate subscriber. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "harness.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "state.h"

#define DEV "dev-helm"
#define ID_A "11111111-1111-4111-8111-11111111111a"
#define ID_B "11111111-1111-4111-8111-11111111111b"
#define ID_C "11111111-1111-4111-8111-11111111111c"
#define ID_D "11111111-1111-4111-8111-11111111111d"

static const char *doc_yaml(char *out, size_t n, const char *id, const char *release,
                            const char *rev, int replicas)
{
    /* the application version the manager writes (protocol.md 3.3): the chart revision here;
     * "delta" is deployed as an older manager did, without one */
    char version[96] = "";
    if (strcmp(release, "delta") != 0)
        snprintf(version, sizeof version, "    applicationVersion: \"%s\"\n", rev);
    snprintf(out, n,
             "apiVersion: application.margo.org/v1alpha1\n"
             "kind: ApplicationDeployment\n"
             "metadata:\n"
             "  annotations:\n"
             "    applicationId: demo-app\n"
             "%s"
             "    id: %s\n"
             "  name: demo-%s\n"
             "  namespace: edge\n"
             "  deviceId: " DEV "\n"
             "spec:\n"
             "  deploymentProfile:\n"
             "    type: helm.v3\n"
             "    components:\n"
             "      - name: %s\n"
             "        properties:\n"
             "          repository: oci://registry.example/charts/%s\n"
             "          revision: %s\n"
             "          wait: true\n"
             "          timeout: 1m0s\n"
             "  parameters:\n"
             "    replicas:\n"
             "      value: %d\n"
             "      targets:\n"
             "        - pointer: replicas\n"
             "          components: [%s]\n",
             version, id, release, release, release, rev, replicas, release);
    return out;
}

struct pub_doc {
    char digest[MGO_DIGEST_STR_SIZE];
};

static void publish_doc(struct mgo_mqtt *m, const char *id, const char *release, const char *rev,
                        int replicas, struct pub_doc *out)
{
    char yaml[2048];
    h_publish_doc(m, DEV, id, doc_yaml(yaml, sizeof yaml, id, release, rev, replicas), out->digest);
}

static void clear_doc(struct mgo_mqtt *m, const char *id)
{
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, DEV, id, t, sizeof t) ==
                    MGO_OK);
    h_publish(m, t, "", 0);
}

static const struct h_status *last_of(const struct h_monitor *mon, const char *dep)
{
    for (size_t i = mon->len; i > 0; i--)
        if (strcmp(mon->items[i - 1].deployment_id, dep) == 0)
            return &mon->items[i - 1];
    return NULL;
}

static void test_agent_helm_lifecycle(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char dir[256];
    mgo_test_tmpdir("agent-helm", dir);
    char state_dir[512], log[512], rel[512];
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    mgo_test_fake_helm_env(dir, "success", log, rel);

    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "helm-command", MGO_FAKE_HELM, "compose-command", "mgo-no-compose-here",
                 "reconcile-interval", "1", "settle-ms", "200", "backoff-min-ms", "100",
                 "backoff-max-ms", "500", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager");

    /* v1: A, C, D */
    struct pub_doc a1, c1, d1;
    publish_doc(mgr, ID_A, "alpha", "1.0.0", 1, &a1);
    publish_doc(mgr, ID_C, "gamma", "1.0.0", 1, &c1);
    publish_doc(mgr, ID_D, "delta", "1.0.0", 1, &d1);
    const char *ids1[] = {ID_A, ID_C, ID_D};
    const char *dg1[] = {a1.digest, c1.digest, d1.digest};
    h_publish_manifest(mgr, DEV, 1, 3, ids1, dg1);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_D, MGO_STATE_INSTALLED, 20000));
    h_monitor_pump(&mon, 300);
    const struct h_status *sa = last_of(&mon, ID_A);
    CU_ASSERT_FATAL(sa != NULL);
    CU_ASSERT_EQUAL(sa->state, MGO_STATE_INSTALLED);
    CU_ASSERT_EQUAL(sa->adopted, 1);
    /* pending -> installing -> installed for A, in that order */
    int seen = 0;
    for (size_t i = 0; i < mon.len; i++) {
        if (strcmp(mon.items[i].deployment_id, ID_A) != 0)
            continue;
        if (seen == 0 && mon.items[i].state == MGO_STATE_PENDING)
            seen = 1;
        else if (seen == 1 && mon.items[i].state == MGO_STATE_INSTALLING)
            seen = 2;
        else if (seen == 2 && mon.items[i].state == MGO_STATE_INSTALLED)
            seen = 3;
    }
    CU_ASSERT_EQUAL(seen, 3);
    /* every status names its app, from the document alone (protocol.md 3.4) */
    for (size_t i = 0; i < mon.len; i++) {
        const struct h_status *hs = &mon.items[i];
        CU_ASSERT_TRUE(hs->has_app);
        CU_ASSERT_STRING_EQUAL(hs->app_id, "demo-app");
        if (strcmp(hs->deployment_id, ID_A) == 0) {
            CU_ASSERT_STRING_EQUAL(hs->app_version, "1.0.0");
            CU_ASSERT_STRING_EQUAL(hs->app_name, "demo-alpha");
        } else if (strcmp(hs->deployment_id, ID_D) == 0) {
            CU_ASSERT_STRING_EQUAL(hs->app_version, ""); /* an older manager's document */
            CU_ASSERT_STRING_EQUAL(hs->app_name, "demo-delta");
        }
    }
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1f"
                                              "alpha\x1f"),
                    1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "--set\x1freplicas=1"), 3);

    /* drift: the release of C disappears behind the agent's back; it comes back */
    char p[600];
    snprintf(p, sizeof p, "%s/gamma", rel);
    CU_ASSERT_FATAL(unlink(p) == 0);
    CU_ASSERT(h_monitor_wait(&mon, ID_C, MGO_STATE_INSTALLED, 15000));
    CU_ASSERT(access(p, F_OK) == 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1fgamma\x1f"), 2);

    /* nothing lost: statuses produced while the broker is down (a drift repair) are
     * journaled and published, in order, once it is back */
    struct h_monitor pmon;
    h_monitor_start_persistent(&pmon, mgo_test_broker_url(&broker), DEV, "monitor-persistent");
    h_monitor_pump(&pmon, 300);
    pmon.len = 0;
    mgo_mqtt_free(pmon.m); /* away (session kept by the broker) */
    pmon.m = NULL;
    CU_ASSERT_FATAL(mgo_test_broker_stop(&broker) == 0);
    CU_ASSERT_FATAL(unlink(p) == 0);
    for (int i = 0; i < 50 && access(p, F_OK) != 0; i++)
        usleep(100 * 1000); /* the agent repairs it while offline */
    CU_ASSERT(access(p, F_OK) == 0);
    usleep(300 * 1000);
    CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    h_monitor_start_persistent(&pmon, mgo_test_broker_url(&broker), DEV, "monitor-persistent");
    uint64_t c_seq = last_of(&mon, ID_C)->seq; /* the last status before the outage */
    size_t inst = 0, ok = 0;
    for (int round = 0; round < 75 && ok == 0; round++) {
        h_monitor_pump(&pmon, 200);
        inst = ok = 0;
        for (size_t i = 0; i < pmon.len; i++) {
            const struct h_status *hs = &pmon.items[i];
            if (strcmp(hs->deployment_id, ID_C) != 0 || hs->seq <= c_seq)
                continue;
            if (hs->state == MGO_STATE_INSTALLING && hs->seq == c_seq + 1)
                inst++;
            if (hs->state == MGO_STATE_INSTALLED && hs->seq == c_seq + 2 && inst > 0)
                ok++;
        }
    }
    CU_ASSERT(inst >= 1 && ok >= 1); /* installing then installed, both delivered, in order */
    CU_ASSERT_EQUAL(h_monitor_order_violations(&pmon), 0);
    h_monitor_stop(&pmon);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1fgamma\x1f"), 3);

    /* offline: the agent goes away, the broker restarts, the desired state changes twice
     * (B added then deleted, D deleted, A updated twice) */
    h_agent_stop(&agent);
    h_monitor_pump(&mon, 200);
    size_t statuses_before = mon.len;
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    h_monitor_pump(&mon, 300); /* retained statuses arrive again */
    mon.len = 0;
    mgr = h_client(mgo_test_broker_url(&broker), "manager");
    struct pub_doc a2, b2, a3;
    publish_doc(mgr, ID_A, "alpha", "2.0.0", 2, &a2);
    publish_doc(mgr, ID_B, "beta", "1.0.0", 1, &b2);
    const char *ids2[] = {ID_A, ID_B, ID_C, ID_D};
    const char *dg2[] = {a2.digest, b2.digest, c1.digest, d1.digest};
    h_publish_manifest(mgr, DEV, 2, 4, ids2, dg2);
    publish_doc(mgr, ID_A, "alpha", "3.0.0", 3, &a3);
    clear_doc(mgr, ID_B);
    clear_doc(mgr, ID_D);
    const char *ids3[] = {ID_A, ID_C};
    const char *dg3[] = {a3.digest, c1.digest};
    h_publish_manifest(mgr, DEV, 3, 2, ids3, dg3);

    h_agent_start(&agent);
    CU_ASSERT(h_monitor_wait(&mon, ID_D, MGO_STATE_REMOVED, 20000));
    CU_ASSERT(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000) ||
              (last_of(&mon, ID_A) && last_of(&mon, ID_A)->state == MGO_STATE_INSTALLED));
    h_monitor_pump(&mon, 1500);
    sa = last_of(&mon, ID_A);
    CU_ASSERT_FATAL(sa != NULL);
    CU_ASSERT_EQUAL(sa->adopted, 3);
    CU_ASSERT(sa->boot == 2);
    CU_ASSERT_STRING_EQUAL(sa->app_version, "3.0.0"); /* the update's version */
    /* a removal is labelled from the installed document (its topic is cleared already) */
    const struct h_status *sd = last_of(&mon, ID_D);
    CU_ASSERT_FATAL(sd != NULL);
    CU_ASSERT_EQUAL(sd->state, MGO_STATE_REMOVED);
    CU_ASSERT_TRUE(sd->has_app);
    CU_ASSERT_STRING_EQUAL(sd->app_name, "demo-delta");
    /* converged to the final state only: never 2.0.0, never B; C not reinstalled */
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "2.0.0\x1f"),
                    0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "3.0.0\x1f"),
                    1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "beta\x1f"),
                    0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "uninstall\x1f"
                                              "delta\x1f"),
                    1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1fgamma\x1f"), 3);
    CU_ASSERT(last_of(&mon, ID_C) == NULL || last_of(&mon, ID_C)->boot == 1);
    CU_ASSERT_EQUAL(h_monitor_order_violations(&mon), 0);
    CU_ASSERT(statuses_before > 0);

    /* anti-rollback: an older manifest is refused with an event */
    h_publish_manifest(mgr, DEV, 2, 4, ids2, dg2);
    h_monitor_pump(&mon, 1500);
    CU_ASSERT(mon.events >= 1);
    CU_ASSERT_STRING_EQUAL(mon.last_event_type, "manifest-refused");

    /* digest mismatch: the manifest names a digest no document has */
    const char *bad[] = {"sha256:0000000000000000000000000000000000000000000000000000000000000000",
                         c1.digest};
    size_t ev_before = mon.events;
    h_publish_manifest(mgr, DEV, 4, 2, ids3, bad);
    h_monitor_pump(&mon, 1500);
    CU_ASSERT(mon.events > ev_before);
    CU_ASSERT_STRING_EQUAL(mon.last_event_type, "digest-mismatch");
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "4.0.0\x1f"),
                    0);

    /* a failing chart: the component error carries helm's stderr */
    /* (a mode file, not setenv: the agent's threads read the environment) */
    CU_ASSERT_FATAL(mgo_test_sh("mkdir -p %s && echo failure > %s/mode-upgrade", rel, rel) == 0);
    struct pub_doc a5;
    publish_doc(mgr, ID_A, "alpha", "5.0.0", 1, &a5);
    const char *dg5[] = {a5.digest, c1.digest};
    h_publish_manifest(mgr, DEV, 5, 2, ids3, dg5);
    CU_ASSERT(h_monitor_wait(&mon, ID_A, MGO_STATE_FAILED, 15000));
    sa = last_of(&mon, ID_A);
    CU_ASSERT(sa != NULL && strstr(sa->error_message, "INSTALLATION FAILED") != NULL);
    CU_ASSERT(sa != NULL && strcmp(sa->error_code, "RUNTIME_FAILED") == 0);
    CU_ASSERT_FATAL(mgo_test_sh("rm -f %s/mode-upgrade", rel) == 0);

    /* restart: the accepted version and the boot counter persist */
    h_agent_stop(&agent);
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(state_dir, &st) == MGO_OK);
    CU_ASSERT_EQUAL(st.manifest_version, 5);
    CU_ASSERT_EQUAL(st.boot, 3);

    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    h_agent_cleanup(&agent);
    mgo_test_broker_cleanup(&broker);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

/* Presence: online (retained) after connect, offline on shutdown. Downtime: inside a window
 * the agent makes no connection attempt, so nothing at all appears. */
static int count_presence(struct mgo_mqtt *m, int ms, bool *last_online, uint64_t *boot)
{
    int n = 0;
    for (int waited = 0; waited < ms; waited += 100) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0) {
            struct mgo_arena arena;
            mgo_arena_init(&arena, 1u << 16);
            struct mgo_problems p;
            mgo_problems_init(&p);
            struct mgo_presence pr;
            if (mgo_presence_decode(ev.payload, ev.payload_len, &arena, &pr, &p) == MGO_OK) {
                n++;
                *last_online = pr.online;
                *boot = pr.boot;
            }
            mgo_arena_cleanup(&arena);
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    return n;
}

static void test_presence_and_downtime(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char dir[256], state_dir[512];
    mgo_test_tmpdir("agent-down", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    struct mgo_mqtt *watch = h_client(mgo_test_broker_url(&broker), "presence-watch");
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_STATE, "dev-down", NULL, t, sizeof t) ==
                    MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(watch, t, 1, NULL) == MGO_OK);

    /* inside a window that covers the whole day: no connection, no presence */
    struct h_agent agent;
    h_agent_init(&agent, "device-id", "dev-down", "broker-url", mgo_test_broker_url(&broker),
                 "state-dir", state_dir, "helm-command", MGO_FAKE_HELM, "downtime",
                 "daily 00:00-24:00", NULL);
    h_agent_start(&agent);
    bool online = false;
    uint64_t boot = 0;
    CU_ASSERT_EQUAL(count_presence(watch, 2500, &online, &boot), 0);
    h_agent_cleanup(&agent);

    /* without the window: online with the boot counter, then offline at shutdown */
    h_agent_init(&agent, "device-id", "dev-down", "broker-url", mgo_test_broker_url(&broker),
                 "state-dir", state_dir, "helm-command", MGO_FAKE_HELM, NULL);
    h_agent_start(&agent);
    CU_ASSERT(count_presence(watch, 2500, &online, &boot) >= 1);
    CU_ASSERT(online);
    CU_ASSERT_EQUAL(boot, 2);
    h_agent_stop(&agent);
    CU_ASSERT(count_presence(watch, 1500, &online, &boot) >= 1);
    CU_ASSERT(!online);
    h_agent_cleanup(&agent);
    mgo_mqtt_free(watch);
    mgo_test_broker_cleanup(&broker);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

/* A deploy interrupted by SIGTERM (the helm command hangs) is not reported as failed; the next
 * start resumes it and reports installed under the new boot. */
static void test_interrupted_deploy_resumes(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char dir[256], state_dir[512], log[512], rel[512];
    mgo_test_tmpdir("agent-resume", dir);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    mgo_test_fake_helm_env(dir, "success", log, rel);
    setenv("FAKE_HELM_MODE_UPGRADE", "timeout", 1);
    setenv("FAKE_HELM_SLEEP", "30", 1);
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "helm-command", MGO_FAKE_HELM, "settle-ms", "100", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-resume");
    struct pub_doc a1;
    publish_doc(mgr, ID_A, "alpha", "1.0.0", 1, &a1);
    const char *ids[] = {ID_A};
    const char *dg[] = {a1.digest};
    h_publish_manifest(mgr, DEV, 1, 1, ids, dg);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLING, 15000));
    /* "installing" is reported before the runtime worker starts helm: wait for helm itself */
    for (int i = 0; i < 300 && mgo_test_count_lines(log, "upgrade\x1f--install\x1f"
                                                         "alpha\x1f") < 1;
         i++)
        h_monitor_pump(&mon, 100);
    h_agent_stop(&agent); /* SIGTERM equivalent while helm hangs */
    h_monitor_pump(&mon, 500);
    CU_ASSERT_EQUAL(last_of(&mon, ID_A)->state, MGO_STATE_INSTALLING); /* not "failed" */

    unsetenv("FAKE_HELM_MODE_UPGRADE");
    unsetenv("FAKE_HELM_SLEEP");
    h_agent_start(&agent);
    CU_ASSERT(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 15000));
    const struct h_status *sa = last_of(&mon, ID_A);
    CU_ASSERT(sa != NULL && sa->boot == 2 && sa->adopted == 1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1f"
                                              "alpha\x1f"),
                    2);
    CU_ASSERT_EQUAL(h_monitor_order_violations(&mon), 0);
    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    mgo_test_broker_cleanup(&broker);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"helm lifecycle: deploy, drift, offline convergence, refusals", test_agent_helm_lifecycle},
        {"presence online/offline; no connection in a downtime window", test_presence_and_downtime},
        {"deploy interrupted by shutdown resumes at the next start",
         test_interrupted_deploy_resumes},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.daemon.helm", cases);
}
