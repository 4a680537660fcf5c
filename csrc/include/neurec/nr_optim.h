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
    const float *adam_corr;  /* optional table: adam_corr[t] = sqrt(1 - beta2^t) / (1 - beta1^t)
                                for 1 <= t < adam_corr_len (borrowed; saves two pow() per row) */
    int64_t adam_corr_len;
};

/* Fill table[t] = sqrt(1 - beta2^t) / (1 - beta1^t) for 1 <= t < len (table[0] = 0). */
void nr_optim_adam_table(float *table, int64_t len, float beta1, float beta2);

/* One trainable array and its optimizer state, all borrowed. */
struct nr_param {
    float *w;            /* rows * cols parameters, updated in place */
    int64_t rows, cols;  /* an embedding table has one row per id */
    float *slot[3];      /* optimizer state arrays shaped like w, or NULL when unused:
                            SGD: [velocity]; Adam: [m, v, vhat(amsgrad)];
                            Adagrad: [accumulator]; RMSprop: [velocity, momentum, mean_grad] */
    int64_t *row_steps;  /* per-row step counts for lazy Adam on embeddings, or NULL */
    float l2;            /* L2 penalty factor: loss += l2 * sum(w^2) */
    int is_table;        /* 1 for embedding tables (sparse gradients) */
    int frozen;          /* 1: never updated (a non-trainable layer's weight) */
};

/* Update every element of p with gradient g (rows*cols values; the L2 term is
 * added here). t >= 1 is the optimizer's step count after this step. */
void nr_optim_step_dense(const struct nr_optim *o, struct nr_param *p, const float *g, int64_t t);

/* Lazy update of the n listed rows of p with their gradients g (n*cols values,
 * row i of g belongs to row ids[i] of p). Adam uses per-row step counts in
 * p->row_steps (incremented here) for the bias correction, like TF's
 * LazyAdam. Rows not listed are untouched, state included. ids must be
 * distinct and in range. */
void nr_optim_step_rows(const struct nr_optim *o, struct nr_param *p, const int64_t *ids,
                        int64_t n, const float *g);

#endif /* NR_OPTIM_H */
