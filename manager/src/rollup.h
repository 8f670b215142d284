/* rollup.h - fleet roll-ups for monitors (docs/rollouts.md "Roll-up topics", protocol.md 2.4):
 * the live summary of each rollout on {prefix}/fleet/rollouts/{id} and of each app across the
 * fleet on {prefix}/fleet/apps/{appId}, retained, so a monitor subscribes to one topic
 * instead of every device's status.
 *
 * mgo_rollup__publish() runs from the manager's loop once per MGO_ROLLUP_PERIOD_MS, or less
 * often when a round is slow (mgo_rollup__next_ms): a topic is published at most that often, and
 * only when its document changed since the last publish (one hash per topic, at most
 * MGO_ROLLUP_MAX_TOPICS remembered). An app that no longer has deployments gets its retained
 * document cleared. Loop thread only; calls the store, rollout.c (summaries) and the outbox. */
#ifndef MGO_MGR_ROLLUP_H
#define MGO_MGR_ROLLUP_H

#include <stdbool.h>
#include <stdint.h>

#include "outbox.h"
#include "mgo/limits.h"
#include "mgo/mgr_store.h"
#include "mgo/topic.h"

#define MGO_ROLLUP_PERIOD_MS 1000
/* A round that took T ms is followed by the next after max(period, FACTOR * T), at most
 * MGO_ROLLUP_MAX_PERIOD_MS: the roll-ups take at most 1/FACTOR of the loop's time however
 * large the fleet (a round reads every deployment). */
#define MGO_ROLLUP_COST_FACTOR 20
#define MGO_ROLLUP_MAX_PERIOD_MS 30000
#define MGO_ROLLUP_MAX_TOPICS 1024u
/* A finished rollout's summary is published (once more) for this long after it finished. */
#define MGO_ROLLUP_FINISHED_MS (10 * 60 * 1000)

struct mgo_rollup_topic {
    char topic[MGO_MAX_TOPIC_LEN + 1];
    uint64_t hash; /* of the payload last published */
    bool app;      /* an app's roll-up (else a rollout's) */
    bool final_;   /* a finished rollout's last summary is out: not computed again */
    bool seen;     /* in this round */
};

struct mgo_rollup {
    struct mgo_mgr_store *store;
    const struct mgo_outbox *outbox;
    const char *prefix;
    struct mgo_rollup_topic topics[MGO_ROLLUP_MAX_TOPICS];
    size_t len;
};

/* The pointers must outlive r. */
void mgo_rollup__init(struct mgo_rollup *r, struct mgo_mgr_store *store,
                      const struct mgo_outbox *outbox, const char *prefix);
/* Publishes the roll-ups that changed. Not connected: nothing (MGO_OK). Returns the first
 * error (store, encoding, outbox); the others are still tried, and a topic whose publish
 * failed is tried again next time. */
mgo_err mgo_rollup__publish(struct mgo_rollup *r) MGO_MUST_CHECK;
/* After a new broker session (retained messages may be gone): everything is published
 * again. */
void mgo_rollup__forget(struct mgo_rollup *r);
/* The wait in ms before the next round after one that took took_ms (MGO_ROLLUP_COST_FACTOR). */
int64_t mgo_rollup__next_ms(uint64_t took_ms);

#endif
