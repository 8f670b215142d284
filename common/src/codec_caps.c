/* codec_caps.c - DeviceCapabilities: the newer shape (supportedDeploymentTypes, cpus[]) and the
 * older one (roles, resources) on input; the newer shape (plus roles when given) on output. */
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

static const char *const role_names[] = {"Standalone Cluster", "Cluster Leader",
                                         "Standalone Device", "Gateway"};
static const char *const dtype_names[] = {"helm", "compose", "custom"};
static const char *const runtime_names[] = {"oci", "custom"};

static void take_resources(struct mgo_capabilities *out, const struct mgo_resources *r)
{
    out->memory_bytes = r->memory_bytes;
    out->storage_bytes = r->storage_bytes;
    out->peripherals = r->peripherals;
    out->peripherals_len = r->peripherals_len;
    out->interfaces = r->interfaces;
    out->interfaces_len = r->interfaces_len;
}

static unsigned read_bits(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                          const char *const *names, size_t n, size_t min_items)
{
    unsigned bits = 0;
    const struct mgo_value *a = mgo_codec__array(rd, map, key, false, min_items, 16);
    for (size_t i = 0; a != NULL && i < a->as.array.len; i++) {
        size_t saved = mgo_codec__enter(rd, key);
        mgo_codec__enter_index(rd, i);
        const struct mgo_value *it = &a->as.array.items[i];
        size_t k = n;
        if (it->kind == MGO_V_STR) {
            for (k = 0; k < n && strcmp(it->as.str.ptr, names[k]) != 0; k++)
                ;
        }
        if (k == n)
            mgo_codec__fail(rd, NULL, "\"%.40s\" is not one of the allowed values",
                            it->kind == MGO_V_STR ? it->as.str.ptr : "(not a string)");
        else
            bits |= 1u << k;
        mgo_codec__leave(rd, saved);
    }
    return bits;
}

static void read_labels(struct mgo_rd *rd, const struct mgo_value *root,
                        struct mgo_capabilities *out)
{
    out->labels = mgo_codec__map(rd, root, "labels", false);
    for (size_t i = 0; out->labels != NULL && i < out->labels->as.map.len; i++) {
        const struct mgo_member *m = &out->labels->as.map.items[i];
        size_t saved = mgo_codec__enter(rd, "labels");
        bool ok = m->value.kind == MGO_V_STR || m->value.kind == MGO_V_BOOL ||
                  m->value.kind == MGO_V_UINT || m->value.kind == MGO_V_INT ||
                  m->value.kind == MGO_V_FLOAT;
        if (m->value.kind == MGO_V_ARRAY) {
            ok = true;
            for (size_t k = 0; k < m->value.as.array.len; k++) {
                enum mgo_value_kind vk = m->value.as.array.items[k].kind;
                ok = ok &&
                     (vk == MGO_V_STR || vk == MGO_V_UINT || vk == MGO_V_INT || vk == MGO_V_FLOAT);
            }
        }
        if (!ok)
            mgo_codec__fail(rd, m->key,
                            "label values are strings, numbers, booleans or lists of "
                            "strings or numbers");
        mgo_codec__leave(rd, saved);
    }
}

mgo_err mgo_capabilities_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                                    struct mgo_capabilities *out, struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "DeviceCapabilities must be a map");
        return MGO_ERR_INVALID;
    }
    out->api_version = mgo_codec__str(&rd, root, "apiVersion", false, 256);
    const char *kind = mgo_codec__str(&rd, root, "kind", false, 64);
    if (kind != NULL && strcmp(kind, "DeviceCapabilitiesManifest") != 0)
        mgo_codec__fail(&rd, "kind", "must be \"DeviceCapabilitiesManifest\", got \"%.64s\"", kind);
    read_labels(&rd, root, out);
    const struct mgo_value *props = mgo_codec__map(&rd, root, "properties", true);
    if (props == NULL)
        return mgo_codec__result(&rd);
    out->properties = props;
    size_t saved = mgo_codec__enter(&rd, "properties");
    out->id = mgo_codec__str(&rd, props, "id", true, 1024);
    if (out->id != NULL && !mgo_codec__is_device_path(out->id, false))
        mgo_codec__fail(&rd, "id", "must match ^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$");
    out->vendor = mgo_codec__str(&rd, props, "vendor", true, 256);
    out->model_number = mgo_codec__str(&rd, props, "modelNumber", true, 256);
    out->serial_number = mgo_codec__str(&rd, props, "serialNumber", true, 256);

    /* The newer shape wins when present (our own output keeps roles beside it). */
    bool older =
        mgo_value_get(props, "supportedDeploymentTypes") == NULL &&
        (mgo_value_get(props, "roles") != NULL || mgo_value_get(props, "resources") != NULL);
    if (!older && mgo_value_get(props, "roles") != NULL)
        out->roles = read_bits(&rd, props, "roles", role_names, 4, 1);
    if (older) {
        out->roles = read_bits(&rd, props, "roles", role_names, 4, 1);
        if (out->roles & (MGO_ROLE_STANDALONE_CLUSTER | MGO_ROLE_CLUSTER_LEADER))
            out->deployment_types |= MGO_DTYPE_HELM;
        if (out->roles & MGO_ROLE_STANDALONE_DEVICE)
            out->deployment_types |= MGO_DTYPE_COMPOSE;
        out->runtimes = out->deployment_types ? MGO_RUNTIME_OCI : 0;
        out->hosting = out->deployment_types != 0;
        const struct mgo_value *res = mgo_codec__map(&rd, props, "resources", out->hosting);
        if (res != NULL) {
            size_t s2 = mgo_codec__enter(&rd, "resources");
            struct mgo_resources r;
            mgo_codec__read_resources(&rd, res, &r, true);
            mgo_codec__leave(&rd, s2);
            if (r.has_cpu) {
                out->cpus = mgo_codec__alloc(&rd, sizeof *out->cpus);
                if (out->cpus != NULL) {
                    out->cpus[0].cores = r.cpu_cores;
                    out->cpus[0].archs = r.cpu_archs;
                    out->cpus_len = 1;
                }
            }
            take_resources(out, &r);
        }
    } else {
        out->deployment_types =
            read_bits(&rd, props, "supportedDeploymentTypes", dtype_names, 3, 1);
        out->hosting = mgo_value_get(props, "supportedDeploymentTypes") != NULL;
        if (out->hosting) {
            out->runtimes = read_bits(&rd, props, "supportedRuntimes", runtime_names, 2, 1);
            if (mgo_value_get(props, "supportedRuntimes") == NULL)
                mgo_codec__fail(&rd, "supportedRuntimes", "is required for a hosting device");
            mgo_codec__bool(&rd, props, "otelCollector", true, &out->otel_collector);
            const struct mgo_value *cpus = mgo_codec__array(&rd, props, "cpus", true, 1, 64);
            if (cpus != NULL) {
                out->cpus = mgo_codec__alloc(&rd, cpus->as.array.len * sizeof *out->cpus);
                for (size_t i = 0; out->cpus != NULL && i < cpus->as.array.len; i++) {
                    size_t s2 = mgo_codec__enter(&rd, "cpus");
                    mgo_codec__enter_index(&rd, i);
                    const struct mgo_value *c = &cpus->as.array.items[i];
                    if (mgo_codec__number(&rd, c, "cores", true, &out->cpus[i].cores) &&
                        out->cpus[i].cores <= 0)
                        mgo_codec__fail(&rd, "cores", "must be greater than 0");
                    const char *arch = mgo_codec__str(&rd, c, "architecture", false, 32);
                    if (arch != NULL) {
                        int bit = mgo_codec__arch_parse(arch);
                        if (bit == 0)
                            mgo_codec__fail(&rd, "architecture",
                                            "\"%.32s\" is not a known architecture", arch);
                        out->cpus[i].archs = (unsigned)bit;
                    }
                    mgo_codec__leave(&rd, s2);
                }
                if (out->cpus != NULL)
                    out->cpus_len = cpus->as.array.len;
            }
            struct mgo_resources r;
            mgo_codec__read_resources(&rd, props, &r, false);
            if (mgo_value_get(props, "memory") == NULL)
                mgo_codec__fail(&rd, "memory", "is required for a hosting device");
            if (mgo_value_get(props, "storage") == NULL)
                mgo_codec__fail(&rd, "storage", "is required for a hosting device");
            take_resources(out, &r);
        } else {
            /* a see-thru gateway that hosts nothing must omit the hosting fields */
            static const char *const hosting_keys[] = {"cpus", "memory", "storage", "otelCollector",
                                                       "supportedRuntimes"};
            for (size_t i = 0; i < sizeof hosting_keys / sizeof hosting_keys[0]; i++) {
                if (mgo_value_get(props, hosting_keys[i]) != NULL)
                    mgo_codec__fail(
                        &rd, hosting_keys[i],
                        "needs supportedDeploymentTypes (a non-hosting device omits it)");
            }
        }
    }
    mgo_codec__leave(&rd, saved);
    return mgo_codec__result(&rd);
}

static mgo_err bits_array(struct mgo_arena *arena, unsigned bits, const char *const *names,
                          size_t n, struct mgo_value *out)
{
    const char *items[8];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 8; i++) {
        if (bits & (1u << i))
            items[k++] = names[i];
    }
    return mgo_codec__str_array(arena, items, k, out);
}

mgo_err mgo_capabilities_to_value(const struct mgo_capabilities *in, struct mgo_arena *arena,
                                  struct mgo_value *out)
{
    mgo_err err;
    struct mgo_map_builder props;
    mgo_map_builder_init(&props, arena);
    mgo_map_put_str(&props, "id", in->id);
    mgo_map_put_str(&props, "vendor", in->vendor);
    mgo_map_put_str(&props, "modelNumber", in->model_number);
    mgo_map_put_str(&props, "serialNumber", in->serial_number);
    if (in->roles != 0) {
        struct mgo_value roles;
        if ((err = bits_array(arena, in->roles, role_names, 4, &roles)) != MGO_OK)
            return err;
        mgo_map_put(&props, "roles", &roles);
    }
    if (in->hosting) {
        struct mgo_value v;
        if ((err = bits_array(arena, in->deployment_types, dtype_names, 3, &v)) != MGO_OK)
            return err;
        mgo_map_put(&props, "supportedDeploymentTypes", &v);
        if ((err = bits_array(arena, in->runtimes, runtime_names, 2, &v)) != MGO_OK)
            return err;
        mgo_map_put(&props, "supportedRuntimes", &v);
        mgo_map_put_bool(&props, "otelCollector", in->otel_collector);
        struct mgo_value cpus;
        if ((err = mgo_value_array_new(arena, in->cpus_len, &cpus)) != MGO_OK)
            return err;
        for (size_t i = 0; i < in->cpus_len; i++) {
            struct mgo_map_builder cb;
            mgo_map_builder_init(&cb, arena);
            mgo_map_put_float(&cb, "cores", in->cpus[i].cores);
            static const char *const arch[] = {"amd64", "arm64", "arm", "riscv64", "other"};
            for (unsigned b = 0; b < 5; b++) {
                if (in->cpus[i].archs & (1u << b)) {
                    mgo_map_put_str(&cb, "architecture", arch[b]);
                    break;
                }
            }
            if ((err = mgo_map_builder_finish(&cb, &cpus.as.array.items[i])) != MGO_OK)
                return err;
        }
        mgo_map_put(&props, "cpus", &cpus);
        /* memory, storage, peripherals, interfaces: same shape as resources */
        struct mgo_resources r = {
            .memory_bytes = in->memory_bytes,
            .storage_bytes = in->storage_bytes,
            .peripherals = in->peripherals,
            .peripherals_len = in->peripherals_len,
            .interfaces = in->interfaces,
            .interfaces_len = in->interfaces_len,
        };
        struct mgo_value rv;
        if ((err = mgo_codec__resources_to_value(&r, arena, &rv)) != MGO_OK)
            return err;
        for (size_t i = 0; i < rv.as.map.len; i++)
            mgo_map_put(&props, rv.as.map.items[i].key, &rv.as.map.items[i].value);
        /* an empty list still says "none" for a hosting device */
        if (in->peripherals_len == 0 || in->interfaces_len == 0) {
            struct mgo_value empty;
            if ((err = mgo_value_array_new(arena, 0, &empty)) != MGO_OK)
                return err;
            if (in->peripherals_len == 0)
                mgo_map_put(&props, "peripherals", &empty);
            if (in->interfaces_len == 0)
                mgo_map_put(&props, "interfaces", &empty);
        }
    }
    struct mgo_value props_v;
    if ((err = mgo_map_builder_finish(&props, &props_v)) != MGO_OK)
        return err;
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "apiVersion",
                    in->api_version ? in->api_version : "device.margo.org/v1alpha1");
    mgo_map_put_str(&mb, "kind", "DeviceCapabilitiesManifest");
    mgo_map_put(&mb, "properties", &props_v);
    if (in->labels != NULL)
        mgo_map_put(&mb, "labels", in->labels);
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(capabilities, mgo_capabilities)
