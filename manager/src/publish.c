/* publish.c - fleet publishing (publish.h): deployment documents, desired-state manifests,
 * clearing retained documents, the after-connect sweep, and manifest acknowledgements. */
#include "publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/metrics.h"
#include "mgo/topic.h"

#define TAG "publish"

void mgo_publish__init(struct mgo_publisher *p, struct mgo_mgr_store *store,
                       const struct mgo_outbox *outbox, const char *prefix,
                       const struct mgo_sign_key *sign_key)
{
    p->store = store;
    p->outbox = outbox;
    p->prefix = prefix;
    p->sign_key = sign_key;
    p->expiry_s = MGO_PUBLISH_DEFAULT_EXPIRY_S;
    p->pending_len = 0;
    p->acked_len = 0;
    p->active = true;
    p->active_until_ns = 0;
    p->pass = MGO_PUBLISH_PASS_NONE;
    p->pass_after[0] = '\0';
    p->unacked_after[0] = '\0';
    p->backlog = false;
}

/* Active, and the lease that makes it so has not run out by the local clock. */
static bool publishing(const struct mgo_publisher *p)
{
    return p->active && (p->active_until_ns == 0 || mgo_metrics_now_ns() < p->active_until_ns);
}

void mgo_publish__set_expiry(struct mgo_publisher *p, uint64_t expiry_s)
{
    p->expiry_s = expiry_s > 0 ? expiry_s : 1;
}

/* Only called with room in the window (mgo_publish__device checks it first). */
static void remember_pub(struct mgo_publisher *p, int token, const char *device, uint64_t version)
{
    struct mgo_pending_pub *pp = &p->pending[p->pending_len++];
    pp->token = token;
    pp->version = version;
    snprintf(pp->device, sizeof pp->device, "%s", device);
}

/* Takes entry i out of the in-flight list. Its order means nothing (every lookup scans it
 * whole), so the last entry takes its place instead of moving up to the whole window on
 * every acknowledgement. */
static void forget_pending(struct mgo_publisher *p, size_t i)
{
    p->pending[i] = p->pending[--p->pending_len];
}

void mgo_publish__acked(struct mgo_publisher *p, int token)
{
    for (size_t i = 0; i < p->pending_len; i++) {
        if (p->pending[i].token != token)
            continue;
        if (p->acked_len == MGO_PUBLISH_MAX_PENDING)
            mgo_publish__record_acked(p); /* empties the list, recorded or not */
        p->acked[p->acked_len++] = p->pending[i];
        forget_pending(p, i);
        return;
    }
}

void mgo_publish__record_acked(struct mgo_publisher *p)
{
    if (p->acked_len == 0)
        return;
    size_t n = p->acked_len;
    p->acked_len = 0;
    mgo_err err = mgo_mgr_store_begin(p->store);
    for (size_t i = 0; !err && i < n; i++)
        err =
            mgo_mgr_store_manifest_set_published(p->store, p->acked[i].device, p->acked[i].version);
    if (err) {
        mgo_mgr_store_rollback(p->store);
        MGO_LOGE(TAG, "cannot record %zu manifests as published: %s (sent again later)", n,
                 mgo_strerror(err));
        return;
    }
    if (mgo_mgr_store_commit(p->store) != MGO_OK) /* rolls back */
        MGO_LOGE(TAG, "cannot record %zu manifests as published (sent again later)", n);
}

void mgo_publish__failed(struct mgo_publisher *p, int token)
{
    for (size_t i = 0; i < p->pending_len; i++) {
        if (p->pending[i].token != token)
            continue;
        forget_pending(p, i);
        return;
    }
}

/* Whether device's manifest `version` (or a newer one) is in flight. */
static bool in_flight(const struct mgo_publisher *p, const char *device, uint64_t version)
{
    for (size_t i = 0; i < p->pending_len; i++) {
        if (p->pending[i].version >= version && strcmp(p->pending[i].device, device) == 0)
            return true;
    }
    return false;
}

void mgo_publish__connection_lost(struct mgo_publisher *p)
{
    mgo_publish__record_acked(p); /* acknowledged before the connection went */
    p->pending_len = 0;
}

static bool is_changed(const struct mgo_publish_set *ctx, const char *id)
{
    if (ctx->changed == NULL)
        return true;
    for (size_t i = 0; i < ctx->changed_len; i++) {
        if (strcmp(ctx->changed[i], id) == 0)
            return true;
    }
    return false;
}

static mgo_err collect_present(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct mgo_publish_set *ctx = c;
    if (row->desired != MGO_MGR_DESIRED_PRESENT)
        return MGO_OK;
    if (ctx->len == MGO_MAX_DEPLOYMENTS)
        return MGO_ERR_LIMIT;
    struct mgo_desired_ref *r = &ctx->refs[ctx->len++];
    r->deployment_id = mgo_arena_strdup(ctx->arena, row->id);
    r->digest = mgo_arena_strdup(ctx->arena, row->digest);
    if (!r->deployment_id || !r->digest)
        return MGO_ERR_NOMEM;
    if (is_changed(ctx, row->id)) {
        size_t i = ctx->docs_len++;
        ctx->docs[i].id = r->deployment_id;
        ctx->docs[i].doc = mgo_arena_alloc(ctx->arena, row->doc_len + 1);
        if (!ctx->docs[i].doc)
            return MGO_ERR_NOMEM;
        memcpy(ctx->docs[i].doc, row->doc, row->doc_len);
        ctx->docs[i].doc_len = row->doc_len;
    }
    return MGO_OK;
}

mgo_err mgo_publish__collect(struct mgo_mgr_store *store, const char *device_id,
                             struct mgo_publish_set *set)
{
    set->len = 0;
    set->docs_len = 0;
    /* one transaction with the manifest's row locked: the deployments read are those of the
     * version read, even while another manager changes the device (docs/scaling.md) */
    mgo_err err = mgo_mgr_store_begin(store);
    if (err)
        return err;
    err = mgo_mgr_store_manifest_lock(store, device_id, &set->version);
    if (!err)
        err = mgo_mgr_store_deployment_list(store, device_id, NULL, false, collect_present, set);
    if (err) {
        mgo_mgr_store_rollback(store);
        return err;
    }
    return mgo_mgr_store_commit(store);
}

mgo_err mgo_publish__encode_doc(const struct mgo_publisher *p, const struct mgo_value *tree,
                                struct mgo_arena *arena, struct mgo_buf *out)
{
    if (p->sign_key == NULL)
        return mgo_value_to_msgpack(tree, out);
    struct mgo_value signed_tree;
    mgo_err err = mgo_sign_document(p->sign_key, tree, arena, &signed_tree);
    if (err == MGO_OK)
        err = mgo_value_to_msgpack(&signed_tree, out);
    return err;
}

/* The manifest as published names its device at the root ("deviceId"), so a signed
 * manifest cannot be replayed on another device's topic. */
static mgo_err encode_manifest(const struct mgo_publisher *p, const struct mgo_desired_state *ds,
                               const char *device_id, struct mgo_arena *arena, struct mgo_buf *out)
{
    struct mgo_desired_state bound = *ds;
    bound.device_id = device_id;
    struct mgo_value tree;
    mgo_err err = mgo_desired_state_to_value(&bound, arena, &tree);
    if (err == MGO_OK)
        err = mgo_publish__encode_doc(p, &tree, arena, out);
    return err;
}

static mgo_err send_device(struct mgo_publisher *p, const char *device_id,
                           const char *const *changed_ids, size_t changed_len, uint64_t version);

mgo_err mgo_publish__device(struct mgo_publisher *p, const char *device_id,
                            const char *const *changed_ids, size_t changed_len)
{
    if (p->pending_len == MGO_PUBLISH_MAX_PENDING && publishing(p) &&
        mgo_outbox__connected(p->outbox)) {
        p->backlog = true; /* mgo_publish__poll sends it once acknowledgements make room */
        MGO_LOGD(TAG, "device %s: stored; sent when the publish window has room", device_id);
        return MGO_OK;
    }
    uint64_t version = 0;
    mgo_err err = mgo_mgr_store_manifest_get(p->store, device_id, &version, NULL);
    if (err || version == 0)
        return err;
    /* an HTTP device polls for its manifest (docs/margo-http.md): nothing goes to MQTT */
    bool http = false;
    err = mgo_mgr_store_device_is_http(p->store, device_id, &http);
    if (err || http)
        return err;
    if (!publishing(p)) {
        MGO_LOGD(TAG, "device %s: manifest %llu stored; the lease holder publishes it", device_id,
                 (unsigned long long)version);
        return MGO_OK;
    }
    if (!mgo_outbox__connected(p->outbox)) {
        MGO_LOGI_FOR(TAG, device_id, NULL,
                     "device %s: manifest %llu stored; publishing once connected", device_id,
                     (unsigned long long)version);
        return MGO_OK;
    }
    return send_device(p, device_id, changed_ids, changed_len, version);
}

/* mgo_publish__device once its checks have passed (publishing, connected, room in the window,
 * an MQTT device whose newest manifest is `version`, as read just before). */
static mgo_err send_device(struct mgo_publisher *p, const char *device_id,
                           const char *const *changed_ids, size_t changed_len, uint64_t version)
{
    mgo_err err = MGO_OK;
    if (changed_ids == NULL && in_flight(p, device_id, version))
        return MGO_OK; /* a whole re-send of what is on its way (sweep, poll) */
    struct mgo_arena arena;
    mgo_arena_init(&arena, 64u * 1024u * 1024u);
    struct mgo_publish_set *ctx = calloc(1, sizeof *ctx);
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    if (!ctx) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    ctx->arena = &arena;
    ctx->changed = changed_ids;
    ctx->changed_len = changed_len;
    err = mgo_publish__collect(p->store, device_id, ctx);
    if (err) {
        MGO_LOGE(TAG, "device %s: cannot collect its deployments: %s", device_id,
                 mgo_strerror(err));
        goto cleanup;
    }
    version = ctx->version; /* the one its deployments were read with (another manager may
                             * have stored a newer one since the check above) */
    char topic[MGO_MAX_TOPIC_LEN + 1];
    for (size_t i = 0; i < ctx->docs_len; i++) {
        err = mgo_topic_format(p->prefix, MGO_TOPIC_DEPLOYMENT, device_id, ctx->docs[i].id, topic,
                               sizeof topic);
        if (!err)
            err = mgo_outbox__send(p->outbox, MGO_TOPIC_DEPLOYMENT, topic, ctx->docs[i].doc,
                                   ctx->docs[i].doc_len, NULL);
        if (err) {
            MGO_LOGW(TAG, "publish %s: %s (will retry on reconnect)", topic, mgo_strerror(err));
            goto cleanup;
        }
    }
    /* wall clock: devices compare it with theirs (protocol.md §3.2) */
    uint64_t now_s = (uint64_t)(mgo_mgr_store_now_ms() / 1000);
    struct mgo_desired_state ds = {
        .manifest_version = version,
        .has_bundle = false,
        .deployments = ctx->refs,
        .deployments_len = ctx->len,
        .has_validity = true,
        .issued_at = now_s,
        .expires_at = now_s + p->expiry_s,
    };
    err = encode_manifest(p, &ds, device_id, &arena, &buf);
    if (err) {
        MGO_LOGE(TAG, "device %s: cannot encode manifest: %s", device_id, mgo_strerror(err));
        goto cleanup;
    }
    err = mgo_topic_format(p->prefix, MGO_TOPIC_DESIRED, device_id, NULL, topic, sizeof topic);
    if (err)
        goto cleanup;
    int token = 0;
    err = mgo_outbox__send(p->outbox, MGO_TOPIC_DESIRED, topic, buf.data, buf.len, &token);
    if (err) {
        MGO_LOGW(TAG, "publish %s: %s (will retry on reconnect)", topic, mgo_strerror(err));
        goto cleanup;
    }
    remember_pub(p, token, device_id, version);
    MGO_LOGI_FOR(TAG, device_id, NULL,
                 "device %s: published manifest %llu (%zu deployments, %zu documents)", device_id,
                 (unsigned long long)version, ctx->len, ctx->docs_len);
cleanup:
    mgo_buf_cleanup(&buf);
    free(ctx);
    mgo_arena_cleanup(&arena);
    return err;
}

mgo_err mgo_publish__clear_removed(struct mgo_publisher *p, const char *device_id,
                                   const char *deployment_id)
{
    /* the document, then the retained status (protocol.md §7.4 steps 6-7): a deployment
     * that is gone leaves nothing retained behind; its removal stays in the history */
    static const enum mgo_topic_kind kinds[] = {MGO_TOPIC_DEPLOYMENT, MGO_TOPIC_STATUS};
    if (!publishing(p))
        return MGO_OK; /* the lease holder clears it (its poll of removals) */
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char topic[MGO_MAX_TOPIC_LEN + 1];
        mgo_err err =
            mgo_topic_format(p->prefix, kinds[i], device_id, deployment_id, topic, sizeof topic);
        if (err)
            return err;
        if (!mgo_outbox__connected(p->outbox) ||
            mgo_outbox__send(p->outbox, kinds[i], topic, NULL, 0, NULL) != MGO_OK) {
            MGO_LOGI_FOR(TAG, device_id, deployment_id,
                         "deployment %s removed; clearing its retained messages once connected",
                         deployment_id);
            return MGO_OK;
        }
    }
    mgo_err err;
    err = mgo_mgr_store_deployment_set_desired(p->store, deployment_id, MGO_MGR_DESIRED_REMOVED);
    if (err == MGO_OK)
        MGO_LOGI_FOR(TAG, device_id, deployment_id, "deployment %s removed from device %s",
                     deployment_id, device_id);
    return err;
}

mgo_err mgo_publish__clear_unreported(struct mgo_publisher *p, const char *device_id,
                                      const char *deployment_id)
{
    mgo_err err = mgo_mgr_store_status_get(p->store, deployment_id, NULL, NULL);
    if (err == MGO_ERR_NOT_FOUND)
        return mgo_publish__clear_removed(p, device_id, deployment_id);
    return err;
}

/* ---- receipts --------------------------------------------------------------------------- */

mgo_err mgo_publish__receipt(struct mgo_publisher *p, const char *device_id, const char *epoch,
                             uint64_t boot, uint64_t seq)
{
    if (!mgo_outbox__connected(p->outbox))
        return MGO_OK;
    char topic[MGO_MAX_TOPIC_LEN + 1];
    mgo_err err =
        mgo_topic_format(p->prefix, MGO_TOPIC_RECEIPT, device_id, NULL, topic, sizeof topic);
    if (err)
        return err;
    struct mgo_receipt r = {.device_id = device_id, .epoch = epoch, .boot = boot, .seq = seq};
    struct mgo_buf buf;
    mgo_buf_init(&buf, 1024);
    err = mgo_receipt_encode(&r, &buf);
    if (err == MGO_OK)
        err = mgo_outbox__send(p->outbox, MGO_TOPIC_RECEIPT, topic, buf.data, buf.len, NULL);
    mgo_buf_cleanup(&buf);
    if (err)
        MGO_LOGW(TAG,
                 "device %s: receipt up to (%llu, %llu) not published: %s (sent again "
                 "after the next connect)",
                 device_id, (unsigned long long)boot, (unsigned long long)seq, mgo_strerror(err));
    return err;
}

struct receipts_ctx {
    struct mgo_publisher *p;
    mgo_err first;
    size_t n;
};

static mgo_err receipt_visit(const char *device_id, const char *epoch, uint64_t boot, uint64_t seq,
                             void *c)
{
    struct receipts_ctx *ctx = c;
    mgo_err err = mgo_publish__receipt(ctx->p, device_id, epoch, boot, seq);
    if (err && ctx->first == MGO_OK)
        ctx->first = err;
    ctx->n++;
    return MGO_OK; /* one device failing does not stop the others */
}

mgo_err mgo_publish__receipts(struct mgo_publisher *p)
{
    struct receipts_ctx ctx = {p, MGO_OK, 0};
    mgo_err err = mgo_mgr_store_receipts_list(p->store, receipt_visit, &ctx);
    if (ctx.n > 0)
        MGO_LOGI(TAG, "published the receipts of %zu devices", ctx.n);
    return err ? err : ctx.first;
}

/* ---- the after-connect sweep, passes and the poll ------------------------------------- */

struct removal {
    char deployment[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
};

struct removal_list {
    struct removal *items;
    size_t len, cap;
    struct mgo_mgr_store *store;
};

static mgo_err state_of(const struct mgo_mgr_status_row *row, void *c)
{
    snprintf(c, 16, "%s", row->state);
    return MGO_OK;
}

static mgo_err collect_removed(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct removal_list *l = c;
    if (row->desired != MGO_MGR_DESIRED_REMOVING)
        return MGO_OK;
    char state[16] = "";
    mgo_err err = mgo_mgr_store_status_get(l->store, row->id, state_of, state);
    /* reported removed, or never reported at all (added and removed while the device was
     * away: it never acts on it, protocol.md §7.4-7.5) */
    if (err != MGO_OK && err != MGO_ERR_NOT_FOUND)
        return err;
    if (err == MGO_OK && strcmp(state, "removed") != 0)
        return MGO_OK;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *n = realloc(l->items, cap * sizeof *l->items);
        if (!n)
            return MGO_ERR_NOMEM;
        l->items = n;
        l->cap = cap;
    }
    snprintf(l->items[l->len].deployment, sizeof l->items[0].deployment, "%s", row->id);
    snprintf(l->items[l->len].device, sizeof l->items[0].device, "%s", row->device_id);
    l->len++;
    return MGO_OK;
}

mgo_err mgo_publish__clear_pending_removals(struct mgo_publisher *p)
{
    if (!publishing(p) || !mgo_outbox__connected(p->outbox))
        return MGO_OK;
    struct removal_list rl = {.store = p->store};
    mgo_err listed =
        mgo_mgr_store_deployment_list(p->store, NULL, NULL, false, collect_removed, &rl);
    mgo_err err = listed;
    for (size_t i = 0; !listed && i < rl.len; i++) {
        mgo_err c = mgo_publish__clear_removed(p, rl.items[i].device, rl.items[i].deployment);
        if (c && !err)
            err = c;
    }
    free(rl.items);
    return err;
}

mgo_err mgo_publish__sweep(struct mgo_publisher *p, bool session_present)
{
    if (!publishing(p))
        return MGO_OK;            /* the lease holder's */
    mgo_publish__record_acked(p); /* what is published, as far as known */
    p->backlog = true;            /* the unacknowledged manifests: the next polls */
    if (!session_present) {
        MGO_LOGI(TAG, "new session: publishing every device's desired state again");
        p->pass = MGO_PUBLISH_PASS_ALL;
        p->pass_after[0] = '\0';
    }
    return mgo_publish__clear_pending_removals(p);
}

void mgo_publish__refresh(struct mgo_publisher *p)
{
    if (!publishing(p))
        return; /* whoever holds the lease re-issues them (it refreshes on taking it) */
    if (p->pass != MGO_PUBLISH_PASS_NONE)
        return; /* the running pass re-issues every manifest too */
    p->pass = MGO_PUBLISH_PASS_REFRESH;
    p->pass_after[0] = '\0';
}

bool mgo_publish__waiting(const struct mgo_publisher *p)
{
    return p->pass != MGO_PUBLISH_PASS_NONE || p->backlog;
}

/* The poll's steps call send_device directly: they run only while publishing and connected,
 * within the window's room, and the page gives each device's version and leaves out devices
 * bound to HTTP, so mgo_publish__device's two reads per device are not needed. */

/* One page of a walk: the devices read (a page is read whole before anything is sent, so
 * no statement stays open while publishing reads the store). */
struct page {
    char (*ids)[MGO_MAX_DEVICE_ID_LEN + 1];
    uint64_t *versions;
    bool *acknowledged; /* the broker acknowledged the newest version */
    size_t len, cap;
};

static mgo_err page_add(const char *id, uint64_t version, uint64_t published, void *c)
{
    struct page *pg = c;
    if (pg->len == pg->cap)
        return MGO_ERR_LIMIT; /* the store returned more than asked for */
    snprintf(pg->ids[pg->len], sizeof pg->ids[0], "%s", id);
    pg->acknowledged[pg->len] = published >= version;
    pg->versions[pg->len++] = version;
    return MGO_OK;
}

static mgo_err page_read(struct mgo_publisher *p, bool unacked, const char *after, size_t limit,
                         struct page *pg)
{
    pg->len = 0;
    pg->cap = limit;
    pg->ids = malloc(limit * sizeof *pg->ids);
    pg->versions = malloc(limit * sizeof *pg->versions);
    pg->acknowledged = malloc(limit * sizeof *pg->acknowledged);
    if (pg->ids == NULL || pg->versions == NULL || pg->acknowledged == NULL)
        return MGO_ERR_NOMEM;
    return mgo_mgr_store_manifest_page(p->store, unacked, after, limit, page_add, pg);
}

static void page_free(struct page *pg)
{
    free(pg->ids);
    free(pg->versions);
    free(pg->acknowledged);
}

/* A page of the running pass, at most budget devices; returns how many were sent. */
static size_t pass_step(struct mgo_publisher *p, size_t budget, mgo_err *first)
{
    static const char *const no_documents[1] = {NULL};
    bool refresh = p->pass == MGO_PUBLISH_PASS_REFRESH;
    struct page pg;
    mgo_err err = page_read(p, false, p->pass_after, budget, &pg);
    size_t sent = 0, i = 0;
    /* publishing: the lease's local deadline may pass during a step */
    for (; !err && i < pg.len && publishing(p); i++) {
        mgo_err e = MGO_OK;
        if (pg.versions[i] > 0) {
            /* a refresh sends no document, but only for a manifest the broker took: one never
             * acknowledged may have documents the device has not got */
            bool bare = refresh && pg.acknowledged[i];
            e = send_device(p, pg.ids[i], bare ? no_documents : NULL, 0, pg.versions[i]);
            sent++;
        }
        if (e && *first == MGO_OK)
            *first = e; /* one device that fails does not hold the others back */
        snprintf(p->pass_after, sizeof p->pass_after, "%s", pg.ids[i]);
    }
    if (err) {
        if (*first == MGO_OK)
            *first = err; /* the same page again at the next poll */
    } else if (i == pg.len && pg.len < budget) {
        MGO_LOGI(TAG, "%s every device's manifest",
                 refresh ? "re-issued (valid for the next period)" : "published again");
        p->pass = MGO_PUBLISH_PASS_NONE;
        p->pass_after[0] = '\0';
    }
    page_free(&pg);
    return sent;
}

/* The unacknowledged manifests not in flight, at most budget devices, from where the walk
 * stopped. Returns how many were sent; *done: the walk went round the whole list; *cut: it
 * stopped for the budget with devices left. */
static size_t unacked_step(struct mgo_publisher *p, size_t budget, bool *done, bool *cut,
                           mgo_err *first)
{
    *done = false;
    *cut = false;
    bool from_start = p->unacked_after[0] == '\0';
    /* the page may hold devices in flight, which are passed over (a page of them only moves
     * the walk on: *cut, the next step goes on from there) */
    size_t limit = 2 * budget;
    struct page pg;
    mgo_err err = page_read(p, true, p->unacked_after, limit, &pg);
    size_t sent = 0, i = 0;
    for (; !err && i < pg.len && sent < budget && publishing(p); i++) {
        snprintf(p->unacked_after, sizeof p->unacked_after, "%s", pg.ids[i]);
        if (pg.versions[i] == 0 || in_flight(p, pg.ids[i], pg.versions[i]))
            continue; /* a role, or its acknowledgement will mark it published */
        mgo_err e = send_device(p, pg.ids[i], NULL, 0, pg.versions[i]);
        sent++;
        if (e && *first == MGO_OK)
            *first = e; /* one device that fails does not hold the others back */
    }
    if (err) {
        if (*first == MGO_OK)
            *first = err;
    } else if (i == pg.len && pg.len < limit) {
        p->unacked_after[0] = '\0'; /* the end: the next step starts from the first again */
        *done = from_start;
    } else {
        *cut = true;
    }
    page_free(&pg);
    return sent;
}

mgo_err mgo_publish__poll(struct mgo_publisher *p, size_t max, bool *more)
{
    *more = false;
    if (!publishing(p) || !mgo_outbox__connected(p->outbox))
        return MGO_OK;
    mgo_publish__record_acked(p); /* what is published, as far as known */
    size_t room = MGO_PUBLISH_MAX_PENDING - p->pending_len;
    if (room < MGO_PUBLISH_MIN_ROOM && p->pending_len > 0)
        return MGO_OK; /* a page read for a few devices costs as much as for many: the
                        * acknowledgements bring the next poll */
    size_t budget = max < room ? max : room;
    mgo_err first = MGO_OK;
    size_t sent = 0;
    if (budget > 0 && p->pass != MGO_PUBLISH_PASS_NONE)
        sent += pass_step(p, budget, &first);
    bool done = false, cut = false;
    if (sent < budget && p->pass == MGO_PUBLISH_PASS_NONE) {
        sent += unacked_step(p, budget - sent, &done, &cut, &first);
        if (done && p->pending_len < MGO_PUBLISH_MAX_PENDING)
            p->backlog = false; /* round the whole list with room to spare */
    }
    if (sent > 0)
        MGO_LOGD(TAG, "published the stored desired state of %zu devices", sent);
    *more = MGO_PUBLISH_MAX_PENDING - p->pending_len >= MGO_PUBLISH_MIN_ROOM && first == MGO_OK &&
            (p->pass != MGO_PUBLISH_PASS_NONE || cut || (p->backlog && !done));
    return first;
}
