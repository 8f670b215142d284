/* runtime.c - dispatch by profile type, parameter values, shared error helpers. */
#include "runtime.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "mgo/log.h"

#define TAG "agent.runtime"

uint32_t mgo_rt__timeout_s(const struct mgo_rt_settings *s, const struct mgo_component *comp)
{
    if (comp != NULL && comp->timeout_s != 0)
        return comp->timeout_s;
    return s->default_timeout_s ? s->default_timeout_s : MGO_RT_DEFAULT_TIMEOUT_S;
}

void mgo_rt__set_error(struct mgo_rt_result *r, const char *code, const char *source,
                       const char *fmt, ...)
{
    r->state = MGO_STATE_FAILED;
    r->has_error = true;
    snprintf(r->error.code, sizeof r->error.code, "%s", code);
    snprintf(r->error.source, sizeof r->error.source, "%s", source ? source : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error.message, sizeof r->error.message, fmt, ap);
    va_end(ap);
}

void mgo_rt__error_from_exec(struct mgo_rt_result *r, const char *what, const char *source,
                             const struct mgo_exec_result *ex)
{
    char tail[400];
    mgo_exec_tail(ex, tail, sizeof tail);
    if (ex->not_found)
        mgo_rt__set_error(r, "RUNTIME_NOT_FOUND", source, "%s: command not found", what);
    else if (ex->timed_out)
        mgo_rt__set_error(r, "TIMEOUT", source, "%s timed out%s%s", what, tail[0] ? ": " : "",
                          tail);
    else if (ex->cancelled)
        mgo_rt__set_error(r, "CANCELLED", source, "%s cancelled by the agent", what);
    /* One documented code (docs/protocol.md 8.3) for every failed runtime command, so a
     * monitor can filter on it; the exit code or signal is in the message. */
    else if (ex->exited)
        mgo_rt__set_error(r, "RUNTIME_FAILED", source, "%s exited with code %d%s%s", what,
                          ex->exit_code, tail[0] ? ": " : "", tail);
    else
        mgo_rt__set_error(r, "RUNTIME_FAILED", source, "%s killed by signal %d%s%s", what,
                          ex->signal, tail[0] ? ": " : "", tail);
}

void mgo_rt_project_name(const char *deployment_id, char *out, size_t out_size)
{
    int n = snprintf(out, out_size, "margo-%s", deployment_id);
    if (n < 0)
        return;
    for (char *p = out; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            *p = '-';
    }
}

static bool env_name_ok(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

/* Environment variable names a deployment may not set (docs/security.md section 3, "Parameters
 * and the runtime's environment"). Workload values are written to the compose project's .env
 * file and never become the compose command's environment, so these names could not reach
 * the agent host's tools anyway; refusing them is defence in depth against a runtime that
 * does export .env entries (newer podman-compose exports PODMAN_*, Docker Compose reads
 * COMPOSE_* and DOCKER_* from .env) and against a future change of that path. Matched without
 * regard to case; an entry ending in '*' is a prefix. */
static const struct {
    const char *name;
    const char *rule;
} REFUSED_ENV[] = {
    {"PATH", "program search path"},
    {"HOME", "user home of the runtime tools"},
    {"USER", "identity of the runtime tools"},
    {"LOGNAME", "identity of the runtime tools"},
    {"SHELL", "shell of the runtime tools"},
    {"PWD", "working directory of the runtime tools"},
    {"OLDPWD", "working directory of the runtime tools"},
    {"TMPDIR", "temporary files of the runtime tools"},
    {"IFS", "read by the shell"},
    {"ENV", "read by the shell"},
    {"CDPATH", "read by the shell"},
    {"PS4", "read by the shell"},
    {"SHELLOPTS", "read by the shell"},
    {"GLOBIGNORE", "read by the shell"},
    {"BASH_*", "read by the shell"},
    {"LD_*", "read by the dynamic loader"},
    {"DYLD_*", "read by the dynamic loader"},
    {"GCONV_PATH", "read by the C library"},
    {"GLIBC_TUNABLES", "read by the C library"},
    {"LOCPATH", "read by the C library"},
    {"NLSPATH", "read by the C library"},
    {"MALLOC_*", "read by the C library"},
    {"HOSTALIASES", "read by the C library resolver"},
    {"RES_OPTIONS", "read by the C library resolver"},
    {"LOCALDOMAIN", "read by the C library resolver"},
    {"PYTHON*", "read by Python (podman-compose)"},
    {"OPENSSL_*", "read by OpenSSL"},
    {"SSL_CERT_*", "trust store of the runtime tools"},
    {"GODEBUG", "read by Go programs (docker, podman, helm)"},
    {"CONTAINERS_*", "configuration of podman"},
    {"CONTAINER_HOST", "configuration of podman"},
    {"CONTAINER_CONNECTION", "configuration of podman"},
    {"CONTAINER_SSHKEY", "configuration of podman"},
    {"CONTAINER_PASSPHRASE", "configuration of podman"},
    {"REGISTRY_AUTH_FILE", "configuration of podman"},
    {"STORAGE_DRIVER", "configuration of podman"},
    {"STORAGE_OPTS", "configuration of podman"},
    {"PODMAN_*", "configuration of podman and podman-compose"},
    {"BUILDAH_*", "configuration of podman"},
    {"DOCKER_*", "configuration of docker"},
    {"BUILDKIT_*", "configuration of docker"},
    {"COMPOSE_*", "configuration of Docker Compose and podman-compose"},
    {"HELM_*", "configuration of helm"},
    {"KUBECONFIG", "configuration of helm"},
    {"XDG_*", "configuration folders of the runtime tools"},
    {"DBUS_SESSION_BUS_ADDRESS", "configuration of podman (systemd)"},
    {"NOTIFY_SOCKET", "configuration of podman (systemd)"},
    {"MGO_AGENT_*", "reserved by margo-agent"},
};

static bool ieq(char a, char b)
{
    if (a >= 'a' && a <= 'z')
        a = (char)(a - 'a' + 'A');
    if (b >= 'a' && b <= 'z')
        b = (char)(b - 'a' + 'A');
    return a == b;
}

const char *mgo_rt_env_name_refused(const char *name)
{
    for (size_t i = 0; i < sizeof REFUSED_ENV / sizeof REFUSED_ENV[0]; i++) {
        const char *pat = REFUSED_ENV[i].name, *s = name;
        while (*pat != '\0' && *pat != '*' && *s != '\0' && ieq(*pat, *s)) {
            pat++;
            s++;
        }
        if ((*pat == '*') || (*pat == '\0' && *s == '\0'))
            return REFUSED_ENV[i].rule;
    }
    return NULL;
}

/* The pointer of a compose target as an environment variable name. */
static const char *env_pointer(const char *ptr)
{
    return strncmp(ptr, "ENV.", 4) == 0 ? ptr + 4 : ptr; /* in case the codec left it */
}

static bool targets(const struct mgo_target *tg, const char *component)
{
    for (size_t c = 0; c < tg->components_len; c++)
        if (strcmp(tg->components[c], component) == 0)
            return true;
    return false;
}

mgo_err mgo_rt_env_check(const struct mgo_app_deployment *dep, const char *component, char *why,
                         size_t why_len)
{
    for (size_t p = 0; p < dep->parameters_len; p++) {
        const struct mgo_parameter *par = &dep->parameters[p];
        for (size_t t = 0; t < par->targets_len; t++) {
            const struct mgo_target *tg = &par->targets[t];
            if (!targets(tg, component))
                continue;
            const char *name = env_pointer(tg->pointer);
            const char *rule = mgo_rt_env_name_refused(name);
            if (rule != NULL) {
                snprintf(why, why_len,
                         "parameters.%s.targets[%zu].pointer: '%.100s' is refused: a deployment "
                         "may not set this variable (%s)",
                         par->name, t, name, rule);
                return MGO_ERR_INVALID;
            }
        }
    }
    return MGO_OK;
}

static bool helm_path_ok(const char *s)
{
    if (*s == '\0' || *s == '.')
        return false;
    for (; *s; s++) {
        if (*s == '=' || *s == ',' || (unsigned char)*s < 0x20)
            return false;
        if (*s == '.' && (s[1] == '.' || s[1] == '\0'))
            return false;
    }
    return true;
}

static const char *value_text(const struct mgo_value *v, struct mgo_arena *arena)
{
    switch (v->kind) {
    case MGO_V_STR:
        return v->as.str.ptr;
    case MGO_V_BOOL:
        return v->as.b ? "true" : "false";
    case MGO_V_UINT:
        return mgo_arena_printf(arena, "%llu", (unsigned long long)v->as.u);
    case MGO_V_INT:
        return mgo_arena_printf(arena, "%lld", (long long)v->as.i);
    case MGO_V_FLOAT: {
        if (v->text != NULL)
            return v->text;
        char buf[MGO_DOUBLE_STR_SIZE];
        mgo_format_double(v->as.f, buf);
        return mgo_arena_strdup(arena, buf);
    }
    case MGO_V_NULL:
        return "";
    default:
        return NULL;
    }
}

mgo_err mgo_rt_component_values(const struct mgo_app_deployment *dep, const char *component,
                                bool env_names, struct mgo_arena *arena, const char **out,
                                size_t max, size_t *n_out, char *why, size_t why_len)
{
    size_t n = 0;
    for (size_t p = 0; p < dep->parameters_len; p++) {
        const struct mgo_parameter *par = &dep->parameters[p];
        if (!par->has_value)
            continue;
        for (size_t t = 0; t < par->targets_len; t++) {
            const struct mgo_target *tg = &par->targets[t];
            if (!targets(tg, component))
                continue;
            const char *ptr = env_names ? env_pointer(tg->pointer) : tg->pointer;
            if (env_names ? !env_name_ok(ptr) : !helm_path_ok(ptr)) {
                snprintf(
                    why, why_len, "parameters.%s.targets[%zu].pointer: '%.100s' is not a valid %s",
                    par->name, t, ptr, env_names ? "environment variable name" : "values path");
                return MGO_ERR_INVALID;
            }
            const char *text = value_text(&par->value, arena);
            if (text == NULL) {
                snprintf(why, why_len, "parameters.%s.value: unsupported type %s", par->name,
                         mgo_value_kind_name(par->value.kind));
                return MGO_ERR_INVALID;
            }
            if (env_names && strpbrk(text, "\r\n") != NULL) {
                snprintf(why, why_len, "parameters.%s.value: line breaks are not allowed",
                         par->name);
                return MGO_ERR_INVALID;
            }
            if (env_names && mgo_rt_env_name_refused(ptr) != NULL)
                return mgo_rt_env_check(dep, component, why, why_len);
            if (n == max) {
                snprintf(why, why_len, "more than %zu values for component %s", max, component);
                return MGO_ERR_LIMIT;
            }
            const char *kv = mgo_arena_printf(arena, "%s=%s", ptr, text);
            if (kv == NULL)
                return MGO_ERR_NOMEM;
            /* a later target with the same pointer replaces an earlier one */
            size_t plen = strlen(ptr);
            size_t k = 0;
            while (k < n && !(strncmp(out[k], ptr, plen) == 0 && out[k][plen] == '='))
                k++;
            out[k] = kv;
            if (k == n)
                n++;
        }
    }
    *n_out = n;
    return MGO_OK;
}

static void fail_all(const struct mgo_app_deployment *dep, struct mgo_rt_result *results,
                     const char *code, const char *msg)
{
    for (size_t i = 0; i < dep->profile.components_len; i++)
        mgo_rt__set_error(&results[i], code, dep->profile.components[i].name, "%s", msg);
}

mgo_err mgo_rt_apply(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                     struct mgo_rt_result *results, mgo_rt_progress_fn progress, void *ctx)
{
    for (size_t i = 0; i < dep->profile.components_len; i++)
        memset(&results[i], 0, sizeof results[i]);
    switch (dep->profile.type) {
    case MGO_PROFILE_COMPOSE:
        return mgo_rt__compose_apply(s, dep, results, progress, ctx);
    case MGO_PROFILE_HELM:
        return mgo_rt__helm_apply(s, dep, results, progress, ctx);
    default:
        fail_all(dep, results, "UNSUPPORTED_TYPE", "deployment profile type not supported here");
        return MGO_ERR_RUNTIME;
    }
}

mgo_err mgo_rt_remove(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                      struct mgo_rt_result *results, mgo_rt_progress_fn progress, void *ctx)
{
    for (size_t i = 0; i < dep->profile.components_len; i++) {
        memset(&results[i], 0, sizeof results[i]);
        results[i].state = MGO_STATE_INSTALLED;
    }
    switch (dep->profile.type) {
    case MGO_PROFILE_COMPOSE:
        return mgo_rt__compose_remove(s, dep, results, progress, ctx);
    case MGO_PROFILE_HELM:
        return mgo_rt__helm_remove(s, dep, results, progress, ctx);
    default:
        for (size_t i = 0; i < dep->profile.components_len; i++)
            results[i].state = MGO_STATE_REMOVED; /* nothing was ever installed */
        return MGO_OK;
    }
}

mgo_err mgo_rt_probe(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                     struct mgo_rt_result *results, bool *healthy)
{
    for (size_t i = 0; i < dep->profile.components_len; i++)
        memset(&results[i], 0, sizeof results[i]);
    switch (dep->profile.type) {
    case MGO_PROFILE_COMPOSE:
        return mgo_rt__compose_probe(s, dep, results, healthy);
    case MGO_PROFILE_HELM:
        return mgo_rt__helm_probe(s, dep, results, healthy);
    default:
        *healthy = false;
        return MGO_ERR_RUNTIME;
    }
}

bool mgo_rt_available(const struct mgo_rt_settings *s, enum mgo_profile_type type)
{
    char cmd[256], path[1024];
    const char *words[8];
    const char *src = type == MGO_PROFILE_COMPOSE ? s->compose_command
                      : type == MGO_PROFILE_HELM  ? s->helm_command
                                                  : NULL;
    if (src == NULL)
        return false;
    snprintf(cmd, sizeof cmd, "%s", src);
    size_t n = mgo_exec_split(cmd, words, 8);
    return n > 0 && mgo_exec_which(words[0], path, sizeof path) == MGO_OK;
}
