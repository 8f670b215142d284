/* outbox.c - the outbox interface (outbox.h) and the outbox over the manager's MQTT client. */
#include "outbox.h"

#include "mgo/mqtt.h"

mgo_err mgo_outbox__send(const struct mgo_outbox *ob, enum mgo_topic_kind kind, const char *topic,
                         const void *payload, size_t len, int *token_out)
{
    return ob->publish(ob->ctx, topic, payload, len, mgo_topic_qos(kind), mgo_topic_retained(kind),
                       token_out);
}

bool mgo_outbox__connected(const struct mgo_outbox *ob)
{
    return ob->connected(ob->ctx);
}

static mgo_err mqtt_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos,
                            bool retain, int *token_out)
{
    struct mgo_mqtt_outbox *mo = ctx;
    return mgo_mqtt_publish(mo->mqtt, topic, payload, len, qos, retain, token_out);
}

static bool mqtt_connected(void *ctx)
{
    const struct mgo_mqtt_outbox *mo = ctx;
    return mo->connected;
}

void mgo_outbox__mqtt_init(struct mgo_outbox *ob, struct mgo_mqtt_outbox *mo)
{
    ob->publish = mqtt_publish;
    ob->connected = mqtt_connected;
    ob->ctx = mo;
}
