/*
 * _data.c: bindings of the sampler (permutation, negative sampling) and of the
 * dot-product scorer behind recommend (nr_sampler.h, nr_scoring.h).
 */
#include "module.h"
#include "pools.h"

#include "neurec/nr_sampler.h"
#include "neurec/nr_scoring.h"

/* permutation(n, seed, out=None) -> int64 array: a seeded shuffle of range(n),
 * written into out (n int64, returned) when given: fit reuses one array every epoch. */
static PyObject *py_permutation(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"n", "seed", "out", "tags", NULL};
    long long n;
    unsigned long long seed;
    PyObject *given = Py_None, *tags = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "LK|OO:permutation", kwlist, &n, &seed, &given,
                                     &tags))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0");
        return NULL;
    }
    if (tags != Py_None &&
        (!nr_is_buffer(tags, NPY_UINT8) || PyArray_DIM((PyArrayObject *)tags, 0) != (npy_intp)n ||
         n >= (long long)1 << NR_PERM_TAG_SHIFT)) {
        PyErr_Format(PyExc_ValueError,
                     "permutation: tags must be a C-contiguous uint8 array of n = %lld values "
                     "(n < 2^%d)",
                     n, NR_PERM_TAG_SHIFT);
        return NULL;
    }
    const uint8_t *t = tags == Py_None ? NULL : PyArray_DATA((PyArrayObject *)tags);
    PyObject *out;
    if (given == Py_None) {
        npy_intp dims[1] = {(npy_intp)n};
        if (!(out = PyArray_SimpleNew(1, dims, NPY_INT64)))
            return NULL;
    } else {
        if (!nr_is_buffer(given, NPY_INT64) ||
            PyArray_DIM((PyArrayObject *)given, 0) != (npy_intp)n) {
            PyErr_Format(PyExc_ValueError,
                         "permutation: out must be a writable C-contiguous "
                         "native int64 array of n = %lld values",
                         n);
            return NULL;
        }
        out = given;
        Py_INCREF(out);
    }
    int64_t *p = PyArray_DATA((PyArrayObject *)out);
    Py_BEGIN_ALLOW_THREADS
    nr_sampler_permutation_tagged(p, n, seed, t);
    Py_END_ALLOW_THREADS
    return out;
}

/* sample_epoch(indptr, indices, n_items, users, items, num_negatives, cdf|None, seed,
 *              out_users, out_items, out_labels, first=0, stop=-1): one epoch of
 * positives and negatives (of positives first..stop-1 only, stop -1: all). */
static PyObject *py_sample_epoch(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"indptr",        "indices", "n_items", "users",     "items",
                             "num_negatives", "cdf",     "seed",    "out_users", "out_items",
                             "out_labels",    "first",   "stop",    NULL};
    struct nr_arg ip = {.name = "indptr"}, ix = {.name = "indices"};
    struct nr_arg pu_a = {.name = "users"}, pi_a = {.name = "items"};
    struct nr_arg cdf_a = {.name = "cdf", .optional = 1};
    struct nr_arg ou_a = {.name = "out_users"}, oi_a = {.name = "out_items"};
    struct nr_arg ol_a = {.name = "out_labels"};
    long long n_items, num_neg;
    unsigned long long seed;
    long long first = 0, stop = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&LO&O&LO&KO&O&O&|LL:sample_epoch", kwlist,
                                     nr_conv_i64_in, &ip, nr_conv_i32_in, &ix, &n_items,
                                     nr_conv_i64_in, &pu_a, nr_conv_i64_in, &pi_a, &num_neg,
                                     nr_conv_f64_in, &cdf_a, &seed, nr_conv_i64_out, &ou_a,
                                     nr_conv_i64_out, &oi_a, nr_conv_f32_out, &ol_a, &first, &stop))
        return NULL;
    PyObject *result = NULL;
    const int64_t *indptr = nr_arg_data(&ip), n_ptr = nr_arg_size(&ip), n_ind = nr_arg_size(&ix);
    const int64_t n_pu = nr_arg_size(&pu_a), n_ou = nr_arg_size(&ou_a);
    if (cdf_a.array && nr_arg_size(&cdf_a) != n_items) {
        PyErr_SetString(PyExc_ValueError, "cdf must have one entry per item");
        goto done;
    }
    /* sizes come from Python: no product below may overflow (signed overflow is undefined) */
    if (num_neg < 0 || num_neg > INT64_MAX / 2 || (n_pu && 1 + num_neg > INT64_MAX / n_pu)) {
        PyErr_Format(PyExc_ValueError,
                     "sample_epoch: num_negatives = %lld is out of range for %lld "
                     "positives",
                     num_neg, (long long)n_pu);
        goto done;
    }
    if (n_pu != nr_arg_size(&pi_a) || n_ou != n_pu * (1 + num_neg) || nr_arg_size(&oi_a) != n_ou ||
        nr_arg_size(&ol_a) != n_ou || n_ptr < 1 || indptr[n_ptr - 1] != n_ind || n_items < 1) {
        PyErr_SetString(PyExc_ValueError, "sample_epoch: inconsistent sizes");
        goto done;
    }
    if (stop < 0)
        stop = n_pu;
    if (first < 0 || first > stop || stop > n_pu || first % NR_SAMPLER_BLOCK ||
        (stop % NR_SAMPLER_BLOCK && stop != n_pu)) {
        PyErr_Format(PyExc_ValueError,
                     "sample_epoch: first = %lld and stop = %lld must be multiples of %d in "
                     "[0, %lld] (stop may be %lld)",
                     first, stop, NR_SAMPLER_BLOCK, (long long)n_pu, (long long)n_pu);
        goto done;
    }
    struct nr_csr csr = {indptr, nr_arg_data(&ix), n_ptr - 1, n_items};
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s,
                nr_sampler_epoch_part(&csr, nr_arg_data(&pu_a), nr_arg_data(&pi_a), n_pu, num_neg,
                                      nr_arg_data(&cdf_a), seed, first, stop, pool,
                                      nr_arg_data(&ou_a), nr_arg_data(&oi_a), nr_arg_data(&ol_a)));
    result = nr_py_none_or_raise(
        s, "negative sampling",
        "negative sampling: a user has interacted with every item, "
        "so no negative can be drawn; drop such users or lower num_negatives to 0");
done:
    NR_ARGS_RELEASE(&ip, &ix, &pu_a, &pi_a, &cdf_a, &ou_a, &oi_a, &ol_a);
    return result;
}

/* score_topk(user_vectors, item_vectors, item_bias|None, k, indptr|None, indices|None,
 *            rows|None, out_ids, out_scores, any_order=False): dot-product scores and
 * top-k, the fast path of recommend; indptr/indices is a CSR of items to exclude, row r
 * uses CSR row rows[r] (-1: none); any_order: the k best of a row in any order (padding
 * last), as two-stage recommend's retriever wants them. */
static PyObject *py_score_topk(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"user_vectors", "item_vectors", "item_bias", "k",
                             "indptr",       "indices",      "rows",      "out_ids",
                             "out_scores",   "any_order",    NULL};
    struct nr_arg u_a = {.name = "user_vectors", .min_nd = 2, .max_nd = 2};
    struct nr_arg v_a = {.name = "item_vectors", .min_nd = 2, .max_nd = 2};
    struct nr_arg b_a = {.name = "item_bias", .optional = 1};
    struct nr_arg ip = {.name = "exclude indptr", .optional = 1};
    struct nr_arg ix = {.name = "exclude indices", .optional = 1};
    struct nr_arg rows_a = {.name = "exclude rows", .optional = 1};
    struct nr_arg oid_a = {.name = "out_ids"}, osc_a = {.name = "out_scores"};
    long long k;
    int any_order = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&O&LO&O&O&O&O&|p:score_topk", kwlist,
                                     nr_conv_f32_in, &u_a, nr_conv_f32_in, &v_a, nr_conv_f32_in,
                                     &b_a, &k, nr_conv_i64_in, &ip, nr_conv_i32_in, &ix,
                                     nr_conv_i64_in, &rows_a, nr_conv_i64_out, &oid_a,
                                     nr_conv_f32_out, &osc_a, &any_order))
        return NULL;
    PyObject *result = NULL;
    const int64_t n_users = nr_arg_dim(&u_a, 0), n_items = nr_arg_dim(&v_a, 0);
    const int64_t dim = nr_arg_dim(&u_a, 1);
    if (nr_arg_dim(&v_a, 1) != dim) {
        PyErr_SetString(PyExc_ValueError,
                        "user_vectors and item_vectors must be 2-D with equal widths");
        goto done;
    }
    if (b_a.array && nr_arg_size(&b_a) != n_items) {
        PyErr_SetString(PyExc_ValueError, "item_bias must have one value per item");
        goto done;
    }
    const int64_t *indptr = nr_arg_data(&ip), *rows = nr_arg_data(&rows_a);
    if (indptr) {
        const int64_t nip = nr_arg_size(&ip), nrows = nr_arg_size(&rows_a);
        if (!ix.array || !rows) {
            PyErr_SetString(PyExc_ValueError, "exclude: indptr, indices and rows go together");
            goto done;
        }
        if (nrows != n_users || nip < 1 || indptr[nip - 1] != nr_arg_size(&ix)) {
            PyErr_SetString(PyExc_ValueError, "exclude: inconsistent CSR sizes");
            goto done;
        }
        for (int64_t i = 0; i < nrows; i++)
            if (rows[i] < -1 || rows[i] >= nip - 1) {
                PyErr_SetString(PyExc_IndexError, "exclude: a user row is out of range");
                goto done;
            }
    }
    const int64_t noid = nr_arg_size(&oid_a), nosc = nr_arg_size(&osc_a);
    if (k < 1 || (n_users && k > INT64_MAX / n_users) || noid != n_users * k ||
        nosc != n_users * k) {
        PyErr_SetString(PyExc_ValueError,
                        "out_ids and out_scores must be (n_users, k) with k >= 1");
        goto done;
    }
    struct nr_score_args a = {nr_arg_data(&u_a),
                              nr_arg_data(&v_a),
                              nr_arg_data(&b_a),
                              n_users,
                              n_items,
                              dim,
                              k,
                              indptr,
                              indptr ? nr_arg_data(&ix) : NULL,
                              indptr ? rows : NULL,
                              nr_arg_data(&oid_a),
                              nr_arg_data(&osc_a),
                              any_order};
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_score_topk(&a, pool));
    result = nr_py_none_or_raise(s, "recommend", NULL);
done:
    NR_ARGS_RELEASE(&u_a, &v_a, &b_a, &ip, &ix, &rows_a, &oid_a, &osc_a);
    return result;
}

PyMethodDef nr_py_data_methods[] = {
    NR_PY_KW_METHOD("permutation", py_permutation,
                    "permutation(n, seed, out=None, tags=None) -> int64 array: a seeded "
                    "shuffle of range(n) (into out when given); with tags (uint8, one per "
                    "value) each value i is i | tags[i] << 56, in the same order."),
    NR_PY_KW_METHOD(
        "sample_epoch", py_sample_epoch,
        "sample_epoch(indptr, indices, n_items, users, items, num_negatives, cdf, seed, out_users, "
        "out_items, out_labels): one epoch of negatives."),
    NR_PY_KW_METHOD(
        "score_topk", py_score_topk,
        "score_topk(user_vectors, item_vectors, item_bias, k, indptr, indices, rows, out_ids, "
        "out_scores, any_order=False): dot-product scores and top-k (best first, or in any "
        "order)."),
    {NULL, NULL, 0, NULL},
};
