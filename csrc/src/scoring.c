#include "neurec/nr_scoring.h"
#include "neurec/nr_kernels.h"
#include "neurec/nr_simd.h"
#include "neurec/nr_topk.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_BLOCK 1024

struct score_ctx {
    const struct nr_score_args *a;
    atomic_int status;
};

/* s[j] = bias[j] + sum_c u[c] * vt[c * nb + j]: axpy-shaped so it vectorises. */
NR_MULTIVERSION
static void score_block(float *restrict s, const float *restrict u, const float *restrict vt,
                        const float *restrict bias, int64_t nb, int64_t dim)
{
    if (bias)
        memcpy(s, bias, (size_t)nb * sizeof *s);
    else
        memset(s, 0, (size_t)nb * sizeof *s);
    for (int64_t c = 0; c < dim; c++) {
        float uc = u[c];
        const float *restrict row = vt + c * nb;
        for (int64_t j = 0; j < nb; j++)
            s[j] += uc * row[j];
    }
}

static void score_worker(void *vctx, int ith, int nth)
{
    struct score_ctx *c = vctx;
    const struct nr_score_args *a = c->a;
    int64_t u0 = a->n_users * ith / nth, u1 = a->n_users * (ith + 1) / nth;
    if (u1 <= u0)
        return;
    float *vt = malloc((size_t)(a->dim * ITEM_BLOCK) * sizeof *vt);
    float *s = malloc((size_t)ITEM_BLOCK * sizeof *s);
    struct nr_topk *heaps = malloc((size_t)(u1 - u0) * sizeof *heaps);
    if (!vt || !s || !heaps) {
        atomic_store(&c->status, NR_ERR_NOMEM);
        free(vt);
        free(s);
        free(heaps);
        return;
    }
    for (int64_t u = u0; u < u1; u++) {
        struct nr_topk *h = &heaps[u - u0];
        h->k = a->k;
        h->scores = a->out_scores + u * a->k;
        h->ids = a->out_ids + u * a->k;
        nr_topk_reset(h);
    }
    for (int64_t i0 = 0; i0 < a->n_items; i0 += ITEM_BLOCK) {
        int64_t nb = a->n_items - i0 < ITEM_BLOCK ? a->n_items - i0 : ITEM_BLOCK;
        for (int64_t j = 0; j < nb; j++)
            for (int64_t cc = 0; cc < a->dim; cc++)
                vt[cc * nb + j] = a->item_vecs[(i0 + j) * a->dim + cc];
        const float *bias = a->item_bias ? a->item_bias + i0 : NULL;
        for (int64_t u = u0; u < u1; u++) {
            score_block(s, a->user_vecs + u * a->dim, vt, bias, nb, a->dim);
            const int32_t *ex = NULL;
            int64_t n_ex = 0;
            if (a->excl_indptr && a->excl_rows && a->excl_rows[u] >= 0) {
                int64_t r = a->excl_rows[u];
                ex = a->excl_indices + a->excl_indptr[r];
                n_ex = a->excl_indptr[r + 1] - a->excl_indptr[r];
            }
            nr_topk_push_block(&heaps[u - u0], s, nb, i0, ex, n_ex);
        }
    }
    for (int64_t u = u0; u < u1; u++) {
        struct nr_topk *h = &heaps[u - u0];
        nr_topk_sort(h);
        for (int64_t j = h->size; j < a->k; j++) {
            h->ids[j] = -1;
            h->scores[j] = -INFINITY;
        }
    }
    free(vt);
    free(s);
    free(heaps);
}

enum nr_status nr_score_topk(const struct nr_score_args *a, struct nr_pool *pool)
{
    if (a->k < 1 || a->n_users < 0 || a->n_items < 0 || a->dim < 0)
        return NR_ERR_VALUE;
    struct score_ctx c = {.a = a};
    atomic_init(&c.status, NR_OK);
    nr_pool_run(pool, score_worker, &c);
    return (enum nr_status)atomic_load(&c.status);
}
