/*
 * _window.c: neurec._core.SharedStep, the steps of a data-parallel fit whose
 * ranks share one host (neurec/distribution/_shared.py), run in C.
 *
 * The ranks share one MPI-3 window of equal segments, one per rank. Each
 * segment holds, in 32-bit words:
 *
 *   [0, 16)        the rank's barrier count (int64, alone on its cache line)
 *   [16, dense)    the header: step, samples, overflow, then the rows it packed
 *                  per (owner, table) (int64s)
 *   [dense, rows)  the step's dense gradient (float32)
 *   [rows, values) the rows, packed by owner (nr_py_grads_pack)
 *   [values, end)  the new values of the rows it owns (nr_py_grads_pack_values)
 *
 * A step is reduce() between the plan's reduce and apply phases and after()
 * once the apply phase is over, each with one barrier: a rank publishes its
 * count with a release store once its writes are done and reads the others'
 * segments once every count reached its own (acquire loads). Nothing of the
 * step goes through Python or MPI, which cost more than the copies themselves
 * at a few hundred microseconds a step. The sums, their order and so the bits
 * are those of the messages (GradientExchange): the same packing, the same
 * merge and the same dense sum (weighted_sum).
 */
#include "module.h"
#include "plan_obj.h"

#include <stdatomic.h>
#include <string.h>

#include "neurec/nr_thread.h"

/* the counts are shared between processes: only lock-free atomics work there */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

#define FLAG_WORDS 16 /* the barrier count's cache line */
#define SPINS 2000    /* rounds of NR_PAUSE before yielding the core */
#define YIELDS 20000  /* then rounds of yielding before sleeping between looks */

typedef struct {
    PyObject_HEAD
    PyObject *window; /* the uint32 array over every segment (kept alive) */
    char *base;
    int64_t words; /* a segment's */
    int rank, size;
    int64_t n_tab, dense, rows_at, values_at, need_rows, need_values, dense_size;
    int summed;
    int64_t phase; /* barriers passed */
    int64_t *params, *widths; /* per table: its parameter, its words a row (cols + 2) */
    int64_t *offs;            /* scratch: size entries */
    int64_t *cnt;             /* scratch: size * n_tab */
    double *weights;          /* scratch: size */
} StepObject;

static char *segment(const StepObject *s, int r) { return s->base + 4 * s->words * (int64_t)r; }

static const int64_t *header(const StepObject *s, int r)
{
    return (const int64_t *)(segment(s, r) + 4 * FLAG_WORDS);
}

/* The header's int64s: step, samples, overflow, rows per (owner, table). */
static int64_t header_longs(const StepObject *s) { return 3 + s->size * s->n_tab; }

/* Wait for every rank's count to reach this barrier's: the spin, then yields,
 * then sleeps (an oversubscribed host), the GIL released while yielding;
 * signals are checked now and then (Ctrl-C). Returns 0, or -1 with an error set. */
static int barrier(StepObject *s)
{
    const int64_t k = ++s->phase;
    atomic_store_explicit((_Atomic int64_t *)segment(s, s->rank), k, memory_order_release);
    for (int r = 0; r < s->size; r++) {
        _Atomic int64_t *count = (_Atomic int64_t *)segment(s, r);
        for (long round = 0; atomic_load_explicit(count, memory_order_acquire) < k; round++) {
            if (round < SPINS) {
                NR_PAUSE();
                continue;
            }
            Py_BEGIN_ALLOW_THREADS
            if (round < YIELDS)
                nr_thread_yield();
            else
                nr_thread_sleep_us(50);
            Py_END_ALLOW_THREADS
            if (round % 1024 == 0 && PyErr_CheckSignals() < 0)
                return -1;
        }
    }
    return 0;
}

static void weighted_sum(const float *values, int64_t stride, int senders, const double *weights,
                         int64_t n, float *out)
{
    for (int64_t i = 0; i < n; i++) {
        double acc = (double)values[i] * weights[0];
        for (int r = 1; r < senders; r++) {
            const double term = (double)values[r * stride + i] * weights[r];
            acc += term;
        }
        out[i] = (float)acc;
    }
}

/* The ranks' weights in the sums from their headers, into s->weights, as
 * GradientExchange._weights. Returns 0, or -1 with an error set. */
static int step_weights(StepObject *s, int64_t step)
{
    int64_t total = 0;
    for (int r = 0; r < s->size; r++) {
        const int64_t *h = header(s, r);
        if (h[0] != step) {
            PyErr_Format(PyExc_RuntimeError,
                         "data-parallel fit: the ranks are at different optimizer steps (rank %d "
                         "at %lld, rank %d at %lld); every rank must run the same fit",
                         s->rank, (long long)step, r, (long long)h[0]);
            return -1;
        }
        total += h[1];
    }
    if (total <= 0) {
        PyErr_SetString(PyExc_RuntimeError, "data-parallel fit: a global batch without samples");
        return -1;
    }
    for (int r = 0; r < s->size; r++) {
        const int64_t n = header(s, r)[1];
        s->weights[r] = s->summed ? (n > 0 ? 1.0 : 0.0) : (double)n / (double)total;
    }
    return 0;
}

/* Every rank's row counts fit a segment's rows region (they come from other
 * processes: the offsets summed from them must stay in the window). Returns 0, or
 * -1 with an error set. */
static int check_counts(const StepObject *s)
{
    for (int r = 0; r < s->size; r++) {
        const int64_t *h = header(s, r);
        int64_t words = 0;
        for (int64_t k = 0; k < s->size * s->n_tab; k++) {
            const int64_t n = h[3 + k], w = s->widths[k % s->n_tab];
            if (n < 0 || n > s->need_rows / w || (words += n * w) > s->need_rows) {
                PyErr_Format(PyExc_RuntimeError,
                             "data-parallel fit: rank %d's rows do not fit its window segment", r);
                return -1;
            }
        }
    }
    return 0;
}

static GradsObject *live_grads(PyObject *o)
{
    if (!PyObject_TypeCheck(o, &GradsType) || !((GradsObject *)o)->g) {
        PyErr_SetString(PyExc_TypeError, "SharedStep: grads must be the reduce hook's live "
                                         "BatchGrads");
        return NULL;
    }
    return (GradsObject *)o;
}

/* reduce(grads, empty) -> (block, sent) or None: pack this rank's rows by owner
 * and its dense gradient into its segment (nothing with empty), wait for every
 * rank, sum the dense gradients and merge the rows this rank owns. None when
 * some rank's rows outgrew its segment (every rank sees it: the step goes
 * through messages); else the words of the longest block of new rows after()
 * will take, and the words this rank sent. */
static PyObject *Step_reduce(StepObject *s, PyObject *args)
{
    PyObject *go;
    int empty;
    if (!PyArg_ParseTuple(args, "Op:reduce", &go, &empty))
        return NULL;
    GradsObject *grads = live_grads(go);
    if (!grads)
        return NULL;
    struct nr_batch_grads *g = grads->g;
    if (g->dense_size != s->dense_size) {
        PyErr_Format(PyExc_ValueError,
                     "SharedStep: the plan's dense gradient has %lld values, "
                     "the window room for %lld",
                     (long long)g->dense_size, (long long)s->dense_size);
        return NULL;
    }
    int *tab = nr_py_grads_tables(grads, s->params, s->n_tab, "SharedStep");
    if (!tab)
        return NULL;
    PyObject *result = NULL;
    for (int64_t j = 0; j < s->n_tab; j++)
        if (s->widths[j] != g->parts[tab[j]].cols + 2) {
            PyErr_Format(PyExc_ValueError, "SharedStep: table %lld has %lld columns, not %lld",
                         (long long)s->params[j], (long long)g->parts[tab[j]].cols,
                         (long long)(s->widths[j] - 2));
            goto done;
        }
    const int me = s->rank, P = s->size;
    const int64_t T = s->n_tab;
    char *mine = segment(s, me);
    int64_t *head = (int64_t *)(mine + 4 * FLAG_WORDS);
    const int64_t words = nr_py_grads_count(g, tab, T, P, empty, head + 3);
    head[0] = g->step;
    head[1] = empty ? 0 : g->n_samples;
    head[2] = words > s->need_rows;
    if (!head[2] && nr_py_grads_pack(g, tab, T, P, empty, head + 3, mine + 4 * s->rows_at) < 0)
        goto done;
    memcpy(mine + 4 * s->dense, g->dense, 4 * (size_t)s->dense_size);
    if (barrier(s) < 0)
        goto done;
    for (int r = 0; r < P; r++)
        if (header(s, r)[2]) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
    if (step_weights(s, g->step) < 0 || check_counts(s) < 0)
        goto done;
    if (s->dense_size)
        weighted_sum((const float *)(s->base + 4 * s->dense), s->words, P, s->weights,
                     s->dense_size, g->dense);
    int64_t block = 0, sent = 2 * header_longs(s) + s->dense_size;
    for (int d = 0; d < P; d++) { /* the rows sent to owner d, their words */
        int64_t to_d = 0;
        for (int r = 0; r < P; r++)
            for (int64_t j = 0; j < T; j++) {
                const int64_t w = header(s, r)[3 + d * T + j] * s->widths[j];
                to_d += w;
                if (r == me && d != me)
                    sent += w;
            }
        block = to_d > block ? to_d : block;
    }
    block += 2 * T;
    for (int r = 0; r < P; r++) { /* sender r's block for this rank, and its counts */
        const int64_t *h = header(s, r);
        s->offs[r] = (int64_t)r * s->words + s->rows_at;
        for (int d = 0; d < me; d++)
            for (int64_t j = 0; j < T; j++)
                s->offs[r] += h[3 + d * T + j] * s->widths[j];
        memcpy(s->cnt + r * T, h + 3 + me * T, sizeof *s->cnt * (size_t)T);
    }
    if (nr_py_grads_merge(grads, tab, T, (const uint32_t *)s->base, P * s->words, s->offs, s->cnt,
                          P, s->weights) == 0)
        result = Py_BuildValue("(LL)", (long long)block, (long long)sent);
done:
    PyMem_Free(tab);
    return result;
}

/* after(grads, block): once the apply phase is over, write the new values of the
 * rows this rank owns and updated into its segment (block words at most, as
 * reduce() returned), wait for every rank, and write the others' into the tables. */
static PyObject *Step_after(StepObject *s, PyObject *args)
{
    PyObject *go;
    long long block;
    if (!PyArg_ParseTuple(args, "OL:after", &go, &block))
        return NULL;
    GradsObject *grads = live_grads(go);
    if (!grads)
        return NULL;
    if (block < 2 * s->n_tab || block > s->need_values) {
        PyErr_Format(PyExc_ValueError, "SharedStep.after: block must lie in [%lld, %lld], got %lld",
                     (long long)(2 * s->n_tab), (long long)s->need_values, block);
        return NULL;
    }
    int *tab = nr_py_grads_tables(grads, s->params, s->n_tab, "SharedStep");
    if (!tab)
        return NULL;
    PyObject *result = NULL;
    if (nr_py_grads_values_words(grads->g, tab, s->n_tab) > block) {
        PyErr_SetString(PyExc_RuntimeError, "data-parallel fit: new rows outgrew their block");
        goto done;
    }
    nr_py_grads_pack_values(grads, tab, s->n_tab, segment(s, s->rank) + 4 * s->values_at);
    if (barrier(s) < 0)
        goto done;
    for (int r = 0; r < s->size; r++)
        s->offs[r] = (int64_t)r * s->words + s->values_at;
    if (nr_py_grads_unpack(grads, tab, s->params, s->n_tab, s->base, s->size * s->words, s->offs,
                           s->size, block, s->rank) == 0) {
        result = Py_None;
        Py_INCREF(result);
    }
done:
    PyMem_Free(tab);
    return result;
}

/* SharedStep(window, rank, params, cols, dense, need_rows, need_values, summed) */
static PyObject *Step_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"window",    "rank",        "params", "cols", "dense",
                             "need_rows", "need_values", "summed", NULL};
    struct nr_arg params = {.name = "params", .min_nd = 1, .max_nd = 1},
                  cols = {.name = "cols", .min_nd = 1, .max_nd = 1};
    PyObject *window;
    int rank, summed;
    long long dense, need_rows, need_values;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OiO&O&LLLp:SharedStep", kwlist, &window, &rank,
                                     nr_conv_i64_in, &params, nr_conv_i64_in, &cols, &dense,
                                     &need_rows, &need_values, &summed))
        return NULL;
    StepObject *s = NULL;
    const int64_t T = nr_arg_size(&params);
    PyArrayObject *w = PyArray_Check(window) ? (PyArrayObject *)window : NULL;
    if (!w || PyArray_TYPE(w) != NPY_UINT32 || PyArray_NDIM(w) != 2 || !PyArray_ISCARRAY(w) ||
        PyArray_ISBYTESWAPPED(w) || ((uintptr_t)PyArray_DATA(w)) % 64) {
        PyErr_SetString(PyExc_ValueError, "SharedStep: window must be a writable C-contiguous "
                                          "(ranks, words) uint32 array on a 64-byte boundary");
        goto done;
    }
    const npy_intp *shape = PyArray_DIMS(w);
    const long long room = shape[1]; /* each term bounded first: the sum cannot overflow */
    int bad_cols = nr_arg_size(&cols) != T;
    for (int64_t j = 0; !bad_cols && j < T; j++)
        bad_cols = ((const int64_t *)nr_arg_data(&cols))[j] < 0 ||
                   ((const int64_t *)nr_arg_data(&cols))[j] > room;
    if (bad_cols || T < 1 || T > room || rank < 0 || rank >= shape[0] || shape[0] > 1 << 16 ||
        dense < 0 || dense > room || need_rows < 0 || need_rows > room || need_values < 2 * T ||
        need_values > room || shape[1] % FLAG_WORDS ||
        FLAG_WORDS + 2 * (3 + shape[0] * T) + dense + need_rows + need_values > room) {
        PyErr_SetString(PyExc_ValueError,
                        "SharedStep: needs one column count (>= 0) per table, a rank of the "
                        "window, "
                        "and segments (a multiple of 16 words) that hold the barrier, the "
                        "header, dense, need_rows and need_values words");
        goto done;
    }
    if (!(s = (StepObject *)type->tp_alloc(type, 0)))
        goto done;
    s->window = window;
    Py_INCREF(window);
    s->base = PyArray_DATA(w);
    s->size = (int)shape[0];
    s->words = shape[1];
    s->rank = rank;
    s->n_tab = T;
    s->dense = FLAG_WORDS + 2 * header_longs(s);
    s->dense_size = dense;
    s->rows_at = s->dense + dense;
    s->need_rows = need_rows;
    s->values_at = s->rows_at + need_rows;
    s->need_values = need_values;
    s->summed = summed;
    s->params = PyMem_Malloc(sizeof(int64_t) * (size_t)(2 * T + s->size + s->size * T));
    s->weights = PyMem_Malloc(sizeof(double) * (size_t)s->size);
    if (!s->params || !s->weights) {
        PyErr_NoMemory();
        Py_CLEAR(s);
        goto done;
    }
    s->widths = s->params + T;
    s->offs = s->widths + T;
    s->cnt = s->offs + s->size;
    const int64_t *p = nr_arg_data(&params), *c = nr_arg_data(&cols);
    for (int64_t j = 0; j < T; j++) {
        s->params[j] = p[j];
        s->widths[j] = c[j] + 2;
    }
done:
    NR_ARGS_RELEASE(&params, &cols);
    return (PyObject *)s;
}

static void Step_dealloc(StepObject *s)
{
    Py_XDECREF(s->window);
    PyMem_Free(s->params);
    PyMem_Free(s->weights);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Step_methods[] = {
    {"reduce", (PyCFunction)Step_reduce, METH_VARARGS,
     "reduce(grads, empty) -> (block, sent) or None: the exchange between the reduce and apply "
     "phases (the reduce hook's), None when some rank's rows outgrew its segment."},
    {"after", (PyCFunction)Step_after, METH_VARARGS,
     "after(grads, block): the exchange after the apply phase (the apply hook's)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StepType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neurec._core.SharedStep",
    .tp_basicsize = sizeof(StepObject),
    .tp_dealloc = (destructor)Step_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SharedStep(window, rank, params, cols, dense, need_rows, need_values, summed): "
              "the gradient exchange of one rank of a data-parallel fit through a shared window "
              "(ranks, words) of uint32: params, the exchanged tables' parameters, cols their "
              "widths; dense, the dense gradient's floats; need_rows and need_values, the words "
              "of the rows' and new values' regions of a segment. The barrier counts (each "
              "segment's first 16 words) must be 0 on every rank before the first step.",
    .tp_methods = Step_methods,
    .tp_new = Step_new,
};

/* weighted_sum(values, weights, out): out[i] = sum_r weights[r] * values[r, i] */
static PyObject *py_weighted_sum(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"values", "weights", "out", NULL};
    struct nr_arg weights = {.name = "weights", .min_nd = 1, .max_nd = 1},
                  out = {.name = "out", .min_nd = 1, .max_nd = 1};
    PyObject *vo;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&O&:weighted_sum", kwlist, &vo, nr_conv_f64_in,
                                     &weights, nr_conv_f32_out, &out))
        return NULL;
    PyObject *result = NULL;
    /* rows of contiguous floats at any distance (a gathered message's dense parts) */
    PyArrayObject *v = PyArray_Check(vo) ? (PyArrayObject *)vo : NULL;
    if (!v || PyArray_TYPE(v) != NPY_FLOAT32 || PyArray_NDIM(v) != 2 || PyArray_ISBYTESWAPPED(v) ||
        !PyArray_ISALIGNED(v) || (PyArray_DIM(v, 1) > 1 && PyArray_STRIDE(v, 1) != 4) ||
        PyArray_STRIDE(v, 0) < 0 || PyArray_STRIDE(v, 0) % 4) {
        PyErr_SetString(PyExc_ValueError, "weighted_sum: values must be a float32 (senders, n) "
                                          "array whose rows are contiguous");
        goto done;
    }
    const int64_t senders = PyArray_DIM(v, 0), n = PyArray_DIM(v, 1);
    if (senders < 1 || senders > INT32_MAX || nr_arg_size(&weights) != senders ||
        nr_arg_size(&out) != n) {
        PyErr_SetString(PyExc_ValueError, "weighted_sum: needs values (senders >= 1, n), one "
                                          "weight per sender and out of n values");
        goto done;
    }
    weighted_sum(PyArray_DATA(v), PyArray_STRIDE(v, 0) / 4, (int)senders, nr_arg_data(&weights), n,
                 nr_arg_data(&out));
    result = Py_None;
    Py_INCREF(result);
done:
    NR_ARGS_RELEASE(&weights, &out);
    return result;
}

static PyMethodDef window_methods[] = {
    NR_PY_KW_METHOD(
        "weighted_sum", py_weighted_sum,
        "weighted_sum(values, weights, out): out[i] = sum_r weights[r] * values[r, "
        "i] for float32 values (senders, n; each row contiguous), in double and in sender "
        "order: the dense "
        "sum of a data-parallel exchange, the same bits on every rank and path."),
    {NULL, NULL, 0, NULL},
};

int nr_py_window_add_type(PyObject *m)
{
    if (PyType_Ready(&StepType) < 0 || PyModule_AddFunctions(m, window_methods) < 0)
        return -1;
    Py_INCREF(&StepType);
    if (PyModule_AddObject(m, "SharedStep", (PyObject *)&StepType) < 0) {
        Py_DECREF(&StepType);
        return -1;
    }
    return 0;
}
