/* ctl_deploy.c - margoctl deploy, deployment list|show|update|rm, status, watch. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <termios.h>
#include <unistd.h>

#include "ctl_internal.h"
#include "jw.h"
#include "mgo/limits.h"
#include "mgo/ctl.h"
#include "mgo/limits.h"

#define MAX_ANSWERS 256

/* ---- answers ----------------------------------------------------------------------------- */

struct answers {
    size_t len;
    char *name[MAX_ANSWERS];
    char *json[MAX_ANSWERS]; /* the value as JSON text */
};

static void answers_cleanup(struct answers *a)
{
    for (size_t i = 0; i < a->len; i++) {
        free(a->name[i]);
        if (a->json[i])
            explicit_bzero(a->json[i], strlen(a->json[i])); /* answers may be secrets */
        free(a->json[i]);
    }
    a->len = 0;
}

static bool answers_has(const struct answers *a, const char *name)
{
    for (size_t i = 0; i < a->len; i++) {
        if (strcmp(a->name[i], name) == 0)
            return true;
    }
    return false;
}

static int answers_set(struct answers *a, const char *name, const char *json)
{
    for (size_t i = 0; i < a->len; i++) {
        if (strcmp(a->name[i], name) == 0) {
            char *j = strdup(json);
            if (!j)
                return -1;
            free(a->json[i]);
            a->json[i] = j;
            return 0;
        }
    }
    if (a->len == MAX_ANSWERS) {
        fprintf(stderr, "margoctl: at most %d parameters\n", MAX_ANSWERS);
        return -1;
    }
    a->name[a->len] = strdup(name);
    a->json[a->len] = strdup(json);
    if (!a->name[a->len] || !a->json[a->len])
        return -1;
    a->len++;
    return 0;
}

static const struct mgo_value *find_question(const struct mgo_value *app, const char *name)
{
    const struct mgo_value *qs = mgo_value_get(app, "questions");
    for (size_t i = 0; qs && qs->kind == MGO_V_ARRAY && i < qs->as.array.len; i++) {
        if (strcmp(mgo_ctl__str(&qs->as.array.items[i], "parameter"), name) == 0)
            return &qs->as.array.items[i];
    }
    return NULL;
}

/* A setting marked sensitive (x-margo-mqtt-extensions.sensitive in margo.yaml): its value
 * is never echoed, printed or put in an error message. */
static bool is_sensitive(const struct mgo_value *question)
{
    const struct mgo_value *v = question ? mgo_value_get(question, "sensitive") : NULL;
    return v && v->kind == MGO_V_BOOL && v->as.b;
}

/* Converts typed text to JSON by the question's dataType; error text in why (which quotes
 * the text unless hide). */
static int scalar_json(const char *type, const char *text, bool hide, struct mgo_jw *w, char *why,
                       size_t why_size)
{
    char *end = NULL;
    char shown[160];
    if (hide)
        snprintf(shown, sizeof shown, "the hidden value");
    else
        snprintf(shown, sizeof shown, "\"%.150s\"", text);
    errno = 0;
    if (strcmp(type, "integer") == 0) {
        long long v = strtoll(text, &end, 10);
        if (text[0] == '\0' || *end != '\0' || errno) {
            snprintf(why, why_size, "%s is not an integer", shown);
            return -1;
        }
        mgo_jw_i64(w, (int64_t)v);
    } else if (strcmp(type, "double") == 0) {
        double v = strtod(text, &end);
        if (text[0] == '\0' || *end != '\0' || errno || !isfinite(v)) {
            snprintf(why, why_size, "%s is not a number", shown);
            return -1;
        }
        mgo_jw_raw(w, text); /* keep the digits as typed (precision rules count them) */
    } else if (strcmp(type, "boolean") == 0) {
        if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0)
            mgo_jw_bool(w, true);
        else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0)
            mgo_jw_bool(w, false);
        else {
            snprintf(why, why_size, "%s is not true or false", shown);
            return -1;
        }
    } else {
        mgo_jw_str(w, text);
    }
    return 0;
}

static int text_to_json(const struct mgo_value *question, const char *text, struct mgo_buf *out,
                        char *why, size_t why_size)
{
    const struct mgo_value *schema = question ? mgo_value_get(question, "schema") : NULL;
    const char *type = schema ? mgo_ctl__str(schema, "dataType") : "";
    const struct mgo_value *multi = schema ? mgo_value_get(schema, "multiselect") : NULL;
    bool hide = is_sensitive(question);
    struct mgo_jw w;
    mgo_jw_init(&w, out);
    int rc = 0;
    if (strncmp(type, "array[", 6) == 0 || (multi && multi->kind == MGO_V_BOOL && multi->as.b)) {
        char elem[32];
        snprintf(elem, sizeof elem, "%s", strncmp(type, "array[", 6) == 0 ? type + 6 : type);
        char *br = strchr(elem, ']');
        if (br)
            *br = '\0';
        char *copy = strdup(text);
        if (!copy)
            return -1;
        mgo_jw_arr(&w);
        for (char *tok = copy; tok && rc == 0;) {
            char *comma = strchr(tok, ',');
            if (comma)
                *comma = '\0';
            rc = scalar_json(elem, tok, hide, &w, why, why_size);
            tok = comma ? comma + 1 : NULL;
        }
        mgo_jw_arr_end(&w);
        free(copy);
    } else {
        rc = scalar_json(type, text, hide, &w, why, why_size);
    }
    return rc == 0 && w.err == MGO_OK ? 0 : -1;
}

static int add_set(struct answers *a, const struct mgo_value *app, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
        fprintf(stderr, "margoctl: --set %s: expected NAME=VALUE\n", arg);
        return -1;
    }
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
    struct mgo_buf json;
    mgo_buf_init(&json, MGO_MAX_STRING_BYTES * 2);
    char why[256] = "";
    int rc = text_to_json(find_question(app, name), eq + 1, &json, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "margoctl: --set %s: %s\n", name, why[0] ? why : "cannot convert");
    else
        rc = answers_set(a, name, (const char *)json.data);
    mgo_buf_cleanup(&json);
    return rc;
}

static int add_values_file(struct answers *a, const char *path)
{
    struct mgo_buf b, json;
    mgo_buf_init(&b, MGO_MAX_FILE_BYTES);
    mgo_buf_init(&json, MGO_MAX_FILE_BYTES);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    int rc = -1;
    mgo_err err = mgo_buf_read_file(&b, path);
    if (err) {
        fprintf(stderr, "margoctl: --values %s: %s\n", path, mgo_strerror(err));
        goto cleanup;
    }
    if (mgo_value_from_yaml(b.data, b.len, &arena, &v, &p) != MGO_OK || v.kind != MGO_V_MAP) {
        char text[512] = "";
        mgo_problems_format(&p, text, sizeof text);
        fprintf(stderr, "margoctl: --values %s: must be a YAML/JSON map of name: value %s\n", path,
                text);
        goto cleanup;
    }
    for (size_t i = 0; i < v.as.map.len; i++) {
        mgo_buf_reset(&json);
        if (mgo_value_to_json(&v.as.map.items[i].value, false, &json) != MGO_OK ||
            answers_set(a, v.as.map.items[i].key, (const char *)json.data) != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    mgo_arena_cleanup(&arena);
    mgo_buf_cleanup(&b);
    mgo_buf_cleanup(&json);
    return rc;
}

static void rules_line(const struct mgo_value *schema, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; schema && schema->kind == MGO_V_MAP && i < schema->as.map.len; i++) {
        const struct mgo_member *m = &schema->as.map.items[i];
        if (strcmp(m->key, "name") == 0)
            continue;
        char v[200];
        mgo_ctl__text(&m->value, v, sizeof v);
        int n = snprintf(out + used, size - used, "%s%s: %s", used ? ", " : "", m->key, v);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* Hidden input: a sensitive answer is read with the terminal's echo off. The signals that
 * end margoctl are blocked except while waiting in pselect, whose handler only sets a flag;
 * so a Ctrl-C at any moment ends the wait, the terminal is restored, and the signal is
 * raised again with its previous action. */
static const int HIDE_SIGNALS[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define HIDE_SIGNALS_LEN (sizeof HIDE_SIGNALS / sizeof HIDE_SIGNALS[0])

static volatile sig_atomic_t g_hidden_signal;

static void on_hidden_signal(int sig)
{
    g_hidden_signal = sig;
}

/* Appends n bytes to *line (capacity *cap); grows by copying so that no copy of the text
 * is left behind in freed memory. */
static int hidden_append(char **line, size_t *cap, size_t *len, const char *src, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t want = *cap ? *cap : 128;
        while (want < *len + n + 1)
            want *= 2;
        if (want > MGO_MAX_STRING_BYTES + 1)
            return -1;
        char *bigger = malloc(want);
        if (!bigger)
            return -1;
        if (*line) {
            memcpy(bigger, *line, *len);
            explicit_bzero(*line, *cap);
            free(*line);
        }
        *line = bigger;
        *cap = want;
    }
    memcpy(*line + *len, src, n);
    *len += n;
    (*line)[*len] = '\0';
    return 0;
}

/* Prints prompt and reads one line with echo off. Returns its length (newline included, as
 * getline), or -1 on end of input, error, an over-long line or a signal. */
static ssize_t read_hidden(const char *prompt, char **line, size_t *cap)
{
    struct termios saved, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &saved) == 0;
    sigset_t block, old_mask;
    sigemptyset(&block);
    for (size_t i = 0; i < HIDE_SIGNALS_LEN; i++)
        sigaddset(&block, HIDE_SIGNALS[i]);
    sigprocmask(SIG_BLOCK, &block, &old_mask);
    struct sigaction sa, old[HIDE_SIGNALS_LEN];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hidden_signal;
    sigemptyset(&sa.sa_mask);
    g_hidden_signal = 0;
    for (size_t i = 0; i < HIDE_SIGNALS_LEN; i++)
        sigaction(HIDE_SIGNALS[i], &sa, &old[i]);
    if (tty) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        /* TCSANOW: type-ahead already queued is kept, not flushed */
        tty = tcsetattr(STDIN_FILENO, TCSANOW, &quiet) == 0;
    }
    fputs(prompt, stderr);
    fflush(stderr);
    size_t len = 0;
    bool eol = false, failed = false;
    while (!eol && !failed && !g_hidden_signal) {
        fd_set in;
        FD_ZERO(&in);
        FD_SET(STDIN_FILENO, &in);
        int ready = pselect(STDIN_FILENO + 1, &in, NULL, NULL, NULL, &old_mask);
        if (ready < 0) {
            failed = errno != EINTR;
            continue;
        }
        char chunk[256];
        ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            failed = true; /* end of input */
            break;
        }
        char *nl = memchr(chunk, '\n', (size_t)n);
        size_t take = nl ? (size_t)(nl - chunk) + 1 : (size_t)n;
        eol = nl != NULL;
        if (hidden_append(line, cap, &len, chunk, take) != 0)
            failed = true;
        explicit_bzero(chunk, sizeof chunk);
    }
    if (tty)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    fputc('\n', stderr); /* the Enter that was not echoed */
    for (size_t i = 0; i < HIDE_SIGNALS_LEN; i++)
        sigaction(HIDE_SIGNALS[i], &old[i], NULL);
    int sig = g_hidden_signal;
    sigprocmask(SIG_SETMASK, &old_mask, NULL); /* a pending signal now takes its old action */
    if (sig)
        raise(sig);
    if (failed || sig)
        return -1;
    return (ssize_t)len;
}

/* Asks every unanswered question on the terminal. */
static int ask_questions(struct answers *a, const struct mgo_value *app)
{
    const struct mgo_value *qs = mgo_value_get(app, "questions");
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; qs && qs->kind == MGO_V_ARRAY && i < qs->as.array.len; i++) {
        const struct mgo_value *q = &qs->as.array.items[i];
        const char *param = mgo_ctl__str(q, "parameter");
        if (answers_has(a, param))
            continue;
        char rules[512], def[256];
        bool hide = is_sensitive(q);
        const struct mgo_value *defv = mgo_value_get(q, "default");
        bool has_def = defv && defv->kind != MGO_V_NULL;
        rules_line(mgo_value_get(q, "schema"), rules, sizeof rules);
        mgo_ctl__text(defv, def, sizeof def);
        fprintf(stderr, "\n%s: %s (%s)%s\n", mgo_ctl__str(q, "section"), mgo_ctl__str(q, "name"),
                param, hide ? " [sensitive]" : "");
        if (mgo_ctl__str(q, "description")[0])
            fprintf(stderr, "  %s\n", mgo_ctl__str(q, "description"));
        fprintf(stderr, "  rules: %s\n", rules);
        for (;;) {
            ssize_t n;
            if (hide) {
                n = read_hidden(has_def ? "  value (hidden; Enter keeps the default): "
                                        : "  value (hidden; Enter leaves it unset): ",
                                &line, &cap);
            } else {
                fprintf(stderr, "  value [%s]: ", def);
                n = getline(&line, &cap, stdin);
            }
            if (n < 0) {
                fprintf(stderr, "\n");
                rc = -1;
                goto done;
            }
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
            if (n == 0)
                break; /* keep the default (or leave empty) */
            struct mgo_buf json;
            mgo_buf_init(&json, MGO_MAX_STRING_BYTES * 2);
            char why[256] = "";
            int ok = text_to_json(q, line, &json, why, sizeof why);
            if (ok == 0)
                ok = answers_set(a, param, (const char *)json.data);
            if (hide) {
                if (json.data)
                    explicit_bzero(json.data, json.cap);
                explicit_bzero(line, cap);
            }
            mgo_buf_cleanup(&json);
            if (ok == 0)
                break;
            fprintf(stderr, "  %s; try again\n", why);
        }
    }
done:
    if (line)
        explicit_bzero(line, cap);
    free(line);
    return rc;
}

static void write_answers(struct mgo_jw *w, const struct answers *a)
{
    mgo_jw_key(w, "parameters");
    mgo_jw_obj(w);
    for (size_t i = 0; i < a->len; i++) {
        mgo_jw_key(w, a->name[i]);
        mgo_jw_raw(w, a->json[i]);
    }
    mgo_jw_obj_end(w);
}

static int fetch_app(const struct mgo_ctl_conn *c, const char *app, const char *version,
                     struct mgo_ctl_reply *r)
{
    char path[1024], esc[512], vesc[256];
    mgo_ctl__escape(app, esc, sizeof esc);
    if (version) {
        mgo_ctl__escape(version, vesc, sizeof vesc);
        snprintf(path, sizeof path, "/api/v1/apps/%s?version=%s", esc, vesc);
    } else {
        snprintf(path, sizeof path, "/api/v1/apps/%s", esc);
    }
    if (mgo_ctl__request(c, "GET", path, NULL, NULL, 0, r) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (r->status != 200)
        return mgo_ctl__print_problem(c, r);
    return 0;
}

static void print_deployments(const struct mgo_ctl_conn *c, const struct mgo_ctl_reply *r,
                              const struct mgo_value *list)
{
    if (mgo_ctl__print_data(c, r))
        return;
    struct mgo_ctl_table t;
    mgo_ctl__table_init(&t, 11);
    mgo_ctl__table_columns(&t, c, 7); /* wide: PROFILE STATE-AT CREATED UPDATED */
    const char *head[11] = {"ID",       "DEVICE",  "APP",      "VERSION", "DESIRED", "STATE",
                            "MANIFEST", "PROFILE", "STATE AT", "CREATED", "UPDATED"};
    mgo_ctl__table_add(&t, head);
    for (size_t i = 0; list && list->kind == MGO_V_ARRAY && i < list->as.array.len; i++) {
        const struct mgo_value *d = &list->as.array.items[i];
        char state[32], mv[32], at[64], created[64], updated[64];
        mgo_ctl__text(mgo_value_get(d, "state"), state, sizeof state);
        mgo_ctl__text(mgo_value_get(d, "manifestVersion"), mv, sizeof mv);
        mgo_ctl__text(mgo_value_get(d, "stateAt"), at, sizeof at);
        mgo_ctl__text(mgo_value_get(d, "createdAt"), created, sizeof created);
        mgo_ctl__text(mgo_value_get(d, "updatedAt"), updated, sizeof updated);
        const char *row[11] = {mgo_ctl__str(d, "id"),
                               mgo_ctl__str(d, "device"),
                               mgo_ctl__str(d, "app"),
                               mgo_ctl__str(d, "version"),
                               mgo_ctl__str(d, "desired"),
                               state,
                               mv,
                               mgo_ctl__str(d, "profileType"),
                               at,
                               created,
                               updated};
        mgo_ctl__table_add(&t, row);
    }
    mgo_ctl__table_print(&t, stdout);
    mgo_ctl__table_cleanup(&t);
}

/* Options shared by deploy and deployment update. */
struct change_opts {
    const char *version;
    const char *values;
    const char *sets[MAX_ANSWERS];
    size_t sets_len;
    const char *devices[MGO_MAX_DEPLOY_DEVICES];
    size_t devices_len;
    bool no_prompt;
};

static int parse_change_opts(int *argc, char **argv, struct change_opts *o, bool allow_devices)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        const char *const names[4] = {"--version", "--values", "--set", "--device"};
        int which = -1;
        const char *val = NULL;
        for (int k = 0; k < 4; k++) {
            size_t n = strlen(names[k]);
            if (strcmp(a, names[k]) == 0) {
                which = k;
                if (i + 1 >= *argc) {
                    fprintf(stderr, "margoctl: %s needs a value\n", a);
                    return -1;
                }
                val = argv[++i];
            } else if (strncmp(a, names[k], n) == 0 && a[n] == '=') {
                which = k;
                val = a + n + 1;
            }
            if (which >= 0)
                break;
        }
        if (which == 0) {
            o->version = val;
        } else if (which == 1) {
            o->values = val;
        } else if (which == 2) {
            if (o->sets_len == MAX_ANSWERS)
                return -1;
            o->sets[o->sets_len++] = val;
        } else if (which == 3 && allow_devices) {
            if (o->devices_len == MGO_MAX_DEPLOY_DEVICES)
                return -1;
            o->devices[o->devices_len++] = val;
        } else if (strcmp(a, "--no-prompt") == 0) {
            o->no_prompt = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "margoctl: unknown option %s\n", a);
            return -1;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    return 0;
}

static int collect_answers(const struct change_opts *o, const struct mgo_value *app,
                           struct answers *a)
{
    if (o->values && add_values_file(a, o->values) != 0)
        return -1;
    for (size_t i = 0; i < o->sets_len; i++) {
        if (add_set(a, app, o->sets[i]) != 0)
            return -1;
    }
    if (!o->no_prompt && isatty(STDIN_FILENO) && isatty(STDERR_FILENO))
        return ask_questions(a, app);
    return 0;
}

static const char DEPLOY_USAGE[] =
    "usage: margoctl deploy APP --device D [--device D...] [--version V]\n"
    "                       [--set NAME=VALUE...] [--values FILE] [--no-prompt]\n"
    "  Deploys APP to every device with the given answers to its configuration questions.\n"
    "  On a terminal, unanswered questions are asked (Enter keeps the default).\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

int mgo_ctl_deploy(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    struct change_opts o = {0};
    int bad = parse_change_opts(&argc, argv, &o, true);
    if (help == 1) {
        fputs(DEPLOY_USAGE, stdout);
        return 0;
    }
    if (help < 0 || bad || argc != 1 || o.devices_len == 0) {
        if (o.devices_len == 0 && !bad && help >= 0)
            fprintf(stderr, "margoctl deploy: at least one --device is required\n");
        fputs(DEPLOY_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    struct mgo_ctl_reply app, r;
    memset(&r, 0, sizeof r);
    struct answers a = {0};
    struct mgo_buf body;
    mgo_buf_init(&body, 4u * MGO_MAX_FILE_BYTES);
    int rc = fetch_app(&c, argv[0], o.version, &app);
    bool have_r = false;
    if (rc != 0)
        goto cleanup;
    if (collect_answers(&o, &app.tree, &a) != 0) {
        rc = MGO_CTL_EXIT_FAIL;
        goto cleanup;
    }
    struct mgo_jw w;
    mgo_jw_init(&w, &body);
    mgo_jw_obj(&w);
    mgo_jw_kstr(&w, "app", argv[0]);
    if (o.version)
        mgo_jw_kstr(&w, "version", o.version);
    mgo_jw_key(&w, "devices");
    mgo_jw_arr(&w);
    for (size_t i = 0; i < o.devices_len; i++)
        mgo_jw_str(&w, o.devices[i]);
    mgo_jw_arr_end(&w);
    write_answers(&w, &a);
    mgo_jw_obj_end(&w);
    if (w.err) {
        rc = MGO_CTL_EXIT_FAIL;
        goto cleanup;
    }
    have_r = true;
    if (mgo_ctl__request(&c, "POST", "/api/v1/deployments", "application/json", body.data, body.len,
                         &r) != 0) {
        rc = MGO_CTL_EXIT_FAIL;
        goto cleanup;
    }
    if (r.status != 201) {
        rc = mgo_ctl__print_problem(&c, &r);
        goto cleanup;
    }
    print_deployments(&c, &r, mgo_value_get(&r.tree, "deployments"));
cleanup:
    if (have_r)
        mgo_ctl__reply_cleanup(&r);
    mgo_ctl__reply_cleanup(&app);
    answers_cleanup(&a);
    mgo_buf_cleanup(&body);
    return rc;
}

/* ---- deployment ---------------------------------------------------------------------- */

static const char DEPLOYMENT_USAGE[] =
    "usage: margoctl deployment list [--device D] [--app APP] [--all]\n"
    "       margoctl deployment show ID\n"
    "       margoctl deployment update ID [--version V] [--set NAME=VALUE...] [--values FILE]\n"
    "                                     [--no-prompt]\n"
    "       margoctl deployment rm ID\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

static void print_deployment(const struct mgo_ctl_conn *c, const struct mgo_ctl_reply *r)
{
    if (mgo_ctl__print_data(c, r))
        return;
    const struct mgo_value *d = &r->tree;
    char state[32], mv[32], params[1024];
    mgo_ctl__text(mgo_value_get(d, "state"), state, sizeof state);
    mgo_ctl__text(mgo_value_get(d, "manifestVersion"), mv, sizeof mv);
    mgo_ctl__text(mgo_value_get(d, "parameters"), params, sizeof params);
    printf("ID:          %s\nDEVICE:      %s\nAPP:         %s %s (%s)\nDESIRED:     %s\n"
           "STATE:       %s\nMANIFEST:    %s\nDIGEST:      %s\nPARAMETERS:  %s\n",
           mgo_ctl__str(d, "id"), mgo_ctl__str(d, "device"), mgo_ctl__str(d, "app"),
           mgo_ctl__str(d, "version"), mgo_ctl__str(d, "profileType"), mgo_ctl__str(d, "desired"),
           state, mv, mgo_ctl__str(d, "digest"), params);
    const struct mgo_value *st = mgo_value_get(d, "status");
    const struct mgo_value *comps = st ? mgo_value_get(st, "components") : NULL;
    if (comps && comps->kind == MGO_V_ARRAY && comps->as.array.len) {
        printf("\n");
        struct mgo_ctl_table t;
        mgo_ctl__table_init(&t, 3);
        const char *head[3] = {"COMPONENT", "STATE", "ERROR"};
        mgo_ctl__table_add(&t, head);
        for (size_t i = 0; i < comps->as.array.len; i++) {
            const struct mgo_value *cp = &comps->as.array.items[i];
            const struct mgo_value *e = mgo_value_get(cp, "error");
            char err[512] = "-";
            if (e)
                snprintf(err, sizeof err, "%s %s", mgo_ctl__str(e, "code"),
                         mgo_ctl__str(e, "message"));
            const char *row[3] = {mgo_ctl__str(cp, "name"), mgo_ctl__str(cp, "state"), err};
            mgo_ctl__table_add(&t, row);
        }
        mgo_ctl__table_print(&t, stdout);
        mgo_ctl__table_cleanup(&t);
    }
    const struct mgo_value *h = mgo_value_get(d, "history");
    if (h && h->kind == MGO_V_ARRAY && h->as.array.len) {
        printf("\n");
        struct mgo_ctl_table t;
        mgo_ctl__table_init(&t, 3);
        const char *head[3] = {"RECEIVED", "STATE", "BOOT/SEQ"};
        mgo_ctl__table_add(&t, head);
        for (size_t i = 0; i < h->as.array.len; i++) {
            const struct mgo_value *e = &h->as.array.items[i];
            char boot[32], seq[32], pos[72];
            mgo_ctl__text(mgo_value_get(e, "boot"), boot, sizeof boot);
            mgo_ctl__text(mgo_value_get(e, "seq"), seq, sizeof seq);
            snprintf(pos, sizeof pos, "%s/%s", boot, seq);
            const char *row[3] = {mgo_ctl__str(e, "receivedAt"), mgo_ctl__str(e, "state"), pos};
            mgo_ctl__table_add(&t, row);
        }
        mgo_ctl__table_print(&t, stdout);
        mgo_ctl__table_cleanup(&t);
    }
}

static int deployment_simple(struct mgo_ctl_conn *c, const char *method, const char *id, long want)
{
    char path[512], esc[256];
    mgo_ctl__escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/deployments/%s", esc);
    struct mgo_ctl_reply r;
    int rc = MGO_CTL_EXIT_FAIL;
    if (mgo_ctl__request(c, method, path, NULL, NULL, 0, &r) == 0) {
        if (r.status != want) {
            rc = mgo_ctl__print_problem(c, &r);
        } else {
            rc = 0;
            if (strcmp(method, "DELETE") == 0 && c->output <= MGO_CTL_OUT_WIDE)
                printf("removing %s from %s (watch it with: margoctl watch %s)\n", id,
                       mgo_ctl__str(&r.tree, "device"), id);
            else
                print_deployment(c, &r);
        }
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

static int deployment_update(struct mgo_ctl_conn *c, const char *id, const struct change_opts *o)
{
    char path[512], esc[256];
    mgo_ctl__escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/deployments/%s", esc);
    struct mgo_ctl_reply cur, app, r;
    bool have_app = false, have_r = false;
    struct answers a = {0};
    struct mgo_buf body;
    mgo_buf_init(&body, 4u * MGO_MAX_FILE_BYTES);
    int rc = MGO_CTL_EXIT_FAIL;
    if (mgo_ctl__request(c, "GET", path, NULL, NULL, 0, &cur) != 0)
        goto cleanup;
    if (cur.status != 200) {
        rc = mgo_ctl__print_problem(c, &cur);
        goto cleanup;
    }
    have_app = true;
    rc = fetch_app(c, mgo_ctl__str(&cur.tree, "app"),
                   o->version ? o->version : mgo_ctl__str(&cur.tree, "version"), &app);
    if (rc != 0)
        goto cleanup;
    rc = MGO_CTL_EXIT_FAIL;
    struct change_opts quiet = *o;
    quiet.no_prompt = true; /* an update changes only what is given */
    if (collect_answers(&quiet, &app.tree, &a) != 0)
        goto cleanup;
    struct mgo_jw w;
    mgo_jw_init(&w, &body);
    mgo_jw_obj(&w);
    if (o->version)
        mgo_jw_kstr(&w, "version", o->version);
    write_answers(&w, &a);
    mgo_jw_obj_end(&w);
    have_r = true;
    if (w.err || mgo_ctl__request(c, "PATCH", path, "application/json", body.data, body.len, &r))
        goto cleanup;
    if (r.status != 200) {
        rc = mgo_ctl__print_problem(c, &r);
        goto cleanup;
    }
    print_deployment(c, &r);
    rc = 0;
cleanup:
    if (have_r)
        mgo_ctl__reply_cleanup(&r);
    if (have_app)
        mgo_ctl__reply_cleanup(&app);
    mgo_ctl__reply_cleanup(&cur);
    answers_cleanup(&a);
    mgo_buf_cleanup(&body);
    return rc;
}

int mgo_ctl_deployment(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    const char *device = NULL, *app = NULL;
    bool all = false, bad = false;
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--device") == 0 || strcmp(argv[i], "--app") == 0) && argc > 0 &&
            argv[0] && strcmp(argv[0], "list") == 0) {
            if (i + 1 >= argc) {
                bad = true;
                break;
            }
            if (argv[i][2] == 'd')
                device = argv[++i];
            else
                app = argv[++i];
        } else if (strcmp(argv[i], "--all") == 0) {
            all = true;
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    struct change_opts o = {0};
    if (!bad && parse_change_opts(&argc, argv, &o, false) != 0)
        bad = true;
    if (help == 1) {
        fputs(DEPLOYMENT_USAGE, stdout);
        return 0;
    }
    if (help < 0 || bad || argc < 1) {
        fputs(DEPLOYMENT_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    const char *sub = argv[0];
    bool list = strcmp(sub, "list") == 0;
    if ((list && argc != 1) || (!list && argc != 2)) {
        fputs(DEPLOYMENT_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (list) {
        char path[1024] = "/api/v1/deployments?";
        char esc[512];
        size_t used = strlen(path);
        if (device) {
            mgo_ctl__escape(device, esc, sizeof esc);
            used += (size_t)snprintf(path + used, sizeof path - used, "device=%s&", esc);
        }
        if (app && used < sizeof path) {
            mgo_ctl__escape(app, esc, sizeof esc);
            used += (size_t)snprintf(path + used, sizeof path - used, "app=%s&", esc);
        }
        if (all && used < sizeof path)
            snprintf(path + used, sizeof path - used, "all=true");
        struct mgo_ctl_reply r;
        int rc = MGO_CTL_EXIT_FAIL;
        if (mgo_ctl__request(&c, "GET", path, NULL, NULL, 0, &r) == 0) {
            if (r.status != 200) {
                rc = mgo_ctl__print_problem(&c, &r);
            } else {
                print_deployments(&c, &r, mgo_value_get(&r.tree, "deployments"));
                rc = 0;
            }
        }
        mgo_ctl__reply_cleanup(&r);
        return rc;
    }
    if (strcmp(sub, "show") == 0)
        return deployment_simple(&c, "GET", argv[1], 200);
    if (strcmp(sub, "rm") == 0)
        return deployment_simple(&c, "DELETE", argv[1], 202);
    if (strcmp(sub, "update") == 0) {
        if (!o.version && !o.values && o.sets_len == 0) {
            fprintf(stderr, "margoctl deployment update: give --version, --set or --values\n");
            return MGO_CTL_EXIT_USAGE;
        }
        return deployment_update(&c, argv[1], &o);
    }
    fputs(DEPLOYMENT_USAGE, stderr);
    return MGO_CTL_EXIT_USAGE;
}

/* ---- status ---------------------------------------------------------------------------- */

static const char STATUS_USAGE[] =
    "usage: margoctl status [--device D]\n"
    "  The last reported state of every deployment.\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

int mgo_ctl_status(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    const char *device = NULL;
    bool bad = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else
            bad = true;
    }
    if (help == 1) {
        fputs(STATUS_USAGE, stdout);
        return 0;
    }
    if (help < 0 || bad) {
        fputs(STATUS_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    char path[512] = "/api/v1/status";
    if (device) {
        char esc[256];
        mgo_ctl__escape(device, esc, sizeof esc);
        snprintf(path, sizeof path, "/api/v1/status?device=%s", esc);
    }
    struct mgo_ctl_reply r;
    int rc = MGO_CTL_EXIT_FAIL;
    if (mgo_ctl__request(&c, "GET", path, NULL, NULL, 0, &r) == 0) {
        if (r.status != 200) {
            rc = mgo_ctl__print_problem(&c, &r);
        } else if (mgo_ctl__print_data(&c, &r)) {
            rc = 0;
        } else {
            struct mgo_ctl_table t;
            mgo_ctl__table_init(&t, 6);
            mgo_ctl__table_columns(&t, &c, 5); /* wide: BOOT/SEQ */
            const char *head[6] = {"DEPLOYMENT", "DEVICE", "STATE",
                                   "RECEIVED",   "ERROR",  "BOOT/SEQ"};
            mgo_ctl__table_add(&t, head);
            const struct mgo_value *l = mgo_value_get(&r.tree, "status");
            for (size_t i = 0; l && l->kind == MGO_V_ARRAY && i < l->as.array.len; i++) {
                const struct mgo_value *s = &l->as.array.items[i];
                const struct mgo_value *st = mgo_value_get(s, "status");
                const struct mgo_value *e = st ? mgo_value_pointer(st, "/status/error") : NULL;
                char err[512] = "-";
                if (e)
                    snprintf(err, sizeof err, "%s %s", mgo_ctl__str(e, "code"),
                             mgo_ctl__str(e, "message"));
                char boot[32], seq[32], pos[72];
                mgo_ctl__text(mgo_value_get(s, "boot"), boot, sizeof boot);
                mgo_ctl__text(mgo_value_get(s, "seq"), seq, sizeof seq);
                snprintf(pos, sizeof pos, "%s/%s", boot, seq);
                const char *row[6] = {mgo_ctl__str(s, "deploymentId"),
                                      mgo_ctl__str(s, "deviceId"),
                                      mgo_ctl__str(s, "state"),
                                      mgo_ctl__str(s, "receivedAt"),
                                      err,
                                      pos};
                mgo_ctl__table_add(&t, row);
            }
            mgo_ctl__table_print(&t, stdout);
            mgo_ctl__table_cleanup(&t);
            rc = 0;
        }
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

/* ---- watch ------------------------------------------------------------------------------ */

static const char WATCH_USAGE[] =
    "usage: margoctl watch DEPLOYMENT... [--timeout SECONDS]\n"
    "  Follows the deployments live. Exits 0 when every one is installed (or removed, when\n"
    "  it is being removed), 1 as soon as one fails, 3 when the timeout passes first.\n"
    "options: -o, --output table|json (json: one event per line)  --json (= -o json)\n"
    "         --url URL (MARGO_URL)  --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

#define MAX_WATCH 16

struct watched {
    char id[64];
    char desired[16];
    uint64_t manifest_version;
    bool done;
};

struct watch_ctx {
    const struct mgo_ctl_conn *c;
    struct watched items[MAX_WATCH];
    size_t len;
    bool failed;
};

static bool on_watch_event(const char *event, const char *data, void *vctx)
{
    struct watch_ctx *ctx = vctx;
    if (strcmp(event, "status") != 0)
        return true;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES * 2);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    bool go_on = true;
    if (mgo_value_from_yaml(data, strlen(data), &arena, &v, &p) != MGO_OK)
        goto done;
    const char *id = mgo_ctl__str(&v, "deploymentId");
    const char *state = mgo_ctl__str(&v, "state");
    const char *desired = mgo_ctl__str(&v, "desired");
    const struct mgo_value *mv = mgo_value_get(&v, "manifestVersion");
    const struct mgo_value *adopted = mgo_value_pointer(&v, "/status/adoptedManifestVersion");
    struct watched *w = NULL;
    for (size_t i = 0; i < ctx->len; i++) {
        if (strcmp(ctx->items[i].id, id) == 0)
            w = &ctx->items[i];
    }
    if (!w)
        goto done;
    if (desired[0])
        snprintf(w->desired, sizeof w->desired, "%s", desired);
    if (mv && mv->kind == MGO_V_UINT && mv->as.u > w->manifest_version)
        w->manifest_version = mv->as.u;
    /* A report about an older revision does not settle anything: while present, one adopted
     * from a manifest before the deployment's current one (before an update); while being
     * removed, one adopted from the deployment's own manifest or earlier, since removal
     * reports carry the manifest that removed it (protocol.md 7.4) - so an old "failed"
     * report does not end the watch of a removal. */
    bool have_adopted = adopted && adopted->kind == MGO_V_UINT;
    bool current;
    if (strcmp(w->desired, "present") == 0)
        current = !(have_adopted && adopted->as.u < w->manifest_version);
    else
        current = !have_adopted || adopted->as.u > w->manifest_version ||
                  strcmp(state, "removing") == 0 || strcmp(state, "removed") == 0;
    if (ctx->c->json) {
        printf("%s\n", data);
    } else {
        const struct mgo_value *e = mgo_value_pointer(&v, "/status/status/error");
        printf("%s  %-20s %s  %s%s%s%s%s\n", mgo_ctl__str(&v, "receivedAt"),
               mgo_ctl__str(&v, "deviceId"), id, state, current ? "" : " (older revision)",
               e ? "  " : "", e ? mgo_ctl__str(e, "code") : "", e ? "" : "");
        if (e && mgo_ctl__str(e, "message")[0])
            printf("    %s\n", mgo_ctl__str(e, "message"));
    }
    fflush(stdout);
    if (!current)
        goto done;
    bool removing = strcmp(w->desired, "present") != 0;
    if (strcmp(state, "failed") == 0) {
        ctx->failed = true;
        go_on = false;
        goto done;
    }
    w->done = removing ? strcmp(state, "removed") == 0 : strcmp(state, "installed") == 0;
    go_on = false;
    for (size_t i = 0; i < ctx->len; i++)
        go_on = go_on || !ctx->items[i].done;
done:
    mgo_arena_cleanup(&arena);
    return go_on;
}

int mgo_ctl_watch(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    long timeout_s = 0;
    bool bad = false;
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 || strncmp(argv[i], "--timeout=", 10) == 0) {
            const char *v = argv[i][9] == '=' ? argv[i] + 10 : (i + 1 < argc ? argv[++i] : "");
            char *end = NULL;
            timeout_s = strtol(v, &end, 10);
            if (v[0] == '\0' || *end != '\0' || timeout_s <= 0 || timeout_s > 86400 * 7)
                bad = true;
        } else if (argv[i][0] == '-') {
            bad = true;
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    if (help == 1) {
        fputs(WATCH_USAGE, stdout);
        return 0;
    }
    if (help < 0 || bad || argc < 1 || argc > MAX_WATCH) {
        fputs(WATCH_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (c.output == MGO_CTL_OUT_WIDE || c.output == MGO_CTL_OUT_YAML) {
        fprintf(stderr, "margoctl watch: --output must be table or json (one event per line)\n");
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    struct watch_ctx ctx = {.c = &c};
    char path[4096] = "/api/v1/events?";
    size_t used = strlen(path);
    for (int i = 0; i < argc; i++) {
        struct watched *w = &ctx.items[ctx.len++];
        snprintf(w->id, sizeof w->id, "%s", argv[i]);
        char dpath[512], esc[256];
        mgo_ctl__escape(argv[i], esc, sizeof esc);
        snprintf(dpath, sizeof dpath, "/api/v1/deployments/%s", esc);
        struct mgo_ctl_reply r;
        if (mgo_ctl__request(&c, "GET", dpath, NULL, NULL, 0, &r) != 0) {
            mgo_ctl__reply_cleanup(&r);
            return MGO_CTL_EXIT_FAIL;
        }
        if (r.status != 200) {
            int rc = mgo_ctl__print_problem(&c, &r);
            mgo_ctl__reply_cleanup(&r);
            return rc;
        }
        snprintf(w->desired, sizeof w->desired, "%s", mgo_ctl__str(&r.tree, "desired"));
        const struct mgo_value *mv = mgo_value_get(&r.tree, "manifestVersion");
        w->manifest_version = mv && mv->kind == MGO_V_UINT ? mv->as.u : 0;
        mgo_ctl__reply_cleanup(&r);
        int n = snprintf(path + used, sizeof path - used, "%sdeployment=%s", i ? "&" : "", esc);
        if (n < 0 || (size_t)n >= sizeof path - used)
            return MGO_CTL_EXIT_USAGE;
        used += (size_t)n;
    }
    int rc = mgo_ctl__stream(&c, path, timeout_s * 1000, on_watch_event, &ctx);
    if (rc == MGO_CTL_EXIT_TIMEOUT) {
        fprintf(stderr, "margoctl watch: timed out after %ld s\n", timeout_s);
        return MGO_CTL_EXIT_TIMEOUT;
    }
    if (rc != 0)
        return MGO_CTL_EXIT_FAIL;
    if (ctx.failed) {
        fprintf(stderr, "margoctl watch: a deployment failed\n");
        return MGO_CTL_EXIT_FAIL;
    }
    if (!c.json)
        printf("done: every deployment reached its goal\n");
    return 0;
}
