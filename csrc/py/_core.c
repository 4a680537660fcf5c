/*
 * _core.c: the Python binding of neurec's C core (module neurec._core).
 *
 * The only file of the core that includes Python.h and NumPy. It checks every
 * argument (dtype, contiguity, writability, sizes), borrows the arrays'
 * buffers, releases the GIL around whole chunks of work and turns an
 * enum nr_status into an exception through one cleanup path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define PY_ARRAY_UNIQUE_SYMBOL NEUREC_CORE_ARRAY_API
#include <numpy/arrayobject.h>
#ifndef NPY_2_0_API_VERSION
#error "neurec must be compiled against NumPy >= 2.0 headers (pip install 'numpy>=2' in the build environment; the built module runs with NumPy >= 1.23)"
#endif

#include <stdlib.h>
#include <string.h>

#include "neurec/nr_als.h"
#include "neurec/nr_kernels.h"
#include "neurec/nr_names.h"
#include "neurec/nr_plan.h"
#include "neurec/nr_pool.h"
#include "neurec/nr_sampler.h"
#include "neurec/nr_scoring.h"
#include "neurec/nr_simd.h"
#include "neurec/nr_thread.h"

/* ------------------------------------------------------------------------ */
/* thread pools                                                              */

/* Every long call borrows a pool of g_threads threads for its duration
 * (pool_acquire / pool_release, with the GIL released) and returns it to a
 * small free list, so calls from several Python threads (two models fitting
 * at once, a server predicting) run concurrently instead of queueing on one
 * pool, and a single-threaded user reuses one pool forever. A plan is used by
 * one call at a time (its own lock, PlanObject.lock); the sampler and the
 * scorer hold no shared state.
 *
 * The free list, g_threads and the lock are reset in a child process after
 * fork(): the parent's worker threads do not exist there, so its pools are
 * abandoned (never joined) and the child builds its own. */
#define POOL_CACHE 4
static nr_mutex_t g_pools_lock = NR_MUTEX_INITIALIZER;
static struct nr_pool *g_idle[POOL_CACHE];
static int g_n_idle = 0;
static int g_threads = 0; /* guarded by g_pools_lock; 0 = not yet chosen */
/* Bumped in a forked child: a plan whose lock was taken before the fork (by a
 * thread that does not exist in the child) re-creates it on first use. */
static long g_fork_generation = 0;

static int default_threads(void)
{
    const char *env = getenv("NEUREC_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == '\0' && v >= 1 && v <= 1024)
            return (int)v;
    }
    int n = nr_cpu_count();
    return n > 1024 ? 1024 : n;
}

/* Take a pool of the current size (creating one if none is idle). Called
 * without the GIL. On failure returns NULL and sets *status. */
static struct nr_pool *pool_acquire(enum nr_status *status)
{
    struct nr_pool *pool = NULL, *stale[POOL_CACHE];
    int n_stale = 0, want;
    nr_mutex_lock(&g_pools_lock);
    if (g_threads == 0)
        g_threads = default_threads();
    want = g_threads;
    while (g_n_idle > 0 && !pool) {
        struct nr_pool *p = g_idle[--g_n_idle];
        if (nr_pool_size(p) == want)
            pool = p;
        else
            stale[n_stale++] = p;
    }
    nr_mutex_unlock(&g_pools_lock);
    for (int i = 0; i < n_stale; i++)
        nr_pool_free(stale[i]);
    if (!pool)
        *status = nr_pool_init(&pool, want);
    return pool;
}

/* Give a pool back: kept for reuse if it still has the current size and the
 * free list has room, else stopped. Called without the GIL. */
static void pool_release(struct nr_pool *pool)
{
    if (!pool)
        return;
    nr_mutex_lock(&g_pools_lock);
    int keep = nr_pool_size(pool) == g_threads && g_n_idle < POOL_CACHE;
    if (keep)
        g_idle[g_n_idle++] = pool;
    nr_mutex_unlock(&g_pools_lock);
    if (!keep)
        nr_pool_free(pool);
}

#if !defined(_WIN32)
static void pools_after_fork_in_child(void)
{
    /* Only this thread exists now; the idle pools' workers do not. */
    nr_mutex_init(&g_pools_lock);
    g_n_idle = 0;
    g_fork_generation++;
}
#endif

/* RUN_ON_POOL_LOCKED(lock, status, call): with the GIL released, take `lock`
 * (an nr_mutex_t *, or NULL for none), borrow a pool as `pool`, evaluate
 * `status = call`, give the pool back and release the lock.
 * RUN_ON_POOL(status, call) is the same without a lock. */
#define RUN_ON_POOL_LOCKED(LOCK, STATUS, CALL)                  \
    do {                                                        \
        nr_mutex_t *lock_ = (LOCK);                             \
        Py_BEGIN_ALLOW_THREADS                                  \
        if (lock_)                                              \
            nr_mutex_lock(lock_);                               \
        struct nr_pool *pool = pool_acquire(&(STATUS));         \
        if (pool) {                                             \
            STATUS = CALL;                                      \
            pool_release(pool);                                 \
        }                                                       \
        if (lock_)                                              \
            nr_mutex_unlock(lock_);                             \
        Py_END_ALLOW_THREADS                                    \
    } while (0)
#define RUN_ON_POOL(STATUS, CALL) RUN_ON_POOL_LOCKED(NULL, STATUS, CALL)

static int raise_status(enum nr_status s, const char *what)
{
    switch (s) {
    case NR_OK:
        return 0;
    case NR_ERR_NOMEM:
        PyErr_Format(PyExc_MemoryError, "%s: out of memory", what);
        break;
    case NR_ERR_INDEX:
        PyErr_Format(PyExc_IndexError, "%s: an id is negative or out of range", what);
        break;
    case NR_ABORTED:
        PyErr_Format(PyExc_KeyboardInterrupt, "%s: aborted", what);
        break;
    case NR_ERR_TYPE:
        PyErr_Format(PyExc_TypeError, "%s: %s", what, nr_status_str(s));
        break;
    default:
        PyErr_Format(PyExc_ValueError, "%s: %s", what, nr_status_str(s));
        break;
    }
    return -1;
}

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 1 || n > 1024) {
        PyErr_Format(PyExc_ValueError, "n must be between 1 and 1024, got %ld", n);
        return NULL;
    }
    /* Pools of the old size finish the calls running on them and are
     * stopped when given back. */
    Py_BEGIN_ALLOW_THREADS
    nr_mutex_lock(&g_pools_lock);
    g_threads = (int)n;
    nr_mutex_unlock(&g_pools_lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    int n;
    Py_BEGIN_ALLOW_THREADS
    nr_mutex_lock(&g_pools_lock);
    if (g_threads == 0)
        g_threads = default_threads();
    n = g_threads;
    nr_mutex_unlock(&g_pools_lock);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(n);
}

/* ------------------------------------------------------------------------ */
/* argument helpers                                                          */

static int dtype_code(PyArrayObject *a, enum nr_dtype *out)
{
    switch (PyArray_TYPE(a)) {
    case NPY_FLOAT32: *out = NR_DTYPE_F32; return 0;
    case NPY_FLOAT64: *out = NR_DTYPE_F64; return 0;
    case NPY_INT32: *out = NR_DTYPE_I32; return 0;
    case NPY_INT64: *out = NR_DTYPE_I64; return 0;
    default: return -1;
    }
}

/* Borrow a read-only C-contiguous array as an nr_array (n rows, width values). */
static int as_nr_array(PyObject *o, const char *name, struct nr_array *out)
{
    if (!PyArray_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy array", name);
        return -1;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || PyArray_ISBYTESWAPPED(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous, aligned, native-endian array "
                     "(use np.ascontiguousarray)", name);
        return -1;
    }
    if (dtype_code(a, &out->dtype) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be float32, float64, int32 or int64", name);
        return -1;
    }
    if (PyArray_NDIM(a) < 1) {
        PyErr_Format(PyExc_ValueError, "%s must have at least one dimension", name);
        return -1;
    }
    out->data = PyArray_DATA(a);
    out->n = PyArray_DIM(a, 0);
    out->width = out->n ? (int64_t)(PyArray_SIZE(a) / out->n) : 1;
    if (out->n == 0) {
        out->width = 1;
        for (int i = 1; i < PyArray_NDIM(a); i++)
            out->width *= PyArray_DIM(a, i);
    }
    return 0;
}

/* A writable C-contiguous array of exactly the given type; returns its data. */
static void *writable(PyObject *o, int type, const char *name, npy_intp *size)
{
    if (!PyArray_Check(o) || PyArray_TYPE((PyArrayObject *)o) != type) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy array of %s", name,
                     type == NPY_FLOAT32 ? "float32" : (type == NPY_INT64 ? "int64" : "the right dtype"));
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISWRITEABLE(a) || !PyArray_ISALIGNED(a) ||
        PyArray_ISBYTESWAPPED(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous, aligned and writeable; neurec updates "
                     "it in place and never copies it silently", name);
        return NULL;
    }
    if (size)
        *size = PyArray_SIZE(a);
    return PyArray_DATA(a);
}

static const void *readonly(PyObject *o, int type, const char *tname, const char *name, npy_intp *size)
{
    if (!PyArray_Check(o) || PyArray_TYPE((PyArrayObject *)o) != type) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy array of %s", name, tname);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)o;
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || PyArray_ISBYTESWAPPED(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be a C-contiguous %s array", name, tname);
        return NULL;
    }
    if (size)
        *size = PyArray_SIZE(a);
    return PyArray_DATA(a);
}

/* ------------------------------------------------------------------------ */
/* Plan                                                                      */

typedef struct {
    PyObject_HEAD
    struct nr_plan *plan;
    struct nr_param *params;
    int32_t n_inputs;
    int64_t out_size;
    PyObject *keep; /* list of the arrays the params borrow */
    nr_mutex_t lock; /* one fit/predict of this plan at a time (its scratch) */
    long lock_generation; /* g_fork_generation when lock was initialised */
} PlanObject;

/* The plan's lock, re-created first if it was made before a fork (a parent
 * thread that does not exist here may hold it). Called with the GIL, so no
 * other thread is between the check and the re-creation. */
static nr_mutex_t *plan_lock(PlanObject *self)
{
    if (self->lock_generation != g_fork_generation) {
        nr_mutex_init(&self->lock);
        self->lock_generation = g_fork_generation;
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

static int parse_optim(PyObject *t, struct nr_optim *o)
{
    int kind, nesterov, centered, amsgrad, catch_up;
    float lr, b1, b2, eps, mom, rho;
    if (!PyArg_ParseTuple(t, "iffffffpppp", &kind, &lr, &b1, &b2, &eps, &mom, &rho, &nesterov,
                          &centered, &amsgrad, &catch_up))
        return -1;
    memset(o, 0, sizeof *o);
    if (kind < NR_OPTIM_SGD || kind > NR_OPTIM_RMSPROP) {
        PyErr_SetString(PyExc_ValueError, "unknown optimizer kind");
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

/* Plan(ops, value_sizes, params, n_inputs, output, logits, loss, optim, sparse)
 *   ops: list of (kind, out, (in...), (p0, p1), act, flag, (d0..d5), rate)
 *   params: list of (w float32 2-D, (slot0, slot1, slot2) float32|None,
 *            row_steps int64|None, l2, is_table, frozen) */
static PyObject *Plan_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ops", "value_sizes", "params", "n_inputs", "output", "logits",
                             "loss", "optim", "sparse", "hogwild", NULL};
    PyObject *ops_o, *vs_o, *params_o, *optim_o;
    int n_inputs, output, logits, loss, sparse, hogwild = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!O!iiiiOp|p", kwlist, &PyList_Type, &ops_o,
                                     &PyList_Type, &vs_o, &PyList_Type, &params_o, &n_inputs,
                                     &output, &logits, &loss, &optim_o, &sparse, &hogwild))
        return NULL;
    PlanObject *self = (PlanObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    nr_mutex_init(&self->lock);
    self->lock_generation = g_fork_generation;
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
    if (loss < NR_LOSS_BCE || loss > NR_LOSS_MAE) {
        PyErr_SetString(PyExc_ValueError, "unknown loss kind");
        goto error;
    }
    for (Py_ssize_t i = 0; i < n_vals; i++) {
        vs[i] = PyLong_AsLongLong(PyList_GET_ITEM(vs_o, i));
        if (vs[i] == -1 && PyErr_Occurred())
            goto error;
    }
    for (Py_ssize_t i = 0; i < n_ops; i++) {
        PyObject *ins, *prm, *dims;
        struct nr_op *op = &ops[i];
        int kind, outv, act, flag;
        float rate;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(ops_o, i), "iiO!O!iiO!f", &kind, &outv, &PyTuple_Type, &ins,
                              &PyTuple_Type, &prm, &act, &flag, &PyTuple_Type, &dims, &rate))
            goto error;
        if (PyTuple_GET_SIZE(ins) > NR_OP_MAX_IN || PyTuple_GET_SIZE(prm) != 2 || PyTuple_GET_SIZE(dims) != 6) {
            PyErr_Format(PyExc_ValueError, "op %zd: at most %d inputs, 2 params and 6 dims", i, NR_OP_MAX_IN);
            goto error;
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
            goto error;
        op->act = act;
        op->flag = flag;
        op->rate = rate;
    }
    for (Py_ssize_t i = 0; i < n_params; i++) {
        PyObject *w, *slots, *steps;
        float l2;
        int is_table, frozen;
        struct nr_param *p = &self->params[i];
        if (!PyArg_ParseTuple(PyList_GET_ITEM(params_o, i), "OO!Ofpp", &w, &PyTuple_Type, &slots, &steps,
                              &l2, &is_table, &frozen))
            goto error;
        npy_intp size;
        char name[64];
        snprintf(name, sizeof name, "parameter %zd", i);
        p->w = writable(w, NPY_FLOAT32, name, &size);
        if (!p->w)
            goto error;
        PyArrayObject *wa = (PyArrayObject *)w;
        p->rows = PyArray_NDIM(wa) >= 1 ? PyArray_DIM(wa, 0) : 1;
        p->cols = p->rows ? (int64_t)(size / p->rows) : 0;
        if (PyList_Append(self->keep, w) < 0)
            goto error;
        if (PyTuple_GET_SIZE(slots) != 3) {
            PyErr_SetString(PyExc_ValueError, "three optimizer slots expected");
            goto error;
        }
        for (int j = 0; j < 3; j++) {
            PyObject *s = PyTuple_GET_ITEM(slots, j);
            if (s == Py_None)
                continue;
            npy_intp ss;
            snprintf(name, sizeof name, "optimizer slot %d of parameter %zd", j, i);
            p->slot[j] = writable(s, NPY_FLOAT32, name, &ss);
            if (!p->slot[j])
                goto error;
            if (ss != size) {
                PyErr_Format(PyExc_ValueError, "%s has %zd values, expected %zd", name, (Py_ssize_t)ss,
                             (Py_ssize_t)size);
                goto error;
            }
            if (PyList_Append(self->keep, s) < 0)
                goto error;
        }
        if (steps != Py_None) {
            npy_intp ss;
            p->row_steps = writable(steps, NPY_INT64, "row_steps", &ss);
            if (!p->row_steps)
                goto error;
            if (ss != p->rows) {
                PyErr_SetString(PyExc_ValueError, "row_steps must have one entry per table row");
                goto error;
            }
            if (PyList_Append(self->keep, steps) < 0)
                goto error;
        }
        p->l2 = l2;
        p->is_table = is_table;
        p->frozen = frozen;
    }
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
    if (parse_optim(optim_o, &d->optim) < 0)
        goto error;
    if (output < 0 || output >= n_vals) {
        PyErr_SetString(PyExc_ValueError, "output value out of range");
        goto error;
    }
    self->n_inputs = n_inputs;
    self->out_size = vs[output];
    enum nr_status s = nr_plan_init(&self->plan, d);
    if (s != NR_OK) {
        raise_status(s, "plan");
        goto error;
    }
    free(ops); /* nr_plan_init copied them */
    free(vs);
    return (PyObject *)self;
error:
    free(ops);
    free(vs);
    Py_DECREF(self);
    return NULL;
}

static PyObject *Plan_set_optimizer(PlanObject *self, PyObject *arg)
{
    struct nr_optim o;
    if (parse_optim(arg, &o) < 0)
        return NULL;
    nr_plan_set_optim(self->plan, &o);
    Py_RETURN_NONE;
}

static int parse_inputs(PlanObject *self, PyObject *list, struct nr_array *arr, int64_t *n_rows)
{
    if (!PyList_Check(list) || PyList_GET_SIZE(list) != self->n_inputs) {
        PyErr_Format(PyExc_ValueError, "expected a list of %d input arrays", self->n_inputs);
        return -1;
    }
    for (int i = 0; i < self->n_inputs; i++) {
        char name[32];
        snprintf(name, sizeof name, "input %d", i);
        if (as_nr_array(PyList_GET_ITEM(list, i), name, &arr[i]) < 0)
            return -1;
        if (i > 0 && arr[i].n != arr[0].n) {
            PyErr_Format(PyExc_ValueError, "input %d has %lld rows, input 0 has %lld", i,
                         (long long)arr[i].n, (long long)arr[0].n);
            return -1;
        }
    }
    *n_rows = self->n_inputs ? arr[0].n : 0;
    return 0;
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
static PyObject *Plan_fit(PlanObject *self, PyObject *args)
{
    PyObject *inputs_o, *y_o, *idx_o, *step_o;
    long long batch_size;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOLOK", &inputs_o, &y_o, &idx_o, &batch_size, &step_o, &seed))
        return NULL;
    npy_intp n_step;
    int64_t *step_p = writable(step_o, NPY_INT64, "step", &n_step);
    if (!step_p)
        return NULL;
    if (n_step != 1) {
        PyErr_SetString(PyExc_ValueError, "step must be a 1-element int64 array");
        return NULL;
    }
    struct nr_array *inputs = calloc((size_t)(self->n_inputs ? self->n_inputs : 1), sizeof *inputs);
    struct nr_fit_stats *st = calloc(1, sizeof *st);
    PyObject *result = NULL;
    if (!inputs || !st) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t n_rows;
    if (parse_inputs(self, inputs_o, inputs, &n_rows) < 0)
        goto done;
    struct nr_array y;
    if (as_nr_array(y_o, "y", &y) < 0)
        goto done;
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
    npy_intp n_idx;
    const int64_t *idx = readonly(idx_o, NPY_INT64, "int64", "idx", &n_idx);
    if (!idx)
        goto done;
    for (npy_intp i = 0; i < n_idx; i++)
        if (idx[i] < 0 || idx[i] >= n_rows) {
            PyErr_Format(PyExc_IndexError, "idx[%zd] = %lld is outside [0, %lld)", (Py_ssize_t)i,
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
    if (raise_status(s, "fit") < 0)
        goto done;
    result = stats_dict(st);
done:
    free(inputs);
    free(st);
    return result;
}

/* predict(inputs, out): out is a float32 (n, out_size) array */
static PyObject *Plan_predict(PlanObject *self, PyObject *args)
{
    PyObject *inputs_o, *out_o;
    if (!PyArg_ParseTuple(args, "OO", &inputs_o, &out_o))
        return NULL;
    struct nr_array *inputs = calloc((size_t)(self->n_inputs ? self->n_inputs : 1), sizeof *inputs);
    if (!inputs)
        return PyErr_NoMemory();
    PyObject *result = NULL;
    int64_t n_rows;
    npy_intp out_size;
    float *out;
    if (parse_inputs(self, inputs_o, inputs, &n_rows) < 0)
        goto done;
    out = writable(out_o, NPY_FLOAT32, "out", &out_size);
    if (!out)
        goto done;
    if (out_size != n_rows * self->out_size) {
        PyErr_SetString(PyExc_ValueError, "out has the wrong size");
        goto done;
    }
    enum nr_status s = NR_OK;
    RUN_PLAN_ON_POOL(self, s, nr_plan_predict(self->plan, pool, inputs, 0, n_rows, out));
    if (raise_status(s, "predict") < 0)
        goto done;
    Py_INCREF(Py_None);
    result = Py_None;
done:
    free(inputs);
    return result;
}

static PyMethodDef Plan_methods[] = {
    {"fit", (PyCFunction)Plan_fit, METH_VARARGS,
     "fit(inputs, y, idx, batch_size, step, seed) -> stats: train on rows idx in batches; step is a 1-element int64 array advanced in place."},
    {"predict", (PyCFunction)Plan_predict, METH_VARARGS,
     "predict(inputs, out): forward pass over all rows into the float32 array out."},
    {"set_optimizer", (PyCFunction)Plan_set_optimizer, METH_O,
     "set_optimizer((kind, lr, beta1, beta2, eps, momentum, rho, nesterov, centered, amsgrad, catch_up))."},
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

/* ------------------------------------------------------------------------ */
/* sampling                                                                  */

static PyObject *py_permutation(PyObject *self, PyObject *args)
{
    (void)self;
    long long n;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "LK", &n, &seed))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    npy_intp dims[1] = {(npy_intp)n};
    PyObject *out = PyArray_SimpleNew(1, dims, NPY_INT64);
    if (!out)
        return NULL;
    int64_t *p = PyArray_DATA((PyArrayObject *)out);
    Py_BEGIN_ALLOW_THREADS
    nr_sampler_permutation(p, n, seed);
    Py_END_ALLOW_THREADS
    return out;
}

/* sample_epoch(indptr, indices, n_items, pos_users, pos_items, num_neg, cdf|None, seed,
 *              out_users, out_items, out_labels) */
static PyObject *py_sample_epoch(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *indptr_o, *indices_o, *pu_o, *pi_o, *cdf_o, *ou_o, *oi_o, *ol_o;
    long long n_items, num_neg;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOLOOLOKOOO", &indptr_o, &indices_o, &n_items, &pu_o, &pi_o, &num_neg,
                          &cdf_o, &seed, &ou_o, &oi_o, &ol_o))
        return NULL;
    npy_intp n_ptr, n_ind, n_pu, n_pi, n_ou, n_oi, n_ol, n_cdf = 0;
    const int64_t *indptr = readonly(indptr_o, NPY_INT64, "int64", "indptr", &n_ptr);
    if (!indptr)
        return NULL;
    const int32_t *indices = readonly(indices_o, NPY_INT32, "int32", "indices", &n_ind);
    if (!indices)
        return NULL;
    const int64_t *pu = readonly(pu_o, NPY_INT64, "int64", "users", &n_pu);
    if (!pu)
        return NULL;
    const int64_t *pi = readonly(pi_o, NPY_INT64, "int64", "items", &n_pi);
    if (!pi)
        return NULL;
    const double *cdf = NULL;
    if (cdf_o != Py_None) {
        cdf = readonly(cdf_o, NPY_FLOAT64, "float64", "cdf", &n_cdf);
        if (!cdf)
            return NULL;
        if (n_cdf != n_items) {
            PyErr_SetString(PyExc_ValueError, "cdf must have one entry per item");
            return NULL;
        }
    }
    int64_t *ou = writable(ou_o, NPY_INT64, "out_users", &n_ou);
    if (!ou)
        return NULL;
    int64_t *oi = writable(oi_o, NPY_INT64, "out_items", &n_oi);
    if (!oi)
        return NULL;
    float *ol = writable(ol_o, NPY_FLOAT32, "out_labels", &n_ol);
    if (!ol)
        return NULL;
    /* sizes come from Python: no product below may overflow (signed overflow is undefined) */
    if (num_neg < 0 || num_neg > INT64_MAX / 2 || (n_pu && 1 + num_neg > INT64_MAX / n_pu)) {
        PyErr_Format(PyExc_ValueError, "sample_epoch: num_negatives = %lld is out of range for %lld "
                     "positives", num_neg, (long long)n_pu);
        return NULL;
    }
    if (n_pu != n_pi || n_ou != n_pu * (1 + num_neg) || n_oi != n_ou || n_ol != n_ou ||
        n_ptr < 1 || indptr[n_ptr - 1] != n_ind || n_items < 1) {
        PyErr_SetString(PyExc_ValueError, "sample_epoch: inconsistent sizes");
        return NULL;
    }
    struct nr_csr csr = {indptr, indices, n_ptr - 1, n_items};
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_sampler_epoch(&csr, pu, pi, n_pu, num_neg, cdf, seed, pool, ou, oi, ol));
    if (s == NR_ERR_VALUE) {
        PyErr_SetString(PyExc_ValueError, "negative sampling: a user has interacted with every item, "
                        "so no negative can be drawn; drop such users or lower num_negatives to 0");
        return NULL;
    }
    if (raise_status(s, "negative sampling") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* scoring: the dot-product fast path of recommend                           */

/* score_topk(user_vecs, item_vecs, item_bias|None, k, excl_indptr|None, excl_indices|None,
 *            rows|None, out_ids, out_scores) */
static PyObject *py_score_topk(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *u_o, *v_o, *b_o, *ip_o, *ix_o, *rows_o, *oid_o, *osc_o;
    long long k;
    if (!PyArg_ParseTuple(args, "OOOLOOOOO", &u_o, &v_o, &b_o, &k, &ip_o, &ix_o, &rows_o, &oid_o, &osc_o))
        return NULL;
    npy_intp nu_sz, nv_sz, nb = 0, nip = 0, nix = 0, nrows = 0, noid, nosc;
    const float *u = readonly(u_o, NPY_FLOAT32, "float32", "user_vectors", &nu_sz);
    if (!u)
        return NULL;
    const float *v = readonly(v_o, NPY_FLOAT32, "float32", "item_vectors", &nv_sz);
    if (!v)
        return NULL;
    if (PyArray_NDIM((PyArrayObject *)u_o) != 2 || PyArray_NDIM((PyArrayObject *)v_o) != 2 ||
        PyArray_DIM((PyArrayObject *)u_o, 1) != PyArray_DIM((PyArrayObject *)v_o, 1)) {
        PyErr_SetString(PyExc_ValueError, "user_vectors and item_vectors must be 2-D with equal widths");
        return NULL;
    }
    int64_t n_users = PyArray_DIM((PyArrayObject *)u_o, 0), n_items = PyArray_DIM((PyArrayObject *)v_o, 0);
    int64_t dim = PyArray_DIM((PyArrayObject *)u_o, 1);
    const float *bias = NULL;
    if (b_o != Py_None) {
        bias = readonly(b_o, NPY_FLOAT32, "float32", "item_bias", &nb);
        if (!bias)
            return NULL;
        if (nb != n_items) {
            PyErr_SetString(PyExc_ValueError, "item_bias must have one value per item");
            return NULL;
        }
    }
    const int64_t *indptr = NULL, *rows = NULL;
    const int32_t *indices = NULL;
    if (ip_o != Py_None) {
        indptr = readonly(ip_o, NPY_INT64, "int64", "exclude indptr", &nip);
        if (!indptr)
            return NULL;
        indices = readonly(ix_o, NPY_INT32, "int32", "exclude indices", &nix);
        if (!indices)
            return NULL;
        rows = readonly(rows_o, NPY_INT64, "int64", "exclude rows", &nrows);
        if (!rows)
            return NULL;
        if (nrows != n_users || nip < 1 || indptr[nip - 1] != nix) {
            PyErr_SetString(PyExc_ValueError, "exclude: inconsistent CSR sizes");
            return NULL;
        }
        for (npy_intp i = 0; i < nrows; i++)
            if (rows[i] < -1 || rows[i] >= nip - 1) {
                PyErr_SetString(PyExc_IndexError, "exclude: a user row is out of range");
                return NULL;
            }
    }
    int64_t *oid = writable(oid_o, NPY_INT64, "out_ids", &noid);
    if (!oid)
        return NULL;
    float *osc = writable(osc_o, NPY_FLOAT32, "out_scores", &nosc);
    if (!osc)
        return NULL;
    if (k < 1 || (n_users && k > INT64_MAX / n_users) || noid != n_users * k || nosc != n_users * k) {
        PyErr_SetString(PyExc_ValueError, "out_ids and out_scores must be (n_users, k) with k >= 1");
        return NULL;
    }
    struct nr_score_args a = {u, v, bias, n_users, n_items, dim, k, indptr, indices, rows, oid, osc};
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_score_topk(&a, pool));
    if (raise_status(s, "recommend") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* iALS: Gramian, row solves and objective                                   */

/* als_gram(y, offset|None, gram_out, yo_out|None): gram = y^T y, yo = y^T offset. */
static PyObject *py_als_gram(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *y_o, *off_o, *g_o, *yo_o;
    if (!PyArg_ParseTuple(args, "OOOO", &y_o, &off_o, &g_o, &yo_o))
        return NULL;
    npy_intp ny, ng, noff = 0, nyo = 0;
    const float *y = readonly(y_o, NPY_FLOAT32, "float32", "y", &ny);
    if (!y)
        return NULL;
    if (PyArray_NDIM((PyArrayObject *)y_o) != 2) {
        PyErr_SetString(PyExc_ValueError, "als_gram: y must be 2-D");
        return NULL;
    }
    int64_t n = PyArray_DIM((PyArrayObject *)y_o, 0), dim = PyArray_DIM((PyArrayObject *)y_o, 1);
    const float *off = NULL;
    if (off_o != Py_None) {
        off = readonly(off_o, NPY_FLOAT32, "float32", "offset", &noff);
        if (!off)
            return NULL;
    }
    float *g = writable(g_o, NPY_FLOAT32, "gram", &ng);
    if (!g)
        return NULL;
    float *yo = NULL;
    if (yo_o != Py_None) {
        yo = writable(yo_o, NPY_FLOAT32, "yo", &nyo);
        if (!yo)
            return NULL;
    }
    if (dim < 1 || ng != dim * dim || (off && noff != n) || (yo && nyo != dim)) {
        PyErr_SetString(PyExc_ValueError, "als_gram: inconsistent sizes");
        return NULL;
    }
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_als_gram(g, yo, y, off, n, dim, pool));
    if (raise_status(s, "als_gram") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Parse (indptr, indices, values|None, x, y, offset|None, gram, yo|None, alpha, reg, nu,
 * solver, cg_steps, row0, row1) into *a. */
static int parse_als(PyObject *args, struct nr_als_args *a, int *data)
{
    PyObject *ip_o, *ix_o, *val_o, *x_o, *y_o, *off_o, *g_o, *yo_o;
    float alpha, reg, nu;
    int solver, cg_steps;
    long long row0, row1;
    *data = 0;
    if (!PyArg_ParseTuple(args, "OOOOOOOOfffiiLL|p", &ip_o, &ix_o, &val_o, &x_o, &y_o, &off_o,
                          &g_o, &yo_o, &alpha, &reg, &nu, &solver, &cg_steps, &row0, &row1, data))
        return -1;
    memset(a, 0, sizeof *a);
    npy_intp nip, nix, nval = 0, nx, ny, noff = 0, ng, nyo = 0;
    if (!(a->indptr = readonly(ip_o, NPY_INT64, "int64", "indptr", &nip)))
        return -1;
    if (!(a->indices = readonly(ix_o, NPY_INT32, "int32", "indices", &nix)))
        return -1;
    if (val_o != Py_None && !(a->values = readonly(val_o, NPY_FLOAT32, "float32", "values", &nval)))
        return -1;
    if (!(a->x = writable(x_o, NPY_FLOAT32, "x", &nx)))
        return -1;
    if (!(a->y = readonly(y_o, NPY_FLOAT32, "float32", "y", &ny)))
        return -1;
    if (off_o != Py_None && !(a->offset = readonly(off_o, NPY_FLOAT32, "float32", "offset", &noff)))
        return -1;
    if (!(a->gram = readonly(g_o, NPY_FLOAT32, "float32", "gram", &ng)))
        return -1;
    if (yo_o != Py_None && !(a->yo = readonly(yo_o, NPY_FLOAT32, "float32", "yo", &nyo)))
        return -1;
    if (PyArray_NDIM((PyArrayObject *)x_o) != 2 || PyArray_NDIM((PyArrayObject *)y_o) != 2 ||
        PyArray_DIM((PyArrayObject *)x_o, 1) != PyArray_DIM((PyArrayObject *)y_o, 1)) {
        PyErr_SetString(PyExc_ValueError, "als: x and y must be 2-D with equal widths");
        return -1;
    }
    a->n_rows = PyArray_DIM((PyArrayObject *)x_o, 0);
    a->n_cols = PyArray_DIM((PyArrayObject *)y_o, 0);
    a->dim = PyArray_DIM((PyArrayObject *)x_o, 1);
    if (nip != a->n_rows + 1 || a->indptr[0] != 0 || a->indptr[nip - 1] != nix ||
        (a->values && nval != nix) || (a->offset && noff != a->n_cols) ||
        ng != a->dim * a->dim || (a->yo && nyo != a->dim) || (a->offset && !a->yo)) {
        PyErr_SetString(PyExc_ValueError, "als: inconsistent sizes (indptr, values, offset, gram, yo)");
        return -1;
    }
    a->alpha = alpha;
    a->reg = reg;
    a->nu = nu;
    a->solver = (enum nr_als_solver)solver;
    a->cg_steps = cg_steps;
    a->row0 = row0;
    a->row1 = row1;
    return 0;
}

/* als_solve(indptr, indices, values|None, x, y, offset|None, gram, yo|None, alpha, reg, nu,
 *           solver, cg_steps, row0, row1): solve rows [row0, row1) of x in place. */
static PyObject *py_als_solve(PyObject *self, PyObject *args)
{
    (void)self;
    struct nr_als_args a;
    int data;
    if (parse_als(args, &a, &data) < 0)
        return NULL;
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_als_solve_rows(&a, pool));
    if (s == NR_ERR_VALUE) {
        PyErr_SetString(PyExc_ValueError,
                        "ALS: invalid arguments or data (negative or non-finite interaction values, "
                        "a CSR row pointer that decreases, or a system that is not positive "
                        "definite: use regularization > 0)");
        return NULL;
    }
    if (raise_status(s, "ALS") < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* als_loss(<as als_solve>, data) -> float: the rows' part of the objective. */
static PyObject *py_als_loss(PyObject *self, PyObject *args)
{
    (void)self;
    struct nr_als_args a;
    int data;
    if (parse_als(args, &a, &data) < 0)
        return NULL;
    double out = 0.0;
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_als_loss(&a, data, &out, pool));
    if (raise_status(s, "ALS objective") < 0)
        return NULL;
    return PyFloat_FromDouble(out);
}

/* ------------------------------------------------------------------------ */
/* build and CPU facts (neurec.show_config)                                  */

#if defined(__clang__)
#define NR_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define NR_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define NR_COMPILER "msvc " NR_STR_(_MSC_VER)
#else
#define NR_COMPILER "unknown"
#endif
#define NR_STR_(x) NR_STR2_(x)
#define NR_STR2_(x) #x

static PyObject *py_build_info(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *levels = PyList_New(0);
    if (!levels)
        return NULL;
    for (int l = 0; l < NR_SIMD_N_LEVELS; l++) {
#if !NR_SIMD_X86
        if (l != NR_SIMD_BASELINE)
            continue;
#endif
        PyObject *name = PyUnicode_FromString(nr_simd_name((enum nr_simd_level)l));
        if (!name || PyList_Append(levels, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(levels);
            return NULL;
        }
        Py_DECREF(name);
    }
    return Py_BuildValue("{s:s,s:N,s:s,s:s,s:i}", "compiler", NR_COMPILER, "simd_compiled", levels,
                         "simd_supported", nr_simd_name(nr_simd_detect()), "simd_level",
                         nr_simd_name(nr_simd_level()), "cpu_count", nr_cpu_count());
}

/* _set_simd_level(name) -> the level in force (capped at what the CPU has). */
static PyObject *py_set_simd_level(PyObject *self, PyObject *arg)
{
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    int level = nr_simd_parse(name);
    if (level < 0) {
        PyErr_Format(PyExc_ValueError,
                     "unknown SIMD level %R; use 'baseline', 'avx2' or 'avx512'", arg);
        return NULL;
    }
    return PyUnicode_FromString(nr_simd_name(nr_simd_set_level((enum nr_simd_level)level)));
}

static PyMethodDef module_methods[] = {
    {"build_info", py_build_info, METH_NOARGS, "build_info() -> dict of compiler and SIMD facts."},
    {"_set_simd_level", py_set_simd_level, METH_O,
     "_set_simd_level(name) -> name of the level in force (tests and benchmarks)."},
    {"set_num_threads", py_set_num_threads, METH_O, "set_num_threads(n): threads of the C core."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads() -> int."},
    {"permutation", py_permutation, METH_VARARGS, "permutation(n, seed) -> int64 array."},
    {"sample_epoch", py_sample_epoch, METH_VARARGS, "sample_epoch(...): one epoch of negatives."},
    {"score_topk", py_score_topk, METH_VARARGS, "score_topk(...): dot-product scores and top-k."},
    {"als_gram", py_als_gram, METH_VARARGS, "als_gram(y, offset, gram, yo): Gramian y^T y and y^T offset."},
    {"als_solve", py_als_solve, METH_VARARGS, "als_solve(...): iALS solve of a range of rows, in place."},
    {"als_loss", py_als_loss, METH_VARARGS, "als_loss(..., data) -> float: iALS objective of the rows."},
    {NULL, NULL, 0, NULL},
};

/* Module attribute `attr`: a dict of names[i] -> i for i < n (the declared ABI, nr_names.h). */
static int add_names(PyObject *m, const char *attr, const char *const *names, int n)
{
    PyObject *d = PyDict_New();
    if (!d)
        return -1;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(i);
        if (!v || PyDict_SetItemString(d, names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    if (PyModule_AddObject(m, attr, d) < 0) {
        Py_DECREF(d);
        return -1;
    }
    return 0;
}

static int core_exec(PyObject *m)
{
    if (PyArray_ImportNumPyAPI() < 0)
        return -1;
#if !defined(_WIN32)
    static int atfork_done = 0;
    if (!atfork_done) {
        if (pthread_atfork(NULL, NULL, pools_after_fork_in_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "neurec: pthread_atfork failed");
            return -1;
        }
        atfork_done = 1;
    }
#endif
    if (PyType_Ready(&PlanType) < 0)
        return -1;
    Py_INCREF(&PlanType);
    if (PyModule_AddObject(m, "Plan", (PyObject *)&PlanType) < 0) {
        Py_DECREF(&PlanType);
        return -1;
    }
    if (PyModule_AddIntConstant(m, "AUC_BINS", NR_AUC_BINS) < 0)
        return -1;
    const char *status_names[NR_STATUS_COUNT];
    for (int i = 0; i < NR_STATUS_COUNT; i++)
        status_names[i] = nr_status_str((enum nr_status)i);
    if (add_names(m, "OPS", nr_op_names, NR_OP_COUNT) < 0 ||
        add_names(m, "ACTIVATIONS", nr_act_names, NR_ACT_COUNT) < 0 ||
        add_names(m, "LOSSES", nr_loss_names, NR_LOSS_COUNT) < 0 ||
        add_names(m, "OPTIMIZERS", nr_optim_names, NR_OPTIM_COUNT) < 0 ||
        add_names(m, "STATUSES", status_names, NR_STATUS_COUNT) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neurec._core",
    .m_doc = "neurec's C core: plan executor, optimizers, sampler, scoring, iALS, thread pool.",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = core_slots,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
