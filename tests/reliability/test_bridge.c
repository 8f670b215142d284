/* test_bridge.c - devices on another broker, joined by Mosquitto's own bridge (issue 16 item 3,
 * docs/scaling.md "Several brokers"), with margo-manager and margo-agent as real child
 * processes.
 *
 * The core broker (the fixture's) holds the manager and the recorder; an edge broker holds the
 * agents and bridges device topics out and manager topics in with broker-config/bridge-edge.conf
 * as shipped (MQTT 5 bridge, persistent bridge session, QoS 1; TLS lines left out). Checked:
 *   1. devices that only reach the edge register, get deployments and report `installed`;
 *   2. the edge broker restarted in the middle of a deploy: the deploy converges;
 *   3. the core broker restarted in the middle of a deploy (the bridge reconnects to it);
 *   4. the recorded history (on the core) has nothing lost, duplicated, out of order or
 *      conflicting, and no manifest version went backwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "mgo_test.h"
#include "rel_util.h"

#define NDEV 3

struct env {
    struct rel_env e; /* the core broker, the recorder, slow-helm */
    struct mgo_test_broker edge;
    struct rel_manager mgr;
    struct rel_agent agents[NDEV];
    char deps[NDEV][64];
};

static struct env g;

static void cleanup_all(void)
{
    mgo_test_kill_children();
    mgo_test_broker_cleanup(&g.edge);
    rel_env_cleanup(&g.e);
}

/* broker-config/bridge-edge.conf as shipped, without its TLS lines (the test brokers are plain
 * loopback listeners) and with the core's address, after mosquitto-tls.conf's
 * `max_inflight_messages 0` (with which Mosquitto's bridge announces an invalid Receive Maximum
 * unless the section sets its own window). */
static void start_edge(void)
{
    char *shipped = mgo_test_read_file(MGO_SOURCE_DIR "/broker-config/bridge-edge.conf", NULL);
    CU_ASSERT_FATAL(shipped != NULL);
    char conf[4096];
    /* the edge's own settings come first, as on a real edge (a copy of mosquitto-tls.conf,
     * which ships max_inflight_messages 0); the shipped section must work after them */
    size_t len = (size_t)snprintf(conf, sizeof conf, "max_inflight_messages 0\n");
    size_t topics = 0;
    for (char *line = strtok(shipped, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || strncmp(line, "bridge_cafile", 13) == 0 ||
            strncmp(line, "bridge_certfile", 15) == 0 || strncmp(line, "bridge_keyfile", 14) == 0 ||
            strncmp(line, "bridge_tls", 10) == 0 || strncmp(line, "bridge_insecure", 15) == 0)
            continue;
        if (strncmp(line, "topic ", 6) == 0)
            topics++;
        int n =
            strncmp(line, "address ", 8) == 0
                ? snprintf(conf + len, sizeof conf - len, "address 127.0.0.1:%d\n", g.e.broker.port)
                : snprintf(conf + len, sizeof conf - len, "%s\n", line);
        CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof conf - len);
        len += (size_t)n;
    }
    free(shipped);
    CU_ASSERT_FATAL(topics == 8);
    CU_ASSERT_FATAL(mgo_test_broker_start(&g.edge, conf) == 0);
}

/* Every device reports `installed` at manifest version >= v[i]. */
static void converge(const uint64_t *v, const char *what)
{
    rel_wait_installed(&g.e.rec, g.agents, (const char(*)[64])g.deps, v, NDEV, what);
}

/* Reconfigures every deployment with installs held 2 s, restarts broker b once the first
 * install started, and waits for the fleet to converge. */
static void deploy_through_restart(struct mgo_test_broker *b, int replicas, const char *what)
{
    uint64_t v[NDEV];
    rel_env_slow(&g.e, "2", NULL, true);
    char start[600];
    snprintf(start, sizeof start, "%s.start", g.e.mark);
    unlink(start);
    for (size_t i = 0; i < NDEV; i++)
        v[i] = rel_reconfigure(&g.mgr, g.deps[i], replicas);
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (!mgo_test_file_exists(start) && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(20);
    CU_ASSERT(mgo_test_file_exists(start));
    CU_ASSERT_FATAL(mgo_test_broker_restart(b) == 0);
    rel_env_slow(&g.e, NULL, NULL, false);
    converge(v, what);
}

static void test_devices_behind_a_bridge(void)
{
    memset(&g, 0, sizeof g);
    atexit(cleanup_all);
    rel_env_start(&g.e, "bridge", "rel-recorder-bridge");
    start_edge();
    const char *core = mgo_test_broker_url(&g.e.broker);
    const char *edge = mgo_test_broker_url(&g.edge);

    char mdir[512];
    snprintf(mdir, sizeof mdir, "%s/manager", g.e.dir);
    rel_manager_init(&g.mgr, mdir, core);
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    for (size_t i = 0; i < NDEV; i++) {
        char id[32];
        snprintf(id, sizeof id, "dev-edge%zu", i + 1);
        rel_agent_init(&g.agents[i], g.e.dir, id, edge);
        rel_agent_start(&g.agents[i]);
    }
    CU_ASSERT_FATAL(rel_wait_devices(&g.mgr, NDEV));

    /* 1. deploy through the bridge */
    rel_add_app(&g.mgr, MGO_REL_DATA "/rel-app1.yaml");
    const char *ids[NDEV];
    for (size_t i = 0; i < NDEV; i++)
        ids[i] = g.agents[i].id;
    rel_deploy(&g.mgr, "rel-app1", ids, NDEV, g.deps);
    uint64_t zero[NDEV] = {0};
    converge(zero, "first deploy through the bridge");

    /* 2. the edge broker restarted mid-deploy; 3. the core broker restarted mid-deploy */
    deploy_through_restart(&g.edge, 2, "edge broker restarted mid-deploy");
    deploy_through_restart(&g.e.broker, 3, "core broker restarted mid-deploy");

    /* the manager stored what the devices reported: each deployment installed */
    for (size_t i = 0; i < NDEV; i++) {
        char path[256];
        struct mgo_test_reply r;
        snprintf(path, sizeof path, "/api/v1/deployments/%s", g.deps[i]);
        rel_api(g.mgr.api, g.mgr.token, "GET", path, NULL, &r);
        CU_ASSERT_EQUAL(r.status, 200);
        const char *state = mgo_test_jstr(&r.json, "/state");
        CU_ASSERT_PTR_NOT_NULL(state);
        if (state)
            CU_ASSERT_STRING_EQUAL(state, "installed");
        mgo_test_reply_cleanup(&r);
    }
    mgo_test_sleep_ms(1000); /* re-sends after the restarts have arrived */
    rel_env_check_history(&g.e, "devices behind a bridge, both brokers restarted");

    for (size_t i = 0; i < NDEV; i++)
        rel_agent_stop(&g.agents[i]);
    rel_manager_stop(&g.mgr);
    cleanup_all();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"devices on a bridged broker: deploy, edge and core restarted mid-deploy",
         test_devices_behind_a_bridge},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.bridge", cases);
}
