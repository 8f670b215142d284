/* test_managers.c - several managers, active-active, on one database (issue 16 item 2,
 * docs/scaling.md "Several managers"), with margo-manager and margo-agent as real child
 * processes on one Mosquitto.
 *
 * Two managers with share-group (device messages through $share/...) and status-history 0 on
 * one store; six real agents, NSIM simulated devices (bench/fleet's mgo-fleet-sim, when built),
 * the recorder (every status and desired message on the broker) and the fixture's slow-helm.
 * Checked:
 *   1. a deploy through one manager converges (whichever holds the publisher lease publishes);
 *   2. the publisher killed (SIGKILL) in the middle of a deploy made through the other (the
 *      agents' deployments and a new one on every simulated device): the survivor takes the
 *      lease and publishes what was stored; every device converges; the time from the kill to
 *      the survivor's first publish is printed (failover);
 *   3. the killed manager restarted; then one manager killed while installs report (ingest),
 *      restarted again; the fleet converges;
 *   4. every status of the agents on the broker is stored exactly once in the status history
 *      (no position twice, none missing), nothing lost, duplicated or out of order on the
 *      broker, and no device's manifestVersion went backwards or named two manifests; the
 *      surviving manager's API answered throughout. (The simulator keeps no journal and does
 *      not replay, so its statuses are not part of the exactly-once check.)
 * The store: a database of the kit's private PostgreSQL cluster (tests/support/pg.h). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgo_test.h"
#include "pg.h"
#include "rel_util.h"

#define NDEV 6
#ifdef MGO_SIM_BIN
#define NSIM 100
#else
#define NSIM 0
#endif
#define GROUP "rel-managers"

struct env {
    struct rel_env e;
    struct rel_manager mgr[2];
    struct rel_agent agents[NDEV];
    char deps[NDEV][64];
    char sim_log[512];
};

static struct env g;

static void cleanup_all(void)
{
    mgo_test_kill_children();
    rel_env_cleanup(&g.e);
}

static void manager_init(int k, const char *store)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/manager%c", g.e.dir, 'a' + k);
    rel_manager_init(&g.mgr[k], dir, mgo_test_broker_url(&g.e.broker));
    snprintf(g.mgr[k].client_id, sizeof g.mgr[k].client_id, "margo-manager-%c", 'a' + k);
    snprintf(g.mgr[k].extra_conf, sizeof g.mgr[k].extra_conf,
             "share-group " GROUP "\nstatus-history 0\nstore %s\n", store);
}

/* Which manager holds the publisher lease (its /metrics says so); -1: none (yet). */
static int publisher(void)
{
    int who = -1;
    for (int k = 0; k < 2; k++) {
        if (g.mgr[k].pid <= 0)
            continue;
        struct mgo_test_reply r;
        rel_api(g.mgr[k].api, g.mgr[k].token, "GET", "/metrics", NULL, &r);
        if (r.status == 200 && r.body.data != NULL &&
            strstr((const char *)r.body.data, "margo_lease_held{lease=\"publisher\"} 1") != NULL) {
            CU_ASSERT_EQUAL(who, -1); /* never two */
            who = k;
        }
        mgo_test_reply_cleanup(&r);
    }
    return who;
}

static int wait_publisher(void)
{
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    int who;
    while ((who = publisher()) < 0 && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT_FATAL(who >= 0);
    return who;
}

/* Every device reports `installed` at manifest version >= v[i]. */
static void converge(const uint64_t *v, const char *what)
{
    rel_wait_installed(&g.e.rec, g.agents, (const char(*)[64])g.deps, v, NDEV, what);
}

/* Whether the recorder saw a desired manifest of version >= v for device. */
static bool desired_seen(const char *device, uint64_t v)
{
    bool seen = false;
    pthread_mutex_lock(&g.e.rec.mu);
    for (size_t i = 0; i < g.e.rec.ds_len && !seen; i++)
        seen = strcmp(g.e.rec.ds[i].device, device) == 0 && g.e.rec.ds[i].version >= v;
    pthread_mutex_unlock(&g.e.rec.mu);
    return seen;
}

/* The API of manager k answers (200 on the device list). */
static void api_answers(int k, const char *what)
{
    struct mgo_test_reply r;
    rel_api(g.mgr[k].api, g.mgr[k].token, "GET", "/api/v1/devices", NULL, &r);
    if (r.status != 200)
        fprintf(stderr, "%s: manager %c answered %ld\n", what, 'a' + k, r.status);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
}

#if NSIM > 0
/* NSIM simulated devices sim-00001.. in one mgo-fleet-sim process; waits until all are ready. */
static void start_sim(void)
{
    snprintf(g.sim_log, sizeof g.sim_log, "%s/sim.log", g.e.dir);
    const char *argv[] = {MGO_SIM_BIN,   "--url",   mgo_test_broker_url(&g.e.broker),
                          "--id-prefix", "sim",     "--first",
                          "1",           "--count", "100",
                          NULL};
    CU_ASSERT_FATAL(NSIM == 100);
    CU_ASSERT_FATAL(mgo_test_spawn(argv, g.sim_log) > 0);
    CU_ASSERT_FATAL(mgo_test_log_wait(g.sim_log, "READY 100", 0, REL_WAIT_MS));
}

/* The bench app deployed to simulated devices first..last through manager k (one request). */
static void deploy_sims(int k, int first, int last)
{
    static char body[8192];
    int off = snprintf(body, sizeof body, "{\"app\": \"bench-app\", \"devices\": [");
    for (int i = first; i <= last; i++)
        off += snprintf(body + off, sizeof body - (size_t)off, "%s\"sim-%05d\"",
                        i > first ? ", " : "", i);
    snprintf(body + off, sizeof body - (size_t)off, "]}");
    struct mgo_test_reply r;
    rel_api(g.mgr[k].api, g.mgr[k].token, "POST", "/api/v1/deployments", body, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
}

/* Every simulated device reported its install ("I <idx> ..." once per device). */
static bool sims_installed(void)
{
    char *log = mgo_test_read_file(g.sim_log, NULL);
    if (log == NULL)
        return false;
    static bool seen[NSIM + 1];
    memset(seen, 0, sizeof seen);
    size_t n = 0;
    for (char *line = log; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        int idx = 0;
        if (line[0] == 'I' && line[1] == ' ' && sscanf(line + 2, "%d", &idx) == 1 && idx >= 1 &&
            idx <= NSIM && !seen[idx]) {
            seen[idx] = true;
            n++;
        }
    }
    free(log);
    return n == NSIM;
}
#endif

/* 2: the publisher killed between two halves of a deploy made through the other manager. */
static void kill_publisher_mid_deploy(uint64_t *v)
{
    int pub = wait_publisher();
    int other = 1 - pub;
    for (size_t i = 0; i < NDEV / 2; i++)
        v[i] = rel_reconfigure(&g.mgr[other], g.deps[i], 2);
#if NSIM > 0
    deploy_sims(other, 1, NSIM / 2); /* the publisher's poll may publish some of them */
#endif
    rel_manager_kill(&g.mgr[pub]);
    int64_t killed = mgo_test_now_ms();
    api_answers(other, "publisher killed");
#if NSIM > 0
    deploy_sims(other, NSIM / 2 + 1, NSIM);
#endif
    for (size_t i = NDEV / 2; i < NDEV; i++)
        v[i] = rel_reconfigure(&g.mgr[other], g.deps[i], 2);
    /* failover: the survivor publishes the second half (stored after the kill) */
    int64_t deadline = killed + REL_WAIT_MS;
    while (!desired_seen(g.agents[NDEV - 1].id, v[NDEV - 1]) && mgo_test_now_ms() < deadline) {
        mgo_test_sleep_ms(20);
        if ((mgo_test_now_ms() - killed) % 1000 < 20)
            api_answers(other, "during the failover");
    }
    CU_ASSERT(desired_seen(g.agents[NDEV - 1].id, v[NDEV - 1]));
    fprintf(stderr,
            "failover: the publisher (manager %c) killed; manager %c published a change stored "
            "after the kill %lld ms later\n",
            'a' + pub, 'a' + other, (long long)(mgo_test_now_ms() - killed));
    CU_ASSERT_EQUAL(publisher(), other);
    converge(v, "publisher killed mid-deploy");
#if NSIM > 0
    while (!sims_installed() && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(200);
    CU_ASSERT(sims_installed());
#endif
    /* back with a new instance (a new member, a new receipt epoch) */
    rel_manager_start(&g.mgr[pub]);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr[pub], REL_WAIT_MS));
}

/* 3: manager k killed while installs report their statuses, then started again. */
static void kill_during_ingest(int k, int replicas, uint64_t *v)
{
    int other = 1 - k;
    rel_env_slow(&g.e, "1", NULL, true);
    char start[600];
    snprintf(start, sizeof start, "%s.start", g.e.mark);
    unlink(start);
    for (size_t i = 0; i < NDEV; i++)
        v[i] = rel_reconfigure(&g.mgr[i % 2], g.deps[i], replicas);
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (!mgo_test_file_exists(start) && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(10);
    CU_ASSERT(mgo_test_file_exists(start));
    mgo_test_sleep_ms(300); /* statuses of several devices on their way */
    rel_manager_kill(&g.mgr[k]);
    api_answers(other, "killed during ingest");
    rel_env_slow(&g.e, NULL, NULL, false);
    converge(v, "a manager killed during ingest");
    api_answers(other, "after the kill during ingest");
    rel_manager_start(&g.mgr[k]);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr[k], REL_WAIT_MS));
}

/* 4: every position of a deployment the broker carried is in its stored history exactly once,
 * and the history holds nothing else. */
static void check_stored_once(int k)
{
    for (size_t i = 0; i < NDEV; i++) {
        char path[256];
        struct mgo_test_reply r;
        snprintf(path, sizeof path, "/api/v1/deployments/%s", g.deps[i]);
        rel_api(g.mgr[k].api, g.mgr[k].token, "GET", path, NULL, &r);
        CU_ASSERT_EQUAL_FATAL(r.status, 200);
        uint64_t hb[256], hs[256];
        size_t hn = 0;
        for (; hn < 256; hn++) {
            char p[64];
            snprintf(p, sizeof p, "/history/%zu/state", hn);
            if (mgo_test_jstr(&r.json, p)[0] == '\0')
                break;
            snprintf(p, sizeof p, "/history/%zu/boot", hn);
            hb[hn] = mgo_test_ju64(&r.json, p);
            snprintf(p, sizeof p, "/history/%zu/seq", hn);
            hs[hn] = mgo_test_ju64(&r.json, p);
        }
        mgo_test_reply_cleanup(&r);
        CU_ASSERT(hn > 0 && hn < 256);
        for (size_t a = 0; a < hn; a++) {
            for (size_t b = a + 1; b < hn; b++) {
                if (hb[a] == hb[b] && hs[a] == hs[b]) {
                    fprintf(stderr, "stored twice: %s (%llu, %llu)\n", g.deps[i],
                            (unsigned long long)hb[a], (unsigned long long)hs[a]);
                    CU_FAIL("a status stored twice");
                }
            }
        }
        /* the broker's positions of this deployment, each in the history */
        size_t seen = 0;
        pthread_mutex_lock(&g.e.rec.mu);
        for (size_t m = 0; m < g.e.rec.st_len; m++) {
            const struct rel_status *s = &g.e.rec.st[m];
            if (strcmp(s->dep, g.deps[i]) != 0 || s->seq == 0)
                continue;
            bool dup = false;
            for (size_t q = 0; q < m && !dup; q++)
                dup = strcmp(g.e.rec.st[q].dep, s->dep) == 0 && g.e.rec.st[q].boot == s->boot &&
                      g.e.rec.st[q].seq == s->seq;
            if (dup)
                continue; /* a re-send of the same position */
            seen++;
            bool stored = false;
            for (size_t a = 0; a < hn && !stored; a++)
                stored = hb[a] == s->boot && hs[a] == s->seq;
            if (!stored) {
                fprintf(stderr, "not stored: %s (%llu, %llu) %s\n", g.deps[i],
                        (unsigned long long)s->boot, (unsigned long long)s->seq,
                        mgo_state_name(s->state));
                CU_FAIL("a status on the broker is not in the store");
            }
        }
        pthread_mutex_unlock(&g.e.rec.mu);
        if (seen != hn)
            fprintf(stderr, "%s: %zu positions on the broker, %zu stored\n", g.deps[i], seen, hn);
        CU_ASSERT_EQUAL(seen, hn);
    }
}

/* One manifestVersion is one manifest: the same version never lists another deployment set. */
static void check_versions(void)
{
    pthread_mutex_lock(&g.e.rec.mu);
    for (size_t i = 0; i < g.e.rec.ds_len; i++) {
        for (size_t k = 0; k < i; k++) {
            const struct rel_desired *a = &g.e.rec.ds[k], *b = &g.e.rec.ds[i];
            if (strcmp(a->device, b->device) == 0 && a->version == b->version &&
                a->deployments != b->deployments) {
                fprintf(stderr, "%s: manifest %llu published with %zu and %zu deployments\n",
                        a->device, (unsigned long long)a->version, a->deployments, b->deployments);
                CU_FAIL("one manifestVersion, two manifests");
            }
        }
    }
    pthread_mutex_unlock(&g.e.rec.mu);
}

static void test_two_managers_killed_mid_deploy_and_mid_ingest(void)
{
    memset(&g, 0, sizeof g);
    atexit(cleanup_all);
    rel_env_start(&g.e, "managers", "rel-recorder-managers");
    const char *store = mgo_test_pg_new_db();
    for (int k = 0; k < 2; k++) {
        manager_init(k, store);
        rel_manager_start(&g.mgr[k]);
        CU_ASSERT_FATAL(rel_manager_ready(&g.mgr[k], REL_WAIT_MS));
    }
    CU_ASSERT_FATAL(wait_publisher() >= 0);
    for (size_t i = 0; i < NDEV; i++) {
        char id[32];
        snprintf(id, sizeof id, "dev-mm%zu", i + 1);
        rel_agent_init(&g.agents[i], g.e.dir, id, mgo_test_broker_url(&g.e.broker));
        rel_agent_start(&g.agents[i]);
    }
#if NSIM > 0
    start_sim();
#endif
    CU_ASSERT_FATAL(rel_wait_devices(&g.mgr[0], NDEV + NSIM));
    CU_ASSERT_FATAL(rel_wait_devices(&g.mgr[1], NDEV + NSIM));

    /* 1. a deploy through the manager that is not the publisher */
    int pub = wait_publisher();
    rel_add_app(&g.mgr[1 - pub], MGO_REL_DATA "/rel-app1.yaml");
    const char *ids[NDEV];
    for (size_t i = 0; i < NDEV; i++)
        ids[i] = g.agents[i].id;
    rel_deploy(&g.mgr[1 - pub], "rel-app1", ids, NDEV, g.deps);
#if NSIM > 0
    rel_add_app(&g.mgr[pub], MGO_SOURCE_DIR "/bench/fleet/bench-app.yaml");
#endif
    uint64_t v[NDEV] = {0};
    converge(v, "first deploy");

    /* 2. the publisher killed mid-deploy */
    kill_publisher_mid_deploy(v);

    /* 3. killed during ingest: the one that is not the publisher, then the publisher */
    int now_pub = wait_publisher();
    kill_during_ingest(1 - now_pub, 3, v);
    kill_during_ingest(wait_publisher(), 4, v);

    /* 4. what the broker carried is what the store holds, once */
    mgo_test_sleep_ms(1000); /* re-sends after the kills have arrived */
    check_stored_once(wait_publisher());
    check_versions();
    rel_env_check_history(&g.e, "two managers, killed mid-deploy and mid-ingest");

    for (size_t i = 0; i < NDEV; i++)
        rel_agent_stop(&g.agents[i]);
    for (int k = 0; k < 2; k++)
        rel_manager_stop(&g.mgr[k]);
    cleanup_all();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"two managers on one store: publisher killed mid-deploy, managers killed mid-ingest",
         test_two_managers_killed_mid_deploy_and_mid_ingest},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.managers", cases);
}
