/*
 * _exchange.c: binding of nr_rowsum.h, the merge step of a data-parallel fit's
 * gradient exchange (neurec/distribution/_exchange.py): the rows every process
 * sent, summed per id in sender order, with the GIL released.
 */
#include "module.h"

#include "neurec/nr_rowsum.h"

int nr_py_rowsum_raise(enum nr_status s, const char *fn, const char *bound, int64_t table_rows)
{
    if (s == NR_ERR_SHAPE)
        PyErr_Format(PyExc_ValueError,
                     "%s: a sender's block (offsets, counts) lies outside message", fn);
    else if (s == NR_ERR_INDEX)
        PyErr_Format(PyExc_IndexError, "%s: a row id is outside [0, %s%lld)", fn, bound,
                     (long long)table_rows);
    else
        nr_py_raise(s, fn);
    return -1;
}

/* sum_rows(message, offsets, counts, weights, table_rows, out_ids, out_grad) -> n */
static PyObject *py_sum_rows(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"message",    "offsets", "counts",   "weights",
                             "table_rows", "out_ids", "out_grad", NULL};
    struct nr_arg msg = {.name = "message", .min_nd = 1, .max_nd = 1},
                  offsets = {.name = "offsets", .min_nd = 1, .max_nd = 1},
                  counts = {.name = "counts", .min_nd = 1, .max_nd = 1},
                  weights = {.name = "weights", .min_nd = 1, .max_nd = 1},
                  ids = {.name = "out_ids", .min_nd = 1, .max_nd = 1},
                  grad = {.name = "out_grad", .min_nd = 2, .max_nd = 2};
    long long table_rows;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&O&O&LO&O&:sum_rows", kwlist, nr_conv_i32_in,
                                     &msg, nr_conv_i64_in, &offsets, nr_conv_i64_in, &counts,
                                     nr_conv_f64_in, &weights, &table_rows, nr_conv_i64_out, &ids,
                                     nr_conv_f32_out, &grad))
        return NULL;
    PyObject *result = NULL;
    const int64_t senders = nr_arg_size(&offsets), cols = nr_arg_dim(&grad, 1);
    if (nr_arg_size(&counts) != senders || nr_arg_size(&weights) != senders ||
        senders > INT32_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "sum_rows: offsets, counts and weights need one entry per sender, got "
                     "%lld, %lld and %lld",
                     (long long)senders, (long long)nr_arg_size(&counts),
                     (long long)nr_arg_size(&weights));
        goto done;
    }
    int64_t total = 0;
    const int64_t *c = nr_arg_data(&counts);
    for (int64_t s = 0; s < senders; s++)
        total += c[s] > 0 ? c[s] : 0;
    if (nr_arg_size(&ids) < total || nr_arg_dim(&grad, 0) < total) {
        PyErr_Format(PyExc_ValueError,
                     "sum_rows: out_ids and out_grad must hold sum(counts) = %lld rows, got "
                     "%lld and %lld",
                     (long long)total, (long long)nr_arg_size(&ids),
                     (long long)nr_arg_dim(&grad, 0));
        goto done;
    }
    int64_t n = 0;
    enum nr_status s;
    Py_BEGIN_ALLOW_THREADS
    s = nr_rowsum((const uint32_t *)nr_arg_data(&msg), nr_arg_size(&msg), nr_arg_data(&offsets), c,
                  (int)senders, nr_arg_data(&weights), cols, (int64_t)table_rows, nr_arg_data(&ids),
                  nr_arg_data(&grad), &n);
    Py_END_ALLOW_THREADS
    if (s != NR_OK)
        nr_py_rowsum_raise(s, "sum_rows", "table_rows = ", (int64_t)table_rows);
    else
        result = PyLong_FromLongLong(n);
done:
    NR_ARGS_RELEASE(&msg, &offsets, &counts, &weights, &ids, &grad);
    return result;
}

PyMethodDef nr_py_exchange_methods[] = {
    NR_PY_KW_METHOD("sum_rows", py_sum_rows,
                    "sum_rows(message, offsets, counts, weights, table_rows, out_ids, out_grad) "
                    "-> n: merge the sparse gradient rows several processes sent (int32 "
                    "words; sender s's counts[s] rows from offsets[s]: the int64 ids, then "
                    "their gradients' float32 bits): the n distinct ids in order of first "
                    "appearance into out_ids[:n], their sums over senders of weights[s] * "
                    "grad (in double, in sender order) into out_grad[:n]."),
    {NULL, NULL, 0, NULL},
};
