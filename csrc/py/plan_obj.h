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

/* _grads.c, for the exchanges that pack and merge a batch's rows (the methods of
 * BatchGrads, and _window.c's steps through a shared window). Those returning int
 * return 0, or -1 with an error set. */

/* The index among the plan's tables of each table of prm (n_tab), checked to
 * have sparse parts: a fresh PyMem array. */
int *nr_py_grads_tables(GradsObject *self, const int64_t *prm, int64_t n_tab, const char *fn);
/* The rows of tables tab grouped by owner (id % owners): cnt[d * n_tab + j]
 * rows of table j for owner d (all 0 when empty); returns the words they pack to. */
int64_t nr_py_grads_count(const struct nr_batch_grads *g, const int *tab, int64_t n_tab,
                          long owners, int empty, int64_t *cnt);
/* Pack those rows at at (room for the words nr_py_grads_count returned): per
 * owner, per table, the ids (int64) then the gradients' float32 bits. */
int nr_py_grads_pack(const struct nr_batch_grads *g, const int *tab, int64_t n_tab, long owners,
                     int empty, const int64_t *cnt, char *at);
/* Merge every sender's block (sender s's from word offsets[s] of msg, c[s *
 * n_tab + j] rows of table j) into the parts, summed in sender order with weights. */
int nr_py_grads_merge(GradsObject *self, const int *tab, int64_t n_tab, const uint32_t *msg,
                      int64_t msg_words, const int64_t *offsets, const int64_t *c, int64_t senders,
                      const double *weights);
/* The words of the new values of the rows the parts of tables tab hold, and
 * their packing at at (row counts, then per table the ids and the values). */
int64_t nr_py_grads_values_words(const struct nr_batch_grads *g, const int *tab, int64_t n_tab);
void nr_py_grads_pack_values(GradsObject *self, const int *tab, int64_t n_tab, char *at);
/* Write every sender's new values but skip's (block words from word off[s] of
 * base, total words) into the tables (prm: the tables' parameter ids, for errors). */
int nr_py_grads_unpack(GradsObject *self, const int *tab, const int64_t *prm, int64_t n_tab,
                       const char *base, int64_t total, const int64_t *off, int64_t senders,
                       int64_t block, int64_t skip);

#endif /* NR_PY_PLAN_OBJ_H */
