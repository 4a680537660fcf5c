/*
 * convert.c: argument converters, descriptor fields and the status map of
 * neurec's Python binding (see convert.h).
 */
#include "convert.h"

#include <limits.h>

/* NPY_NOTYPE stands for "any of the dtypes the plan reads" (nr_conv_num_in). */
static const char *dtype_name(int type)
{
    switch (type) {
    case NPY_FLOAT32: return "float32";
    case NPY_FLOAT64: return "float64";
    case NPY_INT32: return "int32";
    case NPY_INT64: return "int64";
    default: return "float32, float64, int32 or int64";
    }
}

static int dtype_ok(PyArrayObject *a, int type)
{
    int t = PyArray_TYPE(a);
    if (type != NPY_NOTYPE)
        return t == type;
    return t == NPY_FLOAT32 || t == NPY_FLOAT64 || t == NPY_INT32 || t == NPY_INT64;
}

int nr_is_buffer(PyObject *obj, int type)
{
    if (!PyArray_Check(obj))
        return 0;
    PyArrayObject *a = (PyArrayObject *)obj;
    return PyArray_TYPE(a) == type && PyArray_NDIM(a) == 1 && PyArray_ISCARRAY(a) &&
           !PyArray_ISBYTESWAPPED(a);
}

/* The one converter behind all of them: obj NULL is PyArg's cleanup call. */
static int convert(PyObject *obj, struct nr_arg *a, int type, int writeable)
{
    if (obj == NULL) {
        Py_CLEAR(a->array);
        return 1;
    }
    a->array = NULL;
    if (obj == Py_None && a->optional)
        return Py_CLEANUP_SUPPORTED;
    const char *tname = dtype_name(type);
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a numpy.ndarray of dtype %s, got %.200s", a->name,
                     tname, Py_TYPE(obj)->tp_name);
        return 0;
    }
    PyArrayObject *arr = (PyArrayObject *)obj;
    if (!dtype_ok(arr, type)) {
        if (type == NPY_NOTYPE)
            PyErr_Format(PyExc_TypeError, "%s must have dtype %s, got %R", a->name, tname,
                         (PyObject *)PyArray_DESCR(arr));
        else
            PyErr_Format(PyExc_TypeError,
                         "%s must have dtype %s, got %R; convert it with "
                         "np.asarray(%s, dtype=np.%s)",
                         a->name, tname, (PyObject *)PyArray_DESCR(arr), a->name, tname);
        return 0;
    }
    const int nd = PyArray_NDIM(arr);
    if (nd < a->min_nd || (a->max_nd > 0 && nd > a->max_nd)) {
        if (a->min_nd == a->max_nd)
            PyErr_Format(PyExc_ValueError, "%s must be %d-dimensional, got %d dimensions", a->name,
                         a->min_nd, nd);
        else if (a->max_nd > 0)
            PyErr_Format(PyExc_ValueError, "%s must have %d to %d dimensions, got %d", a->name,
                         a->min_nd, a->max_nd, nd);
        else
            PyErr_Format(PyExc_ValueError, "%s must have at least %d dimension(s), got %d", a->name,
                         a->min_nd, nd);
        return 0;
    }
    if (!PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr) || !PyArray_ISNOTSWAPPED(arr)) {
        if (writeable)
            PyErr_Format(PyExc_ValueError,
                         "%s must be C-contiguous, aligned and in native byte "
                         "order: neurec writes it in place and never copies it silently",
                         a->name);
        else
            PyErr_Format(PyExc_ValueError,
                         "%s must be C-contiguous, aligned and in native byte "
                         "order; pass np.ascontiguousarray(%s)",
                         a->name, a->name);
        return 0;
    }
    if (writeable && !PyArray_ISWRITEABLE(arr)) {
        PyErr_Format(PyExc_ValueError, "%s must be writeable: neurec writes it in place", a->name);
        return 0;
    }
    Py_INCREF(obj);
    a->array = arr;
    return Py_CLEANUP_SUPPORTED;
}

int nr_conv_f32_in(PyObject *obj, void *arg) { return convert(obj, arg, NPY_FLOAT32, 0); }
int nr_conv_f64_in(PyObject *obj, void *arg) { return convert(obj, arg, NPY_FLOAT64, 0); }
int nr_conv_i32_in(PyObject *obj, void *arg) { return convert(obj, arg, NPY_INT32, 0); }
int nr_conv_i64_in(PyObject *obj, void *arg) { return convert(obj, arg, NPY_INT64, 0); }
int nr_conv_f32_out(PyObject *obj, void *arg) { return convert(obj, arg, NPY_FLOAT32, 1); }
int nr_conv_f64_out(PyObject *obj, void *arg) { return convert(obj, arg, NPY_FLOAT64, 1); }
int nr_conv_i64_out(PyObject *obj, void *arg) { return convert(obj, arg, NPY_INT64, 1); }
int nr_conv_u8_in(PyObject *obj, void *arg) { return convert(obj, arg, NPY_UINT8, 0); }
int nr_conv_u8_out(PyObject *obj, void *arg) { return convert(obj, arg, NPY_UINT8, 1); }
int nr_conv_num_in(PyObject *obj, void *arg) { return convert(obj, arg, NPY_NOTYPE, 0); }

void nr_args_release(struct nr_arg *const *args, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (args[i])
            Py_CLEAR(args[i]->array);
}

/* ------------------------------------------------------------------------ */
/* descriptor fields                                                         */

PyObject *nr_field_get(PyObject *obj, const char *what, const char *field)
{
    PyObject *v = PyObject_GetAttrString(obj, field);
    if (!v && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Format(PyExc_TypeError,
                     "%s has no field '%s' (a %.100s): the C core reads "
                     "descriptors by field name, never by position",
                     what, field, Py_TYPE(obj)->tp_name);
    }
    return v;
}

/* Replace a conversion error of obj.<field> by one that names it. */
static int field_error(const char *what, const char *field, const char *want)
{
    if (PyErr_ExceptionMatches(PyExc_OverflowError))
        PyErr_Format(PyExc_OverflowError, "%s: field '%s' is out of range for %s", what, field,
                     want);
    else if (PyErr_ExceptionMatches(PyExc_TypeError))
        PyErr_Format(PyExc_TypeError, "%s: field '%s' must be %s", what, field, want);
    return -1;
}

int nr_field_i64(PyObject *obj, const char *what, const char *field, int64_t *out)
{
    PyObject *v = nr_field_get(obj, what, field);
    if (!v)
        return -1;
    long long x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        return field_error(what, field, "an int64");
    *out = (int64_t)x;
    return 0;
}

int nr_field_int(PyObject *obj, const char *what, const char *field, int *out)
{
    int64_t x;
    if (nr_field_i64(obj, what, field, &x) < 0)
        return -1;
    if (x < INT_MIN || x > INT_MAX) {
        PyErr_Format(PyExc_OverflowError, "%s: field '%s' is out of range for a C int", what,
                     field);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int nr_field_float(PyObject *obj, const char *what, const char *field, float *out)
{
    PyObject *v = nr_field_get(obj, what, field);
    if (!v)
        return -1;
    double x = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (x == -1.0 && PyErr_Occurred())
        return field_error(what, field, "a float");
    *out = (float)x;
    return 0;
}

int nr_field_bool(PyObject *obj, const char *what, const char *field, int *out)
{
    PyObject *v = nr_field_get(obj, what, field);
    if (!v)
        return -1;
    int x = PyObject_IsTrue(v);
    Py_DECREF(v);
    if (x < 0)
        return -1;
    *out = x;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* status -> exception                                                       */

int nr_py_raise(enum nr_status s, const char *what)
{
    if (s != NR_OK && PyErr_Occurred())
        return -1; /* Python code called back during the call (a reduce hook) raised: keep it */
    switch (s) {
    case NR_OK: return 0;
    case NR_ERR_NOMEM: PyErr_Format(PyExc_MemoryError, "%s: out of memory", what); break;
    case NR_ERR_INDEX:
        PyErr_Format(PyExc_IndexError, "%s: an id is negative or out of range", what);
        break;
    case NR_ABORTED: PyErr_Format(PyExc_KeyboardInterrupt, "%s: aborted", what); break;
    case NR_ERR_TYPE: PyErr_Format(PyExc_TypeError, "%s: %s", what, nr_status_str(s)); break;
    default: PyErr_Format(PyExc_ValueError, "%s: %s", what, nr_status_str(s)); break;
    }
    return -1;
}

int nr_py_raise_value(enum nr_status s, const char *what, const char *value_msg)
{
    if (s == NR_ERR_VALUE && value_msg) {
        PyErr_SetString(PyExc_ValueError, value_msg);
        return -1;
    }
    return nr_py_raise(s, what);
}

PyObject *nr_py_none_or_raise(enum nr_status s, const char *what, const char *value_msg)
{
    if (nr_py_raise_value(s, what, value_msg) < 0)
        return NULL;
    Py_INCREF(Py_None);
    return Py_None;
}
