/* Building a plan: validation of the description, init/free, scratch. */
#include "plan_impl.h"

#include "neurec/nr_kernels.h"

#include <stdlib.h>
#include <string.h>

/* Entries of the optimizer's power tables (nr_optim_tables). */
#define NR_OPTIM_TABLE 65536

static void attach_optim_tables(struct nr_plan *p);

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
    for (int t = 0; p->tables && t < p->n_tables; t++) /* NULL: init ran out of memory */
        free(p->tables[t].dense);
    free(p->tables);
    free(p->table_of);
    nr_plan_free_table_grads(p);
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
    case NR_OP_INPUT: return op->n_in == 1 && out == op->dim[0] ? NR_OK : NR_ERR_SHAPE;
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
        if (op->param[1] >= 0 &&
            d->params[op->param[1]].rows * d->params[op->param[1]].cols != op->dim[2])
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
        if (op->n_in != 2 || (op->dim[4] != 0 && op->dim[4] != 1) ||
            (op->dim[5] != 0 && op->dim[5] != 1))
            return NR_ERR_VALUE;
        if (vs[op->in[0]] != op->dim[0] * op->dim[1] || vs[op->in[1]] != op->dim[2] * op->dim[3])
            return NR_ERR_SHAPE;
        if (dot_contract(op->dim[0], op->dim[1], op->dim[4]) !=
            dot_contract(op->dim[2], op->dim[3], op->dim[5]))
            return NR_ERR_SHAPE;
        int64_t f = dot_free(op->dim[0], op->dim[1], op->dim[4]) *
                    dot_free(op->dim[2], op->dim[3], op->dim[5]);
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
    case NR_OP_ALIAS: return op->n_in == 1 && vs[op->in[0]] == out ? NR_OK : NR_ERR_SHAPE;
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

/* Whether parameter i exists and is updated by fit. */
static int trainable(const struct nr_plan_desc *d, int i) { return i >= 0 && !d->params[i].frozen; }

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
    p->table_of = malloc(sizeof *p->table_of * (size_t)(np ? np : 1));
    if (!p->ops || !p->value_size || !p->base || !p->needs_grad || !p->skip_backward || !p->act ||
        !p->grad || !p->op_scratch || !p->op_scratch_size || !p->dense_off || !p->ids_per_sample ||
        !p->table_of) {
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
        /* needs_grad: produced from a trainable parameter, directly or through another
         * value (a frozen parameter's gradient is never used, so never computed) */
        int ng = (op->kind == NR_OP_EMBEDDING || op->kind == NR_OP_DENSE) &&
                 (trainable(d, op->param[0]) || trainable(d, op->param[1]));
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
            p->table_of[i] = nt++;
        } else {
            p->dense_off[i] = off;
            p->table_of[i] = -1;
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
    for (int i = 0; i < np; i++)
        if (d->params[i].is_table) {
            struct plan_table *pt = &p->tables[p->table_of[i]];
            pt->tab = nr_table_of_param(&d->params[i]);
            pt->param = i;
            pt->l2 = d->params[i].l2;
            pt->frozen = d->params[i].frozen;
            if (!d->sparse && p->ids_per_sample[i] > 0) {
                pt->dense = calloc((size_t)(pt->tab.rows * pt->tab.cols), sizeof(float));
                if (!pt->dense) {
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
    float key[5] = {(float)o->kind, o->beta1, o->beta2, o->momentum,
                    o->rho + (o->amsgrad ? 10.0f : 0.0f)};
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
