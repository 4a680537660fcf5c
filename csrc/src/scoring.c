#include "neurec/nr_scoring.h"
#include "neurec/nr_kernels.h"
#include "neurec/nr_simd.h"
#include "neurec/nr_topk.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_BLOCK 1024
#define USER_BLOCK 16
/* Row stride of the item block and the score block: ITEM_BLOCK plus one cache
 * line, so the dim rows the micro-kernel walks down are not 4 KiB apart (which
 * maps them all to one L1 set and halves the product's speed). */
#define LD (ITEM_BLOCK + 16)

struct score_ctx {
    const struct nr_score_args *a;
    atomic_int status;
};

static void score_worker(void *vctx, int ith, int nth)
{
    struct score_ctx *c = vctx;
    const struct nr_score_args *a = c->a;
    int64_t u0 = a->n_users * ith / nth, u1 = a->n_users * (ith + 1) / nth;
    if (u1 <= u0)
        return;
    float *vt = malloc((size_t)(a->dim * LD) * sizeof *vt);
    float *sc = malloc((size_t)(USER_BLOCK * LD) * sizeof *sc);
    struct nr_topk *heaps = malloc((size_t)(u1 - u0) * sizeof *heaps);
    if (!vt || !sc || !heaps) {
        atomic_store(&c->status, NR_ERR_NOMEM);
        free(vt);
        free(sc);
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
                vt[cc * LD + j] = a->item_vecs[(i0 + j) * a->dim + cc];
        for (int64_t ub = u0; ub < u1; ub += USER_BLOCK) {
            int64_t mu = u1 - ub < USER_BLOCK ? u1 - ub : USER_BLOCK;
            /* scores of mu users x nb items: a register-tiled product (BLAS-like) */
            for (int64_t r = 0; r < mu; r++) {
                if (a->item_bias)
                    memcpy(sc + r * LD, a->item_bias + i0, (size_t)nb * sizeof *sc);
                else
                    memset(sc + r * LD, 0, (size_t)nb * sizeof *sc);
            }
            nr_gemm(sc, LD, a->user_vecs + ub * a->dim, a->dim, 1, vt, LD, mu, nb, a->dim, 1);
            for (int64_t r = 0; r < mu; r++) {
                int64_t u = ub + r;
                const int32_t *ex = NULL;
                int64_t n_ex = 0;
                if (a->excl_indptr && a->excl_rows && a->excl_rows[u] >= 0) {
                    int64_t row = a->excl_rows[u];
                    ex = a->excl_indices + a->excl_indptr[row];
                    n_ex = a->excl_indptr[row + 1] - a->excl_indptr[row];
                }
                nr_topk_push_block(&heaps[u - u0], sc + r * LD, nb, i0, ex, n_ex);
            }
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
    free(sc);
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
