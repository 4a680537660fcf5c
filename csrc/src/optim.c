#include "neurec/nr_optim.h"
#include "neurec/nr_simd.h"

#include <math.h>
#include <stddef.h>

/* The element loops below take every hyper-parameter as a local and every
 * array as restrict so that GCC vectorizes them (the build has
 * -fno-strict-aliasing, under which a store through a float pointer would
 * otherwise force the optimizer struct to be re-read each iteration). */
static inline __attribute__((always_inline)) void
adam_loop(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
          int64_t n, float alpha, float c1, float c2, float eps, float two_l2)
{
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + two_l2 * w[i];
        float mi = m[i] + (gi - m[i]) * c1;
        float vi = v[i] + (gi * gi - v[i]) * c2;
        m[i] = mi;
        v[i] = vi;
        w[i] -= alpha * mi / (sqrtf(vi) + eps);
    }
}

static inline __attribute__((always_inline)) void
amsgrad_loop(float *restrict w, const float *restrict g, float *restrict m, float *restrict v,
             float *restrict vh, int64_t n, float alpha, float c1, float c2, float eps,
             float two_l2)
{
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] + two_l2 * w[i];
        float mi = m[i] + (gi - m[i]) * c1;
        float vi = v[i] + (gi * gi - v[i]) * c2;
        float hi = vh[i] > vi ? vh[i] : vi;
        m[i] = mi;
        v[i] = vi;
        vh[i] = hi;
        w[i] -= alpha * mi / (sqrtf(hi) + eps);
    }
}

/* Adam's step size at step t: lr * sqrt(1 - b2^t) / (1 - b1^t). */
static inline float adam_alpha(const struct nr_optim *o, int64_t t)
{
    const struct nr_optim_tables *tb = o->tables;
    if (t < 1)
        return 0.0f; /* no step has been taken: nothing to correct (and no table index < 0) */
    if (tb && tb->corr && t < tb->len)
        return o->lr * tb->corr[t];
    if (tb && tb->corr_saturated)
        return o->lr; /* beta^t is below float precision: the correction is 1 */
    return (float)((double)o->lr * sqrt(1.0 - pow(o->beta2, (double)t)) /
                   (1.0 - pow(o->beta1, (double)t)));
}

/* Update n contiguous values w[0..n) with gradient g, state slots s0..s2 at the
 * same offset; t is the step count used for Adam's bias correction. */
static inline __attribute__((always_inline)) void
step_block(const struct nr_optim *o, float *restrict w, const float *restrict g, float *restrict s0,
           float *restrict s1, float *restrict s2, int64_t n, int64_t t, float l2)
{
    const float lr = o->lr, two_l2 = 2.0f * l2, eps = o->epsilon;
    switch (o->kind) {
    case NR_OPTIM_SGD: {
        const float mu = o->momentum;
        if (mu == 0.0f) {
            for (int64_t i = 0; i < n; i++)
                w[i] -= lr * (g[i] + two_l2 * w[i]);
        } else if (o->nesterov) {
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + two_l2 * w[i];
                float v = mu * s0[i] - lr * gi;
                s0[i] = v;
                w[i] += mu * v - lr * gi;
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + two_l2 * w[i];
                float v = mu * s0[i] - lr * gi;
                s0[i] = v;
                w[i] += v;
            }
        }
        break;
    }
    case NR_OPTIM_ADAM: {
        const float alpha = adam_alpha(o, t), c1 = 1.0f - o->beta1, c2 = 1.0f - o->beta2;
        if (!o->amsgrad)
            adam_loop(w, g, s0, s1, n, alpha, c1, c2, eps, two_l2);
        else
            amsgrad_loop(w, g, s0, s1, s2, n, alpha, c1, c2, eps, two_l2);
        break;
    }
    case NR_OPTIM_ADAGRAD:
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + two_l2 * w[i];
            float a = s0[i] + gi * gi;
            s0[i] = a;
            w[i] -= lr * gi / sqrtf(a + eps);
        }
        break;
    case NR_OPTIM_RMSPROP: {
        const float rho = o->rho, mu = o->momentum;
        const int centered = o->centered;
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + two_l2 * w[i];
            float v = rho * s0[i] + (1.0f - rho) * gi * gi;
            s0[i] = v;
            float denom = v;
            if (centered) {
                float mg = rho * s2[i] + (1.0f - rho) * gi;
                s2[i] = mg;
                denom = v - mg * mg;
            }
            float inc = lr * gi / sqrtf(denom + eps);
            if (mu > 0.0f) {
                float mom = mu * s1[i] + inc;
                s1[i] = mom;
                w[i] -= mom;
            } else {
                w[i] -= inc;
            }
        }
        break;
    }
    }
}

/* The bases of the catch-up powers: p1 = a1^s, p2 = a2^s, geo = sum_{j<=s} r^j. */
static void decay_bases(const struct nr_optim *o, double *a1, double *a2, double *r)
{
    if (o->kind == NR_OPTIM_ADAM) {
        *a1 = o->beta1;
        *a2 = o->beta2;
        *r = o->amsgrad ? o->beta1 : o->beta1 / sqrt((double)o->beta2);
    } else {
        *a1 = o->momentum;
        *a2 = o->kind == NR_OPTIM_RMSPROP ? o->rho : 0.0;
        *r = o->momentum;
    }
}

void nr_optim_tables_fill(struct nr_optim_tables *tb, const struct nr_optim *o)
{
    double a1, a2, r;
    decay_bases(o, &a1, &a2, &r);
    double p1 = 1.0, p2 = 1.0, pr = 1.0, geo = 0.0, b1t = 1.0, b2t = 1.0;
    for (int64_t s = 0; s < tb->len; s++) {
        if (s > 0) {
            p1 *= a1;
            p2 *= a2;
            pr *= r;
            geo += pr;
            b1t *= o->beta1;
            b2t *= o->beta2;
        }
        tb->p1[s] = (float)p1;
        tb->p2[s] = (float)p2;
        tb->geo[s] = (float)geo;
        tb->corr[s] = s == 0 ? 0.0f : (float)(sqrt(1.0 - b2t) / (1.0 - b1t));
    }
    tb->corr_saturated = b1t < 1e-9 && b2t < 1e-9;
}

/* a^s and sum_{j=1..s} r^j, from the tables or computed */
static void powers(const struct nr_optim *o, int64_t s, float *p1, float *p2, float *geo)
{
    const struct nr_optim_tables *tb = o->tables;
    if (s < 0)
        s = 0; /* callers pass s >= 0; never index a table below 0 */
    if (tb && s < tb->len) {
        *p1 = tb->p1[s];
        *p2 = tb->p2[s];
        *geo = tb->geo[s];
        return;
    }
    double a1, a2, r;
    decay_bases(o, &a1, &a2, &r);
    *p1 = (float)pow(a1, (double)s);
    *p2 = (float)pow(a2, (double)s);
    *geo = r < 1.0 ? (float)(r * (1.0 - pow(r, (double)s)) / (1.0 - r)) : (float)s;
}

/* Bring a row's state forward over s skipped steps (see nr_optim.h). */
static inline __attribute__((always_inline)) void
catch_up_row(const struct nr_optim *o, float *restrict w, float *restrict s0, float *restrict s1,
             float *restrict s2, int64_t n, int64_t s, int64_t t)
{
    float p1, p2, geo;
    powers(o, s, &p1, &p2, &geo);
    switch (o->kind) {
    case NR_OPTIM_SGD:
        if (o->momentum > 0.0f && s0) {
            const float f = o->nesterov ? o->momentum * geo : geo;
            for (int64_t i = 0; i < n; i++) {
                w[i] += f * s0[i];
                s0[i] *= p1;
            }
        }
        break;
    case NR_OPTIM_ADAM: {
        const float f = adam_alpha(o, t) * geo, eps = o->epsilon;
        const float *restrict den = o->amsgrad ? s2 : s1;
        for (int64_t i = 0; i < n; i++)
            w[i] -= f * s0[i] / (sqrtf(den[i]) + eps);
        for (int64_t i = 0; i < n; i++) {
            s0[i] *= p1;
            s1[i] *= p2;
        }
        break;
    }
    case NR_OPTIM_RMSPROP: {
        const int centered = o->centered && s2, mom = o->momentum > 0.0f && s1;
        for (int64_t i = 0; i < n; i++)
            s0[i] *= p2;
        if (centered)
            for (int64_t i = 0; i < n; i++)
                s2[i] *= p2;
        if (mom)
            for (int64_t i = 0; i < n; i++) {
                w[i] -= geo * s1[i];
                s1[i] *= p1;
            }
        break;
    }
    case NR_OPTIM_ADAGRAD: break;
    }
}

static float *slot_at(float *s, int64_t off) { return s ? s + off : NULL; }

static inline NR_ALWAYS_INLINE void step_dense_impl(enum nr_simd_level level,
                                                    const struct nr_optim *o, struct nr_param *p,
                                                    const float *g, int64_t t)
{
    (void)level;
    step_block(o, p->w, g, p->slot[0], p->slot[1], p->slot[2], p->rows * p->cols, t, p->l2);
}

/* The rows are scattered over tables that may be far larger than the caches:
 * ask for every line of the row this many places ahead (parameters, optimizer
 * slots, step count) while the current one is updated. */
#define NR_ROW_PREFETCH 4

static inline void prefetch_row(const struct nr_param *p, int64_t r)
{
    int64_t off = r * p->cols, bytes = p->cols * (int64_t)sizeof(float);
    for (int64_t b = 0; b < bytes; b += 64) {
        __builtin_prefetch((const char *)(p->w + off) + b, 1);
        for (int k = 0; k < 3; k++)
            if (p->slot[k])
                __builtin_prefetch((const char *)(p->slot[k] + off) + b, 1);
    }
    if (p->row_steps)
        __builtin_prefetch(p->row_steps + r, 1);
}

static inline NR_ALWAYS_INLINE void step_rows_impl(enum nr_simd_level level,
                                                   const struct nr_optim *o, struct nr_param *p,
                                                   const int64_t *ids, int64_t n, const float *g,
                                                   int64_t t)
{
    (void)level;
    int64_t c = p->cols;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = ids[i];
        if (i + NR_ROW_PREFETCH < n)
            prefetch_row(p, ids[i + NR_ROW_PREFETCH]);
        int64_t off = r * c;
        float *s0 = slot_at(p->slot[0], off), *s1 = slot_at(p->slot[1], off),
              *s2 = slot_at(p->slot[2], off);
        int64_t tr = t;
        if (o->catch_up && p->row_steps) {
            /* a step count outside [1, t) (a corrupted or crafted state) means no catch-up */
            int64_t last = p->row_steps[r];
            if (last > 0 && last < t - 1)
                catch_up_row(o, p->w + off, s0, s1, s2, c, t - last - 1, t);
            p->row_steps[r] = t;
        } else if (p->row_steps) {
            /* a row cannot have taken more steps than the optimizer (nor fewer than 0) */
            int64_t own = p->row_steps[r];
            tr = own >= 0 && own < t ? own + 1 : t;
            p->row_steps[r] = tr;
        } else {
            tr = 1;
        }
        step_block(o, p->w + off, g + i * c, s0, s1, s2, c, tr, p->l2);
    }
}

/* Compiled once per SIMD level (nr_simd.h): the element loops above are
 * inlined into each clone and vectorised for its instruction set. */
NR_SIMD_CLONES(step_dense,
               (const struct nr_optim *o, struct nr_param *p, const float *g, int64_t t),
               (o, p, g, t))
NR_SIMD_CLONES(step_rows,
               (const struct nr_optim *o, struct nr_param *p, const int64_t *ids, int64_t n,
                const float *g, int64_t t),
               (o, p, ids, n, g, t))

void nr_optim_step_dense(const struct nr_optim *o, struct nr_param *p, const float *g, int64_t t)
{
    NR_SIMD_DISPATCH(step_dense, (o, p, g, t));
}

void nr_optim_step_rows(const struct nr_optim *o, struct nr_param *p, const int64_t *ids, int64_t n,
                        const float *g, int64_t t)
{
    NR_SIMD_DISPATCH(step_rows, (o, p, ids, n, g, t));
}
