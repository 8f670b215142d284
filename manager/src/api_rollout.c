/* api_rollout.c - rollout routes, device labels and the paged device list (api_rollout.h). */
#include "api_rollout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "labels.h"
#include "lookup.h"
#include "rollout.h"
#include "mgo/log.h"
#include "mgo/match.h"
#include "mgo/selector.h"

#define TAG "api"
#define PROBLEM_BASE "https://docs.margo.org/specification/problem-types#"

static void bad_request(struct mgo_api_request *req, const char *detail,
                        const struct mgo_problems *p)
{
    mgo_api__problem(req, 400, PROBLEM_BASE "invalid-request", "Bad Request", detail, p);
}

static void invalid(struct mgo_api_request *req, const char *detail, const struct mgo_problems *p)
{
    mgo_api__problem(req, 422, PROBLEM_BASE "semantic-error", "Unprocessable Content", detail, p);
}

static void internal(struct mgo_api_request *req, mgo_err err)
{
    MGO_LOGE(TAG, "%s %s: %s", req->method, req->path, mgo_strerror(err));
    mgo_api__problem(req, 500, NULL, "Internal Server Error", mgo_strerror(err), NULL);
}

static void not_allowed(struct mgo_api_request *req)
{
    mgo_api__problem(req, 405, NULL, "Method Not Allowed",
                     "this method is not supported on this resource", NULL);
}

static void reply_json(struct mgo_api_request *req, unsigned status, const struct mgo_jw *w)
{
    if (w->err) {
        internal(req, w->err);
        return;
    }
    req->status = status;
    req->content_type = "application/json";
}

static bool method(const struct mgo_api_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

/* ?name= as a number in [min, max] (def when absent); false after a 400. */
static bool query_uint(struct mgo_api_request *req, const char *name, uint32_t min, uint32_t max,
                       uint32_t def, uint32_t *out)
{
    const char *v = mgo_api__query(req, name);
    *out = def;
    if (!v)
        return true;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < min || n > max) {
        struct mgo_problems p;
        mgo_problems_init(&p);
        mgo_problems_add(&p, name, "must be a whole number from %u to %u", min, max);
        bad_request(req, "a query parameter is invalid", &p);
        return false;
    }
    *out = (uint32_t)n;
    return true;
}

/* ---- rollouts ------------------------------------------------------------------------------ */

static void rollout_reply(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                          unsigned status)
{
    mgo_buf_reset(&req->reply);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_err err = mgo_rollout__summary(api->store, id, false, &w);
    mgo_jw_obj_end(&w);
    if (err == MGO_ERR_NOT_FOUND)
        mgo_api__problem(req, 404, PROBLEM_BASE "rollout-not-found", "Not Found", "no such rollout",
                         NULL);
    else if (err)
        internal(req, err);
    else
        reply_json(req, status, &w);
}

struct list_ctx {
    struct mgo_api *api;
    struct mgo_jw *w;
};

static mgo_err list_visit(const struct mgo_mgr_rollout_row *row, void *c)
{
    struct list_ctx *ctx = c;
    mgo_jw_obj(ctx->w);
    mgo_err err = mgo_rollout__summary(ctx->api->store, row->id, false, ctx->w);
    mgo_jw_obj_end(ctx->w);
    return err;
}

static void rollouts_list(struct mgo_api *api, struct mgo_api_request *req)
{
    uint32_t limit, offset;
    /* a summary holds up to MGO_ROLLOUT_MAX_BATCHES batches: a smaller page keeps the reply
     * within the reply buffer */
    if (!query_uint(req, "limit", 1, MGO_API_ROLLOUTS_PAGE_MAX, MGO_API_ROLLOUTS_PAGE_DEFAULT,
                    &limit) ||
        !query_uint(req, "offset", 0, UINT32_MAX, 0, &offset))
        return;
    const char *active = mgo_api__query(req, "active");
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "rollouts");
    mgo_jw_arr(&w);
    struct list_ctx ctx = {api, &w};
    mgo_err err = mgo_mgr_store_rollout_list(api->store, active && strcmp(active, "true") == 0,
                                             limit, offset, list_visit, &ctx);
    mgo_jw_arr_end(&w);
    mgo_jw_ku64(&w, "limit", limit);
    mgo_jw_ku64(&w, "offset", offset);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        reply_json(req, 200, &w);
}

#define PLAN_EXCLUDED_SHOWN 200u

struct plan_ctx {
    struct mgo_jw *targeted; /* writes into the reply directly */
    struct mgo_buf excluded; /* the excluded array's members, written after */
    struct mgo_jw ex;
    size_t n_targeted, n_excluded;
    size_t by_kind[5];
};

static const char *const KINDS[] = {"label", "capability", "deployment", "rollout", "device"};

static mgo_err plan_visit(void *c, const char *device, int64_t batch, const char *kind,
                          const char *reason)
{
    struct plan_ctx *p = c;
    if (batch >= 0) {
        p->n_targeted++;
        mgo_jw_obj(p->targeted);
        mgo_jw_kstr(p->targeted, "device", device);
        mgo_jw_ku64(p->targeted, "batch", (uint64_t)batch);
        mgo_jw_obj_end(p->targeted);
        return p->targeted->err;
    }
    for (size_t i = 0; i < 5; i++) {
        if (strcmp(KINDS[i], kind) == 0)
            p->by_kind[i]++;
    }
    if (p->n_excluded++ >= PLAN_EXCLUDED_SHOWN)
        return MGO_OK;
    mgo_jw_obj(&p->ex);
    mgo_jw_kstr(&p->ex, "device", device);
    mgo_jw_kstr(&p->ex, "kind", kind);
    mgo_jw_kstr(&p->ex, "reason", reason);
    mgo_jw_obj_end(&p->ex);
    return p->ex.err;
}

static void rollouts_create(struct mgo_api *api, struct mgo_api_request *req)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value body;
    const char *dry = mgo_api__query(req, "dryRun");
    bool dry_run = dry && strcmp(dry, "true") == 0;
    struct plan_ctx pc = {0};
    mgo_buf_init(&pc.excluded, 8u * 1024u * 1024u);
    mgo_jw_init(&pc.ex, &pc.excluded);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    pc.targeted = &w;
    if (!mgo_api__body_map(req, &arena, &body))
        goto cleanup;
    char id[MGO_UUID_STR_SIZE] = "";
    if (dry_run) {
        mgo_jw_obj(&w);
        mgo_jw_key(&w, "targeted");
        mgo_jw_arr(&w);
        mgo_jw_arr(&pc.ex);
    }
    mgo_err err =
        mgo_rollout__create(api->store, &body, dry_run, dry_run ? plan_visit : NULL, &pc, id, &p);
    if (err == MGO_ERR_INVALID || err == MGO_ERR_LIMIT) {
        invalid(req, "no rollout was created", &p);
        goto cleanup;
    }
    if (err) {
        internal(req, err);
        goto cleanup;
    }
    if (!dry_run) {
        snprintf(req->location, sizeof req->location, "/api/v1/rollouts/%s", id);
        rollout_reply(api, req, id, 201);
        goto cleanup;
    }
    mgo_jw_arr_end(&w);
    mgo_jw_arr_end(&pc.ex);
    mgo_jw_ku64(&w, "targetedCount", pc.n_targeted);
    mgo_jw_ku64(&w, "excludedCount", pc.n_excluded);
    mgo_jw_key(&w, "excludedByKind");
    mgo_jw_obj(&w);
    for (size_t i = 0; i < 5; i++)
        mgo_jw_ku64(&w, KINDS[i], pc.by_kind[i]);
    mgo_jw_obj_end(&w);
    if (pc.ex.err == MGO_OK)
        pc.ex.err = mgo_buf_append(&pc.excluded, "", 1);
    if (pc.ex.err == MGO_OK) {
        mgo_jw_key(&w, "excluded");
        mgo_jw_raw(&w, (const char *)pc.excluded.data);
    }
    if (pc.n_excluded > PLAN_EXCLUDED_SHOWN)
        mgo_jw_ku64(&w, "excludedOmitted", pc.n_excluded - PLAN_EXCLUDED_SHOWN);
    mgo_jw_obj_end(&w);
    if (pc.ex.err)
        internal(req, pc.ex.err);
    else
        reply_json(req, 200, &w);
cleanup:
    mgo_buf_cleanup(&pc.excluded);
    mgo_arena_cleanup(&arena);
}

struct targets_ctx {
    struct mgo_jw *w;
    const char *state;
    int64_t batch;
    uint32_t limit, offset, seen, written;
};

static mgo_err targets_visit(const struct mgo_mgr_target_row *t, void *c)
{
    struct targets_ctx *ctx = c;
    if (ctx->seen++ < ctx->offset)
        return MGO_OK;
    if (ctx->written == ctx->limit)
        return MGO_OK; /* counted only: seen tells the total */
    ctx->written++;
    mgo_rollout__write_target(ctx->w, t);
    return ctx->w->err;
}

static mgo_err exists_visit(const struct mgo_mgr_rollout_row *row, void *c)
{
    (void)row;
    (void)c;
    return MGO_OK;
}

static void rollout_targets(struct mgo_api *api, struct mgo_api_request *req, const char *id)
{
    struct targets_ctx ctx = {.state = mgo_api__query(req, "state"), .batch = -1};
    uint32_t batch;
    if (!query_uint(req, "limit", 1, MGO_API_PAGE_MAX, MGO_API_PAGE_DEFAULT, &ctx.limit) ||
        !query_uint(req, "offset", 0, UINT32_MAX, 0, &ctx.offset) ||
        !query_uint(req, "batch", 0, UINT32_MAX, UINT32_MAX, &batch))
        return;
    if (batch != UINT32_MAX)
        ctx.batch = batch;
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    ctx.w = &w;
    mgo_jw_obj(&w);
    mgo_jw_kstr(&w, "rollout", id);
    mgo_jw_key(&w, "targets");
    mgo_jw_arr(&w);
    mgo_err err = mgo_mgr_store_rollout_get(api->store, id, exists_visit, NULL);
    if (!err)
        err = mgo_mgr_store_target_list(api->store, id, ctx.batch, ctx.state, targets_visit, &ctx);
    mgo_jw_arr_end(&w);
    mgo_jw_ku64(&w, "total", ctx.seen);
    mgo_jw_ku64(&w, "limit", ctx.limit);
    mgo_jw_ku64(&w, "offset", ctx.offset);
    mgo_jw_obj_end(&w);
    if (err == MGO_ERR_NOT_FOUND)
        mgo_api__problem(req, 404, PROBLEM_BASE "rollout-not-found", "Not Found", "no such rollout",
                         NULL);
    else if (err)
        internal(req, err);
    else
        reply_json(req, 200, &w);
}

static void rollout_command(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                            const char *action)
{
    static const struct {
        const char *name;
        enum mgo_rollout_cmd cmd;
    } actions[] = {{"pause", MGO_ROLLOUT_PAUSE},
                   {"resume", MGO_ROLLOUT_RESUME},
                   {"cancel", MGO_ROLLOUT_CANCEL},
                   {"rollback", MGO_ROLLOUT_ROLLBACK}};
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        if (strcmp(actions[i].name, action) != 0)
            continue;
        char why[160] = "";
        mgo_err err = mgo_rollout__command(api->store, id, actions[i].cmd, why, sizeof why);
        if (err == MGO_ERR_NOT_FOUND)
            mgo_api__problem(req, 404, PROBLEM_BASE "rollout-not-found", "Not Found",
                             "no such rollout", NULL);
        else if (err == MGO_ERR_CONFLICT)
            mgo_api__problem(req, 409, NULL, "Conflict", why, NULL);
        else if (err)
            internal(req, err);
        else
            rollout_reply(api, req, id, 200);
        return;
    }
    mgo_api__problem(req, 404, NULL, "Not Found",
                     "unknown rollout action (pause, resume, cancel, rollback, targets)", NULL);
}

void mgo_api_rollout__route(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                            const char *action)
{
    if (!id) {
        if (method(req, "GET"))
            rollouts_list(api, req);
        else if (method(req, "POST"))
            rollouts_create(api, req);
        else
            not_allowed(req);
    } else if (!action) {
        if (method(req, "GET"))
            rollout_reply(api, req, id, 200);
        else
            not_allowed(req);
    } else if (strcmp(action, "targets") == 0) {
        if (method(req, "GET"))
            rollout_targets(api, req, id);
        else
            not_allowed(req);
    } else if (method(req, "POST")) {
        rollout_command(api, req, id, action);
    } else {
        not_allowed(req);
    }
}

/* ---- labels ------------------------------------------------------------------------------ */

static void write_labels(struct mgo_jw *w, const struct mgo_device_labels *l, bool derived)
{
    mgo_jw_obj(w);
    size_t from = derived ? l->operator_len : 0, to = derived ? l->len : l->operator_len;
    for (size_t i = from; i < to; i++)
        mgo_jw_kstr(w, l->items[i].key, l->items[i].value);
    mgo_jw_obj_end(w);
}

struct labels_ctx {
    struct mgo_api *api;
    struct mgo_jw *w;
};

static mgo_err labels_visit(const struct mgo_mgr_device_row *row, void *c)
{
    struct labels_ctx *ctx = c;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_device_labels *l = malloc(sizeof *l);
    mgo_err err = l ? mgo_labels__of_device(ctx->api->store, row, &arena, l) : MGO_ERR_NOMEM;
    if (!err) {
        mgo_jw_obj(ctx->w);
        mgo_jw_kstr(ctx->w, "device", row->id);
        mgo_jw_key(ctx->w, "labels");
        write_labels(ctx->w, l, false);
        mgo_jw_key(ctx->w, "derived");
        write_labels(ctx->w, l, true);
        mgo_jw_obj_end(ctx->w);
    }
    free(l);
    mgo_arena_cleanup(&arena);
    return err;
}

static void labels_reply(struct mgo_api *api, struct mgo_api_request *req, const char *id)
{
    mgo_buf_reset(&req->reply);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    struct labels_ctx ctx = {api, &w};
    mgo_err err = mgo_mgr_store_is_role(api->store, id)
                      ? MGO_ERR_NOT_FOUND
                      : mgo_mgr_store_device_get(api->store, id, labels_visit, &ctx);
    if (err == MGO_ERR_NOT_FOUND)
        mgo_api__problem(req, 404, PROBLEM_BASE "device-not-found", "Not Found", "no such device",
                         NULL);
    else if (err)
        internal(req, err);
    else
        reply_json(req, 200, &w);
}

static mgo_err clear_visit(const char *key, const char *value, void *c)
{
    (void)value;
    char **keys = c;
    for (size_t i = 0; i < MGO_LABELS_MAX_PER_DEVICE; i++) {
        if (!keys[i]) {
            keys[i] = strdup(key);
            return keys[i] ? MGO_OK : MGO_ERR_NOMEM;
        }
    }
    return MGO_OK;
}

/* PUT replaces the operator labels; PATCH merges (a null value deletes a label). */
static void labels_change(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                          bool replace)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value body;
    char *old[MGO_LABELS_MAX_PER_DEVICE] = {0};
    if (!mgo_api__body_map(req, &arena, &body))
        goto cleanup;
    const struct mgo_value *labels = mgo_value_get(&body, "labels");
    for (size_t i = 0; i < body.as.map.len; i++) {
        if (strcmp(body.as.map.items[i].key, "labels") != 0)
            mgo_problems_add(&p, body.as.map.items[i].key, "unknown field (expected labels)");
    }
    if (!labels || labels->kind != MGO_V_MAP) {
        mgo_problems_add(&p, "labels", "required: an object of key: value%s",
                         replace ? "" : " (null deletes)");
    } else {
        if (labels->as.map.len > MGO_LABELS_MAX_PER_DEVICE)
            mgo_problems_add(&p, "labels", "at most %u labels per device",
                             MGO_LABELS_MAX_PER_DEVICE);
        for (size_t i = 0; i < labels->as.map.len; i++) {
            const struct mgo_member *m = &labels->as.map.items[i];
            char field[MGO_MAX_FIELD_PATH], why[96];
            snprintf(field, sizeof field, "labels.%.100s", m->key);
            if (!mgo_label_key_ok(m->key, why, sizeof why))
                mgo_problems_add(&p, field, "%s", why);
            else if (strncmp(m->key, MGO_LABEL_DERIVED_PREFIX, strlen(MGO_LABEL_DERIVED_PREFIX)) ==
                     0)
                mgo_problems_add(&p, field,
                                 "keys under " MGO_LABEL_DERIVED_PREFIX
                                 " are derived from capabilities, never set");
            else if (m->value.kind == MGO_V_NULL && !replace)
                continue;
            else if (m->value.kind != MGO_V_STR)
                mgo_problems_add(&p, field, "must be a string%s", replace ? "" : " or null");
            else if (!mgo_label_value_ok(m->value.as.str.ptr, why, sizeof why))
                mgo_problems_add(&p, field, "%s", why);
        }
    }
    if (p.count > 0) {
        invalid(req, "no label was changed", &p);
        goto cleanup;
    }
    mgo_err err = mgo_mgr_store_is_role(api->store, id)
                      ? MGO_ERR_NOT_FOUND
                      : mgo_mgr_store_device_get(api->store, id, NULL, NULL);
    if (!err)
        err = mgo_mgr_store_begin(api->store);
    if (err)
        goto fail;
    if (replace)
        err = mgo_mgr_store_label_list(api->store, id, clear_visit, old);
    for (size_t i = 0; !err && i < MGO_LABELS_MAX_PER_DEVICE && old[i]; i++)
        err = mgo_mgr_store_label_delete(api->store, id, old[i]);
    for (size_t i = 0; !err && i < labels->as.map.len; i++) {
        const struct mgo_member *m = &labels->as.map.items[i];
        if (m->value.kind == MGO_V_NULL) {
            err = mgo_mgr_store_label_delete(api->store, id, m->key);
            if (err == MGO_ERR_NOT_FOUND)
                err = MGO_OK;
        } else {
            err = mgo_mgr_store_label_set(api->store, id, m->key, m->value.as.str.ptr,
                                          MGO_LABELS_MAX_PER_DEVICE);
        }
    }
    if (err) {
        mgo_mgr_store_rollback(api->store);
        goto fail;
    }
    err = mgo_mgr_store_commit(api->store);
    if (err)
        goto fail;
    labels_reply(api, req, id);
    goto cleanup;
fail:
    if (err == MGO_ERR_NOT_FOUND) {
        mgo_api__problem(req, 404, PROBLEM_BASE "device-not-found", "Not Found", "no such device",
                         NULL);
    } else if (err == MGO_ERR_LIMIT) {
        mgo_problems_add(&p, "labels", "a device has at most %u labels", MGO_LABELS_MAX_PER_DEVICE);
        invalid(req, "no label was changed", &p);
    } else {
        internal(req, err);
    }
cleanup:
    for (size_t i = 0; i < MGO_LABELS_MAX_PER_DEVICE; i++)
        free(old[i]);
    mgo_arena_cleanup(&arena);
}

void mgo_api_rollout__device_sub(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                                 const char *sub)
{
    if (strcmp(sub, "labels") != 0) {
        mgo_api__problem(req, 404, NULL, "Not Found", "unknown resource", NULL);
        return;
    }
    if (method(req, "GET"))
        labels_reply(api, req, id);
    else if (method(req, "PUT"))
        labels_change(api, req, id, true);
    else if (method(req, "PATCH"))
        labels_change(api, req, id, false);
    else
        not_allowed(req);
}

/* ---- the paged device list --------------------------------------------------------------- */

bool mgo_api_rollout__wants_page(const struct mgo_api_request *req)
{
    return mgo_api__query(req, "selector") || mgo_api__query(req, "limit") ||
           mgo_api__query(req, "after");
}

struct page_ctx {
    struct mgo_api *api;
    struct mgo_jw *w;
    const struct mgo_selector *sel;
    const struct mgo_app_description *app; /* ?compatible= */
    uint32_t limit, written;
    char last[MGO_MAX_DEVICE_ID_LEN + 1];
    bool more;
    /* with a selector: devices examined, the last of them (MGO_API_SELECTOR_SCAN) */
    uint32_t examined;
    char examined_last[MGO_MAX_DEVICE_ID_LEN + 1];
};

static mgo_err page_visit(const struct mgo_mgr_device_row *row, void *c)
{
    struct page_ctx *ctx = c;
    if (mgo_mgr_store_is_role(ctx->api->store, row->id))
        return MGO_OK;
    if (ctx->sel && ctx->examined == MGO_API_SELECTOR_SCAN)
        return MGO_ERR_LIMIT; /* the scan bound: the page ends short, `next` goes on */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_device_labels *l = malloc(sizeof *l);
    mgo_err err = l ? mgo_labels__of_device(ctx->api->store, row, &arena, l) : MGO_ERR_NOMEM;
    if (err)
        goto cleanup;
    if (ctx->sel) {
        if (ctx->written < ctx->limit) {
            ctx->examined++;
            snprintf(ctx->examined_last, sizeof ctx->examined_last, "%s", row->id);
        }
        if (!mgo_selector_match(ctx->sel, l->items, l->len, NULL, 0))
            goto cleanup;
    }
    if (ctx->written == ctx->limit) {
        ctx->more = true;
        err = MGO_ERR_LIMIT; /* the page is full: ends the walk */
        goto cleanup;
    }
    ctx->written++;
    snprintf(ctx->last, sizeof ctx->last, "%s", row->id);
    struct mgo_jw *w = ctx->w;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "id", row->id);
    mgo_jw_key(w, "online");
    if (row->has_presence)
        mgo_jw_bool(w, row->online);
    else
        mgo_jw_null(w);
    mgo_jw_ktime(w, "lastSeen", row->last_seen_ms);
    mgo_jw_key(w, "labels");
    write_labels(w, l, false);
    mgo_jw_key(w, "derived");
    write_labels(w, l, true);
    if (ctx->app) {
        char why[MGO_MATCH_REASON_SIZE] = "no capabilities received yet";
        const struct mgo_profile *prof =
            l->have_caps ? mgo_match_app(ctx->app, &l->caps, why, sizeof why) : NULL;
        mgo_jw_kbool(w, "compatible", prof != NULL);
        mgo_jw_kstr(w, "profile", prof ? prof->id : NULL);
        mgo_jw_kstr(w, "reason", prof ? NULL : why);
    }
    mgo_jw_obj_end(w);
cleanup:
    free(l);
    mgo_arena_cleanup(&arena);
    return err;
}

void mgo_api_rollout__devices_page(struct mgo_api *api, struct mgo_api_request *req)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_selector *sel = NULL;
    struct page_ctx ctx = {.api = api};
    if (!query_uint(req, "limit", 1, MGO_API_PAGE_MAX, MGO_API_PAGE_DEFAULT, &ctx.limit))
        goto cleanup;
    const char *text = mgo_api__query(req, "selector");
    if (text) {
        char why[MGO_SELECTOR_ERR_SIZE];
        sel = malloc(sizeof *sel);
        if (!sel) {
            internal(req, MGO_ERR_NOMEM);
            goto cleanup;
        }
        if (mgo_selector_parse(text, sel, why, sizeof why) != MGO_OK) {
            struct mgo_problems p;
            mgo_problems_init(&p);
            mgo_problems_add(&p, "selector", "%s", why);
            bad_request(req, "the selector is invalid", &p);
            goto cleanup;
        }
        ctx.sel = sel;
    }
    struct mgo_app_description app;
    struct mgo_value tree;
    const char *compat = mgo_api__query(req, "compatible");
    if (compat) {
        mgo_err err = mgo_lookup__app(api->store, compat, mgo_api__query(req, "version"), &arena,
                                      &app, &tree);
        if (err == MGO_ERR_NOT_FOUND) {
            mgo_api__problem(req, 404, NULL, "Not Found",
                             "no such application (or version) in the catalog", NULL);
            goto cleanup;
        }
        if (err) {
            internal(req, err);
            goto cleanup;
        }
        ctx.app = &app;
    }
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    ctx.w = &w;
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "devices");
    mgo_jw_arr(&w);
    const char *after = mgo_api__query(req, "after");
    mgo_err err = mgo_mgr_store_device_list_after(api->store, after ? after : "", page_visit, &ctx);
    const char *next = ctx.more ? ctx.last : NULL;
    if (err == MGO_ERR_LIMIT && !ctx.more && ctx.examined == MGO_API_SELECTOR_SCAN) {
        next = ctx.examined_last; /* more devices may match past this one */
        err = MGO_OK;
    }
    if (err == MGO_ERR_LIMIT && ctx.more)
        err = MGO_OK;
    mgo_jw_arr_end(&w);
    mgo_jw_ku64(&w, "limit", ctx.limit);
    mgo_jw_kstr(&w, "next", next);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        reply_json(req, 200, &w);
cleanup:
    free(sel);
    mgo_arena_cleanup(&arena);
}
