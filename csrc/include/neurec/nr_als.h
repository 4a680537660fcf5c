/*
 * nr_als.h: implicit-feedback alternating least squares (iALS) for
 * dot-product models (Hu, Koren and Volinsky 2008; Rendle et al. 2021).
 *
 * One half-sweep solves every row x_u of X (users, say) with the other side
 * Y (items) fixed, minimising over all n_cols columns j
 *
 *     sum_j c_uj (p_uj - o_j - x_u . y_j)^2  +  lambda_u |x_u|^2
 *
 * where p_uj = 1 and c_uj = 1 + alpha * r_uj for the row's nonzeros r_uj of
 * the CSR matrix, p_uj = 0 and c_uj = 1 elsewhere, and o_j is an optional
 * fixed per-column offset (the other side's bias when a model has biases:
 * the caller appends a constant-1 column to Y for the row's own bias and
 * passes the other bias as o). Frequency-scaled regularization:
 *
 *     lambda_u = reg * (1 + alpha * sum_j r_uj / n_cols)^nu
 *
 * i.e. the row's total confidence weight relative to an empty row, raised to
 * nu (nu = 0: plain reg for every row; nu = 1: Rendle et al. 2021's
 * (|I_u| + alpha_0 |I|)^nu up to a constant factor).
 *
 * Gramian trick: the normal equations are
 *     (G + sum_nz (c_uj - 1) y_j y_j^T + lambda_u I) x_u
 *         = -Y^T o + sum_nz (c_uj (1 - o_j) + o_j) y_j,      G = Y^T Y,
 * so G and Y^T o are computed once per half-sweep (nr_als_gram) and each
 * row only touches its nonzeros. Rows are solved either by a few steps of
 * conjugate gradient warm-started from the current x_u (NR_ALS_CG, as
 * implicit's cg_steps: O(steps * (dim^2 + nnz * dim)) per row) or exactly by
 * a Cholesky factorisation (NR_ALS_CHOLESKY: O(nnz * dim^2 + dim^3 / 3)).
 *
 * Threads take blocks of rows from a shared counter. Every row is solved
 * independently of the others and of the thread that solves it, and G is
 * computed with the same summation order whatever the thread count, so the
 * factors are bit-identical for any number of threads (for a given SIMD
 * level: the baseline kernels round without FMA).
 *
 * All arrays are caller-owned; X is updated in place. Nothing is printed.
 */
#ifndef NR_ALS_H
#define NR_ALS_H

#include <stdint.h>

#include "neurec/nr_pool.h"
#include "neurec/nr_status.h"

enum nr_als_solver {
    NR_ALS_CG = 0,       /* cg_steps conjugate-gradient steps from the current row */
    NR_ALS_CHOLESKY = 1, /* exact solve (float64 factorisation) */
};

struct nr_als_args {
    const int64_t *indptr;  /* n_rows + 1: CSR of the rows being solved */
    const int32_t *indices; /* column ids in [0, n_cols) */
    const float *values;    /* r_uj per nonzero (>= 0), or NULL for all 1 */
    int64_t n_rows, n_cols, dim;
    float *x;            /* n_rows * dim, row-major: the rows solved (in place) */
    const float *y;      /* n_cols * dim, row-major: the fixed side */
    const float *offset; /* n_cols fixed per-column offsets o_j, or NULL (all 0) */
    const float *gram;   /* dim * dim: Y^T Y (nr_als_gram) */
    const float *yo;     /* dim: Y^T o (nr_als_gram), or NULL when offset is NULL */
    float alpha;         /* confidence 1 + alpha * r; >= 0 */
    float reg;           /* lambda >= 0 */
    float nu;            /* frequency exponent >= 0 */
    enum nr_als_solver solver;
    int cg_steps;        /* >= 1 for NR_ALS_CG */
    int64_t row0, row1;  /* solve rows [row0, row1) only (for chunked calls) */
};

/* gram = Y^T Y (dim x dim) and, when offset and yo are not NULL,
 * yo = Y^T offset (dim), for y of n x dim. Caller owns all arrays.
 * Deterministic for any thread count. Thread-safe on distinct outputs.
 * Errors: NR_ERR_VALUE (negative sizes). */
enum nr_status nr_als_gram(float *gram, float *yo, const float *y, const float *offset, int64_t n,
                           int64_t dim, struct nr_pool *pool);

/* Solve rows [a->row0, a->row1) of a->x in place (see the top of this file).
 * Thread-safe for calls writing disjoint x. On error some rows may already
 * be updated. Errors: NR_ERR_VALUE (bad sizes, alpha/reg/nu negative or not
 * finite, cg_steps < 1 with NR_ALS_CG, unknown solver, a negative value),
 * NR_ERR_INDEX (a column id outside [0, n_cols)), NR_ERR_NOMEM. */
enum nr_status nr_als_solve_rows(const struct nr_als_args *a, struct nr_pool *pool);

/* The objective's part that belongs to the rows of a (row0, row1 ignored:
 * all rows): with data != 0 the weighted squared error over every
 * (row, column) cell plus sum_u lambda_u |x_u|^2; with data == 0 only the
 * regularization term. The full iALS objective is
 * nr_als_loss(users, data=1) + nr_als_loss(items, data=0). Summed in float64
 * over fixed blocks of rows, so the value is the same for any thread count.
 * Errors: as nr_als_solve_rows. */
enum nr_status nr_als_loss(const struct nr_als_args *a, int data, double *out,
                           struct nr_pool *pool);

#endif /* NR_ALS_H */
