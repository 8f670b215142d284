/* backoff.c - jittered exponential backoff ("full jitter") on a xorshift64 generator.
 *
 * The delay before attempt n is uniform in [lo, hi] with lo = min(base_ms, max_ms) and
 * hi = min(max_ms, base_ms * 2^n) (saturating), so the first retry waits base_ms and later
 * ones spread over a window that doubles until it reaches max_ms. */
#include "mgo/backoff.h"

/* Any fixed non-zero value: xorshift never leaves zero once there. */
#define DEFAULT_SEED 0x9E3779B97F4A7C15ull
/* 2^32 already exceeds every uint32_t cap, so the attempt counter stops growing here. */
#define MAX_SHIFT 32u

void mgo_backoff_init(struct mgo_backoff *b, uint32_t base_ms, uint32_t max_ms, uint64_t seed)
{
    b->base_ms = base_ms;
    b->max_ms = max_ms;
    b->attempt = 0;
    b->rng = seed != 0 ? seed : DEFAULT_SEED;
}

static uint64_t xorshift64(uint64_t *state)
{
    uint64_t x = *state != 0 ? *state : DEFAULT_SEED;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

uint32_t mgo_backoff_next_ms(struct mgo_backoff *b)
{
    uint32_t lo = b->base_ms < b->max_ms ? b->base_ms : b->max_ms;
    uint64_t hi = (uint64_t)b->base_ms << (b->attempt < MAX_SHIFT ? b->attempt : MAX_SHIFT);
    if (hi > b->max_ms)
        hi = b->max_ms;
    if (hi < lo)
        hi = lo;
    if (b->attempt < MAX_SHIFT)
        b->attempt++;
    uint64_t span = hi - lo + 1u;
    return (uint32_t)(lo + xorshift64(&b->rng) % span);
}

void mgo_backoff_reset(struct mgo_backoff *b)
{
    b->attempt = 0;
}
