/* lookup.c - stored apps and capabilities decoded for use (lookup.h). */
#include "lookup.h"

#include "mgo/log.h"
#include "mgo/problems.h"

#define TAG "lookup"

struct decode_ctx {
    struct mgo_arena *arena;
    struct mgo_value *tree;
    mgo_err err;
};

static mgo_err decode_app_row(const struct mgo_mgr_app_row *row, void *c)
{
    struct decode_ctx *ctx = c;
    struct mgo_problems p;
    mgo_problems_init(&p);
    ctx->err = mgo_value_from_msgpack(row->doc, row->doc_len, ctx->arena, ctx->tree, &p);
    return MGO_OK;
}

static mgo_err decode_caps_row(const struct mgo_mgr_device_row *row, void *c)
{
    struct decode_ctx *ctx = c;
    if (row->caps == NULL || row->caps_len == 0) {
        ctx->err = MGO_ERR_NOT_FOUND;
        return MGO_OK;
    }
    struct mgo_problems p;
    mgo_problems_init(&p);
    ctx->err = mgo_value_from_msgpack(row->caps, row->caps_len, ctx->arena, ctx->tree, &p);
    return MGO_OK;
}

mgo_err mgo_lookup__app(struct mgo_mgr_store *store, const char *id, const char *version,
                        struct mgo_arena *arena, struct mgo_app_description *app,
                        struct mgo_value *tree)
{
    struct decode_ctx ctx = {arena, tree, MGO_ERR_NOT_FOUND};
    mgo_err err = mgo_mgr_store_app_get(store, id, version, decode_app_row, &ctx);
    if (err)
        return err;
    if (ctx.err)
        return ctx.err;
    struct mgo_problems p;
    mgo_problems_init(&p);
    err = mgo_app_description_from_value(tree, arena, app, &p);
    if (err)
        MGO_LOGE(TAG, "stored app %s no longer validates", id);
    return err;
}

mgo_err mgo_lookup__caps(struct mgo_mgr_store *store, const char *device_id,
                         struct mgo_arena *arena, struct mgo_capabilities *caps,
                         struct mgo_value *tree)
{
    struct decode_ctx ctx = {arena, tree, MGO_ERR_NOT_FOUND};
    mgo_err err = mgo_mgr_store_device_get(store, device_id, decode_caps_row, &ctx);
    if (err)
        return err;
    if (ctx.err)
        return ctx.err;
    struct mgo_problems p;
    mgo_problems_init(&p);
    return mgo_capabilities_from_value(tree, arena, caps, &p);
}
