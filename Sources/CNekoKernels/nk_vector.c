// Conversions and the small vector kernels (memory-light; plain loops where the compiler
// vectorises them well enough).
#include "nk_internal.h"

float nk_f16_to_f32_scalar(uint16_t h) {
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

// Round to nearest even; overflow to ±inf, NaN kept quiet.
uint16_t nk_f32_to_f16_scalar(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (uint16_t)(sign | 0x7e00);          // NaN
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);         // ≥ 65520: inf
    if (absx < 0x38800000u) {                                          // below 2^-14: subnormal
        if (absx < 0x33000000u) return (uint16_t)sign;                 // < 2^-25: zero
        uint32_t e = absx >> 23, mant = (absx & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e;                                      // value = q · 2^-24
        uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t q = ((absx >> 13) - (112u << 10));
    uint32_t rem = absx & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
    return (uint16_t)(sign | q);
}

uint16_t nk_f32_to_f16(float f) { return nk_f32_to_f16_scalar(f); }
float nk_f16_to_f32(uint16_t h) { return nk_f16_to_f32_scalar(h); }

static void to_f32_portable(const void *src, nk_dtype dtype, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = nk_load_elem(src, dtype, i);
}

#if NK_X86
NK_AVX2 static void to_f32_avx2(const void *src, nk_dtype dtype, size_t n, float *dst) {
    const unsigned char *p = (const unsigned char *)src;
    size_t i = 0;
    switch (dtype) {
    case NK_BF16:
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(p + 2 * i));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)));
        }
        break;
    case NK_F16:
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))));
        break;
    case NK_F32:
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps((const float *)(p + 4 * i)));
        break;
    }
    for (; i < n; i++) dst[i] = nk_load_elem(src, dtype, i);
}

NK_AVX2 static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
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

void nk_to_f32(const void *src, nk_dtype dtype, size_t n, float *dst) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { to_f32_avx2(src, dtype, n, dst); return; }
#endif
    to_f32_portable(src, dtype, n, dst);
}

float nk_dot(const float *a, const float *b, size_t n) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) return dot_avx2(a, b, n);
#endif
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}

void nk_scale(float *x, float alpha, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] *= alpha;
}

void nk_axpy(float *y, float alpha, const float *x, size_t n) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { axpy_avx2(y, alpha, x, n); return; }
#endif
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

#if NK_X86
// Σx² in double, 4 lanes × 2 accumulators.
NK_AVX2 static double sum_squares_avx2(const float *x, size_t n) {
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        a = _mm256_fmadd_pd(lo, lo, a);
        b = _mm256_fmadd_pd(hi, hi, b);
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(a, b));
    double ss = (t[0] + t[1]) + (t[2] + t[3]);
    for (; i < n; i++) ss += (double)x[i] * (double)x[i];
    return ss;
}
#endif

void nk_rmsnorm(const float *x, const float *w, size_t n, float eps, float *out) {
    double ss = 0.0;
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) ss = sum_squares_avx2(x, n);
    else
#endif
        for (size_t i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float inv = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (size_t i = 0; i < n; i++) out[i] = w[i] * (x[i] * inv);
}

static void softmax_portable(float *x, size_t n) {
    float m = x[0];
    for (size_t i = 1; i < n; i++) if (x[i] > m) m = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    float inv = 1.0f / sum;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

#if NK_X86
NK_AVX2 static void softmax_avx2(float *x, size_t n) {
    float m = nk_max_avx2(x, n, x[0]);
    __m256 sumv = nk_exp_sub_avx2(x, n, m, 1);
    size_t i = n & ~(size_t)7;
    float ss[8];
    _mm256_storeu_ps(ss, sumv);
    float sum = ((ss[0] + ss[1]) + (ss[2] + ss[3])) + ((ss[4] + ss[5]) + (ss[6] + ss[7]));
    for (; i < n; i++) { x[i] = expf(x[i] - m); sum += x[i]; }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}
#endif

static double logsumexp_portable(const float *x, size_t n) {
    float m = x[0];
    for (size_t i = 1; i < n; i++) if (x[i] > m) m = x[i];
    float sum = 0.0f;
    for (size_t i = 0; i < n; i++) sum += expf(x[i] - m);
    return (double)m + log((double)sum);
}

#if NK_X86
NK_AVX2 static double logsumexp_avx2(const float *x, size_t n) {
    float m = nk_max_avx2(x, n, x[0]);
    __m256 sumv = nk_exp_sub_avx2(x, n, m, 0);
    size_t i = n & ~(size_t)7;
    float ss[8];
    _mm256_storeu_ps(ss, sumv);
    double sum = 0;
    for (int j = 0; j < 8; j++) sum += ss[j];
    for (; i < n; i++) sum += expf(x[i] - m);
    return (double)m + log(sum);
}
#endif

double nk_logsumexp(const float *x, size_t n) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) return logsumexp_avx2(x, n);
#endif
    return logsumexp_portable(x, n);
}

void nk_softmax(float *x, size_t n) {
    if (n == 0) return;
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { softmax_avx2(x, n); return; }
#endif
    softmax_portable(x, n);
}

#if NK_X86
NK_AVX2 static void silu_mul_avx2(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), nk_exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = nk_silu(g[i]) * u[i];
}
#endif

void nk_silu_mul(float *g, const float *u, size_t n) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { silu_mul_avx2(g, u, n); return; }
#endif
    for (size_t i = 0; i < n; i++) g[i] = nk_silu(g[i]) * u[i];
}

void nk_rope(float *x, const float *cos, const float *sin, size_t head_dim) {
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i] + a * sin[i];
    }
}

int64_t nk_prep_stride(int64_t cols) { return nk_pad32(cols); }

static void prep_bf16_portable(const float *xr, int64_t cols, float *o) {
    int64_t stride = nk_pad32(cols);
    for (int64_t b = 0; b < stride; b += 32) {
        for (int i = 0; i < 16; i++) {
            int64_t e = b + 2 * i, od = e + 1;
            o[b + i] = e < cols ? xr[e] : 0.0f;
            o[b + 16 + i] = od < cols ? xr[od] : 0.0f;
        }
    }
}

#if NK_X86
// Full blocks: the 16 even and 16 odd values of 4 vectors of 8, by in-lane shuffles and a
// cross-lane permute; a partial last block goes the portable way.
NK_AVX2 static void prep_bf16_avx2(const float *xr, int64_t cols, float *o) {
    int64_t full = cols & ~(int64_t)31;
    for (int64_t b = 0; b < full; b += 32) {
        for (int h = 0; h < 2; h++) {
            __m256 a = _mm256_loadu_ps(xr + b + 16 * h), c = _mm256_loadu_ps(xr + b + 16 * h + 8);
            __m256 even = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(2, 0, 2, 0));
            __m256 odd = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 1, 3, 1));
            _mm256_storeu_ps(o + b + 8 * h, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xd8)));
            _mm256_storeu_ps(o + b + 16 + 8 * h, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(odd), 0xd8)));
        }
    }
    if (full < cols) prep_bf16_portable(xr + full, cols - full, o + full);
}
#endif

void nk_prep_bf16(const float *x, int64_t rows, int64_t ldx, int64_t cols, float *xp) {
    int64_t stride = nk_pad32(cols);
#if NK_X86
    int simd = nk_level_now() >= NK_LEVEL_AVX2;
#endif
    for (int64_t r = 0; r < rows; r++) {
#if NK_X86
        if (simd) { prep_bf16_avx2(x + r * ldx, cols, xp + r * stride); continue; }
#endif
        prep_bf16_portable(x + r * ldx, cols, xp + r * stride);
    }
}

#if NK_X86
NK_AVX2 static void to_f16_avx2(const float *src, size_t n, uint16_t *dst) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = nk_f32_to_f16_scalar(src[i]);
}
#endif

void nk_f32_to_f16_array(const float *src, size_t n, uint16_t *dst) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { to_f16_avx2(src, n, dst); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = nk_f32_to_f16_scalar(src[i]);
}

static inline uint16_t f32_to_bf16_scalar(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);  // NaN stays NaN
    return (uint16_t)((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

#if NK_X86
NK_AVX2 static void to_bf16_avx2(const float *src, size_t n, uint16_t *dst) {
    size_t i = 0;
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        __m256i b = _mm256_castps_si256(_mm256_loadu_ps(src + i));
        __m256i rounded = _mm256_add_epi32(b, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(b, 16), one)));
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(b, abs_mask), inf);
        __m256i quiet = _mm256_or_si256(b, _mm256_set1_epi32(0x400000));
        __m256i r = _mm256_srli_epi32(_mm256_blendv_epi8(rounded, quiet, nan), 16);
        // Pack the eight 32-bit lanes' low halves into eight uint16 (lanes 0-3, then 4-7).
        __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(dst + i), packed);
    }
    for (; i < n; i++) dst[i] = f32_to_bf16_scalar(src[i]);
}
#endif

void nk_f32_to_bf16_array(const float *src, size_t n, uint16_t *dst) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { to_bf16_avx2(src, n, dst); return; }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16_scalar(src[i]);
}
