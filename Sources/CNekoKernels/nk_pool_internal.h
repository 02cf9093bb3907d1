// The pool's insides, shared by nk_pool.c and the job runner.
#ifndef NK_POOL_INTERNAL_H
#define NK_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "nk_kernels.h"

typedef struct {
    int32_t job;
    int64_t r0, r1;
} nk_chunk;

struct nk_pool {
    int threads;
    pthread_t *tids;
    _Atomic uint64_t generation;   // bumped once per task
    _Atomic int done;              // workers finished with the current task
    _Atomic int sleepers;
    _Atomic int stop;
    nk_task_fn fn;
    void *context;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    void **scratch;                // per thread, grown on demand, only touched by its thread
    size_t *scratch_size;
    nk_chunk *chunks;              // the job runner's chunk list (caller thread only)
    int64_t chunk_capacity;
};

/// At least `bytes` of scratch memory owned by `thread` (64-byte aligned; contents undefined).
void *nk_pool_scratch(nk_pool *pool, int thread, size_t bytes);

#endif
