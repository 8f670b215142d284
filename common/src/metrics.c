/* metrics.c - atomic counters and histograms; the Prometheus text format 0.0.4. */
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mgo/metrics.h"
#include "mgo/value.h"

const double mgo_metrics_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10,   60};
const size_t mgo_metrics_latency_bounds_len =
    sizeof mgo_metrics_latency_bounds / sizeof mgo_metrics_latency_bounds[0];

void mgo_histogram_init(struct mgo_histogram *h, const double *bounds, size_t n_bounds)
{
    assert(n_bounds <= MGO_METRICS_MAX_BUCKETS);
    h->bounds = bounds;
    h->n_bounds = n_bounds;
    for (size_t i = 0; i <= MGO_METRICS_MAX_BUCKETS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->sum_ns, 0);
}

void mgo_histogram_observe_ns(struct mgo_histogram *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    size_t i = 0;
    while (i < h->n_bounds && s > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

uint64_t mgo_metrics_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* HELP text: backslash and newline escaped; label values also the double quote. */
static mgo_err append_escaped(struct mgo_buf *b, const char *s, bool quote)
{
    for (const char *p = s; *p; p++) {
        mgo_err err;
        if (*p == '\\')
            err = mgo_buf_append_str(b, "\\\\");
        else if (*p == '\n')
            err = mgo_buf_append_str(b, "\\n");
        else if (*p == '"' && quote)
            err = mgo_buf_append_str(b, "\\\"");
        else
            err = mgo_buf_append(b, p, 1);
        if (err)
            return err;
    }
    return MGO_OK;
}

mgo_err mgo_metrics_family(struct mgo_buf *b, const char *name, const char *type, const char *help)
{
    mgo_err err = mgo_buf_printf(b, "# HELP %s ", name);
    if (!err)
        err = append_escaped(b, help, false);
    if (!err)
        err = mgo_buf_printf(b, "\n# TYPE %s %s\n", name, type);
    return err;
}

static mgo_err sample_head(struct mgo_buf *b, const char *name,
                           const struct mgo_metrics_label *labels, size_t n_labels)
{
    assert(n_labels <= MGO_METRICS_MAX_LABELS);
    mgo_err err = mgo_buf_append_str(b, name);
    for (size_t i = 0; i < n_labels && !err; i++) {
        err = mgo_buf_printf(b, "%s%s=\"", i == 0 ? "{" : ",", labels[i].name);
        if (!err)
            err = append_escaped(b, labels[i].value, true);
        if (!err)
            err = mgo_buf_append_str(b, "\"");
    }
    if (!err && n_labels > 0)
        err = mgo_buf_append_str(b, "}");
    return err;
}

/* Values as the format spells them: +Inf, -Inf, NaN, else the shortest exact decimal. */
static mgo_err append_value(struct mgo_buf *b, double v)
{
    if (isnan(v))
        return mgo_buf_append_str(b, " NaN\n");
    if (isinf(v))
        return mgo_buf_append_str(b, v > 0 ? " +Inf\n" : " -Inf\n");
    char text[MGO_DOUBLE_STR_SIZE];
    mgo_format_double(v, text);
    return mgo_buf_printf(b, " %s\n", text);
}

mgo_err mgo_metrics_sample(struct mgo_buf *b, const char *name,
                           const struct mgo_metrics_label *labels, size_t n_labels, double value)
{
    mgo_err err = sample_head(b, name, labels, n_labels);
    return err ? err : append_value(b, value);
}

mgo_err mgo_metrics_sample_u64(struct mgo_buf *b, const char *name,
                               const struct mgo_metrics_label *labels, size_t n_labels,
                               uint64_t value)
{
    mgo_err err = sample_head(b, name, labels, n_labels);
    return err ? err : mgo_buf_printf(b, " %llu\n", (unsigned long long)value);
}

mgo_err mgo_metrics_histogram(struct mgo_buf *b, const char *name,
                              const struct mgo_metrics_label *labels, size_t n_labels,
                              const struct mgo_histogram *h)
{
    assert(n_labels < MGO_METRICS_MAX_LABELS);
    char series[128];
    struct mgo_metrics_label all[MGO_METRICS_MAX_LABELS];
    if (n_labels > 0)
        memcpy(all, labels, n_labels * sizeof *labels);
    uint64_t cumulative = 0;
    mgo_err err = MGO_OK;
    snprintf(series, sizeof series, "%s_bucket", name);
    for (size_t i = 0; i <= h->n_bounds && !err; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        char le[MGO_DOUBLE_STR_SIZE];
        if (i < h->n_bounds)
            mgo_format_double(h->bounds[i], le);
        else
            snprintf(le, sizeof le, "+Inf");
        all[n_labels] = (struct mgo_metrics_label){"le", le};
        err = mgo_metrics_sample_u64(b, series, all, n_labels + 1, cumulative);
    }
    double sum_s = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
    snprintf(series, sizeof series, "%s_sum", name);
    if (!err)
        err = mgo_metrics_sample(b, series, labels, n_labels, sum_s);
    snprintf(series, sizeof series, "%s_count", name);
    if (!err)
        err = mgo_metrics_sample_u64(b, series, labels, n_labels, cumulative);
    return err;
}
