/* test_southbound.c - conformance of margo-manager's southbound Margo HTTP API to the
 * Workload Management API 1.0.0-rc.3 (docs/margo-http.md, the conformance table names these
 * tests): the real manager in a thread with a real Mosquitto, X.509-SVIDs minted by
 * broker-config/svid.sh, requests with libcurl and client certificates; deployments made
 * through the northbound API; MQTT watched by a subscriber; a Python standard-library Margo
 * device (margo_http_device.py) as a third-party client.
 *
 * The tests share one broker, one manager and its PKI and run in order (each builds on the
 * state the previous one left). Nothing asserts on timing. */
#include "mgo_test.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <unistd.h>

#include "mgo/digest.h"
#include "mgr_test_util.h"
#include "proc.h"

#define WAIT_MS 15000
#define TOKEN "sb-token-0123456789abcdef"
#define TD "example.org"
#define WFM "wfm1"
#define PROBLEM "https://docs.margo.org/specification/margo-management-interface/problem-types#"
#define RATE 150

static struct mgo_test_broker broker;
static char dir[256];     /* state, PKI, token */
static char pki[320];     /* the trust domain's PKI (svid.sh) */
static char foreign[320]; /* another CA with the same names */
static char token_path[512];
static char listen_addr[64];
static char sb_base[64]; /* https://127.0.0.1:PORT */
static char cert[512], key[512], ca[512];
static struct mgo_test_manager mgr;
static struct mgo_mqtt *monitor; /* subscribed to status and dev-h1's desired topic */
static char dep_id[64];          /* dev-h1's deployment */
static char manifest_etag[128];  /* dev-h1's manifest ETag before the deployment */

/* ---- requests ------------------------------------------------------------------------------ */

struct sb_reply {
    long status; /* 0: no HTTP exchange (TLS refused) */
    char ctype[128], etag[128], cache[128], vary[64], retry_after[32];
    struct mgo_buf body;
    struct mgo_arena arena;
    struct mgo_value json;
};

static void header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    if (len <= n + 1 || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    size_t vlen = len - n - 1;
    while (vlen && (*v == ' '))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    snprintf(out, size, "%.*s", (int)vlen, v);
}

static size_t on_header(char *line, size_t sz, size_t n, void *ctx)
{
    struct sb_reply *r = ctx;
    size_t len = sz * n;
    header_value(line, len, "Content-Type", r->ctype, sizeof r->ctype);
    header_value(line, len, "ETag", r->etag, sizeof r->etag);
    header_value(line, len, "Cache-Control", r->cache, sizeof r->cache);
    header_value(line, len, "Vary", r->vary, sizeof r->vary);
    header_value(line, len, "Retry-After", r->retry_after, sizeof r->retry_after);
    return len;
}

static size_t on_body(char *data, size_t sz, size_t n, void *ctx)
{
    struct sb_reply *r = ctx;
    return mgo_buf_append(&r->body, data, sz * n) == MGO_OK ? sz * n : 0;
}

/* method path on the southbound API as client (a file name under clients/ of pki_dir; NULL:
 * no certificate), with body (NULL = none) and up to two header lines. tls12: TLS 1.2 at most. */
static void sbx(const char *pki_dir, const char *client, bool tls12, const char *method,
                const char *path, const char *body, const char *h1, const char *h2,
                struct sb_reply *r)
{
    memset(r, 0, sizeof *r);
    mgo_buf_init(&r->body, 64u * 1024u * 1024u);
    mgo_arena_init(&r->arena, 16u * 1024u * 1024u);
    CURL *c = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", sb_base, path);
    struct curl_slist *hs = NULL;
    if (h1)
        hs = curl_slist_append(hs, h1);
    if (h2)
        hs = curl_slist_append(hs, h2);
    if (body)
        hs = curl_slist_append(hs, "Content-Type: application/json");
    char ccert[512], ckey[512];
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_SSLVERSION,
                     tls12 ? (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2)
                           : (long)CURL_SSLVERSION_TLSv1_3);
    if (client) {
        snprintf(ccert, sizeof ccert, "%s/clients/%s.crt", pki_dir, client);
        snprintf(ckey, sizeof ckey, "%s/clients/%s.key", pki_dir, client);
        curl_easy_setopt(c, CURLOPT_SSLCERT, ccert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, ckey);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    struct mgo_problems p;
    mgo_problems_init(&p);
    r->json.kind = MGO_V_NULL;
    if (r->body.len > 0 && r->body.data[0] == '{' &&
        mgo_value_from_yaml(r->body.data, r->body.len, &r->arena, &r->json, &p) != MGO_OK)
        r->json.kind = MGO_V_NULL;
}

static void sb(const char *client, const char *method, const char *path, const char *body,
               const char *h1, struct sb_reply *r)
{
    sbx(pki, client, false, method, path, body, h1, NULL, r);
}

static void sb_done(struct sb_reply *r)
{
    mgo_buf_cleanup(&r->body);
    mgo_arena_cleanup(&r->arena);
}

static bool problem_is(const struct sb_reply *r, long status, const char *type_name)
{
    char type[256];
    snprintf(type, sizeof type, "%s%s", type_name ? PROBLEM : "about:blank",
             type_name ? type_name : "");
    bool ok = r->status == status && strcmp(r->ctype, "application/problem+json") == 0 &&
              strcmp(mgo_test_jstr(&r->json, "/type"), type) == 0 &&
              mgo_test_ju64(&r->json, "/status") == (uint64_t)status &&
              mgo_test_jstr(&r->json, "/title")[0] != '\0';
    if (!ok)
        fprintf(stderr, "want %ld %s, got %ld %s: %.*s\n", status, type, r->status, r->ctype,
                (int)r->body.len, r->body.data ? (const char *)r->body.data : "");
    return ok;
}

/* The 422 reply names field in its errors with a message containing text. */
static bool names_field(const struct sb_reply *r, const char *field, const char *text)
{
    const struct mgo_value *e = mgo_value_get(&r->json, "errors");
    for (size_t i = 0; e && e->kind == MGO_V_ARRAY && i < e->as.array.len; i++) {
        if (strcmp(mgo_test_jstr(&e->as.array.items[i], "/field"), field) == 0 &&
            strstr(mgo_test_jstr(&e->as.array.items[i], "/message"), text))
            return true;
    }
    fprintf(stderr, "no error on %s (%s) in %.*s\n", field, text, (int)r->body.len,
            r->body.data ? (const char *)r->body.data : "");
    return false;
}

/* "sha256:<hex>" of the reply body, quoted. */
static void body_etag(const struct sb_reply *r, char out[128])
{
    char d[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_FATAL(mgo_digest_sha256(r->body.data ? (const void *)r->body.data : "", r->body.len,
                                      d) == MGO_OK);
    snprintf(out, 128, "\"%s\"", d);
}

static void api(const char *method, const char *path, const char *body, struct mgo_test_reply *r)
{
    mgr_test_http(mgr.api_base, method, path, body, "Bearer " TOKEN, r);
}

static void allow(const char *client)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/clients/%s", client);
    struct mgo_test_reply r;
    api("PUT", path, NULL, &r);
    CU_ASSERT(r.status == 201 || r.status == 200);
    mgo_test_reply_cleanup(&r);
}

static const char *caps_json(const char *id, char *out, size_t size)
{
    snprintf(out, size,
             "{\"properties\":{\"id\":\"%s\",\"vendor\":\"acme\",\"modelNumber\":\"m1\","
             "\"serialNumber\":\"s1\",\"cpus\":[{\"cores\":4,\"architecture\":\"amd64\"}],"
             "\"memory\":\"4Gi\",\"storage\":\"20Gi\",\"peripherals\":[],"
             "\"interfaces\":[{\"type\":\"ethernet\"}],\"otelCollector\":true,"
             "\"supportedRuntimes\":[\"oci\"],\"supportedDeploymentTypes\":[\"compose\"]},"
             "\"labels\":{\"site\":\"lab\",\"tier\":[1,2]},\"x-acme-extensions\":{\"a\":1}}",
             id);
    return out;
}

/* Reads MQTT messages for ms; counts those on topic (retained ones in *retained). */
static int mqtt_count(const char *topic, int ms, int *retained)
{
    int n = 0;
    int64_t deadline = mgo_test_now_ms() + ms;
    while (mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(monitor, 50, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && strcmp(ev.topic, topic) == 0 && ev.payload_len > 0) {
            n++;
            if (retained && ev.retained)
                (*retained)++;
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    return n;
}

/* ---- setup ---------------------------------------------------------------------------------- */

static int suite_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    mgo_test_tmpdir("southbound", dir);
    snprintf(pki, sizeof pki, "%s/pki", dir);
    snprintf(foreign, sizeof foreign, "%s/foreign", dir);
    const char *svid = MGO_SOURCE_DIR "/broker-config/svid.sh";
    if (mgo_test_sh(
            "%s --trust-domain " TD " --wfm-id " WFM
            " --client dev-h1 --client dev-h2 --client dev-py --client dev-x --client margo-mon %s",
            svid, pki) != 0 ||
        /* a certificate of this CA, but for another WFM: not a client SVID of this one */
        mgo_test_sh("%s --trust-domain " TD " --wfm-id other-wfm --client intruder %s", svid,
                    pki) != 0 ||
        /* the same names from a CA the manager does not trust */
        mgo_test_sh("%s --trust-domain " TD " --wfm-id " WFM " --client dev-h1 %s", svid,
                    foreign) != 0)
        return -1;
    snprintf(cert, sizeof cert, "%s/wfm.crt", pki);
    snprintf(key, sizeof key, "%s/wfm.key", pki);
    snprintf(ca, sizeof ca, "%s/svid-ca.crt", pki);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    if (!mgo_test_write_file(token_path, TOKEN "\n") || mgo_test_broker_start(&broker, NULL) != 0)
        return -1;
    int port = mgo_test_free_port();
    snprintf(listen_addr, sizeof listen_addr, "127.0.0.1:%d", port);
    snprintf(sb_base, sizeof sb_base, "https://127.0.0.1:%d", port);
    char state[320];
    snprintf(state, sizeof state, "%s/state", dir);
    static char state_s[320];
    snprintf(state_s, sizeof state_s, "%s", state);
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), state_s, "margo-manager-sb",
                          token_path, "warn");
    mgr.cfg.margo_api_listen = listen_addr;
    mgr.cfg.margo_api_cert = cert;
    mgr.cfg.margo_api_key = key;
    mgr.cfg.margo_api_client_ca = ca;
    mgr.cfg.trust_domain = TD;
    mgr.cfg.wfm_id = WFM;
    mgr.cfg.margo_api_rate = RATE;
    if (mgo_test_manager_start(&mgr, true) != MGO_OK)
        return -1;
    monitor = mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "margo-monitor-sb", 0, WAIT_MS);
    if (!monitor || mgo_mqtt_subscribe(monitor, "margo/v1/devices/+/status/+", 1, NULL) ||
        mgo_mqtt_subscribe(monitor, "margo/v1/devices/+/desired", 1, NULL))
        return -1;
    return 0;
}

static int suite_clean(void)
{
    mgo_mqtt_free(monitor);
    mgo_test_manager_stop(&mgr);
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(dir);
    curl_global_cleanup();
    return 0;
}

/* ---- trust bundle ---------------------------------------------------------------------------- */

static void test_well_known(void)
{
    struct sb_reply r;
    sb(NULL, "GET", "/.well-known/margo", NULL, NULL, &r); /* no certificate needed */
    CU_ASSERT(r.status == 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/trustDomain"), TD);
    CU_ASSERT(strstr(mgo_test_jstr(&r.json, "/trustBundleUri"),
                     "/.well-known/spiffe/bundle.json") != NULL);
    char want[128];
    body_etag(&r, want);
    CU_ASSERT_STRING_EQUAL(r.etag, want);
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s", r.etag);
    sb_done(&r);
    sb(NULL, "GET", "/.well-known/margo", NULL, inm, &r);
    CU_ASSERT(r.status == 304 && r.body.len == 0);
    sb_done(&r);

    sb(NULL, "GET", "/.well-known/spiffe/bundle.json", NULL, NULL, &r);
    CU_ASSERT(r.status == 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/keys/0/use"), "x509-svid");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/keys/0/kty"), "EC");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/keys/0/crv"), "P-256");
    /* x5c[0] is the trust anchor's DER */
    char der64[4096] = "";
    CU_ASSERT(mgo_test_sh_out(der64, sizeof der64, "openssl x509 -in %s -outform DER | base64 -w0",
                              ca) == 0);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/keys/0/x5c/0"), der64);
    body_etag(&r, want);
    CU_ASSERT_STRING_EQUAL(r.etag, want);
    snprintf(inm, sizeof inm, "If-None-Match: %s", r.etag);
    sb_done(&r);
    sb(NULL, "GET", "/.well-known/spiffe/bundle.json", NULL, inm, &r);
    CU_ASSERT(r.status == 304 && r.body.len == 0);
    sb_done(&r);
    sb(NULL, "POST", "/.well-known/margo", "{}", NULL, &r);
    CU_ASSERT(problem_is(&r, 405, NULL));
    sb_done(&r);
}

/* ---- identity ---------------------------------------------------------------------------- */

static void test_refused_certificates(void)
{
    struct sb_reply r;
    sb(NULL, "GET", "/api/v1/deployments", NULL, NULL, &r); /* no certificate */
    CU_ASSERT(problem_is(&r, 403, "not-authorized"));
    CU_ASSERT(strstr(mgo_test_jstr(&r.json, "/detail"), "no client certificate") != NULL);
    CU_ASSERT(r.json.kind == MGO_V_MAP && mgo_value_get(&r.json, "retryable")->kind == MGO_V_BOOL &&
              !mgo_value_get(&r.json, "retryable")->as.b);
    sb_done(&r);
    sbx(foreign, "dev-h1", false, "GET", "/api/v1/deployments", NULL, NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 403, "not-authorized")); /* a foreign CA */
    CU_ASSERT(strstr(mgo_test_jstr(&r.json, "/detail"), "does not verify") != NULL);
    sb_done(&r);
    sb("intruder", "GET", "/api/v1/deployments", NULL, NULL, &r); /* another WFM's client */
    CU_ASSERT(problem_is(&r, 403, "not-authorized"));
    CU_ASSERT(strstr(mgo_test_jstr(&r.json, "/detail"), "/margo/wfm/" WFM "/client/") != NULL);
    sb_done(&r);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, NULL, &r); /* valid, not on the list */
    CU_ASSERT(problem_is(&r, 403, "not-authorized"));
    CU_ASSERT(strstr(mgo_test_jstr(&r.json, "/detail"), "accepted-client list") != NULL);
    sb_done(&r);
    /* every endpoint refuses a client that is not on the list with 403 */
    static const char *const calls[][2] = {
        {"PUT", "/api/v1/capabilities/dev-h1"},
        {"DELETE", "/api/v1/capabilities/dev-h1"},
        {"GET", "/api/v1/deployments/00000000-0000-4000-8000-000000000000/sha256:00"},
        {"POST", "/api/v1/deployments/00000000-0000-4000-8000-000000000000/status"},
        {"GET", "/api/v1/bundles/sha256:00"},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        sb("dev-h1", calls[i][0], calls[i][1], strcmp(calls[i][0], "GET") ? "{}" : NULL, NULL, &r);
        CU_ASSERT(problem_is(&r, 403, "not-authorized"));
        sb_done(&r);
    }
    allow("margo-mon"); /* a role identity is never a device, even when allowed */
    sb("margo-mon", "GET", "/api/v1/deployments", NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 403, "not-authorized"));
    CU_ASSERT(strstr(mgo_test_jstr(&r.json, "/detail"), "role identity") != NULL);
    sb_done(&r);
    /* TLS 1.3 only: a TLS 1.2 client gets no HTTP exchange at all */
    sbx(pki, "dev-h1", true, "GET", "/.well-known/margo", NULL, NULL, NULL, &r);
    CU_ASSERT(r.status == 0);
    sb_done(&r);

    /* the list through the northbound API: allow, list, deny, allow again */
    struct mgo_test_reply a;
    api("PUT", "/api/v1/clients/dev-h1", NULL, &a);
    CU_ASSERT(a.status == 201);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&a.json, "/id"), "dev-h1");
    mgo_test_reply_cleanup(&a);
    api("PUT", "/api/v1/clients/dev-h1", NULL, &a);
    CU_ASSERT(a.status == 200);
    mgo_test_reply_cleanup(&a);
    api("PUT", "/api/v1/clients/bad%20id", NULL, &a);
    CU_ASSERT(a.status == 422 && mgr_test_has_error(&a, "id", "client id"));
    mgo_test_reply_cleanup(&a);
    api("GET", "/api/v1/clients/dev-h1", NULL, &a);
    CU_ASSERT(a.status == 200 && strcmp(mgo_test_jstr(&a.json, "/id"), "dev-h1") == 0 &&
              mgo_test_jstr(&a.json, "/added")[0] != '\0');
    mgo_test_reply_cleanup(&a);
    api("GET", "/api/v1/clients/dev-none", NULL, &a);
    CU_ASSERT(a.status == 404);
    mgo_test_reply_cleanup(&a);
    api("POST", "/api/v1/clients", NULL, &a);
    CU_ASSERT(a.status == 405);
    mgo_test_reply_cleanup(&a);
    api("GET", "/api/v1/clients", NULL, &a);
    CU_ASSERT(a.status == 200 && strcmp(mgo_test_jstr(&a.json, "/clients/0/id"), "dev-h1") == 0);
    mgo_test_reply_cleanup(&a);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, NULL, &r);
    CU_ASSERT(r.status == 200);
    sb_done(&r);
    api("DELETE", "/api/v1/clients/dev-h1", NULL, &a);
    CU_ASSERT(a.status == 204);
    mgo_test_reply_cleanup(&a);
    api("DELETE", "/api/v1/clients/dev-h1", NULL, &a);
    CU_ASSERT(a.status == 404);
    mgo_test_reply_cleanup(&a);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, NULL, &r); /* retired: 403 again */
    CU_ASSERT(problem_is(&r, 403, "not-authorized"));
    sb_done(&r);
    /* margoctl client allow | list */
    char out[2048] = "";
    CU_ASSERT(mgo_test_sh_out(out, sizeof out,
                              "%s/manager/margoctl client allow dev-h1 --url %s --token-file %s",
                              MGO_BINARY_DIR, mgr.api_base, token_path) == 0);
    CU_ASSERT(strstr(out, "client dev-h1 allowed") != NULL);
    CU_ASSERT(mgo_test_sh_out(out, sizeof out,
                              "%s/manager/margoctl client list --url %s --token-file %s "
                              "| grep dev-h1",
                              MGO_BINARY_DIR, mgr.api_base, token_path) == 0);
    CU_ASSERT(strncmp(out, "dev-h1 ", 7) == 0); /* a table row: CLIENT ADDED */
    allow("dev-h2");
    allow("dev-py");
}

/* ---- capabilities ------------------------------------------------------------------------ */

static void test_capabilities(void)
{
    char body[1024];
    struct sb_reply r;
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 400, "invalid-request")); /* no body */
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", "{not json", NULL, &r);
    CU_ASSERT(problem_is(&r, 400, "invalid-request"));
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1",
       "{\"properties\":{\"id\":\"dev-h1\",\"modelNumber\":\"m\",\"serialNumber\":\"s\"}}", NULL,
       &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "properties.vendor", ""));
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", caps_json("dev-zz", body, sizeof body), NULL,
       &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "properties.id", "deviceId of the path"));
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h2", caps_json("dev-h2", body, sizeof body), NULL,
       &r);
    CU_ASSERT(problem_is(&r, 403, "not-authorized")); /* another client's device */
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1/child",
       caps_json("dev-h1/child", body, sizeof body), NULL, &r);
    CU_ASSERT(problem_is(&r, 404, "gateway-not-found"));
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1/", caps_json("dev-h1", body, sizeof body),
       NULL, &r);
    CU_ASSERT(problem_is(&r, 400, "invalid-request")); /* not a DeviceId */
    sb_done(&r);

    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", caps_json("dev-h1", body, sizeof body), NULL,
       &r);
    CU_ASSERT(r.status == 201 && r.body.len == 0);
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", caps_json("dev-h1", body, sizeof body), NULL,
       &r);
    CU_ASSERT(r.status == 200);
    sb_done(&r);
    /* in the fleet like an MQTT device, with its binding */
    struct mgo_test_reply a;
    api("GET", "/api/v1/devices/dev-h1", NULL, &a);
    CU_ASSERT(a.status == 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&a.json, "/binding"), "http");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&a.json, "/vendor"), "acme");
    mgo_test_reply_cleanup(&a);
    api("GET", "/api/v1/devices?compatible=none-such", NULL, &a);
    mgo_test_reply_cleanup(&a);

    /* the event stream (web UI) hears of it, as of an MQTT device's report */
    char sse_log[320], sse_url[128];
    snprintf(sse_log, sizeof sse_log, "%s/events.txt", dir);
    snprintf(sse_url, sizeof sse_url, "%s/api/v1/events", mgr.api_base);
    const char *curl_argv[] = {"/usr/bin/curl", "-sN", "-H", "Authorization: Bearer " TOKEN,
                               sse_url,         NULL};
    pid_t sse = mgo_test_spawn(curl_argv, sse_log);
    CU_ASSERT_FATAL(sse > 0);
    CU_ASSERT(mgo_test_log_wait(sse_log, "event: hello", 0, WAIT_MS));
    sb("dev-h1", "DELETE", "/api/v1/capabilities/dev-h1", NULL, NULL, &r);
    CU_ASSERT(r.status == 204 && r.body.len == 0);
    sb_done(&r);
    CU_ASSERT(mgo_test_log_wait(sse_log, "event: capabilities", 0, WAIT_MS));
    CU_ASSERT(mgo_test_log_wait(sse_log, "\"deviceId\":\"dev-h1\"", 0, WAIT_MS));
    mgo_test_kill(sse, SIGTERM); /* and reaps it */
    sb("dev-h1", "DELETE", "/api/v1/capabilities/dev-h1", NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 404, "device-not-found"));
    sb_done(&r);
    sb("dev-h1", "DELETE", "/api/v1/capabilities/dev-h2", NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 403, "not-authorized"));
    sb_done(&r);
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", caps_json("dev-h1", body, sizeof body), NULL,
       &r);
    CU_ASSERT(r.status == 201); /* registered again */
    sb_done(&r);
    sb("dev-h1", "POST", "/api/v1/capabilities/dev-h1", "{}", NULL, &r);
    CU_ASSERT(problem_is(&r, 405, NULL));
    sb_done(&r);
    /* bounds: a body past 256 KiB */
    size_t big = 300u * 1024u;
    char *huge = malloc(big + 1);
    CU_ASSERT_FATAL(huge != NULL);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    sb("dev-h1", "PUT", "/api/v1/capabilities/dev-h1", huge, NULL, &r);
    CU_ASSERT(problem_is(&r, 413, NULL));
    sb_done(&r);
    free(huge);
}

/* ---- desired state ------------------------------------------------------------------------ */

static void test_manifest_empty(void)
{
    struct sb_reply r;
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, NULL, &r);
    CU_ASSERT(r.status == 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "application/vnd.margo.manifest.v1+json");
    CU_ASSERT_STRING_EQUAL(r.cache, "private");
    CU_ASSERT(mgo_test_ju64(&r.json, "/manifestVersion") == 1); /* the first manifest */
    const struct mgo_value *b = mgo_value_get(&r.json, "bundle");
    CU_ASSERT(b != NULL && b->kind == MGO_V_NULL); /* present, null: no deployments */
    const struct mgo_value *d = mgo_value_get(&r.json, "deployments");
    CU_ASSERT(d != NULL && d->kind == MGO_V_ARRAY && d->as.array.len == 0);
    char want[128];
    body_etag(&r, want);
    CU_ASSERT_STRING_EQUAL(r.etag, want); /* strong ETag: the digest of the exact body */
    snprintf(manifest_etag, sizeof manifest_etag, "%s", r.etag);
    sb_done(&r);
    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s", manifest_etag);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, inm, &r);
    CU_ASSERT(r.status == 304 && r.body.len == 0);
    CU_ASSERT_STRING_EQUAL(r.etag, manifest_etag);
    sb_done(&r);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL,
       "If-None-Match: \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"",
       &r);
    CU_ASSERT(r.status == 200 && r.body.len > 0);
    sb_done(&r);
    /* content negotiation */
    sb("dev-h1", "GET", "/api/v1/deployments", NULL,
       "Accept: application/vnd.margo.manifest.v1+json", &r);
    CU_ASSERT(r.status == 200);
    sb_done(&r);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, "Accept: text/html, */*;q=0.1", &r);
    CU_ASSERT(r.status == 200);
    sb_done(&r);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, "Accept: application/json", &r);
    CU_ASSERT(problem_is(&r, 406, "server-cannot-generate-response"));
    sb_done(&r);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL,
       "Accept: application/vnd.margo.manifest.v1+json;q=0", &r);
    CU_ASSERT(problem_is(&r, 406, "server-cannot-generate-response"));
    sb_done(&r);
    sb("dev-h1", "DELETE", "/api/v1/deployments", NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 405, NULL));
    sb_done(&r);
    sb("dev-h1", "GET", "/api/v1/nothing", NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 404, NULL));
    sb_done(&r);
}

/* Lists a tar.gz with libarchive: names joined by ',' into names, and the bytes of the first
 * entry into first. */
static int bundle_list(const struct mgo_buf *tgz, char *names, size_t size, struct mgo_buf *first)
{
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_memory(a, tgz->data, tgz->len) != ARCHIVE_OK) {
        archive_read_free(a);
        return -1;
    }
    names[0] = '\0';
    struct archive_entry *e;
    int n = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        size_t used = strlen(names);
        snprintf(names + used, size - used, "%s%s", n ? "," : "", archive_entry_pathname(e));
        char buf[8192];
        la_ssize_t got;
        while ((got = archive_read_data(a, buf, sizeof buf)) > 0) {
            if (n == 0)
                CU_ASSERT(mgo_buf_append(first, buf, (size_t)got) == MGO_OK);
        }
        n++;
    }
    archive_read_free(a);
    return n;
}

static void test_deploy_and_fetch(void)
{
    /* a deployment made through the northbound API, matched like any device */
    size_t len = 0;
    char *yaml = mgo_test_read_file(MGO_SOURCE_DIR "/examples/hello-compose/margo.yaml", &len);
    CU_ASSERT_FATAL(yaml != NULL);
    struct mgo_test_reply a;
    const char *hdr[3] = {"Authorization: Bearer " TOKEN, "Content-Type: application/yaml", NULL};
    mgo_test_request(mgr.api_base, "POST", "/api/v1/apps", hdr, yaml, 30000L, &a);
    CU_ASSERT(a.status == 201);
    mgo_test_reply_cleanup(&a);
    free(yaml);
    api("GET", "/api/v1/devices?compatible=hello-compose", NULL, &a);
    CU_ASSERT(strcmp(mgo_test_jstr(&a.json, "/devices/0/id"), "dev-h1") == 0 &&
              mgo_value_pointer(&a.json, "/devices/0/compatible")->as.b);
    mgo_test_reply_cleanup(&a);
    api("POST", "/api/v1/deployments", "{\"app\":\"hello-compose\",\"devices\":[\"dev-h1\"]}", &a);
    CU_ASSERT_FATAL(a.status == 201);
    snprintf(dep_id, sizeof dep_id, "%s", mgo_test_jstr(&a.json, "/deployments/0/id"));
    CU_ASSERT(mgo_test_ju64(&a.json, "/deployments/0/manifestVersion") == 2);
    mgo_test_reply_cleanup(&a);
    /* no MQTT desired state for an HTTP device */
    CU_ASSERT(mqtt_count("margo/v1/devices/dev-h1/desired", 500, NULL) == 0);

    char inm[200];
    snprintf(inm, sizeof inm, "If-None-Match: %s", manifest_etag);
    struct sb_reply r;
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, inm, &r);
    CU_ASSERT_FATAL(r.status == 200); /* changed: the old ETag no longer matches */
    CU_ASSERT(strcmp(r.etag, manifest_etag) != 0);
    CU_ASSERT(mgo_test_ju64(&r.json, "/manifestVersion") == 2); /* strictly increasing */
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/deployments/0/deploymentId"), dep_id);
    char ddigest[128], durl[512], bdigest[128], burl[512];
    snprintf(ddigest, sizeof ddigest, "%s", mgo_test_jstr(&r.json, "/deployments/0/digest"));
    snprintf(durl, sizeof durl, "%s", mgo_test_jstr(&r.json, "/deployments/0/url"));
    snprintf(bdigest, sizeof bdigest, "%s", mgo_test_jstr(&r.json, "/bundle/digest"));
    snprintf(burl, sizeof burl, "%s", mgo_test_jstr(&r.json, "/bundle/url"));
    uint64_t dsize = mgo_test_ju64(&r.json, "/deployments/0/sizeBytes");
    uint64_t bsize = mgo_test_ju64(&r.json, "/bundle/sizeBytes");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/bundle/mediaType"),
                           "application/vnd.margo.bundle.v1+tar+gzip");
    CU_ASSERT(mgo_digest_is_sha256(ddigest) && mgo_digest_is_sha256(bdigest));
    char want_url[512];
    snprintf(want_url, sizeof want_url, "/api/v1/deployments/%s/%s", dep_id, ddigest);
    CU_ASSERT_STRING_EQUAL(durl, want_url);
    snprintf(want_url, sizeof want_url, "/api/v1/bundles/%s", bdigest);
    CU_ASSERT_STRING_EQUAL(burl, want_url);
    sb_done(&r);

    /* the YAML: exactly the bytes of its digest, immutable */
    sb("dev-h1", "GET", durl, NULL, NULL, &r);
    CU_ASSERT_FATAL(r.status == 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "application/yaml");
    CU_ASSERT_STRING_EQUAL(r.cache, "private, max-age=31536000, immutable");
    CU_ASSERT_STRING_EQUAL(r.vary, "Accept-Encoding");
    char got[MGO_DIGEST_STR_SIZE], quoted[160];
    CU_ASSERT(mgo_digest_sha256(r.body.data, r.body.len, got) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(got, ddigest);
    CU_ASSERT(r.body.len == dsize);
    snprintf(quoted, sizeof quoted, "\"%s\"", ddigest);
    CU_ASSERT_STRING_EQUAL(r.etag, quoted);
    /* a YAML ApplicationDeployment of this deployment and device */
    struct mgo_arena ar;
    mgo_arena_init(&ar, 4u * 1024u * 1024u);
    struct mgo_value doc;
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT(mgo_value_from_yaml(r.body.data, r.body.len, &ar, &doc, &p) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&doc, "/kind"), "ApplicationDeployment");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&doc, "/metadata/annotations/id"), dep_id);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&doc, "/metadata/deviceId"), "dev-h1");
    CU_ASSERT(mgo_test_ju64(&doc, "/spec/parameters/webPort/value") == 8081);
    CU_ASSERT(mgo_value_get(&doc, "x-margo-mqtt-extensions") == NULL);
    mgo_arena_cleanup(&ar);
    struct mgo_buf yaml_bytes;
    mgo_buf_init(&yaml_bytes, r.body.len + 1);
    CU_ASSERT(mgo_buf_append(&yaml_bytes, r.body.data, r.body.len) == MGO_OK);
    sb_done(&r);
    char path[512];
    snprintf(path, sizeof path, "/api/v1/deployments/%s/sha256:%064d", dep_id, 0);
    sb("dev-h1", "GET", path, NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 404, "deployment-not-found")); /* another digest */
    sb_done(&r);
    snprintf(path, sizeof path, "/api/v1/deployments/%s/sha512:%s", dep_id, ddigest + 7);
    sb("dev-h1", "GET", path, NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 404, "deployment-not-found")); /* another algorithm */
    sb_done(&r);
    snprintf(path, sizeof path, "/api/v1/deployments/00000000-0000-4000-8000-000000000000/%s",
             ddigest);
    sb("dev-h1", "GET", path, NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 404, "deployment-not-found"));
    sb_done(&r);
    allow("dev-x");
    sb("dev-x", "GET", durl, NULL, NULL, &r); /* another client: not its deployment */
    CU_ASSERT(problem_is(&r, 404, "deployment-not-found"));
    sb_done(&r);

    /* the bundle: exactly the referenced YAMLs at the root */
    sb("dev-h1", "GET", burl, NULL, NULL, &r);
    CU_ASSERT_FATAL(r.status == 200);
    CU_ASSERT_STRING_EQUAL(r.ctype, "application/vnd.margo.bundle.v1+tar+gzip");
    CU_ASSERT_STRING_EQUAL(r.cache, "private, max-age=31536000, immutable");
    CU_ASSERT(mgo_digest_sha256(r.body.data, r.body.len, got) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(got, bdigest);
    CU_ASSERT(r.body.len == bsize);
    snprintf(quoted, sizeof quoted, "\"%s\"", bdigest);
    CU_ASSERT_STRING_EQUAL(r.etag, quoted);
    char names[1024], want_names[128];
    struct mgo_buf first;
    mgo_buf_init(&first, 4u * 1024u * 1024u);
    CU_ASSERT(bundle_list(&r.body, names, sizeof names, &first) == 1);
    snprintf(want_names, sizeof want_names, "%s.yaml", dep_id);
    CU_ASSERT_STRING_EQUAL(names, want_names);
    CU_ASSERT(first.len == yaml_bytes.len && memcmp(first.data, yaml_bytes.data, first.len) == 0);
    mgo_buf_cleanup(&first);
    mgo_buf_cleanup(&yaml_bytes);
    char inm2[200];
    snprintf(inm2, sizeof inm2, "If-None-Match: %s", r.etag);
    sb_done(&r);
    sb("dev-h1", "GET", burl, NULL, inm2, &r);
    CU_ASSERT(r.status == 304 && r.body.len == 0);
    sb_done(&r);
    snprintf(path, sizeof path, "/api/v1/bundles/sha256:%064d", 0);
    sb("dev-h1", "GET", path, NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 404, "invalid-bundle"));
    sb_done(&r);
    sb("dev-x", "GET", burl, NULL, NULL, &r); /* not in dev-x's manifest */
    CU_ASSERT(problem_is(&r, 404, "invalid-bundle"));
    sb_done(&r);
    sb("dev-h1", "DELETE", burl, NULL, NULL, &r);
    CU_ASSERT(problem_is(&r, 405, NULL));
    sb_done(&r);
}

/* ---- status ------------------------------------------------------------------------------ */

static void status_body(char *out, size_t size, const char *id, const char *state,
                        const char *extra)
{
    snprintf(out, size,
             "{\"deploymentId\":\"%s\",\"adoptedManifestVersion\":2,\"status\":{\"state\":"
             "\"%s\"},\"components\":[{\"name\":\"web\",\"state\":\"%s\"},{\"name\":\"worker\","
             "\"state\":\"%s\"}]%s}",
             id, state, state, state, extra ? extra : "");
}

static void test_status(void)
{
    char path[256], body[2048];
    snprintf(path, sizeof path, "/api/v1/deployments/%s/status", dep_id);
    struct sb_reply r;
    sb("dev-h1", "POST", path, "[1]", NULL, &r);
    CU_ASSERT(problem_is(&r, 400, "invalid-request"));
    sb_done(&r);
    status_body(body, sizeof body, dep_id, "running", NULL);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "status.state", "running"));
    sb_done(&r);
    snprintf(body, sizeof body,
             "{\"deploymentId\":\"%s\",\"adoptedManifestVersion\":2,\"status\":{\"state\":"
             "\"installing\"},\"components\":[{\"state\":\"installing\"}]}",
             dep_id);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "components[0].name", "required"));
    sb_done(&r);
    status_body(body, sizeof body, "00000000-0000-4000-8000-000000000000", "installing", NULL);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "deploymentId", "differs from the path"));
    sb_done(&r);
    snprintf(body, sizeof body,
             "{\"deploymentId\":\"%s\",\"status\":{\"state\":\"installing\"},\"components\":[]}",
             dep_id);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "adoptedManifestVersion", "required"));
    sb_done(&r);
    snprintf(body, sizeof body,
             "{\"deploymentId\":\"%s\",\"adoptedManifestVersion\":9,\"status\":{\"state\":"
             "\"installing\"},\"components\":[]}",
             dep_id);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "adoptedManifestVersion", "newer than"));
    sb_done(&r);
    status_body(body, sizeof body, dep_id, "installing", ",\"deviceId\":\"dev-h2\"");
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "deviceId", "this client's device"));
    sb_done(&r);
    status_body(body, sizeof body, dep_id, "installing", NULL);
    sb("dev-x", "POST", path, body, NULL, &r); /* not dev-x's deployment */
    CU_ASSERT(problem_is(&r, 422, "semantic-error"));
    CU_ASSERT(names_field(&r, "deploymentId", "not a deployment of device dev-x"));
    sb_done(&r);

    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(r.status == 201 && r.body.len == 0); /* the first status of this deployment */
    sb_done(&r);
    status_body(body, sizeof body, dep_id, "installed", NULL);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(r.status == 200);
    sb_done(&r);
    sb("dev-h1", "PUT", path, body, NULL, &r);
    CU_ASSERT(problem_is(&r, 405, NULL));
    sb_done(&r);

    /* the northbound API: the state, and a history of exactly the two reports (the MQTT
     * copies are not ingested a second time) */
    char npath[256];
    snprintf(npath, sizeof npath, "/api/v1/deployments/%s", dep_id);
    struct mgo_test_reply a;
    api("GET", npath, NULL, &a);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&a.json, "/state"), "installed");
    CU_ASSERT(mgo_test_ju64(&a.json, "/status/adoptedManifestVersion") == 2);
    mgo_test_reply_cleanup(&a);
    /* monitors see it on the MQTT status topic, retained */
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/dev-h1/status/%s", dep_id);
    CU_ASSERT(mqtt_count(topic, 1000, NULL) == 2);
    struct mgo_mqtt *late =
        mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "margo-late", 0, WAIT_MS);
    CU_ASSERT_FATAL(late != NULL);
    CU_ASSERT(mgo_mqtt_subscribe(late, topic, 1, NULL) == MGO_OK);
    int retained = 0;
    int64_t deadline = mgo_test_now_ms() + 3000;
    while (!retained && mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(late, 50, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.retained && ev.payload_len > 0) {
            struct mgo_arena ar;
            mgo_arena_init(&ar, 1024u * 1024u);
            struct mgo_deployment_status st;
            struct mgo_problems p;
            mgo_problems_init(&p);
            if (mgo_deployment_status_decode(ev.payload, ev.payload_len, &ar, &st, &p) == MGO_OK &&
                st.state == MGO_STATE_INSTALLED && st.adopted_manifest_version == 2)
                retained = 1;
            mgo_arena_cleanup(&ar);
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT(retained == 1);
    mgo_mqtt_free(late);
    snprintf(npath, sizeof npath, "/api/v1/deployments/%s", dep_id);
    api("GET", npath, NULL, &a);
    const struct mgo_value *h = mgo_value_get(&a.json, "history");
    CU_ASSERT(h != NULL && h->kind == MGO_V_ARRAY && h->as.array.len == 2);
    mgo_test_reply_cleanup(&a);
}

/* Removal through the northbound API: the manifest drops it (bundle null again), and the
 * device's "removed" completes it like an MQTT device's. */
static void test_remove(void)
{
    char npath[256];
    snprintf(npath, sizeof npath, "/api/v1/deployments/%s", dep_id);
    struct mgo_test_reply a;
    api("DELETE", npath, NULL, &a);
    CU_ASSERT(a.status == 202);
    mgo_test_reply_cleanup(&a);
    struct sb_reply r;
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, NULL, &r);
    CU_ASSERT(mgo_test_ju64(&r.json, "/manifestVersion") == 3);
    const struct mgo_value *b = mgo_value_get(&r.json, "bundle");
    CU_ASSERT(b != NULL && b->kind == MGO_V_NULL);
    sb_done(&r);
    char path[256], body[1024];
    snprintf(path, sizeof path, "/api/v1/deployments/%s/status", dep_id);
    snprintf(body, sizeof body,
             "{\"deploymentId\":\"%s\",\"adoptedManifestVersion\":3,\"status\":{\"state\":"
             "\"removed\"},\"components\":[{\"name\":\"web\",\"state\":\"removed\"},{\"name\":"
             "\"worker\",\"state\":\"removed\"}]}",
             dep_id);
    sb("dev-h1", "POST", path, body, NULL, &r);
    CU_ASSERT(r.status == 200);
    sb_done(&r);
    api("GET", npath, NULL, &a);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&a.json, "/desired"), "removed");
    mgo_test_reply_cleanup(&a);
}

static void test_rate(void)
{
    struct sb_reply r;
    int i = 0;
    long status = 0;
    for (; i <= RATE && status != 429; i++) {
        sb("dev-h2", "GET", "/api/v1/deployments", NULL, NULL, &r);
        status = r.status;
        if (status == 429) {
            CU_ASSERT(problem_is(&r, 429, NULL));
            CU_ASSERT(atoi(r.retry_after) >= 1 && atoi(r.retry_after) <= 60);
            CU_ASSERT(mgo_value_pointer(&r.json, "/retryable")->as.b);
            CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/backoffStrategy"), "exponential");
        }
        sb_done(&r);
    }
    CU_ASSERT(status == 429 && i == RATE + 1);
    sb("dev-h1", "GET", "/api/v1/deployments", NULL, NULL, &r); /* other clients unaffected */
    CU_ASSERT(r.status == 200);
    sb_done(&r);
}

/* A third-party client in another language: Python's standard library as a minimal Margo
 * device, while the deployment to it is made through the northbound API. */
static void test_python_device(void)
{
    char log[320], pcert[512], pkey[512], out[320];
    snprintf(log, sizeof log, "%s/py.log", dir);
    snprintf(out, sizeof out, "%s/py.out", dir);
    snprintf(pcert, sizeof pcert, "%s/clients/dev-py.crt", pki);
    snprintf(pkey, sizeof pkey, "%s/clients/dev-py.key", pki);
    const char *argv[] = {"/usr/bin/env",
                          "python3",
                          MGO_SOURCE_DIR "/tests/manager/margo_http_device.py",
                          sb_base,
                          ca,
                          pcert,
                          pkey,
                          "dev-py",
                          out,
                          NULL};
    pid_t pid = mgo_test_spawn(argv, log);
    CU_ASSERT_FATAL(pid > 0);
    /* the device enrolls; then a deployment to it is made */
    struct mgo_test_reply a;
    bool enrolled = false;
    for (int64_t end = mgo_test_now_ms() + WAIT_MS; !enrolled && mgo_test_now_ms() < end;) {
        api("GET", "/api/v1/devices/dev-py", NULL, &a);
        enrolled = a.status == 200 && strcmp(mgo_test_jstr(&a.json, "/binding"), "http") == 0 &&
                   mgo_test_jstr(&a.json, "/vendor")[0];
        mgo_test_reply_cleanup(&a);
        if (!enrolled)
            mgo_test_sleep_ms(100);
    }
    CU_ASSERT_FATAL(enrolled);
    /* it polls and revalidates its first manifest (304) before anything is deployed */
    CU_ASSERT_FATAL(mgo_test_log_wait(out, "not modified 304", 0, WAIT_MS));
    api("POST", "/api/v1/deployments", "{\"app\":\"hello-compose\",\"devices\":[\"dev-py\"]}", &a);
    CU_ASSERT_FATAL(a.status == 201);
    char id[64], npath[256];
    snprintf(id, sizeof id, "%s", mgo_test_jstr(&a.json, "/deployments/0/id"));
    mgo_test_reply_cleanup(&a);
    int rc = mgo_test_wait_exit(pid, 60000);
    if (rc != 0)
        mgo_test_sh("cat %s >&2", log);
    CU_ASSERT_FATAL(rc == 0);
    /* what it did, in its own words: enrolled, 304 before the deployment, digest verified */
    size_t len = 0;
    char *said = mgo_test_read_file(out, &len);
    CU_ASSERT_FATAL(said != NULL);
    CU_ASSERT(strstr(said, "enrolled 201") != NULL);
    CU_ASSERT(strstr(said, "not modified 304") != NULL);
    CU_ASSERT(strstr(said, "digest ok") != NULL);
    CU_ASSERT(strstr(said, id) != NULL);
    free(said);
    snprintf(npath, sizeof npath, "/api/v1/deployments/%s", id);
    api("GET", npath, NULL, &a);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&a.json, "/state"), "installed");
    CU_ASSERT(mgo_test_ju64(&a.json, "/status/adoptedManifestVersion") ==
              mgo_test_ju64(&a.json, "/manifestVersion"));
    mgo_test_reply_cleanup(&a);
}

void mgo_test_register(void)
{
    CU_pSuite s = CU_add_suite("southbound", suite_init, suite_clean);
    CU_add_test(s, "well_known", test_well_known);
    CU_add_test(s, "refused_certificates", test_refused_certificates);
    CU_add_test(s, "capabilities", test_capabilities);
    CU_add_test(s, "manifest_empty", test_manifest_empty);
    CU_add_test(s, "deploy_and_fetch", test_deploy_and_fetch);
    CU_add_test(s, "status", test_status);
    CU_add_test(s, "remove", test_remove);
    CU_add_test(s, "rate", test_rate);
    CU_add_test(s, "python_device", test_python_device);
}
