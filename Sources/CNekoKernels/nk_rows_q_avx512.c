// Q8 and Q4 row kernels with AVX-512 VNNI: one 64-byte load holds 4 codes of 16 rows, so each
// vpdpbusd adds 4 products into each row's lane and a block of 32 ends with the 16 rows' dot
// products side by side — no horizontal sums. Q8 codes are stored +128 (unsigned, as vpdpbusd
// wants) and the accumulator starts at −128·Σx to take the offset back out.
#include "nk_internal.h"
#include "nk_quant.h"

#if NK_X86

static inline int32_t load_i32(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

NK_AVX512 static inline __attribute__((always_inline)) void
q8_group_avx512(const uint8_t *gw, int64_t nb, const nk_qact *xq, const int64_t *xr, const int T,
                float *y, int64_t ldy, __mmask16 valid) {
    __m512 accf[8];
    const int8_t *xs[8];
    for (int t = 0; t < T; t++) { accf[t] = _mm512_setzero_ps(); xs[t] = xq->q + xr[t] * xq->stride; }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gw + b * NK_Q8_BLOCK_BYTES;
        // Two partial sums per token (even and odd chunks) halve the vpdpbusd dependency chains.
        __m512i acc[8], acc2[8];
        for (int t = 0; t < T; t++) {
            acc[t] = _mm512_set1_epi32(xq->c8[xr[t] * xq->blocks + b]);
            acc2[t] = _mm512_setzero_si512();
        }
        for (int c = 0; c < 8; c += 2) {
            NK_PREFETCH_L2(blk + 32 + 64 * c);
            __m512i w0 = _mm512_loadu_si512(blk + 32 + 64 * c), w1 = _mm512_loadu_si512(blk + 96 + 64 * c);
            for (int t = 0; t < T; t++) {
                acc[t] = _mm512_dpbusd_epi32(acc[t], w0, _mm512_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c)));
                acc2[t] = _mm512_dpbusd_epi32(acc2[t], w1, _mm512_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c + 4)));
            }
        }
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        for (int t = 0; t < T; t++) {
            __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(xq->d[xr[t] * xq->blocks + b]));
            accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[t], acc2[t])), scale, accf[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, valid, accf[t]);
}

NK_AVX512 static inline __attribute__((always_inline)) void
q4_group_avx512(const uint8_t *gw, int64_t nb, const nk_qact *xq, const int64_t *xr, const int T,
                float *y, int64_t ldy, __mmask16 valid) {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    __m512 accf[8];
    const int8_t *xs[8];
    for (int t = 0; t < T; t++) { accf[t] = _mm512_setzero_ps(); xs[t] = xq->q + xr[t] * xq->stride; }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = gw + b * NK_Q4_BLOCK_BYTES;
        __m512i acc[8], acc2[8];   // low-nibble and high-nibble partial sums
        for (int t = 0; t < T; t++) { acc[t] = _mm512_setzero_si512(); acc2[t] = _mm512_setzero_si512(); }
        for (int c = 0; c < 4; c++) {
            if ((c & 1) == 0) NK_PREFETCH_L2(blk + 64 + 64 * c);
            __m512i v = _mm512_loadu_si512(blk + 64 + 64 * c);
            __m512i lo = _mm512_and_si512(v, low4);
            __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
            for (int t = 0; t < T; t++) {
                acc[t] = _mm512_dpbusd_epi32(acc[t], lo, _mm512_set1_epi32(load_i32(xs[t] + 32 * b + 4 * c)));
                acc2[t] = _mm512_dpbusd_epi32(acc2[t], hi, _mm512_set1_epi32(load_i32(xs[t] + 32 * b + 16 + 4 * c)));
            }
        }
        for (int t = 0; t < T; t++) acc[t] = _mm512_add_epi32(acc[t], acc2[t]);
        __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
        __m512 mw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(blk + 32)));
        for (int t = 0; t < T; t++) {
            int64_t k = xr[t] * xq->blocks + b;
            __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(xq->d[k]));
            accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), scale, accf[t]);
            accf[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xq->ds[k]), accf[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, valid, accf[t]);
}

#define NK_T_CASES(F) \
    switch (T) { \
    case 1: F(1); break; case 2: F(2); break; case 3: F(3); break; case 4: F(4); break; \
    case 5: F(5); break; case 6: F(6); break; case 7: F(7); break; default: F(8); break; }

// Groups [r0/16, ⌈r1/16⌉), tokens 8 at a time (a group is 17 KB at 1024 columns: it stays in L1
// while the token groups pass over it).
NK_AVX512 static void rows_q_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                    float *y, int64_t ldy, int q4) {
    int64_t nb = (job->cols + 31) / 32;
    int64_t gbytes = nb * (q4 ? NK_Q4_BLOCK_BYTES : NK_Q8_BLOCK_BYTES);
    int64_t end = r1 < job->rows ? r1 : job->rows;
    for (int64_t r = r0; r < end; r += NK_GROUP_ROWS) {
        const uint8_t *gw = (const uint8_t *)w + (r / NK_GROUP_ROWS) * gbytes;
        int64_t left = end - r;
        __mmask16 valid = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        int64_t tiles = (job->ntok + 7) / 8;   // token tiles of at most 8, balanced
        for (int64_t i = 0, t0 = 0; i < tiles; i++) {
            int T = (int)((job->ntok * (i + 1)) / tiles - t0);
            int64_t xr[8];
            for (int t = 0; t < T; t++) xr[t] = nk_xrow(job, t0 + t);
            float *yo = y + t0 * ldy + (r - r0);
            if (q4) {
#define NK_Q4_CALL(TT) q4_group_avx512(gw, nb, job->xq, xr, TT, yo, ldy, valid)
                NK_T_CASES(NK_Q4_CALL)
            } else {
#define NK_Q8_CALL(TT) q8_group_avx512(gw, nb, job->xq, xr, TT, yo, ldy, valid)
                NK_T_CASES(NK_Q8_CALL)
            }
            t0 += T;
        }
    }
}

void nk_rows_q8_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy) {
    rows_q_avx512(job, w, r0, r1, y, ldy, 0);
}

void nk_rows_q4_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy) {
    rows_q_avx512(job, w, r0, r1, y, ldy, 1);
}
#endif
