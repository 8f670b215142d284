/* fuzz_msgpack.c - libFuzzer harness for the MessagePack decoder and every typed codec.
 *
 * Invariants (abort() on violation, so libFuzzer reports a crash):
 *   - a decoded tree re-encodes canonically, and that encoding decodes to an equal tree and
 *     re-encodes to the same bytes (canonical form is a fixed point);
 *   - a document that validates as its detected kind survives encode -> decode -> encode
 *     byte for byte;
 *   - every refusal carries at least one problem (a reason a user can read). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/margo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_msgpack: invariant failed: %s (line %d)\n", #cond, __LINE__);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define TYPED(doc, type)                                                                           \
    do {                                                                                           \
        struct type d, e;                                                                          \
        mgo_problems_init(&p);                                                                     \
        if (mgo_##doc##_from_value(&v, &arena, &d, &p) != MGO_OK) {                                \
            CHECK(mgo_problems_total(&p) > 0 || arena.used > 0);                                   \
            break;                                                                                 \
        }                                                                                          \
        struct mgo_buf m1, m2;                                                                     \
        mgo_buf_init(&m1, MGO_MAX_MESSAGE_BYTES * 2);                                              \
        mgo_buf_init(&m2, MGO_MAX_MESSAGE_BYTES * 2);                                              \
        if (mgo_##doc##_encode(&d, &m1) == MGO_OK && m1.len <= MGO_MAX_MESSAGE_BYTES) {            \
            CHECK(mgo_##doc##_decode(m1.data, m1.len, &arena, &e, &p) == MGO_OK);                  \
            CHECK(mgo_##doc##_encode(&e, &m2) == MGO_OK);                                          \
            CHECK(m1.len == m2.len && memcmp(m1.data, m2.data, m1.len) == 0);                      \
        }                                                                                          \
        mgo_buf_cleanup(&m1);                                                                      \
        mgo_buf_cleanup(&m2);                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v, w;
    mgo_err err = mgo_value_from_msgpack(data, size, &arena, &v, &p);
    if (err != MGO_OK) {
        CHECK(p.count > 0);
        mgo_arena_cleanup(&arena);
        return 0;
    }
    struct mgo_buf a, b;
    mgo_buf_init(&a, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    CHECK(mgo_value_to_msgpack(&v, &a) == MGO_OK);
    CHECK(mgo_value_from_msgpack(a.data, a.len, &arena, &w, &p) == MGO_OK);
    CHECK(mgo_value_equal(&v, &w));
    CHECK(mgo_value_to_msgpack(&w, &b) == MGO_OK);
    CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    struct mgo_buf j;
    mgo_buf_init(&j, 8u * MGO_MAX_MESSAGE_BYTES);
    CHECK(mgo_value_to_json(&v, false, &j) == MGO_OK);
    mgo_buf_cleanup(&j);
    mgo_buf_cleanup(&a);
    mgo_buf_cleanup(&b);

    switch (mgo_doc_detect(&v)) {
    case MGO_DOC_APP_DESCRIPTION:
        TYPED(app_description, mgo_app_description);
        break;
    case MGO_DOC_APP_DEPLOYMENT:
        TYPED(app_deployment, mgo_app_deployment);
        break;
    case MGO_DOC_DESIRED_STATE:
        TYPED(desired_state, mgo_desired_state);
        break;
    case MGO_DOC_DEPLOYMENT_STATUS:
        TYPED(deployment_status, mgo_deployment_status);
        break;
    case MGO_DOC_CAPABILITIES:
        TYPED(capabilities, mgo_capabilities);
        break;
    case MGO_DOC_PRESENCE:
        TYPED(presence, mgo_presence);
        break;
    case MGO_DOC_EVENT:
        TYPED(event, mgo_event);
        break;
    default:
        break;
    }
    if (v.kind == MGO_V_MAP) {
        char digest[MGO_DIGEST_STR_SIZE];
        CHECK(mgo_doc_digest(&v, digest) == MGO_OK && mgo_digest_is_sha256(digest));
    }
    mgo_arena_cleanup(&arena);
    return 0;
}
