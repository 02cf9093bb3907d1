// Read bandwidth of this machine with T threads: each thread sums its share of a buffer far larger
// than the caches; best of R passes. Built and run by bench_compare.py when nekochat's bench JSON has
// no bandwidth figure of its own:  cc -O3 -march=native -pthread readbw.c -o readbw && ./readbw T [MiB] [R]
// Prints one JSON line: {"threads":T,"bytes":N,"best_gb_per_s":x,"passes_gb_per_s":[...]}.
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct { const uint64_t *p; size_t n; uint64_t sum; } job_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *arg) {
    job_t *j = arg;
    // 8 independent accumulators: the compiler vectorises this into wide loads
    uint64_t a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= j->n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += j->p[i + k];
    for (; i < j->n; i++) a[0] += j->p[i];
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    j->sum = s;
    return NULL;
}

int main(int argc, char **argv) {
    int T = argc > 1 ? atoi(argv[1]) : 1;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    int R = argc > 3 ? atoi(argv[3]) : 5;
    if (T < 1 || T > 256 || mib < 64 || R < 1) { fprintf(stderr, "usage: readbw THREADS [MiB>=64] [PASSES]\n"); return 2; }
    size_t bytes = mib << 20, n = bytes / 8;
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) { fprintf(stderr, "readbw: cannot allocate %zu MiB\n", mib); return 1; }
    for (size_t i = 0; i < n; i++) buf[i] = i * 2654435761u;  // touch every page
    pthread_t th[256];
    job_t jobs[256];
    double best = 0, passes[64];
    uint64_t check = 0;
    for (int r = 0; r < R && r < 64; r++) {
        double t0 = now();
        for (int t = 0; t < T; t++) {
            size_t lo = n * t / T, hi = n * (t + 1) / T;
            jobs[t] = (job_t){buf + lo, hi - lo, 0};
            pthread_create(&th[t], NULL, run, &jobs[t]);
        }
        for (int t = 0; t < T; t++) { pthread_join(th[t], NULL); check += jobs[t].sum; }
        double gbs = bytes / (now() - t0) / 1e9;
        passes[r] = gbs;
        if (gbs > best) best = gbs;
    }
    printf("{\"threads\":%d,\"bytes\":%zu,\"best_gb_per_s\":%.2f,\"passes_gb_per_s\":[", T, bytes, best);
    for (int r = 0; r < R && r < 64; r++) printf("%s%.2f", r ? "," : "", passes[r]);
    printf("],\"checksum\":%llu}\n", (unsigned long long)(check & 0xffff));
    free(buf);
    return 0;
}
