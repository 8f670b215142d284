/* test_codec.c - the Margo documents: the specification's own valid and invalid examples,
 * round trips YAML -> struct -> MessagePack -> struct -> JSON, drift normalisation,
 * determinism, status precedence, configuration answers. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/margo.h"
#include "mgo_test.h"

/* ---- helpers -------------------------------------------------------------------------- */

static char *json_of(const struct mgo_value *v)
{
    struct mgo_buf b;
    mgo_buf_init(&b, 4u << 20);
    CU_ASSERT_FATAL(mgo_value_to_json(v, false, &b) == MGO_OK);
    return (char *)mgo_buf_take(&b, NULL);
}

static mgo_err load(const char *rel, struct mgo_arena *arena, enum mgo_doc_kind *kind,
                    struct mgo_value *root, struct mgo_problems *p)
{
    mgo_problems_init(p);
    return mgo_doc_load_file(mgo_test_path(rel), arena, kind, root, p);
}

static int for_each_file(const char *reldir, void (*fn)(const char *rel))
{
    DIR *d = opendir(mgo_test_path(reldir));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int n = 0;
    struct dirent *e;
    char names[64][256];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || n >= 64)
            continue;
        if (snprintf(names[n], sizeof names[0], "%s/%s", reldir, e->d_name) < (int)sizeof names[0])
            n++;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        fn(names[i]);
    return n;
}

/* ---- the specification's examples --------------------------------------------------- */

static void accept_one(const char *rel)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    struct mgo_value root;
    mgo_err err = load(rel, &arena, &kind, &root, &p);
    if (err != MGO_OK)
        fprintf(stderr, "%s refused: %s: %s\n", rel, p.count ? p.items[0].field : "?",
                p.count ? p.items[0].rule : "?");
    CU_ASSERT_EQUAL(err, MGO_OK);
    CU_ASSERT_NOT_EQUAL(kind, MGO_DOC_UNKNOWN);
    mgo_arena_cleanup(&arena);
}

static void test_valid_examples_accepted(void)
{
    CU_ASSERT(for_each_file("tests/data/margo/valid", accept_one) >= 10);
}

struct expect {
    const char *file;
    enum mgo_doc_kind kind;
    const char *field; /* the field the first problem must name */
};

static const struct expect invalid_expect[] = {
    {"ApplicationDeployment-001.yaml", MGO_DOC_APP_DEPLOYMENT, "kind"},
    {"ApplicationDeployment-002.yaml", MGO_DOC_APP_DEPLOYMENT,
     "metadata.annotations.applicationId"},
    {"ApplicationDeployment-003.yaml", MGO_DOC_APP_DEPLOYMENT,
     "metadata.annotations.applicationId"},
    {"ApplicationDeployment-004.yaml", MGO_DOC_APP_DEPLOYMENT, "id"},
    {"ApplicationDescription-001.yaml", MGO_DOC_APP_DESCRIPTION, "kind"},
    {"ApplicationDescription-002.yaml", MGO_DOC_APP_DESCRIPTION, "id"},
    {"ApplicationDescription-003.yaml", MGO_DOC_APP_DESCRIPTION, "deploymentProfiles[0].type"},
    {"DeploymentStatusManifest-001.json", MGO_DOC_DEPLOYMENT_STATUS, "kind"},
    {"DeploymentStatusManifest-002.json", MGO_DOC_DEPLOYMENT_STATUS, "status.state"},
    {"DeploymentStatusManifest-003.json", MGO_DOC_DEPLOYMENT_STATUS, "deploymentId"},
    {"DesiredStateManifest-001.json", MGO_DOC_DESIRED_STATE, "manifestVersion"},
    {"DesiredStateManifest-002.json", MGO_DOC_DESIRED_STATE, "bundle.mediaType"},
    {"DesiredStateManifest-003.json", MGO_DOC_DESIRED_STATE, "bundle.digest"},
    {"DesiredStateManifest-004.json", MGO_DOC_DESIRED_STATE, "bundle"},
    {"DeviceCapabilitiesManifest-001.json", MGO_DOC_CAPABILITIES, "properties.roles[0]"},
    {"DeviceCapabilitiesManifest-002.json", MGO_DOC_CAPABILITIES, "properties.vendor"},
    {"DeviceCapabilitiesManifest-003.json", MGO_DOC_CAPABILITIES,
     "properties.resources.cpu.architectures[0]"},
    {"DeviceCapabilitiesManifest-004.json", MGO_DOC_CAPABILITIES, "properties.resources.memory"},
    {"ProblemDetail-001.yaml", MGO_DOC_PROBLEM_DETAIL, "status"},
};

static void test_invalid_examples_refused_naming_the_field(void)
{
    size_t n = sizeof invalid_expect / sizeof invalid_expect[0];
    for (size_t i = 0; i < n; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/data/margo/invalid/%s", invalid_expect[i].file);
        struct mgo_arena arena;
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_problems p;
        enum mgo_doc_kind kind;
        mgo_err err = load(rel, &arena, &kind, NULL, &p);
        CU_ASSERT_EQUAL(err, MGO_ERR_INVALID);
        CU_ASSERT_EQUAL(kind, invalid_expect[i].kind);
        CU_ASSERT_FATAL(p.count >= 1);
        if (strcmp(p.items[0].field, invalid_expect[i].field) != 0)
            fprintf(stderr, "%s: first problem names %s, expected %s\n", rel, p.items[0].field,
                    invalid_expect[i].field);
        CU_ASSERT_STRING_EQUAL(p.items[0].field, invalid_expect[i].field);
        CU_ASSERT(strlen(p.items[0].rule) > 5);
        mgo_arena_cleanup(&arena);
    }
}

static void test_superseded_space_sizes_refused(void)
{
    /* the newest schema wins: "1 Gi" (earliest drafts) is refused */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    CU_ASSERT_EQUAL(load("tests/data/margo/superseded/early-schema/valid/"
                         "DeviceCapabilitiesManifest-002.json",
                         &arena, &kind, NULL, &p),
                    MGO_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, "properties.resources.memory");
    mgo_arena_cleanup(&arena);
}

/* ---- round trips ---------------------------------------------------------------------- */

/* struct -> canonical msgpack -> struct -> tree must give the same JSON, twice the same bytes */
#define ROUND_TRIP(doc, type, root, arena)                                                         \
    do {                                                                                           \
        struct type a, b;                                                                          \
        struct mgo_problems rp;                                                                    \
        mgo_problems_init(&rp);                                                                    \
        CU_ASSERT_EQUAL_FATAL(mgo_##doc##_from_value(root, arena, &a, &rp), MGO_OK);               \
        struct mgo_buf m1, m2;                                                                     \
        mgo_buf_init(&m1, MGO_MAX_MESSAGE_BYTES);                                                  \
        mgo_buf_init(&m2, MGO_MAX_MESSAGE_BYTES);                                                  \
        CU_ASSERT_EQUAL_FATAL(mgo_##doc##_encode(&a, &m1), MGO_OK);                                \
        CU_ASSERT_EQUAL_FATAL(mgo_##doc##_encode(&a, &m2), MGO_OK);                                \
        CU_ASSERT_EQUAL(m1.len, m2.len);                                                           \
        CU_ASSERT(memcmp(m1.data, m2.data, m1.len) == 0);                                          \
        CU_ASSERT_EQUAL_FATAL(mgo_##doc##_decode(m1.data, m1.len, arena, &b, &rp), MGO_OK);        \
        struct mgo_value va, vb;                                                                   \
        CU_ASSERT_EQUAL_FATAL(mgo_##doc##_to_value(&a, arena, &va), MGO_OK);                       \
        CU_ASSERT_EQUAL_FATAL(mgo_##doc##_to_value(&b, arena, &vb), MGO_OK);                       \
        char *ja = json_of(&va), *jb = json_of(&vb);                                               \
        CU_ASSERT_STRING_EQUAL(ja, jb);                                                            \
        struct mgo_buf m3;                                                                         \
        mgo_buf_init(&m3, MGO_MAX_MESSAGE_BYTES);                                                  \
        CU_ASSERT_EQUAL(mgo_##doc##_encode(&b, &m3), MGO_OK);                                      \
        CU_ASSERT(m3.len == m1.len && memcmp(m3.data, m1.data, m1.len) == 0);                      \
        free(ja);                                                                                  \
        free(jb);                                                                                  \
        mgo_buf_cleanup(&m1);                                                                      \
        mgo_buf_cleanup(&m2);                                                                      \
        mgo_buf_cleanup(&m3);                                                                      \
    } while (0)

static void round_trip_one(const char *rel)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    struct mgo_value root;
    CU_ASSERT_EQUAL_FATAL(load(rel, &arena, &kind, &root, &p), MGO_OK);
    switch (kind) {
    case MGO_DOC_APP_DESCRIPTION:
        ROUND_TRIP(app_description, mgo_app_description, &root, &arena);
        break;
    case MGO_DOC_APP_DEPLOYMENT:
        ROUND_TRIP(app_deployment, mgo_app_deployment, &root, &arena);
        break;
    case MGO_DOC_DESIRED_STATE:
        ROUND_TRIP(desired_state, mgo_desired_state, &root, &arena);
        break;
    case MGO_DOC_DEPLOYMENT_STATUS:
        ROUND_TRIP(deployment_status, mgo_deployment_status, &root, &arena);
        break;
    case MGO_DOC_CAPABILITIES:
        ROUND_TRIP(capabilities, mgo_capabilities, &root, &arena);
        break;
    default:
        break;
    }
    mgo_arena_cleanup(&arena);
}

static void test_round_trip_every_valid_example(void)
{
    for_each_file("tests/data/margo/valid", round_trip_one);
}

/* A document written the way Margo's JSON is written reads back field for field. */
static void test_round_trip_preserves_margo_fields(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    struct mgo_value root;
    CU_ASSERT_EQUAL_FATAL(
        load("tests/data/margo/valid/DesiredStateManifest-001.json", &arena, &kind, &root, &p),
        MGO_OK);
    struct mgo_desired_state d;
    CU_ASSERT_EQUAL_FATAL(mgo_desired_state_from_value(&root, &arena, &d, &p), MGO_OK);
    struct mgo_value back;
    CU_ASSERT_EQUAL_FATAL(mgo_desired_state_to_value(&d, &arena, &back), MGO_OK);
    /* no field added, none lost: the normalised tree equals the input tree */
    CU_ASSERT(mgo_value_equal(&root, &back));
    CU_ASSERT_EQUAL(d.manifest_version, 101);
    CU_ASSERT_EQUAL(d.deployments_len, 1);

    CU_ASSERT_EQUAL_FATAL(
        load("tests/data/margo/valid/DeploymentStatusManifest-001.json", &arena, &kind, &root, &p),
        MGO_OK);
    struct mgo_deployment_status s;
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_from_value(&root, &arena, &s, &p), MGO_OK);
    CU_ASSERT_EQUAL(s.components_len, 2);
    CU_ASSERT_EQUAL(s.components[1].state, MGO_STATE_FAILED);
    CU_ASSERT_STRING_EQUAL(s.components[1].error.code, "ERR_IMAGE_PULL");
    mgo_arena_cleanup(&arena);
}

/* ---- drift normalisation ---------------------------------------------------------------- */

static void test_drift_normalised_on_output(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    struct mgo_value root, out;

    /* helm.v3 -> helm; annotations.id -> top-level id and annotations.id */
    CU_ASSERT_EQUAL_FATAL(
        load("tests/data/margo/valid/ApplicationDeployment-001.yaml", &arena, &kind, &root, &p),
        MGO_OK);
    struct mgo_app_deployment dep;
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_OK);
    CU_ASSERT_EQUAL(dep.profile.type, MGO_PROFILE_HELM);
    CU_ASSERT_STRING_EQUAL(dep.id, "a3e2f5dc-912e-494f-8395-52cf3769bc06");
    CU_ASSERT_EQUAL(dep.profile.components[0].timeout_s, 510);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &out), MGO_OK);
    const struct mgo_value *t = mgo_value_pointer(&out, "/spec/deploymentProfile/type");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t->as.str.ptr, "helm");
    CU_ASSERT_STRING_EQUAL(mgo_value_pointer(&out, "/id")->as.str.ptr, dep.id);
    CU_ASSERT_STRING_EQUAL(mgo_value_pointer(&out, "/metadata/annotations/id")->as.str.ptr, dep.id);

    /* ENV.X compose pointers -> X */
    CU_ASSERT_EQUAL_FATAL(
        load("tests/data/margo/valid/ApplicationDeployment-compose.yaml", &arena, &kind, &root, &p),
        MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_OK);
    CU_ASSERT_EQUAL(dep.profile.type, MGO_PROFILE_COMPOSE);
    bool saw = false;
    for (size_t i = 0; i < dep.parameters_len; i++) {
        if (strcmp(dep.parameters[i].name, "idpName") == 0) {
            CU_ASSERT_STRING_EQUAL(dep.parameters[i].targets[0].pointer, "IDP_NAME");
            saw = true;
        }
    }
    CU_ASSERT(saw);

    /* metadata.id (LinkML) -> top-level id */
    CU_ASSERT_EQUAL_FATAL(load("tests/data/margo/valid/ApplicationDescription-helm_only.yaml",
                               &arena, &kind, &root, &p),
                          MGO_OK);
    struct mgo_app_description desc;
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_from_value(&root, &arena, &desc, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_to_value(&desc, &arena, &out), MGO_OK);
    CU_ASSERT_PTR_NOT_NULL(mgo_value_get(&out, "id"));
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&out, "/metadata/id"));

    /* older capabilities (roles) -> supportedDeploymentTypes, cpus */
    CU_ASSERT_EQUAL_FATAL(load("tests/data/margo/valid/DeviceCapabilitiesManifest-001.json", &arena,
                               &kind, &root, &p),
                          MGO_OK);
    struct mgo_capabilities caps;
    CU_ASSERT_EQUAL_FATAL(mgo_capabilities_from_value(&root, &arena, &caps, &p), MGO_OK);
    CU_ASSERT_EQUAL(caps.deployment_types, MGO_DTYPE_HELM);
    CU_ASSERT_EQUAL(caps.cpus_len, 1);
    CU_ASSERT_EQUAL(caps.cpus[0].archs, MGO_ARCH_AMD64); /* x86_64 */
    CU_ASSERT_EQUAL(caps.memory_bytes, 59ull << 30);
    CU_ASSERT_EQUAL_FATAL(mgo_capabilities_to_value(&caps, &arena, &out), MGO_OK);
    const struct mgo_value *types =
        mgo_value_pointer(&out, "/properties/supportedDeploymentTypes/0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(types);
    CU_ASSERT_STRING_EQUAL(types->as.str.ptr, "helm");
    CU_ASSERT_STRING_EQUAL(mgo_value_pointer(&out, "/properties/memory")->as.str.ptr, "59Gi");
    mgo_arena_cleanup(&arena);
}

static void test_newer_capabilities_shape(void)
{
    static const char doc[] =
        "{\"properties\": {\"id\": \"dev-1\", \"vendor\": \"v\", \"modelNumber\": \"m\","
        " \"serialNumber\": \"s\", \"cpus\": [{\"cores\": 4, \"architecture\": \"arm64\"},"
        " {\"cores\": 2}], \"memory\": \"2048Mi\", \"storage\": \"32Gi\", \"peripherals\": [],"
        " \"interfaces\": [{\"type\": \"wifi\"}], \"otelCollector\": true,"
        " \"supportedRuntimes\": [\"oci\"], \"supportedDeploymentTypes\": [\"compose\"]},"
        " \"labels\": {\"example.com/site\": \"berlin\", \"tier\": 2}}";
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value root;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(doc, sizeof doc - 1, &arena, &root, &p), MGO_OK);
    struct mgo_capabilities c;
    CU_ASSERT_EQUAL_FATAL(mgo_capabilities_from_value(&root, &arena, &c, &p), MGO_OK);
    CU_ASSERT(c.hosting);
    CU_ASSERT_EQUAL(c.cpus_len, 2);
    CU_ASSERT_EQUAL(c.cpus[0].archs, MGO_ARCH_ARM64);
    CU_ASSERT_EQUAL(c.memory_bytes, 2048ull << 20);
    CU_ASSERT_EQUAL(c.deployment_types, MGO_DTYPE_COMPOSE);
    CU_ASSERT_EQUAL(c.interfaces[0], MGO_IFACE_WIFI);
    CU_ASSERT_PTR_NOT_NULL(mgo_value_get(c.labels, "tier"));
    ROUND_TRIP(capabilities, mgo_capabilities, &root, &arena);
    /* a hosting device without memory is refused, naming the field */
    static const char bad[] =
        "{\"properties\": {\"id\": \"dev-1\", \"vendor\": \"v\", \"modelNumber\": \"m\","
        " \"serialNumber\": \"s\", \"cpus\": [{\"cores\": 4}], \"storage\": \"32Gi\","
        " \"otelCollector\": true, \"supportedRuntimes\": [\"oci\"],"
        " \"supportedDeploymentTypes\": [\"compose\", \"docker\"]}}";
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(bad, sizeof bad - 1, &arena, &root, &p), MGO_OK);
    CU_ASSERT_EQUAL(mgo_capabilities_from_value(&root, &arena, &c, &p), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(p.count, 2);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, "properties.supportedDeploymentTypes[1]");
    CU_ASSERT_STRING_EQUAL(p.items[1].field, "properties.memory");
    mgo_arena_cleanup(&arena);
}

/* ---- digests and signatures' place ------------------------------------------------------ */

static void test_doc_digest_ignores_extension_and_is_stable(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    struct mgo_value root, out, signed_out;
    CU_ASSERT_EQUAL_FATAL(
        load("tests/data/margo/valid/ApplicationDeployment-helm.yaml", &arena, &kind, &root, &p),
        MGO_OK);
    struct mgo_app_deployment dep;
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &out), MGO_OK);
    char d1[MGO_DIGEST_STR_SIZE], d2[MGO_DIGEST_STR_SIZE], d3[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_EQUAL(mgo_doc_digest(&out, d1), MGO_OK);
    CU_ASSERT(mgo_digest_is_sha256(d1));

    /* adding the signature extension does not change the digest */
    struct mgo_map_builder sig, ext;
    struct mgo_value sig_v, ext_v, bin = {.kind = MGO_V_BIN};
    bin.as.str.ptr = "\x30\x45\x02";
    bin.as.str.len = 3;
    mgo_map_builder_init(&sig, &arena);
    mgo_map_put_str(&sig, "alg", "ES256");
    mgo_map_put(&sig, "value", &bin);
    CU_ASSERT_EQUAL_FATAL(mgo_map_builder_finish(&sig, &sig_v), MGO_OK);
    mgo_map_builder_init(&ext, &arena);
    mgo_map_put(&ext, "signature", &sig_v);
    CU_ASSERT_EQUAL_FATAL(mgo_map_builder_finish(&ext, &ext_v), MGO_OK);
    dep.ext = &ext_v;
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &signed_out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_doc_digest(&signed_out, d2), MGO_OK);
    CU_ASSERT_STRING_EQUAL(d1, d2);

    /* the signature survives a MessagePack round trip as binary */
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_msgpack(&signed_out, &m), MGO_OK);
    struct mgo_app_deployment back;
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_decode(m.data, m.len, &arena, &back, &p), MGO_OK);
    const struct mgo_value *v = mgo_value_pointer(back.ext, "/signature/value");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->kind, MGO_V_BIN);
    CU_ASSERT_EQUAL(v->as.str.len, 3);

    /* any change of content changes the digest */
    dep.ext = NULL;
    dep.namespace_ = "other";
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_doc_digest(&out, d3), MGO_OK);
    CU_ASSERT_STRING_NOT_EQUAL(d1, d3);
    mgo_buf_cleanup(&m);
    mgo_arena_cleanup(&arena);
}

static void test_digest_format(void)
{
    char d[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_EQUAL(mgo_digest_sha256("abc", 3, d), MGO_OK);
    CU_ASSERT_STRING_EQUAL(
        d, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CU_ASSERT(mgo_digest_is_sha256(d));
    CU_ASSERT_FALSE(mgo_digest_is_sha256(
        "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    CU_ASSERT_FALSE(mgo_digest_is_sha256("sha256:abc"));
    CU_ASSERT(mgo_digest_is_wellformed("sha512:00ff"));
    CU_ASSERT_FALSE(mgo_digest_is_wellformed("invalid-digest"));
    CU_ASSERT_FALSE(mgo_digest_is_wellformed(":00"));
    CU_ASSERT(mgo_digest_equal(d, d));
    CU_ASSERT_FALSE(mgo_digest_equal(d, "sha256:00"));
}

/* ---- status ------------------------------------------------------------------------------ */

static void test_status_precedence(void)
{
    enum mgo_state a[] = {MGO_STATE_INSTALLED, MGO_STATE_FAILED, MGO_STATE_REMOVING};
    CU_ASSERT_EQUAL(mgo_state_overall(a, 3), MGO_STATE_FAILED);
    enum mgo_state b[] = {MGO_STATE_INSTALLED, MGO_STATE_PENDING, MGO_STATE_INSTALLING};
    CU_ASSERT_EQUAL(mgo_state_overall(b, 3), MGO_STATE_INSTALLING);
    enum mgo_state c[] = {MGO_STATE_REMOVED, MGO_STATE_INSTALLED};
    CU_ASSERT_EQUAL(mgo_state_overall(c, 2), MGO_STATE_REMOVED);
    enum mgo_state d[] = {MGO_STATE_REMOVED, MGO_STATE_PENDING};
    CU_ASSERT_EQUAL(mgo_state_overall(d, 2), MGO_STATE_PENDING);
    enum mgo_state e[] = {MGO_STATE_INSTALLING, MGO_STATE_REMOVING};
    CU_ASSERT_EQUAL(mgo_state_overall(e, 2), MGO_STATE_REMOVING);
    enum mgo_state f[] = {MGO_STATE_INSTALLED, MGO_STATE_INSTALLED};
    CU_ASSERT_EQUAL(mgo_state_overall(f, 2), MGO_STATE_INSTALLED);
    CU_ASSERT_EQUAL(mgo_state_overall(NULL, 0), MGO_STATE_PENDING);
    enum mgo_state s;
    CU_ASSERT_EQUAL(mgo_state_parse("removing", &s), MGO_OK);
    CU_ASSERT_EQUAL(s, MGO_STATE_REMOVING);
    CU_ASSERT_EQUAL(mgo_state_parse("running", &s), MGO_ERR_INVALID);
}

static void test_status_journal_extension(void)
{
    struct mgo_component_status comps[2] = {
        {.name = "web", .state = MGO_STATE_INSTALLED},
        {.name = "db",
         .state = MGO_STATE_FAILED,
         .has_error = true,
         .error = {.code = "ERR_IMAGE_PULL", .source = "db", .message = "pull access denied"}},
    };
    struct mgo_deployment_status s = {
        .deployment_id = "a3e2f5dc-912e-494f-8395-52cf3769bc06",
        .device_id = "dev-1",
        .has_adopted_manifest_version = true,
        .adopted_manifest_version = 7,
        .state = MGO_STATE_FAILED,
        .components = comps,
        .components_len = 2,
        .has_journal = true,
        .boot = 3,
        .seq = 42,
    };
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_encode(&s, &m), MGO_OK);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_deployment_status b;
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_decode(m.data, m.len, &arena, &b, &p), MGO_OK);
    CU_ASSERT(b.has_journal);
    CU_ASSERT_EQUAL(b.boot, 3);
    CU_ASSERT_EQUAL(b.seq, 42);
    CU_ASSERT_EQUAL(b.adopted_manifest_version, 7);
    CU_ASSERT_STRING_EQUAL(b.components[1].error.message, "pull access denied");
    mgo_buf_cleanup(&m);
    mgo_arena_cleanup(&arena);
}

/* A status (YAML) whose x-margo-mqtt-extensions.app holds app_yaml (flow map or scalar). */
static mgo_err status_with_app(const char *app_yaml, struct mgo_arena *arena,
                               struct mgo_deployment_status *out, struct mgo_problems *p)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "deploymentId: a3e2f5dc-912e-494f-8395-52cf3769bc06\n"
             "status: {state: installed}\n"
             "components: [{name: web, state: installed}]\n"
             "x-margo-mqtt-extensions: {boot: 1, seq: 2, app: %s}\n",
             app_yaml);
    mgo_problems_init(p);
    struct mgo_value root;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), arena, &root, p), MGO_OK);
    return mgo_deployment_status_from_value(&root, arena, out, p);
}

static void expect_app_refused(const char *app_yaml, const char *field)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    struct mgo_deployment_status s;
    CU_ASSERT_EQUAL(status_with_app(app_yaml, &arena, &s, &p), MGO_ERR_INVALID);
    CU_ASSERT_FATAL(p.count >= 1);
    if (strcmp(p.items[0].field, field) != 0)
        fprintf(stderr, "app %s: first problem names %s (%s), expected %s\n", app_yaml,
                p.items[0].field, p.items[0].rule, field);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, field);
    CU_ASSERT(strlen(p.items[0].rule) > 5);
    mgo_arena_cleanup(&arena);
}

/* x-margo-mqtt-extensions.app {id, version, name}: round trip, version optional, the rules
 * and bounds of the deployment fields it is copied from. */
static void test_status_app_extension(void)
{
    struct mgo_component_status comp = {.name = "web", .state = MGO_STATE_INSTALLED};
    struct mgo_deployment_status s = {
        .deployment_id = "a3e2f5dc-912e-494f-8395-52cf3769bc06",
        .device_id = "dev-1",
        .state = MGO_STATE_INSTALLED,
        .components = &comp,
        .components_len = 1,
        .has_journal = true,
        .boot = 3,
        .seq = 42,
        .has_app = true,
        .app = {.id = "hello-world", .version = "1.2.1", .name = "hello-world-a3e2f5dc"},
    };
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_encode(&s, &m), MGO_OK);
    struct mgo_value tree;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(m.data, m.len, &arena, &tree, &p), MGO_OK);
    char *json = json_of(mgo_value_pointer(&tree, "/x-margo-mqtt-extensions"));
    CU_ASSERT_STRING_EQUAL(json,
                           "{\"app\":{\"id\":\"hello-world\",\"name\":\"hello-world-a3e2f5dc\","
                           "\"version\":\"1.2.1\"},\"boot\":3,\"seq\":42}");
    free(json);
    struct mgo_deployment_status b;
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_decode(m.data, m.len, &arena, &b, &p), MGO_OK);
    CU_ASSERT(b.has_app);
    CU_ASSERT(b.has_journal);
    CU_ASSERT_STRING_EQUAL(b.app.id, "hello-world");
    CU_ASSERT_STRING_EQUAL(b.app.version, "1.2.1");
    CU_ASSERT_STRING_EQUAL(b.app.name, "hello-world-a3e2f5dc");

    /* a document from an older manager has no version: the key is left out */
    s.app.version = NULL;
    m.len = 0;
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_encode(&s, &m), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(m.data, m.len, &arena, &tree, &p), MGO_OK);
    CU_ASSERT_PTR_NOT_NULL(mgo_value_pointer(&tree, "/x-margo-mqtt-extensions/app/name"));
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&tree, "/x-margo-mqtt-extensions/app/version"));
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_decode(m.data, m.len, &arena, &b, &p), MGO_OK);
    CU_ASSERT(b.has_app);
    CU_ASSERT_PTR_NULL(b.app.version);

    /* no app (the document was unusable): no key, has_app false */
    s.has_app = false;
    m.len = 0;
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_encode(&s, &m), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_decode(m.data, m.len, &arena, &b, &p), MGO_OK);
    CU_ASSERT_FALSE(b.has_app);
    CU_ASSERT(b.has_journal);
    /* the app rides in the journal extension: not without a position */
    s.has_app = true;
    s.has_journal = false;
    m.len = 0;
    CU_ASSERT_EQUAL(mgo_deployment_status_encode(&s, &m), MGO_ERR_INVALID);
    mgo_buf_cleanup(&m);

    /* bounds: version 128 bytes and name 253 bytes pass, one more does not */
    char big[600];
    char version[MGO_MAX_APP_VERSION_LEN + 2], name[MGO_MAX_NAME_LEN + 2];
    memset(version, 'v', sizeof version);
    memset(name, 'n', sizeof name);
    version[MGO_MAX_APP_VERSION_LEN] = name[MGO_MAX_NAME_LEN] = '\0';
    snprintf(big, sizeof big, "{id: a, version: \"%s\", name: %s}", version, name);
    CU_ASSERT_EQUAL(status_with_app(big, &arena, &b, &p), MGO_OK);
    CU_ASSERT_EQUAL(strlen(b.app.version), MGO_MAX_APP_VERSION_LEN);
    CU_ASSERT_EQUAL(strlen(b.app.name), MGO_MAX_NAME_LEN);
    version[MGO_MAX_APP_VERSION_LEN] = 'v';
    version[MGO_MAX_APP_VERSION_LEN + 1] = '\0';
    snprintf(big, sizeof big, "{id: a, version: \"%s\", name: x}", version);
    expect_app_refused(big, "x-margo-mqtt-extensions.app.version");
    name[MGO_MAX_NAME_LEN] = 'n';
    name[MGO_MAX_NAME_LEN + 1] = '\0';
    snprintf(big, sizeof big, "{id: a, name: %s}", name);
    expect_app_refused(big, "x-margo-mqtt-extensions.app.name");
    mgo_arena_cleanup(&arena);

    /* refusals name the field */
    expect_app_refused("{name: x}", "x-margo-mqtt-extensions.app.id");
    expect_app_refused("{id: Hello_World, name: x}", "x-margo-mqtt-extensions.app.id");
    expect_app_refused("{id: a}", "x-margo-mqtt-extensions.app.name");
    expect_app_refused("{id: a, name: \"\"}", "x-margo-mqtt-extensions.app.name");
    expect_app_refused("{id: a, name: x, version: \"\"}", "x-margo-mqtt-extensions.app.version");
    expect_app_refused("{id: a, name: x, version: \"1.0\\t\"}",
                       "x-margo-mqtt-extensions.app.version");
    expect_app_refused("{id: a, name: x, version: [1]}", "x-margo-mqtt-extensions.app.version");
    expect_app_refused("[a]", "x-margo-mqtt-extensions.app");
}

/* metadata.annotations.applicationVersion: optional, kept on output, covered by the digest
 * (so by the signature, which signs the same bytes), bounded. */
static void test_deployment_application_version(void)
{
    static const char yaml_fmt[] =
        "apiVersion: application.margo.org/v1alpha1\n"
        "kind: ApplicationDeployment\n"
        "metadata:\n"
        "  annotations: {id: a3e2f5dc-912e-494f-8395-52cf3769bc06, applicationId: hello%s}\n"
        "  name: %s\n"
        "  namespace: margo\n"
        "spec:\n"
        "  deploymentProfile:\n"
        "    type: helm\n"
        "    components:\n"
        "      - {name: web, properties: {repository: oci://r/web, revision: 1.0.0}}\n";
    char yaml[1024], ann[300];
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    struct mgo_value root, out;
    struct mgo_app_deployment dep;
    char d1[MGO_DIGEST_STR_SIZE], d2[MGO_DIGEST_STR_SIZE], d0[MGO_DIGEST_STR_SIZE];

    /* absent (an older manager): accepted, nothing written */
    snprintf(yaml, sizeof yaml, yaml_fmt, "", "hello-a3e2f5dc");
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &root, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_OK);
    CU_ASSERT_PTR_NULL(dep.application_version);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &out), MGO_OK);
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&out, "/metadata/annotations/applicationVersion"));
    CU_ASSERT_EQUAL(mgo_doc_digest(&out, d0), MGO_OK);

    /* present: kept, and a version is part of the signed content */
    snprintf(yaml, sizeof yaml, yaml_fmt, ", applicationVersion: \"1.2.1\"", "hello-a3e2f5dc");
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &root, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(dep.application_version, "1.2.1");
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &out), MGO_OK);
    const struct mgo_value *v = mgo_value_pointer(&out, "/metadata/annotations/applicationVersion");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(v->as.str.ptr, "1.2.1");
    CU_ASSERT_EQUAL(mgo_doc_digest(&out, d1), MGO_OK);
    dep.application_version = "1.2.2";
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&dep, &arena, &out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_doc_digest(&out, d2), MGO_OK);
    CU_ASSERT_STRING_NOT_EQUAL(d0, d1);
    CU_ASSERT_STRING_NOT_EQUAL(d1, d2);
    /* and it survives MessagePack */
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_msgpack(&out, &m), MGO_OK);
    struct mgo_app_deployment back;
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_decode(m.data, m.len, &arena, &back, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(back.application_version, "1.2.2");
    mgo_buf_cleanup(&m);

    /* bounds and rules */
    char version[MGO_MAX_APP_VERSION_LEN + 2];
    memset(version, '9', sizeof version);
    version[MGO_MAX_APP_VERSION_LEN] = '\0';
    snprintf(ann, sizeof ann, ", applicationVersion: \"%s\"", version);
    snprintf(yaml, sizeof yaml, yaml_fmt, ann, "hello-a3e2f5dc");
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &root, &p), MGO_OK);
    CU_ASSERT_EQUAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_OK);
    static const char *const bad[] = {NULL, "\"\"", "\"1.0\\u0007\"", "[1]"};
    version[MGO_MAX_APP_VERSION_LEN] = '9';
    version[MGO_MAX_APP_VERSION_LEN + 1] = '\0';
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i] == NULL)
            snprintf(ann, sizeof ann, ", applicationVersion: \"%s\"", version);
        else
            snprintf(ann, sizeof ann, ", applicationVersion: %s", bad[i]);
        snprintf(yaml, sizeof yaml, yaml_fmt, ann, "hello-a3e2f5dc");
        mgo_problems_init(&p);
        CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &root, &p), MGO_OK);
        CU_ASSERT_EQUAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_ERR_INVALID);
        CU_ASSERT_FATAL(p.count >= 1);
        CU_ASSERT_STRING_EQUAL(p.items[0].field, "metadata.annotations.applicationVersion");
    }
    /* the description's metadata.version, which the manager copies into applicationVersion,
     * follows the same rule */
    size_t len = 0;
    char *desc = mgo_test_read_file(
        mgo_test_path("tests/data/margo/valid/ApplicationDescription-helm_only.yaml"), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(desc);
    char *at = strstr(desc, "version: \"1.0\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    memcpy(at, "version: \"1\\t\"", strlen("version: \"1\\t\"")); /* same length: "1\t" */
    struct mgo_app_description ad;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(desc, len, &arena, &root, &p), MGO_OK);
    CU_ASSERT_EQUAL(mgo_app_description_from_value(&root, &arena, &ad, &p), MGO_ERR_INVALID);
    CU_ASSERT_FATAL(p.count >= 1);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, "metadata.version");
    free(desc);
    /* metadata.name is 1..253 bytes (it becomes the status's app.name) */
    snprintf(yaml, sizeof yaml, yaml_fmt, "", "\"\"");
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), &arena, &root, &p), MGO_OK);
    CU_ASSERT_EQUAL(mgo_app_deployment_from_value(&root, &arena, &dep, &p), MGO_ERR_INVALID);
    CU_ASSERT_FATAL(p.count >= 1);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, "metadata.name");
    mgo_arena_cleanup(&arena);
}

static void test_presence_and_event(void)
{
    struct mgo_presence pr = {.device_id = "dev-1", .online = false, .boot = 9};
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_presence_encode(&pr, &m), MGO_OK);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_presence pb;
    CU_ASSERT_EQUAL_FATAL(mgo_presence_decode(m.data, m.len, &arena, &pb, &p), MGO_OK);
    CU_ASSERT_FALSE(pb.online);
    CU_ASSERT_EQUAL(pb.boot, 9);
    CU_ASSERT_EQUAL(pb.timestamp_ms, 0);

    struct mgo_event ev = {.device_id = "dev-1",
                           .type = "manifest-refused",
                           .severity = "warning",
                           .message = "manifestVersion 3 is not greater than 5",
                           .has_manifest_version = true,
                           .manifest_version = 3,
                           .timestamp_ms = 1764000000000ull};
    mgo_buf_reset(&m);
    CU_ASSERT_EQUAL_FATAL(mgo_event_encode(&ev, &m), MGO_OK);
    struct mgo_event eb;
    CU_ASSERT_EQUAL_FATAL(mgo_event_decode(m.data, m.len, &arena, &eb, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(eb.type, "manifest-refused");
    CU_ASSERT_EQUAL(eb.manifest_version, 3);

    /* a presence with a device id that could not be a topic level is refused */
    pr.device_id = "a/b";
    mgo_buf_reset(&m);
    CU_ASSERT_EQUAL_FATAL(mgo_presence_encode(&pr, &m), MGO_OK);
    CU_ASSERT_EQUAL(mgo_presence_decode(m.data, m.len, &arena, &pb, &p), MGO_ERR_INVALID);
    mgo_buf_cleanup(&m);
    mgo_arena_cleanup(&arena);
}

static void test_receipt(void)
{
    struct mgo_receipt r = {
        .device_id = "dev-1", .epoch = "0123456789abcdef", .boot = 3, .seq = 41};
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_receipt_encode(&r, &m), MGO_OK);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_receipt b;
    CU_ASSERT_EQUAL_FATAL(mgo_receipt_decode(m.data, m.len, &arena, &b, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(b.device_id, "dev-1");
    CU_ASSERT_STRING_EQUAL(b.epoch, "0123456789abcdef");
    CU_ASSERT_EQUAL(b.boot, 3);
    CU_ASSERT_EQUAL(b.seq, 41);
    /* an epoch too short, with upper case, or missing positions is refused, naming the field */
    static const char *const bad_epochs[] = {"0123456789abcde", "0123456789ABCDEF", "x"};
    for (size_t i = 0; i < sizeof bad_epochs / sizeof bad_epochs[0]; i++) {
        r.epoch = bad_epochs[i];
        mgo_buf_reset(&m);
        CU_ASSERT_EQUAL_FATAL(mgo_receipt_encode(&r, &m), MGO_OK);
        mgo_problems_init(&p);
        CU_ASSERT_EQUAL(mgo_receipt_decode(m.data, m.len, &arena, &b, &p), MGO_ERR_INVALID);
        char text[256];
        mgo_problems_format(&p, text, sizeof text);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "epoch"));
    }
    mgo_buf_cleanup(&m);
    mgo_arena_cleanup(&arena);
}

/* ---- patterns ----------------------------------------------------------------------------- */

static void test_sizes_timeouts_ids(void)
{
    uint64_t b;
    CU_ASSERT_EQUAL(mgo_size_parse("59Gi", false, &b), MGO_OK);
    CU_ASSERT_EQUAL(b, 59ull << 30);
    CU_ASSERT_EQUAL(mgo_size_parse("1024Mi", false, &b), MGO_OK);
    CU_ASSERT_EQUAL(b, 1ull << 30);
    CU_ASSERT_EQUAL(mgo_size_parse("59 Gi", false, &b), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_size_parse("1Ti", false, &b), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_size_parse("1Ti", true, &b), MGO_OK);
    CU_ASSERT_EQUAL(mgo_size_parse("16Ei", true, &b), MGO_ERR_INVALID); /* overflows 64 bits */
    CU_ASSERT_EQUAL(mgo_size_parse("1GB", true, &b), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_size_parse("Gi", true, &b), MGO_ERR_INVALID);
    uint32_t s;
    CU_ASSERT_EQUAL(mgo_timeout_parse("8m30s", &s), MGO_OK);
    CU_ASSERT_EQUAL(s, 510);
    CU_ASSERT_EQUAL(mgo_timeout_parse("5m0s", &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_timeout_parse("5m", &s), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_timeout_parse("30s", &s), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_timeout_parse("1m1sx", &s), MGO_ERR_INVALID);
    CU_ASSERT(mgo_is_uuid("a3e2f5dc-912e-494f-8395-52cf3769bc06"));
    CU_ASSERT(mgo_is_uuid("A3E2F5DC-912E-494F-8395-52CF3769BC06"));
    CU_ASSERT_FALSE(mgo_is_uuid("a3e2f5dc-912e-494f-8395-52cf3769bc0"));
    CU_ASSERT_FALSE(mgo_is_uuid("a3e2f5dc-912e-494f-8395-52cf3769bc061"));
    CU_ASSERT_FALSE(mgo_is_uuid("g3e2f5dc-912e-494f-8395-52cf3769bc06"));
    char id[202];
    memset(id, 'a', 200);
    id[200] = '\0';
    CU_ASSERT(mgo_is_app_id(id));
    id[200] = 'a';
    id[201] = '\0';
    CU_ASSERT_FALSE(mgo_is_app_id(id)); /* 201: one past the limit */
    CU_ASSERT_FALSE(mgo_is_app_id(""));
    CU_ASSERT_FALSE(mgo_is_app_id("com.example"));
}

/* ---- configuration answers ------------------------------------------------------------------ */

static struct mgo_value vstr(const char *s)
{
    return mgo_value_str(s);
}

static struct mgo_value vint(int64_t i)
{
    struct mgo_value v = {.kind = i < 0 ? MGO_V_INT : MGO_V_UINT};
    if (i < 0)
        v.as.i = i;
    else
        v.as.u = (uint64_t)i;
    return v;
}

static struct mgo_value vdbl(double f)
{
    struct mgo_value v = {.kind = MGO_V_FLOAT};
    v.as.f = f;
    return v;
}

static int check(const struct mgo_schema_rule *r, struct mgo_value v)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    return mgo_schema_check(r, &v, "answer", &p) == MGO_OK ? 1 : 0;
}

static void test_schema_rules(void)
{
    struct mgo_schema_rule text = {.data_type = MGO_DT_STRING,
                                   .has_allow_empty = true,
                                   .allow_empty = false,
                                   .has_min_length = true,
                                   .min_length = 2,
                                   .has_max_length = true,
                                   .max_length = 5,
                                   .regex_match = "^[a-z]+$"};
    CU_ASSERT(check(&text, vstr("abc")));
    CU_ASSERT(check(&text, vstr("ab")));      /* at minLength */
    CU_ASSERT_FALSE(check(&text, vstr("a"))); /* one below */
    CU_ASSERT(check(&text, vstr("abcde")));   /* at maxLength */
    CU_ASSERT_FALSE(check(&text, vstr("abcdef")));
    CU_ASSERT_FALSE(check(&text, vstr("ABC"))); /* regexMatch */
    CU_ASSERT_FALSE(check(&text, vstr("")));    /* allowEmpty: false */
    CU_ASSERT_FALSE(check(&text, vint(3)));     /* dataType */
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL(mgo_schema_check(&text, NULL, "greeting", &p), MGO_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, "greeting");

    struct mgo_schema_rule optional = {.data_type = MGO_DT_STRING,
                                       .has_allow_empty = true,
                                       .allow_empty = true,
                                       .has_min_length = true,
                                       .min_length = 5};
    CU_ASSERT(check(&optional, vstr("")));
    CU_ASSERT_FALSE(check(&optional, vstr("abc")));

    struct mgo_schema_rule integer = {.data_type = MGO_DT_INTEGER,
                                      .has_min_value = true,
                                      .min_value = 30,
                                      .has_max_value = true,
                                      .max_value = 360};
    CU_ASSERT(check(&integer, vint(30)));
    CU_ASSERT(check(&integer, vint(360)));
    CU_ASSERT_FALSE(check(&integer, vint(29)));
    CU_ASSERT_FALSE(check(&integer, vint(361)));
    CU_ASSERT_FALSE(check(&integer, vdbl(30.5)));
    CU_ASSERT_FALSE(check(&integer, vstr("30")));

    struct mgo_schema_rule dbl = {.data_type = MGO_DT_DOUBLE,
                                  .has_min_value = true,
                                  .min_value = 0.5,
                                  .has_max_precision = true,
                                  .max_precision = 2,
                                  .has_min_precision = true,
                                  .min_precision = 1};
    CU_ASSERT(check(&dbl, vdbl(1.25)));
    CU_ASSERT_FALSE(check(&dbl, vdbl(1.255))); /* maxPrecision */
    CU_ASSERT_FALSE(check(&dbl, vdbl(0.25)));  /* minValue */
    CU_ASSERT_FALSE(check(&dbl, vint(2)));     /* minPrecision 1: "2" has none */
    CU_ASSERT_FALSE(check(&dbl, vstr("1.5")));

    struct mgo_schema_rule boolean = {.data_type = MGO_DT_BOOLEAN};
    CU_ASSERT(check(&boolean, mgo_value_bool(true)));
    CU_ASSERT_FALSE(check(&boolean, vstr("true")));

    struct mgo_arena arena;
    mgo_arena_init(&arena, 1 << 20);
    struct mgo_value opts;
    CU_ASSERT_FATAL(mgo_value_array_new(&arena, 2, &opts) == MGO_OK);
    opts.as.array.items[0] = vstr("red");
    opts.as.array.items[1] = vstr("blue");
    struct mgo_schema_rule select = {.data_type = MGO_DT_STRING, .options = &opts};
    CU_ASSERT(check(&select, vstr("red")));
    CU_ASSERT_FALSE(check(&select, vstr("green")));
    struct mgo_schema_rule multi = {
        .data_type = MGO_DT_STRING, .options = &opts, .multiselect = true};
    struct mgo_value both;
    CU_ASSERT_FATAL(mgo_value_array_new(&arena, 2, &both) == MGO_OK);
    both.as.array.items[0] = vstr("red");
    both.as.array.items[1] = vstr("blue");
    CU_ASSERT(check(&multi, both));
    both.as.array.items[1] = vstr("green");
    CU_ASSERT_FALSE(check(&multi, both));
    CU_ASSERT_FALSE(check(&multi, vstr("red"))); /* multiselect wants a list */

    struct mgo_schema_rule ints = {
        .data_type = MGO_DT_ARRAY_INTEGER, .has_max_value = true, .max_value = 10};
    struct mgo_value list;
    CU_ASSERT_FATAL(mgo_value_array_new(&arena, 2, &list) == MGO_OK);
    list.as.array.items[0] = vint(1);
    list.as.array.items[1] = vint(11);
    CU_ASSERT_FALSE(check(&ints, list));
    list.as.array.items[1] = vint(10);
    CU_ASSERT(check(&ints, list));
    mgo_arena_cleanup(&arena);
}

static void test_description_configuration_resolved(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    enum mgo_doc_kind kind;
    struct mgo_value root;
    CU_ASSERT_EQUAL_FATAL(
        load("tests/data/margo/valid/ApplicationDescription-helm_and_compose.yaml", &arena, &kind,
             &root, &p),
        MGO_OK);
    struct mgo_app_description d;
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_from_value(&root, &arena, &d, &p), MGO_OK);
    CU_ASSERT_EQUAL(d.profiles_len, 2);
    CU_ASSERT(d.profiles[0].has_required_resources);
    CU_ASSERT_DOUBLE_EQUAL(d.profiles[0].required_resources.cpu_cores, 1.5, 1e-9);
    CU_ASSERT_EQUAL(d.profiles[0].required_resources.memory_bytes, 1024ull << 20);
    CU_ASSERT_EQUAL(d.profiles[0].required_resources.peripherals_len, 2);
    CU_ASSERT_STRING_EQUAL(d.version, "1.2.1");
    CU_ASSERT(d.sections_len == 4);
    /* every setting resolved its schema */
    for (size_t s = 0; s < d.sections_len; s++) {
        for (size_t k = 0; k < d.sections[s].settings_len; k++)
            CU_ASSERT_PTR_NOT_NULL(d.sections[s].settings[k].rule);
    }
    /* the url regex of the example compiles and works with POSIX ERE */
    const struct mgo_schema_rule *url = NULL;
    for (size_t i = 0; i < d.schemas_len; i++) {
        if (strcmp(d.schemas[i].name, "url") == 0)
            url = &d.schemas[i];
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(url);
    CU_ASSERT(check(url, vstr("https://login.example.com/tenant")));
    CU_ASSERT_FALSE(check(url, vstr("not a url")));
    mgo_arena_cleanup(&arena);
}

static void test_description_cross_references_checked(void)
{
    static const char doc[] =
        "apiVersion: margo.org/v1-alpha1\n"
        "kind: ApplicationDescription\n"
        "id: hello\n"
        "metadata:\n  name: Hello\n  version: 1.0\n  catalog:\n    organization: [{name: Acme}]\n"
        "deploymentProfiles:\n"
        "  - type: compose\n    id: c\n    components:\n"
        "      - name: web\n        properties: {packageLocation: 'https://x/y.tar.gz'}\n"
        "      - name: web\n        properties: {packageLocation: 'https://x/z.tar.gz'}\n"
        "parameters:\n"
        "  greeting:\n    targets: [{pointer: ENV.GREETING, components: [nope]}]\n"
        "configuration:\n"
        "  sections: [{name: G, settings: [{parameter: missing, name: M, schema: nothere}]}]\n"
        "  schema: [{name: t, dataType: text}]\n";
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value root;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(doc, sizeof doc - 1, &arena, &root, &p), MGO_OK);
    struct mgo_app_description d;
    CU_ASSERT_EQUAL(mgo_app_description_from_value(&root, &arena, &d, &p), MGO_ERR_INVALID);
    const char *expect[] = {
        "deploymentProfiles[0].components[1].name",
        "parameters.greeting.targets[0].components[0]",
        "configuration.schema[0].dataType",
        "configuration.sections[0].settings[0].parameter",
        "configuration.sections[0].settings[0].schema",
    };
    CU_ASSERT_EQUAL_FATAL(p.count, 5);
    for (size_t i = 0; i < 5; i++)
        CU_ASSERT_STRING_EQUAL(p.items[i].field, expect[i]);
    CU_ASSERT_STRING_EQUAL(d.version, "1.0"); /* a plain 1.0 keeps its text */
    mgo_arena_cleanup(&arena);
}

/* The sandbox's package form: apiVersion v1 without kind is an ApplicationDescription,
 * normalised by adding the kind; any other apiVersion still needs the kind, and a kind that
 * is present must be the literal. */
static mgo_err load_text(const char *text, struct mgo_arena *arena, struct mgo_value *root,
                         enum mgo_doc_kind *kind, struct mgo_problems *p)
{
    mgo_problems_init(p);
    return mgo_doc_validate(text, strlen(text), MGO_FORMAT_YAML, arena, kind, root, p);
}

static void test_description_kindless_v1(void)
{
    static const char body[] =
        "id: hello\n"
        "metadata:\n  name: Hello\n  version: '1.0'\n  catalog:\n    organization: [{name: Acme}]\n"
        "deploymentProfiles:\n"
        "  - type: compose\n    id: c\n    components:\n"
        "      - name: web\n        properties: {packageLocation: 'https://x/y.tar.gz'}\n";
    char doc[1024];
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    struct mgo_value root, norm;
    enum mgo_doc_kind kind;
    /* accepted and normalised */
    snprintf(doc, sizeof doc, "apiVersion: v1\n%s", body);
    CU_ASSERT_EQUAL(load_text(doc, &arena, &root, &kind, &p), MGO_OK);
    CU_ASSERT_EQUAL(kind, MGO_DOC_APP_DESCRIPTION);
    CU_ASSERT_PTR_NULL(mgo_value_get(&root, "kind"));
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_normalise(&root, &arena, &norm), MGO_OK);
    const struct mgo_value *k = mgo_value_get(&norm, "kind");
    CU_ASSERT_FATAL(k != NULL && k->kind == MGO_V_STR);
    CU_ASSERT_STRING_EQUAL(k->as.str.ptr, "ApplicationDescription");
    CU_ASSERT_STRING_EQUAL(mgo_value_get(&norm, "apiVersion")->as.str.ptr, "v1");
    CU_ASSERT_EQUAL(norm.as.map.len, root.as.map.len + 1);
    struct mgo_app_description d;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL(mgo_app_description_from_value(&norm, &arena, &d, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(d.id, "hello");
    /* the normalised tree encodes with sorted keys and reads back with its kind */
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_msgpack(&norm, &b), MGO_OK);
    struct mgo_value back;
    CU_ASSERT_EQUAL(mgo_value_from_msgpack(b.data, b.len, &arena, &back, &p), MGO_OK);
    CU_ASSERT_PTR_NOT_NULL(mgo_value_get(&back, "kind"));
    mgo_buf_cleanup(&b);
    /* a document with its kind is left as it is */
    snprintf(doc, sizeof doc, "apiVersion: v1\nkind: ApplicationDescription\n%s", body);
    CU_ASSERT_EQUAL(load_text(doc, &arena, &root, &kind, &p), MGO_OK);
    CU_ASSERT_EQUAL(mgo_app_description_normalise(&root, &arena, &norm), MGO_OK);
    CU_ASSERT_PTR_EQUAL(norm.as.map.items, root.as.map.items);
    /* a kind that is present must be the literal, v1 or not */
    snprintf(doc, sizeof doc, "apiVersion: v1\nkind: application\n%s", body);
    CU_ASSERT_EQUAL(load_text(doc, &arena, &root, &kind, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(p.count >= 1 && strcmp(p.items[0].field, "kind") == 0 &&
                   strstr(p.items[0].rule, "must be \"ApplicationDescription\"") != NULL);
    /* kind-less with another apiVersion: refused naming kind and the rule */
    snprintf(doc, sizeof doc, "apiVersion: margo.org/v1-alpha1\n%s", body);
    CU_ASSERT_EQUAL(load_text(doc, &arena, &root, &kind, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(p.count == 1 && strcmp(p.items[0].field, "kind") == 0 &&
                   strstr(p.items[0].rule, "only the package form with apiVersion \"v1\"") != NULL);
    /* neither apiVersion nor kind: apiVersion is reported (the kind rule depends on it) */
    CU_ASSERT_EQUAL(load_text(body, &arena, &root, &kind, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(p.count == 1 && strcmp(p.items[0].field, "apiVersion") == 0);
    /* apiVersion "v1" does not make other documents kind-less descriptions */
    CU_ASSERT_EQUAL(load_text("apiVersion: v1\nmetadata: {name: x}\n", &arena, &root, &kind, &p),
                    MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(kind, MGO_DOC_UNKNOWN);
    mgo_arena_cleanup(&arena);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case examples[] = {
        {"valid examples accepted", test_valid_examples_accepted},
        {"invalid examples refused naming the field",
         test_invalid_examples_refused_naming_the_field},
        {"superseded space sizes refused", test_superseded_space_sizes_refused},
        {NULL, NULL},
    };
    static const struct mgo_test_case roundtrip[] = {
        {"every valid example", test_round_trip_every_valid_example},
        {"margo fields preserved", test_round_trip_preserves_margo_fields},
        {"drift normalised on output", test_drift_normalised_on_output},
        {"newer capabilities shape", test_newer_capabilities_shape},
        {NULL, NULL},
    };
    static const struct mgo_test_case digests[] = {
        {"document digest ignores the extension", test_doc_digest_ignores_extension_and_is_stable},
        {"digest format", test_digest_format},
        {NULL, NULL},
    };
    static const struct mgo_test_case status[] = {
        {"precedence", test_status_precedence},
        {"journal extension", test_status_journal_extension},
        {"app extension", test_status_app_extension},
        {"deployment application version", test_deployment_application_version},
        {"presence and event", test_presence_and_event},
        {"receipt", test_receipt},
        {NULL, NULL},
    };
    static const struct mgo_test_case rules[] = {
        {"sizes, timeouts, ids", test_sizes_timeouts_ids},
        {"schema rules", test_schema_rules},
        {"configuration resolved", test_description_configuration_resolved},
        {"cross references checked", test_description_cross_references_checked},
        {"kind-less apiVersion v1 description", test_description_kindless_v1},
        {NULL, NULL},
    };
    mgo_test_add_suite("codec/examples", examples);
    mgo_test_add_suite("codec/roundtrip", roundtrip);
    mgo_test_add_suite("codec/digest", digests);
    mgo_test_add_suite("codec/status", status);
    mgo_test_add_suite("codec/rules", rules);
}
