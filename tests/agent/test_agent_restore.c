/* test_agent_restore.c - docs/protocol.md §6.1 step 5: when the broker starts a new session
 * (here: a broker restarted without its store), the agent publishes the latest status of each
 * deployment again, retained, with the same bytes and journal position; also after an agent
 * restart that follows the manager's receipt (the journal no longer holds the status); never
 * for a deployment whose last status is `removed`. Real Mosquitto, Helm runtime through
 * tests/agent/fake-helm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "harness.h"
#include "journal.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "state.h"

#define DEV "dev-restore"
#define ID_A "22222222-2222-4222-8222-22222222222a"

/* A status message as a new subscriber gets it. */
struct raw_status {
    int count;     /* status messages of the deployment received */
    bool retained; /* the first one was delivered as retained */
    uint8_t payload[16384];
    size_t len;
    uint64_t boot, seq;
    enum mgo_state state;
};

/* Subscribes a new client to .../status/{dep} and collects for ms milliseconds. */
static void read_status(const char *url, const char *dep, int ms, struct raw_status *out)
{
    memset(out, 0, sizeof *out);
    char id[64];
    snprintf(id, sizeof id, "restore-reader-%d", (int)getpid());
    struct mgo_mqtt *m = h_client(url, id);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_STATUS, DEV, dep, t, sizeof t) ==
                    MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(m, t, 1, NULL) == MGO_OK);
    for (int waited = 0; waited < ms; waited += 100) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0) {
            if (out->count++ == 0 && ev.payload_len <= sizeof out->payload) {
                out->retained = ev.retained;
                memcpy(out->payload, ev.payload, ev.payload_len);
                out->len = ev.payload_len;
                struct mgo_arena arena;
                mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
                struct mgo_problems p;
                mgo_problems_init(&p);
                struct mgo_deployment_status s;
                CU_ASSERT(mgo_deployment_status_decode(ev.payload, ev.payload_len, &arena, &s,
                                                       &p) == MGO_OK);
                out->boot = s.boot;
                out->seq = s.seq;
                out->state = s.state;
                mgo_arena_cleanup(&arena);
            }
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT(mgo_mqtt_disconnect(m, 1000) == MGO_OK);
    mgo_mqtt_free(m);
}

/* Waits until the agent's retained presence on this broker says online (it has connected
 * and, in the same step, handed its restores to MQTT), then a little for them to land. */
static bool wait_online(const char *url)
{
    struct mgo_mqtt *m = h_client(url, "restore-presence");
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_STATE, DEV, NULL, t, sizeof t) ==
                    MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(m, t, 1, NULL) == MGO_OK);
    bool online = false;
    for (int i = 0; i < 150 && !online; i++) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0) {
            struct mgo_arena arena;
            mgo_arena_init(&arena, 1u << 16);
            struct mgo_problems p;
            mgo_problems_init(&p);
            struct mgo_presence pr;
            if (mgo_presence_decode(ev.payload, ev.payload_len, &arena, &pr, &p) == MGO_OK)
                online = pr.online;
            mgo_arena_cleanup(&arena);
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT(mgo_mqtt_disconnect(m, 1000) == MGO_OK);
    mgo_mqtt_free(m);
    usleep(500 * 1000);
    return online;
}

/* A broker restart that loses its store: stopped, its persistence file deleted, started again
 * on the same port. Sessions and retained messages are gone. */
static void broker_restart_empty(struct mgo_test_broker *b)
{
    CU_ASSERT_FATAL(mgo_test_broker_stop(b) == 0);
    char db[400];
    snprintf(db, sizeof db, "%s/mosquitto.db", b->dir);
    CU_ASSERT_FATAL(unlink(db) == 0);
    CU_ASSERT_FATAL(mgo_test_broker_restart(b) == 0);
}

static void publish_receipt(struct mgo_mqtt *m, uint64_t boot, uint64_t seq)
{
    struct mgo_receipt rc = {
        .device_id = DEV, .epoch = "0123456789abcdef", .boot = boot, .seq = seq};
    struct mgo_buf buf;
    mgo_buf_init(&buf, 4096);
    CU_ASSERT_FATAL(mgo_receipt_encode(&rc, &buf) == MGO_OK);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_RECEIPT, DEV, NULL, t, sizeof t) ==
                    MGO_OK);
    h_publish(m, t, buf.data, buf.len);
    mgo_buf_cleanup(&buf);
}

static size_t journal_unsettled(const char *state_dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/journal", state_dir);
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(p, &j) == MGO_OK);
    size_t n = j.pending_len;
    mgo_journal_close(&j);
    return n;
}

static void test_restore_after_store_loss(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    const char *url = mgo_test_broker_url(&broker);
    char dir[256], state_dir[512], log[512], rel[512], latest[700];
    snprintf(dir, sizeof dir, "/tmp/mgo-agent-restore-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    snprintf(log, sizeof log, "%s/helm.log", dir);
    snprintf(rel, sizeof rel, "%s/releases", dir);
    snprintf(latest, sizeof latest, "%s/status/" ID_A ".status", state_dir);
    setenv("FAKE_HELM_LOG", log, 1);
    setenv("FAKE_HELM_STATE", rel, 1);
    setenv("FAKE_HELM_MODE", "success", 1);
    unsetenv("FAKE_HELM_MODE_UPGRADE");
    unsetenv("FAKE_HELM_SLEEP");

    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", url, "state-dir", state_dir,
                 "helm-command", MGO_FAKE_HELM, "compose-command", "mgo-no-compose-here",
                 "settle-ms", "100", "backoff-min-ms", "100", "backoff-max-ms", "500", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, url, DEV);
    struct mgo_mqtt *mgr = h_client(url, "manager-restore");
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "apiVersion: application.margo.org/v1alpha1\n"
             "kind: ApplicationDeployment\n"
             "metadata:\n"
             "  annotations:\n"
             "    applicationId: demo-app\n"
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
             "          revision: 1.0.0\n");
    struct mgo_buf doc;
    char digest[MGO_DIGEST_STR_SIZE];
    h_doc(yaml, &doc, digest);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, DEV, ID_A, t, sizeof t) ==
                    MGO_OK);
    h_publish(mgr, t, doc.data, doc.len);
    mgo_buf_cleanup(&doc);
    const char *ids[] = {ID_A};
    const char *dgs[] = {digest};
    h_publish_manifest(mgr, DEV, 1, 1, ids, dgs);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000));
    h_monitor_pump(&mon, 300);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);

    /* the installed status as the broker retains it now: the reference */
    struct raw_status before;
    read_status(url, ID_A, 800, &before);
    CU_ASSERT_FATAL(before.count == 1 && before.retained);
    CU_ASSERT_EQUAL_FATAL(before.state, MGO_STATE_INSTALLED);
    CU_ASSERT_EQUAL(before.boot, 1);
    CU_ASSERT(access(latest, F_OK) == 0);

    /* 1. the broker loses its store while the agent runs: the agent's next connect gets a new
     * session and restores the status, byte for byte */
    broker_restart_empty(&broker);
    CU_ASSERT_FATAL(wait_online(url));
    struct raw_status after;
    read_status(url, ID_A, 800, &after);
    CU_ASSERT_EQUAL(after.count, 1);
    CU_ASSERT(after.retained);
    CU_ASSERT_EQUAL(after.boot, before.boot);
    CU_ASSERT_EQUAL(after.seq, before.seq);
    CU_ASSERT(after.len == before.len && memcmp(after.payload, before.payload, before.len) == 0);

    /* 2. the manager's receipt settles the journal; the agent restarts and the broker loses
     * its store again: the status comes back from the agent's latest-status file alone */
    mgr = h_client(url, "manager-restore");
    publish_receipt(mgr, before.boot, before.seq);
    mgo_mqtt_free(mgr);
    usleep(1000 * 1000);
    h_agent_stop(&agent);
    CU_ASSERT_EQUAL(journal_unsettled(state_dir), 0); /* nothing left to re-send from there */
    broker_restart_empty(&broker);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(wait_online(url));
    read_status(url, ID_A, 800, &after);
    CU_ASSERT_EQUAL(after.count, 1);
    CU_ASSERT(after.retained);
    CU_ASSERT_EQUAL(after.boot, before.boot); /* the first run's position, not a new one */
    CU_ASSERT_EQUAL(after.seq, before.seq);
    CU_ASSERT(after.len == before.len && memcmp(after.payload, before.payload, before.len) == 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1f"
                                              "alpha\x1f"),
                    1);

    /* 3. removed: its file goes, and a later new session does not bring it back (the manager
     * clears a removed deployment's retained status, protocol.md §7.4 step 7) */
    h_monitor_start(&mon, url, DEV);
    mgr = h_client(url, "manager-restore");
    h_publish_manifest(mgr, DEV, 2, 0, NULL, NULL);
    CU_ASSERT(h_monitor_wait(&mon, ID_A, MGO_STATE_REMOVED, 20000));
    h_monitor_pump(&mon, 300);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    CU_ASSERT(access(latest, F_OK) != 0);
    broker_restart_empty(&broker);
    CU_ASSERT_FATAL(wait_online(url));
    read_status(url, ID_A, 1000, &after);
    CU_ASSERT_EQUAL(after.count, 0);
    h_agent_stop(&agent);
    /* and not after a restart either */
    broker_restart_empty(&broker);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(wait_online(url));
    read_status(url, ID_A, 1000, &after);
    CU_ASSERT_EQUAL(after.count, 0);

    h_agent_cleanup(&agent);
    mgo_test_broker_cleanup(&broker);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

/* Per deployment, positions that arrived after a newer one (an exact re-send of the newest
 * seen so far is fine). Stricter than h_monitor_order_violations, which forgives any re-send. */
static size_t strictly_backwards(const struct h_monitor *mon)
{
    size_t bad = 0;
    for (size_t i = 0; i < mon->len; i++) {
        const struct h_status *s = &mon->items[i];
        for (size_t k = 0; k < i; k++) {
            const struct h_status *o = &mon->items[k];
            if (strcmp(o->deployment_id, s->deployment_id) == 0 &&
                mgo_pos_before(s->boot, s->seq, o->boot, o->seq)) {
                fprintf(stderr, "backwards: %s %llu.%llu after %llu.%llu\n", s->deployment_id,
                        (unsigned long long)s->boot, (unsigned long long)s->seq,
                        (unsigned long long)o->boot, (unsigned long long)o->seq);
                bad++;
                break;
            }
        }
    }
    return bad;
}

static void status_bytes(uint64_t seq, enum mgo_state st, struct mgo_buf *out)
{
    struct mgo_component_status comp = {.name = "alpha", .state = st};
    struct mgo_deployment_status s = {.deployment_id = ID_A,
                                      .device_id = DEV,
                                      .has_adopted_manifest_version = true,
                                      .adopted_manifest_version = 1,
                                      .state = st,
                                      .components = &comp,
                                      .components_len = 1,
                                      .has_journal = true,
                                      .boot = 1,
                                      .seq = seq};
    mgo_buf_init(out, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_deployment_status_encode(&s, out) == MGO_OK);
}

/* The agent was killed after two statuses of a deployment reached the broker but before it
 * handled their PUBACKs: the journal has both as sent, neither as delivered. The next run
 * must not publish the older one on the status topic after the newer (a monitor would see the
 * deployment go back, and the retained status would, until the newer came again): the older
 * goes on the replay topic (for the manager), the newer on the status topic again. */
static void test_no_older_resend_after_kill(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    const char *url = mgo_test_broker_url(&broker);
    char dir[256], state_dir[512], jpath[700];
    snprintf(dir, sizeof dir, "/tmp/mgo-agent-resend-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    snprintf(jpath, sizeof jpath, "%s/journal", state_dir);

    /* the killed run (boot 1): journaled 1.1 pending and 1.2 installing, sent both */
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(state_dir, &st) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(st.boot, 1);
    struct mgo_buf s1, s2;
    status_bytes(1, MGO_STATE_PENDING, &s1);
    status_bytes(2, MGO_STATE_INSTALLING, &s2);
    struct mgo_journal j;
    CU_ASSERT_FATAL(mgo_journal_open(jpath, &j) == MGO_OK);
    CU_ASSERT_FATAL(mgo_journal_append(&j, 1, 1, ID_A, s1.data, s1.len) == MGO_OK);
    CU_ASSERT_FATAL(mgo_journal_sent(&j, 1, 1) == MGO_OK);
    CU_ASSERT_FATAL(mgo_journal_append(&j, 1, 2, ID_A, s2.data, s2.len) == MGO_OK);
    CU_ASSERT_FATAL(mgo_journal_sent(&j, 1, 2) == MGO_OK);
    mgo_journal_close(&j);
    /* ...and the broker got them, in order, while a monitor watched */
    struct h_monitor mon;
    h_monitor_start(&mon, url, DEV);
    struct mgo_mqtt *prev = h_client(url, DEV "-previous-run");
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_STATUS, DEV, ID_A, t, sizeof t) ==
                    MGO_OK);
    h_publish(prev, t, s1.data, s1.len);
    h_publish(prev, t, s2.data, s2.len);
    mgo_mqtt_free(prev);
    mgo_buf_cleanup(&s1);
    mgo_buf_cleanup(&s2);
    struct mgo_mqtt *replays = h_client(url, "restore-replays");
    CU_ASSERT_FATAL(mgo_topic_filter("margo/v1", MGO_TOPIC_REPLAY, DEV, t, sizeof t) == MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(replays, t, 1, NULL) == MGO_OK);
    h_monitor_pump(&mon, 300);
    CU_ASSERT_EQUAL(mon.len, 2);

    /* the next run */
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", url, "state-dir", state_dir,
                 "helm-command", MGO_FAKE_HELM, "compose-command", "mgo-no-compose-here",
                 "settle-ms", "100", NULL);
    h_agent_start(&agent);
    CU_ASSERT(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLING, 10000));
    h_monitor_pump(&mon, 1500);
    h_agent_stop(&agent);
    CU_ASSERT_EQUAL(strictly_backwards(&mon), 0);
    CU_ASSERT_EQUAL(mon.len, 3); /* 1.1, 1.2, 1.2 again */
    CU_ASSERT(mon.len == 3 && mon.items[2].seq == 2);
    /* the older one went to the manager on the replay topic */
    int replayed = 0;
    for (int i = 0; i < 10; i++) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(replays, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0)
            replayed++;
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT_EQUAL(replayed, 1);
    /* both delivered now */
    CU_ASSERT_FATAL(mgo_journal_open(jpath, &j) == MGO_OK);
    CU_ASSERT_EQUAL(j.pending_len, 2);
    for (size_t i = 0; i < j.pending_len; i++)
        CU_ASSERT(j.pending[i].delivered);
    mgo_journal_close(&j);

    mgo_mqtt_free(replays);
    h_monitor_stop(&mon);
    h_agent_cleanup(&agent);
    mgo_test_broker_cleanup(&broker);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"latest status restored after the broker lost its store, also across an agent "
         "restart after the receipt; never for removed",
         test_restore_after_store_loss},
        {"statuses sent before a kill: never an older one on the status topic after a newer",
         test_no_older_resend_after_kill},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.daemon.restore", cases);
}
