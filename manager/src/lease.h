/* lease.h - the leases of several managers on one database (share-group, docs/scaling.md
 * "Several managers"): this run's holder name, its member lease, and the publisher lease with
 * its term and local deadline.
 *
 * The publisher lease lasts MGO_LEASE_TTL_MS from each renewal (the database's clock, one
 * clock for every manager), renewed every MGO_LEASE_RENEW_MS; its holder counts it as held
 * only until MGO_LEASE_MARGIN_MS before it could expire, on its monotonic clock from the start
 * of the last renewal that succeeded, so it has stopped before another manager can take it
 * over (the margin covers the renewal's round trip and clocks running at slightly different
 * rates). Each manager also keeps a member lease
 * "member/<holder>"; the publisher reaps the expired ones (a manager that stopped).
 *
 * Loop thread only; calls only the store. Nothing here calls back into its caller: a renewal
 * returns what changed. */
#ifndef MGO_MGR_LEASE_H
#define MGO_MGR_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "mgo/mgr_store.h"

#define MGO_LEASE_PUBLISHER "publisher"
#define MGO_LEASE_MEMBER_PREFIX "member/"
#define MGO_LEASE_TTL_MS 10000u
#define MGO_LEASE_RENEW_MS 2000
#define MGO_LEASE_MARGIN_MS 3000u

struct mgo_lease {
    struct mgo_mgr_store *store;
    char instance[MGO_MGR_LEASE_NAME_MAX - 16]; /* the holder name; room for the prefix */
    char member[MGO_MGR_LEASE_NAME_MAX + 1];    /* this run's member lease */
    uint64_t term;     /* of the publisher lease when last renewed by this run; 0: never */
    uint64_t until_ns; /* monotonic (mgo_metrics_now_ns): counted as held until then */
};

enum mgo_lease_change {
    MGO_LEASE_SAME,  /* held and renewed, or not held and still not */
    MGO_LEASE_TAKEN, /* held now and not before (or under a new term) */
    MGO_LEASE_LOST,  /* held before, not now */
};

/* The holder name: client_id (its first 150 characters), "/" and 16 random hex digits, so a
 * restarted manager is a new holder. MGO_ERR_IO when no randomness could be read. */
mgo_err mgo_lease__init(struct mgo_lease *l, struct mgo_mgr_store *store,
                        const char *client_id) MGO_MUST_CHECK;
/* Whether the publisher lease is held now, by the local clock. */
bool mgo_lease__held(const struct mgo_lease *l);
/* One renewal (every MGO_LEASE_RENEW_MS): renews the member lease, then takes or renews the
 * publisher lease (one statement each). Returns what changed since the lease was last held by
 * the local clock; for MGO_LEASE_LOST *why says why. A store error is logged; the lease stays
 * held until its local deadline. */
enum mgo_lease_change mgo_lease__renew(struct mgo_lease *l, const char **why);
/* The holder, after a renewal: deletes the expired member leases of other managers and visits
 * each deleted name without the prefix (a manager that stopped renewing). */
mgo_err mgo_lease__reap(struct mgo_lease *l, mgo_mgr_id_visit visit, void *ctx) MGO_MUST_CHECK;
/* A clean stop: both leases expire now, so another manager takes over at its next try. */
void mgo_lease__release(struct mgo_lease *l);

#endif
