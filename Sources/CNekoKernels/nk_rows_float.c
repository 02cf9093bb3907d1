// Row kernels for the stored float formats (F32, BF16, F16), row-major as the files hold them.
//
// One thread reads its rows as one sequential stream: on the machines measured, interleaving
// several rows' streams (2 KB apart) read memory at a third of the speed. So decode reads one
// row at a time against all tokens; prefill (more than 4 tokens) runs a 4-row × 5-token tile
// from L1 while prefetching the next 4 rows in order.
#include "nk_internal.h"

// ---------------------------------------------------------------------------------------------
// Portable: rows converted 256 values at a time, then plain dot products.

void nk_rows_float_portable(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                            float *y, int64_t ldy) {
    nk_dtype dtype = (nk_dtype)job->format;
    size_t es = nk_dtype_size(dtype);
    int64_t cols = job->cols;
    float row[256];
    for (int64_t r = r0; r < r1; r++) {
        const unsigned char *wr = (const unsigned char *)w + (size_t)r * (size_t)cols * es;
        for (int64_t t = 0; t < job->ntok; t++) y[t * ldy + (r - r0)] = 0.0f;
        for (int64_t c0 = 0; c0 < cols; c0 += 256) {
            int64_t m = cols - c0 < 256 ? cols - c0 : 256;
            for (int64_t c = 0; c < m; c++) row[c] = nk_load_elem(wr, dtype, (size_t)(c0 + c));
            for (int64_t t = 0; t < job->ntok; t++) {
                const float *xt = job->x + nk_xrow(job, t) * job->ldx + c0;
                float acc = 0.0f;
                for (int64_t c = 0; c < m; c++) acc += row[c] * xt[c];
                y[t * ldy + (r - r0)] += acc;
            }
        }
    }
}

#if NK_X86
// ---------------------------------------------------------------------------------------------
// AVX2

NK_AVX2 static inline float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

// 8 stored values at p as float32, natural order.
NK_AVX2 static inline __m256 load8_natural(const unsigned char *p, nk_dtype dtype) {
    switch (dtype) {
    case NK_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    case NK_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    default: return _mm256_loadu_ps((const float *)p);
    }
}

// Natural-order input, any dtype: one row, tokens in groups of up to 4.
NK_AVX2 static void rows_natural_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                      float *y, int64_t ldy) {
    nk_dtype dtype = (nk_dtype)job->format;
    size_t es = nk_dtype_size(dtype);
    int64_t cols = job->cols, full = cols & ~(int64_t)7;
    for (int64_t r = r0; r < r1; r++) {
        const unsigned char *wr = (const unsigned char *)w + (size_t)r * (size_t)cols * es;
        for (int64_t t0 = 0; t0 < job->ntok; t0 += 4) {
            int nt = job->ntok - t0 < 4 ? (int)(job->ntok - t0) : 4;
            const float *xs[4];
            for (int i = 0; i < 4; i++) xs[i] = job->x + nk_xrow(job, t0 + (i < nt ? i : 0)) * job->ldx;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t c = 0; c < full; c += 8) {
                __m256 wv = load8_natural(wr + c * es, dtype);
                a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[0] + c), a0);
                if (nt > 1) a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[1] + c), a1);
                if (nt > 2) a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[2] + c), a2);
                if (nt > 3) a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs[3] + c), a3);
            }
            float s[4] = {hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3)};
            for (int64_t c = full; c < cols; c++) {
                float wv = nk_load_elem(wr, dtype, (size_t)c);
                for (int i = 0; i < nt; i++) s[i] += wv * xs[i][c];
            }
            for (int i = 0; i < nt; i++) y[(t0 + i) * ldy + (r - r0)] = s[i];
        }
    }
}

// BF16 against the prepared (even/odd) input: 16 stored values → two float vectors with one
// shift and one mask. Half h of a block of 32 pairs with xp[b + 8h ..] (even) and xp[b + 16 + 8h ..] (odd).
NK_AVX2 static void rows_bf16_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                   float *y, int64_t ldy) {
    int64_t cols = job->cols, stride = nk_pad32(cols), full = cols & ~(int64_t)31;
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *wr = (const uint16_t *)w + (size_t)r * (size_t)cols;
        for (int64_t t0 = 0; t0 < job->ntok; t0 += 2) {
            int nt = job->ntok - t0 < 2 ? (int)(job->ntok - t0) : 2;
            const float *x0 = job->xp + nk_xrow(job, t0) * stride;
            const float *x1 = job->xp + nk_xrow(job, t0 + (nt > 1 ? 1 : 0)) * stride;
            __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0;
            for (int64_t c = 0; c < full; c += 32) {
                NK_PREFETCH_L2(wr + c);
                __m256i v0 = _mm256_loadu_si256((const __m256i *)(wr + c));
                __m256i v1 = _mm256_loadu_si256((const __m256i *)(wr + c + 16));
                __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16)), o0 = _mm256_castsi256_ps(_mm256_and_si256(v0, hi_mask));
                __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16)), o1 = _mm256_castsi256_ps(_mm256_and_si256(v1, hi_mask));
                a0 = _mm256_fmadd_ps(e0, _mm256_loadu_ps(x0 + c), a0);
                b0 = _mm256_fmadd_ps(o0, _mm256_loadu_ps(x0 + c + 16), b0);
                a0 = _mm256_fmadd_ps(e1, _mm256_loadu_ps(x0 + c + 8), a0);
                b0 = _mm256_fmadd_ps(o1, _mm256_loadu_ps(x0 + c + 24), b0);
                if (nt > 1) {
                    a1 = _mm256_fmadd_ps(e0, _mm256_loadu_ps(x1 + c), a1);
                    b1 = _mm256_fmadd_ps(o0, _mm256_loadu_ps(x1 + c + 16), b1);
                    a1 = _mm256_fmadd_ps(e1, _mm256_loadu_ps(x1 + c + 8), a1);
                    b1 = _mm256_fmadd_ps(o1, _mm256_loadu_ps(x1 + c + 24), b1);
                }
            }
            float s0 = hsum8(_mm256_add_ps(a0, b0)), s1 = hsum8(_mm256_add_ps(a1, b1));
            // Tail: scalar, natural-order input.
            const float *n0 = job->x + nk_xrow(job, t0) * job->ldx;
            const float *n1 = job->x + nk_xrow(job, t0 + (nt > 1 ? 1 : 0)) * job->ldx;
            for (int64_t c = full; c < cols; c++) {
                float wv = nk_bf16_to_f32(wr[c]);
                s0 += wv * n0[c];
                s1 += wv * n1[c];
            }
            y[t0 * ldy + (r - r0)] = s0;
            if (nt > 1) y[(t0 + 1) * ldy + (r - r0)] = s1;
        }
    }
}

// Prefill tile for AVX2: 2 rows × 4 tokens (8 accumulators, 4 converted weight vectors, 2
// inputs: 14 of the 16 registers), 16 values per step against the even/odd input.
NK_AVX2 static inline __attribute__((always_inline)) void
tile_bf16_avx2(const uint16_t *wr, int64_t cols, const float *const *xs, float *out, int64_t ldo,
               const int R, const int T) {
    const __m256i hi_mask = _mm256_set1_epi32((int)0xffff0000u);
    __m256 acc[2][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t full = cols & ~(int64_t)31;
    for (int64_t c = 0; c < full; c += 32) {
        for (int h = 0; h < 2; h++) {
            __m256 e[2], o[2];
            for (int r = 0; r < R; r++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(wr + r * cols + c + 16 * h));
                e[r] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
                o[r] = _mm256_castsi256_ps(_mm256_and_si256(v, hi_mask));
            }
            for (int t = 0; t < T; t++) {
                __m256 xe = _mm256_loadu_ps(xs[t] + c + 8 * h), xo = _mm256_loadu_ps(xs[t] + c + 16 + 8 * h);
                for (int r = 0; r < R; r++) {
                    acc[r][t] = _mm256_fmadd_ps(e[r], xe, acc[r][t]);
                    acc[r][t] = _mm256_fmadd_ps(o[r], xo, acc[r][t]);
                }
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) out[t * ldo + r] = hsum8(acc[r][t]);
}

// The partial last block (cols % 32) of rows × tokens, scalar, natural-order input.
static void tail_bf16(const nk_matvec *job, const uint16_t *w16, int64_t r0, int64_t r1, float *y, int64_t ldy) {
    int64_t cols = job->cols, full = cols & ~(int64_t)31;
    if (full == cols) return;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < job->ntok; t++) {
            const float *xt = job->x + nk_xrow(job, t) * job->ldx;
            float s = 0.0f;
            for (int64_t c = full; c < cols; c++) s += nk_bf16_to_f32(w16[(size_t)r * (size_t)cols + c]) * xt[c];
            y[t * ldy + (r - r0)] += s;
        }
}

NK_AVX2 static void rows_bf16_tiles_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                         float *y, int64_t ldy) {
    int64_t cols = job->cols, stride = nk_pad32(cols);
    const uint16_t *w16 = (const uint16_t *)w;
    for (int64_t tb = 0; tb < job->ntok; tb += 64) {
        int64_t nb = job->ntok - tb < 64 ? job->ntok - tb : 64;
        for (int64_t r = r0; r < r1; r += 2) {
            int R = r1 - r < 2 ? (int)(r1 - r) : 2;
            const uint16_t *wr = w16 + (size_t)r * (size_t)cols;
            for (int64_t t = 0; t < nb; t += 4) {
                int T = nb - t < 4 ? (int)(nb - t) : 4;
                const float *xs[4];
                for (int k = 0; k < T; k++) xs[k] = job->xp + nk_xrow(job, tb + t + k) * stride;
                float *out = y + (tb + t) * ldy + (r - r0);
#define NK_AVX2_TILE(RR, TT) if (R == RR && T == TT) tile_bf16_avx2(wr, cols, xs, out, ldy, RR, TT)
                NK_AVX2_TILE(2, 4); NK_AVX2_TILE(2, 3); NK_AVX2_TILE(2, 2); NK_AVX2_TILE(2, 1);
                NK_AVX2_TILE(1, 4); NK_AVX2_TILE(1, 3); NK_AVX2_TILE(1, 2); NK_AVX2_TILE(1, 1);
#undef NK_AVX2_TILE
            }
        }
    }
    tail_bf16(job, w16, r0, r1, y, ldy);
}

void nk_rows_float_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                        float *y, int64_t ldy) {
    if (job->format == NK_FMT_BF16 && job->xp) {
        if (job->xt) nk_rows_bf16_outer_avx2(job, w, r0, r1, y, ldy);
        else if (job->ntok >= NK_FLOAT_TILES_MIN_TOKENS) rows_bf16_tiles_avx2(job, w, r0, r1, y, ldy);
        else rows_bf16_avx2(job, w, r0, r1, y, ldy);
    } else {
        rows_natural_avx2(job, w, r0, r1, y, ldy);
    }
}

// ---------------------------------------------------------------------------------------------
// AVX-512

// The first n (< 32) values of a 32-element mask.
#define NK_MASK32(n) ((__mmask32)((n) >= 32 ? 0xffffffffu : ((1u << (n)) - 1u)))

NK_AVX512 static inline __m512 load16_natural(const unsigned char *p, nk_dtype dtype, __mmask16 m) {
    switch (dtype) {
    case NK_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    case NK_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    default: return _mm512_maskz_loadu_ps(m, p);
    }
}

NK_AVX512 static void rows_natural_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                          float *y, int64_t ldy) {
    nk_dtype dtype = (nk_dtype)job->format;
    size_t es = nk_dtype_size(dtype);
    int64_t cols = job->cols;
    for (int64_t r = r0; r < r1; r++) {
        const unsigned char *wr = (const unsigned char *)w + (size_t)r * (size_t)cols * es;
        for (int64_t t0 = 0; t0 < job->ntok; t0 += 4) {
            int nt = job->ntok - t0 < 4 ? (int)(job->ntok - t0) : 4;
            const float *xs[4];
            for (int i = 0; i < 4; i++) xs[i] = job->x + nk_xrow(job, t0 + (i < nt ? i : 0)) * job->ldx;
            __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            for (int64_t c = 0; c < cols; c += 16) {
                int64_t left = cols - c;
                __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
                __m512 wv = load16_natural(wr + c * es, dtype, m);
                for (int i = 0; i < nt; i++) a[i] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, xs[i] + c), a[i]);
            }
            for (int i = 0; i < nt; i++) y[(t0 + i) * ldy + (r - r0)] = _mm512_reduce_add_ps(a[i]);
        }
    }
}

// One BF16 row against T ≤ 4 prepared tokens (decode). The stored row is read once, in order,
// U blocks of 32 per step into independent accumulators: with few loads in flight a core read
// memory at 70% of a plain read loop's rate here; 512 bytes per step (T = 1) reach it.
NK_AVX512 static inline __attribute__((always_inline)) void
row_bf16_decode(const uint16_t *wr, int64_t cols, const float *const *xs, const int T, const int U,
                float *out, int64_t ldo) {
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[4][16];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < 2 * U; k++) acc[t][k] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 32 * U <= cols; c += 32 * U) {
        for (int u = 0; u < U; u++) {
            if ((u & 1) == 0) NK_PREFETCH_L2(wr + c + 32 * u);
            __m512i v = _mm512_loadu_si512(wr + c + 32 * u);
            __m512 e = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            __m512 o = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
            for (int t = 0; t < T; t++) {
                acc[t][2 * u] = _mm512_fmadd_ps(e, _mm512_loadu_ps(xs[t] + c + 32 * u), acc[t][2 * u]);
                acc[t][2 * u + 1] = _mm512_fmadd_ps(o, _mm512_loadu_ps(xs[t] + c + 32 * u + 16), acc[t][2 * u + 1]);
            }
        }
    }
    for (; c < cols; c += 32) {   // the rest, one block at a time (the last one masked)
        __m512i v = _mm512_maskz_loadu_epi16(NK_MASK32(cols - c), wr + c);
        __m512 e = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        __m512 o = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
        for (int t = 0; t < T; t++) {
            acc[t][0] = _mm512_fmadd_ps(e, _mm512_loadu_ps(xs[t] + c), acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(o, _mm512_loadu_ps(xs[t] + c + 16), acc[t][1]);
        }
    }
    for (int t = 0; t < T; t++) {
        for (int k = 1; k < 2 * U; k++) acc[t][0] = _mm512_add_ps(acc[t][0], acc[t][k]);
        out[t * ldo] = _mm512_reduce_add_ps(acc[t][0]);
    }
}

NK_AVX512 static void row_bf16_decode_avx512(const uint16_t *wr, int64_t cols, const float *const *xs,
                                             int nt, float *out, int64_t ldo) {
    switch (nt) {
    case 1: row_bf16_decode(wr, cols, xs, 1, 8, out, ldo); break;
    case 2: row_bf16_decode(wr, cols, xs, 2, 4, out, ldo); break;
    case 3: row_bf16_decode(wr, cols, xs, 3, 2, out, ldo); break;
    default: row_bf16_decode(wr, cols, xs, 4, 2, out, ldo); break;
    }
}

// Prefill tile: R rows × T tokens, dot-product form (vectors along the columns), BF16 against
// the prepared input. The next R rows (contiguous in memory) are prefetched in order as we go.
NK_AVX512 static inline __attribute__((always_inline)) void
tile_bf16_avx512(const uint16_t *wr, int64_t cols, int64_t stride, const float *const *xs,
                 float *out, int64_t ldo, const int R, const int T, int prefetch) {
    const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
    __m512 acc[4][5];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    const char *next = (const char *)(wr + R * cols);
    for (int64_t c = 0; c < stride; c += 32) {
        if (prefetch) {
            const char *p = next + c * 2 * R;
            _mm_prefetch(p, _MM_HINT_T0);
            if (R > 1) _mm_prefetch(p + 64, _MM_HINT_T0);
            if (R > 2) _mm_prefetch(p + 128, _MM_HINT_T0);
            if (R > 3) _mm_prefetch(p + 192, _MM_HINT_T0);
        }
        __mmask32 m = NK_MASK32(cols - c);
        __m512 e[4], o[4];
        for (int r = 0; r < R; r++) {
            __m512i v = _mm512_maskz_loadu_epi16(m, wr + r * cols + c);
            e[r] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            o[r] = _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
        }
        for (int t = 0; t < T; t++) {
            __m512 xe = _mm512_loadu_ps(xs[t] + c), xo = _mm512_loadu_ps(xs[t] + c + 16);
            for (int r = 0; r < R; r++) {
                acc[r][t] = _mm512_fmadd_ps(e[r], xe, acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(o[r], xo, acc[r][t]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) out[t * ldo + r] = _mm512_reduce_add_ps(acc[r][t]);
}

NK_AVX512 static void tile_bf16_dispatch(const uint16_t *wr, int64_t cols, int64_t stride,
                                         const float *const *xs, float *out, int64_t ldo,
                                         int R, int T, int prefetch) {
#define NK_TILE_CASE(RR, TT) case (RR) * 8 + (TT): tile_bf16_avx512(wr, cols, stride, xs, out, ldo, RR, TT, prefetch); break;
    switch (R * 8 + T) {
    NK_TILE_CASE(4, 5) NK_TILE_CASE(4, 4) NK_TILE_CASE(4, 3) NK_TILE_CASE(4, 2) NK_TILE_CASE(4, 1)
    NK_TILE_CASE(3, 5) NK_TILE_CASE(3, 4) NK_TILE_CASE(3, 3) NK_TILE_CASE(3, 2) NK_TILE_CASE(3, 1)
    NK_TILE_CASE(2, 5) NK_TILE_CASE(2, 4) NK_TILE_CASE(2, 3) NK_TILE_CASE(2, 2) NK_TILE_CASE(2, 1)
    NK_TILE_CASE(1, 5) NK_TILE_CASE(1, 4) NK_TILE_CASE(1, 3) NK_TILE_CASE(1, 2) NK_TILE_CASE(1, 1)
    default: break;
    }
#undef NK_TILE_CASE
}

NK_AVX512 static void rows_bf16_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                                       float *y, int64_t ldy) {
    int64_t cols = job->cols, stride = nk_pad32(cols);
    const uint16_t *w16 = (const uint16_t *)w;
    if (job->ntok < NK_FLOAT_TILES_MIN_TOKENS) {
        int nt = job->ntok;
        const float *xs[NK_FLOAT_TILES_MIN_TOKENS - 1];
        for (int i = 0; i < nt; i++) xs[i] = job->xp + nk_xrow(job, i) * stride;
        for (int64_t r = r0; r < r1; r++)
            row_bf16_decode_avx512(w16 + (size_t)r * (size_t)cols, cols, xs, nt, y + (r - r0), ldy);
        return;
    }
    // Blocks of 64 tokens (256 KB of input at 1024 columns stay in L2) over the chunk's rows.
    for (int64_t tb = 0; tb < job->ntok; tb += 64) {
        int64_t nb = job->ntok - tb < 64 ? job->ntok - tb : 64;
        for (int64_t r = r0; r < r1; r += 4) {
            int R = r1 - r < 4 ? (int)(r1 - r) : 4;
            const uint16_t *wr = w16 + (size_t)r * (size_t)cols;
            // Token tiles of at most 5, balanced (32 tokens: 5,5,5,5,4,4,4 rather than …,5,2).
            int64_t tiles = (nb + 4) / 5;
            for (int64_t i = 0, t = 0; i < tiles; i++) {
                int T = (int)((nb * (i + 1)) / tiles - t);
                const float *xs[5];
                for (int k = 0; k < T; k++) xs[k] = job->xp + nk_xrow(job, tb + t + k) * stride;
                tile_bf16_dispatch(wr, cols, stride, xs, y + (tb + t) * ldy + (r - r0), ldy, R, T,
                                   tb == 0 && t == 0 && r + R < r1);
                t += T;
            }
        }
    }
}

void nk_rows_float_avx512(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                          float *y, int64_t ldy) {
    if (job->format == NK_FMT_BF16 && job->xp) rows_bf16_avx512(job, w, r0, r1, y, ldy);
    else rows_natural_avx512(job, w, r0, r1, y, ldy);
}
#endif
