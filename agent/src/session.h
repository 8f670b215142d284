/* session.h - the agent's MQTT session (private to agent/).
 *
 * Owns the MQTT client: connects (persistent session, last will "offline"), reconnects on a
 * monotonic loop timer with jittered exponential backoff, makes no attempt inside a
 * downtime window, publishes presence and capabilities, subscribes to desired state,
 * deployment documents and the manager's receipt, and routes what arrives: a message on a foreign
 * topic or larger than the limit is refused, desired state and documents must carry a valid manager
 * signature when keys are configured, the rest goes to the handlers.
 *
 * Loop thread only. The session calls no other agent file: what it receives goes out
 * through the handlers that agent.c wires in, so nothing calls back into it from below. */
#ifndef MGO_AGENT_SESSION_H
#define MGO_AGENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/agent.h"
#include "mgo/err.h"
#include "mgo/loop.h"
#include "mgo/margo.h"
#include "mgo/topic.h"

#define MGO_SESSION_VERSION "0.1.0"  /* agentVersion in presence */
#define MGO_SESSION_MAX_DOWNTIME 32u /* downtime windows */
#define MGO_SESSION_MAX_KEYS 8u      /* manager signing keys (rotation) */

struct mgo_session;

struct mgo_session_handlers {
    void *ctx;
    /* Connected: presence, capabilities and subscriptions are already handed to MQTT.
     * session_present: the broker kept this client's session (false on the first connect,
     * after the session expired, or when the broker lost its store). */
    void (*connected)(void *ctx, bool session_present);
    void (*disconnected)(void *ctx);
    /* The broker acknowledged (ok) or did not acknowledge a publish with a token. */
    void (*published)(void *ctx, int token, bool ok);
    /* Payloads are valid during the call only (copy what is kept). */
    void (*desired)(void *ctx, const uint8_t *payload, size_t len);
    void (*deployment)(void *ctx, const char *deployment_id, const uint8_t *payload, size_t len);
    /* The manager's receipt (docs/protocol.md §6.3), decoded and checked for this device. */
    void (*receipt)(void *ctx, const struct mgo_receipt *receipt);
};

/* Creates the session (no network yet) and loads the manager keys: a key that does not
 * load stops the start before the state directory is touched. cfg and loop are borrowed
 * for the session's life. MGO_ERR_INVALID/IO/CRYPTO (logged), MGO_ERR_NOMEM. */
mgo_err mgo_session_new(const struct mgo_agent_config *cfg, struct mgo_loop *loop,
                        const struct mgo_session_handlers *h,
                        struct mgo_session **out) MGO_MUST_CHECK;
/* Says "offline" itself when connected (a clean disconnect does not fire the will), waits
 * up to 2 s for the broker's acknowledgements (delivered to handlers.published), and
 * disconnects. Then frees. Call after the loop stopped. NULL is fine. */
void mgo_session_free(struct mgo_session *s);

/* Reads the password file, creates the MQTT client (last will: offline presence of this
 * boot), watches its queue and makes the first connection attempt. MGO_ERR_IO (password
 * file, logged), MGO_ERR_NOMEM. */
mgo_err mgo_session_start(struct mgo_session *s, uint64_t boot) MGO_MUST_CHECK;

bool mgo_session_connected(const struct mgo_session *s);

/* A reload's TLS files (mgo_mqtt_reload_tls): the next connect reads them; when they changed
 * while connected the connection is dropped and the usual reconnect follows. *dropped_out
 * tells. Before mgo_session_start there is no client yet: MGO_OK, nothing dropped (the start
 * reads cfg). MGO_ERR_NOMEM. */
mgo_err mgo_session_reload_tls(struct mgo_session *s, const char *ca_file, const char *cert_file,
                               const char *key_file, bool *dropped_out) MGO_MUST_CHECK;

/* Publishes on this device's topic of that kind (QoS and retain from the topics table).
 * token_out (optional) matches handlers.published. MGO_ERR_NET when not connected. */
mgo_err mgo_session_publish(struct mgo_session *s, enum mgo_topic_kind kind, const char *dep_id,
                            const void *payload, size_t len, int *token_out) MGO_MUST_CHECK;

/* Logs one line and, when connected, publishes a device event (events are not journaled). */
void mgo_session_event(struct mgo_session *s, const char *type, const char *severity,
                       const char *dep_id, bool has_version, uint64_t version, const char *msg);

/* Detects capabilities again (which runtimes are usable is the caller's knowledge) and
 * publishes them when they changed. MGO_ERR_INVALID for a bad override (logged). */
mgo_err mgo_session_refresh_caps(struct mgo_session *s, bool compose_available,
                                 bool helm_available) MGO_MUST_CHECK;
/* The capabilities document last detected (canonical MessagePack, owned by the session,
 * valid until the next refresh), or NULL before the first one. The HTTP transport sends it
 * to the WFM in Margo's JSON form. */
const uint8_t *mgo_session_caps(const struct mgo_session *s, size_t *len_out);

#endif
