/* reporter.h - builds deployment statuses, journals them and delivers the journal
 * (private to agent/).
 *
 * Every status transition gets the next journal position (boot, seq), is appended to the
 * on-disk journal (fsync) and only then published (retained, QoS 1). The journal is flushed
 * in append order, at most MGO_REPORTER_MAX_INFLIGHT publishes outstanding. An entry is
 * delivered when the broker acknowledges it, and leaves the journal only when the manager's
 * receipt says it is stored (docs/protocol.md §6.3). After a reconnect or a restart, what
 * was not delivered is published again with its original position, so a reader can tell a
 * re-send from a new transition.
 *
 * Two topics: a status goes on .../status/{u} unless a newer status of its deployment has
 * been delivered already (then the retained status would go backwards: it goes on
 * .../replay/{u}, which only the manager reads). A receipt with an epoch not seen before
 * in this run asks for everything delivered beyond its position again: on the replay topic.
 *
 * The latest status of each deployment is also kept apart from the journal (latest.h), so
 * it outlives the receipt that settles it. When the broker starts a new session (it may have
 * lost its retained store), each deployment's latest status is published again on the
 * status topic, same bytes and position (docs/protocol.md §6.1 step 5), unless the newest
 * journal entry of that deployment is not delivered yet (the flush publishes that one).
 *
 * Delivery goes through struct mgo_reporter_delivery, which has two implementations: MQTT
 * (mgo_reporter_delivery_mqtt: the session's publish; the broker's PUBACK delivers, the
 * manager's receipt settles) and Margo HTTP (http_transport.h: POST .../status, one at a
 * time; a 2xx both delivers and settles, since the WFM answers after storing).
 *
 * Loop thread only. Calls the delivery to send; nothing here calls the executor. */
#ifndef MGO_AGENT_REPORTER_H
#define MGO_AGENT_REPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "latest.h"
#include "mgo/margo.h"
#include "runtime.h"
#include "session.h"

#define MGO_REPORTER_MAX_INFLIGHT 32u

/* One status transition of one deployment. */
struct mgo_report {
    const char *deployment_id;
    /* The document (NULL when unknown or invalid): names the components and the source of
     * a component's error. results[0..n) hold each component's state, in document order. */
    const struct mgo_app_deployment *dep;
    const struct mgo_rt_result *results;
    size_t n;
    uint64_t adopted_version; /* manifest the document came from; 0 = none */
    enum mgo_state state;     /* the deployment's overall state */
    /* The deployment's error; NULL = the first failing component's when state is FAILED. */
    const struct mgo_rt_error *error;
};

/* How statuses leave the device. */
struct mgo_reporter_delivery {
    void *ctx;
    /* Whether send may be tried now (connected; for HTTP: outside downtime and back-off). */
    bool (*ready)(void *ctx);
    /* Hands one journaled status over; its outcome comes back as mgo_reporter_published()
     * with *token_out. kind is MGO_TOPIC_STATUS or MGO_TOPIC_REPLAY (MQTT's replay topic;
     * HTTP has one route for both). An error means "not now": the flush stops there. */
    mgo_err (*send)(void *ctx, enum mgo_topic_kind kind, const char *dep_id, const uint8_t *payload,
                    size_t len, int *token_out);
    size_t max_inflight; /* 1..MGO_REPORTER_MAX_INFLIGHT */
    bool ack_is_stored;  /* an acknowledged send is also settled (no receipts: HTTP) */
};

/* The MQTT implementation: publishes through the session (QoS 1, retained status topic). */
struct mgo_reporter_delivery mgo_reporter_delivery_mqtt(struct mgo_session *session);

struct mgo_reporter_inflight {
    int token;
    uint64_t boot, seq;
    bool replay;  /* sent on the replay topic */
    bool restore; /* a latest status sent again for a new broker session (latest.h) */
};

struct mgo_reporter {
    struct mgo_reporter_delivery delivery;
    const char *device_id; /* borrowed */
    uint64_t boot;
    uint64_t seq; /* last position given out in this boot */
    struct mgo_journal journal;
    struct mgo_latest latest;
    struct mgo_reporter_inflight inflight[MGO_REPORTER_MAX_INFLIGHT];
    size_t inflight_len;
    char epoch[MGO_RECEIPT_EPOCH_MAX + 1]; /* of the last receipt; "" = none in this run */
    uint64_t receipt_boot, receipt_seq;    /* its position */
    uint64_t replays;                      /* entries marked for replay in this run */
    uint64_t restores;                     /* latest statuses sent again in this run */
};

/* Opens the journal at journal_path (unsent entries of earlier runs are kept for delivery)
 * and the latest statuses in latest_dir, brought up to date from the journal. */
mgo_err mgo_reporter_open(struct mgo_reporter *r, const char *journal_path, const char *latest_dir,
                          const struct mgo_reporter_delivery *delivery, const char *device_id,
                          uint64_t boot) MGO_MUST_CHECK;
void mgo_reporter_close(struct mgo_reporter *r);

/* Journals one status (fsync) and publishes what is due. A status the disk refuses is
 * logged and not published (never published unjournaled). */
void mgo_reporter_report(struct mgo_reporter *r, const struct mgo_report *rep);

/* The connection came (everything unacknowledged goes again, in order; with
 * session_present false, every deployment's latest status too) or went. */
void mgo_reporter_connected(struct mgo_reporter *r, bool session_present);
void mgo_reporter_disconnected(struct mgo_reporter *r);
/* Sends what is due now (the delivery became ready again; keeps what is in flight). */
void mgo_reporter_flush(struct mgo_reporter *r);
/* The broker acknowledged (ok) or refused a publish; ignores tokens that are not ours. */
void mgo_reporter_published(struct mgo_reporter *r, int token, bool ok);

/* The manager's receipt: drops the entries it covers; a new epoch first marks everything
 * delivered beyond its position for replay. */
void mgo_reporter_receipt(struct mgo_reporter *r, const struct mgo_receipt *receipt);

/* Entries the manager has not confirmed yet. */
size_t mgo_reporter_unsent(const struct mgo_reporter *r);

#endif
