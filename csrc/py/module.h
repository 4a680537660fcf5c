/*
 * module.h: what each binding file adds to the module neurec._core.
 *
 * _core.c defines the module; at exec time it adds every method table below
 * (PyModule_AddFunctions) and the Plan type, so each concern keeps its own file
 * and every C source is compiled once, into one extension module.
 */
#ifndef NR_PY_MODULE_H
#define NR_PY_MODULE_H

#include "convert.h"

/* A method table's entry for F, a METH_VARARGS | METH_KEYWORDS function. */
#define NR_PY_KW_METHOD(NAME, F, DOC) \
    {NAME, (PyCFunction)(void (*)(void))(F), METH_VARARGS | METH_KEYWORDS, DOC}

/* _plan.c: add the type Plan (a compiled model) to module m. Returns 0, or -1
 * with an error set. */
int nr_py_plan_add_type(PyObject *m);

/* _data.c: permutation, sample_epoch, score_topk. */
extern PyMethodDef nr_py_data_methods[];

/* _als.c: als_gram, als_solve, als_loss. */
extern PyMethodDef nr_py_als_methods[];

/* _rank.c: topk_rows, count_sampled, count_full, score. */
extern PyMethodDef nr_py_rank_methods[];

/* _score.c: ncf_topk (the fused NeuMF / MLP scorer of recommend). */
extern PyMethodDef nr_py_score_methods[];

/* _window.c: add the type SharedStep (a data-parallel step through a shared window)
 * to module m. Returns 0, or -1 with an error set. */
int nr_py_window_add_type(PyObject *m);

/* _exchange.c: sum_rows (the merge of a data-parallel gradient exchange). */
extern PyMethodDef nr_py_exchange_methods[];

/* _exchange.c: raise the Python error of nr_rowsum's status s (not NR_OK) in fn, an id
 * outside [0, table_rows) naming the bound after bound; returns -1. */
int nr_py_rowsum_raise(enum nr_status s, const char *fn, const char *bound, int64_t table_rows);

/* pools.h: set_num_threads, get_num_threads (declared there). */

#endif /* NR_PY_MODULE_H */
