/* test_retained_status.c - the retained status never goes backwards (issue 18 item 3,
 * docs/protocol.md §6.3 [ACK-6], docs/reliability.md), with margo-manager and margo-agent as
 * real child processes so receipts flow as in production.
 *
 * One deployment is reconfigured four times; each time the agent is SIGKILLed at another
 * step of the install and started again:
 *   1. right after `pending` is journaled (before or while `installing` is);
 *   2. during the install (helm running, held by slow-helm);
 *   3. after helm finished, before the agent recorded and reported `installed`;
 *   4. after `installed` was reported.
 * A monitor subscribed from the start (the recorder, a persistent session) must never see,
 * for the deployment, a journal position that is older than one it saw before (the same
 * position again, a re-send, is fine), and must end with the newest status; a second monitor
 * subscribing at the end must get exactly that newest status, as retained. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "rel_util.h"

struct env {
    struct mgo_test_broker broker;
    struct rel_recorder rec;
    struct rel_manager mgr;
    struct rel_agent agent;
    char dir[256];
    char conf[512];
    char mark[512];
    char dep[64];
    bool live;
};

static struct env g;

static void slow(const char *before, const char *after)
{
    FILE *f = fopen(g.conf, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "SLOW_HELM_BEFORE=%s\nSLOW_HELM_AFTER=%s\nSLOW_HELM_MARK=%s\n", before ? before : "",
            after ? after : "", g.mark);
    fclose(f);
}

static void cleanup_all(void)
{
    if (!g.live)
        return;
    g.live = false;
    mgo_test_kill_children();
    rel_recorder_stop(&g.rec);
    mgo_test_broker_cleanup(&g.broker);
    if (getenv("MGO_TEST_KEEP") == NULL)
        mgo_test_rm_rf(g.dir);
    else
        fprintf(stderr, "kept %s\n", g.dir);
}

/* Positions of the deployment that arrived after a newer one (re-sends of the newest seen
 * so far are fine); prints each. *newest receives the newest position seen, *last the last
 * status that arrived. */
static size_t backwards(struct rel_status *newest, struct rel_status *last)
{
    size_t bad = 0;
    bool any = false;
    pthread_mutex_lock(&g.rec.mu);
    for (size_t i = 0; i < g.rec.st_len; i++) {
        const struct rel_status *s = &g.rec.st[i];
        if (strcmp(s->dep, g.dep) != 0)
            continue;
        if (any && mgo_pos_before(s->boot, s->seq, newest->boot, newest->seq)) {
            fprintf(stderr, "BACKWARDS: %s %llu.%llu after %s %llu.%llu\n",
                    mgo_state_name(s->state), (unsigned long long)s->boot,
                    (unsigned long long)s->seq, mgo_state_name(newest->state),
                    (unsigned long long)newest->boot, (unsigned long long)newest->seq);
            bad++;
        }
        if (!any || mgo_pos_before(newest->boot, newest->seq, s->boot, s->seq))
            *newest = *s;
        *last = *s;
        any = true;
    }
    pthread_mutex_unlock(&g.rec.mu);
    return bad;
}

/* What a monitor that subscribes now gets for the deployment within ms of subscribing: count,
 * the first. */
static int late_monitor(int ms, struct rel_status *first, bool *retained)
{
    struct mgo_mqtt_config c = {.url = mgo_test_broker_url(&g.broker),
                                .client_id = "rel-late-monitor",
                                .clean_start = true};
    struct mgo_mqtt *m = NULL;
    CU_ASSERT_FATAL(mgo_mqtt_new(&c, &m) == MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_connect(m) == MGO_OK);
    int n = 0;
    bool subscribed = false;
    /* the connection may take a while on a loaded machine: the window of ms for messages
     * starts once the subscription is made */
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_CONNECTED && !subscribed) {
            deadline = mgo_test_now_ms() + ms;
            char t[MGO_MAX_TOPIC_LEN + 1];
            CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_STATUS, g.agent.id, g.dep, t,
                                             sizeof t) == MGO_OK);
            CU_ASSERT_FATAL(mgo_mqtt_subscribe(m, t, 1, NULL) == MGO_OK);
            subscribed = true;
        } else if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0) {
            struct mgo_arena arena;
            mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
            struct mgo_problems p;
            mgo_problems_init(&p);
            struct mgo_deployment_status s;
            if (mgo_deployment_status_decode(ev.payload, ev.payload_len, &arena, &s, &p) ==
                    MGO_OK &&
                n++ == 0) {
                memset(first, 0, sizeof *first);
                first->state = s.state;
                first->boot = s.boot;
                first->seq = s.seq;
                first->adopted = s.adopted_manifest_version;
                *retained = ev.retained;
            }
            mgo_arena_cleanup(&arena);
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT(subscribed);
    if (mgo_mqtt_disconnect(m, 1000) != MGO_OK)
        fprintf(stderr, "late monitor: disconnect not clean\n");
    mgo_mqtt_free(m);
    return n;
}

/* Reconfigures the deployment (replicas); returns the new manifest version. The marks of
 * earlier helm calls are removed first, so a wait for one sees this install's. */
static uint64_t reconfigure(int replicas)
{
    char p[600];
    snprintf(p, sizeof p, "%s.start", g.mark);
    unlink(p);
    snprintf(p, sizeof p, "%s.done", g.mark);
    unlink(p);
    return rel_reconfigure(&g.mgr, g.dep, replicas);
}

static bool wait_file(const char *path)
{
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (!mgo_test_file_exists(path) && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(20);
    return mgo_test_file_exists(path);
}

/* SIGKILLs the agent and the slow-helm it may be running (it leads its own group). */
static void kill_agent(void)
{
    rel_agent_kill(&g.agent);
    char p[600];
    const char *suffix[] = {".start", ".done"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s%s", g.mark, suffix[i]);
        long pid = mgo_test_read_long(p);
        if (pid > 1)
            kill(-(pid_t)pid, SIGKILL);
        unlink(p);
    }
}

static void restart_and_converge(uint64_t version, const char *what)
{
    slow(NULL, NULL);
    rel_agent_start(&g.agent);
    bool ok = rel_wait_state(&g.rec, g.agent.id, g.dep, MGO_STATE_INSTALLED, version, REL_WAIT_MS);
    if (!ok)
        fprintf(stderr, "%s: not installed at manifest %llu\n", what, (unsigned long long)version);
    CU_ASSERT(ok);
    mgo_test_sleep_ms(500); /* re-sends and receipts settle */
}

static void test_killed_at_every_step(void)
{
    memset(&g, 0, sizeof g);
    atexit(cleanup_all);
    CU_ASSERT_FATAL(mgo_test_broker_start(&g.broker, NULL) == 0);
    g.live = true;
    mgo_test_tmpdir("retained", g.dir);
    char helm_log[512], releases[512], mdir[512];
    snprintf(helm_log, sizeof helm_log, "%s/helm.log", g.dir);
    snprintf(releases, sizeof releases, "%s/releases", g.dir);
    snprintf(g.conf, sizeof g.conf, "%s/slow-helm.conf", g.dir);
    snprintf(g.mark, sizeof g.mark, "%s/mark", g.dir);
    setenv("FAKE_HELM_LOG", helm_log, 1);
    setenv("FAKE_HELM_STATE", releases, 1);
    setenv("FAKE_HELM_MODE", "success", 1);
    setenv("SLOW_HELM_CONF", g.conf, 1);
    slow(NULL, NULL);
    const char *url = mgo_test_broker_url(&g.broker);
    rel_recorder_start(&g.rec, url, "rel-recorder-retained");
    snprintf(mdir, sizeof mdir, "%s/manager", g.dir);
    rel_manager_init(&g.mgr, mdir, url);
    rel_manager_start(&g.mgr);
    CU_ASSERT_FATAL(rel_manager_ready(&g.mgr, REL_WAIT_MS));
    rel_agent_init(&g.agent, g.dir, "dev-retained", url);
    rel_agent_start(&g.agent);

    rel_add_app(&g.mgr, MGO_REL_DATA "/rel-app1.yaml");
    CU_ASSERT_FATAL(rel_wait_devices(&g.mgr, 1));
    struct mgo_test_reply r;
    char body[256];
    snprintf(body, sizeof body, "{\"app\": \"rel-app1\", \"devices\": [\"%s\"]}", g.agent.id);
    rel_api(g.mgr.api, g.mgr.token, "POST", "/api/v1/deployments", body, &r);
    CU_ASSERT_FATAL(r.status == 201);
    snprintf(g.dep, sizeof g.dep, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_FATAL(rel_wait_state(&g.rec, g.agent.id, g.dep, MGO_STATE_INSTALLED, 0, REL_WAIT_MS));
    char start[600], done[600], pending_line[128];
    snprintf(start, sizeof start, "%s.start", g.mark);
    snprintf(done, sizeof done, "%s.done", g.mark);
    snprintf(pending_line, sizeof pending_line, "%s: pending (seq", g.dep);

    /* 1. right after pending is journaled */
    slow("60", NULL);
    size_t pendings = mgo_test_count_lines(g.agent.log, pending_line);
    uint64_t v = reconfigure(2);
    CU_ASSERT_FATAL(mgo_test_log_wait(g.agent.log, pending_line, pendings, REL_WAIT_MS));
    kill_agent();
    restart_and_converge(v, "killed after pending");

    /* 2. during the install (helm running) */
    slow("60", NULL);
    v = reconfigure(3);
    CU_ASSERT_FATAL(wait_file(start));
    kill_agent();
    restart_and_converge(v, "killed during installing");

    /* 3. after helm finished, before installed was recorded and reported */
    slow(NULL, "60");
    v = reconfigure(4);
    CU_ASSERT_FATAL(wait_file(done));
    kill_agent();
    restart_and_converge(v, "killed after the runtime finished");

    /* 4. after installed was reported */
    v = reconfigure(5);
    CU_ASSERT_FATAL(rel_wait_state(&g.rec, g.agent.id, g.dep, MGO_STATE_INSTALLED, v, REL_WAIT_MS));
    kill_agent();
    restart_and_converge(v, "killed after installed");
    mgo_test_sleep_ms(1500); /* whatever the restarts re-send has arrived */

    struct rel_status newest, last;
    memset(&newest, 0, sizeof newest);
    memset(&last, 0, sizeof last);
    size_t bad = backwards(&newest, &last);
    fprintf(stderr,
            "recorder: newest %s %llu.%llu adopted %llu, last %s %llu.%llu, %zu "
            "backwards\n",
            mgo_state_name(newest.state), (unsigned long long)newest.boot,
            (unsigned long long)newest.seq, (unsigned long long)newest.adopted,
            mgo_state_name(last.state), (unsigned long long)last.boot, (unsigned long long)last.seq,
            bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(newest.state, MGO_STATE_INSTALLED);
    CU_ASSERT_EQUAL(newest.adopted, v);
    CU_ASSERT(last.boot == newest.boot && last.seq == newest.seq); /* ends with the newest */

    struct rel_status first;
    bool retained = false;
    memset(&first, 0, sizeof first);
    int n = late_monitor(3000, &first, &retained);
    fprintf(stderr, "late monitor: %d statuses, first %s %llu.%llu%s\n", n,
            mgo_state_name(first.state), (unsigned long long)first.boot,
            (unsigned long long)first.seq, retained ? " (retained)" : "");
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT(retained);
    CU_ASSERT_EQUAL(first.boot, newest.boot);
    CU_ASSERT_EQUAL(first.seq, newest.seq);
    CU_ASSERT_EQUAL(first.state, MGO_STATE_INSTALLED);

    /* the usual history checks too: nothing lost or duplicated */
    struct rel_check c;
    rel_check_history(&g.rec, g.agent.id, &c);
    rel_check_print("agent killed at every step, with a manager", &c);
    CU_ASSERT_EQUAL(c.lost, 0);
    CU_ASSERT_EQUAL(c.duplicates, 0);
    CU_ASSERT_EQUAL(c.conflicts, 0);

    rel_agent_stop(&g.agent);
    rel_manager_stop(&g.mgr);
    cleanup_all();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"agent killed at every step of an install: the retained status never goes backwards",
         test_killed_at_every_step},
        {NULL, NULL},
    };
    mgo_test_add_suite("reliability.retained_status", cases);
}
