/* codec_common.c - enums, patterns, kind detection, digests and file validation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_util.h"
#include "mgo/limits.h"
#include "mgo/sign.h"

static const char *const state_names[MGO_STATE_COUNT] = {
    "pending", "installing", "installed", "failed", "removing", "removed",
};

const char *mgo_state_name(enum mgo_state s)
{
    return (unsigned)s < MGO_STATE_COUNT ? state_names[s] : "unknown";
}

mgo_err mgo_state_parse(const char *text, enum mgo_state *out)
{
    for (unsigned i = 0; i < MGO_STATE_COUNT; i++) {
        if (strcmp(text, state_names[i]) == 0) {
            *out = (enum mgo_state)i;
            return MGO_OK;
        }
    }
    return MGO_ERR_INVALID;
}

/* Severity rank: failed > removing > installing > pending > removed > installed. */
static int severity(enum mgo_state s)
{
    switch (s) {
    case MGO_STATE_FAILED:
        return 5;
    case MGO_STATE_REMOVING:
        return 4;
    case MGO_STATE_INSTALLING:
        return 3;
    case MGO_STATE_PENDING:
        return 2;
    case MGO_STATE_REMOVED:
        return 1;
    case MGO_STATE_INSTALLED:
        return 0;
    }
    return 5;
}

enum mgo_state mgo_state_overall(const enum mgo_state *states, size_t n)
{
    if (n == 0)
        return MGO_STATE_PENDING;
    enum mgo_state worst = states[0];
    for (size_t i = 1; i < n; i++) {
        if (severity(states[i]) > severity(worst))
            worst = states[i];
    }
    return worst;
}

const char *mgo_profile_type_name(enum mgo_profile_type t)
{
    switch (t) {
    case MGO_PROFILE_HELM:
        return "helm";
    case MGO_PROFILE_COMPOSE:
        return "compose";
    case MGO_PROFILE_CUSTOM:
        return "custom";
    }
    return "unknown";
}

static const char *const peripheral_names[] = {"gpu",        "display", "camera",
                                               "microphone", "speaker", "other"};
static const char *const interface_names[] = {"ethernet", "wifi",   "cellular", "bluetooth",
                                              "usb",      "canbus", "rs232",    "other"};

const char *mgo_peripheral_name(enum mgo_peripheral_type t)
{
    return (unsigned)t < 6 ? peripheral_names[t] : "other";
}

const char *mgo_interface_name(enum mgo_interface_type t)
{
    return (unsigned)t < 8 ? interface_names[t] : "other";
}

static const char *const data_type_names[] = {
    "string",        "integer",        "double",        "boolean",
    "array[string]", "array[integer]", "array[double]", "array[boolean]",
};

const char *mgo_data_type_name(enum mgo_data_type t)
{
    return (unsigned)t < 8 ? data_type_names[t] : "unknown";
}

mgo_err mgo_size_parse(const char *text, bool allow_large, uint64_t *bytes)
{
    const char *p = text;
    uint64_t n = 0;
    if (*p < '0' || *p > '9')
        return MGO_ERR_INVALID;
    while (*p >= '0' && *p <= '9') {
        if (n > (UINT64_MAX - 9) / 10)
            return MGO_ERR_INVALID;
        n = n * 10 + (uint64_t)(*p - '0');
        p++;
    }
    static const struct {
        const char *unit;
        unsigned shift;
        bool large;
    } units[] = {{"Ki", 10, false}, {"Mi", 20, false}, {"Gi", 30, false},
                 {"Ti", 40, true},  {"Pi", 50, true},  {"Ei", 60, true}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (units[i].large && !allow_large)
                return MGO_ERR_INVALID;
            if (n > (UINT64_MAX >> units[i].shift))
                return MGO_ERR_INVALID;
            *bytes = n << units[i].shift;
            return MGO_OK;
        }
    }
    return MGO_ERR_INVALID;
}

mgo_err mgo_timeout_parse(const char *text, uint32_t *seconds)
{
    const char *p = text;
    uint64_t m = 0, s = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) {
        m = m * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (digits == 0 || *p++ != 'm')
        return MGO_ERR_INVALID;
    digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 9) {
        s = s * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (digits == 0 || *p++ != 's' || *p != '\0')
        return MGO_ERR_INVALID;
    uint64_t total = m * 60 + s;
    if (total > UINT32_MAX)
        return MGO_ERR_INVALID;
    *seconds = (uint32_t)total;
    return MGO_OK;
}

bool mgo_is_uuid(const char *t)
{
    /* 8-4-4-4-12 hex digits; a NUL has no class, so a short text ends the loop early */
    static const char pattern[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
    for (size_t i = 0; i < sizeof pattern - 1; i++) {
        unsigned need = pattern[i] == '-' ? MGO_CC_DASH : MGO_CC_HEX;
        if (!(mgo_codec__char_class[(unsigned char)t[i]] & need))
            return false;
    }
    return t[sizeof pattern - 1] == '\0';
}

bool mgo_is_app_id(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++) {
        if (!(mgo_codec__char_class[(unsigned char)t[n]] & MGO_CC_NAME))
            return false;
    }
    return n >= 1 && n <= MGO_MAX_APP_ID_LEN;
}

bool mgo_is_app_version(const char *t)
{
    size_t n = 0;
    for (; t[n]; n++) {
        unsigned char c = (unsigned char)t[n];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return n >= 1 && n <= MGO_MAX_APP_VERSION_LEN;
}

const char *mgo_doc_kind_name(enum mgo_doc_kind k)
{
    switch (k) {
    case MGO_DOC_APP_DESCRIPTION:
        return "ApplicationDescription";
    case MGO_DOC_APP_DEPLOYMENT:
        return "ApplicationDeployment";
    case MGO_DOC_DESIRED_STATE:
        return "DesiredStateManifest";
    case MGO_DOC_DEPLOYMENT_STATUS:
        return "DeploymentStatusManifest";
    case MGO_DOC_CAPABILITIES:
        return "DeviceCapabilitiesManifest";
    case MGO_DOC_PRESENCE:
        return "Presence";
    case MGO_DOC_EVENT:
        return "Event";
    case MGO_DOC_PROBLEM_DETAIL:
        return "ProblemDetail";
    case MGO_DOC_UNKNOWN:
        break;
    }
    return "unknown";
}

enum mgo_doc_kind mgo_doc_detect(const struct mgo_value *root)
{
    if (root == NULL || root->kind != MGO_V_MAP)
        return MGO_DOC_UNKNOWN;
    /* Structure first (a wrong `kind` is then reported by the validator), kind second. */
    if (mgo_value_get(root, "deploymentProfiles"))
        return MGO_DOC_APP_DESCRIPTION;
    if (mgo_value_get(root, "manifestVersion"))
        return MGO_DOC_DESIRED_STATE;
    if (mgo_value_get(root, "properties"))
        return MGO_DOC_CAPABILITIES;
    if (mgo_value_get(root, "spec"))
        return MGO_DOC_APP_DEPLOYMENT;
    if (mgo_value_get(root, "components") && mgo_value_get(root, "status"))
        return MGO_DOC_DEPLOYMENT_STATUS;
    if (mgo_value_get(root, "severity"))
        return MGO_DOC_EVENT;
    if (mgo_value_get(root, "boot") && mgo_value_get(root, "state"))
        return MGO_DOC_PRESENCE;
    if (mgo_value_get(root, "title") ||
        (mgo_value_get(root, "type") && mgo_value_get(root, "detail")))
        return MGO_DOC_PROBLEM_DETAIL;
    const struct mgo_value *kind = mgo_value_get(root, "kind");
    if (kind != NULL && kind->kind == MGO_V_STR) {
        for (int k = MGO_DOC_APP_DESCRIPTION; k <= MGO_DOC_CAPABILITIES; k++) {
            if (strcmp(kind->as.str.ptr, mgo_doc_kind_name((enum mgo_doc_kind)k)) == 0)
                return (enum mgo_doc_kind)k;
        }
    }
    return MGO_DOC_UNKNOWN;
}

mgo_err mgo_doc_canonical(const struct mgo_value *root, struct mgo_buf *out)
{
    if (root->kind != MGO_V_MAP)
        return MGO_ERR_INVALID;
    /* The same map without the extension member: members are sorted, so dropping one keeps
     * the order canonical. */
    struct mgo_member scratch[64];
    struct mgo_member *items = scratch;
    size_t n = root->as.map.len;
    if (n > sizeof scratch / sizeof scratch[0]) {
        items = calloc(n, sizeof *items);
        if (items == NULL)
            return MGO_ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(root->as.map.items[i].key, MGO_EXT_KEY) != 0)
            items[k++] = root->as.map.items[i];
    }
    struct mgo_value stripped = {.kind = MGO_V_MAP};
    stripped.as.map.items = items;
    stripped.as.map.len = k;
    mgo_err err = mgo_value_to_msgpack(&stripped, out);
    if (items != scratch)
        free(items);
    return err;
}

mgo_err mgo_doc_digest(const struct mgo_value *root, char out[MGO_DIGEST_STR_SIZE])
{
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_doc_canonical(root, &buf);
    if (err == MGO_OK)
        err = mgo_digest_sha256(buf.data, buf.len, out);
    mgo_buf_cleanup(&buf);
    return err;
}

mgo_err mgo_problem_detail_validate(const struct mgo_value *root, struct mgo_problems *problems)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 64 * 1024);
    struct mgo_rd rd;
    mgo_codec__rd_init(&rd, &arena, problems);
    mgo_codec__str(&rd, root, "type", true, 2048);
    mgo_codec__str(&rd, root, "title", true, 0);
    uint64_t status = 0;
    if (mgo_codec__uint(&rd, root, "status", true, &status) && (status < 100 || status > 599))
        mgo_codec__fail(&rd, "status", "must be an HTTP status code (100..599)");
    mgo_codec__str(&rd, root, "detail", false, 0);
    mgo_codec__str(&rd, root, "instance", false, 2048);
    bool b;
    mgo_codec__bool(&rd, root, "retryable", false, &b);
    uint64_t u;
    mgo_codec__uint(&rd, root, "retryAfterSeconds", false, &u);
    static const char *const strategies[] = {"none", "fixed", "exponential"};
    mgo_codec__enum(&rd, root, "backoffStrategy", false, strategies, 3);
    const struct mgo_value *errors =
        mgo_codec__array(&rd, root, "errors", false, 0, MGO_MAX_ARRAY_ITEMS);
    for (size_t i = 0; errors != NULL && i < errors->as.array.len; i++) {
        size_t saved = mgo_codec__enter(&rd, "errors");
        mgo_codec__enter_index(&rd, i);
        mgo_codec__str(&rd, &errors->as.array.items[i], "field", true, 0);
        mgo_codec__str(&rd, &errors->as.array.items[i], "message", true, 0);
        mgo_codec__leave(&rd, saved);
    }
    mgo_err err = mgo_codec__result(&rd);
    mgo_arena_cleanup(&arena);
    return err;
}

static mgo_err validate_as(enum mgo_doc_kind kind, const struct mgo_value *root,
                           struct mgo_arena *arena, struct mgo_problems *problems)
{
    switch (kind) {
    case MGO_DOC_APP_DESCRIPTION: {
        struct mgo_app_description d;
        return mgo_app_description_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_APP_DEPLOYMENT: {
        struct mgo_app_deployment d;
        return mgo_app_deployment_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_DESIRED_STATE: {
        struct mgo_desired_state d;
        return mgo_desired_state_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_DEPLOYMENT_STATUS: {
        struct mgo_deployment_status d;
        return mgo_deployment_status_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_CAPABILITIES: {
        struct mgo_capabilities d;
        return mgo_capabilities_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_PRESENCE: {
        struct mgo_presence d;
        return mgo_presence_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_EVENT: {
        struct mgo_event d;
        return mgo_event_from_value(root, arena, &d, problems);
    }
    case MGO_DOC_PROBLEM_DETAIL:
        return mgo_problem_detail_validate(root, problems);
    case MGO_DOC_UNKNOWN:
        break;
    }
    mgo_problems_add(problems, "$", "not a Margo document: cannot tell its kind from its fields");
    return MGO_ERR_INVALID;
}

mgo_err mgo_doc_validate(const void *data, size_t len, enum mgo_format format,
                         struct mgo_arena *arena, enum mgo_doc_kind *kind_out,
                         struct mgo_value *root_out, struct mgo_problems *problems)
{
    struct mgo_value root;
    *kind_out = MGO_DOC_UNKNOWN;
    mgo_err err = format == MGO_FORMAT_MSGPACK
                      ? mgo_value_from_msgpack(data, len, arena, &root, problems)
                      : mgo_value_from_yaml(data, len, arena, &root, problems);
    if (err != MGO_OK)
        return err;
    *kind_out = mgo_doc_detect(&root);
    if (root_out != NULL)
        *root_out = root;
    return validate_as(*kind_out, &root, arena, problems);
}

mgo_err mgo_doc_load_file(const char *path, struct mgo_arena *arena, enum mgo_doc_kind *kind_out,
                          struct mgo_value *root_out, struct mgo_problems *problems)
{
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_FILE_BYTES);
    *kind_out = MGO_DOC_UNKNOWN;
    mgo_err err = mgo_buf_read_file(&buf, path);
    if (err != MGO_OK) {
        mgo_problems_add(problems, "$", "%s: %s", path,
                         err == MGO_ERR_LIMIT ? "file is larger than MGO_MAX_FILE_BYTES (1 MiB)"
                                              : mgo_strerror(err));
        mgo_buf_cleanup(&buf);
        return err;
    }
    err = mgo_doc_validate(buf.data ? buf.data : (const uint8_t *)"", buf.len, MGO_FORMAT_YAML,
                           arena, kind_out, root_out, problems);
    mgo_buf_cleanup(&buf);
    return err;
}
