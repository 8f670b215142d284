/* codec_deployment.c - ApplicationDeployment (one app on one device). */
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

mgo_err mgo_app_deployment_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                                      struct mgo_app_deployment *out, struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "an ApplicationDeployment must be a map");
        return MGO_ERR_INVALID;
    }
    out->api_version = mgo_codec__str(&rd, root, "apiVersion", false, 256);
    static const char want_kind[] = "ApplicationDeployment";
    size_t kind_len;
    const char *kind = mgo_codec__str_len(&rd, root, "kind", false, 64, &kind_len);
    if (kind != NULL &&
        (kind_len != sizeof want_kind - 1 || memcmp(kind, want_kind, sizeof want_kind - 1) != 0))
        mgo_codec__fail(&rd, "kind", "must be \"ApplicationDeployment\", got \"%.64s\"", kind);
    const struct mgo_value *meta = mgo_codec__map(&rd, root, "metadata", true);
    const struct mgo_value *spec = mgo_codec__map(&rd, root, "spec", true);

    const char *top_id = mgo_codec__str(&rd, root, "id", false, 128);
    const char *ann_id = NULL, *ann_app = NULL;
    if (meta != NULL) {
        size_t saved = mgo_codec__enter(&rd, "metadata");
        const struct mgo_value *ann = mgo_codec__map(&rd, meta, "annotations", false);
        if (ann != NULL) {
            size_t s2 = mgo_codec__enter(&rd, "annotations");
            ann_id = mgo_codec__str(&rd, ann, "id", false, 128);
            ann_app = mgo_codec__str(&rd, ann, "applicationId", false, 1024);
            /* margo-mqtt's own annotation (VER-4: Margo receivers ignore it) */
            out->application_version =
                mgo_codec__str(&rd, ann, "applicationVersion", false, MGO_MAX_APP_VERSION_LEN);
            if (out->application_version != NULL && !mgo_is_app_version(out->application_version)) {
                mgo_codec__fail(&rd, "applicationVersion",
                                "must be 1..%u bytes without control characters",
                                MGO_MAX_APP_VERSION_LEN);
                out->application_version = NULL;
            }
            mgo_codec__leave(&rd, s2);
        }
        out->name = mgo_codec__str(&rd, meta, "name", true, MGO_MAX_NAME_LEN);
        if (out->name != NULL && out->name[0] == '\0')
            mgo_codec__fail(&rd, "name", "must not be empty (1..%u bytes)", MGO_MAX_NAME_LEN);
        out->namespace_ = mgo_codec__str(&rd, meta, "namespace", true, MGO_MAX_NAME_LEN);
        out->device_id = mgo_codec__str(&rd, meta, "deviceId", false, 1024);
        if (out->device_id != NULL && !mgo_codec__is_device_path(out->device_id, true))
            mgo_codec__fail(&rd, "deviceId",
                            "must match ^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*(/\\*)?$");
        out->labels = mgo_codec__map(&rd, meta, "labels", false);
        for (size_t i = 0; out->labels != NULL && i < out->labels->as.map.len; i++) {
            if (out->labels->as.map.items[i].value.kind != MGO_V_STR)
                mgo_codec__fail(&rd, "labels", "label \"%s\" must be a string",
                                out->labels->as.map.items[i].key);
        }
        mgo_codec__leave(&rd, saved);
    }
    /* deployment id: top-level id (data-model drafts, rc.3) or metadata.annotations.id (LinkML) */
    if (top_id != NULL && ann_id != NULL && strcmp(top_id, ann_id) != 0)
        mgo_codec__fail(&rd, "metadata.annotations.id", "differs from the top-level id");
    out->id = top_id ? top_id : ann_id;
    if (out->id == NULL && meta != NULL)
        mgo_codec__fail(&rd, "id", "is required (top-level id or metadata.annotations.id)");
    else if (out->id != NULL && !mgo_is_uuid(out->id))
        mgo_codec__fail(&rd, top_id ? "id" : "metadata.annotations.id",
                        "\"%.64s\" must be a UUID (8-4-4-4-12 hex digits)", out->id);

    const char *spec_app = NULL;
    if (spec != NULL) {
        size_t saved = mgo_codec__enter(&rd, "spec");
        spec_app = mgo_codec__str(&rd, spec, "applicationId", false, 1024);
        const struct mgo_value *prof = mgo_codec__map(&rd, spec, "deploymentProfile", true);
        if (prof != NULL) {
            size_t s2 = mgo_codec__enter(&rd, "deploymentProfile");
            mgo_codec__read_profile(&rd, prof, false, &out->profile);
            mgo_codec__leave(&rd, s2);
        }
        const struct mgo_value *params = mgo_codec__map(&rd, spec, "parameters", false);
        size_t s2 = mgo_codec__enter(&rd, "parameters");
        mgo_codec__read_parameters(&rd, params, &out->profile, 1, &out->parameters,
                                   &out->parameters_len);
        mgo_codec__leave(&rd, s2);
        mgo_codec__leave(&rd, saved);
    }
    if (ann_app != NULL && spec_app != NULL && strcmp(ann_app, spec_app) != 0)
        mgo_codec__fail(&rd, "spec.applicationId",
                        "differs from metadata.annotations.applicationId");
    out->application_id = ann_app ? ann_app : spec_app;
    if (out->application_id == NULL && meta != NULL && spec != NULL)
        mgo_codec__fail(&rd, "metadata.annotations.applicationId", "is required");
    else if (out->application_id != NULL && !mgo_is_app_id(out->application_id))
        mgo_codec__fail(&rd, ann_app ? "metadata.annotations.applicationId" : "spec.applicationId",
                        "must match ^[-a-z0-9]{1,200}$ (lowercase letters, digits, dashes; at most "
                        "200), got %zu characters",
                        strlen(out->application_id));
    out->ext = mgo_codec__map(&rd, root, MGO_EXT_KEY, false);
    return mgo_codec__result(&rd);
}

mgo_err mgo_app_deployment_to_value(const struct mgo_app_deployment *in, struct mgo_arena *arena,
                                    struct mgo_value *out)
{
    mgo_err err;
    struct mgo_map_builder ann, meta, spec, root;
    struct mgo_value ann_v, meta_v, spec_v, prof_v, params_v;
    mgo_map_builder_init(&ann, arena);
    mgo_map_put_str(&ann, "applicationId", in->application_id);
    mgo_map_put_str_opt(&ann, "applicationVersion", in->application_version);
    mgo_map_put_str(&ann, "id", in->id);
    if ((err = mgo_map_builder_finish(&ann, &ann_v)) != MGO_OK)
        return err;
    mgo_map_builder_init(&meta, arena);
    mgo_map_put(&meta, "annotations", &ann_v);
    mgo_map_put_str(&meta, "name", in->name);
    mgo_map_put_str(&meta, "namespace", in->namespace_);
    mgo_map_put_str_opt(&meta, "deviceId", in->device_id);
    if (in->labels != NULL)
        mgo_map_put(&meta, "labels", in->labels);
    if ((err = mgo_map_builder_finish(&meta, &meta_v)) != MGO_OK)
        return err;
    if ((err = mgo_codec__profile_to_value(&in->profile, false, arena, &prof_v)) != MGO_OK)
        return err;
    if ((err = mgo_codec__parameters_to_value(in->parameters, in->parameters_len, arena,
                                              &params_v)) != MGO_OK)
        return err;
    mgo_map_builder_init(&spec, arena);
    mgo_map_put_str(&spec, "applicationId", in->application_id);
    mgo_map_put(&spec, "deploymentProfile", &prof_v);
    mgo_map_put(&spec, "parameters", &params_v);
    if ((err = mgo_map_builder_finish(&spec, &spec_v)) != MGO_OK)
        return err;
    mgo_map_builder_init(&root, arena);
    mgo_map_put_str(&root, "apiVersion",
                    in->api_version ? in->api_version : "application.margo.org/v1alpha1");
    mgo_map_put_str(&root, "kind", "ApplicationDeployment");
    mgo_map_put_str(&root, "id", in->id);
    mgo_map_put(&root, "metadata", &meta_v);
    mgo_map_put(&root, "spec", &spec_v);
    if (in->ext != NULL)
        mgo_map_put(&root, MGO_EXT_KEY, in->ext);
    return mgo_map_builder_finish(&root, out);
}

MGO_CODEC_GLUE(app_deployment, mgo_app_deployment)
