// Private to CNekoKernels: target attributes, scalar conversions, the dispatch level.
#ifndef NK_INTERNAL_H
#define NK_INTERNAL_H

#include "nk_kernels.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define NK_X86 1
#include <immintrin.h>
// Per-function targets: the library is built for baseline x86-64 and picks one of these at
// run time (never -march=native: the same binary runs on AVX2-only and AVX-512 machines).
#define NK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define NK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#else
#define NK_X86 0
#endif

#define NK_LEVEL_PORTABLE 0
#define NK_LEVEL_AVX2 1
#define NK_LEVEL_AVX512 2
#define NK_LEVEL_AMX 3

/// The level every dispatcher reads (relaxed atomics: tests may force it from another thread).
/// This thread's pinned level (-1: none): see nk_thread_simd_level; a pool worker takes the one
/// of the thread that started its task.
extern _Thread_local int nk_thread_level;
static inline int nk_level_now(void) { return nk_thread_level >= 0 ? nk_thread_level : nk_simd_level(); }

static inline float nk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float nk_f16_to_f32_scalar(uint16_t h);
uint16_t nk_f32_to_f16_scalar(float f);

static inline float nk_load_elem(const void *base, nk_dtype dtype, size_t i) {
    const unsigned char *p = (const unsigned char *)base;
    switch (dtype) {
    case NK_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case NK_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return nk_bf16_to_f32(h); }
    case NK_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return nk_f16_to_f32_scalar(h); }
    }
    return 0.0f;
}

static inline size_t nk_dtype_size(nk_dtype d) { return d == NK_F32 ? 4 : 2; }

static inline int64_t nk_pad32(int64_t n) { return (n + 31) & ~(int64_t)31; }

static inline float nk_silu(float g) { return g / (1.0f + expf(-g)); }

#if NK_X86
// e^x, 8 at a time: x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two for an exact reduction),
// e^r by a degree-6 polynomial (Cephes' expf coefficients), 2^k through the exponent bits.
// Within 2 ulp of expf; 0 below −87.3, +inf above 88.72.
NK_AVX2 static inline __m256 nk_exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.3762626647949f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^k in two halves, so k = 128 (x near 88.7) does not overflow the exponent field.
    __m256i ki = _mm256_cvtps_epi32(k);
    __m256i k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, _mm256_set1_epi32(127)), 23));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
    y = _mm256_andnot_ps(under, y);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
}
#endif

#if NK_X86
/// The largest of `init` and x[0..<n] (softmax, log-sum-exp, online softmax).
NK_AVX2 static inline float nk_max_avx2(const float *x, size_t n, float init) {
    __m256 mv = _mm256_set1_ps(init);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
    float mm[8], m = init;
    _mm256_storeu_ps(mm, mv);
    for (int j = 0; j < 8; j++) if (mm[j] > m) m = mm[j];
    for (; i < n; i++) if (x[i] > m) m = x[i];
    return m;
}

/// e^(x[i] − m) for the whole 8-blocks of x (i < n & ~7), written back when `store`; returns their
/// per-lane sums. The caller adds the lanes in its own order and does the tail.
NK_AVX2 static inline __attribute__((always_inline)) __m256 nk_exp_sub_avx2(const float *x, size_t n, float m, const int store) {
    __m256 msub = _mm256_set1_ps(m), sumv = _mm256_setzero_ps();
    for (size_t i = 0; i + 8 <= n; i += 8) {
        __m256 e = nk_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), msub));
        if (store) _mm256_storeu_ps((float *)x + i, e);   // only callers that own x store
        sumv = _mm256_add_ps(sumv, e);
    }
    return sumv;
}
#endif

/// How far ahead (bytes) the decode kernels ask for weights into L2 (prefetcht2): the L1 miss
/// buffers then wait on L2 rather than DRAM. Measured here: +15-25% of single-core read rate.
#ifndef NK_PREFETCH_AHEAD
#define NK_PREFETCH_AHEAD 4096
#endif
#define NK_PREFETCH_L2(p) _mm_prefetch((const char *)(p) + NK_PREFETCH_AHEAD, _MM_HINT_T2)

// Row kernels: y[t * ldy + (r - r0)] = Σ_c W[r, c] · x_t[c] for r in [r0, r1), t < job->ntok.
// For the packed formats r0 is a multiple of 16 and r1 a multiple of 16 or job->rows.
typedef void (*nk_rows_fn)(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                           float *y, int64_t ldy);

// ---------------------------------------------------------------------------------------------
// Kernel choice, in one place. A (format, level) pair picks one row kernel (the table
// `nk_kernel_table` in nk_jobs.c, as ggml's type traits); inside it, the number of tokens of the
// job picks the decode path or a prefill path, from these thresholds (each measured, see the
// kernels' comments):
/// BF16/F16/F32 rows: from this many tokens, tiles of rows × tokens (below: one row at a time,
/// every token's dot product, the decode path).
#define NK_FLOAT_TILES_MIN_TOKENS 5
/// q8/q4 rows on AVX2: from this many tokens, the int8 prefill tiles.
#define NK_Q_PREFILL_MIN_TOKENS_AVX2 3

void nk_rows_float_portable(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_q8_portable(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_q4_portable(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
#if NK_X86
void nk_rows_float_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_float_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_q8_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_q8_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_q4_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_q4_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
void nk_rows_float_amx(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
/// AMX-BF16 tiles present and granted by the kernel (asks once per process).
int nk_amx_available(void);
/// BF16 on AMX: from this many tokens, the input is packed into tiles (it pays from there).
#ifndef NK_AMX_MIN_TOKENS
#define NK_AMX_MIN_TOKENS 16
#endif
/// A BF16 job with a prepared input, ≥ NK_AMX_MIN_TOKENS tokens, ≥ 16 rows, cols % 32 == 0.
int nk_amx_eligible(const nk_matvec *job);
/// Bytes nk_amx_pack writes for the job's input.
size_t nk_amx_pack_bytes(const nk_matvec *job);
/// The job's input in AMX tiles (three BF16 parts of each value), into `out` (64-byte aligned).
void nk_amx_pack(const nk_matvec *job, uint16_t *out);
void nk_rows_bf16_outer_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy);
#endif
/// BF16 on AVX2: the outer-product prefill (nk_rows_bf16_outer.c) takes tiles of this many
/// tokens, and from NK_OUTER_MIN_TOKENS tokens transposing the input pays.
#define NK_OUTER_TOKENS 16
#ifndef NK_OUTER_MIN_TOKENS
#define NK_OUTER_MIN_TOKENS 8
#endif
/// A BF16 job with a prepared input and ≥ NK_OUTER_MIN_TOKENS tokens.
int nk_outer_eligible(const nk_matvec *job);
/// Bytes nk_outer_pack writes for the job's input.
size_t nk_outer_pack_bytes(const nk_matvec *job);
/// The job's input transposed into tiles of NK_OUTER_TOKENS tokens, into `out` (64-byte aligned).
void nk_outer_pack(const nk_matvec *job, float *out);

/// Index of the input row that token t reads.
static inline int64_t nk_xrow(const nk_matvec *job, int64_t t) {
    return job->xrows ? (int64_t)job->xrows[t] : t;
}

#endif
