/*
 * _rank.c: bindings of the ranking metrics and top-K selection (nr_rank.h,
 * nr_topk.h), the C side of neurec.evaluation.
 *
 * Arguments are borrowed in place through the converters of convert.h; the
 * Python wrappers in neurec/evaluation convert user input once before calling
 * here. Work is split by rows over the threads of a borrowed pool (at most
 * n_threads; 0, the default: all of them) with the GIL released
 * (nr_py_run_rows); small inputs run on the calling thread alone.
 */
#include "module.h"
#include "pools.h"

#include "neurec/nr_rank.h"
#include "neurec/nr_topk.h"

/* ---------------------------------------------------------------------------
 * Argument checks beyond the converters
 * ------------------------------------------------------------------------- */

/* indptr: n_rows + 1 (n_rows < 0: any number of) non-decreasing offsets into
 * an array of n_values. */
static int rk_check_indptr(const struct nr_arg *indptr, int64_t n_rows, int64_t n_values,
                           const char *values_name)
{
    const char *name = indptr->name;
    const int64_t len = nr_arg_size(indptr);
    if (n_rows >= 0 && len != n_rows + 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s must have %lld entries (one more than the number "
                     "of rows), got %lld",
                     name, (long long)(n_rows + 1), (long long)len);
        return -1;
    }
    if (len < 1) {
        PyErr_Format(PyExc_ValueError, "%s must have at least one entry", name);
        return -1;
    }
    const int64_t *p = nr_arg_data(indptr);
    if (p[0] < 0) {
        PyErr_Format(PyExc_ValueError, "%s must not hold negative offsets", name);
        return -1;
    }
    for (int64_t i = 1; i < len; i++) {
        if (p[i] < p[i - 1]) {
            PyErr_Format(PyExc_ValueError,
                         "%s must be non-decreasing (entry %lld is smaller "
                         "than entry %lld)",
                         name, (long long)i, (long long)(i - 1));
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

/* The optional exclusion CSR (indptr, indices) and the row -> CSR-row map
 * (users) for n_rows score rows (n_rows < 0: as many as users has). */
static int rk_check_exclusion(const struct nr_arg *indptr, const struct nr_arg *indices,
                              const struct nr_arg *users, int64_t n_rows)
{
    if (!indptr->array != !indices->array) {
        PyErr_SetString(PyExc_ValueError, "indptr and indices must be given together (a CSR "
                                          "matrix of excluded items) or both left as None");
        return -1;
    }
    if (indptr->array && rk_check_indptr(indptr, -1, nr_arg_size(indices), indices->name))
        return -1;
    const int64_t n_csr = nr_arg_size(indptr) - 1;
    if (users->array) {
        const int64_t n_users = nr_arg_size(users);
        if (n_rows >= 0 && n_users != n_rows) {
            PyErr_Format(PyExc_ValueError,
                         "row_users has %lld entries but there are %lld score "
                         "rows",
                         (long long)n_users, (long long)n_rows);
            return -1;
        }
        const int64_t *u = nr_arg_data(users);
        for (int64_t i = 0; indptr->array && i < n_users; i++) {
            if (u[i] < 0 || u[i] >= n_csr) {
                PyErr_Format(PyExc_IndexError,
                             "row_users[%lld] = %lld is outside the "
                             "exclusion matrix rows [0, %lld)",
                             (long long)i, (long long)u[i], (long long)n_csr);
                return -1;
            }
        }
    } else if (indptr->array && n_rows > n_csr) {
        PyErr_Format(PyExc_ValueError,
                     "there are %lld score rows but the exclusion matrix has "
                     "only %lld rows; pass row_users",
                     (long long)n_rows, (long long)n_csr);
        return -1;
    }
    return 0;
}

/* Spread rows over threads only when there is enough work to pay for them. */
static int rk_threads_for(int n_threads, int64_t n_rows, int64_t work_per_row)
{
    const int64_t total = n_rows * (work_per_row > 0 ? work_per_row : 1);
    if (total < (int64_t)1 << 16)
        return 1;
    return n_threads > 0 ? n_threads : NR_PY_MAX_THREADS; /* capped by the pool's size */
}

/* Run fn over n rows of work_per_row each (threads as rk_threads_for), then
 * return the tuple (a, b) of the arrays it wrote, or NULL with the exception of
 * the status for the call `what`. Borrows a and b. */
static PyObject *rk_run_pair(nr_py_rows_fn fn, void *ctx, int64_t n, int n_threads,
                             int64_t work_per_row, const char *what, PyObject *a, PyObject *b)
{
    enum nr_status st = nr_py_run_rows(fn, ctx, n, rk_threads_for(n_threads, n, work_per_row));
    if (nr_py_raise(st, what) < 0)
        return NULL;
    return Py_BuildValue("(OO)", a, b);
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

PyDoc_STRVAR(
    rk_topk_rows_doc,
    "topk_rows(scores, k, indptr=None, indices=None, row_users=None, n_threads=0)\n--\n\n"
    "Top-k item ids and scores of every row of a float32 score matrix.\n\n"
    "scores: (n_rows, n_items) float32, or (n_items,) float32 shared by all rows\n"
    "(n_rows = len(row_users), or 1). indptr (int64) / indices (int32, ascending per\n"
    "row): a CSR matrix of items to skip; row r uses CSR row row_users[r] (int64) or r.\n"
    "NaN scores are skipped. Returns (ids int64 (n_rows, k), scores float32 (n_rows, k)),\n"
    "best first, equal scores by ascending id; missing entries are id -1, score -inf.\n"
    "n_threads: at most this many threads of the pool (0: all).");

static PyObject *rk_topk_rows(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"scores", "k", "indptr", "indices", "row_users", "n_threads", NULL};
    struct nr_arg scores = {.name = "scores", .min_nd = 1, .max_nd = 2};
    struct nr_arg indptr = {.name = "indptr", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg indices = {.name = "indices", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg users = {.name = "row_users", .min_nd = 1, .max_nd = 1, .optional = 1};
    Py_ssize_t k;
    int n_threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&n|O&O&O&i:topk_rows", kwlist, nr_conv_f32_in,
                                     &scores, &k, nr_conv_i64_in, &indptr, nr_conv_i32_in, &indices,
                                     nr_conv_i64_in, &users, &n_threads))
        return NULL;
    PyObject *ids = NULL, *out = NULL, *result = NULL;
    if (k < 1) {
        PyErr_Format(PyExc_ValueError, "k must be a positive integer, got %zd", k);
        goto done;
    }
    int64_t n_rows, n_cols, stride;
    if (PyArray_NDIM(scores.array) == 2) {
        n_rows = nr_arg_dim(&scores, 0);
        n_cols = stride = nr_arg_dim(&scores, 1);
    } else {
        n_cols = nr_arg_dim(&scores, 0);
        stride = 0;
        n_rows = -1; /* from row_users */
    }
    if (rk_check_exclusion(&indptr, &indices, &users, n_rows) < 0)
        goto done;
    if (n_rows < 0)
        n_rows = users.array ? nr_arg_size(&users) : 1;

    npy_intp dims[2] = {(npy_intp)n_rows, (npy_intp)k};
    ids = PyArray_SimpleNew(2, dims, NPY_INT64);
    out = PyArray_SimpleNew(2, dims, NPY_FLOAT32);
    if (ids == NULL || out == NULL)
        goto done;
    struct rk_topk_ctx c = {
        .scores = nr_arg_data(&scores),
        .n_cols = n_cols,
        .stride = stride,
        .k = (int64_t)k,
        .n_csr = indptr.array ? nr_arg_size(&indptr) - 1 : 0,
        .indptr = nr_arg_data(&indptr),
        .indices = nr_arg_data(&indices),
        .users = nr_arg_data(&users),
        .ids = PyArray_DATA((PyArrayObject *)ids),
        .out = PyArray_DATA((PyArrayObject *)out),
    };
    result = rk_run_pair(rk_topk_job, &c, n_rows, n_threads, n_cols, "topk_rows", ids, out);
done:
    Py_XDECREF(ids);
    Py_XDECREF(out);
    NR_ARGS_RELEASE(&scores, &indptr, &indices, &users);
    return result;
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
    return nr_rank_count_sampled(c->pos + b, c->neg + b * c->n_neg, e - b, c->n_neg, c->ranks + b,
                                 c->auc + b);
}

PyDoc_STRVAR(
    rk_count_sampled_doc,
    "count_sampled(pos_scores, neg_scores, n_threads=0)\n--\n\n"
    "Rank of each positive among its sampled negatives.\n\n"
    "pos_scores: (n,) float32; neg_scores: (n, n_neg) float32. Returns (ranks int64 (n,),\n"
    "auc float64 (n,)): ranks count negatives scored strictly higher; auc is the share\n"
    "of negatives scored below (ties 1/2). A NaN positive ranks last (AUC 0).");

static PyObject *rk_count_sampled(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"pos_scores", "neg_scores", "n_threads", NULL};
    struct nr_arg pos = {.name = "pos_scores", .min_nd = 1, .max_nd = 1};
    struct nr_arg neg = {.name = "neg_scores", .min_nd = 2, .max_nd = 2};
    int n_threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&|i:count_sampled", kwlist, nr_conv_f32_in,
                                     &pos, nr_conv_f32_in, &neg, &n_threads))
        return NULL;
    PyObject *ranks = NULL, *auc = NULL, *result = NULL;
    const int64_t n = nr_arg_size(&pos);
    if (nr_arg_dim(&neg, 0) != n) {
        PyErr_Format(PyExc_ValueError,
                     "neg_scores has %lld rows but pos_scores has %lld "
                     "entries; they must match (one row of negatives per positive)",
                     (long long)nr_arg_dim(&neg, 0), (long long)n);
        goto done;
    }
    npy_intp dims[1] = {(npy_intp)n};
    ranks = PyArray_SimpleNew(1, dims, NPY_INT64);
    auc = PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    if (ranks == NULL || auc == NULL)
        goto done;
    struct rk_sampled_ctx c = {
        .pos = nr_arg_data(&pos),
        .neg = nr_arg_data(&neg),
        .n_neg = nr_arg_dim(&neg, 1),
        .ranks = PyArray_DATA((PyArrayObject *)ranks),
        .auc = PyArray_DATA((PyArrayObject *)auc),
    };
    result = rk_run_pair(rk_sampled_job, &c, n, n_threads, c.n_neg, "count_sampled", ranks, auc);
done:
    Py_XDECREF(ranks);
    Py_XDECREF(auc);
    NR_ARGS_RELEASE(&pos, &neg);
    return result;
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
             "           indices=None, row_users=None, n_threads=0)\n--\n\n"
             "Rank every positive among all non-excluded items of its row.\n\n"
             "scores: (n_rows, n_items) float32. pos_indptr: (n_rows + 1,) int64 offsets into\n"
             "pos_indices (int32, strictly ascending per row; may start past 0). indptr/indices:\n"
             "optional CSR of excluded items, row r uses CSR row row_users[r] or r. Writes\n"
             "out_above (int64) and out_auc (float64), indexed like pos_indices. Returns None.");

static PyObject *rk_count_full(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"scores", "pos_indptr", "pos_indices", "out_above", "out_auc",
                             "indptr", "indices",    "row_users",   "n_threads", NULL};
    struct nr_arg scores = {.name = "scores", .min_nd = 2, .max_nd = 2};
    struct nr_arg pip = {.name = "pos_indptr", .min_nd = 1, .max_nd = 1};
    struct nr_arg piv = {.name = "pos_indices", .min_nd = 1, .max_nd = 1};
    struct nr_arg above = {.name = "out_above", .min_nd = 1, .max_nd = 1};
    struct nr_arg auc = {.name = "out_auc", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg indptr = {.name = "indptr", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg indices = {.name = "indices", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg users = {.name = "row_users", .min_nd = 1, .max_nd = 1, .optional = 1};
    int n_threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&O&O&O&|O&O&O&O&i:count_full", kwlist,
                                     nr_conv_f32_in, &scores, nr_conv_i64_in, &pip, nr_conv_i32_in,
                                     &piv, nr_conv_i64_out, &above, nr_conv_f64_out, &auc,
                                     nr_conv_i64_in, &indptr, nr_conv_i32_in, &indices,
                                     nr_conv_i64_in, &users, &n_threads))
        return NULL;
    PyObject *result = NULL;
    const int64_t n_rows = nr_arg_dim(&scores, 0), n_pos = nr_arg_size(&piv);
    if (rk_check_indptr(&pip, n_rows, n_pos, piv.name) < 0)
        goto done;
    if (nr_arg_size(&above) != n_pos || (auc.array && nr_arg_size(&auc) != n_pos)) {
        PyErr_Format(PyExc_ValueError,
                     "out_above and out_auc must have one entry per "
                     "positive (%lld, like pos_indices)",
                     (long long)n_pos);
        goto done;
    }
    if (rk_check_exclusion(&indptr, &indices, &users, n_rows) < 0)
        goto done;
    struct rk_full_ctx c = {
        .scores = nr_arg_data(&scores),
        .n_items = nr_arg_dim(&scores, 1),
        .n_csr = indptr.array ? nr_arg_size(&indptr) - 1 : 0,
        .pos_indptr = nr_arg_data(&pip),
        .pos_indices = nr_arg_data(&piv),
        .indptr = nr_arg_data(&indptr),
        .indices = nr_arg_data(&indices),
        .users = nr_arg_data(&users),
        .above = nr_arg_data(&above),
        .auc = nr_arg_data(&auc),
    };
    enum nr_status st =
        nr_py_run_rows(rk_full_job, &c, n_rows, rk_threads_for(n_threads, n_rows, c.n_items));
    if (st == NR_ERR_INDEX) {
        PyErr_Format(PyExc_IndexError, "pos_indices: an item id is outside [0, %lld)",
                     (long long)c.n_items);
        goto done;
    }
    result = nr_py_none_or_raise(st, "count_full",
                                 "pos_indices must hold strictly ascending item ids "
                                 "within each row");
done:
    NR_ARGS_RELEASE(&scores, &pip, &piv, &above, &auc, &indptr, &indices, &users);
    return result;
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
    struct nr_arg above = {.name = "above", .min_nd = 1, .max_nd = 1};
    struct nr_arg indptr = {.name = "indptr", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg auc = {.name = "auc", .min_nd = 1, .max_nd = 1, .optional = 1};
    Py_ssize_t k;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O&n|O&O&:score", kwlist, nr_conv_i64_in, &above,
                                     &k, nr_conv_i64_in, &indptr, nr_conv_f64_in, &auc))
        return NULL;
    static const char *names[7] = {"hr", "ndcg", "mrr", "precision", "recall", "map", "auc"};
    PyObject *arrs[7] = {NULL};
    PyObject *per_user = NULL, *means_d = NULL, *result = NULL;
    const int64_t n_pos = nr_arg_size(&above);
    if (k < 1) {
        PyErr_Format(PyExc_ValueError, "k must be a positive integer, got %zd", k);
        goto done;
    }
    if (indptr.array && rk_check_indptr(&indptr, -1, n_pos, above.name) < 0)
        goto done;
    if (auc.array && nr_arg_size(&auc) != n_pos) {
        PyErr_Format(PyExc_ValueError,
                     "auc has %lld entries but above has %lld; they "
                     "must match",
                     (long long)nr_arg_size(&auc), (long long)n_pos);
        goto done;
    }
    const int64_t n_users = indptr.array ? nr_arg_size(&indptr) - 1 : n_pos;
    npy_intp dims[1] = {(npy_intp)n_users};
    for (int i = 0; i < 7; i++)
        if ((arrs[i] = PyArray_SimpleNew(1, dims, NPY_FLOAT64)) == NULL)
            goto done;
#define RK_D(i) ((double *)PyArray_DATA((PyArrayObject *)arrs[i]))
    struct nr_rank_per_user pu = {RK_D(0), RK_D(1), RK_D(2), RK_D(3), RK_D(4), RK_D(5), RK_D(6)};
#undef RK_D
    struct nr_rank_means m;
    enum nr_status st;
    const int64_t *ip = nr_arg_data(&indptr), *ab = nr_arg_data(&above);
    const double *au = nr_arg_data(&auc);
    Py_BEGIN_ALLOW_THREADS
    st = nr_rank_score(ip, ab, au, n_users, (int64_t)k, &pu, &m);
    Py_END_ALLOW_THREADS
    if (nr_py_raise_value(st, "score", "above must hold non-negative ranks") < 0)
        goto done;
    means_d = Py_BuildValue("{sdsdsdsdsdsdsdsL}", "hr", m.hr, "ndcg", m.ndcg, "mrr", m.mrr,
                            "precision", m.precision, "recall", m.recall, "map", m.map, "auc",
                            m.auc, "n_users", (long long)m.n_users);
    if (means_d == NULL || (per_user = PyDict_New()) == NULL)
        goto done;
    for (int i = 0; i < 7; i++)
        if (PyDict_SetItemString(per_user, names[i], arrs[i]) < 0)
            goto done;
    result = Py_BuildValue("(OO)", means_d, per_user);
done:
    for (int i = 0; i < 7; i++)
        Py_XDECREF(arrs[i]);
    Py_XDECREF(per_user);
    Py_XDECREF(means_d);
    NR_ARGS_RELEASE(&above, &indptr, &auc);
    return result;
}

PyMethodDef nr_py_rank_methods[] = {
    NR_PY_KW_METHOD("topk_rows", rk_topk_rows, rk_topk_rows_doc),
    NR_PY_KW_METHOD("count_sampled", rk_count_sampled, rk_count_sampled_doc),
    NR_PY_KW_METHOD("count_full", rk_count_full, rk_count_full_doc),
    NR_PY_KW_METHOD("score", rk_score, rk_score_doc),
    {NULL, NULL, 0, NULL},
};
