/* codec_description.c - ApplicationDescription (margo.yaml) and configuration answers. */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"

static void read_catalog(struct mgo_rd *rd, const struct mgo_value *meta,
                         struct mgo_app_description *out)
{
    const struct mgo_value *cat = mgo_codec__map(rd, meta, "catalog", true);
    if (cat == NULL)
        return;
    size_t saved = mgo_codec__enter(rd, "catalog");
    out->catalog = cat;
    const struct mgo_value *app = mgo_codec__map(rd, cat, "application", false);
    if (app != NULL) {
        size_t s2 = mgo_codec__enter(rd, "application");
        static const char *const keys[] = {"descriptionFile", "icon", "licenseFile", "releaseNotes",
                                           "site"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            mgo_codec__str(rd, app, keys[i], false, 2048);
        out->tagline = mgo_codec__str(rd, app, "tagline", false, 1024);
        out->icon = mgo_codec__str(rd, app, "icon", false, 2048);
        const struct mgo_value *tags = mgo_codec__array(rd, app, "tags", false, 0, 64);
        for (size_t i = 0; tags != NULL && i < tags->as.array.len; i++) {
            if (tags->as.array.items[i].kind != MGO_V_STR) {
                size_t s3 = mgo_codec__enter(rd, "tags");
                mgo_codec__enter_index(rd, i);
                mgo_codec__fail(rd, NULL, "must be a string");
                mgo_codec__leave(rd, s3);
            }
        }
        mgo_codec__leave(rd, s2);
    }
    const struct mgo_value *authors = mgo_codec__array(rd, cat, "author", false, 0, 64);
    for (size_t i = 0; authors != NULL && i < authors->as.array.len; i++) {
        size_t s2 = mgo_codec__enter(rd, "author");
        mgo_codec__enter_index(rd, i);
        const struct mgo_value *a = &authors->as.array.items[i];
        mgo_codec__str(rd, a, "name", false, 256);
        const char *email = mgo_codec__str(rd, a, "email", false, 256);
        if (email != NULL && strchr(email, '@') == NULL)
            mgo_codec__fail(rd, "email", "must contain '@'");
        mgo_codec__leave(rd, s2);
    }
    const struct mgo_value *orgs = mgo_codec__array(rd, cat, "organization", true, 1, 64);
    for (size_t i = 0; orgs != NULL && i < orgs->as.array.len; i++) {
        size_t s2 = mgo_codec__enter(rd, "organization");
        mgo_codec__enter_index(rd, i);
        mgo_codec__str(rd, &orgs->as.array.items[i], "name", true, 256);
        mgo_codec__str(rd, &orgs->as.array.items[i], "site", false, 2048);
        mgo_codec__leave(rd, s2);
    }
    mgo_codec__leave(rd, saved);
}

static void read_schema_rule(struct mgo_rd *rd, const struct mgo_value *v,
                             struct mgo_schema_rule *out)
{
    memset(out, 0, sizeof *out);
    out->name = mgo_codec__str(rd, v, "name", true, MGO_MAX_NAME_LEN);
    static const char *const types[] = {"string",        "integer",       "double",
                                        "boolean",       "array[string]", "array[integer]",
                                        "array[double]", "array[boolean]"};
    int t = mgo_codec__enum(rd, v, "dataType", true, types, 8);
    out->data_type = t < 0 ? MGO_DT_STRING : (enum mgo_data_type)t;
    out->has_allow_empty = mgo_codec__bool(rd, v, "allowEmpty", false, &out->allow_empty);
    out->has_min_length = mgo_codec__uint(rd, v, "minLength", false, &out->min_length);
    out->has_max_length = mgo_codec__uint(rd, v, "maxLength", false, &out->max_length);
    if (out->has_min_length && out->has_max_length && out->min_length > out->max_length)
        mgo_codec__fail(rd, "minLength", "must not be greater than maxLength");
    out->has_min_value = mgo_codec__number(rd, v, "minValue", false, &out->min_value);
    out->has_max_value = mgo_codec__number(rd, v, "maxValue", false, &out->max_value);
    if (out->has_min_value && out->has_max_value && out->min_value > out->max_value)
        mgo_codec__fail(rd, "minValue", "must not be greater than maxValue");
    out->has_min_precision = mgo_codec__uint(rd, v, "minPrecision", false, &out->min_precision);
    out->has_max_precision = mgo_codec__uint(rd, v, "maxPrecision", false, &out->max_precision);
    out->regex_match = mgo_codec__str(rd, v, "regexMatch", false, 1024);
    if (out->regex_match != NULL) {
        regex_t re;
        int rc = regcomp(&re, out->regex_match, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &re, msg, sizeof msg);
            mgo_codec__fail(rd, "regexMatch", "is not a valid regular expression: %s", msg);
        } else {
            regfree(&re);
        }
    }
    mgo_codec__bool(rd, v, "multiselect", false, &out->multiselect);
    out->options = mgo_codec__array(rd, v, "options", false, 1, 256);
}

static void read_configuration(struct mgo_rd *rd, const struct mgo_value *cfg,
                               struct mgo_app_description *out)
{
    size_t saved = mgo_codec__enter(rd, "configuration");
    const struct mgo_value *schemas = mgo_codec__array(rd, cfg, "schema", true, 0, 256);
    if (schemas != NULL) {
        out->schemas = mgo_codec__alloc(rd, schemas->as.array.len * sizeof *out->schemas);
        for (size_t i = 0; out->schemas != NULL && i < schemas->as.array.len; i++) {
            size_t s2 = mgo_codec__enter(rd, "schema");
            mgo_codec__enter_index(rd, i);
            read_schema_rule(rd, &schemas->as.array.items[i], &out->schemas[i]);
            for (size_t j = 0; j < i; j++) {
                if (out->schemas[i].name && out->schemas[j].name &&
                    strcmp(out->schemas[i].name, out->schemas[j].name) == 0)
                    mgo_codec__fail(rd, "name", "\"%s\" names another schema too",
                                    out->schemas[i].name);
            }
            mgo_codec__leave(rd, s2);
        }
        if (out->schemas != NULL)
            out->schemas_len = schemas->as.array.len;
    }
    const struct mgo_value *sections = mgo_codec__array(rd, cfg, "sections", true, 0, 64);
    if (sections != NULL) {
        out->sections = mgo_codec__alloc(rd, sections->as.array.len * sizeof *out->sections);
        for (size_t i = 0; out->sections != NULL && i < sections->as.array.len; i++) {
            size_t s2 = mgo_codec__enter(rd, "sections");
            mgo_codec__enter_index(rd, i);
            const struct mgo_value *sv = &sections->as.array.items[i];
            struct mgo_section *sec = &out->sections[i];
            sec->name = mgo_codec__str(rd, sv, "name", true, MGO_MAX_NAME_LEN);
            const struct mgo_value *settings =
                mgo_codec__array(rd, sv, "settings", true, 0, MGO_MAX_PARAMETERS);
            if (settings != NULL) {
                sec->settings =
                    mgo_codec__alloc(rd, settings->as.array.len * sizeof *sec->settings);
                for (size_t k = 0; sec->settings != NULL && k < settings->as.array.len; k++) {
                    size_t s3 = mgo_codec__enter(rd, "settings");
                    mgo_codec__enter_index(rd, k);
                    const struct mgo_value *st = &settings->as.array.items[k];
                    struct mgo_setting *set = &sec->settings[k];
                    set->parameter = mgo_codec__str(rd, st, "parameter", true, MGO_MAX_NAME_LEN);
                    set->name = mgo_codec__str(rd, st, "name", true, 256);
                    set->description = mgo_codec__str(rd, st, "description", false, 0);
                    mgo_codec__bool(rd, st, "immutable", false, &set->immutable);
                    set->schema = mgo_codec__str(rd, st, "schema", true, MGO_MAX_NAME_LEN);
                    const struct mgo_value *ext = mgo_codec__map(rd, st, MGO_EXT_KEY, false);
                    if (ext != NULL) {
                        size_t s4 = mgo_codec__enter(rd, MGO_EXT_KEY);
                        mgo_codec__bool(rd, ext, "sensitive", false, &set->sensitive);
                        mgo_codec__leave(rd, s4);
                    }
                    if (set->parameter != NULL) {
                        bool found = false;
                        for (size_t p = 0; p < out->parameters_len && !found; p++)
                            found = strcmp(out->parameters[p].name, set->parameter) == 0;
                        if (!found)
                            mgo_codec__fail(rd, "parameter", "\"%s\" is not a declared parameter",
                                            set->parameter);
                    }
                    for (size_t r = 0; set->schema != NULL && r < out->schemas_len; r++) {
                        if (out->schemas[r].name && strcmp(out->schemas[r].name, set->schema) == 0)
                            set->rule = &out->schemas[r];
                    }
                    if (set->schema != NULL && set->rule == NULL)
                        mgo_codec__fail(rd, "schema",
                                        "\"%s\" is not defined in configuration.schema",
                                        set->schema);
                    mgo_codec__leave(rd, s3);
                }
                if (sec->settings != NULL)
                    sec->settings_len = settings->as.array.len;
            }
            mgo_codec__leave(rd, s2);
        }
        if (out->sections != NULL)
            out->sections_len = sections->as.array.len;
    }
    mgo_codec__leave(rd, saved);
}

mgo_err mgo_app_description_from_value(const struct mgo_value *root, struct mgo_arena *arena,
                                       struct mgo_app_description *out,
                                       struct mgo_problems *problems)
{
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, arena, problems);
    memset(out, 0, sizeof *out);
    if (root->kind != MGO_V_MAP) {
        mgo_codec__fail(&rd, NULL, "an ApplicationDescription must be a map");
        return MGO_ERR_INVALID;
    }
    out->api_version = mgo_codec__str(&rd, root, "apiVersion", true, 256);
    /* The package form of the current sandbox: `apiVersion: v1` and no `kind` (see
     * mgo_app_description_normalise); every other apiVersion needs the kind. */
    bool kindless_ok = out->api_version != NULL && strcmp(out->api_version, "v1") == 0;
    const char *kind = mgo_codec__str(&rd, root, "kind", false, 64);
    const struct mgo_value *kind_v = mgo_value_get(root, "kind");
    if (kind_v == NULL && !kindless_ok && out->api_version != NULL)
        mgo_codec__fail(&rd, "kind",
                        "is required (only the package form with apiVersion \"v1\" may leave it "
                        "out), apiVersion is \"%.64s\"",
                        out->api_version);
    if (kind != NULL && strcmp(kind, "ApplicationDescription") != 0)
        mgo_codec__fail(&rd, "kind", "must be \"ApplicationDescription\", got \"%.64s\"", kind);
    const struct mgo_value *meta = mgo_codec__map(&rd, root, "metadata", true);

    /* id: top level (newest) or metadata.id (LinkML drafts) */
    const char *id = mgo_codec__str(&rd, root, "id", false, 1024);
    size_t saved = mgo_codec__enter(&rd, "metadata");
    const char *meta_id = meta ? mgo_codec__str(&rd, meta, "id", false, 1024) : NULL;
    mgo_codec__leave(&rd, saved);
    if (id == NULL && meta_id == NULL && meta != NULL)
        mgo_codec__fail(&rd, "id", "is required (top-level id, or metadata.id in older drafts)");
    if (id != NULL && meta_id != NULL && strcmp(id, meta_id) != 0)
        mgo_codec__fail(&rd, "metadata.id", "differs from the top-level id");
    out->id = id ? id : meta_id;
    if (out->id != NULL && !mgo_is_app_id(out->id))
        mgo_codec__fail(&rd, id ? "id" : "metadata.id",
                        "must match ^[a-z0-9-]{1,200}$ (lowercase letters, digits, dashes; at most "
                        "200), got %zu characters",
                        strlen(out->id));
    if (meta != NULL) {
        saved = mgo_codec__enter(&rd, "metadata");
        out->name = mgo_codec__str(&rd, meta, "name", true, 256);
        out->description = mgo_codec__str(&rd, meta, "description", false, 0);
        out->version = mgo_codec__str(&rd, meta, "version", true, MGO_MAX_APP_VERSION_LEN);
        /* the manager copies it into every deployment (applicationVersion) and monitors
         * print it: a label, not free text */
        if (out->version != NULL && !mgo_is_app_version(out->version))
            mgo_codec__fail(&rd, "version", "must be 1..%u bytes without control characters",
                            MGO_MAX_APP_VERSION_LEN);
        read_catalog(&rd, meta, out);
        mgo_codec__leave(&rd, saved);
    }
    const struct mgo_value *profiles =
        mgo_codec__array(&rd, root, "deploymentProfiles", true, 1, MGO_MAX_PROFILES);
    if (profiles != NULL) {
        out->profiles = mgo_codec__alloc(&rd, profiles->as.array.len * sizeof *out->profiles);
        for (size_t i = 0; out->profiles != NULL && i < profiles->as.array.len; i++) {
            saved = mgo_codec__enter(&rd, "deploymentProfiles");
            mgo_codec__enter_index(&rd, i);
            mgo_codec__read_profile(&rd, &profiles->as.array.items[i], true, &out->profiles[i]);
            for (size_t j = 0; j < i; j++) {
                if (out->profiles[i].id && out->profiles[j].id &&
                    strcmp(out->profiles[i].id, out->profiles[j].id) == 0)
                    mgo_codec__fail(&rd, "id", "\"%s\" is used by another profile",
                                    out->profiles[i].id);
            }
            mgo_codec__leave(&rd, saved);
        }
        if (out->profiles != NULL)
            out->profiles_len = profiles->as.array.len;
    }
    const struct mgo_value *params = mgo_codec__map(&rd, root, "parameters", false);
    saved = mgo_codec__enter(&rd, "parameters");
    mgo_codec__read_parameters(&rd, params, out->profiles, out->profiles_len, &out->parameters,
                               &out->parameters_len);
    mgo_codec__leave(&rd, saved);
    const struct mgo_value *cfg = mgo_codec__map(&rd, root, "configuration", false);
    if (cfg != NULL)
        read_configuration(&rd, cfg, out);
    return mgo_codec__result(&rd);
}

static mgo_err rule_to_value(const struct mgo_schema_rule *r, struct mgo_arena *arena,
                             struct mgo_value *out)
{
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "name", r->name);
    mgo_map_put_str(&mb, "dataType", mgo_data_type_name(r->data_type));
    if (r->has_allow_empty)
        mgo_map_put_bool(&mb, "allowEmpty", r->allow_empty);
    if (r->has_min_length)
        mgo_map_put_uint(&mb, "minLength", r->min_length);
    if (r->has_max_length)
        mgo_map_put_uint(&mb, "maxLength", r->max_length);
    bool integral = r->data_type == MGO_DT_INTEGER || r->data_type == MGO_DT_ARRAY_INTEGER;
    if (r->has_min_value) {
        struct mgo_value v = {.kind = MGO_V_FLOAT};
        v.as.f = r->min_value;
        if (integral && r->min_value < 0) {
            v.kind = MGO_V_INT;
            v.as.i = (int64_t)r->min_value;
        } else if (integral) {
            v.kind = MGO_V_UINT;
            v.as.u = (uint64_t)r->min_value;
        }
        mgo_map_put(&mb, "minValue", &v);
    }
    if (r->has_max_value) {
        struct mgo_value v = {.kind = MGO_V_FLOAT};
        v.as.f = r->max_value;
        if (integral && r->max_value < 0) {
            v.kind = MGO_V_INT;
            v.as.i = (int64_t)r->max_value;
        } else if (integral) {
            v.kind = MGO_V_UINT;
            v.as.u = (uint64_t)r->max_value;
        }
        mgo_map_put(&mb, "maxValue", &v);
    }
    if (r->has_min_precision)
        mgo_map_put_uint(&mb, "minPrecision", r->min_precision);
    if (r->has_max_precision)
        mgo_map_put_uint(&mb, "maxPrecision", r->max_precision);
    mgo_map_put_str_opt(&mb, "regexMatch", r->regex_match);
    if (r->multiselect)
        mgo_map_put_bool(&mb, "multiselect", true);
    if (r->options != NULL)
        mgo_map_put(&mb, "options", r->options);
    return mgo_map_builder_finish(&mb, out);
}

mgo_err mgo_app_description_to_value(const struct mgo_app_description *in, struct mgo_arena *arena,
                                     struct mgo_value *out)
{
    mgo_err err = MGO_OK;
    struct mgo_map_builder meta;
    mgo_map_builder_init(&meta, arena);
    mgo_map_put_str(&meta, "name", in->name);
    mgo_map_put_str_opt(&meta, "description", in->description);
    mgo_map_put_str(&meta, "version", in->version);
    if (in->catalog != NULL)
        mgo_map_put(&meta, "catalog", in->catalog);
    struct mgo_value meta_v, profiles, params, root_cfg;
    if ((err = mgo_map_builder_finish(&meta, &meta_v)) != MGO_OK)
        return err;
    if ((err = mgo_value_array_new(arena, in->profiles_len, &profiles)) != MGO_OK)
        return err;
    for (size_t i = 0; i < in->profiles_len; i++) {
        err =
            mgo_codec__profile_to_value(&in->profiles[i], true, arena, &profiles.as.array.items[i]);
        if (err != MGO_OK)
            return err;
    }
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, arena);
    mgo_map_put_str(&mb, "apiVersion", in->api_version ? in->api_version : "margo.org/v1-alpha1");
    mgo_map_put_str(&mb, "kind", "ApplicationDescription");
    mgo_map_put_str(&mb, "id", in->id);
    mgo_map_put(&mb, "metadata", &meta_v);
    mgo_map_put(&mb, "deploymentProfiles", &profiles);
    if (in->parameters_len > 0) {
        err = mgo_codec__parameters_to_value(in->parameters, in->parameters_len, arena, &params);
        if (err != MGO_OK)
            return err;
        mgo_map_put(&mb, "parameters", &params);
    }
    if (in->sections != NULL || in->schemas != NULL) {
        struct mgo_value sections, schemas;
        if ((err = mgo_value_array_new(arena, in->sections_len, &sections)) != MGO_OK ||
            (err = mgo_value_array_new(arena, in->schemas_len, &schemas)) != MGO_OK)
            return err;
        for (size_t i = 0; i < in->sections_len; i++) {
            const struct mgo_section *s = &in->sections[i];
            struct mgo_value settings;
            if ((err = mgo_value_array_new(arena, s->settings_len, &settings)) != MGO_OK)
                return err;
            for (size_t k = 0; k < s->settings_len; k++) {
                const struct mgo_setting *st = &s->settings[k];
                struct mgo_map_builder sb;
                mgo_map_builder_init(&sb, arena);
                mgo_map_put_str(&sb, "parameter", st->parameter);
                mgo_map_put_str(&sb, "name", st->name);
                mgo_map_put_str_opt(&sb, "description", st->description);
                if (st->immutable)
                    mgo_map_put_bool(&sb, "immutable", true);
                mgo_map_put_str(&sb, "schema", st->schema);
                if (st->sensitive) {
                    struct mgo_map_builder xb;
                    struct mgo_value xv;
                    mgo_map_builder_init(&xb, arena);
                    mgo_map_put_bool(&xb, "sensitive", true);
                    if ((err = mgo_map_builder_finish(&xb, &xv)) != MGO_OK)
                        return err;
                    mgo_map_put(&sb, MGO_EXT_KEY, &xv);
                }
                if ((err = mgo_map_builder_finish(&sb, &settings.as.array.items[k])) != MGO_OK)
                    return err;
            }
            struct mgo_map_builder secb;
            mgo_map_builder_init(&secb, arena);
            mgo_map_put_str(&secb, "name", s->name);
            mgo_map_put(&secb, "settings", &settings);
            if ((err = mgo_map_builder_finish(&secb, &sections.as.array.items[i])) != MGO_OK)
                return err;
        }
        for (size_t i = 0; i < in->schemas_len; i++) {
            if ((err = rule_to_value(&in->schemas[i], arena, &schemas.as.array.items[i])) != MGO_OK)
                return err;
        }
        struct mgo_map_builder cb;
        mgo_map_builder_init(&cb, arena);
        mgo_map_put(&cb, "sections", &sections);
        mgo_map_put(&cb, "schema", &schemas);
        if ((err = mgo_map_builder_finish(&cb, &root_cfg)) != MGO_OK)
            return err;
        mgo_map_put(&mb, "configuration", &root_cfg);
    }
    return mgo_map_builder_finish(&mb, out);
}

MGO_CODEC_GLUE(app_description, mgo_app_description)

/* ---- answers ----------------------------------------------------------------------- */

static size_t utf8_chars(const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            chars++;
    }
    return chars;
}

/* Decimal places of a number as written (text) or in its shortest round-trip form. */
static unsigned decimal_places(const struct mgo_value *v)
{
    char text[MGO_DOUBLE_STR_SIZE];
    const char *t = v->text;
    if (t == NULL) {
        if (v->kind != MGO_V_FLOAT)
            return 0;
        mgo_format_double(v->as.f, text);
        t = text;
    }
    const char *dot = strchr(t, '.');
    if (dot == NULL || strpbrk(t, "eE") != NULL)
        return 0;
    unsigned n = 0;
    for (const char *p = dot + 1; *p >= '0' && *p <= '9'; p++)
        n++;
    return n;
}

static bool is_number(const struct mgo_value *v)
{
    return v->kind == MGO_V_UINT || v->kind == MGO_V_INT || v->kind == MGO_V_FLOAT;
}

static double as_double(const struct mgo_value *v)
{
    return v->kind == MGO_V_UINT  ? (double)v->as.u
           : v->kind == MGO_V_INT ? (double)v->as.i
                                  : v->as.f;
}

static void check_one(const struct mgo_schema_rule *rule, enum mgo_data_type elem,
                      const struct mgo_value *v, const char *field, struct mgo_problems *p)
{
    switch (elem) {
    case MGO_DT_STRING:
    case MGO_DT_ARRAY_STRING:
        if (v->kind != MGO_V_STR) {
            mgo_problems_add(p, field, "must be a string (dataType %s)",
                             mgo_data_type_name(rule->data_type));
            return;
        }
        if (v->as.str.len == 0 && rule->has_allow_empty && !rule->allow_empty) {
            mgo_problems_add(p, field, "must not be empty (allowEmpty: false)");
            return;
        }
        {
            size_t chars = utf8_chars(v->as.str.ptr, v->as.str.len);
            if (rule->has_min_length && chars < rule->min_length && v->as.str.len > 0)
                mgo_problems_add(p, field, "must be at least %llu characters (minLength)",
                                 (unsigned long long)rule->min_length);
            if (rule->has_max_length && chars > rule->max_length)
                mgo_problems_add(p, field, "must be at most %llu characters (maxLength)",
                                 (unsigned long long)rule->max_length);
        }
        if (rule->regex_match != NULL && v->as.str.len > 0) {
            regex_t re;
            if (regcomp(&re, rule->regex_match, REG_EXTENDED | REG_NOSUB) != 0) {
                mgo_problems_add(p, field, "the app's regexMatch does not compile");
                return;
            }
            if (regexec(&re, v->as.str.ptr, 0, NULL, 0) != 0)
                mgo_problems_add(p, field, "must match the pattern %.180s (regexMatch)",
                                 rule->regex_match);
            regfree(&re);
        }
        return;
    case MGO_DT_INTEGER:
    case MGO_DT_ARRAY_INTEGER:
        if (v->kind != MGO_V_UINT && v->kind != MGO_V_INT &&
            !(v->kind == MGO_V_FLOAT && v->as.f == floor(v->as.f) && fabs(v->as.f) < 9e15)) {
            mgo_problems_add(p, field, "must be an integer");
            return;
        }
        break;
    case MGO_DT_DOUBLE:
    case MGO_DT_ARRAY_DOUBLE:
        if (!is_number(v)) {
            mgo_problems_add(p, field, "must be a number");
            return;
        }
        {
            unsigned places = decimal_places(v);
            if (rule->has_min_precision && places < rule->min_precision)
                mgo_problems_add(p, field, "needs at least %llu decimal places (minPrecision)",
                                 (unsigned long long)rule->min_precision);
            if (rule->has_max_precision && places > rule->max_precision)
                mgo_problems_add(p, field, "allows at most %llu decimal places (maxPrecision)",
                                 (unsigned long long)rule->max_precision);
        }
        break;
    case MGO_DT_BOOLEAN:
    case MGO_DT_ARRAY_BOOLEAN:
        if (v->kind != MGO_V_BOOL)
            mgo_problems_add(p, field, "must be true or false");
        return;
    }
    double d = as_double(v);
    if (rule->has_min_value && d < rule->min_value)
        mgo_problems_add(p, field, "must be at least %g (minValue)", rule->min_value);
    if (rule->has_max_value && d > rule->max_value)
        mgo_problems_add(p, field, "must be at most %g (maxValue)", rule->max_value);
}

static bool in_options(const struct mgo_value *options, const struct mgo_value *v)
{
    for (size_t i = 0; i < options->as.array.len; i++) {
        const struct mgo_value *o = &options->as.array.items[i];
        if (mgo_value_equal(o, v) || (is_number(o) && is_number(v) && as_double(o) == as_double(v)))
            return true;
    }
    return false;
}

mgo_err mgo_schema_check(const struct mgo_schema_rule *rule, const struct mgo_value *value,
                         const char *field, struct mgo_problems *problems)
{
    size_t before = mgo_problems_total(problems);
    bool is_array_type = rule->data_type >= MGO_DT_ARRAY_STRING;
    bool wants_array = is_array_type || rule->multiselect;
    bool empty = value == NULL || value->kind == MGO_V_NULL ||
                 (value->kind == MGO_V_STR && value->as.str.len == 0 && !wants_array) ||
                 (value->kind == MGO_V_ARRAY && value->as.array.len == 0);
    if (empty) {
        if (rule->has_allow_empty && !rule->allow_empty)
            mgo_problems_add(problems, field, "a value is required (allowEmpty: false)");
        return mgo_problems_total(problems) == before ? MGO_OK : MGO_ERR_INVALID;
    }
    if (wants_array) {
        if (value->kind != MGO_V_ARRAY) {
            mgo_problems_add(problems, field, "must be a list (dataType %s%s)",
                             mgo_data_type_name(rule->data_type),
                             rule->multiselect ? ", multiselect" : "");
            return MGO_ERR_INVALID;
        }
        for (size_t i = 0; i < value->as.array.len; i++) {
            char f[MGO_MAX_FIELD_PATH];
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            check_one(rule, rule->data_type, &value->as.array.items[i], f, problems);
            if (rule->options != NULL && !in_options(rule->options, &value->as.array.items[i]))
                mgo_problems_add(problems, f, "is not one of the allowed options");
        }
    } else {
        check_one(rule, rule->data_type, value, field, problems);
        if (rule->options != NULL && !in_options(rule->options, value))
            mgo_problems_add(problems, field, "is not one of the allowed options");
    }
    return mgo_problems_total(problems) == before ? MGO_OK : MGO_ERR_INVALID;
}

mgo_err mgo_app_description_normalise(const struct mgo_value *root, struct mgo_arena *arena,
                                      struct mgo_value *out)
{
    *out = *root;
    if (root->kind != MGO_V_MAP || mgo_value_get(root, "kind") != NULL)
        return MGO_OK;
    const struct mgo_value *av = mgo_value_get(root, "apiVersion");
    if (av == NULL || av->kind != MGO_V_STR || strcmp(av->as.str.ptr, "v1") != 0)
        return MGO_OK;
    size_t n = root->as.map.len;
    struct mgo_member *items = mgo_arena_alloc(arena, (n + 1) * sizeof *items);
    if (items == NULL)
        return MGO_ERR_NOMEM;
    memcpy(items, root->as.map.items, n * sizeof *items);
    items[n] = (struct mgo_member){
        .key = "kind", .key_len = 4, .value = mgo_value_str("ApplicationDescription")};
    out->as.map.items = items;
    out->as.map.len = n + 1;
    return mgo_value_map_sort(out);
}
