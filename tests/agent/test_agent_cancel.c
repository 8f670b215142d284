/* test_agent_cancel.c - a newer manifest cancels an install in progress (issue 13), with the
 * whole agent on a real Mosquitto and a compose command that takes 60 s:
 *
 * - removal: while the slow install runs, the agent still answers (a bad document gets its
 *   "deployment-invalid" event at once; a second manifest keeping the install and adding a
 *   deployment is accepted and the new one reported pending at once); a manifest that drops the
 * deployment stops the install (the compose process group is killed), "compose down" starts within
 * 2 s, the cancelled install reports failed/CANCELLED and the deployment ends removed;
 * - update: a manifest that gives the deployment another document mid-install cancels it
 *   the same way and the new document is applied (installed, adopted by the new manifest).
 *
 * The compose command is a fake (a shell script that logs each call and sleeps 60 s when
 * the parameter MODE is "slow"); the package comes from a loopback busybox httpd. */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "harness.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "state.h"

#define DEP "33333333-3333-4333-8333-333333333333"
#define OTHER "44444444-4444-4444-8444-444444444444"
#define NOT_OTHER "55555555-5555-4555-8555-555555555555" /* a topic OTHER is published on */
/* The bound the issue sets: removal starts this soon after the manifest is published. */
#define CANCEL_BUDGET_MS 2000

static char dir[256];
static char http_port[16];
static struct mgo_test_broker broker;

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

static int setup(void)
{
    mgo_test_tmpdir("agent-cancel", dir);
    /* fake compose: one log line per call ("up MODE" / "down", MODE read from the .env the
     * agent writes in its working folder); "up" with MODE=slow writes its pid and sleeps
     * 60 s (the test checks the process is gone after the cancel) */
    char p[512];
    snprintf(p, sizeof p, "%s/fake-compose", dir);
    FILE *f = fopen(p, "w");
    if (f == NULL)
        return 1;
    fprintf(f,
            "#!/bin/sh\n"
            "verb=''\n"
            "for a in \"$@\"; do case \"$a\" in up|down) verb=$a;; esac; done\n"
            "case \" $* \" in *' ps '*) echo 'web-1 running'; exit 0;; esac\n"
            /* parameters reach compose through the project's .env, never its environment */
            "MODE=$(sed -n 's/^MODE=//p' .env 2>/dev/null | tr -d \"'\\\"\")\n"
            "echo \"$verb ${MODE-}\" >> %s/compose.log\n"
            "if [ \"$verb\" = up ] && [ \"${MODE-}\" = slow ]; then\n"
            "  echo $$ > %s/slow.pid\n"
            "  sleep 60\n"
            "  echo 'up finished' >> %s/compose.log\n"
            "fi\n"
            "exit 0\n",
            dir, dir, dir);
    fclose(f);
    if (mgo_test_sh("set -e; cd %s; chmod +x fake-compose; mkdir -p www; "
                    "printf 'services:\\n  web:\\n    image: busybox\\n' > www/app.yaml; "
                    "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                    "print(s.getsockname()[1])' > port; "
                    "(busybox httpd -f -p 127.0.0.1:$(cat port) -h www > httpd.log 2>&1 & "
                    "echo $! > httpd.pid)",
                    dir) != 0)
        return 1;
    mgo_test_sh_out(http_port, sizeof http_port, "cat %s/port", dir);
    memset(&broker, 0, sizeof broker);
    return mgo_test_broker_start(&broker, NULL) == 0 ? 0 : 1;
}

static void teardown(void)
{
    mgo_test_broker_cleanup(&broker);
    (void)mgo_test_sh("cd %s && kill $(cat httpd.pid) 2>/dev/null; "
                      "[ -f slow.pid ] && kill $(cat slow.pid) 2>/dev/null; true",
                      dir);
    if (mgo_agent__rm_rf(dir) != MGO_OK)
        fprintf(stderr, "%s not removed\n", dir);
}

/* One broker, fake compose and package server for every case; gone at exit. */
static void ensure_setup(void)
{
    static bool ready;
    if (ready)
        return;
    CU_ASSERT_FATAL(setup() == 0);
    ready = true;
    atexit(teardown);
}

static void publish_dep(struct mgo_mqtt *mgr, const char *dev, const char *id, const char *mode,
                        char digest[MGO_DIGEST_STR_SIZE])
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "apiVersion: application.margo.org/v1alpha1\n"
             "kind: ApplicationDeployment\n"
             "metadata:\n"
             "  annotations: {applicationId: slow-app, id: %s}\n"
             "  name: slow-app\n"
             "  namespace: default\n"
             "spec:\n"
             "  deploymentProfile:\n"
             "    type: compose\n"
             "    components:\n"
             "      - name: web\n"
             "        properties: {packageLocation: 'http://127.0.0.1:%s/app.yaml', "
             "timeout: 2m0s}\n"
             "  parameters:\n"
             "    mode: {value: %s, targets: [{pointer: MODE, components: [web]}]}\n",
             id, http_port, mode);
    h_publish_doc(mgr, dev, id, yaml, digest);
}

static void start_agent(struct h_agent *a, const char *dev)
{
    char state_dir[512], compose[512];
    snprintf(state_dir, sizeof state_dir, "%s/state-%s", dir, dev);
    snprintf(compose, sizeof compose, "%s/fake-compose", dir);
    h_agent_init(a, "device-id", dev, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "compose-command", compose, "container-command", compose,
                 "helm-command", "mgo-no-helm-here", "reconcile-interval", "3600", "settle-ms",
                 "200", "default-timeout", "120", NULL);
    h_agent_start(a);
}

static size_t log_lines(const char *needle)
{
    char p[512];
    snprintf(p, sizeof p, "%s/compose.log", dir);
    return mgo_test_count_lines(p, needle);
}

/* Waits until the slow "compose up" runs (its pid file) and returns the pid. */
static pid_t wait_slow_pid(void)
{
    char p[512], text[32] = "";
    snprintf(p, sizeof p, "%s/slow.pid", dir);
    for (int i = 0; i < 300; i++) {
        if (mgo_test_sh_out(text, sizeof text, "cat %s 2>/dev/null", p) == 0 && text[0] != '\0')
            return (pid_t)atol(text);
        usleep(100 * 1000);
    }
    return 0;
}

static const struct h_status *find_status(const struct h_monitor *mon, const char *dep,
                                          enum mgo_state st, const char *code)
{
    for (size_t i = 0; i < mon->len; i++)
        if (strcmp(mon->items[i].deployment_id, dep) == 0 && mon->items[i].state == st &&
            (code == NULL || strcmp(mon->items[i].error_code, code) == 0))
            return &mon->items[i];
    return NULL;
}

/* The newest status of dep (a monitor always holds one here). */
static const struct h_status *last_of(const struct h_monitor *mon, const char *dep)
{
    for (size_t i = mon->len; i > 0; i--)
        if (strcmp(mon->items[i - 1].deployment_id, dep) == 0)
            return &mon->items[i - 1];
    CU_FAIL_FATAL("no status of the deployment");
    return NULL;
}

static void test_remove_cancels_slow_install(void)
{
    const char *dev = "dev-cancel-remove";
    ensure_setup();
    (void)mgo_test_sh("rm -f %s/compose.log %s/slow.pid", dir, dir);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), dev);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-cancel-remove");
    struct h_agent agent;
    start_agent(&agent, dev);

    char d[MGO_DIGEST_STR_SIZE];
    publish_dep(mgr, dev, DEP, "slow", d);
    const char *ids[] = {DEP};
    const char *dg[] = {d};
    h_publish_manifest(mgr, dev, 1, 1, ids, dg);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLING, 20000));
    pid_t slow = wait_slow_pid();
    CU_ASSERT_FATAL(slow > 0);

    /* the loop still answers while the runtime works: a document whose id does not match
     * its topic is refused with an event at once */
    size_t events = mon.events;
    char bad[MGO_DIGEST_STR_SIZE];
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(
        mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, dev, NOT_OTHER, t, sizeof t) == MGO_OK);
    struct mgo_buf bytes;
    h_doc("apiVersion: application.margo.org/v1alpha1\nkind: ApplicationDeployment\n"
          "metadata: {annotations: {applicationId: x, id: " OTHER "}, name: x, namespace: d}\n"
          "spec: {deploymentProfile: {type: compose, components: [{name: web, properties: "
          "{packageLocation: 'http://127.0.0.1:1/x.yaml'}}]}}\n",
          &bytes, bad);
    long t_bad = now_ms();
    h_publish(mgr, t, bytes.data, bytes.len);
    mgo_buf_cleanup(&bytes);
    while (mon.events == events && now_ms() - t_bad < 5000)
        h_monitor_pump(&mon, 100);
    CU_ASSERT(mon.events > events);
    CU_ASSERT_STRING_EQUAL(mon.last_event_type, "deployment-invalid");
    CU_ASSERT(now_ms() - t_bad < CANCEL_BUDGET_MS);
    CU_ASSERT(kill(slow, 0) == 0); /* and the install is still running */

    /* ... and accepts a second manifest: it keeps DEP with the same document (the install
     * goes on, nothing cancelled) and adds OTHER, which is reported pending at once */
    char d_other[MGO_DIGEST_STR_SIZE];
    publish_dep(mgr, dev, OTHER, "fast", d_other);
    const char *ids2[] = {DEP, OTHER};
    const char *dg2[] = {d, d_other};
    long t_second = now_ms();
    h_publish_manifest(mgr, dev, 2, 2, ids2, dg2);
    CU_ASSERT(h_monitor_wait(&mon, OTHER, MGO_STATE_PENDING, 5000));
    CU_ASSERT(now_ms() - t_second < CANCEL_BUDGET_MS);
    CU_ASSERT(kill(slow, 0) == 0);
    CU_ASSERT_PTR_NULL(find_status(&mon, DEP, MGO_STATE_FAILED, NULL));

    /* the manifest that removes both: compose down starts within the budget */
    long t0 = now_ms();
    h_publish_manifest(mgr, dev, 3, 0, NULL, NULL);
    long took = -1;
    while (now_ms() - t0 < 10000) {
        if (log_lines("down") > 0) {
            took = now_ms() - t0;
            break;
        }
        usleep(20 * 1000);
    }
    fprintf(stderr, "\n  removal started %ld ms after the manifest\n", took);
    CU_ASSERT(took >= 0 && took < CANCEL_BUDGET_MS);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_REMOVED, 15000));
    /* the slow compose process (and its sleep) were stopped, never finished */
    CU_ASSERT(kill(slow, 0) != 0);
    CU_ASSERT_EQUAL(log_lines("up finished"), 0);
    CU_ASSERT_EQUAL(log_lines("up fast"), 0); /* OTHER never started: removed from pending */

    h_monitor_pump(&mon, 500);
    const struct h_status *c = find_status(&mon, DEP, MGO_STATE_FAILED, "CANCELLED");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->adopted, 1); /* the cancelled work came from manifest 1 */
    CU_ASSERT(strstr(c->error_message, "install cancelled: manifestVersion 3 removes") != NULL);
    CU_ASSERT_STRING_EQUAL(c->comp_state[0], "failed");
    const struct h_status *last = last_of(&mon, DEP);
    CU_ASSERT_EQUAL(last->state, MGO_STATE_REMOVED);
    CU_ASSERT_EQUAL(last->adopted, 3);
    CU_ASSERT(c < last);
    CU_ASSERT_EQUAL(last_of(&mon, OTHER)->state, MGO_STATE_REMOVED);
    CU_ASSERT_EQUAL(h_monitor_order_violations(&mon), 0);

    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
}

static void test_update_cancels_slow_install(void)
{
    const char *dev = "dev-cancel-update";
    ensure_setup();
    (void)mgo_test_sh("rm -f %s/compose.log %s/slow.pid", dir, dir);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), dev);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-cancel-update");
    struct h_agent agent;
    start_agent(&agent, dev);

    char d1[MGO_DIGEST_STR_SIZE], d2[MGO_DIGEST_STR_SIZE];
    publish_dep(mgr, dev, DEP, "slow", d1);
    const char *ids[] = {DEP};
    const char *dg1[] = {d1};
    h_publish_manifest(mgr, dev, 1, 1, ids, dg1);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLING, 20000));
    pid_t slow = wait_slow_pid();
    CU_ASSERT_FATAL(slow > 0);

    /* a fix arrives: the same deployment with another parameter value */
    long t0 = now_ms();
    publish_dep(mgr, dev, DEP, "fast", d2);
    const char *dg2[] = {d2};
    h_publish_manifest(mgr, dev, 2, 1, ids, dg2);
    long took = -1;
    while (now_ms() - t0 < 10000) {
        if (log_lines("up fast") > 0) {
            took = now_ms() - t0;
            break;
        }
        usleep(20 * 1000);
    }
    fprintf(stderr, "\n  new document applied %ld ms after the manifest\n", took);
    CU_ASSERT(took >= 0 && took < CANCEL_BUDGET_MS);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLED, 15000));
    CU_ASSERT(kill(slow, 0) != 0);
    CU_ASSERT_EQUAL(log_lines("up finished"), 0);

    h_monitor_pump(&mon, 300);
    const struct h_status *c = find_status(&mon, DEP, MGO_STATE_FAILED, "CANCELLED");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->adopted, 1);
    CU_ASSERT(strstr(c->error_message, "manifestVersion 2 changes") != NULL);
    const struct h_status *last = last_of(&mon, DEP);
    CU_ASSERT_EQUAL(last->state, MGO_STATE_INSTALLED);
    CU_ASSERT_EQUAL(last->adopted, 2);
    CU_ASSERT(c < last);
    CU_ASSERT_EQUAL(h_monitor_order_violations(&mon), 0);

    /* the record holds the new document: a restart has nothing to resume */
    h_agent_stop(&agent);
    size_t ups = log_lines("up");
    h_agent_start(&agent);
    h_monitor_pump(&mon, 1500);
    CU_ASSERT_EQUAL(log_lines("up"), ups);

    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
}

/* Shutdown while the slow install runs: the agent stops at once (the compose process is
 * killed) and the next start resumes the install. */
static void test_shutdown_cancels_and_resumes(void)
{
    const char *dev = "dev-cancel-stop";
    ensure_setup();
    (void)mgo_test_sh("rm -f %s/compose.log %s/slow.pid", dir, dir);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), dev);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-cancel-stop");
    struct h_agent agent;
    start_agent(&agent, dev);
    char d[MGO_DIGEST_STR_SIZE];
    publish_dep(mgr, dev, DEP, "slow", d);
    const char *ids[] = {DEP};
    const char *dg[] = {d};
    h_publish_manifest(mgr, dev, 1, 1, ids, dg);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLING, 20000));
    pid_t slow = wait_slow_pid();
    CU_ASSERT_FATAL(slow > 0);
    long t0 = now_ms();
    h_agent_stop(&agent);
    long took = now_ms() - t0;
    fprintf(stderr, "\n  shutdown took %ld ms\n", took);
    CU_ASSERT(took < 10000);
    CU_ASSERT(kill(slow, 0) != 0);
    (void)mgo_test_sh("rm -f %s/slow.pid", dir);
    size_t ups = log_lines("up slow");
    h_agent_start(&agent);
    CU_ASSERT(wait_slow_pid() > 0); /* resumed */
    CU_ASSERT(log_lines("up slow") > ups);
    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"a manifest removing a deployment cancels its slow install",
         test_remove_cancels_slow_install},
        {"a manifest changing a deployment cancels its slow install",
         test_update_cancels_slow_install},
        {"shutdown cancels a slow install; the next start resumes it",
         test_shutdown_cancels_and_resumes},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.daemon.cancel", cases);
}
