// The hot loops of nekochat: plain C over raw buffers, SIMD where it pays.
// Each function has a portable version and, where the CPU supports AVX2+FMA+F16C,
// an intrinsics version chosen once at run time. Tests compare both with naive loops.
//
// Weight buffers may sit at any address inside a memory-mapped safetensors file,
// so every weight load here is an unaligned load.
#ifndef NK_KERNELS_H
#define NK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Storage types of weights.
typedef enum { NK_F32 = 0, NK_BF16 = 1, NK_F16 = 2 } nk_dtype;

/// Which implementation the dispatcher picked: 0 portable, 1 AVX2+FMA+F16C.
int nk_simd_level(void);
/// Forces the portable (0) or the best (1) implementation; for tests of both paths.
void nk_force_simd_level(int level);

/// dst[i] = float(src[i]) for i < n; src holds elements of `dtype`.
void nk_to_f32(const void *src, nk_dtype dtype, size_t n, float *dst);

/// Small-batch matrix product against a weight matrix W (rows × cols, row-major, `dtype`):
/// y[t * ldy + r] = Σ_c W[r, c] · x[t * ldx + c]   for t < ntok, row_begin ≤ r < row_end.
/// Each weight row is read once per group of up to 4 tokens (decode and short prompts).
void nk_matmul_rows(const void *w, nk_dtype dtype, size_t cols,
                    size_t row_begin, size_t row_end,
                    const float *x, size_t ntok, size_t ldx,
                    float *y, size_t ldy);

/// Σ a[i]·b[i].
float nk_dot(const float *a, const float *b, size_t n);
/// y[i] += alpha · x[i].
void nk_axpy(float *y, float alpha, const float *x, size_t n);

/// out[i] = w[i] · x[i] / sqrt(mean(x²) + eps). `out` may alias `x`.
void nk_rmsnorm(const float *x, const float *w, size_t n, float eps, float *out);
/// In-place softmax over n values (max-subtracted, float32).
void nk_softmax(float *x, size_t n);
/// g[i] = silu(g[i]) · u[i].
void nk_silu_mul(float *g, const float *u, size_t n);
/// Rotate-half RoPE on one head of `head_dim` values, pairs (i, i + head_dim/2).
void nk_rope(float *x, const float *cos, const float *sin, size_t head_dim);

#ifdef __cplusplus
}
#endif
#endif
