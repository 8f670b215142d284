/* mqtt.c - the MQTT 5 client: Paho MQTTAsync behind mgo/mqtt.h.
 *
 * Threads: Paho runs its callbacks on its own threads while holding its global mutex.
 * Every callback here only copies what it got into the event queue (struct qnode list,
 * guarded by m->mu), bumps the eventfd and returns. The owner's thread takes events with
 * mgo_mqtt_next(), which polls the eventfd. Lock order: Paho's mutex, then m->mu; code
 * holding m->mu never calls Paho, so the two cannot deadlock.
 *
 * No refusals: Paho sends the PUBACK of a QoS 1 message when it reads it, before it offers
 * the message to on_message(), and keeps a refused message on its own queue, offering it
 * again only when another packet arrives. Refusing therefore gives no flow control towards
 * the broker (the memory is spent either way) and only slows delivery to a trickle: a
 * manager restarted with 280,000 statuses queued at the broker stored 1,400/s that way
 * (bench/fleet, backlog ingest). So every message is queued; past queue_warn messages the
 * wrapper logs once that its owner is falling behind. Control events (connect, publish and
 * subscribe outcomes) are bounded by the in-flight window.
 *
 * Publishes: the wrapper hands Paho at most `window` publishes at a time (max_inflight, or
 * the broker's Receive Maximum when smaller) and keeps the rest in its own FIFO, handing the
 * next one over from the outcome callback of an earlier one. Paho's MQTTAsync_send walks its
 * whole command list on every call (free message id, buffered count), so with a deploy's
 * 20,000 publishes queued in Paho the manager spent a quarter of its time in those walks
 * (perf, bench/fleet 10,000 devices); and a publish Paho queues behind the broker's window
 * leaves only when its send thread next wakes, up to a second later. Tokens are the
 * wrapper's own. One thread at a time hands over (`pumping`), so order is kept.
 *
 * Wakeups: the eventfd is bumped only when a push finds the queue empty (the owner takes
 * events until the queue is empty before it polls again), so a burst costs one write, not
 * one per message.
 *
 * Retiring: Paho 1.3.12 (and its master, 2026-01) frees the topic and payload of a QoS 1/2
 * publish whose first write fails on a dead socket (MQTTAsyncUtils.c, MQTTAsync_processCommand:
 * the SOCKET_ERROR branch calls the failure callback with code -1 and MQTTAsync_freeCommand)
 * after MQTTProtocol_startPublish has put the same two pointers in the client's in-flight list
 * (MQTTProtocol_storePublication takes them over without copying). Whatever touches that list
 * next uses freed memory: the resend of a resumed session on reconnect (strlen of the topic,
 * MQTTAsync_completeConnection -> MQTTProtocol_retry), a clean session on reconnect or close,
 * or MQTTAsync_destroy (a second free). No order of our calls avoids the write failure: the
 * broker's socket dies between Paho's "connected" check and its write. So such a failure (a
 * QoS 1/2 publish failed with code -1 and no reason code) marks the Paho client `poisoned`;
 * the next mgo_mqtt_connect() retires it (callbacks cleared, never reconnected, never
 * destroyed: it stays in Paho's list of clients, closed) and connects with a new Paho client.
 * Publishes handed to the retired one are reported as failed then. At most MAX_RETIRED per
 * wrapper; past that connect fails with MGO_ERR_LIMIT (restart the process). With session
 * expiry 0 Paho empties its in-flight list inside its own connection close (MQTTAsync_closeSession
 * -> MQTTAsync_cleanSession), a second free before any callback of ours could intervene;
 * Debian's Paho tracks its heap and skips a pointer it no longer knows, so that free is
 * harmless unless the address was reused meanwhile. Retiring cannot help there, so such
 * clients are not marked (docs/reliability.md "Known limits").
 *
 * Memory: every event owns malloc'd copies of topic and payload; nothing points into Paho
 * buffers after a callback returns. mgo_mqtt_free() destroys the Paho client first (after
 * MQTTAsync_destroy() returns no callback of ours runs any more), then frees the queue; a
 * poisoned Paho client is retired instead of destroyed. */
#include "mgo/metrics.h"
#include "mgo/mqtt.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <MQTTClientPersistence.h>
#include <openssl/opensslv.h>

#include "mgo/limits.h"
#include "mgo/log.h"

/* TLS 1.3 (and Paho's version-agnostic TLS_client_method path) needs OpenSSL 1.1.1 or later;
 * Paho uses the same OpenSSL as this file. */
#if OPENSSL_VERSION_NUMBER < 0x10101000L
#error "margo-mqtt needs OpenSSL 1.1.1 or later for TLS 1.3 to the broker"
#endif

#define TAG "mqtt"

#define DEFAULT_KEEPALIVE_S 30u
#define DEFAULT_CONNECT_TIMEOUT_S 10u
#define DEFAULT_QUEUE_WARN 4096u
#define DEFAULT_MAX_INFLIGHT 64u
/* Paho keeps maxInflight in an int; MQTT's Receive Maximum is 16 bits. */
#define MAX_INFLIGHT_LIMIT 65535u
/* Publishes Paho may hold behind the in-flight window (see mgo_mqtt_new). */
#define MAX_BUFFERED_MESSAGES 1000000
/* The wait in mgo_mqtt_free() for a clean disconnect. */
#define FREE_DISCONNECT_MS 1000
/* Paho clients one wrapper may retire (see "Retiring" above); each holds at most two
 * windows of publishes (in flight and queued in Paho) until the process ends. */
#define MAX_RETIRED 64

struct qnode {
    struct qnode *next;
    struct mgo_mqtt_event ev;
};

/* A publish waiting in the wrapper's FIFO, or handed to Paho (then it is the context of the
 * outcome callback and sits on the handed list until that callback frees it). */
struct onode {
    struct onode *next;
    struct onode *prev; /* handed list only */
    struct mgo_mqtt *m;
    int token;
    bool counted; /* counts against the window (false after a reconnect) */
    bool retired; /* handed to a retired Paho client: reported failed, kept until free */
    char *topic;
    uint8_t *payload;
    size_t len;
    int qos;
    bool retain;
};

enum disc_state { DISC_IDLE = 0, DISC_PENDING, DISC_DONE };

/* What tells a changed file: a replaced one (new inode) or one rewritten in place. */
struct file_sig {
    bool exists;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct mgo_mqtt {
    MQTTAsync client;

    /* Copies of the configuration (owned). */
    char *url; /* normalized to Paho's tcp:// or ssl:// */
    char *client_id;
    char *ca_file;
    char *cert_file;
    char *key_file;
    struct file_sig tls_sig[3]; /* ca, cert, key as the last connect read them (reload) */
    char *username;
    char *password;
    bool tls;
    bool clean_start;
    uint32_t session_expiry_s;
    uint16_t keepalive_s;
    uint32_t connect_timeout_s;
    size_t queue_warn;
    size_t max_inflight;
    bool has_will;
    char *will_topic;
    uint8_t *will_payload;
    size_t will_payload_len;
    int will_qos;
    bool will_retain;

    /* Shared with Paho's threads; guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signals disc changes */
    struct qnode *head;
    struct qnode *tail;
    size_t n_messages; /* MESSAGE events queued */
    bool connected;    /* as reported by the callbacks */
    bool behind;       /* queue_warn was passed (logged once until the queue empties) */
    /* publishes (see the top of this file) */
    struct onode *out_head;
    struct onode *out_tail;
    size_t n_queued;      /* publishes in the FIFO (out_head..out_tail) */
    struct onode *handed; /* handed to Paho, outcome not yet reported */
    size_t n_counted;     /* handed ones that count against the window */
    size_t window;
    bool pumping; /* a thread is handing publishes over */
    int last_token;
    enum disc_state disc;
    bool poisoned;        /* the Paho client holds a freed publish (see "Retiring") */
    size_t n_retired;     /* Paho clients retired */
    struct onode *parked; /* nodes handed to retired clients (freed by mgo_mqtt_free) */

    int wake_fd;               /* eventfd: bumped by a push into an empty queue and by
                                * mgo_mqtt_wake() */
    atomic_int wake_requested; /* set by mgo_mqtt_wake() */
};

/* ---- helpers ---------------------------------------------------------------------- */

static mgo_err paho_err(int rc, const char *what)
{
    mgo_err err;
    switch (rc) {
    case MQTTASYNC_SUCCESS:
        return MGO_OK;
    case MQTTASYNC_DISCONNECTED:
    case MQTTASYNC_FAILURE:
        err = MGO_ERR_NET;
        break;
    case MQTTASYNC_MAX_MESSAGES_INFLIGHT:
    case MQTTASYNC_MAX_BUFFERED_MESSAGES:
    case MQTTASYNC_NO_MORE_MSGIDS:
    case MQTTASYNC_MAX_BUFFERED:
        err = MGO_ERR_LIMIT;
        break;
    case MQTTASYNC_BAD_UTF8_STRING:
    case MQTTASYNC_NULL_PARAMETER:
    case MQTTASYNC_TOPICNAME_TRUNCATED:
    case MQTTASYNC_BAD_QOS:
    case MQTTASYNC_BAD_PROTOCOL:
    case MQTTASYNC_BAD_MQTT_OPTION:
    case MQTTASYNC_0_LEN_WILL_TOPIC:
    case MQTTASYNC_SSL_NOT_SUPPORTED:
        err = MGO_ERR_INVALID;
        break;
    case MQTTASYNC_OPERATION_INCOMPLETE:
    case MQTTASYNC_COMMAND_IGNORED:
        err = MGO_ERR_CONFLICT;
        break;
    case MQTTASYNC_PERSISTENCE_ERROR:
        err = MGO_ERR_IO;
        break;
    default: /* BAD_STRUCTURE, WRONG_MQTT_VERSION: our bug */
        err = MGO_ERR_INTERNAL;
        break;
    }
    const char *detail = MQTTAsync_strerror(rc);
    if (rc == MQTTASYNC_DISCONNECTED)
        MGO_LOGD(TAG, "%s: %s (paho %d)", what, detail != NULL ? detail : "?", rc);
    else
        MGO_LOGW(TAG, "%s: %s (paho %d)", what, detail != NULL ? detail : "?", rc);
    return err;
}

static bool dup_opt(const char *src, char **out)
{
    *out = NULL;
    if (src == NULL)
        return true;
    *out = strdup(src);
    return *out != NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void bump(struct mgo_mqtt *m)
{
    uint64_t one = 1;
    /* A full counter (2^64-2 pending wakes) cannot happen; EAGAIN would still leave it
     * readable, which is all the reader needs. */
    ssize_t n = write(m->wake_fd, &one, sizeof one);
    (void)n;
}

static void free_node(struct qnode *n)
{
    mgo_mqtt_event_cleanup(&n->ev);
    free(n);
}

/* Appends a node; called from Paho's threads (or from destroy on ours). */
static void push(struct mgo_mqtt *m, struct qnode *n)
{
    n->next = NULL;
    pthread_mutex_lock(&m->mu);
    bool was_empty = m->head == NULL;
    if (m->tail != NULL)
        m->tail->next = n;
    else
        m->head = n;
    m->tail = n;
    bool warn = false;
    if (n->ev.kind == MGO_MQTT_EV_MESSAGE) {
        m->n_messages++;
        warn = m->n_messages > m->queue_warn && !m->behind;
        if (warn)
            m->behind = true;
    }
    pthread_mutex_unlock(&m->mu);
    if (warn)
        MGO_LOGW(TAG, "more than %zu received messages wait for the owner; it is falling behind",
                 m->queue_warn);
    if (was_empty)
        bump(m);
}

static struct qnode *new_node(enum mgo_mqtt_event_kind kind)
{
    struct qnode *n = calloc(1, sizeof *n);
    if (n == NULL) {
        MGO_LOGE(TAG, "out of memory queueing event %d; event lost", (int)kind);
        return NULL;
    }
    n->ev.kind = kind;
    return n;
}

static void push_control(struct mgo_mqtt *m, enum mgo_mqtt_event_kind kind, int token, int reason)
{
    struct qnode *n = new_node(kind);
    if (n == NULL)
        return;
    n->ev.token = token;
    n->ev.reason = reason;
    push(m, n);
}

/* ---- Paho callbacks (Paho's threads) ------------------------------------------------ */

static int on_message(void *context, char *topic_name, int topic_len, MQTTAsync_message *msg)
{
    struct mgo_mqtt *m = context;
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic_name);
    size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;

    if (plen > MGO_MAX_MESSAGE_BYTES) {
        MGO_LOGW(TAG, "dropped message on %.*s: payload of %zu bytes exceeds %u", (int)tlen,
                 topic_name, plen, MGO_MAX_MESSAGE_BYTES);
        goto consumed;
    }

    struct qnode *n = new_node(MGO_MQTT_EV_MESSAGE);
    if (n == NULL)
        goto nomem;
    n->ev.topic = malloc(tlen + 1);
    if (n->ev.topic == NULL)
        goto nomem;
    memcpy(n->ev.topic, topic_name, tlen);
    n->ev.topic[tlen] = '\0';
    if (plen > 0) {
        n->ev.payload = malloc(plen);
        if (n->ev.payload == NULL)
            goto nomem;
        memcpy(n->ev.payload, msg->payload, plen);
    }
    n->ev.payload_len = plen;
    n->ev.retained = msg->retained != 0;
    n->ev.arrived_ns = mgo_metrics_now_ns();
    push(m, n);
consumed:
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic_name);
    return 1;
nomem:
    if (n != NULL)
        free_node(n);
    /* Paho keeps it and offers it again when the next packet arrives */
    MGO_LOGE(TAG, "out of memory copying a message; Paho will offer it again");
    return 0;
}

static void fail_queued(struct mgo_mqtt *m);

static void lost(struct mgo_mqtt *m, int reason)
{
    pthread_mutex_lock(&m->mu);
    bool was = m->connected;
    m->connected = false;
    pthread_mutex_unlock(&m->mu);
    fail_queued(m);
    if (was)
        push_control(m, MGO_MQTT_EV_DISCONNECTED, 0, reason);
}

static void on_connection_lost(void *context, char *cause)
{
    struct mgo_mqtt *m = context;
    MGO_LOGW(TAG, "connection to %s lost%s%s", m->url, cause != NULL ? ": " : "",
             cause != NULL ? cause : "");
    lost(m, 0);
}

static void on_disconnected(void *context, MQTTProperties *props, enum MQTTReasonCodes reason)
{
    struct mgo_mqtt *m = context;
    (void)props;
    const char *text = MQTTReasonCode_toString(reason);
    MGO_LOGW(TAG, "broker %s disconnected us: %s (reason %d)", m->url, text != NULL ? text : "?",
             (int)reason);
    lost(m, (int)reason);
}

static void on_connect_ok(void *context, MQTTAsync_successData5 *resp)
{
    struct mgo_mqtt *m = context;
    struct qnode *n = new_node(MGO_MQTT_EV_CONNECTED);
    /* The broker's Receive Maximum (65,535 when absent) bounds the publishes in flight. */
    size_t window = m->max_inflight;
    if (resp != NULL &&
        MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
        int rmax =
            MQTTProperties_getNumericValue(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
        if (rmax > 0 && (size_t)rmax < window)
            window = (size_t)rmax;
    }
    pthread_mutex_lock(&m->mu);
    m->connected = true;
    m->window = window;
    /* publishes handed over before the reconnect are Paho's to resend or fail; they no
     * longer count against the new connection's window */
    for (struct onode *o = m->handed; o != NULL; o = o->next)
        o->counted = false;
    m->n_counted = 0;
    pthread_mutex_unlock(&m->mu);
    if (n == NULL)
        return;
    n->ev.session_present = resp != NULL && resp->alt.connect.sessionPresent != 0;
    n->ev.reason = resp != NULL ? (int)resp->reasonCode : 0;
    MGO_LOGI(TAG, "connected to %s as %s (session %s, %zu publishes in flight at most)", m->url,
             m->client_id, n->ev.session_present ? "resumed" : "new", window);
    push(m, n);
}

/* Reason code when the broker sent one, else Paho's code. */
static int failure_reason(const MQTTAsync_failureData5 *resp)
{
    if (resp == NULL)
        return MQTTASYNC_FAILURE;
    return resp->reasonCode != MQTTREASONCODE_SUCCESS ? (int)resp->reasonCode : resp->code;
}

static const char *failure_text(const MQTTAsync_failureData5 *resp)
{
    if (resp == NULL)
        return "unknown failure";
    if (resp->message != NULL)
        return resp->message;
    if (resp->reasonCode != MQTTREASONCODE_SUCCESS) {
        const char *t = MQTTReasonCode_toString(resp->reasonCode);
        return t != NULL ? t : "?";
    }
    const char *t = MQTTAsync_strerror(resp->code);
    return t != NULL ? t : "?";
}

static void on_connect_fail(void *context, MQTTAsync_failureData5 *resp)
{
    struct mgo_mqtt *m = context;
    int reason = failure_reason(resp);
    MGO_LOGW(TAG, "connect to %s as %s failed: %s (code %d)", m->url, m->client_id,
             failure_text(resp), reason);
    push_control(m, MGO_MQTT_EV_CONNECT_FAILED, resp != NULL ? resp->token : 0, reason);
}

/* ---- publishes: the wrapper's FIFO in front of Paho ------------------------------- */

static void onode_free(struct onode *o)
{
    free(o->topic);
    free(o->payload);
    free(o);
}

/* With m->mu held. */
static void handed_add(struct mgo_mqtt *m, struct onode *o)
{
    o->prev = NULL;
    o->next = m->handed;
    if (m->handed != NULL)
        m->handed->prev = o;
    m->handed = o;
    o->counted = true;
    m->n_counted++;
}

/* With m->mu held. */
static void handed_remove(struct mgo_mqtt *m, struct onode *o)
{
    if (o->prev != NULL)
        o->prev->next = o->next;
    else
        m->handed = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    if (o->counted)
        m->n_counted--;
}

static void on_publish_ok(void *context, MQTTAsync_successData5 *resp);
static void on_publish_fail(void *context, MQTTAsync_failureData5 *resp);

/* Gives one publish to Paho (o is already on the handed list). Paho copies topic and
 * payload before MQTTAsync_send returns; after a successful send o belongs to the outcome
 * callback, which may already have run, so o is not touched again. */
static int hand_over(MQTTAsync client, struct onode *o, const char *topic, const void *payload)
{
    static const uint8_t empty[1] = {0};
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_publish_ok;
    ro.onFailure5 = on_publish_fail;
    ro.context = o;
    return MQTTAsync_send(client, topic, (int)o->len, o->len > 0 ? payload : empty, o->qos,
                          o->retain ? 1 : 0, &ro);
}

/* Hands queued publishes to Paho while the window has room (any thread, without m->mu). */
static void pump(struct mgo_mqtt *m)
{
    pthread_mutex_lock(&m->mu);
    if (m->pumping) {
        pthread_mutex_unlock(&m->mu); /* that thread re-checks the FIFO before it stops */
        return;
    }
    m->pumping = true;
    for (;;) {
        struct onode *o = m->out_head;
        if (o == NULL || m->n_counted >= m->window) {
            m->pumping = false;
            pthread_mutex_unlock(&m->mu);
            return;
        }
        m->out_head = o->next;
        if (m->out_head == NULL)
            m->out_tail = NULL;
        m->n_queued--;
        handed_add(m, o);
        int token = o->token;
        char *topic = o->topic;
        uint8_t *payload = o->payload;
        o->topic = NULL;
        o->payload = NULL;
        MQTTAsync client = m->client;
        pthread_mutex_unlock(&m->mu);
        int rc = hand_over(client, o, topic, payload);
        free(topic);
        free(payload);
        if (rc != MQTTASYNC_SUCCESS) {
            pthread_mutex_lock(&m->mu);
            handed_remove(m, o);
            pthread_mutex_unlock(&m->mu);
            onode_free(o);
            const char *why = MQTTAsync_strerror(rc);
            MGO_LOGW(TAG, "publish %d: %s (paho %d)", token, why != NULL ? why : "?", rc);
            push_control(m, MGO_MQTT_EV_PUBLISH_FAILED, token, rc);
        }
        pthread_mutex_lock(&m->mu);
    }
}

/* Reports every publish still in the FIFO as failed (the connection is gone; owners
 * publish again after a reconnect, as for any failed publish). */
static void fail_queued(struct mgo_mqtt *m)
{
    pthread_mutex_lock(&m->mu);
    struct onode *o = m->out_head;
    m->out_head = m->out_tail = NULL;
    m->n_queued = 0;
    pthread_mutex_unlock(&m->mu);
    while (o != NULL) {
        struct onode *next = o->next;
        push_control(m, MGO_MQTT_EV_PUBLISH_FAILED, o->token, MQTTASYNC_DISCONNECTED);
        onode_free(o);
        o = next;
    }
}

static void publish_done(struct onode *o, enum mgo_mqtt_event_kind kind, int reason)
{
    struct mgo_mqtt *m = o->m;
    int token = o->token;
    pthread_mutex_lock(&m->mu);
    if (o->retired) { /* reported when its client was retired; a retired client is closed
                       * and never reconnected, so this is not expected */
        pthread_mutex_unlock(&m->mu);
        return;
    }
    handed_remove(m, o);
    pthread_mutex_unlock(&m->mu);
    onode_free(o);
    push_control(m, kind, token, reason);
    pump(m); /* a slot is free */
}

static void on_publish_ok(void *context, MQTTAsync_successData5 *resp)
{
    publish_done(context, MGO_MQTT_EV_PUBLISHED, resp != NULL ? (int)resp->reasonCode : 0);
}

static void on_publish_fail(void *context, MQTTAsync_failureData5 *resp)
{
    struct onode *o = context;
    int reason = failure_reason(resp);
    MGO_LOGW(TAG, "publish %d not acknowledged: %s (code %d)", o->token, failure_text(resp),
             reason);
    /* Paho's write of a QoS 1/2 publish failed on a dead socket: it freed the copies its
     * in-flight list still holds (see "Retiring" at the top of this file) */
    struct mgo_mqtt *m = o->m;
    if (o->qos > 0 && m->session_expiry_s > 0 && resp != NULL && resp->code == MQTTASYNC_FAILURE &&
        resp->reasonCode == MQTTREASONCODE_SUCCESS) {
        pthread_mutex_lock(&m->mu);
        bool was = m->poisoned;
        m->poisoned = true;
        pthread_mutex_unlock(&m->mu);
        if (!was)
            MGO_LOGW(TAG,
                     "publish %d failed on a dead socket: Paho keeps freed copies of it; "
                     "the next connect to %s uses a new Paho client",
                     o->token, m->url);
    }
    publish_done(o, MGO_MQTT_EV_PUBLISH_FAILED, reason);
}

static void on_subscribe_ok(void *context, MQTTAsync_successData5 *resp)
{
    push_control(context, MGO_MQTT_EV_SUBSCRIBED, resp != NULL ? resp->token : 0,
                 resp != NULL ? (int)resp->reasonCode : 0);
}

static void on_subscribe_fail(void *context, MQTTAsync_failureData5 *resp)
{
    int reason = failure_reason(resp);
    MGO_LOGW(TAG, "subscribe %d refused: %s (code %d)", resp != NULL ? resp->token : 0,
             failure_text(resp), reason);
    push_control(context, MGO_MQTT_EV_SUBSCRIBE_FAILED, resp != NULL ? resp->token : 0, reason);
}

static void disc_finished(struct mgo_mqtt *m)
{
    pthread_mutex_lock(&m->mu);
    m->disc = DISC_DONE;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
}

static void on_disconnect_ok(void *context, MQTTAsync_successData5 *resp)
{
    (void)resp;
    disc_finished(context);
}

static void on_disconnect_fail(void *context, MQTTAsync_failureData5 *resp)
{
    MGO_LOGD(TAG, "disconnect: %s", failure_text(resp));
    disc_finished(context);
}

/* ---- public API --------------------------------------------------------------------- */

static mgo_err normalize_url(const char *url, char **out, bool *tls)
{
    static const struct {
        const char *prefix;
        const char *paho;
        bool tls;
    } schemes[] = {
        {"tcp://", "tcp://", false},
        {"mqtt://", "tcp://", false},
        {"ssl://", "ssl://", true},
        {"mqtts://", "ssl://", true},
    };
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t plen = strlen(schemes[i].prefix);
        if (strncmp(url, schemes[i].prefix, plen) != 0)
            continue;
        const char *rest = url + plen;
        if (rest[0] == '\0') {
            MGO_LOGE(TAG, "url: missing host after %s", schemes[i].prefix);
            return MGO_ERR_INVALID;
        }
        size_t len = strlen(schemes[i].paho) + strlen(rest) + 1;
        char *s = malloc(len);
        if (s == NULL)
            return MGO_ERR_NOMEM;
        snprintf(s, len, "%s%s", schemes[i].paho, rest);
        *out = s;
        *tls = schemes[i].tls;
        return MGO_OK;
    }
    MGO_LOGE(TAG, "url: must start with tcp://, mqtt://, ssl:// or mqtts://");
    return MGO_ERR_INVALID;
}

static mgo_err check_config(const struct mgo_mqtt_config *cfg)
{
    if (cfg->url == NULL || cfg->url[0] == '\0') {
        MGO_LOGE(TAG, "url: required");
        return MGO_ERR_INVALID;
    }
    if (cfg->client_id == NULL || cfg->client_id[0] == '\0') {
        MGO_LOGE(TAG, "client_id: required");
        return MGO_ERR_INVALID;
    }
    if (strlen(cfg->client_id) > 65535u) {
        MGO_LOGE(TAG, "client_id: longer than 65535 bytes");
        return MGO_ERR_LIMIT;
    }
    if (cfg->max_inflight > MAX_INFLIGHT_LIMIT) {
        MGO_LOGE(TAG, "max_inflight: must be at most %u", MAX_INFLIGHT_LIMIT);
        return MGO_ERR_INVALID;
    }
    if (cfg->connect_timeout_s > INT32_MAX) {
        MGO_LOGE(TAG, "connect_timeout_s: too large");
        return MGO_ERR_INVALID;
    }
    const struct mgo_mqtt_will *w = cfg->will;
    if (w != NULL) {
        if (w->topic == NULL || w->topic[0] == '\0') {
            MGO_LOGE(TAG, "will.topic: required when a will is given");
            return MGO_ERR_INVALID;
        }
        if (strlen(w->topic) > MGO_MAX_TOPIC_LEN) {
            MGO_LOGE(TAG, "will.topic: longer than %u bytes", MGO_MAX_TOPIC_LEN);
            return MGO_ERR_LIMIT;
        }
        if (w->qos < 0 || w->qos > 2) {
            MGO_LOGE(TAG, "will.qos: must be 0, 1 or 2");
            return MGO_ERR_INVALID;
        }
        if (w->payload_len > MGO_MAX_MESSAGE_BYTES) {
            MGO_LOGE(TAG, "will.payload: larger than %u bytes", MGO_MAX_MESSAGE_BYTES);
            return MGO_ERR_LIMIT;
        }
        if (w->payload_len > 0 && w->payload == NULL) {
            MGO_LOGE(TAG, "will.payload: NULL with a non-zero length");
            return MGO_ERR_INVALID;
        }
    }
    return MGO_OK;
}

static void free_config_copies(struct mgo_mqtt *m)
{
    free(m->url);
    free(m->client_id);
    free(m->ca_file);
    free(m->cert_file);
    free(m->key_file);
    free(m->username);
    if (m->password != NULL) {
        explicit_bzero(m->password, strlen(m->password));
        free(m->password);
    }
    free(m->will_topic);
    free(m->will_payload);
}

/* A Paho client for m's URL and client id with the wrapper's callbacks. */
static mgo_err create_paho(struct mgo_mqtt *m, MQTTAsync *out)
{
    MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
    copts.sendWhileDisconnected = 0;
    /* Paho counts every publish it holds as "buffered" and refuses the 101st by default, even
     * while connected. The wrapper hands it at most the window (see the top of this file),
     * plus publishes of an earlier connection Paho still holds, so the bound only has to
     * stay out of the way. */
    copts.maxBufferedMessages = MAX_BUFFERED_MESSAGES;
    MQTTAsync client;
    int rc = MQTTAsync_createWithOptions(&client, m->url, m->client_id, MQTTCLIENT_PERSISTENCE_NONE,
                                         NULL, &copts);
    if (rc != MQTTASYNC_SUCCESS)
        return paho_err(rc, "create client");
    rc = MQTTAsync_setCallbacks(client, m, on_connection_lost, on_message, NULL);
    if (rc == MQTTASYNC_SUCCESS)
        rc = MQTTAsync_setDisconnected(client, m, on_disconnected);
    if (rc != MQTTASYNC_SUCCESS) {
        MQTTAsync_destroy(&client);
        return paho_err(rc, "set callbacks");
    }
    *out = client;
    return MGO_OK;
}

/* A retired client gets no packets (closed, never reconnected); Paho insists on a message
 * callback, and this one needs no context. */
static int on_retired_message(void *context, char *topic_name, int topic_len,
                              MQTTAsync_message *msg)
{
    (void)context;
    (void)topic_len;
    MQTTAsync_freeMessage(&msg);
    MQTTAsync_free(topic_name);
    return 1;
}

/* Owner's thread, m->poisoned: parks the Paho client for good (see "Retiring" at the top of
 * this file) and reports what was handed to it as failed. With `fresh`, a new Paho client
 * takes its place. MGO_ERR_CONFLICT while Paho is still closing the old connection. */
static mgo_err retire_client(struct mgo_mqtt *m, bool fresh)
{
    MQTTAsync old = m->client;
    /* clearing the callbacks fails while Paho is connecting or closing */
    if (MQTTAsync_isConnected(old) ||
        MQTTAsync_setCallbacks(old, NULL, NULL, on_retired_message, NULL) != MQTTASYNC_SUCCESS ||
        MQTTAsync_setDisconnected(old, NULL, NULL) != MQTTASYNC_SUCCESS) {
        MGO_LOGD(TAG, "retiring the Paho client of %s: it is still closing", m->client_id);
        return MGO_ERR_CONFLICT;
    }
    MQTTAsync next = NULL;
    if (fresh) {
        mgo_err err = create_paho(m, &next);
        if (err != MGO_OK) {
            /* the old one stays current (poisoned) and callback-less; the next connect tries
             * again, and connect() refuses to reconnect a poisoned client */
            return err;
        }
    }
    pthread_mutex_lock(&m->mu);
    m->client = next;
    m->poisoned = false;
    m->n_retired++;
    size_t n_retired = m->n_retired;
    struct onode *h = m->handed;
    m->handed = NULL;
    m->n_counted = 0;
    for (struct onode *o = h; o != NULL; o = o->next)
        o->retired = true;
    pthread_mutex_unlock(&m->mu);
    size_t failed = 0;
    for (struct onode *o = h, *next_o; o != NULL; o = next_o) {
        next_o = o->next;
        push_control(m, MGO_MQTT_EV_PUBLISH_FAILED, o->token, MQTTASYNC_DISCONNECTED);
        /* Paho still names it as a callback context: kept until mgo_mqtt_free() */
        o->next = m->parked;
        m->parked = o;
        failed++;
    }
    MGO_LOGW(TAG,
             "retired Paho client %zu of %s (it holds a freed publish); %zu publishes "
             "handed to it failed",
             n_retired, m->client_id, failed);
    return MGO_OK;
}

mgo_err mgo_mqtt_new(const struct mgo_mqtt_config *cfg, struct mgo_mqtt **out)
{
    *out = NULL;
    mgo_err err = check_config(cfg);
    if (err != MGO_OK)
        return err;

    struct mgo_mqtt *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MGO_ERR_NOMEM;
    m->wake_fd = -1;

    err = normalize_url(cfg->url, &m->url, &m->tls);
    if (err != MGO_OK)
        goto fail_copies;
    err = MGO_ERR_NOMEM;
    if (!dup_opt(cfg->client_id, &m->client_id) || !dup_opt(cfg->ca_file, &m->ca_file) ||
        !dup_opt(cfg->cert_file, &m->cert_file) || !dup_opt(cfg->key_file, &m->key_file) ||
        !dup_opt(cfg->username, &m->username) || !dup_opt(cfg->password, &m->password))
        goto fail_copies;
    if (cfg->will != NULL) {
        m->has_will = true;
        if (!dup_opt(cfg->will->topic, &m->will_topic))
            goto fail_copies;
        if (cfg->will->payload_len > 0) {
            m->will_payload = malloc(cfg->will->payload_len);
            if (m->will_payload == NULL)
                goto fail_copies;
            memcpy(m->will_payload, cfg->will->payload, cfg->will->payload_len);
        }
        m->will_payload_len = cfg->will->payload_len;
        m->will_qos = cfg->will->qos;
        m->will_retain = cfg->will->retain;
    }
    m->clean_start = cfg->clean_start;
    m->session_expiry_s = cfg->session_expiry_s;
    m->keepalive_s = cfg->keepalive_s != 0 ? cfg->keepalive_s : DEFAULT_KEEPALIVE_S;
    m->connect_timeout_s =
        cfg->connect_timeout_s != 0 ? cfg->connect_timeout_s : DEFAULT_CONNECT_TIMEOUT_S;
    m->queue_warn = cfg->queue_warn != 0 ? cfg->queue_warn : DEFAULT_QUEUE_WARN;
    m->max_inflight = cfg->max_inflight != 0 ? cfg->max_inflight : DEFAULT_MAX_INFLIGHT;
    m->window = m->max_inflight;

    err = MGO_ERR_INTERNAL;
    if (pthread_mutex_init(&m->mu, NULL) != 0)
        goto fail_copies;
    if (pthread_cond_init(&m->cond, NULL) != 0)
        goto fail_mutex;
    atomic_init(&m->wake_requested, 0);
    m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->wake_fd < 0) {
        MGO_LOGE(TAG, "eventfd: %s", strerror(errno));
        err = MGO_ERR_IO;
        goto fail_cond;
    }

    err = create_paho(m, &m->client);
    if (err != MGO_OK)
        goto fail_fd;
    *out = m;
    return MGO_OK;

fail_fd:
    close(m->wake_fd);
fail_cond:
    pthread_cond_destroy(&m->cond);
fail_mutex:
    pthread_mutex_destroy(&m->mu);
fail_copies:
    free_config_copies(m);
    free(m);
    return err;
}

void mgo_mqtt_free(struct mgo_mqtt *m)
{
    if (m == NULL)
        return;
    if (MQTTAsync_isConnected(m->client)) {
        mgo_err err = mgo_mqtt_disconnect(m, FREE_DISCONNECT_MS);
        if (err != MGO_OK)
            MGO_LOGD(TAG, "disconnect before free: %s", mgo_strerror(err));
    }
    pthread_mutex_lock(&m->mu);
    bool poisoned = m->poisoned;
    pthread_mutex_unlock(&m->mu);
    if (poisoned) {
        /* destroy would free its freed publish again: retire it instead */
        int64_t deadline = now_ms() + FREE_DISCONNECT_MS;
        while (retire_client(m, false) != MGO_OK) {
            if (now_ms() > deadline) {
                /* its callbacks may still name m: keep m rather than free it under them */
                MGO_LOGE(TAG, "the Paho client of %s did not close; its wrapper is kept",
                         m->client_id);
                return;
            }
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    } else {
        /* After this no callback runs with m as context (Paho calls them under its global
         * mutex, which destroy takes); pending commands may still fail into our queue here. */
        MQTTAsync_destroy(&m->client);
    }

    struct qnode *n = m->head;
    while (n != NULL) {
        struct qnode *next = n->next;
        free_node(n);
        n = next;
    }
    for (struct onode *o = m->out_head, *next; o != NULL; o = next) {
        next = o->next;
        onode_free(o);
    }
    for (struct onode *o = m->handed, *next; o != NULL; o = next) {
        next = o->next;
        onode_free(o); /* outcomes Paho never reported */
    }
    for (struct onode *o = m->parked, *next; o != NULL; o = next) {
        next = o->next;
        onode_free(o); /* contexts of retired Paho clients, which call nothing */
    }
    close(m->wake_fd);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->mu);
    free_config_copies(m);
    free(m);
}

static struct file_sig sig_of(const char *path)
{
    struct file_sig sig;
    memset(&sig, 0, sizeof sig);
    struct stat st;
    if (path != NULL && stat(path, &st) == 0)
        sig = (struct file_sig){true, st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return sig;
}

static bool sig_same(const struct file_sig *a, const struct file_sig *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static bool name_same(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

mgo_err mgo_mqtt_reload_tls(struct mgo_mqtt *m, const char *ca_file, const char *cert_file,
                            const char *key_file, bool *dropped_out)
{
    *dropped_out = false;
    const char *names[3] = {ca_file, cert_file, key_file};
    char **copies[3] = {&m->ca_file, &m->cert_file, &m->key_file};
    bool changed = false;
    for (size_t i = 0; i < 3; i++) {
        struct file_sig sig = sig_of(names[i]);
        changed = changed || !name_same(names[i], *copies[i]) || !sig_same(&sig, &m->tls_sig[i]);
    }
    if (!changed)
        return MGO_OK;
    char *fresh[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < 3; i++) {
        if (!dup_opt(names[i], &fresh[i])) {
            for (size_t k = 0; k < i; k++)
                free(fresh[k]);
            return MGO_ERR_NOMEM;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        free(*copies[i]);
        *copies[i] = fresh[i];
    }
    pthread_mutex_lock(&m->mu);
    bool connected = m->connected;
    pthread_mutex_unlock(&m->mu);
    if (!m->tls || !connected)
        return MGO_OK; /* the next connect reads the new files */
    MGO_LOGI(TAG, "TLS files changed: reconnecting to %s with them", m->url);
    MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
    opts.timeout = 0;
    opts.reasonCode = MQTTREASONCODE_NORMAL_DISCONNECTION;
    int rc = MQTTAsync_disconnect(m->client, &opts);
    if (rc != MQTTASYNC_SUCCESS && rc != MQTTASYNC_DISCONNECTED)
        MGO_LOGW(TAG, "disconnect for the TLS reload: Paho error %d; reconnecting anyway", rc);
    lost(m, 0);
    *dropped_out = true;
    return MGO_OK;
}

mgo_err mgo_mqtt_connect(struct mgo_mqtt *m)
{
    MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    MQTTProperties props = MQTTProperties_initializer;

    opts.keepAliveInterval = m->keepalive_s;
    opts.cleanstart = m->clean_start ? 1 : 0;
    opts.maxInflight = (int)m->max_inflight;
    opts.connectTimeout = (int)m->connect_timeout_s;
    opts.automaticReconnect = 0; /* the owner decides when to reconnect */
    opts.retryInterval = 0;
    opts.username = m->username;
    opts.password = m->password;
    opts.onSuccess5 = on_connect_ok;
    opts.onFailure5 = on_connect_fail;
    opts.context = m;

    if (m->has_will) {
        will.topicName = m->will_topic;
        will.qos = m->will_qos;
        will.retained = m->will_retain ? 1 : 0;
        if (m->will_payload_len > 0) {
            will.payload.data = m->will_payload;
            will.payload.len = (int)m->will_payload_len;
        } else {
            will.message = ""; /* Paho copies a string when there is no binary payload */
        }
        opts.will = &will;
    }
    if (m->tls) {
        m->tls_sig[0] = sig_of(m->ca_file);
        m->tls_sig[1] = sig_of(m->cert_file);
        m->tls_sig[2] = sig_of(m->key_file);
        ssl.trustStore = m->ca_file;
        ssl.keyStore = m->cert_file;
        ssl.privateKey = m->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1; /* host name must match the certificate */
        /* TLS version: Paho 1.3.12 has no TLS 1.3 value, and built against OpenSSL >= 1.1 it
         * ignores sslVersion (SSL_CTX_new(TLS_client_method())); MQTT_SSL_VERSION_TLS_1_2 would
         * pin TLS 1.2 exactly on an older OpenSSL and break against our 1.3-only broker. So
         * DEFAULT: OpenSSL offers 1.3 and 1.2, 1.3 is negotiated with any 1.3 broker, and the
         * 1.3 downgrade sentinel (RFC 8446 4.1.3, checked by OpenSSL) stops an attacker from
         * forcing 1.2 against it; the 1.3-only rule is the broker's (mosquitto-tls.conf,
         * docs/security.md). */
        ssl.sslVersion = MQTT_SSL_VERSION_DEFAULT;
        opts.ssl = &ssl;
    }

    MQTTProperty expiry;
    memset(&expiry, 0, sizeof expiry);
    expiry.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    expiry.value.integer4 = m->session_expiry_s;
    int rc = MQTTProperties_add(&props, &expiry);
    if (rc != 0) {
        MGO_LOGE(TAG, "connect: cannot add the session expiry property (%d)", rc);
        return MGO_ERR_NOMEM;
    }
    opts.connectProperties = &props;

    pthread_mutex_lock(&m->mu);
    m->connected = false;
    bool poisoned = m->poisoned;
    size_t n_retired = m->n_retired;
    pthread_mutex_unlock(&m->mu);
    if (poisoned) {
        mgo_err err = MGO_ERR_LIMIT;
        if (n_retired >= MAX_RETIRED)
            MGO_LOGE(TAG, "connect: %zu Paho clients of %s retired already; restart the process",
                     n_retired, m->client_id);
        else
            err = retire_client(m, true);
        if (err != MGO_OK) {
            MQTTProperties_free(&props);
            return err;
        }
    }

    MGO_LOGD(TAG, "connecting to %s as %s (clean start %d, session expiry %u s)", m->url,
             m->client_id, opts.cleanstart, (unsigned)m->session_expiry_s);
    rc = MQTTAsync_connect(m->client, &opts);
    MQTTProperties_free(&props);
    return paho_err(rc, "connect");
}

mgo_err mgo_mqtt_disconnect(struct mgo_mqtt *m, int timeout_ms)
{
    MQTTAsync_disconnectOptions opts = MQTTAsync_disconnectOptions_initializer5;
    opts.timeout = timeout_ms > 0 ? timeout_ms : 0;
    opts.reasonCode = MQTTREASONCODE_NORMAL_DISCONNECTION; /* the will is not sent */
    opts.onSuccess5 = on_disconnect_ok;
    opts.onFailure5 = on_disconnect_fail;
    opts.context = m;

    pthread_mutex_lock(&m->mu);
    m->connected = false; /* a clean disconnect is not reported as DISCONNECTED */
    m->disc = DISC_PENDING;
    pthread_mutex_unlock(&m->mu);

    int rc = MQTTAsync_disconnect(m->client, &opts);
    if (rc != MQTTASYNC_SUCCESS) {
        pthread_mutex_lock(&m->mu);
        m->disc = DISC_IDLE;
        pthread_mutex_unlock(&m->mu);
        if (rc == MQTTASYNC_DISCONNECTED)
            return MGO_OK; /* nothing to disconnect */
        return paho_err(rc, "disconnect");
    }
    if (timeout_ms <= 0)
        return MGO_OK;

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    mgo_err err = MGO_OK;
    pthread_mutex_lock(&m->mu);
    while (m->disc != DISC_DONE) {
        if (pthread_cond_timedwait(&m->cond, &m->mu, &deadline) == ETIMEDOUT) {
            if (m->disc != DISC_DONE)
                err = MGO_ERR_TIMEOUT;
            break;
        }
    }
    m->disc = DISC_IDLE;
    pthread_mutex_unlock(&m->mu);
    if (err != MGO_OK)
        MGO_LOGW(TAG, "disconnect from %s did not finish within %d ms", m->url, timeout_ms);
    return err;
}

bool mgo_mqtt_is_connected(const struct mgo_mqtt *m)
{
    return m != NULL && MQTTAsync_isConnected(m->client) != 0;
}

static mgo_err check_topic(const char *topic, const char *what)
{
    if (topic == NULL || topic[0] == '\0') {
        MGO_LOGE(TAG, "%s: topic is empty", what);
        return MGO_ERR_INVALID;
    }
    if (strlen(topic) > MGO_MAX_TOPIC_LEN) {
        MGO_LOGE(TAG, "%s: topic longer than %u bytes", what, MGO_MAX_TOPIC_LEN);
        return MGO_ERR_LIMIT;
    }
    return MGO_OK;
}

mgo_err mgo_mqtt_subscribe(struct mgo_mqtt *m, const char *filter, int qos, int *token_out)
{
    mgo_err err = check_topic(filter, "subscribe");
    if (err != MGO_OK)
        return err;
    if (qos < 0 || qos > 2) {
        MGO_LOGE(TAG, "subscribe %s: qos must be 0, 1 or 2", filter);
        return MGO_ERR_INVALID;
    }
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_subscribe_ok;
    ro.onFailure5 = on_subscribe_fail;
    ro.context = m;
    int rc = MQTTAsync_subscribe(m->client, filter, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        return paho_err(rc, "subscribe");
    if (token_out != NULL)
        *token_out = ro.token;
    return MGO_OK;
}

mgo_err mgo_mqtt_publish(struct mgo_mqtt *m, const char *topic, const void *payload,
                         size_t payload_len, int qos, bool retain, int *token_out)
{
    mgo_err err = check_topic(topic, "publish");
    if (err != MGO_OK)
        return err;
    if (qos < 0 || qos > 2) {
        MGO_LOGE(TAG, "publish %s: qos must be 0, 1 or 2", topic);
        return MGO_ERR_INVALID;
    }
    if (payload_len > MGO_MAX_MESSAGE_BYTES) {
        MGO_LOGE(TAG, "publish %s: payload of %zu bytes exceeds %u", topic, payload_len,
                 MGO_MAX_MESSAGE_BYTES);
        return MGO_ERR_LIMIT;
    }
    if (payload_len > 0 && payload == NULL) {
        MGO_LOGE(TAG, "publish %s: NULL payload with a non-zero length", topic);
        return MGO_ERR_INVALID;
    }
    struct onode *o = calloc(1, sizeof *o);
    if (o == NULL)
        return MGO_ERR_NOMEM;
    o->m = m;
    o->len = payload_len;
    o->qos = qos;
    o->retain = retain;

    pthread_mutex_lock(&m->mu);
    if (!m->connected) {
        pthread_mutex_unlock(&m->mu);
        onode_free(o);
        MGO_LOGD(TAG, "publish %s: not connected", topic);
        return MGO_ERR_NET;
    }
    m->last_token = m->last_token == INT32_MAX ? 1 : m->last_token + 1;
    o->token = m->last_token;
    int token = o->token;
    /* Handed over at once, from the caller's buffers, when nothing waits and the window has
     * room, so Paho's own refusals still come back from this call; otherwise copied and
     * queued behind the others (only the owner's thread publishes, so order holds). */
    bool direct = !m->pumping && m->out_head == NULL && m->n_counted < m->window;
    MQTTAsync client = m->client;
    if (direct) {
        m->pumping = true;
        handed_add(m, o);
    }
    pthread_mutex_unlock(&m->mu);
    if (direct) {
        int rc = hand_over(client, o, topic, payload);
        pthread_mutex_lock(&m->mu);
        if (rc != MQTTASYNC_SUCCESS)
            handed_remove(m, o);
        m->pumping = false;
        pthread_mutex_unlock(&m->mu);
        if (rc != MQTTASYNC_SUCCESS) {
            onode_free(o);
            pump(m);
            return paho_err(rc, "publish");
        }
    } else {
        o->topic = strdup(topic);
        if (payload_len > 0 && o->topic != NULL && (o->payload = malloc(payload_len)) != NULL)
            memcpy(o->payload, payload, payload_len);
        if (o->topic == NULL || (payload_len > 0 && o->payload == NULL)) {
            onode_free(o);
            return MGO_ERR_NOMEM;
        }
        pthread_mutex_lock(&m->mu);
        if (!m->connected) { /* the connection went while copying: say so here */
            pthread_mutex_unlock(&m->mu);
            onode_free(o);
            MGO_LOGD(TAG, "publish %s: not connected", topic);
            return MGO_ERR_NET;
        }
        o->next = NULL;
        if (m->out_tail != NULL)
            m->out_tail->next = o;
        else
            m->out_head = o;
        m->out_tail = o;
        m->n_queued++;
        pthread_mutex_unlock(&m->mu);
    }
    pump(m);
    if (token_out != NULL)
        *token_out = token;
    return MGO_OK;
}

static struct qnode *pop(struct mgo_mqtt *m)
{
    pthread_mutex_lock(&m->mu);
    struct qnode *n = m->head;
    if (n != NULL) {
        m->head = n->next;
        if (m->head == NULL)
            m->tail = NULL;
        if (n->ev.kind == MGO_MQTT_EV_MESSAGE)
            m->n_messages--;
        if (m->head == NULL)
            m->behind = false;
    }
    pthread_mutex_unlock(&m->mu);
    return n;
}

mgo_err mgo_mqtt_next(struct mgo_mqtt *m, int timeout_ms, struct mgo_mqtt_event *ev)
{
    memset(ev, 0, sizeof *ev);
    int64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    for (;;) {
        if (atomic_exchange(&m->wake_requested, 0) != 0)
            return MGO_ERR_TIMEOUT;
        struct qnode *n = pop(m);
        if (n != NULL) {
            *ev = n->ev;
            free(n);
            return MGO_OK;
        }
        int wait_ms;
        if (timeout_ms < 0) {
            wait_ms = -1; /* negative: wait until an event or a wake */
        } else if (timeout_ms == 0) {
            /* consume the readiness an owner's loop polls (mgo_mqtt_fd), then look once
             * more: a push between the empty pop and this read bumped the fd before we
             * cleared it, and its event is in the queue now */
            uint64_t count;
            ssize_t r = read(m->wake_fd, &count, sizeof count);
            (void)r; /* EAGAIN: not readable; nothing to consume */
            n = pop(m);
            if (n != NULL) {
                *ev = n->ev;
                free(n);
                return MGO_OK;
            }
            return MGO_ERR_TIMEOUT;
        } else {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return MGO_ERR_TIMEOUT;
            wait_ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = m->wake_fd, .events = POLLIN, .revents = 0};
        int pr = poll(&pfd, 1, wait_ms);
        if (pr < 0 && errno != EINTR) {
            MGO_LOGE(TAG, "poll: %s", strerror(errno));
            return MGO_ERR_IO;
        }
        if (pr > 0) {
            uint64_t count;
            ssize_t r = read(m->wake_fd, &count, sizeof count);
            (void)r; /* EAGAIN: another reader drained it; the queue check decides */
        }
    }
}

void mgo_mqtt_event_cleanup(struct mgo_mqtt_event *ev)
{
    if (ev == NULL)
        return;
    free(ev->topic);
    free(ev->payload);
    memset(ev, 0, sizeof *ev);
}

int mgo_mqtt_fd(const struct mgo_mqtt *m)
{
    return m->wake_fd;
}

void mgo_mqtt_wake(struct mgo_mqtt *m)
{
    if (m == NULL)
        return;
    atomic_store(&m->wake_requested, 1);
    uint64_t one = 1;
    ssize_t n = write(m->wake_fd, &one, sizeof one);
    (void)n;
}

void mgo_mqtt_depths(struct mgo_mqtt *m, size_t *received, size_t *outgoing)
{
    pthread_mutex_lock(&m->mu);
    *received = m->n_messages;
    *outgoing = m->n_queued + m->n_counted;
    pthread_mutex_unlock(&m->mu);
}

size_t mgo_mqtt_retired(struct mgo_mqtt *m)
{
    pthread_mutex_lock(&m->mu);
    size_t n = m->n_retired;
    pthread_mutex_unlock(&m->mu);
    return n;
}
