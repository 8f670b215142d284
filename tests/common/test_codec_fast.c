/* test_codec_fast.c - the fast paths of the MessagePack decoder and the typed readers give
 * the same answers as the plain ones: maps that arrive sorted or not, duplicate keys either
 * way, UTF-8 around the word sizes of the ASCII checks (7/8/9, 15/16/17 bytes), strings
 * terminated in the arena's copy of the message (the caller's bytes are left alone), small
 * and large maps (linear and binary key search), and problem paths with nested indexes
 * spelled out only when a problem is recorded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/value.h"
#include "mgo_test.h"

/* ---- a raw MessagePack writer (independent of msgpack-c and of our encoder) ------------ */

struct raw {
    uint8_t b[4096];
    size_t len;
};

static void raw_put(struct raw *r, const void *p, size_t n)
{
    CU_ASSERT_FATAL(r->len + n <= sizeof r->b);
    memcpy(r->b + r->len, p, n);
    r->len += n;
}

static void raw_u8(struct raw *r, uint8_t x)
{
    raw_put(r, &x, 1);
}

static void raw_str(struct raw *r, const char *s, size_t n)
{
    if (n < 32) {
        raw_u8(r, (uint8_t)(0xa0 | n));
    } else {
        raw_u8(r, 0xd9);
        raw_u8(r, (uint8_t)n);
    }
    raw_put(r, s, n);
}

static void raw_cstr(struct raw *r, const char *s)
{
    raw_str(r, s, strlen(s));
}

struct ctx {
    struct mgo_arena arena;
    struct mgo_problems p;
    struct mgo_value v;
};

static mgo_err decode(struct ctx *c, const struct raw *r)
{
    mgo_arena_init(&c->arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(&c->p);
    memset(&c->v, 0, sizeof c->v);
    return mgo_value_from_msgpack(r->b, r->len, &c->arena, &c->v, &c->p);
}

static void expect_refusal(const struct raw *r, const char *rule)
{
    struct ctx c;
    CU_ASSERT_EQUAL(decode(&c, r), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(c.p.count, 1);
    if (c.p.count > 0) {
        CU_ASSERT_STRING_EQUAL(c.p.items[0].field, "$");
        CU_ASSERT_STRING_EQUAL(c.p.items[0].rule, rule);
    }
    mgo_arena_cleanup(&c.arena);
}

/* ---- maps: order and duplicates ------------------------------------------------------- */

static void check_abc(const struct mgo_value *v)
{
    CU_ASSERT_EQUAL_FATAL(v->kind, MGO_V_MAP);
    CU_ASSERT_EQUAL_FATAL(v->as.map.len, 4);
    /* bytewise order, a prefix first */
    CU_ASSERT_STRING_EQUAL(v->as.map.items[0].key, "a");
    CU_ASSERT_STRING_EQUAL(v->as.map.items[1].key, "ab");
    CU_ASSERT_STRING_EQUAL(v->as.map.items[2].key, "b");
    CU_ASSERT_STRING_EQUAL(v->as.map.items[3].key, "ba");
    const struct mgo_value *x = mgo_value_get(v, "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    CU_ASSERT_EQUAL(x->as.u, 2);
    CU_ASSERT_PTR_NULL(mgo_value_get(v, "abc"));
    CU_ASSERT_PTR_NULL(mgo_value_get(v, ""));
    CU_ASSERT_PTR_NULL(mgo_value_get(v, "c"));
}

static void test_map_sorted_and_unsorted(void)
{
    static const char *const sorted[] = {"a", "ab", "b", "ba"};
    static const uint8_t values_sorted[] = {1, 2, 3, 4};
    static const char *const unsorted[] = {"ba", "ab", "b", "a"};
    static const uint8_t values_unsorted[] = {4, 2, 3, 1};
    for (int pass = 0; pass < 2; pass++) {
        const char *const *keys = pass ? unsorted : sorted;
        const uint8_t *vals = pass ? values_unsorted : values_sorted;
        struct raw r = {.len = 0};
        raw_u8(&r, 0x84);
        for (int i = 0; i < 4; i++) {
            raw_cstr(&r, keys[i]);
            raw_u8(&r, vals[i]);
        }
        struct ctx c;
        CU_ASSERT_EQUAL_FATAL(decode(&c, &r), MGO_OK);
        check_abc(&c.v);
        /* the canonical encoding is the sorted one, whatever order came in */
        struct mgo_buf out;
        mgo_buf_init(&out, MGO_MAX_MESSAGE_BYTES);
        CU_ASSERT_EQUAL(mgo_value_to_msgpack(&c.v, &out), MGO_OK);
        CU_ASSERT_EQUAL(out.len, r.len);
        CU_ASSERT_EQUAL(out.data[1], 0xa1);
        CU_ASSERT_EQUAL(out.data[2], 'a');
        mgo_buf_cleanup(&out);
        mgo_arena_cleanup(&c.arena);
    }
}

static void test_map_duplicates_both_ways(void)
{
    /* adjacent duplicate in otherwise sorted order, and a duplicate found only by sorting */
    static const char *const cases[][3] = {
        {"a", "a", "b"}, {"a", "b", "b"}, {"b", "a", "b"}, {"", "x", ""}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        struct raw r = {.len = 0};
        raw_u8(&r, 0x83);
        for (int i = 0; i < 3; i++) {
            raw_cstr(&r, cases[k][i]);
            raw_u8(&r, 0xc0);
        }
        expect_refusal(&r, "map has a duplicate key");
    }
    /* nested: the inner map's problem is the one reported */
    struct raw r = {.len = 0};
    raw_u8(&r, 0x81);
    raw_cstr(&r, "outer");
    raw_u8(&r, 0x82);
    raw_cstr(&r, "k");
    raw_u8(&r, 1);
    raw_cstr(&r, "k");
    raw_u8(&r, 2);
    expect_refusal(&r, "map has a duplicate key");
}

/* ---- UTF-8 at the word boundaries of the ASCII checks ------------------------------------ */

static const size_t lengths[] = {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33};

static void test_utf8_lengths_valid(void)
{
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li];
        char s[64];
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + i % 26);
        /* as a value (last object of the message) and as a key */
        struct raw r = {.len = 0};
        raw_u8(&r, 0x92);
        raw_u8(&r, 0x81);
        raw_str(&r, s, n);
        raw_u8(&r, 7);
        raw_str(&r, s, n);
        uint8_t before[sizeof r.b];
        memcpy(before, r.b, r.len);
        struct ctx c;
        CU_ASSERT_EQUAL_FATAL(decode(&c, &r), MGO_OK);
        CU_ASSERT_EQUAL(memcmp(before, r.b, r.len), 0); /* the caller's bytes are untouched */
        const struct mgo_value *m = &c.v.as.array.items[0], *str = &c.v.as.array.items[1];
        CU_ASSERT_EQUAL(m->as.map.items[0].key_len, n);
        CU_ASSERT_EQUAL(strlen(m->as.map.items[0].key), n);
        CU_ASSERT_EQUAL(memcmp(m->as.map.items[0].key, s, n), 0);
        CU_ASSERT_EQUAL(m->as.map.items[0].value.as.u, 7);
        CU_ASSERT_EQUAL(str->kind, MGO_V_STR);
        CU_ASSERT_EQUAL(str->as.str.len, n);
        CU_ASSERT_EQUAL(strlen(str->as.str.ptr), n);
        CU_ASSERT_EQUAL(memcmp(str->as.str.ptr, s, n), 0);
        mgo_arena_cleanup(&c.arena);
    }
}

static void test_utf8_lengths_bad_byte_everywhere(void)
{
    /* 0xff (never valid), NUL and a lone continuation byte at every position */
    static const char bad[] = {(char)0xff, '\0', (char)0x80};
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
        size_t n = lengths[li];
        for (size_t at = 0; at < n; at++) {
            for (size_t b = 0; b < sizeof bad; b++) {
                char s[64];
                memset(s, 'k', n);
                s[at] = bad[b];
                struct raw r = {.len = 0};
                raw_str(&r, s, n);
                expect_refusal(&r, "string is not valid UTF-8 or contains NUL");
                r.len = 0;
                raw_u8(&r, 0x81);
                raw_str(&r, s, n);
                raw_u8(&r, 0xc0);
                expect_refusal(&r, "map key is not valid UTF-8 or contains NUL");
            }
        }
    }
}

static void test_utf8_multibyte_across_words(void)
{
    /* "é" (2 bytes), "€" (3), U+1F600 (4) ending at, straddling and after word boundaries */
    static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t ci = 0; ci < 3; ci++) {
        size_t cl = strlen(chars[ci]);
        for (size_t pre = 0; pre <= 17; pre++) {
            char s[64];
            memset(s, 'x', pre);
            memcpy(s + pre, chars[ci], cl);
            memcpy(s + pre + cl, "yz", 2);
            size_t n = pre + cl + 2;
            struct raw r = {.len = 0};
            raw_str(&r, s, n);
            struct ctx c;
            CU_ASSERT_EQUAL(decode(&c, &r), MGO_OK);
            CU_ASSERT_EQUAL(c.v.as.str.len, n);
            CU_ASSERT_EQUAL(memcmp(c.v.as.str.ptr, s, n), 0);
            CU_ASSERT_EQUAL(c.v.as.str.ptr[n], '\0');
            mgo_arena_cleanup(&c.arena);
            /* truncated character: refused */
            r.len = 0;
            raw_str(&r, s, pre + cl - 1);
            expect_refusal(&r, "string is not valid UTF-8 or contains NUL");
        }
    }
}

static void test_bin_and_empty(void)
{
    struct raw r = {.len = 0};
    raw_u8(&r, 0x94);
    raw_u8(&r, 0xc4); /* bin 8 with bytes that are not UTF-8: kept as they are */
    raw_u8(&r, 3);
    raw_put(&r, "\xff\x00\x80", 3);
    raw_u8(&r, 0xa0); /* "" */
    raw_u8(&r, 0x90); /* [] */
    raw_u8(&r, 0x80); /* {} */
    struct ctx c;
    CU_ASSERT_EQUAL_FATAL(decode(&c, &r), MGO_OK);
    const struct mgo_value *it = c.v.as.array.items;
    CU_ASSERT_EQUAL(it[0].kind, MGO_V_BIN);
    CU_ASSERT_EQUAL(it[0].as.str.len, 3);
    CU_ASSERT_EQUAL(memcmp(it[0].as.str.ptr, "\xff\x00\x80", 4), 0); /* NUL-terminated too */
    CU_ASSERT_EQUAL(it[1].kind, MGO_V_STR);
    CU_ASSERT_STRING_EQUAL(it[1].as.str.ptr, "");
    CU_ASSERT_EQUAL(it[2].kind, MGO_V_ARRAY);
    CU_ASSERT_EQUAL(it[2].as.array.len, 0);
    CU_ASSERT_EQUAL(it[3].kind, MGO_V_MAP);
    CU_ASSERT_EQUAL(it[3].as.map.len, 0);
    mgo_arena_cleanup(&c.arena);
}

static void test_arena_cap(void)
{
    /* a tree that does not fit the cap in one piece: nodes come one by one and the cap is
     * reported as before; one that fits decodes under the same small cap */
    struct raw r = {.len = 0};
    raw_u8(&r, 0xdc);
    raw_u8(&r, 0);
    raw_u8(&r, 200);
    for (int i = 0; i < 200; i++)
        raw_cstr(&r, "abcdefghij");
    struct mgo_arena arena;
    struct mgo_problems p;
    struct mgo_value v;
    mgo_arena_init(&arena, 4096);
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL(mgo_value_from_msgpack(r.b, r.len, &arena, &v, &p), MGO_ERR_NOMEM);
    CU_ASSERT_EQUAL_FATAL(p.count, 1);
    CU_ASSERT_STRING_EQUAL(p.items[0].rule, "document needs more than MGO_MAX_DOC_ARENA_BYTES");
    mgo_arena_cleanup(&arena);

    r.len = 0;
    raw_u8(&r, 0x92);
    raw_cstr(&r, "small");
    raw_cstr(&r, "tree");
    mgo_arena_init(&arena, 4096);
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(r.b, r.len, &arena, &v, &p), MGO_OK);
    CU_ASSERT_STRING_EQUAL(v.as.array.items[1].as.str.ptr, "tree");
    mgo_arena_cleanup(&arena);
}

/* ---- the typed reader: lookups and problem paths ----------------------------------------- */

static const char deployment_yaml[] =
    "apiVersion: application.margo.org/v1alpha1\n"
    "kind: ApplicationDeployment\n"
    "id: 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\n"
    "metadata:\n"
    "  annotations: {applicationId: vision, id: 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f}\n"
    "  name: vision\n"
    "  namespace: line-7\n"
    "spec:\n"
    "  applicationId: vision\n"
    "  deploymentProfile:\n"
    "    type: compose\n"
    "    components:\n"
    "      - {name: camera, properties: {packageLocation: 'https://r.example/a.tgz'}}\n"
    "      - {name: engine, properties: {packageLocation: 'https://r.example/b.tgz'}}\n"
    "      - name: %s\n"
    "        properties:\n"
    "          packageLocation: 'https://r.example/c.tgz'\n"
    "          timeout: %s\n"
    "%s"
    "  parameters:\n"
    "    cameraUrl:\n"
    "      value: rtsp://10.7.0.21/s1\n"
    "      targets: [{pointer: URL, components: [camera, %s]}]\n";

/* Decodes a deployment written in YAML (YAML -> tree -> MessagePack -> typed). */
static mgo_err decode_dep_yaml(const char *yaml, struct mgo_app_deployment *d,
                               struct mgo_arena *arena, struct mgo_problems *p)
{
    mgo_arena_init(arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(p);
    struct mgo_value tree;
    if (mgo_value_from_yaml(yaml, strlen(yaml), arena, &tree, p) != MGO_OK)
        return MGO_ERR_PARSE;
    struct mgo_buf mp;
    mgo_buf_init(&mp, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_value_to_msgpack(&tree, &mp);
    CU_ASSERT_EQUAL_FATAL(err, MGO_OK);
    err = mgo_app_deployment_decode(mp.data, mp.len, arena, d, p);
    mgo_buf_cleanup(&mp);
    return err;
}

/* Decodes the deployment above with its blanks filled. */
static mgo_err decode_dep(const char *name, const char *timeout, const char *extra,
                          const char *target, struct mgo_app_deployment *d, struct mgo_arena *arena,
                          struct mgo_problems *p)
{
    char yaml[4096];
    int n = snprintf(yaml, sizeof yaml, deployment_yaml, name, timeout, extra, target);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof yaml);
    return decode_dep_yaml(yaml, d, arena, p);
}

static void test_problem_paths_nested(void)
{
    struct mgo_app_deployment d;
    struct mgo_arena arena;
    struct mgo_problems p;
    CU_ASSERT_EQUAL(decode_dep("viewer", "1m0s", "", "engine", &d, &arena, &p), MGO_OK);
    CU_ASSERT_EQUAL(d.profile.components_len, 3);
    CU_ASSERT_STRING_EQUAL(d.profile.components[2].timeout, "1m0s");
    mgo_arena_cleanup(&arena);

    CU_ASSERT_EQUAL(decode_dep("Bad_Name", "soon", "", "nowhere", &d, &arena, &p), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL_FATAL(p.count, 3);
    CU_ASSERT_STRING_EQUAL(p.items[0].field, "spec.deploymentProfile.components[2].name");
    CU_ASSERT_STRING_EQUAL(p.items[0].rule,
                           "\"Bad_Name\" must be lowercase letters, digits and dashes");
    CU_ASSERT_STRING_EQUAL(p.items[1].field,
                           "spec.deploymentProfile.components[2].properties.timeout");
    CU_ASSERT_STRING_EQUAL(p.items[1].rule, "\"soon\" must match ^[0-9]+m[0-9]+s$ (e.g. 8m30s)");
    CU_ASSERT_STRING_EQUAL(p.items[2].field, "spec.parameters.cameraUrl.targets[0].components[1]");
    CU_ASSERT_STRING_EQUAL(p.items[2].rule,
                           "\"nowhere\" is not a component of any deployment profile");
    mgo_arena_cleanup(&arena);
}

static void test_large_map_lookup(void)
{
    /* properties with 20 extra keys: more than the linear search takes, so the binary
     * search finds the known ones (keys before, between and after them) */
    char extra[2048];
    size_t used = 0;
    static const char *const keys[] = {"a0",
                                       "k1",
                                       "key",
                                       "keyLocationX",
                                       "pack",
                                       "packageLocatio",
                                       "packageLocationZ",
                                       "r",
                                       "repositor",
                                       "revisions",
                                       "t",
                                       "timeou",
                                       "timeouts",
                                       "w",
                                       "wai",
                                       "waits",
                                       "x1",
                                       "x2",
                                       "y",
                                       "z"};
    used += (size_t)snprintf(extra + used, sizeof extra - used, "          keyLocation: k\n");
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        used +=
            (size_t)snprintf(extra + used, sizeof extra - used, "          %s: %zu\n", keys[i], i);
    CU_ASSERT_FATAL(used < sizeof extra);
    struct mgo_app_deployment d;
    struct mgo_arena arena;
    struct mgo_problems p;
    CU_ASSERT_EQUAL_FATAL(decode_dep("viewer", "2m30s", extra, "viewer", &d, &arena, &p), MGO_OK);
    const struct mgo_component *c = &d.profile.components[2];
    CU_ASSERT_STRING_EQUAL(c->package_location, "https://r.example/c.tgz");
    CU_ASSERT_STRING_EQUAL(c->key_location, "k");
    CU_ASSERT_STRING_EQUAL(c->timeout, "2m30s");
    CU_ASSERT_EQUAL(c->timeout_s, 150);
    CU_ASSERT_PTR_NULL(c->repository);
    CU_ASSERT_PTR_NULL(c->revision);
    CU_ASSERT(c->wait);
    mgo_arena_cleanup(&arena);
}

/* Success when rule is NULL, otherwise exactly one problem with that field and rule. */
static void expect_outcome(mgo_err err, const struct mgo_problems *p, const char *field,
                           const char *rule)
{
    if (rule == NULL) {
        CU_ASSERT_EQUAL(err, MGO_OK);
        CU_ASSERT_EQUAL(p->count, 0);
    } else {
        CU_ASSERT_EQUAL(err, MGO_ERR_INVALID);
        CU_ASSERT_EQUAL_FATAL(p->count, 1);
        CU_ASSERT_STRING_EQUAL(p->items[0].field, field);
        CU_ASSERT_STRING_EQUAL(p->items[0].rule, rule);
    }
}

/* Decodes the deployment with one blank filled and expects either success (rule NULL) or
 * exactly one problem with that field and rule. */
static void expect_dep(const char *name, const char *extra, const char *field, const char *rule)
{
    struct mgo_app_deployment d;
    struct mgo_arena arena;
    struct mgo_problems p;
    mgo_err err = decode_dep(name, "1m0s", extra, "camera", &d, &arena, &p);
    expect_outcome(err, &p, field, rule);
    mgo_arena_cleanup(&arena);
}

#define COMP2 "spec.deploymentProfile.components[2]"

static void test_reader_fallbacks(void)
{
    /* the inline readers hand everything but a present, well-typed field to the checks of
     * old: each problem is worded and placed as before */
    expect_dep("null", "", COMP2 ".name", "is required and must not be null");
    expect_dep("7", "", COMP2 ".name", "must be a string, got integer");
    expect_dep("[a]", "", COMP2 ".name", "must be a string, got array");
    char long_name[300];
    memset(long_name, 'a', 254);
    long_name[254] = '\0';
    expect_dep(long_name, "", COMP2 ".name", "is 254 bytes long, at most 253 allowed");
    long_name[253] = '\0';
    expect_dep(long_name, "", NULL, NULL);
    expect_dep("viewer", "          wait: 'yes'\n", COMP2 ".properties.wait",
               "must be a boolean, got string");
    expect_dep("viewer", "          wait: null\n", NULL, NULL);
    expect_dep("viewer", "          revision: 7\n", COMP2 ".properties.revision",
               "must be a string, got integer");
    expect_dep("viewer", "          repository: null\n", NULL, NULL);
    expect_dep("viewer", "          repository: [oci://x]\n", COMP2 ".properties.repository",
               "must be a string, got array");
}

static void test_component_names(void)
{
    expect_dep("a", "", NULL, NULL);
    expect_dep("'-'", "", NULL, NULL);
    expect_dep("abc-09-xyz", "", NULL, NULL);
    expect_dep("''", "", COMP2 ".name", "\"\" must be lowercase letters, digits and dashes");
    expect_dep("aBc", "", COMP2 ".name", "\"aBc\" must be lowercase letters, digits and dashes");
    expect_dep("a_b", "", COMP2 ".name", "\"a_b\" must be lowercase letters, digits and dashes");
    expect_dep("\"caf\\u00e9\"", "", COMP2 ".name",
               "\"caf\xc3\xa9\" must be lowercase letters, digits and dashes");
    expect_dep("camera", "", COMP2 ".name", "\"camera\" is used by another component");
}

/* A one-component deployment with the given kind, deviceId and component properties. */
static const char small_dep_yaml[] =
    "kind: %s\n"
    "id: 6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f\n"
    "metadata: {name: n, namespace: ns, deviceId: '%s', annotations: {applicationId: app}}\n"
    "spec:\n"
    "  deploymentProfile:\n"
    "    type: compose\n"
    "    components: [{name: c, properties: {%s}}]\n";

static void expect_small(const char *kind, const char *device, const char *props, const char *field,
                         const char *rule)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof yaml, small_dep_yaml, kind, device, props);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof yaml);
    struct mgo_app_deployment d;
    struct mgo_arena arena;
    struct mgo_problems p;
    mgo_err err = decode_dep_yaml(yaml, &d, &arena, &p);
    expect_outcome(err, &p, field, rule);
    mgo_arena_cleanup(&arena);
}

#define KIND "ApplicationDeployment"
#define LOC "spec.deploymentProfile.components[0].properties.packageLocation"
#define URL_RULE "must be an http:// or https:// URL"

static void test_prefixes_and_kind(void)
{
    /* prefixes compared by length: shorter texts, the exact prefix, near misses */
    expect_small(KIND, "d", "packageLocation: 'http://'", NULL, NULL);
    expect_small(KIND, "d", "packageLocation: 'https://'", NULL, NULL);
    expect_small(KIND, "d", "packageLocation: 'https://x/y.tgz'", NULL, NULL);
    expect_small(KIND, "d", "packageLocation: 'http:/'", LOC, URL_RULE);
    expect_small(KIND, "d", "packageLocation: 'https:/x'", LOC, URL_RULE);
    expect_small(KIND, "d", "packageLocation: 'HTTP://x'", LOC, URL_RULE);
    expect_small(KIND, "d", "packageLocation: ''", LOC, URL_RULE);
    expect_small(KIND, "d", "repository: 'oci://', revision: '1'", NULL, NULL);
    expect_small(KIND, "d", "repository: 'oci:/x', revision: '1'",
                 "spec.deploymentProfile.components[0].properties.repository",
                 "must start with oci://");
    expect_small(KIND "X", "d", "packageLocation: 'http://x'", "kind",
                 "must be \"ApplicationDeployment\", got \"ApplicationDeploymentX\"");
    expect_small("ApplicationDeploymen", "d", "packageLocation: 'http://x'", "kind",
                 "must be \"ApplicationDeployment\", got \"ApplicationDeploymen\"");
    expect_small("applicationDeployment", "d", "packageLocation: 'http://x'", "kind",
                 "must be \"ApplicationDeployment\", got \"applicationDeployment\"");
}

static void test_device_ids(void)
{
    static const char *const good[] = {"d", "Edge.gw_1~-", "a/b/c", "site/gw/*", "A-Z.0_9~"};
    static const char *const bad[] = {"",  "/a",   "a/",          "a//b", "a b", "a/*/b",
                                      "*", "a/b*", "caf\xc3\xa9", "a:b",  "a@b"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect_small(KIND, good[i], "packageLocation: 'http://x'", NULL, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_small(KIND, bad[i], "packageLocation: 'http://x'", "metadata.deviceId",
                     "must match ^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*(/\\*)?$");
}

static void test_uuid_and_app_id(void)
{
    CU_ASSERT(mgo_is_uuid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f"));
    CU_ASSERT(mgo_is_uuid("6F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F"));
    CU_ASSERT(mgo_is_uuid("00000000-0000-0000-0000-000000000000"));
    CU_ASSERT(!mgo_is_uuid(""));
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e"));
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5"));   /* 35 */
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f0")); /* 37 */
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e4-b5a-4c6d-8e7f-0a1b2c3d4e5f"));  /* dash moved */
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5g"));
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e-f"));
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e_4b5a-4c6d-8e7f-0a1b2c3d4e5f"));
    CU_ASSERT(!mgo_is_uuid("6f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e\xc3\xa9"));
    char id[MGO_MAX_APP_ID_LEN + 2];
    memset(id, 'a', sizeof id);
    id[MGO_MAX_APP_ID_LEN] = '\0';
    CU_ASSERT(mgo_is_app_id(id));
    id[MGO_MAX_APP_ID_LEN] = '-';
    id[MGO_MAX_APP_ID_LEN + 1] = '\0';
    CU_ASSERT(!mgo_is_app_id(id)); /* 201 */
    CU_ASSERT(mgo_is_app_id("a"));
    CU_ASSERT(mgo_is_app_id("-"));
    CU_ASSERT(mgo_is_app_id("factory-vision-09"));
    CU_ASSERT(!mgo_is_app_id(""));
    CU_ASSERT(!mgo_is_app_id("Factory"));
    CU_ASSERT(!mgo_is_app_id("a_b"));
    CU_ASSERT(!mgo_is_app_id("a.b"));
    CU_ASSERT(!mgo_is_app_id("caf\xc3\xa9"));
}

static void test_arena_alloc_raw(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 8192);
    unsigned char *a = mgo_arena_alloc_raw(&arena, 3);
    unsigned char *b = mgo_arena_alloc_raw(&arena, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL((uintptr_t)a % 16, 0);
    CU_ASSERT_EQUAL((uintptr_t)b % 16, 0);
    CU_ASSERT(b >= a + 3);
    memset(b, 0xab, 100); /* all of it is usable */
    CU_ASSERT_PTR_NOT_NULL(mgo_arena_alloc_raw(&arena, 0));
    CU_ASSERT_PTR_NULL(mgo_arena_alloc_raw(&arena, 8193)); /* past the cap */
    /* the zeroing allocation still zeroes, also where raw storage was handed out before */
    mgo_arena_cleanup(&arena);
    mgo_arena_init(&arena, 8192);
    unsigned char *c = mgo_arena_alloc_raw(&arena, 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    memset(c, 0xff, 64);
    unsigned char *z = mgo_arena_alloc(&arena, 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    for (size_t i = 0; i < 64; i++)
        CU_ASSERT_EQUAL_FATAL(z[i], 0);
    mgo_arena_cleanup(&arena);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case decoder[] = {
        {"maps sorted and unsorted", test_map_sorted_and_unsorted},
        {"duplicate keys both ways", test_map_duplicates_both_ways},
        {"UTF-8 lengths valid", test_utf8_lengths_valid},
        {"UTF-8 bad byte at every position", test_utf8_lengths_bad_byte_everywhere},
        {"UTF-8 multibyte across words", test_utf8_multibyte_across_words},
        {"bin and empty values", test_bin_and_empty},
        {"arena cap", test_arena_cap},
        {NULL, NULL},
    };
    static const struct mgo_test_case reader[] = {
        {"problem paths with nested indexes", test_problem_paths_nested},
        {"large map lookup", test_large_map_lookup},
        {"reader fallbacks word problems as before", test_reader_fallbacks},
        {"component names", test_component_names},
        {"prefixes and kind", test_prefixes_and_kind},
        {"device ids", test_device_ids},
        {"UUIDs and application ids", test_uuid_and_app_id},
        {"arena without zeroing", test_arena_alloc_raw},
        {NULL, NULL},
    };
    mgo_test_add_suite("msgpack fast paths", decoder);
    mgo_test_add_suite("typed reader fast paths", reader);
}
