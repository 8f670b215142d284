/* outbox.h - where fleet publishing hands its messages (publish.c never sees the MQTT
 * client). The manager's outbox wraps mgo_mqtt_publish; the unit tests use a recording
 * outbox (tests/manager/outbox_rec.h), so publishing is tested without a broker.
 *
 * QoS and retain of every message come from the topics table (mgo_topic_qos,
 * mgo_topic_retained) by topic kind, in mgo_outbox__send: no call site chooses them. */
#ifndef MGO_MGR_OUTBOX_H
#define MGO_MGR_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/err.h"
#include "mgo/topic.h"

struct mgo_mqtt;

struct mgo_outbox {
    /* Hands one message over (payload copied or sent before returning). token_out (may be
     * NULL) receives the id that the acknowledgement will carry (mgo_publish__acked).
     * MGO_ERR_NET when there is no connection. */
    mgo_err (*publish)(void *ctx, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, int *token_out);
    /* Whether publishing can work now (false: leave it for the after-connect sweep). */
    bool (*connected)(void *ctx);
    void *ctx;
};

/* Publishes payload on topic, a topic of the given kind, with that kind's QoS and retain
 * flag from the topics table. Errors of ob->publish. */
mgo_err mgo_outbox__send(const struct mgo_outbox *ob, enum mgo_topic_kind kind, const char *topic,
                         const void *payload, size_t len, int *token_out) MGO_MUST_CHECK;
bool mgo_outbox__connected(const struct mgo_outbox *ob);

/* The manager's outbox: its MQTT client. The loop (manager.c) sets connected when the
 * broker accepts the connection and clears it when the connection goes. */
struct mgo_mqtt_outbox {
    struct mgo_mqtt *mqtt;
    bool connected;
};
void mgo_outbox__mqtt_init(struct mgo_outbox *ob, struct mgo_mqtt_outbox *mo);

#endif
