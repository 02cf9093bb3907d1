#include "nk_kernels.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define NK_X86 1
#include <immintrin.h>
#define NK_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define NK_X86 0
#endif

// ---------------------------------------------------------------------------------------------
// Scalar element conversion (unaligned-safe).

static inline float nk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float nk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { // subnormal: normalise
            int e = -1;
            do { e++; mant <<= 1; } while ((mant & 0x400) == 0);
            mant &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float nk_load_elem(const void *base, nk_dtype dtype, size_t i) {
    const unsigned char *p = (const unsigned char *)base;
    switch (dtype) {
    case NK_F32: { float f; memcpy(&f, p + 4 * i, 4); return f; }
    case NK_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return nk_bf16_to_f32(h); }
    case NK_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); return nk_f16_to_f32(h); }
    }
    return 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Portable implementations.

static void to_f32_portable(const void *src, nk_dtype dtype, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = nk_load_elem(src, dtype, i);
}

static void matmul_rows_portable(const void *w, nk_dtype dtype, size_t cols, size_t r0, size_t r1,
                                 const float *x, size_t ntok, size_t ldx, float *y, size_t ldy) {
    float row[256];
    for (size_t r = r0; r < r1; r++) {
        const unsigned char *wr = (const unsigned char *)w + r * cols * (dtype == NK_F32 ? 4 : 2);
        for (size_t t = 0; t < ntok; t++) y[t * ldy + r] = 0.0f;
        for (size_t c0 = 0; c0 < cols; c0 += 256) {
            size_t m = cols - c0 < 256 ? cols - c0 : 256;
            for (size_t c = 0; c < m; c++) row[c] = nk_load_elem(wr, dtype, c0 + c);
            for (size_t t = 0; t < ntok; t++) {
                const float *xt = x + t * ldx + c0;
                float acc = 0.0f;
                for (size_t c = 0; c < m; c++) acc += row[c] * xt[c];
                y[t * ldy + r] += acc;
            }
        }
    }
}

static float dot_portable(const float *a, const float *b, size_t n) {
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

static void axpy_portable(float *y, float alpha, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA + F16C implementations.

#if NK_X86
NK_AVX2 static inline __m256 load8(const unsigned char *p, nk_dtype dtype) {
    switch (dtype) {
    case NK_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)p);
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case NK_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    default: return _mm256_loadu_ps((const float *)p);
    }
}

NK_AVX2 static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

NK_AVX2 static void to_f32_avx2(const void *src, nk_dtype dtype, size_t n, float *dst) {
    const unsigned char *p = (const unsigned char *)src;
    size_t es = dtype == NK_F32 ? 4 : 2, i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load8(p + i * es, dtype));
    for (; i < n; i++) dst[i] = nk_load_elem(src, dtype, i);
}

// One row against one token: two independent accumulators hide the FMA latency.
NK_AVX2 static float row_dot1(const unsigned char *wr, nk_dtype dtype, size_t es, size_t cols,
                              const float *x) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 16 <= cols; c += 16) {
        a0 = _mm256_fmadd_ps(load8(wr + c * es, dtype), _mm256_loadu_ps(x + c), a0);
        a1 = _mm256_fmadd_ps(load8(wr + (c + 8) * es, dtype), _mm256_loadu_ps(x + c + 8), a1);
    }
    for (; c + 8 <= cols; c += 8)
        a0 = _mm256_fmadd_ps(load8(wr + c * es, dtype), _mm256_loadu_ps(x + c), a0);
    float acc = hsum8(_mm256_add_ps(a0, a1));
    for (; c < cols; c++) acc += nk_load_elem(wr, dtype, c) * x[c];
    return acc;
}

NK_AVX2 static void matmul_rows_avx2(const void *w, nk_dtype dtype, size_t cols, size_t r0, size_t r1,
                                     const float *x, size_t ntok, size_t ldx, float *y, size_t ldy) {
    size_t es = dtype == NK_F32 ? 4 : 2;
    for (size_t r = r0; r < r1; r++) {
        const unsigned char *wr = (const unsigned char *)w + r * cols * es;
        size_t t = 0;
        // Groups of four tokens share each converted weight vector.
        for (; t + 4 <= ntok; t += 4) {
            const float *x0 = x + t * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            size_t c = 0;
            for (; c + 8 <= cols; c += 8) {
                __m256 wv = load8(wr + c * es, dtype);
                a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + c), a0);
                a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + c), a1);
                a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + c), a2);
                a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + c), a3);
            }
            float s0 = hsum8(a0), s1 = hsum8(a1), s2 = hsum8(a2), s3 = hsum8(a3);
            for (; c < cols; c++) {
                float wv = nk_load_elem(wr, dtype, c);
                s0 += wv * x0[c]; s1 += wv * x1[c]; s2 += wv * x2[c]; s3 += wv * x3[c];
            }
            y[t * ldy + r] = s0; y[(t + 1) * ldy + r] = s1;
            y[(t + 2) * ldy + r] = s2; y[(t + 3) * ldy + r] = s3;
        }
        for (; t < ntok; t++) y[t * ldy + r] = row_dot1(wr, dtype, es, cols, x + t * ldx);
    }
}

NK_AVX2 static float dot_avx2(const float *a, const float *b, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), a1);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), a0);
    float acc = hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) acc += a[i] * b[i];
    return acc;
}

NK_AVX2 static void axpy_avx2(float *y, float alpha, const float *x, size_t n) {
    __m256 av = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}
#endif

// ---------------------------------------------------------------------------------------------
// Dispatch.

static int nk_level = -1;

static int nk_detect(void) {
#if NK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int nk_simd_level(void) {
    if (nk_level < 0) nk_level = nk_detect();
    return nk_level;
}

void nk_force_simd_level(int level) {
    int best = nk_detect();
    nk_level = level < best ? level : best;
}

void nk_to_f32(const void *src, nk_dtype dtype, size_t n, float *dst) {
#if NK_X86
    if (nk_simd_level() >= 1) { to_f32_avx2(src, dtype, n, dst); return; }
#endif
    to_f32_portable(src, dtype, n, dst);
}

void nk_matmul_rows(const void *w, nk_dtype dtype, size_t cols, size_t r0, size_t r1,
                    const float *x, size_t ntok, size_t ldx, float *y, size_t ldy) {
#if NK_X86
    if (nk_simd_level() >= 1) { matmul_rows_avx2(w, dtype, cols, r0, r1, x, ntok, ldx, y, ldy); return; }
#endif
    matmul_rows_portable(w, dtype, cols, r0, r1, x, ntok, ldx, y, ldy);
}

float nk_dot(const float *a, const float *b, size_t n) {
#if NK_X86
    if (nk_simd_level() >= 1) return dot_avx2(a, b, n);
#endif
    return dot_portable(a, b, n);
}

void nk_axpy(float *y, float alpha, const float *x, size_t n) {
#if NK_X86
    if (nk_simd_level() >= 1) { axpy_avx2(y, alpha, x, n); return; }
#endif
    axpy_portable(y, alpha, x, n);
}

// ---------------------------------------------------------------------------------------------
// Small element-wise kernels (memory-light; the compiler vectorises these loops).

void nk_rmsnorm(const float *x, const float *w, size_t n, float eps, float *out) {
    double ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (size_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

void nk_softmax(float *x, size_t n) {
    if (n == 0) return;
    float m = x[0];
    for (size_t i = 1; i < n; i++) if (x[i] > m) m = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

void nk_silu_mul(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void nk_rope(float *x, const float *cos, const float *sin, size_t head_dim) {
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i] + a * sin[i];
    }
}
