/* codec_status.c - DeploymentStatus (agent -> all). */
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

static const char *const state_names[MGO_STATE_COUNT] = {
    "pending", "installing", "installed", "failed", "removing", "removed",
};

/* x-margo-mqtt-extensions.app (optional): {id, version?, name}, the rules of the deployment
 * document the agent copied them from. false when absent or broken. */
static bool read_app(struct mgo_rd *rd, const struct mgo_value *ext, struct mgo_status_app *out)
{
    const struct mgo_value *app = mgo_codec__map(rd, ext, "app", false);
    if (app == NULL)
        return false;
    size_t saved = mgo_codec__enter(rd, "app");
    bool ok = true;
    out->id = mgo_codec__str(rd, app, "id", true, 1024);
    if (out->id != NULL && !mgo_is_app_id(out->id)) {
        mgo_codec__fail(rd, "id",
                        "must match ^[-a-z0-9]{1,200}$ (lowercase letters, digits, dashes; at "
                        "most 200), got %zu characters",
                        strlen(out->id));
        out->id = NULL;
    }
    out->version = mgo_codec__str(rd, app, "version", false, MGO_MAX_APP_VERSION_LEN);
    if (out->version != NULL && !mgo_is_app_version(out->version)) {
        mgo_codec__fail(rd, "version", "must be 1..%u bytes without control characters",
                        MGO_MAX_APP_VERSION_LEN);
        ok = false;
    }
    out->name = mgo_codec__str(rd, app, "name", true, MGO_MAX_NAME_LEN);
    if (out->name != NULL && out->name[0] == '\0') {
        mgo_codec__fail(rd, "name", "must not be empty");
        out->name = NULL;
    }
    mgo_codec__leave(rd, saved);
    return ok && out->id != NULL && out->name != NULL;
}

mgo_err mgo_deployment_status_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                                         struct mgo_deployment_status *out,
                                         struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "a DeploymentStatus must be a map");
        return MGO_ERR_INVALID;
    }
    out->api_version = mgo_codec__str(&rd, root, "apiVersion", false, 256);
    const char *kind = mgo_codec__str(&rd, root, "kind", false, 64);
    if (kind != NULL && strcmp(kind, "DeploymentStatusManifest") != 0)
        mgo_codec__fail(&rd, "kind", "must be \"DeploymentStatusManifest\", got \"%.64s\"", kind);
    out->deployment_id = mgo_codec__str(&rd, root, "deploymentId", true, 128);
    if (out->deployment_id != NULL && !mgo_is_uuid(out->deployment_id))
        mgo_codec__fail(&rd, "deploymentId", "\"%.64s\" must be a UUID", out->deployment_id);
    out->device_id = mgo_codec__str(&rd, root, "deviceId", false, 1024);
    if (out->device_id != NULL && !mgo_codec__is_device_path(out->device_id, false))
        mgo_codec__fail(&rd, "deviceId", "must match ^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$");
    out->has_adopted_manifest_version =
        mgo_codec__uint(&rd, root, "adoptedManifestVersion", false, &out->adopted_manifest_version);

    const struct mgo_value *status = mgo_codec__map(&rd, root, "status", true);
    if (status != NULL) {
        size_t saved = mgo_codec__enter(&rd, "status");
        int s = mgo_codec__enum(&rd, status, "state", true, state_names, MGO_STATE_COUNT);
        out->state = s < 0 ? MGO_STATE_FAILED : (enum mgo_state)s;
        mgo_codec__read_error(&rd, status, "error", &out->has_error, &out->error);
        mgo_codec__leave(&rd, saved);
    }
    const struct mgo_value *comps =
        mgo_codec__array(&rd, root, "components", true, 0, MGO_MAX_COMPONENTS);
    if (comps != NULL) {
        out->components = mgo_codec__alloc(&rd, comps->as.array.len * sizeof *out->components);
        for (size_t i = 0; out->components != NULL && i < comps->as.array.len; i++) {
            size_t saved = mgo_codec__enter(&rd, "components");
            mgo_codec__enter_index(&rd, i);
            const struct mgo_value *c = &comps->as.array.items[i];
            struct mgo_component_status *cs = &out->components[i];
            cs->name = mgo_codec__str(&rd, c, "name", true, MGO_MAX_NAME_LEN);
            int s = mgo_codec__enum(&rd, c, "state", true, state_names, MGO_STATE_COUNT);
            cs->state = s < 0 ? MGO_STATE_FAILED : (enum mgo_state)s;
            mgo_codec__read_error(&rd, c, "error", &cs->has_error, &cs->error);
            mgo_codec__leave(&rd, saved);
        }
        if (out->components != NULL)
            out->components_len = comps->as.array.len;
    }
    const struct mgo_value *ext = mgo_codec__map(&rd, root, MGO_EXT_KEY, false);
    if (ext != NULL) {
        size_t saved = mgo_codec__enter(&rd, MGO_EXT_KEY);
        bool b = mgo_codec__uint(&rd, ext, "boot", true, &out->boot);
        bool s = mgo_codec__uint(&rd, ext, "seq", true, &out->seq);
        out->has_journal = b && s;
        out->has_app = read_app(&rd, ext, &out->app);
        mgo_codec__leave(&rd, saved);
    }
    return mgo_codec__result(&rd);
}

mgo_err mgo_deployment_status_to_value(const struct mgo_deployment_status *in,
                                       struct mgo_arena *arena, struct mgo_value *out)
{
    mgo_err err;
    struct mgo_map_builder mb, st;
    struct mgo_value st_v, comps, errv;
    mgo_map_builder_init(&st, arena);
    mgo_map_put_str(&st, "state", mgo_state_name(in->state));
    if (in->has_error) {
        if ((err = mgo_codec__error_to_value(&in->error, arena, &errv)) != MGO_OK)
            return err;
        mgo_map_put(&st, "error", &errv);
    }
    if ((err = mgo_map_builder_finish(&st, &st_v)) != MGO_OK)
        return err;
    if ((err = mgo_value_array_new(arena, in->components_len, &comps)) != MGO_OK)
        return err;
    for (size_t i = 0; i < in->components_len; i++) {
        const struct mgo_component_status *c = &in->components[i];
        struct mgo_map_builder cb;
        mgo_map_builder_init(&cb, arena);
        mgo_map_put_str(&cb, "name", c->name);
        mgo_map_put_str(&cb, "state", mgo_state_name(c->state));
        if (c->has_error) {
            if ((err = mgo_codec__error_to_value(&c->error, arena, &errv)) != MGO_OK)
                return err;
            mgo_map_put(&cb, "error", &errv);
        }
        if ((err = mgo_map_builder_finish(&cb, &comps.as.array.items[i])) != MGO_OK)
            return err;
    }
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "apiVersion",
                    in->api_version ? in->api_version : "deployment.margo.org/v1alpha1");
    mgo_map_put_str(&mb, "kind", "DeploymentStatusManifest");
    mgo_map_put_str(&mb, "deploymentId", in->deployment_id);
    mgo_map_put_str_opt(&mb, "deviceId", in->device_id);
    if (in->has_adopted_manifest_version)
        mgo_map_put_uint(&mb, "adoptedManifestVersion", in->adopted_manifest_version);
    mgo_map_put(&mb, "status", &st_v);
    mgo_map_put(&mb, "components", &comps);
    if (in->has_app && !in->has_journal)
        return MGO_ERR_INVALID; /* the extension map would lack boot and seq */
    if (in->has_journal) {
        struct mgo_map_builder xb;
        struct mgo_value xv;
        mgo_map_builder_init(&xb, arena);
        if (in->has_app) {
            struct mgo_map_builder ab;
            struct mgo_value av;
            mgo_map_builder_init(&ab, arena);
            mgo_map_put_str(&ab, "id", in->app.id);
            mgo_map_put_str_opt(&ab, "version", in->app.version);
            mgo_map_put_str(&ab, "name", in->app.name);
            if ((err = mgo_map_builder_finish(&ab, &av)) != MGO_OK)
                return err;
            mgo_map_put(&xb, "app", &av);
        }
        mgo_map_put_uint(&xb, "boot", in->boot);
        mgo_map_put_uint(&xb, "seq", in->seq);
        if ((err = mgo_map_builder_finish(&xb, &xv)) != MGO_OK)
            return err;
        mgo_map_put(&mb, MGO_EXT_KEY, &xv);
    }
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(deployment_status, mgo_deployment_status)
