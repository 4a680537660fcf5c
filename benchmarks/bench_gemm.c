/*
 * bench_gemm.c: GFLOP/s of nr_gemm at each SIMD level on the NCF tower's shapes.
 *
 *   gcc -O3 -std=c11 -fno-strict-aliasing -fno-math-errno -ffp-contract=fast -Icsrc/include \
 *       benchmarks/bench_gemm.c csrc/src/kernels.c csrc/src/simd.c -lm -o /tmp/bench_gemm
 *   /tmp/bench_gemm          # every level this CPU runs (same for CC=clang)
 *
 * Shapes m x n x k: a 256-sample batch through 64->32, 64->16, 32->16, 16->8 layers, and two
 * larger products (scoring-like). Each is timed 15 times; the best time counts (a shared host
 * only ever slows a run down).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "neurec/nr_kernels.h"
#include "neurec/nr_simd.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(void)
{
    static const int shapes[][3] = {{256, 32, 64}, {256, 16, 64},  {256, 16, 32},
                                    {256, 8, 16},  {1024, 64, 64}, {4096, 128, 64}};
    const int n_shapes = (int)(sizeof shapes / sizeof *shapes);
    for (int level = NR_SIMD_BASELINE; level <= (int)nr_simd_detect(); level++) {
        printf("%-8s", nr_simd_name(nr_simd_set_level((enum nr_simd_level)level)));
        for (int s = 0; s < n_shapes; s++) {
            const int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            float *a = malloc(sizeof(float) * (size_t)m * (size_t)k);
            float *b = malloc(sizeof(float) * (size_t)k * (size_t)n);
            float *c = malloc(sizeof(float) * (size_t)m * (size_t)n);
            if (!a || !b || !c)
                return 2;
            for (int i = 0; i < m * k; i++)
                a[i] = (float)(i % 7) * 0.1f;
            for (int i = 0; i < k * n; i++)
                b[i] = (float)(i % 5) * 0.1f;
            int reps = 2000000 / (m * n / 8 + 1);
            reps = reps < 5 ? 5 : reps;
            double best = 1e30;
            for (int t = 0; t < 15; t++) {
                double t0 = now();
                for (int r = 0; r < reps; r++)
                    nr_gemm(c, n, a, k, 1, b, n, m, n, k, 0);
                double dt = (now() - t0) / reps;
                best = dt < best ? dt : best;
            }
            printf("  %dx%dx%d %6.1f", m, n, k, 2.0 * m * n * k / best / 1e9);
            free(a);
            free(b);
            free(c);
        }
        printf("  GFLOP/s\n");
    }
    return 0;
}
