// Q8 and Q4 row kernels with AVX2: a 32-byte load holds 4 codes of 8 rows (half a group).
// Q8 uses the sign trick (|x| unsigned times w with x's sign, vpmaddubsw, then vpmaddwd) on
// codes moved back to signed; Q4's codes are already unsigned, and a whole block's products fit
// in 16 bits (4 × 2 × 15 × 127 < 32768), so it widens once per block.
#include "nk_internal.h"
#include "nk_quant.h"

#if NK_X86

static inline int32_t load_i32(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

NK_AVX2 static inline void store8_valid(float *y, __m256 v, int n) {
    if (n >= 8) { _mm256_storeu_ps(y, v); return; }
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    for (int i = 0; i < n; i++) y[i] = tmp[i];
}

NK_AVX2 static inline __attribute__((always_inline)) void
q8_group_avx2(const uint8_t *gw, int64_t nb, const nk_qact *xq, const int64_t *xr, const int T,
              float *y, int64_t ldy, int valid) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    __m256 accf[2][2];
    const int8_t *xs[2];
    for (int t = 0; t < T; t++) {
        accf[t][0] = _mm256_setzero_ps(); accf[t][1] = _mm256_setzero_ps();
        xs[t] = xq->q + xr[t] * xq->stride;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gw + b * NK_Q8_BLOCK_BYTES;
        __m256i acc[2][2];
        for (int t = 0; t < T; t++) { acc[t][0] = _mm256_setzero_si256(); acc[t][1] = _mm256_setzero_si256(); }
        for (int c = 0; c < 8; c++) {
            __m256i xb[2], ax[2];
            for (int t = 0; t < T; t++) {
                xb[t] = _mm256_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c));
                ax[t] = _mm256_abs_epi8(xb[t]);
            }
            for (int h = 0; h < 2; h++) {
                __m256i wv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 32 + 64 * c + 32 * h)), flip);
                for (int t = 0; t < T; t++) {
                    __m256i p = _mm256_maddubs_epi16(ax[t], _mm256_sign_epi8(wv, xb[t]));
                    acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(p, ones));
                }
            }
        }
        __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        for (int t = 0; t < T; t++) {
            __m256 dx = _mm256_set1_ps(xq->d[xr[t] * xq->blocks + b]);
            accf[t][0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][0]), _mm256_mul_ps(dw0, dx), accf[t][0]);
            accf[t][1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t][1]), _mm256_mul_ps(dw1, dx), accf[t][1]);
        }
    }
    for (int t = 0; t < T; t++) {
        store8_valid(y + t * ldy, accf[t][0], valid);
        if (valid > 8) store8_valid(y + t * ldy + 8, accf[t][1], valid - 8);
    }
}

NK_AVX2 static inline __attribute__((always_inline)) void
q4_group_avx2(const uint8_t *gw, int64_t nb, const nk_qact *xq, const int64_t *xr, const int T,
              float *y, int64_t ldy, int valid) {
    const __m256i low4 = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 accf[2][2];
    const int8_t *xs[2];
    for (int t = 0; t < T; t++) {
        accf[t][0] = _mm256_setzero_ps(); accf[t][1] = _mm256_setzero_ps();
        xs[t] = xq->q + xr[t] * xq->stride;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gw + b * NK_Q4_BLOCK_BYTES;
        __m256i acc[2][2];
        for (int t = 0; t < T; t++) { acc[t][0] = _mm256_setzero_si256(); acc[t][1] = _mm256_setzero_si256(); }
        for (int c = 0; c < 4; c++) {
            __m256i xa[2], xb[2];
            for (int t = 0; t < T; t++) {
                xa[t] = _mm256_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c));
                xb[t] = _mm256_set1_epi32(load_i32(xs[t] + 32 * b + 16 + 4 * c));
            }
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 64 + 64 * c + 32 * h));
                __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                for (int t = 0; t < T; t++)
                    acc[t][h] = _mm256_add_epi16(acc[t][h], _mm256_add_epi16(_mm256_maddubs_epi16(lo, xa[t]),
                                                                             _mm256_maddubs_epi16(hi, xb[t])));
            }
        }
        __m256 dw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)blk));
        __m256 dw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16)));
        __m256 mw0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 32)));
        __m256 mw1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 48)));
        for (int t = 0; t < T; t++) {
            int64_t k = xr[t] * xq->blocks + b;
            __m256 dx = _mm256_set1_ps(xq->d[k]), dsx = _mm256_set1_ps(xq->ds[k]);
            __m256 s0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[t][0], ones));
            __m256 s1 = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[t][1], ones));
            accf[t][0] = _mm256_fmadd_ps(mw0, dsx, _mm256_fmadd_ps(s0, _mm256_mul_ps(dw0, dx), accf[t][0]));
            accf[t][1] = _mm256_fmadd_ps(mw1, dsx, _mm256_fmadd_ps(s1, _mm256_mul_ps(dw1, dx), accf[t][1]));
        }
    }
    for (int t = 0; t < T; t++) {
        store8_valid(y + t * ldy, accf[t][0], valid);
        if (valid > 8) store8_valid(y + t * ldy + 8, accf[t][1], valid - 8);
    }
}

// Prefill: one half of a group (8 rows) against up to 4 tokens, so the accumulators fit the 16
// registers; the group (a few KB) stays in L1 while both halves and all token tiles pass over it.
NK_AVX2 static inline __attribute__((always_inline)) void
q_half_avx2(const uint8_t *gw, int64_t nb, const nk_qact *xq, const int64_t *xr, const int T, const int h,
            float *y, int64_t ldy, int valid, int q4) {
    const __m256i flip = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0f);
    __m256 accf[4];
    const int8_t *xs[4];
    for (int t = 0; t < T; t++) { accf[t] = _mm256_setzero_ps(); xs[t] = xq->q + xr[t] * xq->stride; }
    for (int64_t b = 0; b < nb; b++) {
        __m256i acc[4];
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_si256();
        if (q4) {
            const uint8_t *blk = gw + b * NK_Q4_BLOCK_BYTES;
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 64 + 64 * c + 32 * h));
                __m256i lo = _mm256_and_si256(v, low4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
                for (int t = 0; t < T; t++) {
                    __m256i xa = _mm256_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c));
                    __m256i xb = _mm256_set1_epi32(load_i32(xs[t] + 32 * b + 16 + 4 * c));
                    acc[t] = _mm256_add_epi16(acc[t], _mm256_add_epi16(_mm256_maddubs_epi16(lo, xa), _mm256_maddubs_epi16(hi, xb)));
                }
            }
            __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
            __m256 mw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 32 + 16 * h)));
            for (int t = 0; t < T; t++) {
                int64_t k = xr[t] * xq->blocks + b;
                __m256 s = _mm256_cvtepi32_ps(_mm256_madd_epi16(acc[t], ones));
                accf[t] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xq->ds[k]),
                                          _mm256_fmadd_ps(s, _mm256_mul_ps(dw, _mm256_set1_ps(xq->d[k])), accf[t]));
            }
        } else {
            const uint8_t *blk = gw + b * NK_Q8_BLOCK_BYTES;
            for (int c = 0; c < 8; c++) {
                __m256i wv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(blk + 32 + 64 * c + 32 * h)), flip);
                for (int t = 0; t < T; t++) {
                    __m256i xb = _mm256_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c));
                    __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(xb), _mm256_sign_epi8(wv, xb));
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(p, ones));
                }
            }
            __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(blk + 16 * h)));
            for (int t = 0; t < T; t++) {
                __m256 dx = _mm256_set1_ps(xq->d[xr[t] * xq->blocks + b]);
                accf[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t]), _mm256_mul_ps(dw, dx), accf[t]);
            }
        }
    }
    for (int t = 0; t < T; t++) store8_valid(y + t * ldy + 8 * h, accf[t], valid - 8 * h);
}

NK_AVX2 static void rows_q_prefill_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                        float *y, int64_t ldy, int q4) {
    int64_t nb = (job->cols + 31) / 32;
    int64_t gbytes = nb * (q4 ? NK_Q4_BLOCK_BYTES : NK_Q8_BLOCK_BYTES);
    int64_t end = r1 < job->rows ? r1 : job->rows;
    for (int64_t r = r0; r < end; r += NK_GROUP_ROWS) {
        const uint8_t *gw = (const uint8_t *)w + (r / NK_GROUP_ROWS) * gbytes;
        int valid = end - r >= 16 ? 16 : (int)(end - r);
        for (int h = 0; h < 2 && 8 * h < valid; h++) {
            int64_t tiles = (job->ntok + 3) / 4;   // token tiles of at most 4, balanced
            for (int64_t i = 0, t0 = 0; i < tiles; i++) {
                int T = (int)((job->ntok * (i + 1)) / tiles - t0);
                int64_t xr[4];
                for (int t = 0; t < T; t++) xr[t] = nk_xrow(job, t0 + t);
                float *yo = y + t0 * ldy + (r - r0);
                switch (T) {
                case 1: q_half_avx2(gw, nb, job->xq, xr, 1, h, yo, ldy, valid, q4); break;
                case 2: q_half_avx2(gw, nb, job->xq, xr, 2, h, yo, ldy, valid, q4); break;
                case 3: q_half_avx2(gw, nb, job->xq, xr, 3, h, yo, ldy, valid, q4); break;
                default: q_half_avx2(gw, nb, job->xq, xr, 4, h, yo, ldy, valid, q4); break;
                }
                t0 += T;
            }
        }
    }
}

NK_AVX2 static void rows_q_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                float *y, int64_t ldy, int q4) {
    if (job->ntok >= NK_Q_PREFILL_MIN_TOKENS_AVX2) { rows_q_prefill_avx2(job, w, r0, r1, y, ldy, q4); return; }
    int64_t nb = (job->cols + 31) / 32;
    int64_t gbytes = nb * (q4 ? NK_Q4_BLOCK_BYTES : NK_Q8_BLOCK_BYTES);
    int64_t end = r1 < job->rows ? r1 : job->rows;
    for (int64_t r = r0; r < end; r += NK_GROUP_ROWS) {
        const uint8_t *gw = (const uint8_t *)w + (r / NK_GROUP_ROWS) * gbytes;
        int valid = end - r >= 16 ? 16 : (int)(end - r);
        for (int64_t t0 = 0; t0 < job->ntok; t0 += 2) {
            int64_t xr[2] = {nk_xrow(job, t0), 0};
            float *yo = y + t0 * ldy + (r - r0);
            if (job->ntok - t0 >= 2) {
                xr[1] = nk_xrow(job, t0 + 1);
                if (q4) q4_group_avx2(gw, nb, job->xq, xr, 2, yo, ldy, valid);
                else q8_group_avx2(gw, nb, job->xq, xr, 2, yo, ldy, valid);
            } else {
                if (q4) q4_group_avx2(gw, nb, job->xq, xr, 1, yo, ldy, valid);
                else q8_group_avx2(gw, nb, job->xq, xr, 1, yo, ldy, valid);
            }
        }
    }
}

void nk_rows_q8_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy) {
    rows_q_avx2(job, w, r0, r1, y, ldy, 0);
}

void nk_rows_q4_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy) {
    rows_q_avx2(job, w, r0, r1, y, ldy, 1);
}
#endif
