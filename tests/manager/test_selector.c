/* test_selector.c - label checks and the label selector: every operator, blanks, the bounds
 * (at and one past each), and the byte position and rule of each refusal. */
#include "mgo_test.h"

#include <stdio.h>
#include <string.h>

#include "mgo/selector.h"

static struct mgo_selector sel;

static const struct mgo_label LABELS[] = {
    {"site", "plant-7"}, {"tier", "prod"}, {"env", "b"}, {"gpu", ""}, {"example.com/zone", "z1"},
};
#define NLABELS (sizeof LABELS / sizeof LABELS[0])

static bool sel_matches(const char *text)
{
    char err[MGO_SELECTOR_ERR_SIZE] = "";
    mgo_err e = mgo_selector_parse(text, &sel, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(e, MGO_OK);
    return mgo_selector_match(&sel, LABELS, NLABELS, NULL, 0);
}

static void test_operators(void)
{
    CU_ASSERT_TRUE(sel_matches(""));
    CU_ASSERT_TRUE(sel_matches("   "));
    CU_ASSERT_TRUE(sel_matches("site=plant-7"));
    CU_ASSERT_TRUE(sel_matches("site==plant-7"));
    CU_ASSERT_FALSE(sel_matches("site=plant-8"));
    CU_ASSERT_TRUE(sel_matches("tier!=canary"));
    CU_ASSERT_FALSE(sel_matches("tier!=prod"));
    CU_ASSERT_TRUE(sel_matches("missing!=x")); /* absent satisfies != */
    CU_ASSERT_TRUE(sel_matches("env in (a,b)"));
    CU_ASSERT_TRUE(sel_matches("env in(a, b )"));
    CU_ASSERT_FALSE(sel_matches("env in (a,c)"));
    CU_ASSERT_FALSE(sel_matches("missing in (a)"));
    CU_ASSERT_TRUE(sel_matches("env notin (c)"));
    CU_ASSERT_FALSE(sel_matches("env notin (b)"));
    CU_ASSERT_TRUE(sel_matches("missing notin (b)"));
    CU_ASSERT_TRUE(sel_matches("gpu"));
    CU_ASSERT_FALSE(sel_matches("!gpu"));
    CU_ASSERT_TRUE(sel_matches("!legacy"));
    CU_ASSERT_FALSE(sel_matches("legacy"));
    CU_ASSERT_TRUE(sel_matches("gpu="));
    CU_ASSERT_TRUE(sel_matches("example.com/zone=z1"));
    CU_ASSERT_TRUE(sel_matches("site=plant-7,tier!=canary,env in (a,b),env notin (c),gpu,!legacy"));
    CU_ASSERT_TRUE(sel_matches(" site = plant-7 , ! legacy "));
    CU_ASSERT_FALSE(sel_matches("site=plant-7,tier=canary"));
    CU_ASSERT_EQUAL(sel.reqs_len, 2);
    CU_ASSERT_EQUAL(sel.reqs[1].op, MGO_SEL_EQ);
    CU_ASSERT_STRING_EQUAL(sel.reqs[1].key, "tier");
    CU_ASSERT_STRING_EQUAL(sel.reqs[1].values[0], "canary");
}

static void test_reasons(void)
{
    char why[256];
    char err[MGO_SELECTOR_ERR_SIZE];
    CU_ASSERT_EQUAL_FATAL(mgo_selector_parse("site=plant-7,tier!=prod", &sel, err, sizeof err),
                          MGO_OK);
    CU_ASSERT_FALSE(mgo_selector_match(&sel, LABELS, NLABELS, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "label tier=prod does not satisfy tier!=prod");
    CU_ASSERT_EQUAL_FATAL(mgo_selector_parse("rack in (r1,r2)", &sel, err, sizeof err), MGO_OK);
    CU_ASSERT_FALSE(mgo_selector_match(&sel, LABELS, NLABELS, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "no label rack (selector wants rack in (r1,r2))");
}

/* text must be refused with code and exactly the message. */
static void refused(const char *text, mgo_err code, const char *message)
{
    char err[MGO_SELECTOR_ERR_SIZE] = "";
    mgo_err e = mgo_selector_parse(text, &sel, err, sizeof err);
    CU_ASSERT_EQUAL(e, code);
    if (strcmp(err, message) != 0)
        fprintf(stderr, "selector \"%.40s\": got \"%s\", want \"%s\"\n", text, err, message);
    CU_ASSERT_STRING_EQUAL(err, message);
}

static void test_refusals(void)
{
    refused("site=a,", MGO_ERR_INVALID, "at byte 7: expected a requirement after ','");
    refused(",site", MGO_ERR_INVALID, "at byte 0: expected a label key");
    refused("site=a b", MGO_ERR_INVALID, "at byte 7: expected ',' between requirements");
    refused("site=a*", MGO_ERR_INVALID,
            "at byte 6: a label value holds only letters, digits and . _ -");
    refused("-site", MGO_ERR_INVALID, "at byte 0: a label key starts with a letter or digit");
    refused("env in a,b", MGO_ERR_INVALID, "at byte 7: expected '(' after in/notin");
    refused("env in (a,b", MGO_ERR_INVALID, "at byte 11: expected ',' or ')' in a set of values");
    refused("env in ()", MGO_ERR_INVALID, "at byte 8: expected a value (letters, digits, . _ -)");
    refused("env < 3", MGO_ERR_INVALID,
            "at byte 4: expected '=', '==', '!=', 'in', 'notin', ',' or the end after a key");
    refused("!", MGO_ERR_INVALID, "at byte 1: expected a label key");
}

static void test_bounds(void)
{
    char text[2 * MGO_SELECTOR_MAX_LEN];
    char err[MGO_SELECTOR_ERR_SIZE];
    /* a key of 128 bytes is fine, 129 is not */
    memset(text, 'k', 128);
    text[128] = '\0';
    CU_ASSERT_EQUAL(mgo_selector_parse(text, &sel, err, sizeof err), MGO_OK);
    memset(text, 'k', 129);
    text[129] = '\0';
    refused(text, MGO_ERR_LIMIT, "at byte 0: a label key has at most 128 bytes");
    /* 32 requirements are fine, 33 are not */
    text[0] = '\0';
    for (int i = 0; i < 32; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%sk%d", i ? "," : "", i);
    CU_ASSERT_EQUAL(mgo_selector_parse(text, &sel, err, sizeof err), MGO_OK);
    CU_ASSERT_EQUAL(sel.reqs_len, 32);
    size_t at = strlen(text) + 1;
    strcat(text, ",k32");
    char want[96];
    snprintf(want, sizeof want, "at byte %zu: a selector has at most 32 requirements", at);
    refused(text, MGO_ERR_LIMIT, want);
    /* 16 values in a set are fine, 17 are not */
    strcpy(text, "e in (");
    for (int i = 0; i < 16; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%sv%d", i ? "," : "", i);
    strcat(text, ")");
    CU_ASSERT_EQUAL(mgo_selector_parse(text, &sel, err, sizeof err), MGO_OK);
    CU_ASSERT_EQUAL(sel.reqs[0].values_len, 16);
    text[strlen(text) - 1] = '\0';
    at = strlen(text) + 1;
    strcat(text, ",v16)");
    snprintf(want, sizeof want, "at byte %zu: a set has at most 16 values", at);
    refused(text, MGO_ERR_LIMIT, want);
    /* 1024 bytes are fine, 1025 are not */
    memset(text, ' ', MGO_SELECTOR_MAX_LEN);
    text[MGO_SELECTOR_MAX_LEN - 1] = 'x';
    text[MGO_SELECTOR_MAX_LEN] = '\0';
    CU_ASSERT_EQUAL(mgo_selector_parse(text, &sel, err, sizeof err), MGO_OK);
    text[MGO_SELECTOR_MAX_LEN] = 'y';
    text[MGO_SELECTOR_MAX_LEN + 1] = '\0';
    refused(text, MGO_ERR_LIMIT, "at byte 1024: a selector has at most 1024 bytes");
}

static void test_label_checks(void)
{
    char why[128];
    CU_ASSERT_TRUE(mgo_label_key_ok("example.com/tier", why, sizeof why));
    CU_ASSERT_FALSE(mgo_label_key_ok("", why, sizeof why));
    CU_ASSERT_FALSE(mgo_label_key_ok("a b", why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "a label key holds only letters, digits and . _ - /");
    CU_ASSERT_TRUE(mgo_label_value_ok("", why, sizeof why));
    CU_ASSERT_TRUE(mgo_label_value_ok("v1.2_x-y", why, sizeof why));
    CU_ASSERT_FALSE(mgo_label_value_ok("a/b", why, sizeof why));
    char big[MGO_LABEL_MAX_VALUE + 2];
    memset(big, 'v', MGO_LABEL_MAX_VALUE);
    big[MGO_LABEL_MAX_VALUE] = '\0';
    CU_ASSERT_TRUE(mgo_label_value_ok(big, why, sizeof why));
    big[MGO_LABEL_MAX_VALUE] = 'v';
    big[MGO_LABEL_MAX_VALUE + 1] = '\0';
    CU_ASSERT_FALSE(mgo_label_value_ok(big, why, sizeof why));
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"operators", test_operators},       {"reasons", test_reasons},
        {"refusals", test_refusals},         {"bounds", test_bounds},
        {"label checks", test_label_checks}, {NULL, NULL},
    };
    mgo_test_add_suite("manager selector", cases);
}
