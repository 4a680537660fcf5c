/*
 * nr_rng.h: xoshiro256** random numbers, seeded through splitmix64.
 *
 * A struct nr_rng is plain data: copy it, keep one per thread. Nothing here
 * allocates; every function is thread-safe on distinct states.
 */
#ifndef NR_RNG_H
#define NR_RNG_H

#include <stdint.h>

struct nr_rng {
    uint64_t s[4]; /* xoshiro256** state; never all zero after nr_rng_seed */
};

/* One splitmix64 step: advances *x and returns a well-mixed 64-bit value. */
uint64_t nr_rng_splitmix64(uint64_t *x);

/* Seed r from seed and a stream number (e.g. a thread or epoch index), so that
 * distinct (seed, stream) pairs give independent-looking sequences. */
void nr_rng_seed(struct nr_rng *r, uint64_t seed, uint64_t stream);

/* Next 64 random bits. */
uint64_t nr_rng_next(struct nr_rng *r);

/* Uniform integer in [0, n), n > 0, without modulo bias (Lemire's method). */
uint64_t nr_rng_below(struct nr_rng *r, uint64_t n);

/* Uniform float in [0, 1) with 24 random bits. */
float nr_rng_uniform(struct nr_rng *r);

#endif /* NR_RNG_H */
