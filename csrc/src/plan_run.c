/* The runner: threads, the grain policy, the phases of a training step (compute,
 * reduce, apply), fit (batched and Hogwild) and predict. */
#include "plan_impl.h"

#include "neurec/nr_kernels.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* threads                                                                   */

struct run_on_call {
    nr_pool_fn fn;
    void *ctx;
    int nth;
};

static void run_on_thread(void *vcall, int ith, int pool_nth)
{
    const struct run_on_call *call = vcall;
    (void)pool_nth;
    if (ith < call->nth)
        call->fn(call->ctx, ith, call->nth);
}

/* Call fn(ctx, ith, nth) for every ith < nth and wait: inline when nth is 1
 * (no hand-off), else on the pool, whose threads past nth (the grain, or
 * NR_MAX_THREADS, may leave some idle) return at once. */
static void run_on(struct nr_pool *pool, int nth, nr_pool_fn fn, void *ctx)
{
    if (nth == 1) {
        fn(ctx, 0, 1);
        return;
    }
    struct run_on_call call = {fn, ctx, nth};
    nr_pool_run(pool, run_on_thread, &call);
}

/* Thread ith of nth takes the rows [b0, b1) of n. */
static void block_of(int64_t n, int ith, int nth, int64_t *b0, int64_t *b1)
{
    *b0 = n * ith / nth;
    *b1 = n * (ith + 1) / nth;
}

/* Hogwild's row updates: every thread writes the rows its samples touched while
 * the others read and write them, unsynchronised by design (its own name so
 * that ThreadSanitizer's suppressions, csrc/tests/tsan.supp, can name it). */
static void hogwild_step_rows(const struct nr_optim *o, const struct plan_table *pt,
                              const int64_t *rows, int64_t n_rows, const float *grad, int64_t step)
{
    struct nr_param prm = plan_table_param(pt);
    nr_optim_step_rows(o, &prm, rows, n_rows, grad, step);
}

/* Samples per pass through the graph: a thread's block of the batch goes
 * through forward, loss and backward in chunks whose values, gradients and op
 * scratch stay within about CHUNK_BYTES, the share of a core's L2 cache they
 * may take; parameter and table gradients accumulate across the chunks. */
#define CHUNK_BYTES (256 * 1024)

static int64_t chunk_rows(const struct nr_plan *p)
{
    int64_t floats = 0;
    for (int v = 0; v < p->d.n_values; v++)
        if (p->base[v] == v)
            floats += p->value_size[v] * (p->needs_grad[v] ? 2 : 1);
    for (int i = 0; i < p->d.n_ops; i++)
        floats += p->op_scratch_size[i];
    const int64_t rows = CHUNK_BYTES / (4 * (floats > 0 ? floats : 1));
    return rows < 16 ? 16 : rows;
}

static size_t dtype_bytes(enum nr_dtype t)
{
    return t == NR_DTYPE_F64 || t == NR_DTYPE_I64 ? 8 : 4;
}

/* Start loading the inputs, labels and weights of batch rows [b0, b1). Picked
 * by a shuffled idx from arrays far larger than the caches, every sample is a
 * cache miss; issued together the misses overlap, where the forward pass would
 * wait for each in turn (NeuMF on ml-1m: 584 -> 400 ns a sample). */
static void prefetch_samples(const struct run_ctx *c, int64_t b0, int64_t b1)
{
    if (!c->idx)
        return; /* consecutive samples: the hardware prefetcher streams them */
    const struct nr_plan *p = c->p;
    for (int64_t b = b0; b < b1; b++) {
        const int64_t s = sample_of(c, b);
        for (int k = 0; k < p->d.n_inputs; k++) {
            const struct nr_array *a = &c->inputs[k];
            __builtin_prefetch((const char *)a->data +
                               (size_t)(s * a->width) * dtype_bytes(a->dtype));
        }
        __builtin_prefetch((const char *)c->y->data +
                           (size_t)(s * c->y->width) * dtype_bytes(c->y->dtype));
        if (c->w)
            __builtin_prefetch(c->w + s);
    }
}

/* Forward, loss and backward of batch rows [b0, b1) by thread ith, then the
 * sums of its samples' table gradients (applied at once when apply_rows:
 * Hogwild). */
static void train_rows(struct run_ctx *c, int ith, int64_t b0, int64_t b1, int apply_rows)
{
    struct nr_plan *p = c->p;
    memset(p->tgrad + (size_t)ith * (size_t)p->dense_total, 0,
           (size_t)p->dense_total * sizeof(float));
    if (p->d.sparse)
        for (int t = 0; t < p->n_tables; t++)
            nr_table_grad_reset(local_tg(p, ith, t));
    const int64_t chunk = chunk_rows(p);
    for (int64_t s0 = b0, s1; s0 < b1; s0 = s1) {
        s1 = b1 - s0 > chunk ? s0 + chunk : b1;
        prefetch_samples(c, s0, s1);
        nr_plan_forward(c, s0, s1);
        for (int v = 0; v < p->d.n_values; v++)
            if (p->base[v] == v && p->needs_grad[v])
                memset(p->grad[v] + s0 * p->value_size[v], 0,
                       (size_t)((s1 - s0) * p->value_size[v]) * sizeof(float));
        nr_plan_loss(c, s0, s1, &p->tstats[ith]);
        nr_plan_backward(c, ith, s0, s1);
        if (!p->d.sparse || atomic_load(&c->bad_index))
            continue;
        for (int t = 0; t < p->n_tables; t++)
            if (!p->tables[t].frozen)
                nr_table_grad_gather(c, t, local_tg(p, ith, t), s0, s1);
    }
    if (!apply_rows || !p->d.sparse || atomic_load(&c->bad_index))
        return;
    for (int t = 0; t < p->n_tables; t++) {
        struct table_grad *tg = local_tg(p, ith, t);
        if (!p->tables[t].frozen)
            hogwild_step_rows(&p->d.optim, &p->tables[t], tg->rows, tg->n_rows, tg->grad, c->step);
    }
}

/* ------------------------------------------------------------------------ */
/* the phases of a training step                                             */

/* Compute: thread ith's block of the batch. */
static void compute_worker(void *vctx, int ith, int nth)
{
    struct run_ctx *c = vctx;
    int64_t b0, b1;
    block_of(c->bs, ith, nth, &b0, &b1);
    train_rows(c, ith, b0, b1, c->p->d.hogwild);
}

/* Reduce and apply, per parameter. Thread ith reduces and applies the dense
 * parameters it owns (their sums go to thread 0's buffer) and, of each table,
 * the rows its part (struct nr_grad_part) lists. */
static int owns_dense(const struct run_ctx *c, int i, int ith)
{
    const struct nr_param *prm = &c->p->d.params[i];
    return !prm->is_table && c->task_owner[i] == ith && !prm->frozen;
}

/* Tables of a Hogwild plan were updated by each thread right after its
 * backward pass. */
static int tables_reduced(const struct nr_plan *p) { return !(p->d.hogwild && p->d.sparse); }

static void reduce_dense(struct run_ctx *c, int i, int nth)
{
    struct nr_plan *p = c->p;
    const struct nr_param *prm = &p->d.params[i];
    int64_t off = p->dense_off[i], n = prm->rows * prm->cols;
    float *g = p->tgrad + off;
    for (int t = 1; t < nth; t++)
        nr_axpy(g, p->tgrad + (size_t)t * (size_t)p->dense_total + off, 1.0f, n);
}

static void apply_dense(struct run_ctx *c, int i)
{
    struct nr_plan *p = c->p;
    nr_optim_step_dense(&p->d.optim, &p->d.params[i], p->tgrad + p->dense_off[i], c->step);
}

static void reduce_table(struct run_ctx *c, int t, int ith, int nth)
{
    struct nr_plan *p = c->p;
    const struct plan_table *pt = &p->tables[t];
    struct nr_grad_part *part = &p->parts[(int64_t)ith * p->n_tables + t];
    *part = (struct nr_grad_part){.param = pt->param, .cols = pt->tab.cols};
    if (pt->frozen)
        return;
    if (p->d.sparse) {
        struct table_grad *mg = nr_table_grad_merge(p, t, ith, nth);
        part->n_rows = mg->n_rows;
        part->rows = mg->rows;
        part->grad = mg->grad;
    } else if (pt->dense) { /* NULL: no op reads the table */
        int64_t r0, r1;
        block_of(pt->tab.rows, ith, nth, &r0, &r1);
        nr_table_grad_dense(c, t, r0, r1);
        part->first_row = r0;
        part->n_rows = r1 - r0;
        part->grad = pt->dense + r0 * pt->tab.cols;
    }
}

static void apply_table(struct run_ctx *c, int t, int ith)
{
    struct nr_plan *p = c->p;
    const struct nr_grad_part *part = &p->parts[(int64_t)ith * p->n_tables + t];
    if (p->tables[t].frozen)
        return;
    struct nr_param prm = plan_table_param(&p->tables[t]);
    if (part->rows) {
        nr_optim_step_rows(&p->d.optim, &prm, part->rows, part->n_rows, part->grad, c->step);
    } else if (part->grad) {
        /* a dense part: rows first_row.. as a parameter of their own */
        int64_t d = prm.cols, r0 = part->first_row;
        prm.w += r0 * d;
        prm.rows = part->n_rows;
        for (int k = 0; k < NR_TABLE_SLOTS; k++)
            prm.slot[k] = prm.slot[k] ? prm.slot[k] + r0 * d : NULL;
        nr_optim_step_dense(&p->d.optim, &prm, part->grad, c->step);
    }
}

/* Reduce, with a hook: every thread's sums must be complete before it runs. */
static void reduce_worker(void *vctx, int ith, int nth)
{
    struct run_ctx *c = vctx;
    for (int i = 0; i < c->p->d.n_params; i++)
        if (owns_dense(c, i, ith))
            reduce_dense(c, i, nth);
    if (tables_reduced(c->p))
        for (int t = 0; t < c->p->n_tables; t++)
            reduce_table(c, t, ith, nth);
}

static void apply_worker(void *vctx, int ith, int nth)
{
    struct run_ctx *c = vctx;
    (void)nth;
    for (int i = 0; i < c->p->d.n_params; i++)
        if (owns_dense(c, i, ith))
            apply_dense(c, i);
    if (tables_reduced(c->p))
        for (int t = 0; t < c->p->n_tables; t++)
            apply_table(c, t, ith);
}

/* Without a hook a thread applies what it reduced at once, parameter by
 * parameter (it depends on no other thread's reduce): one hand-off fewer,
 * and each gradient is stepped while it is still in cache. */
static void update_worker(void *vctx, int ith, int nth)
{
    struct run_ctx *c = vctx;
    for (int i = 0; i < c->p->d.n_params; i++)
        if (owns_dense(c, i, ith)) {
            reduce_dense(c, i, nth);
            apply_dense(c, i);
        }
    if (tables_reduced(c->p))
        for (int t = 0; t < c->p->n_tables; t++) {
            reduce_table(c, t, ith, nth);
            apply_table(c, t, ith);
        }
}

/* Call a hook (the reduce hook, or the apply hook) with its view of the batch
 * that nth threads just reduced (or applied). */
static enum nr_status call_hook(struct run_ctx *c, int nth, nr_plan_reduce_fn fn, void *ctx)
{
    struct nr_plan *p = c->p;
    struct nr_batch_grads g = {
        .step = c->step,
        .n_samples = c->bs,
        .n_params = p->d.n_params,
        .dense = p->tgrad,
        .dense_offset = p->dense_off,
        .dense_size = p->dense_total,
        .n_tables = p->n_tables,
        .n_parts = nth * p->n_tables,
        .parts = p->parts,
    };
    return fn(ctx, &g);
}

/* Set a hook and its context: refused for a Hogwild plan with sparse updates,
 * whose threads apply their table rows without a reduce phase. */
static enum nr_status set_hook(const struct nr_plan *p, nr_plan_reduce_fn fn, void *ctx,
                               nr_plan_reduce_fn *fn_at, void **ctx_at)
{
    if (fn && p->d.hogwild && p->d.sparse)
        return NR_ERR_VALUE;
    *fn_at = fn;
    *ctx_at = fn ? ctx : NULL;
    return NR_OK;
}

enum nr_status nr_plan_set_reduce_hook(struct nr_plan *p, nr_plan_reduce_fn fn, void *ctx)
{
    return set_hook(p, fn, ctx, &p->reduce_hook, &p->reduce_ctx);
}

enum nr_status nr_plan_set_apply_hook(struct nr_plan *p, nr_plan_reduce_fn fn, void *ctx)
{
    return set_hook(p, fn, ctx, &p->apply_hook, &p->apply_ctx);
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

static enum nr_status ensure_threads(struct nr_plan *p, int nth, int64_t rows)
{
    enum nr_status s = nr_plan_reserve_table_grads(p, nth, rows);
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

/* Batch-level Hogwild: thread ith trains whole batches ith, ith + nth, ... of
 * the chunk in its own scratch rows [ith * cap, ith * cap + bs) and applies
 * every update (tables and dense weights) at once, without waiting for the
 * other threads (as word2vec and LightFM do). One hand-off per chunk. */
struct hog_ctx {
    struct run_ctx *c;        /* per thread */
    const int64_t *idx;
    int64_t n, batch_size, step0;
    const volatile int *abort;
    atomic_llong done;        /* batches completed */
};

static void hogwild_worker(void *vctx, int ith, int nth)
{
    struct hog_ctx *h = vctx;
    struct run_ctx *c = &h->c[ith];
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

static enum nr_status fit_hogwild(struct nr_plan *p, struct nr_pool *pool,
                                  const struct nr_array *inputs, const struct nr_array *y,
                                  const float *w, const int64_t *idx, int64_t n, int64_t batch_size,
                                  int64_t *step, uint64_t seed, int nth, const volatile int *abort)
{
    struct run_ctx *cs = calloc((size_t)nth, sizeof *cs);
    if (!cs)
        return NR_ERR_NOMEM;
    for (int t = 0; t < nth; t++) {
        cs[t].p = p;
        cs[t].inputs = inputs;
        cs[t].y = y;
        cs[t].w = w;
        cs[t].training = 1;
        cs[t].seed = seed;
        atomic_init(&cs[t].bad_index, 0);
    }
    struct hog_ctx h = {
        .c = cs, .idx = idx, .n = n, .batch_size = batch_size, .step0 = *step, .abort = abort};
    atomic_init(&h.done, 0);
    run_on(pool, nth, hogwild_worker, &h);
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

/* The steps of one call: batch_size samples each (the last maybe short), or with
 * bounds step s the samples bounds[s]..bounds[s+1]-1 of idx, its loss over norms[s]. */
struct steps {
    int64_t n, batch_size, count;
    const int64_t *bounds, *norms;
};

static void step_of(const struct steps *st, int64_t s, int64_t *start, int64_t *bs, int64_t *norm)
{
    if (st->bounds) {
        *start = st->bounds[s];
        *bs = st->bounds[s + 1] - st->bounds[s];
        *norm = st->norms[s];
    } else {
        *start = s * st->batch_size;
        *bs = st->n - *start < st->batch_size ? st->n - *start : st->batch_size;
        *norm = 0;
    }
}

/* The default mode: every step split across nth threads, in three phases. */
static enum nr_status fit_batches(struct nr_plan *p, struct nr_pool *pool,
                                  const struct nr_array *inputs, const struct nr_array *y,
                                  const float *w, const int64_t *idx, const struct steps *steps,
                                  int64_t *step, uint64_t seed, int nth, const volatile int *abort)
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
    c.w = w;
    c.training = 1;
    c.seed = seed;
    c.task_owner = owner;
    atomic_init(&c.bad_index, 0);
    enum nr_status s = NR_OK;
    for (int64_t k = 0; k < steps->count; k++) {
        if (abort && *abort) {
            s = NR_ABORTED;
            break;
        }
        int64_t start;
        step_of(steps, k, &start, &c.bs, &c.norm);
        c.idx = idx + start;
        c.step = *step + 1;
        run_on(pool, nth, compute_worker, &c);
        if (atomic_load(&c.bad_index)) {
            s = NR_ERR_INDEX;
            break;
        }
        if (p->reduce_hook) {
            run_on(pool, nth, reduce_worker, &c);
            if ((s = call_hook(&c, nth, p->reduce_hook, p->reduce_ctx)) != NR_OK)
                break;
            run_on(pool, nth, apply_worker, &c);
        } else {
            run_on(pool, nth, update_worker, &c);
        }
        *step += 1; /* applied: counted even if the apply hook fails */
        if (p->reduce_hook && p->apply_hook &&
            (s = call_hook(&c, nth, p->apply_hook, p->apply_ctx)) != NR_OK)
            break;
    }
    free(owner);
    return s;
}

/* Every weight idx selects is finite and >= 0 (NaN fails both comparisons). */
static int weights_ok(const float *w, const int64_t *idx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = w[idx ? idx[i] : i];
        if (!(v >= 0.0f && v <= FLT_MAX))
            return 0;
    }
    return 1;
}

enum nr_status nr_plan_fit(struct nr_plan *p, struct nr_pool *pool, const struct nr_array *inputs,
                           const struct nr_array *y, const int64_t *idx, int64_t n,
                           int64_t batch_size, int64_t *step, uint64_t seed,
                           struct nr_fit_stats *stats, const volatile int *abort)
{
    return nr_plan_fit_weighted(p, pool, inputs, y, NULL, idx, n, batch_size, step, seed, stats,
                                abort);
}

/* Train steps on as many threads as their largest, most rows, is worth; stats
 * gets every thread's sums. */
static enum nr_status run_steps(struct nr_plan *p, struct nr_pool *pool,
                                const struct nr_array *inputs, const struct nr_array *y,
                                const float *w, const int64_t *idx, const struct steps *steps,
                                int64_t most, int64_t *step, uint64_t seed,
                                struct nr_fit_stats *stats, const volatile int *abort)
{
    const int nth = clamp_threads(p, pool, most);
    enum nr_status s = nr_plan_reserve(p, most);
    if (s != NR_OK || (s = ensure_threads(p, nth, most)) != NR_OK)
        return s;
    memset(p->tstats, 0, sizeof *p->tstats * (size_t)nth);
    s = fit_batches(p, pool, inputs, y, w, idx, steps, step, seed, nth, abort);
    for (int t = 0; t < nth; t++)
        nr_fit_stats_add(stats, &p->tstats[t]);
    return s;
}

/* Bounds run from 0 to n without going back, and each step's divisor covers it. */
static int steps_ok(const int64_t *bounds, const int64_t *norms, int64_t count, int64_t n)
{
    if (count < 0 || bounds[0] != 0 || bounds[count] != n)
        return 0;
    for (int64_t s = 0; s < count; s++)
        if (bounds[s + 1] < bounds[s] || norms[s] < 1 || norms[s] < bounds[s + 1] - bounds[s])
            return 0;
    return 1;
}

enum nr_status nr_plan_fit_steps(struct nr_plan *p, struct nr_pool *pool,
                                 const struct nr_array *inputs, const struct nr_array *y,
                                 const float *w, const int64_t *idx, const int64_t *bounds,
                                 const int64_t *norms, int64_t n_steps, int64_t *step,
                                 uint64_t seed, struct nr_fit_stats *stats,
                                 const volatile int *abort)
{
    if (!idx || !bounds || !norms || n_steps < 0 || (p->d.hogwild && p->d.sparse))
        return NR_ERR_VALUE;
    const int64_t n = bounds[n_steps > 0 ? n_steps : 0];
    if (!steps_ok(bounds, norms, n_steps, n) || (w && !weights_ok(w, idx, n)))
        return NR_ERR_VALUE;
    if (*step < 0 || *step > INT64_MAX - (n_steps + 1))
        return NR_ERR_VALUE;
    if (check_input_widths(p, inputs) != NR_OK)
        return NR_ERR_SHAPE;
    int64_t most = 1;
    for (int64_t s = 0; s < n_steps; s++)
        most = bounds[s + 1] - bounds[s] > most ? bounds[s + 1] - bounds[s] : most;
    return run_steps(p, pool, inputs, y, w, idx,
                     &(struct steps){.n = n, .count = n_steps, .bounds = bounds, .norms = norms},
                     most, step, seed, stats, abort);
}

enum nr_status nr_plan_fit_weighted(struct nr_plan *p, struct nr_pool *pool,
                                    const struct nr_array *inputs, const struct nr_array *y,
                                    const float *w, const int64_t *idx, int64_t n,
                                    int64_t batch_size, int64_t *step, uint64_t seed,
                                    struct nr_fit_stats *stats, const volatile int *abort)
{
    if (batch_size < 1 || n < 0 || (w && !weights_ok(w, idx, n)))
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
    /* batch-level Hogwild hands off once per call, so any batch is worth a thread */
    if (!(p->d.hogwild && p->d.sparse && pool_threads(pool) > 1 && n > batch_size))
        return run_steps(p, pool, inputs, y, w, idx,
                         &(struct steps){.n = n,
                                         .batch_size = batch_size,
                                         .count = (n + batch_size - 1) / batch_size},
                         batch_size, step, seed, stats, abort);
    const int nth = pool_threads(pool);
    int64_t hog_rows = 0;
    if (!size_mul(batch_size, nth, 1, &hog_rows))
        return NR_ERR_NOMEM;
    enum nr_status s = nr_plan_reserve(p, hog_rows); /* one batch of scratch rows a thread */
    if (s != NR_OK || (s = ensure_threads(p, nth, batch_size)) != NR_OK)
        return s;
    memset(p->tstats, 0, sizeof *p->tstats * (size_t)nth);
    s = fit_hogwild(p, pool, inputs, y, w, idx, n, batch_size, step, seed, nth, abort);
    for (int t = 0; t < nth; t++)
        nr_fit_stats_add(stats, &p->tstats[t]);
    return s;
}

static void predict_worker(void *vctx, int ith, int nth)
{
    struct run_ctx *c = vctx;
    struct nr_plan *p = c->p;
    int64_t b0, b1;
    block_of(c->bs, ith, nth, &b0, &b1);
    if (b1 <= b0)
        return;
    nr_plan_forward(c, b0, b1);
    int64_t P = p->value_size[p->d.output];
    memcpy(c->out + b0 * P, act_of(p, p->d.output) + b0 * P,
           (size_t)((b1 - b0) * P) * sizeof(float));
}

enum nr_status nr_plan_predict(struct nr_plan *p, struct nr_pool *pool,
                               const struct nr_array *inputs, int64_t start, int64_t n, float *out)
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
        run_on(pool, clamp_threads(p, pool, c.bs), predict_worker, &c);
        if (atomic_load(&c.bad_index))
            return NR_ERR_INDEX;
    }
    return NR_OK;
}
