/* params.c - parameter answers and ApplicationDeployment construction (see mgo/params.h). */
#include "mgo/params.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

static const struct mgo_parameter *find_param(const struct mgo_app_description *app,
                                              const char *name)
{
    for (size_t i = 0; i < app->parameters_len; i++) {
        if (strcmp(app->parameters[i].name, name) == 0)
            return &app->parameters[i];
    }
    return NULL;
}

static const struct mgo_setting *find_setting(const struct mgo_app_description *app,
                                              const char *name)
{
    for (size_t s = 0; s < app->sections_len; s++) {
        for (size_t i = 0; i < app->sections[s].settings_len; i++) {
            if (strcmp(app->sections[s].settings[i].parameter, name) == 0)
                return &app->sections[s].settings[i];
        }
    }
    return NULL;
}

static bool has_value(const struct mgo_value *v)
{
    return v != NULL && v->kind != MGO_V_NULL;
}

mgo_err mgo_params_resolve(const struct mgo_app_description *app, const struct mgo_value *answers,
                           const struct mgo_value *previous, struct mgo_arena *arena,
                           struct mgo_value *resolved, struct mgo_problems *problems)
{
    size_t before = mgo_problems_total(problems);
    if (answers != NULL && answers->kind != MGO_V_NULL && answers->kind != MGO_V_MAP) {
        mgo_problems_add(problems, "parameters", "must be an object of name: value");
        return MGO_ERR_INVALID;
    }
    if (previous != NULL && previous->kind != MGO_V_MAP)
        previous = NULL;
    size_t n_answers = answers && answers->kind == MGO_V_MAP ? answers->as.map.len : 0;
    for (size_t i = 0; i < n_answers; i++) {
        const struct mgo_member *m = &answers->as.map.items[i];
        char field[MGO_MAX_FIELD_PATH];
        snprintf(field, sizeof field, "parameters.%s", m->key);
        if (find_param(app, m->key) == NULL)
            mgo_problems_add(problems, field, "is not a parameter of %s %s", app->id, app->version);
        else if (find_setting(app, m->key) == NULL)
            mgo_problems_add(problems, field,
                             "is not configurable (the app has no configuration setting for it)");
    }

    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    for (size_t i = 0; i < app->parameters_len; i++) {
        const struct mgo_parameter *p = &app->parameters[i];
        const struct mgo_setting *setting = find_setting(app, p->name);
        const struct mgo_value *answer = n_answers ? mgo_value_get(answers, p->name) : NULL;
        const struct mgo_value *prev = previous ? mgo_value_get(previous, p->name) : NULL;
        const struct mgo_value *value = NULL;
        char field[MGO_MAX_FIELD_PATH];
        snprintf(field, sizeof field, "parameters.%s", p->name);
        if (setting != NULL && setting->sensitive && answer != NULL && answer->kind == MGO_V_STR &&
            answer->as.str.len == 3 && memcmp(answer->as.str.ptr, "***", 3) == 0) {
            /* the API shows a sensitive value as "***": sending it back is a mistake (a
             * client that echoed a reply), never a new secret */
            mgo_problems_add(problems, field,
                             "is sensitive and \"***\" is how the API masks it: send the new "
                             "value, or leave the parameter out to keep the current one");
            continue;
        }
        if (setting != NULL && answer != NULL) {
            value = answer;
            if (setting->immutable && has_value(prev) && !mgo_value_equal(prev, answer))
                mgo_problems_add(problems, field,
                                 "is immutable: it keeps the value it was first deployed with");
        } else if (has_value(prev) && setting != NULL) {
            value = prev;
        } else if (p->has_value) {
            value = &p->value;
        }
        if (setting != NULL && setting->rule != NULL) {
            mgo_err err = mgo_schema_check(setting->rule, value, field, problems);
            (void)err; /* problems carry the outcome */
        }
        if (!has_value(value))
            continue;
        if (value->kind == MGO_V_ARRAY || value->kind == MGO_V_MAP || value->kind == MGO_V_BIN) {
            mgo_problems_add(problems, field,
                             "lists and maps cannot be deployed yet (Margo: arrays are TBD)");
            continue;
        }
        mgo_map_put(&mb, p->name, value);
    }
    if (mgo_problems_total(problems) != before)
        return MGO_ERR_INVALID; /* the builder's memory belongs to the arena */
    return mgo_map_builder_finish(&mb, resolved);
}

static bool profile_has_component(const struct mgo_profile *profile, const char *name)
{
    for (size_t i = 0; i < profile->components_len; i++) {
        if (strcmp(profile->components[i].name, name) == 0)
            return true;
    }
    return false;
}

mgo_err mgo_params_build_deployment(const struct mgo_app_description *app,
                                    const struct mgo_profile *profile,
                                    const struct mgo_value *resolved, const char *deployment_id,
                                    const char *device_id, struct mgo_arena *arena,
                                    struct mgo_app_deployment *out)
{
    memset(out, 0, sizeof *out);
    out->api_version = "application.margo.org/v1alpha1";
    out->id = deployment_id;
    out->application_id = app->id;
    /* an annotation, so the digest and the signature cover it (protocol.md §3.3); agents copy
     * it into their statuses for monitors */
    out->application_version = app->version;
    /* metadata.name: a Kubernetes release name (<= 53 chars): app id + first uuid group */
    char name[64];
    snprintf(name, sizeof name, "%.44s-%.8s", app->id, deployment_id);
    size_t len = strlen(name);
    while (len > 0 && name[len - 1] == '-')
        name[--len] = '\0';
    out->name = mgo_arena_strdup(arena, name);
    out->namespace_ = "margo";
    out->device_id = device_id;
    out->profile = *profile;
    out->profile.id = NULL;
    out->profile.description = NULL;
    if (out->name == NULL)
        return MGO_ERR_NOMEM;

    out->parameters = mgo_arena_alloc(arena, (app->parameters_len + 1) * sizeof *out->parameters);
    if (out->parameters == NULL)
        return MGO_ERR_NOMEM;
    for (size_t i = 0; i < app->parameters_len; i++) {
        const struct mgo_parameter *p = &app->parameters[i];
        const struct mgo_value *v = resolved ? mgo_value_get(resolved, p->name) : NULL;
        if (!has_value(v))
            continue;
        struct mgo_parameter *q = &out->parameters[out->parameters_len];
        q->name = p->name;
        q->has_value = true;
        q->value = *v;
        q->targets = mgo_arena_alloc(arena, (p->targets_len + 1) * sizeof *q->targets);
        if (q->targets == NULL)
            return MGO_ERR_NOMEM;
        for (size_t t = 0; t < p->targets_len; t++) {
            const struct mgo_target *src = &p->targets[t];
            struct mgo_target *dst = &q->targets[q->targets_len];
            dst->pointer = src->pointer;
            dst->components = mgo_arena_alloc(arena, (src->components_len + 1) * sizeof(char *));
            if (dst->components == NULL)
                return MGO_ERR_NOMEM;
            for (size_t c = 0; c < src->components_len; c++) {
                if (profile_has_component(profile, src->components[c]))
                    dst->components[dst->components_len++] = src->components[c];
            }
            if (dst->components_len > 0)
                q->targets_len++;
        }
        if (q->targets_len > 0)
            out->parameters_len++;
    }
    return MGO_OK;
}

mgo_err mgo_params_new_uuid(char out[MGO_UUID_STR_SIZE])
{
    uint8_t b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n <= 0)
            return MGO_ERR_IO;
        got += (size_t)n;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, MGO_UUID_STR_SIZE,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return MGO_OK;
}
