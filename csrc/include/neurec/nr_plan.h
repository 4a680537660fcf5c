/*
 * nr_plan.h: the plan executor, neurec's training and scoring engine.
 *
 * Python lowers a Keras-style graph to a plan: a topologically ordered list
 * of ops over "values" (per-sample float32 tensors) and parameters (borrowed
 * NumPy arrays, see nr_optim.h). A plan then runs whole chunks of training
 * batches (shuffle order given, gather rows by index from the caller's input
 * arrays, forward, loss, backward, optimizer step) or of prediction, without
 * returning to Python.
 *
 * Values. Value v holds value_size[v] floats per sample, stored for a batch
 * as a contiguous (batch, value_size[v]) block. An ALIAS op (Flatten,
 * Reshape) shares its input's storage.
 *
 * Threads. Thread ith of nth takes a contiguous block of each batch for the
 * forward and backward passes; dense-parameter gradients go to per-thread
 * buffers that are summed in thread order, and each dense parameter's update
 * runs on one thread. Embedding-table gradients are summed per thread over its
 * own samples (in sample order) at the end of its backward pass. In the update
 * phase each thread updates the rows only it saw; a row several threads saw is
 * updated by the first of them with the partial sums added in thread order.
 * For a fixed thread count results are bit-for-bit reproducible; one thread
 * sums each row in sample order. In Hogwild mode (sparse, more than one
 * thread) each thread instead trains whole batches in its own scratch rows and
 * applies every update at once, racing with the others. Batches with little
 * work run on fewer threads (a grain per thread, see plan_run.c).
 *
 * Ownership. The plan owns its scratch (nr_plan_init / nr_plan_free). It
 * borrows parameters, optimizer slots and the caller's arrays only for the
 * duration of each call. A plan is not thread-safe: one call at a time.
 */
#ifndef NR_PLAN_H
#define NR_PLAN_H

#include <stdint.h>

#include "neurec/nr_optim.h"
#include "neurec/nr_pool.h"
#include "neurec/nr_status.h"

enum nr_dtype {
    NR_DTYPE_F32 = 0,
    NR_DTYPE_F64 = 1,
    NR_DTYPE_I32 = 2,
    NR_DTYPE_I64 = 3,
};

/* A borrowed, C-contiguous (n, width) array of one of the nr_dtype types. */
struct nr_array {
    const void *data;
    enum nr_dtype dtype;
    int64_t n;     /* rows (samples) */
    int64_t width; /* values per row */
};

enum nr_op_kind {
    NR_OP_INPUT = 0,     /* out = float(inputs[in[0]][sample]); dim[0] = width */
    NR_OP_EMBEDDING = 1, /* out[j] = table[ids[sample, j]]; in[0] = input slot, param[0] = table,
                            dim[0] = ids per sample, dim[1] = output_dim */
    NR_OP_DENSE = 2,     /* out = x @ kernel + bias over the last axis; param = {kernel, bias or -1};
                            dim[0] = rows per sample, dim[1] = in features, dim[2] = units */
    NR_OP_ACT = 3,       /* out = act(x); act; dim[0] = rows per sample, dim[1] = last axis */
    NR_OP_DOT = 4,       /* batch dot of per-sample matrices X (dim[0] x dim[1]) and Y (dim[2] x dim[3])
                            contracting axis dim[4] of X and dim[5] of Y; flag = normalize (L2 along
                            the contracted axis first). Output is free(X) x free(Y). */
    NR_OP_CONCAT = 5,    /* out = concatenation of the n_in inputs along an axis; dim[0] = product
                            of the per-sample dims before that axis */
    NR_OP_ADD = 6,       /* out = sum of the n_in inputs (same size) */
    NR_OP_MUL = 7,       /* out = product of the n_in inputs (same size) */
    NR_OP_DROPOUT = 8,   /* training: out = x * mask / (1 - rate); inference: out = x */
    NR_OP_ALIAS = 9,     /* out shares storage with in[0] (Flatten, Reshape) */
    NR_OP_SUB = 10,      /* out = in[0] - in[1] */
    NR_OP_AVERAGE = 11,  /* out = mean of the n_in inputs */
};

#define NR_OP_MAX_IN 16

struct nr_op {
    enum nr_op_kind kind;
    int32_t out;                /* value id written */
    int32_t n_in;               /* number of inputs used in in[] */
    int32_t in[NR_OP_MAX_IN];   /* value ids read (INPUT, EMBEDDING: an input slot) */
    int32_t param[2];           /* parameter ids, -1 when absent */
    int32_t act;                /* enum nr_act for ACT */
    int32_t flag;               /* DOT: normalize */
    int64_t dim[6];             /* kind-specific sizes, see enum nr_op_kind */
    float rate;                 /* DROPOUT rate in [0, 1) */
};

enum nr_loss {
    NR_LOSS_BCE = 0,        /* binary cross-entropy on probabilities (clipped to [1e-7, 1 - 1e-7]) */
    NR_LOSS_BCE_LOGITS = 1, /* binary cross-entropy on logits */
    NR_LOSS_MSE = 2,
    NR_LOSS_MAE = 3,
};

/* Everything a plan needs, borrowed by nr_plan_init (copied, except params). */
struct nr_plan_desc {
    int32_t n_ops;
    const struct nr_op *ops;
    int32_t n_values;
    const int64_t *value_size;  /* floats per sample of each value */
    int32_t n_params;
    struct nr_param *params;    /* borrowed until nr_plan_free; Python keeps them alive */
    int32_t n_inputs;           /* input slots */
    int32_t output;             /* value id of the model output */
    enum nr_loss loss;
    int32_t logits;             /* value id of the pre-sigmoid logits of the output, or -1: when
                                   set and loss is BCE, the loss is computed stably from logits */
    struct nr_optim optim;
    int32_t sparse;             /* 1: embedding tables get lazy row updates; 0: dense updates */
    int32_t hogwild;            /* with sparse: each thread updates the rows of its own samples
                                   right after its backward pass, without synchronisation (rows
                                   shared by two threads' samples race, as in word2vec/LightFM);
                                   faster, not reproducible with more than one thread; a bad id
                                   may leave its batch partly applied (Python checks ids first) */
};

#define NR_AUC_BINS 8192

/* Sums over the samples of a fit chunk, for the loss and metrics. */
struct nr_fit_stats {
    double loss_sum;  /* sum over samples of the per-sample mean loss */
    double samples;
    double elements;  /* output values seen (samples * output size) */
    double correct;   /* binary accuracy: (pred > 0.5) == label */
    double sq_err;
    double abs_err;
    double auc_pos[NR_AUC_BINS]; /* label-weighted histogram of predictions in [0, 1] */
    double auc_neg[NR_AUC_BINS];
};

struct nr_plan; /* opaque */

/* Validate desc and create a plan. Errors: NR_ERR_SHAPE / NR_ERR_VALUE for an
 * inconsistent description, NR_ERR_NOMEM. On error *out is NULL. */
enum nr_status nr_plan_init(struct nr_plan **out, const struct nr_plan_desc *desc);

/* Free the plan's scratch. NULL is a no-op. Never touches parameters. */
void nr_plan_free(struct nr_plan *plan);

/* Replace the optimizer hyper-parameters (kind included; slots must already
 * match). Used by learning-rate schedules between chunks. */
void nr_plan_set_optim(struct nr_plan *plan, const struct nr_optim *optim);

/* Make sure scratch holds batches of up to cap samples. Errors: NR_ERR_NOMEM
 * (also when a size computation would overflow; the plan keeps its previous
 * capacity), NR_ERR_VALUE for cap < 0. */
enum nr_status nr_plan_reserve(struct nr_plan *plan, int64_t cap);

/* Train on the samples idx[0..n) in batches of batch_size (the last one may
 * be short), in that order. inputs has desc->n_inputs arrays and y the
 * labels (width 1 or the output size). *step is the optimizer step count,
 * incremented once per batch. seed drives dropout. stats is accumulated into
 * (not cleared). abort, if not NULL, is polled between batches.
 * A batch_size above n trains one batch of n samples (the same result).
 * Errors: NR_ERR_VALUE (batch_size < 1, n < 0, or *step outside
 * [0, INT64_MAX - batches]: nothing is trained), NR_ERR_INDEX (an embedding id
 * out of range: the offending batch is not applied), NR_ERR_NOMEM, NR_ABORTED. */
enum nr_status nr_plan_fit(struct nr_plan *plan, struct nr_pool *pool,
                           const struct nr_array *inputs, const struct nr_array *y,
                           const int64_t *idx, int64_t n, int64_t batch_size,
                           int64_t *step, uint64_t seed, struct nr_fit_stats *stats,
                           const volatile int *abort);

/* Forward pass (inference mode) for samples start..start+n of the inputs,
 * writing n * value_size[output] floats to out. */
enum nr_status nr_plan_predict(struct nr_plan *plan, struct nr_pool *pool,
                               const struct nr_array *inputs, int64_t start, int64_t n,
                               float *out);

#endif /* NR_PLAN_H */
