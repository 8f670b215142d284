/* codec_profile.c - pieces shared by ApplicationDescription and ApplicationDeployment:
 * deployment profiles, components, resources, device constraints, parameters. */
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

static const char *const arch_names[] = {"amd64", "x86_64", "arm64", "arm", "riscv64", "other"};
static const unsigned arch_bits[] = {MGO_ARCH_AMD64, MGO_ARCH_AMD64,   MGO_ARCH_ARM64,
                                     MGO_ARCH_ARM,   MGO_ARCH_RISCV64, MGO_ARCH_OTHER};

int mgo_codec__arch_parse(const char *s)
{
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(s, arch_names[i]) == 0)
            return (int)arch_bits[i];
    }
    return 0;
}

static unsigned read_archs(struct mgo_rd *rd, const struct mgo_value *map, const char *key)
{
    unsigned bits = 0;
    const struct mgo_value *a = mgo_codec__array(rd, map, key, false, 0, 16);
    for (size_t i = 0; a != NULL && i < a->as.array.len; i++) {
        size_t saved = mgo_codec__enter(rd, key);
        mgo_codec__enter_index(rd, i);
        const struct mgo_value *it = &a->as.array.items[i];
        if (it->kind != MGO_V_STR || mgo_codec__arch_parse(it->as.str.ptr) == 0)
            mgo_codec__fail(rd, NULL, "must be one of: amd64, x86_64, arm64, arm, riscv64, other");
        else
            bits |= (unsigned)mgo_codec__arch_parse(it->as.str.ptr);
        mgo_codec__leave(rd, saved);
    }
    return bits;
}

static void read_size(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                      bool required, bool large, uint64_t *out)
{
    const char *s = mgo_codec__str(rd, map, key, required, 32);
    if (s != NULL && mgo_size_parse(s, large, out) != MGO_OK)
        mgo_codec__fail(rd, key, "\"%s\" must match ^[0-9]+(%s)$ (no space)", s,
                        large ? "Mi|Gi|Ki|Ti|Pi|Ei" : "Mi|Gi|Ki");
}

void mgo_codec__read_resources(struct mgo_rd *rd, const struct mgo_value *v,
                               struct mgo_resources *out, bool require_all)
{
    memset(out, 0, sizeof *out);
    const struct mgo_value *cpu = mgo_codec__map(rd, v, "cpu", require_all);
    if (cpu != NULL) {
        size_t saved = mgo_codec__enter(rd, "cpu");
        out->has_cpu = mgo_codec__number(rd, cpu, "cores", true, &out->cpu_cores);
        if (out->has_cpu && out->cpu_cores <= 0)
            mgo_codec__fail(rd, "cores", "must be greater than 0");
        out->cpu_archs = read_archs(rd, cpu, "architectures");
        /* older drafts: a single `architecture` */
        const char *one = mgo_codec__str(rd, cpu, "architecture", false, 32);
        if (one != NULL) {
            int bit = mgo_codec__arch_parse(one);
            if (bit == 0)
                mgo_codec__fail(rd, "architecture", "\"%s\" is not a known architecture", one);
            out->cpu_archs |= (unsigned)bit;
        }
        mgo_codec__leave(rd, saved);
    }
    read_size(rd, v, "memory", require_all, false, &out->memory_bytes);
    read_size(rd, v, "storage", require_all, true, &out->storage_bytes);

    const struct mgo_value *per = mgo_codec__array(rd, v, "peripherals", false, 0, 64);
    if (per != NULL) {
        out->peripherals = mgo_codec__alloc(rd, per->as.array.len * sizeof *out->peripherals);
        for (size_t i = 0; out->peripherals != NULL && i < per->as.array.len; i++) {
            size_t saved = mgo_codec__enter(rd, "peripherals");
            mgo_codec__enter_index(rd, i);
            const struct mgo_value *it = &per->as.array.items[i];
            static const char *const names[] = {"gpu",        "display", "camera",
                                                "microphone", "speaker", "other"};
            int t = mgo_codec__enum(rd, it, "type", true, names, 6);
            struct mgo_peripheral *p = &out->peripherals[out->peripherals_len];
            p->type = t < 0 ? MGO_PERIPH_OTHER : (enum mgo_peripheral_type)t;
            p->manufacturer = mgo_codec__str(rd, it, "manufacturer", false, 256);
            p->model = mgo_codec__str(rd, it, "model", false, 256);
            out->peripherals_len++;
            mgo_codec__leave(rd, saved);
        }
    }
    const struct mgo_value *ifs = mgo_codec__array(rd, v, "interfaces", false, 0, 64);
    if (ifs != NULL) {
        out->interfaces = mgo_codec__alloc(rd, ifs->as.array.len * sizeof *out->interfaces);
        for (size_t i = 0; out->interfaces != NULL && i < ifs->as.array.len; i++) {
            size_t saved = mgo_codec__enter(rd, "interfaces");
            mgo_codec__enter_index(rd, i);
            static const char *const names[] = {"ethernet", "wifi",   "cellular", "bluetooth",
                                                "usb",      "canbus", "rs232",    "other"};
            int t = mgo_codec__enum(rd, &ifs->as.array.items[i], "type", true, names, 8);
            out->interfaces[out->interfaces_len++] =
                t < 0 ? MGO_IFACE_OTHER : (enum mgo_interface_type)t;
            mgo_codec__leave(rd, saved);
        }
    }
}

/* s[0..n) starts with the literal prefix: one constant comparison, no strncmp call
 * (strcmp and strncmp calls were a twentieth of a deployment decode). */
#define HAS_PREFIX(s, n, prefix)                                                                   \
    ((n) >= sizeof(prefix) - 1 && memcmp((s), (prefix), sizeof(prefix) - 1) == 0)

/* strcmp(a, b) == 0, without a call when the first bytes differ (distinct names mostly do). */
static inline bool same_name(const char *a, const char *b)
{
    return a[0] == b[0] && strcmp(a, b) == 0;
}

/* s[0..n): one or more of [a-z0-9-]. The whole name is tested without an early exit, so
 * the loop's only branch is its count. */
static bool is_component_name(const char *s, size_t n)
{
    unsigned all = n > 0 ? MGO_CC_NAME : 0;
    for (size_t i = 0; i < n; i++)
        all &= mgo_codec__char_class[(unsigned char)s[i]];
    return all != 0;
}

static void read_component(struct mgo_rd *rd, const struct mgo_value *v, enum mgo_profile_type type,
                           struct mgo_component *out)
{
    memset(out, 0, sizeof *out);
    out->wait = true;
    size_t name_len, location_len, repository_len;
    out->name = mgo_codec__str_len(rd, v, "name", true, MGO_MAX_NAME_LEN, &name_len);
    if (out->name != NULL && !is_component_name(out->name, name_len))
        mgo_codec__fail(rd, "name", "\"%s\" must be lowercase letters, digits and dashes",
                        out->name);
    const struct mgo_value *props = mgo_codec__map(rd, v, "properties", true);
    if (props == NULL)
        return;
    size_t saved = mgo_codec__enter(rd, "properties");
    out->repository = mgo_codec__str_len(rd, props, "repository", false, 2048, &repository_len);
    out->revision = mgo_codec__str(rd, props, "revision", false, 256);
    out->package_location =
        mgo_codec__str_len(rd, props, "packageLocation", false, 2048, &location_len);
    out->key_location = mgo_codec__str(rd, props, "keyLocation", false, 2048);
    mgo_codec__bool(rd, props, "wait", false, &out->wait);
    out->timeout = mgo_codec__str(rd, props, "timeout", false, 32);
    if (out->timeout != NULL && mgo_timeout_parse(out->timeout, &out->timeout_s) != MGO_OK)
        mgo_codec__fail(rd, "timeout", "\"%s\" must match ^[0-9]+m[0-9]+s$ (e.g. 8m30s)",
                        out->timeout);
    if (type == MGO_PROFILE_HELM) {
        if (out->repository == NULL)
            mgo_codec__fail(rd, "repository", "is required for a helm component");
        if (out->revision == NULL)
            mgo_codec__fail(rd, "revision", "is required for a helm component");
    } else if (type == MGO_PROFILE_COMPOSE) {
        if (out->package_location == NULL && out->repository == NULL)
            mgo_codec__fail(rd, NULL,
                            "a compose component needs packageLocation or repository + revision");
        if (out->repository != NULL && out->revision == NULL)
            mgo_codec__fail(rd, "revision", "is required with repository");
    }
    if (out->repository != NULL && type == MGO_PROFILE_COMPOSE &&
        !HAS_PREFIX(out->repository, repository_len, "oci://"))
        mgo_codec__fail(rd, "repository", "must start with oci://");
    if (out->package_location != NULL &&
        !HAS_PREFIX(out->package_location, location_len, "http://") &&
        !HAS_PREFIX(out->package_location, location_len, "https://"))
        mgo_codec__fail(rd, "packageLocation", "must be an http:// or https:// URL");
    mgo_codec__leave(rd, saved);
}

/* ---- deviceConstraints ---------------------------------------------------------------- */

static void read_selector(struct mgo_rd *rd, const struct mgo_value *sel, unsigned depth);

static void read_expression(struct mgo_rd *rd, const struct mgo_value *e, unsigned depth)
{
    mgo_codec__str(rd, e, "key", true, 1024);
    static const char *const ops[] = {"In", "NotIn", "Exists",      "DoesNotExist",
                                      "Gt", "Lt",    "ContainsAll", "ContainsAny"};
    int op = mgo_codec__enum(rd, e, "operator", true, ops, 8);
    const struct mgo_value *values = mgo_codec__array(rd, e, "values", false, 0, 256);
    const struct mgo_value *item = mgo_codec__map(rd, e, "itemSelector", false);
    switch (op) {
    case 0:
    case 1:
        if (values == NULL || values->as.array.len == 0)
            mgo_codec__fail(rd, "values", "In/NotIn need at least one value");
        break;
    case 2:
    case 3:
        if (values != NULL && values->as.array.len > 0)
            mgo_codec__fail(rd, "values", "Exists/DoesNotExist take no values");
        break;
    case 4:
    case 5:
        if (values == NULL || values->as.array.len != 1 ||
            (values->as.array.items[0].kind != MGO_V_UINT &&
             values->as.array.items[0].kind != MGO_V_INT &&
             values->as.array.items[0].kind != MGO_V_FLOAT))
            mgo_codec__fail(rd, "values", "Gt/Lt need exactly one number");
        break;
    case 6:
    case 7:
        if (item == NULL)
            mgo_codec__fail(rd, "itemSelector", "ContainsAll/ContainsAny need an itemSelector");
        break;
    default:
        break;
    }
    if (item != NULL) {
        size_t saved = mgo_codec__enter(rd, "itemSelector");
        read_selector(rd, item, depth + 1);
        mgo_codec__leave(rd, saved);
    }
}

static void read_selector(struct mgo_rd *rd, const struct mgo_value *sel, unsigned depth)
{
    if (depth > 4) {
        mgo_codec__fail(rd, NULL, "selectors nest at most 4 deep");
        return;
    }
    const struct mgo_value *exprs = mgo_codec__array(rd, sel, "matchExpressions", true, 1, 64);
    for (size_t i = 0; exprs != NULL && i < exprs->as.array.len; i++) {
        size_t saved = mgo_codec__enter(rd, "matchExpressions");
        mgo_codec__enter_index(rd, i);
        read_expression(rd, &exprs->as.array.items[i], depth);
        mgo_codec__leave(rd, saved);
    }
}

static void read_constraints(struct mgo_rd *rd, const struct mgo_value *dc)
{
    const struct mgo_value *cap = mgo_codec__map(rd, dc, "capacityRequirements", false);
    if (cap != NULL) {
        size_t saved = mgo_codec__enter(rd, "capacityRequirements");
        struct mgo_resources r;
        mgo_codec__read_resources(rd, cap, &r, false);
        mgo_codec__leave(rd, saved);
    }
    const struct mgo_value *rules = mgo_codec__array(rd, dc, "eligibilityRules", false, 0, 64);
    for (size_t i = 0; rules != NULL && i < rules->as.array.len; i++) {
        size_t saved = mgo_codec__enter(rd, "eligibilityRules");
        mgo_codec__enter_index(rd, i);
        const struct mgo_value *rule = &rules->as.array.items[i];
        const struct mgo_value *ps = mgo_codec__map(rd, rule, "propertySelector", false);
        const struct mgo_value *ls = mgo_codec__map(rd, rule, "labelSelector", false);
        if (ps == NULL && ls == NULL && rule->kind == MGO_V_MAP)
            mgo_codec__fail(rd, NULL, "a rule needs a propertySelector or a labelSelector");
        if (ps != NULL) {
            size_t s2 = mgo_codec__enter(rd, "propertySelector");
            read_selector(rd, ps, 1);
            mgo_codec__leave(rd, s2);
        }
        if (ls != NULL) {
            size_t s2 = mgo_codec__enter(rd, "labelSelector");
            read_selector(rd, ls, 1);
            mgo_codec__leave(rd, s2);
        }
        mgo_codec__leave(rd, saved);
    }
}

void mgo_codec__read_profile(struct mgo_rd *rd, const struct mgo_value *v, bool in_description,
                             struct mgo_profile *out)
{
    memset(out, 0, sizeof *out);
    static const char *const types[] = {"helm", "helm.v3", "compose", "custom"};
    int t = mgo_codec__enum(rd, v, "type", true, types, 4);
    out->type = t == 2 ? MGO_PROFILE_COMPOSE : t == 3 ? MGO_PROFILE_CUSTOM : MGO_PROFILE_HELM;
    out->id = mgo_codec__str(rd, v, "id", in_description, MGO_MAX_NAME_LEN);
    out->description = mgo_codec__str(rd, v, "description", false, 0);
    const struct mgo_value *comps =
        mgo_codec__array(rd, v, "components", true, 1, MGO_MAX_COMPONENTS);
    if (comps != NULL) {
        out->components = mgo_codec__alloc(rd, comps->as.array.len * sizeof *out->components);
        for (size_t i = 0; out->components != NULL && i < comps->as.array.len; i++) {
            size_t saved = mgo_codec__enter(rd, "components");
            mgo_codec__enter_index(rd, i);
            read_component(rd, &comps->as.array.items[i], out->type, &out->components[i]);
            for (size_t j = 0; j < i; j++) {
                if (out->components[i].name && out->components[j].name &&
                    same_name(out->components[i].name, out->components[j].name))
                    mgo_codec__fail(rd, "name", "\"%s\" is used by another component",
                                    out->components[i].name);
            }
            mgo_codec__leave(rd, saved);
        }
        if (out->components != NULL)
            out->components_len = comps->as.array.len;
    }
    const struct mgo_value *rr = mgo_codec__map(rd, v, "requiredResources", false);
    if (rr != NULL) {
        size_t saved = mgo_codec__enter(rd, "requiredResources");
        mgo_codec__read_resources(rd, rr, &out->required_resources, false);
        out->has_required_resources = true;
        mgo_codec__leave(rd, saved);
    }
    const struct mgo_value *dc = mgo_codec__map(rd, v, "deviceConstraints", false);
    if (dc != NULL) {
        size_t saved = mgo_codec__enter(rd, "deviceConstraints");
        read_constraints(rd, dc);
        out->device_constraints = dc;
        mgo_codec__leave(rd, saved);
    }
}

/* ---- parameters ---------------------------------------------------------------------- */

static const struct mgo_component *find_component(const struct mgo_profile *profiles, size_t n,
                                                  const char *name, enum mgo_profile_type *type_out)
{
    for (size_t p = 0; p < n; p++) {
        for (size_t c = 0; c < profiles[p].components_len; c++) {
            if (profiles[p].components[c].name != NULL &&
                same_name(profiles[p].components[c].name, name)) {
                *type_out = profiles[p].type;
                return &profiles[p].components[c];
            }
        }
    }
    return NULL;
}

static void read_target(struct mgo_rd *rd, const struct mgo_value *v,
                        const struct mgo_profile *profiles, size_t n_profiles,
                        struct mgo_target *out)
{
    memset(out, 0, sizeof *out);
    const char *pointer = mgo_codec__str(rd, v, "pointer", true, 1024);
    if (pointer != NULL && pointer[0] == '\0')
        mgo_codec__fail(rd, "pointer", "must not be empty");
    const struct mgo_value *comps =
        mgo_codec__array(rd, v, "components", true, 1, MGO_MAX_COMPONENTS);
    bool all_compose = comps != NULL;
    if (comps != NULL) {
        out->components = mgo_codec__alloc(rd, comps->as.array.len * sizeof *out->components);
        for (size_t i = 0; out->components != NULL && i < comps->as.array.len; i++) {
            size_t saved = mgo_codec__enter(rd, "components");
            mgo_codec__enter_index(rd, i);
            const struct mgo_value *c = &comps->as.array.items[i];
            enum mgo_profile_type type = MGO_PROFILE_HELM;
            if (c->kind != MGO_V_STR) {
                mgo_codec__fail(rd, NULL, "must be a component name (string)");
                all_compose = false;
            } else if (find_component(profiles, n_profiles, c->as.str.ptr, &type) == NULL) {
                mgo_codec__fail(rd, NULL, "\"%s\" is not a component of any deployment profile",
                                c->as.str.ptr);
                all_compose = false;
            } else {
                out->components[out->components_len++] = c->as.str.ptr;
                all_compose = all_compose && type == MGO_PROFILE_COMPOSE;
            }
            mgo_codec__leave(rd, saved);
        }
    }
    /* Compose pointers are environment variables; "ENV.X" (older drafts) becomes "X". */
    if (pointer != NULL && all_compose && pointer[0] == 'E' && strncmp(pointer, "ENV.", 4) == 0)
        pointer += 4;
    out->pointer = pointer;
}

void mgo_codec__read_parameters(struct mgo_rd *rd, const struct mgo_value *map,
                                const struct mgo_profile *profiles, size_t n_profiles,
                                struct mgo_parameter **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (map == NULL)
        return;
    if (map->as.map.len > MGO_MAX_PARAMETERS) {
        mgo_codec__fail(rd, NULL, "has %zu parameters, at most %u allowed", map->as.map.len,
                        MGO_MAX_PARAMETERS);
        return;
    }
    struct mgo_parameter *params = mgo_codec__alloc(rd, map->as.map.len * sizeof *params);
    if (params == NULL)
        return;
    for (size_t i = 0; i < map->as.map.len; i++) {
        const struct mgo_member *m = &map->as.map.items[i];
        struct mgo_parameter *p = &params[i];
        size_t saved = mgo_codec__enter(rd, m->key);
        p->name = m->key;
        if (m->key_len == 0 || m->key_len > MGO_MAX_NAME_LEN)
            mgo_codec__fail(rd, NULL, "parameter names are 1..%u bytes", MGO_MAX_NAME_LEN);
        if (m->value.kind != MGO_V_MAP) {
            mgo_codec__fail(rd, NULL, "must be a map with value and targets");
            mgo_codec__leave(rd, saved);
            continue;
        }
        const struct mgo_value *value = mgo_codec__lookup(&m->value, "value", 5);
        if (value != NULL && value->kind != MGO_V_NULL) {
            if (value->kind == MGO_V_ARRAY || value->kind == MGO_V_MAP || value->kind == MGO_V_BIN)
                mgo_codec__fail(rd, "value",
                                "must be a boolean, number or string (arrays are TBD in Margo)");
            p->has_value = true;
            p->value = *value;
        }
        const struct mgo_value *targets =
            mgo_codec__array(rd, &m->value, "targets", true, 1, MGO_MAX_TARGETS);
        if (targets != NULL) {
            p->targets = mgo_codec__alloc(rd, targets->as.array.len * sizeof *p->targets);
            for (size_t t = 0; p->targets != NULL && t < targets->as.array.len; t++) {
                size_t s2 = mgo_codec__enter(rd, "targets");
                mgo_codec__enter_index(rd, t);
                read_target(rd, &targets->as.array.items[t], profiles, n_profiles, &p->targets[t]);
                mgo_codec__leave(rd, s2);
            }
            if (p->targets != NULL)
                p->targets_len = targets->as.array.len;
        }
        mgo_codec__leave(rd, saved);
    }
    *out = params;
    *out_len = map->as.map.len;
}

/* ---- to_value ----------------------------------------------------------------------- */

static mgo_err arch_array(struct mgo_arena *arena, unsigned bits, struct mgo_value *out)
{
    const char *names[5];
    size_t n = 0;
    static const char *const canonical[] = {"amd64", "arm64", "arm", "riscv64", "other"};
    for (unsigned i = 0; i < 5; i++) {
        if (bits & (1u << i))
            names[n++] = canonical[i];
    }
    return mgo_codec__str_array(arena, names, n, out);
}

static char *size_text(struct mgo_arena *arena, uint64_t bytes)
{
    static const char *const units[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    unsigned u = 0;
    uint64_t v = bytes >> 10;
    while (u < 5 && v != 0 && (v & 1023) == 0) {
        v >>= 10;
        u++;
    }
    return mgo_arena_printf(arena, "%llu%s", (unsigned long long)v, units[u]);
}

mgo_err mgo_codec__resources_to_value(const struct mgo_resources *r, struct mgo_arena *arena,
                                      struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_err err = MGO_OK;
    if (r->has_cpu) {
        struct mgo_map_builder cpu;
        mgo_map_builder_init(&cpu, arena);
        mgo_map_put_float(&cpu, "cores", r->cpu_cores);
        struct mgo_value archs, cpu_v;
        if (r->cpu_archs != 0) {
            if ((err = arch_array(arena, r->cpu_archs, &archs)) != MGO_OK)
                return err;
            mgo_map_put(&cpu, "architectures", &archs);
        }
        if ((err = mgo_map_builder_finish(&cpu, &cpu_v)) != MGO_OK)
            return err;
        mgo_map_put(&mb, "cpu", &cpu_v);
    }
    if (r->memory_bytes != 0)
        mgo_map_put_str(&mb, "memory", size_text(arena, r->memory_bytes));
    if (r->storage_bytes != 0)
        mgo_map_put_str(&mb, "storage", size_text(arena, r->storage_bytes));
    if (r->peripherals_len > 0) {
        struct mgo_value arr;
        if ((err = mgo_value_array_new(arena, r->peripherals_len, &arr)) != MGO_OK)
            return err;
        for (size_t i = 0; i < r->peripherals_len; i++) {
            struct mgo_map_builder p;
            mgo_map_builder_init(&p, arena);
            mgo_map_put_str(&p, "type", mgo_peripheral_name(r->peripherals[i].type));
            mgo_map_put_str_opt(&p, "manufacturer", r->peripherals[i].manufacturer);
            mgo_map_put_str_opt(&p, "model", r->peripherals[i].model);
            if ((err = mgo_map_builder_finish(&p, &arr.as.array.items[i])) != MGO_OK)
                return err;
        }
        mgo_map_put(&mb, "peripherals", &arr);
    }
    if (r->interfaces_len > 0) {
        struct mgo_value arr;
        if ((err = mgo_value_array_new(arena, r->interfaces_len, &arr)) != MGO_OK)
            return err;
        for (size_t i = 0; i < r->interfaces_len; i++) {
            struct mgo_map_builder p;
            mgo_map_builder_init(&p, arena);
            mgo_map_put_str(&p, "type", mgo_interface_name(r->interfaces[i]));
            if ((err = mgo_map_builder_finish(&p, &arr.as.array.items[i])) != MGO_OK)
                return err;
        }
        mgo_map_put(&mb, "interfaces", &arr);
    }
    return mgo_map_builder_finish(&mb, out);
}

static mgo_err component_to_value(const struct mgo_component *c, struct mgo_arena *arena,
                                  struct mgo_value *out)
{
    struct mgo_map_builder props, comp;
    mgo_map_builder_init(&props, arena);
    mgo_map_put_str_opt(&props, "repository", c->repository);
    mgo_map_put_str_opt(&props, "revision", c->revision);
    mgo_map_put_str_opt(&props, "packageLocation", c->package_location);
    mgo_map_put_str_opt(&props, "keyLocation", c->key_location);
    mgo_map_put_bool(&props, "wait", c->wait);
    mgo_map_put_str_opt(&props, "timeout", c->timeout);
    struct mgo_value props_v;
    mgo_err err = mgo_map_builder_finish(&props, &props_v);
    if (err != MGO_OK)
        return err;
    mgo_map_builder_init(&comp, arena);
    mgo_map_put_str(&comp, "name", c->name);
    mgo_map_put(&comp, "properties", &props_v);
    return mgo_map_builder_finish(&comp, out);
}

mgo_err mgo_codec__profile_to_value(const struct mgo_profile *p, bool with_id,
                                    struct mgo_arena *arena, struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "type", mgo_profile_type_name(p->type));
    if (with_id)
        mgo_map_put_str_opt(&mb, "id", p->id);
    mgo_map_put_str_opt(&mb, "description", p->description);
    struct mgo_value comps;
    mgo_err err = mgo_value_array_new(arena, p->components_len, &comps);
    for (size_t i = 0; err == MGO_OK && i < p->components_len; i++)
        err = component_to_value(&p->components[i], arena, &comps.as.array.items[i]);
    if (err != MGO_OK)
        return err;
    mgo_map_put(&mb, "components", &comps);
    if (p->has_required_resources) {
        struct mgo_value rr;
        if ((err = mgo_codec__resources_to_value(&p->required_resources, arena, &rr)) != MGO_OK)
            return err;
        mgo_map_put(&mb, "requiredResources", &rr);
    }
    if (p->device_constraints != NULL)
        mgo_map_put(&mb, "deviceConstraints", p->device_constraints);
    return mgo_map_builder_finish(&mb, out);
}

mgo_err mgo_codec__parameters_to_value(const struct mgo_parameter *params, size_t n,
                                       struct mgo_arena *arena, struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_err err = MGO_OK;
    for (size_t i = 0; err == MGO_OK && i < n; i++) {
        const struct mgo_parameter *p = &params[i];
        struct mgo_value targets;
        err = mgo_value_array_new(arena, p->targets_len, &targets);
        for (size_t t = 0; err == MGO_OK && t < p->targets_len; t++) {
            struct mgo_map_builder tb;
            mgo_map_builder_init(&tb, arena);
            mgo_map_put_str(&tb, "pointer", p->targets[t].pointer);
            struct mgo_value comps;
            err = mgo_codec__str_array(arena, p->targets[t].components,
                                       p->targets[t].components_len, &comps);
            if (err != MGO_OK)
                break;
            mgo_map_put(&tb, "components", &comps);
            err = mgo_map_builder_finish(&tb, &targets.as.array.items[t]);
        }
        if (err != MGO_OK)
            break;
        struct mgo_map_builder pb;
        mgo_map_builder_init(&pb, arena);
        if (p->has_value) {
            struct mgo_value v = p->value;
            v.text = NULL;
            mgo_map_put(&pb, "value", &v);
        }
        mgo_map_put(&pb, "targets", &targets);
        struct mgo_value pv;
        err = mgo_map_builder_finish(&pb, &pv);
        if (err == MGO_OK)
            mgo_map_put(&mb, p->name, &pv);
    }
    if (err != MGO_OK)
        return err;
    return mgo_map_builder_finish(&mb, out);
}

mgo_err mgo_codec__error_to_value(const struct mgo_error_info *e, struct mgo_arena *arena,
                                  struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str_opt(&mb, "code", e->code);
    mgo_map_put_str_opt(&mb, "source", e->source);
    mgo_map_put_str_opt(&mb, "message", e->message);
    return mgo_map_builder_finish(&mb, out);
}

void mgo_codec__read_error(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                           bool *has, struct mgo_error_info *out)
{
    memset(out, 0, sizeof *out);
    *has = false;
    const struct mgo_value *e = mgo_codec__map(rd, map, key, false);
    if (e == NULL)
        return;
    size_t saved = mgo_codec__enter(rd, key);
    out->code = mgo_codec__str(rd, e, "code", false, 256);
    out->source = mgo_codec__str(rd, e, "source", false, 512);
    out->message = mgo_codec__str(rd, e, "message", false, 4096);
    *has = true;
    mgo_codec__leave(rd, saved);
}
