/* mqtt.h - the MQTT 5 client of margo-mqtt (wraps Paho MQTTAsync; only common/src/mqtt.c
 * includes Paho headers).
 *
 * Threading: Paho calls back on its own threads; the wrapper copies every message and
 * connection event into a queue and returns at once. The owner's loop thread drains the
 * queue with mgo_mqtt_next(); all of the owner's state stays on that thread. Messages are
 * never refused: Paho has already sent the PUBACK when it offers a message, so a refusal
 * would only move the message to Paho's own queue and slow its delivery. An owner that
 * falls behind is warned about (queue_warn); order is kept and nothing is dropped.
 *
 * Reconnects are the owner's decision (the agent has downtime windows and jittered
 * backoff; see mgo/backoff.h): after MGO_MQTT_EV_DISCONNECTED call mgo_mqtt_connect()
 * again when the owner's policy says so. */
#ifndef MGO_MQTT_H
#define MGO_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mgo/err.h"

struct mgo_mqtt;

struct mgo_mqtt_will {
    const char *topic;
    const void *payload;
    size_t payload_len;
    int qos;
    bool retain;
};

struct mgo_mqtt_config {
    const char *url;            /* "tcp://127.0.0.1:1883" or "ssl://host:8883"; required */
    const char *client_id;      /* required; the persistent session is keyed on it */
    bool clean_start;           /* false = resume the persistent session */
    uint32_t session_expiry_s;  /* MQTT 5 session expiry interval (0 = ends at disconnect) */
    uint16_t keepalive_s;       /* default 30 when 0 */
    uint32_t connect_timeout_s; /* default 10 when 0 */
    /* TLS (used when url starts with ssl:// or mqtts://); NULL = not set */
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    const char *username;             /* optional */
    const char *password;             /* optional; never logged */
    const struct mgo_mqtt_will *will; /* optional last will */
    /* Received messages waiting for the owner before a warning that it falls behind (default
     * 4096 when 0). Never a limit: Paho acknowledges QoS 1 messages as it reads them, so
     * refusing one would not slow the broker down (see common/src/mqtt.c). */
    size_t queue_warn;
    size_t max_inflight; /* default 64 when 0 */
};

enum mgo_mqtt_event_kind {
    MGO_MQTT_EV_CONNECTED = 1,  /* session_present tells whether the broker kept our session */
    MGO_MQTT_EV_CONNECT_FAILED, /* reason holds the MQTT reason code or a Paho code */
    MGO_MQTT_EV_DISCONNECTED,   /* connection lost */
    MGO_MQTT_EV_MESSAGE,        /* topic, payload, retained */
    MGO_MQTT_EV_PUBLISHED,      /* token: the broker acknowledged that publish (QoS 1) */
    MGO_MQTT_EV_PUBLISH_FAILED, /* token: the publish was not acknowledged */
    MGO_MQTT_EV_SUBSCRIBED,     /* token */
    MGO_MQTT_EV_SUBSCRIBE_FAILED,
};

struct mgo_mqtt_event {
    enum mgo_mqtt_event_kind kind;
    char *topic;      /* owned (MESSAGE) */
    uint8_t *payload; /* owned (MESSAGE); may be NULL when payload_len is 0 */
    size_t payload_len;
    bool retained;
    uint64_t arrived_ns; /* MESSAGE: when the wrapper took it from Paho (mgo_metrics_now_ns) */
    bool session_present;
    int token;
    int reason;
};

/* Creates the client (no network yet). Copies every string of cfg. */
mgo_err mgo_mqtt_new(const struct mgo_mqtt_config *cfg, struct mgo_mqtt **out) MGO_MUST_CHECK;
/* Disconnects if needed and frees everything, including queued events. NULL is fine. */
void mgo_mqtt_free(struct mgo_mqtt *m);

/* Starts an asynchronous connect; the outcome arrives as CONNECTED or CONNECT_FAILED. */
mgo_err mgo_mqtt_connect(struct mgo_mqtt *m) MGO_MUST_CHECK;
/* Clean disconnect (no last will), waiting at most timeout_ms. */
mgo_err mgo_mqtt_disconnect(struct mgo_mqtt *m, int timeout_ms) MGO_MUST_CHECK;
bool mgo_mqtt_is_connected(const struct mgo_mqtt *m);

/* Owner's thread: a reload of the TLS files (NULL = not set; names copied). Paho reads the
 * files at each connect, so the next connect uses the new names and the new contents of the
 * old ones. When the client uses TLS, is connected, and the names or a file's identity
 * (device, inode, size, modification time) differ from what the last connect read, the
 * connection is dropped as if it were lost: MGO_MQTT_EV_DISCONNECTED follows and queued
 * publishes fail, as for a loss, so the owner's reconnect policy reconnects with the new
 * files (a clean disconnect: the broker does not send the will). *dropped_out tells whether
 * that happened. MGO_ERR_NOMEM (nothing changed). */
mgo_err mgo_mqtt_reload_tls(struct mgo_mqtt *m, const char *ca_file, const char *cert_file,
                            const char *key_file, bool *dropped_out) MGO_MUST_CHECK;

/* Asynchronous subscribe; token_out (optional) matches the SUBSCRIBED event. */
mgo_err mgo_mqtt_subscribe(struct mgo_mqtt *m, const char *filter, int qos,
                           int *token_out) MGO_MUST_CHECK;
/* Asynchronous publish (payload copied). MGO_ERR_NET when not connected.
 * token_out (optional) matches the PUBLISHED / PUBLISH_FAILED event. An empty retained
 * payload clears the retained message. */
mgo_err mgo_mqtt_publish(struct mgo_mqtt *m, const char *topic, const void *payload,
                         size_t payload_len, int qos, bool retain, int *token_out) MGO_MUST_CHECK;

/* Takes the next event, waiting at most timeout_ms (0 = poll). MGO_ERR_TIMEOUT when none
 * arrived; the caller then owns *ev and releases it with mgo_mqtt_event_cleanup(). */
mgo_err mgo_mqtt_next(struct mgo_mqtt *m, int timeout_ms, struct mgo_mqtt_event *ev) MGO_MUST_CHECK;
void mgo_mqtt_event_cleanup(struct mgo_mqtt_event *ev);
/* A descriptor that becomes readable (POLLIN) when events may be queued, for an owner that
 * runs an event loop (mgo/loop.h): on readiness it takes events with mgo_mqtt_next(m, 0, ..)
 * until MGO_ERR_TIMEOUT. That final empty call consumes the readiness; an owner that stops
 * taking events earlier (to let other work in) must come back by itself (a post or a 0 ms
 * timer), since the descriptor stays readable only until consumed. Owned by the client. */
int mgo_mqtt_fd(const struct mgo_mqtt *m);
/* Makes a waiting mgo_mqtt_next() return MGO_ERR_TIMEOUT now (async-signal-safe: a pipe write). */
void mgo_mqtt_wake(struct mgo_mqtt *m);
/* Queue depths (any thread): received messages the owner has not taken yet, and publishes
 * queued or handed to Paho whose acknowledgement has not arrived (docs/operations.md
 * "Metrics"). */
void mgo_mqtt_depths(struct mgo_mqtt *m, size_t *received, size_t *outgoing);
/* Paho clients this client retired (any thread): a Paho client whose QoS 1/2 publish failed
 * on a dead socket is never reconnected nor destroyed; the next connect uses a new one
 * (common/src/mqtt.c, "Retiring", docs/reliability.md). */
size_t mgo_mqtt_retired(struct mgo_mqtt *m);

#endif
