/* margo.h - the Margo documents as C structs, and their codecs.
 *
 * Each document has:
 *   mgo_<doc>_from_value()  validate a decoded tree and fill the struct (strings point
 *                           into the tree's arena; extra allocations come from the arena)
 *   mgo_<doc>_to_value()    build the normalised tree (Margo's JSON field names)
 *   mgo_<doc>_decode()      MessagePack bytes -> struct (from_value of from_msgpack)
 *   mgo_<doc>_encode()      struct -> canonical MessagePack bytes
 * plus mgo_doc_load() for YAML/JSON files with kind detection.
 *
 * Validation adds one problem per broken rule, naming the field path and the rule, and
 * returns MGO_ERR_INVALID when any was found (the struct is then unusable).
 *
 * Drift between Margo drafts (SPEC-DIGEST) is accepted on input and normalised on output:
 *   - profile type "helm.v3" -> "helm";
 *   - deployment id at top-level "id" or "metadata.annotations.id" -> both written;
 *   - application id at top-level "id" or "metadata.id" -> top-level "id";
 *   - Compose pointers "ENV.X" -> "X";
 *   - capabilities "roles" + "resources" (older) -> kept, and supportedDeploymentTypes and
 *     cpus derived from them; newer shape written as is.
 *
 * Our additions live under the root key "x-margo-mqtt-extensions" (Margo's extension
 * mechanism): the signature of desired-state and deployment messages, and the journal
 * position (boot, seq) of status messages. See docs/protocol.md. */
#ifndef MGO_MARGO_H
#define MGO_MARGO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mgo/value.h"
#include "mgo/digest.h"

#define MGO_EXT_KEY "x-margo-mqtt-extensions"
/* The signed validity of a desired-state manifest ({issuedAt, expiresAt}; protocol.md §3.2). */
#define MGO_VALIDITY_KEY "x-margo-mqtt-validity"

/* ---- shared enums ------------------------------------------------------------------ */

enum mgo_state {
    MGO_STATE_PENDING = 0,
    MGO_STATE_INSTALLING,
    MGO_STATE_INSTALLED,
    MGO_STATE_FAILED,
    MGO_STATE_REMOVING,
    MGO_STATE_REMOVED,
};
#define MGO_STATE_COUNT 6
const char *mgo_state_name(enum mgo_state s);
mgo_err mgo_state_parse(const char *text, enum mgo_state *out) MGO_MUST_CHECK;
/* Margo precedence for the overall state:
 * failed > removing > installing > pending > removed > installed.
 * Returns the most severe of states[0..n); MGO_STATE_PENDING when n == 0. */
enum mgo_state mgo_state_overall(const enum mgo_state *states, size_t n);

enum mgo_profile_type { MGO_PROFILE_HELM = 0, MGO_PROFILE_COMPOSE, MGO_PROFILE_CUSTOM };
const char *mgo_profile_type_name(enum mgo_profile_type t);

/* Bit sets for enums used in capabilities and requirements. */
enum mgo_arch_bit {
    MGO_ARCH_AMD64 = 1u << 0, /* "amd64" and "x86_64" both map here */
    MGO_ARCH_ARM64 = 1u << 1,
    MGO_ARCH_ARM = 1u << 2,
    MGO_ARCH_RISCV64 = 1u << 3,
    MGO_ARCH_OTHER = 1u << 4,
};
enum mgo_peripheral_type {
    MGO_PERIPH_GPU = 0,
    MGO_PERIPH_DISPLAY,
    MGO_PERIPH_CAMERA,
    MGO_PERIPH_MICROPHONE,
    MGO_PERIPH_SPEAKER,
    MGO_PERIPH_OTHER,
};
enum mgo_interface_type {
    MGO_IFACE_ETHERNET = 0,
    MGO_IFACE_WIFI,
    MGO_IFACE_CELLULAR,
    MGO_IFACE_BLUETOOTH,
    MGO_IFACE_USB,
    MGO_IFACE_CANBUS,
    MGO_IFACE_RS232,
    MGO_IFACE_OTHER,
};
enum mgo_role_bit {
    MGO_ROLE_STANDALONE_CLUSTER = 1u << 0,
    MGO_ROLE_CLUSTER_LEADER = 1u << 1,
    MGO_ROLE_STANDALONE_DEVICE = 1u << 2,
    MGO_ROLE_GATEWAY = 1u << 3,
};
enum mgo_deploy_type_bit {
    MGO_DTYPE_HELM = 1u << 0,
    MGO_DTYPE_COMPOSE = 1u << 1,
    MGO_DTYPE_CUSTOM = 1u << 2
};
enum mgo_runtime_bit { MGO_RUNTIME_OCI = 1u << 0, MGO_RUNTIME_CUSTOM = 1u << 1 };

const char *mgo_peripheral_name(enum mgo_peripheral_type t);
const char *mgo_interface_name(enum mgo_interface_type t);

/* "512Mi", "59Gi" -> bytes. Ki/Mi/Gi always; Ti/Pi/Ei when allow_large (storage).
 * No space, no other units (newest Margo pattern). */
mgo_err mgo_size_parse(const char *text, bool allow_large, uint64_t *bytes) MGO_MUST_CHECK;
/* "8m30s" -> 510 seconds (pattern ^\d+m\d+s$; "5m" and "30s" alone are refused). */
mgo_err mgo_timeout_parse(const char *text, uint32_t *seconds) MGO_MUST_CHECK;
/* UUID 8-4-4-4-12 hex, either case. */
bool mgo_is_uuid(const char *text);
/* ^[-a-z0-9]{1,200}$ */
bool mgo_is_app_id(const char *text);
/* An application version as a label: 1..MGO_MAX_APP_VERSION_LEN bytes, no control character
 * (C0 or DEL), so a monitor can print it as it is. Margo gives versions no pattern. */
bool mgo_is_app_version(const char *text);

/* ---- ApplicationDescription and ApplicationDeployment pieces ------------------------ */

struct mgo_resources { /* the older requiredResources / DeviceCapabilities.resources shape */
    bool has_cpu;
    double cpu_cores;
    unsigned cpu_archs;     /* enum mgo_arch_bit; 0 = any */
    uint64_t memory_bytes;  /* 0 = not given */
    uint64_t storage_bytes; /* 0 = not given */
    struct mgo_peripheral {
        enum mgo_peripheral_type type;
        const char *manufacturer; /* NULL if absent */
        const char *model;        /* NULL if absent */
    } * peripherals;
    size_t peripherals_len;
    enum mgo_interface_type *interfaces;
    size_t interfaces_len;
};

struct mgo_component {
    const char *name;
    /* properties (all NULL when absent) */
    const char *repository; /* helm chart or oci:// compose artifact */
    const char *revision;
    const char *package_location; /* compose (older drafts): URL of file or tar.gz */
    const char *key_location;
    bool wait;                          /* default true */
    const char *timeout;                /* "8m30s" or NULL */
    uint32_t timeout_s;                 /* parsed timeout; 0 = none */
    const struct mgo_value *extensions; /* x-*-extensions map entries, or NULL */
};

struct mgo_profile {
    enum mgo_profile_type type;
    const char *id; /* required in descriptions, absent in deployments */
    const char *description;
    struct mgo_component *components;
    size_t components_len;
    bool has_required_resources;
    struct mgo_resources required_resources;
    /* deviceConstraints as a validated tree (capacityRequirements, eligibilityRules);
     * NULL when absent. Matching walks it (manager). */
    const struct mgo_value *device_constraints;
};

struct mgo_target {
    const char *pointer; /* normalised: "ENV." prefix removed for compose */
    const char **components;
    size_t components_len;
};

struct mgo_parameter {
    const char *name;
    bool has_value;
    struct mgo_value value; /* bool, integer, float or string (arrays are refused: TBD in Margo) */
    struct mgo_target *targets;
    size_t targets_len;
};

/* ---- ApplicationDescription (margo.yaml) ------------------------------------------- */

enum mgo_data_type {
    MGO_DT_STRING = 0,
    MGO_DT_INTEGER,
    MGO_DT_DOUBLE,
    MGO_DT_BOOLEAN,
    MGO_DT_ARRAY_STRING,
    MGO_DT_ARRAY_INTEGER,
    MGO_DT_ARRAY_DOUBLE,
    MGO_DT_ARRAY_BOOLEAN,
};
const char *mgo_data_type_name(enum mgo_data_type t);

struct mgo_schema_rule {
    const char *name;
    enum mgo_data_type data_type;
    bool has_allow_empty;
    bool allow_empty;
    bool has_min_length, has_max_length;
    uint64_t min_length, max_length;
    bool has_min_value, has_max_value; /* integer or double bounds, as double */
    double min_value, max_value;
    bool has_min_precision, has_max_precision;
    uint64_t min_precision, max_precision;
    const char *regex_match; /* POSIX ERE (glibc); compiled once at validation */
    bool multiselect;
    const struct mgo_value *options; /* array, or NULL */
};

struct mgo_setting {
    const char *parameter;
    const char *name;
    const char *description;
    bool immutable;
    const char *schema;
    const struct mgo_schema_rule *rule; /* resolved from schema name */
    /* x-margo-mqtt-extensions.sensitive: the answer is a secret (never shown by the API,
     * margoctl or logs; still published to the device) */
    bool sensitive;
};

struct mgo_section {
    const char *name;
    struct mgo_setting *settings;
    size_t settings_len;
};

struct mgo_app_description {
    const char *api_version;
    const char *id;
    const char *name;
    const char *description;
    const char *version;
    const char *tagline;             /* metadata.catalog.application.tagline or NULL */
    const char *icon;                /* metadata.catalog.application.icon or NULL */
    const struct mgo_value *catalog; /* metadata.catalog as a tree */
    struct mgo_profile *profiles;
    size_t profiles_len;
    struct mgo_parameter *parameters;
    size_t parameters_len;
    struct mgo_section *sections;
    size_t sections_len;
    struct mgo_schema_rule *schemas;
    size_t schemas_len;
};

/* Checks one answer against a rule (dataType, allowEmpty, min/max, length, regexMatch,
 * precision, options). value NULL or MGO_V_NULL means "no answer". Adds problems under
 * field. */
mgo_err mgo_schema_check(const struct mgo_schema_rule *rule, const struct mgo_value *value,
                         const char *field, struct mgo_problems *problems) MGO_MUST_CHECK;

/* ---- ApplicationDeployment ----------------------------------------------------------- */

struct mgo_app_deployment {
    const char *api_version; /* default "application.margo.org/v1alpha1" */
    const char *id;          /* deployment UUID */
    const char *application_id;
    const char *name;       /* metadata.name */
    const char *namespace_; /* metadata.namespace */
    /* metadata.annotations.applicationVersion or NULL (margo-mqtt's own annotation: the
     * description's metadata.version, written by the manager; covered by the digest and the
     * signature, unlike MGO_EXT_KEY; older managers did not write it). */
    const char *application_version;
    const char *device_id;          /* metadata.deviceId or NULL */
    const struct mgo_value *labels; /* metadata.labels map or NULL */
    struct mgo_profile profile;     /* spec.deploymentProfile (no id) */
    struct mgo_parameter *parameters;
    size_t parameters_len;
    const struct mgo_value *ext; /* MGO_EXT_KEY map (signature) or NULL */
};

/* ---- DesiredState manifest ----------------------------------------------------------- */

struct mgo_desired_ref {
    const char *deployment_id;
    const char *digest;
    bool has_size;
    uint64_t size_bytes;
    const char *url; /* optional on MQTT */
};

struct mgo_desired_state {
    uint64_t manifest_version;
    const char *device_id; /* optional: the device this manifest is for (binds a signature) */
    bool has_bundle;       /* false = "bundle": null */
    struct {
        const char *media_type;
        const char *digest;
        bool has_size;
        uint64_t size_bytes;
        const char *url;
    } bundle;
    struct mgo_desired_ref *deployments;
    size_t deployments_len;
    /* MGO_VALIDITY_KEY (protocol.md §3.2): when the manager issued this manifest and when it
     * stops being valid, seconds since the Unix epoch. A root key, so the digest and the
     * signature cover it (unlike MGO_EXT_KEY). */
    bool has_validity;
    uint64_t issued_at;
    uint64_t expires_at;
    const struct mgo_value *ext; /* MGO_EXT_KEY map (signature) or NULL */
};

/* ---- DeploymentStatus ---------------------------------------------------------------- */

struct mgo_error_info {
    const char *code;
    const char *source;
    const char *message;
};

struct mgo_component_status {
    const char *name;
    enum mgo_state state;
    bool has_error;
    struct mgo_error_info error;
};

/* Which application a status is about (MGO_EXT_KEY "app", protocol.md §3.4), copied by the
 * agent from the deployment document so that a monitor can label a status without reading
 * deployments/{u}. */
struct mgo_status_app {
    const char *id;      /* metadata.annotations.applicationId */
    const char *version; /* metadata.annotations.applicationVersion; NULL = the document has none */
    const char *name;    /* metadata.name (the release or project name) */
};

struct mgo_deployment_status {
    const char *api_version; /* default "deployment.margo.org/v1alpha1" */
    const char *deployment_id;
    const char *device_id; /* optional */
    bool has_adopted_manifest_version;
    uint64_t adopted_manifest_version;
    enum mgo_state state;
    bool has_error;
    struct mgo_error_info error;
    struct mgo_component_status *components;
    size_t components_len;
    /* journal position (x-margo-mqtt-extensions): per-boot counter and sequence in it */
    bool has_journal;
    uint64_t boot;
    uint64_t seq;
    /* the application (x-margo-mqtt-extensions.app); only encoded with has_journal (the
     * extension map then holds both), otherwise encoding fails with MGO_ERR_INVALID */
    bool has_app;
    struct mgo_status_app app;
};

/* ---- DeviceCapabilities ---------------------------------------------------------------- */

struct mgo_cpu_set {
    double cores;
    unsigned archs; /* enum mgo_arch_bit, 0 = not given */
};

struct mgo_capabilities {
    const char *api_version;
    const char *id;
    const char *vendor;
    const char *model_number;
    const char *serial_number;
    unsigned roles;           /* older shape; 0 when absent */
    bool hosting;             /* false for a see-thru gateway that hosts nothing */
    struct mgo_cpu_set *cpus; /* newer cpus[], or the older single resources.cpu */
    size_t cpus_len;
    uint64_t memory_bytes;
    uint64_t storage_bytes;
    struct mgo_peripheral *peripherals;
    size_t peripherals_len;
    enum mgo_interface_type *interfaces;
    size_t interfaces_len;
    bool otel_collector;
    unsigned runtimes;                  /* enum mgo_runtime_bit */
    unsigned deployment_types;          /* enum mgo_deploy_type_bit (derived from roles if older) */
    const struct mgo_value *labels;     /* map or NULL */
    const struct mgo_value *properties; /* the whole properties map, for JSON Pointer selectors */
};

/* ---- presence (margo-mqtt's own document on .../state) ------------------------------- */

struct mgo_presence {
    const char *device_id;
    bool online;
    uint64_t boot;             /* per-boot counter of the agent; grows on every start */
    uint64_t timestamp_ms;     /* 0 = not given (the last will carries none) */
    const char *agent_version; /* optional */
};

/* ---- events (margo-mqtt's own document on .../events) -------------------------------- */

struct mgo_event {
    const char *device_id;
    const char *type;     /* e.g. "manifest-refused", "digest-mismatch", "signature-invalid" */
    const char *severity; /* "info" | "warning" | "error" */
    const char *message;
    const char *deployment_id; /* optional */
    bool has_manifest_version;
    uint64_t manifest_version;
    uint64_t timestamp_ms;
};

/* ---- receipt (margo-mqtt's own document on .../receipt, docs/protocol.md §6.3) -------- */

#define MGO_RECEIPT_EPOCH_MAX 64u

/* The manager's word to one device: every status of its journal up to (boot, seq) is
 * stored. epoch names the manager's run (a new one at each start): a receipt with an epoch
 * the agent has not seen asks it to replay what it delivered beyond (boot, seq). (0, 0):
 * nothing stored yet. */
struct mgo_receipt {
    const char *device_id;
    const char *epoch; /* 16..MGO_RECEIPT_EPOCH_MAX of [0-9a-f] */
    uint64_t boot;
    uint64_t seq;
};

/* Whether journal position (a_boot, a_seq) comes before (b_boot, b_seq): boot first, then seq
 * (docs/protocol.md §5.3). The one ordering of positions, for the agent's journal and the
 * manager's per-device positions alike. */
static inline bool mgo_pos_before(uint64_t a_boot, uint64_t a_seq, uint64_t b_boot, uint64_t b_seq)
{
    return a_boot < b_boot || (a_boot == b_boot && a_seq < b_seq);
}

/* ---- codecs ----------------------------------------------------------------------- */

enum mgo_doc_kind {
    MGO_DOC_UNKNOWN = 0,
    MGO_DOC_APP_DESCRIPTION,
    MGO_DOC_APP_DEPLOYMENT,
    MGO_DOC_DESIRED_STATE,
    MGO_DOC_DEPLOYMENT_STATUS,
    MGO_DOC_CAPABILITIES,
    MGO_DOC_PRESENCE,
    MGO_DOC_EVENT,
    MGO_DOC_PROBLEM_DETAIL,
};
const char *mgo_doc_kind_name(enum mgo_doc_kind k);
/* Guesses the kind from "kind" or from the fields present (manifestVersion, properties,
 * deploymentId + components, type + title, ...). */
enum mgo_doc_kind mgo_doc_detect(const struct mgo_value *root);

#define MGO_DECLARE_CODEC(doc, type)                                                               \
    mgo_err mgo_##doc##_from_value(const struct mgo_value *root, struct mgo_arena *arena,          \
                                   struct type *out, struct mgo_problems *problems)                \
        MGO_MUST_CHECK;                                                                            \
    mgo_err mgo_##doc##_to_value(const struct type *in, struct mgo_arena *arena,                   \
                                 struct mgo_value *out) MGO_MUST_CHECK;                            \
    mgo_err mgo_##doc##_decode(const void *data, size_t len, struct mgo_arena *arena,              \
                               struct type *out, struct mgo_problems *problems) MGO_MUST_CHECK;    \
    mgo_err mgo_##doc##_encode(const struct type *in, struct mgo_buf *buf) MGO_MUST_CHECK;

MGO_DECLARE_CODEC(app_description, mgo_app_description)
MGO_DECLARE_CODEC(app_deployment, mgo_app_deployment)

/* The kind-less package form (`apiVersion: v1` without `kind`, written by the Margo sandbox)
 * in the usual form: *out is root with `kind: ApplicationDescription` added (a new map in
 * arena); any other document is returned as it is (*out = *root). Nothing else changes. */
mgo_err mgo_app_description_normalise(const struct mgo_value *root, struct mgo_arena *arena,
                                      struct mgo_value *out) MGO_MUST_CHECK;
MGO_DECLARE_CODEC(desired_state, mgo_desired_state)
MGO_DECLARE_CODEC(deployment_status, mgo_deployment_status)
MGO_DECLARE_CODEC(capabilities, mgo_capabilities)
MGO_DECLARE_CODEC(presence, mgo_presence)
MGO_DECLARE_CODEC(event, mgo_event)
MGO_DECLARE_CODEC(receipt, mgo_receipt)

/* Validates an RFC 9457 problem body (type, title, status required). */
mgo_err mgo_problem_detail_validate(const struct mgo_value *root,
                                    struct mgo_problems *problems) MGO_MUST_CHECK;

/* Content digest of a signed document (desired state, deployment): sha256 over the
 * canonical MessagePack of the tree with the root key MGO_EXT_KEY removed. This is the
 * digest a manifest lists for a deployment, and what a signature covers. */
mgo_err mgo_doc_digest(const struct mgo_value *root, char out[MGO_DIGEST_STR_SIZE]) MGO_MUST_CHECK;

/* Reads a YAML or JSON file (at most MGO_MAX_FILE_BYTES), detects its kind and validates
 * it as that kind. *kind_out is set even when validation fails (UNKNOWN if undetectable).
 * root_out (optional) receives the tree. */
mgo_err mgo_doc_load_file(const char *path, struct mgo_arena *arena, enum mgo_doc_kind *kind_out,
                          struct mgo_value *root_out, struct mgo_problems *problems) MGO_MUST_CHECK;
/* Same for bytes already in memory (YAML/JSON, or MessagePack when format says so). */
mgo_err mgo_doc_validate(const void *data, size_t len, enum mgo_format format,
                         struct mgo_arena *arena, enum mgo_doc_kind *kind_out,
                         struct mgo_value *root_out, struct mgo_problems *problems) MGO_MUST_CHECK;

#endif
