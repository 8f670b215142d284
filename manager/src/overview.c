/* overview.c - GET /api/v1/overview (see overview.h, docs/api.md "Fleet overview"). */
#include "overview.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "mgo/failure.h"

/* "N" + unit, N a decimal without sign or leading zero; false when it is not one. */
static bool parse_window(const char *text, int64_t *out_s)
{
    size_t len = strlen(text);
    if (len < 2 || len > 9 || text[0] < '1' || text[0] > '9')
        return false;
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        n = n * 10 + (text[i] - '0');
    }
    int64_t unit;
    switch (text[len - 1]) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    default:
        return false;
    }
    *out_s = n * unit; /* at most 99,999,999 days: no overflow */
    return true;
}

mgo_err mgo_overview__parse(const char *window, const char *failures,
                            struct mgo_overview_params *out, struct mgo_problems *p)
{
    out->window_s = MGO_OVERVIEW_DEFAULT_WINDOW_S;
    out->failures = MGO_OVERVIEW_DEFAULT_FAILURES;
    bool ok = true;
    if (window) {
        int64_t s = 0;
        if (!parse_window(window, &s) || s > MGO_OVERVIEW_MAX_WINDOW_S) {
            mgo_problems_add(p, "window",
                             "must be a whole number followed by s, m, h or d, from 1s to 30d "
                             "(e.g. 24h)");
            ok = false;
        } else {
            out->window_s = s;
        }
    }
    if (failures) {
        char *end = NULL;
        unsigned long n = strtoul(failures, &end, 10);
        if (failures[0] < '0' || failures[0] > '9' || *end != '\0' ||
            n > MGO_OVERVIEW_MAX_FAILURES || strlen(failures) > 3) {
            mgo_problems_add(p, "failures", "must be a whole number from 0 to %u",
                             MGO_OVERVIEW_MAX_FAILURES);
            ok = false;
        } else {
            out->failures = (uint32_t)n;
        }
    }
    return ok ? MGO_OK : MGO_ERR_INVALID;
}

static mgo_err sample_visit(const struct mgo_mgr_sample *row, void *ctx)
{
    struct mgo_jw *w = ctx;
    mgo_jw_obj(w);
    mgo_jw_ktime(w, "t", row->t_ms);
    mgo_jw_ku64(w, "online", row->online);
    mgo_jw_ku64(w, "offline", row->offline);
    mgo_jw_obj_end(w);
    return w->err;
}

static const char *state_key(const char *state)
{
    return state ? state : "unreported";
}

static mgo_err state_visit(const struct mgo_mgr_state_count *row, void *ctx)
{
    struct mgo_jw *w = ctx;
    mgo_jw_ku64(w, state_key(row->state), row->count);
    return w->err;
}

struct app_ctx {
    struct mgo_jw *w;
    char app[MGO_MAX_APP_ID_LEN + 1]; /* the app whose entry is open; "" = none */
    bool open;
    uint64_t apps;    /* entries written */
    uint64_t omitted; /* apps past MGO_OVERVIEW_MAX_APPS */
    uint64_t total;   /* deployments of the open entry */
};

static void app_close(struct app_ctx *c)
{
    if (!c->open)
        return;
    mgo_jw_obj_end(c->w); /* states */
    mgo_jw_ku64(c->w, "total", c->total);
    mgo_jw_obj_end(c->w);
    c->open = false;
}

static mgo_err app_visit(const struct mgo_mgr_state_count *row, void *ctx)
{
    struct app_ctx *c = ctx;
    bool same = c->apps + c->omitted > 0 && strcmp(c->app, row->app_id) == 0;
    if (!same) {
        app_close(c);
        snprintf(c->app, sizeof c->app, "%s", row->app_id);
        if (c->apps == MGO_OVERVIEW_MAX_APPS) {
            c->omitted++;
            return MGO_OK;
        }
        c->apps++;
        c->open = true;
        c->total = 0;
        mgo_jw_obj(c->w);
        mgo_jw_kstr(c->w, "app", row->app_id);
        mgo_jw_key(c->w, "states");
        mgo_jw_obj(c->w);
    }
    if (!c->open)
        return MGO_OK; /* an omitted app */
    mgo_jw_ku64(c->w, state_key(row->state), row->count);
    c->total += row->count;
    return c->w->err;
}

static mgo_err failure_visit(const struct mgo_mgr_failure_row *row, void *ctx)
{
    struct mgo_jw *w = ctx;
    mgo_jw_obj(w);
    mgo_jw_ktime(w, "time", row->received_ms);
    mgo_jw_kstr(w, "deviceId", row->device_id);
    mgo_jw_kstr(w, "deploymentId", row->deployment_id);
    mgo_jw_kstr(w, "app", row->app_id);
    mgo_jw_kstr(w, "version", row->app_version);
    mgo_jw_kstr(w, "component", row->component);
    mgo_jw_kstr(w, "code", row->code);
    mgo_jw_kstr(w, "message", row->message);
    mgo_jw_kstr(w, "class", mgo_failure_class_name(mgo_failure_class_of(row->code)));
    mgo_jw_obj_end(w);
    return w->err;
}

mgo_err mgo_overview__write(struct mgo_mgr_store *store, const struct mgo_overview_params *params,
                            int64_t now_ms, struct mgo_buf *out)
{
    int64_t window_ms = params->window_s * 1000;
    int64_t since_ms = now_ms - window_ms;
    /* at most MGO_OVERVIEW_MAX_POINTS buckets fit in the window */
    int64_t bucket_ms = window_ms / MGO_OVERVIEW_MAX_POINTS + 1;
    uint64_t online = 0, offline = 0;
    mgo_err err = mgo_mgr_store_device_counts(store, &online, &offline);
    if (err)
        return err;
    struct mgo_jw w;
    mgo_jw_init(&w, out);
    mgo_jw_obj(&w);
    mgo_jw_ki64(&w, "windowSeconds", params->window_s);
    mgo_jw_ktime(&w, "from", since_ms);
    mgo_jw_ktime(&w, "to", now_ms);
    mgo_jw_key(&w, "devices");
    mgo_jw_obj(&w);
    mgo_jw_ku64(&w, "online", online);
    mgo_jw_ku64(&w, "offline", offline);
    mgo_jw_obj_end(&w);
    mgo_jw_key(&w, "online");
    mgo_jw_arr(&w);
    err = mgo_mgr_store_samples(store, since_ms, now_ms, bucket_ms, sample_visit, &w);
    mgo_jw_arr_end(&w);
    if (err)
        return err;
    mgo_jw_key(&w, "deploymentsByState");
    mgo_jw_obj(&w);
    err = mgo_mgr_store_deployment_states(store, false, state_visit, &w);
    mgo_jw_obj_end(&w);
    if (err)
        return err;
    struct app_ctx apps = {.w = &w};
    mgo_jw_key(&w, "byApp");
    mgo_jw_arr(&w);
    err = mgo_mgr_store_deployment_states(store, true, app_visit, &apps);
    app_close(&apps);
    mgo_jw_arr_end(&w);
    if (err)
        return err;
    mgo_jw_ku64(&w, "appsOmitted", apps.omitted);
    mgo_jw_key(&w, "recentFailures");
    mgo_jw_arr(&w);
    if (params->failures > 0)
        err = mgo_mgr_store_failures(store, since_ms, params->failures, failure_visit, &w);
    mgo_jw_arr_end(&w);
    if (err)
        return err;
    mgo_jw_obj_end(&w);
    return w.err;
}
