/* test_agent_faults.c - margo-agent as a real child process under faults (issue 7 items 1,
 * 2, 4, 5 and the agent half of 6): broker restarted mid-deployment, SIGKILL at each step
 * of an install, a device offline through several changes, a network partition longer
 * than the keepalive, a full or read-only state directory.
 *
 * The "manager" here is a plain MQTT client publishing retained documents and manifests
 * exactly as margo-manager does (protocol.md §7). Every case checks the final state, the
 * fake-helm argument log (what was installed how often) and the full ordered status
 * history seen by an independent recorder (rel_util.h): no transition lost, none
 * duplicated, order per deployment kept. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "rel_util.h"

#define ID_A "22222222-2222-4222-8222-22222222222a"
#define ID_B "22222222-2222-4222-8222-22222222222b"
#define ID_C "22222222-2222-4222-8222-22222222222c"
#define ID_D "22222222-2222-4222-8222-22222222222d"
#define ID_E "22222222-2222-4222-8222-22222222222e"
#define ID_F "22222222-2222-4222-8222-22222222222f"

/* ---- the publishing side (what margo-manager sends) ------------------------------------ */

struct doc {
    char digest[MGO_DIGEST_STR_SIZE];
};

/* Two Helm components per deployment: releases NAME-web and NAME-db, chart revision rev. */
static void publish_doc(const char *url, const char *device, const char *id, const char *name,
                        const char *rev, struct doc *out)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "apiVersion: application.margo.org/v1alpha1\nkind: ApplicationDeployment\n"
             "metadata:\n  annotations:\n    applicationId: rel-app\n    id: %s\n"
             "  name: %s\n  namespace: edge\n  deviceId: %s\n"
             "spec:\n  deploymentProfile:\n    type: helm.v3\n    components:\n"
             "      - name: %s-web\n        properties:\n"
             "          repository: oci://registry.example/charts/web\n"
             "          revision: %s\n          wait: true\n          timeout: 2m0s\n"
             "      - name: %s-db\n        properties:\n"
             "          repository: oci://registry.example/charts/db\n"
             "          revision: %s\n          wait: true\n          timeout: 2m0s\n"
             "  parameters:\n    replicas:\n      value: 1\n      targets:\n"
             "        - pointer: replicas\n          components: [%s-web]\n",
             id, name, device, name, rev, name, rev, name);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value root;
    CU_ASSERT_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &root, &p) == MGO_OK);
    struct mgo_buf bytes;
    mgo_buf_init(&bytes, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_value_to_msgpack(&root, &bytes) == MGO_OK);
    CU_ASSERT_FATAL(mgo_doc_digest(&root, out->digest) == MGO_OK);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, device, id, t, sizeof t) ==
                    MGO_OK);
    rel_publish(url, "rel-publisher", t, bytes.data, bytes.len);
    mgo_buf_cleanup(&bytes);
    mgo_arena_cleanup(&arena);
}

static void publish_manifest(const char *url, const char *device, uint64_t version, size_t n,
                             const char *const *ids, const struct doc *const *docs)
{
    struct mgo_desired_ref refs[16];
    memset(refs, 0, sizeof refs);
    for (size_t i = 0; i < n; i++) {
        refs[i].deployment_id = ids[i];
        refs[i].digest = docs[i]->digest;
    }
    struct mgo_desired_state ds = {.manifest_version = version,
                                   .device_id = device,
                                   .deployments = refs,
                                   .deployments_len = n};
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_desired_state_encode(&ds, &buf) == MGO_OK);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DESIRED, device, NULL, t, sizeof t) ==
                    MGO_OK);
    rel_publish(url, "rel-publisher", t, buf.data, buf.len);
    mgo_buf_cleanup(&buf);
}

static void clear_doc(const char *url, const char *device, const char *id)
{
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, device, id, t, sizeof t) ==
                    MGO_OK);
    rel_publish(url, "rel-publisher", t, "", 0);
}

/* fake-helm log lines: "upgrade --install RELEASE ... --version REV" */
static size_t upgrades(const struct rel_env *e, const char *release, const char *rev)
{
    char needle[256];
    snprintf(needle, sizeof needle, "upgrade\x1f--install\x1f%s\x1f", release);
    FILE *f = fopen(e->helm_log, "r");
    if (f == NULL)
        return 0;
    char line[8192], revn[64];
    snprintf(revn, sizeof revn, "--version\x1f%s\x1f", rev);
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, needle) != NULL && (rev == NULL || strstr(line, revn) != NULL))
            n++;
    fclose(f);
    return n;
}

static size_t uninstalls(const struct rel_env *e, const char *release)
{
    char needle[256];
    snprintf(needle, sizeof needle, "uninstall\x1f%s\x1f", release);
    return mgo_test_count_lines(e->helm_log, needle);
}

static void expect_state(struct rel_env *e, const char *dev, const char *dep, enum mgo_state st,
                         uint64_t adopted)
{
    bool ok = rel_wait_state(&e->rec, dev, dep, st, adopted, REL_WAIT_MS);
    if (!ok) {
        struct rel_status s;
        bool any = rel_last(&e->rec, dev, dep, &s);
        fprintf(stderr, "%s %s: wanted %s adopted >= %llu, last is %s adopted %llu\n", dev, dep,
                mgo_state_name(st), (unsigned long long)adopted,
                any ? mgo_state_name(s.state) : "(none)",
                any ? (unsigned long long)s.adopted : 0ull);
    }
    CU_ASSERT(ok);
}

/* ---- 1. broker restarted in the middle of a deployment -------------------------------- */

static void test_broker_restart_mid_deployment(void)
{
    static struct rel_env e;
    rel_env_start(&e, "broker", "rel-recorder");
    const char *url = mgo_test_broker_url(&e.broker);
    struct rel_agent a;
    rel_agent_init(&a, e.dir, "dev-broker", url);
    rel_env_slow(&e, "1", NULL, false); /* every install takes a second: 4 of them */
    rel_agent_start(&a);
    struct doc da, db;
    publish_doc(url, a.id, ID_A, "alpha", "1.0.0", &da);
    publish_doc(url, a.id, ID_B, "beta", "1.0.0", &db);
    const char *ids[] = {ID_A, ID_B};
    const struct doc *docs[] = {&da, &db};
    publish_manifest(url, a.id, 1, 2, ids, docs);

    /* mid-deployment: the first component is being installed */
    CU_ASSERT_FATAL(rel_wait_state(&e.rec, a.id, ID_A, MGO_STATE_INSTALLING, 1, REL_WAIT_MS));
    CU_ASSERT_FATAL(mgo_test_broker_stop(&e.broker) == 0);
    mgo_test_sleep_ms(2500); /* the agent goes on installing and journaling, offline */
    CU_ASSERT_FATAL(mgo_test_broker_restart(&e.broker) == 0);

    expect_state(&e, a.id, ID_A, MGO_STATE_INSTALLED, 1);
    expect_state(&e, a.id, ID_B, MGO_STATE_INSTALLED, 1);
    rel_env_slow(&e, NULL, NULL, false);
    /* every release installed exactly once */
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", "1.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-db", "1.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "beta-web", "1.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "beta-db", "1.0.0"), 1);
    /* each deployment: pending once, installed once */
    CU_ASSERT_EQUAL(rel_count_state(&e.rec, a.id, ID_A, MGO_STATE_INSTALLED) >= 1, true);
    rel_agent_stop(&a);
    rel_env_check_history(&e, "broker restart mid-deployment");
    rel_env_cleanup(&e);
}

/* ---- 2. agent SIGKILLed at each step of an install ---------------------------------- */

static void kill_group(const char *mark_file)
{
    long pid = mgo_test_read_long(mark_file);
    if (pid > 1)
        kill(-(pid_t)pid, SIGKILL); /* rel_env_slow-helm leads its own process group */
}

static void test_agent_killed_at_each_step(void)
{
    static struct rel_env e;
    rel_env_start(&e, "kill", "rel-recorder");
    const char *url = mgo_test_broker_url(&e.broker);
    struct rel_agent a;
    rel_agent_init(&a, e.dir, "dev-kill", url);
    const char *ids[] = {ID_A};
    struct doc d1, d2, d3, d4;
    const struct doc *docs[1];

    /* (a) killed after the manifest arrived, before it was accepted (nothing fetched or
     * stored yet): a long settle time keeps it in memory only */
    struct rel_agent settling = a;
    rel_agent_opt(&settling, "settle-ms", "4000");
    rel_agent_start(&settling);
    publish_doc(url, a.id, ID_A, "alpha", "1.0.0", &d1);
    docs[0] = &d1;
    publish_manifest(url, a.id, 1, 1, ids, docs);
    CU_ASSERT_FATAL(mgo_test_log_wait(a.log, "manifest 1 received", 0, REL_WAIT_MS));
    rel_agent_kill(&settling);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", NULL), 0);
    rel_agent_start(&a);
    expect_state(&e, a.id, ID_A, MGO_STATE_INSTALLED, 1);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", "1.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-db", "1.0.0"), 1);

    /* (b) killed during the install (helm running): the interrupted step runs again once,
     * the rest follows */
    char start[600], done[600];
    snprintf(start, sizeof start, "%s.start", e.mark);
    snprintf(done, sizeof done, "%s.done", e.mark);
    rel_env_slow(&e, "60", NULL, true);
    publish_doc(url, a.id, ID_A, "alpha", "2.0.0", &d2);
    docs[0] = &d2;
    publish_manifest(url, a.id, 2, 1, ids, docs);
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (!mgo_test_file_exists(start) && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(20);
    CU_ASSERT_FATAL(mgo_test_file_exists(start));
    rel_agent_kill(&a);
    kill_group(start);
    unlink(start);
    rel_env_slow(&e, NULL, NULL, false);
    rel_agent_start(&a);
    expect_state(&e, a.id, ID_A, MGO_STATE_INSTALLED, 2);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", "2.0.0"), 1); /* the killed one never ran helm */
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-db", "2.0.0"), 1);

    /* (c) killed after helm finished, before the agent recorded and reported it: the
     * agent cannot know the step finished, so it runs that idempotent step once more
     * (helm upgrade --install), and nothing else */
    rel_env_slow(&e, NULL, "60", true);
    unlink(done);
    publish_doc(url, a.id, ID_A, "alpha", "3.0.0", &d3);
    docs[0] = &d3;
    publish_manifest(url, a.id, 3, 1, ids, docs);
    deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (!mgo_test_file_exists(done) && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(20);
    CU_ASSERT_FATAL(mgo_test_file_exists(done));
    rel_agent_kill(&a);
    kill_group(done);
    unlink(start);
    unlink(done);
    rel_env_slow(&e, NULL, NULL, false);
    rel_agent_start(&a);
    expect_state(&e, a.id, ID_A, MGO_STATE_INSTALLED, 3);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", "3.0.0"), 2);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-db", "3.0.0"), 1);

    /* (d) killed after the final status was journaled but before it reached the broker
     * (broker down): the restart publishes it from the journal, with its original
     * position, and installs nothing */
    rel_env_slow(&e, "2", NULL, false);
    publish_doc(url, a.id, ID_A, "alpha", "4.0.0", &d4);
    docs[0] = &d4;
    publish_manifest(url, a.id, 4, 1, ids, docs);
    CU_ASSERT_FATAL(rel_wait_state(&e.rec, a.id, ID_A, MGO_STATE_INSTALLING, 4, REL_WAIT_MS));
    size_t journaled = mgo_test_count_lines(a.log, ID_A ": installed (seq");
    CU_ASSERT_FATAL(mgo_test_broker_stop(&e.broker) == 0);
    CU_ASSERT_FATAL(mgo_test_log_wait(a.log, ID_A ": installed (seq", journaled, REL_WAIT_MS));
    rel_agent_kill(&a);
    rel_env_slow(&e, NULL, NULL, false);
    CU_ASSERT_FATAL(mgo_test_broker_restart(&e.broker) == 0);
    struct rel_status before;
    CU_ASSERT_FATAL(rel_last(&e.rec, a.id, ID_A, &before));
    CU_ASSERT_NOT_EQUAL(before.state, MGO_STATE_INSTALLED);
    rel_agent_start(&a);
    expect_state(&e, a.id, ID_A, MGO_STATE_INSTALLED, 4);
    struct rel_status after;
    CU_ASSERT_FATAL(rel_last(&e.rec, a.id, ID_A, &after));
    CU_ASSERT_EQUAL(after.boot, before.boot); /* the journaled position, not a new one */
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", "4.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-db", "4.0.0"), 1);

    rel_agent_stop(&a);
    rel_env_check_history(&e, "agent killed at each step");
    rel_env_cleanup(&e);
}

/* ---- 4. device offline through several changes -------------------------------------- */

static void test_offline_converges_to_final_state(void)
{
    static struct rel_env e;
    rel_env_start(&e, "offline", "rel-recorder");
    const char *url = mgo_test_broker_url(&e.broker);
    struct rel_agent a;
    rel_agent_init(&a, e.dir, "dev-offline", url);
    rel_agent_start(&a);
    struct doc da, db, dc1, dc2, dc3;
    publish_doc(url, a.id, ID_A, "alpha", "1.0.0", &da);
    publish_doc(url, a.id, ID_B, "beta", "1.0.0", &db);
    const char *ids1[] = {ID_A, ID_B};
    const struct doc *docs1[] = {&da, &db};
    publish_manifest(url, a.id, 1, 2, ids1, docs1);
    expect_state(&e, a.id, ID_A, MGO_STATE_INSTALLED, 1);
    expect_state(&e, a.id, ID_B, MGO_STATE_INSTALLED, 1);
    rel_agent_kill(&a); /* the device loses power */

    /* while it is away: C created (v2), C updated twice (v3, v4), B deleted (v4); and the
     * broker restarts in the middle */
    publish_doc(url, a.id, ID_C, "gamma", "1.0.0", &dc1);
    const char *ids2[] = {ID_A, ID_B, ID_C};
    const struct doc *docs2[] = {&da, &db, &dc1};
    publish_manifest(url, a.id, 2, 3, ids2, docs2);
    publish_doc(url, a.id, ID_C, "gamma", "2.0.0", &dc2);
    const struct doc *docs3[] = {&da, &db, &dc2};
    publish_manifest(url, a.id, 3, 3, ids2, docs3);
    CU_ASSERT_FATAL(mgo_test_broker_restart(&e.broker) == 0);
    publish_doc(url, a.id, ID_C, "gamma", "3.0.0", &dc3);
    const char *ids4[] = {ID_A, ID_C};
    const struct doc *docs4[] = {&da, &dc3};
    publish_manifest(url, a.id, 4, 2, ids4, docs4);
    clear_doc(url, a.id, ID_B);

    rel_agent_start(&a);
    expect_state(&e, a.id, ID_C, MGO_STATE_INSTALLED, 4);
    expect_state(&e, a.id, ID_B, MGO_STATE_REMOVED, 4);
    mgo_test_sleep_ms(1000);
    /* the final state only: gamma 3.0.0, never 1.0.0 or 2.0.0; beta uninstalled once;
     * alpha untouched */
    CU_ASSERT_EQUAL(upgrades(&e, "gamma-web", "1.0.0"), 0);
    CU_ASSERT_EQUAL(upgrades(&e, "gamma-web", "2.0.0"), 0);
    CU_ASSERT_EQUAL(upgrades(&e, "gamma-web", "3.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "gamma-db", "3.0.0"), 1);
    CU_ASSERT_EQUAL(uninstalls(&e, "beta-web"), 1);
    CU_ASSERT_EQUAL(uninstalls(&e, "beta-db"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "alpha-web", NULL), 1);
    /* no status ever names the intermediate versions 2 or 3 */
    pthread_mutex_lock(&e.rec.mu);
    size_t intermediate = 0;
    for (size_t i = 0; i < e.rec.st_len; i++)
        if (e.rec.st[i].adopted == 2 || e.rec.st[i].adopted == 3)
            intermediate++;
    pthread_mutex_unlock(&e.rec.mu);
    CU_ASSERT_EQUAL(intermediate, 0);
    rel_agent_stop(&a);
    rel_env_check_history(&e, "offline through several changes");
    rel_env_cleanup(&e);
}

/* ---- 5. network partition longer than the keepalive ------------------------------------ */

static size_t presence_count(struct rel_recorder *r, const char *dev, bool online, bool will)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->pr_len; i++)
        if (strcmp(r->pr[i].device, dev) == 0 && r->pr[i].online == online &&
            (!will || !r->pr[i].has_timestamp))
            n++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void test_partition_longer_than_keepalive(void)
{
    static struct rel_env e;
    rel_env_start(&e, "partition", "rel-recorder");
    const char *url = mgo_test_broker_url(&e.broker);
    struct rel_proxy proxy;
    CU_ASSERT_FATAL(rel_proxy_start(&proxy, e.broker.port) == 0);
    struct rel_agent a;
    rel_agent_init(&a, e.dir, "dev-partition", proxy.url);
    rel_agent_opt(&a, "reconcile-interval", "1"); /* drift repairs give it work offline */
    rel_agent_start(&a);
    struct doc dd;
    publish_doc(url, a.id, ID_D, "delta", "1.0.0", &dd);
    const char *ids[] = {ID_D};
    const struct doc *docs[] = {&dd};
    publish_manifest(url, a.id, 1, 1, ids, docs);
    expect_state(&e, a.id, ID_D, MGO_STATE_INSTALLED, 1);
    struct rel_presence p;
    CU_ASSERT_FATAL(rel_last_presence(&e.rec, a.id, &p) && p.online);
    uint64_t boot = p.boot;
    size_t installed_before = rel_count_state(&e.rec, a.id, ID_D, MGO_STATE_INSTALLED);

    /* partition: nothing flows, nothing is closed; the broker's keepalive (1.5 x 5 s)
     * expires and it publishes the last will */
    rel_proxy_freeze(&proxy, true);
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (presence_count(&e.rec, a.id, false, true) == 0 && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT_FATAL(presence_count(&e.rec, a.id, false, true) == 1);
    CU_ASSERT_FATAL(rel_last_presence(&e.rec, a.id, &p));
    CU_ASSERT(!p.online && p.boot == boot);
    /* while partitioned, the release disappears; the agent repairs it and journals the
     * transitions it cannot send */
    char rel[600];
    snprintf(rel, sizeof rel, "%s/delta-web", e.releases);
    CU_ASSERT_FATAL(unlink(rel) == 0);
    CU_ASSERT_FATAL(mgo_test_log_wait(a.log, ID_D ": installed (seq", 1, REL_WAIT_MS));
    CU_ASSERT_EQUAL(rel_count_state(&e.rec, a.id, ID_D, MGO_STATE_INSTALLED), installed_before);

    /* healed: online again (same boot), the journal replays, in order */
    rel_proxy_freeze(&proxy, false);
    deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (rel_count_state(&e.rec, a.id, ID_D, MGO_STATE_INSTALLED) <= installed_before &&
           mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT(rel_count_state(&e.rec, a.id, ID_D, MGO_STATE_INSTALLED) > installed_before);
    CU_ASSERT(rel_count_state(&e.rec, a.id, ID_D, MGO_STATE_INSTALLING) >= 1);
    /* the online presence and the replay are separate publishes: wait for both */
    while (presence_count(&e.rec, a.id, true, false) < 2 && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT_FATAL(rel_last_presence(&e.rec, a.id, &p));
    CU_ASSERT(p.online && p.boot == boot);
    CU_ASSERT(presence_count(&e.rec, a.id, true, false) >= 2);
    CU_ASSERT_EQUAL(upgrades(&e, "delta-web", "1.0.0"), 2); /* install + one repair */
    rel_agent_stop(&a);
    rel_proxy_stop(&proxy);
    rel_env_check_history(&e, "partition longer than the keepalive");
    rel_env_cleanup(&e);
}

/* ---- 6. state directory full, then read-only ----------------------------------------- */

static void test_state_dir_full_and_read_only(void)
{
    static struct rel_env e;
    rel_env_start(&e, "disk", "rel-recorder");
    const char *url = mgo_test_broker_url(&e.broker);
    char mnt[512];
    snprintf(mnt, sizeof mnt, "%s/disk", e.dir);
    CU_ASSERT_FATAL(mkdir(mnt, 0755) == 0);
    if (mgo_test_sh("mount -t tmpfs -o size=1m mgo-rel-tmpfs '%s' 2>/dev/null", mnt) != 0) {
        fprintf(stderr, "SKIPPED: cannot mount a tmpfs here (needs root); the full and "
                        "read-only state directory cases did not run\n");
        rel_env_cleanup(&e);
        return;
    }
    struct rel_agent a;
    rel_agent_init(&a, mnt, "dev-disk", url);
    snprintf(a.log, sizeof a.log, "%s/dev-disk.log", e.dir); /* the log is not on the disk */
    rel_agent_start(&a);
    struct doc d_e, d_f;
    publish_doc(url, a.id, ID_E, "epsilon", "1.0.0", &d_e);
    const char *ids1[] = {ID_E};
    const struct doc *docs1[] = {&d_e};
    publish_manifest(url, a.id, 1, 1, ids1, docs1);
    expect_state(&e, a.id, ID_E, MGO_STATE_INSTALLED, 1);

    /* full: a new deployment cannot be recorded; the agent says so, acts on nothing and
     * keeps running */
    (void)mgo_test_sh("dd if=/dev/zero of='%s/filler' bs=4k 2>/dev/null", mnt);
    publish_doc(url, a.id, ID_F, "phi", "1.0.0", &d_f);
    const char *ids2[] = {ID_E, ID_F};
    const struct doc *docs2[] = {&d_e, &d_f};
    publish_manifest(url, a.id, 2, 2, ids2, docs2);
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (rel_count_events(&e.rec, a.id, "storage-error") == 0 && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(100);
    CU_ASSERT(rel_count_events(&e.rec, a.id, "storage-error") >= 1);
    CU_ASSERT(mgo_test_log_wait(a.log, "No space left on device", 0, 1000));
    CU_ASSERT_EQUAL(mgo_test_wait_exit(a.pid, 0), -1); /* still running */
    CU_ASSERT_EQUAL(upgrades(&e, "phi-web", NULL), 0);
    struct rel_status s;
    CU_ASSERT(!rel_last(&e.rec, a.id, ID_F, &s));

    /* space again: it accepts the manifest by itself and converges */
    (void)mgo_test_sh("rm -f '%s/filler'", mnt);
    expect_state(&e, a.id, ID_F, MGO_STATE_INSTALLED, 2);
    CU_ASSERT_EQUAL(upgrades(&e, "phi-web", "1.0.0"), 1);
    CU_ASSERT_EQUAL(upgrades(&e, "epsilon-web", NULL), 1);
    rel_agent_stop(&a);

    /* read-only: the agent refuses to start with a clear error and changes nothing */
    char state_file[600], before[256] = "", after[256] = "";
    snprintf(state_file, sizeof state_file, "%s/agent.state", a.state_dir);
    FILE *f = fopen(state_file, "r");
    CU_ASSERT_FATAL(f != NULL);
    size_t nb = fread(before, 1, sizeof before - 1, f);
    before[nb] = '\0';
    fclose(f);
    CU_ASSERT_FATAL(mgo_test_sh("mount -o remount,ro '%s'", mnt) == 0);
    size_t ro_lines = mgo_test_count_lines(a.log, "Read-only file system");
    rel_agent_start(&a);
    int rc = mgo_test_wait_exit(a.pid, REL_WAIT_MS);
    a.pid = 0;
    CU_ASSERT(rc != 0 && rc != -1 && rc < 128); /* an exit with an error, not a crash */
    CU_ASSERT(mgo_test_count_lines(a.log, "Read-only file system") > ro_lines);
    CU_ASSERT_FATAL(mgo_test_sh("mount -o remount,rw '%s'", mnt) == 0);
    f = fopen(state_file, "r");
    CU_ASSERT_FATAL(f != NULL);
    nb = fread(after, 1, sizeof after - 1, f);
    after[nb] = '\0';
    fclose(f);
    CU_ASSERT_STRING_EQUAL(before, after);
    /* writable again: it starts, and everything it had is still there */
    rel_agent_start(&a);
    CU_ASSERT(mgo_test_log_wait(a.log, "2 deployments", 0, REL_WAIT_MS));
    mgo_test_sleep_ms(1500);
    CU_ASSERT_EQUAL(upgrades(&e, "phi-web", NULL), 1);
    rel_agent_stop(&a);
    (void)mgo_test_sh("umount '%s'", mnt);
    rel_env_check_history(&e, "state directory full / read-only");
    rel_env_cleanup(&e);
}

static void cleanup_mounts(void)
{
    (void)mgo_test_sh(
        "for m in $(grep mgo-rel-tmpfs /proc/mounts | cut -d' ' -f2); do umount $m; done"
        " 2>/dev/null");
}

void mgo_test_register(void)
{
    atexit(cleanup_mounts);
    static const struct mgo_test_case cases[] = {
        {"1 broker restarted mid-deployment", test_broker_restart_mid_deployment},
        {"2 agent SIGKILLed before accept, during install, after install, before publish",
         test_agent_killed_at_each_step},
        {"4 offline through create, two updates and a delete",
         test_offline_converges_to_final_state},
        {"5 partition longer than the keepalive", test_partition_longer_than_keepalive},
        {"6 state directory full, then read-only", test_state_dir_full_and_read_only},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.agent", cases);
}
