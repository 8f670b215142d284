/* test_sensitive.c - configuration settings marked sensitive
 * (x-margo-mqtt-extensions: {sensitive: true}): read from margo.yaml, kept through a round
 * trip struct -> tree -> struct, and a wrong type refused with the field named. */
#include <stdio.h>
#include <string.h>

#include "mgo/margo.h"
#include "mgo_test.h"

/* An app with one sensitive setting (password), one marked false (user) and one without
 * the extension (port). ext is spliced into the password setting. */
static void app_yaml(const char *ext, char *out, size_t size)
{
    snprintf(out, size,
             "apiVersion: margo.org/v1-alpha1\n"
             "kind: ApplicationDescription\n"
             "id: db-client\n"
             "metadata: {name: DB client, version: \"1.0\","
             " catalog: {organization: [{name: Example}]}}\n"
             "deploymentProfiles:\n"
             "  - {type: compose, id: c, components: [{name: app,"
             " properties: {packageLocation: \"http://x/app.tar.gz\"}}]}\n"
             "parameters:\n"
             "  user: {value: admin, targets: [{pointer: DB_USER, components: [app]}]}\n"
             "  password: {targets: [{pointer: DB_PASSWORD, components: [app]}]}\n"
             "  port: {value: 5432, targets: [{pointer: DB_PORT, components: [app]}]}\n"
             "configuration:\n"
             "  sections:\n"
             "    - name: Database\n"
             "      settings:\n"
             "        - {parameter: user, name: User, schema: text,"
             " x-margo-mqtt-extensions: {sensitive: false}}\n"
             "        - {parameter: password, name: Password, schema: text%s}\n"
             "        - {parameter: port, name: Port, schema: num}\n"
             "  schema:\n"
             "    - {name: text, dataType: string}\n"
             "    - {name: num, dataType: integer}\n",
             ext);
}

static mgo_err parse(const char *ext, struct mgo_arena *arena, struct mgo_app_description *app,
                     struct mgo_problems *p)
{
    char text[4096];
    app_yaml(ext, text, sizeof text);
    struct mgo_value tree;
    mgo_problems_init(p);
    mgo_err err = mgo_value_from_yaml(text, strlen(text), arena, &tree, p);
    if (err != MGO_OK)
        return err;
    return mgo_app_description_from_value(&tree, arena, app, p);
}

static const struct mgo_setting *setting(const struct mgo_app_description *app, const char *param)
{
    for (size_t s = 0; s < app->sections_len; s++) {
        for (size_t i = 0; i < app->sections[s].settings_len; i++) {
            if (strcmp(app->sections[s].settings[i].parameter, param) == 0)
                return &app->sections[s].settings[i];
        }
    }
    return NULL;
}

static void test_flag_read(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    struct mgo_app_description app;
    CU_ASSERT_EQUAL_FATAL(parse(", x-margo-mqtt-extensions: {sensitive: true}", &arena, &app, &p),
                          MGO_OK);
    const struct mgo_setting *pw = setting(&app, "password");
    const struct mgo_setting *user = setting(&app, "user");
    const struct mgo_setting *port = setting(&app, "port");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pw);
    CU_ASSERT_PTR_NOT_NULL_FATAL(user);
    CU_ASSERT_PTR_NOT_NULL_FATAL(port);
    CU_ASSERT_TRUE(pw->sensitive);
    CU_ASSERT_FALSE(user->sensitive); /* explicitly false */
    CU_ASSERT_FALSE(port->sensitive); /* no extension at all */
    mgo_arena_cleanup(&arena);
}

static void test_flag_round_trip(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    struct mgo_app_description app, back;
    CU_ASSERT_EQUAL_FATAL(parse(", x-margo-mqtt-extensions: {sensitive: true}", &arena, &app, &p),
                          MGO_OK);
    struct mgo_value tree;
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_to_value(&app, &arena, &tree), MGO_OK);
    /* the flag is written back where margo.yaml had it; false is not written */
    const struct mgo_value *flag = mgo_value_pointer(
        &tree, "/configuration/sections/0/settings/1/x-margo-mqtt-extensions/sensitive");
    CU_ASSERT_TRUE(flag != NULL && flag->kind == MGO_V_BOOL && flag->as.b);
    CU_ASSERT_PTR_NULL(
        mgo_value_pointer(&tree, "/configuration/sections/0/settings/0/x-margo-mqtt-extensions"));
    CU_ASSERT_PTR_NULL(
        mgo_value_pointer(&tree, "/configuration/sections/0/settings/2/x-margo-mqtt-extensions"));
    /* and survives MessagePack */
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_msgpack(&tree, &b), MGO_OK);
    struct mgo_value again;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(b.data, b.len, &arena, &again, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_app_description_from_value(&again, &arena, &back, &p), MGO_OK);
    CU_ASSERT_TRUE(setting(&back, "password")->sensitive);
    CU_ASSERT_FALSE(setting(&back, "user")->sensitive);
    CU_ASSERT_FALSE(setting(&back, "port")->sensitive);
    mgo_buf_cleanup(&b);
    mgo_arena_cleanup(&arena);
}

static bool has_problem(const struct mgo_problems *p, const char *field, const char *text)
{
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(p->items[i].field, field) == 0 && strstr(p->items[i].rule, text) != NULL)
            return true;
    }
    return false;
}

static void test_flag_wrong_type(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    struct mgo_app_description app;
    /* "yes" as a quoted string is not a boolean: refused, not silently "not sensitive" */
    CU_ASSERT_EQUAL(parse(", x-margo-mqtt-extensions: {sensitive: \"yes\"}", &arena, &app, &p),
                    MGO_ERR_INVALID);
    if (!has_problem(&p, "configuration.sections[0].settings[1].x-margo-mqtt-extensions.sensitive",
                     "must be a boolean"))
        for (size_t i = 0; i < p.count; i++)
            fprintf(stderr, "problem: %s: %s\n", p.items[i].field, p.items[i].rule);
    CU_ASSERT_TRUE(
        has_problem(&p, "configuration.sections[0].settings[1].x-margo-mqtt-extensions.sensitive",
                    "must be a boolean"));
    mgo_arena_cleanup(&arena);
    mgo_arena_init(&arena, 1u << 20);
    CU_ASSERT_EQUAL(parse(", x-margo-mqtt-extensions: true", &arena, &app, &p), MGO_ERR_INVALID);
    CU_ASSERT_TRUE(
        has_problem(&p, "configuration.sections[0].settings[1].x-margo-mqtt-extensions", "map"));
    mgo_arena_cleanup(&arena);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"sensitive flag read from the setting's extension", test_flag_read},
        {"sensitive flag survives to_value and MessagePack", test_flag_round_trip},
        {"sensitive flag of the wrong type refused, field named", test_flag_wrong_type},
        {NULL, NULL},
    };
    mgo_test_add_suite("sensitive settings", cases);
}
