/*
 * nr_simd.h: runtime CPU dispatch for hot kernels.
 *
 * NR_MULTIVERSION marks a function that GCC compiles three times, for the
 * portable baseline, x86-64-v3 (AVX2 + FMA) and x86-64-v4 (AVX-512), choosing
 * among them when the library loads (GNU ifunc). The default build never uses
 * -march=native. Define NR_NO_MULTIVERSION (e.g. for sanitizer builds) to get
 * only the portable version.
 */
#ifndef NR_SIMD_H
#define NR_SIMD_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__linux__) && !defined(NR_NO_MULTIVERSION)
#define NR_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* Kernels written for 16-float (AVX-512) vectors, chosen at run time. */
#define NR_HAVE_V4_KERNELS 1
#define NR_V4 __attribute__((target("arch=x86-64-v4")))
/* the AVX-512 subsets x86-64-v4 implies (older GCCs lack the "x86-64-v4" name here) */
#define NR_CPU_IS_V4()                                                                   \
    (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&         \
     __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&        \
     __builtin_cpu_supports("avx512cd"))
#else
#define NR_MULTIVERSION
#define NR_HAVE_V4_KERNELS 0
#endif

#endif /* NR_SIMD_H */
