/* test_agent_hardening.c - the whole agent (real Mosquitto, in-process agent) against hostile
 * deployment content, checked at what a user would see (statuses, files, recorded commands):
 * - compose packages over HTTP: a tar.gz with a "../" entry, one with an absolute path and one
 *   with a symlink out of the package followed by a file through it are refused
 *   (PACKAGE_INVALID) and nothing is written outside the package folder;
 * - an OCI compose artifact whose layer bytes do not match the manifest's digest is refused
 *   (DIGEST_MISMATCH) and compose never runs;
 * - a parameter value full of shell syntax reaches the project's .env (never the compose
 *   command's environment) and helm's --set-string argument byte for byte, and none of the
 *   commands in it runs.
 * The compose and container commands are recording fakes; helm is tests/agent/fake-helm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "harness.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "sec_agent_util.h"
#include "state.h"

#define DEV "dev-hard"
#define ID_DOTS "44444444-4444-4444-8444-444444444401"
#define ID_ABS "44444444-4444-4444-8444-444444444402"
#define ID_LINK "44444444-4444-4444-8444-444444444403"
#define ID_OCI "44444444-4444-4444-8444-444444444404"
#define ID_PARAM "44444444-4444-4444-8444-444444444405"
#define ID_HELM "44444444-4444-4444-8444-444444444406"

static char dir[256];
static char port[16];

/* Hostile archives (made with Python's tarfile, which writes exactly the entries asked for),
 * a good compose file, a static OCI registry with one honest and one lying manifest, and an
 * HTTP server for all of it. */
static void setup_files(void)
{
    int rc = mgo_test_sh(
        "set -e; cd %s; mkdir -p www/v2/m/app/manifests www/v2/m/app/blobs outside; "
        "printf 'services:\\n  web:\\n    image: busybox\\n' > www/app.yaml; "
        "python3 - <<'EOF'\n"
        "import io, tarfile, os\n"
        "d = os.getcwd()\n"
        "compose = b'services:\\n  web:\\n    image: busybox\\n'\n"
        "def add(t, name, data):\n"
        "    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\n"
        "with tarfile.open('www/dots.tgz', 'w:gz') as t:\n"
        "    add(t, 'compose.yaml', compose); add(t, '../../../../evil-dots', b'x')\n"
        "with tarfile.open('www/abs.tgz', 'w:gz') as t:\n"
        "    add(t, 'compose.yaml', compose); add(t, d + '/outside/evil-abs', b'x')\n"
        "with tarfile.open('www/link.tgz', 'w:gz') as t:\n"
        "    add(t, 'compose.yaml', compose)\n"
        "    i = tarfile.TarInfo('lnk'); i.type = tarfile.SYMTYPE; i.linkname = d + '/outside'\n"
        "    t.addfile(i)\n"
        "    add(t, 'lnk/evil-link', b'x')\n"
        "EOF\n"
        "printf 'services: {}\\n' > layer; D=sha256:$(sha256sum layer | cut -d' ' -f1); "
        "W=sha256:1111111111111111111111111111111111111111111111111111111111111111; "
        "printf 'services:\\n  web:\\n    image: evil\\n' > www/v2/m/app/blobs/$W; "
        "printf "
        "'{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"application/"
        "vnd.margo.compose.v1+yaml\",\"digest\":\"%%s\",\"size\":13}]}' $W > "
        "www/v2/m/app/manifests/1.0.0; "
        "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
        "print(s.getsockname()[1])' > port; "
        "(busybox httpd -f -p 127.0.0.1:$(cat port) -h www > httpd.log 2>&1 & echo $! > "
        "httpd.pid); "
        "sleep 0.3",
        dir);
    CU_ASSERT_FATAL(rc == 0);
    char p[512];
    snprintf(p, sizeof p, "%s/port", dir);
    char *pt = mgo_test_read_file(p, NULL);
    CU_ASSERT_FATAL(pt != NULL);
    snprintf(port, sizeof port, "%.*s", (int)strcspn(pt, "\n"), pt);
    free(pt);

    /* fake compose: records argv (0x1f-separated), its own $GREETING (which must stay unset:
     * parameters never become the compose command's environment) and the GREETING line of
     * the project's .env; fake podman: the project's container runs */
    FILE *f;
    snprintf(p, sizeof p, "%s/fake-compose", dir);
    CU_ASSERT_FATAL((f = fopen(p, "w")) != NULL);
    fprintf(
        f,
        "#!/bin/sh\nline=''\nfor a in \"$@\"; do line=\"$line$(printf '%%s\\037' \"$a\")\"; done\n"
        "printf '%%s\\n' \"$line\" >> %s/compose.log\n"
        "printf '%%s\\n' \"${GREETING-unset}\" >> %s/greeting.log\n"
        "grep '^GREETING=' .env >> %s/greeting.log\nexit 0\n",
        dir, dir, dir);
    fclose(f);
    snprintf(p, sizeof p, "%s/fake-podman", dir);
    CU_ASSERT_FATAL((f = fopen(p, "w")) != NULL);
    fprintf(f, "#!/bin/sh\necho 'web-1 running'\n");
    fclose(f);
    CU_ASSERT_FATAL(mgo_test_sh("chmod +x %s/fake-compose %s/fake-podman", dir, dir) == 0);
}

static void publish_doc(struct mgo_mqtt *m, const char *id, const char *type,
                        const char *properties, const char *value, char digest[MGO_DIGEST_STR_SIZE])
{
    char yaml[4096];
    snprintf(yaml, sizeof yaml,
             "apiVersion: application.margo.org/v1alpha1\n"
             "kind: ApplicationDeployment\n"
             "metadata:\n"
             "  annotations: {applicationId: hostile, id: %s}\n"
             "  name: hostile\n"
             "  namespace: edge\n"
             "spec:\n"
             "  deploymentProfile:\n"
             "    type: %s\n"
             "    components:\n"
             "      - name: web\n"
             "        properties: {%s, wait: true, timeout: 0m30s}\n"
             "  parameters:\n"
             "    greeting: {value: '%s', targets: [{pointer: GREETING, components: [web]}]}\n",
             id, type, properties, value);
    h_publish_doc(m, DEV, id, yaml, digest);
}

static const struct h_status *final_of(const struct h_monitor *mon, const char *dep)
{
    for (size_t i = mon->len; i > 0; i--)
        if (strcmp(mon->items[i - 1].deployment_id, dep) == 0)
            return &mon->items[i - 1];
    return NULL;
}

static bool file_exists(const char *rel)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return access(p, F_OK) == 0;
}

static void test_hostile_packages_and_parameters(void)
{
    mgo_test_tmpdir("sec-hard", dir);
    setup_files();
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char state_dir[512], helm_log[512], rel[512], compose[512], podman[512], plain[64];
    char fake_helm[512];
    snprintf(fake_helm, sizeof fake_helm, "%s", mgo_test_path("tests/agent/fake-helm"));
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    snprintf(compose, sizeof compose, "%s/fake-compose", dir);
    snprintf(podman, sizeof podman, "%s/fake-podman", dir);
    snprintf(plain, sizeof plain, "127.0.0.1:%s", port);
    mgo_test_fake_helm_env(dir, "success", helm_log, rel);

    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "helm-command", fake_helm, "compose-command", compose,
                 "container-command", podman, "oci-plain-http", plain, "settle-ms", "200",
                 "reconcile-interval", "3600", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-hard");

    /* the value a user would type to break out of a shell: if any shell ever saw it, the
     * canary files would appear (rm is kept harmless by --preserve-root and a missing path) */
    char value[1400];
    snprintf(
        value, sizeof value,
        "x; rm -rf / --preserve-root /nonexistent-mgo; $(touch %s/canary-1) `touch %s/canary-2` "
        "| touch %s/canary-3 && id > %s/canary-4 \"quoted\"",
        dir, dir, dir, dir);
    char props[512];
    char dg[6][MGO_DIGEST_STR_SIZE];
    const char *ids[6] = {ID_DOTS, ID_ABS, ID_LINK, ID_OCI, ID_PARAM, ID_HELM};
    snprintf(props, sizeof props, "packageLocation: 'http://127.0.0.1:%s/dots.tgz'", port);
    publish_doc(mgr, ID_DOTS, "compose", props, "a", dg[0]);
    snprintf(props, sizeof props, "packageLocation: 'http://127.0.0.1:%s/abs.tgz'", port);
    publish_doc(mgr, ID_ABS, "compose", props, "a", dg[1]);
    snprintf(props, sizeof props, "packageLocation: 'http://127.0.0.1:%s/link.tgz'", port);
    publish_doc(mgr, ID_LINK, "compose", props, "a", dg[2]);
    snprintf(props, sizeof props, "repository: 'oci://127.0.0.1:%s/m/app', revision: 1.0.0", port);
    publish_doc(mgr, ID_OCI, "compose", props, "a", dg[3]);
    snprintf(props, sizeof props, "packageLocation: 'http://127.0.0.1:%s/app.yaml'", port);
    publish_doc(mgr, ID_PARAM, "compose", props, value, dg[4]);
    publish_doc(mgr, ID_HELM, "helm",
                "repository: 'oci://registry.example/charts/web', revision: 1.0.0", value, dg[5]);
    const char *digests[6] = {dg[0], dg[1], dg[2], dg[3], dg[4], dg[5]};
    h_publish_manifest(mgr, DEV, 1, 6, ids, digests);
    h_agent_start(&agent);

    /* the last deployment in the manifest finishes last */
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_HELM, MGO_STATE_INSTALLED, 60000));
    h_monitor_pump(&mon, 300);

    /* 1. hostile archives: refused, nothing outside the package folder */
    const char *arch[] = {ID_DOTS, ID_ABS, ID_LINK};
    for (size_t i = 0; i < 3; i++) {
        const struct h_status *s = final_of(&mon, arch[i]);
        CU_ASSERT_FATAL(s != NULL);
        CU_ASSERT_EQUAL(s->state, MGO_STATE_FAILED);
        CU_ASSERT_STRING_EQUAL(s->error_code, "PACKAGE_INVALID");
    }
    CU_ASSERT(strstr(final_of(&mon, ID_DOTS)->error_message, "'..' refused") != NULL);
    CU_ASSERT(strstr(final_of(&mon, ID_ABS)->error_message, "absolute path") != NULL);
    CU_ASSERT(strstr(final_of(&mon, ID_LINK)->error_message, "refused") != NULL);
    char found[256] = "x";
    mgo_test_sh_out(found, sizeof found, "find %s -name 'evil-*' | wc -l", dir);
    CU_ASSERT_STRING_EQUAL(found, "0");
    CU_ASSERT(!file_exists("outside/evil-abs"));
    CU_ASSERT(!file_exists("outside/evil-link"));

    /* 2. OCI layer bytes that do not match the manifest's digest: refused */
    const struct h_status *so = final_of(&mon, ID_OCI);
    CU_ASSERT_FATAL(so != NULL);
    CU_ASSERT_EQUAL(so->state, MGO_STATE_FAILED);
    CU_ASSERT_STRING_EQUAL(so->error_code, "DIGEST_MISMATCH");
    CU_ASSERT(strstr(so->error_message, "does not match") != NULL);

    /* compose ran for the one good package only */
    char clog[512];
    snprintf(clog, sizeof clog, "%s/compose.log", dir);
    CU_ASSERT_EQUAL(mgo_test_count_lines(clog, "\x1fup\x1f"), 1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(clog, "margo-" ID_PARAM "\x1f"), 1);
    for (size_t i = 0; i < 4; i++) {
        char needle[128];
        snprintf(needle, sizeof needle, "margo-%s", ids[i]);
        CU_ASSERT_EQUAL(mgo_test_count_lines(clog, needle), 0);
    }

    /* 3. the parameter value: literal in the project's .env (single-quoted, read without
     * interpolation; not in compose's own environment) and in helm's argument */
    const struct h_status *sp = final_of(&mon, ID_PARAM);
    CU_ASSERT(sp != NULL && sp->state == MGO_STATE_INSTALLED);
    char glog[512];
    snprintf(glog, sizeof glog, "%s/greeting.log", dir);
    char *g = mgo_test_read_file(glog, NULL);
    char want[1500];
    snprintf(want, sizeof want, "unset\nGREETING='%s'\n", value);
    CU_ASSERT(g != NULL && strcmp(g, want) == 0);
    free(g);
    char hneedle[1500];
    snprintf(hneedle, sizeof hneedle, "\x1f--set-string\x1fGREETING=%s\x1f", value);
    CU_ASSERT_EQUAL(mgo_test_count_lines(helm_log, hneedle), 1);
    CU_ASSERT(!file_exists("canary-1"));
    CU_ASSERT(!file_exists("canary-2"));
    CU_ASSERT(!file_exists("canary-3"));
    CU_ASSERT(!file_exists("canary-4"));

    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    mgo_test_broker_cleanup(&broker);
    mgo_test_sh("kill $(cat %s/httpd.pid) 2>/dev/null; true", dir);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

/* The same value through the real Compose runtime (podman-compose + podman + runc, as in
 * tests/agent/test_agent_compose.c): the compose file interpolates ${GREETING}, and the
 * running container's environment holds the value byte for byte. */
#define ID_REAL "44444444-4444-4444-8444-444444444407"
#define PROJECT_REAL "margo-" ID_REAL

static void test_parameter_literal_in_real_container(void)
{
    mgo_test_tmpdir("sec-hard", dir);
    int rc = mgo_test_sh(
        "set -e; cd %s; . %s/scripts/containers-env.sh; mgo_containers_env %s; "
        "command -v podman-compose >/dev/null || { echo 'podman-compose not installed' > why; exit "
        "1; }; "
        "mkdir -p root/bin root/etc www; cp /bin/busybox root/bin/busybox || { echo "
        "'busybox-static missing' > why; exit 1; }; "
        "for a in sh sleep printf; do ln -sf busybox root/bin/$a; done; "
        "echo 'root:x:0:0:root:/:/bin/sh' > root/etc/passwd; tar -C root -cf rootfs.tar .; "
        "podman import --change 'CMD [\"/bin/sh\"]' --change 'ENV PATH=/bin' rootfs.tar "
        "localhost/mgo-sec-busybox:1 > setup.log 2>&1 || { echo 'podman import failed (see "
        "setup.log)' > why; exit 1; }; "
        "printf 'services:\\n  web:\\n    image: localhost/mgo-sec-busybox:1\\n    stop_signal: "
        "SIGKILL\\n"
        "    command: [\"/bin/sleep\", \"3600\"]\\n    environment:\\n      GREETING: "
        "${GREETING}\\n' > www/app.yaml; "
        "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
        "print(s.getsockname()[1])' > port; "
        "(busybox httpd -f -p 127.0.0.1:$(cat port) -h www > httpd.log 2>&1 & echo $! > "
        "httpd.pid); sleep 0.3",
        dir, MGO_SOURCE_DIR, dir);
    if (rc != 0) {
        char reason[256] = "";
        mgo_test_sh_out(reason, sizeof reason, "cat %s/why 2>/dev/null", dir);
        fprintf(stderr, "\n*** real compose check cannot run: %s ***\n",
                reason[0] ? reason : "setup failed");
        CU_FAIL_FATAL("podman/compose runtime unavailable here (reason printed above)");
    }
    char p[512];
    snprintf(p, sizeof p, "%s/containers.conf", dir);
    setenv("CONTAINERS_CONF", p, 1);
    snprintf(p, sizeof p, "%s/registries.conf", dir);
    setenv("CONTAINERS_REGISTRIES_CONF", p, 1);
    snprintf(p, sizeof p, "%s/port", dir);
    char *pt = mgo_test_read_file(p, NULL);
    CU_ASSERT_FATAL(pt != NULL);
    snprintf(port, sizeof port, "%.*s", (int)strcspn(pt, "\n"), pt);
    free(pt);

    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char state_dir[512];
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "compose-command", "podman-compose", "helm-command", "mgo-no-helm-here",
                 "settle-ms", "200", "reconcile-interval", "3600", "default-timeout", "120", NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-hard-real");
    char value[1400];
    snprintf(
        value, sizeof value,
        "x; rm -rf / --preserve-root /nonexistent-mgo; $(touch %s/canary-1) `touch %s/canary-2` "
        "| touch %s/canary-3 && id > %s/canary-4 \"quoted\" $HOME ${PATH}",
        dir, dir, dir, dir);
    char props[256], dg[MGO_DIGEST_STR_SIZE];
    snprintf(props, sizeof props, "packageLocation: 'http://127.0.0.1:%s/app.yaml'", port);
    publish_doc(mgr, ID_REAL, "compose", props, value, dg);
    const char *ids[] = {ID_REAL};
    const char *dgs[] = {dg};
    h_publish_manifest(mgr, DEV, 1, 1, ids, dgs);
    h_agent_start(&agent);
    CU_ASSERT(h_monitor_wait(&mon, ID_REAL, MGO_STATE_INSTALLED, 180000));

    /* read the container's environment without any shell: podman inspect's JSON */
    char env_file[600];
    snprintf(env_file, sizeof env_file, "%s/env.json", dir);
    mgo_test_sh("podman inspect --format '{{json .Config.Env}}' %s_web_1 > %s 2>/dev/null",
                PROJECT_REAL, env_file);
    char *env = mgo_test_read_file(env_file, NULL);
    /* JSON escapes the two double quotes of the value */
    char want[1500];
    size_t w = 0;
    w += (size_t)snprintf(want, sizeof want, "\"GREETING=");
    for (const char *c = value; *c && w + 3 < sizeof want; c++) {
        if (*c == '"')
            want[w++] = '\\';
        want[w++] = *c;
    }
    want[w] = '\0';
    snprintf(want + w, sizeof want - w, "\"");
    if (env == NULL || strstr(env, want) == NULL)
        fprintf(stderr, "container env %s lacks %s\n", env ? env : "(none)", want);
    CU_ASSERT(env != NULL && strstr(env, want) != NULL);
    free(env);
    CU_ASSERT(!file_exists("canary-1"));
    CU_ASSERT(!file_exists("canary-2"));
    CU_ASSERT(!file_exists("canary-3"));
    CU_ASSERT(!file_exists("canary-4"));

    /* remove it again */
    h_publish_manifest(mgr, DEV, 2, 0, NULL, NULL);
    CU_ASSERT(h_monitor_wait(&mon, ID_REAL, MGO_STATE_REMOVED, 120000));
    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    h_monitor_stop(&mon);
    mgo_test_broker_cleanup(&broker);
    mgo_test_sh(
        "cd %s && { podman rm -f $(podman ps -aq --filter label=com.docker.compose.project=%s) "
        ">/dev/null 2>&1; podman network rm %s_default >/dev/null 2>&1; "
        "podman rmi -f localhost/mgo-sec-busybox:1 >/dev/null 2>&1; "
        "kill $(cat httpd.pid) 2>/dev/null; }; true",
        dir, PROJECT_REAL, PROJECT_REAL);
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"hostile packages refused; shell syntax in parameters stays literal",
         test_hostile_packages_and_parameters},
        {"shell syntax in a parameter reaches a real container literally",
         test_parameter_literal_in_real_container},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.hardening", cases);
}
