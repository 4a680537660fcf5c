/*
 * plan_impl.h: the plan executor's internals, shared by its source files and
 * by nothing else (the public API is neurec/nr_plan.h).
 *
 *   plan.c         building: validation of the description, init/free, scratch
 *   plan_ops.c     the ops' forward and backward passes over a block of rows
 *   plan_loss.c    the loss, its gradient and the fit metrics
 *   plan_sparse.c  the embedding tables' gradients: the sparse store, the
 *                  dense-mode sums
 *   plan_run.c     the runner: threads, grain, the phases of a training step
 *                  (compute, reduce, apply), fit (batched and Hogwild), predict
 */
#ifndef NR_PLAN_IMPL_H
#define NR_PLAN_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "neurec/nr_optim.h"
#include "neurec/nr_plan.h"
#include "neurec/nr_pool.h"
#include "neurec/nr_status.h"
#include "neurec/nr_table.h"

/* Threads a plan uses at most: per-thread arrays on the stack are this long. */
#define NR_MAX_THREADS 256

/* An embedding table of the plan: its storage, read through tab alone once
 * the plan is built (ids are checked against tab.rows), and its settings. */
struct plan_table {
    struct nr_table tab;
    int32_t param;     /* its parameter id */
    float l2;
    int frozen;
    float *dense;      /* rows * cols gradient sums, only when updates are dense and an op
                          reads the table */
};

/* The optimizer's view of a plan table. */
static inline struct nr_param plan_table_param(const struct plan_table *pt)
{
    return nr_table_param(&pt->tab, pt->l2);
}

/* One embedding table's per-batch sparse gradient: distinct rows in first-seen
 * order and their summed gradients, found through an open-addressing hash. */
struct table_grad {
    int64_t hcap;      /* hash slots, a power of two */
    int64_t *hkeys;    /* row id or -1 */
    int32_t *hslot;    /* index into rows/grad */
    int64_t *rows;     /* distinct rows of this batch */
    float *grad;       /* n_rows * cols */
    int64_t n_rows;
};

struct nr_plan {
    struct nr_plan_desc d;     /* ops and value_size point into owned copies */
    struct nr_op *ops;
    int64_t *value_size;
    int32_t *base;             /* storage owner of each value (aliases resolved) */
    uint8_t *needs_grad;
    uint8_t *skip_backward;    /* per op: the fused output activation */
    int64_t cap;               /* samples per batch the scratch holds */
    float **act;               /* per value: cap * size, NULL for aliases (use base) */
    float **grad;
    float **op_scratch;        /* per op (DOT, DROPOUT), cap * op_scratch_size */
    int64_t *op_scratch_size;
    int64_t dense_total;       /* floats in all non-table params */
    int64_t *dense_off;        /* per param offset into a thread gradient buffer, -1 for tables */
    float *tgrad;              /* NR_MAX_THREADS-capped: nth * dense_total */
    float *twt;                /* nth * wt_max: per-thread transposed kernels */
    int64_t wt_max;
    int tgrad_threads;
    struct nr_fit_stats *tstats;  /* per training thread (128 KB each: sized by use, not by
                                     NR_MAX_THREADS, which made every plan a 32 MB calloc) */
    int tstats_threads;
    int32_t n_tables;
    struct plan_table *tables;
    int32_t *table_of;         /* per param: its index in tables, -1 for dense parameters */
    struct table_grad *ttg;    /* per (thread, table): sparse gradients of the thread's samples,
                                  then per (thread, table): the merged rows the thread owns */
    int ttg_threads;
    int64_t ttg_cap;
    struct nr_grad_part *parts; /* per (thread, table): what the reduce phase leaves for the
                                   apply phase (ttg_threads * n_tables) */
    nr_plan_reduce_fn reduce_hook;
    void *reduce_ctx;
    nr_plan_reduce_fn apply_hook; /* after the apply phase of a batch with a reduce hook */
    void *apply_ctx;
    float *tb_mem;             /* 4 * NR_OPTIM_TABLE floats behind tb */
    struct nr_optim_tables tb;
    float tb_key[5];           /* hyper-parameters the tables were built for */
    int64_t *ids_per_sample;   /* per param: sum of ids per sample over the ops using it */
};

/* One call's view of a batch (or predict block): what the ops read and write. */
struct run_ctx {
    struct nr_plan *p;
    const struct nr_array *inputs;
    const struct nr_array *y;
    const float *w;         /* loss weight of each sample (by sample index, as y), or NULL: 1 */
    const int64_t *idx;     /* sample index of each batch row, or NULL: start + row */
    int64_t start;
    int64_t bs;             /* rows in this batch */
    int64_t norm;           /* the loss's divisor in samples (nr_plan_fit_steps), 0: bs */
    int training;
    uint64_t seed;
    int64_t step;
    float *out;             /* predict: destination */
    atomic_int bad_index;
    int64_t row0;           /* scratch row of the batch's first sample (batch-level Hogwild) */
    int32_t *task_owner;    /* per param: thread that updates it */
};

static inline float *act_of(const struct nr_plan *p, int v) { return p->act[p->base[v]]; }
static inline float *grad_of(const struct nr_plan *p, int v) { return p->grad[p->base[v]]; }

static inline int64_t sample_of(const struct run_ctx *c, int64_t row)
{
    return c->idx ? c->idx[row - c->row0] : c->start + row - c->row0;
}

/* DOT of an r x c matrix contracting axis ax: the free and the contracted length. */
static inline int64_t dot_free(int64_t r, int64_t c, int64_t ax) { return ax == 0 ? c : r; }
static inline int64_t dot_contract(int64_t r, int64_t c, int64_t ax) { return ax == 0 ? r : c; }

/* Element i of the caller's array as a float or as an id. */
static inline float read_f(const struct nr_array *a, int64_t i)
{
    switch (a->dtype) {
    case NR_DTYPE_F32: return ((const float *)a->data)[i];
    case NR_DTYPE_F64: return (float)((const double *)a->data)[i];
    case NR_DTYPE_I32: return (float)((const int32_t *)a->data)[i];
    case NR_DTYPE_I64: return (float)((const int64_t *)a->data)[i];
    }
    return 0.0f;
}

static inline int64_t read_id(const struct nr_array *a, int64_t i)
{
    switch (a->dtype) {
    case NR_DTYPE_F32: return (int64_t)((const float *)a->data)[i];
    case NR_DTYPE_F64: return (int64_t)((const double *)a->data)[i];
    case NR_DTYPE_I32: return ((const int32_t *)a->data)[i];
    case NR_DTYPE_I64: return ((const int64_t *)a->data)[i];
    }
    return -1;
}

/* Byte and element counts come from the caller (batch sizes, table widths):
 * every product that sizes an allocation is checked, so an absurd request
 * fails with NR_ERR_NOMEM instead of wrapping around to a small buffer. */
#define NR_ALLOC_MAX ((int64_t)1 << 62)

/* *out = a * b * c for non-negative factors; 0 when the product exceeds NR_ALLOC_MAX. */
static inline int size_mul(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab, abc;
    if (a < 0 || b < 0 || c < 0 || __builtin_mul_overflow(a, b, &ab) ||
        __builtin_mul_overflow(ab, c, &abc) || abc > NR_ALLOC_MAX || (uint64_t)abc > SIZE_MAX)
        return 0;
    *out = abc;
    return 1;
}

/* ---- plan_ops.c ---------------------------------------------------------- */

/* Forward pass of every op over batch rows [b0, b1). */
void nr_plan_forward(struct run_ctx *c, int64_t b0, int64_t b1);
/* Backward pass of every op over batch rows [b0, b1) by thread ith: value
 * gradients in place, dense-parameter gradients into the thread's buffer. */
void nr_plan_backward(struct run_ctx *c, int ith, int64_t b0, int64_t b1);

/* ---- plan_loss.c --------------------------------------------------------- */

/* Loss, its gradient (written to the output or logits grad) and metrics for
 * batch rows [b0, b1), added to st. */
void nr_plan_loss(struct run_ctx *c, int64_t b0, int64_t b1, struct nr_fit_stats *st);
void nr_fit_stats_add(struct nr_fit_stats *dst, const struct nr_fit_stats *s);

/* ---- plan_sparse.c ------------------------------------------------------- */

/* Thread ith's gradient sums for table t over its own samples. */
static inline struct table_grad *local_tg(const struct nr_plan *p, int ith, int t)
{
    return &p->ttg[(int64_t)ith * p->n_tables + t];
}

/* Per-thread stores (and the parts, struct nr_grad_part) for nth threads and
 * batches of up to rows samples. */
enum nr_status nr_plan_reserve_table_grads(struct nr_plan *p, int nth, int64_t rows);
void nr_plan_free_table_grads(struct nr_plan *p);
void nr_table_grad_reset(struct table_grad *tg);
/* Sum the gradients of table t over batch rows [s0, s1) into tg (reset before). */
void nr_table_grad_gather(struct run_ctx *c, int t, struct table_grad *tg, int64_t s0, int64_t s1);
/* The rows of table t that thread ith updates, with their gradients summed over
 * the nth threads. */
struct table_grad *nr_table_grad_merge(struct nr_plan *p, int t, int ith, int nth);
/* Dense updates: sum the batch's gradients of table t's rows [r0, r1) into
 * its dense buffer (which holds every row). */
void nr_table_grad_dense(struct run_ctx *c, int t, int64_t r0, int64_t r1);

#endif /* NR_PLAN_IMPL_H */
