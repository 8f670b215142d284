/* deploy.c - deploy, update/reconfigure and remove. Each operation validates everything
 * first (one problem per bad field), then stores every change in ONE transaction together
 * with the devices' new manifestVersions, and only then publishes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy.h"
#include "lookup.h"
#include "mgr_internal.h"
#include "mgo/log.h"
#include "mgo/match.h"
#include "mgo/params.h"

#define TAG "deploy"

/* The stored form of one built deployment. */
struct built {
    char id[MGO_UUID_STR_SIZE];
    const char *device;
    const char *profile_type;
    struct mgo_buf doc;
    char digest[MGO_DIGEST_STR_SIZE];
};

static mgo_err build_doc(const struct mgo_publisher *pub, const struct mgo_app_description *app,
                         const struct mgo_profile *profile, const struct mgo_value *resolved,
                         const char *id, const char *device, struct mgo_arena *arena,
                         struct built *out)
{
    struct mgo_app_deployment d;
    struct mgo_value tree;
    mgo_err err = mgo_params_build_deployment(app, profile, resolved, id, device, arena, &d);
    if (!err)
        err = mgo_app_deployment_to_value(&d, arena, &tree);
    /* the digest covers the tree without its signature, so signing leaves it unchanged */
    if (!err)
        err = mgo_publish__encode_doc(pub, &tree, arena, &out->doc);
    if (!err)
        err = mgo_doc_digest(&tree, out->digest);
    if (!err && out->doc.len > MGO_MAX_MESSAGE_BYTES)
        err = MGO_ERR_LIMIT;
    out->profile_type = mgo_profile_type_name(profile->type);
    return err;
}

static mgo_err params_json(const struct mgo_value *resolved, struct mgo_buf *out)
{
    return mgo_value_to_json(resolved, false, out);
}

struct has_app_ctx {
    const char *app_id;
    char found[MGO_UUID_STR_SIZE];
};

static mgo_err has_app_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct has_app_ctx *ctx = c;
    if (row->desired == MGO_MGR_DESIRED_PRESENT && strcmp(row->app_id, ctx->app_id) == 0)
        snprintf(ctx->found, sizeof ctx->found, "%s", row->id);
    return MGO_OK;
}

static mgo_err create(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                      const struct mgo_deploy_request *req, char (*ids_out)[MGO_UUID_STR_SIZE],
                      struct mgo_problems *problems, bool publish)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 64u * 1024u * 1024u);
    struct built *built = NULL;
    struct mgo_buf pjson;
    mgo_buf_init(&pjson, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = MGO_OK;
    size_t before = mgo_problems_total(problems);

    struct mgo_app_description app;
    struct mgo_value app_tree;
    err = mgo_lookup__app(store, req->app_id, req->version, &arena, &app, &app_tree);
    if (err == MGO_ERR_NOT_FOUND) {
        mgo_problems_add(problems, req->version ? "version" : "app",
                         "application %s%s%s is not in the catalog", req->app_id,
                         req->version ? " version " : "", req->version ? req->version : "");
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    if (err)
        goto cleanup;
    if (req->devices_len == 0 || req->devices_len > MGO_MAX_DEPLOY_DEVICES) {
        mgo_problems_add(problems, "devices", "must list 1..%u device ids", MGO_MAX_DEPLOY_DEVICES);
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    struct mgo_value resolved;
    MGO_IGNORE(mgo_params_resolve(&app, req->answers, NULL, &arena, &resolved, problems));

    const struct mgo_profile **profiles =
        mgo_arena_alloc(&arena, req->devices_len * sizeof *profiles);
    built = calloc(req->devices_len, sizeof *built);
    if (!profiles || !built) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    for (size_t i = 0; i < req->devices_len; i++) {
        const char *dev = req->devices[i];
        char field[32];
        snprintf(field, sizeof field, "devices[%zu]", i);
        mgo_buf_init(&built[i].doc, MGO_MAX_MESSAGE_BYTES * 2);
        built[i].device = dev;
        if (mgo_topic_check_device_id(dev, strlen(dev)) != MGO_OK) {
            mgo_problems_add(problems, field, "\"%.64s\" is not a valid device id", dev);
            continue;
        }
        if (mgo_mgr_store_is_role(store, dev)) {
            mgo_problems_add(problems, field,
                             "%s is a role identity (manager or monitor), "
                             "never a device (protocol.md 2.3)",
                             dev);
            continue;
        }
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup = dup || strcmp(req->devices[j], dev) == 0;
        if (dup) {
            mgo_problems_add(problems, field, "device %s is listed twice", dev);
            continue;
        }
        struct mgo_capabilities caps;
        struct mgo_value caps_tree;
        mgo_err e = mgo_lookup__caps(store, dev, &arena, &caps, &caps_tree);
        if (e && e != MGO_ERR_NOT_FOUND && e != MGO_ERR_INVALID && e != MGO_ERR_PARSE) {
            err = e; /* the store failed: not the request's fault */
            goto cleanup;
        }
        if (e) {
            mgo_problems_add(problems, field, "device %s is unknown (no capabilities received)",
                             dev);
            continue;
        }
        char why[MGO_MATCH_REASON_SIZE];
        profiles[i] = mgo_match_app(&app, &caps, why, sizeof why);
        if (!profiles[i]) {
            mgo_problems_add(problems, field, "device %s is not compatible: %s", dev, why);
            continue;
        }
        struct has_app_ctx h = {.app_id = app.id};
        err = mgo_mgr_store_deployment_list(store, dev, app.id, false, has_app_visit, &h);
        if (err)
            goto cleanup;
        if (h.found[0]) {
            mgo_problems_add(problems, field,
                             "device %s already runs %s (deployment %s); update that one", dev,
                             app.id, h.found);
            continue;
        }
    }
    if (mgo_problems_total(problems) != before) {
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    err = params_json(&resolved, &pjson);
    for (size_t i = 0; !err && i < req->devices_len; i++) {
        err = mgo_params_new_uuid(built[i].id);
        if (!err)
            err = build_doc(pub, &app, profiles[i], &resolved, built[i].id, req->devices[i], &arena,
                            &built[i]);
    }
    if (err) {
        MGO_LOGE(TAG, "cannot build the deployment documents: %s", mgo_strerror(err));
        goto cleanup;
    }

    err = mgo_mgr_store_begin(store);
    if (err)
        goto cleanup;
    for (size_t i = 0; i < req->devices_len; i++) {
        uint64_t version = 0;
        err = mgo_mgr_store_manifest_bump(store, req->devices[i], &version);
        struct mgo_mgr_deployment_row row = {
            .id = built[i].id,
            .device_id = req->devices[i],
            .app_id = app.id,
            .app_version = app.version,
            .profile_type = built[i].profile_type,
            .parameters_json = (const char *)pjson.data,
            .doc = built[i].doc.data,
            .doc_len = built[i].doc.len,
            .digest = built[i].digest,
            .desired = MGO_MGR_DESIRED_PRESENT,
            .manifest_version = version,
        };
        if (!err)
            err = mgo_mgr_store_deployment_put(store, &row);
        if (err)
            break;
    }
    if (err) {
        mgo_mgr_store_rollback(store);
        goto cleanup;
    }
    err = mgo_mgr_store_commit(store);
    if (err)
        goto cleanup;
    for (size_t i = 0; i < req->devices_len; i++) {
        snprintf(ids_out[i], MGO_UUID_STR_SIZE, "%s", built[i].id);
        MGO_LOGI(TAG, "deployment %s: %s %s on %s (%s)", built[i].id, app.id, app.version,
                 req->devices[i], built[i].profile_type);
        const char *changed[1] = {built[i].id};
        /* stored: a failed publish is logged and left to the after-connect sweep */
        if (publish)
            MGO_IGNORE(mgo_publish__device(pub, req->devices[i], changed, 1));
    }
cleanup:
    if (built) {
        for (size_t i = 0; i < req->devices_len; i++)
            mgo_buf_cleanup(&built[i].doc);
        free(built);
    }
    mgo_buf_cleanup(&pjson);
    mgo_arena_cleanup(&arena);
    return err;
}

mgo_err mgo_deploy__create(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                           const struct mgo_deploy_request *req, char (*ids_out)[MGO_UUID_STR_SIZE],
                           struct mgo_problems *problems)
{
    return create(store, pub, req, ids_out, problems, true);
}

mgo_err mgo_deploy__create_quiet(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                                 const struct mgo_deploy_request *req,
                                 char (*ids_out)[MGO_UUID_STR_SIZE], struct mgo_problems *problems)
{
    return create(store, pub, req, ids_out, problems, false);
}

struct dep_copy {
    bool found;
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char app_id[MGO_MAX_APP_ID_LEN + 1];
    char app_version[129];
    char digest[MGO_DIGEST_STR_SIZE];
    char *params; /* malloc'd */
    enum mgo_mgr_desired desired;
};

static mgo_err copy_dep(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct dep_copy *d = c;
    d->found = true;
    snprintf(d->device, sizeof d->device, "%s", row->device_id);
    snprintf(d->app_id, sizeof d->app_id, "%s", row->app_id);
    snprintf(d->app_version, sizeof d->app_version, "%s", row->app_version);
    snprintf(d->digest, sizeof d->digest, "%s", row->digest);
    d->params = strdup(row->parameters_json ? row->parameters_json : "{}");
    d->desired = row->desired;
    return d->params ? MGO_OK : MGO_ERR_NOMEM;
}

static mgo_err update(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                      const char *deployment_id, const char *version,
                      const struct mgo_value *answers, struct mgo_problems *problems, bool publish)
{
    struct dep_copy old = {0};
    mgo_err err = mgo_mgr_store_deployment_get(store, deployment_id, copy_dep, &old);
    if (err)
        return err;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 64u * 1024u * 1024u);
    struct built b = {0};
    mgo_buf_init(&b.doc, MGO_MAX_MESSAGE_BYTES * 2);
    struct mgo_buf pjson;
    mgo_buf_init(&pjson, MGO_MAX_MESSAGE_BYTES);
    if (!old.params) {
        err = MGO_ERR_NOMEM;
        goto cleanup;
    }
    if (mgo_mgr_store_is_role(store, old.device)) {
        /* stored by a version that took roles as devices (protocol.md 2.3) */
        mgo_problems_add(problems, "device",
                         "%s is a role identity (manager or monitor), "
                         "never a device",
                         old.device);
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    if (old.desired != MGO_MGR_DESIRED_PRESENT) {
        err = MGO_ERR_CONFLICT;
        goto cleanup;
    }
    struct mgo_app_description app;
    struct mgo_value app_tree;
    err = mgo_lookup__app(store, old.app_id, version ? version : old.app_version, &arena, &app,
                          &app_tree);
    if (err == MGO_ERR_NOT_FOUND) {
        mgo_problems_add(problems, "version", "application %s version %s is not in the catalog",
                         old.app_id, version ? version : old.app_version);
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    if (err)
        goto cleanup;
    struct mgo_value previous;
    struct mgo_problems ignore;
    mgo_problems_init(&ignore);
    err = mgo_value_from_yaml(old.params, strlen(old.params), &arena, &previous, &ignore);
    if (err)
        goto cleanup;
    struct mgo_value resolved;
    err = mgo_params_resolve(&app, answers, &previous, &arena, &resolved, problems);
    struct mgo_capabilities caps;
    struct mgo_value caps_tree;
    const struct mgo_profile *profile = NULL;
    mgo_err e = mgo_lookup__caps(store, old.device, &arena, &caps, &caps_tree);
    if (e && e != MGO_ERR_NOT_FOUND && e != MGO_ERR_INVALID && e != MGO_ERR_PARSE) {
        err = e; /* the store failed: not the request's fault */
        goto cleanup;
    }
    if (e) {
        mgo_problems_add(problems, "device", "device %s has no capabilities on record", old.device);
    } else {
        char why[MGO_MATCH_REASON_SIZE];
        profile = mgo_match_app(&app, &caps, why, sizeof why);
        if (!profile)
            mgo_problems_add(problems, "device", "device %s is not compatible with %s %s: %s",
                             old.device, app.id, app.version, why);
    }
    if (err || !profile) {
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    err = build_doc(pub, &app, profile, &resolved, deployment_id, old.device, &arena, &b);
    if (!err)
        err = params_json(&resolved, &pjson);
    if (err)
        goto cleanup;
    if (strcmp(b.digest, old.digest) == 0) {
        MGO_LOGI(TAG, "deployment %s: nothing changed", deployment_id);
        goto cleanup;
    }
    err = mgo_mgr_store_begin(store);
    if (err)
        goto cleanup;
    uint64_t mv = 0;
    err = mgo_mgr_store_manifest_bump(store, old.device, &mv);
    struct mgo_mgr_deployment_row row = {
        .id = deployment_id,
        .device_id = old.device,
        .app_id = app.id,
        .app_version = app.version,
        .profile_type = b.profile_type,
        .parameters_json = (const char *)pjson.data,
        .doc = b.doc.data,
        .doc_len = b.doc.len,
        .digest = b.digest,
        .desired = MGO_MGR_DESIRED_PRESENT,
        .manifest_version = mv,
    };
    if (!err)
        err = mgo_mgr_store_deployment_put(store, &row);
    if (err) {
        mgo_mgr_store_rollback(store);
        goto cleanup;
    }
    err = mgo_mgr_store_commit(store);
    if (err)
        goto cleanup;
    MGO_LOGI(TAG, "deployment %s: updated to %s %s (manifest %llu)", deployment_id, app.id,
             app.version, (unsigned long long)mv);
    const char *changed[1] = {deployment_id};
    if (publish)
        MGO_IGNORE(mgo_publish__device(pub, old.device, changed, 1)); /* else the sweep's */
cleanup:
    free(old.params);
    mgo_buf_cleanup(&b.doc);
    mgo_buf_cleanup(&pjson);
    mgo_arena_cleanup(&arena);
    return err;
}

mgo_err mgo_deploy__update(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                           const char *deployment_id, const char *version,
                           const struct mgo_value *answers, struct mgo_problems *problems)
{
    return update(store, pub, deployment_id, version, answers, problems, true);
}

mgo_err mgo_deploy__update_quiet(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                                 const char *deployment_id, const char *version,
                                 const struct mgo_value *answers, struct mgo_problems *problems)
{
    return update(store, pub, deployment_id, version, answers, problems, false);
}

static mgo_err remove_dep(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                          const char *deployment_id, bool publish)
{
    struct dep_copy old = {0};
    mgo_err err = mgo_mgr_store_deployment_get(store, deployment_id, copy_dep, &old);
    if (err)
        return err;
    free(old.params);
    if (old.desired != MGO_MGR_DESIRED_PRESENT)
        return MGO_OK; /* already on its way out */
    if (mgo_mgr_store_is_role(store, old.device)) {
        /* stored by a version that took roles as devices (protocol.md 2.3): nothing is
         * published for a role, so it is removed here and now (its retained documents on the
         * broker are the operator's to clear, docs/security.md) */
        MGO_LOGW(TAG,
                 "deployment %s: %s is a role identity, never a device; marked removed "
                 "without publishing",
                 deployment_id, old.device);
        return mgo_mgr_store_deployment_set_desired(store, deployment_id, MGO_MGR_DESIRED_REMOVED);
    }
    err = mgo_mgr_store_begin(store);
    if (err)
        return err;
    uint64_t mv = 0;
    err = mgo_mgr_store_deployment_set_desired(store, deployment_id, MGO_MGR_DESIRED_REMOVING);
    if (!err)
        err = mgo_mgr_store_manifest_bump(store, old.device, &mv);
    if (err) {
        mgo_mgr_store_rollback(store);
        return err;
    }
    err = mgo_mgr_store_commit(store);
    if (err)
        return err;
    MGO_LOGI(TAG, "deployment %s: removing from %s (manifest %llu)", deployment_id, old.device,
             (unsigned long long)mv);
    if (publish)
        mgo_deploy__publish_removed(pub, old.device, deployment_id);
    return MGO_OK;
}

void mgo_deploy__publish_removed(struct mgo_publisher *pub, const char *device_id,
                                 const char *deployment_id)
{
    static const char *const none[1] = {""};
    MGO_IGNORE(mgo_publish__device(pub, device_id, none, 0)); /* else the sweep's */
    MGO_IGNORE(mgo_publish__clear_unreported(pub, device_id, deployment_id));
}

mgo_err mgo_deploy__remove(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                           const char *deployment_id)
{
    return remove_dep(store, pub, deployment_id, true);
}

mgo_err mgo_deploy__remove_quiet(struct mgo_mgr_store *store, struct mgo_publisher *pub,
                                 const char *deployment_id)
{
    return remove_dep(store, pub, deployment_id, false);
}
