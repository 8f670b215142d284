/* test_wfm.c - the Margo HTTP binding's checks and conversions (agent/src/wfm.c): manifest
 * validation (anti-rollback, digest algorithm, sizeBytes advisory), deployment YAML digest
 * and conversion, status and capabilities JSON, Retry-After, and the poll schedule with
 * polling and downtime windows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docs.h"
#include "mgo/agent.h"
#include "mgo/config.h"
#include "mgo/value.h"
#include "mgo_test.h"
#include "wfm.h"

#define ID_A "0f8c3a52-6d1e-4b7a-9c2d-5e6f7a8b9c0d"
#define ID_B "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

static const char yaml_a[] = "apiVersion: application.margo.org/v1alpha1\n"
                             "kind: ApplicationDeployment\n"
                             "metadata:\n"
                             "  annotations:\n"
                             "    applicationId: demo-app\n"
                             "    id: " ID_A "\n"
                             "  name: demo-alpha\n"
                             "  namespace: edge\n"
                             "  deviceId: dev-1\n"
                             "spec:\n"
                             "  deploymentProfile:\n"
                             "    type: compose\n"
                             "    components:\n"
                             "      - name: web\n"
                             "        properties:\n"
                             "          packageLocation: https://example.org/compose.yaml\n";

static char *manifest(char *out, size_t len, unsigned version, const char *digest_a,
                      const char *extra)
{
    snprintf(out, len,
             "{\"manifestVersion\": %u, \"bundle\": null, \"deployments\": ["
             "{\"deploymentId\": \"" ID_A "\", \"digest\": \"%s\", \"url\": "
             "\"/api/v1/deployments/" ID_A "/%s\"%s}]}",
             version, digest_a, digest_a, extra);
    return out;
}

static void test_manifest(void)
{
    char d[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_FATAL(mgo_digest_sha256(yaml_a, strlen(yaml_a), d) == MGO_OK);
    char body[1024], why[512];
    struct mgo_wfm_manifest *m = calloc(1, sizeof *m);
    CU_ASSERT_FATAL(m != NULL);

    manifest(body, sizeof body, 5, d, "");
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 4, m, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(m->version, 5u);
    CU_ASSERT_EQUAL(m->len, 1u);
    CU_ASSERT_STRING_EQUAL(m->refs[0].id, ID_A);
    CU_ASSERT_STRING_EQUAL(m->refs[0].digest, d);

    /* anti-rollback: equal and lower versions are refused */
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 5, m, why, sizeof why) == MGO_ERR_STALE);
    CU_ASSERT(strstr(why, "not greater") != NULL);
    CU_ASSERT_EQUAL(m->version, 5u);
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 9, m, why, sizeof why) == MGO_ERR_STALE);

    /* another digest algorithm is refused by name; so is a sha256 in upper case */
    manifest(body, sizeof body, 6,
             "sha512:"
             "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
             "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
             "");
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 5, m, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "unsupported digest algorithm \"sha512\"") != NULL);
    CU_ASSERT(strstr(why, "deployments[0].digest") != NULL);
    char upper[MGO_DIGEST_STR_SIZE];
    snprintf(upper, sizeof upper, "sha256:%s", d + 7);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    manifest(body, sizeof body, 6, upper, "");
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 5, m, why, sizeof why) == MGO_ERR_INVALID);

    /* a bundle: its digest is kept for the fetch, and checked like the others */
    snprintf(body, sizeof body,
             "{\"manifestVersion\": 6, \"bundle\": {\"mediaType\": "
             "\"application/vnd.margo.bundle.v1+tar+gzip\", \"digest\": \"%s\", \"url\": "
             "\"/api/v1/bundles/%s\"}, \"deployments\": [{\"deploymentId\": \"" ID_A
             "\", \"digest\": \"%s\"}]}",
             d, d, d);
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 5, m, why, sizeof why) == MGO_OK);
    CU_ASSERT(m->has_bundle);
    CU_ASSERT_STRING_EQUAL(m->bundle_digest, d);
    snprintf(body, sizeof body,
             "{\"manifestVersion\": 6, \"bundle\": {\"mediaType\": "
             "\"application/vnd.margo.bundle.v1+tar+gzip\", \"digest\": \"md5:00ff\", "
             "\"url\": \"/api/v1/bundles/x\"}, \"deployments\": [{\"deploymentId\": \"" ID_A
             "\", \"digest\": \"%s\"}]}",
             d);
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 5, m, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "bundle.digest: unsupported digest algorithm \"md5\"") != NULL);

    /* sizeBytes is advisory: a wrong one changes nothing */
    manifest(body, sizeof body, 7, d, ", \"sizeBytes\": 3");
    CU_ASSERT(mgo_wfm_manifest_parse(body, strlen(body), 5, m, why, sizeof why) == MGO_OK);

    /* malformed: no bundle key, version 0, not JSON */
    const char *bad[] = {"{\"manifestVersion\": 8, \"deployments\": []}",
                         "{\"manifestVersion\": 0, \"bundle\": null, \"deployments\": []}",
                         "[1, 2]", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT(mgo_wfm_manifest_parse(bad[i], strlen(bad[i]), 0, m, why, sizeof why) != MGO_OK);
    /* empty desired state is a valid manifest */
    const char *empty = "{\"manifestVersion\": 9, \"bundle\": null, \"deployments\": []}";
    CU_ASSERT(mgo_wfm_manifest_parse(empty, strlen(empty), 8, m, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(m->len, 0u);
    free(m);
}

static void test_document(void)
{
    struct mgo_wfm_ref ref;
    memset(&ref, 0, sizeof ref);
    snprintf(ref.id, sizeof ref.id, "%s", ID_A);
    CU_ASSERT_FATAL(mgo_digest_sha256(yaml_a, strlen(yaml_a), ref.digest) == MGO_OK);
    char why[512];
    struct mgo_buf doc;
    mgo_buf_init(&doc, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_wfm_deployment_doc(yaml_a, strlen(yaml_a), &ref, &doc, why, sizeof why) ==
                    MGO_OK);
    /* the executor's decoder takes it like a document from the broker */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_doc_entry e;
    memset(&e, 0, sizeof e);
    struct mgo_app_deployment dep;
    CU_ASSERT(mgo_docs_examine(doc.data, doc.len, &arena, &e, &dep, why, sizeof why) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(dep.id, ID_A);
    CU_ASSERT_STRING_EQUAL(dep.name, "demo-alpha");
    CU_ASSERT(mgo_digest_is_sha256(e.digest));
    /* converting the same bytes again gives the same document digest (no reinstall) */
    struct mgo_buf doc2;
    mgo_buf_init(&doc2, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT(mgo_wfm_deployment_doc(yaml_a, strlen(yaml_a), &ref, &doc2, why, sizeof why) ==
              MGO_OK);
    CU_ASSERT(doc2.len == doc.len && memcmp(doc2.data, doc.data, doc.len) == 0);
    mgo_buf_cleanup(&doc2);
    mgo_arena_cleanup(&arena);

    /* one byte more (a trailing newline): digest mismatch */
    char longer[sizeof yaml_a + 1];
    snprintf(longer, sizeof longer, "%s\n", yaml_a);
    mgo_buf_reset(&doc);
    CU_ASSERT(mgo_wfm_deployment_doc(longer, strlen(longer), &ref, &doc, why, sizeof why) ==
              MGO_ERR_CRYPTO);
    CU_ASSERT(strstr(why, "digest mismatch") != NULL);
    CU_ASSERT_EQUAL(doc.len, 0u);

    /* right digest, but the document is another deployment */
    struct mgo_wfm_ref other = ref;
    snprintf(other.id, sizeof other.id, "%s", ID_B);
    CU_ASSERT(mgo_wfm_deployment_doc(yaml_a, strlen(yaml_a), &other, &doc, why, sizeof why) ==
              MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, ID_A) != NULL);

    /* right digest of an invalid document */
    const char *junk = "kind: ApplicationDeployment\nmetadata: {}\n";
    struct mgo_wfm_ref jr = ref;
    CU_ASSERT_FATAL(mgo_digest_sha256(junk, strlen(junk), jr.digest) == MGO_OK);
    CU_ASSERT(mgo_wfm_deployment_doc(junk, strlen(junk), &jr, &doc, why, sizeof why) ==
              MGO_ERR_INVALID);

    /* the hard size bound holds whatever the manifest said */
    size_t big = MGO_WFM_MAX_YAML_BYTES + 1;
    char *huge = calloc(1, big);
    CU_ASSERT_FATAL(huge != NULL);
    CU_ASSERT(mgo_wfm_deployment_doc(huge, big, &ref, &doc, why, sizeof why) == MGO_ERR_LIMIT);
    free(huge);
    mgo_buf_cleanup(&doc);
}

/* A tar.gz made by tar(1) from files written into a fresh folder; *len receives its size. */
static char *make_tgz(const char *dir, const char *members, size_t *len)
{
    char path[400];
    snprintf(path, sizeof path, "%s/bundle.tgz", dir);
    CU_ASSERT_FATAL(mgo_test_sh("cd '%s/files' && tar -czf '%s' %s", dir, path, members) == 0);
    return mgo_test_read_file(path, len);
}

static void test_bundle(void)
{
    char dir[256], path[400], why[512];
    mgo_test_tmpdir("wfm-bundle", dir);
    CU_ASSERT_FATAL(mgo_test_sh("mkdir -p '%s/files/sub'", dir) == 0);
    snprintf(path, sizeof path, "%s/files/a.yaml", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(path, yaml_a));
    snprintf(path, sizeof path, "%s/files/other.yaml", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(path, "not: named by the manifest\n"));
    snprintf(path, sizeof path, "%s/files/sub/a.yaml", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(path, yaml_a));

    struct mgo_wfm_manifest *m = calloc(1, sizeof *m);
    CU_ASSERT_FATAL(m != NULL);
    m->len = 1;
    snprintf(m->refs[0].id, sizeof m->refs[0].id, "%s", ID_A);
    CU_ASSERT_FATAL(mgo_digest_sha256(yaml_a, strlen(yaml_a), m->refs[0].digest) == MGO_OK);
    struct mgo_buf y;
    mgo_buf_init(&y, MGO_WFM_MAX_YAML_BYTES);

    /* the YAML found by its digest, an extra file ignored */
    size_t len = 0;
    char *tgz = make_tgz(dir, "a.yaml other.yaml", &len);
    m->has_bundle = true;
    CU_ASSERT_FATAL(mgo_digest_sha256(tgz, len, m->bundle_digest) == MGO_OK);
    CU_ASSERT(mgo_wfm_bundle_extract(tgz, len, m, &y, why, sizeof why) == MGO_OK);
    CU_ASSERT(y.len == strlen(yaml_a) && memcmp(y.data, yaml_a, y.len) == 0);

    /* one byte of the archive changed: the bundle digest no longer matches */
    mgo_buf_reset(&y);
    tgz[len / 2] ^= 1;
    CU_ASSERT(mgo_wfm_bundle_extract(tgz, len, m, &y, why, sizeof why) == MGO_ERR_CRYPTO);
    CU_ASSERT(strstr(why, "digest mismatch") != NULL);
    CU_ASSERT_EQUAL(y.len, 0u);
    free(tgz);

    /* a deployment of the manifest missing from the bundle */
    tgz = make_tgz(dir, "other.yaml", &len);
    CU_ASSERT_FATAL(mgo_digest_sha256(tgz, len, m->bundle_digest) == MGO_OK);
    CU_ASSERT(mgo_wfm_bundle_extract(tgz, len, m, &y, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, ID_A) != NULL);
    free(tgz);

    /* files below the root, and folders, are refused */
    tgz = make_tgz(dir, "sub/a.yaml", &len);
    CU_ASSERT_FATAL(mgo_digest_sha256(tgz, len, m->bundle_digest) == MGO_OK);
    CU_ASSERT(mgo_wfm_bundle_extract(tgz, len, m, &y, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "not a regular file at the root") != NULL);
    free(tgz);

    /* not a tar+gzip archive */
    const char junk[] = "this is not gzip";
    CU_ASSERT_FATAL(mgo_digest_sha256(junk, sizeof junk - 1, m->bundle_digest) == MGO_OK);
    CU_ASSERT(mgo_wfm_bundle_extract(junk, sizeof junk - 1, m, &y, why, sizeof why) ==
              MGO_ERR_PARSE);
    mgo_buf_cleanup(&y);
    free(m);
    mgo_test_rm_rf(dir);
}

static void test_status_json(void)
{
    struct mgo_component_status comps[1] = {{.name = "web",
                                             .state = MGO_STATE_FAILED,
                                             .has_error = true,
                                             .error = {"RUNTIME_FAILED", "web", "exit 1"}}};
    struct mgo_deployment_status s = {.deployment_id = ID_A,
                                      .device_id = "dev-1",
                                      .has_adopted_manifest_version = true,
                                      .adopted_manifest_version = 12,
                                      .state = MGO_STATE_FAILED,
                                      .components = comps,
                                      .components_len = 1,
                                      .has_journal = true,
                                      .boot = 3,
                                      .seq = 4};
    struct mgo_buf mp, json;
    mgo_buf_init(&mp, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&json, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_deployment_status_encode(&s, &mp) == MGO_OK);
    CU_ASSERT_FATAL(mgo_wfm_status_json(mp.data, mp.len, 99, &json) == MGO_OK);
    CU_ASSERT_FATAL(mgo_buf_append(&json, "", 1) == MGO_OK);
    const char *j = (const char *)json.data;
    CU_ASSERT(strstr(j, "\"adoptedManifestVersion\":12") != NULL);
    CU_ASSERT(strstr(j, "\"deploymentId\":\"" ID_A "\"") != NULL);
    CU_ASSERT(strstr(j, "\"state\":\"failed\"") != NULL);
    CU_ASSERT(strstr(j, "\"code\":\"RUNTIME_FAILED\"") != NULL);
    CU_ASSERT(strstr(j, "x-margo-mqtt") == NULL);
    CU_ASSERT(strstr(j, "apiVersion") == NULL);
    CU_ASSERT(strstr(j, "kind") == NULL);

    /* without a version: the fallback (Margo requires the field), or refused without one */
    s.has_adopted_manifest_version = false;
    mgo_buf_reset(&mp);
    mgo_buf_reset(&json);
    CU_ASSERT_FATAL(mgo_deployment_status_encode(&s, &mp) == MGO_OK);
    CU_ASSERT_FATAL(mgo_wfm_status_json(mp.data, mp.len, 7, &json) == MGO_OK);
    CU_ASSERT_FATAL(mgo_buf_append(&json, "", 1) == MGO_OK);
    CU_ASSERT(strstr((const char *)json.data, "\"adoptedManifestVersion\":7") != NULL);
    mgo_buf_reset(&json);
    CU_ASSERT(mgo_wfm_status_json(mp.data, mp.len, 0, &json) == MGO_ERR_INVALID);
    mgo_buf_cleanup(&mp);
    mgo_buf_cleanup(&json);
}

static void test_retry_after(void)
{
    /* 2026-10-21 07:28:00 UTC */
    struct tm tm = {.tm_year = 126, .tm_mon = 9, .tm_mday = 21, .tm_hour = 7, .tm_min = 28};
    time_t now = timegm(&tm);
    uint32_t s = 0;
    CU_ASSERT(mgo_wfm_retry_after("120", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, 120u);
    CU_ASSERT(mgo_wfm_retry_after(" 0 ", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, 0u);
    CU_ASSERT(mgo_wfm_retry_after("99999999999999999999", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, MGO_WFM_MAX_RETRY_AFTER_S);
    CU_ASSERT(mgo_wfm_retry_after("Wed, 21 Oct 2026 07:30:30 GMT", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, 150u);
    CU_ASSERT(mgo_wfm_retry_after("Wednesday, 21-Oct-26 07:29:00 GMT", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, 60u);
    CU_ASSERT(mgo_wfm_retry_after("Wed Oct 21 07:28:10 2026", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, 10u);
    CU_ASSERT(mgo_wfm_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now, &s) == MGO_OK);
    CU_ASSERT_EQUAL(s, 0u); /* in the past */
    const char *bad[] = {"", "-5", "12s", "1.5", "tomorrow", "Wed, 21 Oct 2026 07:30:30 CET"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT(mgo_wfm_retry_after(bad[i], now, &s) == MGO_ERR_INVALID);
}

/* 2026-11-23 is a Monday. */
static time_t at(int mday, int hour, int min, int sec)
{
    struct tm tm = {.tm_year = 126,
                    .tm_mon = 10,
                    .tm_mday = mday,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    return timegm(&tm);
}

static void test_schedule(void)
{
    struct mgo_downtime poll[1], down[1];
    char why[256];
    CU_ASSERT_FATAL(mgo_downtime_parse("Mon-Fri 08:00-18:00", &poll[0], why, sizeof why) == MGO_OK);
    CU_ASSERT_FATAL(mgo_downtime_parse("daily 12:00-13:00", &down[0], why, sizeof why) == MGO_OK);
    /* no windows: always */
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(NULL, 0, NULL, 0, at(23, 3, 0, 0)), 0);
    /* inside the polling hours */
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(poll, 1, NULL, 0, at(23, 9, 0, 0)), 0);
    /* before them: until 08:00 */
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(poll, 1, NULL, 0, at(23, 7, 59, 30)), 30);
    /* after them on Friday: Monday 08:00 */
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(poll, 1, NULL, 0, at(27, 18, 0, 0)),
                    (int64_t)(at(30, 8, 0, 0) - at(27, 18, 0, 0)));
    /* a downtime window inside the polling hours: until it ends */
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(poll, 1, down, 1, at(24, 12, 30, 0)), 1800);
    /* downtime alone */
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(NULL, 0, down, 1, at(24, 12, 0, 0)), 3600);
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(NULL, 0, down, 1, at(24, 13, 0, 0)), 0);
    /* a downtime that covers every polling hour: never */
    struct mgo_downtime all[1];
    CU_ASSERT_FATAL(mgo_downtime_parse("daily 00:00-24:00", &all[0], why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(mgo_wfm_poll_wait(poll, 1, all, 1, at(23, 9, 0, 0)), -1);
}

static void test_caps_json(void)
{
    const char *caps_json = "{\"apiVersion\": \"device.margo.org/v1alpha1\", \"kind\": "
                            "\"DeviceCapabilitiesManifest\", \"properties\": {\"id\": \"dev-1\", "
                            "\"vendor\": \"v\", \"modelNumber\": \"m\", \"serialNumber\": \"s\", "
                            "\"cpus\": [{\"cores\": 2, \"architecture\": \"amd64\"}], "
                            "\"memory\": \"1Gi\", \"storage\": \"2Gi\", \"peripherals\": [], "
                            "\"interfaces\": [], \"otelCollector\": false, "
                            "\"supportedRuntimes\": [\"oci\"], "
                            "\"supportedDeploymentTypes\": [\"compose\"]}, "
                            "\"labels\": {\"site\": \"a\"}}";
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value root;
    struct mgo_capabilities caps;
    CU_ASSERT_FATAL(mgo_value_from_yaml(caps_json, strlen(caps_json), &arena, &root, &p) == MGO_OK);
    CU_ASSERT_FATAL(mgo_capabilities_from_value(&root, &arena, &caps, &p) == MGO_OK);
    struct mgo_buf mp, json;
    mgo_buf_init(&mp, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_init(&json, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_capabilities_encode(&caps, &mp) == MGO_OK);
    CU_ASSERT_FATAL(mgo_wfm_caps_json(mp.data, mp.len, &json) == MGO_OK);
    CU_ASSERT_FATAL(mgo_buf_append(&json, "", 1) == MGO_OK);
    const char *j = (const char *)json.data;
    static const char head[] = "{\"labels\":{\"site\":\"a\"},\"properties\":{";
    CU_ASSERT(strncmp(j, head, sizeof head - 1) == 0);
    CU_ASSERT(strstr(j, "\"supportedDeploymentTypes\":[\"compose\"]") != NULL);
    CU_ASSERT(strstr(j, "apiVersion") == NULL);
    CU_ASSERT(strstr(j, "\"kind\"") == NULL);
    mgo_buf_cleanup(&mp);
    mgo_buf_cleanup(&json);
    mgo_arena_cleanup(&arena);
}

/* The transport options: which combinations start (mgo_agent_config_check). */
static bool config_ok(const char *const *kv, char *why, size_t why_len)
{
    struct mgo_agent_config cfg;
    memset(&cfg, 0, sizeof cfg);
    CU_ASSERT_FATAL(mgo_cfg_defaults(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg) == MGO_OK);
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_FATAL(mgo_cfg_set(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg, "device-id",
                                "dev-1", "test", &p) == MGO_OK);
    for (size_t i = 0; kv[i] != NULL; i += 2)
        CU_ASSERT_FATAL(mgo_cfg_set(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg, kv[i],
                                    kv[i + 1], "test", &p) == MGO_OK);
    bool ok = mgo_agent_config_check(&cfg, &p) == MGO_OK;
    mgo_problems_format(&p, why, why_len);
    mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &cfg);
    return ok;
}

static void test_config(void)
{
    char why[1024];
    const char *mqtt[] = {NULL};
    CU_ASSERT(config_ok(mqtt, why, sizeof why));
    const char *http[] = {
        "transport", "http",  "wfm-url",     "https://wfm.example:8443", "cert-file", "c.pem",
        "key-file",  "k.pem", "poll-window", "Mon-Fri 08:00-18:00",      NULL};
    CU_ASSERT(config_ok(http, why, sizeof why));
    const char *bad_transport[] = {"transport", "coap", NULL};
    CU_ASSERT(!config_ok(bad_transport, why, sizeof why));
    CU_ASSERT(strstr(why, "transport") != NULL);
    const char *no_url[] = {"transport", "http", "cert-file", "c.pem", "key-file", "k.pem", NULL};
    CU_ASSERT(!config_ok(no_url, why, sizeof why));
    CU_ASSERT(strstr(why, "wfm-url") != NULL);
    const char *plain[] = {"transport",          "http",      "wfm-url",
                           "http://wfm.example", "cert-file", "c.pem",
                           "key-file",           "k.pem",     NULL};
    CU_ASSERT(!config_ok(plain, why, sizeof why));
    const char *slash[] = {"transport", "http",  "wfm-url",  "https://wfm.example/",
                           "cert-file", "c.pem", "key-file", "k.pem",
                           NULL};
    CU_ASSERT(!config_ok(slash, why, sizeof why));
    const char *no_cert[] = {"transport", "http", "wfm-url", "https://wfm.example", NULL};
    CU_ASSERT(!config_ok(no_cert, why, sizeof why));
    CU_ASSERT(strstr(why, "X.509-SVID") != NULL);
    /* signatures are the MQTT binding's: refused with http, explicitly */
    const char *signed_http[] = {"transport",          "http",  "wfm-url",  "https://wfm.example",
                                 "cert-file",          "c.pem", "key-file", "k.pem",
                                 "manager-public-key", "m.pem", NULL};
    CU_ASSERT(!config_ok(signed_http, why, sizeof why));
    CU_ASSERT(strstr(why, "manager-public-key") != NULL);
    const char *bad_window[] = {"poll-window", "daily 8:00-18:00", NULL};
    CU_ASSERT(!config_ok(bad_window, why, sizeof why));
    CU_ASSERT(strstr(why, "poll-window") != NULL);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"manifest validation", test_manifest},
        {"deployment documents by digest", test_document},
        {"bundles", test_bundle},
        {"status as Margo JSON", test_status_json},
        {"capabilities as Margo JSON", test_caps_json},
        {"Retry-After", test_retry_after},
        {"poll schedule", test_schedule},
        {"transport options", test_config},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.wfm", cases);
}
