/* test_backoff.c - jittered exponential backoff (mgo/backoff.h). */
#include <stdint.h>

#include "mgo/backoff.h"
#include "mgo_test.h"

static uint32_t window_hi(uint32_t base, uint32_t max, uint32_t attempt)
{
    uint64_t hi = attempt >= 32 ? UINT64_MAX : (uint64_t)base << attempt;
    return hi > max ? max : (uint32_t)hi;
}

static void test_first_delay_is_base(void)
{
    struct mgo_backoff b;
    mgo_backoff_init(&b, 250, 60000, 42);
    CU_ASSERT_EQUAL(mgo_backoff_next_ms(&b), 250);
}

static void test_every_delay_within_window(void)
{
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct mgo_backoff b;
        mgo_backoff_init(&b, 100, 30000, seed);
        for (uint32_t n = 0; n < 40; n++) {
            uint32_t d = mgo_backoff_next_ms(&b);
            CU_ASSERT(d >= 100);
            CU_ASSERT(d <= window_hi(100, 30000, n));
        }
    }
}

static void test_window_grows_then_caps(void)
{
    /* Over many runs the largest delay seen at attempt n goes past the previous window. */
    uint32_t prev_best = 0;
    for (uint32_t n = 1; n <= 6; n++) {
        uint32_t best = 0;
        for (uint64_t seed = 1; seed <= 300; seed++) {
            struct mgo_backoff b;
            mgo_backoff_init(&b, 100, 100000, seed * 7919u);
            uint32_t d = 0;
            for (uint32_t i = 0; i <= n; i++)
                d = mgo_backoff_next_ms(&b);
            if (d > best)
                best = d;
        }
        CU_ASSERT(best > window_hi(100, 100000, n - 1));
        CU_ASSERT(best > prev_best);
        prev_best = best;
    }
    /* Far past the cap, delays stay at most max_ms but still reach near it. */
    struct mgo_backoff b;
    mgo_backoff_init(&b, 100, 5000, 99);
    uint32_t best = 0;
    for (int i = 0; i < 500; i++) {
        uint32_t d = mgo_backoff_next_ms(&b);
        CU_ASSERT(d <= 5000);
        if (d > best)
            best = d;
    }
    CU_ASSERT(best > 4500);
}

static void test_reset_starts_over(void)
{
    struct mgo_backoff b;
    mgo_backoff_init(&b, 300, 60000, 7);
    for (int i = 0; i < 10; i++)
        (void)mgo_backoff_next_ms(&b);
    CU_ASSERT(b.attempt > 0);
    mgo_backoff_reset(&b);
    CU_ASSERT_EQUAL(b.attempt, 0);
    CU_ASSERT_EQUAL(mgo_backoff_next_ms(&b), 300);
    uint32_t d = mgo_backoff_next_ms(&b);
    CU_ASSERT(d >= 300 && d <= 600);
}

static void test_jitter_spreads_devices(void)
{
    /* Many devices reconnecting at attempt 8 (window [100, 25600]) must not bunch up. */
    uint32_t lo = UINT32_MAX, hi = 0;
    unsigned buckets[4] = {0};
    for (uint64_t dev = 1; dev <= 1000; dev++) {
        struct mgo_backoff b;
        mgo_backoff_init(&b, 100, 25600, dev * 0x9E3779B9u);
        uint32_t d = 0;
        for (int i = 0; i <= 8; i++)
            d = mgo_backoff_next_ms(&b);
        if (d < lo)
            lo = d;
        if (d > hi)
            hi = d;
        buckets[(d - 100) * 4 / 25501]++;
    }
    CU_ASSERT(lo < 1000);
    CU_ASSERT(hi > 24000);
    for (int i = 0; i < 4; i++)
        CU_ASSERT(buckets[i] > 150); /* roughly uniform: 250 expected per quarter */
}

static void test_seeds_differ_and_zero_seed_works(void)
{
    struct mgo_backoff a, b, z;
    mgo_backoff_init(&a, 100, 60000, 1);
    mgo_backoff_init(&b, 100, 60000, 2);
    mgo_backoff_init(&z, 100, 60000, 0);
    int same = 0;
    uint32_t zfirst = 0;
    int zvaries = 0;
    for (int i = 0; i < 20; i++) {
        uint32_t da = mgo_backoff_next_ms(&a);
        uint32_t db = mgo_backoff_next_ms(&b);
        uint32_t dz = mgo_backoff_next_ms(&z);
        if (i > 2 && da == db)
            same++;
        if (i == 10)
            zfirst = dz;
        if (i > 10 && dz != zfirst)
            zvaries = 1;
    }
    CU_ASSERT(same < 3);
    CU_ASSERT(zvaries);
}

static void test_odd_bounds(void)
{
    struct mgo_backoff b;
    /* max below base: the cap wins. */
    mgo_backoff_init(&b, 1000, 500, 3);
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(mgo_backoff_next_ms(&b), 500);
    /* Huge values do not overflow. */
    mgo_backoff_init(&b, UINT32_MAX, UINT32_MAX, 5);
    for (int i = 0; i < 70; i++)
        CU_ASSERT_EQUAL(mgo_backoff_next_ms(&b), UINT32_MAX);
    mgo_backoff_init(&b, 1, UINT32_MAX, 5);
    for (int i = 0; i < 70; i++)
        CU_ASSERT(mgo_backoff_next_ms(&b) >= 1);
    /* base 0 means "no wait at first". */
    mgo_backoff_init(&b, 0, 1000, 5);
    CU_ASSERT_EQUAL(mgo_backoff_next_ms(&b), 0);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"first delay is base_ms", test_first_delay_is_base},
        {"every delay within [base, min(max, base*2^n)]", test_every_delay_within_window},
        {"window grows then caps at max_ms", test_window_grows_then_caps},
        {"reset starts over at base_ms", test_reset_starts_over},
        {"jitter spreads many devices", test_jitter_spreads_devices},
        {"seeds differ; zero seed still random", test_seeds_differ_and_zero_seed_works},
        {"odd bounds: max<base, huge, zero", test_odd_bounds},
        {NULL, NULL},
    };
    mgo_test_add_suite("backoff", cases);
}
