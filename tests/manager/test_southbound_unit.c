/* test_southbound_unit.c - the parts of the southbound Margo API that need no network
 * (docs/margo-http.md): the store's schema 7 (bindings, the accepted-client list, forgetting
 * capabilities, the migration from schema 5), client SPIFFE IDs, the deployment YAML (read
 * back to the same tree) and bundles (deterministic, exactly the given files). */
#include "mgo_test.h"
#include "pg.h"

#include <archive.h>
#include <archive_entry.h>
#include <string.h>

#include "../../manager/src/southbound_doc.h"
#include "../../manager/src/southbound_id.h"
#include "mgr_test_util.h"

static mgo_err count_clients(const char *id, int64_t added_ms, void *c)
{
    (void)id;
    CU_ASSERT(added_ms > 0);
    (*(int *)c)++;
    return MGO_OK;
}

static mgo_err binding_of(const struct mgo_mgr_device_row *row, void *c)
{
    snprintf(c, 8, "%s", row->binding);
    return MGO_OK;
}

static void test_store(void)
{
    char dir[256];
    mgo_test_tmpdir("sb-store", dir);
    /* a schema-5 store with an MQTT device migrates; the device stays mqtt */
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_FATAL(mgo_mgr_store_open_version(mgo_test_store(dir), 5, &s) == MGO_OK);
    CU_ASSERT(mgo_mgr_store_device_put_caps(s, "old-1", (const uint8_t *)"\x80", 1) == MGO_OK);
    char b[8] = "";
    CU_ASSERT(mgo_mgr_store_device_get(s, "old-1", binding_of, b) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(b, "mqtt");
    bool added = false, http = true;
    CU_ASSERT(mgo_mgr_store_client_allow(s, "c1", &added) == MGO_ERR_INVALID);
    mgo_mgr_store_close(s);
    CU_ASSERT_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s) == MGO_OK);
    CU_ASSERT(mgo_mgr_store_schema_version(s) == MGO_MGR_STORE_SCHEMA_VERSION);
    CU_ASSERT(mgo_mgr_store_device_get(s, "old-1", binding_of, b) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(b, "mqtt");
    CU_ASSERT(mgo_mgr_store_device_is_http(s, "old-1", &http) == MGO_OK && !http);

    /* bindings */
    CU_ASSERT(mgo_mgr_store_device_set_binding(s, "dev-h", MGO_MGR_BINDING_HTTP) == MGO_OK);
    CU_ASSERT(mgo_mgr_store_device_is_http(s, "dev-h", &http) == MGO_OK && http);
    CU_ASSERT(mgo_mgr_store_device_get(s, "dev-h", binding_of, b) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(b, "http");
    CU_ASSERT(mgo_mgr_store_device_is_http(s, "nobody", &http) == MGO_OK && !http);
    CU_ASSERT(mgo_mgr_store_device_set_binding(s, "dev-h", "coap") == MGO_ERR_INVALID);
    CU_ASSERT(mgo_mgr_store_device_set_binding(s, "margo-monitor", "http") == MGO_ERR_INVALID);

    /* forgetting capabilities */
    CU_ASSERT(mgo_mgr_store_device_forget_caps(s, "dev-h") == MGO_ERR_NOT_FOUND);
    CU_ASSERT(mgo_mgr_store_device_put_caps(s, "dev-h", (const uint8_t *)"\x80", 1) == MGO_OK);
    CU_ASSERT(mgo_mgr_store_device_forget_caps(s, "dev-h") == MGO_OK);
    CU_ASSERT(mgo_mgr_store_device_forget_caps(s, "dev-h") == MGO_ERR_NOT_FOUND);

    /* the accepted-client list */
    CU_ASSERT(mgo_mgr_store_client_allow(s, "c2", &added) == MGO_OK && added);
    CU_ASSERT(mgo_mgr_store_client_allow(s, "c1", &added) == MGO_OK && added);
    CU_ASSERT(mgo_mgr_store_client_allow(s, "c1", &added) == MGO_OK && !added);
    int n = 0;
    CU_ASSERT(mgo_mgr_store_client_list(s, NULL, count_clients, &n) == MGO_OK && n == 2);
    CU_ASSERT(mgo_mgr_store_client_list(s, "c1", NULL, NULL) == MGO_OK);
    CU_ASSERT(mgo_mgr_store_client_deny(s, "c1") == MGO_OK);
    CU_ASSERT(mgo_mgr_store_client_deny(s, "c1") == MGO_ERR_NOT_FOUND);
    CU_ASSERT(mgo_mgr_store_client_list(s, "c1", NULL, NULL) == MGO_ERR_NOT_FOUND);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_spiffe_ids(void)
{
    char id[MGO_SB_CLIENT_ID_SIZE], why[256];
    CU_ASSERT(mgo_sb_parse_client_uri("spiffe://td.org/margo/wfm/w1/client/dev-1", "td.org", "w1",
                                      id, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(id, "dev-1");
    static const char *const bad[] = {
        "https://td.org/margo/wfm/w1/client/dev-1",   /* not spiffe */
        "spiffe://td.org.evil/margo/wfm/w1/client/x", /* another trust domain */
        "spiffe://TD.org/margo/wfm/w1/client/x",      /* case-sensitive */
        "spiffe://td.org/margo/wfm/w10/client/x",     /* another WFM */
        "spiffe://td.org/margo/wfm/w1",               /* the WFM itself */
        "spiffe://td.org/margo/wfm/w1/client/",       /* empty client id */
        "spiffe://td.org/margo/wfm/w1/client/..",     /* dot segments */
        "spiffe://td.org/margo/wfm/w1/client/a/b",    /* two segments */
        "spiffe://td.org/margo/wfm/w1/client/a%20b",  /* not unreserved */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        CU_ASSERT(!mgo_sb_parse_client_uri(bad[i], "td.org", "w1", id, why, sizeof why));
        CU_ASSERT(why[0] != '\0');
    }
    CU_ASSERT(mgo_sb_segment_ok("example.org", 255));
    CU_ASSERT(!mgo_sb_segment_ok(".", 255));
    CU_ASSERT(!mgo_sb_segment_ok("a/b", 255));
    CU_ASSERT(!mgo_sb_segment_ok("abc", 2));
}

static const char DOC[] = "apiVersion: application.margo.org/v1alpha1\n"
                          "kind: ApplicationDeployment\n"
                          "metadata: {name: n1, namespace: margo, deviceId: d1,\n"
                          "  annotations: {id: 1ab0484d-6b5b-453b-966a-7d01c6ab28d4}}\n"
                          "spec:\n"
                          "  applicationId: app\n"
                          "  parameters:\n"
                          "    version: {value: '1.0', targets: []}\n"
                          "    flag: {value: 'yes', targets: []}\n"
                          "    nothing: {value: 'null', targets: []}\n"
                          "    ratio: {value: 24.0, targets: []}\n"
                          "    small: {value: 0.1, targets: []}\n"
                          "    neg: {value: -3, targets: []}\n"
                          "    on: {value: true, targets: []}\n"
                          "    text: {value: \"two\\nlines: and 'quotes' \\u00e9\", targets: []}\n"
                          "x-margo-mqtt-extensions: {signature: abc}\n";

static void test_yaml(void)
{
    struct mgo_buf mp, y1, y2;
    mgo_buf_init(&mp, 1u << 20);
    mgo_buf_init(&y1, 1u << 20);
    mgo_buf_init(&y2, 1u << 20);
    CU_ASSERT_FATAL(mgo_test_yaml_msgpack(DOC, &mp) == MGO_OK);
    CU_ASSERT_FATAL(mgo_sb_deployment_yaml(mp.data, mp.len, &y1) == MGO_OK);
    CU_ASSERT_FATAL(mgo_sb_deployment_yaml(mp.data, mp.len, &y2) == MGO_OK);
    CU_ASSERT(y1.len == y2.len && memcmp(y1.data, y2.data, y1.len) == 0); /* deterministic */
    /* read back: the same tree without the MQTT-only key */
    struct mgo_arena a;
    mgo_arena_init(&a, 1u << 22);
    struct mgo_value orig, back;
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_FATAL(mgo_test_yaml(DOC, &a, &orig) == MGO_OK);
    CU_ASSERT_FATAL(mgo_value_from_yaml(y1.data, y1.len, &a, &back, &p) == MGO_OK);
    CU_ASSERT(mgo_value_get(&back, "x-margo-mqtt-extensions") == NULL);
    CU_ASSERT(orig.kind == MGO_V_MAP && orig.as.map.len == back.as.map.len + 1);
    static const char *const keys[] = {"apiVersion", "kind", "metadata", "spec"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CU_ASSERT(mgo_value_equal(mgo_value_get(&orig, keys[i]), mgo_value_get(&back, keys[i])));
    const struct mgo_value *v = mgo_value_pointer(&back, "/spec/parameters/version/value");
    CU_ASSERT(v && v->kind == MGO_V_STR && strcmp(v->as.str.ptr, "1.0") == 0);
    v = mgo_value_pointer(&back, "/spec/parameters/flag/value");
    CU_ASSERT(v && v->kind == MGO_V_STR);
    v = mgo_value_pointer(&back, "/spec/parameters/ratio/value");
    CU_ASSERT(v && v->kind == MGO_V_FLOAT && v->as.f == 24.0);
    /* PyYAML (YAML 1.1) reads the same values, e.g. the key "on" stays a string */
    char path[256], out[256];
    mgo_test_tmpdir("sb-yaml", path);
    char file[300];
    snprintf(file, sizeof file, "%s/d.yaml", path);
    FILE *f = fopen(file, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT(fwrite(y1.data, 1, y1.len, f) == y1.len);
    fclose(f);
    CU_ASSERT(mgo_test_sh_out(out, sizeof out,
                              "python3 -c \"import yaml,sys;d=yaml.safe_load(open(sys.argv[1]));"
                              "p=d['spec']['parameters'];print(p['version']['value'],"
                              "p['flag']['value'],p['nothing']['value'],p['on']['value'],"
                              "p['ratio']['value'],p['neg']['value'])\" %s",
                              file) == 0);
    CU_ASSERT_STRING_EQUAL(out, "1.0 yes null True 24.0 -3");
    mgo_test_rm_rf(path);
    mgo_arena_cleanup(&a);
    mgo_buf_cleanup(&mp);
    mgo_buf_cleanup(&y1);
    mgo_buf_cleanup(&y2);
}

static void test_bundle(void)
{
    struct mgo_sb_file files[2] = {
        {"a.yaml", (const uint8_t *)"a: 1\n", 5},
        {"b.yaml", (const uint8_t *)"b: 2\n", 5},
    };
    struct mgo_buf t1, t2;
    mgo_buf_init(&t1, 1u << 20);
    mgo_buf_init(&t2, 1u << 20);
    CU_ASSERT_FATAL(mgo_sb_bundle(files, 2, &t1) == MGO_OK);
    CU_ASSERT_FATAL(mgo_sb_bundle(files, 2, &t2) == MGO_OK);
    CU_ASSERT(t1.len == t2.len && memcmp(t1.data, t2.data, t1.len) == 0);
    CU_ASSERT(t1.len > 2 && t1.data[0] == 0x1f && t1.data[1] == 0x8b); /* gzip */
    CU_ASSERT(t1.data[4] == 0 && t1.data[5] == 0 && t1.data[6] == 0 && t1.data[7] == 0);
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    CU_ASSERT_FATAL(archive_read_open_memory(a, t1.data, t1.len) == ARCHIVE_OK);
    struct archive_entry *e;
    size_t n = 0;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK && n < 3) {
        CU_ASSERT_STRING_EQUAL(archive_entry_pathname(e), files[n].name);
        CU_ASSERT(archive_entry_size(e) == 5 && archive_entry_mtime(e) == 0);
        char buf[16];
        CU_ASSERT(archive_read_data(a, buf, sizeof buf) == 5 && memcmp(buf, files[n].data, 5) == 0);
        n++;
    }
    CU_ASSERT(n == 2);
    archive_read_free(a);
    mgo_buf_cleanup(&t1);
    mgo_buf_cleanup(&t2);
}

/* margo-api-listen needs every other southbound option, valid; the start says which. */
static void test_config(void)
{
    char dir[256], pki[320], state[320], token[320];
    mgo_test_tmpdir("sb-config", dir);
    snprintf(pki, sizeof pki, "%s/pki", dir);
    snprintf(state, sizeof state, "%s/state", dir);
    snprintf(token, sizeof token, "%s/token", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(token, "sb-config-token-0123456789\n"));
    CU_ASSERT_FATAL(mgo_test_sh(MGO_SOURCE_DIR "/broker-config/svid.sh --trust-domain td.org "
                                               "--wfm-id w1 %s >/dev/null",
                                pki) == 0);
    char cert[400], key[400], ca[400], listen[64];
    snprintf(cert, sizeof cert, "%s/wfm.crt", pki);
    snprintf(key, sizeof key, "%s/wfm.key", pki);
    snprintf(ca, sizeof ca, "%s/svid-ca.crt", pki);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", mgo_test_free_port());
    struct {
        const char *cert, *key, *ca, *td, *wfm, *log;
    } cases[] = {
        {NULL, key, ca, "td.org", "w1", "margo-api-cert: required"},
        {cert, key, NULL, "td.org", "w1", "margo-api-client-ca: required"},
        {cert, key, ca, NULL, "w1", "trust-domain: required"},
        {cert, key, ca, "td.org", "..", "trust-domain and wfm-id"},
        {cert, key, token, "td.org", "w1", "margo-api-client-ca"}, /* no certificate in it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mgo_test_manager t;
        mgo_test_manager_init(&t, "tcp://127.0.0.1:1", state, "margo-manager-cfg", token, "warn");
        t.cfg.margo_api_listen = listen;
        t.cfg.margo_api_cert = (char *)cases[i].cert;
        t.cfg.margo_api_key = (char *)cases[i].key;
        t.cfg.margo_api_client_ca = (char *)cases[i].ca;
        t.cfg.trust_domain = (char *)cases[i].td;
        t.cfg.wfm_id = (char *)cases[i].wfm;
        mgo_test_log_capture_start(1u << 16);
        CU_ASSERT(mgo_test_manager_start(&t, false) != MGO_OK);
        size_t len = 0;
        const char *logged = mgo_test_log_capture_lock(&len);
        bool said = logged && strstr(logged, cases[i].log) != NULL;
        mgo_test_log_capture_unlock();
        mgo_test_log_capture_stop();
        CU_ASSERT(said);
        if (!said)
            fprintf(stderr, "case %zu: no \"%s\" in the log\n", i, cases[i].log);
        mgo_test_manager_stop(&t);
    }
    /* all of them: it starts, and its port is known */
    struct mgo_test_manager t;
    mgo_test_manager_init(&t, "tcp://127.0.0.1:1", state, "margo-manager-cfg", token, "warn");
    t.cfg.margo_api_listen = listen;
    t.cfg.margo_api_cert = cert;
    t.cfg.margo_api_key = key;
    t.cfg.margo_api_client_ca = ca;
    t.cfg.trust_domain = "td.org";
    t.cfg.wfm_id = "w1";
    CU_ASSERT_FATAL(mgo_test_manager_start(&t, false) == MGO_OK);
    CU_ASSERT(mgo_manager_margo_api_port(t.m) > 0);
    mgo_test_manager_stop(&t);
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"store", test_store},   {"spiffe_ids", test_spiffe_ids}, {"yaml", test_yaml},
        {"bundle", test_bundle}, {"config", test_config},         {NULL, NULL},
    };
    mgo_test_add_suite("southbound_unit", cases);
}
