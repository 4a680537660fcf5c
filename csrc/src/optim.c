#include "neurec/nr_optim.h"
#include "neurec/nr_simd.h"

#include <math.h>
#include <stddef.h>

/* Update n contiguous values w[0..n) with gradient g, state slots s0..s2 at the
 * same offset; t is the step count used for Adam's bias correction. */
NR_MULTIVERSION
static void step_block(const struct nr_optim *o, float *restrict w, const float *restrict g,
                       float *restrict s0, float *restrict s1, float *restrict s2,
                       int64_t n, int64_t t, float l2)
{
    float lr = o->lr;
    float two_l2 = 2.0f * l2;
    switch (o->kind) {
    case NR_OPTIM_SGD:
        if (o->momentum == 0.0f) {
            for (int64_t i = 0; i < n; i++)
                w[i] -= lr * (g[i] + two_l2 * w[i]);
        } else {
            float mu = o->momentum;
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + two_l2 * w[i];
                float v = mu * s0[i] - lr * gi;
                s0[i] = v;
                w[i] += o->nesterov ? mu * v - lr * gi : v;
            }
        }
        break;
    case NR_OPTIM_ADAM: {
        float alpha;
        if (o->adam_corr && t < o->adam_corr_len) {
            alpha = lr * o->adam_corr[t];
        } else {
            double b1t = pow((double)o->beta1, (double)t);
            double b2t = pow((double)o->beta2, (double)t);
            alpha = (float)((double)lr * sqrt(1.0 - b2t) / (1.0 - b1t));
        }
        float b1 = o->beta1, b2 = o->beta2, eps = o->epsilon;
        float c1 = 1.0f - b1, c2 = 1.0f - b2;
        if (!o->amsgrad) {
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + two_l2 * w[i];
                float m = s0[i] + (gi - s0[i]) * c1;
                float v = s1[i] + (gi * gi - s1[i]) * c2;
                s0[i] = m;
                s1[i] = v;
                w[i] -= alpha * m / (sqrtf(v) + eps);
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                float gi = g[i] + two_l2 * w[i];
                float m = s0[i] + (gi - s0[i]) * c1;
                float v = s1[i] + (gi * gi - s1[i]) * c2;
                float vh = s2[i] > v ? s2[i] : v;
                s0[i] = m;
                s1[i] = v;
                s2[i] = vh;
                w[i] -= alpha * m / (sqrtf(vh) + eps);
            }
        }
        (void)b1;
        (void)b2;
        break;
    }
    case NR_OPTIM_ADAGRAD:
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + two_l2 * w[i];
            float a = s0[i] + gi * gi;
            s0[i] = a;
            w[i] -= lr * gi / sqrtf(a + o->epsilon);
        }
        break;
    case NR_OPTIM_RMSPROP: {
        float rho = o->rho, eps = o->epsilon, mu = o->momentum;
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + two_l2 * w[i];
            float v = rho * s0[i] + (1.0f - rho) * gi * gi;
            s0[i] = v;
            float denom = v;
            if (o->centered) {
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

void nr_optim_adam_table(float *table, int64_t len, float beta1, float beta2)
{
    double b1t = 1.0, b2t = 1.0;
    if (len > 0)
        table[0] = 0.0f;
    for (int64_t t = 1; t < len; t++) {
        b1t *= (double)beta1;
        b2t *= (double)beta2;
        table[t] = (float)(sqrt(1.0 - b2t) / (1.0 - b1t));
    }
}

static float *slot_at(float *s, int64_t off) { return s ? s + off : NULL; }

void nr_optim_step_dense(const struct nr_optim *o, struct nr_param *p, const float *g, int64_t t)
{
    step_block(o, p->w, g, p->slot[0], p->slot[1], p->slot[2], p->rows * p->cols, t, p->l2);
}

void nr_optim_step_rows(const struct nr_optim *o, struct nr_param *p, const int64_t *ids,
                        int64_t n, const float *g)
{
    int64_t c = p->cols;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = ids[i];
        int64_t off = r * c;
        int64_t t = 1;
        if (p->row_steps)
            t = ++p->row_steps[r];
        step_block(o, p->w + off, g + i * c, slot_at(p->slot[0], off), slot_at(p->slot[1], off),
                   slot_at(p->slot[2], off), c, t, p->l2);
    }
}
