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
    // The current task's join word: generation (high 32 bits), NK_JOIN_CLOSED, NK_JOIN_SHARED
    // (any subset of threads may run it) and the count of workers that joined (low 30 bits).
    _Atomic uint64_t join;
    _Atomic int sleepers;
    _Atomic int stop;
    nk_task_fn fn;
    void *context;
    int level;                     // the starting thread's pinned SIMD level (-1: none), for the workers
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    void **scratch;                // per thread, grown on demand, only touched by its thread
    size_t *scratch_size;
    nk_chunk *chunks;              // the job runner's chunk list (caller thread only)
    int64_t chunk_capacity;
    nk_matvec *prep_jobs;          // the runner's copy of the jobs with their packed inputs (caller only)
    int64_t prep_jobs_capacity;
    void *prep_pack;               // those inputs (AMX tiles, transposed tiles)
    size_t prep_pack_size;
};

#define NK_JOIN_CLOSED 0x80000000u
#define NK_JOIN_SHARED 0x40000000u
#define NK_JOIN_COUNT 0x3fffffffu

/// Runs fn on the caller and on whichever workers are free to join before the caller is done
/// with its own part: fn must share its work out dynamically (a chunk counter), so a worker that
/// lost its core never holds the caller up unless it took a chunk.
void nk_pool_run_shared(nk_pool *pool, nk_task_fn fn, void *context);

/// At least `bytes` of scratch memory owned by `thread` (64-byte aligned; contents undefined).
void *nk_pool_scratch(nk_pool *pool, int thread, size_t bytes);

#endif
