/*
 * nr_sampler.h: negative sampling for implicit feedback, run once per epoch.
 *
 * For every training positive (u, i) the sampler writes 1 + num_neg rows:
 * (u, i, 1) followed by num_neg rows (u, j, 0) where each j is an item u has
 * not interacted with (per the CSR matrix), drawn uniformly or in proportion to
 * a popularity weight. The CSR matrix and the outputs are caller-owned.
 *
 * Rows of the CSR matrix must be sorted ascending (binary search). Positives
 * are split into fixed blocks with their own random stream, so the result
 * depends on seed only, not on the thread count.
 */
#ifndef NR_SAMPLER_H
#define NR_SAMPLER_H

#include <stdint.h>

#include "neurec/nr_pool.h"
#include "neurec/nr_status.h"

struct nr_csr {
    const int64_t *indptr;  /* n_rows + 1 */
    const int32_t *indices; /* sorted within each row */
    int64_t n_rows, n_cols;
};

/* Sample one epoch. cdf, if not NULL, is the cumulative item weight (n_cols
 * doubles, last = total) for popularity sampling; NULL samples uniformly.
 * A user for whom rejection keeps failing (one who has seen most items) gets
 * an exact draw among the unseen items: by weight, or uniformly when none of
 * them has any weight.
 * Errors: NR_ERR_INDEX (a positive's user or item is out of range),
 * NR_ERR_VALUE (a user with a positive has interacted with every item). */
enum nr_status nr_sampler_epoch(const struct nr_csr *seen, const int64_t *pos_users,
                                const int64_t *pos_items, int64_t n_pos, int64_t num_neg,
                                const double *cdf, uint64_t seed, struct nr_pool *pool,
                                int64_t *out_users, int64_t *out_items, float *out_labels);

/* Positives per block of nr_sampler_epoch: each block draws from its own
 * random stream (the seed and the block's index), whatever the thread count. */
#define NR_SAMPLER_BLOCK 4096

/* nr_sampler_epoch for positives first..stop-1 only (their output rows
 * first * (1 + num_neg) .. stop * (1 + num_neg) - 1; the rest is not written):
 * the same bits as the whole epoch's, so processes can each draw a share.
 * first and stop are multiples of NR_SAMPLER_BLOCK (stop may be n_pos);
 * NR_ERR_VALUE otherwise. */
enum nr_status nr_sampler_epoch_part(const struct nr_csr *seen, const int64_t *pos_users,
                                     const int64_t *pos_items, int64_t n_pos, int64_t num_neg,
                                     const double *cdf, uint64_t seed, int64_t first, int64_t stop,
                                     struct nr_pool *pool, int64_t *out_users, int64_t *out_items,
                                     float *out_labels);

/* Fill perm[0..n) with a uniformly random permutation of 0..n-1: Fisher-Yates
 * up to 2^16 values, above that Fisher-Yates within random buckets (see
 * sampler.c; the same permutation for a seed and n on every machine). */
void nr_sampler_permutation(int64_t *perm, int64_t n, uint64_t seed);
/* The same permutation with value i written as i | tags[i] << NR_PERM_TAG_SHIFT
 * (n < 2^NR_PERM_TAG_SHIFT; tags NULL: untagged): a data-parallel fit's sample
 * owners travel with the samples, so a rank finds its own in one sequential pass. */
#define NR_PERM_TAG_SHIFT 56
void nr_sampler_permutation_tagged(int64_t *perm, int64_t n, uint64_t seed, const uint8_t *tags);

#endif /* NR_SAMPLER_H */
