/*
 * nr_simd.h: run-time CPU dispatch for the hot kernels.
 *
 * A hot function is written once, as a `static inline NR_ALWAYS_INLINE`
 * body NAME_impl, and NR_SIMD_CLONES compiles it once per instruction-set
 * level with `__attribute__((target(...)))` on a thin wrapper (the body is
 * inlined into each wrapper and vectorised for that wrapper's ISA):
 *
 *   level            where             vectors   wrapper
 *   NR_SIMD_BASELINE every CPU         16 bytes  NAME_base  (SSE2 on x86-64,
 *                                                 NEON on aarch64, generic
 *                                                 elsewhere)
 *   NR_SIMD_AVX2     x86 AVX2 + FMA    32 bytes  NAME_avx2
 *   NR_SIMD_AVX512   x86 AVX-512 F/VL/ 64 bytes  NAME_avx512
 *                    BW/DQ/CD
 *
 * NR_SIMD_DISPATCH then calls the wrapper of nr_simd_level(), which is
 * chosen once (cpuid + the OS's register-state check, capped by the
 * NEUREC_SIMD environment variable) and cached. Unlike GCC's target_clones
 * this needs neither GNU ifunc (absent on musl, macOS and Windows) nor a
 * particular compiler: GCC >= 9 and clang/clang-cl alike. The default build
 * never uses -march=native. Defining NR_NO_MULTIVERSION compiles only the
 * baseline level.
 *
 * Results are bit-identical between the AVX2 and AVX-512 levels (same
 * summation order, fused multiply-adds in both); the baseline level rounds
 * without FMA, so it differs in the last bits.
 */
#ifndef NR_SIMD_H
#define NR_SIMD_H

enum nr_simd_level {
    NR_SIMD_BASELINE = 0, /* SSE2 / NEON / generic: 16-byte vectors */
    NR_SIMD_AVX2 = 1,     /* x86: AVX2 + FMA, 32-byte vectors */
    NR_SIMD_AVX512 = 2,   /* x86: AVX-512 F, VL, BW, DQ, CD, 64-byte vectors */
};
#define NR_SIMD_N_LEVELS 3

#if defined(__GNUC__) || defined(__clang__)
#define NR_ALWAYS_INLINE __attribute__((always_inline))
#else
#define NR_ALWAYS_INLINE
#endif

#if (defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)) && \
    (defined(__GNUC__) || defined(__clang__)) && !defined(NR_NO_MULTIVERSION)
#define NR_SIMD_X86 1
#define NR_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NR_TARGET_AVX512 \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512cd,avx2,fma")))
#else
#define NR_SIMD_X86 0
#endif

/* The level the kernels run at: the best the CPU and OS support, capped by
 * NEUREC_SIMD=baseline|avx2|avx512 when set, or by nr_simd_set_level.
 * Thread-safe; the first call detects, later calls read a cached value. */
enum nr_simd_level nr_simd_level(void);

/* The cached level (-1 until the first nr_simd_level call); read through
 * nr_simd_level_now, which every dispatch uses: an inline relaxed load, no
 * call, on the hot path. */
extern int nr_simd_cached_level_;
static inline enum nr_simd_level nr_simd_level_now(void)
{
#if defined(__GNUC__) || defined(__clang__)
    int v = __atomic_load_n(&nr_simd_cached_level_, __ATOMIC_RELAXED);
    return v >= 0 ? (enum nr_simd_level)v : nr_simd_level();
#else
    return nr_simd_level();
#endif
}

/* The best level this CPU and OS support (ignores the caps). Thread-safe. */
enum nr_simd_level nr_simd_detect(void);

/* Cap the level at `level` (clamped to what the CPU supports) and return the
 * level now in force. For tests and benchmarks; takes effect for calls that
 * start afterwards. Thread-safe. */
enum nr_simd_level nr_simd_set_level(enum nr_simd_level level);

/* A static name: "avx512", "avx2", and for the baseline "neon" on aarch64,
 * "sse2" on x86, "generic" elsewhere. */
const char *nr_simd_name(enum nr_simd_level level);

/* Parse a level name ("baseline", "sse2", "neon", "generic", "avx2",
 * "avx512"; case-insensitive). Returns -1 for anything else. */
int nr_simd_parse(const char *name);

/* NR_SIMD_CLONES(NAME, (params), (args)) defines static void NAME_base,
 * NAME_avx2 and NAME_avx512 (the latter two on x86 only), each calling the
 * always-inline NAME_impl(level, args) with its level as a compile-time
 * constant (so the body can pick vector widths by `if (level >= ...)` and
 * the other branches fold away); NR_SIMD_CLONES_RET(RET, ...) is the same
 * for a function returning RET. NR_SIMD_DISPATCH(NAME, (args)) calls the
 * clone of the current level (a statement); NR_SIMD_DISPATCH_RET is an
 * expression. */
#define NR_UNPACK_(...) __VA_ARGS__
#define NR_SIMD_CLONE_(ATTR, SFX, LEVEL, NAME, PARAMS, ARGS) \
    ATTR static void NAME##_##SFX PARAMS { NAME##_impl(LEVEL, NR_UNPACK_ ARGS); }
#define NR_SIMD_CLONE_RET_(ATTR, SFX, LEVEL, RET, NAME, PARAMS, ARGS) \
    ATTR static RET NAME##_##SFX PARAMS { return NAME##_impl(LEVEL, NR_UNPACK_ ARGS); }

#if NR_SIMD_X86
#define NR_SIMD_CLONES(NAME, PARAMS, ARGS)                                 \
    NR_SIMD_CLONE_(, base, NR_SIMD_BASELINE, NAME, PARAMS, ARGS)           \
    NR_SIMD_CLONE_(NR_TARGET_AVX2, avx2, NR_SIMD_AVX2, NAME, PARAMS, ARGS) \
    NR_SIMD_CLONE_(NR_TARGET_AVX512, avx512, NR_SIMD_AVX512, NAME, PARAMS, ARGS)
#define NR_SIMD_CLONES_RET(RET, NAME, PARAMS, ARGS)                                 \
    NR_SIMD_CLONE_RET_(, base, NR_SIMD_BASELINE, RET, NAME, PARAMS, ARGS)           \
    NR_SIMD_CLONE_RET_(NR_TARGET_AVX2, avx2, NR_SIMD_AVX2, RET, NAME, PARAMS, ARGS) \
    NR_SIMD_CLONE_RET_(NR_TARGET_AVX512, avx512, NR_SIMD_AVX512, RET, NAME, PARAMS, ARGS)
#define NR_SIMD_DISPATCH(NAME, ARGS)                    \
    do {                                                \
        switch (nr_simd_level_now()) {                  \
        case NR_SIMD_AVX512: NAME##_avx512 ARGS; break; \
        case NR_SIMD_AVX2: NAME##_avx2 ARGS; break;     \
        default: NAME##_base ARGS; break;               \
        }                                               \
    } while (0)
#define NR_SIMD_DISPATCH_RET(NAME, ARGS)                        \
    (nr_simd_level_now() == NR_SIMD_AVX512 ? NAME##_avx512 ARGS \
     : nr_simd_level_now() == NR_SIMD_AVX2 ? NAME##_avx2 ARGS   \
                                           : NAME##_base ARGS)
#else
#define NR_SIMD_CLONES(NAME, PARAMS, ARGS) \
    NR_SIMD_CLONE_(, base, NR_SIMD_BASELINE, NAME, PARAMS, ARGS)
#define NR_SIMD_CLONES_RET(RET, NAME, PARAMS, ARGS) \
    NR_SIMD_CLONE_RET_(, base, NR_SIMD_BASELINE, RET, NAME, PARAMS, ARGS)
#define NR_SIMD_DISPATCH(NAME, ARGS) NAME##_base ARGS
#define NR_SIMD_DISPATCH_RET(NAME, ARGS) (NAME##_base ARGS)
#endif

#endif /* NR_SIMD_H */
