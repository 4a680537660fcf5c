/*
 * _rank.c: the Python binding of neurec._rank (ranking metrics and top-K).
 *
 * Every function borrows NumPy arrays in place: arguments must already have
 * the exact dtype, native byte order and C-contiguous layout; otherwise a
 * TypeError (dtype) or ValueError (layout, shape) names the argument. The
 * Python wrappers in neurec/evaluation convert user input once before
 * calling here. The GIL is released around each whole computation; work is
 * split over n_threads threads by rows (nr_thread.h: POSIX or Win32).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <numpy/arrayobject.h>
#ifndef NPY_2_0_API_VERSION
#error "neurec must be compiled against NumPy >= 2.0 headers (pip install 'numpy>=2' in the build environment; the built module runs with NumPy >= 1.23)"
#endif

#include <math.h>
#include <stdint.h>

#include "neurec/nr_rank.h"
#include "neurec/nr_thread.h"
#include "neurec/nr_topk.h"

#define RK_MAX_THREADS 64

/* ---------------------------------------------------------------------------
 * Argument checking
 * ------------------------------------------------------------------------- */

/* Borrow obj as an ndarray of dtype typenum with ndim in [min_nd, max_nd],
 * C-contiguous, aligned, native byte order (writeable if asked). Returns NULL
 * with TypeError/ValueError set. None gives NULL with no error when
 * allow_none. */
static PyArrayObject *rk_array(PyObject *obj, const char *name, int typenum,
                               const char *dtype_name, int min_nd, int max_nd,
                               int writeable, int allow_none)
{
    if (obj == NULL || (allow_none && obj == Py_None))
        return NULL;
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy.ndarray of dtype %s, got %.200s",
                     name, dtype_name, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != typenum) {
        PyErr_Format(PyExc_TypeError, "%s must have dtype %s, got %R; convert it with "
                     "np.asarray(%s, dtype=np.%s)", name, dtype_name,
                     (PyObject *)PyArray_DESCR(a), name, dtype_name);
        return NULL;
    }
    const int nd = PyArray_NDIM(a);
    if (nd < min_nd || nd > max_nd) {
        if (min_nd == max_nd)
            PyErr_Format(PyExc_ValueError, "%s must be %d-dimensional, got %d dimensions",
                         name, min_nd, nd);
        else
            PyErr_Format(PyExc_ValueError, "%s must have %d to %d dimensions, got %d",
                         name, min_nd, max_nd, nd);
        return NULL;
    }
    if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || !PyArray_ISNOTSWAPPED(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be C-contiguous, aligned and in native byte "
                     "order; pass np.ascontiguousarray(%s, dtype=np.%s)", name, name, dtype_name);
        return NULL;
    }
    if (writeable && !PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s must be writeable", name);
        return NULL;
    }
    return a;
}

#define RK_F32(obj, name, lo, hi) rk_array(obj, name, NPY_FLOAT32, "float32", lo, hi, 0, 0)
#define RK_I64(obj, name) rk_array(obj, name, NPY_INT64, "int64", 1, 1, 0, 0)
#define RK_I32(obj, name) rk_array(obj, name, NPY_INT32, "int32", 1, 1, 0, 0)

/* indptr: n_rows + 1 non-decreasing offsets into an array of n_values. */
static int rk_check_indptr(PyArrayObject *indptr, const char *name, int64_t n_rows,
                           int64_t n_values, const char *values_name)
{
    const int64_t len = (int64_t)PyArray_DIM(indptr, 0);
    if (n_rows >= 0 && len != n_rows + 1) {
        PyErr_Format(PyExc_ValueError, "%s must have %lld entries (one more than the number "
                     "of rows), got %lld", name, (long long)(n_rows + 1), (long long)len);
        return -1;
    }
    if (len < 1) {
        PyErr_Format(PyExc_ValueError, "%s must have at least one entry", name);
        return -1;
    }
    const int64_t *p = PyArray_DATA(indptr);
    if (p[0] < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not hold negative offsets", name);
        return -1;
    }
    for (int64_t i = 1; i < len; i++) {
        if (p[i] < p[i - 1]) {
            PyErr_Format(PyExc_ValueError, "%s must be non-decreasing (entry %lld is smaller "
                         "than entry %lld)", name, (long long)i, (long long)(i - 1));
            return -1;
        }
    }
    if (p[len - 1] > n_values) {
        PyErr_Format(PyExc_ValueError, "%s ends at %lld but %s has only %lld entries", name,
                     (long long)p[len - 1], values_name, (long long)n_values);
        return -1;
    }
    return 0;
}

/* Optional exclusion CSR plus row -> CSR-row map. */
static int rk_check_exclusion(PyObject *indptr_o, PyObject *indices_o, PyObject *users_o,
                              int64_t n_rows, PyArrayObject **indptr,
                              PyArrayObject **indices, PyArrayObject **users)
{
    *indptr = *indices = *users = NULL;
    if ((indptr_o == NULL || indptr_o == Py_None) != (indices_o == NULL || indices_o == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "indptr and indices must be given together (a CSR "
                        "matrix of excluded items) or both left as None");
        return -1;
    }
    if (indptr_o != NULL && indptr_o != Py_None) {
        if (!(*indptr = RK_I64(indptr_o, "indptr")) || !(*indices = RK_I32(indices_o, "indices")))
            return -1;
        if (rk_check_indptr(*indptr, "indptr", -1, (int64_t)PyArray_DIM(*indices, 0), "indices"))
            return -1;
    }
    if (users_o != NULL && users_o != Py_None) {
        if (!(*users = RK_I64(users_o, "row_users")))
            return -1;
        if (n_rows >= 0 && (int64_t)PyArray_DIM(*users, 0) != n_rows) {
            PyErr_Format(PyExc_ValueError, "row_users has %lld entries but there are %lld score "
                         "rows", (long long)PyArray_DIM(*users, 0), (long long)n_rows);
            return -1;
        }
        if (*indptr != NULL) {
            const int64_t n_csr = (int64_t)PyArray_DIM(*indptr, 0) - 1;
            const int64_t *u = PyArray_DATA(*users);
            for (npy_intp i = 0; i < PyArray_DIM(*users, 0); i++) {
                if (u[i] < 0 || u[i] >= n_csr) {
                    PyErr_Format(PyExc_ValueError, "row_users[%lld] = %lld is outside the "
                                 "exclusion matrix rows [0, %lld)", (long long)i,
                                 (long long)u[i], (long long)n_csr);
                    return -1;
                }
            }
        }
    } else if (*indptr != NULL && n_rows > (int64_t)PyArray_DIM(*indptr, 0) - 1) {
        PyErr_Format(PyExc_ValueError, "there are %lld score rows but the exclusion matrix has "
                     "only %lld rows; pass row_users", (long long)n_rows,
                     (long long)(PyArray_DIM(*indptr, 0) - 1));
        return -1;
    }
    return 0;
}

static PyObject *rk_raise(enum nr_status st, const char *what)
{
    switch (st) {
    case NR_OK:
        break;
    case NR_ERR_NOMEM:
        return PyErr_NoMemory();
    case NR_ERR_INDEX:
        PyErr_Format(PyExc_ValueError, "%s: an id is out of range", what);
        return NULL;
    default:
        PyErr_Format(PyExc_ValueError, "%s: invalid argument value", what);
        return NULL;
    }
    PyErr_SetString(PyExc_SystemError, "rk_raise called with NR_OK");
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Threads: split [0, n) into n_threads contiguous blocks. If a thread cannot
 * be started, the caller runs its block itself.
 * ------------------------------------------------------------------------- */

typedef enum nr_status (*rk_job_fn)(void *ctx, int64_t begin, int64_t end);

struct rk_job {
    rk_job_fn fn;
    void *ctx;
    int64_t begin, end;
    enum nr_status st;
};

static void *rk_job_main(void *arg)
{
    struct rk_job *j = arg;
    j->st = j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

static enum nr_status rk_parallel(rk_job_fn fn, void *ctx, int64_t n, int n_threads)
{
    if (n_threads > RK_MAX_THREADS)
        n_threads = RK_MAX_THREADS;
    if ((int64_t)n_threads > n)
        n_threads = (int)n;
    if (n_threads <= 1)
        return fn(ctx, 0, n);

    struct rk_job jobs[RK_MAX_THREADS];
    nr_thread_t th[RK_MAX_THREADS];
    int started[RK_MAX_THREADS] = {0};
    for (int t = 0; t < n_threads; t++)
        jobs[t] = (struct rk_job){fn, ctx, n * t / n_threads, n * (t + 1) / n_threads, NR_OK};
    for (int t = 1; t < n_threads; t++)
        started[t] = nr_thread_create(&th[t], rk_job_main, &jobs[t]) == 0;
    rk_job_main(&jobs[0]);
    for (int t = 1; t < n_threads; t++) {
        if (started[t])
            nr_thread_join(th[t]);
        else
            rk_job_main(&jobs[t]);
    }
    for (int t = 0; t < n_threads; t++)
        if (jobs[t].st != NR_OK)
            return jobs[t].st;
    return NR_OK;
}

/* Spread rows over threads only when there is enough work to pay for them. */
static int rk_threads_for(int n_threads, int64_t n_rows, int64_t work_per_row)
{
    if (n_threads < 1)
        return 1;
    const int64_t total = n_rows * (work_per_row > 0 ? work_per_row : 1);
    if (total < (int64_t)1 << 16)
        return 1;
    return n_threads;
}

/* ---------------------------------------------------------------------------
 * topk_rows
 * ------------------------------------------------------------------------- */

struct rk_topk_ctx {
    const float *scores;
    int64_t n_cols, stride, k, n_csr;
    const int64_t *indptr, *users;
    const int32_t *indices;
    int64_t *ids;
    float *out;
};

static enum nr_status rk_topk_job(void *arg, int64_t b, int64_t e)
{
    const struct rk_topk_ctx *c = arg;
    return nr_topk_rows(c->scores + b * c->stride, e - b, c->n_cols, c->stride, c->k, c->indptr,
                        c->indices, c->n_csr, c->users ? c->users + b : NULL, c->ids + b * c->k,
                        c->out + b * c->k);
}

PyDoc_STRVAR(rk_topk_rows_doc,
"topk_rows(scores, k, indptr=None, indices=None, row_users=None, n_threads=1)\n--\n\n"
"Top-k item ids and scores of every row of a float32 score matrix.\n\n"
"scores: (n_rows, n_items) float32, or (n_items,) float32 shared by all rows\n"
"(n_rows = len(row_users), or 1). indptr (int64) / indices (int32, ascending per\n"
"row): a CSR matrix of items to skip; row r uses CSR row row_users[r] (int64) or r.\n"
"NaN scores are skipped. Returns (ids int64 (n_rows, k), scores float32 (n_rows, k)),\n"
"best first, equal scores by ascending id; missing entries are id -1, score -inf.");

static PyObject *rk_topk_rows(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"scores", "k", "indptr", "indices", "row_users", "n_threads", NULL};
    PyObject *scores_o, *indptr_o = Py_None, *indices_o = Py_None, *users_o = Py_None;
    Py_ssize_t k;
    int n_threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On|OOOi:topk_rows", kwlist, &scores_o, &k,
                                     &indptr_o, &indices_o, &users_o, &n_threads))
        return NULL;
    if (k < 1)
        return PyErr_Format(PyExc_ValueError, "k must be a positive integer, got %zd", k);
    PyArrayObject *scores = RK_F32(scores_o, "scores", 1, 2);
    if (scores == NULL)
        return NULL;

    int64_t n_rows, n_cols, stride;
    if (PyArray_NDIM(scores) == 2) {
        n_rows = (int64_t)PyArray_DIM(scores, 0);
        n_cols = stride = (int64_t)PyArray_DIM(scores, 1);
    } else {
        n_cols = (int64_t)PyArray_DIM(scores, 0);
        stride = 0;
        n_rows = -1; /* from row_users */
    }
    PyArrayObject *indptr, *indices, *users;
    if (rk_check_exclusion(indptr_o, indices_o, users_o, n_rows, &indptr, &indices, &users))
        return NULL;
    if (n_rows < 0)
        n_rows = users ? (int64_t)PyArray_DIM(users, 0) : 1;

    npy_intp dims[2] = {(npy_intp)n_rows, (npy_intp)k};
    PyObject *ids = PyArray_SimpleNew(2, dims, NPY_INT64);
    PyObject *out = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (ids == NULL || out == NULL)
        goto error;

    struct rk_topk_ctx c = {
        .scores = PyArray_DATA(scores), .n_cols = n_cols, .stride = stride, .k = (int64_t)k,
        .n_csr = indptr ? (int64_t)PyArray_DIM(indptr, 0) - 1 : 0,
        .indptr = indptr ? PyArray_DATA(indptr) : NULL,
        .indices = indices ? PyArray_DATA(indices) : NULL,
        .users = users ? PyArray_DATA(users) : NULL,
        .ids = PyArray_DATA((PyArrayObject *)ids), .out = PyArray_DATA((PyArrayObject *)out),
    };
    enum nr_status st;
    const int nt = rk_threads_for(n_threads, n_rows, n_cols);
    Py_BEGIN_ALLOW_THREADS
    st = rk_parallel(rk_topk_job, &c, n_rows, nt);
    Py_END_ALLOW_THREADS
    if (st != NR_OK) {
        rk_raise(st, "topk_rows");
        goto error;
    }
    return Py_BuildValue("(NN)", ids, out);

error:
    Py_XDECREF(ids);
    Py_XDECREF(out);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * count_sampled
 * ------------------------------------------------------------------------- */

struct rk_sampled_ctx {
    const float *pos, *neg;
    int64_t n_neg;
    int64_t *ranks;
    double *auc;
};

static enum nr_status rk_sampled_job(void *arg, int64_t b, int64_t e)
{
    const struct rk_sampled_ctx *c = arg;
    return nr_rank_count_sampled(c->pos + b, c->neg + b * c->n_neg, e - b, c->n_neg,
                                 c->ranks + b, c->auc + b);
}

PyDoc_STRVAR(rk_count_sampled_doc,
"count_sampled(pos_scores, neg_scores, n_threads=1)\n--\n\n"
"Rank of each positive among its sampled negatives.\n\n"
"pos_scores: (n,) float32; neg_scores: (n, n_neg) float32. Returns (ranks int64 (n,),\n"
"auc float64 (n,)): ranks count negatives scored strictly higher; auc is the share\n"
"of negatives scored below (ties 1/2). A NaN positive ranks last (AUC 0).");

static PyObject *rk_count_sampled(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"pos_scores", "neg_scores", "n_threads", NULL};
    PyObject *pos_o, *neg_o;
    int n_threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|i:count_sampled", kwlist, &pos_o, &neg_o,
                                     &n_threads))
        return NULL;
    PyArrayObject *pos = RK_F32(pos_o, "pos_scores", 1, 1);
    if (pos == NULL)
        return NULL;
    PyArrayObject *neg = RK_F32(neg_o, "neg_scores", 2, 2);
    if (neg == NULL)
        return NULL;
    const int64_t n = (int64_t)PyArray_DIM(pos, 0);
    if ((int64_t)PyArray_DIM(neg, 0) != n)
        return PyErr_Format(PyExc_ValueError, "neg_scores has %lld rows but pos_scores has %lld "
                            "entries; they must match (one row of negatives per positive)",
                            (long long)PyArray_DIM(neg, 0), (long long)n);

    npy_intp dims[1] = {(npy_intp)n};
    PyObject *ranks = PyArray_SimpleNew(1, dims, NPY_INT64);
    PyObject *auc = PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    if (ranks == NULL || auc == NULL)
        goto error;
    struct rk_sampled_ctx c = {
        .pos = PyArray_DATA(pos), .neg = PyArray_DATA(neg), .n_neg = (int64_t)PyArray_DIM(neg, 1),
        .ranks = PyArray_DATA((PyArrayObject *)ranks), .auc = PyArray_DATA((PyArrayObject *)auc),
    };
    enum nr_status st;
    const int nt = rk_threads_for(n_threads, n, c.n_neg);
    Py_BEGIN_ALLOW_THREADS
    st = rk_parallel(rk_sampled_job, &c, n, nt);
    Py_END_ALLOW_THREADS
    if (st != NR_OK) {
        rk_raise(st, "count_sampled");
        goto error;
    }
    return Py_BuildValue("(NN)", ranks, auc);

error:
    Py_XDECREF(ranks);
    Py_XDECREF(auc);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * count_full
 * ------------------------------------------------------------------------- */

struct rk_full_ctx {
    const float *scores;
    int64_t n_items, n_csr;
    const int64_t *pos_indptr, *indptr, *users;
    const int32_t *pos_indices, *indices;
    int64_t *above;
    double *auc;
};

static enum nr_status rk_full_job(void *arg, int64_t b, int64_t e)
{
    const struct rk_full_ctx *c = arg;
    return nr_rank_count_full(c->scores + b * c->n_items, e - b, c->n_items, c->pos_indptr + b,
                              c->pos_indices, c->indptr, c->indices, c->n_csr,
                              c->users ? c->users + b : NULL, c->above, c->auc);
}

PyDoc_STRVAR(rk_count_full_doc,
"count_full(scores, pos_indptr, pos_indices, out_above, out_auc=None, indptr=None,\n"
"           indices=None, row_users=None, n_threads=1)\n--\n\n"
"Rank every positive among all non-excluded items of its row.\n\n"
"scores: (n_rows, n_items) float32. pos_indptr: (n_rows + 1,) int64 offsets into\n"
"pos_indices (int32, strictly ascending per row; may start past 0). indptr/indices:\n"
"optional CSR of excluded items, row r uses CSR row row_users[r] or r. Writes\n"
"out_above (int64) and out_auc (float64), indexed like pos_indices. Returns None.");

static PyObject *rk_count_full(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"scores", "pos_indptr", "pos_indices", "out_above", "out_auc",
                             "indptr", "indices", "row_users", "n_threads", NULL};
    PyObject *scores_o, *pip_o, *piv_o, *above_o, *auc_o = Py_None;
    PyObject *indptr_o = Py_None, *indices_o = Py_None, *users_o = Py_None;
    int n_threads = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOO|OOOOi:count_full", kwlist, &scores_o,
                                     &pip_o, &piv_o, &above_o, &auc_o, &indptr_o, &indices_o,
                                     &users_o, &n_threads))
        return NULL;
    PyArrayObject *scores = RK_F32(scores_o, "scores", 2, 2);
    if (scores == NULL)
        return NULL;
    const int64_t n_rows = (int64_t)PyArray_DIM(scores, 0);
    PyArrayObject *pip = RK_I64(pip_o, "pos_indptr");
    if (pip == NULL)
        return NULL;
    PyArrayObject *piv = RK_I32(piv_o, "pos_indices");
    if (piv == NULL)
        return NULL;
    const int64_t n_pos = (int64_t)PyArray_DIM(piv, 0);
    if (rk_check_indptr(pip, "pos_indptr", n_rows, n_pos, "pos_indices"))
        return NULL;
    PyArrayObject *above = rk_array(above_o, "out_above", NPY_INT64, "int64", 1, 1, 1, 0);
    if (above == NULL)
        return NULL;
    PyArrayObject *auc = rk_array(auc_o, "out_auc", NPY_FLOAT64, "float64", 1, 1, 1, 1);
    if (auc == NULL && PyErr_Occurred())
        return NULL;
    if ((int64_t)PyArray_DIM(above, 0) != n_pos ||
        (auc != NULL && (int64_t)PyArray_DIM(auc, 0) != n_pos))
        return PyErr_Format(PyExc_ValueError, "out_above and out_auc must have one entry per "
                            "positive (%lld, like pos_indices)", (long long)n_pos);
    PyArrayObject *indptr, *indices, *users;
    if (rk_check_exclusion(indptr_o, indices_o, users_o, n_rows, &indptr, &indices, &users))
        return NULL;

    struct rk_full_ctx c = {
        .scores = PyArray_DATA(scores), .n_items = (int64_t)PyArray_DIM(scores, 1),
        .n_csr = indptr ? (int64_t)PyArray_DIM(indptr, 0) - 1 : 0,
        .pos_indptr = PyArray_DATA(pip), .pos_indices = PyArray_DATA(piv),
        .indptr = indptr ? PyArray_DATA(indptr) : NULL,
        .indices = indices ? PyArray_DATA(indices) : NULL,
        .users = users ? PyArray_DATA(users) : NULL,
        .above = PyArray_DATA(above), .auc = auc ? PyArray_DATA(auc) : NULL,
    };
    enum nr_status st;
    const int nt = rk_threads_for(n_threads, n_rows, c.n_items);
    Py_BEGIN_ALLOW_THREADS
    st = rk_parallel(rk_full_job, &c, n_rows, nt);
    Py_END_ALLOW_THREADS
    if (st == NR_ERR_INDEX || st == NR_ERR_VALUE)
        return PyErr_Format(PyExc_ValueError, "pos_indices must hold strictly ascending item "
                            "ids in [0, %lld) within each row", (long long)c.n_items);
    if (st != NR_OK)
        return rk_raise(st, "count_full");
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------------------
 * score
 * ------------------------------------------------------------------------- */

PyDoc_STRVAR(rk_score_doc,
"score(above, k, indptr=None, auc=None)\n--\n\n"
"Ranking metrics from ranks.\n\n"
"above: int64 ranks (negatives strictly above each positive). indptr (int64,\n"
"n_users + 1) groups several positives per user; None means one per user. auc:\n"
"optional float64 per positive. Returns (means, per_user): dicts keyed 'hr', 'ndcg',\n"
"'mrr', 'precision', 'recall', 'map', 'auc' (means also has 'n_users'); per-user\n"
"values are float64 arrays, NaN for users without positives.");

static PyObject *rk_score(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"above", "k", "indptr", "auc", NULL};
    PyObject *above_o, *indptr_o = Py_None, *auc_o = Py_None;
    Py_ssize_t k;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On|OO:score", kwlist, &above_o, &k, &indptr_o,
                                     &auc_o))
        return NULL;
    if (k < 1)
        return PyErr_Format(PyExc_ValueError, "k must be a positive integer, got %zd", k);
    PyArrayObject *above = RK_I64(above_o, "above");
    if (above == NULL)
        return NULL;
    const int64_t n_pos = (int64_t)PyArray_DIM(above, 0);
    PyArrayObject *indptr = rk_array(indptr_o, "indptr", NPY_INT64, "int64", 1, 1, 0, 1);
    if (indptr == NULL && PyErr_Occurred())
        return NULL;
    if (indptr != NULL && rk_check_indptr(indptr, "indptr", -1, n_pos, "above"))
        return NULL;
    PyArrayObject *auc = rk_array(auc_o, "auc", NPY_FLOAT64, "float64", 1, 1, 0, 1);
    if (auc == NULL && PyErr_Occurred())
        return NULL;
    if (auc != NULL && (int64_t)PyArray_DIM(auc, 0) != n_pos)
        return PyErr_Format(PyExc_ValueError, "auc has %lld entries but above has %lld; they "
                            "must match", (long long)PyArray_DIM(auc, 0), (long long)n_pos);
    const int64_t n_users = indptr ? (int64_t)PyArray_DIM(indptr, 0) - 1 : n_pos;

    static const char *names[7] = {"hr", "ndcg", "mrr", "precision", "recall", "map", "auc"};
    PyObject *arrs[7] = {NULL};
    PyObject *per_user = NULL, *means_d = NULL;
    npy_intp dims[1] = {(npy_intp)n_users};
    for (int i = 0; i < 7; i++)
        if ((arrs[i] = PyArray_SimpleNew(1, dims, NPY_FLOAT64)) == NULL)
            goto error;
#define RK_D(i) ((double *)PyArray_DATA((PyArrayObject *)arrs[i]))
    struct nr_rank_per_user pu = {RK_D(0), RK_D(1), RK_D(2), RK_D(3), RK_D(4), RK_D(5), RK_D(6)};
#undef RK_D
    struct nr_rank_means m;
    enum nr_status st;
    const int64_t *ip = indptr ? PyArray_DATA(indptr) : NULL;
    const int64_t *ab = PyArray_DATA(above);
    const double *au = auc ? PyArray_DATA(auc) : NULL;
    Py_BEGIN_ALLOW_THREADS
    st = nr_rank_score(ip, ab, au, n_users, (int64_t)k, &pu, &m);
    Py_END_ALLOW_THREADS
    if (st == NR_ERR_VALUE) {
        PyErr_SetString(PyExc_ValueError, "above must hold non-negative ranks");
        goto error;
    }
    if (st != NR_OK) {
        rk_raise(st, "score");
        goto error;
    }
    means_d = Py_BuildValue("{sdsdsdsdsdsdsdsL}", "hr", m.hr, "ndcg", m.ndcg, "mrr", m.mrr,
                            "precision", m.precision, "recall", m.recall, "map", m.map,
                            "auc", m.auc, "n_users", (long long)m.n_users);
    if (means_d == NULL || (per_user = PyDict_New()) == NULL)
        goto error;
    for (int i = 0; i < 7; i++)
        if (PyDict_SetItemString(per_user, names[i], arrs[i]) < 0)
            goto error;
    for (int i = 0; i < 7; i++)
        Py_DECREF(arrs[i]);
    return Py_BuildValue("(NN)", means_d, per_user);

error:
    for (int i = 0; i < 7; i++)
        Py_XDECREF(arrs[i]);
    Py_XDECREF(per_user);
    Py_XDECREF(means_d);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Module
 * ------------------------------------------------------------------------- */

static PyMethodDef rk_methods[] = {
    {"topk_rows", (PyCFunction)(void (*)(void))rk_topk_rows, METH_VARARGS | METH_KEYWORDS,
     rk_topk_rows_doc},
    {"count_sampled", (PyCFunction)(void (*)(void))rk_count_sampled, METH_VARARGS | METH_KEYWORDS,
     rk_count_sampled_doc},
    {"count_full", (PyCFunction)(void (*)(void))rk_count_full, METH_VARARGS | METH_KEYWORDS,
     rk_count_full_doc},
    {"score", (PyCFunction)(void (*)(void))rk_score, METH_VARARGS | METH_KEYWORDS, rk_score_doc},
    {NULL, NULL, 0, NULL},
};

static int rk_exec(PyObject *module)
{
    (void)module;
    import_array1(-1);
    return 0;
}

static PyModuleDef_Slot rk_slots[] = {
    {Py_mod_exec, (void *)rk_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef rk_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neurec._rank",
    .m_doc = "Ranking metrics and top-K selection (C core of neurec.evaluation).",
    .m_size = 0,
    .m_methods = rk_methods,
    .m_slots = rk_slots,
};

PyMODINIT_FUNC PyInit__rank(void)
{
    return PyModuleDef_Init(&rk_module);
}
