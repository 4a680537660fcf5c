/*
 * harness.h: what the standalone C test programs (csrc/tests/test_*.c) share.
 */
#ifndef NR_TESTS_HARNESS_H
#define NR_TESTS_HARNESS_H

#include <stdint.h>
#include <stdio.h>

/* The checks a program made and those that failed (CHECK; one program per file). */
static int n_failed = 0;
static int n_checks = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        n_checks++;                                                                  \
        if (!(cond)) {                                                               \
            n_failed++;                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* The program's exit status: 1 (and the count on stderr) when a check failed. */
static inline int nr_test_report(const char *name)
{
    if (n_failed) {
        fprintf(stderr, "%s: %d of %d checks failed\n", name, n_failed, n_checks);
        return 1;
    }
    printf("%s: all %d checks passed\n", name, n_checks);
    return 0;
}

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
