#include "neurec/nr_kernels.h"
#include "neurec/nr_simd.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* Every kernel is an always-inline NAME_impl(level, ...) body compiled once
 * per SIMD level by NR_SIMD_CLONES (see nr_simd.h); the public nr_* functions
 * dispatch to the clone of the current level. */

static inline NR_ALWAYS_INLINE float dot_impl(enum nr_simd_level level, const float *a,
                                              const float *b, int64_t n)
{
    (void)level;
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            acc[t] += a[i + t] * b[i + t];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static inline NR_ALWAYS_INLINE void axpy_impl(enum nr_simd_level level, float *restrict y,
                                              const float *restrict x, float a, int64_t n)
{
    (void)level;
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* C (m x n, row stride ldc) (+)= A (m x kk) . B (kk x n, row stride ldb), where
 * A[i][p] = a[i * ars + p * acs] (any strides: A is read one scalar at a time
 * and broadcast) and rows of B are contiguous.
 *
 * Micro-kernels hold an MR x (L * NV) block of C in MR * NV vector
 * accumulators of L floats (GCC/clang vector extensions) for the whole kk
 * loop, so C is loaded and stored once per block and each B row segment
 * loaded feeds MR multiply-adds. Each level uses vectors as wide as its
 * registers (a wider type would be split and spilled) and keeps the
 * accumulators plus the B vectors within its register file:
 *   baseline (16 x 16-byte registers on SSE2; NEON has 32): 16-, 8- and
 *            4-column panels of 4-float vectors;
 *   AVX2     (16 x 32 bytes): 6 x 16 and 8 x 8 blocks of 8 floats;
 *   AVX-512  (32 x 64 bytes): 6 x 32 and 12 x 16 blocks of 16 floats (about
 *            2.5x the AVX2 kernels on the tower and scoring shapes), 8-wide
 *            panels with the AVX2 kernels.
 * The narrow layers of an NCF tower (16 and 8 units) get full-width kernels
 * too; leftover columns go through a scalar kernel. The summation order of
 * every C element is the same at every level. */
typedef float nr_v4 __attribute__((vector_size(16), aligned(4)));
typedef float nr_v8 __attribute__((vector_size(32), aligned(4)));
typedef float nr_v16 __attribute__((vector_size(64), aligned(4)));

/* NR_SPLAT(VT, L, x, value) declares x as the multiplier of a vector of VT: the float
 * itself (a scalar-vector product broadcasts it), except where float arithmetic is
 * evaluated in excess precision (x87, FLT_EVAL_METHOD 2: 32-bit x86 without SSE math),
 * which would widen the scalar to long double; there, a vector filled lane by lane. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#define NR_SPLAT(VT, L, x, value)  \
    VT x;                          \
    for (int l_ = 0; l_ < L; l_++) \
    x[l_] = (value)
#else
#define NR_SPLAT(VT, L, x, value) const float x = (value)
#endif

/* PFX_MRxNV: an MR x (L * NV) block of C in vectors VT of L floats. No
 * target attribute: each is inlined into a clone of its level. */
#define NR_GEMM_KERNEL(PFX, VT, L, MR, NV)                                                 \
    static inline NR_ALWAYS_INLINE void PFX##_##MR##x##NV(                                 \
        float *restrict c, int64_t ldc, const float *restrict a, int64_t ars, int64_t acs, \
        const float *restrict b, int64_t ldb, int64_t kk, int acc)                         \
    {                                                                                      \
        VT s[MR][NV];                                                                      \
        for (int r = 0; r < MR; r++)                                                       \
            for (int v = 0; v < NV; v++)                                                   \
                s[r][v] = acc ? *(const VT *)(c + r * ldc + L * v) : (VT){0};              \
        for (int64_t p = 0; p < kk; p++) {                                                 \
            const float *restrict bp = b + p * ldb;                                        \
            VT bv[NV];                                                                     \
            for (int v = 0; v < NV; v++)                                                   \
                bv[v] = *(const VT *)(bp + L * v);                                         \
            for (int r = 0; r < MR; r++) {                                                 \
                NR_SPLAT(VT, L, x, a[r * ars + p * acs]);                                  \
                for (int v = 0; v < NV; v++)                                               \
                    s[r][v] += x * bv[v];                                                  \
            }                                                                              \
        }                                                                                  \
        for (int r = 0; r < MR; r++)                                                       \
            for (int v = 0; v < NV; v++)                                                   \
                *(VT *)(c + r * ldc + L * v) = s[r][v];                                    \
    }

/* One column panel over all m rows with PFX kernels: MR rows at a time, then
 * MR2 rows, then single rows (uses c, a, b, strides, m, kk, accumulate, j). */
#define NR_GEMM_PANEL(PFX, MR, MR2, NV)                                                       \
    do {                                                                                      \
        int64_t i_ = 0;                                                                       \
        for (; i_ + MR <= m; i_ += MR)                                                        \
            PFX##_##MR##x##NV(c + i_ * ldc + j, ldc, a + i_ * ars, ars, acs, b + j, ldb, kk,  \
                              accumulate);                                                    \
        for (; i_ + MR2 <= m; i_ += MR2)                                                      \
            PFX##_##MR2##x##NV(c + i_ * ldc + j, ldc, a + i_ * ars, ars, acs, b + j, ldb, kk, \
                               accumulate);                                                   \
        for (; i_ < m; i_++)                                                                  \
            PFX##_1x##NV(c + i_ * ldc + j, ldc, a + i_ * ars, ars, acs, b + j, ldb, kk,       \
                         accumulate);                                                         \
    } while (0)

/* baseline: 4-float vectors; NEON's 32 registers take taller blocks */
#if defined(__aarch64__) || defined(_M_ARM64)
#define NR_V4_MR16 4
#else
#define NR_V4_MR16 2
#endif
NR_GEMM_KERNEL(kern4, nr_v4, 4, NR_V4_MR16, 4)
NR_GEMM_KERNEL(kern4, nr_v4, 4, 1, 4)
NR_GEMM_KERNEL(kern4, nr_v4, 4, 4, 2)
NR_GEMM_KERNEL(kern4, nr_v4, 4, 1, 2)
NR_GEMM_KERNEL(kern4, nr_v4, 4, 8, 1)
NR_GEMM_KERNEL(kern4, nr_v4, 4, 1, 1)

NR_GEMM_KERNEL(kern8, nr_v8, 8, 6, 2)
NR_GEMM_KERNEL(kern8, nr_v8, 8, 2, 2)
NR_GEMM_KERNEL(kern8, nr_v8, 8, 1, 2)
NR_GEMM_KERNEL(kern8, nr_v8, 8, 8, 1)
NR_GEMM_KERNEL(kern8, nr_v8, 8, 1, 1)

NR_GEMM_KERNEL(kern16, nr_v16, 16, 6, 2)
NR_GEMM_KERNEL(kern16, nr_v16, 16, 2, 2)
NR_GEMM_KERNEL(kern16, nr_v16, 16, 1, 2)
NR_GEMM_KERNEL(kern16, nr_v16, 16, 12, 1)
NR_GEMM_KERNEL(kern16, nr_v16, 16, 4, 1)
NR_GEMM_KERNEL(kern16, nr_v16, 16, 1, 1)

/* The last nn < 8 columns of one row. */
static inline NR_ALWAYS_INLINE void tile_1xN(float *restrict c0, const float *a0, int64_t acs,
                                             const float *restrict b, int64_t ldb, int64_t kk,
                                             int64_t nn, int acc)
{
    float s0[8];
    for (int64_t t = 0; t < nn; t++)
        s0[t] = acc ? c0[t] : 0.0f;
    for (int64_t p = 0; p < kk; p++) {
        float x0 = a0[p * acs];
        const float *restrict bp = b + p * ldb;
        for (int64_t t = 0; t < nn; t++)
            s0[t] += x0 * bp[t];
    }
    for (int64_t t = 0; t < nn; t++)
        c0[t] = s0[t];
}

/* A gemm over column panels W1, W2 and W3 wide (PANEL1..3), then the scalar
 * tail. */
#define NR_GEMM_DRIVER(NAME, W1, PANEL1, W2, PANEL2, W3, PANEL3)                                  \
    static inline NR_ALWAYS_INLINE void NAME(float *c, int64_t ldc, const float *a, int64_t ars,  \
                                             int64_t acs, const float *b, int64_t ldb, int64_t m, \
                                             int64_t n, int64_t kk, int accumulate)               \
    {                                                                                             \
        int64_t j = 0;                                                                            \
        for (; j + W1 <= n; j += W1)                                                              \
            PANEL1;                                                                               \
        for (; j + W2 <= n; j += W2)                                                              \
            PANEL2;                                                                               \
        for (; j + W3 <= n; j += W3)                                                              \
            PANEL3;                                                                               \
        if (j < n)                                                                                \
            for (int64_t i = 0; i < m; i++)                                                       \
                tile_1xN(c + i * ldc + j, a + i * ars, acs, b + j, ldb, kk, n - j, accumulate);   \
    }

NR_GEMM_DRIVER(gemm_v4, 16, NR_GEMM_PANEL(kern4, NR_V4_MR16, 1, 4), 8,
               NR_GEMM_PANEL(kern4, 4, 1, 2), 4, NR_GEMM_PANEL(kern4, 8, 1, 1))
/* AVX2: 6 x 16 blocks (12 accumulators + 2 B vectors of the 16 registers) for every
 * 16-column panel; a 2 x 32 block was 1.3-1.7x slower on the 32-wide tower layers (2 FMAs
 * per B load instead of 6). The third panel width never comes up. */
NR_GEMM_DRIVER(gemm_v8, 16, NR_GEMM_PANEL(kern8, 6, 2, 2), 8, NR_GEMM_PANEL(kern8, 8, 1, 1), 8,
               NR_GEMM_PANEL(kern8, 8, 1, 1))
NR_GEMM_DRIVER(gemm_v16, 32, NR_GEMM_PANEL(kern16, 6, 2, 2), 16, NR_GEMM_PANEL(kern16, 12, 4, 1), 8,
               NR_GEMM_PANEL(kern8, 8, 1, 1))

static inline NR_ALWAYS_INLINE void gemm_impl(enum nr_simd_level level, float *c, int64_t ldc,
                                              const float *a, int64_t ars, int64_t acs,
                                              const float *b, int64_t ldb, int64_t m, int64_t n,
                                              int64_t kk, int accumulate)
{
    if (level == NR_SIMD_AVX512)
        gemm_v16(c, ldc, a, ars, acs, b, ldb, m, n, kk, accumulate);
    else if (level == NR_SIMD_AVX2)
        gemm_v8(c, ldc, a, ars, acs, b, ldb, m, n, kk, accumulate);
    else
        gemm_v4(c, ldc, a, ars, acs, b, ldb, m, n, kk, accumulate);
}

#define GEMM_PARAMS                                                                                \
    (float *c, int64_t ldc, const float *a, int64_t ars, int64_t acs, const float *b, int64_t ldb, \
     int64_t m, int64_t n, int64_t kk, int accumulate)
#define GEMM_ARGS (c, ldc, a, ars, acs, b, ldb, m, n, kk, accumulate)
NR_SIMD_CLONES(gemm, GEMM_PARAMS, GEMM_ARGS)

/* The gemm clone of a level known at compile time (a direct call: a clone of
 * one level calls the gemm of the same level, never re-dispatches). */
static inline NR_ALWAYS_INLINE void gemm_at(enum nr_simd_level level, float *c, int64_t ldc,
                                            const float *a, int64_t ars, int64_t acs,
                                            const float *b, int64_t ldb, int64_t m, int64_t n,
                                            int64_t kk, int accumulate)
{
#if NR_SIMD_X86
    if (level == NR_SIMD_AVX512) {
        gemm_avx512 GEMM_ARGS;
        return;
    }
    if (level == NR_SIMD_AVX2) {
        gemm_avx2 GEMM_ARGS;
        return;
    }
#endif
    (void)level;
    gemm_base GEMM_ARGS;
}

static inline NR_ALWAYS_INLINE void dense_forward_impl(enum nr_simd_level level, float *restrict y,
                                                       const float *restrict x,
                                                       const float *restrict w,
                                                       const float *restrict b, int64_t rows,
                                                       int64_t k, int64_t n)
{
    if (n == 1) {
        float b0 = b ? b[0] : 0.0f;
        for (int64_t r = 0; r < rows; r++)
            y[r] = dot_impl(level, x + r * k, w, k) + b0;
        return;
    }
    if (b) {
        for (int64_t r = 0; r < rows; r++)
            memcpy(y + r * n, b, (size_t)n * sizeof *y);
        gemm_at(level, y, n, x, k, 1, w, n, rows, n, k, 1);
    } else {
        gemm_at(level, y, n, x, k, 1, w, n, rows, n, k, 0);
    }
}

static inline NR_ALWAYS_INLINE void
dense_backward_impl(enum nr_simd_level level, float *restrict gx, float *restrict gw,
                    float *restrict gb, const float *restrict gy, const float *restrict x,
                    const float *restrict w, float *restrict wt, int64_t rows, int64_t k, int64_t n)
{
    if (gb)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < n; j++)
                gb[j] += gy[r * n + j];
    /* gw (k x n) += x^T (k x rows) . gy (rows x n) */
    if (gw)
        gemm_at(level, gw, n, x, 1, k, gy, n, k, n, rows, 1);
    if (!gx)
        return;
    if (n == 1) {
        for (int64_t r = 0; r < rows; r++)
            axpy_impl(level, gx + r * k, w, gy[r], k);
        return;
    }
    /* gx (rows x k) += gy (rows x n) . w^T (n x k) */
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < n; j++)
            wt[j * k + i] = w[i * n + j];
    gemm_at(level, gx, k, gy, n, 1, wt, k, rows, k, n, 1);
}

static inline NR_ALWAYS_INLINE float sigmoidf(float z)
{
    /* Stable for both signs: exp of a non-positive number never overflows. */
    if (z >= 0.0f) {
        float e = expf(-z);
        return 1.0f / (1.0f + e);
    }
    float e = expf(z);
    return e / (1.0f + e);
}

static inline NR_ALWAYS_INLINE void relu_forward(float *restrict y, const float *restrict x,
                                                 int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static inline NR_ALWAYS_INLINE void act_forward_impl(enum nr_simd_level level, float *y,
                                                     const float *x, enum nr_act act, int64_t rows,
                                                     int64_t n)
{
    (void)level;
    int64_t total = rows * n;
    switch (act) {
    case NR_ACT_LINEAR:
        if (y != x)
            memcpy(y, x, (size_t)total * sizeof *y);
        break;
    case NR_ACT_RELU:
        if (y == x)
            for (int64_t i = 0; i < total; i++)
                y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        else
            relu_forward(y, x, total);
        break;
    case NR_ACT_SIGMOID:
        for (int64_t i = 0; i < total; i++)
            y[i] = sigmoidf(x[i]);
        break;
    case NR_ACT_TANH:
        for (int64_t i = 0; i < total; i++)
            y[i] = tanhf(x[i]);
        break;
    case NR_ACT_SOFTMAX:
        for (int64_t r = 0; r < rows; r++) {
            const float *xr = x + r * n;
            float *yr = y + r * n;
            float m = xr[0];
            for (int64_t j = 1; j < n; j++)
                m = xr[j] > m ? xr[j] : m;
            float s = 0.0f;
            for (int64_t j = 0; j < n; j++) {
                yr[j] = expf(xr[j] - m);
                s += yr[j];
            }
            float inv = 1.0f / s;
            for (int64_t j = 0; j < n; j++)
                yr[j] *= inv;
        }
        break;
    }
}

/* gx, gy and y are distinct buffers here: restrict lets the loops vectorize
 * (branch-free selects instead of a mispredicted branch per ReLU unit). */
static inline NR_ALWAYS_INLINE void act_backward_impl(enum nr_simd_level level, float *restrict gx,
                                                      const float *restrict gy,
                                                      const float *restrict y, enum nr_act act,
                                                      int64_t rows, int64_t n)
{
    (void)level;
    int64_t total = rows * n;
    switch (act) {
    case NR_ACT_LINEAR:
        for (int64_t i = 0; i < total; i++)
            gx[i] += gy[i];
        break;
    case NR_ACT_RELU:
        for (int64_t i = 0; i < total; i++)
            gx[i] += y[i] > 0.0f ? gy[i] : 0.0f;
        break;
    case NR_ACT_SIGMOID:
        for (int64_t i = 0; i < total; i++)
            gx[i] += gy[i] * y[i] * (1.0f - y[i]);
        break;
    case NR_ACT_TANH:
        for (int64_t i = 0; i < total; i++)
            gx[i] += gy[i] * (1.0f - y[i] * y[i]);
        break;
    case NR_ACT_SOFTMAX:
        for (int64_t r = 0; r < rows; r++) {
            const float *gyr = gy + r * n, *yr = y + r * n;
            float *gxr = gx + r * n;
            float d = 0.0f;
            for (int64_t j = 0; j < n; j++)
                d += gyr[j] * yr[j];
            for (int64_t j = 0; j < n; j++)
                gxr[j] += yr[j] * (gyr[j] - d);
        }
        break;
    }
}

/* ---- the clones of every level and the public entry points --------------- */

NR_SIMD_CLONES_RET(float, dot, (const float *a, const float *b, int64_t n), (a, b, n))
NR_SIMD_CLONES(axpy, (float *y, const float *x, float a, int64_t n), (y, x, a, n))
NR_SIMD_CLONES(dense_forward,
               (float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t k,
                int64_t n),
               (y, x, w, b, rows, k, n))
NR_SIMD_CLONES(dense_backward,
               (float *gx, float *gw, float *gb, const float *gy, const float *x, const float *w,
                float *wt, int64_t rows, int64_t k, int64_t n),
               (gx, gw, gb, gy, x, w, wt, rows, k, n))
NR_SIMD_CLONES(act_forward, (float *y, const float *x, enum nr_act act, int64_t rows, int64_t n),
               (y, x, act, rows, n))
NR_SIMD_CLONES(act_backward,
               (float *gx, const float *gy, const float *y, enum nr_act act, int64_t rows,
                int64_t n),
               (gx, gy, y, act, rows, n))

float nr_dot(const float *a, const float *b, int64_t n)
{
    return NR_SIMD_DISPATCH_RET(dot, (a, b, n));
}

void nr_axpy(float *y, const float *x, float a, int64_t n) { NR_SIMD_DISPATCH(axpy, (y, x, a, n)); }

void nr_gemm(float *c, int64_t ldc, const float *a, int64_t ars, int64_t acs, const float *b,
             int64_t ldb, int64_t m, int64_t n, int64_t kk, int accumulate)
{
    NR_SIMD_DISPATCH(gemm, GEMM_ARGS);
}

void nr_dense_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                      int64_t k, int64_t n)
{
    NR_SIMD_DISPATCH(dense_forward, (y, x, w, b, rows, k, n));
}

void nr_dense_backward(float *gx, float *gw, float *gb, const float *gy, const float *x,
                       const float *w, float *wt, int64_t rows, int64_t k, int64_t n)
{
    NR_SIMD_DISPATCH(dense_backward, (gx, gw, gb, gy, x, w, wt, rows, k, n));
}

void nr_act_forward(float *y, const float *x, enum nr_act act, int64_t rows, int64_t n)
{
    NR_SIMD_DISPATCH(act_forward, (y, x, act, rows, n));
}

void nr_act_backward(float *gx, const float *gy, const float *y, enum nr_act act, int64_t rows,
                     int64_t n)
{
    NR_SIMD_DISPATCH(act_backward, (gx, gy, y, act, rows, n));
}
