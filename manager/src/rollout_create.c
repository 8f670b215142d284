/* rollout_create.c - a rollout's creation (rollout.h): the request checked field by field,
 * the targets chosen (selector or list, capabilities, deployments, other rollouts) with the
 * reason of every exclusion, their batches, and the rollout stored in one transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labels.h"
#include "lookup.h"
#include "rollout.h"
#include "mgo/log.h"
#include "mgo/match.h"
#include "mgo/params.h"
#include "mgo/selector.h"
#include "mgo/topic.h"

#define TAG "rollout"
#define WEEK_S (7u * 24u * 3600u)

/* ---- create: the request ----------------------------------------------------------------- */

struct spec {
    const char *app, *version, *mode, *selector, *on_abort, *offline_count;
    const struct mgo_value *parameters; /* map or NULL */
    const struct mgo_value *devices;    /* array or NULL */
    uint32_t canary, batch_size, batch_percent, max_in_flight, timeout_s, soak_s, grace_s;
    int64_t fb_count, fb_percent, ft_count, ft_percent;
    bool app_only;
};

static bool only_keys(const struct mgo_value *map, const char *prefix, const char *const *keys,
                      struct mgo_problems *p)
{
    bool ok = true;
    for (size_t i = 0; i < map->as.map.len; i++) {
        const char *k = map->as.map.items[i].key;
        bool known = false;
        for (size_t j = 0; keys[j] && !known; j++)
            known = strcmp(keys[j], k) == 0;
        if (!known) {
            char field[MGO_MAX_FIELD_PATH];
            snprintf(field, sizeof field, "%s%.64s", prefix, k);
            mgo_problems_add(p, field, "unknown field");
            ok = false;
        }
    }
    return ok;
}

static const struct mgo_value *get_map(const struct mgo_value *map, const char *key,
                                       const char *field, struct mgo_problems *p)
{
    const struct mgo_value *v = map ? mgo_value_get(map, key) : NULL;
    if (v && v->kind != MGO_V_MAP) {
        mgo_problems_add(p, field, "must be an object");
        return NULL;
    }
    return v;
}

static const char *get_str(const struct mgo_value *map, const char *key, const char *field,
                           const char *const *allowed, const char *def, struct mgo_problems *p)
{
    const struct mgo_value *v = map ? mgo_value_get(map, key) : NULL;
    if (!v)
        return def;
    if (v->kind != MGO_V_STR) {
        mgo_problems_add(p, field, "must be a string");
        return def;
    }
    if (!allowed)
        return v->as.str.ptr;
    for (size_t i = 0; allowed[i]; i++) {
        if (strcmp(allowed[i], v->as.str.ptr) == 0)
            return allowed[i];
    }
    char list[128] = "";
    for (size_t i = 0; allowed[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 allowed[i]);
    mgo_problems_add(p, field, "must be one of %s", list);
    return def;
}

static bool get_uint(const struct mgo_value *map, const char *key, const char *field, uint64_t min,
                     uint64_t max, uint32_t *out, struct mgo_problems *p)
{
    const struct mgo_value *v = map ? mgo_value_get(map, key) : NULL;
    if (!v)
        return false;
    if (v->kind != MGO_V_UINT || v->as.u < min || v->as.u > max) {
        mgo_problems_add(p, field, "must be a whole number from %llu to %llu",
                         (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = (uint32_t)v->as.u;
    return true;
}

/* {count: N} or {percent: P}: one of them. */
static void get_threshold(const struct mgo_value *parent, const char *key, const char *field,
                          int64_t *count, int64_t *percent, struct mgo_problems *p)
{
    *count = *percent = -1;
    const struct mgo_value *t = get_map(parent, key, field, p);
    if (!t)
        return;
    static const char *const keys[] = {"count", "percent", NULL};
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", field);
    only_keys(t, prefix, keys, p);
    uint32_t v = 0;
    char f[64];
    snprintf(f, sizeof f, "%s.count", field);
    if (get_uint(t, "count", f, 0, MGO_ROLLOUT_MAX_TARGETS, &v, p))
        *count = v;
    snprintf(f, sizeof f, "%s.percent", field);
    if (get_uint(t, "percent", f, 0, 100, &v, p))
        *percent = v;
    if (*count >= 0 && *percent >= 0)
        mgo_problems_add(p, field, "give count or percent, not both");
    if (!mgo_value_get(t, "count") && !mgo_value_get(t, "percent"))
        mgo_problems_add(p, field, "needs count or percent");
}

static void parse_spec(const struct mgo_value *body, struct spec *s, struct mgo_problems *p)
{
    static const char *const top[] = {"app",      "version", "parameters", "mode",
                                      "selector", "devices", "strategy",   NULL};
    static const char *const modes[] = {"upgrade", "deploy", NULL};
    static const char *const aborts[] = {"stop", "rollback", NULL};
    static const char *const counts[] = {"skipped", "failed", NULL};
    memset(s, 0, sizeof *s);
    only_keys(body, "", top, p);
    s->app = get_str(body, "app", "app", NULL, NULL, p);
    if (!s->app)
        mgo_problems_add(p, "app", "required: the application id");
    else if (!mgo_is_app_id(s->app))
        mgo_problems_add(p, "app", "must match ^[-a-z0-9]{1,200}$");
    s->version = get_str(body, "version", "version", NULL, NULL, p);
    s->mode = get_str(body, "mode", "mode", modes, "upgrade", p);
    s->parameters = get_map(body, "parameters", "parameters", p);
    s->selector = get_str(body, "selector", "selector", NULL, NULL, p);
    s->devices = mgo_value_get(body, "devices");
    if (s->devices && (s->devices->kind != MGO_V_ARRAY || s->devices->as.array.len == 0 ||
                       s->devices->as.array.len > MGO_ROLLOUT_MAX_TARGETS)) {
        mgo_problems_add(p, "devices", "must be a list of 1..%u device ids",
                         MGO_ROLLOUT_MAX_TARGETS);
        s->devices = NULL;
    }
    if (s->selector && mgo_value_get(body, "devices"))
        mgo_problems_add(p, "devices", "give selector or devices, not both");
    if (!s->selector && !mgo_value_get(body, "devices"))
        mgo_problems_add(p, "selector", "required (or devices): which devices to roll out to");

    const struct mgo_value *st = get_map(body, "strategy", "strategy", p);
    static const char *const skeys[] = {
        "canary",      "batchSize",   "batchPercent", "maxInFlight", "successTimeoutSeconds",
        "soakSeconds", "maxFailures", "onAbort",      "offline",     NULL};
    if (st)
        only_keys(st, "strategy.", skeys, p);
    s->timeout_s = MGO_ROLLOUT_DEFAULT_TIMEOUT_S;
    s->grace_s = MGO_ROLLOUT_DEFAULT_GRACE_S;
    get_uint(st, "canary", "strategy.canary", 0, MGO_ROLLOUT_MAX_TARGETS, &s->canary, p);
    get_uint(st, "batchSize", "strategy.batchSize", 1, MGO_ROLLOUT_MAX_TARGETS, &s->batch_size, p);
    get_uint(st, "batchPercent", "strategy.batchPercent", 1, 100, &s->batch_percent, p);
    if (s->batch_size && s->batch_percent)
        mgo_problems_add(p, "strategy.batchPercent", "give batchSize or batchPercent, not both");
    get_uint(st, "maxInFlight", "strategy.maxInFlight", 0, MGO_ROLLOUT_MAX_TARGETS,
             &s->max_in_flight, p);
    get_uint(st, "successTimeoutSeconds", "strategy.successTimeoutSeconds", 1, WEEK_S,
             &s->timeout_s, p);
    get_uint(st, "soakSeconds", "strategy.soakSeconds", 0, WEEK_S, &s->soak_s, p);
    s->on_abort = get_str(st, "onAbort", "strategy.onAbort", aborts, "stop", p);
    const struct mgo_value *mf = get_map(st, "maxFailures", "strategy.maxFailures", p);
    static const char *const mkeys[] = {"batch", "total", "appFailuresOnly", NULL};
    if (mf)
        only_keys(mf, "strategy.maxFailures.", mkeys, p);
    get_threshold(mf, "batch", "strategy.maxFailures.batch", &s->fb_count, &s->fb_percent, p);
    get_threshold(mf, "total", "strategy.maxFailures.total", &s->ft_count, &s->ft_percent, p);
    const struct mgo_value *ao = mf ? mgo_value_get(mf, "appFailuresOnly") : NULL;
    if (ao && ao->kind != MGO_V_BOOL)
        mgo_problems_add(p, "strategy.maxFailures.appFailuresOnly", "must be true or false");
    s->app_only = ao && ao->kind == MGO_V_BOOL && ao->as.b;
    const struct mgo_value *off = get_map(st, "offline", "strategy.offline", p);
    static const char *const okeys[] = {"graceSeconds", "countAs", NULL};
    if (off)
        only_keys(off, "strategy.offline.", okeys, p);
    get_uint(off, "graceSeconds", "strategy.offline.graceSeconds", 0, WEEK_S, &s->grace_s, p);
    s->offline_count = get_str(off, "countAs", "strategy.offline.countAs", counts, "skipped", p);
}

/* ---- create: the targets ----------------------------------------------------------------- */

struct pick {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char deployment[MGO_UUID_STR_SIZE];
};

struct picker {
    struct mgo_mgr_store *store;
    const struct spec *spec;
    const struct mgo_app_description *app;
    const struct mgo_selector *sel; /* NULL: a device list */
    mgo_rollout_plan_fn plan;
    void *plan_ctx;
    struct pick *picks;
    size_t len, excluded;
    bool too_many;
};

struct find_dep {
    const char *app_id;
    char id[MGO_UUID_STR_SIZE];
};

static mgo_err find_dep_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct find_dep *f = c;
    if (row->desired == MGO_MGR_DESIRED_PRESENT && strcmp(row->app_id, f->app_id) == 0 && !f->id[0])
        snprintf(f->id, sizeof f->id, "%s", row->id);
    return MGO_OK;
}

static mgo_err exclude(struct picker *pk, const char *device, const char *kind, const char *why)
{
    pk->excluded++;
    return pk->plan ? pk->plan(pk->plan_ctx, device, -1, kind, why) : MGO_OK;
}

/* Decides one device: targeted (added to picks) or excluded (reported). */
static mgo_err consider(struct picker *pk, const struct mgo_mgr_device_row *row)
{
    if (mgo_mgr_store_is_role(pk->store, row->id))
        return MGO_OK; /* never a device (protocol.md 2.3) */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_device_labels *l = malloc(sizeof *l);
    mgo_err err = l ? mgo_labels__of_device(pk->store, row, &arena, l) : MGO_ERR_NOMEM;
    char why[MGO_MATCH_REASON_SIZE + 64];
    if (err)
        goto cleanup;
    if (pk->sel && !mgo_selector_match(pk->sel, l->items, l->len, why, sizeof why)) {
        err = exclude(pk, row->id, "label", why);
        goto cleanup;
    }
    if (!l->have_caps) {
        err = exclude(pk, row->id, "capability", "no capabilities received");
        goto cleanup;
    }
    if (!mgo_match_app(pk->app, &l->caps, why, sizeof why)) {
        err = exclude(pk, row->id, "capability", why);
        goto cleanup;
    }
    struct find_dep f = {.app_id = pk->app->id};
    err = mgo_mgr_store_deployment_list(pk->store, row->id, pk->app->id, false, find_dep_visit, &f);
    if (err)
        goto cleanup;
    bool upgrade = strcmp(pk->spec->mode, "upgrade") == 0;
    if (upgrade && !f.id[0]) {
        snprintf(why, sizeof why, "no deployment of %s to upgrade", pk->app->id);
        err = exclude(pk, row->id, "deployment", why);
        goto cleanup;
    }
    if (!upgrade && f.id[0]) {
        snprintf(why, sizeof why, "already runs %s (deployment %s)", pk->app->id, f.id);
        err = exclude(pk, row->id, "deployment", why);
        goto cleanup;
    }
    char active[MGO_UUID_STR_SIZE];
    err = mgo_mgr_store_target_active(pk->store, row->id, active);
    if (err)
        goto cleanup;
    if (active[0]) {
        snprintf(why, sizeof why, "in rollout %s, which is not finished", active);
        err = exclude(pk, row->id, "rollout", why);
        goto cleanup;
    }
    if (pk->len == MGO_ROLLOUT_MAX_TARGETS) {
        pk->too_many = true;
        goto cleanup;
    }
    snprintf(pk->picks[pk->len].device, sizeof pk->picks[0].device, "%s", row->id);
    snprintf(pk->picks[pk->len].deployment, sizeof pk->picks[0].deployment, "%s", f.id);
    pk->len++;
cleanup:
    free(l);
    mgo_arena_cleanup(&arena);
    return err;
}

static mgo_err consider_visit(const struct mgo_mgr_device_row *row, void *c)
{
    return consider(c, row);
}

struct count_active {
    size_t n;
};

static mgo_err count_active_visit(const struct mgo_mgr_rollout_row *row, void *c)
{
    (void)row;
    ((struct count_active *)c)->n++;
    return MGO_OK;
}

/* Batch of target i of n: the canary batch first, then batches of the strategy's size. */
static uint32_t batch_of(const struct spec *s, size_t n, size_t i, uint32_t *batches)
{
    size_t canary = s->canary < n ? s->canary : n;
    size_t rest = n - canary;
    size_t size = rest;
    if (s->batch_size)
        size = s->batch_size;
    else if (s->batch_percent)
        size = (rest * s->batch_percent + 99u) / 100u;
    if (size == 0)
        size = 1;
    *batches = (uint32_t)((canary > 0 ? 1u : 0u) + (rest + size - 1) / size);
    if (i < canary)
        return 0;
    return (uint32_t)((canary > 0 ? 1u : 0u) + (i - canary) / size);
}

mgo_err mgo_rollout__create(struct mgo_mgr_store *store, const struct mgo_value *body, bool dry_run,
                            mgo_rollout_plan_fn plan, void *plan_ctx,
                            char id_out[MGO_UUID_STR_SIZE], struct mgo_problems *problems)
{
    struct spec s;
    size_t before = mgo_problems_total(problems);
    parse_spec(body, &s, problems);
    struct mgo_selector *sel = NULL;
    struct pick *picks = NULL;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_buf pjson;
    mgo_buf_init(&pjson, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = MGO_OK;
    if (s.selector) {
        sel = malloc(sizeof *sel);
        char why[MGO_SELECTOR_ERR_SIZE];
        if (!sel) {
            err = MGO_ERR_NOMEM;
            goto cleanup;
        }
        if (mgo_selector_parse(s.selector, sel, why, sizeof why) != MGO_OK)
            mgo_problems_add(problems, "selector", "%s", why);
    }
    struct mgo_app_description app;
    struct mgo_value tree;
    if (s.app && mgo_is_app_id(s.app)) {
        err = mgo_lookup__app(store, s.app, s.version, &arena, &app, &tree);
        if (err == MGO_ERR_NOT_FOUND) {
            mgo_problems_add(problems, s.version ? "version" : "app",
                             "application %s%s%s is not in the catalog", s.app,
                             s.version ? " version " : "", s.version ? s.version : "");
            err = MGO_OK;
            s.app = NULL;
        } else if (err) {
            goto cleanup;
        }
    }
    if (mgo_problems_total(problems) != before)
        goto invalid;
    if (s.parameters) {
        /* the answers must fit the target version (checked again per device with the
         * deployment's previous values when the rollout changes it) */
        struct mgo_value resolved;
        if (mgo_params_resolve(&app, s.parameters, NULL, &arena, &resolved, problems) != MGO_OK)
            goto invalid;
        err = mgo_value_to_json(s.parameters, false, &pjson);
        if (err)
            goto cleanup;
    }
    struct count_active ca = {0};
    err = mgo_mgr_store_rollout_list(store, true, MGO_ROLLOUT_MAX_ACTIVE + 1, 0, count_active_visit,
                                     &ca);
    if (err)
        goto cleanup;
    if (!dry_run && ca.n >= MGO_ROLLOUT_MAX_ACTIVE) {
        mgo_problems_add(problems, "app", "%u rollouts are active already (the most at once)",
                         MGO_ROLLOUT_MAX_ACTIVE);
        err = MGO_ERR_LIMIT;
        goto cleanup;
    }
    picks = calloc(MGO_ROLLOUT_MAX_TARGETS, sizeof *picks);
    if (!picks) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    struct picker pk = {.store = store, .spec = &s, .app = &app, .sel = sel, .picks = picks};
    /* the plan visitor is called after the batches are known (for targeted devices) */
    pk.plan = plan;
    pk.plan_ctx = plan_ctx;
    if (s.selector) {
        err = mgo_mgr_store_device_list(store, consider_visit, &pk);
    } else {
        for (size_t i = 0; !err && i < s.devices->as.array.len; i++) {
            const struct mgo_value *d = &s.devices->as.array.items[i];
            char field[32];
            snprintf(field, sizeof field, "devices[%zu]", i);
            if (d->kind != MGO_V_STR ||
                mgo_topic_check_device_id(d->as.str.ptr, d->as.str.len) != MGO_OK) {
                mgo_problems_add(problems, field, "must be a device id");
                continue;
            }
            bool dup = false;
            for (size_t j = 0; j < i && !dup; j++) {
                const struct mgo_value *e = &s.devices->as.array.items[j];
                dup = e->kind == MGO_V_STR && strcmp(e->as.str.ptr, d->as.str.ptr) == 0;
            }
            if (dup) {
                mgo_problems_add(problems, field, "device %s is listed twice", d->as.str.ptr);
                continue;
            }
            err = mgo_mgr_store_device_get(store, d->as.str.ptr, consider_visit, &pk);
            if (err == MGO_ERR_NOT_FOUND)
                err = exclude(&pk, d->as.str.ptr, "device", "unknown device");
        }
    }
    if (err)
        goto cleanup;
    if (pk.too_many) {
        mgo_problems_add(problems, s.selector ? "selector" : "devices",
                         "targets more than %u devices", MGO_ROLLOUT_MAX_TARGETS);
        err = MGO_ERR_LIMIT;
        goto cleanup;
    }
    if (mgo_problems_total(problems) != before)
        goto invalid;
    uint32_t batches = 0;
    if (pk.len > 0)
        (void)batch_of(&s, pk.len, 0, &batches);
    if (batches > MGO_ROLLOUT_MAX_BATCHES) {
        mgo_problems_add(problems, "strategy.batchSize", "makes %u batches; at most %u", batches,
                         MGO_ROLLOUT_MAX_BATCHES);
        goto invalid;
    }
    for (size_t i = 0; plan && i < pk.len; i++) {
        uint32_t nb;
        err = plan(plan_ctx, picks[i].device, batch_of(&s, pk.len, i, &nb), NULL, NULL);
        if (err)
            goto cleanup;
    }
    if (pk.len == 0 && !dry_run) {
        mgo_problems_add(problems, s.selector ? "selector" : "devices",
                         "targets no device (%zu excluded; see a dry run for why)", pk.excluded);
        goto invalid;
    }
    if (dry_run)
        goto cleanup;
    err = mgo_params_new_uuid(id_out);
    if (err)
        goto cleanup;
    struct mgo_mgr_rollout_row row = {
        .id = id_out,
        .app_id = app.id,
        .version = app.version,
        .parameters_json = s.parameters ? (const char *)pjson.data : NULL,
        .mode = s.mode,
        .selector = s.selector ? s.selector : "",
        .on_abort = s.on_abort,
        .offline_count = s.offline_count,
        .batch_size = s.batch_size,
        .batch_percent = s.batch_percent,
        .canary_size = s.canary,
        .max_in_flight = s.max_in_flight,
        .gate_timeout_s = s.timeout_s,
        .soak_s = s.soak_s,
        .offline_grace_s = s.grace_s,
        .fail_batch_count = s.fb_count,
        .fail_batch_percent = s.fb_percent,
        .fail_total_count = s.ft_count,
        .fail_total_percent = s.ft_percent,
        .app_failures_only = s.app_only,
        .state = "running",
        .reason = "",
        .batches = batches,
    };
    err = mgo_mgr_store_begin(store);
    if (err)
        goto cleanup;
    err = mgo_mgr_store_rollout_put(store, &row);
    for (size_t i = 0; !err && i < pk.len; i++) {
        uint32_t nb;
        struct mgo_mgr_target_row t = {
            .rollout_id = id_out,
            .device_id = picks[i].device,
            .seq = (uint32_t)i,
            .batch = batch_of(&s, pk.len, i, &nb),
            .state = "waiting",
            .deployment_id = picks[i].deployment,
        };
        err = mgo_mgr_store_target_put(store, &t);
    }
    if (err) {
        mgo_mgr_store_rollback(store);
        goto cleanup;
    }
    err = mgo_mgr_store_commit(store);
    if (!err)
        MGO_LOGI(TAG, "rollout %s: %s %s to %zu devices in %u batches (%s)", id_out, app.id,
                 app.version, pk.len, batches, s.mode);
    goto cleanup;
invalid:
    err = MGO_ERR_INVALID;
cleanup:
    free(picks);
    free(sel);
    mgo_buf_cleanup(&pjson);
    mgo_arena_cleanup(&arena);
    return err;
}
