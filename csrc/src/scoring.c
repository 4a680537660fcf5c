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

/* From this k on, the buffered top-K (nr_topkb) is faster than the heap (one thread,
 * 64 factors, random vectors: even at k = 10 over 3,706, 100,000 and 1M items, ahead
 * from k = 16 on, by 1.4x at k = 24 and 4-5x at k = 200 over 3,706 items). */
#define BUFFERED_K 16
/* The buffered top-K's keys per thread, at most (bytes): users are taken in groups. */
#define BUFFER_BYTES ((int64_t)8 << 20)

struct score_ctx {
    const struct nr_score_args *a;
    atomic_int status;
};

/* The k best of users [g0, g1) into the outputs: heaps over the output arrays, or
 * buffers of keys (nr_topkb) when bufs is not NULL. */
static void score_group(const struct nr_score_args *a, int64_t g0, int64_t g1, float *vt, float *sc,
                        struct nr_topk *heaps, struct nr_topkb *bufs, uint64_t *keys)
{
    for (int64_t u = g0; u < g1; u++) {
        if (bufs) {
            bufs[u - g0] = (struct nr_topkb){.k = a->k, .keys = keys + (u - g0) * 2 * a->k};
            nr_topkb_reset(&bufs[u - g0]);
            continue;
        }
        struct nr_topk *h = &heaps[u - g0];
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
        for (int64_t ub = g0; ub < g1; ub += USER_BLOCK) {
            int64_t mu = g1 - ub < USER_BLOCK ? g1 - ub : USER_BLOCK;
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
                if (a->excl_indptr && a->excl_rows && a->excl_rows[u] >= 0) {
                    /* excluded items score NaN, which never enters: one push of the block,
                     * not one per gap between exclusions (a few items each) */
                    const int64_t row = a->excl_rows[u];
                    const int32_t *ex = a->excl_indices + a->excl_indptr[row];
                    const int64_t n_ex = a->excl_indptr[row + 1] - a->excl_indptr[row];
                    int64_t lo = 0, hi = n_ex;
                    while (lo < hi) {
                        const int64_t mid = lo + (hi - lo) / 2;
                        if ((int64_t)ex[mid] < i0)
                            lo = mid + 1;
                        else
                            hi = mid;
                    }
                    for (int64_t p = lo; p < n_ex; p++) {
                        const int64_t e = (int64_t)ex[p] - i0;
                        if (e >= nb)
                            break;
                        if (e >= 0) /* (an unsorted list is not read out of bounds) */
                            sc[r * LD + e] = NAN;
                    }
                }
                if (bufs)
                    nr_topkb_push_block(&bufs[u - g0], sc + r * LD, nb, i0, NULL, 0);
                else
                    nr_topk_push_block(&heaps[u - g0], sc + r * LD, nb, i0, NULL, 0);
            }
        }
    }
    for (int64_t u = g0; u < g1; u++) {
        if (bufs) {
            nr_topkb_finish(&bufs[u - g0], a->out_scores + u * a->k, a->out_ids + u * a->k,
                            !a->any_order);
            continue;
        }
        struct nr_topk *h = &heaps[u - g0];
        if (!a->any_order)
            nr_topk_sort(h);
        for (int64_t j = h->size; j < a->k; j++) {
            h->ids[j] = -1;
            h->scores[j] = -INFINITY;
        }
    }
}

static void score_worker(void *vctx, int ith, int nth)
{
    struct score_ctx *c = vctx;
    const struct nr_score_args *a = c->a;
    int64_t u0 = a->n_users * ith / nth, u1 = a->n_users * (ith + 1) / nth;
    if (u1 <= u0)
        return;
    const int buffered = a->k >= BUFFERED_K && a->n_items <= (int64_t)UINT32_MAX;
    int64_t group = u1 - u0;
    if (buffered) { /* bounded keys; the item blocks are transposed once per group */
        const int64_t g = BUFFER_BYTES / (2 * a->k * (int64_t)sizeof(uint64_t));
        group = g < USER_BLOCK ? USER_BLOCK : g < group ? g : group;
    }
    float *vt = malloc((size_t)(a->dim * LD) * sizeof *vt);
    float *sc = malloc((size_t)(USER_BLOCK * LD) * sizeof *sc);
    struct nr_topk *heaps = buffered ? NULL : malloc((size_t)group * sizeof *heaps);
    struct nr_topkb *bufs = buffered ? malloc((size_t)group * sizeof *bufs) : NULL;
    uint64_t *keys = buffered ? malloc((size_t)(group * 2 * a->k) * sizeof *keys) : NULL;
    if (!vt || !sc || (!heaps && !bufs) || (buffered && !keys)) {
        atomic_store(&c->status, NR_ERR_NOMEM);
    } else {
        for (int64_t g0 = u0; g0 < u1; g0 += group)
            score_group(a, g0, u1 - g0 < group ? u1 : g0 + group, vt, sc, heaps, bufs, keys);
    }
    free(vt);
    free(sc);
    free(heaps);
    free(bufs);
    free(keys);
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
