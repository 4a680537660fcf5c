/*
 * _als.c: bindings of iALS (nr_als.h): the Gramian, the row solves and the
 * objective.
 */
#include "module.h"
#include "pools.h"

#include <string.h>

#include "neurec/nr_als.h"

/* als_gram(y, offset|None, gram, yo|None): gram = y^T y, yo = y^T offset. */
static PyObject *py_als_gram(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"y", "offset", "gram", "yo", NULL};
    struct nr_arg y_a = {.name = "y", .min_nd = 2, .max_nd = 2};
    struct nr_arg off_a = {.name = "offset", .optional = 1};
    struct nr_arg g_a = {.name = "gram"}, yo_a = {.name = "yo", .optional = 1};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&O&O&:als_gram", kwlist, nr_conv_f32_in, &y_a,
                                     nr_conv_f32_in, &off_a, nr_conv_f32_out, &g_a, nr_conv_f32_out,
                                     &yo_a))
        return NULL;
    PyObject *result = NULL;
    const int64_t n = nr_arg_dim(&y_a, 0), dim = nr_arg_dim(&y_a, 1);
    if (dim < 1 || nr_arg_size(&g_a) != dim * dim || (off_a.array && nr_arg_size(&off_a) != n) ||
        (yo_a.array && nr_arg_size(&yo_a) != dim)) {
        PyErr_SetString(PyExc_ValueError, "als_gram: inconsistent sizes");
        goto done;
    }
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, nr_als_gram(nr_arg_data(&g_a), nr_arg_data(&yo_a), nr_arg_data(&y_a),
                               nr_arg_data(&off_a), n, dim, pool));
    result = nr_py_none_or_raise(s, "als_gram", NULL);
done:
    NR_ARGS_RELEASE(&y_a, &off_a, &g_a, &yo_a);
    return result;
}

/* The arrays of an als_solve / als_loss call, released by als_release. */
struct als_arrays {
    struct nr_arg ip, ix, val, x, y, off, g, yo;
};

static void als_release(struct als_arrays *c)
{
    NR_ARGS_RELEASE(&c->ip, &c->ix, &c->val, &c->x, &c->y, &c->off, &c->g, &c->yo);
}

/* Parse (indptr, indices, values|None, x, y, offset|None, gram, yo|None, alpha, reg, nu,
 * solver, cg_steps, row0, row1[, data]) into *a and *c (whose arrays the caller releases
 * with als_release, also on failure). */
static int parse_als(PyObject *args, PyObject *kw, const char *fname, struct nr_als_args *a,
                     struct als_arrays *c, int *data)
{
    static char *kwlist[] = {"indptr",   "indices", "values", "x",    "y",  "offset",
                             "gram",     "yo",      "alpha",  "reg",  "nu", "solver",
                             "cg_steps", "row0",    "row1",   "data", NULL};
    char format[64];
    snprintf(format, sizeof format, "O&O&O&O&O&O&O&O&fffiiLL|p:%s", fname);
    *c = (struct als_arrays){
        .ip = {.name = "indptr"},
        .ix = {.name = "indices"},
        .val = {.name = "values", .optional = 1},
        .x = {.name = "x", .min_nd = 2, .max_nd = 2},
        .y = {.name = "y", .min_nd = 2, .max_nd = 2},
        .off = {.name = "offset", .optional = 1},
        .g = {.name = "gram"},
        .yo = {.name = "yo", .optional = 1},
    };
    float alpha, reg, nu;
    int solver, cg_steps;
    long long row0, row1;
    *data = 0;
    memset(a, 0, sizeof *a);
    if (!PyArg_ParseTupleAndKeywords(args, kw, format, kwlist, nr_conv_i64_in, &c->ip,
                                     nr_conv_i32_in, &c->ix, nr_conv_f32_in, &c->val,
                                     nr_conv_f32_out, &c->x, nr_conv_f32_in, &c->y, nr_conv_f32_in,
                                     &c->off, nr_conv_f32_in, &c->g, nr_conv_f32_in, &c->yo, &alpha,
                                     &reg, &nu, &solver, &cg_steps, &row0, &row1, data))
        return -1;
    a->indptr = nr_arg_data(&c->ip);
    a->indices = nr_arg_data(&c->ix);
    a->values = nr_arg_data(&c->val);
    a->x = nr_arg_data(&c->x);
    a->y = nr_arg_data(&c->y);
    a->offset = nr_arg_data(&c->off);
    a->gram = nr_arg_data(&c->g);
    a->yo = nr_arg_data(&c->yo);
    if (nr_arg_dim(&c->x, 1) != nr_arg_dim(&c->y, 1)) {
        PyErr_SetString(PyExc_ValueError, "als: x and y must be 2-D with equal widths");
        return -1;
    }
    a->n_rows = nr_arg_dim(&c->x, 0);
    a->n_cols = nr_arg_dim(&c->y, 0);
    a->dim = nr_arg_dim(&c->x, 1);
    const int64_t nip = nr_arg_size(&c->ip), nix = nr_arg_size(&c->ix);
    if (nip != a->n_rows + 1 || a->indptr[0] != 0 || a->indptr[nip - 1] != nix ||
        (a->values && nr_arg_size(&c->val) != nix) ||
        (a->offset && nr_arg_size(&c->off) != a->n_cols) || nr_arg_size(&c->g) != a->dim * a->dim ||
        (a->yo && nr_arg_size(&c->yo) != a->dim) || (a->offset && !a->yo)) {
        PyErr_SetString(PyExc_ValueError,
                        "als: inconsistent sizes (indptr, values, offset, gram, yo)");
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
 *           solver, cg_steps, row0, row1): solve rows [row0, row1) of x in place (None);
 * als_loss(<as als_solve>, data) -> float: the rows' part of the objective (loss != 0). */
static PyObject *als_run(PyObject *args, PyObject *kw, int loss)
{
    struct nr_als_args a;
    struct als_arrays c;
    int data;
    PyObject *result = NULL;
    if (parse_als(args, kw, loss ? "als_loss" : "als_solve", &a, &c, &data) < 0)
        goto done;
    double out = 0.0;
    enum nr_status s = NR_OK;
    RUN_ON_POOL(s, loss ? nr_als_loss(&a, data, &out, pool) : nr_als_solve_rows(&a, pool));
    if (!loss)
        result = nr_py_none_or_raise(
            s, "ALS",
            "ALS: invalid arguments or data (negative or non-finite interaction values, "
            "a CSR row pointer that decreases, or a system that is not positive "
            "definite: use regularization > 0)");
    else if (nr_py_raise(s, "ALS objective") == 0)
        result = PyFloat_FromDouble(out);
done:
    als_release(&c);
    return result;
}

static PyObject *py_als_solve(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    return als_run(args, kw, 0);
}

static PyObject *py_als_loss(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    return als_run(args, kw, 1);
}

PyMethodDef nr_py_als_methods[] = {
    NR_PY_KW_METHOD("als_gram", py_als_gram,
                    "als_gram(y, offset, gram, yo): Gramian y^T y and y^T offset."),
    NR_PY_KW_METHOD(
        "als_solve", py_als_solve,
        "als_solve(indptr, indices, values, x, y, offset, gram, yo, alpha, reg, nu, solver, "
        "cg_steps, row0, row1): iALS solve of a range of rows, in place."),
    NR_PY_KW_METHOD("als_loss", py_als_loss,
                    "als_loss(<as als_solve>, data) -> float: iALS objective of the rows."),
    {NULL, NULL, 0, NULL},
};
