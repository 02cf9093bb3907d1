// BF16 prefill in outer-product form, for the AVX2 path.
//
// The dot-product tiles (nk_rows_float.c) read each token's input once per pair of weight rows:
// at 256 tokens the inputs stream from L2 for every row pair, and that, not the FMA units, bounds
// them. Here the runner packs each job's tokens once, transposed into tiles of 16 tokens
// (xt[tile][k][16], float32, zero past the last token). The kernel takes a panel of rows and
// goes through the columns in blocks of NK_OUTER_KB: the block's inputs of every token (256 KB
// at 256 tokens) stay in L2 for all the panel's rows. Within a block, R rows at a time are
// converted to float32 (each weight once) and, per column, the 16 tokens' inputs are loaded and
// each row's weight broadcast: 2·R FMAs (AVX2) per 2 + R loads. The sums go through a per-thread
// buffer between blocks; each output is one float32 chain over the columns in order (as the AMX
// tiles sum), so the result depends neither on the block sizes nor on the thread count.
// (An AVX-512 twin, 12 rows × 32 tokens, measured no faster than the dot-product tiles there.)
#include "nk_internal.h"

#include <stdlib.h>

int nk_outer_eligible(const nk_matvec *job) {
    return job->format == NK_FMT_BF16 && job->xp && job->ntok >= NK_OUTER_MIN_TOKENS && job->rows > 0;
}

size_t nk_outer_pack_bytes(const nk_matvec *job) {
    int64_t tiles = (job->ntok + NK_OUTER_TOKENS - 1) / NK_OUTER_TOKENS;
    return (size_t)(tiles * job->cols) * NK_OUTER_TOKENS * sizeof(float);
}

#if NK_X86
// Eight rows of eight floats, transposed: out[j] holds column j of the rows.
NK_AVX2 static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Eight tokens' columns [0, cols) into dst[k·16 + n] (n < 8); a NULL row is a token past the end.
NK_AVX2 static void pack8_avx2(const float *const rows[8], int64_t cols, float *dst) {
    int64_t k = 0;
    for (; k + 8 <= cols; k += 8) {
        __m256 r[8];
        for (int n = 0; n < 8; n++) r[n] = rows[n] ? _mm256_loadu_ps(rows[n] + k) : _mm256_setzero_ps();
        transpose8(r);
        for (int j = 0; j < 8; j++) _mm256_store_ps(dst + (k + j) * NK_OUTER_TOKENS, r[j]);
    }
    for (; k < cols; k++)
        for (int n = 0; n < 8; n++) dst[k * NK_OUTER_TOKENS + n] = rows[n] ? rows[n][k] : 0.0f;
}
#endif

void nk_outer_pack(const nk_matvec *job, float *out) {
    const int64_t cols = job->cols, tiles = (job->ntok + NK_OUTER_TOKENS - 1) / NK_OUTER_TOKENS;
    for (int64_t tile = 0; tile < tiles; tile++) {
        float *dst = out + tile * cols * NK_OUTER_TOKENS;
        for (int h = 0; h < NK_OUTER_TOKENS; h += 8) {
            const float *rows[8];
            for (int n = 0; n < 8; n++) {
                int64_t t = tile * NK_OUTER_TOKENS + h + n;
                rows[n] = t < job->ntok ? job->x + nk_xrow(job, t) * job->ldx : NULL;
            }
#if NK_X86
            if (nk_level_now() >= NK_LEVEL_AVX2) { pack8_avx2(rows, cols, dst + h); continue; }
#endif
            for (int64_t k = 0; k < cols; k++)
                for (int n = 0; n < 8; n++) dst[k * NK_OUTER_TOKENS + h + n] = rows[n] ? rows[n][k] : 0.0f;
        }
    }
}

// Per-thread buffers, grown as needed and kept for the thread's life (pool threads live as long
// as the process): the R weight rows of a block as float32, and the panel's partial sums.
static _Thread_local float *outer_rows, *outer_sums;
static _Thread_local size_t outer_rows_size, outer_sums_size;

static float *grow(float **buffer, size_t *size, size_t floats) {
    if (floats > *size) {
        free(*buffer);
        *buffer = aligned_alloc(64, (floats * sizeof(float) + 63) & ~(size_t)63);
        *size = *buffer ? floats : 0;
    }
    return *buffer;
}

// Writes a tile's sums (res[i·16 + n]: row i, token 16·tile + n) into y.
static inline void store_tile(const float *res, int R, int64_t t0, int64_t ntok, float *y, int64_t ldy) {
    for (int n = 0; n < NK_OUTER_TOKENS && t0 + n < ntok; n++)
        for (int i = 0; i < R; i++) y[(t0 + n) * ldy + i] = res[i * NK_OUTER_TOKENS + n];
}

#if NK_X86
// Columns per block (a multiple of 4), and rows per panel.
#define NK_OUTER_KB 256
#define NK_OUTER_PANEL 96

// R weight rows, columns [0, 4·nq), as float32 in quads: wf[q][i][4] holds row i's columns
// 4q..4q+3, so the kernel's broadcasts for 4 columns are at fixed offsets from one pointer.
NK_AVX2 static void convert_rows_avx2(const uint16_t *w, int64_t cols, int64_t nq, int R, float *wf) {
    for (int i = 0; i < R; i++) {
        const uint16_t *src = w + (size_t)i * (size_t)cols;
        float *dst = wf + 4 * i;
        int64_t q = 0;
        for (; q + 2 <= nq; q += 2) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 4 * q)));
            __m256 f = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            _mm_storeu_ps(dst + q * 4 * R, _mm256_castps256_ps128(f));
            _mm_storeu_ps(dst + (q + 1) * 4 * R, _mm256_extractf128_ps(f, 1));
        }
        for (; q < nq; q++)
            for (int c = 0; c < 4; c++) dst[q * 4 * R + c] = nk_bf16_to_f32(src[4 * q + c]);
    }
}

#define NK_OUTER_ROWS_AVX2 6

// R rows (≤ 6) × 16 tokens over nq quads of columns (then `tail` single columns read from the
// rows w themselves): 12 accumulators, 2 input vectors and a broadcast. `sums` (R × 16) holds the
// sums so far (unless `first`) and gets them back.
NK_AVX2 static inline __attribute__((always_inline)) void
outer_tile_avx2(const float *wf, int64_t nq, const uint16_t *w, int64_t cols, int64_t tail, const float *xt,
                float *sums, int first, const int R) {
    __m256 acc[NK_OUTER_ROWS_AVX2][2];
    for (int i = 0; i < R; i++) {
        acc[i][0] = first ? _mm256_setzero_ps() : _mm256_load_ps(sums + i * 16);
        acc[i][1] = first ? _mm256_setzero_ps() : _mm256_load_ps(sums + i * 16 + 8);
    }
    for (int64_t q = 0; q < nq; q++) {
        const float *wq = wf + q * 4 * R, *xq = xt + q * 64;
        for (int c = 0; c < 4; c++) {
            __m256 x0 = _mm256_load_ps(xq + 16 * c), x1 = _mm256_load_ps(xq + 16 * c + 8);
            for (int i = 0; i < R; i++) {
                __m256 wb = _mm256_broadcast_ss(wq + 4 * i + c);
                acc[i][0] = _mm256_fmadd_ps(wb, x0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(wb, x1, acc[i][1]);
            }
        }
    }
    for (int64_t k = 0; k < tail; k++) {
        __m256 x0 = _mm256_load_ps(xt + (nq * 4 + k) * 16), x1 = _mm256_load_ps(xt + (nq * 4 + k) * 16 + 8);
        for (int i = 0; i < R; i++) {
            __m256 wb = _mm256_set1_ps(nk_bf16_to_f32(w[(size_t)i * (size_t)cols + nq * 4 + k]));
            acc[i][0] = _mm256_fmadd_ps(wb, x0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(wb, x1, acc[i][1]);
        }
    }
    for (int i = 0; i < R; i++) {
        _mm256_store_ps(sums + i * 16, acc[i][0]);
        _mm256_store_ps(sums + i * 16 + 8, acc[i][1]);
    }
}

// One block of columns [k0, k0 + nq·4 + tail) for R rows at `wr`, every tile; sums[tile][R][16].
NK_AVX2 static void block_avx2(const nk_matvec *job, const uint16_t *wr, int R, int64_t k0, int64_t nq, int64_t tail,
                               float *wf, float *sums, int first) {
    const int64_t cols = job->cols, tiles = (job->ntok + 15) / 16;
    convert_rows_avx2(wr + k0, cols, nq, R, wf);
    for (int64_t tile = 0; tile < tiles; tile++) {
        const float *xt = job->xt + (tile * cols + k0) * 16;
        float *s = sums + tile * R * 16;
        switch (R) {
        case 6: outer_tile_avx2(wf, nq, wr + k0, cols, tail, xt, s, first, 6); break;
        case 5: outer_tile_avx2(wf, nq, wr + k0, cols, tail, xt, s, first, 5); break;
        case 4: outer_tile_avx2(wf, nq, wr + k0, cols, tail, xt, s, first, 4); break;
        case 3: outer_tile_avx2(wf, nq, wr + k0, cols, tail, xt, s, first, 3); break;
        case 2: outer_tile_avx2(wf, nq, wr + k0, cols, tail, xt, s, first, 2); break;
        default: outer_tile_avx2(wf, nq, wr + k0, cols, tail, xt, s, first, 1); break;
        }
    }
}

typedef void (*outer_block_fn)(const nk_matvec *, const uint16_t *, int, int64_t, int64_t, int64_t, float *, float *, int);

// Rows [r0, r1) in panels; each panel through the column blocks, RB rows at a time.
static void outer_panels(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy,
                       const int RB, outer_block_fn block) {
    const int64_t cols = job->cols, tiles = (job->ntok + 15) / 16, quads = cols / 4;
    const uint16_t *w16 = (const uint16_t *)w;
    float *wf = grow(&outer_rows, &outer_rows_size, (size_t)RB * NK_OUTER_KB);
    float *sums = grow(&outer_sums, &outer_sums_size, (size_t)NK_OUTER_PANEL * (size_t)tiles * 16);
    if (!wf || !sums) { nk_rows_float_portable(job, w, r0, r1, y, ldy); return; }
    for (int64_t p = r0; p < r1; p += NK_OUTER_PANEL) {
        int64_t p1 = r1 - p < NK_OUTER_PANEL ? r1 : p + NK_OUTER_PANEL;
        for (int64_t q0 = 0; q0 < quads || (q0 == 0 && cols > 0); q0 += NK_OUTER_KB / 4) {
            int64_t nq = quads - q0 < NK_OUTER_KB / 4 ? quads - q0 : NK_OUTER_KB / 4;
            int last = q0 + nq >= quads;
            for (int64_t r = p; r < p1; r += RB) {
                int R = p1 - r < RB ? (int)(p1 - r) : RB;
                block(job, w16 + (size_t)r * (size_t)cols, R, q0 * 4, nq, last ? cols - quads * 4 : 0,
                      wf, sums + (r - p) * tiles * 16, q0 == 0);
            }
            if (last) break;
        }
        for (int64_t r = p; r < p1; r += RB) {
            int R = p1 - r < RB ? (int)(p1 - r) : RB;
            for (int64_t tile = 0; tile < tiles; tile++)
                store_tile(sums + (r - p) * tiles * 16 + tile * R * 16, R, tile * 16, job->ntok, y + (r - r0), ldy);
        }
    }
}

void nk_rows_bf16_outer_avx2(const nk_matvec *job, const void *w, int64_t r0, int64_t r1, float *y, int64_t ldy) {
    outer_panels(job, w, r0, r1, y, ldy, NK_OUTER_ROWS_AVX2, block_avx2);
}

#endif
