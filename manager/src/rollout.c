/* rollout.c - fleet rollouts: commands, the engine's tick and the summary (rollout.h,
 * docs/rollouts.md); creation is in rollout_create.c. */
#include "rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy.h"
#include "mgr_internal.h"
#include "mgo/failure.h"
#include "mgo/log.h"

const char *const mgo_rollout__states[] = {"running",   "paused",       "succeeded",  "aborted",
                                           "cancelled", "rolling-back", "rolled-back"};
const size_t mgo_rollout__states_len = sizeof mgo_rollout__states / sizeof mgo_rollout__states[0];

#define TAG "rollout"

/* ---- the rollout row, owned -------------------------------------------------------------- */

struct ro {
    char id[MGO_UUID_STR_SIZE];
    char app_id[MGO_MAX_APP_ID_LEN + 1];
    char version[MGO_MAX_APP_VERSION_LEN + 1];
    char *parameters; /* malloc'd JSON or NULL */
    char mode[16], on_abort[16], offline_count[16], state[16];
    char reason[256];
    char *selector;                 /* malloc'd */
    struct mgo_mgr_rollout_row row; /* numbers; strings point into the fields above */
};

static void ro_cleanup(struct ro *r)
{
    free(r->parameters);
    free(r->selector);
}

static mgo_err ro_copy(const struct mgo_mgr_rollout_row *row, void *c)
{
    struct ro *r = c;
    r->row = *row;
    snprintf(r->id, sizeof r->id, "%s", row->id);
    snprintf(r->app_id, sizeof r->app_id, "%s", row->app_id);
    snprintf(r->version, sizeof r->version, "%s", row->version);
    snprintf(r->mode, sizeof r->mode, "%s", row->mode);
    snprintf(r->on_abort, sizeof r->on_abort, "%s", row->on_abort);
    snprintf(r->offline_count, sizeof r->offline_count, "%s", row->offline_count);
    snprintf(r->state, sizeof r->state, "%s", row->state);
    snprintf(r->reason, sizeof r->reason, "%s", row->reason);
    r->parameters = row->parameters_json ? strdup(row->parameters_json) : NULL;
    r->selector = strdup(row->selector);
    if ((row->parameters_json && !r->parameters) || !r->selector)
        return MGO_ERR_NOMEM;
    return MGO_OK;
}

static void ro_point(struct ro *r)
{
    r->row.id = r->id;
    r->row.app_id = r->app_id;
    r->row.version = r->version;
    r->row.parameters_json = r->parameters;
    r->row.mode = r->mode;
    r->row.selector = r->selector;
    r->row.on_abort = r->on_abort;
    r->row.offline_count = r->offline_count;
    r->row.state = r->state;
    r->row.reason = r->reason;
}

static bool finished_state(const char *state)
{
    return strcmp(state, "running") != 0 && strcmp(state, "paused") != 0 &&
           strcmp(state, "rolling-back") != 0;
}

/* ---- commands ---------------------------------------------------------------------------- */

mgo_err mgo_rollout__command(struct mgo_mgr_store *store, const char *id, enum mgo_rollout_cmd cmd,
                             char *why, size_t why_size)
{
    struct ro r = {0};
    mgo_err err = mgo_mgr_store_rollout_get(store, id, ro_copy, &r);
    if (err)
        goto cleanup;
    ro_point(&r);
    const char *now = r.state;
    const char *next = NULL;
    switch (cmd) {
    case MGO_ROLLOUT_PAUSE:
        next = strcmp(now, "running") == 0 ? "paused" : NULL;
        break;
    case MGO_ROLLOUT_RESUME:
        next = strcmp(now, "paused") == 0 ? "running" : NULL;
        break;
    case MGO_ROLLOUT_CANCEL:
        next = strcmp(now, "running") == 0 || strcmp(now, "paused") == 0 ? "cancelled" : NULL;
        break;
    case MGO_ROLLOUT_ROLLBACK:
        next = strcmp(now, "rolling-back") != 0 && strcmp(now, "rolled-back") != 0 ? "rolling-back"
                                                                                   : NULL;
        break;
    }
    if (!next) {
        static const char *const names[] = {"paused", "resumed", "cancelled", "rolled back"};
        snprintf(why, why_size, "a rollout that is %s cannot be %s", now, names[cmd]);
        err = MGO_ERR_CONFLICT;
        goto cleanup;
    }
    snprintf(r.state, sizeof r.state, "%s", next);
    if (cmd == MGO_ROLLOUT_CANCEL) {
        snprintf(r.reason, sizeof r.reason, "cancelled by an operator");
        r.row.finished_ms = mgo_mgr_store_now_ms();
    } else if (cmd == MGO_ROLLOUT_ROLLBACK) {
        snprintf(r.reason, sizeof r.reason, "rollback requested by an operator");
        r.row.finished_ms = 0;
    }
    ro_point(&r);
    err = mgo_mgr_store_rollout_update(store, &r.row);
    if (!err)
        MGO_LOGI(TAG, "rollout %s: %s", id, next);
cleanup:
    ro_cleanup(&r);
    return err;
}

/* ---- the engine --------------------------------------------------------------------------- */

struct tgt {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char deployment[MGO_UUID_STR_SIZE];
    char state[24]; /* the longest, "rollback-lagging", and its NUL fit */
    char prev_version[MGO_MAX_APP_VERSION_LEN + 1];
    char *prev_parameters; /* malloc'd or NULL */
    uint32_t seq, batch;
    uint64_t mv;
    int64_t started, done;
    char code[64];
    char class_[8];
    char message[256];
    bool dirty;
};

struct tgts {
    struct tgt *items;
    size_t len, cap;
};

static void tgts_cleanup(struct tgts *t)
{
    for (size_t i = 0; i < t->len; i++)
        free(t->items[i].prev_parameters);
    free(t->items);
}

static mgo_err tgt_load(const struct mgo_mgr_target_row *row, void *c)
{
    struct tgts *t = c;
    if (t->len == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct tgt *n = realloc(t->items, cap * sizeof *n);
        if (!n)
            return MGO_ERR_NOMEM;
        t->items = n;
        t->cap = cap;
    }
    struct tgt *g = &t->items[t->len];
    memset(g, 0, sizeof *g);
    snprintf(g->device, sizeof g->device, "%s", row->device_id);
    snprintf(g->deployment, sizeof g->deployment, "%s", row->deployment_id);
    snprintf(g->state, sizeof g->state, "%s", row->state);
    snprintf(g->prev_version, sizeof g->prev_version, "%s", row->prev_version);
    snprintf(g->code, sizeof g->code, "%s", row->code);
    snprintf(g->class_, sizeof g->class_, "%s", row->class_);
    snprintf(g->message, sizeof g->message, "%s", row->message);
    g->seq = row->seq;
    g->batch = row->batch;
    g->mv = row->manifest_version;
    g->started = row->started_ms;
    g->done = row->done_ms;
    if (row->prev_parameters && !(g->prev_parameters = strdup(row->prev_parameters)))
        return MGO_ERR_NOMEM;
    t->len++;
    return MGO_OK;
}

static mgo_err tgt_save(struct mgo_mgr_store *store, const char *rollout_id, struct tgt *g)
{
    struct mgo_mgr_target_row row = {
        .rollout_id = rollout_id,
        .device_id = g->device,
        .seq = g->seq,
        .batch = g->batch,
        .state = g->state,
        .deployment_id = g->deployment,
        .prev_version = g->prev_version,
        .prev_parameters = g->prev_parameters,
        .manifest_version = g->mv,
        .started_ms = g->started,
        .done_ms = g->done,
        .code = g->code,
        .class_ = g->class_,
        .message = g->message,
    };
    g->dirty = false;
    return mgo_mgr_store_target_put(store, &row);
}

static void tgt_set(struct tgt *g, const char *state, int64_t now)
{
    snprintf(g->state, sizeof g->state, "%s", state);
    g->done = now;
    g->dirty = true;
}

static bool is(const struct tgt *g, const char *state)
{
    return strcmp(g->state, state) == 0;
}

struct presence {
    bool known, online;
    int64_t last_seen;
};

static mgo_err presence_visit(const struct mgo_mgr_device_row *row, void *c)
{
    struct presence *p = c;
    p->known = row->has_presence;
    p->online = row->online;
    p->last_seen = row->last_seen_ms;
    return MGO_OK;
}

struct tick {
    struct mgo_mgr_store *store;
    struct mgo_publisher *pub;
    struct ro r;
    struct tgts t;
    int64_t now;
    size_t changes; /* deployment changes made in this tick */
    /* devices to publish after the commit */
    struct pub_item {
        char device[MGO_MAX_DEVICE_ID_LEN + 1];
        char deployment[MGO_UUID_STR_SIZE];
        bool removed;
    } * pubs;
    size_t pubs_len;
};

/* Adopted manifest version of a deployment's newest status, and its state and error. */
struct status_now {
    bool has;
    uint64_t adopted;
    char state[16];
    char code[64];
    char message[256];
};

/* The error of a DeploymentStatus: status.error, else the first component's, else NULL. */
static const struct mgo_value *error_of(const struct mgo_value *doc)
{
    const struct mgo_value *err = mgo_value_pointer(doc, "/status/error");
    const struct mgo_value *comps = mgo_value_get(doc, "components");
    for (size_t i = 0; !err && comps && comps->kind == MGO_V_ARRAY && i < comps->as.array.len; i++)
        err = mgo_value_get(&comps->as.array.items[i], "error");
    return err;
}

void mgo_rollout__status_code(const char *doc_json, char *code, size_t code_size)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value doc;
    code[0] = '\0';
    if (mgo_value_from_yaml(doc_json, strlen(doc_json), &arena, &doc, &p) == MGO_OK) {
        const struct mgo_value *err = error_of(&doc);
        const struct mgo_value *c = err ? mgo_value_get(err, "code") : NULL;
        if (c && c->kind == MGO_V_STR)
            snprintf(code, code_size, "%s", c->as.str.ptr);
    }
    mgo_arena_cleanup(&arena);
}

static mgo_err status_now_visit(const struct mgo_mgr_status_row *row, void *c)
{
    struct status_now *s = c;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value doc;
    if (mgo_value_from_yaml(row->doc_json, strlen(row->doc_json), &arena, &doc, &p) == MGO_OK) {
        const struct mgo_value *mv = mgo_value_get(&doc, "adoptedManifestVersion");
        if (mv && mv->kind == MGO_V_UINT) {
            s->has = true;
            s->adopted = mv->as.u;
        }
        snprintf(s->state, sizeof s->state, "%s", row->state);
        const struct mgo_value *err = error_of(&doc);
        const struct mgo_value *code = err ? mgo_value_get(err, "code") : NULL;
        const struct mgo_value *msg = err ? mgo_value_get(err, "message") : NULL;
        if (code && code->kind == MGO_V_STR)
            snprintf(s->code, sizeof s->code, "%s", code->as.str.ptr);
        if (msg && msg->kind == MGO_V_STR)
            snprintf(s->message, sizeof s->message, "%s", msg->as.str.ptr);
    }
    mgo_arena_cleanup(&arena);
    return MGO_OK;
}

static mgo_err read_status(struct mgo_mgr_store *store, const char *deployment,
                           struct status_now *s)
{
    memset(s, 0, sizeof *s);
    mgo_err err = mgo_mgr_store_status_get(store, deployment, status_now_visit, s);
    return err == MGO_ERR_NOT_FOUND ? MGO_OK : err;
}

static mgo_err read_presence(struct mgo_mgr_store *store, const char *device, struct presence *p)
{
    memset(p, 0, sizeof *p);
    mgo_err err = mgo_mgr_store_device_get(store, device, presence_visit, p);
    return err == MGO_ERR_NOT_FOUND ? MGO_OK : err;
}

/* Offline (or never seen) for longer than the rollout's grace since the change was made. */
static bool past_grace(const struct ro *r, const struct presence *p, int64_t started, int64_t now)
{
    if (p->known && p->online)
        return false;
    int64_t since = started;
    if (p->known && p->last_seen > since)
        since = p->last_seen;
    return now - since >= (int64_t)r->row.offline_grace_s * 1000;
}

struct dep_snap {
    bool found;
    enum mgo_mgr_desired desired;
    uint64_t mv;
    char version[MGO_MAX_APP_VERSION_LEN + 1];
    char *parameters; /* malloc'd */
};

static mgo_err dep_snap_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct dep_snap *d = c;
    d->found = true;
    d->desired = row->desired;
    d->mv = row->manifest_version;
    snprintf(d->version, sizeof d->version, "%s", row->app_version);
    free(d->parameters);
    d->parameters = strdup(row->parameters_json ? row->parameters_json : "{}");
    return d->parameters ? MGO_OK : MGO_ERR_NOMEM;
}

static mgo_err dep_snapshot(struct mgo_mgr_store *store, const char *id, struct dep_snap *d)
{
    memset(d, 0, sizeof *d);
    mgo_err err = mgo_mgr_store_deployment_get(store, id, dep_snap_visit, d);
    return err == MGO_ERR_NOT_FOUND ? MGO_OK : err;
}

/* A failed target's class: the code's (failure.h); a failure without a code is the app's. */
static void classify(struct tgt *g)
{
    enum mgo_failure_class c = mgo_failure_class_of(g->code);
    if (!g->code[0])
        c = MGO_FAILURE_APP;
    snprintf(g->class_, sizeof g->class_, "%s", mgo_failure_class_name(c));
}

static mgo_err eval_forward(struct tick *k, struct tgt *g)
{
    struct status_now s;
    mgo_err err = read_status(k->store, g->deployment, &s);
    if (err)
        return err;
    bool current = s.has && s.adopted >= g->mv;
    if (current && strcmp(s.state, "installed") == 0) {
        if (!is(g, "succeeded")) {
            tgt_set(g, "succeeded", k->now);
            g->code[0] = g->class_[0] = g->message[0] = '\0';
        }
        return MGO_OK;
    }
    if (current && strcmp(s.state, "failed") == 0) {
        if (!is(g, "failed")) {
            tgt_set(g, "failed", k->now);
            snprintf(g->code, sizeof g->code, "%s", s.code);
            snprintf(g->message, sizeof g->message, "%s", s.message);
            classify(g);
            MGO_LOGI(TAG, "rollout %s: %s failed (%s, %s)", k->r.id, g->device,
                     g->code[0] ? g->code : "no code", g->class_);
        }
        return MGO_OK;
    }
    if (!is(g, "updating"))
        return MGO_OK; /* succeeded, failed or lagging: a status in progress changes nothing */
    struct presence p;
    err = read_presence(k->store, g->device, &p);
    if (err)
        return err;
    if (past_grace(&k->r, &p, g->started, k->now)) {
        tgt_set(g, "lagging", k->now);
        snprintf(g->code, sizeof g->code, "OFFLINE");
        snprintf(g->class_, sizeof g->class_, "device");
        snprintf(g->message, sizeof g->message, "offline for more than %u s",
                 k->r.row.offline_grace_s);
    } else if ((!p.known || p.online) &&
               k->now - g->started >= (int64_t)k->r.row.gate_timeout_s * 1000) {
        tgt_set(g, "failed", k->now);
        snprintf(g->code, sizeof g->code, "%s", MGO_ROLLOUT_TIMEOUT_CODE);
        snprintf(g->message, sizeof g->message, "not installed within %u s",
                 k->r.row.gate_timeout_s);
        classify(g);
    }
    return MGO_OK;
}

static mgo_err eval_backward(struct tick *k, struct tgt *g)
{
    struct status_now s;
    mgo_err err = read_status(k->store, g->deployment, &s);
    if (err)
        return err;
    bool removal = g->prev_version[0] == '\0';
    bool current = s.has && s.adopted >= g->mv;
    struct dep_snap d;
    err = removal ? dep_snapshot(k->store, g->deployment, &d) : MGO_OK;
    free(removal ? d.parameters : NULL);
    if (err)
        return err;
    bool gone = removal && (!d.found || d.desired == MGO_MGR_DESIRED_REMOVED);
    if (gone || (current && strcmp(s.state, removal ? "removed" : "installed") == 0)) {
        tgt_set(g, "rolled-back", k->now);
        return MGO_OK;
    }
    if (current && strcmp(s.state, "failed") == 0) {
        tgt_set(g, "rollback-failed", k->now);
        snprintf(g->code, sizeof g->code, "%s", s.code);
        snprintf(g->message, sizeof g->message, "%s", s.message);
        classify(g);
        return MGO_OK;
    }
    if (!is(g, "rolling-back"))
        return MGO_OK;
    struct presence p;
    err = read_presence(k->store, g->device, &p);
    if (err)
        return err;
    if (past_grace(&k->r, &p, g->started, k->now)) {
        tgt_set(g, "rollback-lagging", k->now);
    } else if ((!p.known || p.online) &&
               k->now - g->started >= (int64_t)k->r.row.gate_timeout_s * 1000) {
        tgt_set(g, "rollback-failed", k->now);
        snprintf(g->code, sizeof g->code, "%s", MGO_ROLLOUT_TIMEOUT_CODE);
        snprintf(g->message, sizeof g->message, "rollback not installed within %u s",
                 k->r.row.gate_timeout_s);
        classify(g);
    }
    return MGO_OK;
}

static mgo_err add_pub(struct tick *k, const struct tgt *g, bool removed)
{
    struct pub_item *n = realloc(k->pubs, (k->pubs_len + 1) * sizeof *n);
    if (!n)
        return MGO_ERR_NOMEM;
    k->pubs = n;
    struct pub_item *it = &k->pubs[k->pubs_len++];
    snprintf(it->device, sizeof it->device, "%s", g->device);
    snprintf(it->deployment, sizeof it->deployment, "%s", g->deployment);
    it->removed = removed;
    return MGO_OK;
}

/* Parses stored JSON answers into arena (NULL text: NULL value). */
static mgo_err answers_of(const char *json, struct mgo_arena *arena, struct mgo_value *v,
                          const struct mgo_value **out)
{
    *out = NULL;
    if (!json)
        return MGO_OK;
    struct mgo_problems p;
    mgo_problems_init(&p);
    mgo_err err = mgo_value_from_yaml(json, strlen(json), arena, v, &p);
    if (!err)
        *out = v;
    return err;
}

static void skip(struct tgt *g, const char *why, const struct mgo_problems *p, int64_t now)
{
    tgt_set(g, "skipped", now);
    char detail[200] = "";
    if (p)
        mgo_problems_format(p, detail, sizeof detail);
    snprintf(g->message, sizeof g->message, "%s%s%s", why, detail[0] ? ": " : "", detail);
    g->code[0] = g->class_[0] = '\0';
}

/* Makes the rollout's change on one device (inside the tick's transaction). */
static mgo_err start_target(struct tick *k, struct tgt *g)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value av;
    const struct mgo_value *answers = NULL;
    struct dep_snap d = {0};
    mgo_err err = answers_of(k->r.parameters, &arena, &av, &answers);
    if (err)
        goto cleanup;
    if (strcmp(k->r.mode, "upgrade") == 0) {
        err = dep_snapshot(k->store, g->deployment, &d);
        if (err)
            goto cleanup;
        if (!d.found || d.desired != MGO_MGR_DESIRED_PRESENT) {
            skip(g, "the deployment to upgrade was removed", NULL, k->now);
            goto cleanup;
        }
        err = mgo_deploy__update_quiet(k->store, k->pub, g->deployment, k->r.version, answers, &p);
        if (err == MGO_ERR_INVALID || err == MGO_ERR_CONFLICT) {
            skip(g, "the deployment cannot take this version", &p, k->now);
            err = MGO_OK;
            goto cleanup;
        }
        snprintf(g->prev_version, sizeof g->prev_version, "%s", d.version);
        free(g->prev_parameters);
        g->prev_parameters = d.parameters;
        d.parameters = NULL;
    } else {
        const char *devices[1] = {g->device};
        char ids[1][MGO_UUID_STR_SIZE];
        struct mgo_deploy_request req = {.app_id = k->r.app_id,
                                         .version = k->r.version,
                                         .devices = devices,
                                         .devices_len = 1,
                                         .answers = answers};
        err = mgo_deploy__create_quiet(k->store, k->pub, &req, ids, &p);
        if (err == MGO_ERR_INVALID) {
            skip(g, "the app cannot be deployed to this device", &p, k->now);
            err = MGO_OK;
            goto cleanup;
        }
        snprintf(g->deployment, sizeof g->deployment, "%s", ids[0]);
        g->prev_version[0] = '\0';
        free(g->prev_parameters);
        g->prev_parameters = NULL;
    }
    if (err)
        goto cleanup;
    struct dep_snap now;
    err = dep_snapshot(k->store, g->deployment, &now);
    free(now.parameters);
    if (err)
        goto cleanup;
    g->mv = now.mv;
    g->started = k->now;
    g->done = 0;
    snprintf(g->state, sizeof g->state, "updating");
    g->code[0] = g->class_[0] = g->message[0] = '\0';
    g->dirty = true;
    k->changes++;
    err = add_pub(k, g, false);
cleanup:
    free(d.parameters);
    mgo_arena_cleanup(&arena);
    return err;
}

/* Takes one device back to its previous revision (inside the tick's transaction). */
static mgo_err rollback_target(struct tick *k, struct tgt *g)
{
    if (!g->deployment[0]) {
        tgt_set(g, "rolled-back", k->now);
        return MGO_OK;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    bool removal = g->prev_version[0] == '\0';
    mgo_err err = MGO_OK;
    uint64_t mv = 0;
    if (removal) {
        err = mgo_deploy__remove_quiet(k->store, k->pub, g->deployment);
        uint64_t published = 0;
        if (!err)
            err = mgo_mgr_store_manifest_get(k->store, g->device, &mv, &published);
    } else {
        struct mgo_value av;
        const struct mgo_value *answers = NULL;
        err = answers_of(g->prev_parameters, &arena, &av, &answers);
        if (!err)
            err = mgo_deploy__update_quiet(k->store, k->pub, g->deployment, g->prev_version,
                                           answers, &p);
        if (err == MGO_ERR_INVALID || err == MGO_ERR_CONFLICT || err == MGO_ERR_NOT_FOUND) {
            tgt_set(g, "rollback-failed", k->now);
            char detail[200] = "";
            mgo_problems_format(&p, detail, sizeof detail);
            snprintf(g->message, sizeof g->message, "cannot go back to %s: %s", g->prev_version,
                     detail[0] ? detail : mgo_strerror(err));
            err = MGO_OK;
            goto cleanup;
        }
        struct dep_snap d;
        if (!err)
            err = dep_snapshot(k->store, g->deployment, &d);
        if (!err) {
            free(d.parameters);
            mv = d.mv;
        }
    }
    if (err)
        goto cleanup;
    g->mv = mv;
    g->started = k->now;
    g->done = 0;
    snprintf(g->state, sizeof g->state, "rolling-back");
    g->dirty = true;
    k->changes++;
    err = add_pub(k, g, removal);
cleanup:
    mgo_arena_cleanup(&arena);
    return err;
}

static bool counts_as_failure(const struct ro *r, const struct tgt *g)
{
    const char *cls;
    if (is(g, "failed"))
        cls = g->class_;
    else if (is(g, "lagging") && strcmp(r->offline_count, "failed") == 0)
        cls = "device";
    else
        return false;
    if (strcmp(cls, "app") == 0)
        return true;
    return strcmp(cls, "device") == 0 && !r->row.app_failures_only;
}

static bool exceeded(size_t fails, size_t n, int64_t count, int64_t percent)
{
    if (count >= 0 && (int64_t)fails > count)
        return true;
    return percent >= 0 && (int64_t)(fails * 100u) > percent * (int64_t)n;
}

static bool forward_started(const struct tgt *g)
{
    return is(g, "updating") || is(g, "succeeded") || is(g, "failed") || is(g, "lagging");
}

static void set_state(struct tick *k, const char *state, const char *reason)
{
    snprintf(k->r.state, sizeof k->r.state, "%s", state);
    if (reason)
        snprintf(k->r.reason, sizeof k->r.reason, "%s", reason);
    if (finished_state(state))
        k->r.row.finished_ms = k->now;
    MGO_LOGI(TAG, "rollout %s: %s%s%s", k->r.id, state, reason ? " - " : "", reason ? reason : "");
}

/* Running or paused: thresholds, then (running) starts and batch progress. */
static mgo_err drive_forward(struct tick *k, bool *again)
{
    struct ro *r = &k->r;
    size_t n = k->t.len, fails = 0, nb = 0, fails_b = 0, waiting_b = 0, inflight_b = 0;
    for (size_t i = 0; i < n; i++) {
        const struct tgt *g = &k->t.items[i];
        bool f = counts_as_failure(r, g);
        fails += f;
        if (g->batch != r->row.batch)
            continue;
        nb++;
        fails_b += f;
        waiting_b += is(g, "waiting");
        inflight_b += is(g, "updating");
    }
    char reason[256] = "";
    if (exceeded(fails_b, nb, r->row.fail_batch_count, r->row.fail_batch_percent))
        snprintf(reason, sizeof reason, "%zu of %zu devices failed in batch %u%s", fails_b, nb,
                 r->row.batch, r->row.app_failures_only ? " (app failures)" : "");
    else if (exceeded(fails, n, r->row.fail_total_count, r->row.fail_total_percent))
        snprintf(reason, sizeof reason, "%zu of %zu devices failed%s", fails, n,
                 r->row.app_failures_only ? " (app failures)" : "");
    if (reason[0]) {
        bool back = strcmp(r->on_abort, "rollback") == 0;
        set_state(k, back ? "rolling-back" : "aborted", reason);
        *again = back;
        return MGO_OK;
    }
    if (strcmp(r->state, "running") != 0)
        return MGO_OK;
    if (r->row.batch_started_ms == 0)
        r->row.batch_started_ms = k->now;
    size_t max = r->row.max_in_flight ? r->row.max_in_flight : SIZE_MAX;
    for (size_t i = 0; i < n && waiting_b > 0; i++) {
        struct tgt *g = &k->t.items[i];
        if (g->batch != r->row.batch || !is(g, "waiting"))
            continue;
        if (inflight_b >= max)
            break;
        if (k->changes >= MGO_ROLLOUT_CHANGES_PER_TICK) {
            *again = true;
            break;
        }
        mgo_err err = start_target(k, g);
        if (err)
            return err;
        waiting_b--;
        inflight_b += is(g, "updating");
    }
    if (waiting_b > 0 || inflight_b > 0)
        return MGO_OK;
    if (r->row.batch_done_ms == 0) {
        r->row.batch_done_ms = k->now;
        MGO_LOGI(TAG, "rollout %s: batch %u of %u done", r->id, r->row.batch + 1, r->row.batches);
    }
    if (k->now - r->row.batch_done_ms < (int64_t)r->row.soak_s * 1000)
        return MGO_OK;
    if (r->row.batch + 1 >= r->row.batches) {
        set_state(k, "succeeded", "");
        return MGO_OK;
    }
    r->row.batch++;
    r->row.batch_started_ms = 0;
    r->row.batch_done_ms = 0;
    *again = true;
    return MGO_OK;
}

static mgo_err drive_back(struct tick *k, bool *again)
{
    size_t open = 0;
    for (size_t i = 0; i < k->t.len; i++) {
        struct tgt *g = &k->t.items[i];
        if (forward_started(g)) {
            if (k->changes >= MGO_ROLLOUT_CHANGES_PER_TICK) {
                *again = true;
                open++;
                continue;
            }
            mgo_err err = rollback_target(k, g);
            if (err)
                return err;
        }
        open += is(g, "rolling-back");
    }
    if (open == 0)
        set_state(k, "rolled-back", NULL);
    return MGO_OK;
}

static mgo_err tick_one(struct tick *k, bool *again)
{
    struct ro *r = &k->r;
    mgo_err err = mgo_mgr_store_target_list(k->store, r->id, -1, NULL, tgt_load, &k->t);
    if (err)
        return err;
    char before[16];
    snprintf(before, sizeof before, "%s", r->state);
    struct mgo_mgr_rollout_row old = r->row;
    bool back = strcmp(r->state, "rolling-back") == 0;
    for (size_t i = 0; !err && i < k->t.len; i++) {
        struct tgt *g = &k->t.items[i];
        if (!back && (is(g, "updating") || is(g, "lagging") ||
                      (is(g, "succeeded") && g->batch == r->row.batch)))
            err = eval_forward(k, g);
        else if (back && (is(g, "rolling-back") || is(g, "rollback-lagging")))
            err = eval_backward(k, g);
    }
    if (!err && !back)
        err = drive_forward(k, again);
    if (!err && strcmp(r->state, "rolling-back") == 0)
        err = drive_back(k, again);
    for (size_t i = 0; !err && i < k->t.len; i++) {
        if (k->t.items[i].dirty)
            err = tgt_save(k->store, r->id, &k->t.items[i]);
    }
    ro_point(r);
    if (!err && (strcmp(before, r->state) != 0 || old.batch != r->row.batch ||
                 old.batch_started_ms != r->row.batch_started_ms ||
                 old.batch_done_ms != r->row.batch_done_ms))
        err = mgo_mgr_store_rollout_update(k->store, &r->row);
    return err;
}

static mgo_err active_ids_visit(const struct mgo_mgr_rollout_row *row, void *c)
{
    char(*ids)[MGO_UUID_STR_SIZE] = c;
    for (size_t i = 0; i < MGO_ROLLOUT_MAX_ACTIVE; i++) {
        if (!ids[i][0]) {
            snprintf(ids[i], MGO_UUID_STR_SIZE, "%s", row->id);
            return MGO_OK;
        }
    }
    return MGO_OK;
}

mgo_err mgo_rollout__tick(struct mgo_mgr_store *store, struct mgo_publisher *pub, int64_t *again_ms)
{
    char ids[MGO_ROLLOUT_MAX_ACTIVE][MGO_UUID_STR_SIZE];
    memset(ids, 0, sizeof ids);
    *again_ms = MGO_ROLLOUT_TICK_MS;
    mgo_err first =
        mgo_mgr_store_rollout_list(store, true, MGO_ROLLOUT_MAX_ACTIVE, 0, active_ids_visit, ids);
    for (size_t i = 0; !first && i < MGO_ROLLOUT_MAX_ACTIVE && ids[i][0]; i++) {
        struct tick k = {.store = store, .pub = pub, .now = mgo_mgr_store_now_ms()};
        bool again = false;
        mgo_err err = mgo_mgr_store_rollout_get(store, ids[i], ro_copy, &k.r);
        if (!err) {
            ro_point(&k.r);
            err = mgo_mgr_store_begin(store);
        }
        if (!err) {
            err = tick_one(&k, &again);
            if (err)
                mgo_mgr_store_rollback(store);
            else
                err = mgo_mgr_store_commit(store);
        }
        /* committed: the changes go out now (a failed publish is the sweep's) */
        for (size_t j = 0; !err && j < k.pubs_len; j++) {
            const struct pub_item *it = &k.pubs[j];
            if (it->removed) {
                mgo_deploy__publish_removed(pub, it->device, it->deployment);
            } else {
                const char *changed[1] = {it->deployment};
                MGO_IGNORE(mgo_publish__device(pub, it->device, changed, 1));
            }
        }
        if (err) {
            MGO_LOGE(TAG, "rollout %s: %s; tried again at the next tick", ids[i],
                     mgo_strerror(err));
            if (!first)
                first = err;
        }
        if (again)
            *again_ms = 0;
        free(k.pubs);
        tgts_cleanup(&k.t);
        ro_cleanup(&k.r);
    }
    return first;
}

/* ---- summary ------------------------------------------------------------------------------ */

static const char *const STATES[] = {
    "waiting", "updating",     "succeeded",   "failed",          "lagging",
    "skipped", "rolling-back", "rolled-back", "rollback-failed", "rollback-lagging",
};
#define NSTATES (sizeof STATES / sizeof STATES[0])
#define MAX_CODES 32u

struct summary {
    uint32_t (*per_batch)[NSTATES]; /* [batches] */
    uint32_t batches;
    uint32_t total[NSTATES];
    uint32_t fail_app, fail_device;
    char codes[MAX_CODES][64];
    uint32_t code_n[MAX_CODES];
    size_t codes_len;
    uint32_t codes_other;
    struct mgo_jw *w; /* with_targets: the open "targets" array */
};

static size_t state_index(const char *state)
{
    for (size_t i = 0; i < NSTATES; i++) {
        if (strcmp(STATES[i], state) == 0)
            return i;
    }
    return 0;
}

void mgo_rollout__write_target(struct mgo_jw *w, const struct mgo_mgr_target_row *t)
{
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "device", t->device_id);
    mgo_jw_ku64(w, "batch", t->batch);
    mgo_jw_kstr(w, "state", t->state);
    mgo_jw_kstr(w, "deploymentId", t->deployment_id[0] ? t->deployment_id : NULL);
    mgo_jw_kstr(w, "previousVersion", t->prev_version[0] ? t->prev_version : NULL);
    if (t->manifest_version)
        mgo_jw_ku64(w, "manifestVersion", t->manifest_version);
    if (t->started_ms)
        mgo_jw_ktime(w, "startedAt", t->started_ms);
    if (t->done_ms)
        mgo_jw_ktime(w, "doneAt", t->done_ms);
    if (t->code[0] || t->message[0]) {
        mgo_jw_key(w, "error");
        mgo_jw_obj(w);
        mgo_jw_kstr(w, "code", t->code);
        mgo_jw_kstr(w, "class", t->class_[0] ? t->class_ : NULL);
        mgo_jw_kstr(w, "message", t->message);
        mgo_jw_obj_end(w);
    }
    mgo_jw_obj_end(w);
}

static mgo_err summary_visit(const struct mgo_mgr_target_row *t, void *c)
{
    struct summary *s = c;
    size_t si = state_index(t->state);
    s->total[si]++;
    if (t->batch < s->batches)
        s->per_batch[t->batch][si]++;
    if (t->code[0] && strcmp(t->class_, "none") != 0) {
        if (strcmp(t->class_, "app") == 0)
            s->fail_app++;
        else if (strcmp(t->class_, "device") == 0)
            s->fail_device++;
        size_t i = 0;
        while (i < s->codes_len && strcmp(s->codes[i], t->code) != 0)
            i++;
        if (i == s->codes_len && s->codes_len < MAX_CODES)
            snprintf(s->codes[s->codes_len++], sizeof s->codes[0], "%s", t->code);
        if (i < s->codes_len)
            s->code_n[i]++;
        else
            s->codes_other++;
    }
    if (s->w)
        mgo_rollout__write_target(s->w, t);
    return MGO_OK;
}

static void write_counts(struct mgo_jw *w, const uint32_t *counts)
{
    mgo_jw_obj(w);
    for (size_t i = 0; i < NSTATES; i++)
        mgo_jw_ku64(w, STATES[i], counts[i]);
    mgo_jw_obj_end(w);
}

static void write_threshold(struct mgo_jw *w, const char *key, int64_t count, int64_t percent)
{
    mgo_jw_key(w, key);
    if (count < 0 && percent < 0) {
        mgo_jw_null(w);
        return;
    }
    mgo_jw_obj(w);
    if (count >= 0)
        mgo_jw_ku64(w, "count", (uint64_t)count);
    if (percent >= 0)
        mgo_jw_ku64(w, "percent", (uint64_t)percent);
    mgo_jw_obj_end(w);
}

static void write_rollout(struct mgo_jw *w, const struct ro *r)
{
    const struct mgo_mgr_rollout_row *row = &r->row;
    mgo_jw_kstr(w, "id", r->id);
    mgo_jw_kstr(w, "app", r->app_id);
    mgo_jw_kstr(w, "version", r->version);
    mgo_jw_kstr(w, "mode", r->mode);
    if (r->selector[0])
        mgo_jw_kstr(w, "selector", r->selector);
    /* the answers' values are never shown: they may hold secrets (docs/security.md) */
    mgo_jw_kbool(w, "parameters", r->parameters != NULL);
    mgo_jw_kstr(w, "state", r->state);
    mgo_jw_kstr(w, "reason", r->reason[0] ? r->reason : NULL);
    mgo_jw_ku64(w, "batch", row->batch);
    mgo_jw_ku64(w, "batchCount", row->batches);
    mgo_jw_ktime(w, "createdAt", row->created_ms);
    mgo_jw_ktime(w, "updatedAt", row->updated_ms);
    if (row->finished_ms)
        mgo_jw_ktime(w, "finishedAt", row->finished_ms);
    mgo_jw_key(w, "strategy");
    mgo_jw_obj(w);
    mgo_jw_ku64(w, "canary", row->canary_size);
    if (row->batch_size)
        mgo_jw_ku64(w, "batchSize", row->batch_size);
    if (row->batch_percent)
        mgo_jw_ku64(w, "batchPercent", row->batch_percent);
    mgo_jw_ku64(w, "maxInFlight", row->max_in_flight);
    mgo_jw_ku64(w, "successTimeoutSeconds", row->gate_timeout_s);
    mgo_jw_ku64(w, "soakSeconds", row->soak_s);
    mgo_jw_key(w, "maxFailures");
    mgo_jw_obj(w);
    write_threshold(w, "batch", row->fail_batch_count, row->fail_batch_percent);
    write_threshold(w, "total", row->fail_total_count, row->fail_total_percent);
    mgo_jw_kbool(w, "appFailuresOnly", row->app_failures_only);
    mgo_jw_obj_end(w);
    mgo_jw_kstr(w, "onAbort", r->on_abort);
    mgo_jw_key(w, "offline");
    mgo_jw_obj(w);
    mgo_jw_ku64(w, "graceSeconds", row->offline_grace_s);
    mgo_jw_kstr(w, "countAs", r->offline_count);
    mgo_jw_obj_end(w);
    mgo_jw_obj_end(w);
}

mgo_err mgo_rollout__summary(struct mgo_mgr_store *store, const char *id, bool with_targets,
                             struct mgo_jw *w)
{
    struct ro r = {0};
    struct summary s = {0};
    mgo_err err = mgo_mgr_store_rollout_get(store, id, ro_copy, &r);
    if (err)
        goto cleanup;
    ro_point(&r);
    s.batches = r.row.batches;
    s.per_batch = calloc(s.batches ? s.batches : 1, sizeof *s.per_batch);
    if (!s.per_batch) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    write_rollout(w, &r);
    mgo_jw_ku64(w, "targetCount", r.row.targets);
    if (with_targets) {
        mgo_jw_key(w, "targets");
        mgo_jw_arr(w);
        s.w = w;
    }
    err = mgo_mgr_store_target_list(store, id, -1, NULL, summary_visit, &s);
    if (with_targets)
        mgo_jw_arr_end(w);
    if (err)
        goto cleanup;
    mgo_jw_key(w, "counts");
    write_counts(w, s.total);
    mgo_jw_key(w, "batches");
    mgo_jw_arr(w);
    for (uint32_t b = 0; b < s.batches; b++) {
        mgo_jw_obj(w);
        mgo_jw_ku64(w, "batch", b);
        uint32_t size = 0;
        for (size_t i = 0; i < NSTATES; i++)
            size += s.per_batch[b][i];
        mgo_jw_ku64(w, "size", size);
        mgo_jw_key(w, "counts");
        write_counts(w, s.per_batch[b]);
        mgo_jw_obj_end(w);
    }
    mgo_jw_arr_end(w);
    mgo_jw_key(w, "failures");
    mgo_jw_obj(w);
    mgo_jw_ku64(w, "app", s.fail_app);
    mgo_jw_ku64(w, "device", s.fail_device);
    mgo_jw_key(w, "byCode");
    mgo_jw_obj(w);
    for (size_t i = 0; i < s.codes_len; i++)
        mgo_jw_ku64(w, s.codes[i], s.code_n[i]);
    if (s.codes_other)
        mgo_jw_ku64(w, "other", s.codes_other);
    mgo_jw_obj_end(w);
    mgo_jw_obj_end(w);
cleanup:
    free(s.per_batch);
    ro_cleanup(&r);
    return err;
}
