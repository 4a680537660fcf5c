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

/* A buffered top-K, for large k: the same selection and order as struct nr_topk, with
 * entries kept as one integer key each (the score's bits over the id) in a buffer of 2k.
 * A score that beats the k-th best known is appended; a full buffer is cut back to its k
 * best by a quickselect. That costs O(1) per entry appended, where the heap pays a
 * sift-down of log k unpredictable branches: for k of about 50 and more it is the faster.
 * The k-th best known lags behind the heap's root, so more scores are appended than a
 * heap takes in; for small k the heap wins.
 *
 *     uint64_t keys[2 * 200];
 *     struct nr_topkb b = {.k = 200, .keys = keys};
 *     nr_topkb_reset(&b);
 *     nr_topkb_push_block(&b, row, n_items, 0, seen, n_seen);
 *     nr_topkb_finish(&b, out_scores, out_ids, 1);   // best first, padded
 *
 * Ids must lie in [0, 2^32) and be distinct across the pushes between two resets. The
 * scores returned are those pushed, except -0, returned as +0 (it ties with +0 by id as
 * in the heap). Plain data: distinct buffers may be used from distinct threads at once;
 * nothing here allocates. */
struct nr_topkb {
    int64_t k;      /* entries kept (>= 1) */
    int64_t size;   /* keys held now, <= 2k */
    uint64_t *keys; /* caller-owned storage of 2k keys */
    uint64_t thr;   /* the k-th best key once the buffer was first cut back, else 0 */
};

/* Empty the buffer (size 0, no threshold). Call before the first push. */
void nr_topkb_reset(struct nr_topkb *b);

/* As nr_topk_push_block: offer scores[j] for id first_id + j, skipping NaN and the
 * ascending excluded ids. */
void nr_topkb_push_block(struct nr_topkb *b, const float *scores, int64_t n, int64_t first_id,
                         const int32_t *excluded, int64_t n_excluded);

/* Write the k best to out_scores[0..k) and out_ids[0..k), best first (nr_topk's order)
 * when best_first, else in any order; padded with -inf / -1 after them. Returns how many
 * are real. The buffer must be reset before it is pushed to again. */
int64_t nr_topkb_finish(struct nr_topkb *b, float *out_scores, int64_t *out_ids, int best_first);

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
