/*
 * nr_rank.h: ranking metrics for recommender evaluation.
 *
 * Two steps. First *count*: for every held-out (positive) item of a user,
 * the number of candidate negatives scored strictly higher, its 0-based
 * rank. Then *score*: turn those counts into HR@K, NDCG@K, MRR, AUC,
 * precision@K, recall@K and MAP@K, per user and as means.
 *
 * Tie rule (the README's "Ranking tie rule"): only strictly higher scores go above. A positive
 * tied with negatives ranks above all of them; in AUC a tie counts 1/2.
 *
 * NaN rule: a NaN positive score ranks last (below every candidate, AUC 0);
 * a NaN negative score ranks below every non-NaN positive. A model that
 * outputs NaN therefore never gains from it.
 *
 * Several positives per user (full ranking with a multi-item holdout): the
 * positives compete with the negatives and with each other. With the
 * positives of a user sorted by rank a_0 <= a_1 <= ..., positive j sits at
 * position p_j = a_j + j of the ranked list (tied positives take consecutive
 * positions). Then, with P positives and cutoff K:
 *     hits      = #{j : p_j < K}
 *     HR@K      = 1 if hits > 0 else 0
 *     precision = hits / K,   recall = hits / P
 *     NDCG@K    = sum_{p_j<K} 1/log2(p_j+2) / sum_{i<min(P,K)} 1/log2(i+2)
 *     MAP@K     = sum_{p_j<K} (j+1)/(p_j+1) / min(P,K)
 *     MRR       = 1/(p_0+1)              (not cut at K)
 *     AUC       = mean over positives of the share of negatives below it
 * With one positive (P = 1, rank r) these reduce to the NCF definitions:
 * HR = [r < K], NDCG = [r < K]/log2(r+2), MRR = 1/(r+1).
 *
 * Nothing here keeps pointers past a call or uses globals; calls on disjoint
 * outputs may run in parallel. Only nr_rank_count_full and nr_rank_score
 * allocate (scratch, freed before they return).
 */
#ifndef NR_RANK_H
#define NR_RANK_H

#include <stdint.h>

#include "neurec/nr_status.h"

/* Means over the users that have at least one positive. */
struct nr_rank_means {
    double hr, ndcg, mrr, precision, recall, map;
    double auc;        /* mean over users with a defined AUC; NaN if none */
    int64_t n_users;   /* users averaged; all means are NaN when 0 */
};

/* Optional per-user outputs: each member is NULL (skip) or an array of
 * n_users doubles owned by the caller. A user with no positive gets NaN. */
struct nr_rank_per_user {
    double *hr, *ndcg, *mrr, *precision, *recall, *map, *auc;
};

/* Sampled protocol (NCF): user u has one positive scored pos_scores[u] and
 * n_neg candidate negatives scored neg_scores[u*n_neg .. u*n_neg+n_neg).
 * Writes out_ranks[u] (negatives strictly above) and, if out_auc is not
 * NULL, out_auc[u] (share of negatives below, ties 1/2; NaN if n_neg == 0).
 * Errors: NR_ERR_VALUE if n_users or n_neg is negative. */
enum nr_status nr_rank_count_sampled(const float *pos_scores, const float *neg_scores,
                                     int64_t n_users, int64_t n_neg, int64_t *out_ranks,
                                     double *out_auc);

/* Full-catalog protocol over a row-major block of scores: row r holds the
 * scores of items 0..n_items-1 for one user.
 *
 * The positives of row r are pos_indices[pos_indptr[r] .. pos_indptr[r+1])
 * (strictly ascending item ids in [0, n_items); pos_indptr has n_rows + 1
 * non-decreasing entries and need not start at 0, so a block of rows can
 * pass a slice of a larger CSR). The candidate negatives of row r are all
 * other items except, when ex_indptr is not NULL, the ids
 * ex_indices[ex_indptr[u] .. ex_indptr[u+1]) (ascending) of CSR row
 * u = row_users[r] (u = r if row_users is NULL; u in [0, n_ex_rows)),
 * typically the user's training items. A positive is never excluded.
 *
 * For positive i = pos_indptr[r] + j writes out_above[i] (its rank among the
 * negatives) and, if out_auc is not NULL, out_auc[i]. Both arrays are
 * indexed like pos_indices and owned by the caller.
 *
 * Errors: NR_ERR_VALUE (negative sizes, decreasing pos_indptr, positives not
 * strictly ascending), NR_ERR_INDEX (positive id or exclusion row out of
 * range), NR_ERR_NOMEM. Rows before the failing one are already written. */
enum nr_status nr_rank_count_full(const float *scores, int64_t n_rows, int64_t n_items,
                                  const int64_t *pos_indptr, const int32_t *pos_indices,
                                  const int64_t *ex_indptr, const int32_t *ex_indices,
                                  int64_t n_ex_rows, const int64_t *row_users, int64_t *out_above,
                                  double *out_auc);

/* Metrics from ranks. indptr (n_users + 1 non-decreasing entries, any start)
 * groups the ranks of several positives per user: user u owns
 * above[indptr[u] .. indptr[u+1]). indptr NULL means one positive per user,
 * above[u]. auc (indexed like above) may be NULL: then AUC outputs are NaN.
 * per_user may be NULL; means must not be NULL.
 * Errors: NR_ERR_VALUE (k < 1, n_users < 0, a negative rank, decreasing
 * indptr), NR_ERR_NOMEM. */
enum nr_status nr_rank_score(const int64_t *indptr, const int64_t *above, const double *auc,
                             int64_t n_users, int64_t k, const struct nr_rank_per_user *per_user,
                             struct nr_rank_means *means);

#endif /* NR_RANK_H */
