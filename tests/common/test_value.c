/* test_value.c - the generic tree and its decoders under hostile input: truncation, wrong
 * types, oversized and deeply nested values, invalid UTF-8, duplicate keys; every limit of
 * mgo/limits.h at the limit and one past it; JSON export and JSON Pointer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/value.h"
#include "mgo_test.h"

struct ctx {
    struct mgo_arena arena;
    struct mgo_problems p;
    struct mgo_value v;
};

static mgo_err from_mp(struct ctx *c, const void *data, size_t len)
{
    mgo_arena_init(&c->arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(&c->p);
    return mgo_value_from_msgpack(data, len, &c->arena, &c->v, &c->p);
}

static mgo_err from_yaml(struct ctx *c, const char *text, size_t len)
{
    mgo_arena_init(&c->arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(&c->p);
    return mgo_value_from_yaml(text, len, &c->arena, &c->v, &c->p);
}

static void done(struct ctx *c)
{
    mgo_arena_cleanup(&c->arena);
}

/* Raw MessagePack writer for hostile inputs (independent of msgpack-c). */
struct raw {
    uint8_t *b;
    size_t len, cap;
};

static void raw_put(struct raw *r, const void *p, size_t n)
{
    if (r->len + n > r->cap) {
        r->cap = (r->len + n) * 2 + 64;
        r->b = realloc(r->b, r->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r->b);
    }
    memcpy(r->b + r->len, p, n);
    r->len += n;
}

static void raw_u8(struct raw *r, uint8_t x)
{
    raw_put(r, &x, 1);
}

static void raw_be(struct raw *r, uint64_t x, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        raw_u8(r, (uint8_t)(x >> (8 * i)));
}

static void raw_str(struct raw *r, const char *s, size_t n)
{
    if (n < 32) {
        raw_u8(r, (uint8_t)(0xa0 | n));
    } else if (n < 65536) {
        raw_u8(r, 0xda);
        raw_be(r, n, 2);
    } else {
        raw_u8(r, 0xdb);
        raw_be(r, n, 4);
    }
    raw_put(r, s, n);
}

static void raw_array(struct raw *r, size_t n)
{
    raw_u8(r, 0xdc);
    raw_be(r, n, 2);
}

static void raw_map(struct raw *r, size_t n)
{
    raw_u8(r, 0xde);
    raw_be(r, n, 2);
}

/* ---- MessagePack ----------------------------------------------------------------------- */

static void test_msgpack_truncated_everywhere(void)
{
    /* encode a real status, then every proper prefix must be refused cleanly */
    struct mgo_component_status comps[1] = {{.name = "web", .state = MGO_STATE_INSTALLED}};
    struct mgo_deployment_status s = {.deployment_id = "a3e2f5dc-912e-494f-8395-52cf3769bc06",
                                      .state = MGO_STATE_INSTALLED,
                                      .components = comps,
                                      .components_len = 1};
    struct mgo_buf m;
    mgo_buf_init(&m, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL_FATAL(mgo_deployment_status_encode(&s, &m), MGO_OK);
    for (size_t cut = 0; cut < m.len; cut++) {
        struct ctx c;
        mgo_err err = from_mp(&c, m.data, cut);
        CU_ASSERT(err == MGO_ERR_PARSE);
        CU_ASSERT(c.p.count >= 1);
        done(&c);
    }
    struct ctx c;
    CU_ASSERT_EQUAL(from_mp(&c, m.data, m.len), MGO_OK);
    done(&c);
    /* one byte too many: trailing data */
    uint8_t *more = malloc(m.len + 1);
    memcpy(more, m.data, m.len);
    more[m.len] = 0xc0;
    CU_ASSERT_EQUAL(from_mp(&c, more, m.len + 1), MGO_ERR_PARSE);
    CU_ASSERT(strstr(c.p.items[0].rule, "trailing") != NULL);
    done(&c);
    free(more);
    mgo_buf_cleanup(&m);
}

static void test_msgpack_huge_claimed_counts(void)
{
    /* 5 bytes claiming 4 billion items must not allocate anything big */
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
    static const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t bin32[] = {0xc6, 0x00, 0x01, 0x00, 0x00, 'a'};
    struct ctx c;
    CU_ASSERT_EQUAL(from_mp(&c, arr32, sizeof arr32), MGO_ERR_LIMIT);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, map32, sizeof map32), MGO_ERR_LIMIT);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, str32, sizeof str32), MGO_ERR_LIMIT);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, bin32, sizeof bin32), MGO_ERR_LIMIT);
    done(&c);
    /* within the limit but more items than bytes */
    static const uint8_t arr16[] = {0xdc, 0x03, 0xff, 0xc0, 0xc0};
    CU_ASSERT_EQUAL(from_mp(&c, arr16, sizeof arr16), MGO_ERR_PARSE);
    done(&c);
}

static void test_msgpack_limits(void)
{
    struct ctx c;
    struct raw r = {0};
    /* array: MGO_MAX_ARRAY_ITEMS accepted, one more refused */
    raw_array(&r, MGO_MAX_ARRAY_ITEMS);
    for (unsigned i = 0; i < MGO_MAX_ARRAY_ITEMS; i++)
        raw_u8(&r, 0xc0);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_OK);
    CU_ASSERT_EQUAL(c.v.as.array.len, MGO_MAX_ARRAY_ITEMS);
    done(&c);
    r.len = 0;
    raw_array(&r, MGO_MAX_ARRAY_ITEMS + 1);
    for (unsigned i = 0; i <= MGO_MAX_ARRAY_ITEMS; i++)
        raw_u8(&r, 0xc0);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_ERR_LIMIT);
    done(&c);

    /* map entries */
    r.len = 0;
    raw_map(&r, MGO_MAX_MAP_ENTRIES);
    for (unsigned i = 0; i < MGO_MAX_MAP_ENTRIES; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%u", i);
        raw_str(&r, k, (size_t)n);
        raw_u8(&r, 0x01);
    }
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_OK);
    done(&c);
    r.len = 0;
    raw_map(&r, MGO_MAX_MAP_ENTRIES + 1);
    for (unsigned i = 0; i <= MGO_MAX_MAP_ENTRIES; i++) {
        char k[16];
        int n = snprintf(k, sizeof k, "k%u", i);
        raw_str(&r, k, (size_t)n);
        raw_u8(&r, 0x01);
    }
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_ERR_LIMIT);
    done(&c);

    /* string bytes */
    char *big = malloc(MGO_MAX_STRING_BYTES + 1);
    memset(big, 'x', MGO_MAX_STRING_BYTES + 1);
    r.len = 0;
    raw_str(&r, big, MGO_MAX_STRING_BYTES);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_OK);
    CU_ASSERT_EQUAL(c.v.as.str.len, MGO_MAX_STRING_BYTES);
    done(&c);
    r.len = 0;
    raw_str(&r, big, MGO_MAX_STRING_BYTES + 1);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_ERR_LIMIT);
    done(&c);
    free(big);

    /* depth: MGO_MAX_DEPTH nested arrays accepted, one more refused */
    r.len = 0;
    for (unsigned i = 0; i < MGO_MAX_DEPTH; i++)
        raw_u8(&r, 0x91);
    raw_u8(&r, 0x01);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_OK);
    /* what decodes at the depth limit also encodes (found by fuzz_msgpack) */
    struct mgo_buf deep;
    mgo_buf_init(&deep, 1024);
    CU_ASSERT_EQUAL(mgo_value_to_msgpack(&c.v, &deep), MGO_OK);
    CU_ASSERT_EQUAL(deep.len, r.len);
    mgo_buf_cleanup(&deep);
    done(&c);
    r.len = 0;
    for (unsigned i = 0; i < MGO_MAX_DEPTH + 1; i++)
        raw_u8(&r, 0x91);
    raw_u8(&r, 0x01);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_ERR_LIMIT);
    CU_ASSERT(strstr(c.p.items[0].rule, "MGO_MAX_DEPTH") != NULL);
    done(&c);
    /* deeply nested beyond anything (10,000 levels): refused, no stack overflow */
    r.len = 0;
    for (unsigned i = 0; i < 10000; i++)
        raw_u8(&r, 0x91);
    raw_u8(&r, 0x01);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_ERR_LIMIT);
    done(&c);

    /* message size: MGO_MAX_MESSAGE_BYTES accepted (a bin of that total), one more refused */
    r.len = 0;
    raw_array(&r, 64);
    size_t per = (MGO_MAX_MESSAGE_BYTES - 3) / 64; /* bytes per item incl. its 3-byte header */
    char *chunk = calloc(1, MGO_MAX_STRING_BYTES);
    size_t total = 3;
    for (unsigned i = 0; i < 64; i++) {
        size_t body = per - 3;
        if (i == 63)
            body = MGO_MAX_MESSAGE_BYTES - total - 3;
        raw_u8(&r, 0xda);
        raw_be(&r, body, 2);
        memset(chunk, 'y', body);
        raw_put(&r, chunk, body);
        total += 3 + body;
    }
    free(chunk);
    CU_ASSERT_EQUAL(r.len, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_EQUAL(from_mp(&c, r.b, r.len), MGO_OK);
    done(&c);
    uint8_t *over = malloc(MGO_MAX_MESSAGE_BYTES + 1);
    memcpy(over, r.b, r.len);
    over[r.len] = 0xc0;
    CU_ASSERT_EQUAL(from_mp(&c, over, MGO_MAX_MESSAGE_BYTES + 1), MGO_ERR_LIMIT);
    done(&c);
    free(over);
    free(r.b);
}

static void test_msgpack_wrong_shapes(void)
{
    struct ctx c;
    /* duplicate keys */
    static const uint8_t dup[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02};
    CU_ASSERT_EQUAL(from_mp(&c, dup, sizeof dup), MGO_ERR_INVALID);
    CU_ASSERT(strstr(c.p.items[0].rule, "duplicate") != NULL);
    done(&c);
    /* non-string key */
    static const uint8_t intkey[] = {0x81, 0x01, 0x02};
    CU_ASSERT_EQUAL(from_mp(&c, intkey, sizeof intkey), MGO_ERR_INVALID);
    done(&c);
    /* invalid UTF-8: lone continuation byte, overlong '/', surrogate, NUL inside */
    static const uint8_t bad1[] = {0xa2, 0x80, 0x41};
    static const uint8_t bad2[] = {0xa2, 0xc0, 0xaf};
    static const uint8_t bad3[] = {0xa3, 0xed, 0xa0, 0x80};
    static const uint8_t bad4[] = {0xa3, 'a', 0x00, 'b'};
    static const uint8_t good[] = {0xa4, 0xf0, 0x9f, 0x98, 0x80};
    CU_ASSERT_EQUAL(from_mp(&c, bad1, sizeof bad1), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, bad2, sizeof bad2), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, bad3, sizeof bad3), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, bad4, sizeof bad4), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, good, sizeof good), MGO_OK);
    done(&c);
    /* ext types, reserved byte 0xc1, NaN */
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    static const uint8_t c1[] = {0xc1};
    static const uint8_t nan[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL(from_mp(&c, ext, sizeof ext), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, c1, sizeof c1), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, nan, sizeof nan), MGO_ERR_INVALID);
    done(&c);
    CU_ASSERT_EQUAL(from_mp(&c, "", 0), MGO_ERR_PARSE);
    done(&c);

    /* a status whose fields have the wrong types: every field named */
    struct raw r = {0};
    raw_map(&r, 3);
    raw_str(&r, "components", 10);
    raw_str(&r, "x", 1);
    raw_str(&r, "deploymentId", 12);
    raw_u8(&r, 0x05);
    raw_str(&r, "status", 6);
    raw_array(&r, 0);
    struct mgo_deployment_status st;
    mgo_arena_init(&c.arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(&c.p);
    CU_ASSERT_EQUAL(mgo_deployment_status_decode(r.b, r.len, &c.arena, &st, &c.p), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL_FATAL(c.p.count, 3);
    CU_ASSERT_STRING_EQUAL(c.p.items[0].field, "deploymentId");
    CU_ASSERT_STRING_EQUAL(c.p.items[1].field, "status");
    CU_ASSERT_STRING_EQUAL(c.p.items[2].field, "components");
    done(&c);
    /* a document that is not a map */
    r.len = 0;
    raw_array(&r, 0);
    mgo_arena_init(&c.arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(&c.p);
    struct mgo_desired_state ds;
    CU_ASSERT_EQUAL(mgo_desired_state_decode(r.b, r.len, &c.arena, &ds, &c.p), MGO_ERR_INVALID);
    done(&c);
    /* a manifest with more than MGO_MAX_DEPLOYMENTS entries */
    r.len = 0;
    raw_map(&r, 3);
    raw_str(&r, "bundle", 6);
    raw_u8(&r, 0xc0);
    raw_str(&r, "deployments", 11);
    raw_array(&r, MGO_MAX_DEPLOYMENTS + 1);
    for (unsigned i = 0; i <= MGO_MAX_DEPLOYMENTS; i++)
        raw_u8(&r, 0xc0);
    raw_str(&r, "manifestVersion", 15);
    raw_u8(&r, 0x01);
    mgo_arena_init(&c.arena, MGO_MAX_DOC_ARENA_BYTES);
    mgo_problems_init(&c.p);
    CU_ASSERT_EQUAL(mgo_desired_state_decode(r.b, r.len, &c.arena, &ds, &c.p), MGO_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(c.p.items[0].field, "deployments");
    done(&c);
    free(r.b);
}

static void test_msgpack_canonical(void)
{
    /* keys arrive unsorted; re-encoding sorts them; the same tree gives the same bytes */
    static const uint8_t unsorted[] = {0x83, 0xa1, 'b',  0x01, 0xa1, 'a', 0xcd,
                                       0x00, 0x02, 0xa2, 'a',  'a',  0xc3};
    static const uint8_t canonical[] = {0x83, 0xa1, 'a',  0x02, 0xa2, 'a',
                                        'a',  0xc3, 0xa1, 'b',  0x01};
    struct ctx c;
    CU_ASSERT_EQUAL_FATAL(from_mp(&c, unsorted, sizeof unsorted), MGO_OK);
    struct mgo_buf b;
    mgo_buf_init(&b, 1024);
    CU_ASSERT_EQUAL(mgo_value_to_msgpack(&c.v, &b), MGO_OK);
    CU_ASSERT_EQUAL(b.len, sizeof canonical);
    CU_ASSERT(memcmp(b.data, canonical, sizeof canonical) == 0);
    /* an output cap too small is a clean limit error */
    struct mgo_buf small;
    mgo_buf_init(&small, 4);
    CU_ASSERT_EQUAL(mgo_value_to_msgpack(&c.v, &small), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(small.len, 0);
    mgo_buf_cleanup(&small);
    mgo_buf_cleanup(&b);
    done(&c);
}

/* ---- YAML / JSON --------------------------------------------------------------------- */

static void test_yaml_scalars(void)
{
    static const char doc[] = "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: '1'\ng: 0x1f\nh: 1.2.1\n"
                              "i: 18446744073709551615\nj: \"x\\ty\"\nk: 1e3\nl: False\n";
    struct ctx c;
    CU_ASSERT_EQUAL_FATAL(from_yaml(&c, doc, sizeof doc - 1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "a")->kind, MGO_V_UINT);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "b")->as.i, -2);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "c")->kind, MGO_V_FLOAT);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "d")->kind, MGO_V_BOOL);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "e")->kind, MGO_V_NULL);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "f")->kind, MGO_V_STR);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "g")->as.u, 31);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "h")->kind, MGO_V_STR);
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "i")->as.u, UINT64_MAX);
    CU_ASSERT_STRING_EQUAL(mgo_value_get(&c.v, "j")->as.str.ptr, "x\ty");
    CU_ASSERT_EQUAL(mgo_value_get(&c.v, "k")->as.f, 1000.0);
    CU_ASSERT_FALSE(mgo_value_get(&c.v, "l")->as.b);
    CU_ASSERT_STRING_EQUAL(mgo_value_get(&c.v, "c")->text, "1.5");
    done(&c);
    /* one past uint64 */
    static const char big[] = "a: 18446744073709551616\n";
    CU_ASSERT_EQUAL(from_yaml(&c, big, sizeof big - 1), MGO_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(c.p.items[0].field, "line 1 column 4");
    done(&c);
}

static void test_yaml_hostile(void)
{
    struct ctx c;
    static const char *const bad[] = {
        "a: 1\na: 2\n",          /* duplicate key */
        "a: &x [1, 2]\nb: *x\n", /* alias */
        "--- 1\n--- 2\n",        /* two documents */
        "? [1, 2]\n: v\n",       /* non-scalar key */
        "a: [1, 2\n",            /* unterminated */
        "a: .nan\n",             /* non-finite */
        "a: !!binary aGk=\n",    /* tags other than !!str */
        "{\"a\": 1, \"a\": 1}",  /* JSON duplicate key */
        "a: \"\\0\"\n",          /* NUL in a string */
        "",                      /* empty document */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mgo_err err = from_yaml(&c, bad[i], strlen(bad[i]));
        if (err == MGO_OK)
            fprintf(stderr, "accepted hostile YAML #%zu\n", i);
        CU_ASSERT_NOT_EQUAL(err, MGO_OK);
        CU_ASSERT(c.p.count >= 1);
        done(&c);
    }
    /* invalid UTF-8 in the input */
    static const char latin1[] = "a: caf\xe9\n";
    CU_ASSERT_EQUAL(from_yaml(&c, latin1, sizeof latin1 - 1), MGO_ERR_PARSE);
    done(&c);
    /* depth: MGO_MAX_DEPTH flow sequences accepted, one more refused */
    char deep[256];
    size_t n = 0;
    for (unsigned i = 0; i < MGO_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (unsigned i = 0; i < MGO_MAX_DEPTH; i++)
        deep[n++] = ']';
    CU_ASSERT_EQUAL(from_yaml(&c, deep, n), MGO_OK);
    done(&c);
    n = 0;
    for (unsigned i = 0; i <= MGO_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (unsigned i = 0; i <= MGO_MAX_DEPTH; i++)
        deep[n++] = ']';
    CU_ASSERT_EQUAL(from_yaml(&c, deep, n), MGO_ERR_LIMIT);
    done(&c);
    /* file size: one past MGO_MAX_FILE_BYTES is refused before parsing */
    char *huge = malloc(MGO_MAX_FILE_BYTES + 1);
    memset(huge, ' ', MGO_MAX_FILE_BYTES + 1);
    huge[0] = 'a';
    huge[1] = ':';
    CU_ASSERT_EQUAL(from_yaml(&c, huge, MGO_MAX_FILE_BYTES + 1), MGO_ERR_LIMIT);
    done(&c);
    free(huge);
    /* a string of MGO_MAX_STRING_BYTES is fine, one more byte is not */
    char *s = malloc(MGO_MAX_STRING_BYTES + 8);
    memcpy(s, "a: ", 3);
    memset(s + 3, 'z', MGO_MAX_STRING_BYTES + 1);
    CU_ASSERT_EQUAL(from_yaml(&c, s, 3 + MGO_MAX_STRING_BYTES), MGO_OK);
    done(&c);
    CU_ASSERT_EQUAL(from_yaml(&c, s, 3 + MGO_MAX_STRING_BYTES + 1), MGO_ERR_LIMIT);
    done(&c);
    free(s);
}

static void test_json_input_and_output(void)
{
    static const char doc[] = "{\"b\": [1, -2, 2.5, true, null, \"q\\\"\\u00e9\\n\"], \"a\": {}}";
    struct ctx c;
    CU_ASSERT_EQUAL_FATAL(from_yaml(&c, doc, sizeof doc - 1), MGO_OK);
    struct mgo_buf b;
    mgo_buf_init(&b, 1024);
    CU_ASSERT_EQUAL(mgo_value_to_json(&c.v, false, &b), MGO_OK);
    CU_ASSERT_STRING_EQUAL((char *)b.data,
                           "{\"a\":{},\"b\":[1,-2,2.5,true,null,\"q\\\"\xc3\xa9\\n\"]}");
    mgo_buf_reset(&b);
    CU_ASSERT_EQUAL(mgo_value_to_json(&c.v, true, &b), MGO_OK);
    CU_ASSERT(strstr((char *)b.data, "\n  \"b\": [\n    1,") != NULL);
    /* floats keep their type; binary becomes base64 */
    struct mgo_value f = {.kind = MGO_V_FLOAT};
    f.as.f = 24.0;
    mgo_buf_reset(&b);
    CU_ASSERT_EQUAL(mgo_value_to_json(&f, false, &b), MGO_OK);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "24.0");
    f.as.f = 0.1;
    mgo_buf_reset(&b);
    CU_ASSERT_EQUAL(mgo_value_to_json(&f, false, &b), MGO_OK);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "0.1");
    struct mgo_value bin = {.kind = MGO_V_BIN};
    bin.as.str.ptr = "hi!?";
    bin.as.str.len = 4;
    mgo_buf_reset(&b);
    CU_ASSERT_EQUAL(mgo_value_to_json(&bin, false, &b), MGO_OK);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "\"aGkhPw==\"");
    mgo_buf_cleanup(&b);
    done(&c);
}

static void test_pointer_equal_copy(void)
{
    static const char doc[] = "{\"a/b\": {\"m~n\": [10, 20]}, \"x\": 1}";
    struct ctx c;
    CU_ASSERT_EQUAL_FATAL(from_yaml(&c, doc, sizeof doc - 1), MGO_OK);
    const struct mgo_value *v = mgo_value_pointer(&c.v, "/a~1b/m~0n/1");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->as.u, 20);
    CU_ASSERT_PTR_EQUAL(mgo_value_pointer(&c.v, ""), &c.v);
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&c.v, "/a~1b/m~0n/2"));
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&c.v, "/a~1b/m~0n/01"));
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&c.v, "/x/y"));
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&c.v, "x"));
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&c.v, "/a~2b"));
    struct mgo_arena other;
    mgo_arena_init(&other, 1 << 20);
    struct mgo_value copy;
    CU_ASSERT_EQUAL_FATAL(mgo_value_copy(&c.v, &other, &copy), MGO_OK);
    done(&c); /* the copy must not depend on the original arena */
    CU_ASSERT_EQUAL(mgo_value_pointer(&copy, "/a~1b/m~0n/0")->as.u, 10);
    struct ctx d;
    CU_ASSERT_EQUAL_FATAL(from_yaml(&d, doc, sizeof doc - 1), MGO_OK);
    CU_ASSERT(mgo_value_equal(&copy, &d.v));
    CU_ASSERT_FALSE(mgo_value_equal(&copy, mgo_value_get(&d.v, "x")));
    done(&d);
    mgo_arena_cleanup(&other);
}

static void test_arena_cap(void)
{
    struct mgo_arena a;
    mgo_arena_init(&a, 8192);
    size_t got = 0;
    while (mgo_arena_alloc(&a, 100) != NULL)
        got += 100;
    CU_ASSERT(got > 0 && got <= 8192);
    CU_ASSERT(a.used <= 8192);
    mgo_arena_cleanup(&a);
    /* a document larger than the arena's cap is refused cleanly */
    static const char doc[] =
        "[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
        " \"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]";
    mgo_arena_init(&a, 96);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    CU_ASSERT_EQUAL(mgo_value_from_yaml(doc, sizeof doc - 1, &a, &v, &p), MGO_ERR_NOMEM);
    mgo_arena_cleanup(&a);
}

static void test_buf_cap(void)
{
    struct mgo_buf b;
    mgo_buf_init(&b, 8);
    CU_ASSERT_EQUAL(mgo_buf_append(&b, "12345678", 8), MGO_OK);
    CU_ASSERT_EQUAL(mgo_buf_append(&b, "9", 1), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(b.len, 8);
    mgo_buf_cleanup(&b);
    mgo_buf_init(&b, MGO_MAX_FILE_BYTES);
    CU_ASSERT_EQUAL(mgo_buf_read_file(&b, "/nonexistent/file"), MGO_ERR_NOT_FOUND);
    mgo_buf_cleanup(&b);
}

/* mgo_value_to_yaml: block YAML that reads back as the same tree, with strings that look
 * like other types quoted; a tree deeper than the limit and a full buffer fail cleanly. */
static void test_yaml_output(void)
{
    static const char doc[] =
        "{\"s\": [\"true\", \"1.0\", \"\", \"null\", \"~\", \"0x1f\", \"-3\", \".inf\", \"a: b\","
        " \"- x\", \"#c\", \"line1\\nline2\", \"\\u00e9t\\u00e9\", \" pad \", \"plain words\","
        " \"yes\", \"Off\", \"2026-12-05T10:05:26.668Z\", \"1.2.3\", \"-.5\", \"v1.0\"],"
        " \"n\": [0, -7, 18446744073709551615, 2.0, 0.1, -1.5e-300, 1e300, true, false, null],"
        " \"m\": {\"version\": \"1.0\", \"empty\": {}, \"list\": [], \"nested\": [{\"k\": [1, "
        "[2]]}]}}";
    struct ctx c, back;
    CU_ASSERT_EQUAL_FATAL(from_yaml(&c, doc, sizeof doc - 1), MGO_OK);
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 16);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_yaml(&c.v, &b), MGO_OK);
    mgo_err err = from_yaml(&back, (const char *)b.data, b.len);
    CU_ASSERT_EQUAL(err, MGO_OK);
    CU_ASSERT_TRUE(err == MGO_OK && mgo_value_equal(&c.v, &back.v));
    if (err != MGO_OK || !mgo_value_equal(&c.v, &back.v))
        fprintf(stderr, "YAML (%s):\n%s\n", back.p.count ? back.p.items[0].rule : "",
                (const char *)b.data);
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "version: \"1.0\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "- plain words\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "- 2.0\n"));
    /* quoted for YAML 1.1 readers too; a plain word stays plain */
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "- \"yes\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "- \"2026-12-05T10:05:26.668Z\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "- \"1.2.3\"\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr((char *)b.data, "- v1.0\n"));
    CU_ASSERT_PTR_NULL(strstr((char *)b.data, "---")); /* one implicit document */
    done(&back);
    /* a buffer too small: MGO_ERR_LIMIT, the buffer as it was */
    struct mgo_buf small;
    mgo_buf_init(&small, 16);
    CU_ASSERT_EQUAL(mgo_value_to_yaml(&c.v, &small), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(small.len, 0);
    mgo_buf_cleanup(&small);
    mgo_buf_cleanup(&b);
    done(&c);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case msgpack[] = {
        {"truncated at every byte", test_msgpack_truncated_everywhere},
        {"huge claimed counts", test_msgpack_huge_claimed_counts},
        {"limits at and past", test_msgpack_limits},
        {"wrong shapes", test_msgpack_wrong_shapes},
        {"canonical output", test_msgpack_canonical},
        {NULL, NULL},
    };
    static const struct mgo_test_case yaml[] = {
        {"scalars", test_yaml_scalars},
        {"hostile input", test_yaml_hostile},
        {"json in and out", test_json_input_and_output},
        {"yaml out", test_yaml_output},
        {NULL, NULL},
    };
    static const struct mgo_test_case tree[] = {
        {"pointer, equal, copy", test_pointer_equal_copy},
        {"arena cap", test_arena_cap},
        {"buffer cap", test_buf_cap},
        {NULL, NULL},
    };
    mgo_test_add_suite("value/msgpack", msgpack);
    mgo_test_add_suite("value/yaml", yaml);
    mgo_test_add_suite("value/tree", tree);
}
