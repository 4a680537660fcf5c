/*
 * nr_table.h: an embedding table and its optimizer state, as one object.
 *
 * A table is rows x cols float32 weights plus, shaped like them, the
 * optimizer's slot arrays (nr_optim.h: SGD's velocity, Adam's m, v and vhat,
 * ...) and, for lazy updates, one step count per row. Every array is
 * borrowed: the caller (Python) allocates and frees them, C reads and writes
 * them in place. A plan keeps one struct nr_table per embedding table (its
 * rows are what ids are checked against); nr_optim's steps take the
 * parameter view of nr_table_param.
 *
 * Tables grow (new users and items) by nr_table_resize into storage the
 * caller provides: the rows kept have their weights and optimizer state
 * carried over bit for bit, new rows start from what the caller wrote there.
 */
#ifndef NR_TABLE_H
#define NR_TABLE_H

#include <stdint.h>

#include "neurec/nr_optim.h"
#include "neurec/nr_status.h"

#define NR_TABLE_SLOTS 3

struct nr_table {
    float *w;                    /* rows * cols weights, row-major */
    int64_t rows, cols;
    float *slot[NR_TABLE_SLOTS]; /* optimizer state shaped like w, or NULL when unused */
    int64_t *row_steps;          /* one step count per row (nr_optim_step_rows), or NULL */
};

/* The table a parameter's arrays describe (its l2 and flags are not part of it). */
static inline struct nr_table nr_table_of_param(const struct nr_param *p)
{
    struct nr_table t = {.w = p->w,
                         .rows = p->rows,
                         .cols = p->cols,
                         .slot = {p->slot[0], p->slot[1], p->slot[2]},
                         .row_steps = p->row_steps};
    return t;
}

/* The parameter view of t with L2 factor l2, for nr_optim_step_rows and
 * nr_optim_step_dense. It borrows t's arrays. */
static inline struct nr_param nr_table_param(const struct nr_table *t, float l2)
{
    struct nr_param p = {.w = t->w,
                         .rows = t->rows,
                         .cols = t->cols,
                         .slot = {t->slot[0], t->slot[1], t->slot[2]},
                         .row_steps = t->row_steps,
                         .l2 = l2,
                         .is_table = 1};
    return p;
}

/* Move t into the storage `to` describes, and make t describe it.
 *
 * to holds to->rows rows of t's width with the same arrays present (a slot
 * or row_steps is NULL in to exactly when it is NULL in t); the caller owns
 * it and has written the initial weights, optimizer state and step counts of
 * the new rows (those past t->rows) into it. The first min(t->rows, to->rows)
 * rows of every array are copied from t, bit for bit; rows past to->rows are
 * dropped (shrinking). The arrays may overlap t's (memmove), e.g. the same
 * arrays with room for more rows; only to's arrays are written, and nothing
 * is freed. Errors, which leave t and to untouched: NR_ERR_SHAPE (to->cols !=
 * t->cols, to->rows < 0), NR_ERR_VALUE (an array present in one and not the
 * other, or a NULL weight array with rows). Not thread-safe: no plan may
 * run on t meanwhile. */
enum nr_status nr_table_resize(struct nr_table *t, const struct nr_table *to);

#endif /* NR_TABLE_H */
