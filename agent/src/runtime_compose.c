/* runtime_compose.c - the Compose runtime ("standalone device"): fetch each component's
 * package (HTTP(S) compose file or tar.gz, or an oci:// artifact), write parameters to the
 * project's .env file for the compose file's ${X} interpolation, run the compose command,
 * probe with the container command. */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "mgo/log.h"
#include "mgo/loop.h"
#include "state.h"

#define TAG "agent.compose"
#define MAX_CMD_WORDS 8u
#define PROBE_TIMEOUT_MS 60000u

static const char *const COMPOSE_NAMES[] = {"compose.yaml", "compose.yml", "docker-compose.yaml",
                                            "docker-compose.yml"};

struct cmd {
    char buf[256];
    const char *words[MAX_CMD_WORDS];
    size_t n;
};

static bool cmd_init(struct cmd *c, const char *text)
{
    snprintf(c->buf, sizeof c->buf, "%s", text ? text : "");
    c->n = mgo_exec_split(c->buf, c->words, MAX_CMD_WORDS);
    return c->n > 0;
}

static void container_cmd(const struct mgo_rt_settings *s, char *out, size_t out_size)
{
    if (s->container_command != NULL && s->container_command[0] != '\0') {
        snprintf(out, out_size, "%s", s->container_command);
        return;
    }
    const char *cc = s->compose_command ? s->compose_command : "podman-compose";
    const char *base = strrchr(cc, '/');
    base = base ? base + 1 : cc;
    snprintf(out, out_size, "%s", strncmp(base, "docker", 6) == 0 ? "docker" : "podman");
}

static bool name_ok(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > MGO_MAX_NAME_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' ||
              *s == '.'))
            return false;
    return true;
}

static mgo_err comp_dir(const struct mgo_rt_settings *s, const char *project, const char *comp,
                        const char *leaf, char *out)
{
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_AGENT_MAX_PATH - 1);
    mgo_err err = mgo_buf_printf(&b, "%s/%s", s->work_dir, project);
    if (err == MGO_OK && comp != NULL)
        err = mgo_buf_printf(&b, "/%s", comp);
    if (err == MGO_OK && leaf != NULL)
        err = mgo_buf_printf(&b, "/%s", leaf);
    if (err == MGO_OK)
        memcpy(out, b.data, b.len + 1);
    mgo_buf_cleanup(&b);
    return err == MGO_OK ? MGO_OK : MGO_ERR_LIMIT;
}

/* Finds the compose file at the root of dir. */
static bool find_compose(const char *dir, char *out)
{
    for (size_t i = 0; i < sizeof COMPOSE_NAMES / sizeof COMPOSE_NAMES[0]; i++) {
        int n = snprintf(out, MGO_AGENT_MAX_PATH, "%s/%s", dir, COMPOSE_NAMES[i]);
        if (n < 0 || (size_t)n >= MGO_AGENT_MAX_PATH)
            return false;
        struct stat sb;
        if (lstat(out, &sb) == 0 && S_ISREG(sb.st_mode))
            return true;
    }
    return false;
}

static void rm_quiet(const char *path)
{
    if (mgo_agent__rm_rf(path) != MGO_OK)
        MGO_LOGW(TAG, "cannot remove %s", path);
}

static mgo_err write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return MGO_ERR_IO;
    bool ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    return ok ? MGO_OK : MGO_ERR_IO;
}

/* How often a sleeping wait looks at the cancel flag. */
#define CANCEL_CHECK_MS 50

static bool cancelled(const struct mgo_rt_settings *s)
{
    return s->cancel != NULL && atomic_load(s->cancel) != 0;
}

/* Fetches the component's package into DIR/pkg (replacing an older one only on success). */
static mgo_err fetch_package(const struct mgo_rt_settings *s, const struct mgo_component *comp,
                             const char *dir, char *compose_file, struct mgo_rt_result *res)
{
    char tmp[MGO_AGENT_MAX_PATH + 16], final[MGO_AGENT_MAX_PATH + 16], why[300] = "";
    snprintf(tmp, sizeof tmp, "%s/pkg.new", dir);
    snprintf(final, sizeof final, "%s/pkg", dir);
    rm_quiet(tmp);
    mgo_err err = mgo_agent__mkdir_p(tmp);
    if (err != MGO_OK) {
        mgo_rt__set_error(res, "IO_ERROR", comp->name, "cannot create %s", tmp);
        return err;
    }
    struct mgo_buf pkg;
    mgo_buf_init(&pkg, MGO_FETCH_MAX_PACKAGE_BYTES);
    const char *where = NULL;
    if (comp->repository != NULL && strncmp(comp->repository, "oci://", 6) == 0) {
        where = comp->repository;
        err =
            mgo_fetch_oci(comp->repository, comp->revision, &s->fetch, &pkg, NULL, why, sizeof why);
    } else if (comp->package_location != NULL) {
        where = comp->package_location;
        err = mgo_fetch_url(comp->package_location, &s->fetch, &pkg, why, sizeof why);
    } else {
        mgo_rt__set_error(res, "NO_PACKAGE", comp->name,
                          "component has neither packageLocation nor an oci:// repository");
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    if (err != MGO_OK) {
        mgo_rt__set_error(res,
                          cancelled(s)            ? "CANCELLED"
                          : err == MGO_ERR_CRYPTO ? "DIGEST_MISMATCH"
                                                  : "FETCH_FAILED",
                          comp->name, "%s: %s", where, why);
        goto cleanup;
    }
    if (mgo_fetch_is_gzip(pkg.data, pkg.len)) {
        err = mgo_fetch_untar_gz(pkg.data, pkg.len, tmp, why, sizeof why);
        if (err != MGO_OK) {
            mgo_rt__set_error(res, "PACKAGE_INVALID", comp->name, "%s: %s", where, why);
            goto cleanup;
        }
    } else {
        char p[MGO_AGENT_MAX_PATH + 32];
        snprintf(p, sizeof p, "%s/compose.yaml", tmp);
        err = write_file(p, pkg.data, pkg.len);
        if (err != MGO_OK) {
            mgo_rt__set_error(res, "IO_ERROR", comp->name, "cannot write %s", p);
            goto cleanup;
        }
    }
    char probe[MGO_AGENT_MAX_PATH];
    if (!find_compose(tmp, probe)) {
        mgo_rt__set_error(res, "PACKAGE_INVALID", comp->name,
                          "%s: no compose.yaml, compose.yml, docker-compose.yaml or "
                          "docker-compose.yml at the package root",
                          where);
        err = MGO_ERR_INVALID;
        goto cleanup;
    }
    rm_quiet(final);
    if (rename(tmp, final) != 0) {
        mgo_rt__set_error(res, "IO_ERROR", comp->name, "rename %s: %s", tmp, strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup;
    }
    if (!find_compose(final, compose_file)) {
        err = MGO_ERR_INTERNAL;
        goto cleanup;
    }
cleanup:
    mgo_buf_cleanup(&pkg);
    return err;
}

/* Margo section 7: the OTel variables go into every workload container, through an override
 * file that adds them to each service of the compose file. */
static mgo_err write_otel_override(const struct mgo_rt_settings *s, const char *compose_file,
                                   const char *out_path, bool *written)
{
    *written = false;
    if (s->otel_http_endpoint == NULL || s->otel_http_endpoint[0] == '\0')
        return MGO_OK;
    struct mgo_buf src, y;
    mgo_buf_init(&src, MGO_MAX_FILE_BYTES);
    mgo_buf_init(&y, 256u * 1024u);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root;
    mgo_err err = mgo_buf_read_file(&src, compose_file);
    if (err == MGO_OK)
        err = mgo_value_from_yaml(src.data, src.len, &arena, &root, &probs);
    if (err != MGO_OK) {
        MGO_LOGW(TAG, "%s: cannot read services (%s); OpenTelemetry variables not injected",
                 compose_file, mgo_strerror(err));
        err = MGO_OK;
        goto cleanup;
    }
    const struct mgo_value *services = mgo_value_get(&root, "services");
    if (services == NULL || services->kind != MGO_V_MAP)
        goto cleanup;
    const char *vars[4][2] = {
        {"HTTP_OTEL_EXPORTER_OTLP_ENDPOINT", s->otel_http_endpoint},
        {"GRPC_OTEL_EXPORTER_OTLP_ENDPOINT", s->otel_grpc_endpoint},
        {"OTEL_EXPORTER_OTLP_CERTIFICATE", s->otel_certificate},
        {"OTEL_EXPORTER_OTLP_PROTOCOL", s->otel_protocol},
    };
    err = mgo_buf_append_str(&y, "# written by margo-agent: Margo OpenTelemetry variables\n"
                                 "services:\n");
    for (size_t i = 0; i < services->as.map.len && err == MGO_OK; i++) {
        const char *svc = services->as.map.items[i].key;
        err = mgo_buf_printf(&y, "  \"%s\":\n    environment:\n", svc);
        for (size_t v = 0; v < 4 && err == MGO_OK; v++) {
            if (vars[v][1] == NULL || vars[v][1][0] == '\0')
                continue;
            err = mgo_buf_printf(&y, "      %s: \"", vars[v][0]);
            for (const char *c = vars[v][1]; *c && err == MGO_OK; c++)
                err = (*c == '"' || *c == '\\') ? mgo_buf_printf(&y, "\\%c", *c)
                                                : mgo_buf_append(&y, c, 1);
            if (err == MGO_OK)
                err = mgo_buf_append_str(&y, "\"\n");
        }
    }
    for (size_t i = 0; i < services->as.map.len; i++)
        if (strchr(services->as.map.items[i].key, '"') != NULL)
            err = MGO_ERR_INVALID;
    if (err == MGO_OK)
        err = write_file(out_path, y.data, y.len);
    if (err == MGO_OK)
        *written = true;
cleanup:
    mgo_arena_cleanup(&arena);
    mgo_buf_cleanup(&y);
    mgo_buf_cleanup(&src);
    return err;
}

/* The .env dialect of the compose command: podman-compose parses .env with python-dotenv,
 * Docker Compose (and anything else) with compose-go. */
static bool python_dotenv(const struct mgo_rt_settings *s)
{
    char cc[256];
    snprintf(cc, sizeof cc, "%s", s->compose_command ? s->compose_command : "podman-compose");
    const char *words[MAX_CMD_WORDS];
    if (mgo_exec_split(cc, words, MAX_CMD_WORDS) == 0)
        return false;
    const char *base = strrchr(words[0], '/');
    return strstr(base ? base + 1 : words[0], "podman-compose") != NULL;
}

/* Appends NAME='value' so that the dialect reads value back byte for byte.
 * python-dotenv 0.21 (Debian 12's podman-compose 1.0.3) decodes \' and \\ in single quotes
 * and then expands ${X} even there, with no escape for '$'; so every backslash and every '$'
 * before '{' is written as a reference to a helper variable (MGO_AGENT_BS, MGO_AGENT_DOLLAR,
 * defined unquoted at the top of the block), and the only backslashes left are those of \'.
 * compose-go (Docker Compose) takes single-quoted values literally, except \'; a backslash
 * before a quote or at the end of the value cannot be written, and is refused. */
static mgo_err dotenv_line(struct mgo_buf *b, const char *kv, bool python, char *why,
                           size_t why_len)
{
    const char *eq = strchr(kv, '=');
    size_t klen = (size_t)(eq - kv);
    const char *v = eq + 1;
    mgo_err err = mgo_buf_append(b, kv, klen);
    if (err == MGO_OK)
        err = mgo_buf_append_str(b, "='");
    for (const char *c = v; *c != '\0' && err == MGO_OK; c++) {
        if (*c == '\'')
            err = mgo_buf_append_str(b, "\\'");
        else if (python && *c == '\\')
            err = mgo_buf_append_str(b, "${MGO_AGENT_BS}");
        else if (python && *c == '$' && c[1] == '{')
            err = mgo_buf_append_str(b, "${MGO_AGENT_DOLLAR}");
        else if (!python && *c == '\\' && (c[1] == '\'' || c[1] == '\0')) {
            snprintf(why, why_len,
                     "%.*s: a backslash before a quote or at the end of the value cannot be "
                     "written to a Docker Compose .env file",
                     (int)klen, kv);
            return MGO_ERR_INVALID;
        } else
            err = mgo_buf_append(b, c, 1);
    }
    if (err == MGO_OK)
        err = mgo_buf_append_str(b, "'\n");
    if (err != MGO_OK)
        snprintf(why, why_len, "%.*s: value too large", (int)klen, kv);
    return err;
}

/* Writes the workload's values to DIR/.env (DIR holds the compose file), mode 0600, after the
 * package's own .env lines when it has one. podman-compose 1.0.3 has no --env-file option and
 * reads only this file; Docker Compose reads it by default too. Both use .env entries for the
 * compose file's ${X} interpolation only, so the values reach the workload and never the
 * environment of the compose command or of the podman/docker it runs. */
static mgo_err write_dotenv(const struct mgo_rt_settings *s, const char *dir,
                            const char *const *vals, size_t nvals, char *why, size_t why_len)
{
    char path[MGO_AGENT_MAX_PATH + 8];
    snprintf(path, sizeof path, "%s/.env", dir);
    bool python = python_dotenv(s);
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_FILE_BYTES);
    mgo_err err = mgo_buf_read_file(&b, path);
    if (err == MGO_ERR_NOT_FOUND) { /* the package has no .env of its own */
        err = MGO_OK;
        b.len = 0;
    }
    if (err == MGO_OK && b.len > 0 && b.data[b.len - 1] != '\n')
        err = mgo_buf_append_str(&b, "\n");
    if (err == MGO_OK)
        err = mgo_buf_append_str(&b, "# written by margo-agent: deployment parameters\n");
    if (err == MGO_OK && python)
        err = mgo_buf_append_str(&b, "MGO_AGENT_BS=\\\nMGO_AGENT_DOLLAR=$\n");
    if (err != MGO_OK) {
        snprintf(why, why_len, "%.200s: too large", path);
        goto cleanup;
    }
    for (size_t i = 0; i < nvals && err == MGO_OK; i++)
        err = dotenv_line(&b, vals[i], python, why, why_len);
    if (err != MGO_OK)
        goto cleanup;
    (void)unlink(path); /* a package .env may be read-only or a link; we write a new file */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(why, why_len, "cannot create %.200s: %s", path, strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup;
    }
    size_t off = 0;
    while (off < b.len) {
        ssize_t w = write(fd, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (close(fd) != 0 || off != b.len) {
        snprintf(why, why_len, "cannot write %.200s", path);
        err = MGO_ERR_IO;
    }
cleanup:
    mgo_buf_cleanup(&b);
    return err;
}

static void env_for(const struct mgo_rt_settings *s, const char **env, size_t *n,
                    struct mgo_arena *arena)
{
    const char *vars[4][2] = {
        {"HTTP_OTEL_EXPORTER_OTLP_ENDPOINT", s->otel_http_endpoint},
        {"GRPC_OTEL_EXPORTER_OTLP_ENDPOINT", s->otel_grpc_endpoint},
        {"OTEL_EXPORTER_OTLP_CERTIFICATE", s->otel_certificate},
        {"OTEL_EXPORTER_OTLP_PROTOCOL", s->otel_protocol},
    };
    for (size_t v = 0; v < 4; v++) {
        if (vars[v][1] == NULL || vars[v][1][0] == '\0' || *n >= MGO_RT_MAX_ENV)
            continue;
        const char *kv = mgo_arena_printf(arena, "%s=%s", vars[v][0], vars[v][1]);
        if (kv != NULL)
            env[(*n)++] = kv;
    }
}

/* Runs `<container command c> ps <all_flag> --filter label=com.docker.compose.project=<project>`,
 * with `--format <format>` unless format is NULL; ex receives the outcome (the caller cleans
 * it up, whatever this returns). */
static mgo_err ps_project(const struct mgo_rt_settings *s, const struct cmd *c, const char *project,
                          const char *all_flag, const char *format, struct mgo_exec_result *ex)
{
    char filter[300];
    snprintf(filter, sizeof filter, "label=com.docker.compose.project=%s", project);
    const char *argv[MAX_CMD_WORDS + 8];
    size_t a = 0;
    for (size_t i = 0; i < c->n; i++)
        argv[a++] = c->words[i];
    argv[a++] = "ps";
    argv[a++] = all_flag;
    argv[a++] = "--filter";
    argv[a++] = filter;
    if (format != NULL) {
        argv[a++] = "--format";
        argv[a++] = format;
    }
    argv[a] = NULL;
    mgo_exec_result_init(ex);
    struct mgo_exec_opts o = {.timeout_ms = PROBE_TIMEOUT_MS, .cancel = s->cancel};
    return mgo_exec_run(argv, &o, ex);
}

/* Lists the project's containers: *total, *running, and "name state; ..." into detail. */
static mgo_err list_containers(const struct mgo_rt_settings *s, const char *project, size_t *total,
                               size_t *running, char *detail, size_t detail_len,
                               struct mgo_rt_result *res, const char *source)
{
    char cc[128];
    container_cmd(s, cc, sizeof cc);
    struct cmd c;
    if (!cmd_init(&c, cc))
        return MGO_ERR_INVALID;
    struct mgo_exec_result ex;
    mgo_err err = ps_project(s, &c, project, "-a", "{{.Names}} {{.State}}", &ex);
    *total = *running = 0;
    detail[0] = '\0';
    if (err != MGO_OK || !ex.exited || ex.exit_code != 0) {
        mgo_rt__error_from_exec(res, cc, source, &ex);
        err = err != MGO_OK ? err : MGO_ERR_RUNTIME;
        goto cleanup;
    }
    char *line = (char *)ex.out.data;
    size_t used = 0;
    while (line != NULL && *line != '\0') {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (*line != '\0') {
            (*total)++;
            const char *state = strchr(line, ' ');
            state = state ? state + 1 : "";
            bool up = strncmp(state, "running", 7) == 0 || strncmp(state, "Up", 2) == 0;
            if (up)
                (*running)++;
            int w = snprintf(detail + used, detail_len - used, "%s%s", used ? "; " : "", line);
            if (w > 0 && used + (size_t)w < detail_len)
                used += (size_t)w;
        }
        line = nl ? nl + 1 : NULL;
    }
cleanup:
    mgo_exec_result_cleanup(&ex);
    return err;
}

static uint64_t mono_ms(void)
{
    return (uint64_t)mgo_loop_now_ms(); /* the daemons' one monotonic clock */
}

/* podman-compose 1.0.3 exits 0 even when a `podman run` it started failed (an image
 * missing from the registry, say); it prints "exit code: N" on stdout for each podman
 * command. The first non-zero N is the real outcome, 0 when there is none. */
static int hidden_exit_code(const struct mgo_exec_result *ex)
{
    const char *p = ex->out.data != NULL ? (const char *)ex->out.data : "";
    static const char marker[] = "exit code: ";
    while ((p = strstr(p, marker)) != NULL) {
        p += sizeof marker - 1;
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end != p && v > 0 && v < 256)
            return (int)v;
    }
    return 0;
}

static bool buf_has(const struct mgo_buf *b, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; b->data && i + n <= b->len; i++) {
        if (memcmp(b->data + i, needle, n) == 0)
            return true;
    }
    return false;
}

static bool output_has(const struct mgo_exec_result *ex, const char *needle)
{
    return buf_has(&ex->out, needle) || buf_has(&ex->err, needle);
}

/* Whether a failed `up` could not pull an image because of the device's side: the registry
 * unreachable from its network, refusing it, or an error on the way (podman: "Error:
 * initializing source docker://...", Docker: "Error response from daemon: Get ...",
 * "pull access denied"). An image the registry does not have ("manifest unknown", "not
 * found") is the app's reference, not the device's, and stays RUNTIME_FAILED: a rollout
 * counting only app failures must still stop on an app whose image does not exist
 * (docs/protocol.md 8.3). */
static bool pull_failed_on_device(const struct mgo_exec_result *ex)
{
    bool pull = output_has(ex, "Error: initializing source docker://") ||
                output_has(ex, "pull access denied") ||
                output_has(ex, "Error response from daemon: Get ");
    return pull && !output_has(ex, "manifest unknown") && !output_has(ex, "not found") &&
           !output_has(ex, "name unknown");
}

static mgo_err run_compose(const struct mgo_rt_settings *s, const char *project,
                           const char *const *files, size_t nfiles, const char *cwd,
                           const char *const *verb, const char **env, size_t nenv,
                           uint32_t timeout_s, struct mgo_rt_result *res, const char *source)
{
    struct cmd c;
    if (!cmd_init(&c, s->compose_command ? s->compose_command : "podman-compose")) {
        mgo_rt__set_error(res, "CONFIG", source, "compose-command is empty");
        return MGO_ERR_INVALID;
    }
    const char *argv[MAX_CMD_WORDS + 24];
    size_t a = 0;
    for (size_t i = 0; i < c.n; i++)
        argv[a++] = c.words[i];
    argv[a++] = "-p";
    argv[a++] = project;
    for (size_t i = 0; i < nfiles && i < 8; i++) {
        argv[a++] = "-f";
        argv[a++] = files[i];
    }
    for (size_t i = 0; verb[i] != NULL && a < sizeof argv / sizeof argv[0] - 1; i++)
        argv[a++] = verb[i];
    argv[a] = NULL;
    struct mgo_exec_result ex;
    mgo_exec_result_init(&ex);
    struct mgo_exec_opts o = {
        .cwd = cwd,
        .env_add = env,
        .env_add_len = nenv,
        .timeout_ms = timeout_s * 1000u,
        .cancel = s->cancel,
    };
    MGO_LOGI(TAG, "%s: %s %s", project, c.words[0], verb[0]);
    mgo_err err = mgo_exec_run(argv, &o, &ex);
    if (err == MGO_OK && ex.exited && ex.exit_code == 0 && strcmp(verb[0], "up") == 0)
        ex.exit_code = hidden_exit_code(&ex);
    if (err != MGO_OK || !ex.exited || ex.exit_code != 0) {
        char what[300];
        snprintf(what, sizeof what, "%s %s", s->compose_command, verb[0]);
        mgo_rt__error_from_exec(res, what, source, &ex);
        if (strcmp(verb[0], "up") == 0 && ex.exited &&
            strcmp(res->error.code, "RUNTIME_FAILED") == 0 && pull_failed_on_device(&ex)) {
            char msg[sizeof res->error.message];
            snprintf(msg, sizeof msg, "%s", res->error.message);
            mgo_rt__set_error(res, "FETCH_FAILED", source, "image pull failed: %s", msg);
        }
        if (ex.timed_out)
            err = MGO_ERR_TIMEOUT;
        else if (err == MGO_OK)
            err = MGO_ERR_RUNTIME;
    } else {
        MGO_LOGD(TAG, "%s: %s %s done", project, c.words[0], verb[0]);
    }
    mgo_exec_result_cleanup(&ex);
    return err;
}

mgo_err mgo_rt__compose_apply(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                              struct mgo_rt_result *results, mgo_rt_progress_fn progress, void *ctx)
{
    char project[MGO_MAX_DEPLOYMENT_ID_LEN + 16];
    mgo_rt_project_name(dep->id, project, sizeof project);
    size_t n = dep->profile.components_len;
    for (size_t i = 0; i < n; i++)
        results[i].state = MGO_STATE_PENDING;
    mgo_err err = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1024u * 1024u);
    for (size_t i = 0; i < n; i++) {
        const struct mgo_component *comp = &dep->profile.components[i];
        struct mgo_rt_result *res = &results[i];
        res->state = MGO_STATE_INSTALLING;
        if (progress != NULL)
            progress(ctx, results, n);
        if (!name_ok(comp->name)) {
            mgo_rt__set_error(res, "INVALID_COMPONENT", comp->name ? comp->name : "",
                              "component name must be [a-z0-9._-]{1,253}");
            err = MGO_ERR_INVALID;
            break;
        }
        /* before anything runs, so a refused deployment leaves the previous one up */
        char why[300];
        err = mgo_rt_env_check(dep, comp->name, why, sizeof why);
        if (err != MGO_OK) {
            mgo_rt__set_error(res, "PARAMETER_REFUSED", comp->name, "%s", why);
            break;
        }
        char dir[MGO_AGENT_MAX_PATH], file[MGO_AGENT_MAX_PATH], pkgdir[MGO_AGENT_MAX_PATH];
        char override[MGO_AGENT_MAX_PATH];
        if (comp_dir(s, project, comp->name, NULL, dir) != MGO_OK ||
            comp_dir(s, project, comp->name, "pkg", pkgdir) != MGO_OK ||
            comp_dir(s, project, comp->name, "margo-otel.yaml", override) != MGO_OK) {
            mgo_rt__set_error(res, "IO_ERROR", comp->name, "work path too long");
            err = MGO_ERR_LIMIT;
            break;
        }
        err = mgo_agent__mkdir_p(dir);
        if (err != MGO_OK) {
            mgo_rt__set_error(res, "IO_ERROR", comp->name, "cannot create %s", dir);
            break;
        }
        /* An earlier version of this component: take it down first. podman-compose does
         * not recreate containers whose configuration changed, so an update or a
         * reconfigure would otherwise keep the old one running. */
        char old_file[MGO_AGENT_MAX_PATH];
        if (find_compose(pkgdir, old_file)) {
            const char *old_files[2] = {old_file, override};
            bool old_override = access(override, F_OK) == 0;
            static const char *const down[] = {"down", NULL};
            struct mgo_rt_result ignored;
            memset(&ignored, 0, sizeof ignored);
            if (run_compose(s, project, old_files, old_override ? 2 : 1, pkgdir, down, NULL, 0,
                            mgo_rt__timeout_s(s, NULL), &ignored, comp->name) != MGO_OK)
                MGO_LOGW(TAG, "%s: taking the previous %s down failed: %s", project, comp->name,
                         ignored.error.message);
        }
        err = fetch_package(s, comp, dir, file, res);
        if (err != MGO_OK)
            break;
        /* Parameter values go to the workload through pkg/.env only (write_dotenv); the
         * compose command's environment gets nothing but the agent's own OTel settings. */
        const char *vals[MGO_RT_MAX_ENV];
        size_t nvals = 0;
        err = mgo_rt_component_values(dep, comp->name, true, &arena, vals, MGO_RT_MAX_ENV, &nvals,
                                      why, sizeof why);
        if (err == MGO_OK)
            err = write_dotenv(s, pkgdir, vals, nvals, why, sizeof why);
        if (err != MGO_OK) {
            mgo_rt__set_error(res, err == MGO_ERR_IO ? "IO_ERROR" : "INVALID_PARAMETER", comp->name,
                              "%s", why);
            break;
        }
        const char *env[8];
        size_t nenv = 0;
        env_for(s, env, &nenv, &arena);
        bool have_override = false;
        if (write_otel_override(s, file, override, &have_override) != MGO_OK)
            MGO_LOGW(TAG, "%s: OpenTelemetry override not written", project);
        const char *files[2] = {file, override};
        uint32_t timeout_s = mgo_rt__timeout_s(s, comp);
        static const char *const up[] = {"up", "-d", NULL};
        uint64_t start = mono_ms();
        err = run_compose(s, project, files, have_override ? 2 : 1, pkgdir, up, env, nenv,
                          timeout_s, res, comp->name);
        if (err != MGO_OK)
            break;
        if (comp->wait) {
            /* wait until every container of the project runs, within the timeout */
            uint64_t deadline = start + (uint64_t)timeout_s * 1000u;
            for (;;) {
                size_t total = 0, running = 0;
                char detail[300];
                err = list_containers(s, project, &total, &running, detail, sizeof detail, res,
                                      comp->name);
                if (err != MGO_OK)
                    break;
                if (total > 0 && running == total)
                    break;
                if (cancelled(s)) {
                    mgo_rt__set_error(res, "CANCELLED", comp->name,
                                      "cancelled while waiting: %zu of %zu containers running: %s",
                                      running, total, detail);
                    err = MGO_ERR_RUNTIME;
                    break;
                }
                if (mono_ms() >= deadline) {
                    mgo_rt__set_error(res, "NOT_RUNNING", comp->name,
                                      "%zu of %zu containers running after %us: %s", running, total,
                                      timeout_s, detail);
                    err = MGO_ERR_TIMEOUT;
                    break;
                }
                /* sleep until the next poll in short slices: a cancel ends the wait at once */
                uint64_t next = mono_ms() + (s->wait_poll_ms ? s->wait_poll_ms : 1000u);
                while (mono_ms() < next && !cancelled(s)) {
                    struct timespec ts = {0, CANCEL_CHECK_MS * 1000000L};
                    nanosleep(&ts, NULL);
                }
            }
            if (err != MGO_OK)
                break;
        }
        res->state = MGO_STATE_INSTALLED;
        res->has_error = false;
    }
    mgo_arena_cleanup(&arena);
    if (progress != NULL)
        progress(ctx, results, n);
    return err == MGO_OK ? MGO_OK : err == MGO_ERR_TIMEOUT ? MGO_ERR_TIMEOUT : MGO_ERR_RUNTIME;
}

/* Removes the project's containers by label when no compose file is left. */
static mgo_err remove_by_label(const struct mgo_rt_settings *s, const char *project,
                               struct mgo_rt_result *res, const char *source)
{
    char cc[128];
    container_cmd(s, cc, sizeof cc);
    struct cmd c;
    if (!cmd_init(&c, cc))
        return MGO_ERR_INVALID;
    struct mgo_exec_result ex;
    mgo_err err = ps_project(s, &c, project, "-aq", NULL, &ex);
    if (err != MGO_OK || !ex.exited || ex.exit_code != 0) {
        mgo_rt__error_from_exec(res, cc, source, &ex);
        mgo_exec_result_cleanup(&ex);
        return MGO_ERR_RUNTIME;
    }
    char *ids = (char *)ex.out.data;
    const char *rm[MAX_CMD_WORDS + 64];
    size_t r = 0;
    for (size_t i = 0; i < c.n; i++)
        rm[r++] = c.words[i];
    rm[r++] = "rm";
    rm[r++] = "-f";
    size_t fixed = r;
    for (char *p = ids; p != NULL && *p != '\0' && r < sizeof rm / sizeof rm[0] - 1;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (*p != '\0')
            rm[r++] = p;
        p = nl ? nl + 1 : NULL;
    }
    rm[r] = NULL;
    if (r > fixed) {
        struct mgo_exec_result ex2;
        mgo_exec_result_init(&ex2);
        struct mgo_exec_opts o = {.timeout_ms = PROBE_TIMEOUT_MS, .cancel = s->cancel};
        err = mgo_exec_run(rm, &o, &ex2);
        if (err != MGO_OK || !ex2.exited || ex2.exit_code != 0) {
            mgo_rt__error_from_exec(res, cc, source, &ex2);
            err = MGO_ERR_RUNTIME;
        }
        mgo_exec_result_cleanup(&ex2);
    }
    mgo_exec_result_cleanup(&ex);
    return err;
}

/* podman-compose leaves the project's default network behind; remove it (best effort). */
static void remove_network(const struct mgo_rt_settings *s, const char *project)
{
    char cc[128], net[MGO_MAX_DEPLOYMENT_ID_LEN + 32];
    container_cmd(s, cc, sizeof cc);
    struct cmd c;
    if (!cmd_init(&c, cc))
        return;
    snprintf(net, sizeof net, "%s_default", project);
    const char *argv[MAX_CMD_WORDS + 6];
    size_t a = 0;
    for (size_t i = 0; i < c.n; i++)
        argv[a++] = c.words[i];
    argv[a++] = "network";
    argv[a++] = "rm";
    argv[a++] = net;
    argv[a] = NULL;
    struct mgo_exec_result ex;
    mgo_exec_result_init(&ex);
    struct mgo_exec_opts o = {.timeout_ms = PROBE_TIMEOUT_MS, .cancel = s->cancel};
    if (mgo_exec_run(argv, &o, &ex) != MGO_OK || !ex.exited || ex.exit_code != 0)
        MGO_LOGD(TAG, "%s: network %s not removed (may not exist)", project, net);
    mgo_exec_result_cleanup(&ex);
}

mgo_err mgo_rt__compose_remove(const struct mgo_rt_settings *s,
                               const struct mgo_app_deployment *dep, struct mgo_rt_result *results,
                               mgo_rt_progress_fn progress, void *ctx)
{
    char project[MGO_MAX_DEPLOYMENT_ID_LEN + 16];
    mgo_rt_project_name(dep->id, project, sizeof project);
    size_t n = dep->profile.components_len;
    mgo_err result = MGO_OK;
    for (size_t k = n; k > 0; k--) {
        size_t i = k - 1;
        const struct mgo_component *comp = &dep->profile.components[i];
        struct mgo_rt_result *res = &results[i];
        res->state = MGO_STATE_REMOVING;
        if (progress != NULL)
            progress(ctx, results, n);
        char dir[MGO_AGENT_MAX_PATH], pkgdir[MGO_AGENT_MAX_PATH], file[MGO_AGENT_MAX_PATH];
        char override[MGO_AGENT_MAX_PATH];
        mgo_err err = MGO_OK;
        if (!name_ok(comp->name) || comp_dir(s, project, comp->name, NULL, dir) != MGO_OK ||
            comp_dir(s, project, comp->name, "pkg", pkgdir) != MGO_OK ||
            comp_dir(s, project, comp->name, "margo-otel.yaml", override) != MGO_OK) {
            /* never installed (refused before any folder was made) */
            res->state = MGO_STATE_REMOVED;
            continue;
        }
        if (find_compose(pkgdir, file)) {
            const char *files[2] = {file, override};
            bool have_override = access(override, F_OK) == 0;
            static const char *const down[] = {"down", NULL};
            err = run_compose(s, project, files, have_override ? 2 : 1, pkgdir, down, NULL, 0,
                              mgo_rt__timeout_s(s, NULL), res, comp->name);
            /* docker-compose's `down` also removes the project's shared network and fails
             * while another component (removed after this one) is still attached; its
             * containers are gone by then, and the network is removed once the last
             * component is (remove_network below). */
            if (err == MGO_ERR_RUNTIME && i > 0 && strstr(res->error.message, "active endpoints"))
                err = MGO_OK;
        } else {
            err = remove_by_label(s, project, res, comp->name);
        }
        if (err != MGO_OK) {
            result = err;
            continue; /* keep removing the others; this one shows failed */
        }
        rm_quiet(dir);
        res->state = MGO_STATE_REMOVED;
        res->has_error = false;
    }
    if (result == MGO_OK) {
        /* leftovers of components no longer in the document */
        struct mgo_rt_result tmp;
        memset(&tmp, 0, sizeof tmp);
        (void)remove_by_label(s, project, &tmp, dep->name ? dep->name : project);
        char pdir[MGO_AGENT_MAX_PATH];
        if (comp_dir(s, project, NULL, NULL, pdir) == MGO_OK)
            rm_quiet(pdir);
        remove_network(s, project);
    }
    if (progress != NULL)
        progress(ctx, results, n);
    return result == MGO_OK ? MGO_OK : MGO_ERR_RUNTIME;
}

mgo_err mgo_rt__compose_probe(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                              struct mgo_rt_result *results, bool *healthy)
{
    char project[MGO_MAX_DEPLOYMENT_ID_LEN + 16];
    mgo_rt_project_name(dep->id, project, sizeof project);
    size_t n = dep->profile.components_len;
    size_t total = 0, running = 0;
    char detail[300];
    struct mgo_rt_result tmp;
    memset(&tmp, 0, sizeof tmp);
    *healthy = false;
    mgo_err err = list_containers(s, project, &total, &running, detail, sizeof detail, &tmp,
                                  dep->name ? dep->name : project);
    if (err != MGO_OK) {
        for (size_t i = 0; i < n; i++)
            results[i] = tmp;
        return err;
    }
    *healthy = total > 0 && running == total;
    for (size_t i = 0; i < n; i++) {
        if (*healthy) {
            results[i].state = MGO_STATE_INSTALLED;
            results[i].has_error = false;
        } else {
            mgo_rt__set_error(&results[i], "NOT_RUNNING", dep->profile.components[i].name,
                              "%zu of %zu containers running: %s", running, total,
                              total ? detail : "none");
        }
    }
    return MGO_OK;
}
