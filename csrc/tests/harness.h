/*
 * harness.h: what the standalone C test programs (csrc/tests/test_*.c) share.
 */
#ifndef NR_TESTS_HARNESS_H
#define NR_TESTS_HARNESS_H

#include <stdint.h>

/* xorshift64* on *state (nonzero): a test-local data generator, independent of
 * the core's nr_rng, so that runs are reproducible and a bug in nr_rng cannot
 * hide in the data that tests it. */
static inline uint64_t xorshift64s(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

#endif /* NR_TESTS_HARNESS_H */
