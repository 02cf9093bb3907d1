// BF16 prefill on Intel AMX (TDPBF16PS): 16 weight rows × 16 tokens × 32 columns per instruction.
//
// The weights are tile A as they lie (row-major BF16, one 64-byte row of a tile per weight row,
// stride cols·2): nothing is repacked. The tokens are tile B, packed once per input by
// nk_amx_pack in the layout the instruction reads (pairs of columns, tokens across), and split
// x = hi + mid + lo, each BF16 (hi = bf16(x), mid = bf16(x − hi), lo = bf16(x − hi − mid)):
// three products per weight keep 24 bits of each activation (x to 2^-27 of itself), as much as
// float32 holds, so a sum is exact to float32 rounding like the FMA kernels' — two parts would
// leave 2^-18 · Σ|w·x|, which moved routing statistics by 2e-6 where the tests allow 1e-6, and
// one part 2^-9. Products are exact in float32 and summed there (denormals flushed).
#include "nk_internal.h"

#if NK_X86
#include <cpuid.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

// BF16 parts each activation is split into (see above).
#define NK_AMX_PARTS 3

#define NK_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// Linux hands out the 8 KB of tile state only to a process that asks for it.
#define NK_ARCH_REQ_XCOMP_PERM 0x1023
#define NK_XFEATURE_XTILEDATA 18

int nk_amx_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return 0;   // AMX-BF16, AMX-TILE
    return syscall(SYS_arch_prctl, NK_ARCH_REQ_XCOMP_PERM, NK_XFEATURE_XTILEDATA) == 0;
}

int nk_amx_eligible(const nk_matvec *job) {
    return job->format == NK_FMT_BF16 && job->xp && job->ntok >= NK_AMX_MIN_TOKENS &&
           job->cols % 32 == 0 && job->rows >= 16;
}

size_t nk_amx_pack_bytes(const nk_matvec *job) {
    int64_t blocks = (job->ntok + 15) / 16, kb = job->cols / 32;
    return (size_t)(blocks * kb) * NK_AMX_PARTS * 1024;
}

// 16 floats rounded to BF16 (nearest even), in the high halves of their 32-bit lanes.
NK_AMX static inline __m512i bf16_high(__m512 v) {
    __m512i u = _mm512_castps_si512(v);
    __m512i bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff),
                                    _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1)));
    return _mm512_and_si512(_mm512_add_epi32(u, bias), _mm512_set1_epi32((int)0xffff0000u));
}

// Layout: [token block of 16][column block of 32][hi, mid, lo][16 column pairs][16 tokens][2].
// The prepared input keeps each block of 32 as 16 even then 16 odd columns (nk_prep_bf16):
// lane i of the two halves is exactly pair i. Tokens past ntok are zero.
NK_AMX void nk_amx_pack(const nk_matvec *job, uint16_t *out) {
    const int64_t cols = job->cols, nkb = cols / 32, blocks = (job->ntok + 15) / 16;
    uint32_t m[NK_AMX_PARTS][16][16] __attribute__((aligned(64)));
    const __m512i across = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(16));
    for (int64_t tb = 0; tb < blocks; tb++) {
        const float *rows[16];
        for (int n = 0; n < 16; n++) {
            int64_t t = tb * 16 + n;
            rows[n] = t < job->ntok ? job->xp + nk_xrow(job, t) * cols : NULL;
        }
        for (int64_t kb = 0; kb < nkb; kb++) {
            for (int n = 0; n < 16; n++) {
                if (!rows[n]) {
                    for (int p = 0; p < NK_AMX_PARTS; p++) _mm512_store_si512(m[p][n], _mm512_setzero_si512());
                    continue;
                }
                __m512 even = _mm512_loadu_ps(rows[n] + kb * 32), odd = _mm512_loadu_ps(rows[n] + kb * 32 + 16);
                // Each part is what the parts before it left, rounded to BF16; the differences
                // are exact in float32.
                for (int p = 0; p < NK_AMX_PARTS; p++) {
                    __m512i he = bf16_high(even), ho = bf16_high(odd);
                    _mm512_store_si512(m[p][n], _mm512_or_si512(_mm512_srli_epi32(he, 16), ho));
                    even = _mm512_sub_ps(even, _mm512_castsi512_ps(he));
                    odd = _mm512_sub_ps(odd, _mm512_castsi512_ps(ho));
                }
            }
            uint16_t *dst = out + ((tb * nkb + kb) * NK_AMX_PARTS) * 512;
            for (int p = 0; p < NK_AMX_PARTS; p++)
                for (int i = 0; i < 16; i++)
                    _mm512_storeu_si512(dst + p * 512 + i * 32,
                                        _mm512_i32gather_epi32(_mm512_add_epi32(across, _mm512_set1_epi32(i)),
                                                               m[p], 4));
        }
    }
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} nk_tile_config;

// Column blocks of 32 per pass over a token pair's tiles: the pair's 96 KB of packed input stays
// in L2 while the rows go by (measured with two parts, 64 KB: 16 beat 4, 8 and the whole row).
#define NK_AMX_KC 16

// One thread's accumulators for a chunk: [16-row block][2 token blocks][16 rows][16 tokens].
static _Thread_local float *acc_buffer;
static _Thread_local size_t acc_capacity;

static float *acc_for(size_t floats) {
    if (floats > acc_capacity) {
        free(acc_buffer);
        acc_buffer = aligned_alloc(64, floats * sizeof(float));
        acc_capacity = acc_buffer ? floats : 0;
    }
    return acc_buffer;
}

// Rows [r0, r0 + 16·nrb) against token blocks tb (and tb + 1 when two) into acc.
NK_AMX static void amx_pair(const uint16_t *w, int64_t cols, const uint16_t *b0, const uint16_t *b1,
                            int64_t nrb, float *acc) {
    const int64_t nkb = cols / 32, ld = cols * 2;
    for (int64_t kc = 0; kc < nkb; kc += NK_AMX_KC) {
        int64_t ke = kc + NK_AMX_KC < nkb ? kc + NK_AMX_KC : nkb;
        for (int64_t rb = 0; rb < nrb; rb += 2) {
            int two = rb + 1 < nrb;
            float *c00 = acc + rb * 512, *c01 = c00 + 256, *c10 = c00 + 512, *c11 = c00 + 768;
            if (kc == 0) {
                _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            } else {
                _tile_loadd(0, c00, 64); _tile_loadd(1, c01, 64);
                if (two) { _tile_loadd(2, c10, 64); _tile_loadd(3, c11, 64); }
            }
            const uint16_t *wr = w + rb * 16 * cols;
            // The next pair of row blocks' weights, a pass of this one ahead: 32 rows read side
            // by side are more streams than the hardware prefetcher follows, and a tile load
            // that misses stalls the tile unit (it was a third of this kernel's time).
            const int prefetch = rb + 2 < nrb ? (rb + 3 < nrb ? 32 : 16) : 0;
            const uint16_t *next = wr + 32 * cols;
            for (int64_t kb = kc; kb < ke; kb++) {
                for (int i = 0; i < prefetch; i++) _mm_prefetch((const char *)(next + i * cols + kb * 32), _MM_HINT_T1);
                _tile_loadd(4, wr + kb * 32, ld);
                if (two) _tile_loadd(5, wr + 16 * cols + kb * 32, ld);
                for (int p = 0; p < NK_AMX_PARTS; p++) {
                    _tile_loadd(6, b0 + (kb * NK_AMX_PARTS + p) * 512, 64);
                    if (b1) _tile_loadd(7, b1 + (kb * NK_AMX_PARTS + p) * 512, 64);
                    _tile_dpbf16ps(0, 4, 6);
                    if (b1) _tile_dpbf16ps(1, 4, 7);
                    if (two) {
                        _tile_dpbf16ps(2, 5, 6);
                        if (b1) _tile_dpbf16ps(3, 5, 7);
                    }
                }
            }
            _tile_stored(0, c00, 64); _tile_stored(1, c01, 64);
            if (two) { _tile_stored(2, c10, 64); _tile_stored(3, c11, 64); }
        }
    }
}

NK_AMX static void rows_bf16_amx(const nk_matvec *job, const uint16_t *w, int64_t r0, int64_t r1,
                                 float *y, int64_t ldy) {
    const int64_t cols = job->cols, nkb = cols / 32, blocks = (job->ntok + 15) / 16;
    const int64_t nrb = (r1 - r0) / 16;
    float *acc = acc_for((size_t)(nrb + 1) * 512);
    if (!acc) { nk_rows_float_avx512(job, w, r0, r1, y, ldy); return; }
    nk_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) { cfg.rows[i] = 16; cfg.colsb[i] = 64; }
    _tile_loadconfig(&cfg);
    for (int64_t tb = 0; tb < blocks; tb += 2) {
        const uint16_t *b0 = job->xb + tb * nkb * NK_AMX_PARTS * 512;
        const uint16_t *b1 = tb + 1 < blocks ? b0 + nkb * NK_AMX_PARTS * 512 : NULL;
        amx_pair(w + r0 * cols, cols, b0, b1, nrb, acc);
        for (int64_t rb = 0; rb < nrb; rb++)
            for (int q = 0; q < (b1 ? 2 : 1); q++) {
                const float *c = acc + rb * 512 + q * 256;
                for (int n = 0; n < 16; n++) {
                    int64_t t = (tb + q) * 16 + n;
                    if (t >= job->ntok) break;
                    float *yt = y + t * ldy + rb * 16;
                    for (int m = 0; m < 16; m++) yt[m] = c[m * 16 + n];
                }
            }
    }
    _tile_release();
    // Rows past the last whole block of 16 (a job's end) go to the AVX-512 kernel.
    int64_t done = r0 + nrb * 16;
    if (done < r1) nk_rows_float_avx512(job, w, done, r1, y + (done - r0), ldy);
}

void nk_rows_float_amx(const nk_matvec *job, const void *w, int64_t r0, int64_t r1,
                       float *y, int64_t ldy) {
    if (job->xb && r1 - r0 >= 16) rows_bf16_amx(job, (const uint16_t *)w, r0, r1, y, ldy);
    else nk_rows_float_avx512(job, w, r0, r1, y, ldy);
}
#endif
