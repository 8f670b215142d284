/* test_status_guarantee.c - no acknowledged status is lost, end to end (docs/protocol.md §6.3,
 * issue 13 point 4), with margo-manager and margo-agent as real child processes.
 *
 * The window: Paho acknowledges a status to the broker before the manager has stored it. The
 * test opens that window for as long as it likes by taking the SQLite write lock from another
 * process: the manager keeps receiving (and Paho keeps acknowledging) statuses that its store
 * cannot commit. Then:
 *   1. the store fails in the window (the lock outlives the busy timeout, commits fail), and
 *      is released: every status is stored once, in order;
 *   2. the manager is SIGKILLed in the window, holding acknowledged statuses it never stored,
 *      and restarted: the agents replay them (new epoch in the receipt) and every status is
 *      stored once, in order.
 * "Every status" is checked against the agents' own numbering: within a boot, the journal
 * positions of a device's statuses are 1, 2, 3, ... with no gap, so the manager's histories
 * (all deployments of a device together) must hold exactly 1..max of each boot, each once, and
 * each deployment's history must list its positions in increasing order. */
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
    char ids[NDEV][64];
};

static struct env g;

static void cleanup_all(void)
{
    rel_env_cleanup(&g.e);
}

struct pos {
    uint64_t boot, seq;
};

static int pos_cmp(const void *a, const void *b)
{
    const struct pos *x = a, *y = b;
    if (x->boot != y->boot)
        return x->boot < y->boot ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The manager's history of a deployment as journal positions (API order) into out; count.
 * *ordered is cleared when a position is not after the one listed before it. */
static size_t history(const char *id, struct pos *out, size_t max, bool *ordered)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    struct mgo_test_reply r;
    rel_api(g.mgr.api, g.mgr.token, "GET", path, NULL, &r);
    const struct mgo_value *h = mgo_value_get(&r.json, "history");
    size_t n = 0;
    for (size_t i = 0; h && h->kind == MGO_V_ARRAY && i < h->as.array.len && n < max; i++) {
        char p[64];
        snprintf(p, sizeof p, "/history/%zu/boot", i);
        out[n].boot = mgo_test_ju64(&r.json, p);
        snprintf(p, sizeof p, "/history/%zu/seq", i);
        out[n].seq = mgo_test_ju64(&r.json, p);
        if (n > 0 && pos_cmp(&out[n - 1], &out[n]) >= 0)
            *ordered = false;
        n++;
    }
    mgo_test_reply_cleanup(&r);
    return n;
}

/* The highest position the recorder saw a device publish on its status topics. */
static struct pos wire_max(const char *device)
{
    struct pos m = {0, 0};
    pthread_mutex_lock(&g.e.rec.mu);
    for (size_t i = 0; i < g.e.rec.st_len; i++) {
        struct pos p = {g.e.rec.st[i].boot, g.e.rec.st[i].seq};
        if (strcmp(g.e.rec.st[i].device, device) == 0 && pos_cmp(&p, &m) > 0)
            m = p;
    }
    pthread_mutex_unlock(&g.e.rec.mu);
    return m;
}

struct verdict {
    size_t stored;     /* positions in the manager's histories */
    size_t missing;    /* positions 1..max of a boot that are not there */
    size_t duplicates; /* positions there twice */
    bool ordered;
};

/* What the manager holds for device i, against the agent's numbering up to wire_max. */
static void judge(size_t i, struct verdict *v)
{
    static struct pos all[4096];
    memset(v, 0, sizeof *v);
    v->ordered = true;
    size_t n = history(g.ids[i], all, sizeof all / sizeof all[0], &v->ordered);
    v->stored = n;
    qsort(all, n, sizeof all[0], pos_cmp);
    struct pos top = wire_max(g.agents[i].id);
    uint64_t boot = 0, next = 1;
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && pos_cmp(&all[k - 1], &all[k]) == 0) {
            v->duplicates++;
            continue;
        }
        if (all[k].boot != boot) {
            boot = all[k].boot;
            next = 1;
        }
        if (all[k].seq > next)
            v->missing += all[k].seq - next;
        next = all[k].seq + 1;
    }
    /* statuses after the last stored one, up to the newest the device published */
    if (n == 0 || pos_cmp(&all[n - 1], &top) < 0)
        v->missing += top.boot == boot ? top.seq - (next - 1) : top.seq;
}

/* Waits until the manager holds every status of every device (or the deadline). */
static bool converged(const char *what, int timeout_ms)
{
    int64_t deadline = mgo_test_now_ms() + timeout_ms;
    struct verdict v[NDEV];
    bool ok;
    do {
        ok = true;
        for (size_t i = 0; i < NDEV; i++) {
            judge(i, &v[i]);
            ok = ok && v[i].missing == 0 && v[i].stored > 0;
        }
        if (ok)
            break;
        mgo_test_sleep_ms(250);
    } while (mgo_test_now_ms() < deadline);
    for (size_t i = 0; i < NDEV; i++) {
        fprintf(stderr, "%s: %s: %zu statuses stored, %zu missing, %zu twice, %s\n", what,
                g.agents[i].id, v[i].stored, v[i].missing, v[i].duplicates,
                v[i].ordered ? "in order" : "OUT OF ORDER");
        CU_ASSERT_EQUAL(v[i].missing, 0);
        CU_ASSERT_EQUAL(v[i].duplicates, 0);
        CU_ASSERT(v[i].ordered);
    }
    return ok;
}

static void test_start_fleet(void)
{
    memset(&g, 0, sizeof g);
    atexit(cleanup_all);
    rel_env_start(&g.e, "ack", "rel-recorder-ack");
    rel_env_start_fleet(&g.e, &g.mgr, g.agents, NDEV, "dev-a");
    /* the application file as the body: the path form needs catalog-dir (docs/api.md) */
    rel_add_app(&g.mgr, MGO_REL_DATA "/rel-app1.yaml");
    CU_ASSERT_FATAL(rel_wait_devices(&g.mgr, NDEV));
    const char *devices[NDEV];
    for (size_t i = 0; i < NDEV; i++)
        devices[i] = g.agents[i].id;
    rel_deploy(&g.mgr, "rel-app1", devices, NDEV, g.ids);
    for (size_t i = 0; i < NDEV; i++)
        CU_ASSERT_FATAL(rel_wait_state(&g.e.rec, g.agents[i].id, g.ids[i], MGO_STATE_INSTALLED, 0,
                                       REL_WAIT_MS));
    CU_ASSERT(converged("after the deploy", REL_WAIT_MS));
}

/* Takes the manager store's write lock (waiting for the manager's own short writes). */
static sqlite3 *lock_store(void)
{
    char db[600];
    snprintf(db, sizeof db, "%s/state/manager.db", g.mgr.dir);
    sqlite3 *h = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        CU_FAIL_FATAL("cannot open the manager database");
    }
    sqlite3_busy_timeout(h, 10000);
    CU_ASSERT_FATAL(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
    return h;
}

static void unlock_store(sqlite3 *h)
{
    CU_ASSERT(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
}

/* Reconfigures every deployment (the manager stores and publishes that), then locks the store
 * while the devices apply it: their statuses reach the manager, and are acknowledged to the
 * broker, while nothing can be stored. Returns the lock once every device has published
 * `installed` for the new version and the manager has logged failed stores. */
static sqlite3 *statuses_in_the_window(int replicas)
{
    rel_env_slow(&g.e, "2", NULL,
                 false); /* each chart takes 2 s: the lock is taken before the devices report */
    uint64_t version[NDEV];
    for (size_t i = 0; i < NDEV; i++) {
        char path[256], body[128];
        snprintf(path, sizeof path, "/api/v1/deployments/%s", g.ids[i]);
        snprintf(body, sizeof body, "{\"parameters\": {\"replicas\": %d}}", replicas);
        struct mgo_test_reply r;
        rel_api(g.mgr.api, g.mgr.token, "PATCH", path, body, &r);
        CU_ASSERT_FATAL(r.status == 200);
        version[i] = mgo_test_ju64(&r.json, "/manifestVersion");
        mgo_test_reply_cleanup(&r);
    }
    size_t held_before = mgo_test_count_lines(g.mgr.log, "kept and retried");
    sqlite3 *h = lock_store();
    for (size_t i = 0; i < NDEV; i++)
        CU_ASSERT(rel_wait_state(&g.e.rec, g.agents[i].id, g.ids[i], MGO_STATE_INSTALLED,
                                 version[i], REL_WAIT_MS));
    /* the manager has them (acknowledged) and could not store them */
    CU_ASSERT(mgo_test_log_wait(g.mgr.log, "kept and retried", held_before, REL_WAIT_MS));
    mgo_test_sleep_ms(1000); /* the last statuses reach the manager's queue too */
    rel_env_slow(&g.e, NULL, NULL, false);
    return h;
}

static void test_store_fails_in_the_window(void)
{
    sqlite3 *h = statuses_in_the_window(3);
    mgo_test_sleep_ms(6000); /* past the 5 s busy timeout: commits fail, nothing is stored */
    CU_ASSERT_EQUAL(mgo_test_wait_exit(g.mgr.pid, 0), -1); /* still running */
    unlock_store(h);
    CU_ASSERT(converged("store failed in the window", REL_WAIT_MS));
}

static void test_manager_killed_in_the_window(void)
{
    sqlite3 *h = statuses_in_the_window(4);
    rel_manager_kill(&g.mgr); /* SIGKILL: the acknowledged, unstored statuses die with it */
    unlock_store(h);
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    CU_ASSERT(converged("manager killed in the window", REL_WAIT_MS));
    /* the agents replayed what the killed manager had lost */
    size_t replays = 0;
    for (size_t i = 0; i < NDEV; i++)
        replays += mgo_test_count_lines(g.agents[i].log, "replaying");
    fprintf(stderr, "agents logged %zu replays\n", replays);
    CU_ASSERT(replays > 0);
}

static void test_stop_fleet(void)
{
    for (size_t i = 0; i < NDEV; i++)
        rel_agent_stop(&g.agents[i]);
    rel_manager_stop(&g.mgr);
    cleanup_all();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"start: broker, manager, 3 agents, a deployment each", test_start_fleet},
        {"1 store fails between PUBACK and commit", test_store_fails_in_the_window},
        {"2 manager SIGKILLed between PUBACK and commit", test_manager_killed_in_the_window},
        {"stop", test_stop_fleet},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.status_guarantee", cases);
}
