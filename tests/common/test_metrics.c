/* test_metrics.c - counters, histograms and the Prometheus text format 0.0.4 (mgo/metrics.h):
 * escaping of HELP text and label values, cumulative buckets ending with +Inf, _sum and
 * _count, counters and histograms updated from several threads. */
#include <pthread.h>
#include <string.h>

#include "mgo/metrics.h"
#include "mgo_test.h"

static char *text_of(struct mgo_buf *b)
{
    CU_ASSERT_FATAL(mgo_buf_append(b, "", 1) == MGO_OK);
    return (char *)b->data;
}

static void test_family_and_escaping(void)
{
    struct mgo_buf b;
    mgo_buf_init(&b, 4096);
    CU_ASSERT(mgo_metrics_family(&b, "margo_x", "gauge", "a \\ b\nc \"q\"") == MGO_OK);
    struct mgo_metrics_label l[] = {{"app", "a\"b\\c\nd"}, {"state", "ok"}};
    CU_ASSERT(mgo_metrics_sample_u64(&b, "margo_x", l, 2, 7) == MGO_OK);
    CU_ASSERT(mgo_metrics_sample(&b, "margo_y", NULL, 0, 0.25) == MGO_OK);
    CU_ASSERT(mgo_metrics_sample(&b, "margo_y", NULL, 0, 1.0 / 0.0) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(text_of(&b), "# HELP margo_x a \\\\ b\\nc \"q\"\n"
                                        "# TYPE margo_x gauge\n"
                                        "margo_x{app=\"a\\\"b\\\\c\\nd\",state=\"ok\"} 7\n"
                                        "margo_y 0.25\n"
                                        "margo_y +Inf\n");
    mgo_buf_cleanup(&b);
}

static void test_histogram_cumulative(void)
{
    static const double bounds[] = {0.01, 0.1, 1};
    struct mgo_histogram h;
    mgo_histogram_init(&h, bounds, 3);
    mgo_histogram_observe_ns(&h, 5000000);    /* 0.005 s: first bucket */
    mgo_histogram_observe_ns(&h, 10000000);   /* 0.01 s: on the bound, le is inclusive */
    mgo_histogram_observe_ns(&h, 500000000);  /* 0.5 s */
    mgo_histogram_observe_ns(&h, 3000000000); /* 3 s: only +Inf */
    struct mgo_buf b;
    mgo_buf_init(&b, 4096);
    struct mgo_metrics_label l = {"op", "commit"};
    CU_ASSERT(mgo_metrics_histogram(&b, "margo_d_seconds", &l, 1, &h) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(text_of(&b), "margo_d_seconds_bucket{op=\"commit\",le=\"0.01\"} 2\n"
                                        "margo_d_seconds_bucket{op=\"commit\",le=\"0.1\"} 2\n"
                                        "margo_d_seconds_bucket{op=\"commit\",le=\"1\"} 3\n"
                                        "margo_d_seconds_bucket{op=\"commit\",le=\"+Inf\"} 4\n"
                                        "margo_d_seconds_sum{op=\"commit\"} 3.515\n"
                                        "margo_d_seconds_count{op=\"commit\"} 4\n");
    mgo_buf_cleanup(&b);
}

static void test_histogram_without_labels_empty(void)
{
    struct mgo_histogram h;
    mgo_histogram_init(&h, mgo_metrics_latency_bounds, mgo_metrics_latency_bounds_len);
    struct mgo_buf b;
    mgo_buf_init(&b, 8192);
    CU_ASSERT(mgo_metrics_histogram(&b, "margo_e", NULL, 0, &h) == MGO_OK);
    const char *t = text_of(&b);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "margo_e_bucket{le=\"0.001\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "margo_e_bucket{le=\"+Inf\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\nmargo_e_sum 0\nmargo_e_count 0\n"));
    mgo_buf_cleanup(&b);
}

static void test_buffer_cap(void)
{
    struct mgo_buf b;
    mgo_buf_init(&b, 16);
    CU_ASSERT(mgo_metrics_family(&b, "margo_long_name", "counter", "help text") != MGO_OK);
    mgo_buf_cleanup(&b);
}

struct shared {
    struct mgo_counter c;
    struct mgo_histogram h;
};

static void *bump(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 10000; i++) {
        mgo_counter_inc(&s->c);
        mgo_histogram_observe_ns(&s->h, 1000);
    }
    return NULL;
}

static void test_threads(void)
{
    static const double bounds[] = {1};
    struct shared s;
    atomic_init(&s.c.n, 0);
    mgo_histogram_init(&s.h, bounds, 1);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        CU_ASSERT_FATAL(pthread_create(&t[i], NULL, bump, &s) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(mgo_counter_get(&s.c), 40000);
    struct mgo_buf b;
    mgo_buf_init(&b, 4096);
    CU_ASSERT(mgo_metrics_histogram(&b, "margo_t", NULL, 0, &s.h) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(text_of(&b), "margo_t_bucket{le=\"1\"} 40000\n"
                                        "margo_t_bucket{le=\"+Inf\"} 40000\n"
                                        "margo_t_sum 0.04\n"
                                        "margo_t_count 40000\n");
    mgo_buf_cleanup(&b);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"HELP/TYPE lines, label and help escaping, values", test_family_and_escaping},
        {"histogram buckets cumulative, +Inf, _sum, _count", test_histogram_cumulative},
        {"empty histogram without labels", test_histogram_without_labels_empty},
        {"a full buffer is an error", test_buffer_cap},
        {"counters and histograms from several threads", test_threads},
        {NULL, NULL},
    };
    mgo_test_add_suite("metrics", cases);
}
