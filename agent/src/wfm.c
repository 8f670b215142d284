/* wfm.c - Margo's standard HTTP binding, the pure part (wfm.h). */
#include "wfm.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mgo/problems.h"
#include "mgo/value.h"

static void set_why(char *why, size_t why_len, const struct mgo_problems *p)
{
    mgo_problems_format(p, why, why_len);
}

/* ---- manifest ------------------------------------------------------------------------- */

/* "sha256:<64 lowercase hex>" is the only digest the agent computes; a well-formed digest of
 * another algorithm is refused by name so the operator sees why. */
static bool check_digest(const char *field, const char *d, char *why, size_t why_len)
{
    if (mgo_digest_is_sha256(d))
        return true;
    const char *colon = strchr(d, ':');
    if (colon != NULL && (size_t)(colon - d) == 6 && memcmp(d, "sha256", 6) == 0)
        snprintf(why, why_len, "%s: \"%.80s\" must be sha256: followed by 64 lowercase hex digits",
                 field, d);
    else
        snprintf(why, why_len, "%s: unsupported digest algorithm \"%.*s\" (only sha256)", field,
                 colon ? (int)(colon - d < 32 ? colon - d : 32) : 0, d);
    return false;
}

mgo_err mgo_wfm_manifest_parse(const void *body, size_t len, uint64_t accepted,
                               struct mgo_wfm_manifest *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (len > MGO_WFM_MAX_MANIFEST_BYTES) {
        snprintf(why, why_len, "manifest: %zu bytes, more than the %u allowed", len,
                 MGO_WFM_MAX_MANIFEST_BYTES);
        return MGO_ERR_LIMIT;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root;
    struct mgo_desired_state ds;
    mgo_err err = mgo_value_from_yaml(body, len, &arena, &root, &probs);
    if (err == MGO_OK && root.kind != MGO_V_MAP) {
        mgo_problems_add(&probs, "$", "a manifest must be a JSON object");
        err = MGO_ERR_INVALID;
    }
    if (err == MGO_OK)
        err = mgo_desired_state_from_value(&root, &arena, &ds, &probs);
    if (err != MGO_OK) {
        set_why(why, why_len, &probs);
        goto cleanup;
    }
    out->version = ds.manifest_version;
    if (ds.manifest_version <= accepted) {
        snprintf(why, why_len,
                 "manifestVersion %" PRIu64 " is not greater than the accepted %" PRIu64
                 " (anti-rollback)",
                 ds.manifest_version, accepted);
        err = MGO_ERR_STALE;
        goto cleanup;
    }
    if (ds.deployments_len > MGO_MAX_DEPLOYMENTS) { /* the decoder's bound; kept explicit */
        snprintf(why, why_len, "deployments: more than %u", MGO_MAX_DEPLOYMENTS);
        err = MGO_ERR_LIMIT;
        goto cleanup;
    }
    for (size_t i = 0; i < ds.deployments_len; i++) {
        const struct mgo_desired_ref *r = &ds.deployments[i];
        char field[64];
        snprintf(field, sizeof field, "deployments[%zu].digest", i);
        if (!check_digest(field, r->digest, why, why_len)) {
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        if (strlen(r->deployment_id) > MGO_MAX_DEPLOYMENT_ID_LEN) { /* a UUID: 36 */
            snprintf(why, why_len, "deployments[%zu].deploymentId: too long", i);
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        snprintf(out->refs[i].id, sizeof out->refs[i].id, "%s", r->deployment_id);
        snprintf(out->refs[i].digest, sizeof out->refs[i].digest, "%s", r->digest);
    }
    out->len = ds.deployments_len;
    if (ds.has_bundle) {
        if (!check_digest("bundle.digest", ds.bundle.digest, why, why_len)) {
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        out->has_bundle = true;
        snprintf(out->bundle_digest, sizeof out->bundle_digest, "%s", ds.bundle.digest);
    }
cleanup:
    mgo_arena_cleanup(&arena);
    return err;
}

/* ---- deployment documents --------------------------------------------------------------- */

mgo_err mgo_wfm_deployment_doc(const void *yaml, size_t len, const struct mgo_wfm_ref *ref,
                               struct mgo_buf *doc_out, char *why, size_t why_len)
{
    if (len > MGO_WFM_MAX_YAML_BYTES) {
        snprintf(why, why_len, "%s: %zu bytes, more than the %u allowed", ref->id, len,
                 MGO_WFM_MAX_YAML_BYTES);
        return MGO_ERR_LIMIT;
    }
    char got[MGO_DIGEST_STR_SIZE];
    mgo_err err = mgo_digest_sha256(yaml, len, got);
    if (err != MGO_OK) {
        snprintf(why, why_len, "%s: sha256 not computed: %s", ref->id, mgo_strerror(err));
        return err;
    }
    if (!mgo_digest_equal(got, ref->digest)) {
        snprintf(why, why_len, "%s: digest mismatch: the manifest says %s, the bytes are %s",
                 ref->id, ref->digest, got);
        return MGO_ERR_CRYPTO;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root;
    struct mgo_app_deployment dep;
    err = mgo_value_from_yaml(yaml, len, &arena, &root, &probs);
    if (err == MGO_OK)
        err = mgo_app_deployment_from_value(&root, &arena, &dep, &probs);
    if (err != MGO_OK) {
        char text[400];
        set_why(text, sizeof text, &probs);
        snprintf(why, why_len, "%s: %s", ref->id, text);
        goto cleanup;
    }
    if (dep.id == NULL || strcmp(dep.id, ref->id) != 0) {
        snprintf(why, why_len, "%s: the document's id is %.64s", ref->id,
                 dep.id ? dep.id : "(none)");
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    err = mgo_app_deployment_encode(&dep, doc_out);
    if (err != MGO_OK)
        snprintf(why, why_len, "%s: not encoded: %s", ref->id, mgo_strerror(err));
cleanup:
    mgo_arena_cleanup(&arena);
    return err;
}

/* ---- statuses and capabilities ------------------------------------------------------------ */

static bool is_extension_key(const char *k)
{
    size_t n = strlen(k);
    static const char suffix[] = "-extensions";
    size_t sn = sizeof suffix - 1;
    return n > 2 + sn && k[0] == 'x' && k[1] == '-' && islower((unsigned char)k[2]) &&
           strcmp(k + n - sn, suffix) == 0;
}

mgo_err mgo_wfm_status_json(const void *status, size_t len, uint64_t fallback_version,
                            struct mgo_buf *json_out)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root, out;
    mgo_err err = mgo_value_from_msgpack(status, len, &arena, &root, &probs);
    if (err != MGO_OK)
        goto cleanup;
    if (root.kind != MGO_V_MAP) {
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    static const char *const keep[] = {"deploymentId", "deviceId", "adoptedManifestVersion",
                                       "status", "components"};
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, &arena);
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const struct mgo_value *v = mgo_value_get(&root, keep[i]);
        if (v != NULL)
            mgo_map_put(&mb, keep[i], v);
    }
    const struct mgo_value *amv = mgo_value_get(&root, "adoptedManifestVersion");
    if (amv == NULL || amv->kind != MGO_V_UINT || amv->as.u == 0) {
        if (fallback_version == 0) {
            err = MGO_ERR_INVALID;
            goto cleanup;
        }
        if (amv != NULL) { /* rebuild without the unusable one */
            mgo_map_builder_init(&mb, &arena);
            for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
                const struct mgo_value *v = mgo_value_get(&root, keep[i]);
                if (v != NULL && v != amv)
                    mgo_map_put(&mb, keep[i], v);
            }
        }
        mgo_map_put_uint(&mb, "adoptedManifestVersion", fallback_version);
    }
    err = mgo_map_builder_finish(&mb, &out);
    if (err == MGO_OK)
        err = mgo_value_to_json(&out, false, json_out);
cleanup:
    mgo_arena_cleanup(&arena);
    return err;
}

mgo_err mgo_wfm_caps_json(const void *caps, size_t len, struct mgo_buf *json_out)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root, out;
    mgo_err err = mgo_value_from_msgpack(caps, len, &arena, &root, &probs);
    if (err != MGO_OK)
        goto cleanup;
    if (root.kind != MGO_V_MAP) {
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    struct mgo_map_builder mb;
    mgo_map_builder_init(&mb, &arena);
    for (size_t i = 0; i < root.as.map.len; i++) {
        const struct mgo_member *m = &root.as.map.items[i];
        if (strcmp(m->key, "properties") == 0 || strcmp(m->key, "labels") == 0 ||
            is_extension_key(m->key))
            mgo_map_put(&mb, m->key, &m->value);
    }
    err = mgo_map_builder_finish(&mb, &out);
    if (err == MGO_OK)
        err = mgo_value_to_json(&out, false, json_out);
cleanup:
    mgo_arena_cleanup(&arena);
    return err;
}

/* ---- timing ---------------------------------------------------------------------------- */

mgo_err mgo_wfm_retry_after(const char *value, time_t now, uint32_t *delay_s)
{
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' ||
                     value[n - 1] == '\n'))
        n--;
    if (n == 0)
        return MGO_ERR_INVALID;
    if (isdigit((unsigned char)value[0])) {
        uint64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)value[i]))
                return MGO_ERR_INVALID;
            if (s <= MGO_WFM_MAX_RETRY_AFTER_S)
                s = s * 10u + (uint64_t)(value[i] - '0');
        }
        *delay_s = s > MGO_WFM_MAX_RETRY_AFTER_S ? MGO_WFM_MAX_RETRY_AFTER_S : (uint32_t)s;
        return MGO_OK;
    }
    char text[64];
    if (n >= sizeof text)
        return MGO_ERR_INVALID;
    memcpy(text, value, n);
    text[n] = '\0';
    /* RFC 9110 §5.6.7: IMF-fixdate, then the obsolete RFC 850 and asctime forms */
    static const char *const forms[] = {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                                        "%a %b %e %H:%M:%S %Y"};
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(text, forms[f], &tm);
        if (end == NULL || *end != '\0')
            continue;
        time_t at = timegm(&tm);
        if (at == (time_t)-1)
            return MGO_ERR_INVALID;
        int64_t d = (int64_t)at - (int64_t)now;
        if (d < 0)
            d = 0;
        *delay_s = d > MGO_WFM_MAX_RETRY_AFTER_S ? MGO_WFM_MAX_RETRY_AFTER_S : (uint32_t)d;
        return MGO_OK;
    }
    return MGO_ERR_INVALID;
}

int64_t mgo_wfm_poll_wait(const struct mgo_downtime *poll_windows, size_t poll_len,
                          const struct mgo_downtime *downtime, size_t down_len, time_t now)
{
    time_t t = now;
    while ((int64_t)t - (int64_t)now <= MGO_WFM_SCHEDULE_HORIZON_S) {
        time_t ends = 0;
        if (mgo_downtime_active(downtime, down_len, t, &ends) && ends > t) {
            t = ends;
            continue;
        }
        if (poll_len == 0 || mgo_downtime_active(poll_windows, poll_len, t, NULL))
            return (int64_t)t - (int64_t)now;
        t = t - t % 60 + 60; /* windows start on whole minutes */
    }
    return -1;
}
