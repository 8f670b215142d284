/* mqtt_client.h - MQTT clients of tests (the project's own mgo_mqtt, so tests speak to the
 * broker as the daemons do): connecting and waiting for it, publishing and waiting for the
 * broker's acknowledgement, and YAML/JSON text sent as the MessagePack documents of the wire.
 * Call from one thread per client; the events a wait passes over are dropped. */
#ifndef MGO_TEST_MQTT_CLIENT_H
#define MGO_TEST_MQTT_CLIENT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/err.h"
#include "mgo/mqtt.h"
#include "mgo/value.h"

/* A client of url connected within wait_ms: clean start when session_expiry_s is 0, else a
 * persistent session kept that long. NULL (after a message on stderr) when it could not. */
struct mgo_mqtt *mgo_test_mqtt_connect(const char *url, const char *client_id,
                                       uint32_t session_expiry_s, int wait_ms);
/* Publishes at QoS 1 and waits at most wait_ms for the broker's acknowledgement.
 * MGO_ERR_TIMEOUT when none came, MGO_ERR_NET when the publish failed. */
mgo_err mgo_test_mqtt_publish_wait(struct mgo_mqtt *m, const char *topic, const void *data,
                                   size_t len, bool retain, int wait_ms);
/* YAML (or JSON) text -> tree in arena; MGO_ERR_PARSE after printing the problem. */
mgo_err mgo_test_yaml(const char *text, struct mgo_arena *arena, struct mgo_value *out);
/* YAML (or JSON) text -> MessagePack appended to out (initialised by the caller). */
mgo_err mgo_test_yaml_msgpack(const char *text, struct mgo_buf *out);
/* YAML (or JSON) text published as MessagePack at QoS 1; with wait_ms > 0 waits that long
 * for the broker's acknowledgement, else returns once it is queued. */
mgo_err mgo_test_publish_yaml(struct mgo_mqtt *m, const char *topic, bool retain, const char *text,
                              int wait_ms);

/* The same with the text made by printf from fmt (at most 16 KiB). */
mgo_err mgo_test_publish_yamlf(struct mgo_mqtt *m, const char *topic, bool retain, int wait_ms,
                               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
mgo_err mgo_test_publish_vyamlf(struct mgo_mqtt *m, const char *topic, bool retain, int wait_ms,
                                const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

#endif
