/* rollup.c - fleet roll-ups on retained topics (rollup.h). */
#include "rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "rollout.h"
#include "mgo/failure.h"
#include "mgo/log.h"
#include "mgo/value.h"

#define TAG "rollup"
#define MAX_APP_VERSIONS 16u
#define MAX_APP_CODES 16u

void mgo_rollup__init(struct mgo_rollup *r, struct mgo_mgr_store *store,
                      const struct mgo_outbox *outbox, const char *prefix)
{
    memset(r, 0, sizeof *r);
    r->store = store;
    r->outbox = outbox;
    r->prefix = prefix;
}

void mgo_rollup__forget(struct mgo_rollup *r)
{
    r->len = 0;
}

int64_t mgo_rollup__next_ms(uint64_t took_ms)
{
    if (took_ms >= MGO_ROLLUP_MAX_PERIOD_MS / MGO_ROLLUP_COST_FACTOR)
        return MGO_ROLLUP_MAX_PERIOD_MS;
    int64_t next = (int64_t)took_ms * MGO_ROLLUP_COST_FACTOR;
    return next > MGO_ROLLUP_PERIOD_MS ? next : MGO_ROLLUP_PERIOD_MS;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static struct mgo_rollup_topic *find(struct mgo_rollup *r, const char *topic)
{
    for (size_t i = 0; i < r->len; i++) {
        if (strcmp(r->topics[i].topic, topic) == 0)
            return &r->topics[i];
    }
    return NULL;
}

/* Publishes json (a JSON object, NUL-terminated) as MessagePack on topic when it changed. */
static mgo_err send(struct mgo_rollup *r, const char *topic, bool app, const char *json,
                    bool final_)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 64u * 1024u * 1024u);
    struct mgo_buf mp;
    mgo_buf_init(&mp, MGO_MAX_MESSAGE_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    mgo_err err = mgo_value_from_yaml(json, strlen(json), &arena, &v, &p);
    if (!err)
        err = mgo_value_to_msgpack(&v, &mp);
    if (err) {
        MGO_LOGE(TAG, "%s: cannot encode the roll-up: %s", topic, mgo_strerror(err));
        goto cleanup;
    }
    uint64_t h = fnv(mp.data, mp.len);
    struct mgo_rollup_topic *t = find(r, topic);
    if (t && t->hash == h) {
        t->seen = true;
        t->final_ = final_;
        goto cleanup;
    }
    int qos = mgo_fleet_topic_qos(app ? MGO_FLEET_TOPIC_APP : MGO_FLEET_TOPIC_ROLLOUT);
    bool retain = mgo_fleet_topic_retained(app ? MGO_FLEET_TOPIC_APP : MGO_FLEET_TOPIC_ROLLOUT);
    err = r->outbox->publish(r->outbox->ctx, topic, mp.data, mp.len, qos, retain, NULL);
    if (err)
        goto cleanup;
    if (!t && r->len < MGO_ROLLUP_MAX_TOPICS) {
        t = &r->topics[r->len++];
        memset(t, 0, sizeof *t);
        snprintf(t->topic, sizeof t->topic, "%s", topic);
        t->app = app;
    }
    if (t) { /* without a slot it is published every round (still at most once a period) */
        t->hash = h;
        t->seen = true;
        t->final_ = final_;
    }
cleanup:
    mgo_buf_cleanup(&mp);
    mgo_arena_cleanup(&arena);
    return err;
}

/* ---- rollouts ------------------------------------------------------------------------------ */

struct rollout_ids {
    char id[MGO_ROLLOUT_MAX_ACTIVE * 2][MGO_UUID_STR_SIZE];
    bool finished[MGO_ROLLOUT_MAX_ACTIVE * 2];
    size_t len;
    int64_t now;
};

static mgo_err rollout_ids_visit(const struct mgo_mgr_rollout_row *row, void *c)
{
    struct rollout_ids *ids = c;
    for (size_t i = 0; i < ids->len; i++) {
        if (strcmp(ids->id[i], row->id) == 0)
            return MGO_OK; /* listed already */
    }
    bool fin = row->finished_ms != 0;
    if (fin && ids->now - row->finished_ms > MGO_ROLLUP_FINISHED_MS)
        return MGO_OK;
    if (ids->len < sizeof ids->id / sizeof ids->id[0]) {
        snprintf(ids->id[ids->len], MGO_UUID_STR_SIZE, "%s", row->id);
        ids->finished[ids->len++] = fin;
    }
    return MGO_OK;
}

static mgo_err publish_rollouts(struct mgo_rollup *r)
{
    struct rollout_ids ids = {.now = mgo_mgr_store_now_ms()};
    /* the active rollouts, then the newest of the others that finished lately */
    mgo_err first = mgo_mgr_store_rollout_list(r->store, true, MGO_ROLLOUT_MAX_ACTIVE, 0,
                                               rollout_ids_visit, &ids);
    if (!first)
        first = mgo_mgr_store_rollout_list(r->store, false, MGO_ROLLOUT_MAX_ACTIVE, 0,
                                           rollout_ids_visit, &ids);
    struct mgo_buf json;
    mgo_buf_init(&json, 64u * 1024u * 1024u);
    for (size_t i = 0; !first && i < ids.len; i++) {
        char topic[MGO_MAX_TOPIC_LEN + 1];
        mgo_err err = mgo_fleet_topic_format(r->prefix, MGO_FLEET_TOPIC_ROLLOUT, ids.id[i], topic,
                                             sizeof topic);
        struct mgo_rollup_topic *t = err ? NULL : find(r, topic);
        if (t && t->final_ && ids.finished[i]) {
            t->seen = true;
            continue;
        }
        mgo_buf_reset(&json);
        struct mgo_jw w;
        mgo_jw_init(&w, &json);
        mgo_jw_obj(&w);
        if (!err)
            err = mgo_rollout__summary(r->store, ids.id[i], false, &w);
        mgo_jw_obj_end(&w);
        if (!err)
            err = w.err;
        if (!err)
            err = mgo_buf_append(&json, "", 1);
        if (!err)
            err = send(r, topic, false, (const char *)json.data, ids.finished[i]);
        if (err && !first)
            first = err;
    }
    mgo_buf_cleanup(&json);
    return first;
}

/* ---- apps ----------------------------------------------------------------------------------- */

static const char *const STATES[] = {"pending",  "installing", "installed", "failed",
                                     "removing", "removed",    "unknown"};
#define NSTATES (sizeof STATES / sizeof STATES[0])

struct app_sum {
    char app[MGO_MAX_APP_ID_LEN + 1];
    uint64_t total, counts[NSTATES], fail_app, fail_device;
    size_t versions_len, codes_len;
    char versions[MAX_APP_VERSIONS][MGO_MAX_APP_VERSION_LEN + 1];
    uint64_t version_n[MAX_APP_VERSIONS];
    uint64_t versions_other;
    char codes[MAX_APP_CODES][64];
    uint64_t code_n[MAX_APP_CODES];
    uint64_t codes_other;
};

struct app_walk {
    struct mgo_rollup *r;
    struct app_sum *cur; /* the app being summed; NULL before the first row */
    mgo_err first;
};

static mgo_err app_flush(struct app_walk *w)
{
    struct app_sum *s = w->cur;
    if (!s)
        return MGO_OK;
    char topic[MGO_MAX_TOPIC_LEN + 1];
    mgo_err err =
        mgo_fleet_topic_format(w->r->prefix, MGO_FLEET_TOPIC_APP, s->app, topic, sizeof topic);
    struct mgo_buf json;
    mgo_buf_init(&json, 4u * 1024u * 1024u);
    struct mgo_jw j;
    mgo_jw_init(&j, &json);
    mgo_jw_obj(&j);
    mgo_jw_kstr(&j, "app", s->app);
    mgo_jw_ku64(&j, "deployments", s->total);
    mgo_jw_key(&j, "counts");
    mgo_jw_obj(&j);
    for (size_t i = 0; i < NSTATES; i++)
        mgo_jw_ku64(&j, STATES[i], s->counts[i]);
    mgo_jw_obj_end(&j);
    mgo_jw_key(&j, "versions");
    mgo_jw_obj(&j);
    for (size_t i = 0; i < s->versions_len; i++)
        mgo_jw_ku64(&j, s->versions[i], s->version_n[i]);
    mgo_jw_obj_end(&j);
    if (s->versions_other)
        mgo_jw_ku64(&j, "versionsOther", s->versions_other);
    mgo_jw_key(&j, "failures");
    mgo_jw_obj(&j);
    mgo_jw_ku64(&j, "app", s->fail_app);
    mgo_jw_ku64(&j, "device", s->fail_device);
    mgo_jw_key(&j, "byCode");
    mgo_jw_obj(&j);
    for (size_t i = 0; i < s->codes_len; i++)
        mgo_jw_ku64(&j, s->codes[i], s->code_n[i]);
    if (s->codes_other)
        mgo_jw_ku64(&j, "other", s->codes_other);
    mgo_jw_obj_end(&j);
    mgo_jw_obj_end(&j);
    mgo_jw_obj_end(&j);
    if (!err)
        err = j.err;
    if (!err)
        err = mgo_buf_append(&json, "", 1);
    if (!err)
        err = send(w->r, topic, true, (const char *)json.data, false);
    mgo_buf_cleanup(&json);
    free(s);
    w->cur = NULL;
    if (err && !w->first)
        w->first = err;
    return MGO_OK; /* one app's failure does not stop the others */
}

static void tally(uint64_t *n, size_t *len, size_t cap, char (*names)[64], uint64_t *other,
                  const char *name)
{
    for (size_t i = 0; i < *len; i++) {
        if (strcmp(names[i], name) == 0) {
            n[i]++;
            return;
        }
    }
    if (*len == cap) {
        (*other)++;
        return;
    }
    snprintf(names[*len], 64, "%s", name);
    n[(*len)++] = 1;
}

static mgo_err app_visit(const char *app_id, const char *version, const char *state,
                         const char *failed_json, void *c)
{
    struct app_walk *w = c;
    if (w->cur && strcmp(w->cur->app, app_id) != 0)
        app_flush(w);
    if (!w->cur) {
        w->cur = calloc(1, sizeof *w->cur);
        if (!w->cur)
            return MGO_ERR_NOMEM;
        snprintf(w->cur->app, sizeof w->cur->app, "%s", app_id);
    }
    struct app_sum *s = w->cur;
    s->total++;
    size_t si = NSTATES - 1;
    for (size_t i = 0; i < NSTATES - 1; i++) {
        if (strcmp(STATES[i], state) == 0)
            si = i;
    }
    s->counts[si]++;
    size_t v = 0;
    while (v < s->versions_len && strcmp(s->versions[v], version) != 0)
        v++;
    if (v < s->versions_len) {
        s->version_n[v]++;
    } else if (v < MAX_APP_VERSIONS) {
        snprintf(s->versions[v], sizeof s->versions[v], "%s", version);
        s->version_n[v] = 1;
        s->versions_len++;
    } else {
        s->versions_other++;
    }
    if (failed_json) {
        char code[64];
        mgo_rollout__status_code(failed_json, code, sizeof code);
        enum mgo_failure_class cls = code[0] ? mgo_failure_class_of(code) : MGO_FAILURE_APP;
        s->fail_app += cls == MGO_FAILURE_APP;
        s->fail_device += cls == MGO_FAILURE_DEVICE;
        tally(s->code_n, &s->codes_len, MAX_APP_CODES, s->codes, &s->codes_other,
              code[0] ? code : "none");
    }
    return MGO_OK;
}

static mgo_err publish_apps(struct mgo_rollup *r)
{
    struct app_walk w = {.r = r};
    mgo_err err = mgo_mgr_store_app_states(r->store, app_visit, &w);
    if (!err)
        app_flush(&w);
    free(w.cur);
    if (err)
        return err;
    /* apps without deployments now: their retained roll-up is cleared */
    for (size_t i = 0; i < r->len;) {
        struct mgo_rollup_topic *t = &r->topics[i];
        if (!t->app || t->seen) {
            i++;
            continue;
        }
        mgo_err e = r->outbox->publish(r->outbox->ctx, t->topic, NULL, 0,
                                       mgo_fleet_topic_qos(MGO_FLEET_TOPIC_APP),
                                       mgo_fleet_topic_retained(MGO_FLEET_TOPIC_APP), NULL);
        if (e) {
            if (!w.first)
                w.first = e;
            i++;
            continue;
        }
        r->topics[i] = r->topics[--r->len];
    }
    return w.first;
}

mgo_err mgo_rollup__publish(struct mgo_rollup *r)
{
    if (!mgo_outbox__connected(r->outbox))
        return MGO_OK;
    for (size_t i = 0; i < r->len; i++)
        r->topics[i].seen = false;
    mgo_err a = publish_rollouts(r);
    mgo_err b = publish_apps(r);
    /* finished rollouts past MGO_ROLLUP_FINISHED_MS: forgotten (their document stays) */
    for (size_t i = 0; i < r->len;) {
        if (!r->topics[i].app && !r->topics[i].seen)
            r->topics[i] = r->topics[--r->len];
        else
            i++;
    }
    return a ? a : b;
}
