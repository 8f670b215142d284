/* test_sensitive_it.c - sensitive configuration parameters against a real manager and a
 * real Mosquitto (docs/security.md, "Sensitive parameters"): the setting of dbPassword, pin
 * and apiKey in tests/manager/data/secret-1.0.yaml carries
 * x-margo-mqtt-extensions: {sensitive: true}.
 *
 * Proves, each from what a user or a device observes:
 *   - every API reply (deploy, deployment list/show, the document inside, status, the SSE
 *     stream) shows "***" instead of the value, and non-sensitive values in clear;
 *   - the deployment document the device receives over MQTT holds the real value;
 *   - margoctl (table output and --json) never prints the value, its errors do not quote
 *     it, and its interactive question does not echo it and prints no default;
 *   - "***" sent back as an answer is refused (it would overwrite the secret);
 *   - no log line of the manager (debug level) contains a value;
 *   - a deployment whose app is no longer in the catalog shows every value masked.
 *
 * The cases share one broker and manager and run in order. Waits poll with a generous
 * deadline; nothing asserts on how long anything took. */
#include "mgo_test.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "mgo/log.h"
#include "mgo/manager.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "mgr_test_util.h"

#define WAIT_MS 15000
#define TOKEN "sens-token-0123456789abcdef"
#define SECRET1 "S3cret-Pa55-first"  /* dbPassword through the API */
#define SECRET2 "S3cret-Pa55-second" /* dbPassword after an update */
#define SECRET3 "Typed-S3cret-777"   /* dbPassword typed at margoctl's hidden prompt */
#define PIN1 "73915286"
#define BADPIN "zq9zq"                    /* a wrong (non-integer) answer to a sensitive question */
#define CATALOG_KEY "catalog-default-key" /* apiKey's default in margo.yaml */

static struct mgo_test_broker broker;
static char state_dir[256];
static char tmp_dir[256];
static char token_path[512];
static struct mgo_test_manager mgr;
static struct mgo_mqtt *device;
static char dep_a[64]; /* on devA, deployed through the API */
static char dep_b[64]; /* on devB, deployed by margoctl on a terminal */

/* ---- manager in a thread, HTTP ------------------------------------------------------- */

static bool start_manager(void)
{
    mgo_test_manager_init(&mgr, mgo_test_broker_url(&broker), state_dir, "manager-sens", token_path,
                          "debug");
    return mgo_test_manager_start(&mgr, true) == MGO_OK;
}

static void api(const char *method, const char *path, const char *body, struct mgo_test_reply *r)
{
    mgr_test_http(mgr.api_base, method, path, body, "Bearer " TOKEN, r);
}

static const char *body_text(const struct mgo_test_reply *r)
{
    return r->body.data ? (const char *)r->body.data : "";
}

/* No secret of this suite appears in text. */
static bool has_no_secret(const char *text)
{
    static const char *const secrets[] = {SECRET1, SECRET2, SECRET3, PIN1, BADPIN};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (strstr(text, secrets[i]) != NULL) {
            fprintf(stderr, "secret %s found in: %.2000s\n", secrets[i], text);
            return false;
        }
    }
    return true;
}

/* ---- MQTT ------------------------------------------------------------------------------ */

static struct mgo_mqtt *mqtt_connect(const char *client_id)
{
    return mgo_test_mqtt_connect(mgo_test_broker_url(&broker), client_id, 0, WAIT_MS);
}

static void pump(struct mgo_mqtt *m, int ms)
{
    int64_t deadline = mgo_test_now_ms() + ms;
    do {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 20, &ev) == MGO_OK)
            mgo_mqtt_event_cleanup(&ev);
    } while (mgo_test_now_ms() < deadline);
}

static void publish_doc(const char *topic, const char *fmt, ...) MGO_PRINTF(2, 3);
static void publish_doc(const char *topic, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    CU_ASSERT_EQUAL(mgo_test_publish_vyamlf(device, topic, true, 0, fmt, ap), MGO_OK);
    va_end(ap);
    pump(device, 0);
}

static void publish_caps(const char *id)
{
    char topic[128];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/capabilities", id);
    publish_doc(topic,
                "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
                " properties: {id: %s, vendor: Acme, modelNumber: X1, serialNumber: S-%s,"
                " cpus: [{cores: 4, architecture: amd64}], memory: 1Gi, storage: 10Gi,"
                " interfaces: [{type: ethernet}], otelCollector: true,"
                " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}",
                id, id);
}

static void publish_status(const char *dev, const char *dep, const char *state, uint64_t seq,
                           uint64_t adopted)
{
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/status/%s", dev, dep);
    publish_doc(topic,
                "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
                " deploymentId: %s, adoptedManifestVersion: %llu, status: {state: %s},"
                " components: [{name: secret-compose, state: %s}],"
                " x-margo-mqtt-extensions: {boot: 1, seq: %llu}}",
                dep, (unsigned long long)adopted, state, state, (unsigned long long)seq);
}

/* The retained deployment document of dep on dev, as the device receives it: the value of
 * parameter name copied into out ("" when absent). Returns false when nothing arrived. */
static bool device_param(const char *dev, const char *dep, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    struct mgo_mqtt *sub = mqtt_connect("sens-subscriber");
    if (sub == NULL)
        return false;
    char topic[256];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/deployments/%s", dev, dep);
    bool got = false;
    if (mgo_mqtt_subscribe(sub, topic, 1, NULL) == MGO_OK) {
        int64_t deadline = mgo_test_now_ms() + WAIT_MS;
        while (!got && mgo_test_now_ms() < deadline) {
            struct mgo_mqtt_event ev;
            if (mgo_mqtt_next(sub, 50, &ev) != MGO_OK)
                continue;
            if (ev.kind == MGO_MQTT_EV_MESSAGE && ev.payload_len > 0) {
                struct mgo_arena arena;
                mgo_arena_init(&arena, 8u << 20);
                struct mgo_problems p;
                mgo_problems_init(&p);
                struct mgo_value tree;
                struct mgo_app_deployment d;
                if (mgo_value_from_msgpack(ev.payload, ev.payload_len, &arena, &tree, &p) ==
                        MGO_OK &&
                    mgo_app_deployment_from_value(&tree, &arena, &d, &p) == MGO_OK) {
                    got = true;
                    for (size_t i = 0; i < d.parameters_len; i++) {
                        const struct mgo_value *v = &d.parameters[i].value;
                        if (strcmp(d.parameters[i].name, name) != 0)
                            continue;
                        if (v->kind == MGO_V_STR)
                            snprintf(out, size, "%s", v->as.str.ptr);
                        else if (v->kind == MGO_V_UINT)
                            snprintf(out, size, "%llu", (unsigned long long)v->as.u);
                        else if (v->kind == MGO_V_INT)
                            snprintf(out, size, "%lld", (long long)v->as.i);
                    }
                }
                mgo_arena_cleanup(&arena);
            }
            mgo_mqtt_event_cleanup(&ev);
        }
    }
    mgo_mqtt_free(sub);
    return got;
}

/* ---- margoctl ---------------------------------------------------------------------------- */

/* Runs margoctl with args (NULL-terminated) + --url/--token-file; stdout and stderr both
 * go to a malloc'd text in *out. Returns the exit code (-1 when it had to be killed). */
static int ctl_run(const char *const *args, char **out)
{
    char bin[512], file[512];
    snprintf(bin, sizeof bin, "%s/manager/margoctl", MGO_BINARY_DIR);
    snprintf(file, sizeof file, "%s/ctl.out", tmp_dir);
    char *argv[24];
    size_t n = 0;
    argv[n++] = bin;
    for (size_t i = 0; args[i] && n < 18; i++)
        argv[n++] = (char *)args[i];
    argv[n++] = (char *)"--url";
    argv[n++] = mgr.api_base;
    argv[n++] = (char *)"--token-file";
    argv[n++] = token_path;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0)
            _exit(126);
        dup2(null, STDIN_FILENO); /* not a terminal: no questions */
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(bin, argv);
        _exit(127);
    }
    int64_t deadline = mgo_test_now_ms() + 60000;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (mgo_test_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            break;
        }
        pump(device, 20);
    }
    *out = mgo_test_read_file(file, NULL);
    unlink(file);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void cleanup_at_exit(void)
{
    mgo_test_broker_cleanup(&broker);
}

static void test_start(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    atexit(cleanup_at_exit);
    mgo_test_log_capture_start(16u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_test_broker_start(&broker, NULL), 0);
    mgo_test_tmpdir("mgr", state_dir);
    mgo_test_tmpdir("mgr", tmp_dir);
    snprintf(token_path, sizeof token_path, "%s/token", tmp_dir);
    CU_ASSERT_TRUE_FATAL(mgo_test_write_file(token_path, TOKEN "\n"));
    CU_ASSERT_TRUE_FATAL(start_manager());
    device = mqtt_connect("sens-device");
    CU_ASSERT_PTR_NOT_NULL_FATAL(device);
    struct mgo_test_reply r;
    /* the application file as the body: the path form needs catalog-dir (docs/api.md) */
    char *body = mgo_test_read_file(mgo_test_path("tests/manager/data/secret-1.0.yaml"), NULL);
    api("POST", "/api/v1/apps", body, &r);
    free(body);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
    publish_caps("devA");
    publish_caps("devB");
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    size_t n = 0;
    while (n < 2 && mgo_test_now_ms() < deadline) {
        api("GET", "/api/v1/devices", NULL, &r);
        const struct mgo_value *d = mgo_value_get(&r.json, "devices");
        n = d && d->kind == MGO_V_ARRAY ? d->as.array.len : 0;
        mgo_test_reply_cleanup(&r);
        pump(device, 20);
    }
    CU_ASSERT_EQUAL_FATAL(n, 2);
}

/* The questions say which settings are sensitive (clients hide what is typed). */
static void test_questions_flag_sensitive(void)
{
    struct mgo_test_reply r;
    api("GET", "/api/v1/apps/secret-app", NULL, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 200);
    const struct mgo_value *qs = mgo_value_get(&r.json, "questions");
    CU_ASSERT_TRUE_FATAL(qs && qs->kind == MGO_V_ARRAY && qs->as.array.len == 4);
    for (size_t i = 0; i < qs->as.array.len; i++) {
        const struct mgo_value *q = &qs->as.array.items[i];
        const struct mgo_value *s = mgo_value_get(q, "sensitive");
        bool want = strcmp(mgo_test_jstr(q, "/parameter"), "dbUser") != 0;
        CU_ASSERT_TRUE(s && s->kind == MGO_V_BOOL && s->as.b == want);
    }
    mgo_test_reply_cleanup(&r);
}

static void assert_masked_deployment(const struct mgo_value *d, bool with_document)
{
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/parameters/dbPassword"), "***");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/parameters/pin"), "***");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/parameters/apiKey"), "***");
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/parameters/dbUser"), "reader"); /* not sensitive */
    if (with_document) {
        CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/document/spec/parameters/dbPassword/value"),
                               "***");
        CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/document/spec/parameters/pin/value"), "***");
        CU_ASSERT_STRING_EQUAL(mgo_test_jstr(d, "/document/spec/parameters/dbUser/value"),
                               "reader");
        /* the rest of the document is intact */
        CU_ASSERT_STRING_EQUAL(
            mgo_test_jstr(d, "/document/spec/parameters/dbPassword/targets/0/pointer"),
            "DB_PASSWORD");
    }
}

static void test_api_masks_every_reply(void)
{
    struct mgo_test_reply r;
    api("POST", "/api/v1/deployments",
        "{\"app\":\"secret-app\",\"devices\":[\"devA\"],\"parameters\":{\"dbUser\":\"reader\","
        "\"dbPassword\":\"" SECRET1 "\",\"pin\":" PIN1 "}}",
        &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 201);
    snprintf(dep_a, sizeof dep_a, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    assert_masked_deployment(mgo_value_pointer(&r.json, "/deployments/0"), false);
    mgo_test_reply_cleanup(&r);

    api("GET", "/api/v1/deployments", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    assert_masked_deployment(mgo_value_pointer(&r.json, "/deployments/0"), false);
    mgo_test_reply_cleanup(&r);

    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", dep_a);
    api("GET", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    assert_masked_deployment(&r.json, true);
    mgo_test_reply_cleanup(&r);

    /* the device gets the real values */
    char v[128];
    CU_ASSERT_TRUE(device_param("devA", dep_a, "dbPassword", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, SECRET1);
    CU_ASSERT_TRUE(device_param("devA", dep_a, "pin", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, PIN1);
    CU_ASSERT_TRUE(device_param("devA", dep_a, "apiKey", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, CATALOG_KEY);

    /* status list and the event stream (snapshot) */
    publish_status("devA", dep_a, "installed", 1, 1);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    bool seen = false;
    while (!seen && mgo_test_now_ms() < deadline) {
        api("GET", "/api/v1/status", NULL, &r);
        seen = strcmp(mgo_test_jstr(&r.json, "/status/0/state"), "installed") == 0;
        if (seen)
            CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
        mgo_test_reply_cleanup(&r);
        pump(device, 20);
    }
    CU_ASSERT_TRUE(seen);
}

/* SSE: reads the stream until the snapshot status event arrived (or a deadline). */
struct sse_read {
    struct mgo_buf text;
    bool done;
};

static size_t on_sse(char *d, size_t size, size_t n, void *ctx)
{
    struct sse_read *s = ctx;
    if (mgo_buf_append(&s->text, d, size * n) != MGO_OK)
        return 0;
    const char *ev = strstr((const char *)s->text.data, "event: status");
    if (ev != NULL && strstr(ev, "\n\n") != NULL)
        s->done = true;
    return s->done ? 0 : size * n; /* 0 ends the transfer */
}

static void test_event_stream_masked(void)
{
    struct sse_read s = {.done = false};
    mgo_buf_init(&s.text, 1u << 20);
    CURL *h = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s/api/v1/events?deployment=%s", mgr.api_base, dep_a);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Authorization: Bearer " TOKEN);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L); /* ends a stream that never sends */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sse);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLcode rc = curl_easy_perform(h);
    (void)rc; /* ended by on_sse (write error) */
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    CU_ASSERT_TRUE(s.done);
    const char *text = s.text.data ? (const char *)s.text.data : "";
    CU_ASSERT_PTR_NOT_NULL(strstr(text, dep_a));
    CU_ASSERT_TRUE(has_no_secret(text));
    mgo_buf_cleanup(&s.text);
}

static void test_margoctl_never_prints(void)
{
    char *out = NULL;
    const char *show[] = {"deployment", "show", dep_a, NULL};
    CU_ASSERT_EQUAL(ctl_run(show, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "PARAMETERS:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "***"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "reader"));
    CU_ASSERT_TRUE(has_no_secret(out));
    free(out);
    const char *show_json[] = {"deployment", "show", dep_a, "--json", NULL};
    CU_ASSERT_EQUAL(ctl_run(show_json, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"dbPassword\":\"***\""));
    CU_ASSERT_TRUE(has_no_secret(out));
    free(out);
    const char *list_json[] = {"deployment", "list", "--json", NULL};
    CU_ASSERT_EQUAL(ctl_run(list_json, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, dep_a));
    CU_ASSERT_TRUE(has_no_secret(out));
    free(out);
    const char *status_json[] = {"status", "--json", NULL};
    CU_ASSERT_EQUAL(ctl_run(status_json, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, dep_a));
    CU_ASSERT_TRUE(has_no_secret(out));
    free(out);
    /* a wrong answer to a sensitive question: the error does not quote it */
    const char *bad[] = {"deployment", "update", dep_a, "--set", "pin=" BADPIN, NULL};
    CU_ASSERT_NOT_EQUAL(ctl_run(bad, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "pin: the hidden value is not an integer"));
    CU_ASSERT_TRUE(has_no_secret(out));
    free(out);
    /* an update through margoctl prints the masked reply (table and --json) */
    const char *upd[] = {"deployment",          "update", dep_a, "--set",
                         "dbPassword=" SECRET2, "--json", NULL};
    CU_ASSERT_EQUAL(ctl_run(upd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"dbPassword\":\"***\""));
    CU_ASSERT_TRUE(has_no_secret(out));
    free(out);
    char v[128];
    CU_ASSERT_TRUE(device_param("devA", dep_a, "dbPassword", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, SECRET2);
}

/* "***" sent back (a client echoing a reply) would overwrite the secret: refused. */
static void test_mask_sent_back_refused(void)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", dep_a);
    struct mgo_test_reply r;
    api("PATCH", path, "{\"parameters\":{\"dbUser\":\"reader\",\"dbPassword\":\"***\"}}", &r);
    CU_ASSERT_EQUAL(r.status, 422);
    CU_ASSERT_TRUE(mgr_test_has_error(&r, "parameters.dbPassword", "masks"));
    mgo_test_reply_cleanup(&r);
    char v[128];
    CU_ASSERT_TRUE(device_param("devA", dep_a, "dbPassword", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, SECRET2); /* unchanged */
    /* for a parameter that is not sensitive "***" is an ordinary value */
    api("PATCH", path, "{\"parameters\":{\"dbUser\":\"***\"}}", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/parameters/dbUser"), "***");
    mgo_test_reply_cleanup(&r);
    CU_ASSERT_TRUE(device_param("devA", dep_a, "dbUser", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, "***");
    api("PATCH", path, "{\"parameters\":{\"dbUser\":\"reader\"}}", &r);
    CU_ASSERT_EQUAL(r.status, 200);
    mgo_test_reply_cleanup(&r);
}

/* margoctl deploy on a terminal: sensitive answers are not echoed, no default is shown. */
static void test_interactive_hidden(void)
{
    int master = -1;
    pid_t pid = mgr_test_ctl_deploy_pty("secret-app", "devB", mgr.api_base, token_path, &master);
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    /* prompts in order: dbUser (visible; "reader"), dbPassword (hidden), pin (hidden; first
     * a wrong answer, asked again), apiKey (hidden; Enter keeps the default). Each answer
     * is written only once its prompt is on screen, so none is typed while echo is on. */
    char out[16384];
    size_t used = 0;
    int answered = 0;
    const char *answers[] = {"reader\n", SECRET3 "\n", BADPIN "\n", PIN1 "\n", "\n"};
    const int n_answers = 5;
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    int status = 0;
    bool exited = false;
    out[0] = '\0';
    while (mgo_test_now_ms() < deadline && !exited) {
        mgr_test_pty_read(master, 50, out, sizeof out, &used);
        int prompts = 0;
        for (const char *q = out; (q = strstr(q, "value [")) != NULL; q++)
            prompts++;
        for (const char *q = out; (q = strstr(q, "value (hidden")) != NULL; q++)
            prompts++;
        while (answered < prompts && answered < n_answers) {
            ssize_t w = write(master, answers[answered], strlen(answers[answered]));
            (void)w;
            answered++;
        }
        pump(device, 0);
        exited = waitpid(pid, &status, WNOHANG) == pid;
    }
    /* drain what is left */
    while (mgr_test_pty_read(master, 50, out, sizeof out, &used))
        ;
    mgr_test_kill_unless_exited(pid, exited, &status);
    close(master);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(answered, n_answers);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "Password (dbPassword) [sensitive]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "value (hidden; Enter leaves it unset)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "value (hidden; Enter keeps the default)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "the hidden value is not an integer; try again"));
    /* the visible answer was echoed by the terminal (so the check below can fail) */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "reader"));
    CU_ASSERT_PTR_NULL(strstr(out, CATALOG_KEY)); /* no default printed */
    CU_ASSERT_TRUE(has_no_secret(out));           /* nothing typed was echoed, nor printed */
    struct mgo_test_reply r;
    api("GET", "/api/v1/deployments?device=devB", NULL, &r);
    snprintf(dep_b, sizeof dep_b, "%s", mgo_test_jstr(&r.json, "/deployments/0/id"));
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    mgo_test_reply_cleanup(&r);
    char v[128];
    CU_ASSERT_TRUE_FATAL(device_param("devB", dep_b, "dbPassword", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, SECRET3);
    CU_ASSERT_TRUE(device_param("devB", dep_b, "pin", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, PIN1);
    CU_ASSERT_TRUE(device_param("devB", dep_b, "apiKey", v, sizeof v));
    CU_ASSERT_STRING_EQUAL(v, CATALOG_KEY);
}

/* ThreadSanitizer defers a signal handler until the thread leaves its blocking call, and does
 * not do so for pselect's atomic mask switch: under TSan a Ctrl-C at the prompt is not seen
 * until more input arrives. That is TSan's signal model, not margoctl's (single-threaded)
 * behaviour, so the TSan build skips this one case; every other build runs it. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MGO_UNDER_TSAN 1
#endif
#endif

/* Ctrl-C at the hidden prompt: margoctl ends by SIGINT and the terminal echoes again. */
static void test_interrupt_restores_echo(void)
{
#ifdef MGO_UNDER_TSAN
    fprintf(stderr, "skipped under ThreadSanitizer (see the comment above)\n");
    return;
#endif
    int master = -1;
    pid_t pid = mgr_test_ctl_deploy_pty("secret-app", "devB", mgr.api_base, token_path, &master);
    CU_ASSERT_TRUE_FATAL(pid >= 0);
    char out[16384];
    size_t used = 0;
    out[0] = '\0';
    bool user_sent = false, intr_sent = false, echo_was_off = false, exited = false;
    int status = 0;
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_now_ms() < deadline && !exited) {
        mgr_test_pty_read(master, 50, out, sizeof out, &used);
        if (!user_sent && strstr(out, "value [")) {
            ssize_t w = write(master, "reader\n", 7);
            (void)w;
            user_sent = true;
        }
        if (!intr_sent && strstr(out, "value (hidden")) {
            struct termios t;
            echo_was_off = tcgetattr(master, &t) == 0 && !(t.c_lflag & ECHO);
            ssize_t w = write(master, "half-typed\003", 11); /* then Ctrl-C (VINTR) */
            (void)w;
            intr_sent = true;
        }
        exited = waitpid(pid, &status, WNOHANG) == pid;
    }
    mgr_test_kill_unless_exited(pid, exited, &status);
    struct termios after;
    CU_ASSERT_EQUAL(tcgetattr(master, &after), 0);
    close(master);
    CU_ASSERT_TRUE(intr_sent);
    CU_ASSERT_TRUE(echo_was_off);         /* the hidden prompt did turn echo off */
    CU_ASSERT_TRUE(after.c_lflag & ECHO); /* ... and Ctrl-C turned it back on */
    CU_ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
    CU_ASSERT_PTR_NULL(strstr(out, "half-typed"));
}

static bool wait_desired(const char *id, const char *want)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    int64_t deadline = mgo_test_now_ms() + WAIT_MS;
    while (mgo_test_now_ms() < deadline) {
        struct mgo_test_reply r;
        api("GET", path, NULL, &r);
        bool ok = strcmp(mgo_test_jstr(&r.json, "/desired"), want) == 0;
        mgo_test_reply_cleanup(&r);
        if (ok)
            return true;
        pump(device, 20);
    }
    return false;
}

static void remove_one(const char *dev, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", id);
    struct mgo_test_reply r;
    api("DELETE", path, NULL, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 202);
    const struct mgo_value *mv = mgo_value_get(&r.json, "manifestVersion");
    uint64_t version = mv && mv->kind == MGO_V_UINT ? mv->as.u : 0;
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    mgo_test_reply_cleanup(&r);
    publish_status(dev, id, "removed", 100, version);
    CU_ASSERT_TRUE(wait_desired(id, "removed"));
}

/* The app of a finished deployment was deleted from the catalog: nothing says which
 * parameters were sensitive any more, so every value is masked. */
static void test_unknown_app_masks_everything(void)
{
    remove_one("devA", dep_a);
    remove_one("devB", dep_b);
    struct mgo_test_reply r;
    api("DELETE", "/api/v1/apps/secret-app", NULL, &r);
    CU_ASSERT_EQUAL_FATAL(r.status, 204);
    mgo_test_reply_cleanup(&r);
    api("GET", "/api/v1/deployments?all=true", NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    const struct mgo_value *list = mgo_value_get(&r.json, "deployments");
    CU_ASSERT_TRUE_FATAL(list && list->kind == MGO_V_ARRAY && list->as.array.len == 2);
    for (size_t i = 0; i < list->as.array.len; i++) {
        CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&list->as.array.items[i], "/parameters/dbUser"),
                               "***");
        CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&list->as.array.items[i], "/parameters/dbPassword"),
                               "***");
    }
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    mgo_test_reply_cleanup(&r);
    char path[256];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", dep_a);
    api("GET", path, NULL, &r);
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_STRING_EQUAL(mgo_test_jstr(&r.json, "/document/spec/parameters/dbUser/value"), "***");
    CU_ASSERT_TRUE(has_no_secret(body_text(&r)));
    mgo_test_reply_cleanup(&r);
}

/* Runs after everything: the manager logged at debug level and no line holds a value. */
static void test_no_value_in_logs(void)
{
    mgo_test_manager_stop(&mgr);
    const char *log = mgo_test_log_capture_lock(NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "deployment")); /* the sink saw the manager work */
    CU_ASSERT_PTR_NOT_NULL(strstr(log, dep_a));
    CU_ASSERT_TRUE(has_no_secret(log));
    CU_ASSERT_PTR_NULL(strstr(log, CATALOG_KEY));
    mgo_test_log_capture_unlock();
}

static void test_stop(void)
{
    mgo_test_manager_stop(&mgr);
    mgo_test_log_capture_stop();
    mgo_log_set_level(MGO_LOG_WARN);
    mgo_mqtt_free(device);
    device = NULL;
    mgo_test_broker_cleanup(&broker);
    mgo_test_rm_rf(state_dir);
    mgo_test_rm_rf(tmp_dir);
    curl_global_cleanup();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"start broker, manager, devices, catalog", test_start},
        {"questions flag the sensitive settings", test_questions_flag_sensitive},
        {"API masks deploy, list, show, document; device gets the value",
         test_api_masks_every_reply},
        {"event stream holds no value", test_event_stream_masked},
        {"margoctl show/list/status/update (table and --json) never print a value",
         test_margoctl_never_prints},
        {"\"***\" sent back for a sensitive parameter is refused", test_mask_sent_back_refused},
        {"margoctl deploy on a terminal hides sensitive answers and defaults",
         test_interactive_hidden},
        {"Ctrl-C at a hidden prompt restores the terminal's echo", test_interrupt_restores_echo},
        {"app gone from the catalog: every value masked", test_unknown_app_masks_everything},
        {"no value in any log line (debug level)", test_no_value_in_logs},
        {"stop", test_stop},
        {NULL, NULL},
    };
    mgo_test_add_suite("sensitive parameters", cases);
}
