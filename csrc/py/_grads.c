/*
 * _grads.c: neurec._core.BatchGrads, what a Plan's Python reduce hook receives
 * (nr_plan_set_reduce_hook): views of one batch's gradients, and the packing
 * and merging of table rows that a data-parallel exchange does around its MPI
 * calls (neurec/distribution/_exchange.py).
 */
#include "module.h"
#include "plan_obj.h"

#include <string.h>

static int grads_live(GradsObject *self)
{
    if (self->g)
        return 0;
    PyErr_SetString(PyExc_RuntimeError,
                    "the batch's gradients are valid during the reduce hook's call only");
    return -1;
}

/* An nd-dimensional view of data whose base is self (a fresh empty array when
 * data is NULL: an empty part). */
static PyObject *grads_view(GradsObject *self, void *data, int type, int nd, npy_intp *dims,
                            int writeable)
{
    if (!data)
        return PyArray_ZEROS(nd, dims, type, 0);
    PyObject *a = PyArray_New(&PyArray_Type, nd, dims, type, NULL, data, 0,
                              writeable ? NPY_ARRAY_CARRAY : NPY_ARRAY_CARRAY_RO, NULL);
    if (!a)
        return NULL;
    Py_INCREF(self);
    if (PyArray_SetBaseObject((PyArrayObject *)a, (PyObject *)self) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

static PyObject *Grads_get(GradsObject *self, void *which)
{
    if (grads_live(self) < 0)
        return NULL;
    const struct nr_batch_grads *g = self->g;
    switch ((int)(intptr_t)which) {
    case 0: return PyLong_FromLongLong(g->step);
    case 1: return PyLong_FromLongLong(g->n_samples);
    case 2: return PyLong_FromLong(g->n_tables);
    case 3: return PyLong_FromLong(g->n_parts);
    case 4: {
        npy_intp dims[1] = {(npy_intp)g->dense_size};
        return grads_view(self, g->dense, NPY_FLOAT32, 1, dims, 1);
    }
    default: {
        npy_intp dims[1] = {g->n_params};
        return grads_view(self, (void *)g->dense_offset, NPY_INT64, 1, dims, 0);
    }
    }
}

static PyGetSetDef Grads_getset[] = {
    {"step", (getter)Grads_get, NULL, "the optimizer step the gradients are applied at (>= 1)",
     (void *)0},
    {"n_samples", (getter)Grads_get, NULL, "samples in the batch", (void *)1},
    {"n_tables", (getter)Grads_get, NULL, "embedding tables of the plan", (void *)2},
    {"n_parts", (getter)Grads_get, NULL,
     "table parts: part (thread i, table t) is i * n_tables + t", (void *)3},
    {"dense", (getter)Grads_get, NULL,
     "float32 view of every non-table parameter's gradient (writable, no copy)", (void *)4},
    {"dense_offset", (getter)Grads_get, NULL,
     "int64 view: where each parameter's gradient starts in dense, -1 for tables", (void *)5},
    {NULL, NULL, NULL, NULL, NULL},
};

static struct nr_grad_part *grads_part(GradsObject *self, Py_ssize_t i)
{
    if (i < 0 || i >= self->g->n_parts) {
        PyErr_Format(PyExc_IndexError, "part %zd is outside [0, %d)", i, self->g->n_parts);
        return NULL;
    }
    return &self->g->parts[i];
}

/* part(i) -> (param, cols, first_row, rows or None, grad) */
static PyObject *Grads_part(GradsObject *self, PyObject *arg)
{
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_IndexError);
    if ((i == -1 && PyErr_Occurred()) || grads_live(self) < 0)
        return NULL;
    const struct nr_grad_part *part = grads_part(self, i);
    if (!part)
        return NULL;
    npy_intp n[1] = {(npy_intp)part->n_rows}, shape[2] = {(npy_intp)part->n_rows, part->cols};
    PyObject *rows = part->rows ? grads_view(self, part->rows, NPY_INT64, 1, n, 0)
                                : (Py_INCREF(Py_None), Py_None);
    PyObject *grad = rows ? grads_view(self, part->grad, NPY_FLOAT32, 2, shape, 1) : NULL;
    if (!grad) {
        Py_XDECREF(rows);
        return NULL;
    }
    return Py_BuildValue("(iLLNN)", part->param, (long long)part->cols, (long long)part->first_row,
                         rows, grad);
}

/* set_part(i, rows, grad): a sparse part's rows and their gradients become
 * the given arrays, kept alive by the plan until the next batch's hook. */
static PyObject *Grads_set_part(GradsObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"index", "rows", "grad", NULL};
    Py_ssize_t i;
    struct nr_arg rows_a = {.name = "rows", .min_nd = 1, .max_nd = 1}, grad_a = {.name = "grad"};
    if (grads_live(self) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kw, "nO&O&:set_part", kwlist, &i, nr_conv_i64_in,
                                     &rows_a, nr_conv_f32_in, &grad_a))
        return NULL;
    PyObject *result = NULL;
    struct nr_grad_part *part = grads_part(self, i);
    if (!part)
        goto done;
    if (!part->rows) {
        PyErr_Format(PyExc_ValueError,
                     "set_part: part %zd holds a frozen table or dense updates (rows None); "
                     "change its grad in place",
                     i);
        goto done;
    }
    int64_t n = nr_arg_size(&rows_a), table_rows = self->plan->params[part->param].rows;
    if (nr_arg_size(&grad_a) != n * part->cols) {
        PyErr_Format(
            PyExc_ValueError, "set_part: grad has %lld values, expected len(rows) * %lld = %lld",
            (long long)nr_arg_size(&grad_a), (long long)part->cols, (long long)(n * part->cols));
        goto done;
    }
    const int64_t *r = nr_arg_data(&rows_a);
    for (int64_t k = 0; k < n; k++)
        if (r[k] < 0 || r[k] >= table_rows) {
            PyErr_Format(PyExc_IndexError, "set_part: rows[%lld] = %lld is outside [0, %lld)",
                         (long long)k, (long long)r[k], (long long)table_rows);
            goto done;
        }
    if (PyList_Append(self->plan->hook_kept, (PyObject *)rows_a.array) < 0 ||
        PyList_Append(self->plan->hook_kept, (PyObject *)grad_a.array) < 0)
        goto done;
    part->rows = (int64_t *)r; /* read only by the apply phase */
    part->n_rows = n;
    part->grad = nr_arg_data(&grad_a);
    result = Py_None;
    Py_INCREF(result);
done:
    NR_ARGS_RELEASE(&rows_a, &grad_a);
    return result;
}

/* The index among the plan's tables (parts t, t + n_tables, ... hold its
 * rows) of each table of prm (n_tab), checked to have sparse parts: a fresh
 * PyMem array, or NULL with an error set (a param that is no table, a table
 * with dense updates, no memory). */
int *nr_py_grads_tables(GradsObject *self, const int64_t *prm, int64_t n_tab, const char *fn)
{
    const struct nr_batch_grads *g = self->g;
    const int nth = g->n_tables ? g->n_parts / g->n_tables : 0;
    int *tab = PyMem_Calloc((size_t)(n_tab ? n_tab : 1), sizeof *tab);
    if (!tab) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int64_t j = 0; j < n_tab; j++) {
        tab[j] = -1;
        for (int t = 0; t < g->n_tables && tab[j] < 0; t++)
            if (g->parts[t].param == prm[j])
                tab[j] = t;
        if (tab[j] < 0) {
            PyErr_Format(PyExc_ValueError,
                         "%s: parameter %lld is not an embedding table of the plan", fn,
                         (long long)prm[j]);
            goto fail;
        }
        for (int i = 0; i < nth; i++) {
            const struct nr_grad_part *part = &g->parts[i * g->n_tables + tab[j]];
            if (!part->rows && part->n_rows) {
                PyErr_Format(PyExc_ValueError,
                             "%s: table %lld has dense updates; reduce its gradient as a "
                             "dense buffer",
                             fn, (long long)prm[j]);
                goto fail;
            }
        }
    }
    return tab;
fail:
    PyMem_Free(tab);
    return NULL;
}

static int *grads_tables(GradsObject *self, const struct nr_arg *params, const char *fn)
{
    return nr_py_grads_tables(self, nr_arg_data(params), nr_arg_size(params), fn);
}

/* The rows table t's parts hold, over the threads. */
static int64_t grads_rows(const struct nr_batch_grads *g, int t)
{
    int64_t n = 0;
    for (int i = 0; i < g->n_parts / g->n_tables; i++)
        n += g->parts[i * g->n_tables + t].n_rows;
    return n;
}

/* The out= buffer of a pack: out itself when it is a C-contiguous native
 * uint32 array of at least words values, else a fresh one (NULL with an error
 * set for an out of another kind). */
static PyObject *grads_out(PyObject *given, int64_t words, const char *fn)
{
    if (given != Py_None && !nr_is_buffer(given, NPY_UINT32)) {
        PyErr_Format(PyExc_ValueError, "%s: out must be a writable C-contiguous uint32 array", fn);
        return NULL;
    }
    if (given != Py_None && PyArray_DIM((PyArrayObject *)given, 0) >= (npy_intp)words) {
        Py_INCREF(given);
        return given;
    }
    npy_intp dims[1] = {(npy_intp)words};
    return PyArray_EMPTY(1, dims, NPY_UINT32, 0);
}

/* The owner of row id among owners ranks, id % owners (a mask for a power of two: a
 * division per row costs more than the rest of the packing). */
static inline int64_t owner_of(int64_t id, long owners)
{
    return (owners & (owners - 1)) == 0 ? id & (owners - 1) : id % owners;
}

int64_t nr_py_grads_count(const struct nr_batch_grads *g, const int *tab, int64_t n_tab,
                          long owners, int empty, int64_t *cnt)
{
    const int nth = g->n_tables ? g->n_parts / g->n_tables : 0;
    int64_t words = 0;
    memset(cnt, 0, sizeof *cnt * (size_t)(owners * n_tab));
    for (int64_t j = 0; j < n_tab && !empty; j++) {
        if (owners == 1) {
            cnt[j] = grads_rows(g, tab[j]);
            continue;
        }
        for (int i = 0; i < nth; i++) {
            const struct nr_grad_part *part = &g->parts[i * g->n_tables + tab[j]];
            for (int64_t r = 0; r < part->n_rows; r++)
                cnt[owner_of(part->rows[r], owners) * n_tab + j]++;
        }
    }
    for (long d = 0; d < owners; d++)
        for (int64_t j = 0; j < n_tab; j++)
            words += cnt[d * n_tab + j] * (g->parts[tab[j]].cols + 2);
    return words;
}

int nr_py_grads_pack(const struct nr_batch_grads *g, const int *tab, int64_t n_tab, long owners,
                     int empty, const int64_t *cnt, char *at)
{
    const int nth = g->n_tables ? g->n_parts / g->n_tables : 0;
    /* per (owner, table): where its next id and gradient go */
    char **cur = PyMem_Calloc((size_t)(2 * owners * (n_tab ? n_tab : 1)), sizeof *cur);
    if (!cur) {
        PyErr_NoMemory();
        return -1;
    }
    for (long d = 0; d < owners; d++)
        for (int64_t j = 0; j < n_tab; j++) {
            const int64_t n = cnt[d * n_tab + j];
            cur[2 * (d * n_tab + j)] = at;
            cur[2 * (d * n_tab + j) + 1] = at + 8 * n;
            at += 4 * n * (g->parts[tab[j]].cols + 2);
        }
    for (int64_t j = 0; j < n_tab && !empty; j++) {
        const size_t row_bytes = 4 * (size_t)g->parts[tab[j]].cols;
        for (int i = 0; i < nth; i++) {
            const struct nr_grad_part *part = &g->parts[i * g->n_tables + tab[j]];
            if (!part->n_rows)
                continue;
            if (owners == 1) { /* the part's rows in one piece */
                char **c = cur + 2 * j;
                memcpy(c[0], part->rows, 8 * (size_t)part->n_rows);
                memcpy(c[1], part->grad, row_bytes * (size_t)part->n_rows);
                c[0] += 8 * part->n_rows;
                c[1] += row_bytes * (size_t)part->n_rows;
                continue;
            }
            for (int64_t r = 0; r < part->n_rows; r++) {
                char **c = cur + 2 * (owner_of(part->rows[r], owners) * n_tab + j);
                memcpy(c[0], part->rows + r, 8);
                memcpy(c[1], (const char *)part->grad + (size_t)r * row_bytes, row_bytes);
                c[0] += 8;
                c[1] += row_bytes;
            }
        }
    }
    PyMem_Free(cur);
    return 0;
}

/* pack_rows(params, empty=False, out=None, owners=None) -> (message, counts):
 * per table of params, in order, the ids (int64 as two 32-bit words each) of
 * the distinct rows its parts hold, then their gradients' float32 bits: the
 * block a rank sends in the gradient exchange (nr_rowsum.h's layout), and
 * counts[j], table j's rows. With owners=P the rows are grouped by the rank
 * that owns them (id % P): each owner's tables in turn, counts[d, j]. With
 * empty=True every count is 0 (a rank without samples of its own). message is
 * out itself when out, a uint32 array, has room; else a fresh array. */
static PyObject *Grads_pack_rows(GradsObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"params", "empty", "out", "owners", NULL};
    struct nr_arg params = {.name = "params", .min_nd = 1, .max_nd = 1};
    int empty = 0;
    PyObject *given = Py_None, *owners_o = Py_None;
    if (grads_live(self) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kw, "O&|pOO:pack_rows", kwlist, nr_conv_i64_in, &params,
                                     &empty, &given, &owners_o))
        return NULL;
    const long owners = owners_o == Py_None ? 1 : PyLong_AsLong(owners_o);
    const int64_t n_tab = nr_arg_size(&params);
    npy_intp dims[2] = {(npy_intp)owners, (npy_intp)n_tab};
    PyObject *counts = NULL, *packed = NULL;
    int *tab = NULL;
    if (owners == -1 && PyErr_Occurred())
        goto fail;
    if (owners < 1 || owners > 1 << 20) {
        PyErr_Format(PyExc_ValueError, "pack_rows: owners must be in [1, 2^20], got %ld", owners);
        goto fail;
    }
    if (!(tab = grads_tables(self, &params, "pack_rows")))
        goto fail;
    counts = owners_o == Py_None ? PyArray_ZEROS(1, dims + 1, NPY_INT64, 0)
                                 : PyArray_ZEROS(2, dims, NPY_INT64, 0);
    if (!counts)
        goto fail;
    int64_t *cnt = PyArray_DATA((PyArrayObject *)counts);
    const int64_t words = nr_py_grads_count(self->g, tab, n_tab, owners, empty, cnt);
    if (!(packed = grads_out(given, words, "pack_rows")) ||
        nr_py_grads_pack(self->g, tab, n_tab, owners, empty, cnt,
                         PyArray_DATA((PyArrayObject *)packed)) < 0)
        goto fail;
    PyMem_Free(tab);
    NR_ARGS_RELEASE(&params);
    return Py_BuildValue("(NN)", packed, counts);
fail:
    PyMem_Free(tab);
    Py_XDECREF(counts);
    Py_XDECREF(packed);
    NR_ARGS_RELEASE(&params);
    return NULL;
}

/* Merge table t's blocks of every sender (nr_rowsum_ws) into r and gr (room
 * for every row sent), and split the union over the table's parts. Returns 0,
 * or -1 with an error set. */
static int grads_merge_table(GradsObject *self, int t, const uint32_t *msg, int64_t words,
                             const int64_t *offs, const int64_t *cnt, int senders,
                             const double *weights, int64_t *r, float *gr)
{
    struct nr_batch_grads *g = self->g;
    const struct nr_grad_part *first = &g->parts[t];
    const int64_t cols = first->cols, table_rows = self->plan->params[first->param].rows;
    int64_t n = 0;
    enum nr_status s = nr_rowsum_ws(&self->plan->rowsum_ws, msg, words, offs, cnt, senders, weights,
                                    cols, table_rows, r, gr, &n);
    if (s != NR_OK)
        return nr_py_rowsum_raise(s, "merge_rows", "", table_rows);
    const int nth = g->n_parts / g->n_tables;
    for (int i = 0; i < nth; i++) { /* the rows are distinct: any split keeps them so */
        struct nr_grad_part *part = &g->parts[i * g->n_tables + t];
        const int64_t lo = n * i / nth, hi = n * (i + 1) / nth;
        part->rows = r + lo;
        part->grad = gr + lo * cols;
        part->n_rows = hi - lo;
    }
    return 0;
}

/* Bytes of the merge output for rows rows of cols floats: the ids, then the
 * gradients, padded to 8 bytes (the next table's ids stay aligned). */
static size_t merged_room(size_t rows, int64_t cols)
{
    return 8 * rows + ((4 * rows * (size_t)cols + 7) & ~(size_t)7);
}

/* The plan's merge output grown to at least bytes (kept for the apply phase and
 * reused by the next batch). NULL with MemoryError. */
static char *grads_merged(GradsObject *self, size_t bytes)
{
    PlanObject *p = self->plan;
    if (bytes > p->merged_bytes) {
        void *m = realloc(p->merged, bytes);
        if (!m) {
            PyErr_NoMemory();
            return NULL;
        }
        p->merged = m;
        p->merged_bytes = bytes;
    }
    return p->merged;
}

int nr_py_grads_merge(GradsObject *self, const int *tab, int64_t n_tab, const uint32_t *msg,
                      int64_t msg_words, const int64_t *offsets, const int64_t *c, int64_t senders,
                      const double *weights)
{
    int rc = -1;
    int64_t *offs = PyMem_Malloc(sizeof *offs * (size_t)(2 * senders + n_tab + 1));
    if (!offs) {
        PyErr_NoMemory();
        return -1;
    }
    int64_t *cnt = offs + senders, *total = cnt + senders; /* total: per table */
    memcpy(offs, offsets, sizeof *offs * (size_t)senders);
    size_t bytes = 0; /* the union's room: every row sent, 8 + 4 * cols bytes each */
    for (int64_t j = 0; j < n_tab; j++) {
        total[j] = 0;
        for (int64_t s = 0; s < senders; s++) {
            if (c[s * n_tab + j] < 0 || c[s * n_tab + j] > msg_words) {
                PyErr_SetString(PyExc_ValueError, "merge_rows: counts must lie in [0, "
                                                  "len(message)]");
                goto done;
            }
            total[j] += c[s * n_tab + j];
        }
        bytes += merged_room((size_t)total[j], self->g->parts[tab[j]].cols);
    }
    char *out = grads_merged(self, bytes ? bytes : 1);
    if (!out)
        goto done;
    for (int64_t j = 0; j < n_tab; j++) {
        const int64_t cols = self->g->parts[tab[j]].cols;
        for (int64_t s = 0; s < senders; s++)
            cnt[s] = c[s * n_tab + j];
        int64_t *r = (int64_t *)out;
        float *gr = (float *)(out + 8 * total[j]);
        if (grads_merge_table(self, tab[j], msg, msg_words, offs, cnt, (int)senders, weights, r,
                              gr) < 0)
            goto done;
        out += merged_room((size_t)total[j], cols);
        for (int64_t s = 0; s < senders; s++) /* past table j's block: table j + 1's */
            offs[s] += cnt[s] * (cols + 2);
    }
    rc = 0;
done:
    PyMem_Free(offs);
    return rc;
}

/* merge_rows(params, message, offsets, counts, weights): every sender's
 * pack_rows block (sender s's from word offsets[s], counts[s, j] rows of table
 * params[j]) merged table by table as nr_rowsum.h says; each table's parts
 * become the union, split over its parts. Once per batch: the union lives in
 * the plan's merge output, which a second call would reuse. */
static PyObject *Grads_merge_rows(GradsObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"params", "message", "offsets", "counts", "weights", NULL};
    struct nr_arg params = {.name = "params", .min_nd = 1, .max_nd = 1},
                  msg = {.name = "message", .min_nd = 1, .max_nd = 1},
                  offsets = {.name = "offsets", .min_nd = 1, .max_nd = 1},
                  counts = {.name = "counts", .min_nd = 2, .max_nd = 2},
                  weights = {.name = "weights", .min_nd = 1, .max_nd = 1};
    if (grads_live(self) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kw, "O&O&O&O&O&:merge_rows", kwlist, nr_conv_i64_in,
                                     &params, nr_conv_i32_in, &msg, nr_conv_i64_in, &offsets,
                                     nr_conv_i64_in, &counts, nr_conv_f64_in, &weights))
        return NULL;
    PyObject *result = NULL;
    const int64_t n_tab = nr_arg_size(&params), senders = nr_arg_size(&offsets);
    int *tab = NULL;
    if (nr_arg_dim(&counts, 0) != senders || nr_arg_dim(&counts, 1) != n_tab ||
        nr_arg_size(&weights) != senders || senders > INT32_MAX) {
        PyErr_Format(PyExc_ValueError,
                     "merge_rows: counts must be (senders, tables) = (%lld, "
                     "%lld) and weights hold one entry per sender",
                     (long long)senders, (long long)n_tab);
        goto done;
    }
    if (!(tab = grads_tables(self, &params, "merge_rows")) ||
        nr_py_grads_merge(self, tab, n_tab, nr_arg_data(&msg), nr_arg_size(&msg),
                          nr_arg_data(&offsets), nr_arg_data(&counts), senders,
                          nr_arg_data(&weights)) < 0)
        goto done;
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(tab);
    NR_ARGS_RELEASE(&params, &msg, &offsets, &counts, &weights);
    return result;
}

int64_t nr_py_grads_values_words(const struct nr_batch_grads *g, const int *tab, int64_t n_tab)
{
    int64_t words = 2 * n_tab;
    for (int64_t j = 0; j < n_tab; j++)
        words += grads_rows(g, tab[j]) * (g->parts[tab[j]].cols + 2);
    return words;
}

void nr_py_grads_pack_values(GradsObject *self, const int *tab, int64_t n_tab, char *at)
{
    const struct nr_batch_grads *g = self->g;
    const int nth = g->n_tables ? g->n_parts / g->n_tables : 0;
    char *head = at;
    at += 8 * n_tab;
    for (int64_t j = 0; j < n_tab; j++) {
        const struct nr_param *w = &self->plan->params[g->parts[tab[j]].param];
        const size_t row_bytes = 4 * (size_t)w->cols;
        const int64_t n = grads_rows(g, tab[j]);
        memcpy(head + 8 * j, &n, 8);
        char *ids = at, *vals = at + 8 * n;
        for (int i = 0; i < nth; i++) {
            const struct nr_grad_part *part = &g->parts[i * g->n_tables + tab[j]];
            if (!part->n_rows)
                continue;
            memcpy(ids, part->rows, 8 * (size_t)part->n_rows);
            ids += 8 * part->n_rows;
            for (int64_t r = 0; r < part->n_rows; r++, vals += row_bytes)
                memcpy(vals, w->w + part->rows[r] * w->cols, row_bytes);
        }
        at += n * (8 + (int64_t)row_bytes);
    }
}

/* pack_values(params, out=None) -> message: after the apply phase, the rows
 * the parts of each table of params hold (those this process just updated)
 * with their new values: the tables' row counts (int64, two words each), then
 * per table the ids (two words each) and the rows' float32 bits. message is
 * out itself when it has room. */
static PyObject *Grads_pack_values(GradsObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"params", "out", NULL};
    struct nr_arg params = {.name = "params", .min_nd = 1, .max_nd = 1};
    PyObject *given = Py_None, *packed = NULL;
    if (grads_live(self) < 0 || !PyArg_ParseTupleAndKeywords(args, kw, "O&|O:pack_values", kwlist,
                                                             nr_conv_i64_in, &params, &given))
        return NULL;
    const int64_t n_tab = nr_arg_size(&params);
    int *tab = grads_tables(self, &params, "pack_values");
    if (tab &&
        (packed = grads_out(given, nr_py_grads_values_words(self->g, tab, n_tab), "pack_values")))
        nr_py_grads_pack_values(self, tab, n_tab, PyArray_DATA((PyArrayObject *)packed));
    PyMem_Free(tab);
    NR_ARGS_RELEASE(&params);
    return packed;
}

int nr_py_grads_unpack(GradsObject *self, const int *tab, const int64_t *prm, int64_t n_tab,
                       const char *base, int64_t total, const int64_t *off, int64_t senders,
                       int64_t block, int64_t skip)
{
    const struct nr_batch_grads *g = self->g;
    for (int64_t s = 0; s < senders; s++) {
        if (s == skip)
            continue;
        if (block < 2 * n_tab || off[s] < 0 || off[s] > total || block > total - off[s]) {
            PyErr_SetString(PyExc_ValueError, "unpack_values: a sender's block lies outside "
                                              "message");
            return -1;
        }
        const char *head = base + 4 * off[s], *at = head + 8 * n_tab;
        int64_t left = block - 2 * n_tab; /* words */
        for (int64_t j = 0; j < n_tab; j++) {
            const struct nr_param *w = &self->plan->params[g->parts[tab[j]].param];
            int64_t n;
            memcpy(&n, head + 8 * j, 8);
            if (n < 0 || n > left / (w->cols + 2)) {
                PyErr_Format(PyExc_ValueError,
                             "unpack_values: sender %lld's block holds %lld "
                             "rows of table %lld, more than its %lld words",
                             (long long)s, (long long)n, (long long)prm[j], (long long)block);
                return -1;
            }
            const char *vals = at + 8 * n;
            for (int64_t r = 0; r < n; r++) {
                int64_t id;
                memcpy(&id, at + 8 * r, 8);
                if (id < 0 || id >= w->rows) {
                    PyErr_Format(PyExc_IndexError,
                                 "unpack_values: a row id of table %lld is "
                                 "outside [0, %lld)",
                                 (long long)prm[j], (long long)w->rows);
                    return -1;
                }
                memcpy(w->w + id * w->cols, vals + 4 * r * w->cols, 4 * (size_t)w->cols);
            }
            at += n * 4 * (w->cols + 2);
            left -= n * (w->cols + 2);
        }
    }
    return 0;
}

/* unpack_values(params, message, offsets, block_words, skip): every sender's
 * pack_values block but sender skip's (sender s's within block_words words from
 * offsets[s]) written into the tables' rows. */
static PyObject *Grads_unpack_values(GradsObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"params", "message", "offsets", "block_words", "skip", NULL};
    struct nr_arg params = {.name = "params", .min_nd = 1, .max_nd = 1},
                  msg = {.name = "message", .min_nd = 1, .max_nd = 1},
                  offsets = {.name = "offsets", .min_nd = 1, .max_nd = 1};
    long long block, skip;
    PyObject *result = NULL;
    if (grads_live(self) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kw, "O&O&O&LL:unpack_values", kwlist, nr_conv_i64_in,
                                     &params, nr_conv_i32_in, &msg, nr_conv_i64_in, &offsets,
                                     &block, &skip))
        return NULL;
    const int64_t n_tab = nr_arg_size(&params);
    int *tab = grads_tables(self, &params, "unpack_values");
    if (tab && nr_py_grads_unpack(self, tab, nr_arg_data(&params), n_tab, nr_arg_data(&msg),
                                  nr_arg_size(&msg), nr_arg_data(&offsets), nr_arg_size(&offsets),
                                  block, skip) == 0) {
        result = Py_None;
        Py_INCREF(result);
    }
    PyMem_Free(tab);
    NR_ARGS_RELEASE(&params, &msg, &offsets);
    return result;
}

static PyMethodDef Grads_methods[] = {
    {"part", (PyCFunction)Grads_part, METH_O,
     "part(i) -> (param, cols, first_row, rows, grad): table part i; rows is an int64 view of "
     "its distinct row ids (None with dense updates, where the part is rows first_row.. in "
     "order) and grad a writable float32 (n_rows, cols) view."},
    NR_PY_KW_METHOD("set_part", Grads_set_part,
                    "set_part(i, rows, grad): replace sparse part i by the int64 row ids rows "
                    "and their float32 gradients grad (len(rows) * cols values); the plan "
                    "keeps both arrays until the apply phase is over. A table's rows must stay "
                    "distinct across its parts."),
    NR_PY_KW_METHOD("pack_rows", Grads_pack_rows,
                    "pack_rows(params, empty=False, out=None) -> (message, counts): the rows "
                    "of the tables params (int64 ids as two uint32 words, then float32 "
                    "gradient bits, table after table) as one uint32 array (out itself when it "
                    "has room), and each table's row count; empty=True packs nothing. With "
                    "owners=P the rows are grouped by owner (id % P), each owner's tables in "
                    "turn, and counts is (P, tables)."),
    NR_PY_KW_METHOD("merge_rows", Grads_merge_rows,
                    "merge_rows(params, message, offsets, counts, weights): merge every "
                    "sender's pack_rows block (sender s's from word offsets[s], counts[s, j] "
                    "rows of table params[j]): each table's parts become the distinct ids in "
                    "order of first appearance with sum_s weights[s] * grad, summed in double "
                    "in sender order. Call it once per batch."),
    NR_PY_KW_METHOD("pack_values", Grads_pack_values,
                    "pack_values(params, out=None) -> message: after the apply phase, each "
                    "table's row count (int64), then per table the ids and new float32 values "
                    "of the rows its parts hold, as uint32 words (out itself when it has room)."),
    NR_PY_KW_METHOD("unpack_values", Grads_unpack_values,
                    "unpack_values(params, message, offsets, block_words, skip): write every "
                    "sender's pack_values block but skip's (block_words words from offsets[s]) "
                    "into the tables' rows."),
    {NULL, NULL, 0, NULL},
};

static void Grads_dealloc(GradsObject *self) { PyObject_Free(self); }

PyTypeObject GradsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "neurec._core.BatchGrads",
    .tp_basicsize = sizeof(GradsObject),
    .tp_dealloc = (destructor)Grads_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One batch's gradients, as a reduce hook sees them (valid during its call only).",
    .tp_methods = Grads_methods,
    .tp_getset = Grads_getset,
};
