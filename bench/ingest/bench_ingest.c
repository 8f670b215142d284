/* bench_ingest.c - the status publisher of the ingest benchmark (issue 8, B3).
 *
 * mgo-bench-fleet --ingest starts it after a fleet converged, with a file of
 * "device-id deployment-id" lines the manager knows. It opens --publishers MQTT 5 connections
 * (Paho MQTTAsync) and publishes, as fast as the window allows, valid DeploymentStatus
 * messages (real codec, QoS 1, retained like an agent's) for those deployments, each device
 * with journal position (--boot, seq = 1, 2, 3, ...) so every message is new to the manager.
 * Each connection keeps at most --window unacknowledged publishes.
 *
 * Prints "PUBLISHED <n> <seconds>" when --seconds have passed and the acknowledgements came
 * in (at most 30 s more); n counts only publishes the broker acknowledged (the manager's
 * store is counted by the controller). */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "bench_util.h"
#include "mgo/buf.h"
#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/topic.h"

#define MAX_PUBLISHERS 64
#define MAX_PAIRS 20000

struct pair {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char deployment[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    uint64_t seq;
};

struct publisher {
    MQTTAsync h;
    atomic_long acked;
    atomic_int connected; /* 1 ok, -1 failed */
    long sent;
};

static struct pair *pairs;
static size_t n_pairs;
static struct publisher pubs[MAX_PUBLISHERS];
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void on_conn_ok(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r;
    atomic_store(&((struct publisher *)ctx)->connected, 1);
}

static void on_conn_fail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    atomic_store(&((struct publisher *)ctx)->connected, -1);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r;
    atomic_fetch_add(&((struct publisher *)ctx)->acked, 1);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    (void)ctx;
    fprintf(stderr, "bench-ingest: a publish was not acknowledged\n");
    stop_flag = 1;
}

static int load_pairs(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    pairs = calloc(MAX_PAIRS, sizeof *pairs);
    char dev[MGO_MAX_DEVICE_ID_LEN + 1], dep[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    while (pairs && n_pairs < MAX_PAIRS && fscanf(f, "%128s %64s", dev, dep) == 2) {
        if (mgo_topic_check_device_id(dev, strlen(dev)) != MGO_OK || !mgo_is_uuid(dep))
            continue;
        snprintf(pairs[n_pairs].device, sizeof pairs[0].device, "%s", dev);
        snprintf(pairs[n_pairs].deployment, sizeof pairs[0].deployment, "%s", dep);
        n_pairs++;
    }
    fclose(f);
    return n_pairs > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *pairs_file = NULL, *prefix = "margo/v1";
    int n_pub = 8, window = 500, seconds = 10;
    long boot = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--pairs") == 0)
            pairs_file = v;
        else if (strcmp(a, "--publishers") == 0)
            n_pub = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--window") == 0)
            window = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            seconds = (int)strtol(v, NULL, 10);
        else if (strcmp(a, "--boot") == 0)
            boot = strtol(v, NULL, 10);
        else {
            fprintf(stderr, "bench-ingest: unknown option %s\n", a);
            return 2;
        }
    }
    if (!url || !pairs_file || n_pub < 1 || n_pub > MAX_PUBLISHERS || window < 1 ||
        window > 65535 || seconds < 1 || seconds > 3600 || boot < 1) {
        fprintf(stderr, "usage: mgo-bench-ingest --url URL --pairs FILE [--publishers 1..64] "
                        "[--window 1..65535] [--seconds S] [--boot B]\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (load_pairs(pairs_file) != 0) {
        fprintf(stderr, "bench-ingest: no valid \"device deployment\" lines in %s\n", pairs_file);
        return 1;
    }
    if ((size_t)n_pub > n_pairs)
        n_pub = (int)n_pairs; /* one connection per device at most (see the publish loop) */
    for (int i = 0; i < n_pub; i++) {
        char id[64];
        snprintf(id, sizeof id, "bench-ingest-%ld-%d", (long)getpid(), i); /* unique per process */
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
        co.MQTTVersion = MQTTVERSION_5;
        co.maxBufferedMessages = window + 10;
        if (MQTTAsync_createWithOptions(&pubs[i].h, url, id, MQTTCLIENT_PERSISTENCE_NONE, NULL,
                                        &co) != MQTTASYNC_SUCCESS)
            return 1;
        MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
        o.cleanstart = 1;
        o.keepAliveInterval = 60;
        o.maxInflight = window;
        o.onSuccess5 = on_conn_ok;
        o.onFailure5 = on_conn_fail;
        o.context = &pubs[i];
        if (MQTTAsync_connect(pubs[i].h, &o) != MQTTASYNC_SUCCESS)
            return 1;
    }
    for (int i = 0; i < n_pub; i++) {
        int64_t deadline = mgo_bench_now_ns() + 10000000000LL;
        while (atomic_load(&pubs[i].connected) == 0 && mgo_bench_now_ns() < deadline)
            mgo_bench_sleep_ms(5);
        if (atomic_load(&pubs[i].connected) != 1) {
            fprintf(stderr, "bench-ingest: publisher %d could not connect\n", i);
            return 1;
        }
    }
    printf("CONNECTED %d\n", n_pub);
    fflush(stdout);

    struct mgo_component_status comps[2] = {{.name = "bench-api", .state = MGO_STATE_INSTALLED},
                                            {.name = "bench-worker", .state = MGO_STATE_INSTALLED}};
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    int64_t t0 = mgo_bench_now_ns(), end = t0 + (int64_t)seconds * 1000000000;
    /* Each device publishes through one connection only, as a real agent does: MQTT keeps the
     * order of one connection's messages, not across connections, and the manager rightly
     * refuses a status older than one it already stored. Publisher i sends for pairs
     * i, i + n_pub, i + 2 n_pub, ... */
    size_t next[MAX_PUBLISHERS];
    for (int i = 0; i < n_pub; i++)
        next[i] = (size_t)i % n_pairs;
    long total = 0;
    while (!stop_flag && mgo_bench_now_ns() < end) {
        bool any = false;
        for (int i = 0; i < n_pub; i++) {
            struct publisher *p = &pubs[i];
            while (p->sent - atomic_load(&p->acked) < window) {
                struct pair *pr = &pairs[next[i]];
                next[i] += (size_t)n_pub;
                if (next[i] >= n_pairs)
                    next[i] = (size_t)i % n_pairs;
                struct mgo_deployment_status st = {
                    .api_version = "deployment.margo.org/v1alpha1",
                    .deployment_id = pr->deployment,
                    .device_id = pr->device,
                    .has_adopted_manifest_version = true,
                    .adopted_manifest_version = 1,
                    .state = MGO_STATE_INSTALLED,
                    .components = comps,
                    .components_len = 2,
                    .has_journal = true,
                    .boot = (uint64_t)boot,
                    .seq = ++pr->seq,
                };
                char topic[MGO_MAX_TOPIC_LEN + 1];
                mgo_buf_reset(&b);
                if (mgo_deployment_status_encode(&st, &b) != MGO_OK ||
                    mgo_topic_format(prefix, MGO_TOPIC_STATUS, pr->device, pr->deployment, topic,
                                     sizeof topic) != MGO_OK)
                    return 1;
                MQTTAsync_message m = MQTTAsync_message_initializer;
                m.payload = b.data;
                m.payloadlen = (int)b.len;
                m.qos = 1;
                m.retained = 1;
                MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
                ro.onSuccess5 = on_pub_ok;
                ro.onFailure5 = on_pub_fail;
                ro.context = p;
                int rc = MQTTAsync_sendMessage(p->h, topic, &m, &ro);
                if (rc != MQTTASYNC_SUCCESS) {
                    pr->seq--;
                    break;
                }
                p->sent++;
                total++;
                any = true;
            }
        }
        if (!any)
            mgo_bench_sleep_ms(1);
    }
    double secs = (double)(mgo_bench_now_ns() - t0) / 1e9;
    /* wait for the last acknowledgements */
    int64_t deadline = mgo_bench_now_ns() + 30000000000LL;
    for (int i = 0; i < n_pub; i++) {
        while (pubs[i].sent > atomic_load(&pubs[i].acked) && mgo_bench_now_ns() < deadline)
            mgo_bench_sleep_ms(5);
    }
    /* only what the broker acknowledged counts as published */
    long acked = 0;
    for (int i = 0; i < n_pub; i++)
        acked += atomic_load(&pubs[i].acked);
    if (acked < total)
        fprintf(stderr, "bench-ingest: %ld of %ld publishes not acknowledged\n", total - acked,
                total);
    printf("PUBLISHED %ld %.3f\n", acked, secs);
    fflush(stdout);
    for (int i = 0; i < n_pub; i++) {
        MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
        d.timeout = 1000;
        MQTTAsync_disconnect(pubs[i].h, &d);
    }
    mgo_bench_sleep_ms(200);
    for (int i = 0; i < n_pub; i++)
        MQTTAsync_destroy(&pubs[i].h);
    mgo_buf_cleanup(&b);
    free(pairs);
    return 0;
}
