/* test_mqtt_restart.c - QoS 1 publishes in a tight loop while Mosquitto is restarted under
 * them (mgo/mqtt.h against a real broker).
 *
 * Paho 1.3.12 frees the topic and payload of a QoS 1 publish whose first write fails
 * (the broker's socket died under the send thread) while its in-flight list still holds
 * them; a reconnect with the session resumed then re-sends freed memory, a clean one or
 * MQTTAsync_destroy frees it twice (docs/reliability.md, "Fixes these tests made
 * necessary", 9). The wrapper retires such a Paho client and connects with a new one. This test
 * makes that write failure likely: an owner thread keeps the window full while the main
 * thread stops and starts the broker; under ASan a use of the freed memory ends the run.
 * It also checks what the owner relies on: every accepted publish gets exactly one outcome,
 * and after every restart the client connects and publishes again. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "mgo/mqtt.h"
#include "mgo_test.h"

#define RESTARTS 8
#define NTOPICS 16
#define MAX_TOKENS 4000000 /* outcome marks; far above what a run publishes */
#define OUTGOING_CAP 2000  /* the owner keeps at most this many publishes outstanding */
#define WAIT_MS 20000      /* hang guard, never a timing assertion */

static struct mgo_test_broker broker;

static void cleanup_broker_at_exit(void)
{
    mgo_test_broker_cleanup(&broker);
}

struct owner {
    struct mgo_mqtt *m;
    atomic_bool stop;
    atomic_long connects;  /* CONNECTED events */
    atomic_long published; /* PUBLISHED events */
    long failed;           /* PUBLISH_FAILED events */
    long accepted;         /* publishes mgo_mqtt_publish accepted */
    long double_outcome;   /* tokens with a second outcome */
    long unknown_outcome;  /* outcomes for tokens never handed out */
    long retired;          /* connects after the wrapper retired a Paho client */
    uint8_t *seen;         /* per token: 0 none, 1 accepted, 2 outcome */
};

static void take_event(struct owner *o, struct mgo_mqtt_event *ev, bool *connected)
{
    switch (ev->kind) {
    case MGO_MQTT_EV_CONNECTED:
        *connected = true;
        atomic_fetch_add(&o->connects, 1);
        break;
    case MGO_MQTT_EV_DISCONNECTED:
        *connected = false;
        break;
    case MGO_MQTT_EV_PUBLISHED:
    case MGO_MQTT_EV_PUBLISH_FAILED:
        if (ev->token <= 0 || ev->token >= MAX_TOKENS || o->seen[ev->token] == 0)
            o->unknown_outcome++;
        else if (o->seen[ev->token] == 2)
            o->double_outcome++;
        else
            o->seen[ev->token] = 2;
        if (ev->kind == MGO_MQTT_EV_PUBLISHED)
            atomic_fetch_add(&o->published, 1);
        else
            o->failed++;
        break;
    default:
        break;
    }
    mgo_mqtt_event_cleanup(ev);
}

/* The owner's thread: the only one that calls the client (as in the daemons). */
static void *owner_main(void *arg)
{
    struct owner *o = arg;
    bool connected = false;
    int64_t next_connect = 0;
    unsigned n = 0;
    char payload[200];
    memset(payload, 'p', sizeof payload);
    while (!atomic_load(&o->stop)) {
        struct mgo_mqtt_event ev;
        while (mgo_mqtt_next(o->m, 0, &ev) == MGO_OK)
            take_event(o, &ev, &connected);
        if (!connected) {
            if (mgo_test_now_ms() >= next_connect) {
                mgo_err err = mgo_mqtt_connect(o->m);
                (void)err; /* CONNECT_FAILED or CONNECTED follows; retried below */
                next_connect = mgo_test_now_ms() + 100;
            }
            if (mgo_mqtt_next(o->m, 20, &ev) == MGO_OK)
                take_event(o, &ev, &connected);
            continue;
        }
        size_t received, outgoing;
        mgo_mqtt_depths(o->m, &received, &outgoing);
        if (outgoing >= OUTGOING_CAP) {
            if (mgo_mqtt_next(o->m, 5, &ev) == MGO_OK)
                take_event(o, &ev, &connected);
            continue;
        }
        char topic[64];
        snprintf(topic, sizeof topic, "margo/v1/devices/soak-%02u/desired", n++ % NTOPICS);
        int token = 0;
        if (mgo_mqtt_publish(o->m, topic, payload, sizeof payload, 1, false, &token) == MGO_OK) {
            o->accepted++;
            if (token > 0 && token < MAX_TOKENS)
                o->seen[token] = o->seen[token] == 0 ? 1 : o->seen[token];
        }
    }
    return NULL;
}

static bool wait_until(atomic_long *counter, long above)
{
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (atomic_load(counter) <= above) {
        if (mgo_test_now_ms() > deadline)
            return false;
        mgo_test_sleep_ms(5);
    }
    return true;
}

static void test_qos1_flood_across_broker_restarts(void)
{
    CU_ASSERT_FATAL(atexit(cleanup_broker_at_exit) == 0);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    struct mgo_mqtt_config cfg = {
        .url = mgo_test_broker_url(&broker),
        .client_id = "restart-flood",
        .clean_start = false,
        .session_expiry_s = 3600, /* Paho keeps its in-flight publishes across the drop */
    };
    struct owner *o = calloc(1, sizeof *o);
    CU_ASSERT_FATAL(o != NULL);
    o->seen = calloc(MAX_TOKENS, 1);
    CU_ASSERT_FATAL(o->seen != NULL);
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &o->m) == MGO_OK);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, owner_main, o) == 0);

    unsigned seed = (unsigned)mgo_test_now_ms();
    for (int r = 0; r < RESTARTS; r++) {
        /* connected and publishing: the next restart hits a full window */
        CU_ASSERT_FATAL(wait_until(&o->connects, r));
        long before = atomic_load(&o->published);
        CU_ASSERT_FATAL(wait_until(&o->published, before + 200));
        mgo_test_sleep_ms((int)(rand_r(&seed) % 300));
        CU_ASSERT_FATAL(mgo_test_broker_stop(&broker) == 0);
        mgo_test_sleep_ms(100 + (int)(rand_r(&seed) % 300));
        CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    }
    /* after the last restart it connects and its publishes are acknowledged again */
    CU_ASSERT_FATAL(wait_until(&o->connects, RESTARTS));
    long before = atomic_load(&o->published);
    CU_ASSERT(wait_until(&o->published, before + 200));

    atomic_store(&o->stop, true);
    pthread_join(th, NULL);
    /* outcomes still on their way come in before the count */
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool connected = true;
    for (;;) {
        size_t received, outgoing;
        mgo_mqtt_depths(o->m, &received, &outgoing);
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(o->m, 50, &ev) == MGO_OK) {
            take_event(o, &ev, &connected);
            continue;
        }
        if (outgoing == 0 || mgo_test_now_ms() > deadline)
            break;
    }
    fprintf(stderr,
            "restart flood: %ld accepted, %ld published, %ld failed, %ld connects, %ld retired\n",
            o->accepted, atomic_load(&o->published), o->failed, atomic_load(&o->connects),
            mgo_mqtt_retired(o->m));
    CU_ASSERT_EQUAL(o->double_outcome, 0);
    CU_ASSERT_EQUAL(o->unknown_outcome, 0);
    /* every accepted publish has exactly one outcome, those handed to a retired Paho
     * client included (reported failed when it was retired) */
    long missing = 0;
    for (long t = 1; t < MAX_TOKENS; t++)
        missing += o->seen[t] == 1;
    CU_ASSERT_EQUAL(missing, 0);
    mgo_mqtt_free(o->m);
    free(o->seen);
    free(o);
    mgo_test_broker_cleanup(&broker);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"QoS 1 flood across broker restarts", test_qos1_flood_across_broker_restarts},
        {NULL, NULL},
    };
    mgo_test_add_suite("mqtt_restart", cases);
}
