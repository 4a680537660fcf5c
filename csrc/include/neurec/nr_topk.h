/*
 * nr_topk.h: streaming top-K selection over float32 scores.
 *
 * A struct nr_topk is a bounded min-heap over caller-owned storage: the
 * root is always the *worst* entry kept, so a new score is compared against
 * it once and, in the common case of a score that cannot enter, the heap is
 * never touched. Push scores block by block (one block per item range), then
 * sort once:
 *
 *     float s[10]; int64_t id[10];
 *     struct nr_topk h = { .k = 10, .size = 0, .scores = s, .ids = id };
 *     nr_topk_push_block(&h, row, n_items, 0, seen, n_seen);
 *     nr_topk_sort(&h);            // s[0..h.size) best first
 *
 * Order ("better than"): a higher score wins; equal scores go to the lower
 * id. NaN scores never enter. -inf is an ordinary (lowest) score.
 *
 * Thread safety: a heap is plain data; distinct heaps may be used from
 * distinct threads at the same time. Nothing here allocates.
 */
#ifndef NR_TOPK_H
#define NR_TOPK_H

#include <stdint.h>

#include "neurec/nr_status.h"

struct nr_topk {
    int64_t k;       /* capacity: the number of entries kept (>= 0) */
    int64_t size;    /* entries held now, 0 <= size <= k */
    float *scores;   /* caller-owned storage of k scores */
    int64_t *ids;    /* caller-owned storage of k ids */
};

/* Empty the heap (size = 0). The storage is kept. */
void nr_topk_reset(struct nr_topk *h);

/* Offer scores[j] for item id first_id + j, j in [0, n). Ids listed in
 * excluded (n_excluded entries, ascending; duplicates and ids outside the
 * block are harmless) and NaN scores are skipped. excluded may be NULL when
 * n_excluded == 0. Reads the arrays, never keeps pointers to them. If
 * excluded is not sorted, some listed ids may be let through (memory stays
 * safe). The heap must not have been sorted since its last reset. */
void nr_topk_push_block(struct nr_topk *h, const float *scores, int64_t n, int64_t first_id,
                        const int32_t *excluded, int64_t n_excluded);

/* Sort the h->size entries in place, best first (descending score, equal
 * scores by ascending id). Afterwards the storage is no longer a heap: call
 * nr_topk_reset before pushing again. */
void nr_topk_sort(struct nr_topk *h);

/* Top-k of every row of a row-major float32 matrix.
 *
 * Row r holds the scores of item ids 0..n_cols-1 and starts at
 * scores + r * row_stride (row_stride in elements; 0 makes every row read
 * the same scores, e.g. one popularity vector for many users).
 *
 * Exclusion (optional): when indptr is not NULL, row r skips the item ids
 * indices[indptr[u] .. indptr[u+1]) of CSR row u = row_users[r] (or u = r
 * when row_users is NULL); indices must be ascending within a CSR row.
 * indptr has n_csr_rows + 1 non-decreasing entries.
 *
 * Output: out_ids[r*k .. r*k+k) and out_scores[r*k .. r*k+k) (caller-owned,
 * n_rows * k entries each) receive the row's best k entries, best first.
 * When a row has fewer than k candidates (exclusions, NaN, k > n_cols),
 * the remaining slots are padded with id -1 and score -inf.
 *
 * Rows are independent: to split work across threads, call this on disjoint
 * row ranges (offset scores, row_users and the outputs).
 *
 * Errors: NR_ERR_VALUE (k, n_rows or n_cols negative, or row_stride < 0),
 * NR_ERR_INDEX (a row's CSR row is outside [0, n_csr_rows)); rows before
 * the failing one are already written.
 */
enum nr_status nr_topk_rows(const float *scores, int64_t n_rows, int64_t n_cols, int64_t row_stride,
                            int64_t k, const int64_t *indptr, const int32_t *indices,
                            int64_t n_csr_rows, const int64_t *row_users, int64_t *out_ids,
                            float *out_scores);

#endif /* NR_TOPK_H */
