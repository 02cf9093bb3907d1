// A persistent pool of worker threads: after a task they spin (so the next phase of a forward
// pass starts within a microsecond), then sleep on a condition variable.
#include "nk_internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "nk_pool_internal.h"

/// How long an idle worker spins before it sleeps: longer than the gap between two decode
/// steps (sampling, bookkeeping), far shorter than a person typing.
#define NK_SPIN_NS 3000000ull

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
                if ((spins & 255) == 0 && now_ns() - start > NK_SPIN_NS) {
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
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->tids[i], NULL);
    for (int i = 0; i < pool->threads; i++) free(pool->scratch[i]);
    free(pool->scratch);
    free(pool->scratch_size);
    free(pool->tids);
    free(pool->chunks);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    free(pool);
}

int nk_pool_threads(const nk_pool *pool) { return pool ? pool->threads : 1; }

void nk_pool_run(nk_pool *pool, nk_task_fn fn, void *context) {
    if (!pool || pool->threads == 1) { fn(context, 0, 1); return; }
    pool->fn = fn;
    pool->context = context;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    atomic_fetch_add(&pool->generation, 1);   // seq_cst: publishes fn/context, ordered before the sleeper check
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    fn(context, 0, pool->threads);
    for (unsigned spins = 1; atomic_load_explicit(&pool->done, memory_order_acquire) != pool->threads - 1; spins++) {
        cpu_relax();
        if ((spins & 0xffff) == 0) sched_yield();   // a worker lost its core: let it run
    }
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
