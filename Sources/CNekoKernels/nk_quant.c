// Quantisation: weights packed into the Q8/Q4 group layouts of nk_quant.h, activations into
// int8 blocks, and the portable row kernels that define what the SIMD ones must compute.
#include "nk_quant.h"
#include "nk_internal.h"

#include <float.h>

// No fused multiply-adds here: the packed weights must not depend on which code path made them.
#pragma STDC FP_CONTRACT OFF

static inline int64_t groups_of(int64_t rows) { return (rows + NK_GROUP_ROWS - 1) / NK_GROUP_ROWS; }
static inline int64_t blocks_of(int64_t cols) { return (cols + NK_BLOCK - 1) / NK_BLOCK; }

static inline int64_t block_bytes(nk_format f) {
    return f == NK_FMT_Q8 ? NK_Q8_BLOCK_BYTES : NK_Q4_BLOCK_BYTES;
}

int64_t nk_packed_group_bytes(nk_format format, int64_t cols) {
    return blocks_of(cols) * block_bytes(format);
}

int64_t nk_packed_bytes(nk_format format, int64_t rows, int64_t cols) {
    return groups_of(rows) * nk_packed_group_bytes(format, cols);
}

/// Round to nearest, ties to even, for |x| < 2^22 (all the codes here): adding and removing
/// 1.5 · 2^23 leaves the rounded value (IEEE arithmetic; this target is never built with
/// -ffast-math). Plain float operations, so loops over it vectorise, where nearbyintf is a
/// libm call on baseline x86-64.
static inline __attribute__((always_inline)) float round_even(float x) { return (x + 12582912.0f) - 12582912.0f; }

static inline void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline uint16_t get_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

// ---------------------------------------------------------------------------------------------
// One block of up to 32 weights.

static void quantize_q8(const float *x, int n, uint8_t *codes, uint16_t *d16) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) { float a = fabsf(x[i]); if (a > amax) amax = a; }
    float d = amax / 127.0f;
    if (d > 65504.0f) d = 65504.0f;
    *d16 = nk_f32_to_f16_scalar(d);
    float dr = nk_f16_to_f32_scalar(*d16);
    float id = dr > 0.0f ? 1.0f / dr : 0.0f;
    for (int i = 0; i < NK_BLOCK; i++) {
        int q = 0;
        if (i < n) {
            float v = round_even(x[i] * id);
            q = v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v;
        }
        codes[i] = (uint8_t)(q + 128);
    }
}

// Σ v[0 ..< 32] in a fixed order (8 lanes of 4, then a tree): the same bits whether or not the
// compiler vectorises the loops around it.
static inline __attribute__((always_inline)) float sum32(const float *v) {
    float l[8];
    for (int k = 0; k < 8; k++) l[k] = (v[k] + v[k + 8]) + (v[k + 16] + v[k + 24]);
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// Q4 with a minimum: 9 candidate scales around (max − min) / 15, each giving codes
// c = clamp(round((x − min) · scale), 0, 15) and the least-squares (d, m) for those codes (as
// llama.cpp's make_qkx2_quants does, with equal weights); the pair with the smallest squared
// error, rounded to half precision, defines the final codes. Values past n have weight 0.
static inline __attribute__((always_inline)) void
quantize_q4_body(const float *x, int n, uint8_t *codes, uint16_t *d16, uint16_t *m16) {
    memset(codes, 0, NK_BLOCK);
    if (n == 0) { *d16 = 0; *m16 = 0; return; }
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) { if (x[i] < mn) mn = x[i]; if (x[i] > mx) mx = x[i]; }
    if (!(mx > mn)) {
        *d16 = 0;
        *m16 = nk_f32_to_f16_scalar(mn);
        return;
    }
    float xv[NK_BLOCK], w[NK_BLOCK], c[NK_BLOCK], t[NK_BLOCK];
    for (int i = 0; i < NK_BLOCK; i++) { xv[i] = i < n ? x[i] : mn; w[i] = i < n ? 1.0f : 0.0f; }
    for (int i = 0; i < NK_BLOCK; i++) t[i] = w[i] * xv[i];
    const float sw = (float)n, sx = sum32(t);
    float best_d = (mx - mn) / 15.0f, best_m = mn, best_err = -1.0f;
    for (int step = -1; step < 8; step++) {
        float iscale = step < 0 ? 15.0f / (mx - mn) : (14.0f + 0.25f * (float)step) / (mx - mn);
        for (int i = 0; i < NK_BLOCK; i++) {
            float v = round_even((xv[i] - mn) * iscale);
            c[i] = w[i] * (v > 15.0f ? 15.0f : v < 0.0f ? 0.0f : v);
        }
        float sq = sum32(c);
        for (int i = 0; i < NK_BLOCK; i++) t[i] = c[i] * c[i];
        float sq2 = sum32(t);
        for (int i = 0; i < NK_BLOCK; i++) t[i] = c[i] * xv[i];
        float sxq = sum32(t);
        float d, m;
        if (step < 0) {
            d = (mx - mn) / 15.0f;   // the plain min/max candidate
            m = mn;
        } else {
            float det = sw * sq2 - sq * sq;
            if (!(det > 0.0f)) continue;
            d = (sw * sxq - sq * sx) / det;
            m = (sx - d * sq) / sw;
            if (!(d > 0.0f)) continue;
        }
        for (int i = 0; i < NK_BLOCK; i++) {
            float e = d * c[i] + m - xv[i];
            t[i] = w[i] * e * e;
        }
        float err = sum32(t);
        if (best_err < 0.0f || err < best_err) { best_err = err; best_d = d; best_m = m; }
    }
    *d16 = nk_f32_to_f16_scalar(best_d);
    *m16 = nk_f32_to_f16_scalar(best_m);
    float dr = nk_f16_to_f32_scalar(*d16), mr = nk_f16_to_f32_scalar(*m16);
    float id = dr > 0.0f ? 1.0f / dr : 0.0f;
    for (int i = 0; i < n; i++) {
        float v = round_even((x[i] - mr) * id);
        codes[i] = (uint8_t)(v > 15.0f ? 15 : v < 0.0f ? 0 : (int)v);
    }
}

static void quantize_q4_plain(const float *x, int n, uint8_t *codes, uint16_t *d16, uint16_t *m16) {
    quantize_q4_body(x, n, codes, d16, m16);
}

#if NK_X86
// The same arithmetic, compiled for AVX2 so its 32-wide loops run 8 at a time (no FMA
// contraction: the same bits as the portable build).
NK_AVX2 static void quantize_q4_avx2(const float *x, int n, uint8_t *codes, uint16_t *d16, uint16_t *m16) {
    quantize_q4_body(x, n, codes, d16, m16);
}
#endif

static void quantize_q4(const float *x, int n, uint8_t *codes, uint16_t *d16, uint16_t *m16) {
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) { quantize_q4_avx2(x, n, codes, d16, m16); return; }
#endif
    quantize_q4_plain(x, n, codes, d16, m16);
}

void nk_quantize_block(nk_format format, const float *x, int n, uint8_t *codes, uint16_t *d,
                       uint16_t *m) {
    // A NaN or infinite weight gets a NaN scale (half precision 0x7E00), so that it reaches the
    // logits as it does in BF16 and generation refuses them, instead of quietly becoming 0.
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            memset(codes, format == NK_FMT_Q8 ? 128 : 0, NK_BLOCK);
            *d = 0x7E00;
            if (m) *m = format == NK_FMT_Q8 ? 0 : 0x7E00;
            return;
        }
    }
    if (format == NK_FMT_Q8) {
        quantize_q8(x, n, codes, d);
        if (m) *m = 0;
    } else {
        quantize_q4(x, n, codes, d, m);
    }
}

// ---------------------------------------------------------------------------------------------
// Packing and unpacking whole groups.

void nk_pack(nk_format format, const void *src, nk_dtype dtype, int64_t rows, int64_t cols,
             int64_t group_begin, int64_t group_end, void *dst) {
    int64_t nb = blocks_of(cols), bb = block_bytes(format);
    float vals[NK_BLOCK];
    uint8_t codes[NK_BLOCK];
    for (int64_t g = group_begin; g < group_end; g++) {
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = (uint8_t *)dst + (g * nb + b) * bb;
            int64_t c0 = b * NK_BLOCK;
            int n = cols - c0 < NK_BLOCK ? (int)(cols - c0) : NK_BLOCK;
            for (int i = 0; i < NK_GROUP_ROWS; i++) {
                int64_t r = g * NK_GROUP_ROWS + i;
                uint16_t d = 0, m = 0;
                if (r < rows) {
                    const unsigned char *row = (const unsigned char *)src + (size_t)r * (size_t)cols * nk_dtype_size(dtype);
                    for (int j = 0; j < n; j++) vals[j] = nk_load_elem(row, dtype, (size_t)(c0 + j));
                    nk_quantize_block(format, vals, n, codes, &d, &m);
                } else {
                    nk_quantize_block(format, vals, 0, codes, &d, &m);
                }
                if (format == NK_FMT_Q8) {
                    put_u16(blk + 2 * i, d);
                    for (int c = 0; c < 8; c++)
                        for (int j = 0; j < 4; j++) blk[32 + 64 * c + 4 * i + j] = codes[4 * c + j];
                } else {
                    put_u16(blk + 2 * i, d);
                    put_u16(blk + 32 + 2 * i, m);
                    for (int c = 0; c < 4; c++)
                        for (int j = 0; j < 4; j++)
                            blk[64 + 64 * c + 4 * i + j] = (uint8_t)(codes[4 * c + j] | (codes[16 + 4 * c + j] << 4));
                }
            }
        }
    }
}

// The code of value k (< 32) of row i of a packed block.
static inline int code_q8(const uint8_t *blk, int i, int k) {
    return (int)blk[32 + 64 * (k / 4) + 4 * i + (k % 4)] - 128;
}
static inline int code_q4(const uint8_t *blk, int i, int k) {
    int kk = k % 16;
    uint8_t byte = blk[64 + 64 * (kk / 4) + 4 * i + (kk % 4)];
    return k < 16 ? (byte & 15) : (byte >> 4);
}

void nk_unpack_row(nk_format format, const void *packed, int64_t rows, int64_t cols, int64_t r,
                   float *out) {
    (void)rows;
    int64_t nb = blocks_of(cols), bb = block_bytes(format), g = r / NK_GROUP_ROWS;
    int i = (int)(r % NK_GROUP_ROWS);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = (const uint8_t *)packed + (g * nb + b) * bb;
        float d = nk_f16_to_f32_scalar(get_u16(blk + 2 * i));
        float m = format == NK_FMT_Q4 ? nk_f16_to_f32_scalar(get_u16(blk + 32 + 2 * i)) : 0.0f;
        for (int k = 0; k < NK_BLOCK && b * NK_BLOCK + k < cols; k++) {
            out[b * NK_BLOCK + k] = format == NK_FMT_Q8 ? d * (float)code_q8(blk, i, k)
                                                        : d * (float)code_q4(blk, i, k) + m;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Activations.

static inline size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t nk_qact_bytes(int64_t rows, int64_t cols) {
    size_t stride = (size_t)nk_pad32(cols), nb = stride / 32, r = (size_t)(rows > 0 ? rows : 1);
    return align64(r * stride) + 3 * align64(r * nb * 4);
}

void nk_qact_init(nk_qact *a, void *memory, int64_t rows, int64_t cols) {
    size_t stride = (size_t)nk_pad32(cols), nb = stride / 32, r = (size_t)(rows > 0 ? rows : 1);
    uint8_t *p = (uint8_t *)memory;
    a->q = (int8_t *)p; p += align64(r * stride);
    a->d = (float *)p; p += align64(r * nb * 4);
    a->ds = (float *)p; p += align64(r * nb * 4);
    a->c8 = (int32_t *)p;
    a->stride = (int64_t)stride;
    a->blocks = (int64_t)nb;
}

// One block of n ≤ 32 activations: d = max|x| / 127, q = round-to-nearest-even(x · (1 / d)).
static void quantize_act_block(const float *x, int n, int8_t *q, float *d_out, float *ds, int32_t *c8) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) { float v = fabsf(x[i]); if (v > amax) amax = v; }
    float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; i++) {
        int v = 0;
        if (i < n) v = (int)round_even(x[i] * id);
        q[i] = (int8_t)v;
        sum += v;
    }
    *d_out = d;
    *ds = d * (float)sum;
    *c8 = -128 * sum;
}

#if NK_X86
// The same arithmetic on full blocks (the same float operations in the same order: identical
// codes and scales).
NK_AVX2 static void quantize_act_block_avx2(const float *x, int8_t *q, float *d_out, float *ds, int32_t *c8) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8), v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                             _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
    __m256 s = _mm256_set1_ps(id);
    __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s));
    __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
    __m256i sum8 = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum8), _mm256_extracti128_si256(sum8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    int sum = _mm_cvtsi128_si32(s4);
    // int32 → int8 in order: packs interleave 128-bit lanes, the permute puts them back.
    __m256i p16a = _mm256_packs_epi32(i0, i1), p16b = _mm256_packs_epi32(i2, i3);
    __m256i p8 = _mm256_packs_epi16(p16a, p16b);
    p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)q, p8);
    *d_out = d;
    *ds = d * (float)sum;
    *c8 = -128 * sum;
}
#endif

void nk_quantize_act(const float *x, int64_t rows, int64_t ldx, int64_t cols, nk_qact *a) {
#if NK_X86
    int simd = nk_level_now() >= NK_LEVEL_AVX2;
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * ldx;
        int8_t *q = a->q + r * a->stride;
        for (int64_t b = 0; b < a->blocks; b++) {
            int64_t c0 = b * 32, k = r * a->blocks + b;
            int n = cols - c0 < 32 ? (int)(cols - c0) : 32;
#if NK_X86
            if (simd && n == 32) { quantize_act_block_avx2(xr + c0, q + c0, &a->d[k], &a->ds[k], &a->c8[k]); continue; }
#endif
            quantize_act_block(xr + c0, n, q + c0, &a->d[k], &a->ds[k], &a->c8[k]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Portable row kernels: integer block dot products, then the float scales.

void nk_rows_q8_portable(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                         float *y, int64_t ldy) {
    const nk_qact *xq = job->xq;
    int64_t nb = blocks_of(job->cols);
    for (int64_t r = r0; r < r1 && r < job->rows; r++) {
        int64_t g = r / NK_GROUP_ROWS;
        int i = (int)(r % NK_GROUP_ROWS);
        for (int64_t t = 0; t < job->ntok; t++) {
            int64_t xr = nk_xrow(job, t);
            const int8_t *xv = xq->q + xr * xq->stride;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = (const uint8_t *)w + (g * nb + b) * NK_Q8_BLOCK_BYTES;
                int32_t isum = 0;
                for (int k = 0; k < 32; k++) isum += code_q8(blk, i, k) * (int32_t)xv[b * 32 + k];
                acc += nk_f16_to_f32_scalar(get_u16(blk + 2 * i)) * xq->d[xr * xq->blocks + b] * (float)isum;
            }
            y[t * ldy + (r - r0)] = acc;
        }
    }
}

void nk_rows_q4_portable(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                         float *y, int64_t ldy) {
    const nk_qact *xq = job->xq;
    int64_t nb = blocks_of(job->cols);
    for (int64_t r = r0; r < r1 && r < job->rows; r++) {
        int64_t g = r / NK_GROUP_ROWS;
        int i = (int)(r % NK_GROUP_ROWS);
        for (int64_t t = 0; t < job->ntok; t++) {
            int64_t xr = nk_xrow(job, t);
            const int8_t *xv = xq->q + xr * xq->stride;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = (const uint8_t *)w + (g * nb + b) * NK_Q4_BLOCK_BYTES;
                int32_t isum = 0;
                for (int k = 0; k < 32; k++) isum += code_q4(blk, i, k) * (int32_t)xv[b * 32 + k];
                float d = nk_f16_to_f32_scalar(get_u16(blk + 2 * i));
                float m = nk_f16_to_f32_scalar(get_u16(blk + 32 + 2 * i));
                acc += d * xq->d[xr * xq->blocks + b] * (float)isum + m * xq->ds[xr * xq->blocks + b];
            }
            y[t * ldy + (r - r0)] = acc;
        }
    }
}
