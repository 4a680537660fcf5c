/* The loss, its gradient and the fit metrics. */
#include "plan_impl.h"

#include <math.h>
#include <stddef.h>

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* Loss, its gradient (written to the output or logits grad) and metrics for a block.
 * A sample of weight w contributes w times its loss and gradient (Keras's
 * "sum_over_batch_size": the batch loss is sum w_i l_i / batch size); the metric
 * sums stay unweighted, as Keras's compiled `metrics`. Without weights w is 1 and
 * every product is exact. */
void nr_plan_loss(struct run_ctx *c, int64_t b0, int64_t b1, struct nr_fit_stats *st)
{
    struct nr_plan *p = c->p;
    int outv = p->d.output;
    int64_t P = p->value_size[outv];
    const float *pred = act_of(p, outv);
    int fused = p->d.logits >= 0;
    const float *z = fused ? act_of(p, p->d.logits) : NULL;
    float *g = grad_of(p, fused ? p->d.logits : outv);
    const struct nr_array *y = c->y;
    int64_t yw = y->width;
    float scale = 1.0f / (float)((c->norm > 0 ? c->norm : c->bs) * P);
    const float eps = 1e-7f;
    for (int64_t b = b0; b < b1; b++) {
        int64_t s = sample_of(c, b);
        float ws = c->w ? c->w[s] * scale : scale;
        double lsum = 0.0;
        for (int64_t j = 0; j < P; j++) {
            int64_t k = b * P + j;
            float t = read_f(y, s * yw + (yw == 1 ? 0 : j));
            float pr = pred[k];
            float l, d;
            switch (p->d.loss) {
            case NR_LOSS_BCE:
                if (fused) {
                    float zz = z[k];
                    l = fmaxf(zz, 0.0f) - zz * t + log1pf(expf(-fabsf(zz)));
                    d = pr - t;
                } else {
                    float pc = clampf(pr, eps, 1.0f - eps);
                    l = -(t * logf(pc) + (1.0f - t) * logf(1.0f - pc));
                    d = (pr > eps && pr < 1.0f - eps) ? (pc - t) / (pc * (1.0f - pc)) : 0.0f;
                }
                break;
            case NR_LOSS_BCE_LOGITS:
                l = fmaxf(pr, 0.0f) - pr * t + log1pf(expf(-fabsf(pr)));
                d = (pr >= 0.0f ? 1.0f / (1.0f + expf(-pr)) : expf(pr) / (1.0f + expf(pr))) - t;
                break;
            case NR_LOSS_MSE:
                l = (pr - t) * (pr - t);
                d = 2.0f * (pr - t);
                break;
            case NR_LOSS_MAE:
            default:
                l = fabsf(pr - t);
                d = pr > t ? 1.0f : (pr < t ? -1.0f : 0.0f);
                break;
            }
            g[k] = d * ws;
            lsum += l;
            float prob = p->d.loss == NR_LOSS_BCE_LOGITS ? 1.0f / (1.0f + expf(-pr)) : pr;
            st->correct += (float)(prob > 0.5f) == t;
            st->sq_err += (double)(pr - t) * (pr - t);
            st->abs_err += fabs((double)(pr - t));
            if (prob == prob) { /* a NaN prediction (diverged weights) has no bin */
                int bin = (int)(clampf(prob, 0.0f, 1.0f) * (NR_AUC_BINS - 1) + 0.5f);
                st->auc_pos[bin] += t;
                st->auc_neg[bin] += 1.0f - t;
            }
        }
        st->loss_sum += (c->w ? (double)c->w[s] : 1.0) * (lsum / (double)P);
        st->samples += 1.0;
        st->elements += (double)P;
    }
}

void nr_fit_stats_add(struct nr_fit_stats *dst, const struct nr_fit_stats *s)
{
    dst->loss_sum += s->loss_sum;
    dst->samples += s->samples;
    dst->elements += s->elements;
    dst->correct += s->correct;
    dst->sq_err += s->sq_err;
    dst->abs_err += s->abs_err;
    for (int i = 0; i < NR_AUC_BINS; i++) {
        dst->auc_pos[i] += s->auc_pos[i];
        dst->auc_neg[i] += s->auc_neg[i];
    }
}
