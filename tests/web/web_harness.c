/* web_harness.c - the backend of the browser tests: a private Mosquitto (tests/support/
 * broker.h), margo-manager in a thread (the real library, API and embedded web front end)
 * and scripted devices (an mgo_mqtt client publishing capabilities, presence and status).
 *
 * It prints one line on stdout when everything is up:
 *     READY <base-url> <api-token>
 * then reads commands from stdin, one per line, and answers each with "OK" or
 * "ERR <reason>" on stdout (the browser test drives the devices through it):
 *     caps DEV MEMORY TYPES            capabilities; TYPES = compose | helm | compose,helm
 *     presence DEV online|offline      presence (boot 1)
 *     status DEV DEPLOYMENT MANIFEST STATE NAME:STATE[,NAME:STATE...] [CODE MESSAGE...]
 *                                      a DeploymentStatus (journal boot 1, seq counts up);
 *                                      CODE/MESSAGE become the error of the overall status
 *                                      and of every component in state failed
 *     quit                             stops everything (end of stdin does too)
 * A command is answered after the broker acknowledged the publish. Diagnostics and the
 * manager's log go to stderr. Exit 0 after quit, 1 when something could not start. */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "manager_thread.h"
#include "mgo_test.h"
#include "mqtt_client.h"
#include "mgo/log.h"
#include "mgo/manager.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"

#define WAIT_MS 15000
#define LINE_MAX_LEN 2048
#define MAX_DEVICES 16

static struct mgo_test_broker broker;
static struct mgo_mqtt *device; /* publishes for every scripted device */
static char state_dir[256];

struct journal {
    char id[64];
    unsigned long long seq;
};
static struct journal journals[MAX_DEVICES];

/* Publishes a YAML/JSON text as MessagePack, retained, QoS 1; waits for the broker. */
static bool publish_doc(const char *topic, const char *fmt, ...) MGO_PRINTF(2, 3);
static bool publish_doc(const char *topic, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mgo_err err = mgo_test_publish_vyamlf(device, topic, true, WAIT_MS, fmt, ap);
    va_end(ap);
    return err == MGO_OK;
}

/* Words of the command line are limited to these characters so they can be pasted into
 * YAML flow text unquoted (messages are quoted and may hold spaces too). */
static bool plain_word(const char *w)
{
    return w && w[0] &&
           strspn(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._~-,:") == strlen(w);
}

static const char *cmd_caps(char **words, size_t n)
{
    if (n != 4 || !plain_word(words[1]) || !plain_word(words[2]) || !plain_word(words[3]))
        return "usage: caps DEV MEMORY TYPES";
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/capabilities", words[1]);
    bool ok =
        publish_doc(topic,
                    "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
                    " properties: {id: %s, vendor: Acme, modelNumber: EdgeBox-%s,"
                    " serialNumber: SN-%s, cpus: [{cores: 4, architecture: amd64}],"
                    " memory: %s, storage: 64Gi, interfaces: [{type: ethernet}, {type: wifi}],"
                    " otelCollector: true, supportedRuntimes: [oci],"
                    " supportedDeploymentTypes: [%s]}}",
                    words[1], words[2], words[1], words[2], words[3]);
    return ok ? NULL : "publish failed";
}

static const char *cmd_presence(char **words, size_t n)
{
    if (n != 3 || !plain_word(words[1]) ||
        (strcmp(words[2], "online") != 0 && strcmp(words[2], "offline") != 0))
        return "usage: presence DEV online|offline";
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/state", words[1]);
    return publish_doc(topic, "{deviceId: %s, state: %s, boot: 1}", words[1], words[2])
               ? NULL
               : "publish failed";
}

static unsigned long long next_seq(const char *dev)
{
    for (size_t i = 0; i < MAX_DEVICES; i++) {
        if (journals[i].id[0] == '\0')
            snprintf(journals[i].id, sizeof journals[i].id, "%s", dev);
        if (strcmp(journals[i].id, dev) == 0)
            return ++journals[i].seq;
    }
    return 0;
}

static const char *cmd_status(char **words, size_t n)
{
    if (n < 6 || !plain_word(words[1]) || !plain_word(words[2]) || !plain_word(words[3]) ||
        !plain_word(words[4]) || !plain_word(words[5]))
        return "usage: status DEV DEPLOYMENT MANIFEST STATE NAME:STATE[,...] [CODE MESSAGE...]";
    char error[512] = "";
    if (n >= 7) {
        if (!plain_word(words[6]))
            return "CODE must be a plain word";
        char message[400] = "";
        size_t used = 0;
        for (size_t i = 7; i < n; i++) {
            if (strpbrk(words[i], "\"\\"))
                return "MESSAGE must not contain quotes or backslashes";
            int w =
                snprintf(message + used, sizeof message - used, "%s%s", i > 7 ? " " : "", words[i]);
            if (w < 0 || (size_t)w >= sizeof message - used)
                return "MESSAGE too long";
            used += (size_t)w;
        }
        snprintf(error, sizeof error, ", error: {code: \"%s\", source: harness, message: \"%s\"}",
                 words[6], message);
    }
    char components[2048] = "";
    size_t used = 0;
    char list[LINE_MAX_LEN];
    snprintf(list, sizeof list, "%s", words[5]);
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(c, ':');
        if (!colon)
            return "components are NAME:STATE";
        *colon = '\0';
        bool failed = strcmp(colon + 1, "failed") == 0;
        int w = snprintf(components + used, sizeof components - used, "%s{name: %s, state: %s%s}",
                         used ? ", " : "", c, colon + 1, failed ? error : "");
        if (w < 0 || (size_t)w >= sizeof components - used)
            return "too many components";
        used += (size_t)w;
    }
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/status/%s", words[1], words[2]);
    bool ok =
        publish_doc(topic,
                    "{apiVersion: deployment.margo.org/v1alpha1,"
                    " kind: DeploymentStatusManifest, deploymentId: %s, deviceId: %s,"
                    " adoptedManifestVersion: %s, status: {state: %s%s},"
                    " components: [%s], x-margo-mqtt-extensions: {boot: 1, seq: %llu}}",
                    words[2], words[1], words[3], words[4], error, components, next_seq(words[1]));
    return ok ? NULL : "publish failed (or the document is invalid)";
}

/* Runs one command; false after quit. */
static bool run_command(char *line)
{
    char *words[64];
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(line, " \t\r\n", &save); w && n < 64;
         w = strtok_r(NULL, " \t\r\n", &save))
        words[n++] = w;
    if (n == 0)
        return true;
    const char *err = "unknown command (caps, presence, status, quit)";
    if (strcmp(words[0], "quit") == 0) {
        printf("OK\n");
        fflush(stdout);
        return false;
    }
    if (strcmp(words[0], "caps") == 0)
        err = cmd_caps(words, n);
    else if (strcmp(words[0], "presence") == 0)
        err = cmd_presence(words, n);
    else if (strcmp(words[0], "status") == 0)
        err = cmd_status(words, n);
    if (err)
        printf("ERR %s\n", err);
    else
        printf("OK\n");
    fflush(stdout);
    return true;
}

int main(void)
{
    int rc = 1;
    static struct mgo_test_manager manager;
    char token_path[512];
    char token[65];

    mgo_test_tmpdir("web", state_dir);
    if (mgo_test_broker_start(&broker, NULL) != 0)
        goto cleanup_dir;
    /* a fresh random token, as the manager would make one */
    FILE *urnd = fopen("/dev/urandom", "rb");
    unsigned char raw[32];
    if (!urnd || fread(raw, 1, sizeof raw, urnd) != sizeof raw) {
        fprintf(stderr, "web_harness: cannot read /dev/urandom\n");
        if (urnd)
            fclose(urnd);
        goto cleanup_broker;
    }
    fclose(urnd);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    snprintf(token_path, sizeof token_path, "%s/api-token", state_dir);
    FILE *tf = fopen(token_path, "w");
    if (!tf || fprintf(tf, "%s\n", token) < 0 || fclose(tf) != 0) {
        fprintf(stderr, "web_harness: cannot write %s\n", token_path);
        goto cleanup_broker;
    }
    chmod(token_path, 0600);

    mgo_test_manager_init(&manager, mgo_test_broker_url(&broker), state_dir,
                          "margo-manager-web-test", token_path, "warn");
    manager.cfg.fleet_sample_interval_s = 1; /* the fleet overview's chart fills in seconds */
    if (mgo_test_manager_start(&manager, true) != MGO_OK) {
        fprintf(stderr, "web_harness: the manager did not start\n");
        goto cleanup_broker;
    }
    device = mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "web-test-devices", 0, WAIT_MS);
    if (device == NULL) {
        fprintf(stderr, "web_harness: the scripted device could not connect\n");
        goto cleanup_manager;
    }
    printf("READY %s %s\n", manager.api_base, token);
    fflush(stdout);

    char line[LINE_MAX_LEN];
    setvbuf(stdin, NULL, _IONBF, 0); /* poll() must see every line not yet read */
    for (;;) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int r = poll(&pfd, 1, 50);
        if (r > 0) {
            if (!fgets(line, sizeof line, stdin))
                break; /* end of input: the test is gone */
            if (!run_command(line))
                break;
        }
        struct mgo_mqtt_event ev; /* keep the device's queue drained */
        while (mgo_mqtt_next(device, 0, &ev) == MGO_OK)
            mgo_mqtt_event_cleanup(&ev);
    }
    rc = 0;

cleanup_manager:
    if (device) {
        mgo_err ignored = mgo_mqtt_disconnect(device, 1000); /* best effort at exit */
        (void)ignored;
        mgo_mqtt_free(device);
    }
    mgo_test_manager_stop(&manager);
cleanup_broker:
    mgo_test_broker_cleanup(&broker);
cleanup_dir:
    mgo_test_rm_rf(state_dir);
    return rc;
}
