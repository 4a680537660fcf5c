/*
 * test_score_ncf.c: standalone tests of the fused NCF scorer (nr_score_ncf.h), no Python.
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined -Icsrc/include \
 *       csrc/tests/test_score_ncf.c csrc/src/[a-z]*.c -lm -pthread -o t && ./t
 *
 * Checks, at every SIMD level the CPU runs: scores against a float64 reference of the same
 * graph; the top-K against that reference (no better candidate left out, exclusions and
 * candidate subsets honoured, padding); per-user candidates (nr_ncf_topk_per_user) equal to
 * nr_ncf_topk on each user's row; smaller k equal to the prefix of the full ranking,
 * ties by id, also with a saturated sigmoid; threads equal to one thread; the abort flag;
 * the model checks; and the logit floor the heaps skip by. Exits 0 when every check passes.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neurec/nr_pool.h"
#include "neurec/nr_score_ncf.h"
#include "neurec/nr_simd.h"

#include "harness.h"

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static float rng_normal(float scale)
{
    /* the sum of four uniforms: a bell shape, enough for weights */
    double s = 0.0;
    for (int i = 0; i < 4; i++)
        s += (double)(xorshift64s(&rng_state) >> 11) / 9007199254740992.0 - 0.5;
    return (float)(s * 1.7 * scale);
}

static float *rand_floats(int64_t n, float scale)
{
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = rng_normal(scale);
    return v;
}

/* ---- a random model and its float64 reference ------------------------------ */

#define MAXL 4
#define MAXP 4
struct model {
    struct nr_ncf_args a;
    struct nr_ncf_layer layers[MAXL];
    struct nr_ncf_part parts[MAXP];
    float *owned[4 + 2 * MAXL + 2 * MAXP];
    int n_owned;
    int64_t n_users, n_items;
};

static float *own(struct model *m, float *p)
{
    m->owned[m->n_owned++] = p;
    return p;
}

static void model_free(struct model *m)
{
    for (int i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
}

/* widths: w0 (0: no tower), the layers' n_out (n_layers of them); parts in order as kinds
 * with widths (the tower's width is taken from the tower). */
static void model_init(struct model *m, int64_t nu, int64_t ni, int64_t w0, const int64_t *outs,
                       int n_layers, const enum nr_ncf_part_kind *kinds, const int64_t *widths,
                       int n_parts, enum nr_act act, enum nr_act out_act, float scale)
{
    memset(m, 0, sizeof *m);
    m->n_users = nu;
    m->n_items = ni;
    struct nr_ncf_args *a = &m->a;
    a->width_0 = w0;
    a->act_0 = act;
    if (w0) {
        a->zu = own(m, rand_floats(nu * w0, scale));
        a->zi = own(m, rand_floats(ni * w0, scale));
    }
    int64_t w = w0;
    for (int l = 0; l < n_layers; l++) {
        m->layers[l] = (struct nr_ncf_layer){own(m, rand_floats(w * outs[l], scale)),
                                             own(m, rand_floats(outs[l], scale)), w, outs[l], act};
        w = outs[l];
    }
    if (n_layers) /* one layer without a bias */
        m->layers[0].b = NULL;
    int64_t d = 0;
    for (int c = 0; c < n_parts; c++) {
        struct nr_ncf_part *p = &m->parts[c];
        p->kind = kinds[c];
        p->width = kinds[c] == NR_NCF_TOWER ? w : widths[c];
        if (kinds[c] == NR_NCF_PRODUCT || kinds[c] == NR_NCF_USER)
            p->user = own(m, rand_floats(nu * p->width, 1.0f));
        if (kinds[c] == NR_NCF_PRODUCT || kinds[c] == NR_NCF_ITEM)
            p->item = own(m, rand_floats(ni * p->width, 1.0f));
        d += p->width;
    }
    a->layers = m->layers;
    a->n_layers = n_layers;
    a->parts = m->parts;
    a->n_parts = n_parts;
    a->pred_w = n_parts ? own(m, rand_floats(d, scale)) : NULL;
    a->pred_b = rng_normal(1.0f);
    a->out_act = out_act;
}

static double ref_act(enum nr_act act, double z)
{
    switch (act) {
    case NR_ACT_RELU: return z > 0 ? z : 0;
    case NR_ACT_SIGMOID: return 1.0 / (1.0 + exp(-z));
    case NR_ACT_TANH: return tanh(z);
    default: return z;
    }
}

/* The logit of (u, i) in float64. */
static double ref_logit(const struct model *m, int64_t u, int64_t i)
{
    const struct nr_ncf_args *a = &m->a;
    double h[64], g[64];
    int64_t w = a->width_0;
    for (int64_t p = 0; p < w; p++)
        h[p] = ref_act(a->act_0, (double)a->zu[u * w + p] + a->zi[i * w + p]);
    for (int l = 0; l < a->n_layers; l++) {
        const struct nr_ncf_layer *ly = &a->layers[l];
        for (int64_t j = 0; j < ly->n_out; j++) {
            double s = ly->b ? ly->b[j] : 0.0;
            for (int64_t p = 0; p < ly->n_in; p++)
                s += h[p] * ly->w[p * ly->n_out + j];
            g[j] = ref_act(ly->act, s);
        }
        memcpy(h, g, (size_t)ly->n_out * sizeof *h);
        w = ly->n_out;
    }
    if (a->n_parts == 0)
        return h[0];
    double z = a->pred_b;
    int64_t off = 0;
    for (int c = 0; c < a->n_parts; c++) {
        const struct nr_ncf_part *p = &a->parts[c];
        for (int64_t f = 0; f < p->width; f++) {
            double x = p->kind == NR_NCF_TOWER  ? h[f]
                       : p->kind == NR_NCF_USER ? p->user[u * p->width + f]
                       : p->kind == NR_NCF_ITEM
                           ? p->item[i * p->width + f]
                           : (double)p->user[u * p->width + f] * p->item[i * p->width + f];
            z += x * a->pred_w[off + f];
        }
        off += p->width;
    }
    return z;
}

/* ---- runs ------------------------------------------------------------------ */

struct run {
    int64_t *ids;
    float *scores;
};

static enum nr_status run_topk(struct model *m, const int64_t *users, int64_t n_users,
                               const int64_t *items, int64_t n_cand, int64_t k,
                               const int64_t *indptr, const int32_t *indices, const int64_t *rows,
                               struct nr_pool *pool, struct run *out)
{
    out->ids = malloc((size_t)(n_users * k) * sizeof *out->ids);
    out->scores = malloc((size_t)(n_users * k) * sizeof *out->scores);
    struct nr_ncf_args a = m->a;
    a.users = users;
    a.n_users = n_users;
    a.items = items;
    a.n_cand = n_cand;
    a.k = k;
    a.excl_indptr = indptr;
    a.excl_indices = indices;
    a.excl_rows = rows;
    a.out_ids = out->ids;
    a.out_scores = out->scores;
    return nr_ncf_topk(&a, pool);
}

static void run_free(struct run *r)
{
    free(r->ids);
    free(r->scores);
}

/* Every returned list against the float64 reference: scores close, best first with ties by
 * id, candidates only, no exclusion, padding, and no better candidate left out. */
static void check_against_reference(struct model *m, const int64_t *users, int64_t n_users,
                                    const int64_t *items, int64_t n_cand, int64_t k,
                                    const int64_t *indptr, const int32_t *indices,
                                    const int64_t *rows, const struct run *r)
{
    const double tol = 1e-4;
    int bad = 0;
    for (int64_t q = 0; q < n_users && !bad; q++) {
        const int64_t u = users[q];
        const int64_t *ids = r->ids + q * k;
        const float *sc = r->scores + q * k;
        char *seen = calloc((size_t)(n_cand > 0 ? n_cand : 1), 1);
        int64_t n_allowed = 0;
        for (int64_t c = 0; c < n_cand; c++) {
            int ex = 0;
            if (indptr && rows[q] >= 0)
                for (int64_t e = indptr[rows[q]]; e < indptr[rows[q] + 1]; e++)
                    ex |= indices[e] == c;
            seen[c] = ex ? 2 : 0;
            n_allowed += !ex;
        }
        const int64_t want = n_allowed < k ? n_allowed : k;
        for (int64_t j = 0; j < k; j++) {
            if (j >= want) {
                bad |= ids[j] != -1 || !(isinf(sc[j]) && sc[j] < 0);
                continue;
            }
            /* the candidate position of ids[j] */
            int64_t c = -1;
            for (int64_t t = 0; t < n_cand; t++)
                if ((items ? items[t] : t) == ids[j])
                    c = t;
            bad |= c < 0 || seen[c] != 0;
            if (c < 0)
                break;
            seen[c] = 1;
            const double ref = ref_act(m->a.out_act, ref_logit(m, u, ids[j]));
            bad |= fabs(ref - sc[j]) > tol * (1.0 + fabs(ref));
            if (j)
                bad |= sc[j] > sc[j - 1] || (sc[j] == sc[j - 1] && ids[j] < ids[j - 1]);
        }
        if (want == k && want > 0)
            for (int64_t c = 0; c < n_cand; c++)
                if (seen[c] == 0) {
                    const int64_t it = items ? items[c] : c;
                    const double ref = ref_act(m->a.out_act, ref_logit(m, u, it));
                    bad |= ref > sc[k - 1] + tol * (1.0 + fabs(ref));
                }
        free(seen);
        if (bad)
            fprintf(stderr, "  user %lld (row %lld) disagrees with the reference\n", (long long)u,
                    (long long)q);
    }
    CHECK(!bad);
}

/* k results equal the first k of the full ranking (k = all candidates), bit for bit. */
static void check_prefix(const struct run *full, int64_t kf, const struct run *r, int64_t k,
                         int64_t n_users)
{
    int bad = 0;
    for (int64_t q = 0; q < n_users; q++)
        for (int64_t j = 0; j < k && j < kf; j++)
            bad |= r->ids[q * k + j] != full->ids[q * kf + j] ||
                   memcmp(&r->scores[q * k + j], &full->scores[q * kf + j], sizeof(float)) != 0;
    CHECK(!bad);
}

static void check_same(const struct run *x, const struct run *y, int64_t n)
{
    CHECK(memcmp(x->ids, y->ids, (size_t)n * sizeof *x->ids) == 0);
    CHECK(memcmp(x->scores, y->scores, (size_t)n * sizeof *x->scores) == 0);
}

/* ---- the tests ------------------------------------------------------------- */

/* One model: every user and all items, then a candidate subset with exclusions. */
static void exercise(struct model *m, struct nr_pool *pool3, int64_t k)
{
    const int64_t nu = m->n_users, ni = m->n_items;
    int64_t *users = malloc((size_t)nu * sizeof *users);
    for (int64_t u = 0; u < nu; u++)
        users[u] = (u * 7) % nu; /* not in order */
    struct run full, r, r3;
    CHECK(run_topk(m, users, nu, NULL, ni, ni, NULL, NULL, NULL, NULL, &full) == NR_OK);
    check_against_reference(m, users, nu, NULL, ni, ni, NULL, NULL, NULL, &full);
    CHECK(run_topk(m, users, nu, NULL, ni, k, NULL, NULL, NULL, NULL, &r) == NR_OK);
    check_prefix(&full, ni, &r, k, nu);
    CHECK(run_topk(m, users, nu, NULL, ni, k, NULL, NULL, NULL, pool3, &r3) == NR_OK);
    check_same(&r, &r3, nu * k);
    run_free(&r);
    run_free(&r3);
    run_free(&full);

    /* candidates: every third item, plus the last; exclusions in candidate positions */
    int64_t *items = malloc((size_t)ni * sizeof *items), n_cand = 0;
    for (int64_t i = 0; i < ni; i++)
        if (i % 3 == 1 || i == ni - 1)
            items[n_cand++] = i;
    int64_t *indptr = malloc((size_t)(nu + 1) * sizeof *indptr);
    int32_t *indices = malloc((size_t)(nu * n_cand + 1) * sizeof *indices);
    int64_t *rows = malloc((size_t)nu * sizeof *rows);
    indptr[0] = 0;
    for (int64_t u = 0; u < nu; u++) {
        int64_t e = indptr[u];
        for (int64_t c = 0; c < n_cand; c++)
            if (xorshift64s(&rng_state) % 4 == 0 || (u == 1 && c < n_cand - 2))
                indices[e++] = (int32_t)c; /* user 1: all but two excluded (padding) */
        indptr[u + 1] = e;
        rows[u] = u % 5 == 4 ? -1 : users[u];
    }
    CHECK(run_topk(m, users, nu, items, n_cand, k, indptr, indices, rows, NULL, &r) == NR_OK);
    check_against_reference(m, users, nu, items, n_cand, k, indptr, indices, rows, &r);
    CHECK(run_topk(m, users, nu, items, n_cand, k, indptr, indices, rows, pool3, &r3) == NR_OK);
    check_same(&r, &r3, nu * k);
    run_free(&r);
    run_free(&r3);
    free(items);
    free(indptr);
    free(indices);
    free(rows);
    free(users);
}

/* Per-user candidates (nr_ncf_topk_per_user): each user a random ascending row of item rows
 * with -1 padding sprinkled in (user 1: padding only), exclusions as item rows. Every user's
 * results equal nr_ncf_topk's with its row minus its exclusions as the candidate set, bit
 * for bit; threads equal one thread. */
static void exercise_per_user(struct model *m, struct nr_pool *pool3, int64_t k)
{
    const int64_t nu = m->n_users, ni = m->n_items, nc = ni < 450 ? ni * 2 / 3 : 300;
    int64_t *users = malloc((size_t)nu * sizeof *users);
    int64_t *items = malloc((size_t)(nu * nc) * sizeof *items);
    int64_t *indptr = malloc((size_t)(nu + 1) * sizeof *indptr);
    int32_t *indices = malloc((size_t)(nu * ni) * sizeof *indices);
    int64_t *rows = malloc((size_t)nu * sizeof *rows);
    int64_t *list = malloc((size_t)nc * sizeof *list);
    indptr[0] = 0;
    for (int64_t q = 0; q < nu; q++) {
        users[q] = (q * 5 + 2) % nu;
        int64_t *row = items + q * nc, got = 0;
        for (int64_t i = 0; i < ni && got < nc; i++) /* selection sampling: nc ascending rows */
            if ((int64_t)(xorshift64s(&rng_state) % (uint64_t)(ni - i)) < nc - got)
                row[got++] = i;
        for (int64_t j = 0; j < nc; j++)
            if (q == 1 || xorshift64s(&rng_state) % 5 == 0)
                row[j] = -1;
        int64_t e = indptr[q];
        for (int64_t i = 0; i < ni; i++)
            if (xorshift64s(&rng_state) % 4 == 0)
                indices[e++] = (int32_t)i;
        indptr[q + 1] = e;
        rows[q] = q % 5 == 4 ? -1 : q;
    }
    struct nr_ncf_args a = m->a;
    a.users = users;
    a.n_users = nu;
    a.items = items;
    a.n_cand = nc;
    a.k = k;
    a.excl_indptr = indptr;
    a.excl_indices = indices;
    a.excl_rows = rows;
    struct run r, r3;
    for (int excl = 0; excl < 2; excl++) {
        if (!excl)
            a.excl_indptr = NULL;
        else
            a.excl_indptr = indptr;
        r.ids = a.out_ids = malloc((size_t)(nu * k) * sizeof *r.ids);
        r.scores = a.out_scores = malloc((size_t)(nu * k) * sizeof *r.scores);
        CHECK(nr_ncf_topk_per_user(&a, NULL) == NR_OK);
        r3.ids = a.out_ids = malloc((size_t)(nu * k) * sizeof *r3.ids);
        r3.scores = a.out_scores = malloc((size_t)(nu * k) * sizeof *r3.scores);
        CHECK(nr_ncf_topk_per_user(&a, pool3) == NR_OK);
        check_same(&r, &r3, nu * k);
        int bad = 0;
        for (int64_t q = 0; q < nu; q++) {
            int64_t n = 0;
            for (int64_t j = 0; j < nc; j++) {
                const int64_t it = items[q * nc + j];
                int ex = 0;
                if (excl && rows[q] >= 0)
                    for (int64_t t = indptr[rows[q]]; t < indptr[rows[q] + 1]; t++)
                        ex |= indices[t] == it;
                if (it >= 0 && !ex)
                    list[n++] = it;
            }
            if (n == 0) {
                for (int64_t j = 0; j < k; j++)
                    bad |= r.ids[q * k + j] != -1 || !isinf(r.scores[q * k + j]);
                continue;
            }
            struct run one;
            CHECK(run_topk(m, users + q, 1, list, n, k, NULL, NULL, NULL, NULL, &one) == NR_OK);
            bad |= memcmp(one.ids, r.ids + q * k, (size_t)k * sizeof *one.ids) != 0 ||
                   memcmp(one.scores, r.scores + q * k, (size_t)k * sizeof *one.scores) != 0;
            run_free(&one);
        }
        CHECK(!bad);
        run_free(&r);
        run_free(&r3);
    }
    free(users);
    free(items);
    free(indptr);
    free(indices);
    free(rows);
    free(list);
}

static void test_models(struct nr_pool *pool3)
{
    const enum nr_ncf_part_kind neumf[2] = {NR_NCF_PRODUCT, NR_NCF_TOWER};
    const enum nr_ncf_part_kind mixed[4] = {NR_NCF_TOWER, NR_NCF_USER, NR_NCF_PRODUCT, NR_NCF_ITEM};
    const enum nr_ncf_part_kind tower[1] = {NR_NCF_TOWER};
    const enum nr_ncf_part_kind gmf_lin[3] = {NR_NCF_PRODUCT, NR_NCF_USER, NR_NCF_ITEM};
    const int64_t w8[4] = {8, 0, 0, 0}, w_odd[4] = {0, 3, 7, 2}, none[4] = {0};
    const int64_t outs_std[3] = {16, 8, 0}, outs_odd[3] = {13, 7, 0}, outs_wide[3] = {40, 18, 2};
    struct model m;
    /* NeuMF as the zoo builds it (32 -> 16 -> 8, 8 factors): x is 16 wide */
    model_init(&m, 37, 300, 32, outs_std, 2, neumf, w8, 2, NR_ACT_RELU, NR_ACT_SIGMOID, 0.5f);
    exercise(&m, pool3, 10);
    exercise_per_user(&m, pool3, 10);
    model_free(&m);
    /* odd widths everywhere (tails of every kernel, a prediction input of 8 + 7 + 5) */
    model_init(&m, 23, 517, 11, outs_odd, 2, mixed, w_odd, 4, NR_ACT_RELU, NR_ACT_LINEAR, 0.5f);
    exercise(&m, pool3, 7);
    exercise_per_user(&m, pool3, 7);
    model_free(&m);
    /* tanh and sigmoid in the tower, three layers, a relu output */
    model_init(&m, 19, 260, 6, outs_wide, 3, tower, none, 1, NR_ACT_TANH, NR_ACT_RELU, 0.7f);
    m.layers[1].act = NR_ACT_SIGMOID;
    exercise(&m, pool3, 12);
    model_free(&m);
    /* no tower: GMF plus a user and an item vector, tanh output */
    model_init(&m, 21, 333, 0, NULL, 0, gmf_lin, w_odd + 1, 3, NR_ACT_LINEAR, NR_ACT_TANH, 0.5f);
    exercise(&m, pool3, 5);
    exercise_per_user(&m, pool3, 40);
    model_free(&m);
    /* no prediction layer: a 1-wide hoisted layer, sigmoid */
    model_init(&m, 17, 129, 1, NULL, 0, NULL, NULL, 0, NR_ACT_LINEAR, NR_ACT_SIGMOID, 1.0f);
    exercise(&m, pool3, 9);
    exercise_per_user(&m, pool3, 3);
    model_free(&m);
    /* saturated sigmoid: most outputs are 1.0f, ties broken by id (the prefix check) */
    model_init(&m, 13, 270, 8, outs_std + 1, 1, neumf, w8, 2, NR_ACT_RELU, NR_ACT_SIGMOID, 6.0f);
    exercise(&m, pool3, 25);
    exercise_per_user(&m, pool3, 25);
    model_free(&m);
}

static void test_duplicates_tie_by_id(void)
{
    const enum nr_ncf_part_kind neumf[2] = {NR_NCF_TOWER, NR_NCF_PRODUCT};
    const int64_t w[2] = {0, 5}, outs[1] = {4};
    struct model m;
    model_init(&m, 3, 90, 6, outs, 1, neumf, w, 2, NR_ACT_RELU, NR_ACT_SIGMOID, 0.5f);
    /* every item the same as item 0: all scores tie, ids ascending */
    for (int64_t i = 1; i < 90; i++) {
        memcpy((float *)m.a.zi + i * 6, m.a.zi, 6 * sizeof(float));
        memcpy((float *)m.parts[1].item + i * 5, m.parts[1].item, 5 * sizeof(float));
    }
    const int64_t users[3] = {2, 0, 1};
    struct run r;
    CHECK(run_topk(&m, users, 3, NULL, 90, 40, NULL, NULL, NULL, NULL, &r) == NR_OK);
    int ok = 1;
    for (int64_t q = 0; q < 3; q++)
        for (int64_t j = 0; j < 40; j++)
            ok &= r.ids[q * 40 + j] == j && r.scores[q * 40 + j] == r.scores[q * 40];
    CHECK(ok);
    run_free(&r);
    model_free(&m);
}

static void test_errors_and_abort(struct nr_pool *pool3)
{
    const enum nr_ncf_part_kind neumf[2] = {NR_NCF_PRODUCT, NR_NCF_TOWER};
    const int64_t w[2] = {4, 0}, outs[1] = {4};
    struct model m;
    model_init(&m, 5, 1000, 8, outs, 1, neumf, w, 2, NR_ACT_RELU, NR_ACT_SIGMOID, 0.5f);
    const int64_t users[5] = {0, 1, 2, 3, 4};
    struct run r;
    volatile int stop = 1;
    m.a.abort = &stop;
    CHECK(run_topk(&m, users, 5, NULL, 1000, 3, NULL, NULL, NULL, pool3, &r) == NR_ABORTED);
    run_free(&r);
    struct nr_ncf_args pu = m.a;
    int64_t rows_pu[5 * 4], oid[5 * 3];
    float osc[5 * 3];
    for (int i = 0; i < 20; i++)
        rows_pu[i] = i % 4 == 3 ? -1 : i;
    pu.users = users;
    pu.n_users = 5;
    pu.items = rows_pu;
    pu.n_cand = 4;
    pu.k = 3;
    pu.out_ids = oid;
    pu.out_scores = osc;
    CHECK(nr_ncf_topk_per_user(&pu, pool3) == NR_ABORTED);
    pu.abort = NULL;
    CHECK(nr_ncf_topk_per_user(&pu, pool3) == NR_OK);
    CHECK(oid[0] == 0 || oid[0] == 1 || oid[0] == 2);
    pu.items = NULL; /* candidates but no matrix */
    CHECK(nr_ncf_topk_per_user(&pu, NULL) == NR_ERR_VALUE);
    pu.items = rows_pu;
    pu.k = 0;
    CHECK(nr_ncf_topk_per_user(&pu, NULL) == NR_ERR_VALUE);
    pu.k = 3;
    pu.n_parts = 1; /* a tower without its part */
    CHECK(nr_ncf_topk_per_user(&pu, NULL) == NR_ERR_SHAPE);
    m.a.abort = NULL;
    CHECK(run_topk(&m, users, 5, NULL, 1000, 0, NULL, NULL, NULL, NULL, &r) == NR_ERR_VALUE);
    run_free(&r);
    struct nr_ncf_args a = m.a;
    CHECK(nr_ncf_check(&a) == NR_OK);
    a.out_act = NR_ACT_SOFTMAX;
    CHECK(nr_ncf_check(&a) == NR_ERR_VALUE);
    a = m.a;
    m.layers[0].n_in = 7; /* does not chain with width_0 */
    CHECK(nr_ncf_check(&a) == NR_ERR_SHAPE);
    m.layers[0].n_in = 8;
    m.layers[0].n_out = 1; /* a 1-unit tower layer */
    CHECK(nr_ncf_check(&a) == NR_ERR_SHAPE);
    m.layers[0].n_out = 4;
    m.parts[1].width = 5; /* the tower part is not the tower's width */
    CHECK(nr_ncf_check(&a) == NR_ERR_SHAPE);
    m.parts[1].width = 4;
    a.n_parts = 1; /* a tower without its part */
    CHECK(nr_ncf_check(&a) == NR_ERR_SHAPE);
    a = m.a;
    a.n_parts = 0; /* no prediction layer needs a 1-wide hoisted layer alone */
    CHECK(nr_ncf_check(&a) == NR_ERR_SHAPE);
    a = m.a;
    a.pred_w = NULL;
    CHECK(nr_ncf_check(&a) == NR_ERR_SHAPE);
    model_free(&m);
}

/* Every float below the floor maps below act(z), near the saturations included. */
static void test_logit_floor(void)
{
    const enum nr_act acts[4] = {NR_ACT_LINEAR, NR_ACT_RELU, NR_ACT_SIGMOID, NR_ACT_TANH};
    int bad = 0, useful = 0;
    for (int ai = 0; ai < 4; ai++)
        for (int i = -4000; i <= 4000; i++) {
            float z = (float)i * 0.025f + (float)(i % 7) * 1e-4f; /* -100 .. 100 */
            const float fl = nr_ncf_logit_floor(acts[ai], z);
            const float s = acts[ai] == NR_ACT_SIGMOID ? 1.0f / (1.0f + expf(-z))
                            : acts[ai] == NR_ACT_TANH  ? tanhf(z)
                            : acts[ai] == NR_ACT_RELU  ? (z > 0 ? z : 0)
                                                       : z;
            if (isinf(fl) && fl < 0)
                continue;
            useful += z - fl < 1e-3f;
            const float below = nextafterf(fl, -INFINITY);
            float sb;
            if (acts[ai] == NR_ACT_SIGMOID) {
                /* kernels.c's sigmoid: both branches */
                sb = below >= 0 ? 1.0f / (1.0f + expf(-below)) : expf(below) / (1.0f + expf(below));
                float sz = z >= 0 ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
                bad |= !(sb < sz);
            } else {
                sb = acts[ai] == NR_ACT_TANH   ? tanhf(below)
                     : acts[ai] == NR_ACT_RELU ? (below > 0 ? below : 0)
                                               : below;
                bad |= !(sb < s);
            }
        }
    CHECK(!bad);
    CHECK(useful > 4000); /* a tight floor for most logits, not -inf everywhere */
    CHECK(nr_ncf_logit_floor(NR_ACT_SIGMOID, -90.0f) == -INFINITY);
    CHECK(nr_ncf_logit_floor(NR_ACT_RELU, -1.0f) == -INFINITY);
    CHECK(nr_ncf_logit_floor(NR_ACT_LINEAR, 2.5f) == 2.5f);
}

int main(void)
{
    setvbuf(stderr, NULL, _IONBF, 0);
    struct nr_pool *pool3 = NULL;
    if (nr_pool_init(&pool3, 3) != NR_OK) {
        fprintf(stderr, "test_score_ncf: cannot start the thread pool\n");
        return 2;
    }
    CHECK(strcmp(nr_ncf_part_names[NR_NCF_PRODUCT], "product") == 0);
    test_logit_floor();
    const enum nr_simd_level best = nr_simd_detect();
    for (int level = NR_SIMD_BASELINE; level <= (int)best; level++) {
        CHECK(nr_simd_set_level((enum nr_simd_level)level) == (enum nr_simd_level)level);
        const int before = n_failed;
        test_models(pool3);
        test_duplicates_tie_by_id();
        test_errors_and_abort(pool3);
        fprintf(stderr, "test_score_ncf: %s: %d failed\n", nr_simd_name((enum nr_simd_level)level),
                n_failed - before);
    }
    nr_pool_free(pool3);
    return nr_test_report("test_score_ncf");
}
