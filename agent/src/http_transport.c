/* http_transport.c - margo-agent as a standard Margo HTTP client (http_transport.h). */
#include "http_transport.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docs.h"
#include "downtime.h"
#include "mgo/arena.h"
#include "mgo/backoff.h"
#include "mgo/buf.h"
#include "mgo/log.h"
#include "mgo/svid.h"
#include "wfm.h"
#include "wfm_client.h"

#define TAG "agent"

#define MANIFEST_TYPE "application/vnd.margo.manifest.v1+json"
/* Inside a window (polling or downtime) the wall clock is looked at again this often. */
#define RECHECK_MS 60000
#define MAX_CAPS_BYTES (64u * 1024u)
#define MAX_ANSWER_BYTES (64u * 1024u) /* problem bodies, status and capabilities answers */

enum tag { TAG_CAPS = 1, TAG_POLL, TAG_FETCH, TAG_BUNDLE, TAG_STATUS_BASE = 1000 };
#define BUNDLE_TYPE "application/vnd.margo.bundle.v1+tar+gzip"

/* A deployment document already fetched and converted (this run), by YAML digest. */
struct held_doc {
    struct mgo_wfm_ref ref;
    uint8_t *doc; /* internal form */
    size_t len;
};

struct mgo_http_transport {
    const struct mgo_agent_config *cfg;
    struct mgo_loop *loop;
    const struct mgo_agent_state *st;
    struct mgo_session *session;
    struct mgo_http_handlers h;
    struct mgo_wfm_client *client;
    char peer[MGO_SVID_MAX_URI + 1]; /* the WFM's SPIFFE ID, from the device's SVID */
    struct mgo_downtime poll_windows[MGO_HTTP_MAX_POLL_WINDOWS];
    size_t poll_len;
    struct mgo_downtime downtime[MGO_SESSION_MAX_DOWNTIME];
    size_t down_len;

    /* polling */
    uint64_t poll_timer;
    bool polling; /* a poll or its fetches are in progress */
    struct mgo_backoff poll_backoff;
    char etag[160];               /* of the last manifest dealt with */
    char candidate_etag[160];     /* of the manifest being fetched */
    uint64_t handed_version;      /* last manifest handed to the executor in this run */
    struct mgo_wfm_manifest *man; /* being fetched */
    size_t fetch_i;
    size_t fetched;               /* documents fetched one by one for it */
    bool via_bundle;              /* its documents came from the bundle */
    struct held_doc *held, *next; /* [MGO_MAX_DEPLOYMENTS] each */
    size_t held_len, next_len;

    /* capabilities */
    uint8_t *caps_sent; /* MessagePack of what the WFM took */
    size_t caps_sent_len;
    bool caps_busy;

    /* statuses */
    int next_token;
    int status_token; /* 0 = none in flight */
    bool status_blocked;
    uint64_t status_timer;
    struct mgo_backoff status_backoff;
    int drop_token; /* a status that cannot be converted: settled from a 0 ms timer */
};

static time_t wall_now(void)
{
    return time(NULL);
}

static bool in_downtime(const struct mgo_http_transport *t)
{
    return mgo_downtime_active(t->downtime, t->down_len, wall_now(), NULL);
}

/* ---- answers' wording --------------------------------------------------------------------- */

/* A short summary of an answer for the log: "http 403 (not-authorized: ...)". */
static void describe(const struct mgo_wfm_response *r, char *out, size_t len)
{
    if (r->status == 0) {
        snprintf(out, len, "no answer: %s", r->error);
        return;
    }
    const char *hint = "";
    switch (r->status) {
    case 401:
    case 403:
        hint = " (is this device's certificate trusted and on the WFM's accepted-client list?)";
        break;
    case 404:
        hint = " (unknown to the WFM)";
        break;
    case 406:
        hint = " (the WFM cannot serve " MANIFEST_TYPE ")";
        break;
    default:
        break;
    }
    int body = r->body_len > 200 ? 200 : (int)r->body_len;
    bool printable = true;
    for (int i = 0; i < body; i++)
        if (r->body[i] < 0x20 || r->body[i] == 0x7f)
            printable = false; /* one log line; a multi-line or binary body is left out */
    snprintf(out, len, "http %ld%s%s%.*s", r->status, hint, body > 0 && printable ? ": " : "",
             printable ? body : 0, printable && r->body ? (const char *)r->body : "");
}

/* The delay an answer imposes: Retry-After when given (429, 503, 500; Margo), else the
 * back-off's next step. */
static int64_t retry_delay_ms(const struct mgo_wfm_response *r, struct mgo_backoff *b)
{
    uint32_t s = 0;
    if (r->retry_after[0] != '\0' && mgo_wfm_retry_after(r->retry_after, wall_now(), &s) == MGO_OK)
        return (int64_t)s * 1000 + 1; /* never before it elapses */
    if (r->retry_after[0] != '\0')
        MGO_LOGW(TAG, "wfm: Retry-After \"%s\" is neither seconds nor an HTTP-date; backing off",
                 r->retry_after);
    return mgo_backoff_next_ms(b);
}

/* ---- polling ------------------------------------------------------------------------------ */

static void poll_tick(void *ctx);

static void arm_poll(struct mgo_http_transport *t, int64_t delay_ms)
{
    mgo_loop_timer_cancel(t->loop, t->poll_timer);
    t->poll_timer = 0;
    if (mgo_loop_timer_add(t->loop, delay_ms, poll_tick, t, &t->poll_timer) != MGO_OK)
        MGO_LOGE(TAG, "wfm: poll timer not set: out of memory; polling stops");
}

static void free_docs(struct held_doc *d, size_t *len)
{
    for (size_t i = 0; i < *len; i++)
        free(d[i].doc);
    *len = 0;
}

/* The cycle ended: next poll after the interval (ok) or the delay the failure asks for. */
static void poll_end(struct mgo_http_transport *t, int64_t delay_ms)
{
    t->polling = false;
    free_docs(t->next, &t->next_len);
    if (delay_ms < 0) {
        mgo_backoff_reset(&t->poll_backoff);
        delay_ms = t->cfg->poll_interval_s * 1000;
    }
    arm_poll(t, delay_ms);
}

static void send_caps(struct mgo_http_transport *t)
{
    size_t len = 0;
    const uint8_t *caps = mgo_session_caps(t->session, &len);
    if (t->caps_busy || caps == NULL ||
        (t->caps_sent != NULL && t->caps_sent_len == len && memcmp(t->caps_sent, caps, len) == 0))
        return;
    struct mgo_buf json;
    mgo_buf_init(&json, MAX_CAPS_BYTES);
    char path[128 + MGO_MAX_DEVICE_ID_LEN];
    snprintf(path, sizeof path, "/api/v1/capabilities/%s", t->cfg->device_id);
    mgo_err err = mgo_wfm_caps_json(caps, len, &json);
    if (err == MGO_OK)
        err = mgo_wfm_client_submit(t->client, TAG_CAPS, "PUT", path, "application/json", NULL,
                                    "application/json", json.data, json.len, MAX_ANSWER_BYTES);
    if (err == MGO_OK)
        t->caps_busy = true;
    else
        MGO_LOGE(TAG, "wfm: capabilities not sent: %s", mgo_strerror(err));
    mgo_buf_cleanup(&json);
}

static void on_caps(struct mgo_http_transport *t, const struct mgo_wfm_response *r)
{
    t->caps_busy = false;
    char text[400];
    if (r->status == 200 || r->status == 201) {
        size_t len = 0;
        const uint8_t *caps = mgo_session_caps(t->session, &len);
        free(t->caps_sent);
        t->caps_sent = NULL;
        t->caps_sent_len = 0;
        if (caps != NULL && (t->caps_sent = malloc(len)) != NULL) {
            memcpy(t->caps_sent, caps, len);
            t->caps_sent_len = len;
        }
        MGO_LOGI(TAG, "wfm: capabilities %s (http %ld)", r->status == 201 ? "created" : "updated",
                 r->status);
        return;
    }
    describe(r, text, sizeof text);
    if (r->status == 0 && in_downtime(t))
        MGO_LOGD(TAG, "wfm: capabilities not sent: %s (downtime window)", text);
    else
        MGO_LOGW(TAG, "wfm: capabilities not sent: %s (tried again at the next poll)", text);
}

static void poll_tick(void *ctx)
{
    struct mgo_http_transport *t = ctx;
    t->poll_timer = 0;
    if (!in_downtime(t)) {
        /* queued first, so the WFM knows the device before its statuses (any hour: the
         * polling windows are about the desired state) */
        send_caps(t);
        if (!t->status_blocked)
            t->h.ready(t->h.ctx); /* statuses held back by a downtime window go now */
    }
    if (t->polling)
        return;
    int64_t wait =
        mgo_wfm_poll_wait(t->poll_windows, t->poll_len, t->downtime, t->down_len, wall_now());
    if (wait != 0) {
        int64_t ms = wait < 0 || wait * 1000 > RECHECK_MS ? RECHECK_MS : wait * 1000;
        MGO_LOGD(TAG, "wfm: outside the polling hours or in downtime; next look in %" PRId64 " ms",
                 ms);
        arm_poll(t, ms);
        return;
    }
    if (mgo_wfm_client_submit(t->client, TAG_POLL, "GET", "/api/v1/deployments", MANIFEST_TYPE,
                              t->etag[0] ? t->etag : NULL, NULL, NULL, 0,
                              MGO_WFM_MAX_MANIFEST_BYTES) != MGO_OK) {
        MGO_LOGE(TAG, "wfm: poll not queued");
        arm_poll(t, mgo_backoff_next_ms(&t->poll_backoff));
        return;
    }
    t->polling = true;
}

/* Fetches the next document of the manifest, or hands everything over when all are here. */
static void fetch_next(struct mgo_http_transport *t);

static const struct held_doc *held_find(const struct mgo_http_transport *t,
                                        const struct mgo_wfm_ref *ref)
{
    for (size_t i = 0; i < t->held_len; i++)
        if (strcmp(t->held[i].ref.id, ref->id) == 0 &&
            strcmp(t->held[i].ref.digest, ref->digest) == 0)
            return &t->held[i];
    return NULL;
}

static bool keep_doc(struct mgo_http_transport *t, const struct mgo_wfm_ref *ref,
                     const uint8_t *doc, size_t len)
{
    struct held_doc *d = &t->next[t->next_len];
    d->doc = malloc(len ? len : 1);
    if (d->doc == NULL)
        return false;
    memcpy(d->doc, doc, len);
    d->len = len;
    d->ref = *ref;
    t->next_len++;
    return true;
}

/* Everything fetched and verified: documents to the executor, then the internal manifest
 * naming them by their document digests (docs/protocol.md §5.1). */
static void hand_over(struct mgo_http_transport *t)
{
    const struct mgo_wfm_manifest *m = t->man;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_desired_ref *refs = calloc(m->len ? m->len : 1, sizeof *refs);
    char(*digests)[MGO_DIGEST_STR_SIZE] = calloc(m->len ? m->len : 1, sizeof *digests);
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = refs && digests ? MGO_OK : MGO_ERR_NOMEM;
    for (size_t i = 0; err == MGO_OK && i < t->next_len; i++) {
        struct mgo_doc_entry e;
        memset(&e, 0, sizeof e);
        char why[256];
        err = mgo_docs_examine(t->next[i].doc, t->next[i].len, &arena, &e, NULL, why, sizeof why);
        if (err != MGO_OK)
            MGO_LOGE(TAG, "wfm: %s: converted document refused: %s", t->next[i].ref.id, why);
        memcpy(digests[i], e.digest, sizeof digests[i]);
        refs[i] =
            (struct mgo_desired_ref){.deployment_id = t->next[i].ref.id, .digest = digests[i]};
    }
    struct mgo_desired_state ds = {.manifest_version = m->version,
                                   .device_id = t->cfg->device_id,
                                   .has_bundle = false,
                                   .deployments = refs,
                                   .deployments_len = t->next_len};
    if (err == MGO_OK)
        err = mgo_desired_state_encode(&ds, &buf);
    if (err == MGO_OK) {
        for (size_t i = 0; i < t->next_len; i++)
            t->h.deployment(t->h.ctx, t->next[i].ref.id, t->next[i].doc, t->next[i].len);
        t->h.desired(t->h.ctx, buf.data, buf.len);
        t->handed_version = m->version;
        snprintf(t->etag, sizeof t->etag, "%s", t->candidate_etag);
        /* the documents of this manifest are the ones to reuse next time */
        free_docs(t->held, &t->held_len);
        struct held_doc *swap = t->held;
        t->held = t->next;
        t->held_len = t->next_len;
        t->next = swap;
        t->next_len = 0;
        MGO_LOGI(TAG, "wfm: manifest %" PRIu64 " verified (%zu deployments; %s) and handed over",
                 m->version, m->len,
                 t->via_bundle    ? "documents from the bundle"
                 : t->fetched > 0 ? "new documents fetched one by one"
                                  : "no new document");
        poll_end(t, -1);
    } else {
        MGO_LOGE(TAG, "wfm: manifest %" PRIu64 " not handed over: %s", m->version,
                 mgo_strerror(err));
        poll_end(t, mgo_backoff_next_ms(&t->poll_backoff));
    }
    mgo_buf_cleanup(&buf);
    free(digests);
    free(refs);
    mgo_arena_cleanup(&arena);
}

static void fetch_next(struct mgo_http_transport *t)
{
    while (t->fetch_i < t->man->len) {
        const struct mgo_wfm_ref *ref = &t->man->refs[t->fetch_i];
        const struct held_doc *h = held_find(t, ref);
        if (h == NULL)
            break;
        if (!keep_doc(t, ref, h->doc, h->len)) {
            MGO_LOGE(TAG, "wfm: out of memory");
            poll_end(t, mgo_backoff_next_ms(&t->poll_backoff));
            return;
        }
        t->fetch_i++;
    }
    if (t->fetch_i == t->man->len) {
        hand_over(t);
        return;
    }
    const struct mgo_wfm_ref *ref = &t->man->refs[t->fetch_i];
    char path[64 + MGO_MAX_DEPLOYMENT_ID_LEN + MGO_DIGEST_STR_SIZE];
    /* built from the validated id (a UUID) and digest, not from the manifest's url */
    snprintf(path, sizeof path, "/api/v1/deployments/%s/%s", ref->id, ref->digest);
    if (mgo_wfm_client_submit(t->client, TAG_FETCH, "GET", path, "application/yaml", NULL, NULL,
                              NULL, 0, MGO_WFM_MAX_YAML_BYTES) != MGO_OK) {
        MGO_LOGE(TAG, "wfm: fetch of %s not queued", ref->id);
        poll_end(t, mgo_backoff_next_ms(&t->poll_backoff));
    }
}

static void on_fetch(struct mgo_http_transport *t, const struct mgo_wfm_response *r)
{
    const struct mgo_wfm_ref *ref = &t->man->refs[t->fetch_i];
    char text[600];
    if (r->status != 200) {
        describe(r, text, sizeof text);
        MGO_LOGW(TAG,
                 "wfm: GET deployment %s %s: %s; manifest %" PRIu64 " not applied (tried "
                 "again)",
                 ref->id, ref->digest, text, t->man->version);
        poll_end(t, retry_delay_ms(r, &t->poll_backoff));
        return;
    }
    struct mgo_buf doc;
    mgo_buf_init(&doc, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_wfm_deployment_doc(r->body, r->body_len, ref, &doc, text, sizeof text);
    if (err == MGO_OK && !keep_doc(t, ref, doc.data, doc.len))
        err = MGO_ERR_NOMEM;
    mgo_buf_cleanup(&doc);
    if (err != MGO_OK) {
        /* abort the whole update: the previous state stays (Margo) */
        MGO_LOGE(TAG, "wfm: manifest %" PRIu64 " refused: %s%s", t->man->version, text,
                 err == MGO_ERR_CRYPTO ? " (security: the served bytes are not the ones the "
                                         "manifest names)"
                                       : "");
        poll_end(t, mgo_backoff_next_ms(&t->poll_backoff));
        return;
    }
    t->fetch_i++;
    t->fetched++;
    fetch_next(t);
}

/* Converts the bundle's files (yamls[i] for manifest entry i; documents held from the last
 * manifest are reused) and hands everything over. */
static mgo_err take_bundle(struct mgo_http_transport *t, struct mgo_buf *yamls, char *text,
                           size_t text_len)
{
    mgo_err err = MGO_OK;
    struct mgo_buf doc;
    mgo_buf_init(&doc, MGO_MAX_MESSAGE_BYTES);
    for (size_t i = 0; err == MGO_OK && i < t->man->len; i++) {
        const struct mgo_wfm_ref *ref = &t->man->refs[i];
        const struct held_doc *h = held_find(t, ref);
        mgo_buf_reset(&doc);
        if (h != NULL) {
            if (!keep_doc(t, ref, h->doc, h->len))
                err = MGO_ERR_NOMEM;
            continue;
        }
        err = mgo_wfm_deployment_doc(yamls[i].data, yamls[i].len, ref, &doc, text, text_len);
        if (err == MGO_OK && !keep_doc(t, ref, doc.data, doc.len))
            err = MGO_ERR_NOMEM;
    }
    mgo_buf_cleanup(&doc);
    return err;
}

static void on_bundle(struct mgo_http_transport *t, const struct mgo_wfm_response *r)
{
    char text[600];
    if (r->status == 429 || r->status == 503 || r->status == 500) {
        describe(r, text, sizeof text);
        MGO_LOGW(TAG, "wfm: GET bundle %s: %s", t->man->bundle_digest, text);
        poll_end(t, retry_delay_ms(r, &t->poll_backoff));
        return;
    }
    mgo_err err = MGO_ERR_NET;
    if (r->status == 200) {
        struct mgo_buf *yamls = calloc(t->man->len ? t->man->len : 1, sizeof *yamls);
        err = yamls ? MGO_OK : MGO_ERR_NOMEM;
        for (size_t i = 0; yamls && i < t->man->len; i++)
            mgo_buf_init(&yamls[i], MGO_WFM_MAX_YAML_BYTES);
        if (err == MGO_OK)
            err = mgo_wfm_bundle_extract(r->body, r->body_len, t->man, yamls, text, sizeof text);
        if (err == MGO_OK) {
            err = take_bundle(t, yamls, text, sizeof text);
            if (err != MGO_OK) {
                /* a document the manifest names by its digest is invalid: refused as a whole,
                 * as when it is fetched alone */
                MGO_LOGE(TAG, "wfm: manifest %" PRIu64 " refused: %s", t->man->version, text);
                err = MGO_ERR_CRYPTO;
            }
        } else if (err == MGO_ERR_CRYPTO) {
            MGO_LOGE(TAG,
                     "wfm: manifest %" PRIu64 " refused: %s (security: the served bytes "
                     "are not the ones the manifest names)",
                     t->man->version, text);
        }
        for (size_t i = 0; yamls && i < t->man->len; i++)
            mgo_buf_cleanup(&yamls[i]);
        free(yamls);
        if (err == MGO_OK) {
            t->fetch_i = t->man->len;
            t->via_bundle = true;
            hand_over(t);
            return;
        }
        if (err == MGO_ERR_CRYPTO) {
            poll_end(t, mgo_backoff_next_ms(&t->poll_backoff));
            return;
        }
    } else {
        describe(r, text, sizeof text);
    }
    /* the bundle is a convenience: the documents one by one carry the same bytes */
    MGO_LOGW(TAG, "wfm: bundle %s not usable (%s); fetching the documents one by one",
             t->man->bundle_digest, text);
    free_docs(t->next, &t->next_len);
    t->fetch_i = 0;
    fetch_next(t);
}

static void on_poll(struct mgo_http_transport *t, const struct mgo_wfm_response *r)
{
    char text[600];
    if (r->status == 304) {
        MGO_LOGD(TAG, "wfm: manifest unchanged (304)");
        poll_end(t, -1);
        return;
    }
    if (r->status != 200) {
        describe(r, text, sizeof text);
        if (r->status == 0 && in_downtime(t))
            MGO_LOGD(TAG, "wfm: poll: %s (downtime window)", text);
        else
            MGO_LOGW(TAG, "wfm: poll: %s", text);
        poll_end(t, retry_delay_ms(r, &t->poll_backoff));
        return;
    }
    uint64_t accepted =
        t->st->manifest_version > t->handed_version ? t->st->manifest_version : t->handed_version;
    mgo_err err = mgo_wfm_manifest_parse(r->body, r->body_len, accepted, t->man, text, sizeof text);
    if (err == MGO_ERR_STALE && t->man->version == accepted) {
        MGO_LOGD(TAG, "wfm: manifest %" PRIu64 " is the one held", t->man->version);
    } else if (err == MGO_ERR_STALE) {
        MGO_LOGW(TAG, "wfm: security: manifest refused: %s", text);
    } else if (err != MGO_OK) {
        MGO_LOGE(TAG, "wfm: manifest refused: %s", text);
    }
    if (err != MGO_OK) {
        /* the same ETag names the same bytes, which would be refused again */
        snprintf(t->etag, sizeof t->etag, "%s", r->etag);
        poll_end(t, -1);
        return;
    }
    MGO_LOGI(TAG, "wfm: manifest %" PRIu64 " (%zu deployments) received", t->man->version,
             t->man->len);
    snprintf(t->candidate_etag, sizeof t->candidate_etag, "%s", r->etag);
    t->fetch_i = 0;
    t->fetched = 0;
    t->via_bundle = false;
    free_docs(t->next, &t->next_len);
    /* the bundle when more than half of the documents are new (a first sync, a large change),
     * else the new documents one by one (the client's choice in Margo) */
    size_t need = 0;
    for (size_t i = 0; i < t->man->len; i++)
        if (held_find(t, &t->man->refs[i]) == NULL)
            need++;
    if (t->man->has_bundle && need * 2 > t->man->len) {
        char path[64 + MGO_DIGEST_STR_SIZE];
        snprintf(path, sizeof path, "/api/v1/bundles/%s", t->man->bundle_digest);
        if (mgo_wfm_client_submit(t->client, TAG_BUNDLE, "GET", path, BUNDLE_TYPE, NULL, NULL, NULL,
                                  0, MGO_WFM_MAX_BUNDLE_BYTES) == MGO_OK)
            return;
        MGO_LOGW(TAG, "wfm: bundle fetch not queued; fetching the documents one by one");
    }
    fetch_next(t);
}

/* ---- statuses ----------------------------------------------------------------------------- */

static void status_unblock(void *ctx)
{
    struct mgo_http_transport *t = ctx;
    t->status_timer = 0;
    if (in_downtime(t)) {
        if (mgo_loop_timer_add(t->loop, RECHECK_MS, status_unblock, t, &t->status_timer) != MGO_OK)
            MGO_LOGE(TAG, "wfm: status timer not set: out of memory");
        return;
    }
    t->status_blocked = false;
    t->h.ready(t->h.ctx);
}

static void status_block(struct mgo_http_transport *t, int64_t delay_ms)
{
    t->status_blocked = true;
    mgo_loop_timer_cancel(t->loop, t->status_timer);
    if (mgo_loop_timer_add(t->loop, delay_ms, status_unblock, t, &t->status_timer) != MGO_OK)
        MGO_LOGE(TAG, "wfm: status timer not set: out of memory");
}

static void on_status(struct mgo_http_transport *t, const struct mgo_wfm_response *r)
{
    int token = t->status_token;
    t->status_token = 0;
    char text[600];
    if (r->status >= 200 && r->status <= 299) {
        mgo_backoff_reset(&t->status_backoff);
        t->h.published(t->h.ctx, token, true);
        return;
    }
    describe(r, text, sizeof text);
    if (r->status == 400 || r->status == 404 || r->status == 422) {
        /* refused for good: sending it again cannot succeed, and it would hold back every
         * later status */
        MGO_LOGE(TAG, "wfm: status refused by the WFM: %s; dropped from the journal", text);
        t->h.published(t->h.ctx, token, true);
        return;
    }
    if (r->status == 0 && in_downtime(t))
        MGO_LOGD(TAG, "wfm: status not delivered: %s (downtime window)", text);
    else
        MGO_LOGW(TAG, "wfm: status not delivered: %s (kept, sent again)", text);
    status_block(t, retry_delay_ms(r, &t->status_backoff));
    t->h.published(t->h.ctx, token, false);
}

static void drop_status(void *ctx)
{
    struct mgo_http_transport *t = ctx;
    int token = t->drop_token;
    t->drop_token = 0;
    t->status_token = 0;
    t->h.published(t->h.ctx, token, true);
}

static bool http_ready(void *ctx)
{
    struct mgo_http_transport *t = ctx;
    return !t->status_blocked && t->status_token == 0 && !in_downtime(t);
}

static mgo_err http_send(void *ctx, enum mgo_topic_kind kind, const char *dep_id,
                         const uint8_t *payload, size_t len, int *token_out)
{
    struct mgo_http_transport *t = ctx;
    (void)kind; /* one route for statuses and replays */
    if (!http_ready(t))
        return MGO_ERR_NET;
    int token = TAG_STATUS_BASE + (t->next_token++ % 1000000);
    struct mgo_buf json;
    mgo_buf_init(&json, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_wfm_status_json(payload, len, t->st->manifest_version, &json);
    if (err != MGO_OK) {
        /* a journaled status that does not convert never will: settled, not sent */
        MGO_LOGE(TAG, "wfm: %s: journaled status not convertible (%s); dropped", dep_id,
                 mgo_strerror(err));
        mgo_buf_cleanup(&json);
        if (mgo_loop_timer_add(t->loop, 0, drop_status, t, NULL) != MGO_OK)
            return MGO_ERR_NOMEM;
        t->drop_token = token;
        t->status_token = token;
        *token_out = token;
        return MGO_OK;
    }
    char path[64 + MGO_MAX_DEPLOYMENT_ID_LEN];
    snprintf(path, sizeof path, "/api/v1/deployments/%s/status", dep_id);
    err = mgo_wfm_client_submit(t->client, token, "POST", path, "application/json", NULL,
                                "application/json", json.data, json.len, MAX_ANSWER_BYTES);
    mgo_buf_cleanup(&json);
    if (err != MGO_OK)
        return err;
    t->status_token = token;
    *token_out = token;
    return MGO_OK;
}

struct mgo_reporter_delivery mgo_http_transport_delivery(struct mgo_http_transport *t)
{
    return (struct mgo_reporter_delivery){
        .ctx = t, .ready = http_ready, .send = http_send, .max_inflight = 1, .ack_is_stored = true};
}

/* ---- answers ------------------------------------------------------------------------------ */

static void on_answer(void *ctx, const struct mgo_wfm_response *r)
{
    struct mgo_http_transport *t = ctx;
    if (r->tag == TAG_CAPS)
        on_caps(t, r);
    else if (r->tag == TAG_POLL)
        on_poll(t, r);
    else if (r->tag == TAG_FETCH)
        on_fetch(t, r);
    else if (r->tag == TAG_BUNDLE)
        on_bundle(t, r);
    else if (r->tag == t->status_token)
        on_status(t, r);
}

/* Margo identity: the device's SVID (cert_file) names the WFM it may talk to, and its client
 * id must be device_id (the WFM binds capabilities and statuses to it). peer receives the
 * WFM's SPIFFE ID. MGO_ERR_INVALID (logged, naming cert-file and the rule), the file's
 * errors. */
static mgo_err svid_peer(const char *cert_file, const char *device_id,
                         char peer[MGO_SVID_MAX_URI + 1])
{
    char uri[MGO_SVID_MAX_URI + 1], why[256];
    struct mgo_svid_client id;
    mgo_err err = mgo_svid_file_uri(cert_file, uri, why, sizeof why);
    if (err == MGO_OK)
        err = mgo_svid_parse_client(uri, &id, why, sizeof why);
    if (err == MGO_OK && strcmp(id.client_id, device_id) != 0) {
        snprintf(why, sizeof why, "the SVID's client id %.64s is not device-id %.64s", id.client_id,
                 device_id);
        err = MGO_ERR_INVALID;
    }
    if (err != MGO_OK) {
        MGO_LOGE(TAG, "cert-file: %s", why);
        return err;
    }
    snprintf(peer, MGO_SVID_MAX_URI + 1, "spiffe://%s/margo/wfm/%s", id.trust_domain, id.wfm_id);
    MGO_LOGI(TAG, "wfm: this device is %s; the WFM must be %s", uri, peer);
    return MGO_OK;
}

/* ---- life --------------------------------------------------------------------------------- */

mgo_err mgo_http_transport_new(const struct mgo_agent_config *cfg, struct mgo_loop *loop,
                               const struct mgo_agent_state *st, struct mgo_session *session,
                               const struct mgo_http_handlers *h, struct mgo_http_transport **out)
{
    struct mgo_http_transport *t = calloc(1, sizeof *t);
    if (t == NULL)
        return MGO_ERR_NOMEM;
    t->cfg = cfg;
    t->loop = loop;
    t->st = st;
    t->session = session;
    t->h = *h;
    t->man = calloc(1, sizeof *t->man);
    t->held = calloc(MGO_MAX_DEPLOYMENTS, sizeof *t->held);
    t->next = calloc(MGO_MAX_DEPLOYMENTS, sizeof *t->next);
    mgo_err err = t->man && t->held && t->next ? MGO_OK : MGO_ERR_NOMEM;
    char why[256];
    for (size_t i = 0; err == MGO_OK && i < cfg->poll_window.len; i++) {
        if (i >= MGO_HTTP_MAX_POLL_WINDOWS ||
            mgo_downtime_parse(cfg->poll_window.items[i], &t->poll_windows[i], why, sizeof why) !=
                MGO_OK)
            err = MGO_ERR_INVALID; /* checked by mgo_agent_config_check already */
        else
            t->poll_len++;
    }
    for (size_t i = 0; err == MGO_OK && i < cfg->downtime.len; i++) {
        if (i >= MGO_SESSION_MAX_DOWNTIME ||
            mgo_downtime_parse(cfg->downtime.items[i], &t->downtime[i], why, sizeof why) != MGO_OK)
            err = MGO_ERR_INVALID;
        else
            t->down_len++;
    }
    uint64_t seed = (uint64_t)mgo_loop_now_ms() ^ (uint64_t)(uintptr_t)t;
    mgo_backoff_init(&t->poll_backoff, (uint32_t)cfg->backoff_min_ms, (uint32_t)cfg->backoff_max_ms,
                     seed);
    mgo_backoff_init(&t->status_backoff, (uint32_t)cfg->backoff_min_ms,
                     (uint32_t)cfg->backoff_max_ms, seed * 31u + 7u);
    if (err == MGO_OK)
        err = svid_peer(cfg->cert_file, cfg->device_id, t->peer);
    struct mgo_wfm_client_opts o = {.base_url = cfg->wfm_url,
                                    .peer_id = t->peer,
                                    .ca_file = cfg->ca_file,
                                    .cert_file = cfg->cert_file,
                                    .key_file = cfg->key_file,
                                    .timeout_s = 60};
    if (err == MGO_OK)
        err = mgo_wfm_client_new(loop, &o, on_answer, t, &t->client);
    if (err != MGO_OK) {
        mgo_http_transport_free(t);
        return err;
    }
    *out = t;
    return MGO_OK;
}

void mgo_http_transport_free(struct mgo_http_transport *t)
{
    if (t == NULL)
        return;
    mgo_wfm_client_free(t->client);
    if (t->held)
        free_docs(t->held, &t->held_len);
    if (t->next)
        free_docs(t->next, &t->next_len);
    free(t->held);
    free(t->next);
    free(t->man);
    free(t->caps_sent);
    free(t);
}

mgo_err mgo_http_transport_start(struct mgo_http_transport *t)
{
    MGO_LOGI(TAG, "wfm: Margo HTTP client of %s, polling every %" PRId64 " s", t->cfg->wfm_url,
             t->cfg->poll_interval_s);
    return mgo_loop_timer_add(t->loop, 0, poll_tick, t, &t->poll_timer);
}

void mgo_http_transport_caps_changed(struct mgo_http_transport *t)
{
    if (!in_downtime(t))
        send_caps(t);
}

mgo_err mgo_http_transport_reload_tls(struct mgo_http_transport *t, const char *ca_file,
                                      const char *cert_file, const char *key_file)
{
    char peer[MGO_SVID_MAX_URI + 1] = "";
    if (svid_peer(cert_file, t->cfg->device_id, peer) != MGO_OK)
        return MGO_ERR_INVALID;
    if (strcmp(peer, t->peer) != 0) {
        MGO_LOGE(TAG, "cert-file: the new SVID names the WFM %s, not %s (needs a restart)", peer,
                 t->peer);
        return MGO_ERR_INVALID;
    }
    return mgo_wfm_client_set_tls(t->client, ca_file, cert_file, key_file);
}
