/*
 * nr_score_ncf.h: full-catalogue scoring and top-K for NCF models (NeuMF, MLP).
 *
 * The common NCF shape, once the tower's first Dense over Concatenate([user
 * parts, item parts]) has been split by the caller into a user table
 * zu = x_u W_u and an item table zi = x_i W_i + b ("hoisting"):
 *
 *     h_0   = act_0(zu[u] + zi[i])                    width_0 values (0: no tower)
 *     h_l   = act_l(h_{l-1} W_l + b_l), l = 1..m      the rest of the tower
 *     x     = concat(parts)                           the prediction layer's input
 *     z     = x . w + b                               the logit
 *     score = out_act(z)
 *
 * Each part is, in concatenation order, one of: the tower output h_m, GMF's
 * product p_u * q_i, a user vector v_u, an item vector v_i (tables of one row
 * per user or item). With no parts there is no prediction layer: width_0 must
 * be 1, m 0, and score = out_act(h_0) (an MLP whose only Dense was hoisted).
 *
 * Scores are those of the generic plan (plan_ops.c, kernels.c) bit for bit at
 * the same SIMD level: every sum runs in the plan's order (a Dense's bias
 * first, then the inputs in order; the prediction layer's dot in eight
 * partial sums, nr_dot's order), so the top-K, ties included, is the generic
 * path's. Ranking: a higher score first, equal scores by the lower item id
 * (nr_topk's order); NaN scores never enter; excluded items are skipped. Only
 * the few logits that may reach a user's top-K go through out_act, so a
 * sigmoid costs nothing per pair.
 *
 * Work: items in blocks whose item-side rows are transposed so that a tile of
 * 8, 16 or 32 items (one per SIMD lane) runs through the whole tower for one
 * user while the tile's activations stay in L1; each thread of the pool takes
 * a range of users and keeps their heaps. Kernels are compiled per SIMD level
 * (nr_simd.h).
 *
 * Ownership: the caller owns every array; C borrows them for the call and
 * allocates only per-thread scratch, freed before returning. Thread safety:
 * distinct calls may run at once (they share no state).
 */
#ifndef NR_SCORE_NCF_H
#define NR_SCORE_NCF_H

#include <stdint.h>

#include "neurec/nr_kernels.h"
#include "neurec/nr_pool.h"
#include "neurec/nr_status.h"

enum nr_ncf_part_kind {
    NR_NCF_TOWER = 0,   /* the tower output h_m (width: the last layer's, or width_0) */
    NR_NCF_PRODUCT = 1, /* user[u] * item[i], element-wise (GMF) */
    NR_NCF_USER = 2,    /* user[u] */
    NR_NCF_ITEM = 3,    /* item[i] */
};
#define NR_NCF_PART_COUNT 4

/* "tower", "product", "user", "item" (exported to Python as _core.NCF_PARTS). */
extern const char *const nr_ncf_part_names[NR_NCF_PART_COUNT];

/* One Dense layer of the tower: out = act(in W + b). */
struct nr_ncf_layer {
    const float *w;        /* n_in x n_out, row-major */
    const float *b;        /* n_out, or NULL (no bias) */
    int64_t n_in, n_out;   /* n_out >= 2 (a 1-wide Dense is the prediction layer) */
    enum nr_act act;       /* linear, relu, sigmoid or tanh */
};

/* One input of the prediction layer. */
struct nr_ncf_part {
    enum nr_ncf_part_kind kind;
    int64_t width;         /* its values (the tower: equal to the tower's width) */
    const float *user;     /* n_user_rows x width (PRODUCT, USER), else NULL */
    const float *item;     /* n_item_rows x width (PRODUCT, ITEM), else NULL */
};

struct nr_ncf_args {
    /* the model */
    const float *zu;                   /* n_user_rows x width_0 (NULL when width_0 is 0) */
    const float *zi;                   /* n_item_rows x width_0 */
    int64_t width_0;
    enum nr_act act_0;
    const struct nr_ncf_layer *layers; /* n_layers of them, layers[0].n_in == width_0 */
    int n_layers;
    const struct nr_ncf_part *parts;   /* n_parts of them; at most one TOWER part */
    int n_parts;
    const float *pred_w;               /* sum of the parts' widths (NULL without parts) */
    float pred_b;                      /* the prediction layer's bias (0 without one) */
    enum nr_act out_act;               /* linear, relu, sigmoid or tanh */
    /* the work */
    const int64_t *users;              /* n_users user rows to score */
    int64_t n_users;
    const int64_t *items;              /* nr_ncf_topk: n_cand candidate item rows, strictly
                                          ascending, or NULL: every row 0..n_cand-1.
                                          nr_ncf_topk_per_user: n_users x n_cand, row r the
                                          candidates of users[r] (see there) */
    int64_t n_cand;
    int64_t k;                         /* >= 1 */
    const int64_t *excl_indptr;        /* CSR of excluded candidates, or NULL; indices are */
    const int32_t *excl_indices;       /* candidate positions (0..n_cand-1), ascending per row;
                                          nr_ncf_topk_per_user: item rows, ascending per row */
    const int64_t *excl_rows;          /* CSR row of each scored user (-1: none), or NULL */
    int64_t *out_ids;                  /* n_users * k: item rows, best first, -1 padded */
    float *out_scores;                 /* n_users * k: scores, best first, -inf padded */
    const volatile int *abort;         /* polled between item blocks (per user), or NULL */
};

/* Check the model's description: widths chain, a TOWER part matches the tower,
 * the activations are supported. Returns NR_OK or NR_ERR_SHAPE / NR_ERR_VALUE.
 * Does not read the tables. */
enum nr_status nr_ncf_check(const struct nr_ncf_args *a);

/* Score every candidate for every user and keep the k best (see the top of
 * this file). The ids and tables are trusted (the binding checks them).
 * Errors: those of nr_ncf_check, NR_ERR_VALUE (k < 1 or negative sizes),
 * NR_ERR_NOMEM, NR_ABORTED (the abort flag was set; the outputs are then
 * incomplete). */
enum nr_status nr_ncf_topk(const struct nr_ncf_args *a, struct nr_pool *pool);

/* As nr_ncf_topk, but each user has its own candidates (the re-ranking stage of a
 * two-stage recommender): row r of the n_users x n_cand matrix a->items holds the item
 * rows of users[r], strictly ascending apart from -1 entries (padding, for users with
 * fewer candidates; skipped wherever they are). Excluded items (a->excl_indices: item
 * rows, ascending per CSR row) are skipped; ranking, ties (the lower item row first),
 * NaN, padding of the outputs and scores are nr_ncf_topk's, bit for bit: a user's
 * results equal nr_ncf_topk's with its row as the candidate set. Work: one user at a
 * time per thread, its candidates gathered and transposed in blocks. The ids are
 * trusted (the binding checks them). Errors: those of nr_ncf_topk; NR_ERR_VALUE also
 * for a NULL a->items with users and candidates. */
enum nr_status nr_ncf_topk_per_user(const struct nr_ncf_args *a, struct nr_pool *pool);

/* A logit below which out_act's value is certainly lower than act(z): every
 * float t < nr_ncf_logit_floor(act, z) has act(t) < act(z) (act as the plan
 * computes it). The heaps skip such logits without evaluating act; -INFINITY
 * when no such bound helps (act(z) is the activation's minimum). */
float nr_ncf_logit_floor(enum nr_act act, float z);

#endif /* NR_SCORE_NCF_H */
