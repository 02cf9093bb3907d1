// Run-time choice of the SIMD level.
#include "nk_internal.h"

#include <stdlib.h>

static _Atomic int nk_level = -1;

static int detect_once(void) {
#if NK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return nk_amx_available() ? NK_LEVEL_AMX : NK_LEVEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return NK_LEVEL_AVX2;
#endif
    return NK_LEVEL_PORTABLE;
}

int nk_simd_detect(void) {
    static _Atomic int detected = -1;
    int level = atomic_load_explicit(&detected, memory_order_relaxed);
    if (level < 0) {
        level = detect_once();
        atomic_store_explicit(&detected, level, memory_order_relaxed);
    }
    return level;
}

int nk_simd_level(void) {
    int level = atomic_load_explicit(&nk_level, memory_order_relaxed);
    if (level < 0) {
        level = nk_simd_detect();
        // NEKOCHAT_SIMD=portable|avx2|avx512 caps the level (to time or check the other paths on
        // one machine).
        const char *cap = getenv("NEKOCHAT_SIMD");
        if (cap && !strcmp(cap, "portable")) level = NK_LEVEL_PORTABLE;
        if (cap && !strcmp(cap, "avx2") && level > NK_LEVEL_AVX2) level = NK_LEVEL_AVX2;
        if (cap && !strcmp(cap, "avx512") && level > NK_LEVEL_AVX512) level = NK_LEVEL_AVX512;
        atomic_store_explicit(&nk_level, level, memory_order_relaxed);
    }
    return level;
}

_Thread_local int nk_thread_level = -1;

void nk_thread_simd_level(int level) {
    if (level < 0) { nk_thread_level = -1; return; }
    int best = nk_simd_detect();
    nk_thread_level = level < best ? level : best;
}

int nk_current_simd_level(void) { return nk_level_now(); }

void nk_force_simd_level(int level) {
    int best = nk_simd_detect();
    if (level < 0) level = 0;
    atomic_store_explicit(&nk_level, level < best ? level : best, memory_order_relaxed);
}

const char *nk_simd_name(int level) {
    switch (level) {
    case NK_LEVEL_AVX2: return "avx2";
    case NK_LEVEL_AVX512: return "avx512-vnni";
    case NK_LEVEL_AMX: return "avx512-amx";
    default: return "portable";
    }
}
