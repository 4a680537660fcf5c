/*
 * _plan.c: the type neurec._core.Plan, a compiled model (nr_plan.h).
 *
 * The plan is described by keyword arguments and small descriptors read by
 * field name (neurec/models/_plan.py defines them): each op an Op, each
 * parameter a Param, the optimizer an OptimizerSpec (neurec/optimizers.py).
 */
#include "module.h"
#include "plan_obj.h"
#include "pools.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "neurec/nr_names.h"
#include "neurec/nr_plan.h"

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
    nr_rowsum_ws_free(&self->rowsum_ws);
    free(self->merged);
    free(self->params);
    Py_XDECREF(self->keep);
    Py_XDECREF(self->hook);
    Py_XDECREF(self->after);
    Py_XDECREF(self->hook_kept);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ------------------------------------------------------------------------ */
/* descriptors                                                               */

/* The optimizer descriptor (OptimizerSpec) into *o. */
static int read_optim(PyObject *spec, struct nr_optim *o)
{
    const char *w = "optimizer";
    int kind;
    memset(o, 0, sizeof *o);
    if (nr_field_int(spec, w, "kind", &kind) < 0 ||
        nr_field_float(spec, w, "learning_rate", &o->lr) < 0 ||
        nr_field_float(spec, w, "beta_1", &o->beta1) < 0 ||
        nr_field_float(spec, w, "beta_2", &o->beta2) < 0 ||
        nr_field_float(spec, w, "epsilon", &o->epsilon) < 0 ||
        nr_field_float(spec, w, "momentum", &o->momentum) < 0 ||
        nr_field_float(spec, w, "rho", &o->rho) < 0 ||
        nr_field_bool(spec, w, "nesterov", &o->nesterov) < 0 ||
        nr_field_bool(spec, w, "centered", &o->centered) < 0 ||
        nr_field_bool(spec, w, "amsgrad", &o->amsgrad) < 0 ||
        nr_field_bool(spec, w, "catch_up", &o->catch_up) < 0)
        return -1;
    if (kind < 0 || kind >= NR_OPTIM_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown optimizer kind %d", kind);
        return -1;
    }
    o->kind = (enum nr_optim_kind)kind;
    return 0;
}

/* obj.<field>, a sequence of at most max_n ints, into out[]; *n gets its length. */
static int read_ints(PyObject *obj, const char *what, const char *field, int64_t *out,
                     Py_ssize_t max_n, Py_ssize_t *n)
{
    PyObject *v = nr_field_get(obj, what, field);
    if (!v)
        return -1;
    PyObject *seq = PySequence_Fast(v, "");
    Py_DECREF(v);
    if (!seq) {
        PyErr_Format(PyExc_TypeError, "%s: field '%s' must be a sequence of ints", what, field);
        return -1;
    }
    *n = PySequence_Fast_GET_SIZE(seq);
    if (*n > max_n) {
        PyErr_Format(PyExc_ValueError, "%s: field '%s' has %zd entries, at most %zd allowed", what,
                     field, *n, max_n);
        Py_DECREF(seq);
        return -1;
    }
    for (Py_ssize_t j = 0; j < *n; j++) {
        out[j] = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, j));
        if (out[j] == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            if (PyErr_ExceptionMatches(PyExc_TypeError))
                PyErr_Format(PyExc_TypeError, "%s: field '%s' must be a sequence of ints", what,
                             field);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

static int fits_i32(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* An Op(kind, out, inputs, params, act, flag, dims, rate) into *op. */
static int read_op(PyObject *o, Py_ssize_t i, struct nr_op *op)
{
    char what[32];
    snprintf(what, sizeof what, "op %zd", i);
    int kind, out, act, flag;
    int64_t ins[NR_OP_MAX_IN], prm[2], dims[6] = {0};
    Py_ssize_t n_in, n_prm, n_dims;
    if (nr_field_int(o, what, "kind", &kind) < 0 || nr_field_int(o, what, "out", &out) < 0 ||
        read_ints(o, what, "inputs", ins, NR_OP_MAX_IN, &n_in) < 0 ||
        read_ints(o, what, "params", prm, 2, &n_prm) < 0 ||
        nr_field_int(o, what, "act", &act) < 0 || nr_field_int(o, what, "flag", &flag) < 0 ||
        read_ints(o, what, "dims", dims, 6, &n_dims) < 0 ||
        nr_field_float(o, what, "rate", &op->rate) < 0)
        return -1;
    if (n_prm != 2) {
        PyErr_Format(PyExc_ValueError, "%s: field 'params' must hold 2 parameter ids (-1: none)",
                     what);
        return -1;
    }
    for (Py_ssize_t j = 0; j < n_in; j++)
        if (!fits_i32(ins[j])) {
            PyErr_Format(PyExc_OverflowError, "%s: input id %lld is out of range", what,
                         (long long)ins[j]);
            return -1;
        }
    if (!fits_i32(prm[0]) || !fits_i32(prm[1])) {
        PyErr_Format(PyExc_OverflowError, "%s: a parameter id is out of range", what);
        return -1;
    }
    op->kind = (enum nr_op_kind)kind;
    op->out = out;
    op->n_in = (int32_t)n_in;
    for (Py_ssize_t j = 0; j < n_in; j++)
        op->in[j] = (int32_t)ins[j];
    op->param[0] = (int32_t)prm[0];
    op->param[1] = (int32_t)prm[1];
    op->act = act;
    op->flag = flag;
    memcpy(op->dim, dims, sizeof op->dim);
    return 0;
}

/* Keep a converted array alive with the plan (the param borrows its data). */
static int keep_array(PlanObject *self, struct nr_arg *a)
{
    int r = PyList_Append(self->keep, (PyObject *)a->array);
    Py_CLEAR(a->array);
    return r;
}

/* A Param(weights, slots, row_steps, l2, is_table, frozen) into *p. */
static int read_param(PlanObject *self, PyObject *o, Py_ssize_t i, struct nr_param *p)
{
    char what[32], name[64];
    snprintf(what, sizeof what, "parameter %zd", i);
    struct nr_arg w = {.name = what};
    PyObject *field = nr_field_get(o, what, "weights");
    if (!field)
        return -1;
    int ok = nr_conv_f32_out(field, &w);
    Py_DECREF(field);
    if (!ok)
        return -1;
    int64_t size = nr_arg_size(&w);
    p->w = nr_arg_data(&w);
    p->rows = PyArray_NDIM(w.array) >= 1 ? PyArray_DIM(w.array, 0) : 1;
    p->cols = p->rows ? size / p->rows : 0;
    if (keep_array(self, &w) < 0)
        return -1;

    PyObject *slots = nr_field_get(o, what, "slots");
    if (!slots)
        return -1;
    PyObject *seq = PySequence_Fast(slots, "");
    Py_DECREF(slots);
    if (!seq || PySequence_Fast_GET_SIZE(seq) != 3) {
        Py_XDECREF(seq);
        PyErr_Format(PyExc_ValueError,
                     "%s: field 'slots' must hold three optimizer slots "
                     "(arrays or None)",
                     what);
        return -1;
    }
    for (int j = 0; j < 3; j++) {
        snprintf(name, sizeof name, "optimizer slot %d of parameter %zd", j, i);
        struct nr_arg s = {.name = name, .optional = 1};
        if (!nr_conv_f32_out(PySequence_Fast_GET_ITEM(seq, j), &s)) {
            Py_DECREF(seq);
            return -1;
        }
        if (!s.array)
            continue;
        if (nr_arg_size(&s) != size) {
            PyErr_Format(PyExc_ValueError, "%s has %lld values, expected %lld", name,
                         (long long)nr_arg_size(&s), (long long)size);
            Py_DECREF(s.array);
            Py_DECREF(seq);
            return -1;
        }
        p->slot[j] = nr_arg_data(&s);
        if (keep_array(self, &s) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);

    struct nr_arg steps = {.name = "row_steps", .optional = 1};
    if (!(field = nr_field_get(o, what, "row_steps")))
        return -1;
    ok = nr_conv_i64_out(field, &steps);
    Py_DECREF(field);
    if (!ok)
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
    return nr_field_float(o, what, "l2", &p->l2) < 0 ||
                   nr_field_bool(o, what, "is_table", &p->is_table) < 0 ||
                   nr_field_bool(o, what, "frozen", &p->frozen) < 0
               ? -1
               : 0;
}

/* ------------------------------------------------------------------------ */
/* Plan(*, ops, value_sizes, params, n_inputs, output, logits, loss, optimizer, sparse,
 *      hogwild=False)                                                        */

static PyObject *Plan_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ops",  "value_sizes", "params", "n_inputs", "output", "logits",
                             "loss", "optimizer",   "sparse", "hogwild",  NULL};
    PyObject *ops_o, *vs_o, *params_o, *optim_o;
    int n_inputs, output, logits, loss, sparse, hogwild = 0;
    if (PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "Plan() takes keyword arguments only");
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O!iiiiOp|p:Plan", kwlist, &PyList_Type, &ops_o,
                                     &PyList_Type, &vs_o, &PyList_Type, &params_o, &n_inputs,
                                     &output, &logits, &loss, &optim_o, &sparse, &hogwild))
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
    struct nr_plan_desc d = {.n_ops = (int32_t)n_ops,
                             .ops = ops,
                             .n_values = (int32_t)n_vals,
                             .value_size = vs,
                             .n_params = (int32_t)n_params,
                             .params = self->params,
                             .n_inputs = n_inputs,
                             .output = output,
                             .logits = logits,
                             .loss = (enum nr_loss)loss,
                             .sparse = sparse,
                             .hogwild = hogwild};
    if (read_optim(optim_o, &d.optim) < 0)
        goto error;
    if (output < 0 || output >= n_vals) {
        PyErr_SetString(PyExc_ValueError, "output value out of range");
        goto error;
    }
    self->n_inputs = n_inputs;
    self->out_size = vs[output];
    enum nr_status s = nr_plan_init(&self->plan, &d);
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
static int read_inputs(PlanObject *self, PyObject *list, struct nr_arg *conv, struct nr_array *arr,
                       int64_t *n_rows)
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

/* fit(inputs, y, idx, batch_size, step, seed, weights=None, bounds=None, norms=None)
 * step is a 1-element int64 array, advanced in place batch by batch, so the count
 * is right even when a KeyboardInterrupt is raised as this call returns. weights:
 * None or a float32 (n,) array, the loss weight of each row (indexed as y).
 * bounds, norms: int64 arrays, or None: the steps of nr_plan_fit_steps (step s
 * the rows idx[bounds[s]:bounds[s+1]], its loss over norms[s] samples). */
static PyObject *Plan_fit(PlanObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"inputs", "y",       "idx",    "batch_size", "step",
                             "seed",   "weights", "bounds", "norms",      NULL};
    PyObject *inputs_o;
    struct nr_arg y_a = {.name = "y", .min_nd = 1}, idx_a = {.name = "idx"};
    struct nr_arg step_a = {.name = "step"};
    struct nr_arg w_a = {.name = "weights", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg b_a = {.name = "bounds", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg n_a = {.name = "norms", .min_nd = 1, .max_nd = 1, .optional = 1};
    long long batch_size;
    unsigned long long seed;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&O&LO&K|O&O&O&:fit", kwlist, &inputs_o,
                                     nr_conv_num_in, &y_a, nr_conv_i64_in, &idx_a, &batch_size,
                                     nr_conv_i64_out, &step_a, &seed, nr_conv_f32_in, &w_a,
                                     nr_conv_i64_in, &b_a, nr_conv_i64_in, &n_a))
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
        PyErr_Format(PyExc_ValueError,
                     "y has shape (%lld, %lld); expected (%lld, 1) or (%lld, %lld)", (long long)y.n,
                     (long long)y.width, (long long)n_rows, (long long)n_rows,
                     (long long)self->out_size);
        goto done;
    }
    const float *w = nr_arg_data(&w_a);
    if (w && nr_arg_size(&w_a) != n_rows) {
        PyErr_Format(PyExc_ValueError,
                     "weights has %lld values; expected one per row of y (%lld): pass "
                     "sample_weight of shape (n,)",
                     (long long)nr_arg_size(&w_a), (long long)n_rows);
        goto done;
    }
    const int64_t *idx = nr_arg_data(&idx_a), n_idx = nr_arg_size(&idx_a);
    for (int64_t i = 0; i < n_idx; i++) {
        if (idx[i] < 0 || idx[i] >= n_rows) {
            PyErr_Format(PyExc_IndexError, "idx[%lld] = %lld is outside [0, %lld)", (long long)i,
                         (long long)idx[i], (long long)n_rows);
            goto done;
        }
        if (w && !(w[idx[i]] >= 0.0f && w[idx[i]] <= FLT_MAX)) {
            PyObject *v = PyFloat_FromDouble(w[idx[i]]);
            if (v) {
                PyErr_Format(PyExc_ValueError,
                             "sample_weight must be finite and >= 0, got %R at row %lld "
                             "(weights)",
                             v, (long long)idx[i]);
                Py_DECREF(v);
            }
            goto done;
        }
    }
    if (batch_size < 1) {
        PyErr_SetString(PyExc_ValueError, "batch_size must be >= 1");
        goto done;
    }
    /* the step count drives Adam's bias correction: it must leave room for every batch */
    if (*step_p < 0 || *step_p > INT64_MAX - (n_idx / batch_size + 1)) {
        PyErr_Format(PyExc_ValueError,
                     "step = %lld is outside [0, 2**63 - batches): the optimizer's "
                     "step count (optimizer.iterations) is corrupted; reset it to 0 or reload the "
                     "model",
                     (long long)*step_p);
        goto done;
    }
    const int64_t *bounds = nr_arg_data(&b_a), *norms = nr_arg_data(&n_a);
    const int64_t n_steps = bounds ? nr_arg_size(&b_a) - 1 : 0;
    if ((bounds == NULL) != (norms == NULL) ||
        (bounds && (n_steps < 0 || nr_arg_size(&n_a) != n_steps || bounds[0] != 0 ||
                    bounds[n_steps] != n_idx))) {
        PyErr_SetString(PyExc_ValueError,
                        "bounds and norms go together: bounds runs from 0 to idx.size and "
                        "norms has one entry per step (len(bounds) - 1)");
        goto done;
    }
    enum nr_status s = NR_OK;
    if (bounds)
        RUN_PLAN_ON_POOL(self, s,
                         nr_plan_fit_steps(self->plan, pool, inputs, &y, w, idx, bounds, norms,
                                           n_steps, step_p, seed, st, NULL));
    else
        RUN_PLAN_ON_POOL(self, s,
                         nr_plan_fit_weighted(self->plan, pool, inputs, &y, w, idx, n_idx,
                                              batch_size, step_p, seed, st, NULL));
    if (nr_py_raise(s, "fit") < 0)
        goto done;
    result = stats_dict(st);
done:
    free_inputs(conv, inputs, self->n_inputs);
    free(st);
    NR_ARGS_RELEASE(&y_a, &idx_a, &step_a, &w_a, &b_a, &n_a);
    return result;
}

/* predict(inputs, out): out is a float32 (n, out_size) array */
static PyObject *Plan_predict(PlanObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"inputs", "out", NULL};
    PyObject *inputs_o;
    struct nr_arg out_a = {.name = "out"};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&:predict", kwlist, &inputs_o, nr_conv_f32_out,
                                     &out_a))
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
    RUN_PLAN_ON_POOL(self, s,
                     nr_plan_predict(self->plan, pool, inputs, 0, n_rows, nr_arg_data(&out_a)));
    result = nr_py_none_or_raise(s, "predict", NULL);
done:
    free_inputs(conv, inputs, self->n_inputs);
    NR_ARGS_RELEASE(&out_a);
    return result;
}

/* ------------------------------------------------------------------------ */
/* the reduce hook in Python (nr_plan_set_reduce_hook)                       */

/* Take the GIL and call fn (the reduce or the apply hook) with a view of g. An
 * exception it raises stays set and stops the fit (nr_py_raise keeps it). */
static enum nr_status plan_call_hook(PlanObject *self, PyObject *fn, struct nr_batch_grads *g,
                                     int clear_kept)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    enum nr_status s = NR_ABORTED;
    /* before the reduce hook, the previous batch's apply phase is over: its arrays can go */
    if (clear_kept && PyList_SetSlice(self->hook_kept, 0, PY_SSIZE_T_MAX, NULL) < 0)
        goto out;
    GradsObject *view = PyObject_New(GradsObject, &GradsType);
    if (!view)
        goto out;
    view->g = g;
    view->plan = self;
    self->in_hook = 1;
    self->hook_thread = PyThread_get_thread_ident();
    PyObject *r = PyObject_CallOneArg(fn, (PyObject *)view);
    self->in_hook = 0;
    view->g = NULL;
    if (r) {
        Py_DECREF(r);
        if (Py_REFCNT(view) > 1)
            PyErr_SetString(PyExc_RuntimeError,
                            "the reduce hook kept a view of the batch's gradients past its call; "
                            "keep copies (np.array(view)) instead");
        else
            s = NR_OK;
    }
    Py_DECREF(view);
out:
    PyGILState_Release(gil);
    return s;
}

static enum nr_status plan_reduce_hook(void *ctx, struct nr_batch_grads *g)
{
    return plan_call_hook(ctx, ((PlanObject *)ctx)->hook, g, 1);
}

static enum nr_status plan_apply_hook(void *ctx, struct nr_batch_grads *g)
{
    return plan_call_hook(ctx, ((PlanObject *)ctx)->after, g, 0);
}

/* set_reduce_hook(fn, after=None): fn(grads) runs between the reduce and apply
 * phases of every batch of fit, after(grads) after its apply phase (fn None
 * removes both). Waits for a fit of this plan running on another thread to end. */
static PyObject *Plan_set_reduce_hook(PlanObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"fn", "after", NULL};
    PyObject *fn, *after = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:set_reduce_hook", kwlist, &fn, &after))
        return NULL;
    if ((fn != Py_None && !PyCallable_Check(fn)) ||
        (after != Py_None && !PyCallable_Check(after))) {
        PyObject *bad = fn != Py_None && !PyCallable_Check(fn) ? fn : after;
        PyErr_Format(PyExc_TypeError,
                     "set_reduce_hook: fn and after must be callable or None, got %.100s",
                     Py_TYPE(bad)->tp_name);
        return NULL;
    }
    if (fn == Py_None)
        after = Py_None;
    if (self->in_hook && self->hook_thread == PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "set_reduce_hook: a reduce hook cannot be changed during its call");
        return NULL;
    }
    PyObject *kept = PyList_New(0);
    if (!kept)
        return NULL;
    nr_mutex_t *lock = plan_lock(self);
    Py_BEGIN_ALLOW_THREADS
    nr_mutex_lock(lock);
    Py_END_ALLOW_THREADS
    enum nr_status s =
        nr_plan_set_reduce_hook(self->plan, fn == Py_None ? NULL : plan_reduce_hook, self);
    if (s == NR_OK)
        s = nr_plan_set_apply_hook(self->plan, after == Py_None ? NULL : plan_apply_hook, self);
    PyObject *old_hook = NULL, *old_after = NULL, *old_kept = NULL;
    if (s == NR_OK) {
        old_hook = self->hook;
        old_after = self->after;
        old_kept = self->hook_kept;
        self->hook = fn == Py_None ? NULL : fn;
        self->after = after == Py_None ? NULL : after;
        Py_XINCREF(self->hook);
        Py_XINCREF(self->after);
        self->hook_kept = kept;
        kept = NULL;
    }
    nr_mutex_unlock(lock);
    Py_XDECREF(old_hook); /* outside the lock: a destructor may run Python code */
    Py_XDECREF(old_after);
    Py_XDECREF(old_kept);
    Py_XDECREF(kept);
    return nr_py_none_or_raise(s, "set_reduce_hook",
                               "set_reduce_hook: a Hogwild plan with sparse updates has no "
                               "reduce phase; compile the model with hogwild=False");
}

static PyMethodDef Plan_methods[] = {
    NR_PY_KW_METHOD(
        "fit", Plan_fit,
        "fit(inputs, y, idx, batch_size, step, seed, weights=None, bounds=None, norms=None) -> "
        "stats: train on rows idx in batches; step is a 1-element int64 array advanced in place; "
        "weights, a float32 (n,) array, weighs each row's loss (Keras's sum_over_batch_size); "
        "bounds and norms (int64, steps + 1 and steps) make step s rows idx[bounds[s]:bounds[s+1]] "
        "with its loss summed over norms[s] samples (batch_size is then unused)."),
    NR_PY_KW_METHOD("predict", Plan_predict,
                    "predict(inputs, out): forward pass over all rows into the float32 array out."),
    {"set_optimizer", (PyCFunction)Plan_set_optimizer, METH_O,
     "set_optimizer(spec): the optimizer's new settings (an OptimizerSpec, read by field name)."},
    NR_PY_KW_METHOD(
        "set_reduce_hook", Plan_set_reduce_hook,
        "set_reduce_hook(fn, after=None): call fn(grads) between the reduce and apply phases of "
        "every training batch (None removes it), and after(grads) after its apply phase; grads "
        "(a BatchGrads) views the batch's summed gradients, which fn may change in place or, for "
        "sparse table parts, replace (grads.set_part). An exception in fn stops fit with that "
        "exception and the batch is not applied; one in after stops fit once the batch is "
        "applied. See nr_plan.h."),
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neurec._core.Plan",
    .tp_basicsize = sizeof(PlanObject),
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Plan(*, ops, value_sizes, params, n_inputs, output, logits, loss, optimizer, "
              "sparse, hogwild=False)\n--\n\n"
              "A compiled model (internal): ops (list of Op), value sizes, parameters (list of "
              "Param, whose arrays the plan borrows), the optimizer (OptimizerSpec). Descriptors "
              "are read by field name; see neurec/models/_plan.py.",
    .tp_methods = Plan_methods,
    .tp_new = Plan_new,
};

int nr_py_plan_add_type(PyObject *m)
{
    if (PyType_Ready(&GradsType) < 0 || PyType_Ready(&PlanType) < 0)
        return -1;
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        return -1;
    }
    return 0;
}
