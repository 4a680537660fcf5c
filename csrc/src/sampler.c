#include "neurec/nr_sampler.h"
#include "neurec/nr_rng.h"

#include <stdatomic.h>
#include <string.h>

#define BLOCK NR_SAMPLER_BLOCK
#define MAX_TRIES 64

static int row_has(const int32_t *row, int64_t len, int64_t item)
{
    int64_t lo = 0, hi = len;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (row[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < len && row[lo] == item;
}

static int64_t draw(struct nr_rng *r, const double *cdf, int64_t n)
{
    if (!cdf)
        return (int64_t)nr_rng_below(r, (uint64_t)n);
    double u = (double)(nr_rng_next(r) >> 11) * (1.0 / 9007199254740992.0) * cdf[n - 1];
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] <= u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Popularity fallback: draw an unseen item in proportion to its weight, by
 * walking the catalog (O(n_items), only for users rejection keeps failing on).
 * Returns -1 when every unseen item has weight 0. */
static int64_t weighted_unseen(struct nr_rng *r, const double *cdf, int64_t n, const int32_t *row,
                               int64_t len)
{
    double total = 0.0;
    int64_t k = 0;
    for (int64_t it = 0; it < n; it++) {
        if (k < len && row[k] == it) {
            k++;
            continue;
        }
        total += cdf[it] - (it ? cdf[it - 1] : 0.0);
    }
    if (!(total > 0.0))
        return -1;
    double u = (double)(nr_rng_next(r) >> 11) * (1.0 / 9007199254740992.0) * total;
    int64_t last = -1;
    k = 0;
    for (int64_t it = 0; it < n; it++) {
        if (k < len && row[k] == it) {
            k++;
            continue;
        }
        double w = cdf[it] - (it ? cdf[it - 1] : 0.0);
        if (w > 0.0) {
            last = it;
            if (u < w)
                return it;
            u -= w;
        }
    }
    return last; /* rounding at the very end */
}

/* The k-th (0-based) item not in the sorted row, uniform fallback when
 * rejection keeps failing for a user who has seen most items. */
static int64_t kth_unseen(const int32_t *row, int64_t len, int64_t k)
{
    int64_t item = k;
    for (int64_t i = 0; i < len && row[i] <= item; i++)
        item++;
    return item;
}

struct sampler_ctx {
    const struct nr_csr *seen;
    const int64_t *pu, *pi;
    int64_t n_pos, num_neg;
    int64_t blk_lo, blk_hi; /* the blocks drawn */
    const double *cdf;
    uint64_t seed;
    int64_t *ou, *oi;
    float *ol;
    atomic_int status;
};

static void sampler_worker(void *vctx, int ith, int nth)
{
    struct sampler_ctx *c = vctx;
    const struct nr_csr *m = c->seen;
    int64_t stride = 1 + c->num_neg;
    for (int64_t blk = c->blk_lo + ith; blk < c->blk_hi; blk += nth) {
        struct nr_rng r;
        nr_rng_seed(&r, c->seed, (uint64_t)blk);
        int64_t end = (blk + 1) * BLOCK < c->n_pos ? (blk + 1) * BLOCK : c->n_pos;
        for (int64_t k = blk * BLOCK; k < end; k++) {
            int64_t u = c->pu[k], it = c->pi[k];
            if (u < 0 || u >= m->n_rows || it < 0 || it >= m->n_cols) {
                atomic_store(&c->status, NR_ERR_INDEX);
                return;
            }
            const int32_t *row = m->indices + m->indptr[u];
            int64_t len = m->indptr[u + 1] - m->indptr[u];
            int64_t o = k * stride;
            c->ou[o] = u;
            c->oi[o] = it;
            c->ol[o] = 1.0f;
            if (len >= m->n_cols && c->num_neg > 0) {
                atomic_store(&c->status, NR_ERR_VALUE);
                return;
            }
            for (int64_t j = 1; j <= c->num_neg; j++) {
                int64_t neg = -1;
                for (int t = 0; t < MAX_TRIES; t++) {
                    int64_t cand = draw(&r, c->cdf, m->n_cols);
                    if (!row_has(row, len, cand)) {
                        neg = cand;
                        break;
                    }
                }
                /* a heavy user: draw exactly among the unseen items, by weight, or
                 * uniformly when none of them has any weight */
                if (neg < 0 && c->cdf)
                    neg = weighted_unseen(&r, c->cdf, m->n_cols, row, len);
                if (neg < 0)
                    neg = kth_unseen(row, len,
                                     (int64_t)nr_rng_below(&r, (uint64_t)(m->n_cols - len)));
                c->ou[o + j] = u;
                c->oi[o + j] = neg;
                c->ol[o + j] = 0.0f;
            }
        }
    }
}

enum nr_status nr_sampler_epoch(const struct nr_csr *seen, const int64_t *pos_users,
                                const int64_t *pos_items, int64_t n_pos, int64_t num_neg,
                                const double *cdf, uint64_t seed, struct nr_pool *pool,
                                int64_t *out_users, int64_t *out_items, float *out_labels)
{
    return nr_sampler_epoch_part(seen, pos_users, pos_items, n_pos, num_neg, cdf, seed, 0, n_pos,
                                 pool, out_users, out_items, out_labels);
}

enum nr_status nr_sampler_epoch_part(const struct nr_csr *seen, const int64_t *pos_users,
                                     const int64_t *pos_items, int64_t n_pos, int64_t num_neg,
                                     const double *cdf, uint64_t seed, int64_t first, int64_t stop,
                                     struct nr_pool *pool, int64_t *out_users, int64_t *out_items,
                                     float *out_labels)
{
    if (n_pos < 0 || num_neg < 0 || seen->n_cols < 1 || first < 0 || first > stop || stop > n_pos ||
        first % NR_SAMPLER_BLOCK || (stop % NR_SAMPLER_BLOCK && stop != n_pos))
        return NR_ERR_VALUE;
    struct sampler_ctx c = {
        .seen = seen,
        .pu = pos_users,
        .pi = pos_items,
        .n_pos = n_pos,
        .num_neg = num_neg,
        .blk_lo = first / NR_SAMPLER_BLOCK,
        .blk_hi = (stop + NR_SAMPLER_BLOCK - 1) / NR_SAMPLER_BLOCK,
        .cdf = cdf,
        .seed = seed,
        .ou = out_users,
        .oi = out_items,
        .ol = out_labels,
    };
    atomic_init(&c.status, NR_OK);
    nr_pool_run(pool, sampler_worker, &c);
    return (enum nr_status)atomic_load(&c.status);
}

/* Fisher-Yates on perm[0..n) with r. */
static void shuffle(int64_t *perm, int64_t n, struct nr_rng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)nr_rng_below(r, (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* Longer permutations go through buckets of about PERM_BUCKET values (in
 * cache while they are shuffled), at most PERM_MAX_BUCKETS of them. */
#define PERM_FY_MAX ((int64_t)1 << 16)
#define PERM_BUCKET ((int64_t)1 << 15)
#define PERM_MAX_BUCKETS 4096

/* The value i with its tag in the top byte. */
static inline int64_t tagged(int64_t i, const uint8_t *tags)
{
    return tags ? (int64_t)((uint64_t)i | (uint64_t)tags[i] << NR_PERM_TAG_SHIFT) : i;
}

/* One Fisher-Yates over an array of tens of millions of values waits on
 * memory at every swap. Above PERM_FY_MAX values the permutation is drawn in
 * three cache-friendly passes (Rao-Sandelius): each value 0..n-1 in turn draws
 * one of 2^bits buckets, uniformly (the top bits of one stream, drawn twice:
 * to count, then to place the values in order), and each bucket is shuffled
 * by Fisher-Yates with a stream of its own. Uniform assignments and uniform
 * shuffles make every permutation equally likely. */
void nr_sampler_permutation_tagged(int64_t *perm, int64_t n, uint64_t seed, const uint8_t *tags)
{
    struct nr_rng r;
    nr_rng_seed(&r, seed, 0x5EED);
    if (n <= PERM_FY_MAX) { /* else the buckets place every value */
        for (int64_t i = 0; i < n; i++)
            perm[i] = tagged(i, tags);
        shuffle(perm, n, &r);
        return;
    }
    int bits = 1;
    while ((PERM_BUCKET << bits) < n && (1 << bits) < PERM_MAX_BUCKETS)
        bits++;
    const int64_t k = (int64_t)1 << bits;
    int64_t start[PERM_MAX_BUCKETS + 1], at[PERM_MAX_BUCKETS];
    memset(start, 0, sizeof start);
    struct nr_rng draw = r;
    for (int64_t i = 0; i < n; i++)
        start[(nr_rng_next(&draw) >> (64 - bits)) + 1]++;
    for (int64_t b = 0; b < k; b++) {
        start[b + 1] += start[b];
        at[b] = start[b];
    }
    draw = r;
    for (int64_t i = 0; i < n; i++)
        perm[at[nr_rng_next(&draw) >> (64 - bits)]++] = tagged(i, tags);
    for (int64_t b = 0; b < k; b++) {
        struct nr_rng own;
        nr_rng_seed(&own, seed, ((uint64_t)1 << 32) + (uint64_t)b);
        shuffle(perm + start[b], start[b + 1] - start[b], &own);
    }
}

void nr_sampler_permutation(int64_t *perm, int64_t n, uint64_t seed)
{
    nr_sampler_permutation_tagged(perm, n, seed, NULL);
}
