// Quantised weight formats, packed at load for the row kernels.
//
// Both cut each row into blocks of 32 (the last one zero-padded) and interleave 16 rows
// ("a group"), so that one thread reads a matrix as one sequential stream and one 64-byte load
// holds 4 consecutive values of 16 rows (the lanes of an AVX-512 register). Groups past the last
// row are zero.
//
// Q8 (34 bytes per 32 weights, as llama.cpp's Q8_0): per (group, block), 544 bytes:
//   [0, 32)    16 × IEEE half scale d (row 16g + i)
//   [32, 544)  8 chunks × 16 rows × 4 bytes: byte 32 + 64c + 4i + j = q[row][32b + 4c + j] + 128
//   value = d · q, q in [−127, 127], d = max|w| / 127 (rounded to half), stored unsigned.
// Q4 (20 bytes per 32, as llama.cpp's Q4_1): per (group, block), 320 bytes:
//   [0, 32)    16 × half scale d,  [32, 64)  16 × half minimum m
//   [64, 320)  4 chunks × 16 rows × 4 bytes: byte 64 + 64c + 4i + j holds
//              q[32b + 4c + j] in its low nibble and q[32b + 16 + 4c + j] in its high nibble
//   value = d · q + m, q in [0, 15]; (d, m) chosen per block by a least-squares search.
#ifndef NK_QUANT_H
#define NK_QUANT_H

#include "nk_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NK_GROUP_ROWS 16
#define NK_BLOCK 32
#define NK_Q8_BLOCK_BYTES 544
#define NK_Q4_BLOCK_BYTES 320

/// Bytes of a packed matrix of `format` (Q8 or Q4): groups × blocks × block bytes.
int64_t nk_packed_bytes(nk_format format, int64_t rows, int64_t cols);
/// Bytes of one packed group (16 rows).
int64_t nk_packed_group_bytes(nk_format format, int64_t cols);
/// Packs groups [group_begin, group_end) of a rows × cols matrix stored as `dtype` (row-major,
/// any alignment) into `dst` (the whole packed matrix). Groups are independent: threads may pack
/// disjoint ranges in parallel.
void nk_pack(nk_format format, const void *src, nk_dtype dtype, int64_t rows, int64_t cols,
             int64_t group_begin, int64_t group_end, void *dst);
/// Row r of a packed matrix, dequantised (cols floats).
void nk_unpack_row(nk_format format, const void *packed, int64_t rows, int64_t cols, int64_t r,
                   float *out);
/// Quantises one block of n ≤ 32 values the way nk_pack does: writes the 32 codes (zero past n)
/// and the half-precision scale (and minimum for Q4). For tests of the packing.
void nk_quantize_block(nk_format format, const float *x, int n, uint8_t *codes, uint16_t *d,
                       uint16_t *m);

#ifdef __cplusplus
}
#endif
#endif
