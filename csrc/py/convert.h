/*
 * convert.h: the one argument dialect of neurec's Python binding (module neurec._core).
 *
 * Every file of csrc/py/ includes this header first. It brings in Python.h and NumPy (one
 * API table for the whole module, imported by _core.c) and declares:
 *
 * - "O&" converters for PyArg_ParseTupleAndKeywords that borrow NumPy arrays in place,
 *   modelled on NumPy's conversion_utils.c. They never copy: an array of the wrong dtype,
 *   layout or dimensions, or a read-only output, raises (TypeError for the type or dtype,
 *   ValueError for the rest) with a message that names the argument;
 * - readers of a descriptor's fields by name (ops, parameters and the optimizer of a plan
 *   are Python named tuples that C reads by field name, never by position);
 * - the one map from enum nr_status to a Python exception.
 *
 * Everything here is called with the GIL held.
 */
#ifndef NR_PY_CONVERT_H
#define NR_PY_CONVERT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define PY_ARRAY_UNIQUE_SYMBOL NEUREC_CORE_ARRAY_API
#ifndef NR_PY_IMPORT_ARRAY /* defined by _core.c alone, which imports the API table */
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>
#ifndef NPY_2_0_API_VERSION
#error \
    "neurec must be compiled against NumPy >= 2.0 headers (pip install 'numpy>=2' in the build environment; the built module runs with NumPy >= 1.23)"
#endif

#include <stddef.h>
#include <stdint.h>

#include "neurec/nr_status.h"

/* ------------------------------------------------------------------------ */
/* array arguments                                                           */

/* The address an array converter fills. The caller sets name (and the limits)
 * before parsing, e.g.
 *
 *     struct nr_arg scores = {.name = "scores", .min_nd = 2, .max_nd = 2};
 *     struct nr_arg auc = {.name = "out_auc", .optional = 1};
 *     if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O&", kwlist,
 *                                      nr_conv_f32_in, &scores, nr_conv_f64_out, &auc))
 *         return NULL;
 *     ...
 *     NR_ARGS_RELEASE(&scores, &auc);
 *
 * On success array holds a new reference (NULL when an optional argument was
 * None or left out); the caller releases it on every exit. The converters
 * return Py_CLEANUP_SUPPORTED, so when a later argument fails inside
 * PyArg_Parse* the arrays already converted are released there. */
struct nr_arg {
    const char *name;     /* the argument's name in error messages */
    int min_nd, max_nd;   /* allowed number of dimensions; max_nd 0: any */
    int optional;         /* None is accepted (array stays NULL) */
    PyArrayObject *array; /* out: a new reference, or NULL */
};

/* Converters: exact dtype, C-contiguous, aligned, native byte order. The _out
 * ones also require a writeable array: C writes into it in place. */
int nr_conv_f32_in(PyObject *obj, void *arg);
int nr_conv_f64_in(PyObject *obj, void *arg);
int nr_conv_i32_in(PyObject *obj, void *arg);
int nr_conv_i64_in(PyObject *obj, void *arg);
int nr_conv_f32_out(PyObject *obj, void *arg);
int nr_conv_f64_out(PyObject *obj, void *arg);
int nr_conv_i64_out(PyObject *obj, void *arg);
int nr_conv_u8_in(PyObject *obj, void *arg);
int nr_conv_u8_out(PyObject *obj, void *arg);
/* float32, float64, int32 or int64 (a model's inputs and labels), read-only. */
int nr_conv_num_in(PyObject *obj, void *arg);

/* Whether obj is a 1-D, C-contiguous, aligned, writable ndarray of NumPy type
 * type in native byte order: a buffer C may fill (an out= argument). */
int nr_is_buffer(PyObject *obj, int type);

/* Release the arrays of n arguments (NULL pointers and NULL arrays are skipped). */
void nr_args_release(struct nr_arg *const *args, size_t n);
#define NR_ARGS_RELEASE(...)                               \
    nr_args_release((struct nr_arg *const[]){__VA_ARGS__}, \
                    sizeof((struct nr_arg *const[]){__VA_ARGS__}) / sizeof(struct nr_arg *))

/* The data, element count and dimension i of a converted argument; NULL, 0 and
 * 0 for an omitted optional one. */
static inline void *nr_arg_data(const struct nr_arg *a)
{
    return a->array ? PyArray_DATA(a->array) : NULL;
}

static inline int64_t nr_arg_size(const struct nr_arg *a)
{
    return a->array ? (int64_t)PyArray_SIZE(a->array) : 0;
}

static inline int64_t nr_arg_dim(const struct nr_arg *a, int i)
{
    return a->array && i < PyArray_NDIM(a->array) ? (int64_t)PyArray_DIM(a->array, i) : 0;
}

/* ------------------------------------------------------------------------ */
/* descriptor fields                                                         */

/* Read obj.<field> (a named tuple's field, or any attribute) as a C int, an
 * int64, a float or a truth value. `what` names the descriptor in messages
 * ("op 3", "parameter 0", "optimizer"). A missing field is a TypeError that
 * says descriptors are read by name; a value of the wrong type a TypeError; an
 * integer that does not fit an OverflowError. Returns 0, or -1 with an error
 * set. */
int nr_field_int(PyObject *obj, const char *what, const char *field, int *out);
int nr_field_i64(PyObject *obj, const char *what, const char *field, int64_t *out);
int nr_field_float(PyObject *obj, const char *what, const char *field, float *out);
int nr_field_bool(PyObject *obj, const char *what, const char *field, int *out);
/* obj.<field> as a new reference, or NULL with the TypeError above. */
PyObject *nr_field_get(PyObject *obj, const char *what, const char *field);

/* ------------------------------------------------------------------------ */
/* status -> exception                                                       */

/* Raise the exception of status s for the call `what` ("fit", "topk_rows"):
 * NR_ERR_NOMEM MemoryError, NR_ERR_INDEX IndexError, NR_ABORTED
 * KeyboardInterrupt, NR_ERR_TYPE TypeError, any other ValueError. Returns 0
 * for NR_OK (nothing raised), else -1. An exception already set when a call
 * fails (raised by Python code it called back, a plan's reduce hook) is kept. */
int nr_py_raise(enum nr_status s, const char *what);

/* As nr_py_raise, but NR_ERR_VALUE raises ValueError(value_msg) when value_msg
 * is not NULL: the one invalid input a call's C function reports by status. */
int nr_py_raise_value(enum nr_status s, const char *what, const char *value_msg);

/* The result of a binding that returns None: a new reference to None for
 * NR_OK, else NULL with the exception of nr_py_raise_value. */
PyObject *nr_py_none_or_raise(enum nr_status s, const char *what, const char *value_msg);

#endif /* NR_PY_CONVERT_H */
