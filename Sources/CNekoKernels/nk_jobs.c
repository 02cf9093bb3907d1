// The matrix-vector job runner: one fork/join per list of jobs (a phase of a layer).
#include "nk_internal.h"
#include "nk_pool_internal.h"
#include "nk_quant.h"

#include <stdlib.h>
#include <time.h>

/// The row kernel of each matrix format (columns: F32, BF16, F16, Q8, Q4) at each SIMD level
/// (rows: portable, AVX2, AVX-512, AMX). The token thresholds inside each kernel are in
/// nk_internal.h ("Kernel choice").
static const nk_rows_fn nk_kernel_table[4][5] = {
    {nk_rows_float_portable, nk_rows_float_portable, nk_rows_float_portable, nk_rows_q8_portable, nk_rows_q4_portable},
#if NK_X86
    {nk_rows_float_avx2, nk_rows_float_avx2, nk_rows_float_avx2, nk_rows_q8_avx2, nk_rows_q4_avx2},
    {nk_rows_float_avx512, nk_rows_float_avx512, nk_rows_float_avx512, nk_rows_q8_avx512, nk_rows_q4_avx512},
    {nk_rows_float_avx512, nk_rows_float_amx, nk_rows_float_avx512, nk_rows_q8_avx512, nk_rows_q4_avx512},
#endif
};

static nk_rows_fn pick_kernel(int format, int level) {
#if NK_X86
    int row = level < 0 ? 0 : level > NK_LEVEL_AMX ? NK_LEVEL_AMX : level;
#else
    (void)level;
    int row = 0;
#endif
    return nk_kernel_table[row][format >= 0 && format <= NK_FMT_Q4 ? format : NK_FMT_F32];
}

static double bytes_per_weight(int format) {
    switch (format) {
    case NK_FMT_F32: return 4.0;
    case NK_FMT_Q8: return 34.0 / 32.0;
    case NK_FMT_Q4: return 20.0 / 32.0;
    default: return 2.0;
    }
}

/// Relative cost of one row: its bytes (memory-bound decode) plus its multiply-adds (prefill);
/// one byte read costs about as long as two multiply-adds on these machines.
static double row_cost(const nk_matvec *job) {
    double per = (double)job->cols * (bytes_per_weight(job->format) + 0.5 * (double)job->ntok);
    return job->w_up ? 2.0 * per : per;
}

// Rows [r0, r1) of one job into y (ldy), through `scratch` for GLU pairs.
static void run_chunk(const nk_matvec *job, int64_t r0, int64_t r1, nk_rows_fn kernel,
                      float *scratch) {
    float *y = job->y + r0;
    if (!job->w_up) {
        kernel(job, job->w, r0, r1, y, job->ldy);
        return;
    }
    int64_t n = r1 - r0;
    float *g = scratch, *u = scratch + n * job->ntok;   // (ntok, n) each
    kernel(job, job->w, r0, r1, g, n);
    kernel(job, job->w_up, r0, r1, u, n);
    for (int64_t t = 0; t < job->ntok; t++) {
        nk_silu_mul(g + t * n, u + t * n, (size_t)n);
        memcpy(y + t * job->ldy, g + t * n, (size_t)n * sizeof(float));
    }
}

static size_t scratch_floats(const nk_matvec *job, int64_t r0, int64_t r1) {
    return job->w_up ? (size_t)(2 * (r1 - r0) * job->ntok) : 0;
}

static int same_input(const nk_matvec *a, const nk_matvec *b) {
    return a->xp == b->xp && a->xrows == b->xrows && a->ntok == b->ntok && a->cols == b->cols;
}

// How a job's input is packed for its kernel: AMX tiles (level 3), the AVX2 path's transposed
// tiles (level 1), or not at all.
enum { PACK_NONE, PACK_AMX, PACK_OUTER };

static int pack_kind(const nk_matvec *job, int level) {
#if NK_X86
    if (level >= NK_LEVEL_AMX && nk_amx_eligible(job)) return PACK_AMX;
    if (level == NK_LEVEL_AVX2 && nk_outer_eligible(job)) return PACK_OUTER;
#else
    (void)job; (void)level;
#endif
    return PACK_NONE;
}

static size_t pack_bytes(const nk_matvec *job, int kind) {
#if NK_X86
    if (kind == PACK_AMX) return (nk_amx_pack_bytes(job) + 63) & ~(size_t)63;
#endif
    if (kind == PACK_OUTER) return (nk_outer_pack_bytes(job) + 63) & ~(size_t)63;
    return 0;
}

static const void *packed_input(const nk_matvec *job) { return job->xb ? (const void *)job->xb : (const void *)job->xt; }

// The input of every job that packs it (pack_kind), packed once — jobs that read the same rows
// of the same input share one — into *pack; returns a copy of the jobs with `xb` or `xt` set (in
// *copy), or `jobs` itself when there is nothing to pack or no memory for it.
static const nk_matvec *prepare_inputs(const nk_matvec *jobs, int64_t njobs, int level,
                                       nk_matvec **copy, int64_t *copy_capacity,
                                       void **pack, size_t *pack_size) {
    if (level < NK_LEVEL_AVX2) return jobs;
    size_t total = 0;
    for (int64_t j = 0; j < njobs; j++) {
        int kind = pack_kind(&jobs[j], level);
        if (kind == PACK_NONE) continue;
        int64_t i = 0;
        while (i < j && !(pack_kind(&jobs[i], level) == kind && same_input(&jobs[i], &jobs[j]))) i++;
        if (i == j) total += pack_bytes(&jobs[j], kind);
    }
    if (total == 0) return jobs;
    if (njobs > *copy_capacity) {
        free(*copy);
        *copy = malloc((size_t)njobs * sizeof(nk_matvec));
        *copy_capacity = *copy ? njobs : 0;
    }
    if (total > *pack_size) {
        free(*pack);
        *pack = aligned_alloc(64, total);
        *pack_size = *pack ? total : 0;
    }
    if (!*copy || !*pack) return jobs;
    nk_matvec *out = *copy;
    size_t offset = 0;
    for (int64_t j = 0; j < njobs; j++) {
        out[j] = jobs[j];
        out[j].xb = NULL;
        out[j].xt = NULL;
        int kind = pack_kind(&jobs[j], level);
        if (kind == PACK_NONE) continue;
        for (int64_t i = 0; i < j; i++)
            if (packed_input(&out[i]) && pack_kind(&jobs[i], level) == kind && same_input(&out[i], &jobs[j])) {
                out[j].xb = out[i].xb;
                out[j].xt = out[i].xt;
                break;
            }
        if (packed_input(&out[j])) continue;
        void *at = (char *)*pack + offset;
#if NK_X86
        if (kind == PACK_AMX) { nk_amx_pack(&jobs[j], at); out[j].xb = at; }
#endif
        if (kind == PACK_OUTER) { nk_outer_pack(&jobs[j], at); out[j].xt = at; }
        offset += pack_bytes(&jobs[j], kind);
    }
    return out;
}

void nk_run_matvecs_serial(const nk_matvec *given, int64_t njobs) {
    int level = nk_level_now();
    float *scratch = NULL;
    size_t have = 0;
    nk_matvec *copy = NULL;
    int64_t copy_capacity = 0;
    void *pack = NULL;
    size_t pack_size = 0;
    const nk_matvec *jobs = prepare_inputs(given, njobs, level, &copy, &copy_capacity, &pack, &pack_size);
    for (int64_t j = 0; j < njobs; j++) {
        if (jobs[j].rows <= 0 || jobs[j].ntok <= 0) continue;
        size_t need = scratch_floats(&jobs[j], 0, jobs[j].rows);
        if (need > have) { free(scratch); scratch = malloc(need * sizeof(float)); have = need; }
        run_chunk(&jobs[j], 0, jobs[j].rows, pick_kernel(jobs[j].format, level), scratch);
    }
    free(scratch);
    free(copy);
    free(pack);
}

typedef struct {
    nk_pool *pool;
    const nk_matvec *jobs;
    const nk_chunk *chunks;
    int64_t nchunks;
    int level;
    _Atomic int64_t next;
} run_state;

static void run_task(void *context, int thread, int threads) {
    (void)threads;
    run_state *s = context;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
        if (i >= s->nchunks) break;
        const nk_chunk *c = &s->chunks[i];
        const nk_matvec *job = &s->jobs[c->job];
        size_t need = scratch_floats(job, c->r0, c->r1);
        float *scratch = need ? nk_pool_scratch(s->pool, thread, need * sizeof(float)) : NULL;
        run_chunk(job, c->r0, c->r1, pick_kernel(job->format, s->level), scratch);
    }
}

void nk_run_matvecs(nk_pool *pool, const nk_matvec *given, int64_t njobs) {
    if (!pool || pool->threads == 1) { nk_run_matvecs_serial(given, njobs); return; }
    int level = nk_level_now();
    const nk_matvec *jobs = prepare_inputs(given, njobs, level, &pool->prep_jobs, &pool->prep_jobs_capacity,
                                        &pool->prep_pack, &pool->prep_pack_size);
    double total = 0;
    for (int64_t j = 0; j < njobs; j++)
        if (jobs[j].rows > 0 && jobs[j].ntok > 0) total += row_cost(&jobs[j]) * (double)jobs[j].rows;
    if (total <= 0) return;
    // Guided chunks: each takes a 1/(2·threads) share of the work still left (no less than
    // 32 KB-equivalent), so the first are long streams and the last ones short: the threads
    // finish within a few microseconds of each other.
    const double minimum = 32768.0;
    int64_t count = 0;
    for (int pass = 0; pass < 2; pass++) {
        count = 0;
        double left = total;
        for (int64_t j = 0; j < njobs; j++) {
            const nk_matvec *job = &jobs[j];
            if (job->rows <= 0 || job->ntok <= 0) continue;
            double per_row = row_cost(job);
            int64_t r = 0;
            while (r < job->rows) {
                double want = left / (2.0 * pool->threads);
                if (want < minimum) want = minimum;
                int64_t rows = (int64_t)(want / per_row);
                rows = (rows + NK_GROUP_ROWS - 1) / NK_GROUP_ROWS * NK_GROUP_ROWS;
                if (rows < NK_GROUP_ROWS) rows = NK_GROUP_ROWS;
                int64_t r1 = r + rows < job->rows ? r + rows : job->rows;
                // Do not leave a sliver of a job behind.
                if (job->rows - r1 < NK_GROUP_ROWS) r1 = job->rows;
                if (pass == 1) {
                    nk_chunk *c = &pool->chunks[count];
                    c->job = (int32_t)j;
                    c->r0 = r;
                    c->r1 = r1;
                }
                left -= per_row * (double)(r1 - r);
                r = r1;
                count++;
            }
        }
        if (pass == 0 && count > pool->chunk_capacity) {
            free(pool->chunks);
            pool->chunk_capacity = count * 2;
            pool->chunks = malloc((size_t)pool->chunk_capacity * sizeof(nk_chunk));
        }
    }
    run_state s = {.pool = pool, .jobs = jobs, .chunks = pool->chunks, .nchunks = count,
                   .level = level};
    atomic_store(&s.next, 0);
    nk_pool_run_shared(pool, run_task, &s);
}

// ---------------------------------------------------------------------------------------------
// Measurements for `nekochat bench`.

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    const unsigned char *buf;
    size_t bytes;
    int touch;
    uint64_t sink[64];
} read_state;

#if NK_X86
NK_AVX2 static uint64_t read_avx2(const unsigned char *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= n; i += 128) {
        a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 32)));
        c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 64)));
        d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 96)));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)out, a);
    return out[0] + out[1] + out[2] + out[3];
}
#endif

static void read_task(void *context, int thread, int threads) {
    read_state *s = context;
    size_t per = (s->bytes / (size_t)threads) & ~(size_t)127;
    const unsigned char *p = s->buf + per * (size_t)thread;
    if (s->touch) { memset((void *)p, thread + 1, per); return; }
    uint64_t sum = 0;
#if NK_X86
    if (nk_level_now() >= NK_LEVEL_AVX2) sum = read_avx2(p, per);
    else
#endif
        for (size_t i = 0; i < per; i += 64) sum += *(const uint64_t *)(p + i);
    s->sink[thread % 64] += sum;
}

double nk_measure_read_bandwidth(nk_pool *pool, size_t bytes, int passes) {
    double rates[64], best = 0;
    if (passes > 64) passes = 64;
    nk_measure_read_bandwidth_passes(pool, bytes, passes, rates);
    for (int i = 0; i < passes; i++) if (rates[i] > best) best = rates[i];
    return best;
}

void nk_measure_read_bandwidth_of(nk_pool *pool, const void *memory, size_t bytes, int passes, double *rates) {
    // Whole 4 KB pages inside [memory, memory + bytes), read once untimed, then timed.
    uintptr_t start = ((uintptr_t)memory + 4095) & ~(uintptr_t)4095;
    uintptr_t end = ((uintptr_t)memory + bytes) & ~(uintptr_t)4095;
    read_state s = {.buf = (const unsigned char *)start, .bytes = end > start ? end - start : 0};
    int threads = nk_pool_threads(pool);
    size_t read = ((s.bytes / (size_t)threads) & ~(size_t)127) * (size_t)threads;
    if (read) nk_pool_run(pool, read_task, &s);   // untimed: fault everything in first
    for (int i = 0; i < passes; i++) {
        rates[i] = 0;
        if (!read) continue;
        double t0 = seconds_now();
        nk_pool_run(pool, read_task, &s);
        rates[i] = (double)read / (seconds_now() - t0);
    }
}

void nk_measure_read_bandwidth_passes(nk_pool *pool, size_t bytes, int passes, double *rates) {
    read_state s = {.bytes = bytes & ~(size_t)4095};
    s.buf = aligned_alloc(4096, s.bytes);
    for (int i = 0; i < passes; i++) rates[i] = 0;
    if (!s.buf) return;
    s.touch = 1;
    nk_pool_run(pool, read_task, &s);
    s.touch = 0;
    int threads = nk_pool_threads(pool);
    size_t read = ((s.bytes / (size_t)threads) & ~(size_t)127) * (size_t)threads;
    for (int i = 0; i < passes; i++) {
        double t0 = seconds_now();
        nk_pool_run(pool, read_task, &s);
        rates[i] = (double)read / (seconds_now() - t0);
    }
    free((void *)s.buf);
}

typedef struct {
    double seconds;
    double flops[64];
} fma_state;

#if NK_X86
#define NK_FMA_CHAINS(V, FMA) \
    V a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x; \
    for (long i = 0; i < n; i++) { \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5)); \
        __asm__ volatile("" : "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11)); \
        a0 = FMA(a0, m, c); a1 = FMA(a1, m, c); a2 = FMA(a2, m, c); a3 = FMA(a3, m, c); \
        a4 = FMA(a4, m, c); a5 = FMA(a5, m, c); a6 = FMA(a6, m, c); a7 = FMA(a7, m, c); \
        a8 = FMA(a8, m, c); a9 = FMA(a9, m, c); a10 = FMA(a10, m, c); a11 = FMA(a11, m, c); \
    }

NK_AVX512 static float fma_loop512(long n) {
    __m512 x = _mm512_set1_ps(1.0f), m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    NK_FMA_CHAINS(__m512, _mm512_fmadd_ps)
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

NK_AVX2 static float fma_loop256(long n) {
    __m256 x = _mm256_set1_ps(1.0f), m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    NK_FMA_CHAINS(__m256, _mm256_fmadd_ps)
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0];
}
#endif

static void fma_task(void *context, int thread, int threads) {
    (void)threads;
    fma_state *s = context;
    int level = nk_level_now();
    double lanes = level >= NK_LEVEL_AVX512 ? 16 : level >= NK_LEVEL_AVX2 ? 8 : 1;
    long n = 1 << 16;
    double best = 0, start = seconds_now();
    volatile float sink = 0;
    while (seconds_now() - start < s->seconds) {
        double t0 = seconds_now();
#if NK_X86
        if (level >= NK_LEVEL_AVX512) sink += fma_loop512(n);
        else if (level >= NK_LEVEL_AVX2) sink += fma_loop256(n);
        else
#endif
        {
            // Scalar: 4 chains of multiply-adds (the compiler must not fold them).
            float a0 = 1.0f, a1 = 1.0f, a2 = 1.0f, a3 = 1.0f;
            for (long i = 0; i < n * 3; i++) {
#if NK_X86
                __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3));
#else
                __asm__ volatile("" : "+w"(a0), "+w"(a1), "+w"(a2), "+w"(a3));
#endif
                a0 = a0 * 0.999f + 0.001f; a1 = a1 * 0.999f + 0.001f;
                a2 = a2 * 0.999f + 0.001f; a3 = a3 * 0.999f + 0.001f;
            }
            sink += a0 + a1 + a2 + a3;
        }
        double rate = (double)n * 12.0 * lanes * 2.0 / (seconds_now() - t0);
        if (rate > best) best = rate;
    }
    s->flops[thread % 64] = best;
}

double nk_measure_fma_peak(nk_pool *pool, double seconds) {
    fma_state s = {.seconds = seconds};
    nk_pool_run(pool, fma_task, &s);
    double total = 0;
    for (int i = 0; i < nk_pool_threads(pool) && i < 64; i++) total += s.flops[i];
    return total;
}
