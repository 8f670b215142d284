/* livebus.h - the API's live event stream across several managers (share-group on a
 * PostgreSQL store; docs/scaling.md "Several managers", docs/api.md "GET /events").
 *
 * The broker hands each device message to one manager of the group, so no manager alone sees
 * every change. Each manager NOTIFYs the live events of what it stored on the channel
 * MGO_LIVEBUS_CHANNEL, in the transaction that stores it (ingest.c through
 * mgo_mgr_store_notify), and every manager, itself included, LISTENs on a connection of its
 * own and hands what arrives to its event-stream hub (sse.c). PostgreSQL delivers
 * notifications in commit order, and a device's statuses are committed in order under its row
 * lock, so every stream of every manager sees the same events in the same order.
 *
 * A payload is "EVENT\tDEPLOYMENT\tJSON" (DEPLOYMENT empty for events about no deployment).
 * A status event too long for one notification goes as "status-ref\tDEPLOYMENT\t": the
 * listener reads that deployment's current status from the store and sends it. Any other
 * event too long for one goes in parts, "EVENT+K\tDEPLOYMENT\tPART" for part K = 1, 2, ...
 * and the last as "EVENT\tDEPLOYMENT\tPART", each part cut at a UTF-8 character boundary (a
 * payload must be valid text); the listener joins them. The parts of an event are sent in
 * one statement, so in one transaction, whose notifications PostgreSQL queues together, in
 * order, at its commit; K also keeps two equal parts from being folded into one (PostgreSQL
 * delivers equal notifications of one transaction once).
 *
 * While the listening connection is down (lost, not yet connected) events cannot be relayed:
 * every open stream is ended then, so its client reconnects and starts again from a
 * snapshot, and the connection is made again with a backoff (1 s doubling to 30 s). The
 * connection is made without blocking the loop (PQconnectStart / PQconnectPoll), and given
 * up when it (with its LISTEN) is not made within 10 s. */
#ifndef MGO_MGR_LIVEBUS_H
#define MGO_MGR_LIVEBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"
#include "mgo/loop.h"
#include "mgo/mgr_store.h"
#include "sse.h"

#define MGO_LIVEBUS_CHANNEL "margo_live"

struct mgo_livebus;

/* Loop thread: starts connecting to url (a PostgreSQL URL) in the background; events go to
 * hub, status references are read from store. */
mgo_err mgo_livebus__new(struct mgo_loop *loop, const char *url, struct mgo_mgr_store *store,
                         struct mgo_sse_hub *hub, struct mgo_livebus **out) MGO_MUST_CHECK;
void mgo_livebus__free(struct mgo_livebus *b); /* NULL is fine */
/* Whether the listening connection is up now (tests, readiness). */
bool mgo_livebus__listening(const struct mgo_livebus *b);
/* Notifications relayed to the hub so far. */
uint64_t mgo_livebus__relayed(const struct mgo_livebus *b);

/* The longest event JSON sent in parts (a device event's live JSON is at most this long). */
#define MGO_LIVEBUS_EVENT_MAX (64u * 1024u)

/* The payloads of one event (see above) appended to out, one after the other, each
 * NUL-terminated; *n: how many. On an error nothing is appended: MGO_ERR_LIMIT for an event
 * JSON longer than MGO_LIVEBUS_EVENT_MAX (not a status: that goes as a reference), or past
 * out's bound. */
mgo_err mgo_livebus__payloads(const char *event, const char *deployment_id, const char *json,
                              struct mgo_buf *out, size_t *n) MGO_MUST_CHECK;
/* PostgreSQL: the n payloads in `payloads` (as mgo_livebus__payloads makes them) NOTIFYed on
 * MGO_LIVEBUS_CHANNEL in one statement (at the commit of the transaction open on store, if
 * one is). Errors of the store, MGO_ERR_NOMEM. */
mgo_err mgo_livebus__send(struct mgo_mgr_store *store, const struct mgo_buf *payloads,
                          size_t n) MGO_MUST_CHECK;
/* One event: mgo_livebus__payloads, then mgo_livebus__send. Their errors. */
mgo_err mgo_livebus__notify(struct mgo_mgr_store *store, const char *event,
                            const char *deployment_id, const char *json) MGO_MUST_CHECK;

#endif
