/* backoff.h - jittered exponential backoff: the first delay is base_ms, the delay before
 * attempt n is uniform in [base_ms, min(max_ms, base_ms * 2^n)]. A zero seed is replaced by
 * a fixed non-zero one. */
#ifndef MGO_BACKOFF_H
#define MGO_BACKOFF_H

#include <stdint.h>

struct mgo_backoff {
    uint32_t base_ms;
    uint32_t max_ms;
    uint32_t attempt;
    uint64_t rng; /* xorshift state; seed with anything non-zero */
};

void mgo_backoff_init(struct mgo_backoff *b, uint32_t base_ms, uint32_t max_ms, uint64_t seed);
/* Delay before the next attempt; advances the attempt counter. */
uint32_t mgo_backoff_next_ms(struct mgo_backoff *b);
void mgo_backoff_reset(struct mgo_backoff *b);

#endif
