/*
 * nr_kernels.h: the dense float32 kernels of the plan executor.
 *
 * All matrices are row-major and contiguous. The caller owns every buffer.
 * Functions are pure (no globals) and thread-safe on disjoint outputs. Hot
 * loops are written so that the compiler vectorises them without
 * -ffast-math: inner loops are axpy-shaped, and reductions use eight
 * independent partial sums.
 */
#ifndef NR_KERNELS_H
#define NR_KERNELS_H

#include <stdint.h>

enum nr_act {
    NR_ACT_LINEAR = 0,
    NR_ACT_RELU = 1,
    NR_ACT_SIGMOID = 2,
    NR_ACT_TANH = 3,
    NR_ACT_SOFTMAX = 4, /* over the last axis, rows of length n */
};

/* y[r, :] = b + x[r, :] @ w for r < rows; x is rows*k, w is k*n, b may be NULL. */
void nr_dense_forward(float *y, const float *x, const float *w, const float *b, int64_t rows,
                      int64_t k, int64_t n);

/* Backward of nr_dense_forward for gy (rows*n):
 * gx (rows*k) += gy @ w^T when gx != NULL; gw (k*n) += x^T @ gy when gw != NULL (NULL: a frozen
 * kernel); gb (n) += sum of gy rows when gb != NULL. wt is caller scratch of k*n floats
 * (receives w^T). */
void nr_dense_backward(float *gx, float *gw, float *gb, const float *gy, const float *x,
                       const float *w, float *wt, int64_t rows, int64_t k, int64_t n);

/* c (m x n, row stride ldc) = or += A . B, with A[i][p] = a[i * ars + p * acs] (any
 * strides) and B (kk x n) row-major with row stride ldb. Register-tiled (2 x 32, 4 x 16, 8 x 8). */
void nr_gemm(float *c, int64_t ldc, const float *a, int64_t ars, int64_t acs, const float *b,
             int64_t ldb, int64_t m, int64_t n, int64_t kk, int accumulate);

/* y = act(x) over rows*n values (softmax normalises each row of n). y may equal x. */
void nr_act_forward(float *y, const float *x, enum nr_act act, int64_t rows, int64_t n);

/* gx += dact(x) * gy given the activation output y; gx must not overlap gy or y. */
void nr_act_backward(float *gx, const float *gy, const float *y, enum nr_act act, int64_t rows,
                     int64_t n);

/* Sum of a[i] * b[i], i < n (eight partial sums). */
float nr_dot(const float *a, const float *b, int64_t n);

/* y[i] += a * x[i], i < n. */
void nr_axpy(float *y, const float *x, float a, int64_t n);

#endif /* NR_KERNELS_H */
