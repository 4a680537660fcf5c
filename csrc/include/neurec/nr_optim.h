/*
 * nr_optim.h: optimizer steps over Python-owned parameter arrays.
 *
 * Formulas follow Keras 3 exactly (epsilon outside the square root for Adam,
 * inside for Adagrad/RMSprop; SGD velocity v = momentum * v - lr * g).
 * Parameters and optimizer slots are borrowed: C never allocates or frees
 * them. A step on one parameter is single-threaded; different parameters may
 * be stepped concurrently.
 */
#ifndef NR_OPTIM_H
#define NR_OPTIM_H

#include <stdint.h>

enum nr_optim_kind {
    NR_OPTIM_SGD = 0,
    NR_OPTIM_ADAM = 1,
    NR_OPTIM_ADAGRAD = 2,
    NR_OPTIM_RMSPROP = 3,
};

struct nr_optim {
    enum nr_optim_kind kind;
    float lr;        /* learning rate */
    float beta1;     /* Adam */
    float beta2;     /* Adam */
    float epsilon;   /* Adam, Adagrad, RMSprop */
    float momentum;  /* SGD, RMSprop */
    float rho;       /* RMSprop */
    int nesterov;    /* SGD */
    int centered;    /* RMSprop */
    int amsgrad;     /* Adam: keep the running maximum of v in slot 3 */
    int catch_up;    /* lazy rows: apply the skipped steps' decay in closed form (see below) */
    const struct nr_optim_tables *tables; /* optional precomputed powers (borrowed) */
};

/*
 * Sparse (lazy) updates of embedding rows.
 *
 * A batch updates only the rows it touched. Dense Adam (or momentum SGD,
 * RMSprop) would also move an untouched row: its moments decay and keep
 * pushing it. With catch_up = 1, when a row is touched again after s skipped
 * steps its state is brought forward in closed form before the step:
 *   Adam: w -= alpha_t * m * sum_{j=1..s} (b1 / sqrt(b2))^j / (sqrt(v) + eps),
 *         m *= b1^s, v *= b2^s   (amsgrad: sum of b1^j over sqrt(vhat))
 *   SGD momentum: w += v * sum_{j=1..s} mu^j (Nesterov: times mu), v *= mu^s
 *   RMSprop: v *= rho^s (centered: mean_grad too); momentum as SGD.
 * This equals dense updates up to epsilon's effect and the change of Adam's
 * bias correction over the skipped steps, at the cost of lazy updates.
 * row_steps then holds the last step at which each row was updated and Adam
 * uses the global step for its bias correction. With catch_up = 0 (TF's
 * LazyAdam with per-row counts) row_steps counts each row's own updates.
 */
struct nr_optim_tables {
    int64_t len;   /* entries of each table; index s (or t) < len */
    float *corr;   /* Adam: sqrt(1 - b2^t) / (1 - b1^t) */
    float *p1;     /* b1^s (Adam) or momentum^s */
    float *p2;     /* b2^s (Adam) or rho^s (RMSprop) */
    float *geo;    /* Adam: sum_{j<=s} (b1/sqrt(b2))^j (amsgrad: b1^j); momentum: sum mu^j */
    int corr_saturated; /* beta1^len and beta2^len are below float precision: corr(t >= len) = 1 */
};

/* Fill the tables (each of len floats, caller-owned) for o's hyper-parameters. */
void nr_optim_tables_fill(struct nr_optim_tables *tb, const struct nr_optim *o);

/* One trainable array and its optimizer state, all borrowed. */
struct nr_param {
    float *w; /* rows * cols parameters, updated in place */
    int64_t rows, cols; /* an embedding table has one row per id */
    float *slot[3]; /* optimizer state arrays shaped like w, or NULL when unused:
                       SGD: [velocity]; Adam: [m, v, vhat(amsgrad)];
                       Adagrad: [accumulator]; RMSprop: [velocity, momentum, mean_grad] */
    int64_t *row_steps; /* per-row step counts for lazy Adam on embeddings, or NULL */
    float l2; /* L2 penalty factor: loss += l2 * sum(w^2) */
    int is_table; /* 1 for embedding tables (sparse gradients) */
    int frozen; /* 1: never updated (a non-trainable layer's weight) */
};

/* Update every element of p with gradient g (rows*cols values; the L2 term is
 * added here). t >= 1 is the optimizer's step count after this step. */
void nr_optim_step_dense(const struct nr_optim *o, struct nr_param *p, const float *g, int64_t t);

/* Lazy update of the n listed rows of p with their gradients g (n*cols values,
 * row i of g belongs to row ids[i] of p) at global step t >= 1 (see the
 * comment on struct nr_optim_tables for catch_up and row_steps). Rows not
 * listed are untouched, state included. ids must be distinct and in range.
 * A row step count outside its valid range ([0, t) before the step: a crafted
 * or corrupted state) is treated as "no skipped steps" (catch_up) or as t
 * (per-row counts) and overwritten; it never indexes a table out of bounds. */
void nr_optim_step_rows(const struct nr_optim *o, struct nr_param *p, const int64_t *ids, int64_t n,
                        const float *g, int64_t t);

#endif /* NR_OPTIM_H */
