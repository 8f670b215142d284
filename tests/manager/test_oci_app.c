/* test_oci_app.c - margoctl app add oci://HOST:PORT/NAME:TAG against a real docker-registry
 * on a free loopback port and a real manager (in a thread, with Mosquitto): the sandbox's
 * package form (apiVersion v1 without kind) pushed as an OCI artifact
 * (artifactType application/vnd.margo.app.v1+json, empty config, the description as a layer)
 * is added and served with its kind; a wrong artifactType, a layer whose bytes do not match
 * its digest, an unknown tag and a wrong layer media type are refused with a clear error and
 * add nothing. Needs docker-registry (scripts/setup.sh containers). */
#include "mgo_test.h"

#include <curl/curl.h>
#include <string.h>

#include "broker.h"
#include "mgr_test_util.h"

#define TOKEN "oci-token-0123456789abcdef"

static struct mgo_test_broker broker;
static struct mgo_test_manager mgr;
static char dir[256], token_path[512], reg[64];

static void api(const char *method, const char *path, struct mgo_test_reply *r)
{
    mgr_test_http(mgr.api_base, method, path, NULL, "Bearer " TOKEN, r);
}

/* Runs margoctl app add REF; its exit status, its stderr in err (1 KiB). */
static int ctl_add(const char *ref, char *err)
{
    int rc = mgo_test_sh("%s/manager/margoctl app add '%s' --url %s --token-file %s > %s/ctl.out "
                         "2> %s/ctl.err",
                         MGO_BINARY_DIR, ref, mgr.api_base, token_path, dir, dir);
    char p[512];
    snprintf(p, sizeof p, "%s/ctl.err", dir);
    char *text = mgo_test_read_file(p, NULL);
    snprintf(err, 1024, "%s", text ? text : "");
    free(text);
    CU_ASSERT_PTR_NULL(strstr(err, "Sanitizer")); /* refusals leak nothing either */
    return rc;
}

static int push(const char *name, const char *tag, const char *file, const char *artifact_type,
                const char *layer_type, char *digest)
{
    return mgo_test_sh_out(digest, 128, "%s/tests/manager/oci-push-app.sh %s %s %s %s '%s' '%s'",
                           MGO_SOURCE_DIR, reg, name, tag, file, artifact_type, layer_type);
}

static size_t app_count(void)
{
    struct mgo_test_reply r;
    api("GET", "/api/v1/apps", &r);
    const struct mgo_value *a = mgo_value_get(&r.json, "apps");
    size_t n = r.status == 200 && a != NULL && a->kind == MGO_V_ARRAY ? a->as.array.len : 999;
    mgo_test_reply_cleanup(&r);
    return n;
}

static const char APP[] =
    "apiVersion: v1\n"
    "id: oci-hello\n"
    "metadata:\n  name: OCI Hello\n  version: '1.2'\n"
    "  catalog:\n    organization: [{name: Example Org}]\n"
    "deploymentProfiles:\n"
    "  - type: compose\n    id: c\n    components:\n"
    "      - name: web\n        properties: {packageLocation: 'https://example.com/web.tar.gz'}\n";

static void test_oci_app_add(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mgo_test_tmpdir("oci-app", dir);
    int port = mgo_test_free_port();
    CU_ASSERT_FATAL(port > 0);
    snprintf(reg, sizeof reg, "127.0.0.1:%d", port);
    int rc = mgo_test_sh("command -v docker-registry >/dev/null && . %s/scripts/containers-env.sh "
                         "&& mgo_registry_start %s %d > %s/setup.log 2>&1",
                         MGO_SOURCE_DIR, dir, port, dir);
    if (rc != 0) {
        fprintf(stderr,
                "\n*** OCI test cannot run: docker-registry missing or did not start "
                "(scripts/setup.sh containers; see %s/setup.log) ***\n",
                dir);
        CU_FAIL_FATAL("docker-registry unavailable");
    }
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(token_path, TOKEN "\n"));
    char state[512];
    snprintf(state, sizeof state, "%s/state", dir);
    CU_ASSERT_FATAL(mgo_test_sh("mkdir -p %s", state) == 0);
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), state, "oci-it", token_path, "warn");
    CU_ASSERT_FATAL(mgo_test_manager_start(&mgr, true) == MGO_OK);

    char file[512], digest[128], err[1024], ref[256];
    snprintf(file, sizeof file, "%s/margo.yaml", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(file, APP));
    const char *at = "application/vnd.margo.app.v1+json";
    const char *lt = "application/vnd.margo.app.description.v1+yaml";

    /* 1. the good package: added, served with its kind, apiVersion kept */
    CU_ASSERT_EQUAL_FATAL(push("margo/oci-hello", "1.2", file, at, lt, digest), 0);
    snprintf(ref, sizeof ref, "oci://%s/margo/oci-hello:1.2", reg);
    CU_ASSERT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_EQUAL(app_count(), 1);
    struct mgo_test_reply r;
    api("GET", "/api/v1/apps/oci-hello?version=1.2", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/id"), "oci-hello");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/document/kind"), "ApplicationDescription");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/document/apiVersion"), "v1");
    mgo_test_reply_cleanup(&r);
    /* the same again: the manager's 409, reported */
    CU_ASSERT_NOT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already in the catalog"));

    /* 2. wrong artifactType */
    CU_ASSERT_EQUAL_FATAL(
        push("margo/other", "1", file, "application/vnd.example.thing.v1+json", lt, digest), 0);
    snprintf(ref, sizeof ref, "oci://%s/margo/other:1", reg);
    CU_ASSERT_NOT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "artifactType: must be application/vnd.margo.app.v1+json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "application/vnd.example.thing.v1+json"));

    /* 3. no description layer (a compose layer only) */
    CU_ASSERT_EQUAL_FATAL(
        push("margo/other", "2", file, at, "application/vnd.margo.compose.v1+yaml", digest), 0);
    snprintf(ref, sizeof ref, "oci://%s/margo/other:2", reg);
    CU_ASSERT_NOT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "layers[].mediaType: no layer of type"));

    /* 4. the layer's bytes do not match its digest: the registry's stored blob is replaced by
     * other bytes of the same size */
    char file2[512];
    snprintf(file2, sizeof file2, "%s/margo2.yaml", dir);
    char app2[sizeof APP];
    snprintf(app2, sizeof app2, "%s", APP);
    memcpy(strstr(app2, "oci-hello"), "oci-hellx", 9);
    CU_ASSERT_FATAL(mgo_test_write_file(file2, app2));
    CU_ASSERT_EQUAL_FATAL(push("margo/tampered", "1", file2, at, lt, digest), 0);
    CU_ASSERT_FATAL(strncmp(digest, "sha256:", 7) == 0);
    CU_ASSERT_EQUAL_FATAL(
        mgo_test_sh("cp %s %s/registry-data/docker/registry/v2/blobs/sha256/%.2s/%s/data", file,
                    dir, digest + 7, digest + 7),
        0);
    snprintf(ref, sizeof ref, "oci://%s/margo/tampered:1", reg);
    CU_ASSERT_NOT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not match the manifest's"));

    /* 5. unknown tag, unknown repository, malformed reference */
    snprintf(ref, sizeof ref, "oci://%s/margo/oci-hello:9.9", reg);
    CU_ASSERT_NOT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "http status 404"));
    snprintf(ref, sizeof ref, "oci://%s/margo/oci-hello", reg);
    CU_ASSERT_NOT_EQUAL(ctl_add(ref, err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "a tag (NAME:TAG) or digest"));

    /* nothing but the good package was added */
    CU_ASSERT_EQUAL(app_count(), 1);

    mgo_test_manager_stop(&mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_sh(". %s/scripts/containers-env.sh && mgo_registry_stop %s", MGO_SOURCE_DIR, dir);
    mgo_test_rm_rf(dir);
    curl_global_cleanup();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"margoctl app add oci:// against docker-registry", test_oci_app_add},
        {NULL, NULL},
    };
    mgo_test_add_suite("oci application packages", cases);
}
