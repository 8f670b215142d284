/* ctl_rollout.c - margoctl rollout create|list|show|pause|resume|cancel|rollback and
 * margoctl device label (docs/rollouts.md "CLI"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_internal.h"
#include "jw.h"
#include "mgo/ctl.h"

static const char ROLLOUT_USAGE[] =
    "usage: margoctl rollout create APP [--version V] (--selector S | --device D...)\n"
    "                [--mode upgrade|deploy] [--set NAME=VALUE...] [--canary N]\n"
    "                [--batch-size N | --batch-percent P] [--max-in-flight N]\n"
    "                [--timeout SECONDS] [--soak SECONDS] [--max-failures-batch N|P%]\n"
    "                [--max-failures-total N|P%] [--app-failures-only]\n"
    "                [--on-abort stop|rollback] [--offline-grace SECONDS]\n"
    "                [--offline-count skipped|failed] [--dry-run]\n"
    "       margoctl rollout list [--active]\n"
    "       margoctl rollout show ID [--watch] [--targets]\n"
    "       margoctl rollout pause|resume|cancel|rollback ID\n"
    "create --dry-run lists the devices a rollout would target (with their batch) and why the\n"
    "others are excluded (label, capability, deployment, rollout, device). show --watch\n"
    "follows the rollout until it finishes: a progress bar per batch on a terminal, a line per\n"
    "change otherwise, a JSON document per change with --json; it exits 0 when the rollout\n"
    "succeeded, 1 when it ended otherwise.\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

static const char LABEL_USAGE[] =
    "usage: margoctl device label DEVICE [KEY=VALUE...] [KEY-...]\n"
    "KEY=VALUE sets a label, KEY- removes one; without either the device's labels are shown\n"
    "(the operator's, then the derived ones: margo.org/... and the capabilities' own labels).\n"
    "options: -o, --output table|wide|json|yaml  --json (= -o json)  --url URL (MARGO_URL)\n"
    "         --token-file FILE (MARGO_TOKEN_FILE)  -h, --help\n";

static bool finished(const char *state)
{
    return strcmp(state, "running") != 0 && strcmp(state, "paused") != 0 &&
           strcmp(state, "rolling-back") != 0;
}

/* ---- create ------------------------------------------------------------------------------ */

struct create_opts {
    const char *app, *version, *selector, *mode, *on_abort, *offline_count;
    const char *devices[256];
    size_t devices_len;
    const char *sets[64];
    size_t sets_len;
    const char *canary, *batch_size, *batch_percent, *max_in_flight, *timeout, *soak, *grace;
    const char *fail_batch, *fail_total;
    bool app_only, dry_run;
};

static bool number(const char *text)
{
    if (!text[0])
        return false;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
    }
    return strlen(text) <= 9;
}

/* "N" or "P%" as {count: N} / {percent: P}. */
static bool write_threshold(struct mgo_jw *w, const char *key, const char *text)
{
    char num[16];
    size_t n = strlen(text);
    bool pct = n > 0 && text[n - 1] == '%';
    snprintf(num, sizeof num, "%.*s", (int)(pct ? n - 1 : n), text);
    if (!number(num)) {
        fprintf(stderr, "margoctl rollout: --max-failures-%s: must be N or P%%\n", key);
        return false;
    }
    mgo_jw_key(w, key);
    mgo_jw_obj(w);
    mgo_jw_ku64(w, pct ? "percent" : "count", strtoull(num, NULL, 10));
    mgo_jw_obj_end(w);
    return true;
}

static bool write_num(struct mgo_jw *w, const char *key, const char *opt, const char *text)
{
    if (!text)
        return true;
    if (!number(text)) {
        fprintf(stderr, "margoctl rollout: %s: must be a whole number\n", opt);
        return false;
    }
    mgo_jw_ku64(w, key, strtoull(text, NULL, 10));
    return true;
}

static bool build_body(const struct create_opts *o, struct mgo_jw *w)
{
    bool ok = true;
    mgo_jw_obj(w);
    mgo_jw_kstr(w, "app", o->app);
    if (o->version)
        mgo_jw_kstr(w, "version", o->version);
    if (o->mode)
        mgo_jw_kstr(w, "mode", o->mode);
    if (o->selector)
        mgo_jw_kstr(w, "selector", o->selector);
    if (o->devices_len) {
        mgo_jw_key(w, "devices");
        mgo_jw_arr(w);
        for (size_t i = 0; i < o->devices_len; i++)
            mgo_jw_str(w, o->devices[i]);
        mgo_jw_arr_end(w);
    }
    if (o->sets_len) {
        mgo_jw_key(w, "parameters");
        mgo_jw_obj(w);
        for (size_t i = 0; i < o->sets_len; i++) {
            const char *eq = strchr(o->sets[i], '=');
            if (!eq || eq == o->sets[i]) {
                fprintf(stderr, "margoctl rollout: --set %s: must be NAME=VALUE\n", o->sets[i]);
                ok = false;
                continue;
            }
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(eq - o->sets[i]), o->sets[i]);
            mgo_jw_kstr(w, name, eq + 1);
        }
        mgo_jw_obj_end(w);
    }
    mgo_jw_key(w, "strategy");
    mgo_jw_obj(w);
    ok = write_num(w, "canary", "--canary", o->canary) && ok;
    ok = write_num(w, "batchSize", "--batch-size", o->batch_size) && ok;
    ok = write_num(w, "batchPercent", "--batch-percent", o->batch_percent) && ok;
    ok = write_num(w, "maxInFlight", "--max-in-flight", o->max_in_flight) && ok;
    ok = write_num(w, "successTimeoutSeconds", "--timeout", o->timeout) && ok;
    ok = write_num(w, "soakSeconds", "--soak", o->soak) && ok;
    if (o->on_abort)
        mgo_jw_kstr(w, "onAbort", o->on_abort);
    if (o->fail_batch || o->fail_total || o->app_only) {
        mgo_jw_key(w, "maxFailures");
        mgo_jw_obj(w);
        if (o->fail_batch)
            ok = write_threshold(w, "batch", o->fail_batch) && ok;
        if (o->fail_total)
            ok = write_threshold(w, "total", o->fail_total) && ok;
        if (o->app_only)
            mgo_jw_kbool(w, "appFailuresOnly", true);
        mgo_jw_obj_end(w);
    }
    if (o->grace || o->offline_count) {
        mgo_jw_key(w, "offline");
        mgo_jw_obj(w);
        ok = write_num(w, "graceSeconds", "--offline-grace", o->grace) && ok;
        if (o->offline_count)
            mgo_jw_kstr(w, "countAs", o->offline_count);
        mgo_jw_obj_end(w);
    }
    mgo_jw_obj_end(w);
    mgo_jw_obj_end(w);
    return ok && w->err == MGO_OK;
}

/* Takes the option at argv[*i] when it is name; its value into *out. */
static bool take(int argc, char **argv, int *i, const char *name, const char **out, bool *bad)
{
    if (strcmp(argv[*i], name) != 0)
        return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "margoctl rollout: %s needs a value\n", name);
        *bad = true;
        return true;
    }
    *out = argv[++*i];
    return true;
}

static void print_plan(const struct mgo_ctl_reply *r)
{
    struct mgo_ctl_table t;
    mgo_ctl__table_init(&t, 3);
    const char *head[] = {"DEVICE", "BATCH/KIND", "REASON"};
    mgo_ctl__table_add(&t, head);
    const struct mgo_value *tg = mgo_value_get(&r->tree, "targeted");
    for (size_t i = 0; tg && tg->kind == MGO_V_ARRAY && i < tg->as.array.len; i++) {
        char batch[24];
        mgo_ctl__text(mgo_value_get(&tg->as.array.items[i], "batch"), batch, sizeof batch);
        const char *row[] = {mgo_ctl__str(&tg->as.array.items[i], "device"), batch, "targeted"};
        mgo_ctl__table_add(&t, row);
    }
    const struct mgo_value *ex = mgo_value_get(&r->tree, "excluded");
    for (size_t i = 0; ex && ex->kind == MGO_V_ARRAY && i < ex->as.array.len; i++) {
        const struct mgo_value *e = &ex->as.array.items[i];
        const char *row[] = {mgo_ctl__str(e, "device"), mgo_ctl__str(e, "kind"),
                             mgo_ctl__str(e, "reason")};
        mgo_ctl__table_add(&t, row);
    }
    mgo_ctl__table_print(&t, stdout);
    mgo_ctl__table_cleanup(&t);
    char a[24], b[24], c[24];
    mgo_ctl__text(mgo_value_get(&r->tree, "targetedCount"), a, sizeof a);
    mgo_ctl__text(mgo_value_get(&r->tree, "excludedCount"), b, sizeof b);
    mgo_ctl__text(mgo_value_get(&r->tree, "excludedOmitted"), c, sizeof c);
    printf("%s targeted, %s excluded%s%s%s\n", a, b, strcmp(c, "-") ? " (" : "",
           strcmp(c, "-") ? c : "", strcmp(c, "-") ? " not listed)" : "");
}

static void print_summary(const struct mgo_value *v, bool bars);

static int rollout_create(struct mgo_ctl_conn *c, int argc, char **argv)
{
    struct create_opts o = {0};
    bool bad = false;
    for (int i = 0; i < argc && !bad; i++) {
        const char *dev = NULL, *set = NULL;
        if (take(argc, argv, &i, "--version", &o.version, &bad) ||
            take(argc, argv, &i, "--selector", &o.selector, &bad) ||
            take(argc, argv, &i, "--mode", &o.mode, &bad) ||
            take(argc, argv, &i, "--canary", &o.canary, &bad) ||
            take(argc, argv, &i, "--batch-size", &o.batch_size, &bad) ||
            take(argc, argv, &i, "--batch-percent", &o.batch_percent, &bad) ||
            take(argc, argv, &i, "--max-in-flight", &o.max_in_flight, &bad) ||
            take(argc, argv, &i, "--timeout", &o.timeout, &bad) ||
            take(argc, argv, &i, "--soak", &o.soak, &bad) ||
            take(argc, argv, &i, "--max-failures-batch", &o.fail_batch, &bad) ||
            take(argc, argv, &i, "--max-failures-total", &o.fail_total, &bad) ||
            take(argc, argv, &i, "--on-abort", &o.on_abort, &bad) ||
            take(argc, argv, &i, "--offline-grace", &o.grace, &bad) ||
            take(argc, argv, &i, "--offline-count", &o.offline_count, &bad))
            continue;
        if (take(argc, argv, &i, "--device", &dev, &bad)) {
            if (dev && o.devices_len < sizeof o.devices / sizeof o.devices[0])
                o.devices[o.devices_len++] = dev;
            else if (dev)
                bad = true;
        } else if (take(argc, argv, &i, "--set", &set, &bad)) {
            if (set && o.sets_len < sizeof o.sets / sizeof o.sets[0])
                o.sets[o.sets_len++] = set;
            else if (set)
                bad = true;
        } else if (strcmp(argv[i], "--app-failures-only") == 0) {
            o.app_only = true;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            o.dry_run = true;
        } else if (argv[i][0] == '-' || o.app) {
            fprintf(stderr, "margoctl rollout create: unexpected %s\n", argv[i]);
            bad = true;
        } else {
            o.app = argv[i];
        }
    }
    if (bad || !o.app) {
        fputs(ROLLOUT_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    struct mgo_buf body;
    mgo_buf_init(&body, 1u << 20);
    struct mgo_jw w;
    mgo_jw_init(&w, &body);
    if (!build_body(&o, &w)) {
        mgo_buf_cleanup(&body);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(c) != 0) {
        mgo_buf_cleanup(&body);
        return MGO_CTL_EXIT_FAIL;
    }
    struct mgo_ctl_reply r;
    int rc = MGO_CTL_EXIT_FAIL;
    const char *path = o.dry_run ? "/api/v1/rollouts?dryRun=true" : "/api/v1/rollouts";
    if (mgo_ctl__request(c, "POST", path, "application/json", body.data, body.len, &r) == 0) {
        if (r.status != (o.dry_run ? 200 : 201))
            rc = mgo_ctl__print_problem(c, &r);
        else if (mgo_ctl__print_data(c, &r))
            rc = MGO_CTL_EXIT_OK; /* json or yaml */
        else if (o.dry_run)
            print_plan(&r), rc = MGO_CTL_EXIT_OK;
        else
            print_summary(&r.tree, false), rc = MGO_CTL_EXIT_OK;
        mgo_ctl__reply_cleanup(&r);
    }
    mgo_buf_cleanup(&body);
    return rc;
}

/* ---- show, watch, list, actions ----------------------------------------------------------- */

static void print_counts(const struct mgo_value *counts, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; counts && counts->kind == MGO_V_MAP && i < counts->as.map.len; i++) {
        const struct mgo_member *m = &counts->as.map.items[i];
        if (m->value.kind == MGO_V_UINT && m->value.as.u > 0 && n < size)
            n += (size_t)snprintf(out + n, size - n, "%s%s %llu", n ? ", " : "", m->key,
                                  (unsigned long long)m->value.as.u);
    }
}

static uint64_t count_of(const struct mgo_value *counts, const char *state)
{
    const struct mgo_value *v = counts ? mgo_value_get(counts, state) : NULL;
    return v && v->kind == MGO_V_UINT ? v->as.u : 0;
}

static void print_summary(const struct mgo_value *v, bool bars)
{
    char batch[16], batches[16], line[512];
    mgo_ctl__text(mgo_value_get(v, "batch"), batch, sizeof batch);
    mgo_ctl__text(mgo_value_get(v, "batchCount"), batches, sizeof batches);
    printf("rollout %s: %s %s (%s) - %s, batch %llu of %s\n", mgo_ctl__str(v, "id"),
           mgo_ctl__str(v, "app"), mgo_ctl__str(v, "version"), mgo_ctl__str(v, "mode"),
           mgo_ctl__str(v, "state"), strtoull(batch, NULL, 10) + 1, batches);
    if (mgo_ctl__str(v, "reason")[0])
        printf("  reason: %s\n", mgo_ctl__str(v, "reason"));
    print_counts(mgo_value_get(v, "counts"), line, sizeof line);
    printf("  devices: %s\n", line[0] ? line : "none");
    const struct mgo_value *bl = mgo_value_get(v, "batches");
    for (size_t i = 0; bars && bl && bl->kind == MGO_V_ARRAY && i < bl->as.array.len; i++) {
        const struct mgo_value *b = &bl->as.array.items[i];
        const struct mgo_value *cn = mgo_value_get(b, "counts");
        uint64_t size = mgo_value_get(b, "size") ? mgo_value_get(b, "size")->as.u : 0;
        uint64_t done = size - count_of(cn, "waiting") - count_of(cn, "updating") -
                        count_of(cn, "rolling-back");
        char bar[41];
        size_t fill = size ? (size_t)(done * 40u / size) : 0;
        memset(bar, '#', fill);
        memset(bar + fill, '-', 40 - fill);
        bar[40] = '\0';
        print_counts(cn, line, sizeof line);
        printf("  batch %-3zu [%s] %llu/%llu  %s\n", i + 1, bar, (unsigned long long)done,
               (unsigned long long)size, line);
    }
    const struct mgo_value *f = mgo_value_get(v, "failures");
    char app[16], dev[16];
    mgo_ctl__text(f ? mgo_value_get(f, "app") : NULL, app, sizeof app);
    mgo_ctl__text(f ? mgo_value_get(f, "device") : NULL, dev, sizeof dev);
    print_counts(f ? mgo_value_get(f, "byCode") : NULL, line, sizeof line);
    printf("  failures: app %s, device %s%s%s%s\n", app, dev, line[0] ? " (" : "", line,
           line[0] ? ")" : "");
}

static int get_rollout(const struct mgo_ctl_conn *c, const char *id, struct mgo_ctl_reply *r)
{
    char path[160], esc[96];
    mgo_ctl__escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/rollouts/%s", esc);
    if (mgo_ctl__request(c, "GET", path, NULL, NULL, 0, r) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (r->status != 200) {
        int rc = mgo_ctl__print_problem(c, r);
        mgo_ctl__reply_cleanup(r);
        return rc;
    }
    return MGO_CTL_EXIT_OK;
}

static int rollout_targets(const struct mgo_ctl_conn *c, const char *id)
{
    char esc[96];
    mgo_ctl__escape(id, esc, sizeof esc);
    struct mgo_ctl_table t;
    mgo_ctl__table_init(&t, 5);
    const char *head[] = {"DEVICE", "BATCH", "STATE", "CODE", "CLASS"};
    mgo_ctl__table_add(&t, head);
    int rc = MGO_CTL_EXIT_OK;
    /* every page (1000 targets each) */
    for (uint64_t offset = 0;;) {
        char path[240];
        snprintf(path, sizeof path, "/api/v1/rollouts/%s/targets?limit=1000&offset=%llu", esc,
                 (unsigned long long)offset);
        struct mgo_ctl_reply r;
        if (mgo_ctl__request(c, "GET", path, NULL, NULL, 0, &r) != 0) {
            rc = MGO_CTL_EXIT_FAIL;
            break;
        }
        if (r.status != 200) {
            rc = mgo_ctl__print_problem(c, &r);
            mgo_ctl__reply_cleanup(&r);
            break;
        }
        if (c->json)
            printf("%.*s\n", (int)r.body.len, (const char *)r.body.data);
        const struct mgo_value *tg = mgo_value_get(&r.tree, "targets");
        const struct mgo_value *total = mgo_value_get(&r.tree, "total");
        size_t n = tg && tg->kind == MGO_V_ARRAY ? tg->as.array.len : 0;
        for (size_t i = 0; !c->json && i < n; i++) {
            const struct mgo_value *e = &tg->as.array.items[i];
            const struct mgo_value *err = mgo_value_get(e, "error");
            char batch[16];
            mgo_ctl__text(mgo_value_get(e, "batch"), batch, sizeof batch);
            const char *row[] = {mgo_ctl__str(e, "device"), batch, mgo_ctl__str(e, "state"),
                                 err ? mgo_ctl__str(err, "code") : "",
                                 err ? mgo_ctl__str(err, "class") : ""};
            mgo_ctl__table_add(&t, row);
        }
        offset += n;
        bool more = n > 0 && total && total->kind == MGO_V_UINT && offset < total->as.u;
        mgo_ctl__reply_cleanup(&r);
        if (!more)
            break;
    }
    if (!c->json && rc == MGO_CTL_EXIT_OK)
        mgo_ctl__table_print(&t, stdout);
    mgo_ctl__table_cleanup(&t);
    return rc;
}

/* Follows a rollout until it finishes (a refresh a second). */
static int rollout_watch(const struct mgo_ctl_conn *c, const char *id)
{
    bool tty = isatty(STDOUT_FILENO) && !c->json;
    char last[1024] = "";
    for (;;) {
        struct mgo_ctl_reply r;
        int rc = get_rollout(c, id, &r);
        if (rc != MGO_CTL_EXIT_OK)
            return rc;
        const char *state = mgo_ctl__str(&r.tree, "state");
        bool done = finished(state);
        bool ok = strcmp(state, "succeeded") == 0;
        char now[1024], counts[512];
        print_counts(mgo_value_get(&r.tree, "counts"), counts, sizeof counts);
        char batch[16], batches[16];
        mgo_ctl__text(mgo_value_get(&r.tree, "batch"), batch, sizeof batch);
        mgo_ctl__text(mgo_value_get(&r.tree, "batchCount"), batches, sizeof batches);
        snprintf(now, sizeof now, "%s, batch %llu of %s: %s", state, strtoull(batch, NULL, 10) + 1,
                 batches, counts);
        if (tty) {
            fputs("\033[H\033[J", stdout); /* redraw from the top */
            print_summary(&r.tree, true);
        } else if (strcmp(now, last) != 0) {
            if (c->json)
                printf("%.*s\n", (int)r.body.len, (const char *)r.body.data);
            else
                printf("rollout %s: %s\n", id, now);
        }
        fflush(stdout);
        snprintf(last, sizeof last, "%s", now);
        mgo_ctl__reply_cleanup(&r);
        if (done)
            return ok ? MGO_CTL_EXIT_OK : MGO_CTL_EXIT_FAIL;
        sleep(1);
    }
}

static int rollout_list(const struct mgo_ctl_conn *c, bool active)
{
    struct mgo_ctl_reply r;
    if (mgo_ctl__request(c, "GET", active ? "/api/v1/rollouts?active=true" : "/api/v1/rollouts",
                         NULL, NULL, 0, &r) != 0)
        return MGO_CTL_EXIT_FAIL;
    int rc = MGO_CTL_EXIT_OK;
    if (r.status != 200) {
        rc = mgo_ctl__print_problem(c, &r);
    } else if (mgo_ctl__print_data(c, &r)) {
        /* json or yaml */
    } else {
        struct mgo_ctl_table t;
        mgo_ctl__table_init(&t, 6);
        const char *head[] = {"ID", "APP", "VERSION", "STATE", "BATCH", "DEVICES"};
        mgo_ctl__table_add(&t, head);
        const struct mgo_value *l = mgo_value_get(&r.tree, "rollouts");
        for (size_t i = 0; l && l->kind == MGO_V_ARRAY && i < l->as.array.len; i++) {
            const struct mgo_value *e = &l->as.array.items[i];
            char b[16], n[16], batch[40], counts[512];
            mgo_ctl__text(mgo_value_get(e, "batch"), b, sizeof b);
            mgo_ctl__text(mgo_value_get(e, "batchCount"), n, sizeof n);
            snprintf(batch, sizeof batch, "%llu/%s", strtoull(b, NULL, 10) + 1, n);
            print_counts(mgo_value_get(e, "counts"), counts, sizeof counts);
            const char *row[] = {mgo_ctl__str(e, "id"),
                                 mgo_ctl__str(e, "app"),
                                 mgo_ctl__str(e, "version"),
                                 mgo_ctl__str(e, "state"),
                                 batch,
                                 counts};
            mgo_ctl__table_add(&t, row);
        }
        mgo_ctl__table_print(&t, stdout);
        mgo_ctl__table_cleanup(&t);
    }
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

static int rollout_action(const struct mgo_ctl_conn *c, const char *action, const char *id)
{
    char path[200], esc[96];
    mgo_ctl__escape(id, esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/rollouts/%s/%s", esc, action);
    struct mgo_ctl_reply r;
    if (mgo_ctl__request(c, "POST", path, NULL, NULL, 0, &r) != 0)
        return MGO_CTL_EXIT_FAIL;
    int rc = MGO_CTL_EXIT_OK;
    if (r.status != 200)
        rc = mgo_ctl__print_problem(c, &r);
    else if (!mgo_ctl__print_data(c, &r)) /* json or yaml, else the summary */
        print_summary(&r.tree, false);
    mgo_ctl__reply_cleanup(&r);
    return rc;
}

int mgo_ctl_rollout(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    if (help == 1) {
        fputs(ROLLOUT_USAGE, stdout);
        return MGO_CTL_EXIT_OK;
    }
    if (help < 0 || argc < 1) {
        fputs(ROLLOUT_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "create") == 0)
        return rollout_create(&c, argc - 1, argv + 1);
    bool watch = false, targets = false, active = false;
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0)
            watch = true;
        else if (strcmp(argv[i], "--targets") == 0)
            targets = true;
        else if (strcmp(argv[i], "--active") == 0)
            active = true;
        else if (argv[i][0] != '-' && !id)
            id = argv[i];
        else {
            fputs(ROLLOUT_USAGE, stderr);
            return MGO_CTL_EXIT_USAGE;
        }
    }
    bool list = strcmp(sub, "list") == 0;
    bool show = strcmp(sub, "show") == 0;
    bool action = strcmp(sub, "pause") == 0 || strcmp(sub, "resume") == 0 ||
                  strcmp(sub, "cancel") == 0 || strcmp(sub, "rollback") == 0;
    if ((!list && !show && !action) || (list && id) || (!list && !id) ||
        ((watch || targets) && !show) || (active && !list)) {
        fputs(ROLLOUT_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0)
        return MGO_CTL_EXIT_FAIL;
    if (list)
        return rollout_list(&c, active);
    if (action)
        return rollout_action(&c, sub, id);
    if (watch)
        return rollout_watch(&c, id);
    if (targets)
        return rollout_targets(&c, id);
    struct mgo_ctl_reply r;
    int rc = get_rollout(&c, id, &r);
    if (rc != MGO_CTL_EXIT_OK)
        return rc;
    if (c.json)
        printf("%.*s\n", (int)r.body.len, (const char *)r.body.data);
    else
        print_summary(&r.tree, true);
    mgo_ctl__reply_cleanup(&r);
    return MGO_CTL_EXIT_OK;
}

/* ---- device label -------------------------------------------------------------------------- */

static void print_labels(const struct mgo_value *map, const char *title)
{
    printf("%s:\n", title);
    for (size_t i = 0; map && map->kind == MGO_V_MAP && i < map->as.map.len; i++) {
        char v[256];
        mgo_ctl__text(&map->as.map.items[i].value, v, sizeof v);
        printf("  %s=%s\n", map->as.map.items[i].key, v);
    }
}

int mgo_ctl__device_label(int argc, char **argv)
{
    struct mgo_ctl_conn c = {0};
    argc--;
    argv++;
    int help = mgo_ctl__common_opts(&c, &argc, argv);
    if (help == 1) {
        fputs(LABEL_USAGE, stdout);
        return MGO_CTL_EXIT_OK;
    }
    if (help < 0 || argc < 1 || argv[0][0] == '-') {
        fputs(LABEL_USAGE, stderr);
        return MGO_CTL_EXIT_USAGE;
    }
    struct mgo_buf body;
    mgo_buf_init(&body, 1u << 20);
    struct mgo_jw w;
    mgo_jw_init(&w, &body);
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "labels");
    mgo_jw_obj(&w);
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        size_t n = strlen(a);
        char key[160];
        if (eq && eq != a) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
            mgo_jw_kstr(&w, key, eq + 1);
        } else if (!eq && n > 1 && a[n - 1] == '-') {
            snprintf(key, sizeof key, "%.*s", (int)(n - 1), a);
            mgo_jw_key(&w, key);
            mgo_jw_null(&w);
        } else {
            fprintf(stderr, "margoctl device label: %s: must be KEY=VALUE or KEY-\n", a);
            bad = true;
        }
    }
    mgo_jw_obj_end(&w);
    mgo_jw_obj_end(&w);
    int rc = MGO_CTL_EXIT_FAIL;
    if (bad || w.err) {
        fputs(LABEL_USAGE, stderr);
        mgo_buf_cleanup(&body);
        return MGO_CTL_EXIT_USAGE;
    }
    if (mgo_ctl__conn_ready(&c) != 0) {
        mgo_buf_cleanup(&body);
        return MGO_CTL_EXIT_FAIL;
    }
    char path[200], esc[128];
    mgo_ctl__escape(argv[0], esc, sizeof esc);
    snprintf(path, sizeof path, "/api/v1/devices/%s/labels", esc);
    struct mgo_ctl_reply r;
    bool change = argc > 1;
    if (mgo_ctl__request(&c, change ? "PATCH" : "GET", path, change ? "application/json" : NULL,
                         change ? body.data : NULL, change ? body.len : 0, &r) == 0) {
        if (r.status != 200) {
            rc = mgo_ctl__print_problem(&c, &r);
        } else {
            rc = MGO_CTL_EXIT_OK;
            if (c.json) {
                printf("%.*s\n", (int)r.body.len, (const char *)r.body.data);
            } else {
                print_labels(mgo_value_get(&r.tree, "labels"), "labels");
                print_labels(mgo_value_get(&r.tree, "derived"), "derived");
            }
        }
        mgo_ctl__reply_cleanup(&r);
    }
    mgo_buf_cleanup(&body);
    return rc;
}
