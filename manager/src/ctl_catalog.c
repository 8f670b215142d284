/* ctl_catalog.c - margoctl app add|list|show|rm and device list|show. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl_internal.h"
#include "mgo/ctl.h"
#include "mgo/limits.h"
#include "mgo/log.h"
#include "mgo/oci.h"

/* Runs one request and handles the common failures; returns 0 when status is `want`. */
static int call(const struct mgo_ctl_conn *c, const char *method, const char *path,
                const char *ctype, const void *body, size_t len, long want, struct mgo_ctl_reply *r)
{
    if (mgo_ctl__request(c, method, path, ctype, body, len, r) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (r->status != want)
        return mgo_ctl__print_problem(c, r);
    return 0;
}

/* ---- app ------------------------------------------------------------------------------- */

static const char APP_USAGE[] =
    "usage: margoctl app add FILE|PACKAGE-DIR     add a margo.yaml to the catalog\n"
    "       margoctl app add oci://HOST[:PORT]/NAME:TAG (or NAME@sha256:HEX)\n"
    "                                             ... from an OCI application package\n"
    "       margoctl app list                     list every app version\n"
    "       margoctl app show APP [--version V]   profiles, parameters and questions\n"
    "       margoctl app rm APP [--version V]     remove (refused while deployed)\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

/* The layer media type of the ApplicationDescription in an OCI application package
 * (docs/manager.md): the one Margo's own packaging writes (`oras push ...
 * margo.yaml:application/vnd.margo.app.description.v1+yaml` in the Margo sandbox). */
static const char *const APP_LAYER_TYPES[] = {
    "application/vnd.margo.app.description.v1+yaml",
    NULL,
};

/* Fetches the ApplicationDescription layer of an OCI application package into b: plain http
 * for loopback registries, https (system trust store) for every other. */
static int read_oci_package(const char *ref, struct mgo_buf *b)
{
    char repo[1024], rev[160], host[256], why[512] = "";
    mgo_err err = mgo_oci_split_ref(ref, repo, sizeof repo, rev, sizeof rev, host, why, sizeof why);
    if (err == MGO_OK) {
        /* the client's own warnings repeat the reason printed below, once */
        mgo_log_set_level(MGO_LOG_ERROR);
        const char *plain[] = {host};
        struct mgo_fetch_opts o = {.timeout_s = 60,
                                   .plain_http = plain,
                                   .plain_http_len = mgo_oci_host_is_loopback(host) ? 1 : 0,
                                   .user_agent = "margoctl/0.1"};
        struct mgo_oci_select sel = {.artifact_type = MGO_OCI_APP_ARTIFACT_TYPE,
                                     .layer_types = APP_LAYER_TYPES};
        err = mgo_oci_fetch(repo, rev, &o, &sel, b, NULL, why, sizeof why);
    }
    if (err) {
        fprintf(stderr, "margoctl: %s: %s\n", ref, why[0] ? why : mgo_strerror(err));
        return MGO_CTL_EXIT_FAIL;
    }
    return 0;
}

static int app_add(struct mgo_ctl_conn *c, const char *path)
{
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_FILE_BYTES);
    if (strncmp(path, "oci://", 6) == 0) {
        if (read_oci_package(path, &b) != 0) {
            mgo_buf_cleanup(&b);
            return MGO_CTL_EXIT_FAIL;
        }
    } else {
        char file[4096];
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            snprintf(file, sizeof file, "%s/margo.yaml", path);
        else
            snprintf(file, sizeof file, "%s", path);
        mgo_err err = mgo_buf_read_file(&b, file);
        if (err) {
            fprintf(stderr, "margoctl: cannot read %s: %s\n", file, mgo_strerror(err));
            mgo_buf_cleanup(&b);
            return MGO_CTL_EXIT_FAIL;
        }
    }
    struct mgo_ctl_reply r;
    int rc = call(c, "POST", "/api/v1/apps", "application/yaml", b.data ? (void *)b.data : "",
                  b.len, 201, &r);
    if (rc == 0) {
        if (!mgo_ctl__print_data(c, &r))
            printf("added %s %s\n", mgo_ctl__str(&r.tree, "id"), mgo_ctl__str(&r.tree, "version"));
    }
    mgo_ctl__reply_cleanup(&r);
    mgo_buf_cleanup(&b);
    return rc;
}

static void profiles_text(const struct mgo_value *app, char *out, size_t size)
{
    const struct mgo_value *ps = mgo_value_get(app, "profiles");
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; ps && ps->kind == MGO_V_ARRAY && i < ps->as.array.len; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? "," : "",
                         mgo_ctl__str(&ps->as.array.items[i], "type"));
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

static int app_list(struct mgo_ctl_conn *c)
{
    struct mgo_ctl_reply r;
    int rc = call(c, "GET", "/api/v1/apps", NULL, NULL, 0, 200, &r);
    if (rc == 0 && !mgo_ctl__print_data(c, &r)) {
        struct mgo_ctl_table t;
        mgo_ctl__table_init(&t, 6);
        mgo_ctl__table_columns(&t, c, 4); /* wide: ADDED, TAGLINE */
        const char *head[6] = {"ID", "VERSION", "NAME", "PROFILES", "ADDED", "TAGLINE"};
        mgo_ctl__table_add(&t, head);
        const struct mgo_value *apps = mgo_value_get(&r.tree, "apps");
        for (size_t i = 0; apps && apps->kind == MGO_V_ARRAY && i < apps->as.array.len; i++) {
            const struct mgo_value *a = &apps->as.array.items[i];
            char profiles[128], added[64];
            profiles_text(a, profiles, sizeof profiles);
            mgo_ctl__text(mgo_value_get(a, "addedAt"), added, sizeof added);
            const char *tagline = mgo_ctl__str(a, "tagline");
            const char *row[6] = {mgo_ctl__str(a, "id"),
                                  mgo_ctl__str(a, "version"),
                                  mgo_ctl__str(a, "name"),
                                  profiles,
                                  added,
                                  tagline[0] ? tagline : "-"};
            mgo_ctl__table_add(&t, row);
        }
        mgo_ctl__table_print(&t, stdout);
        mgo_ctl__table_cleanup(&t);
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

/* "string, 2..20 chars, required" */
static void rules_text(const struct mgo_value *schema, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    if (!schema || schema->kind != MGO_V_MAP) {
        snprintf(out, size, "-");
        return;
    }
    for (size_t i = 0; i < schema->as.map.len; i++) {
        const struct mgo_member *m = &schema->as.map.items[i];
        if (strcmp(m->key, "name") == 0)
            continue;
        char v[160];
        mgo_ctl__text(&m->value, v, sizeof v);
        int n = snprintf(out + used, size - used, "%s%s=%s", used ? " " : "", m->key, v);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

/* "/api/v1/apps/<app>[?version=<version>]", both escaped; version NULL = the latest. */
static void app_path(const char *app, const char *version, char *path, size_t size)
{
    char esc[512], vesc[256];
    mgo_ctl__escape(app, esc, sizeof esc);
    if (version) {
        mgo_ctl__escape(version, vesc, sizeof vesc);
        snprintf(path, size, "/api/v1/apps/%s?version=%s", esc, vesc);
    } else {
        snprintf(path, size, "/api/v1/apps/%s", esc);
    }
}

static int app_show(struct mgo_ctl_conn *c, const char *app, const char *version)
{
    char path[1024];
    app_path(app, version, path, sizeof path);
    struct mgo_ctl_reply r;
    int rc = call(c, "GET", path, NULL, NULL, 0, 200, &r);
    if (rc == 0 && !mgo_ctl__print_data(c, &r)) {
        const struct mgo_value *t = &r.tree;
        char versions[256], profiles[128];
        mgo_ctl__text(mgo_value_get(t, "versions"), versions, sizeof versions);
        profiles_text(t, profiles, sizeof profiles);
        printf("ID:          %s\nVERSION:     %s (known: %s)\nNAME:        %s\n"
               "DESCRIPTION: %s\nPROFILES:    %s\n\n",
               mgo_ctl__str(t, "id"), mgo_ctl__str(t, "version"), versions, mgo_ctl__str(t, "name"),
               mgo_ctl__str(t, "description"), profiles);
        struct mgo_ctl_table tb;
        mgo_ctl__table_init(&tb, 5);
        const char *head[5] = {"PARAMETER", "QUESTION", "DEFAULT", "IMMUTABLE", "RULES"};
        mgo_ctl__table_add(&tb, head);
        const struct mgo_value *qs = mgo_value_get(t, "questions");
        for (size_t i = 0; qs && qs->kind == MGO_V_ARRAY && i < qs->as.array.len; i++) {
            const struct mgo_value *q = &qs->as.array.items[i];
            char def[128], rules[512];
            mgo_ctl__text(mgo_value_get(q, "default"), def, sizeof def);
            rules_text(mgo_value_get(q, "schema"), rules, sizeof rules);
            const struct mgo_value *imm = mgo_value_get(q, "immutable");
            const char *row[5] = {mgo_ctl__str(q, "parameter"), mgo_ctl__str(q, "name"), def,
                                  imm && imm->kind == MGO_V_BOOL && imm->as.b ? "yes" : "no",
                                  rules};
            mgo_ctl__table_add(&tb, row);
        }
        mgo_ctl__table_print(&tb, stdout);
        mgo_ctl__table_cleanup(&tb);
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

static int app_rm(struct mgo_ctl_conn *c, const char *app, const char *version)
{
    char path[1024];
    app_path(app, version, path, sizeof path);
    struct mgo_ctl_reply r;
    int rc = call(c, "DELETE", path, NULL, NULL, 0, 204, &r);
    if (rc == 0)
        printf(c->json ? "{\"removed\":\"%s\"}\n" : "removed %s\n", app);
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

/* Pulls "--version V" out of argv. */
static const char *take_version(int *argc, char **argv, bool *bad)
{
    const char *v = NULL;
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            if (i + 1 >= *argc) {
                *bad = true;
                return NULL;
            }
            v = argv[++i];
        } else if (strncmp(argv[i], "--version=", 10) == 0) {
            v = argv[i] + 10;
        } else {
            argv[out++] = argv[i];
        }
    }
    *argc = out;
    return v;
}

int mgo_ctl_app(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    bool bad = false;
    const char *version = take_version(&argc, argv, &bad);
    if (help == 1) {
        fputs(APP_USAGE, stdout);
        return 0;
    }
    if (help < 0 || bad || argc < 1) {
        fputs(APP_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] == '-') {
            fprintf(stderr, "margoctl app: unknown option %s\n", argv[i]);
            return MGO_CTL_EXIT_USAGE;
        }
    }
    const char *sub = argv[0];
    bool list = strcmp(sub, "list") == 0;
    if ((list && argc != 1) || (!list && argc != 2)) {
        fputs(APP_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (strcmp(sub, "add") == 0)
        return app_add(&c, argv[1]);
    if (list)
        return app_list(&c);
    if (strcmp(sub, "show") == 0)
        return app_show(&c, argv[1], version);
    if (strcmp(sub, "rm") == 0)
        return app_rm(&c, argv[1], version);
    fprintf(stderr, "margoctl app: unknown subcommand %s\n", sub);
    fputs(APP_USAGE, stderr);
    return MGO_CTL_EXIT_USAGE;
}

/* ---- device -------------------------------------------------------------------------- */

static const char DEVICE_USAGE[] =
    "usage: margoctl device list [--compatible APP [--version V]]\n"
    "       margoctl device show DEVICE\n"
    "       margoctl device label DEVICE [KEY=VALUE...] [KEY-...]\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

static const char *online_text(const struct mgo_value *d)
{
    const struct mgo_value *o = mgo_value_get(d, "online");
    if (!o || o->kind != MGO_V_BOOL)
        return "unknown";
    return o->as.b ? "online" : "offline";
}

static int device_list(struct mgo_ctl_conn *c, const char *compat, const char *version)
{
    char path[1024] = "/api/v1/devices";
    if (compat) {
        char esc[512], vesc[256] = "";
        mgo_ctl__escape(compat, esc, sizeof esc);
        if (version)
            mgo_ctl__escape(version, vesc, sizeof vesc);
        snprintf(path, sizeof path, "/api/v1/devices?compatible=%s%s%s", esc,
                 version ? "&version=" : "", vesc);
    }
    struct mgo_ctl_reply r;
    int rc = call(c, "GET", path, NULL, NULL, 0, 200, &r);
    if (rc == 0 && !mgo_ctl__print_data(c, &r)) {
        /* ID PRESENCE TYPES DEPLOYMENTS LAST-SEEN [COMPATIBLE REASON]; wide: BOOT VENDOR
         * MODEL DROPPED (events dropped / statuses over rate / positions dropped) */
        size_t narrow = compat ? 7 : 5;
        struct mgo_ctl_table t;
        mgo_ctl__table_init(&t, narrow + 4);
        mgo_ctl__table_columns(&t, c, narrow);
        const char *head[11] = {"ID",        "PRESENCE",   "TYPES",  "DEPLOYMENTS",
                                "LAST SEEN", "COMPATIBLE", "REASON", "BOOT",
                                "VENDOR",    "MODEL",      "DROPPED"};
        if (!compat)
            memmove(&head[5], &head[7], 4 * sizeof head[0]);
        mgo_ctl__table_add(&t, head);
        const struct mgo_value *ds = mgo_value_get(&r.tree, "devices");
        for (size_t i = 0; ds && ds->kind == MGO_V_ARRAY && i < ds->as.array.len; i++) {
            const struct mgo_value *d = &ds->as.array.items[i];
            char types[64], deps[32], seen[64], compatible[8], boot[32], ev[32], st[32], pos[32];
            char dropped[100];
            mgo_ctl__text(mgo_value_get(d, "deploymentTypes"), types, sizeof types);
            mgo_ctl__text(mgo_value_get(d, "deployments"), deps, sizeof deps);
            mgo_ctl__text(mgo_value_get(d, "lastSeen"), seen, sizeof seen);
            mgo_ctl__text(mgo_value_get(d, "compatible"), compatible, sizeof compatible);
            mgo_ctl__text(mgo_value_get(d, "boot"), boot, sizeof boot);
            mgo_ctl__text(mgo_value_get(d, "eventsDropped"), ev, sizeof ev);
            mgo_ctl__text(mgo_value_get(d, "statusesOverRate"), st, sizeof st);
            mgo_ctl__text(mgo_value_get(d, "positionsDropped"), pos, sizeof pos);
            snprintf(dropped, sizeof dropped, "%s/%s/%s", ev, st, pos);
            const char *reason = mgo_ctl__str(d, "reason");
            const char *vendor = mgo_ctl__str(d, "vendor");
            const char *model = mgo_ctl__str(d, "modelNumber");
            const char *row[11] = {mgo_ctl__str(d, "id"),
                                   online_text(d),
                                   types[0] ? types : "-",
                                   deps,
                                   seen,
                                   strcmp(compatible, "true") == 0 ? "yes" : "no",
                                   reason[0] ? reason : "-",
                                   boot,
                                   vendor[0] ? vendor : "-",
                                   model[0] ? model : "-",
                                   dropped};
            if (!compat)
                memmove(&row[5], &row[7], 4 * sizeof row[0]);
            mgo_ctl__table_add(&t, row);
        }
        mgo_ctl__table_print(&t, stdout);
        mgo_ctl__table_cleanup(&t);
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

static int device_show(struct mgo_ctl_conn *c, const char *id)
{
    char path[1024], esc[512];
    mgo_ctl__escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/devices/%s", esc);
    struct mgo_ctl_reply r;
    int rc = call(c, "GET", path, NULL, NULL, 0, 200, &r);
    if (rc == 0 && !mgo_ctl__print_data(c, &r)) {
        const struct mgo_value *d = &r.tree;
        char types[64], deps[32], seen[64], boot[32];
        mgo_ctl__text(mgo_value_get(d, "deploymentTypes"), types, sizeof types);
        mgo_ctl__text(mgo_value_get(d, "deployments"), deps, sizeof deps);
        mgo_ctl__text(mgo_value_get(d, "lastSeen"), seen, sizeof seen);
        mgo_ctl__text(mgo_value_get(d, "boot"), boot, sizeof boot);
        printf("ID:           %s\nPRESENCE:     %s (boot %s)\nLAST SEEN:    %s\n"
               "VENDOR:       %s\nMODEL:        %s\nTYPES:        %s\nDEPLOYMENTS:  %s\n"
               "CAPABILITIES:\n",
               mgo_ctl__str(d, "id"), online_text(d), boot, seen, mgo_ctl__str(d, "vendor"),
               mgo_ctl__str(d, "modelNumber"), types, deps);
        mgo_ctl__print_json(mgo_value_get(d, "capabilities"));
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

int mgo_ctl_device(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "label") == 0)
        return mgo_ctl__device_label(argc - 1, argv + 1);
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    bool bad = false;
    const char *version = take_version(&argc, argv, &bad);
    const char *compat = NULL;
    int out = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--compatible") == 0) {
            if (i + 1 >= argc) {
                bad = true;
                break;
            }
            compat = argv[++i];
        } else if (strncmp(argv[i], "--compatible=", 13) == 0) {
            compat = argv[i] + 13;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "margoctl device: unknown option %s\n", argv[i]);
            bad = true;
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    if (help == 1) {
        fputs(DEVICE_USAGE, stdout);
        return 0;
    }
    if (help < 0 || bad || argc < 1) {
        fputs(DEVICE_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (strcmp(argv[0], "list") == 0 && argc == 1) {
        if (mgo_ctl__conn_ready(&c) != 0)
            return MGO_CTL_EXIT_FAIL;
        return device_list(&c, compat, version);
    }
    if (strcmp(argv[0], "show") == 0 && argc == 2) {
        if (mgo_ctl__conn_ready(&c) != 0)
            return MGO_CTL_EXIT_FAIL;
        return device_show(&c, argv[1]);
    }
    fputs(DEVICE_USAGE, stderr);
    return MGO_CTL_EXIT_USAGE;
}
