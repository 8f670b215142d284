/* test_soak.c - issue 7 item 7: a fleet of real margo-agent processes (fake-helm) and a real
 * margo-manager deploy, update and remove apps in a random loop for a fixed time while the
 * broker is restarted at random moments. At the end every device has converged to what
 * the manager wants, no status transition was lost or duplicated (journaled by the agents
 * = received by an independent subscriber = stored by the manager), and the manager's
 * memory stayed flat.
 *
 * Size from the environment (defaults: the short run of the default suite):
 *   MGO_SOAK_DEVICES (8)  MGO_SOAK_SECONDS (40)  MGO_SOAK_BROKER_RESTARTS (2)  MGO_SOAK_SEED
 * `ctest -L extended` runs it with 30 devices for 300 s and 8 restarts (tests/reliability/
 * CMakeLists.txt). The figures are printed as one "SOAK:" line (docs/reliability.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "mgo_test.h"
#include "rel_util.h"

#define MAX_DEV 64
#define NAPPS 3

struct slot {
    char id[64];      /* deployment id; "" = none */
    int phase;        /* 0 none, 1 present, 2 removing */
    uint64_t version; /* manifestVersion of the last change */
};

static struct mgo_test_broker broker;
static struct rel_recorder rec;
static struct rel_manager mgr;
static struct rel_agent agents[MAX_DEV];
static struct slot slots[MAX_DEV][NAPPS];
static char dir[256];

static long env_long(const char *name, long def, long min, long max)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return def;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0' || x < min || x > max) {
        fprintf(stderr, "%s=%s ignored (%ld..%ld)\n", name, v, min, max);
        return def;
    }
    return x;
}

static void soak_cleanup(void)
{
    mgo_test_kill_children();
    if (rec.m != NULL)
        rel_recorder_stop(&rec);
    mgo_test_broker_cleanup(&broker);
    if (dir[0] != '\0' && getenv("MGO_TEST_KEEP") == NULL)
        mgo_test_rm_rf(dir);
}

static uint64_t dep_version(const char *id, char *desired, size_t desired_len, char *state,
                            size_t state_len, size_t *history)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    struct mgo_test_reply r;
    rel_api(mgr.api, mgr.token, "GET", path, NULL, &r);
    uint64_t v = mgo_test_ju64(&r.json, "/manifestVersion");
    if (desired)
        snprintf(desired, desired_len, "%s", mgo_test_jstr(&r.json, "/desired"));
    if (state)
        snprintf(state, state_len, "%s", mgo_test_jstr(&r.json, "/state"));
    if (history) {
        const struct mgo_value *h = mgo_value_get(&r.json, "history");
        *history = h && h->kind == MGO_V_ARRAY ? h->as.array.len : 0;
    }
    mgo_test_reply_cleanup(&r);
    return v;
}

/* One random operation on device d; returns true when the manager accepted a change. */
static bool operate(size_t d, unsigned *seed)
{
    size_t app = (size_t)rand_r(seed) % NAPPS;
    struct slot *s = &slots[d][app];
    char body[512], path[256], desired[32] = "";
    struct mgo_test_reply r;
    bool changed = false;
    if (s->phase == 2) {
        /* being removed: deployable again once the device reported removed */
        (void)dep_version(s->id, desired, sizeof desired, NULL, 0, NULL);
        if (strcmp(desired, "removed") == 0)
            s->phase = 0;
        else
            return false;
    }
    if (s->phase == 0) {
        snprintf(body, sizeof body, "{\"app\": \"rel-app%zu\", \"devices\": [\"%s\"]}", app + 1,
                 agents[d].id);
        rel_api(mgr.api, mgr.token, "POST", "/api/v1/deployments", body, &r);
        if (r.status == 201) {
            snprintf(s->id, sizeof s->id, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
            s->version = mgo_test_ju64(&r.json, "/deployments/0/manifestVersion");
            s->phase = 1;
            changed = true;
        } else {
            fprintf(stderr, "soak: deploy refused: %ld %.*s\n", r.status, (int)r.body.len,
                    r.body.data);
        }
        mgo_test_reply_cleanup(&r);
        return changed;
    }
    snprintf(path, sizeof path, "/api/v1/deployments/%s", s->id);
    if (rand_r(seed) % 2 == 0) {
        snprintf(body, sizeof body, "{\"parameters\": {\"replicas\": %d}}", 1 + rand_r(seed) % 50);
        rel_api(mgr.api, mgr.token, "PATCH", path, body, &r);
        changed = r.status == 200;
    } else {
        rel_api(mgr.api, mgr.token, "DELETE", path, NULL, &r);
        changed = r.status == 202;
        if (changed)
            s->phase = 2;
    }
    if (!changed)
        fprintf(stderr, "soak: change refused: %ld %.*s\n", r.status, (int)r.body.len, r.body.data);
    mgo_test_reply_cleanup(&r);
    if (changed)
        s->version = dep_version(s->id, NULL, 0, NULL, 0, NULL);
    return changed;
}

static void test_soak(void)
{
    long ndev = env_long("MGO_SOAK_DEVICES", 8, 1, MAX_DEV);
    long seconds = env_long("MGO_SOAK_SECONDS", 40, 5, 86400);
    long restarts = env_long("MGO_SOAK_BROKER_RESTARTS", 2, 0, 1000);
    unsigned seed = (unsigned)env_long("MGO_SOAK_SEED", (long)getpid(), 0, 0x7fffffff);
    fprintf(stderr, "soak: %ld devices, %ld s, %ld broker restarts, seed %u\n", ndev, seconds,
            restarts, seed);
    atexit(soak_cleanup);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    mgo_test_tmpdir("soak", dir);
    char helm_log[512], releases[512], mdir[512];
    snprintf(mdir, sizeof mdir, "%s/manager", dir);
    mgo_test_fake_helm_env(dir, "success", helm_log, releases);
    setenv("SLOW_HELM_CONF", "/dev/null", 1);
    const char *url = mgo_test_broker_url(&broker);
    rel_recorder_start(&rec, url, "rel-recorder-soak");
    /* the children: a small ASan quarantine, so RSS shows the heap and not freed blocks */
    const char *asan = getenv("ASAN_OPTIONS");
    char saved_asan[512];
    snprintf(saved_asan, sizeof saved_asan, "%s", asan ? asan : "");
    setenv("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:quarantine_size_mb=1", 1);
    rel_manager_init(&mgr, mdir, url);
    rel_manager_start(&mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&mgr, REL_WAIT_MS));
    for (long i = 0; i < ndev; i++) {
        char id[32];
        snprintf(id, sizeof id, "soak-%02ld", i + 1);
        rel_agent_init(&agents[i], dir, id, url);
        rel_agent_start(&agents[i]);
    }
    setenv("ASAN_OPTIONS", saved_asan, 1);
    for (int a = 1; a <= NAPPS; a++) {
        char path[600];
        snprintf(path, sizeof path, "%s/rel-app%d.yaml", MGO_REL_DATA, a);
        /* the application file as the body: the path form needs catalog-dir (docs/api.md) */
        char *body = mgo_test_read_file(path, NULL);
        struct mgo_test_reply r;
        rel_api(mgr.api, mgr.token, "POST", "/api/v1/apps", body, &r);
        free(body);
        CU_ASSERT_FATAL(r.status == 201);
        mgo_test_reply_cleanup(&r);
    }
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    for (;;) {
        struct mgo_test_reply r;
        rel_api(mgr.api, mgr.token, "GET", "/api/v1/devices", NULL, &r);
        const struct mgo_value *a = mgo_value_get(&r.json, "devices");
        size_t n = a && a->kind == MGO_V_ARRAY ? a->as.array.len : 0;
        mgo_test_reply_cleanup(&r);
        if (n == (size_t)ndev)
            break;
        CU_ASSERT_FATAL(mgo_test_now_ms() < deadline);
        mgo_test_sleep_ms(200);
    }
    mgo_test_sleep_ms(1000);
    long rss_start = mgo_test_rss_kb(mgr.pid);

    /* the loop: operations all the time, broker restarts at random moments */
    int64_t start = mgo_test_now_ms(), end = start + seconds * 1000;
    int64_t *restart_at = calloc((size_t)restarts + 1, sizeof *restart_at);
    CU_ASSERT_FATAL(restart_at != NULL);
    for (long i = 0; i < restarts; i++)
        restart_at[i] = start + (int64_t)(rand_r(&seed) % (unsigned)(seconds * 1000));
    long done_restarts = 0, operations = 0;
    while (mgo_test_now_ms() < end) {
        for (long i = 0; i < restarts; i++) {
            if (restart_at[i] != 0 && mgo_test_now_ms() >= restart_at[i]) {
                restart_at[i] = 0;
                CU_ASSERT_FATAL(mgo_test_broker_stop(&broker) == 0);
                mgo_test_sleep_ms(200 + rand_r(&seed) % 1500);
                CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
                done_restarts++;
            }
        }
        if (operate((size_t)(rand_r(&seed) % (unsigned)ndev), &seed))
            operations++;
        mgo_test_sleep_ms(50 + rand_r(&seed) % 200);
    }
    free(restart_at);
    /* a manager that died during the loop (a crash) fails here, not after a wait per slot */
    int died = mgo_test_wait_exit(mgr.pid, 0);
    if (died != -1)
        fprintf(stderr, "soak: the manager exited (status %d) during the loop; its log is in %s\n",
                died, dir);
    CU_ASSERT_FATAL(died == -1);

    /* convergence: every device reports exactly what the manager wants */
    size_t present = 0, removed = 0, stuck = 0;
    for (long d = 0; d < ndev; d++) {
        for (int a = 0; a < NAPPS; a++) {
            struct slot *s = &slots[d][a];
            if (s->phase == 0)
                continue;
            /* present: installed at its latest version, on the wire and in the API;
             * removed: the API says removed, and the device said so too unless it never
             * acted on the deployment at all (added and removed while it was busy) */
            enum mgo_state want = s->phase == 1 ? MGO_STATE_INSTALLED : MGO_STATE_REMOVED;
            struct rel_status last;
            bool reported = rel_last(&rec, agents[d].id, s->id, &last);
            bool ok = true;
            if (s->phase == 1 || reported)
                ok = rel_wait_state(&rec, agents[d].id, s->id, want, s->phase == 1 ? s->version : 0,
                                    REL_WAIT_MS);
            char desired[32] = "", state[32] = "";
            deadline = mgo_test_now_ms() + REL_WAIT_MS;
            bool api_ok = false;
            do {
                (void)dep_version(s->id, desired, sizeof desired, state, sizeof state, NULL);
                api_ok = s->phase == 1 ? strcmp(state, "installed") == 0
                                       : strcmp(desired, "removed") == 0 &&
                                             (strcmp(state, "removed") == 0 || !reported);
                if (api_ok)
                    break;
                mgo_test_sleep_ms(200);
            } while (mgo_test_now_ms() < deadline);
            if (!ok || !api_ok) {
                stuck++;
                fprintf(stderr, "soak: %s %s: wanted %s at version %llu; API says %s/%s\n",
                        agents[d].id, s->id, mgo_state_name(want), (unsigned long long)s->version,
                        state, desired);
            }
            if (s->phase == 1)
                present++;
            else
                removed++;
        }
    }
    CU_ASSERT_EQUAL(stuck, 0);
    mgo_test_sleep_ms(1000);
    long rss_end = mgo_test_rss_kb(mgr.pid);

    /* the history: journaled by the agents = received on the wire = stored by the manager */
    size_t sent = 0;
    for (long d = 0; d < ndev; d++)
        sent += mgo_test_count_lines(agents[d].log, " (seq ");
    struct rel_check c;
    rel_check_history(&rec, NULL, &c);
    rel_check_print("soak", &c);
    size_t stored = 0;
    struct mgo_test_reply r;
    rel_api(mgr.api, mgr.token, "GET", "/api/v1/deployments?all=true", NULL, &r);
    const struct mgo_value *deps = mgo_value_get(&r.json, "deployments");
    for (size_t i = 0; deps && deps->kind == MGO_V_ARRAY && i < deps->as.array.len; i++) {
        size_t h = 0;
        (void)dep_version(mgo_test_jstr(&deps->as.array.items[i], "/id"), NULL, 0, NULL, 0, &h);
        stored += h;
    }
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_EQUAL(c.lost, 0);
    CU_ASSERT_EQUAL(c.duplicates, 0);
    CU_ASSERT_EQUAL(c.order, 0);
    CU_ASSERT_EQUAL(c.conflicts, 0);
    CU_ASSERT_EQUAL(c.manifest_regressions, 0);
    CU_ASSERT_EQUAL(sent, c.transitions);
    CU_ASSERT_EQUAL(stored, c.transitions);
    fprintf(stderr,
            "SOAK: devices %ld, seconds %ld, broker restarts %ld, changes %ld (present %zu, "
            "removed %zu), transitions sent %zu, received %zu, stored by the manager %zu, "
            "lost %zu, duplicates %zu, out of order %zu, manager RSS start %ld kB, end %ld kB\n",
            ndev, seconds, done_restarts, operations, present, removed, sent, c.transitions, stored,
            c.lost, c.duplicates, c.order, rss_start, rss_end);
    /* flat memory: no growth with the number of operations (generous: allocator noise) */
    CU_ASSERT(rss_end <= rss_start + rss_start / 2 + 16 * 1024);

    for (long d = 0; d < ndev; d++)
        rel_agent_stop(&agents[d]);
    rel_manager_stop(&mgr); /* exit 0, and LeakSanitizer found nothing */
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"7 soak: deploy/update/remove loop with broker restarts", test_soak},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.soak", cases);
}
