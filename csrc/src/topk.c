#include <math.h>
#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "neurec/nr_topk.h"

/* The heap root is the worst entry: a lower score, or an equal score with a
 * higher id (equal scores are ranked by ascending id). */
static inline int nr__topk_worse(float sa, int64_t ia, float sb, int64_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

static void nr__topk_sift_down(float *s, int64_t *id, int64_t size, int64_t i)
{
    const float xs = s[i];
    const int64_t xi = id[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= size)
            break;
        if (c + 1 < size && nr__topk_worse(s[c + 1], id[c + 1], s[c], id[c]))
            c++;
        if (!nr__topk_worse(s[c], id[c], xs, xi))
            break;
        s[i] = s[c];
        id[i] = id[c];
        i = c;
    }
    s[i] = xs;
    id[i] = xi;
}

static void nr__topk_sift_up(float *s, int64_t *id, int64_t i)
{
    const float xs = s[i];
    const int64_t xi = id[i];
    while (i > 0) {
        const int64_t p = (i - 1) / 2;
        if (!nr__topk_worse(xs, xi, s[p], id[p]))
            break;
        s[i] = s[p];
        id[i] = id[p];
        i = p;
    }
    s[i] = xs;
    id[i] = xi;
}

void nr_topk_reset(struct nr_topk *h) { h->size = 0; }

/* Whether any of x[0..16) is >= t (NaN never is). */
static inline int nr__topk_any_ge(const float *x, float t)
{
#if defined(__SSE2__)
    const __m128 tv = _mm_set1_ps(t);
    __m128 m = _mm_or_ps(
        _mm_or_ps(_mm_cmpge_ps(_mm_loadu_ps(x), tv), _mm_cmpge_ps(_mm_loadu_ps(x + 4), tv)),
        _mm_or_ps(_mm_cmpge_ps(_mm_loadu_ps(x + 8), tv), _mm_cmpge_ps(_mm_loadu_ps(x + 12), tv)));
    return _mm_movemask_ps(m) != 0;
#else
    int any = 0;
    for (int l = 0; l < 16; l++)
        any |= x[l] >= t;
    return any;
#endif
}

/* Push a contiguous id range with no exclusions. */
static void nr__topk_push_range(struct nr_topk *h, const float *scores, int64_t n, int64_t first_id)
{
    float *hs = h->scores;
    int64_t *hi = h->ids;
    int64_t j = 0;

    while (h->size < h->k && j < n) {
        const float s = scores[j];
        if (!isnan(s)) {
            hs[h->size] = s;
            hi[h->size] = first_id + j;
            nr__topk_sift_up(hs, hi, h->size);
            h->size++;
        }
        j++;
    }
    if (j >= n || h->k == 0)
        return;

    /* Full heap: most scores cannot enter, so compare against the root in
     * registers and touch the heap only on a replacement. */
    float min_s = hs[0];
    int64_t min_id = hi[0];
    for (; j < n; j++) {
        /* skip sixteen scores at once when none reaches the root (the usual case) */
        while (j + 16 <= n && !nr__topk_any_ge(scores + j, min_s))
            j += 16;
        if (j >= n)
            break;
        const float s = scores[j];
        if (!(s >= min_s)) /* also rejects NaN */
            continue;
        const int64_t id = first_id + j;
        if (s == min_s && id >= min_id)
            continue;
        hs[0] = s;
        hi[0] = id;
        nr__topk_sift_down(hs, hi, h->size, 0);
        min_s = hs[0];
        min_id = hi[0];
    }
}

void nr_topk_push_block(struct nr_topk *h, const float *scores, int64_t n, int64_t first_id,
                        const int32_t *excluded, int64_t n_excluded)
{
    if (n <= 0 || h->k <= 0)
        return;
    if (excluded == NULL || n_excluded <= 0) {
        nr__topk_push_range(h, scores, n, first_id);
        return;
    }

    /* First excluded id >= first_id, then push the gaps between exclusions. */
    int64_t lo = 0, hi = n_excluded;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if ((int64_t)excluded[mid] < first_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t j = 0;
    for (int64_t p = lo; p < n_excluded && j < n; p++) {
        const int64_t e = (int64_t)excluded[p] - first_id;
        if (e < j) /* duplicate (or unsorted input) */
            continue;
        if (e >= n)
            break;
        nr__topk_push_range(h, scores + j, e - j, first_id + j);
        j = e + 1;
    }
    if (j < n)
        nr__topk_push_range(h, scores + j, n - j, first_id + j);
}

void nr_topk_sort(struct nr_topk *h)
{
    /* Heapsort on the min-heap moves the worst entry to the back each step,
     * which leaves the array best first. */
    for (int64_t end = h->size - 1; end > 0; end--) {
        const float ts = h->scores[0];
        const int64_t ti = h->ids[0];
        h->scores[0] = h->scores[end];
        h->ids[0] = h->ids[end];
        h->scores[end] = ts;
        h->ids[end] = ti;
        nr__topk_sift_down(h->scores, h->ids, end, 0);
    }
}

enum nr_status nr_topk_rows(const float *scores, int64_t n_rows, int64_t n_cols, int64_t row_stride,
                            int64_t k, const int64_t *indptr, const int32_t *indices,
                            int64_t n_csr_rows, const int64_t *row_users, int64_t *out_ids,
                            float *out_scores)
{
    if (k < 0 || n_rows < 0 || n_cols < 0 || row_stride < 0)
        return NR_ERR_VALUE;

    for (int64_t r = 0; r < n_rows; r++) {
        const int32_t *ex = NULL;
        int64_t n_ex = 0;
        if (indptr != NULL) {
            const int64_t u = row_users != NULL ? row_users[r] : r;
            if (u < 0 || u >= n_csr_rows)
                return NR_ERR_INDEX;
            ex = indices + indptr[u];
            n_ex = indptr[u + 1] - indptr[u];
        }
        struct nr_topk h = {
            .k = k,
            .size = 0,
            .scores = out_scores + r * k,
            .ids = out_ids + r * k,
        };
        nr_topk_push_block(&h, scores + r * row_stride, n_cols, 0, ex, n_ex);
        nr_topk_sort(&h);
        for (int64_t j = h.size; j < k; j++) {
            h.ids[j] = -1;
            h.scores[j] = -INFINITY;
        }
    }
    return NR_OK;
}
