/*
 * plan_obj.h: the objects behind neurec._core.Plan (_plan.c) and the batch
 * gradients its reduce hook receives (_grads.c), shared by those two files.
 */
#ifndef NR_PY_PLAN_OBJ_H
#define NR_PY_PLAN_OBJ_H

#include "convert.h"

#include "neurec/nr_plan.h"
#include "neurec/nr_rowsum.h"
#include "neurec/nr_thread.h"

typedef struct {
    PyObject_HEAD
    struct nr_plan *plan;
    struct nr_param *params;
    int32_t n_inputs;
    int64_t out_size;
    PyObject *keep; /* list of the arrays the params borrow */
    nr_mutex_t lock; /* one fit/predict of this plan at a time (its scratch) */
    long lock_generation; /* nr_py_fork_generation() when lock was initialised */
    PyObject *hook; /* the reduce hook, a callable, or NULL (set_reduce_hook) */
    PyObject *after; /* the apply hook (set_reduce_hook's after=), or NULL */
    PyObject *hook_kept; /* arrays the hook handed to the current batch's apply phase */
    unsigned long hook_thread; /* the thread running the hook while in_hook */
    int in_hook;
    struct nr_rowsum_ws rowsum_ws; /* merge_rows's scratch, kept from batch to batch */
    void *merged; /* merge_rows's output: the union's ids and gradients, read by the apply */
    size_t merged_bytes; /* phase; reused by the next batch's hook (grown as needed) */
} PlanObject;

/* What a Python reduce hook receives: one batch's gradients (struct
 * nr_batch_grads), valid during the call only. The arrays it hands out view
 * the plan's buffers without a copy and keep this object alive, so the call
 * fails if one outlives it (it would point into scratch the next batch reuses). */
typedef struct {
    PyObject_HEAD
    struct nr_batch_grads *g; /* NULL once the hook returned */
    PlanObject *plan;         /* borrowed: the plan outlives its fit */
} GradsObject;

/* _grads.c: the type neurec._core.BatchGrads (made ready by _plan.c). */
extern PyTypeObject GradsType;

#endif /* NR_PY_PLAN_OBJ_H */
