/* test_topic.c - the topic contract: names, id rules and limits, filters, retained/QoS. */
#include "mgo_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/topic.h"

#define P MGO_TOPIC_DEFAULT_PREFIX

/* A string of n copies of c (n < sizeof buf). */
static const char *repeat(char *buf, size_t size, char c, size_t n)
{
    CU_ASSERT_FATAL(n < size);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* Parses a NUL-terminated topic under the default prefix. */
static mgo_err parse_str(const char *topic, struct mgo_topic *out)
{
    return mgo_topic_parse(P, topic, strlen(topic), out);
}

/* ---- contract table ------------------------------------------------------------------ */

static void test_contract_table(void)
{
    /* DESIGN.md: every topic retained except events and replays; QoS 1 everywhere. */
    static const struct {
        enum mgo_topic_kind kind;
        const char *name;
        bool retained;
        bool has_dep;
    } rows[] = {
        {MGO_TOPIC_DESIRED, "desired", true, false},
        {MGO_TOPIC_DEPLOYMENT, "deployments", true, true},
        {MGO_TOPIC_STATUS, "status", true, true},
        {MGO_TOPIC_CAPABILITIES, "capabilities", true, false},
        {MGO_TOPIC_STATE, "state", true, false},
        {MGO_TOPIC_EVENTS, "events", false, false},
        {MGO_TOPIC_RECEIPT, "receipt", true, false},
        {MGO_TOPIC_REPLAY, "replay", false, true},
    };
    CU_ASSERT_EQUAL(sizeof rows / sizeof rows[0], MGO_TOPIC_KIND_COUNT);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CU_ASSERT_EQUAL(mgo_topic_retained(rows[i].kind), rows[i].retained);
        CU_ASSERT_EQUAL(mgo_topic_qos(rows[i].kind), 1);
        CU_ASSERT_STRING_EQUAL(mgo_topic_kind_name(rows[i].kind), rows[i].name);
        CU_ASSERT_EQUAL(mgo_topic_kind_has_deployment(rows[i].kind), rows[i].has_dep);
    }
    /* Out-of-range kinds are not silently given a real topic's properties. */
    enum mgo_topic_kind bad = (enum mgo_topic_kind)MGO_TOPIC_KIND_COUNT;
    CU_ASSERT_FALSE(mgo_topic_retained(bad));
    CU_ASSERT_EQUAL(mgo_topic_qos(bad), -1);
    CU_ASSERT_STRING_EQUAL(mgo_topic_kind_name(bad), "unknown");
    char out[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_EQUAL(mgo_topic_format(P, bad, "dev1", "d1", out, sizeof out), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_filter(P, bad, NULL, out, sizeof out), MGO_ERR_INVALID);
}

/* ---- build / parse ------------------------------------------------------------------- */

static void test_build_exact_names(void)
{
    static const struct {
        enum mgo_topic_kind kind;
        const char *expect;
    } rows[] = {
        {MGO_TOPIC_DESIRED, "margo/v1/devices/dev-1/desired"},
        {MGO_TOPIC_DEPLOYMENT,
         "margo/v1/devices/dev-1/deployments/a3e2f5dc-912e-494f-8395-52cf3769bc06"},
        {MGO_TOPIC_STATUS, "margo/v1/devices/dev-1/status/a3e2f5dc-912e-494f-8395-52cf3769bc06"},
        {MGO_TOPIC_CAPABILITIES, "margo/v1/devices/dev-1/capabilities"},
        {MGO_TOPIC_STATE, "margo/v1/devices/dev-1/state"},
        {MGO_TOPIC_EVENTS, "margo/v1/devices/dev-1/events"},
        {MGO_TOPIC_RECEIPT, "margo/v1/devices/dev-1/receipt"},
        {MGO_TOPIC_REPLAY, "margo/v1/devices/dev-1/replay/a3e2f5dc-912e-494f-8395-52cf3769bc06"},
    };
    char out[MGO_MAX_TOPIC_LEN + 1];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CU_ASSERT_EQUAL_FATAL(mgo_topic_format(P, rows[i].kind, "dev-1",
                                               "a3e2f5dc-912e-494f-8395-52cf3769bc06", out,
                                               sizeof out),
                              MGO_OK);
        CU_ASSERT_STRING_EQUAL(out, rows[i].expect);
    }
    /* deployment_id is ignored (may be NULL) for kinds without one. */
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATE, "dev-1", NULL, out, sizeof out), MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, "margo/v1/devices/dev-1/state");
    /* ...but required for kinds with one. */
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATUS, "dev-1", NULL, out, sizeof out),
                    MGO_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(out, "");
}

static void test_round_trip_every_kind(void)
{
    const char *prefixes[] = {P, "site-a/margo", "x"};
    char out[MGO_MAX_TOPIC_LEN + 1];
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++) {
        for (int k = 0; k < MGO_TOPIC_KIND_COUNT; k++) {
            struct mgo_topic t, back;
            memset(&t, 0, sizeof t);
            t.kind = (enum mgo_topic_kind)k;
            snprintf(t.device_id, sizeof t.device_id, "%s", "Edge_01.line~2");
            if (mgo_topic_kind_has_deployment(t.kind))
                snprintf(t.deployment_id, sizeof t.deployment_id, "%s", "dep-42");
            CU_ASSERT_EQUAL_FATAL(mgo_topic_build(prefixes[p], &t, out, sizeof out), MGO_OK);
            CU_ASSERT_EQUAL_FATAL(mgo_topic_parse(prefixes[p], out, strlen(out), &back), MGO_OK);
            CU_ASSERT_EQUAL(back.kind, t.kind);
            CU_ASSERT_STRING_EQUAL(back.device_id, t.device_id);
            CU_ASSERT_STRING_EQUAL(back.deployment_id, t.deployment_id);
        }
    }
}

static void test_parse_not_nul_terminated(void)
{
    /* The topic is followed by more bytes that are not part of it (Paho gives a length). */
    const char buf[] = "margo/v1/devices/dev1/status/dep1/extra-bytes";
    size_t len = strlen("margo/v1/devices/dev1/status/dep1");
    struct mgo_topic t;
    CU_ASSERT_EQUAL_FATAL(mgo_topic_parse(P, buf, len, &t), MGO_OK);
    CU_ASSERT_EQUAL(t.kind, MGO_TOPIC_STATUS);
    CU_ASSERT_STRING_EQUAL(t.device_id, "dev1");
    CU_ASSERT_STRING_EQUAL(t.deployment_id, "dep1");
    /* The full buffer has an extra level and is refused. */
    CU_ASSERT_EQUAL(mgo_topic_parse(P, buf, strlen(buf), &t), MGO_ERR_INVALID);

    /* Exactly sized heap copy without a NUL: ASan would catch any read past the end. */
    const char *src = "margo/v1/devices/dev1/desired";
    size_t n = strlen(src);
    char *exact = malloc(n);
    CU_ASSERT_FATAL(exact != NULL);
    memcpy(exact, src, n);
    CU_ASSERT_EQUAL(mgo_topic_parse(P, exact, n, &t), MGO_OK);
    CU_ASSERT_EQUAL(t.kind, MGO_TOPIC_DESIRED);
    for (size_t cut = 0; cut < n; cut++)
        CU_ASSERT_EQUAL(mgo_topic_parse(P, exact, cut, &t), MGO_ERR_INVALID);
    free(exact);
}

static void test_parse_refuses_non_contract_topics(void)
{
    static const char *bad[] = {
        "",
        "margo/v1",
        "margo/v1/",
        "margo/v1/devices",
        "margo/v1/devices/",
        "margo/v1/devices/dev1",
        "margo/v1/devices/dev1/",
        "margo/v1/devices//desired",           /* empty device level */
        "margo/v1/devices/dev1/desired/",      /* trailing empty level */
        "margo/v1/devices/dev1/desired/extra", /* extra level */
        "margo/v1/devices/dev1/state/x",
        "margo/v1/devices/dev1/events/x",
        "margo/v1/devices/dev1/capabilities/x",
        "margo/v1/devices/dev1/status",  /* missing deployment level */
        "margo/v1/devices/dev1/status/", /* empty deployment level */
        "margo/v1/devices/dev1/deployments",
        "margo/v1/devices/dev1/status/dep1/more", /* extra level after deployment */
        "margo/v1/devices/dev1/status/dep1/",
        "margo/v1/devices/dev1/Desired",         /* kinds are case-sensitive */
        "margo/v1/devices/dev1/deployment/dep1", /* unknown kind (singular) */
        "margo/v1/devices/dev1/statuses/dep1",
        "margo/v1/device/dev1/desired",   /* wrong fixed level */
        "margo/v2/devices/dev1/desired",  /* wrong prefix */
        "margo/v1x/devices/dev1/desired", /* prefix must end at a level boundary */
        "margo/v/devices/dev1/desired",
        "/margo/v1/devices/dev1/desired",
        "other/margo/v1/devices/dev1/desired",
        "margo/v1/devices/+/desired", /* wildcards are not ids */
        "margo/v1/devices/#",
        "margo/v1/devices/dev1/status/+",
        "margo/v1/devices/dev1/status/#",
        "margo/v1/devices/$SYS/desired",
        "margo/v1/devices/./desired",
        "margo/v1/devices/../desired",
        "margo/v1/devices/dev 1/desired", /* space is not in the id set */
        "margo/v1/devices/dev1/status/dep:1",
        "$SYS/broker/uptime",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mgo_topic t;
        memset(&t, 0x5a, sizeof t);
        mgo_err err = parse_str(bad[i], &t);
        if (err != MGO_ERR_INVALID)
            fprintf(stderr, "accepted or wrong error (%d) for \"%s\"\n", (int)err, bad[i]);
        CU_ASSERT_EQUAL(err, MGO_ERR_INVALID);
        /* A refused topic never leaves a half-parsed id behind. */
        CU_ASSERT_STRING_EQUAL(t.device_id, "");
        CU_ASSERT_STRING_EQUAL(t.deployment_id, "");
    }
    /* NUL inside the given length is refused, not treated as the end. */
    const char with_nul[] = "margo/v1/devices/dev1\0/desired";
    struct mgo_topic t;
    CU_ASSERT_EQUAL(mgo_topic_parse(P, with_nul, sizeof with_nul - 1, &t), MGO_ERR_INVALID);
    const char nul_in_id[] = "margo/v1/devices/de\0v1/desired";
    CU_ASSERT_EQUAL(mgo_topic_parse(P, nul_in_id, sizeof nul_in_id - 1, &t), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_parse(P, NULL, 0, &t), MGO_ERR_INVALID);
}

static void test_parse_custom_prefix(void)
{
    struct mgo_topic t;
    const char *topic = "plant/7/margo/devices/d/status/x";
    CU_ASSERT_EQUAL(mgo_topic_parse("plant/7/margo", topic, strlen(topic), &t), MGO_OK);
    CU_ASSERT_EQUAL(t.kind, MGO_TOPIC_STATUS);
    CU_ASSERT_STRING_EQUAL(t.device_id, "d");
    CU_ASSERT_STRING_EQUAL(t.deployment_id, "x");
    /* The same topic under the default prefix is not ours. */
    CU_ASSERT_EQUAL(mgo_topic_parse(P, topic, strlen(topic), &t), MGO_ERR_INVALID);
    /* A bad prefix is refused before looking at the topic. */
    CU_ASSERT_EQUAL(mgo_topic_parse("plant/+/margo", topic, strlen(topic), &t), MGO_ERR_INVALID);
}

static void test_parse_topic_length_limit(void)
{
    /* Longest possible contract topic fits under MGO_MAX_TOPIC_LEN... */
    char prefix[MGO_MAX_TOPIC_PREFIX_LEN + 1], dev[MGO_MAX_DEVICE_ID_LEN + 1];
    char dep[MGO_MAX_DEPLOYMENT_ID_LEN + 1], out[MGO_MAX_TOPIC_LEN + 1];
    repeat(prefix, sizeof prefix, 'p', MGO_MAX_TOPIC_PREFIX_LEN);
    repeat(dev, sizeof dev, 'd', MGO_MAX_DEVICE_ID_LEN);
    repeat(dep, sizeof dep, 'x', MGO_MAX_DEPLOYMENT_ID_LEN);
    CU_ASSERT_EQUAL_FATAL(mgo_topic_format(prefix, MGO_TOPIC_DEPLOYMENT, dev, dep, out, sizeof out),
                          MGO_OK);
    CU_ASSERT(strlen(out) <= MGO_MAX_TOPIC_LEN);
    struct mgo_topic t;
    CU_ASSERT_EQUAL(mgo_topic_parse(prefix, out, strlen(out), &t), MGO_OK);
    CU_ASSERT_STRING_EQUAL(t.device_id, dev);
    CU_ASSERT_STRING_EQUAL(t.deployment_id, dep);

    /* ...and anything longer than MGO_MAX_TOPIC_LEN is refused as a limit. */
    char huge[MGO_MAX_TOPIC_LEN + 2];
    memset(huge, 'a', sizeof huge);
    CU_ASSERT_EQUAL(mgo_topic_parse(P, huge, MGO_MAX_TOPIC_LEN + 1, &t), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_parse(P, huge, MGO_MAX_TOPIC_LEN, &t), MGO_ERR_INVALID);
}

/* ---- id rules -------------------------------------------------------------------------- */

static void test_device_id_rules(void)
{
    char id[MGO_MAX_DEVICE_ID_LEN + 2];
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("a", 1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("AZaz09._~-", 10), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("...", 3), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id(".a", 2), MGO_OK);
    /* At the limit and one past it. */
    repeat(id, sizeof id, 'a', MGO_MAX_DEVICE_ID_LEN);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id(id, MGO_MAX_DEVICE_ID_LEN), MGO_OK);
    repeat(id, sizeof id, 'a', MGO_MAX_DEVICE_ID_LEN + 1);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id(id, MGO_MAX_DEVICE_ID_LEN + 1), MGO_ERR_LIMIT);
    /* Refused. */
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("", 0), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id(NULL, 0), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id(".", 1), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("..", 2), MGO_ERR_INVALID);
    static const char *bad[] = {"+",   "#",   "$SYS", "a/b",  "a+", "a#",
                                "a b", "a:b", "é",    "a\tb", "a*", "a%2F"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(mgo_topic_check_device_id(bad[i], strlen(bad[i])), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("a\0b", 3), MGO_ERR_INVALID);
    /* Only len bytes are looked at. */
    CU_ASSERT_EQUAL(mgo_topic_check_device_id("dev/extra", 3), MGO_OK);
}

static void test_deployment_id_rules(void)
{
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 2];
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("a3e2f5dc-912e-494f-8395-52cf3769bc06", 36),
                    MGO_OK);
    repeat(id, sizeof id, '7', MGO_MAX_DEPLOYMENT_ID_LEN);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id(id, MGO_MAX_DEPLOYMENT_ID_LEN), MGO_OK);
    repeat(id, sizeof id, '7', MGO_MAX_DEPLOYMENT_ID_LEN + 1);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id(id, MGO_MAX_DEPLOYMENT_ID_LEN + 1),
                    MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("", 0), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("+", 1), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("#", 1), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("$x", 2), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("a/b", 3), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id(".", 1), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id("..", 2), MGO_ERR_INVALID);

    /* A device-length id is too long for a deployment. */
    char dev[MGO_MAX_DEVICE_ID_LEN + 1];
    repeat(dev, sizeof dev, 'a', MGO_MAX_DEVICE_ID_LEN);
    CU_ASSERT_EQUAL(mgo_topic_check_deployment_id(dev, MGO_MAX_DEVICE_ID_LEN), MGO_ERR_LIMIT);
}

static void test_ids_limits_through_build_and_parse(void)
{
    char dev[MGO_MAX_DEVICE_ID_LEN + 2], dep[MGO_MAX_DEPLOYMENT_ID_LEN + 2];
    char out[MGO_MAX_TOPIC_LEN + 1], topic[MGO_MAX_TOPIC_LEN + 1];
    struct mgo_topic t;

    /* Device id: at the limit builds and parses; one past is MGO_ERR_LIMIT both ways. */
    repeat(dev, sizeof dev, 'D', MGO_MAX_DEVICE_ID_LEN);
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATE, dev, NULL, out, sizeof out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_parse(P, out, strlen(out), &t), MGO_OK);
    CU_ASSERT_EQUAL(strlen(t.device_id), MGO_MAX_DEVICE_ID_LEN);
    repeat(dev, sizeof dev, 'D', MGO_MAX_DEVICE_ID_LEN + 1);
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATE, dev, NULL, out, sizeof out),
                    MGO_ERR_LIMIT);
    CU_ASSERT_STRING_EQUAL(out, "");
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/state", dev);
    CU_ASSERT_EQUAL(parse_str(topic, &t), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_filter(P, MGO_TOPIC_STATE, dev, out, sizeof out), MGO_ERR_LIMIT);

    /* Deployment id, the same. */
    repeat(dep, sizeof dep, 'z', MGO_MAX_DEPLOYMENT_ID_LEN);
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_DEPLOYMENT, "d", dep, out, sizeof out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_parse(P, out, strlen(out), &t), MGO_OK);
    CU_ASSERT_STRING_EQUAL(t.deployment_id, dep);
    repeat(dep, sizeof dep, 'z', MGO_MAX_DEPLOYMENT_ID_LEN + 1);
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_DEPLOYMENT, "d", dep, out, sizeof out),
                    MGO_ERR_LIMIT);
    snprintf(topic, sizeof topic, "margo/v1/devices/d/deployments/%s", dep);
    CU_ASSERT_EQUAL(parse_str(topic, &t), MGO_ERR_LIMIT);

    /* build() with an id array that has no NUL at all is refused as too long, not overread. */
    memset(&t, 0, sizeof t);
    t.kind = MGO_TOPIC_DESIRED;
    memset(t.device_id, 'a', sizeof t.device_id);
    CU_ASSERT_EQUAL(mgo_topic_build(P, &t, out, sizeof out), MGO_ERR_LIMIT);

    /* Wildcards, '$', '/' and empty ids are refused by every builder. */
    static const char *bad[] = {"", "+", "#", "$SYS", "a/b", ".", ".."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_DESIRED, bad[i], NULL, out, sizeof out),
                        MGO_ERR_INVALID);
        CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATUS, "dev", bad[i], out, sizeof out),
                        MGO_ERR_INVALID);
        CU_ASSERT_EQUAL(mgo_topic_filter(P, MGO_TOPIC_STATUS, bad[i], out, sizeof out),
                        MGO_ERR_INVALID);
    }
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_DESIRED, NULL, NULL, out, sizeof out),
                    MGO_ERR_INVALID);
}

/* ---- prefix rules ---------------------------------------------------------------------- */

static void test_prefix_rules(void)
{
    char prefix[MGO_MAX_TOPIC_PREFIX_LEN + 2], out[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_EQUAL(mgo_topic_check_prefix(P), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_check_prefix("a"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_check_prefix("a/b c/d$"), MGO_OK);
    repeat(prefix, sizeof prefix, 'p', MGO_MAX_TOPIC_PREFIX_LEN);
    CU_ASSERT_EQUAL(mgo_topic_check_prefix(prefix), MGO_OK);
    CU_ASSERT_EQUAL(mgo_topic_format(prefix, MGO_TOPIC_DESIRED, "d", NULL, out, sizeof out),
                    MGO_OK);
    repeat(prefix, sizeof prefix, 'p', MGO_MAX_TOPIC_PREFIX_LEN + 1);
    CU_ASSERT_EQUAL(mgo_topic_check_prefix(prefix), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_format(prefix, MGO_TOPIC_DESIRED, "d", NULL, out, sizeof out),
                    MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_filter(prefix, MGO_TOPIC_DESIRED, NULL, out, sizeof out),
                    MGO_ERR_LIMIT);

    static const char *bad[] = {"",           "/",       "/margo",   "margo/", "margo//v1",
                                "margo/+/v1", "margo/#", "+",        "#",      "$SYS",
                                "$margo/v1",  "ma+rgo",  "margo/v#1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(mgo_topic_check_prefix(bad[i]), MGO_ERR_INVALID);
        CU_ASSERT_EQUAL(mgo_topic_format(bad[i], MGO_TOPIC_DESIRED, "d", NULL, out, sizeof out),
                        MGO_ERR_INVALID);
        CU_ASSERT_EQUAL(mgo_topic_filter(bad[i], MGO_TOPIC_DESIRED, NULL, out, sizeof out),
                        MGO_ERR_INVALID);
    }
    CU_ASSERT_EQUAL(mgo_topic_check_prefix(NULL), MGO_ERR_INVALID);
}

/* ---- output buffer --------------------------------------------------------------------- */

static void test_small_output_buffer(void)
{
    const char *expect = "margo/v1/devices/dev1/status/dep1";
    size_t need = strlen(expect) + 1;
    char out[64];
    /* Exactly enough room (including the NUL) works... */
    CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATUS, "dev1", "dep1", out, need), MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, expect);
    /* ...every smaller size is MGO_ERR_LIMIT, never writes past out_size, leaves "". */
    for (size_t size = 0; size < need; size++) {
        memset(out, 'Z', sizeof out);
        CU_ASSERT_EQUAL(mgo_topic_format(P, MGO_TOPIC_STATUS, "dev1", "dep1", out, size),
                        MGO_ERR_LIMIT);
        if (size > 0)
            CU_ASSERT_EQUAL(out[0], '\0');
        for (size_t i = size; i < sizeof out; i++)
            CU_ASSERT_EQUAL(out[i], 'Z');
    }
    struct mgo_topic t;
    memset(&t, 0, sizeof t);
    t.kind = MGO_TOPIC_EVENTS;
    snprintf(t.device_id, sizeof t.device_id, "%s", "dev1");
    CU_ASSERT_EQUAL(mgo_topic_build(P, &t, out, strlen("margo/v1/devices/dev1/events")),
                    MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_build(P, &t, out, strlen("margo/v1/devices/dev1/events") + 1),
                    MGO_OK);
    CU_ASSERT_EQUAL(
        mgo_topic_filter(P, MGO_TOPIC_STATUS, NULL, out, strlen("margo/v1/devices/+/status/+")),
        MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_topic_filter(P, MGO_TOPIC_STATUS, NULL, out, 0), MGO_ERR_LIMIT);
}

/* ---- filters --------------------------------------------------------------------------- */

static void test_filters(void)
{
    static const struct {
        enum mgo_topic_kind kind;
        const char *all;
        const char *one;
    } rows[] = {
        {MGO_TOPIC_DESIRED, "margo/v1/devices/+/desired", "margo/v1/devices/dev-9/desired"},
        {MGO_TOPIC_DEPLOYMENT, "margo/v1/devices/+/deployments/+",
         "margo/v1/devices/dev-9/deployments/+"},
        {MGO_TOPIC_STATUS, "margo/v1/devices/+/status/+", "margo/v1/devices/dev-9/status/+"},
        {MGO_TOPIC_CAPABILITIES, "margo/v1/devices/+/capabilities",
         "margo/v1/devices/dev-9/capabilities"},
        {MGO_TOPIC_STATE, "margo/v1/devices/+/state", "margo/v1/devices/dev-9/state"},
        {MGO_TOPIC_EVENTS, "margo/v1/devices/+/events", "margo/v1/devices/dev-9/events"},
        {MGO_TOPIC_RECEIPT, "margo/v1/devices/+/receipt", "margo/v1/devices/dev-9/receipt"},
        {MGO_TOPIC_REPLAY, "margo/v1/devices/+/replay/+", "margo/v1/devices/dev-9/replay/+"},
    };
    char out[MGO_MAX_TOPIC_LEN + 1];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CU_ASSERT_EQUAL(mgo_topic_filter(P, rows[i].kind, NULL, out, sizeof out), MGO_OK);
        CU_ASSERT_STRING_EQUAL(out, rows[i].all);
        CU_ASSERT_EQUAL(mgo_topic_filter(P, rows[i].kind, "dev-9", out, sizeof out), MGO_OK);
        CU_ASSERT_STRING_EQUAL(out, rows[i].one);
        /* A filter is not a topic: parse refuses it. */
        struct mgo_topic t;
        CU_ASSERT_EQUAL(parse_str(rows[i].all, &t), MGO_ERR_INVALID);
    }
    CU_ASSERT_EQUAL(mgo_topic_filter("site/x", MGO_TOPIC_STATE, NULL, out, sizeof out), MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, "site/x/devices/+/state");
}

static void test_fleet_topics(void)
{
    char out[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_TRUE(mgo_fleet_topic_retained(MGO_FLEET_TOPIC_ROLLOUT));
    CU_ASSERT_TRUE(mgo_fleet_topic_retained(MGO_FLEET_TOPIC_APP));
    CU_ASSERT_EQUAL(mgo_fleet_topic_qos(MGO_FLEET_TOPIC_ROLLOUT), 1);
    CU_ASSERT_EQUAL(mgo_fleet_topic_qos(MGO_FLEET_TOPIC_APP), 1);
    CU_ASSERT_EQUAL(mgo_fleet_topic_qos((enum mgo_fleet_topic_kind)2), -1);
    CU_ASSERT_EQUAL(
        mgo_fleet_topic_format("margo/v1", MGO_FLEET_TOPIC_APP, "bench-app", out, sizeof out),
        MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, "margo/v1/fleet/apps/bench-app");
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("margo/v1", MGO_FLEET_TOPIC_ROLLOUT,
                                           "0b6f4f0e-8d7a-4c55-9b59-1f0e0c1d2e3f", out, sizeof out),
                    MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, "margo/v1/fleet/rollouts/0b6f4f0e-8d7a-4c55-9b59-1f0e0c1d2e3f");
    CU_ASSERT_EQUAL(mgo_fleet_topic_filter("p", MGO_FLEET_TOPIC_ROLLOUT, out, sizeof out), MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, "p/fleet/rollouts/+");
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("p", MGO_FLEET_TOPIC_APP, "a/b", out, sizeof out),
                    MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("p", MGO_FLEET_TOPIC_APP, "+", out, sizeof out),
                    MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("p", MGO_FLEET_TOPIC_APP, "", out, sizeof out),
                    MGO_ERR_INVALID);
    char id[MGO_MAX_APP_ID_LEN + 2];
    memset(id, 'a', MGO_MAX_APP_ID_LEN);
    id[MGO_MAX_APP_ID_LEN] = '\0';
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("p", MGO_FLEET_TOPIC_APP, id, out, sizeof out), MGO_OK);
    id[MGO_MAX_APP_ID_LEN] = 'a';
    id[MGO_MAX_APP_ID_LEN + 1] = '\0';
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("p", MGO_FLEET_TOPIC_APP, id, out, sizeof out),
                    MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_fleet_topic_format("p", MGO_FLEET_TOPIC_APP, "x", out, 10), MGO_ERR_LIMIT);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"contract table: retained and qos per kind", test_contract_table},
        {"build: exact topic names", test_build_exact_names},
        {"build/parse round trip for every kind", test_round_trip_every_kind},
        {"parse: input without NUL terminator", test_parse_not_nul_terminated},
        {"parse: refuses non-contract topics", test_parse_refuses_non_contract_topics},
        {"parse: custom prefix", test_parse_custom_prefix},
        {"parse: MGO_MAX_TOPIC_LEN", test_parse_topic_length_limit},
        {"device id rules and MGO_MAX_DEVICE_ID_LEN", test_device_id_rules},
        {"deployment id rules and MGO_MAX_DEPLOYMENT_ID_LEN", test_deployment_id_rules},
        {"id limits through build, parse, filter", test_ids_limits_through_build_and_parse},
        {"prefix rules and MGO_MAX_TOPIC_PREFIX_LEN", test_prefix_rules},
        {"small output buffer -> MGO_ERR_LIMIT", test_small_output_buffer},
        {"subscription filters", test_filters},
        {"fleet roll-up topics", test_fleet_topics},
        {NULL, NULL},
    };
    mgo_test_add_suite("topic", cases);
}
