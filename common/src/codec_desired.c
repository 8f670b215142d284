/* codec_desired.c - the desired-state manifest of one device. */
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

#define BUNDLE_MEDIA_TYPE "application/vnd.margo.bundle.v1+tar+gzip"

static bool is_url_path(const char *s)
{
    /* ^/[a-zA-Z0-9-._~:/?#\[\]@!$&'()*+,;=]+$ */
    if (s[0] != '/' || s[1] == '\0')
        return false;
    for (const char *p = s + 1; *p; p++) {
        char c = *p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (strchr("-._~:/?#[]@!$&'()*+,;=", c) == NULL)
            return false;
    }
    return true;
}

static const char *read_digest(struct mgo_rd *rd, const struct mgo_value *map)
{
    const char *d = mgo_codec__str(rd, map, "digest", true, 256);
    if (d != NULL && !mgo_digest_is_wellformed(d))
        mgo_codec__fail(rd, "digest", "\"%.64s\" must match ^[a-zA-Z0-9_-]+:[0-9a-fA-F]+$", d);
    return d;
}

static const char *read_url(struct mgo_rd *rd, const struct mgo_value *map, bool required)
{
    const char *u = mgo_codec__str(rd, map, "url", required, 2048);
    if (u != NULL && !is_url_path(u))
        mgo_codec__fail(rd, "url", "must be a path starting with '/' of URL characters");
    return u;
}

mgo_err mgo_desired_state_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                                     struct mgo_desired_state *out, struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "a desired-state manifest must be a map");
        return MGO_ERR_INVALID;
    }
    if (mgo_codec__uint(&rd, root, "manifestVersion", true, &out->manifest_version) &&
        out->manifest_version == 0)
        mgo_codec__fail(&rd, "manifestVersion", "must be at least 1");
    out->device_id = mgo_codec__str(&rd, root, "deviceId", false, MGO_MAX_DEVICE_ID_LEN);
    if (out->device_id != NULL && !mgo_codec__is_device_path(out->device_id, false))
        mgo_codec__fail(&rd, "deviceId", "must match ^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$");
    const struct mgo_value *bundle = mgo_value_get(root, "bundle");
    if (bundle == NULL) {
        mgo_codec__fail(&rd, "bundle", "is required (it may be null)");
    } else if (bundle->kind != MGO_V_NULL) {
        const struct mgo_value *b = mgo_codec__map(&rd, root, "bundle", true);
        if (b != NULL) {
            size_t saved = mgo_codec__enter(&rd, "bundle");
            out->has_bundle = true;
            out->bundle.media_type = mgo_codec__str(&rd, b, "mediaType", true, 256);
            if (out->bundle.media_type != NULL &&
                strcmp(out->bundle.media_type, BUNDLE_MEDIA_TYPE) != 0)
                mgo_codec__fail(&rd, "mediaType",
                                "must be \"" BUNDLE_MEDIA_TYPE "\", got \"%.64s\"",
                                out->bundle.media_type);
            out->bundle.digest = read_digest(&rd, b);
            out->bundle.has_size =
                mgo_codec__uint(&rd, b, "sizeBytes", false, &out->bundle.size_bytes);
            out->bundle.url = read_url(&rd, b, true);
            mgo_codec__leave(&rd, saved);
        }
    }
    const struct mgo_value *deps =
        mgo_codec__array(&rd, root, "deployments", true, 0, MGO_MAX_DEPLOYMENTS);
    if (deps != NULL) {
        out->deployments = mgo_codec__alloc(&rd, deps->as.array.len * sizeof *out->deployments);
        for (size_t i = 0; out->deployments != NULL && i < deps->as.array.len; i++) {
            size_t saved = mgo_codec__enter(&rd, "deployments");
            mgo_codec__enter_index(&rd, i);
            const struct mgo_value *d = &deps->as.array.items[i];
            struct mgo_desired_ref *r = &out->deployments[i];
            r->deployment_id = mgo_codec__str(&rd, d, "deploymentId", true, 128);
            if (r->deployment_id != NULL && !mgo_is_uuid(r->deployment_id))
                mgo_codec__fail(&rd, "deploymentId", "\"%.64s\" must be a UUID", r->deployment_id);
            r->digest = read_digest(&rd, d);
            r->has_size = mgo_codec__uint(&rd, d, "sizeBytes", false, &r->size_bytes);
            r->url = read_url(&rd, d, false);
            for (size_t j = 0; j < i && r->deployment_id != NULL; j++) {
                if (out->deployments[j].deployment_id != NULL &&
                    strcmp(out->deployments[j].deployment_id, r->deployment_id) == 0)
                    mgo_codec__fail(&rd, "deploymentId", "\"%s\" is listed twice",
                                    r->deployment_id);
            }
            mgo_codec__leave(&rd, saved);
        }
        if (out->deployments != NULL)
            out->deployments_len = deps->as.array.len;
    }
    const struct mgo_value *validity = mgo_codec__map(&rd, root, MGO_VALIDITY_KEY, false);
    if (validity != NULL) {
        size_t saved = mgo_codec__enter(&rd, MGO_VALIDITY_KEY);
        bool issued = mgo_codec__uint(&rd, validity, "issuedAt", true, &out->issued_at);
        bool expires = mgo_codec__uint(&rd, validity, "expiresAt", true, &out->expires_at);
        if (issued && expires && out->expires_at <= out->issued_at)
            mgo_codec__fail(&rd, "expiresAt", "must be later than issuedAt");
        out->has_validity = issued && expires;
        mgo_codec__leave(&rd, saved);
    }
    out->ext = mgo_codec__map(&rd, root, MGO_EXT_KEY, false);
    return mgo_codec__result(&rd);
}

mgo_err mgo_desired_state_to_value(const struct mgo_desired_state *in, struct mgo_arena *arena,
                                   struct mgo_value *out)
{
    mgo_err err;
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_uint(&mb, "manifestVersion", in->manifest_version);
    mgo_map_put_str_opt(&mb, "deviceId", in->device_id);
    struct mgo_value bundle = {.kind = MGO_V_NULL};
    if (in->has_bundle) {
        struct mgo_map_builder bb;
        mgo_map_builder_init(&bb, arena);
        mgo_map_put_str(&bb, "mediaType", in->bundle.media_type);
        mgo_map_put_str(&bb, "digest", in->bundle.digest);
        if (in->bundle.has_size)
            mgo_map_put_uint(&bb, "sizeBytes", in->bundle.size_bytes);
        mgo_map_put_str(&bb, "url", in->bundle.url);
        if ((err = mgo_map_builder_finish(&bb, &bundle)) != MGO_OK)
            return err;
    }
    mgo_map_put(&mb, "bundle", &bundle);
    struct mgo_value deps;
    if ((err = mgo_value_array_new(arena, in->deployments_len, &deps)) != MGO_OK)
        return err;
    for (size_t i = 0; i < in->deployments_len; i++) {
        const struct mgo_desired_ref *r = &in->deployments[i];
        struct mgo_map_builder db;
        mgo_map_builder_init(&db, arena);
        mgo_map_put_str(&db, "deploymentId", r->deployment_id);
        mgo_map_put_str(&db, "digest", r->digest);
        if (r->has_size)
            mgo_map_put_uint(&db, "sizeBytes", r->size_bytes);
        mgo_map_put_str_opt(&db, "url", r->url);
        if ((err = mgo_map_builder_finish(&db, &deps.as.array.items[i])) != MGO_OK)
            return err;
    }
    mgo_map_put(&mb, "deployments", &deps);
    if (in->has_validity) {
        struct mgo_map_builder vb;
        mgo_map_builder_init(&vb, arena);
        mgo_map_put_uint(&vb, "issuedAt", in->issued_at);
        mgo_map_put_uint(&vb, "expiresAt", in->expires_at);
        struct mgo_value validity;
        if ((err = mgo_map_builder_finish(&vb, &validity)) != MGO_OK)
            return err;
        mgo_map_put(&mb, MGO_VALIDITY_KEY, &validity);
    }
    if (in->ext != NULL)
        mgo_map_put(&mb, MGO_EXT_KEY, in->ext);
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(desired_state, mgo_desired_state)
