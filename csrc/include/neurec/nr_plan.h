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
 * Threads. A training step runs in three phases. Compute: thread ith of nth
 * takes a contiguous block of the batch for the forward and backward passes;
 * dense-parameter gradients go to per-thread buffers, and each thread sums its
 * own samples' embedding-table gradients (in sample order). Reduce: each dense
 * parameter's per-thread gradients are summed in thread order by one thread; a
 * table row that several threads saw gets the partial sums added in thread
 * order by the first of them. Apply: the optimizer steps, each dense
 * parameter on the thread that reduced it, each table row on the thread that
 * holds its sum. An optional reduce hook runs between reduce and apply (see
 * nr_plan_set_reduce_hook).
 * For a fixed thread count results are bit-for-bit reproducible; one thread
 * sums each row in sample order. In Hogwild mode (sparse, more than one
 * thread) each thread instead trains whole batches in its own scratch rows and
 * applies every update at once, racing with the others. Batches with little
 * work run on fewer threads (a grain per thread, see plan_run.c).
 *
 * Ownership. The plan owns its scratch (nr_plan_init / nr_plan_free). It
 * borrows parameters, optimizer slots and the caller's arrays only for the
 * duration of each call. Each embedding table's arrays are taken into a table
 * object (struct nr_table, nr_table.h) when the plan is built, and read
 * through it from then on. A plan is not thread-safe: one call at a time.
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
    NR_OP_DENSE = 2, /* out = x @ kernel + bias over the last axis; param = {kernel, bias or -1};
                        dim[0] = rows per sample, dim[1] = in features, dim[2] = units */
    NR_OP_ACT = 3, /* out = act(x); act; dim[0] = rows per sample, dim[1] = last axis */
    NR_OP_DOT = 4, /* batch dot of per-sample matrices X (dim[0] x dim[1]) and Y (dim[2] x dim[3])
                      contracting axis dim[4] of X and dim[5] of Y; flag = normalize (L2 along
                      the contracted axis first). Output is free(X) x free(Y). */
    NR_OP_CONCAT = 5, /* out = concatenation of the n_in inputs along an axis; dim[0] = product
                         of the per-sample dims before that axis */
    NR_OP_ADD = 6, /* out = sum of the n_in inputs (same size) */
    NR_OP_MUL = 7, /* out = product of the n_in inputs (same size) */
    NR_OP_DROPOUT = 8, /* training: out = x * mask / (1 - rate); inference: out = x */
    NR_OP_ALIAS = 9, /* out shares storage with in[0] (Flatten, Reshape) */
    NR_OP_SUB = 10, /* out = in[0] - in[1] */
    NR_OP_AVERAGE = 11, /* out = mean of the n_in inputs */
};

#define NR_OP_MAX_IN 16

struct nr_op {
    enum nr_op_kind kind;
    int32_t out; /* value id written */
    int32_t n_in; /* number of inputs used in in[] */
    int32_t in[NR_OP_MAX_IN]; /* value ids read (INPUT, EMBEDDING: an input slot) */
    int32_t param[2]; /* parameter ids, -1 when absent */
    int32_t act; /* enum nr_act for ACT */
    int32_t flag; /* DOT: normalize */
    int64_t dim[6]; /* kind-specific sizes, see enum nr_op_kind */
    float rate; /* DROPOUT rate in [0, 1) */
};

enum nr_loss {
    NR_LOSS_BCE = 0, /* binary cross-entropy on probabilities (clipped to [1e-7, 1 - 1e-7]) */
    NR_LOSS_BCE_LOGITS = 1, /* binary cross-entropy on logits */
    NR_LOSS_MSE = 2,
    NR_LOSS_MAE = 3,
};

/* Everything a plan needs, borrowed by nr_plan_init (copied, except params). */
struct nr_plan_desc {
    int32_t n_ops;
    const struct nr_op *ops;
    int32_t n_values;
    const int64_t *value_size; /* floats per sample of each value */
    int32_t n_params;
    struct nr_param *params; /* borrowed until nr_plan_free; Python keeps them alive */
    int32_t n_inputs; /* input slots */
    int32_t output; /* value id of the model output */
    enum nr_loss loss;
    int32_t logits; /* value id of the pre-sigmoid logits of the output, or -1: when
                       set and loss is BCE, the loss is computed stably from logits */
    struct nr_optim optim;
    int32_t sparse; /* 1: embedding tables get lazy row updates; 0: dense updates */
    int32_t hogwild; /* with sparse: each thread updates the rows of its own samples
                        right after its backward pass, without synchronisation (rows
                        shared by two threads' samples race, as in word2vec/LightFM);
                        faster, not reproducible with more than one thread; a bad id
                        may leave its batch partly applied (Python checks ids first) */
};

#define NR_AUC_BINS 8192

/* Sums over the samples of a fit chunk, for the loss and metrics. With sample
 * weights (nr_plan_fit_weighted) loss_sum counts each sample's loss w times, so
 * loss_sum / samples is Keras's weighted epoch loss; the metric sums stay
 * unweighted, as Keras's compiled `metrics` (only its `weighted_metrics` see
 * the weights). */
struct nr_fit_stats {
    double loss_sum; /* sum over samples of the (weighted) per-sample mean loss */
    double samples;
    double elements; /* output values seen (samples * output size) */
    double correct; /* binary accuracy: (pred > 0.5) == label */
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
                           const int64_t *idx, int64_t n, int64_t batch_size, int64_t *step,
                           uint64_t seed, struct nr_fit_stats *stats, const volatile int *abort);

/* nr_plan_fit with a loss weight per sample: weights, if not NULL, holds y->n
 * floats and sample s (a row of inputs and y) weighs weights[s], the same
 * index as y. As Keras's default reduction ("sum_over_batch_size"), a batch's
 * loss is sum_i w_i * l_i / (samples in the batch) and its gradient likewise;
 * a weight of 0 leaves a sample out of the gradient (it still counts in the
 * batch size). NULL is nr_plan_fit (every weight 1, the same bits).
 * Errors: as nr_plan_fit; also NR_ERR_VALUE when a weight that idx selects is
 * negative, NaN or infinite (checked first: nothing is trained). */
enum nr_status nr_plan_fit_weighted(struct nr_plan *plan, struct nr_pool *pool,
                                    const struct nr_array *inputs, const struct nr_array *y,
                                    const float *weights, const int64_t *idx, int64_t n,
                                    int64_t batch_size, int64_t *step, uint64_t seed,
                                    struct nr_fit_stats *stats, const volatile int *abort);

/* Training steps of varying size, as the ranks of a data-parallel fit take their
 * shares of global batches: step s trains the samples idx[bounds[s]] ..
 * idx[bounds[s+1] - 1] (n_steps + 1 bounds from 0, never decreasing; a step may
 * be empty: its gradients are zero and the hooks still run), and its loss and
 * gradient are the sum of its samples' (weighted) losses over norms[s] samples,
 * norms[s] >= the step's size (the global batch's size: the ranks' gradients
 * then add up to the global batch's). Otherwise as nr_plan_fit_weighted.
 * Errors: as nr_plan_fit_weighted; NR_ERR_VALUE also for bounds or norms out of
 * order, a NULL idx, and a Hogwild plan with sparse updates. */
enum nr_status nr_plan_fit_steps(struct nr_plan *plan, struct nr_pool *pool,
                                 const struct nr_array *inputs, const struct nr_array *y,
                                 const float *weights, const int64_t *idx, const int64_t *bounds,
                                 const int64_t *norms, int64_t n_steps, int64_t *step,
                                 uint64_t seed, struct nr_fit_stats *stats,
                                 const volatile int *abort);

/* Forward pass (inference mode) for samples start..start+n of the inputs,
 * writing n * value_size[output] floats to out. */
enum nr_status nr_plan_predict(struct nr_plan *plan, struct nr_pool *pool,
                               const struct nr_array *inputs, int64_t start, int64_t n, float *out);

/*
 * The reduce hook: the seam for data-parallel training across processes.
 *
 * Between the reduce and apply phases of every batch nr_plan_fit calls the
 * plan's hook, if one is set, with the batch's gradients summed over the
 * threads; the hook may change them in place before they are applied. A
 * multi-process trainer allreduces there (averaging the dense buffer and
 * merging the table rows of all processes), so that every process applies the
 * same update; nothing in the kernels changes.
 *
 * Gradients are those of the batch's mean loss (with sample weights, the
 * weighted sum over the batch size), without the L2 term (the
 * optimizer adds it when it applies). Frozen parameters are not reduced: their
 * part of the dense buffer is unspecified and their table parts are empty.
 */

/* The summed gradient of some rows of one embedding table. */
struct nr_grad_part {
    int32_t param; /* the table's parameter id */
    int64_t cols; /* floats per row */
    int64_t n_rows;
    int64_t *rows; /* sparse updates: the distinct row ids; NULL with dense updates, where
                      the part is rows first_row .. first_row + n_rows - 1 in order */
    int64_t first_row;
    float *grad; /* n_rows * cols floats: row i of the part first */
};

/* One batch's gradients, owned by the plan (valid during the hook's call). */
struct nr_batch_grads {
    int64_t step; /* the optimizer step they are applied at (>= 1) */
    int64_t n_samples; /* samples in the batch */
    int32_t n_params;
    float *dense; /* every non-table parameter's gradient */
    const int64_t *dense_offset; /* per parameter: where its gradient starts in dense, -1 for
                                    tables */
    int64_t dense_size; /* floats in dense */
    int32_t n_tables;
    int32_t n_parts; /* threads of this fit * n_tables */
    struct nr_grad_part *parts; /* part (thread i, table t) at i * n_tables + t: the rows thread
                                   i applies; a row appears in at most one part of its table */
};

/* A reduce hook. It may overwrite any gradient value; it may also point a
 * sparse part's rows and grad at its own memory (valid until the apply phase
 * ends, e.g. until the hook's next call) and change its n_rows, for example to
 * apply the union of the rows every process saw; a table's rows must stay
 * distinct across its parts and in range. It runs on the thread that called
 * nr_plan_fit while no other thread of the plan runs, and must not call the
 * plan. Returning anything but NR_OK stops the fit: that batch is not applied
 * or counted, and nr_plan_fit returns the status. */
typedef enum nr_status (*nr_plan_reduce_fn)(void *ctx, struct nr_batch_grads *grads);

/* Set the plan's reduce hook (NULL, the default, removes it); ctx is passed to
 * every call. Errors: NR_ERR_VALUE for a Hogwild plan with sparse updates,
 * whose threads apply their table rows without a reduce phase. */
enum nr_status nr_plan_set_reduce_hook(struct nr_plan *plan, nr_plan_reduce_fn fn, void *ctx);

/* The apply hook: with a reduce hook set, fn runs after the apply phase of
 * every batch, with the same view of the batch (its table parts hold the rows
 * just updated, e.g. those the reduce hook gave this process to apply, whose
 * new values a multi-process trainer then sends to the others); it may read
 * and write the parameters. The batch is applied and counted before the
 * call; anything but NR_OK stops the fit with that status. NULL removes it.
 * Errors: NR_ERR_VALUE for a Hogwild plan with sparse updates. */
enum nr_status nr_plan_set_apply_hook(struct nr_plan *plan, nr_plan_reduce_fn fn, void *ctx);

#endif /* NR_PLAN_H */
