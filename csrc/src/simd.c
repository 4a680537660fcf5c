#include "neurec/nr_simd.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#if NR_SIMD_X86
#include <cpuid.h>
#if defined(__APPLE__)
#include <sys/sysctl.h>
#endif

/* XCR0: the register state the OS saves on a context switch. A CPU may have
 * AVX while the OS (or a hypervisor) has it off; then the instructions fault. */
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

#if defined(__APPLE__)
/* macOS turns the AVX-512 state on at a thread's first AVX-512 instruction,
 * so XCR0 does not show it yet; the kernel says whether it will. */
static int macos_has(const char *name)
{
    int v = 0;
    size_t len = sizeof v;
    return sysctlbyname(name, &v, &len, NULL, 0) == 0 && v != 0;
}
#endif

static enum nr_simd_level detect(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, NULL) < 7)
        return NR_SIMD_BASELINE;
    __cpuid_count(1, 0, a, b, c, d);
    const int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx)
        return NR_SIMD_BASELINE;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) /* SSE and AVX (ymm) state */
        return NR_SIMD_BASELINE;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    if (!avx2 || !fma)
        return NR_SIMD_BASELINE;
    const int avx512 = ((b >> 16) & 1) /* F */ && ((b >> 17) & 1) /* DQ */ &&
                       ((b >> 28) & 1) /* CD */ && ((b >> 30) & 1) /* BW */ &&
                       ((b >> 31) & 1) /* VL */;
    int zmm_state = (xcr0 & 0xE0) == 0xE0; /* opmask, ZMM_Hi256, Hi16_ZMM */
#if defined(__APPLE__)
    if (!zmm_state)
        zmm_state = macos_has("hw.optional.avx512f");
#endif
    return avx512 && zmm_state ? NR_SIMD_AVX512 : NR_SIMD_AVX2;
}
#else
static enum nr_simd_level detect(void) { return NR_SIMD_BASELINE; }
#endif

static atomic_int g_detected = -1; /* what the CPU supports */
/* what runs: detected, capped (nr_simd.h reads it inline; atomics through the
 * GCC/clang builtins, which the header can use without <stdatomic.h>) */
int nr_simd_cached_level_ = -1;

enum nr_simd_level nr_simd_detect(void)
{
    int v = atomic_load_explicit(&g_detected, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect();
        atomic_store_explicit(&g_detected, v, memory_order_relaxed);
    }
    return (enum nr_simd_level)v;
}

enum nr_simd_level nr_simd_level(void)
{
    int v = __atomic_load_n(&nr_simd_cached_level_, __ATOMIC_RELAXED);
    if (v >= 0)
        return (enum nr_simd_level)v;
    v = (int)nr_simd_detect();
    const char *env = getenv("NEUREC_SIMD");
    if (env && *env) {
        int cap = nr_simd_parse(env);
        if (cap >= 0 && cap < v)
            v = cap;
    }
    /* Two threads racing here compute the same value. */
    __atomic_store_n(&nr_simd_cached_level_, v, __ATOMIC_RELAXED);
    return (enum nr_simd_level)v;
}

enum nr_simd_level nr_simd_set_level(enum nr_simd_level level)
{
    int v = (int)level, best = (int)nr_simd_detect();
    if (v < 0)
        v = 0;
    if (v > best)
        v = best;
    __atomic_store_n(&nr_simd_cached_level_, v, __ATOMIC_RELAXED);
    return (enum nr_simd_level)v;
}

const char *nr_simd_name(enum nr_simd_level level)
{
    switch (level) {
    case NR_SIMD_AVX512: return "avx512";
    case NR_SIMD_AVX2: return "avx2";
    case NR_SIMD_BASELINE: break;
    }
#if defined(__aarch64__) || defined(_M_ARM64)
    return "neon";
#elif defined(__x86_64__) || defined(_M_X64) || defined(__SSE2__)
    return "sse2";
#else
    return "generic";
#endif
}

static int name_is(const char *s, const char *name)
{
    for (; *s && *name; s++, name++)
        if (tolower((unsigned char)*s) != *name)
            return 0;
    return *s == '\0' && *name == '\0';
}

int nr_simd_parse(const char *name)
{
    if (!name)
        return -1;
    if (name_is(name, "avx512"))
        return NR_SIMD_AVX512;
    if (name_is(name, "avx2"))
        return NR_SIMD_AVX2;
    if (name_is(name, "baseline") || name_is(name, "sse2") || name_is(name, "neon") ||
        name_is(name, "generic"))
        return NR_SIMD_BASELINE;
    return -1;
}
