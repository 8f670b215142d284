/* runtime_helm.c - the Helm runtime ("cluster"): one release per component, driven through
 * the helm CLI (helm upgrade --install / helm uninstall / helm status). Only the CLI
 * contract is tested here (tests/agent/fake-helm); no live cluster is. */
#include "runtime.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "mgo/log.h"

#define TAG "agent.helm"
#define MAX_CMD_WORDS 8u
#define MAX_ARGV (MAX_CMD_WORDS + 24u + 2u * MGO_RT_MAX_ENV)
#define STATUS_TIMEOUT_MS 60000u

struct argv_builder {
    const char *v[MAX_ARGV + 1];
    size_t n;
    char cmd[256];
};

static bool ab_init(struct argv_builder *ab, const struct mgo_rt_settings *s)
{
    snprintf(ab->cmd, sizeof ab->cmd, "%s", s->helm_command ? s->helm_command : "helm");
    ab->n = mgo_exec_split(ab->cmd, ab->v, MAX_CMD_WORDS);
    return ab->n > 0;
}

static void ab_add(struct argv_builder *ab, const char *arg)
{
    if (ab->n < MAX_ARGV)
        ab->v[ab->n++] = arg;
    ab->v[ab->n] = NULL;
}

static const char *ns_of(const struct mgo_app_deployment *dep)
{
    return dep->namespace_ != NULL && dep->namespace_[0] != '\0' ? dep->namespace_ : "default";
}

/* Helm release and namespace names: DNS labels. */
static bool dns_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 53 || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return false;
    return true;
}

static void add_kube_context(struct argv_builder *ab, const struct mgo_rt_settings *s)
{
    if (s->kube_context != NULL) {
        ab_add(ab, "--kube-context");
        ab_add(ab, s->kube_context);
    }
}

/* --wait when the component asks for it, and --timeout (its text kept in buf). */
static void add_wait_timeout(struct argv_builder *ab, const struct mgo_component *comp,
                             const struct mgo_rt_settings *s, char *buf, size_t buf_len)
{
    if (comp->wait)
        ab_add(ab, "--wait");
    uint32_t t = mgo_rt__timeout_s(s, comp);
    snprintf(buf, buf_len, "%um%us", t / 60u, t % 60u);
    ab_add(ab, "--timeout");
    ab_add(ab, buf);
}

static uint32_t exec_timeout_s(const struct mgo_component *comp, const struct mgo_rt_settings *s)
{
    uint32_t t = mgo_rt__timeout_s(s, comp);
    /* helm enforces --timeout itself; this only guards a hung CLI */
    return t + (t < 60u ? 5u : 30u);
}

static mgo_err run(const struct argv_builder *ab, uint32_t timeout_s,
                   const struct mgo_rt_settings *s, struct mgo_rt_result *res, const char *what,
                   const char *source, struct mgo_exec_result *ex)
{
    struct mgo_exec_opts o = {.timeout_ms = timeout_s * 1000u, .cancel = s->cancel};
    mgo_err err = mgo_exec_run(ab->v, &o, ex);
    if (err != MGO_OK || !ex->exited || ex->exit_code != 0) {
        mgo_rt__error_from_exec(res, what, source, ex);
        /* helm's own "context deadline exceeded" / "timed out waiting" is a timeout too */
        if (ex->exited && (strstr((const char *)(ex->err.data ? ex->err.data : (uint8_t *)""),
                                  "timed out waiting") != NULL ||
                           strstr((const char *)(ex->err.data ? ex->err.data : (uint8_t *)""),
                                  "context deadline exceeded") != NULL))
            snprintf(res->error.code, sizeof res->error.code, "TIMEOUT");
        return ex->timed_out ? MGO_ERR_TIMEOUT : err != MGO_OK ? err : MGO_ERR_RUNTIME;
    }
    return MGO_OK;
}

mgo_err mgo_rt__helm_apply(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                           struct mgo_rt_result *results, mgo_rt_progress_fn progress, void *ctx)
{
    size_t n = dep->profile.components_len;
    for (size_t i = 0; i < n; i++)
        results[i].state = MGO_STATE_PENDING;
    mgo_err err = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1024u * 1024u);
    const char *ns = ns_of(dep);
    for (size_t i = 0; i < n && err == MGO_OK; i++) {
        const struct mgo_component *comp = &dep->profile.components[i];
        struct mgo_rt_result *res = &results[i];
        res->state = MGO_STATE_INSTALLING;
        if (progress != NULL)
            progress(ctx, results, n);
        if (comp->name == NULL || !dns_label(comp->name) || !dns_label(ns)) {
            mgo_rt__set_error(res, "INVALID_COMPONENT", comp->name ? comp->name : "",
                              "release (component name) and namespace must be DNS labels "
                              "[a-z0-9-]{1,53}");
            err = MGO_ERR_INVALID;
            break;
        }
        if (comp->repository == NULL || comp->repository[0] == '\0' || comp->repository[0] == '-') {
            mgo_rt__set_error(res, "NO_PACKAGE", comp->name, "component has no chart repository");
            err = MGO_ERR_INVALID;
            break;
        }
        const char *vals[MGO_RT_MAX_ENV];
        size_t nvals = 0;
        char why[300];
        err = mgo_rt_component_values(dep, comp->name, false, &arena, vals, MGO_RT_MAX_ENV, &nvals,
                                      why, sizeof why);
        if (err != MGO_OK) {
            mgo_rt__set_error(res, "INVALID_PARAMETER", comp->name, "%s", why);
            break;
        }
        struct argv_builder ab;
        if (!ab_init(&ab, s)) {
            mgo_rt__set_error(res, "CONFIG", comp->name, "helm-command is empty");
            err = MGO_ERR_INVALID;
            break;
        }
        ab_add(&ab, "upgrade");
        ab_add(&ab, "--install");
        ab_add(&ab, comp->name);
        ab_add(&ab, comp->repository);
        if (comp->revision != NULL && comp->revision[0] != '\0') {
            ab_add(&ab, "--version");
            ab_add(&ab, comp->revision);
        }
        ab_add(&ab, "--namespace");
        ab_add(&ab, ns);
        ab_add(&ab, "--create-namespace");
        add_kube_context(&ab, s);
        /* strings with --set-string (no type guessing), others with --set; ',' and '\'
         * in values are escaped as helm's --set parser requires */
        for (size_t v = 0; v < nvals; v++) {
            const char *eq = strchr(vals[v], '=');
            size_t klen = (size_t)(eq - vals[v]);
            bool is_string = true;
            for (size_t p = 0; p < dep->parameters_len; p++)
                for (size_t t = 0; t < dep->parameters[p].targets_len; t++)
                    if (strncmp(dep->parameters[p].targets[t].pointer, vals[v], klen) == 0 &&
                        dep->parameters[p].targets[t].pointer[klen] == '\0')
                        is_string = dep->parameters[p].value.kind == MGO_V_STR;
            struct mgo_buf esc;
            mgo_buf_init(&esc, 64u * 1024u);
            mgo_err e = mgo_buf_append(&esc, vals[v], klen + 1);
            for (const char *c = eq + 1; *c && e == MGO_OK; c++)
                e = (*c == ',' || *c == '\\') ? mgo_buf_printf(&esc, "\\%c", *c)
                                              : mgo_buf_append(&esc, c, 1);
            const char *arg = e == MGO_OK ? mgo_arena_strdup(&arena, (const char *)esc.data) : NULL;
            mgo_buf_cleanup(&esc);
            if (arg == NULL) {
                mgo_rt__set_error(res, "INVALID_PARAMETER", comp->name, "value too large");
                err = MGO_ERR_LIMIT;
                break;
            }
            ab_add(&ab, is_string ? "--set-string" : "--set");
            ab_add(&ab, arg);
        }
        if (err != MGO_OK)
            break;
        char tbuf[32];
        add_wait_timeout(&ab, comp, s, tbuf, sizeof tbuf);
        struct mgo_exec_result ex;
        mgo_exec_result_init(&ex);
        MGO_LOGI(TAG, "helm upgrade --install %s %s (namespace %s)", comp->name, comp->repository,
                 ns);
        err = run(&ab, exec_timeout_s(comp, s), s, res, "helm upgrade --install", comp->name, &ex);
        mgo_exec_result_cleanup(&ex);
        if (err == MGO_OK) {
            res->state = MGO_STATE_INSTALLED;
            res->has_error = false;
        }
    }
    mgo_arena_cleanup(&arena);
    if (progress != NULL)
        progress(ctx, results, n);
    return err == MGO_OK ? MGO_OK : err == MGO_ERR_TIMEOUT ? MGO_ERR_TIMEOUT : MGO_ERR_RUNTIME;
}

mgo_err mgo_rt__helm_remove(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                            struct mgo_rt_result *results, mgo_rt_progress_fn progress, void *ctx)
{
    size_t n = dep->profile.components_len;
    mgo_err result = MGO_OK;
    const char *ns = ns_of(dep);
    for (size_t k = n; k > 0; k--) {
        size_t i = k - 1;
        const struct mgo_component *comp = &dep->profile.components[i];
        struct mgo_rt_result *res = &results[i];
        res->state = MGO_STATE_REMOVING;
        if (progress != NULL)
            progress(ctx, results, n);
        if (comp->name == NULL || !dns_label(comp->name) || !dns_label(ns)) {
            res->state = MGO_STATE_REMOVED; /* could never have been installed */
            continue;
        }
        struct argv_builder ab;
        if (!ab_init(&ab, s)) {
            mgo_rt__set_error(res, "CONFIG", comp->name, "helm-command is empty");
            result = MGO_ERR_INVALID;
            continue;
        }
        ab_add(&ab, "uninstall");
        ab_add(&ab, comp->name);
        ab_add(&ab, "--namespace");
        ab_add(&ab, ns);
        add_kube_context(&ab, s);
        char tbuf[32];
        add_wait_timeout(&ab, comp, s, tbuf, sizeof tbuf);
        struct mgo_exec_result ex;
        mgo_exec_result_init(&ex);
        mgo_err err = run(&ab, exec_timeout_s(comp, s), s, res, "helm uninstall", comp->name, &ex);
        /* an already absent release counts as removed */
        if (err != MGO_OK && ex.exited && ex.err.data != NULL &&
            strstr((const char *)ex.err.data, "not found") != NULL) {
            err = MGO_OK;
        }
        mgo_exec_result_cleanup(&ex);
        if (err != MGO_OK) {
            result = err;
            continue;
        }
        res->state = MGO_STATE_REMOVED;
        res->has_error = false;
    }
    if (progress != NULL)
        progress(ctx, results, n);
    return result == MGO_OK ? MGO_OK : MGO_ERR_RUNTIME;
}

mgo_err mgo_rt__helm_probe(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                           struct mgo_rt_result *results, bool *healthy)
{
    size_t n = dep->profile.components_len;
    const char *ns = ns_of(dep);
    *healthy = true;
    for (size_t i = 0; i < n; i++) {
        const struct mgo_component *comp = &dep->profile.components[i];
        struct argv_builder ab;
        if (comp->name == NULL || !ab_init(&ab, s)) {
            *healthy = false;
            continue;
        }
        ab_add(&ab, "status");
        ab_add(&ab, comp->name);
        ab_add(&ab, "--namespace");
        ab_add(&ab, ns);
        ab_add(&ab, "-o");
        ab_add(&ab, "json");
        add_kube_context(&ab, s); /* the probe asks the same cluster install used */
        struct mgo_exec_result ex;
        mgo_exec_result_init(&ex);
        mgo_err err =
            run(&ab, STATUS_TIMEOUT_MS / 1000u, s, &results[i], "helm status", comp->name, &ex);
        if (err == MGO_OK) {
            struct mgo_arena arena;
            mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
            struct mgo_problems probs;
            mgo_problems_init(&probs);
            struct mgo_value root;
            const struct mgo_value *st = NULL;
            if (mgo_value_from_yaml(ex.out.data, ex.out.len, &arena, &root, &probs) == MGO_OK)
                st = mgo_value_pointer(&root, "/info/status");
            if (st != NULL && st->kind == MGO_V_STR && strcmp(st->as.str.ptr, "deployed") == 0) {
                results[i].state = MGO_STATE_INSTALLED;
                results[i].has_error = false;
            } else {
                mgo_rt__set_error(&results[i], "NOT_DEPLOYED", comp->name,
                                  "helm status: release is %s",
                                  st && st->kind == MGO_V_STR ? st->as.str.ptr : "unknown");
            }
            mgo_arena_cleanup(&arena);
        }
        mgo_exec_result_cleanup(&ex);
        if (results[i].state != MGO_STATE_INSTALLED)
            *healthy = false;
    }
    return MGO_OK;
}
