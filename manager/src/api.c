/* api.c - the northbound HTTP JSON API (docs/api.md). Runs on the loop thread: every
 * handler may use the store and publish. Errors are RFC 9457 problem+json bodies with an
 * `errors: [{field, message}]` list. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "api_rollout.h"
#include "deploy.h"
#include "events.h"
#include "jw.h"
#include "labels.h"
#include "lookup.h"
#include "mgr_internal.h"
#include "overview.h"
#include "southbound.h"
#include "sse.h"
#include "mgo/log.h"
#include "mgo/match.h"
#include "mgo/selector.h"

#define TAG "api"
#define PROBLEM_BASE "https://docs.margo.org/specification/problem-types#"
#define JSON_TYPE "application/json"
#define MGO_API_MASK "***" /* stands for a sensitive parameter's value in replies */

void mgo_api__problem(struct mgo_api_request *req, unsigned status, const char *type,
                      const char *title, const char *detail, const struct mgo_problems *problems)
{
    mgo_buf_reset(&req->reply);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_jw_kstr(&w, "type", type ? type : "about:blank");
    mgo_jw_kstr(&w, "title", title);
    mgo_jw_ku64(&w, "status", status);
    if (detail)
        mgo_jw_kstr(&w, "detail", detail);
    mgo_jw_kstr(&w, "instance", req->path);
    bool retry = status == 503 || status == 500;
    mgo_jw_kbool(&w, "retryable", retry);
    mgo_jw_kstr(&w, "backoffStrategy", retry ? "exponential" : "none");
    if (problems && problems->count > 0) {
        mgo_jw_key(&w, "errors");
        mgo_jw_arr(&w);
        for (size_t i = 0; i < problems->count; i++) {
            mgo_jw_obj(&w);
            mgo_jw_kstr(&w, "field", problems->items[i].field);
            mgo_jw_kstr(&w, "message", problems->items[i].rule);
            mgo_jw_obj_end(&w);
        }
        mgo_jw_arr_end(&w);
        if (problems->dropped)
            mgo_jw_ku64(&w, "errorsOmitted", problems->dropped);
    }
    mgo_jw_obj_end(&w);
    req->status = status;
    req->content_type = "application/problem+json";
}

static void invalid(struct mgo_api_request *req, const char *detail,
                    const struct mgo_problems *problems)
{
    mgo_api__problem(req, 422, PROBLEM_BASE "semantic-error", "Unprocessable Content", detail,
                     problems);
}

static void bad_request(struct mgo_api_request *req, const char *detail,
                        const struct mgo_problems *problems)
{
    mgo_api__problem(req, 400, PROBLEM_BASE "invalid-request", "Bad Request", detail, problems);
}

static void not_found(struct mgo_api_request *req, const char *type, const char *detail)
{
    mgo_api__problem(req, 404, type, "Not Found", detail, NULL);
}

static void internal(struct mgo_api_request *req, mgo_err err)
{
    MGO_LOGE(TAG, "%s %s: %s", req->method, req->path, mgo_strerror(err));
    mgo_api__problem(req, 500, NULL, "Internal Server Error", mgo_strerror(err), NULL);
}

const char *mgo_api__query(const struct mgo_api_request *req, const char *key)
{
    for (size_t i = 0; i < req->query_len; i++) {
        if (strcmp(req->query[i].key, key) == 0)
            return req->query[i].value;
    }
    return NULL;
}

static void ok_json(struct mgo_api_request *req, unsigned status, const struct mgo_jw *w)
{
    if (w->err) {
        internal(req, w->err);
        return;
    }
    req->status = status;
    req->content_type = JSON_TYPE;
}

bool mgo_api__body_map(struct mgo_api_request *req, struct mgo_arena *arena, struct mgo_value *out)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    if (req->body.len == 0) {
        bad_request(req, "a JSON object body is required", NULL);
        return false;
    }
    if (mgo_value_from_yaml(req->body.data, req->body.len, arena, out, &p) != MGO_OK) {
        bad_request(req, "the body is not valid JSON", &p);
        return false;
    }
    if (out->kind != MGO_V_MAP) {
        bad_request(req, "the body must be a JSON object", NULL);
        return false;
    }
    return true;
}

static const char *str_field(const struct mgo_value *map, const char *key)
{
    const struct mgo_value *v = mgo_value_get(map, key);
    return v && v->kind == MGO_V_STR ? v->as.str.ptr : NULL;
}

/* ---- apps ------------------------------------------------------------------------------ */

/* Whether every component of rel is a plain name: not empty at the start, no "." or ".."
 * component, not absolute. */
static bool plain_relative(const char *rel)
{
    if (rel[0] == '\0' || rel[0] == '/')
        return false;
    const char *c = rel;
    while (*c) {
        size_t n = strcspn(c, "/");
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += n;
        while (*c == '/')
            c++;
    }
    return true;
}

/* Whether real (a resolved path) is dir_real itself or below it. */
static bool beneath(const char *dir_real, const char *real)
{
    size_t n = strlen(dir_real);
    if (strncmp(real, dir_real, n) != 0)
        return false;
    return real[n] == '/' || (n == 1 && dir_real[0] == '/');
}

/* Reads the {"path": ...} of POST /apps into file: a margo.yaml, or a package folder holding
 * one, inside the catalog folder dir (catalog-dir). False for every refusal alike (no
 * folder configured, absolute, a ".." component, a symbolic link leading out, missing, not a
 * regular file, unreadable, too large), so the reply tells nothing about the file system.
 * The links are resolved before the check; the catalog folder's writers are trusted not to
 * swap a link between the check and the read (the folder is the operator's). */
static bool catalog_read(const char *dir, const char *rel, struct mgo_buf *file)
{
    if (dir == NULL || dir[0] == '\0' || !plain_relative(rel) || strlen(rel) > 1024)
        return false;
    char dir_real[PATH_MAX], joined[PATH_MAX + 1200], real[PATH_MAX];
    if (realpath(dir, dir_real) == NULL)
        return false;
    snprintf(joined, sizeof joined, "%s/%s", dir_real, rel);
    if (realpath(joined, real) == NULL || !beneath(dir_real, real))
        return false;
    struct stat sb;
    if (stat(real, &sb) != 0)
        return false;
    if (S_ISDIR(sb.st_mode)) {
        /* a package folder holds margo.yaml; it may be a link too */
        snprintf(joined, sizeof joined, "%s/margo.yaml", real);
        if (realpath(joined, real) == NULL || !beneath(dir_real, real) || stat(real, &sb) != 0)
            return false;
    }
    if (!S_ISREG(sb.st_mode))
        return false;
    mgo_buf_reset(file);
    return mgo_buf_read_file(file, real) == MGO_OK;
}

static void write_app_summary(struct mgo_jw *w, const struct mgo_app_description *app,
                              int64_t added_ms)
{
    mgo_jw_kstr(w, "id", app->id);
    mgo_jw_kstr(w, "version", app->version);
    mgo_jw_kstr(w, "name", app->name);
    mgo_jw_kstr(w, "description", app->description);
    mgo_jw_kstr(w, "tagline", app->tagline);
    mgo_jw_key(w, "profiles");
    mgo_jw_arr(w);
    for (size_t i = 0; i < app->profiles_len; i++) {
        mgo_jw_obj(w);
        mgo_jw_kstr(w, "id", app->profiles[i].id);
        mgo_jw_kstr(w, "type", mgo_profile_type_name(app->profiles[i].type));
        mgo_jw_obj_end(w);
    }
    mgo_jw_arr_end(w);
    if (added_ms)
        mgo_jw_ktime(w, "addedAt", added_ms);
}

static const struct mgo_value *schema_entry(const struct mgo_value *tree, const char *name)
{
    const struct mgo_value *list = mgo_value_pointer(tree, "/configuration/schema");
    for (size_t i = 0; list && list->kind == MGO_V_ARRAY && i < list->as.array.len; i++) {
        const char *n = str_field(&list->as.array.items[i], "name");
        if (n && strcmp(n, name) == 0)
            return &list->as.array.items[i];
    }
    return NULL;
}

static void write_questions(struct mgo_jw *w, const struct mgo_app_description *app,
                            const struct mgo_value *tree)
{
    mgo_jw_key(w, "questions");
    mgo_jw_arr(w);
    for (size_t s = 0; s < app->sections_len; s++) {
        for (size_t i = 0; i < app->sections[s].settings_len; i++) {
            const struct mgo_setting *st = &app->sections[s].settings[i];
            mgo_jw_obj(w);
            mgo_jw_kstr(w, "section", app->sections[s].name);
            mgo_jw_kstr(w, "parameter", st->parameter);
            mgo_jw_kstr(w, "name", st->name);
            mgo_jw_kstr(w, "description", st->description);
            mgo_jw_kbool(w, "immutable", st->immutable);
            mgo_jw_kbool(w, "sensitive", st->sensitive);
            mgo_jw_key(w, "schema");
            mgo_jw_value(w, schema_entry(tree, st->schema));
            mgo_jw_key(w, "default");
            const struct mgo_value *def = NULL;
            for (size_t p = 0; p < app->parameters_len; p++) {
                if (strcmp(app->parameters[p].name, st->parameter) == 0 &&
                    app->parameters[p].has_value)
                    def = &app->parameters[p].value;
            }
            mgo_jw_value(w, def);
            mgo_jw_obj_end(w);
        }
    }
    mgo_jw_arr_end(w);
}

struct app_list_ctx {
    struct mgo_jw *w;
    size_t n;
};

static mgo_err app_list_visit(const struct mgo_mgr_app_row *row, void *c)
{
    struct app_list_ctx *ctx = c;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value tree;
    struct mgo_app_description app;
    if (mgo_value_from_msgpack(row->doc, row->doc_len, &arena, &tree, &p) == MGO_OK &&
        mgo_app_description_from_value(&tree, &arena, &app, &p) == MGO_OK) {
        mgo_jw_obj(ctx->w);
        write_app_summary(ctx->w, &app, row->added_ms);
        mgo_jw_obj_end(ctx->w);
        ctx->n++;
    }
    mgo_arena_cleanup(&arena);
    return MGO_OK;
}

static void apps_list(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "apps");
    mgo_jw_arr(&w);
    struct app_list_ctx ctx = {&w, 0};
    mgo_err err = mgo_mgr_store_app_list(api->store, NULL, app_list_visit, &ctx);
    mgo_jw_arr_end(&w);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
}

static mgo_err version_visit(const struct mgo_mgr_app_row *row, void *c)
{
    mgo_jw_str(c, row->version);
    return MGO_OK;
}

static void apps_show(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    const char *id = arg[0];
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_app_description app;
    struct mgo_value tree, norm;
    mgo_err err =
        mgo_lookup__app(api->store, id, mgo_api__query(req, "version"), &arena, &app, &tree);
    if (err == MGO_ERR_NOT_FOUND) {
        not_found(req, NULL, "no such application (or version) in the catalog");
        goto cleanup;
    }
    if (!err)
        err = mgo_app_description_to_value(&app, &arena, &norm);
    if (err) {
        internal(req, err);
        goto cleanup;
    }
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    write_app_summary(&w, &app, 0);
    mgo_jw_key(&w, "versions");
    mgo_jw_arr(&w);
    err = mgo_mgr_store_app_list(api->store, id, version_visit, &w);
    mgo_jw_arr_end(&w);
    write_questions(&w, &app, &tree);
    mgo_jw_key(&w, "document");
    mgo_jw_value(&w, &norm);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void apps_add(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_buf file, doc;
    mgo_buf_init(&file, MGO_MAX_FILE_BYTES);
    mgo_buf_init(&doc, MGO_MAX_FILE_BYTES * 2);
    const uint8_t *src = req->body.data;
    size_t src_len = req->body.len;
    struct mgo_value body;
    if (src_len == 0) {
        bad_request(req, "send margo.yaml as the body, or {\"yaml\": TEXT} / {\"path\": PATH}",
                    NULL);
        goto cleanup;
    }
    /* a JSON wrapper {"yaml": ...} or {"path": ...}; anything else is the document itself */
    if (mgo_value_from_yaml(src, src_len, &arena, &body, &p) == MGO_OK && body.kind == MGO_V_MAP &&
        (mgo_value_get(&body, "yaml") || mgo_value_get(&body, "path"))) {
        const char *yaml = str_field(&body, "yaml");
        const char *path = str_field(&body, "path");
        if (yaml) {
            src = (const uint8_t *)yaml;
            src_len = strlen(yaml);
        } else if (path) {
            if (!catalog_read(api->catalog_dir, path, &file)) {
                /* one answer for every refusal: a token holder learns nothing about files
                 * outside the catalog folder (existence, type, contents) */
                mgo_problems_init(&p);
                mgo_problems_add(&p, "path",
                                 "must name a readable margo.yaml (or a package "
                                 "folder holding one) inside the catalog folder, as a "
                                 "relative path without \"..\"");
                if (api->catalog_dir == NULL || api->catalog_dir[0] == '\0')
                    mgo_api__problem(req, 403, PROBLEM_BASE "forbidden", "Forbidden",
                                     "the path form is disabled (no catalog-dir configured); "
                                     "send margo.yaml as the body",
                                     &p);
                else
                    mgo_api__problem(req, 403, PROBLEM_BASE "forbidden", "Forbidden",
                                     "the application file cannot be used", &p);
                goto cleanup;
            }
            src = file.data;
            src_len = file.len;
        } else {
            mgo_problems_init(&p);
            mgo_problems_add(&p, mgo_value_get(&body, "yaml") ? "yaml" : "path",
                             "must be a string");
            bad_request(req, "wrong wrapper field type", &p);
            goto cleanup;
        }
    }
    mgo_problems_init(&p);
    struct mgo_value tree;
    struct mgo_app_description app;
    if (mgo_value_from_yaml(src, src_len, &arena, &tree, &p) != MGO_OK) {
        invalid(req, "margo.yaml is not well-formed YAML", &p);
        goto cleanup;
    }
    if (mgo_app_description_from_value(&tree, &arena, &app, &p) != MGO_OK) {
        invalid(req, "margo.yaml is not a valid ApplicationDescription", &p);
        goto cleanup;
    }
    /* the kind-less package form (apiVersion v1) is stored with its kind (docs/api.md) */
    struct mgo_value norm;
    mgo_err err = mgo_app_description_normalise(&tree, &arena, &norm);
    if (!err)
        err = mgo_value_to_msgpack(&norm, &doc);
    struct mgo_mgr_app_row row = {
        .id = app.id,
        .version = app.version,
        .name = app.name,
        .source = src,
        .source_len = src_len,
        .doc = doc.data,
        .doc_len = doc.len,
    };
    if (!err)
        err = mgo_mgr_store_app_put(api->store, &row);
    if (err == MGO_ERR_EXISTS) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s version %s is already in the catalog", app.id,
                 app.version);
        mgo_api__problem(req, 409, NULL, "Conflict", detail, NULL);
        goto cleanup;
    }
    if (err) {
        internal(req, err);
        goto cleanup;
    }
    MGO_LOGI(TAG, "catalog: added %s %s", app.id, app.version);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    write_app_summary(&w, &app, mgo_mgr_store_now_ms());
    mgo_jw_obj_end(&w);
    snprintf(req->location, sizeof req->location, "/api/v1/apps/%s", app.id);
    ok_json(req, 201, &w);
cleanup:
    mgo_buf_cleanup(&file);
    mgo_buf_cleanup(&doc);
    mgo_arena_cleanup(&arena);
}

static void apps_delete(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    const char *id = arg[0];
    const char *version = mgo_api__query(req, "version");
    mgo_err err = mgo_mgr_store_app_delete(api->store, id, version);
    if (err == MGO_ERR_CONFLICT) {
        mgo_api__problem(req, 409, NULL, "Conflict",
                         "the application is still deployed; remove its deployments first", NULL);
    } else if (err == MGO_ERR_NOT_FOUND) {
        not_found(req, NULL, "no such application (or version) in the catalog");
    } else if (err) {
        internal(req, err);
    } else {
        MGO_LOGI(TAG, "catalog: removed %s%s%s", id, version ? " " : "", version ? version : "");
        req->status = 204;
    }
}

/* ---- devices ------------------------------------------------------------------------------ */

static void write_types(struct mgo_jw *w, unsigned types)
{
    mgo_jw_key(w, "deploymentTypes");
    mgo_jw_arr(w);
    if (types & MGO_DTYPE_HELM)
        mgo_jw_str(w, "helm");
    if (types & MGO_DTYPE_COMPOSE)
        mgo_jw_str(w, "compose");
    if (types & MGO_DTYPE_CUSTOM)
        mgo_jw_str(w, "custom");
    mgo_jw_arr_end(w);
}

struct count_ctx {
    size_t n;
};

static mgo_err count_dep(const struct mgo_mgr_deployment_row *row, void *c)
{
    (void)row;
    ((struct count_ctx *)c)->n++;
    return MGO_OK;
}

struct dev_list_ctx {
    struct mgo_api *api;
    struct mgo_jw *w;
    const struct mgo_app_description *app; /* ?compatible= */
    bool full;                             /* show: capabilities tree too */
};

/* A store error ends the reply (the caller answers 500, never a partial list). */
static mgo_err write_device(struct dev_list_ctx *ctx, const struct mgo_mgr_device_row *row)
{
    struct mgo_jw *w = ctx->w;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value tree;
    struct mgo_capabilities caps;
    bool have_caps =
        row->caps && row->caps_len > 0 &&
        mgo_value_from_msgpack(row->caps, row->caps_len, &arena, &tree, &p) == MGO_OK &&
        mgo_capabilities_from_value(&tree, &arena, &caps, &p) == MGO_OK;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "id", row->id);
    mgo_jw_key(w, "online");
    if (row->has_presence)
        mgo_jw_bool(w, row->online);
    else
        mgo_jw_null(w);
    mgo_jw_ku64(w, "boot", row->boot);
    mgo_jw_ktime(w, "lastSeen", row->last_seen_ms);
    mgo_jw_kstr(w, "binding", row->binding); /* mqtt or http (docs/margo-http.md) */
    mgo_jw_kstr(w, "vendor", have_caps ? caps.vendor : NULL);
    mgo_jw_kstr(w, "modelNumber", have_caps ? caps.model_number : NULL);
    write_types(w, have_caps ? caps.deployment_types : 0);
    struct count_ctx cc = {0};
    mgo_err err =
        mgo_mgr_store_deployment_list(ctx->api->store, row->id, NULL, false, count_dep, &cc);
    mgo_jw_ku64(w, "deployments", cc.n);
    /* what the per-device bounds refused or noted (docs/security.md "Bounded storage") */
    mgo_jw_ku64(w, "eventsDropped", row->events_dropped);
    mgo_jw_ku64(w, "statusesOverRate", row->statuses_over_rate);
    mgo_jw_ku64(w, "positionsDropped", row->positions_dropped);
    if (ctx->app) {
        char why[MGO_MATCH_REASON_SIZE] = "no capabilities received yet";
        const struct mgo_profile *prof =
            have_caps ? mgo_match_app(ctx->app, &caps, why, sizeof why) : NULL;
        mgo_jw_kbool(w, "compatible", prof != NULL);
        mgo_jw_kstr(w, "profile", prof ? prof->id : NULL);
        mgo_jw_kstr(w, "reason", prof ? NULL : why);
    }
    if (ctx->full) {
        mgo_jw_key(w, "capabilities");
        mgo_jw_value(w, have_caps ? &tree : NULL);
    }
    mgo_jw_obj_end(w);
    mgo_arena_cleanup(&arena);
    return err;
}

static mgo_err dev_list_visit(const struct mgo_mgr_device_row *row, void *c)
{
    struct dev_list_ctx *ctx = c;
    /* a role identity stored by an older version is no device (protocol.md §2.3) */
    if (mgo_mgr_store_is_role(ctx->api->store, row->id))
        return MGO_OK;
    return write_device(ctx, row);
}

static void devices_list(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    if (mgo_api_rollout__wants_page(req)) { /* ?selector, ?limit, ?after: a page */
        mgo_api_rollout__devices_page(api, req);
        return;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_app_description app;
    struct mgo_value tree;
    const char *compat = mgo_api__query(req, "compatible");
    struct dev_list_ctx ctx = {.api = api};
    if (compat) {
        mgo_err err = mgo_lookup__app(api->store, compat, mgo_api__query(req, "version"), &arena,
                                      &app, &tree);
        if (err == MGO_ERR_NOT_FOUND) {
            not_found(req, NULL, "no such application (or version) in the catalog");
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
    if (compat) {
        mgo_jw_kstr(&w, "app", app.id);
        mgo_jw_kstr(&w, "version", app.version);
    }
    mgo_jw_key(&w, "devices");
    mgo_jw_arr(&w);
    mgo_err err = mgo_mgr_store_device_list(api->store, dev_list_visit, &ctx);
    mgo_jw_arr_end(&w);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void devices_show(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    const char *id = arg[0];
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    struct dev_list_ctx ctx = {.api = api, .w = &w, .full = true};
    if (mgo_mgr_store_is_role(api->store, id)) {
        not_found(req, PROBLEM_BASE "device-not-found",
                  "no such device: the id is a role identity (manager or monitor), never a "
                  "device");
        return;
    }
    mgo_err err = mgo_mgr_store_device_get(api->store, id, dev_list_visit, &ctx);
    if (err == MGO_ERR_NOT_FOUND)
        not_found(req, PROBLEM_BASE "device-not-found", "no such device");
    else if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
}

/* ---- deployments ---------------------------------------------------------------------- */

struct status_brief {
    char state[16];
    int64_t at;
};

static mgo_err status_brief_visit(const struct mgo_mgr_status_row *row, void *c)
{
    struct status_brief *b = c;
    snprintf(b->state, sizeof b->state, "%s", row->state);
    b->at = row->received_ms;
    return MGO_OK;
}

/* Sensitive parameters (docs/security.md): a parameter whose configuration setting carries
 * x-margo-mqtt-extensions: {sensitive: true} is written as MGO_API_MASK in every reply. The
 * app version of the deployment decides; when it cannot be loaded every value is masked
 * (fail closed). One app version is kept loaded for a whole list. */
struct secrets {
    bool loaded; /* app_id/version below are the ones looked up */
    bool known;  /* ... and that app version was found and validates */
    char app_id[MGO_MAX_APP_ID_LEN + 1];
    char version[129];
    struct mgo_arena arena;
    struct mgo_app_description app;
};

static void secrets_init(struct secrets *s)
{
    memset(s, 0, sizeof *s);
    mgo_arena_init(&s->arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
}

static void secrets_cleanup(struct secrets *s)
{
    mgo_arena_cleanup(&s->arena);
}

static void secrets_for(struct mgo_api *api, struct secrets *s, const char *app_id,
                        const char *version)
{
    if (s->loaded && strcmp(s->app_id, app_id) == 0 && strcmp(s->version, version) == 0)
        return;
    mgo_arena_cleanup(&s->arena);
    mgo_arena_init(&s->arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    s->loaded = true;
    snprintf(s->app_id, sizeof s->app_id, "%s", app_id);
    snprintf(s->version, sizeof s->version, "%s", version);
    struct mgo_value tree;
    s->known = mgo_lookup__app(api->store, app_id, version, &s->arena, &s->app, &tree) == MGO_OK;
    if (!s->known)
        MGO_LOGW(TAG, "app %s %s cannot be loaded: every parameter value is masked", app_id,
                 version);
}

static bool secrets_has(const struct secrets *s, const char *param)
{
    if (!s->known)
        return true;
    for (size_t i = 0; i < s->app.sections_len; i++) {
        const struct mgo_section *sec = &s->app.sections[i];
        for (size_t k = 0; k < sec->settings_len; k++) {
            if (sec->settings[k].sensitive && strcmp(sec->settings[k].parameter, param) == 0)
                return true;
        }
    }
    return false;
}

static bool secrets_any(const struct secrets *s)
{
    if (!s->known)
        return true;
    for (size_t i = 0; i < s->app.sections_len; i++) {
        for (size_t k = 0; k < s->app.sections[i].settings_len; k++) {
            if (s->app.sections[i].settings[k].sensitive)
                return true;
        }
    }
    return false;
}

static void mask_value(struct mgo_value *v)
{
    memset(v, 0, sizeof *v);
    v->kind = MGO_V_STR;
    v->as.str.ptr = MGO_API_MASK;
    v->as.str.len = sizeof MGO_API_MASK - 1;
}

static struct mgo_value *member(struct mgo_value *map, const char *key)
{
    for (size_t i = 0; map && map->kind == MGO_V_MAP && i < map->as.map.len; i++) {
        if (strcmp(map->as.map.items[i].key, key) == 0)
            return &map->as.map.items[i].value;
    }
    return NULL;
}

/* "parameters": the stored answers (JSON text) with sensitive values masked. */
static void write_parameters(struct mgo_jw *w, const struct secrets *s, const char *json)
{
    if (json == NULL || !secrets_any(s)) {
        mgo_jw_raw(w, json);
        return;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    if (mgo_value_from_yaml(json, strlen(json), &arena, &v, &p) == MGO_OK && v.kind == MGO_V_MAP) {
        for (size_t i = 0; i < v.as.map.len; i++) {
            if (secrets_has(s, v.as.map.items[i].key))
                mask_value(&v.as.map.items[i].value);
        }
        mgo_jw_value(w, &v);
    } else {
        mgo_jw_null(w); /* never echo what cannot be sorted into masked and clear */
    }
    mgo_arena_cleanup(&arena);
}

/* The ApplicationDeployment tree: spec.parameters.NAME.value masked. */
static void mask_document(struct mgo_value *doc, const struct secrets *s)
{
    struct mgo_value *params = member(member(doc, "spec"), "parameters");
    for (size_t i = 0; params && params->kind == MGO_V_MAP && i < params->as.map.len; i++) {
        struct mgo_member *pm = &params->as.map.items[i];
        struct mgo_value *value = member(&pm->value, "value");
        if (value && secrets_has(s, pm->key))
            mask_value(value);
    }
}

struct dep_ctx {
    struct mgo_api *api;
    struct mgo_jw *w;
    bool full;
    struct secrets *secrets;
};

static mgo_err status_full_visit(const struct mgo_mgr_status_row *row, void *c)
{
    struct mgo_jw *w = c;
    mgo_jw_raw(w, row->doc_json);
    return MGO_OK;
}

static mgo_err history_visit(const struct mgo_mgr_status_row *row, void *c)
{
    struct mgo_jw *w = c;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "state", row->state);
    if (row->has_journal) {
        mgo_jw_ku64(w, "boot", row->boot);
        mgo_jw_ku64(w, "seq", row->seq);
    }
    mgo_jw_ktime(w, "receivedAt", row->received_ms);
    mgo_jw_obj_end(w);
    return MGO_OK;
}

/* A store error ends the reply (the caller answers 500, never partial data). */
static mgo_err write_deployment(struct dep_ctx *ctx, const struct mgo_mgr_deployment_row *row)
{
    struct mgo_jw *w = ctx->w;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "id", row->id);
    mgo_jw_kstr(w, "device", row->device_id);
    mgo_jw_kstr(w, "app", row->app_id);
    mgo_jw_kstr(w, "version", row->app_version);
    mgo_jw_kstr(w, "profileType", row->profile_type);
    mgo_jw_kstr(w, "desired", mgo_mgr_desired_name(row->desired));
    mgo_jw_ku64(w, "manifestVersion", row->manifest_version);
    mgo_jw_kstr(w, "digest", row->digest);
    secrets_for(ctx->api, ctx->secrets, row->app_id, row->app_version);
    mgo_jw_key(w, "parameters");
    write_parameters(w, ctx->secrets, row->parameters_json);
    struct status_brief b = {"", 0};
    mgo_err err = mgo_mgr_store_status_get(ctx->api->store, row->id, status_brief_visit, &b);
    if (err == MGO_ERR_NOT_FOUND) /* never reported */
        err = MGO_OK;
    mgo_jw_kstr(w, "state", b.state[0] ? b.state : NULL);
    mgo_jw_ktime(w, "stateAt", b.at);
    mgo_jw_ktime(w, "createdAt", row->created_ms);
    mgo_jw_ktime(w, "updatedAt", row->updated_ms);
    if (ctx->full) {
        struct mgo_arena arena;
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_problems p;
        mgo_problems_init(&p);
        struct mgo_value doc;
        mgo_jw_key(w, "document");
        if (mgo_value_from_msgpack(row->doc, row->doc_len, &arena, &doc, &p) == MGO_OK) {
            mask_document(&doc, ctx->secrets);
            mgo_jw_value(w, &doc);
        } else
            mgo_jw_null(w);
        mgo_arena_cleanup(&arena);
        mgo_jw_key(w, "status");
        if (b.state[0] && !err)
            err = mgo_mgr_store_status_get(ctx->api->store, row->id, status_full_visit, w);
        else
            mgo_jw_null(w);
        mgo_jw_key(w, "history");
        mgo_jw_arr(w);
        if (!err)
            err = mgo_mgr_store_status_history(ctx->api->store, row->id, history_visit, w);
        mgo_jw_arr_end(w);
    }
    mgo_jw_obj_end(w);
    return err;
}

static mgo_err dep_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    return write_deployment(c, row);
}

/* ---- the paged deployment list (docs/api.md "GET /api/v1/deployments") ---------------- */

#define DEP_PAGE_MAX 500u
#define DEP_PAGE_DEFAULT 100u
#define DEP_SEL_CACHE 256u /* devices whose selector result is kept during one page */

/* The selector's result per device, direct-mapped by a hash of the id: a device's labels are
 * read (and its capabilities decoded) once per page, not once per deployment. */
struct sel_slot {
    char id[MGO_MAX_DEVICE_ID_LEN + 1];
    bool match;
};

struct dep_page_ctx {
    struct dep_ctx dep;
    const struct mgo_selector *sel;
    struct sel_slot *cache; /* DEP_SEL_CACHE slots when sel */
    uint32_t limit, written, examined;
    char last[MGO_UUID_STR_SIZE];          /* the last row written */
    char examined_last[MGO_UUID_STR_SIZE]; /* the last row examined */
    bool more;
};

struct sel_eval {
    struct mgo_api *api;
    const struct mgo_selector *sel;
    bool match;
};

static mgo_err sel_device_visit(const struct mgo_mgr_device_row *row, void *c)
{
    struct sel_eval *e = c;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_device_labels *l = malloc(sizeof *l);
    mgo_err err = l ? mgo_labels__of_device(e->api->store, row, &arena, l) : MGO_ERR_NOMEM;
    if (!err)
        e->match = mgo_selector_match(e->sel, l->items, l->len, NULL, 0);
    free(l);
    mgo_arena_cleanup(&arena);
    return err;
}

/* Whether the deployment's device satisfies the selector (a device not in the store has no
 * labels). */
static mgo_err sel_matches(struct dep_page_ctx *ctx, const char *device_id, bool *out)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)device_id; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    struct sel_slot *slot = &ctx->cache[h % DEP_SEL_CACHE];
    if (slot->id[0] && strcmp(slot->id, device_id) == 0) {
        *out = slot->match;
        return MGO_OK;
    }
    struct sel_eval e = {ctx->dep.api, ctx->sel, false};
    mgo_err err = mgo_mgr_store_device_get(ctx->dep.api->store, device_id, sel_device_visit, &e);
    if (err == MGO_ERR_NOT_FOUND) {
        e.match = mgo_selector_match(ctx->sel, NULL, 0, NULL, 0);
        err = MGO_OK;
    }
    if (err)
        return err;
    snprintf(slot->id, sizeof slot->id, "%s", device_id);
    slot->match = e.match;
    *out = e.match;
    return MGO_OK;
}

static mgo_err dep_page_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct dep_page_ctx *ctx = c;
    if (ctx->sel) {
        ctx->examined++;
        snprintf(ctx->examined_last, sizeof ctx->examined_last, "%s", row->id);
        bool match = false;
        mgo_err err = sel_matches(ctx, row->device_id, &match);
        if (err || !match)
            return err;
    }
    if (ctx->written == ctx->limit) {
        ctx->more = true;
        return MGO_ERR_LIMIT; /* the page is full: ends the walk */
    }
    ctx->written++;
    snprintf(ctx->last, sizeof ctx->last, "%s", row->id);
    return write_deployment(&ctx->dep, row);
}

/* Whether GET /api/v1/deployments asks for the paged form. */
static bool deployments_wants_page(const struct mgo_api_request *req)
{
    return mgo_api__query(req, "limit") || mgo_api__query(req, "after") ||
           mgo_api__query(req, "state") || mgo_api__query(req, "selector");
}

/* Checks the paging parameters into q and sel (400 naming the field and the rule). */
static bool deployments_page_query(struct mgo_api_request *req, struct mgo_mgr_deployment_query *q,
                                   struct mgo_selector *sel, bool *have_sel)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    const char *v = mgo_api__query(req, "limit");
    q->limit = DEP_PAGE_DEFAULT;
    if (v) {
        char *end = NULL;
        unsigned long long n = strtoull(v, &end, 10);
        if (v[0] < '0' || v[0] > '9' || *end != '\0' || n < 1 || n > DEP_PAGE_MAX)
            mgo_problems_add(&p, "limit", "must be a whole number from 1 to %u", DEP_PAGE_MAX);
        else
            q->limit = (uint32_t)n;
    }
    q->after = mgo_api__query(req, "after");
    if (q->after && !mgo_is_uuid(q->after))
        mgo_problems_add(&p, "after",
                         "must be a deployment id (the next member of the previous page)");
    q->state = mgo_api__query(req, "state");
    enum mgo_state st;
    if (q->state && strcmp(q->state, "unreported") != 0 && mgo_state_parse(q->state, &st) != MGO_OK)
        mgo_problems_add(&p, "state",
                         "must be one of pending, installing, installed, failed, removing, "
                         "removed, unreported");
    const char *text = mgo_api__query(req, "selector");
    *have_sel = false;
    if (text) {
        char why[MGO_SELECTOR_ERR_SIZE];
        if (mgo_selector_parse(text, sel, why, sizeof why) != MGO_OK)
            mgo_problems_add(&p, "selector", "%s", why);
        else
            *have_sel = true;
    }
    if (p.count > 0) {
        bad_request(req, "a query parameter is invalid", &p);
        return false;
    }
    return true;
}

static void deployments_page(struct mgo_api *api, struct mgo_api_request *req)
{
    const char *all = mgo_api__query(req, "all");
    struct mgo_mgr_deployment_query q = {
        .device_id = mgo_api__query(req, "device"),
        .app_id = mgo_api__query(req, "app"),
        .include_removed = all && strcmp(all, "true") == 0,
    };
    struct mgo_selector *sel = malloc(sizeof *sel);
    struct sel_slot *cache = calloc(DEP_SEL_CACHE, sizeof *cache);
    struct secrets sec;
    secrets_init(&sec);
    if (!sel || !cache) {
        internal(req, MGO_ERR_NOMEM);
        goto cleanup;
    }
    bool have_sel;
    if (!deployments_page_query(req, &q, sel, &have_sel))
        goto cleanup;
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    struct dep_page_ctx ctx = {
        .dep = {api, &w, false, &sec},
        .sel = have_sel ? sel : NULL,
        .cache = cache,
        .limit = q.limit,
    };
    uint32_t page_limit = q.limit;
    /* without a selector SQL stops after one row more than the page (which says "more");
     * with one, rows are read in id order until the page is full or MGO_API_SELECTOR_SCAN rows were
     * examined */
    q.limit = have_sel ? MGO_API_SELECTOR_SCAN : page_limit + 1;
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "deployments");
    mgo_jw_arr(&w);
    mgo_err err = mgo_mgr_store_deployment_page(api->store, &q, dep_page_visit, &ctx);
    if (err == MGO_ERR_LIMIT && ctx.more)
        err = MGO_OK;
    const char *next = ctx.more ? ctx.last : NULL;
    if (!err && !ctx.more && ctx.examined == MGO_API_SELECTOR_SCAN)
        next = ctx.examined_last; /* the scan bound: more rows may match past this one */
    mgo_jw_arr_end(&w);
    mgo_jw_ku64(&w, "limit", page_limit);
    mgo_jw_kstr(&w, "next", next);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
cleanup:
    secrets_cleanup(&sec);
    free(cache);
    free(sel);
}

static void deployments_list(struct mgo_api *api, struct mgo_api_request *req,
                             const char *const *arg)
{
    (void)arg;
    if (deployments_wants_page(req)) { /* ?limit, ?after, ?state, ?selector: a page */
        deployments_page(api, req);
        return;
    }
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    struct secrets sec;
    secrets_init(&sec);
    struct dep_ctx ctx = {api, &w, false, &sec};
    const char *all = mgo_api__query(req, "all");
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "deployments");
    mgo_jw_arr(&w);
    mgo_err err = mgo_mgr_store_deployment_list(api->store, mgo_api__query(req, "device"),
                                                mgo_api__query(req, "app"),
                                                all && strcmp(all, "true") == 0, dep_visit, &ctx);
    secrets_cleanup(&sec);
    mgo_jw_arr_end(&w);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
}

static void deployment_reply(struct mgo_api *api, struct mgo_api_request *req, const char *id,
                             unsigned status)
{
    mgo_buf_reset(&req->reply);
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    struct secrets sec;
    secrets_init(&sec);
    struct dep_ctx ctx = {api, &w, true, &sec};
    mgo_err err = mgo_mgr_store_deployment_get(api->store, id, dep_visit, &ctx);
    secrets_cleanup(&sec);
    if (err == MGO_ERR_NOT_FOUND)
        not_found(req, PROBLEM_BASE "deployment-not-found", "no such deployment");
    else if (err)
        internal(req, err);
    else
        ok_json(req, status, &w);
}

static void deployments_create(struct mgo_api *api, struct mgo_api_request *req,
                               const char *const *arg)
{
    (void)arg;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value body;
    const char **devices = NULL;
    char(*ids)[MGO_UUID_STR_SIZE] = NULL;
    if (!mgo_api__body_map(req, &arena, &body))
        goto cleanup;
    const char *app = str_field(&body, "app");
    const struct mgo_value *version_v = mgo_value_get(&body, "version");
    const char *version = str_field(&body, "version");
    const struct mgo_value *devs = mgo_value_get(&body, "devices");
    const struct mgo_value *params = mgo_value_get(&body, "parameters");
    if (!app)
        mgo_problems_add(&p, "app", "is required (an application id from the catalog)");
    if (version_v && !version)
        mgo_problems_add(&p, "version", "must be a string");
    if (!devs || devs->kind != MGO_V_ARRAY || devs->as.array.len == 0 ||
        devs->as.array.len > MGO_MAX_DEPLOY_DEVICES)
        mgo_problems_add(&p, "devices", "must be a list of 1..%u device ids",
                         MGO_MAX_DEPLOY_DEVICES);
    if (params && params->kind != MGO_V_MAP && params->kind != MGO_V_NULL)
        mgo_problems_add(&p, "parameters", "must be an object of name: value");
    for (size_t i = 0; i < body.as.map.len; i++) {
        const char *k = body.as.map.items[i].key;
        if (strcmp(k, "app") && strcmp(k, "version") && strcmp(k, "devices") &&
            strcmp(k, "parameters"))
            mgo_problems_add(&p, k, "unknown field (expected app, version, devices, parameters)");
    }
    if (p.count == 0) {
        devices = calloc(devs->as.array.len, sizeof *devices);
        ids = calloc(devs->as.array.len, sizeof *ids);
        if (!devices || !ids) {
            internal(req, MGO_ERR_NOMEM);
            goto cleanup;
        }
        for (size_t i = 0; i < devs->as.array.len; i++) {
            const struct mgo_value *d = &devs->as.array.items[i];
            if (d->kind != MGO_V_STR) {
                char f[32];
                snprintf(f, sizeof f, "devices[%zu]", i);
                mgo_problems_add(&p, f, "must be a string");
            } else {
                devices[i] = d->as.str.ptr;
            }
        }
    }
    if (p.count > 0) {
        invalid(req, "the deployment request is invalid", &p);
        goto cleanup;
    }
    struct mgo_deploy_request dr = {
        .app_id = app,
        .version = version,
        .devices = devices,
        .devices_len = devs->as.array.len,
        .answers = params,
    };
    mgo_err err = mgo_deploy__create(api->store, api->pub, &dr, ids, &p);
    if (err == MGO_ERR_INVALID) {
        invalid(req, "nothing was deployed", &p);
        goto cleanup;
    }
    if (err) {
        internal(req, err);
        goto cleanup;
    }
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    struct secrets sec;
    secrets_init(&sec);
    struct dep_ctx ctx = {api, &w, false, &sec};
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "deployments");
    mgo_jw_arr(&w);
    /* stored and published already: a store error now is a 500 the client may retry with a
     * GET of the listed devices (never a 201 with part of the list) */
    for (size_t i = 0; !err && i < dr.devices_len; i++)
        err = mgo_mgr_store_deployment_get(api->store, ids[i], dep_visit, &ctx);
    secrets_cleanup(&sec);
    mgo_jw_arr_end(&w);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 201, &w);
cleanup:
    free(devices);
    free(ids);
    mgo_arena_cleanup(&arena);
}

static void deployments_patch(struct mgo_api *api, struct mgo_api_request *req,
                              const char *const *arg)
{
    const char *id = arg[0];
    struct mgo_arena arena;
    mgo_arena_init(&arena, 16u * MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value body;
    if (!mgo_api__body_map(req, &arena, &body))
        goto cleanup;
    const struct mgo_value *version_v = mgo_value_get(&body, "version");
    const char *version = str_field(&body, "version");
    const struct mgo_value *params = mgo_value_get(&body, "parameters");
    if (version_v && !version)
        mgo_problems_add(&p, "version", "must be a string");
    if (params && params->kind != MGO_V_MAP)
        mgo_problems_add(&p, "parameters", "must be an object of name: value");
    for (size_t i = 0; i < body.as.map.len; i++) {
        const char *k = body.as.map.items[i].key;
        if (strcmp(k, "version") && strcmp(k, "parameters"))
            mgo_problems_add(&p, k, "unknown field (expected version, parameters)");
    }
    if (p.count > 0) {
        invalid(req, "the update request is invalid", &p);
        goto cleanup;
    }
    mgo_err err = mgo_deploy__update(api->store, api->pub, id, version, params, &p);
    if (err == MGO_ERR_NOT_FOUND)
        not_found(req, PROBLEM_BASE "deployment-not-found", "no such deployment");
    else if (err == MGO_ERR_CONFLICT)
        mgo_api__problem(req, 409, NULL, "Conflict", "the deployment is being removed", NULL);
    else if (err == MGO_ERR_INVALID)
        invalid(req, "nothing was changed", &p);
    else if (err)
        internal(req, err);
    else
        deployment_reply(api, req, id, 200);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void deployments_delete(struct mgo_api *api, struct mgo_api_request *req,
                               const char *const *arg)
{
    const char *id = arg[0];
    mgo_err err = mgo_deploy__remove(api->store, api->pub, id);
    if (err == MGO_ERR_NOT_FOUND)
        not_found(req, PROBLEM_BASE "deployment-not-found", "no such deployment");
    else if (err)
        internal(req, err);
    else
        deployment_reply(api, req, id, 202);
}

/* ---- status and events ----------------------------------------------------------------- */

struct status_list_ctx {
    struct mgo_jw *w;
};

static mgo_err status_list_visit(const struct mgo_mgr_status_row *row, void *c)
{
    struct mgo_jw *w = c;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "deploymentId", row->deployment_id);
    mgo_jw_kstr(w, "deviceId", row->device_id);
    mgo_jw_kstr(w, "state", row->state);
    if (row->has_journal) {
        mgo_jw_ku64(w, "boot", row->boot);
        mgo_jw_ku64(w, "seq", row->seq);
    }
    mgo_jw_ktime(w, "receivedAt", row->received_ms);
    mgo_jw_key(w, "status");
    mgo_jw_raw(w, row->doc_json);
    mgo_jw_obj_end(w);
    return MGO_OK;
}

static void status_list(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    struct mgo_jw w;
    mgo_jw_init(&w, &req->reply);
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "status");
    mgo_jw_arr(&w);
    mgo_err err =
        mgo_mgr_store_status_list(api->store, mgo_api__query(req, "device"), status_list_visit, &w);
    mgo_jw_arr_end(&w);
    mgo_jw_obj_end(&w);
    if (err)
        internal(req, err);
    else
        ok_json(req, 200, &w);
}

struct snapshot_ctx {
    struct mgo_sse_client *client;
    const char *desired;
    uint64_t manifest_version;
    struct mgo_buf *buf;
};

static mgo_err snapshot_visit(const struct mgo_mgr_status_row *row, void *c)
{
    struct snapshot_ctx *ctx = c;
    mgo_buf_reset(ctx->buf);
    struct mgo_jw w;
    mgo_jw_init(&w, ctx->buf);
    mgo_jw_obj(&w);
    mgo_events__status(&w, row, ctx->desired, ctx->manifest_version, true);
    mgo_jw_obj_end(&w);
    if (w.err == MGO_OK)
        mgo_sse__client_push(ctx->client, "status", (const char *)ctx->buf->data);
    return MGO_OK;
}

struct desired_ctx {
    uint64_t manifest_version;
    char desired[16];
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
};

static mgo_err desired_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct desired_ctx *d = c;
    snprintf(d->desired, sizeof d->desired, "%s", mgo_mgr_desired_name(row->desired));
    d->manifest_version = row->manifest_version;
    snprintf(d->device, sizeof d->device, "%s", row->device_id);
    return MGO_OK;
}

/* GET /api/v1/events[?deployment=ID&deployment=ID...]: registers a stream; for each named
 * deployment the current state (if any) is sent first, atomically with joining the hub. */
static void events_open(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    const char *ids[MGO_API_MAX_QUERY];
    size_t n = 0;
    struct mgo_problems p;
    mgo_problems_init(&p);
    for (size_t i = 0; i < req->query_len; i++) {
        if (strcmp(req->query[i].key, "deployment") != 0)
            continue;
        const char *id = req->query[i].value;
        struct desired_ctx d = {0, "", ""};
        mgo_err err = mgo_mgr_store_deployment_get(api->store, id, desired_visit, &d);
        if (err == MGO_ERR_NOT_FOUND) {
            mgo_problems_add(&p, "deployment", "no such deployment: %.64s", id);
        } else if (err) {
            internal(req, err);
            return;
        }
        ids[n++] = id;
    }
    if (p.count) {
        not_found(req, PROBLEM_BASE "deployment-not-found", p.items[0].rule);
        return;
    }
    struct mgo_sse_client *c = mgo_sse__client_new(ids, n);
    if (!c) {
        internal(req, MGO_ERR_NOMEM);
        return;
    }
    struct mgo_buf buf;
    mgo_buf_init(&buf, 8u * MGO_MAX_MESSAGE_BYTES);
    mgo_sse__client_push(c, "hello", "{\"stream\":\"margo-manager\"}");
    mgo_err err = MGO_OK;
    for (size_t i = 0; !err && i < n; i++) {
        struct desired_ctx d = {0, "", ""};
        err = mgo_mgr_store_deployment_get(api->store, ids[i], desired_visit, &d);
        struct snapshot_ctx sc = {c, d.desired, d.manifest_version, &buf};
        if (!err)
            err = mgo_mgr_store_status_get(api->store, ids[i], snapshot_visit, &sc);
        if (err == MGO_ERR_NOT_FOUND) /* no status yet: no snapshot */
            err = MGO_OK;
    }
    mgo_buf_cleanup(&buf);
    if (err) { /* a stream without its snapshot would miss a state: refuse, retryable */
        mgo_sse__client_free(api->hub, c);
        internal(req, err);
        return;
    }
    mgo_sse__hub_add(api->hub, c);
    req->sse = c;
    req->status = 200;
}

/* GET /overview: overview.c writes it (docs/api.md "Fleet overview"). */
static void overview(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_overview_params op;
    if (mgo_overview__parse(mgo_api__query(req, "window"), mgo_api__query(req, "failures"), &op,
                            &p) != MGO_OK) {
        bad_request(req, "invalid query parameter", &p);
        return;
    }
    mgo_err err = mgo_overview__write(api->store, &op, mgo_mgr_store_now_ms(), &req->reply);
    if (err) {
        internal(req, err);
        return;
    }
    req->status = 200;
    req->content_type = JSON_TYPE;
}

static void deployments_show(struct mgo_api *api, struct mgo_api_request *req,
                             const char *const *arg)
{
    deployment_reply(api, req, arg[0], 200);
}

/* ---- the southbound API's accepted-client list (docs/api.md "Accepted clients") ------ */

static void clients_list(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    mgo_southbound__clients_api(api->store, req, NULL);
}

static void clients_one(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    mgo_southbound__clients_api(api->store, req, arg[0]);
}

/* ---- rollouts and labels (api_rollout.c, docs/rollouts.md) -------------------------- */

static void rollouts(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)arg;
    mgo_api_rollout__route(api, req, NULL, NULL);
}

static void rollout_one(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    mgo_api_rollout__route(api, req, arg[0], NULL);
}

static void rollout_targets(struct mgo_api *api, struct mgo_api_request *req,
                            const char *const *arg)
{
    mgo_api_rollout__route(api, req, arg[0], "targets");
}

static void rollout_pause(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    mgo_api_rollout__route(api, req, arg[0], "pause");
}

static void rollout_resume(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    mgo_api_rollout__route(api, req, arg[0], "resume");
}

static void rollout_cancel(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    mgo_api_rollout__route(api, req, arg[0], "cancel");
}

static void rollout_rollback(struct mgo_api *api, struct mgo_api_request *req,
                             const char *const *arg)
{
    mgo_api_rollout__route(api, req, arg[0], "rollback");
}

static void device_labels(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    mgo_api_rollout__device_sub(api, req, arg[0], "labels");
}

/* ---- the API description ------------------------------------------------------------ */

/* GET /api/v1/openapi.yaml: docs/openapi.yaml as built in (openapi_doc.c, generated by
 * manager/embed_openapi.cmake). Public: it describes the API and holds no data. */
static void openapi_doc(struct mgo_api *api, struct mgo_api_request *req, const char *const *arg)
{
    (void)api;
    (void)arg;
    mgo_buf_reset(&req->reply);
    mgo_err err = mgo_buf_append(&req->reply, mgo_api__openapi, mgo_api__openapi_len);
    if (err) {
        internal(req, err);
        return;
    }
    req->status = 200;
    req->content_type = "application/yaml";
}

/* ---- routing ---------------------------------------------------------------------------- */

/* Every route of the API, one line each. docs/openapi.yaml describes exactly these
 * (tests/manager/test_openapi_routes.c compares the two): a new route needs its operation
 * there, with examples, and a replay step in tests/scripts/openapi_check.py. A path segment
 * written {name} matches any non-empty segment and is handed to the handler in order
 * (arg[0], arg[1], ...); true in the last column answers without the bearer token. */
static const struct mgo_api_route routes[] = {
    {"GET", "/api/v1/apps", apps_list, false},
    {"POST", "/api/v1/apps", apps_add, false},
    {"GET", "/api/v1/apps/{id}", apps_show, false},
    {"DELETE", "/api/v1/apps/{id}", apps_delete, false},
    {"GET", "/api/v1/devices", devices_list, false},
    {"GET", "/api/v1/devices/{id}", devices_show, false},
    {"GET", "/api/v1/devices/{id}/labels", device_labels, false},
    {"PUT", "/api/v1/devices/{id}/labels", device_labels, false},
    {"PATCH", "/api/v1/devices/{id}/labels", device_labels, false},
    {"GET", "/api/v1/deployments", deployments_list, false},
    {"POST", "/api/v1/deployments", deployments_create, false},
    {"GET", "/api/v1/deployments/{id}", deployments_show, false},
    {"PATCH", "/api/v1/deployments/{id}", deployments_patch, false},
    {"DELETE", "/api/v1/deployments/{id}", deployments_delete, false},
    {"GET", "/api/v1/status", status_list, false},
    {"GET", "/api/v1/overview", overview, false},
    {"GET", "/api/v1/rollouts", rollouts, false},
    {"POST", "/api/v1/rollouts", rollouts, false},
    {"GET", "/api/v1/rollouts/{id}", rollout_one, false},
    {"GET", "/api/v1/rollouts/{id}/targets", rollout_targets, false},
    {"POST", "/api/v1/rollouts/{id}/pause", rollout_pause, false},
    {"POST", "/api/v1/rollouts/{id}/resume", rollout_resume, false},
    {"POST", "/api/v1/rollouts/{id}/cancel", rollout_cancel, false},
    {"POST", "/api/v1/rollouts/{id}/rollback", rollout_rollback, false},
    {"GET", "/api/v1/clients", clients_list, false},
    {"GET", "/api/v1/clients/{id}", clients_one, false},
    {"PUT", "/api/v1/clients/{id}", clients_one, false},
    {"DELETE", "/api/v1/clients/{id}", clients_one, false},
    {"GET", "/api/v1/events", events_open, false},
    {"GET", "/api/v1/openapi.yaml", openapi_doc, true},
};

const struct mgo_api_route *mgo_api__routes(size_t *len)
{
    *len = sizeof routes / sizeof routes[0];
    return routes;
}

/* Whether path matches the template tmpl. On a match buf (buf_size bytes) holds path cut at
 * every '/' and arg[0..*arg_len) point to the values of the {name} segments in it. One
 * trailing '/' on path is ignored. */
static bool path_match(const char *tmpl, const char *path, char *buf, size_t buf_size,
                       const char **arg, size_t *arg_len)
{
    size_t n = strlen(path);
    if (n > 1 && path[n - 1] == '/')
        n--;
    if (n >= buf_size)
        return false;
    memcpy(buf, path, n);
    buf[n] = '\0';
    *arg_len = 0;
    const char *t = tmpl;
    const char *p = buf;
    while (*t != '\0' && *p != '\0') {
        if (*t != '/' || *p != '/')
            return false;
        t++;
        p++;
        size_t tn = strcspn(t, "/");
        size_t pn = strcspn(p, "/");
        if (t[0] == '{') {
            if (pn == 0 || *arg_len >= MGO_API_MAX_PATH_ARGS)
                return false;
            arg[(*arg_len)++] = p;
        } else if (tn != pn || strncmp(t, p, tn) != 0) {
            return false;
        }
        t += tn;
        p += pn;
    }
    if (*t != '\0' || *p != '\0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '/')
            buf[i] = '\0';
    }
    return true;
}

const char *mgo_api__template(const char *path)
{
    char buf[sizeof((struct mgo_api_request *)0)->path];
    const char *arg[MGO_API_MAX_PATH_ARGS];
    size_t arg_len;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (path_match(routes[i].path, path, buf, sizeof buf, arg, &arg_len))
            return routes[i].path;
    }
    return NULL;
}

bool mgo_api__public(const char *method, const char *path)
{
    char buf[sizeof((struct mgo_api_request *)0)->path];
    const char *arg[MGO_API_MAX_PATH_ARGS];
    size_t arg_len;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].method, method) == 0 &&
            path_match(routes[i].path, path, buf, sizeof buf, arg, &arg_len))
            return routes[i].no_token;
    }
    return false;
}

static void method_not_allowed(struct mgo_api_request *req)
{
    mgo_api__problem(req, 405, NULL, "Method Not Allowed",
                     "this method is not supported on this resource", NULL);
}

void mgo_api__handle(struct mgo_api *api, struct mgo_api_request *req)
{
    static const char root[] = "/api/v1/";
    if (req->query_overflow) {
        bad_request(req, "too many or too long query parameters (or path)", NULL);
        return;
    }
    if (strncmp(req->path, root, sizeof root - 1) != 0) {
        not_found(req, NULL, "unknown resource; the API lives under /api/v1/");
        return;
    }
    MGO_LOGD(TAG, "%s %s", req->method, req->path);
    char buf[sizeof req->path];
    const char *arg[MGO_API_MAX_PATH_ARGS];
    size_t arg_len;
    bool path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (!path_match(routes[i].path, req->path, buf, sizeof buf, arg, &arg_len))
            continue;
        if (strcmp(routes[i].method, req->method) == 0) {
            routes[i].handler(api, req, arg);
            return;
        }
        path_known = true;
    }
    if (path_known)
        method_not_allowed(req);
    else
        not_found(req, NULL, "unknown resource");
}
