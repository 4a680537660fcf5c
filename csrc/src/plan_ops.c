/*
 * The ops' forward and backward passes over a block of batch rows: one kernel
 * per op and direction, found through a table indexed by the op's kind (the
 * forward ones also by the SIMD level), as ggml's CPU backend does.
 */
#include "plan_impl.h"

#include "neurec/nr_kernels.h"
#include "neurec/nr_names.h"
#include "neurec/nr_rng.h"
#include "neurec/nr_simd.h"

#include <math.h>
#include <string.h>

/* X (r x cols) with contraction axis ax as A^T: (free x contract), row-major. */
static void dot_load(float *at, const float *x, int64_t r, int64_t cols, int64_t ax)
{
    if (ax == 1 || cols == 1) {
        memcpy(at, x, (size_t)(r * cols) * sizeof *at);
        return;
    }
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < cols; j++)
            at[j * r + i] = x[i * cols + j];
}

static void dot_store_grad(float *gx, const float *gat, int64_t r, int64_t cols, int64_t ax)
{
    if (ax == 1 || cols == 1) {
        for (int64_t i = 0; i < r * cols; i++)
            gx[i] += gat[i];
        return;
    }
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < cols; j++)
            gx[i * cols + j] += gat[j * r + i];
}

/* Short copies (an embedding row, a concatenation part) inline: a libc call per
 * 32-128 bytes cost more than the copy. */
static inline NR_ALWAYS_INLINE void copy_floats(float *restrict dst, const float *restrict src,
                                                int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        dst[k] = src[k];
}

/* Rows of large tables miss the caches: the gather asks for the rows of the
 * sample this many places ahead while it copies the current one. */
#define NR_PREFETCH_AHEAD 4

static inline void prefetch_rows(const struct nr_array *a, const struct nr_table *t, int64_t s,
                                 int64_t m, int64_t dd)
{
    for (int64_t j = 0; j < m; j++) {
        int64_t id = read_id(a, s * m + j);
        if (id < 0 || id >= t->rows)
            continue;
        const char *row = (const char *)(t->w + id * dd);
        for (int64_t off = 0; off < dd * (int64_t)sizeof(float); off += 64)
            __builtin_prefetch(row + off, 0);
    }
}

/* Where op oi's output rows start for batch row b0. */
static inline float *out_rows(const struct nr_plan *p, const struct nr_op *op, int64_t b0)
{
    return act_of(p, op->out) + b0 * p->value_size[op->out];
}

/* ------------------------------------------------------------------------ */
/* forward: op oi's output for batch rows [b0, b0 + nb)                      */

/* The kernels with inline copies or element-wise loops are written once as
 * NAME_impl and compiled per SIMD level (nr_simd.h), so that those loops
 * vectorise for each instruction set; the others call kernels that dispatch
 * by themselves. */
typedef void (*forward_fn)(struct run_ctx *c, int oi, int64_t b0, int64_t nb);
#define FORWARD_CLONES(NAME) \
    NR_SIMD_CLONES(NAME, (struct run_ctx * c, int oi, int64_t b0, int64_t nb), (c, oi, b0, nb))

static inline NR_ALWAYS_INLINE void input_forward_impl(enum nr_simd_level level, struct run_ctx *c,
                                                       int oi, int64_t b0, int64_t nb)
{
    (void)level;
    const struct nr_op *op = &c->p->ops[oi];
    float *y = out_rows(c->p, op, b0);
    const struct nr_array *a = &c->inputs[op->in[0]];
    int64_t w = a->width;
    for (int64_t b = 0; b < nb; b++) {
        int64_t s = sample_of(c, b0 + b);
        if (a->dtype == NR_DTYPE_F32) {
            copy_floats(y + b * w, (const float *)a->data + s * w, w);
        } else {
            for (int64_t j = 0; j < w; j++)
                y[b * w + j] = read_f(a, s * w + j);
        }
    }
}
FORWARD_CLONES(input_forward)

static inline NR_ALWAYS_INLINE void
embedding_forward_impl(enum nr_simd_level level, struct run_ctx *c, int oi, int64_t b0, int64_t nb)
{
    (void)level;
    const struct nr_op *op = &c->p->ops[oi];
    float *y = out_rows(c->p, op, b0);
    const struct nr_array *a = &c->inputs[op->in[0]];
    const struct nr_table *t = &c->p->tables[c->p->table_of[op->param[0]]].tab;
    int64_t m = op->dim[0], dd = op->dim[1];
    for (int64_t b = 0; b < nb; b++) {
        int64_t s = sample_of(c, b0 + b);
        if (b + NR_PREFETCH_AHEAD < nb)
            prefetch_rows(a, t, sample_of(c, b0 + b + NR_PREFETCH_AHEAD), m, dd);
        for (int64_t j = 0; j < m; j++) {
            int64_t id = read_id(a, s * m + j);
            float *dst = y + (b * m + j) * dd;
            if (id < 0 || id >= t->rows) {
                atomic_store(&c->bad_index, 1);
                memset(dst, 0, (size_t)dd * sizeof *dst);
            } else {
                copy_floats(dst, t->w + id * dd, dd);
            }
        }
    }
}
FORWARD_CLONES(embedding_forward)

static void dense_forward(struct run_ctx *c, int oi, int64_t b0, int64_t nb)
{
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    const float *x = act_of(p, op->in[0]) + b0 * p->value_size[op->in[0]];
    const float *bias = op->param[1] >= 0 ? p->d.params[op->param[1]].w : NULL;
    nr_dense_forward(out_rows(p, op, b0), x, p->d.params[op->param[0]].w, bias, nb * op->dim[0],
                     op->dim[1], op->dim[2]);
}

static void act_forward(struct run_ctx *c, int oi, int64_t b0, int64_t nb)
{
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    const float *x = act_of(p, op->in[0]) + b0 * p->value_size[op->out];
    nr_act_forward(out_rows(p, op, b0), x, (enum nr_act)op->act, nb * op->dim[0], op->dim[1]);
}

static inline NR_ALWAYS_INLINE void dot_forward_impl(enum nr_simd_level level, struct run_ctx *c,
                                                     int oi, int64_t b0, int64_t nb)
{
    (void)level;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    float *y = out_rows(p, op, b0);
    int64_t so = p->value_size[op->out];
    int64_t xr = op->dim[0], xc = op->dim[1], yr = op->dim[2], yc = op->dim[3];
    int64_t ax = op->dim[4], ay = op->dim[5];
    int64_t fa = dot_free(xr, xc, ax), fb = dot_free(yr, yc, ay), cc = dot_contract(xr, xc, ax);
    int64_t sx = xr * xc, sy = yr * yc;
    int64_t ss = p->op_scratch_size[oi];
    for (int64_t b = 0; b < nb; b++) {
        float *sc = p->op_scratch[oi] + (b0 + b) * ss;
        float *at = sc, *bt = sc + fa * cc, *na = bt + fb * cc, *nbv = na + fa;
        dot_load(at, act_of(p, op->in[0]) + (b0 + b) * sx, xr, xc, ax);
        dot_load(bt, act_of(p, op->in[1]) + (b0 + b) * sy, yr, yc, ay);
        if (op->flag) {
            for (int64_t i = 0; i < fa; i++) {
                float nrm = sqrtf(nr_dot(at + i * cc, at + i * cc, cc));
                nrm = nrm > 1e-12f ? nrm : 1e-12f;
                na[i] = nrm;
                for (int64_t k = 0; k < cc; k++)
                    at[i * cc + k] /= nrm;
            }
            for (int64_t j = 0; j < fb; j++) {
                float nrm = sqrtf(nr_dot(bt + j * cc, bt + j * cc, cc));
                nrm = nrm > 1e-12f ? nrm : 1e-12f;
                nbv[j] = nrm;
                for (int64_t k = 0; k < cc; k++)
                    bt[j * cc + k] /= nrm;
            }
        }
        float *yb = y + b * so;
        for (int64_t i = 0; i < fa; i++)
            for (int64_t j = 0; j < fb; j++)
                yb[i * fb + j] = nr_dot(at + i * cc, bt + j * cc, cc);
    }
}
FORWARD_CLONES(dot_forward)

static inline NR_ALWAYS_INLINE void concat_forward_impl(enum nr_simd_level level, struct run_ctx *c,
                                                        int oi, int64_t b0, int64_t nb)
{
    (void)level;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    float *y = out_rows(p, op, b0);
    int64_t so = p->value_size[op->out], outer = op->dim[0];
    for (int64_t b = 0; b < nb; b++) {
        float *yb = y + b * so;
        for (int64_t o = 0; o < outer; o++)
            for (int i = 0; i < op->n_in; i++) {
                int64_t si = p->value_size[op->in[i]], inner = si / outer;
                copy_floats(yb, act_of(p, op->in[i]) + (b0 + b) * si + o * inner, inner);
                yb += inner;
            }
    }
}
FORWARD_CLONES(concat_forward)

/* ADD, SUB, MUL, AVERAGE: the inputs folded left to right with +, - or *
 * (AVERAGE: the sum times 1/n). kind is a constant in each caller. */
static inline NR_ALWAYS_INLINE void merge_forward(struct run_ctx *c, int oi, int64_t b0, int64_t nb,
                                                  enum nr_op_kind kind)
{
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    int64_t so = p->value_size[op->out], n = nb * so;
    float *restrict y = out_rows(p, op, b0);
    const float *restrict x0 = act_of(p, op->in[0]) + b0 * so;
    if (op->n_in >= 2) {
        /* y is a fresh value: it overlaps no input */
        const float *restrict x1 = act_of(p, op->in[1]) + b0 * so;
        if (kind == NR_OP_MUL)
            for (int64_t k = 0; k < n; k++)
                y[k] = x0[k] * x1[k];
        else if (kind == NR_OP_SUB)
            for (int64_t k = 0; k < n; k++)
                y[k] = x0[k] - x1[k];
        else
            for (int64_t k = 0; k < n; k++)
                y[k] = x0[k] + x1[k];
    } else {
        memmove(y, x0, (size_t)n * sizeof *y);
    }
    for (int i = 2; i < op->n_in; i++) {
        const float *xi = act_of(p, op->in[i]) + b0 * so;
        if (kind == NR_OP_MUL)
            for (int64_t k = 0; k < n; k++)
                y[k] *= xi[k];
        else if (kind == NR_OP_SUB)
            for (int64_t k = 0; k < n; k++)
                y[k] -= xi[k];
        else
            for (int64_t k = 0; k < n; k++)
                y[k] += xi[k];
    }
    if (kind == NR_OP_AVERAGE) {
        float inv = 1.0f / (float)op->n_in;
        for (int64_t k = 0; k < n; k++)
            y[k] *= inv;
    }
}

#define MERGE_FORWARD(NAME, KIND)                                                                \
    static inline NR_ALWAYS_INLINE void NAME##_impl(enum nr_simd_level level, struct run_ctx *c, \
                                                    int oi, int64_t b0, int64_t nb)              \
    {                                                                                            \
        (void)level;                                                                             \
        merge_forward(c, oi, b0, nb, KIND);                                                      \
    }                                                                                            \
    FORWARD_CLONES(NAME)
MERGE_FORWARD(add_forward, NR_OP_ADD)
MERGE_FORWARD(sub_forward, NR_OP_SUB)
MERGE_FORWARD(mul_forward, NR_OP_MUL)
MERGE_FORWARD(average_forward, NR_OP_AVERAGE)

static inline NR_ALWAYS_INLINE void
dropout_forward_impl(enum nr_simd_level level, struct run_ctx *c, int oi, int64_t b0, int64_t nb)
{
    (void)level;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    float *y = out_rows(p, op, b0);
    int64_t so = p->value_size[op->out];
    const float *x = act_of(p, op->in[0]) + b0 * so;
    if (!c->training || op->rate == 0.0f) {
        memmove(y, x, (size_t)(nb * so) * sizeof *y);
        return;
    }
    float keep = 1.0f / (1.0f - op->rate);
    float *mask = p->op_scratch[oi] + b0 * so;
    for (int64_t b = 0; b < nb; b++) {
        /* the mask of a sample depends on (seed, step, sample, op) only,
         * not on the thread count */
        struct nr_rng r;
        nr_rng_seed(&r, c->seed ^ ((uint64_t)c->step << 20) ^ (uint64_t)oi,
                    (uint64_t)sample_of(c, b0 + b));
        for (int64_t k = 0; k < so; k++) {
            float m = nr_rng_uniform(&r) < op->rate ? 0.0f : keep;
            mask[b * so + k] = m;
            y[b * so + k] = x[b * so + k] * m;
        }
    }
}
FORWARD_CLONES(dropout_forward)

/* ALIAS shares its input's storage. */
static void no_forward(struct run_ctx *c, int oi, int64_t b0, int64_t nb)
{
    (void)c, (void)oi, (void)b0, (void)nb;
}

#if NR_SIMD_X86
#define BY_LEVEL(NAME) {NAME##_base, NAME##_avx2, NAME##_avx512}
#else
#define BY_LEVEL(NAME) {NAME##_base, NAME##_base, NAME##_base}
#endif
#define ANY_LEVEL(FN) {FN, FN, FN}

static const forward_fn forward_kernels[NR_OP_COUNT][NR_SIMD_N_LEVELS] = {
    [NR_OP_INPUT] = BY_LEVEL(input_forward),     [NR_OP_EMBEDDING] = BY_LEVEL(embedding_forward),
    [NR_OP_DENSE] = ANY_LEVEL(dense_forward),    [NR_OP_ACT] = ANY_LEVEL(act_forward),
    [NR_OP_DOT] = BY_LEVEL(dot_forward),         [NR_OP_CONCAT] = BY_LEVEL(concat_forward),
    [NR_OP_ADD] = BY_LEVEL(add_forward),         [NR_OP_MUL] = BY_LEVEL(mul_forward),
    [NR_OP_DROPOUT] = BY_LEVEL(dropout_forward), [NR_OP_ALIAS] = ANY_LEVEL(no_forward),
    [NR_OP_SUB] = BY_LEVEL(sub_forward),         [NR_OP_AVERAGE] = BY_LEVEL(average_forward),
};

void nr_plan_forward(struct run_ctx *c, int64_t b0, int64_t b1)
{
    if (b1 <= b0)
        return;
    enum nr_simd_level level = nr_simd_level_now();
    for (int oi = 0; oi < c->p->d.n_ops; oi++)
        forward_kernels[c->p->ops[oi].kind][level](c, oi, b0, b1 - b0);
}

/* ------------------------------------------------------------------------ */
/* backward: the gradients of op oi's inputs (and parameters: into thread     */
/* ith's buffer) from its output's, for batch rows [b0, b0 + nb)             */

typedef void (*backward_fn)(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb);

/* The gradient of op oi's output for batch row b0 on. */
static inline const float *out_grad(const struct nr_plan *p, const struct nr_op *op, int64_t b0)
{
    return grad_of(p, op->out) + b0 * p->value_size[op->out];
}

/* INPUT and ALIAS have nothing to propagate; an EMBEDDING's table gradient is
 * gathered from its output's gradient afterwards (plan_sparse.c). */
static void no_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)c, (void)ith, (void)oi, (void)b0, (void)nb;
}

static void dense_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    float *tg = p->tgrad + (size_t)ith * (size_t)p->dense_total;
    int in = op->in[0];
    int64_t si = p->value_size[in];
    float *gx = p->needs_grad[in] ? grad_of(p, in) + b0 * si : NULL;
    const struct nr_param *w = &p->d.params[op->param[0]];
    float *gw = w->frozen ? NULL : tg + p->dense_off[op->param[0]];
    float *gb = op->param[1] >= 0 && !p->d.params[op->param[1]].frozen
                    ? tg + p->dense_off[op->param[1]]
                    : NULL;
    nr_dense_backward(gx, gw, gb, out_grad(p, op, b0), act_of(p, in) + b0 * si, w->w,
                      p->twt + (size_t)ith * (size_t)(p->wt_max ? p->wt_max : 1), nb * op->dim[0],
                      op->dim[1], op->dim[2]);
}

static void act_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)ith;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    int64_t so = p->value_size[op->out];
    if (p->needs_grad[op->in[0]])
        nr_act_backward(grad_of(p, op->in[0]) + b0 * so, out_grad(p, op, b0),
                        act_of(p, op->out) + b0 * so, (enum nr_act)op->act, nb * op->dim[0],
                        op->dim[1]);
}

static void dot_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)ith;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    int64_t so = p->value_size[op->out];
    const float *gy = out_grad(p, op, b0);
    int64_t xr = op->dim[0], xc = op->dim[1], yr = op->dim[2], yc = op->dim[3];
    int64_t ax = op->dim[4], ay = op->dim[5];
    int64_t fa = dot_free(xr, xc, ax), fb = dot_free(yr, yc, ay), cc = dot_contract(xr, xc, ax);
    int64_t ss = p->op_scratch_size[oi];
    for (int64_t b = 0; b < nb; b++) {
        float *sc = p->op_scratch[oi] + (b0 + b) * ss;
        float *at = sc, *bt = sc + fa * cc, *na = bt + fb * cc, *nbv = na + fa;
        float *ga = nbv + fb, *gbm = ga + fa * cc;
        const float *gyb = gy + b * so;
        memset(ga, 0, (size_t)((fa + fb) * cc) * sizeof *ga);
        for (int64_t i = 0; i < fa; i++)
            for (int64_t j = 0; j < fb; j++) {
                float gij = gyb[i * fb + j];
                nr_axpy(ga + i * cc, bt + j * cc, gij, cc);
                nr_axpy(gbm + j * cc, at + i * cc, gij, cc);
            }
        if (op->flag) {
            /* d(v/|v|) = (g - u (u.g)) / |v| with u = v/|v| */
            for (int64_t i = 0; i < fa; i++) {
                float ug = nr_dot(at + i * cc, ga + i * cc, cc);
                for (int64_t k = 0; k < cc; k++)
                    ga[i * cc + k] = (ga[i * cc + k] - at[i * cc + k] * ug) / na[i];
            }
            for (int64_t j = 0; j < fb; j++) {
                float ug = nr_dot(bt + j * cc, gbm + j * cc, cc);
                for (int64_t k = 0; k < cc; k++)
                    gbm[j * cc + k] = (gbm[j * cc + k] - bt[j * cc + k] * ug) / nbv[j];
            }
        }
        if (p->needs_grad[op->in[0]])
            dot_store_grad(grad_of(p, op->in[0]) + (b0 + b) * xr * xc, ga, xr, xc, ax);
        if (p->needs_grad[op->in[1]])
            dot_store_grad(grad_of(p, op->in[1]) + (b0 + b) * yr * yc, gbm, yr, yc, ay);
    }
}

static void concat_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)ith;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    int64_t so = p->value_size[op->out], outer = op->dim[0];
    const float *gy = out_grad(p, op, b0);
    for (int64_t b = 0; b < nb; b++) {
        const float *gb = gy + b * so;
        for (int64_t o = 0; o < outer; o++)
            for (int i = 0; i < op->n_in; i++) {
                int64_t si = p->value_size[op->in[i]], inner = si / outer;
                if (p->needs_grad[op->in[i]]) {
                    float *gx = grad_of(p, op->in[i]) + (b0 + b) * si + o * inner;
                    for (int64_t k = 0; k < inner; k++)
                        gx[k] += gb[k];
                }
                gb += inner;
            }
    }
}

/* ADD, SUB and AVERAGE are linear: each input's gradient is the output's
 * times its coefficient (1, -1 for SUB's second input, 1/n for AVERAGE). */
static void linear_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)ith;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    int64_t so = p->value_size[op->out], n = nb * so;
    const float *gy = out_grad(p, op, b0);
    float f = op->kind == NR_OP_AVERAGE ? 1.0f / (float)op->n_in : 1.0f;
    for (int i = 0; i < op->n_in; i++) {
        if (!p->needs_grad[op->in[i]])
            continue;
        float fi = (op->kind == NR_OP_SUB && i == 1) ? -1.0f : f;
        float *gx = grad_of(p, op->in[i]) + b0 * so;
        for (int64_t k = 0; k < n; k++)
            gx[k] += fi * gy[k];
    }
}

/* gx[k] += gy[k] * x[k]: gradient buffers never overlap activations. */
static void mul_add(float *restrict gx, const float *restrict gy, const float *restrict x,
                    int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        gx[k] += gy[k] * x[k];
}

static void mul_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)ith;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    int64_t so = p->value_size[op->out], n = nb * so;
    const float *gy = out_grad(p, op, b0);
    for (int i = 0; i < op->n_in; i++) {
        if (!p->needs_grad[op->in[i]])
            continue;
        float *gx = grad_of(p, op->in[i]) + b0 * so;
        if (op->n_in == 2) { /* the GMF product: one vectorizable pass */
            mul_add(gx, gy, act_of(p, op->in[1 - i]) + b0 * so, n);
            continue;
        }
        for (int64_t k = 0; k < n; k++) {
            float prod = gy[k];
            for (int j = 0; j < op->n_in; j++)
                if (j != i)
                    prod *= act_of(p, op->in[j])[b0 * so + k];
            gx[k] += prod;
        }
    }
}

static void dropout_backward(struct run_ctx *c, int ith, int oi, int64_t b0, int64_t nb)
{
    (void)ith;
    const struct nr_plan *p = c->p;
    const struct nr_op *op = &p->ops[oi];
    if (!p->needs_grad[op->in[0]])
        return;
    int64_t so = p->value_size[op->out], n = nb * so;
    const float *gy = out_grad(p, op, b0);
    float *gx = grad_of(p, op->in[0]) + b0 * so;
    if (op->rate == 0.0f) {
        for (int64_t k = 0; k < n; k++)
            gx[k] += gy[k];
    } else {
        const float *mask = p->op_scratch[oi] + b0 * so;
        for (int64_t k = 0; k < n; k++)
            gx[k] += gy[k] * mask[k];
    }
}

static const backward_fn backward_kernels[NR_OP_COUNT] = {
    [NR_OP_INPUT] = no_backward,        [NR_OP_EMBEDDING] = no_backward,
    [NR_OP_DENSE] = dense_backward,     [NR_OP_ACT] = act_backward,
    [NR_OP_DOT] = dot_backward,         [NR_OP_CONCAT] = concat_backward,
    [NR_OP_ADD] = linear_backward,      [NR_OP_MUL] = mul_backward,
    [NR_OP_DROPOUT] = dropout_backward, [NR_OP_ALIAS] = no_backward,
    [NR_OP_SUB] = linear_backward,      [NR_OP_AVERAGE] = linear_backward,
};

void nr_plan_backward(struct run_ctx *c, int ith, int64_t b0, int64_t b1)
{
    const struct nr_plan *p = c->p;
    if (b1 <= b0)
        return;
    for (int oi = p->d.n_ops - 1; oi >= 0; oi--)
        if (!p->skip_backward[oi] && p->needs_grad[p->ops[oi].out])
            backward_kernels[p->ops[oi].kind](c, ith, oi, b0, b1 - b0);
}
