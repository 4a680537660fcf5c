/*
 * _plan.c: the type neurec._core.Plan, a compiled model (nr_plan.h).
 *
 * The plan is described by lists of positional tuples (neurec/models/_plan.py).
 */
#include "module.h"
#include "pools.h"

#include <stdlib.h>
#include <string.h>

#include "neurec/nr_names.h"
#include "neurec/nr_plan.h"

typedef struct {
    PyObject_HEAD
    struct nr_plan *plan;
    struct nr_param *params;
    int32_t n_inputs;
    int64_t out_size;
    PyObject *keep; /* list of the arrays the params borrow */
    nr_mutex_t lock; /* one fit/predict of this plan at a time (its scratch) */
    long lock_generation; /* nr_py_fork_generation() when lock was initialised */
} PlanObject;

/* The plan's lock, re-created first if it was made before a fork (a parent
 * thread that does not exist here may hold it). Called with the GIL, so no
 * other thread is between the check and the re-creation. */
static nr_mutex_t *plan_lock(PlanObject *self)
{
    if (self->lock_generation != nr_py_fork_generation()) {
        nr_mutex_init(&self->lock);
        self->lock_generation = nr_py_fork_generation();
    }
    return &self->lock;
}

/* RUN_PLAN_ON_POOL(self, status, call): RUN_ON_POOL holding the plan's lock. */
#define RUN_PLAN_ON_POOL(SELF, STATUS, CALL) RUN_ON_POOL_LOCKED(plan_lock(SELF), STATUS, CALL)

static void Plan_dealloc(PlanObject *self)
{
    nr_plan_free(self->plan);
    nr_mutex_destroy(&self->lock);
    free(self->params);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ------------------------------------------------------------------------ */
/* descriptors                                                               */

/* (kind, lr, beta1, beta2, eps, momentum, rho, nesterov, centered, amsgrad, catch_up) */
static int read_optim(PyObject *t, struct nr_optim *o)
{
    int kind, nesterov, centered, amsgrad, catch_up;
    float lr, b1, b2, eps, mom, rho;
    if (!PyArg_ParseTuple(t, "iffffffpppp", &kind, &lr, &b1, &b2, &eps, &mom, &rho, &nesterov,
                          &centered, &amsgrad, &catch_up))
        return -1;
    memset(o, 0, sizeof *o);
    if (kind < 0 || kind >= NR_OPTIM_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown optimizer kind %d", kind);
        return -1;
    }
    o->kind = (enum nr_optim_kind)kind;
    o->lr = lr;
    o->beta1 = b1;
    o->beta2 = b2;
    o->epsilon = eps;
    o->momentum = mom;
    o->rho = rho;
    o->nesterov = nesterov;
    o->centered = centered;
    o->amsgrad = amsgrad;
    o->catch_up = catch_up;
    return 0;
}

/* (kind, out, (in...), (p0, p1), act, flag, (d0..d5), rate) into *op. */
static int read_op(PyObject *o, Py_ssize_t i, struct nr_op *op)
{
    PyObject *ins, *prm, *dims;
    int kind, outv, act, flag;
    float rate;
    if (!PyArg_ParseTuple(o, "iiO!O!iiO!f", &kind, &outv, &PyTuple_Type, &ins, &PyTuple_Type,
                          &prm, &act, &flag, &PyTuple_Type, &dims, &rate))
        return -1;
    if (PyTuple_GET_SIZE(ins) > NR_OP_MAX_IN || PyTuple_GET_SIZE(prm) != 2 ||
        PyTuple_GET_SIZE(dims) != 6) {
        PyErr_Format(PyExc_ValueError, "op %zd: at most %d inputs, 2 params and 6 dims", i,
                     NR_OP_MAX_IN);
        return -1;
    }
    op->kind = (enum nr_op_kind)kind;
    op->out = outv;
    op->n_in = (int32_t)PyTuple_GET_SIZE(ins);
    for (int j = 0; j < op->n_in; j++)
        op->in[j] = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(ins, j));
    for (int j = 0; j < 2; j++)
        op->param[j] = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(prm, j));
    for (int j = 0; j < 6; j++)
        op->dim[j] = PyLong_AsLongLong(PyTuple_GET_ITEM(dims, j));
    if (PyErr_Occurred())
        return -1;
    op->act = act;
    op->flag = flag;
    op->rate = rate;
    return 0;
}

/* Keep a converted array alive with the plan (the param borrows its data). */
static int keep_array(PlanObject *self, struct nr_arg *a)
{
    int r = PyList_Append(self->keep, (PyObject *)a->array);
    Py_CLEAR(a->array);
    return r;
}

/* (w float32 2-D, (slot0, slot1, slot2) float32|None, row_steps int64|None, l2, is_table,
 *  frozen) into *p. */
static int read_param(PlanObject *self, PyObject *o, Py_ssize_t i, struct nr_param *p)
{
    PyObject *w_o, *slots, *steps_o;
    float l2;
    int is_table, frozen;
    if (!PyArg_ParseTuple(o, "OO!Ofpp", &w_o, &PyTuple_Type, &slots, &steps_o, &l2, &is_table,
                          &frozen))
        return -1;
    char what[32], name[64];
    snprintf(what, sizeof what, "parameter %zd", i);
    struct nr_arg w = {.name = what};
    if (!nr_conv_f32_out(w_o, &w))
        return -1;
    int64_t size = nr_arg_size(&w);
    p->w = nr_arg_data(&w);
    p->rows = PyArray_NDIM(w.array) >= 1 ? PyArray_DIM(w.array, 0) : 1;
    p->cols = p->rows ? size / p->rows : 0;
    if (keep_array(self, &w) < 0)
        return -1;
    if (PyTuple_GET_SIZE(slots) != 3) {
        PyErr_SetString(PyExc_ValueError, "three optimizer slots expected");
        return -1;
    }
    for (int j = 0; j < 3; j++) {
        snprintf(name, sizeof name, "optimizer slot %d of parameter %zd", j, i);
        struct nr_arg s = {.name = name, .optional = 1};
        if (!nr_conv_f32_out(PyTuple_GET_ITEM(slots, j), &s))
            return -1;
        if (!s.array)
            continue;
        if (nr_arg_size(&s) != size) {
            PyErr_Format(PyExc_ValueError, "%s has %lld values, expected %lld", name,
                         (long long)nr_arg_size(&s), (long long)size);
            Py_DECREF(s.array);
            return -1;
        }
        p->slot[j] = nr_arg_data(&s);
        if (keep_array(self, &s) < 0)
            return -1;
    }
    struct nr_arg steps = {.name = "row_steps", .optional = 1};
    if (!nr_conv_i64_out(steps_o, &steps))
        return -1;
    if (steps.array) {
        if (nr_arg_size(&steps) != p->rows) {
            PyErr_SetString(PyExc_ValueError, "row_steps must have one entry per table row");
            Py_DECREF(steps.array);
            return -1;
        }
        p->row_steps = nr_arg_data(&steps);
        if (keep_array(self, &steps) < 0)
            return -1;
    }
    p->l2 = l2;
    p->is_table = is_table;
    p->frozen = frozen;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Plan(ops, value_sizes, params, n_inputs, output, logits, loss, optim, sparse, hogwild=False)
 *   ops: list of (kind, out, (in...), (p0, p1), act, flag, (d0..d5), rate)
 *   params: list of (w, (slot0, slot1, slot2), row_steps, l2, is_table, frozen) */

static PyObject *Plan_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ops", "value_sizes", "params", "n_inputs", "output", "logits",
                             "loss", "optim", "sparse", "hogwild", NULL};
    PyObject *ops_o, *vs_o, *params_o, *optim_o;
    int n_inputs, output, logits, loss, sparse, hogwild = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O!iiiiOp|p:Plan", kwlist, &PyList_Type,
                                     &ops_o, &PyList_Type, &vs_o, &PyList_Type, &params_o,
                                     &n_inputs, &output, &logits, &loss, &optim_o, &sparse,
                                     &hogwild))
        return NULL;
    PlanObject *self = (PlanObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    nr_mutex_init(&self->lock);
    self->lock_generation = nr_py_fork_generation();
    struct nr_op *ops = NULL;
    int64_t *vs = NULL;
    Py_ssize_t n_ops = PyList_GET_SIZE(ops_o), n_vals = PyList_GET_SIZE(vs_o);
    Py_ssize_t n_params = PyList_GET_SIZE(params_o);
    self->keep = PyList_New(0);
    ops = calloc((size_t)(n_ops ? n_ops : 1), sizeof *ops);
    vs = calloc((size_t)(n_vals ? n_vals : 1), sizeof *vs);
    self->params = calloc((size_t)(n_params ? n_params : 1), sizeof *self->params);
    if (!self->keep || !ops || !vs || !self->params) {
        PyErr_NoMemory();
        goto error;
    }
    if (loss < 0 || loss >= NR_LOSS_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown loss kind %d", loss);
        goto error;
    }
    for (Py_ssize_t i = 0; i < n_vals; i++) {
        vs[i] = PyLong_AsLongLong(PyList_GET_ITEM(vs_o, i));
        if (vs[i] == -1 && PyErr_Occurred())
            goto error;
    }
    for (Py_ssize_t i = 0; i < n_ops; i++)
        if (read_op(PyList_GET_ITEM(ops_o, i), i, &ops[i]) < 0)
            goto error;
    for (Py_ssize_t i = 0; i < n_params; i++)
        if (read_param(self, PyList_GET_ITEM(params_o, i), i, &self->params[i]) < 0)
            goto error;
    struct nr_plan_desc desc, *d = &desc;
    memset(d, 0, sizeof *d);
    d->n_ops = (int32_t)n_ops;
    d->ops = ops;
    d->n_values = (int32_t)n_vals;
    d->value_size = vs;
    d->n_params = (int32_t)n_params;
    d->params = self->params;
    d->n_inputs = n_inputs;
    d->output = output;
    d->logits = logits;
    d->loss = (enum nr_loss)loss;
    d->sparse = sparse;
    d->hogwild = hogwild;
    if (read_optim(optim_o, &d->optim) < 0)
        goto error;
    if (output < 0 || output >= n_vals) {
        PyErr_SetString(PyExc_ValueError, "output value out of range");
        goto error;
    }
    self->n_inputs = n_inputs;
    self->out_size = vs[output];
    enum nr_status s = nr_plan_init(&self->plan, d);
    if (nr_py_raise(s, "plan") < 0)
        goto error;
    free(ops); /* nr_plan_init copied them */
    free(vs);
    return (PyObject *)self;
error:
    free(ops);
    free(vs);
    Py_DECREF(self);
    return NULL;
}

static PyObject *Plan_set_optimizer(PlanObject *self, PyObject *spec)
{
    struct nr_optim o;
    if (read_optim(spec, &o) < 0)
        return NULL;
    nr_plan_set_optim(self->plan, &o);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* fit and predict                                                           */

/* A converted argument as the plan's nr_array (n rows of width values). */
static void as_nr_array(const struct nr_arg *a, struct nr_array *out)
{
    PyArrayObject *arr = a->array;
    switch (PyArray_TYPE(arr)) {
    case NPY_FLOAT64: out->dtype = NR_DTYPE_F64; break;
    case NPY_INT32: out->dtype = NR_DTYPE_I32; break;
    case NPY_INT64: out->dtype = NR_DTYPE_I64; break;
    default: out->dtype = NR_DTYPE_F32; break;
    }
    out->data = PyArray_DATA(arr);
    out->n = PyArray_DIM(arr, 0);
    out->width = out->n ? (int64_t)(PyArray_SIZE(arr) / out->n) : 1;
    if (out->n == 0) {
        out->width = 1;
        for (int i = 1; i < PyArray_NDIM(arr); i++)
            out->width *= PyArray_DIM(arr, i);
    }
}

/* The model's input arrays: a list of n_inputs arrays with as many rows each.
 * conv[] (n_inputs entries, zeroed) receives the references the caller releases. */
static int read_inputs(PlanObject *self, PyObject *list, struct nr_arg *conv,
                       struct nr_array *arr, int64_t *n_rows)
{
    if (!PyList_Check(list) || PyList_GET_SIZE(list) != self->n_inputs) {
        PyErr_Format(PyExc_ValueError, "expected a list of %d input arrays", self->n_inputs);
        return -1;
    }
    char name[32];
    for (int i = 0; i < self->n_inputs; i++) {
        snprintf(name, sizeof name, "input %d", i);
        conv[i].name = name; /* read only while converting */
        conv[i].min_nd = 1;
        if (!nr_conv_num_in(PyList_GET_ITEM(list, i), &conv[i]))
            return -1;
        conv[i].name = NULL;
        as_nr_array(&conv[i], &arr[i]);
        if (i > 0 && arr[i].n != arr[0].n) {
            PyErr_Format(PyExc_ValueError, "input %d has %lld rows, input 0 has %lld", i,
                         (long long)arr[i].n, (long long)arr[0].n);
            return -1;
        }
    }
    *n_rows = self->n_inputs ? arr[0].n : 0;
    return 0;
}

/* Release the n input references of read_inputs and free both arrays. */
static void free_inputs(struct nr_arg *conv, struct nr_array *arr, int n)
{
    for (int i = 0; conv && i < n; i++)
        Py_CLEAR(conv[i].array);
    free(conv);
    free(arr);
}

static PyObject *stats_dict(const struct nr_fit_stats *st)
{
    npy_intp dims[1] = {NR_AUC_BINS};
    PyObject *pos = PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    PyObject *neg = PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    if (!pos || !neg) {
        Py_XDECREF(pos);
        Py_XDECREF(neg);
        return NULL;
    }
    memcpy(PyArray_DATA((PyArrayObject *)pos), st->auc_pos, sizeof st->auc_pos);
    memcpy(PyArray_DATA((PyArrayObject *)neg), st->auc_neg, sizeof st->auc_neg);
    return Py_BuildValue("{s:d,s:d,s:d,s:d,s:d,s:d,s:N,s:N}", "loss_sum", st->loss_sum, "samples",
                         st->samples, "elements", st->elements, "correct", st->correct, "sq_err",
                         st->sq_err, "abs_err", st->abs_err, "auc_pos", pos, "auc_neg", neg);
}

/* fit(inputs, y, idx, batch_size, step, seed) -> stats
 * step is a 1-element int64 array, advanced in place batch by batch, so the count
 * is right even when a KeyboardInterrupt is raised as this call returns. */
static PyObject *Plan_fit(PlanObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"inputs", "y", "idx", "batch_size", "step", "seed", NULL};
    PyObject *inputs_o;
    struct nr_arg y_a = {.name = "y", .min_nd = 1}, idx_a = {.name = "idx"};
    struct nr_arg step_a = {.name = "step"};
    long long batch_size;
    unsigned long long seed;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&O&LO&K:fit", kwlist, &inputs_o,
                                     nr_conv_num_in, &y_a, nr_conv_i64_in, &idx_a, &batch_size,
                                     nr_conv_i64_out, &step_a, &seed))
        return NULL;
    PyObject *result = NULL;
    struct nr_arg *conv = calloc((size_t)(self->n_inputs ? self->n_inputs : 1), sizeof *conv);
    struct nr_array *inputs = calloc((size_t)(self->n_inputs ? self->n_inputs : 1), sizeof *inputs);
    struct nr_fit_stats *st = calloc(1, sizeof *st);
    if (!conv || !inputs || !st) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *step_p = nr_arg_data(&step_a);
    if (nr_arg_size(&step_a) != 1) {
        PyErr_SetString(PyExc_ValueError, "step must be a 1-element int64 array");
        goto done;
    }
    int64_t n_rows;
    if (read_inputs(self, inputs_o, conv, inputs, &n_rows) < 0)
        goto done;
    struct nr_array y;
    as_nr_array(&y_a, &y);
    if (y.dtype != NR_DTYPE_F32 && y.dtype != NR_DTYPE_F64) {
        PyErr_SetString(PyExc_TypeError, "y must be float32 or float64");
        goto done;
    }
    if (y.n != n_rows || (y.width != 1 && y.width != self->out_size)) {
        PyErr_Format(PyExc_ValueError, "y has shape (%lld, %lld); expected (%lld, 1) or (%lld, %lld)",
                     (long long)y.n, (long long)y.width, (long long)n_rows, (long long)n_rows,
                     (long long)self->out_size);
        goto done;
    }
    const int64_t *idx = nr_arg_data(&idx_a), n_idx = nr_arg_size(&idx_a);
    for (int64_t i = 0; i < n_idx; i++)
        if (idx[i] < 0 || idx[i] >= n_rows) {
            PyErr_Format(PyExc_IndexError, "idx[%lld] = %lld is outside [0, %lld)", (long long)i,
                         (long long)idx[i], (long long)n_rows);
            goto done;
        }
    if (batch_size < 1) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be >= 1");
        goto done;
    }
    /* the step count drives Adam's bias correction: it must leave room for every batch */
    if (*step_p < 0 || *step_p > INT64_MAX - (n_idx / batch_size + 1)) {
        PyErr_Format(PyExc_ValueError, "step = %lld is outside [0, 2**63 - batches): the optimizer's "
                     "step count (optimizer.iterations) is corrupted; reset it to 0 or reload the "
                     "model", (long long)*step_p);
        goto done;
    }
    enum nr_status s = NR_OK;
    RUN_PLAN_ON_POOL(self, s, nr_plan_fit(self->plan, pool, inputs, &y, idx, n_idx, batch_size, step_p,
                                          seed, st, NULL));
    if (nr_py_raise(s, "fit") < 0)
        goto done;
    result = stats_dict(st);
done:
    free_inputs(conv, inputs, self->n_inputs);
    free(st);
    NR_ARGS_RELEASE(&y_a, &idx_a, &step_a);
    return result;
}

/* predict(inputs, out): out is a float32 (n, out_size) array */
static PyObject *Plan_predict(PlanObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"inputs", "out", NULL};
    PyObject *inputs_o;
    struct nr_arg out_a = {.name = "out"};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&:predict", kwlist, &inputs_o,
                                     nr_conv_f32_out, &out_a))
        return NULL;
    PyObject *result = NULL;
    struct nr_arg *conv = calloc((size_t)(self->n_inputs ? self->n_inputs : 1), sizeof *conv);
    struct nr_array *inputs = calloc((size_t)(self->n_inputs ? self->n_inputs : 1), sizeof *inputs);
    if (!conv || !inputs) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t n_rows;
    if (read_inputs(self, inputs_o, conv, inputs, &n_rows) < 0)
        goto done;
    if (nr_arg_size(&out_a) != n_rows * self->out_size) {
        PyErr_SetString(PyExc_ValueError, "out has the wrong size");
        goto done;
    }
    enum nr_status s = NR_OK;
    RUN_PLAN_ON_POOL(self, s, nr_plan_predict(self->plan, pool, inputs, 0, n_rows,
                                              nr_arg_data(&out_a)));
    if (nr_py_raise(s, "predict") < 0)
        goto done;
    Py_INCREF(Py_None);
    result = Py_None;
done:
    free_inputs(conv, inputs, self->n_inputs);
    NR_ARGS_RELEASE(&out_a);
    return result;
}

static PyMethodDef Plan_methods[] = {
    {"fit", NR_PY_KW(Plan_fit), METH_VARARGS | METH_KEYWORDS,
     "fit(inputs, y, idx, batch_size, step, seed) -> stats: train on rows idx in batches; step "
     "is a 1-element int64 array advanced in place."},
    {"predict", NR_PY_KW(Plan_predict), METH_VARARGS | METH_KEYWORDS,
     "predict(inputs, out): forward pass over all rows into the float32 array out."},
    {"set_optimizer", (PyCFunction)Plan_set_optimizer, METH_O,
     "set_optimizer((kind, lr, beta1, beta2, eps, momentum, rho, nesterov, centered, amsgrad, "
     "catch_up))."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neurec._core.Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled model: ops, values and borrowed parameter arrays (internal).",
    .tp_methods = Plan_methods,
    .tp_new = Plan_new,
};

int nr_py_plan_add_type(PyObject *m)
{
    if (PyType_Ready(&PlanType) < 0)
        return -1;
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        return -1;
    }
    return 0;
}
