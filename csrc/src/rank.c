#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "neurec/nr_rank.h"

/* ---------------------------------------------------------------------------
 * Counting
 * ------------------------------------------------------------------------- */

enum nr_status nr_rank_count_sampled(const float *pos_scores, const float *neg_scores,
                                     int64_t n_users, int64_t n_neg, int64_t *out_ranks,
                                     double *out_auc)
{
    if (n_users < 0 || n_neg < 0)
        return NR_ERR_VALUE;

    for (int64_t u = 0; u < n_users; u++) {
        const float p = pos_scores[u];
        const float *row = neg_scores + u * n_neg;
        int64_t above = 0, equal = 0;
        if (isnan(p)) {
            above = n_neg;
        } else {
            /* Branch-free so the compiler can vectorise; NaN negatives fail
             * both tests and so count as below. */
            for (int64_t t = 0; t < n_neg; t++) {
                above += row[t] > p;
                equal += row[t] == p;
            }
        }
        out_ranks[u] = above;
        if (out_auc != NULL)
            out_auc[u] =
                n_neg > 0 ? ((double)(n_neg - above - equal) + 0.5 * (double)equal) / (double)n_neg
                          : NAN;
    }
    return NR_OK;
}

struct nr__scored {
    float s;
    int64_t j;   /* index of the positive within its row */
};

/* Descending score, NaN last, then by index so the order is deterministic. */
static int nr__cmp_scored_desc(const void *a, const void *b)
{
    const struct nr__scored *x = a, *y = b;
    const int xn = isnan(x->s), yn = isnan(y->s);
    if (xn != yn)
        return xn - yn;
    if (!xn) {
        if (x->s > y->s)
            return -1;
        if (x->s < y->s)
            return 1;
    }
    return (x->j > y->j) - (x->j < y->j);
}

/* Count the negatives of one row against its positives.
 * p[0..m) are the non-NaN positive scores, descending. A negative s beats
 * the positives p_i < s (a suffix of p) and ties the positives p_i == s;
 * both are recorded as +1/-1 marks in the difference arrays d_above/d_eq
 * (m + 1 entries each) and summed afterwards, so each negative costs one
 * or two binary searches instead of m comparisons. */
static inline void nr__count_range(const float *row, int64_t a, int64_t b, const float *p,
                                   int64_t m, int64_t *d_above, int64_t *d_eq)
{
    const float pmin = p[m - 1];
    for (int64_t t = a; t < b; t++) {
        const float s = row[t];
        if (!(s >= pmin)) /* below every positive, or NaN */
            continue;
        int64_t lo = 0, hi = m; /* n_ge = #{p_i >= s} */
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (p[mid] >= s)
                lo = mid + 1;
            else
                hi = mid;
        }
        const int64_t n_ge = lo;
        d_above[n_ge]++;
        if (n_ge > 0 && p[n_ge - 1] == s) {
            lo = 0; /* n_gt = #{p_i > s} */
            hi = n_ge;
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo) / 2;
                if (p[mid] > s)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            d_eq[lo]++;
            d_eq[n_ge]--;
        }
    }
}

enum nr_status nr_rank_count_full(const float *scores, int64_t n_rows, int64_t n_items,
                                  const int64_t *pos_indptr, const int32_t *pos_indices,
                                  const int64_t *ex_indptr, const int32_t *ex_indices,
                                  int64_t n_ex_rows, const int64_t *row_users, int64_t *out_above,
                                  double *out_auc)
{
    if (n_rows < 0 || n_items < 0)
        return NR_ERR_VALUE;

    int64_t max_pos = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t np = pos_indptr[r + 1] - pos_indptr[r];
        if (np < 0)
            return NR_ERR_VALUE;
        if (np > max_pos)
            max_pos = np;
    }
    if (max_pos == 0)
        return NR_OK;

    /* One scratch block: sorted (score, index) pairs, the descending scores
     * alone, and the two difference arrays. */
    const size_t np1 = (size_t)max_pos + 1;
    struct nr__scored *order = malloc((size_t)max_pos * sizeof *order);
    float *p = malloc((size_t)max_pos * sizeof *p);
    int64_t *d = malloc(2 * np1 * sizeof *d);
    enum nr_status st = NR_OK;
    if (order == NULL || p == NULL || d == NULL) {
        st = NR_ERR_NOMEM;
        goto done;
    }
    int64_t *d_above = d, *d_eq = d + np1;

    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t base = pos_indptr[r];
        const int64_t np = pos_indptr[r + 1] - base;
        if (np == 0)
            continue;
        const int32_t *pos = pos_indices + base;
        const float *row = scores + r * n_items;

        for (int64_t j = 0; j < np; j++) {
            if (pos[j] < 0 || pos[j] >= n_items) {
                st = NR_ERR_INDEX;
                goto done;
            }
            if (j > 0 && pos[j] <= pos[j - 1]) {
                st = NR_ERR_VALUE;
                goto done;
            }
            order[j].s = row[pos[j]];
            order[j].j = j;
        }
        if (np > 1)
            qsort(order, (size_t)np, sizeof *order, nr__cmp_scored_desc);
        int64_t m = 0;
        while (m < np && !isnan(order[m].s)) {
            p[m] = order[m].s;
            m++;
        }
        memset(d, 0, 2 * np1 * sizeof *d);

        const int32_t *ex = NULL;
        int64_t n_ex = 0;
        if (ex_indptr != NULL) {
            const int64_t u = row_users != NULL ? row_users[r] : r;
            if (u < 0 || u >= n_ex_rows) {
                st = NR_ERR_INDEX;
                goto done;
            }
            ex = ex_indices + ex_indptr[u];
            n_ex = ex_indptr[u + 1] - ex_indptr[u];
        }

        /* Walk the items in runs between skipped ids (exclusions and
         * positives, both ascending). */
        int64_t n_neg = 0, ie = 0, ip = 0;
        for (int64_t a = 0; a < n_items;) {
            while (ie < n_ex && ex[ie] < a)
                ie++;
            while (ip < np && pos[ip] < a)
                ip++;
            int64_t b = n_items;
            if (ie < n_ex && ex[ie] < b)
                b = ex[ie];
            if (ip < np && pos[ip] < b)
                b = pos[ip];
            n_neg += b - a;
            if (m > 0)
                nr__count_range(row, a, b, p, m, d_above, d_eq);
            a = b + 1;
        }

        int64_t above = 0, eq = 0;
        for (int64_t i = 0; i < np; i++) {
            int64_t ai, ei;
            if (i < m) {
                above += d_above[i];
                eq += d_eq[i];
                ai = above;
                ei = eq;
            } else { /* NaN positive: last */
                ai = n_neg;
                ei = 0;
            }
            const int64_t out = base + order[i].j;
            out_above[out] = ai;
            if (out_auc != NULL)
                out_auc[out] = n_neg > 0
                                   ? ((double)(n_neg - ai - ei) + 0.5 * (double)ei) / (double)n_neg
                                   : NAN;
        }
    }

done:
    free(order);
    free(p);
    free(d);
    return st;
}

/* ---------------------------------------------------------------------------
 * Scoring
 * ------------------------------------------------------------------------- */

static int nr__cmp_i64(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static inline void nr__put(double *dst, int64_t u, double v)
{
    if (dst != NULL)
        dst[u] = v;
}

enum nr_status nr_rank_score(const int64_t *indptr, const int64_t *above, const double *auc,
                             int64_t n_users, int64_t k, const struct nr_rank_per_user *per_user,
                             struct nr_rank_means *means)
{
    if (k < 1 || n_users < 0)
        return NR_ERR_VALUE;

    int64_t max_pos = 1;
    if (indptr != NULL) {
        for (int64_t u = 0; u < n_users; u++) {
            const int64_t np = indptr[u + 1] - indptr[u];
            if (np < 0)
                return NR_ERR_VALUE;
            if (np > max_pos)
                max_pos = np;
        }
    }
    int64_t *sorted = NULL;
    if (max_pos > 1) {
        sorted = malloc((size_t)max_pos * sizeof *sorted);
        if (sorted == NULL)
            return NR_ERR_NOMEM;
    }

    const struct nr_rank_per_user none = {0};
    const struct nr_rank_per_user *pu = per_user != NULL ? per_user : &none;
    double s_hr = 0, s_ndcg = 0, s_mrr = 0, s_prec = 0, s_rec = 0, s_map = 0, s_auc = 0;
    int64_t n = 0, n_auc = 0;
    enum nr_status st = NR_OK;

    for (int64_t u = 0; u < n_users; u++) {
        const int64_t base = indptr != NULL ? indptr[u] : u;
        const int64_t np = indptr != NULL ? indptr[u + 1] - base : 1;
        if (np == 0) {
            nr__put(pu->hr, u, NAN);
            nr__put(pu->ndcg, u, NAN);
            nr__put(pu->mrr, u, NAN);
            nr__put(pu->precision, u, NAN);
            nr__put(pu->recall, u, NAN);
            nr__put(pu->map, u, NAN);
            nr__put(pu->auc, u, NAN);
            continue;
        }
        const int64_t *a = above + base;
        for (int64_t j = 0; j < np; j++) {
            if (a[j] < 0) {
                st = NR_ERR_VALUE;
                goto done;
            }
        }
        if (np > 1) {
            memcpy(sorted, a, (size_t)np * sizeof *sorted);
            qsort(sorted, (size_t)np, sizeof *sorted, nr__cmp_i64);
            a = sorted;
        }

        int64_t hits = 0;
        double dcg = 0, ap = 0, auc_sum = 0;
        for (int64_t j = 0; j < np; j++) {
            const int64_t pos = a[j] + j;
            if (pos < k) {
                hits++;
                dcg += 1.0 / log2((double)pos + 2.0);
                ap += (double)(j + 1) / (double)(pos + 1);
            }
        }
        const int64_t n_ideal = np < k ? np : k;
        double idcg = 0;
        for (int64_t i = 0; i < n_ideal; i++)
            idcg += 1.0 / log2((double)i + 2.0);
        double u_auc = NAN;
        if (auc != NULL) {
            for (int64_t j = 0; j < np; j++)
                auc_sum += auc[base + j];
            u_auc = auc_sum / (double)np;
        }

        const double hr = hits > 0 ? 1.0 : 0.0;
        const double ndcg = dcg / idcg;
        const double mrr = 1.0 / (double)(a[0] + 1);
        const double prec = (double)hits / (double)k;
        const double rec = (double)hits / (double)np;
        const double map = ap / (double)n_ideal;
        nr__put(pu->hr, u, hr);
        nr__put(pu->ndcg, u, ndcg);
        nr__put(pu->mrr, u, mrr);
        nr__put(pu->precision, u, prec);
        nr__put(pu->recall, u, rec);
        nr__put(pu->map, u, map);
        nr__put(pu->auc, u, u_auc);
        s_hr += hr;
        s_ndcg += ndcg;
        s_mrr += mrr;
        s_prec += prec;
        s_rec += rec;
        s_map += map;
        n++;
        if (!isnan(u_auc)) {
            s_auc += u_auc;
            n_auc++;
        }
    }

    means->n_users = n;
    means->hr = n > 0 ? s_hr / (double)n : NAN;
    means->ndcg = n > 0 ? s_ndcg / (double)n : NAN;
    means->mrr = n > 0 ? s_mrr / (double)n : NAN;
    means->precision = n > 0 ? s_prec / (double)n : NAN;
    means->recall = n > 0 ? s_rec / (double)n : NAN;
    means->map = n > 0 ? s_map / (double)n : NAN;
    means->auc = n_auc > 0 ? s_auc / (double)n_auc : NAN;

done:
    free(sorted);
    return st;
}
