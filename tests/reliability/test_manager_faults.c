/* test_manager_faults.c - margo-manager and margo-agent as real child processes under
 * faults (issue 7 item 3 and the manager half of item 6): the manager SIGKILLed during a
 * rollout to several devices (with its session kept, and with its session expired), the
 * database locked by another process, the database corrupt.
 *
 * Each case checks what the API reports (deployments, states, history, manifestVersion),
 * the manifests and statuses on the wire (an independent recorder, rel_util.h) and what
 * fake-helm installed. */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "mgo_test.h"
#include "rel_util.h"

#define NDEV 3

struct env {
    struct rel_env e;
    struct rel_manager mgr;
    struct rel_agent agents[NDEV];
};

static struct env g; /* one fleet for the whole file: the cases build on each other */

static const char *dev(size_t i)
{
    return g.agents[i].id;
}

static void add_app(const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", MGO_REL_DATA, file);
    /* the application file as the body: the path form needs catalog-dir (docs/api.md) */
    char *body = mgo_test_read_file(path, NULL);
    struct mgo_test_reply r;
    rel_api(g.mgr.api, g.mgr.token, "POST", "/api/v1/apps", body, &r);
    free(body);
    CU_ASSERT_EQUAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
}

static size_t count_array(const char *path, const char *key)
{
    struct mgo_test_reply r;
    rel_api(g.mgr.api, g.mgr.token, "GET", path, NULL, &r);
    const struct mgo_value *a = mgo_value_get(&r.json, key);
    size_t n = a && a->kind == MGO_V_ARRAY ? a->as.array.len : 0;
    mgo_test_reply_cleanup(&r);
    return n;
}

struct dep_view {
    char state[32];
    char desired[32];
    uint64_t manifest_version;
    size_t history;
    long http;
};

static void view(const char *id, struct dep_view *v)
{
    memset(v, 0, sizeof *v);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    struct mgo_test_reply r;
    rel_api(g.mgr.api, g.mgr.token, "GET", path, NULL, &r);
    v->http = r.status;
    snprintf(v->state, sizeof v->state, "%s", mgo_test_jstr(&r.json, "/state"));
    snprintf(v->desired, sizeof v->desired, "%s", mgo_test_jstr(&r.json, "/desired"));
    v->manifest_version = mgo_test_ju64(&r.json, "/manifestVersion");
    const struct mgo_value *h = mgo_value_get(&r.json, "history");
    v->history = h && h->kind == MGO_V_ARRAY ? h->as.array.len : 0;
    mgo_test_reply_cleanup(&r);
}

/* Waits until the API reports state for the deployment. */
static bool api_wait_state(const char *id, const char *state, int timeout_ms)
{
    int64_t deadline = mgo_test_now_ms() + timeout_ms;
    struct dep_view v;
    do {
        view(id, &v);
        if (strcmp(v.state, state) == 0)
            return true;
        mgo_test_sleep_ms(200);
    } while (mgo_test_now_ms() < deadline);
    fprintf(stderr, "deployment %s: API state '%s' (http %ld), wanted %s\n", id, v.state, v.http,
            state);
    return false;
}

/* Distinct transitions of a deployment the recorder saw. */
static size_t wire_transitions(const char *device, const char *id)
{
    size_t n = 0;
    pthread_mutex_lock(&g.e.rec.mu);
    for (size_t i = 0; i < g.e.rec.st_len; i++) {
        const struct rel_status *s = &g.e.rec.st[i];
        if (strcmp(s->device, device) != 0 || strcmp(s->dep, id) != 0)
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(g.e.rec.st[k].dep, id) == 0 && g.e.rec.st[k].boot == s->boot &&
                   g.e.rec.st[k].seq == s->seq;
        if (!seen)
            n++;
    }
    pthread_mutex_unlock(&g.e.rec.mu);
    return n;
}

/* Deploys app to devices; ids receive the deployment ids in device order. */
static void deploy(const char *app, size_t ndev, const size_t *devs, char ids[][64])
{
    const char *devices[NDEV];
    CU_ASSERT_FATAL(ndev <= NDEV);
    for (size_t i = 0; i < ndev; i++)
        devices[i] = dev(devs[i]);
    rel_deploy(&g.mgr, app, devices, ndev, ids);
}

static uint64_t last_desired_version(const char *device)
{
    uint64_t v = 0;
    pthread_mutex_lock(&g.e.rec.mu);
    for (size_t i = 0; i < g.e.rec.ds_len; i++)
        if (strcmp(g.e.rec.ds[i].device, device) == 0 && g.e.rec.ds[i].version > v)
            v = g.e.rec.ds[i].version;
    pthread_mutex_unlock(&g.e.rec.mu);
    return v;
}

static void cleanup_all(void)
{
    rel_env_cleanup(&g.e);
}

static void test_start_fleet(void)
{
    memset(&g, 0, sizeof g);
    atexit(cleanup_all);
    rel_env_start(&g.e, "mgr", "rel-recorder-mgr");
    rel_env_start_fleet(&g.e, &g.mgr, g.agents, NDEV, "dev-m");
    add_app("rel-app1.yaml");
    add_app("rel-app2.yaml");
    add_app("rel-app3.yaml");
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (count_array("/api/v1/devices", "devices") < NDEV && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(200);
    CU_ASSERT_FATAL(count_array("/api/v1/devices", "devices") == NDEV);
}

/* ---- 3. manager killed during a rollout ---------------------------------------------- */

static char rollout_ids[NDEV][64];

static void test_manager_killed_during_rollout(void)
{
    rel_env_slow(&g.e, "1", NULL,
                 false); /* each chart takes a second: the devices work while the manager is away */
    size_t all[NDEV] = {0, 1, 2};
    deploy("rel-app1", NDEV, all, rollout_ids);
    rel_manager_kill(&g.mgr); /* right after the API answered: mid-rollout */
    /* the devices finish (or, if the kill beat the publish, wait for the restart) */
    int64_t deadline = mgo_test_now_ms() + 20000;
    size_t done = 0;
    while (done < NDEV && mgo_test_now_ms() < deadline) {
        done = 0;
        for (size_t i = 0; i < NDEV; i++) {
            struct rel_status s;
            if (rel_last(&g.e.rec, dev(i), rollout_ids[i], &s) && s.state == MGO_STATE_INSTALLED)
                done++;
        }
        mgo_test_sleep_ms(200);
    }
    fprintf(stderr, "rollout: %zu of %d devices installed while the manager was down\n", done,
            NDEV);
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    /* nothing lost: three deployments, each installed, each with its full history */
    CU_ASSERT_EQUAL(count_array("/api/v1/deployments", "deployments"), NDEV);
    uint64_t v1[NDEV];
    for (size_t i = 0; i < NDEV; i++) {
        CU_ASSERT(api_wait_state(rollout_ids[i], "installed", REL_WAIT_MS));
        struct dep_view v;
        view(rollout_ids[i], &v);
        v1[i] = v.manifest_version;
        CU_ASSERT(v.manifest_version >= 1);
        CU_ASSERT_EQUAL(v.history, wire_transitions(dev(i), rollout_ids[i]));
    }
    /* manifest versions keep growing: an update after the restart gets a higher one */
    for (size_t i = 0; i < NDEV; i++) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/deployments/%s", rollout_ids[i]);
        struct mgo_test_reply r;
        rel_api(g.mgr.api, g.mgr.token, "PATCH", path, "{\"parameters\": {\"replicas\": 2}}", &r);
        CU_ASSERT_EQUAL(r.status, 200);
        mgo_test_reply_cleanup(&r);
    }
    for (size_t i = 0; i < NDEV; i++) {
        struct dep_view v;
        view(rollout_ids[i], &v);
        CU_ASSERT(v.manifest_version > v1[i]);
        CU_ASSERT(rel_wait_state(&g.e.rec, dev(i), rollout_ids[i], MGO_STATE_INSTALLED,
                                 v.manifest_version, REL_WAIT_MS));
        CU_ASSERT(api_wait_state(rollout_ids[i], "installed", REL_WAIT_MS));
        CU_ASSERT_EQUAL(last_desired_version(dev(i)), v.manifest_version);
    }
    rel_env_slow(&g.e, NULL, NULL, false);
    rel_env_check_history(&g.e, "manager killed during a rollout");
}

/* The same with the manager's session expired while it was down: only retained statuses
 * come back, for several deployments of one device, in whatever order the broker keeps
 * them; each deployment must still end up with its own latest status. */
static char expired_ids[2][64];

static void test_manager_down_longer_than_its_session(void)
{
    rel_manager_stop(&g.mgr);
    snprintf(g.mgr.extra_conf, sizeof g.mgr.extra_conf, "session-expiry 1");
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    rel_env_slow(&g.e, "0.5", NULL, false);
    size_t one[1] = {0};
    char id2[1][64], id3[1][64];
    deploy("rel-app2", 1, one, id2);
    deploy("rel-app3", 1, one, id3);
    snprintf(expired_ids[0], 64, "%s", id2[0]);
    snprintf(expired_ids[1], 64, "%s", id3[0]);
    /* kill only once the device has the last manifest: a publish still queued inside the
     * killed manager's MQTT client is not the fault this case is about */
    for (int waited = 0;
         rel_count_state(&g.e.rec, dev(0), id3[0], MGO_STATE_PENDING) == 0 && waited < REL_WAIT_MS;
         waited += 50)
        mgo_test_sleep_ms(50);
    CU_ASSERT(rel_count_state(&g.e.rec, dev(0), id3[0], MGO_STATE_PENDING) > 0);
    rel_manager_kill(&g.mgr);
    /* another update of the first rollout on the same device while the manager is away is
     * not possible (the manager is the writer), so the device just finishes its work */
    CU_ASSERT(rel_wait_state(&g.e.rec, dev(0), id2[0], MGO_STATE_INSTALLED, 0, REL_WAIT_MS));
    CU_ASSERT(rel_wait_state(&g.e.rec, dev(0), id3[0], MGO_STATE_INSTALLED, 0, REL_WAIT_MS));
    mgo_test_sleep_ms(2500); /* past the session expiry */
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    CU_ASSERT(api_wait_state(id2[0], "installed", REL_WAIT_MS));
    CU_ASSERT(api_wait_state(id3[0], "installed", REL_WAIT_MS));
    CU_ASSERT(api_wait_state(rollout_ids[0], "installed", REL_WAIT_MS));
    rel_manager_stop(&g.mgr);
    g.mgr.extra_conf[0] = '\0';
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    rel_env_slow(&g.e, NULL, NULL, false);
    rel_env_check_history(&g.e, "manager down longer than its session");
}

/* ---- 6. database locked, then corrupt ------------------------------------------------- */

static void test_database_locked(void)
{
    char db[600];
    snprintf(db, sizeof db, "%s/state/manager.db", g.mgr.dir);
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        CU_FAIL_FATAL("cannot open the manager database");
    }
    rel_env_slow(&g.e, "1", NULL, false);
    /* an update is under way when another process takes the write lock for 12 s (more
     * than the manager's 5 s busy timeout) */
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", rollout_ids[1]);
    struct mgo_test_reply r;
    rel_api(g.mgr.api, g.mgr.token, "PATCH", path, "{\"parameters\": {\"replicas\": 3}}", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
    struct dep_view v;
    view(rollout_ids[1], &v);
    uint64_t version = v.manifest_version;
    /* the manager may be storing a status right now: wait for its write to finish (it holds
     * the lock for milliseconds) instead of failing on the first SQLITE_BUSY */
    sqlite3_busy_timeout(h, 10000);
    CU_ASSERT_FATAL(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
    /* the device reports while the database is locked */
    CU_ASSERT(rel_wait_state(&g.e.rec, dev(1), rollout_ids[1], MGO_STATE_INSTALLED, version,
                             REL_WAIT_MS));
    /* a change asked for now is refused with a clear, retryable error; nothing crashes */
    size_t two[1] = {1};
    char body[256];
    CU_ASSERT_FATAL(snprintf(body, sizeof body, "{\"app\": \"rel-app2\", \"devices\": [\"%s\"]}",
                             dev(two[0])) < (int)sizeof body);
    rel_api(g.mgr.api, g.mgr.token, "POST", "/api/v1/deployments", body, &r);
    fprintf(stderr, "deploy while the database is locked: %ld %.*s\n", r.status, (int)r.body.len,
            r.body.data);
    CU_ASSERT(r.status == 500 || r.status == 503);
    mgo_test_reply_cleanup(&r);
    mgo_test_sleep_ms(3000);
    CU_ASSERT_EQUAL(mgo_test_wait_exit(g.mgr.pid, 0), -1); /* still running */
    CU_ASSERT_FATAL(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    /* once released: the statuses received meanwhile are all there */
    CU_ASSERT(api_wait_state(rollout_ids[1], "installed", REL_WAIT_MS));
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    do {
        view(rollout_ids[1], &v);
        if (v.history == wire_transitions(dev(1), rollout_ids[1]))
            break;
        mgo_test_sleep_ms(200);
    } while (mgo_test_now_ms() < deadline);
    CU_ASSERT_EQUAL(v.history, wire_transitions(dev(1), rollout_ids[1]));
    /* and the refused deploy works now */
    char id[1][64];
    deploy("rel-app2", 1, two, id);
    CU_ASSERT(api_wait_state(id[0], "installed", REL_WAIT_MS));
    rel_env_slow(&g.e, NULL, NULL, false);
    rel_env_check_history(&g.e, "database locked");
}

static void test_database_corrupt(void)
{
    size_t before = count_array("/api/v1/deployments", "deployments");
    CU_ASSERT(before >= NDEV);
    rel_manager_stop(&g.mgr);
    char sd[600];
    snprintf(sd, sizeof sd, "%s/state", g.mgr.dir);
    CU_ASSERT_FATAL(mgo_test_sh("mkdir -p '%s/backup' && cp -p '%s'/manager.db* '%s/backup/'",
                                g.e.dir, sd, g.e.dir) == 0);
    /* the first 4 KiB (the header and the schema page) overwritten */
    CU_ASSERT_FATAL(
        mgo_test_sh("dd if=/dev/urandom of='%s/manager.db' bs=4096 count=1 conv=notrunc "
                    "2>/dev/null && rm -f '%s/manager.db-wal' '%s/manager.db-shm' && "
                    "sha256sum '%s/manager.db' > '%s/corrupt.sha'",
                    sd, sd, sd, sd, g.e.dir) == 0);
    /* refused with a clear error, every time, and the file is left as it is */
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t lines = mgo_test_count_lines(g.mgr.log, "manager.db");
        rel_manager_start(&g.mgr);
        int rc = mgo_test_wait_exit(g.mgr.pid, REL_WAIT_MS);
        g.mgr.pid = 0;
        CU_ASSERT(rc > 0 && rc < 128);
        CU_ASSERT(mgo_test_count_lines(g.mgr.log, "manager.db") > lines);
    }
    CU_ASSERT(mgo_test_count_lines(g.mgr.log, "not a database") >= 1 ||
              mgo_test_count_lines(g.mgr.log, "malformed") >= 1);
    CU_ASSERT(mgo_test_sh("cd / && sha256sum --quiet -c '%s/corrupt.sha'", g.e.dir) == 0);
    /* restored from the backup: everything is there again */
    CU_ASSERT_FATAL(mgo_test_sh("rm -f '%s'/manager.db* && cp -p '%s/backup/'manager.db* '%s/'", sd,
                                g.e.dir, sd) == 0);
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    CU_ASSERT_EQUAL(count_array("/api/v1/deployments", "deployments"), before);
    for (size_t i = 0; i < NDEV; i++)
        CU_ASSERT(api_wait_state(rollout_ids[i], "installed", REL_WAIT_MS));
}

/* Publishes a status as a device would, retained, and waits for the acknowledgement. */
static void forge_status(const char *device, const char *dep, enum mgo_state st, uint64_t boot,
                         uint64_t seq)
{
    struct mgo_deployment_status s = {.deployment_id = dep,
                                      .device_id = device,
                                      .state = st,
                                      .has_journal = true,
                                      .boot = boot,
                                      .seq = seq};
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_deployment_status_encode(&s, &buf) == MGO_OK);
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/status/%s", device, dep);
    rel_publish(mgo_test_broker_url(&g.e.broker), device, topic, buf.data, buf.len);
    mgo_buf_cleanup(&buf);
}

static void test_stop_fleet(void)
{
    for (size_t i = 0; i < NDEV; i++)
        rel_agent_stop(&g.agents[i]);
    rel_env_check_history(&g.e, "manager faults, whole run");
    /* the journal position is checked per (device, deployment), protocol.md §8.1: a newer
     * position of deployment X does not make an older, still unseen, position of deployment
     * Y stale (retained statuses arrive in the broker's order after a resubscription) */
    forge_status(dev(0), expired_ids[1], MGO_STATE_INSTALLED, 1000, 5);
    CU_ASSERT(api_wait_state(expired_ids[1], "installed", REL_WAIT_MS));
    forge_status(dev(0), expired_ids[0], MGO_STATE_FAILED, 1000, 3);
    CU_ASSERT(api_wait_state(expired_ids[0], "failed", REL_WAIT_MS));
    forge_status(dev(0), expired_ids[0], MGO_STATE_REMOVED, 1000, 2); /* older: stale */
    forge_status(dev(0), expired_ids[1], MGO_STATE_FAILED, 1000, 6);
    CU_ASSERT(api_wait_state(expired_ids[1], "failed", REL_WAIT_MS));
    CU_ASSERT(api_wait_state(expired_ids[0], "failed", 1000));
    rel_manager_stop(&g.mgr); /* exit 0: clean shutdown, no leak reported by ASan */
    cleanup_all();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"fleet: broker, manager, three agents", test_start_fleet},
        {"3 manager SIGKILLed during a rollout to three devices",
         test_manager_killed_during_rollout},
        {"3 manager down longer than its session: retained statuses of several deployments",
         test_manager_down_longer_than_its_session},
        {"6 database locked by another process", test_database_locked},
        {"6 database corrupt: refused, untouched, restored", test_database_corrupt},
        {"fleet stops cleanly", test_stop_fleet},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.manager", cases);
}
