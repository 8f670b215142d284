/* labels.c - a device's labels: the operator's and those derived from its capabilities. */
#include "labels.h"

#include <stdio.h>
#include <string.h>

#include "mgo/value.h"

static bool value_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* A copy of text usable as a label value: other characters become '-', at most
 * MGO_LABEL_MAX_VALUE bytes. */
static const char *clean(struct mgo_arena *arena, const char *text, size_t len)
{
    if (len > MGO_LABEL_MAX_VALUE)
        len = MGO_LABEL_MAX_VALUE;
    char *out = mgo_arena_alloc(arena, len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++)
        out[i] = value_char(text[i]) ? text[i] : '-';
    out[len] = '\0';
    return out;
}

static bool has_key(const struct mgo_device_labels *l, const char *key)
{
    for (size_t i = 0; i < l->len; i++) {
        if (strcmp(l->items[i].key, key) == 0)
            return true;
    }
    return false;
}

static void add(struct mgo_device_labels *l, const char *key, const char *value)
{
    if (!key || !value || l->len == MGO_LABELS_MAX || has_key(l, key))
        return;
    l->items[l->len++] = (struct mgo_label){key, value};
}

struct op_ctx {
    struct mgo_device_labels *l;
    struct mgo_arena *arena;
};

static mgo_err op_visit(const char *key, const char *value, void *c)
{
    struct op_ctx *ctx = c;
    char *k = mgo_arena_strdup(ctx->arena, key);
    char *v = mgo_arena_strdup(ctx->arena, value);
    if (!k || !v)
        return MGO_ERR_NOMEM;
    add(ctx->l, k, v);
    return MGO_OK;
}

static const char *arch_name(unsigned archs)
{
    if (archs & MGO_ARCH_AMD64)
        return "amd64";
    if (archs & MGO_ARCH_ARM64)
        return "arm64";
    if (archs & MGO_ARCH_ARM)
        return "arm";
    if (archs & MGO_ARCH_RISCV64)
        return "riscv64";
    return archs ? "other" : NULL;
}

static void derive(struct mgo_device_labels *l, const struct mgo_mgr_device_row *row,
                   struct mgo_arena *arena)
{
    const struct mgo_capabilities *c = &l->caps;
    if (row->has_presence)
        add(l, MGO_LABEL_DERIVED_PREFIX "online", row->online ? "true" : "false");
    if (!l->have_caps)
        return;
    if (c->vendor)
        add(l, MGO_LABEL_DERIVED_PREFIX "vendor", clean(arena, c->vendor, strlen(c->vendor)));
    if (c->model_number)
        add(l, MGO_LABEL_DERIVED_PREFIX "model",
            clean(arena, c->model_number, strlen(c->model_number)));
    if (c->cpus_len > 0)
        add(l, MGO_LABEL_DERIVED_PREFIX "arch", arch_name(c->cpus[0].archs));
    if (c->deployment_types & MGO_DTYPE_COMPOSE)
        add(l, MGO_LABEL_DERIVED_PREFIX "deployment-type.compose", "true");
    if (c->deployment_types & MGO_DTYPE_HELM)
        add(l, MGO_LABEL_DERIVED_PREFIX "deployment-type.helm", "true");
    if (c->deployment_types & MGO_DTYPE_CUSTOM)
        add(l, MGO_LABEL_DERIVED_PREFIX "deployment-type.custom", "true");
    /* the device's own labels (Margo rc.3 capabilities `labels`): scalar values only */
    if (!c->labels || c->labels->kind != MGO_V_MAP)
        return;
    for (size_t i = 0; i < c->labels->as.map.len; i++) {
        const struct mgo_member *m = &c->labels->as.map.items[i];
        if (!mgo_label_key_ok(m->key, NULL, 0) ||
            strncmp(m->key, MGO_LABEL_DERIVED_PREFIX, strlen(MGO_LABEL_DERIVED_PREFIX)) == 0)
            continue;
        char num[32];
        const char *v = NULL;
        switch (m->value.kind) {
        case MGO_V_STR:
            v = clean(arena, m->value.as.str.ptr, m->value.as.str.len);
            break;
        case MGO_V_BOOL:
            v = m->value.as.b ? "true" : "false";
            break;
        case MGO_V_UINT:
            snprintf(num, sizeof num, "%llu", (unsigned long long)m->value.as.u);
            v = mgo_arena_strdup(arena, num);
            break;
        case MGO_V_INT:
            snprintf(num, sizeof num, "%lld", (long long)m->value.as.i);
            v = clean(arena, num, strlen(num));
            break;
        default:
            break;
        }
        add(l, m->key, v);
    }
}

mgo_err mgo_labels__of_device(struct mgo_mgr_store *store, const struct mgo_mgr_device_row *row,
                              struct mgo_arena *arena, struct mgo_device_labels *out)
{
    out->len = 0;
    out->operator_len = 0;
    out->have_caps = false;
    struct op_ctx ctx = {out, arena};
    mgo_err err = mgo_mgr_store_label_list(store, row->id, op_visit, &ctx);
    if (err)
        return err;
    out->operator_len = out->len;
    if (row->caps && row->caps_len > 0) {
        struct mgo_problems p;
        mgo_problems_init(&p);
        out->have_caps =
            mgo_value_from_msgpack(row->caps, row->caps_len, arena, &out->caps_tree, &p) ==
                MGO_OK &&
            mgo_capabilities_from_value(&out->caps_tree, arena, &out->caps, &p) == MGO_OK;
    }
    derive(out, row, arena);
    return MGO_OK;
}
