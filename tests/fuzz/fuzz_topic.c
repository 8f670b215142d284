/* fuzz_topic.c - libFuzzer harness for mgo_topic_parse and the builders.
 *
 * Input: a topic under the default prefix "margo/v1", or "PREFIX\nTOPIC" to fuzz the prefix
 * rules too. Invariants checked (abort() on violation, so libFuzzer reports a crash):
 *   - parse succeeds only under a valid prefix, with ids that pass their checks;
 *   - what parses builds back to exactly the same bytes (the mapping is one-to-one);
 *   - a parsed device has a filter for its kind, and the filter never parses as a topic;
 *   - the id checks agree with the documented character set and limits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_topic: invariant failed: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static int id_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
}

/* Reference model of the id rule, written independently of topic.c. */
static mgo_err model_id(const char *id, size_t len, size_t max)
{
    if (len == 0)
        return MGO_ERR_INVALID;
    if (len > max)
        return MGO_ERR_LIMIT;
    for (size_t i = 0; i < len; i++)
        if (!id_char_ok(id[i]))
            return MGO_ERR_INVALID;
    if (len <= 2 && id[0] == '.' && id[len - 1] == '.')
        return MGO_ERR_INVALID;
    return MGO_OK;
}

static void check_ids(const char *s, size_t len)
{
    CHECK(mgo_topic_check_device_id(s, len) == model_id(s, len, MGO_MAX_DEVICE_ID_LEN));
    CHECK(mgo_topic_check_deployment_id(s, len) == model_id(s, len, MGO_MAX_DEPLOYMENT_ID_LEN));
}

static void check_parse(const char *prefix, const char *topic, size_t len)
{
    struct mgo_topic t;
    char out[MGO_MAX_TOPIC_LEN + 1];

    mgo_err err = mgo_topic_parse(prefix, topic, len, &t);
    CHECK(err == MGO_OK || err == MGO_ERR_INVALID || err == MGO_ERR_LIMIT);
    if (err != MGO_OK)
        return;

    CHECK(mgo_topic_check_prefix(prefix) == MGO_OK);
    CHECK(len <= MGO_MAX_TOPIC_LEN);
    CHECK((unsigned)t.kind < MGO_TOPIC_KIND_COUNT);
    CHECK(mgo_topic_check_device_id(t.device_id, strlen(t.device_id)) == MGO_OK);
    if (mgo_topic_kind_has_deployment(t.kind))
        CHECK(mgo_topic_check_deployment_id(t.deployment_id, strlen(t.deployment_id)) == MGO_OK);
    else
        CHECK(t.deployment_id[0] == '\0');

    /* Round trip: building the parsed topic gives back exactly the input bytes. */
    CHECK(mgo_topic_build(prefix, &t, out, sizeof out) == MGO_OK);
    CHECK(strlen(out) == len && memcmp(out, topic, len) == 0);
    /* One byte too little room is a limit, not an overflow. */
    CHECK(mgo_topic_build(prefix, &t, out, len) == MGO_ERR_LIMIT);

    /* Filters for this device and for every device exist and are not topics. */
    CHECK(mgo_topic_filter(prefix, t.kind, t.device_id, out, sizeof out) == MGO_OK);
    struct mgo_topic f;
    if (mgo_topic_kind_has_deployment(t.kind))
        CHECK(mgo_topic_parse(prefix, out, strlen(out), &f) == MGO_ERR_INVALID);
    CHECK(mgo_topic_filter(prefix, t.kind, NULL, out, sizeof out) == MGO_OK);
    CHECK(mgo_topic_parse(prefix, out, strlen(out), &f) == MGO_ERR_INVALID);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *bytes = (const char *)data;
    char prefix[MGO_MAX_TOPIC_PREFIX_LEN + 2];
    const char *topic = bytes;
    size_t topic_len = size;

    /* Id checks on the raw bytes (they take a length; NUL and '/' must be refused). */
    check_ids(bytes, size);

    const char *nl = memchr(bytes, '\n', size < sizeof prefix ? size : sizeof prefix);
    if (nl != NULL) {
        size_t plen = (size_t)(nl - bytes);
        memcpy(prefix, bytes, plen);
        prefix[plen] = '\0';
        topic = nl + 1;
        topic_len = size - plen - 1u;
        /* A prefix with an embedded NUL is a shorter C string; the rules apply to that. */
        (void)mgo_topic_check_prefix(prefix);
    } else {
        memcpy(prefix, MGO_TOPIC_DEFAULT_PREFIX, sizeof MGO_TOPIC_DEFAULT_PREFIX);
    }

    /* Parse an exactly sized heap copy so ASan sees any read past the given length. */
    char *copy = malloc(topic_len > 0 ? topic_len : 1u);
    if (copy == NULL)
        return 0;
    if (topic_len > 0)
        memcpy(copy, topic, topic_len);
    check_parse(prefix, copy, topic_len);
    free(copy);
    return 0;
}
