/*
 * _score.c: the binding of the fused NCF scorer (nr_score_ncf.h), the NeuMF / MLP path
 * of Model.recommend (neurec/models/_fused.py builds the descriptor).
 *
 * The model comes as a descriptor read by field name (as the plan's ops): zu, zi, act0,
 * layers (each with kernel, bias, act), parts (each with kind, user, item), pred_w,
 * pred_b, out_act. Every array is borrowed in place through the converters of convert.h
 * and checked here, with the GIL, before the C call runs on a borrowed pool without it.
 */
#include "module.h"
#include "pools.h"

#include "neurec/nr_names.h"
#include "neurec/nr_score_ncf.h"

#define SC_MAX_LAYERS 32
#define SC_MAX_PARTS 16

/* The arrays of one call, released together. */
struct sc_arrays {
    struct nr_arg zu, zi, pred_w;
    struct nr_arg kernel[SC_MAX_LAYERS], bias[SC_MAX_LAYERS];
    struct nr_arg user[SC_MAX_PARTS], item[SC_MAX_PARTS];
    int n_layers, n_parts;
};

static void sc_release(struct sc_arrays *s)
{
    NR_ARGS_RELEASE(&s->zu, &s->zi, &s->pred_w);
    for (int i = 0; i < SC_MAX_LAYERS; i++)
        NR_ARGS_RELEASE(&s->kernel[i], &s->bias[i]);
    for (int i = 0; i < SC_MAX_PARTS; i++)
        NR_ARGS_RELEASE(&s->user[i], &s->item[i]);
}

/* obj.<field> through converter conv into *arg (arg->name and limits set by the caller). */
static int sc_field_array(PyObject *obj, const char *what, const char *field,
                          int (*conv)(PyObject *, void *), struct nr_arg *arg)
{
    PyObject *v = nr_field_get(obj, what, field);
    if (!v)
        return -1;
    int ok = conv(v, arg);
    Py_DECREF(v);
    return ok ? 0 : -1;
}

static int sc_act(PyObject *obj, const char *what, const char *field, enum nr_act *out)
{
    int act;
    if (nr_field_int(obj, what, field, &act) < 0)
        return -1;
    if (act < 0 || act >= NR_ACT_COUNT) {
        PyErr_Format(PyExc_ValueError, "%s: %s = %d is not an activation code (_core.ACTIVATIONS)",
                     what, field, act);
        return -1;
    }
    *out = (enum nr_act)act;
    return 0;
}

/* obj.<field> as a sequence (a new reference) of at most max_n entries. */
static PyObject *sc_seq(PyObject *obj, const char *what, const char *field, Py_ssize_t max_n)
{
    PyObject *v = nr_field_get(obj, what, field);
    if (!v)
        return NULL;
    PyObject *seq = PySequence_Fast(v, "");
    Py_DECREF(v);
    if (!seq) {
        PyErr_Format(PyExc_TypeError, "%s: field '%s' must be a sequence", what, field);
        return NULL;
    }
    if (PySequence_Fast_GET_SIZE(seq) > max_n) {
        PyErr_Format(PyExc_ValueError, "%s: field '%s' has %zd entries, at most %zd allowed", what,
                     field, PySequence_Fast_GET_SIZE(seq), max_n);
        Py_DECREF(seq);
        return NULL;
    }
    return seq;
}

/* Rows of a table argument against the rows seen so far (*rows < 0: none yet). */
static int sc_rows(const struct nr_arg *t, int64_t *rows, const char *side)
{
    if (!t->array)
        return 0;
    const int64_t r = nr_arg_dim(t, 0);
    if (*rows >= 0 && r != *rows) {
        PyErr_Format(PyExc_ValueError,
                     "ncf_topk: %s has %lld rows but another %s table has %lld; every %s table "
                     "needs one row per %s",
                     t->name, (long long)r, side, (long long)*rows, side, side);
        return -1;
    }
    *rows = r;
    return 0;
}

/* Read the model descriptor into *a (tables into *s). Returns 0, or -1 with an error set. */
static int sc_read_model(PyObject *m, struct nr_ncf_args *a, struct nr_ncf_layer *layers,
                         struct nr_ncf_part *parts, struct sc_arrays *s, int64_t *user_rows,
                         int64_t *item_rows)
{
    const char *what = "ncf_topk model";
    s->zu = (struct nr_arg){.name = "zu", .min_nd = 2, .max_nd = 2, .optional = 1};
    s->zi = (struct nr_arg){.name = "zi", .min_nd = 2, .max_nd = 2, .optional = 1};
    s->pred_w = (struct nr_arg){.name = "pred_w", .min_nd = 1, .max_nd = 1, .optional = 1};
    if (sc_field_array(m, what, "zu", nr_conv_f32_in, &s->zu) < 0 ||
        sc_field_array(m, what, "zi", nr_conv_f32_in, &s->zi) < 0 ||
        sc_field_array(m, what, "pred_w", nr_conv_f32_in, &s->pred_w) < 0 ||
        sc_act(m, what, "act0", &a->act_0) < 0 || sc_act(m, what, "out_act", &a->out_act) < 0 ||
        nr_field_float(m, what, "pred_b", &a->pred_b) < 0)
        return -1;
    if (!s->zu.array != !s->zi.array ||
        (s->zu.array && nr_arg_dim(&s->zu, 1) != nr_arg_dim(&s->zi, 1))) {
        PyErr_SetString(PyExc_ValueError, "ncf_topk: zu and zi must be given together, with "
                                          "equal widths (the hoisted first layer)");
        return -1;
    }
    a->zu = nr_arg_data(&s->zu);
    a->zi = nr_arg_data(&s->zi);
    a->width_0 = nr_arg_dim(&s->zu, 1);
    a->pred_w = nr_arg_data(&s->pred_w);
    if (sc_rows(&s->zu, user_rows, "user") < 0 || sc_rows(&s->zi, item_rows, "item") < 0)
        return -1;

    PyObject *seq = sc_seq(m, what, "layers", SC_MAX_LAYERS);
    if (!seq)
        return -1;
    int64_t width = a->width_0;
    s->n_layers = (int)PySequence_Fast_GET_SIZE(seq);
    for (int l = 0; l < s->n_layers; l++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, l);
        char lw[48];
        PyOS_snprintf(lw, sizeof lw, "ncf_topk layer %d", l);
        s->kernel[l] = (struct nr_arg){.name = "layer kernel", .min_nd = 2, .max_nd = 2};
        s->bias[l] = (struct nr_arg){.name = "layer bias", .min_nd = 1, .max_nd = 1, .optional = 1};
        struct nr_ncf_layer *ly = &layers[l];
        if (sc_field_array(o, lw, "kernel", nr_conv_f32_in, &s->kernel[l]) < 0 ||
            sc_field_array(o, lw, "bias", nr_conv_f32_in, &s->bias[l]) < 0 ||
            sc_act(o, lw, "act", &ly->act) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        ly->w = nr_arg_data(&s->kernel[l]);
        ly->b = nr_arg_data(&s->bias[l]);
        ly->n_in = nr_arg_dim(&s->kernel[l], 0);
        ly->n_out = nr_arg_dim(&s->kernel[l], 1);
        if (ly->n_in != width || ly->n_out < 2 ||
            (s->bias[l].array && nr_arg_size(&s->bias[l]) != ly->n_out)) {
            PyErr_Format(PyExc_ValueError,
                         "%s: kernel (%lld, %lld) must take %lld inputs to at least 2 units, "
                         "and bias hold one value per unit",
                         lw, (long long)ly->n_in, (long long)ly->n_out, (long long)width);
            Py_DECREF(seq);
            return -1;
        }
        width = ly->n_out;
    }
    Py_DECREF(seq);
    a->layers = layers;
    a->n_layers = s->n_layers;

    if (!(seq = sc_seq(m, what, "parts", SC_MAX_PARTS)))
        return -1;
    int64_t d = 0;
    s->n_parts = (int)PySequence_Fast_GET_SIZE(seq);
    for (int c = 0; c < s->n_parts; c++) {
        PyObject *o = PySequence_Fast_GET_ITEM(seq, c);
        char pw[48];
        PyOS_snprintf(pw, sizeof pw, "ncf_topk part %d", c);
        s->user[c] = (struct nr_arg){.name = "part user", .min_nd = 2, .max_nd = 2, .optional = 1};
        s->item[c] = (struct nr_arg){.name = "part item", .min_nd = 2, .max_nd = 2, .optional = 1};
        struct nr_ncf_part *p = &parts[c];
        int kind;
        if (nr_field_int(o, pw, "kind", &kind) < 0 ||
            sc_field_array(o, pw, "user", nr_conv_f32_in, &s->user[c]) < 0 ||
            sc_field_array(o, pw, "item", nr_conv_f32_in, &s->item[c]) < 0 ||
            sc_rows(&s->user[c], user_rows, "user") < 0 ||
            sc_rows(&s->item[c], item_rows, "item") < 0) {
            Py_DECREF(seq);
            return -1;
        }
        const int64_t wu = nr_arg_dim(&s->user[c], 1), wi = nr_arg_dim(&s->item[c], 1);
        const int want_u = kind == NR_NCF_PRODUCT || kind == NR_NCF_USER;
        const int want_i = kind == NR_NCF_PRODUCT || kind == NR_NCF_ITEM;
        if (kind < 0 || kind >= NR_NCF_PART_COUNT || want_u != !!s->user[c].array ||
            want_i != !!s->item[c].array || (want_u && want_i && wu != wi)) {
            PyErr_Format(PyExc_ValueError,
                         "%s: kind %d (_core.NCF_PARTS) needs a user table for 'product' and "
                         "'user', an item table for 'product' and 'item', equal widths, and "
                         "nothing else",
                         pw, kind);
            Py_DECREF(seq);
            return -1;
        }
        p->kind = (enum nr_ncf_part_kind)kind;
        p->width = kind == NR_NCF_TOWER ? width : want_u ? wu : wi;
        p->user = nr_arg_data(&s->user[c]);
        p->item = nr_arg_data(&s->item[c]);
        d += p->width;
    }
    Py_DECREF(seq);
    a->parts = parts;
    a->n_parts = s->n_parts;
    if (s->n_parts && nr_arg_size(&s->pred_w) != d) {
        PyErr_Format(PyExc_ValueError,
                     "ncf_topk: pred_w has %lld weights but the parts are %lld wide",
                     (long long)nr_arg_size(&s->pred_w), (long long)d);
        return -1;
    }
    enum nr_status st = nr_ncf_check(a);
    if (st != NR_OK) {
        PyErr_Format(PyExc_ValueError,
                     "ncf_topk: not a model the fused scorer runs (%s): it needs one tower part "
                     "when zu/zi are given, activations linear, relu, sigmoid or tanh, and "
                     "without parts a 1-wide hoisted layer alone",
                     nr_status_str(st));
        return -1;
    }
    return 0;
}

/* ids[0..n) within [lo, hi), and strictly ascending when `ascending`. */
static int sc_check_ids(const struct nr_arg *ids, int64_t lo, int64_t hi, int ascending,
                        const char *fn)
{
    const int64_t *v = nr_arg_data(ids), n = nr_arg_size(ids);
    for (int64_t i = 0; i < n; i++) {
        if (v[i] < lo || v[i] >= hi) {
            PyErr_Format(PyExc_IndexError, "%s: %s[%lld] = %lld is outside [%lld, %lld)", fn,
                         ids->name, (long long)i, (long long)v[i], (long long)lo, (long long)hi);
            return -1;
        }
        if (ascending && i && v[i] <= v[i - 1]) {
            PyErr_Format(PyExc_ValueError, "%s: %s must be strictly ascending (np.unique)", fn,
                         ids->name);
            return -1;
        }
    }
    return 0;
}

/* The CSR of excluded items (indptr, indices, rows: all or none) for n users. */
static int sc_check_excluded(const struct nr_arg *ip, const struct nr_arg *ix,
                             const struct nr_arg *rows, int64_t n, const char *fn, const char *what)
{
    if (!ip->array && !ix->array && !rows->array)
        return 0;
    const int64_t *p = nr_arg_data(ip), nip = nr_arg_size(ip);
    if (!ip->array || !ix->array || !rows->array || nr_arg_size(rows) != n || nip < 1 || p[0] < 0 ||
        p[nip - 1] > nr_arg_size(ix)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: indptr, indices and rows go together: a CSR of excluded %s (offsets "
                     "from 0 up to len(indices)) and one CSR row per user",
                     fn, what);
        return -1;
    }
    for (int64_t i = 1; i < nip; i++)
        if (p[i] < p[i - 1]) {
            PyErr_Format(PyExc_ValueError, "%s: indptr must be non-decreasing", fn);
            return -1;
        }
    const int64_t *r = nr_arg_data(rows);
    for (int64_t i = 0; i < n; i++)
        if (r[i] < -1 || r[i] >= nip - 1) {
            PyErr_Format(PyExc_IndexError, "%s: rows[%lld] = %lld is outside [-1, %lld)", fn,
                         (long long)i, (long long)r[i], (long long)(nip - 1));
            return -1;
        }
    return 0;
}

/* out_ids / out_scores must be (n, k) with k >= 1. Returns 0, or -1 with an error set. */
static int sc_check_out(const struct nr_arg *oid, const struct nr_arg *osc, int64_t n,
                        long long k, const char *fn)
{
    if (k < 1 || nr_arg_dim(oid, 0) != n || nr_arg_dim(oid, 1) != k || nr_arg_dim(osc, 0) != n ||
        nr_arg_dim(osc, 1) != k) {
        PyErr_Format(PyExc_ValueError,
                     "%s: k must be >= 1 and out_ids, out_scores (len(users), k) = "
                     "(%lld, %lld)",
                     fn, (long long)n, k);
        return -1;
    }
    return 0;
}

/* The fields both scorers take the same way: k, the exclusions and the outputs. */
static void sc_set_common(struct nr_ncf_args *a, long long k, const struct nr_arg *ip,
                          const struct nr_arg *ix, const struct nr_arg *rows,
                          const struct nr_arg *oid, const struct nr_arg *osc)
{
    a->k = (int64_t)k;
    a->excl_indptr = nr_arg_data(ip);
    a->excl_indices = nr_arg_data(ix);
    a->excl_rows = nr_arg_data(rows);
    a->out_ids = nr_arg_data(oid);
    a->out_scores = nr_arg_data(osc);
}

PyDoc_STRVAR(
    sc_ncf_topk_doc,
    "ncf_topk(model, users, k, out_ids, out_scores, items=None, indptr=None, indices=None,\n"
    "         rows=None)\n--\n\n"
    "Fused NCF scoring and top-k (nr_score_ncf.h): NeuMF / MLP after hoisting.\n\n"
    "model: a descriptor with fields zu, zi (float32 (n_users, w0) / (n_items, w0) or None),\n"
    "act0, layers (each: kernel float32 (n_in, n_out), bias float32 or None, act), parts\n"
    "(each: kind from NCF_PARTS, user / item float32 tables or None), pred_w (float32),\n"
    "pred_b (float), out_act; activations are codes of ACTIVATIONS. users: int64 user rows.\n"
    "items: int64 candidate rows, strictly ascending (default: every item row). indptr\n"
    "(int64) / indices (int32, candidate positions, ascending per row) / rows (int64, the\n"
    "CSR row of each user, -1: none): candidates to skip. Writes out_ids (int64) and\n"
    "out_scores (float32), (len(users), k), best first, equal scores by ascending id, padded\n"
    "with -1 / -inf. Returns None.");

static PyObject *sc_ncf_topk(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"model", "users",  "k",       "out_ids", "out_scores",
                             "items", "indptr", "indices", "rows",    NULL};
    PyObject *model;
    struct nr_arg users = {.name = "users", .min_nd = 1, .max_nd = 1};
    struct nr_arg oid = {.name = "out_ids", .min_nd = 2, .max_nd = 2};
    struct nr_arg osc = {.name = "out_scores", .min_nd = 2, .max_nd = 2};
    struct nr_arg items = {.name = "items", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg ip = {.name = "indptr", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg ix = {.name = "indices", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg rows = {.name = "rows", .min_nd = 1, .max_nd = 1, .optional = 1};
    long long k;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO&LO&O&|O&O&O&O&:ncf_topk", kwlist, &model,
                                     nr_conv_i64_in, &users, &k, nr_conv_i64_out, &oid,
                                     nr_conv_f32_out, &osc, nr_conv_i64_in, &items, nr_conv_i64_in,
                                     &ip, nr_conv_i32_in, &ix, nr_conv_i64_in, &rows))
        return NULL;
    PyObject *result = NULL;
    struct sc_arrays s;
    memset(&s, 0, sizeof s);
    struct nr_ncf_layer layers[SC_MAX_LAYERS];
    struct nr_ncf_part parts[SC_MAX_PARTS];
    struct nr_ncf_args a = {0};
    int64_t user_rows = -1, item_rows = -1;
    if (sc_read_model(model, &a, layers, parts, &s, &user_rows, &item_rows) < 0)
        goto done;
    const int64_t n = nr_arg_size(&users);
    if (sc_check_out(&oid, &osc, n, k, "ncf_topk") < 0)
        goto done;
    if (user_rows >= 0 && sc_check_ids(&users, 0, user_rows, 0, "ncf_topk") < 0)
        goto done;
    if (item_rows < 0 && !items.array) {
        PyErr_SetString(PyExc_ValueError, "ncf_topk: the model has no item table: pass items");
        goto done;
    }
    if (items.array &&
        sc_check_ids(&items, 0, item_rows >= 0 ? item_rows : INT64_MAX, 1, "ncf_topk") < 0)
        goto done;
    const int64_t n_cand = items.array ? nr_arg_size(&items) : item_rows;
    if (sc_check_excluded(&ip, &ix, &rows, n, "ncf_topk", "candidate positions") < 0)
        goto done;
    a.users = nr_arg_data(&users);
    a.n_users = n;
    a.items = nr_arg_data(&items);
    a.n_cand = n_cand;
    sc_set_common(&a, k, &ip, &ix, &rows, &oid, &osc);
    enum nr_status st = NR_OK;
    if (n > 0)
        RUN_ON_POOL(st, nr_ncf_topk(&a, pool));
    result = nr_py_none_or_raise(st, "recommend", NULL);
done:
    sc_release(&s);
    NR_ARGS_RELEASE(&users, &oid, &osc, &items, &ip, &ix, &rows);
    return result;
}

/* Per-user candidates: ids in [-1, hi), the others strictly ascending in each row. */
static int sc_check_rows(const struct nr_arg *items, int64_t hi)
{
    const int64_t *v = nr_arg_data(items), nr = nr_arg_dim(items, 0), nc = nr_arg_dim(items, 1);
    for (int64_t r = 0; r < nr; r++) {
        int64_t last = -1;
        for (int64_t j = 0; j < nc; j++) {
            const int64_t it = v[r * nc + j];
            if (it < -1 || it >= hi) {
                PyErr_Format(PyExc_IndexError,
                             "ncf_topk_per_user: items[%lld, %lld] = %lld is outside [0, %lld) "
                             "(-1: padding)",
                             (long long)r, (long long)j, (long long)it, (long long)hi);
                return -1;
            }
            if (it < 0)
                continue;
            if (it <= last) {
                PyErr_Format(PyExc_ValueError,
                             "ncf_topk_per_user: items[%lld] must hold distinct item ids in "
                             "ascending order (np.sort each row; -1 padding may be anywhere)",
                             (long long)r);
                return -1;
            }
            last = it;
        }
    }
    return 0;
}

/* Each excluded row a user reads is ascending (the scorer merges it with the user's row). */
static int sc_check_excluded_sorted(const struct nr_arg *ip, const struct nr_arg *ix,
                                    const struct nr_arg *rows)
{
    const int64_t *p = nr_arg_data(ip), *r = nr_arg_data(rows), n = nr_arg_size(rows);
    const int32_t *x = nr_arg_data(ix);
    for (int64_t i = 0; i < n; i++) {
        if (r[i] < 0)
            continue;
        for (int64_t e = p[r[i]] + 1; e < p[r[i] + 1]; e++)
            if (x[e] < x[e - 1]) {
                PyErr_Format(PyExc_ValueError,
                             "ncf_topk_per_user: indices must be ascending within each CSR row "
                             "(row %lld is not)",
                             (long long)r[i]);
                return -1;
            }
    }
    return 0;
}

PyDoc_STRVAR(
    sc_ncf_topk_per_user_doc,
    "ncf_topk_per_user(model, users, items, k, out_ids, out_scores, indptr=None,\n"
    "                  indices=None, rows=None)\n--\n\n"
    "Fused NCF re-ranking of per-user candidates (nr_ncf_topk_per_user): ncf_topk's model\n"
    "descriptor and scores, but items is an int64 matrix (len(users), n_cand): row r holds\n"
    "the candidate item ids of users[r], strictly ascending apart from -1 entries (padding,\n"
    "anywhere). indptr (int64) / indices (int32 item ids, ascending per row) / rows (int64,\n"
    "the CSR row of each user, -1: none): items to skip. Writes out_ids (int64) and\n"
    "out_scores (float32), (len(users), k), best first, equal scores by ascending id, padded\n"
    "with -1 / -inf. Returns None.");

static PyObject *sc_ncf_topk_per_user(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    static char *kwlist[] = {"model",      "users",  "items",   "k",    "out_ids",
                             "out_scores", "indptr", "indices", "rows", NULL};
    PyObject *model;
    struct nr_arg users = {.name = "users", .min_nd = 1, .max_nd = 1};
    struct nr_arg items = {.name = "items", .min_nd = 2, .max_nd = 2};
    struct nr_arg oid = {.name = "out_ids", .min_nd = 2, .max_nd = 2};
    struct nr_arg osc = {.name = "out_scores", .min_nd = 2, .max_nd = 2};
    struct nr_arg ip = {.name = "indptr", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg ix = {.name = "indices", .min_nd = 1, .max_nd = 1, .optional = 1};
    struct nr_arg rows = {.name = "rows", .min_nd = 1, .max_nd = 1, .optional = 1};
    long long k;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO&O&LO&O&|O&O&O&:ncf_topk_per_user", kwlist,
                                     &model, nr_conv_i64_in, &users, nr_conv_i64_in, &items, &k,
                                     nr_conv_i64_out, &oid, nr_conv_f32_out, &osc, nr_conv_i64_in,
                                     &ip, nr_conv_i32_in, &ix, nr_conv_i64_in, &rows))
        return NULL;
    PyObject *result = NULL;
    struct sc_arrays s;
    memset(&s, 0, sizeof s);
    struct nr_ncf_layer layers[SC_MAX_LAYERS];
    struct nr_ncf_part parts[SC_MAX_PARTS];
    struct nr_ncf_args a = {0};
    int64_t user_rows = -1, item_rows = -1;
    if (sc_read_model(model, &a, layers, parts, &s, &user_rows, &item_rows) < 0)
        goto done;
    const int64_t n = nr_arg_size(&users);
    if (nr_arg_dim(&items, 0) != n) {
        PyErr_Format(PyExc_ValueError,
                     "ncf_topk_per_user: items has %lld rows but there are %lld users: pass one "
                     "row of candidates per user",
                     (long long)nr_arg_dim(&items, 0), (long long)n);
        goto done;
    }
    if (sc_check_out(&oid, &osc, n, k, "ncf_topk_per_user") < 0)
        goto done;
    if (user_rows >= 0 && sc_check_ids(&users, 0, user_rows, 0, "ncf_topk_per_user") < 0)
        goto done;
    if (sc_check_rows(&items, item_rows >= 0 ? item_rows : INT64_MAX) < 0 ||
        sc_check_excluded(&ip, &ix, &rows, n, "ncf_topk_per_user", "item ids") < 0 ||
        (ip.array && sc_check_excluded_sorted(&ip, &ix, &rows) < 0))
        goto done;
    a.users = nr_arg_data(&users);
    a.n_users = n;
    a.items = nr_arg_data(&items);
    a.n_cand = nr_arg_dim(&items, 1);
    sc_set_common(&a, k, &ip, &ix, &rows, &oid, &osc);
    enum nr_status st = NR_OK;
    if (n > 0)
        RUN_ON_POOL(st, nr_ncf_topk_per_user(&a, pool));
    result = nr_py_none_or_raise(st, "recommend", NULL);
done:
    sc_release(&s);
    NR_ARGS_RELEASE(&users, &items, &oid, &osc, &ip, &ix, &rows);
    return result;
}

PyMethodDef nr_py_score_methods[] = {
    NR_PY_KW_METHOD("ncf_topk", sc_ncf_topk, sc_ncf_topk_doc),
    NR_PY_KW_METHOD("ncf_topk_per_user", sc_ncf_topk_per_user, sc_ncf_topk_per_user_doc),
    {NULL, NULL, 0, NULL},
};
