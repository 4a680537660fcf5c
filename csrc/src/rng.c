#include "neurec/nr_rng.h"

uint64_t nr_rng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void nr_rng_seed(struct nr_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = nr_rng_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t nr_rng_next(struct nr_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The 128-bit product a * b: the high half returned, the low half in *lo.
 * Portable long multiplication where the compiler has no 128-bit integer
 * (32-bit targets, MSVC); the same bits either way. */
static inline uint64_t mul_128(uint64_t a, uint64_t b, uint64_t *lo)
{
#if defined(__SIZEOF_INT128__) && !defined(NR_NO_INT128)
    unsigned __int128 m = (unsigned __int128)a * b;
    *lo = (uint64_t)m;
    return (uint64_t)(m >> 64);
#else
    const uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
    const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    const uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    *lo = (mid << 32) | (p00 & 0xFFFFFFFFu);
    return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
#endif
}

uint64_t nr_rng_below(struct nr_rng *r, uint64_t n)
{
    /* Lemire: multiply-shift with rejection of the biased low zone. */
    uint64_t lo, hi = mul_128(nr_rng_next(r), n, &lo);
    if (lo < n) {
        uint64_t thresh = (0 - n) % n;
        while (lo < thresh)
            hi = mul_128(nr_rng_next(r), n, &lo);
    }
    return hi;
}

float nr_rng_uniform(struct nr_rng *r)
{
    return (float)(nr_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}
