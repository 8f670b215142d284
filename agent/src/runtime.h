/* runtime.h - the one small interface in front of the workload runtimes (private to agent/).
 *
 *   apply   install or update every component of a deployment, in list order, honouring
 *           wait and timeout; reports each component's outcome
 *   remove  uninstall every component, in reverse order
 *   probe   what is actually running (drift check)
 *
 * Compose ("standalone device"): one compose project per deployment (mgo_rt_project_name),
 * one compose file per component under WORK/<project>/<component>/.
 * Helm ("cluster"): one release per component (the component name) in the deployment's
 * namespace, driven through the helm CLI. */
#ifndef MGO_AGENT_RUNTIME_H
#define MGO_AGENT_RUNTIME_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/limits.h"
#include "mgo/margo.h"
#include "fetch.h"

#define MGO_RT_DEFAULT_TIMEOUT_S 600u
#define MGO_RT_MAX_ENV 300u

struct mgo_rt_error {
    char code[64];
    char source[MGO_MAX_NAME_LEN + 1];
    char message[512];
};

struct mgo_rt_result {
    enum mgo_state state;
    bool has_error;
    struct mgo_rt_error error;
};

struct mgo_rt_settings {
    const char *work_dir;          /* STATE_DIR/work */
    const char *compose_command;   /* "podman-compose", "docker compose", "podman compose" */
    const char *container_command; /* for probes: "podman" or "docker"; NULL = derived */
    const char *helm_command;      /* "helm" */
    const char *kube_context;      /* optional --kube-context */
    /* Margo OpenTelemetry variables injected into every workload (NULL = not set). */
    const char *otel_http_endpoint;
    const char *otel_grpc_endpoint;
    const char *otel_certificate;
    const char *otel_protocol;
    struct mgo_fetch_opts fetch;
    uint32_t default_timeout_s; /* when a component gives none; 0 = MGO_RT_DEFAULT_TIMEOUT_S */
    uint32_t wait_poll_ms;      /* how often "wait" re-probes; 0 = 1000 */
    /* Non-zero stops the job: the running command's process group gets SIGTERM then
     * SIGKILL (exec.h), a download is aborted (fetch.h), a wait ends. Set by another thread. */
    const atomic_int *cancel;
};

/* Called before each component starts (state INSTALLING / REMOVING) so the caller can report
 * progress; results[0..n) hold every component's current state. */
typedef void (*mgo_rt_progress_fn)(void *ctx, const struct mgo_rt_result *results, size_t n);

/* results must hold dep->profile.components_len entries. The return value is MGO_OK when
 * every component reached INSTALLED (apply) or REMOVED (remove); otherwise the failing
 * component carries state FAILED and an error {code, source, message}, later components
 * stay PENDING (apply) and the function returns MGO_ERR_RUNTIME (or MGO_ERR_TIMEOUT). */
mgo_err mgo_rt_apply(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                     struct mgo_rt_result *results, mgo_rt_progress_fn progress,
                     void *ctx) MGO_MUST_CHECK;
mgo_err mgo_rt_remove(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                      struct mgo_rt_result *results, mgo_rt_progress_fn progress,
                      void *ctx) MGO_MUST_CHECK;
/* Probe: MGO_OK with *healthy telling whether everything the deployment needs is running;
 * results get INSTALLED or FAILED (with error) per component. */
mgo_err mgo_rt_probe(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                     struct mgo_rt_result *results, bool *healthy) MGO_MUST_CHECK;

/* Is the runtime for this profile type usable here (its command found in PATH)? */
bool mgo_rt_available(const struct mgo_rt_settings *s, enum mgo_profile_type type);

/* "margo-" + the deployment id lowercased, other characters as '-' (compose rules). */
void mgo_rt_project_name(const char *deployment_id, char *out, size_t out_size);

/* Values a component receives: "POINTER=value" strings for the parameters whose targets
 * name the component (compose pointers are env names; helm pointers dotted paths).
 * Strings are allocated in arena. MGO_ERR_INVALID (with why) for a bad pointer, a refused
 * environment name (mgo_rt_env_check) or a line break in an environment value. */
mgo_err mgo_rt_component_values(const struct mgo_app_deployment *dep, const char *component,
                                bool env_names, struct mgo_arena *arena, const char **out,
                                size_t max, size_t *n_out, char *why,
                                size_t why_len) MGO_MUST_CHECK;

/* Environment variables a deployment may not set through a compose parameter (the shell's,
 * the dynamic loader's, the container tools' own settings; docs/security.md section 3): the
 * reason when name is refused (any case), NULL when it may be used. */
const char *mgo_rt_env_name_refused(const char *name);

/* MGO_ERR_INVALID, with why naming the parameter, the variable and the rule, when a parameter
 * targeting component sets a refused variable (mgo_rt_env_name_refused). Compose checks this
 * first to report PARAMETER_REFUSED; mgo_rt_component_values refuses them too. */
mgo_err mgo_rt_env_check(const struct mgo_app_deployment *dep, const char *component, char *why,
                         size_t why_len) MGO_MUST_CHECK;

/* Private to the runtime files. */
mgo_err mgo_rt__compose_apply(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                              struct mgo_rt_result *results, mgo_rt_progress_fn progress,
                              void *ctx) MGO_MUST_CHECK;
mgo_err mgo_rt__compose_remove(const struct mgo_rt_settings *s,
                               const struct mgo_app_deployment *dep, struct mgo_rt_result *results,
                               mgo_rt_progress_fn progress, void *ctx) MGO_MUST_CHECK;
mgo_err mgo_rt__compose_probe(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                              struct mgo_rt_result *results, bool *healthy) MGO_MUST_CHECK;
mgo_err mgo_rt__helm_apply(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                           struct mgo_rt_result *results, mgo_rt_progress_fn progress,
                           void *ctx) MGO_MUST_CHECK;
mgo_err mgo_rt__helm_remove(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                            struct mgo_rt_result *results, mgo_rt_progress_fn progress,
                            void *ctx) MGO_MUST_CHECK;
mgo_err mgo_rt__helm_probe(const struct mgo_rt_settings *s, const struct mgo_app_deployment *dep,
                           struct mgo_rt_result *results, bool *healthy) MGO_MUST_CHECK;
/* Seconds a component may take: its own timeout, else the settings' default, else
 * MGO_RT_DEFAULT_TIMEOUT_S. comp NULL: the default alone. */
uint32_t mgo_rt__timeout_s(const struct mgo_rt_settings *s, const struct mgo_component *comp);
void mgo_rt__set_error(struct mgo_rt_result *r, const char *code, const char *source,
                       const char *fmt, ...) MGO_PRINTF(4, 5);
/* Turns a finished command into the component's error (exit code + stderr tail). */
struct mgo_exec_result;
void mgo_rt__error_from_exec(struct mgo_rt_result *r, const char *what, const char *source,
                             const struct mgo_exec_result *ex);

#endif
