/*
 * nr_scoring.h: full-catalog scoring and top-K for dot-product models.
 *
 * score(u, i) = user_vecs[u] . item_vecs[i] + item_bias[i] for every item,
 * keeping the k best per user (nr_topk order: higher score first, ties to the
 * lower id), skipping each user's excluded items. Item vectors are processed
 * in blocks that stay in cache; each thread takes a range of users. The
 * caller owns every array; outputs are (n_users, k) and padded with id -1 and
 * score -inf when a user has fewer than k candidates. Selection: a heap
 * (nr_topk) for small k; for larger k (16 and up, fewer than 2^32 items) the
 * buffered top-K (nr_topkb), whose keys take 16 bytes per user and k: about
 * 8 MiB per thread at most (users in groups; at least 16 users a group); a
 * score of -0 is then returned as +0.
 */
#ifndef NR_SCORING_H
#define NR_SCORING_H

#include <stdint.h>

#include "neurec/nr_pool.h"
#include "neurec/nr_status.h"

struct nr_score_args {
    const float *user_vecs;   /* n_users * dim */
    const float *item_vecs;   /* n_items * dim */
    const float *item_bias;   /* n_items, or NULL */
    int64_t n_users, n_items, dim, k;
    const int64_t *excl_indptr;  /* CSR of excluded items, or NULL */
    const int32_t *excl_indices; /* sorted within each row */
    const int64_t *excl_rows;    /* CSR row of each user (-1: none), or NULL */
    int64_t *out_ids;            /* n_users * k */
    float *out_scores;           /* n_users * k */
    int any_order;               /* 0: best first; 1: the k best in any order, padding
                                    last (callers that sort them their own way) */
};

/* Score and select. Errors: NR_ERR_VALUE (k < 1 or negative sizes), NR_ERR_NOMEM. */
enum nr_status nr_score_topk(const struct nr_score_args *a, struct nr_pool *pool);

#endif /* NR_SCORING_H */
