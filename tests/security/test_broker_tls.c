/* test_broker_tls.c - the SHIPPED broker configuration (broker-config/mosquitto-tls.conf and
 * margo.acl, only the two listener ports rewritten) on a real Mosquitto, with certificates
 * made by broker-config/pki.sh:
 *   - device A cannot publish to device B's topics (B's retained status stays B's), cannot
 *     read B's desired state or documents, cannot take over B's session;
 *   - no certificate, a certificate from another CA, an expired certificate: no connection;
 *   - a monitor reads status, state, capabilities and the fleet roll-ups, never desired state,
 *     and cannot publish;
 *   - the manager (manager role, over TLS) publishes signed documents that an agent-side
 *     verifier (mgo_sign_verify_msgpack with signing.pub) accepts for dev-a only;
 *   - the listener speaks TLS 1.3 only: a TLS 1.2-only client (openssl s_client -tls1_2) with
 *     a valid certificate gets a protocol_version alert;
 *   - a certificate revoked with pki.sh --revoke is refused after SIGHUP, with the same broker
 *     process (no restart); a connection opened before stays open (the documented limit);
 *   - rotation (pki.sh --renew-device / --renew-manager): the new certificate, same CN,
 *     connects, the previous one keeps working until it is revoked.
 *   - the monitor publishing as a "device" named margo-monitor gets through the broker but
 *     is refused by the manager (nothing stored, no deployment); pki.sh refuses role names.
 * The API's 401 behaviour is proven by tests/manager/test_manager_it.c (test_auth_required). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mgo/manager.h"
#include "mgo/mgr_store.h"
#include "mgo/margo.h"
#include "http.h"
#include "manager_thread.h"
#include "mqtt_client.h"
#include "mgo/mqtt.h"
#include "mgo/sign.h"
#include "mgo_test.h"
#include "sec_test_util.h"

#define WAIT_MS 10000
#define TOKEN "sec-token-0123456789abcdef"

static char g_dir[256];   /* fleet PKI (pki/) + broker working dir (broker/) */
static char g_rogue[256]; /* a second, untrusted CA (pki/) */
static pid_t g_broker;
static int g_tls_port, g_plain_port;
static char g_url[64];

/* ---- helpers ------------------------------------------------------------------------------- */

/* Copies the shipped config, changing only "listener 8883" and "listener 1883 127.0.0.1" to
 * free ports; false when either line is missing (the shipped file drifted from this test). */
static bool write_conf(const char *path)
{
    char *text = mgo_test_read_file(mgo_test_path("broker-config/mosquitto-tls.conf"), NULL);
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        free(text);
        return false;
    }
    int found = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strcmp(line, "listener 8883") == 0) {
            fprintf(out, "listener %d\n", g_tls_port);
            found |= 1;
        } else if (strcmp(line, "listener 1883 127.0.0.1") == 0) {
            fprintf(out, "listener %d 127.0.0.1\n", g_plain_port);
            found |= 2;
        } else {
            fprintf(out, "%s\n", line);
        }
        line = nl ? nl + 1 : NULL;
    }
    /* as root, Mosquitto would switch to user "mosquitto", who cannot read our 0600 keys */
    if (geteuid() == 0)
        fprintf(out, "user root\n");
    free(text);
    return fclose(out) == 0 && found == 3;
}

static bool start_broker(void)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/broker/run/broker' && ln -s '%s/pki' '%s/broker/run/pki' && "
             "ln -s '%s' '%s/broker/broker-config'",
             g_dir, g_dir, g_dir, mgo_test_path("broker-config"), g_dir);
    if (mgo_test_sh("%s", cmd) != 0)
        return false;
    g_tls_port = mgo_test_free_port();
    g_plain_port = mgo_test_free_port();
    snprintf(g_url, sizeof g_url, "ssl://localhost:%d", g_tls_port);
    char conf[512], log[512], wd[512];
    snprintf(conf, sizeof conf, "%s/broker/mosquitto.conf", g_dir);
    snprintf(log, sizeof log, "%s/broker/mosquitto.log", g_dir);
    snprintf(wd, sizeof wd, "%s/broker", g_dir);
    if (g_tls_port < 0 || g_plain_port < 0 || !write_conf(conf)) {
        fprintf(stderr, "cannot write %s from the shipped config\n", conf);
        return false;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent || chdir(wd) != 0)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execl("/usr/sbin/mosquitto", "mosquitto", "-c", "mosquitto.conf", (char *)NULL);
        _exit(127);
    }
    g_broker = pid;
    for (int waited = 0; waited < 5000; waited += 20) {
        if (mgo_test_port_open(g_tls_port) && mgo_test_port_open(g_plain_port))
            return true;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            g_broker = 0;
            fprintf(stderr, "mosquitto exited at startup; see %s\n", log);
            return false;
        }
        mgo_test_sleep_ms(20);
    }
    return false;
}

static void stop_broker(void)
{
    if (g_broker > 0) {
        kill(g_broker, SIGTERM);
        waitpid(g_broker, NULL, 0);
        g_broker = 0;
    }
}

/* A TLS client with a certificate (cert/key relative to pki_dir's pki/; NULL = none). */
static mgo_err tls_client(const char *pki_dir, const char *cert, const char *key,
                          const char *client_id, struct mgo_mqtt **out)
{
    char ca[512], c[512], k[512];
    struct mgo_mqtt_config cfg = {
        .url = g_url,
        .client_id = client_id,
        .clean_start = true,
        .ca_file = sec_pki_path(g_dir, "ca.crt", ca),
        .cert_file = cert ? sec_pki_path(pki_dir, cert, c) : NULL,
        .key_file = key ? sec_pki_path(pki_dir, key, k) : NULL,
    };
    struct mgo_mqtt *m = NULL;
    mgo_err err = mgo_mqtt_new(&cfg, &m);
    if (err == MGO_OK)
        err = mgo_mqtt_connect(m);
    if (err) {
        mgo_mqtt_free(m);
        return err;
    }
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    err = MGO_ERR_TIMEOUT;
    while (mgo_test_now_ms() < deadline && err == MGO_ERR_TIMEOUT) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_CONNECTED)
            err = MGO_OK;
        else if (ev.kind == MGO_MQTT_EV_CONNECT_FAILED || ev.kind == MGO_MQTT_EV_DISCONNECTED)
            err = MGO_ERR_AUTH;
        mgo_mqtt_event_cleanup(&ev);
    }
    if (err) {
        mgo_mqtt_free(m);
        return err;
    }
    *out = m;
    return MGO_OK;
}

static struct mgo_mqtt *device(const char *id)
{
    char cert[300], key[300];
    snprintf(cert, sizeof cert, "devices/%s.crt", id);
    snprintf(key, sizeof key, "devices/%s.key", id);
    struct mgo_mqtt *m = NULL;
    CU_ASSERT_EQUAL_FATAL(tls_client(g_dir, cert, key, id, &m), MGO_OK);
    return m;
}

static struct mgo_mqtt *role(const char *name, const char *client_id)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s.crt", name);
    snprintf(key, sizeof key, "%s.key", name);
    struct mgo_mqtt *m = NULL;
    CU_ASSERT_EQUAL_FATAL(tls_client(g_dir, cert, key, client_id, &m), MGO_OK);
    return m;
}

struct msg {
    char topic[256];
    char payload[256];
};

struct inbox {
    struct msg items[64];
    size_t len;
    int published, publish_failed, subscribed, subscribe_failed, disconnected;
    int last_reason;
};

static void pump(struct mgo_mqtt *m, struct inbox *in, int ms)
{
    int64_t deadline = mgo_test_now_ms() + ms;
    do {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 20, &ev) != MGO_OK)
            continue;
        switch (ev.kind) {
        case MGO_MQTT_EV_MESSAGE:
            if (in->len < 64) {
                struct msg *x = &in->items[in->len++];
                snprintf(x->topic, sizeof x->topic, "%s", ev.topic);
                snprintf(x->payload, sizeof x->payload, "%.*s", (int)ev.payload_len,
                         ev.payload ? (const char *)ev.payload : "");
            }
            break;
        case MGO_MQTT_EV_PUBLISHED:
            in->published++;
            in->last_reason = ev.reason;
            break;
        case MGO_MQTT_EV_PUBLISH_FAILED:
            in->publish_failed++;
            in->last_reason = ev.reason;
            break;
        case MGO_MQTT_EV_SUBSCRIBED:
            in->subscribed++;
            in->last_reason = ev.reason;
            break;
        case MGO_MQTT_EV_SUBSCRIBE_FAILED:
            in->subscribe_failed++;
            in->last_reason = ev.reason;
            break;
        case MGO_MQTT_EV_DISCONNECTED:
            in->disconnected++;
            break;
        default:
            break;
        }
        mgo_mqtt_event_cleanup(&ev);
    } while (mgo_test_now_ms() < deadline);
}

/* Pumps until pred holds (or WAIT_MS). */
#define PUMP_UNTIL(m, in, cond)                                                                    \
    do {                                                                                           \
        int64_t until_ = mgo_test_now_ms() + WAIT_MS;                                              \
        while (!(cond) && mgo_test_now_ms() < until_)                                              \
            pump((m), (in), 20);                                                                   \
    } while (0)

static const struct msg *find(const struct inbox *in, const char *topic, const char *payload)
{
    for (size_t i = 0; i < in->len; i++) {
        if (strcmp(in->items[i].topic, topic) == 0 &&
            (payload == NULL || strcmp(in->items[i].payload, payload) == 0))
            return &in->items[i];
    }
    return NULL;
}

static size_t count_topic(const struct inbox *in, const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < in->len; i++)
        n += strcmp(in->items[i].topic, topic) == 0;
    return n;
}

/* Publishes QoS 1 and waits for the broker's answer (acknowledged or refused). */
static void pub(struct mgo_mqtt *m, struct inbox *in, const char *topic, const char *text,
                bool retain)
{
    int before = in->published + in->publish_failed;
    CU_ASSERT_EQUAL_FATAL(mgo_mqtt_publish(m, topic, text, strlen(text), 1, retain, NULL), MGO_OK);
    PUMP_UNTIL(m, in, in->published + in->publish_failed > before);
}

static void sub(struct mgo_mqtt *m, struct inbox *in, const char *filter)
{
    int before = in->subscribed + in->subscribe_failed;
    CU_ASSERT_EQUAL_FATAL(mgo_mqtt_subscribe(m, filter, 1, NULL), MGO_OK);
    PUMP_UNTIL(m, in, in->subscribed + in->subscribe_failed > before);
}

/* ---- suite --------------------------------------------------------------------------------- */

static int suite_init(void)
{
    sec_pki_make(g_dir, "--device dev-a --device dev-b --expired dev-old");
    sec_pki_make(g_rogue, "--device dev-a");
    if (!start_broker()) {
        fprintf(stderr, "cannot start Mosquitto with broker-config/mosquitto-tls.conf\n");
        return 1;
    }
    return 0;
}

/* Revocation and rotation run on a broker of their own, with no offline persistent session:
 * Mosquitto 2.0.11 crashed (SIGABRT, SIGSEGV) on SIGHUP in this suite's broker after the
 * manager's offline session had been kicked by an earlier reload and its client id was used
 * again (docs/security.md "Revocation"); a fresh broker keeps these tests about the CRL. */
static int suite_init_revocation(void)
{
    g_rogue[0] = '\0';
    sec_pki_make(g_dir, "--device dev-a --device dev-c --device dev-r");
    if (!start_broker()) {
        fprintf(stderr, "cannot start Mosquitto with broker-config/mosquitto-tls.conf\n");
        return 1;
    }
    return 0;
}

static int suite_clean(void)
{
    stop_broker();
    mgo_test_rm_rf(g_dir);
    mgo_test_rm_rf(g_rogue);
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_device_cannot_write_other_device(void)
{
    struct mgo_mqtt *a = device("dev-a"), *b = device("dev-b"), *mgr = role("manager", "mgr-1");
    struct inbox ia = {0}, ib = {0}, im = {0};
    pub(b, &ib, "margo/v1/devices/dev-b/status/u1", "b-real", true);
    CU_ASSERT_EQUAL(ib.published, 1);
    sub(mgr, &im, "margo/v1/devices/+/status/+");
    PUMP_UNTIL(mgr, &im, find(&im, "margo/v1/devices/dev-b/status/u1", "b-real"));
    CU_ASSERT_PTR_NOT_NULL(find(&im, "margo/v1/devices/dev-b/status/u1", "b-real"));

    /* A forges B's status, capabilities, presence; then publishes its own status (allowed):
     * QoS 1 from one client arrives in order, so once A's own status is in, any forgery
     * that got through would be in too. */
    pub(a, &ia, "margo/v1/devices/dev-b/status/u1", "forged", true);
    pub(a, &ia, "margo/v1/devices/dev-b/capabilities", "forged", true);
    pub(a, &ia, "margo/v1/devices/dev-b/state", "forged", true);
    pub(a, &ia, "margo/v1/devices/dev-a/desired", "self-desired", true); /* read-only for A */
    CU_ASSERT_EQUAL(ia.published + ia.publish_failed, 4);
    pub(a, &ia, "margo/v1/devices/dev-a/status/u1", "a-own", true);
    PUMP_UNTIL(mgr, &im, find(&im, "margo/v1/devices/dev-a/status/u1", "a-own"));
    CU_ASSERT_PTR_NOT_NULL(find(&im, "margo/v1/devices/dev-a/status/u1", "a-own"));
    CU_ASSERT_PTR_NULL(find(&im, "margo/v1/devices/dev-b/status/u1", "forged"));

    /* a fresh manager-role subscriber sees B's retained status unchanged */
    struct mgo_mqtt *mgr2 = role("manager", "mgr-2");
    struct inbox i2 = {0};
    sub(mgr2, &i2, "margo/v1/devices/dev-b/#");
    sub(mgr2, &i2, "margo/v1/devices/dev-a/desired");
    PUMP_UNTIL(mgr2, &i2, find(&i2, "margo/v1/devices/dev-b/status/u1", NULL));
    pump(mgr2, &i2, 200);
    CU_ASSERT_PTR_NOT_NULL(find(&i2, "margo/v1/devices/dev-b/status/u1", "b-real"));
    CU_ASSERT_EQUAL(count_topic(&i2, "margo/v1/devices/dev-b/status/u1"), 1);
    CU_ASSERT_PTR_NULL(find(&i2, "margo/v1/devices/dev-b/capabilities", NULL));
    CU_ASSERT_PTR_NULL(find(&i2, "margo/v1/devices/dev-b/state", NULL));
    CU_ASSERT_PTR_NULL(find(&i2, "margo/v1/devices/dev-a/desired", NULL));
    mgo_mqtt_free(mgr2);
    mgo_mqtt_free(mgr);
    mgo_mqtt_free(b);
    mgo_mqtt_free(a);
}

static void test_device_cannot_read_other_device(void)
{
    struct mgo_mqtt *mgr = role("manager", "mgr-3");
    struct inbox im = {0};
    pub(mgr, &im, "margo/v1/devices/dev-b/desired", "b-desired-1", true);
    pub(mgr, &im, "margo/v1/devices/dev-b/deployments/u1", "b-doc-1", true);
    pub(mgr, &im, "margo/v1/devices/dev-a/desired", "a-desired-1", true);
    CU_ASSERT_EQUAL(im.published, 3);

    struct mgo_mqtt *a = device("dev-a"), *b = device("dev-b");
    struct inbox ia = {0}, ib = {0};
    sub(a, &ia, "margo/v1/devices/+/desired");
    sub(a, &ia, "margo/v1/devices/+/deployments/+");
    sub(a, &ia, "margo/v1/#");
    sub(b, &ib, "margo/v1/devices/dev-b/desired");
    PUMP_UNTIL(a, &ia, find(&ia, "margo/v1/devices/dev-a/desired", "a-desired-1"));
    PUMP_UNTIL(b, &ib, find(&ib, "margo/v1/devices/dev-b/desired", "b-desired-1"));
    CU_ASSERT_PTR_NOT_NULL(find(&ia, "margo/v1/devices/dev-a/desired", "a-desired-1"));
    CU_ASSERT_PTR_NOT_NULL(find(&ib, "margo/v1/devices/dev-b/desired", "b-desired-1"));

    /* live: B's desired state first, then A's; A sees its own and never B's */
    pub(mgr, &im, "margo/v1/devices/dev-b/desired", "b-desired-2", true);
    pub(mgr, &im, "margo/v1/devices/dev-a/desired", "a-desired-2", true);
    PUMP_UNTIL(a, &ia, find(&ia, "margo/v1/devices/dev-a/desired", "a-desired-2"));
    PUMP_UNTIL(b, &ib, find(&ib, "margo/v1/devices/dev-b/desired", "b-desired-2"));
    CU_ASSERT_PTR_NOT_NULL(find(&ia, "margo/v1/devices/dev-a/desired", "a-desired-2"));
    CU_ASSERT_PTR_NOT_NULL(find(&ib, "margo/v1/devices/dev-b/desired", "b-desired-2"));
    CU_ASSERT_PTR_NULL(find(&ia, "margo/v1/devices/dev-b/desired", NULL));
    CU_ASSERT_PTR_NULL(find(&ia, "margo/v1/devices/dev-b/deployments/u1", NULL));
    /* a direct subscription to B's desired topic delivers nothing either */
    struct inbox ia2 = {0};
    sub(a, &ia2, "margo/v1/devices/dev-b/desired");
    pub(mgr, &im, "margo/v1/devices/dev-a/desired", "a-desired-3", true);
    PUMP_UNTIL(a, &ia2, find(&ia2, "margo/v1/devices/dev-a/desired", "a-desired-3"));
    CU_ASSERT_PTR_NOT_NULL(find(&ia2, "margo/v1/devices/dev-a/desired", "a-desired-3"));
    CU_ASSERT_PTR_NULL(find(&ia2, "margo/v1/devices/dev-b/desired", NULL));
    mgo_mqtt_free(b);
    mgo_mqtt_free(a);
    mgo_mqtt_free(mgr);
}

/* use_username_as_clientid: a device that asks for another device's client id gets its own,
 * so it can neither disconnect the other device nor resume its session. */
static void test_device_cannot_take_over_session(void)
{
    struct mgo_mqtt *b = device("dev-b");
    struct inbox ib = {0};
    struct mgo_mqtt *a = NULL;
    CU_ASSERT_EQUAL_FATAL(tls_client(g_dir, "devices/dev-a.crt", "devices/dev-a.key", "dev-b", &a),
                          MGO_OK);
    struct inbox ia = {0};
    pub(a, &ia, "margo/v1/devices/dev-a/events", "hello", false); /* A is fully connected */
    pump(b, &ib, 300);
    CU_ASSERT_EQUAL(ib.disconnected, 0);
    CU_ASSERT_TRUE(mgo_mqtt_is_connected(b));
    pub(b, &ib, "margo/v1/devices/dev-b/events", "still-here", false);
    CU_ASSERT_EQUAL(ib.published, 1);
    mgo_mqtt_free(a);
    mgo_mqtt_free(b);
}

static void test_connect_refused_without_valid_certificate(void)
{
    struct mgo_mqtt *m = NULL;
    /* control: a valid device certificate connects */
    CU_ASSERT_EQUAL(tls_client(g_dir, "devices/dev-a.crt", "devices/dev-a.key", "dev-a", &m),
                    MGO_OK);
    mgo_mqtt_free(m);
    m = NULL;
    /* no client certificate */
    CU_ASSERT_NOT_EQUAL(tls_client(g_dir, NULL, NULL, "dev-a", &m), MGO_OK);
    CU_ASSERT_PTR_NULL(m);
    /* a certificate with the right CN from another CA */
    CU_ASSERT_NOT_EQUAL(tls_client(g_rogue, "devices/dev-a.crt", "devices/dev-a.key", "dev-a", &m),
                        MGO_OK);
    CU_ASSERT_PTR_NULL(m);
    /* an expired certificate from the fleet CA */
    CU_ASSERT_NOT_EQUAL(
        tls_client(g_dir, "expired/dev-old.crt", "expired/dev-old.key", "dev-old", &m), MGO_OK);
    CU_ASSERT_PTR_NULL(m);
    /* plain MQTT on the TLS port */
    struct mgo_mqtt_config plain = {.url = NULL, .client_id = "dev-a", .clean_start = true};
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", g_tls_port);
    plain.url = url;
    CU_ASSERT_EQUAL_FATAL(mgo_mqtt_new(&plain, &m), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mqtt_connect(m), MGO_OK);
    struct inbox in = {0};
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool connected = false, failed = false;
    while (!connected && !failed && mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 50, &ev) != MGO_OK)
            continue;
        connected = ev.kind == MGO_MQTT_EV_CONNECTED;
        failed = ev.kind == MGO_MQTT_EV_CONNECT_FAILED || ev.kind == MGO_MQTT_EV_DISCONNECTED;
        mgo_mqtt_event_cleanup(&ev);
    }
    (void)in;
    CU_ASSERT_FALSE(connected);
    mgo_mqtt_free(m);
}

static void test_monitor_reads_status_only(void)
{
    struct mgo_mqtt *b = device("dev-b");
    struct inbox ib = {0};
    pub(b, &ib, "margo/v1/devices/dev-b/status/u2", "b-status", true);
    pub(b, &ib, "margo/v1/devices/dev-b/state", "b-online", true);
    pub(b, &ib, "margo/v1/devices/dev-b/capabilities", "b-caps", true);
    struct mgo_mqtt *mgr = role("manager", "mgr-4");
    struct inbox im = {0};
    pub(mgr, &im, "margo/v1/devices/dev-b/desired", "b-secret-desired", true);

    struct mgo_mqtt *mon = role("monitor", "mon-1");
    struct inbox in = {0};
    sub(mon, &in, "margo/v1/#");
    PUMP_UNTIL(mon, &in,
               find(&in, "margo/v1/devices/dev-b/status/u2", "b-status") &&
                   find(&in, "margo/v1/devices/dev-b/state", "b-online") &&
                   find(&in, "margo/v1/devices/dev-b/capabilities", "b-caps"));
    CU_ASSERT_PTR_NOT_NULL(find(&in, "margo/v1/devices/dev-b/status/u2", "b-status"));
    CU_ASSERT_PTR_NOT_NULL(find(&in, "margo/v1/devices/dev-b/state", "b-online"));
    CU_ASSERT_PTR_NOT_NULL(find(&in, "margo/v1/devices/dev-b/capabilities", "b-caps"));
    /* never desired state (parameters may hold secrets) */
    pub(mgr, &im, "margo/v1/devices/dev-b/desired", "b-secret-desired-2", true);
    pub(b, &ib, "margo/v1/devices/dev-b/status/u2", "b-status-2", true);
    PUMP_UNTIL(mon, &in, find(&in, "margo/v1/devices/dev-b/status/u2", "b-status-2"));
    CU_ASSERT_PTR_NOT_NULL(find(&in, "margo/v1/devices/dev-b/status/u2", "b-status-2"));
    CU_ASSERT_PTR_NULL(find(&in, "margo/v1/devices/dev-b/desired", NULL));
    /* the fleet roll-ups (protocol.md 2.4) are the monitor's to read */
    pub(mgr, &im, "margo/v1/fleet/apps/hello", "fleet-summary", true);
    PUMP_UNTIL(mon, &in, find(&in, "margo/v1/fleet/apps/hello", "fleet-summary"));
    CU_ASSERT_PTR_NOT_NULL(find(&in, "margo/v1/fleet/apps/hello", "fleet-summary"));

    /* the monitor cannot publish: B's retained status stays B's, the roll-up the manager's */
    pub(mon, &in, "margo/v1/devices/dev-b/status/u2", "mon-forged", true);
    pub(mon, &in, "margo/v1/devices/dev-b/desired", "mon-forged", true);
    pub(mon, &in, "margo/v1/fleet/apps/hello", "mon-forged", true);
    struct mgo_mqtt *mgr2 = role("manager", "mgr-5");
    struct inbox i2 = {0};
    sub(mgr2, &i2, "margo/v1/devices/dev-b/status/u2");
    sub(mgr2, &i2, "margo/v1/devices/dev-b/desired");
    sub(mgr2, &i2, "margo/v1/fleet/apps/hello");
    PUMP_UNTIL(mgr2, &i2,
               find(&i2, "margo/v1/devices/dev-b/status/u2", NULL) &&
                   find(&i2, "margo/v1/devices/dev-b/desired", NULL) &&
                   find(&i2, "margo/v1/fleet/apps/hello", NULL));
    CU_ASSERT_PTR_NOT_NULL(find(&i2, "margo/v1/fleet/apps/hello", "fleet-summary"));
    CU_ASSERT_PTR_NULL(find(&i2, "margo/v1/fleet/apps/hello", "mon-forged"));
    CU_ASSERT_PTR_NOT_NULL(find(&i2, "margo/v1/devices/dev-b/status/u2", "b-status-2"));
    CU_ASSERT_PTR_NOT_NULL(find(&i2, "margo/v1/devices/dev-b/desired", "b-secret-desired-2"));
    CU_ASSERT_PTR_NULL(find(&i2, "margo/v1/devices/dev-b/status/u2", "mon-forged"));
    mgo_mqtt_free(mgr2);
    mgo_mqtt_free(mon);
    mgo_mqtt_free(mgr);
    mgo_mqtt_free(b);
}

/* Several managers (share-group, docs/scaling.md): margo.acl's read rules apply to MQTT 5
 * shared subscriptions on the real topic. The manager's $share subscription receives a
 * device's status; a monitor's $share subscription to desired state receives nothing. */
static void test_shared_subscriptions_follow_the_acl(void)
{
    struct mgo_mqtt *mgr = role("manager", "mgr-share");
    struct inbox im = {0};
    sub(mgr, &im, "$share/mgrs/margo/v1/devices/+/status/+");
    sub(mgr, &im, "$share/mgrs/margo/v1/devices/+/desired"); /* delivered where allowed */
    struct mgo_mqtt *mon = role("monitor", "mon-share");
    struct inbox in = {0};
    sub(mon, &in, "$share/mons/margo/v1/devices/+/desired");
    sub(mon, &in, "$share/mons/margo/v1/devices/+/status/+");
    struct mgo_mqtt *c = device("dev-a");
    struct inbox ic = {0};
    pub(c, &ic, "margo/v1/devices/dev-a/status/u9", "a-share-status", false);
    PUMP_UNTIL(mgr, &im, find(&im, "margo/v1/devices/dev-a/status/u9", "a-share-status"));
    CU_ASSERT_PTR_NOT_NULL(find(&im, "margo/v1/devices/dev-a/status/u9", "a-share-status"));
    pub(mgr, &im, "margo/v1/devices/dev-a/desired", "a-share-desired", false);
    /* the monitor's other group gets the status (it may read it), never the desired state */
    PUMP_UNTIL(mon, &in, find(&in, "margo/v1/devices/dev-a/status/u9", "a-share-status"));
    CU_ASSERT_PTR_NOT_NULL(find(&in, "margo/v1/devices/dev-a/status/u9", "a-share-status"));
    PUMP_UNTIL(mgr, &im, find(&im, "margo/v1/devices/dev-a/desired", "a-share-desired"));
    CU_ASSERT_PTR_NOT_NULL(find(&im, "margo/v1/devices/dev-a/desired", "a-share-desired"));
    pump(mon, &in, 500);
    CU_ASSERT_PTR_NULL(find(&in, "margo/v1/devices/dev-a/desired", NULL));
    mgo_mqtt_free(c);
    mgo_mqtt_free(mon);
    mgo_mqtt_free(mgr);
}

/* ---- the manager over TLS, signing ------------------------------------------------------- */

static long api(uint16_t port, const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    const char *headers[] = {"Authorization: Bearer " TOKEN, NULL};
    struct mgo_buf reply;
    mgo_buf_init(&reply, 1u << 20);
    long status = mgo_test_http(method, url, headers, body, 30000L, &reply, NULL, 0);
    if (status >= 300)
        fprintf(stderr, "%s %s -> %ld: %.*s\n", method, path, status, (int)reply.len,
                reply.data ? (const char *)reply.data : "");
    mgo_buf_cleanup(&reply);
    return status;
}

struct raw {
    char topic[256];
    uint8_t *data;
    size_t len;
};

static void test_manager_publishes_signed_documents(void)
{
    char state[512], token[512], ca[512], crt[512], key[512], skey[512], spub[512];
    snprintf(state, sizeof state, "%s/manager-state", g_dir);
    snprintf(token, sizeof token, "%s/api-token", g_dir);
    CU_ASSERT_TRUE_FATAL(mgo_test_write_file(token, TOKEN "\n"));
    struct mgo_test_manager mgr;
    mgo_test_manager_init(&mgr, g_url, state, "margo-manager", token, "warn");
    mgr.cfg.ca_file = (char *)sec_pki_path(g_dir, "ca.crt", ca);
    mgr.cfg.cert_file = (char *)sec_pki_path(g_dir, "manager.crt", crt);
    mgr.cfg.key_file = (char *)sec_pki_path(g_dir, "manager.key", key);
    mgr.cfg.signing_key_file = (char *)sec_pki_path(g_dir, "signing.key", skey);
    CU_ASSERT_EQUAL_FATAL(mgo_test_manager_start(&mgr, true), MGO_OK);
    uint16_t port = mgo_manager_api_port(mgr.m);

    /* dev-a (TLS, own certificate) announces its capabilities */
    struct mgo_mqtt *a = device("dev-a");
    struct inbox ia = {0};
    static const char caps[] =
        "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
        " properties: {id: dev-a, vendor: Acme, modelNumber: X1, serialNumber: S-1,"
        " cpus: [{cores: 4, architecture: amd64}], memory: 8Gi, storage: 10Gi,"
        " interfaces: [{type: ethernet}], otelCollector: true,"
        " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}";
    struct mgo_arena arena;
    mgo_arena_init(&arena, 8u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL(mgo_test_publish_yaml(a, "margo/v1/devices/dev-a/capabilities", true, caps, 0),
                    MGO_OK);
    PUMP_UNTIL(a, &ia, ia.published > 0);
    CU_ASSERT_EQUAL(ia.published, 1);

    /* the application file as the body: the path form needs catalog-dir (docs/api.md) */
    char *app = mgo_test_read_file(mgo_test_path("tests/manager/data/hello-1.0.yaml"), NULL);
    CU_ASSERT_EQUAL(api(port, "POST", "/api/v1/apps", app), 201);
    free(app);
    /* the manager learns dev-a from the retained capabilities asynchronously */
    long st = 0;
    for (int i = 0; i < 100 && st != 201; i++) {
        st = api(port, "POST", "/api/v1/deployments",
                 "{\"app\":\"hello-world\",\"version\":\"1.0\",\"devices\":[\"dev-a\"],"
                 "\"parameters\":{\"siteId\":\"site-7\",\"greeting\":\"x; rm -rf / $(id)\"}}");
        if (st != 201)
            mgo_test_sleep_ms(100);
    }
    CU_ASSERT_EQUAL_FATAL(st, 201);

    /* dev-a receives its signed manifest and document */
    struct raw got[2];
    memset(got, 0, sizeof got);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(a, "margo/v1/devices/dev-a/desired", 1, NULL), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mqtt_subscribe(a, "margo/v1/devices/dev-a/deployments/+", 1, NULL), MGO_OK);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while ((!got[0].data || !got[1].data) && mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(a, 50, &ev) != MGO_OK)
            continue;
        /* only MessagePack maps: earlier tests left plain-text retained messages here */
        if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0 &&
            ((ev.payload[0] & 0xf0u) == 0x80u || ev.payload[0] == 0xde || ev.payload[0] == 0xdf)) {
            int slot = strstr(ev.topic, "/desired") ? 0 : 1;
            free(got[slot].data);
            snprintf(got[slot].topic, sizeof got[slot].topic, "%s", ev.topic);
            got[slot].data = ev.payload;
            got[slot].len = ev.payload_len;
            ev.payload = NULL;
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(got[0].data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got[1].data);

    /* the agent-side check: signing.pub verifies both, bound to dev-a, not to dev-b */
    struct mgo_verify_key *pub = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_verify_key_load(sec_pki_path(g_dir, "signing.pub", spub), &pub),
                          MGO_OK);
    const struct mgo_verify_key *keys[1] = {pub};
    char why[MGO_SIGN_WHY_SIZE];
    for (int i = 0; i < 2; i++) {
        CU_ASSERT_EQUAL(
            mgo_sign_verify_msgpack(keys, 1, got[i].data, got[i].len, "dev-a", &arena, why),
            MGO_OK);
        if (strcmp(why, "ok") != 0)
            fprintf(stderr, "%s: %s\n", got[i].topic, why);
        CU_ASSERT_EQUAL(
            mgo_sign_verify_msgpack(keys, 1, got[i].data, got[i].len, "dev-b", &arena, why),
            MGO_ERR_CRYPTO);
    }
    /* the manifest's digest is the digest of the unsigned document; the decoders accept both */
    struct mgo_desired_state ds;
    struct mgo_app_deployment dep;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_desired_state_decode(got[0].data, got[0].len, &arena, &ds, &p),
                          MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_decode(got[1].data, got[1].len, &arena, &dep, &p),
                          MGO_OK);
    CU_ASSERT_EQUAL_FATAL(ds.deployments_len, 1u);
    struct mgo_value tree;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(got[1].data, got[1].len, &arena, &tree, &p),
                          MGO_OK);
    char digest[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_EQUAL(mgo_doc_digest(&tree, digest), MGO_OK);
    CU_ASSERT_STRING_EQUAL(ds.deployments[0].digest, digest);
    CU_ASSERT_STRING_EQUAL(ds.deployments[0].deployment_id, dep.id);

    mgo_verify_key_free(pub);
    free(got[0].data);
    free(got[1].data);
    mgo_arena_cleanup(&arena);
    mgo_mqtt_free(a);
    mgo_test_manager_stop(&mgr);
}

/* ---- TLS versions, revocation, rotation (issue 19 item 7) ---------------------------------- */

/* A real TLS handshake by openssl s_client limited to one version (flag "-tls1_2" or
 * "-tls1_3"), with dev-a's valid certificate; its output goes into out. */
static void s_client(const char *flag, char *out, size_t out_len)
{
    char ca[512], crt[512], key[512], log[512], cmd[3000];
    snprintf(log, sizeof log, "%s/s_client.log", g_dir);
    snprintf(cmd, sizeof cmd,
             "timeout 20 openssl s_client -connect 127.0.0.1:%d -servername localhost %s "
             "-CAfile '%s' -cert '%s' -key '%s' </dev/null >'%s' 2>&1",
             g_tls_port, flag, sec_pki_path(g_dir, "ca.crt", ca),
             sec_pki_path(g_dir, "devices/dev-a.crt", crt),
             sec_pki_path(g_dir, "devices/dev-a.key", key), log);
    (void)mgo_test_sh("%s", cmd);
    char *text = mgo_test_read_file(log, NULL);
    snprintf(out, out_len, "%s", text ? text : "");
    free(text);
}

static void test_tls12_only_client_refused(void)
{
    char out[16384];
    s_client("-tls1_2", out, sizeof out);
    CU_ASSERT(strstr(out, "alert protocol version") != NULL);
    CU_ASSERT(strstr(out, "New, TLSv1.2, Cipher is") == NULL);
    if (strstr(out, "alert protocol version") == NULL)
        fprintf(stderr, "openssl s_client -tls1_2:\n%s\n", out);
    /* control: the same client and certificate with TLS 1.3 completes the handshake */
    s_client("-tls1_3", out, sizeof out);
    CU_ASSERT(strstr(out, "New, TLSv1.3, Cipher is TLS_") != NULL);
    /* and every margo-mqtt client in this suite (Paho + OpenSSL) connected over 1.3 */
    struct mgo_mqtt *a = device("dev-a");
    mgo_mqtt_free(a);
}

/* Runs the shipped pki.sh on the suite's PKI with options; 0 on success. */
static int pki(const char *options)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sh '%s' %s '%s/pki' 2>>'%s/pki.log'",
             mgo_test_path("broker-config/pki.sh"), options, g_dir, g_dir);
    return mgo_test_sh("%s", cmd);
}

/* SIGHUP to the running broker; waits for its "Reloading config." log line. The process
 * stays the same (no restart). */
static void hup_broker(void)
{
    char log[512];
    snprintf(log, sizeof log, "%s/broker/mosquitto.log", g_dir);
    size_t before = mgo_test_count_lines(log, "Reloading config.");
    pid_t pid = g_broker;
    CU_ASSERT_FATAL(pid > 0 && kill(pid, SIGHUP) == 0);
    for (int waited = 0; waited < WAIT_MS; waited += 20) {
        if (mgo_test_count_lines(log, "Reloading config.") > before)
            break;
        mgo_test_sleep_ms(20);
    }
    CU_ASSERT(mgo_test_count_lines(log, "Reloading config.") > before);
    CU_ASSERT_EQUAL(g_broker, pid);
    int st = 0;
    pid_t done = waitpid(pid, &st, WNOHANG);
    CU_ASSERT_EQUAL(done, 0); /* still running: not restarted */
    if (done != 0) {
        fprintf(stderr, "mosquitto ended (status 0x%x) after SIGHUP; its log:\n", (unsigned)st);
        (void)mgo_test_sh("tail -30 '%s' >&2", log);
        g_broker = 0;
    }
    CU_ASSERT_EQUAL(mgo_test_count_lines(log, " starting"), 1); /* one start, no restart */
}

static mgo_err connect_as(const char *cert, const char *key, const char *client_id)
{
    struct mgo_mqtt *m = NULL;
    mgo_err err = tls_client(g_dir, cert, key, client_id, &m);
    mgo_mqtt_free(m);
    return err;
}

static void test_revoked_certificate_refused_after_sighup(void)
{
    CU_ASSERT_EQUAL_FATAL(connect_as("devices/dev-c.crt", "devices/dev-c.key", "dev-c"), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(pki("--revoke devices/dev-c.crt"), 0);
    /* the broker reads the CRL at start and on SIGHUP only: not yet refused */
    CU_ASSERT_EQUAL(connect_as("devices/dev-c.crt", "devices/dev-c.key", "dev-c"), MGO_OK);
    /* a session opened before the reload */
    struct mgo_mqtt *held = device("dev-c");
    struct inbox ih = {0};
    hup_broker();
    CU_ASSERT_NOT_EQUAL(connect_as("devices/dev-c.crt", "devices/dev-c.key", "dev-c"), MGO_OK);
    /* other devices are unaffected (Mosquitto may still be reloading its listeners' TLS
     * settings right after it logged the reload: a connect then can meet a socket error) */
    mgo_err a_err = MGO_ERR_NET;
    for (int i = 0; i < 5 && a_err != MGO_OK; i++) {
        if (i > 0)
            mgo_test_sleep_ms(200);
        a_err = connect_as("devices/dev-a.crt", "devices/dev-a.key", "dev-a");
    }
    CU_ASSERT_EQUAL(a_err, MGO_OK);
    /* the limit (docs/security.md): the connection opened before stays open until it ends */
    pub(held, &ih, "margo/v1/devices/dev-c/events", "still-connected", false);
    CU_ASSERT_EQUAL(ih.published, 1);
    mgo_mqtt_free(held);
    /* and once it ends it cannot come back */
    CU_ASSERT_NOT_EQUAL(connect_as("devices/dev-c.crt", "devices/dev-c.key", "dev-c"), MGO_OK);
}

static char *serial_of(const char *rel)
{
    char path[512], cmd[1200], out[512];
    snprintf(out, sizeof out, "%s/serial.txt", g_dir);
    snprintf(cmd, sizeof cmd,
             "openssl x509 -in '%s' -noout -serial -subject -nameopt RFC2253 > '%s'",
             sec_pki_path(g_dir, rel, path), out);
    return mgo_test_sh("%s", cmd) == 0 ? mgo_test_read_file(out, NULL) : NULL;
}

static void test_rotated_certificates(void)
{
    /* devices: a new key and certificate with the same CN */
    CU_ASSERT_EQUAL_FATAL(pki("--renew-device dev-r"), 0);
    char *now = serial_of("devices/dev-r.crt"), *prev = serial_of("devices/dev-r.prev.crt");
    CU_ASSERT_FATAL(now != NULL && prev != NULL);
    CU_ASSERT(strcmp(now, prev) != 0);
    CU_ASSERT(strstr(now, "CN=dev-r") != NULL && strstr(prev, "CN=dev-r") != NULL);
    free(now);
    free(prev);
    CU_ASSERT(mgo_test_sh("cmp -s '%s/pki/devices/dev-r.key' '%s/pki/devices/dev-r.prev.key'",
                          g_dir, g_dir) != 0);
    /* a second renewal is refused while the previous certificate is still valid */
    CU_ASSERT_NOT_EQUAL(pki("--renew-device dev-r"), 0);
    /* both connect as dev-r, with dev-r's rights */
    struct mgo_mqtt *m = NULL;
    struct inbox in = {0};
    CU_ASSERT_EQUAL_FATAL(tls_client(g_dir, "devices/dev-r.crt", "devices/dev-r.key", "dev-r", &m),
                          MGO_OK);
    pub(m, &in, "margo/v1/devices/dev-r/events", "new-cert", false);
    CU_ASSERT_EQUAL(in.published, 1);
    mgo_mqtt_free(m);
    CU_ASSERT_EQUAL(connect_as("devices/dev-r.prev.crt", "devices/dev-r.prev.key", "dev-r"),
                    MGO_OK);
    /* the old one is revoked once the device runs with the new one */
    CU_ASSERT_EQUAL_FATAL(pki("--revoke devices/dev-r.prev.crt"), 0);
    hup_broker();
    CU_ASSERT_NOT_EQUAL(connect_as("devices/dev-r.prev.crt", "devices/dev-r.prev.key", "dev-r"),
                        MGO_OK);
    CU_ASSERT_EQUAL(connect_as("devices/dev-r.crt", "devices/dev-r.key", "dev-r"), MGO_OK);
    /* now a further renewal is allowed */
    CU_ASSERT_EQUAL(pki("--renew-device dev-r"), 0);

    /* the manager: same CN (the manager role of the ACL) */
    CU_ASSERT_EQUAL_FATAL(pki("--renew-manager"), 0);
    now = serial_of("manager.crt");
    CU_ASSERT(now != NULL && strstr(now, "CN=margo-manager") != NULL);
    free(now);
    struct mgo_mqtt *mgr = role("manager", "mgr-rotated");
    struct inbox im = {0};
    sub(mgr, &im, "margo/v1/devices/+/events"); /* a manager-only right */
    CU_ASSERT_EQUAL(im.subscribed, 1);
    mgo_mqtt_free(mgr);
    CU_ASSERT_EQUAL(connect_as("manager.prev.crt", "manager.prev.key", "mgr-old"), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(pki("--revoke manager.prev.crt"), 0);
    hup_broker();
    CU_ASSERT_NOT_EQUAL(connect_as("manager.prev.crt", "manager.prev.key", "mgr-old"), MGO_OK);
    CU_ASSERT_EQUAL(connect_as("manager.crt", "manager.key", "mgr-new"), MGO_OK);
}

/* Publishes a YAML document as MessagePack, QoS 1, and waits for the broker's answer. */
static void pub_doc(struct mgo_mqtt *m, struct inbox *in, const char *topic, const char *yaml,
                    bool retain)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &v, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_msgpack(&v, &b), MGO_OK);
    int before = in->published + in->publish_failed;
    CU_ASSERT_EQUAL(mgo_mqtt_publish(m, topic, b.data, b.len, 1, retain, NULL), MGO_OK);
    PUMP_UNTIL(m, in, in->published + in->publish_failed > before);
    mgo_buf_cleanup(&b);
    mgo_arena_cleanup(&arena);
}

static const char CAPS_FMT[] =
    "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
    " properties: {id: %s, vendor: Acme, modelNumber: X1, serialNumber: S-1,"
    " cpus: [{cores: 4, architecture: amd64}], memory: 8Gi, storage: 10Gi,"
    " interfaces: [{type: ethernet}], otelCollector: true,"
    " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}";

/* issue 19 item 1: margo.acl's device patterns apply to every user (Mosquitto 2.0 has no
 * deny rules), so the monitor's certificate may publish capabilities, presence, events and
 * statuses as a "device" named margo-monitor: the broker lets it through (asserted, so a
 * future ACL that closes this shows up here); the manager registers nothing and refuses a
 * deployment to it. And pki.sh issues no device certificate with a role's name or prefix,
 * and no role certificate without the prefix. */
static void test_monitor_cannot_act_as_device(void)
{
    char state[512], token[512], ca[512], crt[512], key[512];
    snprintf(state, sizeof state, "%s/manager-state-roles", g_dir);
    snprintf(token, sizeof token, "%s/api-token", g_dir);
    CU_ASSERT_TRUE_FATAL(mgo_test_write_file(token, TOKEN "\n"));
    struct mgo_test_manager t;
    mgo_test_manager_init(&t, g_url, state, "margo-manager", token, "warn");
    t.cfg.ca_file = (char *)sec_pki_path(g_dir, "ca.crt", ca);
    t.cfg.cert_file = (char *)sec_pki_path(g_dir, "manager.crt", crt);
    t.cfg.key_file = (char *)sec_pki_path(g_dir, "manager.key", key);
    CU_ASSERT_EQUAL_FATAL(mgo_test_manager_start(&t, true), MGO_OK);
    uint16_t port = mgo_manager_api_port(t.m);
    char *app = mgo_test_read_file(mgo_test_path("tests/manager/data/hello-1.0.yaml"), NULL);
    CU_ASSERT_EQUAL(api(port, "POST", "/api/v1/apps", app), 201);
    free(app);
    /* the manager subscribes once connected: wait for it to learn a real device first */
    struct mgo_mqtt *b = device("dev-b");
    struct inbox ib = {0};
    char yaml[1024];
    snprintf(yaml, sizeof yaml, CAPS_FMT, "dev-b");
    pub_doc(b, &ib, "margo/v1/devices/dev-b/capabilities", yaml, true);
    long st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        st = api(port, "GET", "/api/v1/devices/dev-b", NULL);
        if (st != 200)
            mgo_test_sleep_ms(100);
    }
    CU_ASSERT_EQUAL_FATAL(st, 200);

    /* the monitor, with its own certificate, as the "device" margo-monitor */
    struct mgo_mqtt *mon = role("monitor", "margo-monitor");
    struct inbox im = {0};
    snprintf(yaml, sizeof yaml, CAPS_FMT, "margo-monitor");
    pub_doc(mon, &im, "margo/v1/devices/margo-monitor/capabilities", yaml, true);
    pub_doc(mon, &im, "margo/v1/devices/margo-monitor/state",
            "{deviceId: margo-monitor, state: online, boot: 1}", true);
    pub_doc(mon, &im, "margo/v1/devices/margo-monitor/events",
            "{deviceId: margo-monitor, type: t, severity: info, message: m, timestamp: 1}", false);
    pub_doc(mon, &im, "margo/v1/devices/margo-monitor/status/aaaaaaaa-0000-4000-8000-000000000001",
            "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
            " deploymentId: aaaaaaaa-0000-4000-8000-000000000001, adoptedManifestVersion: 1,"
            " status: {state: installed}, components: [{name: c, state: installed}],"
            " x-margo-mqtt-extensions: {boot: 1, seq: 1}}",
            false);
    /* the broker's ACL cannot tell (see margo.acl): all four are accepted there */
    CU_ASSERT_EQUAL(im.published, 4);
    /* dev-b's next message reaches the manager after the monitor's four (one session, in
     * the broker's order); once it shows, the monitor's have been handled */
    pub_doc(b, &ib, "margo/v1/devices/dev-b/state", "{deviceId: dev-b, state: online, boot: 7}",
            true);
    bool seen = false;
    for (int i = 0; i < 100 && !seen; i++) {
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/devices/dev-b", port);
        const char *headers[] = {"Authorization: Bearer " TOKEN, NULL};
        struct mgo_buf reply;
        mgo_buf_init(&reply, 1u << 20);
        if (mgo_test_http("GET", url, headers, NULL, 30000L, &reply, NULL, 0) == 200 &&
            reply.data && strstr((const char *)reply.data, "\"boot\":7"))
            seen = true;
        mgo_buf_cleanup(&reply);
        if (!seen)
            mgo_test_sleep_ms(100);
    }
    CU_ASSERT_TRUE(seen);
    CU_ASSERT_EQUAL(api(port, "GET", "/api/v1/devices/margo-monitor", NULL), 404);
    CU_ASSERT_EQUAL(api(port, "POST", "/api/v1/deployments",
                        "{\"app\":\"hello-world\",\"version\":\"1.0\","
                        "\"devices\":[\"margo-monitor\"],\"parameters\":{\"siteId\":\"site-7\"}}"),
                    422);
    /* a real device still deploys */
    CU_ASSERT_EQUAL(api(port, "POST", "/api/v1/deployments",
                        "{\"app\":\"hello-world\",\"version\":\"1.0\","
                        "\"devices\":[\"dev-b\"],\"parameters\":{\"siteId\":\"site-7\"}}"),
                    201);
    /* leave no retained messages of the monitor's for later tests */
    pub(mon, &im, "margo/v1/devices/margo-monitor/capabilities", "", true);
    pub(mon, &im, "margo/v1/devices/margo-monitor/state", "", true);
    mgo_mqtt_free(mon);
    mgo_mqtt_free(b);
    mgo_test_manager_stop(&t);

    /* nothing of the monitor's is in the store */
    struct mgo_mgr_store *store = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(state, &store), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_get(store, "margo-monitor", NULL, NULL),
                    MGO_ERR_NOT_FOUND);
    uint64_t n = 1;
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(store, "margo-monitor", &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 0u);
    mgo_mgr_store_close(store);

    /* pki.sh: reserved names are refused before anything is issued */
    char out[512];
    snprintf(out, sizeof out, "%s/pki-refused", g_dir);
    const char *bad[] = {"--device margo-monitor", "--device margo-x",
                         "--device MARGO-x",       "--monitor-cn ops-watch",
                         "--manager-cn manager",   "--monitor-cn margo-ops --device margo-ops"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_NOT_EQUAL(mgo_test_sh("'%s' %s '%s' >/dev/null 2>&1",
                                        mgo_test_path("broker-config/pki.sh"), bad[i], out),
                            0);
        CU_ASSERT_NOT_EQUAL(access(out, F_OK), 0); /* refused before making anything */
    }
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"device A cannot publish to device B's topics", test_device_cannot_write_other_device},
        {"device A cannot read device B's desired state", test_device_cannot_read_other_device},
        {"device A cannot take over device B's session", test_device_cannot_take_over_session},
        {"no / untrusted / expired certificate: no connection",
         test_connect_refused_without_valid_certificate},
        {"monitor reads status, state, capabilities only", test_monitor_reads_status_only},
        {"manager over TLS publishes signed documents", test_manager_publishes_signed_documents},
        {"TLS 1.2-only client refused, TLS 1.3 accepted", test_tls12_only_client_refused},
        {"monitor cannot act as a device", test_monitor_cannot_act_as_device},
        {"shared subscriptions follow the ACL", test_shared_subscriptions_follow_the_acl},
        {NULL, NULL},
    };
    static const struct mgo_test_case revocation_cases[] = {
        {"revoked certificate refused after SIGHUP, no restart",
         test_revoked_certificate_refused_after_sighup},
        {"rotated device and manager certificates: new connects, old until revoked",
         test_rotated_certificates},
        {NULL, NULL},
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CU_pSuite s = CU_add_suite("broker-tls", suite_init, suite_clean);
    for (size_t i = 0; s != NULL && cases[i].name != NULL; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
    s = CU_add_suite("broker-tls-revocation", suite_init_revocation, suite_clean);
    for (size_t i = 0; s != NULL && revocation_cases[i].name != NULL; i++)
        CU_add_test(s, revocation_cases[i].name, revocation_cases[i].fn);
}
