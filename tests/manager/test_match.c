/* test_match.c - capability matching: every resource kind, every selector operator, the
 * deployment type rule, and the reasons a user sees. */
#include "mgo_test.h"

#include <string.h>

#include "mgo/match.h"

static struct mgo_arena arena;

static struct mgo_value *yaml(const char *text)
{
    struct mgo_value *v = mgo_arena_alloc(&arena, sizeof *v);
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    mgo_err err = mgo_value_from_yaml(text, strlen(text), &arena, v, &p);
    CU_ASSERT_EQUAL_FATAL(err, MGO_OK);
    return v;
}

static const char *PROPS =
    "{id: dev1, vendor: Acme, modelNumber: X1, serialNumber: S1, otelCollector: true,"
    " cpus: [{cores: 2, architecture: amd64}, {cores: 4, architecture: arm64}],"
    " memory: 512Mi, storage: 10Gi,"
    " peripherals: [{type: gpu, manufacturer: NVIDIA, model: T4}, {type: camera}],"
    " interfaces: [{type: ethernet}, {type: wifi}],"
    " supportedDeploymentTypes: [compose], supportedRuntimes: [oci]}";
static const char *LABELS =
    "{acme.com/site: berlin, acme.com/floor: 3, acme.com/zones: [a, b, c], acme.com/edge: true}";

static struct mgo_cpu_set cpus[2] = {{2, MGO_ARCH_AMD64}, {4, MGO_ARCH_ARM64}};
static struct mgo_peripheral periphs[2] = {{MGO_PERIPH_GPU, "NVIDIA", "T4"},
                                           {MGO_PERIPH_CAMERA, NULL, NULL}};
static enum mgo_interface_type ifaces[2] = {MGO_IFACE_ETHERNET, MGO_IFACE_WIFI};

static struct mgo_capabilities device(void)
{
    struct mgo_capabilities c = {
        .id = "dev1",
        .vendor = "Acme",
        .hosting = true,
        .cpus = cpus,
        .cpus_len = 2,
        .memory_bytes = 512ull << 20,
        .storage_bytes = 10ull << 30,
        .peripherals = periphs,
        .peripherals_len = 2,
        .interfaces = ifaces,
        .interfaces_len = 2,
        .otel_collector = true,
        .runtimes = MGO_RUNTIME_OCI,
        .deployment_types = MGO_DTYPE_COMPOSE,
    };
    c.properties = yaml(PROPS);
    c.labels = yaml(LABELS);
    return c;
}

static struct mgo_profile profile(enum mgo_profile_type type)
{
    struct mgo_profile p = {.type = type, .id = "p"};
    return p;
}

static void setup(void)
{
    mgo_arena_init(&arena, 1u << 20);
}

static void teardown(void)
{
    mgo_arena_cleanup(&arena);
}

static void test_deployment_type(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile helm = profile(MGO_PROFILE_HELM), compose = profile(MGO_PROFILE_COMPOSE);
    char why[MGO_MATCH_REASON_SIZE];
    CU_ASSERT_TRUE(mgo_match_profile(&compose, &c, why, sizeof why));
    CU_ASSERT_FALSE(mgo_match_profile(&helm, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "deployment type: profile is helm, device supports compose");
    /* a gateway hosting nothing matches nothing */
    c.hosting = false;
    CU_ASSERT_FALSE(mgo_match_profile(&compose, &c, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "hosts no workloads"));
    teardown();
}

static void test_app_picks_supported_profile(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile profiles[2] = {profile(MGO_PROFILE_HELM), profile(MGO_PROFILE_COMPOSE)};
    profiles[1].id = "compose-a";
    struct mgo_app_description app = {.id = "app", .profiles = profiles, .profiles_len = 2};
    char why[MGO_MATCH_REASON_SIZE];
    const struct mgo_profile *p = mgo_match_app(&app, &c, why, sizeof why);
    CU_ASSERT_PTR_EQUAL(p, &profiles[1]);
    /* a helm-only app on a compose device: the reason lists both sides */
    app.profiles_len = 1;
    CU_ASSERT_PTR_NULL(mgo_match_app(&app, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "deployment type: app offers helm, device supports compose");
    /* the supported profile's own failure is the reason */
    profiles[1].has_required_resources = true;
    profiles[1].required_resources.memory_bytes = 1ull << 30;
    app.profiles_len = 2;
    CU_ASSERT_PTR_NULL(mgo_match_app(&app, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "memory: needs 1Gi, device has 512Mi");
    teardown();
}

static void test_required_cpu(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile p = profile(MGO_PROFILE_COMPOSE);
    p.has_required_resources = true;
    p.required_resources.has_cpu = true;
    char why[MGO_MATCH_REASON_SIZE];
    p.required_resources.cpu_cores = 1.5;
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    /* 5 cores exist in total (2 + 4) but never in one set */
    p.required_resources.cpu_cores = 5;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "cpu: needs 5 cores"));
    /* 3 cores only on the arm64 set: amd64 requirement fails, arm64 passes */
    p.required_resources.cpu_cores = 3;
    p.required_resources.cpu_archs = MGO_ARCH_AMD64;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    p.required_resources.cpu_archs = MGO_ARCH_AMD64 | MGO_ARCH_ARM64;
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    teardown();
}

static void test_required_memory_storage(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile p = profile(MGO_PROFILE_COMPOSE);
    p.has_required_resources = true;
    char why[MGO_MATCH_REASON_SIZE];
    p.required_resources.memory_bytes = 512ull << 20; /* exactly what it has */
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    p.required_resources.memory_bytes = 1024ull << 20;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "memory: needs 1Gi, device has 512Mi");
    p.required_resources.memory_bytes = 0;
    p.required_resources.storage_bytes = 11ull << 30;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "storage: needs 11Gi, device has 10Gi");
    c.storage_bytes = 0;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "storage: needs 11Gi, device has none reported");
    teardown();
}

static void test_required_peripherals_interfaces(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile p = profile(MGO_PROFILE_COMPOSE);
    p.has_required_resources = true;
    char why[MGO_MATCH_REASON_SIZE];
    struct mgo_peripheral want = {MGO_PERIPH_GPU, "NVIDIA", NULL};
    p.required_resources.peripherals = &want;
    p.required_resources.peripherals_len = 1;
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    want.manufacturer = "AMD";
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "peripherals: needs gpu manufacturer AMD"));
    want.type = MGO_PERIPH_DISPLAY;
    want.manufacturer = NULL;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    p.required_resources.peripherals_len = 0;
    enum mgo_interface_type need[2] = {MGO_IFACE_WIFI, MGO_IFACE_BLUETOOTH};
    p.required_resources.interfaces = need;
    p.required_resources.interfaces_len = 1;
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    p.required_resources.interfaces_len = 2;
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "interfaces: needs bluetooth, device has none");
    teardown();
}

static void test_capacity_requirements(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile p = profile(MGO_PROFILE_COMPOSE);
    char why[MGO_MATCH_REASON_SIZE];
    p.device_constraints = yaml("{capacityRequirements: {cpu: {cores: 4, architectures: [arm64]},"
                                " memory: 256Mi, storage: 1Gi}}");
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    p.device_constraints =
        yaml("{capacityRequirements: {cpu: {cores: 4, architectures: [amd64]}}}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "cpu: needs 4 cores (amd64)"));
    p.device_constraints = yaml("{capacityRequirements: {cpu: {cores: 6}}}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    p.device_constraints = yaml("{capacityRequirements: {memory: 1024Mi}}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "memory: needs 1Gi, device has 512Mi");
    p.device_constraints = yaml("{capacityRequirements: {storage: 1Ti}}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    teardown();
}

/* one property expression */
static bool prop(const char *expr)
{
    char text[512];
    snprintf(text, sizeof text, "{matchExpressions: [%s]}", expr);
    char why[MGO_MATCH_REASON_SIZE];
    return mgo_match_selector(yaml(text), yaml(PROPS), false, why, sizeof why);
}

static bool label(const char *expr)
{
    char text[512];
    snprintf(text, sizeof text, "{matchExpressions: [%s]}", expr);
    char why[MGO_MATCH_REASON_SIZE];
    return mgo_match_selector(yaml(text), yaml(LABELS), true, why, sizeof why);
}

static void test_op_in_notin(void)
{
    setup();
    CU_ASSERT_TRUE(prop("{key: /vendor, operator: In, values: [Other, Acme]}"));
    CU_ASSERT_FALSE(prop("{key: /vendor, operator: In, values: [acme]}")); /* case-sensitive */
    CU_ASSERT_FALSE(prop("{key: /nothing, operator: In, values: [Acme]}"));
    CU_ASSERT_FALSE(prop("{key: /cpus, operator: In, values: [Acme]}")); /* array: unsupported */
    CU_ASSERT_TRUE(prop("{key: /cpus/1/cores, operator: In, values: [4]}"));
    CU_ASSERT_TRUE(prop("{key: /otelCollector, operator: In, values: ['true']}"));
    CU_ASSERT_TRUE(label("{key: acme.com/site, operator: In, values: [berlin]}"));
    CU_ASSERT_TRUE(prop("{key: /vendor, operator: NotIn, values: [Other]}"));
    CU_ASSERT_FALSE(prop("{key: /vendor, operator: NotIn, values: [Acme]}"));
    CU_ASSERT_TRUE(label("{key: acme.com/missing, operator: NotIn, values: [x]}"));
    CU_ASSERT_FALSE(label("{key: acme.com/zones, operator: NotIn, values: [x]}"));
    /* In without values is refused, not a match */
    CU_ASSERT_FALSE(prop("{key: /vendor, operator: In}"));
    teardown();
}

static void test_op_exists(void)
{
    setup();
    CU_ASSERT_TRUE(prop("{key: /serialNumber, operator: Exists}"));
    CU_ASSERT_FALSE(prop("{key: /firmware, operator: Exists}"));
    CU_ASSERT_TRUE(prop("{key: /firmware, operator: DoesNotExist}"));
    CU_ASSERT_FALSE(prop("{key: /vendor, operator: DoesNotExist}"));
    CU_ASSERT_TRUE(label("{key: acme.com/edge, operator: Exists}"));
    CU_ASSERT_TRUE(label("{key: /acme.com/edge, operator: DoesNotExist}")); /* exact keys */
    CU_ASSERT_FALSE(prop("{key: vendor, operator: Exists}"));               /* not a JSON Pointer */
    teardown();
}

static void test_op_gt_lt(void)
{
    setup();
    CU_ASSERT_TRUE(prop("{key: /cpus/1/cores, operator: Gt, values: [3]}"));
    CU_ASSERT_FALSE(prop("{key: /cpus/1/cores, operator: Gt, values: [4]}"));
    CU_ASSERT_TRUE(prop("{key: /cpus/0/cores, operator: Lt, values: ['2.5']}"));
    CU_ASSERT_FALSE(prop("{key: /cpus/0/cores, operator: Lt, values: [2]}"));
    CU_ASSERT_TRUE(label("{key: acme.com/floor, operator: Gt, values: [2]}"));
    CU_ASSERT_FALSE(prop("{key: /vendor, operator: Gt, values: [1]}"));          /* not a number */
    CU_ASSERT_FALSE(prop("{key: /cpus/0/cores, operator: Gt, values: [1, 2]}")); /* one value */
    CU_ASSERT_FALSE(prop("{key: /cpus/0/cores, operator: Gt, values: [x]}"));
    CU_ASSERT_FALSE(prop("{key: /missing, operator: Lt, values: [100]}"));
    teardown();
}

static void test_op_contains(void)
{
    setup();
    /* itemSelector: pointers relative to each element */
    CU_ASSERT_TRUE(
        prop("{key: /peripherals, operator: ContainsAll, itemSelector: {matchExpressions:"
             " [{key: /type, operator: In, values: [gpu]},"
             "  {key: /type, operator: In, values: [camera]}]}}"));
    CU_ASSERT_FALSE(
        prop("{key: /peripherals, operator: ContainsAll, itemSelector: {matchExpressions:"
             " [{key: /type, operator: In, values: [gpu]},"
             "  {key: /type, operator: In, values: [display]}]}}"));
    CU_ASSERT_TRUE(
        prop("{key: /peripherals, operator: ContainsAny, itemSelector: {matchExpressions:"
             " [{key: /type, operator: In, values: [display]},"
             "  {key: /manufacturer, operator: In, values: [NVIDIA]}]}}"));
    CU_ASSERT_FALSE(
        prop("{key: /interfaces, operator: ContainsAny, itemSelector: {matchExpressions:"
             " [{key: /type, operator: In, values: [canbus, rs232]}]}}"));
    /* values on an array of strings */
    CU_ASSERT_TRUE(label("{key: acme.com/zones, operator: ContainsAll, values: [a, c]}"));
    CU_ASSERT_FALSE(label("{key: acme.com/zones, operator: ContainsAll, values: [a, d]}"));
    CU_ASSERT_TRUE(label("{key: acme.com/zones, operator: ContainsAny, values: [d, b]}"));
    CU_ASSERT_FALSE(label("{key: acme.com/zones, operator: ContainsAny, values: [d, e]}"));
    /* not an array -> false */
    CU_ASSERT_FALSE(label("{key: acme.com/site, operator: ContainsAny, values: [berlin]}"));
    teardown();
}

static void test_unknown_operator_refused(void)
{
    setup();
    char why[MGO_MATCH_REASON_SIZE];
    CU_ASSERT_FALSE(mgo_match_selector(yaml("{matchExpressions: [{key: /vendor, operator: Like,"
                                            " values: [A]}]}"),
                                       yaml(PROPS), false, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "unknown operator Like"));
    teardown();
}

static void test_rules_or_and(void)
{
    setup();
    struct mgo_capabilities c = device();
    struct mgo_profile p = profile(MGO_PROFILE_COMPOSE);
    char why[MGO_MATCH_REASON_SIZE];
    /* expressions ANDed: second fails */
    p.device_constraints = yaml("{eligibilityRules: [{propertySelector: {matchExpressions: ["
                                "  {key: /vendor, operator: In, values: [Acme]},"
                                "  {key: /modelNumber, operator: In, values: [X2]}]}}]}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "eligibilityRules: /modelNumber In [X2] is false");
    /* property and label selector of one rule ANDed */
    p.device_constraints = yaml(
        "{eligibilityRules: [{propertySelector: {matchExpressions: [{key: /vendor, operator: In,"
        " values: [Acme]}]}, labelSelector: {matchExpressions: [{key: acme.com/site,"
        " operator: In, values: [paris]}]}}]}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    /* rules ORed: the second rule matches */
    p.device_constraints = yaml("{eligibilityRules: ["
                                " {labelSelector: {matchExpressions: [{key: acme.com/site, "
                                "operator: In, values: [paris]}]}},"
                                " {labelSelector: {matchExpressions: [{key: acme.com/site, "
                                "operator: In, values: [berlin]}]}}]}");
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    /* no rules = capacity only */
    p.device_constraints = yaml("{eligibilityRules: []}");
    CU_ASSERT_TRUE(mgo_match_profile(&p, &c, why, sizeof why));
    /* a device without labels fails a label rule instead of crashing */
    c.labels = NULL;
    p.device_constraints = yaml(
        "{eligibilityRules: [{labelSelector: {matchExpressions: [{key: a, operator: Exists}]}}]}");
    CU_ASSERT_FALSE(mgo_match_profile(&p, &c, why, sizeof why));
    teardown();
}

static void test_format_size(void)
{
    char out[32];
    mgo_match_format_size(512ull << 20, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "512Mi");
    mgo_match_format_size(1536ull << 20, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "1536Mi");
    mgo_match_format_size(1000, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "1000");
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"deployment type", test_deployment_type},
        {"app picks supported profile", test_app_picks_supported_profile},
        {"requiredResources cpu", test_required_cpu},
        {"requiredResources memory storage", test_required_memory_storage},
        {"requiredResources peripherals interfaces", test_required_peripherals_interfaces},
        {"capacityRequirements", test_capacity_requirements},
        {"operator In NotIn", test_op_in_notin},
        {"operator Exists DoesNotExist", test_op_exists},
        {"operator Gt Lt", test_op_gt_lt},
        {"operator ContainsAll ContainsAny", test_op_contains},
        {"unknown operator refused", test_unknown_operator_refused},
        {"rules ORed, selectors ANDed", test_rules_or_and},
        {"format size", test_format_size},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager match", cases);
}
