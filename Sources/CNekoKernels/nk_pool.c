// A persistent pool of worker threads: after a task they spin (so the next phase of a forward
// pass starts within a microsecond), then sleep on a condition variable.
#include "nk_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "nk_pool_internal.h"

/// An idle worker spins (pause) for NK_SPIN_NS, then yields its core in a loop until
/// NK_YIELD_NS, then sleeps. Yielding keeps the next phase's start cheap when the machine is
/// quiet (sched_yield returns at once) without stealing the caller's core when it is not.
#define NK_SPIN_NS 30000ull
#define NK_YIELD_NS 3000000ull

static inline void cpu_relax(void) {
#if NK_X86
    _mm_pause();
#endif
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct {
    nk_pool *pool;
    int index;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg arg = *(worker_arg *)p;
    free(p);
    nk_pool *pool = arg.pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (gen == seen) {
            uint64_t start = now_ns();
            for (unsigned spins = 1;; spins++) {
                cpu_relax();
                gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
                if (gen != seen) break;
                if ((spins & 63) != 0) continue;
                uint64_t waited = now_ns() - start;
                if (waited > NK_SPIN_NS && waited < NK_YIELD_NS) sched_yield();
                if (waited >= NK_YIELD_NS) {
                    pthread_mutex_lock(&pool->mutex);
                    atomic_fetch_add(&pool->sleepers, 1);
                    while ((gen = atomic_load(&pool->generation)) == seen)
                        pthread_cond_wait(&pool->wake, &pool->mutex);
                    atomic_fetch_sub(&pool->sleepers, 1);
                    pthread_mutex_unlock(&pool->mutex);
                    break;
                }
            }
        }
        seen = gen;
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
        // A static task waits for every worker, so its parameters stay put while we run it. A
        // shared one may finish (and the next be published) without us: join it first, by a CAS
        // on its join word, which fails once the caller has closed it or moved on.
        uint64_t j = atomic_load(&pool->join);
        if ((uint32_t)(j >> 32) != (uint32_t)gen) continue;          // a newer task is out
        if (j & NK_JOIN_SHARED) {
            int in = 0;
            while ((uint32_t)(j >> 32) == (uint32_t)gen && !(j & NK_JOIN_CLOSED)) {
                if (atomic_compare_exchange_weak(&pool->join, &j, j + 1)) { in = 1; break; }
            }
            if (!in) continue;
        }
        nk_thread_level = pool->level;   // the level the task's caller runs at
        pool->fn(pool->context, arg.index, pool->threads);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
    }
}

nk_pool *nk_pool_create(int threads) {
    if (threads < 1) threads = 1;
    nk_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->scratch = calloc((size_t)threads, sizeof *pool->scratch);
    pool->scratch_size = calloc((size_t)threads, sizeof *pool->scratch_size);
    pool->tids = calloc((size_t)threads, sizeof *pool->tids);
    for (int i = 1; i < threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->tids[i], NULL, worker_main, arg) != 0) {
            // Could not start every thread: run with the ones we have.
            free(arg);
            pool->threads = i;
            break;
        }
    }
    return pool;
}

void nk_pool_destroy(nk_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->join, (atomic_load(&pool->generation) + 1) << 32);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->tids[i], NULL);
    for (int i = 0; i < pool->threads; i++) free(pool->scratch[i]);
    free(pool->scratch);
    free(pool->scratch_size);
    free(pool->tids);
    free(pool->chunks);
    free(pool->prep_jobs);
    free(pool->prep_pack);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool);
}

int nk_pool_threads(const nk_pool *pool) { return pool ? pool->threads : 1; }

static void publish(nk_pool *pool, nk_task_fn fn, void *context, int shared) {
    pool->fn = fn;
    pool->context = context;
    pool->level = nk_thread_level;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    uint64_t gen = atomic_load(&pool->generation) + 1;   // only the caller writes it
    atomic_store(&pool->join, ((uint64_t)(uint32_t)gen << 32) | (shared ? NK_JOIN_SHARED : 0));
    atomic_store(&pool->generation, gen);   // seq_cst: publishes the task, ordered before the sleeper check
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
}

static void wait_done(nk_pool *pool, int count) {
    for (unsigned spins = 1; atomic_load_explicit(&pool->done, memory_order_acquire) != count; spins++) {
        cpu_relax();
        if ((spins & 0x3ff) == 0) sched_yield();   // a worker lost its core: let it run
    }
}

void nk_pool_run(nk_pool *pool, nk_task_fn fn, void *context) {
    if (!pool || pool->threads == 1) { fn(context, 0, 1); return; }
    publish(pool, fn, context, 0);
    fn(context, 0, pool->threads);
    wait_done(pool, pool->threads - 1);
}

void nk_pool_run_shared(nk_pool *pool, nk_task_fn fn, void *context) {
    if (!pool || pool->threads == 1) { fn(context, 0, 1); return; }
    publish(pool, fn, context, 1);
    fn(context, 0, pool->threads);
    uint64_t joined = atomic_fetch_or(&pool->join, NK_JOIN_CLOSED) & NK_JOIN_COUNT;
    wait_done(pool, (int)joined);
}

typedef struct {
    int64_t count, pieces;
    _Atomic int64_t next;
    nk_range_fn fn;
    void *context;
} for_state;

static void for_task(void *context, int thread, int threads) {
    (void)threads;
    for_state *s = context;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
        if (i >= s->pieces) break;
        int64_t begin = s->count * i / s->pieces, end = s->count * (i + 1) / s->pieces;
        if (begin < end) s->fn(s->context, thread, begin, end);
    }
}

void nk_pool_for(nk_pool *pool, int64_t count, int64_t pieces, nk_range_fn fn, void *context) {
    if (count <= 0) return;
    if (pieces < 1) pieces = 1;
    if (pieces > count) pieces = count;
    if (!pool || pool->threads == 1 || pieces == 1) { fn(context, 0, 0, count); return; }
    for_state s = {.count = count, .pieces = pieces, .fn = fn, .context = context};
    atomic_store(&s.next, 0);
    nk_pool_run_shared(pool, for_task, &s);
}

void *nk_pool_scratch(nk_pool *pool, int thread, size_t bytes) {
    if (pool->scratch_size[thread] < bytes) {
        free(pool->scratch[thread]);
        size_t size = bytes < 4096 ? 4096 : bytes;
        size = (size + 63) & ~(size_t)63;
        pool->scratch[thread] = aligned_alloc(64, size);
        pool->scratch_size[thread] = pool->scratch[thread] ? size : 0;
    }
    return pool->scratch[thread];
}
