/* test_agent_signed.c - the agent with `manager-public-key` against a real Mosquitto (Helm
 * runtime = tests/agent/fake-helm, which records every helm command): forged, unsigned,
 * other-key and other-device manifests, forged and unsigned deployment documents and a
 * replayed older signed manifest are refused with an event and install nothing; correctly
 * signed documents (also with a rotated key) install. A bad key file stops the start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "harness.h"
#include "mgo/sign.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "sec_agent_util.h"
#include "sec_test_util.h"
#include "state.h"

#define DEV "dev-sig"
#define ID_A "33333333-3333-4333-8333-33333333333a"
#define ID_B "33333333-3333-4333-8333-33333333333b"

static char g_dir[256];
static char g_fake_helm[512];
static struct mgo_sign_key *g_sign;  /* signing.key: the manager's key the agent trusts */
static struct mgo_sign_key *g_other; /* manager.key: a valid P-256 key the agent does not trust */
static struct mgo_sign_key *g_next;  /* rotated.key: the next manager key, also trusted */

static int suite_init(void)
{
    sec_pki_make(g_dir, "--device " DEV);
    char cmd[1024], p[512];
    snprintf(
        cmd, sizeof cmd,
        "cd '%s/pki' && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
        "-out rotated.key 2>/dev/null && openssl pkey -in rotated.key -pubout -out rotated.pub "
        "&& openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | "
        "openssl pkey -pubout -out rsa.pub && echo 'not a key' > garbage.pub",
        g_dir);
    if (mgo_test_sh("%s", cmd) != 0)
        return 1;
    snprintf(g_fake_helm, sizeof g_fake_helm, "%s", mgo_test_path("tests/agent/fake-helm"));
    if (mgo_sign_key_load(sec_pki_path(g_dir, "signing.key", p), &g_sign) != MGO_OK ||
        mgo_sign_key_load(sec_pki_path(g_dir, "manager.key", p), &g_other) != MGO_OK ||
        mgo_sign_key_load(sec_pki_path(g_dir, "rotated.key", p), &g_next) != MGO_OK)
        return 1;
    return 0;
}

static int suite_clean(void)
{
    mgo_sign_key_free(g_sign);
    mgo_sign_key_free(g_other);
    mgo_sign_key_free(g_next);
    mgo_test_rm_rf(g_dir);
    return 0;
}

/* ---- documents ------------------------------------------------------------------------ */

static const char *doc_yaml(char *out, size_t n, const char *id, const char *release,
                            const char *rev)
{
    snprintf(out, n,
             "apiVersion: application.margo.org/v1alpha1\n"
             "kind: ApplicationDeployment\n"
             "id: %s\n"
             "metadata:\n"
             "  annotations: {applicationId: demo-app, id: %s}\n"
             "  name: demo-%s\n"
             "  namespace: edge\n"
             "  deviceId: " DEV "\n"
             "spec:\n"
             "  deploymentProfile:\n"
             "    type: helm\n"
             "    components:\n"
             "      - name: %s\n"
             "        properties: {repository: 'oci://registry.example/charts/%s', revision: '%s',"
             " wait: true, timeout: 1m0s}\n"
             "  parameters:\n"
             "    replicas: {value: 1, targets: [{pointer: replicas, components: [%s]}]}\n",
             id, id, release, release, release, rev, release);
    return out;
}

/* Publishes a deployment document signed by key (NULL: unsigned). forge_rev non-NULL changes
 * the revision AFTER signing. digest receives mgo_doc_digest of what was published. */
static void publish_doc(struct mgo_mqtt *m, const struct mgo_sign_key *key, const char *id,
                        const char *release, const char *rev, const char *forge_rev,
                        char digest[MGO_DIGEST_STR_SIZE])
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char yaml[2048];
    struct mgo_value root = sec_yaml(&arena, doc_yaml(yaml, sizeof yaml, id, release, rev));
    struct mgo_value doc = sec_sign(key, &root, &arena);
    if (forge_rev != NULL) {
        struct mgo_value *comps =
            sec_member(sec_member(sec_member(&doc, "spec"), "deploymentProfile"), "components");
        CU_ASSERT_FATAL(comps != NULL && comps->kind == MGO_V_ARRAY);
        struct mgo_value *props = sec_member(&comps->as.array.items[0], "properties");
        struct mgo_value *r = sec_member(props, "revision");
        CU_ASSERT_FATAL(r != NULL);
        *r = mgo_value_str(forge_rev);
    }
    CU_ASSERT_FATAL(mgo_doc_digest(&doc, digest) == MGO_OK);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, DEV, id, t, sizeof t) ==
                    MGO_OK);
    sec_publish_value(m, t, &doc);
    mgo_arena_cleanup(&arena);
}

enum forge { FORGE_NONE, FORGE_DIGEST_AFTER_SIGNING };

/* Builds (and publishes unless out is given) a manifest {version, deviceId: device,
 * deployments: [{id, digest}]} signed by key (NULL: unsigned). With FORGE_DIGEST_AFTER_SIGNING
 * the manifest is signed listing sign_digest and then changed to list digest. */
static void manifest(struct mgo_mqtt *m, const struct mgo_sign_key *key, uint64_t version,
                     const char *device, const char *id, const char *digest, enum forge forge,
                     const char *sign_digest, struct mgo_buf *out)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "manifestVersion: %llu\nbundle: null\ndeviceId: %s\n"
             "deployments:\n  - {deploymentId: %s, digest: '%s'}\n",
             (unsigned long long)version, device, id,
             forge == FORGE_DIGEST_AFTER_SIGNING ? sign_digest : digest);
    struct mgo_value root = sec_yaml(&arena, yaml);
    struct mgo_value doc = sec_sign(key, &root, &arena);
    if (forge == FORGE_DIGEST_AFTER_SIGNING) {
        struct mgo_value *deps = sec_member(&doc, "deployments");
        CU_ASSERT_FATAL(deps != NULL && deps->kind == MGO_V_ARRAY);
        struct mgo_value *d = sec_member(&deps->as.array.items[0], "digest");
        CU_ASSERT_FATAL(d != NULL);
        *d = mgo_value_str(digest);
    }
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_value_to_msgpack(&doc, &b) == MGO_OK);
    if (out != NULL) {
        *out = b;
    } else {
        char t[MGO_MAX_TOPIC_LEN + 1];
        CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DESIRED, DEV, NULL, t, sizeof t) ==
                        MGO_OK);
        h_publish(m, t, b.data, b.len);
        mgo_buf_cleanup(&b);
    }
    mgo_arena_cleanup(&arena);
}

/* A manifest {version, deviceId, deployments: [{id, digest}], x-margo-mqtt-validity:
 * {issuedAt, expiresAt}} signed by key and published (protocol.md §3.2 EXP-1). */
static void manifest_valid(struct mgo_mqtt *m, const struct mgo_sign_key *key, uint64_t version,
                           const char *id, const char *digest, uint64_t issued, uint64_t expires)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "manifestVersion: %llu\nbundle: null\ndeviceId: " DEV "\n"
             "deployments:\n  - {deploymentId: %s, digest: '%s'}\n"
             "x-margo-mqtt-validity: {issuedAt: %llu, expiresAt: %llu}\n",
             (unsigned long long)version, id, digest, (unsigned long long)issued,
             (unsigned long long)expires);
    struct mgo_value root = sec_yaml(&arena, yaml);
    struct mgo_value doc = sec_sign(key, &root, &arena);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DESIRED, DEV, NULL, t, sizeof t) ==
                    MGO_OK);
    sec_publish_value(m, t, &doc);
    mgo_arena_cleanup(&arena);
}

static void publish_bytes(struct mgo_mqtt *m, const struct mgo_buf *b)
{
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DESIRED, DEV, NULL, t, sizeof t) ==
                    MGO_OK);
    h_publish(m, t, b->data, b->len);
}

static const struct h_status *last_of(const struct h_monitor *mon, const char *dep)
{
    for (size_t i = mon->len; i > 0; i--)
        if (strcmp(mon->items[i - 1].deployment_id, dep) == 0)
            return &mon->items[i - 1];
    return NULL;
}

/* The accepted manifest version as the agent persisted it (read as text: opening the state
 * through the agent's API would count a boot). */
static bool accepted_version_is(const char *state_dir, unsigned v)
{
    char p[600], want[64];
    snprintf(p, sizeof p, "%s/agent.state", state_dir);
    char *text = mgo_test_read_file(p, NULL);
    snprintf(want, sizeof want, "manifest-version %u\n", v);
    bool ok = text != NULL && strstr(text, want) != NULL;
    free(text);
    return ok;
}

/* Expects one new signature-invalid event (severity error) whose message holds needle. */
static void expect_refused(struct sec_events *ev, size_t *seen, const char *dep_id,
                           const char *needle)
{
    const struct sec_event *e = sec_events_wait(ev, *seen, "signature-invalid", 8000);
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT_STRING_EQUAL(e->severity, "error");
    CU_ASSERT_STRING_EQUAL(e->deployment_id, dep_id ? dep_id : "");
    if (strstr(e->message, needle) == NULL) {
        fprintf(stderr, "event message '%s' lacks '%s'\n", e->message, needle);
        CU_FAIL("signature-invalid names the reason");
    }
    *seen = (size_t)(e - ev->items) + 1;
}

static void test_agent_refuses_bad_signatures(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char state_dir[512], log[512], rel[512], key1[512], key2[512];
    snprintf(state_dir, sizeof state_dir, "%s/state", g_dir);
    mgo_test_fake_helm_env(g_dir, "success", log, rel);
    sec_pki_path(g_dir, "signing.pub", key1);
    sec_pki_path(g_dir, "rotated.pub", key2);

    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "helm-command", g_fake_helm, "compose-command", "mgo-no-compose-here",
                 "settle-ms", "200", "reconcile-interval", "3600", "backoff-min-ms", "100",
                 "backoff-max-ms", "500", "manager-public-key", key1, "manager-public-key", key2,
                 NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct sec_events ev;
    sec_events_start(&ev, mgo_test_broker_url(&broker), DEV);
    size_t seen = 0;
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-sig");

    /* 1. correctly signed document + manifest v1: installed */
    char a1[MGO_DIGEST_STR_SIZE], a2[MGO_DIGEST_STR_SIZE], a3[MGO_DIGEST_STR_SIZE],
        b1[MGO_DIGEST_STR_SIZE];
    publish_doc(mgr, g_sign, ID_A, "alpha", "1.0.0", NULL, a1);
    struct mgo_buf v1;
    manifest(mgr, g_sign, 1, DEV, ID_A, a1, FORGE_NONE, NULL, &v1);
    publish_bytes(mgr, &v1);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000));
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f--install\x1f"
                                              "alpha\x1f"),
                    1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "1.0.0\x1f"),
                    1);
    CU_ASSERT(accepted_version_is(state_dir, 1));
    h_monitor_pump(&mon, 300);
    size_t statuses = mon.len;

    /* a correctly signed 2.0.0 document arrives (cached, not yet named by a manifest) */
    publish_doc(mgr, g_sign, ID_A, "alpha", "2.0.0", NULL, a2);

    /* 2. manifests v2 that would install 2.0.0, each refused before anything decodes them */
    manifest(mgr, g_sign, 2, DEV, ID_A, a2, FORGE_DIGEST_AFTER_SIGNING, a1, NULL);
    expect_refused(&ev, &seen, NULL, "signature"); /* forged after signing */
    manifest(mgr, NULL, 2, DEV, ID_A, a2, FORGE_NONE, NULL, NULL);
    expect_refused(&ev, &seen, NULL, "unsigned"); /* unsigned */
    manifest(mgr, g_other, 2, DEV, ID_A, a2, FORGE_NONE, NULL, NULL);
    expect_refused(&ev, &seen, NULL, "keyId"); /* another key */
    manifest(mgr, g_sign, 2, "dev-other", ID_A, a2, FORGE_NONE, NULL, NULL);
    expect_refused(&ev, &seen, NULL, "deviceId"); /* for another device */

    /* 3. documents: one forged after signing (its revision changed), one unsigned */
    publish_doc(mgr, g_sign, ID_A, "alpha", "6.6.6", "6.6.7", a3);
    expect_refused(&ev, &seen, ID_A, "signature");
    publish_doc(mgr, NULL, ID_B, "beta", "1.0.0", NULL, b1);
    expect_refused(&ev, &seen, ID_B, "unsigned");
    /* a valid manifest naming the forged document's digest: the forged bytes were never
     * cached, so the agent only has 2.0.0 and reports a digest mismatch */
    manifest(mgr, g_sign, 2, DEV, ID_A, a3, FORGE_NONE, NULL, NULL);
    CU_ASSERT(sec_events_wait(&ev, seen, "digest-mismatch", 8000) != NULL);

    /* nothing of the above was installed or reported, and the accepted version is still 1 */
    h_monitor_pump(&mon, 1000);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "upgrade\x1f"), 1);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "2.0.0\x1f"),
                    0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "6.6."), 0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "beta"), 0);
    CU_ASSERT_EQUAL(mon.len, statuses);
    CU_ASSERT(accepted_version_is(state_dir, 1));
    CU_ASSERT(last_of(&mon, ID_B) == NULL);

    /* 4. a correct manifest v3 signed with the rotated key: 2.0.0 installs */
    manifest(mgr, g_next, 3, DEV, ID_A, a2, FORGE_NONE, NULL, NULL);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000));
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "2.0.0\x1f"),
                    1);
    CU_ASSERT_EQUAL(last_of(&mon, ID_A)->adopted, 3);
    CU_ASSERT(accepted_version_is(state_dir, 3));

    /* 5. the original, validly signed manifest v1 replayed: refused (anti-rollback), the
     * device keeps 2.0.0 and runs nothing */
    size_t lines = mgo_test_count_lines(log, "\x1f");
    h_monitor_pump(&mon, 300);
    statuses = mon.len;
    publish_bytes(mgr, &v1);
    const struct sec_event *e = sec_events_wait(&ev, seen, "manifest-refused", 8000);
    CU_ASSERT(e != NULL && strstr(e->message, "anti-rollback") != NULL);
    h_monitor_pump(&mon, 1000);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"), lines);
    CU_ASSERT_EQUAL(mon.len, statuses);
    CU_ASSERT(accepted_version_is(state_dir, 3));
    /* no signature-invalid event for the valid ones */
    CU_ASSERT(sec_events_wait(&ev, seen, "signature-invalid", 1) == NULL);

    mgo_buf_cleanup(&v1);
    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    sec_events_stop(&ev);
    h_monitor_stop(&mon);
    mgo_test_broker_cleanup(&broker);
}

/* Freeze and rollback by a broker (issue 19 item 6, protocol.md §3.2 EXP-1): a refreshed
 * manifest (same version and deployments, later validity, another manifest digest) causes
 * no runtime action; a validly signed newer manifest replayed after its expiry raises
 * manifest-expired once and installs or removes nothing; a fresh manifest still installs. */
static void test_agent_manifest_expiry(void)
{
    struct mgo_test_broker broker;
    memset(&broker, 0, sizeof broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    char state_dir[512], log[512], rel[512], key1[512];
    snprintf(state_dir, sizeof state_dir, "%s/state-expiry", g_dir);
    snprintf(log, sizeof log, "%s/helm-expiry.log", g_dir);
    snprintf(rel, sizeof rel, "%s/releases-expiry", g_dir);
    setenv("FAKE_HELM_LOG", log, 1);
    setenv("FAKE_HELM_STATE", rel, 1);
    setenv("FAKE_HELM_MODE", "success", 1);
    unsetenv("FAKE_HELM_MODE_UPGRADE");
    sec_pki_path(g_dir, "signing.pub", key1);
    struct h_agent agent;
    h_agent_init(&agent, "device-id", DEV, "broker-url", mgo_test_broker_url(&broker), "state-dir",
                 state_dir, "helm-command", g_fake_helm, "compose-command", "mgo-no-compose-here",
                 "settle-ms", "200", "reconcile-interval", "3600", "backoff-min-ms", "100",
                 "backoff-max-ms", "500", "manager-public-key", key1, NULL);
    struct h_monitor mon;
    h_monitor_start(&mon, mgo_test_broker_url(&broker), DEV);
    struct sec_events ev;
    sec_events_start(&ev, mgo_test_broker_url(&broker), DEV);
    struct mgo_mqtt *mgr = h_client(mgo_test_broker_url(&broker), "manager-expiry");
    uint64_t now = (uint64_t)time(NULL);

    /* 1. v1, valid for an hour: installed */
    char a1[MGO_DIGEST_STR_SIZE], a2[MGO_DIGEST_STR_SIZE];
    publish_doc(mgr, g_sign, ID_A, "alpha", "1.0.0", NULL, a1);
    manifest_valid(mgr, g_sign, 1, ID_A, a1, now, now + 3600);
    h_agent_start(&agent);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000));
    CU_ASSERT(accepted_version_is(state_dir, 1));
    h_monitor_pump(&mon, 500);
    size_t statuses = mon.len;
    size_t lines = mgo_test_count_lines(log, "\x1f");

    /* 2. the manager's refresh of v1: same deployments, later validity, new signature */
    manifest_valid(mgr, g_sign, 1, ID_A, a1, now + 1, now + 7201);
    h_monitor_pump(&mon, 1500);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"), lines); /* no helm command */
    CU_ASSERT_EQUAL(mon.len, statuses);                        /* no status */
    CU_ASSERT(accepted_version_is(state_dir, 1));
    CU_ASSERT(sec_events_wait(&ev, 0, "manifest-refused", 1) == NULL);
    CU_ASSERT(sec_events_wait(&ev, 0, "manifest-expired", 1) == NULL);

    /* 3. a broker withheld v2 (naming 2.0.0) until it expired, then replays it: a newer,
     * validly signed manifest, but expired: event, nothing installed or removed */
    publish_doc(mgr, g_sign, ID_A, "alpha", "2.0.0", NULL, a2);
    manifest_valid(mgr, g_sign, 2, ID_A, a2, now - 8 * 86400, now - 86400);
    const struct sec_event *e = sec_events_wait(&ev, 0, "manifest-expired", 8000);
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT_STRING_EQUAL(e->severity, "warning");
    CU_ASSERT(strstr(e->message, "manifest 2 expired") != NULL);
    size_t seen = (size_t)(e - ev.items) + 1;
    /* the same replay again: no second event for that version */
    manifest_valid(mgr, g_sign, 2, ID_A, a2, now - 8 * 86400, now - 86400);
    h_monitor_pump(&mon, 1500);
    CU_ASSERT(sec_events_wait(&ev, seen, "manifest-expired", 1) == NULL);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"), lines);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "2.0.0\x1f"),
                    0);
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "uninstall"), 0);
    CU_ASSERT_EQUAL(mon.len, statuses);
    CU_ASSERT(accepted_version_is(state_dir, 1));
    CU_ASSERT_EQUAL(last_of(&mon, ID_A)->state, MGO_STATE_INSTALLED);

    /* 4. a fresh v3 naming 2.0.0 installs it */
    manifest_valid(mgr, g_sign, 3, ID_A, a2, now, now + 3600);
    CU_ASSERT_FATAL(h_monitor_wait(&mon, ID_A, MGO_STATE_INSTALLED, 20000));
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, "\x1f"
                                              "2.0.0\x1f"),
                    1);
    CU_ASSERT_EQUAL(last_of(&mon, ID_A)->adopted, 3);
    CU_ASSERT(accepted_version_is(state_dir, 3));

    h_agent_cleanup(&agent);
    mgo_mqtt_free(mgr);
    sec_events_stop(&ev);
    h_monitor_stop(&mon);
    mgo_test_broker_cleanup(&broker);
}

/* A configured key that cannot be loaded stops the start before anything is touched. */
static void test_bad_key_stops_start(void)
{
    const char *bad[] = {"garbage.pub", "rsa.pub", "no-such.pub", "signing.key"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char state_dir[512], key[512];
        snprintf(state_dir, sizeof state_dir, "%s/state-bad-%zu", g_dir, i);
        sec_pki_path(g_dir, bad[i], key);
        struct h_agent a;
        h_agent_init(&a, "device-id", DEV, "broker-url", "tcp://127.0.0.1:9", "state-dir",
                     state_dir, "helm-command", g_fake_helm, "manager-public-key", key, NULL);
        struct mgo_agent *agent = NULL;
        mgo_err err = mgo_agent_new(&a.cfg, &agent);
        if (err == MGO_OK)
            fprintf(stderr, "manager-public-key %s was accepted\n", bad[i]);
        CU_ASSERT(err != MGO_OK);
        mgo_agent_free(agent);
        CU_ASSERT(access(state_dir, F_OK) != 0); /* not started: no state, no boot counted */
        h_agent_cleanup(&a);
    }
    /* the good key starts (and stops at once) */
    char state_dir[512], key[512];
    snprintf(state_dir, sizeof state_dir, "%s/state-good", g_dir);
    sec_pki_path(g_dir, "signing.pub", key);
    struct h_agent a;
    h_agent_init(&a, "device-id", DEV, "broker-url", "tcp://127.0.0.1:9", "state-dir", state_dir,
                 "helm-command", g_fake_helm, "manager-public-key", key, NULL);
    struct mgo_agent *agent = NULL;
    CU_ASSERT_FATAL(mgo_agent_new(&a.cfg, &agent) == MGO_OK);
    mgo_agent_stop(agent); /* stopped before it runs: run returns at once */
    CU_ASSERT(mgo_agent_run(agent) == MGO_OK);
    mgo_agent_free(agent);
    CU_ASSERT(access(state_dir, F_OK) == 0);
    h_agent_cleanup(&a);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"bad manager-public-key stops the start", test_bad_key_stops_start},
        {"forged, unsigned, other-key, other-device, replayed: refused, nothing installed",
         test_agent_refuses_bad_signatures},
        {"refreshed manifest: no action; expired replay: manifest-expired, nothing installed",
         test_agent_manifest_expiry},
        {NULL, NULL},
    };
    CU_pSuite s = CU_add_suite("agent.signed", suite_init, suite_clean);
    for (size_t i = 0; s != NULL && cases[i].name != NULL; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
}
