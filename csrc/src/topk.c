#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
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

/* Push scores[0..n) (ids first_id..) through push, skipping the ids listed in
 * excluded (ascending; duplicates and ids outside the block are harmless): the
 * gaps between exclusions, each one call. */
typedef void (*nr__push_range_fn)(void *heap, const float *scores, int64_t n, int64_t first_id);

static void nr__push_gaps(void *heap, nr__push_range_fn push, const float *scores, int64_t n,
                          int64_t first_id, const int32_t *excluded, int64_t n_excluded)
{
    if (excluded == NULL || n_excluded <= 0) {
        push(heap, scores, n, first_id);
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
        push(heap, scores + j, e - j, first_id + j);
        j = e + 1;
    }
    if (j < n)
        push(heap, scores + j, n - j, first_id + j);
}

static void nr__topk_push_any(void *h, const float *scores, int64_t n, int64_t first_id)
{
    nr__topk_push_range(h, scores, n, first_id);
}

void nr_topk_push_block(struct nr_topk *h, const float *scores, int64_t n, int64_t first_id,
                        const int32_t *excluded, int64_t n_excluded)
{
    if (n <= 0 || h->k <= 0)
        return;
    nr__push_gaps(h, nr__topk_push_any, scores, n, first_id, excluded, n_excluded);
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

/* ---- buffered top-K (large k) ---------------------------------------------- */

/* nr_topk's order as one integer, larger = better: the score's bits made monotone over
 * the complement of the id. -0 is keyed as +0, so that equal scores tie by id. */
static inline uint64_t nr__topkb_key(float s, int64_t id)
{
    uint32_t u;
    s += 0.0f; /* -0 -> +0 */
    memcpy(&u, &s, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ((uint64_t)u << 32) | (uint64_t)(0xFFFFFFFFu - (uint32_t)id);
}

static inline float nr__topkb_score(uint64_t key)
{
    uint32_t u = (uint32_t)(key >> 32);
    u = (u & 0x80000000u) ? (u & 0x7FFFFFFFu) : ~u;
    float s;
    memcpy(&s, &u, sizeof s);
    return s;
}

static inline void nr__topkb_swap(uint64_t *a, int64_t i, int64_t j)
{
    const uint64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Sift a[i] down the min-heap a[0..n). */
static void nr__topkb_sift(uint64_t *a, int64_t n, int64_t i)
{
    const uint64_t x = a[i];
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && a[c + 1] < a[c])
            c++;
        if (a[c] >= x)
            break;
        a[i] = a[c];
        i = c;
    }
    a[i] = x;
}

/* Largest first, by heapsort on a min-heap (the fallback of the two below). */
static void nr__topkb_heapsort(uint64_t *a, int64_t n)
{
    for (int64_t i = n / 2 - 1; i >= 0; i--)
        nr__topkb_sift(a, n, i);
    for (int64_t end = n - 1; end > 0; end--) {
        nr__topkb_swap(a, 0, end);
        nr__topkb_sift(a, end, 0);
    }
}

/* Move the median of a[0], a[n / 2], a[n - 1] to a[n - 1] (the pivot). */
static void nr__topkb_pivot(uint64_t *a, int64_t n)
{
    const int64_t i = 0, j = n / 2, l = n - 1;
    int64_t m;
    if (a[i] < a[j])
        m = a[j] < a[l] ? j : a[i] < a[l] ? l : i;
    else
        m = a[i] < a[l] ? i : a[j] < a[l] ? l : j;
    nr__topkb_swap(a, m, l);
}

/* Partition a[0..n) around the pivot a[n - 1], larger keys first; returns the pivot's
 * place. Lomuto's scheme with the swap done unconditionally: no branch on the data,
 * whose comparisons a branch predictor cannot guess. */
static int64_t nr__topkb_partition(uint64_t *a, int64_t n)
{
    const uint64_t pivot = a[n - 1];
    int64_t store = 0;
    for (int64_t i = 0; i < n - 1; i++) {
        const uint64_t x = a[i];
        a[i] = a[store];
        a[store] = x;
        store += x > pivot;
    }
    a[n - 1] = a[store];
    a[store] = pivot;
    return store;
}

/* Largest first, in place: quicksort over the partition above, insertion sort for short
 * runs, heapsort after too many bad pivots. */
static void nr__topkb_sort(uint64_t *a, int64_t n)
{
    int depth = 64;
    while (n > 16) {
        if (depth-- == 0) {
            nr__topkb_heapsort(a, n);
            return;
        }
        nr__topkb_pivot(a, n);
        const int64_t p = nr__topkb_partition(a, n);
        if (p < n - 1 - p) { /* recurse on the shorter side: a bounded stack */
            nr__topkb_sort(a, p);
            a += p + 1;
            n -= p + 1;
        } else {
            nr__topkb_sort(a + p + 1, n - p - 1);
            n = p;
        }
    }
    for (int64_t i = 1; i < n; i++) {
        const uint64_t x = a[i];
        int64_t j = i;
        for (; j > 0 && a[j - 1] < x; j--)
            a[j] = a[j - 1];
        a[j] = x;
    }
}

/* The k largest of a[0..n) to a[0..k), the k-th largest at a[k-1] (1 <= k <= n; keys
 * distinct): quickselect over the partition above; a run of bad pivots sorts the rest. */
static void nr__topkb_select(uint64_t *a, int64_t n, int64_t k)
{
    int64_t lo = 0, hi = n;
    const int64_t t = k - 1;
    int budget = 64;
    while (hi - lo > 1) {
        if (budget-- == 0) {
            nr__topkb_sort(a + lo, hi - lo);
            return;
        }
        nr__topkb_pivot(a + lo, hi - lo);
        const int64_t p = lo + nr__topkb_partition(a + lo, hi - lo);
        if (p == t)
            return;
        if (t < p)
            hi = p;
        else
            lo = p + 1;
    }
}

void nr_topkb_reset(struct nr_topkb *b)
{
    b->size = 0;
    b->thr = 0; /* below every key: nothing selected yet */
}

/* Bit l set when x[l] >= t, l < 16 (NaN never is). */
static inline unsigned nr__topk_mask_ge(const float *x, float t)
{
#if defined(__SSE2__)
    const __m128 tv = _mm_set1_ps(t);
    return (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(x), tv)) |
           (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(x + 4), tv)) << 4 |
           (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(x + 8), tv)) << 8 |
           (unsigned)_mm_movemask_ps(_mm_cmpge_ps(_mm_loadu_ps(x + 12), tv)) << 12;
#else
    unsigned m = 0;
    for (int l = 0; l < 16; l++)
        m |= (unsigned)(x[l] >= t) << l;
    return m;
#endif
}

/* The lowest set bit of m != 0. */
static inline int nr__topk_lowest_bit(unsigned m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    int l = 0;
    while (!(m & 1u)) {
        m >>= 1;
        l++;
    }
    return l;
#endif
}

/* Offer scores[j] for ids first_id + j, j < n (no exclusions in the range): in groups of
 * 16, the scores that reach the threshold found by one vector comparison and visited bit
 * by bit (about half reach it in a catalogue's first blocks: a branch per score there is
 * a coin toss). */
static void nr__topkb_push_range(struct nr_topkb *b, const float *scores, int64_t n,
                                 int64_t first_id)
{
    uint64_t *keys = b->keys, thr = b->thr;
    int64_t size = b->size;
    const int64_t cap = 2 * b->k;
    float t = thr ? nr__topkb_score(thr) : -INFINITY;
    int64_t j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) {
        unsigned m = nr__topk_mask_ge(scores + j0, t);
        while (m) {
            const int l = nr__topk_lowest_bit(m);
            m &= m - 1;
            const uint64_t key = nr__topkb_key(scores[j0 + l], first_id + j0 + l);
            keys[size] = key; /* size < cap: a full buffer is cut back at once */
            size += key > thr;
            if (size == cap) {
                nr__topkb_select(keys, cap, b->k);
                size = b->k;
                thr = keys[b->k - 1];
                t = nr__topkb_score(thr);
                m &= nr__topk_mask_ge(scores + j0, t);
            }
        }
    }
    for (int64_t j = j0; j < n; j++) {
        const float s = scores[j];
        const uint64_t key = nr__topkb_key(s, first_id + j);
        keys[size] = key;
        size += (s >= t) & (key > thr); /* NaN: not >= */
        if (size == cap) {
            nr__topkb_select(keys, cap, b->k);
            size = b->k;
            thr = keys[b->k - 1];
            t = nr__topkb_score(thr);
        }
    }
    b->size = size;
    b->thr = thr;
}

static void nr__topkb_push_any(void *b, const float *scores, int64_t n, int64_t first_id)
{
    nr__topkb_push_range(b, scores, n, first_id);
}

void nr_topkb_push_block(struct nr_topkb *b, const float *scores, int64_t n, int64_t first_id,
                         const int32_t *excluded, int64_t n_excluded)
{
    if (n <= 0 || b->k <= 0)
        return;
    nr__push_gaps(b, nr__topkb_push_any, scores, n, first_id, excluded, n_excluded);
}

int64_t nr_topkb_finish(struct nr_topkb *b, float *out_scores, int64_t *out_ids, int best_first)
{
    int64_t n = b->size;
    if (n > b->k) {
        nr__topkb_select(b->keys, n, b->k);
        n = b->k;
    }
    if (best_first)
        nr__topkb_sort(b->keys, n);
    for (int64_t j = 0; j < n; j++) {
        out_scores[j] = nr__topkb_score(b->keys[j]);
        out_ids[j] = (int64_t)(0xFFFFFFFFu - (uint32_t)b->keys[j]);
    }
    for (int64_t j = n; j < b->k; j++) {
        out_scores[j] = -INFINITY;
        out_ids[j] = -1;
    }
    return n;
}
