#include "neurec/nr_als.h"
#include "neurec/nr_kernels.h"
#include "neurec/nr_simd.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Rows taken from the shared counter at a time: rows differ in cost by their
 * number of nonzeros (a popular item has thousands), so threads take small
 * blocks instead of one contiguous range each. */
#define ROWS_PER_TAKE 8
/* Nonzeros gathered at a time for the Cholesky solve's rank-k update. */
#define GATHER 64
/* Rows per partial sum of the objective (fixed, so the sum does not depend on
 * the thread count). */
#define LOSS_BLOCK 64

/* ------------------------------------------------------------------------ */
/* small vector helpers, inlined into each SIMD clone                        */

static inline NR_ALWAYS_INLINE float v_dot(const float *restrict a, const float *restrict b,
                                           int64_t n)
{
    float acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int t = 0; t < 16; t++)
            acc[t] += a[i + t] * b[i + t];
    for (int t = 0; t < 8; t++)
        acc[t] += acc[t + 8];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static inline NR_ALWAYS_INLINE void v_axpy(float *restrict y, const float *restrict x, float a,
                                           int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* out = G v for a symmetric n x n G, as the sum over j of v[j] G[j, :]. Columns
 * go in blocks of 64 whose sums stay in registers for the whole j loop (an
 * axpy over all n columns per j would load and store out n times); every
 * element is summed in the same order (j ascending) either way. */
#define SYMV_BLOCK 64
static inline NR_ALWAYS_INLINE void v_symv(float *restrict out, const float *restrict g,
                                           const float *restrict v, int64_t n)
{
    int64_t i0 = 0;
    for (; i0 + SYMV_BLOCK <= n; i0 += SYMV_BLOCK) {
        float acc[SYMV_BLOCK] = {0};
        for (int64_t j = 0; j < n; j++) {
            const float vj = v[j];
            const float *restrict gj = g + j * n + i0;
            for (int t = 0; t < SYMV_BLOCK; t++)
                acc[t] += vj * gj[t];
        }
        for (int t = 0; t < SYMV_BLOCK; t++)
            out[i0 + t] = acc[t];
    }
    if (i0 < n) {
        for (int64_t i = i0; i < n; i++)
            out[i] = 0.0f;
        for (int64_t j = 0; j < n; j++)
            v_axpy(out + i0, g + j * n + i0, v[j], n - i0);
    }
}

static inline NR_ALWAYS_INLINE double d_dot(const double *restrict a, const double *restrict b,
                                            int64_t n)
{
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int t = 0; t < 8; t++)
            acc[t] += a[i + t] * b[i + t];
    double s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------------------ */
/* per-row helpers                                                           */

/* Check row u's nonzeros and return its regularization lambda_u, or a
 * negative value for an invalid row (*status says why). */
static float row_lambda(const struct nr_als_args *a, int64_t u, enum nr_status *status)
{
    int64_t b0 = a->indptr[u], b1 = a->indptr[u + 1];
    if (b0 < 0 || b1 < b0) {
        *status = NR_ERR_VALUE;
        return -1.0f;
    }
    double sum = 0.0;
    for (int64_t k = b0; k < b1; k++) {
        int32_t j = a->indices[k];
        if (j < 0 || (int64_t)j >= a->n_cols) {
            *status = NR_ERR_INDEX;
            return -1.0f;
        }
        float r = a->values ? a->values[k] : 1.0f;
        if (!(r >= 0.0f) || !isfinite(r)) {
            *status = NR_ERR_VALUE;
            return -1.0f;
        }
        sum += r;
    }
    if (a->nu == 0.0f || a->n_cols == 0)
        return a->reg;
    return (float)(a->reg * pow(1.0 + a->alpha * sum / (double)a->n_cols, a->nu));
}

/* A few conjugate-gradient steps on row u, from its current value. r, p, ap:
 * dim floats of scratch each. */
static inline NR_ALWAYS_INLINE void cg_row_impl(enum nr_simd_level level,
                                                const struct nr_als_args *a, int64_t u, float lam,
                                                float *restrict r, float *restrict p,
                                                float *restrict ap)
{
    (void)level;
    const int64_t d = a->dim;
    float *restrict x = a->x + u * d;
    const int64_t b0 = a->indptr[u], b1 = a->indptr[u + 1];
    /* r = b - A x */
    v_symv(r, a->gram, x, d);
    for (int64_t i = 0; i < d; i++)
        r[i] = -r[i] - lam * x[i] - (a->yo ? a->yo[i] : 0.0f);
    for (int64_t k = b0; k < b1; k++) {
        const int64_t j = a->indices[k];
        const float c = 1.0f + a->alpha * (a->values ? a->values[k] : 1.0f);
        const float o = a->offset ? a->offset[j] : 0.0f;
        const float *yj = a->y + j * d;
        const float s = v_dot(yj, x, d);
        v_axpy(r, yj, c * (1.0f - o) + o - (c - 1.0f) * s, d);
    }
    memcpy(p, r, (size_t)d * sizeof *p);
    float rs = v_dot(r, r, d);
    for (int it = 0; it < a->cg_steps; it++) {
        if (!(rs > 1e-20f))
            break;
        v_symv(ap, a->gram, p, d);
        v_axpy(ap, p, lam, d);
        for (int64_t k = b0; k < b1; k++) {
            const int64_t j = a->indices[k];
            const float cm1 = a->alpha * (a->values ? a->values[k] : 1.0f);
            const float *yj = a->y + j * d;
            v_axpy(ap, yj, cm1 * v_dot(yj, p, d), d);
        }
        const float pap = v_dot(p, ap, d);
        if (!(pap > 0.0f))
            break;
        const float step = rs / pap;
        v_axpy(x, p, step, d);
        v_axpy(r, ap, -step, d);
        const float rs_new = v_dot(r, r, d);
        const float beta = rs_new / rs;
        for (int64_t i = 0; i < d; i++)
            p[i] = r[i] + beta * p[i];
        rs = rs_new;
    }
}

#define CG_PARAMS                                                                             \
    (const struct nr_als_args *a, int64_t u, float lam, float *restrict r, float *restrict p, \
     float *restrict ap)
#define CG_ARGS (a, u, lam, r, p, ap)
NR_SIMD_CLONES(cg_row, CG_PARAMS, CG_ARGS)

/* Per-thread scratch of the Cholesky solve. */
struct chol_scratch {
    float *amat;  /* dim * dim */
    float *gath;  /* GATHER * dim: y_j rows */
    float *scal;  /* GATHER * dim: (c - 1) y_j rows */
    double *l;    /* dim * dim */
    double *b;    /* dim */
};

/* The float64 Cholesky factorisation and solve of row u (A built in float by
 * the dispatching gemm: G + sum (c - 1) y y^T). Returns 0, or -1 if the
 * system is not positive definite. */
static inline NR_ALWAYS_INLINE int chol_factor_impl(enum nr_simd_level level, double *restrict l,
                                                    double *restrict b, int64_t d)
{
    (void)level;
    for (int64_t j = 0; j < d; j++) {
        double *lj = l + j * d;
        double s = lj[j] - d_dot(lj, lj, j);
        if (!(s > 0.0))
            return -1;
        double piv = sqrt(s);
        lj[j] = piv;
        for (int64_t i = j + 1; i < d; i++) {
            double *li = l + i * d;
            li[j] = (li[j] - d_dot(li, lj, j)) / piv;
        }
    }
    /* L z = b, then L^T x = z (in place in b) */
    for (int64_t i = 0; i < d; i++)
        b[i] = (b[i] - d_dot(l + i * d, b, i)) / l[i * d + i];
    for (int64_t i = d - 1; i >= 0; i--) {
        double s = b[i];
        for (int64_t k = i + 1; k < d; k++)
            s -= l[k * d + i] * b[k];
        b[i] = s / l[i * d + i];
    }
    return 0;
}

#define CHOL_PARAMS (double *restrict l, double *restrict b, int64_t d)
#define CHOL_ARGS (l, b, d)
NR_SIMD_CLONES_RET(int, chol_factor, CHOL_PARAMS, CHOL_ARGS)

static int chol_row(const struct nr_als_args *a, int64_t u, float lam, struct chol_scratch *s)
{
    const int64_t d = a->dim;
    const int64_t b0 = a->indptr[u], b1 = a->indptr[u + 1];
    memcpy(s->amat, a->gram, (size_t)(d * d) * sizeof *s->amat);
    for (int64_t i = 0; i < d; i++)
        s->b[i] = a->yo ? -(double)a->yo[i] : 0.0;
    for (int64_t k0 = b0; k0 < b1; k0 += GATHER) {
        int64_t nb = b1 - k0 < GATHER ? b1 - k0 : GATHER;
        for (int64_t t = 0; t < nb; t++) {
            const int64_t j = a->indices[k0 + t];
            const float rv = a->values ? a->values[k0 + t] : 1.0f;
            const float c = 1.0f + a->alpha * rv;
            const float o = a->offset ? a->offset[j] : 0.0f;
            const float *yj = a->y + j * d;
            const double w = (double)c * (1.0 - o) + o;
            float *g = s->gath + t * d, *z = s->scal + t * d;
            for (int64_t i = 0; i < d; i++) {
                g[i] = yj[i];
                z[i] = (c - 1.0f) * yj[i];
                s->b[i] += w * yj[i];
            }
        }
        /* A += Z^T Y_block (A[i][p] of the gemm reads Z[p][i]) */
        nr_gemm(s->amat, d, s->scal, 1, d, s->gath, d, d, d, nb, 1);
    }
    for (int64_t i = 0; i < d * d; i++)
        s->l[i] = s->amat[i];
    for (int64_t i = 0; i < d; i++)
        s->l[i * d + i] += lam;
    if (NR_SIMD_DISPATCH_RET(chol_factor, (s->l, s->b, d)) < 0)
        return -1;
    float *x = a->x + u * d;
    for (int64_t i = 0; i < d; i++)
        x[i] = (float)s->b[i];
    return 0;
}

/* ------------------------------------------------------------------------ */
/* solve                                                                     */

struct solve_ctx {
    const struct nr_als_args *a;
    atomic_llong next;
    atomic_int status;
};

static void solve_worker(void *vctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    struct solve_ctx *c = vctx;
    const struct nr_als_args *a = c->a;
    const int64_t d = a->dim;
    float *vec = NULL;
    struct chol_scratch cs = {0};
    if (a->solver == NR_ALS_CG) {
        vec = malloc((size_t)(3 * d) * sizeof *vec);
        if (!vec)
            goto nomem;
    } else {
        cs.amat = malloc((size_t)(d * d) * sizeof *cs.amat);
        cs.gath = malloc((size_t)(GATHER * d) * sizeof *cs.gath);
        cs.scal = malloc((size_t)(GATHER * d) * sizeof *cs.scal);
        cs.l = malloc((size_t)(d * d) * sizeof *cs.l);
        cs.b = malloc((size_t)d * sizeof *cs.b);
        if (!cs.amat || !cs.gath || !cs.scal || !cs.l || !cs.b)
            goto nomem;
    }
    for (;;) {
        if (atomic_load(&c->status) != NR_OK)
            break;
        int64_t u0 = a->row0 + (int64_t)atomic_fetch_add(&c->next, ROWS_PER_TAKE);
        if (u0 >= a->row1)
            break;
        int64_t u1 = u0 + ROWS_PER_TAKE < a->row1 ? u0 + ROWS_PER_TAKE : a->row1;
        for (int64_t u = u0; u < u1; u++) {
            enum nr_status st = NR_OK;
            float lam = row_lambda(a, u, &st);
            if (st != NR_OK) {
                atomic_store(&c->status, st);
                break;
            }
            if (a->solver == NR_ALS_CG) {
                NR_SIMD_DISPATCH(cg_row, (a, u, lam, vec, vec + d, vec + 2 * d));
            } else if (chol_row(a, u, lam, &cs) < 0) {
                atomic_store(&c->status, NR_ERR_VALUE);
                break;
            }
        }
    }
    free(vec);
    free(cs.amat);
    free(cs.gath);
    free(cs.scal);
    free(cs.l);
    free(cs.b);
    return;
nomem:
    atomic_store(&c->status, NR_ERR_NOMEM);
    free(vec);
    free(cs.amat);
    free(cs.gath);
    free(cs.scal);
    free(cs.l);
    free(cs.b);
}

static enum nr_status check_args(const struct nr_als_args *a)
{
    if (!a->indptr || (!a->indices && a->n_rows > 0) || !a->x || !a->y || !a->gram)
        return NR_ERR_VALUE;
    if (a->n_rows < 0 || a->n_cols < 0 || a->dim < 1)
        return NR_ERR_VALUE;
    if (!isfinite(a->alpha) || a->alpha < 0.0f || !isfinite(a->reg) || a->reg < 0.0f ||
        !isfinite(a->nu) || a->nu < 0.0f)
        return NR_ERR_VALUE;
    if (a->solver != NR_ALS_CG && a->solver != NR_ALS_CHOLESKY)
        return NR_ERR_VALUE;
    if (a->solver == NR_ALS_CG && a->cg_steps < 1)
        return NR_ERR_VALUE;
    if (a->offset && !a->yo)
        return NR_ERR_VALUE;
    return NR_OK;
}

enum nr_status nr_als_solve_rows(const struct nr_als_args *a, struct nr_pool *pool)
{
    enum nr_status s = check_args(a);
    if (s != NR_OK)
        return s;
    if (a->row0 < 0 || a->row1 < a->row0 || a->row1 > a->n_rows)
        return NR_ERR_VALUE;
    if (a->row1 == a->row0)
        return NR_OK;
    struct solve_ctx c = {.a = a};
    atomic_init(&c.next, 0);
    atomic_init(&c.status, NR_OK);
    nr_pool_run(pool, solve_worker, &c);
    return (enum nr_status)atomic_load(&c.status);
}

/* ------------------------------------------------------------------------ */
/* Gramian                                                                   */

struct gram_ctx {
    float *gram, *yo;
    const float *y, *offset;
    int64_t n, dim;
    atomic_int status;
};

static void gram_worker(void *vctx, int ith, int nth)
{
    struct gram_ctx *c = vctx;
    /* thread ith computes rows [a0, a1) of G: the same sums in the same order
     * whatever the split */
    int64_t a0 = c->dim * ith / nth, a1 = c->dim * (ith + 1) / nth;
    if (a1 <= a0)
        return;
    nr_gemm(c->gram + a0 * c->dim, c->dim, c->y + a0, 1, c->dim, c->y, c->dim, a1 - a0, c->dim,
            c->n, 0);
    if (c->yo && c->offset) {
        double *acc = calloc((size_t)(a1 - a0), sizeof *acc);
        if (!acc) {
            atomic_store(&c->status, NR_ERR_NOMEM);
            return;
        }
        for (int64_t p = 0; p < c->n; p++) {
            const float *yp = c->y + p * c->dim + a0;
            const double o = c->offset[p];
            for (int64_t i = 0; i < a1 - a0; i++)
                acc[i] += o * yp[i];
        }
        for (int64_t i = 0; i < a1 - a0; i++)
            c->yo[a0 + i] = (float)acc[i];
        free(acc);
    }
}

enum nr_status nr_als_gram(float *gram, float *yo, const float *y, const float *offset, int64_t n,
                           int64_t dim, struct nr_pool *pool)
{
    if (n < 0 || dim < 1 || !gram || (n > 0 && !y))
        return NR_ERR_VALUE;
    struct gram_ctx c = {.gram = gram, .yo = yo, .y = y, .offset = offset, .n = n, .dim = dim};
    atomic_init(&c.status, NR_OK);
    if (n == 0) {
        memset(gram, 0, (size_t)(dim * dim) * sizeof *gram);
        if (yo)
            memset(yo, 0, (size_t)dim * sizeof *yo);
        return NR_OK;
    }
    nr_pool_run(pool, gram_worker, &c);
    if (yo && !offset)
        memset(yo, 0, (size_t)dim * sizeof *yo);
    return (enum nr_status)atomic_load(&c.status);
}

/* ------------------------------------------------------------------------ */
/* objective                                                                 */

struct loss_ctx {
    const struct nr_als_args *a;
    int data;
    double oo; /* sum of offset^2 over the columns */
    double *block_sums;
    int64_t n_blocks;
    atomic_llong next;
    atomic_int status;
};

/* Row u's data term: x^T G x + 2 x . yo + oo (every cell as unobserved, i.e.
 * (o_j + x . y_j)^2 summed over j), corrected on the observed cells to
 * c (1 - o - s)^2. Products in float (vectorised), sums in float64. gx: dim
 * floats of scratch. */
static inline NR_ALWAYS_INLINE double loss_row_impl(enum nr_simd_level level,
                                                    const struct nr_als_args *a, int64_t u,
                                                    double oo, float *restrict gx)
{
    (void)level;
    const int64_t d = a->dim;
    const float *x = a->x + u * d;
    v_symv(gx, a->gram, x, d);
    double sum = (double)v_dot(gx, x, d) + oo;
    if (a->yo)
        sum += 2.0 * (double)v_dot(a->yo, x, d);
    for (int64_t k = a->indptr[u]; k < a->indptr[u + 1]; k++) {
        const int64_t j = a->indices[k];
        const double cc = 1.0 + (double)a->alpha * (a->values ? a->values[k] : 1.0f);
        const double o = a->offset ? a->offset[j] : 0.0;
        const double s = v_dot(a->y + j * d, x, d);
        sum += cc * (1.0 - o - s) * (1.0 - o - s) - (o + s) * (o + s);
    }
    return sum;
}

#define LOSS_PARAMS (const struct nr_als_args *a, int64_t u, double oo, float *restrict gx)
#define LOSS_ARGS (a, u, oo, gx)
NR_SIMD_CLONES_RET(double, loss_row, LOSS_PARAMS, LOSS_ARGS)

static void loss_worker(void *vctx, int ith, int nth)
{
    (void)ith;
    (void)nth;
    struct loss_ctx *c = vctx;
    const struct nr_als_args *a = c->a;
    const int64_t d = a->dim;
    float *gx = malloc((size_t)d * sizeof *gx);
    if (!gx) {
        atomic_store(&c->status, NR_ERR_NOMEM);
        return;
    }
    for (;;) {
        int64_t blk = (int64_t)atomic_fetch_add(&c->next, 1);
        if (blk >= c->n_blocks || atomic_load(&c->status) != NR_OK)
            break;
        int64_t u0 = blk * LOSS_BLOCK;
        int64_t u1 = u0 + LOSS_BLOCK < a->n_rows ? u0 + LOSS_BLOCK : a->n_rows;
        double sum = 0.0;
        for (int64_t u = u0; u < u1; u++) {
            enum nr_status st = NR_OK;
            float lam = row_lambda(a, u, &st);
            if (st != NR_OK) {
                atomic_store(&c->status, st);
                break;
            }
            const float *x = a->x + u * d;
            double xx = 0.0;
            for (int64_t i = 0; i < d; i++)
                xx += (double)x[i] * x[i];
            sum += lam * xx;
            if (c->data)
                sum += NR_SIMD_DISPATCH_RET(loss_row, (a, u, c->oo, gx));
        }
        c->block_sums[blk] = sum;
    }
    free(gx);
}

enum nr_status nr_als_loss(const struct nr_als_args *a, int data, double *out, struct nr_pool *pool)
{
    enum nr_status s = check_args(a);
    if (s != NR_OK)
        return s;
    *out = 0.0;
    if (a->n_rows == 0)
        return NR_OK;
    struct loss_ctx c = {.a = a, .data = data};
    c.n_blocks = (a->n_rows + LOSS_BLOCK - 1) / LOSS_BLOCK;
    c.block_sums = calloc((size_t)c.n_blocks, sizeof *c.block_sums);
    if (!c.block_sums)
        return NR_ERR_NOMEM;
    if (data && a->offset)
        for (int64_t j = 0; j < a->n_cols; j++)
            c.oo += (double)a->offset[j] * a->offset[j];
    atomic_init(&c.next, 0);
    atomic_init(&c.status, NR_OK);
    nr_pool_run(pool, loss_worker, &c);
    s = (enum nr_status)atomic_load(&c.status);
    double total = 0.0;
    for (int64_t b = 0; b < c.n_blocks; b++)
        total += c.block_sums[b];
    free(c.block_sums);
    if (s == NR_OK)
        *out = total;
    return s;
}
