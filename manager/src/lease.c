/* lease.c - the leases of several managers (lease.h). */
#include "lease.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "mgo/log.h"
#include "mgo/metrics.h"

#define TAG "lease"

mgo_err mgo_lease__init(struct mgo_lease *l, struct mgo_mgr_store *store, const char *client_id)
{
    memset(l, 0, sizeof *l);
    l->store = store;
    uint8_t raw[8];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return MGO_ERR_IO;
    int len = snprintf(l->instance, sizeof l->instance, "%.150s/", client_id);
    for (size_t i = 0; i < sizeof raw; i++)
        len += snprintf(l->instance + len, sizeof l->instance - (size_t)len, "%02x", raw[i]);
    snprintf(l->member, sizeof l->member, "%s%s", MGO_LEASE_MEMBER_PREFIX, l->instance);
    return MGO_OK;
}

bool mgo_lease__held(const struct mgo_lease *l)
{
    return l->until_ns != 0 && mgo_metrics_now_ns() < l->until_ns;
}

enum mgo_lease_change mgo_lease__renew(struct mgo_lease *l, const char **why)
{
    bool was = mgo_lease__held(l);
    uint64_t started = mgo_metrics_now_ns();
    struct mgo_mgr_lease got;
    mgo_err err =
        mgo_mgr_store_lease_take(l->store, l->member, l->instance, MGO_LEASE_TTL_MS, &got);
    if (err)
        MGO_LOGW(TAG, "member lease not renewed: %s", mgo_strerror(err));
    err = mgo_mgr_store_lease_take(l->store, MGO_LEASE_PUBLISHER, l->instance, MGO_LEASE_TTL_MS,
                                   &got);
    if (err) {
        MGO_LOGW(TAG, "publisher lease: the store answered %s; trying again in %d ms",
                 mgo_strerror(err), MGO_LEASE_RENEW_MS);
        if (was && !mgo_lease__held(l)) {
            *why = "not renewed in time";
            return MGO_LEASE_LOST;
        }
        return MGO_LEASE_SAME;
    }
    if (!got.held) {
        l->until_ns = 0;
        *why = "another manager holds it";
        return was ? MGO_LEASE_LOST : MGO_LEASE_SAME;
    }
    /* the same term: held without a break (the lease never changed hands meanwhile) */
    bool same_term = got.term == l->term;
    l->term = got.term;
    l->until_ns = started + (uint64_t)(MGO_LEASE_TTL_MS - MGO_LEASE_MARGIN_MS) * 1000000u;
    return was && same_term ? MGO_LEASE_SAME : MGO_LEASE_TAKEN;
}

struct reap_ctx {
    const struct mgo_lease *l;
    mgo_mgr_id_visit visit;
    void *ctx;
};

static mgo_err reaped(const char *name, void *c)
{
    struct reap_ctx *r = c;
    if (strcmp(name, r->l->member) == 0)
        return MGO_OK; /* this manager's own (it renews it at its next try) */
    return r->visit(name + strlen(MGO_LEASE_MEMBER_PREFIX), r->ctx);
}

mgo_err mgo_lease__reap(struct mgo_lease *l, mgo_mgr_id_visit visit, void *ctx)
{
    struct reap_ctx r = {l, visit, ctx};
    return mgo_mgr_store_lease_reap(l->store, MGO_LEASE_MEMBER_PREFIX, reaped, &r);
}

void mgo_lease__release(struct mgo_lease *l)
{
    l->until_ns = 0;
    if (mgo_mgr_store_lease_release(l->store, MGO_LEASE_PUBLISHER, l->instance) != MGO_OK ||
        mgo_mgr_store_lease_release(l->store, l->member, l->instance) != MGO_OK)
        MGO_LOGW(TAG, "leases not released; they expire in %u ms", MGO_LEASE_TTL_MS);
}
