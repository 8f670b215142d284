/* fuzz_yaml.c - libFuzzer harness for YAML/JSON import and document validation.
 *
 * Invariants (abort() on violation):
 *   - every refusal carries at least one problem;
 *   - an imported tree converts to MessagePack and back to an equal tree (YAML and
 *     MessagePack describe the same documents);
 *   - JSON export of an imported tree parses again to an equal tree. */
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
            fprintf(stderr, "fuzz_yaml: invariant failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* YAML keeps the source text of plain scalars (v.text); the other formats do not. */
static bool same_shape(const struct mgo_value *a, const struct mgo_value *b)
{
    return mgo_value_equal(a, b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    enum mgo_doc_kind kind;
    struct mgo_value v;
    mgo_err err = mgo_doc_validate(data, size, MGO_FORMAT_YAML, &arena, &kind, &v, &p);
    if (err != MGO_OK)
        CHECK(mgo_problems_total(&p) > 0);
    mgo_problems_init(&p);
    if (mgo_value_from_yaml(data, size, &arena, &v, &p) == MGO_OK) {
        struct mgo_buf m;
        mgo_buf_init(&m, 16u * MGO_MAX_FILE_BYTES);
        if (mgo_value_to_msgpack(&v, &m) == MGO_OK && m.len <= MGO_MAX_MESSAGE_BYTES) {
            struct mgo_value w;
            mgo_problems_init(&p);
            err = mgo_value_from_msgpack(m.data, m.len, &arena, &w, &p);
            /* strings may exceed no limit here: both decoders share mgo/limits.h */
            CHECK(err == MGO_OK || err == MGO_ERR_NOMEM);
            if (err == MGO_OK)
                CHECK(same_shape(&v, &w));
        }
        mgo_buf_reset(&m);
        if (mgo_value_to_json(&v, false, &m) == MGO_OK && m.len <= MGO_MAX_FILE_BYTES) {
            struct mgo_value w;
            mgo_problems_init(&p);
            err = mgo_value_from_yaml(m.data, m.len, &arena, &w, &p);
            CHECK(err == MGO_OK || err == MGO_ERR_NOMEM || err == MGO_ERR_LIMIT);
            if (err == MGO_OK)
                CHECK(same_shape(&v, &w));
        }
        mgo_buf_cleanup(&m);
    }
    mgo_arena_cleanup(&arena);
    return 0;
}
