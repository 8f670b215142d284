/* publish.h - fleet publishing: a device's deployment documents and desired-state manifest,
 * clearing retained documents of removed deployments, the sweep after a connect, encoding
 * (and signing) documents, receipts of stored statuses, and which manifests the broker has
 * acknowledged (docs/protocol.md §6-7).
 *
 * Works on a narrow context (the store, an outbox, the topic prefix, the signing key), never
 * on the daemon: the unit tests drive it with a temporary store and a recording outbox.
 * Loop thread only. Nothing here calls back into its callers. */
#ifndef MGO_MGR_PUBLISH_H
#define MGO_MGR_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "outbox.h"
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/mgr_store.h"
#include "mgo/sign.h"
#include "mgo/value.h"

/* Manifest publishes waiting for the broker's acknowledgement at most (the publish window).
 * A device whose manifest would go past it is left in the store, unacknowledged, and
 * mgo_publish__poll sends it once acknowledgements make room: memory, the MQTT queue and the
 * work of one loop turn stay bounded however many devices one change touches, and every
 * acknowledgement finds its manifest (docs/scaling.md "Publishing"). */
#define MGO_PUBLISH_MAX_PENDING 1024
/* mgo_publish__poll sends nothing while fewer than this many manifests fit the window and
 * some are in flight: one step per few acknowledgements would read a page each time. */
#define MGO_PUBLISH_MIN_ROOM 256u

/* How long a manifest stays valid by default (manifest-expiry): 7 days. */
#define MGO_PUBLISH_DEFAULT_EXPIRY_S (7u * 24u * 3600u)

struct mgo_pending_pub {
    int token;
    uint64_t version;
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
};

struct mgo_publisher {
    struct mgo_mgr_store *store;
    const struct mgo_outbox *outbox;
    const char *prefix;                  /* topic prefix */
    const struct mgo_sign_key *sign_key; /* NULL: documents go out unsigned */
    uint64_t expiry_s;                   /* each manifest's expiresAt = issuedAt + expiry_s */
    struct mgo_pending_pub pending[MGO_PUBLISH_MAX_PENDING];
    size_t pending_len;
    /* acknowledged manifests not yet recorded in the store (mgo_publish__record_acked writes
     * them in one transaction; token unused) */
    struct mgo_pending_pub acked[MGO_PUBLISH_MAX_PENDING];
    size_t acked_len;
    /* This manager publishes desired state (it holds the publisher lease, or runs alone;
     * docs/scaling.md "Several managers"). false: manifests, documents and clearings are left
     * in the store for the holder, as while not connected; receipts still go out. */
    bool active;
    uint64_t active_until_ns; /* monotonic (mgo_metrics_now_ns): active ends then; 0: never */
    /* A walk over every device with a manifest, a page per poll (mgo_publish__poll):
     * re-issuing each manifest (refresh), or publishing documents and manifest again (after a
     * new MQTT session). pass_after: the last device done ("" before the first). */
    enum mgo_publish_pass {
        MGO_PUBLISH_PASS_NONE,
        MGO_PUBLISH_PASS_REFRESH,
        MGO_PUBLISH_PASS_ALL
    } pass;
    char pass_after[MGO_MAX_DEVICE_ID_LEN + 1];
    /* the walk over unacknowledged manifests: the last device visited ("" from the first) */
    char unacked_after[MGO_MAX_DEVICE_ID_LEN + 1];
    /* A manifest was left for lack of room, or the walk has not been round since: the
     * daemon polls again as soon as acknowledgements make room (mgo_publish__waiting). */
    bool backlog;
};

/* What a device's manifest lists: its present deployments in creation order (refs, with
 * the MQTT digests) and the stored documents of those named in changed (all when changed
 * is NULL), with the device's current manifestVersion (0: none yet). The one manifest
 * builder both bindings use: publish.c encodes it for MQTT, southbound.c for HTTP. */
struct mgo_publish_set {
    struct mgo_arena *arena; /* in: where ids and documents are copied */
    const char *const *changed;
    size_t changed_len;
    uint64_t version; /* out */
    struct mgo_desired_ref refs[MGO_MAX_DEPLOYMENTS];
    size_t len;
    struct {
        const char *id;
        uint8_t *doc; /* canonical MessagePack (signed when a signing key is set) */
        size_t doc_len;
    } docs[MGO_MAX_DEPLOYMENTS];
    size_t docs_len;
};
/* Fills set (arena, changed and changed_len set by the caller). Errors: the store's,
 * MGO_ERR_LIMIT past MGO_MAX_DEPLOYMENTS, MGO_ERR_NOMEM. */
mgo_err mgo_publish__collect(struct mgo_mgr_store *store, const char *device_id,
                             struct mgo_publish_set *set) MGO_MUST_CHECK;

/* The pointers must outlive p. Manifests expire after MGO_PUBLISH_DEFAULT_EXPIRY_S. */
void mgo_publish__init(struct mgo_publisher *p, struct mgo_mgr_store *store,
                       const struct mgo_outbox *outbox, const char *prefix,
                       const struct mgo_sign_key *sign_key);
/* Manifests published from now on are valid for expiry_s seconds (at least 1). */
void mgo_publish__set_expiry(struct mgo_publisher *p, uint64_t expiry_s);

/* Publishes device's present deployments (nothing for a device bound to HTTP: it polls)
 * (changed_ids non-NULL: just those) and its current manifest, issued now and valid for expiry_s
 * (x-margo-mqtt-validity, signed with it). Not connected or not active: MGO_OK, left for the
 * after-connect sweep or the lease holder (the manifest stays unacknowledged). The same version
 * of the device's manifest already in flight: MGO_OK, nothing sent again. The publish window
 * full (MGO_PUBLISH_MAX_PENDING in flight): MGO_OK, nothing sent, left for mgo_publish__poll.
 * A device without a manifest: MGO_OK, nothing sent. The version published is the one stored
 * now. Errors:
 * the store's, MGO_ERR_LIMIT (more than MGO_MAX_DEPLOYMENTS present), encoding and outbox errors
 * (the sweep sends it again). */
mgo_err mgo_publish__device(struct mgo_publisher *p, const char *device_id,
                            const char *const *changed_ids, size_t changed_len) MGO_MUST_CHECK;
/* One bounded step of the publisher's background work, at most max devices and never past
 * the publish window: first a page of the running pass (refresh or republish-all), then the
 * devices whose newest manifest the broker has not acknowledged and that are not in flight
 * (left for lack of room, stored by another manager or by this one while not connected or not
 * the lease holder, or not acknowledged), all documents and the manifest as
 * mgo_publish__device, walked in device id order from where the last step stopped. Sets
 * *more when another step now would find more to send (the window has room and work
 * remains). While fewer than MGO_PUBLISH_MIN_ROOM manifests fit the window and some are in
 * flight, nothing is sent. Not connected or not active: MGO_OK, nothing sent. A device that fails
 * does not stop the others; the first error is returned. */
mgo_err mgo_publish__poll(struct mgo_publisher *p, size_t max, bool *more) MGO_MUST_CHECK;
/* Whether background work waits for room in the publish window (a pass, or manifests left
 * for lack of room): the daemon polls as soon as acknowledgements free some (the poll sends
 * nothing before MGO_PUBLISH_MIN_ROOM fit, unless none is in flight). */
bool mgo_publish__waiting(const struct mgo_publisher *p);
/* Clears the retained documents (and statuses) of every deployment being removed that its
 * device has reported removed or never reported (as after a connect). Not connected or not
 * active: MGO_OK, nothing done. */
mgo_err mgo_publish__clear_pending_removals(struct mgo_publisher *p) MGO_MUST_CHECK;
/* Starts re-issuing every device's manifest: the same manifestVersion and deployments, a new
 * validity (no deployment document is published again), a page per mgo_publish__poll (so
 * it goes out while connected and active, however long that takes to come). Called at half
 * of expiry_s, so a device always holds a manifest that has not expired while the manager and
 * the broker work (protocol.md §3.2). A pass already running goes on (a republish-all pass
 * re-issues every manifest too). Not active: nothing (the lease holder refreshes on taking the
 * lease and by its own timer). */
void mgo_publish__refresh(struct mgo_publisher *p);
/* Clears the retained document of a deployment being removed and marks it removed in the
 * store. Not connected: MGO_OK, left for the sweep; not active: MGO_OK, left for the lease
 * holder (mgo_publish__clear_pending_removals). */
mgo_err mgo_publish__clear_removed(struct mgo_publisher *p, const char *device_id,
                                   const char *deployment_id) MGO_MUST_CHECK;
/* A deployment being removed that its device never reported (added and removed while the
 * device was away, so the device never acts on it): clears it as above, since no
 * "removed" status will ever come. No-op once reported. */
mgo_err mgo_publish__clear_unreported(struct mgo_publisher *p, const char *device_id,
                                      const char *deployment_id) MGO_MUST_CHECK;
/* After a connect (or on taking the publisher lease): the unacknowledged manifests are due
 * (mgo_publish__poll sends them); when the session is new, every device's documents and
 * manifest are published again by a pass (the broker may have lost its retained messages with
 * it; protocol.md §6.2); the retained documents of removed deployments are cleared now.
 * Returns the store's error of the clearing (the caller tries again later). Not active:
 * MGO_OK, nothing done. */
mgo_err mgo_publish__sweep(struct mgo_publisher *p, bool session_present) MGO_MUST_CHECK;
/* Publishes a device's receipt (retained; docs/protocol.md §6.3): every status up to
 * (boot, seq) is stored. Not connected: MGO_OK, nothing sent (mgo_publish__receipts sends
 * every receipt after the next connect). */
mgo_err mgo_publish__receipt(struct mgo_publisher *p, const char *device_id, const char *epoch,
                             uint64_t boot, uint64_t seq) MGO_MUST_CHECK;
/* After a connect, before any status of that connection is stored: the receipt of every
 * device with stored statuses. Returns the first error (the others are still sent). */
mgo_err mgo_publish__receipts(struct mgo_publisher *p) MGO_MUST_CHECK;
/* Encodes a document tree for publishing into out: as is, or signed (ES256) when a signing
 * key is set. The digest of the result equals mgo_doc_digest(tree). */
mgo_err mgo_publish__encode_doc(const struct mgo_publisher *p, const struct mgo_value *tree,
                                struct mgo_arena *arena, struct mgo_buf *out) MGO_MUST_CHECK;
/* The broker acknowledged the publish named token: the manifest is no longer in flight and
 * is recorded as published by the next mgo_publish__record_acked (the daemon calls it once
 * per drain of the MQTT events, so a burst of acknowledgements costs one transaction instead
 * of one commit each). Functions here that read what is published record them first. */
void mgo_publish__acked(struct mgo_publisher *p, int token);
/* Records the acknowledged manifests in the store, all in one transaction. A failure is
 * logged and they stay unrecorded: their manifests are sent again (sweep, holder's poll),
 * the same version, which devices take as a repeat. */
void mgo_publish__record_acked(struct mgo_publisher *p);
/* The broker did not acknowledge the publish named token: it is no longer in flight (the
 * manifest stays unacknowledged; the sweep or the holder's poll sends it again). */
void mgo_publish__failed(struct mgo_publisher *p, int token);
/* The connection went: outcomes of publishes in flight are unknown (sent again on connect). */
void mgo_publish__connection_lost(struct mgo_publisher *p);

#endif
