/* mgr_internal.h - the manager's file map, and the one macro every module shares.
 *
 *   manager.c  lifecycle, configuration table, the loop: MQTT events, reconnect, timers;
 *              wiring of the modules below (owns struct mgo_manager)
 *   ingest.c   device messages into the store: batches, held messages, live events
 *   publish.c  fleet publishing: documents, manifests, clearing, the after-connect sweep,
 *              manifest acknowledgements (narrow context: store, outbox, prefix, key)
 *   outbox.c   the outbox interface and the outbox over the MQTT client
 *   events.c   the event stream's JSON (status, capabilities, presence, device-event)
 *   http.c     libmicrohttpd: auth, bodies, its request queue to the loop thread
 *   api.c      API routes and replies (loop thread)
 *   overview.c GET /overview: the fleet overview's reply (store reads only)
 *   deploy.c   deploy / update / remove: store transaction, then publish.c
 *   lookup.c   stored apps and capabilities decoded for use
 *   sse.c      the event-stream hub (loop thread -> HTTP threads)
 *   metrics.c  the manager's metrics; GET /metrics, /healthz, /readyz (loop thread)
 *   store.c    SQLite store (mgo/mgr_store.h); jw.c JSON writer; web.c embedded front end
 *   southbound.c  the southbound Margo HTTP API (docs/margo-http.md): routing, handlers
 *              (loop thread); southbound_id.c client SVIDs, trust bundle; southbound_doc.c
 *              deployment YAML, bundles; southbound_clients.c the accepted-client list (API)
 *   rollout.c  fleet rollouts: commands, the engine's tick, summaries; rollout_create.c
 *              a rollout's checks, targets and batches
 *   api_rollout.c  rollout and label routes, the paged device list
 *   labels.c   a device's labels; selector.c label selectors (mgo/selector.h)
 *   rollup.c   fleet roll-ups on retained topics
 *   lease.c    the leases of several managers (share-group): holder name, member lease,
 *              the publisher lease's term and local deadline
 *
 * Calls go one way (docs/architecture.md has the diagram):
 *   manager.c -> http.c -> api.c -> deploy.c -> publish.c -> outbox.c
 *   manager.c -> http.c -> southbound.c -> ingest.c, publish.c, outbox.c, store.c
 *   http.c -> southbound_id.c;  southbound.c -> southbound_doc.c;  api.c -> southbound_clients.c
 *   manager.c -> ingest.c -> publish.c;  manager.c -> publish.c (acks, sweep), outbox.c, sse.c
 *   ingest.c, api.c -> events.c;  ingest.c, api.c, http.c -> sse.c;  http.c -> web.c
 *   api.c -> overview.c -> jw.c;  api.c, deploy.c -> lookup.c;  manager, ingest, publish, deploy,
 *   api, lookup -> store.c
 *   http.c -> metrics.c -> api.c (problem replies), store.c;  metrics.c reads the depths
 *   through a callback of manager.c; ingest.c and store.c only bump its counters
 *   manager.c -> rollout.c, rollup.c;  api.c -> api_rollout.c -> rollout*.c, labels.c
 *   rollout_create.c -> labels.c, lookup.c, match.c (never rollout.c)
 *   rollout.c -> deploy.c, publish.c, labels.c, lookup.c;  rollup.c -> rollout.c, outbox.c
 *   ingest.c -> (on_status hook, set by manager.c: brings the rollout timer forward)
 *   manager.c -> lease.c -> store.c
 *   manager.c -> livebus.c -> sse.c, events.c, store.c;  ingest.c, southbound.c -> livebus.c
 *   (its payloads and notify)
 * No file calls back into one that calls it. */
#ifndef MGO_MGR_INTERNAL_H
#define MGO_MGR_INTERNAL_H

#include "mgo/err.h"

/* Deliberately ignores a result (a (void) cast does not silence warn_unused_result). */
#define MGO_IGNORE(expr)                                                                           \
    do {                                                                                           \
        mgo_err ignored_ = (expr);                                                                 \
        (void)ignored_;                                                                            \
    } while (0)

#endif
