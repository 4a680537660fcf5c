#include "neurec/nr_plan.h"
#include "neurec/nr_kernels.h"
#include "neurec/nr_rng.h"
#include "neurec/nr_simd.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NR_MAX_THREADS 256
#define NR_OPTIM_TABLE 65536

/* One embedding table's per-batch sparse gradient: distinct rows in first-seen
 * order and their summed gradients, found through an open-addressing hash. */
struct table_grad {
    int32_t param;
    int64_t hcap;      /* hash slots, a power of two */
    int64_t *hkeys;    /* row id or -1 */
    int32_t *hslot;    /* index into rows/grad */
    int64_t *rows;     /* distinct rows of this batch */
    float *grad;       /* n_rows * cols */
    int64_t n_rows;
    float *dense;      /* rows * cols, only when updates are dense */
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
    struct table_grad *tables; /* per table: param and the dense-mode buffer */
    struct table_grad *ttg;    /* per (thread, table): sparse gradients of the thread's samples,
                                  then per (thread, table): the merged rows the thread owns */
    int ttg_threads;
    int64_t ttg_cap;
    float *tb_mem;             /* 4 * NR_OPTIM_TABLE floats behind tb */
    struct nr_optim_tables tb;
    float tb_key[5];           /* hyper-parameters the tables were built for */
    int64_t *ids_per_sample;   /* per param: sum of ids per sample over the ops using it */
};

/* Thread ith's gradient sums for table t over its own samples, and the rows it
 * owns merged over all threads. */
static struct table_grad *local_tg(const struct nr_plan *p, int ith, int t)
{
    return &p->ttg[(int64_t)ith * p->n_tables + t];
}

static struct table_grad *merged_tg(const struct nr_plan *p, int ith, int t)
{
    return &p->ttg[((int64_t)p->ttg_threads + ith) * p->n_tables + t];
}

/* ------------------------------------------------------------------------ */
/* set-up                                                                    */

static void attach_optim_tables(struct nr_plan *p);
struct run_ctx;
static void gather_table_grad(struct run_ctx *c, int t, struct table_grad *tg, int64_t s0, int64_t s1);
static void tg_reset(struct table_grad *tg);

/* The smallest power of two >= x, for 0 < x <= 2^62 (callers check). */
static int64_t next_pow2(int64_t x)
{
    int64_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* Byte and element counts come from the caller (batch sizes, table widths):
 * every product that sizes an allocation is checked, so an absurd request
 * fails with NR_ERR_NOMEM instead of wrapping around to a small buffer. */
#define NR_ALLOC_MAX ((int64_t)1 << 62)

/* *out = a * b * c for non-negative factors; 0 when the product exceeds NR_ALLOC_MAX. */
static int size_mul(int64_t a, int64_t b, int64_t c, int64_t *out)
{
    int64_t ab, abc;
    if (a < 0 || b < 0 || c < 0 || __builtin_mul_overflow(a, b, &ab) ||
        __builtin_mul_overflow(ab, c, &abc) || abc > NR_ALLOC_MAX || (uint64_t)abc > SIZE_MAX)
        return 0;
    *out = abc;
    return 1;
}

static void free_ttg(struct nr_plan *p)
{
    if (p->ttg)
        for (int64_t t = 0; t < 2 * (int64_t)p->ttg_threads * p->n_tables; t++) {
            struct table_grad *tg = &p->ttg[t];
            free(tg->hkeys);
            free(tg->hslot);
            free(tg->rows);
            free(tg->grad);
        }
    free(p->ttg);
    p->ttg = NULL;
    p->ttg_threads = 0;
    p->ttg_cap = 0;
}

static void free_scratch(struct nr_plan *p)
{
    if (p->act)
        for (int v = 0; v < p->d.n_values; v++) {
            free(p->act[v]);
            free(p->grad[v]);
            p->act[v] = p->grad[v] = NULL;
        }
    if (p->op_scratch)
        for (int i = 0; i < p->d.n_ops; i++) {
            free(p->op_scratch[i]);
            p->op_scratch[i] = NULL;
        }
    p->cap = 0;
}

void nr_plan_free(struct nr_plan *p)
{
    if (!p)
        return;
    free_scratch(p);
    for (int t = 0; t < p->n_tables; t++)
        free(p->tables[t].dense);
    free(p->tables);
    free_ttg(p);
    free(p->act);
    free(p->grad);
    free(p->op_scratch);
    free(p->op_scratch_size);
    free(p->ops);
    free(p->value_size);
    free(p->base);
    free(p->needs_grad);
    free(p->skip_backward);
    free(p->dense_off);
    free(p->tgrad);
    free(p->twt);
    free(p->tstats);
    free(p->ids_per_sample);
    free(p->tb_mem);
    free(p);
}

static int64_t dot_free(int64_t r, int64_t c, int64_t ax) { return ax == 0 ? c : r; }
static int64_t dot_contract(int64_t r, int64_t c, int64_t ax) { return ax == 0 ? r : c; }

static enum nr_status check_op(const struct nr_plan_desc *d, const struct nr_op *op)
{
    const int64_t *vs = d->value_size;
    if (op->out < 0 || op->out >= d->n_values || op->n_in < 0 || op->n_in > NR_OP_MAX_IN)
        return NR_ERR_VALUE;
    int slot_input = op->kind == NR_OP_INPUT || op->kind == NR_OP_EMBEDDING;
    for (int i = 0; i < op->n_in; i++) {
        int32_t v = op->in[i];
        if (v < 0 || v >= (slot_input ? d->n_inputs : d->n_values))
            return NR_ERR_VALUE;
    }
    for (int i = 0; i < 2; i++)
        if (op->param[i] >= d->n_params)
            return NR_ERR_VALUE;
    int64_t out = vs[op->out];
    switch (op->kind) {
    case NR_OP_INPUT:
        return op->n_in == 1 && out == op->dim[0] ? NR_OK : NR_ERR_SHAPE;
    case NR_OP_EMBEDDING: {
        if (op->n_in != 1 || op->param[0] < 0)
            return NR_ERR_VALUE;
        const struct nr_param *t = &d->params[op->param[0]];
        if (!t->is_table || t->cols != op->dim[1] || out != op->dim[0] * op->dim[1])
            return NR_ERR_SHAPE;
        return NR_OK;
    }
    case NR_OP_DENSE: {
        if (op->n_in != 1 || op->param[0] < 0)
            return NR_ERR_VALUE;
        const struct nr_param *w = &d->params[op->param[0]];
        if (w->rows != op->dim[1] || w->cols != op->dim[2])
            return NR_ERR_SHAPE;
        if (op->param[1] >= 0 && d->params[op->param[1]].rows * d->params[op->param[1]].cols != op->dim[2])
            return NR_ERR_SHAPE;
        if (vs[op->in[0]] != op->dim[0] * op->dim[1] || out != op->dim[0] * op->dim[2])
            return NR_ERR_SHAPE;
        return NR_OK;
    }
    case NR_OP_ACT:
        if (op->n_in != 1 || op->act < NR_ACT_LINEAR || op->act > NR_ACT_SOFTMAX)
            return NR_ERR_VALUE;
        return vs[op->in[0]] == out && out == op->dim[0] * op->dim[1] ? NR_OK : NR_ERR_SHAPE;
    case NR_OP_DOT: {
        if (op->n_in != 2 || (op->dim[4] != 0 && op->dim[4] != 1) || (op->dim[5] != 0 && op->dim[5] != 1))
            return NR_ERR_VALUE;
        if (vs[op->in[0]] != op->dim[0] * op->dim[1] || vs[op->in[1]] != op->dim[2] * op->dim[3])
            return NR_ERR_SHAPE;
        if (dot_contract(op->dim[0], op->dim[1], op->dim[4]) != dot_contract(op->dim[2], op->dim[3], op->dim[5]))
            return NR_ERR_SHAPE;
        int64_t f = dot_free(op->dim[0], op->dim[1], op->dim[4]) * dot_free(op->dim[2], op->dim[3], op->dim[5]);
        return f == out ? NR_OK : NR_ERR_SHAPE;
    }
    case NR_OP_CONCAT: {
        if (op->n_in < 1 || op->dim[0] < 1)
            return NR_ERR_VALUE;
        int64_t s = 0;
        for (int i = 0; i < op->n_in; i++) {
            if (vs[op->in[i]] % op->dim[0])
                return NR_ERR_SHAPE;
            s += vs[op->in[i]];
        }
        return s == out ? NR_OK : NR_ERR_SHAPE;
    }
    case NR_OP_ADD:
    case NR_OP_MUL:
    case NR_OP_SUB:
    case NR_OP_AVERAGE:
        if (op->n_in < 1 || (op->kind == NR_OP_SUB && op->n_in != 2))
            return NR_ERR_VALUE;
        for (int i = 0; i < op->n_in; i++)
            if (vs[op->in[i]] != out)
                return NR_ERR_SHAPE;
        return NR_OK;
    case NR_OP_DROPOUT:
        if (op->n_in != 1 || !(op->rate >= 0.0f && op->rate < 1.0f))
            return NR_ERR_VALUE;
        return vs[op->in[0]] == out ? NR_OK : NR_ERR_SHAPE;
    case NR_OP_ALIAS:
        return op->n_in == 1 && vs[op->in[0]] == out ? NR_OK : NR_ERR_SHAPE;
    }
    return NR_ERR_VALUE;
}

static int64_t op_scratch_floats(const struct nr_op *op)
{
    if (op->kind == NR_OP_DROPOUT)
        return op->dim[0] > 0 ? op->dim[0] : 0; /* mask; size set at init */
    if (op->kind != NR_OP_DOT)
        return 0;
    int64_t fa = dot_free(op->dim[0], op->dim[1], op->dim[4]);
    int64_t fb = dot_free(op->dim[2], op->dim[3], op->dim[5]);
    int64_t c = dot_contract(op->dim[0], op->dim[1], op->dim[4]);
    /* A^T and B^T (normalised), their norms, and their gradients */
    return 2 * (fa * c + fb * c) + fa + fb;
}

enum nr_status nr_plan_init(struct nr_plan **out, const struct nr_plan_desc *d)
{
    *out = NULL;
    if (d->n_ops < 1 || d->n_values < 1 || d->output < 0 || d->output >= d->n_values ||
        d->logits >= d->n_values || d->n_params < 0 || d->n_inputs < 0)
        return NR_ERR_VALUE;
    for (int v = 0; v < d->n_values; v++)
        if (d->value_size[v] < 1)
            return NR_ERR_SHAPE;
    for (int i = 0; i < d->n_ops; i++) {
        enum nr_status s = check_op(d, &d->ops[i]);
        if (s != NR_OK)
            return s;
    }
    struct nr_plan *p = calloc(1, sizeof *p);
    if (!p)
        return NR_ERR_NOMEM;
    int nv = d->n_values, no = d->n_ops, np = d->n_params;
    p->d = *d;
    p->ops = malloc(sizeof *p->ops * (size_t)no);
    p->value_size = malloc(sizeof *p->value_size * (size_t)nv);
    p->base = malloc(sizeof *p->base * (size_t)nv);
    p->needs_grad = calloc((size_t)nv, 1);
    p->skip_backward = calloc((size_t)no, 1);
    p->act = calloc((size_t)nv, sizeof *p->act);
    p->grad = calloc((size_t)nv, sizeof *p->grad);
    p->op_scratch = calloc((size_t)no, sizeof *p->op_scratch);
    p->op_scratch_size = calloc((size_t)no, sizeof *p->op_scratch_size);
    p->dense_off = malloc(sizeof *p->dense_off * (size_t)(np ? np : 1));
    p->ids_per_sample = calloc((size_t)(np ? np : 1), sizeof *p->ids_per_sample);
    if (!p->ops || !p->value_size || !p->base || !p->needs_grad || !p->skip_backward || !p->act ||
        !p->grad || !p->op_scratch || !p->op_scratch_size || !p->dense_off || !p->ids_per_sample) {
        nr_plan_free(p);
        return NR_ERR_NOMEM;
    }
    memcpy(p->ops, d->ops, sizeof *p->ops * (size_t)no);
    memcpy(p->value_size, d->value_size, sizeof *p->value_size * (size_t)nv);
    p->d.ops = p->ops;
    p->d.value_size = p->value_size;
    for (int v = 0; v < nv; v++)
        p->base[v] = v;
    for (int i = 0; i < no; i++) {
        struct nr_op *op = &p->ops[i];
        if (op->kind == NR_OP_ALIAS)
            p->base[op->out] = p->base[op->in[0]];
        if (op->kind == NR_OP_DROPOUT)
            op->dim[0] = p->value_size[op->out];
        p->op_scratch_size[i] = op_scratch_floats(op);
        /* needs_grad: produced from a parameter, directly or through another value */
        int ng = op->kind == NR_OP_EMBEDDING || op->kind == NR_OP_DENSE;
        if (op->kind != NR_OP_INPUT && op->kind != NR_OP_EMBEDDING)
            for (int j = 0; j < op->n_in; j++)
                ng |= p->needs_grad[op->in[j]];
        p->needs_grad[op->out] = (uint8_t)ng;
        if (op->kind == NR_OP_EMBEDDING)
            p->ids_per_sample[op->param[0]] += op->dim[0];
        if (op->kind == NR_OP_DENSE && op->dim[1] * op->dim[2] > p->wt_max)
            p->wt_max = op->dim[1] * op->dim[2];
    }
    /* the output's sigmoid is fused into the loss when its logits are known */
    if (d->logits >= 0) {
        for (int i = 0; i < no; i++)
            if (p->ops[i].out == d->output && p->ops[i].kind == NR_OP_ACT &&
                p->ops[i].act == NR_ACT_SIGMOID && p->ops[i].in[0] == d->logits)
                p->skip_backward[i] = 1;
        if (d->loss != NR_LOSS_BCE) {
            p->d.logits = -1;
            memset(p->skip_backward, 0, (size_t)no);
        }
    }
    int64_t off = 0;
    int nt = 0;
    for (int i = 0; i < np; i++) {
        if (d->params[i].is_table) {
            p->dense_off[i] = -1;
            nt++;
        } else {
            p->dense_off[i] = off;
            off += d->params[i].rows * d->params[i].cols;
        }
    }
    p->dense_total = off;
    p->n_tables = nt;
    p->tables = calloc((size_t)(nt ? nt : 1), sizeof *p->tables);
    if (!p->tables) {
        nr_plan_free(p);
        return NR_ERR_NOMEM;
    }
    nt = 0;
    for (int i = 0; i < np; i++)
        if (d->params[i].is_table) {
            struct table_grad *tg = &p->tables[nt++];
            tg->param = i;
            if (!d->sparse && p->ids_per_sample[i] > 0) {
                tg->dense = calloc((size_t)(d->params[i].rows * d->params[i].cols), sizeof(float));
                if (!tg->dense) {
                    nr_plan_free(p);
                    return NR_ERR_NOMEM;
                }
            }
        }
    attach_optim_tables(p);
    *out = p;
    return NR_OK;
}

/* Power tables of the optimizer (Adam's bias correction, catch-up decays):
 * rebuilt only when the hyper-parameters they depend on change. */
static void attach_optim_tables(struct nr_plan *p)
{
    struct nr_optim *o = &p->d.optim;
    o->tables = NULL;
    if (o->kind == NR_OPTIM_ADAGRAD || (o->kind == NR_OPTIM_SGD && o->momentum == 0.0f))
        return;
    if (!p->tb_mem) {
        p->tb_mem = malloc(4 * NR_OPTIM_TABLE * sizeof(float));
        if (!p->tb_mem)
            return; /* fall back to pow() per row */
        p->tb.len = NR_OPTIM_TABLE;
        p->tb.corr = p->tb_mem;
        p->tb.p1 = p->tb_mem + NR_OPTIM_TABLE;
        p->tb.p2 = p->tb_mem + 2 * NR_OPTIM_TABLE;
        p->tb.geo = p->tb_mem + 3 * NR_OPTIM_TABLE;
        p->tb_key[0] = -1.0f;
    }
    float key[5] = {(float)o->kind, o->beta1, o->beta2, o->momentum, o->rho + (o->amsgrad ? 10.0f : 0.0f)};
    if (memcmp(key, p->tb_key, sizeof key) != 0) {
        nr_optim_tables_fill(&p->tb, o);
        memcpy(p->tb_key, key, sizeof key);
    }
    o->tables = &p->tb;
}

void nr_plan_set_optim(struct nr_plan *p, const struct nr_optim *o)
{
    p->d.optim = *o;
    attach_optim_tables(p);
}

enum nr_status nr_plan_reserve(struct nr_plan *p, int64_t cap)
{
    if (cap < 0)
        return NR_ERR_VALUE;
    if (cap <= p->cap)
        return NR_OK;
    /* check every size before freeing the current scratch: on error the plan keeps it */
    int64_t bytes = 0;
    for (int v = 0; v < p->d.n_values; v++)
        if (p->base[v] == v && !size_mul(cap, p->value_size[v], sizeof(float), &bytes))
            return NR_ERR_NOMEM;
    for (int i = 0; i < p->d.n_ops; i++)
        if (!size_mul(cap, p->op_scratch_size[i], sizeof(float), &bytes))
            return NR_ERR_NOMEM;
    free_scratch(p);
    for (int v = 0; v < p->d.n_values; v++) {
        if (p->base[v] != v)
            continue;
        size_mul(cap, p->value_size[v], sizeof(float), &bytes);
        p->act[v] = malloc((size_t)bytes);
        p->grad[v] = malloc((size_t)bytes);
        if (!p->act[v] || !p->grad[v])
            goto nomem;
    }
    for (int i = 0; i < p->d.n_ops; i++)
        if (p->op_scratch_size[i] > 0) {
            size_mul(cap, p->op_scratch_size[i], sizeof(float), &bytes);
            p->op_scratch[i] = malloc((size_t)bytes);
            if (!p->op_scratch[i])
                goto nomem;
        }
    p->cap = cap;
    return NR_OK;
nomem:
    free_scratch(p);
    return NR_ERR_NOMEM;
}

static float *act_of(const struct nr_plan *p, int v) { return p->act[p->base[v]]; }
static float *grad_of(const struct nr_plan *p, int v) { return p->grad[p->base[v]]; }

/* ------------------------------------------------------------------------ */
/* reading the caller's arrays                                               */

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

/* ------------------------------------------------------------------------ */
/* forward and backward over a block of samples                              */

struct run_ctx {
    struct nr_plan *p;
    const struct nr_array *inputs;
    const struct nr_array *y;
    const int64_t *idx;     /* sample index of each batch row, or NULL: start + row */
    int64_t start;
    int64_t bs;             /* rows in this batch */
    int training;
    uint64_t seed;
    int64_t step;
    float *out;             /* predict: destination */
    atomic_int bad_index;
    int64_t row0;           /* scratch row of the batch's first sample (batch-level Hogwild) */
    int nth;                /* threads this call uses (<= the pool's) */
    int32_t *task_owner;    /* per param: thread that updates it */
};

static inline int64_t sample_of(const struct run_ctx *c, int64_t row)
{
    return c->idx ? c->idx[row - c->row0] : c->start + row - c->row0;
}

/* X (r x cols) with contraction axis ax as A^T: (free x contract), row-major. */
static void dot_load(float *at, const float *x, int64_t r, int64_t cols, int64_t ax)
{
    if (ax == 1 || cols == 1) {
        memcpy(at, x, (size_t)(r * cols) * sizeof *at);
        return;
    }
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < cols; j++)
            at[j * r + i] = x[i * cols + j];
}

static void dot_store_grad(float *gx, const float *gat, int64_t r, int64_t cols, int64_t ax)
{
    if (ax == 1 || cols == 1) {
        for (int64_t i = 0; i < r * cols; i++)
            gx[i] += gat[i];
        return;
    }
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < cols; j++)
            gx[i * cols + j] += gat[j * r + i];
}

/* Short copies (an embedding row, a concatenation part) inline: a libc call per
 * 32-128 bytes cost more than the copy. */
static inline NR_ALWAYS_INLINE void copy_floats(float *restrict dst, const float *restrict src, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        dst[k] = src[k];
}

/* y = x0 op x1 element-wise (ADD/AVERAGE: +, SUB: -, MUL: *); y is a fresh value. */
static inline NR_ALWAYS_INLINE void binary_op(float *restrict y, const float *restrict x0, const float *restrict x1, int64_t n,
                      enum nr_op_kind kind)
{
    if (kind == NR_OP_MUL)
        for (int64_t k = 0; k < n; k++)
            y[k] = x0[k] * x1[k];
    else if (kind == NR_OP_SUB)
        for (int64_t k = 0; k < n; k++)
            y[k] = x0[k] - x1[k];
    else
        for (int64_t k = 0; k < n; k++)
            y[k] = x0[k] + x1[k];
}

/* Rows of large tables miss the caches: the gather asks for the rows of the
 * sample this many places ahead while it copies the current one. */
#define NR_PREFETCH_AHEAD 4

static inline void prefetch_rows(const struct nr_array *a, const struct nr_param *t, int64_t s,
                                 int64_t m, int64_t dd)
{
    for (int64_t j = 0; j < m; j++) {
        int64_t id = read_id(a, s * m + j);
        if (id < 0 || id >= t->rows)
            continue;
        const char *row = (const char *)(t->w + id * dd);
        for (int64_t off = 0; off < dd * (int64_t)sizeof(float); off += 64)
            __builtin_prefetch(row + off, 0);
    }
}

static inline NR_ALWAYS_INLINE void forward_block_impl(enum nr_simd_level level,
                                                       struct run_ctx *c, int64_t b0, int64_t b1)
{
    (void)level;
    struct nr_plan *p = c->p;
    int64_t nb = b1 - b0;
    if (nb <= 0)
        return;
    for (int oi = 0; oi < p->d.n_ops; oi++) {
        const struct nr_op *op = &p->ops[oi];
        int64_t so = p->value_size[op->out];
        float *y = act_of(p, op->out) + b0 * so;
        switch (op->kind) {
        case NR_OP_INPUT: {
            const struct nr_array *a = &c->inputs[op->in[0]];
            int64_t w = a->width;
            for (int64_t b = 0; b < nb; b++) {
                int64_t s = sample_of(c, b0 + b);
                if (a->dtype == NR_DTYPE_F32) {
                    copy_floats(y + b * w, (const float *)a->data + s * w, w);
                } else {
                    for (int64_t j = 0; j < w; j++)
                        y[b * w + j] = read_f(a, s * w + j);
                }
            }
            break;
        }
        case NR_OP_EMBEDDING: {
            const struct nr_array *a = &c->inputs[op->in[0]];
            const struct nr_param *t = &p->d.params[op->param[0]];
            int64_t m = op->dim[0], dd = op->dim[1];
            for (int64_t b = 0; b < nb; b++) {
                int64_t s = sample_of(c, b0 + b);
                if (b + NR_PREFETCH_AHEAD < nb)
                    prefetch_rows(a, t, sample_of(c, b0 + b + NR_PREFETCH_AHEAD), m, dd);
                for (int64_t j = 0; j < m; j++) {
                    int64_t id = read_id(a, s * m + j);
                    float *dst = y + (b * m + j) * dd;
                    if (id < 0 || id >= t->rows) {
                        atomic_store(&c->bad_index, 1);
                        memset(dst, 0, (size_t)dd * sizeof *dst);
                    } else {
                        copy_floats(dst, t->w + id * dd, dd);
                    }
                }
            }
            break;
        }
        case NR_OP_DENSE: {
            const float *x = act_of(p, op->in[0]) + b0 * p->value_size[op->in[0]];
            const float *bias = op->param[1] >= 0 ? p->d.params[op->param[1]].w : NULL;
            nr_dense_forward(y, x, p->d.params[op->param[0]].w, bias, nb * op->dim[0], op->dim[1], op->dim[2]);
            break;
        }
        case NR_OP_ACT: {
            const float *x = act_of(p, op->in[0]) + b0 * so;
            nr_act_forward(y, x, (enum nr_act)op->act, nb * op->dim[0], op->dim[1]);
            break;
        }
        case NR_OP_DOT: {
            int64_t xr = op->dim[0], xc = op->dim[1], yr = op->dim[2], yc = op->dim[3];
            int64_t ax = op->dim[4], ay = op->dim[5];
            int64_t fa = dot_free(xr, xc, ax), fb = dot_free(yr, yc, ay), cc = dot_contract(xr, xc, ax);
            int64_t sx = xr * xc, sy = yr * yc;
            int64_t ss = p->op_scratch_size[oi];
            for (int64_t b = 0; b < nb; b++) {
                float *sc = p->op_scratch[oi] + (b0 + b) * ss;
                float *at = sc, *bt = sc + fa * cc, *na = bt + fb * cc, *nbv = na + fa;
                dot_load(at, act_of(p, op->in[0]) + (b0 + b) * sx, xr, xc, ax);
                dot_load(bt, act_of(p, op->in[1]) + (b0 + b) * sy, yr, yc, ay);
                if (op->flag) {
                    for (int64_t i = 0; i < fa; i++) {
                        float nrm = sqrtf(nr_dot(at + i * cc, at + i * cc, cc));
                        nrm = nrm > 1e-12f ? nrm : 1e-12f;
                        na[i] = nrm;
                        for (int64_t k = 0; k < cc; k++)
                            at[i * cc + k] /= nrm;
                    }
                    for (int64_t j = 0; j < fb; j++) {
                        float nrm = sqrtf(nr_dot(bt + j * cc, bt + j * cc, cc));
                        nrm = nrm > 1e-12f ? nrm : 1e-12f;
                        nbv[j] = nrm;
                        for (int64_t k = 0; k < cc; k++)
                            bt[j * cc + k] /= nrm;
                    }
                }
                float *yb = y + b * so;
                for (int64_t i = 0; i < fa; i++)
                    for (int64_t j = 0; j < fb; j++)
                        yb[i * fb + j] = nr_dot(at + i * cc, bt + j * cc, cc);
            }
            break;
        }
        case NR_OP_CONCAT: {
            int64_t outer = op->dim[0];
            for (int64_t b = 0; b < nb; b++) {
                float *yb = y + b * so;
                for (int64_t o = 0; o < outer; o++)
                    for (int i = 0; i < op->n_in; i++) {
                        int64_t si = p->value_size[op->in[i]], inner = si / outer;
                        copy_floats(yb, act_of(p, op->in[i]) + (b0 + b) * si + o * inner, inner);
                        yb += inner;
                    }
            }
            break;
        }
        case NR_OP_ADD:
        case NR_OP_AVERAGE:
        case NR_OP_MUL:
        case NR_OP_SUB: {
            int64_t n = nb * so;
            const float *x0 = act_of(p, op->in[0]) + b0 * so;
            if (op->n_in >= 2)
                binary_op(y, x0, act_of(p, op->in[1]) + b0 * so, n, (enum nr_op_kind)op->kind);
            else
                memmove(y, x0, (size_t)n * sizeof *y);
            for (int i = 2; i < op->n_in; i++) {
                const float *xi = act_of(p, op->in[i]) + b0 * so;
                if (op->kind == NR_OP_MUL)
                    for (int64_t k = 0; k < n; k++)
                        y[k] *= xi[k];
                else if (op->kind == NR_OP_SUB)
                    for (int64_t k = 0; k < n; k++)
                        y[k] -= xi[k];
                else
                    for (int64_t k = 0; k < n; k++)
                        y[k] += xi[k];
            }
            if (op->kind == NR_OP_AVERAGE) {
                float inv = 1.0f / (float)op->n_in;
                for (int64_t k = 0; k < n; k++)
                    y[k] *= inv;
            }
            break;
        }
        case NR_OP_DROPOUT: {
            const float *x = act_of(p, op->in[0]) + b0 * so;
            if (!c->training || op->rate == 0.0f) {
                memmove(y, x, (size_t)(nb * so) * sizeof *y);
                break;
            }
            float keep = 1.0f / (1.0f - op->rate);
            float *mask = p->op_scratch[oi] + b0 * so;
            for (int64_t b = 0; b < nb; b++) {
                /* the mask of a sample depends on (seed, step, sample, op) only,
                 * not on the thread count */
                struct nr_rng r;
                nr_rng_seed(&r, c->seed ^ ((uint64_t)c->step << 20) ^ (uint64_t)oi,
                            (uint64_t)sample_of(c, b0 + b));
                for (int64_t k = 0; k < so; k++) {
                    float m = nr_rng_uniform(&r) < op->rate ? 0.0f : keep;
                    mask[b * so + k] = m;
                    y[b * so + k] = x[b * so + k] * m;
                }
            }
            break;
        }
        case NR_OP_ALIAS:
            break;
        }
    }
}

/* The forward pass compiled once per SIMD level (nr_simd.h): its inline
 * copies and element-wise loops vectorise for each instruction set. */
NR_SIMD_CLONES(forward_block, (struct run_ctx *c, int64_t b0, int64_t b1), (c, b0, b1))

static void forward_block(struct run_ctx *c, int64_t b0, int64_t b1)
{
    NR_SIMD_DISPATCH(forward_block, (c, b0, b1));
}

static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* Loss, its gradient (written to the output or logits grad) and metrics for a block. */
static void loss_block(struct run_ctx *c, int64_t b0, int64_t b1, struct nr_fit_stats *st)
{
    struct nr_plan *p = c->p;
    int outv = p->d.output;
    int64_t P = p->value_size[outv];
    const float *pred = act_of(p, outv);
    int fused = p->d.logits >= 0;
    const float *z = fused ? act_of(p, p->d.logits) : NULL;
    float *g = grad_of(p, fused ? p->d.logits : outv);
    const struct nr_array *y = c->y;
    int64_t yw = y->width;
    float scale = 1.0f / (float)(c->bs * P);
    const float eps = 1e-7f;
    for (int64_t b = b0; b < b1; b++) {
        int64_t s = sample_of(c, b);
        double lsum = 0.0;
        for (int64_t j = 0; j < P; j++) {
            int64_t k = b * P + j;
            float t = read_f(y, s * yw + (yw == 1 ? 0 : j));
            float pr = pred[k];
            float l, d;
            switch (p->d.loss) {
            case NR_LOSS_BCE:
                if (fused) {
                    float zz = z[k];
                    l = fmaxf(zz, 0.0f) - zz * t + log1pf(expf(-fabsf(zz)));
                    d = pr - t;
                } else {
                    float pc = clampf(pr, eps, 1.0f - eps);
                    l = -(t * logf(pc) + (1.0f - t) * logf(1.0f - pc));
                    d = (pr > eps && pr < 1.0f - eps) ? (pc - t) / (pc * (1.0f - pc)) : 0.0f;
                }
                break;
            case NR_LOSS_BCE_LOGITS:
                l = fmaxf(pr, 0.0f) - pr * t + log1pf(expf(-fabsf(pr)));
                d = (pr >= 0.0f ? 1.0f / (1.0f + expf(-pr)) : expf(pr) / (1.0f + expf(pr))) - t;
                break;
            case NR_LOSS_MSE:
                l = (pr - t) * (pr - t);
                d = 2.0f * (pr - t);
                break;
            case NR_LOSS_MAE:
            default:
                l = fabsf(pr - t);
                d = pr > t ? 1.0f : (pr < t ? -1.0f : 0.0f);
                break;
            }
            g[k] = d * scale;
            lsum += l;
            float prob = p->d.loss == NR_LOSS_BCE_LOGITS ? 1.0f / (1.0f + expf(-pr)) : pr;
            st->correct += (float)(prob > 0.5f) == t;
            st->sq_err += (double)(pr - t) * (pr - t);
            st->abs_err += fabs((double)(pr - t));
            if (prob == prob) { /* a NaN prediction (diverged weights) has no bin */
                int bin = (int)(clampf(prob, 0.0f, 1.0f) * (NR_AUC_BINS - 1) + 0.5f);
                st->auc_pos[bin] += t;
                st->auc_neg[bin] += 1.0f - t;
            }
        }
        st->loss_sum += lsum / (double)P;
        st->samples += 1.0;
        st->elements += (double)P;
    }
}

/* gx[k] += gy[k] * x[k]: gradient buffers never overlap activations. */
static void mul_add(float *restrict gx, const float *restrict gy, const float *restrict x, int64_t n)
{
    for (int64_t k = 0; k < n; k++)
        gx[k] += gy[k] * x[k];
}

static void backward_block(struct run_ctx *c, int ith, int64_t b0, int64_t b1)
{
    struct nr_plan *p = c->p;
    int64_t nb = b1 - b0;
    if (nb <= 0)
        return;
    float *tg = p->tgrad + (size_t)ith * (size_t)p->dense_total;
    for (int oi = p->d.n_ops - 1; oi >= 0; oi--) {
        const struct nr_op *op = &p->ops[oi];
        if (p->skip_backward[oi] || !p->needs_grad[op->out])
            continue;
        int64_t so = p->value_size[op->out];
        const float *gy = grad_of(p, op->out) + b0 * so;
        switch (op->kind) {
        case NR_OP_INPUT:
        case NR_OP_EMBEDDING:
        case NR_OP_ALIAS:
            break;
        case NR_OP_DENSE: {
            int in = op->in[0];
            int64_t si = p->value_size[in];
            float *gx = p->needs_grad[in] ? grad_of(p, in) + b0 * si : NULL;
            float *gw = tg + p->dense_off[op->param[0]];
            float *gb = op->param[1] >= 0 ? tg + p->dense_off[op->param[1]] : NULL;
            nr_dense_backward(gx, gw, gb, gy, act_of(p, in) + b0 * si, p->d.params[op->param[0]].w,
                              p->twt + (size_t)ith * (size_t)(p->wt_max ? p->wt_max : 1),
                              nb * op->dim[0], op->dim[1], op->dim[2]);
            break;
        }
        case NR_OP_ACT:
            if (p->needs_grad[op->in[0]])
                nr_act_backward(grad_of(p, op->in[0]) + b0 * so, gy, act_of(p, op->out) + b0 * so,
                                (enum nr_act)op->act, nb * op->dim[0], op->dim[1]);
            break;
        case NR_OP_DOT: {
            int64_t xr = op->dim[0], xc = op->dim[1], yr = op->dim[2], yc = op->dim[3];
            int64_t ax = op->dim[4], ay = op->dim[5];
            int64_t fa = dot_free(xr, xc, ax), fb = dot_free(yr, yc, ay), cc = dot_contract(xr, xc, ax);
            int64_t ss = p->op_scratch_size[oi];
            for (int64_t b = 0; b < nb; b++) {
                float *sc = p->op_scratch[oi] + (b0 + b) * ss;
                float *at = sc, *bt = sc + fa * cc, *na = bt + fb * cc, *nbv = na + fa;
                float *ga = nbv + fb, *gbm = ga + fa * cc;
                const float *gyb = gy + b * so;
                memset(ga, 0, (size_t)((fa + fb) * cc) * sizeof *ga);
                for (int64_t i = 0; i < fa; i++)
                    for (int64_t j = 0; j < fb; j++) {
                        float gij = gyb[i * fb + j];
                        nr_axpy(ga + i * cc, bt + j * cc, gij, cc);
                        nr_axpy(gbm + j * cc, at + i * cc, gij, cc);
                    }
                if (op->flag) {
                    /* d(v/|v|) = (g - u (u.g)) / |v| with u = v/|v| */
                    for (int64_t i = 0; i < fa; i++) {
                        float ug = nr_dot(at + i * cc, ga + i * cc, cc);
                        for (int64_t k = 0; k < cc; k++)
                            ga[i * cc + k] = (ga[i * cc + k] - at[i * cc + k] * ug) / na[i];
                    }
                    for (int64_t j = 0; j < fb; j++) {
                        float ug = nr_dot(bt + j * cc, gbm + j * cc, cc);
                        for (int64_t k = 0; k < cc; k++)
                            gbm[j * cc + k] = (gbm[j * cc + k] - bt[j * cc + k] * ug) / nbv[j];
                    }
                }
                if (p->needs_grad[op->in[0]])
                    dot_store_grad(grad_of(p, op->in[0]) + (b0 + b) * xr * xc, ga, xr, xc, ax);
                if (p->needs_grad[op->in[1]])
                    dot_store_grad(grad_of(p, op->in[1]) + (b0 + b) * yr * yc, gbm, yr, yc, ay);
            }
            break;
        }
        case NR_OP_CONCAT: {
            int64_t outer = op->dim[0];
            for (int64_t b = 0; b < nb; b++) {
                const float *gb = gy + b * so;
                for (int64_t o = 0; o < outer; o++)
                    for (int i = 0; i < op->n_in; i++) {
                        int64_t si = p->value_size[op->in[i]], inner = si / outer;
                        if (p->needs_grad[op->in[i]]) {
                            float *gx = grad_of(p, op->in[i]) + (b0 + b) * si + o * inner;
                            for (int64_t k = 0; k < inner; k++)
                                gx[k] += gb[k];
                        }
                        gb += inner;
                    }
            }
            break;
        }
        case NR_OP_ADD:
        case NR_OP_AVERAGE:
        case NR_OP_SUB: {
            int64_t n = nb * so;
            float f = op->kind == NR_OP_AVERAGE ? 1.0f / (float)op->n_in : 1.0f;
            for (int i = 0; i < op->n_in; i++) {
                if (!p->needs_grad[op->in[i]])
                    continue;
                float fi = (op->kind == NR_OP_SUB && i == 1) ? -1.0f : f;
                float *gx = grad_of(p, op->in[i]) + b0 * so;
                for (int64_t k = 0; k < n; k++)
                    gx[k] += fi * gy[k];
            }
            break;
        }
        case NR_OP_MUL: {
            int64_t n = nb * so;
            for (int i = 0; i < op->n_in; i++) {
                if (!p->needs_grad[op->in[i]])
                    continue;
                float *gx = grad_of(p, op->in[i]) + b0 * so;
                if (op->n_in == 2) { /* the GMF product: one vectorizable pass */
                    mul_add(gx, gy, act_of(p, op->in[1 - i]) + b0 * so, n);
                    continue;
                }
                for (int64_t k = 0; k < n; k++) {
                    float prod = gy[k];
                    for (int j = 0; j < op->n_in; j++)
                        if (j != i)
                            prod *= act_of(p, op->in[j])[b0 * so + k];
                    gx[k] += prod;
                }
            }
            break;
        }
        case NR_OP_DROPOUT: {
            if (!p->needs_grad[op->in[0]])
                break;
            float *gx = grad_of(p, op->in[0]) + b0 * so;
            int64_t n = nb * so;
            if (op->rate == 0.0f) {
                for (int64_t k = 0; k < n; k++)
                    gx[k] += gy[k];
            } else {
                const float *mask = p->op_scratch[oi] + b0 * so;
                for (int64_t k = 0; k < n; k++)
                    gx[k] += gy[k] * mask[k];
            }
            break;
        }
        }
    }
}

static void block_of(int64_t n, int ith, int nth, int64_t *b0, int64_t *b1)
{
    *b0 = n * ith / nth;
    *b1 = n * (ith + 1) / nth;
}

/* Hogwild's row updates: every thread writes the rows its samples touched while
 * the others read and write them, unsynchronised by design (its own name so
 * that ThreadSanitizer's suppressions, csrc/tests/tsan.supp, can name it). */
static void hogwild_step_rows(const struct nr_optim *o, struct nr_param *prm, const int64_t *rows,
                              int64_t n_rows, const float *grad, int64_t step)
{
    nr_optim_step_rows(o, prm, rows, n_rows, grad, step);
}

/* Forward, loss and backward of batch rows [b0, b1) by thread ith, then the
 * sums of its samples' table gradients (applied at once when apply_rows:
 * Hogwild). */
static void train_rows(struct run_ctx *c, int ith, int64_t b0, int64_t b1, int apply_rows)
{
    struct nr_plan *p = c->p;
    memset(p->tgrad + (size_t)ith * (size_t)p->dense_total, 0, (size_t)p->dense_total * sizeof(float));
    if (p->d.sparse)
        for (int t = 0; t < p->n_tables; t++)
            tg_reset(local_tg(p, ith, t));
    if (b1 <= b0)
        return;
    forward_block(c, b0, b1);
    for (int v = 0; v < p->d.n_values; v++)
        if (p->base[v] == v && p->needs_grad[v])
            memset(p->grad[v] + b0 * p->value_size[v], 0, (size_t)((b1 - b0) * p->value_size[v]) * sizeof(float));
    loss_block(c, b0, b1, &p->tstats[ith]);
    backward_block(c, ith, b0, b1);
    if (!p->d.sparse || atomic_load(&c->bad_index))
        return;
    for (int t = 0; t < p->n_tables; t++) {
        struct nr_param *prm = &p->d.params[p->tables[t].param];
        if (prm->frozen)
            continue;
        struct table_grad *tg = local_tg(p, ith, t);
        gather_table_grad(c, t, tg, b0, b1);
        if (apply_rows)
            hogwild_step_rows(&p->d.optim, prm, tg->rows, tg->n_rows, tg->grad, c->step);
    }
}

static void train_worker(void *vctx, int ith, int pool_nth)
{
    struct run_ctx *c = vctx;
    int nth = c->nth;
    (void)pool_nth;
    if (ith >= nth)
        return;
    int64_t b0, b1;
    block_of(c->bs, ith, nth, &b0, &b1);
    train_rows(c, ith, b0, b1, c->p->d.hogwild);
}

static int64_t hash_row(int64_t r, int64_t mask)
{
    uint64_t h = (uint64_t)r * 0x9E3779B97F4A7C15ULL;
    return (int64_t)(h >> 17) & mask;
}

/* Add gradient g (d floats) of row id to tg: a new row is appended in
 * first-seen order, a known one accumulated. */
static inline void tg_add(struct table_grad *tg, int64_t id, const float *g, int64_t d)
{
    int64_t mask = tg->hcap - 1, h = hash_row(id, mask);
    while (tg->hkeys[h] != -1 && tg->hkeys[h] != id)
        h = (h + 1) & mask;
    if (tg->hkeys[h] == -1) {
        tg->hkeys[h] = id;
        tg->hslot[h] = (int32_t)tg->n_rows;
        tg->rows[tg->n_rows] = id;
        memcpy(tg->grad + tg->n_rows * d, g, (size_t)d * sizeof(float));
        tg->n_rows++;
    } else {
        nr_axpy(tg->grad + (int64_t)tg->hslot[h] * d, g, 1.0f, d);
    }
}

/* Where row id sits in tg's rows, or -1. */
static inline int64_t tg_find(const struct table_grad *tg, int64_t id)
{
    int64_t mask = tg->hcap - 1, h = hash_row(id, mask);
    while (tg->hkeys[h] != -1) {
        if (tg->hkeys[h] == id)
            return tg->hslot[h];
        h = (h + 1) & mask;
    }
    return -1;
}

/* Empty tg, its hash included (linear probing needs no tombstones: every key
 * goes). The hash of a batch stays valid until the next batch's reset, so the
 * update phase can look rows up in every thread's sums. */
static void tg_reset(struct table_grad *tg)
{
    int64_t mask = tg->hcap - 1;
    for (int64_t i = 0; i < tg->n_rows; i++) {
        int64_t h = hash_row(tg->rows[i], mask);
        while (tg->hkeys[h] != tg->rows[i])
            h = (h + 1) & mask;
        tg->hkeys[h] = -1;
    }
    tg->n_rows = 0;
}

/* Sum the gradients of table t over samples [s0, s1) of the batch into tg (reset
 * before), in sample order. */
static void gather_table_grad(struct run_ctx *c, int t, struct table_grad *tg, int64_t s0, int64_t s1)
{
    struct nr_plan *p = c->p;
    int param = p->tables[t].param;
    struct nr_param *prm = &p->d.params[param];
    int64_t d = prm->cols;
    for (int oi = 0; oi < p->d.n_ops; oi++) {
        const struct nr_op *op = &p->ops[oi];
        if (op->kind != NR_OP_EMBEDDING || op->param[0] != param || !p->needs_grad[op->out])
            continue;
        const struct nr_array *a = &c->inputs[op->in[0]];
        int64_t m = op->dim[0];
        const float *g = grad_of(p, op->out);
        for (int64_t b = s0; b < s1; b++) {
            int64_t s = sample_of(c, b);
            for (int64_t j = 0; j < m; j++) {
                int64_t id = read_id(a, s * m + j);
                if (id >= 0 && id < prm->rows)
                    tg_add(tg, id, g + (b * m + j) * d, d);
            }
        }
    }
}

/* The rows of table t that thread ith updates, with their gradients: a row in
 * its own sums only goes as it is; a row that several threads saw is updated by
 * the first of them, with the partial sums added in thread order (so results
 * are deterministic for a thread count). Only shared rows read other threads'
 * buffers: with large tables almost every row stays on the core that gathered it. */
static struct table_grad *merge_table_grad(struct nr_plan *p, int t, int ith, int nth)
{
    struct table_grad *mine = local_tg(p, ith, t);
    if (nth == 1)
        return mine;
    struct table_grad *mg = merged_tg(p, ith, t);
    int64_t d = p->d.params[p->tables[t].param].cols;
    int64_t at[NR_MAX_THREADS];
    mg->n_rows = 0;
    for (int64_t i = 0; i < mine->n_rows; i++) {
        int64_t r = mine->rows[i];
        int first = ith, shared = 0;
        for (int src = 0; src < nth; src++) {
            at[src] = src == ith ? i : tg_find(local_tg(p, src, t), r);
            if (src != ith && at[src] >= 0) {
                shared = 1;
                first = src < first ? src : first;
            }
        }
        if (first != ith)
            continue; /* an earlier thread updates it */
        float *dst = mg->grad + mg->n_rows * d;
        mg->rows[mg->n_rows++] = r;
        if (!shared) {
            memcpy(dst, mine->grad + i * d, (size_t)d * sizeof(float));
            continue;
        }
        int started = 0;
        for (int src = 0; src < nth; src++) {
            if (at[src] < 0)
                continue;
            const float *g = local_tg(p, src, t)->grad + at[src] * d;
            if (!started)
                memcpy(dst, g, (size_t)d * sizeof(float));
            else
                nr_axpy(dst, g, 1.0f, d);
            started = 1;
        }
    }
    return mg;
}

/* Dense update of table t: thread ith owns the row range [r0, r1). */
static void update_table_dense(struct run_ctx *c, int t, int ith, int nth)
{
    struct nr_plan *p = c->p;
    int param = p->tables[t].param;
    struct nr_param *prm = &p->d.params[param];
    float *dense = p->tables[t].dense;
    if (!dense)
        return;
    int64_t d = prm->cols, r0 = prm->rows * ith / nth, r1 = prm->rows * (ith + 1) / nth;
    memset(dense + r0 * d, 0, (size_t)((r1 - r0) * d) * sizeof(float));
    for (int oi = 0; oi < p->d.n_ops; oi++) {
        const struct nr_op *op = &p->ops[oi];
        if (op->kind != NR_OP_EMBEDDING || op->param[0] != param || !p->needs_grad[op->out])
            continue;
        const struct nr_array *a = &c->inputs[op->in[0]];
        int64_t m = op->dim[0];
        const float *g = grad_of(p, op->out);
        for (int64_t b = 0; b < c->bs; b++) {
            int64_t s = sample_of(c, b);
            for (int64_t j = 0; j < m; j++) {
                int64_t id = read_id(a, s * m + j);
                if (id >= r0 && id < r1)
                    nr_axpy(dense + id * d, g + (b * m + j) * d, 1.0f, d);
            }
        }
    }
    struct nr_param part = *prm;
    part.w = prm->w + r0 * d;
    part.rows = r1 - r0;
    for (int k = 0; k < 3; k++)
        part.slot[k] = prm->slot[k] ? prm->slot[k] + r0 * d : NULL;
    nr_optim_step_dense(&p->d.optim, &part, dense + r0 * d, c->step);
}

static void update_worker(void *vctx, int ith, int pool_nth)
{
    struct run_ctx *c = vctx;
    int nth = c->nth;
    (void)pool_nth;
    if (ith >= nth)
        return;
    struct nr_plan *p = c->p;
    for (int i = 0; i < p->d.n_params; i++) {
        struct nr_param *prm = &p->d.params[i];
        if (prm->is_table || c->task_owner[i] != ith || prm->frozen)
            continue;
        int64_t off = p->dense_off[i], n = prm->rows * prm->cols;
        float *g = p->tgrad + off;
        for (int t = 1; t < nth; t++)
            nr_axpy(g, p->tgrad + (size_t)t * (size_t)p->dense_total + off, 1.0f, n);
        nr_optim_step_dense(&p->d.optim, prm, g, c->step);
    }
    if (p->d.hogwild && p->d.sparse)
        return; /* tables were updated by each thread right after its backward pass */
    for (int t = 0; t < p->n_tables; t++) {
        struct nr_param *prm = &p->d.params[p->tables[t].param];
        if (prm->frozen)
            continue;
        if (p->d.sparse) {
            struct table_grad *mg = merge_table_grad(p, t, ith, nth);
            nr_optim_step_rows(&p->d.optim, prm, mg->rows, mg->n_rows, mg->grad, c->step);
        } else {
            update_table_dense(c, t, ith, nth);
        }
    }
}

/* Longest-processing-time assignment of parameter updates to threads:
 * deterministic for a given thread count. */
static double task_cost(const struct nr_plan *p, int i)
{
    const struct nr_param *prm = &p->d.params[i];
    if (prm->is_table)
        return -1.0; /* tables are updated by the threads that saw their rows */
    return (double)(prm->rows * prm->cols);
}

static void assign_tasks(const struct nr_plan *p, int32_t *owner, int nth)
{
    double load[NR_MAX_THREADS] = {0};
    int np = p->d.n_params;
    for (int i = 0; i < np; i++)
        owner[i] = -1;
    for (int k = 0; k < np; k++) {
        int best = -1;
        double bc = -2.0;
        for (int i = 0; i < np; i++) {
            if (owner[i] >= 0)
                continue;
            double cost = task_cost(p, i);
            if (cost > bc) {
                bc = cost;
                best = i;
            }
        }
        int t = 0;
        for (int j = 1; j < nth; j++)
            if (load[j] < load[t])
                t = j;
        owner[best] = t;
        load[t] += bc > 0 ? bc : 0.0;
    }
}

/* Per-thread table-gradient buffers for batches of up to rows samples (sized
 * by the training batch, not by the scratch capacity that predict may raise). */
static enum nr_status ensure_ttg(struct nr_plan *p, int nth, int64_t rows)
{
    if (p->ttg && p->ttg_threads >= nth && p->ttg_cap >= rows)
        return NR_OK;
    free_ttg(p);
    if (p->n_tables == 0)
        return NR_OK;
    int64_t bytes = 0;
    for (int t = 0; t < p->n_tables; t++) {
        const struct nr_param *prm = &p->d.params[p->tables[t].param];
        int64_t m;
        /* a hash of up to 4 m slots (8 + 4 bytes each), m row ids, m gradient rows */
        if (!size_mul(rows, p->ids_per_sample[p->tables[t].param], 1, &m) ||
            !size_mul(m, 4 * 12 + 8, 1, &bytes) || !size_mul(m, prm->cols, sizeof(float), &bytes))
            return NR_ERR_NOMEM;
    }
    p->ttg = calloc(2 * (size_t)nth * (size_t)p->n_tables, sizeof *p->ttg);
    if (!p->ttg)
        return NR_ERR_NOMEM;
    p->ttg_threads = nth;
    p->ttg_cap = rows;
    for (int64_t k = 0; k < 2 * (int64_t)nth * p->n_tables; k++) {
        struct table_grad *tg = &p->ttg[k];
        tg->param = p->tables[k % p->n_tables].param;
        const struct nr_param *prm = &p->d.params[tg->param];
        int64_t m = rows * p->ids_per_sample[tg->param];
        m = m > 0 ? m : 1;
        tg->hcap = next_pow2(2 * m);
        tg->hkeys = malloc((size_t)tg->hcap * sizeof *tg->hkeys);
        tg->hslot = malloc((size_t)tg->hcap * sizeof *tg->hslot);
        tg->rows = malloc((size_t)m * sizeof *tg->rows);
        tg->grad = malloc((size_t)m * (size_t)prm->cols * sizeof(float));
        if (!tg->hkeys || !tg->hslot || !tg->rows || !tg->grad) {
            free_ttg(p);
            return NR_ERR_NOMEM;
        }
        for (int64_t h = 0; h < tg->hcap; h++)
            tg->hkeys[h] = -1;
    }
    return NR_OK;
}

static enum nr_status ensure_threads(struct nr_plan *p, int nth, int64_t rows)
{
    enum nr_status s = ensure_ttg(p, nth, rows);
    if (s != NR_OK)
        return s;
    if (p->tstats_threads < nth) {
        struct nr_fit_stats *st = calloc((size_t)nth, sizeof *st);
        if (!st)
            return NR_ERR_NOMEM;
        free(p->tstats);
        p->tstats = st;
        p->tstats_threads = nth;
    }
    if (p->tgrad && p->tgrad_threads >= nth)
        return NR_OK;
    int64_t tb, wb;
    if (!size_mul(nth, p->dense_total ? p->dense_total : 1, sizeof(float), &tb) ||
        !size_mul(nth, p->wt_max ? p->wt_max : 1, sizeof(float), &wb))
        return NR_ERR_NOMEM;
    float *t = malloc((size_t)tb);
    float *w = malloc((size_t)wb);
    if (!t || !w) {
        free(t);
        free(w);
        return NR_ERR_NOMEM;
    }
    free(p->tgrad);
    free(p->twt);
    p->tgrad = t;
    p->twt = w;
    p->tgrad_threads = nth;
    return NR_OK;
}

/* Work units per extra thread: a batch (or predict block) smaller than this
 * per thread runs on fewer threads, as PyTorch's intra-op grain size does. Two
 * pool hand-offs and the cache lines that cross cores cost more than splitting
 * a GMF batch of 256 saves (0.8x on two threads); a 256-sample NeuMF batch has
 * ~40x this much work. */
#define NR_GRAIN 16384

/* Per-sample work estimate: dense multiply-adds plus every value's floats
 * (gathers, element-wise ops, gradients). */
static int64_t sample_work(const struct nr_plan *p)
{
    int64_t w = 0;
    for (int oi = 0; oi < p->d.n_ops; oi++) {
        const struct nr_op *op = &p->ops[oi];
        if (op->kind == NR_OP_DENSE)
            w += op->dim[0] * op->dim[1] * op->dim[2];
    }
    for (int v = 0; v < p->d.n_values; v++)
        w += p->value_size[v];
    return w > 0 ? w : 1;
}

/* Threads for rows samples at a time: the pool's, capped by the grain (and NR_MAX_THREADS). */
static int pool_threads(struct nr_pool *pool)
{
    int nth = nr_pool_size(pool);
    return nth > NR_MAX_THREADS ? NR_MAX_THREADS : nth;
}

static int clamp_threads(const struct nr_plan *p, struct nr_pool *pool, int64_t rows)
{
    int nth = pool_threads(pool);
    int64_t by_work = rows * sample_work(p) / NR_GRAIN;
    by_work = by_work < 1 ? 1 : by_work;
    return by_work < nth ? (int)by_work : nth;
}

/* Run fn on c->nth threads: inline when that is one, else on the pool (whose
 * extra threads return at once; workers read their thread count from c). */
static void run_on(struct nr_pool *pool, nr_pool_fn fn, struct run_ctx *c)
{
    if (c->nth == 1)
        fn(c, 0, 1);
    else
        nr_pool_run(pool, fn, c);
}

static void stats_add(struct nr_fit_stats *dst, const struct nr_fit_stats *s)
{
    dst->loss_sum += s->loss_sum;
    dst->samples += s->samples;
    dst->elements += s->elements;
    dst->correct += s->correct;
    dst->sq_err += s->sq_err;
    dst->abs_err += s->abs_err;
    for (int i = 0; i < NR_AUC_BINS; i++) {
        dst->auc_pos[i] += s->auc_pos[i];
        dst->auc_neg[i] += s->auc_neg[i];
    }
}

/* Batch-level Hogwild: thread ith trains whole batches ith, ith + nth, ... of
 * the chunk in its own scratch rows [ith * cap, ith * cap + bs) and applies
 * every update (tables and dense weights) at once, without waiting for the
 * other threads (as word2vec and LightFM do). One hand-off per chunk. */
struct hog_ctx {
    struct run_ctx *c;        /* per thread */
    int nth;                  /* entries of c: threads that train (<= the pool's) */
    const int64_t *idx;
    int64_t n, batch_size, step0;
    const volatile int *abort;
    atomic_llong done;        /* batches completed */
};

static void hogwild_worker(void *vctx, int ith, int pool_nth)
{
    struct hog_ctx *h = vctx;
    (void)pool_nth;
    /* the pool may have more threads than c has entries (NR_MAX_THREADS): check first */
    if (ith >= h->nth)
        return;
    struct run_ctx *c = &h->c[ith];
    int nth = c->nth;
    struct nr_plan *p = c->p;
    int64_t n_batches = (h->n + h->batch_size - 1) / h->batch_size;
    float *tg = p->tgrad + (size_t)ith * (size_t)p->dense_total;
    c->row0 = ith * h->batch_size;
    for (int64_t k = ith; k < n_batches; k += nth) {
        if ((h->abort && *h->abort) || atomic_load(&c->bad_index))
            break;
        int64_t start = k * h->batch_size;
        c->idx = h->idx ? h->idx + start : NULL;
        c->start = start;
        c->bs = h->n - start < h->batch_size ? h->n - start : h->batch_size;
        c->step = h->step0 + k + 1;
        train_rows(c, ith, c->row0, c->row0 + c->bs, 1);
        if (atomic_load(&c->bad_index))
            break;
        for (int i = 0; i < p->d.n_params; i++) {
            struct nr_param *prm = &p->d.params[i];
            if (!prm->is_table && !prm->frozen)
                nr_optim_step_dense(&p->d.optim, prm, tg + p->dense_off[i], c->step);
        }
        atomic_fetch_add(&h->done, 1);
    }
}

static enum nr_status fit_hogwild(struct nr_plan *p, struct nr_pool *pool, const struct nr_array *inputs,
                                  const struct nr_array *y, const int64_t *idx, int64_t n,
                                  int64_t batch_size, int64_t *step, uint64_t seed, int nth,
                                  const volatile int *abort)
{
    struct run_ctx *cs = calloc((size_t)nth, sizeof *cs);
    if (!cs)
        return NR_ERR_NOMEM;
    for (int t = 0; t < nth; t++) {
        cs[t].p = p;
        cs[t].inputs = inputs;
        cs[t].y = y;
        cs[t].training = 1;
        cs[t].seed = seed;
        cs[t].nth = nth;
        atomic_init(&cs[t].bad_index, 0);
    }
    struct hog_ctx h = {.c = cs, .nth = nth, .idx = idx, .n = n, .batch_size = batch_size,
                        .step0 = *step, .abort = abort};
    atomic_init(&h.done, 0);
    nr_pool_run(pool, hogwild_worker, &h);
    enum nr_status s = NR_OK;
    for (int t = 0; t < nth; t++)
        if (atomic_load(&cs[t].bad_index))
            s = NR_ERR_INDEX;
    int64_t done = (int64_t)atomic_load(&h.done);
    *step += done;
    if (s == NR_OK && done < (n + batch_size - 1) / batch_size)
        s = NR_ABORTED;
    free(cs);
    return s;
}

/* Every input array has the width its INPUT or EMBEDDING ops read per sample
 * (the forward pass strides by it). */
static enum nr_status check_input_widths(const struct nr_plan *p, const struct nr_array *inputs)
{
    for (int oi = 0; oi < p->d.n_ops; oi++) {
        const struct nr_op *op = &p->ops[oi];
        if ((op->kind == NR_OP_INPUT || op->kind == NR_OP_EMBEDDING) &&
            inputs[op->in[0]].width != op->dim[0])
            return NR_ERR_SHAPE;
    }
    return NR_OK;
}

/* The default mode: every batch split across nth threads, a train phase and an
 * update phase per batch. */
static enum nr_status fit_batches(struct nr_plan *p, struct nr_pool *pool,
                                  const struct nr_array *inputs, const struct nr_array *y,
                                  const int64_t *idx, int64_t n, int64_t batch_size, int64_t *step,
                                  uint64_t seed, int nth, const volatile int *abort)
{
    int32_t *owner = malloc(sizeof *owner * (size_t)(p->d.n_params ? p->d.n_params : 1));
    if (!owner)
        return NR_ERR_NOMEM;
    assign_tasks(p, owner, nth);
    struct run_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.inputs = inputs;
    c.y = y;
    c.training = 1;
    c.seed = seed;
    c.task_owner = owner;
    c.nth = nth;
    atomic_init(&c.bad_index, 0);
    enum nr_status s = NR_OK;
    for (int64_t start = 0; start < n; start += batch_size) {
        if (abort && *abort) {
            s = NR_ABORTED;
            break;
        }
        c.idx = idx + start;
        c.bs = n - start < batch_size ? n - start : batch_size;
        c.step = *step + 1;
        run_on(pool, train_worker, &c);
        if (atomic_load(&c.bad_index)) {
            s = NR_ERR_INDEX;
            break;
        }
        run_on(pool, update_worker, &c);
        *step += 1;
    }
    free(owner);
    return s;
}

enum nr_status nr_plan_fit(struct nr_plan *p, struct nr_pool *pool, const struct nr_array *inputs,
                           const struct nr_array *y, const int64_t *idx, int64_t n, int64_t batch_size,
                           int64_t *step, uint64_t seed, struct nr_fit_stats *stats,
                           const volatile int *abort)
{
    if (batch_size < 1 || n < 0)
        return NR_ERR_VALUE;
    /* one batch of every sample is the same training as any larger batch size, and
     * keeps the scratch (and the products below) bounded by the data */
    if (batch_size > n)
        batch_size = n > 0 ? n : 1;
    /* the step count comes from Python (a model file, a public attribute): it must
     * stay in [0, INT64_MAX - batches] so the optimizer's step t >= 1 never wraps */
    if (*step < 0 || *step > INT64_MAX - (n / batch_size + 1))
        return NR_ERR_VALUE;
    if (check_input_widths(p, inputs) != NR_OK)
        return NR_ERR_SHAPE;
    enum nr_status s = nr_plan_reserve(p, batch_size);
    if (s != NR_OK)
        return s;
    /* batch-level Hogwild hands off once per call, so any batch is worth a thread */
    int hog = p->d.hogwild && p->d.sparse && pool_threads(pool) > 1 && n > batch_size;
    int nth = hog ? pool_threads(pool) : clamp_threads(p, pool, batch_size);
    int64_t hog_rows = 0;
    if (hog && !size_mul(batch_size, nth, 1, &hog_rows))
        return NR_ERR_NOMEM;
    if (hog && (s = nr_plan_reserve(p, hog_rows)) != NR_OK)
        return s; /* batch-level Hogwild: one batch of scratch rows per thread */
    s = ensure_threads(p, nth, batch_size);
    if (s != NR_OK)
        return s;
    memset(p->tstats, 0, sizeof *p->tstats * (size_t)nth);
    s = hog ? fit_hogwild(p, pool, inputs, y, idx, n, batch_size, step, seed, nth, abort)
            : fit_batches(p, pool, inputs, y, idx, n, batch_size, step, seed, nth, abort);
    for (int t = 0; t < nth; t++)
        stats_add(stats, &p->tstats[t]);
    return s;
}

static void predict_worker(void *vctx, int ith, int pool_nth)
{
    struct run_ctx *c = vctx;
    int nth = c->nth;
    (void)pool_nth;
    if (ith >= nth)
        return;
    struct nr_plan *p = c->p;
    int64_t b0, b1;
    block_of(c->bs, ith, nth, &b0, &b1);
    if (b1 <= b0)
        return;
    forward_block(c, b0, b1);
    int64_t P = p->value_size[p->d.output];
    memcpy(c->out + b0 * P, act_of(p, p->d.output) + b0 * P, (size_t)((b1 - b0) * P) * sizeof(float));
}

enum nr_status nr_plan_predict(struct nr_plan *p, struct nr_pool *pool, const struct nr_array *inputs,
                               int64_t start, int64_t n, float *out)
{
    if (n < 0)
        return NR_ERR_VALUE;
    if (check_input_widths(p, inputs) != NR_OK)
        return NR_ERR_SHAPE;
    /* blocks of 256 to 4096 samples with about 1 MB of scratch (unless training
     * reserved more): the values of a block stay in L2, and every thread's
     * share is still worth the hand-off (< 1 us) */
    int64_t per_sample = 0;
    for (int v = 0; v < p->d.n_values; v++)
        per_sample += 2 * p->value_size[v] * (int64_t)sizeof(float);
    int64_t cap = per_sample > 0 ? ((int64_t)1 << 20) / per_sample : 4096;
    cap = cap > 4096 ? 4096 : (cap < 256 ? 256 : cap);
    cap = p->cap > cap ? p->cap : cap;
    enum nr_status s = nr_plan_reserve(p, cap);
    if (s != NR_OK)
        return s;
    struct run_ctx c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.inputs = inputs;
    atomic_init(&c.bad_index, 0);
    int64_t P = p->value_size[p->d.output];
    for (int64_t off = 0; off < n; off += cap) {
        c.start = start + off;
        c.bs = n - off < cap ? n - off : cap;
        c.out = out + off * P;
        c.nth = clamp_threads(p, pool, c.bs);
        run_on(pool, predict_worker, &c);
        if (atomic_load(&c.bad_index))
            return NR_ERR_INDEX;
    }
    return NR_OK;
}
