/*
 * _core.c: the module neurec._core, the Python binding of neurec's C core.
 *
 * The binding is the only part of the core that includes Python.h and NumPy.
 * It is split by concern, all files compiled once into this one module:
 *
 *   convert.c  argument converters, descriptor fields, status -> exception
 *   pools.c    the thread pools every call borrows, set/get_num_threads
 *   _plan.c    the Plan type (compiled models: fit, predict)
 *   _data.c    sampling and the dot-product scorer of recommend
 *   _als.c     iALS
 *   _rank.c    ranking metrics and top-K (neurec.evaluation)
 *   _score.c   the fused NeuMF / MLP scorer of recommend
 *   _core.c    this file: module init, the declared enum names, build facts
 *
 * Every function checks its arguments (dtype, contiguity, writability, sizes),
 * borrows the arrays' buffers, releases the GIL around whole chunks of work
 * and turns an enum nr_status into an exception through one cleanup path.
 */
#define NR_PY_IMPORT_ARRAY /* the one file that imports NumPy's API table */
#include "module.h"
#include "pools.h"

#include "neurec/nr_names.h"
#include "neurec/nr_plan.h"
#include "neurec/nr_sampler.h"
#include "neurec/nr_score_ncf.h"
#include "neurec/nr_simd.h"

/* ------------------------------------------------------------------------ */
/* build and CPU facts (neurec.show_config)                                  */

#if defined(__clang__)
#define NR_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define NR_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define NR_COMPILER "msvc " NR_STR_(_MSC_VER)
#else
#define NR_COMPILER "unknown"
#endif
#define NR_STR_(x) NR_STR2_(x)
#define NR_STR2_(x) #x

static PyObject *py_build_info(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *levels = PyList_New(0);
    if (!levels)
        return NULL;
    for (int l = 0; l < NR_SIMD_N_LEVELS; l++) {
#if !NR_SIMD_X86
        if (l != NR_SIMD_BASELINE)
            continue;
#endif
        PyObject *name = PyUnicode_FromString(nr_simd_name((enum nr_simd_level)l));
        if (!name || PyList_Append(levels, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(levels);
            return NULL;
        }
        Py_DECREF(name);
    }
    return Py_BuildValue("{s:s,s:N,s:s,s:s,s:i}", "compiler", NR_COMPILER, "simd_compiled", levels,
                         "simd_supported", nr_simd_name(nr_simd_detect()), "simd_level",
                         nr_simd_name(nr_simd_level()), "cpu_count", nr_cpu_count());
}

/* _set_simd_level(name) -> the level in force (capped at what the CPU has). */
static PyObject *py_set_simd_level(PyObject *self, PyObject *arg)
{
    (void)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name)
        return NULL;
    int level = nr_simd_parse(name);
    if (level < 0) {
        PyErr_Format(PyExc_ValueError, "unknown SIMD level %R; use 'baseline', 'avx2' or 'avx512'",
                     arg);
        return NULL;
    }
    return PyUnicode_FromString(nr_simd_name(nr_simd_set_level((enum nr_simd_level)level)));
}

static PyMethodDef module_methods[] = {
    {"build_info", py_build_info, METH_NOARGS, "build_info() -> dict of compiler and SIMD facts."},
    {"_set_simd_level", py_set_simd_level, METH_O,
     "_set_simd_level(name) -> name of the level in force (tests and benchmarks)."},
    {NULL, NULL, 0, NULL},
};

/* ------------------------------------------------------------------------ */
/* module                                                                    */

/* Module attribute `attr`: a dict of names[i] -> i for i < n (the declared ABI, nr_names.h). */
static int add_names(PyObject *m, const char *attr, const char *const *names, int n)
{
    PyObject *d = PyDict_New();
    if (!d)
        return -1;
    for (int i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLong(i);
        if (!v || PyDict_SetItemString(d, names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return -1;
        }
        Py_DECREF(v);
    }
    if (PyModule_AddObject(m, attr, d) < 0) {
        Py_DECREF(d);
        return -1;
    }
    return 0;
}

static int core_exec(PyObject *m)
{
    if (PyArray_ImportNumPyAPI() < 0)
        return -1;
    if (nr_py_pools_init() < 0)
        return -1;
    if (PyModule_AddFunctions(m, nr_py_pool_methods) < 0 ||
        PyModule_AddFunctions(m, nr_py_data_methods) < 0 ||
        PyModule_AddFunctions(m, nr_py_als_methods) < 0 ||
        PyModule_AddFunctions(m, nr_py_rank_methods) < 0 ||
        PyModule_AddFunctions(m, nr_py_score_methods) < 0 ||
        PyModule_AddFunctions(m, nr_py_exchange_methods) < 0)
        return -1;
    if (nr_py_plan_add_type(m) < 0 || nr_py_window_add_type(m) < 0)
        return -1;
    if (PyModule_AddIntConstant(m, "SAMPLER_BLOCK", NR_SAMPLER_BLOCK) < 0 ||
        PyModule_AddIntConstant(m, "AUC_BINS", NR_AUC_BINS) < 0)
        return -1;
    const char *status_names[NR_STATUS_COUNT];
    for (int i = 0; i < NR_STATUS_COUNT; i++)
        status_names[i] = nr_status_str((enum nr_status)i);
    if (add_names(m, "OPS", nr_op_names, NR_OP_COUNT) < 0 ||
        add_names(m, "ACTIVATIONS", nr_act_names, NR_ACT_COUNT) < 0 ||
        add_names(m, "LOSSES", nr_loss_names, NR_LOSS_COUNT) < 0 ||
        add_names(m, "OPTIMIZERS", nr_optim_names, NR_OPTIM_COUNT) < 0 ||
        add_names(m, "STATUSES", status_names, NR_STATUS_COUNT) < 0 ||
        add_names(m, "NCF_PARTS", nr_ncf_part_names, NR_NCF_PART_COUNT) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#if PY_VERSION_HEX >= 0x030C0000
    /* process-wide state: the pool free list, the thread count, the static Plan type */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neurec._core",
    .m_doc = "neurec's C core: plan executor, optimizers, sampler, scoring, iALS, ranking "
             "metrics and top-K, thread pools.",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = core_slots,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
