/* test_params.c - parameter answers against an app's configuration, and the
 * ApplicationDeployment built per device. */
#include "mgo_test.h"

#include <string.h>

#include "mgo/params.h"

static struct mgo_arena arena;
static struct mgo_app_description app;

static void load_app(const char *rel)
{
    mgo_arena_init(&arena, 4u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    enum mgo_doc_kind kind;
    struct mgo_value root;
    mgo_err err = mgo_doc_load_file(mgo_test_path(rel), &arena, &kind, &root, &p);
    if (err) {
        char text[1024];
        mgo_problems_format(&p, text, sizeof text);
        fprintf(stderr, "load %s: %s\n", rel, text);
    }
    CU_ASSERT_EQUAL_FATAL(err, MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_from_value(&root, &arena, &app, &p), MGO_OK);
}

static struct mgo_value *json(const char *text)
{
    struct mgo_value *v = mgo_arena_alloc(&arena, sizeof *v);
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(text, strlen(text), &arena, v, &p), MGO_OK);
    return v;
}

static bool has_problem(const struct mgo_problems *p, const char *field, const char *text)
{
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(p->items[i].field, field) == 0 && strstr(p->items[i].rule, text) != NULL)
            return true;
    }
    return false;
}

static mgo_err resolve(const char *answers, const char *previous, struct mgo_value *out,
                       struct mgo_problems *p)
{
    mgo_problems_init(p);
    return mgo_params_resolve(&app, answers ? json(answers) : NULL,
                              previous ? json(previous) : NULL, &arena, out, p);
}

static void test_valid_answers_with_defaults(void)
{
    load_app("tests/manager/data/hello-1.0.yaml");
    struct mgo_value r;
    struct mgo_problems p;
    CU_ASSERT_EQUAL(resolve("{siteId: site-7, port: 9090}", NULL, &r, &p), MGO_OK);
    CU_ASSERT_EQUAL(p.count, 0);
    const struct mgo_value *v = mgo_value_get(&r, "port");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->as.u, 9090);
    v = mgo_value_get(&r, "greeting"); /* default kept */
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(v->as.str.ptr, "Hello");
    CU_ASSERT_PTR_NOT_NULL(mgo_value_get(&r, "internal")); /* non-configurable default */
    mgo_arena_cleanup(&arena);
}

static void test_one_problem_per_bad_field(void)
{
    load_app("tests/manager/data/hello-1.0.yaml");
    struct mgo_value r;
    struct mgo_problems p;
    CU_ASSERT_EQUAL(resolve("{greeting: x, port: 80, siteId: nope, verbose: 'yes', ratio: 0.125,"
                            " colour: red, internal: other}",
                            NULL, &r, &p),
                    MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.greeting", "at least 2"));
    CU_ASSERT_TRUE(has_problem(&p, "parameters.port", "at least 1024"));
    CU_ASSERT_TRUE(has_problem(&p, "parameters.siteId", "regexMatch"));
    CU_ASSERT_TRUE(has_problem(&p, "parameters.verbose", "true or false"));
    CU_ASSERT_TRUE(has_problem(&p, "parameters.ratio", "maxPrecision"));
    CU_ASSERT_TRUE(has_problem(&p, "parameters.colour", "is not a parameter"));
    CU_ASSERT_TRUE(has_problem(&p, "parameters.internal", "not configurable"));
    CU_ASSERT_EQUAL(p.count, 7);
    mgo_arena_cleanup(&arena);
}

static void test_required_and_types(void)
{
    load_app("tests/manager/data/hello-1.0.yaml");
    struct mgo_value r;
    struct mgo_problems p;
    /* siteId has no default and allowEmpty: false */
    CU_ASSERT_EQUAL(resolve(NULL, NULL, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.siteId", "required"));
    CU_ASSERT_EQUAL(resolve("{siteId: ''}", NULL, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.siteId", "required"));
    CU_ASSERT_EQUAL(resolve("{siteId: site-1, port: '8080'}", NULL, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.port", "integer"));
    CU_ASSERT_EQUAL(resolve("{siteId: site-1, port: 70000}", NULL, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.port", "at most 65535"));
    CU_ASSERT_EQUAL(resolve("{siteId: site-1, greeting: 12345678901234567890x}", NULL, &r, &p),
                    MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(resolve("{siteId: site-1, ratio: 1.5}", NULL, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.ratio", "at most 1"));
    CU_ASSERT_EQUAL(resolve("{siteId: site-1, verbose: true, ratio: 0.25}", NULL, &r, &p), MGO_OK);
    CU_ASSERT_EQUAL(resolve("[1, 2]", NULL, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters", "object"));
    mgo_arena_cleanup(&arena);
}

static void test_immutable_on_change(void)
{
    load_app("tests/manager/data/hello-1.0.yaml");
    struct mgo_value r;
    struct mgo_problems p;
    const char *prev = "{siteId: site-1, greeting: Hi, port: 8080}";
    CU_ASSERT_EQUAL(resolve("{siteId: site-2}", prev, &r, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(has_problem(&p, "parameters.siteId", "immutable"));
    /* the same value again is fine; other answers change; previous values are kept */
    CU_ASSERT_EQUAL(resolve("{siteId: site-1, port: 9000}", prev, &r, &p), MGO_OK);
    CU_ASSERT_EQUAL(mgo_value_get(&r, "port")->as.u, 9000);
    CU_ASSERT_STRING_EQUAL(mgo_value_get(&r, "greeting")->as.str.ptr, "Hi");
    CU_ASSERT_STRING_EQUAL(mgo_value_get(&r, "siteId")->as.str.ptr, "site-1");
    mgo_arena_cleanup(&arena);
}

static void test_build_deployment_per_profile(void)
{
    load_app("tests/manager/data/hello-1.0.yaml");
    struct mgo_value r;
    struct mgo_problems p;
    CU_ASSERT_EQUAL_FATAL(resolve("{siteId: site-7}", NULL, &r, &p), MGO_OK);
    char id[37];
    CU_ASSERT_EQUAL_FATAL(mgo_params_new_uuid(id), MGO_OK);
    CU_ASSERT_TRUE(mgo_is_uuid(id));
    struct mgo_app_deployment d;
    /* compose profile: all compose targets */
    CU_ASSERT_EQUAL_FATAL(
        mgo_params_build_deployment(&app, &app.profiles[1], &r, id, "dev1", &arena, &d), MGO_OK);
    CU_ASSERT_EQUAL(d.profile.type, MGO_PROFILE_COMPOSE);
    CU_ASSERT_STRING_EQUAL(d.application_id, "hello-world");
    CU_ASSERT_STRING_EQUAL(d.application_version, "1.0"); /* metadata.version of the app */
    CU_ASSERT_STRING_EQUAL(d.device_id, "dev1");
    CU_ASSERT_EQUAL(d.parameters_len, 6); /* greeting port siteId verbose ratio internal */
    /* the document encodes and decodes as a valid ApplicationDeployment */
    struct mgo_buf buf;
    mgo_buf_init(&buf, 1u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_encode(&d, &buf), MGO_OK);
    struct mgo_app_deployment back;
    mgo_problems_init(&p);
    mgo_err err = mgo_app_deployment_decode(buf.data, buf.len, &arena, &back, &p);
    if (err) {
        char text[1024];
        mgo_problems_format(&p, text, sizeof text);
        fprintf(stderr, "decode: %s\n", text);
    }
    CU_ASSERT_EQUAL(err, MGO_OK);
    CU_ASSERT_STRING_EQUAL(back.id, id);
    /* metadata.annotations.applicationVersion on the wire, where the digest covers it */
    CU_ASSERT_PTR_NOT_NULL_FATAL(back.application_version);
    CU_ASSERT_STRING_EQUAL(back.application_version, "1.0");
    struct mgo_value tree;
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(buf.data, buf.len, &arena, &tree, &p), MGO_OK);
    const struct mgo_value *ver =
        mgo_value_pointer(&tree, "/metadata/annotations/applicationVersion");
    CU_ASSERT_TRUE(ver != NULL && ver->kind == MGO_V_STR && strcmp(ver->as.str.ptr, "1.0") == 0);
    char v10[MGO_DIGEST_STR_SIZE], v11[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_EQUAL(mgo_doc_digest(&tree, v10), MGO_OK);
    d.application_version = "1.1";
    CU_ASSERT_EQUAL_FATAL(mgo_app_deployment_to_value(&d, &arena, &tree), MGO_OK);
    CU_ASSERT_EQUAL(mgo_doc_digest(&tree, v11), MGO_OK);
    CU_ASSERT_STRING_NOT_EQUAL(v10, v11); /* another version, another digest */
    mgo_buf_cleanup(&buf);
    /* helm profile: only greeting targets the chart */
    CU_ASSERT_EQUAL_FATAL(
        mgo_params_build_deployment(&app, &app.profiles[0], &r, id, "dev1", &arena, &d), MGO_OK);
    CU_ASSERT_EQUAL(d.profile.type, MGO_PROFILE_HELM);
    CU_ASSERT_EQUAL_FATAL(d.parameters_len, 1);
    CU_ASSERT_STRING_EQUAL(d.parameters[0].name, "greeting");
    CU_ASSERT_STRING_EQUAL(d.parameters[0].targets[0].pointer, "greeting");
    mgo_arena_cleanup(&arena);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"valid answers with defaults", test_valid_answers_with_defaults},
        {"one problem per bad field", test_one_problem_per_bad_field},
        {"required and types", test_required_and_types},
        {"immutable on change", test_immutable_on_change},
        {"build deployment per profile", test_build_deployment_per_profile},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager params", cases);
}
