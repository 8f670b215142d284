/* http_transport.h - margo-agent as a standard Margo HTTP client (private to agent/;
 * `transport http`, docs/agent.md "HTTP transport").
 *
 * On the loop thread, with every request run by the WFM client's worker thread
 * (wfm_client.h), so the loop never waits for the network:
 *   - PUT /api/v1/capabilities/{deviceId} at start and whenever the capabilities change;
 *   - GET /api/v1/deployments every poll-interval inside the polling windows and outside the
 *     downtime windows, with If-None-Match (the strong ETag of the last manifest seen);
 *     429/503 (and 500) wait for Retry-After, other failures back off exponentially;
 *   - a manifest whose manifestVersion is greater than the accepted (and the last handed)
 *     one: each deployment YAML is fetched by digest, checked (wfm.h) and converted into the
 *     agent's internal document; only when all are good are they handed to the executor
 *     (documents first, then the internal manifest), through the handlers agent.c installs;
 *   - statuses: the reporter's HTTP delivery (mgo_http_transport_delivery): POST
 *     /api/v1/deployments/{id}/status, one at a time; a 2xx settles the journal entry.
 * Over HTTP the trust is mutual TLS: documents carry no signature (docs/protocol.md §5.2 is
 * the MQTT binding's), and manager-public-key is refused with this transport. Events are
 * only logged (Margo has no event route). Calls wfm.c, wfm_client.c, downtime.c and the
 * session (capabilities bytes, read only); nothing calls back into it except the reporter
 * through its delivery. */
#ifndef MGO_AGENT_HTTP_TRANSPORT_H
#define MGO_AGENT_HTTP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/agent.h"
#include "mgo/loop.h"
#include "reporter.h"
#include "session.h"
#include "state.h"

#define MGO_HTTP_MAX_POLL_WINDOWS 32u

struct mgo_http_handlers {
    void *ctx;
    /* Verified documents and manifests in the agent's internal form (canonical MessagePack),
     * as the MQTT session delivers them: valid during the call only. */
    void (*desired)(void *ctx, const uint8_t *payload, size_t len);
    void (*deployment)(void *ctx, const char *deployment_id, const uint8_t *payload, size_t len);
    /* A status send ended: ok = the WFM stored it (or refused it for good: logged). */
    void (*published)(void *ctx, int token, bool ok);
    /* Sending statuses is possible again (a back-off or a downtime window ended). */
    void (*ready)(void *ctx);
};

struct mgo_http_transport;

/* Everything is borrowed for the transport's life (st: manifest_version is read only). */
mgo_err mgo_http_transport_new(const struct mgo_agent_config *cfg, struct mgo_loop *loop,
                               const struct mgo_agent_state *st, struct mgo_session *session,
                               const struct mgo_http_handlers *h,
                               struct mgo_http_transport **out) MGO_MUST_CHECK;
/* Aborts the request in progress and joins the worker. NULL is fine. */
void mgo_http_transport_free(struct mgo_http_transport *t);

/* Starts: capabilities, then the first poll. */
mgo_err mgo_http_transport_start(struct mgo_http_transport *t) MGO_MUST_CHECK;
/* The capabilities may have changed (after a refresh): sent again when they did. */
void mgo_http_transport_caps_changed(struct mgo_http_transport *t);

/* The reporter's delivery over HTTP (max_inflight 1, ack_is_stored). */
/* A reload's TLS files (SIGHUP): requests started from now on use them. The new certificate
 * must be an SVID of this device naming the same WFM (the WFM's identity needs a restart).
 * MGO_ERR_INVALID (logged; the running files are kept), MGO_ERR_NOMEM. */
mgo_err mgo_http_transport_reload_tls(struct mgo_http_transport *t, const char *ca_file,
                                      const char *cert_file, const char *key_file) MGO_MUST_CHECK;
struct mgo_reporter_delivery mgo_http_transport_delivery(struct mgo_http_transport *t);

#endif
