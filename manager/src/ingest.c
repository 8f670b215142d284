/* ingest.c - device messages into the store (ingest.h): status, capabilities, presence and
 * events; batches; held messages. */
#include "ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "events.h"
#include "jw.h"
#include "livebus.h"
#include "metrics.h"
#include "mgr_internal.h"
#include "sse.h"
#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/problems.h"
#include "mgo/topic.h"

#define TAG "ingest"

/* One acknowledged device message: in the open batch, or held. */
struct mgo_ingest_msg {
    struct mgo_ingest_msg *next;
    char *topic;
    uint8_t *payload;
    size_t len;
    enum mgo_mm_kind kind; /* for the metrics */
    bool http; /* a status POSTed on the southbound HTTP API (mgo_ingest__http_status) */
};

/* One event-stream event waiting for its batch's commit. */
struct mgo_ingest_live {
    struct mgo_ingest_live *next;
    const char *event;   /* static name */
    char *deployment_id; /* NULL: about no deployment */
    char *json;
};

void mgo_ingest__init(struct mgo_ingest *in, struct mgo_mgr_store *store, struct mgo_publisher *pub,
                      struct mgo_sse_hub *hub, const char *prefix)
{
    memset(in, 0, sizeof *in);
    in->store = store;
    in->pub = pub;
    in->hub = hub;
    in->prefix = prefix;
    mgo_ingest__new_epoch(in->next_epoch);
}

void mgo_ingest__new_epoch(char out[MGO_MGR_EPOCH_SIZE])
{
    uint8_t raw[8];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        /* no entropy: the clock still gives a value no earlier run used */
        uint64_t t = (uint64_t)mgo_mgr_store_now_ms() * 1000003u;
        memcpy(raw, &t, sizeof raw);
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void msg_free(struct mgo_ingest_msg *msg)
{
    free(msg->topic);
    free(msg->payload);
    free(msg);
}

static void live_free(struct mgo_ingest_live *l)
{
    free(l->deployment_id);
    free(l->json);
    free(l);
}

static void drop_live(struct mgo_ingest *in)
{
    while (in->live_head) {
        struct mgo_ingest_live *l = in->live_head;
        in->live_head = l->next;
        live_free(l);
    }
    in->live_tail = NULL;
}

/* ---- live events ----------------------------------------------------------------------- */

/* A live event for the API's event stream (sse.c). live_begin returns false, and builds
 * nothing, when no client follows deployment_id (NULL: events about no deployment), so
 * ingest pays for the JSON only when someone reads it; otherwise it opens the JSON object,
 * which the caller fills (events.c) and live_end closes: sent now when the change is already
 * committed, or kept until the batch's commit. */
struct live_event {
    struct mgo_buf buf;
    struct mgo_jw w;
};

static bool live_begin(struct mgo_ingest *in, const char *deployment_id, size_t max_bytes,
                       struct live_event *e)
{
    if (in->hub == NULL || (!in->notify_live && !mgo_sse__wanted(in->hub, deployment_id)))
        return false;
    mgo_buf_init(&e->buf, max_bytes);
    mgo_jw_init(&e->w, &e->buf);
    mgo_jw_obj(&e->w);
    return true;
}

static void live_end(struct mgo_ingest *in, const char *event, const char *deployment_id,
                     struct live_event *e)
{
    mgo_jw_obj_end(&e->w);
    if (e->w.err != MGO_OK)
        goto cleanup;
    if (!in->tx && !in->notify_live) {
        mgo_sse__publish(in->hub, event, deployment_id, (const char *)e->buf.data);
        goto cleanup;
    }
    struct mgo_ingest_live *l = calloc(1, sizeof *l);
    if (l) {
        l->event = event;
        l->deployment_id = deployment_id ? strdup(deployment_id) : NULL;
        l->json = strdup((const char *)e->buf.data);
    }
    if (!l || !l->json || (deployment_id && !l->deployment_id)) {
        MGO_LOGW(TAG, "out of memory: a live %s event is not sent", event);
        if (l)
            live_free(l);
        goto cleanup;
    }
    if (in->live_tail)
        in->live_tail->next = l;
    else
        in->live_head = l;
    in->live_tail = l;
cleanup:
    mgo_buf_cleanup(&e->buf);
}

static void send_live(struct mgo_ingest *in)
{
    for (struct mgo_ingest_live *l = in->live_head; l; l = l->next)
        mgo_sse__publish(in->hub, l->event, l->deployment_id, l->json);
    drop_live(in);
}

/* notify_live: the batch's live events as notifications (livebus.h), in one statement inside
 * its own savepoint, so that a failure costs the events and not the batch (the store keeps
 * everything; streams that miss an event see it in their next snapshot). Outside a batch's
 * transaction the notifications go at once. */
static void notify_live(struct mgo_ingest *in)
{
    size_t n = 0;
    for (struct mgo_ingest_live *l = in->live_head; l; l = l->next)
        n++;
    if (n == 0)
        return;
    /* every event's payloads (one, or the parts of a long one), one after the other */
    struct mgo_buf buf;
    mgo_buf_init(&buf, n * (MGO_LIVEBUS_EVENT_MAX + 16u * MGO_MGR_NOTIFY_MAX));
    size_t total = 0;
    for (struct mgo_ingest_live *l = in->live_head; l; l = l->next) {
        size_t k = 0;
        mgo_err e = mgo_livebus__payloads(l->event, l->deployment_id, l->json, &buf, &k);
        if (e)
            MGO_LOGW(TAG, "a live %s event of %zu bytes is not relayed: %s", l->event,
                     strlen(l->json), mgo_strerror(e));
        total += k;
    }
    mgo_err err = in->tx ? mgo_mgr_store_begin(in->store) : MGO_OK;
    if (!err) {
        err = mgo_livebus__send(in->store, &buf, total);
        if (in->tx) {
            if (err)
                mgo_mgr_store_rollback(in->store);
            else
                err = mgo_mgr_store_commit(in->store);
        }
    }
    if (err)
        MGO_LOGW(TAG, "%zu live events not sent to the managers' event streams: %s", n,
                 mgo_strerror(err));
    mgo_buf_cleanup(&buf);
    drop_live(in);
}

/* ---- one message ----------------------------------------------------------------------- */

static void log_problems(const char *what, const char *topic, const struct mgo_problems *p)
{
    char text[512];
    mgo_problems_format(p, text, sizeof text);
    MGO_LOGW(TAG, "%s on %s refused: %s", what, topic, text);
}

/* The device's receipt after a handled status: with the batch's commit, or now when there is
 * no open batch (the status was committed by itself). */
static void note_receipt(struct mgo_ingest *in, const char *device,
                         const struct mgo_mgr_position *pos)
{
    if (pos->gap_opened) {
        MGO_LOGI(TAG,
                 "device %s: statuses missing after (%llu, %llu); asking for a replay "
                 "(receipt epoch %s)",
                 device, (unsigned long long)pos->boot, (unsigned long long)pos->seq, pos->epoch);
        mgo_ingest__new_epoch(in->next_epoch);
    }
    if (!in->tx) {
        MGO_IGNORE(mgo_publish__receipt(in->pub, device, pos->epoch, pos->boot, pos->seq));
        return;
    }
    if (in->receipts_len == in->receipts_cap) {
        size_t cap = in->receipts_cap ? 2 * in->receipts_cap : 64;
        void *r = realloc(in->receipts, cap * sizeof *in->receipts);
        if (r == NULL) {
            /* the next receipt of the device covers this one too */
            MGO_LOGW(TAG, "out of memory: device %s's receipt waits for its next status", device);
            return;
        }
        in->receipts = r;
        in->receipts_cap = cap;
    }
    struct mgo_ingest_receipt *r = &in->receipts[in->receipts_len++];
    snprintf(r->device, sizeof r->device, "%s", device);
    snprintf(r->epoch, sizeof r->epoch, "%s", pos->epoch);
    r->boot = pos->boot;
    r->seq = pos->seq;
}

static int receipt_cmp(const void *a, const void *b)
{
    const struct mgo_ingest_receipt *x = a, *y = b;
    int c = strcmp(x->device, y->device);
    if (c != 0)
        return c;
    /* the newer receipt of a device last (positions only grow within a batch) */
    if (x->boot != y->boot)
        return x->boot < y->boot ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* After a commit: the newest receipt of each device in the batch. */
static void send_receipts(struct mgo_ingest *in)
{
    if (in->receipts_len == 0)
        return;
    qsort(in->receipts, in->receipts_len, sizeof in->receipts[0], receipt_cmp);
    for (size_t i = 0; i < in->receipts_len; i++) {
        const struct mgo_ingest_receipt *r = &in->receipts[i];
        if (i + 1 < in->receipts_len && strcmp(r->device, in->receipts[i + 1].device) == 0)
            continue;
        MGO_IGNORE(mgo_publish__receipt(in->pub, r->device, r->epoch, r->boot, r->seq));
    }
    in->receipts_len = 0;
}

/* Counts a message against the device's rate and logs the excess: one line when a window
 * first passes the limit, one when a window that passed it ends. *over: past the limit. */
static mgo_err rate_take(struct mgo_ingest *in, const char *device, enum mgo_mgr_rate_kind kind,
                         uint32_t per_minute, bool *over)
{
    *over = false;
    if (per_minute == 0)
        return MGO_OK;
    struct mgo_mgr_rate r;
    mgo_err err =
        mgo_mgr_store_rate_take(in->store, device, kind, per_minute, mgo_mgr_store_now_ms(), &r);
    if (err)
        return err;
    bool events = kind == MGO_MGR_RATE_EVENTS;
    if (r.ended_over > 0)
        MGO_LOGW(TAG,
                 "device %s: %llu %s over the rate of %u a minute in the last window "
                 "(%s %llu in all)",
                 device, (unsigned long long)r.ended_over, events ? "events dropped" : "statuses",
                 per_minute, events ? "eventsDropped" : "statusesOverRate",
                 (unsigned long long)r.total_over);
    if (r.over && r.window_over == 1)
        MGO_LOGW(TAG, "device %s: more than %u %s a minute; %s", device, per_minute,
                 events ? "events" : "statuses",
                 events ? "the excess is dropped and counted (eventsDropped)"
                        : "the excess is stored all the same and counted (statusesOverRate)");
    *over = r.over;
    return MGO_OK;
}

/* A journaled status the manager refuses for good still moves the device's position on, so
 * its agent does not keep (and replay) it for ever. */
static mgo_err take_position(struct mgo_ingest *in, const struct mgo_topic *t,
                             const struct mgo_deployment_status *st)
{
    if (!st->has_journal)
        return MGO_OK;
    struct mgo_mgr_position pos;
    memset(&pos, 0, sizeof pos);
    snprintf(pos.new_epoch, sizeof pos.new_epoch, "%s", in->next_epoch);
    mgo_err err = mgo_mgr_store_position_take(in->store, t->device_id, st->boot, st->seq, &pos);
    if (err == MGO_ERR_STALE)
        err = MGO_OK;
    if (err == MGO_OK)
        note_receipt(in, t->device_id, &pos);
    return err;
}

static mgo_err ingest_status(struct mgo_ingest *in, const struct mgo_topic *t, const char *topic,
                             const uint8_t *payload, size_t len, bool http)
{
    mgo_err result = MGO_OK;
    /* the device's binding and the deployment's owner in one read (before the decode: the
     * read names only the topic's ids) */
    struct mgo_mgr_status_target owner;
    mgo_err err = mgo_mgr_store_status_target(in->store, t->device_id, t->deployment_id, &owner);
    if (err)
        return err; /* the store could not be read: try again later */
    if (!http && owner.http) {
        /* an HTTP device reports over HTTP; the copy on its MQTT status topic is the
         * manager's own (docs/margo-http.md), already stored */
        MGO_LOGD(TAG, "status on %s: device %s is bound to HTTP; not ingested from MQTT", topic,
                 t->device_id);
        return MGO_OK;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_deployment_status st;
    struct mgo_buf json;
    mgo_buf_init(&json, 4u * MGO_MAX_MESSAGE_BYTES);
    if (mgo_deployment_status_decode(payload, len, &arena, &st, &p) != MGO_OK) {
        log_problems("status", topic, &p);
        goto cleanup;
    }
    if (strcmp(st.deployment_id, t->deployment_id) != 0) {
        MGO_LOGW(TAG, "status on %s refused: deploymentId %.64s differs from the topic", topic,
                 st.deployment_id);
        goto cleanup;
    }
    if (st.device_id && strcmp(st.device_id, t->device_id) != 0) {
        MGO_LOGW(TAG, "status on %s refused: deviceId %.128s differs from the topic", topic,
                 st.device_id);
        goto cleanup;
    }
    /* replays are the agent catching up after an outage: not counted against the rate. A
     * status past the rate is stored all the same (ingest.h), and a count the store could
     * not take does not hold the status back (the store error shows again below) */
    bool over = false;
    if (t->kind == MGO_TOPIC_STATUS &&
        rate_take(in, t->device_id, MGO_MGR_RATE_STATUSES, in->status_rate, &over) != MGO_OK)
        MGO_LOGD(TAG, "device %s: status not counted against the rate", t->device_id);
    if (!owner.found || strcmp(owner.device, t->device_id) != 0) {
        MGO_LOGW_FOR(TAG, t->device_id, t->deployment_id,
                     "status on %s ignored: unknown deployment %s for device %s", topic,
                     t->deployment_id, t->device_id);
        result = take_position(in, t, &st);
        goto cleanup;
    }
    struct mgo_value tree;
    if (mgo_deployment_status_to_value(&st, &arena, &tree) != MGO_OK ||
        mgo_value_to_json(&tree, false, &json) != MGO_OK)
        goto cleanup;
    struct mgo_mgr_status_row row = {
        .deployment_id = t->deployment_id,
        .device_id = t->device_id,
        .state = mgo_state_name(st.state),
        .has_journal = st.has_journal,
        .boot = st.boot,
        .seq = st.seq,
        .doc_json = (const char *)json.data,
        .received_ms = mgo_mgr_store_now_ms(), /* stored and sent live alike */
    };
    struct mgo_mgr_status_outcome out;
    memset(&out, 0, sizeof out);
    snprintf(out.position.new_epoch, sizeof out.position.new_epoch, "%s", in->next_epoch);
    err = mgo_mgr_store_status_apply(in->store, &row, &out);
    if (err == MGO_ERR_STALE) {
        MGO_LOGI(TAG, "status on %s ignored: journal position (%llu, %llu) already seen", topic,
                 (unsigned long long)st.boot, (unsigned long long)st.seq);
        note_receipt(in, t->device_id, &out.position);
        /* a removed status published again (a re-send after a reconnect) must not stay
         * retained either (protocol.md §7.4) */
        if (st.state == MGO_STATE_REMOVED && owner.desired != MGO_MGR_DESIRED_PRESENT)
            MGO_IGNORE(mgo_publish__clear_removed(in->pub, t->device_id, t->deployment_id));
        goto cleanup;
    }
    if (err) {
        MGO_LOGE(TAG, "status on %s not stored: %s; kept and retried", topic, mgo_strerror(err));
        result = err;
        goto cleanup;
    }
    if (out.has_position)
        note_receipt(in, t->device_id, &out.position);
    bool changed = out.changed;
    if (!out.newest) {
        MGO_LOGI_FOR(TAG, t->device_id, t->deployment_id,
                     "device %s deployment %s: %s at (%llu, %llu) added to the history (a "
                     "replay older than the current status)",
                     t->device_id, t->deployment_id, row.state, (unsigned long long)st.boot,
                     (unsigned long long)st.seq);
        goto cleanup;
    }
    /* a line per change of state; repeats (a component moving on, a re-sent status) would
     * be one write per message at fleet rates */
    in->status_changed = in->status_changed || changed;
    if (changed)
        MGO_LOGI_FOR(TAG, t->device_id, t->deployment_id, "device %s deployment %s: %s",
                     t->device_id, t->deployment_id, row.state);
    else
        MGO_LOGD_FOR(TAG, t->device_id, t->deployment_id, "device %s deployment %s: %s (again)",
                     t->device_id, t->deployment_id, row.state);
    /* a failure here is logged and left to the after-connect sweep, which clears it again;
     * the status itself is stored */
    if (st.state == MGO_STATE_REMOVED && owner.desired == MGO_MGR_DESIRED_REMOVING)
        MGO_IGNORE(mgo_publish__clear_removed(in->pub, t->device_id, t->deployment_id));
    struct live_event ev;
    if (live_begin(in, t->deployment_id, 8u * MGO_MAX_MESSAGE_BYTES, &ev)) {
        mgo_events__status(&ev.w, &row, mgo_mgr_desired_name(owner.desired), owner.manifest_version,
                           false);
        live_end(in, "status", t->deployment_id, &ev);
    }
cleanup:
    mgo_buf_cleanup(&json);
    mgo_arena_cleanup(&arena);
    return result;
}

static mgo_err ingest_capabilities(struct mgo_ingest *in, const struct mgo_topic *t,
                                   const char *topic, const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_capabilities caps;
    struct mgo_buf canon;
    mgo_buf_init(&canon, MGO_MAX_MESSAGE_BYTES);
    struct mgo_value tree;
    if (mgo_value_from_msgpack(payload, len, &arena, &tree, &p) != MGO_OK ||
        mgo_capabilities_from_value(&tree, &arena, &caps, &p) != MGO_OK) {
        log_problems("capabilities", topic, &p);
        goto cleanup;
    }
    if (caps.id == NULL || strcmp(caps.id, t->device_id) != 0) {
        MGO_LOGW(TAG, "capabilities on %s refused: properties.id %.128s differs from the topic",
                 topic, caps.id ? caps.id : "(none)");
        goto cleanup;
    }
    if (mgo_value_to_msgpack(&tree, &canon) != MGO_OK)
        goto cleanup;
    result = mgo_mgr_store_device_put_caps(in->store, t->device_id, canon.data, canon.len);
    if (result == MGO_OK) {
        MGO_LOGI_FOR(TAG, t->device_id, NULL, "device %s: capabilities stored", t->device_id);
        struct live_event ev;
        if (live_begin(in, NULL, 4096, &ev)) {
            mgo_events__capabilities(&ev.w, t->device_id);
            live_end(in, "capabilities", NULL, &ev);
        }
    }
cleanup:
    mgo_buf_cleanup(&canon);
    mgo_arena_cleanup(&arena);
    return result;
}

static mgo_err ingest_presence(struct mgo_ingest *in, const struct mgo_topic *t, const char *topic,
                               const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_presence pr;
    if (mgo_presence_decode(payload, len, &arena, &pr, &p) != MGO_OK) {
        log_problems("presence", topic, &p);
        goto cleanup;
    }
    if (pr.device_id && strcmp(pr.device_id, t->device_id) != 0) {
        MGO_LOGW(TAG, "presence on %s refused: deviceId differs from the topic", topic);
        goto cleanup;
    }
    result = mgo_mgr_store_device_put_presence(in->store, t->device_id, pr.online, pr.boot);
    if (result == MGO_OK) {
        MGO_LOGI_FOR(TAG, t->device_id, NULL, "device %s is %s (boot %llu)", t->device_id,
                     pr.online ? "online" : "offline", (unsigned long long)pr.boot);
        struct live_event ev;
        if (live_begin(in, NULL, 4096, &ev)) {
            mgo_events__presence(&ev.w, t->device_id, pr.online, pr.boot);
            live_end(in, "presence", NULL, &ev);
        }
    }
cleanup:
    mgo_arena_cleanup(&arena);
    return result;
}

static mgo_err ingest_event(struct mgo_ingest *in, const struct mgo_topic *t, const char *topic,
                            const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_event e;
    if (mgo_event_decode(payload, len, &arena, &e, &p) != MGO_OK) {
        log_problems("event", topic, &p);
        goto cleanup;
    }
    if (e.device_id && strcmp(e.device_id, t->device_id) != 0) {
        MGO_LOGW(TAG, "event on %s refused: deviceId differs from the topic", topic);
        goto cleanup;
    }
    bool over = false;
    result = rate_take(in, t->device_id, MGO_MGR_RATE_EVENTS, in->event_rate, &over);
    if (result != MGO_OK || over)
        goto cleanup; /* over: counted and logged by rate_take */
    MGO_LOGI_FOR(TAG, t->device_id, NULL, "device %s event %s (%s): %.200s", t->device_id, e.type,
                 e.severity, e.message ? e.message : "");
    result = mgo_mgr_store_event_add(in->store, t->device_id, e.type, e.severity, e.message);
    struct live_event ev;
    if (result == MGO_OK && live_begin(in, e.deployment_id, 64u * 1024u, &ev)) {
        mgo_events__device_event(&ev.w, t->device_id, e.type, e.severity, e.message,
                                 e.deployment_id);
        live_end(in, "device-event", e.deployment_id, &ev);
    }
cleanup:
    mgo_arena_cleanup(&arena);
    return result;
}

/* Ingests one device message. MGO_OK when it was handled (stored, or refused for a reason
 * that retrying cannot change); another error when the store failed (locked by another
 * process past the busy timeout, disk full, I/O error): the caller holds it for later. */
static mgo_err ingest_one(struct mgo_ingest *in, const char *topic, const uint8_t *payload,
                          size_t len, bool http)
{
    struct mgo_topic t;
    if (mgo_topic_parse(in->prefix, topic, strlen(topic), &t) != MGO_OK) {
        MGO_LOGD(TAG, "ignoring message on %.200s (not a margo topic)", topic);
        return MGO_OK;
    }
    if (len == 0) {
        MGO_LOGD(TAG, "ignoring empty payload on %s (a cleared retained message)", topic);
        return MGO_OK;
    }
    if (mgo_mgr_store_is_role(in->store, t.device_id)) {
        /* the broker's device patterns apply to role certificates too (margo.acl): a
         * monitor can publish as a "device" named after itself; it never is one */
        if (in->roles_refused++ % 1000 == 0)
            MGO_LOGW(TAG,
                     "refusing a message on %.200s: %s is a role identity (manager or "
                     "monitor), never a device (%llu refused)",
                     topic, t.device_id, (unsigned long long)in->roles_refused);
        return MGO_OK;
    }
    if (len > MGO_MAX_MESSAGE_BYTES) {
        MGO_LOGW(TAG, "ignoring %zu bytes on %s: larger than %u", len, topic,
                 MGO_MAX_MESSAGE_BYTES);
        return MGO_OK;
    }
    switch (t.kind) {
    case MGO_TOPIC_STATUS:
    case MGO_TOPIC_REPLAY: /* a status the manager may have lost (protocol.md §6.3) */
        return ingest_status(in, &t, topic, payload, len, http);
    case MGO_TOPIC_CAPABILITIES:
        return ingest_capabilities(in, &t, topic, payload, len);
    case MGO_TOPIC_STATE:
        return ingest_presence(in, &t, topic, payload, len);
    case MGO_TOPIC_EVENTS:
        return ingest_event(in, &t, topic, payload, len);
    default:
        /* our own desired/deployments topics: not subscribed, ignore */
        return MGO_OK;
    }
}

/* ---- held messages ------------------------------------------------------------------ */

static enum mgo_mm_kind kind_of(const struct mgo_ingest *in, const char *topic)
{
    struct mgo_topic t;
    if (mgo_topic_parse(in->prefix, topic, strlen(topic), &t) != MGO_OK)
        return MGO_MM_KIND_OTHER;
    switch (t.kind) {
    case MGO_TOPIC_STATUS:
        return MGO_MM_KIND_STATUS;
    case MGO_TOPIC_REPLAY:
        return MGO_MM_KIND_REPLAY;
    case MGO_TOPIC_CAPABILITIES:
        return MGO_MM_KIND_CAPABILITIES;
    case MGO_TOPIC_STATE:
        return MGO_MM_KIND_PRESENCE;
    case MGO_TOPIC_EVENTS:
        return MGO_MM_KIND_EVENT;
    default:
        return MGO_MM_KIND_OTHER;
    }
}

static void count(struct mgo_ingest *in, enum mgo_mm_kind kind, enum mgo_mm_result result, size_t n)
{
    if (in->metrics)
        mgo_counter_add(&in->metrics->ingest[kind][result], n);
}

static void held_pop(struct mgo_ingest *in)
{
    struct mgo_ingest_msg *msg = in->held_head;
    in->held_head = msg->next;
    if (in->held_head == NULL)
        in->held_tail = NULL;
    in->held_len--;
    msg_free(msg);
}

static void held_push(struct mgo_ingest *in, struct mgo_ingest_msg *msg)
{
    if (in->held_len == MGO_INGEST_MAX_HELD) {
        MGO_LOGE(TAG,
                 "store unavailable for too long: %u messages held; dropping the oldest "
                 "(%s); the device's retained state still converges",
                 MGO_INGEST_MAX_HELD, in->held_head->topic);
        count(in, in->held_head->kind, MGO_MM_DROPPED, 1);
        held_pop(in);
    }
    msg->next = NULL;
    if (in->held_tail)
        in->held_tail->next = msg;
    else
        in->held_head = msg;
    in->held_tail = msg;
    in->held_len++;
}

size_t mgo_ingest__held(const struct mgo_ingest *in)
{
    return in->held_len;
}

size_t mgo_ingest__retry_held(struct mgo_ingest *in, size_t max)
{
    size_t before = in->held_len;
    for (size_t i = 0; i < max && in->held_head != NULL; i++) {
        struct mgo_ingest_msg *msg = in->held_head;
        if (ingest_one(in, msg->topic, msg->payload, msg->len, msg->http) != MGO_OK)
            break;
        count(in, msg->kind, MGO_MM_HANDLED, 1);
        held_pop(in);
    }
    if (in->held_len == 0 && before > 0)
        MGO_LOGI(TAG, "store available again: %zu held messages stored", before);
    if (in->notify_live && !in->in_batch)
        notify_live(in); /* what the retried messages stored is committed already */
    return in->held_len;
}

/* ---- batches -------------------------------------------------------------------------- */

void mgo_ingest__begin(struct mgo_ingest *in)
{
    in->in_batch = true;
    in->tx = mgo_mgr_store_begin_batch(in->store) == MGO_OK;
}

/* ingest_one inside the open batch. A device row that another manager's batch has locked
 * (MGO_ERR_BUSY, mgo_mgr_store_begin_batch) ends this batch here: what it holds is committed,
 * which frees its locks, and the message is tried again first in a new batch, where the lock
 * is waited for while no other is held. */
static mgo_err ingest_in_batch(struct mgo_ingest *in, const char *topic, const uint8_t *payload,
                               size_t len, bool http)
{
    mgo_err err = ingest_one(in, topic, payload, len, http);
    if (err != MGO_ERR_BUSY || !in->tx)
        return err;
    MGO_LOGD(TAG, "%s: a device row is locked by another manager; batch of %zu committed early",
             topic, in->batch_len);
    MGO_IGNORE(mgo_ingest__commit(in)); /* logged there; its messages are held */
    mgo_ingest__begin(in);
    if (in->held_len > 0)
        return MGO_ERR_BUSY; /* that commit failed: this one waits behind its messages */
    return ingest_one(in, topic, payload, len, http);
}

static void ingest_message(struct mgo_ingest *in, char *topic, uint8_t *payload, size_t len,
                           bool http)
{
    bool own_batch = !in->in_batch;
    if (own_batch)
        mgo_ingest__begin(in);
    struct mgo_ingest_msg *msg = calloc(1, sizeof *msg);
    if (msg == NULL) {
        MGO_LOGE(TAG, "out of memory: message on %s dropped", topic);
        count(in, kind_of(in, topic), MGO_MM_DROPPED, 1);
        free(topic);
        free(payload);
        goto end;
    }
    msg->topic = topic;
    msg->payload = payload;
    msg->len = len;
    msg->kind = kind_of(in, topic);
    msg->http = http;
    /* behind held messages, to keep each device's order */
    if (in->held_len > 0 || ingest_in_batch(in, topic, payload, len, http) != MGO_OK) {
        count(in, msg->kind, MGO_MM_HELD, 1);
        held_push(in, msg);
    } else if (in->tx) {
        /* kept until the commit: a failed commit holds it for another try */
        if (in->batch_tail)
            in->batch_tail->next = msg;
        else
            in->batch_head = msg;
        in->batch_tail = msg;
        in->batch_len++;
    } else {
        count(in, msg->kind, MGO_MM_HANDLED, 1);
        msg_free(msg);
    }
end:
    if (own_batch)
        MGO_IGNORE(mgo_ingest__commit(in)); /* logged there; the messages are held */
}

void mgo_ingest__message(struct mgo_ingest *in, char *topic, uint8_t *payload, size_t len)
{
    ingest_message(in, topic, payload, len, false);
}

void mgo_ingest__http_status(struct mgo_ingest *in, char *topic, uint8_t *payload, size_t len)
{
    ingest_message(in, topic, payload, len, true);
}

mgo_err mgo_ingest__commit(struct mgo_ingest *in)
{
    mgo_err err = MGO_OK;
    if (in->notify_live)
        notify_live(in); /* before the commit, which sends the notifications */
    if (in->tx)
        err = mgo_mgr_store_commit(in->store); /* rolls back when it fails */
    in->tx = false;
    in->in_batch = false;
    if (err) {
        MGO_LOGE(TAG, "store: cannot commit a batch of %zu messages: %s; held and retried",
                 in->batch_len, mgo_strerror(err));
        drop_live(in);
        in->receipts_len = 0; /* nothing of it is stored */
        /* the batch came before anything held during it: it goes first */
        for (struct mgo_ingest_msg *msg = in->batch_head; msg; msg = msg->next)
            count(in, msg->kind, MGO_MM_HELD, 1);
        if (in->batch_head) {
            in->batch_tail->next = in->held_head;
            in->held_head = in->batch_head;
            if (in->held_tail == NULL)
                in->held_tail = in->batch_tail;
            in->held_len += in->batch_len;
            while (in->held_len > MGO_INGEST_MAX_HELD) {
                MGO_LOGE(TAG, "store unavailable for too long: dropping held message %s",
                         in->held_head->topic);
                count(in, in->held_head->kind, MGO_MM_DROPPED, 1);
                held_pop(in);
            }
        }
    } else {
        while (in->batch_head) {
            struct mgo_ingest_msg *msg = in->batch_head;
            in->batch_head = msg->next;
            count(in, msg->kind, MGO_MM_HANDLED, 1);
            msg_free(msg);
        }
        send_live(in);
        send_receipts(in);
        if (in->status_changed && in->on_status)
            in->on_status(in->on_status_ctx);
    }
    in->status_changed = false;
    in->batch_head = in->batch_tail = NULL;
    in->batch_len = 0;
    return err;
}

void mgo_ingest__cleanup(struct mgo_ingest *in)
{
    size_t lost = in->held_len;
    if (in->in_batch && in->tx) {
        mgo_mgr_store_rollback(in->store);
        lost += in->batch_len;
    }
    in->in_batch = in->tx = false;
    drop_live(in);
    free(in->receipts);
    in->receipts = NULL;
    in->receipts_len = in->receipts_cap = 0;
    while (in->batch_head) {
        struct mgo_ingest_msg *msg = in->batch_head;
        in->batch_head = msg->next;
        msg_free(msg);
    }
    in->batch_tail = NULL;
    in->batch_len = 0;
    if (lost > 0) /* the retained state comes back with the next subscription */
        MGO_LOGE(TAG, "stopping with %zu device messages the store never took", lost);
    while (in->held_head != NULL)
        held_pop(in);
}
