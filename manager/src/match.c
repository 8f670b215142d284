/* match.c - capability matching (see mgo/match.h). */
#include "mgo/match.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say(char *reason, size_t size, const char *fmt, ...) MGO_PRINTF(3, 4);
static void say(char *reason, size_t size, const char *fmt, ...)
{
    if (!reason || size == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, size, fmt, ap);
    va_end(ap);
}

void mgo_match_format_size(uint64_t bytes, char *out, size_t out_size)
{
    static const char *const units[] = {"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"};
    static const unsigned shifts[] = {60, 50, 40, 30, 20, 10};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        uint64_t unit = (uint64_t)1 << shifts[i];
        if (bytes >= unit && bytes % unit == 0) {
            snprintf(out, out_size, "%llu%s", (unsigned long long)(bytes / unit), units[i]);
            return;
        }
    }
    snprintf(out, out_size, "%llu", (unsigned long long)bytes);
}

static const char *const ARCH_NAMES[] = {"amd64", "arm64", "arm", "riscv64", "other"};

static void format_archs(unsigned archs, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < 5; i++) {
        if (!(archs & (1u << i)))
            continue;
        int n = snprintf(out + used, size - used, "%s%s", used ? "|" : "", ARCH_NAMES[i]);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(out, size, "any");
}

static unsigned arch_bit(const char *name)
{
    if (strcmp(name, "x86_64") == 0)
        return MGO_ARCH_AMD64;
    for (unsigned i = 0; i < 5; i++) {
        if (strcmp(name, ARCH_NAMES[i]) == 0)
            return 1u << i;
    }
    return 0;
}

static unsigned deploy_type_bit(enum mgo_profile_type t)
{
    switch (t) {
    case MGO_PROFILE_HELM:
        return MGO_DTYPE_HELM;
    case MGO_PROFILE_COMPOSE:
        return MGO_DTYPE_COMPOSE;
    case MGO_PROFILE_CUSTOM:
        return MGO_DTYPE_CUSTOM;
    }
    return 0;
}

static void format_types(unsigned types, char *out, size_t size)
{
    snprintf(out, size, "%s%s%s%s%s", (types & MGO_DTYPE_HELM) ? "helm" : "",
             (types & MGO_DTYPE_HELM) && (types & (MGO_DTYPE_COMPOSE | MGO_DTYPE_CUSTOM)) ? ", "
                                                                                          : "",
             (types & MGO_DTYPE_COMPOSE) ? "compose" : "",
             (types & MGO_DTYPE_COMPOSE) && (types & MGO_DTYPE_CUSTOM) ? ", " : "",
             (types & MGO_DTYPE_CUSTOM) ? "custom" : "");
    if (types == 0)
        snprintf(out, size, "none");
}

/* ---- capacity ------------------------------------------------------------------------ */

static bool cpu_fits(double cores, unsigned archs, const struct mgo_capabilities *caps,
                     char *reason, size_t size)
{
    /* one cpus[] entry must hold all the cores; separate entries never add up */
    for (size_t i = 0; i < caps->cpus_len; i++) {
        const struct mgo_cpu_set *c = &caps->cpus[i];
        if (c->cores + 1e-9 < cores)
            continue;
        if (archs != 0 && !(c->archs & archs))
            continue;
        return true;
    }
    char want[64], have[160] = "no cpu sets";
    format_archs(archs, want, sizeof want);
    size_t used = 0;
    for (size_t i = 0; i < caps->cpus_len && used + 1 < sizeof have; i++) {
        char a[64];
        format_archs(caps->cpus[i].archs, a, sizeof a);
        int n = snprintf(have + used, sizeof have - used, "%s%g cores (%s)", i ? ", " : "",
                         caps->cpus[i].cores, a);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    say(reason, size, "cpu: needs %g cores (%s) in one cpu set, device has %s", cores, want, have);
    return false;
}

static bool size_fits(const char *what, uint64_t need, uint64_t have, char *reason, size_t size)
{
    if (need == 0 || have >= need)
        return true;
    char n[32], h[32];
    mgo_match_format_size(need, n, sizeof n);
    if (have == 0)
        snprintf(h, sizeof h, "none reported");
    else
        mgo_match_format_size(have, h, sizeof h);
    say(reason, size, "%s: needs %s, device has %s", what, n, h);
    return false;
}

static bool str_opt_eq(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

static bool resources_fit(const struct mgo_resources *r, const struct mgo_capabilities *caps,
                          char *reason, size_t size)
{
    if (r->has_cpu && !cpu_fits(r->cpu_cores, r->cpu_archs, caps, reason, size))
        return false;
    if (!size_fits("memory", r->memory_bytes, caps->memory_bytes, reason, size) ||
        !size_fits("storage", r->storage_bytes, caps->storage_bytes, reason, size))
        return false;
    for (size_t i = 0; i < r->peripherals_len; i++) {
        const struct mgo_peripheral *want = &r->peripherals[i];
        bool found = false;
        for (size_t j = 0; j < caps->peripherals_len && !found; j++) {
            const struct mgo_peripheral *have = &caps->peripherals[j];
            found = have->type == want->type &&
                    str_opt_eq(want->manufacturer, have->manufacturer) &&
                    str_opt_eq(want->model, have->model);
        }
        if (!found) {
            say(reason, size, "peripherals: needs %s%s%s%s%s%s, device has none that matches",
                mgo_peripheral_name(want->type), want->manufacturer ? " manufacturer " : "",
                want->manufacturer ? want->manufacturer : "", want->model ? " model " : "",
                want->model ? want->model : "", "");
            return false;
        }
    }
    for (size_t i = 0; i < r->interfaces_len; i++) {
        bool found = false;
        for (size_t j = 0; j < caps->interfaces_len && !found; j++)
            found = caps->interfaces[j] == r->interfaces[i];
        if (!found) {
            say(reason, size, "interfaces: needs %s, device has none",
                mgo_interface_name(r->interfaces[i]));
            return false;
        }
    }
    return true;
}

static bool number_of(const struct mgo_value *v, double *out)
{
    if (!v)
        return false;
    switch (v->kind) {
    case MGO_V_UINT:
        *out = (double)v->as.u;
        return true;
    case MGO_V_INT:
        *out = (double)v->as.i;
        return true;
    case MGO_V_FLOAT:
        *out = v->as.f;
        return true;
    case MGO_V_STR: {
        if (v->as.str.len == 0)
            return false;
        char *end = NULL;
        errno = 0;
        double d = strtod(v->as.str.ptr, &end);
        if (errno != 0 || end != v->as.str.ptr + v->as.str.len || !isfinite(d))
            return false;
        *out = d;
        return true;
    }
    default:
        return false;
    }
}

static bool capacity_fits(const struct mgo_value *cap, const struct mgo_capabilities *caps,
                          char *reason, size_t size)
{
    if (!cap)
        return true;
    if (cap->kind != MGO_V_MAP) {
        say(reason, size, "deviceConstraints.capacityRequirements: must be a map");
        return false;
    }
    const struct mgo_value *cpu = mgo_value_get(cap, "cpu");
    if (cpu) {
        double cores = 0;
        if (!number_of(mgo_value_get(cpu, "cores"), &cores)) {
            say(reason, size, "deviceConstraints.capacityRequirements.cpu.cores: must be a number");
            return false;
        }
        unsigned archs = 0;
        const struct mgo_value *a = mgo_value_get(cpu, "architectures");
        if (a && a->kind == MGO_V_ARRAY) {
            for (size_t i = 0; i < a->as.array.len; i++) {
                if (a->as.array.items[i].kind == MGO_V_STR)
                    archs |= arch_bit(a->as.array.items[i].as.str.ptr);
            }
        }
        if (!cpu_fits(cores, archs, caps, reason, size))
            return false;
    }
    static const char *const keys[2] = {"memory", "storage"};
    for (int i = 0; i < 2; i++) {
        const struct mgo_value *v = mgo_value_get(cap, keys[i]);
        if (!v)
            continue;
        uint64_t need = 0;
        if (v->kind != MGO_V_STR || mgo_size_parse(v->as.str.ptr, i == 1, &need) != MGO_OK) {
            say(reason, size, "deviceConstraints.capacityRequirements.%s: not a size", keys[i]);
            return false;
        }
        if (!size_fits(keys[i], need, i == 0 ? caps->memory_bytes : caps->storage_bytes, reason,
                       size))
            return false;
    }
    return true;
}

/* ---- selectors ------------------------------------------------------------------------- */

static bool scalar_equal(const struct mgo_value *target, const struct mgo_value *want)
{
    switch (target->kind) {
    case MGO_V_STR:
        return want->kind == MGO_V_STR && target->as.str.len == want->as.str.len &&
               memcmp(target->as.str.ptr, want->as.str.ptr, target->as.str.len) == 0;
    case MGO_V_BOOL:
        if (want->kind == MGO_V_BOOL)
            return want->as.b == target->as.b;
        if (want->kind == MGO_V_STR)
            return strcmp(want->as.str.ptr, target->as.b ? "true" : "false") == 0;
        return false;
    case MGO_V_UINT:
    case MGO_V_INT:
    case MGO_V_FLOAT: {
        double a = 0, b = 0;
        return number_of(target, &a) && number_of(want, &b) && a == b;
    }
    default:
        return false; /* unsupported JSON type evaluates false */
    }
}

static bool is_scalar(const struct mgo_value *v)
{
    return v->kind == MGO_V_STR || v->kind == MGO_V_BOOL || v->kind == MGO_V_UINT ||
           v->kind == MGO_V_INT || v->kind == MGO_V_FLOAT;
}

static bool in_values(const struct mgo_value *target, const struct mgo_value *values)
{
    for (size_t i = 0; i < values->as.array.len; i++) {
        if (scalar_equal(target, &values->as.array.items[i]))
            return true;
    }
    return false;
}

static const struct mgo_value *lookup(const struct mgo_value *root, const char *key, bool labels)
{
    if (!root)
        return NULL;
    if (labels)
        return mgo_value_get(root, key);
    if (key[0] != '\0' && key[0] != '/')
        return NULL;
    return mgo_value_pointer(root, key);
}

static bool eval_selector(const struct mgo_value *selector, const struct mgo_value *root,
                          bool labels, char *reason, size_t size, unsigned depth);

/* ContainsAll / ContainsAny over an array: with itemSelector, each of its expressions must be
 * satisfied by some element (All) or one of them by some element (Any); with values, every
 * value (All) or one value (Any) must be an element. */
static bool eval_contains(const struct mgo_value *target, const struct mgo_value *expr, bool all,
                          bool labels, unsigned depth)
{
    if (!target || target->kind != MGO_V_ARRAY)
        return false;
    const struct mgo_value *items = mgo_value_get(expr, "itemSelector");
    const struct mgo_value *values = mgo_value_get(expr, "values");
    if (items) {
        const struct mgo_value *exprs = mgo_value_get(items, "matchExpressions");
        if (!exprs || exprs->kind != MGO_V_ARRAY || exprs->as.array.len == 0)
            return false;
        for (size_t e = 0; e < exprs->as.array.len; e++) {
            /* a one-expression selector, evaluated against each element */
            struct mgo_member m = {.key = "matchExpressions", .key_len = 16};
            m.value.kind = MGO_V_ARRAY;
            m.value.as.array.items = &exprs->as.array.items[e];
            m.value.as.array.len = 1;
            struct mgo_value one = {.kind = MGO_V_MAP};
            one.as.map.items = &m;
            one.as.map.len = 1;
            bool some = false;
            for (size_t i = 0; i < target->as.array.len && !some; i++)
                some = eval_selector(&one, &target->as.array.items[i], false, NULL, 0, depth + 1);
            if (all && !some)
                return false;
            if (!all && some)
                return true;
        }
        return all;
    }
    (void)labels;
    if (!values || values->kind != MGO_V_ARRAY || values->as.array.len == 0)
        return false;
    for (size_t v = 0; v < values->as.array.len; v++) {
        bool some = false;
        for (size_t i = 0; i < target->as.array.len && !some; i++)
            some = is_scalar(&target->as.array.items[i]) &&
                   scalar_equal(&target->as.array.items[i], &values->as.array.items[v]);
        if (all && !some)
            return false;
        if (!all && some)
            return true;
    }
    return all;
}

static bool eval_expr(const struct mgo_value *expr, const struct mgo_value *root, bool labels,
                      char *reason, size_t size, unsigned depth)
{
    const struct mgo_value *key = mgo_value_get(expr, "key");
    const struct mgo_value *op = mgo_value_get(expr, "operator");
    if (!key || key->kind != MGO_V_STR || !op || op->kind != MGO_V_STR) {
        say(reason, size, "matchExpressions: key and operator must be strings");
        return false;
    }
    const char *k = key->as.str.ptr, *o = op->as.str.ptr;
    const struct mgo_value *target = lookup(root, k, labels);
    const struct mgo_value *values = mgo_value_get(expr, "values");
    bool has_values = values && values->kind == MGO_V_ARRAY;
    bool ok;
    if (strcmp(o, "Exists") == 0) {
        ok = target != NULL;
    } else if (strcmp(o, "DoesNotExist") == 0) {
        ok = target == NULL;
    } else if (strcmp(o, "In") == 0 || strcmp(o, "NotIn") == 0) {
        if (!has_values) {
            say(reason, size, "%s %s: needs values", k, o);
            return false;
        }
        bool in = target && is_scalar(target) && in_values(target, values);
        if (o[0] == 'I')
            ok = in;
        else /* NotIn: absent counts as not in; an unsupported type is false */
            ok = !target || (is_scalar(target) && !in);
    } else if (strcmp(o, "Gt") == 0 || strcmp(o, "Lt") == 0) {
        double limit = 0, have = 0;
        if (!has_values || values->as.array.len != 1 ||
            !number_of(&values->as.array.items[0], &limit)) {
            say(reason, size, "%s %s: needs exactly one number in values", k, o);
            return false;
        }
        /* the target must be a number (a numeric string label is accepted) */
        ok = target && number_of(target, &have) && (o[0] == 'G' ? have > limit : have < limit);
    } else if (strcmp(o, "ContainsAll") == 0 || strcmp(o, "ContainsAny") == 0) {
        ok = eval_contains(target, expr, o[8] == 'A' && o[9] == 'l', labels, depth);
    } else {
        say(reason, size, "%s: unknown operator %s", k, o);
        return false;
    }
    if (!ok) {
        char vals[96] = "";
        if (has_values) {
            size_t used = 0;
            for (size_t i = 0; i < values->as.array.len && used + 1 < sizeof vals; i++) {
                const struct mgo_value *v = &values->as.array.items[i];
                double d;
                char num[MGO_DOUBLE_STR_SIZE] = "";
                if (v->kind != MGO_V_STR && number_of(v, &d))
                    mgo_format_double(d, num);
                int n = v->kind == MGO_V_STR ? snprintf(vals + used, sizeof vals - used, "%s%s",
                                                        i ? "," : "", v->as.str.ptr)
                        : num[0] != '\0'
                            ? snprintf(vals + used, sizeof vals - used, "%s%s", i ? "," : "", num)
                            : 0;
                if (n < 0)
                    break;
                used += (size_t)n;
            }
        }
        say(reason, size, "%s %s%s%s%s is false", k, o, has_values ? " [" : "", vals,
            has_values ? "]" : "");
    }
    return ok;
}

static bool eval_selector(const struct mgo_value *selector, const struct mgo_value *root,
                          bool labels, char *reason, size_t size, unsigned depth)
{
    if (depth > MGO_MAX_DEPTH) {
        say(reason, size, "selector nested too deeply");
        return false;
    }
    const struct mgo_value *exprs = mgo_value_get(selector, "matchExpressions");
    if (!exprs || exprs->kind != MGO_V_ARRAY) {
        say(reason, size, "selector: matchExpressions must be a list");
        return false;
    }
    for (size_t i = 0; i < exprs->as.array.len; i++) {
        const struct mgo_value *e = &exprs->as.array.items[i];
        if (e->kind != MGO_V_MAP) {
            say(reason, size, "matchExpressions[%zu]: must be a map", i);
            return false;
        }
        if (!eval_expr(e, root, labels, reason, size, depth))
            return false;
    }
    return true;
}

bool mgo_match_selector(const struct mgo_value *selector, const struct mgo_value *root, bool labels,
                        char *reason, size_t reason_size)
{
    if (!selector || selector->kind != MGO_V_MAP) {
        say(reason, reason_size, "selector: must be a map");
        return false;
    }
    return eval_selector(selector, root, labels, reason, reason_size, 0);
}

static bool rules_match(const struct mgo_value *rules, const struct mgo_capabilities *caps,
                        char *reason, size_t size)
{
    if (!rules)
        return true;
    if (rules->kind != MGO_V_ARRAY) {
        say(reason, size, "eligibilityRules: must be a list");
        return false;
    }
    if (rules->as.array.len == 0)
        return true; /* no rules = capacity only */
    char first[MGO_MATCH_REASON_SIZE] = "";
    for (size_t i = 0; i < rules->as.array.len; i++) {
        const struct mgo_value *rule = &rules->as.array.items[i];
        char why[MGO_MATCH_REASON_SIZE] = "";
        const struct mgo_value *ps = mgo_value_get(rule, "propertySelector");
        const struct mgo_value *ls = mgo_value_get(rule, "labelSelector");
        bool ok = rule->kind == MGO_V_MAP && (ps || ls);
        if (ok && ps)
            ok = mgo_match_selector(ps, caps->properties, false, why, sizeof why);
        if (ok && ls)
            ok = mgo_match_selector(ls, caps->labels, true, why, sizeof why);
        if (ok)
            return true;
        if (i == 0)
            snprintf(first, sizeof first, "%s", why[0] ? why : "rule has no selector");
    }
    if (rules->as.array.len == 1)
        say(reason, size, "eligibilityRules: %s", first);
    else
        say(reason, size, "eligibilityRules: none of %zu rules matched (rule 1: %s)",
            rules->as.array.len, first);
    return false;
}

bool mgo_match_profile(const struct mgo_profile *profile, const struct mgo_capabilities *caps,
                       char *reason, size_t reason_size)
{
    if (!caps->hosting) {
        say(reason, reason_size, "device hosts no workloads (gateway without deployment types)");
        return false;
    }
    if (!(caps->deployment_types & deploy_type_bit(profile->type))) {
        char types[48];
        format_types(caps->deployment_types, types, sizeof types);
        say(reason, reason_size, "deployment type: profile is %s, device supports %s",
            mgo_profile_type_name(profile->type), types);
        return false;
    }
    if (profile->has_required_resources &&
        !resources_fit(&profile->required_resources, caps, reason, reason_size))
        return false;
    const struct mgo_value *dc = profile->device_constraints;
    if (dc) {
        if (!capacity_fits(mgo_value_get(dc, "capacityRequirements"), caps, reason, reason_size))
            return false;
        if (!rules_match(mgo_value_get(dc, "eligibilityRules"), caps, reason, reason_size))
            return false;
    }
    return true;
}

const struct mgo_profile *mgo_match_app(const struct mgo_app_description *app,
                                        const struct mgo_capabilities *caps, char *reason,
                                        size_t reason_size)
{
    char first[MGO_MATCH_REASON_SIZE] = "";
    const struct mgo_profile *first_supported = NULL;
    unsigned offered = 0;
    for (size_t i = 0; i < app->profiles_len; i++) {
        const struct mgo_profile *p = &app->profiles[i];
        offered |= deploy_type_bit(p->type);
        bool supported = caps->hosting && (caps->deployment_types & deploy_type_bit(p->type));
        char why[MGO_MATCH_REASON_SIZE] = "";
        if (mgo_match_profile(p, caps, why, sizeof why))
            return p;
        if (supported && !first_supported) {
            first_supported = p;
            snprintf(first, sizeof first, "%s", why);
        } else if (!first_supported && first[0] == '\0') {
            snprintf(first, sizeof first, "%s", why);
        }
    }
    if (first_supported || !caps->hosting) {
        say(reason, reason_size, "%s", first);
    } else {
        char want[48], have[48];
        format_types(offered, want, sizeof want);
        format_types(caps->deployment_types, have, sizeof have);
        say(reason, reason_size, "deployment type: app offers %s, device supports %s", want, have);
    }
    return NULL;
}
