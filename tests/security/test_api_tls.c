/* test_api_tls.c - the manager API over HTTPS (api-tls-cert / api-tls-key, libmicrohttpd with
 * GnuTLS) and secrets kept out of the logs:
 *   - HTTPS with the right CA and token works; without token 401; a client that does not trust
 *     the certificate, or speaks plain HTTP, gets no answer;
 *   - margoctl reaches it with MARGO_CA_FILE and fails without it;
 *   - only one of api-tls-cert / api-tls-key: the manager refuses to start;
 *   - neither the API token, the MQTT password, the signing key nor the TLS key appears in any
 *     log line of a start, a refused and an accepted request.
 * (401 and "no change" on plain HTTP: tests/manager/test_manager_it.c, test_auth_required.) */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mgo/buf.h"
#include "mgo/log.h"
#include "mgo/manager.h"
#include "manager_thread.h"
#include "mgo_test.h"
#include "sec_test_util.h"

#define TOKEN "api-tls-token-0123456789abcdef"
#define PASSWORD "mqtt-password-SECRET-42"

static char g_dir[256];
static char g_token[512], g_pw[512], g_ca[512], g_crt[512], g_key[512], g_skey[512];
static char g_state[512];

static int suite_init(void)
{
    sec_pki_make(g_dir, "");
    snprintf(g_token, sizeof g_token, "%s/api-token", g_dir);
    snprintf(g_pw, sizeof g_pw, "%s/mqtt-password", g_dir);
    snprintf(g_state, sizeof g_state, "%s/state", g_dir);
    sec_pki_path(g_dir, "ca.crt", g_ca);
    sec_pki_path(g_dir, "broker.crt", g_crt); /* SAN 127.0.0.1, serverAuth */
    sec_pki_path(g_dir, "broker.key", g_key);
    sec_pki_path(g_dir, "signing.key", g_skey);
    if (!mgo_test_write_file(g_token, TOKEN "\n") || !mgo_test_write_file(g_pw, PASSWORD "\n"))
        exit(2);
    mgo_log_set_level(MGO_LOG_DEBUG);
    mgo_test_log_capture_start(4u << 20);
    return 0;
}

static int suite_clean(void)
{
    mgo_test_log_capture_stop();
    mgo_log_set_level(MGO_LOG_WARN);
    mgo_test_rm_rf(g_dir);
    return 0;
}

static void config(struct mgo_manager_config *cfg, bool cert, bool key)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->state_dir = g_state;
    cfg->broker_url = (char *)"tcp://127.0.0.1:1"; /* nothing listens: the manager keeps retrying */
    cfg->client_id = (char *)"margo-manager";
    cfg->topic_prefix = (char *)"margo/v1";
    cfg->api_listen = (char *)"127.0.0.1:0";
    cfg->api_token_file = g_token;
    cfg->api_tls_cert = cert ? g_crt : NULL;
    cfg->api_tls_key = key ? g_key : NULL;
    cfg->username = (char *)"margo-manager";
    cfg->password_file = g_pw;
    cfg->signing_key_file = g_skey;
    cfg->log_level = (char *)"debug";
    cfg->session_expiry_s = 600;
    cfg->keepalive_s = 30;
}

struct reply {
    long status;
    CURLcode code;
};

static size_t discard(char *d, size_t size, size_t n, void *ctx)
{
    (void)d;
    (void)ctx;
    return size * n;
}

static struct reply get(const char *scheme, uint16_t port, const char *auth, bool trust)
{
    CURL *h = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "%s://127.0.0.1:%u/api/v1/apps", scheme, port);
    struct curl_slist *hdrs = auth ? curl_slist_append(NULL, auth) : NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    if (trust)
        curl_easy_setopt(h, CURLOPT_CAINFO, g_ca);
    struct reply r = {0};
    r.code = curl_easy_perform(h);
    if (r.code == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    return r;
}

/* margoctl app list against the HTTPS API; ca NULL = MARGO_CA_FILE unset. */
static int margoctl(uint16_t port, const char *ca)
{
    char bin[512], url[64];
    snprintf(bin, sizeof bin, "%s/manager/margoctl", MGO_BINARY_DIR);
    snprintf(url, sizeof url, "https://127.0.0.1:%u", port);
    pid_t pid = fork();
    if (pid == 0) {
        if (ca)
            setenv("MARGO_CA_FILE", ca, 1);
        else
            unsetenv("MARGO_CA_FILE");
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(126);
        execl(bin, "margoctl", "app", "list", "--url", url, "--token-file", g_token, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_https_api(void)
{
    struct mgo_test_manager t;
    memset(&t, 0, sizeof t);
    config(&t.cfg, true, true);
    CU_ASSERT_EQUAL_FATAL(mgo_test_manager_start(&t, true), MGO_OK);
    uint16_t port = mgo_manager_api_port(t.m);

    struct reply r = get("https", port, "Authorization: Bearer " TOKEN, true);
    CU_ASSERT_EQUAL(r.code, CURLE_OK);
    CU_ASSERT_EQUAL(r.status, 200);
    r = get("https", port, NULL, true);
    CU_ASSERT_EQUAL(r.status, 401);
    r = get("https", port, "Authorization: Bearer wrong-token-0123456789abcdef", true);
    CU_ASSERT_EQUAL(r.status, 401);
    /* a client that does not trust the fleet CA stops at the handshake */
    r = get("https", port, "Authorization: Bearer " TOKEN, false);
    CU_ASSERT_NOT_EQUAL(r.code, CURLE_OK);
    CU_ASSERT_EQUAL(r.status, 0);
    /* plain HTTP on the HTTPS port: no HTTP answer, the token was not accepted */
    r = get("http", port, "Authorization: Bearer " TOKEN, false);
    CU_ASSERT_NOT_EQUAL(r.status, 200);

    CU_ASSERT_EQUAL(margoctl(port, g_ca), 0);
    CU_ASSERT_NOT_EQUAL(margoctl(port, NULL), 0);

    /* TLS 1.3 only (docs/security.md §4): a client limited to TLS 1.2 gets no session, the
     * same client with TLS 1.3 does */
    static const char *const versions[] = {"-tls1_2", "-tls1_3"};
    for (size_t i = 0; i < 2; i++) {
        int found = mgo_test_sh("timeout 20 openssl s_client -connect 127.0.0.1:%u -CAfile '%s' "
                                "%s </dev/null 2>&1 | grep -q 'Cipher is TLS_'",
                                (unsigned)port, g_ca, versions[i]);
        /* 1.2: no session (grep finds no cipher); 1.3: a session */
        CU_ASSERT_EQUAL(found == 0, i == 1);
    }

    mgo_test_manager_stop(&t);
}

static void test_tls_needs_cert_and_key(void)
{
    struct mgo_manager_config cfg;
    struct mgo_manager *m = NULL;
    config(&cfg, true, false);
    CU_ASSERT_EQUAL(mgo_manager_new(&cfg, &m), MGO_ERR_INVALID);
    CU_ASSERT_PTR_NULL(m);
    config(&cfg, false, true);
    CU_ASSERT_EQUAL(mgo_manager_new(&cfg, &m), MGO_ERR_INVALID);
    CU_ASSERT_PTR_NULL(m);
    /* a key that is not the certificate's: refused at start, not at the first client */
    config(&cfg, true, true);
    cfg.api_tls_key = g_skey;
    CU_ASSERT_NOT_EQUAL(mgo_manager_new(&cfg, &m), MGO_OK);
    CU_ASSERT_PTR_NULL(m);
}

/* Runs last: everything the suite logged at debug level holds no secret. */
static void test_no_secret_in_logs(void)
{
    size_t log_len = 0;
    const char *log = mgo_test_log_capture_lock(&log_len);
    CU_ASSERT(log_len > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "API listening")); /* the sink did see the manager */
    CU_ASSERT_PTR_NULL(strstr(log, TOKEN));
    CU_ASSERT_PTR_NULL(strstr(log, "0123456789abcdef")); /* no part of a token either */
    CU_ASSERT_PTR_NULL(strstr(log, PASSWORD));
    CU_ASSERT_PTR_NULL(strstr(log, "PRIVATE KEY"));
    /* nor any line of the private keys' base64 */
    const char *keys[2] = {g_key, g_skey};
    for (int k = 0; k < 2; k++) {
        char *pem = mgo_test_read_file(keys[k], NULL);
        for (char *line = pem; line != NULL && *line != '\0';) {
            char *nl = strchr(line, '\n');
            if (nl != NULL)
                *nl = '\0';
            if (strncmp(line, "-----", 5) != 0 && strlen(line) >= 16)
                CU_ASSERT_PTR_NULL(strstr(log, line));
            line = nl != NULL ? nl + 1 : NULL;
        }
        free(pem);
    }
    mgo_test_log_capture_unlock();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"HTTPS API: token, trust, plain HTTP refused, margoctl", test_https_api},
        {"api-tls-cert and api-tls-key go together", test_tls_needs_cert_and_key},
        {"no secret in any log line", test_no_secret_in_logs},
        {NULL, NULL},
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CU_pSuite s = CU_add_suite("api-tls", suite_init, suite_clean);
    for (size_t i = 0; s != NULL && cases[i].name != NULL; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
}
