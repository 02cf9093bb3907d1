// Decode attention for one KV head, flash-decoding style: the query heads that share the KV head
// walk the cached positions in blocks of NK_ATTEND_BLOCK, each block's keys giving scores that an
// online softmax folds into a running maximum, denominator and output (rescaled when the maximum
// grows), then the block's values. Each key and value row comes from memory once, and the block
// (K and V of 64 positions: 32 KiB at float32 and head_dim 128) is re-read from L1/L2 only, so
// the cache streams at a rate that does not fall with the context length (on Zen 3, one thread:
// 80 % of a plain read stream's rate); scratch is group × block.
// The cache is head-major, so K and V of one head are contiguous rows of head_dim; its elements
// are float32, IEEE half or bfloat16 — a constant argument of an always-inlined body, so each
// entry point gets its own specialised copy and only the loads differ.
#include "nk_internal.h"

/// One cached value as float.
static inline __attribute__((always_inline)) float load1(const void *base, int64_t i, const nk_dtype t) {
    if (t == NK_F16) return nk_f16_to_f32_scalar(((const uint16_t *)base)[i]);
    if (t == NK_BF16) return nk_bf16_to_f32(((const uint16_t *)base)[i]);
    return ((const float *)base)[i];
}

/// Folds a block's scores s[0..<nb] (raw, scaled) into the running max *m and denominator *l:
/// s becomes e^(s − m'), and the factor the output so far must be multiplied by is returned.
static inline float fold_block(float *s, int64_t nb, float *m, float *l) {
    float bm = s[0];
    for (int64_t p = 1; p < nb; p++) if (s[p] > bm) bm = s[p];
    float nm = bm > *m ? bm : *m;
    float corr = *m == -INFINITY ? 0.0f : expf(*m - nm);
    float sum = 0.0f;
    for (int64_t p = 0; p < nb; p++) { s[p] = expf(s[p] - nm); sum += s[p]; }
    *l = *l * corr + sum;
    *m = nm;
    return corr;
}

static inline __attribute__((always_inline)) void
attend_portable(const float *q, int group, int hd, const void *k, const void *v, int64_t n, float scale,
                float *scores, float *out, const nk_dtype t) {
    float m[64], l[64];
    for (int g = 0; g < group; g++) { m[g] = -INFINITY; l[g] = 0.0f; }
    for (int i = 0; i < group * hd; i++) out[i] = 0.0f;
    for (int64_t p0 = 0; p0 < n; p0 += NK_ATTEND_BLOCK) {
        int64_t nb = n - p0 < NK_ATTEND_BLOCK ? n - p0 : NK_ATTEND_BLOCK;
        for (int g = 0; g < group; g++) {
            float *s = scores + g * NK_ATTEND_BLOCK, *o = out + g * hd;
            for (int64_t p = 0; p < nb; p++) {
                float acc = 0.0f;
                for (int i = 0; i < hd; i++) acc += q[g * hd + i] * load1(k, (p0 + p) * hd + i, t);
                s[p] = acc * scale;
            }
            float corr = fold_block(s, nb, &m[g], &l[g]);
            for (int i = 0; i < hd; i++) o[i] *= corr;
            for (int64_t p = 0; p < nb; p++)
                for (int i = 0; i < hd; i++) o[i] += s[p] * load1(v, (p0 + p) * hd + i, t);
        }
    }
    for (int g = 0; g < group; g++)
        for (int i = 0; i < hd; i++) out[g * hd + i] /= l[g];
}

#if NK_X86
/// fold_block, eight scores at a time.
NK_AVX2 static float fold_block_avx2(float *s, int64_t nb, float *m, float *l) {
    float nm = nk_max_avx2(s, (size_t)nb, *m);
    float corr = *m == -INFINITY ? 0.0f : expf(*m - nm);
    __m256 sum = nk_exp_sub_avx2(s, (size_t)nb, nm, 1);
    float ss[8], total = 0.0f;
    _mm256_storeu_ps(ss, sum);
    for (int j = 0; j < 8; j++) total += ss[j];
    for (int64_t p = nb & ~(int64_t)7; p < nb; p++) { s[p] = expf(s[p] - nm); total += s[p]; }
    *l = *l * corr + total;
    *m = nm;
    return corr;
}

/// Eight cached values as floats.
NK_AVX2 static inline __attribute__((always_inline)) __m256 load8(const void *base, int64_t i, const nk_dtype t) {
    if (t == NK_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i)));
    if (t == NK_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)base + i))), 16));
    return _mm256_loadu_ps((const float *)base + i);
}

/// The four horizontal sums of a, b, c, d.
NK_AVX2 static inline __m128 hsum4x8(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

NK_AVX2 static inline float hsum8(__m256 v) {
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/// The scaled scores of G heads (G = 1 or 2, constant at every use) against the four key rows
/// from element r: s[g · NK_ATTEND_BLOCK + i] for i < 4.
NK_AVX2 static inline __attribute__((always_inline)) void
score_quad(const float *q, int hd, const void *k, int64_t r, float scale, float *s, const int G, const nk_dtype t) {
    __m256 a[2][4];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < 4; j++) a[g][j] = _mm256_setzero_ps();
    for (int i = 0; i < hd; i += 8) {
        __m256 k0 = load8(k, r + i, t), k1 = load8(k, r + hd + i, t);
        __m256 k2 = load8(k, r + 2 * hd + i, t), k3 = load8(k, r + 3 * hd + i, t);
        for (int g = 0; g < G; g++) {
            __m256 qv = _mm256_loadu_ps(q + g * hd + i);
            a[g][0] = _mm256_fmadd_ps(qv, k0, a[g][0]);
            a[g][1] = _mm256_fmadd_ps(qv, k1, a[g][1]);
            a[g][2] = _mm256_fmadd_ps(qv, k2, a[g][2]);
            a[g][3] = _mm256_fmadd_ps(qv, k3, a[g][3]);
        }
    }
    for (int g = 0; g < G; g++)
        _mm_storeu_ps(s + g * NK_ATTEND_BLOCK, _mm_mul_ps(hsum4x8(a[g][0], a[g][1], a[g][2], a[g][3]), _mm_set1_ps(scale)));
}

/// Σ_p s[g][p] · v[p][c ..< c + 8·W] added into out[g] for G heads at once (constants at every
/// use: the G·W accumulators stay in registers while the block's rows go by).
NK_AVX2 static inline __attribute__((always_inline)) void
accumulate_v(const float *s, float *o, int hd, const void *v, int64_t p0, int64_t nb, int c,
             const int G, const int W, const nk_dtype t) {
    __m256 acc[8];
    for (int g = 0; g < G; g++)
        for (int j = 0; j < W; j++) acc[g * W + j] = _mm256_loadu_ps(o + g * hd + c + 8 * j);
    for (int64_t p = 0; p < nb; p++) {
        __m256 vr[4];
        for (int j = 0; j < W; j++) vr[j] = load8(v, (p0 + p) * hd + c + 8 * j, t);
        for (int g = 0; g < G; g++) {
            __m256 sp = _mm256_set1_ps(s[g * NK_ATTEND_BLOCK + p]);
            for (int j = 0; j < W; j++) acc[g * W + j] = _mm256_fmadd_ps(sp, vr[j], acc[g * W + j]);
        }
    }
    for (int g = 0; g < G; g++)
        for (int j = 0; j < W; j++) _mm256_storeu_ps(o + g * hd + c + 8 * j, acc[g * W + j]);
}

// Any group, head_dim a multiple of 8.
NK_AVX2 static inline __attribute__((always_inline)) void
attend_avx2(const float *q, int group, int hd, const void *k, const void *v, int64_t n, float scale,
            float *scores, float *out, const nk_dtype t) {
    float m[64], l[64];
    const int64_t row_bytes = (int64_t)hd * (t == NK_F32 ? 4 : 2);
    for (int g = 0; g < group; g++) { m[g] = -INFINITY; l[g] = 0.0f; }
    for (int i = 0; i < group * hd; i++) out[i] = 0.0f;
    for (int64_t p0 = 0; p0 < n; p0 += NK_ATTEND_BLOCK) {
        int64_t nb = n - p0 < NK_ATTEND_BLOCK ? n - p0 : NK_ATTEND_BLOCK;
        // Scores: four positions of two heads (or one) at a time — eight independent chains, each
        // key row loaded (and converted) once for both heads.
        int64_t p = 0;
        for (; p + 4 <= nb; p += 4) {
            // Ask for what comes next while this block computes (measured on Zen 3: the single
            // thread's read rate goes from 55 % to 80 % of a plain stream's): the values of the
            // next block and the keys two blocks ahead (a prefetch past the end never faults).
            const char *vr = (const char *)v + (p0 + p + NK_ATTEND_BLOCK) * row_bytes;
            const char *kr = (const char *)k + (p0 + p + 2 * NK_ATTEND_BLOCK) * row_bytes;
            for (int64_t b = 0; b < 4 * row_bytes; b += 64) {
                _mm_prefetch(vr + b, _MM_HINT_T0);
                _mm_prefetch(kr + b, _MM_HINT_T0);
            }
            int g = 0;
            for (; g + 2 <= group; g += 2) score_quad(q + g * hd, hd, k, (p0 + p) * hd, scale, scores + g * NK_ATTEND_BLOCK + p, 2, t);
            if (g < group) score_quad(q + g * hd, hd, k, (p0 + p) * hd, scale, scores + g * NK_ATTEND_BLOCK + p, 1, t);
        }
        for (; p < nb; p++) {
            for (int g = 0; g < group; g++) {
                __m256 a = _mm256_setzero_ps();
                for (int i = 0; i < hd; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * hd + i), load8(k, (p0 + p) * hd + i, t), a);
                scores[g * NK_ATTEND_BLOCK + p] = hsum8(a) * scale;
            }
        }
        for (int g = 0; g < group; g++) {
            float corr = fold_block_avx2(scores + g * NK_ATTEND_BLOCK, nb, &m[g], &l[g]);
            if (corr != 1.0f) {
                __m256 cv = _mm256_set1_ps(corr);
                for (int i = 0; i < hd; i += 8) _mm256_storeu_ps(out + g * hd + i, _mm256_mul_ps(cv, _mm256_loadu_ps(out + g * hd + i)));
            }
        }
        // Values: 32 columns (or 8) of two heads (or one) at a time.
        for (int c = 0; c < hd;) {
            int w = hd - c >= 32 ? 4 : 1;
            int g = 0;
            for (; g + 2 <= group; g += 2) {
                if (w == 4) accumulate_v(scores + g * NK_ATTEND_BLOCK, out + g * hd, hd, v, p0, nb, c, 2, 4, t);
                else accumulate_v(scores + g * NK_ATTEND_BLOCK, out + g * hd, hd, v, p0, nb, c, 2, 1, t);
            }
            if (g < group) {
                if (w == 4) accumulate_v(scores + g * NK_ATTEND_BLOCK, out + g * hd, hd, v, p0, nb, c, 1, 4, t);
                else accumulate_v(scores + g * NK_ATTEND_BLOCK, out + g * hd, hd, v, p0, nb, c, 1, 1, t);
            }
            c += 8 * w;
        }
    }
    for (int g = 0; g < group; g++) {
        __m256 inv = _mm256_set1_ps(1.0f / l[g]);
        for (int i = 0; i < hd; i += 8) _mm256_storeu_ps(out + g * hd + i, _mm256_mul_ps(inv, _mm256_loadu_ps(out + g * hd + i)));
    }
}

NK_AVX2 static void attend_f32_avx2(const float *q, int group, int hd, const void *k, const void *v,
                                    int64_t n, float scale, float *scores, float *out) {
    attend_avx2(q, group, hd, k, v, n, scale, scores, out, NK_F32);
}

NK_AVX2 static void attend_f16_avx2(const float *q, int group, int hd, const void *k, const void *v,
                                    int64_t n, float scale, float *scores, float *out) {
    attend_avx2(q, group, hd, k, v, n, scale, scores, out, NK_F16);
}

NK_AVX2 static void attend_bf16_avx2(const float *q, int group, int hd, const void *k, const void *v,
                                     int64_t n, float scale, float *scores, float *out) {
    attend_avx2(q, group, hd, k, v, n, scale, scores, out, NK_BF16);
}
#endif

static void attend_f32_portable(const float *q, int group, int hd, const void *k, const void *v,
                                int64_t n, float scale, float *scores, float *out) {
    attend_portable(q, group, hd, k, v, n, scale, scores, out, NK_F32);
}

static void attend_f16_portable(const float *q, int group, int hd, const void *k, const void *v,
                                int64_t n, float scale, float *scores, float *out) {
    attend_portable(q, group, hd, k, v, n, scale, scores, out, NK_F16);
}

static void attend_bf16_portable(const float *q, int group, int hd, const void *k, const void *v,
                                 int64_t n, float scale, float *scores, float *out) {
    attend_portable(q, group, hd, k, v, n, scale, scores, out, NK_BF16);
}

void nk_attend_decode(const float *q, int group, int head_dim, const void *k, const void *v, nk_dtype kv,
                      int64_t n, float scale, float *scores, float *out) {
    if (n <= 0 || group <= 0) return;
    for (; group > 64; group -= 64, q += 64 * head_dim, out += 64 * head_dim)  // 64 heads a pass
        nk_attend_decode(q, 64, head_dim, k, v, kv, n, scale, scores, out);
#if NK_X86
    // AVX-512 machines take this path too: decode attention is bound by the cache's bandwidth,
    // which 8-wide loads already reach.
    if (nk_level_now() >= NK_LEVEL_AVX2 && head_dim % 8 == 0) {
        switch (kv) {
        case NK_F32: attend_f32_avx2(q, group, head_dim, k, v, n, scale, scores, out); return;
        case NK_F16: attend_f16_avx2(q, group, head_dim, k, v, n, scale, scores, out); return;
        case NK_BF16: attend_bf16_avx2(q, group, head_dim, k, v, n, scale, scores, out); return;
        }
    }
#endif
    switch (kv) {
    case NK_F32: attend_f32_portable(q, group, head_dim, k, v, n, scale, scores, out); return;
    case NK_F16: attend_f16_portable(q, group, head_dim, k, v, n, scale, scores, out); return;
    case NK_BF16: attend_bf16_portable(q, group, head_dim, k, v, n, scale, scores, out); return;
    }
}

float nk_softmax_fold(float *s, int64_t n, float *m, float *l) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) return fold_block_avx2(s, n, m, l);
#endif
    return fold_block(s, n, m, l);
}
