/* ingest.h - device messages into the store: status, capabilities, presence and events
 * (docs/protocol.md §5), in batches of one store transaction, with the messages the store
 * could not take held in arrival order and retried.
 *
 * Every message handed here was already acknowledged to the broker, so none is dropped for
 * a store failure: a message the store refuses is held; a batch whose commit fails is rolled
 * back and all its messages are held, in order, ahead of those that came after. Live events
 * (the API's event stream) and receipts (protocol.md §6.3: "every status of this device up
 * to here is stored") go out only once the transaction holding their change is committed.
 * Statuses come from the status and the replay topics alike. Loop thread only. */
#ifndef MGO_MGR_INGEST_H
#define MGO_MGR_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "publish.h"
#include "mgo/mgr_store.h"

/* Held messages at most; past it the oldest is dropped with an error line (the device's
 * retained state still converges), so a store that never comes back cannot eat all memory. */
#define MGO_INGEST_MAX_HELD 65536u
/* Messages ingested in one store transaction at most (the loop ends a batch there, so HTTP
 * requests keep being answered). */
#define MGO_INGEST_BATCH_MAX 512u

struct mgo_sse_hub;
struct mgo_mgr_metrics;
struct mgo_ingest_msg;
struct mgo_ingest_live;

/* A receipt to publish once the batch holding its statuses is committed. */
struct mgo_ingest_receipt {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char epoch[MGO_MGR_EPOCH_SIZE];
    uint64_t boot, seq;
};

struct mgo_ingest {
    struct mgo_mgr_store *store;
    struct mgo_publisher *pub; /* clears a removed deployment's document */
    struct mgo_sse_hub *hub;   /* live events; NULL: none */
    /* several managers on PostgreSQL (livebus.h): every live event is NOTIFYed in the batch's
     * transaction, whether or not a stream of this manager wants it, and reaches this
     * manager's streams too through its listener, never directly */
    bool notify_live;
    const char *prefix;
    struct mgo_mgr_metrics *metrics; /* messages counted by kind and result; NULL: none */
    /* per-device rates (docs/security.md "Bounded storage"), messages a minute; 0 = none.
     * Events past event_rate are not stored (counted: eventsDropped); statuses past
     * status_rate are stored all the same and counted (statusesOverRate): a journaled status
     * is covered by the receipt protocol and must not be lost (protocol.md §6.3). */
    uint32_t event_rate;
    uint32_t status_rate;
    uint64_t roles_refused; /* messages from role identities refused (for the log) */
    bool in_batch;
    bool tx; /* the batch's transaction is open */
    /* messages of the open batch, kept until it is committed */
    struct mgo_ingest_msg *batch_head, *batch_tail;
    size_t batch_len;
    /* live events of the open batch, sent once it is committed */
    struct mgo_ingest_live *live_head, *live_tail;
    /* receipts of the open batch (docs/protocol.md §6.3), published after its commit */
    struct mgo_ingest_receipt *receipts;
    size_t receipts_len, receipts_cap;
    char next_epoch[MGO_MGR_EPOCH_SIZE]; /* taken by the next device whose positions gap */
    /* called after a committed batch that changed a deployment's state (NULL: none), so
     * rollouts look at their devices soon without ingest calling them (rollout.h) */
    void (*on_status)(void *ctx);
    void *on_status_ctx;
    bool status_changed; /* in the open batch */
    /* messages the store could not take, oldest first */
    struct mgo_ingest_msg *held_head, *held_tail;
    size_t held_len;
};

/* The pointers must outlive in. */
void mgo_ingest__init(struct mgo_ingest *in, struct mgo_mgr_store *store, struct mgo_publisher *pub,
                      struct mgo_sse_hub *hub, const char *prefix);
/* Frees everything; held messages are logged as lost (their retained state comes back with
 * the next subscription). An open batch is rolled back. */
void mgo_ingest__cleanup(struct mgo_ingest *in);

/* Opens a batch: the following messages share one store transaction (one WAL sync for a
 * burst of statuses instead of one each). */
void mgo_ingest__begin(struct mgo_ingest *in);
/* Ingests one message, taking ownership of topic and payload (malloc'd; payload may be NULL
 * when len is 0). Outside a batch it is a batch of one. Never fails: a message that cannot
 * be stored now is held. */
void mgo_ingest__message(struct mgo_ingest *in, char *topic, uint8_t *payload, size_t len);
/* The same for a DeploymentStatus a device bound to HTTP POSTed on the southbound API
 * (southbound.c; topic: its MQTT status topic, payload: the status as MessagePack). Statuses
 * arriving over MQTT for a device bound to HTTP are not ingested (they are the manager's own
 * copies, published for monitors). */
void mgo_ingest__http_status(struct mgo_ingest *in, char *topic, uint8_t *payload, size_t len);
/* Commits the batch and sends its live events. When the commit fails the batch is rolled
 * back, its messages are held (in order, before any held later) and the store's error is
 * returned. */
mgo_err mgo_ingest__commit(struct mgo_ingest *in) MGO_MUST_CHECK;

/* A fresh receipt epoch: 16 hex digits from the system's random source. */
void mgo_ingest__new_epoch(char out[MGO_MGR_EPOCH_SIZE]);

/* Messages held now. */
size_t mgo_ingest__held(const struct mgo_ingest *in);
/* Retries held messages in order (at most max), each in its own transaction; stops at the
 * first the store still refuses. Returns how many remain held. */
size_t mgo_ingest__retry_held(struct mgo_ingest *in, size_t max);

#endif
