// Decode attention for one KV head: the query heads that share it read each cached key and
// value once. The cache is head-major, so K and V of one head are contiguous rows of head_dim.
// Each SIMD level is written once, over a cache of float32 or of IEEE half: the element type is
// a constant argument of an always-inlined body, so each entry point gets its own specialised
// copy and only the loads differ.
#include "nk_internal.h"

/// One cached value as float, from float32 (`half` 0) or IEEE half (1).
static inline __attribute__((always_inline)) float load1(const void *base, int64_t i, const int half) {
    return half ? nk_f16_to_f32_scalar(((const uint16_t *)base)[i]) : ((const float *)base)[i];
}

static inline __attribute__((always_inline)) void
attend_portable(const float *q, int group, int hd, const void *k, const void *v, int64_t n, float scale,
                float *scores, float *out, const int half) {
    for (int g = 0; g < group; g++) {
        float *s = scores + g * n;
        for (int64_t p = 0; p < n; p++) {
            float acc = 0.0f;
            for (int i = 0; i < hd; i++) acc += q[g * hd + i] * load1(k, p * hd + i, half);
            s[p] = acc * scale;
        }
        nk_softmax(s, (size_t)n);
        for (int i = 0; i < hd; i++) out[g * hd + i] = 0.0f;
        for (int64_t p = 0; p < n; p++)
            for (int i = 0; i < hd; i++) out[g * hd + i] += s[p] * load1(v, p * hd + i, half);
    }
}

#if NK_X86
NK_AVX2 static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/// Eight cached values as floats.
NK_AVX2 static inline __attribute__((always_inline)) __m256 load8(const void *base, int64_t i, const int half) {
    return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)))
                : _mm256_loadu_ps((const float *)base + i);
}

// Any group, head_dim a multiple of 8.
NK_AVX2 static inline __attribute__((always_inline)) void
attend_avx2(const float *q, int group, int hd, const void *k, const void *v, int64_t n, float scale,
            float *scores, float *out, const int half) {
    for (int64_t p = 0; p < n; p++) {
        for (int g = 0; g < group; g++) {
            const float *qg = q + g * hd;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;
            int i = 0;
            for (; i + 16 <= hd; i += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), load8(k, p * hd + i, half), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i + 8), load8(k, p * hd + i + 8, half), a1);
            }
            for (; i < hd; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), load8(k, p * hd + i, half), a0);
            scores[g * n + p] = hsum8(_mm256_add_ps(a0, a1)) * scale;
        }
    }
    for (int g = 0; g < group; g++) nk_softmax(scores + g * n, (size_t)n);
    // out[g] = Σ_p s[g][p] · v[p], 64 columns at a time in registers.
    for (int c = 0; c < hd; c += 64) {
        int w = hd - c < 64 ? (hd - c) / 8 : 8;
        for (int g = 0; g < group; g++) {
            __m256 acc[8];
            for (int j = 0; j < w; j++) acc[j] = _mm256_setzero_ps();
            const float *s = scores + g * n;
            for (int64_t p = 0; p < n; p++) {
                __m256 sp = _mm256_set1_ps(s[p]);
                for (int j = 0; j < w; j++) acc[j] = _mm256_fmadd_ps(sp, load8(v, p * hd + c + 8 * j, half), acc[j]);
            }
            for (int j = 0; j < w; j++) _mm256_storeu_ps(out + g * hd + c + 8 * j, acc[j]);
        }
    }
}

/// Sixteen cached values as floats.
NK_AVX512 static inline __attribute__((always_inline)) __m512 load16(const void *base, int64_t i, const int half) {
    return half ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)base + i)))
                : _mm512_loadu_ps((const float *)base + i);
}

// AVX-512, G query heads of head_dim 16·W with G·W ≤ 16: the queries stay in registers for the
// scores, and one pass over V accumulates every head. G and W are constants at every use.
NK_AVX512 static inline __attribute__((always_inline)) void
attend_avx512_t(const float *q, const int group, const int w, const void *k, const void *v,
                int64_t n, float scale, float *scores, float *out, const int half) {
    const int hd = 16 * w;
    __m512 qv[16];
    for (int g = 0; g < group; g++)
        for (int j = 0; j < w; j++) qv[g * w + j] = _mm512_loadu_ps(q + g * hd + 16 * j);
    for (int64_t p = 0; p < n; p++) {
        __m512 kr[8];
        for (int j = 0; j < w; j++) kr[j] = load16(k, p * hd + 16 * j, half);
        for (int g = 0; g < group; g++) {
            __m512 a0 = _mm512_mul_ps(qv[g * w], kr[0]), a1 = _mm512_setzero_ps();
            for (int j = 1; j < w; j++) {
                if (j & 1) a1 = _mm512_fmadd_ps(qv[g * w + j], kr[j], a1);
                else a0 = _mm512_fmadd_ps(qv[g * w + j], kr[j], a0);
            }
            scores[g * n + p] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) * scale;
        }
    }
    for (int g = 0; g < group; g++) nk_softmax(scores + g * n, (size_t)n);
    __m512 acc[16];
    for (int i = 0; i < group * w; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < n; p++) {
        __m512 vr[8];
        for (int j = 0; j < w; j++) vr[j] = load16(v, p * hd + 16 * j, half);
        for (int g = 0; g < group; g++) {
            __m512 sp = _mm512_set1_ps(scores[g * n + p]);
            for (int j = 0; j < w; j++) acc[g * w + j] = _mm512_fmadd_ps(sp, vr[j], acc[g * w + j]);
        }
    }
    for (int g = 0; g < group; g++)
        for (int j = 0; j < w; j++) _mm512_storeu_ps(out + g * hd + 16 * j, acc[g * w + j]);
}

/// Every head_dim a multiple of 16 up to 128 (W ≤ 8), any group: the heads go in chunks of the
/// largest power of two G with G·W ≤ 16 (NekoMind's 2 × 128 in one pass, OLMoE's and Mixtral's
/// 4 × 128 in two), each a case with constant shapes so the accumulators stay in registers.
/// Returns 0 when head_dim has no case.
NK_AVX512 static inline __attribute__((always_inline)) int
attend_avx512(const float *q, int group, int hd, const void *k, const void *v, int64_t n, float scale,
              float *scores, float *out, const int half) {
    if (hd % 16 != 0 || hd > 128) return 0;
    const int w = hd / 16;
    for (int g0 = 0; g0 < group;) {
        int gc = 1;
        while (gc * 2 * w <= 16 && g0 + gc * 2 <= group) gc *= 2;
        const float *qg = q + g0 * hd;
        float *sg = scores + (int64_t)g0 * n, *og = out + g0 * hd;
#define NK_CASE(G, W) else if (gc == (G) && w == (W)) attend_avx512_t(qg, G, W, k, v, n, scale, sg, og, half);
        if (0) {}
        NK_CASE(1, 1) NK_CASE(2, 1) NK_CASE(4, 1) NK_CASE(8, 1) NK_CASE(16, 1)
        NK_CASE(1, 2) NK_CASE(2, 2) NK_CASE(4, 2) NK_CASE(8, 2)
        NK_CASE(1, 3) NK_CASE(2, 3) NK_CASE(4, 3)
        NK_CASE(1, 4) NK_CASE(2, 4) NK_CASE(4, 4)
        NK_CASE(1, 5) NK_CASE(2, 5)
        NK_CASE(1, 6) NK_CASE(2, 6)
        NK_CASE(1, 7) NK_CASE(2, 7)
        NK_CASE(1, 8) NK_CASE(2, 8)
#undef NK_CASE
        g0 += gc;
    }
    return 1;
}

NK_AVX512 static int attend_f32_avx512(const float *q, int group, int hd, const float *k, const float *v,
                                       int64_t n, float scale, float *scores, float *out) {
    return attend_avx512(q, group, hd, k, v, n, scale, scores, out, 0);
}

NK_AVX512 static int attend_f16_avx512(const float *q, int group, int hd, const uint16_t *k, const uint16_t *v,
                                       int64_t n, float scale, float *scores, float *out) {
    return attend_avx512(q, group, hd, k, v, n, scale, scores, out, 1);
}

NK_AVX2 static void attend_f32_avx2(const float *q, int group, int hd, const float *k, const float *v,
                                    int64_t n, float scale, float *scores, float *out) {
    attend_avx2(q, group, hd, k, v, n, scale, scores, out, 0);
}

NK_AVX2 static void attend_f16_avx2(const float *q, int group, int hd, const uint16_t *k, const uint16_t *v,
                                    int64_t n, float scale, float *scores, float *out) {
    attend_avx2(q, group, hd, k, v, n, scale, scores, out, 1);
}
#endif

void nk_attend_decode(const float *q, int group, int head_dim, const float *k, const float *v,
                      int64_t n, float scale, float *scores, float *out) {
#if NK_X86
    int level = nk_level_now();
    if (level >= NK_LEVEL_AVX512 && attend_f32_avx512(q, group, head_dim, k, v, n, scale, scores, out)) return;
    if (level >= NK_LEVEL_AVX2 && head_dim % 8 == 0) { attend_f32_avx2(q, group, head_dim, k, v, n, scale, scores, out); return; }
#endif
    attend_portable(q, group, head_dim, k, v, n, scale, scores, out, 0);
}

void nk_attend_decode_f16(const float *q, int group, int head_dim, const uint16_t *k, const uint16_t *v,
                          int64_t n, float scale, float *scores, float *out) {
#if NK_X86
    int level = nk_level_now();
    if (level >= NK_LEVEL_AVX512 && attend_f16_avx512(q, group, head_dim, k, v, n, scale, scores, out)) return;
    if (level >= NK_LEVEL_AVX2 && head_dim % 8 == 0) { attend_f16_avx2(q, group, head_dim, k, v, n, scale, scores, out); return; }
#endif
    attend_portable(q, group, head_dim, k, v, n, scale, scores, out, 1);
}
