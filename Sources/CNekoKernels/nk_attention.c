// Decode attention for one KV head: the query heads that share it read each cached key and
// value once. The cache is head-major, so K and V of one head are contiguous rows of head_dim.
#include "nk_internal.h"

static void attend_portable(const float *q, int group, int hd, const float *k, const float *v,
                            int64_t n, float scale, float *scores, float *out) {
    for (int g = 0; g < group; g++) {
        float *s = scores + g * n;
        for (int64_t p = 0; p < n; p++) {
            float acc = 0.0f;
            for (int i = 0; i < hd; i++) acc += q[g * hd + i] * k[p * hd + i];
            s[p] = acc * scale;
        }
        nk_softmax(s, (size_t)n);
        for (int i = 0; i < hd; i++) out[g * hd + i] = 0.0f;
        for (int64_t p = 0; p < n; p++)
            for (int i = 0; i < hd; i++) out[g * hd + i] += s[p] * v[p * hd + i];
    }
}

#if NK_X86
// head_dim a multiple of 8 and at most 256 (NekoMind: 128), group at most 8.
NK_AVX2 static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

NK_AVX2 static void attend_avx2(const float *q, int group, int hd, const float *k, const float *v,
                                int64_t n, float scale, float *scores, float *out) {
    for (int64_t p = 0; p < n; p++) {
        const float *kp = k + p * hd;
        for (int g = 0; g < group; g++) {
            const float *qg = q + g * hd;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;
            int i = 0;
            for (; i + 16 <= hd; i += 16) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), _mm256_loadu_ps(kp + i), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i + 8), _mm256_loadu_ps(kp + i + 8), a1);
            }
            for (; i < hd; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), _mm256_loadu_ps(kp + i), a0);
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
                const float *vp = v + p * hd + c;
                for (int j = 0; j < w; j++) acc[j] = _mm256_fmadd_ps(sp, _mm256_loadu_ps(vp + 8 * j), acc[j]);
            }
            for (int j = 0; j < w; j++) _mm256_storeu_ps(out + g * hd + c + 8 * j, acc[j]);
        }
    }
}

// AVX-512, head_dim a multiple of 16 with group · head_dim ≤ 256 (NekoMind: 2 · 128): the
// query heads stay in registers for the scores, and one pass over V accumulates every head.
NK_AVX512 static inline __attribute__((always_inline)) void
attend_avx512_t(const float *q, const int group, const int w, const float *k, const float *v,
                int64_t n, float scale, float *scores, float *out) {
    const int hd = 16 * w;
    __m512 qv[16];
    for (int g = 0; g < group; g++)
        for (int j = 0; j < w; j++) qv[g * w + j] = _mm512_loadu_ps(q + g * hd + 16 * j);
    for (int64_t p = 0; p < n; p++) {
        const float *kp = k + p * hd;
        __m512 kr[8];
        for (int j = 0; j < w; j++) kr[j] = _mm512_loadu_ps(kp + 16 * j);
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
        const float *vp = v + p * hd;
        for (int g = 0; g < group; g++) {
            __m512 sp = _mm512_set1_ps(scores[g * n + p]);
            for (int j = 0; j < w; j++) acc[g * w + j] = _mm512_fmadd_ps(sp, _mm512_loadu_ps(vp + 16 * j), acc[g * w + j]);
        }
    }
    for (int g = 0; g < group; g++)
        for (int j = 0; j < w; j++) _mm512_storeu_ps(out + g * hd + 16 * j, acc[g * w + j]);
}

// Constant shapes, so the accumulators stay in registers; 0 when the shape has no case.
NK_AVX512 static int attend_avx512(const float *q, int group, int hd, const float *k, const float *v,
                                   int64_t n, float scale, float *scores, float *out) {
#define NK_ATT_CASE(G, W) if (group == (G) && hd == 16 * (W)) { attend_avx512_t(q, G, W, k, v, n, scale, scores, out); return 1; }
    NK_ATT_CASE(1, 8) NK_ATT_CASE(2, 8) NK_ATT_CASE(1, 4) NK_ATT_CASE(2, 4) NK_ATT_CASE(4, 4)
    NK_ATT_CASE(1, 2) NK_ATT_CASE(2, 2) NK_ATT_CASE(4, 2) NK_ATT_CASE(1, 1) NK_ATT_CASE(2, 1) NK_ATT_CASE(4, 1)
#undef NK_ATT_CASE
    return 0;
}
#endif

// ---------------------------------------------------------------------------------------------
// The same over a half-precision cache (quantised models keep K and V in f16: half the bytes).

static void attend_f16_portable(const float *q, int group, int hd, const uint16_t *k, const uint16_t *v,
                                int64_t n, float scale, float *scores, float *out) {
    for (int g = 0; g < group; g++) {
        float *s = scores + g * n;
        for (int64_t p = 0; p < n; p++) {
            float acc = 0.0f;
            for (int i = 0; i < hd; i++) acc += q[g * hd + i] * nk_f16_to_f32_scalar(k[p * hd + i]);
            s[p] = acc * scale;
        }
        nk_softmax(s, (size_t)n);
        for (int i = 0; i < hd; i++) out[g * hd + i] = 0.0f;
        for (int64_t p = 0; p < n; p++)
            for (int i = 0; i < hd; i++) out[g * hd + i] += s[p] * nk_f16_to_f32_scalar(v[p * hd + i]);
    }
}

#if NK_X86
NK_AVX2 static void attend_f16_avx2(const float *q, int group, int hd, const uint16_t *k, const uint16_t *v,
                                    int64_t n, float scale, float *scores, float *out) {
    for (int64_t p = 0; p < n; p++) {
        const uint16_t *kp = k + p * hd;
        for (int g = 0; g < group; g++) {
            const float *qg = q + g * hd;
            __m256 a0 = _mm256_setzero_ps();
            for (int i = 0; i < hd; i += 8)
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp + i))), a0);
            scores[g * n + p] = hsum8(a0) * scale;
        }
    }
    for (int g = 0; g < group; g++) nk_softmax(scores + g * n, (size_t)n);
    for (int c = 0; c < hd; c += 64) {
        int w = hd - c < 64 ? (hd - c) / 8 : 8;
        for (int g = 0; g < group; g++) {
            __m256 acc[8];
            for (int j = 0; j < w; j++) acc[j] = _mm256_setzero_ps();
            const float *s = scores + g * n;
            for (int64_t p = 0; p < n; p++) {
                __m256 sp = _mm256_set1_ps(s[p]);
                const uint16_t *vp = v + p * hd + c;
                for (int j = 0; j < w; j++)
                    acc[j] = _mm256_fmadd_ps(sp, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(vp + 8 * j))), acc[j]);
            }
            for (int j = 0; j < w; j++) _mm256_storeu_ps(out + g * hd + c + 8 * j, acc[j]);
        }
    }
}

NK_AVX512 static inline __attribute__((always_inline)) void
attend_f16_avx512_t(const float *q, const int group, const int w, const uint16_t *k, const uint16_t *v,
                    int64_t n, float scale, float *scores, float *out) {
    const int hd = 16 * w;
    __m512 qv[16];
    for (int g = 0; g < group; g++)
        for (int j = 0; j < w; j++) qv[g * w + j] = _mm512_loadu_ps(q + g * hd + 16 * j);
    for (int64_t p = 0; p < n; p++) {
        const uint16_t *kp = k + p * hd;
        __m512 kr[8];
        for (int j = 0; j < w; j++) kr[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(kp + 16 * j)));
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
        const uint16_t *vp = v + p * hd;
        __m512 vr[8];
        for (int j = 0; j < w; j++) vr[j] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(vp + 16 * j)));
        for (int g = 0; g < group; g++) {
            __m512 sp = _mm512_set1_ps(scores[g * n + p]);
            for (int j = 0; j < w; j++) acc[g * w + j] = _mm512_fmadd_ps(sp, vr[j], acc[g * w + j]);
        }
    }
    for (int g = 0; g < group; g++)
        for (int j = 0; j < w; j++) _mm512_storeu_ps(out + g * hd + 16 * j, acc[g * w + j]);
}

NK_AVX512 static int attend_f16_avx512(const float *q, int group, int hd, const uint16_t *k, const uint16_t *v,
                                       int64_t n, float scale, float *scores, float *out) {
#define NK_ATT_CASE(G, W) if (group == (G) && hd == 16 * (W)) { attend_f16_avx512_t(q, G, W, k, v, n, scale, scores, out); return 1; }
    NK_ATT_CASE(1, 8) NK_ATT_CASE(2, 8) NK_ATT_CASE(1, 4) NK_ATT_CASE(2, 4) NK_ATT_CASE(4, 4)
    NK_ATT_CASE(1, 2) NK_ATT_CASE(2, 2) NK_ATT_CASE(4, 2) NK_ATT_CASE(1, 1) NK_ATT_CASE(2, 1) NK_ATT_CASE(4, 1)
#undef NK_ATT_CASE
    return 0;
}
#endif

void nk_attend_decode_f16(const float *q, int group, int head_dim, const uint16_t *k, const uint16_t *v,
                          int64_t n, float scale, float *scores, float *out) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX512 && attend_f16_avx512(q, group, head_dim, k, v, n, scale, scores, out)) return;
    if (nk_level_now() >= NK_LEVEL_AVX2 && head_dim % 8 == 0 && head_dim <= 256 && group <= 8) {
        attend_f16_avx2(q, group, head_dim, k, v, n, scale, scores, out);
        return;
    }
#endif
    attend_f16_portable(q, group, head_dim, k, v, n, scale, scores, out);
}

void nk_attend_decode(const float *q, int group, int head_dim, const float *k, const float *v,
                      int64_t n, float scale, float *scores, float *out) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX512 && attend_avx512(q, group, head_dim, k, v, n, scale, scores, out)) return;
    if (nk_level_now() >= NK_LEVEL_AVX2 && head_dim % 8 == 0 && head_dim <= 256 && group <= 8) {
        attend_avx2(q, group, head_dim, k, v, n, scale, scores, out);
        return;
    }
#endif
    attend_portable(q, group, head_dim, k, v, n, scale, scores, out);
}
