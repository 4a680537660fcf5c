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
#else
#define NR_MULTIVERSION
#endif

#endif /* NR_SIMD_H */
