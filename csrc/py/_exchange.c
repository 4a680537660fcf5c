/*
 * _exchange.c: binding of nr_rowsum.h, the merge step of a data-parallel fit's
 * gradient exchange (neurec/distribution/_exchange.py): the rows every process
 * sent, summed per id in sender order, with the GIL released.
 */
#include "module.h"

#include "neurec/nr_rowsum.h"
#include "neurec/nr_sampler.h"

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

/* The id of sample s, and where it is: ids is int32 or int64 (route_split checks). */
static inline int64_t id_at(const void *ids, int wide, int64_t s)
{
    return wide ? ((const int64_t *)ids)[s] : ((const int32_t *)ids)[s];
}

static inline const void *id_addr(const void *ids, int wide, int64_t s)
{
    return wide ? (const void *)((const int64_t *)ids + s)
                : (const void *)((const int32_t *)ids + s);
}

/* An id clipped to [0, rows): one out of range still goes to a rank, whose core refuses it. */
static inline int64_t clip_id(int64_t r, int64_t rows)
{
    return r < 0 ? 0 : (r >= rows ? rows - 1 : r);
}

#define TAG_MASK (((uint64_t)1 << NR_PERM_TAG_SHIFT) - 1)

/* This rank's samples of idx into o, in order, and where each batch starts into b:
 * each sample's owner is the tag of its index (tagged: idx from
 * nr_sampler_permutation_tagged), sown[s], or own[id] (then touched[id] is set
 * here; with sown the caller's loop marks them, tagged leaves them to the
 * Python caller). *bad is the first index of idx out of range. */
static inline int64_t select_mine(const int64_t *ix, int64_t n, int64_t batch, int64_t n_ids,
                                  long long rank, int tagged, const uint8_t *sown,
                                  const int32_t *own, const void *id, int wide, int64_t rows,
                                  int64_t *o, int64_t *b, uint8_t *t, int64_t *bad)
{
    int64_t m = 0;
    for (int64_t k = 0, next = 0; k < n; k++) {
        if (k == next) { /* a batch starts */
            b[k / batch] = m;
            next += batch;
        }
        const int64_t ahead = !tagged && k + 16 < n ? ix[k + 16] : -1;
        if (ahead >= 0 && ahead < n_ids)
            __builtin_prefetch(sown ? (const void *)(sown + ahead) : id_addr(id, wide, ahead));
        const uint64_t v = (uint64_t)ix[k];
        const int64_t s = tagged ? (int64_t)(v & TAG_MASK) : (int64_t)v;
        if (s < 0 || s >= n_ids) {
            *bad = k;
            break;
        }
        if (tagged) {
            if ((long long)(v >> NR_PERM_TAG_SHIFT) == rank)
                o[m++] = s;
        } else if (sown) {
            if (sown[s] == rank)
                o[m++] = s;
        } else {
            const int64_t r = clip_id(id_at(id, wide, s), rows);
            if (own[r] == rank) {
                o[m++] = s;
                t[r] = 1;
            }
        }
    }
    return m;
}

/* route_split(owner, ids, idx, batch_size, rank, out, bounds, touched, sample_owner=None) -> n */
static PyObject *py_route_split(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"owner",  "ids",     "idx",          "batch_size", "rank", "out",
                             "bounds", "touched", "sample_owner", "tagged",     "mark", NULL};
    struct nr_arg owner = {.name = "owner", .min_nd = 1, .max_nd = 1},
                  ids = {.name = "ids", .min_nd = 1, .max_nd = 2},
                  idx = {.name = "idx", .min_nd = 1, .max_nd = 1},
                  out = {.name = "out", .min_nd = 1, .max_nd = 1},
                  bounds = {.name = "bounds", .min_nd = 1, .max_nd = 1},
                  touched = {.name = "touched", .min_nd = 1, .max_nd = 1},
                  so = {.name = "sample_owner", .min_nd = 1, .max_nd = 1, .optional = 1};
    long long batch, rank;
    int tagged = 0, mark = 0;
    if (!PyArg_ParseTupleAndKeywords(
            args, kw, "O&O&O&LLO&O&O&|O&pp:route_split", kwlist, nr_conv_i32_in, &owner,
            nr_conv_num_in, &ids, nr_conv_i64_in, &idx, &batch, &rank, nr_conv_i64_out, &out,
            nr_conv_i64_out, &bounds, nr_conv_u8_out, &touched, nr_conv_u8_in, &so, &tagged, &mark))
        return NULL;
    PyObject *result = NULL;
    const int type = PyArray_TYPE(ids.array);
    const int64_t rows = nr_arg_size(&owner), n_ids = nr_arg_size(&ids), n = nr_arg_size(&idx);
    const int64_t steps = batch > 0 ? (n + batch - 1) / batch : -1;
    if (type != NPY_INT64 && type != NPY_INT32) {
        PyErr_SetString(PyExc_TypeError, "route_split: ids must be int32 or int64");
        goto done;
    }
    if (steps < 0 || nr_arg_size(&out) < n || nr_arg_size(&bounds) != steps + 1 ||
        nr_arg_size(&touched) != rows || rows < 1 || (so.array && nr_arg_size(&so) != n_ids)) {
        PyErr_Format(PyExc_ValueError,
                     "route_split: needs batch_size >= 1, out of idx.size (%lld), bounds of "
                     "steps + 1 (%lld), touched of owner.size (%lld) and sample_owner of "
                     "ids.size (%lld) entries",
                     (long long)n, (long long)steps + 1, (long long)rows, (long long)n_ids);
        goto done;
    }
    const int32_t *own = nr_arg_data(&owner);
    const int64_t *ix = nr_arg_data(&idx);
    const void *id = PyArray_DATA(ids.array);
    const int wide = type == NPY_INT64;
    int64_t *o = nr_arg_data(&out), *b = nr_arg_data(&bounds), bad = -1, m = 0;
    uint8_t *t = nr_arg_data(&touched);
    const uint8_t *sown = so.array ? nr_arg_data(&so) : NULL;
    Py_BEGIN_ALLOW_THREADS
    /* three copies of the loop, by where the owners come from (inlined, each without
     * the others' branches) */
    if (tagged)
        m = select_mine(ix, n, batch, n_ids, rank, 1, NULL, NULL, id, wide, rows, o, b, t, &bad);
    else if (sown)
        m = select_mine(ix, n, batch, n_ids, rank, 0, sown, NULL, id, wide, rows, o, b, t, &bad);
    else
        m = select_mine(ix, n, batch, n_ids, rank, 0, NULL, own, id, wide, rows, o, b, t, &bad);
    for (int64_t j = 0; (sown || (tagged && mark)) && j < m && bad < 0; j++) { /* their rows */
        if (j + 16 < m)
            __builtin_prefetch(id_addr(id, wide, o[j + 16]));
        t[clip_id(id_at(id, wide, o[j]), rows)] = 1;
    }
    b[steps] = m;
    Py_END_ALLOW_THREADS
    if (bad >= 0)
        PyErr_Format(PyExc_IndexError, "route_split: idx[%lld] is outside [0, %lld)",
                     (long long)bad, (long long)n_ids);
    else
        result = PyLong_FromLongLong(m);
done:
    NR_ARGS_RELEASE(&owner, &ids, &idx, &out, &bounds, &touched, &so);
    return result;
}

/* route_tags(owner, ids, rank, tags, present) */
static PyObject *py_route_tags(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"owner", "ids", "rank", "tags", "present", NULL};
    struct nr_arg owner = {.name = "owner", .min_nd = 1, .max_nd = 1},
                  ids = {.name = "ids", .min_nd = 1, .max_nd = 2},
                  tags = {.name = "tags", .min_nd = 1, .max_nd = 1},
                  present = {.name = "present", .min_nd = 1, .max_nd = 1};
    long long rank;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&LO&O&:route_tags", kwlist, nr_conv_i32_in,
                                     &owner, nr_conv_num_in, &ids, &rank, nr_conv_u8_out, &tags,
                                     nr_conv_u8_out, &present))
        return NULL;
    PyObject *result = NULL;
    const int type = PyArray_TYPE(ids.array);
    const int64_t rows = nr_arg_size(&owner), n = nr_arg_size(&ids);
    if (type != NPY_INT64 && type != NPY_INT32) {
        PyErr_SetString(PyExc_TypeError, "route_tags: ids must be int32 or int64");
        goto done;
    }
    if (rows < 1 || nr_arg_size(&tags) != n || nr_arg_size(&present) != rows) {
        PyErr_Format(PyExc_ValueError,
                     "route_tags: needs tags of ids.size (%lld) and present of owner.size (%lld) "
                     "entries",
                     (long long)n, (long long)rows);
        goto done;
    }
    const int32_t *own = nr_arg_data(&owner);
    for (int64_t r = 0; r < rows; r++)
        if (own[r] < 0 || own[r] > 255) {
            PyErr_SetString(PyExc_ValueError, "route_tags: owners must lie in [0, 255]");
            goto done;
        }
    const void *id = PyArray_DATA(ids.array);
    const int wide = type == NPY_INT64;
    uint8_t *t = nr_arg_data(&tags), *p = nr_arg_data(&present);
    Py_BEGIN_ALLOW_THREADS
    for (int64_t s = 0; s < n; s++) {
        const int64_t r = clip_id(id_at(id, wide, s), rows);
        t[s] = (uint8_t)own[r];
        if (own[r] == rank)
            p[r] = 1;
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    NR_ARGS_RELEASE(&owner, &ids, &tags, &present);
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
    NR_PY_KW_METHOD("route_split", py_route_split,
                    "route_split(owner, ids, idx, batch_size, rank, out, bounds, touched) -> n: "
                    "the samples idx (consecutive batches of batch_size) whose id ids[s] rank "
                    "owns (owner[id], int32; ids clipped to its range) into out[:n] in order, "
                    "where each batch starts in out into bounds (steps + 1), and touched[id] = 1 "
                    "for each of their ids (uint8 of owner.size). sample_owner (uint8, one "
                    "per sample: owner[ids[s]]) saves reading every sample's id; tagged=True: "
                    "idx comes from permutation(tags=sample_owner), its values' top byte the "
                    "owner: one sequential pass, touched left to the caller unless mark=True."),
    NR_PY_KW_METHOD("route_tags", py_route_tags,
                    "route_tags(owner, ids, rank, tags, present): in one pass over the sample "
                    "ids (int32 or int64, clipped to owner's range), each sample's owner "
                    "(owner[id], int32 in [0, 255]) into tags (uint8, one per sample) and "
                    "present[id] = 1 (uint8, one per row) for the ids rank owns."),
    {NULL, NULL, 0, NULL},
};
