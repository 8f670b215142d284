/* metrics.h - counters and fixed-bucket histograms that any thread may update (relaxed
 * atomics), and the Prometheus text exposition format 0.0.4 written into a buffer
 * (docs/operations.md "Metrics"). No registry object: each daemon keeps its own metrics in a
 * struct of its own and writes them family by family when scraped, so every name, label
 * set and bound is visible in one place of its code.
 *
 * Writers never take locks: a histogram read while another thread observes may be one
 * observation behind in _sum; its _count is always its +Inf bucket. */
#ifndef MGO_METRICS_H
#define MGO_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"

/* Finite bucket bounds of one histogram at most (+Inf is added). */
#define MGO_METRICS_MAX_BUCKETS 16u
/* Labels of one sample at most. */
#define MGO_METRICS_MAX_LABELS 4u
/* The content type of the text format. */
#define MGO_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct mgo_counter {
    atomic_uint_least64_t n;
};

static inline void mgo_counter_add(struct mgo_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->n, n, memory_order_relaxed);
}
static inline void mgo_counter_inc(struct mgo_counter *c)
{
    mgo_counter_add(c, 1);
}
static inline uint64_t mgo_counter_get(const struct mgo_counter *c)
{
    return atomic_load_explicit(&c->n, memory_order_relaxed);
}

/* A histogram of durations, in seconds. */
struct mgo_histogram {
    const double *bounds; /* ascending upper bounds in seconds (static storage) */
    size_t n_bounds;      /* at most MGO_METRICS_MAX_BUCKETS */
    atomic_uint_least64_t buckets[MGO_METRICS_MAX_BUCKETS + 1]; /* not cumulative; last: +Inf */
    atomic_uint_least64_t sum_ns;
};

/* Latency bounds shared by the daemons' histograms: 1 ms to 60 s. */
extern const double mgo_metrics_latency_bounds[];
extern const size_t mgo_metrics_latency_bounds_len;

/* bounds must be ascending and outlive h; n_bounds <= MGO_METRICS_MAX_BUCKETS (asserted). */
void mgo_histogram_init(struct mgo_histogram *h, const double *bounds, size_t n_bounds);
/* Any thread. */
void mgo_histogram_observe_ns(struct mgo_histogram *h, uint64_t ns);
/* Monotonic clock in nanoseconds, for durations. */
uint64_t mgo_metrics_now_ns(void);

struct mgo_metrics_label {
    const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]* (a programmer's constant) */
    const char *value; /* any UTF-8; escaped as the format requires */
};

/* "# HELP name help\n# TYPE name type\n" (help escaped). type: "counter", "gauge",
 * "histogram". Errors of mgo_buf (MGO_ERR_NOMEM, MGO_ERR_LIMIT) for all of these. */
mgo_err mgo_metrics_family(struct mgo_buf *b, const char *name, const char *type,
                           const char *help) MGO_MUST_CHECK;
/* One sample line: name{labels} value. n_labels <= MGO_METRICS_MAX_LABELS. */
mgo_err mgo_metrics_sample(struct mgo_buf *b, const char *name,
                           const struct mgo_metrics_label *labels, size_t n_labels,
                           double value) MGO_MUST_CHECK;
mgo_err mgo_metrics_sample_u64(struct mgo_buf *b, const char *name,
                               const struct mgo_metrics_label *labels, size_t n_labels,
                               uint64_t value) MGO_MUST_CHECK;
/* The _bucket lines (cumulative, le="..." added to labels, ending with le="+Inf"), _sum
 * (seconds) and _count of h. n_labels < MGO_METRICS_MAX_LABELS (le takes one). */
mgo_err mgo_metrics_histogram(struct mgo_buf *b, const char *name,
                              const struct mgo_metrics_label *labels, size_t n_labels,
                              const struct mgo_histogram *h) MGO_MUST_CHECK;

#endif
