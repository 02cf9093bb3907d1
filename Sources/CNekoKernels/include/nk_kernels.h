// The hot loops of nekochat: plain C over raw buffers, SIMD where it pays.
// Each kernel has a portable version and, chosen once at run time from what the CPU supports,
// AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL, DQ, VNNI) versions. Tests compare every level with
// the portable one and with naive loops (nk_force_simd_level).
//
// Weight buffers may sit at any address inside a memory-mapped safetensors file, so every load
// of a stored (unpacked) weight is an unaligned load; the tail of a row is never over-read.
#ifndef NK_KERNELS_H
#define NK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Storage types of weights as the files hold them.
typedef enum { NK_F32 = 0, NK_BF16 = 1, NK_F16 = 2 } nk_dtype;

/// Matrix formats the row kernels read: the three stored dtypes (row-major), and the two
/// quantised formats packed at load (see nk_quant.h).
typedef enum { NK_FMT_F32 = 0, NK_FMT_BF16 = 1, NK_FMT_F16 = 2, NK_FMT_Q8 = 3, NK_FMT_Q4 = 4 } nk_format;

/// Which implementation the dispatcher picked: 0 portable, 1 AVX2+FMA+F16C,
/// 2 AVX-512 F/BW/VL/DQ with VNNI, 3 that and AMX-BF16 tiles (BF16 prefill).
int nk_simd_level(void);
/// The best level this CPU supports.
int nk_simd_detect(void);
/// Uses `level` from now on, for the whole process, capped at what the CPU supports.
void nk_force_simd_level(int level);
/// Uses `level` (capped at what the CPU supports) on the calling thread, and in every pool task
/// this thread starts, until `nk_thread_simd_level(-1)`; the process-wide level elsewhere. Tests
/// pin a level this way without touching what other tests running beside them use.
void nk_thread_simd_level(int level);
/// The level the kernels use on the calling thread now.
int nk_current_simd_level(void);
/// "portable", "avx2", "avx512-vnni", "avx512-amx".
const char *nk_simd_name(int level);

/// dst[i] = float(src[i]) for i < n; src holds elements of `dtype`.
void nk_to_f32(const void *src, nk_dtype dtype, size_t n, float *dst);
/// float32 → IEEE half, round to nearest even (for tests and packed scales).
uint16_t nk_f32_to_f16(float f);
/// dst[i] = half(src[i]), round to nearest even.
void nk_f32_to_f16_array(const float *src, size_t n, uint16_t *dst);
/// IEEE half → float32.
float nk_f16_to_f32(uint16_t h);


/// Σ a[i]·b[i].
float nk_dot(const float *a, const float *b, size_t n);
/// y[i] += alpha · x[i].
void nk_axpy(float *y, float alpha, const float *x, size_t n);
/// x[i] *= alpha.
void nk_scale(float *x, float alpha, size_t n);

/// out[i] = w[i] · x[i] / sqrt(mean(x²) + eps). `out` may alias `x`.
void nk_rmsnorm(const float *x, const float *w, size_t n, float eps, float *out);
/// In-place softmax over n values (max-subtracted, float32).
void nk_softmax(float *x, size_t n);
/// log Σ exp(x[i]) (max subtracted first; the sum in float). n ≥ 1.
double nk_logsumexp(const float *x, size_t n);
/// g[i] = silu(g[i]) · u[i].
void nk_silu_mul(float *g, const float *u, size_t n);
/// Rotate-half RoPE on one head of `head_dim` values, pairs (i, i + head_dim/2).
void nk_rope(float *x, const float *cos, const float *sin, size_t head_dim);
/// Positions a block of decode attention covers (its scratch: group × this many floats).
#define NK_ATTEND_BLOCK 64
/// One decode step of attention for `group` query heads q (group, head_dim) sharing a KV head:
/// out (group, head_dim) = softmax(q·kᵀ · scale) · v over the n cached rows k, v (n, head_dim)
/// of `kv` (float32, IEEE half or bfloat16), through `scores` (group × NK_ATTEND_BLOCK floats of
/// scratch). Each key and value row is read once.
void nk_attend_decode(const float *q, int group, int head_dim, const void *k, const void *v, nk_dtype kv,
                      int64_t n, float scale, float *scores, float *out);
/// One step of an online softmax over a row: s[0..<n] (scores) become e^(s − m') where m' is the
/// larger of *m and their maximum; *l (the running denominator) becomes *l · e^(*m − m') + Σ, *m
/// becomes m'. Returns e^(*m − m'), the factor for what was summed before (0 when *m was −∞).
float nk_softmax_fold(float *s, int64_t n, float *m, float *l);
/// out[i] = bfloat16(src[i]), round to nearest even (NaN stays NaN).
void nk_f32_to_bf16_array(const float *src, size_t n, uint16_t *dst);

// ---------------------------------------------------------------------------------------------
// Inputs prepared once per layer input and shared by every matrix that reads it.

/// Activations quantised to int8 in blocks of 32 with a float scale (rows × pad32(cols)),
/// plus per-block sums for the formats that need them. Values past `cols` are zero.
typedef struct {
    int8_t *q;       // (rows, stride)
    float *d;        // (rows, blocks): the scale of each block
    float *ds;       // (rows, blocks): d · Σq (what a q4 block's minimum multiplies)
    int32_t *c8;     // (rows, blocks): −128 · Σq (the offset of q8's unsigned weights)
    int64_t stride;  // pad32(cols) bytes per row of q
    int64_t blocks;  // stride / 32
} nk_qact;

/// Bytes of memory an nk_qact of rows × cols needs (64-byte aligned parts).
size_t nk_qact_bytes(int64_t rows, int64_t cols);
/// Lays out `a` inside `memory` (at least nk_qact_bytes, 64-byte aligned).
void nk_qact_init(nk_qact *a, void *memory, int64_t rows, int64_t cols);
/// Quantises rows of x (rows × cols, leading dimension ldx) into `a` (initialised for ≥ rows, cols):
/// per block d = max|x| / 127, q = round-to-nearest-even(x / d).
void nk_quantize_act(const float *x, int64_t rows, int64_t ldx, int64_t cols, nk_qact *a);

/// Floats per row of a BF16-prepared input: pad32(cols).
int64_t nk_prep_stride(int64_t cols);
/// BF16 kernels read their input with the even and odd elements of each block of 32 apart
/// (16 even, then 16 odd; zero past cols): a BF16 pair then widens with one shift and one mask.
void nk_prep_bf16(const float *x, int64_t rows, int64_t ldx, int64_t cols, float *xp);

// ---------------------------------------------------------------------------------------------
// Matrix-vector jobs and the thread pool.

/// One matrix times a few input rows (or a GLU pair): the unit of work nk_run_matvecs splits.
typedef struct nk_matvec {
    const void *w;          // rows × cols: row-major in `format` (F32/BF16/F16), or packed (Q8/Q4)
    const void *w_up;       // when set: a GLU job, y = silu(w·x) · (w_up·x); same format and shape
    int32_t format;         // nk_format
    int32_t ntok;           // input rows read
    int64_t rows, cols;
    const float *x;         // float input (F32/F16, and BF16 when xp is NULL): (input rows, ldx)
    int64_t ldx;
    const float *xp;        // BF16 input prepared by nk_prep_bf16 (stride nk_prep_stride(cols)), or NULL
    const nk_qact *xq;      // Q8/Q4 input
    const int32_t *xrows;   // NULL: token t reads input row t; else input row xrows[t]
    float *y;               // output (ntok, ldy): y[t * ldy + r]
    int64_t ldy;
    const uint16_t *xb;     // the runner's own (AMX-packed input); callers leave it NULL
    const float *xt;        // the runner's own (input transposed for the FMA prefill); callers leave it NULL
} nk_matvec;

typedef struct nk_pool nk_pool;
/// A pool of `threads` workers counting the caller: threads − 1 OS threads that spin briefly
/// after each task, then sleep.
nk_pool *nk_pool_create(int threads);
void nk_pool_destroy(nk_pool *pool);
int nk_pool_threads(const nk_pool *pool);
typedef void (*nk_task_fn)(void *context, int thread, int threads);
/// Runs fn(context, i, threads) on every thread i (the caller is thread 0); returns when all are done.
void nk_pool_run(nk_pool *pool, nk_task_fn fn, void *context);
typedef void (*nk_range_fn)(void *context, int thread, int64_t begin, int64_t end);
/// Calls fn(context, thread, begin, end) on `pieces` disjoint ranges covering [0, count), taken in
/// order by whichever threads are free (a thread that lost its core does not hold the others up).
/// `thread` < nk_pool_threads(pool) identifies the thread running the range (for scratch memory).
void nk_pool_for(nk_pool *pool, int64_t count, int64_t pieces, nk_range_fn fn, void *context);
/// Runs all jobs: the rows of every job are cut into chunks (weighted by their cost) that the
/// pool's threads take in order. One fork/join for the whole list.
void nk_run_matvecs(nk_pool *pool, const nk_matvec *jobs, int64_t njobs);
/// The same on the calling thread alone (tests, tiny models).
void nk_run_matvecs_serial(const nk_matvec *jobs, int64_t njobs);

/// Best read bandwidth (bytes/s) of all pool threads reading `bytes` of fresh memory, over `passes`.
double nk_measure_read_bandwidth(nk_pool *pool, size_t bytes, int passes);
/// The same, each pass's rate into rates[0 ..< passes].
void nk_measure_read_bandwidth_passes(nk_pool *pool, size_t bytes, int passes, double *rates);
/// Each pass's read bandwidth over existing memory (e.g. a model's weights), after one untimed
/// pass that faults it in.
void nk_measure_read_bandwidth_of(nk_pool *pool, const void *memory, size_t bytes, int passes, double *rates);
/// Float32 FMA throughput of all pool threads (FLOP/s, an FMA = 2), at the current SIMD level.
double nk_measure_fma_peak(nk_pool *pool, double seconds);

#ifdef __cplusplus
}
#endif
#endif
