/* test_runtime.c - command execution, package extraction safety, parameter application for
 * both pointer styles, the Helm runtime against fake-helm (success, failure, timeout), and
 * the Compose runtime's command contract against a recording fake compose command. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec.h"
#include "fetch.h"
#include "mgo_test.h"
#include "runtime.h"
#include "state.h"

static char dir[256];

static void fresh(void)
{
    mgo_test_tmpdir("agent-rt", dir);
}

static void drop(void)
{
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

static int sh(const char *fmt, ...) MGO_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* ---- exec ----------------------------------------------------------------------- */

static void test_exec_exit_and_stderr(void)
{
    const char *argv[] = {"sh", "-c",
                          "echo out; echo line1 >&2; echo 'Error: it broke' >&2; exit 3", NULL};
    struct mgo_exec_result r;
    mgo_exec_result_init(&r);
    CU_ASSERT_FATAL(mgo_exec_run(argv, NULL, &r) == MGO_OK);
    CU_ASSERT(r.exited);
    CU_ASSERT_EQUAL(r.exit_code, 3);
    CU_ASSERT_STRING_EQUAL((char *)r.out.data, "out\n");
    char tail[64];
    mgo_exec_tail(&r, tail, sizeof tail);
    CU_ASSERT(strstr(tail, "Error: it broke") != NULL);
    mgo_exec_result_cleanup(&r);
}

static void test_exec_env_cwd_no_shell(void)
{
    fresh();
    /* arguments are never interpreted by a shell */
    const char *argv[] = {"sh",
                          "-c",
                          "printf '%s|%s|%s' \"$1\" \"$GREETING\" \"$(pwd)\"",
                          "x",
                          "$(touch /tmp/mgo-should-not-exist); a b",
                          NULL};
    const char *env[] = {"GREETING=hello world"};
    struct mgo_exec_opts o = {.cwd = dir, .env_add = env, .env_add_len = 1};
    struct mgo_exec_result r;
    mgo_exec_result_init(&r);
    CU_ASSERT_FATAL(mgo_exec_run(argv, &o, &r) == MGO_OK);
    char want[512];
    snprintf(want, sizeof want, "$(touch /tmp/mgo-should-not-exist); a b|hello world|%s", dir);
    CU_ASSERT_STRING_EQUAL((char *)r.out.data, want);
    CU_ASSERT(access("/tmp/mgo-should-not-exist", F_OK) != 0);
    mgo_exec_result_cleanup(&r);
    drop();
}

static void test_exec_timeout_and_missing(void)
{
    const char *argv[] = {"sh", "-c", "echo started >&2; sleep 30", NULL};
    struct mgo_exec_opts o = {.timeout_ms = 300};
    struct mgo_exec_result r;
    mgo_exec_result_init(&r);
    CU_ASSERT_FATAL(mgo_exec_run(argv, &o, &r) == MGO_OK);
    CU_ASSERT(r.timed_out);
    CU_ASSERT(!r.exited);
    mgo_exec_result_cleanup(&r);

    atomic_int cancel = 1;
    struct mgo_exec_opts oc = {.cancel = &cancel};
    mgo_exec_result_init(&r);
    CU_ASSERT_FATAL(mgo_exec_run(argv, &oc, &r) == MGO_OK);
    CU_ASSERT(r.cancelled);
    mgo_exec_result_cleanup(&r);

    const char *missing[] = {"mgo-no-such-command-here", NULL};
    mgo_exec_result_init(&r);
    CU_ASSERT(mgo_exec_run(missing, NULL, &r) == MGO_ERR_NOT_FOUND);
    CU_ASSERT(r.not_found);
    mgo_exec_result_cleanup(&r);
}

static void test_exec_output_bounded(void)
{
    const char *argv[] = {"sh", "-c",
                          "head -c 3000000 /dev/zero; head -c 100000 /dev/zero | tr '\\0' e >&2; "
                          "echo >&2; echo END >&2",
                          NULL};
    struct mgo_exec_result r;
    mgo_exec_result_init(&r);
    CU_ASSERT_FATAL(mgo_exec_run(argv, NULL, &r) == MGO_OK);
    CU_ASSERT(r.out_truncated);
    CU_ASSERT(r.out.len <= MGO_EXEC_MAX_STDOUT);
    CU_ASSERT(r.err.len <= 2u * MGO_EXEC_MAX_STDERR);
    char tail[32];
    mgo_exec_tail(&r, tail, sizeof tail);
    CU_ASSERT_STRING_EQUAL(tail, "END");
    mgo_exec_result_cleanup(&r);
}

/* ---- tar.gz safety ------------------------------------------------------------------ */

static mgo_err untar_file(const char *tgz, const char *dest, char *why)
{
    size_t len = 0;
    char *data = mgo_test_read_file(tgz, &len);
    mgo_err err = mgo_fetch_untar_gz(data, len, dest, why, 300);
    free(data);
    return err;
}

static void test_untar_safe_and_refusals(void)
{
    fresh();
    char why[300], p[1024], out[512];
    snprintf(out, sizeof out, "%s/out", dir);
    /* a normal package with a sub-folder */
    CU_ASSERT_FATAL(sh("cd %s && mkdir -p src/sub && echo 'services: {}' > src/compose.yaml && "
                       "echo x > src/sub/f && tar -C src -czf ok.tgz .",
                       dir) == 0);
    snprintf(p, sizeof p, "%s/ok.tgz", dir);
    CU_ASSERT_FATAL(mgo_agent__mkdir_p(out) == MGO_OK);
    CU_ASSERT(untar_file(p, out, why) == MGO_OK);
    snprintf(p, sizeof p, "%s/out/compose.yaml", dir);
    CU_ASSERT(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/out/sub/f", dir);
    CU_ASSERT(access(p, F_OK) == 0);

    /* a symlink entry */
    CU_ASSERT_FATAL(sh("cd %s && mkdir -p ln && ln -sf /etc/passwd ln/compose.yaml && "
                       "tar -C ln -czf link.tgz .",
                       dir) == 0);
    snprintf(p, sizeof p, "%s/link.tgz", dir);
    CU_ASSERT(untar_file(p, out, why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "refused") != NULL);

    /* '..' and absolute names (GNU tar keeps them with -P) */
    CU_ASSERT_FATAL(sh("cd %s && mkdir -p dd/a && echo x > dd/evil && "
                       "tar -C dd/a -czPf dots.tgz ../evil",
                       dir) == 0);
    snprintf(p, sizeof p, "%s/dots.tgz", dir);
    CU_ASSERT(untar_file(p, out, why) == MGO_ERR_INVALID);
    snprintf(p, sizeof p, "%s/evil", out);
    CU_ASSERT(access(p, F_OK) != 0);
    CU_ASSERT_FATAL(sh("cd %s && tar -czPf abs.tgz %s/dd/evil", dir, dir) == 0);
    snprintf(p, sizeof p, "%s/abs.tgz", dir);
    CU_ASSERT(untar_file(p, out, why) == MGO_ERR_INVALID);

    /* not gzip at all / truncated gzip */
    CU_ASSERT(mgo_fetch_untar_gz("\x1f\x8bxxxx", 6, out, why, sizeof why) == MGO_ERR_PARSE);
    drop();
}

/* ---- parameters ------------------------------------------------------------------- */

static const char *comps_web[] = {"web"};
static const char *comps_db[] = {"db"};

static void test_parameter_pointer_styles(void)
{
    struct mgo_parameter params[3];
    struct mgo_target t0 = {"ENV.GREETING", comps_web, 1};
    struct mgo_target t1 = {"PORT", comps_web, 1};
    struct mgo_target t2 = {"SECRET", comps_db, 1};
    memset(params, 0, sizeof params);
    params[0] = (struct mgo_parameter){"greeting", true, mgo_value_str("hi, there"), &t0, 1};
    params[1] = (struct mgo_parameter){"port", true, mgo_value_uint(8080), &t1, 1};
    params[2] = (struct mgo_parameter){"secret", true, mgo_value_bool(true), &t2, 1};
    struct mgo_app_deployment dep;
    memset(&dep, 0, sizeof dep);
    dep.parameters = params;
    dep.parameters_len = 3;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 65536);
    const char *vals[8];
    size_t n = 0;
    char why[300];
    CU_ASSERT_FATAL(
        mgo_rt_component_values(&dep, "web", true, &arena, vals, 8, &n, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(vals[0], "GREETING=hi, there");
    CU_ASSERT_STRING_EQUAL(vals[1], "PORT=8080");
    CU_ASSERT_FATAL(
        mgo_rt_component_values(&dep, "db", true, &arena, vals, 8, &n, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(n, 1);
    CU_ASSERT_STRING_EQUAL(vals[0], "SECRET=true");
    /* an env name that is not one is refused with the field named */
    struct mgo_target bad = {"NOT-AN-ENV", comps_web, 1};
    params[1].targets = &bad;
    CU_ASSERT(mgo_rt_component_values(&dep, "web", true, &arena, vals, 8, &n, why, sizeof why) ==
              MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "parameters.port.targets[0].pointer") != NULL);
    /* but it is a fine helm values path */
    CU_ASSERT(mgo_rt_component_values(&dep, "web", false, &arena, vals, 8, &n, why, sizeof why) ==
              MGO_OK);
    /* limit: at most max values */
    params[1].targets = &t1;
    CU_ASSERT(mgo_rt_component_values(&dep, "web", true, &arena, vals, 1, &n, why, sizeof why) ==
              MGO_ERR_LIMIT);
    mgo_arena_cleanup(&arena);
}

/* ---- helm against fake-helm ---------------------------------------------------------- */

static struct mgo_component helm_comps[2];
static struct mgo_app_deployment helm_dep;
static struct mgo_parameter helm_params[2];
static struct mgo_target helm_t[2];
static const char *helm_c0[] = {"redis"};

static void setup_helm_dep(void)
{
    memset(helm_comps, 0, sizeof helm_comps);
    memset(&helm_dep, 0, sizeof helm_dep);
    helm_comps[0] = (struct mgo_component){.name = "redis",
                                           .repository = "oci://registry.example/charts/redis",
                                           .revision = "1.2.3",
                                           .wait = true,
                                           .timeout = "2m30s",
                                           .timeout_s = 150};
    helm_comps[1] = (struct mgo_component){
        .name = "web", .repository = "oci://r.example/web", .revision = "0.1.0", .wait = false};
    helm_t[0] = (struct mgo_target){"auth.password", helm_c0, 1};
    helm_t[1] = (struct mgo_target){"replicas", helm_c0, 1};
    helm_params[0] = (struct mgo_parameter){"pw", true, mgo_value_str("a,b\\c"), &helm_t[0], 1};
    helm_params[1] = (struct mgo_parameter){"replicas", true, mgo_value_uint(2), &helm_t[1], 1};
    helm_dep.id = "3f1c2b6e-0000-4000-8000-000000000001";
    helm_dep.name = "my-app";
    helm_dep.namespace_ = "edge";
    helm_dep.profile.type = MGO_PROFILE_HELM;
    helm_dep.profile.components = helm_comps;
    helm_dep.profile.components_len = 2;
    helm_dep.parameters = helm_params;
    helm_dep.parameters_len = 2;
}

static size_t progress_calls;
static void count_progress(void *ctx, const struct mgo_rt_result *r, size_t n)
{
    (void)ctx;
    (void)r;
    (void)n;
    progress_calls++;
}

static char *read_log(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/helm.log", dir);
    return mgo_test_read_file(p, NULL);
}

static void helm_env(const char *mode)
{
    mgo_test_fake_helm_env(dir, mode, NULL, NULL);
}

static void test_helm_success_argv(void)
{
    fresh();
    helm_env("success");
    setup_helm_dep();
    struct mgo_rt_settings s = {.helm_command = MGO_FAKE_HELM};
    struct mgo_rt_result res[2];
    progress_calls = 0;
    CU_ASSERT_FATAL(mgo_rt_apply(&s, &helm_dep, res, count_progress, NULL) == MGO_OK);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_INSTALLED);
    CU_ASSERT_EQUAL(res[1].state, MGO_STATE_INSTALLED);
    CU_ASSERT(progress_calls >= 2);
    char *log = read_log();
    /* exact recorded contract, arguments separated by 0x1f */
    const char *want0 = "upgrade\x1f--install\x1fredis\x1foci://registry.example/charts/redis\x1f"
                        "--version\x1f"
                        "1.2.3\x1f--namespace\x1f"
                        "edge\x1f--create-namespace\x1f"
                        "--set-string\x1f"
                        "auth.password=a\\,b\\\\c\x1f--set\x1freplicas=2\x1f"
                        "--wait\x1f--timeout\x1f"
                        "2m30s\x1f\n";
    const char *want1 = "upgrade\x1f--install\x1fweb\x1foci://r.example/web\x1f--version\x1f"
                        "0.1.0\x1f--namespace\x1f"
                        "edge\x1f--create-namespace\x1f--timeout\x1f"
                        "10m0s\x1f\n";
    CU_ASSERT_EQUAL(strncmp(log, want0, strlen(want0)), 0);
    CU_ASSERT(strstr(log, want1) != NULL);
    free(log);

    bool healthy = false;
    CU_ASSERT(mgo_rt_probe(&s, &helm_dep, res, &healthy) == MGO_OK);
    CU_ASSERT(healthy);

    CU_ASSERT_FATAL(mgo_rt_remove(&s, &helm_dep, res, NULL, NULL) == MGO_OK);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_REMOVED);
    log = read_log();
    /* removal in reverse order */
    const char *u1 = strstr(log, "uninstall\x1fweb\x1f--namespace\x1f"
                                 "edge\x1f--timeout");
    const char *u0 = strstr(log, "uninstall\x1fredis\x1f--namespace\x1f"
                                 "edge\x1f--wait\x1f--timeout\x1f"
                                 "2m30s");
    CU_ASSERT(u1 != NULL && u0 != NULL && u1 < u0);
    free(log);
    /* gone: the probe sees it */
    CU_ASSERT(mgo_rt_probe(&s, &helm_dep, res, &healthy) == MGO_OK);
    CU_ASSERT(!healthy);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_FAILED);
    drop();
}

static void test_helm_failure_reports_stderr(void)
{
    fresh();
    helm_env("success");
    setenv("FAKE_HELM_MODE_UPGRADE", "failure", 1);
    setup_helm_dep();
    struct mgo_rt_settings s = {.helm_command = MGO_FAKE_HELM};
    struct mgo_rt_result res[2];
    CU_ASSERT(mgo_rt_apply(&s, &helm_dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_FAILED);
    CU_ASSERT(res[0].has_error);
    CU_ASSERT_STRING_EQUAL(res[0].error.code, "RUNTIME_FAILED");
    CU_ASSERT(strstr(res[0].error.message, "exited with code 1") != NULL);
    CU_ASSERT_STRING_EQUAL(res[0].error.source, "redis");
    CU_ASSERT(strstr(res[0].error.message, "INSTALLATION FAILED") != NULL);
    /* the next component was not attempted */
    CU_ASSERT_EQUAL(res[1].state, MGO_STATE_PENDING);
    char *log = read_log();
    CU_ASSERT(strstr(log, "\x1fweb\x1f") == NULL);
    free(log);
    drop();
}

static void test_helm_timeout(void)
{
    fresh();
    helm_env("timeout");
    setenv("FAKE_HELM_SLEEP", "1", 1);
    setup_helm_dep();
    struct mgo_rt_settings s = {.helm_command = MGO_FAKE_HELM};
    struct mgo_rt_result res[2];
    /* helm reports its own --wait deadline */
    CU_ASSERT(mgo_rt_apply(&s, &helm_dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
    CU_ASSERT_STRING_EQUAL(res[0].error.code, "TIMEOUT");
    CU_ASSERT(strstr(res[0].error.message, "deadline") != NULL);
    /* a helm that hangs past the component timeout is stopped by the agent */
    setenv("FAKE_HELM_SLEEP", "60", 1);
    helm_comps[0].timeout_s = 1;
    struct mgo_rt_settings s2 = {.helm_command = MGO_FAKE_HELM};
    CU_ASSERT(mgo_rt_apply(&s2, &helm_dep, res, NULL, NULL) == MGO_ERR_TIMEOUT ||
              res[0].state == MGO_STATE_FAILED);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_FAILED);
    unsetenv("FAKE_HELM_SLEEP");
    drop();
}

static void test_helm_missing_cli(void)
{
    setup_helm_dep();
    struct mgo_rt_settings s = {.helm_command = "mgo-no-helm-here"};
    struct mgo_rt_result res[2];
    CU_ASSERT(!mgo_rt_available(&s, MGO_PROFILE_HELM));
    CU_ASSERT(mgo_rt_apply(&s, &helm_dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
    CU_ASSERT_STRING_EQUAL(res[0].error.code, "RUNTIME_NOT_FOUND");
    struct mgo_rt_settings ok = {.helm_command = MGO_FAKE_HELM};
    CU_ASSERT(mgo_rt_available(&ok, MGO_PROFILE_HELM));
}

/* ---- compose against a recording fake compose command --------------------------------- */

static void test_compose_contract(void)
{
    fresh();
    char p[1024], fake[512], pkg[512], url[600];
    /* fake compose: records argv, cwd and GREETING; fake container cmd: lists one running */
    snprintf(fake, sizeof fake, "%s/fake-compose", dir);
    FILE *f = fopen(fake, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f,
            "#!/bin/sh\necho \"$* | $(pwd) | GREETING=${GREETING-unset} | "
            "OTEL=$HTTP_OTEL_EXPORTER_OTLP_ENDPOINT\" >> %s/compose.log\n"
            "[ \"$FAKE_COMPOSE_FAIL\" = 1 ] && { echo 'Error: image pull failed: manifest unknown' "
            ">&2; exit 125; }\nexit 0\n",
            dir);
    fclose(f);
    snprintf(p, sizeof p, "%s/fake-podman", dir);
    f = fopen(p, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "#!/bin/sh\necho \"$*\" >> %s/podman.log\necho 'margo-x_web_1 running'\n", dir);
    fclose(f);
    CU_ASSERT_FATAL(sh("chmod +x %s/fake-compose %s/fake-podman", dir, dir) == 0);
    snprintf(pkg, sizeof pkg, "%s/app.yaml", dir);
    f = fopen(pkg, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("services:\n  web:\n    image: busybox\n", f);
    fclose(f);
    snprintf(url, sizeof url, "file://%s", pkg);

    char work[512];
    snprintf(work, sizeof work, "%s/work", dir);
    char podman[512];
    snprintf(podman, sizeof podman, "%s/fake-podman", dir);
    struct mgo_rt_settings s = {.work_dir = work,
                                .compose_command = fake,
                                .container_command = podman,
                                .otel_http_endpoint = "http://127.0.0.1:4318"};
    struct mgo_component comp = {.name = "web", .package_location = url, .wait = true};
    struct mgo_target t = {"GREETING", comps_web, 1};
    struct mgo_parameter par = {"greeting", true, mgo_value_str("hello"), &t, 1};
    struct mgo_app_deployment dep;
    memset(&dep, 0, sizeof dep);
    dep.id = "ABC-123";
    dep.name = "x";
    dep.profile.type = MGO_PROFILE_COMPOSE;
    dep.profile.components = &comp;
    dep.profile.components_len = 1;
    dep.parameters = &par;
    dep.parameters_len = 1;
    struct mgo_rt_result res[1];
    CU_ASSERT_FATAL(mgo_rt_apply(&s, &dep, res, NULL, NULL) == MGO_OK);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_INSTALLED);
    snprintf(p, sizeof p, "%s/compose.log", dir);
    char *log = mgo_test_read_file(p, NULL);
    char want[4096];
    snprintf(want, sizeof want,
             "-p margo-abc-123 -f %s/margo-abc-123/web/pkg/compose.yaml -f "
             "%s/margo-abc-123/web/margo-otel.yaml up -d | %s/margo-abc-123/web/pkg | "
             "GREETING=unset | OTEL=http://127.0.0.1:4318\n",
             work, work, work);
    CU_ASSERT_STRING_EQUAL(log, want);
    free(log);
    /* the parameter is in the project's .env (read for ${X} interpolation), mode 0600 */
    snprintf(p, sizeof p, "%s/margo-abc-123/web/pkg/.env", work);
    log = mgo_test_read_file(p, NULL);
    CU_ASSERT(log != NULL && strstr(log, "\nGREETING='hello'\n") != NULL);
    free(log);
    struct stat sb;
    CU_ASSERT(stat(p, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    snprintf(p, sizeof p, "%s/margo-abc-123/web/margo-otel.yaml", work);
    log = mgo_test_read_file(p, NULL);
    CU_ASSERT(strstr(log, "\"web\":\n    environment:\n      HTTP_OTEL_EXPORTER_OTLP_ENDPOINT: "
                          "\"http://127.0.0.1:4318\"") != NULL);
    free(log);

    /* failure: exit code and stderr tail become the component error */
    setenv("FAKE_COMPOSE_FAIL", "1", 1);
    CU_ASSERT(mgo_rt_apply(&s, &dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_FAILED);
    CU_ASSERT_STRING_EQUAL(res[0].error.code, "RUNTIME_FAILED");
    CU_ASSERT(strstr(res[0].error.message, "exited with code 125") != NULL);
    CU_ASSERT(strstr(res[0].error.message, "image pull failed") != NULL);
    unsetenv("FAKE_COMPOSE_FAIL");

    /* a package that cannot be fetched */
    comp.package_location = "file:///nonexistent/compose.yaml";
    CU_ASSERT(mgo_rt_apply(&s, &dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
    CU_ASSERT_STRING_EQUAL(res[0].error.code, "FETCH_FAILED");
    comp.package_location = url;

    bool healthy = false;
    CU_ASSERT(mgo_rt_probe(&s, &dep, res, &healthy) == MGO_OK);
    CU_ASSERT(healthy);
    CU_ASSERT_FATAL(mgo_rt_remove(&s, &dep, res, NULL, NULL) == MGO_OK);
    CU_ASSERT_EQUAL(res[0].state, MGO_STATE_REMOVED);
    snprintf(p, sizeof p, "%s/compose.log", dir);
    log = mgo_test_read_file(p, NULL);
    CU_ASSERT(strstr(log, "-p margo-abc-123 -f ") != NULL && strstr(log, " down |") != NULL);
    free(log);
    snprintf(p, sizeof p, "%s/margo-abc-123", work);
    CU_ASSERT(access(p, F_OK) != 0);
    drop();
}

/* ---- parameters never set the runtime's own environment (issue 19 item 4) ------------- */

static void test_env_names_refused(void)
{
    const char *refused[] = {"PATH",
                             "path",
                             "LD_PRELOAD",
                             "LD_LIBRARY_PATH",
                             "ld_audit",
                             "HOME",
                             "IFS",
                             "ENV",
                             "BASH_ENV",
                             "SHELL",
                             "PYTHONPATH",
                             "PYTHONSTARTUP",
                             "CONTAINERS_CONF",
                             "CONTAINER_HOST",
                             "DOCKER_HOST",
                             "COMPOSE_FILE",
                             "COMPOSE_PROJECT_NAME",
                             "PODMAN_USERNS",
                             "HELM_PLUGINS",
                             "KUBECONFIG",
                             "XDG_RUNTIME_DIR",
                             "GCONV_PATH",
                             "GLIBC_TUNABLES",
                             "SSL_CERT_FILE",
                             "OPENSSL_CONF",
                             "TMPDIR",
                             "MGO_AGENT_DOLLAR"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (mgo_rt_env_name_refused(refused[i]) == NULL)
            fprintf(stderr, "%s not refused\n", refused[i]);
        CU_ASSERT(mgo_rt_env_name_refused(refused[i]) != NULL);
    }
    const char *allowed[] = {"GREETING", "PATHS",          "MY_PATH",    "LD",
                             "HOMEPAGE", "DB_HOST",        "HTTP_PROXY", "TZ",
                             "LANG",     "CONTAINER_NAME", "SITE_NAME",  "ENVIRONMENT"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (mgo_rt_env_name_refused(allowed[i]) != NULL)
            fprintf(stderr, "%s refused\n", allowed[i]);
        CU_ASSERT(mgo_rt_env_name_refused(allowed[i]) == NULL);
    }
    CU_ASSERT_STRING_EQUAL(mgo_rt_env_name_refused("LD_PRELOAD"), "read by the dynamic loader");
}

/* A recording compose command (named NAME inside dir/bin-NAME/): appends its own PATH,
 * LD_PRELOAD and GREETING to compose-env.log; with python, also the GREETING that
 * podman-compose 1.0.3's own .env reader (podman_compose.dotenv_to_dict) gets from the
 * project's .env, byte for byte, to dotenv-value. The fake container command reports one
 * running container. */
static void make_fake_compose(const char *name, bool python, char *cmd_out, size_t cmd_len,
                              char *podman_out, size_t podman_len)
{
    char p[1024];
    CU_ASSERT_FATAL(sh("mkdir -p %s/bin-%s", dir, name) == 0);
    snprintf(p, sizeof p, "%s/bin-%s/%s", dir, name, name);
    FILE *f = fopen(p, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f,
            "#!/bin/sh\n"
            "printf 'PATH=%%s LD_PRELOAD=%%s GREETING=%%s | %%s\\n' \"$PATH\" "
            "\"${LD_PRELOAD-unset}\" \"${GREETING-unset}\" \"$*\" >> %s/compose-env.log\n",
            dir);
    if (python)
        fprintf(f,
                "/usr/bin/python3 -c 'import sys; from podman_compose import dotenv_to_dict; "
                "sys.stdout.buffer.write(dotenv_to_dict(sys.argv[1]).get(\"GREETING\", \"<unset>\")"
                ".encode())' \"$PWD/.env\" > %s/dotenv-value || exit 3\n",
                dir);
    fputs("exit 0\n", f);
    fclose(f);
    snprintf(podman_out, podman_len, "%s/fake-podman", dir);
    f = fopen(podman_out, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("#!/bin/sh\necho 'margo-x_web_1 running'\n", f);
    fclose(f);
    CU_ASSERT_FATAL(sh("chmod +x %s %s", p, podman_out) == 0);
    snprintf(cmd_out, cmd_len, "%s", p);
}

static struct mgo_component env_comp;
static struct mgo_target env_t[2];
static struct mgo_parameter env_params[2];
static struct mgo_app_deployment env_dep;
static char env_url[600];

static void setup_env_dep(const char *pointer, const char *value)
{
    char pkg[512];
    snprintf(pkg, sizeof pkg, "%s/app.yaml", dir);
    FILE *f = fopen(pkg, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs("services:\n  web:\n    image: busybox\n    environment:\n      GREETING: ${GREETING}\n",
          f);
    fclose(f);
    snprintf(env_url, sizeof env_url, "file://%s", pkg);
    env_comp = (struct mgo_component){.name = "web", .package_location = env_url};
    env_t[0] = (struct mgo_target){"GREETING", comps_web, 1};
    env_t[1] = (struct mgo_target){pointer, comps_web, 1};
    env_params[0] = (struct mgo_parameter){"greeting", true, mgo_value_str(value), &env_t[0], 1};
    env_params[1] = (struct mgo_parameter){"evil", true, mgo_value_str("/tmp/evil"), &env_t[1], 1};
    memset(&env_dep, 0, sizeof env_dep);
    env_dep.id = "ENV-1";
    env_dep.name = "x";
    env_dep.profile.type = MGO_PROFILE_COMPOSE;
    env_dep.profile.components = &env_comp;
    env_dep.profile.components_len = 1;
    env_dep.parameters = env_params;
    env_dep.parameters_len = pointer != NULL ? 2 : 1;
}

/* PATH and LD_PRELOAD parameters: the deployment fails with PARAMETER_REFUSED naming the
 * parameter, the variable and the rule, and compose never runs. */
static void test_compose_refuses_runtime_env(void)
{
    fresh();
    char cmd[1024], podman[600], work[512], p[600];
    make_fake_compose("podman-compose", true, cmd, sizeof cmd, podman, sizeof podman);
    snprintf(work, sizeof work, "%s/work", dir);
    struct mgo_rt_settings s = {
        .work_dir = work, .compose_command = cmd, .container_command = podman};
    const char *pointers[] = {"PATH", "LD_PRELOAD", "ENV.LD_PRELOAD", "ld_library_path"};
    for (size_t i = 0; i < sizeof pointers / sizeof pointers[0]; i++) {
        setup_env_dep(pointers[i], "hello");
        struct mgo_rt_result res[1];
        CU_ASSERT(mgo_rt_apply(&s, &env_dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
        CU_ASSERT_EQUAL(res[0].state, MGO_STATE_FAILED);
        CU_ASSERT_STRING_EQUAL(res[0].error.code, "PARAMETER_REFUSED");
        CU_ASSERT_STRING_EQUAL(res[0].error.source, "web");
        CU_ASSERT(strstr(res[0].error.message, "parameters.evil.targets[0].pointer") != NULL);
        CU_ASSERT(strstr(res[0].error.message, "is refused") != NULL);
        CU_ASSERT(strstr(res[0].error.message,
                         i == 0 ? "program search path" : "read by the dynamic loader") != NULL);
    }
    snprintf(p, sizeof p, "%s/compose-env.log", dir);
    CU_ASSERT(access(p, F_OK) != 0); /* compose never ran */
    /* mgo_rt_component_values refuses them as well, for any other caller */
    setup_env_dep("LD_PRELOAD", "hello");
    struct mgo_arena arena;
    mgo_arena_init(&arena, 65536);
    const char *vals[8];
    size_t n = 0;
    char why[300];
    CU_ASSERT(mgo_rt_component_values(&env_dep, "web", true, &arena, vals, 8, &n, why,
                                      sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "'LD_PRELOAD' is refused") != NULL);
    mgo_arena_cleanup(&arena);
    drop();
}

/* A value full of .env syntax reaches the workload's interpolation exactly, through the
 * project's .env; the compose process's own PATH, LD_PRELOAD and GREETING are untouched. */
static void test_compose_values_only_in_dotenv(void)
{
    fresh();
    static const char value[] = "it's a \"test\" \\ with $HOME ${PATH} $${X} ${MGO_AGENT_BS} "
                                "#no comment\t\\'x ends with \\";
    char cmd[1024], podman[600], work[512], p[600];
    make_fake_compose("podman-compose", true, cmd, sizeof cmd, podman, sizeof podman);
    snprintf(work, sizeof work, "%s/work", dir);
    struct mgo_rt_settings s = {
        .work_dir = work, .compose_command = cmd, .container_command = podman};
    setup_env_dep(NULL, value);
    struct mgo_rt_result res[1];
    CU_ASSERT_FATAL(mgo_rt_apply(&s, &env_dep, res, NULL, NULL) == MGO_OK);
    snprintf(p, sizeof p, "%s/dotenv-value", dir);
    size_t len = 0;
    char *got = mgo_test_read_file(p, &len);
    CU_ASSERT_FATAL(got != NULL);
    if (strcmp(got, value) != 0)
        fprintf(stderr, "podman-compose's .env reader got [%s]\nwanted [%s]\n", got, value);
    CU_ASSERT(len == strlen(value) && strcmp(got, value) == 0);
    free(got);
    snprintf(p, sizeof p, "%s/compose-env.log", dir);
    char *log = mgo_test_read_file(p, NULL);
    char want[2048];
    snprintf(want, sizeof want, "PATH=%s LD_PRELOAD=%s GREETING=unset | ", getenv("PATH"),
             getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "unset");
    CU_ASSERT(log != NULL && strncmp(log, want, strlen(want)) == 0);
    free(log);
    CU_ASSERT_FATAL(mgo_rt_remove(&s, &env_dep, res, NULL, NULL) == MGO_OK);

    /* Docker Compose's reader (compose-go) takes single quotes literally except \' */
    char dcmd[1200];
    make_fake_compose("docker", false, cmd, sizeof cmd, podman, sizeof podman);
    snprintf(dcmd, sizeof dcmd, "%s compose", cmd);
    s.compose_command = dcmd;
    setup_env_dep(NULL, "it's $HOME ${PATH} \\ ok");
    CU_ASSERT_FATAL(mgo_rt_apply(&s, &env_dep, res, NULL, NULL) == MGO_OK);
    snprintf(p, sizeof p, "%s/margo-env-1/web/pkg/.env", work);
    log = mgo_test_read_file(p, NULL);
    CU_ASSERT(log != NULL && strstr(log, "\nGREETING='it\\'s $HOME ${PATH} \\ ok'\n") != NULL);
    CU_ASSERT(log != NULL && strstr(log, "MGO_AGENT") == NULL);
    free(log);
    /* ... so a backslash before a quote cannot be written: refused, not mangled */
    setup_env_dep(NULL, "a\\'b");
    CU_ASSERT(mgo_rt_apply(&s, &env_dep, res, NULL, NULL) == MGO_ERR_RUNTIME);
    CU_ASSERT_STRING_EQUAL(res[0].error.code, "INVALID_PARAMETER");
    CU_ASSERT(strstr(res[0].error.message, "GREETING: a backslash") != NULL);
    drop();
}

/* Helm gets values as --set-string arguments only: a PATH or LD_PRELOAD values path leaves
 * helm's own environment as it was. */
static void test_helm_values_not_environment(void)
{
    fresh();
    helm_env("success");
    char p[512];
    snprintf(p, sizeof p, "%s/helm-env.log", dir);
    setenv("FAKE_HELM_ENV_LOG", p, 1);
    setup_helm_dep();
    helm_t[0].pointer = "PATH";
    helm_t[1].pointer = "LD_PRELOAD";
    helm_params[0].value = mgo_value_str("/tmp/evil");
    helm_params[1].value = mgo_value_str("/tmp/evil.so");
    struct mgo_rt_settings s = {.helm_command = MGO_FAKE_HELM};
    struct mgo_rt_result res[2];
    CU_ASSERT_FATAL(mgo_rt_apply(&s, &helm_dep, res, NULL, NULL) == MGO_OK);
    char *log = read_log();
    CU_ASSERT(log != NULL && strstr(log, "\x1f--set-string\x1fPATH=/tmp/evil\x1f"
                                         "--set-string\x1fLD_PRELOAD=/tmp/evil.so\x1f") != NULL);
    free(log);
    char *env = mgo_test_read_file(p, NULL);
    char want[2048];
    snprintf(want, sizeof want, "PATH=%s LD_PRELOAD=%s\n", getenv("PATH"),
             getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "unset");
    CU_ASSERT(env != NULL && strncmp(env, want, strlen(want)) == 0);
    free(env);
    unsetenv("FAKE_HELM_ENV_LOG");
    drop();
}

/* ---- OCI fetch against a static registry (busybox httpd serving /v2/ files) ---------- */

static void test_oci_fetch_digests(void)
{
    fresh();
    char port[16] = "";
    /* layer "services: {}\n", a manifest naming its true digest (tag good) and one naming a
     * wrong digest for a blob whose bytes were swapped (tag bad) */
    CU_ASSERT_FATAL(
        sh("set -e; cd %s; mkdir -p v2/m/app/manifests v2/m/app/blobs; "
           "printf 'services: {}\n' > layer; D=sha256:$(sha256sum layer | cut -d' ' -f1); "
           "cp layer v2/m/app/blobs/$D; "
           "printf "
           "'{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"application/"
           "vnd.margo.compose.v1+yaml\",\"digest\":\"%%s\",\"size\":13}]}' $D > "
           "v2/m/app/manifests/good; "
           "W=sha256:1111111111111111111111111111111111111111111111111111111111111111; "
           "printf 'services: {x}\n' > v2/m/app/blobs/$W; "
           "printf "
           "'{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"application/"
           "vnd.margo.compose.v1+yaml\",\"digest\":\"%%s\",\"size\":14}]}' $W > "
           "v2/m/app/manifests/bad; "
           "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
           "print(s.getsockname()[1])' > port; "
           "(busybox httpd -f -p 127.0.0.1:$(cat port) -h . & echo $! > httpd.pid); sleep 0.3",
           dir) == 0);
    char p[600];
    snprintf(p, sizeof p, "%s/port", dir);
    char *pt = mgo_test_read_file(p, NULL);
    snprintf(port, sizeof port, "%.*s", (int)strcspn(pt, "\n"), pt);
    free(pt);
    char host[64], repo[128];
    snprintf(host, sizeof host, "127.0.0.1:%s", port);
    snprintf(repo, sizeof repo, "oci://%s/m/app", host);
    const char *plain[] = {host};
    struct mgo_fetch_opts o = {.timeout_s = 10, .plain_http = plain, .plain_http_len = 1};
    struct mgo_buf out;
    mgo_buf_init(&out, MGO_FETCH_MAX_PACKAGE_BYTES);
    char why[300] = "", mt[128];
    CU_ASSERT(mgo_fetch_oci(repo, "good", &o, &out, mt, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(out.len, 13);
    CU_ASSERT_STRING_EQUAL(mt, "application/vnd.margo.compose.v1+yaml");
    CU_ASSERT(mgo_fetch_oci(repo, "bad", &o, &out, NULL, why, sizeof why) == MGO_ERR_CRYPTO);
    CU_ASSERT(strstr(why, "does not match") != NULL);
    CU_ASSERT(mgo_fetch_oci(repo, "missing", &o, &out, NULL, why, sizeof why) == MGO_ERR_NOT_FOUND);
    /* the revision as a digest must match the manifest's own bytes */
    CU_ASSERT(mgo_fetch_oci(
                  repo, "sha256:2222222222222222222222222222222222222222222222222222222222222222",
                  &o, &out, NULL, why, sizeof why) != MGO_OK);
    /* malformed references never reach the network */
    CU_ASSERT(mgo_fetch_oci("oci://h/../x", "1", &o, &out, NULL, why, sizeof why) ==
              MGO_ERR_INVALID);
    CU_ASSERT(mgo_fetch_oci(repo, "a/b", &o, &out, NULL, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_fetch_oci("https://x/y", "1", &o, &out, NULL, why, sizeof why) ==
              MGO_ERR_INVALID);
    /* size cap */
    struct mgo_buf small;
    mgo_buf_init(&small, 4);
    CU_ASSERT(mgo_fetch_oci(repo, "good", &o, &small, NULL, why, sizeof why) == MGO_ERR_LIMIT);
    mgo_buf_cleanup(&small);
    mgo_buf_cleanup(&out);
    sh("kill $(cat %s/httpd.pid) 2>/dev/null; true", dir);
    drop();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case exec_cases[] = {
        {"exit code and stderr tail", test_exec_exit_and_stderr},
        {"env, cwd, no shell", test_exec_env_cwd_no_shell},
        {"timeout, cancel, missing program", test_exec_timeout_and_missing},
        {"output bounded", test_exec_output_bounded},
        {NULL, NULL},
    };
    static const struct mgo_test_case pkg_cases[] = {
        {"tar.gz extraction and refusals", test_untar_safe_and_refusals},
        {"parameters: ENV.X and X pointers", test_parameter_pointer_styles},
        {"OCI fetch: digests verified, bad references refused", test_oci_fetch_digests},
        {NULL, NULL},
    };
    static const struct mgo_test_case helm_cases[] = {
        {"success: recorded argv contract", test_helm_success_argv},
        {"values are arguments, never helm's environment", test_helm_values_not_environment},
        {"failure: stderr becomes the error", test_helm_failure_reports_stderr},
        {"timeout", test_helm_timeout},
        {"missing helm CLI", test_helm_missing_cli},
        {NULL, NULL},
    };
    static const struct mgo_test_case compose_cases[] = {
        {"command contract with a recording compose", test_compose_contract},
        {"runtime environment names refused", test_env_names_refused},
        {"PATH, LD_PRELOAD parameters: PARAMETER_REFUSED, compose not run",
         test_compose_refuses_runtime_env},
        {"values reach the workload through .env only", test_compose_values_only_in_dotenv},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.exec", exec_cases);
    mgo_test_add_suite("agent.package", pkg_cases);
    mgo_test_add_suite("agent.helm", helm_cases);
    mgo_test_add_suite("agent.compose", compose_cases);
}
