/* test_agent_compose.c - the whole agent with the real Compose runtime (podman + runc +
 * podman-compose, DESIGN.md recipe) and a real Mosquitto: deploy a compose app fetched over
 * HTTP, reconfigure it (parameter change), update it to a version fetched as an OCI artifact
 * from a loopback docker-registry, repair a container stopped by hand, remove it; then an
 * install stuck waiting for a container that never runs is cancelled by a removal. The
 * container really answers over HTTP; statuses arrive in order at a separate subscriber.
 * If podman cannot run containers here, the test says exactly why and fails. */
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

#define DEV "dev-compose"
#define DEP "22222222-2222-4222-8222-222222222222"
#define PROJECT "margo-" DEP

static char dir[256];
static char reg_port[16], http_port[16], app_port[16];

static int read_var(const char *name, char *out, size_t n)
{
    return mgo_test_sh_out(out, n, "sed -n 's/^%s=//p' %s/ports", name, dir);
}

/* Registry, busybox image, HTTP server for packages, OCI artifact for v2. */
static bool setup_containers(char *why, size_t why_len)
{
    int rc = mgo_test_sh(
        "set -e; cd %s; . %s/scripts/containers-env.sh; "
        "command -v podman >/dev/null || { echo 'podman not installed (scripts/setup.sh "
        "containers)' > why; exit 1; }; "
        "command -v podman-compose >/dev/null || { echo 'podman-compose not installed' > why; exit "
        "1; }; "
        "command -v docker-registry >/dev/null || { echo 'docker-registry not installed' > why; "
        "exit 1; }; "
        "mgo_containers_env %s; REG=$(mgo_free_port); HTTP=$(mgo_free_port); APP=$(mgo_free_port); "
        "printf 'REG=%%s\\nHTTP=%%s\\nAPP=%%s\\n' $REG $HTTP $APP > ports; "
        "mgo_registry_start %s $REG > setup.log 2>&1 || { echo 'docker-registry did not start' > "
        "why; exit 1; }; "
        "mgo_busybox_image %s 127.0.0.1:$REG/margo/busybox:1 >> setup.log 2>&1 || { echo 'podman "
        "could not import/push the busybox image (see setup.log)' > why; exit 1; }; "
        "mkdir -p www; "
        "for v in 1 2; do pre=''; [ $v = 2 ] && pre='v2:'; "
        "printf 'services:\\n  web:\\n    image: 127.0.0.1:%%s/margo/busybox:1\\n    stop_signal: "
        "SIGKILL\\n"
        "    command: [\"/bin/sh\", \"-c\", \"mkdir -p /www && echo %%s$${GREETING} > "
        "/www/index.html && exec httpd -f -p 8080 -h /www\"]\\n"
        "    environment:\\n      GREETING: ${GREETING:-unset}\\n    ports:\\n      - "
        "\"127.0.0.1:%%s:8080\"\\n' $REG \"$pre\" $APP > www/app-v$v.yaml; done; "
        "printf 'services:\\n  web:\\n    image: 127.0.0.1:%%s/margo/busybox:1\\n    stop_signal: "
        "SIGKILL\\n"
        "    command: [\"/bin/sh\", \"-c\", \"exit 3\"]\\n' $REG > www/app-stuck.yaml; "
        "printf 'services:\\n  web:\\n    image: 127.0.0.1:1/margo/unreachable:1\\n' > "
        "www/app-pull.yaml; "
        "(busybox httpd -f -p 127.0.0.1:$HTTP -h www > httpd.log 2>&1 & echo $! > httpd.pid); "
        "mgo_oci_push_file 127.0.0.1:$REG margo/web 2.0.0 www/app-v2.yaml > oci.digest || { echo "
        "'OCI artifact push failed' > why; exit 1; }",
        dir, MGO_SOURCE_DIR, dir, dir, dir);
    if (rc != 0) {
        char reason[256] = "";
        mgo_test_sh_out(reason, sizeof reason, "cat %s/why 2>/dev/null", dir);
        snprintf(why, why_len, "%s", reason[0] ? reason : "container setup failed");
        return false;
    }
    read_var("REG", reg_port, sizeof reg_port);
    read_var("HTTP", http_port, sizeof http_port);
    read_var("APP", app_port, sizeof app_port);
    char p[512];
    snprintf(p, sizeof p, "%s/containers.conf", dir);
    setenv("CONTAINERS_CONF", p, 1);
    snprintf(p, sizeof p, "%s/registries.conf", dir);
    setenv("CONTAINERS_REGISTRIES_CONF", p, 1);
    return true;
}

static void teardown_containers(void)
{
    mgo_test_sh(
        "cd %s 2>/dev/null && { . %s/scripts/containers-env.sh; "
        "podman rm -f $(podman ps -aq --filter label=com.docker.compose.project=%s) >/dev/null "
        "2>&1; "
        "podman network rm %s_default >/dev/null 2>&1; "
        "[ -f httpd.pid ] && kill $(cat httpd.pid) 2>/dev/null; mgo_registry_stop %s; } ; true",
        dir, MGO_SOURCE_DIR, PROJECT, PROJECT, dir);
}

static void publish_dep(struct mgo_mqtt *mgr, const char *location_yaml, const char *pointer,
                        const char *greeting, char digest[MGO_DIGEST_STR_SIZE])
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "apiVersion: application.margo.org/v1alpha1\n"
             "kind: ApplicationDeployment\n"
             "metadata:\n"
             "  annotations:\n"
             "    applicationId: hello-web\n"
             "    id: " DEP "\n"
             "  name: hello-web\n"
             "  namespace: default\n"
             "spec:\n"
             "  deploymentProfile:\n"
             "    type: compose\n"
             "    components:\n"
             "      - name: web\n"
             "        properties:\n"
             "%s"
             "          wait: true\n"
             "          timeout: 2m0s\n"
             "  parameters:\n"
             "    greeting:\n"
             "      value: %s\n"
             "      targets:\n"
             "        - pointer: %s\n"
             "          components: [web]\n",
             location_yaml, greeting, pointer);
    h_publish_doc(mgr, DEV, DEP, yaml, digest);
}

static bool app_says(const char *want, int tries)
{
    char got[256] = "";
    for (int i = 0; i < tries; i++) {
        mgo_test_sh_out(got, sizeof got, "curl -s --max-time 2 http://127.0.0.1:%s/", app_port);
        if (strcmp(got, want) == 0)
            return true;
        usleep(500 * 1000);
    }
    fprintf(stderr, "app answered '%s', expected '%s'\n", got, want);
    return false;
}

static void test_agent_compose_real(void)
{
    mgo_test_tmpdir("agent-compose", dir);
    char why[256];
    if (!setup_containers(why, sizeof why)) {
        fprintf(stderr, "\n*** compose integration test cannot run: %s ***\n", why);
        teardown_containers();
        CU_FAIL_FATAL("podman/compose runtime unavailable here (reason printed above)");
    }
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char state_dir[512], plain[64];
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    snprintf(plain, sizeof plain, "127.0.0.1:%s", reg_port);
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "compose-command", "podman-compose", "helm-command", "mgo-no-helm-here",
                 "reconcile-interval", "2", "settle-ms", "200", "oci-plain-http", plain,
                 "default-timeout", "120", "otel-http-endpoint", "http://127.0.0.1:4318", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-compose");
    h_agent_start(&agent);

    /* 1. deploy: compose file over HTTP, pointer in the ENV.X style */
    char loc[512], d[MGO_DIGEST_STR_SIZE];
    snprintf(loc, sizeof loc, "          packageLocation: http://127.0.0.1:%s/app-v1.yaml\n",
             http_port);
    publish_dep(mgr, loc, "ENV.GREETING", "hello-1", d);
    const char *ids[] = {DEP};
    const char *dg[] = {d};
    h_publish_manifest(mgr, DEV, 1, 1, ids, dg);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLED, 180000));
    CU_ASSERT(app_says("hello-1", 20));
    /* the OpenTelemetry variable reached the container */
    char env[256] = "";
    mgo_test_sh_out(env, sizeof env,
                    "podman exec %s_web_1 /bin/sh -c 'echo $HTTP_OTEL_EXPORTER_OTLP_ENDPOINT'",
                    PROJECT);
    CU_ASSERT_STRING_EQUAL(env, "http://127.0.0.1:4318");

    /* 2. reconfigure: only the parameter changes (plain pointer style) */
    publish_dep(mgr, loc, "GREETING", "hello-2", d);
    h_publish_manifest(mgr, DEV, 2, 1, ids, dg);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLED, 180000));
    CU_ASSERT(app_says("hello-2", 20));

    /* 3. update: a new version from an OCI artifact (manifest -> layer, digests checked) */
    snprintf(loc, sizeof loc,
             "          repository: oci://127.0.0.1:%s/margo/web\n          revision: 2.0.0\n",
             reg_port);
    publish_dep(mgr, loc, "GREETING", "hello-2", d);
    h_publish_manifest(mgr, DEV, 3, 1, ids, dg);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLED, 180000));
    CU_ASSERT(app_says("v2:hello-2", 20));

    /* 4. drift: the container is stopped by hand; the agent brings it back */
    CU_ASSERT(mgo_test_sh("podman stop -t 0 %s_web_1 >/dev/null 2>&1", PROJECT) == 0);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLING, 30000));
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLED, 180000));
    CU_ASSERT(app_says("v2:hello-2", 20));

    /* 5. remove: absent from the manifest */
    h_publish_manifest(mgr, DEV, 4, 0, NULL, NULL);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_REMOVED, 180000));
    char left[256] = "x";
    mgo_test_sh_out(left, sizeof left,
                    "podman ps -aq --filter label=com.docker.compose.project=%s | wc -l", PROJECT);
    CU_ASSERT_STRING_EQUAL(left, "0");
    CU_ASSERT(!app_says("v2:hello-2", 1));

    h_monitor_pump(&mon, 500);
    CU_ASSERT_EQUAL(h_monitor_order_violations(&mon), 0);
    /* every status of the run: pending first, removed last */
    CU_ASSERT(mon.len >= 8);
    CU_ASSERT_EQUAL(mon.items[0].state, MGO_STATE_PENDING);
    CU_ASSERT_EQUAL(mon.items[mon.len - 1].state, MGO_STATE_REMOVED);
    /* the removal status carries the manifest that removed it (protocol.md 7.4) */
    CU_ASSERT_EQUAL(mon.items[mon.len - 1].adopted, 4);

    /* 6. cancellation (protocol.md 7.7): a component whose container never runs keeps the
     *    install waiting (its timeout is 2 minutes); a manifest removing it cancels the wait,
     *    the removal starts within 2 s and ends removed with no container left */
    snprintf(loc, sizeof loc, "          packageLocation: http://127.0.0.1:%s/app-stuck.yaml\n",
             http_port);
    publish_dep(mgr, loc, "GREETING", "stuck", d);
    h_publish_manifest(mgr, DEV, 5, 1, ids, dg);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, DEP, MGO_STATE_INSTALLING, 60000));
    h_monitor_pump(&mon, 3000); /* compose up done; the wait polls */
    size_t before = mon.len;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    h_publish_manifest(mgr, DEV, 6, 0, NULL, NULL);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_REMOVING, 10000));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long took = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    fprintf(stderr, "\n  real compose: removal started %ld ms after the manifest\n", took);
    CU_ASSERT(took < 2000);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_REMOVED, 60000));
    bool cancelled = false;
    for (size_t i = before; i < mon.len; i++)
        if (mon.items[i].state == MGO_STATE_FAILED &&
            strcmp(mon.items[i].error_code, "CANCELLED") == 0 && mon.items[i].adopted == 5)
            cancelled = true;
    CU_ASSERT(cancelled);
    CU_ASSERT_EQUAL(mon.items[mon.len - 1].state, MGO_STATE_REMOVED);
    CU_ASSERT_EQUAL(mon.items[mon.len - 1].adopted, 6);
    mgo_test_sh_out(left, sizeof left,
                    "podman ps -aq --filter label=com.docker.compose.project=%s | wc -l", PROJECT);
    CU_ASSERT_STRING_EQUAL(left, "0");

    /* 7. an image the device cannot pull (its registry unreachable): FETCH_FAILED, a device
     *    failure (protocol.md 8.3), not the app's RUNTIME_FAILED */
    snprintf(loc, sizeof loc, "          packageLocation: http://127.0.0.1:%s/app-pull.yaml\n",
             http_port);
    publish_dep(mgr, loc, "GREETING", "pull", d);
    before = mon.len;
    h_publish_manifest(mgr, DEV, 7, 1, ids, dg);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_FAILED, 180000));
    const char *code = "";
    for (size_t i = before; i < mon.len; i++)
        if (mon.items[i].state == MGO_STATE_FAILED && mon.items[i].adopted == 7 && !code[0])
            code = mon.items[i].error_code;
    CU_ASSERT_STRING_EQUAL(code, "FETCH_FAILED");
    h_publish_manifest(mgr, DEV, 8, 0, NULL, NULL);
    CU_ASSERT(h_monitor_wait(&mon, DEP, MGO_STATE_REMOVED, 60000));

    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    mgo_test_broker_cleanup(&broker);
    teardown_containers();
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"compose: deploy, reconfigure, update (OCI), drift, remove", test_agent_compose_real},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.daemon.compose", cases);
}
