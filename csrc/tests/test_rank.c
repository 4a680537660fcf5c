/*
 * test_rank.c: standalone tests of nr_topk, nr_topkb and nr_rank (no Python).
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined \
 *       -Icsrc/include csrc/tests/test_rank.c csrc/src/rank.c \
 *       csrc/src/topk.c -lm -o test_rank && ./test_rank
 *
 * Exits 0 when every check passes, 1 otherwise (failures go to stderr).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neurec/nr_rank.h"
#include "neurec/nr_topk.h"

#include "harness.h"

#define CHECK_CLOSE(a, b) CHECK(fabs((double)(a) - (double)(b)) < 1e-12)

/* A test-local generator, so runs are reproducible. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) { return xorshift64s(&rng_state); }
static float rng_score(void)
{
    /* Few distinct values, so ties are common. */
    return (float)(rng_next() % 16) / 4.0f;
}

/* ---- top-K --------------------------------------------------------------- */

struct entry {
    float s;
    int64_t id;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->s > y->s)
        return -1;
    if (x->s < y->s)
        return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int is_excluded(const int32_t *ex, int64_t n_ex, int64_t id)
{
    for (int64_t i = 0; i < n_ex; i++)
        if (ex[i] == id)
            return 1;
    return 0;
}

/* Brute force: sort all candidates. Returns the number of candidates. */
static int64_t brute_topk(const float *s, int64_t n, const int32_t *ex, int64_t n_ex, int64_t k,
                          int64_t *ids, float *sc)
{
    struct entry *all = malloc((size_t)(n > 0 ? n : 1) * sizeof *all);
    int64_t m = 0;
    for (int64_t j = 0; j < n; j++)
        if (!isnan(s[j]) && !is_excluded(ex, n_ex, j))
            all[m++] = (struct entry){s[j], j};
    qsort(all, (size_t)m, sizeof *all, cmp_entry);
    for (int64_t i = 0; i < k; i++) {
        ids[i] = i < m ? all[i].id : -1;
        sc[i] = i < m ? all[i].s : -INFINITY;
    }
    free(all);
    return m;
}

static void test_topk_hand(void)
{
    const float s[6] = {0.5f, 2.0f, NAN, 2.0f, -1.0f, 3.0f};
    float hs[3];
    int64_t hi[3];
    struct nr_topk h = {.k = 3, .size = 0, .scores = hs, .ids = hi};
    nr_topk_push_block(&h, s, 6, 0, NULL, 0);
    nr_topk_sort(&h);
    CHECK(h.size == 3);
    CHECK(hi[0] == 5 && hi[1] == 1 && hi[2] == 3); /* tie 2.0: lower id first */
    CHECK(hs[0] == 3.0f && hs[1] == 2.0f && hs[2] == 2.0f);

    /* Exclude 5 and 1 (and a duplicate and an out-of-block id). */
    const int32_t ex[4] = {1, 1, 5, 40};
    nr_topk_reset(&h);
    nr_topk_push_block(&h, s, 6, 0, ex, 4);
    nr_topk_sort(&h);
    CHECK(h.size == 3);
    CHECK(hi[0] == 3 && hi[1] == 0 && hi[2] == 4);

    /* Padding: 3 candidates left for k = 5 via nr_topk_rows. */
    int64_t ids[5];
    float sc[5];
    const int64_t indptr[2] = {0, 3};
    const int32_t idx[3] = {0, 1, 5};
    CHECK(nr_topk_rows(s, 1, 6, 6, 5, indptr, idx, 1, NULL, ids, sc) == NR_OK);
    CHECK(ids[0] == 3 && ids[1] == 4 && ids[2] == -1 && ids[3] == -1 && ids[4] == -1);
    CHECK(sc[0] == 2.0f && sc[1] == -1.0f && isinf(sc[2]) && sc[2] < 0);

    /* Blocks pushed out of order give the same result as one block. */
    float hs2[4];
    int64_t hi2[4];
    struct nr_topk h2 = {.k = 4, .size = 0, .scores = hs2, .ids = hi2};
    nr_topk_push_block(&h2, s + 3, 3, 3, NULL, 0);
    nr_topk_push_block(&h2, s, 3, 0, NULL, 0);
    nr_topk_sort(&h2);
    CHECK(hi2[0] == 5 && hi2[1] == 1 && hi2[2] == 3 && hi2[3] == 0);

    /* A tie with the heap minimum replaces it when the new id is lower. */
    h2.k = 2;
    nr_topk_reset(&h2);
    nr_topk_push_block(&h2, s + 3, 3, 3, NULL, 0);
    nr_topk_push_block(&h2, s, 3, 0, NULL, 0);
    nr_topk_sort(&h2);
    CHECK(h2.size == 2 && hi2[0] == 5 && hi2[1] == 1);

    /* Errors. */
    const int64_t user = 7;
    CHECK(nr_topk_rows(s, 1, 6, 6, 2, indptr, idx, 1, &user, ids, sc) == NR_ERR_INDEX);
    CHECK(nr_topk_rows(s, 1, 6, 6, -1, NULL, NULL, 0, NULL, ids, sc) == NR_ERR_VALUE);
}

static void test_topk_random(void)
{
    enum { ROWS = 60, COLS = 97, KMAX = 110 };
    float *s = malloc(ROWS * COLS * sizeof *s);
    int64_t indptr[ROWS + 1];
    int32_t *indices = malloc(ROWS * COLS * sizeof *indices);
    int64_t users[ROWS];
    indptr[0] = 0;
    for (int r = 0; r < ROWS; r++) {
        int64_t nnz = indptr[r];
        for (int j = 0; j < COLS; j++) {
            const uint64_t x = rng_next() % 100;
            s[r * COLS + j] = x < 5 ? NAN : rng_score();
            if (rng_next() % 4 == 0)
                indices[nnz++] = j;
        }
        indptr[r + 1] = nnz;
        users[r] = (r * 7) % ROWS;
    }
    const int64_t ks[5] = {1, 3, 10, COLS, KMAX};
    int64_t *ids = malloc(ROWS * KMAX * sizeof *ids);
    float *sc = malloc(ROWS * KMAX * sizeof *sc);
    int64_t bids[KMAX];
    float bsc[KMAX];
    for (int t = 0; t < 5; t++) {
        const int64_t k = ks[t];
        CHECK(nr_topk_rows(s, ROWS, COLS, COLS, k, indptr, indices, ROWS, users, ids, sc) == NR_OK);
        int ok = 1;
        for (int r = 0; r < ROWS; r++) {
            const int64_t u = users[r];
            brute_topk(s + r * COLS, COLS, indices + indptr[u], indptr[u + 1] - indptr[u], k, bids,
                       bsc);
            ok &= memcmp(bids, ids + r * k, (size_t)k * sizeof *bids) == 0;
            ok &= memcmp(bsc, sc + r * k, (size_t)k * sizeof *bsc) == 0;
        }
        CHECK(ok);

        /* Shared score row (row_stride 0), no exclusions. */
        CHECK(nr_topk_rows(s, ROWS, COLS, 0, k, NULL, NULL, 0, NULL, ids, sc) == NR_OK);
        brute_topk(s, COLS, NULL, 0, k, bids, bsc);
        ok = 1;
        for (int r = 0; r < ROWS; r++)
            ok &= memcmp(bids, ids + r * k, (size_t)k * sizeof *bids) == 0;
        CHECK(ok);
    }
    free(s);
    free(indices);
    free(ids);
    free(sc);
}

/* The buffered top-K (nr_topkb) against brute force: few distinct scores (ties by id),
 * NaN, -0 next to +0, exclusions, rows pushed in blocks of random sizes out of order, k
 * from 1 to beyond the row; then orders that are hard on a quickselect (sorted either way,
 * all scores equal) over many cuts of the buffer. */
static void test_topkb_random(void)
{
    enum { N = 700, KMAX = 720 };
    float *s = malloc(N * sizeof *s);
    int32_t *ex = malloc(N * sizeof *ex);
    uint64_t *keys = malloc(2 * KMAX * sizeof *keys);
    int64_t ids[KMAX], bids[KMAX];
    float sc[KMAX], bsc[KMAX];
    const int64_t ks[8] = {1, 2, 5, 16, 99, 350, N, KMAX};
    int ok = 1;
    for (int round = 0; round < 24; round++) {
        int64_t n_ex = 0;
        for (int j = 0; j < N; j++) {
            const uint64_t x = rng_next() % 100;
            s[j] = x < 4 ? NAN : x < 8 ? -0.0f : x < 12 ? 0.0f : rng_score() - 2.0f;
            if (round % 2 && rng_next() % 5 == 0)
                ex[n_ex++] = j;
        }
        for (int t = 0; t < 8; t++) {
            const int64_t k = ks[t];
            struct nr_topkb b = {.k = k, .keys = keys};
            nr_topkb_reset(&b);
            /* blocks [cut, N) first, then [0, cut) in pieces */
            const int64_t cut = (int64_t)(rng_next() % N);
            nr_topkb_push_block(&b, s + cut, N - cut, cut, ex, n_ex);
            for (int64_t j = 0; j < cut;) {
                const int64_t nb = 1 + (int64_t)(rng_next() % 97);
                const int64_t m = nb < cut - j ? nb : cut - j;
                nr_topkb_push_block(&b, s + j, m, j, ex, n_ex);
                j += m;
            }
            /* the same pushes into a second buffer, finished in any order */
            uint64_t keys2[2 * KMAX];
            struct nr_topkb b2 = {.k = k, .keys = keys2};
            nr_topkb_reset(&b2);
            nr_topkb_push_block(&b2, s, N, 0, ex, n_ex);
            const int64_t got = nr_topkb_finish(&b, sc, ids, 1);
            const int64_t m = brute_topk(s, N, ex, n_ex, k, bids, bsc);
            ok &= got == (m < k ? m : k);
            for (int64_t j = 0; j < k; j++) /* -0 comes back as +0: compare as floats */
                ok &= ids[j] == bids[j] && (sc[j] == bsc[j] || (isinf(sc[j]) && isinf(bsc[j])));
            struct entry any[KMAX];
            int64_t ids2[KMAX];
            float sc2[KMAX];
            ok &= nr_topkb_finish(&b2, sc2, ids2, 0) == got;
            for (int64_t j = 0; j < k; j++) {
                any[j] = (struct entry){sc2[j] == 0.0f ? 0.0f : sc2[j], ids2[j]};
                ok &= j < got ? ids2[j] >= 0 : ids2[j] == -1; /* padding last */
            }
            qsort(any, (size_t)got, sizeof *any, cmp_entry);
            for (int64_t j = 0; j < got; j++)
                ok &= any[j].id == ids[j] && any[j].s == sc[j];
        }
    }
    CHECK(ok);
    /* hard orders for a quickselect, many cuts of the buffer (k small against the row) */
    ok = 1;
    for (int order = 0; order < 3; order++) {
        for (int j = 0; j < N; j++)
            s[j] = order == 0 ? (float)j : order == 1 ? (float)(N - j) : 1.0f;
        for (int t = 0; t < 4; t++) {
            const int64_t k = ks[t];
            struct nr_topkb b = {.k = k, .keys = keys};
            nr_topkb_reset(&b);
            nr_topkb_push_block(&b, s, N, 0, NULL, 0);
            nr_topkb_finish(&b, sc, ids, 1);
            brute_topk(s, N, NULL, 0, k, bids, bsc);
            ok &= memcmp(ids, bids, (size_t)k * sizeof *ids) == 0 &&
                  memcmp(sc, bsc, (size_t)k * sizeof *sc) == 0;
        }
    }
    CHECK(ok);
    free(s);
    free(ex);
    free(keys);
}

/* ---- ranks --------------------------------------------------------------- */

static void test_count_sampled(void)
{
    const float pos[3] = {0.5f, NAN, 1.0f};
    const float neg[12] = {0.9f, 0.5f, 0.1f, NAN,   /* 1 above, 1 tie */
                           0.0f, 0.0f, 0.0f, 0.0f,  /* NaN positive: last */
                           0.0f, 0.0f, 0.0f, 0.0f}; /* all below */
    int64_t ranks[3];
    double auc[3];
    CHECK(nr_rank_count_sampled(pos, neg, 3, 4, ranks, auc) == NR_OK);
    CHECK(ranks[0] == 1 && ranks[1] == 4 && ranks[2] == 0);
    CHECK_CLOSE(auc[0], 2.5 / 4.0);
    CHECK_CLOSE(auc[1], 0.0);
    CHECK_CLOSE(auc[2], 1.0);
    CHECK(nr_rank_count_sampled(pos, neg, 3, 0, ranks, auc) == NR_OK);
    CHECK(ranks[0] == 0 && isnan(auc[0]));
    CHECK(nr_rank_count_sampled(pos, neg, -1, 4, ranks, auc) == NR_ERR_VALUE);
}

static void test_count_full_hand(void)
{
    /* One user, 8 items. Positives {1, 4, 6}; training items {0, 2}. */
    const float s[8] = {9.0f, 0.7f, 5.0f, 0.7f, 0.2f, 0.9f, NAN, 0.1f};
    const int64_t pos_indptr[2] = {0, 3};
    const int32_t pos[3] = {1, 4, 6};
    const int64_t ex_indptr[2] = {0, 2};
    const int32_t ex[2] = {0, 2};
    int64_t above[3];
    double auc[3];
    CHECK(nr_rank_count_full(s, 1, 8, pos_indptr, pos, ex_indptr, ex, 1, NULL, above, auc) ==
          NR_OK);
    /* Negatives: items 3 (0.7), 5 (0.9), 7 (0.1). */
    CHECK(above[0] == 1); /* 0.7: only 0.9 above; tie with item 3 */
    CHECK(above[1] == 2); /* 0.2 */
    CHECK(above[2] == 3); /* NaN: last */
    CHECK_CLOSE(auc[0], (1.0 + 0.5) / 3.0);
    CHECK_CLOSE(auc[1], 1.0 / 3.0);
    CHECK_CLOSE(auc[2], 0.0);

    /* Without exclusions, the training items count as negatives. */
    CHECK(nr_rank_count_full(s, 1, 8, pos_indptr, pos, NULL, NULL, 0, NULL, above, auc) == NR_OK);
    CHECK(above[0] == 3 && above[1] == 4 && above[2] == 5);

    /* Errors: positive out of range, unsorted positives. */
    const int32_t bad1[3] = {1, 4, 8};
    const int32_t bad2[3] = {4, 1, 6};
    CHECK(nr_rank_count_full(s, 1, 8, pos_indptr, bad1, NULL, NULL, 0, NULL, above, auc) ==
          NR_ERR_INDEX);
    CHECK(nr_rank_count_full(s, 1, 8, pos_indptr, bad2, NULL, NULL, 0, NULL, above, auc) ==
          NR_ERR_VALUE);
    const int64_t user = 1;
    CHECK(nr_rank_count_full(s, 1, 8, pos_indptr, pos, ex_indptr, ex, 1, &user, above, auc) ==
          NR_ERR_INDEX);
}

static void test_count_full_random(void)
{
    enum { ROWS = 40, ITEMS = 53 };
    float *s = malloc(ROWS * ITEMS * sizeof *s);
    int64_t pi[ROWS + 1], ei[ROWS + 1];
    int32_t *pv = malloc(ROWS * ITEMS * sizeof *pv);
    int32_t *ev = malloc(ROWS * ITEMS * sizeof *ev);
    pi[0] = ei[0] = 0;
    for (int r = 0; r < ROWS; r++) {
        int64_t np = pi[r], ne = ei[r];
        for (int j = 0; j < ITEMS; j++) {
            s[r * ITEMS + j] = rng_next() % 50 == 0 ? NAN : rng_score();
            const uint64_t x = rng_next() % 10;
            if (x == 0)
                pv[np++] = j;
            else if (x < 3)
                ev[ne++] = j;
        }
        pi[r + 1] = np;
        ei[r + 1] = ne;
    }
    int64_t *above = malloc((size_t)(pi[ROWS] + 1) * sizeof *above);
    double *auc = malloc((size_t)(pi[ROWS] + 1) * sizeof *auc);
    CHECK(nr_rank_count_full(s, ROWS, ITEMS, pi, pv, ei, ev, ROWS, NULL, above, auc) == NR_OK);
    int ok = 1;
    for (int r = 0; r < ROWS; r++) {
        const float *row = s + r * ITEMS;
        for (int64_t i = pi[r]; i < pi[r + 1]; i++) {
            const float p = row[pv[i]];
            int64_t n_neg = 0, a = 0, e = 0;
            for (int j = 0; j < ITEMS; j++) {
                if (is_excluded(pv + pi[r], pi[r + 1] - pi[r], j) ||
                    is_excluded(ev + ei[r], ei[r + 1] - ei[r], j))
                    continue;
                n_neg++;
                a += row[j] > p;
                e += row[j] == p;
            }
            if (isnan(p))
                a = n_neg;
            const double want =
                n_neg ? ((double)(n_neg - a - e) + 0.5 * (double)e) / (double)n_neg : NAN;
            ok &= above[i] == a;
            ok &= n_neg == 0 ? isnan(auc[i]) : fabs(auc[i] - want) < 1e-12;
        }
    }
    CHECK(ok);
    free(s);
    free(pv);
    free(ev);
    free(above);
    free(auc);
}

static void test_score(void)
{
    /* One positive per user, k = 10: ranks 0, 3, 12. */
    const int64_t r1[3] = {0, 3, 12};
    const double a1[3] = {1.0, 0.5, NAN};
    double hr[3], nd[3], mrr[3], pr[3], rc[3], mp[3], au[3];
    struct nr_rank_per_user pu = {hr, nd, mrr, pr, rc, mp, au};
    struct nr_rank_means m;
    CHECK(nr_rank_score(NULL, r1, a1, 3, 10, &pu, &m) == NR_OK);
    CHECK(m.n_users == 3);
    CHECK_CLOSE(m.hr, 2.0 / 3.0);
    CHECK_CLOSE(m.ndcg, (1.0 + 1.0 / log2(5.0)) / 3.0);
    CHECK_CLOSE(m.mrr, (1.0 + 0.25 + 1.0 / 13.0) / 3.0);
    CHECK_CLOSE(m.precision, 0.2 / 3.0);
    CHECK_CLOSE(m.recall, 2.0 / 3.0);
    CHECK_CLOSE(m.map, (1.0 + 0.25) / 3.0);
    CHECK_CLOSE(m.auc, 0.75); /* NaN user skipped */
    CHECK(hr[2] == 0.0 && isnan(au[2]));
    CHECK_CLOSE(nd[1], 1.0 / log2(5.0)); /* not ==: x87 keeps the right side in long double */

    /* Several positives: user 0 ranks {5, 0, 0} -> positions 0, 1, 7;
     * user 1 has none; user 2 one positive at rank 2. k = 5. */
    const int64_t indptr[4] = {0, 3, 3, 4};
    const int64_t r2[4] = {5, 0, 0, 2};
    CHECK(nr_rank_score(indptr, r2, NULL, 3, 5, &pu, &m) == NR_OK);
    CHECK(m.n_users == 2);
    CHECK_CLOSE(hr[0], 1.0);
    CHECK_CLOSE(pr[0], 2.0 / 5.0);
    CHECK_CLOSE(rc[0], 2.0 / 3.0);
    CHECK_CLOSE(nd[0], (1.0 + 1.0 / log2(3.0)) / (1.0 + 1.0 / log2(3.0) + 0.5));
    CHECK_CLOSE(mp[0], (1.0 + 1.0) / 3.0);
    CHECK_CLOSE(mrr[0], 1.0);
    CHECK(isnan(hr[1]) && isnan(mp[1]) && isnan(au[0]));
    CHECK_CLOSE(nd[2], 0.5);
    CHECK_CLOSE(m.map, ((2.0 / 3.0) + 1.0 / 3.0) / 2.0);
    CHECK(isnan(m.auc));

    CHECK(nr_rank_score(NULL, r1, NULL, 3, 0, NULL, &m) == NR_ERR_VALUE);
    const int64_t neg[1] = {-1};
    CHECK(nr_rank_score(NULL, neg, NULL, 1, 10, NULL, &m) == NR_ERR_VALUE);
    CHECK(nr_rank_score(NULL, r1, NULL, 0, 10, NULL, &m) == NR_OK);
    CHECK(m.n_users == 0 && isnan(m.hr));
}

int main(void)
{
    test_topk_hand();
    test_topk_random();
    test_topkb_random();
    test_count_sampled();
    test_count_full_hand();
    test_count_full_random();
    test_score();
    return nr_test_report("test_rank");
}
