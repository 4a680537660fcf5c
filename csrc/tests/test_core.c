/*
 * test_core.c: standalone checks of the neurec C core (no Python).
 *
 *   gcc -std=c11 -O1 -g -Wall -Wextra -Werror -Icsrc/include \
 *       csrc/tests/test_core.c csrc/src/[a-z]*.c -lm -pthread -o test_core && ./test_core
 *
 * Sections: status, rng, pool, kernels (gemm, dense, activations, dot, axpy),
 * optimizers, tables, plan (its reduce hook included), sampler, scoring.
 * Every result is compared against a naive double-precision reference written
 * here, never against the code under test. Exits 0 when every check passes
 * and 1 otherwise; each failure goes to stderr with its section and line.
 * tests/test_c_programs.py builds and runs this file plainly and under
 * AddressSanitizer + UBSan (LeakSanitizer then checks every init/free pair).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(_WIN32)
#include <windows.h>
#endif

#include "neurec/nr_als.h"
#include "neurec/nr_kernels.h"
#include "neurec/nr_optim.h"
#include "neurec/nr_plan.h"
#include "neurec/nr_pool.h"
#include "neurec/nr_rng.h"
#include "neurec/nr_sampler.h"
#include "neurec/nr_scoring.h"
#include "neurec/nr_simd.h"
#include "neurec/nr_status.h"
#include "neurec/nr_table.h"

#include "harness.h"

/* ---- harness ------------------------------------------------------------- */

static const char *g_section = "";

/* harness.h's counters, with the section and a message on failure */
#define CHECKF(cond, ...)                                                                   \
    do {                                                                                    \
        n_checks++;                                                                         \
        if (!(cond)) {                                                                      \
            n_failed++;                                                                     \
            fprintf(stderr, "FAIL [%s] %s:%d: %s: ", g_section, __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                   \
            fputc('\n', stderr);                                                            \
        }                                                                                   \
    } while (0)

#undef CHECK
#define CHECK(cond) CHECKF(cond, "%s", "")

/* Abort the section on an allocation failure of the test itself. */
#define NEED(ptr)                                                                       \
    do {                                                                                \
        if (!(ptr)) {                                                                   \
            fprintf(stderr, "test_core: out of memory at %s:%d\n", __FILE__, __LINE__); \
            exit(2);                                                                    \
        }                                                                               \
    } while (0)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    NEED(p);
    return p;
}

static int close_enough(double got, double want, double rtol, double atol)
{
    return fabs(got - want) <= atol + rtol * fabs(want); /* false for NaN */
}

/* Compare n floats against double references; report the first mismatch. */
static void check_arr(const char *what, const float *got, const double *want, int64_t n,
                      double rtol, double atol)
{
    int64_t first = -1, nbad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!close_enough(got[i], want[i], rtol, atol)) {
            if (first < 0)
                first = i;
            nbad++;
        }
    CHECKF(nbad == 0, "%s: %lld of %lld values differ, first [%lld]: got %.9g want %.9g", what,
           (long long)nbad, (long long)n, (long long)first, first >= 0 ? (double)got[first] : 0.0,
           first >= 0 ? want[first] : 0.0);
}

/* Test-local data generator, independent of nr_rng. */
static uint64_t t_state = 0x2545F4914F6CDD1DULL;
static uint64_t t_next(void) { return xorshift64s(&t_state); }
static double t_unif(void) { return (double)(t_next() >> 11) * 0x1.0p-53; }
static float t_sym(float a) { return (float)((2.0 * t_unif() - 1.0) * a); }
static void fill(float *x, int64_t n, float a)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = t_sym(a);
}
static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

/* ---- status -------------------------------------------------------------- */

static void test_status(void)
{
    g_section = "status";
    enum nr_status all[] = {NR_OK,        NR_ERR_NOMEM, NR_ERR_SHAPE, NR_ERR_INDEX,
                            NR_ERR_VALUE, NR_ERR_TYPE,  NR_ABORTED};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        const char *s = nr_status_str(all[i]);
        CHECKF(s && strlen(s) > 0 && strcmp(s, "unknown status") != 0, "status %d", (int)all[i]);
        for (size_t j = 0; j < i; j++)
            CHECKF(strcmp(s, nr_status_str(all[j])) != 0, "statuses %d and %d share a name",
                   (int)all[i], (int)all[j]);
    }
    CHECK(strcmp(nr_status_str(NR_OK), "ok") == 0);
}

/* ---- rng ----------------------------------------------------------------- */

static uint64_t ref_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** as published by Blackman and Vigna. */
static uint64_t ref_xoshiro(uint64_t s[4])
{
    uint64_t result = ref_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return result;
}

/* a * b as 128 bits, limb by limb (16-bit limbs: every partial product and
 * carry sum is exact in a uint64_t; no __int128). */
static void ref_mul_128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
    uint64_t al[4], bl[4], r[8] = {0};
    for (int i = 0; i < 4; i++) {
        al[i] = (a >> (16 * i)) & 0xFFFF;
        bl[i] = (b >> (16 * i)) & 0xFFFF;
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            r[i + j] += al[i] * bl[j];
    for (int k = 0; k < 7; k++) {
        r[k + 1] += r[k] >> 16;
        r[k] &= 0xFFFF;
    }
    *lo = r[0] | (r[1] << 16) | (r[2] << 32) | (r[3] << 48);
    *hi = r[4] | (r[5] << 16) | (r[6] << 32) | (r[7] << 48);
}

static void test_rng(void)
{
    g_section = "rng";
    /* splitmix64 from 0: the published first outputs */
    uint64_t x = 0;
    CHECK(nr_rng_splitmix64(&x) == 0xE220A8397B1DCDAFULL);
    CHECK(nr_rng_splitmix64(&x) == 0x6E789E6AA1B965F4ULL);
    CHECK(nr_rng_splitmix64(&x) == 0x06C45D188009454FULL);

    /* xoshiro256** from the state {1, 2, 3, 4} */
    struct nr_rng r = {{1, 2, 3, 4}};
    uint64_t s[4] = {1, 2, 3, 4};
    uint64_t first = nr_rng_next(&r), second = nr_rng_next(&r);
    CHECK(first == 11520 && ref_xoshiro(s) == 11520);
    CHECK(second == 0 && ref_xoshiro(s) == 0);
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= nr_rng_next(&r) == ref_xoshiro(s);
    CHECKF(same, "nr_rng_next differs from the reference xoshiro256**");

    /* same (seed, stream): same sequence; another stream or seed: another one */
    struct nr_rng a, b, c, d;
    nr_rng_seed(&a, 42, 7);
    nr_rng_seed(&b, 42, 7);
    nr_rng_seed(&c, 42, 8);
    nr_rng_seed(&d, 43, 7);
    int ab = 0, ac = 0, ad = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t va = nr_rng_next(&a);
        ab += va == nr_rng_next(&b);
        ac += va == nr_rng_next(&c);
        ad += va == nr_rng_next(&d);
    }
    CHECKF(ab == 1000, "same seed and stream gave %d/1000 equal draws", ab);
    CHECKF(ac == 0 && ad == 0, "different stream/seed gave %d and %d equal draws", ac, ad);

    int zero = 0;
    for (uint64_t sd = 0; sd < 64; sd++)
        for (uint64_t st = 0; st < 4; st++) {
            struct nr_rng z;
            nr_rng_seed(&z, sd, st);
            zero += (z.s[0] | z.s[1] | z.s[2] | z.s[3]) == 0;
        }
    CHECK(zero == 0);

    /* nr_rng_below is Lemire's multiply-shift: the high half of draw * n, with
     * draws whose low half is below 2^64 mod n rejected. The reference here
     * multiplies with doubles split in 16-bit limbs, independently of the
     * library's 128-bit integer or 32-bit long multiplication (-DNR_NO_INT128
     * builds, 32-bit targets), so both must give these exact values. */
    {
        const uint64_t ln[] = {
            3, 1000, (1ULL << 32) + 5, (1ULL << 63) + 1, UINT64_MAX, 0x9E3779B97F4A7C15ULL};
        int bad = 0;
        for (size_t i = 0; i < sizeof ln / sizeof *ln; i++) {
            struct nr_rng got, ref;
            nr_rng_seed(&got, 99, i);
            nr_rng_seed(&ref, 99, i);
            for (int j = 0; j < 2000; j++) {
                uint64_t hi, lo;
                do {
                    ref_mul_128(nr_rng_next(&ref), ln[i], &hi, &lo);
                } while (lo < (0 - ln[i]) % ln[i]);
                bad += nr_rng_below(&got, ln[i]) != hi;
            }
        }
        CHECKF(bad == 0, "nr_rng_below differs from the reference Lemire draw %d times", bad);
    }

    /* nr_rng_below stays in range, including the rejection-heavy n = 2^63 + 1 */
    const uint64_t ns[] = {1, 2, 3, 7, 10, 1000, 1ULL << 32, (1ULL << 63) + 1, UINT64_MAX};
    struct nr_rng g;
    nr_rng_seed(&g, 2024, 0);
    for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        int out = 0;
        for (int j = 0; j < 20000; j++)
            out += nr_rng_below(&g, ns[i]) >= ns[i];
        CHECKF(out == 0, "n = %llu: %d draws out of range", (unsigned long long)ns[i], out);
    }
    {
        uint64_t n = (1ULL << 63) + 1;
        int low = 0, half = 0;
        for (int j = 0; j < 20000; j++) {
            uint64_t v = nr_rng_below(&g, n);
            low += v < n / 4;
            half += v < n / 2;
        }
        CHECKF(fabs(low / 20000.0 - 0.25) < 0.02 && fabs(half / 20000.0 - 0.5) < 0.02,
               "n = 2^63+1: %d below n/4, %d below n/2 of 20000", low, half);
    }
    /* roughly uniform: chi-square over 10 and 7 cells (p = 0.001 bounds) */
    const struct {
        uint64_t n;
        double bound;
    } cells[] = {{10, 27.88}, {7, 22.46}};
    for (size_t i = 0; i < 2; i++) {
        int64_t cnt[10] = {0};
        const int draws = 100000;
        for (int j = 0; j < draws; j++)
            cnt[nr_rng_below(&g, cells[i].n)]++;
        double chi = 0.0, e = (double)draws / (double)cells[i].n;
        for (uint64_t k = 0; k < cells[i].n; k++)
            chi += ((double)cnt[k] - e) * ((double)cnt[k] - e) / e;
        CHECKF(chi < cells[i].bound, "n = %llu: chi-square %.2f", (unsigned long long)cells[i].n,
               chi);
    }
    double sum = 0.0;
    int bad = 0;
    for (int j = 0; j < 100000; j++) {
        float u = nr_rng_uniform(&g);
        bad += !(u >= 0.0f && u < 1.0f);
        sum += u;
    }
    CHECK(bad == 0);
    CHECKF(fabs(sum / 100000.0 - 0.5) < 0.005, "mean of nr_rng_uniform %.4f", sum / 100000.0);
}

/* ---- pool ---------------------------------------------------------------- */

#define POOL_MAX 8

struct pool_probe {
    atomic_int calls[POOL_MAX];
    atomic_int wrong;
    int expect_nth;
    int64_t run;
    int64_t stamp[POOL_MAX]; /* plain writes: visible to the caller after nr_pool_run */
};

static void pool_probe_fn(void *v, int ith, int nth)
{
    struct pool_probe *p = v;
    if (nth != p->expect_nth || ith < 0 || ith >= nth || ith >= POOL_MAX) {
        atomic_fetch_add(&p->wrong, 1);
        return;
    }
    atomic_fetch_add(&p->calls[ith], 1);
    p->stamp[ith] = p->run;
}

/* Run the probe once and check that every ith ran exactly once. Returns 1 if so. */
static int pool_once(struct nr_pool *pool, struct pool_probe *pr)
{
    int nth = pr->expect_nth, ok = 1;
    pr->run++;
    for (int i = 0; i < POOL_MAX; i++)
        atomic_store(&pr->calls[i], 0);
    nr_pool_run(pool, pool_probe_fn, pr);
    for (int i = 0; i < nth; i++)
        ok &= atomic_load(&pr->calls[i]) == 1 && pr->stamp[i] == pr->run;
    for (int i = nth; i < POOL_MAX; i++)
        ok &= atomic_load(&pr->calls[i]) == 0;
    return ok && atomic_load(&pr->wrong) == 0;
}

static void sleep_ms(long ms)
{
#if defined(_WIN32)
    Sleep((DWORD)ms);
#else
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
#endif
}

static void test_pool(void)
{
    g_section = "pool";
    struct nr_pool *pool = (struct nr_pool *)&pool; /* must be reset to NULL on error */
    CHECK(nr_pool_init(&pool, 0) == NR_ERR_VALUE && pool == NULL);
    pool = (struct nr_pool *)&pool;
    CHECK(nr_pool_init(&pool, -3) == NR_ERR_VALUE && pool == NULL);
    CHECK(nr_pool_size(NULL) == 1);
    nr_pool_free(NULL);

    struct pool_probe pr;
    memset(&pr, 0, sizeof pr);
    pr.expect_nth = 1;
    CHECK(pool_once(NULL, &pr));

    const int sizes[] = {1, 2, 4};
    for (size_t si = 0; si < 3; si++) {
        int nt = sizes[si];
        pool = NULL;
        CHECK(nr_pool_init(&pool, nt) == NR_OK && pool != NULL);
        if (!pool)
            continue;
        CHECK(nr_pool_size(pool) == nt);
        memset(&pr, 0, sizeof pr);
        pr.expect_nth = nt;
        int bad = 0;
        for (int rep = 0; rep < 2000; rep++)
            bad += !pool_once(pool, &pr);
        CHECKF(bad == 0, "%d threads: %d of 2000 back-to-back runs went wrong", nt, bad);
        /* let the workers fall asleep on the condition variable, then wake them */
        for (int rep = 0; rep < 3; rep++) {
            sleep_ms(60);
            CHECKF(pool_once(pool, &pr), "%d threads: run after sleeping", nt);
        }
        nr_pool_free(pool);
    }
    /* two pools alive at once, and init/free cycles (leaks: LeakSanitizer) */
    struct nr_pool *p2 = NULL, *p3 = NULL;
    CHECK(nr_pool_init(&p2, 2) == NR_OK && nr_pool_init(&p3, 3) == NR_OK);
    if (p2 && p3) {
        memset(&pr, 0, sizeof pr);
        pr.expect_nth = 2;
        CHECK(pool_once(p2, &pr));
        pr.expect_nth = 3;
        CHECK(pool_once(p3, &pr));
    }
    nr_pool_free(p2);
    nr_pool_free(p3);
    for (int rep = 0; rep < 20; rep++) {
        pool = NULL;
        CHECK(nr_pool_init(&pool, 1 + rep % 4) == NR_OK);
        nr_pool_free(pool);
    }
}

/* ---- kernels ------------------------------------------------------------- */

static const int64_t odd_sizes[] = {1, 7, 9, 33};
#define N_ODD 4

static void test_dense(void)
{
    g_section = "kernels/dense";
    char what[96];
    for (int ri = 0; ri < 2; ri++)
        for (int ki = 0; ki < N_ODD; ki++)
            for (int ni = 0; ni < N_ODD; ni++)
                for (int with_b = 0; with_b < 2; with_b++) {
                    int64_t rows = ri ? 5 : 1, k = odd_sizes[ki], n = odd_sizes[ni];
                    float *x = xcalloc((size_t)(rows * k), sizeof *x);
                    float *w = xcalloc((size_t)(k * n), sizeof *w);
                    float *b = xcalloc((size_t)n, sizeof *b);
                    float *y = xcalloc((size_t)(rows * n), sizeof *y);
                    float *gy = xcalloc((size_t)(rows * n), sizeof *gy);
                    float *gx = xcalloc((size_t)(rows * k), sizeof *gx);
                    float *gw = xcalloc((size_t)(k * n), sizeof *gw);
                    float *gb = xcalloc((size_t)n, sizeof *gb);
                    double *ry = xcalloc((size_t)(rows * n), sizeof *ry);
                    double *rgx = xcalloc((size_t)(rows * k), sizeof *rgx);
                    double *rgw = xcalloc((size_t)(k * n), sizeof *rgw);
                    double *rgb = xcalloc((size_t)n, sizeof *rgb);
                    fill(x, rows * k, 1.0f);
                    fill(w, k * n, 1.0f);
                    fill(b, n, 1.0f);
                    fill(gy, rows * n, 1.0f);
                    /* the backward accumulates: start from non-zero gradients */
                    fill(gx, rows * k, 1.0f);
                    fill(gw, k * n, 1.0f);
                    fill(gb, n, 1.0f);
                    for (int64_t i = 0; i < rows * k; i++)
                        rgx[i] = gx[i];
                    for (int64_t i = 0; i < k * n; i++)
                        rgw[i] = gw[i];
                    for (int64_t j = 0; j < n; j++)
                        rgb[j] = gb[j];
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t j = 0; j < n; j++) {
                            double acc = with_b ? b[j] : 0.0;
                            for (int64_t i = 0; i < k; i++)
                                acc += (double)x[r * k + i] * w[i * n + j];
                            ry[r * n + j] = acc;
                            double g = gy[r * n + j];
                            if (with_b)
                                rgb[j] += g;
                            for (int64_t i = 0; i < k; i++) {
                                rgw[i * n + j] += (double)x[r * k + i] * g;
                                rgx[r * k + i] += (double)w[i * n + j] * g;
                            }
                        }
                    nr_dense_forward(y, x, w, with_b ? b : NULL, rows, k, n);
                    snprintf(what, sizeof what, "forward rows=%lld k=%lld n=%lld bias=%d",
                             (long long)rows, (long long)k, (long long)n, with_b);
                    check_arr(what, y, ry, rows * n, 1e-5, 1e-5);
                    /* gx and gb are optional */
                    float *gx0 = xcalloc((size_t)(rows * k), sizeof *gx0);
                    memcpy(gx0, gx, (size_t)(rows * k) * sizeof *gx);
                    float *wt = xcalloc((size_t)(k * n), sizeof *wt); /* caller scratch */
                    nr_dense_backward(with_b ? gx : NULL, gw, with_b ? gb : NULL, gy, x, w, wt,
                                      rows, k, n);
                    free(wt);
                    snprintf(what, sizeof what, "backward rows=%lld k=%lld n=%lld full=%d",
                             (long long)rows, (long long)k, (long long)n, with_b);
                    check_arr(what, gw, rgw, k * n, 1e-5, 1e-5);
                    if (with_b) {
                        check_arr(what, gx, rgx, rows * k, 1e-5, 1e-5);
                        check_arr(what, gb, rgb, n, 1e-5, 1e-5);
                    } else {
                        CHECKF(memcmp(gx, gx0, (size_t)(rows * k) * sizeof *gx) == 0,
                               "%s: gx touched", what);
                    }
                    free(gx0);
                    free(x), free(w), free(b), free(y), free(gy), free(gx), free(gw), free(gb);
                    free(ry), free(rgx), free(rgw), free(rgb);
                }
}

static void test_gemm(void)
{
    g_section = "kernels/gemm";
    char what[128];
    /* every micro-kernel (2 x 32, 4 x 16, 8 x 8) with its row and column remainders */
    const int64_t ms[] = {1, 2, 3, 5, 8, 11}, ns[] = {1, 7, 8, 15, 16, 24, 31, 32, 33, 57, 65};
    const int64_t ks[] = {0, 1, 9};
    for (int mi = 0; mi < 6; mi++)
        for (int ni = 0; ni < 11; ni++)
            for (int ki = 0; ki < 3; ki++)
                for (int variant = 0; variant < 4; variant++) {
                    /* variant bit 0: accumulate; bit 1: A read transposed (column strides) */
                    int64_t m = ms[mi], n = ns[ni], kk = ks[ki], pad = 3;
                    int acc = variant & 1, trans = variant >> 1;
                    int64_t ldc = n + pad, ldb = n + 2;
                    int64_t ars = trans ? 1 : kk + 1, acs = trans ? m : 1;
                    int64_t a_len = trans ? (kk > 0 ? kk * m : 1) : m * (kk + 1);
                    float *a = xcalloc((size_t)a_len, sizeof *a);
                    float *b = xcalloc((size_t)(kk > 0 ? kk * ldb : 1), sizeof *b);
                    float *c = xcalloc((size_t)(m * ldc), sizeof *c);
                    double *ref = xcalloc((size_t)(m * ldc), sizeof *ref);
                    fill(a, a_len, 1.0f);
                    fill(b, kk * ldb, 1.0f);
                    fill(c, m * ldc, 1.0f);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < ldc; j++) {
                            double v = c[i * ldc + j];
                            if (j < n) {
                                v = acc ? v : 0.0;
                                for (int64_t p = 0; p < kk; p++)
                                    v += (double)a[i * ars + p * acs] * b[p * ldb + j];
                            }
                            ref[i * ldc + j] = v; /* the padding columns stay as they were */
                        }
                    nr_gemm(c, ldc, a, ars, acs, b, ldb, m, n, kk, acc);
                    snprintf(what, sizeof what, "m=%lld n=%lld k=%lld accumulate=%d transposed=%d",
                             (long long)m, (long long)n, (long long)kk, acc, trans);
                    check_arr(what, c, ref, m * ldc, 1e-5, 1e-5);
                    free(a), free(b), free(c), free(ref);
                }
}

static double ref_act(enum nr_act act, double x)
{
    switch (act) {
    case NR_ACT_RELU: return x > 0 ? x : 0;
    case NR_ACT_SIGMOID: return sigm(x);
    case NR_ACT_TANH: return tanh(x);
    default: return x;
    }
}

static void test_act(void)
{
    g_section = "kernels/act";
    char what[96];
    const enum nr_act acts[] = {NR_ACT_LINEAR, NR_ACT_RELU, NR_ACT_SIGMOID, NR_ACT_TANH,
                                NR_ACT_SOFTMAX};
    for (int ai = 0; ai < 5; ai++)
        for (int ni = 0; ni < N_ODD; ni++) {
            enum nr_act act = acts[ai];
            int64_t rows = 3, n = odd_sizes[ni], tot = rows * n;
            float *x = xcalloc((size_t)tot, sizeof *x), *y = xcalloc((size_t)tot, sizeof *y);
            float *y2 = xcalloc((size_t)tot, sizeof *y2), *gy = xcalloc((size_t)tot, sizeof *gy);
            float *gx = xcalloc((size_t)tot, sizeof *gx);
            double *ry = xcalloc((size_t)tot, sizeof *ry), *rg = xcalloc((size_t)tot, sizeof *rg);
            fill(x, tot, 4.0f);
            x[0] = 90.0f; /* extremes: no overflow, no NaN */
            x[tot - 1] = -90.0f;
            fill(gy, tot, 1.0f);
            fill(gx, tot, 1.0f);
            for (int64_t r = 0; r < rows; r++) {
                const float *xr = x + r * n;
                double m = xr[0], s = 0.0;
                for (int64_t j = 0; j < n; j++)
                    m = xr[j] > m ? xr[j] : m;
                for (int64_t j = 0; j < n; j++)
                    s += exp((double)xr[j] - m);
                for (int64_t j = 0; j < n; j++)
                    ry[r * n + j] =
                        act == NR_ACT_SOFTMAX ? exp((double)xr[j] - m) / s : ref_act(act, xr[j]);
            }
            nr_act_forward(y, x, act, rows, n);
            snprintf(what, sizeof what, "forward act=%d n=%lld", (int)act, (long long)n);
            check_arr(what, y, ry, tot, 2e-6, 1e-7);
            memcpy(y2, x, (size_t)tot * sizeof *y2);
            nr_act_forward(y2, y2, act, rows, n); /* in place */
            snprintf(what, sizeof what, "in-place forward act=%d n=%lld", (int)act, (long long)n);
            check_arr(what, y2, ry, tot, 2e-6, 1e-7);
            /* backward from the output y (the contract): gx += dact * gy */
            for (int64_t r = 0; r < rows; r++) {
                double dsum = 0.0;
                for (int64_t j = 0; j < n; j++)
                    dsum += (double)gy[r * n + j] * y[r * n + j];
                for (int64_t j = 0; j < n; j++) {
                    int64_t i = r * n + j;
                    double yy = y[i], d;
                    switch (act) {
                    case NR_ACT_RELU: d = x[i] > 0 ? gy[i] : 0.0; break;
                    case NR_ACT_SIGMOID: d = gy[i] * yy * (1.0 - yy); break;
                    case NR_ACT_TANH: d = gy[i] * (1.0 - yy * yy); break;
                    case NR_ACT_SOFTMAX: d = yy * (gy[i] - dsum); break;
                    default: d = gy[i]; break;
                    }
                    rg[i] = gx[i] + d;
                }
            }
            nr_act_backward(gx, gy, y, act, rows, n);
            snprintf(what, sizeof what, "backward act=%d n=%lld", (int)act, (long long)n);
            check_arr(what, gx, rg, tot, 1e-5, 1e-6);
            free(x), free(y), free(y2), free(gy), free(gx), free(ry), free(rg);
        }
}

static void test_dot_axpy(void)
{
    g_section = "kernels/dot-axpy";
    const int64_t sizes[] = {0, 1, 7, 8, 9, 33, 100};
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int64_t n = sizes[si];
        float *a = xcalloc((size_t)n, sizeof *a), *b = xcalloc((size_t)n, sizeof *b);
        double *ry = xcalloc((size_t)n, sizeof *ry);
        fill(a, n, 1.0f);
        fill(b, n, 1.0f);
        double ref = 0.0, mag = 0.0;
        for (int64_t i = 0; i < n; i++) {
            ref += (double)a[i] * b[i];
            mag += fabs((double)a[i] * b[i]);
        }
        float got = nr_dot(a, b, n);
        CHECKF(fabs(got - ref) <= 1e-6 * mag + 1e-7, "nr_dot n=%lld: got %.9g want %.9g",
               (long long)n, (double)got, ref);
        for (int64_t i = 0; i < n; i++)
            ry[i] = (double)b[i] + (double)-0.75f * a[i];
        nr_axpy(b, a, -0.75f, n);
        check_arr("nr_axpy", b, ry, n, 1e-6, 1e-7);
        free(a), free(b), free(ry);
    }
}

/* ---- optimizers ---------------------------------------------------------- */

struct ocase {
    const char *name;
    struct nr_optim o;
    float l2;
    int used[3]; /* which slots the kind uses (others are passed as NULL) */
};

static const struct ocase ocases[] = {
    {"sgd", {.kind = NR_OPTIM_SGD, .lr = 0.1f}, 0.0f, {0, 0, 0}},
    {"sgd+l2", {.kind = NR_OPTIM_SGD, .lr = 0.1f}, 0.01f, {0, 0, 0}},
    {"momentum", {.kind = NR_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f}, 0.0f, {1, 0, 0}},
    {"nesterov+l2",
     {.kind = NR_OPTIM_SGD, .lr = 0.05f, .momentum = 0.8f, .nesterov = 1},
     0.005f,
     {1, 0, 0}},
    {"adam",
     {.kind = NR_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f},
     0.0f,
     {1, 1, 0}},
    {"adam+l2",
     {.kind = NR_OPTIM_ADAM, .lr = 0.02f, .beta1 = 0.8f, .beta2 = 0.99f, .epsilon = 1e-3f},
     0.01f,
     {1, 1, 0}},
    {"amsgrad",
     {.kind = NR_OPTIM_ADAM,
      .lr = 0.01f,
      .beta1 = 0.9f,
      .beta2 = 0.999f,
      .epsilon = 1e-7f,
      .amsgrad = 1},
     0.0f,
     {1, 1, 1}},
    {"adagrad", {.kind = NR_OPTIM_ADAGRAD, .lr = 0.1f, .epsilon = 1e-7f}, 0.0f, {1, 0, 0}},
    {"rmsprop",
     {.kind = NR_OPTIM_RMSPROP, .lr = 0.01f, .rho = 0.9f, .epsilon = 1e-7f},
     0.0f,
     {1, 0, 0}},
    {"rmsprop+momentum",
     {.kind = NR_OPTIM_RMSPROP, .lr = 0.01f, .rho = 0.9f, .epsilon = 1e-7f, .momentum = 0.5f},
     0.0f,
     {1, 1, 0}},
    {"rmsprop centered",
     {.kind = NR_OPTIM_RMSPROP,
      .lr = 0.01f,
      .rho = 0.8f,
      .epsilon = 1e-7f,
      .momentum = 0.3f,
      .centered = 1},
     0.001f,
     {1, 1, 1}},
};
#define N_OCASES ((int)(sizeof ocases / sizeof *ocases))

/* Keras 3 formulas, one element, in double. */
static void ref_step(const struct ocase *c, double *w, double s[3], double g, int64_t t)
{
    const struct nr_optim *o = &c->o;
    g += 2.0 * c->l2 * *w;
    double lr = o->lr;
    switch (o->kind) {
    case NR_OPTIM_SGD:
        if (o->momentum == 0.0f) {
            *w -= lr * g;
        } else {
            s[0] = o->momentum * s[0] - lr * g;
            *w += o->nesterov ? o->momentum * s[0] - lr * g : s[0];
        }
        break;
    case NR_OPTIM_ADAM: {
        s[0] += (g - s[0]) * (1.0 - o->beta1);
        s[1] += (g * g - s[1]) * (1.0 - o->beta2);
        double alpha = lr * sqrt(1.0 - pow(o->beta2, (double)t)) / (1.0 - pow(o->beta1, (double)t));
        double v = s[1];
        if (o->amsgrad) {
            s[2] = s[2] > s[1] ? s[2] : s[1];
            v = s[2];
        }
        *w -= alpha * s[0] / (sqrt(v) + o->epsilon);
        break;
    }
    case NR_OPTIM_ADAGRAD:
        s[0] += g * g;
        *w -= lr * g / sqrt(s[0] + o->epsilon);
        break;
    case NR_OPTIM_RMSPROP: {
        s[0] = o->rho * s[0] + (1.0 - o->rho) * g * g;
        double denom = s[0];
        if (o->centered) {
            s[2] = o->rho * s[2] + (1.0 - o->rho) * g;
            denom -= s[2] * s[2];
        }
        double inc = lr * g / sqrt(denom + o->epsilon);
        if (o->momentum > 0.0f) {
            s[1] = o->momentum * s[1] + inc;
            *w -= s[1];
        } else {
            *w -= inc;
        }
        break;
    }
    }
}

static void test_optim(void)
{
    g_section = "optimizers";
    char what[96];
    enum { R = 3, C = 5, TR = 6 };
    for (int ci = 0; ci < N_OCASES; ci++) {
        const struct ocase *oc = &ocases[ci];
        /* dense: two steps, t = 1 and 2, on a 3x5 parameter */
        float w[R * C], g1[R * C], g2[R * C], sl[3][R * C];
        double rw[R * C], rs[R * C][3];
        fill(w, R * C, 1.0f);
        fill(g1, R * C, 1.0f);
        fill(g2, R * C, 1.0f);
        memset(sl, 0, sizeof sl);
        for (int i = 0; i < R * C; i++) {
            rw[i] = w[i];
            rs[i][0] = rs[i][1] = rs[i][2] = 0.0;
            ref_step(oc, &rw[i], rs[i], g1[i], 1);
            ref_step(oc, &rw[i], rs[i], g2[i], 2);
        }
        struct nr_param p = {.w = w, .rows = R, .cols = C, .l2 = oc->l2};
        for (int k = 0; k < 3; k++)
            p.slot[k] = oc->used[k] ? sl[k] : NULL;
        nr_optim_step_dense(&oc->o, &p, g1, 1);
        nr_optim_step_dense(&oc->o, &p, g2, 2);
        snprintf(what, sizeof what, "%s dense w", oc->name);
        check_arr(what, w, rw, R * C, 1e-5, 1e-6);
        for (int k = 0; k < 3; k++) {
            if (!oc->used[k])
                continue;
            double ref[R * C];
            for (int i = 0; i < R * C; i++)
                ref[i] = rs[i][k];
            snprintf(what, sizeof what, "%s dense slot %d", oc->name, k);
            check_arr(what, sl[k], ref, R * C, 1e-5, 1e-7);
        }

        /* rows: ids {4, 1} then {1, 5}; per-row step counts */
        float tw[TR * C], tw0[TR * C], ts[3][TR * C], rg1[2 * C], rg2[2 * C];
        int64_t steps[TR] = {0};
        const int64_t ids1[2] = {4, 1}, ids2[2] = {1, 5};
        fill(tw, TR * C, 1.0f);
        fill(rg1, 2 * C, 1.0f);
        fill(rg2, 2 * C, 1.0f);
        memcpy(tw0, tw, sizeof tw);
        memset(ts, 0, sizeof ts);
        double trw[TR * C], trs[TR * C][3];
        int64_t rstep[TR] = {0};
        for (int i = 0; i < TR * C; i++) {
            trw[i] = tw[i];
            trs[i][0] = trs[i][1] = trs[i][2] = 0.0;
        }
        for (int b = 0; b < 2; b++) {
            const int64_t *ids = b ? ids2 : ids1;
            const float *gg = b ? rg2 : rg1;
            for (int j = 0; j < 2; j++) {
                int64_t r = ids[j];
                rstep[r]++;
                for (int cc = 0; cc < C; cc++)
                    ref_step(oc, &trw[r * C + cc], trs[r * C + cc], gg[j * C + cc], rstep[r]);
            }
        }
        struct nr_param tp = {
            .w = tw, .rows = TR, .cols = C, .row_steps = steps, .l2 = oc->l2, .is_table = 1};
        for (int k = 0; k < 3; k++)
            tp.slot[k] = oc->used[k] ? ts[k] : NULL;
        /* catch_up = 0: row_steps counts each row's own updates (the global step is unused) */
        nr_optim_step_rows(&oc->o, &tp, ids1, 2, rg1, 1);
        nr_optim_step_rows(&oc->o, &tp, ids2, 2, rg2, 2);
        snprintf(what, sizeof what, "%s rows w", oc->name);
        check_arr(what, tw, trw, TR * C, 1e-5, 1e-6);
        CHECKF(steps[0] == 0 && steps[1] == 2 && steps[2] == 0 && steps[3] == 0 && steps[4] == 1 &&
                   steps[5] == 1,
               "%s: row_steps %lld %lld %lld %lld %lld %lld", oc->name, (long long)steps[0],
               (long long)steps[1], (long long)steps[2], (long long)steps[3], (long long)steps[4],
               (long long)steps[5]);
        const int untouched[3] = {0, 2, 3};
        for (int u = 0; u < 3; u++) {
            int r = untouched[u];
            int same = memcmp(tw + r * C, tw0 + r * C, C * sizeof(float)) == 0;
            for (int k = 0; k < 3; k++)
                for (int cc = 0; cc < C; cc++)
                    same &= ts[k][r * C + cc] == 0.0f;
            CHECKF(same, "%s: row %d not listed but changed", oc->name, r);
        }
        for (int k = 0; k < 3; k++) {
            if (!oc->used[k])
                continue;
            double ref[TR * C];
            for (int i = 0; i < TR * C; i++)
                ref[i] = trs[i][k];
            snprintf(what, sizeof what, "%s rows slot %d", oc->name, k);
            check_arr(what, ts[k], ref, TR * C, 1e-5, 1e-7);
        }
    }
}

/* Power tables against double formulas; Adam gives the same step with and
 * without them, also past the end of the table. */
static void test_optim_tables(void)
{
    g_section = "optimizers/tables";
    enum { LEN = 300 };
    const struct nr_optim kinds[] = {
        {.kind = NR_OPTIM_ADAM, .beta1 = 0.9f, .beta2 = 0.999f},
        {.kind = NR_OPTIM_ADAM, .beta1 = 0.8f, .beta2 = 0.99f, .amsgrad = 1},
        {.kind = NR_OPTIM_SGD, .momentum = 0.9f},
        {.kind = NR_OPTIM_RMSPROP, .momentum = 0.5f, .rho = 0.95f},
    };
    float *mem = xcalloc(4 * LEN, sizeof *mem);
    double *ref = xcalloc(4 * LEN, sizeof *ref);
    char what[64];
    for (int ki = 0; ki < 4; ki++) {
        const struct nr_optim *o = &kinds[ki];
        struct nr_optim_tables tb = {LEN, mem, mem + LEN, mem + 2 * LEN, mem + 3 * LEN, 0};
        nr_optim_tables_fill(&tb, o);
        int adam = o->kind == NR_OPTIM_ADAM;
        double a1 = adam ? o->beta1 : o->momentum;
        double a2 = adam ? o->beta2 : o->kind == NR_OPTIM_RMSPROP ? o->rho : 0.0;
        double r = adam ? (o->amsgrad ? o->beta1 : o->beta1 / sqrt((double)o->beta2)) : o->momentum;
        double geo = 0.0;
        for (int64_t t = 0; t < LEN; t++) {
            if (t > 0)
                geo += pow(r, (double)t);
            ref[t] = t == 0
                         ? 0.0
                         : sqrt(1.0 - pow(o->beta2, (double)t)) / (1.0 - pow(o->beta1, (double)t));
            ref[LEN + t] = pow(a1, (double)t);
            ref[2 * LEN + t] = pow(a2, (double)t);
            ref[3 * LEN + t] = geo;
        }
        if (adam) {
            snprintf(what, sizeof what, "corr, kind %d", ki);
            check_arr(what, tb.corr + 1, ref + 1, LEN - 1, 1e-5, 0.0);
        }
        snprintf(what, sizeof what, "p1, kind %d", ki);
        check_arr(what, tb.p1, ref + LEN, LEN, 1e-5, 1e-30);
        snprintf(what, sizeof what, "p2, kind %d", ki);
        check_arr(what, tb.p2, ref + 2 * LEN, LEN, 1e-5, 1e-30);
        snprintf(what, sizeof what, "geo, kind %d", ki);
        check_arr(what, tb.geo, ref + 3 * LEN, LEN, 1e-5, 1e-7);
    }
    free(mem), free(ref);

    /* Adam with and without tables: inside the table and past its end, with a
     * beta2 so close to 1 that beta2^t has not underflowed at t = 70000 */
    enum { BIG = 65536 };
    float *big = xcalloc(4 * BIG, sizeof *big);
    const float beta2s[2] = {0.999f, 0.99999f};
    const int64_t ts[3] = {3, 1000, 70000};
    for (int bi = 0; bi < 2; bi++)
        for (int ti = 0; ti < 3; ti++) {
            struct nr_optim o = {.kind = NR_OPTIM_ADAM,
                                 .lr = 0.01f,
                                 .beta1 = 0.9f,
                                 .beta2 = beta2s[bi],
                                 .epsilon = 1e-7f};
            struct nr_optim_tables tb = {BIG, big, big + BIG, big + 2 * BIG, big + 3 * BIG, 0};
            nr_optim_tables_fill(&tb, &o);
            float w[2][4], m[2][4] = {{0}}, v[2][4] = {{0}}, g[4] = {0.5f, -0.25f, 1.0f, -2.0f};
            for (int k = 0; k < 4; k++)
                w[0][k] = w[1][k] = 1.0f;
            double rw[4];
            double alpha = 0.01 * sqrt(1.0 - pow(beta2s[bi], (double)ts[ti])) /
                           (1.0 - pow(0.9, (double)ts[ti]));
            for (int k = 0; k < 4; k++) {
                double mm = 0.1 * g[k], vv = (1.0 - beta2s[bi]) * g[k] * g[k];
                rw[k] = 1.0 - alpha * mm / (sqrt(vv) + 1e-7);
            }
            for (int with = 0; with < 2; with++) {
                o.tables = with ? &tb : NULL;
                struct nr_param p = {
                    .w = w[with], .rows = 1, .cols = 4, .slot = {m[with], v[with], NULL}};
                nr_optim_step_dense(&o, &p, g, ts[ti]);
                snprintf(what, sizeof what, "beta2 %.5f, t %lld, tables %d", (double)beta2s[bi],
                         (long long)ts[ti], with);
                check_arr(what, w[with], rw, 4, 2e-5, 1e-7);
            }
        }
    free(big);
}

/* Lazy rows with catch_up = 1 equal dense updates in which the skipped steps
 * had zero gradients (Adam: up to epsilon and the drift of the bias
 * correction, small at large t). */
static void test_optim_catch_up(void)
{
    g_section = "optimizers/catch-up";
    enum { TR = 4, C = 3, LEN = 8192 };
    const int64_t T0 = 5000;
    /* schedule of touched rows per step; -1 ends a list */
    const int64_t sched[6][4] = {{1, 2, -1}, {2, -1}, {2, 0, -1}, {-1}, {-1}, {1, 0, 2, -1}};
    const struct ocase cases[] = {
        {"momentum", {.kind = NR_OPTIM_SGD, .lr = 0.1f, .momentum = 0.9f}, 0.0f, {1, 0, 0}},
        {"nesterov",
         {.kind = NR_OPTIM_SGD, .lr = 0.1f, .momentum = 0.7f, .nesterov = 1},
         0.0f,
         {1, 0, 0}},
        {"rmsprop",
         {.kind = NR_OPTIM_RMSPROP, .lr = 0.01f, .rho = 0.9f, .epsilon = 1e-7f},
         0.0f,
         {1, 0, 0}},
        {"rmsprop+momentum centered",
         {.kind = NR_OPTIM_RMSPROP,
          .lr = 0.01f,
          .rho = 0.8f,
          .epsilon = 1e-7f,
          .momentum = 0.5f,
          .centered = 1},
         0.0f,
         {1, 1, 1}},
        {"adam",
         {.kind = NR_OPTIM_ADAM, .lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f},
         0.0f,
         {1, 1, 0}},
        {"amsgrad",
         {.kind = NR_OPTIM_ADAM,
          .lr = 0.01f,
          .beta1 = 0.8f,
          .beta2 = 0.99f,
          .epsilon = 1e-7f,
          .amsgrad = 1},
         0.0f,
         {1, 1, 1}},
        {"adagrad", {.kind = NR_OPTIM_ADAGRAD, .lr = 0.1f, .epsilon = 1e-7f}, 0.0f, {1, 0, 0}},
    };
    float *mem = xcalloc(4 * LEN, sizeof *mem);
    char what[96];
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (int with_tables = 0; with_tables < 2; with_tables++) {
            struct ocase oc = cases[ci];
            oc.o.catch_up = 1;
            struct nr_optim_tables tb = {LEN, mem, mem + LEN, mem + 2 * LEN, mem + 3 * LEN, 0};
            if (with_tables) {
                nr_optim_tables_fill(&tb, &oc.o);
                oc.o.tables = &tb;
            }
            float w[TR * C], sl[3][TR * C], g[6][TR * C];
            int64_t steps[TR] = {0};
            fill(w, TR * C, 1.0f);
            for (int t = 0; t < 6; t++)
                fill(g[t], TR * C, 1.0f);
            memset(sl, 0, sizeof sl);
            double rw[TR * C], rs[TR * C][3];
            for (int i = 0; i < TR * C; i++) {
                rw[i] = w[i];
                rs[i][0] = rs[i][1] = rs[i][2] = 0.0;
            }
            struct nr_param p = {.w = w, .rows = TR, .cols = C, .row_steps = steps, .is_table = 1};
            for (int k = 0; k < 3; k++)
                p.slot[k] = oc.used[k] ? sl[k] : NULL;
            for (int st = 0; st < 6; st++) {
                int64_t t = T0 + 1 + st, ids[4], n = 0;
                float gg[4 * C];
                for (; sched[st][n] >= 0; n++) {
                    ids[n] = sched[st][n];
                    memcpy(gg + n * C, g[st] + ids[n] * C, C * sizeof(float));
                }
                nr_optim_step_rows(&oc.o, &p, ids, n, gg, t);
                /* dense reference: every row steps; unlisted rows with a zero gradient */
                for (int r = 0; r < TR; r++) {
                    int listed = 0;
                    for (int64_t j = 0; j < n; j++)
                        listed |= ids[j] == r;
                    for (int cc = 0; cc < C; cc++)
                        ref_step(&oc, &rw[r * C + cc], rs[r * C + cc],
                                 listed ? g[st][r * C + cc] : 0.0, t);
                }
            }
            int adam = oc.o.kind == NR_OPTIM_ADAM;
            snprintf(what, sizeof what, "%s w (tables %d)", oc.name, with_tables);
            check_arr(what, w, rw, TR * C, adam ? 1e-4 : 1e-5, 1e-6);
            for (int k = 0; k < 3; k++) {
                if (!oc.used[k])
                    continue;
                double ref[TR * C];
                for (int i = 0; i < TR * C; i++)
                    ref[i] = rs[i][k];
                snprintf(what, sizeof what, "%s slot %d (tables %d)", oc.name, k, with_tables);
                check_arr(what, sl[k], ref, TR * C, 1e-5, 1e-7);
            }
            CHECKF(steps[0] == T0 + 6 && steps[1] == T0 + 6 && steps[2] == T0 + 6 && steps[3] == 0,
                   "%s: row_steps %lld %lld %lld %lld (the last step of each row)", oc.name,
                   (long long)steps[0], (long long)steps[1], (long long)steps[2],
                   (long long)steps[3]);
        }
    free(mem);
}

/* ---- tables -------------------------------------------------------------- */

/* Lazy Adam steps on rows ids[0..n) of t at steps t0+1.. with fixed gradients. */
static void table_steps(struct nr_table *t, const int64_t *ids, int64_t n, int64_t t0, int steps)
{
    const struct nr_optim adam = {.kind = NR_OPTIM_ADAM,
                                  .lr = 0.01f,
                                  .beta1 = 0.9f,
                                  .beta2 = 0.999f,
                                  .epsilon = 1e-7f,
                                  .catch_up = 1};
    float g[8 * 5];
    for (int s = 0; s < steps; s++) {
        for (int64_t k = 0; k < n * t->cols; k++)
            g[k] = (float)sin(0.7 * (double)k + s);
        struct nr_param prm = nr_table_param(t, 0.001f);
        nr_optim_step_rows(&adam, &prm, ids, n, g, t0 + 1 + s);
    }
}

/* Rows [r0, r1) of every array of a and b hold the same bits. */
static int table_rows_same(const struct nr_table *a, const struct nr_table *b, int64_t r0,
                           int64_t r1)
{
    size_t n = (size_t)((r1 - r0) * a->cols) * sizeof(float);
    int same = memcmp(a->w + r0 * a->cols, b->w + r0 * b->cols, n) == 0;
    for (int k = 0; k < NR_TABLE_SLOTS; k++)
        if (a->slot[k])
            same &= memcmp(a->slot[k] + r0 * a->cols, b->slot[k] + r0 * b->cols, n) == 0;
    if (a->row_steps)
        same &=
            memcmp(a->row_steps + r0, b->row_steps + r0, (size_t)(r1 - r0) * sizeof(int64_t)) == 0;
    return same;
}

static void test_table_resize(void)
{
    g_section = "table/resize";
    enum { C = 5, R0 = 3, R1 = 6, CAP = 8 };
    /* arrays of CAP rows: weights, Adam's m and v, step counts */
    struct store {
        float w[CAP * C], m[CAP * C], v[CAP * C];
        int64_t steps[CAP];
    } *a = xcalloc(1, sizeof *a), *twin = xcalloc(1, sizeof *twin),
      *grown = xcalloc(1, sizeof *grown), *init = xcalloc(1, sizeof *init);
#define TABLE_OF(S, R)                                 \
    ((struct nr_table){.w = (S)->w,                    \
                       .rows = (R),                    \
                       .cols = C,                      \
                       .slot = {(S)->m, (S)->v, NULL}, \
                       .row_steps = (S)->steps})
    fill(a->w, R0 * C, 0.5f);
    struct nr_table t = TABLE_OF(a, R0), tw = TABLE_OF(twin, R0);
    const int64_t ids01[2] = {0, 2}, ids2[1] = {1};
    table_steps(&t, ids01, 2, 0, 3);
    table_steps(&t, ids2, 1, 3, 1);
    memcpy(twin, a, sizeof *a);

    /* grow into new arrays whose new rows the caller initialised */
    for (int k = 0; k < CAP * C; k++)
        grown->w[k] = 0.25f * (float)k, grown->m[k] = -1.0f, grown->v[k] = 2.0f;
    for (int r = 0; r < CAP; r++)
        grown->steps[r] = 100 + r;
    memcpy(init, grown, sizeof *grown);
    struct nr_table to = TABLE_OF(grown, R1);
    CHECK(nr_table_resize(&t, &to) == NR_OK);
    CHECK(t.w == grown->w && t.slot[0] == grown->m && t.slot[1] == grown->v && !t.slot[2] &&
          t.row_steps == grown->steps && t.rows == R1 && t.cols == C);
    CHECKF(table_rows_same(&t, &tw, 0, R0), "%s", "old rows or their optimizer state changed");
    struct nr_table ti = TABLE_OF(init, R1);
    CHECKF(table_rows_same(&t, &ti, R0, CAP), "%s", "new rows are not the caller's");
    /* the kept rows train on exactly as if nothing had happened */
    table_steps(&t, ids01, 2, 4, 2);
    table_steps(&tw, ids01, 2, 4, 2);
    CHECKF(table_rows_same(&t, &tw, 0, R0), "%s", "a resized table trains differently");
    const int64_t ids_new[2] = {1, R1 - 1};
    table_steps(&t, ids_new, 2, 6, 1);
    CHECK(t.row_steps[R1 - 1] == 7 && t.w[(R1 - 1) * C] != init->w[(R1 - 1) * C]);

    /* in place, into room the arrays already have: only rows past the old end change */
    memcpy(twin, grown, sizeof *grown);
    to = TABLE_OF(grown, CAP);
    CHECK(nr_table_resize(&t, &to) == NR_OK && t.rows == CAP && t.w == grown->w);
    tw = TABLE_OF(twin, CAP);
    CHECK(table_rows_same(&t, &tw, 0, CAP));

    /* shrink into new arrays: the first rows survive */
    struct store *small = xcalloc(1, sizeof *small);
    to = TABLE_OF(small, 2);
    CHECK(nr_table_resize(&t, &to) == NR_OK && t.rows == 2 && t.w == small->w);
    CHECK(table_rows_same(&t, &tw, 0, 2));

    /* errors leave both sides alone */
    struct nr_table before = t;
    memcpy(init, grown, sizeof *grown);
    struct nr_table bad = TABLE_OF(grown, R1);
    bad.cols = C + 1;
    CHECK(nr_table_resize(&t, &bad) == NR_ERR_SHAPE);
    bad = TABLE_OF(grown, -1);
    CHECK(nr_table_resize(&t, &bad) == NR_ERR_SHAPE);
    bad = TABLE_OF(grown, R1);
    bad.slot[1] = NULL;
    CHECK(nr_table_resize(&t, &bad) == NR_ERR_VALUE);
    bad = TABLE_OF(grown, R1);
    bad.slot[2] = grown->v;
    CHECK(nr_table_resize(&t, &bad) == NR_ERR_VALUE);
    bad = TABLE_OF(grown, R1);
    bad.row_steps = NULL;
    CHECK(nr_table_resize(&t, &bad) == NR_ERR_VALUE);
    bad = TABLE_OF(grown, R1);
    bad.w = NULL;
    CHECK(nr_table_resize(&t, &bad) == NR_ERR_VALUE);
    CHECK(memcmp(&t, &before, sizeof t) == 0 && memcmp(init, grown, sizeof *grown) == 0);

    /* an empty table with no arrays (an id space not seen yet) grows like any other */
    struct nr_table empty = {.rows = 0, .cols = C};
    struct nr_table first = {.w = small->w, .rows = 2, .cols = C};
    memcpy(init, small, sizeof *small);
    CHECK(nr_table_resize(&empty, &first) == NR_OK && empty.rows == 2 && empty.w == small->w &&
          memcmp(init, small, sizeof *small) == 0);
    struct nr_table none = {.rows = 0, .cols = C};
    CHECK(nr_table_resize(&empty, &none) == NR_OK && empty.rows == 0);
#undef TABLE_OF
    free(a), free(twin), free(grown), free(init), free(small);
}

/* ---- plan ---------------------------------------------------------------- */

static struct nr_fit_stats *new_stats(void) { return xcalloc(1, sizeof(struct nr_fit_stats)); }

/* Logistic regression: INPUT(3) -> DENSE(3 -> 1, bias) -> ACT sigmoid, BCE. */
enum { LR_N = 600, LR_K = 3 };
struct lr_fixture {
    float x[LR_N * LR_K], y[LR_N];
    float kw[LR_K], kb[1];
    float slots[2][3][LR_K]; /* Adam m, v per param */
    struct nr_param prm[2];
    struct nr_op ops[3];
    int64_t vsize[3];
    struct nr_plan_desc d;
    struct nr_array in, lab;
};

static void lr_setup(struct lr_fixture *f, int fused)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < LR_N; i++) {
        double z = 0.1;
        for (int k = 0; k < LR_K; k++) {
            f->x[i * LR_K + k] = t_sym(1.0f);
            z += (k == 0 ? 1.0 : k == 1 ? -2.0 : 0.5) * f->x[i * LR_K + k];
        }
        f->y[i] = z > 0 ? 1.0f : 0.0f;
    }
    f->prm[0] = (struct nr_param){.w = f->kw, .rows = LR_K, .cols = 1};
    f->prm[1] = (struct nr_param){.w = f->kb, .rows = 1, .cols = 1};
    f->ops[0] = (struct nr_op){
        .kind = NR_OP_INPUT, .out = 0, .n_in = 1, .in = {0}, .param = {-1, -1}, .dim = {LR_K}};
    f->ops[1] = (struct nr_op){
        .kind = NR_OP_DENSE, .out = 1, .n_in = 1, .in = {0}, .param = {0, 1}, .dim = {1, LR_K, 1}};
    f->ops[2] = (struct nr_op){.kind = NR_OP_ACT,
                               .out = 2,
                               .n_in = 1,
                               .in = {1},
                               .param = {-1, -1},
                               .act = NR_ACT_SIGMOID,
                               .dim = {1, 1}};
    f->vsize[0] = LR_K;
    f->vsize[1] = f->vsize[2] = 1;
    f->d = (struct nr_plan_desc){
        .n_ops = 3,
        .ops = f->ops,
        .n_values = 3,
        .value_size = f->vsize,
        .n_params = 2,
        .params = f->prm,
        .n_inputs = 1,
        .output = 2,
        .loss = NR_LOSS_BCE,
        .logits = fused ? 1 : -1,
        .optim = {.kind = NR_OPTIM_SGD, .lr = 0.5f},
        .sparse = 1,
    };
    f->in = (struct nr_array){f->x, NR_DTYPE_F32, LR_N, LR_K};
    f->lab = (struct nr_array){f->y, NR_DTYPE_F32, LR_N, 1};
}

static void lr_weights(struct lr_fixture *f)
{
    f->kw[0] = 0.3f;
    f->kw[1] = -0.2f;
    f->kw[2] = 0.1f;
    f->kb[0] = -0.05f;
    memset(f->slots, 0, sizeof f->slots);
}

static void lr_use_adam(struct lr_fixture *f, float lr)
{
    f->d.optim = (struct nr_optim){
        .kind = NR_OPTIM_ADAM, .lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
    for (int p = 0; p < 2; p++) {
        f->prm[p].slot[0] = f->slots[p][0];
        f->prm[p].slot[1] = f->slots[p][1];
    }
}

static double lr_pred(const struct lr_fixture *f, int64_t i)
{
    double z = f->kb[0];
    for (int k = 0; k < LR_K; k++)
        z += (double)f->kw[k] * f->x[i * LR_K + k];
    return sigm(z);
}

/* Mean loss of one epoch in a random order. */
static double lr_epoch(struct nr_plan *plan, struct nr_pool *pool, struct lr_fixture *f,
                       int64_t *step, uint64_t seed, int64_t batch)
{
    int64_t perm[LR_N];
    nr_sampler_permutation(perm, LR_N, seed);
    struct nr_fit_stats *st = new_stats();
    enum nr_status s =
        nr_plan_fit(plan, pool, &f->in, &f->lab, perm, LR_N, batch, step, seed, st, NULL);
    CHECKF(s == NR_OK, "fit: %s", nr_status_str(s));
    double loss = st->samples > 0 ? st->loss_sum / st->samples : NAN;
    free(st);
    return loss;
}

static void test_plan_logistic(struct nr_pool *pool2, struct nr_pool *pool3)
{
    g_section = "plan/logistic";
    struct lr_fixture *f = xcalloc(1, sizeof *f);
    for (int fused = 1; fused >= 0; fused--) {
        lr_setup(f, fused);
        lr_weights(f);
        struct nr_plan *plan = NULL;
        enum nr_status s = nr_plan_init(&plan, &f->d);
        CHECKF(s == NR_OK && plan, "init (fused=%d): %s", fused, nr_status_str(s));
        if (!plan)
            continue;
        /* one SGD step on 8 scattered samples against the hand-written gradient */
        const int64_t idx[8] = {5, 17, 3, 42, 99, 0, 250, 599};
        double gw[LR_K] = {0}, gb = 0.0, loss = 0.0;
        int correct = 0;
        for (int j = 0; j < 8; j++) {
            int64_t i = idx[j];
            double p = lr_pred(f, i), t = f->y[i];
            for (int k = 0; k < LR_K; k++)
                gw[k] += (p - t) * f->x[i * LR_K + k] / 8.0;
            gb += (p - t) / 8.0;
            loss += -(t * log(p) + (1 - t) * log(1 - p));
            correct += (p > 0.5) == (t > 0.5);
        }
        double rw[LR_K + 1];
        for (int k = 0; k < LR_K; k++)
            rw[k] = f->kw[k] - 0.5 * gw[k];
        rw[LR_K] = f->kb[0] - 0.5 * gb;
        int64_t step = 0;
        struct nr_fit_stats *st = new_stats();
        s = nr_plan_fit(plan, NULL, &f->in, &f->lab, idx, 8, 8, &step, 1, st, NULL);
        CHECKF(s == NR_OK && step == 1, "fit: %s, step %lld", nr_status_str(s), (long long)step);
        check_arr(fused ? "one SGD step, kernel (fused logits)" : "one SGD step, kernel", f->kw, rw,
                  LR_K, 1e-5, 1e-6);
        check_arr(fused ? "one SGD step, bias (fused logits)" : "one SGD step, bias", f->kb,
                  rw + LR_K, 1, 1e-5, 1e-6);
        CHECKF(st->samples == 8.0 && st->elements == 8.0, "samples %g elements %g", st->samples,
               st->elements);
        CHECKF(close_enough(st->loss_sum, loss, 1e-5, 1e-5), "loss_sum %.8g want %.8g",
               st->loss_sum, loss);
        CHECKF(st->correct == correct, "correct %g want %d", st->correct, correct);
        double hist = 0.0;
        for (int b = 0; b < NR_AUC_BINS; b++)
            hist += st->auc_pos[b] + st->auc_neg[b];
        CHECKF(hist == 8.0, "AUC histogram holds %g samples", hist);
        /* stats accumulate across calls */
        s = nr_plan_fit(plan, NULL, &f->in, &f->lab, idx, 8, 3, &step, 1, st, NULL);
        CHECKF(s == NR_OK && step == 4 && st->samples == 16.0,
               "second fit: %s step %lld samples %g", nr_status_str(s), (long long)step,
               st->samples);
        free(st);
        nr_plan_free(plan);
    }

    /* training lowers the loss; predict matches the naive forward pass */
    lr_setup(f, 1);
    lr_weights(f);
    lr_use_adam(f, 0.05f);
    struct nr_plan *plan = NULL;
    CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
    if (!plan) {
        free(f);
        return;
    }
    int64_t step = 0;
    double first = lr_epoch(plan, NULL, f, &step, 11, 32), last = first;
    for (int e = 1; e < 15; e++)
        last = lr_epoch(plan, NULL, f, &step, 11 + (uint64_t)e, 32);
    CHECKF(last < 0.6 * first, "loss %.4f -> %.4f after 15 epochs", first, last);
    CHECKF(step == 15 * ((LR_N + 31) / 32), "step %lld", (long long)step);

    float *out = xcalloc(LR_N, sizeof *out), *out2 = xcalloc(LR_N, sizeof *out2);
    double *ref = xcalloc(LR_N, sizeof *ref);
    for (int64_t i = 0; i < LR_N; i++)
        ref[i] = lr_pred(f, i);
    CHECK(nr_plan_predict(plan, NULL, &f->in, 0, LR_N, out) == NR_OK);
    check_arr("predict (600 samples, several chunks)", out, ref, LR_N, 1e-5, 1e-6);
    CHECK(nr_plan_predict(plan, NULL, &f->in, 100, 7, out2) == NR_OK);
    check_arr("predict from start 100", out2, ref + 100, 7, 1e-5, 1e-6);
    CHECK(nr_plan_predict(plan, pool2, &f->in, 0, LR_N, out2) == NR_OK);
    check_arr("predict with 2 threads", out2, ref, LR_N, 1e-5, 1e-6);
    CHECK(nr_plan_predict(plan, NULL, &f->in, 0, 0, out2) == NR_OK);
    CHECK(nr_plan_predict(plan, NULL, &f->in, 0, -1, out2) == NR_ERR_VALUE);

    /* a batch larger than the scratch (regrows it after predict), then batches
     * smaller than the thread count (idle threads) */
    {
        int64_t all[LR_N];
        for (int64_t i = 0; i < LR_N; i++)
            all[i] = LR_N - 1 - i;
        struct nr_fit_stats *gst = new_stats();
        int64_t s0 = step;
        CHECK(nr_plan_fit(plan, pool3, &f->in, &f->lab, all, LR_N, 1000, &step, 2, gst, NULL) ==
              NR_OK);
        CHECK(nr_plan_fit(plan, pool3, &f->in, &f->lab, all, 7, 2, &step, 2, gst, NULL) == NR_OK);
        CHECK(nr_plan_fit(plan, pool3, &f->in, &f->lab, all, 1, 1, &step, 2, gst, NULL) == NR_OK);
        CHECKF(step == s0 + 1 + 4 + 1 && gst->samples == LR_N + 8, "step %lld samples %g",
               (long long)(step - s0), gst->samples);
        free(gst);
        for (int64_t i = 0; i < LR_N; i++)
            ref[i] = lr_pred(f, i);
        CHECK(nr_plan_predict(plan, pool3, &f->in, 0, LR_N, out) == NR_OK);
        check_arr("predict after regrowing the scratch", out, ref, LR_N, 1e-5, 1e-6);
    }

    /* abort, bad batch size, and a zero learning rate through nr_plan_set_optim */
    float keep[LR_K + 1];
    memcpy(keep, f->kw, sizeof f->kw);
    keep[LR_K] = f->kb[0];
    volatile int abort_flag = 1;
    int64_t perm[LR_N];
    nr_sampler_permutation(perm, LR_N, 3);
    struct nr_fit_stats *st = new_stats();
    int64_t step0 = step;
    CHECK(nr_plan_fit(plan, NULL, &f->in, &f->lab, perm, LR_N, 32, &step, 1, st, &abort_flag) ==
          NR_ABORTED);
    CHECK(step == step0 && memcmp(keep, f->kw, sizeof f->kw) == 0 && keep[LR_K] == f->kb[0]);
    CHECK(nr_plan_fit(plan, NULL, &f->in, &f->lab, perm, LR_N, 0, &step, 1, st, NULL) ==
          NR_ERR_VALUE);
    struct nr_optim sgd0 = {.kind = NR_OPTIM_SGD, .lr = 0.0f};
    nr_plan_set_optim(plan, &sgd0);
    CHECK(nr_plan_fit(plan, NULL, &f->in, &f->lab, perm, 64, 32, &step, 1, st, NULL) == NR_OK);
    CHECK(step == step0 + 2 && memcmp(keep, f->kw, sizeof f->kw) == 0 && keep[LR_K] == f->kb[0]);
    free(st);
    nr_plan_free(plan);

    /* threads: 2 threads twice give identical bits; 1 vs 2 threads agree closely */
    float w1[LR_K + 1], w2[2][LR_K + 1];
    for (int run = 0; run < 3; run++) {
        lr_weights(f);
        plan = NULL;
        CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
        if (!plan)
            break;
        step = 0;
        for (int e = 0; e < 3; e++)
            lr_epoch(plan, run == 0 ? NULL : pool2, f, &step, 100 + (uint64_t)e, 50);
        float *dst = run == 0 ? w1 : w2[run - 1];
        memcpy(dst, f->kw, sizeof f->kw);
        dst[LR_K] = f->kb[0];
        nr_plan_free(plan);
    }
    CHECKF(memcmp(w2[0], w2[1], sizeof w2[0]) == 0, "two runs with 2 threads differ");
    double rw1[LR_K + 1];
    for (int k = 0; k <= LR_K; k++)
        rw1[k] = w1[k];
    check_arr("1 thread vs 2 threads", w2[0], rw1, LR_K + 1, 1e-4, 1e-5);
    free(out), free(out2), free(ref), free(f);
}

/* Embeddings: user and item tables -> MUL -> DENSE(4 -> 1) -> sigmoid (GMF). */
enum { G_U = 5, G_I = 7, G_D = 4, G_N = 35 };
struct gmf_fixture {
    int64_t users[G_N];
    int32_t items[G_N];
    double labels[G_N];
    float U[G_U * G_D], I[G_I * G_D], K[G_D];
    float slots[3][2][G_I * G_D];
    int64_t row_steps[2][G_I];
    struct nr_param prm[3];
    struct nr_op ops[5];
    int64_t vsize[5];
    struct nr_plan_desc d;
    struct nr_array in[2], lab;
};

static void gmf_setup(struct gmf_fixture *f, int sparse)
{
    memset(f, 0, sizeof *f);
    float tu[G_U][2], ti[G_I][2];
    for (int u = 0; u < G_U; u++)
        tu[u][0] = t_sym(1.0f), tu[u][1] = t_sym(1.0f);
    for (int i = 0; i < G_I; i++)
        ti[i][0] = t_sym(1.0f), ti[i][1] = t_sym(1.0f);
    for (int n = 0; n < G_N; n++) {
        f->users[n] = n / G_I;
        f->items[n] = n % G_I;
        double z = tu[n / G_I][0] * ti[n % G_I][0] + tu[n / G_I][1] * ti[n % G_I][1];
        f->labels[n] = z > 0 ? 1.0 : 0.0;
    }
    fill(f->U, G_U * G_D, 0.5f);
    fill(f->I, G_I * G_D, 0.5f);
    fill(f->K, G_D, 1.0f);
    f->prm[0] = (struct nr_param){.w = f->U, .rows = G_U, .cols = G_D, .is_table = 1};
    f->prm[1] = (struct nr_param){.w = f->I, .rows = G_I, .cols = G_D, .is_table = 1};
    f->prm[2] = (struct nr_param){.w = f->K, .rows = G_D, .cols = 1};
    f->ops[0] = (struct nr_op){
        .kind = NR_OP_EMBEDDING, .out = 0, .n_in = 1, .in = {0}, .param = {0, -1}, .dim = {1, G_D}};
    f->ops[1] = (struct nr_op){
        .kind = NR_OP_EMBEDDING, .out = 1, .n_in = 1, .in = {1}, .param = {1, -1}, .dim = {1, G_D}};
    f->ops[2] =
        (struct nr_op){.kind = NR_OP_MUL, .out = 2, .n_in = 2, .in = {0, 1}, .param = {-1, -1}};
    f->ops[3] = (struct nr_op){
        .kind = NR_OP_DENSE, .out = 3, .n_in = 1, .in = {2}, .param = {2, -1}, .dim = {1, G_D, 1}};
    f->ops[4] = (struct nr_op){.kind = NR_OP_ACT,
                               .out = 4,
                               .n_in = 1,
                               .in = {3},
                               .param = {-1, -1},
                               .act = NR_ACT_SIGMOID,
                               .dim = {1, 1}};
    f->vsize[0] = f->vsize[1] = f->vsize[2] = G_D;
    f->vsize[3] = f->vsize[4] = 1;
    f->d = (struct nr_plan_desc){
        .n_ops = 5,
        .ops = f->ops,
        .n_values = 5,
        .value_size = f->vsize,
        .n_params = 3,
        .params = f->prm,
        .n_inputs = 2,
        .output = 4,
        .loss = NR_LOSS_BCE,
        .logits = 3,
        .optim = {.kind = NR_OPTIM_SGD, .lr = 0.3f},
        .sparse = sparse,
    };
    f->in[0] = (struct nr_array){f->users, NR_DTYPE_I64, G_N, 1};
    f->in[1] = (struct nr_array){f->items, NR_DTYPE_I32, G_N, 1};
    f->lab = (struct nr_array){f->labels, NR_DTYPE_F64, G_N, 1};
}

static double gmf_logit(const struct gmf_fixture *f, int64_t u, int64_t i)
{
    double z = 0.0;
    for (int c = 0; c < G_D; c++)
        z += (double)f->U[u * G_D + c] * f->I[i * G_D + c] * f->K[c];
    return z;
}

static void test_plan_embedding(struct nr_pool *pool2)
{
    g_section = "plan/embedding";
    struct gmf_fixture *f = xcalloc(1, sizeof *f), *f0 = xcalloc(1, sizeof *f0);
    /* a batch with repeated users and items: their gradients must add up */
    const int64_t idx[8] = {0, 1, 8, 7, 14, 2, 9, 34};
    for (int sparse = 1; sparse >= 0; sparse--) {
        uint64_t saved = t_state;
        gmf_setup(f, sparse);
        t_state = saved;
        double gU[G_U * G_D] = {0}, gI[G_I * G_D] = {0}, gK[G_D] = {0};
        for (int j = 0; j < 8; j++) {
            int64_t n = idx[j], u = f->users[n], i = f->items[n];
            double d = (sigm(gmf_logit(f, u, i)) - f->labels[n]) / 8.0;
            for (int c = 0; c < G_D; c++) {
                double uu = f->U[u * G_D + c], ii = f->I[i * G_D + c], kk = f->K[c];
                gU[u * G_D + c] += d * ii * kk;
                gI[i * G_D + c] += d * uu * kk;
                gK[c] += d * uu * ii;
            }
        }
        double rU[G_U * G_D], rI[G_I * G_D], rK[G_D];
        for (int k = 0; k < G_U * G_D; k++)
            rU[k] = f->U[k] - 0.3 * gU[k];
        for (int k = 0; k < G_I * G_D; k++)
            rI[k] = f->I[k] - 0.3 * gI[k];
        for (int k = 0; k < G_D; k++)
            rK[k] = f->K[k] - 0.3 * gK[k];
        struct nr_plan *plan = NULL;
        enum nr_status s = nr_plan_init(&plan, &f->d);
        CHECKF(s == NR_OK, "init sparse=%d: %s", sparse, nr_status_str(s));
        if (!plan)
            continue;
        int64_t step = 0;
        struct nr_fit_stats *st = new_stats();
        s = nr_plan_fit(plan, pool2, f->in, &f->lab, idx, 8, 8, &step, 1, st, NULL);
        CHECKF(s == NR_OK, "fit: %s", nr_status_str(s));
        const char *tag = sparse ? "sparse" : "dense";
        char what[64];
        snprintf(what, sizeof what, "one SGD step, user table (%s)", tag);
        check_arr(what, f->U, rU, G_U * G_D, 1e-5, 1e-6);
        snprintf(what, sizeof what, "one SGD step, item table (%s)", tag);
        check_arr(what, f->I, rI, G_I * G_D, 1e-5, 1e-6);
        snprintf(what, sizeof what, "one SGD step, kernel (%s)", tag);
        check_arr(what, f->K, rK, G_D, 1e-5, 1e-6);

        /* bad ids: NR_ERR_INDEX, and the offending batch is not applied */
        memcpy(f0, f, sizeof *f);
        f->items[7] = G_I; /* sample 7 is in the batch */
        s = nr_plan_fit(plan, NULL, f->in, &f->lab, idx, 8, 8, &step, 1, st, NULL);
        CHECKF(s == NR_ERR_INDEX, "item id past the end: %s", nr_status_str(s));
        CHECK(memcmp(f->U, f0->U, sizeof f->U) == 0 && memcmp(f->I, f0->I, sizeof f->I) == 0 &&
              memcmp(f->K, f0->K, sizeof f->K) == 0 && step == 1);
        f->items[7] = 0;
        f->users[14] = -1;
        s = nr_plan_fit(plan, pool2, f->in, &f->lab, idx, 8, 4, &step, 1, st, NULL);
        CHECKF(s == NR_ERR_INDEX, "negative user id: %s", nr_status_str(s));
        float out[G_N];
        CHECK(nr_plan_predict(plan, NULL, f->in, 0, G_N, out) == NR_ERR_INDEX);
        f->users[14] = 2;
        CHECK(nr_plan_predict(plan, pool2, f->in, 0, G_N, out) == NR_OK);
        double ref[G_N];
        for (int n = 0; n < G_N; n++)
            ref[n] = sigm(gmf_logit(f, f->users[n], f->items[n]));
        check_arr("predict", out, ref, G_N, 1e-5, 1e-6);
        free(st);
        nr_plan_free(plan);
    }

    /* lazy Adam: per-row step counts and untouched rows; the loss goes down */
    gmf_setup(f, 1);
    f->d.optim = (struct nr_optim){
        .kind = NR_OPTIM_ADAM, .lr = 0.05f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
    for (int p = 0; p < 3; p++) {
        f->prm[p].slot[0] = f->slots[p][0];
        f->prm[p].slot[1] = f->slots[p][1];
    }
    f->prm[0].row_steps = f->row_steps[0];
    f->prm[1].row_steps = f->row_steps[1];
    memcpy(f0, f, sizeof *f);
    struct nr_plan *plan = NULL;
    CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
    if (plan) {
        const int64_t b1[3] = {0, 1, 8}; /* users {0, 0, 1}, items {0, 1, 1} */
        int64_t step = 0;
        struct nr_fit_stats *st = new_stats();
        CHECK(nr_plan_fit(plan, NULL, f->in, &f->lab, b1, 3, 3, &step, 1, st, NULL) == NR_OK);
        CHECKF(f->row_steps[0][0] == 1 && f->row_steps[0][1] == 1 && f->row_steps[0][2] == 0 &&
                   f->row_steps[1][0] == 1 && f->row_steps[1][1] == 1 && f->row_steps[1][2] == 0,
               "row_steps users %lld %lld %lld items %lld %lld %lld", (long long)f->row_steps[0][0],
               (long long)f->row_steps[0][1], (long long)f->row_steps[0][2],
               (long long)f->row_steps[1][0], (long long)f->row_steps[1][1],
               (long long)f->row_steps[1][2]);
        CHECK(memcmp(f->U + 2 * G_D, f0->U + 2 * G_D, (G_U - 2) * G_D * sizeof(float)) == 0);
        CHECK(memcmp(f->I + 2 * G_D, f0->I + 2 * G_D, (G_I - 2) * G_D * sizeof(float)) == 0);
        int64_t perm[G_N];
        double first = 0.0, last = 0.0;
        for (int e = 0; e < 60; e++) {
            memset(st, 0, sizeof *st);
            nr_sampler_permutation(perm, G_N, (uint64_t)e);
            CHECK(nr_plan_fit(plan, e % 2 ? pool2 : NULL, f->in, &f->lab, perm, G_N, 8, &step, 1,
                              st, NULL) == NR_OK);
            last = st->loss_sum / st->samples;
            if (e == 0)
                first = last;
        }
        CHECKF(last < 0.8 * first, "loss %.4f -> %.4f after 60 epochs", first, last);
        free(st);
        nr_plan_free(plan);
    }
    free(f), free(f0);
}

/*
 * Several ids per sample and a table shared by two ops:
 *   ue  = EMBEDDING(users, U)                    (4)
 *   ui  = EMBEDDING(users, I)   (same table I)   (4)
 *   bag = EMBEDDING(items[3], I)                 (3 x 4)
 *   pb  = DENSE(bag) per row, 4 -> 1             (3)
 *   z   = DENSE(CONCAT(ue, ui, pb)) 11 -> 1 + b  (1), out = sigmoid(z)
 */
enum { B_U = 5, B_I = 7, B_D = 4, B_M = 3, B_N = 9, B_F = 2 * B_D + B_M };
struct bag_fixture {
    int64_t users[B_N], items[B_N * B_M];
    float labels[B_N];
    float U[B_U * B_D], I[B_I * B_D], K1[B_D], K2[B_F], B[1];
    struct nr_param prm[5];
    struct nr_op ops[7];
    int64_t vsize[7];
    struct nr_plan_desc d;
    struct nr_array in[2], lab;
};

static void bag_setup(struct bag_fixture *f)
{
    memset(f, 0, sizeof *f);
    for (int n = 0; n < B_N; n++) {
        f->users[n] = n % B_U;
        for (int j = 0; j < B_M; j++) /* repeats inside a bag: ids 1 and 2 twice */
            f->items[n * B_M + j] = (n + (j == 2 ? 0 : j)) % B_I;
        f->labels[n] = (float)(n % 3 == 0);
    }
    fill(f->U, B_U * B_D, 0.5f);
    fill(f->I, B_I * B_D, 0.5f);
    fill(f->K1, B_D, 1.0f);
    fill(f->K2, B_F, 1.0f);
    f->B[0] = 0.1f;
    f->prm[0] = (struct nr_param){.w = f->U, .rows = B_U, .cols = B_D, .is_table = 1};
    f->prm[1] = (struct nr_param){.w = f->I, .rows = B_I, .cols = B_D, .is_table = 1};
    f->prm[2] = (struct nr_param){.w = f->K1, .rows = B_D, .cols = 1};
    f->prm[3] = (struct nr_param){.w = f->K2, .rows = B_F, .cols = 1};
    f->prm[4] = (struct nr_param){.w = f->B, .rows = 1, .cols = 1};
    f->ops[0] = (struct nr_op){
        .kind = NR_OP_EMBEDDING, .out = 0, .n_in = 1, .in = {0}, .param = {0, -1}, .dim = {1, B_D}};
    f->ops[1] = (struct nr_op){
        .kind = NR_OP_EMBEDDING, .out = 1, .n_in = 1, .in = {0}, .param = {1, -1}, .dim = {1, B_D}};
    f->ops[2] = (struct nr_op){.kind = NR_OP_EMBEDDING,
                               .out = 2,
                               .n_in = 1,
                               .in = {1},
                               .param = {1, -1},
                               .dim = {B_M, B_D}};
    f->ops[3] = (struct nr_op){.kind = NR_OP_DENSE,
                               .out = 3,
                               .n_in = 1,
                               .in = {2},
                               .param = {2, -1},
                               .dim = {B_M, B_D, 1}};
    f->ops[4] = (struct nr_op){
        .kind = NR_OP_CONCAT, .out = 4, .n_in = 3, .in = {0, 1, 3}, .param = {-1, -1}, .dim = {1}};
    f->ops[5] = (struct nr_op){
        .kind = NR_OP_DENSE, .out = 5, .n_in = 1, .in = {4}, .param = {3, 4}, .dim = {1, B_F, 1}};
    f->ops[6] = (struct nr_op){.kind = NR_OP_ACT,
                               .out = 6,
                               .n_in = 1,
                               .in = {5},
                               .param = {-1, -1},
                               .act = NR_ACT_SIGMOID,
                               .dim = {1, 1}};
    const int64_t vs[7] = {B_D, B_D, B_M * B_D, B_M, B_F, 1, 1};
    memcpy(f->vsize, vs, sizeof vs);
    f->d = (struct nr_plan_desc){
        .n_ops = 7,
        .ops = f->ops,
        .n_values = 7,
        .value_size = f->vsize,
        .n_params = 5,
        .params = f->prm,
        .n_inputs = 2,
        .output = 6,
        .loss = NR_LOSS_BCE,
        .logits = 5,
        .optim = {.kind = NR_OPTIM_SGD, .lr = 0.2f},
        .sparse = 1,
    };
    f->in[0] = (struct nr_array){f->users, NR_DTYPE_I64, B_N, 1};
    f->in[1] = (struct nr_array){f->items, NR_DTYPE_I64, B_N, B_M};
    f->lab = (struct nr_array){f->labels, NR_DTYPE_F32, B_N, 1};
}

static void bag_repoint(struct bag_fixture *f)
{
    f->prm[0].w = f->U, f->prm[1].w = f->I, f->prm[2].w = f->K1, f->prm[3].w = f->K2,
    f->prm[4].w = f->B;
    f->d.ops = f->ops, f->d.value_size = f->vsize, f->d.params = f->prm;
    f->in[0].data = f->users, f->in[1].data = f->items, f->lab.data = f->labels;
}

static void test_plan_bag(struct nr_pool *pool2, struct nr_pool *pool3)
{
    g_section = "plan/bag-of-ids";
    struct bag_fixture *f = xcalloc(1, sizeof *f), *f0 = xcalloc(1, sizeof *f0);
    bag_setup(f);
    memcpy(f0, f, sizeof *f);
    bag_repoint(f0);
    /* one SGD step over all 9 samples, by hand */
    double gU[B_U * B_D] = {0}, gI[B_I * B_D] = {0}, gK1[B_D] = {0}, gK2[B_F] = {0}, gB = 0.0;
    for (int n = 0; n < B_N; n++) {
        int64_t u = f->users[n];
        const int64_t *bag = f->items + n * B_M;
        double feat[B_F], z = f->B[0];
        for (int c = 0; c < B_D; c++) {
            feat[c] = f->U[u * B_D + c];
            feat[B_D + c] = f->I[u * B_D + c];
        }
        for (int j = 0; j < B_M; j++) {
            double a = 0.0;
            for (int c = 0; c < B_D; c++)
                a += (double)f->I[bag[j] * B_D + c] * f->K1[c];
            feat[2 * B_D + j] = a;
        }
        for (int c = 0; c < B_F; c++)
            z += feat[c] * f->K2[c];
        double d = (sigm(z) - f->labels[n]) / B_N;
        gB += d;
        for (int c = 0; c < B_F; c++)
            gK2[c] += d * feat[c];
        for (int c = 0; c < B_D; c++) {
            gU[u * B_D + c] += d * f->K2[c];
            gI[u * B_D + c] += d * f->K2[B_D + c];
            for (int j = 0; j < B_M; j++) {
                gI[bag[j] * B_D + c] += d * f->K2[2 * B_D + j] * f->K1[c];
                gK1[c] += d * f->K2[2 * B_D + j] * f->I[bag[j] * B_D + c];
            }
        }
    }
    double rU[B_U * B_D], rI[B_I * B_D], rK1[B_D], rK2[B_F], rB = f->B[0] - 0.2 * gB;
    for (int k = 0; k < B_U * B_D; k++)
        rU[k] = f->U[k] - 0.2 * gU[k];
    for (int k = 0; k < B_I * B_D; k++)
        rI[k] = f->I[k] - 0.2 * gI[k];
    for (int k = 0; k < B_D; k++)
        rK1[k] = f->K1[k] - 0.2 * gK1[k];
    for (int k = 0; k < B_F; k++)
        rK2[k] = f->K2[k] - 0.2 * gK2[k];
    struct nr_pool *pools[3] = {NULL, pool2, pool3};
    for (int mode = 0; mode < 6; mode++) { /* thread count x {sparse, dense} */
        memcpy(f, f0, sizeof *f);
        bag_repoint(f);
        f->d.sparse = mode < 3;
        struct nr_plan *plan = NULL;
        CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
        if (!plan)
            continue;
        int64_t idx[B_N], step = 0;
        for (int n = 0; n < B_N; n++)
            idx[n] = (n * 4) % B_N;
        struct nr_fit_stats *st = new_stats();
        CHECK(nr_plan_fit(plan, pools[mode % 3], f->in, &f->lab, idx, B_N, B_N, &step, 1, st,
                          NULL) == NR_OK);
        char what[64];
        snprintf(what, sizeof what, "user table, %d threads, sparse %d",
                 nr_pool_size(pools[mode % 3]), f->d.sparse);
        check_arr(what, f->U, rU, B_U * B_D, 1e-5, 1e-6);
        snprintf(what, sizeof what, "shared item table, %d threads, sparse %d",
                 nr_pool_size(pools[mode % 3]), f->d.sparse);
        check_arr(what, f->I, rI, B_I * B_D, 1e-5, 1e-6);
        check_arr("per-row dense kernel", f->K1, rK1, B_D, 1e-5, 1e-6);
        check_arr("output kernel", f->K2, rK2, B_F, 1e-5, 1e-6);
        check_arr("output bias", f->B, &rB, 1, 1e-5, 1e-6);
        free(st);
        nr_plan_free(plan);
    }

    /* Hogwild: with one thread identical to the synchronous sparse update;
     * with two it runs (rows shared between threads race by design) */
    struct bag_fixture *h = xcalloc(1, sizeof *h);
    for (int hw = 0; hw < 3; hw++) {
        struct bag_fixture *g = hw == 0 ? f : h;
        memcpy(g, f0, sizeof *g);
        bag_repoint(g);
        g->d.hogwild = hw > 0;
        struct nr_plan *plan = NULL;
        CHECK(nr_plan_init(&plan, &g->d) == NR_OK);
        if (!plan)
            continue;
        int64_t perm[B_N], step = 0;
        struct nr_fit_stats *st = new_stats();
        for (int e = 0; e < 20; e++) {
            nr_sampler_permutation(perm, B_N, (uint64_t)e);
            CHECK(nr_plan_fit(plan, hw == 2 ? pool2 : NULL, g->in, &g->lab, perm, B_N, 2, &step, 1,
                              st, NULL) == NR_OK);
        }
        if (hw == 1)
            CHECKF(memcmp(f->U, h->U, sizeof f->U) == 0 && memcmp(f->I, h->I, sizeof f->I) == 0 &&
                       memcmp(f->K2, h->K2, sizeof f->K2) == 0,
                   "1-thread Hogwild differs from the synchronous update");
        if (hw == 2) {
            int finite = 1;
            for (int k = 0; k < B_I * B_D; k++)
                finite &= isfinite(h->I[k]);
            CHECK(finite && memcmp(h->I, f0->I, sizeof h->I) != 0);
        }
        free(st);
        nr_plan_free(plan);
    }
    free(h), free(f), free(f0);
}

/*
 * A NeuMF-like graph touching every remaining op:
 *   ue, ie = EMBEDDING(users), EMBEDDING(items)         (4 each)
 *   gmf    = MUL(ue, ie)                                 (4)
 *   cat    = CONCAT(ue, ie)                              (8)
 *   h      = DROPOUT(ACT relu(DENSE 8 -> 3 + bias))      (3)
 *   cat2   = CONCAT(gmf, h)                              (7)
 *   cosv   = ALIAS(DOT(ue, ie, normalize))               (1)
 *   diff   = SUB(DENSE 7 -> 1 + bias, AVERAGE(cosv, cosv)), tanh'd, ADD'ed back
 *   out    = sigmoid(ADD(z, t))                          (1)
 */
enum { M_U = 6, M_I = 9, M_D = 4, M_H = 3, M_N = 54 };
enum {
    V_UE,
    V_IE,
    V_GMF,
    V_CAT,
    V_H,
    V_HR,
    V_HD,
    V_CAT2,
    V_Z,
    V_DOT,
    V_COS,
    V_AVG,
    V_DIFF,
    V_T,
    V_SUM,
    V_OUT,
    V_COUNT
};
struct mix_fixture {
    int32_t users[M_N], items[M_N];
    float labels[M_N];
    float U[M_U * M_D], I[M_I * M_D], W1[2 * M_D * M_H], B1[M_H], W2[(M_D + M_H)], B2[1];
    struct nr_param prm[6];
    struct nr_op ops[16];
    int64_t vsize[V_COUNT];
    struct nr_plan_desc d;
    struct nr_array in[2], lab;
};

static void mix_setup(struct mix_fixture *f)
{
    memset(f, 0, sizeof *f);
    for (int n = 0; n < M_N; n++) {
        f->users[n] = n / M_I;
        f->items[n] = n % M_I;
        f->labels[n] = (float)((n / M_I + 2 * (n % M_I)) % 3 == 0);
    }
    fill(f->U, M_U * M_D, 0.5f);
    fill(f->I, M_I * M_D, 0.5f);
    fill(f->W1, 2 * M_D * M_H, 0.5f);
    fill(f->B1, M_H, 0.1f);
    fill(f->W2, M_D + M_H, 0.5f);
    f->B2[0] = 0.05f;
    f->prm[0] = (struct nr_param){.w = f->U, .rows = M_U, .cols = M_D, .is_table = 1};
    f->prm[1] = (struct nr_param){.w = f->I, .rows = M_I, .cols = M_D, .is_table = 1};
    f->prm[2] = (struct nr_param){.w = f->W1, .rows = 2 * M_D, .cols = M_H};
    f->prm[3] = (struct nr_param){.w = f->B1, .rows = 1, .cols = M_H};
    f->prm[4] = (struct nr_param){.w = f->W2, .rows = M_D + M_H, .cols = 1};
    f->prm[5] = (struct nr_param){.w = f->B2, .rows = 1, .cols = 1};
    int o = 0;
    f->ops[o++] = (struct nr_op){.kind = NR_OP_EMBEDDING,
                                 .out = V_UE,
                                 .n_in = 1,
                                 .in = {0},
                                 .param = {0, -1},
                                 .dim = {1, M_D}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_EMBEDDING,
                                 .out = V_IE,
                                 .n_in = 1,
                                 .in = {1},
                                 .param = {1, -1},
                                 .dim = {1, M_D}};
    f->ops[o++] = (struct nr_op){
        .kind = NR_OP_MUL, .out = V_GMF, .n_in = 2, .in = {V_UE, V_IE}, .param = {-1, -1}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_CONCAT,
                                 .out = V_CAT,
                                 .n_in = 2,
                                 .in = {V_UE, V_IE},
                                 .param = {-1, -1},
                                 .dim = {1}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_DENSE,
                                 .out = V_H,
                                 .n_in = 1,
                                 .in = {V_CAT},
                                 .param = {2, 3},
                                 .dim = {1, 2 * M_D, M_H}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_ACT,
                                 .out = V_HR,
                                 .n_in = 1,
                                 .in = {V_H},
                                 .param = {-1, -1},
                                 .act = NR_ACT_RELU,
                                 .dim = {1, M_H}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_DROPOUT,
                                 .out = V_HD,
                                 .n_in = 1,
                                 .in = {V_HR},
                                 .param = {-1, -1},
                                 .rate = 0.25f};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_CONCAT,
                                 .out = V_CAT2,
                                 .n_in = 2,
                                 .in = {V_GMF, V_HD},
                                 .param = {-1, -1},
                                 .dim = {1}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_DENSE,
                                 .out = V_Z,
                                 .n_in = 1,
                                 .in = {V_CAT2},
                                 .param = {4, 5},
                                 .dim = {1, M_D + M_H, 1}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_DOT,
                                 .out = V_DOT,
                                 .n_in = 2,
                                 .in = {V_UE, V_IE},
                                 .param = {-1, -1},
                                 .flag = 1,
                                 .dim = {1, M_D, 1, M_D, 1, 1}};
    f->ops[o++] = (struct nr_op){
        .kind = NR_OP_ALIAS, .out = V_COS, .n_in = 1, .in = {V_DOT}, .param = {-1, -1}};
    f->ops[o++] = (struct nr_op){
        .kind = NR_OP_AVERAGE, .out = V_AVG, .n_in = 2, .in = {V_COS, V_COS}, .param = {-1, -1}};
    f->ops[o++] = (struct nr_op){
        .kind = NR_OP_SUB, .out = V_DIFF, .n_in = 2, .in = {V_Z, V_AVG}, .param = {-1, -1}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_ACT,
                                 .out = V_T,
                                 .n_in = 1,
                                 .in = {V_DIFF},
                                 .param = {-1, -1},
                                 .act = NR_ACT_TANH,
                                 .dim = {1, 1}};
    f->ops[o++] = (struct nr_op){
        .kind = NR_OP_ADD, .out = V_SUM, .n_in = 3, .in = {V_Z, V_T, V_COS}, .param = {-1, -1}};
    f->ops[o++] = (struct nr_op){.kind = NR_OP_ACT,
                                 .out = V_OUT,
                                 .n_in = 1,
                                 .in = {V_SUM},
                                 .param = {-1, -1},
                                 .act = NR_ACT_SIGMOID,
                                 .dim = {1, 1}};
    const int64_t vs[V_COUNT] = {M_D, M_D, M_D, 2 * M_D, M_H, M_H, M_H, M_D + M_H,
                                 1,   1,   1,   1,       1,   1,   1,   1};
    memcpy(f->vsize, vs, sizeof vs);
    f->d = (struct nr_plan_desc){
        .n_ops = o,
        .ops = f->ops,
        .n_values = V_COUNT,
        .value_size = f->vsize,
        .n_params = 6,
        .params = f->prm,
        .n_inputs = 2,
        .output = V_OUT,
        .loss = NR_LOSS_BCE,
        .logits = V_SUM,
        .optim = {.kind = NR_OPTIM_SGD, .lr = 0.5f},
        .sparse = 1,
    };
    f->in[0] = (struct nr_array){f->users, NR_DTYPE_I32, M_N, 1};
    f->in[1] = (struct nr_array){f->items, NR_DTYPE_I32, M_N, 1};
    f->lab = (struct nr_array){f->labels, NR_DTYPE_F32, M_N, 1};
}

/* Inference-mode forward pass of the mix graph, in double. */
static double mix_ref(const struct mix_fixture *f, int n)
{
    const float *u = f->U + f->users[n] * M_D, *i = f->I + f->items[n] * M_D;
    double cat[2 * M_D], cat2[M_D + M_H], nu = 0, ni = 0, ui = 0;
    for (int c = 0; c < M_D; c++) {
        cat[c] = u[c];
        cat[M_D + c] = i[c];
        cat2[c] = (double)u[c] * i[c];
        nu += (double)u[c] * u[c];
        ni += (double)i[c] * i[c];
        ui += (double)u[c] * i[c];
    }
    for (int h = 0; h < M_H; h++) {
        double a = f->B1[h];
        for (int c = 0; c < 2 * M_D; c++)
            a += cat[c] * f->W1[c * M_H + h];
        cat2[M_D + h] = a > 0 ? a : 0;
    }
    double z = f->B2[0];
    for (int c = 0; c < M_D + M_H; c++)
        z += cat2[c] * f->W2[c];
    double cosv = ui / (sqrt(nu) * sqrt(ni));
    return sigm(z + tanh(z - cosv) + cosv);
}

static void test_plan_mix(struct nr_pool *pool2)
{
    g_section = "plan/all-ops";
    struct mix_fixture *f = xcalloc(1, sizeof *f), *f0 = xcalloc(1, sizeof *f0);
    mix_setup(f);
    memcpy(f0, f, sizeof *f);
    struct nr_plan *plan = NULL;
    enum nr_status s = nr_plan_init(&plan, &f->d);
    CHECKF(s == NR_OK, "init: %s", nr_status_str(s));
    if (!plan) {
        free(f), free(f0);
        return;
    }
    float out[M_N];
    double ref[M_N];
    CHECK(nr_plan_predict(plan, pool2, f->in, 0, M_N, out) == NR_OK);
    for (int n = 0; n < M_N; n++)
        ref[n] = mix_ref(f, n);
    check_arr("predict before training", out, ref, M_N, 1e-5, 1e-6);

    int64_t perm[M_N], step = 0;
    struct nr_fit_stats *st = new_stats();
    double first = 0, last = 0;
    for (int e = 0; e < 40; e++) {
        memset(st, 0, sizeof *st);
        nr_sampler_permutation(perm, M_N, (uint64_t)e);
        s = nr_plan_fit(plan, pool2, f->in, &f->lab, perm, M_N, 9, &step, 77, st, NULL);
        CHECKF(s == NR_OK, "fit epoch %d: %s", e, nr_status_str(s));
        last = st->loss_sum / st->samples;
        if (e == 0)
            first = last;
    }
    CHECKF(last < 0.85 * first, "loss %.4f -> %.4f after 40 epochs", first, last);
    CHECK(nr_plan_predict(plan, NULL, f->in, 0, M_N, out) == NR_OK);
    for (int n = 0; n < M_N; n++)
        ref[n] = mix_ref(f, n);
    check_arr("predict after training", out, ref, M_N, 1e-5, 1e-6);
    nr_plan_free(plan);

    /* same seed and 2 threads: identical bits; 1 thread: close (masks depend on the sample) */
    struct mix_fixture *runs[3];
    for (int r = 0; r < 3; r++) {
        runs[r] = xcalloc(1, sizeof **runs);
        memcpy(runs[r], f0, sizeof *f0);
        struct mix_fixture *g = runs[r];
        g->d.ops = g->ops, g->d.value_size = g->vsize, g->d.params = g->prm;
        g->prm[0].w = g->U, g->prm[1].w = g->I, g->prm[2].w = g->W1;
        g->prm[3].w = g->B1, g->prm[4].w = g->W2, g->prm[5].w = g->B2;
        g->in[0].data = g->users, g->in[1].data = g->items, g->lab.data = g->labels;
        plan = NULL;
        CHECK(nr_plan_init(&plan, &g->d) == NR_OK);
        if (!plan)
            continue;
        step = 0;
        for (int e = 0; e < 5; e++) {
            nr_sampler_permutation(perm, M_N, (uint64_t)e);
            CHECK(nr_plan_fit(plan, r == 0 ? NULL : pool2, g->in, &g->lab, perm, M_N, 9, &step, 5,
                              st, NULL) == NR_OK);
        }
        nr_plan_free(plan);
    }
    CHECKF(memcmp(runs[1]->U, runs[2]->U, sizeof f->U) == 0 &&
               memcmp(runs[1]->W1, runs[2]->W1, sizeof f->W1) == 0 &&
               memcmp(runs[1]->W2, runs[2]->W2, sizeof f->W2) == 0,
           "two runs with 2 threads differ");
    double rw[2 * M_D * M_H];
    for (int k = 0; k < 2 * M_D * M_H; k++)
        rw[k] = runs[0]->W1[k];
    check_arr("W1, 1 thread vs 2 threads", runs[1]->W1, rw, 2 * M_D * M_H, 1e-3, 1e-4);
    for (int r = 0; r < 3; r++)
        free(runs[r]);
    free(st), free(f), free(f0);
}

/*
 * The reduce hook on a GMF graph with a 64 x 64 tower, heavy enough that a
 * batch of 16 runs on both threads of pool2 despite the grain:
 *   ue, ie = EMBEDDING(users), EMBEDDING(items)   (64 each)
 *   out    = sigmoid(DENSE(relu(DENSE(MUL(ue, ie)) + b)))
 */
enum { H_U = 10, H_I = 12, H_D = 64, H_N = 120, H_B = 16, H_EPOCHS = 2 };
struct hook_fixture {
    int64_t users[H_N], items[H_N];
    float labels[H_N];
    float U[H_U * H_D], I[H_I * H_D], W[H_D * H_D], B[H_D], K[H_D];
    struct nr_param prm[5];
    struct nr_op ops[7];
    int64_t vsize[7];
    struct nr_plan_desc d;
    struct nr_array in[2], lab;
};

static void hook_setup(struct hook_fixture *f, int sparse, float lr)
{
    memset(f, 0, sizeof *f);
    for (int n = 0; n < H_N; n++) {
        f->users[n] = n / H_I;
        f->items[n] = n % H_I;
        f->labels[n] = (float)((n / H_I + n % H_I) % 3 == 0);
    }
    /* the same weights on every call (not from the shared test generator) */
    for (int k = 0; k < H_U * H_D; k++)
        f->U[k] = 0.4f * (float)sin(0.37 * k + 1.0);
    for (int k = 0; k < H_I * H_D; k++)
        f->I[k] = 0.4f * (float)cos(0.53 * k);
    for (int k = 0; k < H_D * H_D; k++)
        f->W[k] = 0.2f * (float)sin(0.11 * k + 0.5);
    for (int k = 0; k < H_D; k++)
        f->B[k] = 0.01f * (float)(k % 5), f->K[k] = 0.3f * (float)cos(0.7 * k);
    f->prm[0] = (struct nr_param){.w = f->U, .rows = H_U, .cols = H_D, .is_table = 1};
    f->prm[1] = (struct nr_param){.w = f->I, .rows = H_I, .cols = H_D, .is_table = 1};
    f->prm[2] = (struct nr_param){.w = f->W, .rows = H_D, .cols = H_D};
    f->prm[3] = (struct nr_param){.w = f->B, .rows = 1, .cols = H_D};
    f->prm[4] = (struct nr_param){.w = f->K, .rows = H_D, .cols = 1};
    f->ops[0] = (struct nr_op){
        .kind = NR_OP_EMBEDDING, .out = 0, .n_in = 1, .in = {0}, .param = {0, -1}, .dim = {1, H_D}};
    f->ops[1] = (struct nr_op){
        .kind = NR_OP_EMBEDDING, .out = 1, .n_in = 1, .in = {1}, .param = {1, -1}, .dim = {1, H_D}};
    f->ops[2] =
        (struct nr_op){.kind = NR_OP_MUL, .out = 2, .n_in = 2, .in = {0, 1}, .param = {-1, -1}};
    f->ops[3] = (struct nr_op){
        .kind = NR_OP_DENSE, .out = 3, .n_in = 1, .in = {2}, .param = {2, 3}, .dim = {1, H_D, H_D}};
    f->ops[4] = (struct nr_op){.kind = NR_OP_ACT,
                               .out = 4,
                               .n_in = 1,
                               .in = {3},
                               .param = {-1, -1},
                               .act = NR_ACT_RELU,
                               .dim = {1, H_D}};
    f->ops[5] = (struct nr_op){
        .kind = NR_OP_DENSE, .out = 5, .n_in = 1, .in = {4}, .param = {4, -1}, .dim = {1, H_D, 1}};
    f->ops[6] = (struct nr_op){.kind = NR_OP_ACT,
                               .out = 6,
                               .n_in = 1,
                               .in = {5},
                               .param = {-1, -1},
                               .act = NR_ACT_SIGMOID,
                               .dim = {1, 1}};
    const int64_t vs[7] = {H_D, H_D, H_D, H_D, H_D, 1, 1};
    memcpy(f->vsize, vs, sizeof vs);
    f->d = (struct nr_plan_desc){
        .n_ops = 7,
        .ops = f->ops,
        .n_values = 7,
        .value_size = f->vsize,
        .n_params = 5,
        .params = f->prm,
        .n_inputs = 2,
        .output = 6,
        .loss = NR_LOSS_BCE,
        .logits = 5,
        .optim = {.kind = NR_OPTIM_SGD, .lr = lr},
        .sparse = sparse,
    };
    f->in[0] = (struct nr_array){f->users, NR_DTYPE_I64, H_N, 1};
    f->in[1] = (struct nr_array){f->items, NR_DTYPE_I64, H_N, 1};
    f->lab = (struct nr_array){f->labels, NR_DTYPE_F32, H_N, 1};
}

enum hook_mode { HOOK_CHECK, HOOK_DOUBLE, HOOK_ZERO, HOOK_MOVE, HOOK_STOP };
struct hook_probe {
    enum hook_mode mode;
    int calls, bad, max_threads;
    int64_t last_step;
    int64_t moved_rows[2][H_I];          /* HOOK_MOVE: every row of a table, in part 0 */
    float moved_grad[2][H_I * H_D];
};

static enum nr_status probe_hook(void *ctx, struct nr_batch_grads *g)
{
    struct hook_probe *h = ctx;
    h->calls++;
    if (g->step != h->last_step + 1 || g->n_samples < 1 || g->n_samples > H_B || g->n_params != 5 ||
        g->n_tables != 2 || g->n_parts < 2 || g->n_parts % 2 ||
        g->dense_size != H_D * H_D + 2 * H_D || g->dense_offset[0] != -1 ||
        g->dense_offset[1] != -1 || g->dense_offset[2] < 0)
        h->bad++;
    h->last_step = g->step;
    int nth = g->n_parts / 2;
    h->max_threads = nth > h->max_threads ? nth : h->max_threads;
    for (int t = 0; t < 2; t++) {
        const int64_t rows = t == 0 ? H_U : H_I;
        int seen[H_I] = {0};
        int64_t next = 0, total = 0;
        for (int i = 0; i < nth; i++) {
            const struct nr_grad_part *pt = &g->parts[i * 2 + t];
            if (pt->param != t || pt->cols != H_D || pt->n_rows < 0 ||
                (pt->n_rows > 0 && !pt->grad))
                h->bad++;
            for (int64_t r = 0; r < pt->n_rows; r++) {
                int64_t id = pt->rows ? pt->rows[r] : pt->first_row + r;
                if (id < 0 || id >= rows || seen[id]++)
                    h->bad++;
            }
            if (!pt->rows && pt->first_row != next) /* dense parts: consecutive ranges */
                h->bad++;
            next = pt->rows ? next : pt->first_row + pt->n_rows;
            total += pt->n_rows;
        }
        if (!g->parts[t].rows && next != rows)
            h->bad++;
        if (h->mode == HOOK_MOVE && g->parts[t].rows) {
            int64_t k = 0;
            for (int i = 0; i < nth; i++) {
                struct nr_grad_part *pt = &g->parts[i * 2 + t];
                memcpy(h->moved_rows[t] + k, pt->rows, (size_t)pt->n_rows * sizeof(int64_t));
                memcpy(h->moved_grad[t] + k * H_D, pt->grad,
                       (size_t)(pt->n_rows * H_D) * sizeof(float));
                k += pt->n_rows;
                pt->n_rows = 0;
            }
            g->parts[t].rows = h->moved_rows[t];
            g->parts[t].grad = h->moved_grad[t];
            g->parts[t].n_rows = total;
        }
    }
    if (h->mode == HOOK_DOUBLE || h->mode == HOOK_ZERO) {
        float f = h->mode == HOOK_DOUBLE ? 2.0f : 0.0f;
        for (int64_t k = 0; k < g->dense_size; k++)
            g->dense[k] *= f;
        for (int i = 0; i < g->n_parts; i++)
            for (int64_t k = 0; k < g->parts[i].n_rows * g->parts[i].cols; k++)
                g->parts[i].grad[k] *= f;
    }
    return h->mode == HOOK_STOP && h->calls == 2 ? NR_ABORTED : NR_OK;
}

/* Train a fresh fixture for H_EPOCHS epochs (batches of H_B) with the hook, if
 * any; the status of the first failing fit, or NR_OK. */
static enum nr_status hook_train(struct hook_fixture *f, struct nr_pool *pool, struct hook_probe *h,
                                 int64_t *step)
{
    struct nr_plan *plan = NULL;
    enum nr_status s = nr_plan_init(&plan, &f->d);
    CHECKF(s == NR_OK, "init: %s", nr_status_str(s));
    if (!plan)
        return s;
    if (h)
        CHECK(nr_plan_set_reduce_hook(plan, probe_hook, h) == NR_OK);
    struct nr_fit_stats *st = new_stats();
    int64_t perm[H_N];
    *step = 0;
    for (int e = 0; e < H_EPOCHS && s == NR_OK; e++) {
        nr_sampler_permutation(perm, H_N, (uint64_t)e);
        s = nr_plan_fit(plan, pool, f->in, &f->lab, perm, H_N, H_B, step, 9, st, NULL);
    }
    free(st);
    nr_plan_free(plan);
    return s;
}

static int hook_same(const struct hook_fixture *a, const struct hook_fixture *b)
{
    return memcmp(a->U, b->U, sizeof a->U) == 0 && memcmp(a->I, b->I, sizeof a->I) == 0 &&
           memcmp(a->W, b->W, sizeof a->W) == 0 && memcmp(a->B, b->B, sizeof a->B) == 0 &&
           memcmp(a->K, b->K, sizeof a->K) == 0;
}

static void test_plan_reduce_hook(struct nr_pool *pool2)
{
    g_section = "plan/reduce-hook";
    struct hook_fixture *ref = xcalloc(1, sizeof *ref), *f = xcalloc(1, sizeof *f);
    struct hook_probe *h = xcalloc(1, sizeof *h);
    const int64_t batches = H_EPOCHS * ((H_N + H_B - 1) / H_B);
    for (int sparse = 1; sparse >= 0; sparse--)
        for (int threads = 1; threads <= 2; threads++) {
            struct nr_pool *pool = threads == 2 ? pool2 : NULL;
            int64_t step, step2;
            hook_setup(ref, sparse, 0.1f);
            CHECK(hook_train(ref, pool, NULL, &step) == NR_OK && step == batches);

            /* a hook that only looks changes nothing; it sees every batch */
            for (int mode = HOOK_CHECK; mode <= HOOK_MOVE; mode++) {
                if (mode == HOOK_MOVE && !sparse)
                    continue;
                hook_setup(f, sparse, mode == HOOK_DOUBLE ? 0.05f : 0.1f);
                struct hook_fixture *start = mode == HOOK_ZERO ? xcalloc(1, sizeof *start) : NULL;
                if (start)
                    memcpy(start, f, sizeof *f);
                memset(h, 0, sizeof *h);
                h->mode = (enum hook_mode)mode;
                CHECK(hook_train(f, pool, h, &step2) == NR_OK && step2 == batches);
                CHECKF(h->calls == batches && h->bad == 0 && h->max_threads == threads,
                       "sparse=%d threads=%d mode %d: %d calls, %d bad, %d threads", sparse,
                       threads, mode, h->calls, h->bad, h->max_threads);
                /* doubled gradients at half the rate: SGD's step lr * g is the same
                 * product; rows moved to one part: each row still stepped once */
                if (mode != HOOK_ZERO)
                    CHECKF(hook_same(f, ref), "sparse=%d threads=%d mode %d differs from no hook",
                           sparse, threads, mode);
                else
                    CHECKF(hook_same(f, start),
                           "sparse=%d threads=%d: zero gradients moved weights", sparse, threads);
                free(start);
            }

            /* a failing hook stops the fit before its batch is applied */
            struct hook_fixture *one = xcalloc(1, sizeof *one);
            hook_setup(one, sparse, 0.1f);
            struct nr_plan *plan = NULL;
            CHECK(nr_plan_init(&plan, &one->d) == NR_OK);
            if (plan) {
                int64_t perm[H_N], s1 = 0;
                nr_sampler_permutation(perm, H_N, 0);
                struct nr_fit_stats *st = new_stats();
                CHECK(nr_plan_fit(plan, pool, one->in, &one->lab, perm, H_B, H_B, &s1, 9, st,
                                  NULL) == NR_OK);
                free(st);
                nr_plan_free(plan);
            }
            hook_setup(f, sparse, 0.1f);
            memset(h, 0, sizeof *h);
            h->mode = HOOK_STOP;
            CHECK(hook_train(f, pool, h, &step2) == NR_ABORTED);
            CHECKF(step2 == 1 && h->calls == 2 && hook_same(f, one),
                   "sparse=%d threads=%d: stop after %lld steps, %d calls", sparse, threads,
                   (long long)step2, h->calls);
            free(one);
        }

    /* Hogwild with sparse updates has no reduce phase: no hook */
    hook_setup(f, 1, 0.1f);
    f->d.hogwild = 1;
    struct nr_plan *plan = NULL;
    CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
    if (plan) {
        CHECK(nr_plan_set_reduce_hook(plan, probe_hook, h) == NR_ERR_VALUE);
        CHECK(nr_plan_set_reduce_hook(plan, NULL, NULL) == NR_OK);
        nr_plan_free(plan);
    }
    f->d.sparse = 0;
    plan = NULL;
    CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
    if (plan) {
        CHECK(nr_plan_set_reduce_hook(plan, probe_hook, h) == NR_OK);
        nr_plan_free(plan);
    }
    free(ref), free(f), free(h);
}

/* ---- plan: sample weights -------------------------------------------------- */

/* The weighted loss sum_j w[idx[j]] * l(idx[j]) / n of the logistic fixture at
 * (kw, kb), in double: the output is sigmoid(z), or z itself for BCE_LOGITS. */
static double wt_loss(const struct lr_fixture *f, enum nr_loss loss, const double *kw, double kb,
                      const int64_t *idx, const float *w, int n)
{
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        int64_t i = idx[j];
        double z = kb;
        for (int k = 0; k < LR_K; k++)
            z += kw[k] * f->x[i * LR_K + k];
        double p = sigm(z), t = f->y[i], l;
        switch (loss) {
        case NR_LOSS_BCE: l = -(t * log(p) + (1 - t) * log(1 - p)); break;
        case NR_LOSS_BCE_LOGITS: l = fmax(z, 0.0) - z * t + log1p(exp(-fabs(z))); break;
        case NR_LOSS_MSE: l = (p - t) * (p - t); break;
        default: l = fabs(p - t); break;
        }
        sum += (double)w[i] * l;
    }
    return sum / n;
}

/* Keras's "sum_over_batch_size" with weights: each loss's gradient (one SGD step
 * of lr 1) against central differences of the weighted loss, the stats (weighted
 * loss, unweighted metrics), all-one weights against the unweighted call bit for
 * bit, and bad weights refused. */
static void test_plan_weights(void)
{
    g_section = "plan/weights";
    struct lr_fixture *f = xcalloc(1, sizeof *f);
    float *w = xcalloc(LR_N, sizeof *w), *ones = xcalloc(LR_N, sizeof *ones);
    for (int i = 0; i < LR_N; i++) {
        w[i] = (float)(3.0 * t_unif());
        ones[i] = 1.0f;
    }
    const int64_t idx[8] = {5, 17, 3, 42, 99, 0, 250, 599};
    w[42] = 0.0f; /* a zero weight leaves its sample out of the gradient */
    const struct {
        enum nr_loss loss;
        int fused;
        const char *name;
    } cases[] = {{NR_LOSS_BCE, 1, "bce (logits path)"},
                 {NR_LOSS_BCE, 0, "bce"},
                 {NR_LOSS_BCE_LOGITS, 0, "bce from logits"},
                 {NR_LOSS_MSE, 0, "mse"},
                 {NR_LOSS_MAE, 0, "mae"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        lr_setup(f, cases[c].fused);
        f->d.loss = cases[c].loss;
        f->d.optim = (struct nr_optim){.kind = NR_OPTIM_SGD, .lr = 1.0f};
        if (cases[c].loss == NR_LOSS_BCE_LOGITS) { /* the output is the Dense logit */
            f->d.n_ops = 2;
            f->d.n_values = 2;
            f->d.output = 1;
        }
        struct nr_plan *plan = NULL;
        CHECKF(nr_plan_init(&plan, &f->d) == NR_OK && plan, "init %s", cases[c].name);
        if (!plan)
            continue;
        lr_weights(f);
        double kw[LR_K], kb = f->kb[0], want = 0.0;
        for (int k = 0; k < LR_K; k++)
            kw[k] = f->kw[k];
        double loss = wt_loss(f, cases[c].loss, kw, kb, idx, w, 8);
        int64_t step = 0;
        struct nr_fit_stats *st = new_stats();
        enum nr_status s =
            nr_plan_fit_weighted(plan, NULL, &f->in, &f->lab, w, idx, 8, 8, &step, 1, st, NULL);
        CHECKF(s == NR_OK && step == 1, "%s: fit %s", cases[c].name, nr_status_str(s));
        const double h = 1e-5;
        for (int k = 0; k <= LR_K; k++) {
            double *q = k < LR_K ? &kw[k] : &kb, q0 = *q;
            *q = q0 + h;
            double lp = wt_loss(f, cases[c].loss, kw, kb, idx, w, 8);
            *q = q0 - h;
            double lm = wt_loss(f, cases[c].loss, kw, kb, idx, w, 8);
            *q = q0;
            want = (lp - lm) / (2 * h);
            double got = q0 - (k < LR_K ? (double)f->kw[k] : (double)f->kb[0]);
            CHECKF(close_enough(got, want, 1e-3, 2e-6), "%s: gradient %d: %.8g, finite diff %.8g",
                   cases[c].name, k, got, want);
        }
        CHECKF(close_enough(st->loss_sum / st->samples, loss, 1e-5, 1e-7) && st->samples == 8.0,
               "%s: weighted mean loss %.8g want %.8g", cases[c].name, st->loss_sum / st->samples,
               loss);
        /* the metric sums are unweighted (Keras's compiled metrics) */
        double hist = 0.0;
        for (int b = 0; b < NR_AUC_BINS; b++)
            hist += st->auc_pos[b] + st->auc_neg[b];
        CHECKF(st->elements == 8.0 && hist == 8.0, "%s: elements %g, AUC histogram %g",
               cases[c].name, st->elements, hist);

        /* all-one weights: the unweighted call's bits and stats */
        float a[LR_K + 1], b[LR_K + 1];
        struct nr_fit_stats *s1 = new_stats(), *s2 = new_stats();
        lr_weights(f);
        CHECK(nr_plan_fit(plan, NULL, &f->in, &f->lab, idx, 8, 3, &step, 1, s1, NULL) == NR_OK);
        memcpy(a, f->kw, sizeof f->kw), a[LR_K] = f->kb[0];
        lr_weights(f);
        CHECK(nr_plan_fit_weighted(plan, NULL, &f->in, &f->lab, ones, idx, 8, 3, &step, 1, s2,
                                   NULL) == NR_OK);
        memcpy(b, f->kw, sizeof f->kw), b[LR_K] = f->kb[0];
        CHECKF(memcmp(a, b, sizeof a) == 0 && s1->loss_sum == s2->loss_sum &&
                   s1->elements == s2->elements && s1->correct == s2->correct &&
                   s1->sq_err == s2->sq_err && s1->abs_err == s2->abs_err,
               "%s: weights of 1 differ from no weights", cases[c].name);
        free(s1), free(s2);

        /* a negative, NaN or infinite weight: NR_ERR_VALUE, nothing trained */
        const float bad[3] = {-1.0f, NAN, INFINITY};
        for (int k = 0; k < 3; k++) {
            lr_weights(f);
            float keep = w[250], kw0[LR_K], kb0 = f->kb[0]; /* compared as stored: x87 may */
            memcpy(kw0, f->kw, sizeof kw0);                /* widen a float constant */
            w[250] = bad[k];
            int64_t st0 = step;
            s = nr_plan_fit_weighted(plan, NULL, &f->in, &f->lab, w, idx, 8, 4, &step, 1, st, NULL);
            CHECKF(s == NR_ERR_VALUE && step == st0 && memcmp(kw0, f->kw, sizeof kw0) == 0 &&
                       memcmp(&kb0, f->kb, sizeof kb0) == 0,
                   "%s: weight %g gave %s", cases[c].name, (double)bad[k], nr_status_str(s));
            /* a bad weight on a row idx does not select is never read */
            s = nr_plan_fit_weighted(plan, NULL, &f->in, &f->lab, w, idx, 6, 4, &step, 1, st, NULL);
            CHECKF(s == NR_OK, "%s: unselected bad weight: %s", cases[c].name, nr_status_str(s));
            w[250] = keep;
        }
        free(st);
        nr_plan_free(plan);
    }
    free(w), free(ones), free(f);
}

/* nr_plan_init rejects inconsistent descriptions with the right status. */
static void expect_init(const struct nr_plan_desc *d, enum nr_status want, const char *what)
{
    struct nr_plan *plan = (struct nr_plan *)&plan;
    enum nr_status s = nr_plan_init(&plan, d);
    CHECKF(s == want && (want == NR_OK) == (plan != NULL), "%s: got %s (%d), want %s; out %s", what,
           nr_status_str(s), (int)s, nr_status_str(want), plan ? "not NULL" : "NULL");
    if (s == NR_OK && plan)
        nr_plan_free(plan);
}

static void test_plan_init_errors(void)
{
    g_section = "plan/init-errors";
    struct lr_fixture *f = xcalloc(1, sizeof *f);
    lr_setup(f, 1);
    struct nr_plan_desc d;
    struct nr_op ops[3];
    int64_t vs[3];
    struct nr_param prm[2];
#define RESET()                                         \
    do {                                                \
        memcpy(ops, f->ops, sizeof ops);                \
        memcpy(vs, f->vsize, sizeof vs);                \
        memcpy(prm, f->prm, sizeof prm);                \
        d = f->d;                                       \
        d.ops = ops, d.value_size = vs, d.params = prm; \
    } while (0)
    RESET();
    expect_init(&d, NR_OK, "the valid description");
    RESET();
    d.n_ops = 0;
    expect_init(&d, NR_ERR_VALUE, "no ops");
    RESET();
    d.output = 3;
    expect_init(&d, NR_ERR_VALUE, "output past the values");
    RESET();
    d.output = -1;
    expect_init(&d, NR_ERR_VALUE, "negative output");
    RESET();
    d.logits = 3;
    expect_init(&d, NR_ERR_VALUE, "logits past the values");
    RESET();
    vs[2] = 0;
    expect_init(&d, NR_ERR_SHAPE, "empty value");
    RESET();
    ops[2].dim[1] = 2;
    expect_init(&d, NR_ERR_SHAPE, "act size disagrees");
    RESET();
    ops[2].act = 42;
    expect_init(&d, NR_ERR_VALUE, "unknown activation");
    RESET();
    prm[0].rows = 4;
    expect_init(&d, NR_ERR_SHAPE, "kernel rows disagree");
    RESET();
    prm[1].cols = 2;
    expect_init(&d, NR_ERR_SHAPE, "bias size disagrees");
    RESET();
    ops[1].param[0] = 2;
    expect_init(&d, NR_ERR_VALUE, "param past the params");
    RESET();
    ops[1].param[0] = -1;
    expect_init(&d, NR_ERR_VALUE, "dense without kernel");
    RESET();
    ops[1].out = 3;
    expect_init(&d, NR_ERR_VALUE, "op writes past the values");
    RESET();
    ops[1].in[0] = -2;
    expect_init(&d, NR_ERR_VALUE, "op reads a negative value");
    RESET();
    ops[1].n_in = NR_OP_MAX_IN + 1;
    expect_init(&d, NR_ERR_VALUE, "too many inputs");
    RESET();
    ops[0].in[0] = 1;
    expect_init(&d, NR_ERR_VALUE, "input slot past n_inputs");
    RESET();
    ops[0].dim[0] = 2;
    expect_init(&d, NR_ERR_SHAPE, "input width disagrees");
    RESET();
    vs[0] = 4;
    ops[0].dim[0] = 4;
    expect_init(&d, NR_ERR_SHAPE, "dense input size disagrees");
    RESET();
    ops[1].kind = NR_OP_EMBEDDING;
    ops[1].dim[0] = 1;
    ops[1].dim[1] = 1;
    expect_init(&d, NR_ERR_SHAPE, "embedding of a non-table");
    RESET();
    ops[2].kind = NR_OP_DROPOUT;
    ops[2].rate = 1.0f;
    expect_init(&d, NR_ERR_VALUE, "dropout rate 1");
    RESET();
    ops[2].kind = NR_OP_DROPOUT;
    ops[2].rate = NAN;
    expect_init(&d, NR_ERR_VALUE, "dropout rate NaN");
    RESET();
    ops[2].kind = NR_OP_SUB;
    expect_init(&d, NR_ERR_VALUE, "sub with one input");
    RESET();
    ops[2].kind = NR_OP_DOT;
    ops[2].n_in = 2;
    ops[2].in[1] = 1;
    ops[2].dim[0] = 1, ops[2].dim[1] = 1, ops[2].dim[2] = 1, ops[2].dim[3] = 1, ops[2].dim[4] = 2,
    ops[2].dim[5] = 1;
    expect_init(&d, NR_ERR_VALUE, "dot axis 2");
    RESET();
    vs[2] = 1;
    ops[2].kind = NR_OP_DOT;
    ops[2].n_in = 2;
    ops[2].in[0] = 0;
    ops[2].in[1] = 1;
    ops[2].dim[0] = 1, ops[2].dim[1] = 3, ops[2].dim[2] = 1, ops[2].dim[3] = 1, ops[2].dim[4] = 1,
    ops[2].dim[5] = 1;
    expect_init(&d, NR_ERR_SHAPE, "dot contracts 3 with 1");
    RESET();
    ops[2].kind = NR_OP_CONCAT;
    ops[2].n_in = 2;
    ops[2].in[0] = 0;
    ops[2].in[1] = 1;
    ops[2].dim[0] = 1;
    expect_init(&d, NR_ERR_SHAPE, "concat sizes do not add up");
    RESET();
    ops[2].kind = (enum nr_op_kind)99;
    expect_init(&d, NR_ERR_VALUE, "unknown op kind");
#undef RESET
    free(f);
}

/* ---- sampler ------------------------------------------------------------- */

enum { S_USERS = 7, S_ITEMS = 20 };

static int row_contains(const int64_t *indptr, const int32_t *indices, int64_t u, int64_t item)
{
    for (int64_t k = indptr[u]; k < indptr[u + 1]; k++)
        if (indices[k] == item)
            return 1;
    return 0;
}

static void test_sampler(struct nr_pool *pool2)
{
    g_section = "sampler";
    /* CSR: users 0-4 have seen a few items each; the heavy users 5 and 6 have
     * seen all but {13} and all but {13, 14}, which exercises the exact
     * fallback after rejection sampling gives up */
    int64_t indptr[S_USERS + 1] = {0};
    int32_t indices[S_USERS * S_ITEMS];
    int64_t nnz = 0;
    for (int u = 0; u < S_USERS; u++) {
        for (int j = 0; j < S_ITEMS; j++) {
            int seen = u == 5   ? j != 13
                       : u == 6 ? j != 13 && j != 14
                                : (j * 7 + u * 3) % (u + 2) == 0;
            if (seen)
                indices[nnz++] = j;
        }
        indptr[u + 1] = nnz;
    }
    /* positives: every seen pair, repeated past several 4096-blocks */
    const int64_t n_pos = 3 * 4096 + 123, num_neg = 4, n_out = n_pos * (1 + num_neg);
    int64_t *pu = xcalloc((size_t)n_pos, sizeof *pu), *pi = xcalloc((size_t)n_pos, sizeof *pi);
    for (int64_t k = 0; k < n_pos; k++) {
        int64_t e = k % nnz, u = 0;
        while (indptr[u + 1] <= e)
            u++;
        pu[k] = u;
        pi[k] = indices[e];
    }
    struct nr_csr csr = {indptr, indices, S_USERS, S_ITEMS};
    int64_t *ou[3], *oi[3];
    float *ol[3];
    for (int r = 0; r < 3; r++) {
        ou[r] = xcalloc((size_t)n_out, sizeof **ou);
        oi[r] = xcalloc((size_t)n_out, sizeof **oi);
        ol[r] = xcalloc((size_t)n_out, sizeof **ol);
    }
    enum nr_status s0 =
        nr_sampler_epoch(&csr, pu, pi, n_pos, num_neg, NULL, 9, NULL, ou[0], oi[0], ol[0]);
    enum nr_status s1 =
        nr_sampler_epoch(&csr, pu, pi, n_pos, num_neg, NULL, 9, pool2, ou[1], oi[1], ol[1]);
    enum nr_status s2 =
        nr_sampler_epoch(&csr, pu, pi, n_pos, num_neg, NULL, 10, NULL, ou[2], oi[2], ol[2]);
    CHECKF(s0 == NR_OK && s1 == NR_OK && s2 == NR_OK, "%s %s %s", nr_status_str(s0),
           nr_status_str(s1), nr_status_str(s2));
    int64_t bad_label = 0, bad_user = 0, bad_pos = 0, seen_neg = 0, range = 0;
    int64_t hits[S_ITEMS] = {0};
    for (int64_t k = 0; k < n_pos; k++)
        for (int64_t j = 0; j <= num_neg; j++) {
            int64_t o = k * (1 + num_neg) + j;
            bad_label += ol[0][o] != (j == 0 ? 1.0f : 0.0f);
            bad_user += ou[0][o] != pu[k];
            if (j == 0) {
                bad_pos += oi[0][o] != pi[k];
            } else if (oi[0][o] < 0 || oi[0][o] >= S_ITEMS) {
                range++;
            } else {
                seen_neg += row_contains(indptr, indices, pu[k], oi[0][o]);
                if (pu[k] == 5)
                    hits[oi[0][o]]++;
            }
        }
    CHECKF(bad_label == 0 && bad_user == 0 && bad_pos == 0,
           "labels %lld users %lld positives %lld wrong", (long long)bad_label, (long long)bad_user,
           (long long)bad_pos);
    CHECKF(range == 0 && seen_neg == 0, "%lld negatives out of range, %lld already seen",
           (long long)range, (long long)seen_neg);
    CHECKF(hits[13] > 0, "the heavy user's only unseen item was never drawn");
    CHECKF(memcmp(oi[0], oi[1], (size_t)n_out * sizeof **oi) == 0 &&
               memcmp(ou[0], ou[1], (size_t)n_out * sizeof **ou) == 0 &&
               memcmp(ol[0], ol[1], (size_t)n_out * sizeof **ol) == 0,
           "1 and 2 threads give different samples");
    CHECK(memcmp(oi[0], oi[2], (size_t)n_out * sizeof **oi) != 0);
    /* the same seed again gives the same epoch */
    CHECK(nr_sampler_epoch(&csr, pu, pi, n_pos, num_neg, NULL, 10, pool2, ou[1], oi[1], ol[1]) ==
          NR_OK);
    CHECK(memcmp(oi[1], oi[2], (size_t)n_out * sizeof **oi) == 0);

    /* roughly uniform over user 0's unseen items */
    {
        int64_t cnt[S_ITEMS] = {0}, total = 0;
        for (int64_t k = 0; k < n_pos; k++)
            if (pu[k] == 0)
                for (int64_t j = 1; j <= num_neg; j++) {
                    cnt[oi[0][k * (1 + num_neg) + j]]++;
                    total++;
                }
        int64_t unseen = S_ITEMS - (indptr[1] - indptr[0]);
        double e = (double)total / (double)unseen, chi = 0.0;
        for (int j = 0; j < S_ITEMS; j++)
            if (!row_contains(indptr, indices, 0, j))
                chi += ((double)cnt[j] - e) * ((double)cnt[j] - e) / e;
        CHECKF(chi < 40.0, "user 0: chi-square %.1f over %lld unseen items", chi,
               (long long)unseen);
    }

    /* popularity weights: items without weight are never drawn, also not by
     * heavy users (item 13 has a tiny weight, so rejection mostly gives up
     * for user 6, whose other unseen item 14 has none) */
    double cdf[S_ITEMS], acc = 0.0;
    for (int j = 0; j < S_ITEMS; j++) {
        acc += j % 4 == 2 ? 0.0 : j == 13 ? 0.5 : 1.0 + j;
        cdf[j] = acc;
    }
    CHECK(nr_sampler_epoch(&csr, pu, pi, n_pos, num_neg, cdf, 9, pool2, ou[1], oi[1], ol[1]) ==
          NR_OK);
    int64_t zero_w = 0, seen_w = 0, zero_heavy = 0;
    for (int64_t k = 0; k < n_pos; k++)
        for (int64_t j = 1; j <= num_neg; j++) {
            int64_t it = oi[1][k * (1 + num_neg) + j];
            zero_w += it % 4 == 2;
            zero_heavy += it % 4 == 2 && pu[k] == 6;
            seen_w += row_contains(indptr, indices, pu[k], it);
        }
    CHECKF(zero_w == 0 && seen_w == 0,
           "popularity sampling drew %lld zero-weight items (%lld for the heavy "
           "user 6) and %lld seen items",
           (long long)zero_w, (long long)zero_heavy, (long long)seen_w);
    {
        /* a user whose unseen items all have zero weight: a uniform draw among them (nr_sampler.h)
         */
        int64_t ptr1[2] = {0, 3}, pu1[1] = {0}, pi1[1] = {1}, ou1[3], oi1[3];
        int32_t idx1[3] = {0, 1, 2};
        float ol1[3];
        double cdf1[4] = {1.0, 2.0, 3.0, 3.0};
        struct nr_csr m1 = {ptr1, idx1, 1, 4};
        enum nr_status s = nr_sampler_epoch(&m1, pu1, pi1, 1, 2, cdf1, 1, NULL, ou1, oi1, ol1);
        CHECKF(s == NR_OK && oi1[1] == 3 && oi1[2] == 3,
               "no weight left for the user: got %s (negatives %lld %lld), want ok and item 3",
               nr_status_str(s), (long long)oi1[1], (long long)oi1[2]);
    }

    /* errors */
    int64_t u5[1] = {5}, i5[1] = {0}, uo[5], io[5];
    float lo[5];
    int64_t full_ptr[2] = {0, S_ITEMS};
    int32_t full_idx[S_ITEMS];
    for (int j = 0; j < S_ITEMS; j++)
        full_idx[j] = j;
    struct nr_csr full = {full_ptr, full_idx, 1, S_ITEMS};
    u5[0] = 0;
    CHECK(nr_sampler_epoch(&full, u5, i5, 1, 4, NULL, 1, NULL, uo, io, lo) == NR_ERR_VALUE);
    CHECK(nr_sampler_epoch(&full, u5, i5, 1, 4, NULL, 1, pool2, uo, io, lo) == NR_ERR_VALUE);
    CHECK(nr_sampler_epoch(&full, u5, i5, 1, 0, NULL, 1, NULL, uo, io, lo) == NR_OK &&
          lo[0] == 1.0f);
    u5[0] = S_USERS;
    CHECK(nr_sampler_epoch(&csr, u5, i5, 1, 4, NULL, 1, NULL, uo, io, lo) == NR_ERR_INDEX);
    u5[0] = -1;
    CHECK(nr_sampler_epoch(&csr, u5, i5, 1, 4, NULL, 1, NULL, uo, io, lo) == NR_ERR_INDEX);
    u5[0] = 0;
    i5[0] = S_ITEMS;
    CHECK(nr_sampler_epoch(&csr, u5, i5, 1, 4, NULL, 1, NULL, uo, io, lo) == NR_ERR_INDEX);
    i5[0] = 0;
    CHECK(nr_sampler_epoch(&csr, u5, i5, 1, -1, NULL, 1, NULL, uo, io, lo) == NR_ERR_VALUE);
    CHECK(nr_sampler_epoch(&csr, u5, i5, 0, 4, NULL, 1, pool2, uo, io, lo) == NR_OK);

    /* permutations */
    const int64_t pn[] = {0, 1, 2, 17, 5000};
    for (size_t t = 0; t < sizeof pn / sizeof *pn; t++) {
        int64_t n = pn[t];
        int64_t *p = xcalloc((size_t)n, sizeof *p), *q = xcalloc((size_t)n, sizeof *q);
        uint8_t *mark = xcalloc((size_t)n, 1);
        nr_sampler_permutation(p, n, 123);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) {
            if (p[i] < 0 || p[i] >= n || mark[p[i]])
                ok = 0;
            else
                mark[p[i]] = 1;
        }
        CHECKF(ok, "n = %lld: not a permutation", (long long)n);
        nr_sampler_permutation(q, n, 123);
        CHECK(n == 0 || memcmp(p, q, (size_t)n * sizeof *p) == 0);
        if (n >= 17) {
            nr_sampler_permutation(q, n, 124);
            CHECK(memcmp(p, q, (size_t)n * sizeof *p) != 0);
            int64_t fixed = 0;
            for (int64_t i = 0; i < n; i++)
                fixed += p[i] == i;
            CHECKF(fixed < n / 4, "n = %lld: %lld fixed points", (long long)n, (long long)fixed);
        }
        free(p), free(q), free(mark);
    }
    for (int r = 0; r < 3; r++)
        free(ou[r]), free(oi[r]), free(ol[r]);
    free(pu), free(pi);
}

/* ---- scoring ------------------------------------------------------------- */

struct cand {
    double s;
    int64_t id;
};

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static void score_case(struct nr_pool *pool, int64_t n_users, int64_t n_items, int64_t dim,
                       int64_t k, int with_bias, int with_excl)
{
    /* quarter-integer values: every score is exact in float and in double, so
     * ties are frequent and the tie rule (lower id first) is checked exactly */
    float *uv = xcalloc((size_t)(n_users * dim), sizeof *uv),
          *iv = xcalloc((size_t)(n_items * dim), sizeof *iv);
    float *bias = xcalloc((size_t)n_items, sizeof *bias);
    for (int64_t i = 0; i < n_users * dim; i++)
        uv[i] = (float)((int)(t_next() % 9) - 4) * 0.25f;
    for (int64_t i = 0; i < n_items * dim; i++)
        iv[i] = (float)((int)(t_next() % 9) - 4) * 0.25f;
    for (int64_t i = 0; i < n_items; i++)
        bias[i] = (float)((int)(t_next() % 5) - 2) * 0.5f;
    /* exclusions: CSR row r excludes items with (j + r) % (r + 2) == 0; users map to rows, -1 =
     * none */
    int64_t n_rows = 4;
    int64_t *indptr = xcalloc((size_t)n_rows + 1, sizeof *indptr);
    int32_t *indices = xcalloc((size_t)(n_rows * n_items), sizeof *indices);
    int64_t *rows = xcalloc((size_t)n_users, sizeof *rows);
    for (int64_t r = 0; r < n_rows; r++) {
        indptr[r + 1] = indptr[r];
        for (int64_t j = 0; j < n_items; j++)
            if ((j + r) % (r + 2) == 0 || (r == 3 && j > 2))
                indices[indptr[r + 1]++] = (int32_t)j;
    }
    for (int64_t u = 0; u < n_users; u++)
        rows[u] = u % 5 == 4 ? -1 : (u * 3) % n_rows;
    int64_t *ids = xcalloc((size_t)(n_users * k), sizeof *ids);
    float *sc = xcalloc((size_t)(n_users * k), sizeof *sc);
    struct nr_score_args a = {
        .user_vecs = uv,
        .item_vecs = iv,
        .item_bias = with_bias ? bias : NULL,
        .n_users = n_users,
        .n_items = n_items,
        .dim = dim,
        .k = k,
        .excl_indptr = with_excl ? indptr : NULL,
        .excl_indices = with_excl ? indices : NULL,
        .excl_rows = with_excl ? rows : NULL,
        .out_ids = ids,
        .out_scores = sc,
    };
    enum nr_status s = nr_score_topk(&a, pool);
    CHECKF(s == NR_OK, "%s", nr_status_str(s));
    struct cand *all = xcalloc((size_t)n_items, sizeof *all);
    int64_t bad_users = 0, first_bad = -1;
    for (int64_t u = 0; u < n_users && s == NR_OK; u++) {
        int64_t m = 0;
        for (int64_t j = 0; j < n_items; j++) {
            if (with_excl && rows[u] >= 0 && row_contains(indptr, indices, rows[u], j))
                continue;
            double v = with_bias ? bias[j] : 0.0;
            for (int64_t c = 0; c < dim; c++)
                v += (double)uv[u * dim + c] * iv[j * dim + c];
            all[m++] = (struct cand){v, j};
        }
        qsort(all, (size_t)m, sizeof *all, cand_cmp);
        int ok = 1;
        for (int64_t r = 0; r < k; r++) {
            int64_t want_id = r < m ? all[r].id : -1;
            double want_s = r < m ? all[r].s : -INFINITY;
            ok &= ids[u * k + r] == want_id && (double)sc[u * k + r] == want_s;
        }
        if (!ok) {
            bad_users++;
            if (first_bad < 0)
                first_bad = u;
        }
    }
    CHECKF(bad_users == 0,
           "users=%lld items=%lld dim=%lld k=%lld bias=%d excl=%d threads=%d: %lld users differ "
           "from brute force, first %lld",
           (long long)n_users, (long long)n_items, (long long)dim, (long long)k, with_bias,
           with_excl, nr_pool_size(pool), (long long)bad_users, (long long)first_bad);
    free(uv), free(iv), free(bias), free(indptr), free(indices), free(rows), free(ids), free(sc),
        free(all);
}

static void test_scoring(struct nr_pool *pool2, struct nr_pool *pool3)
{
    g_section = "scoring";
    struct nr_pool *pools[3] = {NULL, pool2, pool3};
    for (int p = 0; p < 3; p++) {
        score_case(pools[p], 13, 2500, 7, 10, 1, 1); /* three item blocks, the last partial */
        score_case(pools[p], 13, 2500, 7, 10, 0, 0);
        score_case(pools[p], 5, 9, 3, 12, 1, 1);     /* k > candidates: padding */
        score_case(pools[p], 2, 1, 1, 1, 0, 1);
        score_case(pools[p], 1, 33, 9, 33, 1, 0);
        score_case(pools[p], 13, 2500, 7, 16, 1, 1); /* the buffered top-K (nr_topkb) */
        score_case(pools[p], 13, 2500, 7, 300, 1, 1);
        score_case(pools[p], 5, 9, 3, 20, 1, 1);
    }
    score_case(NULL, 50, 300, 5, 40000, 1, 1); /* users in groups of 16 (bounded keys) */
    score_case(pool3, 2, 40, 0, 5, 1, 1);            /* dim 0: the bias alone */
    score_case(pool2, 0, 40, 4, 5, 1, 0);            /* no users */
    int64_t ids[4];
    float sc[4], v[4] = {1, 2, 3, 4};
    struct nr_score_args a = {.user_vecs = v,
                              .item_vecs = v,
                              .n_users = 1,
                              .n_items = 1,
                              .dim = 4,
                              .k = 0,
                              .out_ids = ids,
                              .out_scores = sc};
    CHECK(nr_score_topk(&a, NULL) == NR_ERR_VALUE);
    a.k = 1;
    a.n_items = -1;
    CHECK(nr_score_topk(&a, pool2) == NR_ERR_VALUE);
}

/* ---- regressions (run last: a failure may crash the program) -------------- */

/* A NaN prediction (diverged weights) must not index the AUC histogram out
 * of bounds: loss_block's bin = (int)(clamp(NaN) * (NR_AUC_BINS - 1) + 0.5). */
static void regress_nan_prediction_auc_bin(void)
{
    g_section = "regress/nan-prediction-auc-bin";
    fprintf(stderr, "test_core: running %s (a crash here is that bug)\n", g_section);
    struct lr_fixture *f = xcalloc(1, sizeof *f);
    for (int loss = 0; loss < 2; loss++) {
        lr_setup(f, 0);
        lr_weights(f);
        f->d.loss = loss ? NR_LOSS_MSE : NR_LOSS_BCE;
        f->kw[1] = NAN; /* as after a divergence */
        struct nr_plan *plan = NULL;
        CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
        if (!plan)
            continue;
        int64_t step = 0, idx[4] = {0, 1, 2, 3};
        struct nr_fit_stats *st = new_stats();
        enum nr_status s = nr_plan_fit(plan, NULL, &f->in, &f->lab, idx, 4, 4, &step, 1, st, NULL);
        CHECKF(s == NR_OK || s == NR_ERR_VALUE, "fit: %s", nr_status_str(s));
        double hist = 0.0;
        for (int b = 0; b < NR_AUC_BINS; b++)
            hist += st->auc_pos[b] + st->auc_neg[b];
        CHECKF(hist == 0.0 || hist == 4.0, "histogram mass %g", hist);
        free(st);
        nr_plan_free(plan);
    }
    free(f);
}

/* Issue 9: a huge batch size must not wrap the scratch size around (cap *
 * value_size * 4 overflowed in nr_plan_reserve), and a step count from a
 * crafted model file must be refused, not index Adam's tables below 0. */
static void regress_reserve_overflow_and_bad_steps(void)
{
    g_section = "regress/reserve-overflow-and-bad-steps";
    fprintf(stderr, "test_core: running %s (a crash here is that bug)\n", g_section);
    struct lr_fixture *f = xcalloc(1, sizeof *f);
    lr_setup(f, 0);
    lr_weights(f);
    lr_use_adam(f, 0.05f);
    struct nr_plan *plan = NULL;
    CHECK(nr_plan_init(&plan, &f->d) == NR_OK);
    if (plan) {
        const int64_t caps[] = {(int64_t)1 << 62, ((int64_t)1 << 61) + 3, INT64_MAX, -1};
        for (int i = 0; i < 4; i++) {
            enum nr_status s = nr_plan_reserve(plan, caps[i]);
            CHECKF(s == (caps[i] < 0 ? NR_ERR_VALUE : NR_ERR_NOMEM), "reserve(%lld): %s",
                   (long long)caps[i], nr_status_str(s));
        }
        int64_t idx[4] = {0, 1, 2, 3};
        const int64_t bad[] = {-1, -70000, INT64_MAX, INT64_MAX - 2};
        for (int i = 0; i < 4; i++) {
            int64_t step = bad[i];
            struct nr_fit_stats *st = new_stats();
            enum nr_status s =
                nr_plan_fit(plan, NULL, &f->in, &f->lab, idx, 4, 2, &step, 1, st, NULL);
            CHECKF(s == NR_ERR_VALUE && step == bad[i], "fit at step %lld: %s", (long long)bad[i],
                   nr_status_str(s));
            free(st);
        }
        /* a batch far above the sample count trains one batch of them all */
        int64_t step = 0;
        struct nr_fit_stats *st = new_stats();
        enum nr_status s =
            nr_plan_fit(plan, NULL, &f->in, &f->lab, idx, 4, (int64_t)1 << 62, &step, 1, st, NULL);
        CHECKF(s == NR_OK && step == 1 && st->samples == 4.0, "huge batch: %s, step %lld",
               nr_status_str(s), (long long)step);
        free(st);
        nr_plan_free(plan);
    }
    free(f);
    /* the optimizer itself never indexes its tables with a step < 1 */
    float w[4] = {1, 1, 1, 1}, g[4] = {1, 1, 1, 1}, m[4] = {0}, v[4] = {0};
    int64_t rs[2] = {-100000, INT64_MAX}, ids[2] = {0, 1};
    struct nr_optim o = {
        .kind = NR_OPTIM_ADAM, .lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .epsilon = 1e-7f};
    struct nr_optim_tables tb = {.len = 16};
    float mem[64];
    tb.corr = mem;
    tb.p1 = mem + 16;
    tb.p2 = mem + 32;
    tb.geo = mem + 48;
    nr_optim_tables_fill(&tb, &o);
    o.tables = &tb;
    struct nr_param prm = {.w = w, .rows = 2, .cols = 2, .slot = {m, v, NULL}, .row_steps = rs};
    for (int catch_up = 0; catch_up < 2; catch_up++) {
        o.catch_up = catch_up;
        rs[0] = -100000;
        rs[1] = INT64_MAX;
        nr_optim_step_rows(&o, &prm, ids, 2, g, 5);
        CHECKF(rs[0] >= 0 && rs[0] <= 5 && rs[1] >= 0 && rs[1] <= 5, "row steps %lld %lld",
               (long long)rs[0], (long long)rs[1]);
        for (int i = 0; i < 4; i++)
            CHECKF(isfinite(w[i]), "w[%d] = %g", i, w[i]);
    }
}

/* Every check of the kernels, optimizers, plans and scoring, at one SIMD level. */
/* ------------------------------------------------------------------------ */
/* iALS: row solves against a dense float64 reference                        */

#define ALS_R 9
#define ALS_C 7
#define ALS_D 3

/* Solve the dim x dim system a x = b in place (Gaussian elimination, partial pivoting). */
static void ref_solve(double *a, double *b, int n)
{
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(a[i * n + k]) > fabs(a[piv * n + k]))
                piv = i;
        for (int j = 0; j < n; j++) {
            double t = a[k * n + j];
            a[k * n + j] = a[piv * n + j];
            a[piv * n + j] = t;
        }
        double t = b[k];
        b[k] = b[piv];
        b[piv] = t;
        for (int i = k + 1; i < n; i++) {
            double f = a[i * n + k] / a[k * n + k];
            for (int j = k; j < n; j++)
                a[i * n + j] -= f * a[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        double s2 = b[i];
        for (int j = i + 1; j < n; j++)
            s2 -= a[i * n + j] * b[j];
        b[i] = s2 / a[i * n + i];
    }
}

static void test_als(struct nr_pool *pool2, struct nr_pool *pool3)
{
    g_section = "als";
    double r[ALS_R][ALS_C];
    int64_t indptr[ALS_R + 1];
    int32_t indices[ALS_R * ALS_C];
    float values[ALS_R * ALS_C], y[ALS_C * ALS_D], off[ALS_C], x0[ALS_R * ALS_D];
    float gram[ALS_D * ALS_D], yo[ALS_D];
    int64_t nnz = 0;
    for (int u = 0; u < ALS_R; u++) {
        indptr[u] = nnz;
        for (int j = 0; j < ALS_C; j++) {
            r[u][j] = 0.0;
            if (u != 0 && (u == 1 || t_unif() < 0.4)) { /* row 0 empty, row 1 full */
                r[u][j] = 1.0 + (double)(t_next() % 4);
                indices[nnz] = j;
                values[nnz++] = (float)r[u][j];
            }
        }
    }
    indptr[ALS_R] = nnz;
    fill(y, ALS_C * ALS_D, 0.6f);
    fill(off, ALS_C, 0.3f);
    fill(x0, ALS_R * ALS_D, 0.3f);
    const float alpha = 1.5f, reg = 0.2f, nu = 1.0f;
    CHECK(nr_als_gram(gram, yo, y, off, ALS_C, ALS_D, pool3) == NR_OK);
    double want[ALS_R][ALS_D];
    for (int u = 0; u < ALS_R; u++) {
        double a[ALS_D * ALS_D] = {0}, b[ALS_D] = {0}, rs = 0.0;
        for (int j = 0; j < ALS_C; j++)
            rs += r[u][j];
        double lam = reg * pow(1.0 + alpha * rs / ALS_C, nu);
        for (int j = 0; j < ALS_C; j++) {
            double c = 1.0 + alpha * r[u][j], p = r[u][j] > 0 ? 1.0 : 0.0;
            for (int i = 0; i < ALS_D; i++) {
                b[i] += c * (p - off[j]) * y[j * ALS_D + i];
                for (int k = 0; k < ALS_D; k++)
                    a[i * ALS_D + k] += c * y[j * ALS_D + i] * y[j * ALS_D + k];
            }
        }
        for (int i = 0; i < ALS_D; i++)
            a[i * ALS_D + i] += lam;
        ref_solve(a, b, ALS_D);
        for (int i = 0; i < ALS_D; i++)
            want[u][i] = b[i];
    }
    float x[ALS_R * ALS_D];
    struct nr_als_args a = {indptr, indices, values, ALS_R, ALS_C, ALS_D,           x, y, off,
                            gram,   yo,      alpha,  reg,   nu,    NR_ALS_CHOLESKY, 1, 0, ALS_R};
    memcpy(x, x0, sizeof x);
    CHECK(nr_als_solve_rows(&a, pool2) == NR_OK);
    check_arr("cholesky rows", x, &want[0][0], ALS_R * ALS_D, 1e-4, 1e-5);
    a.solver = NR_ALS_CG;
    a.cg_steps = 40;
    memcpy(x, x0, sizeof x);
    CHECK(nr_als_solve_rows(&a, pool3) == NR_OK);
    check_arr("cg rows (converged)", x, &want[0][0], ALS_R * ALS_D, 1e-3, 1e-4);

    /* objective: data term of the rows + their penalty, against the dense sum */
    double got_loss = 0.0, want_loss = 0.0;
    CHECK(nr_als_loss(&a, 1, &got_loss, pool2) == NR_OK);
    for (int u = 0; u < ALS_R; u++) {
        double rs = 0.0, xx = 0.0;
        for (int j = 0; j < ALS_C; j++) {
            double c = 1.0 + alpha * r[u][j], p = r[u][j] > 0 ? 1.0 : 0.0, s2 = off[j];
            for (int i = 0; i < ALS_D; i++)
                s2 += (double)x[u * ALS_D + i] * y[j * ALS_D + i];
            want_loss += c * (p - s2) * (p - s2);
            rs += r[u][j];
        }
        for (int i = 0; i < ALS_D; i++)
            xx += (double)x[u * ALS_D + i] * x[u * ALS_D + i];
        want_loss += reg * pow(1.0 + alpha * rs / ALS_C, nu) * xx;
    }
    CHECKF(close_enough(got_loss, want_loss, 1e-5, 1e-6), "loss %.9g want %.9g", got_loss,
           want_loss);

    /* a few CG steps: the same bits with 1, 2 and 3 threads */
    float xa[ALS_R * ALS_D], xb[ALS_R * ALS_D], xc[ALS_R * ALS_D];
    a.cg_steps = 2;
    memcpy(xa, x0, sizeof xa);
    memcpy(xb, x0, sizeof xb);
    memcpy(xc, x0, sizeof xc);
    a.x = xa;
    CHECK(nr_als_solve_rows(&a, NULL) == NR_OK);
    a.x = xb;
    CHECK(nr_als_solve_rows(&a, pool2) == NR_OK);
    a.x = xc;
    CHECK(nr_als_solve_rows(&a, pool3) == NR_OK);
    CHECK(memcmp(xa, xb, sizeof xa) == 0 && memcmp(xa, xc, sizeof xa) == 0);

    /* errors */
    a.x = x;
    a.cg_steps = 0;
    CHECK(nr_als_solve_rows(&a, NULL) == NR_ERR_VALUE);
    a.cg_steps = 2;
    a.row1 = ALS_R + 1;
    CHECK(nr_als_solve_rows(&a, NULL) == NR_ERR_VALUE);
    a.row1 = ALS_R;
    indices[2] = ALS_C;
    CHECK(nr_als_solve_rows(&a, pool2) == NR_ERR_INDEX);
    indices[2] = 0;
    a.alpha = -1.0f;
    CHECK(nr_als_solve_rows(&a, NULL) == NR_ERR_VALUE);
}

static void run_all(struct nr_pool *pool2, struct nr_pool *pool3)
{
    test_gemm();
    test_dense();
    test_act();
    test_dot_axpy();
    test_optim();
    test_optim_tables();
    test_optim_catch_up();
    test_table_resize();
    test_plan_logistic(pool2, pool3);
    test_plan_embedding(pool2);
    test_plan_bag(pool2, pool3);
    test_plan_mix(pool2);
    test_plan_reduce_hook(pool2);
    test_plan_weights();
    test_plan_init_errors();
    test_sampler(pool2);
    test_scoring(pool2, pool3);
    test_als(pool2, pool3);
}

int main(void)
{
    setvbuf(stderr, NULL, _IONBF, 0);
    struct nr_pool *pool2 = NULL, *pool3 = NULL;
    if (nr_pool_init(&pool2, 2) != NR_OK || nr_pool_init(&pool3, 3) != NR_OK) {
        fprintf(stderr, "test_core: cannot start the thread pools\n");
        return 2;
    }
    test_status();
    test_rng();
    test_pool();
    /* every kernel level this CPU can run, best last (as the library runs) */
    const enum nr_simd_level best = nr_simd_detect();
    for (int level = NR_SIMD_BASELINE; level <= (int)best; level++) {
        enum nr_simd_level got = nr_simd_set_level((enum nr_simd_level)level);
        CHECKF(got == (enum nr_simd_level)level, "set level %d, got %d", level, (int)got);
        CHECKF(nr_simd_level() == got, "level in force %d", (int)nr_simd_level());
        int before = n_failed;
        run_all(pool2, pool3);
        fprintf(stderr, "test_core: kernels %s: %d failed\n", nr_simd_name(got), n_failed - before);
    }
    CHECK(nr_simd_parse("AVX2") == NR_SIMD_AVX2 && nr_simd_parse("neon") == NR_SIMD_BASELINE &&
          nr_simd_parse("avx") == -1 && nr_simd_parse("") == -1);
    fprintf(stderr, "test_core: main checks done, %d of %d failed; running regressions\n", n_failed,
            n_checks);
    regress_nan_prediction_auc_bin();
    regress_reserve_overflow_and_bad_steps();
    nr_pool_free(pool2);
    nr_pool_free(pool3);
    return nr_test_report("test_core");
}
