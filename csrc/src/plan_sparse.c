/* The embedding tables' gradients: per thread and table, the distinct rows a
 * batch touched and their summed gradients (sparse updates), or every row's
 * sum (dense updates). */
#include "plan_impl.h"

#include "neurec/nr_kernels.h"

#include <stdlib.h>
#include <string.h>

/* The rows thread ith owns for table t, merged over all threads. */
static struct table_grad *merged_tg(const struct nr_plan *p, int ith, int t)
{
    return &p->ttg[((int64_t)p->ttg_threads + ith) * p->n_tables + t];
}

/* The smallest power of two >= x, for 0 < x <= 2^62 (callers check). */
static int64_t next_pow2(int64_t x)
{
    int64_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

void nr_plan_free_table_grads(struct nr_plan *p)
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
    free(p->parts);
    p->ttg = NULL;
    p->parts = NULL;
    p->ttg_threads = 0;
    p->ttg_cap = 0;
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
void nr_table_grad_reset(struct table_grad *tg)
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

/* Run the statement that follows the arguments for each id (int64_t ID) that samples
 * [B0, B1) of the batch read through an embedding op of table t whose gradient is
 * needed, with G (const float *) the id's gradient row of D floats: ops in plan order,
 * then samples, then the op's ids. A macro, so the inner loop stays a plain loop. */
#define FOR_EACH_TABLE_GRAD(C, T, B0, B1, D, ID, G, ...)                                \
    for (int oi_ = 0; oi_ < (C)->p->d.n_ops; oi_++) {                                   \
        const struct nr_op *op_ = &(C)->p->ops[oi_];                                    \
        if (op_->kind != NR_OP_EMBEDDING || op_->param[0] != (C)->p->tables[T].param || \
            !(C)->p->needs_grad[op_->out])                                              \
            continue;                                                                   \
        const struct nr_array *a_ = &(C)->inputs[op_->in[0]];                           \
        const int64_t m_ = op_->dim[0];                                                 \
        const float *g_ = grad_of((C)->p, op_->out);                                    \
        for (int64_t b_ = (B0); b_ < (B1); b_++) {                                      \
            const int64_t s_ = sample_of((C), b_);                                      \
            for (int64_t j_ = 0; j_ < m_; j_++) {                                       \
                const int64_t ID = read_id(a_, s_ * m_ + j_);                           \
                const float *G = g_ + (b_ * m_ + j_) * (D);                             \
                __VA_ARGS__                                                             \
            }                                                                           \
        }                                                                               \
    }

/* Sum the gradients of table t over samples [s0, s1) of the batch into tg (reset
 * before), in sample order. */
void nr_table_grad_gather(struct run_ctx *c, int t, struct table_grad *tg, int64_t s0, int64_t s1)
{
    const struct nr_table *tab = &c->p->tables[t].tab;
    const int64_t d = tab->cols;
    FOR_EACH_TABLE_GRAD(c, t, s0, s1, d, id, g, {
        if (id >= 0 && id < tab->rows)
            tg_add(tg, id, g, d);
    })
}

/* The rows of table t that thread ith updates, with their gradients: a row in
 * its own sums only goes as it is; a row that several threads saw is updated by
 * the first of them, with the partial sums added in thread order (so results
 * are deterministic for a thread count). Only shared rows read other threads'
 * buffers: with large tables almost every row stays on the core that gathered it. */
struct table_grad *nr_table_grad_merge(struct nr_plan *p, int t, int ith, int nth)
{
    struct table_grad *mine = local_tg(p, ith, t);
    if (nth == 1)
        return mine;
    struct table_grad *mg = merged_tg(p, ith, t);
    int64_t d = p->tables[t].tab.cols;
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

/* Per-thread table-gradient buffers for batches of up to rows samples (sized
 * by the training batch, not by the scratch capacity that predict may raise). */
enum nr_status nr_plan_reserve_table_grads(struct nr_plan *p, int nth, int64_t rows)
{
    if (p->ttg && p->ttg_threads >= nth && p->ttg_cap >= rows)
        return NR_OK;
    nr_plan_free_table_grads(p);
    if (p->n_tables == 0)
        return NR_OK;
    int64_t bytes = 0;
    for (int t = 0; t < p->n_tables; t++) {
        int64_t m;
        /* a hash of up to 4 m slots (8 + 4 bytes each), m row ids, m gradient rows */
        if (!size_mul(rows, p->ids_per_sample[p->tables[t].param], 1, &m) ||
            !size_mul(m, 4 * 12 + 8, 1, &bytes) ||
            !size_mul(m, p->tables[t].tab.cols, sizeof(float), &bytes))
            return NR_ERR_NOMEM;
    }
    p->ttg = calloc(2 * (size_t)nth * (size_t)p->n_tables, sizeof *p->ttg);
    p->parts = calloc((size_t)nth * (size_t)p->n_tables, sizeof *p->parts);
    if (!p->ttg || !p->parts) {
        nr_plan_free_table_grads(p);
        return NR_ERR_NOMEM;
    }
    p->ttg_threads = nth;
    p->ttg_cap = rows;
    for (int64_t k = 0; k < 2 * (int64_t)nth * p->n_tables; k++) {
        struct table_grad *tg = &p->ttg[k];
        const struct plan_table *pt = &p->tables[k % p->n_tables];
        int64_t m = rows * p->ids_per_sample[pt->param];
        m = m > 0 ? m : 1;
        tg->hcap = next_pow2(2 * m);
        tg->hkeys = malloc((size_t)tg->hcap * sizeof *tg->hkeys);
        tg->hslot = malloc((size_t)tg->hcap * sizeof *tg->hslot);
        tg->rows = malloc((size_t)m * sizeof *tg->rows);
        tg->grad = malloc((size_t)m * (size_t)pt->tab.cols * sizeof(float));
        if (!tg->hkeys || !tg->hslot || !tg->rows || !tg->grad) {
            nr_plan_free_table_grads(p);
            return NR_ERR_NOMEM;
        }
        for (int64_t h = 0; h < tg->hcap; h++)
            tg->hkeys[h] = -1;
    }
    return NR_OK;
}

void nr_table_grad_dense(struct run_ctx *c, int t, int64_t r0, int64_t r1)
{
    float *dense = c->p->tables[t].dense;
    const int64_t d = c->p->tables[t].tab.cols;
    memset(dense + r0 * d, 0, (size_t)((r1 - r0) * d) * sizeof(float));
    FOR_EACH_TABLE_GRAD(c, t, 0, c->bs, d, id, g, {
        if (id >= r0 && id < r1)
            nr_axpy(dense + id * d, g, 1.0f, d);
    })
}
