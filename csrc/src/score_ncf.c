#include "neurec/nr_score_ncf.h"
#include "neurec/nr_simd.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

_Static_assert(NR_NCF_ITEM + 1 == NR_NCF_PART_COUNT,
               "nr_ncf_part_names: a new part needs its name");

const char *const nr_ncf_part_names[NR_NCF_PART_COUNT] = {
    [NR_NCF_TOWER] = "tower",
    [NR_NCF_PRODUCT] = "product",
    [NR_NCF_USER] = "user",
    [NR_NCF_ITEM] = "item",
};

#define NCF_MAX_PARTS 16
#define NCF_IB 256   /* items per block */
#define NCF_UB 16    /* users per block: a tile's item rows stay in L1 while they are scored */
#define NCF_TMAX 32  /* the widest tile (AVX-512: 2 x 16 lanes); blocks are padded to it */
/* Row strides of the transposed item block and of the score block: a cache line past
 * 1 KiB, so that the rows a tile walks down are not all mapped to a few L1 sets. */
#define NCF_LDI (NCF_IB + 16)
#define NCF_LDS (NCF_IB + 16)

/* The plan's activations, value for value (kernels.c). */
static inline float ncf_sigmoid(float z)
{
    if (z >= 0.0f) {
        float e = expf(-z);
        return 1.0f / (1.0f + e);
    }
    float e = expf(z);
    return e / (1.0f + e);
}

static inline float ncf_act(enum nr_act act, float z)
{
    switch (act) {
    case NR_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case NR_ACT_SIGMOID: return ncf_sigmoid(z);
    case NR_ACT_TANH: return tanhf(z);
    default: return z;
    }
}

/* sigmoid and tanh of a tower layer, in place (relu and linear are done in registers). */
static void ncf_act_rows(float *v, int64_t n, enum nr_act act)
{
    if (act == NR_ACT_SIGMOID)
        for (int64_t i = 0; i < n; i++)
            v[i] = ncf_sigmoid(v[i]);
    else if (act == NR_ACT_TANH)
        for (int64_t i = 0; i < n; i++)
            v[i] = tanhf(v[i]);
}

/* A float an act value cannot reach from below: the width of the run of logits that
 * round to one float output is at most a few of the output's ulps over the slope,
 * taken here with a margin of about five (checked against the functions themselves
 * in csrc/tests/test_score_ncf.c). */
float nr_ncf_logit_floor(enum nr_act act, float z)
{
    double d;
    switch (act) {
    case NR_ACT_LINEAR: return z;
    case NR_ACT_RELU: return z > 0.0f ? z : -INFINITY;
    case NR_ACT_SIGMOID:
        if (!(z >= -80.0f)) /* exp underflows towards the denormals, then 0: ties */
            return -INFINITY;
        d = z > 0.0f ? 1e-6 * (2.0 + exp((double)z) + exp(-(double)z)) : 4e-6;
        break;
    case NR_ACT_TANH: {
        if (!(z >= -8.0f)) /* tanh(z) near -1 */
            return -INFINITY;
        double c = cosh((double)z);
        d = 1e-6 * (1.0 + c * c);
        break;
    }
    default: return -INFINITY;
    }
    const double t = (double)z - d - 1e-6 * fabs((double)z);
    if (!(t > -(double)FLT_MAX))
        return -INFINITY;
    float f = (float)t;
    if ((double)f > t)
        f = nextafterf(f, -INFINITY);
    return f;
}

/* ---- checks and layout ----------------------------------------------------- */

static int ncf_act_ok(enum nr_act act)
{
    return act == NR_ACT_LINEAR || act == NR_ACT_RELU || act == NR_ACT_SIGMOID ||
           act == NR_ACT_TANH;
}

enum nr_status nr_ncf_check(const struct nr_ncf_args *a)
{
    if (a->width_0 < 0 || a->n_layers < 0 || a->n_parts < 0 || a->n_parts > NCF_MAX_PARTS)
        return NR_ERR_SHAPE;
    if (!ncf_act_ok(a->act_0) || !ncf_act_ok(a->out_act))
        return NR_ERR_VALUE;
    if (a->width_0 > 0 && (!a->zu || !a->zi))
        return NR_ERR_SHAPE;
    if (a->width_0 == 0 && a->n_layers > 0)
        return NR_ERR_SHAPE;
    int64_t w = a->width_0;
    for (int l = 0; l < a->n_layers; l++) {
        const struct nr_ncf_layer *ly = &a->layers[l];
        if (!ly->w || ly->n_in != w || ly->n_out < 2)
            return NR_ERR_SHAPE;
        if (!ncf_act_ok(ly->act))
            return NR_ERR_VALUE;
        w = ly->n_out;
    }
    if (a->n_parts == 0) /* no prediction layer: the hoisted layer is the output */
        return a->width_0 == 1 && a->n_layers == 0 ? NR_OK : NR_ERR_SHAPE;
    if (!a->pred_w)
        return NR_ERR_SHAPE;
    int towers = 0;
    for (int c = 0; c < a->n_parts; c++) {
        const struct nr_ncf_part *p = &a->parts[c];
        if (p->width < 1)
            return NR_ERR_SHAPE;
        switch (p->kind) {
        case NR_NCF_TOWER:
            if (w == 0 || p->width != w)
                return NR_ERR_SHAPE;
            towers++;
            break;
        case NR_NCF_PRODUCT:
            if (!p->user || !p->item)
                return NR_ERR_SHAPE;
            break;
        case NR_NCF_USER:
            if (!p->user)
                return NR_ERR_SHAPE;
            break;
        case NR_NCF_ITEM:
            if (!p->item)
                return NR_ERR_SHAPE;
            break;
        default: return NR_ERR_VALUE;
        }
    }
    return towers == (a->width_0 > 0) ? NR_OK : NR_ERR_SHAPE;
}

/* Where each value of a tile lives: rows of the transposed item block (zi first, then
 * the item tables of the parts) and rows of x, the prediction layer's input. */
struct ncf_layout {
    int64_t w_item, d, maxw, tower_x;
    int64_t item_off[NCF_MAX_PARTS], x_off[NCF_MAX_PARTS];
};

static void ncf_layout_of(const struct nr_ncf_args *a, struct ncf_layout *lay)
{
    lay->w_item = a->width_0;
    lay->d = 0;
    lay->maxw = a->width_0 > 1 ? a->width_0 : 1;
    lay->tower_x = -1;
    for (int l = 0; l < a->n_layers; l++)
        if (a->layers[l].n_out > lay->maxw)
            lay->maxw = a->layers[l].n_out;
    for (int c = 0; c < a->n_parts; c++) {
        const struct nr_ncf_part *p = &a->parts[c];
        lay->x_off[c] = lay->d;
        lay->d += p->width;
        lay->item_off[c] = -1;
        if (p->kind == NR_NCF_PRODUCT || p->kind == NR_NCF_ITEM) {
            lay->item_off[c] = lay->w_item;
            lay->w_item += p->width;
        }
        if (p->kind == NR_NCF_TOWER)
            lay->tower_x = lay->x_off[c];
    }
}

/* ---- the tower over a tile of items, per SIMD level ------------------------ */

typedef float ncf_v4 __attribute__((vector_size(16), aligned(4)));
typedef float ncf_v8 __attribute__((vector_size(32), aligned(4)));
typedef float ncf_v16 __attribute__((vector_size(64), aligned(4)));
typedef int ncf_i4 __attribute__((vector_size(16), aligned(4)));
typedef int ncf_i8 __attribute__((vector_size(32), aligned(4)));
typedef int ncf_i16 __attribute__((vector_size(64), aligned(4)));

/* As kernels.c's NR_SPLAT: the float itself (scalar-vector arithmetic broadcasts it),
 * or, where float arithmetic runs in excess precision (x87), a vector filled lane by lane. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#define NCF_SPLAT(VT, L, x, value) \
    VT x;                          \
    for (int l_ = 0; l_ < L; l_++) \
    x[l_] = (value)
#else
#define NCF_SPLAT(VT, L, x, value) const float x = (value)
#endif

/* A tile is 2 vectors of L items; activations are stored transposed, one row of 2L
 * values per unit. PFX_dense_JB: units j0..j0+JB of a Dense layer over the tile, in
 * JB x 2 accumulators that start at the bias and add the inputs in order, as the
 * plan's gemm does for every output (so the sums round alike). */
#define NCF_DENSE_KERNEL(PFX, VT, VI, L, JB)                                                     \
    static inline NR_ALWAYS_INLINE void PFX##_dense_##JB(                                        \
        float *restrict out, const float *restrict in, const float *restrict w,                  \
        const float *restrict b, int64_t n_in, int64_t n_out, int64_t j0, int relu)              \
    {                                                                                            \
        const VT zero = {0};                                                                     \
        VT acc[JB][2];                                                                           \
        for (int jj = 0; jj < JB; jj++) { /* the bias, -0 kept (x - 0 is x) */                   \
            NCF_SPLAT(VT, L, s, b ? b[j0 + jj] : 0.0f);                                          \
            const VT v = s - zero;                                                               \
            acc[jj][0] = v;                                                                      \
            acc[jj][1] = v;                                                                      \
        }                                                                                        \
        for (int64_t p = 0; p < n_in; p++) {                                                     \
            const VT x0 = *(const VT *)(in + p * 2 * L), x1 = *(const VT *)(in + p * 2 * L + L); \
            const float *restrict wp = w + p * n_out + j0;                                       \
            for (int jj = 0; jj < JB; jj++) {                                                    \
                NCF_SPLAT(VT, L, s, wp[jj]);                                                     \
                acc[jj][0] += s * x0;                                                            \
                acc[jj][1] += s * x1;                                                            \
            }                                                                                    \
        }                                                                                        \
        for (int jj = 0; jj < JB; jj++)                                                          \
            for (int v = 0; v < 2; v++) {                                                        \
                VT r = acc[jj][v];                                                               \
                if (relu) /* x > 0 ? x : 0, NaN included */                                      \
                    r = (VT)((VI)r & (VI)(r > zero));                                            \
                *(VT *)(out + (j0 + jj) * 2 * L + v * L) = r;                                    \
            }                                                                                    \
    }

/* The functions of one level: PFX_dense (a layer), PFX_tile (one user x one tile:
 * tower, parts, prediction layer -> 2L logits), PFX_block (users x a block of tiles). */
#define NCF_LEVEL(PFX, VT, VI, L, JB)                                                              \
    NCF_DENSE_KERNEL(PFX, VT, VI, L, JB)                                                           \
    NCF_DENSE_KERNEL(PFX, VT, VI, L, 4)                                                            \
    NCF_DENSE_KERNEL(PFX, VT, VI, L, 2)                                                            \
    NCF_DENSE_KERNEL(PFX, VT, VI, L, 1)                                                            \
                                                                                                   \
    static inline NR_ALWAYS_INLINE void PFX##_dense(float *restrict out, const float *restrict in, \
                                                    const struct nr_ncf_layer *ly)                 \
    {                                                                                              \
        const int relu = ly->act == NR_ACT_RELU;                                                   \
        const int64_t n = ly->n_out;                                                               \
        int64_t j = 0;                                                                             \
        for (; j + JB <= n; j += JB)                                                               \
            PFX##_dense_##JB(out, in, ly->w, ly->b, ly->n_in, n, j, relu);                         \
        for (; j + 4 <= n; j += 4)                                                                 \
            PFX##_dense_4(out, in, ly->w, ly->b, ly->n_in, n, j, relu);                            \
        for (; j + 2 <= n; j += 2)                                                                 \
            PFX##_dense_2(out, in, ly->w, ly->b, ly->n_in, n, j, relu);                            \
        for (; j < n; j++)                                                                         \
            PFX##_dense_1(out, in, ly->w, ly->b, ly->n_in, n, j, relu);                            \
        ncf_act_rows(out, n * 2 * L, ly->act);                                                     \
    }                                                                                              \
                                                                                                   \
    static inline NR_ALWAYS_INLINE void PFX##_tile(                                                \
        const struct nr_ncf_args *a, const struct ncf_layout *lay, int64_t u,                      \
        const float *restrict itb, float *restrict ha, float *restrict hb, float *restrict x,      \
        float *restrict zout)                                                                      \
    {                                                                                              \
        const VT zero = {0};                                                                       \
        const float *h = NULL;                                                                     \
        if (a->width_0 > 0) {                                                                      \
            /* h_0 = act_0(zu + zi): the plan's Add, then its activation */                        \
            float *dst = a->n_layers == 0 && lay->tower_x >= 0 ? x + lay->tower_x * 2 * L : ha;    \
            const float *zu = a->zu + u * a->width_0;                                              \
            const int relu = a->act_0 == NR_ACT_RELU;                                              \
            for (int64_t p = 0; p < a->width_0; p++) {                                             \
                NCF_SPLAT(VT, L, s, zu[p]);                                                        \
                for (int v = 0; v < 2; v++) {                                                      \
                    VT t = s + *(const VT *)(itb + p * NCF_LDI + v * L);                           \
                    if (relu)                                                                      \
                        t = (VT)((VI)t & (VI)(t > zero));                                          \
                    *(VT *)(dst + p * 2 * L + v * L) = t;                                          \
                }                                                                                  \
            }                                                                                      \
            ncf_act_rows(dst, a->width_0 * 2 * L, a->act_0);                                       \
            h = dst;                                                                               \
            for (int l = 0; l < a->n_layers; l++) {                                                \
                float *out = l == a->n_layers - 1 && lay->tower_x >= 0 ? x + lay->tower_x * 2 * L  \
                                                                       : (h == ha ? hb : ha);      \
                PFX##_dense(out, h, &a->layers[l]);                                                \
                h = out;                                                                           \
            }                                                                                      \
        }                                                                                          \
        if (a->n_parts == 0) { /* the hoisted layer is the output */                               \
            memcpy(zout, h, 2 * L * sizeof *zout);                                                 \
            return;                                                                                \
        }                                                                                          \
        for (int c = 0; c < a->n_parts; c++) {                                                     \
            const struct nr_ncf_part *pt = &a->parts[c];                                           \
            float *xr = x + lay->x_off[c] * 2 * L;                                                 \
            const float *it = lay->item_off[c] >= 0 ? itb + lay->item_off[c] * NCF_LDI : NULL;     \
            const float *us = pt->user ? pt->user + u * pt->width : NULL;                          \
            for (int64_t f = 0; f < pt->width && pt->kind != NR_NCF_TOWER; f++)                    \
                for (int v = 0; v < 2; v++) {                                                      \
                    VT r;                                                                          \
                    if (pt->kind == NR_NCF_ITEM) {                                                 \
                        r = *(const VT *)(it + f * NCF_LDI + v * L);                               \
                    } else {                                                                       \
                        NCF_SPLAT(VT, L, s, us[f]);                                                \
                        r = s - zero;                                                              \
                        if (pt->kind == NR_NCF_PRODUCT)                                            \
                            r = s * *(const VT *)(it + f * NCF_LDI + v * L);                       \
                    }                                                                              \
                    *(VT *)(xr + f * 2 * L + v * L) = r;                                           \
                }                                                                                  \
        }                                                                                          \
        /* the prediction layer, as the plan's Dense(1) (nr_dot): eight partial sums, */           \
        /* combined, then the d % 8 last products one by one, then the bias */                     \
        const float *w = a->pred_w;                                                                \
        const int64_t d = lay->d;                                                                  \
        if (d % 8) {                                                                               \
            /* how the compiler sums that tail (fused or not, per product) is its choice: */       \
            /* the plan's own kernel scores the tile, rows of x laid out as it has them */         \
            float *xr = x + d * 2 * L;                                                             \
            for (int64_t i = 0; i < d; i++)                                                        \
                for (int j = 0; j < 2 * L; j++)                                                    \
                    xr[j * d + i] = x[i * 2 * L + j];                                              \
            nr_dense_forward(zout, xr, w, &a->pred_b, 2 * L, d, 1);                                \
            return;                                                                                \
        }                                                                                          \
        for (int v = 0; v < 2; v++) {                                                              \
            VT acc[8];                                                                             \
            for (int t = 0; t < 8; t++)                                                            \
                acc[t] = zero;                                                                     \
            for (int64_t i = 0; i < d; i += 8)                                                     \
                for (int t = 0; t < 8; t++) {                                                      \
                    NCF_SPLAT(VT, L, s, w[i + t]);                                                 \
                    acc[t] += *(const VT *)(x + (i + t) * 2 * L + v * L) * s;                      \
                }                                                                                  \
            VT r =                                                                                 \
                ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])); \
            NCF_SPLAT(VT, L, bias, a->pred_b);                                                     \
            *(VT *)(zout + v * L) = r + bias;                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    static inline NR_ALWAYS_INLINE void PFX##_block(                                               \
        const struct nr_ncf_args *a, const struct ncf_layout *lay, const int64_t *users,           \
        int64_t mu, const float *itb, int64_t nbp, float *ha, float *hb, float *x, float *sc)      \
    {                                                                                              \
        for (int64_t t0 = 0; t0 < nbp; t0 += 2 * L)                                                \
            for (int64_t r = 0; r < mu; r++)                                                       \
                PFX##_tile(a, lay, users[r], itb + t0, ha, hb, x, sc + r * NCF_LDS + t0);          \
    }

/* Accumulators + the two input vectors within each register file: AVX-512 (32 registers)
 * 8 x 2, AVX2 and the 16-byte baseline (16 registers) 6 x 2. */
NCF_LEVEL(ncf4, ncf_v4, ncf_i4, 4, 6)
NCF_LEVEL(ncf8, ncf_v8, ncf_i8, 8, 6)
NCF_LEVEL(ncf16, ncf_v16, ncf_i16, 16, 8)

static inline NR_ALWAYS_INLINE void
ncf_block_impl(enum nr_simd_level level, const struct nr_ncf_args *a, const struct ncf_layout *lay,
               const int64_t *users, int64_t mu, const float *itb, int64_t nbp, float *ha,
               float *hb, float *x, float *sc)
{
    if (level == NR_SIMD_AVX512)
        ncf16_block(a, lay, users, mu, itb, nbp, ha, hb, x, sc);
    else if (level == NR_SIMD_AVX2)
        ncf8_block(a, lay, users, mu, itb, nbp, ha, hb, x, sc);
    else
        ncf4_block(a, lay, users, mu, itb, nbp, ha, hb, x, sc);
}

NR_SIMD_CLONES(ncf_block,
               (const struct nr_ncf_args *a, const struct ncf_layout *lay, const int64_t *users,
                int64_t mu, const float *itb, int64_t nbp, float *ha, float *hb, float *x,
                float *sc),
               (a, lay, users, mu, itb, nbp, ha, hb, x, sc))

/* ---- per-user heaps of (score, logit, candidate position) ------------------ */

/* nr_topk's order: the root is the worst entry kept (a lower score, or an equal score
 * with a higher position). The logit rides along, for the root's floor. */
struct ncf_heap {
    float *s, *z;
    int64_t *id;
    int64_t size;
    float floor; /* once full: logits below it cannot enter */
    int stale;   /* the root was replaced since floor was computed (it is still a bound) */
};

static inline int ncf_worse(float sa, int64_t ia, float sb, int64_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

static void ncf_sift_down(struct ncf_heap *h, int64_t size, int64_t i)
{
    const float xs = h->s[i], xz = h->z[i];
    const int64_t xi = h->id[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= size)
            break;
        if (c + 1 < size && ncf_worse(h->s[c + 1], h->id[c + 1], h->s[c], h->id[c]))
            c++;
        if (!ncf_worse(h->s[c], h->id[c], xs, xi))
            break;
        h->s[i] = h->s[c];
        h->z[i] = h->z[c];
        h->id[i] = h->id[c];
        i = c;
    }
    h->s[i] = xs;
    h->z[i] = xz;
    h->id[i] = xi;
}

static void ncf_sift_up(struct ncf_heap *h, int64_t i)
{
    const float xs = h->s[i], xz = h->z[i];
    const int64_t xi = h->id[i];
    while (i > 0) {
        const int64_t p = (i - 1) / 2;
        if (!ncf_worse(xs, xi, h->s[p], h->id[p]))
            break;
        h->s[i] = h->s[p];
        h->z[i] = h->z[p];
        h->id[i] = h->id[p];
        i = p;
    }
    h->s[i] = xs;
    h->z[i] = xz;
    h->id[i] = xi;
}

/* Whether any of z[0..16) is not below t (NaN included: relu maps it to 0). */
static inline int ncf_any_reaching(const float *z, float t)
{
    int any = 0;
    for (int l = 0; l < 16; l++)
        any |= !(z[l] < t);
    return any;
}

/* Offer the logits z[j] of positions first + j, j < n. */
static void ncf_push_range(struct ncf_heap *h, int64_t k, enum nr_act act, const float *z,
                           int64_t n, int64_t first)
{
    int64_t j = 0;
    for (; h->size < k && j < n; j++) {
        const float s = ncf_act(act, z[j]);
        if (isnan(s))
            continue;
        const int64_t at = h->size++;
        h->s[at] = s;
        h->z[at] = z[j];
        h->id[at] = first + j;
        ncf_sift_up(h, at);
        if (h->size == k)
            h->floor = nr_ncf_logit_floor(act, h->z[0]);
    }
    float floor = h->floor;
    for (; j < n; j++) {
        while (j + 16 <= n && !ncf_any_reaching(z + j, floor))
            j += 16;
        if (j >= n)
            break;
        if (z[j] < floor)
            continue;
        const float s = ncf_act(act, z[j]);
        const int64_t id = first + j;
        if (!(s > h->s[0] || (s == h->s[0] && id < h->id[0]))) { /* NaN never enters */
            /* the floor of an older (worse) root is still a bound, only a looser one:
             * it is raised when it lets a logit through in vain, not at every replacement
             * (a floor costs more than the act evaluations a looser one lets through) */
            if (h->stale) {
                floor = h->floor = nr_ncf_logit_floor(act, h->z[0]);
                h->stale = 0;
            }
            continue;
        }
        h->s[0] = s;
        h->z[0] = z[j];
        h->id[0] = id;
        ncf_sift_down(h, h->size, 0);
        h->stale = 1;
    }
}

/* A block of n logits from position first, skipping the excluded positions
 * (ascending; duplicates and positions outside the block are harmless). */
static void ncf_push_block(struct ncf_heap *h, int64_t k, enum nr_act act, const float *z,
                           int64_t n, int64_t first, const int32_t *ex, int64_t n_ex)
{
    int64_t lo = 0, hi = n_ex;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)ex[mid] < first)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t j = 0;
    for (int64_t p = lo; p < n_ex && j < n; p++) {
        const int64_t e = (int64_t)ex[p] - first;
        if (e < j)
            continue;
        if (e >= n)
            break;
        ncf_push_range(h, k, act, z + j, e - j, first + j);
        j = e + 1;
    }
    if (j < n)
        ncf_push_range(h, k, act, z + j, n - j, first + j);
}

/* Best first (heapsort of the min-heap), positions mapped to item rows, padded. */
static void ncf_finish(struct ncf_heap *h, int64_t k, const int64_t *items)
{
    for (int64_t end = h->size - 1; end > 0; end--) {
        const float ts = h->s[0], tz = h->z[0];
        const int64_t ti = h->id[0];
        h->s[0] = h->s[end];
        h->z[0] = h->z[end];
        h->id[0] = h->id[end];
        h->s[end] = ts;
        h->z[end] = tz;
        h->id[end] = ti;
        ncf_sift_down(h, end, 0);
    }
    for (int64_t j = 0; j < h->size; j++)
        if (items)
            h->id[j] = items[h->id[j]];
    for (int64_t j = h->size; j < k; j++) {
        h->id[j] = -1;
        h->s[j] = -INFINITY;
    }
}

/* ---- threads --------------------------------------------------------------- */

struct ncf_ctx {
    const struct nr_ncf_args *a;
    struct ncf_layout lay;
    atomic_int status;
};

/* One item table's rows, transposed: dst[f * NCF_LDI + j] = tab[row_j * w + f] for the
 * candidates j < nb (item rows items[j], or i0 + j when items is NULL), zero for
 * nb <= j < nbp. On x86, 4 items x 4 values at a time through SSE registers: the
 * per-user re-ranking gathers every user's own candidates, where one store per value
 * took as long as scoring them. */
static void ncf_gather_table(float *restrict dst, const float *restrict tab, int64_t w,
                             const int64_t *items, int64_t i0, int64_t nb, int64_t nbp)
{
    int64_t j = 0;
#if defined(__SSE2__)
    for (; j + 4 <= nb; j += 4) {
        const float *r[4];
        for (int q = 0; q < 4; q++)
            r[q] = tab + (items ? items[j + q] : i0 + j + q) * w;
        int64_t f = 0;
        for (; f + 4 <= w; f += 4) {
            __m128 c0 = _mm_loadu_ps(r[0] + f), c1 = _mm_loadu_ps(r[1] + f),
                   c2 = _mm_loadu_ps(r[2] + f), c3 = _mm_loadu_ps(r[3] + f);
            _MM_TRANSPOSE4_PS(c0, c1, c2, c3);
            _mm_storeu_ps(dst + f * NCF_LDI + j, c0);
            _mm_storeu_ps(dst + (f + 1) * NCF_LDI + j, c1);
            _mm_storeu_ps(dst + (f + 2) * NCF_LDI + j, c2);
            _mm_storeu_ps(dst + (f + 3) * NCF_LDI + j, c3);
        }
        for (; f < w; f++)
            for (int q = 0; q < 4; q++)
                dst[f * NCF_LDI + j + q] = r[q][f];
    }
#endif
    for (; j < nbp; j++) {
        const float *row = j < nb ? tab + (items ? items[j] : i0 + j) * w : NULL;
        for (int64_t f = 0; f < w; f++)
            dst[f * NCF_LDI + j] = row ? row[f] : 0.0f;
    }
}

/* The transposed item-side rows of nb candidates: item rows items[0..nb), or i0..i0+nb
 * when items is NULL; zero past nb up to nbp. */
static void ncf_gather(float *restrict itb, const struct nr_ncf_args *a,
                       const struct ncf_layout *lay, const int64_t *items, int64_t i0, int64_t nb,
                       int64_t nbp)
{
    if (a->width_0 > 0)
        ncf_gather_table(itb, a->zi, a->width_0, items, i0, nb, nbp);
    for (int c = 0; c < a->n_parts; c++)
        if (lay->item_off[c] >= 0)
            ncf_gather_table(itb + lay->item_off[c] * NCF_LDI, a->parts[c].item, a->parts[c].width,
                             items, i0, nb, nbp);
}

/* 64-byte aligned floats out of one allocation (*base is what to free). */
static float *ncf_alloc(void **base, size_t n)
{
    *base = malloc(n * sizeof(float) + 64);
    if (!*base)
        return NULL;
    return (float *)(((uintptr_t)*base + 63) & ~(uintptr_t)63);
}

static size_t ncf_round16(int64_t n) { return (size_t)((n + 15) & ~(int64_t)15); }

static void ncf_worker(void *vctx, int ith, int nth)
{
    struct ncf_ctx *c = vctx;
    const struct nr_ncf_args *a = c->a;
    const struct ncf_layout *lay = &c->lay;
    const int64_t u0 = a->n_users * ith / nth, u1 = a->n_users * (ith + 1) / nth, k = a->k;
    if (u1 <= u0)
        return;
    const size_t n_itb = ncf_round16(lay->w_item * NCF_LDI),
                 n_h = ncf_round16(lay->maxw * NCF_TMAX);
    const size_t n_x = ncf_round16(2 * lay->d * NCF_TMAX), n_sc = ncf_round16(NCF_UB * NCF_LDS);
    void *base = NULL;
    float *itb = ncf_alloc(&base, n_itb + 2 * n_h + n_x + n_sc);
    float *zs = malloc((size_t)((u1 - u0) * k) * sizeof *zs);
    struct ncf_heap *heaps = malloc((size_t)(u1 - u0) * sizeof *heaps);
    if (!itb || !zs || !heaps) {
        atomic_store(&c->status, NR_ERR_NOMEM);
        goto done;
    }
    float *ha = itb + n_itb, *hb = ha + n_h, *x = hb + n_h, *sc = x + n_x;
    for (int64_t u = u0; u < u1; u++)
        heaps[u - u0] = (struct ncf_heap){.s = a->out_scores + u * k,
                                          .z = zs + (u - u0) * k,
                                          .id = a->out_ids + u * k,
                                          .size = 0,
                                          .floor = -INFINITY,
                                          .stale = 0};
    for (int64_t i0 = 0; i0 < a->n_cand; i0 += NCF_IB) {
        if (a->abort && *a->abort) {
            atomic_store(&c->status, NR_ABORTED);
            goto done;
        }
        if (atomic_load(&c->status) != NR_OK)
            goto done;
        const int64_t nb = a->n_cand - i0 < NCF_IB ? a->n_cand - i0 : NCF_IB;
        const int64_t nbp = (nb + NCF_TMAX - 1) / NCF_TMAX * NCF_TMAX;
        ncf_gather(itb, a, lay, a->items ? a->items + i0 : NULL, i0, nb, nbp);
        for (int64_t ub = u0; ub < u1; ub += NCF_UB) {
            const int64_t mu = u1 - ub < NCF_UB ? u1 - ub : NCF_UB;
            NR_SIMD_DISPATCH(ncf_block, (a, lay, a->users + ub, mu, itb, nbp, ha, hb, x, sc));
            for (int64_t r = 0; r < mu; r++) {
                const int64_t u = ub + r;
                const int32_t *ex = NULL;
                int64_t n_ex = 0;
                if (a->excl_indptr && a->excl_rows && a->excl_rows[u] >= 0) {
                    const int64_t row = a->excl_rows[u];
                    ex = a->excl_indices + a->excl_indptr[row];
                    n_ex = a->excl_indptr[row + 1] - a->excl_indptr[row];
                }
                ncf_push_block(&heaps[u - u0], k, a->out_act, sc + r * NCF_LDS, nb, i0, ex, n_ex);
            }
        }
    }
    for (int64_t u = u0; u < u1; u++)
        ncf_finish(&heaps[u - u0], k, a->items);
done:
    free(base);
    free(zs);
    free(heaps);
}

/* Check a, lay it out and run worker on every thread of pool; the first error wins. */
static enum nr_status ncf_run(const struct nr_ncf_args *a, struct nr_pool *pool, nr_pool_fn worker)
{
    if (a->k < 1 || a->n_users < 0 || a->n_cand < 0)
        return NR_ERR_VALUE;
    enum nr_status s = nr_ncf_check(a);
    if (s != NR_OK)
        return s;
    struct ncf_ctx c = {.a = a};
    ncf_layout_of(a, &c.lay);
    atomic_init(&c.status, NR_OK);
    nr_pool_run(pool, worker, &c);
    return (enum nr_status)atomic_load(&c.status);
}

enum nr_status nr_ncf_topk(const struct nr_ncf_args *a, struct nr_pool *pool)
{
    return ncf_run(a, pool, ncf_worker);
}

/* ---- per-user candidates --------------------------------------------------- */

/* One user at a time: its row of candidates without the padding and the exclusions
 * (a merge: both ascending), so that heap positions ascend with the item rows and equal
 * scores go by the lower row; then that list in blocks, one user x a block of tiles. */
static void ncf_worker_per_user(void *vctx, int ith, int nth)
{
    struct ncf_ctx *c = vctx;
    const struct nr_ncf_args *a = c->a;
    const struct ncf_layout *lay = &c->lay;
    const int64_t u0 = a->n_users * ith / nth, u1 = a->n_users * (ith + 1) / nth, k = a->k;
    const int64_t nc = a->n_cand;
    if (u1 <= u0)
        return;
    const size_t n_itb = ncf_round16(lay->w_item * NCF_LDI),
                 n_h = ncf_round16(lay->maxw * NCF_TMAX);
    const size_t n_x = ncf_round16(2 * lay->d * NCF_TMAX), n_sc = ncf_round16(NCF_LDS);
    void *base = NULL;
    float *itb = ncf_alloc(&base, n_itb + 2 * n_h + n_x + n_sc);
    float *zs = malloc((size_t)k * sizeof *zs);
    int64_t *list = malloc((size_t)(nc > 0 ? nc : 1) * sizeof *list);
    if (!itb || !zs || !list) {
        atomic_store(&c->status, NR_ERR_NOMEM);
        goto done;
    }
    float *ha = itb + n_itb, *hb = ha + n_h, *x = hb + n_h, *sc = x + n_x;
    for (int64_t u = u0; u < u1; u++) {
        if (a->abort && *a->abort) {
            atomic_store(&c->status, NR_ABORTED);
            goto done;
        }
        if (atomic_load(&c->status) != NR_OK)
            goto done;
        const int32_t *ex = NULL;
        int64_t n_ex = 0, m = 0, p = 0;
        if (a->excl_indptr && a->excl_rows && a->excl_rows[u] >= 0) {
            const int64_t row = a->excl_rows[u];
            ex = a->excl_indices + a->excl_indptr[row];
            n_ex = a->excl_indptr[row + 1] - a->excl_indptr[row];
        }
        const int64_t *row = a->items + u * nc;
        for (int64_t j = 0; j < nc; j++) {
            const int64_t it = row[j];
            if (it < 0)
                continue;
            while (p < n_ex && (int64_t)ex[p] < it)
                p++;
            if (p < n_ex && (int64_t)ex[p] == it)
                continue;
            list[m++] = it;
        }
        struct ncf_heap h = {.s = a->out_scores + u * k,
                             .z = zs,
                             .id = a->out_ids + u * k,
                             .size = 0,
                             .floor = -INFINITY,
                             .stale = 0};
        for (int64_t i0 = 0; i0 < m; i0 += NCF_IB) {
            const int64_t nb = m - i0 < NCF_IB ? m - i0 : NCF_IB;
            const int64_t nbp = (nb + NCF_TMAX - 1) / NCF_TMAX * NCF_TMAX;
            ncf_gather(itb, a, lay, list + i0, i0, nb, nbp);
            NR_SIMD_DISPATCH(ncf_block, (a, lay, a->users + u, 1, itb, nbp, ha, hb, x, sc));
            ncf_push_range(&h, k, a->out_act, sc, nb, i0);
        }
        ncf_finish(&h, k, list);
    }
done:
    free(base);
    free(zs);
    free(list);
}

enum nr_status nr_ncf_topk_per_user(const struct nr_ncf_args *a, struct nr_pool *pool)
{
    if (!a->items && a->n_users && a->n_cand)
        return NR_ERR_VALUE;
    return ncf_run(a, pool, ncf_worker_per_user);
}
